/* dmsnet ping: dial a peer and measure /ipfs/ping/1.0.0 round trips. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet ping <multiaddr with /p2p/id> [options]\n\n"
               "Ping a peer over /ipfs/ping/1.0.0; one line per reply with time=<ms> ms.\n"
               "Exit 0 when every ping was answered, 1 otherwise.\n\n"
               "options:\n"
               "  -c, --count N        pings to send (default 4)\n"
               "  -i, --interval S     seconds between pings (default 1; 0 = back to back)\n"
               "  --timeout S          give up after S seconds in all (default 10)\n"
               "  --swarm-key FILE     the private network's swarm key\n"
               "  --identity FILE      identity key file (default: a fresh key per run)\n"
               "  -h, --help           show this help\n");
}

typedef struct ping_state {
    const char *peer;
    unsigned count;
    unsigned answered;
    double min_ms, max_ms, sum_ms;
    int status;
    bool done;
} ping_state;

static void on_reply(void *arg, unsigned seq, uint64_t rtt_ns)
{
    ping_state *st = arg;
    double ms = (double)rtt_ns / 1e6;
    st->answered++;
    if (st->answered == 1 || ms < st->min_ms)
        st->min_ms = ms;
    if (ms > st->max_ms)
        st->max_ms = ms;
    st->sum_ms += ms;
    printf("pong from %s: seq=%u time=%.3f ms\n", st->peer, seq, ms);
    fflush(stdout);
}

static void on_done(void *arg, int status)
{
    ping_state *st = arg;
    st->status = status;
    st->done = true;
}

static void on_deadline(uv_timer_t *t)
{
    ping_state *st = t->data;
    if (!st->done) {
        st->status = DN_ETIMEOUT;
        st->done = true;
    }
}

static int parse_seconds(const char *s, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || !(v >= 0 && v <= max))
        return -1;
    *out = v;
    return 0;
}

int dn_cmd_ping(int argc, char **argv)
{
    static const struct option opts[] = {{"count", required_argument, NULL, 'c'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"swarm-key", required_argument, NULL, 's'},
                                         {"identity", required_argument, NULL, 'I'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned long count = 4;
    double interval = 1, timeout = 10;
    const char *swarm_key = NULL, *identity = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:i:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'c':
            count = strtoul(optarg, &end, 10);
            if (*end || count == 0 || count > 1000000) {
                dn_cli_error("ping", "invalid count '%s'", optarg);
                return 2;
            }
            break;
        case 'i':
            if (parse_seconds(optarg, 3600, &interval)) {
                dn_cli_error("ping", "invalid interval '%s'", optarg);
                return 2;
            }
            break;
        case 't':
            if (parse_seconds(optarg, 86400, &timeout) || timeout == 0) {
                dn_cli_error("ping", "invalid timeout '%s'", optarg);
                return 2;
            }
            break;
        case 's': swarm_key = optarg; break;
        case 'I': identity = optarg; break;
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
    if (dn_cli_parse_peer_addr("ping", argv[optind], &ma, &target))
        return 2;

    unsigned timeout_ms = (unsigned)(timeout * 1000);
    dn_host_config cfg = {.size = sizeof(dn_host_config), .handshake_timeout_ms = timeout_ms, .dial_timeout_ms = timeout_ms};
    dn_cli_client cl;
    if (dn_cli_client_start("ping", identity, swarm_key, &cfg, &cl))
        return 1;
    uv_loop_t *loop = &cl.loop;
    dn_host *h = cl.host;
    char peer[DN_PEERID_STR_MAX];
    dn_peerid_to_string(&target, peer, sizeof peer);
    ping_state st = {.peer = peer, .count = (unsigned)count};
    uv_timer_t deadline;
    uv_timer_init(loop, &deadline);
    deadline.data = &st;
    uv_timer_start(&deadline, on_deadline, timeout_ms, 0);

    uint64_t start = uv_hrtime();
    dn_conn *conn = dn_cli_dial("ping", h, &ma, timeout_ms);
    int exit_code = 1;
    if (conn) {
        dn_ping_callbacks cbs = {.on_reply = on_reply, .on_done = on_done};
        int rc = dn_ping_run(conn, st.count, (unsigned)(interval * 1000), &cbs, &st);
        if (rc) {
            st.status = rc;
            st.done = true;
        }
        while (!st.done && uv_run(loop, UV_RUN_ONCE))
            ;
        if (!st.done)
            st.status = DN_ECLOSED;
        if (st.status == 0) {
            printf("%u pings, %u replies, rtt min/avg/max = %.3f/%.3f/%.3f ms\n", st.count,
                   st.answered, st.min_ms, st.sum_ms / st.answered, st.max_ms);
            exit_code = 0;
        } else {
            dn_cli_error("ping", "%s: %u of %u pings answered (%s after %.1f s)", peer,
                         st.answered, st.count, dn_strerror(st.status),
                         (double)(uv_hrtime() - start) / 1e9);
        }
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    dn_cli_client_stop(&cl);
    return exit_code;
}
