/* A dmsnet host with identify, ping and AutoNAT v2, for the AutoNAT
 * interop test (tests/interop/autonat_js.test.sh), without the node.
 *
 *   autonat_peer [--listen MA]... [--dial MA]... [--candidate MA]...
 *                [--no-server] [--no-client] [--allow-private]
 *                [--confidence N] [--interval-ms N] [--timeout-ms N]
 *                [--until public|private [--min-failed N]] [--seconds N]
 *
 * Prints "listening on <ma>/p2p/<id>" per listen address, "dialed <ma>"
 * or "dial failed <ma>: <why>", "reachability <verdict>" on each change,
 * and at exit "reachable <ma>" per reachable address and one "stats ..."
 * line of counters. With --until it exits 0 as soon as that verdict is
 * reached (and, with --min-failed, at least N probes answered "not
 * reachable"), 3 if --seconds pass first; without, it runs --seconds (default
 * 30) or until SIGTERM/SIGINT, then exits 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/protocols.h"

#define MAX_ARGS 16

static const char *const names[] = {"unknown", "public", "private"};
static int until = -1, exit_code;
static unsigned long min_failed;
static uv_loop_t loop;
static dn_autonat *an;

static bool done_yet(void)
{
    dn_autonat_stats st;
    dn_autonat_get_stats(an, &st);
    return (int)dn_autonat_reachability(an) == until && st.probe_failed >= min_failed;
}

static void on_verdict(void *arg, dn_reachability r)
{
    printf("reachability %s\n", names[r]);
    fflush(stdout);
    if (done_yet())
        uv_stop(&loop);
}

static void on_poll(uv_timer_t *t)
{
    if (until >= 0 && done_yet())
        uv_stop(t->loop);
}

static void on_timer(uv_timer_t *t)
{
    if (until >= 0)
        exit_code = 3;
    uv_stop(t->loop);
}
static void on_signal(uv_signal_t *s, int signum)
{
    uv_stop(s->loop);
}

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status)
        printf("dial failed %s: %s\n", (const char *)arg, dn_strerror(status));
    else
        printf("dialed %s\n", (const char *)arg);
    fflush(stdout);
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: autonat_peer [--listen MA]... [--dial MA]... [--candidate MA]...\n"
                    "       [--no-server] [--no-client] [--allow-private] [--confidence N]\n"
                    "       [--interval-ms N] [--timeout-ms N]\n"
                    "       [--until public|private [--min-failed N]] [--seconds N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *listen[MAX_ARGS], *dial[MAX_ARGS], *cand[MAX_ARGS];
    size_t nl = 0, nd = 0, nc = 0;
    unsigned long seconds = 30;
    dn_autonat_config acfg = DN_AUTONAT_CONFIG_INIT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-server")) {
            acfg.server = false;
        } else if (!strcmp(a, "--no-client")) {
            acfg.client = false;
        } else if (!strcmp(a, "--allow-private")) {
            acfg.allow_private = true;
        } else if (!v) {
            return usage();
        } else if (!strcmp(a, "--listen") && nl < MAX_ARGS) {
            listen[nl++] = argv[++i];
        } else if (!strcmp(a, "--dial") && nd < MAX_ARGS) {
            dial[nd++] = argv[++i];
        } else if (!strcmp(a, "--candidate") && nc < MAX_ARGS) {
            cand[nc++] = argv[++i];
        } else if (!strcmp(a, "--confidence")) {
            acfg.confidence = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--interval-ms")) {
            acfg.probe_interval_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--timeout-ms")) {
            acfg.timeout_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--min-failed")) {
            min_failed = strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--seconds")) {
            seconds = strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--until")) {
            i++;
            until = !strcmp(v, "public")    ? DN_REACHABILITY_PUBLIC
                    : !strcmp(v, "private") ? DN_REACHABILITY_PRIVATE
                                            : -2;
            if (until == -2)
                return usage();
        } else {
            return usage();
        }
    }
    if (seconds == 0 || seconds > 600)
        return usage();
    uv_loop_init(&loop);
    dn_privkey *key = NULL;
    dn_host *h = NULL;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &key);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = key;
    if (!rc)
        rc = dn_host_new(&loop, &cfg, &h);
    if (!rc)
        rc = dn_identify_attach(h);
    if (!rc)
        rc = dn_ping_attach(h);
    acfg.on_reachability = on_verdict;
    if (!rc)
        rc = dn_autonat_attach(h, &acfg, &an);
    for (size_t i = 0; !rc && i < nl; i++) {
        dn_multiaddr ma;
        rc = dn_multiaddr_parse(listen[i], &ma);
        if (!rc)
            rc = dn_host_listen(h, &ma);
    }
    for (size_t i = 0; !rc && i < nc; i++) {
        dn_multiaddr ma;
        rc = dn_multiaddr_parse(cand[i], &ma);
        if (!rc)
            rc = dn_autonat_add_candidate(an, &ma);
    }
    if (rc) {
        fprintf(stderr, "autonat_peer: cannot start: %s\n", dn_strerror(rc));
        return 1;
    }
    char text[DN_MULTIADDR_STR_MAX], id[DN_PEERID_STR_MAX];
    dn_peerid_to_string(dn_host_peerid(h), id, sizeof id);
    dn_multiaddr ls[MAX_ARGS];
    size_t n = dn_host_listen_addrs(h, ls, MAX_ARGS);
    for (size_t i = 0; i < n && i < MAX_ARGS; i++) {
        dn_multiaddr_to_string(&ls[i], text, sizeof text);
        printf("listening on %s/p2p/%s\n", text, id);
    }
    printf("peer %s\n", id);
    fflush(stdout);
    for (size_t i = 0; i < nd; i++) {
        dn_multiaddr ma;
        if (dn_multiaddr_parse(dial[i], &ma) || dn_host_dial(h, &ma, on_dial, (void *)dial[i])) {
            fprintf(stderr, "autonat_peer: cannot dial %s\n", dial[i]);
            return 1;
        }
    }
    uv_timer_t timer, poll;
    uv_signal_t term, intr;
    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, on_timer, seconds * 1000, 0);
    uv_timer_init(&loop, &poll);
    uv_timer_start(&poll, on_poll, 50, 50);
    uv_signal_init(&loop, &term);
    uv_signal_start(&term, on_signal, SIGTERM);
    uv_signal_init(&loop, &intr);
    uv_signal_start(&intr, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);

    dn_multiaddr got[32];
    size_t ng = dn_autonat_reachable_addrs(an, got, 32);
    for (size_t i = 0; i < ng && i < 32; i++) {
        dn_multiaddr_to_string(&got[i], text, sizeof text);
        printf("reachable %s\n", text);
    }
    dn_autonat_stats st;
    dn_autonat_get_stats(an, &st);
    printf("stats requests=%llu rejected=%llu refused=%llu dial_data_asked=%llu "
           "dial_data_bytes=%llu dial_backs_ok=%llu dial_errors=%llu probes=%llu probe_ok=%llu "
           "probe_failed=%llu probe_other=%llu dial_data_sent=%llu bad_dial_backs=%llu\n",
           (unsigned long long)st.requests, (unsigned long long)st.rejected,
           (unsigned long long)st.refused, (unsigned long long)st.dial_data_asked,
           (unsigned long long)st.dial_data_bytes, (unsigned long long)st.dial_backs_ok,
           (unsigned long long)st.dial_errors, (unsigned long long)st.probes,
           (unsigned long long)st.probe_ok, (unsigned long long)st.probe_failed,
           (unsigned long long)st.probe_other, (unsigned long long)st.dial_data_sent,
           (unsigned long long)st.bad_dial_backs);
    printf("verdict %s\n", names[dn_autonat_reachability(an)]);
    fflush(stdout);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&poll, NULL);
    uv_close((uv_handle_t *)&term, NULL);
    uv_close((uv_handle_t *)&intr, NULL);
    int done = 0;
    dn_host_close(h, closed, &done);
    for (int i = 0; i < 1000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    dn_privkey_free(key);
    return exit_code;
}
