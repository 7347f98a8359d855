/* dmsnet job publish|requests|bid: clients of the daemon's /v0/job/ API
 * (publishJob, docs/jobs.md). Forms are stable (issue 10). Bids, jobs and
 * the requester's refusals come from peers: human output escapes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/cli_api.h"
#include "dmsnet/error.h"

#define JOB_MAX ((1u << 20) - 1024) /* DN_JOB_MAX */
#define BID_MAX ((1u << 20) - 64)   /* DN_JOB_BID_MAX */

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet job publish <file> [--wait S] [--json] [--data-dir DIR]\n"
               "       dmsnet job requests [--json] [--data-dir DIR]\n"
               "       dmsnet job bid <request id> <file> [--json] [--data-dir DIR]\n\n"
               "publish: publish the job described in <file> (- for standard input) as a\n"
               "request for bids on the jobs topic, and print each bid as it arrives:\n"
               "'<bidder peer id> <bid>' (escaped); after --wait S seconds (default 5) the\n"
               "request closes and a summary goes to standard error. --json: one object per\n"
               "line (request, from, bid base64, time), then {\"done\": true, \"bids\": N}.\n"
               "requests: follow the job requests this node receives: '<request id>\n"
               "<requester> <job>' (escaped); --json: id, from, job (base64), deadline, time.\n"
               "bid: answer request <request id> with the bytes of <file> (- for standard\n"
               "input); the requester accepts it or says why not.\n\n"
               "options:\n"
               "  --wait S           publish: seconds to collect bids (1..3600, default 5)\n");
    fputs(cli_common_opts, f);
    fputs(cli_common_tail, f);
}

/* <file>, or - for standard input, as base64 (NULL: the error printed). */
static json_t *read_file_arg(const cli_client *c, const char *file, size_t max)
{
    if (!strcmp(file, "-"))
        return cli_read_data(c, "-", max);
    size_t n = strlen(file) + 2;
    char *at = malloc(n);
    if (!at)
        return NULL;
    snprintf(at, n, "@%s", file);
    json_t *v = cli_read_data(c, at, max);
    free(at);
    return v;
}

typedef struct pub_state {
    const cli_client *c;
    bool done, failed;
    long long bids;
    char request[40];
} pub_state;

static int on_bid_line(json_t *v, void *ud)
{
    pub_state *s = ud;
    bool done = json_is_true(json_object_get(v, "done"));
    if (!done && !json_object_get(v, "from")) { /* the server dropped a slow reader */
        fprintf(stderr, "dmsnet job: ");
        cli_put_escaped(stderr, cli_jstr(v, "error", "the daemon dropped the stream"));
        fputc('\n', stderr);
        s->failed = true;
        return 1;
    }
    snprintf(s->request, sizeof s->request, "%s", cli_jstr(v, "request", "?"));
    if (s->c->json) {
        char *text = json_dumps(v, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
    } else if (!done) {
        printf("%s ", cli_jstr(v, "from", "?"));
        cli_put_b64_escaped(stdout, cli_jstr(v, "bid", ""));
        putchar('\n');
    }
    if (done) {
        s->done = true;
        s->bids = (long long)json_integer_value(json_object_get(v, "bids"));
        if (json_object_get(v, "error")) {
            fprintf(stderr, "dmsnet job: the request closed early: ");
            cli_put_escaped(stderr, cli_jstr(v, "error", "?"));
            fputc('\n', stderr);
            s->failed = true;
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        s->failed = true;
        return 1;
    }
    return 0;
}

static int on_request_line(json_t *v, void *ud)
{
    pub_state *s = ud;
    if (!json_object_get(v, "id")) {
        fprintf(stderr, "dmsnet job: ");
        cli_put_escaped(stderr, cli_jstr(v, "error", "the daemon dropped the stream"));
        fputc('\n', stderr);
        s->failed = true;
        return 1;
    }
    if (s->c->json) {
        char *text = json_dumps(v, JSON_COMPACT);
        if (text)
            puts(text);
        free(text);
    } else {
        printf("%s %s ", cli_jstr(v, "id", "?"), cli_jstr(v, "from", "?"));
        cli_put_b64_escaped(stdout, cli_jstr(v, "job", ""));
        putchar('\n');
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        s->failed = true;
        return 1;
    }
    return 0;
}

static int stream(cli_client *c, const char *method, const char *path, json_t *body,
                  dn_api_line_cb cb, pub_state *s)
{
    dn_api_client cl = {.unix_path = c->sock};
    long status = 0;
    json_t *reply = NULL;
    int rc = dn__api_stream_call_ex(&cl, method, path, body, cb, s, &status, &reply);
    if (rc) {
        if (dn__api_no_daemon(rc))
            cli_print_no_daemon(c);
        else if (status == 200 && rc == DN_EIO)
            dn_cli_error(c->cmd, "lost the connection to the daemon at %s (did it stop?)", c->sock);
        else
            dn_cli_error(c->cmd, "stream from %s: %s", c->sock, dn_strerror(rc));
        return 1;
    }
    if (status != 200) {
        cli_print_api_error(c, status, reply);
        json_decref(reply);
        return 1;
    }
    return -1;
}

int dn_cmd_job(int argc, char **argv)
{
    const char *sub = argc >= 2 ? argv[1] : "";
    if (strcmp(sub, "publish") && strcmp(sub, "requests") && strcmp(sub, "bid")) {
        if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
            usage(stdout);
            return 0;
        }
        if (*sub)
            dn_cli_error("job", "unknown subcommand '%s'", sub);
        usage(stderr);
        return 2;
    }
    bool publish = !strcmp(sub, "publish"), bid = !strcmp(sub, "bid");
    cli_client c = {.cmd = "job"};
    int rc = cli_parse(&c, argc - 1, argv + 1, usage, publish ? OPT_WAIT : 0);
    if (rc >= 0)
        return rc;
    c.argi++; /* cli_parse saw argv + 1 */
    int want = publish ? 1 : bid ? 2 : 0;
    if (argc - c.argi != want) {
        dn_cli_error(c.cmd, "expected: job %s",
                     publish ? "publish <file> [--wait S]"
                     : bid   ? "bid <request id> <file>"
                             : "requests");
        cli_hint(&c);
        return 2;
    }
    pub_state s = {.c = &c};
    if (publish) {
        json_t *job = read_file_arg(&c, argv[c.argi], JOB_MAX);
        if (!job)
            return 1;
        json_t *body =
            json_pack("{s:o, s:I}", "job", job, "wait_s", (json_int_t)(c.wait_s ? c.wait_s : 5));
        if (!body)
            return 1;
        rc = stream(&c, "POST", "/v0/job/publish", body, on_bid_line, &s);
        json_decref(body);
        if (rc >= 0)
            return rc;
        if (!s.done) {
            dn_cli_error(c.cmd, "the daemon ended the stream before the deadline");
            return 1;
        }
        if (!c.json)
            fprintf(stderr, "%lld bid%s for request %s\n", s.bids, s.bids == 1 ? "" : "s",
                    s.request);
        return s.failed;
    }
    if (!bid) {
        rc = stream(&c, "GET", "/v0/job/requests", NULL, on_request_line, &s);
        return rc >= 0 ? rc : s.failed;
    }
    const char *id = argv[c.argi];
    json_t *data = read_file_arg(&c, argv[c.argi + 1], BID_MAX);
    if (!data)
        return 1;
    json_t *body = json_pack("{s:s, s:o}", "request", id, "bid", data), *r;
    if (!body)
        return 1;
    rc = cli_call(&c, "POST", "/v0/job/bid", body, &r);
    json_decref(body);
    if (rc >= 0)
        return rc;
    if (c.json) {
        rc = cli_print_json(r);
    } else {
        printf("bid accepted by %s\n", cli_jstr(r, "requester", "?"));
        rc = fflush(stdout) != 0;
    }
    json_decref(r);
    return rc;
}
