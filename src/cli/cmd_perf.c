/* dmsnet perf: measure throughput to a peer with /perf/1.0.0. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "dmsnet/error.h"
#include "dmsnet/protocols.h"

#define MAX_STREAMS 1024

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet perf <multiaddr with /p2p/id> [options]\n\n"
               "Measure throughput with the perf protocol (/perf/1.0.0); the peer must serve\n"
               "it (dmsnet daemon --enable-perf). Each stream uploads and downloads the given\n"
               "amounts; all streams share one connection. Exit 0 only when every byte arrived.\n\n"
               "options:\n"
               "  --upload BYTES     bytes each stream sends (default 64M; K, M, G suffixes)\n"
               "  --download BYTES   bytes each stream asks back (default 64M)\n"
               "  --streams N        parallel streams (default 1, at most 1024)\n"
               "  --timeout S        give up after S seconds (default 120)\n"
               "  --swarm-key FILE   the private network's swarm key\n"
               "  --identity FILE    identity key file (default: a fresh key per run)\n"
               "  --json             print one JSON object instead of text\n"
               "  -h, --help         show this help\n");
}

typedef struct perf_state {
    unsigned pending;
    int status;
    uint64_t uploaded, downloaded;
    uint64_t max_upload_ns, min_upload_ns, max_total_ns;
} perf_state;

static void on_perf_done(void *arg, int status, const dn_perf_result *r)
{
    perf_state *st = arg;
    st->pending--;
    if (status && !st->status)
        st->status = status;
    st->uploaded += r->uploaded;
    st->downloaded += r->downloaded;
    if (r->upload_ns > st->max_upload_ns)
        st->max_upload_ns = r->upload_ns;
    if (st->min_upload_ns == 0 || r->upload_ns < st->min_upload_ns)
        st->min_upload_ns = r->upload_ns;
    if (r->total_ns > st->max_total_ns)
        st->max_total_ns = r->total_ns;
}

static void on_deadline(uv_timer_t *t)
{
    perf_state *st = t->data;
    if (!st->status)
        st->status = DN_ETIMEOUT;
    uv_stop(t->loop);
}

static double gbps(uint64_t bytes, uint64_t ns) { return ns ? (double)bytes * 8 / (double)ns : 0; }

int dn_cmd_perf(int argc, char **argv)
{
    static const struct option opts[] = {
        {"upload", required_argument, NULL, 'u'},    {"download", required_argument, NULL, 'd'},
        {"streams", required_argument, NULL, 'n'},   {"timeout", required_argument, NULL, 't'},
        {"swarm-key", required_argument, NULL, 's'}, {"identity", required_argument, NULL, 'I'},
        {"json", no_argument, NULL, 'j'},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    uint64_t upload = 64ull << 20, download = 64ull << 20;
    unsigned long streams = 1, timeout = 120;
    const char *swarm_key = NULL, *identity = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'u':
        case 'd':
            if (dn_cli_parse_size(optarg, c == 'u' ? &upload : &download)) {
                dn_cli_error("perf", "invalid size '%s'", optarg);
                return 2;
            }
            break;
        case 'n':
            streams = strtoul(optarg, &end, 10);
            if (*end || streams == 0 || streams > MAX_STREAMS) {
                dn_cli_error("perf", "invalid --streams '%s' (1..%d)", optarg, MAX_STREAMS);
                return 2;
            }
            break;
        case 't':
            timeout = strtoul(optarg, &end, 10);
            if (*end || timeout == 0 || timeout > 86400) {
                dn_cli_error("perf", "invalid --timeout '%s'", optarg);
                return 2;
            }
            break;
        case 's': swarm_key = optarg; break;
        case 'I': identity = optarg; break;
        case 'j': json = true; break;
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
    if (dn_cli_parse_peer_addr("perf", argv[optind], &ma, &target))
        return 2;
    dn_host_config cfg = {.size = sizeof(dn_host_config), .max_streams = 4096};
    dn_cli_client cl;
    if (dn_cli_client_start("perf", identity, swarm_key, &cfg, &cl))
        return 1;
    uv_loop_t *loop = &cl.loop;
    dn_host *h = cl.host;
    perf_state st = {0};
    uv_timer_t deadline;
    uv_timer_init(loop, &deadline);
    deadline.data = &st;
    uv_timer_start(&deadline, on_deadline, timeout * 1000, 0);
    int exit_code = 1;
    dn_conn *conn = dn_cli_dial("perf", h, &ma, 10000);
    if (conn) {
        for (unsigned long i = 0; i < streams; i++) {
            int rc = dn_perf_run(conn, upload, download, on_perf_done, &st);
            if (rc) {
                st.status = rc;
                break;
            }
            st.pending++;
        }
        while (st.pending && st.status != DN_ETIMEOUT && uv_run(loop, UV_RUN_ONCE))
            ;
        if (st.pending && !st.status)
            st.status = DN_ECLOSED;
        uint64_t want_up = upload * streams, want_down = download * streams;
        if (!st.status && (st.uploaded != want_up || st.downloaded != want_down))
            st.status = DN_EPROTO;
        uint64_t down_ns = st.max_total_ns - st.min_upload_ns;
        double up_g = gbps(st.uploaded, st.max_upload_ns), down_g = gbps(st.downloaded, down_ns);
        if (json) {
            printf("{\"streams\":%lu,\"upload_bytes\":%llu,\"download_bytes\":%llu,"
                   "\"upload_seconds\":%.6f,\"download_seconds\":%.6f,"
                   "\"upload_gbps\":%.3f,\"download_gbps\":%.3f,\"ok\":%s}\n",
                   streams, (unsigned long long)st.uploaded, (unsigned long long)st.downloaded,
                   (double)st.max_upload_ns / 1e9, (double)down_ns / 1e9, up_g, down_g,
                   st.status ? "false" : "true");
        } else if (!st.status) {
            /* On failure the error line below says how far it got; a rate
             * over bytes the peer may never have taken would mislead. */
            printf("upload:   %llu bytes in %.3f s = %.2f Gbit/s\n",
                   (unsigned long long)st.uploaded, (double)st.max_upload_ns / 1e9, up_g);
            printf("download: %llu bytes in %.3f s = %.2f Gbit/s\n",
                   (unsigned long long)st.downloaded, (double)down_ns / 1e9, down_g);
        }
        fflush(stdout);
        if (st.status)
            dn_cli_error("perf", "%s (%llu of %llu bytes up, %llu of %llu down)",
                         dn_strerror(st.status), (unsigned long long)st.uploaded,
                         (unsigned long long)want_up, (unsigned long long)st.downloaded,
                         (unsigned long long)want_down);
        else
            exit_code = 0;
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    dn_cli_client_stop(&cl);
    return exit_code;
}
