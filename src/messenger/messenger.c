/* The Messenger (issue 10, "The Messenger"): typed messages, one stream
 * per message, framed as NuNet DMS frames them (8-byte little-endian
 * length, payload; shared DESIGN.md "Messages:"). A service on the host's
 * public API only, like identify and ping.
 *
 * Inbound bounds. Every inbound message counts from the moment its stream
 * is accepted until its handler is done with it (returned, or finished a
 * deferred reply): past max_inbound_per_peer for its peer, or
 * max_inbound_total, a new stream is reset at once, so a flooding peer
 * fills only its own share. Payload memory is reserved from the declared
 * length before the payload is read; when max_inbound_bytes is spent the
 * stream is paused (its yamux window closes and the sender waits) until
 * another message gives its bytes back. A reservation is for a whole
 * message, so every stream that holds one can finish: no deadlock. */
#include "dmsnet/messenger.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "messenger/frame.h"

#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_PER_PEER 64u
#define DEFAULT_TOTAL 1024u
#define DEFAULT_BYTES (64u << 20)

typedef struct msg_type {
    struct msg_type *next;
    dn_messenger *m;
    char *type;
    dn_messenger_handler fn;
    void *arg;
} msg_type;

typedef struct peer_slot {
    struct peer_slot *next;
    dn_peerid id;
    uint32_t n;
} peer_slot;

/* One inbound message; also the reply handle given to its handler. */
struct dn_messenger_reply_handle {
    dn_messenger *m; /* NULL once the host (and the messenger) is gone */
    dn_stream *s;    /* NULL once on_close ran */
    peer_slot *peer;
    dn_peerid from;
    dn__msg_reader rd;
    size_t reserved;   /* bytes taken from max_inbound_bytes */
    uint64_t deadline; /* loop time: reset if still unfinished */
    uint8_t *out;      /* a reply waiting for room in the stream's queue */
    size_t out_len;
    bool counted, waiting, delivered, in_handler;
    bool finished; /* the handler's side: reply or discard was called */
    bool replied;  /* a reply frame was taken: flushing it ends our side */
    bool released; /* no longer counted; freed once the stream is gone */
    struct dn_messenger_reply_handle *prev, *next; /* m->ins */
    struct dn_messenger_reply_handle *wnext;       /* m->wait_head queue */
};
typedef struct dn_messenger_reply_handle msg_in;

struct dn_messenger {
    dn_host *h;
    dn_messenger_config cfg;
    msg_type *types;
    peer_slot *peers;
    msg_in *ins;
    msg_in *wait_head, *wait_tail;
    uint32_t inbound;
    size_t bytes;
    uv_timer_t sweep;
    dn_messenger_stats st;
};

void dn_messenger_config_init(dn_messenger_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
}

dn_host *dn_messenger_host(const dn_messenger *m)
{
    return m->h;
}

/* ---- inbound ---- */

static peer_slot *peer_get(dn_messenger *m, const dn_peerid *id, bool create)
{
    /* Linear: there are at most max_inbound_total slots in use. */
    for (peer_slot *p = m->peers; p; p = p->next)
        if (dn_peerid_equal(&p->id, id))
            return p;
    if (!create)
        return NULL;
    peer_slot *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->id = *id;
    p->next = m->peers;
    m->peers = p;
    return p;
}

static void peer_put(dn_messenger *m, peer_slot *p)
{
    if (--p->n)
        return;
    for (peer_slot **pp = &m->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            free(p);
            return;
        }
}

static void wait_remove(dn_messenger *m, msg_in *in)
{
    if (!in->waiting)
        return;
    in->waiting = false;
    msg_in *prev = NULL;
    for (msg_in *w = m->wait_head; w; prev = w, w = w->wnext)
        if (w == in) {
            if (prev)
                prev->wnext = w->wnext;
            else
                m->wait_head = w->wnext;
            if (m->wait_tail == w)
                m->wait_tail = prev;
            break;
        }
    in->wnext = NULL;
}

/* Reserve n bytes; always granted when nothing is held, so one message up
 * to max_payload fits whatever max_inbound_bytes says. */
static bool try_reserve(dn_messenger *m, msg_in *in, size_t n)
{
    if (m->bytes && m->bytes + n > m->cfg.max_inbound_bytes)
        return false;
    m->bytes += n;
    in->reserved = n;
    return true;
}

static void unreserve(dn_messenger *m, msg_in *in)
{
    m->bytes -= in->reserved;
    in->reserved = 0;
    /* Hand the room to the streams waiting for it, oldest first. */
    while (m->wait_head) {
        msg_in *w = m->wait_head;
        size_t want = 0;
        dn__msg_reader_declared(&w->rd, &want);
        if (!try_reserve(m, w, want))
            break;
        wait_remove(m, w);
        if (w->s)
            dn_stream_resume_read(w->s);
    }
}

static void in_maybe_free(msg_in *in)
{
    if (!in->released || in->s || in->in_handler)
        return;
    dn_messenger *m = in->m;
    if (m) {
        if (in->prev)
            in->prev->next = in->next;
        else
            m->ins = in->next;
        if (in->next)
            in->next->prev = in->prev;
    }
    dn__msg_reader_free(&in->rd);
    free(in->out);
    free(in);
}

/* The message no longer counts against the bounds. Its stream ends our
 * side unless a reply still has to be written (flush ends it then). */
static void in_release(msg_in *in)
{
    if (in->released)
        return;
    in->released = true;
    dn_messenger *m = in->m;
    if (m) {
        wait_remove(m, in);
        if (in->reserved)
            unreserve(m, in);
        if (in->counted) {
            in->counted = false;
            m->inbound--;
            peer_put(m, in->peer);
            in->peer = NULL;
        }
        /* A lingering stream (the sender never closes) is reset after this. */
        in->deadline = uv_now(dn_host_loop(m->h)) + m->cfg.request_timeout_ms;
    }
    dn__msg_reader_free(&in->rd);
    if (in->s && !in->replied)
        dn_stream_close_write(in->s); /* may close the stream now: in_close frees in */
    else
        in_maybe_free(in);
}

static void in_refuse(msg_in *in, uint64_t *counter)
{
    if (counter)
        (*counter)++;
    if (in->s)
        dn_stream_reset(in->s); /* on_close follows */
}

static msg_type *type_find(dn_messenger *m, const char *type)
{
    for (msg_type *t = m->types; t; t = t->next)
        if (strcmp(t->type, type) == 0)
            return t;
    return NULL;
}

static void in_deliver(msg_in *in)
{
    dn_messenger *m = in->m;
    msg_type *t = type_find(m, dn_stream_protocol(in->s));
    if (!t) { /* unhandled after the stream was accepted */
        in_refuse(in, &m->st.refused_bad);
        return;
    }
    in->delivered = true;
    wait_remove(m, in);
    m->st.received++;
    size_t len = 0;
    const uint8_t *data = dn__msg_reader_payload(&in->rd, &len);
    in->in_handler = true;
    int rc = t->fn(m, &in->from, t->type, data, len, in, t->arg);
    in->in_handler = false;
    /* The payload was only lent for the call. */
    dn__msg_reader_free(&in->rd);
    if (in->reserved && in->m)
        unreserve(m, in);
    if (rc != DN_MESSENGER_DEFER || in->finished)
        in_release(in);
}

static void in_wait(dn_messenger *m, msg_in *in)
{
    in->waiting = true;
    if (m->wait_tail)
        m->wait_tail->wnext = in;
    else
        m->wait_head = in;
    m->wait_tail = in;
    dn_stream_pause_read(in->s);
}

static void in_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    msg_in *in = arg;
    dn_messenger *m = in->m;
    if (in->delivered || in->rd.status) {
        in_refuse(in, &m->st.refused_bad); /* bytes past the one frame */
        return;
    }
    size_t off = 0;
    while (off < len) {
        bool had_len = in->rd.have_len;
        size_t used = 0;
        int rc = dn__msg_reader_feed(&in->rd, data + off, len - off, &used);
        off += used;
        if (rc < 0) {
            in_refuse(in, rc == DN_ETOOBIG ? &m->st.refused_too_big : &m->st.refused_bad);
            return;
        }
        /* Reserve the whole payload as soon as its length is known. Without
         * room the stream waits paused; the rest of this chunk (at most
         * one yamux window) is kept by the reader meanwhile. */
        if (!had_len && in->rd.have_len && !try_reserve(m, in, in->rd.want))
            in_wait(m, in);
        if (rc == 1) {
            /* One frame per stream: anything after it breaks the framing. */
            if (off < len)
                in_refuse(in, &m->st.refused_bad);
            else
                in_deliver(in);
            return;
        }
        if (!used)
            break;
    }
}

static void in_eof(dn_stream *s, void *arg)
{
    msg_in *in = arg;
    if (!in->delivered)
        in_refuse(in, &in->m->st.refused_bad); /* ended inside the frame */
}

static void in_flush(msg_in *in)
{
    if (!in->out || !in->s)
        return;
    int rc = dn_stream_write(in->s, in->out, in->out_len);
    if (rc == DN_ELIMIT)
        return; /* on_writable */
    free(in->out);
    in->out = NULL;
    if (rc)
        dn_stream_reset(in->s);
    else
        dn_stream_close_write(in->s);
}

static void in_writable(dn_stream *s, void *arg)
{
    in_flush(arg);
}

static void in_close(dn_stream *s, int status, void *arg)
{
    msg_in *in = arg;
    in->s = NULL;
    free(in->out);
    in->out = NULL;
    /* Not yet handed to a handler: nobody else holds it. */
    if (!in->delivered && !in->released)
        in_release(in); /* frees in */
    else
        in_maybe_free(in);
}

static void stream_handler(dn_host *h, dn_stream *s, void *arg)
{
    msg_type *t = arg;
    dn_messenger *m = t->m;
    const dn_peerid *from = dn_conn_remote_peer(dn_stream_conn(s));
    peer_slot *p = peer_get(m, from, false);
    if (m->inbound >= m->cfg.max_inbound_total || (p && p->n >= m->cfg.max_inbound_per_peer)) {
        m->st.refused_busy++;
        dn_stream_reset(s);
        return;
    }
    msg_in *in = calloc(1, sizeof *in);
    if (!p && in)
        p = peer_get(m, from, true);
    if (!in || !p) {
        free(in);
        dn_stream_reset(s);
        return;
    }
    in->m = m;
    in->s = s;
    in->from = *from;
    in->peer = p;
    p->n++;
    m->inbound++;
    in->counted = true;
    in->deadline = uv_now(dn_host_loop(h)) + m->cfg.request_timeout_ms;
    dn__msg_reader_init(&in->rd, m->cfg.max_payload);
    in->next = m->ins;
    if (m->ins)
        m->ins->prev = in;
    m->ins = in;
    static const dn_stream_callbacks cbs = {
        .on_data = in_data, .on_eof = in_eof, .on_writable = in_writable, .on_close = in_close};
    dn_stream_set_callbacks(s, &cbs, in);
}

/* Streams past their deadline: an inbound message that did not arrive in
 * time, or a stream whose sender never ended it. */
static void on_sweep(uv_timer_t *timer)
{
    dn_messenger *m = timer->data;
    uint64_t now = uv_now(timer->loop);
    for (msg_in *in = m->ins, *next; in; in = next) {
        next = in->next; /* a reset may free in */
        if (in->s && now >= in->deadline && !(in->delivered && !in->released)) {
            if (!in->delivered)
                m->st.refused_bad++;
            dn_stream_reset(in->s);
        }
    }
}

int dn_messenger_reply(dn_messenger_reply_handle *r, const void *data, size_t len)
{
    if (!r || r->finished)
        return DN_ESTATE;
    r->finished = true;
    int rc = 0;
    size_t max = r->m ? r->m->cfg.max_payload : DN_MESSENGER_DEFAULT_MAX_PAYLOAD;
    if (len > max)
        rc = DN_ETOOBIG;
    else if (!r->s)
        rc = DN_ECLOSED;
    else if (!(r->out = malloc(DN__MSG_HEADER_LEN + len)))
        rc = DN_ENOMEM;
    if (rc == 0) {
        dn__msg_frame_header(len, r->out);
        if (len)
            memcpy(r->out + DN__MSG_HEADER_LEN, data, len);
        r->out_len = DN__MSG_HEADER_LEN + len;
        r->replied = true;
        in_flush(r);
    }
    if (!r->in_handler) /* else in_deliver releases it after the call */
        in_release(r);
    return rc;
}

void dn_messenger_reply_discard(dn_messenger_reply_handle *r)
{
    if (!r || r->finished)
        return;
    r->finished = true;
    if (!r->in_handler)
        in_release(r);
}

/* ---- outbound ---- */

typedef struct msg_op {
    dn_stream *s;
    uv_timer_t timer;
    uint8_t *frame;
    size_t frame_len;
    bool request, written, done, pending, timer_closed;
    dn__msg_reader rd;
    dn_messenger_done_cb done_cb;
    dn_messenger_reply_cb reply_cb;
    void *arg;
    char *type;
} msg_op;

static void op_maybe_free(msg_op *op)
{
    if (!op->timer_closed || op->pending)
        return;
    dn__msg_reader_free(&op->rd);
    free(op->frame);
    free(op->type);
    free(op);
}

static void op_timer_closed(uv_handle_t *h)
{
    msg_op *op = h->data;
    op->timer_closed = true;
    op_maybe_free(op);
}

static void op_finish(msg_op *op, int status, const uint8_t *reply, size_t len)
{
    if (op->done)
        return;
    op->done = true;
    uv_timer_stop(&op->timer);
    if (op->s) {
        /* Detach: after a reply the stream ends when the peer ends it. */
        static const dn_stream_callbacks none = {0};
        dn_stream_set_callbacks(op->s, &none, NULL);
        if (status)
            dn_stream_reset(op->s);
        op->s = NULL;
    }
    if (op->request)
        op->reply_cb(op->arg, status, reply, len);
    else
        op->done_cb(op->arg, status);
    uv_close((uv_handle_t *)&op->timer, op_timer_closed);
}

static void op_timeout(uv_timer_t *t)
{
    op_finish(t->data, DN_ETIMEOUT, NULL, 0);
}

/* A plain send whose receiver keeps the stream open (it may answer, as a
 * node whose API client can reply does) completes this long after the
 * frame went out with no refusal: a refusal (too big, queue full, unknown
 * type) comes back within a round trip, and the sender reads no reply. */
#define SEND_SETTLE_MS 500

static void op_settled(uv_timer_t *t)
{
    op_finish(t->data, 0, NULL, 0);
}

static void op_pump(msg_op *op)
{
    if (op->written || !op->s)
        return;
    int rc = dn_stream_write(op->s, op->frame, op->frame_len);
    if (rc == DN_ELIMIT)
        return; /* on_writable */
    if (rc) {
        op_finish(op, rc, NULL, 0);
        return;
    }
    op->written = true;
    free(op->frame);
    op->frame = NULL;
    if (!op->request)
        uv_timer_start(&op->timer, op_settled, SEND_SETTLE_MS, 0);
    dn_stream_close_write(op->s);
}

static void op_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    msg_op *op = arg;
    if (!op->request)
        return; /* a reply to a plain send is not ours to read */
    size_t used = 0;
    int rc = dn__msg_reader_feed(&op->rd, data, len, &used);
    if (rc < 0) {
        op_finish(op, rc, NULL, 0);
    } else if (rc == 1) {
        if (used < len) {
            op_finish(op, DN_EPROTO, NULL, 0);
            return;
        }
        size_t n = 0;
        const uint8_t *p = dn__msg_reader_payload(&op->rd, &n);
        op_finish(op, 0, p, n);
    }
}

static void op_eof(dn_stream *s, void *arg)
{
    msg_op *op = arg;
    /* The receiver ended its side: it took the message (send), or it
     * chose not to answer (request). */
    if (op->written)
        op_finish(op, op->request ? DN_ECLOSED : 0, NULL, 0);
}

static void op_writable(dn_stream *s, void *arg)
{
    op_pump(arg);
}

static void op_close(dn_stream *s, int status, void *arg)
{
    msg_op *op = arg;
    op->s = NULL;
    op_finish(op, status ? status : (op->request || !op->written ? DN_ECLOSED : 0), NULL, 0);
}

static void op_opened(dn_stream *s, int status, void *arg)
{
    msg_op *op = arg;
    op->pending = false;
    if (op->done) {
        if (s)
            dn_stream_reset(s);
        op_maybe_free(op);
        return;
    }
    if (status || !s) {
        op_finish(op, status ? status : DN_ECLOSED, NULL, 0);
        return;
    }
    op->s = s;
    static const dn_stream_callbacks cbs = {
        .on_data = op_data, .on_eof = op_eof, .on_writable = op_writable, .on_close = op_close};
    dn_stream_set_callbacks(s, &cbs, op);
    op_pump(op);
}

static void op_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    msg_op *op = arg;
    op->pending = false;
    if (op->done) {
        op_maybe_free(op);
        return;
    }
    if (status) {
        op_finish(op, status, NULL, 0);
        return;
    }
    op->pending = true;
    int rc = dn_conn_open_stream(c, op->type, op_opened, op);
    if (rc) {
        op->pending = false;
        op_finish(op, rc, NULL, 0);
    }
}

static int op_start(dn_messenger *m, dn_conn *c, const dn_peerid *peer, const char *type,
                    const void *data, size_t len, uint32_t timeout_ms, bool request,
                    dn_messenger_done_cb done_cb, dn_messenger_reply_cb reply_cb, void *arg)
{
    if (!m || !type || !*type || (!c == !peer) || (len && !data) ||
        (request ? !reply_cb : !done_cb))
        return DN_EINVAL;
    if (len > m->cfg.max_payload)
        return DN_ETOOBIG; /* refused before anything is sent */
    msg_op *op = calloc(1, sizeof *op);
    if (!op)
        return DN_ENOMEM;
    op->frame_len = DN__MSG_HEADER_LEN + len;
    op->frame = malloc(op->frame_len);
    op->type = strdup(type);
    if (!op->frame || !op->type) {
        free(op->frame);
        free(op->type);
        free(op);
        return DN_ENOMEM;
    }
    dn__msg_frame_header(len, op->frame);
    if (len)
        memcpy(op->frame + DN__MSG_HEADER_LEN, data, len);
    op->request = request;
    op->done_cb = done_cb;
    op->reply_cb = reply_cb;
    op->arg = arg;
    dn__msg_reader_init(&op->rd, m->cfg.max_payload);
    op->pending = true;
    int rc = c ? dn_conn_open_stream(c, type, op_opened, op)
               : dn_host_dial_peer(m->h, peer, op_dialed, op);
    if (rc) {
        free(op->frame);
        free(op->type);
        free(op);
        return rc;
    }
    uv_timer_init(dn_host_loop(m->h), &op->timer);
    op->timer.data = op;
    uv_timer_start(&op->timer, op_timeout, timeout_ms ? timeout_ms : m->cfg.request_timeout_ms, 0);
    return 0;
}

int dn_messenger_send(dn_messenger *m, dn_conn *c, const dn_peerid *peer, const char *type,
                      const void *data, size_t len, uint32_t timeout_ms, dn_messenger_done_cb cb,
                      void *arg)
{
    return op_start(m, c, peer, type, data, len, timeout_ms, false, cb, NULL, arg);
}

int dn_messenger_request(dn_messenger *m, dn_conn *c, const dn_peerid *peer, const char *type,
                         const void *data, size_t len, uint32_t timeout_ms,
                         dn_messenger_reply_cb cb, void *arg)
{
    return op_start(m, c, peer, type, data, len, timeout_ms, true, NULL, cb, arg);
}

/* ---- the service ---- */

int dn_messenger_handle(dn_messenger *m, const char *type, dn_messenger_handler fn, void *arg)
{
    if (!m || !type || !*type || !fn)
        return DN_EINVAL;
    msg_type *t = type_find(m, type);
    if (t) {
        t->fn = fn;
        t->arg = arg;
        return 0;
    }
    t = calloc(1, sizeof *t);
    if (!t || !(t->type = strdup(type))) {
        free(t);
        return DN_ENOMEM;
    }
    t->m = m;
    t->fn = fn;
    t->arg = arg;
    int rc = dn_host_set_handler(m->h, type, stream_handler, t);
    if (rc) {
        free(t->type);
        free(t);
        return rc;
    }
    t->next = m->types;
    m->types = t;
    return 0;
}

int dn_messenger_unhandle(dn_messenger *m, const char *type)
{
    for (msg_type **pp = &m->types; *pp; pp = &(*pp)->next) {
        msg_type *t = *pp;
        if (strcmp(t->type, type) == 0) {
            dn_host_remove_handler(m->h, type);
            *pp = t->next;
            free(t->type);
            free(t);
            return 0;
        }
    }
    return DN_ENOTFOUND;
}

void dn_messenger_get_stats(const dn_messenger *m, dn_messenger_stats *st)
{
    *st = m->st;
    st->inbound = m->inbound;
    st->inbound_bytes = m->bytes;
    st->waiting = 0;
    for (const msg_in *w = m->wait_head; w; w = w->wnext)
        st->waiting++;
}

static void messenger_free(uv_handle_t *h)
{
    free(h->data);
}

/* The host is being freed: its streams are gone (every on_close ran). */
static void messenger_cleanup(void *arg)
{
    dn_messenger *m = arg;
    while (m->types) {
        msg_type *t = m->types;
        m->types = t->next;
        free(t->type);
        free(t);
    }
    /* Deferred replies still held by handlers outlive us: finishing them
     * later only frees them. */
    for (msg_in *in = m->ins, *next; in; in = next) {
        next = in->next;
        in->m = NULL;
        in->prev = in->next = NULL;
        in->counted = false;
        in->reserved = 0;
        in->waiting = false;
    }
    while (m->peers) {
        peer_slot *p = m->peers;
        m->peers = p->next;
        free(p);
    }
    uv_close((uv_handle_t *)&m->sweep, messenger_free);
}

int dn_messenger_attach(dn_host *h, const dn_messenger_config *cfg, dn_messenger **out)
{
    if (!h || !out)
        return DN_EINVAL;
    dn_messenger_config c = DN_MESSENGER_CONFIG_INIT;
    if (cfg) {
        if (cfg->size < offsetof(dn_messenger_config, max_payload) + sizeof cfg->max_payload)
            return DN_EINVAL;
        memcpy(&c, cfg, cfg->size < sizeof c ? cfg->size : sizeof c);
        c.size = sizeof c;
    }
    if (!c.max_payload)
        c.max_payload = DN_MESSENGER_DEFAULT_MAX_PAYLOAD;
    if (!c.request_timeout_ms)
        c.request_timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!c.max_inbound_per_peer)
        c.max_inbound_per_peer = DEFAULT_PER_PEER;
    if (!c.max_inbound_total)
        c.max_inbound_total = DEFAULT_TOTAL;
    if (!c.max_inbound_bytes)
        c.max_inbound_bytes = DEFAULT_BYTES;
    dn_messenger *m = calloc(1, sizeof *m);
    if (!m)
        return DN_ENOMEM;
    m->h = h;
    m->cfg = c;
    int rc = dn_host_add_cleanup(h, messenger_cleanup, m);
    if (rc) {
        free(m);
        return rc;
    }
    uv_timer_init(dn_host_loop(h), &m->sweep);
    m->sweep.data = m;
    uint64_t period = c.request_timeout_ms / 4;
    period = period < 10 ? 10 : period > 1000 ? 1000 : period;
    uv_timer_start(&m->sweep, on_sweep, period, period);
    uv_unref((uv_handle_t *)&m->sweep);
    *out = m;
    return 0;
}
