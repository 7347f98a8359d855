/* node — pubsub in the node (issue 10): the node's gossipsub (or floodsub)
 * service on its host, and its API routes.
 *
 *   GET  /v0/pubsub/sub?topic=T    NDJSON: {"topic", "from", "seqno", "data"} per message
 *   POST /v0/pubsub/pub            {"topic", "data"}  -> {"peers": N}
 *   GET  /v0/pubsub/peers[?topic=T] -> {"topic", "peers": [peer id, ...]}
 *   GET  /v0/pubsub/topics          -> {"topics": [topic, ...]}
 *
 * data is base64; seqno is a decimal string (it is a 64-bit number, more
 * than a JSON number keeps exactly in JavaScript or jq). Every listener
 * holds its own subscription, so the node is subscribed to a topic while
 * at least one listener (or a C subscriber, publishJob's included) wants
 * it: the service shares one router subscription between them. A listener
 * whose stream ended is unsubscribed at the next tick, never from inside
 * the service's delivery (the end may come from a push during it). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/io.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/pubsub.h"
#include "node/network_int.h"

/* base64 of a 1 MiB payload in a JSON body, with room for the rest. */
#define PS_BODY_MAX (1500u * 1024)
/* What a flooding topic can make the node hold for listeners that do not
 * read: LISTENERS_MAX * LISTENER_QUEUE (48 MiB); past its queue a
 * listener is dropped (it gets a last line saying so). */
#define LISTENERS_MAX 16
#define LISTENER_QUEUE (2 * PS_BODY_MAX)

typedef struct ps_listener {
    dn__node_ps *nps;
    dn_api_stream *s;   /* NULL once the stream ended */
    dn_pubsub_sub *sub; /* unsubscribed at the tick after the stream ended */
    struct ps_listener *next;
} ps_listener;

struct dn__node_ps {
    dn_network *n;
    dn_pubsub *ps;
    ps_listener *listeners; /* live and ended ones (until the tick) */
    size_t nlisteners;
};

int dn__node_ps_attach(dn_network *n, char *err, size_t errlen)
{
    dn__node_ps *nps = calloc(1, sizeof *nps);
    if (!nps) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    nps->n = n;
    n->ps = nps;
    dn_pubsub_config pc = DN_PUBSUB_CONFIG_INIT;
    pc.floodsub_only = n->cfg.c.pubsub.floodsub;
    int rc = dn_pubsub_attach(n->host, &pc, &nps->ps);
    if (rc)
        dn__set_err(err, errlen, "cannot start pubsub: %s", dn_strerror(rc));
    return rc;
}

dn_pubsub *dn_network_pubsub(dn_network *n)
{
    return n->ps ? n->ps->ps : NULL;
}

static void sweep(dn__node_ps *nps, bool all)
{
    for (ps_listener **pp = &nps->listeners; *pp;) {
        ps_listener *l = *pp;
        if (l->s && !all) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        if (l->sub)
            dn_pubsub_unsubscribe(l->sub);
        free(l);
        nps->nlisteners--;
    }
}

void dn__node_ps_tick(dn_network *n)
{
    if (n->ps)
        sweep(n->ps, false);
}

void dn__node_ps_stop(dn_network *n)
{
    /* The API (and with it every listener's stream) ended before this; the
     * subscriptions go while the service is still there. */
    if (n->ps)
        sweep(n->ps, true);
}

void dn__node_ps_free(dn_network *n)
{
    if (!n->ps)
        return;
    /* On dn_network_new's failure path nothing subscribed; otherwise _stop
     * left no listener. The service goes with the host. */
    for (ps_listener *l = n->ps->listeners, *next; l; l = next) {
        next = l->next;
        free(l);
    }
    free(n->ps);
    n->ps = NULL;
}

/* ---- shared JSON helpers ---- */

json_t *dn__node_b64_json(const uint8_t *data, size_t len)
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

int dn__node_b64_field(dn_api_req *req, json_t *body, const char *key, uint8_t **out, size_t *len)
{
    json_t *d = json_object_get(body, key);
    if (!json_is_string(d)) {
        dn__api_reply_error(req, 400, "'%s' (base64) is missing", key);
        return -1;
    }
    size_t n = json_string_length(d), cap = n / 4 * 3 + 3;
    *out = malloc(cap);
    int k = *out ? dn_base64_decode(json_string_value(d), n, *out, cap) : DN_ENOMEM;
    if (k < 0) {
        free(*out);
        *out = NULL;
        if (k == DN_ENOMEM)
            dn__api_reply_error(req, 500, "out of memory");
        else
            dn__api_reply_error(req, 400, "'%s' is not base64", key);
        return -1;
    }
    *len = (size_t)k;
    return 0;
}

/* ---- routes ---- */

/* A topic from a client: 1..512 bytes without NUL (the router's bound);
 * NULL and the request answered otherwise. */
static const char *topic_of(dn_api_req *req, const char *t, bool required)
{
    if (!t) {
        if (required)
            dn__api_reply_error(req, 400, "'topic' is missing");
        return NULL;
    }
    size_t n = strlen(t);
    if (n == 0 || n > DN__NODE_CONFIG_MAX_TOPIC) {
        dn__api_reply_error(req, 400, "'topic' must be 1..%d bytes, got %zu",
                            DN__NODE_CONFIG_MAX_TOPIC, n);
        return NULL;
    }
    return t;
}

static void on_ps_message(void *arg, const dn_pubsub_message *m)
{
    ps_listener *l = arg;
    if (!l->s)
        return; /* ended: unsubscribed at the next tick */
    char from[DN_PEERID_STR_MAX], seqno[24];
    dn_peerid_to_string(&m->from, from, sizeof from);
    snprintf(seqno, sizeof seqno, "%" PRIu64, m->seqno);
    json_t *line = json_pack("{s:o, s:s, s:s, s:o}", "topic", dn__node_text_json(m->topic), "from",
                             from, "seqno", seqno, "data", dn__node_b64_json(m->data, m->len));
    if (!line) {
        DN_LOG_LIMITED(DN_LOG_WARN, "pubsub", "out of memory: a message is not shown");
        return;
    }
    (void)dn__api_stream_push(l->s, line); /* past the queue: dropped, on_listener_closed */
    json_decref(line);
}

static void on_listener_closed(dn_api_stream *s, dn_api_stream_end why, void *ud)
{
    ps_listener *l = ud;
    (void)s, (void)why;
    l->s = NULL;
}

static void on_sub(dn_api_req *req, void *ud)
{
    dn__node_ps *nps = ud;
    const char *topic = topic_of(req, dn__api_req_query(req, "topic"), true);
    if (!topic)
        return;
    if (nps->nlisteners >= LISTENERS_MAX) {
        dn__api_reply_error(req, 429, "too many pubsub listeners (%d)", LISTENERS_MAX);
        return;
    }
    ps_listener *l = calloc(1, sizeof *l);
    if (!l) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    l->nps = nps;
    int rc = dn_pubsub_subscribe(nps->ps, topic, on_ps_message, l, &l->sub);
    if (rc) {
        free(l);
        dn__api_reply_error(req, rc == DN_EINVAL ? 400 : 500, "cannot subscribe: %s",
                            dn_strerror(rc));
        return;
    }
    l->next = nps->listeners;
    nps->listeners = l;
    nps->nlisteners++;
    /* Until the stream is up l->s is NULL, so nothing is delivered to it;
     * the service delivers from the loop, never from inside subscribe. */
    l->s = dn__api_reply_stream(req, on_listener_closed, l);
    if (l->s) /* two whole messages of the largest size, base64 */
        dn__api_stream_set_queue_max(l->s, LISTENER_QUEUE);
}

static void on_pub(dn_api_req *req, void *ud)
{
    dn__node_ps *nps = ud;
    json_t *b = dn__api_req_body(req);
    if (!json_is_object(b)) {
        dn__api_reply_error(req, 400, "the body must be {\"topic\", \"data\"}");
        return;
    }
    const char *topic = topic_of(req, json_string_value(json_object_get(b, "topic")), true);
    if (!topic)
        return;
    uint8_t *data;
    size_t len;
    if (dn__node_b64_field(req, b, "data", &data, &len))
        return;
    if (len > DN_PUBSUB_MAX_DATA) {
        free(data);
        dn__api_reply_error(req, 413, "the message is larger than the limit (%u bytes)",
                            DN_PUBSUB_MAX_DATA);
        return;
    }
    int rc = dn_pubsub_publish(nps->ps, topic, data, len);
    free(data);
    if (rc < 0)
        dn__api_reply_error(req,
                            rc == DN_ETOOBIG  ? 413
                            : rc == DN_EINVAL ? 400
                                              : 500,
                            "cannot publish: %s", dn_strerror(rc));
    else
        dn__api_reply(req, 200, json_pack("{s:i}", "peers", rc));
}

static void on_peers(dn_api_req *req, void *ud)
{
    dn__node_ps *nps = ud;
    const char *q = dn__api_req_query(req, "topic");
    const char *topic = topic_of(req, q, false);
    if (q && !topic)
        return;
    size_t n = dn_pubsub_topic_peers(nps->ps, topic, NULL, 0);
    dn_peerid *ids = n ? malloc(n * sizeof *ids) : NULL;
    if (n && !ids) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    if (n) {
        size_t k = dn_pubsub_topic_peers(nps->ps, topic, ids, n);
        n = k < n ? k : n;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char id[DN_PEERID_STR_MAX];
        dn_peerid_to_string(&ids[i], id, sizeof id);
        json_array_append_new(arr, json_string(id));
    }
    free(ids);
    json_t *o =
        json_pack("{s:o, s:o}", "topic", topic ? json_string(topic) : json_null(), "peers", arr);
    if (!o)
        dn__api_reply_error(req, 500, "out of memory");
    else
        dn__api_reply(req, 200, o);
}

static void on_topics(dn_api_req *req, void *ud)
{
    dn__node_ps *nps = ud;
    size_t n = dn_pubsub_topics(nps->ps, NULL, 0);
    const char **t = n ? malloc(n * sizeof *t) : NULL;
    if (n && !t) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    if (n) {
        size_t k = dn_pubsub_topics(nps->ps, t, n);
        n = k < n ? k : n;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, dn__node_text_json(t[i]));
    free(t);
    json_t *o = json_pack("{s:o}", "topics", arr);
    if (!o)
        dn__api_reply_error(req, 500, "out of memory");
    else
        dn__api_reply(req, 200, o);
}

int dn__node_ps_routes(dn_network *n, dn_api *api)
{
    dn__node_ps *nps = n->ps;
    int rc;
    if ((rc = dn__api_route(api, "GET", "/v0/pubsub/sub", false, on_sub, nps)) ||
        (rc = dn__api_route(api, "POST", "/v0/pubsub/pub", false, on_pub, nps)) ||
        (rc = dn__api_route(api, "GET", "/v0/pubsub/peers", false, on_peers, nps)) ||
        (rc = dn__api_route(api, "GET", "/v0/pubsub/topics", false, on_topics, nps)))
        return rc;
    (void)dn__api_route_set_max_body(api, "POST", "/v0/pubsub/pub", PS_BODY_MAX);
    return 0;
}
