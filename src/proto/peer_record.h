/* Signed peer records (RFC 0002 signed envelopes, RFC 0003 peer records
 * in libp2p/specs): a PeerRecord { peer_id 1, seq 2, addresses 3 {
 * multiaddr 1 } } wrapped in an Envelope { public_key 1, payload_type 2,
 * payload 3, signature 5 } signed over the "libp2p-peer-record" domain. */
#ifndef DN_PROTO_PEER_RECORD_H
#define DN_PROTO_PEER_RECORD_H

#include "crypto/envelope.h" /* dn__key_bytes_match_peer */
#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/peerid.h"

#define DN_PEER_RECORD_MAX_ADDRS 32

typedef struct dn_peer_record {
    dn_peerid peer;
    uint64_t seq;
    dn_multiaddr addrs[DN_PEER_RECORD_MAX_ADDRS];
    size_t naddrs;
} dn_peer_record;

/* Append the signed envelope for our record to out. */
int dn__peer_record_seal(const dn_privkey *key, uint64_t seq, const dn_multiaddr *addrs,
                         size_t naddrs, dn_buf *out);
/* Open an envelope from the peer `expected`: check the payload type, that
 * the envelope's key is the key of `expected` and that the record names
 * `expected`, and only then verify the signature (looked up in / added to
 * the verified-signature cache vc, crypto/verify_cache.h; NULL: always
 * verify). So a peer cannot make us parse or verify keys of others: a
 * record signed by anyone but the peer costs a hash, not a verification.
 * expected NULL accepts any signer whose key matches the record's peer id.
 * Fills rec (addresses beyond the max are dropped); rec is zeroed on error.
 * Errors: DN_EMALFORMED / DN_ETRUNCATED, DN_ETOOBIG (key longer than any we
 * accept), DN_EUNSUPPORTED (payload type, key type or size), DN_EPEERID
 * (key or record of another peer), DN_EBADSIG. */
struct dn_verify_cache;
int dn__peer_record_open(const uint8_t *env, size_t len, const dn_peerid *expected,
                         struct dn_verify_cache *vc, dn_peer_record *rec);

#endif
