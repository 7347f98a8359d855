/* dmsnet keygen / dmsnet id: create an identity key file, print a peer ID.
 *
 * Key files hold the libp2p PrivateKey protobuf (peer-ids spec), the same
 * bytes js-libp2p's privateKeyToProtobuf and go-libp2p's MarshalPrivateKey
 * produce, so keys move between implementations unchanged. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"

/* A reason for a key file error that tells the user what is wrong with the
 * file rather than only the error class. */
static const char *keyfile_reason(int rc)
{
    switch (rc) {
    case -ENOENT: return "no such file (create one with 'dmsnet keygen --out FILE')";
    case DN_ETRUNCATED: return "truncated: the file ends before the key does";
    case DN_EMALFORMED: return "not a valid libp2p private key (PrivateKey protobuf)";
    case DN_EUNSUPPORTED:
        return "unsupported key type (dmsnet uses ed25519, secp256k1 and ecdsa private keys)";
    case DN_ETOOBIG: return "too large to be a key file (limit 16 KiB)";
    case DN_EINVAL: return "not a regular file";
    default: return dn_strerror(rc);
    }
}

/* Report an unknown option (getopt returned '?') or a missing argument
 * (':', because the option strings start with ':'). */
static int bad_option(const char *cmd, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    char shortopt[3] = {'-', (char)optopt, 0};
    /* For short options in a cluster ("-fx") name the option itself. */
    if (optopt && !(arg[0] == '-' && arg[1] == '-'))
        arg = shortopt;
    if (c == ':')
        dn_cli_error(cmd, "option %s needs an argument (see 'dmsnet %s --help')", arg, cmd);
    else
        dn_cli_error(cmd, "unknown option %s (see 'dmsnet %s --help')", arg, cmd);
    return 2;
}

static int print_peerid(const char *cmd, const dn_privkey *k, int cid)
{
    dn_peerid id;
    char s[DN_PEERID_STR_MAX];
    int rc = dn_peerid_from_pubkey(dn_privkey_public(k), &id);
    if (!rc)
        rc =
            cid ? dn_peerid_to_cid_string(&id, s, sizeof s) : dn_peerid_to_string(&id, s, sizeof s);
    if (rc < 0) {
        dn_cli_error(cmd, "cannot compute the peer ID: %s", dn_strerror(rc));
        return 1;
    }
    printf("%s\n", s);
    return fflush(stdout) ? 1 : 0;
}

/* ---- keygen ------------------------------------------------------------- */

static void keygen_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet keygen [--type ed25519|secp256k1|ecdsa] --out FILE [--force]\n\n"
               "Create a new identity key and write it to FILE (mode 0600) as a libp2p\n"
               "PrivateKey protobuf, the format go- and js-libp2p read and write.\n"
               "Prints the peer ID of the new key on stdout.\n\n"
               "options:\n"
               "  -t, --type TYPE   key type: ed25519 (default), secp256k1, ecdsa (P-256)\n"
               "  -o, --out FILE    where to write the key\n"
               "  -f, --force       replace FILE if it exists\n"
               "  -h, --help        show this help\n");
}

int dn_cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"type", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "keygen", *out = NULL, *type_name = "ed25519";
    int force = 0, c;
    optind = 0; /* glibc: full re-initialisation, so the command can run twice */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 't': type_name = optarg; break;
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'h': keygen_usage(stdout); return 0;
        default: return bad_option(cmd, c, argv);
        }
    }
    if (optind < argc) {
        dn_cli_error(cmd, "unexpected argument '%s' (see 'dmsnet keygen --help')", argv[optind]);
        return 2;
    }
    if (!out || !*out) {
        dn_cli_error(cmd, "--out FILE is required (see 'dmsnet keygen --help')");
        return 2;
    }
    dn_key_type type;
    if (dn_key_type_parse(type_name, &type) || type == DN_KEY_RSA) {
        /* RSA is verify-only in dmsnet: peers may have RSA keys, we do not. */
        dn_cli_error(cmd, "unsupported key type '%s' (use ed25519, secp256k1 or ecdsa)", type_name);
        return 2;
    }

    /* Without --force, claim the name with O_EXCL first: an existing file is
     * never replaced, even one created between a check and the write. The
     * key is then renamed over this empty placeholder. */
    int placeholder = 0;
    if (!force) {
        int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST)
                dn_cli_error(cmd, "%s already exists (use --force to replace it)", out);
            else
                dn_cli_error(cmd, "cannot create %s: %s", out, strerror(errno));
            return 1;
        }
        close(fd);
        placeholder = 1;
    }

    dn_privkey *k = NULL;
    int rc = dn_privkey_generate(type, &k);
    if (rc) {
        dn_cli_error(cmd, "cannot generate a %s key: %s", type_name, dn_strerror(rc));
    } else if ((rc = dn_privkey_save(k, out)) != 0) {
        dn_cli_error(cmd, "cannot write %s: %s", out, dn_strerror(rc));
    }
    if (rc) {
        if (placeholder)
            unlink(out);
        dn_privkey_free(k);
        return 1;
    }
    int ret = print_peerid(cmd, k, 0);
    dn_privkey_free(k);
    return ret;
}

/* ---- id ----------------------------------------------------------------- */

static void id_usage(FILE *f)
{
    fprintf(f, "usage: dmsnet id [--identity FILE] [--cid]\n\n"
               "Print the peer ID of an identity key file: base58btc (12D3KooW..., 16Uiu2...,\n"
               "Qm...) by default.\n\n"
               "options:\n"
               "  -i, --identity FILE  key file (default: $DMSNET_HOME/identity.key, or\n"
               "                       ~/.dmsnet/identity.key when DMSNET_HOME is unset)\n"
               "  -c, --cid            print the CIDv1 form (libp2p-key, base32: bafz...)\n"
               "  -h, --help           show this help\n");
}

int dn_cmd_id(int argc, char **argv)
{
    static const struct option opts[] = {
        {"identity", required_argument, NULL, 'i'},
        {"cid", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "id", *path = NULL;
    int cid = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:ch", opts, NULL)) != -1) {
        switch (c) {
        case 'i': path = optarg; break;
        case 'c': cid = 1; break;
        case 'h': id_usage(stdout); return 0;
        default: return bad_option(cmd, c, argv);
        }
    }
    if (optind < argc) {
        dn_cli_error(cmd, "unexpected argument '%s' (see 'dmsnet id --help')", argv[optind]);
        return 2;
    }
    char def[4096];
    if (!path) {
        const char *home = getenv("DMSNET_HOME");
        int n;
        if (home && *home) {
            n = snprintf(def, sizeof def, "%s/identity.key", home);
        } else if ((home = getenv("HOME")) && *home) {
            n = snprintf(def, sizeof def, "%s/.dmsnet/identity.key", home);
        } else {
            dn_cli_error(cmd, "no identity file: pass --identity FILE or set DMSNET_HOME");
            return 1;
        }
        if (n < 0 || (size_t)n >= sizeof def) {
            dn_cli_error(cmd, "identity path too long");
            return 1;
        }
        path = def;
    }
    dn_privkey *k = NULL;
    int rc = dn_privkey_load(path, &k);
    if (rc) {
        dn_cli_error(cmd, "%s: %s", path, keyfile_reason(rc));
        return 1;
    }
    int ret = print_peerid(cmd, k, cid);
    dn_privkey_free(k);
    return ret;
}
