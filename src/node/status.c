/* node — Status (dn_network_get_status) and its JSON form. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dmsnet/error.h"
#include "node/network_int.h"

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Append text to a string vector (grown by doubling when n is a power of
 * two, so no capacity is kept). */
static int strv_push(char ***v, size_t *n, const char *text)
{
    if ((*n & (*n - 1)) == 0) {
        size_t cap = *n ? *n * 2 : 1;
        char **nv = realloc(*v, cap * sizeof *nv);
        if (!nv)
            return DN_ENOMEM;
        *v = nv;
    }
    if (!((*v)[*n] = strdup(text)))
        return DN_ENOMEM;
    (*n)++;
    return 0;
}

static int strv_push_ma(char ***v, size_t *n, const dn_multiaddr *ma)
{
    char text[DN_MULTIADDR_STR_MAX];
    if (dn_multiaddr_to_string(ma, text, sizeof text) < 0)
        return 0; /* nothing we can print: leave it out */
    return strv_push(v, n, text);
}

/* Connections grouped by peer: gathered, then sorted by peer id (and by
 * their place in the host's list, newest first), so each peer is one run
 * and building Status costs O(n log n) for n connections. */
typedef struct conn_ref {
    dn_conn *c;
    size_t order;
} conn_ref;

typedef struct gather {
    conn_ref *v;
    size_t n, cap;
    bool oom;
} gather;

static void gather_conn(dn_conn *c, void *arg)
{
    gather *g = arg;
    if (g->oom)
        return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        conn_ref *v = realloc(g->v, cap * sizeof *v);
        if (!v) {
            g->oom = true;
            return;
        }
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n] = (conn_ref){.c = c, .order = g->n};
    g->n++;
}

static int conn_ref_cmp(const void *a, const void *b)
{
    const conn_ref *x = a, *y = b;
    const dn_peerid *p = dn_conn_remote_peer(x->c), *q = dn_conn_remote_peer(y->c);
    if (p->len != q->len)
        return p->len < q->len ? -1 : 1;
    int d = memcmp(p->bytes, q->bytes, p->len);
    if (d)
        return d;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* One peer's entry from its run of k connections v[0..k). */
static int peer_entry(dn_network *n, const conn_ref *v, size_t k, dn_network_peer_status *ps)
{
    const dn_peerid *id = dn_conn_remote_peer(v[0].c);
    memset(ps, 0, sizeof *ps);
    dn_peerid_to_string(id, ps->peer_id, sizeof ps->peer_id);
    ps->rtt_us = -1;
    const dn_peer_info *p = dn_host_peer(n->host, id);
    if (!(ps->agent = strdup(p ? p->agent_version : "")))
        return DN_ENOMEM;
    if (p) {
        ps->rtt_us = p->latency_us;
        ps->streams = p->streams;
        for (size_t i = 0; i < p->nprotocols; i++)
            if (strv_push(&ps->protocols, &ps->nprotocols, p->protocols[i]))
                return DN_ENOMEM;
    }
    for (size_t i = 0; i < k; i++)
        if (strv_push_ma(&ps->addrs, &ps->naddrs, dn_conn_remote_addr(v[i].c)))
            return DN_ENOMEM;
    /* The host lists connections newest first: the last of the run is the
     * oldest, and its direction is the peer's. */
    ps->outbound = dn_conn_is_outbound(v[k - 1].c);
    ps->connections = (unsigned)k;
    return 0;
}

static int collect_peers(dn_network *n, dn_network_status *st)
{
    gather g = {0};
    dn_host_foreach_conn(n->host, gather_conn, &g);
    int rc = g.oom ? DN_ENOMEM : 0;
    if (!rc && g.n) {
        qsort(g.v, g.n, sizeof *g.v, conn_ref_cmp);
        if (!(st->peers = calloc(g.n, sizeof *st->peers))) /* at most one per connection */
            rc = DN_ENOMEM;
    }
    for (size_t i = 0; !rc && i < g.n;) {
        size_t j = i + 1;
        while (j < g.n &&
               dn_peerid_equal(dn_conn_remote_peer(g.v[j].c), dn_conn_remote_peer(g.v[i].c)))
            j++;
        rc = peer_entry(n, g.v + i, j - i, &st->peers[st->npeers++]);
        i = j;
    }
    free(g.v);
    return rc;
}

int dn_network_get_status(dn_network *n, dn_network_status **out)
{
    dn_network_status *st = calloc(1, sizeof *st);
    if (!st)
        return DN_ENOMEM;
    dn_peerid_to_string(dn_host_peerid(n->host), st->peer_id, sizeof st->peer_id);
    int rc = 0;
    dn_multiaddr addrs[DN__NODE_MAX_LOCAL_ADDRS];
    size_t k = dn_host_dialable_addrs(n->host, addrs, DN__NODE_MAX_LOCAL_ADDRS);
    for (size_t i = 0; !rc && i < k; i++)
        rc = strv_push_ma(&st->listen_addrs, &st->nlisten_addrs, &addrs[i]);
    k = dn__node_nat_confirmed(n, addrs, DN__NODE_MAX_LOCAL_ADDRS);
    for (size_t i = 0; !rc && i < k; i++)
        rc = strv_push_ma(&st->observed_addrs, &st->nobserved_addrs, &addrs[i]);
    st->reachability = n->reachability;
    st->nat_type = n->nat_type;
    st->private_swarm = n->cfg.has_psk;
    const char *name = n->cfg.has_psk ? (n->cfg.swarm ? n->cfg.swarm : "") : n->cfg.c.channel.name;
    if (!rc && !(st->network = strdup(name ? name : "")))
        rc = DN_ENOMEM;
    if (!rc)
        rc = collect_peers(n, st);
    dn_host_stats hs;
    dn_host_get_stats(n->host, &hs);
    st->bytes_in = hs.bytes_in;
    st->bytes_out = hs.bytes_out;
    st->uptime_ms = n->started ? uv_now(n->loop) - n->started_loop_ms : 0;
    st->agent_version = dn_host_agent_version(n->host);
    if (rc) {
        dn_network_status_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void dn_network_status_free(dn_network_status *st)
{
    if (!st)
        return;
    strv_free(st->listen_addrs, st->nlisten_addrs);
    strv_free(st->observed_addrs, st->nobserved_addrs);
    for (size_t i = 0; i < st->npeers; i++) {
        dn_network_peer_status *p = &st->peers[i];
        strv_free(p->addrs, p->naddrs);
        strv_free(p->protocols, p->nprotocols);
        free(p->agent);
    }
    free(st->peers);
    free(st->network);
    free(st);
}

static json_t *strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *dn__node_peer_status_json(const dn_network_peer_status *p)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *agent = dn__node_text_json(p->agent), *protocols = json_array();
    for (size_t i = 0; protocols && i < p->nprotocols; i++)
        json_array_append_new(protocols, dn__node_text_json(p->protocols[i]));
    int bad = json_object_set_new(o, "peer_id", json_string(p->peer_id)) ||
              json_object_set_new(o, "addrs", strv_json(p->addrs, p->naddrs)) ||
              json_object_set_new(o, "direction",
                                  json_string(p->outbound ? "outbound" : "inbound")) ||
              json_object_set_new(o, "protocols", protocols) ||
              json_object_set_new(o, "agent", agent ? agent : json_null()) ||
              json_object_set_new(o, "rtt_ms",
                                  p->rtt_us < 0 ? json_null()
                                                : json_real((double)p->rtt_us / 1000.0)) ||
              json_object_set_new(o, "connections", json_integer(p->connections)) ||
              json_object_set_new(o, "streams", json_integer(p->streams));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *dn__node_status_json(const dn_network_status *st)
{
    json_t *o = json_object(), *peers = json_array();
    if (!o || !peers)
        goto fail;
    for (size_t i = 0; i < st->npeers; i++)
        if (json_array_append_new(peers, dn__node_peer_status_json(&st->peers[i])))
            goto fail;
    if (json_object_set_new(o, "peer_id", json_string(st->peer_id)) ||
        json_object_set_new(o, "listen_addrs", strv_json(st->listen_addrs, st->nlisten_addrs)) ||
        json_object_set_new(o, "observed_addrs",
                            strv_json(st->observed_addrs, st->nobserved_addrs)) ||
        json_object_set_new(o, "reachability", json_string(dn_reachability_name(st->reachability))) ||
        json_object_set_new(o, "nat_type", json_string(dn_nat_type_name(st->nat_type))) ||
        json_object_set_new(o, "mode", json_string(st->private_swarm ? "private" : "public")) ||
        json_object_set_new(o, "network", json_string(st->network)) ||
        json_object_set_new(o, "peers", json_null()) || /* its place; filled below */
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)st->bytes_in)) ||
        json_object_set_new(o, "bytes_out", json_integer((json_int_t)st->bytes_out)) ||
        json_object_set_new(o, "uptime_ms", json_integer((json_int_t)st->uptime_ms)) ||
        json_object_set_new(o, "agent_version", json_string(st->agent_version)))
        goto fail;
    json_t *p = peers;
    peers = NULL;
    if (json_object_set_new(o, "peers", p)) /* steals p, also on failure */
        goto fail;
    return o;
fail:
    json_decref(peers);
    json_decref(o);
    return NULL;
}

char *dn_network_status_to_json(const dn_network_status *st)
{
    json_t *o = dn__node_status_json(st);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(o);
    return s;
}
