/* dmsnet — entry point: dispatches to the subcommands. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"daemon", dn_cmd_daemon, "run a node in the foreground"},
    {"status", dn_cmd_status, "show the running daemon's status"},
    {"peers", dn_cmd_peers, "list the daemon's connected peers"},
    {"connect", dn_cmd_connect, "connect the daemon to a peer"},
    {"disconnect", dn_cmd_disconnect, "close the daemon's connections to a peer"},
    {"events", dn_cmd_events, "follow the daemon's events"},
    {"config", dn_cmd_config, "show or change the daemon's configuration"},
    {"send", dn_cmd_send, "send a typed message to a peer through the daemon"},
    {"request", dn_cmd_request, "send a typed message and print the peer's reply"},
    {"messages", dn_cmd_messages, "listen for typed messages, reply to them"},
    {"pubsub", dn_cmd_pubsub, "subscribe, publish, list peers on a pubsub topic"},
    {"job", dn_cmd_job, "publish a job's request for bids, follow requests, bid"},
    {"dht", dn_cmd_dht, "put/get records, find peers and providers in the DHT"},
    {"ping", dn_cmd_ping, "ping a peer (/ipfs/ping/1.0.0)"},
    {"perf", dn_cmd_perf, "measure throughput to a peer (/perf/1.0.0)"},
    {"identify", dn_cmd_identify, "show what a peer says about itself (/ipfs/id/1.0.0)"},
    {"keygen", dn_cmd_keygen, "create an identity key file"},
    {"id", dn_cmd_id, "print the peer ID of an identity key file"},
    {"swarm-key", dn_cmd_swarm_key, "create a swarm key for a private network"},
};

void dn_cli_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "dmsnet %s: %s\n", cmd, msg);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet <command> [options]\n\n"
               "dmsnet is a libp2p node for compute nodes: TCP, pnet, Noise, Yamux,\n"
               "identify, ping and perf, interoperable with go-, rust- and js-libp2p.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'dmsnet <command> --help' shows a command's options.\n"
               "Logging: DMSNET_LOG=trace|debug|info|warn|error|off (default info).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("dmsnet %s\n", DN_VERSION);
        return 0;
    }
    /* A peer closing its socket must give EPIPE on write, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0) {
        fprintf(stderr, "dmsnet: libsodium failed to initialise\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dmsnet: unknown command '%s' (see 'dmsnet --help')\n", argv[1]);
    return 2;
}
