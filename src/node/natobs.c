/* node — observed addresses and the NAT type (see natobs.h for the rules).
 *
 * The reports live in one array allocated at creation. After every change
 * the array is sorted by (local, observed, observer group) and scanned once:
 * each run of one (local, observed) pair gives its number of distinct
 * observer groups, from which the confirmed set and the NAT verdict follow.
 * With at most max_observations reports that is cheap, and it keeps no
 * second structure that could drift from the reports. */
#include "node/natobs.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

/* A thin-waist address in a fixed form: all bytes, no padding, so memcmp
 * compares and orders them (port big-endian, as on the wire). */
typedef struct natobs_tw {
    uint8_t fam;   /* 4 or 6 */
    uint8_t proto; /* 't' (tcp) or 'u' (udp) */
    uint8_t port[2];
    uint8_t ip[16]; /* IPv4 in the first 4 bytes, the rest zero */
} natobs_tw;

typedef struct natobs_group {
    uint8_t fam;
    uint8_t prefix[16]; /* the observer's IP masked to the group prefix */
} natobs_group;

typedef struct natobs_rec {
    natobs_tw local;
    natobs_tw observed;
    natobs_group group;
    bool outbound;
    uint64_t conn_id;
    uint64_t expires_ms; /* 0 while the connection is open */
} natobs_rec;

/* One (local, observed) pair after a scan. */
typedef struct natobs_pair {
    const natobs_tw *local;
    const natobs_tw *observed;
    uint32_t groups;     /* distinct observer groups, any direction */
    uint32_t out_groups; /* distinct observer groups on outbound connections */
} natobs_pair;

struct dn__natobs {
    dn__natobs_params p;
    natobs_rec *recs;
    size_t n;
    natobs_pair *pairs; /* scratch for the scan, max_observations long */
    natobs_tw listen[DN__NATOBS_MAX_LISTEN];
    size_t nlisten;
    natobs_tw confirmed[DN__NATOBS_MAX_CONFIRMED];
    size_t nconfirmed;
    dn_nat_type nat;
    unsigned changes;
};

void dn__natobs_params_init(dn__natobs_params *p)
{
    /* go-libp2p's values where it has one: ActivationThresh 4,
     * maxExternalThinWaistAddrsPerLocalAddr 3, a NAT verdict after
     * 3 * 3 observations, IPv6 observers grouped by /56, and
     * OwnObservedAddrTTL (30 min) for reports of closed connections. */
    *p = (dn__natobs_params){.activation_thresh = 4,
                             .max_per_local = 3,
                             .nat_min_observations = 9,
                             .v4_group_bits = 16,
                             .v6_group_bits = 56,
                             .ttl_ms = 30u * 60u * 1000u,
                             .max_observations = 512,
                             .max_per_group = 16};
}

dn__natobs *dn__natobs_new(const dn__natobs_params *p)
{
    dn__natobs_params d;
    dn__natobs_params_init(&d);
    if (p) {
        if (p->activation_thresh)
            d.activation_thresh = p->activation_thresh;
        if (p->max_per_local)
            d.max_per_local = p->max_per_local;
        d.nat_min_observations =
            p->nat_min_observations ? p->nat_min_observations : 3 * d.max_per_local;
        if (p->v4_group_bits)
            d.v4_group_bits = p->v4_group_bits > 32 ? 32 : p->v4_group_bits;
        if (p->v6_group_bits)
            d.v6_group_bits = p->v6_group_bits > 128 ? 128 : p->v6_group_bits;
        if (p->ttl_ms)
            d.ttl_ms = p->ttl_ms;
        if (p->max_observations)
            d.max_observations = p->max_observations > 65536 ? 65536 : p->max_observations;
        if (p->max_per_group)
            d.max_per_group = p->max_per_group;
    }
    dn__natobs *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->p = d;
    o->recs = calloc(d.max_observations, sizeof *o->recs);
    o->pairs = calloc(d.max_observations, sizeof *o->pairs);
    if (!o->recs || !o->pairs) {
        dn__natobs_free(o);
        return NULL;
    }
    o->nat = DN_NAT_UNKNOWN;
    return o;
}

void dn__natobs_free(dn__natobs *o)
{
    if (!o)
        return;
    free(o->recs);
    free(o->pairs);
    free(o);
}

/* ---- parsing ---- */

/* The thin waist of ma: its first two components, ip4|ip6 then tcp|udp.
 * *relayed tells whether a /p2p-circuit follows (the address of a relay). */
static int parse_tw(const dn_multiaddr *ma, natobs_tw *out, bool *relayed)
{
    memset(out, 0, sizeof *out);
    *relayed = false;
    if (!ma || ma->len > DN_MULTIADDR_MAX)
        return DN_EUNSUPPORTED;
    size_t off = 0;
    dn_ma_component c;
    if (dn_multiaddr_next(ma, &off, &c) != 1)
        return DN_EUNSUPPORTED;
    if (c.code == DN_MA_IP4 && c.value_len == 4) {
        out->fam = 4;
        memcpy(out->ip, c.value, 4);
    } else if (c.code == DN_MA_IP6 && c.value_len == 16) {
        out->fam = 6;
        memcpy(out->ip, c.value, 16);
    } else {
        return DN_EUNSUPPORTED;
    }
    if (dn_multiaddr_next(ma, &off, &c) != 1 || c.value_len != 2)
        return DN_EUNSUPPORTED;
    if (c.code == DN_MA_TCP)
        out->proto = 't';
    else if (c.code == DN_MA_UDP)
        out->proto = 'u';
    else
        return DN_EUNSUPPORTED;
    memcpy(out->port, c.value, 2);
    int r;
    while ((r = dn_multiaddr_next(ma, &off, &c)) == 1)
        if (c.code == DN_MA_P2P_CIRCUIT)
            *relayed = true;
    return r < 0 ? DN_EUNSUPPORTED : 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static bool ip_unspecified(const natobs_tw *t)
{
    return all_zero(t->ip, t->fam == 4 ? 4 : 16);
}

/* Addresses a peer can never reach us on, or that only mean something to
 * it: an observation of one is a mistake or a lie. */
static bool ip_useless(const natobs_tw *t)
{
    const uint8_t *a = t->ip;
    if (t->fam == 4) {
        return a[0] == 0                       /* 0.0.0.0/8: "this network" */
               || a[0] == 127                  /* loopback */
               || (a[0] == 169 && a[1] == 254) /* link-local */
               || a[0] >= 224;                 /* multicast, reserved, broadcast */
    }
    static const uint8_t loop6[16] = {[15] = 1};
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b}; /* 64:ff9b::/96, RFC 6052 */
    return all_zero(a, 16) || memcmp(a, loop6, 16) == 0 ||
           (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
           || a[0] == 0xff                         /* multicast */
           || memcmp(a, mapped, 12) == 0           /* IPv4-mapped: the v4 socket's business */
           || memcmp(a, nat64, 12) == 0;           /* NAT64: the peer's own translation */
}

static int parse_group(const dn__natobs *o, const dn_multiaddr *observer, natobs_group *g)
{
    memset(g, 0, sizeof *g);
    if (!observer || observer->len > DN_MULTIADDR_MAX)
        return DN_EUNSUPPORTED;
    size_t off = 0;
    dn_ma_component c;
    if (dn_multiaddr_next(observer, &off, &c) != 1)
        return DN_EUNSUPPORTED;
    unsigned bits;
    if (c.code == DN_MA_IP4 && c.value_len == 4) {
        g->fam = 4;
        bits = o->p.v4_group_bits;
    } else if (c.code == DN_MA_IP6 && c.value_len == 16) {
        g->fam = 6;
        bits = o->p.v6_group_bits;
    } else {
        return DN_EUNSUPPORTED;
    }
    memcpy(g->prefix, c.value, c.value_len);
    for (unsigned i = 0; i < c.value_len; i++) {
        if (bits >= 8 * (i + 1))
            continue;
        unsigned keep = bits > 8 * i ? bits - 8 * i : 0;
        g->prefix[i] &= (uint8_t)(0xff00u >> keep);
    }
    return 0;
}

static bool listen_matches(const natobs_tw *l, const natobs_tw *local)
{
    if (l->fam != local->fam || l->proto != local->proto || memcmp(l->port, local->port, 2) != 0)
        return false;
    return ip_unspecified(l) || memcmp(l->ip, local->ip, 16) == 0;
}

static bool is_listen_addr(const dn__natobs *o, const natobs_tw *local)
{
    for (size_t i = 0; i < o->nlisten; i++)
        if (listen_matches(&o->listen[i], local))
            return true;
    return false;
}

/* ---- the scan ---- */

static int cmp_rec(const void *pa, const void *pb)
{
    const natobs_rec *a = pa, *b = pb;
    int c = memcmp(&a->local, &b->local, sizeof a->local);
    if (!c)
        c = memcmp(&a->observed, &b->observed, sizeof a->observed);
    if (!c)
        c = memcmp(&a->group, &b->group, sizeof a->group);
    return c;
}

/* Most observers first; ties by address, so the choice is stable. */
static int cmp_pair_all(const void *pa, const void *pb)
{
    const natobs_pair *a = pa, *b = pb;
    if (a->groups != b->groups)
        return a->groups > b->groups ? -1 : 1;
    return memcmp(a->observed, b->observed, sizeof *a->observed);
}

static int cmp_pair_out(const void *pa, const void *pb)
{
    const natobs_pair *a = pa, *b = pb;
    if (a->out_groups != b->out_groups)
        return a->out_groups > b->out_groups ? -1 : 1;
    return memcmp(a->observed, b->observed, sizeof *a->observed);
}

/* Insert t into the sorted set s (of *n, at most DN__NATOBS_MAX_CONFIRMED),
 * keeping the smallest ones when full. */
static void set_insert(natobs_tw *s, size_t *n, const natobs_tw *t)
{
    size_t i = 0;
    while (i < *n && memcmp(&s[i], t, sizeof *t) < 0)
        i++;
    if (i < *n && memcmp(&s[i], t, sizeof *t) == 0)
        return;
    if (i == DN__NATOBS_MAX_CONFIRMED)
        return;
    size_t last = *n < DN__NATOBS_MAX_CONFIRMED ? *n : DN__NATOBS_MAX_CONFIRMED - 1;
    memmove(&s[i + 1], &s[i], (last - i) * sizeof *s);
    s[i] = *t;
    if (*n < DN__NATOBS_MAX_CONFIRMED)
        (*n)++;
}

static void recompute(dn__natobs *o)
{
    qsort(o->recs, o->n, sizeof *o->recs, cmp_rec);
    size_t npairs = 0;
    for (size_t i = 0; i < o->n;) {
        const natobs_rec *r = &o->recs[i];
        natobs_pair *p = &o->pairs[npairs++];
        *p = (natobs_pair){.local = &r->local, .observed = &r->observed};
        size_t j = i;
        /* Within the pair, records are sorted by group: one run per group. */
        while (j < o->n && memcmp(&o->recs[j].local, &r->local, sizeof r->local) == 0 &&
               memcmp(&o->recs[j].observed, &r->observed, sizeof r->observed) == 0) {
            const natobs_group *g = &o->recs[j].group;
            bool out = false;
            size_t k = j;
            while (k < o->n && memcmp(&o->recs[k].local, &r->local, sizeof r->local) == 0 &&
                   memcmp(&o->recs[k].observed, &r->observed, sizeof r->observed) == 0 &&
                   memcmp(&o->recs[k].group, g, sizeof *g) == 0) {
                out = out || o->recs[k].outbound;
                k++;
            }
            p->groups++;
            if (out)
                p->out_groups++;
            j = k;
        }
        i = j;
    }

    natobs_tw conf[DN__NATOBS_MAX_CONFIRMED];
    size_t nconf = 0;
    uint64_t top = 0, total = 0;
    for (size_t a = 0; a < npairs;) {
        size_t b = a;
        while (b < npairs && memcmp(o->pairs[b].local, o->pairs[a].local, sizeof(natobs_tw)) == 0)
            b++;
        size_t m = b - a;
        qsort(&o->pairs[a], m, sizeof *o->pairs, cmp_pair_all);
        for (size_t k = 0; k < m && k < o->p.max_per_local; k++)
            if (o->pairs[a + k].groups >= o->p.activation_thresh)
                set_insert(conf, &nconf, o->pairs[a + k].observed);
        qsort(&o->pairs[a], m, sizeof *o->pairs, cmp_pair_out);
        for (size_t k = 0; k < m; k++) {
            total += o->pairs[a + k].out_groups;
            if (k < o->p.max_per_local)
                top += o->pairs[a + k].out_groups;
        }
        a = b;
    }

    /* go-libp2p's rule: when the few most seen mappings of each local
     * address cover at least half of the reports, a peer learning one of
     * them (e.g. for hole punching) most likely reaches us: cone. */
    dn_nat_type nat = DN_NAT_UNKNOWN;
    if (total >= o->p.nat_min_observations)
        nat = 2 * top >= total ? DN_NAT_CONE : DN_NAT_SYMMETRIC;
    if (nat != o->nat) {
        o->nat = nat;
        o->changes |= DN__NATOBS_NAT_CHANGED;
    }
    if (nconf != o->nconfirmed || memcmp(conf, o->confirmed, nconf * sizeof *conf) != 0) {
        memcpy(o->confirmed, conf, nconf * sizeof *conf);
        o->nconfirmed = nconf;
        o->changes |= DN__NATOBS_ADDRS_CHANGED;
    }
}

static void remove_at(dn__natobs *o, size_t i)
{
    o->recs[i] = o->recs[--o->n];
}

/* Drop expired reports; true when any went. */
static bool expire(dn__natobs *o, uint64_t now_ms)
{
    bool any = false;
    for (size_t i = 0; i < o->n;) {
        if (o->recs[i].expires_ms && o->recs[i].expires_ms <= now_ms) {
            remove_at(o, i);
            any = true;
        } else {
            i++;
        }
    }
    return any;
}

/* The closed report (of group g, or any when g is NULL) that expires
 * first, or -1. */
static long oldest_closed(const dn__natobs *o, const natobs_group *g)
{
    long best = -1;
    for (size_t i = 0; i < o->n; i++) {
        const natobs_rec *r = &o->recs[i];
        if (!r->expires_ms || (g && memcmp(&r->group, g, sizeof *g) != 0))
            continue;
        if (best < 0 || r->expires_ms < o->recs[best].expires_ms)
            best = (long)i;
    }
    return best;
}

/* ---- API ---- */

void dn__natobs_set_listen(dn__natobs *o, const dn_multiaddr *addrs, size_t n, uint64_t now_ms)
{
    o->nlisten = 0;
    for (size_t i = 0; i < n && o->nlisten < DN__NATOBS_MAX_LISTEN; i++) {
        natobs_tw t;
        bool relayed;
        if (parse_tw(&addrs[i], &t, &relayed) || relayed || all_zero(t.port, 2))
            continue;
        o->listen[o->nlisten++] = t;
    }
    bool any = expire(o, now_ms);
    for (size_t i = 0; i < o->n;) {
        if (!is_listen_addr(o, &o->recs[i].local)) {
            remove_at(o, i);
            any = true;
        } else {
            i++;
        }
    }
    if (any)
        recompute(o);
}

int dn__natobs_record(dn__natobs *o, uint64_t conn_id, const dn_multiaddr *observer,
                      const dn_multiaddr *local, const dn_multiaddr *observed, bool outbound,
                      uint64_t now_ms)
{
    if (expire(o, now_ms))
        recompute(o);
    natobs_tw lt, ot;
    natobs_group g;
    bool relayed;
    int rc = parse_tw(observed, &ot, &relayed);
    if (rc)
        return rc;
    if (relayed)
        return DN_EUNSUPPORTED; /* the relay's address, not ours */
    if ((rc = parse_tw(local, &lt, &relayed)) || relayed)
        return DN_EUNSUPPORTED;
    if ((rc = parse_group(o, observer, &g)))
        return rc;
    if (ip_useless(&ot) || all_zero(ot.port, 2))
        return DN_EINVAL;
    /* A TCP connection over IPv4 is seen as IPv4 and TCP (go-libp2p's
     * hasConsistentTransport). */
    if (ot.fam != lt.fam || ot.proto != lt.proto)
        return DN_EINVAL;
    if (!is_listen_addr(o, &lt))
        return DN_ENOTFOUND;

    natobs_rec nr = {.local = lt,
                     .observed = ot,
                     .group = g,
                     .outbound = outbound,
                     .conn_id = conn_id,
                     .expires_ms = 0};
    for (size_t i = 0; i < o->n; i++) {
        natobs_rec *r = &o->recs[i];
        if (r->conn_id != conn_id)
            continue;
        if (cmp_rec(r, &nr) == 0 && r->outbound == outbound && !r->expires_ms)
            return 0;
        /* The connection's new report replaces its old one (identify push). */
        *r = nr;
        recompute(o);
        return 0;
    }

    size_t in_group = 0;
    for (size_t i = 0; i < o->n; i++)
        if (memcmp(&o->recs[i].group, &g, sizeof g) == 0)
            in_group++;
    if (in_group >= o->p.max_per_group) {
        long v = oldest_closed(o, &g);
        if (v < 0)
            return DN_ELIMIT;
        remove_at(o, (size_t)v);
    } else if (o->n >= o->p.max_observations) {
        long v = oldest_closed(o, NULL);
        if (v < 0)
            return DN_ELIMIT;
        remove_at(o, (size_t)v);
    }
    o->recs[o->n++] = nr;
    recompute(o);
    return 0;
}

void dn__natobs_forget(dn__natobs *o, uint64_t conn_id, uint64_t now_ms)
{
    for (size_t i = 0; i < o->n; i++) {
        natobs_rec *r = &o->recs[i];
        if (r->conn_id == conn_id && !r->expires_ms) {
            uint64_t at = now_ms + o->p.ttl_ms;
            r->expires_ms = at ? at : 1;
            break;
        }
    }
    if (expire(o, now_ms))
        recompute(o);
}

void dn__natobs_tick(dn__natobs *o, uint64_t now_ms)
{
    if (expire(o, now_ms))
        recompute(o);
}

static void tw_to_multiaddr(const natobs_tw *t, dn_multiaddr *out)
{
    out->len = 0;
    dn_multiaddr_append(out, t->fam == 4 ? DN_MA_IP4 : DN_MA_IP6, t->ip, t->fam == 4 ? 4 : 16);
    dn_multiaddr_append(out, t->proto == 't' ? DN_MA_TCP : DN_MA_UDP, t->port, 2);
}

size_t dn__natobs_confirmed(const dn__natobs *o, dn_multiaddr *out, size_t max)
{
    for (size_t i = 0; i < o->nconfirmed && i < max; i++)
        tw_to_multiaddr(&o->confirmed[i], &out[i]);
    return o->nconfirmed;
}

dn_nat_type dn__natobs_nat_type(const dn__natobs *o)
{
    return o->nat;
}

unsigned dn__natobs_take_changes(dn__natobs *o)
{
    unsigned c = o->changes;
    o->changes = 0;
    return c;
}

size_t dn__natobs_count(const dn__natobs *o)
{
    return o->n;
}
