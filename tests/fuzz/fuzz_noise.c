/* libFuzzer target for src/noise. The first input byte picks the mode:
 *   0: a responder handshake fed the rest as wire bytes (message 1 and
 *      whatever follows), in two pieces split where byte 1 says;
 *   1: dn_noise_decrypt of the rest with a fixed key, in two pieces;
 *   2: the payload parser and verifier on the rest;
 *   3: a real handshake in which the initiator's message 3 carries the rest
 *      as its (encrypted, authenticated) payload, so the responder's payload
 *      checks run on arbitrary bytes;
 *   4: the same for message 2, checked by the initiator.
 * Keys are fixed so that every input replays exactly. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/keys.h"
#include "noise/noise.h"
#include "noise/noise_internal.h"

static dn_privkey *id_i, *id_r;

static dn_privkey *fixed_identity(uint8_t fill)
{
    uint8_t seed[32], pk[32], sk[64], pb[4 + 64];
    memset(seed, fill, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    pb[0] = 0x08; /* Type = Ed25519 */
    pb[1] = 0x01;
    pb[2] = 0x12; /* Data = seed || public key */
    pb[3] = 64;
    memcpy(pb + 4, seed, 32);
    memcpy(pb + 36, pk, 32);
    dn_privkey *k = NULL;
    if (dn_privkey_from_protobuf(pb, sizeof pb, &k))
        __builtin_trap();
    return k;
}

static void fixed_keys(dn_noise_handshake *hs, uint8_t fill)
{
    uint8_t s[32], e[32];
    memset(s, fill, 32);
    memset(e, (uint8_t)(fill + 0x40), 32);
    if (dn__noise_handshake_set_keys(hs, s, e, NULL, 0))
        __builtin_trap();
}

static void fuzz_responder(const uint8_t *d, size_t n)
{
    static const char *const mux[] = {"/yamux/1.0.0"};
    dn_noise_handshake hs;
    dn_buf out = DN_BUF_INIT;
    if (dn_noise_handshake_init(&hs, false, id_r, NULL, mux, 1))
        __builtin_trap();
    fixed_keys(&hs, 0x22);
    size_t cut = n ? d[0] : 0;
    d += n ? 1 : 0;
    n -= n ? 1 : 0;
    if (cut > n)
        cut = n;
    size_t used = 0;
    int rc = dn_noise_handshake_feed(&hs, d, cut, &used, &out);
    if (used > cut)
        __builtin_trap();
    if (rc == DN_NOISE_NEED_MORE && used == cut) {
        rc = dn_noise_handshake_feed(&hs, d + cut, n - cut, &used, &out);
        if (rc >= 0 && used > n - cut)
            __builtin_trap();
    }
    if (out.len > 2 + DN_NOISE_MAX_MSG)
        __builtin_trap();
    dn_buf_free(&out);
    dn_noise_handshake_free(&hs);
}

static void fuzz_decrypt(const uint8_t *d, size_t n)
{
    static const uint8_t key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
    dn_noise_session s;
    memset(&s, 0, sizeof s);
    if (dn__noise_cipher_init(&s.rx, key, false))
        __builtin_trap();
    dn_buf out = DN_BUF_INIT;
    size_t cut = n ? d[0] : 0;
    d += n ? 1 : 0;
    n -= n ? 1 : 0;
    if (cut > n)
        cut = n;
    size_t used = 0;
    int rc = dn_noise_decrypt(&s, d, cut, &used, &out);
    if (used > cut || out.len > cut)
        __builtin_trap();
    if (rc == 0) {
        /* The caller keeps the unconsumed tail and adds the rest. */
        dn_buf in = DN_BUF_INIT;
        dn_buf_append(&in, d + used, n - used);
        rc = dn_noise_decrypt(&s, in.data, in.len, &used, &out);
        if (used > in.len)
            __builtin_trap();
        dn_buf_free(&in);
    }
    (void)rc;
    dn_buf_free(&out);
    dn_noise_session_free(&s);
}

static void fuzz_payload(const uint8_t *d, size_t n)
{
    static const uint8_t rs[32] = {1};
    dn__noise_payload p;
    if (dn__noise_payload_parse(d, n, &p))
        return;
    if (p.key_len > DN_PUBKEY_PB_MAX || p.sig_len > DN_NOISE_SIG_MAX ||
        p.nmuxers > DN_NOISE_MAX_MUXERS)
        __builtin_trap();
    for (size_t i = 0; i < p.nmuxers; i++)
        if (strlen(p.muxers[i]) == 0 || strlen(p.muxers[i]) >= sizeof p.muxers[i])
            __builtin_trap();
    dn_pubkey *k = NULL;
    dn_peerid id;
    if (dn__noise_payload_verify(&p, rs, NULL, &k, &id) == 0)
        dn_pubkey_free(k);
}

/* Messages 1-3 between fixed peers; the sender of message `which` uses the
 * fuzz bytes as its payload. */
static void fuzz_handshake_payload(const uint8_t *d, size_t n, int which)
{
    static const char *const mux[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
    dn_noise_handshake i, r;
    dn_buf m1 = DN_BUF_INIT, m2 = DN_BUF_INIT, m3 = DN_BUF_INIT, junk = DN_BUF_INIT;
    if (n > 60000)
        return;
    if (dn_noise_handshake_init(&i, true, id_i, NULL, mux, 2) ||
        dn_noise_handshake_init(&r, false, id_r, NULL, mux + 1, 1))
        __builtin_trap();
    fixed_keys(&i, 0x11);
    fixed_keys(&r, 0x22);
    size_t used;
    if (dn_noise_handshake_start(&i, &m1))
        __builtin_trap();
    if (which == 2) {
        if (dn__noise_read_message(&r, m1.data + 2, m1.len - 2, &junk))
            __builtin_trap();
        dn_buf_append(&m2, "\0\0", 2);
        if (dn__noise_write_message(&r, d, n, &m2))
            __builtin_trap();
        m2.data[0] = (uint8_t)((m2.len - 2) >> 8);
        m2.data[1] = (uint8_t)(m2.len - 2);
        int rc = dn_noise_handshake_feed(&i, m2.data, m2.len, &used, &m3);
        if (rc == DN_NOISE_DONE && !dn_noise_remote_peer(&i))
            __builtin_trap();
    } else {
        if (dn_noise_handshake_feed(&r, m1.data, m1.len, &used, &m2) != DN_NOISE_NEED_MORE)
            __builtin_trap();
        if (dn__noise_read_message(&i, m2.data + 2, m2.len - 2, &junk))
            __builtin_trap();
        dn_buf_append(&m3, "\0\0", 2);
        if (dn__noise_write_message(&i, d, n, &m3))
            __builtin_trap();
        m3.data[0] = (uint8_t)((m3.len - 2) >> 8);
        m3.data[1] = (uint8_t)(m3.len - 2);
        int rc = dn_noise_handshake_feed(&r, m3.data, m3.len, &used, NULL);
        if (rc == DN_NOISE_DONE) {
            if (!dn_noise_remote_peer(&r))
                __builtin_trap();
            const char *m = dn_noise_negotiated_muxer(&r);
            if (m && strcmp(m, "/mplex/6.7.0"))
                __builtin_trap();
        } else if (rc >= 0) {
            __builtin_trap();
        }
    }
    dn_buf_free(&m1);
    dn_buf_free(&m2);
    dn_buf_free(&m3);
    dn_buf_free(&junk);
    dn_noise_handshake_free(&i);
    dn_noise_handshake_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!id_i) {
        if (sodium_init() < 0)
            __builtin_trap();
        id_i = fixed_identity(0x01);
        id_r = fixed_identity(0x02);
    }
    if (size == 0)
        return 0;
    switch (data[0] % 5) {
    case 0: fuzz_responder(data + 1, size - 1); break;
    case 1: fuzz_decrypt(data + 1, size - 1); break;
    case 2: fuzz_payload(data + 1, size - 1); break;
    case 3: fuzz_handshake_payload(data + 1, size - 1, 3); break;
    default: fuzz_handshake_payload(data + 1, size - 1, 2); break;
    }
    return 0;
}
