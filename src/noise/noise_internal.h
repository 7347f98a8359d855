/* noise — internal interfaces shared by noise_handshake.c, noise_cipher.c
 * and noise_payload.c, plus the test hooks used by tests/unit/test_noise.c
 * and tests/fuzz/fuzz_noise.c. Not installed; not for the host. */
#ifndef DN_NOISE_INTERNAL_H
#define DN_NOISE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noise/noise.h"

/* Noise spec section 8: "Noise_XX_25519_ChaChaPoly_SHA256" is exactly
 * HASHLEN (32) bytes, so h starts as the name itself, unhashed. */
#define DN_NOISE_NAME "Noise_XX_25519_ChaChaPoly_SHA256"
#define DN_NOISE_DHLEN 32
#define DN_NOISE_HASHLEN 32
#define DN_NOISE_TAGLEN 16
/* libp2p noise spec, "The libp2p Handshake Payload". */
#define DN_NOISE_SIG_PREFIX "noise-libp2p-static-key:"
#define DN_NOISE_SIG_PREFIX_LEN 24
/* Largest identity_sig we accept: RSA-8192 signatures are 1024 bytes. */
#define DN_NOISE_SIG_MAX 1024
/* Smallest handshake messages (without the 2-byte frame length):
 * msg1 = e; msg2 = e + enc(s) + enc(payload); msg3 = enc(s) + enc(payload). */
#define DN_NOISE_MSG1_MIN DN_NOISE_DHLEN
#define DN_NOISE_MSG2_MIN (DN_NOISE_DHLEN + DN_NOISE_DHLEN + 2 * DN_NOISE_TAGLEN)
#define DN_NOISE_MSG3_MIN (DN_NOISE_DHLEN + 2 * DN_NOISE_TAGLEN)

/* hs->step: index of the next handshake message (0, 1, 2), then: */
#define DN_NOISE_STEP_DONE 3  /* all three messages processed */
#define DN_NOISE_STEP_SPLIT 4 /* keys moved into a session */
#define DN_NOISE_STEP_FAILED (-1)

/* --- AEAD (noise_cipher.c) ---------------------------------------------
 * ChaChaPoly per Noise spec 12.3: 96-bit nonce = 4 zero bytes followed by
 * the 64-bit counter, little-endian.
 *
 * For a key used for a few messages only (the handshake's CipherState,
 * rekeyed by every MixKey): libsodium's one-shot IETF ChaCha20-Poly1305 (the
 * same RFC 8439 AEAD), which costs no context set-up per key. ct/pt may be
 * the same buffer, not partially overlapping. Returns 0, DN_EDECRYPT (open;
 * nothing written), DN_EINVAL or DN_ECRYPTO. The transport keys instead get
 * one OpenSSL context per direction for the whole session. */
int dn__noise_aead_seal_once(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen,
                             const uint8_t *pt, size_t len, uint8_t *ct);
int dn__noise_aead_open_once(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen,
                             const uint8_t *ct, size_t ctlen, uint8_t *pt);
/* Load key into a fresh per-direction context (c->ctx), nonce 0. */
int dn__noise_cipher_init(dn_noise_cipher *c, const uint8_t key[32], bool encrypt);
/* Free the context and wipe key and nonce. */
void dn__noise_cipher_clear(dn_noise_cipher *c);

/* --- handshake payload (noise_payload.c) ------------------------------- */
typedef struct dn__noise_payload {
    const uint8_t *key; /* identity_key: PublicKey protobuf (points into input) */
    size_t key_len;
    const uint8_t *sig; /* identity_sig */
    size_t sig_len;
    char muxers[DN_NOISE_MAX_MUXERS][64]; /* extensions.stream_muxers, NUL-terminated */
    size_t nmuxers;
} dn__noise_payload;

/* Parse a NoiseHandshakePayload. Unknown fields are skipped; muxer entries
 * beyond DN_NOISE_MAX_MUXERS, empty, longer than 63 bytes or holding a NUL
 * are ignored. Returns 0 or DN_EMALFORMED (bad protobuf, wrong wire type,
 * missing identity_key, oversize key or signature). */
int dn__noise_payload_parse(const uint8_t *p, size_t len, dn__noise_payload *out);
/* Append our payload: identity_key, identity_sig over
 * "noise-libp2p-static-key:" || static_pub, and extensions.stream_muxers
 * when muxers are offered. */
int dn__noise_payload_build(const dn_privkey *identity, const uint8_t static_pub[32],
                            const char *const *muxers, size_t nmuxers, dn_buf *out);
/* The same with a signature made beforehand (dn_noise_static): identity
 * supplies only the identity_key field. */
int dn__noise_payload_build_signed(const dn_privkey *identity, const uint8_t *sig, size_t siglen,
                                   const char *const *muxers, size_t nmuxers, dn_buf *out);
/* The signed message: "noise-libp2p-static-key:" || s. */
void dn__noise_sig_message(uint8_t msg[DN_NOISE_SIG_PREFIX_LEN + 32], const uint8_t s[32]);
/* Check a parsed payload against the remote static key rs: decode the key,
 * verify the signature (DN_EBADSIG), derive the peer id and compare it with
 * expected when given (DN_EPEERID). On success *key_out is owned by the
 * caller. */
int dn__noise_payload_verify(const dn__noise_payload *pl, const uint8_t rs[32],
                             const dn_peerid *expected, dn_pubkey **key_out, dn_peerid *id_out);
/* The same, looking the signature up in (and adding it to) vc first; vc
 * may be NULL. The key decoding, peer id derivation and expected-id check
 * are done every time. */
int dn__noise_payload_verify_cached(const dn__noise_payload *pl, const uint8_t rs[32],
                                    const dn_peerid *expected, struct dn_verify_cache *vc,
                                    dn_pubkey **key_out, dn_peerid *id_out);

/* --- raw Noise XX (noise_handshake.c) ----------------------------------
 * Message processing per Noise spec 5.3 without the 2-byte framing and
 * without libp2p payload semantics: write appends the message for step
 * hs->step to out; read decrypts the payload into payload (appended).
 * Both advance hs->step. The libp2p API is built on these; tests use them
 * to replay published vectors and to send crafted payloads. */
int dn__noise_write_message(dn_noise_handshake *hs, const uint8_t *payload, size_t len,
                            dn_buf *out);
int dn__noise_read_message(dn_noise_handshake *hs, const uint8_t *msg, size_t len, dn_buf *payload);

/* Test hook: replace the random static and ephemeral key pairs (private
 * keys; publics are derived) and mix a prologue instead of the empty one.
 * Valid only right after dn_noise_handshake_init. Returns 0, DN_ESTATE or
 * DN_EINVAL. The libp2p handshake always uses an empty prologue. */
int dn__noise_handshake_set_keys(dn_noise_handshake *hs, const uint8_t s_priv[32],
                                 const uint8_t e_priv[32], const uint8_t *prologue,
                                 size_t prologue_len);

#endif
