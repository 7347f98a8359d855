/* Content identifiers in text form (multiformats/cid): what `dmsnet dht
 * provide <cid>` and findprovs take. The DHT's provider key is the CID's
 * multihash bytes, as go and js use it (so CIDv0 and CIDv1 of one content
 * name the same providers). */
#ifndef DN_MULTIFORMATS_CID_H
#define DN_MULTIFORMATS_CID_H

#include <stddef.h>
#include <stdint.h>

#define DN__CID_V0 0
#define DN__CODEC_DAG_PB 0x70 /* a CIDv0's implied codec */
/* The longest multihash a CID may carry here (code, length, a 128-byte
 * digest: every hash function in use fits). */
#define DN__CID_MH_MAX 160

typedef struct dn__cid {
    int version;      /* 0 or 1 */
    uint64_t codec;   /* the multicodec of the content (0x70 for v0) */
    uint64_t mh_code; /* the hash function */
    uint8_t mh[DN__CID_MH_MAX];
    size_t mh_len; /* the whole multihash: code, length, digest */
} dn__cid;

/* Parse s[0..n): CIDv0 ("Qm...": 46 base58btc characters, a sha2-256
 * multihash) or CIDv1 in a multibase ('b' base32 as usual, also 'B', 'z',
 * 'f', 'F', 'm', 'u'). Any hash function is accepted; the multihash must be
 * well formed (its length byte matches the digest) and end the CID. Returns 0,
 * or DN_EMALFORMED / DN_EUNSUPPORTED / DN_ETOOBIG with a static reason in
 * *why (may be NULL). */
int dn__cid_parse(const char *s, size_t n, dn__cid *out, const char **why);

/* The CIDv1 base32 text of a parsed CID (a v0 is written as its v1 form).
 * Returns the length or DN_ETOOBIG. */
int dn__cid_to_string_v1(const dn__cid *c, char *out, size_t outlen);

#endif
