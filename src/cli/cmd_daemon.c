/* dmsnet daemon: run a node (src/node) in the foreground until SIGINT or
 * SIGTERM, serving the local API. The configuration is the defaults, then
 * DATA_DIR/config.json, then the flags (each flag is a config key). */
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
#include "dmsnet/network.h"
#include "node/node_internal.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dmsnet daemon [options]\n\n"
            "Run a dmsnet node in the foreground, with its local API. When ready it\n"
            "prints one line per address peers can dial: 'listening on\n"
            "<multiaddr>/p2p/<peer id>' (an unspecified address such as 0.0.0.0 is\n"
            "shown once per interface address), then 'api listening on unix:<path>'\n"
            "(and 'api listening on <multiaddr>' with --api-listen). SIGINT or SIGTERM\n"
            "stop it cleanly (exit 0).\n\n"
            "The configuration is the defaults, then DATA_DIR/config.json (if present;\n"
            "`dmsnet config show` prints the effective one), then these flags:\n\n"
            "options:\n"
            "  --data-dir DIR     state directory (default $DMSNET_HOME or ~/.dmsnet):\n"
            "                     identity.key, dmsnet.db, api.sock, api.token\n"
            "  --config FILE      configuration file (default DATA_DIR/config.json)\n"
            "  --listen MA        listen address, repeatable (default /ip4/0.0.0.0/tcp/9000\n"
            "                     and /ip6/::/tcp/9000; port 0 picks a free port)\n"
            "  --bootstrap MA     a bootstrap peer of the public channel, repeatable\n"
            "                     (a multiaddr ending in /p2p/<peer id>); redialled with\n"
            "                     backoff until connected\n"
            "  --identity FILE    identity key file (default: DATA_DIR/identity.key,\n"
            "                     created on first run with mode 0600)\n"
            "  --swarm-key FILE   join the private network of this swarm key (pnet);\n"
            "                     only peers with the same key can connect\n"
            "  --api-listen MA    also serve the API on TCP, /ip4/127.0.0.1/tcp/PORT\n"
            "                     (PORT 0 picks one); requests need the bearer token in\n"
            "                     DATA_DIR/api.token\n"
            "  --api-allow-remote allow a non-loopback --api-listen address\n"
            "  --enable-perf      serve the perf protocol (/perf/1.0.0)\n"
            "  --auto-bid FILE    answer every job request received with FILE's bytes\n"
            "                     (config jobs.auto_bid; for demos and tests)\n"
            "  --dht-prefix P     the channel's DHT protocol prefix (default /dmsnet:\n"
            "                     /dmsnet/kad/1.0.0; /nunet speaks with NuNet DMS nodes,\n"
            "                     /ipfs with the IPFS DHT)\n"
            "  --dht-mode MODE    auto (serve the DHT once AutoNAT says we are reachable;\n"
            "                     the default), server (always serve), client (query only)\n"
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

/* Flags that are configuration keys, in the order given. */
typedef struct flag_set {
    const char *key;
    const char *value;
} flag_set;
#define MAX_FLAGS 256

/* Repeatable list flags collect into one comma-separated value. */
typedef struct list_flag {
    char *text;
    size_t n;
} list_flag;

static int list_add(list_flag *l, const char *v)
{
    size_t old = l->text ? strlen(l->text) : 0, add = strlen(v);
    char *t = realloc(l->text, old + add + 2);
    if (!t)
        return DN_ENOMEM;
    if (old)
        t[old++] = ',';
    memcpy(t + old, v, add + 1);
    l->text = t;
    l->n++;
    return 0;
}

typedef struct daemon_state {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    dn_network *net;
} daemon_state;

/* One log line per peer event; rate-limited, since a peer that connects
 * thousands of times must not flood the log. */
static void log_event(dn_network *n, const dn_network_event *ev, void *arg)
{
    (void)n, (void)arg;
    if (dn_log_get_level() > DN_LOG_INFO)
        return; /* render nothing nobody will read */
    char id[DN_PEERID_STR_MAX] = "";
    if (ev->peer)
        dn_peerid_to_string(ev->peer, id, sizeof id);
    switch (ev->type) {
    case DN_NET_EV_PEER_CONNECTEDNESS:
        DN_LOG_LIMITED(DN_LOG_INFO, "daemon", "%s %s",
                       ev->connectedness == DN_CONNECTED ? "connected" : "disconnected", id);
        break;
    case DN_NET_EV_PEER_IDENTIFIED: {
        /* The agent is the peer's text: escaped, it cannot forge a line. */
        char agent[DN_ESCAPE_MAX(64)];
        dn_escape_text(ev->agent, strlen(ev->agent), agent, sizeof agent);
        DN_LOG_LIMITED(DN_LOG_INFO, "daemon", "identified %s: agent '%s', %zu protocols", id,
                       agent, ev->nprotocols);
        break;
    }
    case DN_NET_EV_REACHABILITY_CHANGED:
        DN_INFO("daemon", "reachability: %s", dn_reachability_name(ev->reachability));
        break;
    case DN_NET_EV_NAT_TYPE_CHANGED:
        DN_INFO("daemon", "NAT type: %s", dn_nat_type_name(ev->nat_type));
        break;
    default: break;
    }
}

static void on_stopped(void *arg)
{
    daemon_state *d = arg;
    d->net = NULL;
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    daemon_state *d = sig->data;
    if (!d->net)
        return;
    DN_INFO("daemon", "received %s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    dn_network_stop(d->net, on_stopped, d);
}

static void print_ready(dn_network *net)
{
    dn_network_status *st;
    if (dn_network_get_status(net, &st) == 0) {
        for (size_t i = 0; i < st->nlisten_addrs; i++)
            printf("listening on %s/p2p/%s\n", st->listen_addrs[i], st->peer_id);
        dn_network_status_free(st);
    }
    printf("api listening on unix:%s/api.sock\n", dn__node_data_dir(net));
    dn_api *api = dn__node_api_of(net) ? dn__node_api_server(dn__node_api_of(net)) : NULL;
    const char *tcp = dn__node_config_of(net)->api.listen;
    uint16_t port = api ? dn__api_tcp_port(api) : 0;
    if (tcp && port) {
        /* api.listen is canonical /ip4|ip6/<addr>/tcp/<port>: swap the port
         * for the one bound (it may have been 0). */
        const char *slash = strstr(tcp, "/tcp/");
        printf("api listening on %.*s/tcp/%u\n", (int)(slash ? slash - tcp : 0), tcp,
               (unsigned)port);
    }
    fflush(stdout);
}

int dn_cmd_daemon(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"identity", required_argument, NULL, 'i'},
        {"swarm-key", required_argument, NULL, 's'},
        {"data-dir", required_argument, NULL, 'd'},
        {"config", required_argument, NULL, 'c'},
        {"enable-perf", no_argument, NULL, 'p'},
        {"max-conns", required_argument, NULL, 'm'},
        {"log", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"handshake-timeout", required_argument, NULL, 'T'},
        {"max-conns-per-peer", required_argument, NULL, 'P'},
        {"max-streams-per-peer", required_argument, NULL, 'S'},
        {"max-handshakes-per-ip", required_argument, NULL, 'H'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"api-listen", required_argument, NULL, 'a'},
        {"api-allow-remote", no_argument, NULL, 'R'},
        {"auto-bid", required_argument, NULL, 'B'},
        {"dht-prefix", required_argument, NULL, 'D'},
        {"dht-mode", required_argument, NULL, 'M'},
        {NULL, 0, NULL, 0}};
    flag_set flags[MAX_FLAGS];
    size_t nflags = 0;
    list_flag listen = {0}, bootstrap = {0};
    const char *swarm_key = NULL, *data_dir = NULL, *config_path = NULL;
    int status = 2;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *key = NULL, *value = optarg;
        switch (c) {
        case 'l':
            if (list_add(&listen, optarg))
                goto out;
            continue;
        case 'b':
            if (list_add(&bootstrap, optarg))
                goto out;
            continue;
        case 's': swarm_key = optarg; continue;
        case 'd': data_dir = optarg; continue;
        case 'c': config_path = optarg; continue;
        case 'i': key = "identity"; break;
        case 'p': key = "enable_perf", value = "true"; break;
        case 'm': key = "limits.max_conns"; break;
        case 'P': key = "limits.max_conns_per_peer"; break;
        case 'S': key = "limits.max_streams_per_peer"; break;
        case 'H': key = "limits.max_handshakes_per_ip"; break;
        case 'T': key = "limits.handshake_timeout_s"; break;
        case 'L': key = "log"; break;
        case 'a': key = "api.listen"; break;
        case 'R': key = "api.allow_remote", value = "true"; break;
        case 'B': key = "jobs.auto_bid"; break;
        case 'D': key = "channel.dht_prefix"; break;
        case 'M': key = "dht.mode"; break;
        case 'h': usage(stdout); status = 0; goto out;
        default: usage(stderr); goto out;
        }
        if (nflags == MAX_FLAGS) {
            dn_cli_error("daemon", "too many options");
            goto out;
        }
        flags[nflags++] = (flag_set){key, value};
    }
    if (optind < argc) {
        dn_cli_error("daemon", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    status = 1;
    char dir[4096], cfgpath[4200];
    if (!data_dir) {
        if (dn_cli_default_data_dir(dir, sizeof dir)) {
            dn_cli_error("daemon", "no data directory: set --data-dir or $DMSNET_HOME");
            goto out;
        }
        data_dir = dir;
    }
    if (!config_path) {
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", data_dir);
        config_path = cfgpath;
    }

    dn_network_config *cfg = NULL;
    dn_privkey *key = NULL;
    uint8_t psk[32];
    char err[512];
    if (dn_network_config_new(&cfg)) {
        dn_cli_error("daemon", "out of memory");
        goto out;
    }
    if (dn_network_config_load_file(cfg, config_path, err, sizeof err)) {
        dn_cli_error("daemon", "%s", err);
        goto out_cfg;
    }
    /* Flags win over the file; a bad one is a usage error naming it. */
    int rc = dn_network_config_set(cfg, "data_dir", data_dir, err, sizeof err);
    if (!rc && listen.n)
        rc = dn_network_config_set(cfg, "listen", listen.text, err, sizeof err);
    if (!rc && bootstrap.n)
        rc = dn_network_config_set(cfg, "channel.bootstrap", bootstrap.text, err, sizeof err);
    for (size_t i = 0; !rc && i < nflags; i++)
        rc = dn_network_config_set(cfg, flags[i].key, flags[i].value, err, sizeof err);
    if (!rc)
        rc = dn_network_config_check(cfg, err, sizeof err);
    if (rc) {
        dn_cli_error("daemon", "%s", err);
        status = 2;
        goto out_cfg;
    }

    /* The swarm key first: a bad one must not leave a new identity behind. */
    if (swarm_key) {
        if (dn_cli_load_swarm_key("daemon", swarm_key, psk))
            goto out_cfg;
        dn_network_config_set_psk(cfg, psk, NULL);
        sodium_memzero(psk, sizeof psk);
    }
    /* The daemon owns its identity file (stale temporaries are cleaned,
     * a missing key is created): the CLI's loader does both. */
    const dn__node_config *nc = &cfg->c;
    char keypath[4200];
    if (nc->identity)
        snprintf(keypath, sizeof keypath, "%s", nc->identity);
    else
        snprintf(keypath, sizeof keypath, "%s/identity.key", data_dir);
    if (dn_cli_load_identity("daemon", keypath, 1, &key))
        goto out_cfg;
    dn_network_config_set_identity(cfg, key);

    daemon_state d = {0};
    uv_loop_init(&d.loop);
    if ((rc = dn_network_new(&d.loop, cfg, &d.net, err, sizeof err))) {
        dn_cli_error("daemon", "cannot start: %s", err);
        uv_run(&d.loop, UV_RUN_DEFAULT); /* lets what was half built close */
        uv_loop_close(&d.loop);
        goto out_key;
    }
    dn_network_event_register(d.net, DN_NET_EV_ALL & ~(1u << DN_NET_EV_LOCAL_ADDRS_UPDATED),
                              log_event, NULL);
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sigterm);
    d.sigint.data = d.sigterm.data = &d;
    if ((rc = dn_network_start(d.net, err, sizeof err))) {
        dn_cli_error("daemon", "%s", err);
        dn_network_stop(d.net, on_stopped, &d);
    } else {
        print_ready(d.net);
        if (swarm_key)
            DN_INFO("daemon", "private network: only peers with the same swarm key can connect");
        uv_signal_start(&d.sigint, on_signal, SIGINT);
        uv_signal_start(&d.sigterm, on_signal, SIGTERM);
        status = 0;
    }
    uv_run(&d.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d.loop))
        DN_WARN("daemon", "the event loop still had handles at exit");
out_key:
    dn_privkey_free(key);
out_cfg:
    dn_network_config_free(cfg);
out:
    free(listen.text);
    free(bootstrap.text);
    return status;
}
