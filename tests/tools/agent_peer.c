/* A dmsnet host that announces a chosen agent version (identify's free-form
 * agentVersion, which a hostile peer fills with "\n" and escape sequences).
 * It listens on loopback, prints "listening on <multiaddr>/p2p/<id>",
 * optionally dials a peer (which then identifies it), and exits after a
 * few seconds or on SIGTERM/SIGINT. Used by tests/interop/identify_text.test.sh.
 *   agent_peer <agent> [--dial <multiaddr/p2p/id>] [--seconds N] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/protocols.h"
#include "dmsnet/keys.h"

static void on_stop(uv_handle_t *h)
{
    uv_stop(h->loop);
}
static void on_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}
static void on_signal(uv_signal_t *s, int signum)
{
    on_stop((uv_handle_t *)s);
}

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status) {
        fprintf(stderr, "agent_peer: dial failed: %s\n", dn_strerror(status));
        exit(1);
    }
    printf("dialed\n");
    fflush(stdout);
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

int main(int argc, char **argv)
{
    const char *agent = NULL, *dial = NULL;
    unsigned long seconds = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dial") && i + 1 < argc)
            dial = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtoul(argv[++i], NULL, 10);
        else if (!agent)
            agent = argv[i];
        else
            agent = NULL, i = argc;
    }
    if (!agent || seconds == 0 || seconds > 600) {
        fprintf(stderr, "usage: agent_peer <agent> [--dial <multiaddr>] [--seconds N]\n");
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    dn_privkey *key = NULL;
    dn_host *h = NULL;
    dn_multiaddr ma;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &key);
    dn_host_config cfg = {.size = sizeof cfg, .identity = key, .agent_version = agent};
    if (!rc)
        rc = dn_host_new(&loop, &cfg, &h);
    if (!rc)
        rc = dn_identify_attach(h);
    if (!rc)
        rc = dn_ping_attach(h);
    if (!rc)
        rc = dn_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma);
    if (!rc)
        rc = dn_host_listen(h, &ma);
    if (rc) {
        fprintf(stderr, "agent_peer: cannot start: %s\n", dn_strerror(rc));
        return 1;
    }
    char text[DN_MULTIADDR_STR_MAX], id[DN_PEERID_STR_MAX];
    dn_host_listen_addrs(h, &ma, 1);
    dn_multiaddr_to_string(&ma, text, sizeof text);
    dn_peerid_to_string(dn_host_peerid(h), id, sizeof id);
    printf("listening on %s/p2p/%s\n", text, id);
    fflush(stdout);
    if (dial) {
        dn_multiaddr target;
        if (dn_multiaddr_parse(dial, &target) || dn_host_dial(h, &target, on_dial, NULL) < 0) {
            fprintf(stderr, "agent_peer: cannot dial %s\n", dial);
            return 1;
        }
    }
    uv_timer_t timer;
    uv_signal_t term, intr;
    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, on_timer, seconds * 1000, 0);
    uv_signal_init(&loop, &term);
    uv_signal_start(&term, on_signal, SIGTERM);
    uv_signal_init(&loop, &intr);
    uv_signal_start(&intr, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&term, NULL);
    uv_close((uv_handle_t *)&intr, NULL);
    int done = 0;
    dn_host_close(h, closed, &done);
    for (int i = 0; i < 1000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    dn_privkey_free(key);
    return 0;
}
