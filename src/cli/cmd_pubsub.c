/* dmsnet pubsub sub|pub|peers: clients of the daemon's /v0/pubsub/ API
 * (docs/api.md). Forms and --json keys are stable (issue 10). Message data
 * and topics come from peers: human output escapes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/cli_api.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

#define TOPIC_MAX 512

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet pubsub sub <topic> [--json] [--data-dir DIR]\n"
               "       dmsnet pubsub pub <topic> <data> [--json] [--data-dir DIR]\n"
               "       dmsnet pubsub peers <topic> [--json] [--data-dir DIR]\n\n"
               "sub: subscribe the daemon to <topic> (while this runs) and print one line per\n"
               "message: '<from peer id> <seqno> <data>' (data escaped); --json: one object per\n"
               "line with topic, from, seqno (decimal string) and data (base64).\n"
               "pub: publish <data> on <topic> (the text, @FILE or - for standard input; at\n"
               "most 1 MiB); prints how many peers it was sent to.\n"
               "peers: the peers known to be subscribed to <topic>, one per line.\n\n"
               "options:\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

/* Percent-encode s into out for a query value; -1 when it does not fit. */
int cli_query_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~/", *p);
        if (k + (plain ? 1 : 3) >= outlen)
            return -1;
        if (plain) {
            out[k++] = (char)*p;
        } else {
            out[k++] = '%';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        }
    }
    out[k] = 0;
    return 0;
}

void cli_put_b64_escaped(FILE *f, const char *b64)
{
    if (!b64)
        return;
    size_t n = strlen(b64);
    char *buf = malloc(n / 4 * 3 + 4);
    int k = buf ? dn_base64_decode(b64, n, (uint8_t *)buf, n / 4 * 3 + 3) : -1;
    if (k >= 0) {
        /* Peer-supplied bytes: escaped, they cannot forge a line. */
        size_t need = dn_escape_text(buf, (size_t)k, NULL, 0) + 1;
        char *esc = malloc(need);
        if (esc) {
            dn_escape_text(buf, (size_t)k, esc, need);
            fputs(esc, f);
            free(esc);
        }
    }
    free(buf);
}

typedef struct sub_state {
    const cli_client *c;
    bool dropped, out_failed;
} sub_state;

static int on_line(json_t *v, void *ud)
{
    sub_state *s = ud;
    if (!json_object_get(v, "from")) { /* the server's last line when it drops a slow reader */
        fprintf(stderr, "dmsnet pubsub: ");
        cli_put_escaped(stderr, cli_jstr(v, "error", "the daemon dropped the stream"));
        fputc('\n', stderr);
        s->dropped = true;
        return 1;
    }
    if (s->c->json) {
        char *text = json_dumps(v, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
    } else {
        printf("%s %s ", cli_jstr(v, "from", "?"), cli_jstr(v, "seqno", "?"));
        cli_put_b64_escaped(stdout, cli_jstr(v, "data", ""));
        putchar('\n');
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        s->out_failed = true;
        return 1;
    }
    return 0;
}

static int do_sub(cli_client *c, const char *topic, const char *qtopic)
{
    char path[TOPIC_MAX * 3 + 64];
    snprintf(path, sizeof path, "/v0/pubsub/sub?topic=%s", qtopic);
    dn_api_client cl = {.unix_path = c->sock};
    sub_state s = {.c = c};
    long status = 0;
    json_t *reply = NULL;
    int rc = dn__api_stream_call(&cl, path, on_line, &s, &status, &reply);
    (void)topic;
    if (rc) {
        if (dn__api_no_daemon(rc))
            cli_print_no_daemon(c);
        else if (status == 200 && rc == DN_EIO)
            dn_cli_error(c->cmd, "lost the connection to the daemon at %s (did it stop?)", c->sock);
        else
            dn_cli_error(c->cmd, "message stream from %s: %s", c->sock, dn_strerror(rc));
        return 1;
    }
    if (status != 200) {
        cli_print_api_error(c, status, reply);
        json_decref(reply);
        return 1;
    }
    return s.dropped || s.out_failed;
}

static int do_pub(cli_client *c, const char *topic, const char *arg)
{
    json_t *data = cli_read_data(c, arg, CLI_MSG_DATA_MAX);
    if (!data)
        return 1;
    json_t *body = json_pack("{s:s, s:o}", "topic", topic, "data", data), *r;
    if (!body)
        return 1;
    int rc = cli_call(c, "POST", "/v0/pubsub/pub", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c->json) {
        rc = cli_print_json(r);
    } else {
        long long n = (long long)json_integer_value(json_object_get(r, "peers"));
        rc = printf("published to %lld peer%s\n", n, n == 1 ? "" : "s") < 0 || fflush(stdout);
    }
    json_decref(r);
    return rc;
}

static int do_peers(cli_client *c, const char *qtopic)
{
    char path[TOPIC_MAX * 3 + 64];
    snprintf(path, sizeof path, "/v0/pubsub/peers?topic=%s", qtopic);
    json_t *r;
    int rc = cli_call(c, "GET", path, NULL, &r);
    if (rc >= 0)
        return rc;
    if (c->json) {
        rc = cli_print_json(r);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(r, "peers"), i, v)
        {
            cli_put_escaped(stdout, json_string_value(v));
            putchar('\n');
        }
        rc = fflush(stdout) != 0;
    }
    json_decref(r);
    return rc;
}

int dn_cmd_pubsub(int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    if (strcmp(sub, "sub") && strcmp(sub, "pub") && strcmp(sub, "peers")) {
        if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
            usage(stdout);
            return 0;
        }
        if (*sub)
            dn_cli_error("pubsub", "unknown subcommand '%s'", sub);
        usage(stderr);
        return 2;
    }
    cli_client c = {.cmd = "pubsub"};
    int rc = cli_parse(&c, argc - 1, argv + 1, usage, 0);
    if (rc >= 0)
        return rc;
    c.argi++; /* cli_parse saw argv + 1 */
    bool pub = !strcmp(sub, "pub");
    if (argc - c.argi != (pub ? 2 : 1)) {
        if (pub)
            dn_cli_error(c.cmd, "expected: pubsub pub <topic> <data>");
        else
            dn_cli_error(c.cmd, "expected: pubsub %s <topic>", sub);
        cli_hint(&c);
        return 2;
    }
    const char *topic = argv[c.argi];
    char q[TOPIC_MAX * 3 + 1];
    if (!*topic || strlen(topic) > TOPIC_MAX || cli_query_escape(topic, q, sizeof q)) {
        dn_cli_error(c.cmd, "a topic is 1..%d bytes", TOPIC_MAX);
        return 2;
    }
    if (!strcmp(sub, "sub"))
        return do_sub(&c, topic, q);
    if (pub)
        return do_pub(&c, topic, argv[c.argi + 1]);
    return do_peers(&c, q);
}
