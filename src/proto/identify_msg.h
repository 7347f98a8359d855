/* The Identify message (libp2p/specs identify/README.md), decoded into a
 * bounded struct and encoded back: no host, no I/O, no key parsing or
 * signature checks (the caller decides what to trust).
 *
 *   message Identify {
 *     optional bytes  publicKey = 1;        repeated bytes  listenAddrs = 2;
 *     repeated string protocols = 3;        optional bytes  observedAddr = 4;
 *     optional string protocolVersion = 5;  optional string agentVersion = 6;
 *     optional bytes  signedPeerRecord = 8;
 *   }
 *
 * Bounds, so one message from a peer costs us at most a fixed amount:
 * - at most DN_IDENTIFY_MSG_MAX bytes (DN_ETOOBIG beyond);
 * - at most DN_IDENTIFY_MAX_ADDRS listen addresses and
 *   DN_IDENTIFY_MAX_PROTOCOLS protocols: the rest are counted in
 *   dropped_addrs / dropped_protocols and not kept, as are addresses that
 *   are not valid multiaddrs and protocol names that are empty, longer
 *   than DN_IDENTIFY_MAX_STRING - 1 bytes or hold a control byte (< 0x20:
 *   a multistream-select protocol id is one line of text, so such a name
 *   could never be negotiated);
 * - protocolVersion and agentVersion are cut to DN_IDENTIFY_MAX_STRING - 1
 *   bytes and at a NUL byte (they are kept as C strings); they may hold
 *   any other bytes: escape them before printing (dn_escape_text);
 * - publicKey and signedPeerRecord, the fields that cost a key parse and a
 *   signature verification, may appear once each. Both are optional
 *   (non-repeated) fields, which every encoder we know (go, js, rust, ours)
 *   writes at most once; a second copy would leave us to pick one (protobuf
 *   keeps the last, a streaming reader would act on the first), and a
 *   message of many copies was the CPU attack of issue 8 (52 records, one
 *   RSA verification each). So a repeat is DN_EMALFORMED: the message is
 *   refused whole, nothing of it is applied. go-libp2p's split of a large
 *   identify into two messages (the record alone in the second) stays
 *   fine: each message holds one copy.
 * Fields with an unexpected wire type and unknown fields are skipped, as
 * protobuf readers do with unknown fields. observedAddr that is not a valid
 * multiaddr is ignored; repeated, the last valid one wins. */
#ifndef DN_PROTO_IDENTIFY_MSG_H
#define DN_PROTO_IDENTIFY_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/multiaddr.h"

#define DN_IDENTIFY_MSG_MAX (64u * 1024u)
#define DN_IDENTIFY_MAX_ADDRS 32
#define DN_IDENTIFY_MAX_PROTOCOLS 128
#define DN_IDENTIFY_MAX_STRING 256 /* NUL included */

typedef struct dn__identify_msg {
    /* publicKey: the PublicKey protobuf as sent (not parsed); at most
     * DN_PUBKEY_PB_MAX bytes, longer is DN_ETOOBIG. */
    bool has_public_key;
    uint8_t *public_key; /* owned; NULL when has_public_key and length 0 */
    size_t public_key_len;

    bool has_listen_addrs; /* a listenAddrs field was present (even if dropped) */
    dn_multiaddr listen_addrs[DN_IDENTIFY_MAX_ADDRS];
    size_t nlisten_addrs;
    size_t dropped_addrs;

    bool has_protocols; /* a protocols field was present (even if dropped) */
    char *protocols[DN_IDENTIFY_MAX_PROTOCOLS]; /* owned, NUL-terminated */
    size_t nprotocols;
    size_t dropped_protocols;

    bool has_observed_addr;
    dn_multiaddr observed_addr;

    bool has_protocol_version;
    char protocol_version[DN_IDENTIFY_MAX_STRING];
    bool has_agent_version;
    char agent_version[DN_IDENTIFY_MAX_STRING];

    /* signedPeerRecord: the signed envelope as sent (not verified). */
    bool has_signed_record;
    uint8_t *signed_record; /* owned; NULL when has_signed_record and length 0 */
    size_t signed_record_len;
} dn__identify_msg;

/* Decode one Identify message (without its length prefix) into out, which
 * need not be initialised. Returns 0, or DN_EMALFORMED / DN_ETRUNCATED (bad
 * protobuf, a repeated publicKey or signedPeerRecord), DN_ETOOBIG (message
 * or key over its bound), DN_ENOMEM; on error out holds nothing to free. */
int dn__identify_decode(const uint8_t *p, size_t len, dn__identify_msg *out);
/* Append the protobuf encoding of m (no length prefix) to out: the fields
 * present, in field-number order. Returns 0, DN_ENOMEM, or DN_EINVAL for a
 * message outside the bounds above (so what we encode, we decode). */
int dn__identify_encode(const dn__identify_msg *m, dn_buf *out);
/* Release what m owns and clear it (safe on a zeroed or freed message). */
void dn__identify_msg_free(dn__identify_msg *m);

#endif
