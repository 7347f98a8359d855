/* The client commands: status, peers, connect, disconnect, events, config.
 *
 * Each is a thin client of the daemon's local API (docs/api.md) over the
 * unix socket <data-dir>/api.sock. The forms, flags and --json keys are
 * stable (issue 9, section 3): scripts call them exactly so. Human output
 * escapes every string a peer supplied (agent, protocols) so that a peer
 * cannot write control sequences to the user's terminal. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/cli_api.h"
#include "cli/cli_common.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "node/config.h"
#include "node/node_internal.h"
#include "store/store.h"

/* ---- status ---- */

static void status_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet status [--json] [--data-dir DIR]\n\n"
               "Show the running daemon's status: peer id, listen and observed addresses,\n"
               "reachability (AutoNAT), NAT type, network mode, connected peers, traffic\n"
               "and uptime. --json prints GET /v0/status as is (keys peer_id, listen_addrs,\n"
               "observed_addrs, reachability, nat_type, mode, network, peers, bytes_in,\n"
               "bytes_out, uptime_ms, agent_version).\n\noptions:\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

static void print_list(const char *label, json_t *arr)
{
    size_t i;
    json_t *v;
    printf("%-16s", label);
    if (json_array_size(arr) == 0)
        printf("(none)\n");
    json_array_foreach(arr, i, v)
    {
        if (i)
            printf("%-16s", "");
        cli_put_escaped(stdout, json_string_value(v));
        putchar('\n');
    }
}

static void human_bytes(uint64_t n, char *out, size_t outlen)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, outlen, "%llu B", (unsigned long long)n);
    else
        snprintf(out, outlen, "%.1f %s", v, units[u]);
}

int dn_cmd_status(int argc, char **argv)
{
    cli_client c = {.cmd = "status"};
    int rc = cli_parse(&c, argc, argv, status_usage, 0);
    if (rc >= 0 || (rc = cli_no_args(&c, argc, argv, status_usage)) >= 0)
        return rc;
    json_t *st;
    if ((rc = cli_call(&c, "GET", "/v0/status", NULL, &st)) >= 0)
        return rc;
    if (c.json) {
        rc = cli_print_json(st);
        json_decref(st);
        return rc;
    }
    printf("%-16s%s\n", "peer id", cli_jstr(st, "peer_id", "?"));
    printf("%-16s", "agent");
    cli_put_escaped(stdout, cli_jstr(st, "agent_version", ""));
    putchar('\n');
    const char *mode = cli_jstr(st, "mode", "?");
    printf("%-16s%s", "mode", mode);
    if (json_string_value(json_object_get(st, "network"))) {
        printf(" (%s ", !strcmp(mode, "private") ? "swarm" : "channel");
        cli_put_escaped(stdout, cli_jstr(st, "network", ""));
        printf(")");
    }
    putchar('\n');
    printf("%-16s%s\n", "reachability", cli_jstr(st, "reachability", "?"));
    printf("%-16s%s\n", "nat type", cli_jstr(st, "nat_type", "?"));
    json_int_t up = json_integer_value(json_object_get(st, "uptime_ms")) / 1000;
    printf("%-16s%lldh %02lldm %02llds\n", "uptime", (long long)(up / 3600),
           (long long)(up / 60 % 60), (long long)(up % 60));
    char in[32], out[32];
    human_bytes((uint64_t)json_integer_value(json_object_get(st, "bytes_in")), in, sizeof in);
    human_bytes((uint64_t)json_integer_value(json_object_get(st, "bytes_out")), out, sizeof out);
    printf("%-16sin %s, out %s\n", "traffic", in, out);
    print_list("listen addrs", json_object_get(st, "listen_addrs"));
    print_list("observed addrs", json_object_get(st, "observed_addrs"));
    printf("%-16s%zu connected ('dmsnet peers' lists them)\n", "peers",
           json_array_size(json_object_get(st, "peers")));
    json_decref(st);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- peers ---- */

static void peers_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet peers [--json] [--data-dir DIR]\n\n"
               "List the peers the daemon is connected to: peer id, direction of the\n"
               "oldest connection, last round-trip time, agent and addresses. --json\n"
               "prints GET /v0/peers: {\"peers\": [{\"peer_id\", \"addrs\", \"direction\",\n"
               "\"protocols\", \"agent\", \"rtt_ms\" (null until measured), ...}]}.\n\n"
               "options:\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

int dn_cmd_peers(int argc, char **argv)
{
    cli_client c = {.cmd = "peers"};
    int rc = cli_parse(&c, argc, argv, peers_usage, 0);
    if (rc >= 0 || (rc = cli_no_args(&c, argc, argv, peers_usage)) >= 0)
        return rc;
    json_t *r;
    if ((rc = cli_call(&c, "GET", "/v0/peers", NULL, &r)) >= 0)
        return rc;
    if (c.json) {
        rc = cli_print_json(r);
        json_decref(r);
        return rc;
    }
    json_t *peers = json_object_get(r, "peers");
    size_t n = json_array_size(peers);
    if (n == 0) {
        printf("no peers connected\n");
        json_decref(r);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    /* Column widths from the escaped text, so the table stays aligned
     * whatever a peer calls itself (long agents are cut). */
    enum { AGENT_MAX = 40 };
    char **agents = calloc(n, sizeof *agents);
    if (!agents) {
        json_decref(r);
        return 1;
    }
    size_t wid = strlen("PEER ID"), wagent = strlen("AGENT");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(peers, i);
        size_t l = strlen(cli_jstr(p, "peer_id", "?"));
        if (l > wid)
            wid = l;
        agents[i] = cli_escaped(cli_jstr(p, "agent", ""));
        if (agents[i] && strlen(agents[i]) > AGENT_MAX)
            strcpy(agents[i] + AGENT_MAX - 3, "...");
        if (agents[i] && strlen(agents[i]) > wagent)
            wagent = strlen(agents[i]);
    }
    printf("%-*s  %-9s  %9s  %-*s  %s\n", (int)wid, "PEER ID", "DIRECTION", "RTT", (int)wagent,
           "AGENT", "ADDRS");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(peers, i);
        char rtt[32] = "-";
        json_t *rv = json_object_get(p, "rtt_ms");
        if (json_is_number(rv))
            snprintf(rtt, sizeof rtt, "%.2f ms", json_number_value(rv));
        printf("%-*s  %-9s  %9s  %-*s  ", (int)wid, cli_jstr(p, "peer_id", "?"),
               cli_jstr(p, "direction", "?"), rtt, (int)wagent,
               agents[i] && *agents[i] ? agents[i] : "-");
        json_t *addrs = json_object_get(p, "addrs");
        size_t j;
        json_t *a;
        if (json_array_size(addrs) == 0)
            printf("-");
        json_array_foreach(addrs, j, a)
        {
            if (j)
                printf(", ");
            cli_put_escaped(stdout, json_string_value(a));
        }
        putchar('\n');
        free(agents[i]);
    }
    free(agents);
    json_decref(r);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- connect, disconnect ---- */

static void connect_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet connect [--json] [--data-dir DIR] <multiaddr | peer id>\n\n"
               "Ask the daemon to connect to a peer: a multiaddr (with or without a\n"
               "trailing /p2p/<peer id>) or a bare peer id (dialled at the addresses the\n"
               "daemon knows for it). Returns once the connection is up (prints\n"
               "'connected to <peer id>') or the dial failed (exit 1).\n\noptions:\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

static void disconnect_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet disconnect [--json] [--data-dir DIR] <peer id>\n\n"
               "Close every connection the daemon has to the peer. Not being connected\n"
               "to it is a failure (exit 1).\n\noptions:\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

static int one_arg(const cli_client *c, int argc, char **argv, void (*usage)(FILE *),
                   const char *what)
{
    if (argc - c->argi != 1) {
        if (argc - c->argi == 0)
            dn_cli_error(c->cmd, "missing %s", what);
        else
            dn_cli_error(c->cmd, "unexpected argument '%s'", argv[c->argi + 1]);
        cli_hint(c);
        return 2;
    }
    return -1;
}

/* POST {key: value} to path; print the reply (--json) or "<done> <peer id>". */
static int post_peer(cli_client *c, const char *path, const char *key, const char *value,
                     const char *done)
{
    json_t *body = json_pack("{s:s}", key, value), *r;
    if (!body)
        return 1;
    int rc = cli_call(c, "POST", path, body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json)
        rc = cli_print_json(r);
    else
        rc = printf("%s %s\n", done, cli_jstr(r, "peer_id", "?")) < 0 || fflush(stdout);
    json_decref(r);
    return rc;
}

int dn_cmd_connect(int argc, char **argv)
{
    cli_client c = {.cmd = "connect"};
    int rc = cli_parse(&c, argc, argv, connect_usage, 0);
    if (rc >= 0 || (rc = one_arg(&c, argc, argv, connect_usage, "multiaddr or peer id")) >= 0)
        return rc;
    const char *target = argv[c.argi];
    /* Refuse what cannot be an address here, with the parser's reason. */
    if (target[0] == '/') {
        dn_multiaddr ma;
        if (dn_cli_parse_multiaddr(c.cmd, target, &ma))
            return 2;
    } else {
        dn_peerid id;
        if (dn_peerid_parse(target, &id)) {
            dn_cli_error(c.cmd, "'%s' is neither a multiaddr nor a peer id", target);
            return 2;
        }
    }
    return post_peer(&c, "/v0/connect", "addr", target, "connected to");
}

int dn_cmd_disconnect(int argc, char **argv)
{
    cli_client c = {.cmd = "disconnect"};
    int rc = cli_parse(&c, argc, argv, disconnect_usage, 0);
    if (rc >= 0 || (rc = one_arg(&c, argc, argv, disconnect_usage, "peer id")) >= 0)
        return rc;
    const char *id = argv[c.argi];
    dn_peerid peer;
    if (dn_peerid_parse(id, &peer)) {
        dn_cli_error(c.cmd, "'%s' is not a peer id", id);
        return 2;
    }
    return post_peer(&c, "/v0/disconnect", "peer_id", id, "disconnected from");
}

/* ---- events ---- */

static void events_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet events [--json] [--types T1,T2] [--data-dir DIR]\n\n"
               "Follow the daemon's events, one line per event, until interrupted or the\n"
               "daemon stops. Types: local_addresses_updated, local_reachability_changed,\n"
               "peer_identification_completed, nat_device_type_changed,\n"
               "peer_connectedness_changed. --json prints each event as one JSON object per\n"
               "line (keys type, time (unix ms) and the event's fields: peer, connectedness,\n"
               "addrs, reachability, nat_type, agent, protocols).\n\n"
               "options:\n"
               "  --types LIST       only these event types (comma-separated)\n");
    fputs(cli_common_opts, f);
    fprintf(f, "\nExit status: 0 when the daemon ends the stream, 1 on failure (no daemon;\n"
               "the connection to the daemon was lost, as when it stops; or the stream\n"
               "was dropped because this client did not keep up), 2 usage.\n");
}

typedef struct ev_state {
    const cli_client *c;
    bool dropped;
    bool out_failed;
} ev_state;

static void print_time(uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%03uZ", buf, (unsigned)(ms % 1000));
}

static void print_str_list(json_t *arr)
{
    size_t i;
    json_t *v;
    if (json_array_size(arr) == 0)
        printf("(none)");
    json_array_foreach(arr, i, v)
    {
        if (i)
            printf(", ");
        cli_put_escaped(stdout, json_string_value(v));
    }
}

static int on_event_line(json_t *v, void *ud)
{
    ev_state *s = ud;
    const char *type = cli_jstr(v, "type", "");
    if (!strcmp(type, "dropped"))
        s->dropped = true;
    if (s->c->json) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        if (text) {
            puts(text);
            free(text);
        }
    } else if (!s->dropped) {
        print_time((uint64_t)json_integer_value(json_object_get(v, "time")));
        printf("  ");
        cli_put_escaped(stdout, type);
        const char *peer = json_string_value(json_object_get(v, "peer"));
        if (peer) {
            printf("  peer ");
            cli_put_escaped(stdout, peer);
        }
        if (!strcmp(type, "peer_connectedness_changed")) {
            printf("  %s", cli_jstr(v, "connectedness", "?"));
        } else if (!strcmp(type, "peer_identification_completed")) {
            printf("  agent '");
            cli_put_escaped(stdout, cli_jstr(v, "agent", ""));
            printf("'  %zu protocols  addrs ", json_array_size(json_object_get(v, "protocols")));
            print_str_list(json_object_get(v, "addrs"));
        } else if (!strcmp(type, "local_addresses_updated")) {
            printf("  addrs ");
            print_str_list(json_object_get(v, "addrs"));
        } else if (!strcmp(type, "local_reachability_changed")) {
            printf("  %s", cli_jstr(v, "reachability", "?"));
        } else if (!strcmp(type, "nat_device_type_changed")) {
            printf("  %s", cli_jstr(v, "nat_type", "?"));
        }
        putchar('\n');
    }
    if (s->dropped) {
        fprintf(stderr, "dmsnet events: ");
        cli_put_escaped(stderr, cli_jstr(v, "error", "the daemon dropped the stream"));
        fputc('\n', stderr);
        fflush(stdout);
        return 1;
    }
    /* A reader that went away (EPIPE: SIGPIPE is ignored) ends us. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        s->out_failed = true;
        return 1;
    }
    return 0;
}

int dn_cmd_events(int argc, char **argv)
{
    cli_client c = {.cmd = "events"};
    int rc = cli_parse(&c, argc, argv, events_usage, OPT_TYPES);
    if (rc >= 0 || (rc = cli_no_args(&c, argc, argv, events_usage)) >= 0)
        return rc;
    char path[512] = "/v0/events";
    if (c.types) {
        /* Names are [a-z_] and commas; anything else would need escaping
         * in the URL and is no type anyway. */
        for (const char *p = c.types; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || *p == '_' || *p == ',')) {
                dn_cli_error(c.cmd, "--types: '%s' is not a list of event types", c.types);
                return 2;
            }
        if (snprintf(path, sizeof path, "/v0/events?types=%s", c.types) >= (int)sizeof path) {
            dn_cli_error(c.cmd, "--types: list too long");
            return 2;
        }
    }
    dn_api_client cl = {.unix_path = c.sock};
    ev_state s = {.c = &c};
    long status = 0;
    json_t *reply = NULL;
    rc = dn__api_stream_call(&cl, path, on_event_line, &s, &status, &reply);
    if (rc) {
        if (dn__api_no_daemon(rc))
            cli_print_no_daemon(&c);
        else if (status == 200 && rc == DN_EIO)
            /* the stream had started: a daemon that stops (or dies) cuts it */
            dn_cli_error(c.cmd, "lost the connection to the daemon at %s (did it stop?)", c.sock);
        else
            dn_cli_error(c.cmd, "event stream from %s: %s", c.sock, dn_strerror(rc));
        return 1;
    }
    if (status != 200) {
        cli_print_api_error(&c, status, reply);
        json_decref(reply);
        return 1;
    }
    if (s.dropped || s.out_failed)
        return 1;
    fprintf(stderr, "dmsnet events: the daemon ended the event stream\n");
    return 0;
}

/* ---- config ---- */

static void config_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet config show [--json] [--data-dir DIR]\n"
               "       dmsnet config set [--json] [--data-dir DIR] <key> <value>\n\n"
               "show: the running daemon's effective configuration (GET /v0/config). When\n"
               "no daemon runs, the configuration a daemon started now would use (the\n"
               "defaults, DIR/config.json and what was set through the API, kept in\n"
               "DIR/dmsnet.db; not flags), with a note on stderr; exit 0.\n\n"
               "set: change one key on the running daemon (PUT /v0/config). The daemon\n"
               "keeps it across restarts (a command-line flag still wins over it) and\n"
               "says whether it took effect now or at the next start. The value is JSON\n"
               "when it is valid JSON for the key (512, true, null, [\"/ip4/...\"]), else\n"
               "the text form a flag takes (info, /ip4/1.2.3.4/tcp/1,/ip4/...). null\n"
               "removes the setting (back to config.json or the default).\n\n"
               "keys:");
    size_t col = 5;
    for (size_t i = 0; i < dn__node_config_key_count(); i++) {
        const char *k = dn__node_config_key_name(i);
        if (col + strlen(k) + 2 > 76) {
            fprintf(f, "\n     ");
            col = 5;
        }
        col += (size_t)fprintf(f, " %s%s", k, i + 1 < dn__node_config_key_count() ? "," : "");
    }
    fprintf(f, "\n\noptions:\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

/* "a.b" in {"a": {"b": v}} */
static json_t *lookup_dotted(json_t *cfg, const char *key)
{
    const char *dot = strchr(key, '.');
    if (!dot)
        return json_object_get(cfg, key);
    char group[32];
    snprintf(group, sizeof group, "%.*s", (int)(dot - key), key);
    return json_object_get(json_object_get(cfg, group), dot + 1);
}

static int print_config(const cli_client *c, json_t *cfg)
{
    if (c->json)
        return cli_print_json(cfg);
    for (size_t i = 0; i < dn__node_config_key_count(); i++) {
        const char *key = dn__node_config_key_name(i);
        json_t *v = lookup_dotted(cfg, key);
        printf("%-30s", key);
        if (!v) {
            printf("?\n");
            continue;
        }
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        cli_put_escaped(stdout, text ? text : "?");
        free(text);
        putchar('\n');
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* No daemon: defaults + DIR/config.json, as a daemon started now reads them. */
static int config_offline(const cli_client *c)
{
    char path[CLI_PATH_MAX + 16], err[512];
    snprintf(path, sizeof path, "%s/config.json", c->dir);
    dn__node_config cfg;
    if (dn__node_config_defaults(&cfg))
        return 1;
    if (dn__node_config_load_file(&cfg, path, err, sizeof err)) {
        dn_cli_error("config", "%s", err);
        dn__node_config_free(&cfg);
        return 1;
    }
    /* What was set through the API is kept in the store; read it only when
     * there is one (opening would create it). */
    char db[CLI_PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/" DN_STORE_FILENAME, c->dir);
    bool stored = access(db, F_OK) == 0;
    if (stored) {
        dn_store *st;
        int rc = dn__store_open(c->dir, &st, err, sizeof err);
        if (!rc) {
            rc = dn__node_config_apply_stored(&cfg, st, 0, err, sizeof err);
            dn__store_close(st);
        }
        if (rc) {
            dn_cli_error("config", "%s", err);
            dn__node_config_free(&cfg);
            return 1;
        }
    }
    json_t *j = dn__node_config_to_json(&cfg);
    dn__node_config_free(&cfg);
    if (!j)
        return 1;
    fprintf(stderr,
            "dmsnet config: no daemon running at %s; showing the configuration a daemon "
            "started now would use (defaults, %s%s; flags not included)\n",
            c->sock, path, stored ? ", settings kept in dmsnet.db" : "");
    int rc = print_config(c, j);
    json_decref(j);
    return rc;
}

static int config_show(cli_client *c, int argc, char **argv)
{
    if (c->argi < argc) {
        dn_cli_error(c->cmd, "unexpected argument '%s'", argv[c->argi]);
        cli_hint(c);
        return 2;
    }
    long status = 0;
    json_t *r = NULL;
    int rc = dn__api_call(c->sock, "GET", "/v0/config", NULL, &status, &r);
    if (rc && dn__api_no_daemon(rc))
        return config_offline(c);
    if (rc) {
        dn_cli_error(c->cmd, "cannot talk to the daemon at %s: %s", c->sock, dn_strerror(rc));
        return 1;
    }
    if (status != 200) {
        cli_print_api_error(c, status, r);
        json_decref(r);
        return 1;
    }
    rc = print_config(c, r);
    json_decref(r);
    return rc;
}

/* The JSON value to send for key: JSON if it is valid JSON the key takes
 * (or null), else the flag's text form turned into the file's value. */
static json_t *config_value(const char *key, const char *text, char *err, size_t errlen)
{
    dn__node_config tmp;
    if (dn__node_config_defaults(&tmp)) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_t *out = NULL;
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (j && (json_is_null(j) || dn__node_config_set_json(&tmp, key, j, err, errlen) == 0)) {
        out = j;
        j = NULL;
    } else if (j && (json_is_array(j) || json_is_object(j))) {
        /* meant as JSON (no text form starts with '[' or '{'): err says why */
    } else if (dn__node_config_set(&tmp, key, text, err, errlen) == 0) {
        json_t *all = dn__node_config_to_json(&tmp);
        out = json_incref(lookup_dotted(all, key));
        json_decref(all);
        if (!out)
            snprintf(err, errlen, "out of memory");
    }
    json_decref(j);
    dn__node_config_free(&tmp);
    return out;
}

static int config_set(cli_client *c, int argc, char **argv)
{
    if (argc - c->argi != 2) {
        dn_cli_error(c->cmd, argc - c->argi < 2 ? "expected <key> <value>"
                                                : "unexpected argument after <key> <value>");
        cli_hint(c);
        return 2;
    }
    const char *key = argv[c->argi], *text = argv[c->argi + 1];
    char err[512];
    if (dn__node_config_key_index(key) < 0) {
        dn_cli_error(c->cmd, "unknown key '%s' (see 'dmsnet config --help')", key);
        return 1;
    }
    json_t *v = config_value(key, text, err, sizeof err);
    if (!v) {
        dn_cli_error(c->cmd, "%s", err);
        return 1;
    }
    json_t *body = json_object(), *r;
    if (!body || json_object_set_new(body, key, v)) {
        json_decref(body);
        return 1;
    }
    int rc = cli_call(c, "PUT", "/v0/config", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json) {
        rc = cli_print_json(r);
    } else {
        bool now = json_array_size(json_object_get(r, "applied")) > 0;
        printf("%s: set; %s\n", key,
               now ? "in effect now" : "takes effect when the daemon next starts");
        rc = fflush(stdout) != 0;
    }
    json_decref(r);
    return rc;
}

int dn_cmd_config(int argc, char **argv)
{
    cli_client c = {.cmd = "config"};
    if (argc < 2) {
        dn_cli_error(c.cmd, "expected 'show' or 'set'");
        cli_hint(&c);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        config_usage(stdout);
        return 0;
    }
    bool show = !strcmp(argv[1], "show"), set = !strcmp(argv[1], "set");
    if (!show && !set) {
        dn_cli_error("config", "unknown subcommand '%s' (show or set)", argv[1]);
        cli_hint(&c);
        return 2;
    }
    int rc = cli_parse(&c, argc - 1, argv + 1, config_usage, 0);
    if (rc >= 0)
        return rc;
    /* client_parse saw argv + 1 */
    return show ? config_show(&c, argc - 1, argv + 1) : config_set(&c, argc - 1, argv + 1);
}

/* ---- messages: send, request, messages listen / reply ---- */

static void send_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet send <peer id> --type <protocol> <data> [--json] [--data-dir DIR]\n"
               "       dmsnet request <peer id> --type <protocol> <data> [--timeout S] [--json]\n"
               "                      [--data-dir DIR]\n\n"
               "send: one typed message to the peer through the daemon (dialled when not\n"
               "connected): the message type is the protocol id; on the wire one stream per\n"
               "message, an 8-byte little-endian length, then the payload (at most 1 MiB).\n"
               "request: the same, then print the peer's reply (raw bytes; --json: {\"reply\":\n"
               "base64}); --timeout S waits at most S seconds (default 30).\n"
               "<data> is the text itself, @FILE for a file's bytes, or - for standard input.\n\n"
               "options:\n"
               "  --type PROTOCOL    the message type, e.g. /dms/deployment/request/0.0.1\n"
               "  --timeout S        request only: seconds to wait for the reply\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

static int send_or_request(int argc, char **argv, bool request)
{
    cli_client c = {.cmd = request ? "request" : "send"};
    int rc = cli_parse(&c, argc, argv, send_usage, OPT_TYPE | (request ? OPT_TIMEOUT : 0));
    if (rc >= 0)
        return rc;
    if (argc - c.argi != 2 || !c.type) {
        dn_cli_error(c.cmd, "expected <peer id> --type <protocol> <data>");
        cli_hint(&c);
        return 2;
    }
    const char *peer = argv[c.argi];
    dn_peerid id;
    if (dn_peerid_parse(peer, &id)) {
        dn_cli_error(c.cmd, "'%s' is not a peer id", peer);
        return 2;
    }
    json_t *data = cli_read_data(&c, argv[c.argi + 1], CLI_MSG_DATA_MAX);
    if (!data)
        return 1;
    json_t *body = json_pack("{s:s, s:s, s:o}", "peer", peer, "type", c.type, "data", data), *r;
    if (!body)
        return 1;
    if (c.timeout_s)
        json_object_set_new(body, "timeout_ms", json_integer(c.timeout_s * 1000));
    rc = cli_call(&c, "POST", request ? "/v0/request" : "/v0/send", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c.json)
        rc = cli_print_json(r);
    else if (request)
        rc = cli_put_b64(cli_jstr(r, "reply", NULL)) || fflush(stdout);
    else
        rc = printf("sent to %s\n", peer) < 0 || fflush(stdout);
    json_decref(r);
    return rc;
}

int dn_cmd_send(int argc, char **argv)
{
    return send_or_request(argc, argv, false);
}
int dn_cmd_request(int argc, char **argv)
{
    return send_or_request(argc, argv, true);
}

static void messages_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet messages listen [--type <protocol>] [--json] [--data-dir DIR]\n"
               "       dmsnet messages reply <id> <data> [--json] [--data-dir DIR]\n\n"
               "listen: serve the message type (while listening) and print one line per\n"
               "message received: '<id> <from peer id> <type> <data>' (data escaped), or with\n"
               "--json one object per line: id, from, type, data (base64), time. Without\n"
               "--type: the messages of every type some listener serves.\n"
               "reply: answer message <id> (its sender waits in 'dmsnet request'); <data> is\n"
               "the text, @FILE or -. A message waits 60 s for a reply.\n\n"
               "options:\n"
               "  --type PROTOCOL    listen: the message type to serve\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

typedef struct msg_state {
    const cli_client *c;
    bool out_failed;
} msg_state;

static int on_message_line(json_t *v, void *ud)
{
    msg_state *s = ud;
    if (s->c->json) {
        char *text = json_dumps(v, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
    } else {
        json_t *idv = json_object_get(v, "id");
        if (!idv) { /* the server's last line when it drops a slow listener */
            fprintf(stderr, "dmsnet messages: ");
            cli_put_escaped(stderr, cli_jstr(v, "error", "the daemon dropped the stream"));
            fputc('\n', stderr);
            return 1;
        }
        printf("%lld %s ", (long long)json_integer_value(idv), cli_jstr(v, "from", "?"));
        cli_put_escaped(stdout, cli_jstr(v, "type", "?"));
        putchar(' ');
        const char *b64 = cli_jstr(v, "data", "");
        size_t n = strlen(b64);
        char *buf = malloc(n / 4 * 3 + 4);
        int k = buf ? dn_base64_decode(b64, n, (uint8_t *)buf, n / 4 * 3 + 3) : -1;
        if (k >= 0) {
            buf[k] = 0;
            /* Peer-supplied bytes: escaped, they cannot forge a line. */
            size_t need = dn_escape_text(buf, (size_t)k, NULL, 0) + 1;
            char *esc = malloc(need);
            if (esc) {
                dn_escape_text(buf, (size_t)k, esc, need);
                fputs(esc, stdout);
                free(esc);
            }
        }
        free(buf);
        putchar('\n');
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        s->out_failed = true;
        return 1;
    }
    return 0;
}

int dn_cmd_messages(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "listen") && strcmp(argv[1], "reply"))) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            messages_usage(stdout);
            return 0;
        }
        messages_usage(stderr);
        return 2;
    }
    bool listen = !strcmp(argv[1], "listen");
    cli_client c = {.cmd = "messages"};
    int rc = cli_parse(&c, argc - 1, argv + 1, messages_usage, listen ? OPT_TYPE : 0);
    if (rc >= 0)
        return rc;
    c.argi++; /* argv + 1 */
    if (listen) {
        if (argc - c.argi != 0) {
            dn_cli_error(c.cmd, "unexpected argument '%s'", argv[c.argi]);
            return 2;
        }
        char path[600] = "/v0/messages";
        if (c.type) {
            for (const char *p = c.type; *p; p++)
                if (*p <= ' ' || *p > '~' || *p == '&' || *p == '#' || *p == '%' || *p == '?') {
                    dn_cli_error(c.cmd, "--type: '%s' is not a protocol id", c.type);
                    return 2;
                }
            if (snprintf(path, sizeof path, "/v0/messages?type=%s", c.type) >= (int)sizeof path) {
                dn_cli_error(c.cmd, "--type: too long");
                return 2;
            }
        }
        dn_api_client cl = {.unix_path = c.sock};
        msg_state s = {.c = &c};
        long status = 0;
        json_t *reply = NULL;
        rc = dn__api_stream_call(&cl, path, on_message_line, &s, &status, &reply);
        if (rc) {
            if (dn__api_no_daemon(rc))
                cli_print_no_daemon(&c);
            else
                dn_cli_error(c.cmd, "message stream from %s: %s", c.sock, dn_strerror(rc));
            return 1;
        }
        if (status != 200) {
            cli_print_api_error(&c, status, reply);
            json_decref(reply);
            return 1;
        }
        return s.out_failed;
    }
    if (argc - c.argi != 2) {
        dn_cli_error(c.cmd, "expected: messages reply <id> <data>");
        return 2;
    }
    char *end;
    long long id = strtoll(argv[c.argi], &end, 10);
    if (*end || id < 1) {
        dn_cli_error(c.cmd, "'%s' is not a message id", argv[c.argi]);
        return 2;
    }
    json_t *data = cli_read_data(&c, argv[c.argi + 1], CLI_MSG_DATA_MAX);
    if (!data)
        return 1;
    json_t *body = json_pack("{s:I, s:o}", "id", (json_int_t)id, "data", data), *r;
    if (!body)
        return 1;
    rc = cli_call(&c, "POST", "/v0/messages/reply", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    rc = c.json ? cli_print_json(r)
                : (printf("replied to message %lld\n", id) < 0 || fflush(stdout));
    json_decref(r);
    return rc;
}
