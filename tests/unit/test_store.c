/* The store (src/store): creation, migrations from every older schema,
 * every table group's API, and the refusals that keep a file we do not
 * understand untouched (corrupt, newer schema, foreign, read-only). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "dmsnet/error.h"
#include "store/store.h"

typedef struct fixture {
    char dir[64];
    char db[128];
    dn_store *st;
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/dn-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/dmsnet.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    dn__store_close(f->st);
    chmod(f->dir, 0700);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static dn_store *open_ok(fixture *f)
{
    char err[600];
    dn_store *st = NULL;
    int rc = dn__store_open(f->dir, &st, err, sizeof err);
    if (rc)
        fail_msg("open: %s: %s", dn_strerror(rc), err);
    assert_non_null(st);
    return st;
}

static void reopen(fixture *f)
{
    dn__store_close(f->st);
    f->st = open_ok(f);
}

/* ---- raw SQLite, as another program (or an older dmsnet) would use it ---- */

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("raw sql failed: %s", msg ? msg : "?");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static unsigned mode_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 0777;
}

/* open must fail with want, name the file in its message and say why
 * (the fragment), and leave the file's bytes as they were. */
static void expect_refusal(fixture *f, int want, const char *fragment)
{
    size_t n0, n1;
    char *before = slurp(f->db, &n0);
    char err[600];
    dn_store *st = (dn_store *)1;
    int rc = dn__store_open(f->dir, &st, err, sizeof err);
    assert_int_equal(rc, want);
    assert_null(st);
    if (!strstr(err, f->db) || !strstr(err, fragment))
        fail_msg("message '%s' lacks the file or '%s'", err, fragment);
    char *after = slurp(f->db, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    /* And again: the refusal is stable, nothing was half-repaired. */
    assert_int_equal(dn__store_open(f->dir, &st, err, sizeof err), want);
    free(before);
    free(after);
}

/* ---- creation ---- */

static void test_create(void **state)
{
    fixture *f = *state;
    /* The data dir is created when missing. */
    char sub[160];
    snprintf(sub, sizeof sub, "%s/home", f->dir);
    char err[600];
    dn_store *st;
    assert_int_equal(dn__store_open(sub, &st, err, sizeof err), 0);
    assert_int_equal(mode_of(sub), 0700);
    dn__store_close(st);

    f->st = open_ok(f);
    assert_string_equal(dn__store_path(f->st), f->db);
    assert_int_equal(raw_int(f->db, "PRAGMA user_version"), DN_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(f->db, "PRAGMA application_id"), DN_STORE_APPLICATION_ID);
    assert_int_equal(dn__store_integrity_check(f->st), 0);
    /* WAL mode: the -wal and -shm files exist while the store is open,
     * and all three are 0600 even though the umask would allow more. */
    char wal[160], shm[160];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    snprintf(shm, sizeof shm, "%s-shm", f->db);
    assert_int_equal(dn__store_setting_set(f->st, "a", "1"), 0);
    assert_int_equal(mode_of(f->db), 0600);
    assert_int_equal(mode_of(wal), 0600);
    assert_int_equal(mode_of(shm), 0600);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
    reopen(f);
    char *v;
    assert_int_equal(dn__store_setting_get(f->st, "a", &v), 0);
    assert_string_equal(v, "1");
    free(v);
}

static void test_modes_tightened(void **state)
{
    fixture *f = *state;
    /* A store made by an older run (or copied) with a loose mode. */
    f->st = open_ok(f);
    dn__store_close(f->st);
    f->st = NULL;
    assert_int_equal(chmod(f->db, 0644), 0);
    f->st = open_ok(f);
    assert_int_equal(mode_of(f->db), 0600);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    assert_int_equal(mode_of(wal), 0600);
}

static void test_empty_file_is_fresh(void **state)
{
    fixture *f = *state;
    /* A crash between creating the file and the first commit leaves 0 bytes. */
    write_bytes(f->db, "", 0);
    f->st = open_ok(f);
    assert_int_equal(raw_int(f->db, "PRAGMA user_version"), DN_STORE_SCHEMA_VERSION);
}

/* ---- migrations ---- */

/* A database as dmsnet with schema version v left it, with a row in each
 * table group that version has. */
static void make_version(const char *path, int v)
{
    raw_exec(path, "PRAGMA journal_mode = WAL");
    for (int i = 1; i <= v; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, ";PRAGMA user_version = %d;", i);
        size_t n = strlen(dn__store_migration_sql(i)) + sizeof sql + 16;
        char *all = malloc(n);
        assert_non_null(all);
        snprintf(all, n, "BEGIN;%s%sCOMMIT;", dn__store_migration_sql(i), sql);
        raw_exec(path, all);
        free(all);
    }
    if (v >= 1)
        raw_exec(path, "INSERT INTO settings VALUES ('old', '{\"v\":1}', 5);"
                       "INSERT INTO peers VALUES ('12D3KooWold', x'0801', 'go', 10, 20);"
                       "INSERT INTO peer_addrs VALUES ('12D3KooWold', '/ip4/1.2.3.4/tcp/1', 20);"
                       "INSERT INTO channel VALUES (1, 'nunet', '/nunet', 7);"
                       "INSERT INTO channel_bootstrap VALUES (1, 0, '/dns4/b/tcp/1');");
    if (v >= 2)
        raw_exec(path, "INSERT INTO swarms VALUES ('s', 'sid', 'c', 'creator', x'01', x'02', 1,"
                       " 0, 1, 1);"
                       "INSERT INTO swarm_members VALUES ('s', 'm', NULL, 0, NULL, 1);");
}

static void test_migrate_from_each_version(void **state)
{
    fixture *f = *state;
    assert_null(dn__store_migration_sql(0));
    assert_null(dn__store_migration_sql(DN_STORE_SCHEMA_VERSION + 1));
    for (int v = 0; v < DN_STORE_SCHEMA_VERSION; v++) {
        char sub[160];
        snprintf(sub, sizeof sub, "%s/v%d", f->dir, v);
        assert_int_equal(mkdir(sub, 0700), 0);
        char path[200];
        snprintf(path, sizeof path, "%s/dmsnet.db", sub);
        make_version(path, v);
        assert_int_equal(raw_int(path, "PRAGMA user_version"), v);
        char err[600];
        dn_store *st;
        int rc = dn__store_open(sub, &st, err, sizeof err);
        if (rc)
            fail_msg("from version %d: %s", v, err);
        assert_int_equal(raw_int(path, "PRAGMA user_version"), DN_STORE_SCHEMA_VERSION);
        assert_int_equal(dn__store_integrity_check(st), 0);
        if (v >= 1) {
            char *val;
            assert_int_equal(dn__store_setting_get(st, "old", &val), 0);
            assert_string_equal(val, "{\"v\":1}");
            free(val);
            dn_store_peer *p;
            assert_int_equal(dn__store_peer_get(st, "12D3KooWold", &p), 0);
            assert_int_equal(p->n_addrs, 1);
            assert_string_equal(p->addrs[0], "/ip4/1.2.3.4/tcp/1");
            assert_int_equal(p->first_seen_ms, 10);
            free(p);
            dn_store_channel *c;
            assert_int_equal(dn__store_channel_get(st, &c), 0);
            assert_string_equal(c->dht_prefix, "/nunet");
            assert_int_equal(c->n_bootstrap, 1);
            free(c);
        }
        if (v >= 2) {
            dn_store_swarm_member *m;
            assert_int_equal(dn__store_swarm_member_get(st, "s", "m", &m), 0);
            free(m);
        }
        /* Every table group works after the migration. */
        dn_store_swarm sw = {.name = "new", .swarm_id = "nid", .creator = "c"};
        assert_int_equal(dn__store_swarm_put(st, &sw), 0);
        dn_store_vpn vpn = {.name = "v", .coordinator = "c", .cidr_v4 = "10.1.0.0/24"};
        assert_int_equal(dn__store_vpn_put(st, &vpn), 0);
        const char *addr[] = {"/ip4/1.2.3.4/tcp/1"};
        dn_store_dht_peer tp = {.peer_id = "12D3KooWdht", .addrs = addr, .n_addrs = 1};
        assert_int_equal(dn__store_dht_table_set(st, &tp, 1), 0);
        assert_int_equal(dn__store_dht_provider_put(st, (const uint8_t *)"k", 1, "p", 1), 0);
        assert_int_equal(dn__store_dht_record_put(st, (const uint8_t *)"k", 1, NULL, 0, 1), 0);
        dn__store_close(st);
    }
}

static void test_migration_is_atomic(void **state)
{
    fixture *f = *state;
    /* A version-1 store where someone made a table migration 2 creates:
     * migration 2 fails, and none of it stays. */
    make_version(f->db, 1);
    raw_exec(f->db, "CREATE TABLE swarm_bootstrap (x)");
    char err[600];
    dn_store *st;
    int rc = dn__store_open(f->dir, &st, err, sizeof err);
    assert_true(rc < 0);
    assert_null(st);
    assert_non_null(strstr(err, "migration to schema version 2 failed"));
    assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE name = 'swarms'"), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM settings"), 1);
}

/* ---- refusals ---- */

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    assert_int_equal(dn__store_setting_set(f->st, "a", "true"), 0);
    dn__store_close(f->st);
    f->st = NULL;
    raw_exec(f->db, "PRAGMA user_version = 99");
    expect_refusal(f, DN_ESCHEMA, "newer");
}

static void test_newer_schema_in_wal_refused(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    dn__store_close(f->st);
    f->st = NULL;
    /* The newer version is committed in the WAL only (its writer did not
     * checkpoint): the header still says ours, SQLite says 99. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 42", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    size_t n0, n1;
    char *w0 = slurp(wal, &n0);
    assert_true(n0 > 0);
    expect_refusal(f, DN_ESCHEMA, "42");
    char *w1 = slurp(wal, &n1);
    assert_int_equal(n0, n1); /* not checkpointed into the main file */
    assert_memory_equal(w0, w1, n0);
    free(w0);
    free(w1);
}

static void test_junk_refused(void **state)
{
    fixture *f = *state;
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    write_bytes(f->db, junk, sizeof junk);
    expect_refusal(f, DN_ECORRUPT, "not a SQLite database");
    write_bytes(f->db, "hello", 5);
    expect_refusal(f, DN_ECORRUPT, "not a SQLite database");
}

/* A real store with enough rows to span several pages, closed cleanly
 * (checkpointed: everything is in the main file). */
static size_t make_big_store(fixture *f)
{
    f->st = open_ok(f);
    assert_int_equal(dn__store_begin(f->st), 0);
    for (int i = 0; i < 300; i++) {
        char id[32], a[64];
        snprintf(id, sizeof id, "12D3KooWpeer%04d", i);
        snprintf(a, sizeof a, "/ip4/10.0.%d.%d/tcp/4001", i / 256, i % 256);
        const char *addrs[] = {a};
        dn_store_peer p = {.peer_id = id, .last_seen_ms = 1000 + i, .addrs = addrs, .n_addrs = 1};
        assert_int_equal(dn__store_peer_put(f->st, &p, false), 0);
    }
    assert_int_equal(dn__store_commit(f->st), 0);
    dn__store_close(f->st);
    f->st = NULL;
    struct stat sb;
    assert_int_equal(stat(f->db, &sb), 0);
    assert_true(sb.st_size >= 8 * 4096);
    return (size_t)sb.st_size;
}

static void test_truncated_refused(void **state)
{
    fixture *f = *state;
    size_t size = make_big_store(f);
    /* Cut in the middle of a page. */
    assert_int_equal(truncate(f->db, (off_t)(size - 4096 - 1234)), 0);
    expect_refusal(f, DN_ECORRUPT, "corrupt");
}

static void test_damaged_page_refused(void **state)
{
    fixture *f = *state;
    size_t size = make_big_store(f);
    /* Overwrite the middle of the last page (a b-tree page of peers or
     * their index) with junk. */
    char junk[512];
    memset(junk, 0x5a, sizeof junk);
    int fd = open(f->db, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)(size - 4096 + 8)), (ssize_t)sizeof junk);
    close(fd);
    expect_refusal(f, DN_ECORRUPT, "corrupt");
}

static void test_foreign_refused(void **state)
{
    fixture *f = *state;
    /* Another program's SQLite file at our path. */
    raw_exec(f->db, "CREATE TABLE photos (id INTEGER PRIMARY KEY); INSERT INTO photos VALUES (1)");
    expect_refusal(f, DN_EUNSUPPORTED, "not a dmsnet store");
    raw_exec(f->db, "PRAGMA application_id = 1234");
    expect_refusal(f, DN_EUNSUPPORTED, "another application");
}

static void test_readonly_refused(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    assert_int_equal(dn__store_setting_set(f->st, "x", "1"), 0);
    dn__store_close(f->st);
    f->st = NULL;
    /* A read-only file (refused for root as well: see not_writable). */
    assert_int_equal(chmod(f->db, 0400), 0);
    expect_refusal(f, DN_EREADONLY, "not writable");
    assert_int_equal(mode_of(f->db), 0400); /* not "fixed" either */
    assert_int_equal(chmod(f->db, 0600), 0);
    /* A read-only directory: -wal and -shm could not be made. */
    assert_int_equal(chmod(f->dir, 0500), 0);
    expect_refusal(f, DN_EREADONLY, "not writable");
    assert_int_equal(chmod(f->dir, 0700), 0);
    f->st = open_ok(f);
}

/* A read-only file system (EROFS), which even root cannot write: a
 * private mount namespace in a child with a tmpfs made read-only. Needs
 * CAP_SYS_ADMIN; without it the child reports that and the chmod-based
 * test above is what runs. */
static void test_readonly_fs_refused(void **state)
{
    fixture *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char mnt[160];
        snprintf(mnt, sizeof mnt, "%s/ro", f->dir);
        if (mkdir(mnt, 0700) != 0)
            _exit(10);
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount("tmpfs", mnt, "tmpfs", 0, "size=4m,mode=0700") != 0)
            _exit(77); /* no privilege for mount namespaces */
        char err[600];
        dn_store *st;
        if (dn__store_open(mnt, &st, err, sizeof err) != 0)
            _exit(11);
        dn__store_setting_set(st, "k", "1");
        dn__store_close(st);
        if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0)
            _exit(12);
        int rc = dn__store_open(mnt, &st, err, sizeof err);
        if (rc != DN_EREADONLY || !strstr(err, "not writable"))
            _exit(13);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77 && geteuid() != 0)
        return; /* unprivileged: mount namespaces are not ours to make */
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- settings ---- */

typedef struct names {
    char items[16][64];
    size_t n;
} names;

static int collect_setting(void *ud, const char *key, const char *json, int64_t updated)
{
    names *n = ud;
    assert_true(updated > 0);
    snprintf(n->items[n->n++], 64, "%s=%s", key, json);
    return 0;
}

static void test_settings(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    char *v;
    assert_int_equal(dn__store_setting_get(f->st, "log_level", &v), DN_ENOTFOUND);
    assert_null(v);
    assert_int_equal(dn__store_setting_set(f->st, "log_level", "\"debug\""), 0);
    assert_int_equal(dn__store_setting_set(f->st, "limits", "{\"conns\":64}"), 0);
    assert_int_equal(dn__store_setting_set(f->st, "log_level", "\"warn\""), 0);
    assert_int_equal(dn__store_setting_get(f->st, "log_level", &v), 0);
    assert_string_equal(v, "\"warn\"");
    free(v);
    /* Not JSON: refused by the schema, the old value stays. */
    assert_int_equal(dn__store_setting_set(f->st, "log_level", "warn"), DN_EINVAL);
    assert_non_null(strstr(dn__store_errmsg(f->st), "not JSON"));
    assert_int_equal(dn__store_setting_set(f->st, "", "1"), DN_EINVAL);
    char big[DN_STORE_KEY_MAX + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(dn__store_setting_set(f->st, big, "1"), DN_ETOOBIG);
    names n = {0};
    assert_int_equal(dn__store_setting_list(f->st, collect_setting, &n), 0);
    assert_int_equal(n.n, 2);
    assert_string_equal(n.items[0], "limits={\"conns\":64}");
    assert_string_equal(n.items[1], "log_level=\"warn\"");
    assert_int_equal(dn__store_setting_delete(f->st, "limits"), 0);
    assert_int_equal(dn__store_setting_delete(f->st, "limits"), DN_ENOTFOUND);
    reopen(f);
    n.n = 0;
    assert_int_equal(dn__store_setting_list(f->st, collect_setting, &n), 0);
    assert_int_equal(n.n, 1);
    assert_string_equal(n.items[0], "log_level=\"warn\"");
}

static int stop_at_first(void *ud, const char *key, const char *json, int64_t updated)
{
    (*(int *)ud)++;
    return 7;
}

static void test_list_stops(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    assert_int_equal(dn__store_setting_set(f->st, "a", "1"), 0);
    assert_int_equal(dn__store_setting_set(f->st, "b", "2"), 0);
    int calls = 0;
    assert_int_equal(dn__store_setting_list(f->st, stop_at_first, &calls), 7);
    assert_int_equal(calls, 1);
}

/* ---- peers ---- */

static int collect_peer(void *ud, const dn_store_peer *p)
{
    names *n = ud;
    snprintf(n->items[n->n++], 64, "%s:%zu", p->peer_id, p->n_addrs);
    return 0;
}

static void test_peers(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    const uint8_t key[] = {0x08, 0x01, 0x12, 0x20, 1, 2, 3};
    const char *a1[] = {"/ip4/1.1.1.1/tcp/1", "/ip4/2.2.2.2/tcp/2"};
    dn_store_peer p = {.peer_id = "12D3KooWA",
                       .pubkey = key,
                       .pubkey_len = sizeof key,
                       .agent = "js-libp2p/1",
                       .first_seen_ms = 100,
                       .last_seen_ms = 200,
                       .addrs = a1,
                       .n_addrs = 2};
    assert_int_equal(dn__store_peer_put(f->st, &p, false), 0);
    /* Seen again later, from a new address, without key or agent. */
    const char *a2[] = {"/ip4/3.3.3.3/tcp/3"};
    dn_store_peer q = {.peer_id = "12D3KooWA",
                       .last_seen_ms = 300,
                       .first_seen_ms = 300,
                       .addrs = a2,
                       .n_addrs = 1};
    assert_int_equal(dn__store_peer_put(f->st, &q, false), 0);
    /* A stale report does not move last_seen back. */
    dn_store_peer old = {.peer_id = "12D3KooWA", .last_seen_ms = 150};
    assert_int_equal(dn__store_peer_put(f->st, &old, false), 0);
    reopen(f);
    dn_store_peer *g;
    assert_int_equal(dn__store_peer_get(f->st, "12D3KooWA", &g), 0);
    assert_int_equal(g->first_seen_ms, 100);
    assert_int_equal(g->last_seen_ms, 300);
    assert_int_equal(g->pubkey_len, sizeof key);
    assert_memory_equal(g->pubkey, key, sizeof key);
    assert_string_equal(g->agent, "js-libp2p/1");
    assert_int_equal(g->n_addrs, 3);
    assert_string_equal(g->addrs[0], "/ip4/3.3.3.3/tcp/3"); /* most recent first */
    free(g);
    /* replace_addrs: identify's full list replaces what we had. */
    assert_int_equal(dn__store_peer_put(f->st, &q, true), 0);
    assert_int_equal(dn__store_peer_get(f->st, "12D3KooWA", &g), 0);
    assert_int_equal(g->n_addrs, 1);
    free(g);

    /* Addresses per peer are bounded: the most recent stay. */
    char addrs[DN_STORE_PEER_ADDRS_MAX][40];
    const char *ap[DN_STORE_PEER_ADDRS_MAX];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < DN_STORE_PEER_ADDRS_MAX; i++) {
            snprintf(addrs[i], sizeof addrs[i], "/ip4/9.9.%d.%d/tcp/1", round, i);
            ap[i] = addrs[i];
        }
        dn_store_peer b = {.peer_id = "12D3KooWB",
                           .last_seen_ms = 1000 + round,
                           .addrs = ap,
                           .n_addrs = DN_STORE_PEER_ADDRS_MAX};
        assert_int_equal(dn__store_peer_put(f->st, &b, false), 0);
    }
    assert_int_equal(dn__store_peer_get(f->st, "12D3KooWB", &g), 0);
    assert_int_equal(g->n_addrs, DN_STORE_PEER_ADDRS_MAX);
    for (size_t i = 0; i < g->n_addrs; i++)
        assert_non_null(strstr(g->addrs[i], "/ip4/9.9.1."));
    free(g);
    dn_store_peer many = {
        .peer_id = "12D3KooWB", .addrs = ap, .n_addrs = DN_STORE_PEER_ADDRS_MAX + 1};
    assert_int_equal(dn__store_peer_put(f->st, &many, false), DN_ETOOBIG);
    dn_store_peer bad = {.peer_id = "12D3KooWC", .first_seen_ms = 5, .last_seen_ms = 4};
    assert_int_equal(dn__store_peer_put(f->st, &bad, false), DN_EINVAL);

    /* Listing: most recently seen first, since and limit. */
    dn_store_peer c = {.peer_id = "12D3KooWC", .last_seen_ms = 50};
    assert_int_equal(dn__store_peer_put(f->st, &c, false), 0);
    names n = {0};
    assert_int_equal(dn__store_peer_list(f->st, 0, 0, collect_peer, &n), 0);
    assert_int_equal(n.n, 3);
    assert_string_equal(n.items[0], "12D3KooWB:32");
    assert_string_equal(n.items[1], "12D3KooWA:1");
    assert_string_equal(n.items[2], "12D3KooWC:0");
    n.n = 0;
    assert_int_equal(dn__store_peer_list(f->st, 100, 0, collect_peer, &n), 0);
    assert_int_equal(n.n, 2);
    n.n = 0;
    assert_int_equal(dn__store_peer_list(f->st, 0, 1, collect_peer, &n), 0);
    assert_int_equal(n.n, 1);
    assert_int_equal(dn__store_peer_count(f->st), 3);

    /* Delete takes the addresses along. */
    assert_int_equal(dn__store_peer_delete(f->st, "12D3KooWB"), 0);
    assert_int_equal(dn__store_peer_delete(f->st, "12D3KooWB"), DN_ENOTFOUND);
    assert_int_equal(dn__store_peer_get(f->st, "12D3KooWB", &g), DN_ENOTFOUND);
    dn__store_close(f->st);
    f->st = NULL;
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM peer_addrs WHERE peer_id = '12D3KooWB'"),
                     0);
}

static void test_peer_limit(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    dn__store_set_peer_limit(f->st, 5);
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        /* p0 is seen last of all: it stays although it came first. */
        dn_store_peer p = {.peer_id = id, .last_seen_ms = i == 0 ? 10000 : 100 + i};
        assert_int_equal(dn__store_peer_put(f->st, &p, false), 0);
        assert_true(dn__store_peer_count(f->st) <= 5);
    }
    assert_int_equal(dn__store_peer_count(f->st), 5);
    dn_store_peer *g;
    assert_int_equal(dn__store_peer_get(f->st, "p0", &g), 0);
    free(g);
    assert_int_equal(dn__store_peer_get(f->st, "p1", &g), DN_ENOTFOUND);
    assert_int_equal(dn__store_peer_get(f->st, "p3", &g), DN_ENOTFOUND);
    assert_int_equal(dn__store_peer_get(f->st, "p4", &g), 0);
    free(g);
    /* Updating a known peer at the limit forgets nobody. */
    dn_store_peer again = {.peer_id = "p4", .last_seen_ms = 20000};
    assert_int_equal(dn__store_peer_put(f->st, &again, false), 0);
    assert_int_equal(dn__store_peer_count(f->st), 5);
}

/* ---- the channel ---- */

static void test_channel(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    dn_store_channel *c;
    assert_int_equal(dn__store_channel_get(f->st, &c), DN_ENOTFOUND);
    assert_int_equal(dn__store_channel_clear(f->st), DN_ENOTFOUND);
    const char *boot[] = {"/dns4/a/tcp/1/p2p/12D3KooWa", "/dns4/b/tcp/1/p2p/12D3KooWb"};
    dn_store_channel in = {
        .name = "nunet-test", .dht_prefix = "/nunet", .bootstrap = boot, .n_bootstrap = 2};
    assert_int_equal(dn__store_channel_set(f->st, &in), 0);
    reopen(f);
    assert_int_equal(dn__store_channel_get(f->st, &c), 0);
    assert_string_equal(c->name, "nunet-test");
    assert_string_equal(c->dht_prefix, "/nunet");
    assert_int_equal(c->n_bootstrap, 2);
    assert_string_equal(c->bootstrap[0], boot[0]);
    assert_string_equal(c->bootstrap[1], boot[1]);
    assert_true(c->updated_ms > 0);
    free(c);
    /* Set again: one row, the new bootstrap list in its order. */
    const char *boot2[] = {boot[1]};
    in.bootstrap = boot2;
    in.n_bootstrap = 1;
    in.name = "nunet";
    assert_int_equal(dn__store_channel_set(f->st, &in), 0);
    assert_int_equal(dn__store_channel_get(f->st, &c), 0);
    assert_string_equal(c->name, "nunet");
    assert_int_equal(c->n_bootstrap, 1);
    assert_string_equal(c->bootstrap[0], boot[1]);
    free(c);
    in.dht_prefix = NULL;
    assert_int_equal(dn__store_channel_set(f->st, &in), DN_EINVAL);
    assert_int_equal(dn__store_channel_clear(f->st), 0);
    assert_int_equal(dn__store_channel_get(f->st, &c), DN_ENOTFOUND);
}

/* ---- swarms ---- */

static int collect_member(void *ud, const dn_store_swarm_member *m)
{
    names *n = ud;
    snprintf(n->items[n->n++], 64, "%s/%s:%d", m->swarm, m->peer_id, m->has_key);
    return 0;
}

static int collect_swarm(void *ud, const dn_store_swarm *s)
{
    names *n = ud;
    snprintf(n->items[n->n++], 64, "%s:%d", s->name, s->active);
    return 0;
}

static void test_swarms(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    const uint8_t ct[48] = {1, 2, 3}, nonce[24] = {9};
    const char *boot[] = {"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWc"};
    dn_store_swarm s = {.name = "lab",
                        .swarm_id = "sw-1",
                        .creator = "12D3KooWc",
                        .role = DN_STORE_SWARM_CREATOR,
                        .key_ct = ct,
                        .key_ct_len = sizeof ct,
                        .key_nonce = nonce,
                        .key_nonce_len = sizeof nonce,
                        .key_version = 1,
                        .active = true,
                        .bootstrap = boot,
                        .n_bootstrap = 1};
    assert_int_equal(dn__store_swarm_put(f->st, &s), 0);
    dn_store_swarm_member m = {.swarm = "lab", .peer_id = "12D3KooWm1"};
    assert_int_equal(dn__store_swarm_member_put(f->st, &m), 0);
    m.peer_id = "12D3KooWm2";
    m.has_key = true;
    m.confirmed_ms = 777;
    const uint8_t pk[] = {8, 1, 18, 32, 5};
    m.pubkey = pk;
    m.pubkey_len = sizeof pk;
    assert_int_equal(dn__store_swarm_member_put(f->st, &m), 0);
    m.swarm = "nope";
    assert_int_equal(dn__store_swarm_member_put(f->st, &m), DN_ENOTFOUND);
    reopen(f);

    dn_store_swarm *g;
    assert_int_equal(dn__store_swarm_get(f->st, "lab", &g), 0);
    assert_string_equal(g->swarm_id, "sw-1");
    assert_string_equal(g->creator, "12D3KooWc");
    assert_int_equal(g->role, DN_STORE_SWARM_CREATOR);
    assert_int_equal(g->key_ct_len, sizeof ct);
    assert_memory_equal(g->key_ct, ct, sizeof ct);
    assert_int_equal(g->key_nonce_len, sizeof nonce);
    assert_memory_equal(g->key_nonce, nonce, sizeof nonce);
    assert_int_equal(g->key_version, 1);
    assert_true(g->active);
    assert_int_equal(g->n_bootstrap, 1);
    assert_string_equal(g->bootstrap[0], boot[0]);
    int64_t created = g->created_ms;
    free(g);
    assert_int_equal(dn__store_swarm_get_active(f->st, &g), 0);
    assert_string_equal(g->name, "lab");
    free(g);

    dn_store_swarm_member *gm;
    assert_int_equal(dn__store_swarm_member_get(f->st, "lab", "12D3KooWm2", &gm), 0);
    assert_true(gm->has_key);
    assert_int_equal(gm->confirmed_ms, 777);
    assert_int_equal(gm->pubkey_len, sizeof pk);
    assert_memory_equal(gm->pubkey, pk, sizeof pk);
    free(gm);
    assert_int_equal(dn__store_swarm_member_get(f->st, "lab", "12D3KooWm1", &gm), 0);
    assert_false(gm->has_key);
    assert_int_equal(gm->confirmed_ms, 0);
    assert_null(gm->pubkey);
    free(gm);
    names n = {0};
    assert_int_equal(dn__store_swarm_member_list(f->st, "lab", collect_member, &n), 0);
    assert_int_equal(n.n, 2);
    assert_string_equal(n.items[0], "lab/12D3KooWm1:0");
    assert_string_equal(n.items[1], "lab/12D3KooWm2:1");

    /* A member joins a second swarm; activating it deactivates the first. */
    dn_store_swarm s2 = {.name = "field",
                         .swarm_id = "sw-2",
                         .creator = "12D3KooWx",
                         .role = DN_STORE_SWARM_MEMBER,
                         .active = true};
    assert_int_equal(dn__store_swarm_put(f->st, &s2), 0);
    n.n = 0;
    assert_int_equal(dn__store_swarm_list(f->st, collect_swarm, &n), 0);
    assert_int_equal(n.n, 2);
    assert_string_equal(n.items[0], "field:1");
    assert_string_equal(n.items[1], "lab:0");
    assert_int_equal(dn__store_swarm_get(f->st, "field", &g), 0);
    assert_null(g->key_ct); /* no key yet */
    assert_int_equal(g->role, DN_STORE_SWARM_MEMBER);
    free(g);

    /* Rotation: a new ciphertext and version; created_at and members stay. */
    const uint8_t ct2[48] = {7};
    s.key_ct = ct2;
    s.key_version = 2;
    s.active = false;
    assert_int_equal(dn__store_swarm_put(f->st, &s), 0);
    assert_int_equal(dn__store_swarm_get(f->st, "lab", &g), 0);
    assert_int_equal(g->key_version, 2);
    assert_memory_equal(g->key_ct, ct2, sizeof ct2);
    assert_int_equal(g->created_ms, created);
    free(g);
    n.n = 0;
    assert_int_equal(dn__store_swarm_member_list(f->st, "lab", collect_member, &n), 0);
    assert_int_equal(n.n, 2);

    /* Refusals. */
    s2.name = "dup";
    s2.active = false;
    assert_int_equal(dn__store_swarm_put(f->st, &s2), DN_EEXIST); /* same swarm_id */
    s2.swarm_id = "sw-3";
    s2.key_ct = ct;
    s2.key_ct_len = sizeof ct;
    assert_int_equal(dn__store_swarm_put(f->st, &s2), DN_EINVAL); /* ciphertext, no nonce */
    s2.key_ct = NULL;
    s2.role = (dn_store_swarm_role)5;
    assert_int_equal(dn__store_swarm_put(f->st, &s2), DN_EINVAL);

    /* Leaving: the swarm and its members go. */
    assert_int_equal(dn__store_swarm_member_delete(f->st, "lab", "12D3KooWm1"), 0);
    assert_int_equal(dn__store_swarm_member_delete(f->st, "lab", "12D3KooWm1"), DN_ENOTFOUND);
    assert_int_equal(dn__store_swarm_delete(f->st, "lab"), 0);
    assert_int_equal(dn__store_swarm_delete(f->st, "lab"), DN_ENOTFOUND);
    assert_int_equal(dn__store_swarm_member_get(f->st, "lab", "12D3KooWm2", &gm), DN_ENOTFOUND);
    assert_int_equal(dn__store_swarm_delete(f->st, "field"), 0);
    assert_int_equal(dn__store_swarm_get_active(f->st, &g), DN_ENOTFOUND);
}

/* ---- VPNs ---- */

static int collect_alloc(void *ud, const dn_store_vpn_alloc *a)
{
    names *n = ud;
    snprintf(n->items[n->n++], 64, "%s=%s:%d", a->peer_id, a->addr_v4 ? a->addr_v4 : "-", a->state);
    return 0;
}

static void test_vpn(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    const uint8_t sig[64] = {0xaa};
    dn_store_vpn v = {.name = "vpn0",
                      .coordinator = "12D3KooWc",
                      .cidr_v4 = "10.42.0.0/24",
                      .cidr_v6 = "fd00:42::/64",
                      .table_version = 3,
                      .signature = sig,
                      .signature_len = sizeof sig};
    assert_int_equal(dn__store_vpn_put(f->st, &v), 0);
    dn_store_vpn_alloc a = {
        .vpn = "vpn0", .peer_id = "p1", .addr_v4 = "10.42.0.2", .addr_v6 = "fd00:42::2"};
    assert_int_equal(dn__store_vpn_alloc_put(f->st, &a), 0);
    /* Another peer on the same v4 address: a collision, refused. */
    dn_store_vpn_alloc b = {.vpn = "vpn0", .peer_id = "p2", .addr_v4 = "10.42.0.2"};
    assert_int_equal(dn__store_vpn_alloc_put(f->st, &b), DN_EEXIST);
    b.addr_v4 = "10.42.0.3";
    b.addr_v6 = "fd00:42::2";
    assert_int_equal(dn__store_vpn_alloc_put(f->st, &b), DN_EEXIST); /* the v6 one */
    b.addr_v6 = NULL;
    assert_int_equal(dn__store_vpn_alloc_put(f->st, &b), 0);
    dn_store_vpn_alloc c = {.vpn = "nope", .peer_id = "p3", .addr_v4 = "10.42.0.9"};
    assert_int_equal(dn__store_vpn_alloc_put(f->st, &c), DN_ENOTFOUND);
    reopen(f);

    dn_store_vpn *g;
    assert_int_equal(dn__store_vpn_get(f->st, "vpn0", &g), 0);
    assert_string_equal(g->coordinator, "12D3KooWc");
    assert_string_equal(g->cidr_v4, "10.42.0.0/24");
    assert_string_equal(g->cidr_v6, "fd00:42::/64");
    assert_int_equal(g->table_version, 3);
    assert_int_equal(g->signature_len, sizeof sig);
    assert_memory_equal(g->signature, sig, sizeof sig);
    free(g);
    /* A replayed older table is refused; a newer one replaces it. */
    v.table_version = 2;
    assert_int_equal(dn__store_vpn_put(f->st, &v), DN_ESTATE);
    v.table_version = 4;
    v.cidr_v6 = NULL;
    assert_int_equal(dn__store_vpn_put(f->st, &v), 0);
    assert_int_equal(dn__store_vpn_get(f->st, "vpn0", &g), 0);
    assert_int_equal(g->table_version, 4);
    assert_null(g->cidr_v6);
    free(g);
    v.cidr_v4 = NULL;
    assert_int_equal(dn__store_vpn_put(f->st, &v), DN_EINVAL);

    /* Release frees the address for another peer. */
    assert_int_equal(dn__store_vpn_alloc_release(f->st, "vpn0", "p1", 5000), 0);
    dn_store_vpn_alloc *ga;
    assert_int_equal(dn__store_vpn_alloc_get(f->st, "vpn0", "p1", &ga), 0);
    assert_int_equal(ga->state, DN_STORE_ALLOC_RELEASED);
    assert_int_equal(ga->released_ms, 5000);
    assert_string_equal(ga->addr_v4, "10.42.0.2");
    free(ga);
    assert_int_equal(dn__store_vpn_alloc_release(f->st, "vpn0", "p1", 6000), 0);
    assert_int_equal(dn__store_vpn_alloc_get(f->st, "vpn0", "p1", &ga), 0);
    assert_int_equal(ga->released_ms, 5000); /* the first release counts */
    free(ga);
    dn_store_vpn_alloc d = {.vpn = "vpn0", .peer_id = "p4", .addr_v4 = "10.42.0.2"};
    assert_int_equal(dn__store_vpn_alloc_put(f->st, &d), 0);
    /* p1 coming back active on its old address would now collide. */
    a.addr_v6 = NULL;
    assert_int_equal(dn__store_vpn_alloc_put(f->st, &a), DN_EEXIST);
    names n = {0};
    assert_int_equal(dn__store_vpn_alloc_list(f->st, "vpn0", false, collect_alloc, &n), 0);
    assert_int_equal(n.n, 3);
    assert_string_equal(n.items[0], "p1=10.42.0.2:1");
    assert_string_equal(n.items[1], "p2=10.42.0.3:0");
    assert_string_equal(n.items[2], "p4=10.42.0.2:0");
    n.n = 0;
    assert_int_equal(dn__store_vpn_alloc_list(f->st, "vpn0", true, collect_alloc, &n), 0);
    assert_int_equal(n.n, 2);
    assert_int_equal(dn__store_vpn_alloc_delete(f->st, "vpn0", "p1"), 0);
    assert_int_equal(dn__store_vpn_alloc_delete(f->st, "vpn0", "p1"), DN_ENOTFOUND);
    assert_int_equal(dn__store_vpn_alloc_release(f->st, "vpn0", "zz", 0), DN_ENOTFOUND);

    /* Deleting the VPN takes its allocations along. */
    assert_int_equal(dn__store_vpn_delete(f->st, "vpn0"), 0);
    assert_int_equal(dn__store_vpn_delete(f->st, "vpn0"), DN_ENOTFOUND);
    assert_int_equal(dn__store_vpn_alloc_get(f->st, "vpn0", "p2", &ga), DN_ENOTFOUND);
}

/* ---- transactions ---- */

static void test_transactions(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    assert_int_equal(dn__store_commit(f->st), DN_ESTATE);
    assert_int_equal(dn__store_begin(f->st), 0);
    assert_int_equal(dn__store_begin(f->st), DN_ESTATE);
    assert_int_equal(dn__store_setting_set(f->st, "a", "1"), 0);
    assert_int_equal(dn__store_setting_set(f->st, "b", "2"), 0);
    dn__store_rollback(f->st);
    char *v;
    assert_int_equal(dn__store_setting_get(f->st, "a", &v), DN_ENOTFOUND);

    assert_int_equal(dn__store_begin(f->st), 0);
    assert_int_equal(dn__store_setting_set(f->st, "a", "1"), 0);
    /* A failing call undoes only itself. */
    dn_store_swarm_member m = {.swarm = "none", .peer_id = "p"};
    assert_int_equal(dn__store_swarm_member_put(f->st, &m), DN_ENOTFOUND);
    assert_int_equal(dn__store_setting_set(f->st, "b", "2"), 0);
    assert_int_equal(dn__store_commit(f->st), 0);
    reopen(f);
    assert_int_equal(dn__store_setting_get(f->st, "a", &v), 0);
    free(v);
    assert_int_equal(dn__store_setting_get(f->st, "b", &v), 0);
    free(v);

    /* Closing with a transaction open discards it. */
    assert_int_equal(dn__store_begin(f->st), 0);
    assert_int_equal(dn__store_setting_set(f->st, "c", "3"), 0);
    reopen(f);
    assert_int_equal(dn__store_setting_get(f->st, "c", &v), DN_ENOTFOUND);
}

static void test_waits_for_other_writer(void **state)
{
    fixture *f = *state;
    f->st = open_ok(f);
    /* Another process (the sqlite3 shell, say) holds the write lock for
     * 300 ms: the store's write waits for it (busy timeout) and succeeds,
     * instead of failing at once with SQLITE_BUSY. */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *db; /* its own connection, opened after fork */
        if (sqlite3_open(f->db, &db) != SQLITE_OK ||
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        usleep(300 * 1000);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(dn__store_setting_set(f->st, "x", "1"), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    close(ready[1]);
    long waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(waited_ms >= 100); /* it did wait for the lock */
}

int main(void)
{
    /* A umask that would leave files group/world readable: the store's
     * 0600 must not depend on the caller's umask. */
    umask(022);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modes_tightened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_is_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_each_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_is_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_in_wal_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junk_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_page_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_fs_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swarms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vpn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_for_other_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
