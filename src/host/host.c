/* The host: listeners, dialing, connection reuse, protocol handlers and the
 * once-per-loop-turn write flush. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "host/host_internal.h"

/* Writes queued anywhere during this loop turn go out in one batch per
 * connection, just before libuv blocks for I/O. */
static void on_kick(uv_idle_t *idle) { (void)idle; }

static void on_prepare(uv_prepare_t *p)
{
    dn_host *h = p->data;
    /* Flush the connections dirty now; ones that become dirty again while
     * flushing wait for the next turn, with the idle handle keeping libuv
     * from blocking until then. */
    dn_conn *list = h->dirty_head;
    h->dirty_head = NULL;
    for (dn_conn *c = list; c; c = list) {
        list = c->dirty_next;
        c->dirty = false;
        dn__conn_flush(c);
    }
    if (h->dirty_head)
        uv_idle_start(&h->kick, on_kick);
    else
        uv_idle_stop(&h->kick);
}

int dn_host_new(uv_loop_t *loop, const dn_host_config *cfg, dn_host **out)
{
    if (!loop || !cfg || !cfg->identity)
        return DN_EINVAL;
    dn_host *h = calloc(1, sizeof *h);
    if (!h)
        return DN_ENOMEM;
    h->loop = loop;
    h->cfg = *cfg;
    h->identity = cfg->identity;
    if (!h->cfg.max_conns)
        h->cfg.max_conns = 4096;
    if (!h->cfg.max_streams)
        h->cfg.max_streams = 1024;
    if (!h->cfg.handshake_timeout_ms)
        h->cfg.handshake_timeout_ms = 10000;
    if (!h->cfg.dial_timeout_ms)
        h->cfg.dial_timeout_ms = 10000;
    snprintf(h->agent_version, sizeof h->agent_version, "%s",
             cfg->agent_version ? cfg->agent_version : "dmsnet/" DN_VERSION);
    h->cfg.agent_version = h->agent_version;
    if (cfg->psk) {
        memcpy(h->psk, cfg->psk, DN_PSK_LEN);
        h->use_pnet = true;
        h->cfg.psk = h->psk;
    }
    int rc = dn_peerid_from_pubkey(dn_privkey_public(cfg->identity), &h->self);
    if (rc) {
        free(h);
        return rc;
    }
    dn__peerstore_init(&h->peers);
    dn_verify_cache_init(&h->vcache);
    if ((rc = dn_noise_static_init(&h->noise_static, h->identity))) {
        free(h);
        return rc;
    }
    /* Peer record sequence numbers must grow across restarts: use the clock. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    h->identify_seq = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    uv_prepare_init(loop, &h->flusher);
    h->flusher.data = h;
    uv_prepare_start(&h->flusher, on_prepare);
    uv_unref((uv_handle_t *)&h->flusher); /* does not keep the loop alive */
    uv_idle_init(loop, &h->kick);
    h->kick.data = h;
    uv_unref((uv_handle_t *)&h->kick);

    if ((rc = dn__ping_register(h)) || (rc = dn__identify_register(h)) ||
        (cfg->enable_perf && (rc = dn__perf_register(h)))) {
        dn_host_close(h, NULL, NULL);
        return rc;
    }
    *out = h;
    return 0;
}

uv_loop_t *dn_host_loop(dn_host *h) { return h->loop; }
const dn_peerid *dn_host_peerid(const dn_host *h) { return &h->self; }

void dn_host_set_conn_observer(dn_host *h, dn_conn_event_cb cb, void *arg)
{
    h->observer = cb;
    h->observer_arg = arg;
}

void dn__host_emit(dn_host *h, dn_conn *c, dn_conn_event ev, int status)
{
    if (h->observer)
        h->observer(h, c, ev, status, h->observer_arg);
}

int dn_host_set_handler(dn_host *h, const char *protocol, dn_stream_handler fn, void *arg)
{
    if (!protocol || !fn || strlen(protocol) == 0 || strlen(protocol) > 255)
        return DN_EINVAL;
    for (size_t i = 0; i < h->nhandlers; i++) {
        if (strcmp(h->handlers[i].protocol, protocol) == 0) {
            h->handlers[i].fn = fn;
            h->handlers[i].arg = arg;
            return 0;
        }
    }
    if (h->nhandlers == DN_HOST_MAX_PROTOCOLS)
        return DN_ELIMIT;
    char *p = strdup(protocol);
    if (!p)
        return DN_ENOMEM;
    h->handlers[h->nhandlers] = (dn_handler_entry){p, fn, arg};
    h->protocol_list[h->nhandlers] = p;
    h->nhandlers++;
    return 0;
}

size_t dn_host_protocols(const dn_host *h, const char **out, size_t max)
{
    size_t n = h->nhandlers < max ? h->nhandlers : max;
    for (size_t i = 0; i < n; i++)
        out[i] = h->handlers[i].protocol;
    return h->nhandlers;
}

const dn_peer_info *dn_host_peer(const dn_host *h, const dn_peerid *id)
{
    return dn__peerstore_get((dn_peerstore *)&h->peers, id, false);
}

/* ---- listening ---- */

static int sockaddr_from_multiaddr(const dn_multiaddr *ma, struct sockaddr_storage *ss,
                                   dn_peerid *peer, bool *have_peer)
{
    size_t off = 0;
    dn_ma_component comp;
    int idx = 0, rc;
    bool have_ip = false, have_port = false;
    memset(ss, 0, sizeof *ss);
    if (have_peer)
        *have_peer = false;
    while ((rc = dn_multiaddr_next(ma, &off, &comp)) == 1) {
        if (idx == 0 && comp.code == DN_MA_IP4) {
            struct sockaddr_in *sin = (struct sockaddr_in *)ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, comp.value, 4);
            have_ip = true;
        } else if (idx == 0 && comp.code == DN_MA_IP6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, comp.value, 16);
            have_ip = true;
        } else if (idx == 1 && comp.code == DN_MA_TCP) {
            uint16_t port = (uint16_t)(comp.value[0] << 8 | comp.value[1]);
            if (ss->ss_family == AF_INET)
                ((struct sockaddr_in *)ss)->sin_port = htons(port);
            else
                ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
            have_port = true;
        } else if (idx == 2 && comp.code == DN_MA_P2P && peer) {
            rc = dn_peerid_from_bytes(comp.value, comp.value_len, peer);
            if (rc)
                return rc;
            *have_peer = true;
        } else {
            return DN_EUNSUPPORTED;
        }
        idx++;
    }
    if (rc < 0)
        return rc;
    return have_ip && have_port ? 0 : DN_EUNSUPPORTED;
}

static int multiaddr_from_sockaddr(const struct sockaddr *sa, dn_multiaddr *ma)
{
    ma->len = 0;
    uint16_t port;
    int rc;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        rc = dn_multiaddr_append(ma, DN_MA_IP4, (const uint8_t *)&sin->sin_addr, 4);
        port = ntohs(sin->sin_port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        rc = dn_multiaddr_append(ma, DN_MA_IP6, (const uint8_t *)&sin6->sin6_addr, 16);
        port = ntohs(sin6->sin6_port);
    }
    if (rc)
        return rc;
    uint8_t p[2] = {(uint8_t)(port >> 8), (uint8_t)port};
    return dn_multiaddr_append(ma, DN_MA_TCP, p, 2);
}

static void on_connection(uv_stream_t *server, int status)
{
    dn_listener *l = server->data;
    dn_host *h = l->host;
    if (status < 0) {
        DN_WARN("host", "accept failed: %s", uv_strerror(status));
        return;
    }
    dn_conn *c;
    if (dn__conn_new(h, false, &c))
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        dn__conn_fail(c, DN_EIO);
        return;
    }
    if (h->closing || h->nconns > h->cfg.max_conns) {
        DN_WARN("host", "connection limit (%u) reached: refusing inbound connection",
                h->cfg.max_conns);
        dn__conn_fail(c, DN_ELIMIT);
        return;
    }
    dn__conn_start_inbound(c);
}

int dn_host_listen(dn_host *h, const dn_multiaddr *ma)
{
    if (h->nlisteners == DN_HOST_MAX_LISTENERS)
        return DN_ELIMIT;
    struct sockaddr_storage ss;
    int rc = sockaddr_from_multiaddr(ma, &ss, NULL, NULL);
    if (rc)
        return rc;
    dn_listener *l = &h->listeners[h->nlisteners];
    memset(l, 0, sizeof *l);
    l->host = h;
    uv_tcp_init(h->loop, &l->tcp);
    l->tcp.data = l;
    unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, flags);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
    if (!rc) {
        struct sockaddr_storage bound;
        int len = sizeof bound;
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
        if (!rc)
            rc = multiaddr_from_sockaddr((struct sockaddr *)&bound, &l->addr);
    }
    if (rc) {
        uv_close((uv_handle_t *)&l->tcp, NULL);
        /* The slot is reused only after the close completes: run the loop
         * once so the handle is released before we return. */
        uv_run(h->loop, UV_RUN_NOWAIT);
        return rc;
    }
    l->active = true;
    h->nlisteners++;
    if (h->nconns)
        dn_host_identify_push(h);
    return 0;
}

size_t dn_host_listen_addrs(const dn_host *h, dn_multiaddr *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nlisteners && n < max; i++)
        if (h->listeners[i].active)
            out[n++] = h->listeners[i].addr;
    return n;
}

/* ---- dialing ---- */

typedef struct reuse_call {
    uv_timer_t timer;
    dn_host *h;
    dn_conn *c;
    dn_dial_cb cb;
    void *arg;
} reuse_call;

static void reuse_closed(uv_handle_t *t) { free(t->data); }

static void reuse_fire(uv_timer_t *t)
{
    reuse_call *r = t->data;
    /* The connection may have closed meanwhile: check it is still listed. */
    dn_conn *c = r->h->conns;
    while (c && c != r->c)
        c = c->next;
    if (c && c->phase == PH_OPEN && !c->failed && !c->close_after_flush)
        r->cb(r->h, c, 0, r->arg);
    else
        r->cb(r->h, NULL, DN_ECLOSED, r->arg);
    uv_close((uv_handle_t *)&r->timer, reuse_closed);
}

int dn_host_dial(dn_host *h, const dn_multiaddr *ma, dn_dial_cb cb, void *arg)
{
    if (h->closing)
        return DN_ECLOSED;
    struct sockaddr_storage ss;
    dn_peerid peer;
    bool have_peer;
    int rc = sockaddr_from_multiaddr(ma, &ss, &peer, &have_peer);
    if (rc)
        return rc;
    if (have_peer) {
        if (dn_peerid_equal(&peer, &h->self))
            return DN_EPEERID;
        for (dn_conn *c = h->conns; c; c = c->next) {
            if (c->failed || c->close_after_flush || !dn_peerid_equal(&c->remote, &peer))
                continue;
            if (c->phase == PH_OPEN) {
                /* Reuse: answer on the next loop turn, never re-entrantly. */
                reuse_call *r = calloc(1, sizeof *r);
                if (!r)
                    return DN_ENOMEM;
                *r = (reuse_call){.h = h, .c = c, .cb = cb, .arg = arg};
                uv_timer_init(h->loop, &r->timer);
                r->timer.data = r;
                uv_timer_start(&r->timer, reuse_fire, 0, 0);
                return 0;
            }
        }
    }
    if (h->nconns >= h->cfg.max_conns)
        return DN_ELIMIT;
    return dn__conn_dial(h, (struct sockaddr *)&ss, have_peer ? &peer : NULL, cb, arg);
}

void dn__host_conn_opened(dn_host *h, dn_conn *c)
{
    dn_peer_info *p = dn__peerstore_get(&h->peers, &c->remote, true);
    if (p) {
        p->connections++;
        if (c->remote_key)
            dn__peer_set_key(p, c->remote_key);
    }
    c->opened_event = true;
    dn__host_emit(h, c, DN_CONN_EV_OPENED, 0);
    dn__conn_notify_waiters(c, 0);
    if (!c->failed)
        dn__identify_start(h, c);
}

const dn_peerid *dn_conn_remote_peer(const dn_conn *c) { return &c->remote; }
const dn_multiaddr *dn_conn_remote_addr(const dn_conn *c) { return &c->remote_addr; }
bool dn_conn_is_outbound(const dn_conn *c) { return c->outbound; }

/* ---- shutdown ---- */

static void host_maybe_done(dn_host *h)
{
    if (!h->closing || h->pending_closes > 0 || h->conns)
        return;
    void (*cb)(void *) = h->close_cb;
    void *arg = h->close_arg;
    for (size_t i = 0; i < h->nhandlers; i++)
        free(h->handlers[i].protocol);
    dn__peerstore_free(&h->peers);
    dn_buf_free(&h->record_addrs);
    dn_buf_free(&h->record);
    dn_noise_static_wipe(&h->noise_static);
    sodium_memzero(h->psk, sizeof h->psk);
    free(h);
    if (cb)
        cb(arg);
}

void dn__host_conn_released(dn_host *h, dn_conn *c)
{
    if (c->opened_event) {
        dn_peer_info *p = dn__peerstore_get(&h->peers, &c->remote, false);
        if (p && p->connections)
            p->connections--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    /* It may still be on the dirty list (marked before failing). */
    for (dn_conn **pp = &h->dirty_head; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    }
    host_maybe_done(h);
}

static void on_listener_closed(uv_handle_t *handle)
{
    dn_listener *l = handle->data;
    dn_host *host = l->host;
    host->pending_closes--;
    host_maybe_done(host);
}

static void on_flusher_closed(uv_handle_t *handle)
{
    dn_host *h = handle->data;
    h->pending_closes--;
    host_maybe_done(h);
}

void dn_host_close(dn_host *h, void (*cb)(void *arg), void *arg)
{
    if (h->closing)
        return;
    h->closing = true;
    h->close_cb = cb;
    h->close_arg = arg;
    for (size_t i = 0; i < h->nlisteners; i++) {
        if (h->listeners[i].active) {
            h->listeners[i].active = false;
            h->pending_closes++;
            uv_close((uv_handle_t *)&h->listeners[i].tcp, on_listener_closed);
        }
    }
    h->pending_closes += 2;
    uv_close((uv_handle_t *)&h->flusher, on_flusher_closed);
    uv_close((uv_handle_t *)&h->kick, on_flusher_closed);
    for (dn_conn *c = h->conns; c; c = c->next) {
        if (c->phase == PH_OPEN && !c->failed)
            dn__conn_goaway_now(c); /* best effort: tell the peer, then close */
        dn__conn_fail(c, DN_ECLOSED);
    }
}
