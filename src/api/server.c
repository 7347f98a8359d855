/* api server — libmicrohttpd driven from a libuv loop (see api.h).
 *
 * Why this shape: MHD supports one listen socket per daemon, so the unix
 * socket and the optional TCP listener are two MHD daemons, each with its own
 * epoll fd, uv_poll and uv_timer. MHD_USE_EPOLL without an internal thread
 * hands us that epoll fd (MHD_DAEMON_INFO_EPOLL_FD): it is readable whenever
 * one of MHD's sockets (or its ITC, signalled by MHD_resume_connection) is
 * ready, and MHD_run then does the non-blocking work. MHD_get_timeout says
 * when MHD must run for connection timeouts. */
#include "api/api.h"

#include "core/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"

#define M "api"
#define DN_API_MAX_ROUTES 128

typedef struct dn_api_route {
    char method[16];
    char *path;
    size_t path_len;
    bool prefix;
    dn_api_handler h;
    void *ud;
    size_t max_body; /* 0: the server's */
} dn_api_route;

/* One per accepted socket (MHD_OPTION_NOTIFY_CONNECTION): MHD's timeout
 * only measures inactivity, so a client trickling one byte at a time would
 * hold a slot for ever; the sweep cuts a request that takes longer than the
 * deadline. */
typedef struct dn_api_conn {
    struct MHD_Connection *conn;
    struct dn_api_listener *lis;
    int fd;
    uint64_t since_ms; /* start of the current request (or of the idle time) */
    dn_api_req *req;
    bool cut;
    struct dn_api_conn *prev, *next;
} dn_api_conn;

typedef struct dn_api_listener {
    dn_api *api;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    int listen_fd;
    bool tcp;
    bool handles; /* poll and timer initialised */
} dn_api_listener;

struct dn_api {
    uv_loop_t *loop;
    dn_api_listener lis[2];
    int nlis;
    dn_api_route routes[DN_API_MAX_ROUTES];
    size_t nroutes;
    char token[DN_API_TOKEN_HEX_LEN + 1];
    char *unix_path;
    dev_t sock_dev;
    ino_t sock_ino;
    size_t max_body;
    unsigned conn_timeout;
    unsigned max_conns;
    size_t stream_queue_max;
    uint16_t tcp_port;
    dn_api_req *reqs;   /* requests MHD still holds */
    dn_api_conn *conns; /* sockets MHD holds */
    uv_timer_t sweep;
    bool sweep_inited;
    unsigned deadline_ms;
    dn_api_stream *streams; /* streams still accepting events */
    dn_api_stats st;
    int open_handles;
    bool closing;
};

enum req_state {
    RS_BODY,    /* receiving the body */
    RS_HANDLER, /* handed to the handler, no reply yet */
    RS_REPLIED, /* reply built, not yet queued with MHD */
    RS_QUEUED,  /* response queued; nothing left for us to do */
};

struct dn_api_req {
    dn_api *api;
    dn_api_listener *lis;
    struct MHD_Connection *conn; /* NULL once MHD is done with the request */
    const dn_api_route *route;
    char method[16];
    char *path;
    const char *rest;
    size_t max_body; /* of its route */
    unsigned deferred_status; /* an error to answer once the request is in */
    char deferred_msg[192];
    char deferred_allow[128];
    json_t *body;
    char *buf; /* body bytes received so far */
    size_t len, cap;
    bool too_big;
    enum req_state state;
    struct MHD_Response *resp;
    unsigned status;
    bool suspended;
    bool replied;
    dn_api_stream *stream;
    dn_api_conn *c;
    dn_api_req *prev, *next;
};

struct dn_api_stream {
    dn_api *api;
    dn_api_listener *lis;
    struct MHD_Connection *conn;
    dn_api_req *req; /* the request it answers, until either is gone */
    char *q;         /* queued lines: bytes [off, len) */
    size_t off, len, cap, max;
    bool accepting; /* takes events (in api->streams) */
    bool ended;     /* no more events: send the rest, then end */
    bool gone;      /* the client went away */
    bool suspended;
    dn_api_stream_close_cb cb;
    void *ud;
    uv_poll_t poll; /* watches the client socket for hangup while suspended */
    bool poll_inited, poll_active;
    dn_api_stream *prev, *next;
};


/* ---- driving MHD from the loop ---- */

static void on_timer(uv_timer_t *t);

static unsigned mhd_connections(dn_api_listener *l)
{
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di ? di->num_connections : 0;
}

static void run_mhd(dn_api_listener *l)
{
    if (!l->mhd)
        return;
    unsigned before = mhd_connections(l);
    MHD_run(l->mhd);
    if (!l->mhd)
        return;
    MHD_UNSIGNED_LONG_LONG ms = 0;
    /* MHD frees a connection's slot at the end of MHD_run, and only the
     * next MHD_run watches the listen socket again after it had stopped at
     * the connection limit: run again at once when connections closed, or a
     * client in the backlog waits for an unrelated event. */
    if (mhd_connections(l) < before)
        uv_timer_start(&l->timer, on_timer, 0, 0);
    else if (MHD_get_timeout(l->mhd, &ms) == MHD_YES)
        uv_timer_start(&l->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&l->timer);
}

static void on_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void on_epoll(uv_poll_t *p, int status, int events)
{
    run_mhd(p->data);
}

/* Make MHD run soon (after a resume from outside MHD_run). MHD's ITC would
 * wake the epoll fd too; the timer makes it independent of that detail and
 * never re-enters MHD_run from an MHD callback. */
static void kick(dn_api_listener *l)
{
    if (l && l->mhd)
        uv_timer_start(&l->timer, on_timer, 0, 0);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    DN_LOG_LIMITED(DN_LOG_DEBUG, M, "microhttpd: %s", line);
}

/* ---- responses ---- */

static const char oom_body[] = "{\"error\":\"out of memory\"}\n";

static struct MHD_Response *json_response(json_t *v)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6)) : strdup("{}");
    struct MHD_Response *resp = NULL;
    if (text) {
        size_t n = strlen(text);
        char *body = realloc(text, n + 2);
        if (body) {
            body[n] = '\n';
            body[n + 1] = 0;
            resp = MHD_create_response_from_buffer(n + 1, body, MHD_RESPMEM_MUST_FREE);
            if (!resp)
                free(body);
        } else {
            free(text);
        }
    }
    if (!resp)
        resp = MHD_create_response_from_buffer(sizeof oom_body - 1, (void *)oom_body,
                                               MHD_RESPMEM_PERSISTENT);
    if (resp)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return resp;
}

static struct MHD_Response *error_response(const char *msg)
{
    json_t *v = json_pack("{s:s}", "error", msg);
    struct MHD_Response *r = json_response(v);
    json_decref(v);
    return r;
}

/* ---- requests ---- */

static void req_unlink(dn_api_req *r)
{
    dn_api *api = r->api;
    if (!api)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else if (api->reqs == r)
        api->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    api->st.connections--;
    r->api = NULL;
}

static void req_free(dn_api_req *r)
{
    if (r->resp)
        MHD_destroy_response(r->resp);
    json_decref(r->body);
    free(r->buf);
    free(r->path);
    free(r);
}

static dn_api_req *req_new(dn_api_listener *l, struct MHD_Connection *conn, const char *url,
                           const char *method)
{
    dn_api_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->path = strdup(url ? url : "/");
    if (!r->path) {
        free(r);
        return NULL;
    }
    snprintf(r->method, sizeof r->method, "%s", method ? method : "");
    r->api = l->api;
    r->lis = l;
    r->conn = conn;
    r->state = RS_BODY;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) {
        r->c = ci->socket_context;
        r->c->req = r;
    }
    r->next = l->api->reqs;
    if (r->next)
        r->next->prev = r;
    l->api->reqs = r;
    l->api->st.connections++;
    return r;
}

/* Queue r->resp with MHD (from the access handler only). */
static enum MHD_Result req_queue(dn_api_req *r)
{
    struct MHD_Response *resp = r->resp;
    r->resp = NULL;
    r->state = RS_QUEUED;
    if (!resp)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result req_fail_now(dn_api_req *r, unsigned status, const char *msg)
{
    r->replied = true;
    r->status = status;
    r->resp = error_response(msg);
    if (r->resp && status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    return req_queue(r);
}

/* Remember an error known from the headers alone; it is sent when the
 * request is complete (the body, if any, is read and dropped). */
static enum MHD_Result defer_fail(dn_api_req *r, unsigned status, const char *msg,
                                  const char *allow)
{
    /* A refused request that announces a body larger than any route takes
     * is answered now, and the connection closed: reading it is no use. */
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > r->api->max_body)
        return req_fail_now(r, status, msg);
    r->deferred_status = status;
    snprintf(r->deferred_msg, sizeof r->deferred_msg, "%s", msg);
    snprintf(r->deferred_allow, sizeof r->deferred_allow, "%s", allow ? allow : "");
    return MHD_YES;
}

/* Set the reply; resume the connection when the handler answered late. */
static int req_set_reply(dn_api_req *r, unsigned status, struct MHD_Response *resp)
{
    if (r->replied) {
        if (resp)
            MHD_destroy_response(resp);
        return DN_ESTATE;
    }
    r->replied = true;
    if (!r->conn) { /* MHD gave up on it (client gone, timeout, shutdown) */
        if (resp)
            MHD_destroy_response(resp);
        req_free(r);
        return DN_ECLOSED;
    }
    r->status = status;
    r->resp = resp;
    r->state = RS_REPLIED;
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
        kick(r->lis);
    }
    return resp ? 0 : DN_ENOMEM;
}

int dn__api_reply(dn_api_req *r, unsigned status, json_t *value)
{
    struct MHD_Response *resp = json_response(value);
    json_decref(value);
    return req_set_reply(r, status, resp);
}

int dn__api_reply_error(dn_api_req *r, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return req_set_reply(r, status, error_response(msg));
}

const char *dn__api_req_method(const dn_api_req *r)
{
    return r->method;
}
const char *dn__api_req_path(const dn_api_req *r)
{
    return r->path;
}
const char *dn__api_req_rest(const dn_api_req *r)
{
    return r->rest ? r->rest : "";
}
json_t *dn__api_req_body(const dn_api_req *r)
{
    return r->body;
}
bool dn__api_req_is_tcp(const dn_api_req *r)
{
    return r->lis && r->lis->tcp;
}

const char *dn__api_req_query(const dn_api_req *r, const char *key)
{
    if (!r->conn)
        return NULL;
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ---- routing ---- */

/* Finds the route for path and method. *path_known tells 404 from 405;
 * allow gets the methods the path takes (for the Allow header). */
static const dn_api_route *route_find(const dn_api *api, const char *path, const char *method,
                                      bool *path_known, char *allow, size_t allowlen)
{
    const dn_api_route *best = NULL;
    size_t best_len = 0;
    bool best_exact = false;
    size_t plen = strlen(path);
    allow[0] = 0;
    *path_known = false;
    /* Pass 1: the most specific matching path (exact, else longest prefix). */
    for (size_t i = 0; i < api->nroutes; i++) {
        const dn_api_route *rt = &api->routes[i];
        bool exact = !rt->prefix && plen == rt->path_len && !memcmp(path, rt->path, plen);
        bool pre = rt->prefix && plen >= rt->path_len && !memcmp(path, rt->path, rt->path_len);
        if (!exact && !pre)
            continue;
        if (best_exact && !exact)
            continue;
        if (!best || (exact && !best_exact) || rt->path_len > best_len) {
            best = rt;
            best_len = rt->path_len;
            best_exact = exact;
        }
    }
    if (!best)
        return NULL;
    *path_known = true;
    /* Pass 2: among routes with that same path, the one for this method. */
    const dn_api_route *hit = NULL;
    for (size_t i = 0; i < api->nroutes; i++) {
        const dn_api_route *rt = &api->routes[i];
        if (rt->prefix != best->prefix || rt->path_len != best->path_len ||
            memcmp(rt->path, best->path, best->path_len))
            continue;
        if (!strcmp(rt->method, method))
            hit = rt;
        size_t al = strlen(allow);
        snprintf(allow + al, allowlen - al, "%s%s", al ? ", " : "", rt->method);
    }
    return hit;
}

int dn__api_route_set_max_body(dn_api *api, const char *method, const char *path,
                               size_t max_body)
{
    for (size_t i = 0; api && i < api->nroutes; i++) {
        dn_api_route *rt = &api->routes[i];
        if (!strcmp(rt->path, path) && !strcmp(rt->method, method)) {
            rt->max_body = max_body;
            return 0;
        }
    }
    return DN_ENOTFOUND;
}

int dn__api_route(dn_api *api, const char *method, const char *path, bool prefix, dn_api_handler h,
                  void *ud)
{
    if (!api || !method || !path || path[0] != '/' || !h || strlen(method) >= 16)
        return DN_EINVAL;
    if (api->nroutes == DN_API_MAX_ROUTES)
        return DN_ELIMIT;
    for (size_t i = 0; i < api->nroutes; i++) {
        dn_api_route *rt = &api->routes[i];
        if (rt->prefix == prefix && !strcmp(rt->path, path) && !strcmp(rt->method, method))
            return DN_EEXIST;
    }
    dn_api_route *rt = &api->routes[api->nroutes];
    rt->path = strdup(path);
    if (!rt->path)
        return DN_ENOMEM;
    snprintf(rt->method, sizeof rt->method, "%s", method);
    rt->path_len = strlen(path);
    rt->prefix = prefix;
    rt->h = h;
    rt->ud = ud;
    rt->max_body = 0;
    api->nroutes++;
    return 0;
}

/* ---- auth ---- */

static bool auth_ok(const dn_api *api, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    /* The length is public (always 64); the bytes are compared in constant
     * time so response timing says nothing about a guessed prefix. */
    if (n != DN_API_TOKEN_HEX_LEN)
        return false;
    return sodium_memcmp(h, api->token, DN_API_TOKEN_HEX_LEN) == 0;
}

/* ---- the access handler ---- */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    dn_api_listener *l = cls;
    dn_api *api = l->api;
    dn_api_req *r = *con_cls;

    if (!r) { /* headers are in */
        r = req_new(l, conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        /* Errors known from the headers are answered once the request is
         * complete: a response queued before that makes MHD close the
         * connection, and a client would lose its keep-alive to a 404. */
        if (api->closing)
            return defer_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the daemon is stopping", NULL);
        if (l->tcp && !auth_ok(api, conn))
            return defer_fail(r, MHD_HTTP_UNAUTHORIZED,
                              "missing or wrong bearer token (see <data-dir>/api.token)", NULL);
        bool known;
        char allow[128];
        r->route = route_find(api, r->path, r->method, &known, allow, sizeof allow);
        if (!r->route) {
            if (!known)
                return defer_fail(r, MHD_HTTP_NOT_FOUND, "no such endpoint", NULL);
            char msg[192];
            snprintf(msg, sizeof msg, "method %s not allowed here (allowed: %s)", r->method, allow);
            return defer_fail(r, MHD_HTTP_METHOD_NOT_ALLOWED, msg, allow);
        }
        if (r->route->prefix)
            r->rest = r->path + r->route->path_len;
        r->max_body = r->route->max_body ? r->route->max_body : api->max_body;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > r->max_body) {
                /* Not too much over: read and discard it, then answer, so
                 * that a client still sending does not get a reset instead
                 * of the answer. Far over: answer now, and close. */
                if (!errno && end != cl && n <= (unsigned long long)r->max_body * 16) {
                    r->too_big = true;
                    return MHD_YES;
                }
                char msg[96];
                snprintf(msg, sizeof msg, "request body larger than %zu bytes", r->max_body);
                return req_fail_now(r, MHD_HTTP_CONTENT_TOO_LARGE, msg);
            }
        }
        return MHD_YES;
    }

    if (r->state == RS_QUEUED) { /* answered early; MHD discards the rest */
        *upload_size = 0;
        return MHD_YES;
    }

    if (r->state == RS_BODY) {
        if (*upload_size) {
            size_t n = *upload_size;
            *upload_size = 0;
            if (r->too_big || r->deferred_status)
                return MHD_YES; /* read and dropped: the answer is known */
            if (r->len + n > r->max_body) {
                /* A chunked body without Content-Length: stop keeping
                 * bytes, answer 413 once the request is complete. */
                r->too_big = true;
                free(r->buf);
                r->buf = NULL;
                r->len = r->cap = 0;
                return MHD_YES;
            }
            if (r->len + n > r->cap) {
                /* Doubling (within the route's limit): a large body arrives
                 * in many small pieces. */
                size_t cap = r->cap ? r->cap : 4096;
                while (cap < r->len + n)
                    cap *= 2;
                if (cap > r->max_body)
                    cap = r->max_body;
                char *nb = realloc(r->buf, cap);
                if (!nb)
                    return MHD_NO;
                r->buf = nb;
                r->cap = cap;
            }
            memcpy(r->buf + r->len, upload_data, n);
            r->len += n;
            return MHD_YES;
        }
        if (r->deferred_status) {
            r->replied = true;
            r->status = r->deferred_status;
            r->resp = error_response(r->deferred_msg);
            if (r->resp && r->deferred_status == MHD_HTTP_UNAUTHORIZED)
                MHD_add_response_header(r->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
            if (r->resp && r->deferred_allow[0])
                MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ALLOW, r->deferred_allow);
            return req_queue(r);
        }
        if (r->too_big) {
            char msg[96];
            snprintf(msg, sizeof msg, "request body larger than %zu bytes", r->max_body);
            return req_fail_now(r, MHD_HTTP_CONTENT_TOO_LARGE, msg);
        }
        if (r->len) {
            json_error_t jerr;
            r->body = json_loadb(r->buf, r->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
            free(r->buf);
            r->buf = NULL;
            if (!r->body) {
                char msg[256];
                snprintf(msg, sizeof msg, "malformed JSON body: %s (line %d, column %d)", jerr.text,
                         jerr.line, jerr.column);
                return req_fail_now(r, MHD_HTTP_BAD_REQUEST, msg);
            }
        }
        r->state = RS_HANDLER;
        r->route->h(r, r->route->ud);
        /* r is still ours: MHD has not completed it, so no reply freed it. */
    }

    if (r->state == RS_REPLIED)
        return req_queue(r);
    /* No reply yet: park the connection until dn__api_reply resumes it. */
    r->suspended = true;
    MHD_suspend_connection(conn);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    dn_api_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    r->conn = NULL;
    if (r->c) {
        r->c->req = NULL;
        r->c->since_ms = uv_now(r->api->loop); /* idle now: MHD's timeout */
        r->c = NULL;
    }
    if (r->stream) {
        r->stream->conn = NULL;
        r->stream->req = NULL;
        r->stream = NULL;
    }
    req_unlink(r);
    /* A handler still working on it owns it until its reply. */
    if (r->state != RS_HANDLER)
        req_free(r);
}

/* ---- streams ---- */

static void stream_unlink(dn_api_stream *s)
{
    dn_api *api = s->api;
    if (!s->accepting)
        return;
    s->accepting = false;
    if (s->prev)
        s->prev->next = s->next;
    else if (api->streams == s)
        api->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    api->st.streams--;
}

static void stream_poll_stop(dn_api_stream *s)
{
    if (s->poll_active) {
        uv_poll_stop(&s->poll);
        s->poll_active = false;
    }
}

static void stream_wake(dn_api_stream *s)
{
    if (!s->suspended || !s->conn)
        return;
    stream_poll_stop(s);
    s->suspended = false;
    MHD_resume_connection(s->conn);
    kick(s->lis);
}

static void on_client_hup(uv_poll_t *p, int status, int events)
{
    dn_api_stream *s = p->data;
    s->gone = true;
    stream_wake(s);
}

static void stream_fire_close(dn_api_stream *s, dn_api_stream_end why)
{
    stream_unlink(s);
    dn_api_stream_close_cb cb = s->cb;
    s->cb = NULL;
    if (cb)
        cb(s, why, s->ud);
}

static void stream_account(dn_api_stream *s, ptrdiff_t delta)
{
    dn_api *api = s->api;
    api->st.stream_queued += delta;
    size_t q = s->len - s->off;
    if (q > api->st.stream_queue_peak)
        api->st.stream_queue_peak = q;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    dn_api_stream *s = cls;
    if (s->gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t have = s->len - s->off;
    if (have) {
        size_t n = have < max ? have : max;
        memcpy(buf, s->q + s->off, n);
        s->off += n;
        if (s->off == s->len)
            s->off = s->len = 0;
        stream_account(s, -(ptrdiff_t)n);
        return (ssize_t)n;
    }
    if (s->ended || !s->conn)
        return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing to send: suspend (an idle stream neither spins nor times
     * out) and watch the socket for the client hanging up, which MHD does
     * not notice on a suspended connection. */
    s->suspended = true;
    MHD_suspend_connection(s->conn);
    if (!s->poll_inited) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && uv_poll_init(s->api->loop, &s->poll, ci->connect_fd) == 0) {
            s->poll_inited = true;
            s->poll.data = s;
        }
    }
    if (s->poll_inited && !s->poll_active &&
        uv_poll_start(&s->poll, UV_DISCONNECT, on_client_hup) == 0)
        s->poll_active = true;
    return 0;
}

static void stream_free_mem(uv_handle_t *h)
{
    free(h->data);
}

static void stream_free(void *cls)
{
    dn_api_stream *s = cls;
    /* MHD is done with the response (sent, failed, or shut down). */
    s->conn = NULL;
    if (s->req) {
        s->req->stream = NULL;
        s->req = NULL;
    }
    stream_fire_close(s, s->api->closing ? DN_API_STREAM_SHUTDOWN : DN_API_STREAM_DISCONNECTED);
    stream_account(s, -(ptrdiff_t)(s->len - s->off));
    free(s->q);
    s->q = NULL;
    stream_poll_stop(s);
    if (s->poll_inited) {
        uv_close((uv_handle_t *)&s->poll, stream_free_mem);
    } else {
        free(s);
    }
}

dn_api_stream *dn__api_reply_stream(dn_api_req *r, dn_api_stream_close_cb cb, void *ud)
{
    if (r->replied || !r->conn || r->state != RS_HANDLER)
        return NULL;
    dn_api *api = r->api;
    dn_api_stream *s = calloc(1, sizeof *s);
    if (!s) {
        dn__api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return NULL;
    }
    s->api = api;
    s->lis = r->lis;
    s->conn = r->conn;
    s->max = api->stream_queue_max;
    s->cb = cb;
    s->ud = ud;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!resp) {
        free(s);
        dn__api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    s->accepting = true;
    s->next = api->streams;
    if (s->next)
        s->next->prev = s;
    api->streams = s;
    api->st.streams++;
    r->stream = s;
    s->req = r;
    req_set_reply(r, MHD_HTTP_OK, resp);
    return s;
}

static int stream_append(dn_api_stream *s, const char *line, size_t n)
{
    if (s->len + n > s->cap) {
        if (s->off) { /* reuse the space already sent */
            memmove(s->q, s->q + s->off, s->len - s->off);
            s->len -= s->off;
            s->off = 0;
        }
        if (s->len + n > s->cap) {
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + n)
                cap *= 2;
            char *nq = realloc(s->q, cap);
            if (!nq)
                return DN_ENOMEM;
            s->q = nq;
            s->cap = cap;
        }
    }
    memcpy(s->q + s->len, line, n);
    s->len += n;
    stream_account(s, (ptrdiff_t)n);
    return 0;
}

static const char dropped_line[] =
    "{\"type\":\"dropped\",\"error\":\"events dropped: the client did not keep up; "
    "reconnect to follow again\"}\n";

int dn__api_stream_push(dn_api_stream *s, const json_t *value)
{
    if (!s || !s->accepting)
        return DN_ECLOSED;
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
    if (!text)
        return DN_ENOMEM;
    size_t n = strlen(text);
    text[n] = '\n'; /* json_dumps' NUL becomes the line end */
    int rc;
    if (s->len - s->off + n + 1 > s->max) {
        /* The bound is what keeps a client that never reads from costing
         * memory: stop here, send what is queued and a last line. */
        s->api->st.streams_dropped++;
        s->ended = true;
        rc = stream_append(s, dropped_line, sizeof dropped_line - 1);
        stream_fire_close(s, DN_API_STREAM_DROPPED);
        rc = DN_ELIMIT;
    } else {
        rc = stream_append(s, text, n + 1);
    }
    free(text);
    stream_wake(s);
    return rc;
}

void dn__api_stream_end(dn_api_stream *s)
{
    if (!s)
        return;
    s->cb = NULL;
    stream_unlink(s);
    s->ended = true;
    stream_wake(s);
}

void dn__api_stream_set_queue_max(dn_api_stream *s, size_t max)
{
    s->max = max;
}

size_t dn__api_stream_queued(const dn_api_stream *s)
{
    return s->len - s->off;
}

/* ---- per-request deadline ---- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    dn_api_listener *l = cls;
    dn_api *api = l->api;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        dn_api_conn *c = calloc(1, sizeof *c);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!c || !ci) {
            free(c);
            return; /* untracked: still bounded by MHD's inactivity timeout */
        }
        c->conn = conn;
        c->lis = l;
        c->fd = ci->connect_fd;
        c->since_ms = uv_now(api->loop);
        c->next = api->conns;
        if (c->next)
            c->next->prev = c;
        api->conns = c;
        *socket_context = c;
        return;
    }
    dn_api_conn *c = *socket_context;
    if (!c)
        return;
    *socket_context = NULL;
    if (c->req)
        c->req->c = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else if (api->conns == c)
        api->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_sweep(uv_timer_t *t)
{
    dn_api *api = t->data;
    uint64_t now = uv_now(api->loop);
    for (dn_api_conn *c = api->conns; c; c = c->next) {
        dn_api_req *r = c->req;
        /* Not cut: event streams, and requests a handler is still working
         * on (the handler owns that deadline). A socket without a request is
         * either receiving headers or idle between requests; an idle one is
         * closed by MHD's inactivity timeout before the deadline anyway. */
        if (c->cut || (r && (r->stream || r->state == RS_HANDLER)))
            continue;
        if (now - c->since_ms < api->deadline_ms)
            continue;
        DN_LOG_LIMITED(DN_LOG_DEBUG, M, "cutting an API request older than %u ms",
                       api->deadline_ms);
        /* MHD owns the fd: shut it down (not close), MHD then sees the end
         * of the socket and closes it itself. */
        c->cut = true;
        shutdown(c->fd, SHUT_RDWR);
        kick(c->lis);
    }
}

/* ---- listen sockets ---- */

/* Whether something accepts connections on the unix socket at path. */
static bool unix_socket_live(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return true; /* cannot tell: do not remove it */
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(fd);
    /* EAGAIN: a listener with a full backlog is still a listener. */
    return rc == 0 || e == EAGAIN || e == EINPROGRESS;
}

static int open_unix(dn_api *api, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        dn__set_err(err, errlen, "API socket path %s is longer than %zu bytes", path,
                sizeof sa.sun_path - 1);
        return DN_ETOOBIG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            dn__set_err(err, errlen, "%s exists and is not a socket; not removing it", path);
            return DN_EEXIST;
        }
        if (unix_socket_live(&sa)) {
            dn__set_err(err, errlen, "another daemon is already serving the API at %s", path);
            return DN_EEXIST;
        }
        /* A socket file nobody listens on: left by a daemon that died. */
        if (unlink(path) != 0 && errno != ENOENT) {
            int e = errno;
            dn__set_err(err, errlen, "cannot remove the stale socket %s: %s", path, strerror(e));
            return -e;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        dn__set_err(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    /* bind creates the file with mode 0777 & ~umask: no window in which the
     * socket is reachable by others. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    umask(old);
    if (rc != 0) {
        close(fd);
        dn__set_err(err, errlen, "cannot bind the API socket %s: %s", path, strerror(e));
        return -e;
    }
    if (chmod(path, 0600) != 0 || lstat(path, &st) != 0 || listen(fd, 64) != 0) {
        e = errno;
        close(fd);
        unlink(path);
        dn__set_err(err, errlen, "cannot listen on the API socket %s: %s", path, strerror(e));
        return -e;
    }
    api->sock_dev = st.st_dev;
    api->sock_ino = st.st_ino;
    return fd;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
}

static int open_tcp(dn_api *api, const dn_api_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->tcp_host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(cfg->tcp_port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, cfg->tcp_host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(cfg->tcp_port);
        sl = sizeof *a6;
    } else {
        dn__set_err(err, errlen, "API listen address %s is not an IPv4 or IPv6 address", cfg->tcp_host);
        return DN_EINVAL;
    }
    if (!is_loopback(&ss) && !cfg->allow_remote) {
        dn__set_err(err, errlen,
                "API listen address %s is not a loopback address; "
                "refusing without --api-allow-remote",
                cfg->tcp_host);
        return DN_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        dn__set_err(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        dn__set_err(err, errlen, "cannot listen for the API on %s port %u: %s", cfg->tcp_host,
                cfg->tcp_port, strerror(e));
        return -e;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
        api->tcp_port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                       : ((struct sockaddr_in6 *)&got)->sin6_port);
    return fd;
}

static void on_handle_closed(uv_handle_t *h)
{
    dn_api *api = h->type == UV_TIMER && ((uv_timer_t *)h)->timer_cb == on_sweep
                      ? h->data
                      : ((dn_api_listener *)h->data)->api;
    if (--api->open_handles == 0)
        free(api);
}

static int listener_start(dn_api *api, dn_api_listener *l, int fd, bool tcp, char *err,
                          size_t errlen)
{
    l->api = api;
    l->listen_fd = fd;
    l->tcp = tcp;
    l->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_access, l,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_TIMEOUT, api->conn_timeout, MHD_OPTION_CONNECTION_LIMIT,
        api->max_conns, MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, l, MHD_OPTION_END);
    if (!l->mhd) {
        dn__set_err(err, errlen, "libmicrohttpd would not start on the API %s socket",
                tcp ? "TCP" : "unix");
        return DN_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di || uv_poll_init(api->loop, &l->poll, di->epoll_fd) != 0 ||
        uv_timer_init(api->loop, &l->timer) != 0) {
        MHD_stop_daemon(l->mhd);
        l->mhd = NULL;
        dn__set_err(err, errlen, "cannot watch libmicrohttpd's epoll fd");
        return DN_EIO;
    }
    l->handles = true;
    api->open_handles += 2;
    l->poll.data = l;
    l->timer.data = l;
    uv_poll_start(&l->poll, UV_READABLE, on_epoll);
    run_mhd(l);
    return 0;
}

static void api_stop(dn_api *api);

int dn__api_new(uv_loop_t *loop, const dn_api_config *cfg, dn_api **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!loop || !cfg || !cfg->unix_path || !cfg->unix_path[0]) {
        dn__set_err(err, errlen, "the API needs a unix socket path");
        return DN_EINVAL;
    }
    if (cfg->tcp_host && !cfg->token_path) {
        dn__set_err(err, errlen, "a TCP API listener needs a token file");
        return DN_EINVAL;
    }
    dn_api *api = calloc(1, sizeof *api);
    if (!api)
        return DN_ENOMEM;
    api->loop = loop;
    api->max_body = cfg->max_body ? cfg->max_body : DN_API_MAX_BODY_DEFAULT;
    api->conn_timeout = cfg->conn_timeout_s ? cfg->conn_timeout_s : DN_API_CONN_TIMEOUT_DEFAULT;
    api->max_conns = cfg->max_conns ? cfg->max_conns : DN_API_MAX_CONNS_DEFAULT;
    api->stream_queue_max =
        cfg->stream_queue_max ? cfg->stream_queue_max : DN_API_STREAM_QUEUE_DEFAULT;
    api->deadline_ms =
        1000u * (cfg->request_deadline_s ? cfg->request_deadline_s : DN_API_DEADLINE_DEFAULT);
    int rc = 0, tcp_fd = -1;
    if (cfg->tcp_host) {
        /* Refuse a bad TCP address before touching any file. */
        rc = tcp_fd = open_tcp(api, cfg, err, errlen);
        if (rc >= 0)
            rc = dn__api_token_load(cfg->token_path, true, api->token, err, errlen);
        if (rc < 0) {
            if (tcp_fd >= 0)
                close(tcp_fd);
            free(api);
            return rc;
        }
    }
    int ufd = open_unix(api, cfg->unix_path, err, errlen);
    if (ufd < 0) {
        if (tcp_fd >= 0)
            close(tcp_fd);
        free(api);
        return ufd;
    }
    api->unix_path = strdup(cfg->unix_path);
    if (!api->unix_path) {
        close(ufd);
        if (tcp_fd >= 0)
            close(tcp_fd);
        unlink(cfg->unix_path);
        free(api);
        return DN_ENOMEM;
    }
    rc = listener_start(api, &api->lis[0], ufd, false, err, errlen);
    if (rc == 0)
        api->nlis = 1;
    else
        close(ufd);
    if (rc == 0 && tcp_fd >= 0) {
        rc = listener_start(api, &api->lis[1], tcp_fd, true, err, errlen);
        if (rc == 0)
            api->nlis = 2;
        else
            close(tcp_fd);
    } else if (tcp_fd >= 0 && rc != 0) {
        close(tcp_fd);
    }
    if (rc == 0 && uv_timer_init(loop, &api->sweep) == 0) {
        api->sweep_inited = true;
        api->open_handles++;
        api->sweep.data = api;
        unsigned every = api->deadline_ms / 4 ? api->deadline_ms / 4 : 1;
        uv_timer_start(&api->sweep, on_sweep, every, every);
    }
    if (rc != 0) {
        api_stop(api);
        return rc;
    }
    *out = api;
    return 0;
}

uint16_t dn__api_tcp_port(const dn_api *api)
{
    return api ? api->tcp_port : 0;
}

void dn__api_stats(const dn_api *api, dn_api_stats *st)
{
    *st = api->st;
}

/* Stops every daemon and closes the handles; api is freed when the last
 * handle has closed (at once if none was opened). */
static void api_stop(dn_api *api)
{
    api->closing = true;
    /* Streams: tell their owners, then end them. */
    while (api->streams) {
        dn_api_stream *s = api->streams;
        stream_fire_close(s, DN_API_STREAM_SHUTDOWN);
        s->ended = true;
    }
    /* MHD must not be stopped with suspended connections (microhttpd.h,
     * MHD_suspend_connection): resume every one first. */
    for (dn_api_req *r = api->reqs; r; r = r->next) {
        if (r->suspended) {
            r->suspended = false;
            MHD_resume_connection(r->conn);
        }
        if (r->stream && r->stream->suspended) {
            stream_poll_stop(r->stream);
            r->stream->suspended = false;
            MHD_resume_connection(r->conn);
        }
    }
    for (int i = 0; i < api->nlis; i++) {
        dn_api_listener *l = &api->lis[i];
        if (!l->mhd)
            continue;
        if (l->handles) /* before MHD closes the epoll fd it watches */
            uv_poll_stop(&l->poll);
        /* Take the listen socket back so that we, who made it, close it. */
        MHD_socket fd = MHD_quiesce_daemon(l->mhd);
        MHD_stop_daemon(l->mhd);
        l->mhd = NULL;
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
    if (api->unix_path) {
        struct stat st;
        /* Remove the socket file only if it is still the one we made. */
        if (lstat(api->unix_path, &st) == 0 && st.st_dev == api->sock_dev &&
            st.st_ino == api->sock_ino)
            unlink(api->unix_path);
        free(api->unix_path);
        api->unix_path = NULL;
    }
    for (size_t i = 0; i < api->nroutes; i++)
        free(api->routes[i].path);
    api->nroutes = 0;
    sodium_memzero(api->token, sizeof api->token);
    int handles = 0;
    if (api->sweep_inited) {
        api->sweep_inited = false;
        handles++;
        uv_close((uv_handle_t *)&api->sweep, on_handle_closed);
    }
    for (int i = 0; i < 2; i++) {
        dn_api_listener *l = &api->lis[i];
        if (!l->handles)
            continue;
        l->handles = false;
        handles++;
        uv_close((uv_handle_t *)&l->poll, on_handle_closed);
        uv_close((uv_handle_t *)&l->timer, on_handle_closed);
    }
    if (!handles)
        free(api);
}

void dn__api_close(dn_api *api)
{
    if (api && !api->closing)
        api_stop(api);
}
