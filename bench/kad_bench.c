/* kad_bench — how many DHT requests a node serves per second (issue 10's
 * "records per second a node serves").
 *
 *   kad_bench [-s STREAMS] [-w WINDOW] [-t SECONDS] [-v VALUE_BYTES]
 *
 * One process, two hosts on 127.0.0.1 (both ends on one loop, so the
 * figure is a lower bound for the server alone): the server holds a
 * signed /dmsnet/ record of VALUE_BYTES (default 1024); the client opens
 * STREAMS (default 16) /dmsnet/kad/1.0.0 streams and keeps WINDOW (default
 * 32) GET_VALUE requests in flight on each, sending one more per answer,
 * for SECONDS (default 3). The server answers at most 1024 requests per
 * stream, so each stream sends that many and a new one takes its place.
 * Prints one JSON line: {"get_value_per_s":..,"value_bytes":..,...}. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/kad.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"
#include "kad/kad_msg.h"

static uv_loop_t *loop;
static dn_host *srv, *cli;
static dn_kad *ksrv, *kcli;
static dn_conn *conn;
static unsigned nstreams = 16, window = 32, seconds = 3;
static size_t vbytes = 1024;
static dn_buf request;
static uint64_t answers;
static bool running, failed, drained;

#define PER_STREAM 1024 /* DN_KAD_REQUESTS_PER_STREAM */

typedef struct bstream {
    dn_stream *s;
    dn__kad_reader rd;
    unsigned sent, got;
} bstream;

static void b_opened(dn_stream *s, int status, void *arg);

static void die(const char *what, int rc)
{
    fprintf(stderr, "kad_bench: %s: %s\n", what, dn_strerror(rc));
    exit(1);
}

static void b_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    bstream *b = arg;
    while (len > 0) {
        int took = dn__kad_reader_feed(&b->rd, data, len);
        if (took < 0)
            die("reply", took);
        data += took;
        len -= (size_t)took;
        const uint8_t *m;
        size_t mlen;
        while (dn__kad_reader_next(&b->rd, &m, &mlen) == 1) {
            answers++;
            b->got++;
            if (running && b->sent < PER_STREAM) {
                if (dn_stream_write(s, request.data, request.len) != 0)
                    failed = true;
                b->sent++;
            }
            if (b->got == PER_STREAM) {
                dn_stream_close_write(s);
                if (running && dn_conn_open_stream(conn, dn_kad_protocol(kcli), b_opened, NULL))
                    failed = true;
            }
        }
    }
}

static void b_close(dn_stream *s, int status, void *arg)
{
    bstream *b = arg;
    if (running && b->got < PER_STREAM)
        failed = true;
    dn__kad_reader_free(&b->rd);
    free(b);
}

static void b_opened(dn_stream *s, int status, void *arg)
{
    if (status)
        die("open", status);
    bstream *b = calloc(1, sizeof *b);
    b->s = s;
    dn__kad_reader_init(&b->rd, 0);
    static const dn_stream_callbacks cbs = {.on_data = b_data, .on_close = b_close};
    dn_stream_set_callbacks(s, &cbs, b);
    for (unsigned i = 0; i < window; i++, b->sent++)
        if (dn_stream_write(s, request.data, request.len) != 0)
            failed = true;
}

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    if (status)
        die("dial", status);
    conn = c;
}

static void on_put(void *arg, int status, size_t stored, const dn_kad_lookup_info *info)
{
    *(int *)arg = 1;
}

static void on_stop(uv_timer_t *t)
{
    running = false;
}

static void on_drained(uv_timer_t *t)
{
    drained = true;
}

static double run(uint8_t type, const uint8_t *key, size_t keylen)
{
    dn__kad_msg *m = calloc(1, sizeof *m);
    dn__kad_msg_init(m);
    m->type = type;
    m->key = (dn__kad_span){key, keylen};
    dn_buf_reset(&request);
    int rc = dn__kad_msg_encode_frame(m, &request);
    free(m);
    if (rc)
        die("encode", rc);
    answers = 0;
    running = true;
    for (unsigned i = 0; i < nstreams; i++)
        if ((rc = dn_conn_open_stream(conn, dn_kad_protocol(kcli), b_opened, NULL)) != 0)
            die("open", rc);
    static uv_timer_t stop;
    static bool stop_ready;
    if (!stop_ready) {
        uv_timer_init(loop, &stop);
        stop_ready = true;
    }
    uint64_t t0 = uv_hrtime();
    uv_timer_start(&stop, on_stop, seconds * 1000u, 0);
    while (running && !failed)
        uv_run(loop, UV_RUN_ONCE);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    uint64_t n = answers;
    /* Let the answers in flight land (their streams end). */
    drained = false;
    uv_timer_start(&stop, on_drained, 300, 0);
    while (!drained)
        uv_run(loop, UV_RUN_ONCE);
    if (failed)
        die("a stream failed", DN_EPROTO);
    return (double)n / secs;
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "s:w:t:v:")) != -1) {
        switch (c) {
        case 's': nstreams = (unsigned)atoi(optarg); break;
        case 'w': window = (unsigned)atoi(optarg); break;
        case 't': seconds = (unsigned)atoi(optarg); break;
        case 'v': vbytes = (size_t)atol(optarg); break;
        default:
            fprintf(stderr, "usage: kad_bench [-s STREAMS] [-w WINDOW] [-t S] [-v BYTES]\n");
            return 2;
        }
    }
    dn_log_set_level(DN_LOG_WARN);
    loop = uv_default_loop();
    dn_privkey *ks, *kc;
    if (dn_privkey_generate(DN_KEY_ED25519, &ks) || dn_privkey_generate(DN_KEY_ED25519, &kc))
        die("keys", DN_ECRYPTO);
    dn_host_config hc = DN_HOST_CONFIG_INIT;
    hc.identity = ks;
    int rc = dn_host_new(loop, &hc, &srv);
    hc.identity = kc;
    if (!rc)
        rc = dn_host_new(loop, &hc, &cli);
    dn_multiaddr any;
    dn_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &any);
    if (!rc)
        rc = dn_host_listen(srv, &any);
    dn_kad_config kcfg = DN_KAD_CONFIG_INIT;
    kcfg.mode = DN_KAD_MODE_SERVER;
    if (!rc)
        rc = dn_identify_attach(srv) || dn_identify_attach(cli) || dn_ping_attach(srv) ||
             dn_ping_attach(cli);
    if (!rc)
        rc = dn_kad_attach(srv, &kcfg, &ksrv);
    kcfg.mode = DN_KAD_MODE_CLIENT;
    if (!rc)
        rc = dn_kad_attach(cli, &kcfg, &kcli);
    if (rc)
        die("setup", rc);
    uint8_t *value = malloc(vbytes ? vbytes : 1);
    memset(value, 'v', vbytes);
    int put_done = 0;
    if ((rc = dn_kad_put_signed(ksrv, "bench", value, vbytes, on_put, &put_done)) != 0)
        die("put", rc);
    while (!put_done)
        uv_run(loop, UV_RUN_ONCE);
    char id[128], key[256];
    dn_peerid_to_string(dn_host_peerid(srv), id, sizeof id);
    int keylen = snprintf(key, sizeof key, "/dmsnet/%s/bench", id);
    dn_multiaddr ma;
    dn_host_listen_addrs(srv, &ma, 1);
    if ((rc = dn_host_dial(cli, &ma, on_dial, NULL)) != 0)
        die("dial", rc);
    while (!conn)
        uv_run(loop, UV_RUN_ONCE);
    double get = run(DN_KAD_GET_VALUE, (const uint8_t *)key, (size_t)keylen);
    printf("{\"get_value_per_s\":%.0f,\"value_bytes\":%zu,\"streams\":%u,\"window\":%u}\n", get,
           vbytes, nstreams, window);
    free(value);
    dn_buf_free(&request);
    return 0;
}
