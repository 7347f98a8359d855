/* noise — ChaChaPoly cipher and the transport data path.
 *
 * Noise spec 12.3 (ChaChaPoly): ChaCha20-Poly1305 (RFC 8439) with a 96-bit
 * nonce made of 32 zero bits and the 64-bit counter n, little-endian.
 * libp2p noise spec, "Wire Format": each message is a 2-byte big-endian
 * length and at most 65535 bytes of Noise message; a transport message is
 * the ciphertext plus the 16-byte tag, so plaintext chunks are at most
 * 65519 bytes.
 *
 * The AEAD is OpenSSL's EVP ChaCha20-Poly1305 (about 3x libsodium's speed
 * on this machine, see DESIGN.md). Each direction owns one EVP_CIPHER_CTX,
 * created with the key at split time; a frame only re-arms the nonce, so
 * the steady state allocates nothing. Frames are sealed straight into the
 * caller's output buffer and opened straight into it. The handshake's few
 * messages, each under a new key, use libsodium's one-shot AEAD instead
 * (dn__noise_aead_seal_once): no EVP set-up per key. */
#include "noise/noise_internal.h"

#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "dmsnet/error.h"

static void make_nonce(uint8_t iv[12], uint64_t n)
{
    memset(iv, 0, 4);
    for (int i = 0; i < 8; i++)
        iv[4 + i] = (uint8_t)(n >> (8 * i));
}

/* The transport AEAD: the key is already in ctx (dn__noise_cipher_init),
 * there is no associated data, and a message only re-arms the nonce.
 *
 * Seal head || body as one message (either part may be empty): the AEAD
 * runs over both parts in sequence, so a muxer header and its payload are
 * sealed together without first being copied next to each other. ct gets
 * hlen + blen bytes of ciphertext and the tag. */
static int transport_seal(EVP_CIPHER_CTX *ctx, uint64_t n, const uint8_t *head, size_t hlen,
                          const uint8_t *body, size_t blen, uint8_t *ct)
{
    uint8_t iv[12];
    int outl = 0, fl = 0;
    size_t len = hlen + blen;
    if (len > DN_NOISE_MAX_MSG)
        return DN_EINVAL;
    make_nonce(iv, n);
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1)
        return DN_ECRYPTO;
    if (hlen && EVP_EncryptUpdate(ctx, ct, &outl, head, (int)hlen) != 1)
        return DN_ECRYPTO;
    if (blen && EVP_EncryptUpdate(ctx, ct + hlen, &outl, body, (int)blen) != 1)
        return DN_ECRYPTO;
    if (EVP_EncryptFinal_ex(ctx, ct + len, &fl) != 1)
        return DN_ECRYPTO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, DN_NOISE_TAGLEN, ct + len) != 1)
        return DN_ECRYPTO;
    return 0;
}

/* Open one transport message (ciphertext and tag) into pt, which may be ct
 * itself. Returns 0, DN_EDECRYPT (pt then holds no plaintext) or
 * DN_ECRYPTO. */
static int transport_open(EVP_CIPHER_CTX *ctx, uint64_t n, const uint8_t *ct, size_t ctlen,
                          uint8_t *pt)
{
    uint8_t iv[12], tag[DN_NOISE_TAGLEN];
    int outl = 0, fl = 0;
    if (ctlen < DN_NOISE_TAGLEN)
        return DN_EDECRYPT;
    if (ctlen > DN_NOISE_MAX_MSG)
        return DN_EINVAL;
    size_t len = ctlen - DN_NOISE_TAGLEN;
    make_nonce(iv, n);
    memcpy(tag, ct + len, DN_NOISE_TAGLEN); /* the ctrl wants a mutable pointer */
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1)
        return DN_ECRYPTO;
    if (len && EVP_DecryptUpdate(ctx, pt, &outl, ct, (int)len) != 1)
        return DN_ECRYPTO;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, DN_NOISE_TAGLEN, tag) != 1)
        return DN_ECRYPTO;
    if (EVP_DecryptFinal_ex(ctx, pt + outl, &fl) != 1) {
        /* Never leave unauthenticated plaintext behind. */
        if (len)
            sodium_memzero(pt, len);
        return DN_EDECRYPT;
    }
    return 0;
}

int dn__noise_aead_seal_once(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen,
                             const uint8_t *pt, size_t len, uint8_t *ct)
{
    uint8_t iv[12];
    if (len > DN_NOISE_MAX_MSG)
        return DN_EINVAL;
    make_nonce(iv, n);
    /* Combined mode writes ciphertext || tag, the Noise layout. */
    if (crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, pt, len, ad, adlen, NULL, iv, key))
        return DN_ECRYPTO;
    return 0;
}

int dn__noise_aead_open_once(const uint8_t key[32], uint64_t n, const uint8_t *ad, size_t adlen,
                             const uint8_t *ct, size_t ctlen, uint8_t *pt)
{
    uint8_t iv[12];
    if (ctlen < DN_NOISE_TAGLEN)
        return DN_EDECRYPT;
    if (ctlen > DN_NOISE_MAX_MSG)
        return DN_EINVAL;
    make_nonce(iv, n);
    /* libsodium writes no plaintext unless the tag verifies. */
    if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ctlen, ad, adlen, iv, key))
        return DN_EDECRYPT;
    return 0;
}

int dn__noise_cipher_init(dn_noise_cipher *c, const uint8_t key[32], bool encrypt)
{
    c->ctx = EVP_CIPHER_CTX_new();
    if (!c->ctx)
        return DN_ENOMEM;
    int ok = encrypt ? EVP_EncryptInit_ex(c->ctx, EVP_chacha20_poly1305(), NULL, key, NULL)
                     : EVP_DecryptInit_ex(c->ctx, EVP_chacha20_poly1305(), NULL, key, NULL);
    if (ok != 1) {
        EVP_CIPHER_CTX_free(c->ctx);
        c->ctx = NULL;
        return DN_ECRYPTO;
    }
    memcpy(c->key, key, 32);
    c->nonce = 0;
    return 0;
}

void dn__noise_cipher_clear(dn_noise_cipher *c)
{
    if (c->ctx)
        EVP_CIPHER_CTX_free(c->ctx); /* cleanses the key schedule */
    c->ctx = NULL;
    sodium_memzero(c->key, sizeof c->key);
    c->nonce = 0;
}

int dn_noise_encrypt(dn_noise_session *s, const uint8_t *pt, size_t len, dn_buf *out)
{
    if (!s->tx.ctx)
        return DN_ESTATE;
    if (len && !pt)
        return DN_EINVAL;
    /* An empty plaintext still makes one (tag-only) message: the caller
     * asked for a message, and the peer's nonce must advance with ours. */
    size_t nframes = len ? (len - 1) / DN_NOISE_MAX_PLAINTEXT + 1 : 1;
    /* Noise spec 5.1: n = 2^64-1 is reserved; never reuse a nonce. */
    if (nframes > UINT64_MAX - s->tx.nonce)
        return DN_ELIMIT;
    if (nframes > (SIZE_MAX - len) / (2 + DN_NOISE_TAGLEN))
        return DN_ETOOBIG;
    size_t total = len + nframes * (2 + DN_NOISE_TAGLEN);
    int rc = dn_buf_reserve(out, total);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    size_t off = 0;
    for (size_t i = 0; i < nframes; i++) {
        size_t chunk = len - off < DN_NOISE_MAX_PLAINTEXT ? len - off : DN_NOISE_MAX_PLAINTEXT;
        size_t mlen = chunk + DN_NOISE_TAGLEN;
        p[0] = (uint8_t)(mlen >> 8);
        p[1] = (uint8_t)mlen;
        rc = transport_seal(s->tx.ctx, s->tx.nonce, NULL, 0, chunk ? pt + off : pt,
                                 chunk, p + 2);
        if (rc) {
            /* The frames sealed so far used nonces the peer will never see
             * in order: this direction is unusable now. */
            dn__noise_cipher_clear(&s->tx);
            return rc;
        }
        s->tx.nonce++;
        p += 2 + mlen;
        off += chunk;
    }
    out->len += total;
    return 0;
}

int dn_noise_encrypt_parts(dn_noise_session *s, const uint8_t *head, size_t hlen,
                           const uint8_t *body, size_t blen, dn_buf *out)
{
    if (!s->tx.ctx)
        return DN_ESTATE;
    if ((hlen && !head) || (blen && !body))
        return DN_EINVAL;
    if (hlen > DN_NOISE_MAX_PLAINTEXT || blen > DN_NOISE_MAX_PLAINTEXT - hlen)
        return DN_ETOOBIG;
    size_t len = hlen + blen;
    if (s->tx.nonce == UINT64_MAX)
        return DN_ELIMIT; /* Noise spec 5.1: 2^64-1 is reserved */
    size_t mlen = len + DN_NOISE_TAGLEN;
    int rc = dn_buf_reserve(out, 2 + mlen);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len;
    p[0] = (uint8_t)(mlen >> 8);
    p[1] = (uint8_t)mlen;
    rc = transport_seal(s->tx.ctx, s->tx.nonce, head, hlen, body, blen, p + 2);
    if (rc) {
        dn__noise_cipher_clear(&s->tx); /* as in dn_noise_encrypt */
        return rc;
    }
    s->tx.nonce++;
    out->len += 2 + mlen;
    return 0;
}

int dn_noise_decrypt(dn_noise_session *s, const uint8_t *in, size_t len, size_t *consumed,
                     dn_buf *out)
{
    *consumed = 0;
    if (!s->rx.ctx)
        return DN_ESTATE;
    /* First pass: the complete messages present, and their plaintext size,
     * so the output is reserved once. */
    size_t pos = 0, ptotal = 0, nframes = 0;
    while (len - pos >= 2) {
        size_t mlen = ((size_t)in[pos] << 8) | in[pos + 1];
        if (mlen < DN_NOISE_TAGLEN)
            break; /* reported below, after the good frames before it */
        if (len - pos - 2 < mlen)
            break;
        ptotal += mlen - DN_NOISE_TAGLEN;
        nframes++;
        pos += 2 + mlen;
    }
    if (nframes) {
        int rc = dn_buf_reserve(out, ptotal);
        if (rc)
            return rc;
    }
    pos = 0;
    for (size_t i = 0; i < nframes; i++) {
        size_t mlen = ((size_t)in[pos] << 8) | in[pos + 1];
        if (s->rx.nonce == UINT64_MAX) {
            dn__noise_cipher_clear(&s->rx);
            return DN_ELIMIT;
        }
        /* Tag-only messages may leave out->data NULL (nothing reserved). */
        uint8_t none, *dst = out->data ? out->data + out->len : &none;
        int rc =
            transport_open(s->rx.ctx, s->rx.nonce, in + pos + 2, mlen, dst);
        if (rc) {
            /* A forged, replayed, reordered or corrupted message: the
             * session cannot continue (Noise spec 5.1: a failed decrypt
             * leaves the CipherState unusable for this stream). */
            dn__noise_cipher_clear(&s->rx);
            return rc == DN_EDECRYPT ? DN_EDECRYPT : rc;
        }
        s->rx.nonce++;
        out->len += mlen - DN_NOISE_TAGLEN;
        pos += 2 + mlen;
        *consumed = pos;
    }
    /* A message shorter than its tag cannot come from a Noise peer. */
    if (len - pos >= 2 && (((size_t)in[pos] << 8) | in[pos + 1]) < DN_NOISE_TAGLEN) {
        dn__noise_cipher_clear(&s->rx);
        return DN_EMALFORMED;
    }
    return 0;
}

int dn_noise_decrypt_inplace(dn_noise_session *s, uint8_t *in, size_t len, size_t *used,
                             uint8_t **pt, size_t *ptlen)
{
    *used = 0;
    if (!s->rx.ctx)
        return DN_ESTATE;
    if (len < 2)
        return 0;
    size_t mlen = ((size_t)in[0] << 8) | in[1];
    if (mlen < DN_NOISE_TAGLEN) {
        dn__noise_cipher_clear(&s->rx);
        return DN_EMALFORMED;
    }
    if (len - 2 < mlen)
        return 0;
    if (s->rx.nonce == UINT64_MAX) {
        dn__noise_cipher_clear(&s->rx);
        return DN_ELIMIT;
    }
    /* ChaCha20 is a stream cipher: OpenSSL decrypts with out == in. */
    int rc = transport_open(s->rx.ctx, s->rx.nonce, in + 2, mlen, in + 2);
    if (rc) {
        dn__noise_cipher_clear(&s->rx);
        return rc;
    }
    s->rx.nonce++;
    *pt = in + 2;
    *ptlen = mlen - DN_NOISE_TAGLEN;
    *used = 2 + mlen;
    return 1;
}

void dn_noise_session_free(dn_noise_session *s)
{
    if (!s)
        return;
    dn__noise_cipher_clear(&s->tx);
    dn__noise_cipher_clear(&s->rx);
}
