/* Helpers shared by the CLI commands: paths, key loading, sizes. */
#ifndef DN_CLI_COMMON_H
#define DN_CLI_COMMON_H

#include <stddef.h>
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
/* Dial synchronously-looking: runs the loop until the dial finishes or the
 * timeout passes. Returns the connection or NULL (error printed). */
dn_conn *dn_cli_dial(const char *cmd, dn_host *h, const dn_multiaddr *ma, unsigned timeout_ms);
/* Close the host and run the loop until everything is released. */
void dn_cli_shutdown(dn_host *h);

#endif
