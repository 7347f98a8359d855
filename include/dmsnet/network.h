/* dmsnet — the Network API: the node (seed: Config, Init/Start, EventRegister,
 * Dial, Listen, Status, Stop).
 *
 * A dn_network is the one object a daemon or an embedder holds. It composes a
 * host with its services (identify, ping, AutoNAT v2, perf), the persistent
 * store (<data-dir>/dmsnet.db) and the event bus, all on one libuv loop.
 * Every function here runs on the loop's thread.
 *
 * Life cycle:
 *   dn_network_config_new / _load_file / _set / _check     (seed: Config)
 *   dn_network_new       open the store, load or create the identity, build
 *                        the host and attach the services. No socket yet.
 *   dn_network_event_register   any number of subscribers, before or after
 *   dn_network_start     listen, then redial the bootstrap peers and the
 *                        peers seen recently; AutoNAT starts probing
 *   ... run the loop ...
 *   dn_network_stop      close every connection, write what is pending to
 *                        the store, close it; the callback runs when every
 *                        handle is closed and the memory is freed.
 *
 * Errors are negative DN_E... codes (dmsnet/error.h); functions that take
 * err/errlen also write one line saying why (naming the key, the file or the
 * address). */
#ifndef DMSNET_NETWORK_H
#define DMSNET_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/peerid.h"
#include "dmsnet/protocols.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dn_network dn_network;

/* ---- configuration ---- */

/* The node's configuration: defaults, then <data-dir>/config.json, then
 * individual keys (flags). Keys, their meaning and defaults are listed in
 * docs/config.md and printed by `dmsnet config show`: listen, identity,
 * data_dir, channel.name, channel.dht_prefix, channel.bootstrap,
 * limits.max_conns, limits.max_conns_per_peer, limits.max_streams_per_peer,
 * limits.max_handshakes_per_ip, api.listen, api.allow_remote, log,
 * enable_perf, pubsub.router, jobs.topic, jobs.auto_bid. */
typedef struct dn_network_config dn_network_config;

int dn_network_config_new(dn_network_config **out);
void dn_network_config_free(dn_network_config *cfg);
/* Apply a config.json file over cfg (an absent file is fine). The file
 * applies whole or not at all. */
int dn_network_config_load_file(dn_network_config *cfg, const char *path, char *err,
                                size_t errlen);
/* Set one key from its text form ("limits.max_conns", "512"); lists are
 * comma-separated and replace the whole list. */
int dn_network_config_set(dn_network_config *cfg, const char *key, const char *value, char *err,
                          size_t errlen);
/* Rules that span keys; dn_network_new runs it too. */
int dn_network_config_check(const dn_network_config *cfg, char *err, size_t errlen);
/* The effective configuration as JSON text (malloc'd; free()), NULL on
 * ENOMEM. It holds no secret. */
char *dn_network_config_to_json(const dn_network_config *cfg);
/* The data directory the configuration names ("" when unset: the caller
 * then resolves $DMSNET_HOME or ~/.dmsnet and sets data_dir). */
const char *dn_network_config_data_dir(const dn_network_config *cfg);
/* Run in a private swarm: only peers with this 32-byte pre-shared key
 * connect (pnet). The key is copied and wiped when cfg is freed; swarm
 * names the swarm in Status. NULL psk goes back to the public channel. */
int dn_network_config_set_psk(dn_network_config *cfg, const uint8_t *psk, const char *swarm);

/* Use this identity instead of loading the identity key file. The key is
 * borrowed: it must outlive every dn_network made from cfg. */
int dn_network_config_set_identity(dn_network_config *cfg, const dn_privkey *key);

/* ---- init, start, stop ---- */

/* Init: open the store, load the identity (creating the key file, 0600,
 * when absent), create the host and attach the services. cfg is copied.
 * Fails, with err saying why, on a bad configuration, an identity file
 * that cannot be read, or a store that is corrupt, from a newer schema or
 * not writable (it is then left untouched). */
int dn_network_new(uv_loop_t *loop, const dn_network_config *cfg, dn_network **out, char *err,
                   size_t errlen);
/* Start: listen on the configured addresses (all or nothing), then dial
 * the channel's bootstrap peers and the peers the store saw in the last
 * week, and start AutoNAT. */
int dn_network_start(dn_network *n, char *err, size_t errlen);
/* Stop and free: connections close, pending store writes are committed,
 * the store is closed. done (may be NULL) runs once everything is freed;
 * n must not be used after this call. */
void dn_network_stop(dn_network *n, void (*done)(void *arg), void *arg);

/* The host and loop underneath, for the services later layers attach
 * (DHT, pubsub, messenger, swarm, VPN). */
dn_host *dn_network_host(dn_network *n);
uv_loop_t *dn_network_loop(dn_network *n);
const dn_peerid *dn_network_peerid(const dn_network *n);
/* The node's Messenger (dmsnet/messenger.h): typed messages to and from
 * peers; register C handlers per type on it. */
struct dn_messenger *dn_network_messenger(dn_network *n);
/* The node's pubsub service (dmsnet/pubsub.h): gossipsub, or floodsub with
 * pubsub.router "floodsub". Subscribe, publish and validate on it; the
 * node's API listeners and publishJob (dmsnet/jobs.h) use it too. */
struct dn_pubsub *dn_network_pubsub(dn_network *n);
/* The node's Kademlia DHT (dmsnet/kad.h): put/get records, find peers and
 * providers; dial by peer id already goes through it. */
struct dn_kad *dn_network_kad(dn_network *n);

/* ---- events (seed: EventRegister) ---- */

typedef enum dn_network_event_type {
    DN_NET_EV_LOCAL_ADDRS_UPDATED = 1,   /* listen or confirmed observed addresses changed */
    DN_NET_EV_REACHABILITY_CHANGED = 2,  /* AutoNAT's verdict changed */
    DN_NET_EV_PEER_IDENTIFIED = 3,       /* identify with a peer completed */
    DN_NET_EV_NAT_TYPE_CHANGED = 4,      /* cone / symmetric, from observed addresses */
    DN_NET_EV_PEER_CONNECTEDNESS = 5,    /* first connection opened / last one closed */
} dn_network_event_type;
#define DN_NET_EV_ALL 0x3e /* mask of all five: bit (1 << type) */

/* dn_reachability (unknown / public / private) is AutoNAT's, in protocols.h. */

typedef enum dn_nat_type {
    DN_NAT_UNKNOWN = 0,
    DN_NAT_CONE = 1,      /* endpoint-independent mapping: one external port */
    DN_NAT_SYMMETRIC = 2, /* a new external port per destination */
} dn_nat_type;

typedef enum dn_connectedness {
    DN_NOT_CONNECTED = 0,
    DN_CONNECTED = 1,
} dn_connectedness;

/* One event. Pointers are valid during the callback only. */
typedef struct dn_network_event {
    dn_network_event_type type;
    uint64_t time_ms; /* unix time */
    /* PEER_IDENTIFIED, PEER_CONNECTEDNESS: the peer. */
    const dn_peerid *peer;
    /* LOCAL_ADDRS_UPDATED: our addresses (dialable listen addresses, then
     * confirmed observed ones); PEER_IDENTIFIED: the peer's listen
     * addresses. */
    const dn_multiaddr *addrs;
    size_t naddrs;
    /* PEER_IDENTIFIED: what the peer said (peer-supplied text: escape it
     * before printing). */
    const char *agent;
    const char *const *protocols;
    size_t nprotocols;
    dn_connectedness connectedness; /* PEER_CONNECTEDNESS */
    dn_reachability reachability;   /* REACHABILITY_CHANGED */
    dn_nat_type nat_type;           /* NAT_TYPE_CHANGED */
} dn_network_event;

typedef void (*dn_network_event_cb)(dn_network *n, const dn_network_event *ev, void *arg);
/* Subscribe cb to the events whose bit (1u << type) is set in mask. The same
 * (cb, arg) registered twice is DN_EEXIST. A callback may register and
 * unregister (itself included) while it runs. */
int dn_network_event_register(dn_network *n, uint32_t mask, dn_network_event_cb cb, void *arg);
void dn_network_event_unregister(dn_network *n, dn_network_event_cb cb, void *arg);

/* Stable names, as the API and `dmsnet events --json` print them:
 * "local_addresses_updated", "local_reachability_changed",
 * "peer_identification_completed", "nat_device_type_changed",
 * "peer_connectedness_changed"; and "unknown"/"public"/"private",
 * "unknown"/"cone"/"symmetric", "connected"/"not_connected". */
const char *dn_network_event_name(dn_network_event_type t);
const char *dn_reachability_name(dn_reachability r);
const char *dn_nat_type_name(dn_nat_type t);
const char *dn_connectedness_name(dn_connectedness c);

/* ---- dial, listen ---- */

/* status 0: connected (peer is the remote's id); otherwise why not. */
typedef void (*dn_network_dial_cb)(dn_network *n, const dn_peerid *peer, int status, void *arg);
/* Dial target: a multiaddr (ending in /p2p/<id> or not) or a bare peer id
 * (dialled at the addresses the node knows for it, else looked up in the
 * DHT: dn_network_kad). An existing connection
 * is reused. cb (may be NULL) runs once, never from inside this call. */
int dn_network_dial(dn_network *n, const char *target, dn_network_dial_cb cb, void *arg);
/* Close every connection to peer. DN_ENOTFOUND when not connected. */
int dn_network_disconnect(dn_network *n, const dn_peerid *peer);
/* Listen: a stream handler for protocol (see dn_host_set_handler), or one
 * more listen address at run time (reported by LOCAL_ADDRS_UPDATED). */
int dn_network_handle(dn_network *n, const char *protocol, dn_stream_handler fn, void *arg);
int dn_network_listen(dn_network *n, const char *multiaddr, char *err, size_t errlen);

/* ---- status ---- */

typedef struct dn_network_peer_status {
    char peer_id[DN_PEERID_STR_MAX];
    bool outbound;  /* direction of the oldest open connection */
    char **addrs;   /* remote addresses of the open connections */
    size_t naddrs;
    char **protocols;
    size_t nprotocols;
    char *agent;    /* peer-supplied ("" until identified) */
    int64_t rtt_us; /* last measured round trip; -1 until one is known */
    unsigned connections;
    unsigned streams;
} dn_network_peer_status;

typedef struct dn_network_status {
    char peer_id[DN_PEERID_STR_MAX];
    char **listen_addrs;   /* dialable: 0.0.0.0 / :: expanded per interface */
    size_t nlisten_addrs;
    char **observed_addrs; /* confirmed by several peers */
    size_t nobserved_addrs;
    dn_reachability reachability;
    dn_nat_type nat_type;
    bool private_swarm;    /* mode: "private" (a swarm) or "public" (a channel) */
    char *network;         /* the channel's or the swarm's name */
    dn_network_peer_status *peers;
    size_t npeers;
    uint64_t bytes_in, bytes_out; /* on the wire, since start */
    uint64_t uptime_ms;
    const char *agent_version;
} dn_network_status;

int dn_network_get_status(dn_network *n, dn_network_status **out);
void dn_network_status_free(dn_network_status *st);
/* The JSON form (malloc'd text; free()): keys peer_id, listen_addrs,
 * observed_addrs, reachability, nat_type, mode, network, peers (each:
 * peer_id, addrs, direction, protocols, agent, rtt_ms, connections,
 * streams), bytes_in, bytes_out, uptime_ms, agent_version. */
char *dn_network_status_to_json(const dn_network_status *st);

#ifdef __cplusplus
}
#endif
#endif
