/* Unit tests: the Identify message codec (src/proto/identify_msg.c) —
 * field numbers of libp2p/specs identify/README.md, round trips, the
 * bounds on counts and lengths, and one publicKey / signedPeerRecord per
 * message. */
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
#include "proto/identify_msg.h"

static void ma(const char *text, dn_multiaddr *out)
{
    assert_int_equal(dn_multiaddr_parse(text, out), 0);
}

/* Decode, failing the test on error. */
static dn__identify_msg *decode_ok(const dn_buf *b)
{
    dn__identify_msg *m = malloc(sizeof *m);
    assert_non_null(m);
    assert_int_equal(dn__identify_decode(b->data, b->len, m), 0);
    return m;
}

static void drop(dn__identify_msg *m)
{
    dn__identify_msg_free(m);
    free(m);
}

static int decode_rc(const dn_buf *b)
{
    dn__identify_msg m;
    int rc = dn__identify_decode(b->data, b->len, &m);
    if (rc) {
        /* nothing owned after an error */
        assert_null(m.public_key);
        assert_null(m.signed_record);
        assert_int_equal(m.nprotocols, 0);
    }
    dn__identify_msg_free(&m);
    return rc;
}

static void test_roundtrip(void **state)
{
    (void)state;
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
    dn__identify_msg *m = calloc(1, sizeof *m);
    assert_non_null(m);
    dn_buf pub = DN_BUF_INIT, enc = DN_BUF_INIT, enc2 = DN_BUF_INIT;
    assert_int_equal(dn_pubkey_to_protobuf(dn_privkey_public(k), &pub), 0);
    m->has_public_key = true;
    m->public_key = pub.data;
    m->public_key_len = pub.len;
    m->has_listen_addrs = true;
    ma("/ip4/127.0.0.1/tcp/4001", &m->listen_addrs[0]);
    ma("/ip6/::1/tcp/4002", &m->listen_addrs[1]);
    m->nlisten_addrs = 2;
    m->has_protocols = true;
    char p1[] = "/ipfs/id/1.0.0", p2[] = "/ipfs/ping/1.0.0";
    m->protocols[0] = p1;
    m->protocols[1] = p2;
    m->nprotocols = 2;
    m->has_observed_addr = true;
    ma("/ip4/10.0.0.1/tcp/5555", &m->observed_addr);
    m->has_protocol_version = true;
    strcpy(m->protocol_version, "ipfs/0.1.0");
    m->has_agent_version = true;
    strcpy(m->agent_version, "dmsnet/test");
    uint8_t rec[] = {1, 2, 3, 4};
    m->has_signed_record = true;
    m->signed_record = rec;
    m->signed_record_len = sizeof rec;
    assert_int_equal(dn__identify_encode(m, &enc), 0);

    /* Field numbers and order on the wire: 1, 2, 2, 3, 3, 4, 5, 6, 8. */
    const uint32_t want[] = {1, 2, 2, 3, 3, 4, 5, 6, 8};
    dn_pb_reader r;
    dn_pb_field f;
    size_t n = 0;
    dn_pb_reader_init(&r, enc.data, enc.len);
    while (dn_pb_next(&r, &f) == 1) {
        assert_true(n < sizeof want / sizeof want[0]);
        assert_int_equal(f.number, want[n++]);
        assert_int_equal(f.wire_type, DN_PB_LEN);
    }
    assert_int_equal(n, sizeof want / sizeof want[0]);

    dn__identify_msg *d = decode_ok(&enc);
    assert_true(d->has_public_key);
    assert_int_equal(d->public_key_len, pub.len);
    assert_memory_equal(d->public_key, pub.data, pub.len);
    assert_int_equal(d->nlisten_addrs, 2);
    assert_true(
        d->listen_addrs[1].len == m->listen_addrs[1].len &&
        !memcmp(d->listen_addrs[1].bytes, m->listen_addrs[1].bytes, d->listen_addrs[1].len));
    assert_int_equal(d->nprotocols, 2);
    assert_string_equal(d->protocols[1], "/ipfs/ping/1.0.0");
    assert_true(d->has_observed_addr);
    assert_int_equal(d->observed_addr.len, m->observed_addr.len);
    assert_string_equal(d->protocol_version, "ipfs/0.1.0");
    assert_string_equal(d->agent_version, "dmsnet/test");
    assert_int_equal(d->signed_record_len, sizeof rec);
    assert_memory_equal(d->signed_record, rec, sizeof rec);
    assert_int_equal(d->dropped_addrs + d->dropped_protocols, 0);
    /* a fixed point */
    assert_int_equal(dn__identify_encode(d, &enc2), 0);
    assert_int_equal(enc2.len, enc.len);
    assert_memory_equal(enc2.data, enc.data, enc.len);
    drop(d);

    /* The empty message: nothing present. */
    dn_buf_reset(&enc);
    dn__identify_msg *e = decode_ok(&enc);
    assert_false(e->has_public_key || e->has_listen_addrs || e->has_protocols ||
                 e->has_observed_addr || e->has_agent_version || e->has_protocol_version ||
                 e->has_signed_record);
    drop(e);

    free(m);
    dn_buf_free(&pub);
    dn_buf_free(&enc);
    dn_buf_free(&enc2);
    dn_privkey_free(k);
}

static void test_bounds(void **state)
{
    (void)state;
    dn_buf b = DN_BUF_INIT;
    dn_multiaddr a;
    ma("/ip4/192.0.2.1/tcp/1", &a);
    for (int i = 0; i < DN_IDENTIFY_MAX_ADDRS + 8; i++)
        dn_pb_put_bytes(&b, 2, a.bytes, a.len);
    dn_pb_put_bytes(&b, 2, "\x04\x01", 2); /* not a multiaddr */
    char name[300];
    for (int i = 0; i < DN_IDENTIFY_MAX_PROTOCOLS + 10; i++) {
        snprintf(name, sizeof name, "/p/%d", i);
        dn_pb_put_string(&b, 3, name);
    }
    dn__identify_msg *m = decode_ok(&b);
    assert_int_equal(m->nlisten_addrs, DN_IDENTIFY_MAX_ADDRS);
    assert_int_equal(m->dropped_addrs, 9);
    assert_int_equal(m->nprotocols, DN_IDENTIFY_MAX_PROTOCOLS);
    assert_int_equal(m->dropped_protocols, 10);
    assert_string_equal(m->protocols[DN_IDENTIFY_MAX_PROTOCOLS - 1], "/p/127");
    drop(m);

    /* Protocol names: empty, control bytes, over-long are dropped; the
     * longest allowed is kept. */
    dn_buf_reset(&b);
    dn_pb_put_bytes(&b, 3, "", 0);
    dn_pb_put_string(&b, 3, "/evil\n/1.0.0");
    dn_pb_put_string(&b, 3, "/esc\x1b[31m");
    dn_pb_put_bytes(&b, 3, "/nul\0x", 6);
    memset(name, 'a', sizeof name);
    dn_pb_put_bytes(&b, 3, name, DN_IDENTIFY_MAX_STRING);     /* one too long */
    dn_pb_put_bytes(&b, 3, name, DN_IDENTIFY_MAX_STRING - 1); /* just fits */
    dn_pb_put_string(&b, 3, "/caf\xc3\xa9/1.0.0");            /* UTF-8 is fine */
    m = decode_ok(&b);
    assert_true(m->has_protocols);
    assert_int_equal(m->nprotocols, 2);
    assert_int_equal(m->dropped_protocols, 5);
    assert_int_equal(strlen(m->protocols[0]), DN_IDENTIFY_MAX_STRING - 1);
    assert_string_equal(m->protocols[1], "/caf\xc3\xa9/1.0.0");
    assert_false(m->has_listen_addrs);
    drop(m);

    /* Strings: cut at the bound and at a NUL; other bytes kept (escaped
     * on output, not here); the last copy wins. */
    dn_buf_reset(&b);
    dn_pb_put_bytes(&b, 6, name, sizeof name);
    dn_pb_put_bytes(&b, 5, "v1\0hidden", 9);
    m = decode_ok(&b);
    assert_int_equal(strlen(m->agent_version), DN_IDENTIFY_MAX_STRING - 1);
    assert_string_equal(m->protocol_version, "v1");
    drop(m);
    dn_pb_put_string(&b, 6, "agent\n\x1b[0m");
    m = decode_ok(&b);
    assert_string_equal(m->agent_version, "agent\n\x1b[0m");
    drop(m);

    /* A protocols field whose names all drop still says "protocols
     * present" (the peer speaks none we could use). */
    dn_buf_reset(&b);
    dn_pb_put_string(&b, 3, "\n");
    m = decode_ok(&b);
    assert_true(m->has_protocols);
    assert_int_equal(m->nprotocols, 0);
    drop(m);

    /* The whole message and the key have bounds. */
    dn_buf_reset(&b);
    uint8_t *big = calloc(1, DN_IDENTIFY_MSG_MAX);
    assert_non_null(big);
    dn_pb_put_bytes(&b, 7, big, DN_IDENTIFY_MSG_MAX - 4); /* unknown field */
    assert_true(b.len <= DN_IDENTIFY_MSG_MAX);
    assert_int_equal(decode_rc(&b), 0);
    dn_pb_put_bytes(&b, 7, big, 4);
    assert_true(b.len > DN_IDENTIFY_MSG_MAX);
    assert_int_equal(decode_rc(&b), DN_ETOOBIG);
    dn_buf_reset(&b);
    dn_pb_put_bytes(&b, 1, big, DN_PUBKEY_PB_MAX + 1);
    assert_int_equal(decode_rc(&b), DN_ETOOBIG);
    free(big);
    dn_buf_free(&b);
}

/* publicKey and signedPeerRecord: once per message. */
static void test_single_record(void **state)
{
    (void)state;
    dn_buf b = DN_BUF_INIT;
    dn_pb_put_string(&b, 3, "/a");
    dn_pb_put_bytes(&b, 8, "rec1", 4);
    dn_pb_put_string(&b, 3, "/b");
    dn__identify_msg *m = decode_ok(&b);
    assert_int_equal(m->signed_record_len, 4);
    drop(m);
    dn_pb_put_bytes(&b, 8, "rec2", 4);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);
    /* an empty record is still a record */
    dn_buf_reset(&b);
    dn_pb_put_bytes(&b, 8, "", 0);
    m = decode_ok(&b);
    assert_true(m->has_signed_record);
    assert_int_equal(m->signed_record_len, 0);
    drop(m);
    dn_pb_put_bytes(&b, 8, "x", 1);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);

    dn_buf_reset(&b);
    dn_pb_put_bytes(&b, 1, "key1", 4);
    dn_pb_put_bytes(&b, 1, "key2", 4);
    assert_int_equal(decode_rc(&b), DN_EMALFORMED);

    /* Wrong wire type for a known field: skipped, not counted as a copy. */
    dn_buf_reset(&b);
    dn_pb_put_varint(&b, 8, 5);
    dn_pb_put_varint(&b, 1, 5);
    dn_pb_put_bytes(&b, 8, "rec", 3);
    m = decode_ok(&b);
    assert_false(m->has_public_key);
    assert_int_equal(m->signed_record_len, 3);
    drop(m);
    dn_buf_free(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    dn_buf b = DN_BUF_INIT;
    dn_pb_put_string(&b, 3, "/ipfs/id/1.0.0");
    dn_pb_put_bytes(&b, 8, "record", 6);
    dn_pb_put_string(&b, 6, "agent");
    /* Every strict prefix that cuts a field is an error with nothing to
     * free; prefixes at field boundaries decode. */
    size_t bounds[] = {0, 16, 24, b.len};
    for (size_t cut = 0; cut <= b.len; cut++) {
        dn_buf t = DN_BUF_INIT;
        dn_buf_append(&t, b.data, cut);
        bool boundary = false;
        for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
            boundary |= bounds[i] == cut;
        int rc = decode_rc(&t);
        if (boundary)
            assert_int_equal(rc, 0);
        else
            assert_true(rc == DN_ETRUNCATED || rc == DN_EMALFORMED);
        dn_buf_free(&t);
    }
    /* observedAddr that is not a multiaddr is ignored */
    dn_buf_reset(&b);
    dn_pb_put_bytes(&b, 4, "\xff\xff", 2);
    dn__identify_msg *m = decode_ok(&b);
    assert_false(m->has_observed_addr);
    drop(m);
    dn_buf_free(&b);

    assert_int_equal(dn__identify_decode(NULL, 1, NULL), DN_EINVAL);
}

static void test_encode_bounds(void **state)
{
    (void)state;
    dn__identify_msg *m = calloc(1, sizeof *m);
    assert_non_null(m);
    dn_buf b = DN_BUF_INIT;
    dn_buf_append(&b, "keep", 4);
    char bad[] = "/bad\n";
    m->protocols[0] = bad;
    m->nprotocols = 1;
    assert_int_equal(dn__identify_encode(m, &b), DN_EINVAL);
    m->nprotocols = 0;
    m->nlisten_addrs = DN_IDENTIFY_MAX_ADDRS + 1;
    assert_int_equal(dn__identify_encode(m, &b), DN_EINVAL);
    m->nlisten_addrs = 0;
    memset(m->agent_version, 'a', sizeof m->agent_version); /* no NUL */
    m->has_agent_version = true;
    assert_int_equal(dn__identify_encode(m, &b), DN_EINVAL);
    m->agent_version[DN_IDENTIFY_MAX_STRING - 1] = '\0';
    /* a message over the decoder's size bound is refused, out unchanged */
    uint8_t *rec = calloc(1, DN_IDENTIFY_MSG_MAX);
    assert_non_null(rec);
    m->has_signed_record = true;
    m->signed_record = rec;
    m->signed_record_len = DN_IDENTIFY_MSG_MAX;
    assert_int_equal(dn__identify_encode(m, &b), DN_ETOOBIG);
    assert_int_equal(b.len, 4);
    m->signed_record_len = 100;
    assert_int_equal(dn__identify_encode(m, &b), 0);
    assert_memory_equal(b.data, "keep", 4); /* appends */
    free(rec);
    free(m);
    dn_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_single_record), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encode_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
