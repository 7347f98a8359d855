/* Internal layout of dn_pubkey / dn_privkey, shared by keys.c (protobuf,
 * Ed25519, files) and keys_ec.c (secp256k1, ECDSA P-256, RSA via OpenSSL). */
#ifndef DN_CRYPTO_KEYS_INT_H
#define DN_CRYPTO_KEYS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "dmsnet/keys.h"

/* Largest PrivateKey protobuf we parse. Our private key types need at most
 * 2 + 2 + 121 bytes (ECDSA SEC1); anything past this is not a key of ours. */
#define DN__PRIVKEY_PB_MAX 4096

struct dn_pubkey {
    dn_key_type type;
    /* The protobuf Data field, byte for byte as encoded; re-encoding a parsed
     * key therefore reproduces the input (peer-ids spec: deterministic
     * encoding) and peer IDs derive from exactly what the peer sent. */
    uint8_t *data;
    size_t len;
    EVP_PKEY *pkey; /* secp256k1, ECDSA, RSA; NULL for Ed25519 */
};

struct dn_privkey {
    dn_key_type type;
    uint8_t ed_sk[64];  /* Ed25519: libsodium secret key = seed || public key */
    uint8_t scalar[32]; /* secp256k1, ECDSA: the private scalar, big-endian */
    EVP_PKEY *pkey;     /* secp256k1, ECDSA */
    dn_pubkey pub;
};

/* keys_ec.c. `data` is the Data field of the PublicKey message; on success
 * k->pkey is set (k->data is filled by the caller). */
int dn__ec_pubkey_parse(dn_pubkey *k, const uint8_t *data, size_t len);
/* Build the private key (k->scalar, k->pkey, k->pub) from a Data field. */
int dn__ec_privkey_parse(dn_privkey *k, const uint8_t *data, size_t len);
/* Build from a random scalar. */
int dn__ec_privkey_generate(dn_privkey *k);
/* Serialise the Data field of the PrivateKey message (appends). */
int dn__ec_privkey_data(const dn_privkey *k, dn_buf *out);
int dn__ec_sign(const dn_privkey *k, const uint8_t *msg, size_t len, uint8_t *sig, size_t *siglen);
int dn__ec_verify(const dn_pubkey *k, const uint8_t *msg, size_t len, const uint8_t *sig,
                  size_t siglen);
/* ECDSA public keys come in two Data forms: SPKI (spec, go, rust) and the
 * SEC1-like form js-libp2p writes. Both end in the 65-byte point. */
#define DN__EC_POINT_LEN 65

#endif
