/* One outbound kad request: a new stream per request (as js does), the
 * request frame, one reply frame read with the bounded reader, and the
 * per-request timeout. The peer's answer admits it to the routing table;
 * a failure to reach it marks it stale. */
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "kad/service.h"

struct kad_rpc {
    dn_kad *k;
    dn_peerid peer;
    uint8_t *frame;
    size_t frame_len;
    bool want_reply, written, done, pending, timer_closed, reached;
    dn_stream *s;
    uv_timer_t timer;
    dn__kad_reader rd;
    dn__kad_rpc_cb cb;
    void *arg;
    kad_rpc *prev, *next;
};

static void rpc_maybe_free(kad_rpc *r)
{
    if (!r->timer_closed || r->pending)
        return;
    dn__kad_reader_free(&r->rd);
    free(r->frame);
    free(r);
}

static void rpc_timer_closed(uv_handle_t *h)
{
    kad_rpc *r = h->data;
    r->timer_closed = true;
    dn_kad *k = r->k;
    k->handles--;
    rpc_maybe_free(r);
}

static void rpc_finish(kad_rpc *r, int status, const dn__kad_msg *reply)
{
    if (r->done)
        return;
    r->done = true;
    dn_kad *k = r->k;
    uv_timer_stop(&r->timer);
    if (r->s) {
        static const dn_stream_callbacks none = {0};
        dn_stream_set_callbacks(r->s, &none, NULL);
        if (status)
            dn_stream_reset(r->s);
        else if (!r->written)
            dn_stream_reset(r->s);
        r->s = NULL;
    }
    if (r->prev)
        r->prev->next = r->next;
    else
        k->rpcs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    k->nrpcs--;
    if (status) {
        k->st.requests_failed++;
        /* A peer that reset our stream is alive (it refused the request);
         * one we could not reach, or that did not answer in time, is not. */
        if (status != DN_ERESET && status != DN_EPROTO && status != DN_ETOOBIG &&
            status != DN_EMALFORMED)
            dn__kad_peer_failed(k, &r->peer);
    } else if (r->want_reply) {
        dn__kad_peer_seen(k, &r->peer);
    }
    r->cb(k, r->arg, &r->peer, status, reply);
    uv_close((uv_handle_t *)&r->timer, rpc_timer_closed);
}

static void rpc_timeout(uv_timer_t *t)
{
    kad_rpc *r = t->data;
    /* A request with no reply wanted is done once written. */
    rpc_finish(r, !r->want_reply && r->written ? 0 : DN_ETIMEOUT, NULL);
}

static void rpc_pump(kad_rpc *r)
{
    if (r->written || !r->s)
        return;
    int rc = dn_stream_write(r->s, r->frame, r->frame_len);
    if (rc == DN_ELIMIT)
        return; /* on_writable */
    if (rc) {
        rpc_finish(r, rc, NULL);
        return;
    }
    r->written = true;
    free(r->frame);
    r->frame = NULL;
    dn_stream_close_write(r->s);
}

static void rpc_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    kad_rpc *r = arg;
    if (!r->want_reply) {
        rpc_finish(r, DN_EPROTO, NULL); /* nothing comes back to ADD_PROVIDER */
        return;
    }
    int took = dn__kad_reader_feed(&r->rd, data, len);
    if (took < 0) {
        rpc_finish(r, took, NULL);
        return;
    }
    const uint8_t *msg;
    size_t mlen;
    int rc = dn__kad_reader_next(&r->rd, &msg, &mlen);
    if (rc < 0) {
        rpc_finish(r, rc, NULL);
        return;
    }
    if (rc == 0)
        return;
    dn__kad_msg *m = malloc(sizeof *m);
    if (!m) {
        rpc_finish(r, DN_ENOMEM, NULL);
        return;
    }
    rc = dn__kad_msg_decode(msg, mlen, m);
    rpc_finish(r, rc, rc ? NULL : m);
    free(m);
}

static void rpc_eof(dn_stream *s, void *arg)
{
    kad_rpc *r = arg;
    if (!r->want_reply && r->written)
        rpc_finish(r, 0, NULL);
    else
        rpc_finish(r, DN_ECLOSED, NULL);
}

static void rpc_writable(dn_stream *s, void *arg)
{
    rpc_pump(arg);
}

static void rpc_close(dn_stream *s, int status, void *arg)
{
    kad_rpc *r = arg;
    r->s = NULL;
    if (!r->want_reply && r->written && !status)
        rpc_finish(r, 0, NULL);
    else
        rpc_finish(r, status ? status : DN_ECLOSED, NULL);
}

static void rpc_opened(dn_stream *s, int status, void *arg)
{
    kad_rpc *r = arg;
    r->pending = false;
    if (r->done) {
        if (s)
            dn_stream_reset(s);
        rpc_maybe_free(r);
        return;
    }
    if (status || !s) {
        rpc_finish(r, status ? status : DN_ECLOSED, NULL);
        return;
    }
    r->s = s;
    static const dn_stream_callbacks cbs = {
        .on_data = rpc_data, .on_eof = rpc_eof, .on_writable = rpc_writable, .on_close = rpc_close};
    dn_stream_set_callbacks(s, &cbs, r);
    rpc_pump(r);
}

static void rpc_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    kad_rpc *r = arg;
    r->pending = false;
    if (r->done) {
        rpc_maybe_free(r);
        return;
    }
    if (status) {
        rpc_finish(r, status, NULL);
        return;
    }
    r->pending = true;
    int rc = dn_conn_open_stream(c, r->k->proto, rpc_opened, r);
    if (rc) {
        r->pending = false;
        rpc_finish(r, rc, NULL);
    }
}

int dn__kad_rpc(dn_kad *k, const dn_peerid *peer, const dn_buf *frame, bool want_reply,
                dn__kad_rpc_cb cb, void *arg)
{
    if (k->freed)
        return DN_ECLOSED;
    /* Never through a router: a lookup must not start lookups to dial. */
    if (!dn__kad_dialable(k, peer))
        return DN_ENOTFOUND;
    kad_rpc *r = calloc(1, sizeof *r);
    if (!r || !(r->frame = malloc(frame->len))) {
        free(r);
        return DN_ENOMEM;
    }
    memcpy(r->frame, frame->data, frame->len);
    r->frame_len = frame->len;
    r->k = k;
    r->peer = *peer;
    r->want_reply = want_reply;
    r->cb = cb;
    r->arg = arg;
    dn__kad_reader_init(&r->rd, DN_KAD_MSG_MAX);
    r->pending = true;
    int rc = dn_host_dial_peer(k->h, peer, rpc_dialed, r);
    if (rc) {
        dn__kad_reader_free(&r->rd);
        free(r->frame);
        free(r);
        return rc;
    }
    uv_timer_init(dn_host_loop(k->h), &r->timer);
    r->timer.data = r;
    k->handles++;
    uv_timer_start(&r->timer, rpc_timeout, k->cfg.query_timeout_ms, 0);
    r->next = k->rpcs;
    if (k->rpcs)
        k->rpcs->prev = r;
    k->rpcs = r;
    k->nrpcs++;
    k->st.requests_out++;
    return 0;
}

void dn__kad_rpcs_close(dn_kad *k)
{
    /* The host is gone: no dial or stream callback will come any more. */
    while (k->rpcs) {
        kad_rpc *r = k->rpcs;
        r->pending = false;
        r->s = NULL;
        rpc_finish(r, DN_ECLOSED, NULL);
    }
}
