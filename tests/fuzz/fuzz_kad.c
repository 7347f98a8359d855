/* libFuzzer target for the Kademlia message codec and frame reader
 * (src/kad/kad_msg.c) on arbitrary bytes. Checks the contract of
 * kad_msg.h: errors are the documented codes and leave the message empty;
 * a decoded message keeps its bounds and every span lies inside the input;
 * encoding it gives bytes that decode to a message encoding to the very
 * same bytes (a fixed point). The same bytes, cut into chunks whose sizes
 * come from the input, go through the frame reader: it takes bytes up to
 * each frame's end only, never yields a frame over its max, and the frames
 * it yields decode like any message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/buf.h"
#include "dmsnet/error.h"
#include "kad/kad_msg.h"

static const uint8_t *in_lo, *in_hi;

static void check_span(dn__kad_span s, size_t max)
{
    if (s.len > max || (s.len && (s.p < in_lo || s.p + s.len > in_hi)))
        abort();
}

static void check_bounds(const dn__kad_msg *m)
{
    if (m->type > DN_KAD_PING || m->cluster_level < 0)
        abort();
    if (m->ncloser > DN_KAD_MAX_PEERS || m->nproviders > DN_KAD_MAX_PEERS ||
        m->naddrs > DN_KAD_MAX_ADDRS_TOTAL)
        abort();
    check_span(m->key, DN_KAD_MAX_KEY);
    check_span(m->record_key, DN_KAD_MAX_KEY);
    check_span(m->record_value, DN_KAD_MAX_VALUE);
    check_span(m->record_time, DN_KAD_MAX_TIME);
    if (!m->has_record && (m->record_key.len || m->record_value.len || m->record_time.len))
        abort();
    size_t addrs = 0;
    for (int l = 0; l < 2; l++) {
        const dn__kad_peer *list = l ? m->providers : m->closer;
        size_t n = l ? m->nproviders : m->ncloser;
        for (size_t i = 0; i < n; i++) {
            const dn__kad_peer *p = &list[i];
            dn_peerid again;
            if (p->id.len == 0 || dn_peerid_from_bytes(p->id.bytes, p->id.len, &again))
                abort();
            if (p->naddrs > DN_KAD_MAX_ADDRS || p->connection > DN_KAD_CANNOT_CONNECT ||
                (size_t)p->addr_first + p->naddrs > m->naddrs)
                abort();
            addrs += p->naddrs;
        }
    }
    if (addrs != m->naddrs)
        abort();
    for (size_t i = 0; i < m->naddrs; i++) {
        if (m->addrs[i].len == 0)
            abort();
        check_span(m->addrs[i], DN_KAD_MAX_ADDR_LEN);
    }
}

static bool documented(int rc)
{
    return rc == DN_EMALFORMED || rc == DN_ETRUNCATED || rc == DN_ETOOBIG || rc == DN_EUNSUPPORTED;
}

static void decode_checked(const uint8_t *data, size_t size)
{
    static dn__kad_msg m, m2; /* ~10 KiB each */
    in_lo = data;
    in_hi = data + size;
    int rc = dn__kad_msg_decode(data, size, &m);
    if (rc) {
        if (!documented(rc))
            abort();
        if (m.ncloser || m.nproviders || m.naddrs || m.has_record || m.key.len)
            abort();
        return;
    }
    check_bounds(&m);
    dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT;
    /* Dropping and skipping only shrink a message, so what decoded encodes. */
    if (dn__kad_msg_encode(&m, &a) || a.len > size)
        abort();
    in_lo = a.data;
    in_hi = a.len ? a.data + a.len : a.data;
    if (dn__kad_msg_decode(a.data, a.len, &m2))
        abort();
    check_bounds(&m2);
    if (m2.dropped_peers || m2.dropped_addrs || m2.ncloser != m.ncloser ||
        m2.nproviders != m.nproviders || m2.naddrs != m.naddrs || m2.type != m.type ||
        m2.has_record != m.has_record)
        abort();
    if (dn__kad_msg_encode(&m2, &b) || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len)))
        abort();
    dn_buf_free(&a);
    dn_buf_free(&b);
}

static void frames(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    /* byte 0: the chunk size pattern, byte 1: the reader's max */
    size_t chunk = (size_t)(data[0] % 17) + 1;
    size_t max = data[1] < 128 ? (size_t)data[1] * 64 : 0;
    dn__kad_reader r;
    dn__kad_reader_init(&r, max);
    size_t limit = r.max;
    const uint8_t *p = data + 2;
    size_t left = size - 2;
    int guard = 0;
    while (left) {
        size_t n = chunk < left ? chunk : left;
        int used = dn__kad_reader_feed(&r, p, n);
        if (used < 0) {
            if (used != DN_ETOOBIG && used != DN_EMALFORMED)
                abort();
            if (dn__kad_reader_next(&r, &(const uint8_t *){0}, &(size_t){0}) != used)
                abort(); /* sticky */
            break;
        }
        if ((size_t)used > n)
            abort();
        p += used;
        left -= (size_t)used;
        const uint8_t *msg;
        size_t len;
        int rc = dn__kad_reader_next(&r, &msg, &len);
        if (rc == 1) {
            if (len > limit)
                abort();
            uint8_t *copy = malloc(len ? len : 1);
            if (!copy)
                abort();
            memcpy(copy, msg, len);
            decode_checked(copy, len);
            free(copy);
        } else if (rc != 0 || used == 0) {
            abort(); /* no progress without a frame to take */
        }
        if (++guard > 1 << 20)
            abort();
    }
    dn__kad_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_checked(data, size);
    frames(data, size);
    return 0;
}
