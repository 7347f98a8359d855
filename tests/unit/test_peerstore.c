/* The peerstore stays bounded: peers without connections are forgotten
 * past DN_PEERSTORE_MAX, connected peers never are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "host/peerstore.h"

static dn_peerid fake_id(uint32_t n)
{
    /* An identity multihash over 4 distinct bytes: enough to be unique. */
    dn_peerid id = {.len = 6};
    id.bytes[0] = 0x00;
    id.bytes[1] = 4;
    memcpy(id.bytes + 2, &n, 4);
    return id;
}

static void test_bounded(void **state)
{
    dn_peerstore ps;
    dn__peerstore_init(&ps);
    /* The first ten peers stay connected. */
    for (uint32_t i = 0; i < 10; i++) {
        dn_peerid id = fake_id(i);
        dn_peer_info *p = dn__peerstore_get(&ps, &id, true);
        assert_non_null(p);
        p->connections = 1;
    }
    for (uint32_t i = 10; i < DN_PEERSTORE_MAX + 500; i++) {
        dn_peerid id = fake_id(i);
        assert_non_null(dn__peerstore_get(&ps, &id, true));
        assert_true(ps.n <= DN_PEERSTORE_MAX);
    }
    assert_int_equal(ps.n, DN_PEERSTORE_MAX);
    for (uint32_t i = 0; i < 10; i++) {
        dn_peerid id = fake_id(i);
        dn_peer_info *p = dn__peerstore_get(&ps, &id, false);
        assert_non_null(p);
        assert_int_equal(p->connections, 1);
    }
    /* The newest entry is there; lookups without create never add. */
    dn_peerid last = fake_id(DN_PEERSTORE_MAX + 499), absent = fake_id(0xfffffff0u);
    assert_non_null(dn__peerstore_get(&ps, &last, false));
    assert_null(dn__peerstore_get(&ps, &absent, false));
    assert_int_equal(ps.n, DN_PEERSTORE_MAX);
    dn__peerstore_free(&ps);
}

static void test_strings(void **state)
{
    char **list = NULL;
    size_t n = 0;
    const char *const a[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"};
    assert_int_equal(dn__peer_set_strings(&list, &n, a, 2), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[1], "/ipfs/id/1.0.0");
    assert_int_equal(dn__peer_set_strings(&list, &n, a, 1), 0); /* replaces */
    assert_int_equal(n, 1);
    assert_string_equal(list[0], "/ipfs/ping/1.0.0");
    dn_peer_info p = {.protocols = list, .nprotocols = n};
    dn__peer_clear_lists(&p);
    assert_null(p.protocols);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
