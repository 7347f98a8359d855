/* The node's persistent store: one SQLite file, <data-dir>/dmsnet.db.
 *
 * Internal to the library (dn__ names): the node (src/node) owns the one
 * dn_store of a process, and embedders reach what it keeps through the
 * Network API, not through SQL rows. Keeping this header private lets the
 * schema and these structs change without an ABI break; the error codes it
 * returns are public (DN_ECORRUPT, DN_ESCHEMA, DN_EREADONLY, in
 * dmsnet/error.h) because the node passes them on.
 *
 * Guarantees (docs/store.md has the details and the schema):
 * - Every function that writes returns 0 only after its transaction has
 *   committed with synchronous=FULL in WAL mode: the commit is in the WAL
 *   and fsync'd, so neither kill -9 nor a power loss loses it.
 * - A file that is corrupt, from a newer schema, not a dmsnet store, or not
 *   writable is refused with a message naming the file and the reason, and
 *   is never written to.
 * - The file and its -wal/-shm companions are mode 0600.
 *
 * Strings are UTF-8 and NUL-terminated; times are unix milliseconds; peer
 * ids are their text form (base58btc), addresses multiaddr text. The store
 * checks sizes and the schema's own invariants, not the meaning of values
 * (the node validates a multiaddr before it stores it).
 *
 * Not thread-safe: one dn_store is used from one thread (the loop's). */
#ifndef DN_STORE_STORE_H
#define DN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schema version this code writes (PRAGMA user_version). */
#define DN_STORE_SCHEMA_VERSION 4
/* PRAGMA application_id of a dmsnet store: "dmsn" in ASCII. */
#define DN_STORE_APPLICATION_ID 0x646d736e
#define DN_STORE_FILENAME "dmsnet.db"

/* Size bounds, checked before anything is written (DN_ETOOBIG / DN_EINVAL). */
#define DN_STORE_NAME_MAX 128       /* peer ids, swarm / vpn / channel names (bytes) */
#define DN_STORE_ADDR_MAX 1024      /* one multiaddr or cidr text */
#define DN_STORE_BLOB_MAX 4096      /* public keys, signatures, ciphertexts */
#define DN_STORE_KEY_MAX 256        /* a setting's key */
#define DN_STORE_VALUE_MAX 65536    /* a setting's JSON value */
#define DN_STORE_PEER_ADDRS_MAX 32  /* addresses kept per peer (the most recent) */
#define DN_STORE_BOOTSTRAP_MAX 64   /* bootstrap addresses of a channel or swarm */
#define DN_STORE_PEERS_DEFAULT 8192 /* peers kept (least recently seen go first) */

typedef struct dn_store dn_store;

/* Open (creating when absent) <data_dir>/dmsnet.db and migrate it to
 * DN_STORE_SCHEMA_VERSION. data_dir is created (0700) if it does not exist.
 * On failure *out is NULL and err (if not NULL) holds a one-line reason that
 * names the file. Returns 0, or:
 *   DN_ECORRUPT      not a SQLite database, or quick_check fails
 *   DN_ESCHEMA       user_version above DN_STORE_SCHEMA_VERSION
 *   DN_EUNSUPPORTED  a SQLite database that is not a dmsnet store
 *   DN_EREADONLY     the file or its directory is not writable (or is
 *                    marked read-only: no owner-write bit, refused even
 *                    for root, who would otherwise write it anyway)
 *   DN_EIO / -errno  other failures. */
int dn__store_open(const char *data_dir, dn_store **out, char *err, size_t errlen);
void dn__store_close(dn_store *st);

const char *dn__store_path(const dn_store *st);
/* The reason for the last failure of a call on st ("" if none). */
const char *dn__store_errmsg(const dn_store *st);
/* PRAGMA integrity_check (the full one; open runs quick_check). 0 when it
 * says "ok", DN_ECORRUPT with its first complaint in the errmsg otherwise. */
int dn__store_integrity_check(dn_store *st);
/* The number of peers kept before the least recently seen are forgotten
 * (default DN_STORE_PEERS_DEFAULT, at least 1). */
void dn__store_set_peer_limit(dn_store *st, size_t max_peers);

/* Group writes into one transaction (one fsync): between begin and commit
 * every call below joins it, and a failing call undoes only its own part.
 * commit returns 0 once the whole group is durable; rollback undoes it. */
int dn__store_begin(dn_store *st);
int dn__store_commit(dn_store *st);
void dn__store_rollback(dn_store *st);

/* List callbacks get items valid for the call only; a nonzero return stops
 * the listing and becomes the list function's return value. */

/* ---- settings: what the user set through the API (config overrides) ---- */

/* value is JSON text (any JSON value); not JSON -> DN_EINVAL. */
int dn__store_setting_set(dn_store *st, const char *key, const char *json_value);
/* *json_out is malloc'd (free it). DN_ENOTFOUND when unset. */
int dn__store_setting_get(dn_store *st, const char *key, char **json_out);
int dn__store_setting_delete(dn_store *st, const char *key); /* DN_ENOTFOUND */
typedef int (*dn_store_setting_cb)(void *ud, const char *key, const char *json, int64_t updated_ms);
int dn__store_setting_list(dn_store *st, dn_store_setting_cb cb, void *ud); /* by key */

/* ---- peers: known peers, their keys and addresses ---- */

typedef struct dn_store_peer {
    const char *peer_id;
    const uint8_t *pubkey; /* protobuf PublicKey; NULL: unknown (put: keep) */
    size_t pubkey_len;
    const char *agent;        /* NULL: unknown (put: keep) */
    int64_t first_seen_ms;    /* put: 0 means last_seen_ms; an older one is kept */
    int64_t last_seen_ms;     /* put: a newer stored one is kept */
    const char *const *addrs; /* most recently seen first */
    size_t n_addrs;
} dn_store_peer;

/* Insert or update. Addresses are merged with last seen = p->last_seen_ms
 * (replace_addrs: the given ones replace the stored ones), and only the
 * DN_STORE_PEER_ADDRS_MAX most recent are kept. A new peer past the peer
 * limit makes the least recently seen one go. */
int dn__store_peer_put(dn_store *st, const dn_store_peer *p, bool replace_addrs);
/* *out is one malloc'd block (free() it). DN_ENOTFOUND. */
int dn__store_peer_get(dn_store *st, const char *peer_id, dn_store_peer **out);
int dn__store_peer_delete(dn_store *st, const char *peer_id); /* DN_ENOTFOUND */
typedef int (*dn_store_peer_cb)(void *ud, const dn_store_peer *p);
/* Peers seen at or after since_ms, most recently seen first, at most limit
 * (0: all): what the node redials at start. */
int dn__store_peer_list(dn_store *st, int64_t since_ms, size_t limit, dn_store_peer_cb cb,
                        void *ud);
/* The number of peers stored, or a negative error. */
int64_t dn__store_peer_count(dn_store *st);

/* ---- the public channel the node onboarded onto (one) ---- */

typedef struct dn_store_channel {
    const char *name;
    const char *dht_prefix; /* e.g. "/nunet" */
    const char *const *bootstrap;
    size_t n_bootstrap;
    int64_t updated_ms; /* out only */
} dn_store_channel;

int dn__store_channel_set(dn_store *st, const dn_store_channel *c);
int dn__store_channel_get(dn_store *st, dn_store_channel **out); /* free(); DN_ENOTFOUND */
int dn__store_channel_clear(dn_store *st);                       /* DN_ENOTFOUND */

/* ---- private swarms (the swarm issue encrypts the key; this keeps bytes) ---- */

typedef enum dn_store_swarm_role {
    DN_STORE_SWARM_CREATOR = 0,
    DN_STORE_SWARM_MEMBER = 1,
} dn_store_swarm_role;

typedef struct dn_store_swarm {
    const char *name;
    const char *swarm_id;
    const char *creator; /* peer id of the creator, who hands out the key */
    dn_store_swarm_role role;
    /* The swarm key encrypted at rest: opaque ciphertext and its nonce, both
     * NULL until a member has received the key. */
    const uint8_t *key_ct;
    size_t key_ct_len;
    const uint8_t *key_nonce;
    size_t key_nonce_len;
    int64_t key_version; /* bumped by each rotation */
    bool active;         /* the node runs in this swarm (at most one is) */
    const char *const *bootstrap;
    size_t n_bootstrap;
    int64_t created_ms; /* put: 0 means now; kept on update */
    int64_t updated_ms; /* out only */
} dn_store_swarm;

/* Insert or replace (members are kept). active=true clears it elsewhere.
 * DN_EEXIST if another swarm has the same swarm_id. */
int dn__store_swarm_put(dn_store *st, const dn_store_swarm *s);
int dn__store_swarm_get(dn_store *st, const char *name, dn_store_swarm **out); /* free() */
/* The active swarm; DN_ENOTFOUND when the node is on the public channel. */
int dn__store_swarm_get_active(dn_store *st, dn_store_swarm **out);
/* Deletes its members too; DN_ENOTFOUND. */
int dn__store_swarm_delete(dn_store *st, const char *name);
typedef int (*dn_store_swarm_cb)(void *ud, const dn_store_swarm *s);
int dn__store_swarm_list(dn_store *st, dn_store_swarm_cb cb, void *ud); /* by name */

typedef struct dn_store_swarm_member {
    const char *swarm; /* the swarm's name */
    const char *peer_id;
    const uint8_t *pubkey; /* NULL until fetched */
    size_t pubkey_len;
    bool has_key;         /* the member has received the current key */
    int64_t confirmed_ms; /* 0: authorised, not yet confirmed */
    int64_t added_ms;     /* put: 0 means now; kept on update */
} dn_store_swarm_member;

/* DN_ENOTFOUND if the swarm does not exist. */
int dn__store_swarm_member_put(dn_store *st, const dn_store_swarm_member *m);
int dn__store_swarm_member_get(dn_store *st, const char *swarm, const char *peer_id,
                               dn_store_swarm_member **out); /* free() */
int dn__store_swarm_member_delete(dn_store *st, const char *swarm, const char *peer_id);
typedef int (*dn_store_member_cb)(void *ud, const dn_store_swarm_member *m);
int dn__store_swarm_member_list(dn_store *st, const char *swarm, dn_store_member_cb cb,
                                void *ud); /* by peer id */

/* ---- VPNs and their address allocations ---- */

typedef struct dn_store_vpn {
    const char *name;
    const char *coordinator; /* peer id that signs the table */
    const char *cidr_v4;     /* NULL when v6 only; at least one is set */
    const char *cidr_v6;
    int64_t table_version;
    const uint8_t *signature; /* the coordinator's, over table_version's table */
    size_t signature_len;
    int64_t created_ms; /* put: 0 means now; kept on update */
    int64_t updated_ms; /* out only */
} dn_store_vpn;

/* Insert or update; a table_version below the stored one is refused
 * (DN_ESTATE): a replayed older table never replaces a newer one. */
int dn__store_vpn_put(dn_store *st, const dn_store_vpn *v);
int dn__store_vpn_get(dn_store *st, const char *name, dn_store_vpn **out); /* free() */
int dn__store_vpn_delete(dn_store *st, const char *name);                  /* allocations too */
typedef int (*dn_store_vpn_cb)(void *ud, const dn_store_vpn *v);
int dn__store_vpn_list(dn_store *st, dn_store_vpn_cb cb, void *ud);

typedef enum dn_store_alloc_state {
    DN_STORE_ALLOC_ACTIVE = 0,
    DN_STORE_ALLOC_RELEASED = 1,
} dn_store_alloc_state;

typedef struct dn_store_vpn_alloc {
    const char *vpn;
    const char *peer_id;
    const char *addr_v4; /* NULL when none */
    const char *addr_v6;
    dn_store_alloc_state state;
    int64_t allocated_ms; /* put: 0 means now */
    int64_t released_ms;  /* 0 while active */
} dn_store_vpn_alloc;

/* Insert or update one peer's allocation. The database refuses two active
 * allocations of one address in one VPN (DN_EEXIST): no IP collision can
 * be stored. DN_ENOTFOUND if the VPN does not exist. */
int dn__store_vpn_alloc_put(dn_store *st, const dn_store_vpn_alloc *a);
int dn__store_vpn_alloc_get(dn_store *st, const char *vpn, const char *peer_id,
                            dn_store_vpn_alloc **out); /* free() */
/* Mark released at released_ms (0: now); its addresses become free. */
int dn__store_vpn_alloc_release(dn_store *st, const char *vpn, const char *peer_id,
                                int64_t released_ms);
int dn__store_vpn_alloc_delete(dn_store *st, const char *vpn, const char *peer_id);
typedef int (*dn_store_alloc_cb)(void *ud, const dn_store_vpn_alloc *a);
/* By peer id; active_only skips released ones. */
int dn__store_vpn_alloc_list(dn_store *st, const char *vpn, bool active_only, dn_store_alloc_cb cb,
                             void *ud);

/* ---- the Kademlia DHT: routing table, provider and value records ---- */

/* Bounds of what is kept: the whole routing table (256 buckets of 20);
 * providers and records past their bound are pruned by dn__store_dht_prune
 * (the soonest to expire / the oldest received go first), which the node
 * runs after each batch of puts. */
#define DN_STORE_DHT_PEERS_MAX 5120
#define DN_STORE_DHT_PEER_ADDRS_MAX 16
#define DN_STORE_DHT_PROVIDERS_MAX 262144
#define DN_STORE_DHT_RECORDS_MAX 65536
#define DN_STORE_DHT_KEY_MAX 2048
#define DN_STORE_DHT_VALUE_MAX 65536

typedef struct dn_store_dht_peer {
    const char *peer_id;
    const char *const *addrs; /* multiaddr text */
    size_t n_addrs;
} dn_store_dht_peer;

/* Replace the stored routing table with these n peers (at most
 * DN_STORE_DHT_PEERS_MAX; addresses past DN_STORE_DHT_PEER_ADDRS_MAX are
 * left out). */
int dn__store_dht_table_set(dn_store *st, const dn_store_dht_peer *peers, size_t n);
typedef int (*dn_store_dht_peer_cb)(void *ud, const dn_store_dht_peer *p);
int dn__store_dht_table_list(dn_store *st, dn_store_dht_peer_cb cb, void *ud);

/* Insert or refresh (the later expiry wins) a provider record. */
int dn__store_dht_provider_put(dn_store *st, const uint8_t *key, size_t keylen,
                               const char *provider, int64_t expires_ms);
int dn__store_dht_provider_delete(dn_store *st, const uint8_t *key, size_t keylen,
                                  const char *provider); /* DN_ENOTFOUND */
typedef int (*dn_store_dht_provider_cb)(void *ud, const uint8_t *key, size_t keylen,
                                        const char *provider, int64_t expires_ms);
/* The providers that expire after now_ms, by key. */
int dn__store_dht_provider_list(dn_store *st, int64_t now_ms, dn_store_dht_provider_cb cb,
                                void *ud);

/* Insert or replace the record of key (value at most
 * DN_STORE_DHT_VALUE_MAX bytes, may be empty). */
int dn__store_dht_record_put(dn_store *st, const uint8_t *key, size_t keylen,
                             const uint8_t *value, size_t vlen, int64_t received_ms);
typedef int (*dn_store_dht_record_cb)(void *ud, const uint8_t *key, size_t keylen,
                                      const uint8_t *value, size_t vlen, int64_t received_ms);
/* The records received at or after since_ms (the others have expired). */
int dn__store_dht_record_list(dn_store *st, int64_t since_ms, dn_store_dht_record_cb cb,
                              void *ud);
/* Delete providers expired at now_ms and records received before
 * records_since_ms, then the providers and records past their bounds.
 * Returns the rows deleted, or a negative error. */
int64_t dn__store_dht_prune(dn_store *st, int64_t now_ms, int64_t records_since_ms);

/* ---- schema, exposed for the migration tests ---- */

/* The SQL that takes the schema from version v-1 to v (1 <= v <=
 * DN_STORE_SCHEMA_VERSION); NULL otherwise. */
const char *dn__store_migration_sql(int v);

#endif
