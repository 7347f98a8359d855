/* Unit tests: unsigned varint (multiformats unsigned-varint spec) and the
 * base encodings (RFC 4648 section 10 vectors; base58btc vectors from
 * draft-msporny-base58, cross-checked with js multiformats). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

/* ---- uvarint ---- */

typedef struct {
    uint64_t v;
    size_t n;
    uint8_t b[DN_UVARINT_MAX];
} varint_vec;

static const varint_vec varint_vectors[] = {
    {0, 1, {0x00}},
    {1, 1, {0x01}},
    {127, 1, {0x7f}},
    {128, 2, {0x80, 0x01}},
    {255, 2, {0xff, 0x01}},
    {300, 2, {0xac, 0x02}},
    {16384, 3, {0x80, 0x80, 0x01}},
    {UINT64_C(0x7fffffffffffffff), 9, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
};

static void test_uvarint_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(varint_vectors) / sizeof(varint_vectors[0]); i++) {
        const varint_vec *t = &varint_vectors[i];
        uint8_t buf[DN_UVARINT_MAX + 1];
        memset(buf, 0xee, sizeof(buf));
        assert_int_equal(dn_uvarint_encode(t->v, buf), t->n);
        assert_memory_equal(buf, t->b, t->n);
        assert_int_equal(buf[t->n], 0xee); /* nothing written past the end */
        assert_int_equal(dn_uvarint_len(t->v), t->n);
        uint64_t v = 12345;
        assert_int_equal(dn_uvarint_decode(t->b, t->n, &v), (int)t->n);
        assert_true(v == t->v);
        /* Trailing bytes are left alone. */
        uint8_t more[DN_UVARINT_MAX + 2];
        memcpy(more, t->b, t->n);
        more[t->n] = 0x05;
        assert_int_equal(dn_uvarint_decode(more, t->n + 1, &v), (int)t->n);
        assert_true(v == t->v);
        /* Every proper prefix is truncated. */
        for (size_t k = 0; k < t->n; k++)
            assert_int_equal(dn_uvarint_decode(t->b, k, &v), DN_ETRUNCATED);
    }
}

static void test_uvarint_reject(void **state)
{
    (void)state;
    uint64_t v;
    /* Non-minimal encodings (the spec requires the shortest form). */
    static const uint8_t nm1[] = {0x80, 0x00};
    static const uint8_t nm2[] = {0x81, 0x80, 0x00};
    static const uint8_t nm3[] = {0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_int_equal(dn_uvarint_decode(nm1, sizeof(nm1), &v), DN_EMALFORMED);
    assert_int_equal(dn_uvarint_decode(nm2, sizeof(nm2), &v), DN_EMALFORMED);
    assert_int_equal(dn_uvarint_decode(nm3, sizeof(nm3), &v), DN_EMALFORMED);
    /* More than 9 bytes (63 bits) is refused, even with the end in sight. */
    static const uint8_t ten[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(dn_uvarint_decode(ten, sizeof(ten), &v), DN_ETOOBIG);
    static const uint8_t ten0[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(dn_uvarint_decode(ten0, sizeof(ten0), &v), DN_ETOOBIG);
    /* Truncated: continuation bit on the last available byte. */
    static const uint8_t tr[] = {0xac};
    assert_int_equal(dn_uvarint_decode(tr, sizeof(tr), &v), DN_ETRUNCATED);
    assert_int_equal(dn_uvarint_decode(tr, 0, &v), DN_ETRUNCATED);
}

static void test_uvarint_roundtrip(void **state)
{
    (void)state;
    srand(7);
    for (int i = 0; i < 10000; i++) {
        uint64_t v = ((uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ (uint64_t)rand());
        v >>= rand() % 63 + 1; /* all sizes, and < 2^63 */
        uint8_t buf[DN_UVARINT_MAX];
        size_t n = dn_uvarint_encode(v, buf);
        uint64_t w;
        assert_int_equal(dn_uvarint_decode(buf, n, &w), (int)n);
        assert_true(v == w);
        assert_int_equal(dn_uvarint_len(v), n);
    }
}

/* ---- RFC 4648 section 10 ---- */

static const char *const rfc_in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const rfc_b16[] = {"",         "66",         "666f",        "666f6f",
                                      "666f6f62", "666f6f6261", "666f6f626172"};
static const char *const rfc_b32_padded[] = {
    "", "MY======", "MZXQ====", "MZXW6===", "MZXW6YQ=", "MZXW6YTB", "MZXW6YTBOI======"};
static const char *const rfc_b32[] = {"",        "my",       "mzxq",      "mzxw6",
                                      "mzxw6yq", "mzxw6ytb", "mzxw6ytboi"};
static const char *const rfc_b64[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const rfc_b64url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

typedef int (*enc_fn)(const uint8_t *, size_t, char *, size_t);
typedef int (*dec_fn)(const char *, size_t, uint8_t *, size_t);

static void check_enc(enc_fn enc, size_t room, const char *in, const char *want)
{
    char out[64];
    assert_true(room <= sizeof(out));
    memset(out, 'X', sizeof(out));
    assert_int_equal(enc((const uint8_t *)in, strlen(in), out, room), (int)strlen(want));
    assert_string_equal(out, want);
    /* One byte less than needed (the NUL) is refused. */
    assert_int_equal(enc((const uint8_t *)in, strlen(in), out, strlen(want)), DN_ETOOBIG);
}

static void check_dec(dec_fn dec, const char *in, const char *want)
{
    uint8_t out[64];
    assert_int_equal(dec(in, strlen(in), out, sizeof(out)), (int)strlen(want));
    assert_memory_equal(out, want, strlen(want));
    if (strlen(want) > 0)
        assert_int_equal(dec(in, strlen(in), out, strlen(want) - 1), DN_ETOOBIG);
}

static void test_rfc4648(void **state)
{
    (void)state;
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(rfc_in[i]);
        check_enc(dn_base16_encode, dn_base16_enc_len(n), rfc_in[i], rfc_b16[i]);
        check_enc(dn_base32_encode, dn_base32_enc_len(n), rfc_in[i], rfc_b32[i]);
        check_enc(dn_base64_encode, dn_base64_enc_len(n), rfc_in[i], rfc_b64[i]);
        check_enc(dn_base64url_encode, dn_base64_enc_len(n), rfc_in[i], rfc_b64url[i]);

        check_dec(dn_base16_decode, rfc_b16[i], rfc_in[i]);
        check_dec(dn_base32_decode, rfc_b32[i], rfc_in[i]);
        check_dec(dn_base32_decode, rfc_b32_padded[i], rfc_in[i]); /* upper case, padded */
        check_dec(dn_base64_decode, rfc_b64[i], rfc_in[i]);
        check_dec(dn_base64_decode, rfc_b64url[i], rfc_in[i]); /* unpadded accepted */
        check_dec(dn_base64url_decode, rfc_b64url[i], rfc_in[i]);
        check_dec(dn_base64url_decode, rfc_b64[i], rfc_in[i]); /* padded accepted */
    }
    /* base16 decode accepts upper case (RFC 4648 writes it so). */
    check_dec(dn_base16_decode, "666F6F626172", "foobar");
}

static void test_base64_alphabets(void **state)
{
    (void)state;
    static const uint8_t in[] = {0xfb, 0xff, 0xbf};
    char out[8];
    assert_int_equal(dn_base64_encode(in, 3, out, sizeof(out)), 4);
    assert_string_equal(out, "+/+/");
    assert_int_equal(dn_base64url_encode(in, 3, out, sizeof(out)), 4);
    assert_string_equal(out, "-_-_");
    uint8_t b[4];
    assert_int_equal(dn_base64_decode("-_-_", 4, b, sizeof(b)), DN_EMALFORMED);
    assert_int_equal(dn_base64url_decode("+/+/", 4, b, sizeof(b)), DN_EMALFORMED);
}

static void test_base_reject(void **state)
{
    (void)state;
    uint8_t out[64];
#define BAD(fn, s) assert_int_equal(fn(s, strlen(s), out, sizeof(out)), DN_EMALFORMED)
    BAD(dn_base16_decode, "6");          /* odd length */
    BAD(dn_base16_decode, "6g");         /* not hex */
    BAD(dn_base16_decode, "66 6f");      /* space */
    BAD(dn_base32_decode, "m");          /* impossible length (1 mod 8) */
    BAD(dn_base32_decode, "mzx");        /* impossible length (3 mod 8) */
    BAD(dn_base32_decode, "mzxw6y");     /* impossible length (6 mod 8) */
    BAD(dn_base32_decode, "m1");         /* '1' is not in the alphabet */
    BAD(dn_base32_decode, "m8");         /* nor '8' */
    BAD(dn_base32_decode, "mz");         /* non-zero leftover bits */
    BAD(dn_base32_decode, "MY=====");    /* wrong padding length */
    BAD(dn_base32_decode, "MZXQ======"); /* too much padding */
    BAD(dn_base64_decode, "Z");          /* 1 mod 4 */
    BAD(dn_base64_decode, "Zh==");       /* non-zero leftover bits */
    BAD(dn_base64_decode, "Zg=");        /* padding to a non-multiple of 4 */
    BAD(dn_base64_decode, "Zg====");     /* too much padding */
    BAD(dn_base64_decode, "Zg==Zg==");   /* padding in the middle */
    BAD(dn_base64_decode, "Zm9v!");
    BAD(dn_base58_decode, "0"); /* 0, O, I, l are not base58 */
    BAD(dn_base58_decode, "O");
    BAD(dn_base58_decode, "I");
    BAD(dn_base58_decode, "2NEpo7TZRRrLZSi2l");
    BAD(dn_base58_decode, "2NEpo 7TZ");
#undef BAD
    /* An embedded NUL is a bad character, not the end. */
    assert_int_equal(dn_base58_decode("2N\0E", 4, out, sizeof(out)), DN_EMALFORMED);
    assert_int_equal(dn_base16_decode("66\0\0", 4, out, sizeof(out)), DN_EMALFORMED);
}

/* ---- base58btc ---- */

static void test_base58_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *hex, *b58;
    } v[] = {
        {"48656c6c6f20576f726c6421", "2NEpo7TZRRrLZSi2U"}, /* "Hello World!" */
        {"54686520717569636b2062726f776e20666f78206a756d7073206f76657220746865206c617a7920646f67"
         "2e",
         "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"},
        {"0000287fb4cd", "11233QC4"}, /* leading zero bytes -> '1' */
        {"00", "1"},
        {"000000", "111"},
        {"01", "2"},
        {"39", "z"},
        {"ffff", "LUv"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t bin[64];
        int n = dn_base16_decode(v[i].hex, strlen(v[i].hex), bin, sizeof(bin));
        assert_true(n >= 0);
        char s[128];
        assert_int_equal(dn_base58_encode(bin, (size_t)n, s, dn_base58_enc_len((size_t)n)),
                         (int)strlen(v[i].b58));
        assert_string_equal(s, v[i].b58);
        assert_int_equal(dn_base58_encode(bin, (size_t)n, s, strlen(v[i].b58)), DN_ETOOBIG);
        uint8_t back[64];
        assert_int_equal(dn_base58_decode(v[i].b58, strlen(v[i].b58), back, sizeof(back)), n);
        assert_memory_equal(back, bin, (size_t)n);
        if (n > 0)
            assert_int_equal(dn_base58_decode(v[i].b58, strlen(v[i].b58), back, (size_t)n - 1),
                             DN_ETOOBIG);
    }
}

static void test_base58_bounds(void **state)
{
    (void)state;
    /* Quadratic work is bounded: long inputs are refused outright. */
    size_t n = 5000;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, 'z', n);
    uint8_t out[4096];
    assert_int_equal(dn_base58_decode(s, n, out, sizeof(out)), DN_ETOOBIG);
    /* 4096 characters are still decoded. */
    assert_true(dn_base58_decode(s, 4096, out, sizeof(out)) > 0);
    free(s);
}

/* Random round trips through every base at every small length; the room
 * from dn_base*_enc_len is always enough. */
static void test_roundtrip_random(void **state)
{
    (void)state;
    srand(42);
    for (int iter = 0; iter < 2000; iter++) {
        uint8_t in[80], back[80];
        size_t n = (size_t)(iter % 80);
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(iter % 3 == 0 && i < 3 ? 0 : rand());
        char s[256];
        int len;
#define RT(enc, dec, lenf)                                                                         \
    len = enc(in, n, s, lenf(n));                                                                  \
    assert_true(len >= 0 && (size_t)len < lenf(n));                                                \
    assert_int_equal(dec(s, (size_t)len, back, sizeof(back)), (int)n);                             \
    assert_memory_equal(back, in, n);
        RT(dn_base16_encode, dn_base16_decode, dn_base16_enc_len)
        RT(dn_base32_encode, dn_base32_decode, dn_base32_enc_len)
        RT(dn_base58_encode, dn_base58_decode, dn_base58_enc_len)
        RT(dn_base64_encode, dn_base64_decode, dn_base64_enc_len)
        RT(dn_base64url_encode, dn_base64url_decode, dn_base64_enc_len)
#undef RT
    }
}

/* ---- escaping untrusted text (dn_escape_text) ---- */

static void expect_escape_at(const char *in, size_t len, const char *want, const char *file,
                             int line)
{
    char out[256];
    size_t n = dn_escape_text(in, len, out, sizeof out);
    if (strcmp(out, want) != 0 || n != strlen(want))
        fail_msg("%s:%d: escaped to '%s' (%zu), want '%s'", file, line, out, n, want);
}
#define expect_escape(lit, want) expect_escape_at(lit, sizeof(lit) - 1, want, __FILE__, __LINE__)

static void test_escape_text(void **state)
{
    (void)state;
    expect_escape("", "");
    expect_escape("dmsnet/0.1.0", "dmsnet/0.1.0");
    /* the forged log line and terminal control of issue 8 */
    expect_escape("js\nWARN fake line", "js\\x0aWARN fake line");
    expect_escape("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred");
    expect_escape("a\r\tb\x7f", "a\\x0d\\x09b\\x7f");
    expect_escape("nul\0inside", "nul\\x00inside");
    expect_escape("back\\slash", "back\\\\slash");
    expect_escape("\\x41", "\\\\x41"); /* not confusable with an escape */
    /* valid UTF-8 passes: 2, 3 and 4 bytes, NBSP (U+00A0) right after C1 */
    expect_escape("h\xc3\xa9llo \xe6\x97\xa5 \xf0\x9f\x98\x80 \xc2\xa0",
                  "h\xc3\xa9llo \xe6\x97\xa5 \xf0\x9f\x98\x80 \xc2\xa0");
    /* C1 controls: U+009B is CSI on some terminals; U+0085 is NEL */
    expect_escape("\xc2\x9b"
                  "31m",
                  "\\xc2\\x9b"
                  "31m");
    expect_escape("\xc2\x85", "\\xc2\\x85");
    /* invalid UTF-8: each byte of a bad sequence escaped, then resync */
    expect_escape("\xff", "\\xff");
    expect_escape("\xc0\xaf", "\\xc0\\xaf");                   /* overlong '/' */
    expect_escape("\xed\xa0\x80", "\\xed\\xa0\\x80");          /* surrogate U+D800 */
    expect_escape("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
    expect_escape("\xe6\x97", "\\xe6\\x97");                   /* cut at the end */
    expect_escape("\xe6"
                  "a",
                  "\\xe6"
                  "a");
    expect_escape("\x80\xc3\xa9", "\\x80\xc3\xa9"); /* stray continuation, then a char */
}

static void test_escape_truncation(void **state)
{
    (void)state;
    char out[16];
    /* never half an escape: "ab" fits, "\x0a" (4) does not */
    memset(out, 'Z', sizeof out);
    assert_int_equal(dn_escape_text("ab\ncd", 5, out, 5), 8);
    assert_string_equal(out, "ab");
    /* nothing after a piece that did not fit, even if it would */
    assert_int_equal(dn_escape_text("a\nb", 3, out, 4), 6);
    assert_string_equal(out, "a");
    /* never half a UTF-8 character */
    assert_int_equal(dn_escape_text("a\xe6\x97\xa5", 4, out, 3), 4);
    assert_string_equal(out, "a");
    assert_int_equal(dn_escape_text("a\xe6\x97\xa5", 4, out, 5), 4);
    assert_string_equal(out, "a\xe6\x97\xa5");
    /* exactly full: length 3 needs 4 bytes */
    assert_int_equal(dn_escape_text("abc", 3, out, 4), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(dn_escape_text("abc", 3, out, 3), 3);
    assert_string_equal(out, "ab");
    assert_int_equal(dn_escape_text("abc", 3, out, 1), 3);
    assert_string_equal(out, "");
    /* measuring only */
    assert_int_equal(dn_escape_text("\x01\x02", 2, NULL, 0), 8);
    assert_int_equal(dn_escape_text(NULL, 5, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(DN_ESCAPE_MAX(3), 13);
}

/* Undo the escaping (test only), to check nothing is lost or ambiguous. */
static size_t unescape(const char *s, uint8_t *out)
{
    size_t o = 0;
    while (*s) {
        if (s[0] == '\\' && s[1] == '\\') {
            out[o++] = '\\';
            s += 2;
        } else if (s[0] == '\\' && s[1] == 'x') {
            char h[3] = {s[2], s[3], 0};
            out[o++] = (uint8_t)strtoul(h, NULL, 16);
            s += 4;
        } else {
            out[o++] = (uint8_t)*s++;
        }
    }
    return o;
}

/* Random bytes: the rendering holds no control byte, is valid UTF-8 by
 * construction (checked by escaping it again: nothing but backslashes
 * change), fits DN_ESCAPE_MAX and unescapes to the input. */
static void test_escape_random(void **state)
{
    (void)state;
    srand(8);
    for (int iter = 0; iter < 2000; iter++) {
        uint8_t in[64];
        size_t n = (size_t)(rand() % 65);
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(iter % 3 == 0 ? rand() : rand() % 0x60 + (rand() % 2) * 0x80);
        char out[DN_ESCAPE_MAX(64)];
        size_t len = dn_escape_text((const char *)in, n, out, sizeof out);
        assert_true(len < sizeof out);
        assert_int_equal(strlen(out), len);
        for (size_t i = 0; i < len; i++) {
            uint8_t c = (uint8_t)out[i];
            assert_true(c >= 0x20 && c != 0x7f);
            if (c == 0xc2 && i + 1 < len)
                assert_true((uint8_t)out[i + 1] >= 0xa0);
        }
        char again[4 * DN_ESCAPE_MAX(64)];
        size_t len2 = dn_escape_text(out, len, again, sizeof again);
        size_t backslashes = 0;
        for (size_t i = 0; i < len; i++)
            backslashes += out[i] == '\\';
        assert_int_equal(len2, len + backslashes);
        uint8_t back[64];
        assert_int_equal(unescape(out, back), n);
        assert_memory_equal(back, in, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uvarint_vectors),   cmocka_unit_test(test_uvarint_reject),
        cmocka_unit_test(test_uvarint_roundtrip), cmocka_unit_test(test_rfc4648),
        cmocka_unit_test(test_base64_alphabets),  cmocka_unit_test(test_base_reject),
        cmocka_unit_test(test_base58_vectors),    cmocka_unit_test(test_base58_bounds),
        cmocka_unit_test(test_roundtrip_random),  cmocka_unit_test(test_escape_text),
        cmocka_unit_test(test_escape_truncation), cmocka_unit_test(test_escape_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
