/* Opening, checking and migrating the store; transactions and the helpers
 * the table-group files share.
 *
 * Opening is careful about one thing above all: a file we do not
 * understand is never written. Before SQLite touches an existing file we
 * read its 100-byte header ourselves (https://sqlite.org/fileformat.html,
 * section 1.3): the magic string, user_version at offset 60 and
 * application_id at offset 68. Then a connection that cannot checkpoint on
 * close (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE) reads the authoritative values
 * (a WAL may hold newer ones than the header) and runs quick_check. Only
 * then are the pragmas set and the migrations run. */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dmsnet/error.h"

/* How long a call waits for another connection's write lock (a second
 * process, e.g. the sqlite3 shell) before it fails with DN_EAGAIN. */
#define DN_STORE_BUSY_MS 5000

int64_t dn__store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int map_rc(int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_FOREIGNKEY: return DN_ENOTFOUND;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return DN_EEXIST;
    default: break;
    }
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT: return DN_EINVAL;
    case SQLITE_NOMEM: return DN_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return DN_ECORRUPT;
    case SQLITE_READONLY: return DN_EREADONLY;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return DN_EAGAIN;
    case SQLITE_FULL: return -ENOSPC;
    case SQLITE_TOOBIG: return DN_ETOOBIG;
    default: return DN_EIO;
    }
}

int dn__store_failf(dn_store *st, int rc, const char *fmt, ...)
{
    int n = snprintf(st->msg, sizeof st->msg, "%s: ", st->path);
    if (n < 0 || (size_t)n >= sizeof st->msg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg + n, sizeof st->msg - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

int dn__store_fail(dn_store *st, int sqlite_rc, const char *what)
{
    const char *why = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(sqlite_rc);
    return dn__store_failf(st, map_rc(sqlite_rc), "%s: %s", what, why);
}

int dn__store_prepare(dn_store *st, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return dn__store_fail(st, rc, "prepare");
    }
    return 0;
}

int dn__store_exec(dn_store *st, const char *sql)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : dn__store_fail(st, rc, "exec");
}

/* Undo without touching st->msg (it holds the reason for the undo). */
static void rollback_quiet(dn_store *st, const char *sql)
{
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, sql, NULL, NULL, NULL);
}

int dn__store_tx_begin(dn_store *st)
{
    if (st->depth) {
        if (sqlite3_get_autocommit(st->db))
            return dn__store_failf(st, DN_ESTATE,
                                   "the open transaction was rolled back by an earlier error");
        return dn__store_exec(st, "SAVEPOINT dn_op");
    }
    /* IMMEDIATE takes the write lock at once: a deferred transaction that
     * read first could fail with SQLITE_BUSY_SNAPSHOT when it writes. */
    return dn__store_exec(st, "BEGIN IMMEDIATE");
}

int dn__store_tx_end(dn_store *st, int rc)
{
    if (st->depth) {
        if (rc == 0)
            return dn__store_exec(st, "RELEASE dn_op");
        /* Some errors (disk full, I/O) roll the whole transaction back;
         * then there is no savepoint left, and commit reports it. */
        rollback_quiet(st, "ROLLBACK TO dn_op; RELEASE dn_op");
        return rc;
    }
    if (rc == 0) {
        rc = dn__store_exec(st, "COMMIT");
        if (rc)
            rollback_quiet(st, "ROLLBACK");
        return rc;
    }
    rollback_quiet(st, "ROLLBACK");
    return rc;
}

int dn__store_begin(dn_store *st)
{
    if (st->depth)
        return dn__store_failf(st, DN_ESTATE, "a transaction is already open");
    int rc = dn__store_exec(st, "BEGIN IMMEDIATE");
    if (rc == 0)
        st->depth = 1;
    return rc;
}

int dn__store_commit(dn_store *st)
{
    if (!st->depth)
        return dn__store_failf(st, DN_ESTATE, "commit without a transaction");
    st->depth = 0;
    if (sqlite3_get_autocommit(st->db))
        return dn__store_failf(st, DN_ESTATE,
                               "the transaction was rolled back by an earlier error");
    int rc = dn__store_exec(st, "COMMIT");
    if (rc)
        rollback_quiet(st, "ROLLBACK");
    return rc;
}

void dn__store_rollback(dn_store *st)
{
    if (!st->depth)
        return;
    st->depth = 0;
    rollback_quiet(st, "ROLLBACK");
}

const char *dn__store_path(const dn_store *st)
{
    return st->path;
}
const char *dn__store_errmsg(const dn_store *st)
{
    return st->msg;
}

void dn__store_set_peer_limit(dn_store *st, size_t max_peers)
{
    st->max_peers = max_peers ? max_peers : 1;
}

/* ---- argument checks and binding ---- */

int dn__store_check_str(dn_store *st, const char *s, size_t max, bool opt, const char *what)
{
    if (!s)
        return opt ? 0 : dn__store_failf(st, DN_EINVAL, "%s is missing", what);
    size_t n = strnlen(s, max + 1);
    if (n == 0)
        return dn__store_failf(st, DN_EINVAL, "%s is empty", what);
    if (n > max)
        return dn__store_failf(st, DN_ETOOBIG, "%s is longer than %zu bytes", what, max);
    return 0;
}

int dn__store_check_blob(dn_store *st, const void *p, size_t len, const char *what)
{
    if (!p)
        return 0;
    if (len == 0)
        return dn__store_failf(st, DN_EINVAL, "%s is empty", what);
    if (len > DN_STORE_BLOB_MAX)
        return dn__store_failf(st, DN_ETOOBIG, "%s is longer than %d bytes", what,
                               DN_STORE_BLOB_MAX);
    return 0;
}

int dn__store_check_list(dn_store *st, const char *const *v, size_t n, size_t max_n,
                         const char *what)
{
    if (n > max_n)
        return dn__store_failf(st, DN_ETOOBIG, "more than %zu %s", max_n, what);
    if (n && !v)
        return dn__store_failf(st, DN_EINVAL, "%s: list is NULL", what);
    for (size_t i = 0; i < n; i++) {
        int rc = dn__store_check_str(st, v[i], DN_STORE_ADDR_MAX, false, what);
        if (rc)
            return rc;
    }
    return 0;
}

int dn__store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

int dn__store_bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len)
{
    return p ? sqlite3_bind_blob(s, i, p, (int)len, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

int dn__store_put_list(dn_store *st, const char *table, const char *owner_col, const char *owner,
                       const char *const *v, size_t n)
{
    char sql[192];
    sqlite3_stmt *s;
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE %s = ?", table, owner_col);
    int rc = dn__store_prepare(st, sql, &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
    int r = sqlite3_step(s);
    sqlite3_finalize(s);
    if (r != SQLITE_DONE)
        return dn__store_fail(st, r, "delete list");
    snprintf(sql, sizeof sql, "INSERT INTO %s (%s, pos, addr) VALUES (?, ?, ?)", table, owner_col);
    if ((rc = dn__store_prepare(st, sql, &s)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (int64_t)i);
        sqlite3_bind_text(s, 3, v[i], -1, SQLITE_STATIC);
        r = sqlite3_step(s);
        sqlite3_reset(s);
        if (r != SQLITE_DONE) {
            rc = dn__store_fail(st, r, "insert list");
            break;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

/* ---- one-block results ---- */

static bool out_reserve(dn__store_out *o, size_t n)
{
    if (o->nomem)
        return false;
    if (o->len + n <= o->cap)
        return true;
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + n)
        cap *= 2;
    char *b = realloc(o->buf, cap);
    if (!b) {
        o->nomem = true;
        return false;
    }
    o->buf = b;
    o->cap = cap;
    return true;
}

size_t dn__store_out_add(dn__store_out *o, const void *p, size_t n)
{
    if (!p || !out_reserve(o, n + 1))
        return DN__STORE_NONE;
    size_t off = o->len;
    memcpy(o->buf + off, p, n);
    o->buf[off + n] = 0;
    o->len += n + 1;
    return off;
}

size_t dn__store_out_text(dn__store_out *o, sqlite3_stmt *s, int col)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return DN__STORE_NONE;
    const unsigned char *t = sqlite3_column_text(s, col);
    if (!t) {
        o->nomem = true;
        return DN__STORE_NONE;
    }
    return dn__store_out_add(o, t, (size_t)sqlite3_column_bytes(s, col));
}

size_t dn__store_out_blob(dn__store_out *o, sqlite3_stmt *s, int col, size_t *len)
{
    *len = 0;
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return DN__STORE_NONE;
    const void *b = sqlite3_column_blob(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (!b) { /* a zero-length blob, which the API never stores */
        o->nomem = n != 0;
        return DN__STORE_NONE;
    }
    *len = n;
    return dn__store_out_add(o, b, n);
}

void dn__store_out_list_add(dn__store_out *o, sqlite3_stmt *s, int col)
{
    size_t off = dn__store_out_text(o, s, col);
    if (off == DN__STORE_NONE) {
        o->nomem = true;
        return;
    }
    if (o->n_list == o->cap_list) {
        size_t cap = o->cap_list ? o->cap_list * 2 : 8;
        size_t *l = realloc(o->list, cap * sizeof *l);
        if (!l) {
            o->nomem = true;
            return;
        }
        o->list = l;
        o->cap_list = cap;
    }
    o->list[o->n_list++] = off;
}

static char *out_bytes(const void *block, size_t struct_size, const dn__store_out *o)
{
    return (char *)block + struct_size + o->n_list * sizeof(char *);
}

void *dn__store_out_finish(dn__store_out *o, size_t struct_size, const char *const **list_out)
{
    if (o->nomem)
        return NULL;
    char *block = calloc(1, struct_size + o->n_list * sizeof(char *) + o->len + 1);
    if (!block)
        return NULL;
    const char **list = (const char **)(void *)(block + struct_size);
    char *bytes = out_bytes(block, struct_size, o);
    if (o->len)
        memcpy(bytes, o->buf, o->len);
    for (size_t i = 0; i < o->n_list; i++)
        list[i] = bytes + o->list[i];
    if (list_out)
        *list_out = o->n_list ? list : NULL;
    return block;
}

const void *dn__store_out_ptr(const void *block, size_t struct_size, const dn__store_out *o,
                              size_t off)
{
    return off == DN__STORE_NONE ? NULL : out_bytes(block, struct_size, o) + off;
}

void dn__store_out_free(dn__store_out *o)
{
    free(o->buf);
    free(o->list);
    memset(o, 0, sizeof *o);
}

int dn__store_get_list(dn_store *st, dn__store_out *o, const char *table, const char *owner_col,
                       const char *owner)
{
    char sql[160];
    sqlite3_stmt *s;
    snprintf(sql, sizeof sql, "SELECT addr FROM %s WHERE %s = ? ORDER BY pos", table, owner_col);
    int rc = dn__store_prepare(st, sql, &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW)
        dn__store_out_list_add(o, s, 0);
    sqlite3_finalize(s);
    if (r != SQLITE_DONE)
        return dn__store_fail(st, r, "read list");
    return o->nomem ? DN_ENOMEM : 0;
}

/* ---- open ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Root passes every access() check, so a mode without the owner-write bit
 * is taken as the user's "do not write this", for root too. */
static bool not_writable(const char *path, const struct stat *sb)
{
    return !(sb->st_mode & S_IWUSR) || access(path, W_OK) != 0;
}

/* What the raw header says, before SQLite opens the file. */
static int check_header(dn_store *st, off_t size)
{
    if (size == 0)
        return 0; /* a file created but never written: a fresh store */
    if (size < 100)
        return dn__store_failf(st, DN_ECORRUPT,
                               "not a SQLite database (%lld bytes, shorter than the header); "
                               "refusing to touch it",
                               (long long)size);
    unsigned char h[100];
    int fd = open(st->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dn__store_failf(st, -errno, "cannot read: %s", strerror(errno));
    ssize_t n = pread(fd, h, sizeof h, 0);
    int e = errno;
    close(fd);
    if (n != (ssize_t)sizeof h)
        return dn__store_failf(st, n < 0 ? -e : DN_EIO, "cannot read the header: %s",
                               n < 0 ? strerror(e) : "short read");
    if (memcmp(h, "SQLite format 3", 16) != 0)
        return dn__store_failf(st, DN_ECORRUPT,
                               "not a SQLite database (no \"SQLite format 3\" header); refusing "
                               "to touch it");
    uint32_t version = be32(h + 60), app = be32(h + 68);
    if (app != 0 && app != DN_STORE_APPLICATION_ID)
        return dn__store_failf(st, DN_EUNSUPPORTED,
                               "a SQLite database of another application (application_id "
                               "0x%08x); refusing to touch it",
                               app);
    if (version > DN_STORE_SCHEMA_VERSION)
        return dn__store_failf(st, DN_ESCHEMA,
                               "schema version %u is newer than this dmsnet knows (%d); "
                               "refusing to open it (upgrade dmsnet, or move the file away)",
                               version, DN_STORE_SCHEMA_VERSION);
    return 0;
}

static int pragma_int(dn_store *st, const char *sql, int64_t *out)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, sql, &s);
    if (rc)
        return rc;
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return r == SQLITE_ROW ? 0 : dn__store_fail(st, r, sql);
}

/* Read-only checks on the authoritative state (the WAL included). */
static int probe(dn_store *st)
{
    int64_t version, app, objects;
    int rc;
    if ((rc = pragma_int(st, "PRAGMA user_version", &version)) ||
        (rc = pragma_int(st, "PRAGMA application_id", &app)) ||
        (rc = pragma_int(st, "SELECT count(*) FROM sqlite_schema", &objects))) {
        if (rc == DN_ECORRUPT) {
            char why[256];
            snprintf(why, sizeof why, "%s", sqlite3_errmsg(st->db));
            return dn__store_failf(st, rc, "corrupt (%s); refusing to touch it", why);
        }
        return rc;
    }
    if (version > DN_STORE_SCHEMA_VERSION)
        return dn__store_failf(st, DN_ESCHEMA,
                               "schema version %lld is newer than this dmsnet knows (%d); "
                               "refusing to open it (upgrade dmsnet, or move the file away)",
                               (long long)version, DN_STORE_SCHEMA_VERSION);
    if (app != DN_STORE_APPLICATION_ID && !(app == 0 && version == 0 && objects == 0))
        return dn__store_failf(st, DN_EUNSUPPORTED,
                               "a SQLite database that is not a dmsnet store (application_id "
                               "0x%08llx, %lld schema objects); refusing to touch it",
                               (unsigned long long)app, (long long)objects);
    if (objects == 0)
        return 0;
    sqlite3_stmt *s;
    if ((rc = dn__store_prepare(st, "PRAGMA quick_check(1)", &s)))
        return rc == DN_ECORRUPT ? dn__store_failf(st, rc, "corrupt; refusing to touch it") : rc;
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(s, 0);
        if (!res || strcmp(res, "ok") != 0) {
            rc = dn__store_failf(st, DN_ECORRUPT, "corrupt (quick_check: %s); refusing to touch it",
                                 res ? res : "?");
        }
    } else {
        rc = dn__store_fail(st, r, "quick_check");
        if (rc == DN_ECORRUPT || rc == DN_EIO)
            rc = dn__store_failf(st, DN_ECORRUPT,
                                 "corrupt (quick_check: %s); refusing to "
                                 "touch it",
                                 sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(s);
    return rc;
}

static int migrate(dn_store *st)
{
    for (int v = 1; v <= DN_STORE_SCHEMA_VERSION; v++) {
        int rc = dn__store_exec(st, "BEGIN IMMEDIATE");
        if (rc)
            return rc;
        /* Read inside the write lock: another process may have migrated
         * between our probe and now. */
        int64_t cur;
        if ((rc = pragma_int(st, "PRAGMA user_version", &cur))) {
            rollback_quiet(st, "ROLLBACK");
            return rc;
        }
        if (cur >= v) {
            rollback_quiet(st, "ROLLBACK");
            continue;
        }
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v);
        rc = dn__store_exec(st, dn__store_migration_sql(v));
        if (rc == 0)
            rc = dn__store_exec(st, bump);
        if (rc == 0)
            rc = dn__store_exec(st, "COMMIT");
        if (rc) {
            char why[sizeof st->msg];
            snprintf(why, sizeof why, "%s", st->msg);
            rollback_quiet(st, "ROLLBACK");
            return dn__store_failf(st, rc, "migration to schema version %d failed (%s)", v, why);
        }
    }
    return 0;
}

/* SQLite gives -wal and -shm the mode of the database file (unix VFS:
 * findCreateFileMode / unixOpenSharedMemory), so a 0600 file is enough and
 * the process-wide umask, which other threads may rely on, is left alone.
 * Files left by an older run with looser modes are tightened. */
static int tighten_modes(dn_store *st)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[4200];
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        snprintf(p, sizeof p, "%s%s", st->path, suffix[i]);
        struct stat sb;
        if (stat(p, &sb) != 0)
            continue;
        if ((sb.st_mode & 0777) != 0600 && chmod(p, 0600) != 0)
            return dn__store_failf(st, -errno, "cannot make %s mode 0600: %s", p, strerror(errno));
    }
    return 0;
}

static int open_file(dn_store *st, const char *data_dir)
{
    struct stat sb;
    if (stat(data_dir, &sb) != 0) {
        if (errno != ENOENT || mkdir(data_dir, 0700) != 0 || stat(data_dir, &sb) != 0)
            return dn__store_failf(st, -errno, "data directory %s: %s", data_dir, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return dn__store_failf(st, DN_EINVAL, "data directory %s is not a directory", data_dir);
    /* SQLite creates -wal and -shm beside the file: the directory must be
     * writable even when the file exists. */
    if (not_writable(data_dir, &sb))
        return dn__store_failf(st, DN_EREADONLY,
                               "the directory %s is not writable (the store needs to create "
                               "its -wal and -shm files there); refusing to open it",
                               data_dir);
    if (stat(st->path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode))
            return dn__store_failf(st, DN_EINVAL, "not a regular file");
        if (not_writable(st->path, &sb))
            return dn__store_failf(st, DN_EREADONLY,
                                   "the file is not writable (mode %03o); refusing to open it",
                                   (unsigned)(sb.st_mode & 0777));
        int rc = check_header(st, sb.st_size);
        if (rc)
            return rc;
    } else if (errno == ENOENT) {
        /* Created by us, 0600 from the first byte. */
        int fd = open(st->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return dn__store_failf(st, errno == EROFS ? DN_EREADONLY : -errno, "cannot create: %s",
                                   strerror(errno));
        close(fd);
        /* The new name must be durable before the first commit is: SQLite
         * syncs the directory for the WAL it creates, not for the main
         * file, which it did not create. */
        int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0) {
            int e = errno;
            if (dfd >= 0)
                close(dfd);
            return dn__store_failf(st, -e, "cannot sync the directory %s: %s", data_dir,
                                   strerror(e));
        }
        close(dfd);
    } else {
        return dn__store_failf(st, -errno, "%s", strerror(errno));
    }
    int rc = tighten_modes(st);
    if (rc)
        return rc;

    /* Never SQLITE_OPEN_CREATE: the file exists now, and if it vanished in
     * between we would rather fail than make one we did not check. */
    int r = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (r != SQLITE_OK) {
        rc = dn__store_fail(st, r, "cannot open");
        return rc;
    }
    sqlite3_extended_result_codes(st->db, 1);
    /* Until the file is accepted, closing must not checkpoint a WAL (that
     * would write the main file). */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(st->db, DN_STORE_BUSY_MS);
    if ((rc = probe(st)))
        return rc;
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);

    /* WAL: readers never block the writer, and a commit is one append.
     * synchronous=FULL: the WAL is fsync'd at every commit, so what a call
     * acknowledged survives a power loss too, not only kill -9 (NORMAL
     * would already survive kill -9: the commit is in the page cache). The
     * cost is one fsync per transaction; the node batches frequent writes
     * (peer sightings) with dn__store_begin/commit. secure_delete: a deleted
     * swarm key's ciphertext does not linger in free pages. trusted_schema
     * stays at its default (on): the settings table's CHECK uses
     * json_valid(), which SQLite 3.40 does not mark innocuous, and the file
     * is the user's own, not one from a stranger. */
    sqlite3_stmt *s;
    if ((rc = dn__store_prepare(st, "PRAGMA journal_mode = WAL", &s)))
        return rc;
    r = sqlite3_step(s);
    const char *mode = r == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
    bool wal = mode && strcmp(mode, "wal") == 0;
    sqlite3_finalize(s);
    if (!wal)
        return r == SQLITE_ROW ? dn__store_failf(st, DN_EIO, "cannot switch to WAL mode")
                               : dn__store_fail(st, r, "journal_mode");
    if ((rc = dn__store_exec(st, "PRAGMA synchronous = FULL;"
                                 "PRAGMA foreign_keys = ON;"
                                 "PRAGMA secure_delete = ON;")))
        return rc;
    if ((rc = migrate(st)))
        return rc;
    return tighten_modes(st);
}

int dn__store_open(const char *data_dir, dn_store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (!data_dir || !*data_dir) {
        if (err && errlen)
            snprintf(err, errlen, "store: no data directory");
        return DN_EINVAL;
    }
    dn_store *st = calloc(1, sizeof *st);
    size_t n = strlen(data_dir) + sizeof "/" DN_STORE_FILENAME;
    if (!st || !(st->path = malloc(n))) {
        free(st);
        return DN_ENOMEM;
    }
    snprintf(st->path, n, "%s/%s", data_dir, DN_STORE_FILENAME);
    st->max_peers = DN_STORE_PEERS_DEFAULT;
    int rc = open_file(st, data_dir);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", st->msg);
        dn__store_close(st);
        return rc;
    }
    st->msg[0] = 0;
    *out = st;
    return 0;
}

void dn__store_close(dn_store *st)
{
    if (!st)
        return;
    if (st->db) {
        dn__store_rollback(st);
        /* Statements are finalized by the calls that prepare them, so
         * close succeeds; the last connection checkpoints and removes the
         * WAL (unless the file was refused, see open_file). */
        sqlite3_close(st->db);
    }
    free(st->path);
    free(st);
}

int dn__store_integrity_check(dn_store *st)
{
    sqlite3_stmt *s;
    int rc = dn__store_prepare(st, "PRAGMA integrity_check(1)", &s);
    if (rc)
        return rc;
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(s, 0);
        if (!res || strcmp(res, "ok") != 0)
            rc = dn__store_failf(st, DN_ECORRUPT, "integrity_check: %s", res ? res : "?");
    } else {
        rc = dn__store_fail(st, r, "integrity_check");
    }
    sqlite3_finalize(s);
    if (rc == 0) {
        /* Foreign keys are enforced on every write, but a file edited by
         * hand could still break them. */
        if ((rc = dn__store_prepare(st, "PRAGMA foreign_key_check", &s)))
            return rc;
        r = sqlite3_step(s);
        if (r == SQLITE_ROW)
            rc = dn__store_failf(st, DN_ECORRUPT, "foreign_key_check: a row of %s has no parent",
                                 (const char *)sqlite3_column_text(s, 0));
        else if (r != SQLITE_DONE)
            rc = dn__store_fail(st, r, "foreign_key_check");
        sqlite3_finalize(s);
    }
    return rc;
}
