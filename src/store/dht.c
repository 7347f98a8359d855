/* The Kademlia DHT's state that survives a restart (issue 10): the routing
 * table (replaced whole: the service hands over its table, at most once a
 * second), provider records and value records. Bounded by the
 * DN_STORE_DHT_* limits, so peers that announce or store a lot cannot grow
 * the file without bound; the node writes these in one transaction per
 * tick (dn__store_begin). */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

static int step_done(dn_store *st, sqlite3_stmt *s, const char *what)
{
    int r = sqlite3_step(s);
    sqlite3_reset(s);
    return r == SQLITE_DONE ? 0 : dn__store_fail(st, r, what);
}

static int run1(dn_store *st, const char *sql, int64_t arg, const char *what)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, sql, &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, arg);
    rc = step_done(st, s, what);
    sqlite3_finalize(s);
    return rc;
}

static int check_key(dn_store *st, const uint8_t *key, size_t keylen)
{
    if (!key || !keylen)
        return dn__store_failf(st, DN_EINVAL, "DHT key is empty");
    if (keylen > DN_STORE_DHT_KEY_MAX)
        return dn__store_failf(st, DN_ETOOBIG, "DHT key is longer than %d bytes",
                               DN_STORE_DHT_KEY_MAX);
    return 0;
}

/* ---- the routing table ---- */

static int table_set_locked(dn_store *st, const dn_store_dht_peer *peers, size_t n)
{
    int rc = dn__store_exec(st, "DELETE FROM dht_peers");
    if (rc)
        return rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_prepare(st,
                                "INSERT OR IGNORE INTO dht_peers (peer_id, saved_at)"
                                " VALUES (?, ?)",
                                &s)))
        return rc;
    int64_t now = dn__store_now_ms();
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_bind_text(s, 1, peers[i].peer_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, now);
        rc = step_done(st, s, "put DHT peer");
        if (!rc) {
            size_t na = peers[i].n_addrs < DN_STORE_DHT_PEER_ADDRS_MAX
                            ? peers[i].n_addrs
                            : DN_STORE_DHT_PEER_ADDRS_MAX;
            rc = dn__store_put_list(st, "dht_peer_addrs", "peer_id", peers[i].peer_id,
                                    peers[i].addrs, na);
        }
    }
    sqlite3_finalize(s);
    return rc;
}

int dn__store_dht_table_set(dn_store *st, const dn_store_dht_peer *peers, size_t n)
{
    int rc;
    if (n > DN_STORE_DHT_PEERS_MAX)
        return dn__store_failf(st, DN_ETOOBIG, "%zu DHT peers, at most %d are kept", n,
                               DN_STORE_DHT_PEERS_MAX);
    for (size_t i = 0; i < n; i++) {
        size_t na = peers[i].n_addrs < DN_STORE_DHT_PEER_ADDRS_MAX ? peers[i].n_addrs
                                                                   : DN_STORE_DHT_PEER_ADDRS_MAX;
        if ((rc = dn__store_check_str(st, peers[i].peer_id, DN_STORE_NAME_MAX, false,
                                      "DHT peer id")) ||
            (rc = dn__store_check_list(st, peers[i].addrs, na, DN_STORE_DHT_PEER_ADDRS_MAX,
                                       "DHT peer addresses")))
            return rc;
    }
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    return dn__store_tx_end(st, table_set_locked(st, peers, n));
}

int dn__store_dht_table_list(dn_store *st, dn_store_dht_peer_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc =
        dn__store_prepare(st,
                          "SELECT p.peer_id, a.addr FROM dht_peers p LEFT JOIN dht_peer_addrs a"
                          " ON a.peer_id = p.peer_id ORDER BY p.peer_id, a.pos",
                          &s);
    if (rc)
        return rc;
    /* Rows come grouped by peer: collect one peer's addresses, hand it
     * over when the next peer starts. */
    char id[DN_STORE_NAME_MAX + 1] = "";
    char *addrs[DN_STORE_DHT_PEER_ADDRS_MAX];
    size_t na = 0;
    int r;
    bool have = false;
    while ((r = sqlite3_step(s)) == SQLITE_ROW || (r == SQLITE_DONE && have)) {
        const char *pid = r == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
        if (have && (!pid || strcmp(pid, id))) {
            dn_store_dht_peer p = {
                .peer_id = id, .addrs = (const char *const *)addrs, .n_addrs = na};
            rc = cb(ud, &p);
            for (size_t i = 0; i < na; i++)
                free(addrs[i]);
            na = 0;
            have = false;
            if (rc)
                break;
        }
        if (!pid)
            break;
        if (!have) {
            snprintf(id, sizeof id, "%s", pid);
            have = true;
        }
        const char *a = (const char *)sqlite3_column_text(s, 1);
        if (a && na < DN_STORE_DHT_PEER_ADDRS_MAX) {
            if (!(addrs[na] = strdup(a))) {
                rc = DN_ENOMEM;
                break;
            }
            na++;
        }
    }
    for (size_t i = 0; i < na; i++)
        free(addrs[i]);
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list DHT peers");
    sqlite3_finalize(s);
    return rc;
}

/* ---- provider records ---- */

static int provider_put_locked(dn_store *st, const uint8_t *key, size_t keylen,
                               const char *provider, int64_t expires_ms)
{
    sqlite3_stmt *s;
    int rc =
        dn__store_prepare(st,
                          "INSERT INTO dht_providers (key, provider, expires_at) VALUES (?, ?, ?)"
                          " ON CONFLICT (key, provider) DO UPDATE SET"
                          " expires_at = max(expires_at, excluded.expires_at)",
                          &s);
    if (rc)
        return rc;
    sqlite3_bind_blob(s, 1, key, (int)keylen, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, provider, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, expires_ms);
    rc = step_done(st, s, "put DHT provider");
    sqlite3_finalize(s);
    return rc;
}

int dn__store_dht_provider_put(dn_store *st, const uint8_t *key, size_t keylen,
                               const char *provider, int64_t expires_ms)
{
    int rc;
    if ((rc = check_key(st, key, keylen)) ||
        (rc = dn__store_check_str(st, provider, DN_STORE_NAME_MAX, false, "DHT provider")))
        return rc;
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    return dn__store_tx_end(st, provider_put_locked(st, key, keylen, provider, expires_ms));
}

int dn__store_dht_provider_delete(dn_store *st, const uint8_t *key, size_t keylen,
                                  const char *provider)
{
    int rc;
    if ((rc = check_key(st, key, keylen)) ||
        (rc = dn__store_check_str(st, provider, DN_STORE_NAME_MAX, false, "DHT provider")))
        return rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    if (!(rc = dn__store_prepare(st, "DELETE FROM dht_providers WHERE key = ? AND provider = ?",
                                 &s))) {
        sqlite3_bind_blob(s, 1, key, (int)keylen, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, provider, -1, SQLITE_STATIC);
        rc = step_done(st, s, "delete DHT provider");
        sqlite3_finalize(s);
        if (!rc && sqlite3_changes(st->db) == 0)
            rc = dn__store_failf(st, DN_ENOTFOUND, "no such DHT provider record");
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_dht_provider_list(dn_store *st, int64_t now_ms, dn_store_dht_provider_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st,
                               "SELECT key, provider, expires_at FROM dht_providers"
                               " WHERE expires_at > ? ORDER BY key, provider",
                               &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, now_ms);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *key = sqlite3_column_blob(s, 0);
        size_t keylen = (size_t)sqlite3_column_bytes(s, 0);
        const char *prov = (const char *)sqlite3_column_text(s, 1);
        if (!key || !prov)
            continue;
        if ((rc = cb(ud, key, keylen, prov, sqlite3_column_int64(s, 2))))
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list DHT providers");
    sqlite3_finalize(s);
    return rc;
}

/* ---- value records ---- */

static int record_put_locked(dn_store *st, const uint8_t *key, size_t keylen, const uint8_t *value,
                             size_t vlen, int64_t received_ms)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st,
                               "INSERT OR REPLACE INTO dht_records (key, value, received_at)"
                               " VALUES (?, ?, ?)",
                               &s);
    if (rc)
        return rc;
    sqlite3_bind_blob(s, 1, key, (int)keylen, SQLITE_STATIC);
    /* An empty value is a value: bind a zero-length blob, not NULL. */
    sqlite3_bind_blob(s, 2, vlen ? (const void *)value : "", (int)vlen, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, received_ms);
    rc = step_done(st, s, "put DHT record");
    sqlite3_finalize(s);
    return rc;
}

int dn__store_dht_record_put(dn_store *st, const uint8_t *key, size_t keylen, const uint8_t *value,
                             size_t vlen, int64_t received_ms)
{
    int rc;
    if ((rc = check_key(st, key, keylen)))
        return rc;
    if (vlen && !value)
        return dn__store_failf(st, DN_EINVAL, "DHT record value is missing");
    if (vlen > DN_STORE_DHT_VALUE_MAX)
        return dn__store_failf(st, DN_ETOOBIG, "DHT record value is longer than %d bytes",
                               DN_STORE_DHT_VALUE_MAX);
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    return dn__store_tx_end(st, record_put_locked(st, key, keylen, value, vlen, received_ms));
}

int dn__store_dht_record_list(dn_store *st, int64_t since_ms, dn_store_dht_record_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st,
                               "SELECT key, value, received_at FROM dht_records"
                               " WHERE received_at >= ? ORDER BY key",
                               &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, since_ms);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *key = sqlite3_column_blob(s, 0);
        size_t keylen = (size_t)sqlite3_column_bytes(s, 0);
        const uint8_t *value = sqlite3_column_blob(s, 1);
        size_t vlen = (size_t)sqlite3_column_bytes(s, 1);
        if (!key)
            continue;
        if ((rc = cb(ud, key, keylen, value ? value : (const uint8_t *)"", vlen,
                     sqlite3_column_int64(s, 2))))
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list DHT records");
    sqlite3_finalize(s);
    return rc;
}

int64_t dn__store_dht_prune(dn_store *st, int64_t now_ms, int64_t records_since_ms)
{
    /* The bounds are applied here, once per batch, rather than in every
     * put: counting the rows costs a walk of the table. */
    static const struct {
        const char *sql, *what;
        int what_arg; /* 0: now_ms, 1: records_since_ms, 2: a bound */
        int64_t bound;
    } steps[] = {
        {"DELETE FROM dht_providers WHERE expires_at <= ?", "expire DHT providers", 0, 0},
        {"DELETE FROM dht_records WHERE received_at < ?", "expire DHT records", 1, 0},
        {"DELETE FROM dht_providers WHERE (key, provider) IN (SELECT key, provider FROM"
         " dht_providers ORDER BY expires_at LIMIT max(0, (SELECT count(*) FROM dht_providers)"
         " - ?))",
         "trim DHT providers", 2, DN_STORE_DHT_PROVIDERS_MAX},
        {"DELETE FROM dht_records WHERE rowid IN (SELECT rowid FROM dht_records ORDER BY"
         " received_at LIMIT max(0, (SELECT count(*) FROM dht_records) - ?))",
         "trim DHT records", 2, DN_STORE_DHT_RECORDS_MAX},
    };
    int rc = dn__store_tx_begin(st);
    if (rc)
        return rc;
    int64_t n = 0;
    for (size_t i = 0; !rc && i < sizeof steps / sizeof steps[0]; i++) {
        int64_t arg = steps[i].what_arg == 0   ? now_ms
                      : steps[i].what_arg == 1 ? records_since_ms
                                               : steps[i].bound;
        if (!(rc = run1(st, steps[i].sql, arg, steps[i].what)))
            n += sqlite3_changes(st->db);
    }
    rc = dn__store_tx_end(st, rc);
    return rc ? rc : n;
}
