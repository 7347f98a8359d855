/* api — the daemon's local HTTP/1.1 + JSON API (server and client).
 *
 * Server: libmicrohttpd in "external polling" mode on the caller's libuv loop.
 * Each listen socket (a unix socket, optionally TCP on loopback) gets its own
 * MHD daemon started with MHD_USE_EPOLL: MHD's epoll fd is watched with a
 * uv_poll, MHD_run runs when it is readable, and a uv_timer follows
 * MHD_get_timeout. MHD starts no thread; every callback below runs on the
 * loop thread.
 *
 * Bodies are JSON (jansson). Every error the server produces itself is JSON
 * {"error": "..."} with a fitting status (400 malformed JSON, 401 missing or
 * wrong token on TCP, 404 unknown path, 405 wrong method, 413 body too big).
 * Handlers may reply at once or later from the loop (the connection is then
 * suspended until the reply). A handler may instead turn its request into a
 * stream: a chunked application/x-ndjson response fed with
 * dn__api_stream_push, one JSON object per line, with a bounded queue.
 *
 * Client: libcurl, blocking, for the CLI (dn__api_call, dn__api_stream_call).
 * See docs/api.md for the conventions a user sees. */
#ifndef DN_API_H
#define DN_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- server ---- */

#define DN_API_MAX_BODY_DEFAULT (64u * 1024)
#define DN_API_CONN_TIMEOUT_DEFAULT 30 /* seconds of inactivity */
#define DN_API_MAX_CONNS_DEFAULT 64    /* per listen socket */
#define DN_API_DEADLINE_DEFAULT 60     /* seconds for one whole request */
#define DN_API_STREAM_QUEUE_DEFAULT (256u * 1024)
#define DN_API_TOKEN_HEX_LEN 64 /* 32 random bytes, hex */

typedef struct dn_api dn_api;
typedef struct dn_api_req dn_api_req;
typedef struct dn_api_stream dn_api_stream;

typedef struct dn_api_config {
    /* The unix socket (mode 0600). Required: it is the CLI's way in. */
    const char *unix_path;
    /* Optional TCP listener: an IPv4 or IPv6 literal and a port (0 picks
     * one; see dn__api_tcp_port). A non-loopback address is refused unless
     * allow_remote is set. TCP requests need "Authorization: Bearer <token>",
     * the token read from token_path (created 0600 if absent). */
    const char *tcp_host;
    uint16_t tcp_port;
    bool allow_remote;
    const char *token_path;
    /* Limits; 0 picks the default above. */
    size_t max_body;
    unsigned conn_timeout_s;
    unsigned max_conns;
    size_t stream_queue_max; /* bytes queued per stream before it is dropped */
    /* A request still arriving or being answered after this long is cut
     * (a client trickling bytes evades the inactivity timeout). Streams and
     * requests waiting on their handler are exempt. Keep it above
     * conn_timeout_s (idle keep-alive sockets are left to that). */
    unsigned request_deadline_s;
} dn_api_config;

/* A handler answers with dn__api_reply / dn__api_reply_error (now or later,
 * exactly once) or dn__api_reply_stream. One that answers later owns the
 * deadline: the server neither cuts a request waiting on its handler nor
 * notices the client leaving meanwhile (MHD does not watch a suspended
 * connection); the late reply then just frees the request. */
typedef void (*dn_api_handler)(dn_api_req *req, void *ud);

/* Create the listeners and start serving on loop. On failure returns a
 * negative code and writes one line saying why into err (if non-NULL). */
int dn__api_new(uv_loop_t *loop, const dn_api_config *cfg, dn_api **out, char *err, size_t errlen);
/* Register a route. With prefix set, path matches every path that starts with
 * it (e.g. "/v0/peers/" for /v0/peers/<id>); exact routes win over prefixes,
 * longer prefixes over shorter. method is "GET", "POST", ... */
int dn__api_route(dn_api *api, const char *method, const char *path, bool prefix, dn_api_handler h,
                  void *ud);
/* A larger (or smaller) request body limit for one route than the server's
 * max_body (e.g. messages of up to 1 MiB, base64 in JSON). DN_ENOTFOUND
 * when the route is not registered. */
int dn__api_route_set_max_body(dn_api *api, const char *method, const char *path,
                               size_t max_body);
/* The TCP port actually bound (0 when there is no TCP listener). */
uint16_t dn__api_tcp_port(const dn_api *api);
/* Stop serving: pending async requests are cut off (their later replies are
 * dropped), streams get their on_close (DN_API_STREAM_SHUTDOWN), the socket
 * file is removed. The memory is freed once the loop has closed the handles
 * (run the loop after this). */
void dn__api_close(dn_api *api);

typedef struct dn_api_stats {
    size_t connections;       /* requests in progress, streams included */
    size_t streams;           /* open event streams */
    size_t stream_queued;     /* bytes queued over all streams */
    size_t stream_queue_peak; /* the largest one stream's queue has been */
    uint64_t streams_dropped; /* streams closed because the client lagged */
} dn_api_stats;
void dn__api_stats(const dn_api *api, dn_api_stats *st);

/* ---- requests ---- */

const char *dn__api_req_method(const dn_api_req *req);
const char *dn__api_req_path(const dn_api_req *req);
/* For a prefix route: the part of the path after the prefix. */
const char *dn__api_req_rest(const dn_api_req *req);
/* A query argument (?key=value, decoded), or NULL. */
const char *dn__api_req_query(const dn_api_req *req, const char *key);
/* The request body parsed as JSON (borrowed), or NULL when it had none. */
json_t *dn__api_req_body(const dn_api_req *req);
/* Whether the request came over TCP (authenticated by token) or the unix
 * socket. */
bool dn__api_req_is_tcp(const dn_api_req *req);

/* Answer with value (reference stolen; NULL sends "{}"). After this call req
 * is gone. Valid from the handler or later from the loop thread. */
int dn__api_reply(dn_api_req *req, unsigned status, json_t *value);
/* Answer {"error": "<formatted>"} with status. */
int dn__api_reply_error(dn_api_req *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- streams (NDJSON) ---- */

typedef enum dn_api_stream_end {
    DN_API_STREAM_DROPPED = 1,  /* the client did not keep up: queue full */
    DN_API_STREAM_DISCONNECTED, /* the client went away */
    DN_API_STREAM_SHUTDOWN,     /* dn__api_close */
} dn_api_stream_end;
/* Called once when the stream stops taking events; the caller must not use
 * the stream afterwards. May run from inside dn__api_stream_push. */
typedef void (*dn_api_stream_close_cb)(dn_api_stream *s, dn_api_stream_end why, void *ud);

/* Answer req with a long-lived 200 application/x-ndjson response (chunked).
 * Only from the handler itself (synchronously). Returns NULL on allocation
 * failure (req is then answered with 500). */
dn_api_stream *dn__api_reply_stream(dn_api_req *req, dn_api_stream_close_cb cb, void *ud);
/* Queue one JSON value (borrowed) as one line. When the queue would exceed
 * the stream's bound, the stream is dropped instead: queued lines are still
 * sent, then a last line {"type":"dropped","error":...}, then the response
 * ends; on_close runs with DN_API_STREAM_DROPPED and DN_ELIMIT is returned. */
int dn__api_stream_push(dn_api_stream *s, const json_t *value);
/* End the stream from the server side: queued lines are sent, then the
 * response ends. on_close is not called; do not use s afterwards. */
void dn__api_stream_end(dn_api_stream *s);
/* This stream's queue bound instead of the server's stream_queue_max (a
 * stream of messages up to 1 MiB needs more than one of events). */
void dn__api_stream_set_queue_max(dn_api_stream *s, size_t max);
/* Bytes waiting in this stream's queue. */
size_t dn__api_stream_queued(const dn_api_stream *s);

/* ---- token ---- */

/* Read the hex token from path, or create the file (0600, 32 random bytes as
 * hex) when absent. out gets DN_API_TOKEN_HEX_LEN chars + NUL. A token file
 * readable by group or others, or not 64 hex digits, is refused. */
int dn__api_token_load(const char *path, bool create, char out[DN_API_TOKEN_HEX_LEN + 1], char *err,
                       size_t errlen);

/* ---- client (blocking, libcurl) ---- */

typedef struct dn_api_client {
    const char *unix_path; /* the daemon's socket; or NULL and base_url */
    const char *base_url;  /* e.g. "http://127.0.0.1:5001" */
    const char *token;     /* sent as a bearer token when non-NULL */
    long timeout_ms;       /* whole request (not streams); 0 = 30 s */
} dn_api_client;

/* Whether a client call's error means nobody serves at the address (the
 * socket file is missing: -ENOENT; nothing listens: -ECONNREFUSED). The CLI
 * prints "no daemon running at <path>" for these. */
bool dn__api_no_daemon(int rc);

/* One request. body (borrowed) may be NULL. On success (any HTTP status)
 * returns 0 with *status and *reply (parsed JSON, or NULL for an empty body;
 * the caller json_decref's it). A reply that is not JSON is DN_EMALFORMED. */
int dn__api_call_ex(const dn_api_client *c, const char *method, const char *path,
                    const json_t *body, long *status, json_t **reply);
int dn__api_call(const char *unix_path, const char *method, const char *path, const json_t *body,
                 long *status, json_t **reply);

/* Follow an NDJSON stream (GET path): on a 200 answer, line_cb gets each
 * line's JSON value (borrowed) until the server ends the response or line_cb
 * returns non-zero. On another status, *status and *reply are set as in
 * dn__api_call and line_cb is not called. */
typedef int (*dn_api_line_cb)(json_t *value, void *ud);
int dn__api_stream_call(const dn_api_client *c, const char *path, dn_api_line_cb line_cb, void *ud,
                        long *status, json_t **reply);
/* The same for a stream that answers another method with a body (e.g.
 * POST /v0/job/publish, whose answer streams the bids). */
int dn__api_stream_call_ex(const dn_api_client *c, const char *method, const char *path,
                           const json_t *body, dn_api_line_cb line_cb, void *ud, long *status,
                           json_t **reply);

#endif
