/* dmsnet — the pubsub service: gossipsub v1.1 with v1.2's IDONTWANT
 * (/meshsub/1.2.0, /meshsub/1.1.0, /meshsub/1.0.0) and floodsub
 * (/floodsub/1.0.0) on a host. The router is sans-I/O in src/pubsub/
 * (router.h); this service runs it on the host's streams: one long-lived
 * outbound stream per peer for what we send, the peer's inbound stream for
 * what we read, a heartbeat timer.
 *
 * A service attached through the host's public API; its state lives as
 * long as the host. See docs/pubsub.md. */
#ifndef DMSNET_PUBSUB_H
#define DMSNET_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/host.h"
#include "dmsnet/peerid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DN_PUBSUB_MAX_DATA (1u << 20) /* payload bytes per message */

/* Initialise with DN_PUBSUB_CONFIG_INIT (or dn_pubsub_config_init); zero
 * fields take their default. */
typedef struct dn_pubsub_config {
    size_t size;            /* sizeof(dn_pubsub_config) of the caller */
    bool floodsub_only;     /* speak only /floodsub/1.0.0 (default: gossipsub + floodsub) */
    bool go_message_ids;    /* from + seqno (go) instead of js's key + seqno */
    uint32_t heartbeat_ms;  /* default 1000 */
    uint32_t max_peers;     /* peers with pubsub streams, default 4096 */
    size_t max_queue_per_peer; /* outbound bytes queued per peer, default 4 MiB: past it
                                  frames to that peer are dropped (and counted) */
} dn_pubsub_config;

#define DN_PUBSUB_CONFIG_INIT                                                                      \
    {                                                                                              \
        .size = sizeof(dn_pubsub_config)                                                           \
    }
void dn_pubsub_config_init(dn_pubsub_config *cfg);

typedef struct dn_pubsub dn_pubsub;
typedef struct dn_pubsub_sub dn_pubsub_sub;

int dn_pubsub_attach(dn_host *h, const dn_pubsub_config *cfg, dn_pubsub **out);
dn_host *dn_pubsub_host(const dn_pubsub *ps);

/* One received (or our own published) message, valid during the call.
 * from is the verified author; via the peer it came from (ours: self). */
typedef struct dn_pubsub_message {
    const char *topic;
    dn_peerid from, via;
    uint64_t seqno;
    const uint8_t *data;
    size_t len;
    const uint8_t *id; /* message id */
    size_t idlen;
} dn_pubsub_message;
typedef void (*dn_pubsub_msg_cb)(void *arg, const dn_pubsub_message *m);

/* Subscribe to topic; cb gets every new valid message on it (messages we
 * publish ourselves are not delivered back). Several subscriptions to one
 * topic share the router's one subscription; the last unsubscribe leaves
 * the topic. DN_EINVAL for an empty or over-long topic. */
int dn_pubsub_subscribe(dn_pubsub *ps, const char *topic, dn_pubsub_msg_cb cb, void *arg,
                        dn_pubsub_sub **out);
void dn_pubsub_unsubscribe(dn_pubsub_sub *sub);

/* Validation hook per topic (0 or 1 per topic; NULL fn removes it): return
 * 0 to accept, 1 to ignore, -1 to reject (counts against the sender's
 * score). Called before delivery and before forwarding. */
typedef int (*dn_pubsub_validator)(void *arg, const dn_pubsub_message *m);
int dn_pubsub_set_validator(dn_pubsub *ps, const char *topic, dn_pubsub_validator fn, void *arg);

/* Sign and publish. Returns the number of peers it was sent to (0: nobody
 * subscribed yet, the message is still ours and in the cache), or an error
 * (DN_ETOOBIG past DN_PUBSUB_MAX_DATA, DN_EINVAL). We need not be
 * subscribed (fanout). */
int dn_pubsub_publish(dn_pubsub *ps, const char *topic, const void *data, size_t len);

/* Peers known to be subscribed to topic (all topics' peers when NULL),
 * written up to max; returns how many there are. */
size_t dn_pubsub_topic_peers(const dn_pubsub *ps, const char *topic, dn_peerid *out, size_t max);
/* Our mesh for topic. */
size_t dn_pubsub_mesh_peers(const dn_pubsub *ps, const char *topic, dn_peerid *out, size_t max);
/* The topics we are subscribed to (pointers valid until the next change). */
size_t dn_pubsub_topics(const dn_pubsub *ps, const char **out, size_t max);
double dn_pubsub_peer_score(const dn_pubsub *ps, const dn_peerid *peer);

typedef struct dn_pubsub_stats {
    uint64_t rpcs_in, rpcs_bad, msgs_in, msgs_delivered, msgs_invalid, msgs_dup;
    uint64_t frames_dropped; /* a peer's queue was full */
    uint32_t peers;
} dn_pubsub_stats;
void dn_pubsub_get_stats(const dn_pubsub *ps, dn_pubsub_stats *st);

#ifdef __cplusplus
}
#endif
#endif
