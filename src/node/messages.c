/* node — the Messenger in the node (issue 10): typed messages through the
 * daemon's API.
 *
 *   POST /v0/send            {"peer", "type", "data"}              -> {"sent": true}
 *   POST /v0/request         {"peer", "type", "data", "timeout_ms"} -> {"reply": "<base64>"}
 *   GET  /v0/messages?type=T  NDJSON: {"id", "from", "type", "data", "time"} per message
 *   POST /v0/messages/reply  {"id", "data"}                        -> {"replied": true}
 *
 * data is base64 (payloads are bytes). A type is served (its protocol
 * handler registered on the host) while at least one API client listens
 * for it; a message that arrives for it goes to every listener of that type
 * and to those listening to all types, and waits (bounded, with a
 * deadline) for one of them to reply. */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/io.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/messenger.h"
#include "node/network_int.h"

/* base64 of a 1 MiB payload in a JSON body, with room for the rest. */
#define MSG_BODY_MAX (1500u * 1024)
/* Received messages waiting for a reply from an API client. */
#define PENDING_MAX 1024
#define PENDING_TTL_MS 60000
/* Every listener's stream may queue LISTENER_QUEUE bytes before it is
 * dropped, so what a flooding peer can make the node hold for listeners
 * that do not read is at most LISTENERS_MAX * LISTENER_QUEUE (48 MiB). */
#define LISTENERS_MAX 16
#define LISTENER_QUEUE (2 * MSG_BODY_MAX)

typedef struct listener {
    struct dn__node_msgs *ms;
    dn_api_stream *s;
    char *type; /* NULL: every type served */
    struct listener *next;
} listener;

typedef struct pending {
    uint64_t id;
    dn_messenger_reply_handle *h;
    uint64_t expires_ms;
    struct pending *next;
} pending;

struct dn__node_msgs {
    dn_network *n;
    dn_messenger *m;
    listener *listeners;
    size_t nlisteners;
    pending *pending;
    size_t npending;
    uint64_t next_id;
    /* Types with a handler on the messenger; one no listener wants any more
     * is unhandled at the next tick (never from inside a handler). */
    char *handled[LISTENERS_MAX];
    size_t nhandled;
};

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

int dn__node_msgs_attach(dn_network *n, char *err, size_t errlen)
{
    dn__node_msgs *ms = calloc(1, sizeof *ms);
    if (!ms) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    ms->n = n;
    ms->next_id = 1;
    n->msgs = ms;
    dn_messenger_config mc = DN_MESSENGER_CONFIG_INIT;
    int rc = dn_messenger_attach(n->host, &mc, &ms->m);
    if (rc)
        dn__set_err(err, errlen, "cannot start the messenger: %s", dn_strerror(rc));
    return rc;
}

dn_messenger *dn_network_messenger(dn_network *n)
{
    return n->msgs ? n->msgs->m : NULL;
}

/* ---- pending replies ---- */

static void pending_drop_all(dn__node_msgs *ms, bool expired_only, uint64_t now)
{
    for (pending **pp = &ms->pending; *pp;) {
        pending *p = *pp;
        if (expired_only && p->expires_ms > now) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        dn_messenger_reply_discard(p->h);
        free(p);
        ms->npending--;
    }
}

static bool type_listened(const dn__node_msgs *ms, const char *type);

void dn__node_msgs_tick(dn_network *n)
{
    dn__node_msgs *ms = n->msgs;
    if (!ms)
        return;
    pending_drop_all(ms, true, unix_ms());
    for (size_t i = 0; i < ms->nhandled;) {
        if (type_listened(ms, ms->handled[i])) {
            i++;
            continue;
        }
        dn_messenger_unhandle(ms->m, ms->handled[i]);
        free(ms->handled[i]);
        ms->handled[i] = ms->handled[--ms->nhandled];
    }
}

void dn__node_msgs_stop(dn_network *n)
{
    if (!n->msgs)
        return;
    /* The listeners' streams end with the API (before this). */
    pending_drop_all(n->msgs, false, 0);
}

void dn__node_msgs_free(dn_network *n)
{
    if (!n->msgs)
        return;
    for (size_t i = 0; i < n->msgs->nhandled; i++)
        free(n->msgs->handled[i]);
    free(n->msgs); /* the messenger goes with the host */
    n->msgs = NULL;
}

/* ---- receiving ---- */

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

static bool type_listened(const dn__node_msgs *ms, const char *type)
{
    for (const listener *l = ms->listeners; l; l = l->next)
        if (l->type && !strcmp(l->type, type))
            return true;
    return false;
}

static int on_message(dn_messenger *m, const dn_peerid *from, const char *type,
                      const uint8_t *data, size_t len, dn_messenger_reply_handle *reply, void *arg)
{
    dn__node_msgs *ms = arg;
    (void)m;
    char id[DN_PEERID_STR_MAX];
    dn_peerid_to_string(from, id, sizeof id);
    uint64_t mid = ms->next_id++;
    json_t *line = json_pack("{s:I, s:s, s:o, s:o, s:I}", "id", (json_int_t)mid, "from", id, "type",
                             dn__node_text_json(type), "data", b64_json(data, len), "time",
                             (json_int_t)unix_ms());
    if (!line)
        return 0;
    bool delivered = false;
    for (listener *l = ms->listeners, *next; l; l = next) {
        next = l->next; /* a push may drop (and free) the listener */
        if (l->type && strcmp(l->type, type))
            continue;
        if (dn__api_stream_push(l->s, line) == 0)
            delivered = true;
    }
    json_decref(line);
    if (!delivered || ms->npending >= PENDING_MAX)
        return 0; /* nobody can reply: the sender sees the stream end */
    pending *p = malloc(sizeof *p);
    if (!p)
        return 0;
    *p = (pending){.id = mid, .h = reply, .expires_ms = unix_ms() + PENDING_TTL_MS,
                   .next = ms->pending};
    ms->pending = p;
    ms->npending++;
    return DN_MESSENGER_DEFER;
}

static void listener_free(listener *l)
{
    dn__node_msgs *ms = l->ms;
    for (listener **pp = &ms->listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    ms->nlisteners--;
    free(l->type);
    free(l);
}

static void on_listener_closed(dn_api_stream *s, dn_api_stream_end why, void *ud)
{
    (void)s, (void)why;
    listener_free(ud);
}

static bool valid_type(const char *t)
{
    /* A protocol id: '/'-led printable ASCII, as multistream-select allows. */
    size_t n = strlen(t);
    if (n < 2 || n > 255 || t[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~')
            return false;
    return true;
}

static void on_messages(dn_api_req *req, void *ud)
{
    dn__node_msgs *ms = ud;
    const char *type = dn__api_req_query(req, "type");
    if (type && !valid_type(type)) {
        dn__api_reply_error(req, 400, "'type' must be a protocol id (/...)");
        return;
    }
    if (ms->nlisteners >= LISTENERS_MAX) {
        dn__api_reply_error(req, 429, "too many message listeners (%d)", LISTENERS_MAX);
        return;
    }
    listener *l = calloc(1, sizeof *l);
    if (!l || (type && !(l->type = strdup(type)))) {
        free(l);
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    bool handled = false;
    for (size_t i = 0; type && i < ms->nhandled; i++)
        handled |= !strcmp(ms->handled[i], type);
    if (type && !handled) {
        char *copy = strdup(type);
        int rc = copy ? dn_messenger_handle(ms->m, type, on_message, ms) : DN_ENOMEM;
        if (rc) {
            free(copy);
            free(l->type);
            free(l);
            dn__api_reply_error(req, 500, "cannot serve %s: %s", type, dn_strerror(rc));
            return;
        }
        ms->handled[ms->nhandled++] = copy; /* nhandled <= nlisteners < LISTENERS_MAX */
    }
    l->ms = ms;
    l->next = ms->listeners;
    ms->listeners = l;
    ms->nlisteners++;
    l->s = dn__api_reply_stream(req, on_listener_closed, l);
    if (!l->s)
        listener_free(l);
    else /* two whole messages of the largest size, base64 */
        dn__api_stream_set_queue_max(l->s, LISTENER_QUEUE);
}

/* ---- sending ---- */

typedef struct send_op {
    dn__node_msgs *ms;
    dn_api_req *req;
    bool request;
    char peer[DN_PEERID_STR_MAX];
    char *type;
    uint8_t *data;
    size_t len;
    uint32_t timeout_ms;
} send_op;

static void op_free(send_op *op)
{
    free(op->type);
    free(op->data);
    free(op);
}

static unsigned status_of(int rc)
{
    switch (rc) {
    case DN_ETOOBIG: return 413;
    case DN_ETIMEOUT: return 504;
    case DN_EINVAL: return 400;
    default: return 502;
    }
}

static const char *why(int rc)
{
    switch (rc) {
    case DN_ENEGOTIATE: return "the peer does not serve this message type";
    case DN_ERESET:
        return "the peer refused the message (too large for it, its queue full, or the type no "
               "longer served)";
    case DN_ECLOSED: return "the peer ended the stream without a reply";
    case DN_ETOOBIG: return "the payload is larger than the limit (1 MiB)";
    default: return dn_strerror(rc);
    }
}

static void on_sent(void *arg, int status)
{
    send_op *op = arg;
    if (status)
        dn__api_reply_error(op->req, status_of(status), "send to %s: %s", op->peer, why(status));
    else
        dn__api_reply(op->req, 200, json_pack("{s:b}", "sent", 1));
    op_free(op);
}

static void on_reply(void *arg, int status, const uint8_t *reply, size_t len)
{
    send_op *op = arg;
    if (status)
        dn__api_reply_error(op->req, status_of(status), "request to %s: %s", op->peer,
                            why(status));
    else
        dn__api_reply(op->req, 200, json_pack("{s:o}", "reply", b64_json(reply, len)));
    op_free(op);
}

static void op_go(send_op *op)
{
    dn_peerid id;
    dn_peerid_parse(op->peer, &id);
    dn_messenger *m = op->ms->m;
    int rc = op->request ? dn_messenger_request(m, NULL, &id, op->type, op->data, op->len,
                                                op->timeout_ms, on_reply, op)
                         : dn_messenger_send(m, NULL, &id, op->type, op->data, op->len,
                                             op->timeout_ms, on_sent, op);
    if (rc) {
        dn__api_reply_error(op->req, status_of(rc), "%s to %s: %s",
                            op->request ? "request" : "send", op->peer, why(rc));
        op_free(op);
    }
}

static void on_dialled(dn_network *n, const dn_peerid *peer, int status, void *arg)
{
    send_op *op = arg;
    (void)n, (void)peer;
    if (status) {
        dn__api_reply_error(op->req, 502, "cannot reach %s: %s", op->peer, dn_strerror(status));
        op_free(op);
        return;
    }
    op_go(op);
}

/* Decode {"data": base64} into *out (malloc'd). */
static int body_data(dn_api_req *req, json_t *b, uint8_t **out, size_t *len)
{
    json_t *d = json_object_get(b, "data");
    if (!json_is_string(d)) {
        dn__api_reply_error(req, 400, "'data' (base64) is missing");
        return -1;
    }
    size_t n = json_string_length(d);
    *out = malloc(n / 4 * 3 + 3);
    int k = *out ? dn_base64_decode(json_string_value(d), n, *out, n / 4 * 3 + 3) : DN_ENOMEM;
    if (k < 0) {
        free(*out);
        dn__api_reply_error(req, 400, "'data' is not base64");
        return -1;
    }
    *len = (size_t)k;
    return 0;
}

static void start_send(dn_api_req *req, dn__node_msgs *ms, bool request)
{
    json_t *b = dn__api_req_body(req);
    const char *peer = json_string_value(json_object_get(b, "peer"));
    const char *type = json_string_value(json_object_get(b, "type"));
    dn_peerid id;
    if (!json_is_object(b) || !peer || dn_peerid_parse(peer, &id)) {
        dn__api_reply_error(req, 400, "'peer' must be a peer id");
        return;
    }
    if (!type || !valid_type(type)) {
        dn__api_reply_error(req, 400, "'type' must be a protocol id (/...)");
        return;
    }
    json_t *t = json_object_get(b, "timeout_ms");
    if (t && (!json_is_integer(t) || json_integer_value(t) < 1 ||
              json_integer_value(t) > 600000)) {
        dn__api_reply_error(req, 400, "'timeout_ms' must be 1..600000");
        return;
    }
    send_op *op = calloc(1, sizeof *op);
    if (!op || !(op->type = strdup(type))) {
        free(op);
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    if (body_data(req, b, &op->data, &op->len)) {
        op_free(op);
        return;
    }
    op->ms = ms;
    op->req = req;
    op->request = request;
    op->timeout_ms = t ? (uint32_t)json_integer_value(t) : 0;
    snprintf(op->peer, sizeof op->peer, "%s", peer);
    const dn_peer_info *p = dn_host_peer(ms->n->host, &id);
    if (p && p->connections) {
        op_go(op);
        return;
    }
    int rc = dn_network_dial(ms->n, peer, on_dialled, op);
    if (rc) {
        dn__api_reply_error(req, 502, "cannot dial %s: %s", peer, dn_strerror(rc));
        op_free(op);
    }
}

static void on_send(dn_api_req *req, void *ud) { start_send(req, ud, false); }
static void on_request(dn_api_req *req, void *ud) { start_send(req, ud, true); }

static void on_reply_post(dn_api_req *req, void *ud)
{
    dn__node_msgs *ms = ud;
    json_t *b = dn__api_req_body(req), *idv = json_object_get(b, "id");
    if (!json_is_integer(idv)) {
        dn__api_reply_error(req, 400, "'id' (the message's id) is missing");
        return;
    }
    uint64_t id = (uint64_t)json_integer_value(idv);
    pending **pp = &ms->pending;
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    if (!*pp) {
        dn__api_reply_error(req, 404, "no message %llu waits for a reply (answered, expired, or "
                                      "never received)", (unsigned long long)id);
        return;
    }
    uint8_t *data;
    size_t len;
    if (body_data(req, b, &data, &len))
        return;
    pending *p = *pp;
    *pp = p->next;
    ms->npending--;
    int rc = dn_messenger_reply(p->h, data, len);
    free(p);
    free(data);
    if (rc)
        dn__api_reply_error(req, status_of(rc), "reply to message %llu: %s",
                            (unsigned long long)id, rc == DN_ECLOSED ? "the sender is gone"
                                                                     : dn_strerror(rc));
    else
        dn__api_reply(req, 200, json_pack("{s:b}", "replied", 1));
}

int dn__node_msgs_routes(dn_network *n, dn_api *api)
{
    dn__node_msgs *ms = n->msgs;
    int rc;
    if ((rc = dn__api_route(api, "POST", "/v0/send", false, on_send, ms)) ||
        (rc = dn__api_route(api, "POST", "/v0/request", false, on_request, ms)) ||
        (rc = dn__api_route(api, "GET", "/v0/messages", false, on_messages, ms)) ||
        (rc = dn__api_route(api, "POST", "/v0/messages/reply", false, on_reply_post, ms)))
        return rc;
    (void)dn__api_route_set_max_body(api, "POST", "/v0/send", MSG_BODY_MAX);
    (void)dn__api_route_set_max_body(api, "POST", "/v0/request", MSG_BODY_MAX);
    (void)dn__api_route_set_max_body(api, "POST", "/v0/messages/reply", MSG_BODY_MAX);
    return 0;
}
