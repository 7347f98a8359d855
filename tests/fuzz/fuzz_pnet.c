/* Fuzz pnet: swarm key parsing on arbitrary bytes, and the stream with the
 * peer's nonce and data split at arbitrary points. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "pnet/pnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        if (sodium_init() < 0)
            abort();
        inited = 1;
    }

    /* 1. Swarm key parse: any bytes; a key that parses formats and parses
     *    back to itself. */
    uint8_t psk[DN_PSK_LEN], again[DN_PSK_LEN];
    int rc = dn_swarm_key_parse(data, size, psk);
    if (rc == 0) {
        char text[DN_SWARM_KEY_TEXT_MAX];
        int n = dn_swarm_key_format(psk, text, sizeof text);
        if (n != 95 || dn_swarm_key_parse((const uint8_t *)text, (size_t)n, again) != 0 ||
            memcmp(psk, again, sizeof psk) != 0)
            abort();
    } else if (rc != DN_EMALFORMED && rc != DN_EUNSUPPORTED && rc != DN_ETRUNCATED &&
               rc != DN_ETOOBIG) {
        abort();
    }

    /* 2. The input as a peer's wire bytes: nonce then ciphertext, fed in
     *    chunks whose sizes come from the input itself. Decrypted output
     *    must equal one-shot XSalsa20 over everything after the nonce. */
    if (size < 1)
        return 0;
    static const uint8_t key[DN_PSK_LEN] = {7, 7, 7};
    static const uint8_t local[DN_PNET_NONCE_LEN] = {1};
    dn_pnet p;
    dn_pnet_init(&p, key, local);
    uint8_t *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    uint32_t seed = data[0] | 1u;
    size_t off = 0, plain = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t c = (seed >> 16) % 150;
        if (c > size - off)
            c = size - off;
        size_t used = dn_pnet_feed_nonce(&p, buf + off, c);
        if (used > c)
            abort();
        if (!dn_pnet_ready(&p) && used != c)
            abort();
        if (dn_pnet_ready(&p)) {
            if (plain == 0)
                plain = off + used;
            dn_pnet_decrypt(&p, buf + off + used, c - used);
        }
        off += c;
    }
    if (size >= DN_PNET_NONCE_LEN) {
        if (!dn_pnet_ready(&p) || plain != DN_PNET_NONCE_LEN)
            abort();
        size_t n = size - DN_PNET_NONCE_LEN;
        uint8_t *want = malloc(n ? n : 1);
        if (!want)
            abort();
        crypto_stream_xsalsa20_xor(want, data + DN_PNET_NONCE_LEN, n, data, key);
        if (n && memcmp(want, buf + DN_PNET_NONCE_LEN, n) != 0)
            abort();
        free(want);
    } else if (dn_pnet_ready(&p)) {
        abort();
    }
    free(buf);
    dn_pnet_wipe(&p);
    return 0;
}
