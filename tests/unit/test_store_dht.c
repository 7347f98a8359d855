/* The store's DHT tables (src/store/dht.c): the routing table is replaced
 * whole and comes back after a reopen with its addresses; provider records
 * refresh to the later expiry and expired ones are neither listed nor kept
 * by prune; value records are replaced by key and listed from a time;
 * oversized input is refused before anything is written. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "store/store.h"

typedef struct fixture {
    char dir[64];
    dn_store *st;
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static dn_store *open_ok(fixture *f)
{
    char err[600];
    dn_store *st = NULL;
    int rc = dn__store_open(f->dir, &st, err, sizeof err);
    if (rc)
        fail_msg("open: %s: %s", dn_strerror(rc), err);
    return st;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/dn-store-dht-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->st = open_ok(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    dn__store_close(f->st);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- collectors ---- */

typedef struct seen {
    char ids[8][64];
    size_t naddrs[8];
    char first_addr[8][64];
    int64_t times[8];
    uint8_t vals[8][16];
    size_t vlens[8];
    size_t n;
} seen;

static int on_peer(void *ud, const dn_store_dht_peer *p)
{
    seen *s = ud;
    if (s->n < 8) {
        snprintf(s->ids[s->n], 64, "%s", p->peer_id);
        s->naddrs[s->n] = p->n_addrs;
        snprintf(s->first_addr[s->n], 64, "%s", p->n_addrs ? p->addrs[0] : "");
    }
    s->n++;
    return 0;
}

static int on_provider(void *ud, const uint8_t *key, size_t keylen, const char *prov,
                       int64_t expires)
{
    seen *s = ud;
    if (s->n < 8) {
        snprintf(s->ids[s->n], 64, "%.*s:%s", (int)keylen, (const char *)key, prov);
        s->times[s->n] = expires;
    }
    s->n++;
    return 0;
}

static int on_record(void *ud, const uint8_t *key, size_t keylen, const uint8_t *v, size_t vlen,
                     int64_t received)
{
    seen *s = ud;
    if (s->n < 8) {
        snprintf(s->ids[s->n], 64, "%.*s", (int)keylen, (const char *)key);
        s->times[s->n] = received;
        s->vlens[s->n] = vlen;
        memcpy(s->vals[s->n], v, vlen < 16 ? vlen : 16);
    }
    s->n++;
    return 0;
}

/* ---- tests ---- */

static void test_table_replaced_and_restored(void **state)
{
    fixture *f = *state;
    const char *a1[] = {"/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.1/tcp/2"};
    const char *many[20];
    char text[20][32];
    for (int i = 0; i < 20; i++) {
        snprintf(text[i], sizeof text[i], "/ip4/10.0.1.%d/tcp/1", i);
        many[i] = text[i];
    }
    dn_store_dht_peer t1[] = {{"peerA", a1, 2}, {"peerB", NULL, 0}, {"peerC", many, 20}};
    assert_int_equal(dn__store_dht_table_set(f->st, t1, 3), 0);
    seen s = {0};
    assert_int_equal(dn__store_dht_table_list(f->st, on_peer, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "peerA");
    assert_int_equal(s.naddrs[0], 2);
    assert_string_equal(s.first_addr[0], "/ip4/10.0.0.1/tcp/1");
    assert_string_equal(s.ids[1], "peerB");
    assert_int_equal(s.naddrs[1], 0);
    assert_int_equal(s.naddrs[2], DN_STORE_DHT_PEER_ADDRS_MAX); /* the first 16 */

    /* A new table replaces the old one whole; it survives a reopen. */
    dn_store_dht_peer t2[] = {{"peerD", a1 + 1, 1}};
    assert_int_equal(dn__store_dht_table_set(f->st, t2, 1), 0);
    dn__store_close(f->st);
    f->st = open_ok(f);
    memset(&s, 0, sizeof s);
    assert_int_equal(dn__store_dht_table_list(f->st, on_peer, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "peerD");
    assert_string_equal(s.first_addr[0], "/ip4/10.0.0.1/tcp/2");

    /* Refused whole: a bad entry leaves the stored table as it was. */
    dn_store_dht_peer bad[] = {{"peerE", NULL, 0}, {"", NULL, 0}};
    assert_int_equal(dn__store_dht_table_set(f->st, bad, 2), DN_EINVAL);
    assert_int_equal(dn__store_dht_table_set(f->st, t2, DN_STORE_DHT_PEERS_MAX + 1), DN_ETOOBIG);
    memset(&s, 0, sizeof s);
    assert_int_equal(dn__store_dht_table_list(f->st, on_peer, &s), 0);
    assert_int_equal(s.n, 1);
    /* The empty table is a table. */
    assert_int_equal(dn__store_dht_table_set(f->st, NULL, 0), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(dn__store_dht_table_list(f->st, on_peer, &s), 0);
    assert_int_equal(s.n, 0);
}

static void test_providers_expire(void **state)
{
    fixture *f = *state;
    const uint8_t k1[] = "k1", k2[] = "k2";
    assert_int_equal(dn__store_dht_provider_put(f->st, k1, 2, "p1", 1000), 0);
    assert_int_equal(dn__store_dht_provider_put(f->st, k1, 2, "p2", 5000), 0);
    assert_int_equal(dn__store_dht_provider_put(f->st, k2, 2, "p1", 3000), 0);
    /* A refresh with an earlier expiry keeps the later one. */
    assert_int_equal(dn__store_dht_provider_put(f->st, k1, 2, "p2", 4000), 0);
    assert_int_equal(dn__store_dht_provider_put(f->st, k1, 2, "p1", 2000), 0);

    seen s = {0};
    assert_int_equal(dn__store_dht_provider_list(f->st, 1500, on_provider, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "k1:p1");
    assert_int_equal(s.times[0], 2000);
    assert_string_equal(s.ids[1], "k1:p2");
    assert_int_equal(s.times[1], 5000);
    /* Past their expiry they are not listed (the node restores none). */
    memset(&s, 0, sizeof s);
    assert_int_equal(dn__store_dht_provider_list(f->st, 3000, on_provider, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "k1:p2");

    assert_int_equal(dn__store_dht_provider_delete(f->st, k1, 2, "p2"), 0);
    assert_int_equal(dn__store_dht_provider_delete(f->st, k1, 2, "p2"), DN_ENOTFOUND);
    /* prune deletes what expired by now. */
    assert_int_equal(dn__store_dht_prune(f->st, 2500, 0), 1); /* k1:p1 */
    memset(&s, 0, sizeof s);
    assert_int_equal(dn__store_dht_provider_list(f->st, 0, on_provider, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "k2:p1");

    uint8_t big[DN_STORE_DHT_KEY_MAX + 1] = {0};
    assert_int_equal(dn__store_dht_provider_put(f->st, big, sizeof big, "p", 1), DN_ETOOBIG);
    assert_int_equal(dn__store_dht_provider_put(f->st, k1, 0, "p", 1), DN_EINVAL);
    assert_int_equal(dn__store_dht_provider_put(f->st, k1, 2, NULL, 1), DN_EINVAL);
}

static void test_records(void **state)
{
    fixture *f = *state;
    const uint8_t ka[] = "/pk/a", kb[] = "/pk/b";
    assert_int_equal(dn__store_dht_record_put(f->st, ka, 5, (const uint8_t *)"v1", 2, 100), 0);
    assert_int_equal(dn__store_dht_record_put(f->st, kb, 5, NULL, 0, 200), 0); /* empty value */
    assert_int_equal(dn__store_dht_record_put(f->st, ka, 5, (const uint8_t *)"v2!", 3, 300), 0);
    seen s = {0};
    assert_int_equal(dn__store_dht_record_list(f->st, 0, on_record, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "/pk/a");
    assert_int_equal(s.vlens[0], 3);
    assert_memory_equal(s.vals[0], "v2!", 3);
    assert_int_equal(s.times[0], 300);
    assert_int_equal(s.vlens[1], 0);
    /* Listed from a time: older ones have expired. */
    memset(&s, 0, sizeof s);
    assert_int_equal(dn__store_dht_record_list(f->st, 250, on_record, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(dn__store_dht_prune(f->st, 0, 250), 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(dn__store_dht_record_list(f->st, 0, on_record, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "/pk/a");

    static uint8_t big[DN_STORE_DHT_VALUE_MAX + 1];
    assert_int_equal(dn__store_dht_record_put(f->st, ka, 5, big, sizeof big, 1), DN_ETOOBIG);
    assert_int_equal(dn__store_dht_record_put(f->st, ka, 5, big, sizeof big - 1, 1), 0);
}

static void test_batched_in_one_transaction(void **state)
{
    fixture *f = *state;
    /* What the node does each tick: every write of the batch in one
     * transaction; a rollback leaves nothing of it. */
    assert_int_equal(dn__store_begin(f->st), 0);
    const char *a[] = {"/ip4/1.2.3.4/tcp/1"};
    dn_store_dht_peer t[] = {{"peerX", a, 1}};
    assert_int_equal(dn__store_dht_table_set(f->st, t, 1), 0);
    assert_int_equal(dn__store_dht_provider_put(f->st, (const uint8_t *)"k", 1, "p", 99), 0);
    dn__store_rollback(f->st);
    seen s = {0};
    assert_int_equal(dn__store_dht_table_list(f->st, on_peer, &s), 0);
    assert_int_equal(dn__store_dht_provider_list(f->st, 0, on_provider, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(dn__store_begin(f->st), 0);
    assert_int_equal(dn__store_dht_table_set(f->st, t, 1), 0);
    assert_int_equal(dn__store_dht_provider_put(f->st, (const uint8_t *)"k", 1, "p", 99), 0);
    assert_int_equal(dn__store_commit(f->st), 0);
    assert_int_equal(dn__store_dht_table_list(f->st, on_peer, &s), 0);
    assert_int_equal(dn__store_dht_provider_list(f->st, 0, on_provider, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(dn__store_integrity_check(f->st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table_replaced_and_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_providers_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_in_one_transaction, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
