/* Drives the store for tests/store/killnine.test.sh.
 *
 *   store_writer write DIR START   from row START on, write forever (bounded:
 *                                  1e6 rows): each transaction stores peer
 *                                  "p<n>" (with two addresses) and setting
 *                                  "k<n>" = {"n":<n>}, then prints "acked <n>"
 *                                  (flushed) once it has committed
 *   store_writer check DIR N       open the store (recovering its WAL), run
 *                                  integrity_check, and verify rows 1..N
 *                                  (and that the unacked row after them is
 *                                  not torn); exit 0 and print "ok"
 *
 * Odd rows use one explicit transaction (begin / two puts / commit), even
 * rows two single-call transactions; the row is acked after both. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "store/store.h"

static int fail(const char *what, int rc, dn_store *st)
{
    fprintf(stderr, "store_writer: %s: %s (%s)\n", what, dn_strerror(rc),
            st ? dn__store_errmsg(st) : "");
    return 1;
}

static int write_row(dn_store *st, long n)
{
    char id[32], a1[64], a2[64], key[32], val[48];
    snprintf(id, sizeof id, "p%ld", n);
    snprintf(a1, sizeof a1, "/ip4/127.0.0.1/tcp/%ld", 1000 + n % 60000);
    snprintf(a2, sizeof a2, "/ip6/::1/tcp/%ld", 1000 + n % 60000);
    snprintf(key, sizeof key, "k%ld", n);
    snprintf(val, sizeof val, "{\"n\":%ld}", n);
    const char *addrs[] = {a1, a2};
    uint8_t pk[36];
    memset(pk, (int)(n & 0xff), sizeof pk);
    dn_store_peer p = {.peer_id = id,
                       .pubkey = pk,
                       .pubkey_len = sizeof pk,
                       .agent = "store_writer",
                       .last_seen_ms = 1000000 + n,
                       .addrs = addrs,
                       .n_addrs = 2};
    int rc;
    bool txn = n % 2 == 1;
    if (txn && (rc = dn__store_begin(st)))
        return rc;
    if ((rc = dn__store_peer_put(st, &p, false)) || (rc = dn__store_setting_set(st, key, val))) {
        if (txn)
            dn__store_rollback(st);
        return rc;
    }
    return txn ? dn__store_commit(st) : 0;
}

static int check_row(dn_store *st, long n)
{
    char id[32], key[32], val[48];
    snprintf(id, sizeof id, "p%ld", n);
    snprintf(key, sizeof key, "k%ld", n);
    snprintf(val, sizeof val, "{\"n\":%ld}", n);
    dn_store_peer *p;
    int rc = dn__store_peer_get(st, id, &p);
    if (rc)
        return fail(id, rc, st);
    bool good = p->n_addrs == 2 && p->pubkey_len == 36 && p->pubkey[0] == (uint8_t)(n & 0xff) &&
                p->last_seen_ms == 1000000 + n;
    free(p);
    if (!good) {
        fprintf(stderr, "store_writer: peer %s has the wrong contents\n", id);
        return 1;
    }
    char *got;
    if ((rc = dn__store_setting_get(st, key, &got)))
        return fail(key, rc, st);
    good = strcmp(got, val) == 0;
    free(got);
    if (!good) {
        fprintf(stderr, "store_writer: setting %s has the wrong value\n", key);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "write") != 0 && strcmp(argv[1], "check") != 0)) {
        fprintf(stderr, "usage: store_writer write DIR START | check DIR N\n");
        return 2;
    }
    long arg = strtol(argv[3], NULL, 10);
    char err[600];
    dn_store *st;
    int rc = dn__store_open(argv[2], &st, err, sizeof err);
    if (rc) {
        fprintf(stderr, "store_writer: open: %s: %s\n", dn_strerror(rc), err);
        return 1;
    }
    /* Every acked row must stay: no forgetting old peers here. */
    dn__store_set_peer_limit(st, 100000000);
    int status = 0;
    if (argv[1][0] == 'w') {
        printf("opened\n");
        fflush(stdout);
        for (long n = arg; n < arg + 1000000; n++) {
            if ((rc = write_row(st, n))) {
                status = fail("write", rc, st);
                break;
            }
            printf("acked %ld\n", n);
            fflush(stdout);
        }
    } else {
        if ((rc = dn__store_integrity_check(st)))
            status = fail("integrity_check", rc, st);
        for (long n = 1; n <= arg && status == 0; n++)
            status = check_row(st, n);
        /* Past the last ack a commit may or may not have landed, but an
         * odd row's one transaction is all there or not at all. */
        for (long n = arg + 1; n <= arg + 2 && status == 0; n++) {
            if (n % 2 == 0)
                continue;
            char id[32], key[32], *v = NULL;
            dn_store_peer *p = NULL;
            snprintf(id, sizeof id, "p%ld", n);
            snprintf(key, sizeof key, "k%ld", n);
            bool has_peer = dn__store_peer_get(st, id, &p) == 0;
            bool has_setting = dn__store_setting_get(st, key, &v) == 0;
            free(p);
            free(v);
            if (has_peer != has_setting) {
                fprintf(stderr, "store_writer: row %ld is torn: peer %s, setting %s\n", n,
                        has_peer ? "present" : "absent", has_setting ? "present" : "absent");
                status = 1;
            }
        }
        if (status == 0)
            printf("ok %ld rows, %" PRId64 " peers stored\n", arg, dn__store_peer_count(st));
    }
    dn__store_close(st);
    return status;
}
