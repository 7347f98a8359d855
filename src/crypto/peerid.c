/* Peer IDs from public keys (libp2p/specs peer-ids/peer-ids.md, "Peer Ids").
 * The text forms are in src/multiformats/peerid_text.c. */
#include "dmsnet/peerid.h"

#include <string.h>

#include <openssl/evp.h>

#include "dmsnet/error.h"

#define MH_IDENTITY 0x00
#define MH_SHA2_256 0x12
#define SHA256_LEN 32
/* Keys whose PublicKey protobuf is at most this long are inlined. */
#define IDENTITY_MAX 42

int dn_peerid_from_pubkey(const dn_pubkey *k, dn_peerid *out)
{
    if (!k || !out)
        return DN_EINVAL;
    dn_buf pb = DN_BUF_INIT;
    int rc = dn_pubkey_to_protobuf(k, &pb);
    if (rc)
        return rc;
    if (pb.len <= IDENTITY_MAX) {
        /* Identity multihash: code 0x00, length (one varint byte, < 128),
         * then the protobuf itself, so the key can be recovered from the id. */
        out->bytes[0] = MH_IDENTITY;
        out->bytes[1] = (uint8_t)pb.len;
        memcpy(out->bytes + 2, pb.data, pb.len);
        out->len = (uint8_t)(2 + pb.len);
    } else {
        unsigned int n = 0;
        out->bytes[0] = MH_SHA2_256;
        out->bytes[1] = SHA256_LEN;
        if (EVP_Digest(pb.data, pb.len, out->bytes + 2, &n, EVP_sha256(), NULL) != 1 ||
            n != SHA256_LEN)
            rc = DN_ECRYPTO;
        out->len = 2 + SHA256_LEN;
    }
    dn_buf_free(&pb);
    return rc;
}

int dn_peerid_extract_pubkey(const dn_peerid *id, dn_pubkey **out)
{
    if (!id || !out)
        return DN_EINVAL;
    *out = NULL;
    if (id->len < 2 || id->len > DN_PEERID_MAX)
        return DN_EMALFORMED;
    if (id->bytes[0] == MH_SHA2_256)
        return DN_ENOTFOUND; /* only a hash of the key: ask the peer for it */
    if (id->bytes[0] != MH_IDENTITY)
        return DN_EUNSUPPORTED;
    /* The digest length is one varint byte (<= 42 < 128 for valid ids). */
    if (id->bytes[1] & 0x80 || id->bytes[1] != id->len - 2)
        return DN_EMALFORMED;
    dn_pubkey *k;
    int rc = dn_pubkey_from_protobuf(id->bytes + 2, id->bytes[1], &k);
    if (rc)
        return rc;
    /* An identity id must hold a key short enough to be inlined; a longer
     * one would hash to a different (sha2-256) id for the same key. */
    if (!dn_peerid_matches_pubkey(id, k)) {
        dn_pubkey_free(k);
        return DN_EMALFORMED;
    }
    *out = k;
    return 0;
}

bool dn_peerid_matches_pubkey(const dn_peerid *id, const dn_pubkey *k)
{
    dn_peerid mine;
    if (!id || !k || dn_peerid_from_pubkey(k, &mine))
        return false;
    return mine.len == id->len && !memcmp(mine.bytes, id->bytes, mine.len);
}
