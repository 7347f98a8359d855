/* node — what the node's own modules share (not installed).
 *
 * network.c     the dn_network object: init, start, stop, dial, listen,
 *               the host observer, connectedness, reconnecting at start,
 *               batched peer writes to the store
 * events.c      the event bus (subscribers, masks, names)
 * status.c      dn_network_status and its JSON form
 * natobs.c      observed addresses and the NAT type (sans-I/O)
 * node_api.c    the daemon's /v0/ endpoints on the API server
 * config.c      the configuration (dn__node_config)
 *
 * Later layers (discovery, messaging, swarms, VPN) reach the node's store,
 * configuration and API server through the accessors below, and add their
 * own routes with dn__api_route on dn__node_api_server(). */
#ifndef DN_NODE_INTERNAL_H
#define DN_NODE_INTERNAL_H

#include <jansson.h>

#include "api/api.h"
#include "dmsnet/network.h"
#include "node/config.h"
#include "store/store.h"

struct dn_network_config {
    dn__node_config c;
    /* Keys set through dn_network_config_set (flags): they win over what
     * the user stored through the API. Bit i = key i of config.c's table. */
    uint64_t explicit_keys;
    const dn_privkey *identity_key; /* borrowed; NULL: load the key file */
    bool has_psk;
    uint8_t psk[32];
    char *swarm;
};

/* A deep copy of src into dst (uninitialised); free with the members'
 * own free (dn__node_netconfig_clear). */
int dn__node_netconfig_copy(dn_network_config *dst, const dn_network_config *src);
void dn__node_netconfig_clear(dn_network_config *cfg);

/* Apply the settings stored through the API (st's settings table) over c,
 * except keys in explicit_keys (bit = dn__node_config_key_index), then the
 * cross-key check: what dn_network_new does, and `dmsnet config show` when
 * no daemon runs. */
int dn__node_config_apply_stored(dn__node_config *c, dn_store *st, uint64_t explicit_keys,
                                 char *err, size_t errlen);

/* The effective configuration of a running node (borrowed). */
const dn__node_config *dn__node_config_of(const dn_network *n);
/* The data directory the node uses (resolved, never NULL). */
const char *dn__node_data_dir(const dn_network *n);
/* The open store (borrowed; valid until dn_network_stop). */
dn_store *dn__node_store(dn_network *n);
/* When the node started (unix ms). */
uint64_t dn__node_started_ms(const dn_network *n);

/* Change one configuration key at run time (PUT /v0/config): validate it,
 * store it (so the next start uses it; it then wins over config.json but
 * not over a flag), and apply it at once where that is possible (log).
 * *applied says whether it took effect now (false: at the next start).
 * value NULL removes the stored setting (back to file/default). */
int dn__node_config_update(dn_network *n, const char *key, const json_t *value, bool *applied,
                           char *err, size_t errlen);

/* ---- the event bus (events.c) ---- */

typedef struct dn__node_bus dn__node_bus;
int dn__node_bus_new(dn__node_bus **out);
void dn__node_bus_free(dn__node_bus *b);
int dn__node_bus_add(dn__node_bus *b, uint32_t mask, dn_network_event_cb cb, void *arg);
void dn__node_bus_remove(dn__node_bus *b, dn_network_event_cb cb, void *arg);
/* Deliver ev (time_ms filled in when 0) to every subscriber of its type. */
void dn__node_bus_emit(dn__node_bus *b, dn_network *n, dn_network_event *ev);
size_t dn__node_bus_count(const dn__node_bus *b);

/* Status as JSON values (new references; NULL on ENOMEM), for the API:
 * dn_network_status_to_json's document, and one entry of its "peers". */
json_t *dn__node_status_json(const dn_network_status *st);
/* Peer-supplied text as a JSON string: invalid UTF-8 goes in escaped
 * (\xNN per bad byte) rather than dropped (node_api.c). */
json_t *dn__node_text_json(const char *s);
json_t *dn__node_peer_status_json(const dn_network_peer_status *p);

/* ---- the API server (node_api.c) ---- */

typedef struct dn__node_api dn__node_api;
/* Serve the /v0/ endpoints on <data-dir>/api.sock (0600) and, when
 * api.listen is set, on TCP with the bearer token <data-dir>/api.token. */
int dn__node_api_start(dn_network *n, dn__node_api **out, char *err, size_t errlen);
/* Close the listeners and end the event streams (before the host goes). */
void dn__node_api_stop(dn__node_api *a);
dn_api *dn__node_api_server(dn__node_api *a);
/* The running node's API (NULL before dn_network_start). */
dn__node_api *dn__node_api_of(dn_network *n);
/* An event as the API and `dmsnet events --json` show it (new reference):
 * type, time, and the event's fields (peer, connectedness, addrs,
 * reachability, nat_type, agent, protocols). */
json_t *dn__node_event_json(const dn_network_event *ev);

#endif
