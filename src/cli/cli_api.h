/* What the CLI's clients of the daemon API share (cmd_client.c and the
 * dht, pubsub and job commands): option parsing, one API call, printing
 * JSON and peer-supplied text, reading <data> arguments. */
#ifndef DN_CLI_API_H
#define DN_CLI_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_PATH_MAX 4096
#define CLI_MSG_DATA_MAX (1u << 20) /* the Messenger's payload limit */

typedef struct cli_client {
    const char *cmd; /* "status", "config show", ... for messages */
    char dir[CLI_PATH_MAX];
    char sock[CLI_PATH_MAX + 16];
    bool json;
    const char *types; /* events --types */
    const char *type;  /* send, request, messages listen: --type */
    long timeout_s;    /* request --timeout (0: the daemon's default) */
    long wait_s;       /* --wait (0: not given) */
    int argi;          /* first positional argument */
} cli_client;

/* The options text every client command's --help ends with, and the exit
 * status line after it. */
extern const char cli_common_opts[];
extern const char cli_common_tail[];

/* Options beyond the common ones (--data-dir, --json, --help) a command
 * takes: cli_parse's extra. */
#define OPT_TYPES 1u   /* --types LIST (events) */
#define OPT_TYPE 2u    /* --type PROTOCOL (messages) */
#define OPT_TIMEOUT 4u /* --timeout S, 1..600 (request) */
#define OPT_WAIT 8u    /* --wait S, 1..3600 */

/* Parse the options (they may follow the arguments; "--" ends them) and
 * resolve the data directory and its API socket. Returns -1 to go on, else
 * the exit code (usage printed for --help, a hint for errors). */
int cli_parse(cli_client *c, int argc, char **argv, void (*usage)(FILE *), unsigned extra);
/* -1 when no positional argument is left, else 2 (the error printed). */
int cli_no_args(const cli_client *c, int argc, char **argv, void (*usage)(FILE *));
/* "see 'dmsnet <cmd> --help'" on stderr. */
void cli_hint(const cli_client *c);

/* One call; on success *reply is the 2xx answer. Returns -1 on success,
 * else the exit code (the error printed: "no daemon running at <sock>",
 * the daemon's {"error"}). */
int cli_call(const cli_client *c, const char *method, const char *path, const json_t *body,
             json_t **reply);
void cli_print_no_daemon(const cli_client *c);
void cli_print_api_error(const cli_client *c, long status, json_t *reply);

/* Indented JSON on stdout. Returns 0 or 1. */
int cli_print_json(json_t *v);
/* Text that may come from a peer, escaped (cannot forge lines or send
 * terminal controls); as a malloc'd string. */
void cli_put_escaped(FILE *f, const char *s);
char *cli_escaped(const char *s);
/* o[key] as a string, or dflt. */
const char *cli_jstr(json_t *o, const char *key, const char *dflt);

/* <data>: the text itself, @FILE, or - for standard input; at most max
 * bytes. Returns its base64 form as a JSON string, or NULL (the error
 * printed). */
json_t *cli_read_data(const cli_client *c, const char *arg, size_t max);
/* Write base64 text decoded to stdout. Returns 0 or 1. */
int cli_put_b64(const char *text);

#endif
