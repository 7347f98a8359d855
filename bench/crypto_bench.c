/* crypto_bench — the crypto ceiling for one core.
 *
 * Every byte dmsnet moves is sealed with ChaCha20-Poly1305 (Noise transport,
 * noise/README.md "Cryptographic Primitives"), and with pnet also XORed with
 * XSalsa20 (pnet/README.md). One connection is one libuv loop, so a single
 * stream can never go faster than one core can run these ciphers. This tool
 * measures that ceiling the way the library uses them: OpenSSL EVP for the
 * AEAD, libsodium's crypto_stream_xsalsa20_xor for pnet, 64 KiB buffers.
 *
 * It also times the public-key operations of one connection setup, per
 * side. Noise XX (noise/README.md) needs a fresh ephemeral key (one X25519
 * base-point multiplication) and three DH (ee, es, se). The host's static
 * Noise key and its signature are made once, not per connection, and the
 * peer's payload signature and signed peer record (RFC 0003) are verified
 * once per peer and then found in the host's verified-signature cache; so
 * setup_crypto_us, the floor of a setup with a known peer, is one base
 * mult and three DH. A peer seen for the first time adds up to two
 * verifications (ed25519_verify_us each).
 *
 * Output: one JSON object
 *   {"chacha20poly1305_gbps":G
 * (seal),"chacha20poly1305_open_gbps":G,"xsalsa20_gbps":G,"both_gbps":G,
 *    "x25519_us":..,"x25519_base_us":..,"ed25519_sign_us":..,"ed25519_verify_us":..,
 *    "setup_crypto_us":..}
 * where both_gbps is the harmonic combination (a byte pays both costs) and
 * setup_crypto_us the public-key time of one side of one connection. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>

#define BUF_LEN (64 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seal 64 KiB buffers with a fresh nonce each, as the Noise transport does
 * per message (its messages are at most 65535 bytes). */
static double bench_chacha(double seconds)
{
    static uint8_t in[BUF_LEN], out[BUF_LEN + 16];
    uint8_t key[32], nonce[12] = {0}, tag[16];
    randombytes_buf(key, sizeof key);
    randombytes_buf(in, sizeof in);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL) != 1)
        return -1;
    uint64_t bytes = 0, n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 16; i++, n++) {
            memcpy(nonce + 4, &n, 8);
            int len = 0, fin = 0;
            if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
                EVP_EncryptUpdate(ctx, out, &len, in, BUF_LEN) != 1 ||
                EVP_EncryptFinal_ex(ctx, out + len, &fin) != 1 ||
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
                return -1;
            bytes += BUF_LEN;
        }
        t = now_s() - t0;
    } while (t < seconds);
    EVP_CIPHER_CTX_free(ctx);
    return (double)bytes * 8 / t / 1e9;
}

/* Open (decrypt and verify) the same way: the receiving side's cost. */
static double bench_chacha_open(double seconds)
{
    static uint8_t pt[BUF_LEN], ct[BUF_LEN], out[BUF_LEN + 16];
    uint8_t key[32], nonce[12] = {0}, tag[16];
    randombytes_buf(key, sizeof key);
    randombytes_buf(pt, sizeof pt);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    /* One valid message, opened over and over (same nonce: only speed matters). */
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, ct, &len, pt, BUF_LEN) != 1 ||
        EVP_EncryptFinal_ex(ctx, ct + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
        return -1;
    EVP_CIPHER_CTX_free(ctx);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL) != 1)
        return -1;
    uint64_t bytes = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 16; i++) {
            if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
                EVP_DecryptUpdate(ctx, out, &len, ct, BUF_LEN) != 1 ||
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1 ||
                EVP_DecryptFinal_ex(ctx, out + len, &fin) != 1)
                return -1;
            bytes += BUF_LEN;
        }
        t = now_s() - t0;
    } while (t < seconds);
    EVP_CIPHER_CTX_free(ctx);
    return (double)bytes * 8 / t / 1e9;
}

/* pnet is one long XSalsa20 keystream; libsodium's _xor_ic continues it at
 * a block counter, which is how a streaming XOR over 64 KiB chunks runs. */
static double bench_xsalsa(double seconds)
{
    static uint8_t in[BUF_LEN], out[BUF_LEN];
    uint8_t key[32], nonce[24];
    randombytes_buf(key, sizeof key);
    randombytes_buf(nonce, sizeof nonce);
    randombytes_buf(in, sizeof in);
    uint64_t bytes = 0, ic = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 16; i++) {
            crypto_stream_xsalsa20_xor_ic(out, in, BUF_LEN, nonce, ic, key);
            ic += BUF_LEN / 64;
            bytes += BUF_LEN;
        }
        t = now_s() - t0;
    } while (t < seconds);
    return (double)bytes * 8 / t / 1e9;
}

/* Mean microseconds per call of op over about `seconds`. */
#define TIME_OP(seconds, op)                                                                       \
    ({                                                                                             \
        uint64_t n_ = 0;                                                                           \
        double t0_ = now_s(), t_;                                                                  \
        do {                                                                                       \
            for (int i_ = 0; i_ < 32; i_++, n_++)                                                  \
                op;                                                                                \
            t_ = now_s() - t0_;                                                                    \
        } while (t_ < (seconds));                                                                  \
        t_ * 1e6 / (double)n_;                                                                     \
    })

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: crypto_bench [seconds per cipher, default 1]\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    double c = bench_chacha(seconds), co = bench_chacha_open(seconds), x = bench_xsalsa(seconds);
    if (c <= 0 || co <= 0 || x <= 0) {
        fprintf(stderr, "crypto_bench: cipher setup failed\n");
        return 1;
    }
    uint8_t sk[32], pk[32], peer[32], shared[32], msg[64], sig[64];
    uint8_t epk[crypto_sign_PUBLICKEYBYTES], esk[crypto_sign_SECRETKEYBYTES];
    randombytes_buf(sk, sizeof sk);
    randombytes_buf(msg, sizeof msg);
    crypto_scalarmult_base(peer, sk);
    crypto_sign_keypair(epk, esk);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, esk);
    volatile int sink = 0;
    double q = seconds / 4;
    double base_us = TIME_OP(q, sink += crypto_scalarmult_base(pk, sk));
    double dh_us = TIME_OP(q, sink += crypto_scalarmult(shared, sk, peer));
    double sign_us = TIME_OP(q, sink += crypto_sign_detached(sig, NULL, msg, sizeof msg, esk));
    double verify_us = TIME_OP(q, sink += crypto_sign_verify_detached(sig, msg, sizeof msg, epk));
    (void)sink;
    printf("{\"chacha20poly1305_gbps\":%.3f,\"chacha20poly1305_open_gbps\":%.3f,\"xsalsa20_gbps\":%"
           ".3f,\"both_gbps\":%.3f,"
           "\"x25519_us\":%.1f,\"x25519_base_us\":%.1f,\"ed25519_sign_us\":%.1f,"
           "\"ed25519_verify_us\":%.1f,\"setup_crypto_us\":%.1f}\n",
           c, co, x, 1.0 / (1.0 / c + 1.0 / x), dh_us, base_us, sign_us, verify_us,
           base_us + 3 * dh_us);
    return 0;
}
