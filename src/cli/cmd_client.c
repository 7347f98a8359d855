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
#include "cli/cli_common.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "node/config.h"
#include "node/node_internal.h"
#include "store/store.h"

#define PATH_MAX_ 4096

typedef struct client {
    const char *cmd; /* "status", "config show", ... for messages */
    char dir[PATH_MAX_];
    char sock[PATH_MAX_ + 16];
    bool json;
    const char *types; /* events --types */
    const char *type;  /* send, request, messages listen: --type */
    long timeout_s;    /* request --timeout (0: the daemon's default) */
    int argi;          /* first positional argument */
} client;

static const char common_opts[] =
    "  --data-dir DIR     the daemon's data directory (default $DMSNET_HOME,\n"
    "                     else ~/.dmsnet); its API socket is DIR/api.sock\n"
    "  --json             print one JSON document (events: one per line)\n"
    "  -h, --help         show this help\n";

static const char common_tail[] =
    "\nExit status: 0 success, 1 failure (also: no daemon running), 2 usage.\n";

/* Print text that may come from a peer (or holds such text), escaped. */
static void put_escaped(FILE *f, const char *s)
{
    if (!s)
        s = "";
    size_t len = strlen(s);
    size_t need = dn_escape_text(s, len, NULL, 0) + 1;
    char small[512];
    char *buf = need <= sizeof small ? small : malloc(need);
    if (!buf)
        return;
    dn_escape_text(s, len, buf, need);
    fputs(buf, f);
    if (buf != small)
        free(buf);
}

/* The escaped rendering as a malloc'd string (for width computations). */
static char *escaped(const char *s)
{
    if (!s)
        s = "";
    size_t len = strlen(s);
    size_t need = dn_escape_text(s, len, NULL, 0) + 1;
    char *buf = malloc(need);
    if (buf)
        dn_escape_text(s, len, buf, need);
    return buf;
}

/* After a usage error: where the truth is (the full text would bury the
 * one line that says what was wrong). */
static void hint(const client *c)
{
    fprintf(stderr, "see 'dmsnet %s --help'\n", c->cmd);
}

/* Parse the options every client command takes (plus --types for events).
 * Returns -1 to go on, else the exit code. */
/* Options beyond the common ones a command takes (client_parse's extra). */
#define OPT_TYPES 1u   /* --types (events) */
#define OPT_TYPE 2u    /* --type (messages) */
#define OPT_TIMEOUT 4u /* --timeout (request) */

static int client_parse(client *c, int argc, char **argv, void (*usage)(FILE *), unsigned extra)
{
    static const struct option opts[] = {{"data-dir", required_argument, NULL, 'd'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"types", required_argument, NULL, 't'},
                                         {"type", required_argument, NULL, 'T'},
                                         {"timeout", required_argument, NULL, 'O'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool events = extra & OPT_TYPES;
    const char *dir = NULL;
    int o;
    optind = 1;
    /* Options may follow the arguments; "--" ends them (a value "-1"). */
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'j': c->json = true; break;
        case 't':
            if (!events) {
                dn_cli_error(c->cmd, "unknown option '--types'");
                hint(c);
                return 2;
            }
            c->types = optarg;
            break;
        case 'T':
            if (!(extra & OPT_TYPE)) {
                dn_cli_error(c->cmd, "unknown option '--type'");
                hint(c);
                return 2;
            }
            c->type = optarg;
            break;
        case 'O': {
            char *end;
            c->timeout_s = strtol(optarg, &end, 10);
            if (!(extra & OPT_TIMEOUT) || *end || c->timeout_s < 1 || c->timeout_s > 600) {
                dn_cli_error(c->cmd, (extra & OPT_TIMEOUT) ? "--timeout: 1..600 seconds"
                                                          : "unknown option '--timeout'");
                hint(c);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: hint(c); return 2;
        }
    }
    c->argi = optind;
    if (dir) {
        if (snprintf(c->dir, sizeof c->dir, "%s", dir) >= (int)sizeof c->dir) {
            dn_cli_error(c->cmd, "--data-dir path too long");
            return 2;
        }
    } else if (dn_cli_default_data_dir(c->dir, sizeof c->dir)) {
        dn_cli_error(c->cmd, "no data directory: set --data-dir or $DMSNET_HOME");
        return 1;
    }
    snprintf(c->sock, sizeof c->sock, "%s/api.sock", c->dir);
    return -1;
}

static void print_no_daemon(const client *c)
{
    fprintf(stderr, "dmsnet %s: no daemon running at %s\n", c->cmd, c->sock);
}

/* The daemon's {"error": ...} (or the status line when there is none). */
static void print_api_error(const client *c, long status, json_t *reply)
{
    const char *msg = json_string_value(json_object_get(reply, "error"));
    fprintf(stderr, "dmsnet %s: ", c->cmd);
    if (msg)
        put_escaped(stderr, msg);
    else
        fprintf(stderr, "the daemon answered HTTP %ld", status);
    fputc('\n', stderr);
}

/* One call; on success *reply is the 2xx answer. Returns -1 on success,
 * else the exit code (the error printed). */
static int call(const client *c, const char *method, const char *path, const json_t *body,
                json_t **reply)
{
    long status = 0;
    *reply = NULL;
    int rc = dn__api_call(c->sock, method, path, body, &status, reply);
    if (rc) {
        if (dn__api_no_daemon(rc))
            print_no_daemon(c);
        else
            dn_cli_error(c->cmd, "cannot talk to the daemon at %s: %s", c->sock, dn_strerror(rc));
        return 1;
    }
    if (status < 200 || status > 299) {
        print_api_error(c, status, *reply);
        json_decref(*reply);
        *reply = NULL;
        return 1;
    }
    return -1;
}

static int print_json(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
    if (!text)
        return 1;
    puts(text);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int no_args(const client *c, int argc, char **argv, void (*usage)(FILE *))
{
    if (c->argi < argc) {
        dn_cli_error(c->cmd, "unexpected argument '%s'", argv[c->argi]);
        hint(c);
        return 2;
    }
    return -1;
}

/* ---- status ---- */

static void status_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet status [--json] [--data-dir DIR]\n\n"
               "Show the running daemon's status: peer id, listen and observed addresses,\n"
               "reachability (AutoNAT), NAT type, network mode, connected peers, traffic\n"
               "and uptime. --json prints GET /v0/status as is (keys peer_id, listen_addrs,\n"
               "observed_addrs, reachability, nat_type, mode, network, peers, bytes_in,\n"
               "bytes_out, uptime_ms, agent_version).\n\noptions:\n");
    fputs(common_opts, f);
    fputs(common_tail, f);
}

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
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
        put_escaped(stdout, json_string_value(v));
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
    client c = {.cmd = "status"};
    int rc = client_parse(&c, argc, argv, status_usage, 0);
    if (rc >= 0 || (rc = no_args(&c, argc, argv, status_usage)) >= 0)
        return rc;
    json_t *st;
    if ((rc = call(&c, "GET", "/v0/status", NULL, &st)) >= 0)
        return rc;
    if (c.json) {
        rc = print_json(st);
        json_decref(st);
        return rc;
    }
    printf("%-16s%s\n", "peer id", jstr(st, "peer_id", "?"));
    printf("%-16s", "agent");
    put_escaped(stdout, jstr(st, "agent_version", ""));
    putchar('\n');
    const char *mode = jstr(st, "mode", "?");
    printf("%-16s%s", "mode", mode);
    if (json_string_value(json_object_get(st, "network"))) {
        printf(" (%s ", !strcmp(mode, "private") ? "swarm" : "channel");
        put_escaped(stdout, jstr(st, "network", ""));
        printf(")");
    }
    putchar('\n');
    printf("%-16s%s\n", "reachability", jstr(st, "reachability", "?"));
    printf("%-16s%s\n", "nat type", jstr(st, "nat_type", "?"));
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
    fputs(common_opts, f);
    fputs(common_tail, f);
}

int dn_cmd_peers(int argc, char **argv)
{
    client c = {.cmd = "peers"};
    int rc = client_parse(&c, argc, argv, peers_usage, 0);
    if (rc >= 0 || (rc = no_args(&c, argc, argv, peers_usage)) >= 0)
        return rc;
    json_t *r;
    if ((rc = call(&c, "GET", "/v0/peers", NULL, &r)) >= 0)
        return rc;
    if (c.json) {
        rc = print_json(r);
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
        size_t l = strlen(jstr(p, "peer_id", "?"));
        if (l > wid)
            wid = l;
        agents[i] = escaped(jstr(p, "agent", ""));
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
        printf("%-*s  %-9s  %9s  %-*s  ", (int)wid, jstr(p, "peer_id", "?"),
               jstr(p, "direction", "?"), rtt, (int)wagent,
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
            put_escaped(stdout, json_string_value(a));
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
    fputs(common_opts, f);
    fputs(common_tail, f);
}

static void disconnect_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet disconnect [--json] [--data-dir DIR] <peer id>\n\n"
               "Close every connection the daemon has to the peer. Not being connected\n"
               "to it is a failure (exit 1).\n\noptions:\n");
    fputs(common_opts, f);
    fputs(common_tail, f);
}

static int one_arg(const client *c, int argc, char **argv, void (*usage)(FILE *), const char *what)
{
    if (argc - c->argi != 1) {
        if (argc - c->argi == 0)
            dn_cli_error(c->cmd, "missing %s", what);
        else
            dn_cli_error(c->cmd, "unexpected argument '%s'", argv[c->argi + 1]);
        hint(c);
        return 2;
    }
    return -1;
}

/* POST {key: value} to path; print the reply (--json) or "<done> <peer id>". */
static int post_peer(client *c, const char *path, const char *key, const char *value,
                     const char *done)
{
    json_t *body = json_pack("{s:s}", key, value), *r;
    if (!body)
        return 1;
    int rc = call(c, "POST", path, body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json)
        rc = print_json(r);
    else
        rc = printf("%s %s\n", done, jstr(r, "peer_id", "?")) < 0 || fflush(stdout);
    json_decref(r);
    return rc;
}

int dn_cmd_connect(int argc, char **argv)
{
    client c = {.cmd = "connect"};
    int rc = client_parse(&c, argc, argv, connect_usage, 0);
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
    client c = {.cmd = "disconnect"};
    int rc = client_parse(&c, argc, argv, disconnect_usage, 0);
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
    fputs(common_opts, f);
    fprintf(f, "\nExit status: 0 when the daemon ends the stream, 1 on failure (no daemon;\n"
               "the connection to the daemon was lost, as when it stops; or the stream\n"
               "was dropped because this client did not keep up), 2 usage.\n");
}

typedef struct ev_state {
    const client *c;
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
        put_escaped(stdout, json_string_value(v));
    }
}

static int on_event_line(json_t *v, void *ud)
{
    ev_state *s = ud;
    const char *type = jstr(v, "type", "");
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
        put_escaped(stdout, type);
        const char *peer = json_string_value(json_object_get(v, "peer"));
        if (peer) {
            printf("  peer ");
            put_escaped(stdout, peer);
        }
        if (!strcmp(type, "peer_connectedness_changed")) {
            printf("  %s", jstr(v, "connectedness", "?"));
        } else if (!strcmp(type, "peer_identification_completed")) {
            printf("  agent '");
            put_escaped(stdout, jstr(v, "agent", ""));
            printf("'  %zu protocols  addrs ", json_array_size(json_object_get(v, "protocols")));
            print_str_list(json_object_get(v, "addrs"));
        } else if (!strcmp(type, "local_addresses_updated")) {
            printf("  addrs ");
            print_str_list(json_object_get(v, "addrs"));
        } else if (!strcmp(type, "local_reachability_changed")) {
            printf("  %s", jstr(v, "reachability", "?"));
        } else if (!strcmp(type, "nat_device_type_changed")) {
            printf("  %s", jstr(v, "nat_type", "?"));
        }
        putchar('\n');
    }
    if (s->dropped) {
        fprintf(stderr, "dmsnet events: ");
        put_escaped(stderr, jstr(v, "error", "the daemon dropped the stream"));
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
    client c = {.cmd = "events"};
    int rc = client_parse(&c, argc, argv, events_usage, OPT_TYPES);
    if (rc >= 0 || (rc = no_args(&c, argc, argv, events_usage)) >= 0)
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
            print_no_daemon(&c);
        else if (status == 200 && rc == DN_EIO)
            /* the stream had started: a daemon that stops (or dies) cuts it */
            dn_cli_error(c.cmd, "lost the connection to the daemon at %s (did it stop?)", c.sock);
        else
            dn_cli_error(c.cmd, "event stream from %s: %s", c.sock, dn_strerror(rc));
        return 1;
    }
    if (status != 200) {
        print_api_error(&c, status, reply);
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
    fputs(common_opts, f);
    fputs(common_tail, f);
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

static int print_config(const client *c, json_t *cfg)
{
    if (c->json)
        return print_json(cfg);
    for (size_t i = 0; i < dn__node_config_key_count(); i++) {
        const char *key = dn__node_config_key_name(i);
        json_t *v = lookup_dotted(cfg, key);
        printf("%-30s", key);
        if (!v) {
            printf("?\n");
            continue;
        }
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        put_escaped(stdout, text ? text : "?");
        free(text);
        putchar('\n');
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* No daemon: defaults + DIR/config.json, as a daemon started now reads them. */
static int config_offline(const client *c)
{
    char path[PATH_MAX_ + 16], err[512];
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
    char db[PATH_MAX_ + 16];
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

static int config_show(client *c, int argc, char **argv)
{
    if (c->argi < argc) {
        dn_cli_error(c->cmd, "unexpected argument '%s'", argv[c->argi]);
        hint(c);
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
        print_api_error(c, status, r);
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

static int config_set(client *c, int argc, char **argv)
{
    if (argc - c->argi != 2) {
        dn_cli_error(c->cmd, argc - c->argi < 2 ? "expected <key> <value>"
                                                : "unexpected argument after <key> <value>");
        hint(c);
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
    int rc = call(c, "PUT", "/v0/config", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json) {
        rc = print_json(r);
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
    client c = {.cmd = "config"};
    if (argc < 2) {
        dn_cli_error(c.cmd, "expected 'show' or 'set'");
        hint(&c);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        config_usage(stdout);
        return 0;
    }
    bool show = !strcmp(argv[1], "show"), set = !strcmp(argv[1], "set");
    if (!show && !set) {
        dn_cli_error("config", "unknown subcommand '%s' (show or set)", argv[1]);
        hint(&c);
        return 2;
    }
    int rc = client_parse(&c, argc - 1, argv + 1, config_usage, 0);
    if (rc >= 0)
        return rc;
    /* client_parse saw argv + 1 */
    return show ? config_show(&c, argc - 1, argv + 1) : config_set(&c, argc - 1, argv + 1);
}

/* ---- messages: send, request, messages listen / reply ---- */

#define MSG_DATA_MAX (1u << 20) /* the Messenger's payload limit */

/* <data>: the text itself, @FILE, or - for standard input; at most the
 * payload limit (one byte more is read to tell). Returns the base64 form
 * as a JSON string, or NULL (the error printed). */
static json_t *read_data(const client *c, const char *arg)
{
    uint8_t *buf = malloc(MSG_DATA_MAX + 1);
    if (!buf)
        return NULL;
    size_t len = 0;
    if (arg[0] == '@' || !strcmp(arg, "-")) {
        FILE *f = !strcmp(arg, "-") ? stdin : fopen(arg + 1, "rb");
        if (!f) {
            dn_cli_error(c->cmd, "cannot read %s: %s", arg + 1, strerror(errno));
            free(buf);
            return NULL;
        }
        len = fread(buf, 1, MSG_DATA_MAX + 1, f);
        bool bad = ferror(f);
        if (f != stdin)
            fclose(f);
        if (bad) {
            dn_cli_error(c->cmd, "cannot read %s", arg);
            free(buf);
            return NULL;
        }
    } else {
        len = strlen(arg);
        if (len <= MSG_DATA_MAX + 1)
            memcpy(buf, arg, len);
    }
    if (len > MSG_DATA_MAX) {
        dn_cli_error(c->cmd, "the payload is larger than the limit (%u bytes)", MSG_DATA_MAX);
        free(buf);
        return NULL;
    }
    size_t n = dn_base64_enc_len(len) + 1;
    char *text = malloc(n);
    json_t *v = text && dn_base64_encode(buf, len, text, n) >= 0 ? json_string(text) : NULL;
    free(text);
    free(buf);
    return v;
}

/* Write base64 text decoded to stdout (a reply, a message's data). */
static int put_b64(const char *text)
{
    if (!text)
        return 1;
    size_t n = strlen(text);
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    int k = buf ? dn_base64_decode(text, n, buf, n / 4 * 3 + 3) : -1;
    if (k >= 0)
        fwrite(buf, 1, (size_t)k, stdout);
    free(buf);
    return k < 0;
}

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
    fputs(common_opts, f);
    fputs(common_tail, f);
}

static int send_or_request(int argc, char **argv, bool request)
{
    client c = {.cmd = request ? "request" : "send"};
    int rc = client_parse(&c, argc, argv, send_usage, OPT_TYPE | (request ? OPT_TIMEOUT : 0));
    if (rc >= 0)
        return rc;
    if (argc - c.argi != 2 || !c.type) {
        dn_cli_error(c.cmd, "expected <peer id> --type <protocol> <data>");
        hint(&c);
        return 2;
    }
    const char *peer = argv[c.argi];
    dn_peerid id;
    if (dn_peerid_parse(peer, &id)) {
        dn_cli_error(c.cmd, "'%s' is not a peer id", peer);
        return 2;
    }
    json_t *data = read_data(&c, argv[c.argi + 1]);
    if (!data)
        return 1;
    json_t *body = json_pack("{s:s, s:s, s:o}", "peer", peer, "type", c.type, "data", data), *r;
    if (!body)
        return 1;
    if (c.timeout_s)
        json_object_set_new(body, "timeout_ms", json_integer(c.timeout_s * 1000));
    rc = call(&c, "POST", request ? "/v0/request" : "/v0/send", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c.json)
        rc = print_json(r);
    else if (request)
        rc = put_b64(jstr(r, "reply", NULL)) || fflush(stdout);
    else
        rc = printf("sent to %s\n", peer) < 0 || fflush(stdout);
    json_decref(r);
    return rc;
}

int dn_cmd_send(int argc, char **argv) { return send_or_request(argc, argv, false); }
int dn_cmd_request(int argc, char **argv) { return send_or_request(argc, argv, true); }

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
    fputs(common_opts, f);
    fputs(common_tail, f);
}

typedef struct msg_state {
    const client *c;
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
            put_escaped(stderr, jstr(v, "error", "the daemon dropped the stream"));
            fputc('\n', stderr);
            return 1;
        }
        printf("%lld %s ", (long long)json_integer_value(idv), jstr(v, "from", "?"));
        put_escaped(stdout, jstr(v, "type", "?"));
        putchar(' ');
        const char *b64 = jstr(v, "data", "");
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
    client c = {.cmd = "messages"};
    int rc = client_parse(&c, argc - 1, argv + 1, messages_usage, listen ? OPT_TYPE : 0);
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
                print_no_daemon(&c);
            else
                dn_cli_error(c.cmd, "message stream from %s: %s", c.sock, dn_strerror(rc));
            return 1;
        }
        if (status != 200) {
            print_api_error(&c, status, reply);
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
    json_t *data = read_data(&c, argv[c.argi + 1]);
    if (!data)
        return 1;
    json_t *body = json_pack("{s:I, s:o}", "id", (json_int_t)id, "data", data), *r;
    if (!body)
        return 1;
    rc = call(&c, "POST", "/v0/messages/reply", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    rc = c.json ? print_json(r) : (printf("replied to message %lld\n", id) < 0 || fflush(stdout));
    json_decref(r);
    return rc;
}
