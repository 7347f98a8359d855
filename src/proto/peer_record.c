#include "proto/peer_record.h"

#include <string.h>

#include <sodium.h>

#include "core/pb.h"
#include "crypto/verify_cache.h"
#include "dmsnet/error.h"

/* RFC 0003: the signature domain of peer records, and the payload type:
 * the multicodec code 0x0301 (libp2p-peer-record) as two big-endian bytes,
 * as go- and js-libp2p write it. */
static const char domain[] = "libp2p-peer-record";
static const uint8_t payload_type[] = {0x03, 0x01};

/* The bytes a signature covers: each part length-prefixed (RFC 0002). */
static int signed_bytes(const uint8_t *type, size_t type_len, const uint8_t *payload,
                        size_t payload_len, dn_buf *out)
{
    int rc = dn_buf_append_uvarint(out, sizeof domain - 1);
    if (!rc)
        rc = dn_buf_append(out, domain, sizeof domain - 1);
    if (!rc)
        rc = dn_buf_append_uvarint(out, type_len);
    if (!rc)
        rc = dn_buf_append(out, type, type_len);
    if (!rc)
        rc = dn_buf_append_uvarint(out, payload_len);
    if (!rc)
        rc = dn_buf_append(out, payload, payload_len);
    return rc;
}

int dn__peer_record_seal(const dn_privkey *key, uint64_t seq, const dn_multiaddr *addrs,
                         size_t naddrs, dn_buf *out)
{
    dn_peerid self;
    dn_buf rec = DN_BUF_INIT, addr = DN_BUF_INIT, tosign = DN_BUF_INIT, pub = DN_BUF_INIT;
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;
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
        rc = signed_bytes(payload_type, sizeof payload_type, rec.data, rec.len, &tosign);
    if (!rc)
        rc = dn_privkey_sign(key, tosign.data, tosign.len, sig, &siglen);
    if (!rc)
        rc = dn_pubkey_to_protobuf(dn_privkey_public(key), &pub);
    if (!rc)
        rc = dn_pb_put_bytes(out, 1, pub.data, pub.len);
    if (!rc)
        rc = dn_pb_put_bytes(out, 2, payload_type, sizeof payload_type);
    if (!rc)
        rc = dn_pb_put_bytes(out, 3, rec.data, rec.len);
    if (!rc)
        rc = dn_pb_put_bytes(out, 5, sig, siglen);
    dn_buf_free(&rec);
    dn_buf_free(&addr);
    dn_buf_free(&tosign);
    dn_buf_free(&pub);
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

bool dn__key_bytes_match_peer(const uint8_t *pb, size_t len, const dn_peerid *id)
{
    if (!id || (!pb && len))
        return false;
    if (len <= 42) /* identity multihash: the bytes themselves */
        return id->len == 2 + len && id->bytes[0] == 0x00 && id->bytes[1] == len &&
               (len == 0 || memcmp(id->bytes + 2, pb, len) == 0);
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, pb, len);
    return id->len == 2 + sizeof digest && id->bytes[0] == 0x12 && id->bytes[1] == sizeof digest &&
           memcmp(id->bytes + 2, digest, sizeof digest) == 0;
}

int dn__peer_record_open(const uint8_t *env, size_t len, const dn_peerid *expected,
                         struct dn_verify_cache *vc, dn_peer_record *rec)
{
    dn_pb_reader r;
    dn_pb_field f;
    const uint8_t *pub = NULL, *type = NULL, *payload = NULL, *sig = NULL;
    size_t pub_len = 0, type_len = 0, payload_len = 0, sig_len = 0;
    int rc;
    memset(rec, 0, sizeof *rec);
    dn_pb_reader_init(&r, env, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.wire_type != DN_PB_LEN)
            continue;
        switch (f.number) {
        case 1:
            pub = f.bytes;
            pub_len = f.len;
            break;
        case 2:
            type = f.bytes;
            type_len = f.len;
            break;
        case 3:
            payload = f.bytes;
            payload_len = f.len;
            break;
        case 5:
            sig = f.bytes;
            sig_len = f.len;
            break;
        default: break;
        }
    }
    if (rc < 0)
        return rc;
    if (!pub || !type || !payload || !sig)
        return DN_EMALFORMED;
    if (type_len != sizeof payload_type || memcmp(type, payload_type, type_len) != 0)
        return DN_EUNSUPPORTED;
    if (pub_len > DN_PUBKEY_PB_MAX)
        return DN_ETOOBIG;
    /* Ownership first, from the bytes: is this the expected peer's key, and
     * its record? Only then is the key parsed and the signature checked. */
    if (expected && !dn__key_bytes_match_peer(pub, pub_len, expected))
        return DN_EPEERID;
    rc = parse_record(payload, payload_len, rec);
    if (!rc && expected && !dn_peerid_equal(&rec->peer, expected))
        rc = DN_EPEERID;
    dn_pubkey *key = NULL;
    if (!rc)
        rc = dn_pubkey_from_protobuf(pub, pub_len, &key);
    /* RFC 0003: the record's peer id is the signer's. */
    if (!rc && !dn_peerid_matches_pubkey(&rec->peer, key))
        rc = DN_EPEERID;
    dn_buf tosign = DN_BUF_INIT;
    if (!rc)
        rc = signed_bytes(type, type_len, payload, payload_len, &tosign);
    if (!rc)
        rc = dn_verify_cached(vc, key, tosign.data, tosign.len, sig, sig_len);
    dn_buf_free(&tosign);
    dn_pubkey_free(key);
    if (rc)
        memset(rec, 0, sizeof *rec);
    return rc;
}
