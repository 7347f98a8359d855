/* node — dialing: by multiaddr or peer id (dn_network_dial), disconnecting,
 * the channel's bootstrap peers (redialled with exponential backoff while
 * not connected) and, at start, the peers the store saw recently. */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "node/network_int.h"

/* ---- one dial with the caller's callback ---- */

typedef struct net_dial {
    dn_network *n;
    dn_network_dial_cb cb;
    void *arg;
} net_dial;

static void on_dialled(dn_host *h, dn_conn *c, int status, void *arg)
{
    net_dial *d = arg;
    (void)h;
    if (d->cb)
        d->cb(d->n, status ? NULL : dn_conn_remote_peer(c), status, d->arg);
    free(d);
}

/* Give the host the addresses the store knows for peer when it has none. */
static void addrs_from_store(dn_network *n, const dn_peerid *peer)
{
    const dn_peer_info *p = dn_host_peer(n->host, peer);
    if (p && p->naddrs)
        return;
    char id[DN_PEERID_STR_MAX];
    dn_peerid_to_string(peer, id, sizeof id);
    dn_store_peer *sp;
    if (dn__store_peer_get(n->store, id, &sp))
        return;
    dn_multiaddr addrs[DN_STORE_PEER_ADDRS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < sp->n_addrs && k < DN_STORE_PEER_ADDRS_MAX; i++)
        if (dn_multiaddr_parse(sp->addrs[i], &addrs[k]) == 0)
            k++;
    free(sp);
    if (k)
        dn_host_peer_update(n->host, peer,
                            &(dn_peer_update){.set_addrs = true, .addrs = addrs, .naddrs = k});
}

static int dial_parsed(dn_network *n, const dn_multiaddr *ma, const dn_peerid *peer,
                       dn_network_dial_cb cb, void *arg)
{
    net_dial *d = malloc(sizeof *d);
    if (!d)
        return DN_ENOMEM;
    *d = (net_dial){.n = n, .cb = cb, .arg = arg};
    int rc;
    if (ma) {
        rc = dn_host_dial(n->host, ma, on_dialled, d);
    } else {
        addrs_from_store(n, peer);
        rc = dn_host_dial_peer(n->host, peer, on_dialled, d);
    }
    if (rc)
        free(d);
    return rc;
}

int dn_network_dial(dn_network *n, const char *target, dn_network_dial_cb cb, void *arg)
{
    if (n->stopping)
        return DN_ECLOSED;
    if (!target || !*target)
        return DN_EINVAL;
    if (target[0] == '/') {
        dn_multiaddr ma;
        int rc = dn_multiaddr_parse(target, &ma);
        return rc ? rc : dial_parsed(n, &ma, NULL, cb, arg);
    }
    dn_peerid id;
    int rc = dn_peerid_parse(target, &id);
    return rc ? rc : dial_parsed(n, NULL, &id, cb, arg);
}

typedef struct closer {
    const dn_peerid *peer;
    size_t closed;
} closer;

static void close_if_peer(dn_conn *c, void *arg)
{
    closer *cl = arg;
    if (dn_peerid_equal(dn_conn_remote_peer(c), cl->peer)) {
        dn_conn_close(c); /* dn_host_foreach_conn allows it */
        cl->closed++;
    }
}

int dn_network_disconnect(dn_network *n, const dn_peerid *peer)
{
    closer cl = {.peer = peer};
    dn_host_foreach_conn(n->host, close_if_peer, &cl);
    return cl.closed ? 0 : DN_ENOTFOUND;
}

/* ---- bootstrap peers ---- */

typedef struct boot_peer {
    dn_multiaddr addr;
    dn_peerid id;
    bool connected, dialling;
    uint32_t backoff_ms;
    uint64_t next_ms; /* loop time of the next attempt */
} boot_peer;

struct dn__bootstrap {
    boot_peer *v;
    size_t n;
    bool first_logged;
};

static void boot_dial(dn_network *n, boot_peer *b);

static void on_boot_dialled(dn_network *n, const dn_peerid *peer, int status, void *arg)
{
    (void)peer;
    if (!n->boot || n->stopping)
        return;
    size_t i = (size_t)(uintptr_t)arg;
    if (i >= n->boot->n)
        return;
    boot_peer *b = &n->boot->v[i];
    b->dialling = false;
    if (status) {
        char text[DN_MULTIADDR_STR_MAX];
        dn_multiaddr_to_string(&b->addr, text, sizeof text);
        DN_LOG_LIMITED(DN_LOG_INFO, "node", "bootstrap peer %s: %s (retry in %u s)", text,
                       dn_strerror(status), b->backoff_ms / 1000);
    }
}

static void boot_dial(dn_network *n, boot_peer *b)
{
    b->dialling = true;
    b->next_ms = uv_now(n->loop) + b->backoff_ms;
    b->backoff_ms = b->backoff_ms * 2 > 60000 ? 60000 : b->backoff_ms * 2;
    if (dial_parsed(n, &b->addr, NULL, on_boot_dialled, (void *)(uintptr_t)(b - n->boot->v)))
        b->dialling = false;
}

void dn__node_bootstrap_start(dn_network *n)
{
    const dn__node_config_addrs *list = &n->cfg.c.channel.bootstrap;
    if (!list->n)
        return;
    dn__bootstrap *bs = calloc(1, sizeof *bs);
    if (!bs || !(bs->v = calloc(list->n, sizeof *bs->v))) {
        free(bs);
        DN_WARN("node", "out of memory: not dialling the bootstrap peers");
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        boot_peer *b = &bs->v[bs->n];
        /* config.c admitted only multiaddrs that end in /p2p/<id>. */
        if (dn_multiaddr_parse(list->v[i], &b->addr) || dn_multiaddr_peerid(&b->addr, &b->id))
            continue;
        if (dn_peerid_equal(&b->id, dn_host_peerid(n->host)))
            continue; /* a bootstrap node lists itself */
        b->backoff_ms = 1000;
        bs->n++;
    }
    n->boot = bs;
    for (size_t i = 0; i < bs->n; i++)
        boot_dial(n, &bs->v[i]);
}

void dn__node_bootstrap_connected(dn_network *n, const dn_peerid *peer)
{
    if (!n->boot)
        return;
    for (size_t i = 0; i < n->boot->n; i++) {
        boot_peer *b = &n->boot->v[i];
        if (!dn_peerid_equal(&b->id, peer))
            continue;
        b->connected = true;
        b->backoff_ms = 1000;
        dn__node_dht_bootstrap_soon(n);
        if (!n->boot->first_logged) {
            n->boot->first_logged = true;
            char id[DN_PEERID_STR_MAX];
            dn_peerid_to_string(peer, id, sizeof id);
            DN_INFO("node", "connected to bootstrap peer %s after %llu ms", id,
                    (unsigned long long)(uv_now(n->loop) - n->started_loop_ms));
        }
    }
}

void dn__node_bootstrap_tick(dn_network *n)
{
    if (!n->boot)
        return;
    uint64_t now = uv_now(n->loop);
    for (size_t i = 0; i < n->boot->n; i++) {
        boot_peer *b = &n->boot->v[i];
        const dn_peer_info *p = dn_host_peer(n->host, &b->id);
        b->connected = p && p->connections > 0;
        if (!b->connected && !b->dialling && now >= b->next_ms)
            boot_dial(n, b);
    }
}

void dn__node_bootstrap_free(dn_network *n)
{
    if (!n->boot)
        return;
    free(n->boot->v);
    free(n->boot);
    n->boot = NULL;
}

/* ---- recently seen peers ---- */

typedef struct redial {
    dn_network *n;
    size_t dialled;
} redial;

static int redial_one(void *ud, const dn_store_peer *sp)
{
    redial *r = ud;
    dn_peerid id;
    if (dn_peerid_parse(sp->peer_id, &id) || dn_peerid_equal(&id, dn_host_peerid(r->n->host)))
        return 0;
    dn_multiaddr addrs[DN_STORE_PEER_ADDRS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < sp->n_addrs && k < DN_STORE_PEER_ADDRS_MAX; i++)
        if (dn_multiaddr_parse(sp->addrs[i], &addrs[k]) == 0)
            k++;
    if (!k)
        return 0;
    dn_host_peer_update(r->n->host, &id,
                        &(dn_peer_update){.set_addrs = true, .addrs = addrs, .naddrs = k});
    if (dial_parsed(r->n, NULL, &id, NULL, NULL) == 0)
        r->dialled++;
    return 0;
}

void dn__node_redial_recent(dn_network *n, uint64_t window_ms, size_t max)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t now = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    redial r = {.n = n};
    if (dn__store_peer_list(n->store, now - (int64_t)window_ms, max, redial_one, &r) < 0)
        DN_WARN("node", "cannot list the saved peers: %s", dn__store_errmsg(n->store));
    else if (r.dialled)
        DN_INFO("node", "redialling %zu peers seen in the last %llu days", r.dialled,
                (unsigned long long)(window_ms / 86400000));
}
