/* Kademlia DHT message codec and framing; see kad_msg.h for the format
 * (libp2p/specs kad-dht/README.md, "RPC messages") and the bounds. */
#include "kad/kad_msg.h"

#include <string.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

enum {
    F_TYPE = 1,
    F_KEY = 2,
    F_RECORD = 3,
    F_CLOSER = 8,
    F_PROVIDERS = 9,
    F_CLUSTER = 10,
    R_KEY = 1,
    R_VALUE = 2,
    R_TIME = 5,
    P_ID = 1,
    P_ADDRS = 2,
    P_CONN = 3,
};

void dn__kad_msg_init(dn__kad_msg *m)
{
    /* Only the counters and scalars: the arrays are read up to the counts. */
    m->type = DN_KAD_PUT_VALUE;
    m->cluster_level = 0;
    m->key = (dn__kad_span){NULL, 0};
    m->has_record = false;
    m->record_key = m->record_value = m->record_time = (dn__kad_span){NULL, 0};
    m->ncloser = m->nproviders = m->naddrs = 0;
    m->dropped_peers = m->dropped_addrs = 0;
}

static dn__kad_span span(const dn_pb_field *f)
{
    return (dn__kad_span){f->len ? f->bytes : NULL, f->len};
}

static int decode_record(const uint8_t *p, size_t len, dn__kad_msg *m)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    /* A repeated submessage field merges in protobuf; its scalar fields are
     * last-wins, which is what assigning here gives. */
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.wire_type != DN_PB_LEN)
            continue;
        switch (f.number) {
        case R_KEY:
            if (f.len > DN_KAD_MAX_KEY)
                return DN_ETOOBIG;
            m->record_key = span(&f);
            break;
        case R_VALUE:
            if (f.len > DN_KAD_MAX_VALUE)
                return DN_ETOOBIG;
            m->record_value = span(&f);
            break;
        case R_TIME:
            if (f.len > DN_KAD_MAX_TIME)
                return DN_ETOOBIG;
            m->record_time = span(&f);
            break;
        default: break;
        }
    }
    return rc;
}

static int decode_peer(const uint8_t *p, size_t len, dn__kad_msg *m, bool providers)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    bool have_id = false, bad_id = false;
    dn__kad_peer peer = {.connection = DN_KAD_NOT_CONNECTED, .addr_first = (uint16_t)m->naddrs};
    size_t first = m->naddrs;
    size_t list_dropped_addrs = 0;

    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == P_ID && f.wire_type == DN_PB_LEN) {
            have_id = dn_peerid_from_bytes(f.bytes, f.len, &peer.id) == 0;
            bad_id = !have_id;
        } else if (f.number == P_ADDRS && f.wire_type == DN_PB_LEN) {
            if (f.len == 0 || f.len > DN_KAD_MAX_ADDR_LEN || peer.naddrs >= DN_KAD_MAX_ADDRS ||
                m->naddrs >= DN_KAD_MAX_ADDRS_TOTAL) {
                list_dropped_addrs++;
                continue;
            }
            m->addrs[m->naddrs++] = span(&f);
            peer.naddrs++;
        } else if (f.number == P_CONN && f.wire_type == DN_PB_VARINT) {
            peer.connection =
                f.varint <= DN_KAD_CANNOT_CONNECT ? (uint8_t)f.varint : DN_KAD_NOT_CONNECTED;
        }
    }
    if (rc < 0)
        return rc;
    dn__kad_peer *list = providers ? m->providers : m->closer;
    size_t *n = providers ? &m->nproviders : &m->ncloser;
    if (!have_id || bad_id || *n >= DN_KAD_MAX_PEERS) {
        /* The addresses of a dropped peer go too, and count as dropped. */
        m->dropped_peers++;
        m->dropped_addrs += list_dropped_addrs + (m->naddrs - first);
        m->naddrs = first;
        return 0;
    }
    m->dropped_addrs += list_dropped_addrs;
    list[(*n)++] = peer;
    return 0;
}

static int decode(const uint8_t *p, size_t len, dn__kad_msg *m)
{
    if (len > DN_KAD_MSG_MAX)
        return DN_ETOOBIG;
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    uint64_t type = 0;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        switch (f.number) {
        case F_TYPE:
            if (f.wire_type == DN_PB_VARINT)
                type = f.varint;
            break;
        case F_CLUSTER:
            if (f.wire_type == DN_PB_VARINT) {
                /* int32 on the wire: values above 2^31 would be negative
                 * numbers encoded in 5 bytes, which no encoder writes. */
                if (f.varint > INT32_MAX)
                    return DN_EMALFORMED;
                m->cluster_level = (int32_t)f.varint;
            }
            break;
        case F_KEY:
            if (f.wire_type != DN_PB_LEN)
                break;
            if (f.len > DN_KAD_MAX_KEY)
                return DN_ETOOBIG;
            m->key = span(&f);
            break;
        case F_RECORD:
            if (f.wire_type != DN_PB_LEN)
                break;
            m->has_record = true;
            if ((rc = decode_record(f.bytes, f.len, m)) < 0)
                return rc;
            break;
        case F_CLOSER:
        case F_PROVIDERS:
            if (f.wire_type != DN_PB_LEN)
                break;
            if ((rc = decode_peer(f.bytes, f.len, m, f.number == F_PROVIDERS)) < 0)
                return rc;
            break;
        default: break;
        }
    }
    if (rc < 0)
        return rc;
    if (type > 0xffffffffu)
        return DN_EMALFORMED; /* an enum is an int32 */
    if (type > DN_KAD_PING)
        return DN_EUNSUPPORTED;
    m->type = (uint8_t)type;
    return 0;
}

int dn__kad_msg_decode(const uint8_t *p, size_t len, dn__kad_msg *m)
{
    dn__kad_msg_init(m);
    if (len == 0)
        return 0; /* the empty message (p may be NULL: no pointer arithmetic on it) */
    int rc = decode(p, len, m);
    if (rc)
        dn__kad_msg_init(m);
    return rc;
}

/* Encoded size of a length-delimited field with a payload of n bytes. */
static size_t len_field(uint32_t num, size_t n)
{
    return dn_uvarint_len((uint64_t)num << 3 | DN_PB_LEN) + dn_uvarint_len(n) + n;
}

static size_t varint_field(uint32_t num, uint64_t v)
{
    return v ? dn_uvarint_len((uint64_t)num << 3) + dn_uvarint_len(v) : 0;
}

static size_t opt_len_field(uint32_t num, dn__kad_span s)
{
    return s.len ? len_field(num, s.len) : 0;
}

static size_t record_size(const dn__kad_msg *m)
{
    return opt_len_field(R_KEY, m->record_key) + opt_len_field(R_VALUE, m->record_value) +
           opt_len_field(R_TIME, m->record_time);
}

static size_t peer_size(const dn__kad_msg *m, const dn__kad_peer *p)
{
    size_t n = len_field(P_ID, p->id.len) + varint_field(P_CONN, p->connection);
    for (size_t i = 0; i < p->naddrs; i++)
        n += len_field(P_ADDRS, m->addrs[p->addr_first + i].len);
    return n;
}

static int check(const dn__kad_msg *m)
{
    if (m->type > DN_KAD_PING || m->ncloser > DN_KAD_MAX_PEERS ||
        m->nproviders > DN_KAD_MAX_PEERS || m->naddrs > DN_KAD_MAX_ADDRS_TOTAL)
        return DN_EINVAL;
    if (m->key.len > DN_KAD_MAX_KEY || m->record_key.len > DN_KAD_MAX_KEY ||
        m->record_value.len > DN_KAD_MAX_VALUE || m->record_time.len > DN_KAD_MAX_TIME)
        return DN_ETOOBIG;
    for (int l = 0; l < 2; l++) {
        const dn__kad_peer *list = l ? m->providers : m->closer;
        size_t n = l ? m->nproviders : m->ncloser;
        for (size_t i = 0; i < n; i++) {
            const dn__kad_peer *p = &list[i];
            if (p->id.len == 0 || p->id.len > DN_PEERID_MAX || p->naddrs > DN_KAD_MAX_ADDRS ||
                p->connection > DN_KAD_CANNOT_CONNECT ||
                (size_t)p->addr_first + p->naddrs > m->naddrs)
                return DN_EINVAL;
            for (size_t j = 0; j < p->naddrs; j++)
                if (m->addrs[p->addr_first + j].len > DN_KAD_MAX_ADDR_LEN)
                    return DN_ETOOBIG;
        }
    }
    return 0;
}

static size_t msg_size(const dn__kad_msg *m)
{
    size_t n = varint_field(F_TYPE, m->type) + opt_len_field(F_KEY, m->key);
    if (m->has_record)
        n += len_field(F_RECORD, record_size(m));
    for (size_t i = 0; i < m->ncloser; i++)
        n += len_field(F_CLOSER, peer_size(m, &m->closer[i]));
    for (size_t i = 0; i < m->nproviders; i++)
        n += len_field(F_PROVIDERS, peer_size(m, &m->providers[i]));
    return n + varint_field(F_CLUSTER, m->cluster_level > 0 ? (uint64_t)m->cluster_level : 0);
}

static int put_opt(dn_buf *b, uint32_t num, dn__kad_span s)
{
    return s.len ? dn_pb_put_bytes(b, num, s.p, s.len) : 0;
}

static int put_head(dn_buf *b, uint32_t num, size_t len)
{
    int rc = dn_buf_append_uvarint(b, (uint64_t)num << 3 | DN_PB_LEN);
    return rc ? rc : dn_buf_append_uvarint(b, len);
}

static int put_peers(dn_buf *b, uint32_t num, const dn__kad_msg *m, const dn__kad_peer *list,
                     size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const dn__kad_peer *p = &list[i];
        rc = put_head(b, num, peer_size(m, p));
        if (!rc)
            rc = dn_pb_put_bytes(b, P_ID, p->id.bytes, p->id.len);
        for (size_t j = 0; j < p->naddrs && !rc; j++) {
            const dn__kad_span *a = &m->addrs[p->addr_first + j];
            rc = dn_pb_put_bytes(b, P_ADDRS, a->p, a->len);
        }
        if (!rc && p->connection)
            rc = dn_pb_put_varint(b, P_CONN, p->connection);
    }
    return rc;
}

static int encode(const dn__kad_msg *m, dn_buf *out, bool frame)
{
    int rc = check(m);
    if (rc)
        return rc;
    size_t size = msg_size(m);
    if (size > DN_KAD_MSG_MAX)
        return DN_ETOOBIG;
    size_t start = out->len;
    if ((rc = dn_buf_reserve(out, size + (frame ? 10 : 0))))
        return rc;
    if (frame)
        rc = dn_buf_append_uvarint(out, size);
    if (!rc && m->type)
        rc = dn_pb_put_varint(out, F_TYPE, m->type);
    if (!rc)
        rc = put_opt(out, F_KEY, m->key);
    if (!rc && m->has_record) {
        rc = put_head(out, F_RECORD, record_size(m));
        if (!rc)
            rc = put_opt(out, R_KEY, m->record_key);
        if (!rc)
            rc = put_opt(out, R_VALUE, m->record_value);
        if (!rc)
            rc = put_opt(out, R_TIME, m->record_time);
    }
    if (!rc)
        rc = put_peers(out, F_CLOSER, m, m->closer, m->ncloser);
    if (!rc)
        rc = put_peers(out, F_PROVIDERS, m, m->providers, m->nproviders);
    if (!rc && m->cluster_level > 0)
        rc = dn_pb_put_varint(out, F_CLUSTER, (uint64_t)m->cluster_level);
    if (rc)
        out->len = start;
    return rc;
}

int dn__kad_msg_encode(const dn__kad_msg *m, dn_buf *out)
{
    return encode(m, out, false);
}

int dn__kad_msg_encode_frame(const dn__kad_msg *m, dn_buf *out)
{
    return encode(m, out, true);
}

int dn__kad_msg_add_peer(dn__kad_msg *m, bool providers, const dn_peerid *id, uint8_t connection,
                         const dn__kad_span *addrs, size_t naddrs)
{
    if (!id || id->len == 0 || connection > DN_KAD_CANNOT_CONNECT || (naddrs && !addrs))
        return DN_EINVAL;
    size_t *n = providers ? &m->nproviders : &m->ncloser;
    if (*n >= DN_KAD_MAX_PEERS || naddrs > DN_KAD_MAX_ADDRS ||
        m->naddrs + naddrs > DN_KAD_MAX_ADDRS_TOTAL)
        return DN_ELIMIT;
    dn__kad_peer *p = &(providers ? m->providers : m->closer)[*n];
    p->id = *id;
    p->connection = connection;
    p->addr_first = (uint16_t)m->naddrs;
    p->naddrs = (uint16_t)naddrs;
    for (size_t i = 0; i < naddrs; i++)
        m->addrs[m->naddrs++] = addrs[i];
    (*n)++;
    return 0;
}

/* ---- framing ---- */

void dn__kad_reader_init(dn__kad_reader *r, size_t max)
{
    dn_buf_init(&r->buf);
    r->max = (max == 0 || max > DN_KAD_MSG_MAX) ? DN_KAD_MSG_MAX : max;
    r->need = 0;
    r->nhdr = 0;
    r->have_len = false;
    r->ready = false;
    r->err = 0;
}

void dn__kad_reader_free(dn__kad_reader *r)
{
    dn_buf_free(&r->buf);
    r->have_len = r->ready = false;
    r->nhdr = 0;
}

int dn__kad_reader_feed(dn__kad_reader *r, const uint8_t *p, size_t n)
{
    if (r->err)
        return r->err;
    if (r->ready)
        return 0;
    if (n > INT32_MAX)
        n = INT32_MAX; /* the count must fit the int we return */
    size_t used = 0;
    while (!r->have_len && used < n) {
        r->hdr[r->nhdr++] = p[used++];
        if (r->hdr[r->nhdr - 1] & 0x80) {
            /* 4 MiB needs 4 varint bytes: a fifth continuation byte means a
             * length of at least 2^35, far above any max. */
            if (r->nhdr >= 5)
                return r->err = DN_ETOOBIG;
            continue;
        }
        uint64_t v;
        int rc = dn_uvarint_decode(r->hdr, r->nhdr, &v);
        if (rc < 0)
            return r->err = (rc == DN_ETOOBIG ? DN_ETOOBIG : DN_EMALFORMED);
        if (v > r->max)
            return r->err = DN_ETOOBIG;
        r->need = (size_t)v;
        r->have_len = true;
        dn_buf_reset(&r->buf);
    }
    if (r->have_len) {
        size_t take = r->need - r->buf.len;
        if (take > n - used)
            take = n - used;
        if (take && dn_buf_append(&r->buf, p + used, take))
            return r->err = DN_ENOMEM;
        used += take;
        if (r->buf.len == r->need)
            r->ready = true;
    }
    return (int)used;
}

int dn__kad_reader_next(dn__kad_reader *r, const uint8_t **msg, size_t *len)
{
    if (r->err)
        return r->err;
    if (!r->ready)
        return 0;
    *msg = r->buf.len ? r->buf.data : (const uint8_t *)"";
    *len = r->buf.len;
    /* The bytes stay in buf until the next feed resets it. */
    r->ready = false;
    r->have_len = false;
    r->nhdr = 0;
    r->need = 0;
    return 1;
}

bool dn__kad_reader_partial(const dn__kad_reader *r)
{
    /* A whole frame waiting to be taken is not a partial one. */
    return r->nhdr > 0 && !r->ready;
}
