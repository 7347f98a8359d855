/* The node configuration (src/node/config.c): defaults, config.json, flag
 * overrides, the messages for bad values, and what files are refused.
 * Each test writes its files in its own mkdtemp directory, removed in the
 * teardown (also when an assertion failed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "node/config.h"

#define PEER "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"

typedef struct fx {
    char dir[64];
    char path[128];
    char fifo[128];
    dn__node_config cfg;
    char err[512];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/dn_config_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/config.json", f->dir);
    snprintf(f->fifo, sizeof f->fifo, "%s/fifo", f->dir);
    if (dn__node_config_defaults(&f->cfg)) {
        rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    unlink(f->path);
    unlink(f->fifo);
    rmdir(f->dir);
    dn__node_config_free(&f->cfg);
    free(f);
    return 0;
}

static void write_file(const fx *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Load text as config.json; expect failure with a message containing want. */
static void expect_file_error(fx *f, const char *text, const char *want)
{
    write_file(f, text);
    f->err[0] = 0;
    int rc = dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err);
    if (rc >= 0 || !strstr(f->err, want))
        fail_msg("file %s: rc %d, message \"%s\", wanted \"%s\"", text, rc, f->err, want);
}

static void test_defaults(void **state)
{
    fx *f = *state;
    dn__node_config *c = &f->cfg;
    assert_int_equal(c->listen.n, 2);
    assert_string_equal(c->listen.v[0], "/ip4/0.0.0.0/tcp/9000");
    assert_string_equal(c->listen.v[1], "/ip6/::/tcp/9000");
    assert_null(c->identity);
    assert_null(c->data_dir);
    assert_string_equal(c->channel.name, "dmsnet");
    assert_string_equal(c->channel.dht_prefix, "/dmsnet");
    assert_int_equal(c->dht.mode, DN__NODE_DHT_AUTO);
    char err[256];
    assert_int_equal(dn__node_config_set(c, "dht.mode", "client", err, sizeof err), 0);
    assert_int_equal(c->dht.mode, DN__NODE_DHT_CLIENT);
    assert_int_equal(dn__node_config_set(c, "dht.mode", "server", err, sizeof err), 0);
    assert_int_equal(c->dht.mode, DN__NODE_DHT_SERVER);
    assert_int_equal(dn__node_config_set(c, "dht.mode", "auto", err, sizeof err), 0);
    assert_int_equal(c->channel.bootstrap.n, 0);
    assert_int_equal(c->limits.max_conns, 4096);
    assert_int_equal(c->limits.max_conns_per_peer, 8);
    assert_int_equal(c->limits.max_streams_per_peer, 4096);
    assert_int_equal(c->limits.max_handshakes_per_ip, 64);
    assert_null(c->api.listen);
    assert_false(c->api.allow_remote);
    assert_int_equal(c->log, DN_LOG_INFO);
    assert_false(c->enable_perf);
    /* no file: fine, nothing changes */
    assert_int_equal(dn__node_config_load_file(c, f->path, f->err, sizeof f->err), 0);
    assert_string_equal(c->channel.name, "dmsnet");
    assert_int_equal(dn__node_config_check(c, f->err, sizeof f->err), 0);
}

static const char full[] =
    "{\"listen\": [\"/ip4/127.0.0.1/tcp/0\", \"/ip6/::1/tcp/4002\"],\n"
    " \"identity\": \"/var/lib/dmsnet/id.key\", \"data_dir\": \"/var/lib/dmsnet\",\n"
    " \"channel\": {\"name\": \"lab-net\", \"dht_prefix\": \"/lab\",\n"
    "   \"bootstrap\": [\"/ip4/10.0.0.1/tcp/4001/p2p/" PEER "\",\n"
    "                 \"/dns4/boot.example/tcp/4001/ipfs/" PEER "\"]},\n"
    " \"limits\": {\"max_conns\": 100, \"max_conns_per_peer\": 2,\n"
    "   \"max_streams_per_peer\": 50, \"max_handshakes_per_ip\": 5},\n"
    " \"api\": {\"listen\": \"/ip4/127.0.0.1/tcp/5001\", \"allow_remote\": false},\n"
    " \"log\": \"debug\", \"enable_perf\": true}\n";

static void test_full_file(void **state)
{
    fx *f = *state;
    dn__node_config *c = &f->cfg;
    write_file(f, full);
    int rc = dn__node_config_load_file(c, f->path, f->err, sizeof f->err);
    if (rc)
        fail_msg("load: %d %s", rc, f->err);
    assert_int_equal(c->listen.n, 2);
    assert_string_equal(c->listen.v[0], "/ip4/127.0.0.1/tcp/0");
    assert_string_equal(c->listen.v[1], "/ip6/::1/tcp/4002");
    assert_string_equal(c->identity, "/var/lib/dmsnet/id.key");
    assert_string_equal(c->data_dir, "/var/lib/dmsnet");
    assert_string_equal(c->channel.name, "lab-net");
    assert_string_equal(c->channel.dht_prefix, "/lab");
    assert_int_equal(c->channel.bootstrap.n, 2);
    assert_string_equal(c->channel.bootstrap.v[0], "/ip4/10.0.0.1/tcp/4001/p2p/" PEER);
    /* the legacy /ipfs spelling comes back canonical */
    assert_string_equal(c->channel.bootstrap.v[1], "/dns4/boot.example/tcp/4001/p2p/" PEER);
    assert_int_equal(c->limits.max_conns, 100);
    assert_int_equal(c->limits.max_conns_per_peer, 2);
    assert_int_equal(c->limits.max_streams_per_peer, 50);
    assert_int_equal(c->limits.max_handshakes_per_ip, 5);
    assert_string_equal(c->api.listen, "/ip4/127.0.0.1/tcp/5001");
    assert_false(c->api.allow_remote);
    assert_int_equal(c->log, DN_LOG_DEBUG);
    assert_true(c->enable_perf);
}

static void test_partial_file_keeps_defaults(void **state)
{
    fx *f = *state;
    write_file(f, "{\"limits\": {\"max_conns\": 7}}");
    assert_int_equal(dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err), 0);
    assert_int_equal(f->cfg.limits.max_conns, 7);
    assert_int_equal(f->cfg.limits.max_conns_per_peer, 8);
    assert_string_equal(f->cfg.channel.dht_prefix, "/dmsnet");
}

static void test_bad_values(void **state)
{
    fx *f = *state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"channel\": {\"bootstrap\": [\"/ip4/1.2.3.4/tcp/1/p2p/" PEER
         "\", \"/ip4/1.2.3.4/tcp/1\"]}}",
         "config.json: 'channel.bootstrap[1]': /ip4/1.2.3.4/tcp/1 has no /p2p/<peer id>"},
        {"{\"channel\": {\"bootstrap\": [\"/ip4/1.2.3.4/tcp/1/p2p/" PEER "/p2p-circuit\"]}}",
         "'channel.bootstrap[0]': /ip4/1.2.3.4/tcp/1/p2p/" PEER "/p2p-circuit has no /p2p/"},
        {"{\"listen\": [\"/ip4/1.2.3.4/tcp/99999\"]}",
         "'listen[0]': /ip4/1.2.3.4/tcp/99999 is not a valid multiaddr"},
        {"{\"listen\": [\"/ip4/1.2.3.4/tcp/1\", \"/ip4/1.2.3.4/tcp/1\"]}",
         "'listen[1]': /ip4/1.2.3.4/tcp/1 is listed twice"},
        {"{\"listen\": [\"/ip4/1.2.3.4/tcp/1\", 5]}",
         "'listen[1]': expected a multiaddr string, got an integer"},
        {"{\"channel\": {\"dht_prefix\": \"dmsnet\"}}",
         "'channel.dht_prefix': \"dmsnet\" must start with '/'"},
        {"{\"channel\": {\"dht_prefix\": \"/dm snet\"}}",
         "'channel.dht_prefix': \"/dm snet\" has a space or control character at byte 3"},
        {"{\"channel\": {\"dht_prefix\": \"/a\\u0001\"}}",
         "'channel.dht_prefix': \"/a?\" has a space or control character at byte 2"},
        {"{\"channel\": {\"dht_prefix\": "
         "\"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
         "'channel.dht_prefix': 68 bytes, at most 64 allowed"},
        {"{\"channel\": {\"name\": \"\"}}",
         "'channel.name': a name of 1..64 bytes is needed, got 0"},
        {"{\"channel\": {\"name\": \"a/b\"}}",
         "'channel.name': \"a/b\" has a character outside [A-Za-z0-9._-] at byte 1"},
        {"{\"limits\": {\"max_conns\": 0}}", "'limits.max_conns': 0 is out of range 1..1000000"},
        {"{\"limits\": {\"max_conns_per_peer\": 5000}}",
         "'limits.max_conns_per_peer': 5000 is out of range 1..1024"},
        {"{\"limits\": {\"max_handshakes_per_ip\": -3}}",
         "'limits.max_handshakes_per_ip': -3 is out of range"},
        {"{\"api\": {\"listen\": \"/ip4/127.0.0.1/udp/5001\"}}",
         "'api.listen': /ip4/127.0.0.1/udp/5001 is not /ip4|ip6/<address>/tcp/<port>"},
        {"{\"api\": {\"listen\": \"/ip4/127.0.0.1/tcp/0/p2p/x\"}}", "'api.listen'"},
        {"{\"api\": {\"listen\": \"/ip4/10.1.2.3/tcp/5001\"}}",
         "config.json: 'api.listen': /ip4/10.1.2.3/tcp/5001 is not a loopback address"},
        {"{\"log\": \"loud\"}",
         "'log': \"loud\" is not one of trace, debug, info, warn, error, off"},
        {"{\"dht\": {\"mode\": \"Server\"}}",
         "'dht.mode': \"Server\" is not one of auto, server, client"},
        {"{\"dht\": {\"mode\": 1}}", "'dht.mode': an integer is not one of auto, server, client"},
        {"{\"dht\": {\"modes\": \"auto\"}}", "unknown key 'dht.modes'"},
        {"{\"identity\": \"\"}", "'identity': a path of 1..4096 bytes is needed, got 0"},
        {"{\"data_dir\": \"/a\\nb\"}", "'data_dir': control character at byte 2 of the path"},
        {"{\"identity\": \"/a\\u0000b\"}", "config.json: line 1 column 24: \\u0000 is not allowed"},
        {"{\"pubsub\": {\"router\": \"meshsub\"}}",
         "'pubsub.router': \"meshsub\" is not gossipsub or floodsub"},
        {"{\"pubsub\": {\"router\": true}}", "'pubsub.router': a boolean is not gossipsub"},
        {"{\"jobs\": {\"topic\": \"\"}}", "'jobs.topic': a topic of 1..512 bytes is needed, got 0"},
        {"{\"jobs\": {\"topic\": \"/a\\nb\"}}", "'jobs.topic': control character at byte 2"},
        {"{\"jobs\": {\"auto_bid\": 3}}", "'jobs.auto_bid': expected a string or null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_file_error(f, cases[i].text, cases[i].want);
    /* a refused file changes nothing, even the keys before the bad one */
    expect_file_error(f, "{\"log\": \"error\", \"limits\": {\"max_conns\": 0}}", "max_conns");
    assert_int_equal(f->cfg.log, DN_LOG_INFO);
    /* too many listen addresses */
    char big[2048] = "{\"listen\": [";
    for (int i = 0; i < 17; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"/ip4/1.2.3.4/tcp/%d\"",
                 i ? "," : "", 1000 + i);
    strcat(big, "]}");
    expect_file_error(f, big, "'listen': 17 entries, at most 16 allowed");
    /* a remote API is fine when asked for */
    write_file(f, "{\"api\": {\"listen\": \"/ip6/2001:db8::1/tcp/5001\", \"allow_remote\": true}}");
    assert_int_equal(dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err), 0);
    assert_string_equal(f->cfg.api.listen, "/ip6/2001:db8::1/tcp/5001");
    /* the pubsub and job keys, from the file and as flags */
    assert_false(f->cfg.pubsub.floodsub);
    assert_string_equal(f->cfg.jobs.topic, "/dmsnet/jobs/1.0.0");
    write_file(f, "{\"pubsub\": {\"router\": \"floodsub\"}, \"jobs\": {\"topic\": "
                  "\"/nunet/deployment\", \"auto_bid\": \"/tmp/bid\"}}");
    assert_int_equal(dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err), 0);
    assert_true(f->cfg.pubsub.floodsub);
    assert_string_equal(f->cfg.jobs.topic, "/nunet/deployment");
    assert_string_equal(f->cfg.jobs.auto_bid, "/tmp/bid");
    assert_int_equal(dn__node_config_set(&f->cfg, "pubsub.router", "gossipsub", f->err,
                                         sizeof f->err), 0);
    assert_false(f->cfg.pubsub.floodsub);
    assert_int_equal(dn__node_config_set(&f->cfg, "jobs.auto_bid", "", f->err, sizeof f->err), 0);
    assert_null(f->cfg.jobs.auto_bid);
    assert_true(dn__node_config_set(&f->cfg, "pubsub.router", "x", f->err, sizeof f->err) < 0);
}

static void test_unknown_keys_and_types(void **state)
{
    fx *f = *state;
    expect_file_error(f, "{\"limits\": {\"max_con\": 1}}",
                      "config.json: unknown key 'limits.max_con'");
    expect_file_error(f, "{\"listn\": []}", "config.json: unknown key 'listn'");
    expect_file_error(f, "{\"limits.max_conns\": 1}", "unknown key 'limits.max_conns'");
    expect_file_error(f, "{\"api\": {\"listen\": null, \"x\": {}}}", "unknown key 'api.x'");
    expect_file_error(f, "{\"limits\": 5}", "'limits': expected an object, got an integer");
    expect_file_error(f, "{\"limits\": {\"max_conns\": \"10\"}}",
                      "'limits.max_conns': expected an integer, got a string");
    expect_file_error(f, "{\"limits\": {\"max_conns\": 1.5}}",
                      "'limits.max_conns': expected an integer, got a number");
    expect_file_error(f, "{\"enable_perf\": 1}",
                      "'enable_perf': expected true or false, got an integer");
    expect_file_error(f, "{\"listen\": \"/ip4/1.2.3.4/tcp/1\"}",
                      "'listen': expected an array of multiaddr strings, got a string");
    expect_file_error(f, "{\"channel\": {\"name\": null}}",
                      "'channel.name': expected a string, got null");
    expect_file_error(f, "{\"identity\": 3}",
                      "'identity': expected a string or null, got an integer");
    expect_file_error(f, "{\"log\": 2}", "'log': an integer is not one of");
    expect_file_error(f, "[1, 2]", "the top level must be a JSON object, got an array");
    expect_file_error(f, "{\"log\": \"info\",}", "config.json: line 1");
    expect_file_error(f, "{\"log\": \"info\", \"log\": \"debug\"}", "duplicate");
    expect_file_error(f, "", "config.json: line");
}

static void test_overrides_win(void **state)
{
    fx *f = *state;
    dn__node_config *c = &f->cfg;
    write_file(f, full);
    assert_int_equal(dn__node_config_load_file(c, f->path, f->err, sizeof f->err), 0);
    assert_int_equal(dn__node_config_set(c, "limits.max_conns", "512", f->err, sizeof f->err), 0);
    assert_int_equal(dn__node_config_set(c, "log", "warn", f->err, sizeof f->err), 0);
    assert_int_equal(dn__node_config_set(c, "enable_perf", "false", f->err, sizeof f->err), 0);
    assert_int_equal(dn__node_config_set(c, "identity", "", f->err, sizeof f->err), 0);
    assert_int_equal(dn__node_config_set(c, "listen", "/ip4/127.0.0.1/tcp/7,/ip6/::/tcp/7", f->err,
                                         sizeof f->err),
                     0);
    assert_int_equal(dn__node_config_set(c, "channel.bootstrap", "", f->err, sizeof f->err), 0);
    /* flags in any order: the remote listen is checked once all are in */
    assert_int_equal(
        dn__node_config_set(c, "api.listen", "/ip4/0.0.0.0/tcp/5001", f->err, sizeof f->err), 0);
    assert_int_not_equal(dn__node_config_check(c, f->err, sizeof f->err), 0);
    assert_non_null(
        strstr(f->err, "'api.listen': /ip4/0.0.0.0/tcp/5001 is not a loopback address"));
    assert_int_equal(dn__node_config_set(c, "api.allow_remote", "true", f->err, sizeof f->err), 0);
    assert_int_equal(dn__node_config_check(c, f->err, sizeof f->err), 0);
    assert_int_equal(c->limits.max_conns, 512);
    assert_int_equal(c->limits.max_conns_per_peer, 2); /* from the file */
    assert_int_equal(c->log, DN_LOG_WARN);
    assert_false(c->enable_perf);
    assert_null(c->identity);
    assert_int_equal(c->listen.n, 2);
    assert_string_equal(c->listen.v[1], "/ip6/::/tcp/7");
    assert_int_equal(c->channel.bootstrap.n, 0);

    /* bad flags name the key and leave the value as it was */
    static const struct {
        const char *key, *value, *want;
    } bad[] = {
        {"limits.max_conns", "12x", "'limits.max_conns': \"12x\" is not a decimal integer"},
        {"limits.max_conns", "", "'limits.max_conns': \"\" is not a decimal integer"},
        {"limits.max_conns", "99999999999",
         "'limits.max_conns': 99999999999 is out of range 1..1000000"},
        {"enable_perf", "yes", "'enable_perf': \"yes\" is neither true nor false"},
        {"log", "verbose", "'log': \"verbose\" is not one of"},
        {"listen", "/ip4/1.2.3.4/tcp/1,", "'listen[1]':  is not a valid multiaddr"},
        {"channel.bootstrap", "/ip4/1.2.3.4/tcp/1",
         "'channel.bootstrap[0]': /ip4/1.2.3.4/tcp/1 has no /p2p/<peer id>"},
        {"channel.dht_prefix", "x", "'channel.dht_prefix': \"x\" must start with '/'"},
        {"dht.mode", "servers", "'dht.mode': \"servers\" is not one of auto, server, client"},
        {"limits.max_con", "1", "unknown key 'limits.max_con'"},
        {"limits", "1", "unknown key 'limits'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->err[0] = 0;
        int rc = dn__node_config_set(c, bad[i].key, bad[i].value, f->err, sizeof f->err);
        if (rc >= 0 || !strstr(f->err, bad[i].want))
            fail_msg("set %s=%s: rc %d \"%s\", wanted \"%s\"", bad[i].key, bad[i].value, rc, f->err,
                     bad[i].want);
    }
    assert_int_equal(c->limits.max_conns, 512);
    assert_int_equal(c->listen.n, 2);
    assert_int_equal(c->log, DN_LOG_WARN);
}

static void test_json_round_trip(void **state)
{
    fx *f = *state;
    write_file(f, full);
    assert_int_equal(dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err), 0);
    json_t *a = dn__node_config_to_json(&f->cfg);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "log")), "debug");
    char *text = json_dumps(a, JSON_SORT_KEYS);
    assert_non_null(text);
    /* into a fresh default configuration: every key comes from the JSON */
    write_file(f, text);
    dn__node_config fresh;
    assert_int_equal(dn__node_config_defaults(&fresh), 0);
    int rc = dn__node_config_load_file(&fresh, f->path, f->err, sizeof f->err);
    json_t *b = rc == 0 ? dn__node_config_to_json(&fresh) : NULL;
    dn__node_config_free(&fresh);
    if (rc)
        fail_msg("reload: %s", f->err);
    assert_true(json_equal(a, b));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(b, "limits"), "max_conns")),
                     100);
    free(text);
    json_decref(a);
    json_decref(b);

    /* the defaults round-trip too (nulls included) */
    dn__node_config d;
    assert_int_equal(dn__node_config_defaults(&d), 0);
    a = dn__node_config_to_json(&d);
    dn__node_config_free(&d);
    assert_true(json_is_null(json_object_get(a, "identity")));
    assert_true(json_is_null(json_object_get(json_object_get(a, "api"), "listen")));
    text = json_dumps(a, 0);
    write_file(f, text);
    free(text);
    assert_int_equal(dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err), 0);
    b = dn__node_config_to_json(&f->cfg);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
}

static void test_refused_files(void **state)
{
    fx *f = *state;
    /* a directory */
    int rc = dn__node_config_load_file(&f->cfg, f->dir, f->err, sizeof f->err);
    assert_true(rc < 0);
    assert_non_null(strstr(f->err, "not a regular file"));
    /* a FIFO: refused without waiting for a writer */
    assert_int_equal(mkfifo(f->fifo, 0600), 0);
    rc = dn__node_config_load_file(&f->cfg, f->fifo, f->err, sizeof f->err);
    assert_true(rc < 0);
    assert_non_null(strstr(f->err, "not a regular file"));
    /* just over 1 MiB of valid JSON (whitespace) */
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs("{\"log\": \"debug\"", fp);
    for (int i = 0; i < DN__NODE_CONFIG_MAX_FILE; i++)
        fputc(' ', fp);
    fputs("}", fp);
    assert_int_equal(fclose(fp), 0);
    rc = dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err);
    assert_int_equal(rc, DN_ETOOBIG);
    assert_non_null(strstr(f->err, "larger than the 1048576"));
    assert_int_equal(f->cfg.log, DN_LOG_INFO);
    /* exactly at the bound is fine */
    assert_int_equal(truncate(f->path, DN__NODE_CONFIG_MAX_FILE - 1), 0);
    fp = fopen(f->path, "a");
    assert_non_null(fp);
    fputs("}", fp);
    assert_int_equal(fclose(fp), 0);
    rc = dn__node_config_load_file(&f->cfg, f->path, f->err, sizeof f->err);
    if (rc)
        fail_msg("at the bound: %s", f->err);
    assert_int_equal(f->cfg.log, DN_LOG_DEBUG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_file_keeps_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides_win, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
