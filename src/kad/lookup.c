/* Lookups on the host: the iterative query (query.h) driven by real
 * requests (rpc.c), at most max_queries at once (the rest wait in a
 * queue), alpha requests in flight each; and the API built on them:
 * find_peer, closest_peers, get, put, provide, find_providers, bootstrap
 * and the bucket refresh. Every callback runs from the loop, never from
 * inside the API call. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "kad/service.h"

/* Peers whose hop count a lookup remembers (56 KiB at most). */
#define DN_KAD_DEPTHS_MAX 1024

enum lk_kind { LK_FIND_PEER, LK_CLOSEST, LK_GET, LK_PUT, LK_PROVIDE, LK_PROVIDERS, LK_SELF };

typedef struct lk_depth {
    dn_peerid id;
    unsigned depth; /* the answer of a seed is hop 1, of a peer it named hop 2, ... */
} lk_depth;

typedef struct lk_answer {
    dn_peerid id;
    uint64_t seq;
    bool has; /* answered with a valid record */
} lk_answer;

struct kad_lookup {
    dn_kad *k;
    enum lk_kind kind;
    uint8_t *key; /* the message key (a peer id's bytes, a record key, a CID multihash) */
    size_t keylen;
    dn__kad_key target;
    dn_peerid peer; /* find_peer */
    dn__kad_query q;
    bool q_ready, started, finished, storing;
    dn_buf frame;
    lk_depth *depth;
    size_t ndepth, capdepth;
    unsigned hops;
    uint64_t start_ms;
    unsigned pending; /* our requests in flight */
    /* get */
    uint8_t *best;
    size_t bestlen;
    uint64_t best_seq;
    bool have_best;
    unsigned best_hops;
    lk_answer answers[DN_KAD_QUORUM];
    size_t nanswers;
    /* put, provide */
    uint8_t *value;
    size_t vlen;
    size_t stored;
    int store_err; /* the last refusal, for a put nobody took */
    /* providers */
    dn_peerid *provs;
    size_t nprovs, maxprovs;
    /* callbacks */
    dn_kad_peer_cb peer_cb;
    dn_kad_closest_cb closest_cb;
    dn_kad_value_cb value_cb;
    dn_kad_put_cb put_cb;
    dn_kad_provider_cb prov_cb;
    dn_kad_done_cb done_cb;
    dn_peer_found_fn found;
    void *found_ctx;
    void *arg;
    kad_lookup *prev, *next;
};

static void lk_free(kad_lookup *l)
{
    if (l->q_ready)
        dn__kad_query_close(&l->q);
    dn_buf_free(&l->frame);
    free(l->key);
    free(l->depth);
    free(l->best);
    free(l->value);
    free(l->provs);
    free(l);
}

static void lk_maybe_free(kad_lookup *l)
{
    if (l->finished && l->pending == 0)
        lk_free(l);
}

static unsigned depth_of(kad_lookup *l, const dn_peerid *id)
{
    for (size_t i = 0; i < l->ndepth; i++)
        if (dn_peerid_equal(&l->depth[i].id, id))
            return l->depth[i].depth;
    return 1;
}

/* The shortest chain of answers that named the peer. */
static void depth_set(kad_lookup *l, const dn_peerid *id, unsigned d)
{
    for (size_t i = 0; i < l->ndepth; i++) {
        if (dn_peerid_equal(&l->depth[i].id, id)) {
            if (d < l->depth[i].depth)
                l->depth[i].depth = d;
            return;
        }
    }
    if (l->ndepth == l->capdepth) {
        size_t cap = l->capdepth ? l->capdepth * 2 : 64;
        if (cap > DN_KAD_DEPTHS_MAX)
            return; /* bounded memory: later peers count as hop 1 */
        lk_depth *d2 = realloc(l->depth, cap * sizeof *d2);
        if (!d2)
            return;
        l->depth = d2;
        l->capdepth = cap;
    }
    l->depth[l->ndepth++] = (lk_depth){*id, d};
}

static void info_of(const kad_lookup *l, dn_kad_lookup_info *info)
{
    *info = (dn_kad_lookup_info){.hops = l->hops,
                                 .asked = l->q_ready ? (unsigned)l->q.asked : 0,
                                 .answered = l->q_ready ? (unsigned)l->q.answered : 0,
                                 .elapsed_ms = dn__kad_loop_ms(l->k) - l->start_ms};
}

static void lk_unlink(kad_lookup *l)
{
    dn_kad *k = l->k;
    if (!l->started) {
        kad_lookup **pp = &k->wait_head;
        kad_lookup *prev = NULL;
        for (; *pp && *pp != l; pp = &(*pp)->next)
            prev = *pp;
        if (*pp) {
            *pp = l->next;
            if (k->wait_tail == l)
                k->wait_tail = prev;
            k->nwaiting--;
        }
        return;
    }
    if (l->prev)
        l->prev->next = l->next;
    else
        k->running = l->next;
    if (l->next)
        l->next->prev = l->prev;
    k->nrunning--;
}

/* Peer addresses from the peerstore, for a callback. */
static size_t addrs_of(dn_kad *k, const dn_peerid *id, dn_multiaddr *out, size_t max)
{
    const dn_peer_info *info = dn_host_peer(k->h, id);
    size_t n = 0;
    for (size_t i = 0; info && i < info->naddrs && n < max; i++)
        if (dn_peer_info_addr(info, i, &out[n]) == 0)
            n++;
    return n;
}

/* The end of a lookup: its callback, once. */
static void lk_finish(kad_lookup *l, int status)
{
    if (l->finished)
        return;
    l->finished = true;
    dn_kad *k = l->k;
    lk_unlink(l);
    dn_kad_lookup_info info;
    info_of(l, &info);
    /* A lookup that ran counts as a refresh of its target's bucket. */
    if (l->q_ready && status == 0)
        dn__kad_rt_touch(&k->rt, &l->target, dn__kad_unix_ms());
    switch (l->kind) {
    case LK_FIND_PEER: {
        dn_multiaddr addrs[DN_KAD_ADDRS_PER_PEER];
        size_t n = status ? 0 : addrs_of(k, &l->peer, addrs, DN_KAD_ADDRS_PER_PEER);
        if (l->peer_cb)
            l->peer_cb(l->arg, status, &l->peer, addrs, n, &info);
        if (l->found)
            l->found(k->h, &l->peer, status, l->found_ctx);
        break;
    }
    case LK_CLOSEST: {
        dn_peerid res[DN_KAD_K_MAX];
        size_t n = status || !l->q_ready ? 0 : dn__kad_query_results(&l->q, res, k->cfg.k);
        l->closest_cb(l->arg, status ? status : n ? 0 : DN_ENOTFOUND, res, n, &info);
        break;
    }
    case LK_GET:
        if (!status && !l->have_best)
            status = DN_ENOTFOUND;
        if (!status) {
            dn__kad_valid v;
            status = dn__kad_validate(l->key, l->keylen, l->best, l->bestlen, &k->vc, &v);
            info.hops = l->best_hops;
            l->value_cb(l->arg, status, status ? NULL : v.inner, status ? 0 : v.inner_len, &info);
        } else {
            l->value_cb(l->arg, status, NULL, 0, &info);
        }
        break;
    case LK_PUT:
    case LK_PROVIDE:
        if (l->put_cb)
            l->put_cb(l->arg, status, l->stored, &info);
        break;
    case LK_PROVIDERS:
        l->prov_cb(l->arg, status ? status : l->nprovs ? 0 : DN_ENOTFOUND, NULL, NULL, 0, &info);
        break;
    case LK_SELF:
        if (l->done_cb)
            l->done_cb(l->arg, status, dn__kad_rt_size(&k->rt));
        break;
    }
    dn__kad_kick(k);
    lk_maybe_free(l);
}

static void lk_pump(kad_lookup *l);

static void noop_rpc(dn_kad *k, void *arg, const dn_peerid *peer, int status,
                     const dn__kad_msg *reply)
{
}

/* GET_VALUE done: peers that answered with an older record get the best
 * one (js corrects them too), then the answer. */
static void get_correct(kad_lookup *l)
{
    dn_kad *k = l->k;
    if (!l->have_best)
        return;
    dn__kad_valid v;
    if (dn__kad_validate(l->key, l->keylen, l->best, l->bestlen, &k->vc, &v) != 0 ||
        !v.signed_record)
        return;
    dn__kad_msg *m = malloc(sizeof *m);
    dn_buf frame = DN_BUF_INIT;
    if (!m)
        return;
    dn__kad_msg_init(m);
    m->type = DN_KAD_PUT_VALUE;
    m->key = (dn__kad_span){l->key, l->keylen};
    m->has_record = true;
    m->record_key = m->key;
    m->record_value = (dn__kad_span){l->best, l->bestlen};
    /* Ours too, when we held an older one (not every record we read). */
    const dn__kad_rec *mine = dn__kad_store_get(&k->store, l->key, l->keylen, dn__kad_unix_ms());
    if (mine && mine->seq < v.seq) {
        uint64_t now = dn__kad_unix_ms();
        if (dn__kad_store_put(&k->store, l->key, l->keylen, l->best, l->bestlen, NULL, now, now) ==
                DN_KAD_PUT_STORED &&
            k->cfg.persist.save_record)
            k->cfg.persist.save_record(k->cfg.persist.arg, l->key, l->keylen, l->best, l->bestlen,
                                       now);
    }
    if (dn__kad_msg_encode_frame(m, &frame) == 0)
        for (size_t i = 0; i < l->nanswers; i++)
            if (l->answers[i].has && l->answers[i].seq < v.seq)
                dn__kad_rpc(k, &l->answers[i].id, &frame, true, noop_rpc, NULL);
    dn_buf_free(&frame);
    free(m);
}

static void store_rpc_done(dn_kad *k, void *arg, const dn_peerid *peer, int status,
                           const dn__kad_msg *reply)
{
    kad_lookup *l = arg;
    l->pending--;
    if (!status)
        l->stored++;
    else
        l->store_err = status;
    /* Peers were found but none took it: their error (a reset: refused). */
    if (l->pending == 0 && !l->finished)
        lk_finish(l, l->stored ? 0 : l->store_err);
    else
        lk_maybe_free(l);
}

/* PUT and PROVIDE, second step: the value (or our provider record) to
 * each of the k closest peers the lookup found. */
static void store_phase(kad_lookup *l)
{
    dn_kad *k = l->k;
    l->storing = true;
    dn_peerid res[DN_KAD_K_MAX];
    size_t n = dn__kad_query_results(&l->q, res, k->cfg.k);
    dn__kad_msg *m = malloc(sizeof *m);
    dn_buf frame = DN_BUF_INIT;
    dn_multiaddr mine[DN_KAD_ADDRS_PER_PEER];
    dn__kad_span spans[DN_KAD_ADDRS_PER_PEER];
    if (!m) {
        lk_finish(l, DN_ENOMEM);
        return;
    }
    dn__kad_msg_init(m);
    m->key = (dn__kad_span){l->key, l->keylen};
    if (l->kind == LK_PUT) {
        m->type = DN_KAD_PUT_VALUE;
        m->has_record = true;
        m->record_key = m->key;
        m->record_value = (dn__kad_span){l->value, l->vlen};
    } else {
        m->type = DN_KAD_ADD_PROVIDER;
        size_t na = dn_host_dialable_addrs(k->h, mine, DN_KAD_ADDRS_PER_PEER);
        for (size_t i = 0; i < na; i++)
            spans[i] = (dn__kad_span){mine[i].bytes, mine[i].len};
        dn__kad_msg_add_peer(m, true, dn_host_peerid(k->h), DN_KAD_CONNECTED, spans, na);
    }
    int rc = dn__kad_msg_encode_frame(m, &frame);
    free(m);
    for (size_t i = 0; !rc && i < n; i++) {
        if (dn__kad_rpc(k, &res[i], &frame, l->kind == LK_PUT, store_rpc_done, l) == 0)
            l->pending++;
    }
    dn_buf_free(&frame);
    if (rc)
        lk_finish(l, rc);
    else if (l->pending == 0)
        lk_finish(l, 0); /* nobody to tell: only we hold it */
}

/* The query is over: what each kind does with it. */
static void lk_query_done(kad_lookup *l)
{
    switch (l->kind) {
    case LK_FIND_PEER: lk_finish(l, DN_ENOTFOUND); break;
    case LK_CLOSEST:
    case LK_SELF: {
        dn_peerid res[DN_KAD_K_MAX];
        size_t n = dn__kad_query_results(&l->q, res, l->k->cfg.k);
        for (size_t i = 0; i < n; i++) {
            unsigned d = depth_of(l, &res[i]);
            if (d > l->hops)
                l->hops = d;
        }
        lk_finish(l, 0);
        break;
    }
    case LK_GET:
        get_correct(l);
        lk_finish(l, 0);
        break;
    case LK_PUT:
    case LK_PROVIDE: {
        dn_peerid res[DN_KAD_K_MAX];
        size_t n = dn__kad_query_results(&l->q, res, l->k->cfg.k);
        for (size_t i = 0; i < n; i++) {
            unsigned d = depth_of(l, &res[i]);
            if (d > l->hops)
                l->hops = d;
        }
        store_phase(l);
        break;
    }
    case LK_PROVIDERS: lk_finish(l, 0); break;
    }
}

static void on_reply(dn_kad *k, void *arg, const dn_peerid *peer, int status, const dn__kad_msg *m)
{
    kad_lookup *l = arg;
    l->pending--;
    if (l->finished || l->storing) {
        lk_maybe_free(l);
        return;
    }
    if (status) {
        dn__kad_query_failure(&l->q, peer);
        lk_pump(l);
        return;
    }
    unsigned d = depth_of(l, peer);
    dn_peerid ids[DN_KAD_MAX_PEERS];
    size_t n = 0;
    bool found = dn_peerid_equal(peer, &l->peer) && l->kind == LK_FIND_PEER;
    for (size_t i = 0; i < m->ncloser; i++) {
        const dn__kad_peer *p = &m->closer[i];
        if (l->kind == LK_FIND_PEER && dn_peerid_equal(&p->id, &l->peer)) {
            /* The peer asked for, with addresses: these are the news
             * (it may have moved), unless we are connected to it. */
            const dn_peer_info *info = dn_host_peer(k->h, &p->id);
            if ((info && info->connections > 0) || dn__kad_take_addrs(k, m, p) > 0)
                found = true;
        } else {
            dn__kad_learn_addrs(k, m, p);
        }
        ids[n++] = p->id;
    }
    dn__kad_query_success(&l->q, peer, ids, n);
    for (size_t i = 0; i < n; i++)
        depth_set(l, &ids[i], d + 1);
    if (found) {
        l->hops = d;
        lk_finish(l, 0);
        return;
    }
    if (l->kind == LK_GET && m->has_record && m->record_key.len == l->keylen &&
        memcmp(m->record_key.p, l->key, l->keylen) == 0 && l->nanswers < DN_KAD_QUORUM) {
        dn__kad_valid v;
        lk_answer *a = &l->answers[l->nanswers++];
        a->id = *peer;
        if (dn__kad_validate(l->key, l->keylen, m->record_value.p, m->record_value.len, &k->vc,
                             &v) == 0) {
            a->has = true;
            a->seq = v.seq;
            if (!l->have_best || (v.signed_record && v.seq > l->best_seq)) {
                uint8_t *copy = malloc(m->record_value.len ? m->record_value.len : 1);
                if (copy) {
                    memcpy(copy, m->record_value.p, m->record_value.len);
                    free(l->best);
                    l->best = copy;
                    l->bestlen = m->record_value.len;
                    l->best_seq = v.seq;
                    l->have_best = true;
                    l->best_hops = d;
                }
            }
        }
        if (l->nanswers >= DN_KAD_QUORUM) {
            get_correct(l);
            lk_finish(l, 0);
            return;
        }
    }
    if (l->kind == LK_PROVIDERS) {
        for (size_t i = 0; i < m->nproviders && l->nprovs < l->maxprovs; i++) {
            const dn__kad_peer *p = &m->providers[i];
            bool seen = false;
            for (size_t j = 0; j < l->nprovs && !seen; j++)
                seen = dn_peerid_equal(&l->provs[j], &p->id);
            if (seen)
                continue;
            dn__kad_learn_addrs(k, m, p);
            l->provs[l->nprovs++] = p->id;
            dn_multiaddr addrs[DN_KAD_ADDRS_PER_PEER];
            size_t na = addrs_of(k, &p->id, addrs, DN_KAD_ADDRS_PER_PEER);
            dn_kad_lookup_info info;
            info_of(l, &info);
            info.hops = d;
            if (d > l->hops)
                l->hops = d;
            l->prov_cb(l->arg, 0, &p->id, addrs, na, &info);
            if (l->finished)
                return;
        }
        if (l->nprovs >= l->maxprovs) {
            lk_finish(l, 0);
            return;
        }
    }
    lk_pump(l);
}

/* Ask the next peers; finish when the query is done. */
static void lk_pump(kad_lookup *l)
{
    dn_kad *k = l->k;
    if (l->finished || l->storing)
        return;
    dn_peerid next;
    while (dn__kad_query_next(&l->q, dn__kad_loop_ms(k), &next) == 1) {
        if (dn__kad_rpc(k, &next, &l->frame, true, on_reply, l) == 0)
            l->pending++;
        else
            dn__kad_query_failure(&l->q, &next);
    }
    if (dn__kad_query_done(&l->q) || l->q.inflight == 0)
        lk_query_done(l);
}

/* Seeds: the table's closest, then (while the table is short of k) the
 * connected peers that speak kad or are not identified yet, and restored
 * candidates. */
static void seed_conn(dn_conn *c, void *arg)
{
    kad_lookup *l = arg;
    const dn_peerid *id = dn_conn_remote_peer(c);
    const dn_peer_info *p = dn_host_peer(l->k->h, id);
    bool ok = !p || !p->identified;
    for (size_t i = 0; p && !ok && i < p->nprotocols; i++)
        ok = strcmp(p->protocols[i], l->k->proto) == 0;
    if (ok) {
        dn__kad_query_add(&l->q, id, 1);
        depth_set(l, id, 1);
    }
}

static int lk_start(kad_lookup *l)
{
    dn_kad *k = l->k;
    dn__kad_query_opts o = {.k = k->cfg.k,
                            .alpha = k->cfg.alpha,
                            .timeout_ms = (uint64_t)k->cfg.query_timeout_ms + 500};
    int rc = dn__kad_query_init(&l->q, &l->target, dn_host_peerid(k->h), &o);
    if (rc)
        return rc;
    l->q_ready = true;
    dn__kad_entry e[DN_KAD_K_MAX];
    size_t n = dn__kad_rt_closest(&k->rt, &l->target, k->cfg.k, false, e);
    if (n < k->cfg.k)
        n = dn__kad_rt_closest(&k->rt, &l->target, k->cfg.k, true, e);
    for (size_t i = 0; i < n; i++) {
        dn__kad_query_add(&l->q, &e[i].id, 1);
        depth_set(l, &e[i].id, 1);
    }
    if (n < k->cfg.k) {
        dn_host_foreach_conn(k->h, seed_conn, l);
        dn__kad_query_add(&l->q, k->cand, k->ncand);
        for (size_t i = 0; i < k->ncand; i++)
            depth_set(l, &k->cand[i], 1);
    }
    dn__kad_msg *m = malloc(sizeof *m);
    if (!m)
        return DN_ENOMEM;
    dn__kad_msg_init(m);
    switch (l->kind) {
    case LK_GET: m->type = DN_KAD_GET_VALUE; break;
    case LK_PROVIDERS: m->type = DN_KAD_GET_PROVIDERS; break;
    default: m->type = DN_KAD_FIND_NODE; break;
    }
    m->key = (dn__kad_span){l->key, l->keylen};
    rc = dn__kad_msg_encode_frame(m, &l->frame);
    free(m);
    return rc;
}

void dn__kad_run_queued(dn_kad *k)
{
    while (!k->freed && k->wait_head && k->nrunning < k->cfg.max_queries) {
        kad_lookup *l = k->wait_head;
        k->wait_head = l->next;
        if (!k->wait_head)
            k->wait_tail = NULL;
        k->nwaiting--;
        l->started = true;
        l->prev = NULL;
        l->next = k->running;
        if (k->running)
            k->running->prev = l;
        k->running = l;
        k->nrunning++;
        /* From here on it counts (also when answered here, below). */
        l->start_ms = dn__kad_loop_ms(k);
        /* Already answered here? */
        if (l->kind == LK_FIND_PEER) {
            const dn_peer_info *p = dn_host_peer(k->h, &l->peer);
            if (p && p->connections > 0) {
                lk_finish(l, 0);
                continue;
            }
        }
        int rc = lk_start(l);
        if (rc) {
            lk_finish(l, rc);
            continue;
        }
        if (l->kind == LK_PROVIDERS) {
            /* Our own store first. */
            dn_peerid local[DN_KAD_MAX_PEERS];
            size_t n = dn__kad_prov_get(&k->store, l->key, l->keylen, dn__kad_unix_ms(), local,
                                        DN_KAD_MAX_PEERS);
            for (size_t i = 0; i < n && l->nprovs < l->maxprovs && !l->finished; i++) {
                l->provs[l->nprovs++] = local[i];
                dn_multiaddr addrs[DN_KAD_ADDRS_PER_PEER];
                size_t na = addrs_of(k, &local[i], addrs, DN_KAD_ADDRS_PER_PEER);
                dn_kad_lookup_info info;
                info_of(l, &info);
                l->prov_cb(l->arg, 0, &local[i], addrs, na, &info);
            }
            if (!l->finished && l->nprovs >= l->maxprovs) {
                lk_finish(l, 0);
                continue;
            }
        }
        if (!l->finished)
            lk_pump(l);
    }
}

void dn__kad_lookups_close(dn_kad *k)
{
    while (k->running)
        lk_finish(k->running, DN_ECLOSED);
    while (k->wait_head)
        lk_finish(k->wait_head, DN_ECLOSED);
}

/* A new lookup, queued. */
static kad_lookup *lk_new(dn_kad *k, enum lk_kind kind, const uint8_t *key, size_t keylen, int *rc)
{
    *rc = 0;
    if (k->freed) {
        *rc = DN_ECLOSED;
        return NULL;
    }
    if (!key || !keylen || keylen > DN_KAD_MAX_KEY) {
        *rc = DN_EINVAL;
        return NULL;
    }
    if (k->nwaiting >= DN_KAD_MAX_WAITING) {
        *rc = DN_ELIMIT;
        return NULL;
    }
    kad_lookup *l = calloc(1, sizeof *l);
    if (!l || !(l->key = malloc(keylen))) {
        free(l);
        *rc = DN_ENOMEM;
        return NULL;
    }
    memcpy(l->key, key, keylen);
    l->keylen = keylen;
    l->k = k;
    l->kind = kind;
    if (dn__kad_key_from_bytes(key, keylen, &l->target) != 0) {
        lk_free(l);
        *rc = DN_ECRYPTO;
        return NULL;
    }
    return l;
}

static void lk_queue(kad_lookup *l)
{
    dn_kad *k = l->k;
    l->next = NULL;
    if (k->wait_tail)
        k->wait_tail->next = l;
    else
        k->wait_head = l;
    k->wait_tail = l;
    k->nwaiting++;
    dn__kad_kick(k);
}

/* ---- the API ---- */

static int find_peer(dn_kad *k, const dn_peerid *peer, dn_kad_peer_cb cb, void *arg,
                     dn_peer_found_fn found, void *ctx)
{
    if (!k || !peer || !peer->len)
        return DN_EINVAL;
    if (dn_peerid_equal(peer, dn_host_peerid(k->h)))
        return DN_EPEERID;
    int rc;
    kad_lookup *l = lk_new(k, LK_FIND_PEER, peer->bytes, peer->len, &rc);
    if (!l)
        return rc;
    l->peer = *peer;
    l->peer_cb = cb;
    l->arg = arg;
    l->found = found;
    l->found_ctx = ctx;
    lk_queue(l);
    return 0;
}

int dn_kad_find_peer(dn_kad *k, const dn_peerid *peer, dn_kad_peer_cb cb, void *arg)
{
    if (!cb)
        return DN_EINVAL;
    return find_peer(k, peer, cb, arg, NULL, NULL);
}

void dn__kad_router(void *arg, dn_host *h, const dn_peerid *peer, dn_peer_found_fn found, void *ctx)
{
    dn_kad *k = arg;
    int rc = find_peer(k, peer, NULL, NULL, found, ctx);
    if (rc)
        found(h, peer, rc, ctx);
}

int dn_kad_closest_peers(dn_kad *k, const uint8_t *key, size_t keylen, dn_kad_closest_cb cb,
                         void *arg)
{
    if (!k || !cb)
        return DN_EINVAL;
    int rc;
    kad_lookup *l = lk_new(k, LK_CLOSEST, key, keylen, &rc);
    if (!l)
        return rc;
    l->closest_cb = cb;
    l->arg = arg;
    lk_queue(l);
    return 0;
}

int dn_kad_bootstrap(dn_kad *k, dn_kad_done_cb cb, void *arg)
{
    if (!k)
        return DN_EINVAL;
    const dn_peerid *self = dn_host_peerid(k->h);
    int rc;
    kad_lookup *l = lk_new(k, LK_SELF, self->bytes, self->len, &rc);
    if (!l)
        return rc;
    l->done_cb = cb;
    l->arg = arg;
    lk_queue(l);
    return 0;
}

void dn__kad_refresh(dn_kad *k)
{
    unsigned cpls[DN_KAD_REFRESH_MAX_CPL + 1];
    size_t n = dn__kad_rt_need_refresh(&k->rt, dn__kad_unix_ms(), k->cfg.refresh_interval_ms, cpls,
                                       DN_KAD_REFRESH_MAX_CPL + 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t seed[32];
        randombytes_buf(seed, sizeof seed);
        dn_peerid id;
        if (dn__kad_peerid_for_cpl(&k->rt.self, cpls[i], seed, &id) != 0)
            continue;
        int rc;
        kad_lookup *l = lk_new(k, LK_SELF, id.bytes, id.len, &rc);
        if (l)
            lk_queue(l);
    }
    dn_kad_bootstrap(k, NULL, NULL);
}

int dn_kad_get(dn_kad *k, const uint8_t *key, size_t keylen, dn_kad_value_cb cb, void *arg)
{
    if (!k || !cb)
        return DN_EINVAL;
    int rc;
    kad_lookup *l = lk_new(k, LK_GET, key, keylen, &rc);
    if (!l)
        return rc;
    l->value_cb = cb;
    l->arg = arg;
    const dn__kad_rec *r = dn__kad_store_get(&k->store, key, keylen, dn__kad_unix_ms());
    if (r && (l->best = malloc(r->vlen ? r->vlen : 1))) {
        memcpy(l->best, r->value, r->vlen);
        l->bestlen = r->vlen;
        l->best_seq = r->seq;
        l->have_best = true;
    }
    lk_queue(l);
    return 0;
}

static void save_local(dn_kad *k, const uint8_t *key, size_t keylen, const uint8_t *value,
                       size_t vlen, uint64_t now)
{
    if (k->cfg.persist.save_record)
        k->cfg.persist.save_record(k->cfg.persist.arg, key, keylen, value, vlen, now);
}

int dn_kad_put(dn_kad *k, const uint8_t *key, size_t keylen, const uint8_t *value, size_t vlen,
               dn_kad_put_cb cb, void *arg)
{
    if (!k || (!value && vlen))
        return DN_EINVAL;
    if (k->freed)
        return DN_ECLOSED;
    uint64_t now = dn__kad_unix_ms();
    /* Valid and not older than ours, or nobody else gets it either. */
    int rc = dn__kad_store_put(&k->store, key, keylen, value, vlen, NULL, now, now);
    if (rc < 0)
        return rc;
    if (rc == DN_KAD_PUT_STORED)
        save_local(k, key, keylen, value, vlen, now);
    kad_lookup *l = lk_new(k, LK_PUT, key, keylen, &rc);
    if (!l)
        return rc;
    if (!(l->value = malloc(vlen ? vlen : 1))) {
        lk_free(l);
        return DN_ENOMEM;
    }
    memcpy(l->value, value, vlen);
    l->vlen = vlen;
    l->put_cb = cb;
    l->arg = arg;
    lk_queue(l);
    return 0;
}

int dn_kad_put_signed(dn_kad *k, const char *name, const uint8_t *value, size_t vlen,
                      dn_kad_put_cb cb, void *arg)
{
    if (!k || !name || !*name || strlen(name) > DN_KAD_NAME_MAX || (!value && vlen))
        return DN_EINVAL;
    char id[128];
    if (dn_peerid_to_string(dn_host_peerid(k->h), id, sizeof id) < 0)
        return DN_EINVAL;
    dn_buf key = DN_BUF_INIT, env = DN_BUF_INIT;
    int rc = dn_buf_append(&key, DN_KAD_NS_DMSNET, strlen(DN_KAD_NS_DMSNET));
    if (!rc)
        rc = dn_buf_append(&key, id, strlen(id));
    if (!rc)
        rc = dn_buf_append_byte(&key, '/');
    if (!rc)
        rc = dn_buf_append(&key, name, strlen(name));
    /* Newer than anything we put before, across restarts too (the clock),
     * and than what we hold. */
    uint64_t seq = dn__kad_unix_ms();
    if (seq <= k->last_seq)
        seq = k->last_seq + 1;
    const dn__kad_rec *held =
        rc ? NULL : dn__kad_store_get(&k->store, key.data, key.len, dn__kad_unix_ms());
    if (held && held->seq >= seq)
        seq = held->seq + 1;
    k->last_seq = seq;
    if (!rc)
        rc = dn__kad_record_seal(dn_host_identity(k->h), key.data, key.len, seq, value, vlen, &env);
    if (!rc)
        rc = dn_kad_put(k, key.data, key.len, env.data, env.len, cb, arg);
    dn_buf_free(&key);
    dn_buf_free(&env);
    return rc;
}

int dn_kad_provide(dn_kad *k, const uint8_t *key, size_t keylen, dn_kad_put_cb cb, void *arg)
{
    if (!k)
        return DN_EINVAL;
    int rc;
    kad_lookup *l = lk_new(k, LK_PROVIDE, key, keylen, &rc);
    if (!l)
        return rc;
    uint64_t now = dn__kad_unix_ms(), exp = now + k->cfg.provider_ttl_ms;
    rc = dn__kad_prov_add(&k->store, key, keylen, dn_host_peerid(k->h), exp, now);
    if (rc < 0) {
        lk_free(l);
        return rc;
    }
    if (k->cfg.persist.save_provider)
        k->cfg.persist.save_provider(k->cfg.persist.arg, key, keylen, dn_host_peerid(k->h), exp);
    l->put_cb = cb;
    l->arg = arg;
    lk_queue(l);
    return 0;
}

int dn_kad_find_providers(dn_kad *k, const uint8_t *key, size_t keylen, size_t max,
                          dn_kad_provider_cb cb, void *arg)
{
    if (!k || !cb)
        return DN_EINVAL;
    if (max == 0)
        max = DN_KAD_K;
    if (max > 1024)
        max = 1024;
    int rc;
    kad_lookup *l = lk_new(k, LK_PROVIDERS, key, keylen, &rc);
    if (!l)
        return rc;
    if (!(l->provs = calloc(max, sizeof *l->provs))) {
        lk_free(l);
        return DN_ENOMEM;
    }
    l->maxprovs = max;
    l->prov_cb = cb;
    l->arg = arg;
    lk_queue(l);
    return 0;
}
