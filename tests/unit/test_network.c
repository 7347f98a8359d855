/* The node (src/node) through the Network API: the event bus (masks,
 * (un)registering during an emit), two nodes on one loop that connect,
 * identify and disconnect (connectedness and identification events, both
 * sides; Status), peers saved to the store and redialled at restart,
 * bootstrap peers dialled at start, configuration set at run time that
 * survives a restart (and loses to an explicit flag), and stores that must
 * be refused untouched.
 *
 * The loop runs only inside RUN_UNTIL, bounded by a watchdog timer, so a
 * hang fails the test. Callbacks record; the test bodies check. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/kad.h"
#include "dmsnet/network.h"
#include "node/node_internal.h"

/* ---- the event bus on its own ---- */

typedef struct bus_rec {
    int calls[8];
    dn__node_bus *bus;
    bool remove_self, add_other;
} bus_rec;

static void cb_a(dn_network *n, const dn_network_event *ev, void *arg);
static void cb_b(dn_network *n, const dn_network_event *ev, void *arg)
{
    bus_rec *r = arg;
    r->calls[ev->type]++;
}

static void cb_a(dn_network *n, const dn_network_event *ev, void *arg)
{
    bus_rec *r = arg;
    r->calls[0]++;
    assert_true(ev->time_ms > 0);
    if (r->remove_self)
        dn__node_bus_remove(r->bus, cb_a, arg);
    if (r->add_other) {
        r->add_other = false;
        assert_int_equal(dn__node_bus_add(r->bus, DN_NET_EV_ALL, cb_b, arg), 0);
    }
}

static void test_bus(void **state)
{
    (void)state;
    bus_rec r = {0};
    assert_int_equal(dn__node_bus_new(&r.bus), 0);
    assert_int_equal(dn__node_bus_add(r.bus, 1u << DN_NET_EV_PEER_CONNECTEDNESS, cb_a, &r), 0);
    assert_int_equal(dn__node_bus_add(r.bus, 1u << DN_NET_EV_PEER_CONNECTEDNESS, cb_a, &r),
                     DN_EEXIST);
    assert_int_equal(dn__node_bus_add(r.bus, 0, cb_b, &r), DN_EINVAL);
    dn_network_event ev = {.type = DN_NET_EV_NAT_TYPE_CHANGED};
    dn__node_bus_emit(r.bus, NULL, &ev);
    assert_int_equal(r.calls[0], 0); /* not in its mask */
    ev = (dn_network_event){.type = DN_NET_EV_PEER_CONNECTEDNESS};
    r.add_other = true;
    dn__node_bus_emit(r.bus, NULL, &ev);
    /* cb_a ran; cb_b, added during the emit, waits for the next event. */
    assert_int_equal(r.calls[0], 1);
    assert_int_equal(r.calls[DN_NET_EV_PEER_CONNECTEDNESS], 0);
    r.remove_self = true;
    ev.time_ms = 0;
    dn__node_bus_emit(r.bus, NULL, &ev);
    assert_int_equal(r.calls[0], 2);
    assert_int_equal(r.calls[DN_NET_EV_PEER_CONNECTEDNESS], 1);
    assert_int_equal(dn__node_bus_count(r.bus), 1);
    ev.time_ms = 0;
    dn__node_bus_emit(r.bus, NULL, &ev);
    assert_int_equal(r.calls[0], 2); /* removed itself */
    assert_int_equal(r.calls[DN_NET_EV_PEER_CONNECTEDNESS], 2);
    dn__node_bus_remove(r.bus, cb_b, &r);
    assert_int_equal(dn__node_bus_count(r.bus), 0);
    dn__node_bus_free(r.bus);
    assert_string_equal(dn_network_event_name(DN_NET_EV_LOCAL_ADDRS_UPDATED),
                        "local_addresses_updated");
    assert_string_equal(dn_network_event_name(DN_NET_EV_PEER_IDENTIFIED),
                        "peer_identification_completed");
    assert_string_equal(dn_connectedness_name(DN_NOT_CONNECTED), "not_connected");
    assert_string_equal(dn_nat_type_name(DN_NAT_SYMMETRIC), "symmetric");
    assert_string_equal(dn_reachability_name(DN_REACHABILITY_PRIVATE), "private");
}

/* ---- two nodes ---- */

typedef struct node_rec {
    dn_network *n;
    char dir[64];
    int connected, disconnected, identified, addrs_updated, reach_events;
    dn_reachability reach;
    char last_peer[DN_PEERID_STR_MAX];
    char last_agent[128];
    size_t last_nprotocols;
} node_rec;

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog, tick;
    bool expired;
    node_rec nodes[2];
    int dials, dial_status;
    char dialled_peer[DN_PEERID_STR_MAX];
    int stopped;
} fx;

static void on_watchdog(uv_timer_t *t)
{
    ((fx *)t->data)->expired = true;
}
static void on_tick(uv_timer_t *t)
{
    (void)t;
}

#define RUN_UNTIL(f, expr, ms)                                                                     \
    do {                                                                                           \
        (f)->expired = false;                                                                      \
        uv_timer_start(&(f)->watchdog, on_watchdog, (ms), 0);                                      \
        uv_timer_start(&(f)->tick, on_tick, 5, 5);                                                 \
        while (!(expr) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
        uv_timer_stop(&(f)->tick);                                                                 \
        if (!(expr))                                                                               \
            fail_msg("timed out after %u ms waiting for: %s", (unsigned)(ms), #expr);              \
    } while (0)

static void on_event(dn_network *n, const dn_network_event *ev, void *arg)
{
    node_rec *r = arg;
    switch (ev->type) {
    case DN_NET_EV_PEER_CONNECTEDNESS:
        if (ev->connectedness == DN_CONNECTED)
            r->connected++;
        else
            r->disconnected++;
        dn_peerid_to_string(ev->peer, r->last_peer, sizeof r->last_peer);
        break;
    case DN_NET_EV_PEER_IDENTIFIED:
        r->identified++;
        snprintf(r->last_agent, sizeof r->last_agent, "%s", ev->agent);
        r->last_nprotocols = ev->nprotocols;
        break;
    case DN_NET_EV_LOCAL_ADDRS_UPDATED: r->addrs_updated++; break;
    case DN_NET_EV_REACHABILITY_CHANGED:
        r->reach_events++;
        r->reach = ev->reachability;
        break;
    default: break;
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->watchdog);
    uv_timer_init(&f->loop, &f->tick);
    f->watchdog.data = f->tick.data = f;
    for (int i = 0; i < 2; i++) {
        snprintf(f->nodes[i].dir, sizeof f->nodes[i].dir, "/tmp/dn-test-net-XXXXXX");
        assert_non_null(mkdtemp(f->nodes[i].dir));
    }
    *state = f;
    return 0;
}

static void on_stopped(void *arg)
{
    ((fx *)arg)->stopped++;
}

static void stop_node(fx *f, int i)
{
    if (!f->nodes[i].n)
        return;
    int before = f->stopped;
    dn_network_stop(f->nodes[i].n, on_stopped, f);
    f->nodes[i].n = NULL;
    RUN_UNTIL(f, f->stopped == before + 1, 5000);
}

static int teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 2; i++)
        stop_node(f, i);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < 2; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->nodes[i].dir);
        assert_int_equal(system(cmd), 0);
    }
    free(f);
    return 0;
}

/* A config for node i: its dir, loopback on a free port, plus key=value
 * pairs (NULL-terminated). */
static dn_network_config *make_cfg(fx *f, int i, ...)
{
    dn_network_config *cfg;
    char err[256];
    assert_int_equal(dn_network_config_new(&cfg), 0);
    assert_int_equal(dn_network_config_set(cfg, "data_dir", f->nodes[i].dir, err, sizeof err), 0);
    assert_int_equal(dn_network_config_set(cfg, "listen", "/ip4/127.0.0.1/tcp/0", err, sizeof err),
                     0);
    assert_int_equal(dn_network_config_set(cfg, "log", "warn", err, sizeof err), 0);
    va_list ap;
    va_start(ap, i);
    const char *k;
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        if (dn_network_config_set(cfg, k, v, err, sizeof err))
            fail_msg("%s", err);
    }
    va_end(ap);
    return cfg;
}

static void start_node_cfg(fx *f, int i, dn_network_config *cfg)
{
    char err[512] = "";
    int rc = dn_network_new(&f->loop, cfg, &f->nodes[i].n, err, sizeof err);
    dn_network_config_free(cfg);
    if (rc)
        fail_msg("dn_network_new: %s", err);
    assert_int_equal(dn_network_event_register(f->nodes[i].n, DN_NET_EV_ALL, on_event,
                                               &f->nodes[i]),
                     0);
    if (dn_network_start(f->nodes[i].n, err, sizeof err))
        fail_msg("dn_network_start: %s", err);
}

static void start_node(fx *f, int i)
{
    start_node_cfg(f, i, make_cfg(f, i, NULL));
}

/* node i's first listen address with /p2p/<id>. */
static void addr_of(fx *f, int i, char *out, size_t outlen)
{
    dn_network_status *st;
    assert_int_equal(dn_network_get_status(f->nodes[i].n, &st), 0);
    assert_true(st->nlisten_addrs >= 1);
    snprintf(out, outlen, "%s/p2p/%s", st->listen_addrs[0], st->peer_id);
    dn_network_status_free(st);
}

static void on_dial(dn_network *n, const dn_peerid *peer, int status, void *arg)
{
    fx *f = arg;
    f->dials++;
    f->dial_status = status;
    if (peer)
        dn_peerid_to_string(peer, f->dialled_peer, sizeof f->dialled_peer);
}

static const dn_network_peer_status *find_peer(const dn_network_status *st, const char *id)
{
    for (size_t i = 0; i < st->npeers; i++)
        if (!strcmp(st->peers[i].peer_id, id))
            return &st->peers[i];
    return NULL;
}

static bool rtt_known(dn_network *n, const char *id)
{
    dn_network_status *st;
    assert_int_equal(dn_network_get_status(n, &st), 0);
    const dn_network_peer_status *p = find_peer(st, id);
    bool known = p && p->rtt_us >= 0;
    dn_network_status_free(st);
    return known;
}

static void test_connect_identify_disconnect(void **state)
{
    fx *f = *state;
    start_node(f, 0);
    start_node(f, 1);
    char b_addr[256], a_id[DN_PEERID_STR_MAX], b_id[DN_PEERID_STR_MAX];
    addr_of(f, 1, b_addr, sizeof b_addr);
    dn_peerid_to_string(dn_network_peerid(f->nodes[0].n), a_id, sizeof a_id);
    dn_peerid_to_string(dn_network_peerid(f->nodes[1].n), b_id, sizeof b_id);

    assert_int_equal(dn_network_dial(f->nodes[0].n, "/ip4/127.0.0.1/tcp/notaport", on_dial, f),
                     DN_EMALFORMED);
    assert_int_equal(dn_network_dial(f->nodes[0].n, b_addr, on_dial, f), 0);
    assert_int_equal(f->dials, 0); /* never from inside the call */
    RUN_UNTIL(f, f->dials == 1, 5000);
    assert_int_equal(f->dial_status, 0);
    assert_string_equal(f->dialled_peer, b_id);
    RUN_UNTIL(f, f->nodes[0].identified == 1 && f->nodes[1].identified == 1, 5000);
    assert_int_equal(f->nodes[0].connected, 1);
    assert_int_equal(f->nodes[1].connected, 1);
    assert_string_equal(f->nodes[0].last_peer, b_id);
    assert_string_equal(f->nodes[1].last_peer, a_id);
    assert_true(strncmp(f->nodes[0].last_agent, "dmsnet/", 7) == 0);
    assert_true(f->nodes[0].last_nprotocols >= 2); /* identify, ping at least */

    /* Status: B is A's outbound peer, A is B's inbound one; the ping the
     * node sends at identification gives a round trip. */
    RUN_UNTIL(f, rtt_known(f->nodes[0].n, b_id), 5000);
    dn_network_status *st;
    assert_int_equal(dn_network_get_status(f->nodes[0].n, &st), 0);
    const dn_network_peer_status *p = find_peer(st, b_id);
    assert_true(p->outbound);
    assert_int_equal(p->connections, 1);
    assert_true(p->naddrs == 1 && strstr(p->addrs[0], "/ip4/127.0.0.1/tcp/"));
    assert_true(p->nprotocols >= 2);
    assert_false(st->private_swarm);
    assert_string_equal(st->network, "dmsnet");
    assert_true(st->bytes_in > 0 && st->bytes_out > 0);
    char *json = dn_network_status_to_json(st);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"direction\": \"outbound\""));
    assert_non_null(strstr(json, "\"mode\": \"public\""));
    assert_non_null(strstr(json, "\"reachability\": \"unknown\""));
    free(json);
    dn_network_status_free(st);
    assert_int_equal(dn_network_get_status(f->nodes[1].n, &st), 0);
    p = find_peer(st, a_id);
    assert_non_null(p);
    assert_false(p->outbound);
    dn_network_status_free(st);

    /* A second dial reuses the connection: no new connectedness event. */
    assert_int_equal(dn_network_dial(f->nodes[0].n, b_id, on_dial, f), 0);
    RUN_UNTIL(f, f->dials == 2, 5000);
    assert_int_equal(f->dial_status, 0);
    assert_int_equal(f->nodes[0].connected, 1);

    dn_peerid bid = *dn_network_peerid(f->nodes[1].n);
    assert_int_equal(dn_network_disconnect(f->nodes[0].n, &bid), 0);
    RUN_UNTIL(f, f->nodes[0].disconnected == 1 && f->nodes[1].disconnected == 1, 5000);
    assert_int_equal(dn_network_disconnect(f->nodes[0].n, &bid), DN_ENOTFOUND);
    assert_int_equal(dn_network_get_status(f->nodes[0].n, &st), 0);
    assert_int_equal(st->npeers, 0);
    dn_network_status_free(st);
}

/* Listen at run time: one more address, reported by LOCAL_ADDRS_UPDATED and
 * in Status; a bad one is refused with the reason. */
static void test_listen_at_run_time(void **state)
{
    fx *f = *state;
    start_node(f, 0);
    RUN_UNTIL(f, f->nodes[0].addrs_updated >= 1, 2000);
    int before = f->nodes[0].addrs_updated;
    char err[256];
    assert_int_equal(dn_network_listen(f->nodes[0].n, "/ip4/127.0.0.1/udp/1", err, sizeof err),
                     DN_EUNSUPPORTED);
    assert_int_not_equal(dn_network_listen(f->nodes[0].n, "/ip4/nope", err, sizeof err), 0);
    assert_non_null(strstr(err, "/ip4/nope"));
    assert_int_equal(dn_network_listen(f->nodes[0].n, "/ip4/127.0.0.1/tcp/0", err, sizeof err), 0);
    RUN_UNTIL(f, f->nodes[0].addrs_updated == before + 1, 2000);
    dn_network_status *st;
    assert_int_equal(dn_network_get_status(f->nodes[0].n, &st), 0);
    assert_int_equal(st->nlisten_addrs, 2);
    assert_string_not_equal(st->listen_addrs[0], st->listen_addrs[1]);
    dn_network_status_free(st);
}

static void test_saved_peers_redialled(void **state)
{
    fx *f = *state;
    start_node(f, 0);
    start_node(f, 1);
    char b_addr[256], b_id[DN_PEERID_STR_MAX];
    addr_of(f, 1, b_addr, sizeof b_addr);
    dn_peerid_to_string(dn_network_peerid(f->nodes[1].n), b_id, sizeof b_id);
    assert_int_equal(dn_network_dial(f->nodes[0].n, b_addr, on_dial, f), 0);
    RUN_UNTIL(f, f->nodes[0].identified == 1, 5000);
    /* B leaves before A's next batched write, then A stops: what is
     * pending is written, the peer that left included. */
    dn_peerid bid = *dn_network_peerid(f->nodes[1].n);
    assert_int_equal(dn_network_disconnect(f->nodes[0].n, &bid), 0);
    RUN_UNTIL(f, f->nodes[0].disconnected == 1 && f->nodes[1].disconnected == 1, 5000);
    stop_node(f, 0);
    dn_store *st;
    char err[256];
    assert_int_equal(dn__store_open(f->nodes[0].dir, &st, err, sizeof err), 0);
    dn_store_peer *sp;
    assert_int_equal(dn__store_peer_get(st, b_id, &sp), 0);
    assert_true(sp->n_addrs >= 1);
    assert_non_null(sp->pubkey);
    assert_true(strncmp(sp->agent, "dmsnet/", 7) == 0);
    free(sp);
    dn__store_close(st);

    /* At its next start A dials B by itself. */
    f->nodes[0].connected = 0;
    start_node(f, 0);
    RUN_UNTIL(f, f->nodes[0].connected == 1 && f->nodes[1].connected == 2, 5000);
    assert_string_equal(f->nodes[0].last_peer, b_id);
}

static void test_bootstrap_at_start(void **state)
{
    fx *f = *state;
    start_node(f, 1);
    char b_addr[256];
    addr_of(f, 1, b_addr, sizeof b_addr);
    start_node_cfg(f, 0, make_cfg(f, 0, "channel.bootstrap", b_addr, NULL));
    RUN_UNTIL(f, f->nodes[0].connected == 1 && f->nodes[0].identified == 1, 5000);
    /* The bootstrap peer restarts on the same port (its address is in the
     * config): A redials it, with backoff, without being told. */
    const char *port = strstr(b_addr, "/tcp/") + 5;
    char listen[64];
    snprintf(listen, sizeof listen, "/ip4/127.0.0.1/tcp/%d", atoi(port));
    stop_node(f, 1);
    RUN_UNTIL(f, f->nodes[0].disconnected == 1, 5000);
    start_node_cfg(f, 1, make_cfg(f, 1, "listen", listen, NULL));
    RUN_UNTIL(f, f->nodes[0].connected == 2, 10000);
}

static void test_config_update_persists(void **state)
{
    fx *f = *state;
    start_node(f, 0);
    char err[256];
    bool applied;
    json_t *v = json_integer(123);
    assert_int_equal(
        dn__node_config_update(f->nodes[0].n, "limits.max_conns", v, &applied, err, sizeof err), 0);
    assert_false(applied);
    json_decref(v);
    v = json_string("loud");
    assert_int_equal(dn__node_config_update(f->nodes[0].n, "log", v, &applied, err, sizeof err),
                     DN_EINVAL);
    assert_non_null(strstr(err, "'log'"));
    json_decref(v);
    v = json_string("/ip4/10.0.0.1/tcp/5001"); /* not loopback, no allow_remote */
    assert_int_not_equal(
        dn__node_config_update(f->nodes[0].n, "api.listen", v, &applied, err, sizeof err), 0);
    json_decref(v);
    v = json_string("x");
    assert_int_equal(dn__node_config_update(f->nodes[0].n, "data_dir", v, &applied, err,
                                            sizeof err),
                     DN_EINVAL);
    json_decref(v);
    v = json_integer(7);
    assert_int_equal(dn__node_config_update(f->nodes[0].n, "limits.max_conns_per_peer", v,
                                            &applied, err, sizeof err),
                     0);
    json_decref(v);
    stop_node(f, 0);

    /* Restart: the stored settings apply; a flag given explicitly wins. */
    start_node_cfg(f, 0, make_cfg(f, 0, "limits.max_conns_per_peer", "3", NULL));
    const dn__node_config *c = dn__node_config_of(f->nodes[0].n);
    assert_int_equal(c->limits.max_conns, 123);
    assert_int_equal(c->limits.max_conns_per_peer, 3);
    /* Removing a setting goes back to the default at the next start. */
    assert_int_equal(dn__node_config_update(f->nodes[0].n, "limits.max_conns", NULL, &applied, err,
                                            sizeof err),
                     0);
    stop_node(f, 0);
    start_node(f, 0);
    assert_int_equal(dn__node_config_of(f->nodes[0].n)->limits.max_conns, 4096);
}

/* AutoNAT v2 between two nodes on loopback (allowed for the test): each
 * serves the other, and A's address is dialled back, so A is public; the
 * event and Status say so. */
static void test_reachability_event(void **state)
{
    fx *f = *state;
    start_node_cfg(f, 1, make_cfg(f, 1, "autonat.allow_private", "true", NULL));
    start_node_cfg(f, 0,
                   make_cfg(f, 0, "autonat.allow_private", "true", "autonat.confidence", "1", NULL));
    char b_addr[256];
    addr_of(f, 1, b_addr, sizeof b_addr);
    assert_int_equal(dn_network_dial(f->nodes[0].n, b_addr, on_dial, f), 0);
    RUN_UNTIL(f, f->nodes[0].reach_events >= 1, 10000);
    assert_int_equal(f->nodes[0].reach, DN_REACHABILITY_PUBLIC);
    dn_network_status *st;
    assert_int_equal(dn_network_get_status(f->nodes[0].n, &st), 0);
    assert_int_equal(st->reachability, DN_REACHABILITY_PUBLIC);
    dn_network_status_free(st);
}

static void test_bad_store_refused(void **state)
{
    fx *f = *state;
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/dmsnet.db", f->nodes[0].dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not a database, and it must stay as it is\n", fp);
    fclose(fp);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    dn_network_config *cfg = make_cfg(f, 0, NULL);
    dn_network *n = NULL;
    int rc = dn_network_new(&f->loop, cfg, &n, err, sizeof err);
    dn_network_config_free(cfg);
    assert_int_equal(rc, DN_ECORRUPT);
    assert_null(n);
    assert_non_null(strstr(err, "dmsnet.db"));
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(before.st_mtime, after.st_mtime);
    uv_run(&f->loop, UV_RUN_NOWAIT);

    /* No data_dir: a clear error, nothing created. */
    assert_int_equal(dn_network_config_new(&cfg), 0);
    assert_int_equal(dn_network_new(&f->loop, cfg, &n, err, sizeof err), DN_EINVAL);
    assert_non_null(strstr(err, "data_dir"));
    dn_network_config_free(cfg);
}

/* ---- the DHT through the Network API (src/node/dht.c) ---- */

typedef struct kad_rec {
    int puts, put_status, gets, get_status;
    char value[64];
} kad_rec;

static void on_kad_put(void *arg, int status, size_t stored, const dn_kad_lookup_info *info)
{
    kad_rec *r = arg;
    (void)stored, (void)info;
    r->put_status = status;
    r->puts++;
}

static void on_kad_get(void *arg, int status, const uint8_t *value, size_t vlen,
                       const dn_kad_lookup_info *info)
{
    kad_rec *r = arg;
    (void)info;
    r->get_status = status;
    if (!status)
        snprintf(r->value, sizeof r->value, "%.*s", (int)vlen, (const char *)value);
    r->gets++;
}

static int count_dht_peer(void *ud, const dn_store_dht_peer *p)
{
    (void)p;
    ++*(int *)ud;
    return 0;
}

static void test_dht(void **state)
{
    fx *f = *state;
    start_node_cfg(f, 0, make_cfg(f, 0, "dht.mode", "server", NULL));
    start_node_cfg(f, 1, make_cfg(f, 1, "dht.mode", "server", NULL));
    dn_kad *a = dn_network_kad(f->nodes[0].n), *b = dn_network_kad(f->nodes[1].n);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(dn_kad_serving(a));
    assert_string_equal(dn_kad_protocol(a), "/dmsnet/kad/1.0.0");
    char a_addr[256];
    addr_of(f, 0, a_addr, sizeof a_addr);
    assert_int_equal(dn_network_dial(f->nodes[1].n, a_addr, on_dial, f), 0);
    RUN_UNTIL(f, dn_kad_table_size(a) == 1 && dn_kad_table_size(b) == 1, 10000);

    kad_rec r = {0};
    assert_int_equal(dn_kad_put_signed(a, "greeting", (const uint8_t *)"hi", 2, on_kad_put, &r),
                     0);
    RUN_UNTIL(f, r.puts == 1, 10000);
    assert_int_equal(r.put_status, 0);
    char key[160];
    snprintf(key, sizeof key, "/dmsnet/%s/greeting", f->dialled_peer);
    assert_int_equal(dn_kad_get(b, (const uint8_t *)key, strlen(key), on_kad_get, &r), 0);
    RUN_UNTIL(f, r.gets == 1, 10000);
    assert_int_equal(r.get_status, 0);
    assert_string_equal(r.value, "hi");

    /* Stopping writes the routing table to the store (within the tick
     * before, or at the stop). */
    stop_node(f, 0);
    dn_store *st;
    char err[512];
    assert_int_equal(dn__store_open(f->nodes[0].dir, &st, err, sizeof err), 0);
    int n = 0;
    assert_int_equal(dn__store_dht_table_list(st, count_dht_peer, &n), 0);
    assert_int_equal(n, 1);
    dn__store_close(st);
}

int main(void)
{
    /* As the daemon (src/cli/main.c): a write to a peer that reset the
     * connection is an error to handle, not a signal that ends us (the node's
     * DHT opens connections of its own that close under it). */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus),
        cmocka_unit_test_setup_teardown(test_dht, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_identify_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_at_run_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saved_peers_redialled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bootstrap_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_update_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reachability_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_store_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
