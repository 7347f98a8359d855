/* Iterative Kademlia lookup; see query.h for the rules. */
#include "kad/query.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

static bool same_id(const dn_peerid *a, const dn_peerid *b)
{
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

int dn__kad_query_init(dn__kad_query *q, const dn__kad_key *target, const dn_peerid *self,
                       const dn__kad_query_opts *opts)
{
    memset(q, 0, sizeof *q);
    dn__kad_query_opts o = opts ? *opts : (dn__kad_query_opts){0};
    if (!o.k)
        o.k = DN_KAD_K;
    if (!o.alpha)
        o.alpha = DN_KAD_ALPHA;
    if (!o.timeout_ms)
        o.timeout_ms = DN_KAD_QUERY_TIMEOUT_MS;
    if (!o.max_peers)
        o.max_peers = DN_KAD_QUERY_PEERS;
    if (!target || o.k > DN_KAD_K_MAX || o.alpha > DN_KAD_K_MAX ||
        o.max_peers > DN_KAD_QUERY_PEERS_MAX || o.max_peers < (size_t)o.k + o.alpha)
        return DN_EINVAL;
    q->peers = calloc(o.max_peers, sizeof *q->peers);
    if (!q->peers)
        return DN_ENOMEM;
    q->target = *target;
    if (self && self->len) {
        q->has_self = true;
        q->self = *self;
    }
    q->k = o.k;
    q->alpha = o.alpha;
    q->timeout_ms = o.timeout_ms;
    q->cap = o.max_peers;
    return 0;
}

void dn__kad_query_close(dn__kad_query *q)
{
    free(q->peers);
    q->peers = NULL;
    q->n = q->cap = 0;
    q->inflight = 0;
}

static int find(const dn__kad_query *q, const dn_peerid *id)
{
    for (size_t i = 0; i < q->n; i++)
        if (same_id(&q->peers[i].id, id))
            return (int)i;
    return -1;
}

/* Insert one candidate in distance order. 1 added, 0 not (known, self,
 * too far), or an error. */
static int add_one(dn__kad_query *q, const dn_peerid *id)
{
    if (!id->len || id->len > DN_PEERID_MAX || (q->has_self && same_id(id, &q->self)))
        return 0;
    dn__kad_key key;
    int rc = dn__kad_key_from_peerid(id, &key);
    if (rc)
        return rc;
    /* Binary search for the place; equal keys mean the same id (SHA-256). */
    size_t lo = 0, hi = q->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = dn__kad_closer(&q->target, &q->peers[mid].key, &key);
        if (c == 0)
            return 0;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == q->cap) {
        q->dropped++;
        return 0;
    }
    if (q->n == q->cap) {
        /* Push out the farthest. */
        if (q->peers[q->n - 1].state == DN_KAD_Q_WAITING)
            q->inflight--;
        q->n--;
        q->dropped++;
    }
    memmove(&q->peers[lo + 1], &q->peers[lo], (q->n - lo) * sizeof *q->peers);
    q->peers[lo] = (dn__kad_qpeer){.key = key, .id = *id, .state = DN_KAD_Q_HEARD};
    q->n++;
    return 1;
}

int dn__kad_query_add(dn__kad_query *q, const dn_peerid *ids, size_t n)
{
    int added = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = add_one(q, &ids[i]);
        if (rc < 0)
            return rc;
        added += rc;
    }
    return added;
}

static void expire(dn__kad_query *q, uint64_t now_ms)
{
    for (size_t i = 0; i < q->n; i++) {
        dn__kad_qpeer *p = &q->peers[i];
        if (p->state == DN_KAD_Q_WAITING && now_ms >= p->sent_ms &&
            now_ms - p->sent_ms >= q->timeout_ms) {
            p->state = DN_KAD_Q_FAILED;
            q->inflight--;
            q->timed_out++;
        }
    }
}

int dn__kad_query_next(dn__kad_query *q, uint64_t now_ms, dn_peerid *out)
{
    expire(q, now_ms);
    if (q->inflight >= q->alpha)
        return 0;
    /* Only the k closest that have not failed are worth asking. */
    unsigned window = 0;
    for (size_t i = 0; i < q->n && window < q->k; i++) {
        dn__kad_qpeer *p = &q->peers[i];
        if (p->state == DN_KAD_Q_FAILED)
            continue;
        window++;
        if (p->state == DN_KAD_Q_HEARD) {
            p->state = DN_KAD_Q_WAITING;
            p->sent_ms = now_ms;
            q->inflight++;
            q->asked++;
            *out = p->id;
            return 1;
        }
    }
    return 0;
}

static int waiting(dn__kad_query *q, const dn_peerid *peer)
{
    int i = find(q, peer);
    if (i < 0)
        return DN_ENOTFOUND;
    if (q->peers[i].state != DN_KAD_Q_WAITING)
        return DN_ESTATE;
    return i;
}

int dn__kad_query_success(dn__kad_query *q, const dn_peerid *peer, const dn_peerid *ids, size_t n)
{
    int i = waiting(q, peer);
    if (i < 0)
        return i;
    q->peers[i].state = DN_KAD_Q_SUCCEEDED;
    q->inflight--;
    q->answered++;
    return dn__kad_query_add(q, ids, n);
}

int dn__kad_query_failure(dn__kad_query *q, const dn_peerid *peer)
{
    int i = waiting(q, peer);
    if (i < 0)
        return i;
    q->peers[i].state = DN_KAD_Q_FAILED;
    q->inflight--;
    q->failed++;
    return 0;
}

uint64_t dn__kad_query_deadline(const dn__kad_query *q)
{
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; i < q->n; i++) {
        const dn__kad_qpeer *p = &q->peers[i];
        if (p->state == DN_KAD_Q_WAITING && p->sent_ms + q->timeout_ms < d)
            d = p->sent_ms + q->timeout_ms;
    }
    return d;
}

bool dn__kad_query_done(const dn__kad_query *q)
{
    unsigned window = 0;
    for (size_t i = 0; i < q->n && window < q->k; i++) {
        uint8_t s = q->peers[i].state;
        if (s == DN_KAD_Q_FAILED)
            continue;
        if (s != DN_KAD_Q_SUCCEEDED)
            return false;
        window++;
    }
    return true;
}

size_t dn__kad_query_results(const dn__kad_query *q, dn_peerid *out, size_t max)
{
    size_t n = 0;
    if (max > q->k)
        max = q->k;
    for (size_t i = 0; i < q->n && n < max; i++)
        if (q->peers[i].state == DN_KAD_Q_SUCCEEDED)
            out[n++] = q->peers[i].id;
    return n;
}
