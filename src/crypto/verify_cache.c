/* Verified-signature cache (see verify_cache.h). */
#include "crypto/verify_cache.h"

#include <string.h>

#include <sodium.h>

#include "crypto/keys_int.h"
#include "dmsnet/error.h"

#define STATE_LRU1 0x80u /* way 1 was used last */

void dn_verify_cache_init(dn_verify_cache *vc) { memset(vc, 0, sizeof *vc); }

static void put_u64(crypto_hash_sha256_state *st, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    crypto_hash_sha256_update(st, b, sizeof b);
}

/* SHA-256 over a domain label, then the key type and each of key data,
 * message and signature preceded by its 64-bit length. The lengths make
 * the encoding injective: two different triples give two different inputs,
 * so equal digests for different triples would be a SHA-256 collision. */
static void triple_digest(uint8_t out[32], const dn_pubkey *k, const uint8_t *msg, size_t len,
                          const uint8_t *sig, size_t siglen)
{
    static const char label[] = "dmsnet verified signature v1";
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)label, sizeof label);
    put_u64(&st, (uint64_t)k->type);
    put_u64(&st, k->len);
    if (k->len)
        crypto_hash_sha256_update(&st, k->data, k->len);
    put_u64(&st, len);
    if (len)
        crypto_hash_sha256_update(&st, msg, len);
    put_u64(&st, siglen);
    if (siglen)
        crypto_hash_sha256_update(&st, sig, siglen);
    crypto_hash_sha256_final(&st, out);
}

int dn_verify_cached(dn_verify_cache *vc, const dn_pubkey *k, const uint8_t *msg, size_t len,
                     const uint8_t *sig, size_t siglen)
{
    if (!vc || !k || (len && !msg) || (siglen && !sig))
        return dn_pubkey_verify(k, msg, len, sig, siglen);
    uint8_t d[32];
    triple_digest(d, k, msg, len, sig, siglen);
    size_t set = ((size_t)d[0] | (size_t)d[1] << 8) & (DN_VCACHE_SETS - 1);
    uint8_t *state = &vc->state[set];
    for (unsigned w = 0; w < DN_VCACHE_WAYS; w++) {
        if ((*state & (1u << w)) && memcmp(vc->digest[set][w], d, 32) == 0) {
            *state = (uint8_t)(w ? *state | STATE_LRU1 : *state & ~STATE_LRU1);
            vc->hits++;
            return 0;
        }
    }
    vc->misses++;
    int rc = dn_pubkey_verify(k, msg, len, sig, siglen);
    if (rc)
        return rc; /* failures are never cached */
    /* Fill an empty way, else evict the one used least recently. */
    unsigned w;
    if (!(*state & 1u))
        w = 0;
    else if (!(*state & 2u))
        w = 1;
    else
        w = (*state & STATE_LRU1) ? 0 : 1;
    memcpy(vc->digest[set][w], d, 32);
    *state = (uint8_t)(*state | (1u << w));
    *state = (uint8_t)(w ? *state | STATE_LRU1 : *state & ~STATE_LRU1);
    return 0;
}

size_t dn_verify_cache_count(const dn_verify_cache *vc)
{
    size_t n = 0;
    for (size_t s = 0; s < DN_VCACHE_SETS; s++)
        n += (size_t)((vc->state[s] & 1u) != 0) + (size_t)((vc->state[s] & 2u) != 0);
    return n;
}
