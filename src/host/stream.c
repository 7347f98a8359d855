/* Streams: yamux streams with a multistream-select prefix, the queue that
 * feeds stream output to the muxer within the peer's window, and the
 * budgets that keep one peer from taking the node's memory:
 *
 * - send queues count against the stream's limit, its connection's budget
 *   and the host's budget; a write over budget is refused (DN_ELIMIT) and
 *   the stream gets on_writable when there is room again;
 * - inbound streams still negotiating are bounded per connection, and
 *   every negotiation has a deadline (one host timer over a list kept in
 *   deadline order: the timeout is the same for all);
 * - streams per peer and per protocol are bounded;
 * - receive windows reopen only for bytes the application took: a paused
 *   stream holds what arrives, and the peer stops when the window closes.
 *
 * A stream may be freed while one of its callbacks is on the stack (a
 * handler that resets the stream it is reading). s->busy counts callbacks
 * in progress; the memory is released when it drops to zero. */
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "host/host_internal.h"

/* ---- accounting ---- */

static size_t stream_pending(const dn_stream *s) { return s->sendq.len - s->sendq_off; }

static void queued_add(dn_stream *s, size_t n)
{
    s->conn->queued += n;
    s->conn->host->queued += n;
}

static void queued_sub(dn_stream *s, size_t n)
{
    dn_conn *c = s->conn;
    dn_host *h = c->host;
    c->queued -= n;
    h->queued -= n;
    dn__host_check_relief(h);
}

void dn__host_check_relief(dn_host *h)
{
    if (h->budget_blocked && h->queued < h->cfg.node_queue_budget / 2)
        dn__host_budget_relieved(h);
}

/* Every stream may queue a little whatever the budgets say, so small
 * messages (a ping, an identify answer) still flow while bulk streams fill
 * the node's budget. */
#define STREAM_FREE_ALLOWANCE (4u * 1024u)

static bool over_budget(const dn_stream *s, size_t len)
{
    const dn_conn *c = s->conn;
    if (stream_pending(s) + len <= STREAM_FREE_ALLOWANCE)
        return false;
    return c->queued >= c->host->cfg.conn_queue_budget ||
           c->host->queued >= c->host->cfg.node_queue_budget;
}

/* Received bytes held by paused streams count as the connection's backlog
 * and towards the host's memory pressure. */
static void held_add(dn_stream *s, ssize_t n)
{
    s->conn->held += (size_t)n;
    s->conn->host->held += (size_t)n;
}

/* ---- negotiation deadlines ---- */

static void neg_unlink(dn_stream *s)
{
    if (!s->neg_deadline)
        return;
    dn_host *h = s->conn->host;
    if (s->neg_prev)
        s->neg_prev->neg_next = s->neg_next;
    else
        h->neg_head = s->neg_next;
    if (s->neg_next)
        s->neg_next->neg_prev = s->neg_prev;
    else
        h->neg_tail = s->neg_prev;
    s->neg_prev = s->neg_next = NULL;
    s->neg_deadline = 0;
    if (!s->outbound) {
        s->conn->nnegotiating--;
        h->nnegotiating--;
    }
}

static void on_neg_timer(uv_timer_t *t) { dn__host_check_negotiations(t->data); }

static void neg_arm(dn_host *h)
{
    if (!h->neg_head) {
        uv_timer_stop(&h->neg_timer);
        return;
    }
    uint64_t now = dn__host_now_ms(h);
    uint64_t due = h->neg_head->neg_deadline;
    uv_timer_start(&h->neg_timer, on_neg_timer, due > now ? due - now : 0, 0);
}

static void neg_link(dn_stream *s)
{
    dn_host *h = s->conn->host;
    s->neg_deadline = dn__host_now_ms(h) + h->cfg.stream_negotiation_timeout_ms;
    s->neg_prev = h->neg_tail;
    s->neg_next = NULL;
    if (h->neg_tail)
        h->neg_tail->neg_next = s;
    else
        h->neg_head = s;
    h->neg_tail = s;
    if (!s->outbound) {
        s->conn->nnegotiating++;
        h->nnegotiating++;
    }
    if (h->neg_head == s)
        neg_arm(h);
}

/* Reset a stream whose negotiation ran out of time or room. */
static void neg_expire(dn_stream *s, const char *why)
{
    neg_unlink(s);
    char name[16];
    DN_LOG_LIMITED(DN_LOG_INFO, "stream", "stream %u with %s: %s, resetting", s->id,
                   dn_peerid_short(&s->conn->remote, name), why);
    s->fail_status = DN_ETIMEOUT;
    dn_conn *c = s->conn;
    /* STREAM_GONE finishes the stream, and frees it unless one of its
     * callbacks is running: s must not be used after this. */
    dn_yamux_reset(c->yamux, s->id);
    dn__conn_mark_dirty(c);
    dn__host_note_release(c->host);
}

void dn__host_check_negotiations(dn_host *h)
{
    uint64_t now = dn__host_now_ms(h);
    while (h->neg_head && h->neg_head->neg_deadline <= now)
        neg_expire(h->neg_head, "protocol negotiation timed out");
    neg_arm(h);
}

/* The host-wide bound on inbound streams negotiating is full: the oldest
 * makes room. A good peer's stream agrees within a round trip, so only
 * streams that stall for longer lose their place. */
static void neg_make_room(dn_host *h)
{
    for (dn_stream *s = h->neg_head; s; s = s->neg_next) {
        if (!s->outbound) {
            neg_expire(s, "too many streams negotiating on this node");
            return;
        }
    }
}

/* ---- lifetime ---- */

static void stream_free(dn_stream *s)
{
    if (s->mss)
        free(s->mss);
    free(s->protocol);
    dn_buf_free(&s->sendq);
    dn_buf_free(&s->held);
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
    neg_unlink(s);
    if (s->in_sendq) {
        dn_stream **pp = &c->sendq_head;
        while (*pp && *pp != s)
            pp = &(*pp)->sendq_next;
        if (*pp)
            *pp = s->sendq_next;
        s->in_sendq = false;
    }
    if (s->in_deliver) {
        dn_stream **pp = &c->deliver_head;
        while (*pp && *pp != s)
            pp = &(*pp)->deliver_next;
        if (*pp)
            *pp = s->deliver_next;
        s->in_deliver = false;
    }
    if (s->budget_blocked) {
        s->budget_blocked = false;
        c->nblocked--;
    }
    size_t pending = stream_pending(s);
    if (pending)
        queued_sub(s, pending);
    if (s->held.len) {
        held_add(s, -(ssize_t)s->held.len);
        dn_buf_free(&s->held);
    }
    dn_buf_reset(&s->sendq);
    s->sendq_off = 0;
    if (c->peer && c->peer->streams)
        c->peer->streams--;
    if (s->counted_proto) {
        for (size_t i = 0; i < c->host->nhandlers; i++) {
            dn_handler_entry *e = &c->host->handlers[i];
            if (strcmp(e->protocol, s->protocol) == 0 && e->nstreams) {
                e->nstreams--;
                break;
            }
        }
        s->counted_proto = false;
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

/* A new stream on c, counted against the peer's stream limit. NULL when
 * out of memory or over that limit (*why says which). */
static dn_stream *stream_new(dn_conn *c, uint32_t id, bool outbound, int *why)
{
    dn_peer_info *p = c->peer;
    if (p && p->streams >= c->host->cfg.max_streams_per_peer) {
        *why = DN_ELIMIT;
        return NULL;
    }
    *why = DN_ENOMEM;
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
    if (p)
        p->streams++;
    neg_link(s);
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

/* Append to the stream's send queue (counted in the budgets). */
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
    queued_add(s, n);
    sendq_link(s);
    dn__conn_mark_dirty(s->conn);
    return 0;
}

/* ---- reading ---- */

/* Hand received bytes to the application, or hold them while paused.
 * Only delivered bytes are reported consumed, so the peer's window
 * reopens only as fast as the application reads. */
static void stream_receive(dn_stream *s, const uint8_t *data, size_t len)
{
    dn_conn *c = s->conn;
    if (s->paused || s->held.len) {
        /* Bounded by the window we granted: yamux refuses more. */
        if (dn_buf_append(&s->held, data, len)) {
            dn_stream_reset(s);
            return;
        }
        held_add(s, len);
        return;
    }
    if (s->cbs.on_data) {
        s->busy++;
        s->cbs.on_data(s, data, len, s->arg);
        s->busy--;
    }
    if (!s->gone)
        dn_yamux_consumed(c->yamux, s->id, len);
}

static void stream_eof(dn_stream *s)
{
    if (s->paused || s->held.len) {
        s->held_eof = true;
        return;
    }
    if (s->cbs.on_eof) {
        s->busy++;
        s->cbs.on_eof(s, s->arg);
        s->busy--;
    }
}

/* Deliver what a resumed stream held (from the pump, never from inside
 * dn_stream_resume_read). */
static void deliver_held(dn_conn *c)
{
    while (c->deliver_head) {
        dn_stream *s = c->deliver_head;
        c->deliver_head = s->deliver_next;
        s->in_deliver = false;
        if (s->gone || s->paused)
            continue;
        s->busy++;
        dn_buf held = s->held;
        dn_buf_init(&s->held);
        held_add(s, -(ssize_t)held.len);
        if (held.len && s->cbs.on_data)
            s->cbs.on_data(s, held.data, held.len, s->arg);
        if (!s->gone)
            dn_yamux_consumed(c->yamux, s->id, held.len);
        dn_buf_free(&held);
        if (!s->gone && s->held_eof && !s->paused && !s->held.len) {
            s->held_eof = false;
            if (s->cbs.on_eof)
                s->cbs.on_eof(s, s->arg);
        }
        s->busy--;
        if (s->gone)
            stream_release(s);
    }
}

/* ---- negotiation ---- */

static dn_handler_entry *handler_for(dn_host *h, const char *protocol)
{
    for (size_t i = 0; i < h->nhandlers; i++)
        if (strcmp(h->handlers[i].protocol, protocol) == 0)
            return &h->handlers[i];
    return NULL;
}

/* The caller holds s->busy (the stream may end in here). */
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
    neg_unlink(s);
    if (!s->protocol) {
        dn_stream_reset(s);
        return;
    }
    if (s->outbound) {
        /* The opener has the stream already (see stream_open_lazily); a
         * close_write made meanwhile can send its FIN now. */
        if (s->write_closed && !s->fin_sent) {
            sendq_link(s);
            dn__conn_mark_dirty(c);
        }
    } else {
        dn_handler_entry *he = handler_for(c->host, s->protocol);
        if (he && he->fn && he->max_streams && he->nstreams >= he->max_streams) {
            char name[16];
            DN_LOG_LIMITED(DN_LOG_INFO, "stream", "refusing a %s stream from %s: %u open (limit)",
                           s->protocol, dn_peerid_short(&c->remote, name), he->nstreams);
            he = NULL;
        }
        if (he && he->fn) {
            he->nstreams++;
            s->counted_proto = true;
            he->fn(c->host, s, he->arg);
        } else {
            dn_stream_reset(s);
        }
    }
    if (!s->gone && rest_len)
        stream_receive(s, rest, rest_len);
    if (!s->gone && s->eof_seen)
        stream_eof(s);
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
    /* Negotiation bytes are ours to consume; the rest belongs to the
     * application (stream_receive reports it). */
    dn_yamux_consumed(s->conn->yamux, s->id, used);
    if (rc == DN_MSS_DONE) {
        stream_negotiated(s, data + used, len - used);
        return;
    }
    if (rc >= 0 && used < len)
        dn_yamux_consumed(s->conn->yamux, s->id, len - used);
    if (rc < 0) {
        char name[16];
        DN_DEBUG("stream", "stream %u with %s: negotiation failed: %s", s->id,
                 dn_peerid_short(&s->conn->remote, name), dn_strerror(rc));
        dn_conn *c = s->conn;
        size_t pending = stream_pending(s);
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

/* ---- outbound opens waiting for backlog room ---- */

static int open_now(dn_conn *c, const char *protocol, dn_stream_open_cb cb, void *arg);

static void retry_pending_opens(dn_conn *c)
{
    while (c->opens_head && !c->failed) {
        pending_open *po = c->opens_head;
        int rc = open_now(c, po->protocol, po->cb, po->arg);
        if (rc == DN_EAGAIN)
            return; /* still full: the next ACK retries */
        c->opens_head = po->next;
        if (!c->opens_head)
            c->opens_tail = NULL;
        c->nopens--;
        if (rc) /* reported like any later failure: through the open callback */
            po->cb(NULL, rc, po->arg);
        free(po->protocol);
        free(po);
    }
}

static void fail_pending_opens(dn_conn *c, int status)
{
    while (c->opens_head) {
        pending_open *po = c->opens_head;
        c->opens_head = po->next;
        c->nopens--;
        po->cb(NULL, status, po->arg);
        free(po->protocol);
        free(po);
    }
    c->opens_tail = NULL;
}

/* ---- yamux events ---- */

static void on_stream_opened(dn_conn *c, uint32_t id)
{
    dn_host *h = c->host;
    if (h->closing || c->close_after_flush) {
        dn_yamux_reset(c->yamux, id);
        return;
    }
    if (c->nnegotiating >= h->cfg.max_negotiating_streams) {
        char name[16];
        DN_LOG_LIMITED(DN_LOG_INFO, "stream",
                       "refusing a stream from %s: %zu streams still negotiating",
                       dn_peerid_short(&c->remote, name), c->nnegotiating);
        dn_yamux_reset(c->yamux, id);
        return;
    }
    if (h->nnegotiating >= h->cfg.max_negotiating_total)
        neg_make_room(h);
    if (dn_yamux_accept(c->yamux, id) < 0)
        return;
    int why;
    dn_stream *s = stream_new(c, id, false, &why);
    if (!s) {
        if (why == DN_ELIMIT) {
            char name[16];
            DN_LOG_LIMITED(DN_LOG_INFO, "stream", "refusing a stream from %s: stream limit",
                           dn_peerid_short(&c->remote, name));
        }
        dn_yamux_reset(c->yamux, id);
        return;
    }
    dn_mss_init_listener(s->mss, h->protocol_list, h->nhandlers);
    dn_buf out = DN_BUF_INIT;
    int rc = dn_mss_start(s->mss, &out);
    if (!rc)
        rc = stream_queue(s, out.data, out.len);
    dn_buf_free(&out);
    if (rc)
        dn_yamux_reset(c->yamux, id);
}

void dn__stream_on_yamux_event(dn_conn *c, const dn_yamux_event *ev)
{
    dn_stream *s = ev->user;
    switch (ev->type) {
    case DN_YAMUX_EV_STREAM_OPENED:
        on_stream_opened(c, ev->stream_id);
        return;
    case DN_YAMUX_EV_STREAM_ACKED:
        retry_pending_opens(c);
        return;
    case DN_YAMUX_EV_DATA:
        if (!s || s->gone) {
            dn_yamux_consumed(c->yamux, ev->stream_id, ev->len);
            return;
        }
        s->busy++;
        if (s->negotiating)
            stream_negotiate(s, ev->data, ev->len);
        else
            stream_receive(s, ev->data, ev->len);
        s->busy--;
        if (s->gone)
            stream_release(s);
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
        s->busy++;
        stream_eof(s);
        s->busy--;
        if (s->gone)
            stream_release(s);
        return;
    case DN_YAMUX_EV_RESET:
        if (s)
            s->reset_seen = true;
        return;
    case DN_YAMUX_EV_WRITABLE:
        if (s && !s->gone && stream_pending(s)) {
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
        /* An outbound stream that was never ACKed frees backlog room too. */
        if (c->opens_head)
            retry_pending_opens(c);
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

/* Streams refused for a budget get on_writable once their connection (and
 * the host) are back under half the budget. */
static bool budget_has_room(const dn_conn *c)
{
    const dn_host *h = c->host;
    return c->queued < h->cfg.conn_queue_budget / 2 && h->queued < h->cfg.node_queue_budget / 2;
}

static void wake_blocked(dn_conn *c)
{
    dn_host *h = c->host;
    /* The room is checked again after every callback: a woken writer that
     * fills the budget blocks itself again, and waking it (or the others)
     * once more before the queue drains would loop without end. The rest
     * stay blocked until a later pump finds room. */
    for (dn_stream *s = c->streams; s && c->nblocked && !c->failed && budget_has_room(c);) {
        if (!s->budget_blocked) {
            s = s->next;
            continue;
        }
        s->budget_blocked = false;
        c->nblocked--;
        if (!s->cbs.on_writable) {
            s = s->next;
            continue;
        }
        s->busy++;
        s->cbs.on_writable(s, s->arg);
        s->busy--;
        if (s->gone)
            stream_release(s);
        /* The callback may have closed or reset any stream: rescan. This
         * ends: each pass clears a flag, and a flag set again means the
         * budget is full, which stops the loop. */
        s = c->streams;
    }
    /* Streams still blocked for the host's budget wait for the next relief
     * (dn__host_budget_relieved), which comes only while flagged: other
     * connections' writers may have refilled the budget without being
     * refused, and this connection may see no traffic before then. */
    if (c->nblocked && !c->failed && h->queued >= h->cfg.node_queue_budget / 2)
        h->budget_blocked = true;
}

void dn__host_budget_relieved(dn_host *h)
{
    h->budget_blocked = false;
    for (dn_conn *c = h->conns; c; c = c->next)
        if (c->nblocked)
            dn__conn_mark_dirty(c);
}

void dn__conn_pump_streams(dn_conn *c)
{
    deliver_held(c);
    dn_stream **pp = &c->sendq_head;
    while (*pp) {
        /* dn__conn_queued counts the muxer's frames and the sealed bytes
         * behind the write in flight: every queued stream may add at most
         * one more frame beyond the mark. */
        if (dn__conn_queued(c) >= DN_CONN_WIRE_HIGH)
            return; /* the socket is behind; resume from on_write_done */
        dn_stream *s = *pp;
        /* Closing the write side can free the stream (both sides done):
         * hold it until this iteration is over. */
        s->busy++;
        if (s->open_pending)
            stream_open_lazily(s);
        size_t pending = stream_pending(s);
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
            if (n)
                queued_sub(s, (size_t)n);
        }
        if (pending == 0) {
            /* Empty: give back a large buffer instead of keeping the
             * high-water mark of every burst for the stream's lifetime. */
            if (s->sendq.cap > 2 * DN_STREAM_QUEUE_LOW ||
                (s->sendq.cap > 4096 && dn__host_under_pressure(c->host)))
                dn_buf_free(&s->sendq);
            dn_buf_reset(&s->sendq);
            s->sendq_off = 0;
        }
        bool stalled = pending > 0 && dn_yamux_send_window(c->yamux, s->id) == 0;
        /* on_writable: the queue dropped below the low mark, or a paused
         * stream's queue emptied (echo-like protocols pause reading while
         * their answer is queued and resume when it left). */
        if (((s->above_low && pending < DN_STREAM_QUEUE_LOW) || (s->paused && pending == 0)) &&
            s->cbs.on_writable && !s->gone) {
            s->above_low = false;
            s->cbs.on_writable(s, s->arg);
            pending = stream_pending(s);
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
    wake_blocked(c);
}

void dn__conn_close_streams(dn_conn *c, int status)
{
    fail_pending_opens(c, status ? status : DN_ECLOSED);
    while (c->streams)
        stream_finish(c->streams, status ? status : DN_ECLOSED);
}

/* ---- public API ---- */

static int open_now(dn_conn *c, const char *protocol, dn_stream_open_cb cb, void *arg)
{
    uint32_t id;
    int rc = dn_yamux_open(c->yamux, &id);
    if (rc)
        return rc;
    int why;
    dn_stream *s = stream_new(c, id, true, &why);
    if (!s) {
        dn_yamux_reset(c->yamux, id);
        return why;
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

int dn_conn_open_stream(dn_conn *c, const char *protocol, dn_stream_open_cb cb, void *arg)
{
    if (c->failed || c->phase != PH_OPEN || c->close_after_flush)
        return DN_ECLOSED;
    if (!protocol || !*protocol || strlen(protocol) > 255 || !cb)
        return DN_EINVAL;
    /* Behind others already waiting, or the backlog is full: wait too. */
    int rc = c->opens_head ? DN_EAGAIN : open_now(c, protocol, cb, arg);
    if (rc != DN_EAGAIN)
        return rc;
    if (c->nstreams + c->nopens >= c->host->cfg.max_streams)
        return DN_ELIMIT;
    pending_open *po = calloc(1, sizeof *po);
    if (!po || !(po->protocol = strdup(protocol))) {
        free(po);
        return DN_ENOMEM;
    }
    po->cb = cb;
    po->arg = arg;
    if (c->opens_tail)
        c->opens_tail->next = po;
    else
        c->opens_head = po;
    c->opens_tail = po;
    c->nopens++;
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
    if (stream_pending(s) + len > DN_STREAM_QUEUE_HIGH)
        return DN_ELIMIT;
    dn_conn *c = s->conn;
    /* The budgets are checked before a write, so one write may pass them
     * by at most its own size (at most DN_STREAM_QUEUE_HIGH). */
    if (over_budget(s, len)) {
        if (!s->budget_blocked) {
            s->budget_blocked = true;
            c->nblocked++;
        }
        if (c->host->queued >= c->host->cfg.node_queue_budget)
            c->host->budget_blocked = true;
        return DN_ELIMIT;
    }
    if (stream_pending(s) == 0 && !s->negotiating && !s->fin_sent && c->phase == PH_OPEN &&
        !c->failed) {
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
    if (stream_pending(s) >= DN_STREAM_QUEUE_LOW)
        s->above_low = true;
    return 0;
}

size_t dn_stream_queued(const dn_stream *s) { return stream_pending(s); }

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
    /* STREAM_GONE follows synchronously and finishes the stream; called
     * from outside any of its callbacks, that would free it under us. */
    s->busy++;
    dn_yamux_reset(c->yamux, s->id);
    if (!s->gone)
        stream_finish(s, DN_ERESET);
    s->busy--;
    stream_release(s);
    dn__conn_mark_dirty(c);
}

void dn_stream_pause_read(dn_stream *s) { s->paused = true; }

void dn_stream_resume_read(dn_stream *s)
{
    if (s->gone || !s->paused)
        return;
    s->paused = false;
    if ((s->held.len || s->held_eof) && !s->in_deliver) {
        s->in_deliver = true;
        s->deliver_next = s->conn->deliver_head;
        s->conn->deliver_head = s;
        dn__conn_mark_dirty(s->conn);
    }
}

size_t dn_stream_held(const dn_stream *s) { return s->held.len; }

const char *dn_stream_protocol(const dn_stream *s) { return s->protocol; }
dn_conn *dn_stream_conn(const dn_stream *s) { return s->conn; }
