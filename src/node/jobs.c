/* node — publishJob (issue 10; seed: "publishJob: publish a job's request
 * for bids to the network"). Layouts and bounds: docs/jobs.md.
 *
 * Requester: dn_network_publish_job publishes a JobRequest on the jobs
 * topic and keeps the request open until its deadline; bids arrive as
 * Messenger requests of type DN_JOB_BID_TYPE and are answered with a
 * BidReply (accepted, or why not). Bidder: every node subscribes to the
 * jobs topic, keeps the requests it received (bounded) for the API and
 * answers them with dn_network_job_bid (or jobs.auto_bid's file).
 *
 *   POST /v0/job/publish {"job": base64, "wait_s"}
 *        NDJSON: {"request", "from", "bid", "time"} per bid,
 *        then {"done": true, "request", "bids"}
 *   GET  /v0/job/requests
 *        NDJSON: {"id", "from", "job", "deadline", "time"} per request
 *   POST /v0/job/bid {"request", "bid": base64}
 *        -> {"accepted": true, "request", "requester"} */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/io.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/jobs.h"
#include "dmsnet/log.h"
#include "dmsnet/messenger.h"
#include "dmsnet/pubsub.h"
#include "node/jobs_wire.h"
#include "node/network_int.h"

/* Requests received from others, kept for the API and bids: at most this
 * many, this many job bytes in all (the oldest go first), each until its
 * deadline plus KEEP_MS (a late bid still reaches the requester, which
 * says why it is refused). */
#define INREQ_MAX 64
#define INREQ_BYTES (16u << 20)
#define KEEP_MS 60000
/* A request whose deadline passed longer ago than this (clock skew
 * between nodes allowed for), or lies further ahead than the longest
 * wait, is ignored: a replayed or bogus one costs nothing. */
#define SKEW_MS 30000
/* Ids of our closed requests remembered, to tell a late bidder "closed"
 * rather than "unknown". */
#define CLOSED_MAX 64
#define BID_TIMEOUT_MS 10000
#define JOB_BODY_MAX (1500u * 1024)
#define LISTENERS_MAX 16
#define LISTENER_QUEUE (3u << 20)
/* A publish stream's queue: bids for a client that does not read. */
#define PUBLISH_QUEUE (8u << 20)

typedef struct open_req {
    uint8_t id[DN_JOB_ID_LEN];
    uint64_t deadline_loop; /* uv_now */
    dn_job_bid_cb cb;
    void *arg;
    dn_peerid *bidders; /* one bid per bidder */
    size_t nbids, cap;
    struct open_req *next;
} open_req;

typedef struct in_req {
    uint8_t id[DN_JOB_ID_LEN];
    dn_peerid from;
    uint64_t deadline_ms, time_ms; /* unix */
    char bid_type[256];
    uint8_t *job;
    size_t len;
    struct in_req *next; /* newest first */
} in_req;

typedef struct req_listener {
    struct dn__node_jobs *j;
    dn_api_stream *s;
    struct req_listener *next;
} req_listener;

struct dn__node_jobs {
    dn_network *n;
    dn_pubsub *ps;
    dn_messenger *m;
    char *topic;
    dn_pubsub_sub *sub;
    bool stopped;
    /* requester */
    open_req *open;
    size_t nopen;
    uint8_t closed[CLOSED_MAX][DN_JOB_ID_LEN];
    size_t nclosed, closed_next;
    uv_timer_t timer; /* the earliest deadline; data is the network */
    bool timer_init;
    /* bidder */
    in_req *in;
    size_t nin, in_bytes;
    req_listener *listeners;
    size_t nlisteners;
    uint8_t *auto_bid;
    size_t auto_bid_len;
    bool has_auto_bid;
};

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void hex_id(const uint8_t id[DN_JOB_ID_LEN], char out[2 * DN_JOB_ID_LEN + 1])
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < DN_JOB_ID_LEN; i++) {
        out[2 * i] = h[id[i] >> 4];
        out[2 * i + 1] = h[id[i] & 15];
    }
    out[2 * DN_JOB_ID_LEN] = 0;
}

static int parse_id(const char *s, uint8_t id[DN_JOB_ID_LEN])
{
    if (!s || strlen(s) != 2 * DN_JOB_ID_LEN)
        return DN_EINVAL;
    for (size_t i = 0; i < 2 * DN_JOB_ID_LEN; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return DN_EINVAL;
        if (i % 2)
            id[i / 2] |= (uint8_t)v;
        else
            id[i / 2] = (uint8_t)(v << 4);
    }
    return 0;
}

/* ---- requester: open requests and their bids ---- */

static void arm_timer(dn__node_jobs *j);

static void remember_closed(dn__node_jobs *j, const uint8_t *id)
{
    memcpy(j->closed[j->closed_next], id, DN_JOB_ID_LEN);
    j->closed_next = (j->closed_next + 1) % CLOSED_MAX;
    if (j->nclosed < CLOSED_MAX)
        j->nclosed++;
}

static bool was_closed(const dn__node_jobs *j, const uint8_t *id)
{
    for (size_t i = 0; i < j->nclosed; i++)
        if (!memcmp(j->closed[i], id, DN_JOB_ID_LEN))
            return true;
    return false;
}

/* Take r off the list and give its owner the last call. */
static void close_open(dn__node_jobs *j, open_req *r, int status)
{
    for (open_req **pp = &j->open; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    j->nopen--;
    remember_closed(j, r->id);
    dn_job_event ev = {
        .request = r->id, .done = true, .status = status, .nbids = r->nbids, .time_ms = unix_ms()};
    r->cb(r->arg, &ev);
    free(r->bidders);
    free(r);
}

static void on_timer(uv_timer_t *t)
{
    dn_network *n = t->data;
    dn__node_jobs *j = n->jobs;
    uint64_t now = uv_now(n->loop);
    for (open_req *r = j->open, *next; r; r = next) {
        next = r->next;
        if (r->deadline_loop <= now) {
            close_open(j, r, 0);
            next = j->open; /* the callback may have changed the list */
        }
    }
    arm_timer(j);
}

static void arm_timer(dn__node_jobs *j)
{
    if (!j->timer_init || j->stopped)
        return;
    if (!j->open) {
        uv_timer_stop(&j->timer);
        return;
    }
    uint64_t first = UINT64_MAX, now = uv_now(j->n->loop);
    for (open_req *r = j->open; r; r = r->next)
        if (r->deadline_loop < first)
            first = r->deadline_loop;
    uv_timer_start(&j->timer, on_timer, first > now ? first - now : 0, 0);
}

static void put_reply(dn_messenger_reply_handle *h, const char *error)
{
    dn_buf b = DN_BUF_INIT;
    if (dn__job_reply_encode(&b, error))
        dn_messenger_reply_discard(h);
    else
        (void)dn_messenger_reply(h, b.data, b.len);
    dn_buf_free(&b);
}

static int on_bid(dn_messenger *m, const dn_peerid *from, const char *type, const uint8_t *data,
                  size_t len, dn_messenger_reply_handle *reply, void *arg)
{
    dn__node_jobs *j = arg;
    (void)m, (void)type;
    dn__job_bid bd;
    char msg[160], hex[2 * DN_JOB_ID_LEN + 1];
    if (dn__job_bid_decode(data, len, &bd)) {
        put_reply(reply, "malformed bid (see docs/jobs.md: Bid {request 1, bid 2})");
        return 0;
    }
    const uint8_t *id = bd.request;
    hex_id(id, hex);
    open_req *r = j->open;
    while (r && memcmp(r->id, id, DN_JOB_ID_LEN))
        r = r->next;
    if (!r) {
        snprintf(msg, sizeof msg,
                 was_closed(j, id) ? "request %s is closed: its deadline passed"
                                   : "request %s is unknown here (not ours, or closed long ago)",
                 hex);
        put_reply(reply, msg);
        return 0;
    }
    for (size_t i = 0; i < r->nbids; i++)
        if (dn_peerid_equal(&r->bidders[i], from)) {
            snprintf(msg, sizeof msg, "this peer already bid on request %s", hex);
            put_reply(reply, msg);
            return 0;
        }
    if (r->nbids >= DN_JOB_MAX_BIDS) {
        snprintf(msg, sizeof msg, "request %s has all the bids it takes (%d)", hex,
                 DN_JOB_MAX_BIDS);
        put_reply(reply, msg);
        return 0;
    }
    if (r->nbids == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        dn_peerid *nb = realloc(r->bidders, cap * sizeof *nb);
        if (!nb) {
            put_reply(reply, "the requester is out of memory");
            return 0;
        }
        r->bidders = nb, r->cap = cap;
    }
    r->bidders[r->nbids++] = *from;
    put_reply(reply, NULL);
    dn_job_event ev = {.request = r->id,
                       .nbids = r->nbids,
                       .from = from,
                       .bid = bd.bid ? bd.bid : data,
                       .len = bd.len,
                       .time_ms = unix_ms()};
    r->cb(r->arg, &ev);
    return 0;
}

int dn_network_publish_job(dn_network *n, const void *job, size_t len, uint32_t wait_ms,
                           dn_job_bid_cb cb, void *arg)
{
    dn__node_jobs *j = n->jobs;
    if (!j || j->stopped || n->stopping)
        return DN_ESTATE;
    if (!cb || (!job && len) || len == 0 || wait_ms == 0 || wait_ms > DN_JOB_MAX_WAIT_MS)
        return DN_EINVAL;
    if (len > DN_JOB_MAX)
        return DN_ETOOBIG;
    if (j->nopen >= DN_JOB_MAX_OPEN)
        return DN_ELIMIT;
    open_req *r = calloc(1, sizeof *r);
    if (!r)
        return DN_ENOMEM;
    randombytes_buf(r->id, sizeof r->id);
    r->cb = cb, r->arg = arg;
    r->deadline_loop = uv_now(n->loop) + wait_ms;
    const dn_peerid *self = dn_network_peerid(n);
    dn_buf b = DN_BUF_INIT;
    int rc = dn__job_request_encode(&b, r->id, self, unix_ms() + wait_ms, job, len,
                                    DN_JOB_BID_TYPE);
    if (!rc) {
        int peers = dn_pubsub_publish(j->ps, j->topic, b.data, b.len);
        rc = peers < 0 ? peers : 0;
        if (peers == 0)
            DN_INFO("jobs", "job request published, but no peer is subscribed to %s yet", j->topic);
    }
    dn_buf_free(&b);
    if (rc) {
        free(r);
        return rc;
    }
    if (!j->timer_init) {
        uv_timer_init(n->loop, &j->timer);
        j->timer.data = n;
        j->timer_init = true;
    }
    r->next = j->open;
    j->open = r;
    j->nopen++;
    arm_timer(j);
    return 0;
}

/* ---- bidder: requests received, bids ---- */

static void in_free(dn__node_jobs *j, in_req **pp)
{
    in_req *r = *pp;
    *pp = r->next;
    j->nin--;
    j->in_bytes -= r->len;
    free(r->job);
    free(r);
}

/* Drop expired requests; then the oldest while over the bounds (with room
 * for add more bytes). */
static void in_trim(dn__node_jobs *j, size_t add)
{
    uint64_t now = unix_ms();
    for (in_req **pp = &j->in; *pp;)
        if ((*pp)->deadline_ms + KEEP_MS < now)
            in_free(j, pp);
        else
            pp = &(*pp)->next;
    while (j->in && (j->nin >= INREQ_MAX || j->in_bytes + add > INREQ_BYTES)) {
        in_req **pp = &j->in;
        while ((*pp)->next)
            pp = &(*pp)->next;
        in_free(j, pp);
    }
}

static in_req *in_find(dn__node_jobs *j, const uint8_t *id)
{
    in_trim(j, 0);
    for (in_req *r = j->in; r; r = r->next)
        if (!memcmp(r->id, id, DN_JOB_ID_LEN))
            return r;
    return NULL;
}

static json_t *in_json(const in_req *r)
{
    char hex[2 * DN_JOB_ID_LEN + 1], from[DN_PEERID_STR_MAX];
    hex_id(r->id, hex);
    dn_peerid_to_string(&r->from, from, sizeof from);
    return json_pack("{s:s, s:s, s:o, s:I, s:I}", "id", hex, "from", from, "job",
                     dn__node_b64_json(r->job, r->len), "deadline", (json_int_t)r->deadline_ms,
                     "time", (json_int_t)r->time_ms);
}

typedef struct bid_op {
    dn__node_jobs *j;
    dn_job_bid_done_cb done;
    void *arg;
} bid_op;

static void on_bid_reply(void *arg, int status, const uint8_t *reply, size_t len)
{
    bid_op *op = arg;
    char why[256] = "";
    bool accepted = false;
    if (!status && dn__job_reply_decode(reply, len, &accepted, why, sizeof why))
        snprintf(why, sizeof why, "the requester's reply is malformed");
    if (op->done) {
        if (status)
            op->done(op->arg, status, NULL);
        else
            op->done(op->arg, accepted ? 0 : DN_EPROTO, accepted ? NULL : why);
    }
    free(op);
}

static int send_bid(dn__node_jobs *j, const in_req *r, const void *bid, size_t len,
                    dn_job_bid_done_cb done, void *arg)
{
    if (len > DN_JOB_BID_MAX)
        return DN_ETOOBIG;
    if (dn_peerid_equal(&r->from, dn_network_peerid(j->n)))
        return DN_EINVAL; /* never bid on our own request */
    bid_op *op = calloc(1, sizeof *op);
    if (!op)
        return DN_ENOMEM;
    *op = (bid_op){.j = j, .done = done, .arg = arg};
    dn_buf b = DN_BUF_INIT;
    int rc = dn__job_bid_encode(&b, r->id, bid, len);
    if (!rc)
        rc = dn_messenger_request(j->m, NULL, &r->from, r->bid_type, b.data, b.len, BID_TIMEOUT_MS,
                                  on_bid_reply, op);
    dn_buf_free(&b);
    if (rc)
        free(op);
    return rc;
}

int dn_network_job_bid(dn_network *n, const uint8_t id[DN_JOB_ID_LEN], const void *bid, size_t len,
                       dn_job_bid_done_cb done, void *arg)
{
    dn__node_jobs *j = n->jobs;
    if (!j || j->stopped)
        return DN_ESTATE;
    if (!bid && len)
        return DN_EINVAL;
    in_req *r = in_find(j, id);
    if (!r)
        return DN_ENOTFOUND;
    return send_bid(j, r, bid, len, done, arg);
}

static void on_auto_bid_done(void *arg, int status, const char *why)
{
    (void)arg;
    if (status)
        DN_LOG_LIMITED(DN_LOG_WARN, "jobs", "auto-bid refused: %s",
                       why ? why : dn_strerror(status));
}

static int validate_request(void *arg, const dn_pubsub_message *m)
{
    (void)arg;
    dn__job_request r;
    if (dn__job_request_decode(m->data, m->len, &r))
        return -1;
    /* Bids go to the requester: a request naming another peer would turn
     * every bidder against it. */
    if (!dn_peerid_equal(&r.requester, &m->from))
        return -1;
    uint64_t now = unix_ms();
    if (r.deadline_ms + SKEW_MS < now || r.deadline_ms > now + DN_JOB_MAX_WAIT_MS + SKEW_MS)
        return 1;
    return 0;
}

static void on_request_msg(void *arg, const dn_pubsub_message *m)
{
    dn__node_jobs *j = arg;
    dn__job_request q;
    if (validate_request(j, m) != 0 || dn__job_request_decode(m->data, m->len, &q))
        return; /* the service ran the validator already; this is a second look */
    if (dn_peerid_equal(&q.requester, dn_network_peerid(j->n)))
        return;
    if (in_find(j, q.id))
        return; /* a copy of one we have */
    in_trim(j, q.len);
    in_req *r = calloc(1, sizeof *r);
    if (!r || !(r->job = malloc(q.len ? q.len : 1))) {
        free(r);
        DN_LOG_LIMITED(DN_LOG_WARN, "jobs", "out of memory: a job request is dropped");
        return;
    }
    memcpy(r->id, q.id, DN_JOB_ID_LEN);
    r->from = q.requester;
    r->deadline_ms = q.deadline_ms;
    r->time_ms = unix_ms();
    memcpy(r->bid_type, q.bid_type, q.bid_type_len);
    r->bid_type[q.bid_type_len] = 0;
    memcpy(r->job, q.job, q.len);
    r->len = q.len;
    r->next = j->in;
    j->in = r;
    j->nin++;
    j->in_bytes += r->len;
    if (j->listeners) {
        json_t *line = in_json(r);
        for (req_listener *l = j->listeners, *next; line && l; l = next) {
            next = l->next; /* a push may drop (and free) the listener */
            (void)dn__api_stream_push(l->s, line);
        }
        json_decref(line);
    }
    if (j->has_auto_bid) {
        int rc = send_bid(j, r, j->auto_bid, j->auto_bid_len, on_auto_bid_done, NULL);
        if (rc)
            DN_LOG_LIMITED(DN_LOG_WARN, "jobs", "cannot auto-bid: %s", dn_strerror(rc));
    }
}

/* ---- attach, stop ---- */

static int read_auto_bid(dn__node_jobs *j, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        dn__set_err(err, errlen, "jobs.auto_bid: cannot read %s: %s", path,
                    fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return DN_EINVAL;
    }
    if (st.st_size > DN_JOB_BID_MAX) {
        dn__set_err(err, errlen, "jobs.auto_bid: %s is larger than a bid may be (%u bytes)", path,
                    DN_JOB_BID_MAX);
        close(fd);
        return DN_ETOOBIG;
    }
    j->auto_bid = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (j->auto_bid && got < (size_t)st.st_size) {
        ssize_t k = read(fd, j->auto_bid + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    if (!j->auto_bid || got != (size_t)st.st_size) {
        dn__set_err(err, errlen, "jobs.auto_bid: cannot read %s", path);
        return DN_EIO;
    }
    j->auto_bid_len = got;
    j->has_auto_bid = true;
    return 0;
}

int dn__node_jobs_attach(dn_network *n, char *err, size_t errlen)
{
    dn__node_jobs *j = calloc(1, sizeof *j);
    if (!j) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    n->jobs = j;
    j->n = n;
    j->ps = dn_network_pubsub(n);
    j->m = dn_network_messenger(n);
    const dn__node_config *c = &n->cfg.c;
    int rc;
    if (!(j->topic = strdup(c->jobs.topic ? c->jobs.topic : "/dmsnet/jobs/1.0.0"))) {
        dn__set_err(err, errlen, "out of memory");
        return DN_ENOMEM;
    }
    if (c->jobs.auto_bid && (rc = read_auto_bid(j, c->jobs.auto_bid, err, errlen)))
        return rc;
    if ((rc = dn_messenger_handle(j->m, DN_JOB_BID_TYPE, on_bid, j)) ||
        (rc = dn_pubsub_set_validator(j->ps, j->topic, validate_request, j)) ||
        (rc = dn_pubsub_subscribe(j->ps, j->topic, on_request_msg, j, &j->sub))) {
        dn__set_err(err, errlen, "cannot start publishJob on %s: %s", j->topic, dn_strerror(rc));
        return rc;
    }
    return 0;
}

int dn__node_jobs_stop(dn_network *n, uv_close_cb close_cb)
{
    dn__node_jobs *j = n->jobs;
    if (!j || j->stopped)
        return 0;
    j->stopped = true;
    while (j->open)
        close_open(j, j->open, DN_ECLOSED);
    if (j->sub) {
        dn_pubsub_unsubscribe(j->sub);
        j->sub = NULL;
    }
    if (!j->timer_init)
        return 0;
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, close_cb);
    return 1;
}

void dn__node_jobs_free(dn_network *n)
{
    dn__node_jobs *j = n->jobs;
    if (!j)
        return;
    /* dn_network_new's failure path: the service may hold our subscription
     * still; it goes with the host, which that path closes too. */
    while (j->in)
        in_free(j, &j->in);
    for (req_listener *l = j->listeners, *next; l; l = next) {
        next = l->next;
        free(l);
    }
    free(j->auto_bid);
    free(j->topic);
    free(j);
    n->jobs = NULL;
}

/* ---- API ---- */

typedef struct publish_op {
    dn_api_stream *s; /* NULL once the client left */
} publish_op;

static void on_publish_closed(dn_api_stream *s, dn_api_stream_end why, void *ud)
{
    publish_op *op = ud;
    (void)s, (void)why;
    op->s = NULL;
}

static void on_publish_event(void *arg, const dn_job_event *ev)
{
    publish_op *op = arg;
    char hex[2 * DN_JOB_ID_LEN + 1];
    hex_id(ev->request, hex);
    if (!ev->done) {
        if (!op->s)
            return;
        char from[DN_PEERID_STR_MAX];
        dn_peerid_to_string(ev->from, from, sizeof from);
        json_t *line =
            json_pack("{s:s, s:s, s:o, s:I}", "request", hex, "from", from, "bid",
                      dn__node_b64_json(ev->bid, ev->len), "time", (json_int_t)ev->time_ms);
        if (line)
            (void)dn__api_stream_push(op->s, line);
        json_decref(line);
        return;
    }
    if (op->s) {
        json_t *line =
            json_pack("{s:b, s:s, s:I}", "done", 1, "request", hex, "bids", (json_int_t)ev->nbids);
        if (line && ev->status)
            json_object_set_new(line, "error", json_string(dn_strerror(ev->status)));
        if (line)
            (void)dn__api_stream_push(op->s, line); /* a drop clears op->s */
        json_decref(line);
        if (op->s)
            dn__api_stream_end(op->s);
    }
    free(op);
}

static void on_publish(dn_api_req *req, void *ud)
{
    dn__node_jobs *j = ud;
    json_t *b = dn__api_req_body(req), *w = json_object_get(b, "wait_s");
    if (!json_is_object(b)) {
        dn__api_reply_error(req, 400, "the body must be {\"job\": base64, \"wait_s\"}");
        return;
    }
    if (w && (!json_is_integer(w) || json_integer_value(w) < 1 ||
              json_integer_value(w) > DN_JOB_MAX_WAIT_MS / 1000)) {
        dn__api_reply_error(req, 400, "'wait_s' must be 1..%u", DN_JOB_MAX_WAIT_MS / 1000);
        return;
    }
    uint32_t wait_ms = w ? (uint32_t)json_integer_value(w) * 1000 : 5000;
    uint8_t *job;
    size_t len;
    if (dn__node_b64_field(req, b, "job", &job, &len))
        return;
    if (len == 0 || len > DN_JOB_MAX) {
        free(job);
        dn__api_reply_error(req, len ? 413 : 400, "the job must be 1..%u bytes, got %zu",
                            DN_JOB_MAX, len);
        return;
    }
    publish_op *op = calloc(1, sizeof *op);
    int rc = op ? dn_network_publish_job(j->n, job, len, wait_ms, on_publish_event, op) : DN_ENOMEM;
    free(job);
    if (rc) {
        free(op);
        dn__api_reply_error(req, rc == DN_ELIMIT ? 429 : 500, "cannot publish the job: %s",
                            rc == DN_ELIMIT ? "too many requests are open" : dn_strerror(rc));
        return;
    }
    /* The stream's failure (NULL, req answered 500) leaves op waiting for
     * its last call, which frees it. */
    op->s = dn__api_reply_stream(req, on_publish_closed, op);
    if (op->s)
        dn__api_stream_set_queue_max(op->s, PUBLISH_QUEUE);
}

static void listener_free(req_listener *l)
{
    dn__node_jobs *j = l->j;
    for (req_listener **pp = &j->listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    j->nlisteners--;
    free(l);
}

static void on_requests_closed(dn_api_stream *s, dn_api_stream_end why, void *ud)
{
    (void)s, (void)why;
    listener_free(ud);
}

static void on_requests(dn_api_req *req, void *ud)
{
    dn__node_jobs *j = ud;
    if (j->nlisteners >= LISTENERS_MAX) {
        dn__api_reply_error(req, 429, "too many job request listeners (%d)", LISTENERS_MAX);
        return;
    }
    req_listener *l = calloc(1, sizeof *l);
    if (!l) {
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    l->j = j;
    l->s = dn__api_reply_stream(req, on_requests_closed, l);
    if (!l->s) {
        free(l);
        return;
    }
    dn__api_stream_set_queue_max(l->s, LISTENER_QUEUE);
    l->next = j->listeners;
    j->listeners = l;
    j->nlisteners++;
    /* The requests kept (received in the last minute or still open),
     * oldest first, then new ones as they come; each says its deadline. */
    in_trim(j, 0);
    in_req *list[INREQ_MAX];
    size_t k = 0;
    for (in_req *r = j->in; r && k < INREQ_MAX; r = r->next)
        list[k++] = r;
    while (k-- > 0) {
        json_t *line = in_json(list[k]);
        int rc = line ? dn__api_stream_push(l->s, line) : 0;
        json_decref(line);
        if (rc)
            return; /* dropped: l is gone */
    }
}

typedef struct bid_api_op {
    dn_api_req *req;
    char requester[DN_PEERID_STR_MAX];
    char id[2 * DN_JOB_ID_LEN + 1];
} bid_api_op;

static void on_api_bid_done(void *arg, int status, const char *why)
{
    bid_api_op *op = arg;
    if (!status)
        dn__api_reply(op->req, 200,
                      json_pack("{s:b, s:s, s:s}", "accepted", 1, "request", op->id, "requester",
                                op->requester));
    else if (why)
        dn__api_reply_error(op->req, 409, "the requester refused the bid: %s", why);
    else
        dn__api_reply_error(op->req, status == DN_ETIMEOUT ? 504 : 502, "cannot bid to %s: %s",
                            op->requester,
                            status == DN_ENEGOTIATE ? "it takes no bids" : dn_strerror(status));
    free(op);
}

static void on_bid_post(dn_api_req *req, void *ud)
{
    dn__node_jobs *j = ud;
    json_t *b = dn__api_req_body(req);
    const char *ids = json_string_value(json_object_get(b, "request"));
    uint8_t id[DN_JOB_ID_LEN];
    if (!json_is_object(b) || parse_id(ids, id)) {
        dn__api_reply_error(req, 400, "'request' must be a request id (32 hex digits)");
        return;
    }
    in_req *r = in_find(j, id);
    if (!r) {
        dn__api_reply_error(req, 404, "no job request %s was received here (or it expired)", ids);
        return;
    }
    if (dn_peerid_equal(&r->from, dn_network_peerid(j->n))) {
        dn__api_reply_error(req, 400, "request %s is our own: a node does not bid on it", ids);
        return;
    }
    uint8_t *bid;
    size_t len;
    if (dn__node_b64_field(req, b, "bid", &bid, &len))
        return;
    bid_api_op *op = calloc(1, sizeof *op);
    if (!op) {
        free(bid);
        dn__api_reply_error(req, 500, "out of memory");
        return;
    }
    op->req = req;
    dn_peerid_to_string(&r->from, op->requester, sizeof op->requester);
    hex_id(id, op->id);
    int rc = send_bid(j, r, bid, len, on_api_bid_done, op);
    free(bid);
    if (rc) {
        dn__api_reply_error(req, rc == DN_ETOOBIG ? 413 : 502, "cannot bid: %s",
                            rc == DN_ETOOBIG ? "the bid is larger than the limit"
                                             : dn_strerror(rc));
        free(op);
    }
}

int dn__node_jobs_routes(dn_network *n, dn_api *api)
{
    dn__node_jobs *j = n->jobs;
    int rc;
    if ((rc = dn__api_route(api, "POST", "/v0/job/publish", false, on_publish, j)) ||
        (rc = dn__api_route(api, "GET", "/v0/job/requests", false, on_requests, j)) ||
        (rc = dn__api_route(api, "POST", "/v0/job/bid", false, on_bid_post, j)))
        return rc;
    (void)dn__api_route_set_max_body(api, "POST", "/v0/job/publish", JOB_BODY_MAX);
    (void)dn__api_route_set_max_body(api, "POST", "/v0/job/bid", JOB_BODY_MAX);
    return 0;
}
