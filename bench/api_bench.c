/* api_bench — latency of the daemon's local API over its unix socket
 * (issue 9, "make bench adds API request latency"), next to a bare
 * libmicrohttpd server answering the same bytes in the same run.
 *
 *   api_bench SOCK [-n N] [--path /v0/status] [--any-status]
 *
 * SOCK is a running daemon's <data-dir>/api.sock. Four series of N GET
 * requests each, sequential (one in flight), after 50 warm-up requests per
 * series:
 *   new        a new connection per request, through dn__api_call: exactly
 *              what every CLI command does (curl handle, connect, request,
 *              reply parsed as JSON, close);
 *   keepalive  one libcurl handle reused, so one connection carries every
 *              request (HTTP/1.1 keep-alive); each reply is parsed as JSON
 *              too. A reply that came over a new connection is counted in
 *              "reconnects" (it should stay 0);
 * and the same two against the baseline: a child process serving the bytes
 * the daemon answered (status code, body, content type) for every request
 * with libmicrohttpd alone, in the daemon's own mode (MHD_USE_EPOLL, one
 * thread, the caller polls MHD's epoll fd and calls MHD_run), with no
 * handler and no JSON built per request. So both sides run the same client
 * code, the same HTTP library in the same mode and the same kernel path;
 * the ratio daemon/baseline is what dmsnet adds: libuv around MHD, the
 * router and its per-connection bookkeeping, and building the reply.
 *
 * The series are interleaved in 10 blocks (daemon and baseline in turn) so
 * that the machine's drift over seconds hits both alike. Prints one JSON
 * line: {"path":..,"status":..,"body_bytes":..,"n":..,"reconnects":..,
 * "new_p50_us":..,"new_p99_us":..,"new_max_us":.., "ka_..", "base_new_..",
 * "base_ka_.."}. Exit 1 when the daemon cannot be reached or answers other
 * than 200 (unless --any-status: the figures of a 404 are no status
 * figures). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "dmsnet/error.h"

#define WARMUP 50
#define BLOCKS 10
#define MAX_N 1000000u
#define REPLY_MAX (1u << 20)

static pid_t child = -1;
static char base_dir[64];
static char base_sock[96]; /* fits sockaddr_un.sun_path */

static void cleanup(void)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    if (base_sock[0])
        unlink(base_sock);
    if (base_dir[0])
        rmdir(base_dir);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("api_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup();
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1000.0;
}

/* ---- the baseline server (child process) ---- */

typedef struct canned {
    unsigned status;
    char *body;
    size_t len;
    char ctype[128];
} canned;

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
    (void)url, (void)method, (void)version, (void)upload;
    canned *k = cls;
    /* Answer on the second call, once the request is complete, as the
     * daemon does for its handlers: a response queued on the first call
     * is an early answer, after which MHD closes the connection (no
     * keep-alive). */
    static int seen;
    if (!*con_cls) {
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_len) { /* a GET has none; drain anything anyway */
        *upload_len = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(k->len, k->body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, k->ctype);
    enum MHD_Result ret = MHD_queue_response(c, k->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Runs in the child: listen on base_sock, say "ready" on fd, serve until
 * killed (the parent's death kills it too). */
static void serve(canned *k, int ready_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", base_sock);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 64))
        _exit(3);
    /* The daemon's mode (src/api/server.c): MHD_USE_EPOLL with no thread
     * of MHD's own, the caller waits on MHD's epoll fd and runs MHD_run.
     * Here a plain poll() does the waiting where the daemon has libuv. */
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, on_req, k, MHD_OPTION_LISTEN_SOCKET,
                         (MHD_socket)fd, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d)
        _exit(4);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di)
        _exit(4);
    int efd = di->epoll_fd;
    if (write(ready_fd, "r", 1) != 1)
        _exit(5);
    close(ready_fd);
    for (;;) {
        MHD_UNSIGNED_LONG_LONG to = 0;
        int ms = 1000;
        if (MHD_get_timeout(d, &to) == MHD_YES)
            ms = to < 1000 ? (int)to : 1000;
        struct pollfd pf = {.fd = efd, .events = POLLIN};
        poll(&pf, 1, ms);
        MHD_run(d);
    }
}

static void start_baseline(canned *k)
{
    snprintf(base_dir, sizeof base_dir, "/tmp/api_bench.XXXXXX");
    if (!mkdtemp(base_dir)) {
        base_dir[0] = 0;
        die("mkdtemp: %s", strerror(errno));
    }
    snprintf(base_sock, sizeof base_sock, "%s/base.sock", base_dir);
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        die("pipe: %s", strerror(errno));
    fflush(NULL);
    child = fork();
    if (child < 0)
        die("fork: %s", strerror(errno));
    if (child == 0) {
        close(p[0]);
        serve(k, p[1]);
    }
    close(p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    char c;
    if (poll(&pf, 1, 10000) != 1 || read(p[0], &c, 1) != 1) {
        int st = 0;
        waitpid(child, &st, WNOHANG);
        die("the baseline server did not start (status %d)", st);
    }
    close(p[0]);
}

/* ---- clients ---- */

typedef struct sink {
    char *buf;
    size_t len, cap;
} sink;

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->len + n + 1 > REPLY_MAX)
        return 0;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
    return n;
}

/* One reused handle per server: what a long-lived client of the API (a
 * GUI, a monitoring agent) would do. Options as dn__api_call sets them. */
typedef struct ka {
    CURL *c;
    struct curl_slist *hdrs;
    sink s;
    const char *sock;
} ka;

static void ka_init(ka *k, const char *sock, const char *url)
{
    memset(k, 0, sizeof *k);
    k->sock = sock;
    if (!(k->c = curl_easy_init()))
        die("curl_easy_init failed");
    curl_easy_setopt(k->c, CURLOPT_URL, url);
    curl_easy_setopt(k->c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(k->c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k->c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(k->c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(k->c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(k->c, CURLOPT_WRITEDATA, &k->s);
    k->hdrs = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, k->hdrs);
}

static void ka_free(ka *k)
{
    curl_slist_free_all(k->hdrs);
    curl_easy_cleanup(k->c);
    free(k->s.buf);
}

/* One request on the kept connection; returns its HTTP status, counts a
 * reply that needed a new connection. */
static long ka_get(ka *k, unsigned *reconnects)
{
    k->s.len = 0;
    CURLcode cc = curl_easy_perform(k->c);
    if (cc != CURLE_OK)
        die("GET over %s (keep-alive): %s", k->sock, curl_easy_strerror(cc));
    long status = 0, conns = 0;
    curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(k->c, CURLINFO_NUM_CONNECTS, &conns);
    if (conns > 0)
        (*reconnects)++;
    json_error_t jerr;
    json_t *v = json_loadb(k->s.buf ? k->s.buf : "", k->s.len, JSON_DECODE_ANY, &jerr);
    if (!v)
        die("reply over %s is not JSON: %s", k->sock, jerr.text);
    json_decref(v);
    return status;
}

static long new_get(const char *sock, const char *path)
{
    long status = 0;
    json_t *reply = NULL;
    int rc = dn__api_call(sock, "GET", path, NULL, &status, &reply);
    if (rc)
        die("GET %s over %s: %s", path, sock, dn_strerror(rc));
    json_decref(reply);
    return status;
}

typedef struct series {
    uint64_t *v;
    size_t n;
} series;

static void add(series *s, uint64_t ns)
{
    s->v[s->n++] = ns;
}

static void put_series(const char *name, series *s, bool comma)
{
    qsort(s->v, s->n, sizeof *s->v, cmp_u64);
    printf("\"%s_p50_us\":%.1f,\"%s_p99_us\":%.1f,\"%s_max_us\":%.1f%s", name,
           pct_us(s->v, s->n, 50), name, pct_us(s->v, s->n, 99), name,
           (double)s->v[s->n - 1] / 1000.0, comma ? "," : "");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: api_bench SOCK [-n N] [--path PATH] [--any-status]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"path", required_argument, NULL, 'p'},
                                         {"any-status", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned n = 2000;
    const char *path = "/v0/status";
    bool any_status = false;
    int c;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': path = optarg; break;
        case 'a': any_status = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc || n < BLOCKS || n > MAX_N || path[0] != '/') {
        usage(stderr);
        return 2;
    }
    const char *sock = argv[optind];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);

    /* What the daemon answers, byte for byte, becomes the baseline's reply. */
    canned k = {0};
    {
        char url[1024];
        snprintf(url, sizeof url, "http://localhost%s", path);
        ka probe;
        ka_init(&probe, sock, url);
        probe.s.len = 0;
        CURLcode cc = curl_easy_perform(probe.c);
        if (cc != CURLE_OK)
            die("GET %s over %s: %s", path, sock, curl_easy_strerror(cc));
        long st = 0;
        char *ct = NULL;
        curl_easy_getinfo(probe.c, CURLINFO_RESPONSE_CODE, &st);
        curl_easy_getinfo(probe.c, CURLINFO_CONTENT_TYPE, &ct);
        if (st != 200 && !any_status)
            die("GET %s answered %ld, not 200: %.200s", path, st,
                probe.s.buf ? probe.s.buf : "(no body)");
        k.status = (unsigned)st;
        k.len = probe.s.len;
        k.body = malloc(k.len + 1);
        if (!k.body)
            die("out of memory");
        memcpy(k.body, probe.s.buf ? probe.s.buf : "", k.len);
        k.body[k.len] = 0;
        snprintf(k.ctype, sizeof k.ctype, "%s", ct ? ct : "application/json");
        ka_free(&probe);
    }
    start_baseline(&k);

    char url[1024];
    snprintf(url, sizeof url, "http://localhost%s", path);
    ka dka, bka;
    ka_init(&dka, sock, url);
    ka_init(&bka, base_sock, url);
    series s[4];
    for (int i = 0; i < 4; i++) {
        s[i].n = 0;
        if (!(s[i].v = malloc(n * sizeof *s[i].v)))
            die("out of memory");
    }
    enum { D_NEW, D_KA, B_NEW, B_KA };
    unsigned reconnects = 0, base_reconnects = 0, dummy = 0;
    /* Warm-up: code paths, the kept connections, the server's pools. The
     * first keep-alive request of each handle opens its connection. */
    for (unsigned i = 0; i < WARMUP; i++) {
        new_get(sock, path);
        new_get(base_sock, path);
        ka_get(&dka, &dummy);
        ka_get(&bka, &dummy);
    }
    for (unsigned b = 0; b < BLOCKS; b++) {
        unsigned per = n / BLOCKS + (b < n % BLOCKS);
        /* Alternate which server goes first in a block. */
        for (unsigned t = 0; t < 2; t++) {
            bool daemon = (t == 0) == (b % 2 == 0);
            const char *sk = daemon ? sock : base_sock;
            for (unsigned i = 0; i < per; i++) {
                uint64_t t0 = now_ns();
                long st = new_get(sk, path);
                add(&s[daemon ? D_NEW : B_NEW], now_ns() - t0);
                if (st != (long)k.status)
                    die("GET %s over %s answered %ld, then %ld", path, sk, (long)k.status, st);
            }
            ka *h = daemon ? &dka : &bka;
            for (unsigned i = 0; i < per; i++) {
                uint64_t t0 = now_ns();
                long st = ka_get(h, daemon ? &reconnects : &base_reconnects);
                add(&s[daemon ? D_KA : B_KA], now_ns() - t0);
                if (st != (long)k.status)
                    die("GET %s over %s answered %ld, then %ld", path, sk, (long)k.status, st);
            }
        }
    }
    ka_free(&dka);
    ka_free(&bka);
    cleanup();
    /* A baseline that reconnected would not be the keep-alive floor. */
    if (base_reconnects)
        die("the baseline server closed %u kept connections", base_reconnects);

    printf("{\"path\":\"%s\",\"status\":%u,\"body_bytes\":%zu,\"n\":%u,\"reconnects\":%u,", path,
           k.status, k.len, n, reconnects);
    put_series("new", &s[D_NEW], true);
    put_series("ka", &s[D_KA], true);
    put_series("base_new", &s[B_NEW], true);
    put_series("base_ka", &s[B_KA], false);
    printf("}\n");
    for (int i = 0; i < 4; i++)
        free(s[i].v);
    free(k.body);
    curl_global_cleanup();
    return 0;
}
