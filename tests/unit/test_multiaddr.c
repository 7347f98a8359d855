/* Unit tests: multiaddr (multiformats/multiaddr), peer id text forms
 * (libp2p peer-ids spec), multihash / multibase / CIDv1 helpers.
 *
 * Multiaddr vectors: /ip4/127.0.0.1/udp/1234 from the multiaddr README and
 * /ip4/192.0.2.42/tcp/443 from its test/multiaddr.feature; the others were
 * produced by js @multiformats/multiaddr 13.0.3 (bytes, and the string it
 * prints for those bytes). Peer id pairs (base58btc <-> CIDv1 base32) were
 * checked with js @libp2p/peer-id 6; QmYyQSo1... is the spec's example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/peerid.h"
#include "multiformats/multihash.h"

#define ED_B58 "12D3KooW9pte76rpnggcLYkFaawuTEs5DC5axHkg3cK3cewGxxHd"
#define ED_CID "bafzaajaiaejcaabcornvmd5g5bolzmcr6smsje7owdd3xk7lojqydmthdt47iqmi"
#define ED_HEX "0024080112200022745b560fa6e85cbcb051f4992493eeb0c7bbabeb726181b2671cf9f44188"
#define RSA_B58 "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
#define RSA_CID "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"
#define RSA_HEX "12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9"
#define K1_B58 "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY"
#define K1_CID "bafzaajiiaijcca3xo7uzjzcsyilaj6i54cj44qk7kqzpoao5rti2pjx6udtdbp6kte"
#define K1_HEX "002508021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"
/* A CIDv1 with the dag-pb codec (0x70): a valid CID, not a peer id. */
#define DAGPB_CID "bafybeihjgbfpb6h5y66ampe35j6wrvogbykwbpfqnyittz42v46btbt2r4"

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    int n = dn_base16_decode(h, strlen(h), out, cap);
    assert_true(n >= 0);
    return (size_t)n;
}

static const char *tohex(const uint8_t *b, size_t n)
{
    static char buf[2 * DN_MULTIADDR_MAX + 1];
    assert_true(dn_base16_encode(b, n, buf, sizeof(buf)) >= 0);
    return buf;
}

/* ---- peer ids ---- */

static void check_pair(const char *b58, const char *cid, const char *hex)
{
    dn_peerid a, b;
    uint8_t mh[DN_PEERID_MAX];
    size_t n = unhex(hex, mh, sizeof(mh));
    assert_int_equal(dn_peerid_parse(b58, &a), 0);
    assert_int_equal(a.len, n);
    assert_memory_equal(a.bytes, mh, n);
    assert_int_equal(dn_peerid_parse(cid, &b), 0);
    assert_true(dn_peerid_equal(&a, &b));

    char s[DN_PEERID_STR_MAX];
    assert_int_equal(dn_peerid_to_string(&a, s, sizeof(s)), (int)strlen(b58));
    assert_string_equal(s, b58);
    assert_int_equal(dn_peerid_to_cid_string(&a, s, sizeof(s)), (int)strlen(cid));
    assert_string_equal(s, cid);
    assert_int_equal(dn_peerid_to_string(&a, s, strlen(b58)), DN_ETOOBIG);

    /* Multibase base32 upper case ('B') is the same CID. */
    char up[DN_PEERID_STR_MAX];
    for (size_t i = 0; cid[i]; i++)
        up[i] = (char)(cid[i] >= 'a' && cid[i] <= 'z' ? cid[i] - 32 : cid[i]);
    up[strlen(cid)] = '\0';
    assert_int_equal(dn_peerid_parse(up, &b), 0);
    assert_true(dn_peerid_equal(&a, &b));

    /* And so is the CID in base58btc ('z') and base16 ('f'). */
    uint8_t bin[64];
    int bl = dn__cid_encode(DN__CODEC_LIBP2P_KEY, mh, n, bin, sizeof(bin));
    assert_true(bl > 0);
    assert_true(dn__multibase_encode('z', bin, (size_t)bl, s, sizeof(s)) > 0);
    assert_int_equal(dn_peerid_parse(s, &b), 0);
    assert_true(dn_peerid_equal(&a, &b));
    assert_true(dn__multibase_encode('f', bin, (size_t)bl, s, sizeof(s)) > 0);
    assert_int_equal(dn_peerid_parse(s, &b), 0);
    assert_true(dn_peerid_equal(&a, &b));

    assert_int_equal(dn_peerid_from_bytes(mh, n, &b), 0);
    assert_true(dn_peerid_equal(&a, &b));
}

static void test_peerid_pairs(void **state)
{
    (void)state;
    check_pair(ED_B58, ED_CID, ED_HEX);
    check_pair(RSA_B58, RSA_CID, RSA_HEX);
    check_pair(K1_B58, K1_CID, K1_HEX);

    dn_peerid a, b;
    assert_int_equal(dn_peerid_parse(ED_B58, &a), 0);
    assert_int_equal(dn_peerid_parse(RSA_B58, &b), 0);
    assert_false(dn_peerid_equal(&a, &b));
    char sh[16];
    assert_string_equal(dn_peerid_short(&a, sh), "wGxxHd");
    assert_string_equal(dn_peerid_short(&b, sh), "Wjhx5N");
}

static void test_peerid_reject(void **state)
{
    (void)state;
    dn_peerid id;
    assert_int_equal(dn_peerid_parse("", &id), DN_EMALFORMED);
    assert_int_equal(dn_peerid_parse(NULL, &id), DN_EINVAL);
    /* One character short: the digest is shorter than its length. */
    assert_int_equal(dn_peerid_parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5", &id),
                     DN_EMALFORMED);
    assert_int_equal(dn_peerid_parse(RSA_B58 "z", &id), DN_EMALFORMED); /* trailing */
    assert_int_equal(dn_peerid_parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx50", &id),
                     DN_EMALFORMED); /* '0' */
    /* A valid CID of the wrong kind gets its own error and reason. */
    assert_int_equal(dn_peerid_parse(DAGPB_CID, &id), DN_EUNSUPPORTED);
    const char *why = NULL;
    assert_int_equal(dn__peerid_parse_n(DAGPB_CID, strlen(DAGPB_CID), &id, &why), DN_EUNSUPPORTED);
    assert_non_null(strstr(why, "libp2p-key"));
    assert_int_equal(dn_peerid_parse("xyz", &id), DN_EUNSUPPORTED); /* no such multibase */
    assert_int_equal(dn_peerid_parse("b!!!!", &id), DN_EMALFORMED);
    /* Over-long text is refused before decoding. */
    char longs[200];
    memset(longs, 'Q', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    assert_int_equal(dn_peerid_parse(longs, &id), DN_ETOOBIG);

    uint8_t mh[64];
    size_t n = unhex(RSA_HEX, mh, sizeof(mh));
    assert_int_equal(dn_peerid_from_bytes(mh, 0, &id), DN_EMALFORMED);
    assert_int_equal(dn_peerid_from_bytes(mh, n - 1, &id), DN_EMALFORMED); /* short digest */
    mh[1] = 31; /* sha2-256 must be 32 bytes */
    assert_int_equal(dn_peerid_from_bytes(mh, n - 1, &id), DN_EMALFORMED);
    mh[1] = 32;
    mh[0] = 0x13; /* sha2-512: not a peer id hash */
    assert_int_equal(dn_peerid_from_bytes(mh, n, &id), DN_EUNSUPPORTED);
    /* identity: at most 42 bytes of key, and at most DN_PEERID_MAX in all */
    memset(mh, 7, sizeof(mh));
    mh[0] = 0x00, mh[1] = 43;
    assert_int_equal(dn_peerid_from_bytes(mh, 45, &id), DN_ETOOBIG);
    mh[1] = 42;
    assert_int_equal(dn_peerid_from_bytes(mh, 44, &id), 0);
    assert_int_equal(dn_peerid_from_bytes(mh, 49, &id), DN_ETOOBIG);
    mh[1] = 0;
    assert_int_equal(dn_peerid_from_bytes(mh, 2, &id), DN_EMALFORMED);
    /* CIDv0-style bytes in a CID string: version 0 is not a CIDv1. */
    assert_int_equal(dn_peerid_parse("f00", &id), DN_EUNSUPPORTED);
    /* Invalid peer ids do not print. */
    id.len = 0;
    char s[DN_PEERID_STR_MAX];
    assert_int_equal(dn_peerid_to_string(&id, s, sizeof(s)), DN_EINVAL);
    assert_string_equal(dn_peerid_short(&id, (char[16]){0}), "<invalid>");
}

static void test_multihash(void **state)
{
    (void)state;
    uint8_t out[40];
    /* sha2-256("") from FIPS 180-2 examples, as a multihash. */
    assert_int_equal(dn__mh_sha256((const uint8_t *)"", 0, out, sizeof(out)), 34);
    assert_string_equal(tohex(out, 34), "1220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4959"
                                        "91b7852b855");
    assert_int_equal(dn__mh_sha256((const uint8_t *)"", 0, out, 33), DN_ETOOBIG);
    dn__mh h;
    assert_int_equal(dn__mh_decode(out, 34, &h), 0);
    assert_true(h.code == DN__MH_SHA2_256 && h.digest_len == 32 && h.digest == out + 2);
    uint8_t id[8];
    assert_int_equal(dn__mh_encode(DN__MH_IDENTITY, (const uint8_t *)"abc", 3, id, sizeof(id)), 5);
    assert_string_equal(tohex(id, 5), "0003616263");
    assert_int_equal(dn__mh_encode(DN__MH_IDENTITY, (const uint8_t *)"abc", 3, id, 4), DN_ETOOBIG);
    assert_int_equal(dn__mh_decode(id, 4, &h), DN_ETRUNCATED);
    assert_int_equal(dn__mh_decode(id, 0, &h), DN_ETRUNCATED);

    /* Multibase prefixes. */
    char s[32];
    uint8_t b[16];
    static const struct {
        char base;
        const char *text;
    } mb[] = {{'z', "zLUv"}, {'b', "b777q"}, {'f', "fffff"}, {'m', "m//8="}, {'u', "u__8"}};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(
            dn__multibase_encode(mb[i].base, (const uint8_t *)"\xff\xff", 2, s, sizeof(s)),
            (int)strlen(mb[i].text));
        assert_string_equal(s, mb[i].text);
        assert_int_equal(dn__multibase_decode(mb[i].text, strlen(mb[i].text), b, sizeof(b)), 2);
        assert_memory_equal(b, "\xff\xff", 2);
    }
    assert_int_equal(dn__multibase_encode('q', b, 1, s, sizeof(s)), DN_EUNSUPPORTED);
    assert_int_equal(dn__multibase_decode("k51", 3, b, sizeof(b)), DN_EUNSUPPORTED);
    assert_int_equal(dn__multibase_decode("", 0, b, sizeof(b)), DN_EMALFORMED);
}

/* ---- multiaddr: vectors ---- */

static const struct {
    const char *in, *hex, *out;
} ma_vec[] = {
    {"/ip4/127.0.0.1/udp/1234", "047f000001910204d2", "/ip4/127.0.0.1/udp/1234"},
    {"/ip4/192.0.2.42/tcp/443", "04c000022a0601bb", "/ip4/192.0.2.42/tcp/443"},
    {"/ip6/::1/tcp/80", "2900000000000000000000000000000001060050", "/ip6/::1/tcp/80"},
    {"/ip6/::ffff:1.2.3.4/udp/0/quic-v1", "2900000000000000000000ffff0102030491020000cd03",
     "/ip6/::ffff:102:304/udp/0/quic-v1"},
    {"/ip6/2001:DB8:0:0:1:0:0:1/tcp/65535/tls/ws",
     "2920010db800000000000100000000000106ffffc003dd03", "/ip6/2001:db8::1:0:0:1/tcp/65535/tls/ws"},
    {"/ip6/fe80::/tcp/1", "29fe800000000000000000000000000000060001", "/ip6/fe80::/tcp/1"},
    {"/ip6/1:0:0:2:0:0:0:3/tcp/1", "2900010000000000020000000000000003060001",
     "/ip6/1:0:0:2::3/tcp/1"},
    {"/ip6/::/tcp/1", "2900000000000000000000000000000000060001", "/ip6/::/tcp/1"},
    {"/ip6/1:0:1:0:1:0:1:0", "2900010000000100000001000000010000", "/ip6/1:0:1:0:1:0:1:0"},
    {"/dns/example.com/tcp/80/ws", "350b6578616d706c652e636f6d060050dd03",
     "/dns/example.com/tcp/80/ws"},
    {"/dns4/a.b/tcp/1", "3603612e62060001", "/dns4/a.b/tcp/1"},
    {"/dns6/x/udp/2/quic-v1", "37017891020002cd03", "/dns6/x/udp/2/quic-v1"},
    {"/dnsaddr/bootstrap.libp2p.io", "3813626f6f7473747261702e6c69627032702e696f",
     "/dnsaddr/bootstrap.libp2p.io"},
    {"/ip4/1.2.3.4/tcp/4001/p2p/" RSA_B58, "0401020304060fa1a50322" RSA_HEX,
     "/ip4/1.2.3.4/tcp/4001/p2p/" RSA_B58},
    /* the legacy /ipfs name and the CID form both become /p2p/<base58> */
    {"/ipfs/" ED_B58 "/p2p-circuit", "a50326" ED_HEX "a202", "/p2p/" ED_B58 "/p2p-circuit"},
    {"/p2p/" ED_CID, "a50326" ED_HEX, "/p2p/" ED_B58},
    {"/ipfs/" K1_CID "/p2p-circuit/p2p/" RSA_B58, "a50327" K1_HEX "a202a50322" RSA_HEX,
     "/p2p/" K1_B58 "/p2p-circuit/p2p/" RSA_B58},
    {"/ip4/0.0.0.0/tcp/0/wss", "0400000000060000de03", "/ip4/0.0.0.0/tcp/0/wss"},
    /* unix: the path is the rest of the string; js's percent form is read too */
    {"/unix/tmp/dmsnet.sock", "9003102f746d702f646d736e65742e736f636b", "/unix/tmp/dmsnet.sock"},
    {"/unix/%2Ftmp%2Fdmsnet.sock", "9003102f746d702f646d736e65742e736f636b",
     "/unix/tmp/dmsnet.sock"},
    {"/ip4/10.0.0.1/unix/run/a b/p2p/x", "040a00000190030e2f72756e2f6120622f7032702f78",
     "/ip4/10.0.0.1/unix/run/a b/p2p/x"},
    /* a trailing '/' is accepted (go-multiaddr does), never printed */
    {"/ip4/1.2.3.4/tcp/80/", "0401020304060050", "/ip4/1.2.3.4/tcp/80"},
    {"/", "", "/"},
};

static void test_ma_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ma_vec) / sizeof(ma_vec[0]); i++) {
        dn_multiaddr ma, mb;
        char s[DN_MULTIADDR_STR_MAX];
        int rc = dn_multiaddr_parse(ma_vec[i].in, &ma);
        if (rc != 0)
            fail_msg("parse %s: %s", ma_vec[i].in, dn_multiaddr_error());
        assert_string_equal(tohex(ma.bytes, ma.len), ma_vec[i].hex);
        assert_int_equal(dn_multiaddr_to_string(&ma, s, sizeof(s)), (int)strlen(ma_vec[i].out));
        assert_string_equal(s, ma_vec[i].out);
        /* bytes -> same string; string -> same bytes */
        uint8_t bin[DN_MULTIADDR_MAX];
        size_t n = unhex(ma_vec[i].hex, bin, sizeof(bin));
        assert_int_equal(dn_multiaddr_from_bytes(bin, n, &mb), 0);
        assert_int_equal(mb.len, n);
        assert_memory_equal(mb.bytes, bin, n);
        assert_int_equal(dn_multiaddr_parse(s, &mb), 0);
        assert_int_equal(mb.len, ma.len);
        assert_memory_equal(mb.bytes, ma.bytes, ma.len);
        /* too small an output buffer */
        assert_int_equal(dn_multiaddr_to_string(&ma, s, strlen(ma_vec[i].out)), DN_ETOOBIG);
    }
}

/* ---- multiaddr: errors ---- */

static void expect_parse_err(const char *in, int code, const char *msg)
{
    dn_multiaddr ma;
    int rc = dn_multiaddr_parse(in, &ma);
    if (rc != code || strstr(dn_multiaddr_error(), msg) == NULL)
        fail_msg("parse '%s': got %d '%s', want %d '%s'", in, rc, dn_multiaddr_error(), code, msg);
}

static void expect_bytes_err(const char *hex, int code, const char *msg)
{
    uint8_t bin[2 * DN_MULTIADDR_MAX];
    size_t n = unhex(hex, bin, sizeof(bin));
    dn_multiaddr ma;
    int rc = dn_multiaddr_from_bytes(bin, n, &ma);
    if (rc != code || strstr(dn_multiaddr_error(), msg) == NULL)
        fail_msg("bytes %s: got %d '%s', want %d '%s'", hex, rc, dn_multiaddr_error(), code, msg);
}

static void test_ma_parse_errors(void **state)
{
    (void)state;
    expect_parse_err("/ip4/1.2.3.256/tcp/1", DN_EMALFORMED,
                     "component 1 (ip4): invalid IPv4 address '1.2.3.256'");
    expect_parse_err("/ip4/1.2.3", DN_EMALFORMED, "invalid IPv4 address '1.2.3'");
    expect_parse_err("/ip4/01.2.3.4", DN_EMALFORMED, "invalid IPv4 address");
    expect_parse_err("/ip4/1.2.3.4xyz/tcp/1", DN_EMALFORMED, "invalid IPv4 address '1.2.3.4xyz'");
    expect_parse_err("/ip6/::g", DN_EMALFORMED, "component 1 (ip6): invalid IPv6 address '::g'");
    expect_parse_err("/ip6/1:2:3:4:5:6:7:8:9", DN_EMALFORMED, "invalid IPv6 address");
    expect_parse_err("/ip6/fe80::1%eth0", DN_EMALFORMED, "invalid IPv6 address");
    expect_parse_err("/ip4/1.2.3.4/tcp/70000", DN_EMALFORMED,
                     "component 2 (tcp): port '70000' out of range");
    expect_parse_err("/udp/65536", DN_EMALFORMED, "component 1 (udp): port '65536' out of range");
    expect_parse_err("/tcp/99999999999999999999999", DN_EMALFORMED, "out of range");
    expect_parse_err("/tcp/080", DN_EMALFORMED, "port '080' has a leading zero");
    expect_parse_err("/tcp/-1", DN_EMALFORMED, "port '-1' is not a decimal number");
    expect_parse_err("/tcp/8a", DN_EMALFORMED, "port '8a' is not a decimal number");
    expect_parse_err("/foo", DN_EUNSUPPORTED, "component 1: unknown protocol 'foo'");
    expect_parse_err("/ip4/1.2.3.4/quic", DN_EUNSUPPORTED, "component 2: unknown protocol 'quic'");
    expect_parse_err("/ip4", DN_EMALFORMED, "component 1: missing value for 'ip4'");
    expect_parse_err("/ip4/", DN_EMALFORMED, "missing value for 'ip4'");
    expect_parse_err("/ip4//tcp/1", DN_EMALFORMED, "missing value for 'ip4'");
    expect_parse_err("/ip4/1.2.3.4/tcp", DN_EMALFORMED, "component 2: missing value for 'tcp'");
    expect_parse_err("/dns4", DN_EMALFORMED, "missing value for 'dns4'");
    expect_parse_err("/p2p", DN_EMALFORMED, "missing value for 'p2p'");
    expect_parse_err("/unix", DN_EMALFORMED, "missing value for 'unix'");
    /* trailing garbage after a complete address */
    expect_parse_err("/ip4/1.2.3.4/tcp/80/garbage", DN_EUNSUPPORTED,
                     "component 3: unknown protocol 'garbage'");
    expect_parse_err("/ip4/1.2.3.4/tcp/80/ws/x/y", DN_EUNSUPPORTED, "unknown protocol 'x'");
    expect_parse_err("", DN_EMALFORMED, "must start with '/'");
    expect_parse_err("ip4/1.2.3.4", DN_EMALFORMED, "must start with '/'");
    expect_parse_err("//ip4/1.2.3.4", DN_EMALFORMED, "component 1: empty protocol name");
    expect_parse_err("/ip4/1.2.3.4//tcp/1", DN_EMALFORMED, "component 2: empty protocol name");
    expect_parse_err("/p2p/QmNotAPeerId", DN_EMALFORMED, "component 1 (p2p): invalid peer id");
    expect_parse_err("/p2p/" DAGPB_CID, DN_EUNSUPPORTED, "not libp2p-key");
    expect_parse_err("/dns/a\xff", DN_EMALFORMED, "component 1 (dns): value is not valid UTF-8");
    expect_parse_err("/unix/%2Ftmp%2", DN_EMALFORMED, "bad percent-encoding");
    expect_parse_err("/unix/%2Fa%00b", DN_EMALFORMED, "NUL");
    /* Names are printed safely (no control characters in logs). */
    expect_parse_err("/fo\x01o", DN_EUNSUPPORTED, "unknown protocol 'fo?o'");

    /* Size limits: text and binary. */
    char *big = malloc(3000);
    assert_non_null(big);
    memset(big, 'a', 2999);
    big[0] = '/';
    big[2999] = '\0';
    expect_parse_err(big, DN_ETOOBIG, "longer than 2047");
    /* 150 * "/dns/abcdefgh": 1950 characters, but 1500 bytes > 1024. */
    big[0] = '\0';
    for (int i = 0; i < 150; i++)
        strcat(big, "/dns/abcdefgh");
    expect_parse_err(big, DN_ETOOBIG, "multiaddr longer than 1024 bytes");
    free(big);

    dn_multiaddr ma;
    assert_int_equal(dn_multiaddr_parse(NULL, &ma), DN_EINVAL);
}

static void test_ma_bytes_errors(void **state)
{
    (void)state;
    expect_bytes_err("047f0000", DN_ETRUNCATED, "component 1 (ip4): truncated value");
    expect_bytes_err("047f000001910204", DN_ETRUNCATED, "component 2 (udp): truncated value");
    expect_bytes_err("350a6162", DN_ETRUNCATED,
                     "component 1 (dns): value length 10 exceeds the 2 bytes left");
    expect_bytes_err("35ffffffffffffffff7f", DN_ETRUNCATED, "exceeds the 0 bytes left");
    expect_bytes_err("35", DN_ETRUNCATED, "component 1 (dns): truncated value length");
    expect_bytes_err("3580", DN_ETRUNCATED, "truncated value length");
    expect_bytes_err("358000", DN_EMALFORMED, "malformed value length varint");
    expect_bytes_err("0400000000ff", DN_ETRUNCATED, "component 2: truncated protocol code");
    expect_bytes_err("8400", DN_EMALFORMED, "component 1: malformed protocol code varint");
    expect_bytes_err("21", DN_EUNSUPPORTED, "component 1: unknown protocol code 0x21");
    expect_bytes_err("cc03", DN_EUNSUPPORTED, "unknown protocol code 0x1cc"); /* old quic */
    expect_bytes_err("3500", DN_EMALFORMED, "component 1 (dns): empty value");
    expect_bytes_err("3503612f62", DN_EMALFORMED, "value contains '/'");
    expect_bytes_err("36026100", DN_EMALFORMED, "NUL");
    expect_bytes_err("3801ff", DN_EMALFORMED, "not valid UTF-8");
    expect_bytes_err("3802c0af", DN_EMALFORMED, "not valid UTF-8");   /* overlong '/' */
    expect_bytes_err("3803eda080", DN_EMALFORMED, "not valid UTF-8"); /* surrogate */
    expect_bytes_err("a5030412020000", DN_EMALFORMED, "component 1 (p2p): invalid peer id");
    expect_bytes_err("a503021220", DN_EMALFORMED, "digest is shorter than its length says");
    expect_bytes_err("a503221320" RSA_HEX, DN_EUNSUPPORTED, "neither identity nor sha2-256");
    expect_bytes_err("900303616263", DN_EUNSUPPORTED, "relative path");
    expect_bytes_err("9003022f61060050", DN_EUNSUPPORTED, "must be the last component");
    /* "/%2Fx" would print as "/unix/%2Fx", which reads back as "//x" */
    expect_bytes_err("9003052f25324678", DN_EUNSUPPORTED, "ambiguous");
    expect_parse_err("/unix/%2F%252Fx", DN_EUNSUPPORTED, "ambiguous");
    uint8_t ok[] = {0x90, 0x03, 0x07, '/', '%', '2', 'F', 'x', '/', 'y'};
    dn_multiaddr um;
    char us[64];
    assert_int_equal(dn_multiaddr_from_bytes(ok, sizeof(ok), &um), 0);
    assert_true(dn_multiaddr_to_string(&um, us, sizeof(us)) > 0);
    assert_string_equal(us, "/unix/%2Fx/y");
    assert_int_equal(dn_multiaddr_parse(us, &um), 0);
    assert_int_equal(um.len, sizeof(ok));
    assert_memory_equal(um.bytes, ok, sizeof(ok));
    /* 1025 bytes */
    char hex[2 * 1100 + 1] = "";
    for (int i = 0; i < 205; i++)
        strcat(hex, "0401020304");
    expect_bytes_err(hex, DN_ETOOBIG, "exceeds 1024");
    /* 400 x /p2p-circuit: 800 bytes, but 4800 characters of text */
    hex[0] = '\0';
    for (int i = 0; i < 400; i++)
        strcat(hex, "a202");
    expect_bytes_err(hex, DN_ETOOBIG, "text form exceeds 2047");

    dn_multiaddr ma;
    assert_int_equal(dn_multiaddr_from_bytes(NULL, 1, &ma), DN_EINVAL);
    assert_int_equal(dn_multiaddr_from_bytes(NULL, 0, &ma), 0);
    assert_int_equal(ma.len, 0);
}

/* ---- multiaddr: components, append, peer id, strip ---- */

static void test_ma_components(void **state)
{
    (void)state;
    dn_multiaddr ma;
    assert_int_equal(dn_multiaddr_parse("/ip4/1.2.3.4/tcp/80/p2p/" RSA_B58, &ma), 0);
    size_t off = 0;
    dn_ma_component c;
    assert_int_equal(dn_multiaddr_next(&ma, &off, &c), 1);
    assert_int_equal(c.code, DN_MA_IP4);
    assert_int_equal(c.value_len, 4);
    assert_memory_equal(c.value, "\x01\x02\x03\x04", 4);
    assert_int_equal(dn_multiaddr_next(&ma, &off, &c), 1);
    assert_int_equal(c.code, DN_MA_TCP);
    assert_memory_equal(c.value, "\x00\x50", 2);
    assert_int_equal(dn_multiaddr_next(&ma, &off, &c), 1);
    assert_int_equal(c.code, DN_MA_P2P);
    assert_int_equal(c.value_len, 34);
    assert_int_equal(dn_multiaddr_next(&ma, &off, &c), 0);
    assert_int_equal(off, ma.len);
    /* A damaged buffer is reported, not over-read. */
    ma.len -= 1;
    off = 0;
    int rc;
    while ((rc = dn_multiaddr_next(&ma, &off, &c)) == 1)
        ;
    assert_int_equal(rc, DN_ETRUNCATED);

    assert_string_equal(dn_ma_proto_name(DN_MA_TCP), "tcp");
    assert_string_equal(dn_ma_proto_name(DN_MA_P2P), "p2p");
    assert_string_equal(dn_ma_proto_name(0x01cd), "quic-v1");
    assert_string_equal(dn_ma_proto_name(DN_MA_P2P_CIRCUIT), "p2p-circuit");
    assert_null(dn_ma_proto_name(0x01cc));
    assert_null(dn_ma_proto_name(0x21));
}

static void test_ma_append(void **state)
{
    (void)state;
    dn_multiaddr ma = {0}, want;
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_IP4, (const uint8_t *)"\x7f\0\0\x01", 4), 0);
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_TCP, (const uint8_t *)"\x0f\xa1", 2), 0);
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_WS, NULL, 0), 0);
    uint8_t mh[64];
    size_t n = unhex(ED_HEX, mh, sizeof(mh));
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_P2P, mh, n), 0);
    assert_int_equal(dn_multiaddr_parse("/ip4/127.0.0.1/tcp/4001/ws/p2p/" ED_B58, &want), 0);
    assert_int_equal(ma.len, want.len);
    assert_memory_equal(ma.bytes, want.bytes, ma.len);

    size_t before = ma.len;
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_TCP, (const uint8_t *)"\x01", 1), DN_EINVAL);
    assert_int_equal(dn_multiaddr_append(&ma, 0x21, (const uint8_t *)"\0\1", 2), DN_EUNSUPPORTED);
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_P2P, mh, n - 1), DN_EMALFORMED);
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_DNS, (const uint8_t *)"a/b", 3), DN_EMALFORMED);
    assert_int_equal(dn_multiaddr_append(&ma, DN_MA_DNS, NULL, 0), DN_EMALFORMED);
    assert_int_equal(ma.len, before); /* failures leave it unchanged */

    /* Nothing may follow a unix path. */
    dn_multiaddr u = {0};
    assert_int_equal(dn_multiaddr_append(&u, DN_MA_UNIX, (const uint8_t *)"/tmp/s", 6), 0);
    assert_int_equal(dn_multiaddr_append(&u, DN_MA_P2P, mh, n), DN_EUNSUPPORTED);

    /* Fill up: the 1024-byte limit holds. */
    dn_multiaddr full = {0};
    int rc;
    int count = 0;
    while ((rc = dn_multiaddr_append(&full, DN_MA_DNS, (const uint8_t *)"abcdefghij", 10)) == 0)
        count++;
    assert_int_equal(rc, DN_ETOOBIG);
    assert_int_equal(count, 1024 / 12);
    assert_int_equal(full.len, (size_t)count * 12);
}

static void test_ma_peerid_strip(void **state)
{
    (void)state;
    dn_multiaddr ma, out;
    dn_peerid id, want;
    assert_int_equal(
        dn_multiaddr_parse("/ip4/1.2.3.4/tcp/1/p2p/" K1_B58 "/p2p-circuit/p2p/" ED_B58, &ma), 0);
    assert_int_equal(dn_multiaddr_peerid(&ma, &id), 0);
    assert_int_equal(dn_peerid_parse(ED_B58, &want), 0);
    assert_true(dn_peerid_equal(&id, &want));

    char s[DN_MULTIADDR_STR_MAX];
    dn_multiaddr_strip_p2p(&ma, &out);
    assert_true(dn_multiaddr_to_string(&out, s, sizeof(s)) > 0);
    assert_string_equal(s, "/ip4/1.2.3.4/tcp/1/p2p/" K1_B58 "/p2p-circuit");
    /* Without a trailing /p2p: unchanged (in place too). */
    dn_multiaddr_strip_p2p(&out, &out);
    assert_true(dn_multiaddr_to_string(&out, s, sizeof(s)) > 0);
    assert_string_equal(s, "/ip4/1.2.3.4/tcp/1/p2p/" K1_B58 "/p2p-circuit");
    /* Last /p2p anywhere is the relay's here. */
    assert_int_equal(dn_multiaddr_peerid(&out, &id), 0);
    assert_int_equal(dn_peerid_parse(K1_B58, &want), 0);
    assert_true(dn_peerid_equal(&id, &want));

    assert_int_equal(dn_multiaddr_parse("/ip4/1.2.3.4/tcp/1", &ma), 0);
    assert_int_equal(dn_multiaddr_peerid(&ma, &id), DN_ENOTFOUND);
    dn_multiaddr_strip_p2p(&ma, &out);
    assert_int_equal(out.len, ma.len);
    assert_int_equal(dn_multiaddr_parse("/p2p/" RSA_B58, &ma), 0);
    dn_multiaddr_strip_p2p(&ma, &ma);
    assert_int_equal(ma.len, 0);
}

/* Random binary multiaddrs built from valid components must print and
 * re-parse to identical bytes. */
static void test_ma_random_roundtrip(void **state)
{
    (void)state;
    srand(99);
    uint8_t mh[64];
    size_t mhn = unhex(K1_HEX, mh, sizeof(mh));
    for (int iter = 0; iter < 3000; iter++) {
        dn_multiaddr ma = {0};
        int comps = 1 + rand() % 6;
        for (int k = 0; k < comps; k++) {
            uint8_t v[32];
            for (size_t i = 0; i < sizeof(v); i++)
                v[i] = (uint8_t)rand();
            switch (rand() % 9) {
            case 0: dn_multiaddr_append(&ma, DN_MA_IP4, v, 4); break;
            case 1:
                if (rand() % 2)
                    memset(v + rand() % 8 * 2, 0, (size_t)(rand() % 8) * 2);
                dn_multiaddr_append(&ma, DN_MA_IP6, v, 16);
                break;
            case 2: dn_multiaddr_append(&ma, rand() % 2 ? DN_MA_TCP : DN_MA_UDP, v, 2); break;
            case 3:
                for (size_t i = 0; i < 8; i++)
                    v[i] = (uint8_t)('a' + v[i] % 26);
                dn_multiaddr_append(&ma, DN_MA_DNS + (uint32_t)(rand() % 4), v, 1 + v[9] % 8);
                break;
            case 4:
                mh[mhn - 1] = v[0];
                dn_multiaddr_append(&ma, DN_MA_P2P, mh, mhn);
                break;
            case 5: dn_multiaddr_append(&ma, DN_MA_QUIC_V1, NULL, 0); break;
            case 6: dn_multiaddr_append(&ma, DN_MA_WS + (uint32_t)(rand() % 2), NULL, 0); break;
            case 7: dn_multiaddr_append(&ma, DN_MA_P2P_CIRCUIT, NULL, 0); break;
            default: dn_multiaddr_append(&ma, DN_MA_UNIX, (const uint8_t *)"/run/x y", 8); break;
            }
        }
        char s[DN_MULTIADDR_STR_MAX];
        dn_multiaddr back;
        assert_true(dn_multiaddr_to_string(&ma, s, sizeof(s)) > 0);
        if (dn_multiaddr_parse(s, &back) != 0)
            fail_msg("reparse %s: %s", s, dn_multiaddr_error());
        assert_int_equal(back.len, ma.len);
        assert_memory_equal(back.bytes, ma.bytes, ma.len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peerid_pairs),    cmocka_unit_test(test_peerid_reject),
        cmocka_unit_test(test_multihash),       cmocka_unit_test(test_ma_vectors),
        cmocka_unit_test(test_ma_parse_errors), cmocka_unit_test(test_ma_bytes_errors),
        cmocka_unit_test(test_ma_components),   cmocka_unit_test(test_ma_append),
        cmocka_unit_test(test_ma_peerid_strip), cmocka_unit_test(test_ma_random_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
