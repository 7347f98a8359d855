/* The host: listeners, dialing, connection reuse, protocol handlers and the
 * once-per-loop-turn write flush. */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/resource.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "host/host_internal.h"

static void host_maybe_done(dn_host *h);

/* Writes queued anywhere during this loop turn go out in one batch per
 * connection, just before libuv blocks for I/O. */
static void on_kick(uv_idle_t *idle) { (void)idle; }

static void accept_one(dn_listener *l);

static void on_prepare(uv_prepare_t *p)
{
    dn_host *h = p->data;
    h->turn++;
    /* Connections that read their share last turn read again. */
    dn_conn *y = h->yield_head;
    h->yield_head = NULL;
    while (y) {
        dn_conn *next = y->yield_next;
        y->yield_next = NULL;
        dn__conn_end_yield(y);
        y = next;
    }
    /* A new turn: listeners that paused take their waiting connection,
     * which makes libuv poll them again. */
    for (dn_listener *l = h->listeners; l; l = l->next) {
        l->accepted = 0;
        if (l->paused && l->active) {
            l->paused = false;
            accept_one(l);
        }
    }
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

void dn_host_config_init(dn_host_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
}

/* Connections cost one descriptor each: never promise more than the
 * process may open (with room for listeners, files and the API). */
static uint32_t fd_bounded(uint32_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return want;
    uint64_t room = rl.rlim_cur > 128 ? rl.rlim_cur - 64 : rl.rlim_cur / 2;
    if (room < want) {
        DN_WARN("host", "max connections lowered from %u to %llu by the file descriptor "
                        "limit (%llu; raise it with ulimit -n)",
                want, (unsigned long long)room, (unsigned long long)rl.rlim_cur);
        return (uint32_t)room;
    }
    return want;
}

#define DEFAULT(field, value)                                                                  \
    do {                                                                                       \
        if (!h->cfg.field)                                                                     \
            h->cfg.field = (value);                                                            \
    } while (0)

int dn_host_new(uv_loop_t *loop, const dn_host_config *cfg, dn_host **out)
{
    if (!loop || !cfg || !cfg->identity || cfg->size == 0)
        return DN_EINVAL;
    dn_host *h = calloc(1, sizeof *h);
    if (!h)
        return DN_ENOMEM;
    h->loop = loop;
    /* A caller built against an older header passes a shorter struct:
     * the fields it does not know stay zero, i.e. default. */
    memcpy(&h->cfg, cfg, cfg->size < sizeof h->cfg ? cfg->size : sizeof h->cfg);
    h->cfg.size = sizeof h->cfg;
    h->identity = cfg->identity;
    DEFAULT(max_conns, 4096);
    DEFAULT(max_streams, 1024);
    DEFAULT(handshake_timeout_ms, 10000);
    DEFAULT(dial_timeout_ms, 10000);
    DEFAULT(max_handshakes, 256);
    DEFAULT(max_handshakes_per_ip, 64);
    DEFAULT(max_conns_per_peer, 8);
    DEFAULT(max_streams_per_peer, 4096);
    DEFAULT(max_negotiating_streams, 256);
    DEFAULT(max_negotiating_total, 8192);
    DEFAULT(stream_negotiation_timeout_ms, 10000);
    DEFAULT(conn_queue_budget, 8u << 20);
    DEFAULT(node_queue_budget, 64u << 20);
    DEFAULT(node_buffer_budget, 64u << 20);
    h->cfg.max_conns = fd_bounded(h->cfg.max_conns);
    snprintf(h->agent_version, sizeof h->agent_version, "%s",
             h->cfg.agent_version ? h->cfg.agent_version : "dmsnet/" DN_VERSION);
    h->cfg.agent_version = h->agent_version;
    if (h->cfg.psk) {
        memcpy(h->psk, h->cfg.psk, DN_PSK_LEN);
        h->use_pnet = true;
        h->cfg.psk = h->psk;
    }
    /* Everything that can fail comes before the first libuv handle, so a
     * failure is reported here and leaves nothing behind. */
    int rc = dn_peerid_from_pubkey(dn_privkey_public(cfg->identity), &h->self);
    if (!rc)
        rc = dn_noise_static_init(&h->noise_static, h->identity);
    if (rc) {
        sodium_memzero(h->psk, sizeof h->psk);
        free(h);
        return rc;
    }
    dn__peerstore_init(&h->peers);
    dn_verify_cache_init(&h->vcache);
    uv_prepare_init(loop, &h->flusher);
    h->flusher.data = h;
    uv_prepare_start(&h->flusher, on_prepare);
    uv_unref((uv_handle_t *)&h->flusher); /* does not keep the loop alive */
    uv_idle_init(loop, &h->kick);
    h->kick.data = h;
    uv_unref((uv_handle_t *)&h->kick);
    uv_timer_init(loop, &h->defer_timer);
    h->defer_timer.data = h;
    uv_timer_init(loop, &h->neg_timer);
    h->neg_timer.data = h;
    uv_timer_init(loop, &h->pressure_timer);
    h->pressure_timer.data = h;
    uv_timer_init(loop, &h->trim_timer);
    h->trim_timer.data = h;
    uv_unref((uv_handle_t *)&h->trim_timer);
    uv_unref((uv_handle_t *)&h->neg_timer); /* streams keep the loop alive, not their deadlines */
    *out = h;
    return 0;
}

uv_loop_t *dn_host_loop(dn_host *h) { return h->loop; }
const dn_peerid *dn_host_peerid(const dn_host *h) { return &h->self; }
const dn_privkey *dn_host_identity(const dn_host *h) { return h->identity; }
const char *dn_host_agent_version(const dn_host *h) { return h->agent_version; }
uint64_t dn__host_now_ms(const dn_host *h) { return uv_now(h->loop); }

bool dn__host_under_pressure(const dn_host *h)
{
    return h->conn_mem + h->held >= h->cfg.node_buffer_budget;
}

/* After an attack of many connections or streams, glibc keeps the freed
 * memory in its arenas: resident memory would stay at the peak. One trim
 * a second after a burst of releases hands it back (it walks the heap, so
 * not once per close). */
static void on_trim(uv_timer_t *t)
{
    (void)t;
    malloc_trim(0);
}

/* While connections stop reading for pressure, look at them again every
 * 50 ms: the pressure may end on other connections, not theirs. */
static void on_pressure_check(uv_timer_t *t)
{
    dn_host *h = t->data;
    for (dn_conn *c = h->conns; c; c = c->next)
        if (c->read_stopped)
            dn__conn_check_backlog(c);
    if (!h->nread_stopped)
        uv_timer_stop(&h->pressure_timer);
}

void dn__host_reading_stopped(dn_host *h)
{
    if (!uv_is_active((uv_handle_t *)&h->pressure_timer) && !h->handles_closing)
        uv_timer_start(&h->pressure_timer, on_pressure_check, 50, 50);
}

void dn__host_note_release(dn_host *h)
{
    if (!h->handles_closing && !uv_is_active((uv_handle_t *)&h->trim_timer))
        uv_timer_start(&h->trim_timer, on_trim, 1000, 0);
}

int dn_host_add_observer(dn_host *h, dn_conn_event_cb cb, void *arg)
{
    if (!cb)
        return DN_EINVAL;
    host_observer *o = realloc(h->observers, (h->nobservers + 1) * sizeof *o);
    if (!o)
        return DN_ENOMEM;
    h->observers = o;
    o[h->nobservers++] = (host_observer){cb, arg};
    return 0;
}

void dn_host_remove_observer(dn_host *h, dn_conn_event_cb cb, void *arg)
{
    for (size_t i = 0; i < h->nobservers; i++) {
        if (h->observers[i].cb == cb && h->observers[i].arg == arg) {
            memmove(&h->observers[i], &h->observers[i + 1],
                    (h->nobservers - i - 1) * sizeof h->observers[0]);
            h->nobservers--;
            return;
        }
    }
}

int dn_host_add_cleanup(dn_host *h, void (*fn)(void *arg), void *arg)
{
    if (!fn)
        return DN_EINVAL;
    host_cleanup *c = realloc(h->cleanups, (h->ncleanups + 1) * sizeof *c);
    if (!c)
        return DN_ENOMEM;
    h->cleanups = c;
    c[h->ncleanups++] = (host_cleanup){fn, arg};
    return 0;
}

/* js-libp2p's agent is "libp2p/<version> ..." since 2.0, "js-libp2p/..."
 * before. */
static bool agent_is_js_libp2p(const char *agent)
{
    return strncmp(agent, "libp2p/", 7) == 0 || strncmp(agent, "js-libp2p", 9) == 0;
}

/* pnet connections start with small receive windows (see
 * DN_CONN_PNET_FIRST_MAX_WINDOW); a peer identified as anything but
 * js-libp2p gets the usual ones. */
static void lift_pnet_window(dn_host *h, dn_conn *c)
{
    if (!h->use_pnet || !c->yamux || !c->peer || agent_is_js_libp2p(c->peer->agent_version))
        return;
    dn_yamux_set_max_window(c->yamux, DN__SESSION_MAX_WINDOW);
}

void dn_host_emit(dn_host *h, dn_conn *c, dn_conn_event ev, int status)
{
    if (ev == DN_CONN_EV_IDENTIFIED && c)
        lift_pnet_window(h, c);
    for (size_t i = 0; i < h->nobservers; i++)
        h->observers[i].cb(h, c, ev, status, h->observers[i].arg);
}

static bool conn_usable(const dn_conn *c)
{
    return c->phase == PH_OPEN && !c->failed && !c->close_after_flush;
}

void dn_host_foreach_conn(dn_host *h, void (*fn)(dn_conn *c, void *arg), void *arg)
{
    for (dn_conn *c = h->conns, *next; c; c = next) {
        next = c->next; /* fn may close c (it is unlinked only later) */
        if (conn_usable(c))
            fn(c, arg);
    }
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
    h->handlers[h->nhandlers] = (dn_handler_entry){.protocol = p, .fn = fn, .arg = arg};
    h->protocol_list[h->nhandlers] = p;
    h->nhandlers++;
    dn_host_emit(h, NULL, DN_HOST_EV_PROTOCOLS_CHANGED, 0);
    return 0;
}

static dn_handler_entry *find_handler(dn_host *h, const char *protocol)
{
    for (size_t i = 0; i < h->nhandlers; i++)
        if (strcmp(h->handlers[i].protocol, protocol) == 0)
            return &h->handlers[i];
    return NULL;
}

int dn_host_remove_handler(dn_host *h, const char *protocol)
{
    dn_handler_entry *e = protocol ? find_handler(h, protocol) : NULL;
    if (!e)
        return DN_ENOTFOUND;
    /* Streams still negotiating hold pointers into protocol_list (their
     * mss listener): keep the name alive by leaving the entry in place
     * with no handler until the host is freed. Negotiation then agrees on
     * it and the stream is reset (the opener sees DN_ERESET). */
    e->fn = NULL;
    e->arg = NULL;
    dn_host_emit(h, NULL, DN_HOST_EV_PROTOCOLS_CHANGED, 0);
    return 0;
}

int dn_host_set_protocol_limit(dn_host *h, const char *protocol, uint32_t max_inbound_streams)
{
    dn_handler_entry *e = protocol ? find_handler(h, protocol) : NULL;
    if (!e)
        return DN_ENOTFOUND;
    e->max_streams = max_inbound_streams;
    return 0;
}

size_t dn_host_protocols(const dn_host *h, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nhandlers; i++) {
        if (!h->handlers[i].fn)
            continue; /* removed */
        if (n < max)
            out[n] = h->handlers[i].protocol;
        n++;
    }
    return n;
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

/* Whether two socket addresses (/ip4|ip6/<ip>/tcp/<port>) share the IP. */
static bool same_ip(const dn_multiaddr *a, const dn_multiaddr *b)
{
    size_t oa = 0, ob = 0;
    dn_ma_component ca, cb;
    if (dn_multiaddr_next(a, &oa, &ca) != 1 || dn_multiaddr_next(b, &ob, &cb) != 1)
        return false;
    return ca.code == cb.code && ca.value_len == cb.value_len &&
           memcmp(ca.value, cb.value, ca.value_len) == 0;
}

/* The inbound connection still upgrading that has gone longest without
 * sending us anything, among those from ip (NULL: from anywhere). A peer
 * mid-handshake answers within round trips; one that stalls is the first
 * to make room, so idle connections cannot hold every slot. */
static dn_conn *stalest_handshake(dn_host *h, const dn_multiaddr *ip_of)
{
    dn_conn *worst = NULL;
    for (dn_conn *c = h->hs_head; c; c = c->hs_next) {
        if (ip_of && !same_ip(&c->remote_addr, ip_of))
            continue;
        /* The list is in order of acceptance: the first of equally stale
         * ones is the oldest. */
        if (!worst || c->last_progress_ms < worst->last_progress_ms)
            worst = c;
    }
    return worst;
}

static size_t handshakes_from(dn_host *h, const dn_multiaddr *ip_of)
{
    size_t n = 0;
    for (dn_conn *c = h->hs_head; c; c = c->hs_next)
        if (same_ip(&c->remote_addr, ip_of))
            n++;
    return n;
}

void dn__host_handshake_end(dn_host *h, dn_conn *c)
{
    if (!c->counted_handshake)
        return;
    c->counted_handshake = false;
    if (c->hs_prev)
        c->hs_prev->hs_next = c->hs_next;
    else
        h->hs_head = c->hs_next;
    if (c->hs_next)
        c->hs_next->hs_prev = c->hs_prev;
    else
        h->hs_tail = c->hs_prev;
    c->hs_prev = c->hs_next = NULL;
    h->nhandshakes--;
}

static void evict(dn_conn *c, const char *why)
{
    char name[DN_MULTIADDR_STR_MAX];
    if (dn_multiaddr_to_string(&c->remote_addr, name, sizeof name) < 0)
        strcpy(name, "(unknown)");
    DN_LOG_LIMITED(DN_LOG_INFO, "host", "dropping stalled handshake from %s: %s", name, why);
    dn__conn_fail(c, DN_ELIMIT);
}

static void on_connection(uv_stream_t *server, int status)
{
    dn_listener *l = server->data;
    if (status < 0) {
        DN_LOG_LIMITED(DN_LOG_WARN, "host", "accept failed: %s", uv_strerror(status));
        return;
    }
    if (l->accepted >= DN_ACCEPTS_PER_TURN) {
        /* Not calling uv_accept makes libuv stop polling this listener
         * until we do: on_prepare, before the next poll, so the sockets
         * already open get their turn first. */
        l->paused = true;
        return;
    }
    accept_one(l);
}

static void accept_one(dn_listener *l)
{
    uv_stream_t *server = (uv_stream_t *)&l->tcp;
    dn_host *h = l->host;
    l->accepted++;
    dn_conn *c;
    if (dn__conn_new(h, false, &c)) {
        /* Take the pending connection off the backlog anyway, or libuv
         * reports it again and again. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (t && uv_tcp_init(h->loop, t) == 0) {
            if (uv_accept(server, (uv_stream_t *)t) == 0)
                uv_close((uv_handle_t *)t, (uv_close_cb)free);
            else
                uv_close((uv_handle_t *)t, (uv_close_cb)free);
        } else {
            free(t);
        }
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        dn__conn_fail(c, DN_EIO);
        return;
    }
    if (h->closing) {
        dn__conn_fail(c, DN_ECLOSED);
        return;
    }
    dn__conn_remote_from_socket(c);
    c->last_progress_ms = dn__host_now_ms(h);
    /* Failed connections are on their way out (closed this loop turn):
     * they hold no slot. At the limit a stalled handshake makes room
     * before a newcomer is refused. */
    if (h->nconns - h->nfailing > h->cfg.max_conns) {
        dn_conn *old = stalest_handshake(h, NULL);
        if (old && old != c) {
            evict(old, "connection limit reached");
        } else {
            DN_LOG_LIMITED(DN_LOG_WARN, "host",
                           "connection limit (%u) reached: refusing inbound connection",
                           h->cfg.max_conns);
            dn__conn_fail(c, DN_ELIMIT);
            return;
        }
    }
    /* Budgets for connections that are not authenticated yet: in total and
     * per source address. At the limit the stalest one makes room. */
    if (handshakes_from(h, &c->remote_addr) >= h->cfg.max_handshakes_per_ip) {
        dn_conn *old = stalest_handshake(h, &c->remote_addr);
        if (old)
            evict(old, "too many handshakes from one address");
    }
    if (h->nhandshakes >= h->cfg.max_handshakes) {
        dn_conn *old = stalest_handshake(h, NULL);
        if (old)
            evict(old, "too many handshakes at once");
    }
    c->counted_handshake = true;
    c->hs_prev = h->hs_tail;
    if (h->hs_tail)
        h->hs_tail->hs_next = c;
    else
        h->hs_head = c;
    h->hs_tail = c;
    h->nhandshakes++;
    dn__conn_start_inbound(c);
}

/* ---- port reuse ----
 *
 * Listeners and dial sockets share their port through SO_REUSEPORT (Linux:
 * sockets of one user may bind the same address and port when all of them
 * set it), as go-libp2p's TCP transport does. A dial bound to our listen
 * port shows the remote, and through a port-preserving NAT everyone, the
 * port we can be reached on; identify's observed addresses then mean
 * something (node/natobs.h). */

static socklen_t sockaddr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int set_reuse(int fd, int family)
{
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
        return -errno;
    /* Like our IPv6 listeners (UV_TCP_IPV6ONLY): no IPv4 through [::]. */
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one))
        return -errno;
    return 0;
}

/* With SO_REUSEPORT a listener could bind a port another one (of this host,
 * another host or another process of the same user) listens on already,
 * and the two would share its connections. A plain socket bound first
 * tells: with SO_REUSEADDR it gets past connections dialed from that port
 * and TIME_WAIT, not past a listener. */
static int port_taken(const struct sockaddr_storage *ss)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* the real bind will say */
    int one = 1, taken = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, sockaddr_len((const struct sockaddr *)ss)) != 0 &&
        errno == EADDRINUSE)
        taken = 1;
    close(fd);
    return taken;
}

static bool sockaddr_unspecified(const struct sockaddr_storage *ss)
{
    static const uint8_t zero[16];
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == 0;
    return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, zero, 16) == 0;
}

static bool sockaddr_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* The source address the kernel would pick for dst (its route's preferred
 * source): connecting a UDP socket looks the route up and sends nothing. */
static bool route_source(const struct sockaddr *dst, struct sockaddr_storage *src)
{
    int fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    socklen_t len = sizeof *src;
    bool ok = connect(fd, dst, sockaddr_len(dst)) == 0 &&
              getsockname(fd, (struct sockaddr *)src, &len) == 0;
    close(fd);
    return ok;
}

int dn__host_reuse_socket(dn_host *h, const struct sockaddr *dst)
{
    if (h->cfg.no_port_reuse)
        return DN_ENOTFOUND;
    /* Reuse changes the source port only, never the source IP the kernel
     * would choose (go-libp2p's reuse also asks the routing table): a
     * listener on exactly that IP, else one on the unspecified address
     * (the kernel then picks by route as usual). A listener on another IP
     * is no use: the remote may have no route back to it. */
    struct sockaddr_storage src;
    bool have_src = route_source(dst, &src);
    struct sockaddr_storage pick;
    int best = 0;
    for (const dn_listener *l = h->listeners; l; l = l->next) {
        struct sockaddr_storage b;
        int len = sizeof b;
        if (!l->active || uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&b, &len) != 0 ||
            b.ss_family != dst->sa_family)
            continue;
        int score = have_src && sockaddr_same_ip(&b, &src) ? 2 : sockaddr_unspecified(&b) ? 1 : 0;
        if (score > best) {
            best = score;
            pick = b;
        }
    }
    if (!best)
        return DN_ENOTFOUND;
    int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = set_reuse(fd, dst->sa_family);
    if (!rc && bind(fd, (struct sockaddr *)&pick, sockaddr_len((struct sockaddr *)&pick)) != 0)
        rc = -errno;
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

static void on_listener_freed(uv_handle_t *handle)
{
    dn_listener *l = handle->data;
    dn_host *h = l->host;
    free(l);
    h->pending_closes--;
    host_maybe_done(h);
}

int dn_host_listen(dn_host *h, const dn_multiaddr *ma)
{
    if (h->closing)
        return DN_ECLOSED;
    if (h->nlisteners == DN_HOST_MAX_LISTENERS)
        return DN_ELIMIT;
    struct sockaddr_storage ss;
    int rc = sockaddr_from_multiaddr(ma, &ss, NULL, NULL);
    if (rc)
        return rc;
    dn_listener *l = calloc(1, sizeof *l);
    if (!l)
        return DN_ENOMEM;
    l->host = h;
    bool reuse = !h->cfg.no_port_reuse;
    if (reuse && port_taken(&ss)) {
        free(l);
        return UV_EADDRINUSE;
    }
    /* The socket exists before the bind so SO_REUSEPORT can be set (libuv
     * 1.44 has no UV_TCP_REUSEPORT). */
    if ((rc = uv_tcp_init_ex(h->loop, &l->tcp, ss.ss_family))) {
        free(l);
        return rc;
    }
    l->tcp.data = l;
    unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    uv_os_fd_t fd;
    if (reuse && (rc = uv_fileno((uv_handle_t *)&l->tcp, &fd)) == 0)
        rc = set_reuse(fd, ss.ss_family);
    if (!rc)
        rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, flags);
    if (!rc)
        /* A deep backlog: under a flood of connections a good peer's SYN
         * waits in it instead of being dropped (a 1 s retransmit). The
         * kernel caps it at net.core.somaxconn. */
        rc = uv_listen((uv_stream_t *)&l->tcp, 4096, on_connection);
    if (!rc) {
        struct sockaddr_storage bound;
        int len = sizeof bound;
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
        if (!rc)
            rc = multiaddr_from_sockaddr((struct sockaddr *)&bound, &l->addr);
    }
    if (rc) {
        /* Freed in its close callback; the host waits for it on close. */
        h->pending_closes++;
        uv_close((uv_handle_t *)&l->tcp, on_listener_freed);
        return rc;
    }
    l->active = true;
    l->next = h->listeners;
    h->listeners = l;
    h->nlisteners++;
    dn_host_emit(h, NULL, DN_HOST_EV_ADDRS_CHANGED, 0);
    return 0;
}

size_t dn_host_listen_addrs(const dn_host *h, dn_multiaddr *out, size_t max)
{
    /* The list is newest first; report in the order they were added. */
    const dn_listener *ls[DN_HOST_MAX_LISTENERS];
    size_t n = 0;
    for (const dn_listener *l = h->listeners; l && n < DN_HOST_MAX_LISTENERS; l = l->next)
        if (l->active)
            ls[n++] = l;
    size_t k = 0;
    for (size_t i = n; i > 0 && k < max; i--)
        out[k++] = ls[i - 1]->addr;
    return n;
}

/* Our listen addresses as others can use them: an unspecified bind
 * address (0.0.0.0, ::) becomes one address per local interface. */
size_t dn_host_dialable_addrs(const dn_host *h, dn_multiaddr *out, size_t max)
{
    dn_multiaddr bound[DN_HOST_MAX_LISTENERS];
    size_t nb = dn_host_listen_addrs(h, bound, DN_HOST_MAX_LISTENERS), n = 0;
    if (nb > DN_HOST_MAX_LISTENERS)
        nb = DN_HOST_MAX_LISTENERS;
    uv_interface_address_t *ifs = NULL;
    int nifs = -1; /* listed on first need: it costs a netlink dump */
    for (size_t i = 0; i < nb && n < max; i++) {
        size_t off = 0;
        dn_ma_component ip, port;
        if (dn_multiaddr_next(&bound[i], &off, &ip) != 1 ||
            dn_multiaddr_next(&bound[i], &off, &port) != 1)
            continue;
        static const uint8_t zero[16];
        bool unspecified = memcmp(ip.value, zero, ip.value_len) == 0;
        if (!unspecified) {
            out[n++] = bound[i];
            continue;
        }
        if (nifs < 0 && uv_interface_addresses(&ifs, &nifs) != 0)
            nifs = 0;
        for (int k = 0; k < nifs && n < max; k++) {
            const struct sockaddr *sa = (const struct sockaddr *)&ifs[k].address;
            dn_multiaddr *m = &out[n];
            m->len = 0;
            if (ip.code == DN_MA_IP4 && sa->sa_family == AF_INET)
                dn_multiaddr_append(m, DN_MA_IP4,
                                    (const uint8_t *)&ifs[k].address.address4.sin_addr, 4);
            else if (ip.code == DN_MA_IP6 && sa->sa_family == AF_INET6 &&
                     ifs[k].address.address6.sin6_scope_id == 0)
                dn_multiaddr_append(m, DN_MA_IP6,
                                    (const uint8_t *)&ifs[k].address.address6.sin6_addr, 16);
            else
                continue;
            dn_multiaddr_append(m, DN_MA_TCP, port.value, port.value_len);
            n++;
        }
    }
    if (ifs)
        uv_free_interface_addresses(ifs, nifs);
    return n;
}

void dn_host_get_stats(const dn_host *h, dn_host_stats *st)
{
    memset(st, 0, sizeof *st);
    st->bytes_in = h->bytes_in;
    st->bytes_out = h->bytes_out;
    st->conns = h->nconns;
    st->handshakes = h->nhandshakes;
}

/* ---- dialing ---- */

static void on_defer(uv_timer_t *t)
{
    dn_host *h = t->data;
    /* Take the whole queue: callbacks may queue more (next turn). */
    deferred_dial *list = h->defer_head;
    h->defer_head = h->defer_tail = NULL;
    while (list) {
        deferred_dial *d = list;
        list = d->next;
        dn_conn *c = d->conn;
        int status = d->status;
        if (c && !conn_usable(c)) {
            c = NULL;
            status = DN_ECLOSED;
        }
        d->cb(h, c, status, d->arg);
        free(d);
    }
    host_maybe_done(h);
}

/* Deliver a dial result on a later loop turn. */
static int defer_dial(dn_host *h, dn_conn *c, int status, dn_dial_cb cb, void *arg)
{
    deferred_dial *d = calloc(1, sizeof *d);
    if (!d)
        return DN_ENOMEM;
    *d = (deferred_dial){.cb = cb, .arg = arg, .conn = c, .status = status};
    if (h->defer_tail)
        h->defer_tail->next = d;
    else
        h->defer_head = d;
    h->defer_tail = d;
    if (!uv_is_active((uv_handle_t *)&h->defer_timer))
        uv_timer_start(&h->defer_timer, on_defer, 0, 0);
    return 0;
}

/* An open or still-upgrading outbound connection to peer, to reuse or join. */
static dn_conn *find_conn_to(dn_host *h, const dn_peerid *peer, bool *open)
{
    dn_conn *joinable = NULL;
    for (dn_conn *c = h->conns; c; c = c->next) {
        if (c->failed || c->close_after_flush)
            continue;
        if (c->phase == PH_OPEN && dn_peerid_equal(&c->remote, peer)) {
            *open = true;
            return c;
        }
        if (c->phase != PH_OPEN && c->outbound && c->have_expected &&
            dn_peerid_equal(&c->expected, peer))
            joinable = c;
    }
    *open = false;
    return joinable;
}

static int join_dial(dn_conn *c, dn_dial_cb cb, void *arg)
{
    dial_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return DN_ENOMEM;
    w->cb = cb;
    w->arg = arg;
    w->next = c->waiters;
    c->waiters = w;
    return 0;
}

int dn_host_dial(dn_host *h, const dn_multiaddr *ma, dn_dial_cb cb, void *arg)
{
    if (h->closing)
        return DN_ECLOSED;
    if (!cb)
        return DN_EINVAL;
    struct sockaddr_storage ss;
    dn_peerid peer;
    bool have_peer;
    int rc = sockaddr_from_multiaddr(ma, &ss, &peer, &have_peer);
    if (rc)
        return rc;
    if (have_peer) {
        if (dn_peerid_equal(&peer, &h->self))
            return DN_EPEERID;
        bool open;
        dn_conn *c = find_conn_to(h, &peer, &open);
        if (c && open)
            return defer_dial(h, c, 0, cb, arg);
        if (c)
            return join_dial(c, cb, arg);
    }
    if (h->nconns - h->nfailing >= h->cfg.max_conns)
        return DN_ELIMIT;
    return dn__conn_dial(h, (struct sockaddr *)&ss, have_peer ? &peer : NULL, cb, arg);
}

/* Dial by peer id: each known address in turn until one connects. */
typedef struct peer_dial {
    dn_host *h;
    dn_peerid peer;
    dn_multiaddr addrs[DN_PEER_MAX_ADDRS];
    size_t naddrs, next;
    int last_error;
    dn_dial_cb cb;
    void *arg;
} peer_dial;

static void peer_dial_step(peer_dial *pd);
static void route_found(dn_host *h, const dn_peerid *peer, int status, void *ctx);

static void peer_dial_done(dn_host *h, dn_conn *c, int status, void *arg)
{
    peer_dial *pd = arg;
    if (status == 0) {
        pd->cb(h, c, 0, pd->arg);
        free(pd);
        return;
    }
    pd->last_error = status;
    peer_dial_step(pd);
}

static void peer_dial_step(peer_dial *pd)
{
    while (pd->next < pd->naddrs) {
        const dn_multiaddr *ma = &pd->addrs[pd->next++];
        if (dn_host_dial(pd->h, ma, peer_dial_done, pd) == 0)
            return;
    }
    /* Out of addresses: report the last failure (or that none was known). */
    int status = pd->last_error ? pd->last_error : DN_ENOTFOUND;
    if (defer_dial(pd->h, NULL, status, pd->cb, pd->arg) != 0)
        pd->cb(pd->h, NULL, status, pd->arg); /* out of memory: report now rather than never */
    free(pd);
}

/* Dial the addresses the peerstore knows; when there are none, ask the
 * router (if any and if allowed), else DN_ENOTFOUND. */
static int dial_known(dn_host *h, const dn_peerid *peer, bool route, dn_dial_cb cb, void *arg)
{
    bool open;
    dn_conn *c = find_conn_to(h, peer, &open);
    if (c && open)
        return defer_dial(h, c, 0, cb, arg);
    if (c)
        return join_dial(c, cb, arg);
    const dn_peer_info *p = dn__peerstore_get(&h->peers, peer, false);
    peer_dial *pd = calloc(1, sizeof *pd);
    if (!pd)
        return DN_ENOMEM;
    pd->h = h;
    pd->peer = *peer;
    pd->cb = cb;
    pd->arg = arg;
    for (size_t i = 0; p && i < p->naddrs && pd->naddrs < DN_PEER_MAX_ADDRS; i++) {
        dn_multiaddr *ma = &pd->addrs[pd->naddrs];
        struct sockaddr_storage ss;
        if (dn_peer_info_addr(p, i, ma) != 0 || sockaddr_from_multiaddr(ma, &ss, NULL, NULL))
            continue; /* not an address we can dial (yet) */
        if (dn_multiaddr_append(ma, DN_MA_P2P, peer->bytes, peer->len) == 0)
            pd->naddrs++;
    }
    if (pd->naddrs == 0) {
        free(pd);
        if (route && h->router) {
            route_wait *w = calloc(1, sizeof *w);
            if (!w)
                return DN_ENOMEM;
            *w = (route_wait){.h = h, .peer = *peer, .cb = cb, .arg = arg, .next = h->routing};
            if (h->routing)
                h->routing->prev = w;
            h->routing = w;
            h->router(h->router_arg, h, peer, route_found, w);
            return 0;
        }
        return defer_dial(h, NULL, DN_ENOTFOUND, cb, arg);
    }
    peer_dial_step(pd);
    return 0;
}

static void route_found(dn_host *h, const dn_peerid *peer, int status, void *ctx)
{
    route_wait *w = ctx;
    if (w->done) { /* answered at close; h may be going */
        free(w);
        return;
    }
    h = w->h;
    if (w->prev)
        w->prev->next = w->next;
    else
        h->routing = w->next;
    if (w->next)
        w->next->prev = w->prev;
    int rc = status;
    if (!rc && h->closing)
        rc = DN_ECLOSED;
    if (!rc)
        rc = dial_known(h, &w->peer, false, w->cb, w->arg);
    if (rc && defer_dial(h, NULL, rc, w->cb, w->arg) != 0)
        w->cb(h, NULL, rc, w->arg);
    free(w);
}

int dn_host_set_peer_router(dn_host *h, dn_peer_router_fn fn, void *arg)
{
    if (!h)
        return DN_EINVAL;
    h->router = fn;
    h->router_arg = arg;
    return 0;
}

int dn_host_dial_peer(dn_host *h, const dn_peerid *peer, dn_dial_cb cb, void *arg)
{
    if (h->closing)
        return DN_ECLOSED;
    if (!cb || !peer)
        return DN_EINVAL;
    if (dn_peerid_equal(peer, &h->self))
        return DN_EPEERID;
    return dial_known(h, peer, true, cb, arg);
}

int dn__host_conn_opened(dn_host *h, dn_conn *c)
{
    dn__host_handshake_end(h, c);
    dn_peer_info *p = dn__peerstore_get(&h->peers, &c->remote, true);
    if (p && p->connections >= h->cfg.max_conns_per_peer) {
        char name[16];
        DN_LOG_LIMITED(DN_LOG_INFO, "host", "refusing connection %s %s: %u already open",
                       c->outbound ? "to" : "from", dn_peerid_short(&c->remote, name),
                       p->connections);
        return DN_ELIMIT;
    }
    if (p) {
        p->connections++;
        p->last_seen_ms = dn__host_now_ms(h);
        if (c->remote_key)
            dn__peer_set_key(p, c->remote_key);
    }
    c->peer = p;
    c->opened_event = true;
    dn_host_emit(h, c, DN_CONN_EV_OPENED, 0);
    if (!c->failed)
        dn__conn_notify_waiters(c, 0);
    return 0;
}

dn_host *dn_conn_host(const dn_conn *c) { return c->host; }
const dn_peerid *dn_conn_remote_peer(const dn_conn *c) { return &c->remote; }
const dn_pubkey *dn_conn_remote_pubkey(const dn_conn *c) { return c->remote_key; }
const dn_multiaddr *dn_conn_remote_addr(const dn_conn *c) { return &c->remote_addr; }
const dn_multiaddr *dn_conn_local_addr(const dn_conn *c) { return &c->local_addr; }
uint64_t dn_conn_id(const dn_conn *c) { return c->id; }
bool dn_conn_is_outbound(const dn_conn *c) { return c->outbound; }

/* ---- the peerstore, as services write it ---- */

const dn_peer_info *dn_host_peer(const dn_host *h, const dn_peerid *id)
{
    return dn__peerstore_get((dn_peerstore *)&h->peers, id, false);
}

int dn_host_peer_update(dn_host *h, const dn_peerid *peer, const dn_peer_update *u)
{
    dn_peer_info *p = dn__peerstore_get(&h->peers, peer, true);
    if (!p)
        return DN_ENOMEM;
    int rc = 0;
    if (u->public_key && !p->public_key) {
        if (!dn_peerid_matches_pubkey(peer, u->public_key))
            return DN_EPEERID;
        if ((rc = dn__peer_set_key(p, u->public_key)))
            return rc;
    }
    if (u->set_protocols &&
        (rc = dn__peer_set_strings(&p->protocols, &p->nprotocols, u->protocols,
                                   u->nprotocols < DN_PEER_MAX_PROTOCOLS ? u->nprotocols
                                                                         : DN_PEER_MAX_PROTOCOLS)))
        return rc;
    if (u->set_addrs && (rc = dn__peer_set_addrs(p, u->addrs, u->naddrs)))
        return rc;
    if (u->observed_addr && (rc = dn__peer_set_observed(p, u->observed_addr)))
        return rc;
    if (u->agent_version && (rc = dn__peer_set_text(&p->agent_version, u->agent_version)))
        return rc;
    if (u->protocol_version &&
        (rc = dn__peer_set_text(&p->protocol_version, u->protocol_version)))
        return rc;
    if (u->identified)
        p->identified = true;
    if (u->latency_us)
        p->latency_us = u->latency_us > INT64_MAX ? INT64_MAX : (int64_t)u->latency_us;
    return 0;
}

/* ---- shutdown ---- */

static void host_free(dn_host *h)
{
    void (*cb)(void *) = h->close_cb;
    void *arg = h->close_arg;
    /* Services go first (last attached, first freed): they may still look
     * at the host's state. */
    for (size_t i = h->ncleanups; i > 0; i--)
        h->cleanups[i - 1].fn(h->cleanups[i - 1].arg);
    free(h->cleanups);
    free(h->observers);
    for (size_t i = 0; i < h->nhandlers; i++)
        free(h->handlers[i].protocol);
    dn__peerstore_free(&h->peers);
    dn_noise_static_wipe(&h->noise_static);
    sodium_memzero(h->psk, sizeof h->psk);
    free(h);
    if (cb)
        cb(arg);
}

static void on_host_handle_closed(uv_handle_t *handle)
{
    dn_host *h = handle->data;
    h->pending_closes--;
    host_maybe_done(h);
}

static void host_maybe_done(dn_host *h)
{
    if (!h->closing || h->conns || h->defer_head)
        return;
    if (!h->handles_closing) {
        /* Every connection is gone and every dial answered: now the
         * host's own handles can go. */
        h->handles_closing = true;
        h->pending_closes += 6;
        uv_close((uv_handle_t *)&h->pressure_timer, on_host_handle_closed);
        uv_close((uv_handle_t *)&h->trim_timer, on_host_handle_closed);
        uv_close((uv_handle_t *)&h->flusher, on_host_handle_closed);
        uv_close((uv_handle_t *)&h->kick, on_host_handle_closed);
        uv_close((uv_handle_t *)&h->defer_timer, on_host_handle_closed);
        uv_close((uv_handle_t *)&h->neg_timer, on_host_handle_closed);
        return;
    }
    if (h->pending_closes > 0)
        return;
    host_free(h);
}

void dn__host_conn_released(dn_host *h, dn_conn *c)
{
    dn__host_handshake_end(h, c);
    if (c->peer) {
        if (c->peer->connections)
            c->peer->connections--;
        if (c->peer->connections == 0)
            dn__peer_forget_session(c->peer);
        c->peer->last_seen_ms = dn__host_now_ms(h);
        c->peer = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    if (c->failed)
        h->nfailing--;
    dn__host_note_release(h);
    /* It may still be on the dirty list (marked before failing). */
    for (dn_conn **pp = &h->dirty_head; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == c) {
            *pp = c->dirty_next;
            break;
        }
    }
    /* Dial results queued for it will report DN_ECLOSED. */
    for (deferred_dial *d = h->defer_head; d; d = d->next) {
        if (d->conn == c) {
            d->conn = NULL;
            d->status = DN_ECLOSED;
        }
    }
    host_maybe_done(h);
}

void dn_host_close(dn_host *h, void (*cb)(void *arg), void *arg)
{
    if (h->closing)
        return;
    h->closing = true;
    h->close_cb = cb;
    h->close_arg = arg;
    for (dn_listener *l = h->listeners, *next; l; l = next) {
        next = l->next;
        l->active = false;
        h->pending_closes++;
        uv_close((uv_handle_t *)&l->tcp, on_listener_freed);
    }
    h->listeners = NULL;
    h->nlisteners = 0;
    /* Dials waiting for the router end now; its answer only frees them. */
    for (route_wait *w = h->routing, *next; w; w = next) {
        next = w->next;
        w->done = true;
        w->prev = w->next = NULL;
        if (defer_dial(h, NULL, DN_ECLOSED, w->cb, w->arg) != 0)
            w->cb(h, NULL, DN_ECLOSED, w->arg);
    }
    h->routing = NULL;
    for (dn_conn *c = h->conns; c; c = c->next) {
        if (c->phase == PH_OPEN && !c->failed)
            dn__conn_goaway_now(c); /* best effort: tell the peer, then close */
        dn__conn_fail(c, DN_ECLOSED);
    }
    /* Dial results still queued are delivered by the defer timer (it stays
     * open until they are); host_maybe_done frees once all is released. */
    host_maybe_done(h);
}
