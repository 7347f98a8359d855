/* The schema, as the ordered list of migrations that build it. Migration v
 * takes a database from user_version v-1 to v; each runs in one
 * transaction together with the user_version bump (store.c). A migration
 * is never edited once released: a database made by an older dmsnet runs
 * the same steps this one did, and the tests replay each prefix of this
 * list to prove that every old version migrates to the newest.
 *
 * Tables are STRICT (SQLite 3.37+): a column holds only its declared type,
 * so a bug cannot store a number where a peer id belongs. Times are unix
 * milliseconds (INTEGER). Child rows go with their parent (ON DELETE
 * CASCADE; foreign_keys is on for every connection, store.c). */
#include "store/store_int.h"

static const char *const migrations[DN_STORE_SCHEMA_VERSION] = {
    /* 1: settings, peers and the public channel. */
    "PRAGMA application_id = 1684894574;" /* DN_STORE_APPLICATION_ID, "dmsn" */
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY NOT NULL CHECK (length(key) BETWEEN 1 AND 256),"
    "  value TEXT NOT NULL CHECK (json_valid(value)),"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE peers ("
    "  peer_id TEXT PRIMARY KEY NOT NULL CHECK (length(peer_id) BETWEEN 1 AND 128),"
    "  public_key BLOB," /* protobuf PublicKey; NULL until known */
    "  agent TEXT,"
    "  first_seen INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL CHECK (last_seen >= first_seen)"
    ") STRICT;"
    "CREATE INDEX peers_by_last_seen ON peers (last_seen);"
    /* Addresses are rows, not a JSON array: each has its own last_seen, so
     * stale ones can be dropped and the freshest dialled first. */
    "CREATE TABLE peer_addrs ("
    "  peer_id TEXT NOT NULL REFERENCES peers (peer_id) ON DELETE CASCADE,"
    "  addr TEXT NOT NULL CHECK (length(addr) BETWEEN 1 AND 1024),"
    "  last_seen INTEGER NOT NULL,"
    "  PRIMARY KEY (peer_id, addr)"
    ") STRICT, WITHOUT ROWID;"
    /* The public channel the node onboarded onto: one row. */
    "CREATE TABLE channel ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
    "  dht_prefix TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE channel_bootstrap ("
    "  channel INTEGER NOT NULL REFERENCES channel (id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  addr TEXT NOT NULL,"
    "  PRIMARY KEY (channel, pos)"
    ") STRICT;",

    /* 2: private swarms. The key is stored encrypted at rest, as an opaque
     * ciphertext and nonce (the swarm module owns the encryption). */
    "CREATE TABLE swarms ("
    "  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
    "  swarm_id TEXT NOT NULL UNIQUE,"
    "  creator TEXT NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('creator', 'member')),"
    "  key_ciphertext BLOB,"
    "  key_nonce BLOB,"
    "  key_version INTEGER NOT NULL DEFAULT 0,"
    "  active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  CHECK ((key_ciphertext IS NULL) = (key_nonce IS NULL))"
    ") STRICT;"
    /* The node runs in at most one swarm. */
    "CREATE UNIQUE INDEX swarms_one_active ON swarms (active) WHERE active = 1;"
    "CREATE TABLE swarm_bootstrap ("
    "  swarm TEXT NOT NULL REFERENCES swarms (name) ON DELETE CASCADE ON UPDATE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  addr TEXT NOT NULL,"
    "  PRIMARY KEY (swarm, pos)"
    ") STRICT;"
    "CREATE TABLE swarm_members ("
    "  swarm TEXT NOT NULL REFERENCES swarms (name) ON DELETE CASCADE ON UPDATE CASCADE,"
    "  peer_id TEXT NOT NULL CHECK (length(peer_id) BETWEEN 1 AND 128),"
    "  public_key BLOB,"
    "  has_key INTEGER NOT NULL DEFAULT 0 CHECK (has_key IN (0, 1)),"
    "  confirmed_at INTEGER," /* NULL: authorised, not yet confirmed */
    "  added_at INTEGER NOT NULL,"
    "  PRIMARY KEY (swarm, peer_id)"
    ") STRICT;",

    /* 3: VPNs: the coordinator's signed address table, one allocation per
     * peer. Two active allocations of one address in one VPN violate a
     * unique index, so a collision cannot be stored. */
    "CREATE TABLE vpns ("
    "  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 128),"
    "  coordinator TEXT NOT NULL,"
    "  cidr_v4 TEXT,"
    "  cidr_v6 TEXT,"
    "  table_version INTEGER NOT NULL DEFAULT 0 CHECK (table_version >= 0),"
    "  signature BLOB,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  CHECK (cidr_v4 IS NOT NULL OR cidr_v6 IS NOT NULL)"
    ") STRICT;"
    "CREATE TABLE vpn_allocations ("
    "  vpn TEXT NOT NULL REFERENCES vpns (name) ON DELETE CASCADE ON UPDATE CASCADE,"
    "  peer_id TEXT NOT NULL CHECK (length(peer_id) BETWEEN 1 AND 128),"
    "  addr_v4 TEXT,"
    "  addr_v6 TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('active', 'released')),"
    "  allocated_at INTEGER NOT NULL,"
    "  released_at INTEGER,"
    "  PRIMARY KEY (vpn, peer_id),"
    "  CHECK ((state = 'released') = (released_at IS NOT NULL))"
    ") STRICT;"
    "CREATE UNIQUE INDEX vpn_alloc_v4 ON vpn_allocations (vpn, addr_v4)"
    "  WHERE state = 'active' AND addr_v4 IS NOT NULL;"
    "CREATE UNIQUE INDEX vpn_alloc_v6 ON vpn_allocations (vpn, addr_v6)"
    "  WHERE state = 'active' AND addr_v6 IS NOT NULL;",

    /* 4: the Kademlia DHT (issue 10): the routing table (replaced whole at
     * each save), provider records (until they expire) and the value
     * records peers stored with us (until received_at + the record TTL).
     * Keys are bytes (a CID's multihash, "/pk/" + a multihash). */
    "CREATE TABLE dht_peers ("
    "  peer_id TEXT PRIMARY KEY NOT NULL CHECK (length(peer_id) BETWEEN 1 AND 128),"
    "  saved_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE dht_peer_addrs ("
    "  peer_id TEXT NOT NULL REFERENCES dht_peers (peer_id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  addr TEXT NOT NULL CHECK (length(addr) BETWEEN 1 AND 1024),"
    "  PRIMARY KEY (peer_id, pos)"
    ") STRICT;"
    "CREATE TABLE dht_providers ("
    "  key BLOB NOT NULL CHECK (length(key) BETWEEN 1 AND 2048),"
    "  provider TEXT NOT NULL CHECK (length(provider) BETWEEN 1 AND 128),"
    "  expires_at INTEGER NOT NULL,"
    "  PRIMARY KEY (key, provider)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE INDEX dht_providers_by_expiry ON dht_providers (expires_at);"
    "CREATE TABLE dht_records ("
    "  key BLOB PRIMARY KEY NOT NULL CHECK (length(key) BETWEEN 1 AND 2048),"
    "  value BLOB NOT NULL CHECK (length(value) <= 65536),"
    "  received_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX dht_records_by_received ON dht_records (received_at);",
};

_Static_assert(DN_STORE_APPLICATION_ID == 1684894574, "application_id in migration 1");

const char *dn__store_migration_sql(int v)
{
    if (v < 1 || v > DN_STORE_SCHEMA_VERSION)
        return NULL;
    return migrations[v - 1];
}
