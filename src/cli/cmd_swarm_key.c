/* dmsnet swarm-key — create the pre-shared key of a private network (pnet).
 *
 * The key is written in the go-libp2p / js-libp2p text form
 * ("/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>"), so the same file works
 * for go-ipfs/kubo and js-libp2p peers of the swarm. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/io.h"
#include "cli/cli.h"
#include "crypto/keyfile.h"
#include "dmsnet/error.h"
#include "pnet/pnet.h"

static const char cmd[] = "swarm-key";

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsnet swarm-key new [--out FILE] [--force]\n\n"
               "Create a fresh 32-byte swarm key for a private network (libp2p pnet,\n"
               "PSK v1) in the go-libp2p / js-libp2p text form (/base16/).\n\n"
               "  --out FILE   write the key to FILE (mode 0600) instead of stdout\n"
               "  --force      replace FILE if it exists\n"
               "  -h, --help   show this help\n\n"
               "Every peer of the private network needs the same key file.\n");
}


/* Write text to a new file at path, mode 0600. Without force an existing
 * file is left alone (O_EXCL). With force the key goes to a temporary file
 * beside path ("<path>.tmp.XXXXXX", locked while it is written) that is then
 * renamed over path: the old file is replaced atomically and the new one is
 * 0600 whatever the old mode was. Temporaries that a killed writer left
 * holding a key are removed first. */
static int write_key_file(const char *path, const char *text, size_t len, bool force)
{
    char *tmp = NULL;
    int fd;
    if (force) {
        (void)dn__keyfile_remove_stale(path);
        fd = dn__keyfile_tmp_open(path, &tmp);
        if (fd < 0) {
            dn_cli_error(cmd, "%s: %s", path, dn_strerror(fd));
            return -1;
        }
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            if (errno == EEXIST)
                dn_cli_error(cmd, "%s exists; use --force to replace it", path);
            else
                dn_cli_error(cmd, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    const char *created = force ? tmp : path;
    int ret = -1;
    /* A umask can only remove bits, but say 0600 explicitly anyway. */
    if (fchmod(fd, 0600) != 0 || dn__write_all(fd, text, len) != 0 || fsync(fd) != 0) {
        dn_cli_error(cmd, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(created);
        goto out;
    }
    /* Renamed before the close: the lock on the temporary lasts until it
     * has its final name. */
    if (force && rename(tmp, path) != 0) {
        dn_cli_error(cmd, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        dn_cli_error(cmd, "%s: %s", path, strerror(errno));
        if (!force) /* the file we just created; with force it replaced the old one */
            unlink(path);
        goto out;
    }
    ret = 0;
out:
    free(tmp);
    return ret;
}

static int cmd_new(int argc, char **argv)
{
    const char *out = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--force") || !strcmp(a, "-f")) {
            force = true;
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            if (i + 1 >= argc) {
                dn_cli_error(cmd, "%s needs a file name", a);
                return 2;
            }
            out = argv[++i];
        } else if (!strncmp(a, "--out=", 6)) {
            out = a + 6;
        } else {
            dn_cli_error(cmd, "unknown option '%s' (see 'dmsnet swarm-key --help')", a);
            return 2;
        }
    }
    if (out && !*out) {
        dn_cli_error(cmd, "--out needs a file name");
        return 2;
    }
    if (force && !out) {
        dn_cli_error(cmd, "--force only makes sense with --out");
        return 2;
    }

    uint8_t psk[DN_PSK_LEN];
    char text[DN_SWARM_KEY_TEXT_MAX + 1];
    randombytes_buf(psk, sizeof psk);
    int n = dn_swarm_key_format(psk, text, sizeof text);
    sodium_memzero(psk, sizeof psk);
    int rc = 1;
    if (n < 0) {
        dn_cli_error(cmd, "cannot format the key");
    } else if (out) {
        /* The file gets the exact form go and js write (no final newline). */
        if (write_key_file(out, text, (size_t)n, force) == 0)
            rc = 0;
    } else {
        /* On a terminal or through a pipe a final newline is friendlier;
         * the parsers of go, js and dmsnet all ignore it. */
        text[n] = '\n';
        if (fwrite(text, 1, (size_t)n + 1, stdout) == (size_t)n + 1 && fflush(stdout) == 0)
            rc = 0;
        else
            dn_cli_error(cmd, "writing to stdout: %s", strerror(errno));
    }
    sodium_memzero(text, sizeof text);
    return rc;
}

int dn_cmd_swarm_key(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "new"))
        return cmd_new(argc - 1, argv + 1);
    dn_cli_error(cmd, "unknown subcommand '%s' (see 'dmsnet swarm-key --help')", sub);
    return 2;
}
