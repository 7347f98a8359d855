/* AutoNAT v2 (libp2p/specs autonat/autonat-v2.md): a service on the host.
 *
 * Server: a peer opens /libp2p/autonat/2/dial-request and sends a
 * DialRequest (addresses in priority order, a nonce). We take the first
 * address we are willing to dial; when its IP differs from the one the
 * request came from we first ask for 30k-100k bytes of dial data (spec,
 * "Amplification Attack Prevention"). We dial that address on a new
 * connection (an address without /p2p never reuses one: the host only
 * reuses connections by peer id), send DialBack{nonce} on
 * /libp2p/autonat/2/dial-back, wait for DialBackResponse, close that
 * connection and answer DialResponse on the request stream.
 *
 * Client: our candidate addresses (listen addresses with 0.0.0.0/::
 * expanded, addresses added by the caller, and what peers observe of us
 * via identify) are tested one per request with connected peers that
 * announce the dial-request protocol. A result counts only when the
 * server says OK and our nonce arrived on the dial-back stream over
 * another connection than the request's. Results from distinct servers
 * make a verdict per address and for the node (docs/autonat.md). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"
#include "proto/autonat_msg.h"

#define MAX_TRACKED 32 /* addresses the client keeps results for */
#define MAX_EXTRA 8    /* dn_autonat_add_candidate */
#define WINDOW 5       /* results kept per address, one per server */
#define MAX_PROBES 3   /* client requests in flight */
#define MAX_SERVERS 64 /* connected servers looked at per round */
#define MAX_BACKOFF 32
#define BACKOFF_MS 30000    /* a server whose stream broke, or rejected us */
#define RESULT_TTL_FACTOR 3 /* results older than 3 probe intervals are dropped */
#define MAX_REQUESTS 32     /* server requests in progress, all peers */
#define MAX_PEER_REQUESTS 2 /* ... from one peer (js-libp2p also allows 2) */
#define RATE_WINDOW_MS 60000
#define MAX_RATE 128
#define LINGER_MS 5000 /* after our answer, for the peer to close */
/* An address that stops being a candidate keeps its verdict this long: a
 * listener closing with the host must not flip the verdict on the way out. */
#define GONE_GRACE_MS 5000
#define MAX_DB_CONNS 8                      /* connections recent dial-backs came in on */
#define CLIENT_MAX_DIAL_DATA (200u * 1024u) /* we pay at most this much to be dialled */
#define DIAL_BACK_MAX_IN 256                /* bytes on a dial-back stream */
#define DEFAULT_CONFIDENCE 3
#define DEFAULT_INTERVAL_MS (10u * 60u * 1000u)
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_DIAL_BACKS 8
#define DEFAULT_PEER_RPM 12
#define DEFAULT_RPM 60

enum { OUT_NONE = 0, OUT_OK = 1, OUT_FAIL = 2 };

typedef struct result {
    dn_peerid server;
    uint64_t at;
    uint8_t outcome;
} result;

typedef struct tracked {
    dn_multiaddr ma;
    result res[WINDOW];
    size_t nres;
    dn_reachability state;
    bool probing, seen;
    uint64_t unseen_since; /* when it stopped being a candidate (0: it is one) */
} tracked;

typedef struct probe probe;
typedef struct srv_req srv_req;

struct dn_autonat {
    dn_host *h;
    dn_autonat_config cfg;
    uv_timer_t timer;
    uint64_t timer_at; /* 0 when not armed */
    tracked t[MAX_TRACKED];
    size_t nt;
    dn_multiaddr extra[MAX_EXTRA];
    size_t nextra;
    dn_reachability verdict;
    probe *probes;
    unsigned nprobes;
    srv_req *reqs;
    unsigned nreqs, ndialbacks;
    struct {
        dn_peerid peer;
        uint64_t at;
    } rate[MAX_RATE];
    size_t rate_next;
    struct {
        dn_peerid peer;
        uint64_t until;
    } backoff[MAX_BACKOFF];
    dn_buf chunk;                          /* one framed DialDataResponse of 4096 bytes, reused */
    const dn_conn *db_conns[MAX_DB_CONNS]; /* connections dial-backs came in on */
    size_t db_next;
    dn_autonat_stats st;
};

static uint64_t now_ms(dn_autonat *a)
{
    return uv_now(dn_host_loop(a->h));
}
static void arm(dn_autonat *a, uint64_t delay_ms);

/* ---- addresses ---- */

/* Whether an address of the public internet (not loopback, private,
 * link-local, shared, documentation, multicast or reserved): the spec says
 * neither side should test others, and js-libp2p refuses them. */
static bool ip_public(uint32_t code, const uint8_t *b)
{
    if (code == DN_MA_IP4) {
        if (b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224)
            return false;
        if ((b[0] == 169 && b[1] == 254) || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
            (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xc0) == 64) ||
            (b[0] == 198 && (b[1] & 0xfe) == 18))
            return false;
        if ((b[0] == 192 && b[1] == 0 && (b[2] == 0 || b[2] == 2)) ||
            (b[0] == 198 && b[1] == 51 && b[2] == 100) || (b[0] == 203 && b[1] == 0 && b[2] == 113))
            return false;
        return true;
    }
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, 12) == 0)
        return ip_public(DN_MA_IP4, b + 12);
    if ((b[0] & 0xe0) != 0x20) /* global unicast is 2000::/3 */
        return false;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* 2001:db8::/32 */
        return false;
    return true;
}

/* Split /ip4|ip6/<ip>/tcp/<port>[/p2p/<id>]: the only form we dial. */
typedef struct tcp_addr {
    uint32_t family; /* DN_MA_IP4 or DN_MA_IP6 */
    uint8_t ip[16];
    uint16_t port;
    bool has_peer;
    dn_peerid peer;
} tcp_addr;

static bool tcp_addr_parse(const dn_multiaddr *ma, tcp_addr *out)
{
    size_t off = 0;
    dn_ma_component c;
    memset(out, 0, sizeof *out);
    if (dn_multiaddr_next(ma, &off, &c) != 1 || (c.code != DN_MA_IP4 && c.code != DN_MA_IP6))
        return false;
    out->family = c.code;
    memcpy(out->ip, c.value, c.value_len);
    if (dn_multiaddr_next(ma, &off, &c) != 1 || c.code != DN_MA_TCP || c.value_len != 2)
        return false;
    out->port = (uint16_t)(c.value[0] << 8 | c.value[1]);
    int rc = dn_multiaddr_next(ma, &off, &c);
    if (rc == 0)
        return true;
    if (rc != 1 || c.code != DN_MA_P2P ||
        dn_peerid_from_bytes(c.value, c.value_len, &out->peer) != 0)
        return false;
    out->has_peer = true;
    return dn_multiaddr_next(ma, &off, &c) == 0;
}

static size_t ip_len(uint32_t family)
{
    return family == DN_MA_IP4 ? 4 : 16;
}

static void tcp_addr_build(uint32_t family, const uint8_t *ip, uint16_t port, dn_multiaddr *out)
{
    uint8_t p[2] = {(uint8_t)(port >> 8), (uint8_t)port};
    out->len = 0;
    dn_multiaddr_append(out, family, ip, ip_len(family));
    dn_multiaddr_append(out, DN_MA_TCP, p, 2);
}

static bool ma_equal(const dn_multiaddr *x, const dn_multiaddr *y)
{
    return x->len == y->len && memcmp(x->bytes, y->bytes, x->len) == 0;
}

/* The first IP component's value of an address, for the observed-IP test. */
static bool first_ip(const dn_multiaddr *ma, uint32_t *family, const uint8_t **ip)
{
    size_t off = 0;
    dn_ma_component c;
    if (dn_multiaddr_next(ma, &off, &c) != 1 || (c.code != DN_MA_IP4 && c.code != DN_MA_IP6))
        return false;
    *family = c.code;
    *ip = c.value;
    return true;
}

/* ---- server ---- */

enum { RQ_REQUEST, RQ_DATA, RQ_DIAL, RQ_DONE };

struct srv_req {
    dn_autonat *a;
    srv_req *next;
    int refs;     /* the request stream, a pending dial, the dial-back stream */
    dn_stream *s; /* request stream, NULL once gone */
    dn_peerid peer;
    int st;
    dn_buf in;
    dn_multiaddr target;
    uint32_t idx;
    uint64_t nonce;
    uint64_t need, got;
    uint64_t deadline;
    bool counted_dialback;
    dn_conn *back; /* our dial-back connection, NULL when none (or gone) */
    dn_stream *bs; /* dial-back stream */
    dn_buf bin;
    bool answered;
};

static void req_release(srv_req *r)
{
    if (--r->refs > 0)
        return;
    dn_autonat *a = r->a;
    for (srv_req **pp = &a->reqs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    a->nreqs--;
    if (r->counted_dialback)
        a->ndialbacks--;
    dn_buf_free(&r->in);
    dn_buf_free(&r->bin);
    free(r);
}

/* Write a DialResponse and close our side; the request lingers until the
 * client closes its side (it MUST, spec) or LINGER_MS pass. */
static void req_answer(srv_req *r, uint32_t status, uint32_t dial_status)
{
    if (r->answered)
        return;
    r->answered = true;
    r->st = RQ_DONE;
    r->deadline = now_ms(r->a) + LINGER_MS;
    if (r->counted_dialback) {
        r->counted_dialback = false;
        r->a->ndialbacks--;
    }
    if (!r->s)
        return;
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_RESPONSE};
    m.u.dial_response.status = status;
    m.u.dial_response.addr_idx = status == DN_AUTONAT_RS_OK ? r->idx : 0;
    m.u.dial_response.dial_status = dial_status;
    dn_buf out = DN_BUF_INIT;
    if (dn__autonat_encode(&m, &out) == 0 && dn_stream_write(r->s, out.data, out.len) == 0)
        dn_stream_close_write(r->s);
    else
        dn_stream_reset(r->s);
    dn_buf_free(&out);
}

/* End the dial-back: close its connection (the client has what it needs)
 * and answer the request. */
static void dialback_finish(srv_req *r, uint32_t dial_status)
{
    dn_autonat *a = r->a;
    if (dial_status == DN_AUTONAT_DS_OK)
        a->st.dial_backs_ok++;
    else if (dial_status == DN_AUTONAT_DS_E_DIAL_ERROR)
        a->st.dial_errors++;
    dn_conn *back = r->back;
    r->back = NULL;
    /* Answer first: closing the connection may end the dial-back stream
     * at once, and that must find the request answered. */
    req_answer(r, DN_AUTONAT_RS_OK, dial_status);
    if (back)
        dn_conn_close(back);
}

static void db_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    srv_req *r = arg;
    if (r->answered)
        return;
    if (r->bin.len + len > DIAL_BACK_MAX_IN || dn_buf_append(&r->bin, data, len)) {
        r->refs++;
        dialback_finish(r, DN_AUTONAT_DS_E_DIAL_BACK_ERROR);
        dn_stream_reset(s);
        req_release(r);
        return;
    }
    const uint8_t *body;
    size_t blen;
    int n = dn__autonat_frame(r->bin.data, r->bin.len, DIAL_BACK_MAX_IN, &body, &blen);
    if (n == 0)
        return;
    uint32_t status = 1;
    if (n > 0 && dn__autonat_decode_dial_back_response(body, blen, &status) == 0 &&
        status == DN_AUTONAT_DBS_OK) {
        r->refs++;
        dialback_finish(r, DN_AUTONAT_DS_OK);
        req_release(r);
        return;
    }
    r->refs++;
    dialback_finish(r, DN_AUTONAT_DS_E_DIAL_BACK_ERROR);
    dn_stream_reset(s);
    req_release(r);
}

static void db_eof(dn_stream *s, void *arg)
{
    srv_req *r = arg;
    /* EOF before DialBackResponse: the nonce may not have been taken. */
    if (!r->answered) {
        r->refs++;
        dialback_finish(r, DN_AUTONAT_DS_E_DIAL_BACK_ERROR);
        req_release(r);
    }
}

static void db_close(dn_stream *s, int status, void *arg)
{
    srv_req *r = arg;
    r->bs = NULL;
    if (!r->answered)
        dialback_finish(r, DN_AUTONAT_DS_E_DIAL_BACK_ERROR);
    req_release(r);
}

static void db_opened(dn_stream *s, int status, void *arg)
{
    srv_req *r = arg;
    if (status || r->answered) {
        if (s)
            dn_stream_reset(s);
        if (!r->answered)
            dialback_finish(r, DN_AUTONAT_DS_E_DIAL_BACK_ERROR);
        req_release(r);
        return;
    }
    r->bs = s;
    static const dn_stream_callbacks cbs = {
        .on_data = db_data, .on_eof = db_eof, .on_close = db_close};
    dn_stream_set_callbacks(s, &cbs, r);
    dn_buf out = DN_BUF_INIT;
    if (dn__autonat_encode_dial_back(r->nonce, &out) || dn_stream_write(s, out.data, out.len)) {
        dn_buf_free(&out);
        dn_stream_reset(s); /* db_close answers */
        return;
    }
    dn_buf_free(&out);
    /* The client reads DialBack, answers and closes (spec): we only read now. */
    dn_stream_close_write(s);
}

static void dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    srv_req *r = arg;
    if (status || r->answered) {
        if (!status)
            dn_conn_close(c); /* the request ended while we dialled */
        else if (!r->answered)
            dialback_finish(r, DN_AUTONAT_DS_E_DIAL_ERROR);
        req_release(r);
        return;
    }
    if (dn_peerid_equal(dn_conn_remote_peer(c), dn_host_peerid(h))) {
        dn_conn_close(c); /* the address was our own */
        dialback_finish(r, DN_AUTONAT_DS_E_DIAL_ERROR);
        req_release(r);
        return;
    }
    r->back = c;
    /* The dial's reference passes to the dial-back stream. */
    if (dn_conn_open_stream(c, DN_AUTONAT_DIAL_BACK_PROTOCOL, db_opened, r) != 0) {
        dialback_finish(r, DN_AUTONAT_DS_E_DIAL_BACK_ERROR);
        req_release(r);
    }
}

static void req_dial(srv_req *r)
{
    dn_autonat *a = r->a;
    r->st = RQ_DIAL;
    r->refs++;
    if (dn_host_dial(a->h, &r->target, dialed, r) != 0) {
        r->refs--;
        a->st.dial_errors++;
        req_answer(r, DN_AUTONAT_RS_OK, DN_AUTONAT_DS_E_DIAL_ERROR);
    }
}

/* Whether we dial this address for this requester (spec: "the first
 * address it is willing to dial"). */
static bool willing(dn_autonat *a, const srv_req *r, const dn_multiaddr *ma, dn_multiaddr *out)
{
    tcp_addr t;
    if (!tcp_addr_parse(ma, &t) || t.port == 0)
        return false;
    /* A /p2p suffix must name the requester: we never dial for a third peer. */
    if (t.has_peer && !dn_peerid_equal(&t.peer, &r->peer))
        return false;
    if (!a->cfg.allow_private && !ip_public(t.family, t.ip))
        return false;
    static const uint8_t zero[16];
    if (memcmp(t.ip, zero, ip_len(t.family)) == 0)
        return false;
    tcp_addr_build(t.family, t.ip, t.port, out);
    /* A server with no listener of the address's family likely has no
     * route for it either (spec: IPv4-only servers refuse IPv6), and one of
     * our own listen addresses would be a dial to ourselves. */
    dn_multiaddr ls[16];
    size_t nl = dn_host_listen_addrs(a->h, ls, 16);
    if (nl > 16)
        nl = 16;
    bool family = nl == 0;
    for (size_t i = 0; i < nl; i++) {
        tcp_addr l;
        if (!tcp_addr_parse(&ls[i], &l))
            continue;
        if (l.family == t.family)
            family = true;
        if (ma_equal(&ls[i], out))
            return false;
    }
    return family;
}

static void req_on_request(srv_req *r, const dn__autonat_msg *m, const dn_multiaddr *observed)
{
    dn_autonat *a = r->a;
    r->nonce = m->u.dial_request.nonce;
    bool found = false;
    for (size_t i = 0; i < m->u.dial_request.naddrs && !found; i++) {
        dn_multiaddr ma;
        if (dn_multiaddr_from_bytes(m->u.dial_request.addrs[i], m->u.dial_request.addr_lens[i],
                                    &ma) != 0)
            continue;
        if (willing(a, r, &ma, &r->target)) {
            r->idx = (uint32_t)i;
            found = true;
        }
    }
    if (!found) {
        a->st.refused++;
        req_answer(r, DN_AUTONAT_RS_DIAL_REFUSED, DN_AUTONAT_DS_UNUSED);
        return;
    }
    if (a->ndialbacks >= a->cfg.max_dial_backs) {
        a->st.rejected++;
        req_answer(r, DN_AUTONAT_RS_REQUEST_REJECTED, DN_AUTONAT_DS_UNUSED);
        return;
    }
    a->ndialbacks++;
    r->counted_dialback = true;
    uint32_t fam, tfam;
    const uint8_t *ip, *tip;
    bool same = observed && first_ip(observed, &fam, &ip) && first_ip(&r->target, &tfam, &tip) &&
                fam == tfam && memcmp(ip, tip, ip_len(fam)) == 0;
    if (same) {
        req_dial(r);
        return;
    }
    /* Another IP than the request's: the client pays in bytes first. */
    r->need = DN_AUTONAT_DIAL_DATA_MIN +
              randombytes_uniform(DN_AUTONAT_DIAL_DATA_MAX - DN_AUTONAT_DIAL_DATA_MIN + 1);
    r->got = 0;
    r->st = RQ_DATA;
    a->st.dial_data_asked++;
    dn__autonat_msg q = {.type = DN_AUTONAT_DIAL_DATA_REQUEST};
    q.u.dial_data_request.addr_idx = r->idx;
    q.u.dial_data_request.num_bytes = r->need;
    dn_buf out = DN_BUF_INIT;
    if (dn__autonat_encode(&q, &out) || dn_stream_write(r->s, out.data, out.len))
        dn_stream_reset(r->s);
    dn_buf_free(&out);
}

static void req_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    srv_req *r = arg;
    if (r->st == RQ_DIAL || r->st == RQ_DONE)
        return; /* nothing more is expected: ignore (the client closes) */
    if (dn_buf_append(&r->in, data, len)) {
        dn_stream_reset(s);
        return;
    }
    r->refs++; /* the handlers below may reset the stream */
    while (r->s && (r->st == RQ_REQUEST || r->st == RQ_DATA)) {
        const uint8_t *body;
        size_t blen;
        int n = dn__autonat_frame(r->in.data, r->in.len, DN_AUTONAT_MSG_MAX, &body, &blen);
        if (n == 0)
            break;
        dn__autonat_msg m;
        if (n < 0 || dn__autonat_decode(body, blen, &m) != 0) {
            dn_stream_reset(s);
            break;
        }
        if (r->st == RQ_REQUEST) {
            if (m.type != DN_AUTONAT_DIAL_REQUEST) {
                dn_stream_reset(s);
                break;
            }
            req_on_request(r, &m, dn_conn_remote_addr(dn_stream_conn(s)));
        } else {
            if (m.type != DN_AUTONAT_DIAL_DATA_RESPONSE) {
                dn_stream_reset(s);
                break;
            }
            r->got += m.u.dial_data_response.len;
            r->a->st.dial_data_bytes += m.u.dial_data_response.len;
            if (r->got >= r->need)
                req_dial(r);
        }
        dn_buf_consume(&r->in, (size_t)n);
    }
    if (r->st == RQ_DIAL || r->st == RQ_DONE)
        dn_buf_free(&r->in);
    req_release(r);
}

static void req_eof(dn_stream *s, void *arg)
{
    srv_req *r = arg;
    if (r->st == RQ_REQUEST || r->st == RQ_DATA)
        dn_stream_reset(s); /* it stopped before we could act */
}

static void req_close(dn_stream *s, int status, void *arg)
{
    srv_req *r = arg;
    r->s = NULL;
    /* A dial in flight finishes by itself; its connection is then closed. */
    if (!r->answered && r->st != RQ_DIAL) {
        r->answered = true;
        r->st = RQ_DONE;
        if (r->counted_dialback) {
            r->counted_dialback = false;
            r->a->ndialbacks--;
        }
    }
    req_release(r);
}

static bool rate_ok(dn_autonat *a, const dn_peerid *peer)
{
    uint64_t now = now_ms(a);
    unsigned all = 0, mine = 0;
    for (size_t i = 0; i < MAX_RATE; i++) {
        if (!a->rate[i].at || now - a->rate[i].at >= RATE_WINDOW_MS)
            continue;
        all++;
        if (dn_peerid_equal(&a->rate[i].peer, peer))
            mine++;
    }
    if (all >= a->cfg.max_requests_per_min || mine >= a->cfg.max_requests_per_peer_per_min)
        return false;
    a->rate[a->rate_next].peer = *peer;
    a->rate[a->rate_next].at = now ? now : 1;
    a->rate_next = (a->rate_next + 1) % MAX_RATE;
    return true;
}

static void serve_dial_request(dn_host *h, dn_stream *s, void *arg)
{
    dn_autonat *a = arg;
    const dn_peerid *peer = dn_conn_remote_peer(dn_stream_conn(s));
    a->st.requests++;
    unsigned mine = 0;
    for (srv_req *o = a->reqs; o; o = o->next)
        if (!o->answered && dn_peerid_equal(&o->peer, peer))
            mine++;
    srv_req *r = calloc(1, sizeof *r);
    if (!r) {
        dn_stream_reset(s);
        return;
    }
    r->a = a;
    r->s = s;
    r->peer = *peer;
    r->refs = 1;
    r->st = RQ_REQUEST;
    r->deadline = now_ms(a) + a->cfg.timeout_ms;
    r->next = a->reqs;
    a->reqs = r;
    a->nreqs++;
    static const dn_stream_callbacks cbs = {
        .on_data = req_data, .on_eof = req_eof, .on_close = req_close};
    dn_stream_set_callbacks(s, &cbs, r);
    if (a->nreqs > MAX_REQUESTS || mine >= MAX_PEER_REQUESTS || !rate_ok(a, peer)) {
        /* Spec: E_REQUEST_REJECTED for rate and resource limits. The client
         * writes its request first and then reads, so we answer at once. */
        a->st.rejected++;
        char name[16];
        DN_LOG_LIMITED(DN_LOG_DEBUG, "autonat", "rejecting dial request from %s (limits)",
                       dn_peerid_short(peer, name));
        req_answer(r, DN_AUTONAT_RS_REQUEST_REJECTED, DN_AUTONAT_DS_UNUSED);
    }
    arm(a, a->cfg.timeout_ms);
}

/* ---- client ---- */

struct probe {
    dn_autonat *a;
    probe *next;
    dn_stream *s;
    dn_conn *c; /* the request's connection, NULL once closed */
    dn_peerid server;
    dn_multiaddr target;
    uint64_t nonce;
    uint64_t deadline;
    uint64_t data_left; /* dial data still to send */
    dn_buf in;
    bool dialed_back, done;
    bool asked_data; /* a server asks for dial data once per request */
    int busy;        /* inside one of its stream callbacks */
    bool zombie;     /* its stream closed meanwhile: freed when busy drops to 0 */
};

static tracked *find_tracked(dn_autonat *a, const dn_multiaddr *ma)
{
    for (size_t i = 0; i < a->nt; i++)
        if (ma_equal(&a->t[i].ma, ma))
            return &a->t[i];
    return NULL;
}

static void backoff_server(dn_autonat *a, const dn_peerid *peer)
{
    size_t slot = 0;
    for (size_t i = 0; i < MAX_BACKOFF; i++) {
        if (dn_peerid_equal(&a->backoff[i].peer, peer)) {
            slot = i;
            break;
        }
        if (a->backoff[i].until < a->backoff[slot].until)
            slot = i;
    }
    a->backoff[slot].peer = *peer;
    a->backoff[slot].until = now_ms(a) + BACKOFF_MS;
}

static bool in_backoff(dn_autonat *a, const dn_peerid *peer, uint64_t now)
{
    for (size_t i = 0; i < MAX_BACKOFF; i++)
        if (a->backoff[i].until > now && dn_peerid_equal(&a->backoff[i].peer, peer))
            return true;
    return false;
}

static void recompute(dn_autonat *a);

/* Record what server said about target: one entry per server per
 * address, the newest WINDOW kept. */
static void record(dn_autonat *a, const dn_multiaddr *target, const dn_peerid *server,
                   uint8_t outcome)
{
    tracked *t = find_tracked(a, target);
    if (!t)
        return; /* no longer a candidate */
    size_t i;
    for (i = 0; i < t->nres; i++)
        if (dn_peerid_equal(&t->res[i].server, server))
            break;
    if (i < t->nres) {
        memmove(&t->res[i], &t->res[i + 1], (t->nres - i - 1) * sizeof t->res[0]);
        t->nres--;
    } else if (t->nres == WINDOW) {
        memmove(&t->res[0], &t->res[1], (WINDOW - 1) * sizeof t->res[0]);
        t->nres--;
    }
    t->res[t->nres++] = (result){.server = *server, .at = now_ms(a), .outcome = outcome};
    recompute(a);
}

/* The probe's outcome, once. outcome < 0: no answer (server backed off). */
static void probe_finish(probe *p, int outcome)
{
    if (p->done)
        return;
    p->done = true;
    dn_autonat *a = p->a;
    tracked *t = find_tracked(a, &p->target);
    if (t)
        t->probing = false;
    char name[16], text[DN_MULTIADDR_STR_MAX];
    if (dn_log_get_level() <= DN_LOG_DEBUG) {
        dn_multiaddr_to_string(&p->target, text, sizeof text);
        DN_DEBUG("autonat", "%s via %s: %s", text, dn_peerid_short(&p->server, name),
                 outcome == OUT_OK     ? "dialled back"
                 : outcome == OUT_FAIL ? "not reachable"
                                       : "no result");
    }
    if (outcome == OUT_OK)
        a->st.probe_ok++;
    else if (outcome == OUT_FAIL)
        a->st.probe_failed++;
    else
        a->st.probe_other++;
    if (outcome < 0)
        backoff_server(a, &p->server);
    else
        record(a, &p->target, &p->server, (uint8_t)outcome);
    arm(a, 0); /* the next probe may start */
}

static void probe_enter(probe *p)
{
    p->busy++;
}
static void probe_free(probe *p);
/* Leave a callback: returns false when p was freed. */
static bool probe_leave(probe *p)
{
    if (--p->busy == 0 && p->zombie) {
        probe_finish(p, -1);
        probe_free(p);
        return false;
    }
    return true;
}

static void probe_send_data(probe *p)
{
    dn_autonat *a = p->a;
    while (p->s && !p->zombie && p->data_left) {
        int rc = dn_stream_write(p->s, a->chunk.data, a->chunk.len);
        if (rc == DN_ELIMIT)
            return; /* on_writable continues */
        if (rc) {
            dn_stream_reset(p->s);
            return;
        }
        a->st.dial_data_sent += DN_AUTONAT_DIAL_DATA_CHUNK;
        p->data_left = p->data_left > DN_AUTONAT_DIAL_DATA_CHUNK
                           ? p->data_left - DN_AUTONAT_DIAL_DATA_CHUNK
                           : 0;
    }
}

static void probe_on_msg(probe *p, const dn__autonat_msg *m)
{
    if (m->type == DN_AUTONAT_DIAL_DATA_REQUEST && !p->asked_data) {
        p->asked_data = true;
        /* We send one address: only index 0 can be asked for, and we pay
         * at most CLIENT_MAX_DIAL_DATA (rejecting: reset, spec). */
        if (m->u.dial_data_request.addr_idx != 0 ||
            m->u.dial_data_request.num_bytes > CLIENT_MAX_DIAL_DATA) {
            probe_finish(p, OUT_NONE);
            dn_stream_reset(p->s);
            return;
        }
        p->data_left = m->u.dial_data_request.num_bytes;
        probe_send_data(p);
        return;
    }
    if (m->type != DN_AUTONAT_DIAL_RESPONSE) {
        probe_finish(p, -1);
        dn_stream_reset(p->s);
        return;
    }
    uint32_t st = m->u.dial_response.status, ds = m->u.dial_response.dial_status;
    int outcome = OUT_NONE;
    if (st == DN_AUTONAT_RS_OK && m->u.dial_response.addr_idx == 0) {
        /* OK counts only with our nonce seen on a dial-back (spec: the
         * client MUST check the nonce, else discard the response). */
        if (ds == DN_AUTONAT_DS_OK && p->dialed_back)
            outcome = OUT_OK;
        else if (ds == DN_AUTONAT_DS_E_DIAL_ERROR)
            outcome = OUT_FAIL;
    } else if (st == DN_AUTONAT_RS_REQUEST_REJECTED) {
        outcome = -1;
    }
    probe_finish(p, outcome);
    p->data_left = 0;
    /* Spec: the client MUST close the stream after the response. */
    if (p->s)
        dn_stream_close_write(p->s);
}

static void probe_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    probe *p = arg;
    if (p->done)
        return;
    if (p->in.len + len > DN_AUTONAT_MSG_MAX + 16 || dn_buf_append(&p->in, data, len)) {
        probe_finish(p, -1);
        dn_stream_reset(s);
        return;
    }
    probe_enter(p);
    while (!p->done && p->s && !p->zombie) {
        const uint8_t *body;
        size_t blen;
        int n = dn__autonat_frame(p->in.data, p->in.len, DN_AUTONAT_MSG_MAX, &body, &blen);
        if (n == 0)
            break;
        dn__autonat_msg m;
        if (n < 0 || dn__autonat_decode(body, blen, &m) != 0) {
            probe_finish(p, -1);
            dn_stream_reset(s);
            break;
        }
        probe_on_msg(p, &m);
        dn_buf_consume(&p->in, (size_t)n);
    }
    probe_leave(p);
}

static void probe_writable(dn_stream *s, void *arg)
{
    probe *p = arg;
    probe_enter(p);
    probe_send_data(p);
    probe_leave(p);
}

static void probe_eof(dn_stream *s, void *arg)
{
    probe *p = arg;
    /* The server closed without an answer (js-libp2p does so for an
     * address it will not dial): no result from it for this address. */
    probe_finish(p, OUT_NONE);
    dn_stream_close_write(s);
}

static void probe_free(probe *p)
{
    dn_autonat *a = p->a;
    for (probe **pp = &a->probes; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    a->nprobes--;
    dn_buf_free(&p->in);
    free(p);
}

static void probe_close(dn_stream *s, int status, void *arg)
{
    probe *p = arg;
    p->s = NULL;
    if (p->busy) {
        p->zombie = true;
        return;
    }
    probe_finish(p, -1);
    probe_free(p);
}

static void probe_opened(dn_stream *s, int status, void *arg)
{
    probe *p = arg;
    if (status || p->done) {
        if (s)
            dn_stream_reset(s); /* timed out while opening */
        probe_finish(p, -1);
        probe_free(p);
        return;
    }
    p->s = s;
    static const dn_stream_callbacks cbs = {.on_data = probe_data,
                                            .on_eof = probe_eof,
                                            .on_writable = probe_writable,
                                            .on_close = probe_close};
    dn_stream_set_callbacks(s, &cbs, p);
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_REQUEST};
    m.u.dial_request.naddrs = 1;
    m.u.dial_request.addrs[0] = p->target.bytes;
    m.u.dial_request.addr_lens[0] = p->target.len;
    m.u.dial_request.nonce = p->nonce;
    dn_buf out = DN_BUF_INIT;
    if (dn__autonat_encode(&m, &out) || dn_stream_write(s, out.data, out.len))
        dn_stream_reset(s);
    dn_buf_free(&out);
}

static int probe_start(dn_autonat *a, tracked *t, dn_conn *c)
{
    probe *p = calloc(1, sizeof *p);
    if (!p)
        return DN_ENOMEM;
    p->a = a;
    p->c = c;
    p->server = *dn_conn_remote_peer(c);
    p->target = t->ma;
    do
        randombytes_buf(&p->nonce, sizeof p->nonce);
    while (p->nonce == 0); /* proto3 would omit a zero nonce */
    p->deadline = now_ms(a) + a->cfg.timeout_ms;
    int rc = dn_conn_open_stream(c, DN_AUTONAT_DIAL_REQUEST_PROTOCOL, probe_opened, p);
    if (rc) {
        free(p);
        return rc;
    }
    p->next = a->probes;
    a->probes = p;
    a->nprobes++;
    t->probing = true;
    a->st.probes++;
    return 0;
}

/* ---- the dial-back stream (client side) ---- */

typedef struct db_in {
    dn_autonat *a;
    dn_buf in;
    bool answered;
} db_in;

static void dbin_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    db_in *d = arg;
    if (d->answered)
        return;
    if (d->in.len + len > DIAL_BACK_MAX_IN || dn_buf_append(&d->in, data, len)) {
        dn_stream_reset(s);
        return;
    }
    const uint8_t *body;
    size_t blen;
    int n = dn__autonat_frame(d->in.data, d->in.len, DIAL_BACK_MAX_IN, &body, &blen);
    if (n == 0)
        return;
    uint64_t nonce;
    probe *match = NULL;
    if (n > 0 && dn__autonat_decode_dial_back(body, blen, &nonce) == 0)
        for (probe *p = d->a->probes; p && !match; p = p->next)
            if (!p->done && p->nonce == nonce)
                match = p;
    /* A nonce on the request's own connection proves nothing about the
     * address: the server must dial it anew. */
    if (!match || match->c == dn_stream_conn(s)) {
        d->a->st.bad_dial_backs++;
        dn_stream_reset(s);
        return;
    }
    match->dialed_back = true;
    d->answered = true;
    d->a->db_conns[d->a->db_next] = dn_stream_conn(s);
    d->a->db_next = (d->a->db_next + 1) % MAX_DB_CONNS;
    dn_buf out = DN_BUF_INIT;
    if (dn__autonat_encode_dial_back_response(DN_AUTONAT_DBS_OK, &out) == 0 &&
        dn_stream_write(s, out.data, out.len) == 0)
        dn_stream_close_write(s); /* spec: the client MUST close after its response */
    else
        dn_stream_reset(s);
    dn_buf_free(&out);
}

static void dbin_eof(dn_stream *s, void *arg)
{
    db_in *d = arg;
    if (!d->answered)
        dn_stream_reset(s);
}

static void dbin_close(dn_stream *s, int status, void *arg)
{
    db_in *d = arg;
    dn_buf_free(&d->in);
    free(d);
}

static void serve_dial_back(dn_host *h, dn_stream *s, void *arg)
{
    db_in *d = calloc(1, sizeof *d);
    if (!d) {
        dn_stream_reset(s);
        return;
    }
    d->a = arg;
    static const dn_stream_callbacks cbs = {
        .on_data = dbin_data, .on_eof = dbin_eof, .on_close = dbin_close};
    dn_stream_set_callbacks(s, &cbs, d);
}

/* ---- candidates and the verdict ---- */

typedef struct cand_set {
    dn_autonat *a;
    dn_multiaddr m[MAX_TRACKED];
    size_t n;
    dn_multiaddr listen[16];
    size_t nlisten;
} cand_set;

static void cand_add(cand_set *cs, const dn_multiaddr *ma)
{
    tcp_addr t;
    if (cs->n == MAX_TRACKED || !tcp_addr_parse(ma, &t) || t.has_peer || t.port == 0)
        return;
    static const uint8_t zero[16];
    if (memcmp(t.ip, zero, ip_len(t.family)) == 0)
        return;
    if (!cs->a->cfg.allow_private && !ip_public(t.family, t.ip))
        return;
    for (size_t i = 0; i < cs->n; i++)
        if (ma_equal(&cs->m[i], ma))
            return;
    cs->m[cs->n++] = *ma;
}

/* How peers see us: the observed IP with each of our listen ports of its
 * family is where a NAT that keeps ports, or none, would let them in (go's
 * "thin waist" addresses). The observed port itself is left out: the
 * peerstore keeps one observed address per peer, from whichever of its
 * connections identified last, and that of an outbound connection is an
 * ephemeral port nobody can dial. A port-mapping NAT's address is known
 * from elsewhere (configuration, a mapping protocol): the caller adds it
 * with dn_autonat_add_candidate. */
static void cand_observed(dn_conn *c, void *arg)
{
    cand_set *cs = arg;
    const dn_peer_info *info = dn_host_peer(cs->a->h, dn_conn_remote_peer(c));
    dn_multiaddr obs;
    tcp_addr o;
    if (!info || dn_peer_info_observed(info, &obs) != 0 || !tcp_addr_parse(&obs, &o))
        return;
    for (size_t i = 0; i < cs->nlisten; i++) {
        tcp_addr l;
        if (!tcp_addr_parse(&cs->listen[i], &l) || l.family != o.family)
            continue;
        dn_multiaddr m;
        tcp_addr_build(o.family, o.ip, l.port, &m);
        cand_add(cs, &m);
    }
}

/* Returns when an address that went away is to be forgotten (UINT64_MAX:
 * none). */
static uint64_t refresh_candidates(dn_autonat *a)
{
    cand_set *cs = calloc(1, sizeof *cs);
    if (!cs)
        return UINT64_MAX;
    cs->a = a;
    cs->nlisten = dn_host_listen_addrs(a->h, cs->listen, 16);
    if (cs->nlisten > 16)
        cs->nlisten = 16;
    /* Listen addresses, an unspecified one as every interface address of
     * its family (link-local IPv6 needs a zone: left out). */
    uv_interface_address_t *ifs = NULL;
    int nifs = -1;
    for (size_t i = 0; i < cs->nlisten; i++) {
        tcp_addr l;
        static const uint8_t zero[16];
        if (!tcp_addr_parse(&cs->listen[i], &l))
            continue;
        if (memcmp(l.ip, zero, ip_len(l.family)) != 0) {
            cand_add(cs, &cs->listen[i]);
            continue;
        }
        if (nifs < 0 && uv_interface_addresses(&ifs, &nifs) != 0)
            nifs = 0;
        for (int k = 0; k < nifs; k++) {
            dn_multiaddr m;
            int fam = ifs[k].address.address4.sin_family;
            if (l.family == DN_MA_IP4 && fam == AF_INET)
                tcp_addr_build(DN_MA_IP4, (const uint8_t *)&ifs[k].address.address4.sin_addr,
                               l.port, &m);
            else if (l.family == DN_MA_IP6 && fam == AF_INET6 &&
                     ifs[k].address.address6.sin6_scope_id == 0)
                tcp_addr_build(DN_MA_IP6, (const uint8_t *)&ifs[k].address.address6.sin6_addr,
                               l.port, &m);
            else
                continue;
            cand_add(cs, &m);
        }
    }
    if (ifs)
        uv_free_interface_addresses(ifs, nifs);
    for (size_t i = 0; i < a->nextra; i++)
        cand_add(cs, &a->extra[i]);
    dn_host_foreach_conn(a->h, cand_observed, cs);

    for (size_t i = 0; i < a->nt; i++)
        a->t[i].seen = false;
    for (size_t i = 0; i < cs->n; i++) {
        tracked *t = find_tracked(a, &cs->m[i]);
        if (!t && a->nt < MAX_TRACKED) {
            t = &a->t[a->nt++];
            memset(t, 0, sizeof *t);
            t->ma = cs->m[i];
        }
        if (t)
            t->seen = true;
    }
    /* Forget addresses that are no longer ours, after a grace (a probe in
     * flight keeps its entry until it ends). */
    uint64_t now = now_ms(a), next = UINT64_MAX;
    size_t k = 0;
    for (size_t i = 0; i < a->nt; i++) {
        tracked *t = &a->t[i];
        if (t->seen)
            t->unseen_since = 0;
        else if (!t->unseen_since)
            t->unseen_since = now ? now : 1;
        if (!t->seen && !t->probing && now - t->unseen_since >= GONE_GRACE_MS)
            continue;
        if (!t->seen) {
            uint64_t at = t->unseen_since + GONE_GRACE_MS;
            next = at < next ? at : next;
        }
        a->t[k++] = *t;
    }
    a->nt = k;
    free(cs);
    return next;
}

static void recompute(dn_autonat *a)
{
    uint64_t now = now_ms(a), ttl = (uint64_t)a->cfg.probe_interval_ms * RESULT_TTL_FACTOR;
    bool pub = false, priv = false;
    unsigned k = a->cfg.confidence;
    for (size_t i = 0; i < a->nt; i++) {
        tracked *t = &a->t[i];
        size_t j = 0;
        unsigned s = 0, f = 0;
        for (size_t r = 0; r < t->nres; r++) {
            if (now - t->res[r].at > ttl)
                continue;
            t->res[j++] = t->res[r];
            s += t->res[r].outcome == OUT_OK;
            f += t->res[r].outcome == OUT_FAIL;
        }
        t->nres = j;
        /* "a few successes -> reachable, failures dominating -> not". */
        if (s >= k && s > f)
            t->state = DN_REACHABILITY_PUBLIC;
        else if (f >= k && f > s)
            t->state = DN_REACHABILITY_PRIVATE;
        else
            t->state = DN_REACHABILITY_UNKNOWN;
        pub |= t->state == DN_REACHABILITY_PUBLIC;
        priv |= t->state == DN_REACHABILITY_PRIVATE;
    }
    dn_reachability v = pub    ? DN_REACHABILITY_PUBLIC
                        : priv ? DN_REACHABILITY_PRIVATE
                               : DN_REACHABILITY_UNKNOWN;
    if (v == a->verdict)
        return;
    a->verdict = v;
    static const char *names[] = {"unknown", "public", "private"};
    DN_INFO("autonat", "reachability: %s", names[v]);
    if (a->cfg.on_reachability)
        a->cfg.on_reachability(a->cfg.arg, v);
}

/* ---- scheduling ---- */

typedef struct server_list {
    dn_autonat *a;
    dn_conn *c[MAX_SERVERS];
    size_t n;
} server_list;

/* Our own dial-backs (as a server) and the connections dial-backs came
 * in on (as a client) close soon: never ask a server over them. */
static bool is_dial_back_conn(dn_autonat *a, const dn_conn *c)
{
    for (srv_req *r = a->reqs; r; r = r->next)
        if (r->back == c)
            return true;
    for (size_t i = 0; i < MAX_DB_CONNS; i++)
        if (a->db_conns[i] == c)
            return true;
    return false;
}

static void collect_server(dn_conn *c, void *arg)
{
    server_list *sl = arg;
    if (is_dial_back_conn(sl->a, c))
        return;
    const dn_peerid *id = dn_conn_remote_peer(c);
    /* One connection per server: the oldest (the host lists the newest
     * first), which is the least likely to be a short-lived one. */
    for (size_t i = 0; i < sl->n; i++) {
        if (dn_peerid_equal(dn_conn_remote_peer(sl->c[i]), id)) {
            sl->c[i] = c;
            return;
        }
    }
    if (sl->n == MAX_SERVERS)
        return;
    const dn_peer_info *info = dn_host_peer(sl->a->h, id);
    for (size_t i = 0; info && i < info->nprotocols; i++) {
        if (strcmp(info->protocols[i], DN_AUTONAT_DIAL_REQUEST_PROTOCOL) == 0) {
            sl->c[sl->n++] = c;
            return;
        }
    }
}

static bool server_busy(dn_autonat *a, const dn_peerid *id)
{
    for (probe *p = a->probes; p; p = p->next)
        if (!p->done && dn_peerid_equal(&p->server, id))
            return true;
    return false;
}

/* Start what probes we may; returns when the next one falls due
 * (UINT64_MAX: only an event can bring one). */
static uint64_t run_probes(dn_autonat *a)
{
    uint64_t now = now_ms(a), next = UINT64_MAX;
    server_list *sl = calloc(1, sizeof *sl);
    if (!sl)
        return now + 1000;
    sl->a = a;
    dn_host_foreach_conn(a->h, collect_server, sl);
    for (size_t i = 0; i < a->nt; i++) {
        tracked *t = &a->t[i];
        if (t->probing || !t->seen)
            continue;
        /* The server to ask: one never asked about this address first,
         * else the one whose answer is oldest, once it is stale. */
        dn_conn *best = NULL;
        uint64_t best_at = UINT64_MAX;
        bool waiting = false;
        for (size_t j = 0; j < sl->n; j++) {
            const dn_peerid *id = dn_conn_remote_peer(sl->c[j]);
            if (in_backoff(a, id, now)) {
                waiting = true;
                continue;
            }
            uint64_t at = 0;
            for (size_t r = 0; r < t->nres; r++)
                if (dn_peerid_equal(&t->res[r].server, id))
                    at = t->res[r].at ? t->res[r].at : 1;
            if (at && now - at < a->cfg.probe_interval_ms) {
                uint64_t due = at + a->cfg.probe_interval_ms;
                next = due < next ? due : next;
                continue;
            }
            if (server_busy(a, id)) {
                waiting = true;
                continue;
            }
            if (at < best_at) {
                best_at = at;
                best = sl->c[j];
            }
        }
        if (best && a->nprobes < MAX_PROBES && probe_start(a, t, best) == 0)
            continue;
        if (best || waiting)
            next = now + 1000 < next ? now + 1000 : next;
    }
    free(sl);
    return next;
}

static void on_tick(uv_timer_t *timer)
{
    dn_autonat *a = timer->data;
    a->timer_at = 0;
    uint64_t now = now_ms(a), next = UINT64_MAX;
    /* Deadlines: a request or probe that overstays is reset (the stream's
     * on_close tidies up). */
    for (srv_req *r = a->reqs, *rn; r; r = rn) {
        rn = r->next;
        if (r->deadline > now) {
            next = r->deadline < next ? r->deadline : next;
            continue;
        }
        r->refs++;
        if (r->st == RQ_DIAL && !r->answered)
            dialback_finish(r,
                            r->back ? DN_AUTONAT_DS_E_DIAL_BACK_ERROR : DN_AUTONAT_DS_E_DIAL_ERROR);
        else if (r->s)
            dn_stream_reset(r->s);
        r->deadline = now + LINGER_MS;
        rn = r->next;
        req_release(r);
    }
    for (probe *p = a->probes, *pn; p; p = pn) {
        pn = p->next;
        if (p->deadline > now) {
            next = p->deadline < next ? p->deadline : next;
            continue;
        }
        probe_finish(p, -1);
        if (p->s)
            dn_stream_reset(p->s); /* frees p */
    }
    if (a->cfg.client) {
        uint64_t gone = refresh_candidates(a);
        next = gone < next ? gone : next;
        recompute(a);
        uint64_t due = run_probes(a);
        next = due < next ? due : next;
    }
    if (next != UINT64_MAX)
        arm(a, next > now ? next - now : 0);
}

/* Make the tick run within delay_ms (sooner if already due sooner). */
static void arm(dn_autonat *a, uint64_t delay_ms)
{
    uint64_t at = now_ms(a) + delay_ms;
    if (a->timer_at && a->timer_at <= at)
        return;
    a->timer_at = at;
    uv_timer_start(&a->timer, on_tick, delay_ms, 0);
}

static void on_host_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    dn_autonat *a = arg;
    switch (ev) {
    case DN_CONN_EV_CLOSED:
        for (srv_req *r = a->reqs; r; r = r->next)
            if (r->back == c)
                r->back = NULL;
        for (probe *p = a->probes; p; p = p->next)
            if (p->c == c)
                p->c = NULL;
        for (size_t i = 0; i < MAX_DB_CONNS; i++)
            if (a->db_conns[i] == c)
                a->db_conns[i] = NULL;
        return;
    case DN_CONN_EV_IDENTIFIED:    /* maybe a new server, a new observed address */
    case DN_HOST_EV_ADDRS_CHANGED: /* new listen addresses */
        if (a->cfg.client)
            arm(a, 100); /* a short debounce: events come in bursts */
        return;
    default: return;
    }
}

/* ---- lifecycle and API ---- */

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void autonat_free(void *arg)
{
    dn_autonat *a = arg;
    /* The host closed every stream first (their on_close freed probes and
     * requests); whatever is left has no stream to wait for. */
    while (a->probes)
        probe_free(a->probes);
    while (a->reqs) {
        srv_req *r = a->reqs;
        a->reqs = r->next;
        dn_buf_free(&r->in);
        dn_buf_free(&r->bin);
        free(r);
    }
    dn_buf_free(&a->chunk);
    uv_close((uv_handle_t *)&a->timer, timer_closed);
}

void dn_autonat_config_init(dn_autonat_config *cfg)
{
    *cfg = (dn_autonat_config)DN_AUTONAT_CONFIG_INIT;
}

int dn_autonat_attach(dn_host *h, const dn_autonat_config *cfg, dn_autonat **out)
{
    if (!h || !cfg || cfg->size == 0 || cfg->size > sizeof(dn_autonat_config))
        return DN_EINVAL;
    dn_autonat *a = calloc(1, sizeof *a);
    if (!a)
        return DN_ENOMEM;
    memcpy(&a->cfg, cfg, cfg->size);
    a->cfg.size = sizeof a->cfg;
    a->h = h;
    if (!a->cfg.confidence)
        a->cfg.confidence = DEFAULT_CONFIDENCE;
    if (!a->cfg.probe_interval_ms)
        a->cfg.probe_interval_ms = DEFAULT_INTERVAL_MS;
    if (!a->cfg.timeout_ms)
        a->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!a->cfg.max_dial_backs)
        a->cfg.max_dial_backs = DEFAULT_MAX_DIAL_BACKS;
    if (!a->cfg.max_requests_per_peer_per_min)
        a->cfg.max_requests_per_peer_per_min = DEFAULT_PEER_RPM;
    if (!a->cfg.max_requests_per_min)
        a->cfg.max_requests_per_min = DEFAULT_RPM;
    static const uint8_t zeros[DN_AUTONAT_DIAL_DATA_CHUNK];
    dn__autonat_msg m = {.type = DN_AUTONAT_DIAL_DATA_RESPONSE};
    m.u.dial_data_response.data = zeros;
    m.u.dial_data_response.len = sizeof zeros;
    int rc = dn__autonat_encode(&m, &a->chunk);
    if (rc) {
        free(a);
        return rc;
    }
    uv_timer_init(dn_host_loop(h), &a->timer);
    a->timer.data = a;
    uv_unref((uv_handle_t *)&a->timer); /* never what keeps a loop running */
    if ((rc = dn_host_add_cleanup(h, autonat_free, a)) != 0) {
        dn_buf_free(&a->chunk);
        uv_close((uv_handle_t *)&a->timer, timer_closed);
        return rc;
    }
    if ((rc = dn_host_add_observer(h, on_host_event, a)) != 0)
        return rc;
    if (a->cfg.server) {
        if ((rc = dn_host_set_handler(h, DN_AUTONAT_DIAL_REQUEST_PROTOCOL, serve_dial_request,
                                      a)) != 0 ||
            (rc = dn_host_set_protocol_limit(h, DN_AUTONAT_DIAL_REQUEST_PROTOCOL,
                                             MAX_REQUESTS * 2)) != 0)
            return rc;
    }
    if (a->cfg.client) {
        if ((rc = dn_host_set_handler(h, DN_AUTONAT_DIAL_BACK_PROTOCOL, serve_dial_back, a)) != 0 ||
            (rc = dn_host_set_protocol_limit(h, DN_AUTONAT_DIAL_BACK_PROTOCOL, 16)) != 0)
            return rc;
        arm(a, 0);
    }
    if (out)
        *out = a;
    return 0;
}

dn_reachability dn_autonat_reachability(const dn_autonat *a)
{
    return a->verdict;
}

size_t dn_autonat_reachable_addrs(const dn_autonat *a, dn_multiaddr *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < a->nt; i++) {
        if (a->t[i].state != DN_REACHABILITY_PUBLIC)
            continue;
        if (n < max)
            out[n] = a->t[i].ma;
        n++;
    }
    return n;
}

void dn_autonat_probe_now(dn_autonat *a)
{
    /* Forget when each server last answered, so all are asked again. */
    for (size_t i = 0; i < a->nt; i++)
        for (size_t r = 0; r < a->t[i].nres; r++)
            a->t[i].res[r].at =
                now_ms(a) > a->cfg.probe_interval_ms ? now_ms(a) - a->cfg.probe_interval_ms : 1;
    memset(a->backoff, 0, sizeof a->backoff);
    if (a->cfg.client)
        arm(a, 0);
}

int dn_autonat_add_candidate(dn_autonat *a, const dn_multiaddr *ma)
{
    tcp_addr t;
    if (!tcp_addr_parse(ma, &t) || t.has_peer)
        return DN_EINVAL;
    for (size_t i = 0; i < a->nextra; i++)
        if (ma_equal(&a->extra[i], ma))
            return 0;
    if (a->nextra == MAX_EXTRA)
        return DN_ELIMIT;
    a->extra[a->nextra++] = *ma;
    if (a->cfg.client)
        arm(a, 0);
    return 0;
}

void dn_autonat_get_stats(const dn_autonat *a, dn_autonat_stats *out)
{
    *out = a->st;
}
