/* Unit tests: the iterative Kademlia lookup (src/kad/query.c) — alpha
 * requests in flight, only the k closest non-failed candidates asked,
 * timeouts, the bounded candidate set, and a simulated network of 500
 * nodes (each with its own routing table, in memory) in which every lookup
 * finds the true k closest in a bounded number of rounds, also with a third
 * of the nodes dead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "kad/query.h"
#include "kad/routing.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void rand_id(dn_peerid *id)
{
    uint8_t mh[34] = {0x12, 0x20};
    for (int i = 0; i < 32; i += 8) {
        uint64_t r = next_rand();
        memcpy(mh + 2 + i, &r, 8);
    }
    assert_int_equal(dn_peerid_from_bytes(mh, sizeof mh, id), 0);
}

static dn__kad_key key_of(const dn_peerid *id)
{
    dn__kad_key k;
    assert_int_equal(dn__kad_key_from_peerid(id, &k), 0);
    return k;
}

static dn__kad_key sort_target;
static int by_distance(const void *a, const void *b)
{
    dn__kad_key ka = key_of(a), kb = key_of(b);
    return dn__kad_closer(&sort_target, &ka, &kb);
}

/* n random ids sorted by distance to target. */
static void sorted_ids(const dn__kad_key *target, dn_peerid *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rand_id(&ids[i]);
    sort_target = *target;
    qsort(ids, n, sizeof *ids, by_distance);
}

static void test_alpha_and_window(void **state)
{
    (void)state;
    dn__kad_key target = {{0x42}};
    dn_peerid ids[10], p;
    sorted_ids(&target, ids, 10);
    dn__kad_query q;
    dn__kad_query_opts o = {.k = 3, .alpha = 2, .timeout_ms = 1000, .max_peers = 5};
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, &o), 0);
    /* given farthest first: the cap keeps the 5 closest */
    dn_peerid rev[10];
    for (int i = 0; i < 10; i++)
        rev[i] = ids[9 - i];
    assert_int_equal(dn__kad_query_add(&q, rev, 10), 10 - 5 + 5 - 5 + 5 - 5 + 5);
    assert_int_equal(q.n, 5);
    assert_int_equal(q.dropped, 5);
    assert_false(dn__kad_query_done(&q));

    assert_int_equal(dn__kad_query_next(&q, 0, &p), 1);
    assert_true(dn_peerid_equal(&p, &ids[0]));
    assert_int_equal(dn__kad_query_next(&q, 0, &p), 1);
    assert_true(dn_peerid_equal(&p, &ids[1]));
    assert_int_equal(dn__kad_query_next(&q, 0, &p), 0); /* alpha = 2 in flight */
    assert_int_equal(q.inflight, 2);

    assert_int_equal(dn__kad_query_success(&q, &ids[0], NULL, 0), 0);
    assert_int_equal(dn__kad_query_next(&q, 1, &p), 1);
    assert_true(dn_peerid_equal(&p, &ids[2]));
    assert_int_equal(dn__kad_query_success(&q, &ids[1], NULL, 0), 0);
    /* k = 3: ids[3] is outside the window of the 3 closest live ones */
    assert_int_equal(dn__kad_query_next(&q, 2, &p), 0);
    assert_false(dn__kad_query_done(&q));
    /* ids[2] fails: ids[3] moves into the window */
    assert_int_equal(dn__kad_query_failure(&q, &ids[2]), 0);
    assert_int_equal(dn__kad_query_next(&q, 3, &p), 1);
    assert_true(dn_peerid_equal(&p, &ids[3]));
    assert_int_equal(dn__kad_query_next(&q, 3, &p), 0);
    assert_int_equal(dn__kad_query_success(&q, &ids[3], NULL, 0), 0);
    assert_true(dn__kad_query_done(&q));
    assert_int_equal(dn__kad_query_next(&q, 4, &p), 0);

    dn_peerid res[8];
    assert_int_equal(dn__kad_query_results(&q, res, 8), 3);
    assert_true(dn_peerid_equal(&res[0], &ids[0]));
    assert_true(dn_peerid_equal(&res[1], &ids[1]));
    assert_true(dn_peerid_equal(&res[2], &ids[3]));
    assert_int_equal(dn__kad_query_results(&q, res, 1), 1);
    assert_int_equal(q.asked, 4);
    assert_int_equal(q.answered, 3);
    assert_int_equal(q.failed, 1);

    /* replies that do not fit the state */
    assert_int_equal(dn__kad_query_success(&q, &ids[0], NULL, 0), DN_ESTATE);
    assert_int_equal(dn__kad_query_failure(&q, &ids[2]), DN_ESTATE);
    assert_int_equal(dn__kad_query_success(&q, &ids[4], NULL, 0), DN_ESTATE); /* never asked */
    assert_int_equal(dn__kad_query_success(&q, &ids[9], NULL, 0), DN_ENOTFOUND);
    dn__kad_query_close(&q);

    /* bounds of the options */
    o.max_peers = 4;
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, &o), DN_EINVAL);
    o = (dn__kad_query_opts){.k = DN_KAD_K_MAX + 1};
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, &o), DN_EINVAL);
    o = (dn__kad_query_opts){.max_peers = DN_KAD_QUERY_PEERS_MAX + 1};
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, &o), DN_EINVAL);
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, NULL), 0);
    assert_int_equal(q.k, DN_KAD_K);
    assert_int_equal(q.alpha, DN_KAD_ALPHA);
    assert_int_equal(q.cap, DN_KAD_QUERY_PEERS);
    /* no seeds: done at once, nothing to ask, no results */
    assert_true(dn__kad_query_done(&q));
    assert_int_equal(dn__kad_query_next(&q, 0, &p), 0);
    assert_int_equal(dn__kad_query_results(&q, res, 8), 0);
    dn__kad_query_close(&q);
}

static void test_self_dups_closer(void **state)
{
    (void)state;
    dn__kad_key target = {{0x01}};
    dn_peerid ids[30], self, p;
    sorted_ids(&target, ids, 30);
    rand_id(&self);
    dn__kad_query q;
    dn__kad_query_opts o = {.k = 4, .alpha = 1};
    assert_int_equal(dn__kad_query_init(&q, &target, &self, &o), 0);
    assert_int_equal(dn__kad_query_add(&q, &self, 1), 0);
    dn_peerid empty = {0};
    assert_int_equal(dn__kad_query_add(&q, &empty, 1), 0);
    assert_int_equal(dn__kad_query_add(&q, &ids[20], 10), 10);
    assert_int_equal(dn__kad_query_add(&q, &ids[20], 10), 0);
    assert_int_equal(dn__kad_query_next(&q, 0, &p), 1);
    assert_true(dn_peerid_equal(&p, &ids[20]));
    /* its reply names closer peers, ourselves and known ones */
    dn_peerid reply[6] = {ids[0], ids[1], self, ids[21], ids[2], ids[0]};
    assert_int_equal(dn__kad_query_success(&q, &ids[20], reply, 6), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dn__kad_query_next(&q, 1, &p), 1);
        assert_true(dn_peerid_equal(&p, &ids[i]));
        assert_int_equal(dn__kad_query_success(&q, &p, NULL, 0), 0);
    }
    /* the 4 closest (ids[0..2], ids[20]) answered; ids[21..29] never asked */
    assert_int_equal(q.peers[3].state, DN_KAD_Q_SUCCEEDED);
    assert_true(dn_peerid_equal(&q.peers[3].id, &ids[20]));
    assert_true(dn__kad_query_done(&q));
    assert_int_equal(q.asked, 4);
    dn__kad_query_close(&q);
}

static void test_timeouts(void **state)
{
    (void)state;
    dn__kad_key target = {{0x07}};
    dn_peerid ids[4], p;
    sorted_ids(&target, ids, 4);
    dn__kad_query q;
    dn__kad_query_opts o = {.k = 2, .alpha = 1, .timeout_ms = 500};
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, &o), 0);
    assert_int_equal(dn__kad_query_deadline(&q), UINT64_MAX);
    assert_int_equal(dn__kad_query_add(&q, ids, 4), 4);
    assert_int_equal(dn__kad_query_next(&q, 100, &p), 1);
    assert_int_equal(dn__kad_query_deadline(&q), 600);
    assert_int_equal(dn__kad_query_next(&q, 599, &p), 0);
    assert_int_equal(q.timed_out, 0);
    assert_int_equal(dn__kad_query_next(&q, 600, &p), 1); /* ids[0] timed out */
    assert_true(dn_peerid_equal(&p, &ids[1]));
    assert_int_equal(q.timed_out, 1);
    assert_int_equal(dn__kad_query_success(&q, &ids[0], NULL, 0), DN_ESTATE); /* too late */
    assert_int_equal(dn__kad_query_success(&q, &ids[1], NULL, 0), 0);
    assert_int_equal(dn__kad_query_next(&q, 700, &p), 1);
    assert_true(dn_peerid_equal(&p, &ids[2]));
    assert_int_equal(dn__kad_query_success(&q, &ids[2], NULL, 0), 0);
    assert_true(dn__kad_query_done(&q));
    dn_peerid res[2];
    assert_int_equal(dn__kad_query_results(&q, res, 2), 2);
    assert_true(dn_peerid_equal(&res[0], &ids[1]));
    assert_true(dn_peerid_equal(&res[1], &ids[2]));
    dn__kad_query_close(&q);

    /* Everyone times out: done with no results. */
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, &o), 0);
    assert_int_equal(dn__kad_query_add(&q, ids, 2), 2);
    uint64_t now = 0;
    for (int i = 0; i < 10 && !dn__kad_query_done(&q); i++, now += 500)
        while (dn__kad_query_next(&q, now, &p) == 1)
            ;
    assert_true(dn__kad_query_done(&q));
    assert_int_equal(q.timed_out, 2);
    assert_int_equal(dn__kad_query_results(&q, res, 2), 0);
    dn__kad_query_close(&q);
}

static void test_push_out_waiting(void **state)
{
    (void)state;
    dn__kad_key target = {{0x99}};
    dn_peerid ids[20], p;
    sorted_ids(&target, ids, 20);
    dn__kad_query q;
    dn__kad_query_opts o = {.k = 2, .alpha = 3, .max_peers = 5};
    assert_int_equal(dn__kad_query_init(&q, &target, NULL, &o), 0);
    /* the farthest five, all asked */
    assert_int_equal(dn__kad_query_add(&q, &ids[15], 5), 5);
    assert_int_equal(dn__kad_query_next(&q, 0, &p), 1);
    assert_int_equal(dn__kad_query_next(&q, 0, &p), 1);
    assert_int_equal(q.inflight, 2); /* window k = 2 */
    /* ids[15] answers with 4 much closer peers: ids[16] (WAITING) is pushed out */
    assert_int_equal(dn__kad_query_success(&q, &ids[15], ids, 4), 4);
    assert_int_equal(q.n, 5);
    assert_int_equal(q.inflight, 0);
    assert_int_equal(dn__kad_query_success(&q, &ids[16], NULL, 0), DN_ENOTFOUND);
    /* a farther newcomer is dropped */
    assert_int_equal(dn__kad_query_add(&q, &ids[19], 1), 0);
    for (int i = 0; i < 5; i++)
        assert_true(dn_peerid_equal(&q.peers[i].id, &ids[i < 4 ? i : 15]));
    dn__kad_query_close(&q);
}

/* ---- the simulated network ---- */

#define NNODES 500

typedef struct sim {
    dn_peerid id[NNODES];
    dn__kad_key key[NNODES];
    dn__kad_rt rt[NNODES];
    bool dead[NNODES];
} sim;

static int find_node(const sim *s, const dn_peerid *id)
{
    for (int i = 0; i < NNODES; i++)
        if (dn_peerid_equal(&s->id[i], id))
            return i;
    return -1;
}

static sim *sim_new(void)
{
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    for (int i = 0; i < NNODES; i++) {
        rand_id(&s->id[i]);
        s->key[i] = key_of(&s->id[i]);
    }
    for (int i = 0; i < NNODES; i++) {
        assert_int_equal(dn__kad_rt_init(&s->rt[i], &s->id[i], 0, 0), 0);
        /* each node meets the others in its own order */
        int start = (int)(next_rand() % NNODES);
        for (int j = 0; j < NNODES; j++) {
            int o = (start + j) % NNODES;
            if (o == i)
                continue;
            int rc = dn__kad_rt_add(&s->rt[i], &s->id[o], 0, NULL, NULL);
            assert_true(rc == DN_KAD_RT_ADDED || rc == DN_ELIMIT);
        }
    }
    return s;
}

static void sim_free(sim *s)
{
    for (int i = 0; i < NNODES; i++)
        dn__kad_rt_close(&s->rt[i]);
    free(s);
}

typedef struct lookup_stats {
    unsigned rounds;
    size_t asked;
} lookup_stats;

static size_t dead_asked;

/* Run one lookup from node `from` in rounds: each round sends what next()
 * gives, then every live peer answers (the k closest of its table); dead
 * ones never do and time out after 3 rounds. Checks the result against the
 * true k closest live nodes. */
static lookup_stats sim_lookup(sim *s, int from, const dn__kad_key *target)
{
    const uint64_t round_ms = 100;
    dn__kad_query q;
    dn__kad_query_opts o = {.timeout_ms = 3 * round_ms};
    assert_int_equal(dn__kad_query_init(&q, target, &s->id[from], &o), 0);
    dn__kad_entry seeds[DN_KAD_K];
    size_t ns = dn__kad_rt_closest(&s->rt[from], target, DN_KAD_K, false, seeds);
    dn_peerid seed_ids[DN_KAD_K];
    for (size_t i = 0; i < ns; i++)
        seed_ids[i] = seeds[i].id;
    assert_int_equal(dn__kad_query_add(&q, seed_ids, ns), (int)ns);

    uint64_t now = 0;
    unsigned rounds = 0;
    while (!dn__kad_query_done(&q)) {
        assert_true(rounds < 60);
        dn_peerid batch[DN_KAD_ALPHA + 1];
        int nb = 0;
        while (dn__kad_query_next(&q, now, &batch[nb]) == 1) {
            nb++;
            assert_true(nb <= DN_KAD_ALPHA);
        }
        assert_true(q.inflight <= DN_KAD_ALPHA);
        for (int b = 0; b < nb; b++) {
            int j = find_node(s, &batch[b]);
            assert_true(j >= 0 && j != from);
            if (s->dead[j]) {
                dead_asked++;
                continue;
            }
            dn__kad_entry rep[DN_KAD_K];
            size_t nr = dn__kad_rt_closest(&s->rt[j], target, DN_KAD_K, false, rep);
            dn_peerid rids[DN_KAD_K];
            for (size_t i = 0; i < nr; i++)
                rids[i] = rep[i].id;
            assert_true(dn__kad_query_success(&q, &batch[b], rids, nr) >= 0);
        }
        rounds++;
        now += round_ms;
    }

    /* the truth, by brute force */
    static dn_peerid live[NNODES];
    size_t nl = 0;
    for (int i = 0; i < NNODES; i++)
        if (i != from && !s->dead[i])
            live[nl++] = s->id[i];
    sort_target = *target;
    qsort(live, nl, sizeof *live, by_distance);
    dn_peerid res[DN_KAD_K];
    size_t nr = dn__kad_query_results(&q, res, DN_KAD_K);
    assert_int_equal(nr, DN_KAD_K);
    for (size_t i = 0; i < nr; i++)
        assert_true(dn_peerid_equal(&res[i], &live[i]));
    lookup_stats st = {rounds, q.asked};
    dn__kad_query_close(&q);
    return st;
}

static void test_simulated_network(void **state)
{
    (void)state;
    sim *s = sim_new();
    unsigned max_rounds = 0, sum_rounds = 0;
    size_t max_asked = 0;
    const int lookups = 60;
    for (int l = 0; l < lookups; l++) {
        int from = (int)(next_rand() % NNODES);
        dn__kad_key target;
        if (l % 3 == 0) {
            /* FIND_NODE of an existing peer: it comes first */
            int t = (int)(next_rand() % NNODES);
            if (t == from)
                t = (t + 1) % NNODES;
            target = s->key[t];
        } else {
            dn_peerid tid;
            rand_id(&tid);
            target = key_of(&tid);
        }
        lookup_stats st = sim_lookup(s, from, &target);
        sum_rounds += st.rounds;
        if (st.rounds > max_rounds)
            max_rounds = st.rounds;
        if (st.asked > max_asked)
            max_asked = st.asked;
    }
    print_message("500 nodes, %d lookups: rounds max %u mean %.1f, requests max %zu\n", lookups,
                  max_rounds, (double)sum_rounds / lookups, max_asked);
    /* log2(500) is about 9; with alpha = 10 and k = 20 a lookup converges
     * in a few rounds and asks a few dozen peers. */
    assert_true(max_rounds <= 5);
    assert_true(max_asked <= 50);
    assert_int_equal(dead_asked, 0);

    /* A third of the nodes die at once. Half the nodes have noticed (their
     * failed requests marked the dead stale, so their replies leave them
     * out); the others, and the querier, still hand them out. Every lookup
     * still finds the k closest live nodes, waiting out the timeouts.
     * (With no node noticing, replies would stay full of dead peers and
     * the live ones just past the k closest overall would never be named:
     * the table maintenance is what keeps a Kademlia network healthy.) */
    for (int i = 0; i < NNODES; i++)
        s->dead[i] = next_rand() % 3 == 0;
    for (int i = 0; i < NNODES; i++)
        if (next_rand() % 2)
            for (int j = 0; j < NNODES; j++)
                if (s->dead[j] && j != i)
                    (void)dn__kad_rt_mark_stale(&s->rt[i], &s->id[j]);
    max_rounds = 0;
    max_asked = 0;
    for (int l = 0; l < 30; l++) {
        int from;
        do
            from = (int)(next_rand() % NNODES);
        while (s->dead[from]);
        dn_peerid tid;
        rand_id(&tid);
        dn__kad_key target = key_of(&tid);
        lookup_stats st = sim_lookup(s, from, &target);
        if (st.rounds > max_rounds)
            max_rounds = st.rounds;
        if (st.asked > max_asked)
            max_asked = st.asked;
    }
    print_message("a third dead: rounds max %u, requests max %zu, to dead peers %zu\n", max_rounds,
                  max_asked, dead_asked);
    assert_true(dead_asked > 0); /* the timeouts were exercised */
    /* each dead peer holds a slot for a 3-round timeout */
    assert_true(max_rounds <= 30);
    assert_true(max_asked <= 120);
    sim_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_and_window),  cmocka_unit_test(test_self_dups_closer),
        cmocka_unit_test(test_timeouts),          cmocka_unit_test(test_push_out_waiting),
        cmocka_unit_test(test_simulated_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
