/* dmsnet dht put|get|findpeer|provide|findprovs|table: clients of the
 * daemon's /v0/dht/ endpoints (docs/api.md). Human output escapes what
 * peers supplied (addresses); `get` writes the value's bytes as they are
 * (like `dmsnet request`), --json prints the API's answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_api.h"
#include "dmsnet/peerid.h"

#define DHT_VALUE_MAX 65536

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet dht put <key> <value>       [--json] [--data-dir DIR]\n"
               "       dmsnet dht get <key>               [--json] [--data-dir DIR]\n"
               "       dmsnet dht findpeer <peer id>      [--json] [--data-dir DIR]\n"
               "       dmsnet dht provide <cid>           [--json] [--data-dir DIR]\n"
               "       dmsnet dht findprovs <cid>         [--json] [--data-dir DIR]\n"
               "       dmsnet dht table                   [--json] [--data-dir DIR]\n\n"
               "The daemon's Kademlia DHT (<prefix>/kad/1.0.0, see --dht-prefix).\n"
               "put: store a record with the closest peers. A key /dmsnet/<peer id>/<name>\n"
               "     is writable only by that peer (the daemon signs it with its identity:\n"
               "     /dmsnet/<its own peer id>/<name>); /pk/<peer id> takes the public key\n"
               "     that hashes to it. <value> is the text itself, @FILE or - (stdin), at\n"
               "     most 64 KiB.\n"
               "get: print the best record's value (its bytes, as they are).\n"
               "findpeer: print the peer's addresses, one per line.\n"
               "provide: announce that the daemon provides <cid> (CIDv0 Qm... or CIDv1 b...).\n"
               "findprovs: print the providers of <cid>, one peer id per line.\n"
               "table: the routing table: bucket, peer id, age, stale.\n"
               "Not found: a message on stderr, exit 1.\n\n"
               "options:\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

static int done_json(const cli_client *c, json_t *r)
{
    int rc = cli_print_json(r);
    json_decref(r);
    (void)c;
    return rc;
}

static int cmd_put(cli_client *c, char **args)
{
    json_t *value = cli_read_data(c, args[1], DHT_VALUE_MAX);
    if (!value)
        return 1;
    json_t *body = json_pack("{s:s, s:o}", "key", args[0], "value", value), *r;
    if (!body) {
        dn_cli_error(c->cmd, "the key is not valid UTF-8");
        return 2;
    }
    int rc = cli_call(c, "POST", "/v0/dht/put", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json)
        return done_json(c, r);
    printf("stored ");
    cli_put_escaped(stdout, args[0]);
    printf(" with %lld peers\n", (long long)json_integer_value(json_object_get(r, "stored")));
    json_decref(r);
    return fflush(stdout) != 0;
}

static int cmd_get(cli_client *c, char **args)
{
    json_t *body = json_pack("{s:s}", "key", args[0]), *r;
    if (!body) {
        dn_cli_error(c->cmd, "the key is not valid UTF-8");
        return 2;
    }
    int rc = cli_call(c, "POST", "/v0/dht/get", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json)
        return done_json(c, r);
    rc = cli_put_b64(cli_jstr(r, "value", NULL)) || fflush(stdout);
    json_decref(r);
    return rc;
}

static void print_addrs(json_t *arr, const char *indent)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        fputs(indent, stdout);
        cli_put_escaped(stdout, json_string_value(v));
        putchar('\n');
    }
}

static int cmd_findpeer(cli_client *c, char **args)
{
    dn_peerid id;
    if (dn_peerid_parse(args[0], &id)) {
        dn_cli_error(c->cmd, "'%s' is not a peer id", args[0]);
        return 2;
    }
    json_t *body = json_pack("{s:s}", "peer", args[0]), *r;
    int rc = cli_call(c, "POST", "/v0/dht/findpeer", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json)
        return done_json(c, r);
    print_addrs(json_object_get(r, "addrs"), "");
    if (json_array_size(json_object_get(r, "addrs")) == 0)
        fprintf(stderr, "found, but with no addresses\n");
    json_decref(r);
    return fflush(stdout) != 0;
}

static int cmd_provide(cli_client *c, char **args, bool find)
{
    json_t *body = json_pack("{s:s}", "cid", args[0]), *r;
    if (!body) {
        dn_cli_error(c->cmd, "the CID is not valid UTF-8");
        return 2;
    }
    int rc = cli_call(c, "POST", find ? "/v0/dht/findprovs" : "/v0/dht/provide", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json)
        return done_json(c, r);
    if (find) {
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(r, "providers"), i, p)
            printf("%s\n", cli_jstr(p, "peer_id", "?"));
    } else {
        printf("providing ");
        cli_put_escaped(stdout, args[0]);
        printf(" (announced to %lld peers)\n",
               (long long)json_integer_value(json_object_get(r, "stored")));
    }
    json_decref(r);
    return fflush(stdout) != 0;
}

static void human_age(long long ms, char *out, size_t outlen)
{
    long long s = ms / 1000;
    if (s < 120)
        snprintf(out, outlen, "%llds", s);
    else if (s < 7200)
        snprintf(out, outlen, "%lldm", s / 60);
    else if (s < 172800)
        snprintf(out, outlen, "%lldh", s / 3600);
    else
        snprintf(out, outlen, "%lldd", s / 86400);
}

static int cmd_table(cli_client *c)
{
    json_t *r;
    int rc = cli_call(c, "GET", "/v0/dht/table", NULL, &r);
    if (rc >= 0)
        return rc;
    if (c->json)
        return done_json(c, r);
    json_t *peers = json_object_get(r, "peers");
    printf("%s, mode %s (%s), %zu peers\n", cli_jstr(r, "protocol", "?"), cli_jstr(r, "mode", "?"),
           json_is_true(json_object_get(r, "serving")) ? "serving" : "not serving",
           json_array_size(peers));
    if (json_array_size(peers))
        printf("%-6s  %-52s  %-6s  %s\n", "bucket", "peer id", "age", "stale");
    size_t i;
    json_t *p;
    json_array_foreach(peers, i, p)
    {
        char age[32];
        human_age((long long)json_integer_value(json_object_get(p, "age_ms")), age, sizeof age);
        printf("%-6lld  %-52s  %-6s  %s\n",
               (long long)json_integer_value(json_object_get(p, "bucket")),
               cli_jstr(p, "peer_id", "?"), age,
               json_is_true(json_object_get(p, "stale")) ? "yes" : "no");
    }
    json_decref(r);
    return fflush(stdout) != 0;
}

int dn_cmd_dht(int argc, char **argv)
{
    static const struct {
        const char *name;
        int nargs;
    } subs[] = {{"put", 2},     {"get", 1},       {"findpeer", 1},
                {"provide", 1}, {"findprovs", 1}, {"table", 0}};
    cli_client c = {.cmd = "dht"};
    if (argc < 2) {
        dn_cli_error(c.cmd, "expected put, get, findpeer, provide, findprovs or table");
        cli_hint(&c);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    int which = -1;
    for (int i = 0; i < (int)(sizeof subs / sizeof subs[0]); i++)
        if (!strcmp(argv[1], subs[i].name))
            which = i;
    if (which < 0) {
        dn_cli_error(c.cmd, "unknown subcommand '%s'", argv[1]);
        cli_hint(&c);
        return 2;
    }
    int rc = cli_parse(&c, argc - 1, argv + 1, usage, 0);
    if (rc >= 0)
        return rc;
    c.argi++; /* cli_parse saw argv + 1 */
    if (argc - c.argi != subs[which].nargs) {
        static const char *const forms[] = {"put <key> <value>",  "get <key>",
                                            "findpeer <peer id>", "provide <cid>",
                                            "findprovs <cid>",    "table"};
        dn_cli_error(c.cmd, "expected: dht %s", forms[which]);
        cli_hint(&c);
        return 2;
    }
    char **args = argv + c.argi;
    switch (which) {
    case 0: return cmd_put(&c, args);
    case 1: return cmd_get(&c, args);
    case 2: return cmd_findpeer(&c, args);
    case 3: return cmd_provide(&c, args, false);
    case 4: return cmd_provide(&c, args, true);
    default: return cmd_table(&c);
    }
}
