/* Base encodings used by multiformats: base16, base32 (RFC 4648 section 6,
 * lower case, unpadded as multibase 'b' writes it), base58btc (the bitcoin
 * alphabet, as in peer ids) and base64 (RFC 4648 sections 4 and 5).
 *
 * Decoders are strict where strictness keeps one canonical byte string per
 * text: characters outside the alphabet, impossible lengths, misplaced
 * padding and non-zero leftover bits (RFC 4648 section 3.5 allows decoders
 * to reject them; multiformats' own decoders do) are DN_EMALFORMED. */
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* base58 is quadratic in the input length; peer ids and CIDs are < 100
 * characters, so anything beyond these bounds is hostile or a mistake. */
#define BASE58_MAX_CHARS 4096
#define BASE58_MAX_BYTES 2048

static const char hex_lower[] = "0123456789abcdef";
static const char b32_alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char b58_alpha[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Check the room for a string of `len` characters plus its NUL, and that the
 * length fits the int return value. */
static int check_room(size_t len, size_t outlen)
{
    if (len >= (size_t)INT_MAX || outlen < len + 1)
        return DN_ETOOBIG;
    return 0;
}

/* ---- base16 ---- */

size_t dn_base16_enc_len(size_t n)
{
    return n > (SIZE_MAX - 1) / 2 ? SIZE_MAX : 2 * n + 1;
}

int dn_base16_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    if (n > (SIZE_MAX - 1) / 2 || check_room(2 * n, outlen) < 0)
        return DN_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_lower[in[i] >> 4];
        out[2 * i + 1] = hex_lower[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
    return (int)(2 * n);
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dn_base16_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    if (n % 2 != 0)
        return DN_EMALFORMED;
    for (size_t i = 0; i < n; i++)
        if (hex_val(in[i]) < 0)
            return DN_EMALFORMED;
    if (n / 2 > outlen || n / 2 > (size_t)INT_MAX)
        return DN_ETOOBIG;
    for (size_t i = 0; i < n / 2; i++)
        out[i] = (uint8_t)(hex_val(in[2 * i]) << 4 | hex_val(in[2 * i + 1]));
    return (int)(n / 2);
}

/* ---- base32 (RFC 4648 section 6), 5 bits per character ---- */

size_t dn_base32_enc_len(size_t n)
{
    if (n > (SIZE_MAX - 6) / 8)
        return SIZE_MAX;
    return (n * 8 + 4) / 5 + 1;
}

int dn_base32_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    if (n > (SIZE_MAX - 6) / 8)
        return DN_ETOOBIG;
    size_t len = (n * 8 + 4) / 5;
    if (check_room(len, outlen) < 0)
        return DN_ETOOBIG;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = b32_alpha[(acc >> bits) & 31];
        }
    }
    if (bits > 0)
        out[o++] = b32_alpha[(acc << (5 - bits)) & 31];
    out[o] = '\0';
    return (int)o;
}

static int b32_val(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

/* Strip trailing '=' if the input is padded; padding, when present, must
 * bring the length to a multiple of `block` and be no longer than needed. */
static int strip_padding(const char *in, size_t *n, size_t block)
{
    size_t len = *n, pad = 0;
    while (pad < len && in[len - 1 - pad] == '=')
        pad++;
    if (pad == 0)
        return 0;
    if (len % block != 0 || pad >= block)
        return DN_EMALFORMED;
    *n = len - pad;
    /* The unpadded remainder must need exactly this much padding. */
    size_t rem = *n % block;
    if (rem == 0 || block - rem != pad)
        return DN_EMALFORMED;
    return 0;
}

/* Shared decoder for the 5- and 6-bit alphabets. valid_rem says which
 * lengths mod `block` are possible for unpadded input. */
static int decode_bits(const char *in, size_t n, uint8_t *out, size_t outlen, int (*val)(char),
                       int bits_per_char, size_t block, unsigned valid_rem)
{
    int rc = strip_padding(in, &n, block);
    if (rc < 0)
        return rc;
    if (!(valid_rem & (1u << (n % block))))
        return DN_EMALFORMED;
    for (size_t i = 0; i < n; i++)
        if (val(in[i]) < 0)
            return DN_EMALFORMED;
    size_t total = n * (size_t)bits_per_char / 8;
    if (total > outlen || total > (size_t)INT_MAX)
        return DN_ETOOBIG;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << bits_per_char) | (uint32_t)val(in[i]);
        bits += bits_per_char;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    /* Leftover bits must be zero: otherwise two texts decode to one value. */
    if (acc != 0)
        return DN_EMALFORMED;
    return (int)o;
}

int dn_base32_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    /* Unpadded base32 lengths mod 8: 0, 2, 4, 5, 7 (1, 3, 6 cannot occur). */
    return decode_bits(in, n, out, outlen, b32_val, 5, 8,
                       (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 7));
}

/* ---- base64 (RFC 4648 sections 4 and 5) ---- */

size_t dn_base64_enc_len(size_t n)
{
    if (n > (SIZE_MAX - 8) / 4 * 3)
        return SIZE_MAX;
    return (n + 2) / 3 * 4 + 1;
}

static int b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen, const char *alpha,
                      int pad)
{
    if (n > (SIZE_MAX - 8) / 4 * 3)
        return DN_ETOOBIG;
    size_t len = pad ? (n + 2) / 3 * 4 : (n * 4 + 2) / 3;
    if (check_room(len, outlen) < 0)
        return DN_ETOOBIG;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        out[o++] = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alpha[v >> 18];
        out[o++] = alpha[(v >> 12) & 63];
        out[o++] = alpha[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return (int)o;
}

int dn_base64_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    return b64_encode(in, n, out, outlen, b64_std, 1);
}

int dn_base64url_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    return b64_encode(in, n, out, outlen, b64_url, 0);
}

static int b64_common(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return -1;
}

static int b64_std_val(char c)
{
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return b64_common(c);
}

static int b64_url_val(char c)
{
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return b64_common(c);
}

/* Unpadded base64 lengths mod 4: 0, 2, 3. */
#define B64_VALID_REM ((1u << 0) | (1u << 2) | (1u << 3))

int dn_base64_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    return decode_bits(in, n, out, outlen, b64_std_val, 6, 4, B64_VALID_REM);
}

int dn_base64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    return decode_bits(in, n, out, outlen, b64_url_val, 6, 4, B64_VALID_REM);
}

/* ---- base58btc ----
 * The input is one big-endian number; each leading zero byte is written as
 * '1' (the zero digit) so that they survive the conversion. Both directions
 * work in place in the caller's buffer: no allocation, no large stack. */

size_t dn_base58_enc_len(size_t n)
{
    /* log(256)/log(58) = 1.3657...; 138/100 rounds up, +1 digit, +1 NUL. */
    if (n > (SIZE_MAX - 2) / 138)
        return SIZE_MAX;
    return n * 138 / 100 + 2;
}

int dn_base58_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
    if (n > BASE58_MAX_BYTES)
        return DN_ETOOBIG;
    unsigned char *d = (unsigned char *)out;
    size_t zeros = 0;
    while (zeros < n && in[zeros] == 0)
        zeros++;
    /* Digits (0..57) accumulate in out[0..len), least significant first. */
    size_t len = 0;
    for (size_t i = zeros; i < n; i++) {
        uint32_t carry = in[i];
        for (size_t k = 0; k < len; k++) {
            carry += (uint32_t)d[k] << 8;
            d[k] = (unsigned char)(carry % 58);
            carry /= 58;
        }
        while (carry > 0) {
            if (len >= outlen)
                return DN_ETOOBIG;
            d[len++] = (unsigned char)(carry % 58);
            carry /= 58;
        }
    }
    if (check_room(zeros + len, outlen) < 0)
        return DN_ETOOBIG;
    memmove(d + zeros, d, len);
    for (size_t a = zeros, b = zeros + len; a + 1 < b; a++, b--) {
        unsigned char t = d[a];
        d[a] = d[b - 1];
        d[b - 1] = t;
    }
    for (size_t k = zeros; k < zeros + len; k++)
        out[k] = b58_alpha[d[k]];
    memset(out, '1', zeros);
    out[zeros + len] = '\0';
    return (int)(zeros + len);
}

static int b58_val(char c)
{
    const char *p = c ? memchr(b58_alpha, c, 58) : NULL;
    return p ? (int)(p - b58_alpha) : -1;
}

int dn_base58_decode(const char *in, size_t n, uint8_t *out, size_t outlen)
{
    if (n > BASE58_MAX_CHARS)
        return DN_ETOOBIG;
    for (size_t i = 0; i < n; i++)
        if (b58_val(in[i]) < 0)
            return DN_EMALFORMED;
    size_t zeros = 0;
    while (zeros < n && in[zeros] == '1')
        zeros++;
    /* The number's bytes accumulate at the end of out, big-endian. */
    size_t len = 0;
    for (size_t i = zeros; i < n; i++) {
        uint32_t carry = (uint32_t)b58_val(in[i]);
        for (size_t k = 0; k < len; k++) {
            uint8_t *p = &out[outlen - 1 - k];
            carry += 58u * *p;
            *p = (uint8_t)carry;
            carry >>= 8;
        }
        while (carry > 0) {
            if (len >= outlen)
                return DN_ETOOBIG;
            out[outlen - 1 - len] = (uint8_t)carry;
            carry >>= 8;
            len++;
        }
    }
    if (zeros + len > outlen)
        return DN_ETOOBIG;
    if (zeros + len == 0)
        return 0;
    memmove(out + zeros, out + outlen - len, len);
    memset(out, 0, zeros);
    return (int)(zeros + len);
}
