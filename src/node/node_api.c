/* node api — the daemon's /v0/ endpoints on the API server (docs/api.md).
 *
 * Everything runs on the node's loop. Endpoints that wait on the network
 * (connect, ping) answer later; each such request is an api_op that lives
 * until both the network's callback and its guard timer are done with it,
 * so a dial or ping that finishes after the API (or the node) stopped only
 * frees memory. Event streams subscribe to the node's event bus and push
 * into the API server's bounded per-stream queue: a client that does not
 * read loses its stream, the node never waits for it. */
#include "node/node_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"

#define M "api"
/* How long connect waits for the dial before answering 504. The host's own
 * TCP and handshake timeouts are shorter, so this only catches a dial that
 * never reports back. */
#define OP_DIAL_GUARD_MS 30000u
#define PING_COUNT_DEFAULT 3u
#define PING_COUNT_MAX 100u
#define PING_INTERVAL_DEFAULT_MS 1000u
#define PING_INTERVAL_MAX_MS 10000u
/* Longest target text echoed back in an error. */
#define SHOWN_MAX 200

typedef struct api_op api_op;
typedef struct ev_sub ev_sub;

struct dn__node_api {
    dn_network *n;
    dn_api *api;
    api_op *ops;  /* connect / ping waiting on the network */
    ev_sub *subs; /* open event streams */
};

struct api_op {
    dn__node_api *a; /* NULL once detached (the API stopped) */
    dn_network *n;
    dn_api_req *req; /* NULL once answered */
    bool ping;
    unsigned count, interval_ms;
    char target[SHOWN_MAX + 1]; /* as the client gave it, for messages */
    char peer_id[DN_PEERID_STR_MAX];
    json_t *rtts;
    uv_timer_t timer;
    bool timer_open;
    int refs; /* the network's pending callback + the open timer */
    api_op *prev, *next;
};

struct ev_sub {
    dn__node_api *a;
    dn_api_stream *s;
    uint32_t mask;
    ev_sub *prev, *next;
};

/* ---- JSON helpers ---- */

/* Peer-supplied text as a JSON string. jansson refuses invalid UTF-8; such
 * text goes in escaped (\xNN per bad byte) rather than being dropped. */
static json_t *text_json(const char *s)
{
    if (!s)
        return json_string("");
    size_t len = strlen(s);
    json_t *v = json_stringn(s, len);
    if (v)
        return v;
    size_t need = dn_escape_text(s, len, NULL, 0) + 1;
    char *buf = malloc(need);
    if (!buf)
        return NULL;
    dn_escape_text(s, len, buf, need);
    v = json_string(buf);
    free(buf);
    return v;
}

static json_t *ma_array(const dn_multiaddr *addrs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char text[DN_MULTIADDR_STR_MAX];
        if (dn_multiaddr_to_string(&addrs[i], text, sizeof text) < 0)
            continue;
        json_array_append_new(arr, json_string(text));
    }
    return arr;
}

static json_t *text_array(const char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, text_json(v[i]));
    return arr;
}

json_t *dn__node_event_json(const dn_network_event *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "type", json_string(dn_network_event_name(ev->type)));
    json_object_set_new(o, "time", json_integer((json_int_t)ev->time_ms));
    char id[DN_PEERID_STR_MAX];
    switch (ev->type) {
    case DN_NET_EV_LOCAL_ADDRS_UPDATED:
        json_object_set_new(o, "addrs", ma_array(ev->addrs, ev->naddrs));
        break;
    case DN_NET_EV_REACHABILITY_CHANGED:
        json_object_set_new(o, "reachability", json_string(dn_reachability_name(ev->reachability)));
        break;
    case DN_NET_EV_NAT_TYPE_CHANGED:
        json_object_set_new(o, "nat_type", json_string(dn_nat_type_name(ev->nat_type)));
        break;
    case DN_NET_EV_PEER_IDENTIFIED:
    case DN_NET_EV_PEER_CONNECTEDNESS:
        if (ev->peer && dn_peerid_to_string(ev->peer, id, sizeof id) >= 0)
            json_object_set_new(o, "peer", json_string(id));
        else
            json_object_set_new(o, "peer", json_null());
        if (ev->type == DN_NET_EV_PEER_CONNECTEDNESS) {
            json_object_set_new(o, "connectedness",
                                json_string(dn_connectedness_name(ev->connectedness)));
        } else {
            json_object_set_new(o, "agent", text_json(ev->agent));
            json_object_set_new(o, "protocols", text_array(ev->protocols, ev->nprotocols));
            json_object_set_new(o, "addrs", ma_array(ev->addrs, ev->naddrs));
        }
        break;
    }
    return o;
}

/* Client text shown back in a message: escaped and bounded. */
static void shown(const char *s, char *out, size_t outlen)
{
    size_t len = strnlen(s, 256);
    /* escape straight into out; truncation drops whole escapes */
    size_t full = dn_escape_text(s, len, out, outlen > 4 ? outlen - 3 : outlen);
    if ((full >= outlen - 3 || strlen(s) > len) && outlen > 4)
        strcat(out, "...");
}

/* The body must be a JSON object; answers 400 and returns NULL otherwise. */
static json_t *body_object(dn_api_req *req)
{
    json_t *b = dn__api_req_body(req);
    if (!json_is_object(b)) {
        dn__api_reply_error(req, 400, "the body must be a JSON object");
        return NULL;
    }
    return b;
}

/* A required string member; answers 400 and returns NULL otherwise. */
static const char *body_string(dn_api_req *req, json_t *b, const char *key)
{
    json_t *v = json_object_get(b, key);
    if (!json_is_string(v) || !*json_string_value(v) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        dn__api_reply_error(req, 400, "'%s': expected a non-empty string", key);
        return NULL;
    }
    return json_string_value(v);
}

/* A dial target: a multiaddr or a bare peer id. 0, or answers 400. */
static int check_target(dn_api_req *req, const char *key, const char *target)
{
    char show[SHOWN_MAX + 8];
    shown(target, show, sizeof show);
    if (target[0] == '/') {
        dn_multiaddr ma;
        if (dn_multiaddr_parse(target, &ma) != 0) {
            dn__api_reply_error(req, 400, "'%s': %s is not a valid multiaddr: %s", key, show,
                                dn_multiaddr_error());
            return -1;
        }
        return 0;
    }
    dn_peerid id;
    if (dn_peerid_parse(target, &id) != 0) {
        dn__api_reply_error(req, 400, "'%s': %s is neither a multiaddr nor a peer id", key, show);
        return -1;
    }
    return 0;
}

/* ---- GET /v0/status, GET /v0/peers ---- */

static void on_status(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    dn_network_status *st;
    int rc = dn_network_get_status(a->n, &st);
    if (rc) {
        dn__api_reply_error(req, 500, "status: %s", dn_strerror(rc));
        return;
    }
    json_t *v = dn__node_status_json(st);
    dn_network_status_free(st);
    if (!v) {
        dn__api_reply_error(req, 500, "status: out of memory");
        return;
    }
    dn__api_reply(req, 200, v);
}

static void on_peers(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    dn_network_status *st;
    int rc = dn_network_get_status(a->n, &st);
    if (rc) {
        dn__api_reply_error(req, 500, "peers: %s", dn_strerror(rc));
        return;
    }
    /* The same entries as status's "peers" (status.c), so both agree. */
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < st->npeers; i++)
        if (json_array_append_new(arr, dn__node_peer_status_json(&st->peers[i]))) {
            json_decref(arr);
            arr = NULL;
        }
    dn_network_status_free(st);
    json_t *v = arr ? json_pack("{s:o}", "peers", arr) : NULL;
    if (!v) {
        dn__api_reply_error(req, 500, "peers: out of memory");
        return;
    }
    dn__api_reply(req, 200, v);
}

/* ---- operations that wait on the network (connect, ping) ---- */

static void op_unref(api_op *op)
{
    if (--op->refs > 0)
        return;
    json_decref(op->rtts);
    free(op);
}

static void op_unlink(api_op *op)
{
    dn__node_api *a = op->a;
    if (!a)
        return;
    if (op->prev)
        op->prev->next = op->next;
    else if (a->ops == op)
        a->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
    op->a = NULL;
}

static void on_op_timer_closed(uv_handle_t *h)
{
    op_unref(h->data);
}

static void op_close_timer(api_op *op)
{
    if (!op->timer_open)
        return;
    op->timer_open = false;
    uv_close((uv_handle_t *)&op->timer, on_op_timer_closed);
}

/* Answer (value stolen) unless already answered, and let go of the API:
 * the op then only waits for the network's callback, if any. */
static void op_answer(api_op *op, unsigned status, json_t *value)
{
    if (op->req) {
        dn__api_reply(op->req, status, value);
        op->req = NULL;
    } else {
        json_decref(value);
    }
    op_unlink(op);
    op_close_timer(op);
}

static json_t *error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_json(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "error", msg);
}

static void on_op_timeout(uv_timer_t *t)
{
    api_op *op = t->data;
    if (op->ping)
        op_answer(op, 504, error_json("ping %s: timed out", op->target));
    else
        op_answer(op, 504, error_json("dial %s: timed out", op->target));
}

static api_op *op_new(dn__node_api *a, dn_api_req *req, const char *target, bool ping)
{
    api_op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->a = a;
    op->n = a->n;
    op->req = req;
    op->ping = ping;
    shown(target, op->target, sizeof op->target);
    uv_timer_init(dn_network_loop(a->n), &op->timer);
    op->timer.data = op;
    op->timer_open = true;
    op->refs = 1; /* the timer */
    uv_timer_start(&op->timer, on_op_timeout, OP_DIAL_GUARD_MS, 0);
    op->next = a->ops;
    if (op->next)
        op->next->prev = op;
    a->ops = op;
    return op;
}

typedef struct find_conn {
    const dn_peerid *peer;
    dn_conn *c;
} find_conn;

static void find_conn_fn(dn_conn *c, void *arg)
{
    find_conn *f = arg;
    if (!f->c && dn_peerid_equal(dn_conn_remote_peer(c), f->peer))
        f->c = c;
}

static void on_ping_reply(void *arg, unsigned seq, uint64_t rtt_ns)
{
    api_op *op = arg;
    json_array_append_new(op->rtts, json_real((double)rtt_ns / 1e6));
}

static void on_ping_done(void *arg, int status)
{
    api_op *op = arg;
    if (status == 0) {
        op_answer(op, 200, json_pack("{s:s, s:O}", "peer_id", op->peer_id, "rtt_ms", op->rtts));
    } else {
        char msg[512];
        snprintf(msg, sizeof msg, "ping %s: %s (%zu of %u answered)", op->peer_id,
                 dn_strerror(status), json_array_size(op->rtts), op->count);
        op_answer(
            op, status == DN_ETIMEOUT ? 504 : 502,
            json_pack("{s:s, s:s, s:O}", "error", msg, "peer_id", op->peer_id, "rtt_ms", op->rtts));
    }
    op_unref(op);
}

static void on_op_dial(dn_network *n, const dn_peerid *peer, int status, void *arg)
{
    api_op *op = arg;
    if (!op->req) { /* answered already (timeout) or the API stopped */
        op_unref(op);
        return;
    }
    if (status) {
        op_answer(op, status == DN_ETIMEOUT ? 504 : 502,
                  error_json("dial %s: %s", op->target, dn_strerror(status)));
        op_unref(op);
        return;
    }
    dn_peerid_to_string(peer, op->peer_id, sizeof op->peer_id);
    if (!op->ping) {
        op_answer(op, 200, json_pack("{s:s, s:b}", "peer_id", op->peer_id, "connected", 1));
        op_unref(op);
        return;
    }
    find_conn f = {.peer = peer};
    dn_host_foreach_conn(dn_network_host(n), find_conn_fn, &f);
    dn_ping_callbacks cbs = {.on_reply = on_ping_reply, .on_done = on_ping_done};
    int rc = f.c ? dn_ping_run(f.c, op->count, op->interval_ms, &cbs, op) : DN_ECLOSED;
    if (rc) {
        op_answer(op, 502, error_json("ping %s: %s", op->peer_id, dn_strerror(rc)));
        op_unref(op);
        return;
    }
    /* The dial's reference passes to the ping; its guard now covers the
     * pings themselves. */
    uint64_t guard = (uint64_t)op->count * (op->interval_ms + 10000u);
    uv_timer_start(&op->timer, on_op_timeout, guard, 0);
}

/* Start the dial for op; answers and releases op on a synchronous error. */
static void op_dial(api_op *op, const char *target)
{
    op->refs++; /* the dial callback */
    int rc = dn_network_dial(op->n, target, on_op_dial, op);
    if (rc) {
        op->refs--;
        unsigned code = rc == DN_EINVAL || rc == DN_EMALFORMED ? 400 : 502;
        op_answer(op, code, error_json("dial %s: %s", op->target, dn_strerror(rc)));
    }
}

static void on_connect(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    json_t *b = body_object(req);
    if (!b)
        return;
    const char *addr = body_string(req, b, "addr");
    if (!addr || check_target(req, "addr", addr))
        return;
    api_op *op = op_new(a, req, addr, false);
    if (!op) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    op_dial(op, addr);
}

static void on_ping(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    json_t *b = body_object(req);
    if (!b)
        return;
    const char *peer = body_string(req, b, "peer");
    if (!peer || check_target(req, "peer", peer))
        return;
    json_int_t count = PING_COUNT_DEFAULT, interval = PING_INTERVAL_DEFAULT_MS;
    json_t *v = json_object_get(b, "count");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > PING_COUNT_MAX) {
            dn__api_reply_error(req, 400, "'count': expected an integer in 1..%u", PING_COUNT_MAX);
            return;
        }
        count = json_integer_value(v);
    }
    if ((v = json_object_get(b, "interval_ms"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > PING_INTERVAL_MAX_MS) {
            dn__api_reply_error(req, 400, "'interval_ms': expected an integer in 0..%u",
                                PING_INTERVAL_MAX_MS);
            return;
        }
        interval = json_integer_value(v);
    }
    api_op *op = op_new(a, req, peer, true);
    if (!op || !(op->rtts = json_array())) {
        if (op)
            op_answer(op, 500, error_json("out of memory"));
        else
            dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    op->count = (unsigned)count;
    op->interval_ms = (unsigned)interval;
    op_dial(op, peer);
}

/* ---- POST /v0/disconnect ---- */

static void on_disconnect(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    json_t *b = body_object(req);
    if (!b)
        return;
    const char *id = body_string(req, b, "peer_id");
    if (!id)
        return;
    dn_peerid peer;
    char show[SHOWN_MAX + 8];
    shown(id, show, sizeof show);
    if (dn_peerid_parse(id, &peer) != 0) {
        dn__api_reply_error(req, 400, "'peer_id': %s is not a peer id", show);
        return;
    }
    char canon[DN_PEERID_STR_MAX];
    dn_peerid_to_string(&peer, canon, sizeof canon);
    int rc = dn_network_disconnect(a->n, &peer);
    if (rc == DN_ENOTFOUND) {
        dn__api_reply_error(req, 404, "not connected to %s", canon);
        return;
    }
    if (rc) {
        dn__api_reply_error(req, 500, "disconnect %s: %s", canon, dn_strerror(rc));
        return;
    }
    dn__api_reply(req, 200, json_pack("{s:s, s:b}", "peer_id", canon, "disconnected", 1));
}

/* ---- GET /v0/config, PUT /v0/config ---- */

static void on_config_get(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    json_t *v = dn__node_config_to_json(dn__node_config_of(a->n));
    if (!v) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    dn__api_reply(req, 200, v);
}

/* The update as a flat object of dotted keys: {"limits.max_conns": 8} and
 * {"limits": {"max_conns": 8}} both work. 0, or answers 400. */
static int flatten_update(dn_api_req *req, json_t *body, json_t *flat)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        char show[SHOWN_MAX + 8];
        shown(k, show, sizeof show);
        if (dn__node_config_key_index(k) >= 0) {
            json_object_set(flat, k, v);
            continue;
        }
        if (!strchr(k, '.') && json_is_object(v) && strlen(k) < 32) {
            const char *sk;
            json_t *sv;
            bool known = false;
            for (size_t i = 0; i < dn__node_config_key_count(); i++) {
                const char *name = dn__node_config_key_name(i);
                size_t kl = strlen(k);
                if (!strncmp(name, k, kl) && name[kl] == '.')
                    known = true;
            }
            if (known) {
                json_object_foreach(v, sk, sv)
                {
                    char path[128];
                    snprintf(path, sizeof path, "%s.%s", k, sk);
                    if (dn__node_config_key_index(path) < 0) {
                        shown(path, show, sizeof show);
                        dn__api_reply_error(req, 400, "unknown configuration key '%s'", show);
                        return -1;
                    }
                    json_object_set(flat, path, sv);
                }
                continue;
            }
        }
        dn__api_reply_error(req, 400, "unknown configuration key '%s'", show);
        return -1;
    }
    return 0;
}

static void on_config_put(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    json_t *body = body_object(req);
    if (!body)
        return;
    json_t *flat = json_object();
    dn__node_config tmp;
    bool tmp_ok = dn__node_config_copy(&tmp, dn__node_config_of(a->n)) == 0;
    if (!flat || !tmp_ok) {
        dn__api_reply_error(req, 500, "out of memory");
        goto out;
    }
    if (flatten_update(req, body, flat))
        goto out;
    if (json_object_size(flat) == 0) {
        dn__api_reply_error(req, 400, "no configuration key given");
        goto out;
    }
    /* Validate everything before changing anything: a copy of the
     * effective configuration takes every new value, then the rules that
     * span keys run on the result. */
    char err[512];
    const char *k;
    json_t *v;
    json_object_foreach(flat, k, v)
    {
        if (json_is_null(v))
            continue; /* a reset: back to config.json or the default */
        if (dn__node_config_set_json(&tmp, k, v, err, sizeof err) != 0) {
            dn__api_reply_error(req, 400, "%s", err);
            goto out;
        }
    }
    if (dn__node_config_check(&tmp, err, sizeof err) != 0) {
        dn__api_reply_error(req, 400, "%s", err);
        goto out;
    }
    json_t *applied = json_array(), *later = json_array();
    json_object_foreach(flat, k, v)
    {
        bool now = false;
        int rc = dn__node_config_update(a->n, k, json_is_null(v) ? NULL : v, &now, err, sizeof err);
        if (rc) {
            dn__api_reply(req, rc == DN_EINVAL ? 400 : 500,
                          json_pack("{s:s, s:o, s:o}", "error", err, "applied", applied,
                                    "restart_required", later));
            goto out;
        }
        json_array_append_new(now ? applied : later, json_string(k));
    }
    dn__api_reply(req, 200, json_pack("{s:o, s:o}", "applied", applied, "restart_required", later));
out:
    if (tmp_ok)
        dn__node_config_free(&tmp);
    json_decref(flat);
}

/* ---- GET /v0/events ---- */

static void sub_unlink(ev_sub *sub)
{
    dn__node_api *a = sub->a;
    if (sub->prev)
        sub->prev->next = sub->next;
    else if (a->subs == sub)
        a->subs = sub->next;
    if (sub->next)
        sub->next->prev = sub->prev;
}

static void on_event(dn_network *n, const dn_network_event *ev, void *arg)
{
    ev_sub *sub = arg;
    json_t *v = dn__node_event_json(ev);
    if (!v)
        return;
    /* A full queue drops the stream: on_stream_close runs from in here and
     * frees sub. */
    dn__api_stream_push(sub->s, v);
    json_decref(v);
}

static void on_stream_close(dn_api_stream *s, dn_api_stream_end why, void *ud)
{
    ev_sub *sub = ud;
    DN_DEBUG(M, "event stream closed (%s)",
             why == DN_API_STREAM_DROPPED        ? "client did not keep up"
             : why == DN_API_STREAM_DISCONNECTED ? "client left"
                                                 : "shutdown");
    dn_network_event_unregister(sub->a->n, on_event, sub);
    sub_unlink(sub);
    free(sub);
}

/* ?types=a,b -> mask; 0 after answering 400 for an unknown name. */
static uint32_t types_mask(dn_api_req *req, const char *types)
{
    uint32_t mask = 0;
    const char *p = types;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        bool found = false;
        for (int t = DN_NET_EV_LOCAL_ADDRS_UPDATED; t <= DN_NET_EV_PEER_CONNECTEDNESS; t++) {
            const char *name = dn_network_event_name((dn_network_event_type)t);
            if (len && strlen(name) == len && !strncmp(name, p, len)) {
                mask |= 1u << t;
                found = true;
            }
        }
        if (!found) {
            char one[SHOWN_MAX + 1], show[SHOWN_MAX + 8];
            snprintf(one, sizeof one, "%.*s", (int)(len < SHOWN_MAX ? len : SHOWN_MAX), p);
            shown(one, show, sizeof show);
            dn__api_reply_error(req, 400,
                                "'types': unknown event type '%s' (known: local_addresses_updated, "
                                "local_reachability_changed, peer_identification_completed, "
                                "nat_device_type_changed, peer_connectedness_changed)",
                                show);
            return 0;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (!mask)
        dn__api_reply_error(req, 400, "'types': no event type given");
    return mask;
}

static void on_events(dn_api_req *req, void *ud)
{
    dn__node_api *a = ud;
    uint32_t mask = DN_NET_EV_ALL;
    const char *types = dn__api_req_query(req, "types");
    if (types && !(mask = types_mask(req, types)))
        return;
    ev_sub *sub = calloc(1, sizeof *sub);
    if (!sub) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    sub->a = a;
    sub->mask = mask;
    int rc = dn_network_event_register(a->n, mask, on_event, sub);
    if (rc) {
        free(sub);
        dn__api_reply_error(req, 500, "events: %s", dn_strerror(rc));
        return;
    }
    sub->s = dn__api_reply_stream(req, on_stream_close, sub);
    if (!sub->s) { /* req answered 500 by the server */
        dn_network_event_unregister(a->n, on_event, sub);
        free(sub);
        return;
    }
    sub->next = a->subs;
    if (sub->next)
        sub->next->prev = sub;
    a->subs = sub;
}

/* ---- start, stop ---- */

/* api.listen ("/ip4/127.0.0.1/tcp/5080", validated by the config) as a
 * host literal and a port. */
static int parse_api_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    dn_multiaddr ma;
    if (dn_multiaddr_parse(s, &ma) != 0)
        return DN_EINVAL;
    size_t off = 0;
    dn_ma_component c;
    bool have_host = false, have_port = false;
    while (dn_multiaddr_next(&ma, &off, &c) == 1) {
        if ((c.code == DN_MA_IP4 && c.value_len == 4) ||
            (c.code == DN_MA_IP6 && c.value_len == 16)) {
            if (!inet_ntop(c.code == DN_MA_IP4 ? AF_INET : AF_INET6, c.value, host,
                           (socklen_t)hostlen))
                return DN_EINVAL;
            have_host = true;
        } else if (c.code == DN_MA_TCP && c.value_len == 2) {
            *port = (uint16_t)(c.value[0] << 8 | c.value[1]);
            have_port = true;
        } else {
            return DN_EINVAL;
        }
    }
    return have_host && have_port ? 0 : DN_EINVAL;
}

int dn__node_api_start(dn_network *n, dn__node_api **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *dir = dn__node_data_dir(n);
    const dn__node_config *cfg = dn__node_config_of(n);
    char sock[4200], token[4200], host[64] = "";
    if (snprintf(sock, sizeof sock, "%s/api.sock", dir) >= (int)sizeof sock ||
        snprintf(token, sizeof token, "%s/api.token", dir) >= (int)sizeof token) {
        snprintf(err, errlen, "api: data directory path too long");
        return DN_ETOOBIG;
    }
    dn_api_config ac = {
        .unix_path = sock, .token_path = token, .allow_remote = cfg->api.allow_remote};
    if (cfg->api.listen) {
        if (parse_api_listen(cfg->api.listen, host, sizeof host, &ac.tcp_port)) {
            snprintf(err, errlen, "'api.listen': %s is not /ip4|ip6/<addr>/tcp/<port>",
                     cfg->api.listen);
            return DN_EINVAL;
        }
        ac.tcp_host = host;
    }
    dn__node_api *a = calloc(1, sizeof *a);
    if (!a)
        return DN_ENOMEM;
    a->n = n;
    int rc = dn__api_new(dn_network_loop(n), &ac, &a->api, err, errlen);
    if (rc) {
        free(a);
        return rc;
    }
    static const struct {
        const char *method, *path;
        dn_api_handler h;
    } routes[] = {
        {"GET", "/v0/status", on_status},     {"GET", "/v0/peers", on_peers},
        {"POST", "/v0/connect", on_connect},  {"POST", "/v0/disconnect", on_disconnect},
        {"POST", "/v0/ping", on_ping},        {"GET", "/v0/config", on_config_get},
        {"PUT", "/v0/config", on_config_put}, {"GET", "/v0/events", on_events},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        rc = dn__api_route(a->api, routes[i].method, routes[i].path, false, routes[i].h, a);
        if (rc) {
            snprintf(err, errlen, "api: cannot add route %s %s: %s", routes[i].method,
                     routes[i].path, dn_strerror(rc));
            dn__api_close(a->api);
            free(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

void dn__node_api_stop(dn__node_api *a)
{
    if (!a)
        return;
    /* Requests waiting on the network get their answer now; the ops stay
     * alive (detached) until the network's callbacks have run. */
    while (a->ops)
        op_answer(a->ops, 503, error_json("the daemon is stopping"));
    /* Ends the streams: on_stream_close unregisters each from the bus. */
    dn__api_close(a->api);
    while (a->subs) { /* not expected: the server closes every stream */
        ev_sub *sub = a->subs;
        dn_network_event_unregister(a->n, on_event, sub);
        sub_unlink(sub);
        free(sub);
    }
    free(a);
}

dn_api *dn__node_api_server(dn__node_api *a)
{
    return a ? a->api : NULL;
}
