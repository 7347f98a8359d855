/* VPNs and their address allocations (seed spec, "VPN interface": AddPeer
 * "should not lead to any IP collision"). The coordinator's table has a
 * version and its signature; each peer has one allocation per VPN. The
 * schema's partial unique indexes make a second active holder of an
 * address a constraint violation, so the VPN module cannot store a
 * collision even with a bug in its allocator. */
#include "store/store_int.h"

#include <stdlib.h>

#include "dmsnet/error.h"

#define VPN_COLS                                                                                   \
    "name, coordinator, cidr_v4, cidr_v6, table_version, signature, created_at, updated_at"
#define ALLOC_COLS "vpn, peer_id, addr_v4, addr_v6, state, allocated_at, released_at"

static int step_once(dn_store *st, sqlite3_stmt *s, const char *what)
{
    int r = sqlite3_step(s);
    int rc = r == SQLITE_DONE ? 0 : dn__store_fail(st, r, what);
    sqlite3_finalize(s);
    return rc;
}

static int put_locked(dn_store *st, const dn_store_vpn *v)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "SELECT table_version FROM vpns WHERE name = ?", &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, v->name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    int64_t stored = r == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        return dn__store_fail(st, r, "get vpn");
    if (v->table_version < stored)
        return dn__store_failf(st, DN_ESTATE,
                               "vpn %s: table version %lld is older than the stored %lld", v->name,
                               (long long)v->table_version, (long long)stored);
    int64_t now = dn__store_now_ms();
    rc = dn__store_prepare(st,
                           "INSERT INTO vpns (" VPN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                           " ON CONFLICT (name) DO UPDATE SET coordinator = excluded.coordinator,"
                           " cidr_v4 = excluded.cidr_v4, cidr_v6 = excluded.cidr_v6,"
                           " table_version = excluded.table_version,"
                           " signature = excluded.signature, updated_at = excluded.updated_at",
                           &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, v->coordinator, -1, SQLITE_STATIC);
    dn__store_bind_text(s, 3, v->cidr_v4);
    dn__store_bind_text(s, 4, v->cidr_v6);
    sqlite3_bind_int64(s, 5, v->table_version);
    dn__store_bind_blob(s, 6, v->signature, v->signature_len);
    sqlite3_bind_int64(s, 7, v->created_ms ? v->created_ms : now);
    sqlite3_bind_int64(s, 8, now);
    return step_once(st, s, "put vpn");
}

int dn__store_vpn_put(dn_store *st, const dn_store_vpn *v)
{
    int rc;
    if (!v)
        return dn__store_failf(st, DN_EINVAL, "vpn is NULL");
    if ((rc = dn__store_check_str(st, v->name, DN_STORE_NAME_MAX, false, "vpn name")) ||
        (rc = dn__store_check_str(st, v->coordinator, DN_STORE_NAME_MAX, false,
                                  "vpn coordinator")) ||
        (rc = dn__store_check_str(st, v->cidr_v4, DN_STORE_ADDR_MAX, true, "IPv4 cidr")) ||
        (rc = dn__store_check_str(st, v->cidr_v6, DN_STORE_ADDR_MAX, true, "IPv6 cidr")) ||
        (rc = dn__store_check_blob(st, v->signature, v->signature_len, "vpn signature")))
        return rc;
    if (!v->cidr_v4 && !v->cidr_v6)
        return dn__store_failf(st, DN_EINVAL, "vpn %s has neither an IPv4 nor an IPv6 cidr",
                               v->name);
    if (v->table_version < 0)
        return dn__store_failf(st, DN_EINVAL, "vpn %s: negative table version", v->name);
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    return dn__store_tx_end(st, put_locked(st, v));
}

static int load_vpn(sqlite3_stmt *s, dn_store_vpn **out)
{
    dn__store_out o = {0};
    size_t sig_len;
    size_t name = dn__store_out_text(&o, s, 0);
    size_t coord = dn__store_out_text(&o, s, 1);
    size_t v4 = dn__store_out_text(&o, s, 2);
    size_t v6 = dn__store_out_text(&o, s, 3);
    size_t sig = dn__store_out_blob(&o, s, 5, &sig_len);
    dn_store_vpn *v = dn__store_out_finish(&o, sizeof *v, NULL);
    if (!v) {
        dn__store_out_free(&o);
        return DN_ENOMEM;
    }
    v->name = dn__store_out_ptr(v, sizeof *v, &o, name);
    v->coordinator = dn__store_out_ptr(v, sizeof *v, &o, coord);
    v->cidr_v4 = dn__store_out_ptr(v, sizeof *v, &o, v4);
    v->cidr_v6 = dn__store_out_ptr(v, sizeof *v, &o, v6);
    v->table_version = sqlite3_column_int64(s, 4);
    v->signature = dn__store_out_ptr(v, sizeof *v, &o, sig);
    v->signature_len = sig_len;
    v->created_ms = sqlite3_column_int64(s, 6);
    v->updated_ms = sqlite3_column_int64(s, 7);
    dn__store_out_free(&o);
    *out = v;
    return 0;
}

int dn__store_vpn_get(dn_store *st, const char *name, dn_store_vpn **out)
{
    *out = NULL;
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, name, DN_STORE_NAME_MAX, false, "vpn name")) ||
        (rc = dn__store_prepare(st, "SELECT " VPN_COLS " FROM vpns WHERE name = ?", &s)))
        return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        rc = load_vpn(s, out);
    else if (r == SQLITE_DONE)
        rc = dn__store_failf(st, DN_ENOTFOUND, "no vpn %s", name);
    else
        rc = dn__store_fail(st, r, "get vpn");
    sqlite3_finalize(s);
    return rc;
}

int dn__store_vpn_delete(dn_store *st, const char *name)
{
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, name, DN_STORE_NAME_MAX, false, "vpn name")) ||
        (rc = dn__store_tx_begin(st)))
        return rc;
    if ((rc = dn__store_prepare(st, "DELETE FROM vpns WHERE name = ?", &s)) == 0) {
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        rc = step_once(st, s, "delete vpn");
        if (rc == 0 && sqlite3_changes(st->db) == 0)
            rc = dn__store_failf(st, DN_ENOTFOUND, "no vpn %s", name);
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_vpn_list(dn_store *st, dn_store_vpn_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "SELECT " VPN_COLS " FROM vpns ORDER BY name", &s);
    if (rc)
        return rc;
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        dn_store_vpn *v;
        if ((rc = load_vpn(s, &v)))
            break;
        rc = cb(ud, v);
        free(v);
        if (rc)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list vpns");
    sqlite3_finalize(s);
    return rc;
}

/* ---- allocations ---- */

int dn__store_vpn_alloc_put(dn_store *st, const dn_store_vpn_alloc *a)
{
    int rc;
    if (!a)
        return dn__store_failf(st, DN_EINVAL, "allocation is NULL");
    if ((rc = dn__store_check_str(st, a->vpn, DN_STORE_NAME_MAX, false, "vpn name")) ||
        (rc = dn__store_check_str(st, a->peer_id, DN_STORE_NAME_MAX, false, "peer id")) ||
        (rc = dn__store_check_str(st, a->addr_v4, DN_STORE_ADDR_MAX, true, "IPv4 address")) ||
        (rc = dn__store_check_str(st, a->addr_v6, DN_STORE_ADDR_MAX, true, "IPv6 address")))
        return rc;
    if (a->state != DN_STORE_ALLOC_ACTIVE && a->state != DN_STORE_ALLOC_RELEASED)
        return dn__store_failf(st, DN_EINVAL, "allocation state %d is unknown", a->state);
    bool released = a->state == DN_STORE_ALLOC_RELEASED;
    int64_t now = dn__store_now_ms();
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    sqlite3_stmt *s;
    rc = dn__store_prepare(st,
                           "INSERT INTO vpn_allocations (" ALLOC_COLS ")"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                           " ON CONFLICT (vpn, peer_id) DO UPDATE SET addr_v4 = excluded.addr_v4,"
                           " addr_v6 = excluded.addr_v6, state = excluded.state,"
                           " allocated_at = excluded.allocated_at,"
                           " released_at = excluded.released_at",
                           &s);
    if (rc == 0) {
        sqlite3_bind_text(s, 1, a->vpn, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, a->peer_id, -1, SQLITE_STATIC);
        dn__store_bind_text(s, 3, a->addr_v4);
        dn__store_bind_text(s, 4, a->addr_v6);
        sqlite3_bind_text(s, 5, released ? "released" : "active", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 6, a->allocated_ms ? a->allocated_ms : now);
        if (released)
            sqlite3_bind_int64(s, 7, a->released_ms ? a->released_ms : now);
        else
            sqlite3_bind_null(s, 7);
        rc = step_once(st, s, "put allocation");
        if (rc == DN_ENOTFOUND)
            rc = dn__store_failf(st, rc, "no vpn %s", a->vpn);
        else if (rc == DN_EEXIST)
            rc = dn__store_failf(st, rc, "vpn %s: an address of %s is already allocated", a->vpn,
                                 a->peer_id);
    }
    return dn__store_tx_end(st, rc);
}

static int load_alloc(sqlite3_stmt *s, dn_store_vpn_alloc **out)
{
    dn__store_out o = {0};
    size_t vpn = dn__store_out_text(&o, s, 0);
    size_t peer = dn__store_out_text(&o, s, 1);
    size_t v4 = dn__store_out_text(&o, s, 2);
    size_t v6 = dn__store_out_text(&o, s, 3);
    const char *state = (const char *)sqlite3_column_text(s, 4);
    dn_store_vpn_alloc *a = dn__store_out_finish(&o, sizeof *a, NULL);
    if (!a) {
        dn__store_out_free(&o);
        return DN_ENOMEM;
    }
    a->vpn = dn__store_out_ptr(a, sizeof *a, &o, vpn);
    a->peer_id = dn__store_out_ptr(a, sizeof *a, &o, peer);
    a->addr_v4 = dn__store_out_ptr(a, sizeof *a, &o, v4);
    a->addr_v6 = dn__store_out_ptr(a, sizeof *a, &o, v6);
    a->state = state && state[0] == 'r' ? DN_STORE_ALLOC_RELEASED : DN_STORE_ALLOC_ACTIVE;
    a->allocated_ms = sqlite3_column_int64(s, 5);
    a->released_ms = sqlite3_column_int64(s, 6);
    dn__store_out_free(&o);
    *out = a;
    return 0;
}

int dn__store_vpn_alloc_get(dn_store *st, const char *vpn, const char *peer_id,
                            dn_store_vpn_alloc **out)
{
    *out = NULL;
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, vpn, DN_STORE_NAME_MAX, false, "vpn name")) ||
        (rc = dn__store_check_str(st, peer_id, DN_STORE_NAME_MAX, false, "peer id")) ||
        (rc = dn__store_prepare(st,
                                "SELECT " ALLOC_COLS " FROM vpn_allocations"
                                " WHERE vpn = ? AND peer_id = ?",
                                &s)))
        return rc;
    sqlite3_bind_text(s, 1, vpn, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, peer_id, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        rc = load_alloc(s, out);
    else if (r == SQLITE_DONE)
        rc = dn__store_failf(st, DN_ENOTFOUND, "vpn %s has no allocation for %s", vpn, peer_id);
    else
        rc = dn__store_fail(st, r, "get allocation");
    sqlite3_finalize(s);
    return rc;
}

static int alloc_change(dn_store *st, const char *sql, const char *vpn, const char *peer_id,
                        int64_t when)
{
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, vpn, DN_STORE_NAME_MAX, false, "vpn name")) ||
        (rc = dn__store_check_str(st, peer_id, DN_STORE_NAME_MAX, false, "peer id")) ||
        (rc = dn__store_tx_begin(st)))
        return rc;
    if ((rc = dn__store_prepare(st, sql, &s)) == 0) {
        sqlite3_bind_text(s, 1, vpn, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, peer_id, -1, SQLITE_STATIC);
        if (when)
            sqlite3_bind_int64(s, 3, when);
        rc = step_once(st, s, "change allocation");
        if (rc == 0 && sqlite3_changes(st->db) == 0)
            rc = dn__store_failf(st, DN_ENOTFOUND, "vpn %s has no allocation for %s", vpn, peer_id);
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_vpn_alloc_release(dn_store *st, const char *vpn, const char *peer_id,
                                int64_t released_ms)
{
    /* Releasing a released allocation keeps its first release time. */
    return alloc_change(st,
                        "UPDATE vpn_allocations SET state = 'released',"
                        " released_at = coalesce(released_at, ?3) WHERE vpn = ?1 AND peer_id = ?2",
                        vpn, peer_id, released_ms ? released_ms : dn__store_now_ms());
}

int dn__store_vpn_alloc_delete(dn_store *st, const char *vpn, const char *peer_id)
{
    return alloc_change(st, "DELETE FROM vpn_allocations WHERE vpn = ?1 AND peer_id = ?2", vpn,
                        peer_id, 0);
}

int dn__store_vpn_alloc_list(dn_store *st, const char *vpn, bool active_only, dn_store_alloc_cb cb,
                             void *ud)
{
    int rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_check_str(st, vpn, DN_STORE_NAME_MAX, false, "vpn name")) ||
        (rc = dn__store_prepare(st,
                                "SELECT " ALLOC_COLS " FROM vpn_allocations WHERE vpn = ?"
                                " AND (? = 0 OR state = 'active') ORDER BY peer_id",
                                &s)))
        return rc;
    sqlite3_bind_text(s, 1, vpn, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, active_only ? 1 : 0);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        dn_store_vpn_alloc *a;
        if ((rc = load_alloc(s, &a)))
            break;
        rc = cb(ud, a);
        free(a);
        if (rc)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list allocations");
    sqlite3_finalize(s);
    return rc;
}
