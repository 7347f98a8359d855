/* node — the node's one configuration (issue 9, "Config").
 *
 * Sources, later ones win: built-in defaults, <data-dir>/config.json (if
 * present), then command-line flags through dn__node_config_set. Every bad
 * value is refused with a message naming the key path and why
 * ("config.json: 'channel.bootstrap[1]': /ip4/1.2.3.4/tcp/1 has no /p2p/<peer id>").
 *
 * Keys and defaults (the JSON file has the same shape as the output of
 * dn__node_config_to_json, i.e. of `dmsnet config show`):
 *   listen                 ["/ip4/0.0.0.0/tcp/9000", "/ip6/::/tcp/9000"]  multiaddrs, at most 16
 *   identity               null = <data_dir>/identity.key (a path)
 *   data_dir               null = $DMSNET_HOME or ~/.dmsnet (resolved by the caller)
 *   channel.name           "dmsnet"   1..64 bytes of [A-Za-z0-9._-]
 *   channel.dht_prefix     "/dmsnet"  starts with '/', no spaces or control
 *                                     characters, at most 64 bytes
 *   channel.bootstrap      []         multiaddrs ending in /p2p/<peer id>, at most 64
 *   limits.max_conns              4096  1..1000000 (the host's defaults)
 *   limits.max_conns_per_peer        8  1..1024
 *   limits.max_streams_per_peer   4096  1..1000000
 *   limits.max_handshakes_per_ip    64  1..1000000
 *   limits.handshake_timeout_s      10  1..3600 (security + muxer handshake)
 *   api.listen             null       /ip4|ip6/<addr>/tcp/<port> (0 picks one); null = no TCP
 *                                     listener. The address must be loopback
 *                                     unless api.allow_remote is true.
 *   api.allow_remote       false
 *   log                    "info"     trace|debug|info|warn|error|off
 *   enable_perf            false
 *   autonat.server         true       answer AutoNAT v2 dial requests
 *   autonat.allow_private  false      also test/dial private and loopback addresses
 *   autonat.confidence     3          1..16 servers that must agree on an address
 *   pubsub.router          "gossipsub" gossipsub|floodsub
 *   jobs.topic             "/dmsnet/jobs/1.0.0"  1..512 bytes, no control characters
 *                                     ("/nunet/deployment" speaks with NuNet DMS)
 *   jobs.auto_bid          null       a file: answer every job request with its bytes
 *   dht.mode               "auto"     auto|server|client: serve the DHT when AutoNAT says
 *                                     we are reachable / always / never (query only)
 *
 * Multiaddrs are kept in their canonical string form (as dn_multiaddr_to_string
 * prints them). The configuration holds no secret (the identity is a path to
 * a key file, never the key), so to_json may be shown and served as is. */
#ifndef DN_NODE_CONFIG_H
#define DN_NODE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/log.h"

#define DN__NODE_CONFIG_MAX_LISTEN 16
#define DN__NODE_CONFIG_MAX_BOOTSTRAP 64
#define DN__NODE_CONFIG_MAX_NAME 64
#define DN__NODE_CONFIG_MAX_PREFIX 64
#define DN__NODE_CONFIG_MAX_PATH 4096
#define DN__NODE_CONFIG_MAX_TOPIC 512 /* the pubsub router's bound */
/* config.json larger than this is refused: a configuration never needs it. */
#define DN__NODE_CONFIG_MAX_FILE (1024 * 1024)

typedef struct dn__node_config_addrs {
    size_t n;
    char **v; /* n canonical multiaddr strings */
} dn__node_config_addrs;

typedef struct dn__node_config {
    dn__node_config_addrs listen;
    char *identity; /* NULL = default */
    char *data_dir; /* NULL = default */
    struct {
        char *name;
        char *dht_prefix;
        dn__node_config_addrs bootstrap;
    } channel;
    struct {
        uint32_t max_conns;
        uint32_t max_conns_per_peer;
        uint32_t max_streams_per_peer;
        uint32_t max_handshakes_per_ip;
        uint32_t handshake_timeout_s;
    } limits;
    struct {
        char *listen; /* NULL = none */
        bool allow_remote;
    } api;
    dn_log_level log;
    bool enable_perf;
    struct {
        bool floodsub; /* pubsub.router "floodsub" (default "gossipsub") */
    } pubsub;
    struct {
        char *topic;    /* the gossipsub topic of job requests for bids */
        char *auto_bid; /* NULL = none: a file whose bytes answer every request */
    } jobs;
    struct {
        bool server;        /* answer other peers' AutoNAT dial requests */
        bool allow_private; /* test and dial private/loopback addresses (labs, tests) */
        uint32_t confidence; /* servers that must agree on an address */
    } autonat;
    struct {
        int mode; /* DN__NODE_DHT_AUTO, _SERVER, _CLIENT (dn_kad_mode's values) */
    } dht;
} dn__node_config;

#define DN__NODE_DHT_AUTO 0
#define DN__NODE_DHT_SERVER 1
#define DN__NODE_DHT_CLIENT 2
/* "auto", "server", "client". */
const char *dn__node_dht_mode_name(int mode);

/* Fill cfg with the defaults above (cfg need not be initialised). 0 or DN_ENOMEM. */
int dn__node_config_defaults(dn__node_config *cfg);
void dn__node_config_free(dn__node_config *cfg);
/* A deep copy into dst (uninitialised); 0 or DN_ENOMEM (dst then empty). */
int dn__node_config_copy(dn__node_config *dst, const dn__node_config *src);

/* Apply the JSON object in path over cfg. An absent file is fine (0, cfg
 * unchanged). A file that is not a regular file, is larger than
 * DN__NODE_CONFIG_MAX_FILE, is not a JSON object, has duplicate or unknown
 * keys, wrong types or bad values is refused with a negative DN_E... code and
 * a message in err; cfg is then left unchanged (the file applies whole or
 * not at all). Runs dn__node_config_check at the end. */
int dn__node_config_load_file(dn__node_config *cfg, const char *path, char *err, size_t errlen);

/* The same for config.json's text already read (path only names it in
 * messages). The fuzz target drives this. */
int dn__node_config_load_text(dn__node_config *cfg, const char *text, size_t len, const char *path,
                              char *err, size_t errlen);

/* Set one key from text, as a flag gives it ("limits.max_conns", "512").
 * Integers in decimal, booleans true|false, lists comma-separated (the whole
 * list is replaced; "" is the empty list), "" for identity, data_dir or
 * api.listen means the default (null). Same validation as the file; the
 * message names the key. On error cfg is unchanged. Cross-key rules wait for
 * dn__node_config_check, so flags may come in any order. */
int dn__node_config_set(dn__node_config *cfg, const char *key, const char *value, char *err,
                        size_t errlen);

/* Set one key from a JSON value, as config.json holds it (PUT /v0/config).
 * Same validation and messages as the file; on error cfg is unchanged. */
int dn__node_config_set_json(dn__node_config *cfg, const char *key, const json_t *value,
                             char *err, size_t errlen);
/* The keys by index (0 .. count-1), for bit sets of keys. index: the key's
 * position, or DN_ENOTFOUND. */
int dn__node_config_key_index(const char *key);
size_t dn__node_config_key_count(void);
const char *dn__node_config_key_name(size_t i);

/* Rules that span keys (a non-loopback api.listen needs api.allow_remote).
 * Call after the last dn__node_config_set. */
int dn__node_config_check(const dn__node_config *cfg, char *err, size_t errlen);

/* The effective configuration as JSON (new reference, NULL on ENOMEM);
 * loading it back gives the same configuration. */
json_t *dn__node_config_to_json(const dn__node_config *cfg);

#endif
