/* kad_bench — the DHT's figures (issue 10), measured on the library
 * (dmsnet/kad.h).
 *
 *   kad_bench serve [--nodes 50] [--degree 3] [--seed S] [--lookups L]
 *                   [--value-size B]
 *       --nodes hosts in this process, each with the DHT in server mode,
 *       wired like gossip_bench (node i dials one random node below it,
 *       then every node degree-1 more; xorshift32 from the seed), then
 *       every node bootstraps (looks itself up). Then L lookups one at a
 *       time, each from a random node: the k closest peers to a random key
 *       (GET_CLOSEST_PEERS, a full lookup) and FIND_NODE of a random other
 *       node; hops (the service's count: the longest chain of answers that
 *       led to the result) and the time from the call to its callback.
 *       -> {"nodes":..,"table_mean":..,"lookup_n":L,"lookup_hops_p50":..,
 *           "lookup_hops_max":..,"lookup_p50_ms":..,"lookup_p99_ms":..,
 *           "findpeer_hops_p50":..,"findpeer_p50_ms":..,"findpeer_p99_ms":..}
 *       Then node 0 puts a signed record of B bytes (/dmsnet/<its id>/bench),
 *       prints "records <node 0's address> <key>" and serves until
 *       SIGTERM/SIGINT.
 *   kad_bench get MA KEY [-n N] [--clients C] [--window W]
 *                 [--protocol /dmsnet/kad/1.0.0]
 *       C client hosts (no DHT: the requests are written here), one
 *       connection each, W requests in flight on each: N GET_VALUE requests
 *       for KEY in all, each on its own stream (as js-libp2p asks), counted
 *       when a reply with the record is in. What one node serves: the
 *       server at MA (a `kad_bench serve`, or bench-kad.mjs's js node).
 *       -> {"n":N,"clients":C,"window":W,"seconds":..,"per_sec":..,
 *           "p50_us":..,"p99_us":..}
 *
 * The lookups run with the whole network on one core, as the js network
 * of bench-kad.mjs does in its process. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/kad.h"
#include "dmsnet/keys.h"
#include "dmsnet/log.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/protocols.h"

#define MAX_NODES 1024
#define MAX_CLIENTS 256
#define MAX_REPLY (4u << 20) /* the kad message bound of go and js */

static uv_loop_t *loop;
static uv_timer_t tick;

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "kad_bench: %s: %s\n", what, dn_strerror(rc));
    exit(1);
}

static void on_tick(uv_timer_t *t) {}

/* Run the loop until *flag (or ms pass: false). */
static bool run_until(const bool *flag, double ms)
{
    double end = now_ms() + ms;
    while (!(flag && *flag)) {
        if (now_ms() >= end)
            return false;
        uv_run(loop, UV_RUN_ONCE);
    }
    return true;
}

static dn_host *new_host(void)
{
    dn_privkey *k; /* outlives the host: the process exits right after */
    dn_host *h;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &k);
    if (rc)
        die("keygen", rc);
    dn_host_config cfg = {.size = sizeof(dn_host_config), .identity = k};
    if ((rc = dn_host_new(loop, &cfg, &h)))
        die("host", rc);
    return h;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    return v[i >= n ? n - 1 : i];
}

/* ---- serve: the network and its lookups ------------------------------- */

static dn_host **hosts;
static dn_kad **kads;
static dn_multiaddr *addrs;
static unsigned nnodes;

/* xorshift32, as gossip_bench and bench-kad.mjs. */
static uint32_t rng_state;
static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static unsigned pending;
static bool all_done;
static void dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status)
        die("dial", status);
    if (--pending == 0)
        all_done = true;
}

static void bootstrapped(void *arg, int status, size_t n)
{
    /* A node whose lookup found nobody new still has its dialled peers. */
    if (--pending == 0)
        all_done = true;
}

static bool q_done;
static int q_status;
static unsigned q_hops;
static void closest_cb(void *arg, int status, const dn_peerid *peers, size_t n,
                       const dn_kad_lookup_info *info)
{
    q_done = true;
    q_status = status;
    q_hops = info ? info->hops : 0;
}
static void peer_cb(void *arg, int status, const dn_peerid *peer, const dn_multiaddr *a,
                    size_t naddrs, const dn_kad_lookup_info *info)
{
    q_done = true;
    q_status = status;
    q_hops = info ? info->hops : 0;
}
static bool put_done;
static int put_status;
static size_t put_stored;
static void put_cb(void *arg, int status, size_t stored, const dn_kad_lookup_info *info)
{
    put_done = true;
    put_status = status;
    put_stored = stored;
}

static uv_signal_t sig_term, sig_int;
static void on_signal(uv_signal_t *s, int signum)
{
    uv_stop(loop);
}

static int run_serve(unsigned n, unsigned degree, uint32_t seed, unsigned lookups,
                     size_t value_size)
{
    nnodes = n;
    hosts = calloc(n, sizeof *hosts);
    kads = calloc(n, sizeof *kads);
    addrs = calloc(n, sizeof *addrs);
    double *l_ms = calloc(lookups, sizeof *l_ms), *l_hops = calloc(lookups, sizeof *l_hops);
    double *f_ms = calloc(lookups, sizeof *f_ms), *f_hops = calloc(lookups, sizeof *f_hops);
    uint8_t *value = malloc(value_size ? value_size : 1);
    if (!hosts || !kads || !addrs || !l_ms || !l_hops || !f_ms || !f_hops || !value)
        return 1;
    dn_multiaddr lma;
    if (dn_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &lma))
        return 1;
    for (unsigned i = 0; i < n; i++) {
        hosts[i] = new_host();
        dn_identify_attach(hosts[i]);
        dn_ping_attach(hosts[i]);
        dn_kad_config kc = DN_KAD_CONFIG_INIT;
        kc.mode = DN_KAD_MODE_SERVER;
        int rc = dn_kad_attach(hosts[i], &kc, &kads[i]);
        if (rc || (rc = dn_host_listen(hosts[i], &lma)))
            die("kad/listen", rc);
        const dn_peerid *id = dn_host_peerid(hosts[i]);
        if (dn_host_listen_addrs(hosts[i], &addrs[i], 1) != 1 ||
            dn_multiaddr_append(&addrs[i], DN_MA_P2P, id->bytes, id->len))
            die("listen address", DN_EINVAL);
    }
    /* The graph; a pair dialled twice is harmless (one connection reused). */
    rng_state = seed ? seed : 1;
    all_done = false;
    for (unsigned i = 0; i < n; i++) {
        for (unsigned e = 0; e < degree; e++) {
            unsigned j = e == 0 ? (i ? rnd() % i : i) : rnd() % n;
            if (j == i)
                continue;
            pending++;
            int rc = dn_host_dial(hosts[i], &addrs[j], dialed, NULL);
            if (rc)
                die("dial", rc);
        }
    }
    if (pending && !run_until(&all_done, 30000))
        die("dials", DN_ETIMEOUT);
    /* Identify and the DHT's admission ping before the bootstrap lookups. */
    bool never = false;
    run_until(&never, 1000);
    all_done = false;
    pending = n;
    for (unsigned i = 0; i < n; i++) {
        int rc = dn_kad_bootstrap(kads[i], bootstrapped, NULL);
        if (rc)
            die("bootstrap", rc);
    }
    if (!run_until(&all_done, 60000))
        die("bootstrap", DN_ETIMEOUT);
    run_until(&never, 1000);
    double table = 0;
    for (unsigned i = 0; i < n; i++)
        table += (double)dn_kad_table_size(kads[i]);
    table /= n;

    for (unsigned q = 0; q < lookups; q++) {
        unsigned a = rnd() % n, b = rnd() % n;
        if (b == a)
            b = (a + 1) % n;
        uint8_t key[32];
        randombytes_buf(key, sizeof key);
        q_done = false;
        double t0 = now_ms();
        int rc = dn_kad_closest_peers(kads[a], key, sizeof key, closest_cb, NULL);
        if (rc || !run_until(&q_done, 30000))
            die("closest peers", rc ? rc : DN_ETIMEOUT);
        if (q_status)
            die("closest peers", q_status);
        l_ms[q] = now_ms() - t0;
        l_hops[q] = q_hops;
        q_done = false;
        t0 = now_ms();
        rc = dn_kad_find_peer(kads[a], dn_host_peerid(hosts[b]), peer_cb, NULL);
        if (rc || !run_until(&q_done, 30000))
            die("find peer", rc ? rc : DN_ETIMEOUT);
        if (q_status)
            die("find peer", q_status);
        f_ms[q] = now_ms() - t0;
        f_hops[q] = q_hops;
    }
    qsort(l_ms, lookups, sizeof *l_ms, cmp_dbl);
    qsort(l_hops, lookups, sizeof *l_hops, cmp_dbl);
    qsort(f_ms, lookups, sizeof *f_ms, cmp_dbl);
    qsort(f_hops, lookups, sizeof *f_hops, cmp_dbl);
    printf("{\"nodes\":%u,\"table_mean\":%.1f,\"lookup_n\":%u,\"lookup_hops_p50\":%.0f,"
           "\"lookup_hops_max\":%.0f,\"lookup_p50_ms\":%.3f,\"lookup_p99_ms\":%.3f,"
           "\"findpeer_hops_p50\":%.0f,\"findpeer_hops_max\":%.0f,\"findpeer_p50_ms\":%.3f,"
           "\"findpeer_p99_ms\":%.3f}\n",
           n, table, lookups, pct(l_hops, lookups, 50), pct(l_hops, lookups, 100),
           pct(l_ms, lookups, 50), pct(l_ms, lookups, 99), pct(f_hops, lookups, 50),
           pct(f_hops, lookups, 100), pct(f_ms, lookups, 50), pct(f_ms, lookups, 99));
    fflush(stdout);

    /* The record the get clients ask node 0 for. */
    randombytes_buf(value, value_size);
    int rc = dn_kad_put_signed(kads[0], "bench", value, value_size, put_cb, NULL);
    if (rc || !run_until(&put_done, 30000))
        die("put", rc ? rc : DN_ETIMEOUT);
    if (put_status)
        die("put", put_status);
    char ma[512], id[128];
    if (dn_multiaddr_to_string(&addrs[0], ma, sizeof ma) < 0 ||
        dn_peerid_to_string(dn_host_peerid(hosts[0]), id, sizeof id) < 0)
        die("address", DN_EINVAL);
    printf("records %s /dmsnet/%s/bench\n", ma, id);
    fflush(stdout);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_timer_stop(&tick);
    uv_run(loop, UV_RUN_DEFAULT);
    dn_kad_stats st;
    dn_kad_get_stats(kads[0], &st);
    fprintf(stderr, "kad_bench: node 0 answered %llu requests (%llu bad), stored on %zu peers\n",
            (unsigned long long)st.requests_in, (unsigned long long)st.requests_bad, put_stored);
    return 0;
}

/* ---- get: GET_VALUE requests against one server ----------------------- */

typedef struct client {
    dn_host *h;
    dn_conn *c;
} client;

typedef struct req {
    client *cl;
    double t0;
    uint8_t *buf; /* the reply as it comes */
    size_t len, cap;
    bool answered;
} req;

static client *clients;
static unsigned nclients, window;
static const char *protocol = "/dmsnet/kad/1.0.0";
static uint8_t request[600];
static size_t request_len;
static unsigned g_total, g_started, g_done, g_dialed;
static bool g_finished;
static int g_err;
static double *g_rtt;
static double g_t0, g_t1;

static size_t put_uvarint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}
static int get_uvarint(const uint8_t *p, size_t len, uint64_t *v, size_t *used)
{
    uint64_t x = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            *used = i + 1;
            return 1;
        }
    }
    return len >= 10 ? -1 : 0;
}

/* Whether a Message holds a record (field 3, non-empty). */
static bool has_record(const uint8_t *p, size_t len)
{
    size_t off = 0, u;
    uint64_t tag, v;
    while (off < len) {
        if (get_uvarint(p + off, len - off, &tag, &u) != 1)
            return false;
        off += u;
        if ((tag & 7) == 0) {
            if (get_uvarint(p + off, len - off, &v, &u) != 1)
                return false;
            off += u;
        } else if ((tag & 7) == 2) {
            if (get_uvarint(p + off, len - off, &v, &u) != 1 || v > len - off - u)
                return false;
            off += u;
            if ((tag >> 3) == 3 && v > 0)
                return true;
            off += v;
        } else {
            return false;
        }
    }
    return false;
}

static void g_fail(const char *what, int rc)
{
    if (g_err)
        return;
    g_err = rc ? rc : DN_EPROTO;
    fprintf(stderr, "kad_bench: %s: %s\n", what, dn_strerror(g_err));
    g_finished = true;
}

static void g_start(client *cl);

static void rq_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    req *r = arg;
    if (r->answered)
        return;
    if (r->len + len > MAX_REPLY + 10)
        return g_fail("reply too big", DN_ETOOBIG);
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + len)
            cap *= 2;
        uint8_t *b = realloc(r->buf, cap);
        if (!b)
            return g_fail("reply", DN_ENOMEM);
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    uint64_t mlen;
    size_t u;
    int rc = get_uvarint(r->buf, r->len, &mlen, &u);
    if (rc < 0 || (rc == 1 && mlen > MAX_REPLY))
        return g_fail("reply length", DN_EPROTO);
    if (rc == 0 || r->len < u + mlen)
        return;
    if (!has_record(r->buf + u, (size_t)mlen))
        return g_fail("GET_VALUE reply without the record", DN_ENOTFOUND);
    r->answered = true;
    if (g_done < g_total)
        g_rtt[g_done] = now_ms() - r->t0;
    if (++g_done == g_total) {
        g_t1 = now_ms();
        g_finished = true;
    }
    dn_stream_close_write(s);
    g_start(r->cl);
}

static void rq_close(dn_stream *s, int status, void *arg)
{
    req *r = arg;
    if (!r->answered)
        g_fail("GET_VALUE stream", status ? status : DN_ECLOSED);
    free(r->buf);
    free(r);
}

static void rq_eof(dn_stream *s, void *arg) {}

static void rq_opened(dn_stream *s, int status, void *arg)
{
    req *r = arg;
    if (status) {
        free(r);
        return g_fail("open stream", status);
    }
    static const dn_stream_callbacks cbs = {
        .on_data = rq_data, .on_eof = rq_eof, .on_close = rq_close};
    dn_stream_set_callbacks(s, &cbs, r);
    int rc = dn_stream_write(s, request, request_len);
    if (rc)
        g_fail("write", rc);
}

static void g_start(client *cl)
{
    if (g_started >= g_total || g_err)
        return;
    req *r = calloc(1, sizeof *r);
    if (!r)
        return g_fail("request", DN_ENOMEM);
    g_started++;
    r->cl = cl;
    r->t0 = now_ms();
    int rc = dn_conn_open_stream(cl->c, protocol, rq_opened, r);
    if (rc) {
        free(r);
        g_fail("open stream", rc);
    }
}

static void g_dialed_cb(dn_host *h, dn_conn *c, int status, void *arg)
{
    client *cl = arg;
    if (status)
        return g_fail("dial", status);
    cl->c = c;
    if (++g_dialed == nclients)
        g_finished = true;
}

static int run_get(const char *addr, const char *key, unsigned n)
{
    dn_multiaddr target;
    if (dn_multiaddr_parse(addr, &target)) {
        fprintf(stderr, "kad_bench: bad multiaddr %s: %s\n", addr, dn_multiaddr_error());
        return 2;
    }
    size_t klen = strlen(key);
    if (!klen || klen > 512)
        return 2;
    /* Message{type 1 = GET_VALUE, key 2}, uvarint-length-prefixed. */
    uint8_t msg[600];
    size_t m = 0;
    msg[m++] = 0x08;
    msg[m++] = 0x01;
    msg[m++] = 0x12;
    m += put_uvarint(msg + m, klen);
    memcpy(msg + m, key, klen);
    m += klen;
    request_len = put_uvarint(request, m);
    memcpy(request + request_len, msg, m);
    request_len += m;

    clients = calloc(nclients, sizeof *clients);
    g_rtt = calloc(n, sizeof *g_rtt);
    if (!clients || !g_rtt)
        return 1;
    for (unsigned i = 0; i < nclients; i++) {
        clients[i].h = new_host();
        int rc = dn_host_dial(clients[i].h, &target, g_dialed_cb, &clients[i]);
        if (rc)
            die("dial", rc);
    }
    if (!run_until(&g_finished, 30000) || g_err)
        return 1;
    g_total = n;
    g_finished = false;
    g_t0 = now_ms();
    for (unsigned w = 0; w < window; w++)
        for (unsigned i = 0; i < nclients; i++)
            g_start(&clients[i]);
    if (!run_until(&g_finished, 300000)) {
        fprintf(stderr, "kad_bench: timed out with %u of %u answered\n", g_done, g_total);
        return 1;
    }
    if (g_err)
        return 1;
    double s = (g_t1 - g_t0) / 1e3;
    qsort(g_rtt, n, sizeof *g_rtt, cmp_dbl);
    printf("{\"n\":%u,\"clients\":%u,\"window\":%u,\"seconds\":%.4f,\"per_sec\":%.1f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
           n, nclients, window, s, n / s, pct(g_rtt, n, 50) * 1e3, pct(g_rtt, n, 99) * 1e3);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: kad_bench serve [--nodes 50] [--degree 3] [--seed S] [--lookups L] "
                    "[--value-size B]\n"
                    "       kad_bench get MA KEY [-n N] [--clients C] [--window W] "
                    "[--protocol P]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1], *addr = NULL, *key = NULL;
    unsigned long nodes = 50, degree = 3, seed = 1, lookups = 100, vsize = 1024, n = 20000, cl = 16,
                  win = 4;
    static const struct option lo[] = {{"nodes", required_argument, NULL, 'N'},
                                       {"degree", required_argument, NULL, 'd'},
                                       {"seed", required_argument, NULL, 's'},
                                       {"lookups", required_argument, NULL, 'L'},
                                       {"value-size", required_argument, NULL, 'v'},
                                       {"clients", required_argument, NULL, 'c'},
                                       {"window", required_argument, NULL, 'w'},
                                       {"protocol", required_argument, NULL, 'P'},
                                       {NULL, 0, NULL, 0}};
    optind = 2;
    if (!strcmp(mode, "get")) {
        if (argc < 4)
            usage();
        addr = argv[2];
        key = argv[3];
        optind = 4;
    }
    int c;
    while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
        switch (c) {
        case 'N': nodes = strtoul(optarg, NULL, 10); break;
        case 'd': degree = strtoul(optarg, NULL, 10); break;
        case 's': seed = strtoul(optarg, NULL, 10); break;
        case 'L': lookups = strtoul(optarg, NULL, 10); break;
        case 'v': vsize = strtoul(optarg, NULL, 10); break;
        case 'n': n = strtoul(optarg, NULL, 10); break;
        case 'c': cl = strtoul(optarg, NULL, 10); break;
        case 'w': win = strtoul(optarg, NULL, 10); break;
        case 'P': protocol = optarg; break;
        default: usage();
        }
    }
    if (nodes < 2 || nodes > MAX_NODES || !degree || degree > 16 || !lookups || lookups > 100000 ||
        vsize > 65536 || !n || !cl || cl > MAX_CLIENTS || !win || win > 64)
        usage();
    if (sodium_init() < 0)
        return 1;
    dn_log_set_level(DN_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    if (!strcmp(mode, "serve"))
        return run_serve((unsigned)nodes, (unsigned)degree, (uint32_t)seed, (unsigned)lookups,
                         (size_t)vsize);
    if (!strcmp(mode, "get")) {
        nclients = (unsigned)cl;
        window = (unsigned)win;
        return run_get(addr, key, (unsigned)n);
    }
    usage();
}
