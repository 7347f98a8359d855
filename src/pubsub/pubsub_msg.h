/* The pubsub RPC (libp2p/specs pubsub/README.md, gossipsub-v1.0.md,
 * v1.1.md "Protobuf", v1.2.md "IDONTWANT"), decoded into a bounded view
 * and encoded back. No host, no I/O, no signature checks (sign.h).
 *
 *   RPC     { repeated SubOpts subscriptions = 1; repeated Message publish = 2;
 *             optional ControlMessage control = 3; }
 *   SubOpts { optional bool subscribe = 1; optional string topicid = 2; }
 *   Message { from 1, data 2, seqno 3, topic 4, signature 5, key 6 } (bytes/string)
 *   Control { ihave 1 {topicID 1, messageIDs 2*}, iwant 2 {messageIDs 1*},
 *             graft 3 {topicID 1}, prune 4 {topicID 1, peers 2* {peerID 1,
 *             signedPeerRecord 2}, backoff 3 (uint64)}, idontwant 5 {messageIDs 1*} }
 *
 * Decoding is zero-copy: every span points into the caller's input, which
 * must outlive the decoded RPC. Only the arrays are allocated (bounded by
 * the counts below, so one RPC costs at most a fixed amount of memory).
 *
 * Bounds (an RPC beyond any of them is refused whole with DN_ETOOBIG; the
 * js-libp2p decoder does the same with its limits, decodeRpc.ts, and our
 * counts are at least its defaults, so nothing js sends is refused):
 * - the RPC itself: DN_PUBSUB_RPC_MAX bytes (the frame reader refuses a
 *   longer length prefix before buffering it);
 * - subscriptions, messages, control entries (IHAVE/IWANT/GRAFT/PRUNE/
 *   IDONTWANT messages together), message ids over all IHAVEs, over all
 *   IWANTs, over all IDONTWANTs, PX peers over all PRUNEs: DN_PUBSUB_MAX_*;
 * - a topic: 1..DN_PUBSUB_TOPIC_MAX bytes (an empty topic id in a
 *   subscription, IHAVE, GRAFT or PRUNE is DN_EMALFORMED; a message's
 *   topic may be empty, as proto3 omits it);
 * - a message id: 1..DN_PUBSUB_MSGID_MAX bytes (js ids are the key
 *   protobuf + 8 bytes, so this fits an RSA-8192 key);
 * - Message.key at most DN_PUBKEY_PB_MAX bytes, signature at most 1 KiB.
 * A field we know with the wrong wire type is DN_EMALFORMED; unknown fields
 * are skipped, as protobuf readers do. */
#ifndef DN_PUBSUB_MSG_H
#define DN_PUBSUB_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"

#define DN_PUBSUB_RPC_MAX (1024u * 1024u + 4096u) /* 1 MiB payload + envelope */
#define DN_PUBSUB_TOPIC_MAX 512
#define DN_PUBSUB_MSGID_MAX (1200 + 8)
#define DN_PUBSUB_SIG_MAX 1024
#define DN_PUBSUB_MAX_SUBS 5000
#define DN_PUBSUB_MAX_MSGS 5000
#define DN_PUBSUB_MAX_CTRL 5000      /* control entries of all kinds */
#define DN_PUBSUB_MAX_IHAVE_IDS 5000 /* js GossipsubMaxIHaveLength */
#define DN_PUBSUB_MAX_IWANT_IDS 5000
#define DN_PUBSUB_MAX_IDONTWANT_IDS 512 /* js GossipsubIdontwantMaxMessages */
#define DN_PUBSUB_MAX_PX 16             /* js GossipsubPrunePeers, per RPC */
#define DN_PUBSUB_SEQNO_LEN 8

typedef struct dn__ps_span {
    const uint8_t *p;
    size_t len;
} dn__ps_span;

typedef struct dn__pubsub_subopt {
    bool subscribe;
    dn__ps_span topic;
} dn__pubsub_subopt;

typedef struct dn__pubsub_message {
    /* Presence matters: the signed bytes hold exactly the fields the
     * author wrote (an empty data field is written by js). */
    bool has_from, has_data, has_seqno, has_signature, has_key;
    dn__ps_span from, data, seqno, topic, signature, key;
    /* The Message protobuf as received (decode) or, when set before
     * encoding, written verbatim instead of the fields above (forwarding
     * re-sends the author's bytes). */
    dn__ps_span raw;
} dn__pubsub_message;

typedef struct dn__pubsub_ihave {
    dn__ps_span topic;
    size_t first, count; /* range in rpc.ihave_ids */
} dn__pubsub_ihave;

typedef struct dn__pubsub_px {
    dn__ps_span peer_id;
    dn__ps_span signed_record; /* a signed envelope, not verified here */
} dn__pubsub_px;

typedef struct dn__pubsub_prune {
    dn__ps_span topic;
    size_t first, count; /* range in rpc.px */
    bool has_backoff;
    uint64_t backoff_s;
} dn__pubsub_prune;

typedef struct dn__pubsub_rpc {
    dn__pubsub_subopt *subs;
    size_t nsubs;
    dn__pubsub_message *msgs;
    size_t nmsgs;
    bool has_control;
    dn__pubsub_ihave *ihave;
    size_t nihave;
    dn__ps_span *ihave_ids;
    size_t nihave_ids;
    /* All IWANT (and all IDONTWANT) messages of the RPC, flattened: the
     * protocol gives them no meaning apart from their ids. Encoded as one. */
    dn__ps_span *iwant_ids;
    size_t niwant_ids;
    dn__ps_span *graft; /* topics */
    size_t ngraft;
    dn__pubsub_prune *prune;
    size_t nprune;
    dn__pubsub_px *px;
    size_t npx;
    dn__ps_span *idontwant_ids;
    size_t nidontwant_ids;
    /* Arrays: the decoder allocates them; an encoder caller may point them
     * anywhere (dn__pubsub_rpc_free only frees what `owned` says). */
    bool owned;
} dn__pubsub_rpc;

/* Decode one RPC (no length prefix) into out (need not be initialised).
 * Returns 0, DN_EMALFORMED / DN_ETRUNCATED (bad protobuf, wrong wire type,
 * empty topic id or message id), DN_ETOOBIG (a bound above), DN_ENOMEM; on
 * error out owns nothing. */
int dn__pubsub_rpc_decode(const uint8_t *p, size_t len, dn__pubsub_rpc *out);
void dn__pubsub_rpc_free(dn__pubsub_rpc *r);

/* Decode one Message protobuf (the bytes of an RPC publish entry). */
int dn__pubsub_message_decode(const uint8_t *p, size_t len, dn__pubsub_message *out);
/* Append the Message protobuf: m->raw verbatim when set, else the fields
 * present in field order (topic written when non-empty, as js does). */
int dn__pubsub_message_encode(const dn__pubsub_message *m, dn_buf *out);

/* Append the RPC protobuf (no length prefix). DN_EINVAL for an RPC outside
 * the bounds above (what we encode, we and js decode), DN_ENOMEM. */
int dn__pubsub_rpc_encode(const dn__pubsub_rpc *r, dn_buf *out);
/* The same, preceded by its uvarint length: one frame on the stream. */
int dn__pubsub_rpc_frame(const dn__pubsub_rpc *r, dn_buf *out);

/* Frame reader for the long-lived inbound stream (sans-I/O): feed bytes as
 * they arrive, take whole RPCs out. A length prefix over `max` (default
 * DN_PUBSUB_RPC_MAX) is refused at once, before its bytes are buffered, and
 * the error sticks: the stream is unusable after it (the caller closes its
 * side; it must not reset the stream towards js, see DESIGN.md). */
typedef struct dn__pubsub_framer {
    dn_buf buf;
    size_t off; /* start of unread data in buf */
    size_t max;
    int err;
} dn__pubsub_framer;

void dn__pubsub_framer_init(dn__pubsub_framer *f, size_t max); /* max 0: default */
void dn__pubsub_framer_close(dn__pubsub_framer *f);
/* Buffer bytes. Returns 0, DN_ENOMEM, or the sticky error. */
int dn__pubsub_framer_feed(dn__pubsub_framer *f, const uint8_t *p, size_t len);
/* 1 and *frame and *len set to the next RPC's bytes (valid until the next feed
 * or next call), 0 when no whole frame is buffered, or a negative error
 * (DN_ETOOBIG, DN_EMALFORMED for a bad prefix; sticky). */
int dn__pubsub_framer_next(dn__pubsub_framer *f, const uint8_t **frame, size_t *len);
/* Bytes buffered and not yet returned. */
size_t dn__pubsub_framer_pending(const dn__pubsub_framer *f);

#endif
