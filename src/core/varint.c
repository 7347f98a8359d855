/* unsigned-varint, as the multiformats spec defines it: 7 bits per byte,
 * little-endian groups, MSB set on all but the last byte, at most 9 bytes,
 * and the encoding must be minimal (no trailing zero groups). */
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

size_t dn_uvarint_encode(uint64_t v, uint8_t *out)
{
    size_t i = 0;
    while (v >= 0x80) {
        out[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[i++] = (uint8_t)v;
    return i;
}

size_t dn_uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int dn_uvarint_decode(const uint8_t *in, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < DN_UVARINT_MAX; i++) {
        if (i >= len)
            return DN_ETRUNCATED;
        uint8_t b = in[i];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            /* A last byte of zero after other bytes means a longer-than-needed encoding. */
            if (b == 0 && i > 0)
                return DN_EMALFORMED;
            *out = v;
            return (int)(i + 1);
        }
    }
    return DN_ETOOBIG;
}
