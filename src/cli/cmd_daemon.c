/* dmsnet daemon: run a node in the foreground until SIGINT/SIGTERM. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"

#define MAX_LISTEN 16
/* DMS nodes listen on TCP port 9000 by default, on every interface. */
static const char *const default_listen[] = {"/ip4/0.0.0.0/tcp/9000", "/ip6/::/tcp/9000"};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dmsnet daemon [options]\n\n"
            "Run a libp2p node in the foreground. When ready it prints one line per\n"
            "listen address: 'listening on <multiaddr>/p2p/<peer id>'. SIGINT or SIGTERM\n"
            "stop it cleanly (exit 0).\n\n"
            "options:\n"
            "  --listen MA        listen address, repeatable (default /ip4/0.0.0.0/tcp/9000\n"
            "                     and /ip6/::/tcp/9000; port 0 picks a free port)\n"
            "  --identity FILE    identity key file (default: DATA_DIR/identity.key,\n"
            "                     created on first run with mode 0600)\n"
            "  --swarm-key FILE   join the private network of this swarm key (pnet);\n"
            "                     only peers with the same key can connect\n"
            "  --data-dir DIR     state directory (default $DMSNET_HOME or ~/.dmsnet)\n"
            "  --enable-perf      serve the perf protocol (/perf/1.0.0)\n"
            "  --max-conns N      connection limit (default 4096, and within the\n"
            "                     file descriptor limit)\n"
            "  --max-conns-per-peer N    connections one peer may hold (default 8)\n"
            "  --max-streams-per-peer N  streams one peer may hold (default 4096)\n"
            "  --max-handshakes-per-ip N connections from one address still in their\n"
            "                     handshake (default 64; past it the stalest is dropped)\n"
            "  --handshake-timeout S  close connections whose security and muxer\n"
            "                     handshake takes longer (default 10)\n"
            "  --log LEVEL        trace, debug, info, warn, error, off (default info)\n"
            "  -h, --help         show this help\n");
}

static void on_conn_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    /* Three events per connection: render nothing nobody will read. */
    if (dn_log_get_level() > DN_LOG_INFO || !c)
        return;
    char id[DN_PEERID_STR_MAX], addr[DN_MULTIADDR_STR_MAX];
    dn_peerid_to_string(dn_conn_remote_peer(c), id, sizeof id);
    if (dn_multiaddr_to_string(dn_conn_remote_addr(c), addr, sizeof addr) < 0)
        snprintf(addr, sizeof addr, "?");
    switch (ev) {
    case DN_CONN_EV_OPENED:
        /* Per-connection lines are rate-limited: a peer that connects
         * thousands of times must not flood the log. */
        DN_LOG_LIMITED(DN_LOG_INFO, "daemon", "connected %s %s (%s)",
                       dn_conn_is_outbound(c) ? "to" : "from", id, addr);
        break;
    case DN_CONN_EV_IDENTIFIED: {
        const dn_peer_info *p = dn_host_peer(h, dn_conn_remote_peer(c));
        /* The agent is the peer's text: escaped, it cannot forge a line. */
        char agent[DN_ESCAPE_MAX(64)] = "";
        if (p)
            dn_escape_text(p->agent_version, strlen(p->agent_version), agent, sizeof agent);
        DN_LOG_LIMITED(DN_LOG_INFO, "daemon", "identified %s: agent '%s', %zu protocols", id,
                       agent, p ? p->nprotocols : 0);
        break;
    }
    case DN_CONN_EV_CLOSED:
        DN_LOG_LIMITED(DN_LOG_INFO, "daemon", "disconnected %s (%s)", id,
                       status ? dn_strerror(status) : "closed");
        break;
    default:
        break;
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    DN_INFO("daemon", "received %s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_stop(sig->loop);
}

int dn_cmd_daemon(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},   {"identity", required_argument, NULL, 'i'},
        {"swarm-key", required_argument, NULL, 's'}, {"data-dir", required_argument, NULL, 'd'},
        {"enable-perf", no_argument, NULL, 'p'},     {"max-conns", required_argument, NULL, 'm'},
        {"log", required_argument, NULL, 'L'},       {"help", no_argument, NULL, 'h'},
        {"handshake-timeout", required_argument, NULL, 'T'},
        {"max-conns-per-peer", required_argument, NULL, 'P'},
        {"max-streams-per-peer", required_argument, NULL, 'S'},
        {"max-handshakes-per-ip", required_argument, NULL, 'H'},
        {NULL, 0, NULL, 0}};
    const char *listen[MAX_LISTEN];
    size_t nlisten = 0;
    const char *identity_path = NULL, *swarm_key = NULL, *data_dir = NULL;
    bool perf = false;
    unsigned long max_conns = 0, handshake_timeout = 0, conns_per_peer = 0, streams_per_peer = 0,
                  handshakes_per_ip = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (nlisten == MAX_LISTEN) {
                dn_cli_error("daemon", "at most %d --listen addresses", MAX_LISTEN);
                return 2;
            }
            listen[nlisten++] = optarg;
            break;
        case 'i': identity_path = optarg; break;
        case 's': swarm_key = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'p': perf = true; break;
        case 'm': {
            char *end;
            max_conns = strtoul(optarg, &end, 10);
            if (*end || max_conns == 0 || max_conns > 1000000) {
                dn_cli_error("daemon", "invalid --max-conns '%s'", optarg);
                return 2;
            }
            break;
        }
        case 'P':
        case 'S':
        case 'H': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            const char *name = c == 'P'   ? "max-conns-per-peer"
                               : c == 'S' ? "max-streams-per-peer"
                                          : "max-handshakes-per-ip";
            if (*end || v == 0 || v > 1000000) {
                dn_cli_error("daemon", "invalid --%s '%s'", name, optarg);
                return 2;
            }
            *(c == 'P' ? &conns_per_peer : c == 'S' ? &streams_per_peer : &handshakes_per_ip) = v;
            break;
        }
        case 'T': {
            char *end;
            handshake_timeout = strtoul(optarg, &end, 10);
            if (*end || handshake_timeout == 0 || handshake_timeout > 3600) {
                dn_cli_error("daemon", "invalid --handshake-timeout '%s'", optarg);
                return 2;
            }
            break;
        }
        case 'L': {
            int lvl = dn_log_level_parse(optarg);
            if (lvl < 0) {
                dn_cli_error("daemon", "unknown log level '%s'", optarg);
                return 2;
            }
            dn_log_set_level((dn_log_level)lvl);
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        dn_cli_error("daemon", "unexpected argument '%s'", argv[optind]);
        return 2;
    }

    char dir[4096], keypath[4200];
    if (!data_dir) {
        if (dn_cli_default_data_dir(dir, sizeof dir)) {
            dn_cli_error("daemon", "no data directory: set --data-dir or $DMSNET_HOME");
            return 1;
        }
        data_dir = dir;
    }
    if (!identity_path) {
        snprintf(keypath, sizeof keypath, "%s/identity.key", data_dir);
        identity_path = keypath;
    }

    dn_multiaddr addrs[MAX_LISTEN];
    if (nlisten == 0) {
        for (size_t i = 0; i < sizeof default_listen / sizeof *default_listen; i++)
            listen[nlisten++] = default_listen[i];
    }
    for (size_t i = 0; i < nlisten; i++)
        if (dn_cli_parse_multiaddr("daemon", listen[i], &addrs[i]))
            return 2;

    /* The swarm key first: a bad one must not leave a new identity behind. */
    uint8_t psk[32];
    if (swarm_key && dn_cli_load_swarm_key("daemon", swarm_key, psk))
        return 1;
    dn_privkey *key = NULL;
    if (dn_cli_load_identity("daemon", identity_path, 1, &key)) {
        sodium_memzero(psk, sizeof psk);
        return 1;
    }

    uv_loop_t loop;
    uv_loop_init(&loop);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = key;
    cfg.psk = swarm_key ? psk : NULL;
    cfg.max_conns = (uint32_t)max_conns;
    cfg.handshake_timeout_ms = (uint32_t)handshake_timeout * 1000;
    cfg.max_conns_per_peer = (uint32_t)conns_per_peer;
    cfg.max_streams_per_peer = (uint32_t)streams_per_peer;
    cfg.max_handshakes_per_ip = (uint32_t)handshakes_per_ip;
    dn_host *h;
    int rc = dn_host_new(&loop, &cfg, &h);
    sodium_memzero(psk, sizeof psk);
    if (rc) {
        dn_cli_error("daemon", "cannot start: %s", dn_strerror(rc));
        uv_loop_close(&loop);
        dn_privkey_free(key);
        return 1;
    }
    int status = 0;
    if ((rc = dn_host_add_observer(h, on_conn_event, NULL)) ||
        (rc = dn_cli_attach_services(h, perf))) {
        dn_cli_error("daemon", "cannot start: %s", dn_strerror(rc));
        status = 1;
    }
    for (size_t i = 0; i < nlisten && status == 0; i++) {
        rc = dn_host_listen(h, &addrs[i]);
        if (rc) {
            dn_cli_error("daemon", "cannot listen on %s: %s", listen[i], dn_strerror(rc));
            status = 1;
            break;
        }
    }
    if (status == 0) {
        char id[DN_PEERID_STR_MAX];
        dn_peerid_to_string(dn_host_peerid(h), id, sizeof id);
        dn_multiaddr bound[MAX_LISTEN];
        size_t n = dn_host_listen_addrs(h, bound, MAX_LISTEN);
        for (size_t i = 0; i < n; i++) {
            char text[DN_MULTIADDR_STR_MAX];
            dn_multiaddr_to_string(&bound[i], text, sizeof text);
            printf("listening on %s/p2p/%s\n", text, id);
        }
        fflush(stdout);
        if (swarm_key)
            DN_INFO("daemon", "private network: only peers with the same swarm key can connect");

        uv_signal_t sigint, sigterm;
        uv_signal_init(&loop, &sigint);
        uv_signal_init(&loop, &sigterm);
        uv_signal_start(&sigint, on_signal, SIGINT);
        uv_signal_start(&sigterm, on_signal, SIGTERM);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&sigint, NULL);
        uv_close((uv_handle_t *)&sigterm, NULL);
    }
    dn_cli_shutdown(h);
    uv_loop_close(&loop);
    dn_privkey_free(key);
    return status;
}
