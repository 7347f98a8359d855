/* boot_bench — from `dmsnet daemon --bootstrap B` being started to its first
 * bootstrap peer connected (issue 9, "make bench adds ... the time from
 * dmsnet daemon start to the first bootstrap peer connected"), next to the
 * time a fresh `dmsnet ping B -c 1` process takes, in the same run.
 *
 *   boot_bench DMSNET WORKDIR [-n RUNS]
 *
 * Starts B (`dmsnet daemon` on 127.0.0.1, port 0, its own data dir under
 * WORKDIR) and reads its output through a pipe. Then RUNS times, each with
 * a fresh data dir (a first start: the identity and the database are made,
 * as a new user's node does):
 *   t0 = just before fork(); exec `dmsnet daemon --data-dir WORKDIR/aN
 *   --listen /ip4/127.0.0.1/tcp/0 --bootstrap <B>`; its stdout and stderr
 *   come through a pipe, each line timestamped as it arrives:
 *     ready_ms   its "listening on" line (the node is up);
 *     first_ms   its "connected to bootstrap peer" log line;
 *     seen_ms    B sees A connected: B's log line "connected <A's peer id>"
 *                (read from B's pipe) or the peer_connectedness_changed
 *                event for A on B's API event stream (`dmsnet events
 *                --json` on B, piped), whichever comes first: the same
 *                moment seen from the other side.
 *   then SIGTERM and wait for it (exit 0 expected: clean stop).
 * and, right after each, the baseline:
 *     ping_ms    t0 to the exit of `dmsnet ping <B> -c 1` (exit 0): a fresh
 *                process that makes a key, dials B (TCP, Noise, Yamux), pings
 *                once and exits. The same process start, the same dial and
 *                handshake, without the node around them (no store, no API,
 *                no listen sockets); so first_ms - ping_ms is what starting
 *                a node adds.
 * Prints one JSON line with the median and every run of each:
 *   {"runs":N,"ready_ms":..,"first_ms":..,"seen_ms":..,"ping_ms":..,
 *    "ready_runs":[..],...}
 * Everything it starts dies with it (PR_SET_PDEATHSIG) or is killed on
 * error; each wait is bounded. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 100
#define WAIT_MS 20000 /* for any one line or exit */

typedef struct proc {
    pid_t pid;
    int fd;
    char buf[65536];
    size_t len;
    bool eof;
} proc;

static proc b_proc = {.pid = -1, .fd = -1}, a_proc = {.pid = -1, .fd = -1},
            e_proc = {.pid = -1, .fd = -1};

static void kill_proc(proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = -1;
    }
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("boot_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    kill_proc(&a_proc);
    kill_proc(&e_proc);
    kill_proc(&b_proc);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* fork + exec argv with stdout and stderr into a pipe (p->fd, read side,
 * non-blocking), or into /dev/null when not piped. */
static void spawn(proc *p, char *const argv[], bool piped)
{
    int fds[2] = {-1, -1};
    if (piped && pipe2(fds, O_CLOEXEC))
        die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int out = piped ? fds[1] : open("/dev/null", O_WRONLY);
        if (out < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    p->pid = pid;
    p->len = 0;
    p->eof = false;
    p->fd = -1;
    if (piped) {
        close(fds[1]);
        p->fd = fds[0];
        fcntl(p->fd, F_SETFL, O_NONBLOCK);
    }
}

/* A line seen on a pipe, given to the caller's matcher with its arrival time. */
typedef void (*line_fn)(proc *p, const char *line, uint64_t t, void *ud);

/* Read what is there and hand over complete lines. */
static void drain(proc *p, line_fn fn, void *ud)
{
    for (;;) {
        if (p->fd < 0 || p->eof)
            return;
        if (p->len == sizeof p->buf - 1)
            p->len = 0; /* a line longer than the buffer: not one we look for */
        ssize_t r = read(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (r == 0) {
            p->eof = true;
            return;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN */
        }
        uint64_t t = now_ns();
        p->len += (size_t)r;
        p->buf[p->len] = 0;
        char *start = p->buf, *nl;
        while ((nl = memchr(start, '\n', (size_t)(p->buf + p->len - start)))) {
            *nl = 0;
            fn(p, start, t, ud);
            start = nl + 1;
        }
        size_t rest = (size_t)(p->buf + p->len - start);
        memmove(p->buf, start, rest);
        p->len = rest;
    }
}

/* ---- one run's state ---- */

#define SEEN_MAX 64
typedef struct run_state {
    uint64_t t0, ready, first, seen;
    char a_id[128];
    /* B's "connected <id>" lines of this run, in case they come before A
     * has told us its id. */
    char seen_ids[SEEN_MAX][128];
    uint64_t seen_t[SEEN_MAX];
    size_t nseen;
    char b_ma[512]; /* B's address, from its first line */
} run_state;

static void on_b_line(proc *p, const char *line, uint64_t t, void *ud)
{
    (void)p;
    run_state *r = ud;
    const char *m;
    if (!r->b_ma[0] && (m = strstr(line, "listening on /ip4/127.0.0.1/"))) {
        snprintf(r->b_ma, sizeof r->b_ma, "%s", m + strlen("listening on "));
        return;
    }
    if ((m = strstr(line, "daemon: connected ")) && r->nseen < SEEN_MAX) {
        m += strlen("daemon: connected ");
        size_t n = strcspn(m, " \t");
        if (n >= sizeof r->seen_ids[0])
            return;
        memcpy(r->seen_ids[r->nseen], m, n);
        r->seen_ids[r->nseen][n] = 0;
        r->seen_t[r->nseen++] = t;
    }
}

/* B's event stream (`dmsnet events --json`): one JSON object per line. */
static void on_e_line(proc *p, const char *line, uint64_t t, void *ud)
{
    (void)p;
    run_state *r = ud;
    const char *m;
    if (!strstr(line, "\"type\":\"peer_connectedness_changed\"") ||
        !strstr(line, "\"connectedness\":\"connected\"") || !(m = strstr(line, "\"peer\":\"")) ||
        r->nseen == SEEN_MAX)
        return;
    m += strlen("\"peer\":\"");
    size_t n = strcspn(m, "\"");
    if (n >= sizeof r->seen_ids[0])
        return;
    memcpy(r->seen_ids[r->nseen], m, n);
    r->seen_ids[r->nseen][n] = 0;
    r->seen_t[r->nseen++] = t;
}

static void on_a_line(proc *p, const char *line, uint64_t t, void *ud)
{
    (void)p;
    run_state *r = ud;
    const char *m;
    if (!r->ready && (m = strstr(line, "listening on "))) {
        const char *id = strstr(m, "/p2p/");
        if (id) {
            id += 5;
            size_t n = strcspn(id, " \t");
            if (n < sizeof r->a_id) {
                memcpy(r->a_id, id, n);
                r->a_id[n] = 0;
                r->ready = t;
            }
        }
        return;
    }
    if (!r->first && strstr(line, "connected to bootstrap peer "))
        r->first = t;
}

static void match_seen(run_state *r)
{
    if (r->seen || !r->a_id[0])
        return;
    for (size_t i = 0; i < r->nseen; i++)
        if (!strcmp(r->seen_ids[i], r->a_id)) {
            r->seen = r->seen_t[i];
            return;
        }
}

/* Poll both pipes until done(r) or the deadline; false on timeout or when
 * A's pipe ended first (it exited). */
static bool pump(run_state *r, bool (*done)(const run_state *), int ms)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    while (!done(r)) {
        uint64_t now = now_ns();
        if (now >= end)
            return false;
        struct pollfd pf[3];
        int n = 0;
        if (b_proc.fd >= 0 && !b_proc.eof)
            pf[n++] = (struct pollfd){.fd = b_proc.fd, .events = POLLIN};
        if (e_proc.fd >= 0 && !e_proc.eof)
            pf[n++] = (struct pollfd){.fd = e_proc.fd, .events = POLLIN};
        if (a_proc.fd >= 0 && !a_proc.eof)
            pf[n++] = (struct pollfd){.fd = a_proc.fd, .events = POLLIN};
        if (n == 0)
            return false;
        int left = (int)((end - now) / 1000000u) + 1;
        if (poll(pf, (nfds_t)n, left) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        drain(&b_proc, on_b_line, r);
        drain(&e_proc, on_e_line, r);
        if (a_proc.fd >= 0)
            drain(&a_proc, on_a_line, r);
        match_seen(r);
        if (b_proc.eof)
            die("B exited");
        if (a_proc.fd >= 0 && a_proc.eof && !done(r))
            return false;
    }
    return true;
}

static bool b_ready(const run_state *r)
{
    return r->b_ma[0] != 0;
}
static bool a_done(const run_state *r)
{
    return r->ready && r->first && r->seen;
}

/* Wait for p to exit within ms: its exit status, or -1 (then killed).
 * The end of its pipe marks the exit (nothing else holds the write side),
 * so the wait is a poll, not a busy loop that would take a core from the
 * process being timed; *t_exit (optional) is when the pipe ended. */
static int wait_exit(proc *p, int ms, uint64_t *t_exit)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    char sink[4096];
    while (p->fd >= 0) {
        uint64_t now = now_ns();
        if (now >= end)
            break;
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        if (poll(&pf, 1, (int)((end - now) / 1000000u) + 1) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        ssize_t r = read(p->fd, sink, sizeof sink);
        if (r == 0) {
            if (t_exit)
                *t_exit = now_ns();
            close(p->fd);
            p->fd = -1;
        }
    }
    int st = 0;
    for (;;) {
        pid_t w = waitpid(p->pid, &st, WNOHANG);
        if (w == p->pid)
            break;
        if (now_ns() >= end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            st = -1;
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    p->pid = -1;
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, size_t n)
{
    double s[MAX_RUNS];
    memcpy(s, v, n * sizeof *v);
    qsort(s, n, sizeof *s, cmp_d);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void put(const char *name, const double *v, size_t n)
{
    printf("\"%s_ms\":%.2f,\"%s_runs\":[", name, median(v, n), name);
    for (size_t i = 0; i < n; i++)
        printf("%s%.2f", i ? "," : "", v[i]);
    printf("],");
}

static double ms_since(uint64_t t0, uint64_t t)
{
    return (double)(t - t0) / 1e6;
}

int main(int argc, char **argv)
{
    unsigned runs = 5;
    int c;
    while ((c = getopt(argc, argv, "n:h")) != -1) {
        switch (c) {
        case 'n': runs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'h': printf("usage: boot_bench DMSNET WORKDIR [-n RUNS]\n"); return 0;
        default: fprintf(stderr, "usage: boot_bench DMSNET WORKDIR [-n RUNS]\n"); return 2;
        }
    }
    if (optind + 2 != argc || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: boot_bench DMSNET WORKDIR [-n RUNS] (1 <= RUNS <= %d)\n", MAX_RUNS);
        return 2;
    }
    char *dmsnet = argv[optind], *work = argv[optind + 1];
    signal(SIGPIPE, SIG_IGN);

    char bdir[4096];
    snprintf(bdir, sizeof bdir, "%s/boot_b", work);
    mkdir(bdir, 0700);
    char *bargv[] = {dmsnet,  "daemon", "--data-dir", bdir, "--listen", "/ip4/127.0.0.1/tcp/0",
                     "--log", "info",   NULL};
    spawn(&b_proc, bargv, true);
    run_state r = {0};
    if (!pump(&r, b_ready, WAIT_MS))
        die("B did not print its address");
    char b_ma[512];
    snprintf(b_ma, sizeof b_ma, "%s", r.b_ma);
    /* B's side of the connection: its log line "connected <id>" when it
     * logs peer events, and its API's event stream, followed by the CLI
     * (`dmsnet events --json`); whichever tells first. If the follower
     * cannot run (no API) the log line still counts. */
    char *eargv[] = {dmsnet, "events", "--json", "--data-dir", bdir, NULL};
    spawn(&e_proc, eargv, true);

    double ready[MAX_RUNS], first[MAX_RUNS], seen[MAX_RUNS], ping[MAX_RUNS];
    for (unsigned i = 0; i < runs; i++) {
        char adir[4096];
        snprintf(adir, sizeof adir, "%s/boot_a%u", work, i);
        if (mkdir(adir, 0700) && errno != EEXIST)
            die("mkdir %s: %s", adir, strerror(errno));
        char *aargv[] = {dmsnet,        "daemon",   "--data-dir",
                         adir,          "--listen", "/ip4/127.0.0.1/tcp/0",
                         "--bootstrap", b_ma,       NULL};
        memset(&r, 0, sizeof r);
        snprintf(r.b_ma, sizeof r.b_ma, "%s", b_ma);
        /* B logs connections through a rate limiter (DN_LOG_BURST lines per
         * second and call site); a run makes four of its lines (A and the
         * ping, each in and out), so a fresh second per run keeps the one
         * we wait for from being suppressed. It also lets B finish with
         * the last run's connections. */
        struct timespec gap = {1, 100000000};
        nanosleep(&gap, NULL);
        /* B's lines from the last run are old news. */
        drain(&b_proc, on_b_line, &r);
        r.nseen = 0;
        r.t0 = now_ns();
        spawn(&a_proc, aargv, true);
        if (!pump(&r, a_done, WAIT_MS))
            die("run %u: A did not connect to B (ready %d, first %d, seen by B %d): %.300s", i,
                r.ready != 0, r.first != 0, r.seen != 0, a_proc.buf);
        ready[i] = ms_since(r.t0, r.ready);
        first[i] = ms_since(r.t0, r.first);
        seen[i] = ms_since(r.t0, r.seen);
        kill(a_proc.pid, SIGTERM);
        int st = wait_exit(&a_proc, 10000, NULL);
        if (st != 0)
            die("run %u: A did not stop cleanly on SIGTERM (status %d)", i, st);

        /* The baseline, right after: the same machine state. */
        char *pargv[] = {dmsnet, "ping", b_ma, "-c", "1", NULL};
        proc pp = {.pid = -1, .fd = -1};
        uint64_t t0 = now_ns(), t1 = 0;
        spawn(&pp, pargv, true);
        st = wait_exit(&pp, WAIT_MS, &t1);
        if (st != 0)
            die("run %u: dmsnet ping %s -c 1 exited with %d", i, b_ma, st);
        ping[i] = ms_since(t0, t1);
    }
    kill_proc(&e_proc);
    kill(b_proc.pid, SIGTERM);
    int st = wait_exit(&b_proc, 10000, NULL);
    if (st != 0)
        die("B did not stop cleanly on SIGTERM (status %d)", st);

    printf("{\"runs\":%u,", runs);
    put("ready", ready, runs);
    put("first", first, runs);
    put("seen", seen, runs);
    put("ping", ping, runs);
    printf("\"b\":\"%s\"}\n", b_ma);
    return 0;
}
