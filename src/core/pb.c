#include "core/pb.h"

#include <string.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

int dn_pb_next(dn_pb_reader *r, dn_pb_field *f)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    int n = dn_uvarint_decode(r->p, (size_t)(r->end - r->p), &key);
    if (n < 0)
        return n == DN_ETRUNCATED ? DN_ETRUNCATED : DN_EMALFORMED;
    r->p += n;
    f->number = (uint32_t)(key >> 3);
    f->wire_type = (int)(key & 7);
    if (f->number == 0 || (key >> 3) > 0x1fffffff)
        return DN_EMALFORMED;
    f->bytes = NULL;
    f->len = 0;
    f->varint = 0;
    size_t left = (size_t)(r->end - r->p);
    switch (f->wire_type) {
    case DN_PB_VARINT:
        n = dn_uvarint_decode(r->p, left, &f->varint);
        if (n < 0) {
            /* protobuf varints may be up to 10 bytes and non-minimal; we
             * only need values < 2^63, so reject the rest as malformed. */
            return n == DN_ETRUNCATED ? DN_ETRUNCATED : DN_EMALFORMED;
        }
        r->p += n;
        return 1;
    case DN_PB_I64:
        if (left < 8)
            return DN_ETRUNCATED;
        for (int i = 7; i >= 0; i--)
            f->varint = (f->varint << 8) | r->p[i];
        r->p += 8;
        return 1;
    case DN_PB_I32:
        if (left < 4)
            return DN_ETRUNCATED;
        for (int i = 3; i >= 0; i--)
            f->varint = (f->varint << 8) | r->p[i];
        r->p += 4;
        return 1;
    case DN_PB_LEN: {
        uint64_t len;
        n = dn_uvarint_decode(r->p, left, &len);
        if (n < 0)
            return n == DN_ETRUNCATED ? DN_ETRUNCATED : DN_EMALFORMED;
        r->p += n;
        if (len > (uint64_t)(r->end - r->p))
            return DN_ETRUNCATED;
        f->bytes = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        return DN_EMALFORMED; /* groups (3, 4) and reserved types */
    }
}

int dn_pb_put_varint(dn_buf *b, uint32_t field, uint64_t v)
{
    int rc = dn_buf_append_uvarint(b, ((uint64_t)field << 3) | DN_PB_VARINT);
    return rc ? rc : dn_buf_append_uvarint(b, v);
}

int dn_pb_put_bytes(dn_buf *b, uint32_t field, const void *p, size_t len)
{
    int rc = dn_buf_append_uvarint(b, ((uint64_t)field << 3) | DN_PB_LEN);
    if (!rc)
        rc = dn_buf_append_uvarint(b, len);
    if (!rc)
        rc = dn_buf_append(b, p, len);
    return rc;
}

int dn_pb_put_string(dn_buf *b, uint32_t field, const char *s)
{
    return dn_pb_put_bytes(b, field, s, strlen(s));
}
