/* msg_bench — the Messenger's figures (issue 10), measured on the library
 * (dmsnet/messenger.h) with no process start-up counted.
 *
 *   msg_bench serve [--listen MA]
 *       One host with a Messenger serving the two bench types below; prints
 *       "listening <MA>/p2p/<id>" and runs until SIGTERM/SIGINT.
 *   msg_bench run MA [--peers P] [-n N] [--window W] [--rr-n M] [--size B]
 *       P client hosts in this process (P connections, P peer ids) against
 *       the server at MA (a `msg_bench serve`, or any node speaking the
 *       Messenger framing for these types, such as bench/js/msg_bench.mjs):
 *       - warm-up: 4 requests per peer;
 *       - one-way: N sends of B bytes in all, each peer keeping W in flight;
 *         a send counts once the receiver has taken the frame and ended its
 *         side of the stream (what dn_messenger_send reports);
 *       - request/response: M requests of B bytes in all, one in flight per
 *         peer, each answered with B bytes; the round trip of each.
 *       -> {"peers":P,"size":B,"oneway_n":N,"oneway_per_sec":..,"rr_n":M,
 *           "rr_per_sec":..,"rr_p50_us":..,"rr_p99_us":..}
 *
 * The two types: DN_BENCH_SEND ("/dmsnet/bench/send/1.0.0": taken, no
 * reply) and DN_BENCH_ECHO ("/dmsnet/bench/echo/1.0.0": the payload comes
 * back as the reply). Every message is its own stream (the Messenger's
 * framing: 8-byte little-endian length, payload, sender closes its write
 * side). The server and the clients are separate processes, so each end
 * has its own core, as for the js baseline it is compared with. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/log.h"
#include "dmsnet/messenger.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/protocols.h"

#define DN_BENCH_SEND "/dmsnet/bench/send/1.0.0"
#define DN_BENCH_ECHO "/dmsnet/bench/echo/1.0.0"
#define WARMUP_PER_PEER 4
#define MAX_PEERS 1000
#define MAX_WINDOW 64 /* the Messenger's default bound on one peer's inbound messages */

static uv_loop_t *loop;
static int exit_code;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
/* Nearest-rank percentile of a sorted array. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e3;
}

static void fail(const char *what, int rc)
{
    if (exit_code)
        return; /* the first failure says why; the others follow from it */
    fprintf(stderr, "msg_bench: %s: %s\n", what, dn_strerror(rc));
    exit_code = 1;
    uv_stop(loop);
}

static dn_host *new_host(void)
{
    dn_privkey *k;
    dn_host *h;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &k);
    if (rc) {
        fprintf(stderr, "msg_bench: keygen: %s\n", dn_strerror(rc));
        exit(1);
    }
    /* The key must outlive the host; the process exits right after. */
    dn_host_config cfg = {.size = sizeof(dn_host_config),
                          .identity = k,
                          .max_conns = 2 * MAX_PEERS,
                          .handshake_timeout_ms = 30000,
                          .dial_timeout_ms = 30000};
    if ((rc = dn_host_new(loop, &cfg, &h))) {
        fprintf(stderr, "msg_bench: host: %s\n", dn_strerror(rc));
        exit(1);
    }
    return h;
}

static dn_messenger *new_messenger(dn_host *h)
{
    dn_messenger_config mc = DN_MESSENGER_CONFIG_INIT;
    dn_messenger *m;
    int rc = dn_messenger_attach(h, &mc, &m);
    if (rc) {
        fprintf(stderr, "msg_bench: messenger: %s\n", dn_strerror(rc));
        exit(1);
    }
    return m;
}

/* ---- serve ------------------------------------------------------------ */

static int on_send(dn_messenger *m, const dn_peerid *from, const char *type, const uint8_t *data,
                   size_t len, dn_messenger_reply_handle *reply, void *arg)
{
    return 0; /* taken: the stream ends with no reply */
}

static int on_echo(dn_messenger *m, const dn_peerid *from, const char *type, const uint8_t *data,
                   size_t len, dn_messenger_reply_handle *reply, void *arg)
{
    dn_messenger_reply(reply, data, len);
    return 0;
}

static uv_signal_t sig_term, sig_int;
static void on_signal(uv_signal_t *s, int signum)
{
    uv_stop(loop);
}

static int run_serve(const char *listen)
{
    dn_multiaddr ma, addrs[8];
    if (dn_multiaddr_parse(listen, &ma)) {
        fprintf(stderr, "msg_bench: bad multiaddr %s: %s\n", listen, dn_multiaddr_error());
        return 2;
    }
    dn_host *h = new_host();
    dn_identify_attach(h);
    dn_ping_attach(h);
    dn_messenger *m = new_messenger(h);
    int rc;
    if ((rc = dn_messenger_handle(m, DN_BENCH_SEND, on_send, NULL)) ||
        (rc = dn_messenger_handle(m, DN_BENCH_ECHO, on_echo, NULL)) ||
        (rc = dn_host_listen(h, &ma))) {
        fprintf(stderr, "msg_bench: serve: %s\n", dn_strerror(rc));
        return 1;
    }
    size_t n = dn_host_listen_addrs(h, addrs, 8);
    char s[512], id[128];
    if (!n || dn_multiaddr_to_string(&addrs[0], s, sizeof s) < 0 ||
        dn_peerid_to_string(dn_host_peerid(h), id, sizeof id) < 0) {
        fprintf(stderr, "msg_bench: no listen address\n");
        return 1;
    }
    printf("listening %s/p2p/%s\n", s, id);
    fflush(stdout);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    dn_messenger_stats st;
    dn_messenger_get_stats(m, &st);
    fprintf(stderr,
            "msg_bench: served %llu messages (refused: %llu too big, %llu busy, %llu bad)\n",
            (unsigned long long)st.received, (unsigned long long)st.refused_too_big,
            (unsigned long long)st.refused_busy, (unsigned long long)st.refused_bad);
    return 0;
}

/* ---- run -------------------------------------------------------------- */

typedef struct client {
    dn_host *h;
    dn_messenger *m;
    dn_conn *c;
} client;

typedef struct op {
    client *cl;
    uint64_t t0;
} op;

static dn_multiaddr target;
static client *clients;
static unsigned npeers, window;
static uint8_t *payload;
static size_t payload_len;

/* The phase running: how many operations it has, has started, has done. */
static enum { PH_DIAL, PH_WARMUP, PH_ONEWAY, PH_RR } phase;
static unsigned ph_total, ph_started, ph_done, dialed;
static uint64_t ph_t0, ph_t1;
static uint64_t *rtts;

static void start_one(client *cl);

static void phase_step_done(client *cl)
{
    ph_done++;
    if (ph_done == ph_total) {
        ph_t1 = uv_hrtime();
        uv_stop(loop);
        return;
    }
    start_one(cl);
}

static void sent_cb(void *arg, int status)
{
    op *o = arg;
    client *cl = o->cl;
    free(o);
    if (status)
        return fail("send", status);
    phase_step_done(cl);
}

static void reply_cb(void *arg, int status, const uint8_t *reply, size_t len)
{
    op *o = arg;
    client *cl = o->cl;
    uint64_t rtt = uv_hrtime() - o->t0;
    free(o);
    if (status)
        return fail("request", status);
    if (len != payload_len)
        return fail("request: reply of the wrong size", DN_EPROTO);
    if (phase == PH_RR && ph_done < ph_total)
        rtts[ph_done] = rtt;
    phase_step_done(cl);
}

static void start_one(client *cl)
{
    if (ph_started >= ph_total || exit_code)
        return;
    op *o = malloc(sizeof *o);
    if (!o)
        return fail("start", DN_ENOMEM);
    ph_started++;
    o->cl = cl;
    o->t0 = uv_hrtime();
    int rc = phase == PH_ONEWAY ? dn_messenger_send(cl->m, cl->c, NULL, DN_BENCH_SEND, payload,
                                                    payload_len, 0, sent_cb, o)
                                : dn_messenger_request(cl->m, cl->c, NULL, DN_BENCH_ECHO, payload,
                                                       payload_len, 0, reply_cb, o);
    if (rc) {
        free(o);
        fail(phase == PH_ONEWAY ? "send" : "request", rc);
    }
}

/* Run one phase: total operations, `per_peer` in flight on each client. */
static int run_phase(int which, unsigned total, unsigned per_peer)
{
    phase = which;
    ph_total = total;
    ph_started = ph_done = 0;
    ph_t0 = uv_hrtime();
    for (unsigned w = 0; w < per_peer; w++)
        for (unsigned i = 0; i < npeers; i++)
            start_one(&clients[i]);
    uv_run(loop, UV_RUN_DEFAULT);
    return exit_code;
}

/* Dials in flight are capped below the server's bound on handshakes from
 * one address (64 by default: past it the stalest is dropped, as for an
 * attacker). */
#define DIAL_INFLIGHT 32
static unsigned dials_started;

static void dialed_cb(dn_host *h, dn_conn *c, int status, void *arg);
static void dial_next(void)
{
    if (dials_started >= npeers || exit_code)
        return;
    client *cl = &clients[dials_started++];
    int rc = dn_host_dial(cl->h, &target, dialed_cb, cl);
    if (rc)
        fail("dial", rc);
}

static void dialed_cb(dn_host *h, dn_conn *c, int status, void *arg)
{
    client *cl = arg;
    if (status)
        return fail("dial", status);
    cl->c = c;
    if (++dialed == npeers)
        uv_stop(loop);
    dial_next();
}

static int run_bench(const char *addr, unsigned n, unsigned rr_n)
{
    if (dn_multiaddr_parse(addr, &target)) {
        fprintf(stderr, "msg_bench: bad multiaddr %s: %s\n", addr, dn_multiaddr_error());
        return 2;
    }
    clients = calloc(npeers, sizeof *clients);
    rtts = calloc(rr_n, sizeof *rtts);
    payload = malloc(payload_len ? payload_len : 1);
    if (!clients || !rtts || !payload)
        return 1;
    randombytes_buf(payload, payload_len);
    for (unsigned i = 0; i < npeers; i++) {
        clients[i].h = new_host();
        clients[i].m = new_messenger(clients[i].h);
    }
    for (unsigned i = 0; i < DIAL_INFLIGHT; i++)
        dial_next();
    uv_run(loop, UV_RUN_DEFAULT);
    if (exit_code)
        return exit_code;
    if (run_phase(PH_WARMUP, WARMUP_PER_PEER * npeers, 1))
        return exit_code;
    if (run_phase(PH_ONEWAY, n, window))
        return exit_code;
    double oneway_s = (double)(ph_t1 - ph_t0) / 1e9;
    if (run_phase(PH_RR, rr_n, 1))
        return exit_code;
    double rr_s = (double)(ph_t1 - ph_t0) / 1e9;
    qsort(rtts, rr_n, sizeof *rtts, cmp_u64);
    printf("{\"peers\":%u,\"size\":%zu,\"window\":%u,\"oneway_n\":%u,\"oneway_seconds\":%.4f,"
           "\"oneway_per_sec\":%.1f,\"rr_n\":%u,\"rr_seconds\":%.4f,\"rr_per_sec\":%.1f,"
           "\"rr_p50_us\":%.1f,\"rr_p99_us\":%.1f}\n",
           npeers, payload_len, window, n, oneway_s, n / oneway_s, rr_n, rr_s, rr_n / rr_s,
           pct_us(rtts, rr_n, 50), pct_us(rtts, rr_n, 99));
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: msg_bench serve [--listen MA]\n"
                    "       msg_bench run MA [--peers P] [-n N] [--window W] [--rr-n M] "
                    "[--size B]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    const char *listen = "/ip4/127.0.0.1/tcp/0", *addr = NULL;
    unsigned long n = 20000, rr_n = 5000, peers = 1, win = 16, size = 1024;
    static const struct option lo[] = {
        {"listen", required_argument, NULL, 'l'}, {"peers", required_argument, NULL, 'p'},
        {"window", required_argument, NULL, 'w'}, {"rr-n", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 's'},   {NULL, 0, NULL, 0}};
    optind = 2;
    if (!strcmp(mode, "run")) {
        if (argc < 3)
            usage();
        addr = argv[2];
        optind = 3;
    }
    int c;
    while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'p': peers = strtoul(optarg, NULL, 10); break;
        case 'w': win = strtoul(optarg, NULL, 10); break;
        case 'n': n = strtoul(optarg, NULL, 10); break;
        case 'r': rr_n = strtoul(optarg, NULL, 10); break;
        case 's': size = strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (!peers || peers > MAX_PEERS || !win || win > MAX_WINDOW || !n || !rr_n ||
        size > DN_MESSENGER_DEFAULT_MAX_PAYLOAD)
        usage();
    if (sodium_init() < 0)
        return 1;
    dn_log_set_level(DN_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    if (!strcmp(mode, "serve"))
        return run_serve(listen);
    if (!strcmp(mode, "run")) {
        npeers = (unsigned)peers;
        window = (unsigned)win;
        payload_len = size;
        return run_bench(addr, (unsigned)n, (unsigned)rr_n);
    }
    usage();
}
