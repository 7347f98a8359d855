/* The shared parts of the daemon API's clients (cli_api.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cli/cli_api.h"
#include "cli/cli_common.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

const char cli_common_opts[] =
    "  --data-dir DIR     the daemon's data directory (default $DMSNET_HOME,\n"
    "                     else ~/.dmsnet); its API socket is DIR/api.sock\n"
    "  --json             print one JSON document (events: one per line)\n"
    "  -h, --help         show this help\n";

const char cli_common_tail[] =
    "\nExit status: 0 success, 1 failure (also: no daemon running), 2 usage.\n";

/* Print text that may come from a peer (or holds such text), escaped. */
void cli_put_escaped(FILE *f, const char *s)
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
char *cli_escaped(const char *s)
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
void cli_hint(const cli_client *c)
{
    fprintf(stderr, "see 'dmsnet %s --help'\n", c->cmd);
}

int cli_parse(cli_client *c, int argc, char **argv, void (*usage)(FILE *), unsigned extra)
{
    const struct option opts[] = {
        {"data-dir", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
        {"types", required_argument, NULL, 't'},    {"type", required_argument, NULL, 'T'},
        {"timeout", required_argument, NULL, 'O'},  {"wait", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
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
                cli_hint(c);
                return 2;
            }
            c->types = optarg;
            break;
        case 'T':
            if (!(extra & OPT_TYPE)) {
                dn_cli_error(c->cmd, "unknown option '--type'");
                cli_hint(c);
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
                cli_hint(c);
                return 2;
            }
            break;
        }
        case 'W': {
            char *end;
            c->wait_s = strtol(optarg, &end, 10);
            if (!(extra & OPT_WAIT) || *end || c->wait_s < 1 || c->wait_s > 3600) {
                dn_cli_error(c->cmd, (extra & OPT_WAIT) ? "--wait: 1..3600 seconds"
                                                        : "unknown option '--wait'");
                cli_hint(c);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: cli_hint(c); return 2;
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

void cli_print_no_daemon(const cli_client *c)
{
    fprintf(stderr, "dmsnet %s: no daemon running at %s\n", c->cmd, c->sock);
}

/* The daemon's {"error": ...} (or the status line when there is none). */
void cli_print_api_error(const cli_client *c, long status, json_t *reply)
{
    const char *msg = json_string_value(json_object_get(reply, "error"));
    fprintf(stderr, "dmsnet %s: ", c->cmd);
    if (msg)
        cli_put_escaped(stderr, msg);
    else
        fprintf(stderr, "the daemon answered HTTP %ld", status);
    fputc('\n', stderr);
}

/* One call; on success *reply is the 2xx answer. Returns -1 on success,
 * else the exit code (the error printed). */
int cli_call(const cli_client *c, const char *method, const char *path, const json_t *body,
             json_t **reply)
{
    long status = 0;
    *reply = NULL;
    int rc = dn__api_call(c->sock, method, path, body, &status, reply);
    if (rc) {
        if (dn__api_no_daemon(rc))
            cli_print_no_daemon(c);
        else
            dn_cli_error(c->cmd, "cannot talk to the daemon at %s: %s", c->sock, dn_strerror(rc));
        return 1;
    }
    if (status < 200 || status > 299) {
        cli_print_api_error(c, status, *reply);
        json_decref(*reply);
        *reply = NULL;
        return 1;
    }
    return -1;
}

int cli_print_json(json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
    if (!text)
        return 1;
    puts(text);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cli_no_args(const cli_client *c, int argc, char **argv, void (*usage)(FILE *))
{
    if (c->argi < argc) {
        dn_cli_error(c->cmd, "unexpected argument '%s'", argv[c->argi]);
        cli_hint(c);
        return 2;
    }
    return -1;
}

const char *cli_jstr(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

/* <data>: the text itself, @FILE, or - for standard input; at most the
 * payload limit (one byte more is read to tell). Returns the base64 form
 * as a JSON string, or NULL (the error printed). */
json_t *cli_read_data(const cli_client *c, const char *arg, size_t max)
{
    uint8_t *buf = malloc(max + 1);
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
        len = fread(buf, 1, max + 1, f);
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
        if (len <= max + 1)
            memcpy(buf, arg, len);
    }
    if (len > max) {
        dn_cli_error(c->cmd, "the payload is larger than the limit (%zu bytes)", max);
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
int cli_put_b64(const char *text)
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
