/* dmsnet — the Kademlia DHT service (libp2p/specs kad-dht/README.md) on a
 * host: /<prefix>/kad/1.0.0, peer routing, values with validators, and
 * providers. The sans-I/O engines are in src/kad/ (kad_msg, routing,
 * query); this is the service that runs them on the host's streams.
 *
 * A service attached through the host's public API; its state lives as
 * long as the host (freed by the host's cleanup). See docs/kad.md. */
#ifndef DMSNET_KAD_H
#define DMSNET_KAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/host.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/peerid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DN_KAD_DEFAULT_PREFIX "/dmsnet"

typedef enum dn_kad_mode {
    DN_KAD_MODE_AUTO = 0, /* serve once AutoNAT says we are reachable (dn_kad_set_reachable) */
    DN_KAD_MODE_SERVER,   /* always serve */
    DN_KAD_MODE_CLIENT,   /* never serve: query only */
} dn_kad_mode;

/* Where the routing table and provider records survive a restart: the
 * node plugs its store in here. Every callback may be NULL. Called on the
 * loop thread; a save should be quick (batched by the service: at most
 * once per second for the table). */
typedef struct dn_kad_persist {
    void *arg;
    /* The whole routing table: n peers with their addresses. */
    void (*save_table)(void *arg, const dn_peerid *peers, const dn_multiaddr *const *addrs,
                       const size_t *naddrs, size_t n);
    /* A provider record added (or refreshed) / expired. */
    void (*save_provider)(void *arg, const uint8_t *key, size_t keylen, const dn_peerid *provider,
                          uint64_t expires_unix_ms);
    void (*drop_provider)(void *arg, const uint8_t *key, size_t keylen, const dn_peerid *provider);
    /* A value record we hold (stored by PUT_VALUE). */
    void (*save_record)(void *arg, const uint8_t *key, size_t keylen, const uint8_t *value,
                        size_t vlen, uint64_t received_unix_ms);
} dn_kad_persist;

/* Initialise with DN_KAD_CONFIG_INIT (or dn_kad_config_init); zero fields
 * take their default. */
typedef struct dn_kad_config {
    size_t size;            /* sizeof(dn_kad_config) of the caller */
    const char *prefix;     /* protocol prefix, default "/dmsnet": /dmsnet/kad/1.0.0 */
    dn_kad_mode mode;       /* default auto */
    unsigned k;             /* bucket size, default 20 */
    unsigned alpha;         /* lookup concurrency, default 10 */
    uint32_t query_timeout_ms;   /* per request, default 10000 */
    uint32_t refresh_interval_ms;/* bucket refresh, default 10 min */
    uint32_t max_queries;        /* lookups running at once, default 64 */
    uint32_t max_records;        /* value records held, default 65536 */
    uint32_t max_records_per_peer; /* of those, first put by one peer, default 1024 */
    uint32_t max_providers_per_key; /* default 20 * 4 */
    uint32_t max_provider_keys;     /* default 65536 */
    uint64_t record_ttl_ms;      /* default 48 h (spec) */
    uint64_t provider_ttl_ms;    /* default 48 h (spec) */
    dn_kad_persist persist;
} dn_kad_config;

#define DN_KAD_CONFIG_INIT                                                                         \
    {                                                                                              \
        .size = sizeof(dn_kad_config)                                                              \
    }
void dn_kad_config_init(dn_kad_config *cfg);

typedef struct dn_kad dn_kad;

int dn_kad_attach(dn_host *h, const dn_kad_config *cfg, dn_kad **out);
dn_host *dn_kad_host(const dn_kad *k);
/* The protocol id we speak ("/dmsnet/kad/1.0.0"). */
const char *dn_kad_protocol(const dn_kad *k);
/* Auto mode: AutoNAT's verdict. Serving starts (the handler is set, so
 * identify advertises the protocol) when reachable, stops otherwise. */
void dn_kad_set_reachable(dn_kad *k, bool reachable);
bool dn_kad_serving(const dn_kad *k);

/* Restore state saved through dn_kad_persist at start (before bootstrap):
 * peers go into the routing table as candidates (addresses into the
 * peerstore) and are admitted as usual once they answer; provider records
 * are kept until expires_unix_ms; value records until their TTL. */
int dn_kad_restore_peer(dn_kad *k, const dn_peerid *peer, const dn_multiaddr *addrs,
                        size_t naddrs);
int dn_kad_restore_provider(dn_kad *k, const uint8_t *key, size_t keylen,
                            const dn_peerid *provider, uint64_t expires_unix_ms);
int dn_kad_restore_record(dn_kad *k, const uint8_t *key, size_t keylen, const uint8_t *value,
                          size_t vlen, uint64_t received_unix_ms);

/* Look ourselves up through the peers connected or in the table (and again
 * every refresh interval). cb (may be NULL) when done, with the table size. */
typedef void (*dn_kad_done_cb)(void *arg, int status, size_t n);
int dn_kad_bootstrap(dn_kad *k, dn_kad_done_cb cb, void *arg);

/* Lookup results. Every lookup reports how many rounds of requests it took
 * (hops: the longest chain of answers that led to the result). */
typedef struct dn_kad_lookup_info {
    unsigned hops;
    unsigned asked, answered;
    uint64_t elapsed_ms;
} dn_kad_lookup_info;

/* FIND_NODE: the peer's addresses (also put into the peerstore).
 * DN_ENOTFOUND when no peer knows it. */
typedef void (*dn_kad_peer_cb)(void *arg, int status, const dn_peerid *peer,
                               const dn_multiaddr *addrs, size_t naddrs,
                               const dn_kad_lookup_info *info);
int dn_kad_find_peer(dn_kad *k, const dn_peerid *peer, dn_kad_peer_cb cb, void *arg);

/* The k closest peers to a key (GET_CLOSEST_PEERS). */
typedef void (*dn_kad_closest_cb)(void *arg, int status, const dn_peerid *peers, size_t n,
                                  const dn_kad_lookup_info *info);
int dn_kad_closest_peers(dn_kad *k, const uint8_t *key, size_t keylen, dn_kad_closest_cb cb,
                         void *arg);

/* PUT_VALUE to the k closest peers (and locally). The key's namespace must
 * have a validator: /pk/<multihash> (value: the public key protobuf that
 * hashes to it) and /dmsnet/<peer id>/<name> (value: an RFC 0002 envelope
 * signed by that peer; newest seq wins). For /dmsnet/ keys of our own peer
 * id, dn_kad_put_signed wraps the value in the envelope. cb gets how many
 * peers stored it (status 0 when at least one did, or none was found: then
 * only we hold it). */
typedef void (*dn_kad_put_cb)(void *arg, int status, size_t stored, const dn_kad_lookup_info *info);
int dn_kad_put(dn_kad *k, const uint8_t *key, size_t keylen, const uint8_t *value, size_t vlen,
               dn_kad_put_cb cb, void *arg);
/* name: the <name> of /dmsnet/<our id>/<name>. */
int dn_kad_put_signed(dn_kad *k, const char *name, const uint8_t *value, size_t vlen,
                      dn_kad_put_cb cb, void *arg);

/* GET_VALUE: the best valid record among the local one and up to `quorum`
 * peers' answers (default 16 as js, then closest peers holding an older one
 * are corrected). For /dmsnet/ keys, value is the envelope's payload (its
 * signature verified). DN_ENOTFOUND when nobody has it. */
typedef void (*dn_kad_value_cb)(void *arg, int status, const uint8_t *value, size_t vlen,
                                const dn_kad_lookup_info *info);
int dn_kad_get(dn_kad *k, const uint8_t *key, size_t keylen, dn_kad_value_cb cb, void *arg);

/* ADD_PROVIDER: tell the k closest peers to key that we provide it (and
 * keep the record ourselves). key is a CID's multihash bytes. */
int dn_kad_provide(dn_kad *k, const uint8_t *key, size_t keylen, dn_kad_put_cb cb, void *arg);
/* GET_PROVIDERS: up to max providers (0: 20); cb once per provider found
 * (status 0, peer set), then once with peer NULL and the final status. */
typedef void (*dn_kad_provider_cb)(void *arg, int status, const dn_peerid *peer,
                                   const dn_multiaddr *addrs, size_t naddrs,
                                   const dn_kad_lookup_info *info);
int dn_kad_find_providers(dn_kad *k, const uint8_t *key, size_t keylen, size_t max,
                          dn_kad_provider_cb cb, void *arg);

/* The routing table, for `dmsnet dht table`. */
typedef struct dn_kad_table_entry {
    dn_peerid id;
    unsigned bucket; /* common prefix length with our key */
    uint64_t added_unix_ms, seen_unix_ms;
    bool stale;
} dn_kad_table_entry;
size_t dn_kad_table(const dn_kad *k, dn_kad_table_entry *out, size_t max);
size_t dn_kad_table_size(const dn_kad *k);

typedef struct dn_kad_stats {
    uint64_t requests_in, requests_bad, requests_out, requests_failed;
    uint64_t records_held, providers_held;
    uint32_t queries_running;
} dn_kad_stats;
void dn_kad_get_stats(const dn_kad *k, dn_kad_stats *st);

/* Plug the DHT into the host's dial by peer id (dn_host_dial_peer): a peer
 * the peerstore has no address for is looked up first. */
int dn_kad_route_dials(dn_kad *k);

#ifdef __cplusplus
}
#endif
#endif
