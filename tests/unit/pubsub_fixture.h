/* Shared by test_pubsub_service.c and test_pubsub_network.c: many hosts
 * with identify, ping and the pubsub service on one libuv loop over
 * loopback. As in test_messenger.c, the loop runs only in RUN_UNTIL /
 * run_for, bounded by a watchdog; callbacks record, test bodies check; the
 * teardown closes every host and requires the loop to close clean.
 *
 * Also: raw peers (a host without the service that opens a meshsub stream
 * and writes what the test builds with the codec), for junk, forged
 * signatures and stream replacement. */
#ifndef DN_TEST_PUBSUB_FIXTURE_H
#define DN_TEST_PUBSUB_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/protocols.h"
#include "dmsnet/pubsub.h"
#include "pubsub/sign.h"

#ifndef FX_MAX_HOSTS
#define FX_MAX_HOSTS 4
#endif

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog, tick;
    bool expired;
    int n; /* hosts made */
    dn_privkey *key[FX_MAX_HOSTS];
    dn_host *host[FX_MAX_HOSTS];
    dn_pubsub *ps[FX_MAX_HOSTS];
    int close_cbs[FX_MAX_HOSTS];
    void *user;
} fx;

static inline void fx_on_watchdog(uv_timer_t *t)
{
    ((fx *)t->data)->expired = true;
}
static inline void fx_on_tick(uv_timer_t *t)
{
    (void)t;
}

static inline void watchdog_start(fx *f, uint64_t ms)
{
    f->expired = false;
    uv_timer_start(&f->watchdog, fx_on_watchdog, ms, 0);
    uv_timer_start(&f->tick, fx_on_tick, 2, 2);
}

static inline void watchdog_stop(fx *f)
{
    uv_timer_stop(&f->watchdog);
    uv_timer_stop(&f->tick);
}

#define RUN_UNTIL(f, expr, ms)                                                                     \
    do {                                                                                           \
        watchdog_start((f), (ms));                                                                 \
        while (!(expr) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        watchdog_stop(f);                                                                          \
        if (!(expr))                                                                               \
            fail_msg("timed out after %u ms waiting for: %s", (unsigned)(ms), #expr);              \
    } while (0)

static inline void run_for(fx *f, uint64_t ms)
{
    watchdog_start(f, ms);
    while (!f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    watchdog_stop(f);
}

static inline dn_multiaddr fx_ma(const char *s)
{
    dn_multiaddr m;
    assert_int_equal(dn_multiaddr_parse(s, &m), 0);
    return m;
}

/* Host i with identify and ping; with the pubsub service when cfg is not
 * NULL (raw peers get none). */
static inline void host_up(fx *f, int i, const dn_pubsub_config *cfg)
{
    assert_true(i < FX_MAX_HOSTS);
    if (!f->key[i])
        assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &f->key[i]), 0);
    dn_host_config hc = DN_HOST_CONFIG_INIT;
    hc.identity = f->key[i];
    assert_int_equal(dn_host_new(&f->loop, &hc, &f->host[i]), 0);
    dn_multiaddr any = fx_ma("/ip4/127.0.0.1/tcp/0");
    assert_int_equal(dn_host_listen(f->host[i], &any), 0);
    assert_int_equal(dn_identify_attach(f->host[i]), 0);
    assert_int_equal(dn_ping_attach(f->host[i]), 0);
    if (cfg) {
        assert_int_equal(dn_pubsub_attach(f->host[i], cfg, &f->ps[i]), 0);
        assert_ptr_equal(dn_pubsub_host(f->ps[i]), f->host[i]);
    }
    if (i >= f->n)
        f->n = i + 1;
}

typedef struct dial_rec {
    int calls, status;
    dn_conn *conn;
} dial_rec;

static inline void fx_on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    dial_rec *d = arg;
    d->calls++;
    d->status = status;
    d->conn = c;
}

static inline dn_conn *connect_to(fx *f, int from, int to)
{
    dn_multiaddr m;
    assert_true(dn_host_listen_addrs(f->host[to], &m, 1) >= 1);
    dial_rec d = {0};
    assert_int_equal(dn_host_dial(f->host[from], &m, fx_on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 10000);
    assert_int_equal(d.status, 0);
    return d.conn;
}

/* Dial without waiting (many at once). */
static inline void connect_async(fx *f, int from, int to, dial_rec *d)
{
    dn_multiaddr m;
    assert_true(dn_host_listen_addrs(f->host[to], &m, 1) >= 1);
    assert_int_equal(dn_host_dial(f->host[from], &m, fx_on_dial, d), 0);
}

static inline size_t topic_peers(fx *f, int i, const char *topic)
{
    return dn_pubsub_topic_peers(f->ps[i], topic, NULL, 0);
}

static inline bool knows_peer(fx *f, int i, const char *topic, int j)
{
    dn_peerid ids[64];
    size_t n = dn_pubsub_topic_peers(f->ps[i], topic, ids, 64);
    for (size_t k = 0; k < n && k < 64; k++)
        if (dn_peerid_equal(&ids[k], dn_host_peerid(f->host[j])))
            return true;
    return false;
}

static inline bool in_mesh(fx *f, int i, const char *topic, int j)
{
    dn_peerid ids[64];
    size_t n = dn_pubsub_mesh_peers(f->ps[i], topic, ids, 64);
    for (size_t k = 0; k < n && k < 64; k++)
        if (dn_peerid_equal(&ids[k], dn_host_peerid(f->host[j])))
            return true;
    return false;
}

static inline dn_pubsub_stats stats_of(fx *f, int i)
{
    dn_pubsub_stats st;
    dn_pubsub_get_stats(f->ps[i], &st);
    return st;
}

/* ---- raw streams ---- */

typedef struct raw_stream {
    dn_stream *s;
    int opened, closed, eof, close_status;
} raw_stream;

static inline void raw_close(dn_stream *s, int status, void *arg)
{
    raw_stream *r = arg;
    r->closed++;
    r->close_status = status;
    r->s = NULL;
}

static inline void raw_eof(dn_stream *s, void *arg)
{
    ((raw_stream *)arg)->eof++;
}

static inline void raw_opened(dn_stream *s, int status, void *arg)
{
    raw_stream *r = arg;
    r->opened++;
    if (!s)
        return;
    r->s = s;
    static const dn_stream_callbacks cbs = {.on_eof = raw_eof, .on_close = raw_close};
    dn_stream_set_callbacks(s, &cbs, r);
}

static inline void raw_open(fx *f, dn_conn *c, const char *proto, raw_stream *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(dn_conn_open_stream(c, proto, raw_opened, r), 0);
    RUN_UNTIL(f, r->opened > 0, 5000);
    assert_non_null(r->s);
}

/* End our side and forget the stream (r may go before the host does). */
static inline void raw_done(raw_stream *r)
{
    static const dn_stream_callbacks none = {0};
    if (!r->s)
        return;
    dn_stream_close_write(r->s);
    dn_stream_set_callbacks(r->s, &none, NULL);
    r->s = NULL;
}

/* RPC frames built with the codec's pieces. */
static inline void rpc_frame(dn_buf *out, const char *sub_topic, const dn_buf *msg)
{
    dn_buf body = DN_BUF_INIT, so = DN_BUF_INIT;
    if (sub_topic) {
        assert_int_equal(dn_pb_put_varint(&so, 1, 1), 0);
        assert_int_equal(dn_pb_put_bytes(&so, 2, sub_topic, strlen(sub_topic)), 0);
        assert_int_equal(dn_pb_put_bytes(&body, 1, so.data, so.len), 0);
    }
    if (msg)
        assert_int_equal(dn_pb_put_bytes(&body, 2, msg->data, msg->len), 0);
    assert_int_equal(dn_buf_append_uvarint(out, body.len), 0);
    assert_int_equal(dn_buf_append(out, body.data, body.len), 0);
    dn_buf_free(&body);
    dn_buf_free(&so);
}

/* A message signed by key (forge: then one signature byte is flipped). */
static inline void signed_msg(dn_buf *out, const dn_privkey *key, const char *topic,
                              const char *data, uint64_t seqno, bool forge)
{
    assert_int_equal(dn__pubsub_message_sign(key, topic, strlen(topic), (const uint8_t *)data,
                                             strlen(data), seqno, out),
                     0);
    if (forge) {
        dn__pubsub_message m;
        assert_int_equal(dn__pubsub_message_decode(out->data, out->len, &m), 0);
        size_t off = (size_t)(m.signature.p - out->data);
        out->data[off + 3] ^= 0x40;
    }
}

static inline void raw_write_rpc(raw_stream *r, const char *sub_topic, const dn_buf *msg)
{
    dn_buf fr = DN_BUF_INIT;
    rpc_frame(&fr, sub_topic, msg);
    assert_int_equal(dn_stream_write(r->s, fr.data, fr.len), 0);
    dn_buf_free(&fr);
}

/* ---- fixture ---- */

static inline int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop))
        return -1;
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    uv_timer_init(&f->loop, &f->tick);
    *state = f;
    return 0;
}

static inline void fx_on_host_closed(void *arg)
{
    (*(int *)arg)++;
}

static inline int fx_teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < f->n; i++)
        if (f->host[i])
            dn_host_close(f->host[i], fx_on_host_closed, &f->close_cbs[i]);
    watchdog_start(f, 10000);
    for (;;) {
        bool open = false;
        for (int i = 0; i < f->n; i++)
            if (f->host[i] && f->close_cbs[i] == 0)
                open = true;
        if (!open || f->expired)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    watchdog_stop(f);
    int rc = 0;
    for (int i = 0; i < f->n; i++)
        if (f->host[i] && f->close_cbs[i] != 1) {
            fprintf(stderr, "teardown: host %d closed %d times\n", i, f->close_cbs[i]);
            rc = -1;
        }
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&f->loop) != 0) {
        fprintf(stderr, "teardown: handles left on the loop\n");
        rc = -1;
    }
    for (int i = 0; i < FX_MAX_HOSTS; i++)
        dn_privkey_free(f->key[i]);
    free(f);
    return rc;
}

#endif
