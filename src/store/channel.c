/* The public channel the node onboarded onto: the one it returns to when
 * it leaves a private swarm (seed spec, "Disconnect Private Network":
 * "Read the public channel from the database"). One row. */
#include "store/store_int.h"

#include <stdlib.h>

#include "dmsnet/error.h"

int dn__store_channel_set(dn_store *st, const dn_store_channel *c)
{
    int rc;
    if (!c)
        return dn__store_failf(st, DN_EINVAL, "channel is NULL");
    if ((rc = dn__store_check_str(st, c->name, DN_STORE_NAME_MAX, false, "channel name")) ||
        (rc = dn__store_check_str(st, c->dht_prefix, DN_STORE_NAME_MAX, false, "DHT prefix")) ||
        (rc = dn__store_check_list(st, c->bootstrap, c->n_bootstrap, DN_STORE_BOOTSTRAP_MAX,
                                   "bootstrap addresses")))
        return rc;
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    sqlite3_stmt *s;
    rc = dn__store_prepare(st,
                           "INSERT INTO channel (id, name, dht_prefix, updated_at)"
                           " VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                           " name = excluded.name, dht_prefix = excluded.dht_prefix,"
                           " updated_at = excluded.updated_at",
                           &s);
    if (rc == 0) {
        sqlite3_bind_text(s, 1, c->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, c->dht_prefix, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, dn__store_now_ms());
        int r = sqlite3_step(s);
        if (r != SQLITE_DONE)
            rc = dn__store_fail(st, r, "set channel");
        sqlite3_finalize(s);
    }
    if (rc == 0)
        rc = dn__store_put_list(st, "channel_bootstrap", "channel", "1", c->bootstrap,
                                c->n_bootstrap);
    return dn__store_tx_end(st, rc);
}

int dn__store_channel_get(dn_store *st, dn_store_channel **out)
{
    *out = NULL;
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "SELECT name, dht_prefix, updated_at FROM channel", &s);
    if (rc)
        return rc;
    int r = sqlite3_step(s);
    if (r != SQLITE_ROW) {
        rc = r == SQLITE_DONE ? dn__store_failf(st, DN_ENOTFOUND, "no channel stored")
                              : dn__store_fail(st, r, "get channel");
        sqlite3_finalize(s);
        return rc;
    }
    dn__store_out o = {0};
    size_t name = dn__store_out_text(&o, s, 0);
    size_t prefix = dn__store_out_text(&o, s, 1);
    int64_t updated = sqlite3_column_int64(s, 2);
    sqlite3_finalize(s);
    /* The owner column is INTEGER; "1" compares equal to 1 there (column
     * affinity applies to the bound text). */
    rc = dn__store_get_list(st, &o, "channel_bootstrap", "channel", "1");
    const char *const *list = NULL;
    dn_store_channel *c = rc ? NULL : dn__store_out_finish(&o, sizeof *c, &list);
    if (!c) {
        dn__store_out_free(&o);
        return rc ? rc : DN_ENOMEM;
    }
    c->name = dn__store_out_ptr(c, sizeof *c, &o, name);
    c->dht_prefix = dn__store_out_ptr(c, sizeof *c, &o, prefix);
    c->bootstrap = list;
    c->n_bootstrap = o.n_list;
    c->updated_ms = updated;
    dn__store_out_free(&o);
    *out = c;
    return 0;
}

int dn__store_channel_clear(dn_store *st)
{
    int rc = dn__store_tx_begin(st);
    if (rc)
        return rc;
    rc = dn__store_exec(st, "DELETE FROM channel");
    if (rc == 0 && sqlite3_changes(st->db) == 0)
        rc = dn__store_failf(st, DN_ENOTFOUND, "no channel stored");
    return dn__store_tx_end(st, rc);
}
