/* AutoNAT v2 message codec: see autonat_msg.h for the bounds and why. */
#include "proto/autonat_msg.h"

#include <string.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

int dn__autonat_frame(const uint8_t *buf, size_t len, size_t max, const uint8_t **body,
                      size_t *body_len)
{
    uint64_t n;
    int k = dn_uvarint_decode(buf, len, &n);
    if (k == DN_ETRUNCATED)
        return 0;
    if (k < 0)
        return DN_EMALFORMED;
    if (n > max)
        return DN_ETOOBIG;
    if (n > len - (size_t)k)
        return 0;
    *body = buf + k;
    *body_len = (size_t)n;
    return k + (int)n;
}

/* A varint field that must fit in uint32. */
static int get_u32(const dn_pb_field *f, uint32_t *out)
{
    if (f->wire_type != DN_PB_VARINT || f->varint > UINT32_MAX)
        return DN_EMALFORMED;
    *out = (uint32_t)f->varint;
    return 0;
}

static int decode_dial_request(const uint8_t *p, size_t len, dn__autonat_msg *m)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == 1) {
            if (f.wire_type != DN_PB_LEN)
                return DN_EMALFORMED;
            if (m->u.dial_request.naddrs == DN_AUTONAT_MAX_ADDRS || f.len > DN_MULTIADDR_MAX)
                return DN_ETOOBIG;
            size_t i = m->u.dial_request.naddrs++;
            m->u.dial_request.addrs[i] = f.bytes;
            m->u.dial_request.addr_lens[i] = f.len;
        } else if (f.number == 2) {
            if (f.wire_type != DN_PB_I64)
                return DN_EMALFORMED;
            m->u.dial_request.nonce = f.varint;
        }
    }
    return rc;
}

static int decode_dial_response(const uint8_t *p, size_t len, dn__autonat_msg *m)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        uint32_t *dst = f.number == 1   ? &m->u.dial_response.status
                        : f.number == 2 ? &m->u.dial_response.addr_idx
                        : f.number == 3 ? &m->u.dial_response.dial_status
                                        : NULL;
        if (dst && (rc = get_u32(&f, dst)) != 0)
            return rc;
    }
    return rc;
}

static int decode_dial_data_request(const uint8_t *p, size_t len, dn__autonat_msg *m)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == 1) {
            if ((rc = get_u32(&f, &m->u.dial_data_request.addr_idx)) != 0)
                return rc;
        } else if (f.number == 2) {
            if (f.wire_type != DN_PB_VARINT)
                return DN_EMALFORMED;
            m->u.dial_data_request.num_bytes = f.varint;
        }
    }
    return rc;
}

static int decode_dial_data_response(const uint8_t *p, size_t len, dn__autonat_msg *m)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number != 1)
            continue;
        if (f.wire_type != DN_PB_LEN)
            return DN_EMALFORMED;
        /* bytes is not repeated: one copy only (see the header). */
        if (m->u.dial_data_response.data)
            return DN_EMALFORMED;
        m->u.dial_data_response.data = f.bytes ? f.bytes : p;
        m->u.dial_data_response.len = f.len;
    }
    return rc;
}

/* A span may be (NULL, 0); the reader does pointer arithmetic on it. */
static const uint8_t no_bytes[1];
#define NONNULL(p) ((p) ? (p) : no_bytes)

int dn__autonat_decode(const uint8_t *p, size_t len, dn__autonat_msg *out)
{
    p = NONNULL(p);
    if (len > DN_AUTONAT_MSG_MAX)
        return DN_ETOOBIG;
    memset(out, 0, sizeof *out);
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number < DN_AUTONAT_DIAL_REQUEST || f.number > DN_AUTONAT_DIAL_DATA_RESPONSE)
            continue;
        if (f.wire_type != DN_PB_LEN || out->type != DN_AUTONAT_NONE)
            return DN_EMALFORMED;
        out->type = (dn__autonat_type)f.number;
        switch (out->type) {
        case DN_AUTONAT_DIAL_REQUEST: rc = decode_dial_request(f.bytes, f.len, out); break;
        case DN_AUTONAT_DIAL_RESPONSE: rc = decode_dial_response(f.bytes, f.len, out); break;
        case DN_AUTONAT_DIAL_DATA_REQUEST:
            rc = decode_dial_data_request(f.bytes, f.len, out);
            break;
        case DN_AUTONAT_DIAL_DATA_RESPONSE:
            rc = decode_dial_data_response(f.bytes, f.len, out);
            break;
        default: rc = DN_EMALFORMED; break;
        }
        if (rc)
            return rc;
    }
    if (rc)
        return rc;
    if (out->type == DN_AUTONAT_NONE)
        return DN_EMALFORMED;
    if (out->type == DN_AUTONAT_DIAL_DATA_RESPONSE && !out->u.dial_data_response.data)
        out->u.dial_data_response.data = p; /* empty data: a valid, zero-length span */
    return 0;
}

int dn__autonat_decode_dial_back(const uint8_t *p, size_t len, uint64_t *nonce)
{
    p = NONNULL(p);
    if (len > DN_AUTONAT_MSG_MAX)
        return DN_ETOOBIG;
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    bool have = false;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number != 1)
            continue;
        if (f.wire_type != DN_PB_I64)
            return DN_EMALFORMED;
        *nonce = f.varint;
        have = true;
    }
    if (rc)
        return rc;
    /* proto3 omits a zero nonce; no client picks 0 from 2^64, and a
     * dial-back without the nonce proves nothing. */
    return have ? 0 : DN_EMALFORMED;
}

int dn__autonat_decode_dial_back_response(const uint8_t *p, size_t len, uint32_t *status)
{
    p = NONNULL(p);
    if (len > DN_AUTONAT_MSG_MAX)
        return DN_ETOOBIG;
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    *status = DN_AUTONAT_DBS_OK; /* proto3 default: the field is omitted */
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1)
        if (f.number == 1 && (rc = get_u32(&f, status)) != 0)
            return rc;
    return rc;
}

/* ---- encoding: canonical proto3 (zero values omitted), then framed ---- */

static int put_fixed64(dn_buf *b, uint32_t field, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    int rc = dn_buf_append_uvarint(b, ((uint64_t)field << 3) | DN_PB_I64);
    return rc ? rc : dn_buf_append(b, le, sizeof le);
}

static int put_nonzero(dn_buf *b, uint32_t field, uint64_t v)
{
    return v ? dn_pb_put_varint(b, field, v) : 0;
}

/* Frame body as a message (length prefix), appended to out. */
static int frame(const dn_buf *body, dn_buf *out)
{
    if (body->len > DN_AUTONAT_MSG_MAX)
        return DN_EINVAL;
    int rc = dn_buf_append_uvarint(out, body->len);
    return rc ? rc : dn_buf_append(out, body->data, body->len);
}

int dn__autonat_encode(const dn__autonat_msg *m, dn_buf *out)
{
    dn_buf inner = DN_BUF_INIT, msg = DN_BUF_INIT;
    int rc = 0;
    switch (m->type) {
    case DN_AUTONAT_DIAL_REQUEST:
        if (m->u.dial_request.naddrs > DN_AUTONAT_MAX_ADDRS) {
            rc = DN_EINVAL;
            break;
        }
        for (size_t i = 0; !rc && i < m->u.dial_request.naddrs; i++)
            rc = m->u.dial_request.addr_lens[i] > DN_MULTIADDR_MAX
                     ? DN_EINVAL
                     : dn_pb_put_bytes(&inner, 1, m->u.dial_request.addrs[i],
                                       m->u.dial_request.addr_lens[i]);
        if (!rc && m->u.dial_request.nonce)
            rc = put_fixed64(&inner, 2, m->u.dial_request.nonce);
        break;
    case DN_AUTONAT_DIAL_RESPONSE:
        rc = put_nonzero(&inner, 1, m->u.dial_response.status);
        if (!rc)
            rc = put_nonzero(&inner, 2, m->u.dial_response.addr_idx);
        if (!rc)
            rc = put_nonzero(&inner, 3, m->u.dial_response.dial_status);
        break;
    case DN_AUTONAT_DIAL_DATA_REQUEST:
        rc = put_nonzero(&inner, 1, m->u.dial_data_request.addr_idx);
        /* The decoder's varints stop below 2^63: keep encode/decode symmetric. */
        if (!rc && m->u.dial_data_request.num_bytes >> 63)
            rc = DN_EINVAL;
        if (!rc)
            rc = put_nonzero(&inner, 2, m->u.dial_data_request.num_bytes);
        break;
    case DN_AUTONAT_DIAL_DATA_RESPONSE:
        if (m->u.dial_data_response.len)
            rc = dn_pb_put_bytes(&inner, 1, m->u.dial_data_response.data,
                                 m->u.dial_data_response.len);
        break;
    default: rc = DN_EINVAL; break;
    }
    if (!rc)
        rc = dn_pb_put_bytes(&msg, (uint32_t)m->type, inner.data, inner.len);
    if (!rc)
        rc = frame(&msg, out);
    dn_buf_free(&inner);
    dn_buf_free(&msg);
    return rc;
}

int dn__autonat_encode_dial_back(uint64_t nonce, dn_buf *out)
{
    dn_buf msg = DN_BUF_INIT;
    /* Written even when zero: the receiver requires the field. */
    int rc = put_fixed64(&msg, 1, nonce);
    if (!rc)
        rc = frame(&msg, out);
    dn_buf_free(&msg);
    return rc;
}

int dn__autonat_encode_dial_back_response(uint32_t status, dn_buf *out)
{
    dn_buf msg = DN_BUF_INIT;
    int rc = put_nonzero(&msg, 1, status);
    if (!rc)
        rc = frame(&msg, out);
    dn_buf_free(&msg);
    return rc;
}
