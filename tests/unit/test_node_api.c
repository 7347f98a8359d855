/* The API's JSON form of the node's events (dn__node_event_json, node_api.c):
 * every type carries "type", "time" and its own fields with the stable names
 * `dmsnet events --json` prints (docs/api.md); peer-supplied text goes in as
 * is, and text that is not UTF-8 (which jansson refuses) goes in escaped
 * rather than being lost or breaking the document. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/multiaddr.h"
#include "dmsnet/peerid.h"
#include "node/node_internal.h"

#define PEER "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_connectedness(void **state)
{
    dn_peerid id;
    assert_int_equal(dn_peerid_parse(PEER, &id), 0);
    dn_network_event ev = {.type = DN_NET_EV_PEER_CONNECTEDNESS,
                           .time_ms = 1796169458634ull,
                           .peer = &id,
                           .connectedness = DN_CONNECTED};
    json_t *o = dn__node_event_json(&ev);
    assert_non_null(o);
    assert_string_equal(str(o, "type"), "peer_connectedness_changed");
    assert_int_equal(json_integer_value(json_object_get(o, "time")), 1796169458634ll);
    assert_string_equal(str(o, "peer"), PEER);
    assert_string_equal(str(o, "connectedness"), "connected");
    assert_int_equal(json_object_size(o), 4);
    json_decref(o);
    ev.connectedness = DN_NOT_CONNECTED;
    o = dn__node_event_json(&ev);
    assert_string_equal(str(o, "connectedness"), "not_connected");
    json_decref(o);
}

static void test_identified(void **state)
{
    dn_peerid id;
    dn_multiaddr ma[2];
    assert_int_equal(dn_peerid_parse(PEER, &id), 0);
    assert_int_equal(dn_multiaddr_parse("/ip4/127.0.0.1/tcp/4001", &ma[0]), 0);
    assert_int_equal(dn_multiaddr_parse("/ip6/::1/tcp/4001", &ma[1]), 0);
    const char *protos[] = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"};
    /* an ESC byte: valid UTF-8, kept as is (JSON escapes it as \u001b) */
    dn_network_event ev = {.type = DN_NET_EV_PEER_IDENTIFIED,
                           .time_ms = 5,
                           .peer = &id,
                           .addrs = ma,
                           .naddrs = 2,
                           .agent = "js/1.0 \x1b[31m",
                           .protocols = protos,
                           .nprotocols = 2};
    json_t *o = dn__node_event_json(&ev);
    assert_non_null(o);
    assert_string_equal(str(o, "type"), "peer_identification_completed");
    assert_string_equal(str(o, "agent"), "js/1.0 \x1b[31m");
    json_t *p = json_object_get(o, "protocols");
    assert_int_equal(json_array_size(p), 2);
    assert_string_equal(json_string_value(json_array_get(p, 1)), "/ipfs/ping/1.0.0");
    json_t *a = json_object_get(o, "addrs");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "/ip4/127.0.0.1/tcp/4001");
    assert_string_equal(json_string_value(json_array_get(a, 1)), "/ip6/::1/tcp/4001");
    char *text = json_dumps(o, JSON_COMPACT);
    assert_non_null(strcasestr(text, "\\u001b[31m"));
    free(text);
    json_decref(o);

    /* not UTF-8: escaped, the event still complete */
    ev.agent = "bad \xff\xfe agent";
    const char *bad_proto[] = {"/x/\xc3"};
    ev.protocols = bad_proto;
    ev.nprotocols = 1;
    o = dn__node_event_json(&ev);
    assert_non_null(o);
    assert_string_equal(str(o, "agent"), "bad \\xff\\xfe agent");
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "protocols"), 0)),
                        "/x/\\xc3");
    assert_string_equal(str(o, "peer"), PEER);
    json_decref(o);
}

static void test_local_events(void **state)
{
    dn_multiaddr ma;
    assert_int_equal(dn_multiaddr_parse("/ip4/10.0.0.1/tcp/9000", &ma), 0);
    dn_network_event ev = {
        .type = DN_NET_EV_LOCAL_ADDRS_UPDATED, .time_ms = 1, .addrs = &ma, .naddrs = 1};
    json_t *o = dn__node_event_json(&ev);
    assert_string_equal(str(o, "type"), "local_addresses_updated");
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "addrs"), 0)),
                        "/ip4/10.0.0.1/tcp/9000");
    assert_null(json_object_get(o, "peer"));
    json_decref(o);

    static const struct {
        dn_reachability r;
        const char *name;
    } reach[] = {{DN_REACHABILITY_UNKNOWN, "unknown"},
                 {DN_REACHABILITY_PUBLIC, "public"},
                 {DN_REACHABILITY_PRIVATE, "private"}};
    for (size_t i = 0; i < 3; i++) {
        dn_network_event r = {.type = DN_NET_EV_REACHABILITY_CHANGED, .reachability = reach[i].r};
        o = dn__node_event_json(&r);
        assert_string_equal(str(o, "type"), "local_reachability_changed");
        assert_string_equal(str(o, "reachability"), reach[i].name);
        json_decref(o);
    }
    static const struct {
        dn_nat_type t;
        const char *name;
    } nat[] = {{DN_NAT_UNKNOWN, "unknown"}, {DN_NAT_CONE, "cone"}, {DN_NAT_SYMMETRIC, "symmetric"}};
    for (size_t i = 0; i < 3; i++) {
        dn_network_event r = {.type = DN_NET_EV_NAT_TYPE_CHANGED, .nat_type = nat[i].t};
        o = dn__node_event_json(&r);
        assert_string_equal(str(o, "type"), "nat_device_type_changed");
        assert_string_equal(str(o, "nat_type"), nat[i].name);
        assert_int_equal(json_object_size(o), 3);
        json_decref(o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connectedness),
        cmocka_unit_test(test_identified),
        cmocka_unit_test(test_local_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
