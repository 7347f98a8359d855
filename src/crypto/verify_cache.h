/* A bounded cache of signatures already verified, so the same (public key,
 * message, signature) costs one verification, not one per connection.
 *
 * What repeats per connection: the Noise handshake payload signature of a
 * peer that keeps its static Noise key (we do; so do rust-libp2p and
 * others: noise spec, "Static Key Authentication"), and the signed peer
 * record in identify, identical until the peer's addresses change.
 *
 * Entries are SHA-256 digests of an injective encoding of the triple (see
 * verify_cache.c), compared in full: a false hit needs two different
 * triples with the same SHA-256, i.e. a SHA-256 collision. Only successful
 * verifications are stored, so a bad signature is always checked (and
 * refused) again. Fixed size (DN_VCACHE_SETS x 2 ways, ~33 KiB), owned by
 * its user (the host keeps one; no global state), no allocation ever. Not
 * thread-safe: one cache per event loop. */
#ifndef DN_CRYPTO_VERIFY_CACHE_H
#define DN_CRYPTO_VERIFY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dmsnet/keys.h"

#define DN_VCACHE_SETS 512 /* power of two */
#define DN_VCACHE_WAYS 2

typedef struct dn_verify_cache {
    uint8_t digest[DN_VCACHE_SETS][DN_VCACHE_WAYS][32];
    /* Per set: bit w = way w holds an entry; bit 7 = way 1 was used last
     * (so way 0 is the one to evict next), else way 0 was. */
    uint8_t state[DN_VCACHE_SETS];
    uint64_t hits, misses; /* statistics, for tests and benchmarks */
} dn_verify_cache;

void dn_verify_cache_init(dn_verify_cache *vc);
/* dn_pubkey_verify through the cache: 0 when sig is a valid signature of
 * msg under k (from the cache, or verified now and then cached),
 * DN_EBADSIG otherwise. vc may be NULL (plain verification). */
int dn_verify_cached(dn_verify_cache *vc, const dn_pubkey *k, const uint8_t *msg, size_t len,
                     const uint8_t *sig, size_t siglen);
/* Number of entries held (at most DN_VCACHE_SETS * DN_VCACHE_WAYS). */
size_t dn_verify_cache_count(const dn_verify_cache *vc);

#endif
