/* node — the Kademlia DHT in the node (issue 10): the service
 * (include/dmsnet/kad.h) attached to the node's host, its state kept in the
 * store, and its API routes.
 *
 *   POST /v0/dht/put        {"key", "value"}  -> {"key", "stored", "hops", "elapsed_ms"}
 *   GET  /v0/dht/get?key=K  (or POST {"key"}) -> {"key", "value", "hops", "elapsed_ms"}
 *   POST /v0/dht/findpeer   {"peer"}          -> {"peer_id", "addrs", "hops", "elapsed_ms"}
 *   POST /v0/dht/provide    {"cid"}           -> {"cid", "key", "stored", ...}
 *   POST /v0/dht/findprovs  {"cid", "max"}    -> {"cid", "providers": [{"peer_id", "addrs"}]}
 *   GET  /v0/dht/table                        -> {"protocol", "mode", "serving", "size", "peers"}
 *
 * value is base64 (records are bytes). A key is text: "/dmsnet/<peer id>/<name>"
 * (only our own peer id: the value goes out in an envelope we sign),
 * "/pk/<peer id>" (the wire key is "/pk/" + the multihash bytes, as go and
 * js write it), or any other text as its bytes (the service refuses a
 * namespace it has no validator for). A CID's multihash is its provider
 * key (so a CIDv0 and its CIDv1 name the same providers).
 *
 * Mode: dht.mode (auto: serve once AutoNAT says we are reachable, from the
 * node's LOCAL_REACHABILITY_CHANGED events). Dial by peer id goes through
 * the DHT (dn_kad_route_dials). Bootstrap: when a bootstrap peer connects
 * (dial.c), and at start from the routing table restored from the store.
 *
 * Persistence: the service's callbacks only copy what changed (the latest
 * routing table, a bounded queue of provider and record changes); the tick
 * writes it in one transaction (one fsync a second at most). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/io.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/kad.h"
#include "dmsnet/log.h"
#include "multiformats/cid.h"
#include "node/network_int.h"

/* A record's value is at most 64 KiB: base64 in JSON with the key. */
#define DHT_BODY_MAX (100u * 1024)
#define DHT_KEY_MAX 2048
#define DHT_VALUE_MAX 65536
/* Provider and record changes waiting for the next tick's write; past it a
 * change is dropped (the service still holds it; only a restart loses it). */
#define OPS_MAX 4096
#define OPS_PER_TICK 1024
#define PRUNE_EVERY_TICKS 60
#define RECORD_TTL_MS (48ull * 3600 * 1000) /* the spec's, and the service's default */
#define FINDPROVS_MAX 100
/* Bootstrap again after a failed one (nobody answered) no sooner than this,
 * doubling to the most. */
#define BOOT_RETRY_MIN_MS 2000
#define BOOT_RETRY_MAX_MS 60000

typedef enum op_kind { OP_PROVIDER, OP_DROP_PROVIDER, OP_RECORD } op_kind;

typedef struct pop {
    op_kind kind;
    uint8_t *key; /* malloc'd, with the value after it for OP_RECORD */
    size_t keylen, vlen;
    char provider[DN_PEERID_STR_MAX];
    int64_t t; /* expiry (providers) or time received (records) */
} pop;

typedef struct tpeer {
    char id[DN_PEERID_STR_MAX];
    char *addrs[DN_STORE_DHT_PEER_ADDRS_MAX];
    size_t naddrs;
} tpeer;

struct dn__node_dht {
    dn_network *n;
    dn_kad *kad;
    bool restoring;
    /* the latest routing table the service handed over, not yet written */
    tpeer *table;
    size_t ntable;
    bool table_dirty;
    pop *ops;
    size_t nops;
    uint64_t dropped_ops;
    /* bootstrap */
    bool boot_wanted, boot_running;
    uint64_t boot_next_ms; /* loop time */
    uint32_t boot_backoff_ms;
    size_t restored_peers;
};

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

dn_kad *dn_network_kad(dn_network *n)
{
    return n->dht ? n->dht->kad : NULL;
}

/* ---- persistence: the service's callbacks ---- */

static void table_clear(tpeer *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < t[i].naddrs; j++)
            free(t[i].addrs[j]);
    free(t);
}

static void on_save_table(void *arg, const dn_peerid *peers, const dn_multiaddr *const *addrs,
                          const size_t *naddrs, size_t n)
{
    dn__node_dht *d = arg;
    if (d->restoring || d->n->stopping)
        return;
    if (n > DN_STORE_DHT_PEERS_MAX)
        n = DN_STORE_DHT_PEERS_MAX;
    tpeer *t = n ? calloc(n, sizeof *t) : NULL;
    if (n && !t) {
        DN_LOG_LIMITED(DN_LOG_WARN, "dht", "out of memory: the routing table is not saved");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        dn_peerid_to_string(&peers[i], t[i].id, sizeof t[i].id);
        size_t na = naddrs && addrs ? naddrs[i] : 0;
        for (size_t j = 0; j < na && t[i].naddrs < DN_STORE_DHT_PEER_ADDRS_MAX; j++) {
            char text[DN_MULTIADDR_STR_MAX];
            if (dn_multiaddr_to_string(&addrs[i][j], text, sizeof text) < 0)
                continue;
            if ((t[i].addrs[t[i].naddrs] = strdup(text)))
                t[i].naddrs++;
        }
    }
    table_clear(d->table, d->ntable);
    d->table = t;
    d->ntable = n;
    d->table_dirty = true;
}

static pop *op_new(dn__node_dht *d, op_kind kind, const uint8_t *key, size_t keylen,
                   const uint8_t *value, size_t vlen)
{
    if (d->restoring || d->n->stopping || !keylen || keylen > DN_STORE_DHT_KEY_MAX ||
        vlen > DN_STORE_DHT_VALUE_MAX)
        return NULL;
    if (d->nops >= OPS_MAX) {
        d->dropped_ops++;
        DN_LOG_LIMITED(DN_LOG_WARN, "dht", "store queue full: a DHT change is not saved");
        return NULL;
    }
    if (!d->ops && !(d->ops = calloc(OPS_MAX, sizeof *d->ops)))
        return NULL;
    uint8_t *copy = malloc(keylen + vlen + 1);
    if (!copy)
        return NULL;
    memcpy(copy, key, keylen);
    if (vlen)
        memcpy(copy + keylen, value, vlen);
    pop *o = &d->ops[d->nops++];
    *o = (pop){.kind = kind, .key = copy, .keylen = keylen, .vlen = vlen};
    return o;
}

static void on_save_provider(void *arg, const uint8_t *key, size_t keylen,
                             const dn_peerid *provider, uint64_t expires_unix_ms)
{
    pop *o = op_new(arg, OP_PROVIDER, key, keylen, NULL, 0);
    if (!o)
        return;
    dn_peerid_to_string(provider, o->provider, sizeof o->provider);
    o->t = (int64_t)expires_unix_ms;
}

static void on_drop_provider(void *arg, const uint8_t *key, size_t keylen,
                             const dn_peerid *provider)
{
    pop *o = op_new(arg, OP_DROP_PROVIDER, key, keylen, NULL, 0);
    if (o)
        dn_peerid_to_string(provider, o->provider, sizeof o->provider);
}

static void on_save_record(void *arg, const uint8_t *key, size_t keylen, const uint8_t *value,
                           size_t vlen, uint64_t received_unix_ms)
{
    pop *o = op_new(arg, OP_RECORD, key, keylen, value, vlen);
    if (o)
        o->t = (int64_t)received_unix_ms;
}

/* Write what changed: one transaction, at most OPS_PER_TICK changes. */
static void flush(dn__node_dht *d, bool prune)
{
    dn_store *st = d->n->store;
    if (!st || (!d->table_dirty && !d->nops && !prune))
        return;
    int rc = dn__store_begin(st);
    size_t done = 0;
    bool table_done = false;
    if (!rc && d->table_dirty) {
        dn_store_dht_peer *sp = d->ntable ? calloc(d->ntable, sizeof *sp) : NULL;
        for (size_t i = 0; sp && i < d->ntable; i++)
            sp[i] = (dn_store_dht_peer){.peer_id = d->table[i].id,
                                        .addrs = (const char *const *)d->table[i].addrs,
                                        .n_addrs = d->table[i].naddrs};
        /* A table that cannot be written (its own savepoint undone) is
         * dropped, not retried: the next save brings a fresh one. */
        int trc = d->ntable && !sp ? DN_ENOMEM : dn__store_dht_table_set(st, sp, d->ntable);
        if (trc)
            DN_LOG_LIMITED(DN_LOG_WARN, "dht", "cannot save the routing table: %s",
                           trc == DN_ENOMEM ? "out of memory" : dn__store_errmsg(st));
        free(sp);
        table_done = true;
    }
    for (; !rc && done < d->nops && done < OPS_PER_TICK; done++) {
        pop *o = &d->ops[done];
        int orc = 0;
        switch (o->kind) {
        case OP_PROVIDER:
            orc = dn__store_dht_provider_put(st, o->key, o->keylen, o->provider, o->t);
            break;
        case OP_DROP_PROVIDER:
            orc = dn__store_dht_provider_delete(st, o->key, o->keylen, o->provider);
            if (orc == DN_ENOTFOUND)
                orc = 0;
            break;
        case OP_RECORD:
            orc =
                dn__store_dht_record_put(st, o->key, o->keylen, o->key + o->keylen, o->vlen, o->t);
            break;
        }
        if (orc) /* this one only (a savepoint): the others still go */
            DN_LOG_LIMITED(DN_LOG_WARN, "dht", "cannot save a DHT change: %s",
                           dn__store_errmsg(st));
    }
    if (!rc && prune) {
        uint64_t now = unix_ms();
        int64_t k = dn__store_dht_prune(st, (int64_t)now, (int64_t)(now - RECORD_TTL_MS));
        if (k < 0)
            rc = (int)k;
    }
    if (!rc)
        rc = dn__store_commit(st);
    if (rc) {
        DN_WARN("dht", "cannot save the DHT state: %s", dn__store_errmsg(st));
        dn__store_rollback(st);
        return; /* kept for the next tick */
    }
    if (table_done)
        d->table_dirty = false;
    for (size_t i = 0; i < done; i++)
        free(d->ops[i].key);
    if (done)
        memmove(d->ops, d->ops + done, (d->nops - done) * sizeof *d->ops);
    d->nops -= done;
}

/* ---- restore at start ---- */

static int restore_peer(void *ud, const dn_store_dht_peer *p)
{
    dn__node_dht *d = ud;
    dn_peerid id;
    if (dn_peerid_parse(p->peer_id, &id) || dn_peerid_equal(&id, dn_host_peerid(d->n->host)))
        return 0;
    dn_multiaddr addrs[DN_STORE_DHT_PEER_ADDRS_MAX];
    size_t k = 0;
    for (size_t i = 0; i < p->n_addrs && k < DN_STORE_DHT_PEER_ADDRS_MAX; i++)
        if (dn_multiaddr_parse(p->addrs[i], &addrs[k]) == 0)
            k++;
    if (dn_kad_restore_peer(d->kad, &id, addrs, k) == 0)
        d->restored_peers++;
    return 0;
}

typedef struct restore_count {
    dn__node_dht *d;
    size_t n;
} restore_count;

static int restore_provider(void *ud, const uint8_t *key, size_t keylen, const char *provider,
                            int64_t expires_ms)
{
    restore_count *rc = ud;
    dn_peerid id;
    if (dn_peerid_parse(provider, &id) == 0 &&
        dn_kad_restore_provider(rc->d->kad, key, keylen, &id, (uint64_t)expires_ms) == 0)
        rc->n++;
    return 0;
}

static int restore_record(void *ud, const uint8_t *key, size_t keylen, const uint8_t *value,
                          size_t vlen, int64_t received_ms)
{
    restore_count *rc = ud;
    if (dn_kad_restore_record(rc->d->kad, key, keylen, value, vlen, (uint64_t)received_ms) == 0)
        rc->n++;
    return 0;
}

static void restore(dn__node_dht *d)
{
    dn_store *st = d->n->store;
    uint64_t now = unix_ms();
    restore_count provs = {d, 0}, recs = {d, 0};
    d->restoring = true;
    if (dn__store_dht_table_list(st, restore_peer, d) < 0 ||
        dn__store_dht_provider_list(st, (int64_t)now, restore_provider, &provs) < 0 ||
        dn__store_dht_record_list(st, (int64_t)(now - RECORD_TTL_MS), restore_record, &recs) < 0)
        DN_WARN("dht", "cannot read the saved DHT state: %s", dn__store_errmsg(st));
    d->restoring = false;
    if (d->restored_peers || provs.n || recs.n)
        DN_INFO("dht", "restored %zu routing table peers, %zu provider records, %zu records",
                d->restored_peers, provs.n, recs.n);
}

/* ---- mode, bootstrap ---- */

static void on_net_event(dn_network *n, const dn_network_event *ev, void *arg)
{
    dn__node_dht *d = arg;
    (void)n;
    if (ev->type == DN_NET_EV_REACHABILITY_CHANGED)
        dn_kad_set_reachable(d->kad, ev->reachability == DN_REACHABILITY_PUBLIC);
}

int dn__node_dht_attach(dn_network *n, char *err, size_t errlen)
{
    dn__node_dht *d = calloc(1, sizeof *d);
    if (!d) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    d->n = n;
    d->boot_backoff_ms = BOOT_RETRY_MIN_MS;
    n->dht = d;
    const dn__node_config *c = &n->cfg.c;
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.prefix = c->channel.dht_prefix;
    kc.mode = c->dht.mode == DN__NODE_DHT_SERVER   ? DN_KAD_MODE_SERVER
              : c->dht.mode == DN__NODE_DHT_CLIENT ? DN_KAD_MODE_CLIENT
                                                   : DN_KAD_MODE_AUTO;
    kc.persist = (dn_kad_persist){.arg = d,
                                  .save_table = on_save_table,
                                  .save_provider = on_save_provider,
                                  .drop_provider = on_drop_provider,
                                  .save_record = on_save_record};
    int rc = dn_kad_attach(n->host, &kc, &d->kad);
    if (rc) {
        dn__set_err(err, errlen, "cannot start the DHT (%s/kad/1.0.0): %s", kc.prefix,
                    dn_strerror(rc));
        return rc;
    }
    if ((rc = dn_kad_route_dials(d->kad))) {
        dn__set_err(err, errlen, "cannot route dials through the DHT: %s", dn_strerror(rc));
        return rc;
    }
    if (kc.mode == DN_KAD_MODE_AUTO &&
        (rc =
             dn_network_event_register(n, 1u << DN_NET_EV_REACHABILITY_CHANGED, on_net_event, d))) {
        dn__set_err(err, errlen, "cannot follow reachability for the DHT: %s", dn_strerror(rc));
        return rc;
    }
    restore(d);
    return 0;
}

static void on_boot_done(void *arg, int status, size_t n)
{
    dn_network *net = arg;
    dn__node_dht *d = net->dht;
    if (!d || net->stopping)
        return;
    d->boot_running = false;
    if (status || n == 0) {
        /* Nobody answered yet (the bootstrap peer still identifying, or
         * the restored peers gone): try again later, with backoff. */
        d->boot_wanted = true;
        d->boot_next_ms = uv_now(net->loop) + d->boot_backoff_ms;
        d->boot_backoff_ms =
            d->boot_backoff_ms * 2 > BOOT_RETRY_MAX_MS ? BOOT_RETRY_MAX_MS : d->boot_backoff_ms * 2;
        DN_DEBUG("dht", "bootstrap: %s, %zu peers in the table", dn_strerror(status), n);
        return;
    }
    d->boot_backoff_ms = BOOT_RETRY_MIN_MS;
    DN_INFO("dht", "bootstrapped: %zu peers in the routing table", n);
}

static void boot_now(dn__node_dht *d)
{
    d->boot_wanted = false;
    d->boot_running = true;
    int rc = dn_kad_bootstrap(d->kad, on_boot_done, d->n);
    if (rc) {
        d->boot_running = false;
        d->boot_wanted = true;
        d->boot_next_ms = uv_now(d->n->loop) + d->boot_backoff_ms;
    }
}

void dn__node_dht_bootstrap_soon(dn_network *n)
{
    dn__node_dht *d = n->dht;
    if (!d || d->boot_running)
        return;
    /* At the next tick: the peer has identified by then, so the service
     * knows it speaks the protocol. */
    d->boot_wanted = true;
    d->boot_next_ms = uv_now(n->loop) + 500;
    d->boot_backoff_ms = BOOT_RETRY_MIN_MS;
}

void dn__node_dht_start(dn_network *n)
{
    dn__node_dht *d = n->dht;
    if (d && d->restored_peers)
        boot_now(d);
}

void dn__node_dht_tick(dn_network *n)
{
    dn__node_dht *d = n->dht;
    if (!d)
        return;
    if (d->boot_wanted && !d->boot_running && uv_now(n->loop) >= d->boot_next_ms)
        boot_now(d);
    flush(d, n->ticks % PRUNE_EVERY_TICKS == 0);
}

/* The routing table as it is now, from the service's table and the
 * peerstore: the service hands over a changed table at most once a second
 * and not at all at close, so the last second's changes would be lost. */
static void snapshot_table(dn__node_dht *d)
{
    size_t n = dn_kad_table_size(d->kad);
    if (n > DN_STORE_DHT_PEERS_MAX)
        n = DN_STORE_DHT_PEERS_MAX;
    dn_kad_table_entry *e = n ? calloc(n, sizeof *e) : NULL;
    tpeer *t = n ? calloc(n, sizeof *t) : NULL;
    if (n && (!e || !t)) {
        free(e);
        free(t);
        return;
    }
    n = n ? dn_kad_table(d->kad, e, n) : 0;
    for (size_t i = 0; i < n; i++) {
        dn_peerid_to_string(&e[i].id, t[i].id, sizeof t[i].id);
        const dn_peer_info *p = dn_host_peer(d->n->host, &e[i].id);
        for (size_t j = 0; p && j < p->naddrs && t[i].naddrs < DN_STORE_DHT_PEER_ADDRS_MAX; j++) {
            dn_multiaddr ma;
            char text[DN_MULTIADDR_STR_MAX];
            if (dn_peer_info_addr(p, j, &ma) || dn_multiaddr_to_string(&ma, text, sizeof text) < 0)
                continue;
            if ((t[i].addrs[t[i].naddrs] = strdup(text)))
                t[i].naddrs++;
        }
    }
    free(e);
    table_clear(d->table, d->ntable);
    d->table = t;
    d->ntable = n;
    d->table_dirty = true;
}

void dn__node_dht_stop(dn_network *n)
{
    dn__node_dht *d = n->dht;
    if (!d)
        return;
    /* Everything that changed, before the host (and the service) go. */
    snapshot_table(d);
    for (int i = 0; i < OPS_MAX / OPS_PER_TICK + 1 && (d->table_dirty || d->nops); i++) {
        size_t before = d->nops;
        bool dirty = d->table_dirty;
        flush(d, false);
        if (d->nops == before && d->table_dirty == dirty)
            break; /* nothing could be written */
    }
    dn_network_event_unregister(n, on_net_event, d);
}

void dn__node_dht_free(dn_network *n)
{
    dn__node_dht *d = n->dht;
    if (!d)
        return;
    table_clear(d->table, d->ntable);
    for (size_t i = 0; i < d->nops; i++)
        free(d->ops[i].key);
    free(d->ops);
    free(d); /* the service goes with the host */
    n->dht = NULL;
}

/* ---- API: keys, values, replies ---- */

static json_t *b64_json(const uint8_t *data, size_t len)
{
    size_t n = dn_base64_enc_len(len) + 1;
    char *text = malloc(n);
    if (!text || dn_base64_encode(data, len, text, n) < 0) {
        free(text);
        return NULL;
    }
    json_t *v = json_string(text);
    free(text);
    return v;
}

static unsigned status_of(int rc)
{
    switch (rc) {
    case DN_ENOTFOUND: return 404;
    case DN_EINVAL:
    case DN_EMALFORMED:
    case DN_ETRUNCATED:
    case DN_EPEERID:
    case DN_EBADSIG:
    case DN_EUNSUPPORTED: return 400;
    case DN_ESTATE: return 409;
    case DN_ETOOBIG: return 413;
    case DN_ETIMEOUT: return 504;
    case DN_ELIMIT: return 429;
    case DN_ECLOSED: return 503;
    default: return 502;
    }
}

typedef struct dht_op dht_op;
static void add_info(json_t *o, const dht_op *op, const dn_kad_lookup_info *info);

static json_t *addrs_json(const dn_multiaddr *addrs, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        char text[DN_MULTIADDR_STR_MAX];
        if (dn_multiaddr_to_string(&addrs[i], text, sizeof text) >= 0)
            json_array_append_new(a, json_string(text));
    }
    return a;
}

/* A key as the user writes it -> the key's bytes. For "/dmsnet/<id>/<name>"
 * *owner gets the peer id and *name points into text at <name>. Returns the
 * length, or -1 with the reply sent. */
typedef struct dht_key {
    uint8_t bytes[DHT_KEY_MAX];
    size_t len;
    bool dmsnet;
    dn_peerid owner;
    const char *name;
} dht_key;

static int parse_key(dn_api_req *req, const char *text, dht_key *k)
{
    memset(k, 0, sizeof *k);
    size_t n = text ? strlen(text) : 0;
    if (!n) {
        dn__api_reply_error(req, 400, "'key' is missing");
        return -1;
    }
    if (n > DHT_KEY_MAX) {
        dn__api_reply_error(req, 400, "'key' is longer than %d bytes", DHT_KEY_MAX);
        return -1;
    }
    if (!strncmp(text, "/pk/", 4)) {
        /* go and js: "/pk/" + the multihash's bytes (a peer id's bytes). */
        dn_peerid id;
        if (dn_peerid_parse(text + 4, &id)) {
            dn__api_reply_error(req, 400, "a /pk/ key is /pk/<peer id> (a multihash in base58btc)");
            return -1;
        }
        memcpy(k->bytes, "/pk/", 4);
        memcpy(k->bytes + 4, id.bytes, id.len);
        k->len = 4 + id.len;
        return 0;
    }
    if (!strncmp(text, "/dmsnet/", 8)) {
        const char *id = text + 8, *slash = strchr(id, '/');
        char idtext[DN_PEERID_STR_MAX];
        if (!slash || slash == id || (size_t)(slash - id) >= sizeof idtext || !slash[1]) {
            dn__api_reply_error(req, 400, "a /dmsnet/ key is /dmsnet/<peer id>/<name>");
            return -1;
        }
        memcpy(idtext, id, (size_t)(slash - id));
        idtext[slash - id] = 0;
        if (dn_peerid_parse(idtext, &k->owner)) {
            dn__api_reply_error(req, 400,
                                "a /dmsnet/ key is /dmsnet/<peer id>/<name>: '%s' is "
                                "not a peer id",
                                idtext);
            return -1;
        }
        /* The peer id in its canonical form (base58btc), as the owner
         * signs it; a CIDv1 spelling names the same key. */
        char canon[DN_PEERID_STR_MAX];
        dn_peerid_to_string(&k->owner, canon, sizeof canon);
        int m = snprintf((char *)k->bytes, sizeof k->bytes, "/dmsnet/%s/%s", canon, slash + 1);
        if (m < 0 || (size_t)m >= sizeof k->bytes) {
            dn__api_reply_error(req, 400, "'key' is longer than %d bytes", DHT_KEY_MAX);
            return -1;
        }
        k->len = (size_t)m;
        k->dmsnet = true;
        k->name = slash + 1;
        return 0;
    }
    memcpy(k->bytes, text, n);
    k->len = n;
    return 0;
}

typedef struct dht_op {
    dn_api_req *req;
    uv_loop_t *loop;
    uint64_t start_ms; /* loop time: elapsed_ms is measured here, whole */
    char *label;       /* the key, peer or cid as the user wrote it */
    json_t *list;      /* findprovs */
    size_t max;
} dht_op;

/* hops and asked from the lookup; elapsed_ms from the request's start (a
 * lookup answered without asking anybody may not have timed itself). */
static void add_info(json_t *o, const dht_op *op, const dn_kad_lookup_info *info)
{
    if (info) {
        json_object_set_new(o, "hops", json_integer(info->hops));
        json_object_set_new(o, "asked", json_integer(info->asked));
    }
    json_object_set_new(o, "elapsed_ms",
                        json_integer((json_int_t)(uv_now(op->loop) - op->start_ms)));
}

static dht_op *op_start(dn__node_dht *d, dn_api_req *req, const char *label)
{
    dht_op *op = calloc(1, sizeof *op);
    if (!op || !(op->label = strdup(label))) {
        free(op);
        dn__api_reply_error(req, 500, "out of memory");
        return NULL;
    }
    op->req = req;
    op->loop = d->n->loop;
    uv_update_time(op->loop);
    op->start_ms = uv_now(op->loop);
    return op;
}

static void op_free(dht_op *op)
{
    json_decref(op->list);
    free(op->label);
    free(op);
}

/* The label as it may appear in a message: escaped (an API client's text). */
static void shown(const char *s, char *out, size_t outlen)
{
    dn_escape_text(s, strlen(s), out, outlen);
}

/* ---- put / get ---- */

/* Why the service refused a record (records.h's codes). */
static const char *put_why(int rc)
{
    switch (rc) {
    case DN_EUNSUPPORTED:
        return "no validator for this key's namespace (the DHT takes /pk/<peer id> and "
               "/dmsnet/<peer id>/<name>)";
    case DN_EINVAL: return "the key is malformed for its namespace";
    case DN_EPEERID:
        return "the value does not belong to the key (a /pk/ value is the public key of the "
               "key's peer id)";
    case DN_EBADSIG: return "the record's signature does not verify";
    case DN_EMALFORMED:
    case DN_ETRUNCATED: return "the value is malformed for its namespace";
    case DN_ESTATE: return "a newer record is held for this key";
    case DN_ERESET: return "every peer asked refused the record";
    default: return dn_strerror(rc);
    }
}

static void on_put(void *arg, int status, size_t stored, const dn_kad_lookup_info *info)
{
    dht_op *op = arg;
    char key[DN_ESCAPE_MAX(256)];
    shown(op->label, key, sizeof key);
    if (status) {
        dn__api_reply_error(op->req, status_of(status), "put %s: %s", key, put_why(status));
    } else {
        json_t *o = json_pack("{s:s, s:I}", "key", op->label, "stored", (json_int_t)stored);
        add_info(o, op, info);
        dn__api_reply(op->req, 200, o);
    }
    op_free(op);
}

static int body_bytes(dn_api_req *req, json_t *b, const char *field, uint8_t **out, size_t *len)
{
    json_t *d = json_object_get(b, field);
    if (!json_is_string(d)) {
        dn__api_reply_error(req, 400, "'%s' (base64) is missing", field);
        return -1;
    }
    size_t n = json_string_length(d), cap = n / 4 * 3 + 3;
    *out = malloc(cap);
    int k = *out ? dn_base64_decode(json_string_value(d), n, *out, cap) : DN_ENOMEM;
    if (k < 0) {
        free(*out);
        dn__api_reply_error(req, 400, "'%s' is not base64", field);
        return -1;
    }
    *len = (size_t)k;
    return 0;
}

static void on_put_req(dn_api_req *req, void *ud)
{
    dn__node_dht *d = ud;
    json_t *b = dn__api_req_body(req);
    const char *text = json_string_value(json_object_get(b, "key"));
    dht_key k;
    if (parse_key(req, text, &k))
        return;
    if (k.dmsnet && !dn_peerid_equal(&k.owner, dn_host_peerid(d->n->host))) {
        char id[DN_PEERID_STR_MAX];
        dn_peerid_to_string(&k.owner, id, sizeof id);
        dn__api_reply_error(req, 403,
                            "only %s can write /dmsnet/%s/... (a /dmsnet/ record is "
                            "signed by the peer its key names)",
                            id, id);
        return;
    }
    uint8_t *value;
    size_t vlen;
    if (body_bytes(req, b, "value", &value, &vlen))
        return;
    if (vlen > DHT_VALUE_MAX) {
        free(value);
        dn__api_reply_error(req, 413, "the value is larger than the limit (%d bytes)",
                            DHT_VALUE_MAX);
        return;
    }
    dht_op *op = op_start(d, req, text);
    if (!op) {
        free(value);
        return;
    }
    int rc = k.dmsnet ? dn_kad_put_signed(d->kad, k.name, value, vlen, on_put, op)
                      : dn_kad_put(d->kad, k.bytes, k.len, value, vlen, on_put, op);
    free(value);
    if (rc)
        on_put(op, rc, 0, NULL);
}

static void on_value(void *arg, int status, const uint8_t *value, size_t vlen,
                     const dn_kad_lookup_info *info)
{
    dht_op *op = arg;
    char key[DN_ESCAPE_MAX(256)];
    shown(op->label, key, sizeof key);
    if (status == DN_ENOTFOUND) {
        dn__api_reply_error(op->req, 404, "no record found for %s", key);
    } else if (status) {
        dn__api_reply_error(op->req, status_of(status), "get %s: %s", key, dn_strerror(status));
    } else {
        json_t *o = json_pack("{s:s, s:o}", "key", op->label, "value", b64_json(value, vlen));
        add_info(o, op, info);
        dn__api_reply(op->req, o ? 200 : 500, o);
    }
    op_free(op);
}

static void on_get_req(dn_api_req *req, void *ud)
{
    dn__node_dht *d = ud;
    const char *text = dn__api_req_query(req, "key");
    if (!text)
        text = json_string_value(json_object_get(dn__api_req_body(req), "key"));
    dht_key k;
    if (parse_key(req, text, &k))
        return;
    dht_op *op = op_start(d, req, text);
    if (!op)
        return;
    int rc = dn_kad_get(d->kad, k.bytes, k.len, on_value, op);
    if (rc)
        on_value(op, rc, NULL, 0, NULL);
}

/* ---- findpeer ---- */

static void on_peer_found(void *arg, int status, const dn_peerid *peer, const dn_multiaddr *addrs,
                          size_t naddrs, const dn_kad_lookup_info *info)
{
    dht_op *op = arg;
    (void)peer;
    if (status == DN_ENOTFOUND) {
        dn__api_reply_error(op->req, 404, "peer %s not found in the DHT", op->label);
    } else if (status) {
        dn__api_reply_error(op->req, status_of(status), "findpeer %s: %s", op->label,
                            dn_strerror(status));
    } else {
        json_t *o =
            json_pack("{s:s, s:o}", "peer_id", op->label, "addrs", addrs_json(addrs, naddrs));
        add_info(o, op, info);
        dn__api_reply(op->req, o ? 200 : 500, o);
    }
    op_free(op);
}

static void on_findpeer_req(dn_api_req *req, void *ud)
{
    dn__node_dht *d = ud;
    const char *text = json_string_value(json_object_get(dn__api_req_body(req), "peer"));
    dn_peerid id;
    if (!text || dn_peerid_parse(text, &id)) {
        dn__api_reply_error(req, 400, "'peer' must be a peer id");
        return;
    }
    if (dn_peerid_equal(&id, dn_host_peerid(d->n->host))) {
        dn__api_reply_error(req, 400, "%s is this node's own peer id", text);
        return;
    }
    char canon[DN_PEERID_STR_MAX];
    dn_peerid_to_string(&id, canon, sizeof canon);
    dht_op *op = op_start(d, req, canon);
    if (!op)
        return;
    int rc = dn_kad_find_peer(d->kad, &id, on_peer_found, op);
    if (rc)
        on_peer_found(op, rc, NULL, NULL, 0, NULL);
}

/* ---- provide / findprovs ---- */

static int parse_cid(dn_api_req *req, dn__cid *cid, const char **text)
{
    *text = json_string_value(json_object_get(dn__api_req_body(req), "cid"));
    const char *why = "missing";
    if (!*text || dn__cid_parse(*text, strlen(*text), cid, &why)) {
        dn__api_reply_error(req, 400, "'cid' must be a CID (Qm... or b...): %s", why);
        return -1;
    }
    return 0;
}

static void on_provided(void *arg, int status, size_t stored, const dn_kad_lookup_info *info)
{
    dht_op *op = arg;
    if (status) {
        dn__api_reply_error(op->req, status_of(status), "provide %s: %s", op->label,
                            dn_strerror(status));
    } else {
        json_t *o = json_pack("{s:s, s:I}", "cid", op->label, "stored", (json_int_t)stored);
        add_info(o, op, info);
        dn__api_reply(op->req, 200, o);
    }
    op_free(op);
}

static void on_provide_req(dn_api_req *req, void *ud)
{
    dn__node_dht *d = ud;
    dn__cid cid;
    const char *text;
    if (parse_cid(req, &cid, &text))
        return;
    dht_op *op = op_start(d, req, text);
    if (!op)
        return;
    int rc = dn_kad_provide(d->kad, cid.mh, cid.mh_len, on_provided, op);
    if (rc)
        on_provided(op, rc, 0, NULL);
}

static void on_provider(void *arg, int status, const dn_peerid *peer, const dn_multiaddr *addrs,
                        size_t naddrs, const dn_kad_lookup_info *info)
{
    dht_op *op = arg;
    if (peer) {
        if (json_array_size(op->list) >= op->max)
            return;
        char id[DN_PEERID_STR_MAX];
        dn_peerid_to_string(peer, id, sizeof id);
        json_array_append_new(
            op->list, json_pack("{s:s, s:o}", "peer_id", id, "addrs", addrs_json(addrs, naddrs)));
        return;
    }
    /* The last call: the lookup is over. */
    if (json_array_size(op->list) == 0) {
        if (status == 0 || status == DN_ENOTFOUND)
            dn__api_reply_error(op->req, 404, "no providers found for %s", op->label);
        else
            dn__api_reply_error(op->req, status_of(status), "findprovs %s: %s", op->label,
                                dn_strerror(status));
    } else {
        json_t *o = json_pack("{s:s, s:O}", "cid", op->label, "providers", op->list);
        add_info(o, op, info);
        dn__api_reply(op->req, o ? 200 : 500, o);
    }
    op_free(op);
}

static void on_findprovs_req(dn_api_req *req, void *ud)
{
    dn__node_dht *d = ud;
    dn__cid cid;
    const char *text;
    if (parse_cid(req, &cid, &text))
        return;
    json_t *m = json_object_get(dn__api_req_body(req), "max");
    if (m && (!json_is_integer(m) || json_integer_value(m) < 1 ||
              json_integer_value(m) > FINDPROVS_MAX)) {
        dn__api_reply_error(req, 400, "'max' must be 1..%d", FINDPROVS_MAX);
        return;
    }
    dht_op *op = op_start(d, req, text);
    if (!op)
        return;
    op->max = m ? (size_t)json_integer_value(m) : 20;
    if (!(op->list = json_array())) {
        dn__api_reply_error(req, 500, "out of memory");
        op_free(op);
        return;
    }
    int rc = dn_kad_find_providers(d->kad, cid.mh, cid.mh_len, op->max, on_provider, op);
    if (rc)
        on_provider(op, rc, NULL, NULL, 0, NULL);
}

/* ---- table ---- */

static void on_table_req(dn_api_req *req, void *ud)
{
    dn__node_dht *d = ud;
    size_t n = dn_kad_table_size(d->kad);
    dn_kad_table_entry *e = n ? calloc(n, sizeof *e) : NULL;
    if (n && !e) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    n = n ? dn_kad_table(d->kad, e, n) : 0;
    uint64_t now = unix_ms();
    json_t *peers = json_array();
    for (size_t i = 0; peers && i < n; i++) {
        char id[DN_PEERID_STR_MAX];
        dn_peerid_to_string(&e[i].id, id, sizeof id);
        json_array_append_new(
            peers, json_pack("{s:I, s:s, s:I, s:I, s:I, s:b}", "bucket", (json_int_t)e[i].bucket,
                             "peer_id", id, "added_ms", (json_int_t)e[i].added_unix_ms, "seen_ms",
                             (json_int_t)e[i].seen_unix_ms, "age_ms",
                             (json_int_t)(now > e[i].added_unix_ms ? now - e[i].added_unix_ms : 0),
                             "stale", (int)e[i].stale));
    }
    free(e);
    dn_kad_stats st;
    dn_kad_get_stats(d->kad, &st);
    json_t *o = json_pack(
        "{s:s, s:s, s:b, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "protocol",
        dn_kad_protocol(d->kad), "mode", dn__node_dht_mode_name(d->n->cfg.c.dht.mode), "serving",
        (int)dn_kad_serving(d->kad), "size", (json_int_t)n, "peers", peers, "stats", "requests_in",
        (json_int_t)st.requests_in, "requests_bad", (json_int_t)st.requests_bad, "requests_out",
        (json_int_t)st.requests_out, "requests_failed", (json_int_t)st.requests_failed,
        "records_held", (json_int_t)st.records_held, "providers_held",
        (json_int_t)st.providers_held, "queries_running", (json_int_t)st.queries_running);
    dn__api_reply(req, o ? 200 : 500, o);
}

int dn__node_dht_routes(dn_network *n, dn_api *api)
{
    dn__node_dht *d = n->dht;
    int rc;
    if ((rc = dn__api_route(api, "POST", "/v0/dht/put", false, on_put_req, d)) ||
        (rc = dn__api_route(api, "GET", "/v0/dht/get", false, on_get_req, d)) ||
        (rc = dn__api_route(api, "POST", "/v0/dht/get", false, on_get_req, d)) ||
        (rc = dn__api_route(api, "POST", "/v0/dht/findpeer", false, on_findpeer_req, d)) ||
        (rc = dn__api_route(api, "POST", "/v0/dht/provide", false, on_provide_req, d)) ||
        (rc = dn__api_route(api, "POST", "/v0/dht/findprovs", false, on_findprovs_req, d)) ||
        (rc = dn__api_route(api, "GET", "/v0/dht/table", false, on_table_req, d)))
        return rc;
    (void)dn__api_route_set_max_body(api, "POST", "/v0/dht/put", DHT_BODY_MAX);
    return 0;
}
