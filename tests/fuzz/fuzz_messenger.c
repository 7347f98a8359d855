/* libFuzzer target: the Messenger frame reader (src/messenger/frame.c).
 * The first two bytes pick the limit and how the rest is cut into
 * pieces; the reader must hold at most limit + 8 bytes, refuse only a
 * declared length past the limit, and when it completes, yield exactly
 * the bytes that followed the header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "messenger/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t limit = (size_t)data[0] * 37;
    unsigned step_seed = data[1];
    data += 2;
    size -= 2;
    dn__msg_reader r;
    dn__msg_reader_init(&r, limit);
    size_t off = 0;
    int rc = 0;
    unsigned k = 0;
    while (off < size && rc == 0) {
        size_t step = 1 + (step_seed * 31u + k++ * 17u) % 97u;
        if (step > size - off)
            step = size - off;
        size_t used = 0;
        rc = dn__msg_reader_feed(&r, data + off, step, &used);
        if (used > step)
            abort();
        off += used;
        if (dn__msg_reader_held(&r) > limit + DN__MSG_HEADER_LEN)
            abort();
    }
    if (rc != 0 && rc != 1 && rc != DN_ETOOBIG)
        abort();
    if (off >= DN__MSG_HEADER_LEN) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | data[i];
        if ((rc == DN_ETOOBIG) != (n > limit))
            abort();
        uint8_t h[DN__MSG_HEADER_LEN];
        dn__msg_frame_header(n, h);
        if (memcmp(h, data, DN__MSG_HEADER_LEN) != 0)
            abort();
    }
    if (rc == 1) {
        size_t len = 0;
        const uint8_t *p = dn__msg_reader_payload(&r, &len);
        if (!p || off != DN__MSG_HEADER_LEN + len || memcmp(p, data + DN__MSG_HEADER_LEN, len))
            abort();
    }
    dn__msg_reader_free(&r);
    return 0;
}
