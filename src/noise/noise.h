/* noise — Noise_XX_25519_ChaChaPoly_SHA256 with the libp2p handshake
 * payload (noise spec in libp2p/specs), sans-I/O.
 *
 * Wire: every message is a 2-byte big-endian length + ciphertext. The
 * payload (NoiseHandshakePayload protobuf: identity_key 1, identity_sig 2,
 * extensions 4 { webtransport_certhashes 1, stream_muxers 2 }) is sent by
 * the responder in message 2 and by the initiator in message 3. The
 * signature covers "noise-libp2p-static-key:" + our 32-byte static X25519
 * public key. Transport messages carry at most 65519 plaintext bytes. */
#ifndef DN_NOISE_H
#define DN_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"

#define DN_NOISE_PROTOCOL "/noise"
#define DN_NOISE_MAX_MSG 65535
#define DN_NOISE_MAX_PLAINTEXT 65519 /* 65535 - 16-byte tag */
#define DN_NOISE_MAX_MUXERS 4

enum dn_noise_status {
    DN_NOISE_NEED_MORE = 0,
    DN_NOISE_DONE = 1, /* handshake complete: call dn_noise_handshake_split */
};

struct dn_verify_cache; /* crypto/verify_cache.h */

/* A host's Noise static key pair, made once and used for every handshake,
 * with the identity key's signature over "noise-libp2p-static-key:" || pub
 * computed once as well. The noise spec (r0, "Static Key Authentication")
 * says "A given libp2p peer will have one or more static Noise keypairs
 * throughout its lifetime" and that implementations "may generate new
 * static Noise keys when initializing the noise-libp2p module"; its
 * "Initialization" section lists the private Noise static key among the
 * module's inputs. Ephemeral keys stay per handshake (XX's ee and es/se
 * mixes), so forward secrecy does not depend on the static key. */
typedef struct dn_noise_static {
    uint8_t priv[32], pub[32];
    uint8_t sig[DN_SIG_MAX]; /* identity signature over prefix || pub */
    size_t siglen;
    bool ready;
} dn_noise_static;

/* Make a fresh static key pair and sign it with identity. The static must
 * then only be used in handshakes under that same identity (a peer
 * refuses another key's signature with DN_EBADSIG). Returns 0,
 * DN_EINVAL, DN_ECRYPTO or a signing error. */
int dn_noise_static_init(dn_noise_static *st, const dn_privkey *identity);
/* Wipe the secret (and everything else). */
void dn_noise_static_wipe(dn_noise_static *st);

typedef struct dn_noise_cipher {
    uint8_t key[32];
    uint64_t nonce;
    void *ctx; /* EVP_CIPHER_CTX*, kept for the whole session (no alloc per frame) */
} dn_noise_cipher;

/* The handshake state. Opaque in spirit; embedded so callers need not
 * allocate. Fields are private to src/noise/. */
typedef struct dn_noise_handshake {
    bool initiator;
    int step; /* message number expected / to send next */
    bool ready; /* dn_noise_handshake_init_ex succeeded */
    const dn_privkey *identity;
    const dn_noise_static *st;      /* host static key, or NULL (per handshake) */
    struct dn_verify_cache *vcache; /* verified-signature cache, or NULL */
    bool have_expected;
    dn_peerid expected;                      /* when dialing a /p2p/ address */
    const char *muxers[DN_NOISE_MAX_MUXERS]; /* offered, in preference order */
    size_t nmuxers;
    uint8_t s_priv[32], s_pub[32], e_priv[32], e_pub[32];
    uint8_t rs[32], re[32];
    uint8_t ck[32], h[32];
    dn_noise_cipher cs; /* handshake cipher (has_key when k_set; no ctx: see
                         * dn__noise_aead_seal_once) */
    bool k_set;
    dn_buf rx; /* partial incoming message */
    /* results */
    dn_pubkey *remote_key;
    dn_peerid remote_id;
    char remote_muxers[DN_NOISE_MAX_MUXERS][64];
    size_t nremote_muxers;
} dn_noise_handshake;

/* The transport session after the handshake. */
typedef struct dn_noise_session {
    dn_noise_cipher tx, rx;
} dn_noise_session;

/* identity must outlive the handshake. expected may be NULL. muxers (may be
 * NULL/0) are offered through the stream_muxers extension; the choice
 * follows the inlined-muxer-negotiation spec
 * (connections/inlined-muxer-negotiation.md in libp2p/specs). */
int dn_noise_handshake_init(dn_noise_handshake *hs, bool initiator, const dn_privkey *identity,
                            const dn_peerid *expected, const char *const *muxers, size_t nmuxers);
/* The same, with the host's static key st (NULL: a fresh static key pair
 * and signature for this handshake, as dn_noise_handshake_init does) and
 * a verified-signature cache vc for the peer's payload signature (NULL:
 * always verify). st and vc must outlive the handshake; st must have been
 * made for identity. The ephemeral key is fresh either way. */
int dn_noise_handshake_init_ex(dn_noise_handshake *hs, bool initiator, const dn_privkey *identity,
                               const dn_noise_static *st, struct dn_verify_cache *vc,
                               const dn_peerid *expected, const char *const *muxers,
                               size_t nmuxers);
/* Initiator: writes message 1 to out. Responder: nothing to do (returns 0). */
int dn_noise_handshake_start(dn_noise_handshake *hs, dn_buf *out);
/* Feed received bytes; replies go to out. Returns DN_NOISE_NEED_MORE,
 * DN_NOISE_DONE, or an error: DN_EDECRYPT, DN_EBADSIG, DN_EPEERID,
 * DN_EMALFORMED (message below its minimum size, bad payload), DN_EPROTO
 * (low-order DH key), or a key-decoding error (e.g. DN_EUNSUPPORTED).
 * *consumed counts bytes used; bytes after DONE are transport messages.
 * After an error the handshake is dead: every later call returns
 * DN_ESTATE. Calls out of turn (initiator before start, after DONE) also
 * return DN_ESTATE. */
int dn_noise_handshake_feed(dn_noise_handshake *hs, const uint8_t *in, size_t len, size_t *consumed,
                            dn_buf *out);
/* After DONE: the remote's identity, and the muxer both sides agreed on
 * through the extension: the first of the initiator's list that both
 * offer (returned as our own string); NULL if either list is empty or they
 * share nothing: fall back to multistream. All NULL before DONE. */
const dn_peerid *dn_noise_remote_peer(const dn_noise_handshake *hs);
const dn_pubkey *dn_noise_remote_key(const dn_noise_handshake *hs);
const char *dn_noise_negotiated_muxer(const dn_noise_handshake *hs);
/* Move the transport keys into a session; takes ownership of remote_key
 * out of hs if take_key != NULL. Wipes handshake secrets. */
int dn_noise_handshake_split(dn_noise_handshake *hs, dn_noise_session *s, dn_pubkey **take_key);
void dn_noise_handshake_free(dn_noise_handshake *hs);

/* Encrypt plaintext into one or more transport messages appended to out
 * (chunks of at most DN_NOISE_MAX_PLAINTEXT; len 0 gives one tag-only
 * message). Returns 0, DN_ELIMIT (nonce space exhausted; nothing written),
 * DN_ENOMEM, or DN_ESTATE after dn_noise_session_free. */
int dn_noise_encrypt(dn_noise_session *s, const uint8_t *pt, size_t len, dn_buf *out);
/* Encrypt one transport message whose plaintext is head || body (either
 * may be empty; together at most DN_NOISE_MAX_PLAINTEXT, else
 * DN_ETOOBIG). Lets the muxer seal a frame header and the caller's data
 * without copying them next to each other first. Other errors as
 * dn_noise_encrypt. */
int dn_noise_encrypt_parts(dn_noise_session *s, const uint8_t *head, size_t hlen,
                           const uint8_t *body, size_t blen, dn_buf *out);
/* Decrypt every complete transport message in in[0..len), appending the
 * plaintext to out. *consumed stops before a partial message (the caller
 * keeps those bytes). Returns 0 or DN_EDECRYPT / DN_EMALFORMED (message
 * shorter than the tag) / DN_ELIMIT; messages before a bad one are
 * delivered and counted in *consumed. After an error the receive side is
 * dead (DN_ESTATE); the send side keeps working. */
int dn_noise_decrypt(dn_noise_session *s, const uint8_t *in, size_t len, size_t *consumed,
                     dn_buf *out);
/* Decrypt the first transport message of in[0..len) in place: on 1, the
 * plaintext is (*pt, *ptlen) inside in, and *used bytes of in (length
 * prefix, ciphertext, tag) are done with. 0: the message is incomplete.
 * Errors as dn_noise_decrypt. Saves the copy into a second buffer on the
 * receive path. */
int dn_noise_decrypt_inplace(dn_noise_session *s, uint8_t *in, size_t len, size_t *used,
                             uint8_t **pt, size_t *ptlen);
void dn_noise_session_free(dn_noise_session *s); /* wipes keys */

#endif
