/* Settings: configuration the user set through the API, key -> JSON text.
 * The store checks that a value is JSON (the schema's json_valid CHECK);
 * what a key means is the node's business (it overrides config.json). */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

int dn__store_setting_set(dn_store *st, const char *key, const char *json_value)
{
    int rc;
    if ((rc = dn__store_check_str(st, key, DN_STORE_KEY_MAX, false, "setting key")) ||
        (rc = dn__store_check_str(st, json_value, DN_STORE_VALUE_MAX, false, "setting value")))
        return rc;
    sqlite3_stmt *s;
    if ((rc = dn__store_tx_begin(st)))
        return rc;
    rc = dn__store_prepare(st,
                           "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
                           " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                           " updated_at = excluded.updated_at",
                           &s);
    if (rc == 0) {
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, json_value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, dn__store_now_ms());
        int r = sqlite3_step(s);
        if (r != SQLITE_DONE) {
            rc = dn__store_fail(st, r, "set setting");
            if (rc == DN_EINVAL)
                rc = dn__store_failf(st, DN_EINVAL, "setting %s: the value is not JSON", key);
        }
        sqlite3_finalize(s);
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_setting_get(dn_store *st, const char *key, char **json_out)
{
    *json_out = NULL;
    int rc = dn__store_check_str(st, key, DN_STORE_KEY_MAX, false, "setting key");
    sqlite3_stmt *s;
    if (rc || (rc = dn__store_prepare(st, "SELECT value FROM settings WHERE key = ?", &s)))
        return rc;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 0);
        if (!v || !(*json_out = strdup(v)))
            rc = DN_ENOMEM;
    } else if (r == SQLITE_DONE) {
        rc = dn__store_failf(st, DN_ENOTFOUND, "setting %s is not set", key);
    } else {
        rc = dn__store_fail(st, r, "get setting");
    }
    sqlite3_finalize(s);
    return rc;
}

int dn__store_setting_delete(dn_store *st, const char *key)
{
    int rc = dn__store_check_str(st, key, DN_STORE_KEY_MAX, false, "setting key");
    sqlite3_stmt *s;
    if (rc || (rc = dn__store_tx_begin(st)))
        return rc;
    if ((rc = dn__store_prepare(st, "DELETE FROM settings WHERE key = ?", &s)) == 0) {
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        int r = sqlite3_step(s);
        if (r != SQLITE_DONE)
            rc = dn__store_fail(st, r, "delete setting");
        else if (sqlite3_changes(st->db) == 0)
            rc = dn__store_failf(st, DN_ENOTFOUND, "setting %s is not set", key);
        sqlite3_finalize(s);
    }
    return dn__store_tx_end(st, rc);
}

int dn__store_setting_list(dn_store *st, dn_store_setting_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "SELECT key, value, updated_at FROM settings ORDER BY key", &s);
    if (rc)
        return rc;
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0);
        const char *v = (const char *)sqlite3_column_text(s, 1);
        if (!k || !v) {
            rc = DN_ENOMEM;
            break;
        }
        if ((rc = cb(ud, k, v, sqlite3_column_int64(s, 2))))
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = dn__store_fail(st, r, "list settings");
    sqlite3_finalize(s);
    return rc;
}
