/* Multihash (multiformats/multihash: <varint code><varint length><digest>),
 * multibase prefixes (multiformats/multibase) and CIDv1
 * (multiformats/cid: <multibase>(<varint 1><varint codec><multihash>)). */
#include "multiformats/multihash.h"

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

#include <openssl/sha.h>
#include <string.h>

/* Longest binary CID we ever parse: version + codec varints + the largest
 * multihash a peer id may be (48 bytes) with slack for longer hashes that
 * are rejected afterwards with a precise error instead of "too big". */
#define CID_MAX_BIN 128

int dn__mh_decode(const uint8_t *b, size_t len, dn__mh *out)
{
    uint64_t code, dlen;
    int n1 = dn_uvarint_decode(b, len, &code);
    if (n1 < 0)
        return n1;
    int n2 = dn_uvarint_decode(b + n1, len - (size_t)n1, &dlen);
    if (n2 < 0)
        return n2;
    size_t off = (size_t)n1 + (size_t)n2;
    if (dlen > len - off)
        return DN_ETRUNCATED;
    if (dlen < len - off)
        return DN_EMALFORMED; /* trailing bytes after the digest */
    if (code != DN__MH_IDENTITY && code != DN__MH_SHA2_256)
        return DN_EUNSUPPORTED;
    if (code == DN__MH_SHA2_256 && dlen != DN__MH_SHA2_256_LEN)
        return DN_EMALFORMED;
    out->code = code;
    out->digest = b + off;
    out->digest_len = (size_t)dlen;
    return 0;
}

int dn__mh_encode(uint64_t code, const uint8_t *digest, size_t n, uint8_t *out, size_t outlen)
{
    size_t need = dn_uvarint_len(code) + dn_uvarint_len(n) + n;
    if (need > outlen || need > (size_t)INT32_MAX)
        return DN_ETOOBIG;
    size_t o = dn_uvarint_encode(code, out);
    o += dn_uvarint_encode(n, out + o);
    if (n > 0)
        memcpy(out + o, digest, n);
    return (int)(o + n);
}

int dn__mh_sha256(const uint8_t *data, size_t n, uint8_t *out, size_t outlen)
{
    if (outlen < 2 + DN__MH_SHA2_256_LEN)
        return DN_ETOOBIG;
    out[0] = DN__MH_SHA2_256;
    out[1] = DN__MH_SHA2_256_LEN;
    if (SHA256(data, n, out + 2) == NULL)
        return DN_ECRYPTO;
    return 2 + DN__MH_SHA2_256_LEN;
}

int dn__multibase_encode(char base, const uint8_t *in, size_t n, char *out, size_t outlen)
{
    if (outlen < 2)
        return DN_ETOOBIG;
    int rc;
    switch (base) {
    case 'z': rc = dn_base58_encode(in, n, out + 1, outlen - 1); break;
    case 'b': rc = dn_base32_encode(in, n, out + 1, outlen - 1); break;
    case 'f': rc = dn_base16_encode(in, n, out + 1, outlen - 1); break;
    case 'm': rc = dn_base64_encode(in, n, out + 1, outlen - 1); break;
    case 'u': rc = dn_base64url_encode(in, n, out + 1, outlen - 1); break;
    default: return DN_EUNSUPPORTED;
    }
    if (rc < 0)
        return rc;
    out[0] = base;
    return rc + 1;
}

int dn__multibase_decode(const char *s, size_t n, uint8_t *out, size_t outlen)
{
    if (n < 1)
        return DN_EMALFORMED;
    const char *p = s + 1;
    size_t m = n - 1;
    switch (s[0]) {
    case 'z': return dn_base58_decode(p, m, out, outlen);
    case 'b':
    case 'B': return dn_base32_decode(p, m, out, outlen);
    case 'f':
    case 'F': return dn_base16_decode(p, m, out, outlen);
    case 'm': return dn_base64_decode(p, m, out, outlen);
    case 'u': return dn_base64url_decode(p, m, out, outlen);
    default: return DN_EUNSUPPORTED;
    }
}

int dn__cid_encode(uint64_t codec, const uint8_t *mh, size_t mhlen, uint8_t *out, size_t outlen)
{
    size_t need = 1 + dn_uvarint_len(codec) + mhlen;
    if (need > outlen || need > (size_t)INT32_MAX)
        return DN_ETOOBIG;
    size_t o = dn_uvarint_encode(DN__CID_V1, out);
    o += dn_uvarint_encode(codec, out + o);
    memcpy(out + o, mh, mhlen);
    return (int)(o + mhlen);
}

int dn__cid_decode(const uint8_t *b, size_t len, uint64_t *codec, const uint8_t **mh, size_t *mhlen)
{
    uint64_t version, c;
    int n1 = dn_uvarint_decode(b, len, &version);
    if (n1 < 0)
        return n1;
    if (version != DN__CID_V1)
        return DN_EUNSUPPORTED;
    int n2 = dn_uvarint_decode(b + n1, len - (size_t)n1, &c);
    if (n2 < 0)
        return n2;
    size_t off = (size_t)n1 + (size_t)n2;
    dn__mh h;
    int rc = dn__mh_decode(b + off, len - off, &h);
    if (rc < 0)
        return rc;
    *codec = c;
    *mh = b + off;
    *mhlen = len - off;
    return 0;
}

int dn__cid_libp2p_key_to_string(const uint8_t *mh, size_t mhlen, char base, char *out,
                                 size_t outlen)
{
    uint8_t bin[CID_MAX_BIN];
    int n = dn__cid_encode(DN__CODEC_LIBP2P_KEY, mh, mhlen, bin, sizeof(bin));
    if (n < 0)
        return n;
    return dn__multibase_encode(base, bin, (size_t)n, out, outlen);
}

static void set_why(const char **why, const char *msg)
{
    if (why)
        *why = msg;
}

int dn__cid_libp2p_key_parse(const char *s, size_t n, uint8_t *mh, size_t mhcap, const char **why)
{
    uint8_t bin[CID_MAX_BIN];
    int len = dn__multibase_decode(s, n, bin, sizeof(bin));
    if (len == DN_EUNSUPPORTED) {
        set_why(why, "unknown multibase prefix");
        return len;
    }
    if (len == DN_ETOOBIG) {
        set_why(why, "CID too long");
        return len;
    }
    if (len < 0) {
        set_why(why, "bad multibase encoding");
        return len;
    }
    uint64_t version;
    int n1 = dn_uvarint_decode(bin, (size_t)len, &version);
    if (n1 < 0) {
        set_why(why, "bad CID version varint");
        return n1 == DN_ETRUNCATED ? DN_EMALFORMED : n1;
    }
    if (version != DN__CID_V1) {
        set_why(why, "not a CIDv1");
        return DN_EUNSUPPORTED;
    }
    uint64_t codec;
    const uint8_t *h;
    size_t hlen;
    int rc = dn__cid_decode(bin, (size_t)len, &codec, &h, &hlen);
    if (rc == DN_EUNSUPPORTED) {
        set_why(why, "CID multihash is neither identity nor sha2-256");
        return rc;
    }
    if (rc < 0) {
        set_why(why, "malformed CID multihash");
        return rc == DN_ETRUNCATED ? DN_EMALFORMED : rc;
    }
    if (codec != DN__CODEC_LIBP2P_KEY) {
        set_why(why, "CID multicodec is not libp2p-key (0x72)");
        return DN_EUNSUPPORTED;
    }
    if (hlen > mhcap) {
        set_why(why, "CID multihash too long for a peer id");
        return DN_ETOOBIG;
    }
    memcpy(mh, h, hlen);
    return (int)hlen;
}
