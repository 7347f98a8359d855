/* Identify message codec: see identify_msg.h for the bounds and why. */
#include "proto/identify_msg.h"

#include <stdlib.h>
#include <string.h>

#include "core/pb.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"

enum {
    F_PUBLIC_KEY = 1,
    F_LISTEN_ADDRS = 2,
    F_PROTOCOLS = 3,
    F_OBSERVED_ADDR = 4,
    F_PROTOCOL_VERSION = 5,
    F_AGENT_VERSION = 6,
    F_SIGNED_RECORD = 8,
};

/* A protocol name we keep: 1..MAX_STRING-1 bytes, no control byte. */
static bool protocol_ok(const uint8_t *s, size_t n)
{
    if (n == 0 || n >= DN_IDENTIFY_MAX_STRING)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20)
            return false;
    return true;
}

static int copy_bytes(const uint8_t *src, size_t n, uint8_t **dst)
{
    *dst = NULL;
    if (n == 0)
        return 0;
    *dst = malloc(n);
    if (!*dst)
        return DN_ENOMEM;
    memcpy(*dst, src, n);
    return 0;
}

/* A string field as a C string: cut at the bound and at a NUL. */
static void copy_text(const uint8_t *src, size_t n, char dst[DN_IDENTIFY_MAX_STRING])
{
    if (n > DN_IDENTIFY_MAX_STRING - 1)
        n = DN_IDENTIFY_MAX_STRING - 1;
    const uint8_t *nul = memchr(src, 0, n);
    if (nul)
        n = (size_t)(nul - src);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int decode_field(const dn_pb_field *f, dn__identify_msg *m)
{
    switch (f->number) {
    case F_PUBLIC_KEY:
        if (m->has_public_key)
            return DN_EMALFORMED; /* optional: once (see identify_msg.h) */
        if (f->len > DN_PUBKEY_PB_MAX)
            return DN_ETOOBIG; /* larger than any key we accept */
        m->has_public_key = true;
        m->public_key_len = f->len;
        return copy_bytes(f->bytes, f->len, &m->public_key);
    case F_LISTEN_ADDRS:
        m->has_listen_addrs = true;
        if (m->nlisten_addrs < DN_IDENTIFY_MAX_ADDRS &&
            dn_multiaddr_from_bytes(f->bytes, f->len, &m->listen_addrs[m->nlisten_addrs]) == 0)
            m->nlisten_addrs++;
        else
            m->dropped_addrs++;
        return 0;
    case F_PROTOCOLS: {
        m->has_protocols = true;
        if (m->nprotocols >= DN_IDENTIFY_MAX_PROTOCOLS || !protocol_ok(f->bytes, f->len)) {
            m->dropped_protocols++;
            return 0;
        }
        char *s = malloc(f->len + 1);
        if (!s)
            return DN_ENOMEM;
        memcpy(s, f->bytes, f->len);
        s[f->len] = '\0';
        m->protocols[m->nprotocols++] = s;
        return 0;
    }
    case F_OBSERVED_ADDR: {
        dn_multiaddr ma;
        if (dn_multiaddr_from_bytes(f->bytes, f->len, &ma) == 0) {
            m->observed_addr = ma;
            m->has_observed_addr = true;
        }
        return 0;
    }
    case F_PROTOCOL_VERSION:
        m->has_protocol_version = true;
        copy_text(f->bytes, f->len, m->protocol_version);
        return 0;
    case F_AGENT_VERSION:
        m->has_agent_version = true;
        copy_text(f->bytes, f->len, m->agent_version);
        return 0;
    case F_SIGNED_RECORD:
        if (m->has_signed_record)
            return DN_EMALFORMED; /* one record per message (see identify_msg.h) */
        m->has_signed_record = true;
        m->signed_record_len = f->len;
        return copy_bytes(f->bytes, f->len, &m->signed_record);
    default: return 0;
    }
}

int dn__identify_decode(const uint8_t *p, size_t len, dn__identify_msg *out)
{
    if (!out || (!p && len))
        return DN_EINVAL;
    memset(out, 0, sizeof *out);
    if (len > DN_IDENTIFY_MSG_MAX)
        return DN_ETOOBIG;
    if (len == 0)
        return 0; /* the empty message (and no pointer arithmetic on NULL) */
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.wire_type != DN_PB_LEN)
            continue; /* every Identify field is length-delimited */
        if ((rc = decode_field(&f, out)) < 0)
            break;
    }
    if (rc < 0) {
        dn__identify_msg_free(out);
        return rc;
    }
    return 0;
}

void dn__identify_msg_free(dn__identify_msg *m)
{
    if (!m)
        return;
    free(m->public_key);
    free(m->signed_record);
    for (size_t i = 0; i < m->nprotocols && i < DN_IDENTIFY_MAX_PROTOCOLS; i++)
        free(m->protocols[i]);
    memset(m, 0, sizeof *m);
}

/* The bounds the decoder enforces, so encode(m) decodes to m. */
static bool encodable(const dn__identify_msg *m)
{
    if (m->public_key_len > DN_PUBKEY_PB_MAX || (m->public_key_len && !m->public_key) ||
        (m->signed_record_len && !m->signed_record) || m->nlisten_addrs > DN_IDENTIFY_MAX_ADDRS ||
        m->nprotocols > DN_IDENTIFY_MAX_PROTOCOLS)
        return false;
    for (size_t i = 0; i < m->nprotocols; i++)
        if (!m->protocols[i] || !protocol_ok((const uint8_t *)m->protocols[i],
                                             strnlen(m->protocols[i], DN_IDENTIFY_MAX_STRING)))
            return false;
    return memchr(m->protocol_version, 0, DN_IDENTIFY_MAX_STRING) &&
           memchr(m->agent_version, 0, DN_IDENTIFY_MAX_STRING);
}

int dn__identify_encode(const dn__identify_msg *m, dn_buf *out)
{
    if (!m || !out || !encodable(m))
        return DN_EINVAL;
    size_t start = out->len;
    int rc = 0;
    if (m->has_public_key)
        rc = dn_pb_put_bytes(out, F_PUBLIC_KEY, m->public_key, m->public_key_len);
    for (size_t i = 0; !rc && i < m->nlisten_addrs; i++)
        rc = dn_pb_put_bytes(out, F_LISTEN_ADDRS, m->listen_addrs[i].bytes, m->listen_addrs[i].len);
    for (size_t i = 0; !rc && i < m->nprotocols; i++)
        rc = dn_pb_put_string(out, F_PROTOCOLS, m->protocols[i]);
    if (!rc && m->has_observed_addr)
        rc = dn_pb_put_bytes(out, F_OBSERVED_ADDR, m->observed_addr.bytes, m->observed_addr.len);
    if (!rc && m->has_protocol_version)
        rc = dn_pb_put_string(out, F_PROTOCOL_VERSION, m->protocol_version);
    if (!rc && m->has_agent_version)
        rc = dn_pb_put_string(out, F_AGENT_VERSION, m->agent_version);
    if (!rc && m->has_signed_record)
        rc = dn_pb_put_bytes(out, F_SIGNED_RECORD, m->signed_record, m->signed_record_len);
    if (!rc && out->len - start > DN_IDENTIFY_MSG_MAX)
        rc = DN_ETOOBIG;
    if (rc)
        out->len = start; /* nothing half-written */
    return rc;
}
