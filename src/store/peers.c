/* Known peers: key, agent, first and last seen, and their addresses with
 * a last-seen time each. What the node redials at start is the most
 * recently seen peers; what it may forget first is the least recently
 * seen. Bounded: DN_STORE_PEER_ADDRS_MAX addresses per peer and
 * st->max_peers peers, so peers that come and go with fresh identities
 * cannot grow the file without bound. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

#define PEER_COLS "peer_id, public_key, agent, first_seen, last_seen"

static int step_done(dn_store *st, sqlite3_stmt *s, const char *what)
{
    int r = sqlite3_step(s);
    sqlite3_reset(s);
    return r == SQLITE_DONE ? 0 : dn__store_fail(st, r, what);
}

/* Make room for one more peer: forget the least recently seen. */
static int make_room(dn_store *st)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st,
                               "DELETE FROM peers WHERE peer_id IN (SELECT peer_id FROM peers"
                               " ORDER BY last_seen, peer_id LIMIT max(0, (SELECT count(*)"
                               " FROM peers) - ? + 1))",
                               &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, (int64_t)st->max_peers);
    rc = step_done(st, s, "forget old peers");
    sqlite3_finalize(s);
    return rc;
}

static int peer_exists(dn_store *st, const char *id, bool *exists)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "SELECT 1 FROM peers WHERE peer_id = ?", &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    *exists = r == SQLITE_ROW;
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "find peer");
    sqlite3_finalize(s);
    return rc;
}

static int put_locked(dn_store *st, const dn_store_peer *p, bool replace_addrs, int64_t first,
                      int64_t last)
{
    bool exists;
    int rc = peer_exists(st, p->peer_id, &exists);
    if (rc == 0 && !exists)
        rc = make_room(st);
    if (rc)
        return rc;
    sqlite3_stmt *s;
    rc = dn__store_prepare(st,
                           "INSERT INTO peers (" PEER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)"
                           " ON CONFLICT (peer_id) DO UPDATE SET"
                           " public_key = coalesce(excluded.public_key, public_key),"
                           " agent = coalesce(excluded.agent, agent),"
                           " first_seen = min(first_seen, excluded.first_seen),"
                           " last_seen = max(last_seen, excluded.last_seen)",
                           &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, p->peer_id, -1, SQLITE_STATIC);
    dn__store_bind_blob(s, 2, p->pubkey, p->pubkey_len);
    dn__store_bind_text(s, 3, p->agent);
    sqlite3_bind_int64(s, 4, first);
    sqlite3_bind_int64(s, 5, last);
    rc = step_done(st, s, "put peer");
    sqlite3_finalize(s);
    if (rc)
        return rc;

    if (replace_addrs) {
        if ((rc = dn__store_prepare(st, "DELETE FROM peer_addrs WHERE peer_id = ?", &s)))
            return rc;
        sqlite3_bind_text(s, 1, p->peer_id, -1, SQLITE_STATIC);
        rc = step_done(st, s, "replace peer addresses");
        sqlite3_finalize(s);
        if (rc)
            return rc;
    }
    if (p->n_addrs) {
        rc = dn__store_prepare(st,
                               "INSERT INTO peer_addrs (peer_id, addr, last_seen) VALUES (?, ?, ?)"
                               " ON CONFLICT (peer_id, addr) DO UPDATE SET"
                               " last_seen = max(last_seen, excluded.last_seen)",
                               &s);
        if (rc)
            return rc;
        for (size_t i = 0; i < p->n_addrs && rc == 0; i++) {
            sqlite3_bind_text(s, 1, p->peer_id, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, p->addrs[i], -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 3, last);
            rc = step_done(st, s, "put peer address");
        }
        sqlite3_finalize(s);
        if (rc)
            return rc;
        rc = dn__store_prepare(st,
                               "DELETE FROM peer_addrs WHERE peer_id = ?1 AND addr NOT IN"
                               " (SELECT addr FROM peer_addrs WHERE peer_id = ?1"
                               " ORDER BY last_seen DESC, addr LIMIT ?2)",
                               &s);
        if (rc)
            return rc;
        sqlite3_bind_text(s, 1, p->peer_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, DN_STORE_PEER_ADDRS_MAX);
        rc = step_done(st, s, "trim peer addresses");
        sqlite3_finalize(s);
    }
    return rc;
}

int dn__store_peer_put(dn_store *st, const dn_store_peer *p, bool replace_addrs)
{
    int rc;
    if (!p)
        return dn__store_failf(st, DN_EINVAL, "peer is NULL");
    if ((rc = dn__store_check_str(st, p->peer_id, DN_STORE_NAME_MAX, false, "peer id")) ||
        (rc = dn__store_check_blob(st, p->pubkey, p->pubkey_len, "public key")) ||
        (rc = dn__store_check_str(st, p->agent, DN_STORE_KEY_MAX, true, "agent")) ||
        (rc = dn__store_check_list(st, p->addrs, p->n_addrs, DN_STORE_PEER_ADDRS_MAX,
                                   "peer addresses")))
        return rc;
    int64_t last = p->last_seen_ms ? p->last_seen_ms : dn__store_now_ms();
    int64_t first = p->first_seen_ms ? p->first_seen_ms : last;
    if (first > last)
        return dn__store_failf(st, DN_EINVAL, "peer %s: first seen after last seen", p->peer_id);
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    return dn__store_tx_end(st, put_locked(st, p, replace_addrs, first, last));
}

/* Build the one-block copy of the peer in the current row of s. */
static int load_peer(dn_store *st, sqlite3_stmt *s, dn_store_peer **out)
{
    dn__store_out o = {0};
    size_t key_len;
    size_t id = dn__store_out_text(&o, s, 0);
    size_t key = dn__store_out_blob(&o, s, 1, &key_len);
    size_t agent = dn__store_out_text(&o, s, 2);
    int64_t first = sqlite3_column_int64(s, 3), last = sqlite3_column_int64(s, 4);
    sqlite3_stmt *a;
    int rc = dn__store_prepare(st,
                               "SELECT addr FROM peer_addrs WHERE peer_id = ?"
                               " ORDER BY last_seen DESC, addr",
                               &a);
    if (rc) {
        dn__store_out_free(&o);
        return rc;
    }
    sqlite3_bind_value(a, 1, sqlite3_column_value(s, 0));
    int r;
    while ((r = sqlite3_step(a)) == SQLITE_ROW)
        dn__store_out_list_add(&o, a, 0);
    sqlite3_finalize(a);
    if (r != SQLITE_DONE) {
        dn__store_out_free(&o);
        return dn__store_fail(st, r, "read peer addresses");
    }
    const char *const *list;
    dn_store_peer *p = dn__store_out_finish(&o, sizeof *p, &list);
    if (!p) {
        dn__store_out_free(&o);
        return DN_ENOMEM;
    }
    p->peer_id = dn__store_out_ptr(p, sizeof *p, &o, id);
    p->pubkey = dn__store_out_ptr(p, sizeof *p, &o, key);
    p->pubkey_len = key_len;
    p->agent = dn__store_out_ptr(p, sizeof *p, &o, agent);
    p->first_seen_ms = first;
    p->last_seen_ms = last;
    p->n_addrs = o.n_list;
    p->addrs = list;
    dn__store_out_free(&o);
    *out = p;
    return 0;
}

int dn__store_peer_get(dn_store *st, const char *peer_id, dn_store_peer **out)
{
    *out = NULL;
    int rc = dn__store_check_str(st, peer_id, DN_STORE_NAME_MAX, false, "peer id");
    sqlite3_stmt *s;
    if (rc || (rc = dn__store_prepare(st, "SELECT " PEER_COLS " FROM peers WHERE peer_id = ?", &s)))
        return rc;
    sqlite3_bind_text(s, 1, peer_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        rc = load_peer(st, s, out);
    else if (r == SQLITE_DONE)
        rc = dn__store_failf(st, DN_ENOTFOUND, "no peer %s", peer_id);
    else
        rc = dn__store_fail(st, r, "get peer");
    sqlite3_finalize(s);
    return rc;
}

int dn__store_peer_delete(dn_store *st, const char *peer_id)
{
    int rc = dn__store_check_str(st, peer_id, DN_STORE_NAME_MAX, false, "peer id");
    sqlite3_stmt *s;
    if (rc || (rc = dn__store_tx_begin(st)))
        return rc;
    if ((rc = dn__store_prepare(st, "DELETE FROM peers WHERE peer_id = ?", &s)) == 0) {
        sqlite3_bind_text(s, 1, peer_id, -1, SQLITE_STATIC);
        rc = step_done(st, s, "delete peer");
        if (rc == 0 && sqlite3_changes(st->db) == 0)
            rc = dn__store_failf(st, DN_ENOTFOUND, "no peer %s", peer_id);
        sqlite3_finalize(s);
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_peer_list(dn_store *st, int64_t since_ms, size_t limit, dn_store_peer_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st,
                               "SELECT " PEER_COLS " FROM peers WHERE last_seen >= ?"
                               " ORDER BY last_seen DESC, peer_id LIMIT ?",
                               &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, since_ms);
    sqlite3_bind_int64(s, 2, limit ? (int64_t)limit : -1);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        dn_store_peer *p;
        if ((rc = load_peer(st, s, &p)))
            break;
        rc = cb(ud, p);
        free(p);
        if (rc)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list peers");
    sqlite3_finalize(s);
    return rc;
}

int64_t dn__store_peer_count(dn_store *st)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "SELECT count(*) FROM peers", &s);
    if (rc)
        return rc;
    int r = sqlite3_step(s);
    int64_t n = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : dn__store_fail(st, r, "count");
    sqlite3_finalize(s);
    return n;
}
