#include "dmsnet/buf.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

int dn_buf_reserve(dn_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return DN_ENOMEM;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return DN_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int dn_buf_append(dn_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = dn_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int dn_buf_append_byte(dn_buf *b, uint8_t c) { return dn_buf_append(b, &c, 1); }

int dn_buf_append_uvarint(dn_buf *b, uint64_t v)
{
    int rc = dn_buf_reserve(b, DN_UVARINT_MAX);
    if (rc)
        return rc;
    b->len += dn_uvarint_encode(v, b->data + b->len);
    return 0;
}

void dn_buf_consume(dn_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void dn_buf_free(dn_buf *b)
{
    free(b->data);
    dn_buf_init(b);
}

void dn_buf_free_secure(dn_buf *b)
{
    if (b->data)
        sodium_memzero(b->data, b->cap);
    dn_buf_free(b);
}
