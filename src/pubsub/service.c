/* The pubsub service (include/dmsnet/pubsub.h): the sans-I/O router
 * (router.h) on the host's streams, through the host's public API only.
 *
 * Streams (DESIGN.md, gossipsub): one long-lived stream per direction per
 * peer. We write only on the stream we opened (outbound) and read only the
 * peer's (inbound); a newer inbound stream replaces the older one, which we
 * end with close_write. We never reset a pubsub stream of a peer we keep:
 * js-libp2p drops the whole peer (and ignores its later streams) when its
 * read side errors.
 *
 * Peers: a peer enters when identify says it speaks one of our protocols
 * (we open our stream with the best one both speak) or when it opens a
 * pubsub stream to us first. It leaves the router when its last
 * connection closes. Our stream dying while a connection is left is
 * reopened, at most MAX_REOPEN times in a row.
 *
 * Backpressure: frames go to the stream while its queue is under the host's
 * low-water mark; the rest wait in a per-peer queue of whole frames,
 * bounded by max_queue_per_peer. Past it a frame is dropped and counted:
 * a slow peer costs a bounded amount of memory and loses messages (it can
 * get them back by gossip), never the other peers'. */
#include "dmsnet/pubsub.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "proto/peer_record.h"
#include "pubsub/router.h"
#include "pubsub/service.h"

#define PROTO_MESHSUB_12 "/meshsub/1.2.0"
#define PROTO_MESHSUB_11 "/meshsub/1.1.0"
#define PROTO_MESHSUB_10 "/meshsub/1.0.0"
#define PROTO_FLOODSUB "/floodsub/1.0.0"

#define DEFAULT_HEARTBEAT_MS 1000u
#define DEFAULT_MAX_PEERS 4096u
#define DEFAULT_QUEUE (4u << 20)
#define MAX_REOPEN 5     /* failed opens of our stream in a row before we give up */
#define MAX_STALE_IN 4   /* replaced inbound streams still ending, per peer */
#define MAX_PX_DIALS 8   /* dials to PX peers in flight (js: 8 connectors) */
#define PX_DIAL_BELOW 12 /* dial PX peers only while we have fewer pubsub peers (D_hi) */

typedef struct ps_peer ps_peer;

typedef struct frame {
    struct frame *next;
    dn_buf b;
} frame;

/* Our outbound stream; outlives nothing: p is cleared when the peer goes. */
typedef struct ps_out {
    ps_peer *p;
    dn_stream *s; /* NULL until opened */
    bool dead;    /* closing: no more writes */
} ps_out;

/* An inbound stream of the peer (the current one, or one being replaced). */
typedef struct ps_in {
    ps_peer *p;
    dn_stream *s;
    dn__pubsub_framer fr;
    bool current; /* the stream we read; false: replaced, ignored, ending */
    bool failed;  /* framing broke: ignored, ending */
} ps_in;

struct ps_peer {
    ps_peer *hnext; /* hash chain */
    dn_pubsub *ps;
    dn_peerid id;
    dn_conn *conn; /* the connection our stream uses (NULL: none usable) */
    dn__pubsub_proto proto;
    ps_out *out;                /* NULL: no stream (opening or open: non-NULL) */
    ps_in *in;                  /* current inbound stream */
    ps_in *stale[MAX_STALE_IN]; /* replaced ones the peer has not ended yet, oldest first */
    unsigned nstale;
    frame *qhead, *qtail;
    size_t qbytes;
    unsigned fails;     /* opens of our stream that failed in a row */
    uint64_t out_since; /* loop time our stream was opened */
    bool reannounce;    /* the next stream is not the first: resend subscriptions */
};

typedef struct ps_topic ps_topic;

struct dn_pubsub_sub {
    dn_pubsub_sub *next;
    ps_topic *t;
    dn_pubsub_msg_cb cb;
    void *arg;
    bool dead; /* unsubscribed during a dispatch: freed after it */
};

struct ps_topic {
    ps_topic *next;
    dn_pubsub *ps;
    bool router_sub; /* the router is subscribed */
    char *name;
    size_t len;
    dn_pubsub_sub *subs;
    size_t nsubs; /* live ones */
    dn_pubsub_validator vfn;
    void *varg;
};

struct dn_pubsub {
    dn_host *h;
    dn_pubsub_config cfg;
    dn__pubsub_router *r;
    uv_timer_t hb;
    ps_peer **tab;
    size_t ntab, npeers;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    ps_topic *topics;
    unsigned dispatching; /* deliveries on the stack: unsubscribe defers frees */
    bool in_router;       /* a router call (and so a validator) is on the stack */
    unsigned px_dials;
    uint64_t frames_dropped, rpcs_bad_frame;
    bool closed;
};

static uint64_t now_ms(dn_pubsub *ps)
{
    return uv_now(dn_host_loop(ps->h));
}

/* ---- protocols ---- */

typedef struct proto_ent {
    const char *name;
    dn__pubsub_proto proto;
} proto_ent;

/* Best first. */
static const proto_ent protos[] = {
    {PROTO_MESHSUB_12, DN_PUBSUB_MESHSUB_12},
    {PROTO_MESHSUB_11, DN_PUBSUB_MESHSUB_11},
    {PROTO_MESHSUB_10, DN_PUBSUB_MESHSUB_10},
    {PROTO_FLOODSUB, DN_PUBSUB_FLOODSUB},
};
#define NPROTOS (sizeof protos / sizeof *protos)

static bool proto_ours(const dn_pubsub *ps, const proto_ent *e)
{
    return !ps->cfg.floodsub_only || e->proto == DN_PUBSUB_FLOODSUB;
}

static const proto_ent *proto_by_name(const dn_pubsub *ps, const char *name)
{
    for (size_t i = 0; i < NPROTOS; i++)
        if (proto_ours(ps, &protos[i]) && strcmp(protos[i].name, name) == 0)
            return &protos[i];
    return NULL;
}

static const proto_ent *proto_by_id(dn__pubsub_proto p)
{
    for (size_t i = 0; i < NPROTOS; i++)
        if (protos[i].proto == p)
            return &protos[i];
    return NULL;
}

/* The best protocol of ours the peer announced (identify), below `below`
 * (NULL: any). */
static const proto_ent *proto_best(const dn_pubsub *ps, const dn_peer_info *info,
                                   const proto_ent *below)
{
    if (!info)
        return NULL;
    size_t start = below ? (size_t)(below - protos) + 1 : 0;
    for (size_t i = start; i < NPROTOS; i++) {
        if (!proto_ours(ps, &protos[i]))
            continue;
        for (size_t k = 0; k < info->nprotocols; k++)
            if (strcmp(info->protocols[k], protos[i].name) == 0)
                return &protos[i];
    }
    return NULL;
}

/* ---- peers ---- */

static size_t hslot(const dn_pubsub *ps, const dn_peerid *id)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, id->bytes, id->len, ps->hkey);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)(v & (ps->ntab - 1));
}

static ps_peer *peer_find(const dn_pubsub *ps, const dn_peerid *id)
{
    if (!ps->ntab)
        return NULL;
    for (ps_peer *p = ps->tab[hslot(ps, id)]; p; p = p->hnext)
        if (dn_peerid_equal(&p->id, id))
            return p;
    return NULL;
}

static int tab_grow(dn_pubsub *ps)
{
    size_t n = ps->ntab ? ps->ntab * 2 : 64;
    ps_peer **t = calloc(n, sizeof *t);
    if (!t)
        return DN_ENOMEM;
    ps_peer **old = ps->tab;
    size_t oldn = ps->ntab;
    ps->tab = t;
    ps->ntab = n;
    for (size_t i = 0; i < oldn; i++)
        for (ps_peer *p = old[i], *nx; p; p = nx) {
            nx = p->hnext;
            size_t s = hslot(ps, &p->id);
            p->hnext = t[s];
            t[s] = p;
        }
    free(old);
    return 0;
}

static void queue_clear(dn_pubsub *ps, ps_peer *p, bool count)
{
    while (p->qhead) {
        frame *f = p->qhead;
        p->qhead = f->next;
        if (count)
            ps->frames_dropped++;
        dn_buf_free(&f->b);
        free(f);
    }
    p->qtail = NULL;
    p->qbytes = 0;
}

static void in_detach(ps_in *in);

static void peer_free(dn_pubsub *ps, ps_peer *p)
{
    queue_clear(ps, p, false);
    if (p->out) {
        p->out->p = NULL;
        if (p->out->s && !p->out->dead)
            dn_stream_close_write(p->out->s);
        p->out = NULL;
    }
    if (p->in) {
        ps_in *in = p->in;
        p->in = NULL;
        in_detach(in);
    }
    for (unsigned i = 0; i < p->nstale; i++)
        in_detach(p->stale[i]);
    free(p);
}

/* The peer's last connection is gone (or the service ends). */
static void peer_remove(dn_pubsub *ps, ps_peer *p)
{
    for (ps_peer **pp = &ps->tab[hslot(ps, &p->id)]; *pp; pp = &(*pp)->hnext)
        if (*pp == p) {
            *pp = p->hnext;
            break;
        }
    ps->npeers--;
    ps->in_router = true;
    dn__pubsub_remove_peer(ps->r, &p->id, now_ms(ps));
    ps->in_router = false;
    peer_free(ps, p);
}

/* ---- output ---- */

static void peer_pump(ps_peer *p)
{
    ps_out *o = p->out;
    if (!o || !o->s || o->dead)
        return;
    while (p->qhead) {
        /* Keep the stream's own queue short: what waits, waits here,
         * where it is bounded and counted. on_writable follows. */
        if (dn_stream_queued(o->s) >= DN_STREAM_QUEUE_LOW)
            return;
        frame *f = p->qhead;
        int rc = dn_stream_write(o->s, f->b.data, f->b.len);
        if (rc == DN_ELIMIT)
            return; /* a budget is full: on_writable when there is room */
        if (rc)
            return; /* closed: on_close follows and reopens */
        p->qhead = f->next;
        if (!p->qhead)
            p->qtail = NULL;
        p->qbytes -= f->b.len;
        dn_buf_free(&f->b);
        free(f);
    }
}

/* Queue one frame for the peer (takes the buffer). */
static void peer_send(dn_pubsub *ps, ps_peer *p, dn_buf *b)
{
    {
        char name[16];
        DN_TRACE("pubsub", "frame of %zu to %s (out %p s %p q %zu fails %u)", b->len,
                 dn_peerid_short(&p->id, name), (void *)p->out, p->out ? (void *)p->out->s : NULL,
                 p->qbytes, p->fails);
    }
    if (p->qbytes + b->len > ps->cfg.max_queue_per_peer || (!p->out && p->fails >= MAX_REOPEN)) {
        ps->frames_dropped++;
        dn_buf_free(b);
        return;
    }
    frame *f = malloc(sizeof *f);
    if (!f) {
        ps->frames_dropped++;
        dn_buf_free(b);
        return;
    }
    f->next = NULL;
    f->b = *b;
    dn_buf_init(b);
    if (p->qtail)
        p->qtail->next = f;
    else
        p->qhead = f;
    p->qtail = f;
    p->qbytes += f->b.len;
    peer_pump(p);
}

/* ---- deliveries ---- */

static ps_topic *topic_find(const dn_pubsub *ps, const uint8_t *name, size_t len)
{
    for (ps_topic *t = ps->topics; t; t = t->next)
        if (t->len == len && !memcmp(t->name, name, len))
            return t;
    return NULL;
}

static uint64_t seqno_of(const dn__pubsub_message *m)
{
    uint64_t v = 0;
    for (size_t i = 0; i < m->seqno.len && i < 8; i++)
        v = v << 8 | m->seqno.p[i];
    return v;
}

static void fill_msg(dn_pubsub_message *o, const ps_topic *t, const dn__pubsub_message *m,
                     const dn_peerid *author, const dn_peerid *via, const uint8_t *id, size_t idlen)
{
    o->topic = t->name;
    o->from = *author;
    o->via = *via;
    o->seqno = seqno_of(m);
    o->data = m->data.len ? m->data.p : (const uint8_t *)"";
    o->len = m->data.len;
    o->id = id;
    o->idlen = idlen;
}

/* Free subscriptions and topics left dead by unsubscribes made while a
 * dispatch was on the stack. */
static void topics_gc(dn_pubsub *ps)
{
    for (ps_topic **tp = &ps->topics; *tp;) {
        ps_topic *t = *tp;
        for (dn_pubsub_sub **sp = &t->subs; *sp;) {
            dn_pubsub_sub *s = *sp;
            if (s->dead) {
                *sp = s->next;
                free(s);
            } else {
                sp = &s->next;
            }
        }
        if (!t->subs && !t->vfn && !t->router_sub) {
            *tp = t->next;
            free(t->name);
            free(t);
        } else {
            tp = &t->next;
        }
    }
}

static void dispatch(dn_pubsub *ps, dn__pubsub_delivery *d)
{
    ps_topic *t = topic_find(ps, d->msg.topic.p, d->msg.topic.len);
    if (!t)
        return;
    dn_pubsub_message m;
    fill_msg(&m, t, &d->msg, &d->author, &d->via, d->id, d->idlen);
    ps->dispatching++;
    for (dn_pubsub_sub *s = t->subs; s; s = s->next)
        if (!s->dead && s->cb)
            s->cb(s->arg, &m);
    ps->dispatching--;
}

static void px_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    dn_pubsub *ps = arg;
    ps->px_dials--;
}

/* A peer offered by PX: its signed record (when it came) gives addresses
 * for the peerstore; a few are dialled while we have few peers. */
static void px_take(dn_pubsub *ps, const dn__pubsub_pxpeer *x)
{
    if (dn_host_peer(ps->h, &x->peer) && dn_host_peer(ps->h, &x->peer)->connections)
        return;
    if (x->signed_record.len) {
        dn_peer_record *rec = malloc(sizeof *rec);
        if (!rec)
            return;
        if (dn__peer_record_open(x->signed_record.data, x->signed_record.len, &x->peer, NULL,
                                 rec) == 0 &&
            rec->naddrs) {
            dn_peer_update u = {.set_addrs = true, .addrs = rec->addrs, .naddrs = rec->naddrs};
            dn_host_peer_update(ps->h, &x->peer, &u);
        }
        free(rec);
    }
    const dn_peer_info *info = dn_host_peer(ps->h, &x->peer);
    if (!info || !info->naddrs || ps->px_dials >= MAX_PX_DIALS || ps->npeers >= PX_DIAL_BELOW)
        return;
    if (dn_host_dial_peer(ps->h, &x->peer, px_dialed, ps) == 0)
        ps->px_dials++;
}

static void drain(dn_pubsub *ps);

/* The router's subscription follows ours: subscribed while a subscription
 * lives. Not while the router is mid-call (a validator): the next drain. */
static int topic_sync(dn_pubsub *ps, ps_topic *t)
{
    if (ps->in_router || ps->closed || (t->nsubs > 0) == t->router_sub)
        return 0;
    int rc;
    ps->in_router = true;
    if (t->nsubs)
        rc = dn__pubsub_subscribe(ps->r, t->name, now_ms(ps));
    else
        rc = dn__pubsub_unsubscribe(ps->r, t->name, now_ms(ps));
    ps->in_router = false;
    if (!rc)
        t->router_sub = t->nsubs > 0;
    drain(ps);
    return rc;
}

/* Collect the router's outputs: frames to their peers, deliveries to the
 * subscriptions, PX peers to the peerstore. Everything is taken out of the
 * router before any callback runs, so a callback may call back in (publish,
 * subscribe, unsubscribe): the nested call drains its own outputs. */
static void drain(dn_pubsub *ps)
{
    size_t ns, nd, npx;
    dn__pubsub_send *s = dn__pubsub_sends(ps->r, &ns);
    for (size_t i = 0; i < ns; i++) {
        ps_peer *p = peer_find(ps, &s[i].to);
        if (p)
            peer_send(ps, p, &s[i].frame); /* takes the buffer */
    }
    dn__pubsub_pxpeer *px = dn__pubsub_px_peers(ps->r, &npx);
    for (size_t i = 0; i < npx; i++)
        px_take(ps, &px[i]);
    dn__pubsub_delivery *d = dn__pubsub_deliveries(ps->r, &nd);
    dn__pubsub_delivery *mine = NULL;
    if (nd && (mine = malloc(nd * sizeof *mine))) {
        /* The decoded views point into raw's heap block: moving the
         * dn_buf keeps them valid. */
        memcpy(mine, d, nd * sizeof *mine);
        for (size_t i = 0; i < nd; i++)
            dn_buf_init(&d[i].raw);
    }
    dn__pubsub_clear_outputs(ps->r);
    if (mine) {
        for (size_t i = 0; i < nd; i++) {
            dispatch(ps, &mine[i]);
            dn_buf_free(&mine[i].raw);
        }
        free(mine);
    }
    for (ps_topic *t = ps->topics; t; t = t->next)
        if ((t->nsubs > 0) != t->router_sub) {
            topic_sync(ps, t); /* drains again; at most once per topic */
            break;
        }
    if (!ps->dispatching)
        topics_gc(ps);
}

/* ---- validation hook ---- */

static dn__pubsub_verdict validate_hook(void *ud, const dn__pubsub_message *m,
                                        const dn_peerid *author, const dn_peerid *via)
{
    dn_pubsub *ps = ud;
    ps_topic *t = topic_find(ps, m->topic.p, m->topic.len);
    if (!t || !t->vfn)
        return DN_PUBSUB_ACCEPT;
    uint8_t id[DN_PUBSUB_MSGID_MAX];
    int idlen = dn__pubsub_msgid(
        m, ps->cfg.go_message_ids ? DN_PUBSUB_MSGID_GO : DN_PUBSUB_MSGID_JS, id, sizeof id);
    dn_pubsub_message pm;
    fill_msg(&pm, t, m, author, via, id, idlen > 0 ? (size_t)idlen : 0);
    int v = t->vfn(t->varg, &pm);
    return v == 0 ? DN_PUBSUB_ACCEPT : v < 0 ? DN_PUBSUB_REJECT : DN_PUBSUB_IGNORE;
}

/* ---- our outbound stream ---- */

static void out_open(dn_pubsub *ps, ps_peer *p);

static void out_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    (void)s, (void)data, (void)len, (void)arg; /* the peer writes on its own stream */
}

static void out_eof(dn_stream *s, void *arg)
{
    /* The peer ended its side of our stream (it closes it when it drops
     * us, or replaces it): end ours too; on_close reopens if we still
     * have a connection. */
    ps_out *o = arg;
    o->dead = true;
    dn_stream_close_write(s);
}

static void out_writable(dn_stream *s, void *arg)
{
    ps_out *o = arg;
    if (o->p)
        peer_pump(o->p);
}

static void out_close(dn_stream *s, int status, void *arg)
{
    ps_out *o = arg;
    ps_peer *p = o->p;
    free(o);
    if (!p || p->out != o)
        return;
    p->out = NULL;
    dn_pubsub *ps = p->ps;
    if (status == DN_ENEGOTIATE) {
        /* The peer refused the protocol identify said it speaks: try the
         * next one down. */
        const proto_ent *e = proto_best(ps, dn_host_peer(ps->h, &p->id), proto_by_id(p->proto));
        if (!e) {
            p->fails = MAX_REOPEN;
            queue_clear(ps, p, true);
            return;
        }
        p->proto = e->proto;
        dn__pubsub_set_peer_proto(ps->r, &p->id, e->proto);
    } else {
        p->fails++;
    }
    p->reannounce = true;
    if (p->conn && p->fails < MAX_REOPEN)
        out_open(ps, p);
    else if (p->fails >= MAX_REOPEN)
        queue_clear(ps, p, true);
}

static const dn_stream_callbacks out_cbs = {
    .on_data = out_data, .on_eof = out_eof, .on_writable = out_writable, .on_close = out_close};

static void out_opened(dn_stream *s, int status, void *arg)
{
    ps_out *o = arg;
    ps_peer *p = o->p;
    if (!p || p->out != o) {
        free(o);
        if (s)
            dn_stream_close_write(s); /* nobody writes on it: end it cleanly */
        return;
    }
    if (status || !s) {
        p->out = NULL;
        free(o);
        p->fails++;
        /* A later heartbeat tries again (bounded) while a connection is left. */
        if (p->fails >= MAX_REOPEN)
            queue_clear(p->ps, p, true);
        return;
    }
    o->s = s;
    dn_stream_set_callbacks(s, &out_cbs, o);
    dn_pubsub *ps = p->ps;
    p->out_since = now_ms(ps);
    if (p->reannounce) {
        /* A new stream is a new start for the peer's reader. */
        p->reannounce = false;
        ps->in_router = true;
        dn__pubsub_peer_reannounce(ps->r, &p->id, now_ms(ps));
        ps->in_router = false;
        drain(ps); /* may dispatch nothing: reannounce only sends */
    }
    peer_pump(p);
}

static void out_open(dn_pubsub *ps, ps_peer *p)
{
    if (p->out || !p->conn)
        return;
    const proto_ent *e = proto_by_id(p->proto);
    ps_out *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->p = p;
    p->out = o;
    int rc = dn_conn_open_stream(p->conn, e->name, out_opened, o);
    if (rc) {
        p->out = NULL;
        free(o);
        p->fails++;
        if (p->fails >= MAX_REOPEN)
            queue_clear(ps, p, true);
    }
}

/* ---- inbound streams ---- */

static void in_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    ps_in *in = arg;
    ps_peer *p = in->p;
    if (!p || !in->current || in->failed)
        return; /* replaced or broken: what still comes is dropped */
    dn_pubsub *ps = p->ps;
    int rc = dn__pubsub_framer_feed(&in->fr, data, len);
    for (;;) {
        const uint8_t *f;
        size_t flen;
        if (rc == 0)
            rc = dn__pubsub_framer_next(&in->fr, &f, &flen);
        if (rc <= 0)
            break;
        ps->in_router = true;
        /* A malformed RPC is the router's to count (P7); the framing is
         * intact, so the next frame is read as usual. */
        dn__pubsub_handle_rpc(ps->r, &p->id, f, flen, now_ms(ps));
        ps->in_router = false;
        drain(ps);
        /* A callback may have closed things: the peer is still ours while
         * this stream is open (it leaves only with its connection). */
        if (!in->p || !in->current)
            return;
        rc = 0;
    }
    if (rc < 0) {
        /* Framing is lost (a length past DN_PUBSUB_RPC_MAX, a bad prefix):
         * stop reading it and end our side; the peer keeps its other state
         * and may open a new stream. */
        char name[16];
        DN_LOG_LIMITED(DN_LOG_DEBUG, "pubsub", "bad frame from %s: %s",
                       dn_peerid_short(&p->id, name), dn_strerror(rc));
        ps->rpcs_bad_frame++;
        in->failed = true;
        dn__pubsub_framer_close(&in->fr);
        dn_stream_close_write(s);
    }
}

static void stale_remove(ps_peer *p, ps_in *in)
{
    for (unsigned i = 0; i < p->nstale; i++)
        if (p->stale[i] == in) {
            memmove(&p->stale[i], &p->stale[i + 1], (p->nstale - i - 1) * sizeof *p->stale);
            p->nstale--;
            return;
        }
}

/* The stream no longer belongs to the peer's state. */
static void in_unlink(ps_in *in)
{
    ps_peer *p = in->p;
    if (!p)
        return;
    if (p->in == in)
        p->in = NULL;
    else
        stale_remove(p, in);
    in->p = NULL;
    in->current = false;
}

static void in_eof(dn_stream *s, void *arg)
{
    /* The peer ended its stream: end ours. It keeps its place in the
     * router (it may open another stream; its connection decides). */
    in_unlink(arg);
    dn_stream_close_write(s);
}

static void in_close(dn_stream *s, int status, void *arg)
{
    ps_in *in = arg;
    in_unlink(in);
    dn__pubsub_framer_close(&in->fr);
    free(in);
}

/* No longer read: end our side, let the peer end its. */
static void in_detach(ps_in *in)
{
    in->current = false;
    in->p = NULL;
    dn__pubsub_framer_close(&in->fr);
    if (in->s)
        dn_stream_close_write(in->s);
}

static const dn_stream_callbacks in_cbs = {
    .on_data = in_data, .on_eof = in_eof, .on_close = in_close};

static bool ip_of(const dn_multiaddr *ma, uint8_t *ip, size_t *len)
{
    size_t off = 0;
    dn_ma_component c;
    while (dn_multiaddr_next(ma, &off, &c) == 1)
        if ((c.code == DN_MA_IP4 && c.value_len == 4) ||
            (c.code == DN_MA_IP6 && c.value_len == 16)) {
            memcpy(ip, c.value, c.value_len);
            *len = c.value_len;
            return true;
        }
    return false;
}

/* The peer enters the router (with our stream's protocol) and we open our
 * stream to it. */
static ps_peer *peer_add(dn_pubsub *ps, dn_conn *c, const proto_ent *e)
{
    const dn_peerid *id = dn_conn_remote_peer(c);
    if (ps->npeers >= ps->cfg.max_peers)
        return NULL;
    if (ps->npeers >= ps->ntab && tab_grow(ps))
        return NULL;
    ps_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ps = ps;
    p->id = *id;
    p->conn = c;
    p->proto = e->proto;
    ps->in_router = true;
    int rc = dn__pubsub_add_peer(ps->r, id, e->proto, dn_conn_is_outbound(c), now_ms(ps));
    ps->in_router = false;
    if (rc) {
        free(p);
        return NULL;
    }
    size_t s = hslot(ps, id);
    p->hnext = ps->tab[s];
    ps->tab[s] = p;
    ps->npeers++;
    uint8_t ip[16];
    size_t iplen = 0;
    if (ip_of(dn_conn_remote_addr(c), ip, &iplen))
        dn__pubsub_set_peer_ip(ps->r, id, ip, iplen); /* P6 */
    char name[16];
    DN_DEBUG("pubsub", "peer %s joins (%s)", dn_peerid_short(id, name), e->name);
    drain(ps); /* our subscriptions, queued until the stream is there */
    out_open(ps, p);
    return p;
}

static void stream_handler(dn_host *h, dn_stream *s, void *arg)
{
    dn_pubsub *ps = arg;
    dn_conn *c = dn_stream_conn(s);
    const dn_peerid *id = dn_conn_remote_peer(c);
    ps_peer *p = peer_find(ps, id);
    if (!p) {
        /* The peer was quicker than identify (or does not identify):
         * its stream says what it speaks. */
        const dn_peer_info *info = dn_host_peer(h, id);
        const proto_ent *e = info && info->identified ? proto_best(ps, info, NULL) : NULL;
        if (!e)
            e = proto_by_name(ps, dn_stream_protocol(s));
        if (!e || !(p = peer_add(ps, c, e))) {
            dn_stream_reset(s); /* over max_peers: refused, not a peer of ours */
            return;
        }
    }
    ps_in *in = calloc(1, sizeof *in);
    if (!in) {
        dn_stream_reset(s);
        return;
    }
    in->p = p;
    in->s = s;
    in->current = true;
    dn__pubsub_framer_init(&in->fr, DN_PUBSUB_RPC_MAX);
    dn_stream_set_callbacks(s, &in_cbs, in);
    ps_in *old = p->in;
    p->in = in;
    if (old) {
        /* A newer inbound stream replaces the old one (as js and go do):
         * we end our side of the old one and ignore what still comes on
         * it. A peer that keeps opening streams and never ends the old
         * ones gets the oldest reset past a few. The lists are right
         * before any close: a close may run on_close at once. */
        old->current = false;
        dn__pubsub_framer_close(&old->fr);
        ps_in *oldest = NULL;
        if (p->nstale == MAX_STALE_IN) {
            oldest = p->stale[0];
            stale_remove(p, oldest);
            oldest->p = NULL;
        }
        p->stale[p->nstale++] = old;
        dn_stream_close_write(old->s);
        if (oldest)
            dn_stream_reset(oldest->s);
    }
    if (!p->conn)
        p->conn = c;
    if (!p->out && p->fails < MAX_REOPEN)
        out_open(ps, p);
}

/* ---- host events ---- */

typedef struct conn_search {
    const dn_peerid *id;
    dn_conn *skip, *found;
} conn_search;

static void conn_match(dn_conn *c, void *arg)
{
    conn_search *cs = arg;
    if (!cs->found && c != cs->skip && dn_peerid_equal(dn_conn_remote_peer(c), cs->id))
        cs->found = c;
}

static void on_identified(dn_pubsub *ps, dn_conn *c)
{
    const dn_peerid *id = dn_conn_remote_peer(c);
    ps_peer *p = peer_find(ps, id);
    if (p) {
        if (!p->conn)
            p->conn = c;
        if (!p->out && p->fails < MAX_REOPEN)
            out_open(ps, p);
        return;
    }
    const proto_ent *e = proto_best(ps, dn_host_peer(ps->h, id), NULL);
    if (e)
        peer_add(ps, c, e);
}

static void on_closed(dn_pubsub *ps, dn_conn *c)
{
    ps_peer *p = peer_find(ps, dn_conn_remote_peer(c));
    if (!p)
        return;
    conn_search cs = {.id = &p->id, .skip = c};
    dn_host_foreach_conn(ps->h, conn_match, &cs);
    if (!cs.found) {
        char name[16];
        DN_DEBUG("pubsub", "peer %s leaves", dn_peerid_short(&p->id, name));
        peer_remove(ps, p);
        return;
    }
    if (p->conn == c) {
        /* Our stream went with this connection (its on_close ran first):
         * start again on another one. */
        p->conn = cs.found;
        p->fails = 0;
        if (!p->out)
            out_open(ps, p);
    }
}

static void on_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    dn_pubsub *ps = arg;
    if (ps->closed || !c)
        return;
    if (ev == DN_CONN_EV_IDENTIFIED || ev == DN_CONN_EV_PUSHED)
        on_identified(ps, c);
    else if (ev == DN_CONN_EV_CLOSED)
        on_closed(ps, c);
}

/* A connection whose peer is not ours yet but identified before we
 * attached (later changes come as DN_CONN_EV_PUSHED). */
static void scan_conn(dn_conn *c, void *arg)
{
    dn_pubsub *ps = arg;
    if (ps->npeers >= ps->cfg.max_peers || peer_find(ps, dn_conn_remote_peer(c)))
        return;
    const dn_peer_info *info = dn_host_peer(ps->h, dn_conn_remote_peer(c));
    if (info && info->identified)
        on_identified(ps, c);
}

/* ---- heartbeat ---- */

static void on_heartbeat(uv_timer_t *t)
{
    dn_pubsub *ps = t->data;
    uint64_t now = now_ms(ps);
    ps->in_router = true;
    dn__pubsub_heartbeat(ps->r, now);
    ps->in_router = false;
    drain(ps);
    /* Reopen our streams that failed to open (bounded), and forgive the
     * failures of streams that lived a heartbeat. */
    for (size_t i = 0; i < ps->ntab; i++)
        for (ps_peer *p = ps->tab[i]; p; p = p->hnext) {
            if (p->out && p->out->s && !p->out->dead && now >= p->out_since + ps->cfg.heartbeat_ms)
                p->fails = 0;
            else if (!p->out && p->conn && p->fails < MAX_REOPEN)
                out_open(ps, p);
        }
}

/* ---- the API ---- */

void dn_pubsub_config_init(dn_pubsub_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
}

dn_host *dn_pubsub_host(const dn_pubsub *ps)
{
    return ps->h;
}

static void ps_free(uv_handle_t *h)
{
    free(h->data);
}

/* The host is being freed: every stream is gone (their on_close ran). */
static void ps_cleanup(void *arg)
{
    dn_pubsub *ps = arg;
    ps->closed = true;
    for (size_t i = 0; i < ps->ntab; i++)
        while (ps->tab[i]) {
            ps_peer *p = ps->tab[i];
            ps->tab[i] = p->hnext;
            peer_free(ps, p);
        }
    free(ps->tab);
    ps->tab = NULL;
    ps->ntab = ps->npeers = 0;
    while (ps->topics) {
        ps_topic *t = ps->topics;
        ps->topics = t->next;
        while (t->subs) {
            dn_pubsub_sub *s = t->subs;
            t->subs = s->next;
            free(s);
        }
        free(t->name);
        free(t);
    }
    dn__pubsub_router_free(ps->r);
    ps->r = NULL;
    uv_close((uv_handle_t *)&ps->hb, ps_free);
}

static const char *const proto_names[NPROTOS] = {PROTO_MESHSUB_12, PROTO_MESHSUB_11,
                                                 PROTO_MESHSUB_10, PROTO_FLOODSUB};

typedef struct scan_ctx {
    dn_pubsub *ps;
} scan_ctx;

int dn_pubsub_attach(dn_host *h, const dn_pubsub_config *cfg, dn_pubsub **out)
{
    if (!h || !out)
        return DN_EINVAL;
    *out = NULL;
    dn_pubsub_config c = DN_PUBSUB_CONFIG_INIT;
    if (cfg) {
        if (cfg->size <
            offsetof(dn_pubsub_config, max_queue_per_peer) + sizeof cfg->max_queue_per_peer)
            return DN_EINVAL;
        memcpy(&c, cfg, cfg->size < sizeof c ? cfg->size : sizeof c);
        c.size = sizeof c;
    }
    if (!c.heartbeat_ms)
        c.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    if (!c.max_peers)
        c.max_peers = DEFAULT_MAX_PEERS;
    if (!c.max_queue_per_peer)
        c.max_queue_per_peer = DEFAULT_QUEUE;
    if (sodium_init() < 0)
        return DN_ECRYPTO;
    dn_pubsub *ps = calloc(1, sizeof *ps);
    if (!ps)
        return DN_ENOMEM;
    ps->h = h;
    ps->cfg = c;
    randombytes_buf(ps->hkey, sizeof ps->hkey);
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    p.heartbeat_ms = c.heartbeat_ms;
    p.msgid_mode = c.go_message_ids ? DN_PUBSUB_MSGID_GO : DN_PUBSUB_MSGID_JS;
    int rc = dn__pubsub_router_new(&p, dn_host_identity(h), 0, &ps->r);
    if (rc) {
        free(ps);
        return rc;
    }
    dn__pubsub_router_set_validator(ps->r, validate_hook, ps);
    size_t nset = 0;
    for (size_t i = 0; i < NPROTOS && !rc; i++)
        if (proto_ours(ps, &protos[i])) {
            rc = dn_host_set_handler(h, proto_names[i], stream_handler, ps);
            nset += !rc;
        }
    if (!rc)
        rc = dn_host_add_observer(h, on_event, ps);
    if (!rc)
        rc = dn_host_add_cleanup(h, ps_cleanup, ps);
    if (rc) {
        for (size_t i = 0; i < NPROTOS; i++)
            if (proto_ours(ps, &protos[i]) && nset) {
                dn_host_remove_handler(h, proto_names[i]);
                nset--;
            }
        dn_host_remove_observer(h, on_event, ps);
        dn__pubsub_router_free(ps->r);
        free(ps);
        return rc;
    }
    uv_timer_init(dn_host_loop(h), &ps->hb);
    ps->hb.data = ps;
    uv_timer_start(&ps->hb, on_heartbeat, c.heartbeat_ms, c.heartbeat_ms);
    uv_unref((uv_handle_t *)&ps->hb);
    /* Peers identified before we came. */
    dn_host_foreach_conn(h, scan_conn, ps);
    *out = ps;
    return 0;
}

static int topic_check(const char *topic, size_t *len)
{
    if (!topic)
        return DN_EINVAL;
    *len = strnlen(topic, DN_PUBSUB_TOPIC_MAX + 1);
    return *len == 0 || *len > DN_PUBSUB_TOPIC_MAX ? DN_EINVAL : 0;
}

static ps_topic *topic_get(dn_pubsub *ps, const char *name, size_t len)
{
    ps_topic *t = topic_find(ps, (const uint8_t *)name, len);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t || !(t->name = strndup(name, len))) {
        free(t);
        return NULL;
    }
    t->len = len;
    t->ps = ps;
    t->next = ps->topics;
    ps->topics = t;
    return t;
}

int dn_pubsub_subscribe(dn_pubsub *ps, const char *topic, dn_pubsub_msg_cb cb, void *arg,
                        dn_pubsub_sub **out)
{
    size_t len;
    if (!ps || !cb || !out || topic_check(topic, &len))
        return DN_EINVAL;
    *out = NULL;
    if (ps->in_router || ps->closed)
        return DN_ESTATE; /* from a validator: the router is mid-call */
    ps_topic *t = topic_get(ps, topic, len);
    if (!t)
        return DN_ENOMEM;
    dn_pubsub_sub *s = calloc(1, sizeof *s);
    if (!s) {
        if (!ps->dispatching)
            topics_gc(ps);
        return DN_ENOMEM;
    }
    s->t = t;
    s->cb = cb;
    s->arg = arg;
    /* Appended: a subscription made inside a callback sees the messages
     * after the one being delivered (the walk reaches it, but it is the
     * same topic's next subscriber: harmless and simple). */
    dn_pubsub_sub **sp = &t->subs;
    while (*sp)
        sp = &(*sp)->next;
    *sp = s;
    t->nsubs++;
    int rc = topic_sync(ps, t);
    if (rc) {
        t->nsubs--;
        s->dead = true;
        if (!ps->dispatching)
            topics_gc(ps);
        return rc;
    }
    *out = s;
    return 0;
}

void dn_pubsub_unsubscribe(dn_pubsub_sub *sub)
{
    if (!sub || sub->dead)
        return;
    ps_topic *t = sub->t;
    dn_pubsub *ps = t->ps;
    sub->dead = true;
    sub->cb = NULL;
    t->nsubs--;
    /* The last one leaves the topic (now, unless a validator has the
     * router mid-call: then the next drain does it). The memory goes once
     * no delivery is on the stack. */
    topic_sync(ps, t);
    if (!ps->dispatching)
        topics_gc(ps);
}

int dn_pubsub_set_validator(dn_pubsub *ps, const char *topic, dn_pubsub_validator fn, void *arg)
{
    size_t len;
    if (!ps || topic_check(topic, &len))
        return DN_EINVAL;
    if (ps->in_router)
        return DN_ESTATE;
    ps_topic *t = fn ? topic_get(ps, topic, len) : topic_find(ps, (const uint8_t *)topic, len);
    if (!t)
        return fn ? DN_ENOMEM : 0;
    t->vfn = fn;
    t->varg = arg;
    if (!fn && !ps->dispatching)
        topics_gc(ps);
    return 0;
}

int dn_pubsub_publish(dn_pubsub *ps, const char *topic, const void *data, size_t len)
{
    size_t tlen;
    if (!ps || topic_check(topic, &tlen) || (len && !data))
        return DN_EINVAL;
    if (len > DN_PUBSUB_MAX_DATA)
        return DN_ETOOBIG;
    if (ps->in_router || ps->closed)
        return DN_ESTATE;
    ps->in_router = true;
    int rc = dn__pubsub_publish(ps->r, topic, data, len, now_ms(ps), NULL, NULL);
    ps->in_router = false;
    drain(ps);
    return rc;
}

size_t dn_pubsub_topic_peers(const dn_pubsub *ps, const char *topic, dn_peerid *out, size_t max)
{
    if (topic)
        return dn__pubsub_topic_peers(ps->r, topic, out, max);
    size_t n = 0;
    for (size_t i = 0; i < ps->ntab; i++)
        for (ps_peer *p = ps->tab[i]; p; p = p->hnext)
            if (dn__pubsub_peer_ntopics(ps->r, &p->id)) {
                if (n < max)
                    out[n] = p->id;
                n++;
            }
    return n;
}

size_t dn_pubsub_mesh_peers(const dn_pubsub *ps, const char *topic, dn_peerid *out, size_t max)
{
    size_t n = 0;
    if (!topic)
        return 0;
    for (size_t i = 0; i < ps->ntab; i++)
        for (ps_peer *p = ps->tab[i]; p; p = p->hnext)
            if (dn__pubsub_in_mesh(ps->r, topic, &p->id)) {
                if (n < max)
                    out[n] = p->id;
                n++;
            }
    return n;
}

size_t dn_pubsub_topics(const dn_pubsub *ps, const char **out, size_t max)
{
    size_t n = 0;
    for (const ps_topic *t = ps->topics; t; t = t->next)
        if (t->nsubs) {
            if (n < max)
                out[n] = t->name;
            n++;
        }
    return n;
}

double dn_pubsub_peer_score(const dn_pubsub *ps, const dn_peerid *peer)
{
    return dn__pubsub_score(ps->r, peer);
}

const dn__pubsub_router *dn__pubsub_service_router(const dn_pubsub *ps)
{
    return ps->r;
}

void dn_pubsub_get_stats(const dn_pubsub *ps, dn_pubsub_stats *st)
{
    memset(st, 0, sizeof *st);
    const dn__pubsub_stats *r = dn__pubsub_router_stats(ps->r);
    st->rpcs_in = r->rpcs_in;
    st->rpcs_bad = r->rpcs_bad + ps->rpcs_bad_frame;
    st->msgs_in = r->msgs_in;
    st->msgs_delivered = r->msgs_delivered;
    st->msgs_invalid = r->msgs_invalid + r->msgs_rejected;
    st->msgs_dup = r->msgs_dup;
    st->frames_dropped = ps->frames_dropped;
    st->peers = (uint32_t)ps->npeers;
}
