/* Multihash, multibase and CIDv1 helpers (internal).
 *
 * Only what peer ids need: the identity (0x00) and sha2-256 (0x12) hash
 * functions, the multibase prefixes libp2p meets, and CIDv1 with the
 * libp2p-key multicodec (0x72). Specs: multiformats/multihash,
 * multiformats/multibase, multiformats/cid, libp2p peer-ids. */
#ifndef DN_MULTIFORMATS_MULTIHASH_H
#define DN_MULTIFORMATS_MULTIHASH_H

#include <stddef.h>
#include <stdint.h>

#define DN__MH_IDENTITY 0x00
#define DN__MH_SHA2_256 0x12
#define DN__MH_SHA2_256_LEN 32
#define DN__CID_V1 0x01
#define DN__CODEC_LIBP2P_KEY 0x72

/* A decoded multihash; digest points into the input. */
typedef struct dn__mh {
    uint64_t code;
    const uint8_t *digest;
    size_t digest_len;
} dn__mh;

/* Decode exactly one multihash filling b[0..len). Returns 0;
 * DN_ETRUNCATED / DN_EMALFORMED when the digest length disagrees with the
 * bytes present (short or trailing), DN_EUNSUPPORTED for a hash function
 * other than identity and sha2-256, DN_EMALFORMED when a sha2-256 digest is
 * not 32 bytes. */
int dn__mh_decode(const uint8_t *b, size_t len, dn__mh *out);
/* Write code + length + digest into out. Returns bytes written or
 * DN_ETOOBIG. */
int dn__mh_encode(uint64_t code, const uint8_t *digest, size_t n, uint8_t *out, size_t outlen);
/* sha2-256 multihash of data (34 bytes). Returns 34 or DN_ETOOBIG/DN_ECRYPTO. */
int dn__mh_sha256(const uint8_t *data, size_t n, uint8_t *out, size_t outlen);

/* Multibase: a one-character prefix names the base. Supported: 'z'
 * base58btc, 'b' base32 (lower), 'B' base32 upper (decode only), 'f'/'F'
 * base16, 'm' base64, 'u' base64url. */
int dn__multibase_encode(char base, const uint8_t *in, size_t n, char *out, size_t outlen);
/* Decode s[0..n); returns bytes written, DN_EUNSUPPORTED for an unknown
 * prefix, or the base decoder's error. */
int dn__multibase_decode(const char *s, size_t n, uint8_t *out, size_t outlen);

/* Binary CIDv1: version 1, codec, multihash. Returns bytes written. */
int dn__cid_encode(uint64_t codec, const uint8_t *mh, size_t mhlen, uint8_t *out, size_t outlen);
/* Parse a binary CID. Only version 1 is accepted (DN_EUNSUPPORTED for
 * others); the multihash is checked with dn__mh_decode. */
int dn__cid_decode(const uint8_t *b, size_t len, uint64_t *codec, const uint8_t **mh,
                   size_t *mhlen);
/* Text CIDv1 with the libp2p-key codec around a peer id multihash, in the
 * given multibase (normally 'b'). Returns the string length. */
int dn__cid_libp2p_key_to_string(const uint8_t *mh, size_t mhlen, char base, char *out,
                                 size_t outlen);
/* Parse a multibase CIDv1 string and return its multihash (copied into mh).
 * A CID with a codec other than libp2p-key is DN_EUNSUPPORTED, and *why
 * (when non-NULL) gets a static explanation for every failure. */
int dn__cid_libp2p_key_parse(const char *s, size_t n, uint8_t *mh, size_t mhcap, const char **why);

/* dn_peerid_parse over s[0..n) (no NUL needed), with a static reason for
 * failures in *why (may be NULL). Used by the multiaddr parser so that its
 * error messages can say why a /p2p value was refused. */
struct dn_peerid;
int dn__peerid_parse_n(const char *s, size_t n, struct dn_peerid *out, const char **why);
/* dn_peerid_from_bytes with a static reason in *why. */
int dn__peerid_from_bytes_why(const uint8_t *mh, size_t len, struct dn_peerid *out,
                              const char **why);

#endif
