/* One host that dials several peers and reports what each saw of it:
 * for tests/netns/nat_observed.test.sh, run behind a NAT. It listens on
 * --listen, dials every multiaddr given (each with /p2p/<id>), waits for
 * identify on all of them (or --seconds), feeds each observation to the
 * node's observed-address manager (src/node/natobs.c) and prints
 *   peer <n> local <our end> observed <what the peer saw> natobs <rc>
 *   confirmed <multiaddr>              (each confirmed address)
 *   nat unknown|cone|symmetric
 * then exits 0; 1 when a dial failed or a peer did not identify in time.
 *   natobs_probe --listen MA [--no-port-reuse] [--seconds N] MA... */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/network.h"
#include "dmsnet/protocols.h"
#include "node/natobs.h"

#define MAX_PEERS 64

typedef struct probe {
    dn_host *h;
    dn__natobs *obs;
    size_t npeers, identified, failed;
    dn_peerid peers[MAX_PEERS];
    bool done[MAX_PEERS];
} probe;

/* " label <multiaddr>" ("confirmed" starts its line: no leading space). */
static void print_ma(const char *label, const dn_multiaddr *m)
{
    char s[DN_MULTIADDR_STR_MAX];
    if (!m->len || dn_multiaddr_to_string(m, s, sizeof s) < 0)
        snprintf(s, sizeof s, "-");
    printf("%s%s %s", strcmp(label, "confirmed") ? " " : "", label, s);
}

static void on_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    (void)status;
    probe *p = arg;
    if (ev != DN_CONN_EV_IDENTIFIED || !c)
        return;
    const dn_peerid *remote = dn_conn_remote_peer(c);
    for (size_t i = 0; i < p->npeers; i++) {
        if (p->done[i] || !dn_peerid_equal(&p->peers[i], remote))
            continue;
        p->done[i] = true;
        p->identified++;
        dn_multiaddr observed = {0};
        const dn_peer_info *info = dn_host_peer(h, remote);
        if (!info || dn_peer_info_observed(info, &observed) != 0)
            observed.len = 0;
        int rc =
            dn__natobs_record(p->obs, dn_conn_id(c), dn_conn_remote_addr(c), dn_conn_local_addr(c),
                              &observed, dn_conn_is_outbound(c), uv_now(dn_host_loop(h)));
        printf("peer %zu", i);
        print_ma("local", dn_conn_local_addr(c));
        print_ma("observed", &observed);
        printf(" natobs %d\n", rc);
        fflush(stdout);
    }
    if (p->identified + p->failed == p->npeers)
        uv_stop(dn_host_loop(h));
}

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    (void)c;
    probe *p = arg;
    if (status) {
        fprintf(stderr, "natobs_probe: a dial failed: %s\n", dn_strerror(status));
        p->failed++;
        if (p->identified + p->failed == p->npeers)
            uv_stop(dn_host_loop(h));
    }
}

static void on_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

int main(int argc, char **argv)
{
    const char *listen = NULL;
    bool no_reuse = false;
    unsigned long seconds = 10;
    const char *targets[MAX_PEERS];
    size_t ntargets = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen = argv[++i];
        else if (!strcmp(argv[i], "--no-port-reuse"))
            no_reuse = true;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtoul(argv[++i], NULL, 10);
        else if (argv[i][0] == '/' && ntargets < MAX_PEERS)
            targets[ntargets++] = argv[i];
        else
            listen = NULL, i = argc;
    }
    if (!listen || !ntargets || seconds == 0 || seconds > 120) {
        fprintf(stderr, "usage: natobs_probe --listen MA [--no-port-reuse] [--seconds N] MA...\n");
        return 2;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    probe p = {0};
    dn_privkey *key = NULL;
    dn_multiaddr ma;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &key);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = key;
    cfg.no_port_reuse = no_reuse;
    if (!rc)
        rc = dn_host_new(&loop, &cfg, &p.h);
    if (!rc)
        rc = dn_identify_attach(p.h);
    if (!rc)
        rc = dn_host_add_observer(p.h, on_event, &p);
    if (!rc)
        rc = dn_multiaddr_parse(listen, &ma);
    if (!rc)
        rc = dn_host_listen(p.h, &ma);
    if (!rc && !(p.obs = dn__natobs_new(NULL)))
        rc = DN_ENOMEM;
    if (rc) {
        fprintf(stderr, "natobs_probe: cannot start: %s\n", dn_strerror(rc));
        return 1;
    }
    dn_multiaddr bound[4];
    size_t nb = dn_host_listen_addrs(p.h, bound, 4);
    dn__natobs_set_listen(p.obs, bound, nb < 4 ? nb : 4, uv_now(&loop));

    for (size_t i = 0; i < ntargets; i++) {
        dn_multiaddr t;
        if (dn_multiaddr_parse(targets[i], &t) || dn_multiaddr_peerid(&t, &p.peers[i]) ||
            dn_host_dial(p.h, &t, on_dial, &p) < 0) {
            fprintf(stderr, "natobs_probe: cannot dial %s\n", targets[i]);
            return 1;
        }
        p.npeers++;
    }
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, on_timer, seconds * 1000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    dn_multiaddr conf[DN__NATOBS_MAX_CONFIRMED];
    size_t nc = dn__natobs_confirmed(p.obs, conf, DN__NATOBS_MAX_CONFIRMED);
    for (size_t i = 0; i < nc && i < DN__NATOBS_MAX_CONFIRMED; i++) {
        print_ma("confirmed", &conf[i]);
        printf("\n");
    }
    printf("nat %s\n", dn_nat_type_name(dn__natobs_nat_type(p.obs)));
    fflush(stdout);
    int ok = p.identified == p.npeers;
    if (!ok)
        fprintf(stderr, "natobs_probe: %zu of %zu peers identified\n", p.identified, p.npeers);

    uv_close((uv_handle_t *)&timer, NULL);
    int done = 0;
    dn_host_close(p.h, closed, &done);
    for (int i = 0; i < 1000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    dn__natobs_free(p.obs);
    dn_privkey_free(key);
    return ok ? 0 : 1;
}
