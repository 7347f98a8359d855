/* Shared by the store's table-group files: the handle, error mapping,
 * transactions and the builder for the one-block results. */
#ifndef DN_STORE_INT_H
#define DN_STORE_INT_H

#include <sqlite3.h>

#include "store/store.h"

struct dn_store {
    sqlite3 *db;
    char *path;
    char msg[512];
    int depth; /* dn__store_begin nesting (0 or 1) */
    size_t max_peers;
};

/* Record why a call failed ("<file>: <what>: <sqlite's reason>") and map
 * the SQLite result code to a DN_E code. */
int dn__store_fail(dn_store *st, int sqlite_rc, const char *what);
/* Record a failure of our own (rc is a DN_E code, returned). */
int dn__store_failf(dn_store *st, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int dn__store_prepare(dn_store *st, const char *sql, sqlite3_stmt **out);
/* Run SQL without results. */
int dn__store_exec(dn_store *st, const char *sql);

/* One write operation: its own IMMEDIATE transaction, or a savepoint
 * inside dn__store_begin's. tx_end commits when rc is 0 and undoes the
 * operation otherwise; it returns rc, or the commit's failure. */
int dn__store_tx_begin(dn_store *st);
int dn__store_tx_end(dn_store *st, int rc);

int64_t dn__store_now_ms(void);

/* Argument checks: a non-empty string of at most max bytes, or (opt) NULL. */
int dn__store_check_str(dn_store *st, const char *s, size_t max, bool opt, const char *what);
int dn__store_check_blob(dn_store *st, const void *p, size_t len, const char *what);
int dn__store_check_list(dn_store *st, const char *const *v, size_t n, size_t max_n,
                         const char *what);

/* Bind helpers: NULL pointers bind SQL NULL. */
int dn__store_bind_text(sqlite3_stmt *s, int i, const char *v);
int dn__store_bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len);

/* Replace the ordered text list of owner in a child table with columns
 * (owner_col, pos, addr). */
int dn__store_put_list(dn_store *st, const char *table, const char *owner_col, const char *owner,
                       const char *const *v, size_t n);

/* Results are one malloc'd block: the struct, then an array of string
 * pointers, then the bytes. The builder collects bytes at offsets first and
 * fixes the pointers in dn__store_out_finish. */
typedef struct dn__store_out {
    char *buf;
    size_t len, cap;
    size_t *list; /* offsets of the pointer-array entries */
    size_t n_list, cap_list;
    bool nomem;
} dn__store_out;

#define DN__STORE_NONE ((size_t)-1)
/* Offset of a copy of n bytes (plus a NUL), or DN__STORE_NONE for NULL. */
size_t dn__store_out_add(dn__store_out *o, const void *p, size_t n);
size_t dn__store_out_text(dn__store_out *o, sqlite3_stmt *s, int col);
size_t dn__store_out_blob(dn__store_out *o, sqlite3_stmt *s, int col, size_t *len);
/* Append a string to the (one) pointer list. */
void dn__store_out_list_add(dn__store_out *o, sqlite3_stmt *s, int col);
/* Allocate struct_size + list + bytes; *list_out is the pointer array. */
void *dn__store_out_finish(dn__store_out *o, size_t struct_size, const char *const **list_out);
void dn__store_out_free(dn__store_out *o);
/* The pointer for an offset inside the block (NULL for DN__STORE_NONE). */
const void *dn__store_out_ptr(const void *block, size_t struct_size, const dn__store_out *o,
                              size_t off);

/* Load the ordered list of owner from a child table into o's list. */
int dn__store_get_list(dn_store *st, dn__store_out *o, const char *table, const char *owner_col,
                       const char *owner);

#endif
