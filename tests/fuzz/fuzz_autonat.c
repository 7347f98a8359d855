/* libFuzzer target for the AutoNAT v2 codec (src/proto/autonat_msg.c) on
 * arbitrary bytes, read the way the service reads a stream: split into
 * length-prefixed frames (dn__autonat_frame), each decoded as a Message and
 * as DialBack / DialBackResponse. Checks the contract of autonat_msg.h:
 * errors are documented codes; frames stay inside the input and the bound;
 * a decoded Message keeps its bounds (address count and lengths, spans
 * inside the input); and encoding it gives bytes that decode to a message
 * encoding to the very same bytes (a fixed point) with the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/buf.h"
#include "dmsnet/error.h"
#include "proto/autonat_msg.h"

static bool inside(const uint8_t *p, size_t n, const uint8_t *lo, size_t len)
{
    return n == 0 || (p >= lo && p + n <= lo + len);
}

static bool same(const dn__autonat_msg *a, const dn__autonat_msg *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case DN_AUTONAT_DIAL_REQUEST:
        if (a->u.dial_request.naddrs != b->u.dial_request.naddrs ||
            a->u.dial_request.nonce != b->u.dial_request.nonce)
            return false;
        for (size_t i = 0; i < a->u.dial_request.naddrs; i++)
            if (a->u.dial_request.addr_lens[i] != b->u.dial_request.addr_lens[i] ||
                (a->u.dial_request.addr_lens[i] &&
                 memcmp(a->u.dial_request.addrs[i], b->u.dial_request.addrs[i],
                        a->u.dial_request.addr_lens[i])))
                return false;
        return true;
    case DN_AUTONAT_DIAL_RESPONSE:
        return !memcmp(&a->u.dial_response, &b->u.dial_response, sizeof a->u.dial_response);
    case DN_AUTONAT_DIAL_DATA_REQUEST:
        return a->u.dial_data_request.addr_idx == b->u.dial_data_request.addr_idx &&
               a->u.dial_data_request.num_bytes == b->u.dial_data_request.num_bytes;
    case DN_AUTONAT_DIAL_DATA_RESPONSE:
        return a->u.dial_data_response.len == b->u.dial_data_response.len &&
               (a->u.dial_data_response.len == 0 ||
                !memcmp(a->u.dial_data_response.data, b->u.dial_data_response.data,
                        a->u.dial_data_response.len));
    default: return false;
    }
}

static bool decode_error(int rc)
{
    return rc == DN_EMALFORMED || rc == DN_ETRUNCATED || rc == DN_ETOOBIG;
}

static void check_message(const uint8_t *p, size_t len)
{
    static dn__autonat_msg m, m2, m3;
    int rc = dn__autonat_decode(p, len, &m);
    if (rc) {
        if (!decode_error(rc))
            abort();
        return;
    }
    if (m.type < DN_AUTONAT_DIAL_REQUEST || m.type > DN_AUTONAT_DIAL_DATA_RESPONSE)
        abort();
    if (m.type == DN_AUTONAT_DIAL_REQUEST) {
        if (m.u.dial_request.naddrs > DN_AUTONAT_MAX_ADDRS)
            abort();
        for (size_t i = 0; i < m.u.dial_request.naddrs; i++)
            if (m.u.dial_request.addr_lens[i] > DN_MULTIADDR_MAX ||
                !inside(m.u.dial_request.addrs[i], m.u.dial_request.addr_lens[i], p, len))
                abort();
    }
    if (m.type == DN_AUTONAT_DIAL_DATA_RESPONSE &&
        (!m.u.dial_data_response.data ||
         !inside(m.u.dial_data_response.data, m.u.dial_data_response.len, p, len)))
        abort();
    dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT;
    const uint8_t *body;
    size_t blen;
    if (dn__autonat_encode(&m, &a))
        abort(); /* what decodes, encodes */
    if (dn__autonat_frame(a.data, a.len, DN_AUTONAT_MSG_MAX, &body, &blen) != (int)a.len)
        abort();
    if (dn__autonat_decode(body, blen, &m2) || !same(&m, &m2))
        abort();
    if (dn__autonat_encode(&m2, &b) || a.len != b.len || memcmp(a.data, b.data, a.len))
        abort();
    if (dn__autonat_decode(b.data + (a.len - blen), blen, &m3) || !same(&m2, &m3))
        abort();
    dn_buf_free(&a);
    dn_buf_free(&b);
}

static void check_dial_back(const uint8_t *p, size_t len)
{
    uint64_t nonce;
    int rc = dn__autonat_decode_dial_back(p, len, &nonce);
    if (rc) {
        if (!decode_error(rc))
            abort();
    } else {
        dn_buf b = DN_BUF_INIT;
        uint64_t again;
        if (dn__autonat_encode_dial_back(nonce, &b) || b.len != 10 ||
            dn__autonat_decode_dial_back(b.data + 1, b.len - 1, &again) || again != nonce)
            abort();
        dn_buf_free(&b);
    }
    uint32_t st;
    rc = dn__autonat_decode_dial_back_response(p, len, &st);
    if (rc && !decode_error(rc))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    for (unsigned frames = 0; off < size && frames < 64; frames++) {
        const uint8_t *body;
        size_t blen;
        int n = dn__autonat_frame(data + off, size - off, DN_AUTONAT_MSG_MAX, &body, &blen);
        if (n == 0)
            break;
        if (n < 0) {
            if (n != DN_EMALFORMED && n != DN_ETOOBIG)
                abort();
            break;
        }
        if ((size_t)n > size - off || blen > DN_AUTONAT_MSG_MAX ||
            !inside(body, blen, data + off, (size_t)n))
            abort();
        check_message(body, blen);
        check_dial_back(body, blen);
        off += (size_t)n;
    }
    /* the whole input as one unframed message too */
    check_message(data, size);
    check_dial_back(data, size);
    return 0;
}
