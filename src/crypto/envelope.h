/* RFC 0002 signed envelopes (libp2p/specs RFC/0002-signed-envelopes.md),
 * the generic part: Envelope { public_key 1, payload_type 2, payload 3,
 * signature 5 }, the signature over the uvarint-length-prefixed domain,
 * payload type and payload (the domain is never sent). Users bring their
 * own domain string and payload type: peer records (proto/peer_record.c)
 * and the DHT's /dmsnet/ records (kad/records.c). */
#ifndef DN_CRYPTO_ENVELOPE_H
#define DN_CRYPTO_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"

struct dn_verify_cache;

/* Append the envelope of payload, signed by key over domain, to out. */
int dn__envelope_seal(const dn_privkey *key, const char *domain, const uint8_t *type,
                      size_t type_len, const uint8_t *payload, size_t payload_len, dn_buf *out);

/* The fields of an envelope, as spans into its bytes. */
typedef struct dn__envelope {
    const uint8_t *pub, *type, *payload, *sig;
    size_t pub_len, type_len, payload_len, sig_len;
} dn__envelope;

/* Split env into its fields, checking only the form and the payload type
 * (DN_EUNSUPPORTED when it is not type[0..type_len)), DN_EMALFORMED /
 * DN_ETRUNCATED, DN_ETOOBIG (a key longer than any we accept). Nothing
 * verified yet: the caller checks what it must from the bytes (whose key
 * it is) before paying for dn__envelope_verify. */
int dn__envelope_parse(const uint8_t *env, size_t len, const uint8_t *type, size_t type_len,
                       dn__envelope *out);

/* Verify the signature over domain. When signer is not NULL the key must
 * be signer's (DN_EPEERID). Parses the key: DN_EUNSUPPORTED / DN_EMALFORMED
 * for a key we cannot read, DN_EBADSIG for a bad signature. vc may be NULL. */
int dn__envelope_verify(const dn__envelope *e, const char *domain, const dn_peerid *signer,
                        struct dn_verify_cache *vc);

/* Whether pb (a PublicKey protobuf, as a peer sent it) is the key of id:
 * its peer id computed from the bytes (peer-ids spec: identity multihash up
 * to 42 bytes, sha2-256 above) without parsing the key. Keys parse only in
 * canonical form (keys.c), so this is dn_peerid_matches_pubkey for any key
 * that parses, at the cost of one hash. */
bool dn__key_bytes_match_peer(const uint8_t *pb, size_t len, const dn_peerid *id);

#endif
