/* Tests for the verified-signature cache (src/crypto/verify_cache.c), with
 * real keys and signatures: only good signatures are stored, a stored
 * entry matches only its exact (key, message, signature), the cache stays
 * within its fixed size, and eviction follows least-recent use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"

#define CAPACITY ((size_t)DN_VCACHE_SETS * DN_VCACHE_WAYS)

/* One signed message. */
typedef struct triple {
    uint8_t msg[32];
    size_t len;
    uint8_t sig[DN_SIG_MAX];
    size_t siglen;
} triple;

static dn_privkey *new_key(dn_key_type t)
{
    dn_privkey *k = NULL;
    assert_int_equal(dn_privkey_generate(t, &k), 0);
    assert_non_null(k);
    return k;
}

/* Message n (distinct for distinct n), signed by k. */
static void make_triple(const dn_privkey *k, uint32_t n, triple *t)
{
    memset(t, 0, sizeof *t);
    t->len = (size_t)snprintf((char *)t->msg, sizeof t->msg, "message number %u", n);
    assert_int_equal(dn_privkey_sign(k, t->msg, t->len, t->sig, &t->siglen), 0);
}

static int vc_verify(dn_verify_cache *vc, const dn_privkey *k, const triple *t)
{
    return dn_verify_cached(vc, dn_privkey_public(k), t->msg, t->len, t->sig, t->siglen);
}

static dn_verify_cache *cache_new(void)
{
    dn_verify_cache *vc = malloc(sizeof *vc);
    assert_non_null(vc);
    memset(vc, 0xa5, sizeof *vc); /* init must not rely on zeroed memory */
    dn_verify_cache_init(vc);
    assert_int_equal(dn_verify_cache_count(vc), 0);
    assert_int_equal(vc->hits, 0);
    assert_int_equal(vc->misses, 0);
    return vc;
}

static void test_valid_cached(void **state)
{
    dn_verify_cache *vc = cache_new();
    dn_privkey *k = new_key(DN_KEY_ED25519);
    triple t;
    make_triple(k, 1, &t);
    assert_int_equal(t.siglen, 64);
    assert_int_equal(vc_verify(vc, k, &t), 0);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    assert_int_equal(vc->misses, 1);
    assert_int_equal(vc->hits, 0);
    assert_int_equal(vc_verify(vc, k, &t), 0);
    assert_int_equal(vc->hits, 1);
    assert_int_equal(vc->misses, 1);
    assert_int_equal(vc_verify(vc, k, &t), 0);
    assert_int_equal(vc->hits, 2);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    /* An empty message is a triple like any other. */
    triple e;
    memset(&e, 0, sizeof e);
    assert_int_equal(dn_privkey_sign(k, NULL, 0, e.sig, &e.siglen), 0);
    assert_int_equal(dn_verify_cached(vc, dn_privkey_public(k), NULL, 0, e.sig, e.siglen), 0);
    assert_int_equal(dn_verify_cached(vc, dn_privkey_public(k), NULL, 0, e.sig, e.siglen), 0);
    assert_int_equal(vc->misses, 2);
    assert_int_equal(vc->hits, 3);
    assert_int_equal(dn_verify_cache_count(vc), 2);
    /* Other key types go through the same path (DER signatures). */
    dn_privkey *s = new_key(DN_KEY_SECP256K1);
    make_triple(s, 1, &t);
    assert_int_equal(vc_verify(vc, s, &t), 0);
    assert_int_equal(vc_verify(vc, s, &t), 0);
    assert_int_equal(vc->misses, 3);
    assert_int_equal(vc->hits, 4);
    assert_int_equal(dn_verify_cache_count(vc), 3);
    dn_privkey_free(s);
    dn_privkey_free(k);
    free(vc);
}

/* A bad signature is checked every time and never stored; storing the
 * good one does not make a close variant pass. */
static void test_bad_never_cached(void **state)
{
    dn_verify_cache *vc = cache_new();
    dn_privkey *k = new_key(DN_KEY_ED25519);
    triple t, bad;
    make_triple(k, 7, &t);
    bad = t;
    bad.sig[10] ^= 0x01;
    for (int n = 1; n <= 3; n++) {
        assert_int_equal(vc_verify(vc, k, &bad), DN_EBADSIG);
        assert_int_equal(vc->misses, (uint64_t)n);
        assert_int_equal(vc->hits, 0);
        assert_int_equal(dn_verify_cache_count(vc), 0);
    }
    assert_int_equal(vc_verify(vc, k, &t), 0);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    assert_int_equal(vc_verify(vc, k, &bad), DN_EBADSIG);
    assert_int_equal(vc->hits, 0);
    assert_int_equal(vc->misses, 5);
    /* A truncated signature (a prefix of the good one) and an empty one. */
    assert_int_equal(dn_verify_cached(vc, dn_privkey_public(k), t.msg, t.len, t.sig, t.siglen - 1),
                     DN_EBADSIG);
    assert_int_equal(dn_verify_cached(vc, dn_privkey_public(k), t.msg, t.len, t.sig, 0),
                     DN_EBADSIG);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    assert_int_equal(vc->hits, 0);
    dn_privkey_free(k);
    free(vc);
}

/* An entry is for its exact triple: another message, another key, or the
 * message cut short, with the cached signature, misses and fails. */
static void test_exact_triple(void **state)
{
    dn_verify_cache *vc = cache_new();
    dn_privkey *k = new_key(DN_KEY_ED25519), *other = new_key(DN_KEY_ED25519);
    triple t, u;
    make_triple(k, 3, &t);
    assert_int_equal(vc_verify(vc, k, &t), 0);
    u = t;
    u.msg[0] ^= 0x20; /* same length, one bit of the message */
    assert_int_equal(vc_verify(vc, k, &u), DN_EBADSIG);
    u = t;
    u.len--; /* message is a prefix of the signed one */
    assert_int_equal(vc_verify(vc, k, &u), DN_EBADSIG);
    assert_int_equal(vc_verify(vc, other, &t), DN_EBADSIG);
    assert_int_equal(vc->hits, 0);
    assert_int_equal(vc->misses, 4);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    /* The original still hits. */
    assert_int_equal(vc_verify(vc, k, &t), 0);
    assert_int_equal(vc->hits, 1);
    dn_privkey_free(other);
    dn_privkey_free(k);
    free(vc);
}

/* More valid triples than the cache holds: the count stays within the
 * capacity, and every triple still verifies afterwards, the evicted ones
 * by a fresh verification (a miss). */
static void test_eviction(void **state)
{
    dn_verify_cache *vc = cache_new();
    dn_privkey *k = new_key(DN_KEY_ED25519);
    size_t n = 3 * CAPACITY;
    triple *ts = malloc(n * sizeof *ts);
    assert_non_null(ts);
    for (size_t i = 0; i < n; i++) {
        make_triple(k, (uint32_t)i, &ts[i]);
        assert_int_equal(vc_verify(vc, k, &ts[i]), 0);
        assert_true(dn_verify_cache_count(vc) <= CAPACITY);
        assert_true(dn_verify_cache_count(vc) <= i + 1);
    }
    assert_int_equal(vc->misses, n);
    assert_int_equal(vc->hits, 0);
    /* Three entries per set on average: nearly all ways are full. */
    assert_true(dn_verify_cache_count(vc) > CAPACITY * 9 / 10);
    size_t held = dn_verify_cache_count(vc);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vc_verify(vc, k, &ts[i]), 0);
    /* At most `held` of them can have been found; the rest were evicted
     * and verified again. */
    assert_int_equal(vc->hits + vc->misses, 2 * n);
    assert_true(vc->hits <= held);
    assert_true(vc->misses - n >= n - held);
    assert_true(dn_verify_cache_count(vc) <= CAPACITY);
    /* A bad signature among them is still refused. */
    ts[0].sig[0] ^= 1;
    assert_int_equal(vc_verify(vc, k, &ts[0]), DN_EBADSIG);
    free(ts);
    dn_privkey_free(k);
    free(vc);
}

/* The set a new triple lands in, observed from the public state array of
 * a cache that held nothing before. */
static size_t set_of(dn_verify_cache *scratch, const dn_privkey *k, const triple *t)
{
    dn_verify_cache_init(scratch);
    assert_int_equal(vc_verify(scratch, k, t), 0);
    for (size_t s = 0; s < DN_VCACHE_SETS; s++)
        if (scratch->state[s])
            return s;
    fail_msg("no set was filled");
    return 0;
}

/* Two ways per set, least recently used out: with A and B in a set, using
 * A again and then adding C evicts B, not A. */
static void test_lru(void **state)
{
    dn_verify_cache *vc = cache_new(), *scratch = cache_new();
    dn_privkey *k = new_key(DN_KEY_ED25519);
    triple a, b, c, t;
    make_triple(k, 0, &a);
    size_t set = set_of(scratch, k, &a);
    int found = 0;
    /* About DN_VCACHE_SETS tries per match. */
    for (uint32_t n = 1; found < 2 && n < 64 * DN_VCACHE_SETS; n++) {
        make_triple(k, n, &t);
        if (set_of(scratch, k, &t) == set) {
            if (found++ == 0)
                b = t;
            else
                c = t;
        }
    }
    assert_int_equal(found, 2);

    assert_int_equal(vc_verify(vc, k, &a), 0);
    assert_int_equal(vc_verify(vc, k, &b), 0);
    assert_int_equal(dn_verify_cache_count(vc), 2);
    assert_int_equal(vc_verify(vc, k, &a), 0); /* A is now the recent one */
    assert_int_equal(vc->hits, 1);
    assert_int_equal(vc_verify(vc, k, &c), 0); /* evicts B */
    assert_int_equal(dn_verify_cache_count(vc), 2);
    assert_int_equal(vc->misses, 3);
    assert_int_equal(vc_verify(vc, k, &a), 0);
    assert_int_equal(vc->hits, 2);
    assert_int_equal(vc_verify(vc, k, &c), 0);
    assert_int_equal(vc->hits, 3);
    /* B was evicted: verified again (a miss), and it pushes out A, the
     * one used least recently now. */
    assert_int_equal(vc_verify(vc, k, &b), 0);
    assert_int_equal(vc->misses, 4);
    assert_int_equal(vc_verify(vc, k, &c), 0);
    assert_int_equal(vc->hits, 4);
    assert_int_equal(vc_verify(vc, k, &a), 0);
    assert_int_equal(vc->misses, 5);
    assert_int_equal(dn_verify_cache_count(vc), 2);
    dn_privkey_free(k);
    free(vc);
    free(scratch);
}

/* The triple is encoded with each part's length, so bytes cannot move
 * from the end of the message to the start of the signature: a message
 * ending in what looks like a signature length, cut there, with those
 * bytes put in front of the signature, concatenates to the same bytes as
 * the cached triple (given the lengths the signature is preceded by) and
 * must still miss and fail. */
static void test_encoding_injective(void **state)
{
    dn_verify_cache *vc = cache_new();
    dn_privkey *k = new_key(DN_KEY_ED25519);
    /* msg = "hello" || be64(72); sig over it (64 bytes). */
    uint8_t msg[13] = {'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0, 0, 0, 0, 72};
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;
    assert_int_equal(dn_privkey_sign(k, msg, sizeof msg, sig, &siglen), 0);
    assert_int_equal(siglen, 64);
    assert_int_equal(dn_verify_cached(vc, dn_privkey_public(k), msg, sizeof msg, sig, siglen), 0);
    /* msg' = "hello", sig' = be64(64) || sig (72 bytes): without length
     * prefixes on the message, "hello" || be64(72) || be64(64) || sig is
     * the encoding of both. */
    uint8_t sig2[72] = {0, 0, 0, 0, 0, 0, 0, 64};
    memcpy(sig2 + 8, sig, 64);
    assert_int_equal(dn_verify_cached(vc, dn_privkey_public(k), msg, 5, sig2, sizeof sig2),
                     DN_EBADSIG);
    assert_int_equal(vc->hits, 0);
    assert_int_equal(vc->misses, 2);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    dn_privkey_free(k);
    free(vc);
}

/* No cache: plain verification, same answers. */
static void test_null_cache(void **state)
{
    dn_privkey *k = new_key(DN_KEY_ED25519);
    triple t;
    make_triple(k, 9, &t);
    assert_int_equal(vc_verify(NULL, k, &t), 0);
    assert_int_equal(vc_verify(NULL, k, &t), 0);
    t.sig[5] ^= 4;
    assert_int_equal(vc_verify(NULL, k, &t), DN_EBADSIG);
    dn_privkey_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_cached),
        cmocka_unit_test(test_bad_never_cached),
        cmocka_unit_test(test_exact_triple),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_null_cache),
        cmocka_unit_test(test_encoding_injective),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
