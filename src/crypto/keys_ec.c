/* secp256k1 and ECDSA P-256 keys (sign and verify), RSA public keys (verify
 * only), all through OpenSSL 3.
 *
 * Spec: libp2p/specs peer-ids/peer-ids.md, "Key Types". Encodings, byte for
 * byte as go-libp2p writes them and the spec's test vectors show:
 *   secp256k1  private Data: 32-byte scalar; public Data: 33-byte compressed
 *              point; signature: DER (r, s) over SHA-256(msg).
 *   ECDSA      private Data: SEC1 ECPrivateKey DER (RFC 5915) with the curve
 *              OID and public key, 121 bytes for P-256 (js-libp2p writes the
 *              same bytes); public Data: SubjectPublicKeyInfo DER (91 bytes);
 *              signature: DER (r, s) over SHA-256(msg).
 *   RSA        public Data: SubjectPublicKeyInfo DER; RSASSA-PKCS1-v1_5 with
 *              SHA-256.
 * js-libp2p (@libp2p/crypto 5) deviates for ECDSA: it writes public keys as
 * SEQUENCE { 1, [0] curve OID, [1] point } (87 bytes, which go cannot read)
 * and signs in raw r || s form (64 bytes). We read both, so js ECDSA peers
 * verify, but write what the spec and go-libp2p use. */
#include "crypto/keys_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"

#define SCALAR_LEN 32
#define SECP_PUB_LEN 33
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192

/* SubjectPublicKeyInfo { AlgorithmIdentifier { id-ecPublicKey, prime256v1 },
 * BIT STRING (65-byte point) } up to the point. */
static const uint8_t spki_p256_prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
/* js-libp2p's public form: SEQUENCE { INTEGER 1, [0] { prime256v1 },
 * [1] { BIT STRING point } } up to the point. */
static const uint8_t js_p256_prefix[] = {0x30, 0x55, 0x02, 0x01, 0x01, 0xa0, 0x0a, 0x06,
                                         0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
                                         0x07, 0xa1, 0x44, 0x03, 0x42, 0x00};
/* SEC1 ECPrivateKey: SEQUENCE { INTEGER 1, OCTET STRING (32), ... */
static const uint8_t sec1_head[] = {0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20};
/* ... [0] { prime256v1 }, [1] { BIT STRING point } } */
static const uint8_t sec1_mid[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
                                   0x03, 0x01, 0x07, 0xa1, 0x44, 0x03, 0x42, 0x00};
#define SEC1_LEN (sizeof sec1_head + SCALAR_LEN + sizeof sec1_mid + DN__EC_POINT_LEN)
#define SPKI_LEN (sizeof spki_p256_prefix + DN__EC_POINT_LEN)

static int curve_nid(dn_key_type t)
{
    return t == DN_KEY_SECP256K1 ? NID_secp256k1 : NID_X9_62_prime256v1;
}

static const char *curve_name(dn_key_type t)
{
    return t == DN_KEY_SECP256K1 ? "secp256k1" : "prime256v1";
}

/* OpenSSL leaves errors on a per-thread queue; a failed check on hostile
 * input must not leave them behind for unrelated code to trip over. */
static int ossl_fail(int rc)
{
    ERR_clear_error();
    return rc;
}

/* Build an EVP_PKEY from an encoded point and, for private keys, the scalar. */
static int make_pkey(dn_key_type t, const uint8_t *pub, size_t publen, const uint8_t *priv,
                     EVP_PKEY **out)
{
    int rc = DN_ECRYPTO;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *d = NULL;
    *out = NULL;
    if (!bld)
        return DN_ENOMEM;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve_name(t), 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen))
        goto out;
    if (priv) {
        d = BN_secure_new();
        if (!d || !BN_bin2bn(priv, SCALAR_LEN, d) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))
            goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, out, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    rc = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    if (params) {
        /* OpenSSL 3.0 has no OSSL_PARAM_clear_free: wipe the scalar copy. */
        OSSL_PARAM *sec = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY);
        if (sec && sec->data)
            OPENSSL_cleanse(sec->data, sec->data_size);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    return rc ? ossl_fail(rc) : 0;
}

/* Decode a point and check it lies on the curve and is not the identity. */
static int point_check(dn_key_type t, const uint8_t *pt, size_t len)
{
    int rc = DN_EMALFORMED;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(curve_nid(t));
    EC_POINT *p = g ? EC_POINT_new(g) : NULL;
    if (!p)
        rc = DN_ECRYPTO;
    else if (EC_POINT_oct2point(g, p, pt, len, NULL) == 1 && !EC_POINT_is_at_infinity(g, p))
        rc = 0;
    EC_POINT_free(p);
    EC_GROUP_free(g);
    return rc ? ossl_fail(rc) : 0;
}

/* pub = d * G. DN_EMALFORMED when d is 0 or not below the group order. */
static int point_from_scalar(dn_key_type t, const uint8_t d[SCALAR_LEN], int compressed,
                             uint8_t *pub, size_t publen)
{
    int rc = DN_ECRYPTO;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(curve_nid(t));
    EC_POINT *p = g ? EC_POINT_new(g) : NULL;
    BN_CTX *bctx = BN_CTX_secure_new();
    BIGNUM *bd = BN_secure_new();
    if (!p || !bctx || !bd || !BN_bin2bn(d, SCALAR_LEN, bd))
        goto out;
    if (BN_is_zero(bd) || BN_cmp(bd, EC_GROUP_get0_order(g)) >= 0) {
        rc = DN_EMALFORMED;
        goto out;
    }
    if (!EC_POINT_mul(g, p, bd, NULL, NULL, bctx))
        goto out;
    if (EC_POINT_point2oct(g, p,
                           compressed ? POINT_CONVERSION_COMPRESSED : POINT_CONVERSION_UNCOMPRESSED,
                           pub, publen, bctx) != publen)
        goto out;
    rc = 0;
out:
    BN_clear_free(bd);
    BN_CTX_free(bctx);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    return rc ? ossl_fail(rc) : 0;
}

static int set_pub_data(dn_pubkey *k, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    k->data = malloc(alen + blen);
    if (!k->data)
        return DN_ENOMEM;
    memcpy(k->data, a, alen);
    if (blen)
        memcpy(k->data + alen, b, blen);
    k->len = alen + blen;
    return 0;
}

/* ---- public keys -------------------------------------------------------- */

/* The public exponent bounds the cost of every verification: the modexp
 * takes one squaring per bit of e, so a 3,071-bit e makes an RSA-3072
 * verify cost milliseconds instead of microseconds. Other libp2p stacks
 * accept only small exponents: go-libp2p verifies with Go's crypto/rsa,
 * which refuses e < 2 and e > 2^31 - 1; rust-libp2p verifies with ring
 * (RSA_PKCS1_2048_8192_SHA256), which wants e odd, 3 <= e <= 2^33 - 1.
 * We take what both accept: e odd, 3 <= e <= 2^31 - 1 (31 bits). Keys in
 * the wild use 65537 (and rarely 3). */
#define RSA_E_MAX_BITS 31

/* Why an RSA key is not acceptable as a libp2p identity, or NULL. Sets *rc
 * to the error to return. */
static const char *rsa_key_problem(EVP_PKEY *pk, int *rc)
{
    int bits = EVP_PKEY_get_bits(pk);
    /* go-libp2p refuses RSA keys below 2048 bits (too weak to be an
     * identity) and above 8192 bits (core/crypto/rsa_common.go,
     * MinRsaKeyBits / maxRsaKeyBits; ring's RSA_PKCS1_2048_8192_SHA256 has
     * the same range): verification cost grows with the modulus too. */
    if (bits < RSA_MIN_BITS) {
        *rc = DN_EUNSUPPORTED;
        return "modulus below 2048 bits";
    }
    if (bits > RSA_MAX_BITS) {
        *rc = DN_ETOOBIG;
        return "modulus above 8192 bits";
    }
    BIGNUM *n = NULL, *e = NULL;
    const char *why = NULL;
    if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        *rc = DN_ECRYPTO;
        why = "cannot read the key's components";
    } else if (!BN_is_odd(n)) {
        *rc = DN_EMALFORMED; /* a product of odd primes is odd */
        why = "even modulus";
    } else if (!BN_is_odd(e) || BN_num_bits(e) < 2) {
        *rc = DN_EMALFORMED; /* e = 1 or even: not an RSA key */
        why = "public exponent is even or below 3";
    } else if (BN_num_bits(e) > RSA_E_MAX_BITS) {
        *rc = DN_EUNSUPPORTED;
        why = "public exponent above 2^31 - 1";
    }
    BN_free(n);
    BN_free(e);
    return why;
}

static int rsa_pubkey_parse(dn_pubkey *k, const uint8_t *data, size_t len)
{
    const unsigned char *p = data;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)len);
    if (!pk)
        return ossl_fail(DN_EMALFORMED);
    int rc = 0;
    unsigned char *der = NULL;
    int dlen;
    const char *why;
    if (p != data + len) {
        rc = DN_EMALFORMED; /* trailing bytes after the DER structure */
    } else if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
        rc = DN_EMALFORMED; /* the type says RSA, the DER says otherwise */
    } else if ((why = rsa_key_problem(pk, &rc)) != NULL) {
        /* Before the canonical check: re-encoding costs as much as the
         * parse (~0.13 ms for RSA-3072 in OpenSSL 3), wasted on a key we
         * refuse anyway. DEBUG, not INFO: any peer can send such keys as
         * often as it likes, and the caller reports the error code. */
        DN_DEBUG("keys", "RSA key of %d bits rejected: %s", EVP_PKEY_get_bits(pk), why);
    } else if ((dlen = i2d_PUBKEY(pk, &der)) < 0 || (size_t)dlen != len || memcmp(der, data, len)) {
        /* Only canonical DER: one key, one encoding, one peer ID. */
        rc = DN_EMALFORMED;
    }
    OPENSSL_free(der);
    if (rc) {
        EVP_PKEY_free(pk);
        return ossl_fail(rc);
    }
    k->pkey = pk;
    return 0;
}

int dn__ec_pubkey_parse(dn_pubkey *k, const uint8_t *data, size_t len)
{
    const uint8_t *pt;
    size_t ptlen;
    switch (k->type) {
    case DN_KEY_RSA: return rsa_pubkey_parse(k, data, len);
    case DN_KEY_SECP256K1:
        /* Compressed point only: go and js write it so, and accepting the
         * 65-byte form too would give one key two peer IDs. */
        if (len != SECP_PUB_LEN || (data[0] != 0x02 && data[0] != 0x03))
            return DN_EMALFORMED;
        pt = data;
        ptlen = len;
        break;
    case DN_KEY_ECDSA:
        if (len == SPKI_LEN && !memcmp(data, spki_p256_prefix, sizeof spki_p256_prefix))
            pt = data + sizeof spki_p256_prefix;
        else if (len == sizeof js_p256_prefix + DN__EC_POINT_LEN &&
                 !memcmp(data, js_p256_prefix, sizeof js_p256_prefix))
            pt = data + sizeof js_p256_prefix;
        else
            return len < 8 ? DN_EMALFORMED : DN_EUNSUPPORTED; /* other curves, other forms */
        ptlen = DN__EC_POINT_LEN;
        if (pt[0] != 0x04)
            return DN_EUNSUPPORTED; /* compressed/hybrid points: go rejects them too */
        break;
    default: return DN_EUNSUPPORTED;
    }
    int rc = point_check(k->type, pt, ptlen);
    if (!rc)
        rc = make_pkey(k->type, pt, ptlen, NULL, &k->pkey);
    return rc;
}

/* ---- private keys ------------------------------------------------------- */

/* Fill k->pkey and k->pub from k->scalar. */
static int ec_from_scalar(dn_privkey *k)
{
    uint8_t pub[DN__EC_POINT_LEN];
    int compressed = k->type == DN_KEY_SECP256K1;
    size_t publen = compressed ? SECP_PUB_LEN : DN__EC_POINT_LEN;
    int rc = point_from_scalar(k->type, k->scalar, compressed, pub, publen);
    if (!rc)
        rc = make_pkey(k->type, pub, publen, k->scalar, &k->pkey);
    /* The public half gets its own public-only EVP_PKEY. */
    if (!rc)
        rc = make_pkey(k->type, pub, publen, NULL, &k->pub.pkey);
    if (!rc) {
        if (compressed)
            rc = set_pub_data(&k->pub, pub, publen, NULL, 0);
        else
            rc = set_pub_data(&k->pub, spki_p256_prefix, sizeof spki_p256_prefix, pub, publen);
    }
    return rc;
}

int dn__ec_privkey_parse(dn_privkey *k, const uint8_t *data, size_t len)
{
    if (k->type == DN_KEY_SECP256K1) {
        if (len != SCALAR_LEN)
            return DN_EMALFORMED;
        memcpy(k->scalar, data, SCALAR_LEN);
        return ec_from_scalar(k);
    }
    if (k->type != DN_KEY_ECDSA)
        return DN_EUNSUPPORTED;
    /* Exactly the SEC1 layout go (x509.MarshalECPrivateKey) and js write for
     * P-256; the embedded public key must be the one the scalar gives. */
    if (len != SEC1_LEN) {
        /* A different length with a SEQUENCE tag is most likely another curve. */
        return len > 2 && data[0] == 0x30 ? DN_EUNSUPPORTED : DN_EMALFORMED;
    }
    const uint8_t *mid = data + sizeof sec1_head + SCALAR_LEN;
    if (memcmp(data, sec1_head, sizeof sec1_head))
        return DN_EMALFORMED;
    if (memcmp(mid, sec1_mid, sizeof sec1_mid))
        return mid[0] == 0xa0 ? DN_EUNSUPPORTED : DN_EMALFORMED;
    memcpy(k->scalar, data + sizeof sec1_head, SCALAR_LEN);
    int rc = ec_from_scalar(k);
    if (!rc &&
        memcmp(k->pub.data + sizeof spki_p256_prefix, mid + sizeof sec1_mid, DN__EC_POINT_LEN))
        rc = DN_EMALFORMED;
    return rc;
}

int dn__ec_privkey_generate(dn_privkey *k)
{
    /* A uniformly random 32-byte string is a valid scalar unless it is 0 or
     * not below the order (about 2^-32 for P-256, 2^-128 for secp256k1). */
    for (int tries = 0; tries < 64; tries++) {
        randombytes_buf(k->scalar, SCALAR_LEN);
        int rc = ec_from_scalar(k);
        if (rc != DN_EMALFORMED)
            return rc;
    }
    return DN_ECRYPTO;
}

int dn__ec_privkey_data(const dn_privkey *k, dn_buf *out)
{
    if (k->type == DN_KEY_SECP256K1)
        return dn_buf_append(out, k->scalar, SCALAR_LEN);
    int rc = dn_buf_reserve(out, SEC1_LEN);
    if (!rc)
        rc = dn_buf_append(out, sec1_head, sizeof sec1_head);
    if (!rc)
        rc = dn_buf_append(out, k->scalar, SCALAR_LEN);
    if (!rc)
        rc = dn_buf_append(out, sec1_mid, sizeof sec1_mid);
    if (!rc)
        rc = dn_buf_append(out, k->pub.data + sizeof spki_p256_prefix, DN__EC_POINT_LEN);
    return rc;
}

/* ---- signatures --------------------------------------------------------- */

/* BIP-62 (which the spec cites for secp256k1) wants low S, and js-libp2p's
 * verifier (noble-secp256k1, lowS by default) rejects high-S signatures, so
 * replace s by n - s when s > n/2. */
static int secp_low_s(uint8_t *sig, size_t *siglen)
{
    int rc = DN_ECRYPTO;
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)*siglen);
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp256k1);
    BIGNUM *half = BN_new(), *ns = NULL, *nr = NULL;
    if (!es || !g || !half)
        goto out;
    const BIGNUM *r, *s;
    const BIGNUM *n = EC_GROUP_get0_order(g);
    ECDSA_SIG_get0(es, &r, &s);
    if (!BN_rshift1(half, n))
        goto out;
    if (BN_cmp(s, half) > 0) {
        ns = BN_new();
        nr = BN_dup(r);
        if (!ns || !nr || !BN_sub(ns, n, s) || !ECDSA_SIG_set0(es, nr, ns))
            goto out;
        nr = ns = NULL; /* owned by es now */
        int len = i2d_ECDSA_SIG(es, NULL);
        if (len <= 0 || len > DN_SIG_MAX)
            goto out;
        unsigned char *q = sig;
        if (i2d_ECDSA_SIG(es, &q) != len)
            goto out;
        *siglen = (size_t)len;
    }
    rc = 0;
out:
    BN_free(nr);
    BN_free(ns);
    BN_free(half);
    EC_GROUP_free(g);
    ECDSA_SIG_free(es);
    return rc ? ossl_fail(rc) : 0;
}

int dn__ec_sign(const dn_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig, size_t *siglen)
{
    if (!k->pkey)
        return DN_EUNSUPPORTED;
    int rc = DN_ECRYPTO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = 0;
    /* The digest is SHA-256 of the message; OpenSSL emits DER (r, s). */
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, &n, msg, len) != 1 || n > DN_SIG_MAX)
        goto out;
    n = DN_SIG_MAX;
    if (EVP_DigestSign(ctx, sig, &n, msg, len) != 1)
        goto out;
    *siglen = n;
    rc = k->type == DN_KEY_SECP256K1 ? secp_low_s(sig, siglen) : 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc ? ossl_fail(rc) : 0;
}

static int digest_verify(EVP_PKEY *pk, const uint8_t *msg, size_t len, const uint8_t *sig,
                         size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : ossl_fail(DN_EBADSIG);
}

/* js-libp2p signs ECDSA with WebCrypto, which gives r || s (32 bytes each);
 * re-encode it as DER for OpenSSL. */
static int raw_to_der(const uint8_t *raw, uint8_t *der, size_t *derlen)
{
    int rc = DN_EBADSIG;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s))
        goto out;
    r = s = NULL;
    int len = i2d_ECDSA_SIG(es, NULL);
    if (len <= 0 || len > DN_SIG_MAX)
        goto out;
    unsigned char *q = der;
    if (i2d_ECDSA_SIG(es, &q) != len)
        goto out;
    *derlen = (size_t)len;
    rc = 0;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return rc ? ossl_fail(rc) : 0;
}

int dn__ec_verify(const dn_pubkey *k, const uint8_t *msg, size_t len, const uint8_t *sig,
                  size_t siglen)
{
    if (!k->pkey)
        return DN_EBADSIG;
    if (k->type == DN_KEY_RSA) {
        /* A PKCS#1 v1.5 signature is exactly as long as the modulus. */
        if (siglen == 0 || siglen != (size_t)EVP_PKEY_get_size(k->pkey))
            return DN_EBADSIG;
        return digest_verify(k->pkey, msg, len, sig, siglen);
    }
    if (siglen == 0 || siglen > DN_SIG_MAX)
        return DN_EBADSIG;
    /* OpenSSL's ECDSA verify re-encodes the parsed signature and requires the
     * same bytes, so only strict DER passes here. */
    if (!digest_verify(k->pkey, msg, len, sig, siglen))
        return 0;
    if (k->type == DN_KEY_ECDSA && siglen == 64) {
        uint8_t der[DN_SIG_MAX];
        size_t derlen;
        if (!raw_to_der(sig, der, &derlen))
            return digest_verify(k->pkey, msg, len, der, derlen);
    }
    return DN_EBADSIG;
}
