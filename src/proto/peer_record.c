#include "proto/peer_record.h"

#include <string.h>

#include "core/pb.h"
#include "crypto/envelope.h"
#include "crypto/verify_cache.h"
#include "dmsnet/error.h"

/* RFC 0003: the signature domain of peer records, and the payload type:
 * the multicodec code 0x0301 (libp2p-peer-record) as two big-endian bytes,
 * as go- and js-libp2p write it. */
static const char domain[] = "libp2p-peer-record";
static const uint8_t payload_type[] = {0x03, 0x01};

int dn__peer_record_seal(const dn_privkey *key, uint64_t seq, const dn_multiaddr *addrs,
                         size_t naddrs, dn_buf *out)
{
    dn_peerid self;
    dn_buf rec = DN_BUF_INIT, addr = DN_BUF_INIT;
    int rc = dn_peerid_from_pubkey(dn_privkey_public(key), &self);
    if (!rc)
        rc = dn_pb_put_bytes(&rec, 1, self.bytes, self.len);
    if (!rc)
        rc = dn_pb_put_varint(&rec, 2, seq);
    for (size_t i = 0; !rc && i < naddrs; i++) {
        dn_buf_reset(&addr);
        rc = dn_pb_put_bytes(&addr, 1, addrs[i].bytes, addrs[i].len);
        if (!rc)
            rc = dn_pb_put_bytes(&rec, 3, addr.data, addr.len);
    }
    if (!rc)
        rc = dn__envelope_seal(key, domain, payload_type, sizeof payload_type, rec.data, rec.len,
                               out);
    dn_buf_free(&rec);
    dn_buf_free(&addr);
    return rc;
}

static int parse_record(const uint8_t *p, size_t len, dn_peer_record *rec)
{
    dn_pb_reader r, ar;
    dn_pb_field f, af;
    int rc;
    bool have_id = false;
    memset(rec, 0, sizeof *rec);
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == 1 && f.wire_type == DN_PB_LEN) {
            rc = dn_peerid_from_bytes(f.bytes, f.len, &rec->peer);
            if (rc)
                return rc;
            have_id = true;
        } else if (f.number == 2 && f.wire_type == DN_PB_VARINT) {
            rec->seq = f.varint;
        } else if (f.number == 3 && f.wire_type == DN_PB_LEN) {
            dn_pb_reader_init(&ar, f.bytes, f.len);
            while ((rc = dn_pb_next(&ar, &af)) == 1) {
                if (af.number == 1 && af.wire_type == DN_PB_LEN &&
                    rec->naddrs < DN_PEER_RECORD_MAX_ADDRS &&
                    dn_multiaddr_from_bytes(af.bytes, af.len, &rec->addrs[rec->naddrs]) == 0)
                    rec->naddrs++;
            }
            if (rc < 0)
                return rc;
        }
    }
    if (rc < 0)
        return rc;
    return have_id ? 0 : DN_EMALFORMED;
}

int dn__peer_record_open(const uint8_t *env, size_t len, const dn_peerid *expected,
                         struct dn_verify_cache *vc, dn_peer_record *rec)
{
    dn__envelope e;
    memset(rec, 0, sizeof *rec);
    int rc = dn__envelope_parse(env, len, payload_type, sizeof payload_type, &e);
    if (rc)
        return rc;
    /* Ownership first, from the bytes: is this the expected peer's key, and
     * its record? Only then is the key parsed and the signature checked. */
    if (expected && !dn__key_bytes_match_peer(e.pub, e.pub_len, expected))
        return DN_EPEERID;
    rc = parse_record(e.payload, e.payload_len, rec);
    if (!rc && expected && !dn_peerid_equal(&rec->peer, expected))
        rc = DN_EPEERID;
    if (!rc && !expected) { /* a key that does not parse says so first */
        dn_pubkey *key = NULL;
        rc = dn_pubkey_from_protobuf(e.pub, e.pub_len, &key);
        dn_pubkey_free(key);
    }
    /* RFC 0003: the record's peer id is the signer's. */
    if (!rc)
        rc = dn__envelope_verify(&e, domain, &rec->peer, vc);
    if (rc)
        memset(rec, 0, sizeof *rec);
    return rc;
}
