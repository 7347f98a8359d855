/* The host (src/host: host.c, conn.c, stream.c) through its public API:
 * listeners, dialing (reuse, joining a handshake, by peer id), close with
 * work still pending, identify and identify push, stream opens past
 * yamux's SYN backlog, receive backpressure, queue budgets (connection and
 * host), the limits per protocol, per peer, on negotiating streams and of
 * the peerstore, private networks, the handshake timeout and its slots.
 *
 * Two or three hosts share one libuv loop and talk over loopback TCP. The
 * loop only runs in RUN_UNTIL / run_for, each bounded by a watchdog timer,
 * so a hang between callbacks fails the test instead of the suite (a hang
 * inside one callback is left to ctest's timeout). Callbacks only record
 * what happened; the checks are made in the test bodies, so a failed check
 * never unwinds through libuv. The teardown closes every host, runs the
 * loop until they are gone and requires uv_loop_close to succeed: nothing
 * may be left on the loop (and ASan checks nothing is left in memory). */
#include <arpa/inet.h>
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
#include "dmsnet/protocols.h"

#define NHOSTS 3
#define A 0
#define B 1
#define C 2
#define TEST_PROTO "/test/1"
/* Writers send in chunks of this size (one "write size" of the budget). */
#define CHUNK (64u * 1024u)
/* yamux's initial per-stream window (yamux spec: 256 KiB). */
#define YAMUX_WINDOW (256u * 1024u)
#define MAX_TSTREAMS 1400

typedef struct fx fx;

/* What a host's observer saw. */
typedef struct observed {
    int opened, identified, closed, pushed;
    dn_conn *last_opened;
} observed;

/* One stream end, on either side, and what happened to it. */
typedef struct tstream {
    fx *f;
    dn_stream *s; /* NULL once on_close ran (the host frees it then) */
    bool server;
    int open_calls, open_status;
    size_t to_write, written; /* writer: the pattern from offset 0 */
    bool close_write_at_end;
    int write_error; /* a write failure other than DN_ELIMIT */
    int elimit;      /* writes refused with DN_ELIMIT */
    int writable;    /* on_writable calls */
    size_t received;
    bool pattern_bad;
    bool eof, data_after_eof;
    int close_calls, close_status;
} tstream;

struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog, tick;
    bool expired;
    uv_timer_t aux; /* a timer a test may use */
    bool aux_fired;
    /* Plain TCP sockets a test may use (a silent peer). */
    uv_tcp_t raw[3];
    bool raw_used[3];
    int raw_connect_status[3];
    bool raw_connected[3], raw_eof[3];
    dn_privkey *key[NHOSTS];
    dn_host *host[NHOSTS];
    int close_cbs[NHOSTS];
    observed obs[NHOSTS];
    /* The stream server (TEST_PROTO handler) on any host. */
    bool srv_pause; /* pause reading on every accepted stream */
    tstream *srv[MAX_TSTREAMS];
    size_t nsrv;
    /* Every tstream, freed in the teardown (after the hosts). */
    tstream *all[2 * MAX_TSTREAMS];
    size_t nall;
    /* Queue tracking for the budget test: the client streams to sum. */
    bool track_queue;
    tstream *cli[16];
    size_t ncli;
    size_t max_queued_sum;
};

static const char *const agents[NHOSTS] = {"hosttest-a/1", "hosttest-b/1", "hosttest-c/1"};

/* ---- running the loop, bounded ---- */

static void on_watchdog(uv_timer_t *t)
{
    fx *f = t->data;
    f->expired = true;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* The tick makes each uv_run(UV_RUN_ONCE) return within a few
 * milliseconds: a callback from a timer (a deferred dial result, say) runs
 * before the same turn's poll, which would otherwise block until the next
 * I/O before the condition is looked at again. */
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

/* Run the loop until expr holds; fail the test after ms milliseconds. */
#define RUN_UNTIL(f, expr, ms)                                                                     \
    do {                                                                                           \
        watchdog_start((f), (ms));                                                                 \
        while (!(expr) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        watchdog_stop(f);                                                                          \
        if (!(expr))                                                                               \
            fail_msg("timed out after %u ms waiting for: %s", (unsigned)(ms), #expr);              \
    } while (0)

/* Run the loop for ms milliseconds (to see that something does not happen). */
static void run_for(fx *f, uint64_t ms)
{
    watchdog_start(f, ms);
    while (!f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    watchdog_stop(f);
}

/* ---- stream ends ---- */

static tstream *ts_new(fx *f, bool server)
{
    assert_true(f->nall < 2 * MAX_TSTREAMS);
    tstream *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->f = f;
    t->server = server;
    f->all[f->nall++] = t;
    return t;
}

/* Bytes a stream end holds (0 once it is gone). */
static size_t held_of(const tstream *t)
{
    return t->s ? dn_stream_held(t->s) : 0;
}

static uint8_t pattern(size_t off)
{
    return (uint8_t)(off % 251u);
}

static size_t queued_sum(fx *f)
{
    size_t sum = 0;
    for (size_t i = 0; i < f->ncli; i++)
        if (f->cli[i]->s)
            sum += dn_stream_queued(f->cli[i]->s);
    return sum;
}

/* Write the rest of the pattern in CHUNK pieces until done or refused. */
static void ts_pump(tstream *t)
{
    static uint8_t chunk[CHUNK];
    while (t->s && t->written < t->to_write) {
        size_t n = t->to_write - t->written < CHUNK ? t->to_write - t->written : CHUNK;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(t->written + i);
        int rc = dn_stream_write(t->s, chunk, n);
        if (rc == DN_ELIMIT) {
            t->elimit++;
            return; /* on_writable follows */
        }
        if (rc) {
            t->write_error = rc;
            return;
        }
        t->written += n;
        if (t->f->track_queue) {
            size_t sum = queued_sum(t->f);
            if (sum > t->f->max_queued_sum)
                t->f->max_queued_sum = sum;
        }
    }
    if (t->s && t->to_write && t->written == t->to_write && t->close_write_at_end) {
        t->close_write_at_end = false;
        dn_stream_close_write(t->s);
    }
}

static void ts_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    tstream *t = arg;
    if (t->eof)
        t->data_after_eof = true;
    for (size_t i = 0; i < len; i++)
        if (data[i] != pattern(t->received + i))
            t->pattern_bad = true;
    t->received += len;
}

static void ts_eof(dn_stream *s, void *arg)
{
    tstream *t = arg;
    t->eof = true;
    /* The server ends its side at the client's EOF, so the stream closes. */
    if (t->server)
        dn_stream_close_write(s);
}

static void ts_writable(dn_stream *s, void *arg)
{
    tstream *t = arg;
    t->writable++;
    ts_pump(t);
}

static void ts_close(dn_stream *s, int status, void *arg)
{
    tstream *t = arg;
    t->close_calls++;
    t->close_status = status;
    t->s = NULL;
}

static const dn_stream_callbacks ts_cbs = {
    .on_data = ts_data, .on_eof = ts_eof, .on_writable = ts_writable, .on_close = ts_close};

/* TEST_PROTO: keep every stream open, record it, pause it if asked. */
static void sink_handler(dn_host *h, dn_stream *s, void *arg)
{
    fx *f = arg;
    tstream *t = ts_new(f, true);
    t->s = s;
    if (f->nsrv < MAX_TSTREAMS)
        f->srv[f->nsrv++] = t;
    dn_stream_set_callbacks(s, &ts_cbs, t);
    if (f->srv_pause)
        dn_stream_pause_read(s);
}

static void ts_opened(dn_stream *s, int status, void *arg)
{
    tstream *t = arg;
    t->open_calls++;
    t->open_status = status;
    if (!s)
        return;
    t->s = s;
    dn_stream_set_callbacks(s, &ts_cbs, t);
    ts_pump(t);
}

static tstream *open_ts(fx *f, dn_conn *c, const char *proto, size_t to_write)
{
    tstream *t = ts_new(f, false);
    t->to_write = to_write;
    t->close_write_at_end = to_write > 0;
    assert_int_equal(dn_conn_open_stream(c, proto, ts_opened, t), 0);
    return t;
}

/* ---- hosts ---- */

static void on_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    observed *o = arg;
    switch (ev) {
    case DN_CONN_EV_OPENED:
        o->opened++;
        o->last_opened = c;
        break;
    case DN_CONN_EV_IDENTIFIED: o->identified++; break;
    case DN_CONN_EV_CLOSED: o->closed++; break;
    case DN_CONN_EV_PUSHED: o->pushed++; break;
    default: break;
    }
}

static dn_multiaddr ma(const char *s)
{
    dn_multiaddr m;
    assert_int_equal(dn_multiaddr_parse(s, &m), 0);
    return m;
}

/* Create host i (cfg may be NULL), with an observer and the TEST_PROTO
 * sink; listen on an ephemeral loopback port when asked. */
static dn_host *host_up(fx *f, int i, dn_host_config *cfg, bool identify, bool listen)
{
    dn_host_config def = DN_HOST_CONFIG_INIT;
    if (!cfg)
        cfg = &def;
    cfg->identity = f->key[i];
    cfg->agent_version = agents[i];
    assert_int_equal(dn_host_new(&f->loop, cfg, &f->host[i]), 0);
    dn_host *h = f->host[i];
    assert_int_equal(dn_host_add_observer(h, on_event, &f->obs[i]), 0);
    if (identify)
        assert_int_equal(dn_identify_attach(h), 0);
    assert_int_equal(dn_host_set_handler(h, TEST_PROTO, sink_handler, f), 0);
    if (listen) {
        dn_multiaddr any = ma("/ip4/127.0.0.1/tcp/0");
        assert_int_equal(dn_host_listen(h, &any), 0);
    }
    return h;
}

/* Host i's first listen address, with /p2p/<id> when asked. */
static dn_multiaddr addr_of(fx *f, int i, bool p2p)
{
    dn_multiaddr m;
    assert_true(dn_host_listen_addrs(f->host[i], &m, 1) >= 1);
    if (p2p) {
        const dn_peerid *id = dn_host_peerid(f->host[i]);
        assert_int_equal(dn_multiaddr_append(&m, DN_MA_P2P, id->bytes, id->len), 0);
    }
    return m;
}

static void on_host_closed(void *arg)
{
    (*(int *)arg)++;
}

static void host_close(fx *f, int i)
{
    dn_host_close(f->host[i], on_host_closed, &f->close_cbs[i]);
    RUN_UNTIL(f, f->close_cbs[i] == 1, 5000);
    f->host[i] = NULL;
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

/* Dial host `to` from host `from` with its /p2p address; the connection. */
static dn_conn *connect_hosts(fx *f, int from, int to)
{
    dial_rec d = {0};
    dn_multiaddr m = addr_of(f, to, true);
    assert_int_equal(dn_host_dial(f->host[from], &m, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 5000);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_non_null(d.conn);
    assert_true(dn_peerid_equal(dn_conn_remote_peer(d.conn), dn_host_peerid(f->host[to])));
    return d.conn;
}

static const dn_peer_info *peer_find(fx *f, int at, int who)
{
    return dn_host_peer(f->host[at], dn_host_peerid(f->host[who]));
}

static const dn_peer_info *peer_of(fx *f, int at, int who)
{
    const dn_peer_info *p = peer_find(f, at, who);
    assert_non_null(p);
    return p;
}

static bool peer_has_addr(fx *f, int at, int who, const dn_multiaddr *m)
{
    const dn_peer_info *p = peer_find(f, at, who);
    for (size_t i = 0; p && i < p->naddrs; i++) {
        dn_multiaddr got;
        if (dn_peer_info_addr(p, i, &got) == 0 && got.len == m->len &&
            memcmp(got.bytes, m->bytes, m->len) == 0)
            return true;
    }
    return false;
}

static bool peer_has_protocol(fx *f, int at, int who, const char *proto)
{
    const dn_peer_info *p = peer_find(f, at, who);
    for (size_t i = 0; p && i < p->nprotocols; i++)
        if (strcmp(p->protocols[i], proto) == 0)
            return true;
    return false;
}

static void on_aux(uv_timer_t *t)
{
    fx *f = t->data;
    f->aux_fired = true;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        (*(int *)arg)++;
}

static int loop_handles(fx *f)
{
    int n = 0;
    uv_walk(&f->loop, count_handle, &n);
    return n;
}

/* ---- plain TCP peers that never speak ---- */

static int raw_index(fx *f, uv_handle_t *h)
{
    for (int i = 0; i < 3; i++)
        if ((uv_handle_t *)&f->raw[i] == h)
            return i;
    return -1;
}

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[4096];
    *buf = uv_buf_init(sink, sizeof sink);
}

static void raw_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    fx *f = st->data;
    if (nread < 0)
        f->raw_eof[raw_index(f, (uv_handle_t *)st)] = true;
}

static void raw_connected(uv_connect_t *req, int status)
{
    fx *f = req->handle->data;
    int i = raw_index(f, (uv_handle_t *)req->handle);
    f->raw_connect_status[i] = status;
    f->raw_connected[i] = true;
    if (status == 0)
        uv_read_start(req->handle, raw_alloc, raw_read);
    free(req);
}

/* Connect plain socket i to host h's first listen address; it reads (to
 * see the host close it) and never writes. */
static void raw_connect(fx *f, int i, int host)
{
    dn_multiaddr m = addr_of(f, host, false);
    char s[DN_MULTIADDR_STR_MAX];
    assert_true(dn_multiaddr_to_string(&m, s, sizeof s) > 0);
    unsigned port = 0;
    assert_int_equal(sscanf(s, "/ip4/127.0.0.1/tcp/%u", &port), 1);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", (int)port, &sin);
    assert_int_equal(uv_tcp_init(&f->loop, &f->raw[i]), 0);
    f->raw_used[i] = true;
    f->raw[i].data = f;
    uv_connect_t *req = malloc(sizeof *req);
    assert_non_null(req);
    assert_int_equal(uv_tcp_connect(req, &f->raw[i], (struct sockaddr *)&sin, raw_connected), 0);
}

static void raw_accept(uv_stream_t *server, int status)
{
    fx *f = server->data;
    if (status < 0 || f->raw_used[1])
        return;
    uv_tcp_init(&f->loop, &f->raw[1]);
    f->raw_used[1] = true;
    f->raw[1].data = f;
    if (uv_accept(server, (uv_stream_t *)&f->raw[1]) == 0)
        uv_read_start((uv_stream_t *)&f->raw[1], raw_alloc, raw_read);
}

/* A listener (raw[0]) that accepts one connection (raw[1]) and never
 * answers. Returns its address. */
static dn_multiaddr raw_listen(fx *f)
{
    assert_int_equal(uv_tcp_init(&f->loop, &f->raw[0]), 0);
    f->raw_used[0] = true;
    f->raw[0].data = f;
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&f->raw[0], (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->raw[0], 8, raw_accept), 0);
    int len = sizeof sin;
    assert_int_equal(uv_tcp_getsockname(&f->raw[0], (struct sockaddr *)&sin, &len), 0);
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", ntohs(sin.sin_port));
    return ma(s);
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
    uv_timer_init(&f->loop, &f->aux);
    f->aux.data = f;
    for (int i = 0; i < NHOSTS; i++)
        if (dn_privkey_generate(DN_KEY_ED25519, &f->key[i]))
            return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    /* Close what the test left open (all of it when a check failed). */
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
    for (int i = 0; i < NHOSTS; i++) {
        if (f->host[i] && f->close_cbs[i] != 1) {
            fprintf(stderr, "teardown: host %d closed %d times\n", i, f->close_cbs[i]);
            rc = -1;
        }
    }
    for (int i = 0; i < 3; i++)
        if (f->raw_used[i] && !uv_is_closing((uv_handle_t *)&f->raw[i]))
            uv_close((uv_handle_t *)&f->raw[i], NULL);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_close((uv_handle_t *)&f->aux, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&f->loop) != 0) {
        fprintf(stderr, "teardown: handles left on the loop\n");
        rc = -1;
    }
    for (size_t i = 0; i < f->nall; i++)
        free(f->all[i]);
    for (int i = 0; i < NHOSTS; i++)
        dn_privkey_free(f->key[i]);
    free(f);
    return rc;
}

/* ---- 1. listen ---- */

static void test_listen_in_use(void **state)
{
    fx *f = *state;
    dn_host *a = host_up(f, A, NULL, false, true);
    dn_multiaddr bound = addr_of(f, A, false);
    dn_multiaddr any = ma("/ip4/127.0.0.1/tcp/0");

    /* A timer that is due: if dn_host_listen ran the loop, it would fire. */
    uv_timer_start(&f->aux, on_aux, 0, 0);
    int rc = dn_host_listen(a, &bound);
    assert_false(f->aux_fired);
    assert_int_equal(rc, UV_EADDRINUSE); /* a libuv (negated errno) code */
    dn_multiaddr addrs[4];
    assert_int_equal(dn_host_listen_addrs(a, addrs, 4), 1);

    /* Another host cannot take it either. */
    dn_host *b = host_up(f, B, NULL, false, false);
    assert_int_equal(dn_host_listen(b, &bound), UV_EADDRINUSE);
    assert_int_equal(dn_host_listen_addrs(b, addrs, 4), 0);
    assert_false(f->aux_fired);

    /* The failed listener left the host usable. */
    assert_int_equal(dn_host_listen(a, &any), 0);
    assert_int_equal(dn_host_listen_addrs(a, addrs, 4), 2);
    assert_memory_equal(addrs[0].bytes, bound.bytes, bound.len);
    assert_int_equal(dn_host_listen(b, &any), 0);

    /* Close right away, with the failed listeners' close callbacks still
     * pending: the host waits for them (ASan: nothing leaks). */
    host_close(f, A);
    host_close(f, B);
    assert_true(f->aux_fired);
    assert_int_equal(f->close_cbs[A], 1);
    assert_int_equal(f->close_cbs[B], 1);
}

/* ---- 2. bad config ---- */

static void test_new_bad_config(void **state)
{
    fx *f = *state;
    int before = loop_handles(f);
    dn_host *h = NULL;
    dn_host_config cfg = DN_HOST_CONFIG_INIT; /* no identity */
    assert_int_equal(dn_host_new(&f->loop, &cfg, &h), DN_EINVAL);
    assert_null(h);
    cfg.identity = f->key[A];
    cfg.size = 0;
    assert_int_equal(dn_host_new(&f->loop, &cfg, &h), DN_EINVAL);
    assert_null(h);
    assert_int_equal(dn_host_new(&f->loop, NULL, &h), DN_EINVAL);
    assert_int_equal(dn_host_new(NULL, &cfg, &h), DN_EINVAL);
    assert_null(h);
    /* Nothing was put on the loop. */
    assert_int_equal(loop_handles(f), before);
    assert_false(uv_loop_alive(&f->loop));

    /* The same config with its size set works (and puts handles there). */
    cfg.size = sizeof cfg;
    assert_int_equal(dn_host_new(&f->loop, &cfg, &h), 0);
    assert_true(loop_handles(f) > before);
    f->host[A] = h;
    host_close(f, A);
    assert_int_equal(loop_handles(f), before);
}

/* ---- 3. close with pending work ---- */

typedef struct close_order {
    dial_rec *reuse, *joined;
    tstream *open;
    int reuse_calls_at_close, joined_calls_at_close, open_calls_at_close;
    int calls;
} close_order;

static void on_close_order(void *arg)
{
    close_order *o = arg;
    o->calls++;
    o->reuse_calls_at_close = o->reuse->calls;
    o->joined_calls_at_close = o->joined->calls;
    o->open_calls_at_close = o->open->open_calls;
}

static void test_close_with_pending_dial(void **state)
{
    fx *f = *state;
    dn_host *a = host_up(f, A, NULL, false, false);
    host_up(f, B, NULL, false, true);
    host_up(f, C, NULL, false, true);
    dn_conn *c = connect_hosts(f, A, B);

    /* A reuse of the open connection (result deferred to the loop), a dial
     * to C (still connecting, joined by a second dial) and a stream open
     * whose callback has not run: then close at once. */
    dial_rec reuse = {0}, toc = {0}, joined = {0};
    dn_multiaddr mb = addr_of(f, B, true), mc = addr_of(f, C, true);
    assert_int_equal(dn_host_dial(a, &mb, on_dial, &reuse), 0);
    assert_int_equal(dn_host_dial(a, &mc, on_dial, &toc), 0);
    assert_int_equal(dn_host_dial(a, &mc, on_dial, &joined), 0);
    tstream *t = open_ts(f, c, TEST_PROTO, 0);
    assert_int_equal(reuse.calls + toc.calls + joined.calls + t->open_calls, 0);

    close_order o = {.reuse = &reuse, .joined = &joined, .open = t};
    dn_host_close(a, on_close_order, &o);
    /* Nothing is called back from inside dn_host_close for the reuse. */
    assert_int_equal(reuse.calls, 0);
    RUN_UNTIL(f, o.calls > 0, 5000);
    f->host[A] = NULL;
    run_for(f, 20); /* anything late would show up here */

    assert_int_equal(o.calls, 1);
    assert_int_equal(reuse.calls, 1);
    assert_int_equal(reuse.status, DN_ECLOSED);
    assert_null(reuse.conn);
    assert_int_equal(toc.calls, 1);
    assert_int_equal(toc.status, DN_ECLOSED);
    assert_null(toc.conn);
    assert_int_equal(joined.calls, 1);
    assert_int_equal(joined.status, DN_ECLOSED);
    assert_int_equal(t->open_calls, 1);
    assert_int_equal(t->open_status, DN_ECLOSED);
    assert_int_equal(t->close_calls, 0); /* never handed out: no on_close */
    /* Pending callbacks run before the close callback. */
    assert_int_equal(o.reuse_calls_at_close, 1);
    assert_int_equal(o.joined_calls_at_close, 1);
    assert_int_equal(o.open_calls_at_close, 1);

    /* B sees the connection go. */
    RUN_UNTIL(f, f->obs[B].closed == 1, 5000);
}

/* ---- 4. a dial joins a handshake in progress ---- */

static void test_dial_joins_handshake(void **state)
{
    fx *f = *state;
    dn_host *a = host_up(f, A, NULL, false, false);
    host_up(f, B, NULL, false, true);
    dial_rec d1 = {0}, d2 = {0};
    dn_multiaddr mb = addr_of(f, B, true);
    assert_int_equal(dn_host_dial(a, &mb, on_dial, &d1), 0);
    assert_int_equal(dn_host_dial(a, &mb, on_dial, &d2), 0);
    assert_int_equal(d1.calls + d2.calls, 0);
    RUN_UNTIL(f, d1.calls && d2.calls, 5000);
    run_for(f, 30);
    assert_int_equal(d1.calls, 1);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d1.status, 0);
    assert_int_equal(d2.status, 0);
    assert_non_null(d1.conn);
    assert_ptr_equal(d1.conn, d2.conn);
    assert_int_equal(f->obs[A].opened, 1);
    assert_int_equal(f->obs[B].opened, 1);
    assert_int_equal(peer_of(f, B, A)->connections, 1);
    assert_int_equal(peer_of(f, A, B)->connections, 1);
}

/* ---- 5. dial by peer id ---- */

static void test_dial_peer(void **state)
{
    fx *f = *state;
    dn_host *a = host_up(f, A, NULL, false, false);
    host_up(f, B, NULL, false, true);
    dn_privkey *unknown_key;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &unknown_key), 0);
    dn_peerid unknown;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(unknown_key), &unknown), 0);
    dn_privkey_free(unknown_key);

    /* Nothing known about the peer. */
    dial_rec d = {0};
    assert_int_equal(dn_host_dial_peer(a, &unknown, on_dial, &d), 0);
    assert_int_equal(d.calls, 0);
    RUN_UNTIL(f, d.calls > 0, 2000);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, DN_ENOTFOUND);
    assert_null(d.conn);

    /* An address nobody listens on (a port we bound and let go), then B's. */
    uv_tcp_t probe;
    uv_tcp_init(&f->loop, &probe);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&probe, (struct sockaddr *)&sin, 0), 0);
    int len = sizeof sin;
    assert_int_equal(uv_tcp_getsockname(&probe, (struct sockaddr *)&sin, &len), 0);
    uv_close((uv_handle_t *)&probe, NULL);
    run_for(f, 1);
    char dead_s[64];
    snprintf(dead_s, sizeof dead_s, "/ip4/127.0.0.1/tcp/%u", ntohs(sin.sin_port));
    dn_multiaddr addrs[2] = {ma(dead_s), addr_of(f, B, false)};

    /* Only the dead address: every address failed. */
    dn_peer_update u = {.set_addrs = true, .addrs = addrs, .naddrs = 1};
    assert_int_equal(dn_host_peer_update(a, &unknown, &u), 0);
    d = (dial_rec){0};
    assert_int_equal(dn_host_dial_peer(a, &unknown, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 5000);
    run_for(f, 10);
    assert_int_equal(d.calls, 1);
    assert_true(d.status < 0);
    assert_null(d.conn);

    /* B's: the dead one first, then the one that answers. */
    const dn_peerid *idb = dn_host_peerid(f->host[B]);
    u.naddrs = 2;
    assert_int_equal(dn_host_peer_update(a, idb, &u), 0);
    d = (dial_rec){0};
    assert_int_equal(dn_host_dial_peer(a, idb, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 5000);
    run_for(f, 10);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_non_null(d.conn);
    assert_true(dn_peerid_equal(dn_conn_remote_peer(d.conn), idb));
    assert_true(dn_conn_is_outbound(d.conn));
    assert_int_equal(f->obs[B].opened, 1);

    /* Again: the open connection is reused, through the loop. */
    dial_rec again = {0};
    assert_int_equal(dn_host_dial_peer(a, idb, on_dial, &again), 0);
    assert_int_equal(again.calls, 0);
    RUN_UNTIL(f, again.calls > 0, 2000);
    assert_int_equal(again.status, 0);
    assert_ptr_equal(again.conn, d.conn);
    assert_int_equal(f->obs[B].opened, 1);

    /* Ourselves: refused at once. */
    assert_int_equal(dn_host_dial_peer(a, dn_host_peerid(a), on_dial, &again), DN_EPEERID);
}

/* ---- 5b. dial by peer id through a peer router ---- */

typedef struct router_rec {
    fx *f;
    int calls;
    dn_peerid asked;
    dn_multiaddr addr; /* what the router "finds" */
    int answer;        /* status it answers with */
    dn_peer_found_fn found;
    void *ctx;
    bool hold; /* keep the request: answered later by the test */
} router_rec;

static void test_router(void *arg, dn_host *h, const dn_peerid *peer, dn_peer_found_fn found,
                        void *ctx)
{
    router_rec *r = arg;
    r->calls++;
    r->asked = *peer;
    r->found = found;
    r->ctx = ctx;
    if (r->hold)
        return;
    if (r->answer == 0) {
        dn_peer_update u = {.set_addrs = true, .addrs = &r->addr, .naddrs = 1};
        assert_int_equal(dn_host_peer_update(h, peer, &u), 0);
    }
    found(h, peer, r->answer, ctx);
}

static void test_dial_peer_router(void **state)
{
    fx *f = *state;
    dn_host *a = host_up(f, A, NULL, false, false);
    host_up(f, B, NULL, false, true);
    const dn_peerid *idb = dn_host_peerid(f->host[B]);
    router_rec r = {.f = f, .answer = DN_ENOTFOUND};
    assert_int_equal(dn_host_set_peer_router(a, test_router, &r), 0);

    /* The router does not know the peer: its status ends the dial. */
    dial_rec d = {0};
    assert_int_equal(dn_host_dial_peer(a, idb, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 2000);
    assert_int_equal(r.calls, 1);
    assert_true(dn_peerid_equal(&r.asked, idb));
    assert_int_equal(d.status, DN_ENOTFOUND);

    /* It finds B's address: the dial goes there. */
    r.answer = 0;
    r.addr = addr_of(f, B, false);
    d = (dial_rec){0};
    assert_int_equal(dn_host_dial_peer(a, idb, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 5000);
    assert_int_equal(r.calls, 2);
    assert_int_equal(d.status, 0);
    assert_non_null(d.conn);
    assert_true(dn_peerid_equal(dn_conn_remote_peer(d.conn), idb));

    /* Known addresses now (and a connection): the router is not asked. */
    dial_rec again = {0};
    assert_int_equal(dn_host_dial_peer(a, idb, on_dial, &again), 0);
    RUN_UNTIL(f, again.calls > 0, 2000);
    assert_int_equal(r.calls, 2);
    assert_int_equal(again.status, 0);

    /* A lookup still running when the host closes: the dial gets
     * DN_ECLOSED, the router's late answer only frees. */
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
    dn_peerid other;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &other), 0);
    dn_privkey_free(k);
    r.hold = true;
    dial_rec late = {0};
    assert_int_equal(dn_host_dial_peer(a, &other, on_dial, &late), 0);
    assert_int_equal(r.calls, 3);
    dn_host_close(a, on_host_closed, &f->close_cbs[A]);
    RUN_UNTIL(f, late.calls > 0 && f->close_cbs[A] == 1, 2000);
    f->host[A] = NULL;
    assert_int_equal(late.status, DN_ECLOSED);
    r.found(NULL, &other, 0, r.ctx); /* after the free: only frees its wait */
    assert_int_equal(late.calls, 1);
}

/* ---- 6. identify and identify push ---- */

static void test_identify_and_push(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, true, true);
    dn_host *b = host_up(f, B, NULL, true, true);
    dn_multiaddr a1 = addr_of(f, A, false), b1 = addr_of(f, B, false);
    connect_hosts(f, A, B);
    RUN_UNTIL(f, f->obs[A].identified == 1 && f->obs[B].identified == 1, 5000);

    const dn_peer_info *p = peer_of(f, A, B);
    assert_non_null(p);
    assert_true(p->identified);
    assert_non_null(p->public_key);
    assert_string_equal(p->agent_version, agents[B]);
    assert_string_equal(p->protocol_version, "ipfs/0.1.0");
    assert_true(peer_has_protocol(f, A, B, DN_IDENTIFY_PROTOCOL));
    assert_true(peer_has_protocol(f, A, B, DN_IDENTIFY_PUSH_PROTOCOL));
    assert_true(peer_has_protocol(f, A, B, TEST_PROTO));
    assert_int_equal(p->naddrs, 1);
    assert_true(peer_has_addr(f, A, B, &b1));
    /* B told A how it sees A: from loopback. */
    dn_multiaddr seen;
    char s[DN_MULTIADDR_STR_MAX];
    assert_int_equal(dn_peer_info_observed(p, &seen), 0);
    assert_true(dn_multiaddr_to_string(&seen, s, sizeof s) > 0);
    assert_memory_equal(s, "/ip4/127.0.0.1/tcp/", 19);

    const dn_peer_info *q = peer_of(f, B, A);
    assert_non_null(q);
    assert_true(q->identified);
    assert_string_equal(q->agent_version, agents[A]);
    assert_int_equal(q->naddrs, 1);
    assert_true(peer_has_addr(f, B, A, &a1));

    /* Push: B listens on a second address; A learns it without asking. */
    dn_multiaddr any = ma("/ip4/127.0.0.1/tcp/0");
    assert_int_equal(dn_host_listen(b, &any), 0);
    dn_multiaddr bl[2];
    assert_int_equal(dn_host_listen_addrs(b, bl, 2), 2);
    RUN_UNTIL(f, peer_has_addr(f, A, B, &bl[1]), 5000);
    assert_int_equal(peer_of(f, A, B)->naddrs, 2);
    assert_true(peer_has_addr(f, A, B, &b1));

    /* Each push is reported (services look at the peer's protocols again). */
    RUN_UNTIL(f, f->obs[A].pushed >= 1, 2000);

    /* Push of a protocol change too. */
    int pushes = f->obs[A].pushed;
    assert_int_equal(dn_host_set_handler(b, "/test/pushed", sink_handler, f), 0);
    RUN_UNTIL(f, peer_has_protocol(f, A, B, "/test/pushed"), 5000);
    RUN_UNTIL(f, f->obs[A].pushed > pushes, 2000);
    assert_int_equal(dn_host_remove_handler(b, "/test/pushed"), 0);
    RUN_UNTIL(f, !peer_has_protocol(f, A, B, "/test/pushed"), 5000);
    assert_true(peer_has_protocol(f, A, B, TEST_PROTO));
    /* Pushes are not identifications of new connections. */
    assert_int_equal(f->obs[A].identified, 1);
    assert_int_equal(f->obs[B].identified, 1);
}

/* ---- 7. opens wait for room in yamux's backlog ---- */

#define MANY 600

static bool all_opened(tstream **ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ts[i]->open_calls == 0)
            return false;
    return true;
}

static void test_many_opens(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, false, false);
    host_up(f, B, NULL, false, true);
    dn_conn *c = connect_hosts(f, A, B);
    static tstream *ts[MANY];
    for (size_t i = 0; i < MANY; i++)
        ts[i] = open_ts(f, c, TEST_PROTO, 0);
    RUN_UNTIL(f, all_opened(ts, MANY) && f->nsrv == MANY, 10000);
    run_for(f, 20);
    for (size_t i = 0; i < MANY; i++) {
        assert_int_equal(ts[i]->open_calls, 1);
        assert_int_equal(ts[i]->open_status, 0);
        assert_non_null(ts[i]->s);
        assert_int_equal(ts[i]->close_calls, 0);
    }
    assert_int_equal(f->nsrv, MANY);
    for (size_t i = 0; i < f->nsrv; i++)
        assert_int_equal(f->srv[i]->close_calls, 0);
    assert_int_equal(peer_of(f, B, A)->streams, MANY);
    assert_int_equal(peer_of(f, A, B)->streams, MANY);
}

/* ---- 8. receive backpressure ---- */

static void test_receive_backpressure(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, false, false);
    host_up(f, B, NULL, false, true);
    dn_conn *c = connect_hosts(f, A, B);
    f->srv_pause = true;

    /* A small stream ended while paused: data and EOF are both held. */
    tstream *small = open_ts(f, c, TEST_PROTO, 1000);
    RUN_UNTIL(f, f->nsrv == 1 && held_of(f->srv[0]) == 1000, 3000);
    tstream *ss = f->srv[0];
    run_for(f, 30);
    assert_non_null(ss->s);
    assert_int_equal(dn_stream_held(ss->s), 1000);
    assert_int_equal(ss->received, 0);
    assert_false(ss->eof);
    dn_stream_resume_read(ss->s);
    assert_int_equal(ss->received, 0); /* delivered from the loop, not from here */
    RUN_UNTIL(f, small->close_calls == 1, 3000);
    assert_int_equal(ss->received, 1000);
    assert_false(ss->pattern_bad);
    assert_true(ss->eof);
    assert_false(ss->data_after_eof);
    assert_int_equal(small->close_status, 0);

    /* 2 MiB against a paused reader: it holds at most the window. */
    const size_t total = 2u << 20;
    tstream *big = open_ts(f, c, TEST_PROTO, total);
    RUN_UNTIL(f, f->nsrv == 2 && held_of(f->srv[1]) >= YAMUX_WINDOW - 1024, 3000);
    tstream *bs = f->srv[1];
    run_for(f, 100);
    assert_non_null(bs->s);
    assert_non_null(big->s);
    size_t held = dn_stream_held(bs->s);
    assert_true(held >= YAMUX_WINDOW - 1024);
    assert_true(held <= YAMUX_WINDOW + CHUNK);
    assert_int_equal(bs->received, 0);
    assert_int_equal(big->written, total); /* under the stream's queue limit */
    assert_int_equal(big->write_error, 0);
    assert_true(dn_stream_queued(big->s) >= total - YAMUX_WINDOW - CHUNK);
    assert_true(dn_stream_queued(big->s) + held <= total + 1024);

    dn_stream_resume_read(bs->s);
    assert_int_equal(bs->received, 0);
    RUN_UNTIL(f, big->close_calls == 1 && bs->close_calls == 1, 5000);
    assert_int_equal(bs->received, total);
    assert_false(bs->pattern_bad);
    assert_true(bs->eof);
    assert_false(bs->data_after_eof);
    assert_int_equal(big->close_status, 0);
    assert_int_equal(bs->close_status, 0);
}

/* ---- 9. the connection's queue budget ---- */

#define BUDGET_STREAMS 4

static bool all_eof(fx *f, size_t n)
{
    if (f->nsrv < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!f->srv[i]->eof || f->srv[i]->close_calls == 0)
            return false;
    return true;
}

static void test_queue_budget(void **state)
{
    fx *f = *state;
    const size_t budget = 1u << 20, each = 1u << 20;
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.conn_queue_budget = budget;
    host_up(f, A, &cfg, false, false);
    host_up(f, B, NULL, false, true);
    dn_conn *c = connect_hosts(f, A, B);
    f->srv_pause = true;
    f->track_queue = true;
    for (size_t i = 0; i < BUDGET_STREAMS; i++)
        f->cli[f->ncli++] = open_ts(f, c, TEST_PROTO, each);

    int refused = 0;
    RUN_UNTIL(f, f->nsrv == BUDGET_STREAMS, 3000);
    run_for(f, 100);
    size_t written = 0;
    for (size_t i = 0; i < BUDGET_STREAMS; i++) {
        refused += f->cli[i]->elimit;
        written += f->cli[i]->written;
        assert_int_equal(f->cli[i]->write_error, 0);
    }
    assert_true(refused > 0);
    assert_true(written < BUDGET_STREAMS * each);
    assert_true(f->max_queued_sum < budget + CHUNK);
    assert_true(queued_sum(f) < budget + CHUNK);

    for (size_t i = 0; i < BUDGET_STREAMS; i++) {
        assert_non_null(f->srv[i]->s);
        dn_stream_resume_read(f->srv[i]->s);
    }
    RUN_UNTIL(f, all_eof(f, BUDGET_STREAMS), 5000);
    for (size_t i = 0; i < BUDGET_STREAMS; i++) {
        tstream *t = f->cli[i];
        assert_int_equal(t->written, each);
        if (t->elimit)
            assert_true(t->writable > 0);
        assert_int_equal(f->srv[i]->received, each);
        assert_false(f->srv[i]->pattern_bad);
        assert_false(f->srv[i]->data_after_eof);
    }
    assert_true(f->max_queued_sum < budget + CHUNK);
}

/* ---- 10. streams per protocol ---- */

static int count_closed(tstream **ts, size_t n, int *status)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ts[i]->close_calls) {
            k++;
            *status = ts[i]->close_status;
        }
    }
    return k;
}

static void test_protocol_limit(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, false, false);
    dn_host *b = host_up(f, B, NULL, false, true);
    assert_int_equal(dn_host_set_protocol_limit(b, "/not/served", 2), DN_ENOTFOUND);
    assert_int_equal(dn_host_set_protocol_limit(b, TEST_PROTO, 2), 0);
    dn_conn *c = connect_hosts(f, A, B);
    tstream *ts[4];
    for (int i = 0; i < 3; i++)
        ts[i] = open_ts(f, c, TEST_PROTO, 0);
    int status = 0;
    RUN_UNTIL(f, f->nsrv == 2 && count_closed(ts, 3, &status) == 1, 3000);
    run_for(f, 50);
    assert_int_equal(f->nsrv, 2);
    assert_int_equal(count_closed(ts, 3, &status), 1);
    /* The handler agreed the protocol, then the limit reset the stream
     * before the agreement went out: the opener sees a plain reset. */
    assert_int_equal(status, DN_ERESET);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ts[i]->open_status, 0); /* lazy selection */

    /* A stream that ends frees its place. Resetting reports DN_ERESET to
     * both ends. */
    assert_non_null(f->srv[0]->s);
    dn_stream_reset(f->srv[0]->s);
    assert_int_equal(f->srv[0]->close_calls, 1);
    assert_int_equal(f->srv[0]->close_status, DN_ERESET);
    RUN_UNTIL(f, count_closed(ts, 3, &status) == 2, 3000);
    assert_int_equal(status, DN_ERESET);
    ts[3] = open_ts(f, c, TEST_PROTO, 0);
    RUN_UNTIL(f, f->nsrv == 3, 3000);
    run_for(f, 50);
    assert_int_equal(ts[3]->close_calls, 0);
    assert_int_equal(f->srv[2]->close_calls, 0);
}

/* ---- 11. connections per peer ---- */

static void test_conns_per_peer(void **state)
{
    fx *f = *state;
    dn_host *a = host_up(f, A, NULL, false, false);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.max_conns_per_peer = 1;
    host_up(f, B, &cfg, false, true);
    /* Without /p2p nothing is reused: two connections are attempted. */
    dn_multiaddr mb = addr_of(f, B, false);
    dial_rec d1 = {0}, d2 = {0};
    assert_int_equal(dn_host_dial(a, &mb, on_dial, &d1), 0);
    assert_int_equal(dn_host_dial(a, &mb, on_dial, &d2), 0);
    RUN_UNTIL(f, d1.calls && d2.calls, 5000);
    /* A finishes its side of both handshakes before B decides; B then
     * refuses the second and A sees it close. */
    RUN_UNTIL(f, f->obs[A].closed + (d1.status != 0) + (d2.status != 0) >= 1, 5000);
    run_for(f, 50);
    assert_int_equal(d1.calls, 1);
    assert_int_equal(d2.calls, 1);
    assert_true(d1.status == 0 || d2.status == 0);
    assert_int_equal(f->obs[B].opened, 1);
    assert_int_equal(f->obs[B].closed, 0);
    assert_int_equal(peer_of(f, B, A)->connections, 1);
    assert_int_equal(peer_of(f, A, B)->connections, 1);

    /* A third attempt is refused as well; the first stays up. */
    dial_rec d3 = {0};
    assert_int_equal(dn_host_dial(a, &mb, on_dial, &d3), 0);
    int closed_before = f->obs[A].closed;
    RUN_UNTIL(f, d3.calls == 1 && (d3.status != 0 || f->obs[A].closed > closed_before), 5000);
    run_for(f, 20);
    assert_int_equal(f->obs[B].opened, 1);
    assert_int_equal(peer_of(f, B, A)->connections, 1);
}

/* ---- 12. peerstore bounds ---- */

static void test_peerstore_bounds(void **state)
{
    fx *f = *state;
    dn_host *a = host_up(f, A, NULL, false, false);
    dn_peerid idc;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(f->key[C]), &idc), 0);
    static dn_multiaddr addrs[100];
    for (int i = 0; i < 100; i++) {
        char s[64];
        snprintf(s, sizeof s, "/ip4/10.0.%d.%d/tcp/%d", i / 8, i % 8 + 1, 4001 + i);
        addrs[i] = ma(s);
    }
    static char names[300][16];
    const char *protos[300];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof names[i], "/p/%d", i);
        protos[i] = names[i];
    }
    char agent[1001];
    for (int i = 0; i < 1000; i++)
        agent[i] = (char)('a' + i % 26);
    agent[1000] = 0;
    dn_peer_update u = {.public_key = dn_privkey_public(f->key[C]),
                        .agent_version = agent,
                        .protocol_version = agent,
                        .set_protocols = true,
                        .protocols = protos,
                        .nprotocols = 300,
                        .set_addrs = true,
                        .addrs = addrs,
                        .naddrs = 100};
    assert_int_equal(dn_host_peer_update(a, &idc, &u), 0);
    const dn_peer_info *p = dn_host_peer(a, &idc);
    assert_non_null(p);
    assert_true(dn_peerid_equal(&p->id, &idc));
    assert_non_null(p->public_key);
    assert_true(dn_pubkey_equal(p->public_key, dn_privkey_public(f->key[C])));
    assert_false(p->identified);
    assert_int_equal(p->naddrs, 32);
    for (size_t i = 0; i < 32; i++) {
        dn_multiaddr got;
        assert_int_equal(dn_peer_info_addr(p, i, &got), 0);
        assert_int_equal(got.len, addrs[i].len);
        assert_memory_equal(got.bytes, addrs[i].bytes, got.len);
    }
    dn_multiaddr none;
    assert_int_equal(dn_peer_info_addr(p, 32, &none), DN_ENOTFOUND);
    assert_int_equal(dn_peer_info_observed(p, &none), DN_ENOTFOUND);
    assert_int_equal(p->nprotocols, 128);
    for (size_t i = 0; i < 128; i++)
        assert_string_equal(p->protocols[i], names[i]);
    assert_int_equal(strlen(p->agent_version), 255);
    assert_memory_equal(p->agent_version, agent, 255);
    assert_int_equal(strlen(p->protocol_version), 255);

    /* Fields left out keep their value; a key that is not the peer's is
     * refused. */
    dn_peer_update v = {.agent_version = "short", .identified = true};
    assert_int_equal(dn_host_peer_update(a, &idc, &v), 0);
    p = dn_host_peer(a, &idc);
    assert_string_equal(p->agent_version, "short");
    assert_true(p->identified);
    assert_int_equal(p->naddrs, 32);
    assert_int_equal(p->nprotocols, 128);
    dn_peerid idb;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(f->key[B]), &idb), 0);
    dn_peer_update w = {.public_key = dn_privkey_public(f->key[C])};
    assert_int_equal(dn_host_peer_update(a, &idb, &w), DN_EPEERID);
    /* A protocol name longer than the bound is not stored (a cut name
     * would be another protocol); the others are. */
    char longname[1001];
    memset(longname, 'x', 1000);
    longname[0] = '/';
    longname[1000] = 0;
    const char *mixed[3] = {"/ok/1", longname, "/ok/2"};
    dn_peer_update m = {.set_protocols = true, .protocols = mixed, .nprotocols = 3};
    assert_int_equal(dn_host_peer_update(a, &idc, &m), 0);
    p = dn_host_peer(a, &idc);
    assert_int_equal(p->nprotocols, 2);
    assert_string_equal(p->protocols[0], "/ok/1");
    assert_string_equal(p->protocols[1], "/ok/2");
    /* Emptying the lists. */
    dn_peer_update e = {.set_protocols = true, .set_addrs = true};
    assert_int_equal(dn_host_peer_update(a, &idc, &e), 0);
    p = dn_host_peer(a, &idc);
    assert_int_equal(p->naddrs, 0);
    assert_int_equal(p->nprotocols, 0);
    assert_int_equal(dn_peer_info_addr(p, 0, &none), DN_ENOTFOUND);
}

/* ---- 13. the host-wide bound on streams negotiating ---- */

static void test_negotiating_total(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, false, false);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.max_negotiating_total = 1;
    host_up(f, B, &cfg, false, true);
    dn_conn *c = connect_hosts(f, A, B);
    /* Both SYNs reach B ahead of either proposal (the muxer's frames go
     * out before stream data), so the second finds the first still
     * negotiating: the oldest is reset to make room. */
    tstream *t1 = open_ts(f, c, TEST_PROTO, 0), *t2 = open_ts(f, c, TEST_PROTO, 0);
    RUN_UNTIL(f, f->nsrv == 1 && t1->close_calls + t2->close_calls == 1, 3000);
    run_for(f, 30);
    assert_int_equal(f->nsrv, 1);
    assert_int_equal(t1->close_calls, 1);
    assert_int_equal(t1->close_status, DN_ERESET);
    assert_int_equal(t2->close_calls, 0);
    assert_int_equal(f->srv[0]->close_calls, 0);
    /* Streams opened one after another all pass. */
    tstream *t3 = open_ts(f, c, TEST_PROTO, 0);
    RUN_UNTIL(f, f->nsrv == 2, 3000);
    assert_int_equal(t3->close_calls, 0);
}

/* ---- 14. close with streams in every state ---- */

static void test_close_busy(void **state)
{
    fx *f = *state;
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.conn_queue_budget = 1u << 20;
    dn_host *a = host_up(f, A, &cfg, false, false);
    host_up(f, B, NULL, false, true);
    dn_conn *c = connect_hosts(f, A, B);
    f->srv_pause = true;
    /* Streams with bytes held by B, queued at A, and refused for the
     * budget... */
    tstream *w[BUDGET_STREAMS];
    for (size_t i = 0; i < BUDGET_STREAMS; i++)
        w[i] = open_ts(f, c, TEST_PROTO, 1u << 20);
    RUN_UNTIL(f, f->nsrv == BUDGET_STREAMS && held_of(f->srv[0]) > 0, 3000);
    run_for(f, 30);
    int refused = 0;
    for (size_t i = 0; i < BUDGET_STREAMS; i++)
        refused += w[i]->elimit;
    assert_true(refused > 0);
    /* ...then opens past the SYN backlog, and close at once. */
    static tstream *o[MANY];
    for (size_t i = 0; i < MANY; i++)
        o[i] = open_ts(f, c, TEST_PROTO, 0);
    dn_host_close(a, on_host_closed, &f->close_cbs[A]);
    RUN_UNTIL(f, f->close_cbs[A] == 1, 5000);
    f->host[A] = NULL;
    RUN_UNTIL(f, f->obs[B].closed == 1, 5000);
    run_for(f, 20);
    for (size_t i = 0; i < MANY; i++) {
        assert_int_equal(o[i]->open_calls, 1);
        assert_int_equal(o[i]->open_status, DN_ECLOSED);
        assert_int_equal(o[i]->close_calls, 0);
    }
    for (size_t i = 0; i < BUDGET_STREAMS; i++) {
        assert_int_equal(w[i]->open_calls, 1);
        assert_int_equal(w[i]->close_calls, 1);
        assert_int_equal(w[i]->close_status, DN_ECLOSED);
        assert_int_equal(f->srv[i]->close_calls, 1);
        assert_true(f->srv[i]->close_status < 0); /* the connection went, not an orderly end */
    }
    assert_int_equal(f->close_cbs[A], 1);
}

/* ---- 15. the host's queue budget, over several connections ---- */

static void test_node_budget(void **state)
{
    fx *f = *state;
    const size_t budget = 1u << 20, each = 1u << 20;
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.node_queue_budget = budget;
    host_up(f, A, &cfg, false, false);
    host_up(f, B, NULL, false, true);
    host_up(f, C, NULL, false, true);
    dn_conn *cb = connect_hosts(f, A, B), *cc = connect_hosts(f, A, C);
    f->srv_pause = true;
    f->track_queue = true;
    for (size_t i = 0; i < BUDGET_STREAMS; i++)
        f->cli[f->ncli++] = open_ts(f, i % 2 ? cc : cb, TEST_PROTO, each);
    RUN_UNTIL(f, f->nsrv == BUDGET_STREAMS, 3000);
    run_for(f, 100);
    int refused = 0;
    for (size_t i = 0; i < BUDGET_STREAMS; i++)
        refused += f->cli[i]->elimit;
    assert_true(refused > 0);
    assert_true(f->max_queued_sum < budget + CHUNK);
    for (size_t i = 0; i < BUDGET_STREAMS; i++) {
        assert_non_null(f->srv[i]->s);
        dn_stream_resume_read(f->srv[i]->s);
    }
    RUN_UNTIL(f, all_eof(f, BUDGET_STREAMS), 5000);
    /* (The servers' order is not the clients': two hosts accept them.) */
    for (size_t i = 0; i < BUDGET_STREAMS; i++) {
        assert_int_equal(f->cli[i]->written, each);
        assert_int_equal(f->cli[i]->write_error, 0);
        if (f->cli[i]->elimit)
            assert_true(f->cli[i]->writable > 0);
        assert_int_equal(f->srv[i]->received, each);
        assert_false(f->srv[i]->pattern_bad);
        assert_false(f->srv[i]->data_after_eof);
    }
    assert_true(f->max_queued_sum < budget + CHUNK);
}

/* ---- 16. private networks ---- */

static void test_pnet(void **state)
{
    fx *f = *state;
    uint8_t psk[32], other[32];
    for (int i = 0; i < 32; i++) {
        psk[i] = (uint8_t)(i * 7 + 1);
        other[i] = (uint8_t)(i * 7 + 2);
    }
    dn_host_config ca = DN_HOST_CONFIG_INIT, cb = DN_HOST_CONFIG_INIT, cc = DN_HOST_CONFIG_INIT;
    ca.psk = psk;
    cb.psk = psk;
    cc.psk = other;
    dn_host *a = host_up(f, A, &ca, false, false);
    host_up(f, B, &cb, false, true);
    host_up(f, C, &cc, false, true);
    memset(psk, 0, sizeof psk); /* the hosts keep copies */
    dn_conn *c = connect_hosts(f, A, B);
    tstream *t = open_ts(f, c, TEST_PROTO, 300000);
    RUN_UNTIL(f, t->close_calls == 1, 5000);
    assert_int_equal(t->close_status, 0);
    assert_int_equal(f->srv[0]->received, 300000);
    assert_false(f->srv[0]->pattern_bad);

    /* Another swarm key: the first bytes inside do not decrypt to the
     * multistream header, and the dial fails long before the timeout. */
    dial_rec d = {0};
    dn_multiaddr mc = addr_of(f, C, true);
    assert_int_equal(dn_host_dial(a, &mc, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 2000);
    assert_int_equal(d.calls, 1);
    assert_true(d.status < 0);
    assert_int_equal(f->obs[C].opened, 0);
}

/* ---- 17. unknown and removed protocols ---- */

static void test_protocol_refused(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, false, false);
    dn_host *b = host_up(f, B, NULL, false, true);
    dn_conn *c = connect_hosts(f, A, B);
    const char *list[8];
    assert_int_equal(dn_host_protocols(b, list, 8), 1);
    assert_string_equal(list[0], TEST_PROTO);

    tstream *u = open_ts(f, c, "/not/served", 100);
    RUN_UNTIL(f, u->close_calls == 1, 3000);
    assert_int_equal(u->open_status, 0); /* lazy selection */
    assert_int_equal(u->close_status, DN_ENEGOTIATE);

    assert_int_equal(dn_host_remove_handler(b, "/not/served"), DN_ENOTFOUND);
    assert_int_equal(dn_host_remove_handler(b, TEST_PROTO), 0);
    assert_int_equal(dn_host_protocols(b, list, 8), 0);
    tstream *r = open_ts(f, c, TEST_PROTO, 100);
    RUN_UNTIL(f, r->close_calls == 1, 3000);
    assert_int_equal(f->nsrv, 0);
    /* A removed protocol is refused in negotiation ("na"), as one never
     * served: the opener can tell "not spoken here" from a reset. */
    assert_int_equal(r->close_status, DN_ENEGOTIATE);

    /* Served again. */
    assert_int_equal(dn_host_set_handler(b, TEST_PROTO, sink_handler, f), 0);
    assert_int_equal(dn_host_protocols(b, list, 8), 1);
    tstream *g = open_ts(f, c, TEST_PROTO, 100);
    RUN_UNTIL(f, f->nsrv == 1 && f->srv[0]->received == 100, 3000);
    assert_int_equal(g->close_calls, 0);
    /* Arguments. */
    assert_int_equal(dn_conn_open_stream(c, "", ts_opened, g), DN_EINVAL);
    assert_int_equal(dn_conn_open_stream(c, TEST_PROTO, NULL, g), DN_EINVAL);
    assert_int_equal(dn_host_set_handler(b, "", sink_handler, f), DN_EINVAL);
}

/* ---- 18. handshakes: the timeout, and slots for them ---- */

static void test_handshake_timeout(void **state)
{
    fx *f = *state;
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.handshake_timeout_ms = 150;
    dn_host *a = host_up(f, A, &cfg, false, false);
    dn_multiaddr silent = raw_listen(f);
    dial_rec d = {0};
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(dn_host_dial(a, &silent, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0, 3000);
    uint64_t took = uv_now(&f->loop) - t0;
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, DN_ETIMEOUT);
    assert_null(d.conn);
    assert_true(took >= 140 && took < 2000);
    /* The silent side sees the socket closed. */
    RUN_UNTIL(f, f->raw_eof[1], 2000);
}

static void test_handshake_slots(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, false, false);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.max_handshakes = 1;
    host_up(f, B, &cfg, false, true);
    /* A socket that connects and says nothing holds B's only slot... */
    raw_connect(f, 2, B);
    RUN_UNTIL(f, f->raw_connected[2], 2000);
    assert_int_equal(f->raw_connect_status[2], 0);
    run_for(f, 20); /* B accepts it */
    assert_false(f->raw_eof[2]);
    /* ...until a peer that does speak needs it: the stalest goes. */
    connect_hosts(f, A, B);
    RUN_UNTIL(f, f->raw_eof[2], 2000);
    /* (A is done with the handshake one message before B.) */
    RUN_UNTIL(f, f->obs[B].opened == 1, 2000);
}

/* ---- 19. streams per peer ---- */

static void test_streams_per_peer(void **state)
{
    fx *f = *state;
    host_up(f, A, NULL, false, false);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.max_streams_per_peer = 3;
    host_up(f, B, &cfg, false, true);
    dn_conn *c = connect_hosts(f, A, B);
    tstream *ts[4];
    for (int i = 0; i < 4; i++) {
        ts[i] = open_ts(f, c, TEST_PROTO, 0);
        RUN_UNTIL(f, f->nsrv == (size_t)i + 1 || ts[i]->close_calls == 1, 3000);
    }
    run_for(f, 30);
    assert_int_equal(f->nsrv, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ts[i]->close_calls, 0);
    assert_int_equal(ts[3]->close_calls, 1);
    assert_int_equal(ts[3]->close_status, DN_ERESET);
    assert_int_equal(peer_of(f, B, A)->streams, 3);
    /* One ends (both sides closed in order): there is room again. */
    dn_stream_close_write(ts[0]->s);
    RUN_UNTIL(f, ts[0]->close_calls == 1, 3000);
    assert_int_equal(ts[0]->close_status, 0);
    assert_int_equal(peer_of(f, B, A)->streams, 2);
    tstream *again = open_ts(f, c, TEST_PROTO, 10);
    RUN_UNTIL(f, f->nsrv == 4 && f->srv[3]->received == 10, 3000);
    assert_int_equal(again->close_calls, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_listen_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending_dial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dial_joins_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dial_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dial_peer_router, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identify_and_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conns_per_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peerstore_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negotiating_total, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pnet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streams_per_peer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
