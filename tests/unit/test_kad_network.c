/* A DHT of NODES dmsnet nodes on one loop over loopback (issue 10's
 * 50-node test): each node bootstraps from up to three earlier nodes; every
 * node puts a signed /dmsnet/ record; every node then gets every other
 * node's record (NODES x (NODES - 1) lookups), each lookup in at most
 * MAX_HOPS hops; then a third of the nodes close at once, no record is put
 * again, and every surviving node still gets every record (the dead nodes'
 * too: each record is held by the k = 20 closest). Prints lookup latency
 * (p50, p99) and the hop distribution. */
#include <sys/resource.h>

#include "kad_fixture.h"

#include "kad/routing.h"

#define NODES 50
#define MAX_HOPS 6

typedef struct get_rec {
    int calls, status;
    unsigned hops;
    uint64_t ms;
    char value[64];
    size_t vlen;
} get_rec;

static void on_get(void *arg, int status, const uint8_t *value, size_t vlen,
                   const dn_kad_lookup_info *info)
{
    get_rec *g = arg;
    g->calls++;
    g->status = status;
    g->hops = info->hops;
    g->ms = info->elapsed_ms;
    g->vlen = vlen < sizeof g->value ? vlen : sizeof g->value - 1;
    if (value)
        memcpy(g->value, value, g->vlen);
    g->value[g->vlen] = 0;
}

typedef struct put_rec {
    int calls, status;
    size_t stored;
} put_rec;

static void on_put(void *arg, int status, size_t stored, const dn_kad_lookup_info *info)
{
    put_rec *p = arg;
    p->calls++;
    p->status = status;
    p->stored = stored;
}

static void on_boot(void *arg, int status, size_t n)
{
    (*(int *)arg)++;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The record keys, made while every host is up. */
static uint8_t keys[NODES][256];
static size_t keylens[NODES];

static void make_keys(fx *f)
{
    for (int i = 0; i < NODES; i++) {
        char id[128];
        assert_true(dn_peerid_to_string(dn_host_peerid(f->host[i]), id, sizeof id) > 0);
        keylens[i] = (size_t)snprintf((char *)keys[i], 256, "/dmsnet/%s/rec", id);
    }
}

/* Every node in alive[] gets the record of every owner (not itself):
 * one round per owner offset, all nodes at once. Returns the lookups. */
static size_t get_all(fx *f, const bool *alive, const char *what, unsigned *hist, uint64_t *ms,
                      size_t *nms)
{
    get_rec *g = calloc((size_t)NODES * NODES, sizeof *g);
    size_t lookups = 0;
    uint64_t t0 = uv_now(&f->loop);
    for (int off = 1; off < NODES; off++) {
        int expected = 0;
        for (int i = 0; i < NODES; i++) {
            if (!alive[i])
                continue;
            int owner = (i + off) % NODES;
            assert_int_equal(
                dn_kad_get(f->kad[i], keys[owner], keylens[owner], on_get, &g[i * NODES + owner]),
                0);
            expected++;
        }
        int got;
        watchdog_start(f, 30000);
        for (;;) {
            got = 0;
            for (int i = 0; i < NODES; i++)
                if (alive[i])
                    got += g[i * NODES + (i + off) % NODES].calls;
            if (got == expected || f->expired)
                break;
            uv_run(&f->loop, UV_RUN_ONCE);
        }
        watchdog_stop(f);
        assert_int_equal(got, expected);
        for (int i = 0; i < NODES; i++) {
            if (!alive[i])
                continue;
            int owner = (i + off) % NODES;
            get_rec *r = &g[i * NODES + owner];
            char want[32];
            snprintf(want, sizeof want, "value-%d", owner);
            if (r->status != 0 || strcmp(r->value, want) != 0)
                fail_msg("%s: node %d getting node %d's record: %s, '%s'", what, i, owner,
                         dn_strerror(r->status), r->value);
            assert_true(r->hops <= MAX_HOPS);
            hist[r->hops]++;
            ms[(*nms)++] = r->ms;
            lookups++;
        }
    }
    printf("# %s: %zu lookups in %llu ms\n", what, lookups,
           (unsigned long long)(uv_now(&f->loop) - t0));
    free(g);
    return lookups;
}

static void report(const char *what, unsigned *hist, uint64_t *ms, size_t n);

typedef struct closest_rec {
    int calls, status;
    dn_peerid peers[DN_KAD_K];
    size_t n;
    unsigned hops;
    uint64_t ms;
} closest_rec;

static void on_closest(void *arg, int status, const dn_peerid *peers, size_t n,
                       const dn_kad_lookup_info *info)
{
    closest_rec *c = arg;
    c->calls++;
    c->status = status;
    c->n = n < DN_KAD_K ? n : DN_KAD_K;
    memcpy(c->peers, peers, c->n * sizeof *peers);
    c->hops = info->hops;
    c->ms = info->elapsed_ms;
}

static dn__kad_key sort_target;
static int by_distance(const void *a, const void *b)
{
    dn__kad_key ka, kb;
    dn__kad_key_from_peerid(a, &ka);
    dn__kad_key_from_peerid(b, &kb);
    return dn__kad_closer(&sort_target, &ka, &kb);
}

/* GET_CLOSEST_PEERS from every live node for `per` random keys each: the
 * answer must be exactly the k live nodes closest to the key (the asker
 * aside). */
static void closest_all(fx *f, const bool *alive, int per, const char *what)
{
    dn_peerid ids[NODES];
    for (int i = 0; i < NODES; i++)
        assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(f->key[i]), &ids[i]), 0);
    unsigned hist[MAX_HOPS + 1] = {0};
    uint64_t ms[NODES * 10];
    size_t nms = 0;
    for (int r = 0; r < per; r++) {
        closest_rec c[NODES];
        uint8_t key[NODES][16];
        memset(c, 0, sizeof c);
        int expected = 0;
        for (int i = 0; i < NODES; i++) {
            if (!alive[i])
                continue;
            for (int b = 0; b < 16; b++)
                key[i][b] = (uint8_t)rand();
            assert_int_equal(dn_kad_closest_peers(f->kad[i], key[i], 16, on_closest, &c[i]), 0);
            expected++;
        }
        RUN_UNTIL(f, ({
                      int got = 0;
                      for (int x = 0; x < NODES; x++)
                          got += c[x].calls;
                      got == expected;
                  }),
                  30000);
        for (int i = 0; i < NODES; i++) {
            if (!alive[i])
                continue;
            dn_peerid live[NODES];
            int nl = 0;
            for (int j = 0; j < NODES; j++)
                if (alive[j] && j != i)
                    live[nl++] = ids[j];
            dn__kad_key_from_bytes(key[i], 16, &sort_target);
            qsort(live, (size_t)nl, sizeof *live, by_distance);
            assert_int_equal(c[i].status, 0);
            assert_int_equal(c[i].n, DN_KAD_K);
            for (int x = 0; x < DN_KAD_K; x++)
                if (!dn_peerid_equal(&c[i].peers[x], &live[x]))
                    fail_msg("%s: node %d, key %d: result %d is not the %dth closest live node",
                             what, i, r, x, x + 1);
            assert_true(c[i].hops <= MAX_HOPS);
            hist[c[i].hops]++;
            ms[nms++] = c[i].ms;
        }
    }
    report(what, hist, ms, nms);
}

static void report(const char *what, unsigned *hist, uint64_t *ms, size_t n)
{
    qsort(ms, n, sizeof *ms, cmp_u64);
    printf("# %s: lookup ms p50 %llu, p99 %llu, max %llu; hops:", what,
           (unsigned long long)ms[n / 2], (unsigned long long)ms[n * 99 / 100],
           (unsigned long long)ms[n - 1]);
    for (int h = 0; h <= MAX_HOPS; h++)
        printf(" %d:%u", h, hist[h]);
    printf("\n");
}

static void test_network(void **state)
{
    fx *f = *state;
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_SERVER;
    kc.query_timeout_ms = 3000;
    srand(12345);
    uint64_t t0 = uv_now(&f->loop);
    for (int i = 0; i < NODES; i++)
        host_up(f, i, &kc);
    make_keys(f);
    /* Node i bootstraps from up to three earlier nodes. */
    dial_rec *d = calloc((size_t)NODES * 3, sizeof *d);
    int dials = 0;
    for (int i = 1; i < NODES; i++) {
        int picks = i < 3 ? i : 3;
        int chosen[3] = {-1, -1, -1};
        for (int p = 0; p < picks; p++) {
            int j;
            do
                j = rand() % i;
            while (j == chosen[0] || j == chosen[1]);
            chosen[p] = j;
            dial_start(f, i, j, &d[i * 3 + p]);
            dials++;
        }
    }
    RUN_UNTIL(f, ({
                  int n = 0;
                  for (int x = 0; x < NODES * 3; x++)
                      n += d[x].calls;
                  n == dials;
              }),
              20000);
    for (int x = 0; x < NODES * 3; x++)
        if (d[x].calls)
            assert_int_equal(d[x].status, 0);
    free(d);
    /* Two bootstrap rounds: the second finds the peers the first made known. */
    for (int round = 0; round < 2; round++) {
        int booted = 0;
        for (int i = 0; i < NODES; i++)
            assert_int_equal(dn_kad_bootstrap(f->kad[i], on_boot, &booted), 0);
        RUN_UNTIL(f, booted == NODES, 30000);
    }
    size_t tmin = SIZE_MAX, tsum = 0;
    for (int i = 0; i < NODES; i++) {
        size_t n = dn_kad_table_size(f->kad[i]);
        tsum += n;
        if (n < tmin)
            tmin = n;
    }
    printf("# %d nodes up and bootstrapped in %llu ms; table size min %zu, mean %.1f\n", NODES,
           (unsigned long long)(uv_now(&f->loop) - t0), tmin, (double)tsum / NODES);
    assert_true(tmin >= 10);

    /* Every node puts its record. */
    put_rec *p = calloc(NODES, sizeof *p);
    for (int i = 0; i < NODES; i++) {
        char v[32];
        int n = snprintf(v, sizeof v, "value-%d", i);
        assert_int_equal(
            dn_kad_put_signed(f->kad[i], "rec", (const uint8_t *)v, (size_t)n, on_put, &p[i]), 0);
    }
    RUN_UNTIL(f, ({
                  int n = 0;
                  for (int x = 0; x < NODES; x++)
                      n += p[x].calls;
                  n == NODES;
              }),
              30000);
    size_t smin = SIZE_MAX;
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(p[i].status, 0);
        if (p[i].stored < smin)
            smin = p[i].stored;
    }
    printf("# every put stored on at least %zu peers\n", smin);
    assert_true(smin >= 15);
    free(p);

    unsigned hist[MAX_HOPS + 1] = {0};
    uint64_t *ms = calloc((size_t)NODES * NODES, sizeof *ms);
    size_t nms = 0;
    bool alive[NODES];
    for (int i = 0; i < NODES; i++)
        alive[i] = true;
    size_t n = get_all(f, alive, "all up", hist, ms, &nms);
    assert_int_equal(n, NODES * (NODES - 1));
    report("get, all up", hist, ms, nms);
    closest_all(f, alive, 10, "closest peers, all up");

    /* A third of the nodes close at once. */
    int closed = 0;
    while (closed < NODES / 3) {
        int i = rand() % NODES;
        if (!alive[i])
            continue;
        alive[i] = false;
        host_down(f, i);
        closed++;
    }
    RUN_UNTIL(f, ({
                  int c = 0;
                  for (int x = 0; x < NODES; x++)
                      c += f->close_cbs[x];
                  c == closed;
              }),
              10000);
    memset(hist, 0, sizeof hist);
    nms = 0;
    n = get_all(f, alive, "a third closed", hist, ms, &nms);
    assert_int_equal(n, (NODES - closed) * (NODES - 1));
    report("get, a third closed", hist, ms, nms);
    closest_all(f, alive, 10, "closest peers, a third closed");
    free(ms);
}

static int setup(void **state)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    *state = fx_new(NODES);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    return fx_free(*state);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_network, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
