/* AutoNAT v2, C to C (src/proto/autonat.c): dmsnet clients ask dmsnet
 * servers over loopback TCP (allow_private, since loopback is what a test
 * may use). Each scenario checks the verdict and the counters of both
 * sides:
 *   - public: a listen address two servers dial back -> PUBLIC (confidence 2),
 *     the address listed as reachable, on_reachability called once;
 *   - private: only a claimed address on a closed port -> PRIVATE, the
 *     servers counted dial errors;
 *   - dial data: an address on another IP (127.0.0.2) than the one the
 *     request comes from (127.0.0.1): the server asks 30k-100k bytes first
 *     and gets them, then dials; the observed 127.0.0.1 with our port
 *     (nothing listens there) fails;
 *   - a server without allow_private refuses loopback (E_DIAL_REFUSED) and
 *     the client reaches no verdict;
 *   - a server's per-peer rate limit answers E_REQUEST_REJECTED;
 *   - a hand-driven client against a server: the first address it is
 *     willing to dial is picked (not garbage, not one naming another peer);
 *     another IP costs dial data, and without it the server never dials
 *     (and times the request out); with it, DialBack{our nonce} arrives on
 *     a new connection, and the answer is OK for that index; malformed and
 *     oversized requests are reset and the server keeps serving;
 *   - a hand-driven server against a client: OK without a dial-back, or a
 *     dial-back with another nonce, counts for nothing (and the wrong nonce
 *     is reset); the right nonce on a new connection counts.
 * Hosts share one loop; the loop runs only inside RUN_UNTIL, bounded by a
 * watchdog; the teardown closes every host and requires an empty loop. */
#include <arpa/inet.h>
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

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/protocols.h"
#include "proto/autonat_msg.h"

#define NHOSTS 4

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog, tick;
    bool expired;
    dn_privkey *key[NHOSTS];
    dn_host *host[NHOSTS];
    dn_autonat *an[NHOSTS];
    bool closed[NHOSTS];
    int verdicts[NHOSTS]; /* on_reachability calls */
    dn_reachability last[NHOSTS];
    int dialed, dial_failed;
} fx;

typedef struct cb_arg {
    fx *f;
    int i;
} cb_arg;
static cb_arg args[NHOSTS];

static void on_watchdog(uv_timer_t *t)
{
    ((fx *)t->data)->expired = true;
}
static void on_tick(uv_timer_t *t)
{
    (void)t;
}

#define RUN_UNTIL(f, expr, ms)                                                                     \
    do {                                                                                           \
        (f)->expired = false;                                                                      \
        uv_timer_start(&(f)->watchdog, on_watchdog, (ms), 0);                                      \
        uv_timer_start(&(f)->tick, on_tick, 2, 2);                                                 \
        while (!(expr) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
        uv_timer_stop(&(f)->tick);                                                                 \
        if (!(expr))                                                                               \
            fail_msg("timed out after %u ms waiting for: %s", (unsigned)(ms), #expr);              \
    } while (0)

static void on_verdict(void *arg, dn_reachability r)
{
    cb_arg *c = arg;
    c->f->verdicts[c->i]++;
    c->f->last[c->i] = r;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    uv_timer_init(&f->loop, &f->tick);
    f->watchdog.data = f;
    *state = f;
    return 0;
}

static void host_closed(void *arg)
{
    *(bool *)arg = true;
}

static int teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < NHOSTS; i++)
        if (f->host[i])
            dn_host_close(f->host[i], host_closed, &f->closed[i]);
    bool all = false;
    for (int n = 0; n < 5000 && !all; n++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        all = true;
        for (int i = 0; i < NHOSTS; i++)
            all &= !f->host[i] || f->closed[i];
        if (!all)
            uv_sleep(1);
    }
    assert_true(all);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < NHOSTS; i++)
        dn_privkey_free(f->key[i]);
    free(f);
    return 0;
}

/* Host i with identify and AutoNAT; listen ("" for none). */
static void make_host(fx *f, int i, const char *listen, dn_autonat_config cfg)
{
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &f->key[i]), 0);
    dn_host_config hc = DN_HOST_CONFIG_INIT;
    hc.identity = f->key[i];
    assert_int_equal(dn_host_new(&f->loop, &hc, &f->host[i]), 0);
    assert_int_equal(dn_identify_attach(f->host[i]), 0);
    args[i] = (cb_arg){f, i};
    cfg.on_reachability = on_verdict;
    cfg.arg = &args[i];
    assert_int_equal(dn_autonat_attach(f->host[i], &cfg, &f->an[i]), 0);
    if (*listen) {
        dn_multiaddr ma;
        assert_int_equal(dn_multiaddr_parse(listen, &ma), 0);
        assert_int_equal(dn_host_listen(f->host[i], &ma), 0);
    }
}

static dn_autonat_config server_cfg(bool allow_private)
{
    dn_autonat_config c = DN_AUTONAT_CONFIG_INIT;
    c.client = false;
    c.allow_private = allow_private;
    return c;
}

static dn_autonat_config client_cfg(unsigned confidence)
{
    dn_autonat_config c = DN_AUTONAT_CONFIG_INIT;
    c.server = false;
    c.allow_private = true;
    c.confidence = confidence;
    c.timeout_ms = 5000;
    return c;
}

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    fx *f = arg;
    if (status)
        f->dial_failed++;
    else
        f->dialed++;
}

/* Host i dials host j's first listen address (with its peer id). */
static void dial(fx *f, int i, int j)
{
    dn_multiaddr ma;
    assert_int_equal(dn_host_listen_addrs(f->host[j], &ma, 1), 1);
    const dn_peerid *id = dn_host_peerid(f->host[j]);
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_P2P, id->bytes, id->len), 0);
    int before = f->dialed;
    assert_int_equal(dn_host_dial(f->host[i], &ma, on_dial, f), 0);
    RUN_UNTIL(f, f->dialed > before || f->dial_failed, 5000);
    assert_int_equal(f->dial_failed, 0);
}

static dn_autonat_stats stats(fx *f, int i)
{
    dn_autonat_stats s;
    dn_autonat_get_stats(f->an[i], &s);
    return s;
}

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
static uint16_t closed_port(void)
{
    uv_loop_t l;
    uv_tcp_t t;
    struct sockaddr_in sa;
    uv_loop_init(&l);
    uv_tcp_init(&l, &t);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
    int len = sizeof sa;
    assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&sa, &len), 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    uv_loop_close(&l);
    return ntohs(sa.sin_port);
}

static void test_public(void **state)
{
    fx *f = *state;
    make_host(f, 0, "/ip4/127.0.0.1/tcp/0", client_cfg(2));
    make_host(f, 1, "/ip4/127.0.0.1/tcp/0", server_cfg(true));
    make_host(f, 2, "/ip4/127.0.0.1/tcp/0", server_cfg(true));
    assert_int_equal(dn_autonat_reachability(f->an[0]), DN_REACHABILITY_UNKNOWN);
    dial(f, 0, 1);
    dial(f, 0, 2);
    RUN_UNTIL(f, dn_autonat_reachability(f->an[0]) == DN_REACHABILITY_PUBLIC, 10000);
    assert_int_equal(f->verdicts[0], 1);
    assert_int_equal(f->last[0], DN_REACHABILITY_PUBLIC);
    dn_multiaddr mine, got[4];
    dn_host_listen_addrs(f->host[0], &mine, 1);
    assert_int_equal(dn_autonat_reachable_addrs(f->an[0], got, 4), 1);
    assert_int_equal(got[0].len, mine.len);
    assert_memory_equal(got[0].bytes, mine.bytes, mine.len);
    dn_autonat_stats c = stats(f, 0), s1 = stats(f, 1), s2 = stats(f, 2);
    assert_true(c.probe_ok >= 2);
    assert_int_equal(c.probe_failed, 0);
    assert_int_equal(c.bad_dial_backs, 0);
    assert_true(s1.dial_backs_ok >= 1 && s2.dial_backs_ok >= 1);
    /* same IP as the request: no dial data asked */
    assert_int_equal(s1.dial_data_asked + s2.dial_data_asked, 0);
    assert_int_equal(c.dial_data_sent, 0);
    /* probe again: the verdict holds, no second callback */
    uint64_t before = c.probes;
    dn_autonat_probe_now(f->an[0]);
    RUN_UNTIL(f, stats(f, 0).probe_ok >= c.probe_ok + 2, 10000);
    assert_true(stats(f, 0).probes >= before + 2);
    assert_int_equal(f->verdicts[0], 1);
}

static void test_private(void **state)
{
    fx *f = *state;
    /* the client listens nowhere: its only candidate is a closed port */
    make_host(f, 0, "", client_cfg(2));
    make_host(f, 1, "/ip4/127.0.0.1/tcp/0", server_cfg(true));
    make_host(f, 2, "/ip4/127.0.0.1/tcp/0", server_cfg(true));
    char text[64];
    snprintf(text, sizeof text, "/ip4/127.0.0.1/tcp/%u", closed_port());
    dn_multiaddr claim;
    assert_int_equal(dn_multiaddr_parse(text, &claim), 0);
    assert_int_equal(dn_autonat_add_candidate(f->an[0], &claim), 0);
    dial(f, 0, 1);
    dial(f, 0, 2);
    RUN_UNTIL(f, dn_autonat_reachability(f->an[0]) == DN_REACHABILITY_PRIVATE, 10000);
    assert_int_equal(f->last[0], DN_REACHABILITY_PRIVATE);
    dn_multiaddr got[2];
    assert_int_equal(dn_autonat_reachable_addrs(f->an[0], got, 2), 0);
    assert_true(stats(f, 0).probe_failed >= 2);
    assert_int_equal(stats(f, 0).probe_ok, 0);
    assert_true(stats(f, 1).dial_errors >= 1 && stats(f, 2).dial_errors >= 1);
}

static void test_dial_data(void **state)
{
    fx *f = *state;
    make_host(f, 0, "/ip4/127.0.0.2/tcp/0", client_cfg(1));
    make_host(f, 1, "/ip4/127.0.0.1/tcp/0", server_cfg(true));
    dial(f, 0, 1); /* from 127.0.0.1: the kernel's source for 127.0.0.1 */
    RUN_UNTIL(f, dn_autonat_reachability(f->an[0]) == DN_REACHABILITY_PUBLIC, 10000);
    dn_autonat_stats c = stats(f, 0), s = stats(f, 1);
    assert_true(s.dial_data_asked >= 1);
    assert_true(s.dial_data_bytes >= 30000);
    assert_true(c.dial_data_sent >= 30000 && c.dial_data_sent <= 100000 + 4096);
    assert_true(s.dial_backs_ok >= 1);
    /* 127.0.0.1 (how the server sees us) with our port: nothing listens */
    RUN_UNTIL(f, stats(f, 0).probe_failed >= 1, 10000);
    dn_multiaddr got[4], mine;
    dn_host_listen_addrs(f->host[0], &mine, 1);
    assert_int_equal(dn_autonat_reachable_addrs(f->an[0], got, 4), 1);
    assert_memory_equal(got[0].bytes, mine.bytes, mine.len);
    assert_int_equal(dn_autonat_reachability(f->an[0]), DN_REACHABILITY_PUBLIC);
}

static void test_refuses_private(void **state)
{
    fx *f = *state;
    make_host(f, 0, "/ip4/127.0.0.1/tcp/0", client_cfg(1));
    make_host(f, 1, "/ip4/127.0.0.1/tcp/0", server_cfg(false));
    dial(f, 0, 1);
    RUN_UNTIL(f, stats(f, 1).refused >= 1 && stats(f, 0).probe_other >= 1, 10000);
    assert_int_equal(stats(f, 1).dial_backs_ok + stats(f, 1).dial_errors, 0);
    assert_int_equal(dn_autonat_reachability(f->an[0]), DN_REACHABILITY_UNKNOWN);
    assert_int_equal(f->verdicts[0], 0);
}

static void test_rate_limit(void **state)
{
    fx *f = *state;
    make_host(f, 0, "/ip4/127.0.0.1/tcp/0", client_cfg(1));
    dn_autonat_config sc = server_cfg(true);
    sc.max_requests_per_peer_per_min = 1;
    make_host(f, 1, "/ip4/127.0.0.1/tcp/0", sc);
    /* two candidates: the listen address and a claimed one */
    char text[64];
    snprintf(text, sizeof text, "/ip4/127.0.0.1/tcp/%u", closed_port());
    dn_multiaddr claim;
    assert_int_equal(dn_multiaddr_parse(text, &claim), 0);
    assert_int_equal(dn_autonat_add_candidate(f->an[0], &claim), 0);
    dial(f, 0, 1);
    RUN_UNTIL(f, stats(f, 1).rejected >= 1, 10000);
    assert_int_equal(stats(f, 1).requests, 2);
    assert_int_equal(stats(f, 1).dial_backs_ok + stats(f, 1).dial_errors, 1);
    /* the client backs off that server: no third request soon */
    RUN_UNTIL(f, stats(f, 0).probe_other >= 1, 5000);
    for (int n = 0; n < 200; n++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(stats(f, 1).requests, 2);
}

/* ---- a hand-driven client (host 3): raw streams, our own dial-back handler ---- */

typedef struct raw {
    fx *f;
    dn_stream *s;
    dn_conn *req_conn;
    dn_buf in;
    bool closed, eof;
    int close_status;
    int nmsgs;
    dn__autonat_msg last; /* spans point into `keep` */
    uint8_t keep[256];
    /* dial-backs seen */
    int dialbacks;
    uint64_t db_nonce;
    bool db_same_conn;
    dn_buf dbin;
} raw;
static raw R;

static void raw_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    raw *r = arg;
    dn_buf_append(&r->in, d, n);
    const uint8_t *body;
    size_t blen;
    int k;
    while ((k = dn__autonat_frame(r->in.data, r->in.len, DN_AUTONAT_MSG_MAX, &body, &blen)) > 0) {
        if (blen <= sizeof r->keep) {
            memcpy(r->keep, body, blen);
            if (dn__autonat_decode(r->keep, blen, &r->last) == 0)
                r->nmsgs++;
        }
        dn_buf_consume(&r->in, (size_t)k);
    }
}
static void raw_eof(dn_stream *s, void *arg)
{
    ((raw *)arg)->eof = true;
}
static void raw_close(dn_stream *s, int status, void *arg)
{
    raw *r = arg;
    r->closed = true;
    r->close_status = status;
    r->s = NULL;
}
static void raw_opened(dn_stream *s, int status, void *arg)
{
    raw *r = arg;
    assert_int_equal(status, 0);
    static const dn_stream_callbacks cbs = {
        .on_data = raw_data, .on_eof = raw_eof, .on_close = raw_close};
    dn_stream_set_callbacks(s, &cbs, r);
    r->s = s;
}

static void db_data_cb(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    raw *r = arg;
    dn_buf_append(&r->dbin, d, n);
    const uint8_t *body;
    size_t blen;
    if (dn__autonat_frame(r->dbin.data, r->dbin.len, 64, &body, &blen) <= 0)
        return;
    assert_int_equal(dn__autonat_decode_dial_back(body, blen, &r->db_nonce), 0);
    r->dialbacks++;
    r->db_same_conn = dn_stream_conn(s) == r->req_conn;
    dn_buf out = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode_dial_back_response(DN_AUTONAT_DBS_OK, &out), 0);
    assert_int_equal(dn_stream_write(s, out.data, out.len), 0);
    dn_stream_close_write(s);
    dn_buf_free(&out);
}
static void db_handler(dn_host *h, dn_stream *s, void *arg)
{
    static const dn_stream_callbacks cbs = {.on_data = db_data_cb};
    dn_buf_reset(&((raw *)arg)->dbin);
    dn_stream_set_callbacks(s, &cbs, arg);
}

static dn_conn *raw_conn;
static void raw_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    assert_int_equal(status, 0);
    raw_conn = c;
}

/* Host 3 listening on listen, connected to host 1 (a server). */
static void raw_setup(fx *f, const char *listen)
{
    memset(&R, 0, sizeof R);
    R.f = f;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &f->key[3]), 0);
    dn_host_config hc = DN_HOST_CONFIG_INIT;
    hc.identity = f->key[3];
    assert_int_equal(dn_host_new(&f->loop, &hc, &f->host[3]), 0);
    assert_int_equal(dn_identify_attach(f->host[3]), 0);
    assert_int_equal(dn_host_set_handler(f->host[3], DN_AUTONAT_DIAL_BACK_PROTOCOL, db_handler, &R),
                     0);
    dn_multiaddr ma;
    assert_int_equal(dn_multiaddr_parse(listen, &ma), 0);
    assert_int_equal(dn_host_listen(f->host[3], &ma), 0);
    assert_int_equal(dn_host_listen_addrs(f->host[1], &ma, 1), 1);
    raw_conn = NULL;
    assert_int_equal(dn_host_dial(f->host[3], &ma, raw_dialed, NULL), 0);
    RUN_UNTIL(f, raw_conn != NULL, 5000);
    R.req_conn = raw_conn;
}

static void raw_open(fx *f)
{
    R.closed = R.eof = false;
    R.nmsgs = 0;
    dn_buf_reset(&R.in);
    assert_int_equal(
        dn_conn_open_stream(raw_conn, DN_AUTONAT_DIAL_REQUEST_PROTOCOL, raw_opened, &R), 0);
    RUN_UNTIL(f, R.s != NULL, 5000);
}

static void raw_send_request(const dn_multiaddr *addrs, size_t n, uint64_t nonce)
{
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_REQUEST};
    m.u.dial_request.naddrs = n;
    for (size_t i = 0; i < n; i++) {
        m.u.dial_request.addrs[i] = addrs[i].bytes;
        m.u.dial_request.addr_lens[i] = addrs[i].len;
    }
    m.u.dial_request.nonce = nonce;
    dn_buf out = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode(&m, &out), 0);
    assert_int_equal(dn_stream_write(R.s, out.data, out.len), 0);
    dn_buf_free(&out);
}

static void test_server_picks_and_charges(void **state)
{
    fx *f = *state;
    dn_autonat_config sc = server_cfg(true);
    sc.timeout_ms = 500;
    make_host(f, 1, "/ip4/127.0.0.1/tcp/0", sc);
    raw_setup(f, "/ip4/127.0.0.2/tcp/0"); /* we connect from 127.0.0.1 */
    dn_multiaddr addrs[3], mine;
    dn_host_listen_addrs(f->host[3], &mine, 1);
    addrs[0].len = 3; /* not a multiaddr */
    memcpy(addrs[0].bytes, "\xff\xff\xff", 3);
    /* our own port, but naming another peer (host 1): never dialled */
    addrs[1] = mine;
    const dn_peerid *other = dn_host_peerid(f->host[1]);
    assert_int_equal(dn_multiaddr_append(&addrs[1], DN_MA_P2P, other->bytes, other->len), 0);
    addrs[2] = mine;

    /* 1: dial data asked for index 2; we send none: no dial, a timeout */
    raw_open(f);
    raw_send_request(addrs, 3, 0x1111);
    RUN_UNTIL(f, R.nmsgs == 1, 5000);
    assert_int_equal(R.last.type, DN_AUTONAT_DIAL_DATA_REQUEST);
    assert_int_equal(R.last.u.dial_data_request.addr_idx, 2);
    uint64_t need = R.last.u.dial_data_request.num_bytes;
    assert_true(need >= 30000 && need <= 100000);
    RUN_UNTIL(f, R.closed, 3000);
    assert_int_equal(R.dialbacks, 0);
    assert_int_equal(stats(f, 1).dial_backs_ok + stats(f, 1).dial_errors, 0);

    /* 2: the same, paid in 1000-byte chunks (any size counts) */
    raw_open(f);
    raw_send_request(addrs, 3, 0x2222);
    RUN_UNTIL(f, R.nmsgs == 1, 5000);
    need = R.last.u.dial_data_request.num_bytes;
    static const uint8_t zeros[1000];
    dn__autonat_msg d = {.type = DN_AUTONAT_DIAL_DATA_RESPONSE};
    d.u.dial_data_response.data = zeros;
    d.u.dial_data_response.len = sizeof zeros;
    dn_buf chunk = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode(&d, &chunk), 0);
    for (uint64_t sent = 0; sent + sizeof zeros <= need - 1; sent += sizeof zeros)
        assert_int_equal(dn_stream_write(R.s, chunk.data, chunk.len), 0);
    /* not yet all of it: still no dial */
    for (int n = 0; n < 50; n++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(R.dialbacks, 0);
    assert_int_equal(dn_stream_write(R.s, chunk.data, chunk.len), 0);
    RUN_UNTIL(f, R.nmsgs == 2, 5000);
    dn_buf_free(&chunk);
    assert_int_equal(R.dialbacks, 1);
    assert_true(R.db_nonce == 0x2222);
    assert_false(R.db_same_conn); /* a new connection */
    assert_int_equal(R.last.type, DN_AUTONAT_DIAL_RESPONSE);
    assert_int_equal(R.last.u.dial_response.status, DN_AUTONAT_RS_OK);
    assert_int_equal(R.last.u.dial_response.addr_idx, 2);
    assert_int_equal(R.last.u.dial_response.dial_status, DN_AUTONAT_DS_OK);
    RUN_UNTIL(f, R.eof, 2000); /* the server closes after its answer */
    dn_stream_close_write(R.s);
    assert_true(stats(f, 1).dial_data_bytes >= need);
    assert_int_equal(stats(f, 1).dial_data_asked, 2);
    dn_buf_free(&R.in);
    dn_buf_free(&R.dbin);
}

static void test_server_bad_input(void **state)
{
    fx *f = *state;
    make_host(f, 1, "/ip4/127.0.0.1/tcp/0", server_cfg(true));
    raw_setup(f, "/ip4/127.0.0.1/tcp/0");
    /* garbage: a frame that is not a Message */
    raw_open(f);
    static const uint8_t junk[] = {3, 0xff, 0xff, 0xff};
    assert_int_equal(dn_stream_write(R.s, junk, sizeof junk), 0);
    RUN_UNTIL(f, R.closed, 3000);
    assert_int_equal(R.close_status, DN_ERESET);
    /* a length over 64 KiB */
    raw_open(f);
    static const uint8_t big[] = {0x81, 0x80, 0x04};
    assert_int_equal(dn_stream_write(R.s, big, sizeof big), 0);
    RUN_UNTIL(f, R.closed, 3000);
    assert_int_equal(R.close_status, DN_ERESET);
    /* a response where a request belongs */
    raw_open(f);
    static const uint8_t resp[] = {2, 0x12, 0};
    assert_int_equal(dn_stream_write(R.s, resp, sizeof resp), 0);
    RUN_UNTIL(f, R.closed, 3000);
    /* and then a good request is served: same IP, no dial data */
    dn_multiaddr mine;
    dn_host_listen_addrs(f->host[3], &mine, 1);
    raw_open(f);
    raw_send_request(&mine, 1, 0x3333);
    RUN_UNTIL(f, R.nmsgs == 1, 5000);
    assert_int_equal(R.last.type, DN_AUTONAT_DIAL_RESPONSE);
    assert_int_equal(R.last.u.dial_response.dial_status, DN_AUTONAT_DS_OK);
    assert_true(R.db_nonce == 0x3333);
    assert_int_equal(stats(f, 1).dial_data_asked, 0);
    dn_stream_close_write(R.s);
    dn_buf_free(&R.in);
    dn_buf_free(&R.dbin);
}

/* ---- a hand-driven server (host 3) ---- */

typedef struct rsrv {
    dn_stream *s;
    dn_buf in;
    bool got;
    uint64_t nonce;
    dn_multiaddr addr;
    dn_conn *back;
    dn_stream *bs;
    bool bs_closed;
    int bs_status;
    dn_buf bin;
    bool bs_answered;
} rsrv;
static rsrv S;

static void rs_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    dn_buf_append(&S.in, d, n);
    const uint8_t *body;
    size_t blen;
    dn__autonat_msg m;
    if (dn__autonat_frame(S.in.data, S.in.len, DN_AUTONAT_MSG_MAX, &body, &blen) <= 0 ||
        dn__autonat_decode(body, blen, &m) != 0 || m.type != DN_AUTONAT_DIAL_REQUEST)
        return;
    assert_int_equal(m.u.dial_request.naddrs, 1); /* our client asks one address at a time */
    assert_int_equal(
        dn_multiaddr_from_bytes(m.u.dial_request.addrs[0], m.u.dial_request.addr_lens[0], &S.addr),
        0);
    S.nonce = m.u.dial_request.nonce;
    S.got = true;
    dn_buf_reset(&S.in);
}
static void rs_close(dn_stream *s, int status, void *arg)
{
    S.s = NULL;
}
static void rs_handler(dn_host *h, dn_stream *s, void *arg)
{
    static const dn_stream_callbacks cbs = {.on_data = rs_data, .on_close = rs_close};
    dn_stream_set_callbacks(s, &cbs, NULL);
    S.s = s;
}
static void rs_answer_ok(void)
{
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_RESPONSE};
    m.u.dial_response.status = DN_AUTONAT_RS_OK;
    m.u.dial_response.dial_status = DN_AUTONAT_DS_OK;
    dn_buf out = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode(&m, &out), 0);
    assert_non_null(S.s);
    assert_int_equal(dn_stream_write(S.s, out.data, out.len), 0);
    dn_stream_close_write(S.s);
    dn_buf_free(&out);
}
static void rs_bs_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    dn_buf_append(&S.bin, d, n);
    const uint8_t *body;
    size_t blen;
    uint32_t st;
    if (dn__autonat_frame(S.bin.data, S.bin.len, 64, &body, &blen) > 0 &&
        dn__autonat_decode_dial_back_response(body, blen, &st) == 0 && st == DN_AUTONAT_DBS_OK)
        S.bs_answered = true;
}
static void rs_bs_close(dn_stream *s, int status, void *arg)
{
    S.bs_closed = true;
    S.bs_status = status;
    S.bs = NULL;
}
static void rs_bs_opened(dn_stream *s, int status, void *arg)
{
    assert_int_equal(status, 0);
    static const dn_stream_callbacks cbs = {.on_data = rs_bs_data, .on_close = rs_bs_close};
    dn_stream_set_callbacks(s, &cbs, NULL);
    S.bs = s;
    dn_buf out = DN_BUF_INIT;
    assert_int_equal(dn__autonat_encode_dial_back(*(uint64_t *)arg, &out), 0);
    assert_int_equal(dn_stream_write(s, out.data, out.len), 0);
    dn_buf_free(&out);
}
static void rs_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    assert_int_equal(status, 0);
    S.back = c;
}
/* Dial the requested address anew and send DialBack{nonce}. */
static void rs_dial_back(fx *f, uint64_t *nonce)
{
    S.back = NULL;
    S.bs_closed = S.bs_answered = false;
    dn_buf_reset(&S.bin);
    assert_int_equal(dn_host_dial(f->host[3], &S.addr, rs_dialed, NULL), 0);
    RUN_UNTIL(f, S.back != NULL, 5000);
    assert_int_equal(
        dn_conn_open_stream(S.back, DN_AUTONAT_DIAL_BACK_PROTOCOL, rs_bs_opened, nonce), 0);
    RUN_UNTIL(f, S.bs_closed || S.bs_answered, 5000);
}

static void test_client_checks_nonce(void **state)
{
    fx *f = *state;
    memset(&S, 0, sizeof S);
    make_host(f, 0, "/ip4/127.0.0.1/tcp/0", client_cfg(1));
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &f->key[3]), 0);
    dn_host_config hc = DN_HOST_CONFIG_INIT;
    hc.identity = f->key[3];
    assert_int_equal(dn_host_new(&f->loop, &hc, &f->host[3]), 0);
    assert_int_equal(dn_identify_attach(f->host[3]), 0);
    assert_int_equal(
        dn_host_set_handler(f->host[3], DN_AUTONAT_DIAL_REQUEST_PROTOCOL, rs_handler, NULL), 0);
    dn_multiaddr ma;
    assert_int_equal(dn_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(dn_host_listen(f->host[3], &ma), 0);
    dial(f, 0, 3);

    /* 1: "OK, dialled" without any dial-back */
    RUN_UNTIL(f, S.got, 5000);
    rs_answer_ok();
    RUN_UNTIL(f, stats(f, 0).probe_other >= 1, 5000);
    assert_int_equal(stats(f, 0).probe_ok, 0);

    /* 2: a dial-back with another nonce: reset, not counted */
    S.got = false;
    dn_autonat_probe_now(f->an[0]);
    RUN_UNTIL(f, S.got, 5000);
    uint64_t wrong = S.nonce ^ 1;
    rs_dial_back(f, &wrong);
    assert_true(S.bs_closed && !S.bs_answered);
    assert_int_equal(S.bs_status, DN_ERESET);
    assert_int_equal(stats(f, 0).bad_dial_backs, 1);
    rs_answer_ok();
    RUN_UNTIL(f, stats(f, 0).probe_other >= 2, 5000);
    assert_int_equal(stats(f, 0).probe_ok, 0);
    assert_int_equal(dn_autonat_reachability(f->an[0]), DN_REACHABILITY_UNKNOWN);

    /* 3: the right nonce on a new connection: acknowledged, and it counts */
    S.got = false;
    dn_autonat_probe_now(f->an[0]);
    RUN_UNTIL(f, S.got, 5000);
    uint64_t right = S.nonce;
    rs_dial_back(f, &right);
    assert_true(S.bs_answered);
    rs_answer_ok();
    RUN_UNTIL(f, dn_autonat_reachability(f->an[0]) == DN_REACHABILITY_PUBLIC, 5000);
    assert_int_equal(stats(f, 0).probe_ok, 1);
    assert_int_equal(stats(f, 0).bad_dial_backs, 1);
    dn_buf_free(&S.in);
    dn_buf_free(&S.bin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_public, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dial_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_picks_and_charges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_checks_nonce, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
