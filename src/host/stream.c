/* Streams: yamux streams with a multistream-select prefix, and the queue
 * that feeds stream output to the muxer within the peer's window.
 *
 * A stream may be freed while one of its callbacks is on the stack (a
 * handler that resets the stream it is reading). s->busy counts callbacks
 * in progress; the memory is released when it drops to zero. */
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "host/host_internal.h"

static void stream_free(dn_stream *s)
{
    if (s->mss)
        free(s->mss);
    free(s->protocol);
    dn_buf_free(&s->sendq);
    free(s);
}

static void stream_unlink(dn_stream *s)
{
    dn_conn *c = s->conn;
    if (s->prev)
        s->prev->next = s->next;
    else if (c->streams == s)
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    c->nstreams--;
    if (s->in_sendq) {
        dn_stream **pp = &c->sendq_head;
        while (*pp && *pp != s)
            pp = &(*pp)->sendq_next;
        if (*pp)
            *pp = s->sendq_next;
        s->in_sendq = false;
    }
}

static void stream_release(dn_stream *s)
{
    if (s->busy == 0)
        stream_free(s);
}

/* Deliver the end of the stream exactly once. */
static void stream_finish(dn_stream *s, int status)
{
    if (s->gone)
        return;
    s->gone = true;
    stream_unlink(s);
    s->busy++;
    if (s->open_cb) {
        /* Never handed to its opener: report the failure there. */
        dn_stream_open_cb cb = s->open_cb;
        s->open_cb = NULL;
        cb(NULL, status ? status : DN_ECLOSED, s->open_arg);
    } else if (s->cbs.on_close) {
        s->cbs.on_close(s, status, s->arg);
    }
    s->busy--;
    stream_release(s);
}

static dn_stream *stream_new(dn_conn *c, uint32_t id, bool outbound)
{
    dn_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->mss = malloc(sizeof *s->mss);
    if (!s->mss) {
        free(s);
        return NULL;
    }
    s->conn = c;
    s->id = id;
    s->outbound = outbound;
    s->negotiating = true;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    dn_yamux_set_user(c->yamux, id, s);
    return s;
}

static void sendq_link(dn_stream *s)
{
    if (s->in_sendq || s->gone)
        return;
    s->in_sendq = true;
    s->sendq_next = s->conn->sendq_head;
    s->conn->sendq_head = s;
}

/* Bytes the stream layer itself writes (multistream messages). */
static int stream_queue(dn_stream *s, const uint8_t *p, size_t n)
{
    /* Drop the bytes already sent only when the room at the end runs out:
     * compacting after every pump moved the whole queue each time. */
    if (s->sendq_off && s->sendq.cap - s->sendq.len < n) {
        dn_buf_consume(&s->sendq, s->sendq_off);
        s->sendq_off = 0;
    }
    int rc = dn_buf_append(&s->sendq, p, n);
    if (rc)
        return rc;
    sendq_link(s);
    dn__conn_mark_dirty(s->conn);
    return 0;
}

static void stream_negotiated(dn_stream *s, const uint8_t *rest, size_t rest_len)
{
    dn_conn *c = s->conn;
    /* Outbound streams already own their (only) proposal. */
    if (!s->outbound) {
        const char *proto = dn_mss_selected(s->mss);
        s->protocol = strdup(proto ? proto : "");
    }
    free(s->mss);
    s->mss = NULL;
    s->negotiating = false;
    if (!s->protocol) {
        dn_stream_reset(s);
        return;
    }
    s->busy++;
    if (s->outbound) {
        /* The opener has the stream already (see stream_open_lazily); a
         * close_write made meanwhile can send its FIN now. */
        if (s->write_closed && !s->fin_sent) {
            sendq_link(s);
            dn__conn_mark_dirty(c);
        }
    } else {
        dn_handler_entry *he = NULL;
        for (size_t i = 0; i < c->host->nhandlers; i++)
            if (strcmp(c->host->handlers[i].protocol, s->protocol) == 0)
                he = &c->host->handlers[i];
        if (he)
            he->fn(c->host, s, he->arg);
        else
            dn_stream_reset(s);
    }
    if (!s->gone && rest_len && s->cbs.on_data)
        s->cbs.on_data(s, rest, rest_len, s->arg);
    if (!s->gone && s->eof_seen && s->cbs.on_eof)
        s->cbs.on_eof(s, s->arg);
    s->busy--;
    if (s->gone)
        stream_release(s);
}

static void stream_negotiate(dn_stream *s, const uint8_t *data, size_t len)
{
    size_t used = 0;
    dn_buf out = DN_BUF_INIT;
    int rc = dn_mss_feed(s->mss, data, len, &used, &out);
    /* Answers given before a failure go out too: a dialer that sent data
     * right behind a refused proposal (lazy selection) then reads "na",
     * which tells it why, before the reset. */
    if (out.len && stream_queue(s, out.data, out.len) && rc >= 0)
        rc = DN_ENOMEM;
    dn_buf_free(&out);
    if (rc == DN_MSS_DONE) {
        stream_negotiated(s, data + used, len - used);
        return;
    }
    if (rc < 0) {
        char name[16];
        DN_DEBUG("stream", "stream %u with %s: negotiation failed: %s", s->id,
                 dn_peerid_short(&s->conn->remote, name), dn_strerror(rc));
        dn_conn *c = s->conn;
        size_t pending = s->sendq.len - s->sendq_off;
        if (pending && !s->outbound) {
            /* The reset would drop the queued answers: send them first. */
            ssize_t n = dn__conn_send_stream_data(c, s->id, s->sendq.data + s->sendq_off, pending);
            if (n < 0) {
                dn__conn_fail(c, (int)n);
                return;
            }
        }
        /* The reset reports why to the opener (on_close), not as a generic
         * reset. */
        s->fail_status = rc;
        dn_yamux_reset(c->yamux, s->id);
    }
}

void dn__stream_on_yamux_event(dn_conn *c, const dn_yamux_event *ev)
{
    dn_stream *s = ev->user;
    switch (ev->type) {
    case DN_YAMUX_EV_STREAM_OPENED: {
        if (c->host->closing || c->close_after_flush) {
            dn_yamux_reset(c->yamux, ev->stream_id);
            return;
        }
        if (dn_yamux_accept(c->yamux, ev->stream_id) < 0)
            return;
        s = stream_new(c, ev->stream_id, false);
        if (!s) {
            dn_yamux_reset(c->yamux, ev->stream_id);
            return;
        }
        dn_mss_init_listener(s->mss, c->host->protocol_list, c->host->nhandlers);
        dn_buf out = DN_BUF_INIT;
        int rc = dn_mss_start(s->mss, &out);
        if (!rc)
            rc = stream_queue(s, out.data, out.len);
        dn_buf_free(&out);
        if (rc)
            dn_yamux_reset(c->yamux, ev->stream_id);
        return;
    }
    case DN_YAMUX_EV_DATA:
        /* Data is handed over synchronously, so the window reopens at once. */
        dn_yamux_consumed(c->yamux, ev->stream_id, ev->len);
        if (!s || s->gone)
            return;
        if (s->negotiating) {
            stream_negotiate(s, ev->data, ev->len);
            return;
        }
        if (s->cbs.on_data) {
            s->busy++;
            s->cbs.on_data(s, ev->data, ev->len, s->arg);
            s->busy--;
            if (s->gone)
                stream_release(s);
        }
        return;
    case DN_YAMUX_EV_FIN:
        if (!s || s->gone)
            return;
        s->eof_seen = true;
        if (s->negotiating) {
            /* EOF before the protocol was agreed. */
            dn_yamux_reset(c->yamux, ev->stream_id);
            return;
        }
        if (s->cbs.on_eof) {
            s->busy++;
            s->cbs.on_eof(s, s->arg);
            s->busy--;
            if (s->gone)
                stream_release(s);
        }
        return;
    case DN_YAMUX_EV_RESET:
        if (s)
            s->reset_seen = true;
        return;
    case DN_YAMUX_EV_WRITABLE:
        if (s && !s->gone && s->sendq.len > s->sendq_off) {
            sendq_link(s);
            dn__conn_mark_dirty(c);
        }
        return;
    case DN_YAMUX_EV_STREAM_GONE:
        if (s) {
            int status = s->reset_seen ? DN_ERESET : 0;
            if (!s->fin_sent && !s->reset_seen)
                status = DN_ERESET;
            if (s->fail_status)
                status = s->fail_status;
            stream_finish(s, status);
        }
        return;
    case DN_YAMUX_EV_GOAWAY:
        DN_DEBUG("conn", "peer sent go-away (code %u)", ev->value);
        c->goaway_received = true;
        return;
    default:
        return;
    }
}

/* Lazy protocol selection (what js-libp2p does for one protocol): the
 * opener gets the stream as soon as the proposal is queued, not when the
 * echo comes back, so what it writes at once travels right behind the
 * proposal (multistream-select lets the listener take data after the
 * protocol line) and a request/response costs one round trip, not two.
 * A refusal ("na") then resets the stream and reaches the opener's
 * on_close as DN_ENEGOTIATE. Called from the pump, so the opener's writes
 * join the batch that carries the proposal. */
static void stream_open_lazily(dn_stream *s)
{
    s->open_pending = false;
    dn_stream_open_cb cb = s->open_cb;
    s->open_cb = NULL;
    if (cb && !s->gone)
        cb(s, 0, s->open_arg);
}

void dn__conn_pump_streams(dn_conn *c)
{
    dn_stream **pp = &c->sendq_head;
    while (*pp) {
        /* Count the muxer's output too: it only moves to c->wire after the
         * pump, so checking c->wire alone let every queued stream add one
         * more frame (up to DN_CONN_FRAME_MAX each) beyond the mark. */
        if (dn__conn_queued(c) >= DN_CONN_WIRE_HIGH)
            return; /* the socket is behind; resume from on_write_done */
        dn_stream *s = *pp;
        /* Closing the write side can free the stream (both sides done):
         * hold it until this iteration is over. */
        s->busy++;
        if (s->open_pending)
            stream_open_lazily(s);
        size_t pending = s->sendq.len - s->sendq_off;
        if (pending && !s->gone) {
            ssize_t n =
                dn__conn_send_stream_data(c, s->id, s->sendq.data + s->sendq_off, pending);
            if (n < 0) {
                s->busy--;
                dn__conn_fail(c, (int)n);
                return;
            }
            s->sendq_off += (size_t)n;
            pending -= (size_t)n;
        }
        if (pending == 0) {
            dn_buf_reset(&s->sendq);
            s->sendq_off = 0;
        }
        bool stalled = pending > 0 && dn_yamux_send_window(c->yamux, s->id) == 0;
        if (s->above_low && pending < DN_STREAM_QUEUE_LOW && s->cbs.on_writable && !s->gone) {
            s->above_low = false;
            s->cbs.on_writable(s, s->arg);
            pending = s->sendq.len - s->sendq_off;
        }
        if (pending == 0 && s->write_closed && !s->fin_sent && !s->negotiating && !s->gone) {
            s->fin_sent = true;
            dn_yamux_close_write(c->yamux, s->id);
        }
        s->busy--;
        if (s->gone) {
            /* stream_finish already unlinked it; the list may have changed. */
            stream_release(s);
            pp = &c->sendq_head;
            continue;
        }
        if (*pp != s) {
            pp = &c->sendq_head; /* a callback re-linked streams: start over */
            continue;
        }
        if (pending == 0 || stalled) {
            *pp = s->sendq_next; /* unlink: a write or WRITABLE re-links it */
            s->in_sendq = false;
        } else {
            pp = &s->sendq_next;
        }
    }
}

void dn__conn_close_streams(dn_conn *c, int status)
{
    while (c->streams)
        stream_finish(c->streams, status ? status : DN_ECLOSED);
}

/* ---- public API ---- */

int dn_conn_open_stream(dn_conn *c, const char *protocol, dn_stream_open_cb cb, void *arg)
{
    if (c->failed || c->phase != PH_OPEN || c->close_after_flush)
        return DN_ECLOSED;
    uint32_t id;
    int rc = dn_yamux_open(c->yamux, &id);
    if (rc)
        return rc;
    dn_stream *s = stream_new(c, id, true);
    if (!s) {
        dn_yamux_reset(c->yamux, id);
        return DN_ENOMEM;
    }
    s->protocol = strdup(protocol);
    if (!s->protocol) {
        dn_yamux_reset(c->yamux, id);
        return DN_ENOMEM;
    }
    s->proposal[0] = s->protocol;
    s->open_cb = cb;
    s->open_arg = arg;
    s->open_pending = true;
    dn_mss_init_dialer(s->mss, s->proposal, 1);
    dn_buf out = DN_BUF_INIT;
    rc = dn_mss_start(s->mss, &out);
    if (!rc)
        rc = stream_queue(s, out.data, out.len);
    dn_buf_free(&out);
    if (rc) {
        s->open_cb = NULL;
        dn_yamux_reset(c->yamux, id);
        return rc;
    }
    return 0;
}

void dn_stream_set_callbacks(dn_stream *s, const dn_stream_callbacks *cbs, void *arg)
{
    s->cbs = *cbs;
    s->arg = arg;
}

int dn_stream_write(dn_stream *s, const void *data, size_t len)
{
    if (s->gone || s->write_closed || s->reset_seen)
        return DN_ECLOSED;
    if (s->sendq.len - s->sendq_off + len > DN_STREAM_QUEUE_HIGH)
        return DN_ELIMIT;
    dn_conn *c = s->conn;
    if (s->sendq.len == s->sendq_off && !s->negotiating && !s->fin_sent &&
        c->phase == PH_OPEN && !c->failed) {
        /* Nothing queued ahead of it: send straight from the caller's
         * buffer, and queue only what the window or the wire cannot take. */
        ssize_t n = dn__conn_send_stream_data(c, s->id, data, len);
        if (n < 0) {
            dn__conn_fail(c, (int)n);
            return (int)n;
        }
        data = (const uint8_t *)data + n;
        len -= (size_t)n;
        if (len == 0)
            return 0;
    }
    int rc = stream_queue(s, data, len);
    if (rc)
        return rc;
    if (s->sendq.len - s->sendq_off >= DN_STREAM_QUEUE_LOW)
        s->above_low = true;
    return 0;
}

size_t dn_stream_queued(const dn_stream *s) { return s->sendq.len - s->sendq_off; }

int dn_stream_close_write(dn_stream *s)
{
    if (s->gone)
        return DN_ECLOSED;
    if (s->write_closed)
        return 0;
    s->write_closed = true;
    sendq_link(s); /* the pump sends FIN once the queue is empty */
    dn__conn_mark_dirty(s->conn);
    return 0;
}

void dn_stream_reset(dn_stream *s)
{
    if (s->gone)
        return;
    s->reset_seen = true;
    dn_conn *c = s->conn;
    dn_yamux_reset(c->yamux, s->id); /* STREAM_GONE follows synchronously */
    if (!s->gone)
        stream_finish(s, DN_ERESET);
    dn__conn_mark_dirty(c);
}

const char *dn_stream_protocol(const dn_stream *s) { return s->protocol; }
dn_conn *dn_stream_conn(const dn_stream *s) { return s->conn; }
