/* Unit tests: Kademlia keys, XOR distance and the routing table
 * (src/kad/routing.c): SHA-256 keys (libp2p/specs kad-dht "Distance"),
 * bucket placement by common prefix length, the full-bucket policy (old
 * peers stay unless stale), closest-N against a brute-force sort, and
 * refresh bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "kad/routing.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A random sha2-256 multihash peer id. */
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

/* A random id whose key has exactly cpl bits in common with self. */
static void id_in_bucket(const dn__kad_key *self, unsigned cpl, dn_peerid *id)
{
    for (int tries = 0; tries < 1 << 22; tries++) {
        rand_id(id);
        dn__kad_key k = key_of(id);
        if (dn__kad_cpl(self, &k) == cpl)
            return;
    }
    fail_msg("no id for cpl %u", cpl);
}

static void test_keys_and_distance(void **state)
{
    (void)state;
    /* SHA-256("abc") (FIPS 180-2, appendix B.1) */
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    dn__kad_key k;
    assert_int_equal(dn__kad_key_from_bytes((const uint8_t *)"abc", 3, &k), 0);
    assert_memory_equal(k.b, abc, 32);
    /* A peer's key hashes its multihash bytes, the whole of them. */
    dn_peerid id;
    rand_id(&id);
    dn__kad_key a, b;
    assert_int_equal(dn__kad_key_from_peerid(&id, &a), 0);
    assert_int_equal(dn__kad_key_from_bytes(id.bytes, id.len, &b), 0);
    assert_memory_equal(a.b, b.b, 32);
    dn_peerid empty = {0};
    assert_int_equal(dn__kad_key_from_peerid(&empty, &a), DN_EINVAL);

    dn__kad_key x = {{0}}, y = {{0}}, t = {{0}}, d;
    assert_int_equal(dn__kad_cpl(&x, &y), 256);
    y.b[0] = 0x80;
    assert_int_equal(dn__kad_cpl(&x, &y), 0);
    y.b[0] = 0x01;
    assert_int_equal(dn__kad_cpl(&x, &y), 7);
    y.b[0] = 0;
    y.b[3] = 0x10;
    assert_int_equal(dn__kad_cpl(&x, &y), 27);
    y.b[3] = 0;
    y.b[31] = 1;
    assert_int_equal(dn__kad_cpl(&x, &y), 255);
    dn__kad_xor(&x, &y, &d);
    assert_int_equal(d.b[31], 1);

    /* XOR ordering: distance compares as a 256-bit big-endian number. */
    x.b[0] = 0x01; /* d(t,x) = 0x01 00.. */
    y.b[31] = 0;
    y.b[1] = 0xff; /* d(t,y) = 0x00 ff.. */
    assert_true(dn__kad_closer(&t, &y, &x) < 0);
    assert_true(dn__kad_closer(&t, &x, &y) > 0);
    assert_int_equal(dn__kad_closer(&t, &x, &x), 0);
    /* relative to another target the order flips: t = x */
    assert_true(dn__kad_closer(&x, &x, &y) < 0);
    /* and it is not numeric order of the keys: t = 0x80.., a = 0xff.., b = 0x01.. */
    dn__kad_key t2 = {{0x80}}, a2 = {{0xff}}, b2 = {{0x01}};
    assert_true(dn__kad_closer(&t2, &a2, &b2) < 0);
}

static void test_bucket_full_policy(void **state)
{
    (void)state;
    dn_peerid self;
    rand_id(&self);
    dn__kad_rt rt;
    assert_int_equal(dn__kad_rt_init(&rt, &self, 0, 1000), 0);
    assert_int_equal(rt.k, DN_KAD_K);
    assert_int_equal(dn__kad_rt_add(&rt, &self, 1000, NULL, NULL), DN_EINVAL);

    dn_peerid ids[DN_KAD_K + 2];
    for (int i = 0; i < DN_KAD_K + 2; i++)
        id_in_bucket(&rt.self, 3, &ids[i]);
    for (int i = 0; i < DN_KAD_K; i++)
        assert_int_equal(dn__kad_rt_add(&rt, &ids[i], 1000 + (uint64_t)i, NULL, NULL),
                         DN_KAD_RT_ADDED);
    assert_int_equal(dn__kad_rt_size(&rt), DN_KAD_K);
    assert_int_equal(rt.b[3].n, DN_KAD_K);

    /* Full: the newcomer is refused, the oldest is named for a ping. */
    dn__kad_entry ping, ev;
    assert_int_equal(dn__kad_rt_add(&rt, &ids[DN_KAD_K], 2000, &ev, &ping), DN_ELIMIT);
    assert_true(dn_peerid_equal(&ping.id, &ids[0]));
    assert_int_equal(dn__kad_rt_find(&rt, &ids[DN_KAD_K], NULL), DN_ENOTFOUND);

    /* The oldest answered (seen again): the next oldest is named. */
    assert_int_equal(dn__kad_rt_add(&rt, &ids[0], 2001, NULL, NULL), DN_KAD_RT_UPDATED);
    assert_int_equal(dn__kad_rt_add(&rt, &ids[DN_KAD_K], 2002, &ev, &ping), DN_ELIMIT);
    assert_true(dn_peerid_equal(&ping.id, &ids[1]));

    /* It did not answer: marked stale, the newcomer takes its place. */
    assert_int_equal(dn__kad_rt_mark_stale(&rt, &ids[1]), 0);
    assert_int_equal(dn__kad_rt_add(&rt, &ids[DN_KAD_K], 2003, &ev, &ping), DN_KAD_RT_REPLACED);
    assert_true(dn_peerid_equal(&ev.id, &ids[1]));
    assert_true(ev.stale);
    assert_int_equal(dn__kad_rt_find(&rt, &ids[1], NULL), DN_ENOTFOUND);
    dn__kad_entry e;
    assert_int_equal(dn__kad_rt_find(&rt, &ids[DN_KAD_K], &e), 0);
    assert_int_equal(e.added_ms, 2003);
    assert_false(e.stale);
    assert_int_equal(dn__kad_rt_size(&rt), DN_KAD_K);

    /* A stale peer that is seen again is live again. */
    assert_int_equal(dn__kad_rt_mark_stale(&rt, &ids[2]), 0);
    assert_int_equal(dn__kad_rt_add(&rt, &ids[2], 2004, NULL, NULL), DN_KAD_RT_UPDATED);
    assert_int_equal(dn__kad_rt_add(&rt, &ids[DN_KAD_K + 1], 2005, NULL, &ping), DN_ELIMIT);

    /* Other buckets are not affected by this one being full. */
    dn_peerid other;
    id_in_bucket(&rt.self, 0, &other);
    assert_int_equal(dn__kad_rt_add(&rt, &other, 2006, NULL, NULL), DN_KAD_RT_ADDED);

    /* remove frees a slot. */
    assert_int_equal(dn__kad_rt_remove(&rt, &ids[5]), 0);
    assert_int_equal(dn__kad_rt_remove(&rt, &ids[5]), DN_ENOTFOUND);
    assert_int_equal(dn__kad_rt_mark_stale(&rt, &ids[5]), DN_ENOTFOUND);
    assert_int_equal(dn__kad_rt_add(&rt, &ids[DN_KAD_K + 1], 2007, NULL, NULL), DN_KAD_RT_ADDED);
    assert_int_equal(dn__kad_rt_size(&rt), DN_KAD_K + 1);
    dn__kad_rt_close(&rt);

    /* A smaller k, and the bounds on k. */
    assert_int_equal(dn__kad_rt_init(&rt, &self, 2, 0), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(dn__kad_rt_add(&rt, &ids[i], 0, NULL, NULL), DN_KAD_RT_ADDED);
    assert_int_equal(dn__kad_rt_add(&rt, &ids[2], 0, NULL, NULL), DN_ELIMIT);
    dn__kad_rt_close(&rt);
    assert_int_equal(dn__kad_rt_init(&rt, &self, DN_KAD_K_MAX + 1, 0), DN_EINVAL);
}

static void test_closest(void **state)
{
    (void)state;
    dn_peerid self;
    rand_id(&self);
    dn__kad_rt rt;
    assert_int_equal(dn__kad_rt_init(&rt, &self, 0, 0), 0);
    size_t added = 0, refused = 0;
    for (int i = 0; i < 600; i++) {
        dn_peerid id;
        rand_id(&id);
        int rc = dn__kad_rt_add(&rt, &id, 0, NULL, NULL);
        assert_true(rc == DN_KAD_RT_ADDED || rc == DN_ELIMIT);
        rc == DN_KAD_RT_ADDED ? added++ : refused++;
    }
    /* bucket 0 holds half the key space but only k peers */
    assert_int_equal(rt.b[0].n, DN_KAD_K);
    assert_true(refused > 0);
    assert_int_equal(dn__kad_rt_size(&rt), added);
    for (size_t i = 0; i < DN_KAD_BUCKETS; i++)
        assert_true(rt.b[i].n <= DN_KAD_K);

    static dn__kad_entry all[DN_KAD_BUCKETS * DN_KAD_K];
    size_t n = dn__kad_rt_list(&rt, all, sizeof all / sizeof all[0]);
    assert_int_equal(n, added);

    for (int t = 0; t < 20; t++) {
        dn__kad_key target;
        if (t == 0)
            target = rt.self;
        else if (t == 1)
            target = all[7].key;
        else {
            dn_peerid tid;
            rand_id(&tid);
            target = key_of(&tid);
        }
        dn__kad_entry got[DN_KAD_K];
        size_t g = dn__kad_rt_closest(&rt, &target, DN_KAD_K, false, got);
        assert_int_equal(g, DN_KAD_K);
        for (size_t i = 1; i < g; i++)
            assert_true(dn__kad_closer(&target, &got[i - 1].key, &got[i].key) < 0);
        /* nothing outside is closer than the farthest returned */
        size_t closer = 0;
        for (size_t i = 0; i < n; i++)
            if (dn__kad_closer(&target, &all[i].key, &got[g - 1].key) <= 0)
                closer++;
        assert_int_equal(closer, DN_KAD_K);
        if (t == 1)
            assert_true(dn_peerid_equal(&got[0].id, &all[7].id));
    }

    /* Stale peers are left out unless asked for. */
    dn__kad_key target = all[3].key;
    dn__kad_entry got[DN_KAD_K];
    assert_int_equal(dn__kad_rt_mark_stale(&rt, &all[3].id), 0);
    assert_int_equal(dn__kad_rt_closest(&rt, &target, 5, false, got), 5);
    for (int i = 0; i < 5; i++)
        assert_false(dn_peerid_equal(&got[i].id, &all[3].id));
    assert_int_equal(dn__kad_rt_closest(&rt, &target, 5, true, got), 5);
    assert_true(dn_peerid_equal(&got[0].id, &all[3].id));
    /* fewer peers than asked for */
    assert_int_equal(dn__kad_rt_closest(&rt, &target, 0, true, got), 0);
    dn__kad_rt_close(&rt);
    assert_int_equal(dn__kad_rt_init(&rt, &self, 0, 0), 0);
    assert_int_equal(dn__kad_rt_add(&rt, &all[0].id, 0, NULL, NULL), DN_KAD_RT_ADDED);
    assert_int_equal(dn__kad_rt_closest(&rt, &target, DN_KAD_K, true, got), 1);
    dn__kad_rt_close(&rt);
}

static void test_refresh(void **state)
{
    (void)state;
    const uint64_t iv = 600000;
    dn_peerid self;
    rand_id(&self);
    dn__kad_rt rt;
    assert_int_equal(dn__kad_rt_init(&rt, &self, 0, 1000), 0);
    unsigned cpls[DN_KAD_BUCKETS];
    /* empty table: nothing to refresh (the bootstrap fills it first) */
    assert_int_equal(dn__kad_rt_need_refresh(&rt, 1000 + iv, iv, cpls, DN_KAD_BUCKETS), 0);

    dn_peerid p0, p3;
    id_in_bucket(&rt.self, 0, &p0);
    id_in_bucket(&rt.self, 3, &p3);
    assert_int_equal(dn__kad_rt_add(&rt, &p0, 1000, NULL, NULL), DN_KAD_RT_ADDED);
    assert_int_equal(dn__kad_rt_add(&rt, &p3, 5000, NULL, NULL), DN_KAD_RT_ADDED);
    assert_int_equal(dn__kad_rt_need_refresh(&rt, 1000 + iv - 1, iv, cpls, DN_KAD_BUCKETS), 0);
    /* buckets 0..3 (up to the deepest non-empty one); 3 was touched later */
    size_t n = dn__kad_rt_need_refresh(&rt, 1000 + iv, iv, cpls, DN_KAD_BUCKETS);
    assert_int_equal(n, 3);
    assert_int_equal(cpls[0], 0);
    assert_int_equal(cpls[1], 1);
    assert_int_equal(cpls[2], 2);
    assert_int_equal(dn__kad_rt_need_refresh(&rt, 5000 + iv, iv, cpls, DN_KAD_BUCKETS), 4);
    assert_int_equal(dn__kad_rt_need_refresh(&rt, 5000 + iv, iv, cpls, 2), 2);

    /* A finished lookup into bucket 1 freshens it. */
    dn_peerid t1;
    id_in_bucket(&rt.self, 1, &t1);
    dn__kad_key k1 = key_of(&t1);
    dn__kad_rt_touch(&rt, &k1, 5000 + iv);
    n = dn__kad_rt_need_refresh(&rt, 5000 + iv, iv, cpls, DN_KAD_BUCKETS);
    assert_int_equal(n, 3);
    assert_int_equal(cpls[0], 0);
    assert_int_equal(cpls[1], 2);
    assert_int_equal(cpls[2], 3);
    /* a clock that went back does not ask for refreshes */
    assert_int_equal(dn__kad_rt_need_refresh(&rt, 10, iv, cpls, DN_KAD_BUCKETS), 0);

    /* A peer deeper than DN_KAD_REFRESH_MAX_CPL: the list stops there. */
    dn_peerid deep;
    for (;;) {
        rand_id(&deep);
        dn__kad_key k = key_of(&deep);
        if (dn__kad_cpl(&rt.self, &k) > DN_KAD_REFRESH_MAX_CPL)
            break;
    }
    assert_int_equal(dn__kad_rt_add(&rt, &deep, 0, NULL, NULL), DN_KAD_RT_ADDED);
    n = dn__kad_rt_need_refresh(&rt, 100 * iv, iv, cpls, DN_KAD_BUCKETS);
    assert_int_equal(n, DN_KAD_REFRESH_MAX_CPL + 1);
    assert_int_equal(cpls[n - 1], DN_KAD_REFRESH_MAX_CPL);
    dn__kad_rt_close(&rt);
}

static void test_peerid_for_cpl(void **state)
{
    (void)state;
    dn_peerid self;
    rand_id(&self);
    dn__kad_key sk = key_of(&self);
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)next_rand();
    for (unsigned cpl = 0; cpl <= DN_KAD_REFRESH_MAX_CPL; cpl++) {
        dn_peerid id;
        assert_int_equal(dn__kad_peerid_for_cpl(&sk, cpl, seed, &id), 0);
        /* a "Qm..." id whose key lands in bucket cpl */
        assert_int_equal(id.len, 34);
        assert_int_equal(id.bytes[0], 0x12);
        assert_int_equal(id.bytes[1], 0x20);
        dn__kad_key k = key_of(&id);
        assert_int_equal(dn__kad_cpl(&sk, &k), cpl);
        /* the same seed gives the same id (sans-I/O, reproducible) */
        dn_peerid again;
        assert_int_equal(dn__kad_peerid_for_cpl(&sk, cpl, seed, &again), 0);
        assert_true(dn_peerid_equal(&id, &again));
    }
    dn_peerid id;
    assert_int_equal(dn__kad_peerid_for_cpl(&sk, DN_KAD_REFRESH_MAX_CPL + 1, seed, &id), DN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_and_distance), cmocka_unit_test(test_bucket_full_policy),
        cmocka_unit_test(test_closest),           cmocka_unit_test(test_refresh),
        cmocka_unit_test(test_peerid_for_cpl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
