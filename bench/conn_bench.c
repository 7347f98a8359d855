/* conn_bench — connection-level figures measured in-process on the library,
 * so that no exec or process start-up is counted.
 *
 *   conn_bench setup MA [-n N] [-c K] [--swarm-key F]
 *       N full dials (TCP, pnet when a key is given, Noise, Yamux, a ping
 *       stream and its first reply, then close), K at a time; each of the K
 *       workers has its own host so no connection is ever reused.
 *       -> {"mode":"setup","n":N,"concurrency":K,"seconds":s,"per_sec":r,
 *           "first_reply_p50_us":..,"first_reply_p99_us":..}
 *   conn_bench ping MA [-n N] [--swarm-key F]
 *       One connection, 100 warm-up pings, then N pings back to back on the
 *       same stream. -> {"mode":"ping","n":N,"p50_us":..,"p99_us":..,...}
 *   conn_bench hold MA [--conns N] [--streams S] [--swarm-key F]
 *       Opens N connections (dialing without /p2p, so none is reused; a
 *       new host, so a new peer id, per 1000, as the daemon allows at most
 *       1024 connections per peer), prints
 *       "conns <n>", then on SIGUSR1 opens S idle ping streams on each (the
 *       daemon's echo handler keeps them open, waiting for 32 bytes that
 *       never come) and prints "streams <n>". Exits on SIGTERM/SIGINT.
 *
 * MA is the daemon's address with /p2p/<id>. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/log.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/protocols.h"
#include "pnet/pnet.h"

static uv_loop_t *loop;
static dn_multiaddr target, target_nop2p;
static const uint8_t *psk;
static int exit_code;

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

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

static dn_host *new_host(uint32_t max_conns)
{
    dn_privkey *k;
    dn_host *h;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &k);
    if (rc) {
        fprintf(stderr, "conn_bench: keygen: %s\n", dn_strerror(rc));
        exit(1);
    }
    /* The key must outlive the host; the process exits right after. */
    dn_host_config cfg = {.size = sizeof(dn_host_config), .identity = k,
                          .psk = psk,
                          .max_conns = max_conns,
                          .max_streams = 65536,
                          /* One benchmark peer holds every connection. */
                          .max_conns_per_peer = 1000000,
                          .max_streams_per_peer = 10000000,
                          .handshake_timeout_ms = 30000,
                          .dial_timeout_ms = 30000};
    if ((rc = dn_host_new(loop, &cfg, &h))) {
        fprintf(stderr, "conn_bench: host: %s\n", dn_strerror(rc));
        exit(1);
    }
    return h;
}

static void fail(const char *what, int rc)
{
    fprintf(stderr, "conn_bench: %s: %s\n", what, dn_strerror(rc));
    exit_code = 1;
    uv_stop(loop);
}

/* ---- setup ------------------------------------------------------------ */

typedef struct worker {
    dn_host *h;
    dn_conn *c;
    uint64_t t0;
} worker;

static unsigned setup_total, setup_started, setup_done;
static uint64_t *first_reply_ns;
static uint64_t setup_t0, setup_t1;

static void worker_next(worker *w);

static void setup_reply(void *arg, unsigned seq, uint64_t rtt_ns)
{
    worker *w = arg;
    if (setup_done < setup_total)
        first_reply_ns[setup_done] = now_ns() - w->t0;
}

static void setup_ping_done(void *arg, int status)
{
    worker *w = arg;
    if (status)
        return fail("ping", status);
    setup_done++;
    dn_conn_close(w->c);
    w->c = NULL;
    if (setup_done == setup_total) {
        setup_t1 = now_ns();
        uv_stop(loop);
        return;
    }
    worker_next(w);
}

static void setup_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    worker *w = arg;
    if (status)
        return fail("dial", status);
    w->c = c;
    static const dn_ping_callbacks cbs = {.on_reply = setup_reply, .on_done = setup_ping_done};
    int rc = dn_ping_run(c, 1, 0, &cbs, w);
    if (rc)
        fail("ping", rc);
}

static void worker_next(worker *w)
{
    if (setup_started >= setup_total)
        return;
    setup_started++;
    w->t0 = now_ns();
    int rc = dn_host_dial(w->h, &target, setup_dialed, w);
    if (rc)
        fail("dial", rc);
}

static int run_setup(unsigned n, unsigned k)
{
    worker *ws = calloc(k, sizeof *ws);
    first_reply_ns = calloc(n, sizeof *first_reply_ns);
    if (!ws || !first_reply_ns)
        return 1;
    for (unsigned i = 0; i < k; i++)
        ws[i].h = new_host(64);
    setup_total = n;
    setup_t0 = now_ns();
    for (unsigned i = 0; i < k; i++)
        worker_next(&ws[i]);
    uv_run(loop, UV_RUN_DEFAULT);
    if (exit_code)
        return exit_code;
    double s = (double)(setup_t1 - setup_t0) / 1e9;
    qsort(first_reply_ns, n, sizeof *first_reply_ns, cmp_u64);
    printf("{\"mode\":\"setup\",\"n\":%u,\"concurrency\":%u,\"seconds\":%.4f,\"per_sec\":%.1f,"
           "\"first_reply_p50_us\":%.1f,\"first_reply_p99_us\":%.1f}\n",
           n, k, s, n / s, pct_us(first_reply_ns, n, 50), pct_us(first_reply_ns, n, 99));
    return 0;
}

/* ---- ping ------------------------------------------------------------- */

#define PING_WARMUP 100
static unsigned ping_n;
static uint64_t *rtts;

static void ping_reply(void *arg, unsigned seq, uint64_t rtt_ns)
{
    /* seq counts from 1 (as `dmsnet ping` prints it). */
    if (seq > PING_WARMUP && seq - PING_WARMUP - 1 < ping_n)
        rtts[seq - PING_WARMUP - 1] = rtt_ns;
}

static void ping_done(void *arg, int status)
{
    if (status)
        return fail("ping", status);
    uv_stop(loop);
}

static void ping_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status)
        return fail("dial", status);
    static const dn_ping_callbacks cbs = {.on_reply = ping_reply, .on_done = ping_done};
    int rc = dn_ping_run(c, PING_WARMUP + ping_n, 0, &cbs, NULL);
    if (rc)
        fail("ping", rc);
}

static int run_ping(unsigned n)
{
    ping_n = n;
    rtts = calloc(n, sizeof *rtts);
    if (!rtts)
        return 1;
    dn_host *h = new_host(4);
    int rc = dn_host_dial(h, &target, ping_dialed, NULL);
    if (rc)
        return fail("dial", rc), 1;
    uv_run(loop, UV_RUN_DEFAULT);
    if (exit_code)
        return exit_code;
    qsort(rtts, n, sizeof *rtts, cmp_u64);
    double sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += (double)rtts[i];
    printf("{\"mode\":\"ping\",\"n\":%u,\"min_us\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"mean_us\":%.1f,\"max_us\":%.1f}\n",
           n, pct_us(rtts, n, 0), pct_us(rtts, n, 50), pct_us(rtts, n, 99), sum / n / 1e3,
           pct_us(rtts, n, 100));
    return 0;
}

/* ---- hold ------------------------------------------------------------- */

/* Dials in flight are capped below the daemon's bound on handshakes from
 * one address (64: past it the stalest is dropped, as for an attacker). */
#define HOLD_INFLIGHT 48
/* Connections per dialing host: the daemon caps connections per peer
 * (limits.max_conns_per_peer, at most 1024), so N connections come from
 * ceil(N / 1000) hosts, each its own peer id. */
#define HOLD_PER_HOST 1000
static dn_host **hold_hosts;
static dn_conn **held;
static unsigned hold_want, hold_started, hold_open, hold_streams_per, hold_streams_open,
    hold_streams_started;
static uv_signal_t sig_usr1, sig_term, sig_int;

static void hold_dial_more(void);

static void hold_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status)
        return fail("dial", status);
    held[hold_open++] = c;
    if (hold_open == hold_want) {
        printf("conns %u\n", hold_open);
        fflush(stdout);
        return;
    }
    hold_dial_more();
}

static void hold_dial_more(void)
{
    while (hold_started < hold_want && hold_started - hold_open < HOLD_INFLIGHT) {
        dn_host *h = hold_hosts[hold_started / HOLD_PER_HOST];
        hold_started++;
        int rc = dn_host_dial(h, &target_nop2p, hold_dialed, NULL);
        if (rc)
            return fail("dial", rc);
    }
}

static void idle_close(dn_stream *s, int status, void *arg)
{
    if (!exit_code && status) {
        fprintf(stderr, "conn_bench: idle stream closed: %s\n", dn_strerror(status));
        exit_code = 1;
    }
}

static void hold_open_more(void);

static void stream_opened(dn_stream *s, int status, void *arg)
{
    if (status)
        return fail("open stream", status);
    static const dn_stream_callbacks cbs = {.on_close = idle_close};
    dn_stream_set_callbacks(s, &cbs, NULL);
    hold_streams_open++;
    if (hold_streams_open == hold_open * hold_streams_per) {
        printf("streams %u\n", hold_streams_open);
        fflush(stdout);
        return;
    }
    hold_open_more();
}

static void hold_open_more(void)
{
    unsigned total = hold_open * hold_streams_per;
    while (hold_streams_started < total &&
           hold_streams_started - hold_streams_open < HOLD_INFLIGHT) {
        dn_conn *c = held[hold_streams_started % hold_open];
        hold_streams_started++;
        int rc = dn_conn_open_stream(c, DN_PING_PROTOCOL, stream_opened, NULL);
        if (rc)
            return fail("open stream", rc);
    }
}

static void on_usr1(uv_signal_t *s, int sig)
{
    if (hold_open == hold_want && hold_streams_started == 0 && hold_streams_per)
        hold_open_more();
}

static void on_term(uv_signal_t *s, int sig)
{
    /* Exit without a graceful teardown: the daemon sees resets, and we do
     * not measure anything after this point. */
    fflush(stdout);
    _exit(exit_code);
}

static int run_hold(unsigned conns, unsigned streams)
{
    hold_want = conns;
    hold_streams_per = streams;
    unsigned nhosts = (conns + HOLD_PER_HOST - 1) / HOLD_PER_HOST;
    held = calloc(conns, sizeof *held);
    hold_hosts = calloc(nhosts ? nhosts : 1, sizeof *hold_hosts);
    if (!held || !hold_hosts)
        return 1;
    for (unsigned i = 0; i < nhosts; i++)
        hold_hosts[i] = new_host(HOLD_PER_HOST + 16);
    uv_signal_init(loop, &sig_usr1);
    uv_signal_start(&sig_usr1, on_usr1, SIGUSR1);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_term, SIGTERM);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_term, SIGINT);
    hold_dial_more();
    uv_run(loop, UV_RUN_DEFAULT);
    return exit_code ? exit_code : 1;
}

/* ---- main ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: conn_bench setup|ping|hold <multiaddr/p2p/id> [-n N] [-c K] "
                    "[--conns N] [--streams S] [--swarm-key FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *mode = argv[1], *addr = argv[2];
    unsigned n = 1000, k = 1, conns = 1000, streams = 0;
    const char *key_file = NULL;
    static const struct option opts[] = {{"swarm-key", required_argument, NULL, 's'},
                                         {"conns", required_argument, NULL, 'C'},
                                         {"streams", required_argument, NULL, 'S'},
                                         {NULL, 0, NULL, 0}};
    optind = 3;
    int o;
    while ((o = getopt_long(argc, argv, "n:c:", opts, NULL)) != -1) {
        switch (o) {
        case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': k = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'C': conns = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'S': streams = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': key_file = optarg; break;
        default: usage();
        }
    }
    if (!n || !k || k > 4096 || !conns || conns > 1000000 || streams > 100000)
        usage();
    if (sodium_init() < 0)
        return 1;
    dn_log_set_level(DN_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    static uint8_t key[DN_PSK_LEN];
    if (key_file) {
        int rc = dn_swarm_key_load(key_file, key);
        if (rc) {
            fprintf(stderr, "conn_bench: swarm key %s: %s\n", key_file, dn_strerror(rc));
            return 1;
        }
        psk = key;
    }
    if (dn_multiaddr_parse(addr, &target)) {
        fprintf(stderr, "conn_bench: bad multiaddr %s: %s\n", addr, dn_multiaddr_error());
        return 2;
    }
    dn_multiaddr_strip_p2p(&target, &target_nop2p);
    loop = uv_default_loop();
    if (!strcmp(mode, "setup"))
        return run_setup(n, k);
    if (!strcmp(mode, "ping"))
        return run_ping(n);
    if (!strcmp(mode, "hold"))
        return run_hold(conns, streams);
    usage();
}
