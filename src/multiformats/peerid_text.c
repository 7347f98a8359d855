/* Peer id text forms (libp2p peer-ids spec, "String representation"):
 * the legacy base58btc multihash ("12D3KooW...", "Qm...") and CIDv1 with the
 * libp2p-key multicodec in a multibase ("bafz..."). The key-related half of
 * peerid.h lives in src/crypto/peerid.c. */
#include "dmsnet/peerid.h"

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "multiformats/multihash.h"

#include <string.h>

/* Keys whose protobuf is at most 42 bytes are inlined with the identity
 * multihash (peer-ids spec, "Peer Ids" step 4); a longer identity digest is
 * not a peer id any implementation would produce (rust-libp2p refuses it). */
#define INLINE_KEY_MAX 42

static void set_why(const char **why, const char *msg)
{
    if (why)
        *why = msg;
}

int dn__peerid_from_bytes_why(const uint8_t *mh, size_t len, dn_peerid *out, const char **why)
{
    if (mh == NULL || out == NULL) {
        set_why(why, "no input");
        return DN_EINVAL;
    }
    if (len == 0) {
        set_why(why, "empty multihash");
        return DN_EMALFORMED;
    }
    if (len > DN_PEERID_MAX) {
        set_why(why, "multihash longer than any peer id");
        return DN_ETOOBIG;
    }
    dn__mh h;
    int rc = dn__mh_decode(mh, len, &h);
    switch (rc) {
    case 0: break;
    case DN_EUNSUPPORTED: set_why(why, "hash function is neither identity nor sha2-256"); return rc;
    case DN_ETRUNCATED:
        set_why(why, "multihash digest is shorter than its length says");
        return DN_EMALFORMED;
    default: set_why(why, "malformed multihash"); return DN_EMALFORMED;
    }
    if (h.code == DN__MH_IDENTITY && h.digest_len == 0) {
        set_why(why, "empty identity multihash");
        return DN_EMALFORMED;
    }
    if (h.code == DN__MH_IDENTITY && h.digest_len > INLINE_KEY_MAX) {
        set_why(why, "identity multihash longer than 42 bytes");
        return DN_ETOOBIG;
    }
    out->len = (uint8_t)len;
    memcpy(out->bytes, mh, len);
    return 0;
}

int dn_peerid_from_bytes(const uint8_t *mh, size_t len, dn_peerid *out)
{
    return dn__peerid_from_bytes_why(mh, len, out, NULL);
}

int dn__peerid_parse_n(const char *s, size_t n, dn_peerid *out, const char **why)
{
    if (s == NULL || out == NULL) {
        set_why(why, "no input");
        return DN_EINVAL;
    }
    if (n == 0) {
        set_why(why, "empty peer id");
        return DN_EMALFORMED;
    }
    if (n >= DN_PEERID_STR_MAX) {
        set_why(why, "peer id text too long");
        return DN_ETOOBIG;
    }
    uint8_t mh[DN_PEERID_MAX];
    int len;
    /* Every base58btc multihash of identity (leading 0x00 byte) starts with
     * '1' and every sha2-256 one with "Qm"; anything else must be a
     * multibase CID, whose prefix ('b', 'z', ...) says the base. */
    if (s[0] == '1' || s[0] == 'Q') {
        len = dn_base58_decode(s, n, mh, sizeof(mh));
        if (len == DN_ETOOBIG) {
            set_why(why, "multihash longer than any peer id");
            return len;
        }
        if (len < 0) {
            set_why(why, "invalid base58btc character");
            return len;
        }
    } else {
        len = dn__cid_libp2p_key_parse(s, n, mh, sizeof(mh), why);
        if (len < 0)
            return len;
    }
    return dn__peerid_from_bytes_why(mh, (size_t)len, out, why);
}

int dn_peerid_parse(const char *s, dn_peerid *out)
{
    if (s == NULL)
        return DN_EINVAL;
    return dn__peerid_parse_n(s, strnlen(s, DN_PEERID_STR_MAX), out, NULL);
}

static int valid_len(const dn_peerid *id)
{
    return id != NULL && id->len > 0 && id->len <= DN_PEERID_MAX;
}

int dn_peerid_to_string(const dn_peerid *id, char *out, size_t outlen)
{
    if (!valid_len(id))
        return DN_EINVAL;
    return dn_base58_encode(id->bytes, id->len, out, outlen);
}

int dn_peerid_to_cid_string(const dn_peerid *id, char *out, size_t outlen)
{
    if (!valid_len(id))
        return DN_EINVAL;
    return dn__cid_libp2p_key_to_string(id->bytes, id->len, 'b', out, outlen);
}

const char *dn_peerid_short(const dn_peerid *id, char buf[16])
{
    char full[DN_PEERID_STR_MAX];
    int n = dn_peerid_to_string(id, full, sizeof(full));
    if (n < 0) {
        memcpy(buf, "<invalid>", sizeof("<invalid>"));
        return buf;
    }
    size_t keep = n < 6 ? (size_t)n : 6;
    memcpy(buf, full + (size_t)n - keep, keep + 1);
    return buf;
}

bool dn_peerid_equal(const dn_peerid *a, const dn_peerid *b)
{
    return a->len == b->len && a->len <= DN_PEERID_MAX && memcmp(a->bytes, b->bytes, a->len) == 0;
}
