/* dmsnet identify: connect to a peer and print what identify says. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "dmsnet/error.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet identify <multiaddr with /p2p/id> [options]\n\n"
               "Connect, run identify (/ipfs/id/1.0.0) and print what the peer says about\n"
               "itself: agent, protocol version, public key, protocols, listen addresses and\n"
               "how it sees us.\n\n"
               "options:\n"
               "  --timeout S        give up after S seconds (default 10)\n"
               "  --swarm-key FILE   the private network's swarm key\n"
               "  -h, --help         show this help\n");
}

typedef struct id_wait {
    bool done;
} id_wait;

static void on_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    if (ev == DN_CONN_EV_IDENTIFIED || ev == DN_CONN_EV_CLOSED)
        ((id_wait *)arg)->done = true;
}

static void on_deadline(uv_timer_t *t) { ((id_wait *)t->data)->done = true; }

int dn_cmd_identify(int argc, char **argv)
{
    static const struct option opts[] = {{"timeout", required_argument, NULL, 't'},
                                         {"swarm-key", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned long timeout = 10;
    const char *swarm_key = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 't':
            timeout = strtoul(optarg, &end, 10);
            if (*end || timeout == 0 || timeout > 3600) {
                dn_cli_error("identify", "invalid --timeout '%s'", optarg);
                return 2;
            }
            break;
        case 's': swarm_key = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    dn_multiaddr ma;
    dn_peerid target;
    if (dn_cli_parse_peer_addr("identify", argv[optind], &ma, &target))
        return 2;
    unsigned timeout_ms = (unsigned)timeout * 1000;
    dn_host_config cfg = {.size = sizeof(dn_host_config), .handshake_timeout_ms = timeout_ms, .dial_timeout_ms = timeout_ms};
    dn_cli_client cl;
    if (dn_cli_client_start("identify", NULL, swarm_key, &cfg, &cl))
        return 1;
    uv_loop_t *loop = &cl.loop;
    dn_host *h = cl.host;
    id_wait w = {0};
    dn_host_add_observer(h, on_event, &w);
    uv_timer_t deadline;
    uv_timer_init(loop, &deadline);
    deadline.data = &w;
    uv_timer_start(&deadline, on_deadline, timeout_ms, 0);
    int exit_code = 1;
    if (dn_cli_dial("identify", h, &ma, timeout_ms)) {
        while (!w.done && uv_run(loop, UV_RUN_ONCE))
            ;
        const dn_peer_info *p = dn_host_peer(h, &target);
        if (p && p->identified) {
            dn_cli_print_identify(stdout, p);
            exit_code = 0;
        } else {
            dn_cli_error("identify", "no identify answer from the peer");
        }
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    dn_cli_client_stop(&cl);
    return exit_code;
}
