/* node — the dn_network object (include/dmsnet/network.h).
 *
 * It composes the host with its services, the store and the event bus, and
 * turns the host's per-connection events into the seed's node events:
 *   host OPENED (first connection of a peer)  -> peer connectedness: connected
 *   host CLOSED (its last connection)         -> peer connectedness: not connected
 *   host IDENTIFIED                           -> peer identification completed,
 *                                                an observed address for natobs
 *   host ADDRS_CHANGED, natobs' confirmed set -> local addresses updated
 *   natobs' verdict                           -> NAT device type changed
 *   AutoNAT's verdict                         -> local reachability changed
 *
 * What it learns about identified peers goes to the store in batches (one
 * transaction a second: a commit costs an fsync), so a connect flood costs
 * the disk one write a second, not one per peer. At start it redials the
 * channel's bootstrap peers (with backoff until one answers) and the peers
 * seen in the last week. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "core/io.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"
#include "node/network_int.h"

#define TICK_MS 1000
/* Peers seen within this long are redialled at start, at most this many. */
#define REDIAL_WINDOW_MS (7ull * 24 * 3600 * 1000)
#define REDIAL_MAX 32
/* Identified peers waiting for the next batched store write. One write
 * takes at most FLUSH_MAX of them, so a burst of new peers stalls the loop
 * for one bounded transaction a second; past DIRTY_MAX waiting, new marks
 * are dropped (a flood of fresh identities is not worth remembering). */
#define DIRTY_MAX 1024
#define FLUSH_MAX 256
/* Round trips for Status: pings the node itself sends, at most this many
 * at identification per tick and this many per tick from the tick. */
#define PINGS_AT_IDENTIFY 16
#define PINGS_PER_TICK 64

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- accessors ---- */

dn_host *dn_network_host(dn_network *n) { return n->host; }
uv_loop_t *dn_network_loop(dn_network *n) { return n->loop; }
const dn_peerid *dn_network_peerid(const dn_network *n) { return dn_host_peerid(n->host); }
const dn__node_config *dn__node_config_of(const dn_network *n) { return &n->cfg.c; }
const char *dn__node_data_dir(const dn_network *n) { return n->data_dir; }
dn_store *dn__node_store(dn_network *n) { return n->store; }
uint64_t dn__node_started_ms(const dn_network *n) { return n->started_ms; }

void dn__node_emit(dn_network *n, dn_network_event *ev)
{
    if (!n->stopping)
        dn__node_bus_emit(n->bus, n, ev);
}

int dn_network_event_register(dn_network *n, uint32_t mask, dn_network_event_cb cb, void *arg)
{
    return dn__node_bus_add(n->bus, mask, cb, arg);
}

void dn_network_event_unregister(dn_network *n, dn_network_event_cb cb, void *arg)
{
    dn__node_bus_remove(n->bus, cb, arg);
}

/* ---- the store: batched peer writes ---- */

static void mark_dirty(dn_network *n, const dn_peerid *id);

static int peer_id_cmp(const void *a, const void *b)
{
    const dn_peerid *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->bytes, y->bytes, x->len);
}

static int put_peer(dn_network *n, const dn_peer_info *p, uint64_t now)
{
    char id[DN_PEERID_STR_MAX];
    dn_peerid_to_string(&p->id, id, sizeof id);
    dn_buf key = DN_BUF_INIT;
    if (p->public_key && dn_pubkey_to_protobuf(p->public_key, &key))
        dn_buf_free(&key);
    size_t na = p->naddrs < DN_STORE_PEER_ADDRS_MAX ? p->naddrs : DN_STORE_PEER_ADDRS_MAX;
    char text[DN_STORE_PEER_ADDRS_MAX][DN_MULTIADDR_STR_MAX];
    const char *addrs[DN_STORE_PEER_ADDRS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < na; i++) {
        dn_multiaddr ma;
        if (dn_peer_info_addr(p, i, &ma) || dn_multiaddr_to_string(&ma, text[k], sizeof text[k]) < 0)
            continue;
        addrs[k] = text[k];
        k++;
    }
    dn_store_peer sp = {
        .peer_id = id,
        .pubkey = key.len ? key.data : NULL,
        .pubkey_len = key.len,
        .agent = p->agent_version[0] ? p->agent_version : NULL,
        .last_seen_ms = (int64_t)now,
        .addrs = addrs,
        .n_addrs = k,
    };
    int rc = dn__store_peer_put(n->store, &sp, false);
    dn_buf_free(&key);
    return rc;
}

/* Write up to FLUSH_MAX dirty peers in one transaction; the rest wait for
 * the next call. */
static void flush_peers(dn_network *n)
{
    if (!n->ndirty || !n->store)
        return;
    qsort(n->dirty, n->ndirty, sizeof *n->dirty, peer_id_cmp);
    uint64_t now = unix_ms();
    int rc = dn__store_begin(n->store);
    size_t written = 0, i = 0;
    for (; !rc && i < n->ndirty && written < FLUSH_MAX; i++) {
        if (i && peer_id_cmp(&n->dirty[i], &n->dirty[i - 1]) == 0)
            continue;
        /* Only identified peers are marked; one that left since keeps its
         * entry (key, agent, addresses), though not its identified flag. */
        const dn_peer_info *p = dn_host_peer(n->host, &n->dirty[i]);
        if (!p)
            continue;
        int prc = put_peer(n, p, now);
        if (prc)
            DN_LOG_LIMITED(DN_LOG_WARN, "node", "cannot save a peer: %s",
                           dn__store_errmsg(n->store));
        else
            written++;
    }
    if (!rc)
        rc = dn__store_commit(n->store);
    if (rc) {
        DN_WARN("node", "cannot save %zu peers: %s", i, dn__store_errmsg(n->store));
        dn__store_rollback(n->store);
    } else {
        DN_DEBUG("node", "saved %zu peers", written);
    }
    memmove(n->dirty, n->dirty + i, (n->ndirty - i) * sizeof *n->dirty);
    n->ndirty -= i;
}

static void mark_dirty(dn_network *n, const dn_peerid *id)
{
    if (n->ndirty == DIRTY_MAX) {
        DN_LOG_LIMITED(DN_LOG_DEBUG, "node", "store batch full: a peer is not saved");
        return;
    }
    n->dirty[n->ndirty++] = *id;
}

/* ---- local addresses ---- */

/* Dialable listen addresses, then the observed ones peers confirmed. */
size_t dn__node_local_addrs(dn_network *n, dn_multiaddr *out, size_t max)
{
    size_t k = dn_host_dialable_addrs(n->host, out, max);
    if (k > max)
        k = max;
    if (k < max)
        k += dn__node_nat_confirmed(n, out + k, max - k);
    return k;
}

static bool addrs_equal(const dn_multiaddr *a, size_t na, const dn_multiaddr *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].len != b[i].len || memcmp(a[i].bytes, b[i].bytes, a[i].len))
            return false;
    return true;
}

/* Emit LOCAL_ADDRS_UPDATED when the set changed since the last one. */
void dn__node_refresh_local_addrs(dn_network *n)
{
    dn_multiaddr now[DN__NODE_MAX_LOCAL_ADDRS];
    size_t k = dn__node_local_addrs(n, now, DN__NODE_MAX_LOCAL_ADDRS);
    if (addrs_equal(now, k, n->local_addrs, n->nlocal_addrs))
        return;
    memcpy(n->local_addrs, now, k * sizeof *now);
    n->nlocal_addrs = k;
    dn_network_event ev = {.type = DN_NET_EV_LOCAL_ADDRS_UPDATED, .addrs = now, .naddrs = k};
    dn__node_emit(n, &ev);
}

/* ---- host events ---- */

static bool speaks(const dn_peer_info *p, const char *proto)
{
    for (size_t i = 0; i < p->nprotocols; i++)
        if (strcmp(p->protocols[i], proto) == 0)
            return true;
    return false;
}

static const dn_ping_callbacks no_ping_cbs = {0};

static void on_identified(dn_network *n, dn_conn *c)
{
    const dn_peerid *id = dn_conn_remote_peer(c);
    const dn_peer_info *p = dn_host_peer(n->host, id);
    if (!p)
        return;
    mark_dirty(n, id);
    dn__node_nat_observed(n, c, p);
    /* One ping gives Status the peer's round trip (the ping service records
     * it in the peerstore); in a burst of new peers the tick sends the rest. */
    if (n->pings_left_this_tick > 0 && speaks(p, DN_PING_PROTOCOL)) {
        n->pings_left_this_tick--;
        (void)dn_ping_run(c, 1, 0, &no_ping_cbs, NULL);
    }

    dn_multiaddr addrs[32];
    size_t na = p->naddrs < 32 ? p->naddrs : 32, k = 0;
    for (size_t i = 0; i < na; i++)
        if (dn_peer_info_addr(p, i, &addrs[k]) == 0)
            k++;
    dn_network_event ev = {
        .type = DN_NET_EV_PEER_IDENTIFIED,
        .peer = id,
        .addrs = addrs,
        .naddrs = k,
        .agent = p->agent_version,
        .protocols = (const char *const *)p->protocols,
        .nprotocols = p->nprotocols,
    };
    dn__node_emit(n, &ev);
}

static void on_host_event(dn_host *h, dn_conn *c, dn_conn_event e, int status, void *arg)
{
    dn_network *n = arg;
    (void)h;
    if (n->stopping)
        return;
    switch (e) {
    case DN_CONN_EV_OPENED: {
        const dn_peer_info *p = dn_host_peer(n->host, dn_conn_remote_peer(c));
        if (p && p->connections == 1) {
            dn_network_event ev = {.type = DN_NET_EV_PEER_CONNECTEDNESS,
                                   .peer = dn_conn_remote_peer(c),
                                   .connectedness = DN_CONNECTED};
            dn__node_emit(n, &ev);
        }
        dn__node_bootstrap_connected(n, dn_conn_remote_peer(c));
        break;
    }
    case DN_CONN_EV_IDENTIFIED: on_identified(n, c); break;
    case DN_CONN_EV_PUSHED: mark_dirty(n, dn_conn_remote_peer(c)); break; /* new addrs */
    case DN_CONN_EV_CLOSED: {
        dn__node_nat_forget(n, c);
        const dn_peer_info *p = dn_host_peer(n->host, dn_conn_remote_peer(c));
        /* The closing connection still counts until it is released. */
        if (!p || p->connections <= 1) {
            if (p && p->identified)
                mark_dirty(n, dn_conn_remote_peer(c)); /* last seen */
            dn_network_event ev = {.type = DN_NET_EV_PEER_CONNECTEDNESS,
                                   .peer = dn_conn_remote_peer(c),
                                   .connectedness = DN_NOT_CONNECTED};
            dn__node_emit(n, &ev);
        }
        (void)status;
        break;
    }
    case DN_HOST_EV_ADDRS_CHANGED:
        dn__node_nat_listen_changed(n);
        dn__node_refresh_local_addrs(n);
        break;
    default: break;
    }
}

/* ---- the periodic tick ---- */

/* Each connection's round trip is measured again this often, so Status
 * shows a recent one; one whose peer has none yet is tried more often.
 * Connections take turns by id, so no tick pings them all at once. */
#define RTT_EVERY_TICKS 60
#define RTT_UNKNOWN_EVERY_TICKS 4

static void ping_conn(dn_conn *c, void *arg)
{
    dn_network *n = arg;
    if (n->pings_left_this_tick <= 0)
        return;
    const dn_peer_info *p = dn_host_peer(n->host, dn_conn_remote_peer(c));
    if (!p || !p->identified || !speaks(p, DN_PING_PROTOCOL))
        return;
    uint64_t every = p->latency_us < 0 ? RTT_UNKNOWN_EVERY_TICKS : RTT_EVERY_TICKS;
    if (dn_conn_id(c) % every != n->ticks % every)
        return;
    n->pings_left_this_tick--;
    (void)dn_ping_run(c, 1, 0, &no_ping_cbs, NULL);
}

static void on_tick(uv_timer_t *t)
{
    dn_network *n = t->data;
    flush_peers(n);
    n->ticks++;
    n->pings_left_this_tick = PINGS_PER_TICK;
    dn_host_foreach_conn(n->host, ping_conn, n);
    n->pings_left_this_tick = PINGS_AT_IDENTIFY;
    dn__node_nat_tick(n);
    dn__node_msgs_tick(n);
    dn__node_ps_tick(n);
    dn__node_dht_tick(n);
    dn__node_bootstrap_tick(n);
}

/* ---- init ---- */

static int load_identity(dn_network *n, char *err, size_t errlen)
{
    if (n->cfg.identity_key)
        return 0;
    char path[DN__NODE_CONFIG_MAX_PATH + 32];
    if (n->cfg.c.identity)
        snprintf(path, sizeof path, "%s", n->cfg.c.identity);
    else
        snprintf(path, sizeof path, "%s/identity.key", n->data_dir);
    int rc = dn_privkey_load(path, &n->own_key);
    if (rc == -ENOENT) {
        if ((rc = dn_privkey_generate(DN_KEY_ED25519, &n->own_key)) == 0 &&
            (rc = dn_privkey_save(n->own_key, path)) == 0) {
            DN_INFO("node", "created a new identity in %s", path);
            return 0;
        }
        dn__set_err(err, errlen, "cannot create identity %s: %s", path, dn_strerror(rc));
        return rc;
    }
    if (rc)
        dn__set_err(err, errlen, "cannot load identity %s: %s", path,
                    rc == DN_EINVAL || rc == -EISDIR ? "not a regular file" : dn_strerror(rc));
    return rc;
}

/* Settings the user stored through the API apply over config.json, except
 * for keys a flag set explicitly. A stored value that no longer validates
 * (an older dmsnet wrote it) is skipped with a warning, never fatal. */
typedef struct settings_ctx {
    dn__node_config *c;
    uint64_t explicit_keys;
} settings_ctx;

static int apply_setting(void *ud, const char *key, const char *json, int64_t updated_ms)
{
    settings_ctx *ctx = ud;
    (void)updated_ms;
    int idx = dn__node_config_key_index(key);
    if (idx >= 0 && idx < 64 && (ctx->explicit_keys & (1ull << idx)))
        return 0;
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
    char why[256] = "not JSON";
    if (!v || dn__node_config_set_json(ctx->c, key, v, why, sizeof why))
        DN_WARN("node", "ignoring the stored setting '%s': %s", key, why);
    json_decref(v);
    return 0;
}

int dn__node_config_apply_stored(dn__node_config *c, dn_store *st, uint64_t explicit_keys,
                                 char *err, size_t errlen)
{
    settings_ctx ctx = {.c = c, .explicit_keys = explicit_keys};
    int rc = dn__store_setting_list(st, apply_setting, &ctx);
    if (rc < 0) {
        dn__set_err(err, errlen, "%s", dn__store_errmsg(st));
        return rc;
    }
    return dn__node_config_check(c, err, errlen);
}

int dn_network_new(uv_loop_t *loop, const dn_network_config *cfg, dn_network **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    int rc = dn__node_config_check(&cfg->c, err, errlen);
    if (rc)
        return rc;
    if (!cfg->c.data_dir || !*cfg->c.data_dir) {
        dn__set_err(err, errlen, "'data_dir' is not set");
        return DN_EINVAL;
    }
    dn_network *n = calloc(1, sizeof *n);
    if (!n) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    n->loop = loop;
    n->nat_type = DN_NAT_UNKNOWN;
    n->pings_left_this_tick = PINGS_AT_IDENTIFY;
    n->reachability = DN_REACHABILITY_UNKNOWN;
    if ((rc = dn__node_netconfig_copy(&n->cfg, cfg)) || (rc = dn__node_bus_new(&n->bus))) {
        dn__set_err(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(n->data_dir, sizeof n->data_dir, "%s", cfg->c.data_dir);
    if ((rc = dn__store_open(n->data_dir, &n->store, err, errlen)))
        goto fail;
    if ((rc = dn__node_config_apply_stored(&n->cfg.c, n->store, n->cfg.explicit_keys, err,
                                           errlen)))
        goto fail;
    dn_log_set_level(n->cfg.c.log);
    if ((rc = load_identity(n, err, errlen)))
        goto fail;

    dn_host_config hc = DN_HOST_CONFIG_INIT;
    hc.identity = n->cfg.identity_key ? n->cfg.identity_key : n->own_key;
    hc.psk = n->cfg.has_psk ? n->cfg.psk : NULL;
    hc.max_conns = n->cfg.c.limits.max_conns;
    hc.max_conns_per_peer = n->cfg.c.limits.max_conns_per_peer;
    hc.max_streams_per_peer = n->cfg.c.limits.max_streams_per_peer;
    hc.max_handshakes_per_ip = n->cfg.c.limits.max_handshakes_per_ip;
    hc.handshake_timeout_ms = n->cfg.c.limits.handshake_timeout_s * 1000;
    if ((rc = dn_host_new(loop, &hc, &n->host))) {
        dn__set_err(err, errlen, "cannot create the host: %s", dn_strerror(rc));
        goto fail;
    }
    if ((rc = dn_host_add_observer(n->host, on_host_event, n)) ||
        (rc = dn_identify_attach(n->host)) || (rc = dn_ping_attach(n->host)) ||
        (n->cfg.c.enable_perf && (rc = dn_perf_attach(n->host, 0)))) {
        dn__set_err(err, errlen, "cannot attach the services: %s", dn_strerror(rc));
        goto fail;
    }
    if ((rc = dn__node_attach_nat(n, err, errlen)) || (rc = dn__node_msgs_attach(n, err, errlen)) ||
        (rc = dn__node_ps_attach(n, err, errlen)) || (rc = dn__node_jobs_attach(n, err, errlen)) ||
        (rc = dn__node_dht_attach(n, err, errlen)))
        goto fail;
    uv_timer_init(loop, &n->tick);
    n->tick.data = n;
    *out = n;
    return 0;
fail:
    dn__node_free_now(n);
    return rc;
}

/* ---- start ---- */

int dn_network_start(dn_network *n, char *err, size_t errlen)
{
    if (n->started) {
        dn__set_err(err, errlen, "already started");
        return DN_ESTATE;
    }
    int rc;
    for (size_t i = 0; i < n->cfg.c.listen.n; i++)
        if ((rc = dn_network_listen(n, n->cfg.c.listen.v[i], err, errlen)))
            return rc;
    n->started = true;
    n->started_ms = unix_ms();
    n->started_loop_ms = uv_now(n->loop);
    if ((rc = dn__node_api_start(n, &n->api, err, errlen)))
        return rc;
    if ((rc = dn__node_msgs_routes(n, dn__node_api_server(n->api))) ||
        (rc = dn__node_ps_routes(n, dn__node_api_server(n->api))) ||
        (rc = dn__node_jobs_routes(n, dn__node_api_server(n->api))) ||
        (rc = dn__node_dht_routes(n, dn__node_api_server(n->api)))) {
        dn__set_err(err, errlen, "api: cannot add the message, pubsub, job and DHT routes: %s",
                    dn_strerror(rc));
        return rc;
    }
    /* The public channel the node onboarded on: a swarm's "leave" comes
     * back to it (private-swarm issue). */
    if (!n->cfg.has_psk) {
        const dn__node_config *c = &n->cfg.c;
        dn_store_channel ch = {.name = c->channel.name,
                               .dht_prefix = c->channel.dht_prefix,
                               .bootstrap = (const char *const *)c->channel.bootstrap.v,
                               .n_bootstrap = c->channel.bootstrap.n};
        if (dn__store_channel_set(n->store, &ch))
            DN_WARN("node", "cannot save the channel: %s", dn__store_errmsg(n->store));
    }
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    dn__node_bootstrap_start(n);
    dn__node_dht_start(n);
    dn__node_redial_recent(n, REDIAL_WINDOW_MS, REDIAL_MAX);
    dn__node_refresh_local_addrs(n);
    return 0;
}

int dn_network_listen(dn_network *n, const char *text, char *err, size_t errlen)
{
    dn_multiaddr ma;
    int rc = dn_multiaddr_parse(text, &ma);
    if (rc) {
        dn__set_err(err, errlen, "invalid listen address '%s': %s", text, dn_multiaddr_error());
        return rc;
    }
    if ((rc = dn_host_listen(n->host, &ma))) {
        dn__set_err(err, errlen, "cannot listen on %s: %s", text, dn_strerror(rc));
        return rc;
    }
    return 0;
}

int dn_network_handle(dn_network *n, const char *protocol, dn_stream_handler fn, void *arg)
{
    return dn_host_set_handler(n->host, protocol, fn, arg);
}

/* ---- run-time configuration (PUT /v0/config) ---- */

int dn__node_config_update(dn_network *n, const char *key, const json_t *value, bool *applied,
                           char *err, size_t errlen)
{
    *applied = false;
    int idx = dn__node_config_key_index(key);
    if (idx < 0) {
        dn__set_err(err, errlen, "unknown key '%s'", key);
        return DN_EINVAL;
    }
    if (!strcmp(key, "data_dir") || !strcmp(key, "identity")) {
        dn__set_err(err, errlen, "'%s' cannot be set through the API (set it in config.json or "
                                 "with a flag)", key);
        return DN_EINVAL;
    }
    int rc;
    if (!value) {
        rc = dn__store_setting_delete(n->store, key);
        if (rc == DN_ENOTFOUND)
            rc = 0;
        if (rc)
            dn__set_err(err, errlen, "%s", dn__store_errmsg(n->store));
        return rc;
    }
    /* Validate on a copy, with the cross-key rules. */
    dn__node_config tmp;
    if ((rc = dn__node_config_copy(&tmp, &n->cfg.c))) {
        dn__set_err(err, errlen, "out of memory");
        return rc;
    }
    if (!(rc = dn__node_config_set_json(&tmp, key, value, err, errlen)))
        rc = dn__node_config_check(&tmp, err, errlen);
    if (!rc) {
        char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        rc = text ? dn__store_setting_set(n->store, key, text) : DN_ENOMEM;
        free(text);
        if (rc)
            dn__set_err(err, errlen, "cannot store '%s': %s", key, dn__store_errmsg(n->store));
    }
    if (!rc && !strcmp(key, "log")) {
        /* The one key that takes effect at once. */
        n->cfg.c.log = tmp.log;
        dn_log_set_level(tmp.log);
        *applied = true;
    }
    dn__node_config_free(&tmp);
    return rc;
}

/* ---- stop ---- */

void dn__node_free_now(dn_network *n)
{
    if (n->host) {
        /* Only on the failure path of dn_network_new, before the loop ran
         * anything: the host's close still needs loop turns. */
        dn_host_close(n->host, NULL, NULL);
        n->host = NULL;
    }
    if (n->store)
        dn__store_close(n->store);
    dn__node_nat_free(n);
    dn__node_msgs_free(n);
    dn__node_jobs_free(n);
    dn__node_ps_free(n);
    dn__node_dht_free(n);
    dn__node_bus_free(n->bus);
    dn_privkey_free(n->own_key);
    dn__node_netconfig_clear(&n->cfg);
    dn__node_bootstrap_free(n);
    free(n);
}

static void release_one(dn_network *n)
{
    if (--n->handles > 0)
        return;
    void (*done)(void *) = n->done;
    void *arg = n->done_arg;
    n->host = NULL;
    dn__node_free_now(n);
    if (done)
        done(arg);
}

static void on_host_closed(void *arg) { release_one(arg); }
static void on_tick_closed(uv_handle_t *h) { release_one(h->data); }

void dn_network_stop(dn_network *n, void (*done)(void *arg), void *arg)
{
    if (n->stopping)
        return;
    n->done = done;
    n->done_arg = arg;
    if (n->api) {
        dn__node_api_stop(n->api);
        n->api = NULL;
    }
    /* What we learned about peers is written before the connections go
     * (their last-seen times are now). */
    dn__node_msgs_stop(n);
    dn__node_ps_stop(n);
    dn__node_dht_stop(n);
    while (n->ndirty) {
        size_t before = n->ndirty;
        flush_peers(n);
        if (n->ndirty == before)
            break; /* nothing could be written */
    }
    n->stopping = true;
    uv_timer_stop(&n->tick);
    n->handles = 2;
    uv_close((uv_handle_t *)&n->tick, on_tick_closed);
    n->handles += dn__node_jobs_stop(n, on_tick_closed); /* its timer's data is n */
    dn_host_close(n->host, on_host_closed, n);
}

dn__node_api *dn__node_api_of(dn_network *n) { return n->api; }
