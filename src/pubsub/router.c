/* gossipsub router core: see router.h for what it does and what is missing. */
#include "pubsub/router.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

/* ---- a hash map from byte strings (message ids, peer ids) ----
 * Chained, SipHash with a per-router random key (peers choose the ids, so
 * the hash must not be predictable), with an insertion-order list so that
 * expiry by age pops from the front. */
typedef struct ent {
    struct ent *next;  /* bucket chain */
    struct ent *qnext; /* insertion order */
    uint64_t hash;
    uint64_t t; /* time inserted or deadline */
    uint64_t a; /* user value */
    void *ptr;  /* user value */
    size_t len;
    uint8_t key[];
} ent;

typedef struct idmap {
    ent **b;
    size_t nb, n;
    ent *qhead, *qtail;
    const uint8_t *hkey;
} idmap;

static uint64_t hbytes(const idmap *m, const uint8_t *k, size_t len)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, k, len, m->hkey);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

static ent *map_get(const idmap *m, const uint8_t *k, size_t len)
{
    if (!m->nb)
        return NULL;
    uint64_t h = hbytes(m, k, len);
    for (ent *e = m->b[h & (m->nb - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && !memcmp(e->key, k, len))
            return e;
    return NULL;
}

static int map_grow(idmap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64;
    ent **b = calloc(nb, sizeof *b);
    if (!b)
        return DN_ENOMEM;
    for (size_t i = 0; i < m->nb; i++)
        for (ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

/* Insert a new key (caller checked absence); appended to the age list. */
static ent *map_put(idmap *m, const uint8_t *k, size_t len, uint64_t t)
{
    if (m->n >= m->nb && map_grow(m))
        return NULL;
    ent *e = calloc(1, sizeof *e + len);
    if (!e)
        return NULL;
    memcpy(e->key, k, len);
    e->len = len;
    e->hash = hbytes(m, k, len);
    e->t = t;
    e->next = m->b[e->hash & (m->nb - 1)];
    m->b[e->hash & (m->nb - 1)] = e;
    if (m->qtail)
        m->qtail->qnext = e;
    else
        m->qhead = e;
    m->qtail = e;
    m->n++;
    return e;
}

/* Unlink from the bucket only (the age list is fixed by the callers). */
static void map_unlink(idmap *m, ent *e)
{
    ent **pp = &m->b[e->hash & (m->nb - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    m->n--;
}

/* Remove e anywhere (walks the age list: used for rare deletions). */
static void map_del(idmap *m, ent *e)
{
    map_unlink(m, e);
    ent **pp = &m->qhead, *prev = NULL;
    while (*pp != e) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    *pp = e->qnext;
    if (m->qtail == e)
        m->qtail = prev;
    free(e);
}

/* Pop entries from the front of the age list while t + ttl <= now. */
static void map_expire(idmap *m, uint64_t now, uint64_t ttl, void (*fn)(void *, ent *), void *ud)
{
    while (m->qhead && m->qhead->t + ttl <= now) {
        ent *e = m->qhead;
        m->qhead = e->qnext;
        if (!m->qhead)
            m->qtail = NULL;
        map_unlink(m, e);
        if (fn)
            fn(ud, e);
        free(e);
    }
}

static void map_free(idmap *m)
{
    for (ent *e = m->qhead, *nx; e; e = nx) {
        nx = e->qnext;
        free(e);
    }
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* ---- router state ---- */

typedef struct topic topic;
typedef struct peer peer;

typedef struct plist {
    peer **v;
    size_t n, cap;
} plist;

struct topic {
    char *name;
    size_t len;
    bool subscribed;
    bool has_fanout;
    uint64_t last_pub;
    plist mesh, fanout;
    size_t nsubpeers; /* peers subscribed (keeps the entry alive) */
    size_t ncached;   /* mcache entries naming it (idem) */
    size_t nstats;    /* peers' score counters for it (idem) */
};

typedef struct backoff {
    topic *t;
    uint64_t until;
} backoff;

/* Per peer and topic score counters (v1.1 "Topic Parameter Calculation"). */
typedef struct tstat {
    topic *t;
    uint64_t mesh_since; /* when it last joined our mesh of t */
    double first_del;    /* P2 counter */
    double invalid;      /* P4 counter */
} tstat;

typedef struct retx {
    uint64_t serial;
    int count;
} retx;

struct peer {
    dn_peerid id;
    uint64_t serial;
    dn__pubsub_proto proto;
    bool outbound;
    topic **topics;
    size_t ntopics, ctopics;
    backoff *bo;
    size_t nbo, cbo;
    idmap dontwant;
    int ihave_in, idontwant_in; /* this heartbeat */
    int iwant_asked;            /* ids we asked for this heartbeat */
    tstat *ts;
    size_t nts, cts;
    double p7;
    uint8_t ip[16]; /* P6: the address the host saw (4 or 16 bytes) */
    uint8_t iplen;
    size_t ip_peers; /* peers on that address, this one included */
    /* pending output, flushed into one frame at the end of each call */
    dn_buf subs, msgs, ctrl;
};

typedef struct mentry { /* mcache entry; the idmap entry's ptr */
    dn_buf raw;
    topic *t;
    retx *rx;
    size_t nrx;
} mentry;

typedef struct window {
    ent **v; /* idmap entries of mcache */
    size_t n, cap;
} window;

struct dn__pubsub_router {
    dn__pubsub_params p;
    const dn_privkey *key;
    dn_peerid self;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    uint64_t rng;
    uint64_t seqno;
    uint64_t next_serial;
    uint64_t now; /* of the call in progress: scores read it (P1) */
    dn__pubsub_validate_fn validate;
    void *validate_ud;
    dn__pubsub_record_fn record;
    void *record_ud;
    dn__pubsub_app_score_fn app_score;
    void *app_score_ud;

    peer **peers;
    size_t npeers, cpeers;
    idmap peer_by_id; /* ptr: peer */
    topic **topics;
    size_t ntopics, ctopics;

    idmap seen;     /* t: time seen */
    idmap mcache;   /* ptr: mentry */
    window *win;    /* history_length windows, [0] newest */
    idmap promises; /* t: deadline, a: peer serial */

    dn_buf scratch, scratch2;

    dn__pubsub_send *sends;
    size_t nsends, csends;
    dn__pubsub_delivery *dlv;
    size_t ndlv, cdlv;
    dn__pubsub_pxpeer *px;
    size_t npx, cpx;
    dn__pubsub_stats st;
};

void dn__pubsub_params_default(dn__pubsub_params *p)
{
    memset(p, 0, sizeof *p);
    p->d = 6;
    p->d_lo = 4;
    p->d_hi = 12;
    p->d_score = 4;
    p->d_out = 2;
    p->d_lazy = 6;
    p->gossip_factor = 0.25;
    p->history_length = 5;
    p->history_gossip = 3;
    p->fanout_ttl_ms = 60000;
    p->seen_ttl_ms = 120000;
    p->prune_backoff_ms = 60000;
    p->unsubscribe_backoff_ms = 10000;
    p->graft_flood_ms = 10000;
    p->iwant_followup_ms = 3000;
    p->heartbeat_ms = 1000;
    p->gossip_retransmission = 3;
    p->max_ihave_length = 5000;
    p->max_ihave_messages = 10;
    p->max_idontwant = 512;
    p->idontwant_min_size = 512;
    p->prune_peers = 16;
    p->max_topics_per_peer = 1024;
    p->max_seen = 262144; /* js's 5000 ids per 3 s window, 120 s, with room */
    p->flood_publish = true;
    p->msgid_mode = DN_PUBSUB_MSGID_JS;
    /* One invalid message takes a peer below 0 (pruned at the next
     * heartbeat, not grafted); three put it under the graylist threshold.
     * Counters decay by 10% a heartbeat. */
    p->topic_weight = 1;
    p->p1_weight = 0.01; /* +3 after 5 minutes in the mesh */
    p->p1_quantum_ms = 1000;
    p->p1_cap = 300;
    p->p2_weight = 0.5; /* +10 at most: a good record does not hide much */
    p->p2_decay = 0.9;
    p->p2_cap = 20;
    p->p5_weight = 1;
    p->p6_weight = -10;
    p->p6_threshold = 10; /* go's and js's IPColocationFactorThreshold */
    p->p4_weight = -10;
    p->p4_decay = 0.9;
    p->p7_weight = -10;
    p->p7_threshold = 1;
    p->p7_decay = 0.99;
    p->decay_to_zero = 0.01;
    p->gossip_threshold = -10;
    p->publish_threshold = -50;
    p->graylist_threshold = -80;
    p->accept_px_threshold = 0;
}

static uint64_t rnd(dn__pubsub_router *r)
{
    /* xorshift64*: cheap and reproducible under a fixed seed (tests). */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 0x2545F4914F6CDD1DULL;
}

static void shuffle(dn__pubsub_router *r, void **v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd(r) % i);
        void *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int pl_add(plist *l, peer *p)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        peer **v = realloc(l->v, nc * sizeof *v);
        if (!v)
            return DN_ENOMEM;
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = p;
    return 0;
}

static bool pl_has(const plist *l, const peer *p)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == p)
            return true;
    return false;
}

static bool pl_del(plist *l, const peer *p)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == p) {
            l->v[i] = l->v[--l->n];
            return true;
        }
    return false;
}

static double score_of(const dn__pubsub_router *r, const peer *p)
{
    /* v1.1 "The Score Function": the topic terms (P1, P2, P4) weighted by
     * the topic weight, then P5, P6, P7. P3/P3b are not there yet. */
    double s = 0;
    for (size_t i = 0; i < p->nts; i++) {
        const tstat *x = &p->ts[i];
        double ts = r->p.p4_weight * x->invalid * x->invalid;
        ts += r->p.p2_weight * x->first_del;
        if (pl_has(&x->t->mesh, p) && r->now > x->mesh_since && r->p.p1_quantum_ms) {
            double q = (double)(r->now - x->mesh_since) / (double)r->p.p1_quantum_ms;
            ts += r->p.p1_weight * (q < r->p.p1_cap ? q : r->p.p1_cap);
        }
        s += r->p.topic_weight * ts;
    }
    if (r->app_score)
        s += r->p.p5_weight * r->app_score(r->app_score_ud, &p->id);
    if (p->ip_peers > r->p.p6_threshold) {
        double e = (double)(p->ip_peers - r->p.p6_threshold);
        s += r->p.p6_weight * e * e;
    }
    double over = p->p7 - r->p.p7_threshold;
    if (over > 0)
        s += r->p.p7_weight * over * over;
    return s;
}

static tstat *tstat_get(peer *p, topic *t)
{
    for (size_t i = 0; i < p->nts; i++)
        if (p->ts[i].t == t)
            return &p->ts[i];
    if (p->nts == p->cts) {
        size_t nc = p->cts ? p->cts * 2 : 4;
        tstat *v = realloc(p->ts, nc * sizeof *v);
        if (!v)
            return NULL;
        p->ts = v;
        p->cts = nc;
    }
    t->nstats++;
    p->ts[p->nts] = (tstat){.t = t};
    return &p->ts[p->nts++];
}

static void credit_invalid(peer *p, topic *t)
{
    tstat *x = tstat_get(p, t);
    if (x)
        x->invalid += 1;
}

/* A peer joins our mesh of t: P1 counts from now. */
static int mesh_add(dn__pubsub_router *r, topic *t, peer *p)
{
    tstat *x = tstat_get(p, t);
    if (x)
        x->mesh_since = r->now;
    return pl_add(&t->mesh, p);
}

static bool is_mesh_proto(const peer *p)
{
    return p->proto != DN_PUBSUB_FLOODSUB;
}

static topic *topic_find(const dn__pubsub_router *r, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < r->ntopics; i++)
        if (r->topics[i]->len == len && !memcmp(r->topics[i]->name, name, len))
            return r->topics[i];
    return NULL;
}

static topic *topic_get(dn__pubsub_router *r, const uint8_t *name, size_t len)
{
    topic *t = topic_find(r, name, len);
    if (t)
        return t;
    if (r->ntopics == r->ctopics) {
        size_t nc = r->ctopics ? r->ctopics * 2 : 8;
        topic **v = realloc(r->topics, nc * sizeof *v);
        if (!v)
            return NULL;
        r->topics = v;
        r->ctopics = nc;
    }
    t = calloc(1, sizeof *t);
    if (!t || !(t->name = malloc(len + 1))) {
        free(t);
        return NULL;
    }
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    t->len = len;
    r->topics[r->ntopics++] = t;
    return t;
}

/* Drop a topic entry nobody uses any more (bounds memory to live topics). */
static void topic_gc(dn__pubsub_router *r, topic *t)
{
    if (t->subscribed || t->has_fanout || t->nsubpeers || t->mesh.n || t->ncached || t->nstats)
        return;
    for (size_t i = 0; i < r->npeers; i++)
        for (size_t j = 0; j < r->peers[i]->nbo; j++)
            if (r->peers[i]->bo[j].t == t)
                return;
    for (size_t i = 0; i < r->ntopics; i++)
        if (r->topics[i] == t) {
            r->topics[i] = r->topics[--r->ntopics];
            break;
        }
    free(t->mesh.v);
    free(t->fanout.v);
    free(t->name);
    free(t);
}

static bool peer_has_topic(const peer *p, const topic *t)
{
    for (size_t i = 0; i < p->ntopics; i++)
        if (p->topics[i] == t)
            return true;
    return false;
}

static peer *peer_find(const dn__pubsub_router *r, const dn_peerid *id)
{
    ent *e = map_get(&r->peer_by_id, id->bytes, id->len);
    return e ? e->ptr : NULL;
}

static backoff *backoff_find(peer *p, const topic *t)
{
    for (size_t i = 0; i < p->nbo; i++)
        if (p->bo[i].t == t)
            return &p->bo[i];
    return NULL;
}

static bool in_backoff(peer *p, const topic *t, uint64_t now)
{
    backoff *b = backoff_find(p, t);
    return b && b->until > now;
}

static void set_backoff(peer *p, topic *t, uint64_t until)
{
    backoff *b = backoff_find(p, t);
    if (b) {
        if (b->until < until)
            b->until = until;
        return;
    }
    if (p->nbo == p->cbo) {
        size_t nc = p->cbo ? p->cbo * 2 : 4;
        backoff *v = realloc(p->bo, nc * sizeof *v);
        if (!v)
            return; /* best effort: without memory we only regraft earlier */
        p->bo = v;
        p->cbo = nc;
    }
    p->bo[p->nbo++] = (backoff){t, until};
}

/* ---- pending output ---- */

static void flush_peer(dn__pubsub_router *r, peer *p)
{
    if (!p->subs.len && !p->msgs.len && !p->ctrl.len)
        return;
    if (r->nsends == r->csends) {
        size_t nc = r->csends ? r->csends * 2 : 16;
        dn__pubsub_send *v = realloc(r->sends, nc * sizeof *v);
        if (!v)
            goto drop;
        r->sends = v;
        r->csends = nc;
    }
    dn__pubsub_send *s = &r->sends[r->nsends];
    s->to = p->id;
    dn_buf_init(&s->frame);
    size_t body = p->subs.len + p->msgs.len;
    if (p->ctrl.len)
        body += 1 + dn_uvarint_len(p->ctrl.len) + p->ctrl.len;
    int rc = dn_buf_reserve(&s->frame, body + 10);
    if (!rc)
        rc = dn_buf_append_uvarint(&s->frame, body);
    if (!rc)
        rc = dn_buf_append(&s->frame, p->subs.data, p->subs.len);
    if (!rc)
        rc = dn_buf_append(&s->frame, p->msgs.data, p->msgs.len);
    if (!rc && p->ctrl.len)
        rc = dn_pb_put_bytes(&s->frame, 3, p->ctrl.data, p->ctrl.len);
    if (rc)
        dn_buf_free(&s->frame);
    else
        r->nsends++;
drop:
    dn_buf_reset(&p->subs);
    dn_buf_reset(&p->msgs);
    dn_buf_reset(&p->ctrl);
}

static void flush_all(dn__pubsub_router *r)
{
    for (size_t i = 0; i < r->npeers; i++)
        flush_peer(r, r->peers[i]);
}

/* Keep one frame under the RPC bound: flush first when `more` bytes would
 * not fit. */
static void make_room(dn__pubsub_router *r, peer *p, size_t more)
{
    size_t have = p->subs.len + p->msgs.len + p->ctrl.len + 16;
    if (have + more + 16 > DN_PUBSUB_RPC_MAX)
        flush_peer(r, p);
}

static void q_sub(dn__pubsub_router *r, peer *p, const topic *t, bool on)
{
    dn_buf *s = &r->scratch;
    dn_buf_reset(s);
    make_room(r, p, t->len + 16);
    if (!dn_pb_put_varint(s, 1, on) && !dn_pb_put_bytes(s, 2, t->name, t->len))
        dn_pb_put_bytes(&p->subs, 1, s->data, s->len);
}

static void q_msg(dn__pubsub_router *r, peer *p, const uint8_t *raw, size_t len)
{
    make_room(r, p, len + 8);
    dn_pb_put_bytes(&p->msgs, 2, raw, len);
}

static void q_graft(dn__pubsub_router *r, peer *p, const topic *t)
{
    dn_buf *s = &r->scratch;
    dn_buf_reset(s);
    if (!dn_pb_put_bytes(s, 1, t->name, t->len))
        dn_pb_put_bytes(&p->ctrl, 3, s->data, s->len);
}

static void q_prune(dn__pubsub_router *r, peer *p, topic *t, uint64_t backoff_ms, bool px)
{
    dn_buf *s = &r->scratch, *s2 = &r->scratch2;
    dn_buf_reset(s);
    if (dn_pb_put_bytes(s, 1, t->name, t->len))
        return;
    /* v1.1 "Peer Exchange": only to peers that understand it, and only
     * when they are well behaved (we do not help bad peers find others). */
    if (px && p->proto >= DN_PUBSUB_MESHSUB_11 && score_of(r, p) >= 0) {
        peer *cand[64];
        size_t nc = 0;
        for (size_t i = 0; i < r->npeers && nc < 64; i++) {
            peer *q = r->peers[i];
            if (q != p && peer_has_topic(q, t) && score_of(r, q) >= 0)
                cand[nc++] = q;
        }
        shuffle(r, (void **)cand, nc);
        for (size_t i = 0; i < nc && (int)i < r->p.prune_peers; i++) {
            dn_buf_reset(s2);
            const uint8_t *rec = NULL;
            size_t rl = 0;
            if (r->record)
                r->record(r->record_ud, &cand[i]->id, &rec, &rl);
            dn_pb_put_bytes(s2, 1, cand[i]->id.bytes, cand[i]->id.len);
            if (rec && rl && rl <= 8192)
                dn_pb_put_bytes(s2, 2, rec, rl);
            dn_pb_put_bytes(s, 2, s2->data, s2->len);
        }
    }
    if (p->proto >= DN_PUBSUB_MESHSUB_11)
        dn_pb_put_varint(s, 3, backoff_ms / 1000);
    make_room(r, p, s->len + 8);
    dn_pb_put_bytes(&p->ctrl, 4, s->data, s->len);
}

/* IHAVE / IWANT / IDONTWANT: a nested message of ids (and a topic). */
static void q_ids(dn__pubsub_router *r, peer *p, uint32_t field, const topic *t, ent *const *ids,
                  size_t n)
{
    dn_buf *s = &r->scratch;
    dn_buf_reset(s);
    uint32_t idf = 1;
    if (t) {
        dn_pb_put_bytes(s, 1, t->name, t->len);
        idf = 2;
    }
    for (size_t i = 0; i < n; i++)
        dn_pb_put_bytes(s, idf, ids[i]->key, ids[i]->len);
    make_room(r, p, s->len + 8);
    dn_pb_put_bytes(&p->ctrl, field, s->data, s->len);
}

static void q_id_spans(dn__pubsub_router *r, peer *p, uint32_t field, const dn__ps_span *ids,
                       size_t n)
{
    dn_buf *s = &r->scratch;
    dn_buf_reset(s);
    for (size_t i = 0; i < n; i++)
        dn_pb_put_bytes(s, 1, ids[i].p, ids[i].len);
    make_room(r, p, s->len + 8);
    dn_pb_put_bytes(&p->ctrl, field, s->data, s->len);
}

/* ---- lifecycle ---- */

int dn__pubsub_router_new(const dn__pubsub_params *p, const dn_privkey *key, uint64_t seed,
                          dn__pubsub_router **out)
{
    *out = NULL;
    if (!key || sodium_init() < 0)
        return key ? DN_ECRYPTO : DN_EINVAL;
    dn__pubsub_router *r = calloc(1, sizeof *r);
    if (!r)
        return DN_ENOMEM;
    if (p)
        r->p = *p;
    else
        dn__pubsub_params_default(&r->p);
    if (r->p.history_length < 1 || r->p.history_gossip > r->p.history_length ||
        r->p.d_lo > r->p.d || r->p.d > r->p.d_hi || r->p.d_lo < 0 || r->p.d_out < 0 ||
        r->p.d_out > r->p.d / 2 || r->p.d_score < 0 || r->p.max_seen == 0) {
        free(r);
        return DN_EINVAL;
    }
    r->key = key;
    int rc = dn_peerid_from_pubkey(dn_privkey_public(key), &r->self);
    r->win = calloc((size_t)r->p.history_length, sizeof *r->win);
    if (rc || !r->win) {
        free(r->win);
        free(r);
        return rc ? rc : DN_ENOMEM;
    }
    randombytes_buf(r->hkey, sizeof r->hkey);
    if (!seed)
        randombytes_buf(&seed, sizeof seed);
    r->rng = seed | 1;
    /* js and go seed the counter from the clock in ns so that a restarted
     * node's seqnos keep growing (kubo drops non-increasing ones). */
    randombytes_buf(&r->seqno, sizeof r->seqno);
    r->seqno = (r->seqno >> 2) | 1;
    r->seen.hkey = r->mcache.hkey = r->promises.hkey = r->peer_by_id.hkey = r->hkey;
    *out = r;
    return 0;
}

void dn__pubsub_router_set_validator(dn__pubsub_router *r, dn__pubsub_validate_fn fn, void *ud)
{
    r->validate = fn;
    r->validate_ud = ud;
}

void dn__pubsub_router_set_record_source(dn__pubsub_router *r, dn__pubsub_record_fn fn, void *ud)
{
    r->record = fn;
    r->record_ud = ud;
}

void dn__pubsub_router_set_app_score(dn__pubsub_router *r, dn__pubsub_app_score_fn fn, void *ud)
{
    r->app_score = fn;
    r->app_score_ud = ud;
}

/* Recount the peers on one address (P6). */
static void recount_ip(dn__pubsub_router *r, const uint8_t *ip, uint8_t len)
{
    if (!len)
        return;
    size_t n = 0;
    for (size_t i = 0; i < r->npeers; i++)
        n += r->peers[i]->iplen == len && !memcmp(r->peers[i]->ip, ip, len);
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i]->iplen == len && !memcmp(r->peers[i]->ip, ip, len))
            r->peers[i]->ip_peers = n;
}

static bool loopback(const uint8_t *ip, size_t len)
{
    static const uint8_t v6[16] = {[15] = 1};
    return (len == 4 && ip[0] == 127) || (len == 16 && !memcmp(ip, v6, 16));
}

int dn__pubsub_set_peer_ip(dn__pubsub_router *r, const dn_peerid *id, const uint8_t *ip, size_t len)
{
    peer *p = peer_find(r, id);
    if (!p)
        return DN_ENOTFOUND;
    if (len != 0 && len != 4 && len != 16)
        return DN_EINVAL;
    uint8_t old[16];
    uint8_t oldlen = p->iplen;
    memcpy(old, p->ip, sizeof old);
    /* Loopback peers are not colocated in any sense that matters (local
     * tests put every peer there; js would penalise them all). */
    p->iplen = loopback(ip, len) ? 0 : (uint8_t)len;
    if (p->iplen)
        memcpy(p->ip, ip, len);
    p->ip_peers = 0;
    recount_ip(r, old, oldlen);
    recount_ip(r, p->ip, p->iplen);
    return 0;
}

const dn_peerid *dn__pubsub_router_self(const dn__pubsub_router *r)
{
    return &r->self;
}

static void mentry_free(void *ud, ent *e)
{
    mentry *m = e->ptr;
    if (m) {
        m->t->ncached--;
        dn_buf_free(&m->raw);
        free(m->rx);
        free(m);
    }
}

static void peer_free(peer *p)
{
    for (size_t i = 0; i < p->nts; i++)
        p->ts[i].t->nstats--;
    free(p->ts);
    free(p->topics);
    free(p->bo);
    map_free(&p->dontwant);
    dn_buf_free(&p->subs);
    dn_buf_free(&p->msgs);
    dn_buf_free(&p->ctrl);
    free(p);
}

void dn__pubsub_clear_outputs(dn__pubsub_router *r)
{
    for (size_t i = 0; i < r->nsends; i++)
        dn_buf_free(&r->sends[i].frame);
    for (size_t i = 0; i < r->ndlv; i++)
        dn_buf_free(&r->dlv[i].raw);
    for (size_t i = 0; i < r->npx; i++)
        dn_buf_free(&r->px[i].signed_record);
    r->nsends = r->ndlv = r->npx = 0;
}

void dn__pubsub_router_free(dn__pubsub_router *r)
{
    if (!r)
        return;
    dn__pubsub_clear_outputs(r);
    free(r->sends);
    free(r->dlv);
    free(r->px);
    /* mcache entries name their topic: free them first */
    for (ent *e = r->mcache.qhead; e; e = e->qnext)
        mentry_free(NULL, e);
    map_free(&r->mcache);
    for (size_t i = 0; i < r->npeers; i++)
        peer_free(r->peers[i]);
    free(r->peers);
    map_free(&r->peer_by_id);
    for (size_t i = 0; i < r->ntopics; i++) {
        free(r->topics[i]->mesh.v);
        free(r->topics[i]->fanout.v);
        free(r->topics[i]->name);
        free(r->topics[i]);
    }
    free(r->topics);
    for (int i = 0; i < r->p.history_length; i++)
        free(r->win[i].v);
    free(r->win);
    map_free(&r->seen);
    map_free(&r->promises);
    dn_buf_free(&r->scratch);
    dn_buf_free(&r->scratch2);
    free(r);
}

int dn__pubsub_add_peer(dn__pubsub_router *r, const dn_peerid *id, dn__pubsub_proto proto,
                        bool outbound, uint64_t now_ms)
{
    r->now = now_ms;
    if (!id || id->len == 0 || proto > DN_PUBSUB_MESHSUB_12)
        return DN_EINVAL;
    if (peer_find(r, id))
        return DN_EEXIST;
    if (r->npeers == r->cpeers) {
        size_t nc = r->cpeers ? r->cpeers * 2 : 16;
        peer **v = realloc(r->peers, nc * sizeof *v);
        if (!v)
            return DN_ENOMEM;
        r->peers = v;
        r->cpeers = nc;
    }
    peer *p = calloc(1, sizeof *p);
    if (!p)
        return DN_ENOMEM;
    p->id = *id;
    p->proto = proto;
    p->outbound = outbound;
    p->serial = ++r->next_serial;
    p->dontwant.hkey = r->hkey;
    ent *e = map_put(&r->peer_by_id, id->bytes, id->len, now_ms);
    if (!e) {
        free(p);
        return DN_ENOMEM;
    }
    e->ptr = p;
    r->peers[r->npeers++] = p;
    /* pubsub/README.md: on a new stream, send our subscriptions. */
    for (size_t i = 0; i < r->ntopics; i++)
        if (r->topics[i]->subscribed)
            q_sub(r, p, r->topics[i], true);
    flush_all(r);
    return 0;
}

static void peer_drop_topic(dn__pubsub_router *r, peer *p, topic *t)
{
    for (size_t i = 0; i < p->ntopics; i++)
        if (p->topics[i] == t) {
            p->topics[i] = p->topics[--p->ntopics];
            t->nsubpeers--;
            break;
        }
    pl_del(&t->mesh, p);
    pl_del(&t->fanout, p);
}

int dn__pubsub_remove_peer(dn__pubsub_router *r, const dn_peerid *id, uint64_t now_ms)
{
    r->now = now_ms;
    peer *p = peer_find(r, id);
    if (!p)
        return DN_ENOTFOUND;
    while (p->ntopics)
        peer_drop_topic(r, p, p->topics[0]);
    for (size_t i = 0; i < r->ntopics; i++) {
        pl_del(&r->topics[i]->mesh, p);
        pl_del(&r->topics[i]->fanout, p);
    }
    map_del(&r->peer_by_id, map_get(&r->peer_by_id, id->bytes, id->len));
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i] == p) {
            r->peers[i] = r->peers[--r->npeers];
            break;
        }
    recount_ip(r, p->ip, p->iplen);
    peer_free(p);
    for (size_t i = r->ntopics; i-- > 0;)
        topic_gc(r, r->topics[i]);
    return 0;
}

int dn__pubsub_set_peer_proto(dn__pubsub_router *r, const dn_peerid *id, dn__pubsub_proto proto)
{
    peer *p = peer_find(r, id);
    if (!p)
        return DN_ENOTFOUND;
    if (proto > DN_PUBSUB_MESHSUB_12)
        return DN_EINVAL;
    /* A floodsub peer has no mesh: take it out of ours. */
    if (proto == DN_PUBSUB_FLOODSUB)
        for (size_t i = 0; i < r->ntopics; i++)
            pl_del(&r->topics[i]->mesh, p);
    p->proto = proto;
    return 0;
}

int dn__pubsub_peer_reannounce(dn__pubsub_router *r, const dn_peerid *id, uint64_t now_ms)
{
    r->now = now_ms;
    peer *p = peer_find(r, id);
    if (!p)
        return DN_ENOTFOUND;
    for (size_t i = 0; i < r->ntopics; i++) {
        topic *t = r->topics[i];
        if (t->subscribed)
            q_sub(r, p, t, true);
        if (t->subscribed && is_mesh_proto(p) && pl_has(&t->mesh, p))
            q_graft(r, p, t);
    }
    flush_all(r);
    return 0;
}

size_t dn__pubsub_peer_ntopics(const dn__pubsub_router *r, const dn_peerid *id)
{
    peer *p = peer_find(r, id);
    return p ? p->ntopics : 0;
}

/* ---- local subscriptions and publishing ---- */

static int topic_arg(const char *name, size_t *len)
{
    if (!name)
        return DN_EINVAL;
    *len = strnlen(name, DN_PUBSUB_TOPIC_MAX + 1);
    return *len == 0 || *len > DN_PUBSUB_TOPIC_MAX ? DN_EINVAL : 0;
}

/* Candidates for the mesh of t: subscribed meshsub peers, not in the mesh,
 * not backing off, with a score of at least 0 (v1.1 heartbeat). */
static size_t graft_candidates(dn__pubsub_router *r, topic *t, uint64_t now, peer **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->npeers && n < max; i++) {
        peer *q = r->peers[i];
        if (is_mesh_proto(q) && peer_has_topic(q, t) && !pl_has(&t->mesh, q) &&
            !in_backoff(q, t, now) && score_of(r, q) >= 0)
            out[n++] = q;
    }
    return n;
}

int dn__pubsub_subscribe(dn__pubsub_router *r, const char *name, uint64_t now_ms)
{
    r->now = now_ms;
    size_t len;
    int rc = topic_arg(name, &len);
    if (rc)
        return rc;
    topic *t = topic_get(r, (const uint8_t *)name, len);
    if (!t)
        return DN_ENOMEM;
    if (t->subscribed)
        return 0;
    t->subscribed = true;
    for (size_t i = 0; i < r->npeers; i++)
        q_sub(r, r->peers[i], t, true);
    /* v1.0 "Router State": join from fanout peers first, then others. */
    for (size_t i = 0; i < t->fanout.n && (int)t->mesh.n < r->p.d; i++) {
        peer *q = t->fanout.v[i];
        if (is_mesh_proto(q) && !in_backoff(q, t, now_ms) && score_of(r, q) >= 0)
            mesh_add(r, t, q);
    }
    t->fanout.n = 0;
    t->has_fanout = false;
    peer **cand = malloc((r->npeers + 1) * sizeof *cand);
    if (cand) {
        size_t nc = graft_candidates(r, t, now_ms, cand, r->npeers);
        shuffle(r, (void **)cand, nc);
        for (size_t i = 0; i < nc && (int)t->mesh.n < r->p.d; i++)
            mesh_add(r, t, cand[i]);
        free(cand);
    }
    for (size_t i = 0; i < t->mesh.n; i++)
        q_graft(r, t->mesh.v[i], t);
    flush_all(r);
    return 0;
}

int dn__pubsub_unsubscribe(dn__pubsub_router *r, const char *name, uint64_t now_ms)
{
    r->now = now_ms;
    size_t len;
    int rc = topic_arg(name, &len);
    if (rc)
        return rc;
    topic *t = topic_find(r, (const uint8_t *)name, len);
    if (!t || !t->subscribed)
        return 0;
    t->subscribed = false;
    for (size_t i = 0; i < r->npeers; i++)
        q_sub(r, r->peers[i], t, false);
    for (size_t i = 0; i < t->mesh.n; i++) {
        q_prune(r, t->mesh.v[i], t, r->p.unsubscribe_backoff_ms, true);
        set_backoff(t->mesh.v[i], t, now_ms + r->p.unsubscribe_backoff_ms);
    }
    t->mesh.n = 0;
    flush_all(r);
    topic_gc(r, t);
    return 0;
}

bool dn__pubsub_subscribed(const dn__pubsub_router *r, const char *name)
{
    topic *t = topic_find(r, (const uint8_t *)name, strlen(name));
    return t && t->subscribed;
}

static void mcache_put(dn__pubsub_router *r, const uint8_t *id, size_t idlen, const uint8_t *raw,
                       size_t len, topic *t, uint64_t now)
{
    if (map_get(&r->mcache, id, idlen))
        return;
    window *w = &r->win[0];
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        ent **v = realloc(w->v, nc * sizeof *v);
        if (!v)
            return;
        w->v = v;
        w->cap = nc;
    }
    mentry *m = calloc(1, sizeof *m);
    if (!m)
        return;
    if (dn_buf_append(&m->raw, raw, len)) {
        free(m);
        return;
    }
    ent *e = map_put(&r->mcache, id, idlen, now);
    if (!e) {
        dn_buf_free(&m->raw);
        free(m);
        return;
    }
    m->t = t;
    t->ncached++;
    e->ptr = m;
    w->v[w->n++] = e;
}

static void mark_seen(dn__pubsub_router *r, const uint8_t *id, size_t idlen, uint64_t now)
{
    if (map_get(&r->seen, id, idlen))
        return;
    /* Anyone can make keys and sign valid messages: past the bound the
     * oldest ids go first (a duplicate of one may then be delivered again,
     * which the spec's time-based cache allows as well). */
    if (r->seen.n >= r->p.max_seen && r->seen.qhead) {
        ent *e = r->seen.qhead;
        r->seen.qhead = e->qnext;
        if (!r->seen.qhead)
            r->seen.qtail = NULL;
        map_unlink(&r->seen, e);
        free(e);
    }
    map_put(&r->seen, id, idlen, now);
}

int dn__pubsub_publish(dn__pubsub_router *r, const char *name, const uint8_t *data, size_t len,
                       uint64_t now_ms, uint8_t *idout, size_t *idlen_out)
{
    r->now = now_ms;
    size_t tlen;
    int rc = topic_arg(name, &tlen);
    if (rc)
        return rc;
    if (len > DN_PUBSUB_RPC_MAX - 4096)
        return DN_ETOOBIG;
    topic *t = topic_get(r, (const uint8_t *)name, tlen);
    if (!t)
        return DN_ENOMEM;
    dn_buf raw = DN_BUF_INIT;
    rc = dn__pubsub_message_sign(r->key, name, tlen, data, len, ++r->seqno, &raw);
    dn__pubsub_message m;
    uint8_t id[DN_PUBSUB_MSGID_MAX];
    int idlen = 0;
    if (!rc)
        rc = dn__pubsub_message_decode(raw.data, raw.len, &m);
    if (!rc)
        rc = idlen = dn__pubsub_msgid(&m, r->p.msgid_mode, id, sizeof id);
    if (rc < 0) {
        dn_buf_free(&raw);
        topic_gc(r, t);
        return rc;
    }
    mark_seen(r, id, (size_t)idlen, now_ms);
    mcache_put(r, id, (size_t)idlen, raw.data, raw.len, t, now_ms);
    int sent = 0;
    if (r->p.flood_publish) {
        /* v1.1 "Flood Publishing": our own messages go to every subscribed
         * peer above the publish threshold, not only the mesh. */
        for (size_t i = 0; i < r->npeers; i++) {
            peer *q = r->peers[i];
            if (peer_has_topic(q, t) && score_of(r, q) >= r->p.publish_threshold) {
                q_msg(r, q, raw.data, raw.len);
                sent++;
            }
        }
    } else {
        plist *l = t->subscribed ? &t->mesh : &t->fanout;
        if (!t->subscribed && !t->fanout.n) {
            peer **cand = malloc((r->npeers + 1) * sizeof *cand);
            size_t nc = 0;
            for (size_t i = 0; cand && i < r->npeers; i++)
                if (is_mesh_proto(r->peers[i]) && peer_has_topic(r->peers[i], t) &&
                    score_of(r, r->peers[i]) >= r->p.publish_threshold)
                    cand[nc++] = r->peers[i];
            shuffle(r, (void **)cand, nc);
            for (size_t i = 0; i < nc && (int)i < r->p.d; i++)
                pl_add(&t->fanout, cand[i]);
            free(cand);
        }
        for (size_t i = 0; i < l->n; i++, sent++)
            q_msg(r, l->v[i], raw.data, raw.len);
        for (size_t i = 0; i < r->npeers; i++)
            if (r->peers[i]->proto == DN_PUBSUB_FLOODSUB && peer_has_topic(r->peers[i], t)) {
                q_msg(r, r->peers[i], raw.data, raw.len);
                sent++;
            }
    }
    if (!t->subscribed) {
        t->has_fanout = true;
        t->last_pub = now_ms;
    }
    dn_buf_free(&raw);
    flush_all(r);
    if (idout && idlen_out && *idlen_out >= (size_t)idlen) {
        memcpy(idout, id, (size_t)idlen);
        *idlen_out = (size_t)idlen;
    }
    return sent;
}

/* ---- incoming ---- */

static void handle_subs(dn__pubsub_router *r, peer *p, const dn__pubsub_rpc *rpc)
{
    for (size_t i = 0; i < rpc->nsubs; i++) {
        const dn__pubsub_subopt *s = &rpc->subs[i];
        topic *t = s->subscribe ? topic_get(r, s->topic.p, s->topic.len)
                                : topic_find(r, s->topic.p, s->topic.len);
        if (!t)
            continue;
        if (s->subscribe) {
            if (peer_has_topic(p, t) || (int)p->ntopics >= r->p.max_topics_per_peer)
                continue;
            if (p->ntopics == p->ctopics) {
                size_t nc = p->ctopics ? p->ctopics * 2 : 4;
                topic **v = realloc(p->topics, nc * sizeof *v);
                if (!v)
                    continue;
                p->topics = v;
                p->ctopics = nc;
            }
            p->topics[p->ntopics++] = t;
            t->nsubpeers++;
        } else {
            peer_drop_topic(r, p, t);
            topic_gc(r, t);
        }
    }
}

static void add_delivery(dn__pubsub_router *r, const dn__pubsub_message *m, const uint8_t *id,
                         size_t idlen, const dn_peerid *author, const dn_peerid *via)
{
    if (r->ndlv == r->cdlv) {
        size_t nc = r->cdlv ? r->cdlv * 2 : 16;
        dn__pubsub_delivery *v = realloc(r->dlv, nc * sizeof *v);
        if (!v)
            return;
        r->dlv = v;
        r->cdlv = nc;
    }
    dn__pubsub_delivery *d = &r->dlv[r->ndlv];
    dn_buf_init(&d->raw);
    if (dn_buf_append(&d->raw, m->raw.p, m->raw.len) ||
        dn__pubsub_message_decode(d->raw.data, d->raw.len, &d->msg)) {
        dn_buf_free(&d->raw);
        return;
    }
    memcpy(d->id, id, idlen);
    d->idlen = idlen;
    d->author = *author;
    d->via = *via;
    r->ndlv++;
    r->st.msgs_delivered++;
}

static void handle_message(dn__pubsub_router *r, peer *p, const dn__pubsub_message *m, uint64_t now)
{
    r->st.msgs_in++;
    topic *t = topic_find(r, m->topic.p, m->topic.len);
    if (!t || !t->subscribed) {
        r->st.msgs_not_subscribed++;
        return;
    }
    uint8_t id[DN_PUBSUB_MSGID_MAX];
    int idlen = dn__pubsub_msgid(m, r->p.msgid_mode, id, sizeof id);
    if (idlen < 0) { /* StrictSign: from and an 8-byte seqno are required */
        r->st.msgs_invalid++;
        credit_invalid(p, t);
        return;
    }
    if (map_get(&r->seen, id, (size_t)idlen)) {
        r->st.msgs_dup++;
        return;
    }
    /* Verify before marking seen: an id is only the author's claim, and a
     * forged copy seen first must not shadow the real message. */
    dn_peerid author;
    if (dn__pubsub_message_verify(m, &author)) {
        r->st.msgs_invalid++;
        credit_invalid(p, t);
        return;
    }
    mark_seen(r, id, (size_t)idlen, now);
    ent *pr = map_get(&r->promises, id, (size_t)idlen);
    if (pr && pr->a) {
        r->st.msgs_via_iwant++;
        pr->a = 0; /* kept, fulfilled, until its deadline pops it */
    }
    /* v1.2: tell mesh peers at once that we have it (large messages). */
    if (m->data.len >= r->p.idontwant_min_size) {
        dn__ps_span sid = {id, (size_t)idlen};
        for (size_t i = 0; i < t->mesh.n; i++)
            if (t->mesh.v[i] != p && t->mesh.v[i]->proto >= DN_PUBSUB_MESHSUB_12) {
                q_id_spans(r, t->mesh.v[i], 5, &sid, 1);
                r->st.idontwant_sent++;
            }
    }
    dn__pubsub_verdict v =
        r->validate ? r->validate(r->validate_ud, m, &author, &p->id) : DN_PUBSUB_ACCEPT;
    if (v == DN_PUBSUB_REJECT) {
        r->st.msgs_rejected++;
        credit_invalid(p, t);
        return;
    }
    if (v != DN_PUBSUB_ACCEPT) {
        r->st.msgs_ignored++;
        return;
    }
    /* P2: first deliveries of valid messages, capped. */
    tstat *x = tstat_get(p, t);
    if (x && (x->first_del += 1) > r->p.p2_cap)
        x->first_del = r->p.p2_cap;
    mcache_put(r, id, (size_t)idlen, m->raw.p, m->raw.len, t, now);
    add_delivery(r, m, id, (size_t)idlen, &author, &p->id);
    for (size_t i = 0; i < r->npeers; i++) {
        peer *q = r->peers[i];
        if (q == p || dn_peerid_equal(&q->id, &author))
            continue;
        bool to = q->proto == DN_PUBSUB_FLOODSUB ? peer_has_topic(q, t) : pl_has(&t->mesh, q);
        if (!to)
            continue;
        if (map_get(&q->dontwant, id, (size_t)idlen)) {
            r->st.idontwant_skips++;
            continue;
        }
        q_msg(r, q, m->raw.p, m->raw.len);
    }
}

static void handle_ihave(dn__pubsub_router *r, peer *p, const dn__pubsub_rpc *rpc, uint64_t now)
{
    if (!rpc->nihave || score_of(r, p) < r->p.gossip_threshold)
        return;
    dn__ps_span want[256];
    size_t nw = 0;
    dn_buf *s = &r->scratch2;
    dn_buf_reset(s);
    for (size_t i = 0; i < rpc->nihave; i++) {
        /* v1.1 "Spam Protection": bounded IHAVEs and ids per heartbeat. */
        if (++p->ihave_in > r->p.max_ihave_messages)
            break;
        const dn__pubsub_ihave *ih = &rpc->ihave[i];
        topic *t = topic_find(r, ih->topic.p, ih->topic.len);
        if (!t || !t->subscribed)
            continue;
        for (size_t j = 0; j < ih->count; j++) {
            const dn__ps_span *id = &rpc->ihave_ids[ih->first + j];
            if (p->iwant_asked >= r->p.max_ihave_length)
                break;
            if (map_get(&r->seen, id->p, id->len) || map_get(&r->promises, id->p, id->len))
                continue;
            bool dup = false;
            for (size_t k = 0; k < nw && !dup; k++)
                dup = want[k].len == id->len && !memcmp(want[k].p, id->p, id->len);
            if (dup)
                continue;
            want[nw++] = *id;
            p->iwant_asked++;
            if (nw == sizeof want / sizeof *want) {
                q_id_spans(r, p, 2, want, nw);
                r->st.iwant_sent += nw;
                for (size_t k = 0; k < nw; k++) {
                    ent *e =
                        map_put(&r->promises, want[k].p, want[k].len, now + r->p.iwant_followup_ms);
                    if (e)
                        e->a = p->serial;
                }
                nw = 0;
            }
        }
    }
    if (nw) {
        q_id_spans(r, p, 2, want, nw);
        r->st.iwant_sent += nw;
        /* A promise per id asked: a peer that advertises and does not
         * deliver within the follow-up time gets P7 (v1.1 "Promises"). */
        for (size_t k = 0; k < nw; k++) {
            ent *e = map_put(&r->promises, want[k].p, want[k].len, now + r->p.iwant_followup_ms);
            if (e)
                e->a = p->serial;
        }
    }
}

static void handle_iwant(dn__pubsub_router *r, peer *p, const dn__pubsub_rpc *rpc)
{
    if (!rpc->niwant_ids || score_of(r, p) < r->p.gossip_threshold)
        return;
    for (size_t i = 0; i < rpc->niwant_ids; i++) {
        ent *e = map_get(&r->mcache, rpc->iwant_ids[i].p, rpc->iwant_ids[i].len);
        if (!e)
            continue;
        mentry *m = e->ptr;
        retx *x = NULL;
        for (size_t k = 0; k < m->nrx; k++)
            if (m->rx[k].serial == p->serial)
                x = &m->rx[k];
        if (!x) {
            retx *v = realloc(m->rx, (m->nrx + 1) * sizeof *v);
            if (!v)
                continue;
            m->rx = v;
            x = &m->rx[m->nrx++];
            *x = (retx){p->serial, 0};
        }
        if (x->count >= r->p.gossip_retransmission)
            continue;
        x->count++;
        q_msg(r, p, m->raw.data, m->raw.len);
        r->st.iwant_answered++;
    }
}

static void handle_graft(dn__pubsub_router *r, peer *p, const dn__pubsub_rpc *rpc, uint64_t now)
{
    for (size_t i = 0; i < rpc->ngraft; i++) {
        r->st.graft_in++;
        topic *t = topic_find(r, rpc->graft[i].p, rpc->graft[i].len);
        if (!t || !t->subscribed || pl_has(&t->mesh, p))
            continue; /* go and js ignore GRAFTs for topics they are not in */
        backoff *b = backoff_find(p, t);
        if (b && b->until > now) {
            /* v1.1 "Prune Backoff": a GRAFT during backoff is penalised,
             * twice when within the flood threshold of the PRUNE. */
            p->p7 += 1;
            if (b->until + r->p.graft_flood_ms > now + r->p.prune_backoff_ms)
                p->p7 += 1;
            q_prune(r, p, t, r->p.prune_backoff_ms, false);
            set_backoff(p, t, now + r->p.prune_backoff_ms);
            continue;
        }
        /* A full mesh still takes peers we dialled (outbound quota). */
        if (score_of(r, p) < 0 || ((int)t->mesh.n >= r->p.d_hi && !p->outbound)) {
            q_prune(r, p, t, r->p.prune_backoff_ms, score_of(r, p) >= 0);
            set_backoff(p, t, now + r->p.prune_backoff_ms);
            continue;
        }
        mesh_add(r, t, p);
    }
}

static void handle_prune(dn__pubsub_router *r, peer *p, const dn__pubsub_rpc *rpc, uint64_t now)
{
    for (size_t i = 0; i < rpc->nprune; i++) {
        r->st.prune_in++;
        const dn__pubsub_prune *pr = &rpc->prune[i];
        topic *t = topic_find(r, pr->topic.p, pr->topic.len);
        if (!t)
            continue;
        pl_del(&t->mesh, p);
        uint64_t bo =
            pr->has_backoff && pr->backoff_s < 86400 ? pr->backoff_s * 1000 : r->p.prune_backoff_ms;
        if (bo < r->p.prune_backoff_ms && !pr->has_backoff)
            bo = r->p.prune_backoff_ms;
        set_backoff(p, t, now + bo);
        if (score_of(r, p) < r->p.accept_px_threshold)
            continue;
        for (size_t j = 0; j < pr->count; j++) {
            const dn__pubsub_px *x = &rpc->px[pr->first + j];
            dn_peerid id;
            if (dn_peerid_from_bytes(x->peer_id.p, x->peer_id.len, &id) ||
                dn_peerid_equal(&id, &r->self) || peer_find(r, &id))
                continue;
            if (r->npx == r->cpx) {
                size_t nc = r->cpx ? r->cpx * 2 : 16;
                dn__pubsub_pxpeer *v = realloc(r->px, nc * sizeof *v);
                if (!v)
                    break;
                r->px = v;
                r->cpx = nc;
            }
            if (r->npx >= 256)
                break; /* the host has not collected them: do not grow */
            dn__pubsub_pxpeer *o = &r->px[r->npx++];
            o->peer = id;
            dn_buf_init(&o->signed_record);
            if (x->signed_record.len &&
                dn_buf_append(&o->signed_record, x->signed_record.p, x->signed_record.len))
                r->npx--;
        }
    }
}

static void handle_idontwant(dn__pubsub_router *r, peer *p, const dn__pubsub_rpc *rpc, uint64_t now)
{
    for (size_t i = 0; i < rpc->nidontwant_ids; i++) {
        if (p->idontwant_in >= r->p.max_idontwant)
            return;
        const dn__ps_span *id = &rpc->idontwant_ids[i];
        /* Only ids we could still send matter; the rest cost memory. */
        if (!map_get(&p->dontwant, id->p, id->len)) {
            map_put(&p->dontwant, id->p, id->len, now);
            p->idontwant_in++;
        }
    }
}

int dn__pubsub_handle_rpc(dn__pubsub_router *r, const dn_peerid *from, const uint8_t *bytes,
                          size_t len, uint64_t now_ms)
{
    r->now = now_ms;
    peer *p = peer_find(r, from);
    if (!p)
        return DN_ENOTFOUND;
    r->st.rpcs_in++;
    if (score_of(r, p) < r->p.graylist_threshold) {
        r->st.rpcs_graylisted++; /* v1.1 "Graylisting": ignore it whole */
        return 0;
    }
    dn__pubsub_rpc rpc;
    int rc = dn__pubsub_rpc_decode(bytes, len, &rpc);
    if (rc) {
        r->st.rpcs_bad++;
        p->p7 += 1;
        return rc;
    }
    handle_subs(r, p, &rpc);
    for (size_t i = 0; i < rpc.nmsgs; i++)
        handle_message(r, p, &rpc.msgs[i], now_ms);
    if (is_mesh_proto(p)) {
        handle_ihave(r, p, &rpc, now_ms);
        handle_iwant(r, p, &rpc);
        handle_graft(r, p, &rpc, now_ms);
        handle_prune(r, p, &rpc, now_ms);
        handle_idontwant(r, p, &rpc, now_ms);
    }
    dn__pubsub_rpc_free(&rpc);
    flush_all(r);
    return 0;
}

/* ---- heartbeat ---- */

static double decay(double v, double f, double zero)
{
    v *= f;
    return v < zero ? 0 : v;
}

static int by_score_desc(const void *a, const void *b, void *ud)
{
    const dn__pubsub_router *r = ud;
    double sa = score_of(r, *(peer *const *)a), sb = score_of(r, *(peer *const *)b);
    return sa < sb ? 1 : sa > sb ? -1 : 0;
}

static void maintain_mesh(dn__pubsub_router *r, topic *t, uint64_t now, peer **tmp)
{
    /* v1.1 heartbeat: drop peers with a negative score first. */
    for (size_t i = t->mesh.n; i-- > 0;) {
        peer *q = t->mesh.v[i];
        if (score_of(r, q) < 0) {
            pl_del(&t->mesh, q);
            q_prune(r, q, t, r->p.prune_backoff_ms, false);
            set_backoff(q, t, now + r->p.prune_backoff_ms);
        }
    }
    if ((int)t->mesh.n < r->p.d_lo) {
        size_t nc = graft_candidates(r, t, now, tmp, r->npeers);
        shuffle(r, (void **)tmp, nc);
        for (size_t i = 0; i < nc && (int)t->mesh.n < r->p.d; i++) {
            mesh_add(r, t, tmp[i]);
            q_graft(r, tmp[i], t);
        }
    }
    /* Outbound quota when the mesh is big enough but short of D_out. */
    if ((int)t->mesh.n >= r->p.d_lo) {
        int nout = 0;
        for (size_t i = 0; i < t->mesh.n; i++)
            nout += t->mesh.v[i]->outbound;
        if (nout < r->p.d_out) {
            size_t nc = graft_candidates(r, t, now, tmp, r->npeers);
            shuffle(r, (void **)tmp, nc);
            for (size_t i = 0; i < nc && nout < r->p.d_out; i++)
                if (tmp[i]->outbound) {
                    mesh_add(r, t, tmp[i]);
                    q_graft(r, tmp[i], t);
                    nout++;
                }
        }
    }
    if ((int)t->mesh.n > r->p.d_hi) {
        /* Keep the D_score best, fill to D at random, prune the rest. */
        size_t n = t->mesh.n;
        memcpy(tmp, t->mesh.v, n * sizeof *tmp);
        shuffle(r, (void **)tmp, n);
        qsort_r(tmp, n, sizeof *tmp, by_score_desc, r);
        size_t keep_best = (size_t)r->p.d_score;
        if (keep_best > (size_t)r->p.d)
            keep_best = (size_t)r->p.d;
        shuffle(r, (void **)(tmp + keep_best), n - keep_best);
        /* v1.1 "Outbound Mesh Quotas": among the D kept, at least D_out
         * peers we dialled, swapped in from the pruned part for the
         * random (not the best-scoring) ones. Sybils can only dial us. */
        size_t d = (size_t)r->p.d, nout = 0;
        for (size_t i = 0; i < d; i++)
            nout += tmp[i]->outbound;
        for (size_t j = d; j < n && (int)nout < r->p.d_out; j++) {
            if (!tmp[j]->outbound)
                continue;
            for (size_t i = d; i-- > keep_best;)
                if (!tmp[i]->outbound) {
                    peer *x = tmp[i];
                    tmp[i] = tmp[j];
                    tmp[j] = x;
                    nout++;
                    break;
                }
        }
        t->mesh.n = 0;
        for (size_t i = 0; i < n; i++) {
            if ((int)i < r->p.d) {
                pl_add(&t->mesh, tmp[i]);
            } else {
                q_prune(r, tmp[i], t, r->p.prune_backoff_ms, true);
                set_backoff(tmp[i], t, now + r->p.prune_backoff_ms);
            }
        }
    }
}

static void maintain_fanout(dn__pubsub_router *r, topic *t, uint64_t now, peer **tmp)
{
    if (t->last_pub + r->p.fanout_ttl_ms <= now) {
        t->fanout.n = 0;
        t->has_fanout = false;
        return;
    }
    for (size_t i = t->fanout.n; i-- > 0;)
        if (!peer_has_topic(t->fanout.v[i], t) ||
            score_of(r, t->fanout.v[i]) < r->p.publish_threshold)
            pl_del(&t->fanout, t->fanout.v[i]);
    if ((int)t->fanout.n < r->p.d) {
        size_t nc = 0;
        for (size_t i = 0; i < r->npeers; i++) {
            peer *q = r->peers[i];
            if (is_mesh_proto(q) && peer_has_topic(q, t) && !pl_has(&t->fanout, q) &&
                score_of(r, q) >= r->p.publish_threshold)
                tmp[nc++] = q;
        }
        shuffle(r, (void **)tmp, nc);
        for (size_t i = 0; i < nc && (int)t->fanout.n < r->p.d; i++)
            pl_add(&t->fanout, tmp[i]);
    }
}

static void emit_gossip(dn__pubsub_router *r, topic *t, peer **tmp)
{
    ent **ids = NULL;
    size_t nids = 0, cap = 0;
    for (int w = 0; w < r->p.history_gossip; w++)
        for (size_t i = 0; i < r->win[w].n; i++) {
            ent *e = r->win[w].v[i];
            if (((mentry *)e->ptr)->t != t)
                continue;
            if (nids == cap) {
                size_t nc = cap ? cap * 2 : 64;
                ent **v = realloc(ids, nc * sizeof *v);
                if (!v)
                    goto out;
                ids = v;
                cap = nc;
            }
            ids[nids++] = e;
        }
    if (!nids)
        goto out;
    const plist *excl = t->subscribed ? &t->mesh : &t->fanout;
    size_t nc = 0;
    for (size_t i = 0; i < r->npeers; i++) {
        peer *q = r->peers[i];
        if (is_mesh_proto(q) && peer_has_topic(q, t) && !pl_has(excl, q) &&
            score_of(r, q) >= r->p.gossip_threshold)
            tmp[nc++] = q;
    }
    size_t target = (size_t)r->p.d_lazy;
    size_t f = (size_t)(r->p.gossip_factor * (double)nc);
    if (f > target)
        target = f;
    shuffle(r, (void **)tmp, nc);
    for (size_t i = 0; i < nc && i < target; i++) {
        size_t n = nids;
        if ((int)n > r->p.max_ihave_length) {
            shuffle(r, (void **)ids, nids);
            n = (size_t)r->p.max_ihave_length;
        }
        q_ids(r, tmp[i], 1, t, ids, n);
        r->st.ihave_sent++;
    }
out:
    free(ids);
}

static void mcache_shift(dn__pubsub_router *r)
{
    /* The oldest window holds the oldest entries, which are the front of
     * the mcache's insertion list: pop them from there. */
    window *last = &r->win[r->p.history_length - 1];
    for (size_t i = 0; i < last->n; i++) {
        ent *e = r->mcache.qhead;
        r->mcache.qhead = e->qnext;
        if (!r->mcache.qhead)
            r->mcache.qtail = NULL;
        map_unlink(&r->mcache, e);
        mentry_free(NULL, e);
        free(e);
    }
    last->n = 0;
    window keep = *last;
    memmove(&r->win[1], &r->win[0], (size_t)(r->p.history_length - 1) * sizeof *r->win);
    r->win[0] = keep;
}

static void promise_broken(void *ud, ent *e)
{
    dn__pubsub_router *r = ud;
    /* a == 0: fulfilled (serials start at 1) */
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i]->serial == e->a) {
            r->peers[i]->p7 += 1;
            r->st.broken_promises++;
        }
}

void dn__pubsub_heartbeat(dn__pubsub_router *r, uint64_t now_ms)
{
    r->now = now_ms;
    peer **tmp = malloc((r->npeers + 1) * sizeof *tmp);
    if (!tmp)
        return;
    for (size_t i = 0; i < r->npeers; i++) {
        peer *p = r->peers[i];
        for (size_t j = p->nts; j-- > 0;) {
            tstat *x = &p->ts[j];
            x->invalid = decay(x->invalid, r->p.p4_decay, r->p.decay_to_zero);
            x->first_del = decay(x->first_del, r->p.p2_decay, r->p.decay_to_zero);
            if (!x->invalid && !x->first_del && !pl_has(&x->t->mesh, p)) {
                x->t->nstats--; /* nothing left to count: let the topic go */
                p->ts[j] = p->ts[--p->nts];
            }
        }
        p->p7 = decay(p->p7, r->p.p7_decay, r->p.decay_to_zero);
        p->ihave_in = p->idontwant_in = p->iwant_asked = 0;
        for (size_t j = p->nbo; j-- > 0;) /* one heartbeat of slack, as js */
            if (p->bo[j].until + r->p.heartbeat_ms <= now_ms)
                p->bo[j] = p->bo[--p->nbo];
        map_expire(&p->dontwant, now_ms, 3 * r->p.heartbeat_ms, NULL, NULL);
    }
    for (size_t i = 0; i < r->ntopics; i++) {
        topic *t = r->topics[i];
        if (t->subscribed)
            maintain_mesh(r, t, now_ms, tmp);
        else if (t->has_fanout)
            maintain_fanout(r, t, now_ms, tmp);
        if (t->subscribed || t->has_fanout)
            emit_gossip(r, t, tmp);
    }
    free(tmp);
    mcache_shift(r);
    map_expire(&r->seen, now_ms, r->p.seen_ttl_ms, NULL, NULL);
    /* promises hold their deadline in t */
    map_expire(&r->promises, now_ms, 0, promise_broken, r);
    for (size_t i = r->ntopics; i-- > 0;)
        topic_gc(r, r->topics[i]);
    flush_all(r);
}

/* ---- outputs and introspection ---- */

dn__pubsub_send *dn__pubsub_sends(dn__pubsub_router *r, size_t *n)
{
    *n = r->nsends;
    return r->sends;
}

dn__pubsub_delivery *dn__pubsub_deliveries(dn__pubsub_router *r, size_t *n)
{
    *n = r->ndlv;
    return r->dlv;
}

dn__pubsub_pxpeer *dn__pubsub_px_peers(dn__pubsub_router *r, size_t *n)
{
    *n = r->npx;
    return r->px;
}

size_t dn__pubsub_mesh_size(const dn__pubsub_router *r, const char *name)
{
    topic *t = topic_find(r, (const uint8_t *)name, strlen(name));
    return t ? t->mesh.n : 0;
}

bool dn__pubsub_in_mesh(const dn__pubsub_router *r, const char *name, const dn_peerid *id)
{
    topic *t = topic_find(r, (const uint8_t *)name, strlen(name));
    peer *p = peer_find(r, id);
    return t && p && pl_has(&t->mesh, p);
}

size_t dn__pubsub_topic_peers(const dn__pubsub_router *r, const char *name, dn_peerid *out,
                              size_t max)
{
    topic *t = topic_find(r, (const uint8_t *)name, strlen(name));
    size_t n = 0;
    for (size_t i = 0; t && i < r->npeers; i++)
        if (peer_has_topic(r->peers[i], t)) {
            if (n < max)
                out[n] = r->peers[i]->id;
            n++;
        }
    return n;
}

double dn__pubsub_score(const dn__pubsub_router *r, const dn_peerid *id)
{
    peer *p = peer_find(r, id);
    return p ? score_of(r, p) : 0;
}

bool dn__pubsub_graylisted(const dn__pubsub_router *r, const dn_peerid *id)
{
    peer *p = peer_find(r, id);
    return p && score_of(r, p) < r->p.graylist_threshold;
}

const dn__pubsub_stats *dn__pubsub_router_stats(const dn__pubsub_router *r)
{
    return &r->st;
}
