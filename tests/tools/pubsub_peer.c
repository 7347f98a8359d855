/* pubsub_peer: a dmsnet host with identify, ping and the pubsub service,
 * driven from the command line, for the interop tests against js-libp2p
 * (tests/interop/pubsub_js.test.sh; js/gossip-peer.mjs plays the same role).
 *
 *   pubsub_peer [--listen MA] [--dial MA]... [--sub TOPIC]... [--floodsub]
 *               [--heartbeat-ms N] [--pub TOPIC --count N [--data PREFIX]
 *               [--wait-peers N] [--wait-mesh N] [--pub-delay-ms N]
 *               [--pub-interval-ms N]] [--hold SECONDS]
 *
 * One JSON object per line on stdout:
 *   {"event":"listening","addrs":["<ma>/p2p/<id>"],"peerId":"<id>"}
 *   {"event":"peers","topic":T,"peers":N,"mesh":M}      (when either changes)
 *   {"event":"message","topic":T,"from":ID,"via":ID,"seqno":"N","data":"<base64>"}
 *   {"event":"published","topic":T,"data":"<base64>","sent":N}
 *   {"event":"stats",...}                                 (at exit)
 * Publishing starts once the topic has --wait-peers subscribed peers (default
 * 1) and --wait-mesh mesh peers (default 0), plus --pub-delay-ms; message i
 * (1..N) carries "PREFIX-i". Exits after --hold seconds (default: on SIGTERM
 * / SIGINT). Exit status 0, 1 on a failure (an "error" line), 2 on bad
 * arguments. Peer-supplied bytes are printed only as base64. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/protocols.h"
#include "dmsnet/pubsub.h"

#define MAX_LIST 16

typedef struct topic_state {
    const char *name;
    size_t peers, mesh;
    bool printed;
} topic_state;

static struct {
    const char *listen;
    const char *dial[MAX_LIST];
    int ndial;
    topic_state subs[MAX_LIST];
    int nsubs;
    bool floodsub;
    unsigned heartbeat_ms;
    const char *pub;
    int count;
    const char *data;
    unsigned wait_peers, wait_mesh, pub_delay_ms, pub_interval_ms;
    double hold;
} opt = {.listen = "/ip4/127.0.0.1/tcp/0", .data = "msg", .wait_peers = 1, .pub_interval_ms = 50};

static uv_loop_t loop;
static dn_host *host;
static dn_pubsub *ps;
static uv_timer_t poll_timer, hold_timer;
static uv_signal_t sigterm, sigint;
static int published;
static uint64_t ready_at; /* loop time the publish condition first held (0: not yet) */
static uint64_t last_pub;
static bool quitting;
static int exit_code;

static void print_b64(const uint8_t *p, size_t n)
{
    size_t cap = dn_base64_enc_len(n) + 1;
    char *b = malloc(cap);
    if (!b || dn_base64_encode(p, n, b, cap) < 0) {
        free(b);
        fputs("\"\"", stdout);
        return;
    }
    printf("\"%s\"", b);
    free(b);
}

static void on_message(void *arg, const dn_pubsub_message *m)
{
    char from[128], via[128];
    dn_peerid_to_string(&m->from, from, sizeof from);
    dn_peerid_to_string(&m->via, via, sizeof via);
    /* Our own topic names (what we subscribed to) are safe to print. */
    printf("{\"event\":\"message\",\"topic\":\"%s\",\"from\":\"%s\",\"via\":\"%s\","
           "\"seqno\":\"%llu\",\"data\":",
           (const char *)arg, from, via, (unsigned long long)m->seqno);
    print_b64(m->data, m->len);
    printf("}\n");
}

static void quit(void)
{
    if (quitting)
        return;
    quitting = true;
    dn_pubsub_stats st;
    dn_pubsub_get_stats(ps, &st);
    printf("{\"event\":\"stats\",\"rpcs_in\":%llu,\"rpcs_bad\":%llu,\"msgs_in\":%llu,"
           "\"msgs_delivered\":%llu,\"msgs_invalid\":%llu,\"msgs_dup\":%llu,"
           "\"frames_dropped\":%llu,\"peers\":%u}\n",
           (unsigned long long)st.rpcs_in, (unsigned long long)st.rpcs_bad,
           (unsigned long long)st.msgs_in, (unsigned long long)st.msgs_delivered,
           (unsigned long long)st.msgs_invalid, (unsigned long long)st.msgs_dup,
           (unsigned long long)st.frames_dropped, st.peers);
    uv_timer_stop(&poll_timer);
    uv_timer_stop(&hold_timer);
    uv_close((uv_handle_t *)&poll_timer, NULL);
    uv_close((uv_handle_t *)&hold_timer, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    dn_host_close(host, NULL, NULL);
}

static void on_signal(uv_signal_t *s, int sig)
{
    quit();
}

static void on_hold(uv_timer_t *t)
{
    quit();
}

static void report(topic_state *t)
{
    size_t p = dn_pubsub_topic_peers(ps, t->name, NULL, 0);
    size_t m = dn_pubsub_mesh_peers(ps, t->name, NULL, 0);
    if (t->printed && p == t->peers && m == t->mesh)
        return;
    t->printed = true;
    t->peers = p;
    t->mesh = m;
    printf("{\"event\":\"peers\",\"topic\":\"%s\",\"peers\":%zu,\"mesh\":%zu}\n", t->name, p, m);
}

static void on_poll(uv_timer_t *t)
{
    for (int i = 0; i < opt.nsubs; i++)
        report(&opt.subs[i]);
    if (!opt.pub || published >= opt.count)
        return;
    uint64_t now = uv_now(&loop);
    if (!ready_at) {
        size_t p = dn_pubsub_topic_peers(ps, opt.pub, NULL, 0);
        size_t m = dn_pubsub_mesh_peers(ps, opt.pub, NULL, 0);
        if (p < opt.wait_peers || m < opt.wait_mesh)
            return;
        ready_at = now;
    }
    if (now < ready_at + opt.pub_delay_ms || (published && now < last_pub + opt.pub_interval_ms))
        return;
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s-%d", opt.data, published + 1);
    int rc = dn_pubsub_publish(ps, opt.pub, buf, (size_t)n);
    if (rc < 0) {
        printf("{\"event\":\"error\",\"message\":\"publish: %s\"}\n", dn_strerror(rc));
        exit_code = 1;
        quit();
        return;
    }
    published++;
    last_pub = now;
    printf("{\"event\":\"published\",\"topic\":\"%s\",\"data\":", opt.pub);
    print_b64((const uint8_t *)buf, (size_t)n);
    printf(",\"sent\":%d}\n", rc);
}

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status) {
        printf("{\"event\":\"error\",\"message\":\"dial %s: %s\"}\n", (const char *)arg,
               dn_strerror(status));
        exit_code = 1;
        quit();
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: pubsub_peer [--listen MA] [--dial MA]... [--sub TOPIC]... "
                    "[--floodsub] [--heartbeat-ms N] [--pub TOPIC --count N [--data PREFIX] "
                    "[--wait-peers N] [--wait-mesh N] [--pub-delay-ms N] [--pub-interval-ms N]] "
                    "[--hold SECONDS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--floodsub")) {
            opt.floodsub = true;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (!strcmp(a, "--listen"))
            opt.listen = v;
        else if (!strcmp(a, "--dial") && opt.ndial < MAX_LIST)
            opt.dial[opt.ndial++] = v;
        else if (!strcmp(a, "--sub") && opt.nsubs < MAX_LIST)
            opt.subs[opt.nsubs++].name = v;
        else if (!strcmp(a, "--heartbeat-ms"))
            opt.heartbeat_ms = (unsigned)atoi(v);
        else if (!strcmp(a, "--pub"))
            opt.pub = v;
        else if (!strcmp(a, "--count"))
            opt.count = atoi(v);
        else if (!strcmp(a, "--data"))
            opt.data = v;
        else if (!strcmp(a, "--wait-peers"))
            opt.wait_peers = (unsigned)atoi(v);
        else if (!strcmp(a, "--wait-mesh"))
            opt.wait_mesh = (unsigned)atoi(v);
        else if (!strcmp(a, "--pub-delay-ms"))
            opt.pub_delay_ms = (unsigned)atoi(v);
        else if (!strcmp(a, "--pub-interval-ms"))
            opt.pub_interval_ms = (unsigned)atoi(v);
        else if (!strcmp(a, "--hold"))
            opt.hold = atof(v);
        else
            return usage();
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    dn_privkey *key;
    if (dn_privkey_generate(DN_KEY_ED25519, &key))
        return 1;
    dn_host_config hc = DN_HOST_CONFIG_INIT;
    hc.identity = key;
    hc.agent_version = "dmsnet-pubsub-peer";
    dn_multiaddr ma;
    int rc = dn_host_new(&loop, &hc, &host);
    if (!rc)
        rc = dn_multiaddr_parse(opt.listen, &ma);
    if (!rc)
        rc = dn_host_listen(host, &ma);
    if (!rc)
        rc = dn_identify_attach(host);
    if (!rc)
        rc = dn_ping_attach(host);
    dn_pubsub_config pc = DN_PUBSUB_CONFIG_INIT;
    pc.floodsub_only = opt.floodsub;
    pc.heartbeat_ms = opt.heartbeat_ms;
    if (!rc)
        rc = dn_pubsub_attach(host, &pc, &ps);
    for (int i = 0; !rc && i < opt.nsubs; i++) {
        dn_pubsub_sub *s;
        rc = dn_pubsub_subscribe(ps, opt.subs[i].name, on_message, (void *)opt.subs[i].name, &s);
    }
    if (rc) {
        printf("{\"event\":\"error\",\"message\":\"setup: %s\"}\n", dn_strerror(rc));
        return 1;
    }
    char id[128], s[DN_MULTIADDR_STR_MAX];
    dn_peerid_to_string(dn_host_peerid(host), id, sizeof id);
    dn_multiaddr la;
    dn_host_listen_addrs(host, &la, 1);
    dn_multiaddr_to_string(&la, s, sizeof s);
    printf("{\"event\":\"listening\",\"addrs\":[\"%s/p2p/%s\"],\"peerId\":\"%s\"}\n", s, id, id);
    for (int i = 0; i < opt.ndial; i++) {
        dn_multiaddr d;
        if (dn_multiaddr_parse(opt.dial[i], &d) ||
            dn_host_dial(host, &d, on_dial, (void *)opt.dial[i])) {
            printf("{\"event\":\"error\",\"message\":\"bad dial address\"}\n");
            return 1;
        }
    }
    uv_timer_init(&loop, &poll_timer);
    uv_timer_start(&poll_timer, on_poll, 20, 20);
    uv_timer_init(&loop, &hold_timer);
    if (opt.hold > 0)
        uv_timer_start(&hold_timer, on_hold, (uint64_t)(opt.hold * 1000), 0);
    uv_signal_init(&loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(&loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    dn_privkey_free(key);
    return exit_code;
}
