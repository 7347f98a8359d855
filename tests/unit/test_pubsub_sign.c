/* Unit tests: StrictSign and message ids (src/pubsub/sign.c) — the signed
 * bytes of pubsub/README.md "Message Signing", verification against from /
 * key, seqno length, and the js (key protobuf + seqno) and go (from +
 * seqno) message ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pb.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "pubsub/sign.h"

static const uint8_t SEQ[8] = {0, 0, 0, 0, 0, 0, 0x12, 0x34};

static void sign_msg(const dn_privkey *k, const char *topic, const char *data, dn_buf *out,
                     dn__pubsub_message *m)
{
    dn_buf_reset(out);
    assert_int_equal(dn__pubsub_message_sign(k, topic, strlen(topic), (const uint8_t *)data,
                                             strlen(data), 0x1234, out),
                     0);
    assert_int_equal(dn__pubsub_message_decode(out->data, out->len, m), 0);
}

static void test_signed_bytes_layout(void **state)
{
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
    dn_peerid id;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &id), 0);
    dn_buf raw = DN_BUF_INIT, tbs = DN_BUF_INIT, want = DN_BUF_INIT;
    dn__pubsub_message m;
    sign_msg(k, "jobs", "hello", &raw, &m);
    assert_true(m.has_from && m.has_data && m.has_seqno && m.has_signature && m.has_key);
    assert_int_equal(m.seqno.len, 8);
    assert_memory_equal(m.seqno.p, SEQ, 8);
    assert_int_equal(m.from.len, id.len);
    assert_memory_equal(m.from.p, id.bytes, id.len);
    /* "libp2p-pubsub:" + {1: from, 2: data, 3: seqno, 4: topic} */
    dn_buf_append(&want, "libp2p-pubsub:", 14);
    dn_pb_put_bytes(&want, 1, id.bytes, id.len);
    dn_pb_put_bytes(&want, 2, "hello", 5);
    dn_pb_put_bytes(&want, 3, SEQ, 8);
    dn_pb_put_bytes(&want, 4, "jobs", 4);
    assert_int_equal(dn__pubsub_signed_bytes(&m, &tbs), 0);
    assert_int_equal(tbs.len, want.len);
    assert_memory_equal(tbs.data, want.data, want.len);
    /* and the signature is over exactly those bytes */
    assert_int_equal(
        dn_pubkey_verify(dn_privkey_public(k), want.data, want.len, m.signature.p, m.signature.len),
        0);
    /* An empty payload keeps its (empty) data field, as js writes it. */
    dn__pubsub_message e;
    dn_buf raw2 = DN_BUF_INIT;
    sign_msg(k, "jobs", "", &raw2, &e);
    assert_true(e.has_data);
    assert_int_equal(dn__pubsub_message_verify(&e, NULL), 0);
    dn_buf_free(&raw);
    dn_buf_free(&raw2);
    dn_buf_free(&tbs);
    dn_buf_free(&want);
    dn_privkey_free(k);
}

static void test_verify(void **state)
{
    static const dn_key_type types[] = {DN_KEY_ED25519, DN_KEY_SECP256K1, DN_KEY_ECDSA};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        dn_privkey *k, *other;
        assert_int_equal(dn_privkey_generate(types[ti], &k), 0);
        assert_int_equal(dn_privkey_generate(types[ti], &other), 0);
        dn_buf raw = DN_BUF_INIT, raw2 = DN_BUF_INIT;
        dn__pubsub_message m, m2;
        sign_msg(k, "t", "payload", &raw, &m);
        dn_peerid author, id;
        assert_int_equal(dn__pubsub_message_verify(&m, &author), 0);
        dn_peerid_from_pubkey(dn_privkey_public(k), &id);
        assert_true(dn_peerid_equal(&author, &id));

        /* forged data */
        dn__pubsub_message f = m;
        f.data = (dn__ps_span){(const uint8_t *)"payloaD", 7};
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EBADSIG);
        /* forged topic */
        f = m;
        f.topic = (dn__ps_span){(const uint8_t *)"u", 1};
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EBADSIG);
        /* signature of another key, key field of that key: from mismatch */
        sign_msg(other, "t", "payload", &raw2, &m2);
        f = m;
        f.key = m2.key;
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EPEERID);
        /* their signature under our from and key */
        f = m;
        f.signature = m2.signature;
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EBADSIG);
        /* seqno of 7 or 9 bytes, or none */
        uint8_t s9[9] = {0};
        f = m;
        f.seqno.len = 7;
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EMALFORMED);
        f.seqno = (dn__ps_span){s9, 9};
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EMALFORMED);
        f.has_seqno = false;
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EMALFORMED);
        /* no signature, no from */
        f = m;
        f.has_signature = false;
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EMALFORMED);
        f = m;
        f.has_from = false;
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EMALFORMED);
        /* without the key field: works when the id embeds the key
         * (Ed25519, secp256k1); an ECDSA key is too long to be inlined, so
         * its sha2-256 id leaves nothing to verify with */
        f = m;
        f.has_key = false;
        assert_int_equal(dn__pubsub_message_verify(&f, NULL),
                         types[ti] == DN_KEY_ECDSA ? DN_EMALFORMED : 0);
        /* a garbage key */
        f = m;
        f.key = (dn__ps_span){(const uint8_t *)"\x08\x01\x12\x01x", 5};
        assert_int_equal(dn__pubsub_message_verify(&f, NULL), DN_EMALFORMED);
        dn_buf_free(&raw);
        dn_buf_free(&raw2);
        dn_privkey_free(k);
        dn_privkey_free(other);
    }
}

static void test_msgid(void **state)
{
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
    dn_buf raw = DN_BUF_INIT, kpb = DN_BUF_INIT;
    dn__pubsub_message m;
    sign_msg(k, "t", "x", &raw, &m);
    assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(k), &kpb), 0);
    uint8_t id[DN_PUBSUB_MSGID_MAX];
    /* js: PublicKey protobuf (36 bytes for Ed25519) + 8-byte seqno */
    int n = dn__pubsub_msgid(&m, DN_PUBSUB_MSGID_JS, id, sizeof id);
    assert_int_equal(n, (int)kpb.len + 8);
    assert_int_equal(kpb.len, 36);
    assert_memory_equal(id, kpb.data, kpb.len);
    assert_memory_equal(id + kpb.len, SEQ, 8);
    /* the same without the key field (taken from the identity peer id) */
    dn__pubsub_message nk = m;
    nk.has_key = false;
    uint8_t id2[DN_PUBSUB_MSGID_MAX];
    assert_int_equal(dn__pubsub_msgid(&nk, DN_PUBSUB_MSGID_JS, id2, sizeof id2), n);
    assert_memory_equal(id, id2, (size_t)n);
    /* go: from + seqno */
    n = dn__pubsub_msgid(&m, DN_PUBSUB_MSGID_GO, id, sizeof id);
    assert_int_equal(n, (int)m.from.len + 8);
    assert_memory_equal(id, m.from.p, m.from.len);
    /* no seqno, short buffer */
    nk = m;
    nk.has_seqno = false;
    assert_int_equal(dn__pubsub_msgid(&nk, DN_PUBSUB_MSGID_JS, id, sizeof id), DN_EMALFORMED);
    assert_int_equal(dn__pubsub_msgid(&m, DN_PUBSUB_MSGID_JS, id, 20), DN_ETOOBIG);
    /* a hashed (sha2-256) from without a key field has no js id */
    nk = m;
    uint8_t sha[34] = {0x12, 0x20};
    nk.from = (dn__ps_span){sha, sizeof sha};
    nk.has_key = false;
    assert_int_equal(dn__pubsub_msgid(&nk, DN_PUBSUB_MSGID_JS, id, sizeof id), DN_EMALFORMED);
    /* bad sign arguments */
    assert_int_equal(dn__pubsub_message_sign(k, "", 0, NULL, 0, 1, &raw), DN_EINVAL);
    dn_buf_free(&raw);
    dn_buf_free(&kpb);
    dn_privkey_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_bytes_layout),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_msgid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
