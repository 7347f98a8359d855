/* The Kademlia routing table (libp2p/specs kad-dht/README.md,
 * "Kademlia routing table", "Distance"), sans-I/O.
 *
 * Keys are SHA-256 of a peer id's multihash bytes (of the key bytes for
 * records and CIDs); distance is their XOR. Peers sit in k-buckets indexed
 * by the common prefix length (cpl) of their key with ours: bucket i holds
 * the peers whose key shares exactly i leading bits with ours (i < 256).
 * The spec unfolds buckets lazily by splitting; indexing by cpl from the
 * start gives the same partition (a split bucket's peers land where their
 * cpl says), without the split.
 *
 * Full bucket policy (Kademlia paper section 2.2, js's KBucket with
 * pingOldContacts): a full bucket keeps its peers, since long-lived peers
 * are the likeliest to stay. A new peer is admitted only by replacing a
 * peer marked stale (dn__kad_rt_mark_stale: a failed request, an
 * unanswered ping); otherwise add returns DN_ELIMIT and names the bucket's
 * least recently seen peer, which the caller should ping and mark stale if
 * it does not answer, then add the new peer again. Within a bucket peers are
 * kept least recently seen first.
 *
 * Memory: a bucket's k entries are allocated when its first peer arrives;
 * at most DN_KAD_BUCKETS * k entries (about 550 KiB at k = 20) in the worst
 * case, and in practice about log2(network size) + a few buckets. */
#ifndef DN_KAD_ROUTING_H
#define DN_KAD_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/peerid.h"

#define DN_KAD_K 20
#define DN_KAD_K_MAX 64
#define DN_KAD_KEY_LEN 32
#define DN_KAD_BUCKETS 256
/* Buckets deeper than this are not reported for refresh: refreshing
 * bucket i needs a peer id whose key has cpl i with ours, found by trial
 * (2^i hashes on average), as go and js also cap it (go at 15). */
#define DN_KAD_REFRESH_MAX_CPL 15

typedef struct dn__kad_key {
    uint8_t b[DN_KAD_KEY_LEN];
} dn__kad_key;

/* SHA-256 of the peer id's multihash bytes. Returns 0 or DN_EINVAL (empty
 * id) / DN_ECRYPTO. */
int dn__kad_key_from_peerid(const dn_peerid *id, dn__kad_key *out);
/* SHA-256 of arbitrary key bytes (a record key, a CID's multihash). */
int dn__kad_key_from_bytes(const uint8_t *p, size_t n, dn__kad_key *out);

void dn__kad_xor(const dn__kad_key *a, const dn__kad_key *b, dn__kad_key *out);
/* Common prefix length in bits, 0..256 (256: equal keys). */
unsigned dn__kad_cpl(const dn__kad_key *a, const dn__kad_key *b);
/* <0 when a is closer to target than b, 0 when equally far (a == b), >0
 * otherwise. */
int dn__kad_closer(const dn__kad_key *target, const dn__kad_key *a, const dn__kad_key *b);

typedef struct dn__kad_entry {
    dn__kad_key key;
    dn_peerid id;
    uint64_t added_ms;
    uint64_t seen_ms; /* last add/seen */
    bool stale;       /* a request failed; replaceable when its bucket is full */
} dn__kad_entry;

typedef struct dn__kad_bucket {
    dn__kad_entry *e; /* k slots once used, NULL before */
    uint8_t n;
    uint64_t touched_ms; /* a peer was added, or a lookup into it finished */
} dn__kad_bucket;

typedef struct dn__kad_rt {
    dn__kad_key self;
    dn_peerid self_id;
    unsigned k;
    size_t npeers;
    dn__kad_bucket b[DN_KAD_BUCKETS];
} dn__kad_rt;

/* Results of dn__kad_rt_add (non-negative). */
enum {
    DN_KAD_RT_ADDED = 0,
    DN_KAD_RT_UPDATED = 1,  /* already there: seen now, not stale */
    DN_KAD_RT_REPLACED = 2, /* took the place of a stale peer (*evicted) */
};

/* k 0 means DN_KAD_K. Returns 0, DN_EINVAL (k above DN_KAD_K_MAX, empty
 * id) or DN_ECRYPTO. Every bucket counts as touched at now_ms. */
int dn__kad_rt_init(dn__kad_rt *rt, const dn_peerid *self, unsigned k, uint64_t now_ms);
void dn__kad_rt_close(dn__kad_rt *rt);

/* Add or refresh a peer. Returns DN_KAD_RT_ADDED / _UPDATED / _REPLACED
 * (then *evicted, if not NULL, is the peer that left), or DN_ELIMIT when
 * its bucket is full of live peers (then *ping, if not NULL, is the least
 * recently seen one), DN_EINVAL for our own id or an empty id, DN_ENOMEM.
 */
int dn__kad_rt_add(dn__kad_rt *rt, const dn_peerid *id, uint64_t now_ms, dn__kad_entry *evicted,
                   dn__kad_entry *ping);
/* 0 or DN_ENOTFOUND. */
int dn__kad_rt_remove(dn__kad_rt *rt, const dn_peerid *id);
/* Mark a peer replaceable (a request to it failed). 0 or DN_ENOTFOUND. */
int dn__kad_rt_mark_stale(dn__kad_rt *rt, const dn_peerid *id);
/* Copy a peer's entry. 0 or DN_ENOTFOUND. */
int dn__kad_rt_find(const dn__kad_rt *rt, const dn_peerid *id, dn__kad_entry *out);
static inline size_t dn__kad_rt_size(const dn__kad_rt *rt)
{
    return rt->npeers;
}

/* The up to n peers closest to target, closest first, into out[0..n).
 * Stale peers are left out unless include_stale. Returns how many. */
size_t dn__kad_rt_closest(const dn__kad_rt *rt, const dn__kad_key *target, size_t n,
                          bool include_stale, dn__kad_entry *out);

/* Visit every entry, bucket by bucket (cpl ascending). */
size_t dn__kad_rt_list(const dn__kad_rt *rt, dn__kad_entry *out, size_t max);

/* A lookup for target finished: its bucket counts as fresh. */
void dn__kad_rt_touch(dn__kad_rt *rt, const dn__kad_key *target, uint64_t now_ms);

/* The buckets that need a refresh lookup at now_ms: cpl 0 up to the deepest
 * non-empty bucket (at most DN_KAD_REFRESH_MAX_CPL), not touched for
 * interval_ms. Writes their cpls to out[0..max), returns how many. */
size_t dn__kad_rt_need_refresh(const dn__kad_rt *rt, uint64_t now_ms, uint64_t interval_ms,
                               unsigned *out, size_t max);

/* A peer id to look up for refreshing bucket cpl: a sha2-256 multihash
 * peer id (0x12 0x20 + 32 bytes, as js's refresh makes; no key need exist
 * for it) whose key shares exactly cpl leading bits with self. Found by
 * trial from seed (32 random bytes from the caller: sans-I/O), about
 * 2^(cpl+1) SHA-256 computations, 65536 at cpl 15 (some 20 ms). Returns
 * 0, DN_EINVAL (cpl above DN_KAD_REFRESH_MAX_CPL), DN_ELIMIT (no id after
 * 2^24 trials: cannot happen but by a broken hash), DN_ECRYPTO. */
int dn__kad_peerid_for_cpl(const dn__kad_key *self, unsigned cpl, const uint8_t seed[32],
                           dn_peerid *out);

#endif
