/* Private swarms and their authorised members (seed spec, "Private
 * Swarm": the creator saves the peer ids, their public keys, the swarm key
 * and the bootstrap node; a member saves the key it received). The key is
 * stored only as the swarm module's ciphertext and nonce. */
#include "store/store_int.h"

#include <stdlib.h>

#include "dmsnet/error.h"

#define SWARM_COLS                                                                                 \
    "name, swarm_id, creator, role, key_ciphertext, key_nonce, key_version, active,"               \
    " created_at, updated_at"

static const char *role_text(dn_store_swarm_role r)
{
    return r == DN_STORE_SWARM_CREATOR ? "creator" : r == DN_STORE_SWARM_MEMBER ? "member" : NULL;
}

static int step_once(dn_store *st, sqlite3_stmt *s, const char *what)
{
    int r = sqlite3_step(s);
    int rc = r == SQLITE_DONE ? 0 : dn__store_fail(st, r, what);
    sqlite3_finalize(s);
    return rc;
}

static int put_locked(dn_store *st, const dn_store_swarm *sw, int64_t now)
{
    sqlite3_stmt *s;
    int rc;
    if (sw->active) {
        if ((rc = dn__store_prepare(st,
                                    "UPDATE swarms SET active = 0 WHERE active = 1 AND"
                                    " name <> ?",
                                    &s)))
            return rc;
        sqlite3_bind_text(s, 1, sw->name, -1, SQLITE_STATIC);
        if ((rc = step_once(st, s, "deactivate swarms")))
            return rc;
    }
    rc = dn__store_prepare(st,
                           "INSERT INTO swarms (" SWARM_COLS ")"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                           " ON CONFLICT (name) DO UPDATE SET swarm_id = excluded.swarm_id,"
                           " creator = excluded.creator, role = excluded.role,"
                           " key_ciphertext = excluded.key_ciphertext,"
                           " key_nonce = excluded.key_nonce, key_version = excluded.key_version,"
                           " active = excluded.active, updated_at = excluded.updated_at",
                           &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, sw->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, sw->swarm_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, sw->creator, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, role_text(sw->role), -1, SQLITE_STATIC);
    dn__store_bind_blob(s, 5, sw->key_ct, sw->key_ct_len);
    dn__store_bind_blob(s, 6, sw->key_nonce, sw->key_nonce_len);
    sqlite3_bind_int64(s, 7, sw->key_version);
    sqlite3_bind_int(s, 8, sw->active ? 1 : 0);
    sqlite3_bind_int64(s, 9, sw->created_ms ? sw->created_ms : now);
    sqlite3_bind_int64(s, 10, now);
    if ((rc = step_once(st, s, "put swarm"))) {
        if (rc == DN_EEXIST)
            rc = dn__store_failf(st, DN_EEXIST, "another swarm has the id %s", sw->swarm_id);
        return rc;
    }
    return dn__store_put_list(st, "swarm_bootstrap", "swarm", sw->name, sw->bootstrap,
                              sw->n_bootstrap);
}

int dn__store_swarm_put(dn_store *st, const dn_store_swarm *sw)
{
    int rc;
    if (!sw)
        return dn__store_failf(st, DN_EINVAL, "swarm is NULL");
    if ((rc = dn__store_check_str(st, sw->name, DN_STORE_NAME_MAX, false, "swarm name")) ||
        (rc = dn__store_check_str(st, sw->swarm_id, DN_STORE_NAME_MAX, false, "swarm id")) ||
        (rc = dn__store_check_str(st, sw->creator, DN_STORE_NAME_MAX, false, "swarm creator")) ||
        (rc = dn__store_check_blob(st, sw->key_ct, sw->key_ct_len, "swarm key ciphertext")) ||
        (rc = dn__store_check_blob(st, sw->key_nonce, sw->key_nonce_len, "swarm key nonce")) ||
        (rc = dn__store_check_list(st, sw->bootstrap, sw->n_bootstrap, DN_STORE_BOOTSTRAP_MAX,
                                   "bootstrap addresses")))
        return rc;
    if (!role_text(sw->role))
        return dn__store_failf(st, DN_EINVAL, "swarm %s: unknown role %d", sw->name, sw->role);
    if (!sw->key_ct != !sw->key_nonce)
        return dn__store_failf(st, DN_EINVAL, "swarm %s: a key ciphertext needs its nonce",
                               sw->name);
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    return dn__store_tx_end(st, put_locked(st, sw, dn__store_now_ms()));
}

static int load_swarm(dn_store *st, sqlite3_stmt *s, dn_store_swarm **out)
{
    dn__store_out o = {0};
    size_t ct_len, nonce_len;
    size_t name = dn__store_out_text(&o, s, 0);
    size_t id = dn__store_out_text(&o, s, 1);
    size_t creator = dn__store_out_text(&o, s, 2);
    const char *role = (const char *)sqlite3_column_text(s, 3);
    size_t ct = dn__store_out_blob(&o, s, 4, &ct_len);
    size_t nonce = dn__store_out_blob(&o, s, 5, &nonce_len);
    int rc = dn__store_get_list(st, &o, "swarm_bootstrap", "swarm",
                                (const char *)sqlite3_column_text(s, 0));
    const char *const *list = NULL;
    dn_store_swarm *sw = rc ? NULL : dn__store_out_finish(&o, sizeof *sw, &list);
    if (!sw) {
        dn__store_out_free(&o);
        return rc ? rc : DN_ENOMEM;
    }
    sw->name = dn__store_out_ptr(sw, sizeof *sw, &o, name);
    sw->swarm_id = dn__store_out_ptr(sw, sizeof *sw, &o, id);
    sw->creator = dn__store_out_ptr(sw, sizeof *sw, &o, creator);
    sw->role = role && role[0] == 'c' ? DN_STORE_SWARM_CREATOR : DN_STORE_SWARM_MEMBER;
    sw->key_ct = dn__store_out_ptr(sw, sizeof *sw, &o, ct);
    sw->key_ct_len = ct_len;
    sw->key_nonce = dn__store_out_ptr(sw, sizeof *sw, &o, nonce);
    sw->key_nonce_len = nonce_len;
    sw->key_version = sqlite3_column_int64(s, 6);
    sw->active = sqlite3_column_int(s, 7) != 0;
    sw->created_ms = sqlite3_column_int64(s, 8);
    sw->updated_ms = sqlite3_column_int64(s, 9);
    sw->bootstrap = list;
    sw->n_bootstrap = o.n_list;
    dn__store_out_free(&o);
    *out = sw;
    return 0;
}

static int get_where(dn_store *st, const char *sql, const char *arg, dn_store_swarm **out)
{
    *out = NULL;
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, sql, &s);
    if (rc)
        return rc;
    if (arg)
        sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        rc = load_swarm(st, s, out);
    else if (r == SQLITE_DONE)
        rc = arg ? dn__store_failf(st, DN_ENOTFOUND, "no swarm %s", arg)
                 : dn__store_failf(st, DN_ENOTFOUND, "no active swarm");
    else
        rc = dn__store_fail(st, r, "get swarm");
    sqlite3_finalize(s);
    return rc;
}

int dn__store_swarm_get(dn_store *st, const char *name, dn_store_swarm **out)
{
    int rc = dn__store_check_str(st, name, DN_STORE_NAME_MAX, false, "swarm name");
    if (rc) {
        *out = NULL;
        return rc;
    }
    return get_where(st, "SELECT " SWARM_COLS " FROM swarms WHERE name = ?", name, out);
}

int dn__store_swarm_get_active(dn_store *st, dn_store_swarm **out)
{
    return get_where(st, "SELECT " SWARM_COLS " FROM swarms WHERE active = 1", NULL, out);
}

int dn__store_swarm_delete(dn_store *st, const char *name)
{
    int rc = dn__store_check_str(st, name, DN_STORE_NAME_MAX, false, "swarm name");
    sqlite3_stmt *s;
    if (rc || (rc = dn__store_tx_begin(st)))
        return rc;
    if ((rc = dn__store_prepare(st, "DELETE FROM swarms WHERE name = ?", &s)) == 0) {
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        rc = step_once(st, s, "delete swarm");
        if (rc == 0 && sqlite3_changes(st->db) == 0)
            rc = dn__store_failf(st, DN_ENOTFOUND, "no swarm %s", name);
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_swarm_list(dn_store *st, dn_store_swarm_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "SELECT " SWARM_COLS " FROM swarms ORDER BY name", &s);
    if (rc)
        return rc;
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        dn_store_swarm *sw;
        if ((rc = load_swarm(st, s, &sw)))
            break;
        rc = cb(ud, sw);
        free(sw);
        if (rc)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list swarms");
    sqlite3_finalize(s);
    return rc;
}

/* ---- members ---- */

#define MEMBER_COLS "swarm, peer_id, public_key, has_key, confirmed_at, added_at"

int dn__store_swarm_member_put(dn_store *st, const dn_store_swarm_member *m)
{
    int rc;
    if (!m)
        return dn__store_failf(st, DN_EINVAL, "member is NULL");
    if ((rc = dn__store_check_str(st, m->swarm, DN_STORE_NAME_MAX, false, "swarm name")) ||
        (rc = dn__store_check_str(st, m->peer_id, DN_STORE_NAME_MAX, false, "peer id")) ||
        (rc = dn__store_check_blob(st, m->pubkey, m->pubkey_len, "public key")))
        return rc;
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    sqlite3_stmt *s;
    rc = dn__store_prepare(st,
                           "INSERT INTO swarm_members (" MEMBER_COLS ")"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                           " ON CONFLICT (swarm, peer_id) DO UPDATE SET"
                           " public_key = coalesce(excluded.public_key, public_key),"
                           " has_key = excluded.has_key, confirmed_at = excluded.confirmed_at",
                           &s);
    if (rc == 0) {
        sqlite3_bind_text(s, 1, m->swarm, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, m->peer_id, -1, SQLITE_STATIC);
        dn__store_bind_blob(s, 3, m->pubkey, m->pubkey_len);
        sqlite3_bind_int(s, 4, m->has_key ? 1 : 0);
        if (m->confirmed_ms)
            sqlite3_bind_int64(s, 5, m->confirmed_ms);
        else
            sqlite3_bind_null(s, 5);
        sqlite3_bind_int64(s, 6, m->added_ms ? m->added_ms : dn__store_now_ms());
        rc = step_once(st, s, "put swarm member");
        if (rc == DN_ENOTFOUND)
            rc = dn__store_failf(st, rc, "no swarm %s", m->swarm);
    }
    return dn__store_tx_end(st, rc);
}

static int load_member(sqlite3_stmt *s, dn_store_swarm_member **out)
{
    dn__store_out o = {0};
    size_t key_len;
    size_t swarm = dn__store_out_text(&o, s, 0);
    size_t peer = dn__store_out_text(&o, s, 1);
    size_t key = dn__store_out_blob(&o, s, 2, &key_len);
    dn_store_swarm_member *m = dn__store_out_finish(&o, sizeof *m, NULL);
    if (!m) {
        dn__store_out_free(&o);
        return DN_ENOMEM;
    }
    m->swarm = dn__store_out_ptr(m, sizeof *m, &o, swarm);
    m->peer_id = dn__store_out_ptr(m, sizeof *m, &o, peer);
    m->pubkey = dn__store_out_ptr(m, sizeof *m, &o, key);
    m->pubkey_len = key_len;
    m->has_key = sqlite3_column_int(s, 3) != 0;
    m->confirmed_ms = sqlite3_column_int64(s, 4); /* NULL reads as 0 */
    m->added_ms = sqlite3_column_int64(s, 5);
    dn__store_out_free(&o);
    *out = m;
    return 0;
}

int dn__store_swarm_member_get(dn_store *st, const char *swarm, const char *peer_id,
                               dn_store_swarm_member **out)
{
    *out = NULL;
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, swarm, DN_STORE_NAME_MAX, false, "swarm name")) ||
        (rc = dn__store_check_str(st, peer_id, DN_STORE_NAME_MAX, false, "peer id")) ||
        (rc = dn__store_prepare(st,
                                "SELECT " MEMBER_COLS " FROM swarm_members"
                                " WHERE swarm = ? AND peer_id = ?",
                                &s)))
        return rc;
    sqlite3_bind_text(s, 1, swarm, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, peer_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        rc = load_member(s, out);
    else if (r == SQLITE_DONE)
        rc = dn__store_failf(st, DN_ENOTFOUND, "swarm %s has no member %s", swarm, peer_id);
    else
        rc = dn__store_fail(st, r, "get swarm member");
    sqlite3_finalize(s);
    return rc;
}

int dn__store_swarm_member_delete(dn_store *st, const char *swarm, const char *peer_id)
{
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, swarm, DN_STORE_NAME_MAX, false, "swarm name")) ||
        (rc = dn__store_check_str(st, peer_id, DN_STORE_NAME_MAX, false, "peer id")) ||
        (rc = dn__store_tx_begin(st)))
        return rc;
    rc = dn__store_prepare(st, "DELETE FROM swarm_members WHERE swarm = ? AND peer_id = ?", &s);
    if (rc == 0) {
        sqlite3_bind_text(s, 1, swarm, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, peer_id, -1, SQLITE_STATIC);
        rc = step_once(st, s, "delete swarm member");
        if (rc == 0 && sqlite3_changes(st->db) == 0)
            rc = dn__store_failf(st, DN_ENOTFOUND, "swarm %s has no member %s", swarm, peer_id);
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_swarm_member_list(dn_store *st, const char *swarm, dn_store_member_cb cb, void *ud)
{
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, swarm, DN_STORE_NAME_MAX, false, "swarm name")) ||
        (rc = dn__store_prepare(st,
                                "SELECT " MEMBER_COLS " FROM swarm_members WHERE swarm = ?"
                                " ORDER BY peer_id",
                                &s)))
        return rc;
    sqlite3_bind_text(s, 1, swarm, -1, SQLITE_STATIC);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        dn_store_swarm_member *m;
        if ((rc = load_member(s, &m)))
            break;
        rc = cb(ud, m);
        free(m);
        if (rc)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list swarm members");
    sqlite3_finalize(s);
    return rc;
}
