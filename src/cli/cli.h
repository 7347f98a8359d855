/* The dmsnet command-line tool: one binary, one function per subcommand.
 * Each returns the process exit code (0 success, 1 failure, 2 usage). */
#ifndef DN_CLI_H
#define DN_CLI_H

#include <stddef.h>
#include <stdio.h>

int dn_cmd_keygen(int argc, char **argv);    /* cmd_keys.c */
int dn_cmd_id(int argc, char **argv);        /* cmd_keys.c */
int dn_cmd_swarm_key(int argc, char **argv); /* cmd_swarm_key.c */
int dn_cmd_daemon(int argc, char **argv);
int dn_cmd_send(int argc, char **argv);     /* cmd_client.c */
int dn_cmd_request(int argc, char **argv);  /* cmd_client.c */
int dn_cmd_messages(int argc, char **argv); /* cmd_client.c */
int dn_cmd_pubsub(int argc, char **argv);   /* cmd_pubsub.c */
int dn_cmd_job(int argc, char **argv);      /* cmd_job.c */
/* cmd_pubsub.c: base64 text decoded and printed escaped; a query value
 * percent-encoded (-1 when it does not fit). */
void cli_put_b64_escaped(FILE *f, const char *b64);
int cli_query_escape(const char *s, char *out, size_t outlen);
int dn_cmd_dht(int argc, char **argv);      /* cmd_dht.c */
int dn_cmd_ping(int argc, char **argv);      /* cmd_ping.c */
int dn_cmd_perf(int argc, char **argv);      /* cmd_perf.c */
int dn_cmd_identify(int argc, char **argv);  /* cmd_identify.c */
/* Clients of the daemon's API (cmd_client.c). */
int dn_cmd_status(int argc, char **argv);
int dn_cmd_peers(int argc, char **argv);
int dn_cmd_connect(int argc, char **argv);
int dn_cmd_disconnect(int argc, char **argv);
int dn_cmd_events(int argc, char **argv);
int dn_cmd_config(int argc, char **argv);

/* Print "dmsnet <cmd>: <message>" on stderr (one line). */
void dn_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
