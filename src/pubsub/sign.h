/* Message signing (StrictSign) and message ids (libp2p/specs
 * pubsub/README.md "Message Signing", "The Message"; js-libp2p
 * packages/gossipsub utils/buildRawMessage.ts and msgIdFn.ts).
 *
 * The signature covers "libp2p-pubsub:" followed by the Message protobuf
 * holding only from, data, seqno and topic, in field order and as present
 * in the message (an empty data field present stays present; an empty
 * topic is omitted, as js's proto3 encoder does). Under StrictSign:
 * - seqno is present and exactly 8 bytes (big-endian counter);
 * - from is a peer id; the key is Message.key when present (it must hash
 *   to from), else the key embedded in an identity-multihash peer id;
 * - the signature verifies with that key.
 *
 * Message ids: js's default (msgIdFnStrictSign) is the PublicKey protobuf
 * of the author followed by the 8 seqno bytes; go's default is from +
 * seqno. Peers must agree for IHAVE/IWANT/IDONTWANT to match, so the mode
 * is a router setting; js is the default. */
#ifndef DN_PUBSUB_SIGN_H
#define DN_PUBSUB_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "pubsub/pubsub_msg.h"

#define DN_PUBSUB_SIGN_PREFIX "libp2p-pubsub:"

typedef enum dn__pubsub_msgid_mode {
    DN_PUBSUB_MSGID_JS = 0, /* PublicKey protobuf + seqno (js default) */
    DN_PUBSUB_MSGID_GO = 1, /* from + seqno (go default) */
} dn__pubsub_msgid_mode;

/* Append the bytes the author signs (prefix + the four fields). */
int dn__pubsub_signed_bytes(const dn__pubsub_message *m, dn_buf *out);

/* Build a signed Message protobuf (appended to out): from = the key's peer
 * id, data, seqno (8 bytes big-endian), topic, signature, key (the public
 * key protobuf; js always sends it). topic: 1..DN_PUBSUB_TOPIC_MAX bytes. */
int dn__pubsub_message_sign(const dn_privkey *k, const char *topic, size_t topic_len,
                            const uint8_t *data, size_t len, uint64_t seqno, dn_buf *out);

/* Check m under StrictSign. Returns 0, DN_EMALFORMED (seqno missing or not
 * 8 bytes, from missing or not a peer id, key unparsable, no key at all),
 * DN_EPEERID (key does not hash to from), DN_EBADSIG. When author is not
 * NULL it receives from as a peer id on success. */
int dn__pubsub_message_verify(const dn__pubsub_message *m, dn_peerid *author);

/* The message id of m (which needs from and an 8-byte seqno; for js mode
 * also a key, in Message.key or embedded in from). Writes at most cap
 * bytes; returns the id length or DN_EMALFORMED / DN_ETOOBIG. Does not
 * verify: call it on verified messages, or to look an id up. */
int dn__pubsub_msgid(const dn__pubsub_message *m, dn__pubsub_msgid_mode mode, uint8_t *out,
                     size_t cap);

#endif
