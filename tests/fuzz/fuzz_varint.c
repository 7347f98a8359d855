/* libFuzzer target: unsigned varint and the base decoders (encoding.h).
 * Whatever decodes must re-encode to an input that decodes to the same
 * value (canonical forms: minimal varints; base32/16 case and base64
 * padding may differ in text, never in bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

typedef int (*dec_fn)(const char *, size_t, uint8_t *, size_t);
typedef int (*enc_fn)(const uint8_t *, size_t, char *, size_t);
typedef size_t (*len_fn)(size_t);

static void check_base(const char *in, size_t n, dec_fn dec, enc_fn enc, len_fn lenf)
{
    static uint8_t out[8192], back[8192];
    static char text[16384];
    int m = dec(in, n, out, sizeof(out));
    if (m < 0) {
        if (m != DN_EMALFORMED && m != DN_ETOOBIG)
            abort();
        return;
    }
    if ((size_t)m > n) /* every base spends at least one character per byte */
        abort();
    int t = enc(out, (size_t)m, text, lenf((size_t)m));
    if (t < 0 || (size_t)t >= lenf((size_t)m))
        abort();
    int m2 = dec(text, (size_t)t, back, sizeof(back));
    if (m2 != m || memcmp(out, back, (size_t)m) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t v;
    int n = dn_uvarint_decode(data, size, &v);
    if (n > 0) {
        uint8_t buf[DN_UVARINT_MAX];
        size_t m = dn_uvarint_encode(v, buf);
        /* Only minimal encodings decode, so re-encoding gives the input. */
        if (m != (size_t)n || memcmp(buf, data, m) != 0 || dn_uvarint_len(v) != m)
            abort();
        if (v >> 63)
            abort();
    } else if (n != DN_ETRUNCATED && n != DN_EMALFORMED && n != DN_ETOOBIG) {
        abort();
    }
    const char *s = (const char *)data;
    check_base(s, size, dn_base16_decode, dn_base16_encode, dn_base16_enc_len);
    check_base(s, size, dn_base32_decode, dn_base32_encode, dn_base32_enc_len);
    check_base(s, size, dn_base58_decode, dn_base58_encode, dn_base58_enc_len);
    check_base(s, size, dn_base64_decode, dn_base64_encode, dn_base64_enc_len);
    check_base(s, size, dn_base64url_decode, dn_base64url_encode, dn_base64_enc_len);
    return 0;
}
