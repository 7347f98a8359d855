/* dmsnet — libp2p identity keys (peer-ids spec: key types and protobuf).
 *
 * Private keys: Ed25519, secp256k1 and ECDSA P-256 (generate, sign, load,
 * save). Public keys: those three plus RSA (verify only, >= 2048 bits).
 * Serialisation is the libp2p protobuf `PublicKey` / `PrivateKey` message
 * (field 1 KeyType, field 2 Data), deterministic as the spec requires. */
#ifndef DMSNET_KEYS_H
#define DMSNET_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dn_key_type {
    DN_KEY_RSA = 0,
    DN_KEY_ED25519 = 1,
    DN_KEY_SECP256K1 = 2,
    DN_KEY_ECDSA = 3,
} dn_key_type;

/* Largest signature any supported private key produces (DER ECDSA: 72). */
#define DN_SIG_MAX 80
/* Largest public-key protobuf we accept from the wire (RSA 8192 + framing). */
#define DN_PUBKEY_PB_MAX 1200

typedef struct dn_privkey dn_privkey;
typedef struct dn_pubkey dn_pubkey;

const char *dn_key_type_name(dn_key_type t); /* "ed25519", "secp256k1", "ecdsa", "rsa" */
int dn_key_type_parse(const char *name, dn_key_type *out);

int dn_privkey_generate(dn_key_type type, dn_privkey **out);
int dn_privkey_from_protobuf(const uint8_t *pb, size_t len, dn_privkey **out);
int dn_privkey_to_protobuf(const dn_privkey *k, dn_buf *out); /* appends */
dn_key_type dn_privkey_type(const dn_privkey *k);
/* The matching public key, owned by k. */
const dn_pubkey *dn_privkey_public(const dn_privkey *k);
/* Sign msg per the key type's libp2p rule (Ed25519 over msg; secp256k1 and
 * ECDSA over SHA-256(msg), DER-encoded). */
int dn_privkey_sign(const dn_privkey *k, const uint8_t *msg, size_t len, uint8_t sig[DN_SIG_MAX],
                    size_t *siglen);
void dn_privkey_free(dn_privkey *k); /* wipes secret material */

int dn_pubkey_from_protobuf(const uint8_t *pb, size_t len, dn_pubkey **out);
int dn_pubkey_to_protobuf(const dn_pubkey *k, dn_buf *out); /* appends */
dn_key_type dn_pubkey_type(const dn_pubkey *k);
/* 0 when sig is a valid signature of msg, DN_EBADSIG otherwise. */
int dn_pubkey_verify(const dn_pubkey *k, const uint8_t *msg, size_t len, const uint8_t *sig,
                     size_t siglen);
int dn_pubkey_equal(const dn_pubkey *a, const dn_pubkey *b); /* 1 or 0 */
void dn_pubkey_free(dn_pubkey *k);

/* Key files hold the PrivateKey protobuf bytes. Writing creates the file
 * with mode 0600 (replacing atomically, through "<path>.tmp.XXXXXX"; such
 * temporaries that a killed writer left beside path are removed first);
 * reading rejects anything that is not a valid key with a precise error,
 * and anything but a regular file (a FIFO, a device, a directory: -EISDIR)
 * with DN_EINVAL, without blocking on it. */
int dn_privkey_save(const dn_privkey *k, const char *path);
int dn_privkey_load(const char *path, dn_privkey **out);

#ifdef __cplusplus
}
#endif
#endif
