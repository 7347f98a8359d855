/* The Messenger (src/messenger/messenger.c) between hosts on one libuv
 * loop over loopback: send and receive, request and response (now and
 * later), 1 MiB accepted and 1 MiB + 1 refused on both ends, a declared
 * length past the limit reset before the payload, an unknown type, the
 * request timeout, addressing by peer id, a flood from one peer that does
 * not starve another, and the byte budget pausing a stream.
 *
 * As in test_host.c: the loop runs only in RUN_UNTIL / run_for, bounded by
 * a watchdog; callbacks record, test bodies check; the teardown closes the
 * hosts and requires the loop to close clean. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/messenger.h"

#define NHOSTS 3
#define A 0
#define B 1
#define C 2
#define T_ECHO "/test/msg/echo/1"
#define T_HOLD "/test/msg/hold/1"
#define T_SINK "/test/msg/sink/1"
#define MIB (1u << 20)
#define MAX_HELD 64
#define MAX_OPS 64

typedef struct fx fx;

typedef struct op_rec {
    int calls, status;
    uint8_t *reply;
    size_t reply_len;
} op_rec;

/* What one host's handlers saw. */
typedef struct seen {
    int calls;
    dn_peerid from[MAX_OPS];
    size_t last_len;
    uint8_t *last; /* copy of the last payload */
    dn_messenger_reply_handle *held[MAX_HELD];
    uint32_t waiting_at_call[MAX_OPS]; /* streams paused for bytes when a handler ran */
    int nheld;
} seen;

struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog, tick;
    bool expired;
    dn_privkey *key[NHOSTS];
    dn_host *host[NHOSTS];
    dn_messenger *m[NHOSTS];
    int close_cbs[NHOSTS];
    seen seen[NHOSTS];
    op_rec ops[MAX_OPS];
};

static void on_watchdog(uv_timer_t *t)
{
    ((fx *)t->data)->expired = true;
}
static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void watchdog_start(fx *f, uint64_t ms)
{
    f->expired = false;
    uv_timer_start(&f->watchdog, on_watchdog, ms, 0);
    uv_timer_start(&f->tick, on_tick, 2, 2);
}

static void watchdog_stop(fx *f)
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

static void run_for(fx *f, uint64_t ms)
{
    watchdog_start(f, ms);
    while (!f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    watchdog_stop(f);
}

/* ---- handlers ---- */

static seen *seen_of(fx *f, dn_messenger *m)
{
    for (int i = 0; i < NHOSTS; i++)
        if (f->m[i] == m)
            return &f->seen[i];
    return NULL;
}

static void record(fx *f, dn_messenger *m, const dn_peerid *from, const uint8_t *data, size_t len)
{
    seen *s = seen_of(f, m);
    dn_messenger_stats st;
    dn_messenger_get_stats(m, &st);
    if (s->calls < MAX_OPS) {
        s->from[s->calls] = *from;
        s->waiting_at_call[s->calls] = st.waiting;
    }
    s->calls++;
    free(s->last);
    s->last = malloc(len ? len : 1);
    memcpy(s->last, data, len);
    s->last_len = len;
}

/* Reply at once with the payload reversed. */
static int echo_handler(dn_messenger *m, const dn_peerid *from, const char *type,
                        const uint8_t *data, size_t len, dn_messenger_reply_handle *reply,
                        void *arg)
{
    record(arg, m, from, data, len);
    uint8_t *rev = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        rev[i] = data[len - 1 - i];
    dn_messenger_reply(reply, rev, len);
    free(rev);
    return 0;
}

/* Keep the reply handle: the test finishes it later. */
static int hold_handler(dn_messenger *m, const dn_peerid *from, const char *type,
                        const uint8_t *data, size_t len, dn_messenger_reply_handle *reply,
                        void *arg)
{
    fx *f = arg;
    record(f, m, from, data, len);
    seen *s = seen_of(f, m);
    if (s->nheld == MAX_HELD)
        return 0;
    s->held[s->nheld++] = reply;
    return DN_MESSENGER_DEFER;
}

/* Take the message, answer nothing. */
static int sink_handler(dn_messenger *m, const dn_peerid *from, const char *type,
                        const uint8_t *data, size_t len, dn_messenger_reply_handle *reply,
                        void *arg)
{
    record(arg, m, from, data, len);
    return 0;
}

static void on_done(void *arg, int status)
{
    op_rec *r = arg;
    r->calls++;
    r->status = status;
}

static void on_reply(void *arg, int status, const uint8_t *reply, size_t len)
{
    op_rec *r = arg;
    r->calls++;
    r->status = status;
    free(r->reply);
    r->reply = NULL;
    r->reply_len = len;
    if (reply) {
        r->reply = malloc(len ? len : 1);
        memcpy(r->reply, reply, len);
    }
}

/* ---- hosts ---- */

static dn_multiaddr ma(const char *s)
{
    dn_multiaddr m;
    assert_int_equal(dn_multiaddr_parse(s, &m), 0);
    return m;
}

static void host_up(fx *f, int i, const dn_messenger_config *mcfg)
{
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = f->key[i];
    assert_int_equal(dn_host_new(&f->loop, &cfg, &f->host[i]), 0);
    dn_multiaddr any = ma("/ip4/127.0.0.1/tcp/0");
    assert_int_equal(dn_host_listen(f->host[i], &any), 0);
    assert_int_equal(dn_messenger_attach(f->host[i], mcfg, &f->m[i]), 0);
    assert_ptr_equal(dn_messenger_host(f->m[i]), f->host[i]);
    assert_int_equal(dn_messenger_handle(f->m[i], T_ECHO, echo_handler, f), 0);
    assert_int_equal(dn_messenger_handle(f->m[i], T_HOLD, hold_handler, f), 0);
    assert_int_equal(dn_messenger_handle(f->m[i], T_SINK, sink_handler, f), 0);
}

typedef struct dial_rec {
    int calls, status;
    dn_conn *conn;
} dial_rec;

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    dial_rec *d = arg;
    d->calls++;
    d->status = status;
    d->conn = c;
}

static dn_conn *connect_to(fx *f, int from, int to)
{
    dn_multiaddr m;
    assert_true(dn_host_listen_addrs(f->host[to], &m, 1) >= 1);
    dial_rec d = {0};
    assert_int_equal(dn_host_dial(f->host[from], &m, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 5000);
    assert_int_equal(d.status, 0);
    return d.conn;
}

static dn_messenger_stats stats_of(fx *f, int i)
{
    dn_messenger_stats st;
    dn_messenger_get_stats(f->m[i], &st);
    return st;
}

static uint8_t *pattern_buf(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + 7);
    return p;
}

/* Operations among the first n that completed with status. */
static int count_status(fx *f, int n, int status)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += f->ops[i].calls == 1 && f->ops[i].status == status;
    return k;
}

/* ---- tests ---- */

static void test_send_receive(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    dn_conn *c = connect_to(f, A, B);
    op_rec *r = &f->ops[0];
    assert_int_equal(dn_messenger_send(f->m[A], c, NULL, T_SINK, "hello", 5, 0, on_done, r), 0);
    assert_int_equal(r->calls, 0); /* never from inside the call */
    RUN_UNTIL(f, r->calls > 0, 5000);
    assert_int_equal(r->status, 0);
    assert_int_equal(f->seen[B].calls, 1);
    assert_int_equal(f->seen[B].last_len, 5);
    assert_memory_equal(f->seen[B].last, "hello", 5);
    assert_true(dn_peerid_equal(&f->seen[B].from[0], dn_host_peerid(f->host[A])));
    /* An empty payload is a message too. */
    assert_int_equal(dn_messenger_send(f->m[A], c, NULL, T_SINK, NULL, 0, 0, on_done, &f->ops[1]),
                     0);
    RUN_UNTIL(f, f->ops[1].calls > 0, 5000);
    assert_int_equal(f->ops[1].status, 0);
    assert_int_equal(f->seen[B].calls, 2);
    assert_int_equal(f->seen[B].last_len, 0);
    dn_messenger_stats st = stats_of(f, B);
    assert_int_equal(st.received, 2);
    assert_int_equal(st.inbound, 0);
    assert_int_equal(st.inbound_bytes, 0);
}

static void test_request_response(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    dn_conn *c = connect_to(f, A, B);
    op_rec *r = &f->ops[0];
    assert_int_equal(dn_messenger_request(f->m[A], c, NULL, T_ECHO, "abc", 3, 0, on_reply, r), 0);
    RUN_UNTIL(f, r->calls > 0, 5000);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->reply_len, 3);
    assert_memory_equal(r->reply, "cba", 3);
    /* A request to a handler that answers nothing ends without a reply. */
    assert_int_equal(
        dn_messenger_request(f->m[A], c, NULL, T_SINK, "x", 1, 0, on_reply, &f->ops[1]), 0);
    RUN_UNTIL(f, f->ops[1].calls > 0, 5000);
    assert_int_equal(f->ops[1].status, DN_ECLOSED);
}

static void test_one_mib(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    dn_conn *c = connect_to(f, A, B);
    uint8_t *p = pattern_buf(MIB);
    op_rec *r = &f->ops[0];
    assert_int_equal(dn_messenger_request(f->m[A], c, NULL, T_ECHO, p, MIB, 0, on_reply, r), 0);
    RUN_UNTIL(f, r->calls > 0, 10000);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->reply_len, MIB);
    bool same = true;
    for (size_t i = 0; i < MIB; i++)
        if (r->reply[i] != p[MIB - 1 - i])
            same = false;
    assert_true(same);
    assert_int_equal(f->seen[B].last_len, MIB);
    assert_memory_equal(f->seen[B].last, p, MIB);
    free(p);
}

static void test_one_mib_plus_one(void **state)
{
    fx *f = *state;
    /* A may send up to 2 MiB; B keeps the default 1 MiB. */
    dn_messenger_config big = DN_MESSENGER_CONFIG_INIT;
    big.max_payload = 2 * MIB;
    host_up(f, A, &big);
    host_up(f, B, NULL);
    dn_conn *ab = connect_to(f, A, B);
    uint8_t *p = pattern_buf(MIB + 1);
    /* Sender side: B's own send of 1 MiB + 1 is refused before anything goes out. */
    dn_conn *ba = connect_to(f, B, A);
    assert_int_equal(
        dn_messenger_send(f->m[B], ba, NULL, T_SINK, p, MIB + 1, 0, on_done, &f->ops[9]),
        DN_ETOOBIG);
    assert_int_equal(
        dn_messenger_request(f->m[B], ba, NULL, T_ECHO, p, MIB + 1, 0, on_reply, &f->ops[9]),
        DN_ETOOBIG);
    run_for(f, 50);
    assert_int_equal(f->ops[9].calls, 0);
    assert_int_equal(f->seen[A].calls, 0);
    /* Receiver side: B resets the stream on the header, A sees it. */
    op_rec *r = &f->ops[0];
    assert_int_equal(dn_messenger_send(f->m[A], ab, NULL, T_SINK, p, MIB + 1, 0, on_done, r), 0);
    RUN_UNTIL(f, r->calls > 0, 10000);
    assert_int_equal(r->status, DN_ERESET);
    assert_int_equal(f->seen[B].calls, 0);
    dn_messenger_stats st = stats_of(f, B);
    assert_int_equal(st.refused_too_big, 1);
    assert_int_equal(st.inbound, 0);
    assert_int_equal(st.inbound_bytes, 0);
    /* The connection is fine afterwards: exactly 1 MiB still goes through. */
    assert_int_equal(dn_messenger_send(f->m[A], ab, NULL, T_SINK, p, MIB, 0, on_done, &f->ops[1]),
                     0);
    RUN_UNTIL(f, f->ops[1].calls > 0, 10000);
    assert_int_equal(f->ops[1].status, 0);
    assert_int_equal(f->seen[B].calls, 1);
    free(p);
}

/* A raw stream that declares 1 TiB and sends nothing more: reset at once. */
typedef struct raw_rec {
    dn_stream *s;
    int opened, closed, close_status;
    const uint8_t *bytes; /* written once the stream is open */
    size_t len;
    bool close_write;
} raw_rec;

static void raw_close(dn_stream *s, int status, void *arg)
{
    raw_rec *r = arg;
    r->closed++;
    r->close_status = status;
    r->s = NULL;
}

static void raw_opened(dn_stream *s, int status, void *arg)
{
    raw_rec *r = arg;
    r->opened++;
    if (!s)
        return;
    r->s = s;
    static const dn_stream_callbacks cbs = {.on_close = raw_close};
    dn_stream_set_callbacks(s, &cbs, r);
    dn_stream_write(s, r->bytes, r->len);
    if (r->close_write)
        dn_stream_close_write(s);
}

static void test_declared_too_big_reset_early(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    dn_conn *c = connect_to(f, A, B);
    static const uint8_t h[8] = {0, 0, 0, 0, 0, 1, 0, 0}; /* 2^40, little-endian */
    raw_rec r = {.bytes = h, .len = sizeof h};
    assert_int_equal(dn_conn_open_stream(c, T_HOLD, raw_opened, &r), 0);
    /* Nothing but the header was sent and our side is still open: only
     * the receiver can end this stream, and it must. */
    RUN_UNTIL(f, r.closed > 0, 5000);
    assert_int_equal(r.close_status, DN_ERESET);
    assert_int_equal(stats_of(f, B).refused_too_big, 1);
    assert_int_equal(f->seen[B].calls, 0);
}

/* Broken frames: bytes past the one frame, EOF inside it, and a frame
 * that stops arriving (reset after request_timeout_ms). */
static void test_broken_frames(void **state)
{
    fx *f = *state;
    dn_messenger_config mc = DN_MESSENGER_CONFIG_INIT;
    mc.request_timeout_ms = 200;
    host_up(f, A, NULL);
    host_up(f, B, &mc);
    dn_conn *c = connect_to(f, A, B);
    static const uint8_t extra[8 + 2 + 1] = {2, 0, 0, 0, 0, 0, 0, 0, 'o', 'k', '!'};
    static const uint8_t cut[8 + 1] = {5, 0, 0, 0, 0, 0, 0, 0, 'x'};
    raw_rec r1 = {.bytes = extra, .len = sizeof extra, .close_write = true};
    raw_rec r2 = {.bytes = cut, .len = sizeof cut, .close_write = true};
    raw_rec r3 = {.bytes = cut, .len = sizeof cut}; /* and then silence */
    assert_int_equal(dn_conn_open_stream(c, T_SINK, raw_opened, &r1), 0);
    assert_int_equal(dn_conn_open_stream(c, T_SINK, raw_opened, &r2), 0);
    RUN_UNTIL(f, r1.closed && r2.closed, 5000);
    assert_int_equal(r1.close_status, DN_ERESET);
    assert_int_equal(r2.close_status, DN_ERESET);
    assert_int_equal(stats_of(f, B).refused_bad, 2);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(dn_conn_open_stream(c, T_SINK, raw_opened, &r3), 0);
    RUN_UNTIL(f, r3.closed, 5000);
    assert_int_equal(r3.close_status, DN_ERESET);
    assert_true(uv_now(&f->loop) - t0 >= 190);
    dn_messenger_stats st = stats_of(f, B);
    assert_int_equal(st.refused_bad, 3);
    assert_int_equal(st.inbound, 0);
    assert_int_equal(f->seen[B].calls, 0);
}

static void test_unknown_type(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    dn_conn *c = connect_to(f, A, B);
    assert_int_equal(
        dn_messenger_send(f->m[A], c, NULL, "/test/msg/nobody/1", "x", 1, 0, on_done, &f->ops[0]),
        0);
    assert_int_equal(dn_messenger_request(f->m[A], c, NULL, "/test/msg/nobody/1", "x", 1, 0,
                                          on_reply, &f->ops[1]),
                     0);
    RUN_UNTIL(f, f->ops[0].calls > 0 && f->ops[1].calls > 0, 5000);
    assert_int_equal(f->ops[0].status, DN_ENEGOTIATE);
    assert_int_equal(f->ops[1].status, DN_ENEGOTIATE);
    /* A type unhandled is refused again, in negotiation ("na"), as one
     * never served. */
    assert_int_equal(dn_messenger_unhandle(f->m[B], T_SINK), 0);
    assert_int_equal(dn_messenger_unhandle(f->m[B], T_SINK), DN_ENOTFOUND);
    assert_int_equal(dn_messenger_send(f->m[A], c, NULL, T_SINK, "x", 1, 0, on_done, &f->ops[2]),
                     0);
    RUN_UNTIL(f, f->ops[2].calls > 0, 5000);
    assert_int_equal(f->ops[2].status, DN_ENEGOTIATE);
    assert_int_equal(f->seen[B].calls, 0);
    /* And served again once handled again. */
    assert_int_equal(dn_messenger_handle(f->m[B], T_SINK, sink_handler, f), 0);
    assert_int_equal(dn_messenger_send(f->m[A], c, NULL, T_SINK, "y", 1, 0, on_done, &f->ops[3]),
                     0);
    RUN_UNTIL(f, f->ops[3].calls > 0, 5000);
    assert_int_equal(f->ops[3].status, 0);
    assert_int_equal(f->seen[B].calls, 1);
}

static void test_timeout_then_late_reply(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    dn_conn *c = connect_to(f, A, B);
    op_rec *r = &f->ops[0];
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(dn_messenger_request(f->m[A], c, NULL, T_HOLD, "q", 1, 200, on_reply, r), 0);
    RUN_UNTIL(f, r->calls > 0, 5000);
    assert_int_equal(r->status, DN_ETIMEOUT);
    assert_true(uv_now(&f->loop) - t0 >= 190);
    assert_int_equal(f->seen[B].nheld, 1);
    assert_int_equal(stats_of(f, B).inbound, 1);
    /* The requester reset its stream: a late reply finds it gone. */
    run_for(f, 100);
    assert_int_equal(dn_messenger_reply(f->seen[B].held[0], "late", 4), DN_ECLOSED);
    f->seen[B].nheld = 0;
    RUN_UNTIL(f, stats_of(f, B).inbound == 0, 5000);
    run_for(f, 20);
    assert_int_equal(r->calls, 1);
}

static void test_reply_later(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    dn_conn *c = connect_to(f, A, B);
    op_rec *r = &f->ops[0];
    assert_int_equal(dn_messenger_request(f->m[A], c, NULL, T_HOLD, "q?", 2, 0, on_reply, r), 0);
    RUN_UNTIL(f, f->seen[B].nheld == 1, 5000);
    run_for(f, 50);
    assert_int_equal(r->calls, 0); /* still waiting */
    assert_int_equal(stats_of(f, B).inbound, 1);
    assert_int_equal(dn_messenger_reply(f->seen[B].held[0], "answer", 6), 0);
    f->seen[B].nheld = 0;
    RUN_UNTIL(f, r->calls > 0, 5000);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->reply_len, 6);
    assert_memory_equal(r->reply, "answer", 6);
    assert_int_equal(stats_of(f, B).inbound, 0);
    /* A plain send to a deferring handler completes when it is discarded. */
    assert_int_equal(dn_messenger_send(f->m[A], c, NULL, T_HOLD, "s", 1, 0, on_done, &f->ops[1]),
                     0);
    RUN_UNTIL(f, f->seen[B].nheld == 1, 5000);
    run_for(f, 30);
    assert_int_equal(f->ops[1].calls, 0);
    dn_messenger_reply_discard(f->seen[B].held[0]);
    f->seen[B].nheld = 0;
    RUN_UNTIL(f, f->ops[1].calls > 0, 5000);
    assert_int_equal(f->ops[1].status, 0);
}

static void test_send_by_peer_id(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL);
    host_up(f, B, NULL);
    const dn_peerid *bid = dn_host_peerid(f->host[B]);
    /* Unknown addresses: the dial fails and says so. */
    assert_int_equal(dn_messenger_send(f->m[A], NULL, bid, T_SINK, "x", 1, 0, on_done, &f->ops[0]),
                     0);
    RUN_UNTIL(f, f->ops[0].calls > 0, 5000);
    assert_int_equal(f->ops[0].status, DN_ENOTFOUND);
    /* Once the peerstore knows them (the DHT's job later), it dials. */
    dn_multiaddr m;
    assert_true(dn_host_listen_addrs(f->host[B], &m, 1) >= 1);
    dn_peer_update u = {.set_addrs = true, .addrs = &m, .naddrs = 1};
    assert_int_equal(dn_host_peer_update(f->host[A], bid, &u), 0);
    assert_int_equal(
        dn_messenger_request(f->m[A], NULL, bid, T_ECHO, "12", 2, 0, on_reply, &f->ops[1]), 0);
    RUN_UNTIL(f, f->ops[1].calls > 0, 5000);
    assert_int_equal(f->ops[1].status, 0);
    assert_memory_equal(f->ops[1].reply, "21", 2);
    /* Neither or both of conn and peer id: refused. */
    assert_int_equal(dn_messenger_send(f->m[A], NULL, NULL, T_SINK, "x", 1, 0, on_done, &f->ops[2]),
                     DN_EINVAL);
}

/* A floods B's deferring handler; B's per-peer bound refuses A's extra
 * streams, and C's message still gets through. */
static void test_flood_does_not_starve(void **state)
{
    fx *f = *state;
    dn_messenger_config mc = DN_MESSENGER_CONFIG_INIT;
    mc.max_inbound_per_peer = 4;
    mc.max_inbound_total = 6;
    host_up(f, A, NULL);
    host_up(f, B, &mc);
    host_up(f, C, NULL);
    dn_conn *ab = connect_to(f, A, B);
    dn_conn *cb = connect_to(f, C, B);
    enum { FLOOD = 30 };
    for (int i = 0; i < FLOOD; i++)
        assert_int_equal(
            dn_messenger_send(f->m[A], ab, NULL, T_HOLD, "flood", 5, 0, on_done, &f->ops[i]), 0);
    RUN_UNTIL(f, stats_of(f, B).refused_busy == FLOOD - 4, 5000);
    RUN_UNTIL(f, count_status(f, FLOOD, DN_ERESET) == FLOOD - 4, 5000);
    assert_int_equal(f->seen[B].nheld, 4);
    /* C is another peer: its message is taken although A's share is full. */
    op_rec *rc = &f->ops[FLOOD];
    assert_int_equal(dn_messenger_request(f->m[C], cb, NULL, T_ECHO, "mine", 4, 0, on_reply, rc),
                     0);
    RUN_UNTIL(f, rc->calls > 0, 5000);
    assert_int_equal(rc->status, 0);
    assert_memory_equal(rc->reply, "enim", 4);
    assert_true(
        dn_peerid_equal(&f->seen[B].from[f->seen[B].calls - 1], dn_host_peerid(f->host[C])));
    /* Once B is done with A's messages, their senders complete, and A may send again. */
    for (int i = 0; i < f->seen[B].nheld; i++)
        dn_messenger_reply_discard(f->seen[B].held[i]);
    f->seen[B].nheld = 0;
    RUN_UNTIL(f, count_status(f, FLOOD, 0) == 4, 5000);
    assert_int_equal(stats_of(f, B).inbound, 0);
    assert_int_equal(
        dn_messenger_send(f->m[A], ab, NULL, T_SINK, "again", 5, 0, on_done, &f->ops[FLOOD + 1]),
        0);
    RUN_UNTIL(f, f->ops[FLOOD + 1].calls > 0, 5000);
    assert_int_equal(f->ops[FLOOD + 1].status, 0);
}

/* With the byte budget spent, the next message waits paused and is
 * delivered once the first gives its bytes back. Each message is larger
 * than yamux's 256 KiB window, so the second stream's header arrives while
 * the first is still coming in. */
static void test_byte_budget_pauses(void **state)
{
    fx *f = *state;
    dn_messenger_config mc = DN_MESSENGER_CONFIG_INIT;
    mc.max_inbound_bytes = 300 * 1024;
    host_up(f, A, NULL);
    host_up(f, B, &mc);
    dn_conn *c = connect_to(f, A, B);
    size_t n = 600 * 1024;
    uint8_t *p = pattern_buf(n);
    assert_int_equal(dn_messenger_send(f->m[A], c, NULL, T_HOLD, p, n, 0, on_done, &f->ops[0]), 0);
    assert_int_equal(dn_messenger_send(f->m[A], c, NULL, T_HOLD, p, n, 0, on_done, &f->ops[1]), 0);
    RUN_UNTIL(f, f->seen[B].nheld == 2, 5000);
    /* When the first was handed over, the second was waiting for bytes. */
    assert_int_equal(f->seen[B].waiting_at_call[0], 1);
    assert_int_equal(f->seen[B].waiting_at_call[1], 0);
    dn_messenger_stats st = stats_of(f, B);
    assert_int_equal(st.inbound, 2);       /* both still being processed */
    assert_int_equal(st.inbound_bytes, 0); /* their payloads returned */
    assert_int_equal(f->seen[B].last_len, n);
    assert_memory_equal(f->seen[B].last, p, n);
    for (int i = 0; i < 2; i++)
        dn_messenger_reply_discard(f->seen[B].held[i]);
    f->seen[B].nheld = 0;
    RUN_UNTIL(f, f->ops[0].calls && f->ops[1].calls, 5000);
    assert_int_equal(f->ops[0].status, 0);
    assert_int_equal(f->ops[1].status, 0);
    free(p);
}

/* ---- fixture ---- */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop))
        return -1;
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    uv_timer_init(&f->loop, &f->tick);
    for (int i = 0; i < NHOSTS; i++)
        if (dn_privkey_generate(DN_KEY_ED25519, &f->key[i]))
            return -1;
    *state = f;
    return 0;
}

static void on_host_closed(void *arg)
{
    (*(int *)arg)++;
}

static int teardown(void **state)
{
    fx *f = *state;
    /* Deferred replies a failed test left: finish them before the hosts go. */
    for (int i = 0; i < NHOSTS; i++)
        for (int j = 0; j < f->seen[i].nheld; j++)
            dn_messenger_reply_discard(f->seen[i].held[j]);
    for (int i = 0; i < NHOSTS; i++)
        if (f->host[i])
            dn_host_close(f->host[i], on_host_closed, &f->close_cbs[i]);
    watchdog_start(f, 5000);
    for (;;) {
        bool open = false;
        for (int i = 0; i < NHOSTS; i++)
            if (f->host[i] && f->close_cbs[i] == 0)
                open = true;
        if (!open || f->expired)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    watchdog_stop(f);
    int rc = 0;
    for (int i = 0; i < NHOSTS; i++)
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
    for (int i = 0; i < NHOSTS; i++) {
        dn_privkey_free(f->key[i]);
        free(f->seen[i].last);
    }
    for (int i = 0; i < MAX_OPS; i++)
        free(f->ops[i].reply);
    free(f);
    return rc;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_mib_plus_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_too_big_reset_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_late_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_by_peer_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood_does_not_starve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_budget_pauses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
