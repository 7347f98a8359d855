/* Observed addresses and the NAT type (src/node/natobs.c): the activation
 * threshold, observer groups (/16, /56), cone and symmetric verdicts, only
 * outbound reports telling the NAT type, expiry after the connection
 * closes, and fixed memory whatever peers report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "node/natobs.h"

#define LOCAL "/ip4/192.168.1.2/tcp/4001"

static dn_multiaddr ma(const char *s)
{
    dn_multiaddr m;
    if (dn_multiaddr_parse(s, &m) != 0)
        fail_msg("bad multiaddr in test: %s", s);
    return m;
}

static dn__natobs *new_obs(const dn__natobs_params *p)
{
    dn__natobs *o = dn__natobs_new(p);
    assert_non_null(o);
    dn_multiaddr l[2] = {ma("/ip4/0.0.0.0/tcp/4001"), ma("/ip6/::/tcp/4001")};
    dn__natobs_set_listen(o, l, 2, 0);
    return o;
}

/* Observer number i in its own /16: 10.<i>.0.1 (i < 256), port varies. */
static dn_multiaddr observer(unsigned i)
{
    char s[64];
    snprintf(s, sizeof s, "/ip4/%u.%u.0.1/tcp/%u", 10 + i / 256, i % 256, 4001 + i);
    return ma(s);
}

static int rec(dn__natobs *o, uint64_t conn, const dn_multiaddr *obs, const char *local,
               const char *observed, bool outbound, uint64_t now)
{
    dn_multiaddr l = ma(local), x = ma(observed);
    return dn__natobs_record(o, conn, obs, &l, &x, outbound, now);
}

static size_t confirmed_has(dn__natobs *o, const char *addr)
{
    dn_multiaddr out[DN__NATOBS_MAX_CONFIRMED];
    size_t n = dn__natobs_confirmed(o, out, DN__NATOBS_MAX_CONFIRMED);
    dn_multiaddr want = ma(addr);
    for (size_t i = 0; i < n && i < DN__NATOBS_MAX_CONFIRMED; i++)
        if (out[i].len == want.len && memcmp(out[i].bytes, want.bytes, want.len) == 0)
            return 1;
    return 0;
}

static size_t nconfirmed(dn__natobs *o)
{
    dn_multiaddr out[1];
    return dn__natobs_confirmed(o, out, 0);
}

static void test_threshold(void **state)
{
    (void)state;
    dn__natobs *o = new_obs(NULL);
    for (unsigned i = 0; i < 3; i++) {
        dn_multiaddr ob = observer(i);
        assert_int_equal(rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 10), 0);
    }
    assert_int_equal(nconfirmed(o), 0);
    assert_int_equal(dn__natobs_take_changes(o), 0);
    /* The same connection saying it again is no new vote. */
    dn_multiaddr ob0 = observer(0);
    assert_int_equal(rec(o, 0, &ob0, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 11), 0);
    assert_int_equal(nconfirmed(o), 0);
    /* The fourth observer activates it (observed may carry /p2p: the thin
     * waist is what counts). */
    dn_multiaddr ob3 = observer(3);
    assert_int_equal(
        rec(o, 3, &ob3, LOCAL,
            "/ip4/203.0.113.5/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
            true, 12),
        0);
    assert_int_equal(nconfirmed(o), 1);
    assert_true(confirmed_has(o, "/ip4/203.0.113.5/tcp/4001"));
    assert_int_equal(dn__natobs_take_changes(o), DN__NATOBS_ADDRS_CHANGED);
    assert_int_equal(dn__natobs_take_changes(o), 0);
    /* Four reports say nothing about the NAT yet (9 needed). */
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_UNKNOWN);
    dn__natobs_free(o);

    /* The threshold is a parameter. */
    dn__natobs_params p = {.activation_thresh = 2};
    o = new_obs(&p);
    dn_multiaddr a = observer(1), b = observer(2);
    assert_int_equal(rec(o, 1, &a, LOCAL, "/ip4/203.0.113.5/tcp/4001", false, 0), 0);
    assert_int_equal(nconfirmed(o), 0);
    assert_int_equal(rec(o, 2, &b, LOCAL, "/ip4/203.0.113.5/tcp/4001", false, 0), 0);
    assert_int_equal(nconfirmed(o), 1);
    dn__natobs_free(o);
}

static void test_grouping(void **state)
{
    (void)state;
    dn__natobs *o = new_obs(NULL);
    /* Fourteen hosts of 10.7.0.0/16, each on its own connection: one vote. */
    for (unsigned i = 0; i < 14; i++) {
        char s[64];
        snprintf(s, sizeof s, "/ip4/10.7.%u.%u/tcp/5000", i, 200 - i);
        dn_multiaddr ob = ma(s);
        assert_int_equal(rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0), 0);
    }
    assert_int_equal(nconfirmed(o), 0);
    /* They fill their group's share but count once for the NAT as well. */
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_UNKNOWN);
    /* Three other networks make four. */
    for (unsigned i = 1; i <= 3; i++) {
        dn_multiaddr ob = observer(100 + i);
        assert_int_equal(rec(o, 1000 + i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0), 0);
    }
    assert_int_equal(nconfirmed(o), 1);
    dn__natobs_free(o);

    /* IPv6 observers in one /56 are one; a different /56 is another. */
    o = new_obs(NULL);
    const char *v6local = "/ip6/2001:db8:1::2/tcp/4001";
    const char *v6obs = "/ip6/2001:db8:ffff::1/tcp/4001";
    for (unsigned i = 0; i < 8; i++) {
        char s[80];
        /* 2001:db8:aa00:00xx:: all share 2001:db8:aa00::/56 */
        snprintf(s, sizeof s, "/ip6/2001:db8:aa00:%x::%x/tcp/1", i, i + 1);
        dn_multiaddr ob = ma(s);
        assert_int_equal(rec(o, i, &ob, v6local, v6obs, true, 0), 0);
    }
    assert_int_equal(nconfirmed(o), 0);
    for (unsigned i = 1; i <= 3; i++) {
        char s[80];
        snprintf(s, sizeof s, "/ip6/2001:db8:aa00:%x00::1/tcp/1", i); /* other /56s */
        dn_multiaddr ob = ma(s);
        assert_int_equal(rec(o, 100 + i, &ob, v6local, v6obs, true, 0), 0);
    }
    assert_int_equal(nconfirmed(o), 1);
    assert_true(confirmed_has(o, v6obs));
    dn__natobs_free(o);

    /* With /32 groups (go-libp2p's IPv4 rule) each host votes. */
    dn__natobs_params p = {.v4_group_bits = 32};
    o = new_obs(&p);
    for (unsigned i = 0; i < 4; i++) {
        char s[64];
        snprintf(s, sizeof s, "/ip4/10.7.0.%u/tcp/5000", i + 1);
        dn_multiaddr ob = ma(s);
        assert_int_equal(rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0), 0);
    }
    assert_int_equal(nconfirmed(o), 1);
    dn__natobs_free(o);
}

static void test_cone(void **state)
{
    (void)state;
    dn__natobs *o = new_obs(NULL);
    for (unsigned i = 0; i < 8; i++) {
        dn_multiaddr ob = observer(i);
        assert_int_equal(rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0), 0);
    }
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_UNKNOWN);
    dn__natobs_take_changes(o);
    dn_multiaddr ob = observer(8);
    assert_int_equal(rec(o, 8, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0), 0);
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_CONE);
    assert_int_equal(dn__natobs_take_changes(o), DN__NATOBS_NAT_CHANGED);
    /* A few odd mappings (a second public IP, a peer lying) do not tip it. */
    for (unsigned i = 9; i < 13; i++) {
        dn_multiaddr x = observer(i);
        char s[64];
        snprintf(s, sizeof s, "/ip4/198.51.100.%u/tcp/%u", i, 30000 + i);
        assert_int_equal(rec(o, i, &x, LOCAL, s, true, 0), 0);
    }
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_CONE);
    assert_int_equal(dn__natobs_take_changes(o), 0);
    dn__natobs_free(o);
}

static void test_symmetric(void **state)
{
    (void)state;
    dn__natobs *o = new_obs(NULL);
    /* A new external port for each destination. */
    for (unsigned i = 0; i < 10; i++) {
        dn_multiaddr ob = observer(i);
        char s[64];
        snprintf(s, sizeof s, "/ip4/203.0.113.5/tcp/%u", 40000 + 7 * i);
        assert_int_equal(rec(o, i, &ob, LOCAL, s, true, 0), 0);
    }
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_SYMMETRIC);
    assert_int_equal(nconfirmed(o), 0);
    assert_int_equal(dn__natobs_take_changes(o), DN__NATOBS_NAT_CHANGED);
    dn__natobs_free(o);

    /* Just past half on the top three: still symmetric at 3 of 7... */
    o = new_obs(&(dn__natobs_params){.nat_min_observations = 7});
    for (unsigned i = 0; i < 7; i++) {
        dn_multiaddr ob = observer(i);
        char s[64];
        snprintf(s, sizeof s, "/ip4/203.0.113.5/tcp/%u", 40000 + i);
        assert_int_equal(rec(o, i, &ob, LOCAL, s, true, 0), 0);
    }
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_SYMMETRIC);
    /* ...and cone once two connections more see port 40000: the top three
     * cover 3 + 1 + 1 of 7. */
    for (unsigned i = 1; i < 3; i++) {
        dn_multiaddr ob = observer(i);
        assert_int_equal(rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/40000", true, 0), 0);
    }
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_CONE);
    dn__natobs_free(o);
}

/* Inbound reports confirm addresses but do not tell the NAT type. */
static void test_inbound(void **state)
{
    (void)state;
    dn__natobs *o = new_obs(NULL);
    for (unsigned i = 0; i < 12; i++) {
        dn_multiaddr ob = observer(i);
        assert_int_equal(rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", false, 0), 0);
    }
    assert_int_equal(nconfirmed(o), 1);
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_UNKNOWN);
    dn__natobs_free(o);
}

/* At most max_per_local confirmed addresses per local address, the most
 * observed first. */
static void test_top_per_local(void **state)
{
    (void)state;
    dn__natobs *o = new_obs(NULL);
    unsigned conn = 0;
    for (unsigned a = 0; a < 5; a++) {
        char s[64];
        snprintf(s, sizeof s, "/ip4/203.0.113.%u/tcp/4001", a + 1);
        for (unsigned k = 0; k < 4 + a; k++) {
            dn_multiaddr ob = observer(conn);
            assert_int_equal(rec(o, conn, &ob, LOCAL, s, false, 0), 0);
            conn++;
        }
    }
    assert_int_equal(nconfirmed(o), 3);
    assert_true(confirmed_has(o, "/ip4/203.0.113.5/tcp/4001"));
    assert_true(confirmed_has(o, "/ip4/203.0.113.4/tcp/4001"));
    assert_true(confirmed_has(o, "/ip4/203.0.113.3/tcp/4001"));
    assert_false(confirmed_has(o, "/ip4/203.0.113.1/tcp/4001"));
    /* Another local address has its own three. */
    for (unsigned k = 0; k < 4; k++) {
        dn_multiaddr ob = observer(100 + k);
        assert_int_equal(rec(o, 100 + k, &ob, "/ip4/192.168.7.2/tcp/4001",
                             "/ip4/203.0.113.1/tcp/4001", false, 0),
                         0);
    }
    assert_int_equal(nconfirmed(o), 4);
    dn__natobs_free(o);
}

static void test_expiry_and_replace(void **state)
{
    (void)state;
    dn__natobs_params p = {.ttl_ms = 1000};
    dn__natobs *o = new_obs(&p);
    for (unsigned i = 0; i < 4; i++) {
        dn_multiaddr ob = observer(i);
        assert_int_equal(rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 100), 0);
    }
    assert_int_equal(nconfirmed(o), 1);
    dn__natobs_take_changes(o);
    /* Open connections never expire. */
    dn__natobs_tick(o, 1000000);
    assert_int_equal(nconfirmed(o), 1);
    /* A closed one lingers for ttl_ms. */
    dn__natobs_forget(o, 2, 1000000);
    dn__natobs_tick(o, 1000999);
    assert_int_equal(nconfirmed(o), 1);
    assert_int_equal(dn__natobs_count(o), 4);
    dn__natobs_tick(o, 1001000);
    assert_int_equal(dn__natobs_count(o), 3);
    assert_int_equal(nconfirmed(o), 0);
    assert_int_equal(dn__natobs_take_changes(o), DN__NATOBS_ADDRS_CHANGED);
    /* Forgetting an unknown connection is harmless. */
    dn__natobs_forget(o, 777, 1001000);
    assert_int_equal(dn__natobs_count(o), 3);

    /* An identify push on connection 0 moves its vote. */
    dn_multiaddr ob3 = observer(3);
    dn_multiaddr ob4 = observer(4);
    assert_int_equal(rec(o, 4, &ob4, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 1001000), 0);
    assert_int_equal(nconfirmed(o), 1);
    assert_int_equal(rec(o, 3, &ob3, LOCAL, "/ip4/203.0.113.9/tcp/4001", true, 1001000), 0);
    assert_int_equal(nconfirmed(o), 0);
    assert_int_equal(dn__natobs_count(o), 4);

    /* Listen addresses going away drop their reports. */
    dn_multiaddr other = ma("/ip4/0.0.0.0/tcp/5555");
    dn__natobs_set_listen(o, &other, 1, 1001000);
    assert_int_equal(dn__natobs_count(o), 0);
    dn__natobs_free(o);
}

static void test_not_listen(void **state)
{
    (void)state;
    dn__natobs *o = dn__natobs_new(NULL);
    assert_non_null(o);
    dn_multiaddr ob = observer(1);
    /* No listen address yet: nothing counts. */
    assert_int_equal(rec(o, 1, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0), DN_ENOTFOUND);
    dn_multiaddr l = ma("/ip4/192.168.1.2/tcp/4001");
    dn__natobs_set_listen(o, &l, 1, 0);
    /* An ephemeral source port (a dial without port reuse). */
    assert_int_equal(
        rec(o, 1, &ob, "/ip4/192.168.1.2/tcp/51234", "/ip4/203.0.113.5/tcp/51234", true, 0),
        DN_ENOTFOUND);
    /* Another local IP than the one listened on. */
    assert_int_equal(
        rec(o, 1, &ob, "/ip4/192.168.9.9/tcp/4001", "/ip4/203.0.113.5/tcp/4001", true, 0),
        DN_ENOTFOUND);
    assert_int_equal(rec(o, 1, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0), 0);
    assert_int_equal(dn__natobs_count(o), 1);
    dn__natobs_free(o);
}

static void test_bounds(void **state)
{
    (void)state;
    dn__natobs_params p = {.max_observations = 32, .max_per_group = 4};
    dn__natobs *o = new_obs(&p);
    /* One network opening many connections holds four reports. */
    unsigned refused = 0;
    for (unsigned i = 0; i < 100; i++) {
        char s[64];
        snprintf(s, sizeof s, "/ip4/10.9.%u.1/tcp/1", i);
        dn_multiaddr ob = ma(s);
        int rc = rec(o, i, &ob, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0);
        assert_true(rc == 0 || rc == DN_ELIMIT);
        refused += rc == DN_ELIMIT;
    }
    assert_int_equal(dn__natobs_count(o), 4);
    assert_int_equal(refused, 96);
    /* Many networks fill the table and no more. */
    for (unsigned i = 0; i < 1000; i++) {
        dn_multiaddr ob = observer(i % 250);
        char s[64];
        snprintf(s, sizeof s, "/ip4/203.0.%u.%u/tcp/%u", i / 250, i % 250 + 1, 1 + i);
        int rc = rec(o, 1000 + i, &ob, LOCAL, s, true, 0);
        assert_true(rc == 0 || rc == DN_ELIMIT);
        assert_true(dn__natobs_count(o) <= 32);
    }
    assert_int_equal(dn__natobs_count(o), 32);
    /* A closed connection's report makes room for a new one. */
    dn__natobs_forget(o, 1000, 5);
    dn_multiaddr ob = observer(251);
    assert_int_equal(rec(o, 5000, &ob, LOCAL, "/ip4/203.0.113.77/tcp/4001", true, 6), 0);
    assert_int_equal(dn__natobs_count(o), 32);
    dn_multiaddr ob2 = observer(252);
    assert_int_equal(rec(o, 5001, &ob2, LOCAL, "/ip4/203.0.113.77/tcp/4001", true, 6), DN_ELIMIT);
    /* Confirmed addresses stay bounded too. */
    assert_true(nconfirmed(o) <= DN__NATOBS_MAX_CONFIRMED);
    dn__natobs_free(o);
}

static void test_garbage(void **state)
{
    (void)state;
    dn__natobs *o = new_obs(NULL);
    dn_multiaddr ob = observer(1);
    static const struct {
        const char *observed;
        int want;
    } bad[] = {
        {"/ip4/127.0.0.1/tcp/4001", DN_EINVAL},
        {"/ip4/0.0.0.0/tcp/4001", DN_EINVAL},
        {"/ip4/224.0.0.1/tcp/4001", DN_EINVAL},
        {"/ip4/255.255.255.255/tcp/4001", DN_EINVAL},
        {"/ip4/169.254.1.1/tcp/4001", DN_EINVAL},
        {"/ip4/203.0.113.5/tcp/0", DN_EINVAL},
        {"/ip4/203.0.113.5/udp/4001", DN_EINVAL}, /* not the connection's transport */
        {"/ip6/2001:db8::1/tcp/4001", DN_EINVAL}, /* nor its family */
        {"/ip6/::1/tcp/4001", DN_EINVAL},
        {"/ip6/fe80::1/tcp/4001", DN_EINVAL},
        {"/ip6/64:ff9b::cb00:7105/tcp/4001", DN_EINVAL},
        {"/ip6/::ffff:203.0.113.5/tcp/4001", DN_EINVAL},
        {"/dns4/example.com/tcp/4001", DN_EUNSUPPORTED},
        {"/ip4/203.0.113.5", DN_EUNSUPPORTED},
        {"/ip4/203.0.113.5/ws", DN_EUNSUPPORTED},
        {"/ip4/203.0.113.5/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/"
         "p2p-circuit",
         DN_EUNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = rec(o, i, &ob, LOCAL, bad[i].observed, true, 0);
        if (rc != bad[i].want)
            fail_msg("%s: got %d, want %d", bad[i].observed, rc, bad[i].want);
    }
    /* An observer that is no IP address, and a local one that is none. */
    dn_multiaddr dns = ma("/dns4/example.com/tcp/1");
    assert_int_equal(rec(o, 50, &dns, LOCAL, "/ip4/203.0.113.5/tcp/4001", true, 0),
                     DN_EUNSUPPORTED);
    assert_int_equal(
        rec(o, 50, &ob, "/dns4/example.com/tcp/4001", "/ip4/203.0.113.5/tcp/4001", true, 0),
        DN_EUNSUPPORTED);
    /* Random bytes, and lengths that lie. */
    srand(7);
    for (unsigned i = 0; i < 20000; i++) {
        dn_multiaddr x = {.len = (size_t)(rand() % 40)};
        for (size_t k = 0; k < x.len; k++)
            x.bytes[k] = (uint8_t)rand();
        if (i % 3 == 0 && x.len > 0)
            x.bytes[0] = DN_MA_IP4; /* get past the first varint more often */
        dn_multiaddr l = ma(LOCAL);
        int rc = dn__natobs_record(o, 100 + i, &ob, &l, &x, true, 0);
        if (rc == 0)
            assert_true(dn__natobs_count(o) <= 16); /* its group's share at most */
    }
    dn_multiaddr huge = {.len = DN_MULTIADDR_MAX + 5};
    dn_multiaddr l = ma(LOCAL);
    assert_int_equal(dn__natobs_record(o, 99999, &ob, &l, &huge, true, 0), DN_EUNSUPPORTED);
    assert_int_equal(dn__natobs_record(o, 99999, &huge, &l, &l, true, 0), DN_EUNSUPPORTED);
    assert_true(dn__natobs_count(o) <= 16);
    assert_int_equal(dn__natobs_nat_type(o), DN_NAT_UNKNOWN);
    dn__natobs_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_grouping),
        cmocka_unit_test(test_cone),
        cmocka_unit_test(test_symmetric),
        cmocka_unit_test(test_inbound),
        cmocka_unit_test(test_top_per_local),
        cmocka_unit_test(test_expiry_and_replace),
        cmocka_unit_test(test_not_listen),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
