/* Rendering untrusted text for terminals and logs (dn_escape_text in
 * dmsnet/encoding.h). Peers choose their agent version, protocol version
 * and protocol names; printed raw, a "\n" forges a log line of our own and
 * an ESC sequence drives the operator's terminal. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dmsnet/encoding.h"

/* Length of the well-formed UTF-8 character at s[0..n) (RFC 3629, Unicode
 * table 3-7: no overlong forms, no surrogates, at most U+10FFFF), or 0. */
static size_t utf8_char_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    for (size_t j = 1; j < k; j++) {
        if ((s[j] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* Append piece[0..n) whole or not at all, so an escape is never cut. */
static void put(char *out, size_t outlen, size_t *o, bool *full, const char *piece, size_t n)
{
    if (!*full && outlen && *o + n < outlen) {
        memcpy(out + *o, piece, n);
        *o += n;
    } else {
        *full = true; /* later pieces must not jump the gap either */
    }
}

size_t dn_escape_text(const char *in, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)in;
    size_t need = 0, o = 0, i = 0;
    bool full = false;
    if (!in)
        len = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t k = utf8_char_len(s + i, len - i);
        /* C1 controls (U+0080..U+009F, C2 80..C2 9F) are escaped too: some
         * terminals act on them (U+009B is CSI) like on ESC [. */
        bool c1 = k == 2 && c == 0xc2 && s[i + 1] < 0xa0;
        if (k == 1 && c == '\\') {
            put(out, outlen, &o, &full, "\\\\", 2);
            need += 2;
            i++;
        } else if (k == 0 || c1 || (k == 1 && (c < 0x20 || c == 0x7f))) {
            /* One byte at a time: an invalid sequence shows all its bytes;
             * the next byte starts afresh (it may begin a valid char). */
            size_t nb = c1 ? 2 : 1;
            for (size_t j = 0; j < nb; j++) {
                char e[4] = {'\\', 'x', hex[s[i + j] >> 4], hex[s[i + j] & 15]};
                put(out, outlen, &o, &full, e, 4);
            }
            need += 4 * nb;
            i += nb;
        } else {
            put(out, outlen, &o, &full, in + i, k);
            need += k;
            i += k;
        }
    }
    if (outlen)
        out[o] = '\0';
    return need;
}
