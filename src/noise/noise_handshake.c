/* noise — Noise_XX_25519_ChaChaPoly_SHA256 handshake with the libp2p
 * payload, sans-I/O.
 *
 *   XX:  -> e
 *        <- e, ee, s, es
 *        -> s, se
 *
 * Noise spec (revision 34) sections used here: 4 (DH 25519, SHA256 with
 * HMAC-based HKDF), 5.1 CipherState, 5.2 SymmetricState (MixHash, MixKey,
 * EncryptAndHash, DecryptAndHash, Split), 5.3 HandshakeState, 8 (protocol
 * name). libp2p noise spec: empty prologue, payloads in messages 2 and 3,
 * 2-byte big-endian framing of every message. */
#include "noise/noise_internal.h"

#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"

/* --- SymmetricState ---------------------------------------------------- */

static void mix_hash(dn_noise_handshake *hs, const uint8_t *data, size_t len)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, hs->h, sizeof hs->h);
    if (len)
        crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, hs->h);
}

static void hmac(uint8_t out[32], const uint8_t key[32], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, 32);
    if (alen)
        crypto_auth_hmacsha256_update(&st, a, alen);
    if (blen)
        crypto_auth_hmacsha256_update(&st, b, blen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

/* Noise spec 4.3: HKDF(chaining_key, ikm) with two outputs. */
static void hkdf2(const uint8_t ck[32], const uint8_t *ikm, size_t ikmlen, uint8_t out1[32],
                  uint8_t out2[32])
{
    static const uint8_t one = 1, two = 2;
    uint8_t temp[32], o1[32];
    hmac(temp, ck, ikm, ikmlen, NULL, 0);
    hmac(o1, temp, &one, 1, NULL, 0);
    hmac(out2, temp, o1, 32, &two, 1);
    memcpy(out1, o1, 32);
    sodium_memzero(temp, sizeof temp);
    sodium_memzero(o1, sizeof o1);
}

/* MixKey(ikm): ck, k = HKDF(ck, ikm); n = 0. */
static void mix_key(dn_noise_handshake *hs, const uint8_t *ikm, size_t len)
{
    hkdf2(hs->ck, ikm, len, hs->ck, hs->cs.key);
    hs->cs.nonce = 0;
    hs->k_set = true;
}

/* EncryptAndHash: ct has room for len (+16 once a key is set). */
static int encrypt_and_hash(dn_noise_handshake *hs, const uint8_t *pt, size_t len, uint8_t *ct,
                            size_t *ctlen)
{
    if (!hs->k_set) {
        if (len)
            memmove(ct, pt, len);
        *ctlen = len;
    } else {
        int rc = dn__noise_aead_seal_once(hs->cs.key, hs->cs.nonce, hs->h, sizeof hs->h, pt, len,
                                          ct);
        if (rc)
            return rc;
        hs->cs.nonce++;
        *ctlen = len + DN_NOISE_TAGLEN;
    }
    mix_hash(hs, ct, *ctlen);
    return 0;
}

/* DecryptAndHash: pt has room for ctlen (- 16 once a key is set). */
static int decrypt_and_hash(dn_noise_handshake *hs, const uint8_t *ct, size_t ctlen, uint8_t *pt,
                            size_t *ptlen)
{
    if (!hs->k_set) {
        if (ctlen)
            memmove(pt, ct, ctlen);
        *ptlen = ctlen;
    } else {
        if (ctlen < DN_NOISE_TAGLEN)
            return DN_EMALFORMED;
        int rc = dn__noise_aead_open_once(hs->cs.key, hs->cs.nonce, hs->h, sizeof hs->h, ct, ctlen,
                                          pt);
        if (rc)
            return rc;
        hs->cs.nonce++;
        *ptlen = ctlen - DN_NOISE_TAGLEN;
    }
    mix_hash(hs, ct, ctlen);
    return 0;
}

/* DH per Noise spec 4.1 / RFC 7748. libsodium refuses an all-zero result
 * (a low-order peer point), which would make the key contribution known. */
static int dh(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32])
{
    return crypto_scalarmult(out, priv, pub) == 0 ? 0 : DN_EPROTO;
}

static int mix_dh(dn_noise_handshake *hs, const uint8_t priv[32], const uint8_t pub[32])
{
    uint8_t shared[32];
    int rc = dh(shared, priv, pub);
    if (!rc)
        mix_key(hs, shared, sizeof shared);
    sodium_memzero(shared, sizeof shared);
    return rc;
}

static void wipe_secrets(dn_noise_handshake *hs)
{
    sodium_memzero(hs->s_priv, sizeof hs->s_priv);
    sodium_memzero(hs->e_priv, sizeof hs->e_priv);
    sodium_memzero(hs->ck, sizeof hs->ck);
    dn__noise_cipher_clear(&hs->cs);
    hs->k_set = false;
}

static void init_symmetric(dn_noise_handshake *hs, const uint8_t *prologue, size_t plen)
{
    /* Noise spec 5.2 InitializeSymmetric: the name is exactly HASHLEN bytes,
     * so h = name (no hash), ck = h; then MixHash(prologue). */
    memcpy(hs->h, DN_NOISE_NAME, DN_NOISE_HASHLEN);
    memcpy(hs->ck, hs->h, DN_NOISE_HASHLEN);
    hs->k_set = false;
    hs->cs.nonce = 0;
    mix_hash(hs, prologue, plen);
}

/* --- raw XX messages --------------------------------------------------- */

static bool writes_step(const dn_noise_handshake *hs, int step)
{
    /* Messages 0 and 2 go initiator -> responder, message 1 the other way. */
    return (step == 1) != hs->initiator;
}

int dn__noise_write_message(dn_noise_handshake *hs, const uint8_t *payload, size_t len, dn_buf *out)
{
    int step = hs->step;
    size_t n;
    int rc;
    if (step < 0 || step > 2 || !writes_step(hs, step))
        return DN_ESTATE;
    if (len > DN_NOISE_MAX_MSG)
        return DN_ETOOBIG;
    rc = dn_buf_reserve(out, 32 + 48 + len + DN_NOISE_TAGLEN);
    if (rc)
        return rc;
    uint8_t *p = out->data + out->len, *start = p;
    if (step == 0 || step == 1) {
        /* e */
        memcpy(p, hs->e_pub, 32);
        mix_hash(hs, hs->e_pub, 32);
        p += 32;
    }
    if (step == 1) {
        /* ee, s, es (responder: es = DH(s, re)) */
        if ((rc = mix_dh(hs, hs->e_priv, hs->re)))
            return rc;
        if ((rc = encrypt_and_hash(hs, hs->s_pub, 32, p, &n)))
            return rc;
        p += n;
        if ((rc = mix_dh(hs, hs->s_priv, hs->re)))
            return rc;
    } else if (step == 2) {
        /* s, se (initiator: se = DH(s, re)) */
        if ((rc = encrypt_and_hash(hs, hs->s_pub, 32, p, &n)))
            return rc;
        p += n;
        if ((rc = mix_dh(hs, hs->s_priv, hs->re)))
            return rc;
    }
    if ((rc = encrypt_and_hash(hs, payload, len, p, &n)))
        return rc;
    p += n;
    out->len += (size_t)(p - start);
    hs->step++;
    return 0;
}

int dn__noise_read_message(dn_noise_handshake *hs, const uint8_t *msg, size_t len, dn_buf *payload)
{
    static const size_t min[3] = {DN_NOISE_MSG1_MIN, DN_NOISE_MSG2_MIN, DN_NOISE_MSG3_MIN};
    int step = hs->step;
    size_t n;
    int rc;
    if (step < 0 || step > 2 || writes_step(hs, step))
        return DN_ESTATE;
    if (len < min[step] || len > DN_NOISE_MAX_MSG)
        return DN_EMALFORMED;
    const uint8_t *p = msg, *end = msg + len;
    if (step == 0 || step == 1) {
        /* e */
        memcpy(hs->re, p, 32);
        mix_hash(hs, hs->re, 32);
        p += 32;
    }
    if (step == 1) {
        /* ee, s, es (initiator: es = DH(e, rs)) */
        if ((rc = mix_dh(hs, hs->e_priv, hs->re)))
            return rc;
        if ((rc = decrypt_and_hash(hs, p, 48, hs->rs, &n)))
            return rc;
        p += 48;
        if ((rc = mix_dh(hs, hs->e_priv, hs->rs)))
            return rc;
    } else if (step == 2) {
        /* s, se (responder: se = DH(e, rs)) */
        if ((rc = decrypt_and_hash(hs, p, 48, hs->rs, &n)))
            return rc;
        p += 48;
        if ((rc = mix_dh(hs, hs->e_priv, hs->rs)))
            return rc;
    }
    size_t rest = (size_t)(end - p);
    uint8_t none;
    if ((rc = dn_buf_reserve(payload, rest)))
        return rc;
    /* An empty payload may leave payload->data NULL. */
    uint8_t *dst = payload->data ? payload->data + payload->len : &none;
    if ((rc = decrypt_and_hash(hs, p, rest, dst, &n)))
        return rc;
    payload->len += n;
    hs->step++;
    return 0;
}

/* --- libp2p handshake -------------------------------------------------- */

static int fail(dn_noise_handshake *hs, int rc)
{
    hs->step = DN_NOISE_STEP_FAILED;
    wipe_secrets(hs);
    /* The spec: early data of a failed handshake is discarded at once. */
    if (hs->remote_key)
        dn_pubkey_free(hs->remote_key);
    hs->remote_key = NULL;
    memset(&hs->remote_id, 0, sizeof hs->remote_id);
    hs->nremote_muxers = 0;
    return rc;
}

int dn_noise_static_init(dn_noise_static *st, const dn_privkey *identity)
{
    uint8_t msg[DN_NOISE_SIG_PREFIX_LEN + 32];
    memset(st, 0, sizeof *st);
    if (!identity)
        return DN_EINVAL;
    if (sodium_init() < 0)
        return DN_ECRYPTO;
    randombytes_buf(st->priv, sizeof st->priv);
    crypto_scalarmult_base(st->pub, st->priv);
    dn__noise_sig_message(msg, st->pub);
    int rc = dn_privkey_sign(identity, msg, sizeof msg, st->sig, &st->siglen);
    if (rc) {
        dn_noise_static_wipe(st);
        return rc;
    }
    st->ready = true;
    return 0;
}

void dn_noise_static_wipe(dn_noise_static *st)
{
    if (st)
        sodium_memzero(st, sizeof *st);
}

int dn_noise_handshake_init(dn_noise_handshake *hs, bool initiator, const dn_privkey *identity,
                            const dn_peerid *expected, const char *const *muxers, size_t nmuxers)
{
    return dn_noise_handshake_init_ex(hs, initiator, identity, NULL, NULL, expected, muxers,
                                      nmuxers);
}

int dn_noise_handshake_init_ex(dn_noise_handshake *hs, bool initiator, const dn_privkey *identity,
                               const dn_noise_static *st, struct dn_verify_cache *vc,
                               const dn_peerid *expected, const char *const *muxers,
                               size_t nmuxers)
{
    memset(hs, 0, sizeof *hs);
    if (!identity || nmuxers > DN_NOISE_MAX_MUXERS || (nmuxers && !muxers) ||
        (st && !st->ready))
        return DN_EINVAL;
    for (size_t i = 0; i < nmuxers; i++) {
        size_t l = muxers[i] ? strlen(muxers[i]) : 0;
        if (l == 0 || l >= sizeof hs->remote_muxers[0])
            return DN_EINVAL;
        hs->muxers[i] = muxers[i];
    }
    if (sodium_init() < 0)
        return DN_ECRYPTO;
    hs->initiator = initiator;
    hs->identity = identity;
    hs->nmuxers = nmuxers;
    if (expected) {
        hs->have_expected = true;
        hs->expected = *expected;
    }
    hs->vcache = vc;
    /* The static key pair is the host's when given (made and signed once:
     * see dn_noise_static), else one for this handshake only. The
     * ephemeral one is always fresh: it carries forward secrecy. */
    if (st) {
        hs->st = st;
        memcpy(hs->s_priv, st->priv, 32);
        memcpy(hs->s_pub, st->pub, 32);
    } else {
        randombytes_buf(hs->s_priv, sizeof hs->s_priv);
        crypto_scalarmult_base(hs->s_pub, hs->s_priv);
    }
    randombytes_buf(hs->e_priv, sizeof hs->e_priv);
    crypto_scalarmult_base(hs->e_pub, hs->e_priv);
    init_symmetric(hs, NULL, 0);
    hs->step = 0;
    hs->ready = true;
    return 0;
}

int dn__noise_handshake_set_keys(dn_noise_handshake *hs, const uint8_t s_priv[32],
                                 const uint8_t e_priv[32], const uint8_t *prologue,
                                 size_t prologue_len)
{
    if (hs->step != 0 || !hs->ready || hs->rx.len)
        return DN_ESTATE;
    if (!s_priv || !e_priv || (prologue_len && !prologue))
        return DN_EINVAL;
    memcpy(hs->s_priv, s_priv, 32);
    memcpy(hs->e_priv, e_priv, 32);
    crypto_scalarmult_base(hs->s_pub, hs->s_priv);
    crypto_scalarmult_base(hs->e_pub, hs->e_priv);
    init_symmetric(hs, prologue, prologue_len);
    return 0;
}

/* Write one framed handshake message carrying payload. */
static int write_framed(dn_noise_handshake *hs, const uint8_t *payload, size_t len, dn_buf *out)
{
    int rc = dn_buf_reserve(out, 2);
    if (rc)
        return rc;
    size_t at = out->len;
    out->len += 2;
    rc = dn__noise_write_message(hs, payload, len, out);
    size_t mlen = out->len - at - 2;
    if (!rc && mlen > DN_NOISE_MAX_MSG)
        rc = DN_ETOOBIG;
    if (rc) {
        out->len = at;
        return rc;
    }
    out->data[at] = (uint8_t)(mlen >> 8);
    out->data[at + 1] = (uint8_t)mlen;
    return 0;
}

static int write_payload_msg(dn_noise_handshake *hs, dn_buf *out)
{
    dn_buf pl = DN_BUF_INIT;
    int rc;
    /* The host's signature is reused only for the key it was made for (a
     * test may have replaced the static key through set_keys). */
    if (hs->st && memcmp(hs->st->pub, hs->s_pub, 32) == 0)
        rc = dn__noise_payload_build_signed(hs->identity, hs->st->sig, hs->st->siglen, hs->muxers,
                                            hs->nmuxers, &pl);
    else
        rc = dn__noise_payload_build(hs->identity, hs->s_pub, hs->muxers, hs->nmuxers, &pl);
    if (!rc)
        rc = write_framed(hs, pl.data, pl.len, out);
    dn_buf_free(&pl);
    return rc;
}

static int check_payload(dn_noise_handshake *hs, const dn_buf *payload)
{
    dn__noise_payload pl;
    int rc = dn__noise_payload_parse(payload->data, payload->len, &pl);
    if (rc)
        return rc;
    rc = dn__noise_payload_verify_cached(&pl, hs->rs, hs->have_expected ? &hs->expected : NULL,
                                         hs->vcache, &hs->remote_key, &hs->remote_id);
    if (rc)
        return rc;
    /* Early data becomes visible only now that the signature holds. */
    memcpy(hs->remote_muxers, pl.muxers, sizeof hs->remote_muxers);
    hs->nremote_muxers = pl.nmuxers;
    return 0;
}

int dn_noise_handshake_start(dn_noise_handshake *hs, dn_buf *out)
{
    if (hs->step == DN_NOISE_STEP_FAILED || !hs->ready)
        return DN_ESTATE;
    if (!hs->initiator)
        return hs->step == 0 ? 0 : DN_ESTATE;
    if (hs->step != 0)
        return DN_ESTATE;
    /* -> e, with no payload: the libp2p spec puts payloads only in
     * messages that guarantee secrecy. */
    int rc = write_framed(hs, NULL, 0, out);
    return rc ? fail(hs, rc) : 0;
}

/* One complete handshake message (frame body) for the current step. */
static int process(dn_noise_handshake *hs, const uint8_t *msg, size_t len, dn_buf *out)
{
    dn_buf payload = DN_BUF_INIT;
    int step = hs->step;
    int rc = dn__noise_read_message(hs, msg, len, &payload);
    if (rc)
        goto done;
    if (step == 0) {
        /* A payload in message 1 is not libp2p's; it was hashed, so the
         * transcript stays right, and it is otherwise ignored. */
        rc = write_payload_msg(hs, out); /* <- e, ee, s, es, payload */
    } else if (step == 1) {
        rc = check_payload(hs, &payload);
        if (!rc)
            rc = write_payload_msg(hs, out); /* -> s, se, payload */
    } else {
        rc = check_payload(hs, &payload);
    }
done:
    dn_buf_free_secure(&payload);
    return rc;
}

static bool expects_input(const dn_noise_handshake *hs)
{
    return hs->step >= 0 && hs->step <= 2 && !writes_step(hs, hs->step);
}

int dn_noise_handshake_feed(dn_noise_handshake *hs, const uint8_t *in, size_t len, size_t *consumed,
                            dn_buf *out)
{
    size_t used = 0;
    *consumed = 0;
    if (hs->step == DN_NOISE_STEP_FAILED || hs->step >= DN_NOISE_STEP_DONE || !hs->ready)
        return DN_ESTATE;
    if (!expects_input(hs))
        return DN_ESTATE; /* initiator before dn_noise_handshake_start */
    if (len && !in)
        return DN_EINVAL;
    while (used < len) {
        const uint8_t *msg;
        size_t left = len - used;
        size_t mlen = left >= 2 ? ((size_t)in[used] << 8) | in[used + 1] : 0;
        if (hs->rx.len == 0 && left >= 2 && left - 2 >= mlen) {
            /* The whole message is in this input: no copy. */
            msg = in + used + 2;
            used += 2 + mlen;
        } else {
            /* Gather a split message, never taking bytes past its end:
             * what follows the last handshake message is transport data
             * that belongs to the caller. */
            if (hs->rx.len < 2) {
                size_t take = 2 - hs->rx.len < left ? 2 - hs->rx.len : left;
                int rc = dn_buf_append(&hs->rx, in + used, take);
                if (rc)
                    return fail(hs, rc);
                used += take;
                left -= take;
                if (hs->rx.len < 2)
                    break;
            }
            mlen = ((size_t)hs->rx.data[0] << 8) | hs->rx.data[1];
            size_t want = 2 + mlen - hs->rx.len;
            size_t take = want < left ? want : left;
            int rc = dn_buf_append(&hs->rx, in + used, take);
            if (rc)
                return fail(hs, rc);
            used += take;
            if (hs->rx.len < 2 + mlen)
                break;
            msg = hs->rx.data + 2;
        }
        int rc = process(hs, msg, mlen, out);
        hs->rx.len = 0;
        if (rc) {
            *consumed = used;
            return fail(hs, rc);
        }
        if (hs->step == DN_NOISE_STEP_DONE) {
            *consumed = used;
            return DN_NOISE_DONE;
        }
    }
    *consumed = used;
    return DN_NOISE_NEED_MORE;
}

const dn_peerid *dn_noise_remote_peer(const dn_noise_handshake *hs)
{
    return hs->step >= DN_NOISE_STEP_DONE ? &hs->remote_id : NULL;
}

const dn_pubkey *dn_noise_remote_key(const dn_noise_handshake *hs)
{
    return hs->step >= DN_NOISE_STEP_DONE ? hs->remote_key : NULL;
}

const char *dn_noise_negotiated_muxer(const dn_noise_handshake *hs)
{
    if (hs->step < DN_NOISE_STEP_DONE)
        return NULL;
    /* inlined-muxer-negotiation: "the first item from the initiator's list
     * that both parties support". We return our own string either way. */
    if (hs->initiator) {
        for (size_t i = 0; i < hs->nmuxers; i++)
            for (size_t j = 0; j < hs->nremote_muxers; j++)
                if (strcmp(hs->muxers[i], hs->remote_muxers[j]) == 0)
                    return hs->muxers[i];
    } else {
        for (size_t j = 0; j < hs->nremote_muxers; j++)
            for (size_t i = 0; i < hs->nmuxers; i++)
                if (strcmp(hs->muxers[i], hs->remote_muxers[j]) == 0)
                    return hs->muxers[i];
    }
    return NULL;
}

int dn_noise_handshake_split(dn_noise_handshake *hs, dn_noise_session *s, dn_pubkey **take_key)
{
    uint8_t k1[32], k2[32];
    if (hs->step != DN_NOISE_STEP_DONE)
        return DN_ESTATE;
    memset(s, 0, sizeof *s);
    /* Noise spec 5.2 Split: k1, k2 = HKDF(ck, ""); k1 protects the
     * initiator -> responder direction. */
    hkdf2(hs->ck, NULL, 0, k1, k2);
    int rc = dn__noise_cipher_init(&s->tx, hs->initiator ? k1 : k2, true);
    if (!rc)
        rc = dn__noise_cipher_init(&s->rx, hs->initiator ? k2 : k1, false);
    sodium_memzero(k1, sizeof k1);
    sodium_memzero(k2, sizeof k2);
    if (rc) {
        dn_noise_session_free(s);
        return fail(hs, rc);
    }
    wipe_secrets(hs);
    hs->step = DN_NOISE_STEP_SPLIT;
    if (take_key) {
        *take_key = hs->remote_key;
        hs->remote_key = NULL;
    }
    return 0;
}

void dn_noise_handshake_free(dn_noise_handshake *hs)
{
    if (!hs)
        return;
    wipe_secrets(hs);
    if (hs->remote_key)
        dn_pubkey_free(hs->remote_key);
    hs->remote_key = NULL;
    dn_buf_free_secure(&hs->rx);
    sodium_memzero(hs, sizeof *hs);
    hs->step = DN_NOISE_STEP_FAILED;
}
