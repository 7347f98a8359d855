/* Kademlia routing table; see routing.h for the layout and the policy. */
#include "kad/routing.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "multiformats/multihash.h"

int dn__kad_key_from_bytes(const uint8_t *p, size_t n, dn__kad_key *out)
{
    uint8_t mh[2 + DN_KAD_KEY_LEN];
    int rc = dn__mh_sha256(p, n, mh, sizeof mh);
    if (rc < 0)
        return rc;
    memcpy(out->b, mh + 2, DN_KAD_KEY_LEN);
    return 0;
}

int dn__kad_key_from_peerid(const dn_peerid *id, dn__kad_key *out)
{
    if (!id || id->len == 0 || id->len > DN_PEERID_MAX)
        return DN_EINVAL;
    return dn__kad_key_from_bytes(id->bytes, id->len, out);
}

void dn__kad_xor(const dn__kad_key *a, const dn__kad_key *b, dn__kad_key *out)
{
    for (size_t i = 0; i < DN_KAD_KEY_LEN; i++)
        out->b[i] = a->b[i] ^ b->b[i];
}

unsigned dn__kad_cpl(const dn__kad_key *a, const dn__kad_key *b)
{
    for (unsigned i = 0; i < DN_KAD_KEY_LEN; i++) {
        unsigned x = a->b[i] ^ b->b[i];
        if (x)
            return i * 8 + (unsigned)__builtin_clz(x) - (unsigned)(sizeof(unsigned) * 8 - 8);
    }
    return DN_KAD_KEY_LEN * 8;
}

int dn__kad_closer(const dn__kad_key *target, const dn__kad_key *a, const dn__kad_key *b)
{
    /* Compare a^t and b^t as big-endian numbers, byte by byte. */
    for (size_t i = 0; i < DN_KAD_KEY_LEN; i++) {
        unsigned da = a->b[i] ^ target->b[i], db = b->b[i] ^ target->b[i];
        if (da != db)
            return da < db ? -1 : 1;
    }
    return 0;
}

static bool same_id(const dn_peerid *a, const dn_peerid *b)
{
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

int dn__kad_rt_init(dn__kad_rt *rt, const dn_peerid *self, unsigned k, uint64_t now_ms)
{
    memset(rt, 0, sizeof *rt);
    if (k == 0)
        k = DN_KAD_K;
    if (k > DN_KAD_K_MAX || !self || self->len == 0)
        return DN_EINVAL;
    int rc = dn__kad_key_from_peerid(self, &rt->self);
    if (rc)
        return rc;
    rt->self_id = *self;
    rt->k = k;
    for (size_t i = 0; i < DN_KAD_BUCKETS; i++)
        rt->b[i].touched_ms = now_ms;
    return 0;
}

void dn__kad_rt_close(dn__kad_rt *rt)
{
    for (size_t i = 0; i < DN_KAD_BUCKETS; i++) {
        free(rt->b[i].e);
        rt->b[i].e = NULL;
        rt->b[i].n = 0;
    }
    rt->npeers = 0;
}

/* The bucket a key belongs in, or NULL for our own key. */
static dn__kad_bucket *bucket_of(dn__kad_rt *rt, const dn__kad_key *key)
{
    unsigned cpl = dn__kad_cpl(&rt->self, key);
    return cpl >= DN_KAD_BUCKETS ? NULL : &rt->b[cpl];
}

static int index_in(const dn__kad_bucket *b, const dn_peerid *id)
{
    for (int i = 0; i < b->n; i++)
        if (same_id(&b->e[i].id, id))
            return i;
    return -1;
}

/* Move entry i to the tail (most recently seen). */
static void to_tail(dn__kad_bucket *b, int i)
{
    dn__kad_entry e = b->e[i];
    memmove(&b->e[i], &b->e[i + 1], (size_t)(b->n - i - 1) * sizeof e);
    b->e[b->n - 1] = e;
}

int dn__kad_rt_add(dn__kad_rt *rt, const dn_peerid *id, uint64_t now_ms, dn__kad_entry *evicted,
                   dn__kad_entry *ping)
{
    dn__kad_key key;
    int rc = dn__kad_key_from_peerid(id, &key);
    if (rc)
        return rc;
    dn__kad_bucket *b = bucket_of(rt, &key);
    if (!b || same_id(id, &rt->self_id))
        return DN_EINVAL;
    int i = b->e ? index_in(b, id) : -1;
    if (i >= 0) {
        b->e[i].seen_ms = now_ms;
        b->e[i].stale = false;
        to_tail(b, i);
        return DN_KAD_RT_UPDATED;
    }
    dn__kad_entry ne = {.key = key, .id = *id, .added_ms = now_ms, .seen_ms = now_ms};
    if (!b->e) {
        b->e = calloc(rt->k, sizeof *b->e);
        if (!b->e)
            return DN_ENOMEM;
    }
    if (b->n < rt->k) {
        b->e[b->n++] = ne;
        rt->npeers++;
        b->touched_ms = now_ms;
        return DN_KAD_RT_ADDED;
    }
    /* Full: the least recently seen stale peer makes room, if any. */
    for (i = 0; i < b->n; i++) {
        if (b->e[i].stale) {
            if (evicted)
                *evicted = b->e[i];
            b->e[i] = ne;
            to_tail(b, i);
            b->touched_ms = now_ms;
            return DN_KAD_RT_REPLACED;
        }
    }
    if (ping)
        *ping = b->e[0];
    return DN_ELIMIT;
}

static dn__kad_entry *lookup(const dn__kad_rt *rt, const dn_peerid *id, dn__kad_bucket **bp,
                             int *ip)
{
    dn__kad_key key;
    if (dn__kad_key_from_peerid(id, &key))
        return NULL;
    dn__kad_bucket *b = bucket_of((dn__kad_rt *)rt, &key);
    if (!b || !b->e)
        return NULL;
    int i = index_in(b, id);
    if (i < 0)
        return NULL;
    if (bp)
        *bp = b;
    if (ip)
        *ip = i;
    return &b->e[i];
}

int dn__kad_rt_remove(dn__kad_rt *rt, const dn_peerid *id)
{
    dn__kad_bucket *b;
    int i;
    if (!lookup(rt, id, &b, &i))
        return DN_ENOTFOUND;
    memmove(&b->e[i], &b->e[i + 1], (size_t)(b->n - i - 1) * sizeof b->e[0]);
    b->n--;
    rt->npeers--;
    return 0;
}

int dn__kad_rt_mark_stale(dn__kad_rt *rt, const dn_peerid *id)
{
    dn__kad_entry *e = lookup(rt, id, NULL, NULL);
    if (!e)
        return DN_ENOTFOUND;
    e->stale = true;
    return 0;
}

int dn__kad_rt_find(const dn__kad_rt *rt, const dn_peerid *id, dn__kad_entry *out)
{
    dn__kad_entry *e = lookup(rt, id, NULL, NULL);
    if (!e)
        return DN_ENOTFOUND;
    if (out)
        *out = *e;
    return 0;
}

size_t dn__kad_rt_closest(const dn__kad_rt *rt, const dn__kad_key *target, size_t n,
                          bool include_stale, dn__kad_entry *out)
{
    /* Insertion into a sorted out[] of at most n: O(peers * n), with at
     * most a few hundred peers and n = k this is cheaper than sorting. */
    size_t have = 0;
    if (n == 0)
        return 0;
    for (size_t bi = 0; bi < DN_KAD_BUCKETS; bi++) {
        const dn__kad_bucket *b = &rt->b[bi];
        for (int i = 0; i < b->n; i++) {
            const dn__kad_entry *e = &b->e[i];
            if (e->stale && !include_stale)
                continue;
            size_t pos = have;
            while (pos > 0 && dn__kad_closer(target, &e->key, &out[pos - 1].key) < 0)
                pos--;
            if (pos >= n)
                continue;
            size_t last = have < n ? have : n - 1;
            memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof *out);
            out[pos] = *e;
            if (have < n)
                have++;
        }
    }
    return have;
}

size_t dn__kad_rt_list(const dn__kad_rt *rt, dn__kad_entry *out, size_t max)
{
    size_t n = 0;
    for (size_t bi = 0; bi < DN_KAD_BUCKETS; bi++)
        for (int i = 0; i < rt->b[bi].n && n < max; i++)
            out[n++] = rt->b[bi].e[i];
    return n;
}

void dn__kad_rt_touch(dn__kad_rt *rt, const dn__kad_key *target, uint64_t now_ms)
{
    unsigned cpl = dn__kad_cpl(&rt->self, target);
    if (cpl >= DN_KAD_BUCKETS)
        cpl = DN_KAD_BUCKETS - 1; /* a lookup of ourselves: the deepest bucket */
    rt->b[cpl].touched_ms = now_ms;
}

size_t dn__kad_rt_need_refresh(const dn__kad_rt *rt, uint64_t now_ms, uint64_t interval_ms,
                               unsigned *out, size_t max)
{
    int deepest = -1;
    for (int i = DN_KAD_BUCKETS - 1; i >= 0; i--)
        if (rt->b[i].n) {
            deepest = i;
            break;
        }
    if (deepest > DN_KAD_REFRESH_MAX_CPL)
        deepest = DN_KAD_REFRESH_MAX_CPL;
    size_t n = 0;
    for (int i = 0; i <= deepest && n < max; i++)
        if (now_ms >= rt->b[i].touched_ms && now_ms - rt->b[i].touched_ms >= interval_ms)
            out[n++] = (unsigned)i;
    return n;
}

int dn__kad_peerid_for_cpl(const dn__kad_key *self, unsigned cpl, const uint8_t seed[32],
                           dn_peerid *out)
{
    if (cpl > DN_KAD_REFRESH_MAX_CPL)
        return DN_EINVAL;
    uint8_t mh[2 + DN_KAD_KEY_LEN] = {0x12, DN_KAD_KEY_LEN};
    memcpy(mh + 2, seed, DN_KAD_KEY_LEN);
    for (uint32_t n = 0; n < (1u << 24); n++) {
        /* a counter in the last 4 bytes makes each trial a new id */
        for (int i = 0; i < 4; i++)
            mh[2 + DN_KAD_KEY_LEN - 4 + i] =
                (uint8_t)(seed[DN_KAD_KEY_LEN - 4 + i] ^ (n >> (8 * i)));
        dn__kad_key k;
        int rc = dn__kad_key_from_bytes(mh, sizeof mh, &k);
        if (rc)
            return rc;
        if (dn__kad_cpl(self, &k) == cpl)
            return dn_peerid_from_bytes(mh, sizeof mh, out);
    }
    return DN_ELIMIT;
}
