/* The Kademlia DHT service on a host (include/dmsnet/kad.h, docs/kad.md):
 * configuration and modes, the inbound /<prefix>/kad/1.0.0 handler,
 * routing table admission, the upkeep timer and persistence. Lookups are
 * in lookup.c, outbound requests in rpc.c, the stores in records.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/pb.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"
#include "kad/service.h"

#define TICK_MS 1000
#define EXPIRE_EVERY_MS 10000

uint64_t dn__kad_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t dn__kad_loop_ms(const dn_kad *k)
{
    return uv_now(dn_host_loop(k->h));
}

void dn_kad_config_init(dn_kad_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
}

static void config_defaults(dn_kad_config *c)
{
    if (!c->prefix || !*c->prefix)
        c->prefix = DN_KAD_DEFAULT_PREFIX;
    if (!c->k)
        c->k = DN_KAD_K;
    if (!c->alpha)
        c->alpha = DN_KAD_ALPHA;
    if (!c->query_timeout_ms)
        c->query_timeout_ms = DN_KAD_QUERY_TIMEOUT_MS;
    if (!c->refresh_interval_ms)
        c->refresh_interval_ms = 10u * 60u * 1000u;
    if (!c->max_queries)
        c->max_queries = 64;
    if (!c->max_records)
        c->max_records = 65536;
    if (!c->max_records_per_peer)
        c->max_records_per_peer = 1024;
    if (!c->max_providers_per_key)
        c->max_providers_per_key = 20 * 4;
    if (!c->max_provider_keys)
        c->max_provider_keys = 65536;
    if (!c->record_ttl_ms)
        c->record_ttl_ms = 48ull * 3600u * 1000u;
    if (!c->provider_ttl_ms)
        c->provider_ttl_ms = 48ull * 3600u * 1000u;
}

/* ---- addresses ---- */

/* An address a peer gave for another that we would dial: /ip4|ip6|dns*
 * then /tcp with a port, optionally /p2p of that same peer (stripped);
 * nothing else (no relays, no unspecified address, no port 0). Loopback
 * and private addresses are kept: tests and labs live there. */
static bool sane_addr(const uint8_t *b, size_t len, const dn_peerid *peer, dn_multiaddr *out)
{
    dn_multiaddr ma;
    if (dn_multiaddr_from_bytes(b, len, &ma) != 0)
        return false;
    size_t off = 0;
    dn_ma_component c;
    int n = 0;
    bool ok = false;
    while (dn_multiaddr_next(&ma, &off, &c) == 1) {
        if (n == 0) {
            if (c.code == DN_MA_IP4) {
                static const uint8_t zero4[4];
                if (c.value_len != 4 || memcmp(c.value, zero4, 4) == 0)
                    return false;
            } else if (c.code == DN_MA_IP6) {
                static const uint8_t zero6[16];
                if (c.value_len != 16 || memcmp(c.value, zero6, 16) == 0)
                    return false;
            } else if (c.code != DN_MA_DNS && c.code != DN_MA_DNS4 && c.code != DN_MA_DNS6) {
                return false;
            }
        } else if (n == 1) {
            if (c.code != DN_MA_TCP || c.value_len != 2 || (c.value[0] | c.value[1]) == 0)
                return false;
            ok = true;
        } else if (n == 2 && c.code == DN_MA_P2P) {
            dn_peerid id;
            if (dn_peerid_from_bytes(c.value, c.value_len, &id) != 0 || !dn_peerid_equal(&id, peer))
                return false;
        } else {
            return false;
        }
        n++;
    }
    if (!ok)
        return false;
    dn_multiaddr_strip_p2p(&ma, out);
    return true;
}

void dn__kad_learn_addrs(dn_kad *k, const dn__kad_msg *m, const dn__kad_peer *p)
{
    if (dn_peerid_equal(&p->id, dn_host_peerid(k->h)) || p->naddrs == 0)
        return;
    const dn_peer_info *info = dn_host_peer(k->h, &p->id);
    /* What identify told us over a connection beats what a third peer
     * says; addresses we hold are replaced only once requests to them
     * failed (the peer is stale in our table: it may have moved). */
    if (info && info->connections > 0)
        return;
    dn__kad_entry e;
    if (info && info->naddrs > 0 && !(dn__kad_rt_find(&k->rt, &p->id, &e) == 0 && e.stale))
        return;
    dn__kad_take_addrs(k, m, p);
}

size_t dn__kad_take_addrs(dn_kad *k, const dn__kad_msg *m, const dn__kad_peer *p)
{
    dn_multiaddr addrs[DN_KAD_ADDRS_PER_PEER];
    size_t n = 0;
    for (size_t i = 0; i < p->naddrs && n < DN_KAD_ADDRS_PER_PEER; i++) {
        const dn__kad_span *sp = &m->addrs[p->addr_first + i];
        if (sane_addr(sp->p, sp->len, &p->id, &addrs[n]))
            n++;
    }
    if (n == 0 || dn_peerid_equal(&p->id, dn_host_peerid(k->h)))
        return 0;
    dn_peer_update u = {.set_addrs = true, .addrs = addrs, .naddrs = n};
    return dn_host_peer_update(k->h, &p->id, &u) == 0 ? n : 0;
}

bool dn__kad_dialable(dn_kad *k, const dn_peerid *peer)
{
    const dn_peer_info *info = dn_host_peer(k->h, peer);
    return info && (info->connections > 0 || info->naddrs > 0);
}

/* ---- replies ---- */

/* Peers with their addresses for a reply: the address bytes are gathered
 * first (their buffer may move while it grows), the spans made at the end. */
typedef struct reply_peers {
    dn_peerid id[2 * DN_KAD_MAX_PEERS];
    bool prov[2 * DN_KAD_MAX_PEERS];
    uint8_t conn[2 * DN_KAD_MAX_PEERS];
    uint16_t first[2 * DN_KAD_MAX_PEERS], n[2 * DN_KAD_MAX_PEERS];
    size_t count;
    uint32_t off[DN_KAD_MAX_ADDRS_TOTAL];
    uint16_t len[DN_KAD_MAX_ADDRS_TOTAL];
    size_t naddrs;
    dn_buf bytes;
} reply_peers;

static void rp_add(dn_kad *k, reply_peers *rp, const dn_peerid *id, bool prov)
{
    if (rp->count == 2 * DN_KAD_MAX_PEERS)
        return;
    size_t i = rp->count;
    rp->id[i] = *id;
    rp->prov[i] = prov;
    rp->first[i] = (uint16_t)rp->naddrs;
    rp->n[i] = 0;
    rp->conn[i] = DN_KAD_NOT_CONNECTED;
    dn_multiaddr ma;
    if (dn_peerid_equal(id, dn_host_peerid(k->h))) {
        dn_multiaddr mine[DN_KAD_ADDRS_PER_PEER];
        size_t n = dn_host_dialable_addrs(k->h, mine, DN_KAD_ADDRS_PER_PEER);
        for (size_t j = 0; j < n && rp->naddrs < DN_KAD_MAX_ADDRS_TOTAL; j++) {
            rp->off[rp->naddrs] = (uint32_t)rp->bytes.len;
            rp->len[rp->naddrs] = (uint16_t)mine[j].len;
            if (dn_buf_append(&rp->bytes, mine[j].bytes, mine[j].len) != 0)
                break;
            rp->naddrs++;
            rp->n[i]++;
        }
        rp->conn[i] = DN_KAD_CONNECTED;
    } else {
        const dn_peer_info *info = dn_host_peer(k->h, id);
        if (info && info->connections)
            rp->conn[i] = DN_KAD_CONNECTED;
        for (size_t j = 0; info && j < info->naddrs && rp->n[i] < DN_KAD_ADDRS_PER_PEER &&
                           rp->naddrs < DN_KAD_MAX_ADDRS_TOTAL;
             j++) {
            if (dn_peer_info_addr(info, j, &ma) != 0)
                continue;
            rp->off[rp->naddrs] = (uint32_t)rp->bytes.len;
            rp->len[rp->naddrs] = (uint16_t)ma.len;
            if (dn_buf_append(&rp->bytes, ma.bytes, ma.len) != 0)
                break;
            rp->naddrs++;
            rp->n[i]++;
        }
    }
    rp->count++;
}

static void rp_finish(reply_peers *rp, dn__kad_msg *m)
{
    dn__kad_span spans[DN_KAD_ADDRS_PER_PEER];
    for (size_t i = 0; i < rp->count; i++) {
        for (size_t j = 0; j < rp->n[i]; j++)
            spans[j] = (dn__kad_span){rp->bytes.data + rp->off[rp->first[i] + j],
                                      rp->len[rp->first[i] + j]};
        dn__kad_msg_add_peer(m, rp->prov[i], &rp->id[i], rp->conn[i], spans, rp->n[i]);
    }
}

/* The k closest peers we know to key (ourselves left out, the requester
 * too, and peers we have no address for: nobody could dial them). */
static void add_closer(dn_kad *k, reply_peers *rp, const uint8_t *key, size_t keylen,
                       const dn_peerid *requester)
{
    dn__kad_key target;
    if (dn__kad_key_from_bytes(key, keylen, &target) != 0)
        return;
    dn__kad_entry e[DN_KAD_K_MAX + 1];
    size_t n = dn__kad_rt_closest(&k->rt, &target, k->cfg.k + 1, false, e);
    size_t added = 0;
    for (size_t i = 0; i < n && added < k->cfg.k; i++) {
        if (requester && dn_peerid_equal(&e[i].id, requester))
            continue;
        if (!dn__kad_dialable(k, &e[i].id))
            continue;
        rp_add(k, rp, &e[i].id, false);
        added++;
    }
}

static void rfc3339(uint64_t unix_ms, char out[64])
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(unix_ms % 1000));
}

/* ---- the inbound handler ---- */

struct kad_in {
    dn_kad *k;
    dn_stream *s;
    dn_peerid remote;
    dn__kad_reader rd;
    unsigned requests;
    uint64_t last_ms;
    bool paused;
    kad_in *prev, *next;
};

static void in_unlink(kad_in *in)
{
    dn_kad *k = in->k;
    if (!k)
        return;
    if (in->prev)
        in->prev->next = in->next;
    else
        k->ins = in->next;
    if (in->next)
        in->next->prev = in->prev;
    k->nins--;
    in->k = NULL;
}

static void in_bad(kad_in *in, int why)
{
    char name[16];
    DN_LOG_LIMITED(DN_LOG_INFO, "kad", "resetting a kad stream from %s: %s",
                   dn_peerid_short(&in->remote, name), dn_strerror(why));
    in->k->st.requests_bad++;
    dn_stream_reset(in->s); /* on_close frees */
}

static void on_drop_provider(void *arg, const uint8_t *key, size_t keylen, const dn_peerid *id)
{
    dn_kad *k = arg;
    if (k->cfg.persist.drop_provider)
        k->cfg.persist.drop_provider(k->cfg.persist.arg, key, keylen, id);
}

/* Handle one request; fills reply (type set) or returns 1 for no reply,
 * or an error for a request to refuse (the stream is reset). */
static int handle(dn_kad *k, const dn_peerid *from, const dn__kad_msg *m, dn__kad_msg *reply,
                  reply_peers *rp, dn_buf *scratch, char *timebuf)
{
    uint64_t now = dn__kad_unix_ms();
    reply->type = m->type;
    switch (m->type) {
    case DN_KAD_PING: return 0;
    case DN_KAD_FIND_NODE:
        if (!m->key.len)
            return DN_EMALFORMED;
        reply->key = m->key;
        if (m->key.len == dn_host_peerid(k->h)->len &&
            memcmp(m->key.p, dn_host_peerid(k->h)->bytes, m->key.len) == 0)
            rp_add(k, rp, dn_host_peerid(k->h), false);
        else
            add_closer(k, rp, m->key.p, m->key.len, from);
        return 0;
    case DN_KAD_GET_VALUE: {
        if (!m->key.len)
            return DN_EMALFORMED;
        reply->key = m->key;
        const dn__kad_rec *r = dn__kad_store_get(&k->store, m->key.p, m->key.len, now);
        if (r) {
            reply->has_record = true;
            reply->record_key = (dn__kad_span){r->key, r->keylen};
            reply->record_value = (dn__kad_span){r->value, r->vlen};
            rfc3339(r->received_ms, timebuf);
            reply->record_time = (dn__kad_span){(const uint8_t *)timebuf, strlen(timebuf)};
        } else if (m->key.len > 4 && memcmp(m->key.p, DN_KAD_NS_PK, 4) == 0) {
            /* A public key we learned in a handshake answers /pk/ (js too). */
            dn_peerid id;
            const dn_peer_info *info;
            if (dn_peerid_from_bytes(m->key.p + 4, m->key.len - 4, &id) == 0 &&
                (info = dn_host_peer(k->h, &id)) && info->public_key &&
                dn_pubkey_to_protobuf(info->public_key, scratch) == 0) {
                reply->has_record = true;
                reply->record_key = m->key;
                reply->record_value = (dn__kad_span){scratch->data, scratch->len};
            }
        }
        add_closer(k, rp, m->key.p, m->key.len, from);
        return 0;
    }
    case DN_KAD_PUT_VALUE: {
        if (!m->has_record || !m->key.len || m->record_key.len != m->key.len ||
            memcmp(m->record_key.p, m->key.p, m->key.len) != 0)
            return DN_EMALFORMED;
        int rc = dn__kad_store_put(&k->store, m->key.p, m->key.len, m->record_value.p,
                                   m->record_value.len, from, now, now);
        if (rc < 0)
            return rc;
        /* Stored, or the same again (its time refreshed: the TTL counts from now). */
        if (k->cfg.persist.save_record)
            k->cfg.persist.save_record(k->cfg.persist.arg, m->key.p, m->key.len, m->record_value.p,
                                       m->record_value.len, now);
        *reply = *m; /* echoed back */
        reply->ncloser = reply->nproviders = reply->naddrs = 0;
        return 0;
    }
    case DN_KAD_ADD_PROVIDER: {
        if (!m->key.len)
            return DN_EMALFORMED;
        /* Only the sender's own record: nobody announces for another. */
        for (size_t i = 0; i < m->nproviders; i++) {
            const dn__kad_peer *p = &m->providers[i];
            if (!dn_peerid_equal(&p->id, from))
                continue;
            uint64_t exp = now + k->cfg.provider_ttl_ms;
            int rc = dn__kad_prov_add(&k->store, m->key.p, m->key.len, from, exp, now);
            if (rc >= 0 && k->cfg.persist.save_provider)
                k->cfg.persist.save_provider(k->cfg.persist.arg, m->key.p, m->key.len, from, exp);
            dn__kad_learn_addrs(k, m, p);
        }
        return 1;
    }
    case DN_KAD_GET_PROVIDERS: {
        if (!m->key.len)
            return DN_EMALFORMED;
        reply->key = m->key;
        dn_peerid provs[DN_KAD_MAX_PEERS / 2];
        size_t n =
            dn__kad_prov_get(&k->store, m->key.p, m->key.len, now, provs, DN_KAD_MAX_PEERS / 2);
        for (size_t i = 0; i < n; i++)
            rp_add(k, rp, &provs[i], true);
        add_closer(k, rp, m->key.p, m->key.len, from);
        return 0;
    }
    default: return DN_EUNSUPPORTED;
    }
}

static void in_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    kad_in *in = arg;
    dn_kad *k = in->k;
    if (!k)
        return;
    in->last_ms = dn__kad_loop_ms(k);
    while (len > 0 || in->rd.ready) {
        int took = dn__kad_reader_feed(&in->rd, data, len);
        if (took < 0) {
            in_bad(in, took);
            return;
        }
        data += took;
        len -= (size_t)took;
        const uint8_t *frame;
        size_t flen;
        int rc = dn__kad_reader_next(&in->rd, &frame, &flen);
        if (rc < 0) {
            in_bad(in, rc);
            return;
        }
        if (rc == 0)
            return; /* the rest of a frame is still to come */
        if (++in->requests > DN_KAD_REQUESTS_PER_STREAM) {
            in_bad(in, DN_ELIMIT);
            return;
        }
        k->st.requests_in++;
        dn__kad_msg *m = malloc(2 * sizeof *m);
        reply_peers *rp = calloc(1, sizeof *rp);
        if (!m || !rp) {
            free(m);
            free(rp);
            in_bad(in, DN_ENOMEM);
            return;
        }
        dn__kad_msg *reply = m + 1;
        dn__kad_msg_init(reply);
        dn_buf scratch = DN_BUF_INIT, out = DN_BUF_INIT;
        char timebuf[64];
        rc = dn__kad_msg_decode(frame, flen, m);
        if (!rc)
            rc = handle(k, &in->remote, m, reply, rp, &scratch, timebuf);
        if (rc == 0) {
            rp_finish(rp, reply);
            rc = dn__kad_msg_encode_frame(reply, &out);
            if (!rc)
                rc = dn_stream_write(s, out.data, out.len);
        } else if (rc == 1) {
            rc = 0;
        }
        free(m);
        dn_buf_free(&rp->bytes);
        free(rp);
        dn_buf_free(&scratch);
        dn_buf_free(&out);
        if (rc) {
            in_bad(in, rc);
            return;
        }
        if (dn_stream_queued(s) > DN_STREAM_QUEUE_LOW && !in->paused) {
            /* The peer does not read its answers: no more questions until
             * it does (what was already delivered is still answered; past
             * the stream's queue limit the write fails and we reset). */
            in->paused = true;
            dn_stream_pause_read(s);
        }
    }
}

static void in_writable(dn_stream *s, void *arg)
{
    kad_in *in = arg;
    if (in->paused) {
        in->paused = false;
        dn_stream_resume_read(s);
    }
}

static void in_eof(dn_stream *s, void *arg)
{
    kad_in *in = arg;
    if (dn__kad_reader_partial(&in->rd) && in->k) {
        in_bad(in, DN_ETRUNCATED);
        return;
    }
    dn_stream_close_write(s);
}

static void in_close(dn_stream *s, int status, void *arg)
{
    kad_in *in = arg;
    in_unlink(in);
    dn__kad_reader_free(&in->rd);
    free(in);
}

static void in_handler(dn_host *h, dn_stream *s, void *arg)
{
    dn_kad *k = arg;
    kad_in *in = calloc(1, sizeof *in);
    if (!in || !k->serving) {
        free(in);
        dn_stream_reset(s);
        return;
    }
    in->k = k;
    in->s = s;
    in->remote = *dn_conn_remote_peer(dn_stream_conn(s));
    in->last_ms = dn__kad_loop_ms(k);
    dn__kad_reader_init(&in->rd, DN_KAD_MSG_MAX);
    in->next = k->ins;
    if (k->ins)
        k->ins->prev = in;
    k->ins = in;
    k->nins++;
    static const dn_stream_callbacks cbs = {
        .on_data = in_data, .on_eof = in_eof, .on_writable = in_writable, .on_close = in_close};
    dn_stream_set_callbacks(s, &cbs, in);
}

static void serve(dn_kad *k, bool on)
{
    if (on == k->serving || k->freed)
        return;
    if (on) {
        if (dn_host_set_handler(k->h, k->proto, in_handler, k) != 0)
            return;
        dn_host_set_protocol_limit(k->h, k->proto, DN_KAD_MAX_INBOUND);
    } else {
        dn_host_remove_handler(k->h, k->proto);
    }
    k->serving = on;
}

void dn_kad_set_reachable(dn_kad *k, bool reachable)
{
    k->reachable = reachable;
    if (k->cfg.mode == DN_KAD_MODE_AUTO)
        serve(k, reachable);
}

bool dn_kad_serving(const dn_kad *k)
{
    return k->serving;
}

/* ---- table admission ---- */

/* One ping (or the dial before it) on behalf of an admission. It outlives
 * the admission when that gives up first (its timer), and then only frees. */
typedef struct admit_ping {
    kad_admit *a;
} admit_ping;

struct kad_admit {
    dn_kad *k;
    dn_peerid peer; /* the newcomer */
    dn_peerid old;  /* the least recently seen peer of its full bucket */
    bool pinging_old, done;
    admit_ping *ping;
    uv_timer_t timer;
    kad_admit *prev, *next;
};

static void admit_timer_closed(uv_handle_t *h)
{
    kad_admit *a = h->data;
    a->k->handles--;
    free(a);
}

static void admit_end(kad_admit *a)
{
    if (a->done)
        return;
    a->done = true;
    dn_kad *k = a->k;
    if (a->ping)
        a->ping->a = NULL;
    a->ping = NULL;
    if (a->prev)
        a->prev->next = a->next;
    else
        k->admits = a->next;
    if (a->next)
        a->next->prev = a->prev;
    k->nadmits--;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, admit_timer_closed);
}

static void admit_ping_start(kad_admit *a, dn_conn *c);
static void admit_result(kad_admit *a, int status);

static void drop_candidate(dn_kad *k, const dn_peerid *peer)
{
    for (size_t i = 0; i < k->ncand; i++) {
        if (dn_peerid_equal(&k->cand[i], peer)) {
            k->cand[i] = k->cand[--k->ncand];
            return;
        }
    }
}

/* Add the newcomer; a full bucket of live peers makes us ping its least
 * recently seen one (admission continues in a). */
static void admit_add(dn_kad *k, kad_admit *a, const dn_peerid *peer)
{
    dn__kad_entry evicted, ping;
    int rc = dn__kad_rt_add(&k->rt, peer, dn__kad_unix_ms(), &evicted, &ping);
    if (rc == DN_KAD_RT_ADDED || rc == DN_KAD_RT_REPLACED) {
        drop_candidate(k, peer);
        dn__kad_table_changed(k);
    }
    if (rc != DN_ELIMIT) {
        if (a)
            admit_end(a);
        return;
    }
    /* The bucket's oldest peer is connected and was seen within the
     * minute: alive, no need to ask (the newcomer waits outside). */
    const dn_peer_info *old = dn_host_peer(k->h, &ping.id);
    if (old && old->connections > 0 && dn__kad_unix_ms() - ping.seen_ms < 60000) {
        if (a)
            admit_end(a);
        return;
    }
    if (!a) {
        if (k->nadmits >= DN_KAD_MAX_ADMITS)
            return;
        for (kad_admit *o = k->admits; o; o = o->next)
            if (dn_peerid_equal(&o->peer, peer))
                return; /* already on its way */
        a = calloc(1, sizeof *a);
        if (!a)
            return;
        a->k = k;
        a->peer = *peer;
        uv_timer_init(dn_host_loop(k->h), &a->timer);
        a->timer.data = a;
        k->handles++;
        a->next = k->admits;
        if (k->admits)
            k->admits->prev = a;
        k->admits = a;
        k->nadmits++;
    }
    a->pinging_old = true;
    a->old = ping.id;
    admit_ping_start(a, NULL);
}

static void admit_timeout(uv_timer_t *t)
{
    admit_result(t->data, DN_ETIMEOUT);
}

static void admit_result(kad_admit *a, int status)
{
    dn_kad *k = a->k;
    if (a->ping)
        a->ping->a = NULL;
    a->ping = NULL;
    uv_timer_stop(&a->timer);
    if (!a->pinging_old) {
        if (status) {
            admit_end(a); /* it speaks kad by identify, but does not answer */
            return;
        }
        admit_add(k, a, &a->peer);
        return;
    }
    if (status == 0) {
        /* The old peer is alive: it stays (seen now), the newcomer waits. */
        dn__kad_rt_add(&k->rt, &a->old, dn__kad_unix_ms(), NULL, NULL);
        admit_end(a);
        return;
    }
    dn__kad_rt_mark_stale(&k->rt, &a->old);
    dn__kad_entry evicted;
    int rc = dn__kad_rt_add(&k->rt, &a->peer, dn__kad_unix_ms(), &evicted, NULL);
    if (rc == DN_KAD_RT_ADDED || rc == DN_KAD_RT_REPLACED) {
        drop_candidate(k, &a->peer);
        dn__kad_table_changed(k);
    }
    admit_end(a);
}

static void admit_ping_reply(void *arg, unsigned seq, uint64_t rtt_ns)
{
    (void)arg;
    (void)seq;
    (void)rtt_ns;
}

static void admit_ping_done(void *arg, int status)
{
    admit_ping *p = arg;
    kad_admit *a = p->a;
    free(p);
    if (a) {
        a->ping = NULL;
        admit_result(a, status);
    }
}

static void admit_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    admit_ping *p = arg;
    kad_admit *a = p->a;
    if (!a) {
        free(p);
        return;
    }
    if (status) {
        free(p);
        a->ping = NULL;
        admit_result(a, status);
        return;
    }
    static const dn_ping_callbacks cbs = {.on_reply = admit_ping_reply, .on_done = admit_ping_done};
    int rc = dn_ping_run(c, 1, 0, &cbs, p);
    if (rc) {
        free(p);
        a->ping = NULL;
        admit_result(a, rc);
    }
}

/* Ping the newcomer on c, or the old peer (dialled first). */
static void admit_ping_start(kad_admit *a, dn_conn *c)
{
    dn_kad *k = a->k;
    admit_ping *p = calloc(1, sizeof *p);
    if (!p) {
        admit_end(a);
        return;
    }
    p->a = a;
    a->ping = p;
    uv_timer_start(&a->timer, admit_timeout, k->cfg.query_timeout_ms, 0);
    int rc;
    if (c) {
        static const dn_ping_callbacks cbs = {.on_reply = admit_ping_reply,
                                              .on_done = admit_ping_done};
        rc = dn_ping_run(c, 1, 0, &cbs, p);
    } else {
        const dn_peerid *who = a->pinging_old ? &a->old : &a->peer;
        rc =
            dn__kad_dialable(k, who) ? dn_host_dial_peer(k->h, who, admit_dialed, p) : DN_ENOTFOUND;
    }
    if (rc) {
        free(p);
        a->ping = NULL;
        admit_result(a, rc);
    }
}

/* identify listed the exact kad protocol: ping, then add. */
static void admit_start(dn_kad *k, dn_conn *c, const dn_peerid *peer)
{
    if (k->nadmits >= DN_KAD_MAX_ADMITS)
        return;
    for (kad_admit *o = k->admits; o; o = o->next)
        if (dn_peerid_equal(&o->peer, peer))
            return;
    kad_admit *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->k = k;
    a->peer = *peer;
    uv_timer_init(dn_host_loop(k->h), &a->timer);
    a->timer.data = a;
    k->handles++;
    a->next = k->admits;
    if (k->admits)
        k->admits->prev = a;
    k->admits = a;
    k->nadmits++;
    admit_ping_start(a, c);
}

void dn__kad_peer_seen(dn_kad *k, const dn_peerid *peer)
{
    if (k->freed)
        return;
    admit_add(k, NULL, peer);
}

void dn__kad_peer_failed(dn_kad *k, const dn_peerid *peer)
{
    dn__kad_rt_mark_stale(&k->rt, peer);
}

void dn__kad_table_changed(dn_kad *k)
{
    k->table_dirty = true;
}

static bool speaks_kad(const dn_kad *k, const dn_peer_info *p)
{
    for (size_t i = 0; p && i < p->nprotocols; i++)
        if (strcmp(p->protocols[i], k->proto) == 0)
            return true;
    return false;
}

static void on_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    dn_kad *k = arg;
    /* A push: a peer in auto mode may have started (or stopped) serving. */
    if ((ev != DN_CONN_EV_IDENTIFIED && ev != DN_CONN_EV_PUSHED) || !c || k->freed)
        return;
    const dn_peerid *peer = dn_conn_remote_peer(c);
    const dn_peer_info *p = dn_host_peer(h, peer);
    dn__kad_entry e;
    bool in_table = dn__kad_rt_find(&k->rt, peer, &e) == 0;
    if (speaks_kad(k, p)) {
        if (in_table)
            dn__kad_rt_add(&k->rt, peer, dn__kad_unix_ms(), NULL, NULL);
        else
            admit_start(k, c, peer);
    } else if (in_table) {
        /* It stopped serving (a client now): js drops it too. */
        dn__kad_rt_remove(&k->rt, peer);
        dn__kad_table_changed(k);
    }
}

/* ---- upkeep and persistence ---- */

static void save_table(dn_kad *k)
{
    k->table_dirty = false;
    if (!k->cfg.persist.save_table)
        return;
    size_t n = dn__kad_rt_size(&k->rt);
    dn__kad_entry *e = calloc(n ? n : 1, sizeof *e);
    dn_peerid *ids = calloc(n ? n : 1, sizeof *ids);
    const dn_multiaddr **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    size_t *counts = calloc(n ? n : 1, sizeof *counts);
    dn_multiaddr *addrs = calloc((n ? n : 1) * DN_KAD_ADDRS_PER_PEER, sizeof *addrs);
    if (e && ids && ptrs && counts && addrs) {
        n = dn__kad_rt_list(&k->rt, e, n);
        for (size_t i = 0; i < n; i++) {
            ids[i] = e[i].id;
            ptrs[i] = &addrs[i * DN_KAD_ADDRS_PER_PEER];
            const dn_peer_info *info = dn_host_peer(k->h, &e[i].id);
            for (size_t j = 0; info && j < info->naddrs && counts[i] < DN_KAD_ADDRS_PER_PEER; j++)
                if (dn_peer_info_addr(info, j, &addrs[i * DN_KAD_ADDRS_PER_PEER + counts[i]]) == 0)
                    counts[i]++;
        }
        k->cfg.persist.save_table(k->cfg.persist.arg, ids, (const dn_multiaddr *const *)ptrs,
                                  counts, n);
    } else {
        k->table_dirty = true; /* try again next second */
    }
    free(e);
    free(ids);
    free(ptrs);
    free(counts);
    free(addrs);
}

static void on_tick(uv_timer_t *t)
{
    dn_kad *k = t->data;
    uint64_t now = dn__kad_loop_ms(k);
    if (k->table_dirty)
        save_table(k);
    if (now - k->last_expire_ms >= EXPIRE_EVERY_MS) {
        k->last_expire_ms = now;
        dn__kad_store_expire(&k->store, dn__kad_unix_ms(), on_drop_provider, k);
    }
    for (kad_in *in = k->ins, *next; in; in = next) {
        next = in->next;
        if (now - in->last_ms > DN_KAD_STREAM_IDLE_MS) {
            in_unlink(in);
            dn_stream_reset(in->s);
        }
    }
    if (now - k->last_refresh_ms >= k->cfg.refresh_interval_ms) {
        k->last_refresh_ms = now;
        dn__kad_refresh(k);
    }
}

static void on_defer(uv_timer_t *t)
{
    dn__kad_run_queued(t->data);
}

void dn__kad_kick(dn_kad *k)
{
    if (!k->freed && !uv_is_active((uv_handle_t *)&k->defer))
        uv_timer_start(&k->defer, on_defer, 0, 0);
}

/* ---- attach and free ---- */

static void kad_handle_closed(uv_handle_t *h)
{
    dn_kad *k = h->data;
    if (--k->handles == 0) {
        dn__kad_rt_close(&k->rt);
        dn__kad_store_free(&k->store);
        free(k);
    }
}

/* The host is being freed: its connections and streams are gone (every
 * callback ran), so what is left are our timers and queued lookups. */
static void kad_cleanup(void *arg)
{
    dn_kad *k = arg;
    k->freed = true;
    dn__kad_rpcs_close(k);
    dn__kad_lookups_close(k);
    while (k->admits)
        admit_end(k->admits);
    for (kad_in *in = k->ins, *next; in; in = next) {
        next = in->next;
        in_unlink(in);
    }
    if (k->cfg.persist.save_table && k->table_dirty)
        k->table_dirty = false; /* the host's peerstore is going: too late to read */
    uv_close((uv_handle_t *)&k->tick, kad_handle_closed);
    uv_close((uv_handle_t *)&k->defer, kad_handle_closed);
}

int dn_kad_attach(dn_host *h, const dn_kad_config *cfg, dn_kad **out)
{
    if (!h || !out)
        return DN_EINVAL;
    dn_kad_config c;
    dn_kad_config_init(&c);
    if (cfg) {
        if (cfg->size < offsetof(dn_kad_config, mode) + sizeof cfg->mode)
            return DN_EINVAL;
        memcpy(&c, cfg, cfg->size < sizeof c ? cfg->size : sizeof c);
        c.size = sizeof c;
    }
    config_defaults(&c);
    if (c.k > DN_KAD_K_MAX || c.alpha > 64 || c.mode > DN_KAD_MODE_CLIENT)
        return DN_EINVAL;
    dn_kad *k = calloc(1, sizeof *k);
    if (!k)
        return DN_ENOMEM;
    if (strlen(c.prefix) + strlen("/kad/1.0.0") >= sizeof k->proto) {
        free(k);
        return DN_EINVAL;
    }
    snprintf(k->prefix, sizeof k->prefix, "%s", c.prefix);
    snprintf(k->proto, sizeof k->proto, "%s/kad/1.0.0", c.prefix);
    c.prefix = k->prefix;
    k->h = h;
    k->cfg = c;
    dn_verify_cache_init(&k->vc);
    dn__kad_store_limits lim = {.max_records = c.max_records,
                                .max_per_peer = c.max_records_per_peer,
                                .max_per_key = c.max_providers_per_key,
                                .max_provider_keys = c.max_provider_keys,
                                .record_ttl_ms = c.record_ttl_ms};
    int rc = dn__kad_rt_init(&k->rt, dn_host_peerid(h), c.k, dn__kad_unix_ms());
    if (rc) {
        free(k);
        return rc;
    }
    rc = dn__kad_store_init(&k->store, &lim, &k->vc);
    if (!rc)
        rc = dn_host_add_observer(h, on_event, k);
    if (!rc) {
        rc = dn_host_add_cleanup(h, kad_cleanup, k);
        if (rc)
            dn_host_remove_observer(h, on_event, k);
    }
    if (rc) {
        dn__kad_store_free(&k->store);
        dn__kad_rt_close(&k->rt);
        free(k);
        return rc;
    }
    uv_timer_init(dn_host_loop(h), &k->tick);
    uv_timer_init(dn_host_loop(h), &k->defer);
    k->tick.data = k->defer.data = k;
    k->handles = 2;
    k->last_refresh_ms = dn__kad_loop_ms(k);
    uv_timer_start(&k->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&k->tick);
    if (c.mode == DN_KAD_MODE_SERVER)
        serve(k, true);
    *out = k;
    return 0;
}

dn_host *dn_kad_host(const dn_kad *k)
{
    return k->h;
}

const char *dn_kad_protocol(const dn_kad *k)
{
    return k->proto;
}

int dn_kad_route_dials(dn_kad *k)
{
    if (!k || k->freed)
        return DN_EINVAL;
    k->routing = true;
    return dn_host_set_peer_router(k->h, dn__kad_router, k);
}

/* ---- restore ---- */

int dn_kad_restore_peer(dn_kad *k, const dn_peerid *peer, const dn_multiaddr *addrs, size_t naddrs)
{
    if (!k || !peer || !peer->len || (naddrs && !addrs))
        return DN_EINVAL;
    if (dn_peerid_equal(peer, dn_host_peerid(k->h)))
        return DN_EPEERID;
    const dn_peer_info *info = dn_host_peer(k->h, peer);
    if (naddrs && (!info || info->naddrs == 0)) {
        dn_peer_update u = {.set_addrs = true, .addrs = addrs, .naddrs = naddrs};
        int rc = dn_host_peer_update(k->h, peer, &u);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < k->ncand; i++)
        if (dn_peerid_equal(&k->cand[i], peer))
            return 0;
    if (k->ncand == DN_KAD_MAX_CANDIDATES)
        return DN_ELIMIT;
    k->cand[k->ncand++] = *peer;
    return 0;
}

int dn_kad_restore_provider(dn_kad *k, const uint8_t *key, size_t keylen, const dn_peerid *provider,
                            uint64_t expires_unix_ms)
{
    if (!k || !key || !keylen || !provider)
        return DN_EINVAL;
    uint64_t now = dn__kad_unix_ms();
    if (expires_unix_ms <= now)
        return DN_ETIMEOUT;
    int rc = dn__kad_prov_add(&k->store, key, keylen, provider, expires_unix_ms, now);
    return rc < 0 ? rc : 0;
}

int dn_kad_restore_record(dn_kad *k, const uint8_t *key, size_t keylen, const uint8_t *value,
                          size_t vlen, uint64_t received_unix_ms)
{
    if (!k)
        return DN_EINVAL;
    int rc = dn__kad_store_put(&k->store, key, keylen, value, vlen, NULL, received_unix_ms,
                               dn__kad_unix_ms());
    return rc < 0 ? rc : 0;
}

/* ---- introspection ---- */

size_t dn_kad_table(const dn_kad *k, dn_kad_table_entry *out, size_t max)
{
    size_t n = dn__kad_rt_size(&k->rt);
    if (n > max)
        n = max;
    if (n == 0)
        return 0;
    dn__kad_entry *e = calloc(n, sizeof *e);
    if (!e)
        return 0;
    n = dn__kad_rt_list(&k->rt, e, n);
    for (size_t i = 0; i < n; i++)
        out[i] = (dn_kad_table_entry){.id = e[i].id,
                                      .bucket = dn__kad_cpl(&k->rt.self, &e[i].key),
                                      .added_unix_ms = e[i].added_ms,
                                      .seen_unix_ms = e[i].seen_ms,
                                      .stale = e[i].stale};
    free(e);
    return n;
}

size_t dn_kad_table_size(const dn_kad *k)
{
    return dn__kad_rt_size(&k->rt);
}

void dn_kad_get_stats(const dn_kad *k, dn_kad_stats *st)
{
    *st = k->st;
    st->records_held = k->store.nrecs;
    st->providers_held = k->store.nprovs;
    st->queries_running = k->nrunning;
}
