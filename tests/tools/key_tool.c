/* key_tool: drive dmsnet's key code from scripts (tests/interop/keys_js).
 *
 *   key_tool gen TYPE FILE              new key (ed25519|secp256k1|ecdsa) -> FILE; prints peer id
 *   key_tool peerid FILE                peer id (base58btc) of a key file
 *   key_tool cid FILE                   peer id as CIDv1 base32
 *   key_tool privpb FILE                hex of the PrivateKey protobuf we would write for FILE
 *   key_tool pubpb FILE                 hex of the PublicKey protobuf
 *   key_tool sign FILE HEXMSG           hex signature of the message
 *   key_tool verify PUBPB HEXMSG HEXSIG exit 0 valid, 1 invalid (DN_EBADSIG)
 *   key_tool pubid PUBPB                peer id (base58btc) of a PublicKey protobuf
 *
 * Any other failure prints one line on stderr and exits 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"

static int die(const char *what, int rc)
{
    fprintf(stderr, "key_tool: %s: %s\n", what, dn_strerror(rc));
    return 2;
}

/* Decode hex into a fresh buffer; "" is the empty string. */
static uint8_t *unhex(const char *s, size_t *n)
{
    size_t len = strlen(s);
    uint8_t *out = malloc(len / 2 + 1);
    if (!out || len % 2)
        goto bad;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            goto bad;
        out[i] = (uint8_t)v;
    }
    *n = len / 2;
    return out;
bad:
    free(out);
    fprintf(stderr, "key_tool: bad hex '%s'\n", s);
    exit(2);
}

static void puthex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

static int print_id(const dn_pubkey *pk, int cid)
{
    dn_peerid id;
    char s[DN_PEERID_STR_MAX];
    int rc = dn_peerid_from_pubkey(pk, &id);
    if (rc)
        return die("peer id", rc);
    rc = cid ? dn_peerid_to_cid_string(&id, s, sizeof s) : dn_peerid_to_string(&id, s, sizeof s);
    if (rc < 0)
        return die("peer id text", rc);
    printf("%s\n", s);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: key_tool gen TYPE FILE | peerid FILE | cid FILE | privpb FILE |\n"
                    "       pubpb FILE | sign FILE HEXMSG | verify PUBPB HEXMSG HEXSIG |\n"
                    "       pubid PUBPB\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    if (sodium_init() < 0)
        return 2;
    const char *cmd = argv[1];
    int rc;

    if (!strcmp(cmd, "gen") && argc == 4) {
        dn_key_type t;
        dn_privkey *k;
        if (dn_key_type_parse(argv[2], &t))
            return die(argv[2], DN_EINVAL);
        if ((rc = dn_privkey_generate(t, &k)) != 0)
            return die("generate", rc);
        if ((rc = dn_privkey_save(k, argv[3])) != 0)
            return die(argv[3], rc);
        rc = print_id(dn_privkey_public(k), 0);
        dn_privkey_free(k);
        return rc;
    }
    if (!strcmp(cmd, "verify") && argc == 5) {
        size_t pl, ml, sl;
        uint8_t *pb = unhex(argv[2], &pl), *msg = unhex(argv[3], &ml), *sig = unhex(argv[4], &sl);
        dn_pubkey *pk;
        if ((rc = dn_pubkey_from_protobuf(pb, pl, &pk)) != 0)
            return die("public key", rc);
        rc = dn_pubkey_verify(pk, msg, ml, sig, sl);
        dn_pubkey_free(pk);
        free(pb);
        free(msg);
        free(sig);
        if (rc == DN_EBADSIG)
            return 1;
        return rc ? die("verify", rc) : 0;
    }
    if (!strcmp(cmd, "pubid") && argc == 3) {
        size_t pl;
        uint8_t *pb = unhex(argv[2], &pl);
        dn_pubkey *pk;
        if ((rc = dn_pubkey_from_protobuf(pb, pl, &pk)) != 0)
            return die("public key", rc);
        rc = print_id(pk, 0);
        dn_pubkey_free(pk);
        free(pb);
        return rc;
    }

    /* The rest take a key file. */
    dn_privkey *k;
    if ((rc = dn_privkey_load(argv[2], &k)) != 0)
        return die(argv[2], rc);
    dn_buf b = DN_BUF_INIT;
    if (!strcmp(cmd, "peerid") && argc == 3) {
        rc = print_id(dn_privkey_public(k), 0);
    } else if (!strcmp(cmd, "cid") && argc == 3) {
        rc = print_id(dn_privkey_public(k), 1);
    } else if (!strcmp(cmd, "privpb") && argc == 3) {
        rc = dn_privkey_to_protobuf(k, &b);
        rc = rc ? die("privpb", rc) : (puthex(b.data, b.len), 0);
    } else if (!strcmp(cmd, "pubpb") && argc == 3) {
        rc = dn_pubkey_to_protobuf(dn_privkey_public(k), &b);
        rc = rc ? die("pubpb", rc) : (puthex(b.data, b.len), 0);
    } else if (!strcmp(cmd, "sign") && argc == 4) {
        size_t ml;
        uint8_t *msg = unhex(argv[3], &ml), sig[DN_SIG_MAX];
        size_t sl;
        rc = dn_privkey_sign(k, msg, ml, sig, &sl);
        rc = rc ? die("sign", rc) : (puthex(sig, sl), 0);
        free(msg);
    } else {
        rc = usage();
    }
    dn_buf_free_secure(&b);
    dn_privkey_free(k);
    return rc;
}
