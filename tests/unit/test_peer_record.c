/* Unit tests: signed peer records (src/proto/peer_record.c; RFC 0002 signed
 * envelopes, RFC 0003 peer records). Seal and open with real keys; the
 * record must be the expected peer's, and that is checked before the
 * signature: an envelope of another peer with a garbage signature, or with
 * a key that does not even parse, is refused as DN_EPEERID, never reaching
 * the signature check (which would say DN_EBADSIG). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pb.h"
#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "proto/peer_record.h"

typedef struct envelope {
    const uint8_t *pub, *type, *payload, *sig;
    size_t pub_len, type_len, payload_len, sig_len;
} envelope;

static void split(const dn_buf *b, envelope *e)
{
    memset(e, 0, sizeof *e);
    dn_pb_reader r;
    dn_pb_field f;
    dn_pb_reader_init(&r, b->data, b->len);
    while (dn_pb_next(&r, &f) == 1) {
        switch (f.number) {
        case 1: e->pub = f.bytes, e->pub_len = f.len; break;
        case 2: e->type = f.bytes, e->type_len = f.len; break;
        case 3: e->payload = f.bytes, e->payload_len = f.len; break;
        case 5: e->sig = f.bytes, e->sig_len = f.len; break;
        default: fail();
        }
    }
    assert_non_null(e->pub);
    assert_non_null(e->sig);
}

static void join(const envelope *e, dn_buf *out)
{
    dn_buf_reset(out);
    dn_pb_put_bytes(out, 1, e->pub, e->pub_len);
    dn_pb_put_bytes(out, 2, e->type, e->type_len);
    dn_pb_put_bytes(out, 3, e->payload, e->payload_len);
    dn_pb_put_bytes(out, 5, e->sig, e->sig_len);
}

static dn_privkey *key(dn_key_type t, dn_peerid *id)
{
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(t, &k), 0);
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), id), 0);
    return k;
}

static void check_roundtrip(dn_key_type t)
{
    dn_peerid id;
    dn_privkey *k = key(t, &id);
    dn_multiaddr addrs[2];
    assert_int_equal(dn_multiaddr_parse("/ip4/127.0.0.1/tcp/4001", &addrs[0]), 0);
    assert_int_equal(dn_multiaddr_parse("/ip6/::1/tcp/4001", &addrs[1]), 0);
    dn_buf env = DN_BUF_INIT;
    assert_int_equal(dn__peer_record_seal(k, 7, addrs, 2, &env), 0);
    dn_peer_record *rec = malloc(sizeof *rec);
    assert_non_null(rec);
    assert_int_equal(dn__peer_record_open(env.data, env.len, &id, NULL, rec), 0);
    assert_true(dn_peerid_equal(&rec->peer, &id));
    assert_int_equal(rec->seq, 7);
    assert_int_equal(rec->naddrs, 2);
    assert_int_equal(rec->addrs[1].len, addrs[1].len);
    assert_memory_equal(rec->addrs[1].bytes, addrs[1].bytes, addrs[1].len);
    /* without an expected peer: any signer whose record is its own */
    assert_int_equal(dn__peer_record_open(env.data, env.len, NULL, NULL, rec), 0);
    assert_true(dn_peerid_equal(&rec->peer, &id));
    /* a tampered signature fails, and leaves rec cleared */
    envelope e;
    split(&env, &e);
    uint8_t sig[DN_SIG_MAX];
    memcpy(sig, e.sig, e.sig_len);
    sig[e.sig_len / 2] ^= 1;
    e.sig = sig;
    dn_buf bad = DN_BUF_INIT;
    join(&e, &bad);
    assert_int_equal(dn__peer_record_open(bad.data, bad.len, &id, NULL, rec), DN_EBADSIG);
    assert_int_equal(rec->naddrs, 0);
    assert_int_equal(rec->peer.len, 0);
    dn_buf_free(&bad);
    free(rec);
    dn_buf_free(&env);
    dn_privkey_free(k);
}

static void test_roundtrip(void **state)
{
    (void)state;
    check_roundtrip(DN_KEY_ED25519); /* identity peer id */
    check_roundtrip(DN_KEY_ECDSA);   /* sha2-256 peer id */
    check_roundtrip(DN_KEY_SECP256K1);
}

/* Ownership before signature. */
static void test_ownership_first(void **state)
{
    (void)state;
    dn_peerid a_id, b_id;
    dn_privkey *a = key(DN_KEY_ED25519, &a_id), *b = key(DN_KEY_ECDSA, &b_id);
    dn_buf env = DN_BUF_INIT, forged = DN_BUF_INIT;
    dn_peer_record rec;
    assert_int_equal(dn__peer_record_seal(a, 1, NULL, 0, &env), 0);
    /* A's valid record, presented by B: refused. */
    assert_int_equal(dn__peer_record_open(env.data, env.len, &b_id, NULL, &rec), DN_EPEERID);

    /* A's key, a garbage signature, expected B: the key is not B's, so no
     * verification happens (it would say DN_EBADSIG). */
    envelope e;
    split(&env, &e);
    uint8_t junk[64];
    memset(junk, 0xa5, sizeof junk);
    e.sig = junk;
    e.sig_len = sizeof junk;
    join(&e, &forged);
    assert_int_equal(dn__peer_record_open(forged.data, forged.len, &b_id, NULL, &rec), DN_EPEERID);
    assert_int_equal(dn__peer_record_open(forged.data, forged.len, &a_id, NULL, &rec), DN_EBADSIG);

    /* A key that does not parse, expected B: refused on ownership, the
     * key is never parsed (it would say DN_EMALFORMED). */
    static const uint8_t not_a_key[] = {0x08, 0x00, 0x12, 0x03, 0x30, 0x01, 0x00};
    e.pub = not_a_key;
    e.pub_len = sizeof not_a_key;
    join(&e, &forged);
    assert_int_equal(dn__peer_record_open(forged.data, forged.len, &b_id, NULL, &rec), DN_EPEERID);
    assert_int_equal(dn__peer_record_open(forged.data, forged.len, NULL, NULL, &rec),
                     DN_EMALFORMED);

    /* B's key and signature over a record that names A: refused, for A
     * (key is not A's) and for B (the record is not B's). */
    dn_buf benv = DN_BUF_INIT;
    assert_int_equal(dn__peer_record_seal(b, 1, NULL, 0, &benv), 0);
    envelope be;
    split(&benv, &be);
    e.pub = be.pub;
    e.pub_len = be.pub_len;
    e.sig = be.sig;
    e.sig_len = be.sig_len; /* payload still A's record */
    join(&e, &forged);
    assert_int_equal(dn__peer_record_open(forged.data, forged.len, &a_id, NULL, &rec), DN_EPEERID);
    assert_int_equal(dn__peer_record_open(forged.data, forged.len, &b_id, NULL, &rec), DN_EPEERID);
    assert_int_equal(dn__peer_record_open(forged.data, forged.len, NULL, NULL, &rec), DN_EPEERID);

    dn_buf_free(&benv);
    dn_buf_free(&env);
    dn_buf_free(&forged);
    dn_privkey_free(a);
    dn_privkey_free(b);
}

/* The verify cache: the second open of the same record is a hit; a
 * refused ownership check never touches the cache. */
static void test_cache(void **state)
{
    (void)state;
    dn_verify_cache *vc = malloc(sizeof *vc);
    assert_non_null(vc);
    dn_verify_cache_init(vc);
    dn_peerid id, other;
    dn_privkey *k = key(DN_KEY_ED25519, &id), *o = key(DN_KEY_ED25519, &other);
    dn_buf env = DN_BUF_INIT;
    dn_peer_record rec;
    assert_int_equal(dn__peer_record_seal(k, 3, NULL, 0, &env), 0);
    assert_int_equal(dn__peer_record_open(env.data, env.len, &id, vc, &rec), 0);
    assert_int_equal(vc->misses, 1);
    assert_int_equal(dn__peer_record_open(env.data, env.len, &id, vc, &rec), 0);
    assert_int_equal(vc->hits, 1);
    assert_int_equal(dn__peer_record_open(env.data, env.len, &other, vc, &rec), DN_EPEERID);
    assert_int_equal(vc->hits + vc->misses, 2);
    dn_buf_free(&env);
    dn_privkey_free(k);
    dn_privkey_free(o);
    free(vc);
}

static void test_malformed(void **state)
{
    (void)state;
    dn_peerid id;
    dn_privkey *k = key(DN_KEY_ED25519, &id);
    dn_buf env = DN_BUF_INIT, t = DN_BUF_INIT;
    dn_peer_record rec;
    assert_int_equal(dn__peer_record_seal(k, 1, NULL, 0, &env), 0);
    for (size_t cut = 0; cut < env.len; cut++)
        assert_true(dn__peer_record_open(env.data, cut, &id, NULL, &rec) < 0);
    envelope e;
    split(&env, &e);
    static const uint8_t other_type[] = {0x03, 0x02};
    e.type = other_type;
    join(&e, &t);
    assert_int_equal(dn__peer_record_open(t.data, t.len, &id, NULL, &rec), DN_EUNSUPPORTED);
    split(&env, &e);
    uint8_t *big = calloc(1, DN_PUBKEY_PB_MAX + 1);
    e.pub = big;
    e.pub_len = DN_PUBKEY_PB_MAX + 1;
    join(&e, &t);
    assert_int_equal(dn__peer_record_open(t.data, t.len, &id, NULL, &rec), DN_ETOOBIG);
    free(big);
    dn_buf_free(&env);
    dn_buf_free(&t);
    dn_privkey_free(k);
}

/* Key bytes against a peer id, without parsing: the same answer as
 * dn_peerid_matches_pubkey, for both multihash forms. */
static void test_key_bytes(void **state)
{
    (void)state;
    dn_key_type types[] = {DN_KEY_ED25519, DN_KEY_ECDSA, DN_KEY_SECP256K1};
    dn_peerid other;
    dn_privkey *o = key(DN_KEY_ED25519, &other);
    for (size_t i = 0; i < 3; i++) {
        dn_peerid id;
        dn_privkey *k = key(types[i], &id);
        dn_buf pb = DN_BUF_INIT;
        assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(k), &pb), 0);
        assert_true(dn__key_bytes_match_peer(pb.data, pb.len, &id));
        assert_true(dn_peerid_matches_pubkey(&id, dn_privkey_public(k)));
        assert_false(dn__key_bytes_match_peer(pb.data, pb.len, &other));
        assert_false(dn__key_bytes_match_peer(pb.data, pb.len - 1, &id));
        pb.data[pb.len - 1] ^= 1;
        assert_false(dn__key_bytes_match_peer(pb.data, pb.len, &id));
        assert_false(dn__key_bytes_match_peer(pb.data, pb.len, NULL));
        dn_buf_free(&pb);
        dn_privkey_free(k);
    }
    assert_false(dn__key_bytes_match_peer(NULL, 0, &other));
    dn_privkey_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_ownership_first),
        cmocka_unit_test(test_cache),     cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_key_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
