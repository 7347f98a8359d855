/* node — the dn_network struct and what network.c, dial.c, nat.c and
 * status.c share. Other layers use node_internal.h. */
#ifndef DN_NODE_NETWORK_INT_H
#define DN_NODE_NETWORK_INT_H

#include "node/node_internal.h"

/* Our own addresses kept for change detection (dialable + observed). */
#define DN__NODE_MAX_LOCAL_ADDRS 64

typedef struct dn__bootstrap dn__bootstrap; /* dial.c */
typedef struct dn__nat dn__nat;             /* nat.c */
typedef struct dn__node_msgs dn__node_msgs; /* messages.c */
typedef struct dn__node_ps dn__node_ps;     /* pubsub.c */
typedef struct dn__node_jobs dn__node_jobs; /* jobs.c */
typedef struct dn__node_dht dn__node_dht;   /* dht.c */

struct dn_network {
    uv_loop_t *loop;
    dn_network_config cfg; /* the node's own copy, store settings applied */
    char data_dir[DN__NODE_CONFIG_MAX_PATH];
    dn_store *store;
    dn_privkey *own_key; /* loaded here when cfg gave none */
    dn_host *host;
    dn__node_bus *bus;
    dn__node_api *api;
    dn__nat *nat;
    dn__node_msgs *msgs;
    dn__node_ps *ps;
    dn__node_jobs *jobs;
    dn__node_dht *dht;
    dn__bootstrap *boot;
    uv_timer_t tick; /* store batch, observed-address expiry, bootstrap retries */
    bool started, stopping;
    uint64_t ticks;
    int pings_left_this_tick; /* round-trip pings the node may still send this second */
    uint64_t started_ms, started_loop_ms;
    dn_reachability reachability;
    dn_nat_type nat_type;
    dn_multiaddr local_addrs[DN__NODE_MAX_LOCAL_ADDRS];
    size_t nlocal_addrs;
    dn_peerid dirty[1024]; /* identified peers not yet written */
    size_t ndirty;
    int handles; /* closing: the host and the tick timer */
    void (*done)(void *arg);
    void *done_arg;
};

void dn__node_emit(dn_network *n, dn_network_event *ev);
void dn__node_free_now(dn_network *n);
size_t dn__node_local_addrs(dn_network *n, dn_multiaddr *out, size_t max);
void dn__node_refresh_local_addrs(dn_network *n);

/* dial.c: dialing, bootstrap peers (retried with backoff until connected),
 * redialling the peers the store saw recently. */
void dn__node_bootstrap_start(dn_network *n);
void dn__node_bootstrap_tick(dn_network *n);
void dn__node_bootstrap_connected(dn_network *n, const dn_peerid *peer);
void dn__node_bootstrap_free(dn_network *n);
void dn__node_redial_recent(dn_network *n, uint64_t window_ms, size_t max);

/* messages.c: the Messenger and its API routes. */
int dn__node_msgs_attach(dn_network *n, char *err, size_t errlen);
int dn__node_msgs_routes(dn_network *n, dn_api *api);
void dn__node_msgs_tick(dn_network *n);
void dn__node_msgs_stop(dn_network *n);
void dn__node_msgs_free(dn_network *n);

/* pubsub.c: the node's pubsub service and its API routes. */
int dn__node_ps_attach(dn_network *n, char *err, size_t errlen);
int dn__node_ps_routes(dn_network *n, dn_api *api);
void dn__node_ps_tick(dn_network *n);
void dn__node_ps_stop(dn_network *n);
void dn__node_ps_free(dn_network *n);
/* Bytes as a base64 JSON string (NULL on ENOMEM); {"<key>": base64} of a
 * request body decoded into *out (malloc'd), or -1 with req answered 400. */
json_t *dn__node_b64_json(const uint8_t *data, size_t len);
int dn__node_b64_field(dn_api_req *req, json_t *body, const char *key, uint8_t **out, size_t *len);

/* jobs.c: publishJob (requests for bids on the jobs topic, bids as
 * Messenger requests) and its API routes. _attach after the pubsub and
 * the messenger; _stop closes its timer through close_cb (the node counts
 * it among its handles) and returns how many handles it closes. */
int dn__node_jobs_attach(dn_network *n, char *err, size_t errlen);
int dn__node_jobs_routes(dn_network *n, dn_api *api);
int dn__node_jobs_stop(dn_network *n, uv_close_cb close_cb);
void dn__node_jobs_free(dn_network *n);
/* dht.c: the Kademlia DHT (dn_kad), its store tables and API routes.
 * bootstrap_soon: a bootstrap peer connected (dial.c); start: bootstrap
 * from the routing table restored from the store; stop: write what
 * changed. */
int dn__node_dht_attach(dn_network *n, char *err, size_t errlen);
int dn__node_dht_routes(dn_network *n, dn_api *api);
void dn__node_dht_start(dn_network *n);
void dn__node_dht_bootstrap_soon(dn_network *n);
void dn__node_dht_tick(dn_network *n);
void dn__node_dht_stop(dn_network *n);
void dn__node_dht_free(dn_network *n);

/* nat.c: AutoNAT (reachability) and the observed-address manager (NAT
 * type, confirmed observed addresses). */
int dn__node_attach_nat(dn_network *n, char *err, size_t errlen);
void dn__node_nat_observed(dn_network *n, dn_conn *c, const dn_peer_info *p);
void dn__node_nat_forget(dn_network *n, dn_conn *c);
void dn__node_nat_tick(dn_network *n);
size_t dn__node_nat_confirmed(dn_network *n, dn_multiaddr *out, size_t max);
void dn__node_nat_free(dn_network *n);
/* The host's listen addresses changed (natobs matches reports to them). */
void dn__node_nat_listen_changed(dn_network *n);

#endif
