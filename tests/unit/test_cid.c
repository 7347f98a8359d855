/* Text CIDs (src/multiformats/cid.c): CIDv0 and CIDv1 name the same
 * multihash (the DHT's provider key); bad input gets a reason. The vectors
 * were printed by js's multiformats (CID.parse(...).toV1(), .multihash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "multiformats/cid.h"

static const char V0[] = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n";
static const char V1[] = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
static const char MH_EMPTY[] =
    "1220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char RAW[] = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
static const char MH_RAW[] = "1220c7d01489080858c500065836c658f847a6ca67c4864619212be4f8200e4bbace";

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void test_v0_and_v1_same_key(void **state)
{
    (void)state;
    dn__cid a, b;
    const char *why = NULL;
    char h[2 * DN__CID_MH_MAX + 1];
    assert_int_equal(dn__cid_parse(V0, strlen(V0), &a, &why), 0);
    assert_int_equal(a.version, 0);
    assert_int_equal(a.codec, DN__CODEC_DAG_PB);
    hex(a.mh, a.mh_len, h);
    assert_string_equal(h, MH_EMPTY);
    assert_int_equal(dn__cid_parse(V1, strlen(V1), &b, &why), 0);
    assert_int_equal(b.version, 1);
    assert_int_equal(b.codec, DN__CODEC_DAG_PB);
    assert_int_equal(a.mh_len, b.mh_len);
    assert_memory_equal(a.mh, b.mh, a.mh_len);
    char text[128];
    assert_int_equal(dn__cid_to_string_v1(&a, text, sizeof text), (int)strlen(V1));
    assert_string_equal(text, V1);

    assert_int_equal(dn__cid_parse(RAW, strlen(RAW), &b, &why), 0);
    assert_int_equal(b.codec, 0x55);
    hex(b.mh, b.mh_len, h);
    assert_string_equal(h, MH_RAW);
    /* base32 upper case is the same CID */
    char up[sizeof RAW];
    for (size_t i = 0; i < sizeof RAW; i++)
        up[i] = (char)(RAW[i] >= 'a' && RAW[i] <= 'z' ? RAW[i] - 32 : RAW[i]);
    assert_int_equal(dn__cid_parse(up, strlen(up), &a, &why), 0);
    assert_memory_equal(a.mh, b.mh, b.mh_len);
}

static void test_other_hash_functions(void **state)
{
    (void)state;
    /* blake2b-256 (0xb220) of whatever: any hash function is a valid key. */
    uint8_t bin[64] = {0x01, 0x55, 0xa0, 0xe4, 0x02, 0x20};
    for (int i = 0; i < 32; i++)
        bin[6 + i] = (uint8_t)i;
    char text[128] = "b";
    assert_true(dn_base32_encode(bin, 38, text + 1, sizeof text - 1) > 0);
    dn__cid c;
    assert_int_equal(dn__cid_parse(text, strlen(text), &c, NULL), 0);
    assert_int_equal(c.mh_code, 0xb220);
    assert_int_equal(c.mh_len, 36);
    assert_memory_equal(c.mh, bin + 2, 36);
}

static void refuse(const char *s, int rc, const char *why_part)
{
    dn__cid c;
    const char *why = NULL;
    assert_int_equal(dn__cid_parse(s, strlen(s), &c, &why), rc);
    assert_non_null(why);
    if (!strstr(why, why_part))
        fail_msg("'%s': reason '%s' lacks '%s'", s, why, why_part);
}

static void test_refusals(void **state)
{
    (void)state;
    refuse("", DN_EMALFORMED, "empty");
    refuse("hello", DN_EUNSUPPORTED, "not a CID");
    refuse("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR10", DN_EMALFORMED, "base58");
    /* a cut-short CIDv1 */
    uint8_t bin[40] = {0x01, 0x55, 0x12, 0x20};
    char text[128] = "b";
    dn_base32_encode(bin, 30, text + 1, sizeof text - 1);
    refuse(text, DN_EMALFORMED, "cut short");
    /* a CIDv1 with a byte after the multihash */
    dn_base32_encode(bin, 37, text + 1, sizeof text - 1);
    refuse(text, DN_EMALFORMED, "follow");
    /* version 2 */
    bin[0] = 0x02;
    dn_base32_encode(bin, 36, text + 1, sizeof text - 1);
    refuse(text, DN_EUNSUPPORTED, "version");
    /* a sha2-256 multihash in base32 (a peer id's shape) is not a CID */
    dn_base32_encode(bin + 2, 34, text + 1, sizeof text - 1);
    refuse(text, DN_EMALFORMED, "bare multihash");
    /* sha2-256 with a 20-byte digest */
    uint8_t bad[] = {0x01, 0x55, 0x12, 0x14, 1,  2,  3,  4,  5,  6,  7,  8,
                     9,    10,   11,   12,   13, 14, 15, 16, 17, 18, 19, 20};
    dn_base32_encode(bad, sizeof bad, text + 1, sizeof text - 1);
    refuse(text, DN_EMALFORMED, "32 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v0_and_v1_same_key),
        cmocka_unit_test(test_other_hash_functions),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
