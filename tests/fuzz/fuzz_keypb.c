/* Fuzz the PublicKey / PrivateKey protobuf readers (peer-ids spec) and peer
 * ID key extraction on arbitrary bytes. Checks the contract: errors are
 * documented codes; a public key that parses re-encodes to exactly the
 * input (deterministic encoding, so one key has one peer ID); a private key
 * that parses re-encodes to a fixed point, signs, and its public key
 * verifies the signature; an identity peer ID made from a parsed key gives
 * the same key back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/buf.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"

static int documented(int rc)
{
    return rc == DN_EMALFORMED || rc == DN_ETRUNCATED || rc == DN_ETOOBIG ||
           rc == DN_EUNSUPPORTED || rc == DN_ENOMEM;
}

static void check_pub(const uint8_t *data, size_t size)
{
    dn_pubkey *p = NULL;
    int rc = dn_pubkey_from_protobuf(data, size, &p);
    if (rc) {
        if (!documented(rc) || p)
            abort();
        return;
    }
    dn_buf b = DN_BUF_INIT;
    if (dn_pubkey_to_protobuf(p, &b) || b.len != size || memcmp(b.data, data, size))
        abort();
    dn_peerid id;
    if (dn_peerid_from_pubkey(p, &id) || !dn_peerid_matches_pubkey(&id, p))
        abort();
    dn_pubkey *q = NULL;
    rc = dn_peerid_extract_pubkey(&id, &q);
    if (size <= 42) {
        if (rc || !dn_pubkey_equal(p, q))
            abort();
    } else if (rc != DN_ENOTFOUND) {
        abort();
    }
    /* Verifying arbitrary bytes as a signature must fail cleanly. */
    uint8_t sig[64];
    memset(sig, 0, sizeof sig);
    memcpy(sig, data, size < sizeof sig ? size : sizeof sig);
    rc = dn_pubkey_verify(p, data, size, sig, sizeof sig);
    if (rc && rc != DN_EBADSIG)
        abort();
    dn_pubkey_free(q);
    dn_pubkey_free(p);
    dn_buf_free(&b);
}

static void check_priv(const uint8_t *data, size_t size)
{
    dn_privkey *k = NULL;
    int rc = dn_privkey_from_protobuf(data, size, &k);
    if (rc) {
        if (!documented(rc) || k)
            abort();
        return;
    }
    dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT;
    dn_privkey *k2 = NULL;
    if (dn_privkey_to_protobuf(k, &a) || dn_privkey_from_protobuf(a.data, a.len, &k2) ||
        dn_privkey_to_protobuf(k2, &b) || a.len != b.len || memcmp(a.data, b.data, a.len))
        abort();
    if (!dn_pubkey_equal(dn_privkey_public(k), dn_privkey_public(k2)))
        abort();
    uint8_t sig[DN_SIG_MAX];
    size_t siglen = 0;
    if (dn_privkey_sign(k, data, size, sig, &siglen) || siglen > DN_SIG_MAX ||
        dn_pubkey_verify(dn_privkey_public(k2), data, size, sig, siglen))
        abort();
    dn_privkey_free(k2);
    dn_privkey_free(k);
    dn_buf_free_secure(&a);
    dn_buf_free_secure(&b);
}

static void check_peerid(const uint8_t *data, size_t size)
{
    if (size > DN_PEERID_MAX)
        return;
    dn_peerid id;
    memset(&id, 0, sizeof id);
    id.len = (uint8_t)size;
    memcpy(id.bytes, data, size);
    dn_pubkey *p = NULL;
    int rc = dn_peerid_extract_pubkey(&id, &p);
    if (rc == 0) {
        if (!p || !dn_peerid_matches_pubkey(&id, p))
            abort();
        dn_pubkey_free(p);
    } else if (p || (!documented(rc) && rc != DN_ENOTFOUND)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_pub(data, size);
    check_priv(data, size);
    check_peerid(data, size);
    return 0;
}
