/* The gossipsub router core (libp2p/specs pubsub/gossipsub/gossipsub-v1.0.md,
 * v1.1.md, v1.2.md), sans-I/O: no sockets, no clock, no event loop.
 *
 * The host tells the router what happens (a peer speaking a pubsub protocol
 * arrived or left, an RPC frame came in, the application subscribes or
 * publishes, a heartbeat is due at now_ms), and after each call collects
 * what the router wants done: length-prefixed RPC frames to write on the
 * outbound stream of a peer (sends), messages to hand to the application
 * (deliveries), and peers learnt through peer exchange (px). One frame per
 * peer per call, split only when it would pass DN_PUBSUB_RPC_MAX.
 *
 * Implemented: subscriptions, mesh maintenance on heartbeat (D, D_lo, D_hi,
 * D_score, the D_out outbound quota), GRAFT/PRUNE with backoff (and P7 for grafting during it),
 * peer exchange on PRUNE (peer ids; signed records when the host supplies them), fanout with TTL,
 * flood publishing of our own messages, IHAVE/IWANT gossip with the per-heartbeat limits of v1.1
 * (max IHAVE messages and ids, retransmission limit), promises (an IWANT not answered within the
 * follow-up time is a broken promise: P7), the message cache (mcache
 * windows) and seen cache (TTL), StrictSign verification before the seen
 * cache (a forged copy cannot shadow the real message), a validation hook
 * (accept / reject / ignore), IDONTWANT (sent to v1.2 mesh peers on first
 * receipt of a large message, honoured when forwarding), and peer scoring
 * with P1 (time in mesh), P2 (first deliveries), P4 (invalid messages),
 * counted per topic, P5 (an application callback), P6 (IP colocation,
 * loopback exempt) and P7 (behaviour penalty), with the gossip, publish
 * and graylist thresholds. Missing: P3/P3b (mesh delivery rates),
 * per-topic parameter sets (one set
 * applies to every topic), opportunistic grafting, direct
 * peers, asynchronous validation. */
#ifndef DN_PUBSUB_ROUTER_H
#define DN_PUBSUB_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "pubsub/pubsub_msg.h"
#include "pubsub/sign.h"

typedef enum dn__pubsub_proto {
    DN_PUBSUB_FLOODSUB = 0, /* /floodsub/1.0.0: messages only */
    DN_PUBSUB_MESHSUB_10,   /* /meshsub/1.0.0 */
    DN_PUBSUB_MESHSUB_11,   /* /meshsub/1.1.0: PX, backoff */
    DN_PUBSUB_MESHSUB_12,   /* /meshsub/1.2.0: IDONTWANT */
} dn__pubsub_proto;

typedef enum dn__pubsub_verdict {
    DN_PUBSUB_ACCEPT = 0,
    DN_PUBSUB_REJECT, /* invalid: P4 for the peer that sent it */
    DN_PUBSUB_IGNORE, /* drop without penalty */
} dn__pubsub_verdict;

typedef struct dn__pubsub_params {
    int d, d_lo, d_hi, d_score, d_out, d_lazy;
    double gossip_factor;
    int history_length, history_gossip; /* mcache windows, windows gossiped */
    uint64_t fanout_ttl_ms, seen_ttl_ms, prune_backoff_ms, unsubscribe_backoff_ms;
    uint64_t graft_flood_ms, iwant_followup_ms, heartbeat_ms;
    int gossip_retransmission; /* IWANT answers per peer per message id */
    int max_ihave_length;      /* ids we ask for per peer per heartbeat */
    int max_ihave_messages;    /* IHAVE entries accepted per peer per heartbeat */
    int max_idontwant;         /* IDONTWANT ids accepted per peer per heartbeat */
    size_t idontwant_min_size; /* data size from which we send IDONTWANT */
    int prune_peers;           /* PX entries per PRUNE */
    int max_topics_per_peer;
    size_t max_seen; /* seen-cache entries; the oldest go first past it */
    bool flood_publish;
    dn__pubsub_msgid_mode msgid_mode;
    /* Scoring (v1.1 "Peer Scoring"): P1, P2, P4 (one set for every
     * topic, times topic_weight) and P7. */
    double topic_weight;
    double p1_weight, p1_cap; /* time in mesh, in quanta, capped */
    uint64_t p1_quantum_ms;
    double p2_weight, p2_decay, p2_cap; /* first message deliveries */
    double p4_weight, p4_decay;
    double p5_weight; /* times the application's score */
    double p6_weight; /* times (peers on one IP - threshold)^2 */
    size_t p6_threshold;
    double p7_weight, p7_threshold, p7_decay;
    double decay_to_zero;
    double gossip_threshold, publish_threshold, graylist_threshold, accept_px_threshold;
} dn__pubsub_params;

/* The spec's defaults (v1.0 "Parameters", v1.1 "Parameters"): D 6, D_lo 4,
 * D_hi 12, D_score 4, D_out 2, D_lazy 6, gossip factor 0.25, mcache 5 windows, 3
 * gossiped, fanout TTL 60 s, seen TTL 120 s, prune backoff 60 s,
 * unsubscribe backoff 10 s, flood publish on, js message ids. */
void dn__pubsub_params_default(dn__pubsub_params *p);

typedef struct dn__pubsub_router dn__pubsub_router;

/* validate is called once per new, correctly signed message. author is the
 * verified `from`; via the peer it came from. */
typedef dn__pubsub_verdict (*dn__pubsub_validate_fn)(void *ud, const dn__pubsub_message *m,
                                                     const dn_peerid *author, const dn_peerid *via);
/* Optional: the application's score of a peer (P5). */
typedef double (*dn__pubsub_app_score_fn)(void *ud, const dn_peerid *peer);
/* Optional: the signed peer record of a peer, for PX (NULL/0 if none). */
typedef void (*dn__pubsub_record_fn)(void *ud, const dn_peerid *peer, const uint8_t **rec,
                                     size_t *len);

typedef struct dn__pubsub_send {
    dn_peerid to;
    dn_buf frame; /* uvarint length + RPC */
} dn__pubsub_send;

typedef struct dn__pubsub_delivery {
    dn_buf raw;             /* the Message protobuf */
    dn__pubsub_message msg; /* decoded view into raw */
    dn_peerid author, via;
    uint8_t id[DN_PUBSUB_MSGID_MAX];
    size_t idlen;
} dn__pubsub_delivery;

typedef struct dn__pubsub_pxpeer {
    dn_peerid peer;
    dn_buf signed_record; /* may be empty */
} dn__pubsub_pxpeer;

typedef struct dn__pubsub_stats {
    uint64_t rpcs_in, rpcs_bad, rpcs_graylisted;
    uint64_t msgs_in, msgs_dup, msgs_invalid, msgs_rejected, msgs_ignored, msgs_delivered;
    uint64_t msgs_not_subscribed, iwant_sent, iwant_answered, ihave_sent, msgs_via_iwant;
    uint64_t graft_in, prune_in, broken_promises, idontwant_sent, idontwant_skips;
} dn__pubsub_stats;

/* key: our identity, used to sign; kept by reference (outlives the router).
 * seed: 0 for a random one; tests pass a fixed one. */
int dn__pubsub_router_new(const dn__pubsub_params *p, const dn_privkey *key, uint64_t seed,
                          dn__pubsub_router **out);
void dn__pubsub_router_free(dn__pubsub_router *r);
void dn__pubsub_router_set_validator(dn__pubsub_router *r, dn__pubsub_validate_fn fn, void *ud);
void dn__pubsub_router_set_record_source(dn__pubsub_router *r, dn__pubsub_record_fn fn, void *ud);
void dn__pubsub_router_set_app_score(dn__pubsub_router *r, dn__pubsub_app_score_fn fn, void *ud);
const dn_peerid *dn__pubsub_router_self(const dn__pubsub_router *r);

/* A peer with a pubsub stream (outbound: we dialled it). Queues our
 * subscriptions to it. DN_EEXIST if known. */
int dn__pubsub_add_peer(dn__pubsub_router *r, const dn_peerid *id, dn__pubsub_proto proto,
                        bool outbound, uint64_t now_ms);
int dn__pubsub_remove_peer(dn__pubsub_router *r, const dn_peerid *id, uint64_t now_ms);
/* The peer's IP address (4 or 16 bytes; 0 to forget) for P6. Loopback
 * addresses count as none. DN_ENOTFOUND, DN_EINVAL. */
int dn__pubsub_set_peer_ip(dn__pubsub_router *r, const dn_peerid *id, const uint8_t *ip,
                           size_t len);

/* The protocol of the peer's stream changed (our stream to it was
 * renegotiated, e.g. to an older version). DN_ENOTFOUND, DN_EINVAL. */
int dn__pubsub_set_peer_proto(dn__pubsub_router *r, const dn_peerid *id, dn__pubsub_proto proto);
/* Our stream to the peer was replaced by a new one: queue our
 * subscriptions again (pubsub/README.md: sent on every new stream) and a
 * GRAFT for each mesh of ours it is in, since the peer may have dropped
 * its state with the old stream. DN_ENOTFOUND. */
int dn__pubsub_peer_reannounce(dn__pubsub_router *r, const dn_peerid *id, uint64_t now_ms);
/* Topics the peer said it is subscribed to (0 for an unknown peer). */
size_t dn__pubsub_peer_ntopics(const dn__pubsub_router *r, const dn_peerid *id);

/* Subscribe: announce to all peers, form the mesh (from fanout first) and
 * GRAFT it. Unsubscribe: announce, PRUNE the mesh with the unsubscribe
 * backoff. DN_EINVAL for a bad topic; 0 if already (un)subscribed. */
int dn__pubsub_subscribe(dn__pubsub_router *r, const char *topic, uint64_t now_ms);
int dn__pubsub_unsubscribe(dn__pubsub_router *r, const char *topic, uint64_t now_ms);
bool dn__pubsub_subscribed(const dn__pubsub_router *r, const char *topic);

/* Sign and send a message: to every subscribed peer above the publish
 * threshold (flood publish), else to the mesh or fanout. Returns the number
 * of peers it went to (0: nobody subscribed yet), or a negative error.
 * id/idlen (optional) receive the message id. */
int dn__pubsub_publish(dn__pubsub_router *r, const char *topic, const uint8_t *data, size_t len,
                       uint64_t now_ms, uint8_t *id, size_t *idlen);

/* One RPC (without its length prefix) from a peer. Returns 0, or the
 * decoder's error for a malformed RPC (counted as a P7 penalty), or
 * DN_ENOTFOUND for an unknown peer. RPCs of a graylisted peer are dropped
 * (returns 0). */
int dn__pubsub_handle_rpc(dn__pubsub_router *r, const dn_peerid *from, const uint8_t *rpc,
                          size_t len, uint64_t now_ms);

/* Run every params.heartbeat_ms (1 s by default). */
void dn__pubsub_heartbeat(dn__pubsub_router *r, uint64_t now_ms);

/* Outputs since the last clear; each array is owned by the router. */
dn__pubsub_send *dn__pubsub_sends(dn__pubsub_router *r, size_t *n);
dn__pubsub_delivery *dn__pubsub_deliveries(dn__pubsub_router *r, size_t *n);
dn__pubsub_pxpeer *dn__pubsub_px_peers(dn__pubsub_router *r, size_t *n);
void dn__pubsub_clear_outputs(dn__pubsub_router *r);

/* Introspection (tests, `pubsub peers`, status). */
size_t dn__pubsub_mesh_size(const dn__pubsub_router *r, const char *topic);
bool dn__pubsub_in_mesh(const dn__pubsub_router *r, const char *topic, const dn_peerid *peer);
/* Peers known to be subscribed to topic (written up to max). */
size_t dn__pubsub_topic_peers(const dn__pubsub_router *r, const char *topic, dn_peerid *out,
                              size_t max);
double dn__pubsub_score(const dn__pubsub_router *r, const dn_peerid *peer);
bool dn__pubsub_graylisted(const dn__pubsub_router *r, const dn_peerid *peer);
const dn__pubsub_stats *dn__pubsub_router_stats(const dn__pubsub_router *r);

#endif
