/* Helpers shared by the CLI commands: paths, key loading, sizes. */
#ifndef DN_CLI_COMMON_H
#define DN_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "dmsnet/host.h"
#include "dmsnet/keys.h"

/* $DMSNET_HOME, else ~/.dmsnet. Returns 0 or DN_ETOOBIG/DN_ENOTFOUND. */
int dn_cli_default_data_dir(char *out, size_t outlen);
/* Load the identity from path; when create is set and the file does not
 * exist, make an Ed25519 key there (mode 0600, directory 0700). Prints a
 * one-line error itself and returns non-zero on failure. */
int dn_cli_load_identity(const char *cmd, const char *path, int create, dn_privkey **out);
/* Load a swarm key file, printing a one-line error on failure. */
int dn_cli_load_swarm_key(const char *cmd, const char *path, uint8_t psk[32]);
/* "1048576", "64K", "256M", "1G" (binary units). Returns 0 or -1. */
int dn_cli_parse_size(const char *s, uint64_t *out);
/* Parse a multiaddr argument, printing the precise reason on failure. */
int dn_cli_parse_multiaddr(const char *cmd, const char *s, dn_multiaddr *out);
/* Parse a peer address argument: a multiaddr that names the peer with a
 * trailing /p2p/<id>. Prints the reason and returns 1 on failure. */
int dn_cli_parse_peer_addr(const char *cmd, const char *s, dn_multiaddr *ma, dn_peerid *peer);
/* Dial synchronously-looking: runs the loop until the dial finishes or the
 * timeout passes. Returns the connection or NULL (error printed). */
dn_conn *dn_cli_dial(const char *cmd, dn_host *h, const dn_multiaddr *ma, unsigned timeout_ms);
/* The services every dmsnet node runs: identify and ping, and perf when
 * asked. Returns 0 or the error. */
int dn_cli_attach_services(dn_host *h, bool perf);
/* Print what identify told us about p, one "field: value" per line, every
 * peer-supplied string escaped (cli/identify_print.c). */
void dn_cli_print_identify(FILE *f, const dn_peer_info *p);
/* Close the host and run the loop until everything is released. */
void dn_cli_shutdown(dn_host *h);

/* A short-lived client node for ping, perf, identify. */
typedef struct dn_cli_client {
    uv_loop_t loop;
    dn_privkey *key;
    dn_host *host;
} dn_cli_client;
/* Start a client: the identity from identity_path, or a fresh Ed25519 key
 * when NULL; the swarm key from swarm_key_path when not NULL. cfg's other
 * fields are used as given (identity and psk are filled in here). Prints
 * the error and returns 1 on failure, 0 on success. */
int dn_cli_client_start(const char *cmd, const char *identity_path, const char *swarm_key_path,
                        dn_host_config *cfg, dn_cli_client *cl);
/* Shut the host down, close the loop, free the key. */
void dn_cli_client_stop(dn_cli_client *cl);

#endif
