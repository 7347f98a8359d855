/* tcp_rtt — the kernel's own loopback TCP ping-pong, the floor under any
 * ping: the same two-process round trip as `conn_bench ping` against the
 * daemon, with no framing, crypto or event loop on either side.
 *
 *   tcp_rtt [-n N] [-s SIZE]     (defaults: N=1000, SIZE=32, the ping payload)
 *
 * Forks; the child listens on 127.0.0.1:0 and echoes what it reads; the
 * parent connects (TCP_NODELAY), does 100 warm-up round trips, then N timed
 * ones, each: write SIZE bytes, read until all SIZE are back.
 *   -> {"mode":"tcp_rtt","n":N,"size":S,"min_us":..,"p50_us":..,"p99_us":..,
 *       "mean_us":..,"max_us":..}
 * Blocking sockets and plain read/write: what is measured is the loopback
 * path plus two process wake-ups per round trip. Links nothing but libc. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 100
#define MAX_N 10000000u
#define MAX_SIZE 65536u
/* No single read/write/accept may block longer than this: a stuck peer
 * turns into an error instead of a hang. */
#define IO_TIMEOUT_S 10

static pid_t child = -1;

/* Parent-side failure: the child must not outlive us (it may sit in accept). */
static void fail(const char *what)
{
    fprintf(stderr, "tcp_rtt: %s: %s\n", what, strerror(errno));
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whole buffer or -1; EINTR is retried. */
static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Whole buffer or -1 (EOF mid-way sets EPIPE so the message says why). */
static int read_all(int fd, unsigned char *p, size_t len)
{
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            errno = EPIPE;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
           setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Child: listen, report the port on the pipe, echo one connection until EOF.
 * Returns the exit status (it never returns into the parent's code). */
static int echo_server(int port_fd, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int one = 1, lfd, fd, rc = 1;
    unsigned char *buf = malloc(size);
    uint16_t port;

    if (!buf)
        return perror("tcp_rtt: child: malloc"), 1;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        perror("tcp_rtt: child: socket");
        goto out;
    }
    if (set_timeouts(lfd) || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
        perror("tcp_rtt: child: listen");
        goto out_l;
    }
    port = sa.sin_port; /* network order both ends: only passed through */
    if (write_all(port_fd, (const unsigned char *)&port, sizeof port)) {
        perror("tcp_rtt: child: pipe");
        goto out_l;
    }
    close(port_fd);
    port_fd = -1;
    fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        perror("tcp_rtt: child: accept");
        goto out_l;
    }
    /* The reply must leave at once, as the daemon's echo does. */
    if (set_timeouts(fd) || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)) {
        perror("tcp_rtt: child: setsockopt");
        goto out_fd;
    }
    /* Echo whatever arrives; the parent closing is the normal end. */
    for (;;) {
        ssize_t r = read(fd, buf, size);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            rc = 0;
            break;
        }
        if (r < 0 || write_all(fd, buf, (size_t)r)) {
            perror("tcp_rtt: child: echo");
            break;
        }
    }
out_fd:
    close(fd);
out_l:
    close(lfd);
out:
    if (port_fd >= 0)
        close(port_fd);
    free(buf);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
/* Nearest-rank percentile of a sorted array, the same rule as conn_bench,
 * so the two medians compare like for like. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e3;
}

static unsigned long parse_num(const char *s, unsigned long lo, unsigned long hi, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
        fprintf(stderr, "tcp_rtt: %s must be %lu..%lu\n", what, lo, hi);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv)
{
    unsigned long n = 1000, size = 32;
    int opt;
    while ((opt = getopt(argc, argv, "n:s:")) != -1) {
        if (opt == 'n')
            n = parse_num(optarg, 1, MAX_N, "-n");
        else if (opt == 's')
            size = parse_num(optarg, 1, MAX_SIZE, "-s");
        else {
            fprintf(stderr, "usage: tcp_rtt [-n N] [-s SIZE]\n");
            return 1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "usage: tcp_rtt [-n N] [-s SIZE]\n");
        return 1;
    }

    /* A dead child must show as EPIPE from write, not kill us silently. */
    signal(SIGPIPE, SIG_IGN);
    uint64_t *rtts = malloc(n * sizeof *rtts);
    unsigned char *out = malloc(size), *in = malloc(size);
    if (!rtts || !out || !in)
        fail("malloc");

    int pfd[2];
    if (pipe(pfd))
        fail("pipe");
    pid_t parent = getpid();
    fflush(stdout); /* nothing buffered may be written twice */
    child = fork();
    if (child < 0)
        fail("fork");
    if (child == 0) {
        close(pfd[0]);
        /* Killed with us, whatever kills us (a timeout in run.sh); the
         * getppid check closes the race with a parent already gone. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
            _exit(1);
        int rc = echo_server(pfd[1], size);
        free(rtts);
        free(out);
        free(in);
        _exit(rc);
    }
    close(pfd[1]);

    uint16_t port;
    if (read_all(pfd[0], (unsigned char *)&port, sizeof port))
        fail("child did not report its port"); /* its own error is on stderr */
    close(pfd[0]);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = port,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket");
    if (set_timeouts(fd) || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
        fail("setsockopt");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa))
        fail("connect");

    for (unsigned long i = 0; i < WARMUP + n; i++) {
        /* A different byte each round, so a stale or short echo is caught. */
        memset(out, (int)(i & 0xff), size);
        uint64_t t0 = now_ns();
        if (write_all(fd, out, size))
            fail("write");
        if (read_all(fd, in, size))
            fail("read");
        uint64_t t1 = now_ns();
        if (memcmp(out, in, size)) {
            errno = EPROTO;
            fail("echo differs from what was sent");
        }
        if (i >= WARMUP)
            rtts[i - WARMUP] = t1 - t0;
    }

    /* Our close is the child's EOF: it exits 0, and only then do we report. */
    close(fd);
    int st;
    while (waitpid(child, &st, 0) < 0)
        if (errno != EINTR)
            fail("waitpid");
    child = -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "tcp_rtt: echo child failed (status %d)\n", st);
        return 1;
    }

    qsort(rtts, n, sizeof *rtts, cmp_u64);
    double sum = 0;
    for (unsigned long i = 0; i < n; i++)
        sum += (double)rtts[i];
    printf("{\"mode\":\"tcp_rtt\",\"n\":%lu,\"size\":%lu,\"min_us\":%.1f,\"p50_us\":%.1f,"
           "\"p99_us\":%.1f,\"mean_us\":%.1f,\"max_us\":%.1f}\n",
           n, size, pct_us(rtts, n, 0), pct_us(rtts, n, 50), pct_us(rtts, n, 99),
           sum / (double)n / 1e3, pct_us(rtts, n, 100));
    free(rtts);
    free(out);
    free(in);
    return 0;
}
