/* Text CIDs (cid.h). Spec: multiformats/cid ("Decoding algorithm"): a
 * 46-character string starting "Qm" is a CIDv0 (base58btc of a sha2-256
 * multihash); anything else is a multibase string whose bytes are
 * <version><codec><multihash>. */
#include "multiformats/cid.h"

#include <string.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "multiformats/multihash.h"

static int fail(const char **why, const char *msg, int rc)
{
    if (why)
        *why = msg;
    return rc;
}

/* A multihash's shape, whatever the hash function: code, length, exactly
 * that many digest bytes. */
static int mh_shape(const uint8_t *b, size_t len, uint64_t *code, const char **why)
{
    uint64_t dlen;
    int n1 = dn_uvarint_decode(b, len, code);
    if (n1 < 0)
        return fail(why, "the multihash's hash function code is malformed", DN_EMALFORMED);
    int n2 = dn_uvarint_decode(b + n1, len - (size_t)n1, &dlen);
    if (n2 < 0)
        return fail(why, "the multihash's length is malformed", DN_EMALFORMED);
    size_t rest = len - (size_t)n1 - (size_t)n2;
    if (dlen != rest)
        return fail(
            why, dlen > rest ? "the multihash's digest is cut short" : "bytes follow the multihash",
            DN_EMALFORMED);
    if (*code == DN__MH_SHA2_256 && dlen != DN__MH_SHA2_256_LEN)
        return fail(why, "a sha2-256 digest is not 32 bytes", DN_EMALFORMED);
    if (dlen == 0 && *code != DN__MH_IDENTITY)
        return fail(why, "the multihash's digest is empty", DN_EMALFORMED);
    return 0;
}

int dn__cid_parse(const char *s, size_t n, dn__cid *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return fail(why, "empty", DN_EMALFORMED);
    uint8_t bin[DN__CID_MH_MAX + 24];
    if (n == 46 && s[0] == 'Q' && s[1] == 'm') {
        int k = dn_base58_decode(s, n, bin, sizeof bin);
        if (k < 0)
            return fail(why, "a CIDv0 (Qm...) that is not base58btc", DN_EMALFORMED);
        uint64_t code;
        int rc = mh_shape(bin, (size_t)k, &code, why);
        if (rc)
            return rc;
        if (code != DN__MH_SHA2_256)
            return fail(why, "a CIDv0's multihash must be sha2-256", DN_EMALFORMED);
        out->version = DN__CID_V0;
        out->codec = DN__CODEC_DAG_PB;
        out->mh_code = code;
        memcpy(out->mh, bin, (size_t)k);
        out->mh_len = (size_t)k;
        return 0;
    }
    if (n > 2 * sizeof bin)
        return fail(why, "too long for a CID", DN_ETOOBIG);
    int k = dn__multibase_decode(s, n, bin, sizeof bin);
    if (k == DN_EUNSUPPORTED)
        return fail(why, "not a CID (neither Qm... nor a multibase prefix such as 'b')", k);
    if (k < 0)
        return fail(why,
                    k == DN_ETOOBIG ? "too long for a CID" : "bad characters for its multibase",
                    k == DN_ETOOBIG ? k : DN_EMALFORMED);
    uint64_t version, codec;
    int n1 = dn_uvarint_decode(bin, (size_t)k, &version);
    if (n1 < 0)
        return fail(why, "the CID version is malformed", DN_EMALFORMED);
    if (version == 0x12) /* a multihash in a multibase, not a CID */
        return fail(why, "a bare multihash, not a CID (CIDv0 is written Qm... in base58btc)",
                    DN_EMALFORMED);
    if (version != DN__CID_V1)
        return fail(why, "an unknown CID version (only 0 and 1 exist)", DN_EUNSUPPORTED);
    int n2 = dn_uvarint_decode(bin + n1, (size_t)k - (size_t)n1, &codec);
    if (n2 < 0)
        return fail(why, "the CID's codec is malformed", DN_EMALFORMED);
    size_t off = (size_t)n1 + (size_t)n2, mhlen = (size_t)k - off;
    uint64_t code;
    int rc = mh_shape(bin + off, mhlen, &code, why);
    if (rc)
        return rc;
    if (mhlen > DN__CID_MH_MAX)
        return fail(why, "the multihash is longer than 160 bytes", DN_ETOOBIG);
    out->version = 1;
    out->codec = codec;
    out->mh_code = code;
    memcpy(out->mh, bin + off, mhlen);
    out->mh_len = mhlen;
    return 0;
}

int dn__cid_to_string_v1(const dn__cid *c, char *out, size_t outlen)
{
    uint8_t bin[DN__CID_MH_MAX + 24];
    int n = dn__cid_encode(c->codec, c->mh, c->mh_len, bin, sizeof bin);
    if (n < 0)
        return n;
    return dn__multibase_encode('b', bin, (size_t)n, out, outlen);
}
