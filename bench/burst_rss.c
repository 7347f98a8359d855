/* burst_rss — what connections keep after a burst (issue 8: "buffers that
 * never shrink").
 *
 *   burst_rss [-n CONNS] [-b BYTES] [-c CONCURRENT] [--idle MS]
 *
 * One process, two hosts on 127.0.0.1 (so both ends of every connection
 * count): the listener echoes /bench/echo/1.0.0. The dialer opens CONNS
 * connections (no /p2p, so none is reused) and VmRSS is read once they
 * are all open and identified (before). Then, CONCURRENT at a time, each
 * connection carries one stream with BYTES each way (written at once, the
 * echo coming back), closed when done. After the last one, the process
 * idles IDLE ms (default 3000: the session trims buffers after 1-2 s of
 * quiet) and VmRSS is read again (after), then once more after glibc's
 * malloc_trim(0) (allocator-held free memory returned).
 * Prints one JSON line:
 *   {"conns":N,"bytes":B,"rss_before_kib":..,"rss_after_kib":..,
 *    "rss_after_trim_kib":..,"per_conn_kib":..,"per_conn_trim_kib":..}
 * per_conn = (after - before) / CONNS, both ends included. Only the public
 * API is used, so the same file builds against older trees. */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/log.h"
#include "dmsnet/multiaddr.h"

#define ECHO_PROTO "/bench/echo/1.0.0"

static uv_loop_t *loop;
static dn_host *lhost, *dhost;
static dn_multiaddr target;
static unsigned want, nopen, started, inflight_dials;
static unsigned concurrent, bursts_started, bursts_done;
static size_t burst_bytes;
static dn_conn **conns;
static uint8_t *payload;
static unsigned idle_ms = 3000;
static long rss_before, rss_after, rss_trim;
static uv_timer_t timer;
static int failures;

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static dn_host *new_host(void)
{
    dn_privkey *k;
    dn_host *h;
    if (dn_privkey_generate(DN_KEY_ED25519, &k))
        exit(1);
    dn_host_config cfg = {.size = sizeof(dn_host_config), .identity = k,
                          .max_conns = want + 64,
                          .handshake_timeout_ms = 30000,
                          .dial_timeout_ms = 30000};
    if (dn_host_new(loop, &cfg, &h))
        exit(1);
    return h;
}

/* ---- the listener's echo ---- */

static void echo_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    if (dn_stream_write(s, d, n))
        dn_stream_reset(s);
}
static void echo_eof(dn_stream *s, void *arg)
{
    dn_stream_close_write(s);
}
static void echo_close(dn_stream *s, int status, void *arg) {}
static void echo_handler(dn_host *h, dn_stream *s, void *arg)
{
    static const dn_stream_callbacks cbs = {
        .on_data = echo_data, .on_eof = echo_eof, .on_close = echo_close};
    dn_stream_set_callbacks(s, &cbs, NULL);
}

/* ---- the dialer's bursts ---- */

typedef struct burst {
    size_t sent, got;
} burst;

static void start_bursts(void);
static void on_idle_done(uv_timer_t *t);

static void burst_pump(dn_stream *s, burst *b)
{
    while (b->sent < burst_bytes) {
        size_t n = burst_bytes - b->sent;
        if (n > 256 * 1024)
            n = 256 * 1024;
        if (dn_stream_queued(s) + n > DN_STREAM_QUEUE_HIGH)
            return; /* on_writable resumes */
        if (dn_stream_write(s, payload, n)) {
            failures++;
            dn_stream_reset(s);
            return;
        }
        b->sent += n;
    }
    dn_stream_close_write(s);
}

static void b_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    burst *b = arg;
    b->got += n;
}
static void b_writable(dn_stream *s, void *arg)
{
    burst_pump(s, arg);
}
static void b_eof(dn_stream *s, void *arg) {}
static void b_close(dn_stream *s, int status, void *arg)
{
    burst *b = arg;
    if (status || b->got != burst_bytes)
        failures++;
    free(b);
    bursts_done++;
    if (bursts_done == want) {
        uv_timer_start(&timer, on_idle_done, idle_ms, 0);
        return;
    }
    start_bursts();
}

static void on_stream(dn_stream *s, int status, void *arg)
{
    burst *b = arg;
    if (status) {
        failures++;
        b->got = burst_bytes;
        b_close(NULL, status, b);
        return;
    }
    static const dn_stream_callbacks cbs = {
        .on_data = b_data, .on_eof = b_eof, .on_writable = b_writable, .on_close = b_close};
    dn_stream_set_callbacks(s, &cbs, b);
    burst_pump(s, b);
}

static void start_bursts(void)
{
    while (bursts_started < want && bursts_started - bursts_done < concurrent) {
        burst *b = calloc(1, sizeof *b);
        dn_conn *c = conns[bursts_started++];
        if (!b || dn_conn_open_stream(c, ECHO_PROTO, on_stream, b)) {
            fprintf(stderr, "burst_rss: cannot open a stream\n");
            exit(1);
        }
    }
}

static void on_idle_done(uv_timer_t *t)
{
    rss_after = rss_kib();
    malloc_trim(0);
    rss_trim = rss_kib();
    printf("{\"conns\":%u,\"bytes\":%zu,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
           "\"rss_after_trim_kib\":%ld,\"per_conn_kib\":%.1f,\"per_conn_trim_kib\":%.1f,"
           "\"failures\":%d}\n",
           want, burst_bytes, rss_before, rss_after, rss_trim,
           (double)(rss_after - rss_before) / want, (double)(rss_trim - rss_before) / want,
           failures);
    fflush(stdout);
    exit(failures ? 1 : 0);
}

static void on_settled(uv_timer_t *t)
{
    rss_before = rss_kib();
    start_bursts();
}

/* ---- connecting ---- */

static void dial_more(void);

static void on_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    inflight_dials--;
    if (status) {
        fprintf(stderr, "burst_rss: dial: %s\n", dn_strerror(status));
        exit(1);
    }
    conns[nopen++] = c;
    if (nopen == want) {
        uv_timer_start(&timer, on_settled, 1500, 0); /* identify done on all */
        return;
    }
    dial_more();
}

static void dial_more(void)
{
    while (started < want && inflight_dials < 32) {
        started++;
        inflight_dials++;
        if (dn_host_dial(dhost, &target, on_dialed, NULL)) {
            fprintf(stderr, "burst_rss: dial failed\n");
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    want = 500;
    burst_bytes = 1u << 20;
    concurrent = 50;
    static const struct option lo[] = {{"idle", required_argument, NULL, 'i'}, {0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "n:b:c:", lo, NULL)) != -1) {
        if (opt == 'n')
            want = (unsigned)strtoul(optarg, NULL, 10);
        else if (opt == 'b')
            burst_bytes = strtoull(optarg, NULL, 10);
        else if (opt == 'c')
            concurrent = (unsigned)strtoul(optarg, NULL, 10);
        else if (opt == 'i')
            idle_ms = (unsigned)strtoul(optarg, NULL, 10);
        else {
            fprintf(stderr, "usage: burst_rss [-n CONNS] [-b BYTES] [-c CONCURRENT] [--idle MS]\n");
            return 2;
        }
    }
    if (!want || !concurrent || sodium_init() < 0)
        return 2;
    dn_log_set_level(DN_LOG_WARN);
    payload = calloc(1, 256 * 1024);
    conns = calloc(want, sizeof *conns);
    loop = uv_default_loop();
    uv_timer_init(loop, &timer);
    lhost = new_host();
    dhost = new_host();
    if (dn_host_set_handler(lhost, ECHO_PROTO, echo_handler, NULL))
        return 1;
    dn_multiaddr ma;
    if (dn_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma) || dn_host_listen(lhost, &ma) ||
        dn_host_listen_addrs(lhost, &target, 1) != 1)
        return 1;
    dial_more();
    uv_run(loop, UV_RUN_DEFAULT);
    return 1;
}
