/* gossip_bench — gossipsub's figures (issue 10), measured on the library
 * (dmsnet/pubsub.h): a network of hosts in this one process.
 *
 *   gossip_bench [--nodes 30] [--degree 3] [--seed S] [--publishers 1]
 *                [--size B] [-n N] [--window W] [--lat-n M] [--mem-topics T]
 *
 * The same network and traffic as its js twin tests/interop/js/bench-gossip.mjs
 * (same graph from the same seed, same phases, same JSON keys):
 *   - --nodes hosts on 127.0.0.1, each with the pubsub service; node i dials
 *     one random node below it (so the graph is connected), then every node
 *     dials degree-1 more random ones (xorshift32 from the seed). All
 *     subscribe to one topic; the phases start once every node sees each of
 *     its neighbours on the topic and has a mesh, and a heartbeat more;
 *   - throughput: N messages of B bytes, published round-robin by the first
 *     P nodes, at most W not yet delivered to every other node at a time;
 *     deliveries/s = N x (nodes-1) / (first publish to last delivery);
 *   - latency: M messages one at a time, the delay from dn_pubsub_publish to
 *     each node's delivery callback (one clock: one process).
 *   -> {"impl":"dmsnet","nodes":..,"size":B,"n":N,"msgs_per_sec":..,
 *       "deliveries_per_sec":..,"lat_n":M,"lat_p50_ms":..,"lat_p99_ms":..,
 *       "complete":true}
 * --mem-topics T, with no traffic: every node subscribes to T more topics;
 * VmRSS before and after (malloc_trim first; the last topic seen by every
 * neighbour and two heartbeats passed), per subscribed topic per node (what
 * a subscription costs the node and its neighbours' view of it), and per
 * topic per link end: {"mem_topics":T,"per_topic_per_node_bytes":..,...}.
 *
 * Each message carries its index and phase in its first 8 bytes. The whole
 * network shares one core here, as the js network does in its process. */
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/log.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/protocols.h"
#include "dmsnet/pubsub.h"

#define TOPIC "/dmsnet/bench/1.0.0"
#define MAX_NODES 256
#define STALL_MS 20000 /* no delivery for this long: the phase ends incomplete */

typedef struct node {
    dn_host *h;
    dn_pubsub *ps;
    dn_multiaddr ma; /* with /p2p */
    unsigned nnb;
    unsigned nb[MAX_NODES]; /* neighbours' indices */
} node;

static uv_loop_t *loop;
static node *nodes;
static unsigned nnodes, npublishers;
static uv_timer_t tick;

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "gossip_bench: %s: %s\n", what, dn_strerror(rc));
    exit(1);
}

/* xorshift32, as bench-gossip.mjs: the same seed gives the same graph. */
static uint32_t rng_state;
static uint32_t rnd(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static bool linked(unsigned a, unsigned b)
{
    for (unsigned i = 0; i < nodes[a].nnb; i++)
        if (nodes[a].nb[i] == b)
            return true;
    return false;
}

static unsigned dials_pending;
static void dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status)
        die("dial", status);
    dials_pending--;
}

static unsigned nlinks;
static void link_nodes(unsigned a, unsigned b)
{
    if (a == b || linked(a, b))
        return;
    nodes[a].nb[nodes[a].nnb++] = b;
    nodes[b].nb[nodes[b].nnb++] = a;
    nlinks++;
    dials_pending++;
    int rc = dn_host_dial(nodes[a].h, &nodes[b].ma, dialed, NULL);
    if (rc)
        die("dial", rc);
}

/* Run the loop until cond() holds (true) or ms pass (false); cond NULL:
 * just let ms pass. The 20 ms tick bounds how long one turn can block. */
static bool run_until(bool (*cond)(void), double ms)
{
    double end = now_ms() + ms;
    while (!(cond && cond())) {
        if (now_ms() >= end)
            return false;
        uv_run(loop, UV_RUN_ONCE);
    }
    return true;
}

static void on_tick(uv_timer_t *t) {}

static bool dials_done(void)
{
    return dials_pending == 0;
}

static const char *cur_topic = TOPIC;
/* Every node lists each neighbour as subscribed to cur_topic. */
static bool topic_known(void)
{
    static dn_peerid peers[MAX_NODES];
    for (unsigned i = 0; i < nnodes; i++) {
        size_t n = dn_pubsub_topic_peers(nodes[i].ps, cur_topic, peers, MAX_NODES);
        if (n > MAX_NODES)
            n = MAX_NODES;
        for (unsigned j = 0; j < nodes[i].nnb; j++) {
            const dn_peerid *want = dn_host_peerid(nodes[nodes[i].nb[j]].h);
            bool found = false;
            for (size_t k = 0; k < n && !found; k++)
                found = dn_peerid_equal(&peers[k], want);
            if (!found)
                return false;
        }
    }
    return true;
}

static bool meshes_formed(void)
{
    dn_peerid p[1];
    for (unsigned i = 0; i < nnodes; i++)
        if (!dn_pubsub_mesh_peers(nodes[i].ps, TOPIC, p, 1))
            return false;
    return true;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* ---- traffic ---------------------------------------------------------- */

static unsigned want; /* deliveries per message: nnodes - 1 */
static uint32_t phase_no;
static unsigned ph_count, ph_next, ph_done, ph_to_publish;
static unsigned *got;
static double *t_pub;
static double last_delivery;
static double *lat; /* the latency phase's deliveries, or NULL */
static size_t nlat, cap_lat;
static uint8_t *payload;
static size_t payload_len;

static void on_message(void *arg, const dn_pubsub_message *m)
{
    if (m->len < 8)
        return;
    uint32_t idx, ph;
    memcpy(&idx, m->data, 4);
    memcpy(&ph, m->data + 4, 4);
    if (ph != phase_no || idx >= ph_count)
        return; /* a late one from an earlier phase */
    double t = now_ms();
    last_delivery = t;
    if (lat && nlat < cap_lat)
        lat[nlat++] = t - t_pub[idx];
    if (++got[idx] == want) {
        ph_done++;
        ph_to_publish++; /* published from the main loop, not from inside the router */
    }
}

static void publish_next(void)
{
    if (ph_next >= ph_count)
        return;
    uint32_t idx = ph_next++;
    memcpy(payload, &idx, 4);
    memcpy(payload + 4, &phase_no, 4);
    t_pub[idx] = now_ms();
    int rc = dn_pubsub_publish(nodes[idx % npublishers].ps, TOPIC, payload, payload_len);
    if (rc < 0)
        die("publish", rc);
}

/* count messages, window at a time: the seconds from the first publish to
 * the last full delivery, or -1 when the network stalled. */
static double phase(unsigned count, unsigned window)
{
    free(got);
    free(t_pub);
    got = calloc(count, sizeof *got);
    t_pub = calloc(count, sizeof *t_pub);
    if (!got || !t_pub)
        die("phase", DN_ENOMEM);
    phase_no++;
    ph_count = count;
    ph_next = ph_done = ph_to_publish = 0;
    double t0 = now_ms();
    last_delivery = t0;
    for (unsigned w = 0; w < window; w++)
        publish_next();
    while (ph_done < count) {
        uv_run(loop, UV_RUN_ONCE);
        for (; ph_to_publish; ph_to_publish--)
            publish_next();
        if (now_ms() - last_delivery > STALL_MS)
            return -1;
    }
    return (now_ms() - t0) / 1e3;
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

static void usage(void)
{
    fprintf(stderr, "usage: gossip_bench [--nodes 30] [--degree 3] [--seed S] [--publishers 1]\n"
                    "                    [--size B] [-n N] [--window W] [--lat-n M] "
                    "[--mem-topics T]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned long n_nodes = 30, degree = 3, seed = 1, pubs = 1, size = 1024, n = 500, window = 8,
                  lat_n = 100, mem_topics = 0;
    static const struct option lo[] = {{"nodes", required_argument, NULL, 'N'},
                                       {"degree", required_argument, NULL, 'd'},
                                       {"seed", required_argument, NULL, 's'},
                                       {"publishers", required_argument, NULL, 'p'},
                                       {"size", required_argument, NULL, 'b'},
                                       {"window", required_argument, NULL, 'w'},
                                       {"lat-n", required_argument, NULL, 'l'},
                                       {"mem-topics", required_argument, NULL, 'm'},
                                       {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
        switch (c) {
        case 'N': n_nodes = strtoul(optarg, NULL, 10); break;
        case 'd': degree = strtoul(optarg, NULL, 10); break;
        case 's': seed = strtoul(optarg, NULL, 10); break;
        case 'p': pubs = strtoul(optarg, NULL, 10); break;
        case 'b': size = strtoul(optarg, NULL, 10); break;
        case 'n': n = strtoul(optarg, NULL, 10); break;
        case 'w': window = strtoul(optarg, NULL, 10); break;
        case 'l': lat_n = strtoul(optarg, NULL, 10); break;
        case 'm': mem_topics = strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (n_nodes < 2 || n_nodes > MAX_NODES || !degree || degree > 16 || !pubs || pubs > n_nodes ||
        size < 8 || size > DN_PUBSUB_MAX_DATA || !n || !window || !lat_n || mem_topics > 100000)
        usage();
    if (sodium_init() < 0)
        return 1;
    dn_log_set_level(DN_LOG_ERROR);
    loop = uv_default_loop();
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    nnodes = (unsigned)n_nodes;
    npublishers = (unsigned)pubs;
    want = nnodes - 1;
    nodes = calloc(nnodes, sizeof *nodes);
    payload_len = size;
    payload = malloc(size);
    if (!nodes || !payload)
        return 1;
    memset(payload, 0x5a, size);

    dn_multiaddr lma;
    if (dn_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &lma))
        return 1;
    for (unsigned i = 0; i < nnodes; i++) {
        dn_privkey *k; /* outlives the host: the process exits right after */
        int rc = dn_privkey_generate(DN_KEY_ED25519, &k);
        if (rc)
            die("keygen", rc);
        dn_host_config cfg = {.size = sizeof(dn_host_config), .identity = k};
        if ((rc = dn_host_new(loop, &cfg, &nodes[i].h)))
            die("host", rc);
        dn_identify_attach(nodes[i].h);
        dn_ping_attach(nodes[i].h);
        dn_pubsub_config pc = DN_PUBSUB_CONFIG_INIT;
        if ((rc = dn_pubsub_attach(nodes[i].h, &pc, &nodes[i].ps)))
            die("pubsub", rc);
        if ((rc = dn_host_listen(nodes[i].h, &lma)))
            die("listen", rc);
        dn_multiaddr bound;
        char s[512], id[128];
        if (dn_host_listen_addrs(nodes[i].h, &bound, 1) != 1 ||
            dn_multiaddr_to_string(&bound, s, sizeof s) < 0 ||
            dn_peerid_to_string(dn_host_peerid(nodes[i].h), id, sizeof id) < 0)
            die("listen address", DN_EINVAL);
        char full[700];
        snprintf(full, sizeof full, "%s/p2p/%s", s, id);
        if (dn_multiaddr_parse(full, &nodes[i].ma))
            die("listen address", DN_EINVAL);
    }
    rng_state = (uint32_t)seed ? (uint32_t)seed : 1;
    for (unsigned i = 1; i < nnodes; i++)
        link_nodes(i, rnd() % i);
    for (unsigned i = 0; i < nnodes; i++)
        for (unsigned e = 1; e < degree; e++)
            link_nodes(i, rnd() % nnodes);
    if (!run_until(dials_done, 30000))
        die("dials", DN_ETIMEOUT);

    static dn_pubsub_sub *sub;
    for (unsigned i = 0; i < nnodes; i++) {
        int rc = dn_pubsub_subscribe(nodes[i].ps, TOPIC, on_message, &nodes[i], &sub);
        if (rc)
            die("subscribe", rc);
    }
    if (!run_until(topic_known, 30000))
        die("waiting for the subscriptions", DN_ETIMEOUT);

    if (mem_topics) {
        run_until(NULL, 2500); /* two heartbeats: meshes formed */
        malloc_trim(0);
        long before = rss_kib();
        static char name[64];
        for (unsigned t = 0; t < mem_topics; t++) {
            snprintf(name, sizeof name, "/dmsnet/bench/mem/%u", t);
            for (unsigned i = 0; i < nnodes; i++) {
                int rc = dn_pubsub_subscribe(nodes[i].ps, name, on_message, &nodes[i], &sub);
                if (rc)
                    die("subscribe", rc);
            }
        }
        cur_topic = name; /* the last one */
        if (!run_until(topic_known, 60000))
            die("waiting for the last topic's subscriptions", DN_ETIMEOUT);
        run_until(NULL, 2500);
        malloc_trim(0);
        long after = rss_kib();
        printf("{\"impl\":\"dmsnet\",\"nodes\":%u,\"mem_topics\":%lu,\"rss_before_kib\":%ld,"
               "\"rss_after_kib\":%ld,\"per_topic_per_node_bytes\":%.1f,"
               "\"per_topic_per_link_bytes\":%.1f}\n",
               nnodes, mem_topics, before, after,
               (double)(after - before) * 1024 / ((double)nnodes * (double)mem_topics),
               (double)(after - before) * 1024 / (2.0 * nlinks * (double)mem_topics));
        return 0;
    }

    if (!run_until(meshes_formed, 30000))
        die("waiting for the meshes", DN_ETIMEOUT);
    run_until(NULL, 1500); /* a heartbeat more: grafted both ways */

    phase(n < 20 ? (unsigned)n : 20, 1); /* warm-up through every path */
    double secs = phase((unsigned)n, (unsigned)window);
    uint64_t delivered = 0;
    for (unsigned i = 0; i < n; i++)
        delivered += got[i];
    cap_lat = (size_t)lat_n * want;
    lat = calloc(cap_lat, sizeof *lat);
    if (!lat)
        return 1;
    double lat_secs = phase((unsigned)lat_n, 1);
    qsort(lat, nlat, sizeof *lat, cmp_dbl);
    bool complete = secs > 0 && lat_secs > 0;
    printf("{\"impl\":\"dmsnet\",\"nodes\":%u,\"links\":%u,\"publishers\":%u,\"size\":%zu,"
           "\"n\":%lu,\"window\":%lu,",
           nnodes, nlinks, npublishers, payload_len, n, window);
    if (secs > 0)
        printf("\"seconds\":%.4f,\"msgs_per_sec\":%.1f,\"deliveries_per_sec\":%.1f,", secs,
               n / secs, n * want / secs);
    else
        printf("\"seconds\":null,\"msgs_per_sec\":null,\"deliveries_per_sec\":null,");
    printf("\"delivered_fraction\":%.4f,\"lat_n\":%lu,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,"
           "\"complete\":%s}\n",
           (double)delivered / ((double)n * want), lat_n, pct(lat, nlat, 50), pct(lat, nlat, 99),
           complete ? "true" : "false");
    dn_pubsub_stats st;
    dn_pubsub_get_stats(nodes[0].ps, &st);
    fprintf(stderr, "gossip_bench: node 0: %llu rpcs in, %llu msgs in, %llu dup, %llu dropped\n",
            (unsigned long long)st.rpcs_in, (unsigned long long)st.msgs_in,
            (unsigned long long)st.msgs_dup, (unsigned long long)st.frames_dropped);
    return complete ? 0 : 1;
}
