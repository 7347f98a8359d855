/* Tests for src/noise: the Noise_XX_25519_ChaChaPoly_SHA256 handshake with
 * the libp2p payload, and the transport cipher.
 *
 * Vectors: the Noise_XX_25519_ChaChaPoly_SHA256 entry of snow's
 * tests/vectors/snow.txt (mcginty/snow, cacophony format), replayed through
 * the raw message functions with that vector's keys, prologue and
 * payloads. The rest are in-memory handshakes between two C peers, with
 * hostile variations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/pb.h"
#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "noise/noise.h"
#include "noise/noise_internal.h"

/* ---- helpers ---------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static dn_privkey *new_key(dn_key_type t)
{
    dn_privkey *k = NULL;
    assert_int_equal(dn_privkey_generate(t, &k), 0);
    assert_non_null(k);
    return k;
}

static dn_peerid id_of(const dn_privkey *k)
{
    dn_peerid id;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &id), 0);
    return id;
}

/* A connection under test: two handshakes and the three messages. */
typedef struct conn {
    dn_privkey *ik, *rk;
    dn_noise_handshake i, r;
    dn_buf m1, m2, m3; /* framed handshake messages as sent */
} conn;

static const char *const YAMUX[] = {"/yamux/1.0.0"};

static void conn_init(conn *c, dn_key_type it, dn_key_type rt, const char *const *im, size_t in,
                      const char *const *rm, size_t rn, const dn_peerid *expected)
{
    memset(c, 0, sizeof *c);
    c->ik = new_key(it);
    c->rk = new_key(rt);
    assert_int_equal(dn_noise_handshake_init(&c->i, true, c->ik, expected, im, in), 0);
    assert_int_equal(dn_noise_handshake_init(&c->r, false, c->rk, NULL, rm, rn), 0);
}

static void conn_free(conn *c)
{
    dn_noise_handshake_free(&c->i);
    dn_noise_handshake_free(&c->r);
    dn_privkey_free(c->ik);
    dn_privkey_free(c->rk);
    dn_buf_free(&c->m1);
    dn_buf_free(&c->m2);
    dn_buf_free(&c->m3);
}

static int feed_all(dn_noise_handshake *hs, const dn_buf *in, dn_buf *out)
{
    size_t used = 0;
    int rc = dn_noise_handshake_feed(hs, in->data, in->len, &used, out);
    if (rc >= 0)
        assert_int_equal(used, in->len);
    return rc;
}

/* Run the three messages; every step must succeed. */
static void conn_run(conn *c)
{
    assert_int_equal(dn_noise_handshake_start(&c->r, &c->m2), 0); /* responder: no-op */
    assert_int_equal(c->m2.len, 0);
    assert_int_equal(dn_noise_handshake_start(&c->i, &c->m1), 0);
    assert_int_equal(feed_all(&c->r, &c->m1, &c->m2), DN_NOISE_NEED_MORE);
    assert_int_equal(feed_all(&c->i, &c->m2, &c->m3), DN_NOISE_DONE);
    assert_int_equal(feed_all(&c->r, &c->m3, NULL), DN_NOISE_DONE);
}

static void assert_roundtrip(dn_noise_session *tx, dn_noise_session *rx, size_t len)
{
    uint8_t *pt = malloc(len ? len : 1);
    assert_non_null(pt);
    randombytes_buf(pt, len);
    dn_buf wire = DN_BUF_INIT, back = DN_BUF_INIT;
    assert_int_equal(dn_noise_encrypt(tx, pt, len, &wire), 0);
    size_t used = 0;
    assert_int_equal(dn_noise_decrypt(rx, wire.data, wire.len, &used, &back), 0);
    assert_int_equal(used, wire.len);
    assert_int_equal(back.len, len);
    if (len)
        assert_memory_equal(back.data, pt, len);
    dn_buf_free(&wire);
    dn_buf_free(&back);
    free(pt);
}

/* ---- Noise framework -------------------------------------------------- */

/* InitializeSymmetric with the empty prologue, by hand: the protocol name
 * is exactly 32 bytes, so ck = name and h = SHA-256(name || "") =
 * SHA-256(name) (computed independently with sha256sum). */
static void test_init_h_ck(void **state)
{
    static const char *h_hex = "f3d15e6108ed9556171207baa58f97d29a13c6be40595166066e2e0958dc002d";
    uint8_t want[32];
    unhex(h_hex, want, sizeof want);
    dn_privkey *k = new_key(DN_KEY_ED25519);
    dn_noise_handshake hs;
    assert_int_equal(dn_noise_handshake_init(&hs, true, k, NULL, NULL, 0), 0);
    assert_memory_equal(hs.h, want, 32);
    assert_memory_equal(hs.ck, "Noise_XX_25519_ChaChaPoly_SHA256", 32);
    uint8_t h2[32];
    crypto_hash_sha256(h2, (const uint8_t *)"Noise_XX_25519_ChaChaPoly_SHA256", 32);
    assert_memory_equal(hs.h, h2, 32);
    dn_noise_handshake_free(&hs);
    dn_privkey_free(k);
}

static const char *const VEC_PROLOGUE =
    "5468657265206973206e6f20726967687420616e642077726f6e672e2054686572652773206f6e6c79206675"
    "6e20616e6420626f72696e672e";
static const char *const VEC_INIT_S =
    "7dec208517a3b81a2861d7a71266d5d6dc944c5a8816634a86fe63198a0148ee";
static const char *const VEC_INIT_E =
    "a32daf21e93c0131495ce1d903181fde81cc46937daaeb990bae7c992709421e";
static const char *const VEC_RESP_S =
    "4d0aed5098e3b4ef20357e9f686ce66204c792b358da2e475017d6c485304881";
static const char *const VEC_RESP_E =
    "4eece0f195d026db035ff987597c429d3ad3bcc2944df37d649528951b2a27c5";
static const char *const VEC_MSG[5][2] = {
    {"d03c489139e645d0711a3c9e810d776b46a84912463fafa87b884eebf242dc34",
     "f9fa868ba97ab8a2686deccfaad5a484ee10a5bb85e3d1dce015a84797f92818d03c489139e645d0711a3c9e81"
     "0d776b46a84912463fafa87b884eebf242dc34"},
    {"d8190a92f7dc0c93dbea9118ba8055751fb7c6590c416ffbd419964132b99a85",
     "8c4e6fdb7d09d501a86f7eca5c234522751706ed409182c05cdf5f827d4dae47b81c6c5f43b025692c24391eef"
     "ee725c17d8cb0fbe3e4abb8aedf42c4fd2592d4ea48ac08989d6ae8b4adae08b2c34087c808c7aa55a63c02b0f"
     "ab9e930612336bd43eaea04d3c670a0a146691aa9cc9d357872320dc735dbc48580cffb553db"},
    {"77891b19dcb92ef7c055b672c4a5aa7fdf1c84146b8b303459022729473ce254",
     "933ca6b5ed60df3df66121f0ab49a09e49efa45c613a86a3cecbf4c535cef2f83f72b42837b18e3572f2fdc2b7"
     "4c331e2368a545cef54bdca081678ab0e9dd5348122459e0c034c851984d88ce610963d43cde6cfe73a67fbd5a"
     "63e8bfca96d0"},
    {"d7efdf988072881941db045a42882433817555128fbf5663e56081712ec7d212",
     "54ef0ff0629e1aaa7685a2806ab111cba76b52331f2642276736f415868eacb69ab2577f3bda0cbf72f879685f"
     "6ed25f"},
    {"dd7bf01a588bafb52c6cfba952e5d8fe35cc2b3f92b4730ae2474615157345ce",
     "356be70f110306d5c699bb834bb9d58d909e325924dfbec972e406e6f294dc63e1daebefe8a62a334facc8048a"
     "b4ad66"},
};

/* Replay the published vector: same keys, prologue and payloads must give
 * the same bytes, and each side must read the other's messages back. */
static void test_snow_vector(void **state)
{
    uint8_t pro[64], is[32], ie[32], rsk[32], re[32], buf[256], ct[256];
    size_t plen = unhex(VEC_PROLOGUE, pro, sizeof pro);
    unhex(VEC_INIT_S, is, 32);
    unhex(VEC_INIT_E, ie, 32);
    unhex(VEC_RESP_S, rsk, 32);
    unhex(VEC_RESP_E, re, 32);
    dn_privkey *k = new_key(DN_KEY_ED25519);
    dn_noise_handshake ini, res;
    assert_int_equal(dn_noise_handshake_init(&ini, true, k, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init(&res, false, k, NULL, NULL, 0), 0);
    assert_int_equal(dn__noise_handshake_set_keys(&ini, is, ie, pro, plen), 0);
    assert_int_equal(dn__noise_handshake_set_keys(&res, rsk, re, pro, plen), 0);

    for (int m = 0; m < 3; m++) {
        dn_noise_handshake *w = m == 1 ? &res : &ini, *r = m == 1 ? &ini : &res;
        size_t pl = unhex(VEC_MSG[m][0], buf, sizeof buf);
        size_t cl = unhex(VEC_MSG[m][1], ct, sizeof ct);
        dn_buf out = DN_BUF_INIT, got = DN_BUF_INIT;
        assert_int_equal(dn__noise_write_message(w, buf, pl, &out), 0);
        assert_int_equal(out.len, cl);
        assert_memory_equal(out.data, ct, cl);
        assert_int_equal(dn__noise_read_message(r, ct, cl, &got), 0);
        assert_int_equal(got.len, pl);
        assert_memory_equal(got.data, buf, pl);
        dn_buf_free(&out);
        dn_buf_free(&got);
    }
    assert_memory_equal(ini.h, res.h, 32);
    assert_memory_equal(ini.rs, res.s_pub, 32);
    assert_memory_equal(res.rs, ini.s_pub, 32);

    /* Transport: messages continue to alternate, responder first. */
    dn_noise_session si, sr;
    assert_int_equal(dn_noise_handshake_split(&ini, &si, NULL), 0);
    assert_int_equal(dn_noise_handshake_split(&res, &sr, NULL), 0);
    for (int m = 3; m < 5; m++) {
        dn_noise_session *w = m == 3 ? &sr : &si, *r = m == 3 ? &si : &sr;
        size_t pl = unhex(VEC_MSG[m][0], buf, sizeof buf);
        size_t cl = unhex(VEC_MSG[m][1], ct, sizeof ct);
        dn_buf out = DN_BUF_INIT, got = DN_BUF_INIT;
        assert_int_equal(dn_noise_encrypt(w, buf, pl, &out), 0);
        assert_int_equal(out.len, 2 + cl);
        assert_int_equal(out.data[0], cl >> 8);
        assert_int_equal(out.data[1], cl & 0xff);
        assert_memory_equal(out.data + 2, ct, cl);
        size_t used;
        assert_int_equal(dn_noise_decrypt(r, out.data, out.len, &used, &got), 0);
        assert_int_equal(used, out.len);
        assert_int_equal(got.len, pl);
        assert_memory_equal(got.data, buf, pl);
        dn_buf_free(&out);
        dn_buf_free(&got);
    }
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    dn_noise_handshake_free(&ini);
    dn_noise_handshake_free(&res);
    dn_privkey_free(k);
}

/* ---- libp2p handshake ------------------------------------------------- */

static void check_full(dn_key_type it, dn_key_type rt)
{
    conn c;
    conn_init(&c, it, rt, NULL, 0, NULL, 0, NULL);
    conn_run(&c);
    /* Wire: message 1 is exactly the 32-byte ephemeral key. */
    assert_int_equal(c.m1.len, 34);
    assert_int_equal(c.m1.data[0], 0);
    assert_int_equal(c.m1.data[1], 32);
    assert_int_equal(((size_t)c.m2.data[0] << 8 | c.m2.data[1]), c.m2.len - 2);
    assert_int_equal(((size_t)c.m3.data[0] << 8 | c.m3.data[1]), c.m3.len - 2);

    dn_peerid want_i = id_of(c.ik), want_r = id_of(c.rk);
    assert_non_null(dn_noise_remote_peer(&c.i));
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&c.i), &want_r));
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&c.r), &want_i));
    assert_true(dn_pubkey_equal(dn_noise_remote_key(&c.i), dn_privkey_public(c.rk)));
    assert_true(dn_pubkey_equal(dn_noise_remote_key(&c.r), dn_privkey_public(c.ik)));
    assert_null(dn_noise_negotiated_muxer(&c.i));
    assert_null(dn_noise_negotiated_muxer(&c.r));
    assert_memory_equal(c.i.h, c.r.h, 32);

    dn_noise_session si, sr;
    dn_pubkey *taken = NULL;
    assert_int_equal(dn_noise_handshake_split(&c.i, &si, &taken), 0);
    assert_int_equal(dn_noise_handshake_split(&c.r, &sr, NULL), 0);
    assert_non_null(taken);
    assert_true(dn_pubkey_equal(taken, dn_privkey_public(c.rk)));
    assert_null(c.i.remote_key);
    dn_pubkey_free(taken);
    /* The split keys pair up, and differ per direction. */
    assert_memory_equal(si.tx.key, sr.rx.key, 32);
    assert_memory_equal(si.rx.key, sr.tx.key, 32);
    assert_memory_not_equal(si.tx.key, si.rx.key, 32);
    /* Handshake secrets are gone. */
    static const uint8_t zero[32];
    assert_memory_equal(c.i.s_priv, zero, 32);
    assert_memory_equal(c.i.e_priv, zero, 32);
    assert_memory_equal(c.i.ck, zero, 32);
    assert_memory_equal(c.r.s_priv, zero, 32);
    assert_memory_equal(c.r.e_priv, zero, 32);
    assert_memory_equal(c.r.cs.key, zero, 32);
    /* The identity survives the split. */
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&c.i), &want_r));

    assert_roundtrip(&si, &sr, 100);
    assert_roundtrip(&sr, &si, 100);
    assert_roundtrip(&si, &sr, 1);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    /* After free: no key material, every call refused. */
    assert_memory_equal(si.tx.key, zero, 32);
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"x", 1, &b), DN_ESTATE);
    conn_free(&c);
}

static void test_handshake_ed25519(void **state)
{
    check_full(DN_KEY_ED25519, DN_KEY_ED25519);
}

static void test_handshake_secp256k1(void **state)
{
    check_full(DN_KEY_SECP256K1, DN_KEY_ED25519);
    check_full(DN_KEY_ED25519, DN_KEY_SECP256K1);
}

static void test_handshake_ecdsa(void **state)
{
    check_full(DN_KEY_ECDSA, DN_KEY_SECP256K1);
}

static const char *run_muxers(const char *const *im, size_t in, const char *const *rm, size_t rn)
{
    conn c;
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, im, in, rm, rn, NULL);
    conn_run(&c);
    const char *a = dn_noise_negotiated_muxer(&c.i), *b = dn_noise_negotiated_muxer(&c.r);
    /* Both sides must agree, or the connection would break. */
    if (a || b) {
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, b);
    }
    conn_free(&c);
    return a; /* points into the caller's static arrays */
}

static void test_muxers(void **state)
{
    static const char *const ym[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
    static const char *const my[] = {"/mplex/6.7.0", "/yamux/1.0.0"};
    static const char *const mp[] = {"/mplex/6.7.0"};
    static const char *const other[] = {"/other/1", "/another/2"};
    static const char *const many[] = {"/a/1", "/b/1", "/c/1", "/yamux/1.0.0"};
    const char *r = run_muxers(YAMUX, 1, ym, 2);
    assert_string_equal(r, "/yamux/1.0.0");
    /* The initiator's preference wins over the responder's (the rule of
     * inlined-muxer-negotiation.md: first of the initiator's list that
     * both support). */
    assert_string_equal(run_muxers(ym, 2, my, 2), "/yamux/1.0.0");
    assert_string_equal(run_muxers(my, 2, ym, 2), "/mplex/6.7.0");
    assert_string_equal(run_muxers(ym, 2, mp, 1), "/mplex/6.7.0");
    assert_string_equal(run_muxers(many, 4, YAMUX, 1), "/yamux/1.0.0");
    /* No overlap, or one side silent: NULL, fall back to multistream. */
    assert_null(run_muxers(YAMUX, 1, other, 2));
    assert_null(run_muxers(YAMUX, 1, NULL, 0));
    assert_null(run_muxers(NULL, 0, ym, 2));
}

static void test_init_invalid(void **state)
{
    dn_privkey *k = new_key(DN_KEY_ED25519);
    dn_noise_handshake hs;
    static const char *const five[] = {"/a", "/b", "/c", "/d", "/e"};
    static const char *const empty[] = {""};
    static const char *const toolong[] = {
        "/0123456789012345678901234567890123456789012345678901234567890123"};
    assert_int_equal(dn_noise_handshake_init(&hs, true, NULL, NULL, NULL, 0), DN_EINVAL);
    assert_int_equal(dn_noise_handshake_init(&hs, true, k, NULL, five, 5), DN_EINVAL);
    assert_int_equal(dn_noise_handshake_init(&hs, true, k, NULL, empty, 1), DN_EINVAL);
    assert_int_equal(dn_noise_handshake_init(&hs, true, k, NULL, toolong, 1), DN_EINVAL);
    dn_noise_handshake_free(&hs);
    dn_privkey_free(k);
}

static void test_expected_peer(void **state)
{
    dn_privkey *other = new_key(DN_KEY_ED25519);
    dn_peerid wrong = id_of(other);
    conn c;
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, &wrong);
    assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
    assert_int_equal(feed_all(&c.r, &c.m1, &c.m2), DN_NOISE_NEED_MORE);
    size_t used;
    assert_int_equal(dn_noise_handshake_feed(&c.i, c.m2.data, c.m2.len, &used, &c.m3), DN_EPEERID);
    assert_int_equal(c.m3.len, 0); /* nothing sent to an impostor */
    assert_null(dn_noise_remote_peer(&c.i));
    assert_int_equal(dn_noise_handshake_feed(&c.i, c.m2.data, c.m2.len, &used, &c.m3), DN_ESTATE);
    dn_noise_session s;
    assert_int_equal(dn_noise_handshake_split(&c.i, &s, NULL), DN_ESTATE);
    conn_free(&c);

    /* The right expectation passes. */
    dn_privkey *rk = new_key(DN_KEY_ED25519);
    dn_peerid right = id_of(rk);
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, &right);
    dn_noise_handshake_free(&c.r);
    dn_privkey_free(c.rk);
    c.rk = rk;
    assert_int_equal(dn_noise_handshake_init(&c.r, false, c.rk, NULL, NULL, 0), 0);
    conn_run(&c);
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&c.i), &right));
    conn_free(&c);
    dn_privkey_free(other);
}

/* Make message 2 by hand with the raw writer: payload from build_payload.
 * Returns the framed message. */
typedef void (*payload_fn)(const conn *c, const uint8_t s_pub[32], dn_buf *pl);

static void raw_msg(dn_noise_handshake *hs, const dn_buf *pl, dn_buf *out)
{
    dn_buf body = DN_BUF_INIT;
    assert_int_equal(dn__noise_write_message(hs, pl->data, pl->len, &body), 0);
    assert_true(body.len <= 65535);
    uint8_t hdr[2] = {(uint8_t)(body.len >> 8), (uint8_t)body.len};
    assert_int_equal(dn_buf_append(out, hdr, 2), 0);
    assert_int_equal(dn_buf_append(out, body.data, body.len), 0);
    dn_buf_free(&body);
}

static void flip_sig(dn_buf *pl)
{
    dn__noise_payload p;
    assert_int_equal(dn__noise_payload_parse(pl->data, pl->len, &p), 0);
    assert_true(p.sig_len > 0);
    pl->data[(size_t)(p.sig - pl->data) + p.sig_len / 2] ^= 0x10;
}

/* A payload whose identity key is not the key that signed. */
static void mismatched_payload(const dn_privkey *signer, const dn_privkey *claimed,
                               const uint8_t s_pub[32], dn_buf *out)
{
    dn_buf good = DN_BUF_INIT, key = DN_BUF_INIT;
    dn__noise_payload p;
    assert_int_equal(dn__noise_payload_build(signer, s_pub, NULL, 0, &good), 0);
    assert_int_equal(dn__noise_payload_parse(good.data, good.len, &p), 0);
    assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(claimed), &key), 0);
    assert_int_equal(dn_pb_put_bytes(out, 1, key.data, key.len), 0);
    assert_int_equal(dn_pb_put_bytes(out, 2, p.sig, p.sig_len), 0);
    dn_buf_free(&good);
    dn_buf_free(&key);
}

static void test_forged_signature_msg2(void **state)
{
    for (int variant = 0; variant < 3; variant++) {
        conn c;
        conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
        dn_privkey *mallory = new_key(DN_KEY_ED25519);
        assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
        dn_buf pl = DN_BUF_INIT, junk = DN_BUF_INIT;
        assert_int_equal(dn__noise_read_message(&c.r, c.m1.data + 2, c.m1.len - 2, &junk), 0);
        if (variant == 0) {
            /* Right key, signature bit flipped. */
            assert_int_equal(dn__noise_payload_build(c.rk, c.r.s_pub, NULL, 0, &pl), 0);
            flip_sig(&pl);
        } else if (variant == 1) {
            /* Claims the victim's identity, signed by mallory. */
            mismatched_payload(mallory, c.rk, c.r.s_pub, &pl);
        } else {
            /* Valid signature, but over another static key. */
            uint8_t fake_s[32];
            randombytes_buf(fake_s, 32);
            assert_int_equal(dn__noise_payload_build(c.rk, fake_s, NULL, 0, &pl), 0);
        }
        raw_msg(&c.r, &pl, &c.m2);
        size_t used;
        assert_int_equal(dn_noise_handshake_feed(&c.i, c.m2.data, c.m2.len, &used, &c.m3),
                         DN_EBADSIG);
        assert_int_equal(c.m3.len, 0);
        assert_null(dn_noise_remote_peer(&c.i));
        assert_null(c.i.remote_key);
        assert_int_equal(dn_noise_handshake_start(&c.i, &c.m3), DN_ESTATE);
        dn_buf_free(&pl);
        dn_buf_free(&junk);
        dn_privkey_free(mallory);
        conn_free(&c);
    }
}

static void test_forged_signature_msg3(void **state)
{
    for (int variant = 0; variant < 2; variant++) {
        conn c;
        conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, YAMUX, 1, NULL);
        dn_privkey *mallory = new_key(DN_KEY_ED25519);
        assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
        assert_int_equal(feed_all(&c.r, &c.m1, &c.m2), DN_NOISE_NEED_MORE);
        dn_buf pl = DN_BUF_INIT, got = DN_BUF_INIT;
        assert_int_equal(dn__noise_read_message(&c.i, c.m2.data + 2, c.m2.len - 2, &got), 0);
        if (variant == 0) {
            assert_int_equal(dn__noise_payload_build(c.ik, c.i.s_pub, YAMUX, 1, &pl), 0);
            flip_sig(&pl);
        } else {
            mismatched_payload(mallory, c.ik, c.i.s_pub, &pl);
        }
        raw_msg(&c.i, &pl, &c.m3);
        size_t used;
        assert_int_equal(dn_noise_handshake_feed(&c.r, c.m3.data, c.m3.len, &used, NULL),
                         DN_EBADSIG);
        assert_null(dn_noise_remote_peer(&c.r));
        assert_null(dn_noise_negotiated_muxer(&c.r));
        dn_buf_free(&pl);
        dn_buf_free(&got);
        dn_privkey_free(mallory);
        conn_free(&c);
    }
}

/* Payloads that are not a valid NoiseHandshakePayload, carried in a
 * correctly encrypted message 2. */
static void test_bad_payload_msg2(void **state)
{
    static const uint8_t empty_key[] = {0x0a, 0x00, 0x12, 0x01, 0x00};
    static const uint8_t no_key[] = {0x12, 0x01, 0x00};
    static const uint8_t wrong_type[] = {0x08, 0x01};
    static const uint8_t truncated[] = {0x0a, 0x10, 0x01};
    static const uint8_t bad_key[] = {0x0a, 0x03, 0x08, 0x09, 0x12, 0x12, 0x01, 0x00};
    static const struct {
        const uint8_t *p;
        size_t len;
        int want;
    } cases[] = {
        {NULL, 0, DN_EMALFORMED},
        {empty_key, sizeof empty_key, DN_EMALFORMED},
        {no_key, sizeof no_key, DN_EMALFORMED},
        {wrong_type, sizeof wrong_type, DN_EMALFORMED},
        {truncated, sizeof truncated, DN_EMALFORMED},
        {bad_key, sizeof bad_key, 1 /* any error */},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        conn c;
        conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
        assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
        dn_buf pl = DN_BUF_INIT, junk = DN_BUF_INIT;
        assert_int_equal(dn__noise_read_message(&c.r, c.m1.data + 2, c.m1.len - 2, &junk), 0);
        if (cases[k].len)
            assert_int_equal(dn_buf_append(&pl, cases[k].p, cases[k].len), 0);
        raw_msg(&c.r, &pl, &c.m2);
        size_t used;
        int rc = dn_noise_handshake_feed(&c.i, c.m2.data, c.m2.len, &used, &c.m3);
        if (cases[k].want == 1)
            assert_true(rc < 0);
        else
            assert_int_equal(rc, cases[k].want);
        assert_int_equal(c.m3.len, 0);
        dn_buf_free(&pl);
        dn_buf_free(&junk);
        conn_free(&c);
    }
}

/* Every byte of the body of message 2 and message 3: one flipped bit and
 * the handshake fails with DN_EDECRYPT (the ephemeral key is covered by h,
 * the AD of every later ciphertext). */
static void test_flipped_bits(void **state)
{
    for (int msg = 2; msg <= 3; msg++) {
        size_t len;
        {
            conn c;
            conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
            conn_run(&c);
            len = (msg == 2 ? c.m2.len : c.m3.len);
            conn_free(&c);
        }
        for (size_t pos = 2; pos < len; pos++) {
            conn c;
            conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
            assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
            assert_int_equal(feed_all(&c.r, &c.m1, &c.m2), DN_NOISE_NEED_MORE);
            size_t used;
            if (msg == 2) {
                assert_int_equal(c.m2.len, len);
                c.m2.data[pos] ^= (uint8_t)(1u << (pos % 8));
                assert_int_equal(dn_noise_handshake_feed(&c.i, c.m2.data, c.m2.len, &used, &c.m3),
                                 DN_EDECRYPT);
                assert_int_equal(c.m3.len, 0);
            } else {
                assert_int_equal(feed_all(&c.i, &c.m2, &c.m3), DN_NOISE_DONE);
                assert_int_equal(c.m3.len, len);
                c.m3.data[pos] ^= (uint8_t)(1u << (pos % 8));
                assert_int_equal(dn_noise_handshake_feed(&c.r, c.m3.data, c.m3.len, &used, NULL),
                                 DN_EDECRYPT);
                assert_null(dn_noise_remote_peer(&c.r));
            }
            conn_free(&c);
        }
    }
}

/* Each handshake message delivered in two pieces, at every split point. */
static void test_split_points(void **state)
{
    for (int msg = 1; msg <= 3; msg++) {
        size_t len = 0;
        for (size_t cut = 0;; cut++) {
            conn c;
            conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, YAMUX, 1, YAMUX, 1, NULL);
            assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
            if (msg > 1)
                assert_int_equal(feed_all(&c.r, &c.m1, &c.m2), DN_NOISE_NEED_MORE);
            if (msg > 2)
                assert_int_equal(feed_all(&c.i, &c.m2, &c.m3), DN_NOISE_DONE);
            dn_noise_handshake *to = msg == 2 ? &c.i : &c.r;
            dn_buf *m = msg == 1 ? &c.m1 : msg == 2 ? &c.m2 : &c.m3;
            dn_buf *reply = msg == 1 ? &c.m2 : msg == 2 ? &c.m3 : NULL;
            len = m->len;
            if (cut > len) {
                conn_free(&c);
                break;
            }
            size_t used = 99;
            assert_int_equal(dn_noise_handshake_feed(to, m->data, cut, &used, reply),
                             cut == len ? (msg == 1 ? DN_NOISE_NEED_MORE : DN_NOISE_DONE)
                                        : DN_NOISE_NEED_MORE);
            assert_int_equal(used, cut);
            if (cut < len) {
                if (reply)
                    assert_int_equal(reply->len, 0);
                int want = msg == 1 ? DN_NOISE_NEED_MORE : DN_NOISE_DONE;
                assert_int_equal(
                    dn_noise_handshake_feed(to, m->data + cut, len - cut, &used, reply), want);
                assert_int_equal(used, len - cut);
            }
            /* Finish the handshake and check it is sound. */
            if (msg == 1)
                assert_int_equal(feed_all(&c.i, &c.m2, &c.m3), DN_NOISE_DONE);
            if (msg <= 2)
                assert_int_equal(feed_all(&c.r, &c.m3, NULL), DN_NOISE_DONE);
            assert_memory_equal(c.i.h, c.r.h, 32);
            assert_string_equal(dn_noise_negotiated_muxer(&c.r), "/yamux/1.0.0");
            conn_free(&c);
        }
    }
    /* And all three one byte at a time. */
    conn c;
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
    assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
    size_t used;
    for (size_t k = 0; k < c.m1.len; k++)
        assert_int_equal(dn_noise_handshake_feed(&c.r, c.m1.data + k, 1, &used, &c.m2),
                         DN_NOISE_NEED_MORE);
    for (size_t k = 0; k < c.m2.len; k++)
        assert_int_equal(dn_noise_handshake_feed(&c.i, c.m2.data + k, 1, &used, &c.m3),
                         k + 1 == c.m2.len ? DN_NOISE_DONE : DN_NOISE_NEED_MORE);
    for (size_t k = 0; k < c.m3.len; k++)
        assert_int_equal(dn_noise_handshake_feed(&c.r, c.m3.data + k, 1, &used, NULL),
                         k + 1 == c.m3.len ? DN_NOISE_DONE : DN_NOISE_NEED_MORE);
    assert_memory_equal(c.i.h, c.r.h, 32);
    conn_free(&c);
}

/* Transport data right behind message 3 (the initiator's first write) is
 * left to the caller and decrypts after the split. */
static void test_trailing_transport(void **state)
{
    conn c;
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
    assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
    assert_int_equal(feed_all(&c.r, &c.m1, &c.m2), DN_NOISE_NEED_MORE);
    assert_int_equal(feed_all(&c.i, &c.m2, &c.m3), DN_NOISE_DONE);
    dn_noise_session si, sr;
    assert_int_equal(dn_noise_handshake_split(&c.i, &si, NULL), 0);
    size_t hlen = c.m3.len;
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"hello", 5, &c.m3), 0);
    size_t used;
    /* Deliver in two pieces across the boundary. */
    assert_int_equal(dn_noise_handshake_feed(&c.r, c.m3.data, 10, &used, NULL), DN_NOISE_NEED_MORE);
    assert_int_equal(used, 10);
    assert_int_equal(dn_noise_handshake_feed(&c.r, c.m3.data + 10, c.m3.len - 10, &used, NULL),
                     DN_NOISE_DONE);
    assert_int_equal(10 + used, hlen);
    assert_int_equal(dn_noise_handshake_split(&c.r, &sr, NULL), 0);
    dn_buf pt = DN_BUF_INIT;
    assert_int_equal(dn_noise_decrypt(&sr, c.m3.data + hlen, c.m3.len - hlen, &used, &pt), 0);
    assert_int_equal(pt.len, 5);
    assert_memory_equal(pt.data, "hello", 5);
    dn_buf_free(&pt);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

static int feed_frame(dn_noise_handshake *hs, const uint8_t *body, size_t len)
{
    dn_buf f = DN_BUF_INIT, out = DN_BUF_INIT;
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    assert_int_equal(dn_buf_append(&f, hdr, 2), 0);
    if (len)
        assert_int_equal(dn_buf_append(&f, body, len), 0);
    size_t used;
    int rc = dn_noise_handshake_feed(hs, f.data, f.len, &used, &out);
    if (rc < 0)
        assert_int_equal(out.len, 0);
    dn_buf_free(&f);
    dn_buf_free(&out);
    return rc;
}

static void test_short_messages(void **state)
{
    uint8_t junk[200];
    randombytes_buf(junk, sizeof junk);
    /* Message 1 shorter than e, and empty. */
    static const size_t m1bad[] = {0, 1, 31};
    for (size_t k = 0; k < 3; k++) {
        conn c;
        conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
        assert_int_equal(feed_frame(&c.r, junk, m1bad[k]), DN_EMALFORMED);
        assert_int_equal(feed_frame(&c.r, junk, 32), DN_ESTATE);
        conn_free(&c);
    }
    /* Message 2 below e + enc(s) + tag = 96. */
    static const size_t m2bad[] = {0, 32, 80, 95};
    for (size_t k = 0; k < 4; k++) {
        conn c;
        conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
        assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
        assert_int_equal(feed_frame(&c.i, junk, m2bad[k]), DN_EMALFORMED);
        conn_free(&c);
    }
    /* Message 3 below enc(s) + tag = 64. */
    static const size_t m3bad[] = {0, 48, 63};
    for (size_t k = 0; k < 3; k++) {
        conn c;
        conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
        assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
        assert_int_equal(feed_all(&c.r, &c.m1, &c.m2), DN_NOISE_NEED_MORE);
        assert_int_equal(feed_frame(&c.r, junk, m3bad[k]), DN_EMALFORMED);
        conn_free(&c);
    }
    /* Right size, random bytes: authentication fails. */
    conn c;
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
    assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
    assert_int_equal(feed_frame(&c.i, junk, 150), DN_EDECRYPT);
    conn_free(&c);
    /* A low-order ephemeral key (all zero): DH output is zero, refused. */
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
    uint8_t zero[32] = {0};
    assert_int_equal(feed_frame(&c.r, zero, 32), DN_EPROTO);
    conn_free(&c);
    /* A message 1 with a (plaintext) payload is read; the payload is only
     * hashed. */
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
    assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
    uint8_t m1p[40];
    memcpy(m1p, c.m1.data + 2, 32);
    memcpy(m1p + 32, "payload!", 8);
    assert_int_equal(feed_frame(&c.r, m1p, sizeof m1p), DN_NOISE_NEED_MORE);
    conn_free(&c);
}

static void test_state_errors(void **state)
{
    conn c;
    conn_init(&c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
    size_t used;
    dn_noise_session s;
    uint8_t b[34] = {0, 32};
    /* Initiator must start first; responder does not send first. */
    assert_int_equal(dn_noise_handshake_feed(&c.i, b, sizeof b, &used, &c.m3), DN_ESTATE);
    assert_int_equal(dn_noise_handshake_split(&c.i, &s, NULL), DN_ESTATE);
    assert_null(dn_noise_remote_peer(&c.i));
    assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), 0);
    assert_int_equal(dn_noise_handshake_start(&c.i, &c.m1), DN_ESTATE);
    assert_int_equal(c.m1.len, 34);
    /* Feeding nothing is harmless. */
    assert_int_equal(dn_noise_handshake_feed(&c.r, NULL, 0, &used, &c.m2), DN_NOISE_NEED_MORE);
    assert_int_equal(feed_all(&c.r, &c.m1, &c.m2), DN_NOISE_NEED_MORE);
    assert_int_equal(dn_noise_handshake_start(&c.r, &c.m2), DN_ESTATE);
    assert_int_equal(feed_all(&c.i, &c.m2, &c.m3), DN_NOISE_DONE);
    /* Done: more handshake input is refused. */
    assert_int_equal(dn_noise_handshake_feed(&c.i, b, sizeof b, &used, &c.m3), DN_ESTATE);
    assert_int_equal(feed_all(&c.r, &c.m3, NULL), DN_NOISE_DONE);
    assert_int_equal(dn_noise_handshake_split(&c.r, &s, NULL), 0);
    assert_int_equal(dn_noise_handshake_split(&c.r, &s, NULL), DN_ESTATE);
    dn_noise_session_free(&s);
    conn_free(&c);
}

/* ---- transport -------------------------------------------------------- */

static void sessions(conn *c, dn_noise_session *si, dn_noise_session *sr)
{
    conn_init(c, DN_KEY_ED25519, DN_KEY_ED25519, NULL, 0, NULL, 0, NULL);
    conn_run(c);
    assert_int_equal(dn_noise_handshake_split(&c->i, si, NULL), 0);
    assert_int_equal(dn_noise_handshake_split(&c->r, sr, NULL), 0);
}

static void check_size(dn_noise_session *tx, dn_noise_session *rx, size_t len)
{
    uint8_t *pt = malloc(len + 1);
    assert_non_null(pt);
    randombytes_buf(pt, len);
    dn_buf wire = DN_BUF_INIT, back = DN_BUF_INIT;
    uint64_t n0 = tx->tx.nonce;
    assert_int_equal(dn_noise_encrypt(tx, pt, len, &wire), 0);
    /* Parse the wire: 2-byte big-endian lengths, full 65519-byte chunks
     * first, every message within 65535. */
    size_t pos = 0, left = len, frames = 0;
    do {
        assert_true(wire.len - pos >= 2);
        size_t m = (size_t)wire.data[pos] << 8 | wire.data[pos + 1];
        size_t want = left < 65519 ? left : 65519;
        assert_int_equal(m, want + 16);
        pos += 2 + m;
        left -= want;
        frames++;
    } while (left);
    assert_int_equal(pos, wire.len);
    assert_int_equal(tx->tx.nonce - n0, frames);
    /* Deliver in odd-sized pieces, keeping the partial tail as a caller
     * would. */
    dn_buf in = DN_BUF_INIT;
    for (size_t off = 0; off < wire.len;) {
        size_t piece = wire.len - off < 7777 ? wire.len - off : 7777;
        assert_int_equal(dn_buf_append(&in, wire.data + off, piece), 0);
        off += piece;
        size_t used;
        assert_int_equal(dn_noise_decrypt(rx, in.data, in.len, &used, &back), 0);
        dn_buf_consume(&in, used);
    }
    assert_int_equal(in.len, 0);
    assert_int_equal(back.len, len);
    if (len)
        assert_memory_equal(back.data, pt, len);
    dn_buf_free(&in);
    dn_buf_free(&wire);
    dn_buf_free(&back);
    free(pt);
}

static void test_transport_sizes(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    static const size_t sizes[] = {0, 1, 65519, 65520, 1 << 20, 3 * 65519, 100};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        check_size(&si, &sr, sizes[k]);
        check_size(&sr, &si, sizes[k]);
    }
    /* 0 bytes is one tag-only message. */
    dn_buf w = DN_BUF_INIT;
    assert_int_equal(dn_noise_encrypt(&si, NULL, 0, &w), 0);
    assert_int_equal(w.len, 18);
    dn_buf_free(&w);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

/* In-place opening: the same plaintext, message by message, with partial
 * input reported as incomplete and a corrupted message refused. */
static void test_transport_inplace(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    size_t len = 3 * 65519 + 100;
    uint8_t *pt = malloc(len);
    assert_non_null(pt);
    randombytes_buf(pt, len);
    dn_buf wire = DN_BUF_INIT, back = DN_BUF_INIT;
    assert_int_equal(dn_noise_encrypt(&si, pt, len, &wire), 0);
    uint8_t *p;
    size_t used, plen, pos = 0;
    /* One byte short of the first message: incomplete, nothing used. */
    size_t first = 2 + ((size_t)wire.data[0] << 8 | wire.data[1]);
    assert_int_equal(dn_noise_decrypt_inplace(&sr, wire.data, first - 1, &used, &p, &plen), 0);
    assert_int_equal(used, 0);
    int rc;
    while ((rc = dn_noise_decrypt_inplace(&sr, wire.data + pos, wire.len - pos, &used, &p,
                                          &plen)) == 1) {
        assert_ptr_equal(p, wire.data + pos + 2);
        assert_int_equal(dn_buf_append(&back, p, plen), 0);
        pos += used;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(pos, wire.len);
    assert_int_equal(back.len, len);
    assert_memory_equal(back.data, pt, len);
    /* A flipped bit: refused, and the receive side is unusable after. */
    dn_buf_reset(&wire);
    assert_int_equal(dn_noise_encrypt(&si, pt, 100, &wire), 0);
    wire.data[10] ^= 1;
    assert_int_equal(dn_noise_decrypt_inplace(&sr, wire.data, wire.len, &used, &p, &plen),
                     DN_EDECRYPT);
    assert_int_equal(dn_noise_decrypt_inplace(&sr, wire.data, wire.len, &used, &p, &plen),
                     DN_ESTATE);
    free(pt);
    dn_buf_free(&wire);
    dn_buf_free(&back);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

static void test_transport_replay_reorder(void **state)
{
    conn c;
    dn_noise_session si, sr;
    dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT, out = DN_BUF_INIT;
    size_t used;
    /* Replay. */
    sessions(&c, &si, &sr);
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"first", 5, &a), 0);
    assert_int_equal(dn_noise_decrypt(&sr, a.data, a.len, &used, &out), 0);
    assert_int_equal(dn_noise_decrypt(&sr, a.data, a.len, &used, &out), DN_EDECRYPT);
    assert_int_equal(used, 0);
    assert_int_equal(out.len, 5);
    assert_int_equal(dn_noise_decrypt(&sr, a.data, a.len, &used, &out), DN_ESTATE);
    /* The other direction still works until the caller closes. */
    assert_roundtrip(&sr, &si, 10);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
    /* Reorder: the second message first. */
    dn_buf_reset(&a);
    dn_buf_reset(&out);
    sessions(&c, &si, &sr);
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"first", 5, &a), 0);
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"second", 6, &b), 0);
    assert_int_equal(dn_noise_decrypt(&sr, b.data, b.len, &used, &out), DN_EDECRYPT);
    assert_int_equal(out.len, 0);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
    /* Good frame then a corrupted one in the same input: the first is
     * delivered and counted, then the error. */
    dn_buf_reset(&a);
    dn_buf_reset(&out);
    sessions(&c, &si, &sr);
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"first", 5, &a), 0);
    size_t first = a.len;
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"second", 6, &a), 0);
    a.data[first + 4] ^= 1;
    assert_int_equal(dn_noise_decrypt(&sr, a.data, a.len, &used, &out), DN_EDECRYPT);
    assert_int_equal(used, first);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "first", 5);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
    dn_buf_free(&a);
    dn_buf_free(&b);
    dn_buf_free(&out);
}

static void test_transport_flipped_bits(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    dn_buf w = DN_BUF_INIT, out = DN_BUF_INIT;
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"0123456789", 10, &w), 0);
    /* Each position of body and tag, on a copy, against a fresh receiver
     * state (same keys, nonce 0). */
    uint8_t key[32];
    memcpy(key, sr.rx.key, 32);
    for (size_t pos = 2; pos < w.len; pos++) {
        dn_noise_session r;
        memset(&r, 0, sizeof r);
        assert_int_equal(dn__noise_cipher_init(&r.rx, key, false), 0);
        w.data[pos] ^= 0x80;
        size_t used;
        assert_int_equal(dn_noise_decrypt(&r, w.data, w.len, &used, &out), DN_EDECRYPT);
        assert_int_equal(out.len, 0);
        w.data[pos] ^= 0x80;
        assert_null(r.rx.ctx);
        dn_noise_session_free(&r);
    }
    size_t used;
    assert_int_equal(dn_noise_decrypt(&sr, w.data, w.len, &used, &out), 0);
    assert_int_equal(out.len, 10);
    dn_buf_free(&w);
    dn_buf_free(&out);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

static void test_transport_malformed(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    dn_buf out = DN_BUF_INIT;
    size_t used;
    /* Partial: nothing consumed, nothing produced, no error. */
    static const uint8_t part[] = {0x00, 0x20, 1, 2, 3};
    assert_int_equal(dn_noise_decrypt(&sr, part, 1, &used, &out), 0);
    assert_int_equal(used, 0);
    assert_int_equal(dn_noise_decrypt(&sr, part, sizeof part, &used, &out), 0);
    assert_int_equal(used, 0);
    assert_int_equal(out.len, 0);
    /* A message shorter than the tag. */
    static const uint8_t tiny[] = {0x00, 0x05, 1, 2, 3, 4, 5};
    assert_int_equal(dn_noise_decrypt(&sr, tiny, sizeof tiny, &used, &out), DN_EMALFORMED);
    assert_int_equal(dn_noise_decrypt(&sr, tiny, sizeof tiny, &used, &out), DN_ESTATE);
    static const uint8_t zero[] = {0x00, 0x00};
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
    sessions(&c, &si, &sr);
    assert_int_equal(dn_noise_decrypt(&sr, zero, sizeof zero, &used, &out), DN_EMALFORMED);
    dn_buf_free(&out);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

static void test_nonce_exhaustion(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    dn_buf w = DN_BUF_INIT, out = DN_BUF_INIT;
    /* Last usable nonce is 2^64-2; 2^64-1 is reserved. */
    si.tx.nonce = UINT64_MAX - 1;
    sr.rx.nonce = UINT64_MAX - 1;
    /* Two frames needed, one nonce left: refused whole, nothing written. */
    static uint8_t big[65520];
    assert_int_equal(dn_noise_encrypt(&si, big, sizeof big, &w), DN_ELIMIT);
    assert_int_equal(w.len, 0);
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"z", 1, &w), 0);
    size_t used;
    assert_int_equal(dn_noise_decrypt(&sr, w.data, w.len, &used, &out), 0);
    assert_int_equal(out.len, 1);
    assert_int_equal(dn_noise_encrypt(&si, (const uint8_t *)"z", 1, &w), DN_ELIMIT);
    /* The receiver refuses to go past it too. */
    assert_int_equal(sr.rx.nonce, UINT64_MAX);
    assert_int_equal(dn_noise_decrypt(&sr, w.data, w.len, &used, &out), DN_ELIMIT);
    dn_buf_free(&w);
    dn_buf_free(&out);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

/* ---- payload codec ---------------------------------------------------- */

static void test_payload_codec(void **state)
{
    dn_privkey *k = new_key(DN_KEY_ED25519);
    uint8_t s[32];
    randombytes_buf(s, 32);
    static const char *const two[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
    dn_buf pl = DN_BUF_INIT, kpb = DN_BUF_INIT;
    assert_int_equal(dn__noise_payload_build(k, s, two, 2, &pl), 0);
    dn__noise_payload p;
    assert_int_equal(dn__noise_payload_parse(pl.data, pl.len, &p), 0);
    assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(k), &kpb), 0);
    assert_int_equal(p.key_len, kpb.len);
    assert_memory_equal(p.key, kpb.data, kpb.len);
    assert_int_equal(p.sig_len, 64);
    assert_int_equal(p.nmuxers, 2);
    assert_string_equal(p.muxers[0], "/yamux/1.0.0");
    assert_string_equal(p.muxers[1], "/mplex/6.7.0");
    /* The exact wire layout: field 1, field 2, field 4 { 2, 2 }. */
    assert_int_equal(pl.data[0], 0x0a);
    assert_int_equal(pl.data[1], kpb.len);
    assert_int_equal(pl.data[2 + kpb.len], 0x12);
    assert_int_equal(pl.data[3 + kpb.len], 64);
    assert_int_equal(pl.data[4 + kpb.len + 64], 0x22);
    /* Signature verifies over prefix || s, and the peer id comes out. */
    dn_pubkey *rk = NULL;
    dn_peerid id, want = id_of(k);
    assert_int_equal(dn__noise_payload_verify(&p, s, &want, &rk, &id), 0);
    assert_true(dn_peerid_equal(&id, &want));
    dn_pubkey_free(rk);
    s[0] ^= 1;
    assert_int_equal(dn__noise_payload_verify(&p, s, NULL, &rk, &id), DN_EBADSIG);

    /* Unknown fields (varint, fixed64, fixed32, bytes) are skipped, also
     * inside extensions; certhashes ignored; bad muxer names dropped. */
    dn_buf x = DN_BUF_INIT, ext = DN_BUF_INIT;
    assert_int_equal(dn_pb_put_varint(&x, 9, 7), 0);
    static const uint8_t f64[] = {0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5d, 1, 2, 3, 4};
    assert_int_equal(dn_buf_append(&x, f64, sizeof f64), 0);
    assert_int_equal(dn_pb_put_bytes(&x, 3, "early", 5), 0);
    assert_int_equal(dn_buf_append(&x, pl.data, pl.len), 0);
    assert_int_equal(dn_pb_put_bytes(&ext, 1, "certhash", 8), 0);
    assert_int_equal(dn_pb_put_string(&ext, 2, ""), 0);
    assert_int_equal(dn_pb_put_bytes(&ext, 2, "/a\0b", 4), 0);
    assert_int_equal(
        dn_pb_put_string(&ext, 2,
                         "/a-very-long-muxer-name-that-does-not-fit-into-sixty-four-bytes/1.0.0"),
        0);
    assert_int_equal(dn_pb_put_string(&ext, 2, "/c/1"), 0);
    assert_int_equal(dn_pb_put_string(&ext, 2, "/d/1"), 0);
    assert_int_equal(dn_pb_put_string(&ext, 2, "/e/1"), 0); /* fifth usable: dropped */
    assert_int_equal(dn_pb_put_varint(&ext, 7, 1), 0);
    assert_int_equal(dn_pb_put_bytes(&x, 4, ext.data, ext.len), 0);
    assert_int_equal(dn__noise_payload_parse(x.data, x.len, &p), 0);
    assert_int_equal(p.nmuxers, 4);
    assert_string_equal(p.muxers[0], "/yamux/1.0.0");
    assert_string_equal(p.muxers[1], "/mplex/6.7.0");
    assert_string_equal(p.muxers[2], "/c/1");
    assert_string_equal(p.muxers[3], "/d/1");
    assert_int_equal(p.sig_len, 64);

    /* Malformed. */
    dn_buf bad = DN_BUF_INIT;
    assert_int_equal(dn_pb_put_varint(&bad, 1, 5), 0); /* identity_key as varint */
    assert_int_equal(dn__noise_payload_parse(bad.data, bad.len, &p), DN_EMALFORMED);
    dn_buf_reset(&bad);
    assert_int_equal(dn_buf_append(&bad, pl.data, pl.len), 0);
    assert_int_equal(dn_pb_put_varint(&bad, 4, 1), 0); /* extensions as varint */
    assert_int_equal(dn__noise_payload_parse(bad.data, bad.len, &p), DN_EMALFORMED);
    dn_buf_reset(&bad);
    assert_int_equal(dn_buf_append(&bad, pl.data, pl.len), 0);
    static const uint8_t ext_bad[] = {0x22, 0x02, 0x10, 0x01}; /* muxer as varint */
    assert_int_equal(dn_buf_append(&bad, ext_bad, sizeof ext_bad), 0);
    assert_int_equal(dn__noise_payload_parse(bad.data, bad.len, &p), DN_EMALFORMED);
    assert_int_equal(dn__noise_payload_parse(pl.data, pl.len - 1, &p), DN_EMALFORMED);
    static const uint8_t group[] = {0x0b};
    assert_int_equal(dn__noise_payload_parse(group, 1, &p), DN_EMALFORMED);
    /* Oversized key and signature fields. */
    uint8_t *huge = calloc(1, 2000);
    assert_non_null(huge);
    dn_buf_reset(&bad);
    assert_int_equal(dn_pb_put_bytes(&bad, 1, huge, DN_PUBKEY_PB_MAX + 1), 0);
    assert_int_equal(dn__noise_payload_parse(bad.data, bad.len, &p), DN_EMALFORMED);
    dn_buf_reset(&bad);
    assert_int_equal(dn_pb_put_bytes(&bad, 1, kpb.data, kpb.len), 0);
    assert_int_equal(dn_pb_put_bytes(&bad, 2, huge, DN_NOISE_SIG_MAX + 1), 0);
    assert_int_equal(dn__noise_payload_parse(bad.data, bad.len, &p), DN_EMALFORMED);
    free(huge);

    dn_buf_free(&bad);
    dn_buf_free(&x);
    dn_buf_free(&ext);
    dn_buf_free(&pl);
    dn_buf_free(&kpb);
    dn_privkey_free(k);
}

/* ---- encrypt_parts ---------------------------------------------------- */

/* A session whose tx side has the same key and nonce as s: what it seals
 * is what s would seal as its next message. */
static void twin_of(const dn_noise_session *s, dn_noise_session *twin)
{
    memset(twin, 0, sizeof *twin);
    assert_int_equal(dn__noise_cipher_init(&twin->tx, s->tx.key, true), 0);
    twin->tx.nonce = s->tx.nonce;
}

/* head || body through encrypt_parts must give the very bytes that
 * dn_noise_encrypt gives for the concatenation under the same key and
 * nonce, advance the nonce by one, and open on the peer. */
static void check_parts(dn_noise_session *tx, dn_noise_session *rx, size_t hlen, size_t blen)
{
    uint8_t *cat = malloc(hlen + blen + 1);
    assert_non_null(cat);
    randombytes_buf(cat, hlen + blen);
    /* Separate allocations, so the parts are not accidentally adjacent. */
    uint8_t *head = malloc(hlen + 1), *body = malloc(blen + 1);
    assert_non_null(head);
    assert_non_null(body);
    memcpy(head, cat, hlen);
    memcpy(body, cat + hlen, blen);

    dn_noise_session twin;
    twin_of(tx, &twin);
    uint64_t n0 = tx->tx.nonce;
    dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT, back = DN_BUF_INIT;
    assert_int_equal(
        dn_noise_encrypt_parts(tx, hlen ? head : NULL, hlen, blen ? body : NULL, blen, &a), 0);
    assert_int_equal(tx->tx.nonce, n0 + 1);
    assert_int_equal(dn_noise_encrypt(&twin, cat, hlen + blen, &b), 0);
    assert_int_equal(a.len, 2 + hlen + blen + 16);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    size_t used = 0;
    assert_int_equal(dn_noise_decrypt(rx, a.data, a.len, &used, &back), 0);
    assert_int_equal(used, a.len);
    assert_int_equal(back.len, hlen + blen);
    if (hlen + blen)
        assert_memory_equal(back.data, cat, hlen + blen);
    dn_noise_session_free(&twin);
    dn_buf_free(&a);
    dn_buf_free(&b);
    dn_buf_free(&back);
    free(cat);
    free(head);
    free(body);
}

static void test_encrypt_parts_roundtrip(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    check_parts(&si, &sr, 12, 1000); /* a yamux header and its data */
    check_parts(&si, &sr, 0, 500);   /* empty head */
    check_parts(&si, &sr, 12, 0);    /* empty body */
    check_parts(&si, &sr, 0, 0);     /* tag only */
    check_parts(&sr, &si, 12, 77);   /* the other direction */
    /* Split points around ChaCha20 (64) and Poly1305 (16) block edges. */
    static const size_t hs_[] = {1, 12, 15, 16, 17, 63, 64, 65, 1000};
    static const size_t bs_[] = {0, 1, 15, 16, 47, 64, 999};
    for (size_t h = 0; h < sizeof hs_ / sizeof hs_[0]; h++)
        for (size_t b = 0; b < sizeof bs_ / sizeof bs_[0]; b++)
            check_parts(&si, &sr, hs_[h], bs_[b]);
    /* Exactly the largest message, however it is divided. */
    check_parts(&si, &sr, 12, DN_NOISE_MAX_PLAINTEXT - 12);
    check_parts(&si, &sr, DN_NOISE_MAX_PLAINTEXT, 0);
    check_parts(&si, &sr, 0, DN_NOISE_MAX_PLAINTEXT);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

static void test_encrypt_parts_limits(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    static uint8_t big[DN_NOISE_MAX_PLAINTEXT + 1];
    dn_buf w = DN_BUF_INIT, back = DN_BUF_INIT;
    assert_int_equal(dn_buf_append(&w, "keep", 4), 0);
    /* One byte over, whichever part carries it, and lengths that would
     * wrap if added naively: refused, nothing written, nonce kept. */
    assert_int_equal(dn_noise_encrypt_parts(&si, big, 12, big, DN_NOISE_MAX_PLAINTEXT - 11, &w),
                     DN_ETOOBIG);
    assert_int_equal(dn_noise_encrypt_parts(&si, big, DN_NOISE_MAX_PLAINTEXT + 1, NULL, 0, &w),
                     DN_ETOOBIG);
    assert_int_equal(dn_noise_encrypt_parts(&si, NULL, 0, big, DN_NOISE_MAX_PLAINTEXT + 1, &w),
                     DN_ETOOBIG);
    assert_int_equal(dn_noise_encrypt_parts(&si, big, DN_NOISE_MAX_PLAINTEXT, big, 1, &w),
                     DN_ETOOBIG);
    assert_int_equal(dn_noise_encrypt_parts(&si, big, 12, big, SIZE_MAX - 5, &w), DN_ETOOBIG);
    assert_int_equal(dn_noise_encrypt_parts(&si, big, SIZE_MAX, big, 1, &w), DN_ETOOBIG);
    /* A length without a pointer. */
    assert_int_equal(dn_noise_encrypt_parts(&si, NULL, 1, big, 1, &w), DN_EINVAL);
    assert_int_equal(dn_noise_encrypt_parts(&si, big, 1, NULL, 1, &w), DN_EINVAL);
    assert_int_equal(w.len, 4);
    assert_int_equal(si.tx.nonce, 0);
    /* The session was not harmed: the next message still opens, appended
     * after what the buffer held. */
    assert_int_equal(dn_noise_encrypt_parts(&si, big, 12, big, DN_NOISE_MAX_PLAINTEXT - 12, &w), 0);
    assert_int_equal(w.len, 4 + 2 + 65535);
    assert_int_equal(w.data[4], 0xff);
    assert_int_equal(w.data[5], 0xff);
    size_t used;
    assert_int_equal(dn_noise_decrypt(&sr, w.data + 4, w.len - 4, &used, &back), 0);
    assert_int_equal(back.len, DN_NOISE_MAX_PLAINTEXT);
    /* The last nonce works, the reserved one is refused. */
    dn_buf_reset(&w);
    dn_buf_reset(&back);
    si.tx.nonce = UINT64_MAX - 1;
    sr.rx.nonce = UINT64_MAX - 1;
    assert_int_equal(dn_noise_encrypt_parts(&si, big, 1, big, 1, &w), 0);
    assert_int_equal(dn_noise_decrypt(&sr, w.data, w.len, &used, &back), 0);
    assert_int_equal(back.len, 2);
    size_t before = w.len;
    assert_int_equal(dn_noise_encrypt_parts(&si, big, 1, big, 1, &w), DN_ELIMIT);
    assert_int_equal(w.len, before);
    /* After free: refused. */
    dn_noise_session_free(&si);
    assert_int_equal(dn_noise_encrypt_parts(&si, big, 1, big, 1, &w), DN_ESTATE);
    dn_buf_free(&w);
    dn_buf_free(&back);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

/* Both calls share one nonce sequence: a mixed stream of messages opens in
 * order on the peer, multi-frame encrypts included. */
static void test_encrypt_parts_interleaved(void **state)
{
    conn c;
    dn_noise_session si, sr;
    sessions(&c, &si, &sr);
    size_t big = DN_NOISE_MAX_PLAINTEXT + 100; /* two frames */
    uint8_t *pt = malloc(big);
    assert_non_null(pt);
    randombytes_buf(pt, big);
    dn_buf w = DN_BUF_INIT, want = DN_BUF_INIT, back = DN_BUF_INIT;
    assert_int_equal(dn_noise_encrypt(&si, pt, 10, &w), 0);
    assert_int_equal(dn_buf_append(&want, pt, 10), 0);
    assert_int_equal(dn_noise_encrypt_parts(&si, pt + 10, 12, pt + 500, 30, &w), 0);
    assert_int_equal(dn_buf_append(&want, pt + 10, 12), 0);
    assert_int_equal(dn_buf_append(&want, pt + 500, 30), 0);
    assert_int_equal(dn_noise_encrypt(&si, pt, big, &w), 0);
    assert_int_equal(dn_buf_append(&want, pt, big), 0);
    assert_int_equal(dn_noise_encrypt_parts(&si, NULL, 0, pt + 7, 3, &w), 0);
    assert_int_equal(dn_buf_append(&want, pt + 7, 3), 0);
    assert_int_equal(dn_noise_encrypt_parts(&si, pt + 1, 5, NULL, 0, &w), 0);
    assert_int_equal(dn_buf_append(&want, pt + 1, 5), 0);
    assert_int_equal(si.tx.nonce, 6);
    size_t used;
    assert_int_equal(dn_noise_decrypt(&sr, w.data, w.len, &used, &back), 0);
    assert_int_equal(used, w.len);
    assert_int_equal(sr.rx.nonce, 6);
    assert_int_equal(back.len, want.len);
    assert_memory_equal(back.data, want.data, want.len);
    free(pt);
    dn_buf_free(&w);
    dn_buf_free(&want);
    dn_buf_free(&back);
    dn_noise_session_free(&si);
    dn_noise_session_free(&sr);
    conn_free(&c);
}

/* ---- host static key and signature cache ------------------------------ */

static const uint8_t ZERO32[32];

/* The three messages between i and r. Returns DN_NOISE_DONE when both
 * finished; otherwise the first failure, with *who set to 'i' or 'r'. */
static int pair_run(dn_noise_handshake *i, dn_noise_handshake *r, char *who)
{
    dn_buf m1 = DN_BUF_INIT, m2 = DN_BUF_INIT, m3 = DN_BUF_INIT;
    int rc;
    *who = 0;
    assert_int_equal(dn_noise_handshake_start(i, &m1), 0);
    if ((rc = feed_all(r, &m1, &m2)) != DN_NOISE_NEED_MORE) {
        *who = 'r';
        goto out;
    }
    if ((rc = feed_all(i, &m2, &m3)) != DN_NOISE_DONE) {
        *who = 'i';
        goto out;
    }
    if ((rc = feed_all(r, &m3, NULL)) != DN_NOISE_DONE)
        *who = 'r';
out:
    dn_buf_free(&m1);
    dn_buf_free(&m2);
    dn_buf_free(&m3);
    return rc;
}

static void test_static_init(void **state)
{
    dn_privkey *k = new_key(DN_KEY_ED25519);
    dn_noise_static st;
    assert_int_equal(dn_noise_static_init(&st, k), 0);
    assert_true(st.ready);
    /* pub is the X25519 public key of priv. */
    uint8_t pub[32];
    crypto_scalarmult_base(pub, st.priv);
    assert_memory_equal(pub, st.pub, 32);
    assert_memory_not_equal(st.priv, ZERO32, 32);
    /* The signature is the identity's over the spec's message. */
    uint8_t msg[24 + 32];
    memcpy(msg, "noise-libp2p-static-key:", 24);
    memcpy(msg + 24, st.pub, 32);
    assert_int_equal(st.siglen, 64);
    assert_int_equal(dn_pubkey_verify(dn_privkey_public(k), msg, sizeof msg, st.sig, st.siglen), 0);
    /* A second one is a different key pair. */
    dn_noise_static st2;
    assert_int_equal(dn_noise_static_init(&st2, k), 0);
    assert_memory_not_equal(st.priv, st2.priv, 32);
    /* Wipe clears the secret and makes it unusable. */
    dn_noise_static_wipe(&st2);
    assert_memory_equal(st2.priv, ZERO32, 32);
    assert_memory_equal(st2.pub, ZERO32, 32);
    assert_int_equal(st2.siglen, 0);
    assert_false(st2.ready);
    dn_noise_static_wipe(NULL); /* harmless */

    dn_noise_handshake hs;
    assert_int_equal(dn_noise_handshake_init_ex(&hs, true, k, &st2, NULL, NULL, NULL, 0),
                     DN_EINVAL);
    dn_noise_static raw;
    memcpy(&raw, &st, sizeof raw);
    raw.ready = false; /* keys present, but never finished */
    assert_int_equal(dn_noise_handshake_init_ex(&hs, false, k, &raw, NULL, NULL, NULL, 0),
                     DN_EINVAL);
    dn_noise_static_wipe(&raw);
    /* No identity: refused, and nothing usable left behind. */
    assert_int_equal(dn_noise_static_init(&st2, NULL), DN_EINVAL);
    assert_false(st2.ready);
    /* A ready static is accepted and becomes the handshake's static key. */
    assert_int_equal(dn_noise_handshake_init_ex(&hs, true, k, &st, NULL, NULL, NULL, 0), 0);
    assert_memory_equal(hs.s_pub, st.pub, 32);
    dn_noise_handshake_free(&hs);
    /* Freeing the handshake wiped its copy, not the host's key. */
    assert_true(st.ready);
    assert_memory_equal(pub, st.pub, 32);
    assert_memory_not_equal(st.priv, ZERO32, 32);
    dn_noise_static_wipe(&st);
    dn_privkey_free(k);
}

/* One initiator static key, two handshakes with two responders: both
 * complete, both responders learn the same static key and the right peer
 * id, and the ephemeral keys still differ. Then the same for a responder
 * reusing its static. */
static void test_static_reused(void **state)
{
    dn_privkey *ik = new_key(DN_KEY_ED25519), *rk1 = new_key(DN_KEY_ED25519),
               *rk2 = new_key(DN_KEY_SECP256K1);
    dn_peerid iid = id_of(ik), r1id = id_of(rk1), r2id = id_of(rk2);
    dn_noise_static st;
    assert_int_equal(dn_noise_static_init(&st, ik), 0);
    dn_noise_handshake i1, i2, r1, r2;
    char who;
    assert_int_equal(dn_noise_handshake_init_ex(&i1, true, ik, &st, NULL, &r1id, YAMUX, 1), 0);
    assert_int_equal(dn_noise_handshake_init(&r1, false, rk1, NULL, YAMUX, 1), 0);
    assert_int_equal(pair_run(&i1, &r1, &who), DN_NOISE_DONE);
    assert_int_equal(dn_noise_handshake_init_ex(&i2, true, ik, &st, NULL, &r2id, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init(&r2, false, rk2, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i2, &r2, &who), DN_NOISE_DONE);
    assert_memory_equal(r1.rs, st.pub, 32);
    assert_memory_equal(r2.rs, st.pub, 32);
    assert_memory_not_equal(r1.re, r2.re, 32); /* ephemeral: fresh each time */
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&r1), &iid));
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&r2), &iid));
    assert_true(dn_pubkey_equal(dn_noise_remote_key(&r1), dn_privkey_public(ik)));
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&i1), &r1id));
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&i2), &r2id));
    assert_string_equal(dn_noise_negotiated_muxer(&r1), "/yamux/1.0.0");
    /* Transport works on both, with different keys. */
    dn_noise_session s1i, s1r, s2i, s2r;
    assert_int_equal(dn_noise_handshake_split(&i1, &s1i, NULL), 0);
    assert_int_equal(dn_noise_handshake_split(&r1, &s1r, NULL), 0);
    assert_int_equal(dn_noise_handshake_split(&i2, &s2i, NULL), 0);
    assert_int_equal(dn_noise_handshake_split(&r2, &s2r, NULL), 0);
    assert_memory_not_equal(s1i.tx.key, s2i.tx.key, 32);
    assert_roundtrip(&s1i, &s1r, 50);
    assert_roundtrip(&s2r, &s2i, 50);
    dn_noise_session_free(&s1i);
    dn_noise_session_free(&s1r);
    dn_noise_session_free(&s2i);
    dn_noise_session_free(&s2r);
    dn_noise_handshake_free(&i1);
    dn_noise_handshake_free(&i2);
    dn_noise_handshake_free(&r1);
    dn_noise_handshake_free(&r2);
    /* The split wiped the handshakes' copies, not the static. */
    assert_true(st.ready);
    assert_memory_not_equal(st.priv, ZERO32, 32);

    /* Responder side: rk1's static serves two initiators. */
    dn_noise_static rst;
    assert_int_equal(dn_noise_static_init(&rst, rk1), 0);
    for (int n = 0; n < 2; n++) {
        assert_int_equal(dn_noise_handshake_init(&i1, true, n ? ik : rk2, &r1id, NULL, 0), 0);
        assert_int_equal(dn_noise_handshake_init_ex(&r1, false, rk1, &rst, NULL, NULL, NULL, 0), 0);
        assert_int_equal(pair_run(&i1, &r1, &who), DN_NOISE_DONE);
        assert_memory_equal(i1.rs, rst.pub, 32);
        assert_true(dn_peerid_equal(dn_noise_remote_peer(&i1), &r1id));
        dn_noise_handshake_free(&i1);
        dn_noise_handshake_free(&r1);
    }
    dn_noise_static_wipe(&rst);
    dn_noise_static_wipe(&st);
    dn_privkey_free(ik);
    dn_privkey_free(rk1);
    dn_privkey_free(rk2);
}

/* A static signed by identity A used under identity B: the payload claims
 * B but carries A's signature, so the peer refuses it, on either side. */
static void test_static_wrong_identity(void **state)
{
    dn_privkey *a = new_key(DN_KEY_ED25519), *b = new_key(DN_KEY_ED25519),
               *peer = new_key(DN_KEY_ED25519);
    dn_noise_static sa;
    assert_int_equal(dn_noise_static_init(&sa, a), 0);
    dn_noise_handshake i, r;
    char who;
    /* Initiator misuses it: the responder fails on message 3. */
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, b, &sa, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init(&r, false, peer, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i, &r, &who), DN_EBADSIG);
    assert_int_equal(who, 'r');
    assert_null(dn_noise_remote_peer(&r));
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);
    /* Responder misuses it: the initiator fails on message 2. */
    assert_int_equal(dn_noise_handshake_init(&i, true, peer, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init_ex(&r, false, b, &sa, NULL, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i, &r, &who), DN_EBADSIG);
    assert_int_equal(who, 'i');
    assert_null(dn_noise_remote_peer(&i));
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);
    /* Under its own identity the same static works. */
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, a, &sa, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init(&r, false, peer, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i, &r, &who), DN_NOISE_DONE);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);
    dn_noise_static_wipe(&sa);
    dn_privkey_free(a);
    dn_privkey_free(b);
    dn_privkey_free(peer);
}

/* A static key replaced through the set_keys test hook after init_ex:
 * the host's stored signature is for the old key, so the handshake must
 * sign the new one instead of sending a signature the peer refuses. */
static void test_static_replaced_by_set_keys(void **state)
{
    dn_privkey *ik = new_key(DN_KEY_ED25519), *rk = new_key(DN_KEY_ED25519);
    dn_noise_static st;
    assert_int_equal(dn_noise_static_init(&st, ik), 0);
    uint8_t s2[32], e2[32];
    randombytes_buf(s2, 32);
    randombytes_buf(e2, 32);
    dn_noise_handshake i, r;
    char who;
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, ik, &st, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn__noise_handshake_set_keys(&i, s2, e2, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init(&r, false, rk, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i, &r, &who), DN_NOISE_DONE);
    uint8_t pub2[32];
    crypto_scalarmult_base(pub2, s2);
    assert_memory_equal(r.rs, pub2, 32);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);
    dn_noise_static_wipe(&st);
    dn_privkey_free(ik);
    dn_privkey_free(rk);
}

/* Message 3 from initiator i with payload pl (built by hand), fed to r
 * after the first two messages went normally. Returns r's result. */
static int msg3_with_payload(dn_noise_handshake *i, dn_noise_handshake *r, const dn_buf *pl)
{
    dn_buf m1 = DN_BUF_INIT, m2 = DN_BUF_INIT, m3 = DN_BUF_INIT, got = DN_BUF_INIT;
    assert_int_equal(dn_noise_handshake_start(i, &m1), 0);
    assert_int_equal(feed_all(r, &m1, &m2), DN_NOISE_NEED_MORE);
    assert_int_equal(dn__noise_read_message(i, m2.data + 2, m2.len - 2, &got), 0);
    raw_msg(i, pl, &m3);
    size_t used;
    int rc = dn_noise_handshake_feed(r, m3.data, m3.len, &used, NULL);
    dn_buf_free(&m1);
    dn_buf_free(&m2);
    dn_buf_free(&m3);
    dn_buf_free(&got);
    return rc;
}

static void test_static_verify_cache(void **state)
{
    dn_verify_cache *vc = malloc(sizeof *vc);
    assert_non_null(vc);
    dn_verify_cache_init(vc);
    dn_privkey *ik = new_key(DN_KEY_ED25519), *rk = new_key(DN_KEY_ED25519);
    dn_peerid iid = id_of(ik);
    dn_noise_static st;
    assert_int_equal(dn_noise_static_init(&st, ik), 0);
    dn_noise_handshake i, r;
    char who;

    /* First handshake: verified and stored. */
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, ik, &st, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init_ex(&r, false, rk, NULL, vc, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i, &r, &who), DN_NOISE_DONE);
    assert_int_equal(vc->misses, 1);
    assert_int_equal(vc->hits, 0);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);

    /* Same initiator static again: a hit, and the handshake still
     * completes with the right peer. */
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, ik, &st, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init_ex(&r, false, rk, NULL, vc, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i, &r, &who), DN_NOISE_DONE);
    assert_int_equal(vc->hits, 1);
    assert_int_equal(vc->misses, 1);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    assert_true(dn_peerid_equal(dn_noise_remote_peer(&r), &iid));
    assert_true(dn_pubkey_equal(dn_noise_remote_key(&r), dn_privkey_public(ik)));
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);

    /* The cached signature with one bit flipped: checked again, refused,
     * not stored. */
    dn_buf pl = DN_BUF_INIT;
    uint8_t bad[DN_SIG_MAX];
    memcpy(bad, st.sig, st.siglen);
    bad[st.siglen / 2] ^= 0x10;
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, ik, &st, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init_ex(&r, false, rk, NULL, vc, NULL, NULL, 0), 0);
    assert_int_equal(dn__noise_payload_build_signed(ik, bad, st.siglen, NULL, 0, &pl), 0);
    assert_int_equal(msg3_with_payload(&i, &r, &pl), DN_EBADSIG);
    assert_null(dn_noise_remote_peer(&r));
    assert_int_equal(vc->hits, 1);
    assert_int_equal(vc->misses, 2);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);

    /* The genuine cached signature replayed over another static key (the
     * initiator's own, fresh one): the cached entry is for st.pub only. */
    dn_buf_reset(&pl);
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, ik, NULL, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init_ex(&r, false, rk, NULL, vc, NULL, NULL, 0), 0);
    assert_memory_not_equal(i.s_pub, st.pub, 32);
    assert_int_equal(dn__noise_payload_build_signed(ik, st.sig, st.siglen, NULL, 0, &pl), 0);
    assert_int_equal(msg3_with_payload(&i, &r, &pl), DN_EBADSIG);
    assert_int_equal(vc->hits, 1);
    assert_int_equal(vc->misses, 3);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);

    /* The cached signature under another claimed identity: the identity
     * key is part of the entry, so no hit, and refused. */
    dn_privkey *mallory = new_key(DN_KEY_ED25519);
    dn_buf_reset(&pl);
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, mallory, &st, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init_ex(&r, false, rk, NULL, vc, NULL, NULL, 0), 0);
    assert_int_equal(dn__noise_payload_build_signed(mallory, st.sig, st.siglen, NULL, 0, &pl), 0);
    assert_int_equal(msg3_with_payload(&i, &r, &pl), DN_EBADSIG);
    assert_int_equal(vc->hits, 1);
    assert_int_equal(vc->misses, 4);
    assert_int_equal(dn_verify_cache_count(vc), 1);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);
    dn_buf_free(&pl);

    /* The genuine one still hits after all that. */
    assert_int_equal(dn_noise_handshake_init_ex(&i, true, ik, &st, NULL, NULL, NULL, 0), 0);
    assert_int_equal(dn_noise_handshake_init_ex(&r, false, rk, NULL, vc, NULL, NULL, 0), 0);
    assert_int_equal(pair_run(&i, &r, &who), DN_NOISE_DONE);
    assert_int_equal(vc->hits, 2);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);

    /* Initiator side with a cache: the responder's static signature hits
     * the second time, yet the expected-peer check still runs on a hit. */
    dn_noise_static rst;
    assert_int_equal(dn_noise_static_init(&rst, rk), 0);
    dn_peerid rid = id_of(rk), wrong = id_of(mallory);
    dn_verify_cache_init(vc);
    for (int n = 0; n < 3; n++) {
        assert_int_equal(
            dn_noise_handshake_init_ex(&i, true, ik, NULL, vc, n == 2 ? &wrong : &rid, NULL, 0), 0);
        assert_int_equal(dn_noise_handshake_init_ex(&r, false, rk, &rst, NULL, NULL, NULL, 0), 0);
        int rc = pair_run(&i, &r, &who);
        assert_int_equal(vc->misses, 1);
        assert_int_equal(vc->hits, (uint64_t)n);
        if (n < 2) {
            assert_int_equal(rc, DN_NOISE_DONE);
            assert_true(dn_peerid_equal(dn_noise_remote_peer(&i), &rid));
        } else {
            assert_int_equal(rc, DN_EPEERID);
            assert_int_equal(who, 'i');
        }
        dn_noise_handshake_free(&i);
        dn_noise_handshake_free(&r);
    }
    dn_noise_static_wipe(&rst);
    dn_noise_static_wipe(&st);
    dn_privkey_free(mallory);
    dn_privkey_free(ik);
    dn_privkey_free(rk);
    free(vc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_h_ck),
        cmocka_unit_test(test_snow_vector),
        cmocka_unit_test(test_handshake_ed25519),
        cmocka_unit_test(test_handshake_secp256k1),
        cmocka_unit_test(test_handshake_ecdsa),
        cmocka_unit_test(test_muxers),
        cmocka_unit_test(test_init_invalid),
        cmocka_unit_test(test_expected_peer),
        cmocka_unit_test(test_forged_signature_msg2),
        cmocka_unit_test(test_forged_signature_msg3),
        cmocka_unit_test(test_bad_payload_msg2),
        cmocka_unit_test(test_flipped_bits),
        cmocka_unit_test(test_split_points),
        cmocka_unit_test(test_trailing_transport),
        cmocka_unit_test(test_short_messages),
        cmocka_unit_test(test_state_errors),
        cmocka_unit_test(test_transport_sizes),
        cmocka_unit_test(test_transport_inplace),
        cmocka_unit_test(test_transport_replay_reorder),
        cmocka_unit_test(test_transport_flipped_bits),
        cmocka_unit_test(test_transport_malformed),
        cmocka_unit_test(test_nonce_exhaustion),
        cmocka_unit_test(test_payload_codec),
        cmocka_unit_test(test_encrypt_parts_roundtrip),
        cmocka_unit_test(test_encrypt_parts_limits),
        cmocka_unit_test(test_encrypt_parts_interleaved),
        cmocka_unit_test(test_static_init),
        cmocka_unit_test(test_static_reused),
        cmocka_unit_test(test_static_wrong_identity),
        cmocka_unit_test(test_static_replaced_by_set_keys),
        cmocka_unit_test(test_static_verify_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
