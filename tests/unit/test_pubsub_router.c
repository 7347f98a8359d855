/* Unit tests: the gossipsub router core (src/pubsub/router.c), sans-I/O.
 *
 * A simulated network of routers in memory: every frame a router wants to
 * send is queued, then handed (through the frame reader) to the router of
 * the peer it is addressed to, until the network is quiet. Heartbeats are
 * driven by a fake clock. Checked: every message reaches every subscriber
 * exactly once; mesh degrees stay in [D_lo, D_hi]; a node kept out of
 * every mesh recovers messages through IHAVE/IWANT; nodes injecting forged
 * signatures and junk neither stop nor shadow honest delivery, and end up
 * pruned and graylisted; GRAFT during backoff, PX, IDONTWANT, retransmission
 * limits, fanout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "pubsub/router.h"

#define MAXN 40
#define MAXMSG 64
#define TOPIC "/dmsnet/jobs/1.0.0"

typedef struct node {
    dn_privkey *key;
    dn_peerid id;
    dn__pubsub_router *r;
    int got[MAXMSG]; /* deliveries per message index */
    int bad_data;    /* deliveries of data we did not publish */
    int npx;         /* PX peers offered to this node */
    dn_peerid px[8];
} node;

typedef struct qitem {
    int from, to;
    dn_buf frame;
} qitem;

typedef struct net {
    node n[MAXN];
    int count;
    uint64_t now;
    qitem *q;
    size_t qhead, qlen, qcap;
    uint64_t frames;
    bool adj[MAXN][MAXN];
} net;

static int find(net *w, const dn_peerid *id)
{
    for (int i = 0; i < w->count; i++)
        if (dn_peerid_equal(&w->n[i].id, id))
            return i;
    return -1;
}

/* Move a router's outputs into the queue and the node's tallies. */
static void collect(net *w, int i)
{
    size_t ns, nd;
    dn__pubsub_send *s = dn__pubsub_sends(w->n[i].r, &ns);
    for (size_t k = 0; k < ns; k++) {
        if (w->qlen == w->qcap) {
            w->qcap = w->qcap ? w->qcap * 2 : 256;
            w->q = realloc(w->q, w->qcap * sizeof *w->q);
            assert_non_null(w->q);
        }
        qitem *it = &w->q[w->qlen++];
        it->from = i;
        it->to = find(w, &s[k].to);
        assert_true(it->to >= 0);
        it->frame = s[k].frame;
        dn_buf_init(&s[k].frame); /* ownership moves to the queue */
    }
    dn__pubsub_delivery *d = dn__pubsub_deliveries(w->n[i].r, &nd);
    for (size_t k = 0; k < nd; k++) {
        int idx;
        char buf[32] = {0};
        size_t l = d[k].msg.data.len < 31 ? d[k].msg.data.len : 31;
        memcpy(buf, d[k].msg.data.p, l);
        if (sscanf(buf, "msg-%d", &idx) == 1 && idx >= 0 && idx < MAXMSG)
            w->n[i].got[idx]++;
        else
            w->n[i].bad_data++;
    }
    size_t npx;
    dn__pubsub_pxpeer *px = dn__pubsub_px_peers(w->n[i].r, &npx);
    for (size_t k = 0; k < npx; k++) {
        if (w->n[i].npx < 8)
            w->n[i].px[w->n[i].npx] = px[k].peer;
        w->n[i].npx++;
    }
    dn__pubsub_clear_outputs(w->n[i].r);
}

/* Deliver queued frames until none is left (bounded). */
static void pump(net *w)
{
    size_t guard = 0;
    while (w->qhead < w->qlen) {
        assert_true(++guard < 2000000);
        qitem it = w->q[w->qhead++];
        /* through the frame reader, split in two to exercise reassembly */
        dn__pubsub_framer f;
        dn__pubsub_framer_init(&f, 0);
        size_t half = it.frame.len / 2;
        assert_int_equal(dn__pubsub_framer_feed(&f, it.frame.data, half), 0);
        const uint8_t *fr;
        size_t fl;
        assert_int_equal(dn__pubsub_framer_next(&f, &fr, &fl), 0);
        assert_int_equal(dn__pubsub_framer_feed(&f, it.frame.data + half, it.frame.len - half), 0);
        assert_int_equal(dn__pubsub_framer_next(&f, &fr, &fl), 1);
        int rc = dn__pubsub_handle_rpc(w->n[it.to].r, &w->n[it.from].id, fr, fl, w->now);
        (void)rc; /* junk frames are refused; tests check the counters */
        dn__pubsub_framer_close(&f);
        dn_buf_free(&it.frame);
        w->frames++;
        collect(w, it.to);
        if (w->qhead == w->qlen)
            w->qhead = w->qlen = 0;
    }
}

static void net_init(net *w, int count, const dn__pubsub_params *p)
{
    memset(w, 0, sizeof *w);
    w->count = count;
    w->now = 1000000;
    for (int i = 0; i < count; i++) {
        node *n = &w->n[i];
        assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &n->key), 0);
        assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(n->key), &n->id), 0);
        assert_int_equal(
            dn__pubsub_router_new(p, n->key, 0x9e3779b97f4a7c15ULL + (uint64_t)i, &n->r), 0);
    }
}

static void net_free(net *w)
{
    for (size_t k = w->qhead; k < w->qlen; k++)
        dn_buf_free(&w->q[k].frame);
    free(w->q);
    for (int i = 0; i < w->count; i++) {
        dn__pubsub_router_free(w->n[i].r);
        dn_privkey_free(w->n[i].key);
    }
}

static void link_nodes(net *w, int a, int b, dn__pubsub_proto proto)
{
    assert_int_equal(dn__pubsub_add_peer(w->n[a].r, &w->n[b].id, proto, true, w->now), 0);
    assert_int_equal(dn__pubsub_add_peer(w->n[b].r, &w->n[a].id, proto, false, w->now), 0);
    w->adj[a][b] = w->adj[b][a] = true;
    collect(w, a);
    collect(w, b);
}

/* Ring lattice (each node to its 3 successors) plus random chords: a
 * connected graph of degree about 8. */
static void connect_random(net *w, int count, unsigned seed)
{
    for (int i = 0; i < count; i++)
        for (int k = 1; k <= 3; k++)
            if (!w->adj[i][(i + k) % count])
                link_nodes(w, i, (i + k) % count, DN_PUBSUB_MESHSUB_12);
    srand(seed);
    for (int e = 0; e < count; e++) {
        int a = rand() % count, b = rand() % count;
        if (a != b && !w->adj[a][b])
            link_nodes(w, a, b, DN_PUBSUB_MESHSUB_12);
    }
}

static void heartbeats(net *w, int k)
{
    for (int h = 0; h < k; h++) {
        w->now += 1000;
        for (int i = 0; i < w->count; i++) {
            dn__pubsub_heartbeat(w->n[i].r, w->now);
            collect(w, i);
        }
        pump(w);
    }
}

static void publish(net *w, int from, int idx)
{
    char data[32];
    int len = snprintf(data, sizeof data, "msg-%d", idx);
    int rc = dn__pubsub_publish(w->n[from].r, TOPIC, (const uint8_t *)data, (size_t)len, w->now,
                                NULL, NULL);
    assert_true(rc > 0);
    collect(w, from);
    w->n[from].got[idx]++; /* the publisher has it */
}

static void check_mesh_bounds(net *w, int lo, int hi, int skip)
{
    for (int i = 0; i < w->count; i++) {
        if (i == skip)
            continue;
        size_t m = dn__pubsub_mesh_size(w->n[i].r, TOPIC);
        if ((int)m < lo || (int)m > hi)
            fail_msg("node %d mesh %zu outside [%d, %d]", i, m, lo, hi);
    }
}

static void test_network_delivery(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 30, &p);
    connect_random(&w, 30, 7);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now), 0);
        collect(&w, i);
    }
    pump(&w);
    heartbeats(&w, 3);
    check_mesh_bounds(&w, p.d_lo, p.d_hi, -1);
    for (int m = 0; m < 20; m++) {
        publish(&w, (m * 7) % 30, m);
        pump(&w);
    }
    for (int i = 0; i < 30; i++)
        for (int m = 0; m < 20; m++)
            if (w.n[i].got[m] != 1)
                fail_msg("node %d got message %d %d times", i, m, w.n[i].got[m]);
    heartbeats(&w, 5);
    check_mesh_bounds(&w, p.d_lo, p.d_hi, -1);
    /* Scores: every mesh peer has a positive score (P1, time in mesh);
     * peers that delivered first got P2 on top (at most 20 x 0.5). */
    double before[30][30];
    for (int i = 0; i < 30; i++)
        for (int j = 0; j < 30; j++) {
            before[i][j] = dn__pubsub_score(w.n[i].r, &w.n[j].id);
            if (dn__pubsub_in_mesh(w.n[i].r, TOPIC, &w.n[j].id))
                assert_true(before[i][j] > 0);
            assert_true(before[i][j] <= 0.01 * 300 + 0.5 * 20);
        }
    /* gossip of what everyone has already asks for nothing */
    uint64_t iw = 0;
    for (int i = 0; i < 30; i++)
        iw += dn__pubsub_router_stats(w.n[i].r)->iwant_sent;
    assert_int_equal(iw, 0);
    net_free(&w);
}

static void test_ihave_iwant_recovery(void **state)
{
    static net w;
    dn__pubsub_params p, lonely;
    dn__pubsub_params_default(&p);
    net_init(&w, 30, &p);
    /* Node 30 refuses every mesh (D = D_lo = D_hi = 0): it only ever gets
     * messages through gossip. It links to nodes 0..3, which never publish. */
    dn__pubsub_params_default(&lonely);
    lonely.d = lonely.d_lo = lonely.d_hi = lonely.d_out = 0;
    w.count = 31;
    node *m = &w.n[30];
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &m->key), 0);
    dn_peerid_from_pubkey(dn_privkey_public(m->key), &m->id);
    assert_int_equal(dn__pubsub_router_new(&lonely, m->key, 99, &m->r), 0);
    w.count = 30;
    connect_random(&w, 30, 11);
    w.count = 31;
    for (int i = 0; i < 4; i++)
        link_nodes(&w, 30, i, DN_PUBSUB_MESHSUB_11);
    for (int i = 0; i < 31; i++) {
        assert_int_equal(dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now), 0);
        collect(&w, i);
    }
    pump(&w);
    heartbeats(&w, 3);
    assert_int_equal(dn__pubsub_mesh_size(m->r, TOPIC), 0);
    for (int i = 0; i < 4; i++)
        assert_false(dn__pubsub_in_mesh(w.n[i].r, TOPIC, &m->id));
    for (int k = 0; k < 10; k++) {
        publish(&w, 10 + k, k);
        pump(&w);
    }
    for (int k = 0; k < 10; k++)
        assert_int_equal(m->got[k], 0); /* nothing on the mesh path */
    heartbeats(&w, 2);
    for (int k = 0; k < 10; k++)
        if (m->got[k] != 1)
            fail_msg("lonely node got message %d %d times", k, m->got[k]);
    const dn__pubsub_stats *st = dn__pubsub_router_stats(m->r);
    assert_true(st->iwant_sent >= 10);
    assert_int_equal(st->msgs_via_iwant, 10);
    uint64_t answered = 0;
    for (int i = 0; i < 4; i++)
        answered += dn__pubsub_router_stats(w.n[i].r)->iwant_answered;
    assert_true(answered >= 10);
    /* the others are unaffected */
    for (int i = 0; i < 30; i++)
        for (int k = 0; k < 10; k++)
            assert_int_equal(w.n[i].got[k], 1);
    net_free(&w);
}

/* A frame from `from` to `to` holding one message. */
static void inject(net *w, int from, int to, const dn__pubsub_message *msg)
{
    dn__pubsub_rpc r = {.msgs = (dn__pubsub_message *)msg, .nmsgs = 1};
    dn_buf b = DN_BUF_INIT;
    assert_int_equal(dn__pubsub_rpc_frame(&r, &b), 0);
    if (w->qlen == w->qcap) {
        w->qcap = w->qcap ? w->qcap * 2 : 256;
        w->q = realloc(w->q, w->qcap * sizeof *w->q);
    }
    w->q[w->qlen++] = (qitem){from, to, b};
}

static void inject_junk(net *w, int from, int to, unsigned seed)
{
    dn_buf b = DN_BUF_INIT;
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(seed * 31 + i * 17);
    junk[0] = 0x12; /* field 2, length-delimited ... */
    junk[1] = 0x7f; /* ... longer than what follows */
    dn_buf_append_uvarint(&b, sizeof junk);
    dn_buf_append(&b, junk, sizeof junk);
    if (w->qlen == w->qcap) {
        w->qcap = w->qcap ? w->qcap * 2 : 256;
        w->q = realloc(w->q, w->qcap * sizeof *w->q);
    }
    w->q[w->qlen++] = (qitem){from, to, b};
}

static void test_invalid_signatures(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 35, &p); /* 0..29 honest, 30..34 bad */
    connect_random(&w, 35, 23);
    for (int i = 0; i < 35; i++) {
        assert_int_equal(dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now), 0);
        collect(&w, i);
    }
    pump(&w);
    heartbeats(&w, 3);
    /* Learn an honest author's seqno from its first message id (js id:
     * key protobuf + seqno), so the bad nodes can forge the next one. */
    uint8_t id[DN_PUBSUB_MSGID_MAX];
    size_t idlen = sizeof id;
    char d0[] = "msg-0";
    assert_true(dn__pubsub_publish(w.n[5].r, TOPIC, (const uint8_t *)d0, 5, w.now, id, &idlen) > 0);
    w.n[5].got[0]++;
    collect(&w, 5);
    pump(&w);
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = (seq << 8) | id[idlen - 8 + i];
    int rounds = 6;
    for (int k = 1; k <= rounds; k++) {
        /* Bad nodes: a forged copy of the author's next message (its from,
         * key and seqno; our data; a bogus signature), a message under
         * their own id with a broken signature, and junk. */
        uint8_t sq[8];
        for (int i = 0; i < 8; i++)
            sq[i] = (uint8_t)((seq + (uint64_t)k) >> (56 - 8 * i));
        dn_buf kpb = DN_BUF_INIT;
        dn_pubkey_to_protobuf(dn_privkey_public(w.n[5].key), &kpb);
        uint8_t sig[64] = {1, 2, 3};
        dn__pubsub_message forged = {
            .has_from = true,
            .from = {w.n[5].id.bytes, w.n[5].id.len},
            .has_data = true,
            .data = {(const uint8_t *)"evil", 4},
            .has_seqno = true,
            .seqno = {sq, 8},
            .topic = {(const uint8_t *)TOPIC, strlen(TOPIC)},
            .has_signature = true,
            .signature = {sig, sizeof sig},
            .has_key = true,
            .key = {kpb.data, kpb.len},
        };
        for (int b = 30; b < 35; b++) {
            dn_buf own = DN_BUF_INIT;
            dn__pubsub_message om;
            assert_int_equal(dn__pubsub_message_sign(w.n[b].key, TOPIC, strlen(TOPIC),
                                                     (const uint8_t *)"evil2", 5, 1000 + k, &own),
                             0);
            own.data[own.len - 40] ^= 1; /* inside the Ed25519 signature */
            assert_int_equal(dn__pubsub_message_decode(own.data, own.len, &om), 0);
            dn_peerid nb[64];
            size_t nn = dn__pubsub_topic_peers(w.n[b].r, TOPIC, nb, 64);
            for (size_t j = 0; j < nn && j < 64; j++) {
                int to = find(&w, &nb[j]);
                if (to >= 30)
                    continue;
                inject(&w, b, to, &forged);
                inject(&w, b, to, &om);
                inject_junk(&w, b, to, (unsigned)(k * 100 + b));
            }
            dn_buf_free(&own);
        }
        dn_buf_free(&kpb);
        pump(&w);
        publish(&w, 5, k); /* the real one, same id as the forgery */
        pump(&w);
        publish(&w, (k * 11) % 30, 10 + k);
        pump(&w);
        heartbeats(&w, 1);
    }
    for (int i = 0; i < 30; i++) {
        assert_int_equal(w.n[i].bad_data, 0);
        for (int k = 0; k <= rounds; k++)
            if (w.n[i].got[k] != 1)
                fail_msg("honest node %d got message %d %d times", i, k, w.n[i].got[k]);
        for (int k = 1; k <= rounds; k++)
            assert_int_equal(w.n[i].got[10 + k], 1);
    }
    /* Every honest node that hears from a bad one scores it negative, has
     * pruned it and graylists it. */
    int checked = 0;
    for (int i = 0; i < 30; i++)
        for (int b = 30; b < 35; b++) {
            if (!w.adj[i][b])
                continue;
            checked++;
            assert_true(dn__pubsub_score(w.n[i].r, &w.n[b].id) < p.graylist_threshold);
            assert_true(dn__pubsub_graylisted(w.n[i].r, &w.n[b].id));
            assert_false(dn__pubsub_in_mesh(w.n[i].r, TOPIC, &w.n[b].id));
        }
    assert_true(checked >= 5);
    uint64_t invalid = 0, graylisted = 0;
    for (int i = 0; i < 30; i++) {
        invalid += dn__pubsub_router_stats(w.n[i].r)->msgs_invalid;
        graylisted += dn__pubsub_router_stats(w.n[i].r)->rpcs_graylisted;
    }
    assert_true(invalid > 0);
    assert_true(graylisted > 0);
    net_free(&w);
}

/* Decode the RPCs a router sent to `to` since the last clear. */
static int sent_to(dn__pubsub_router *r, const dn_peerid *to, dn__pubsub_rpc *out, int max)
{
    size_t ns;
    dn__pubsub_send *s = dn__pubsub_sends(r, &ns);
    int n = 0;
    for (size_t i = 0; i < ns && n < max; i++) {
        if (!dn_peerid_equal(&s[i].to, to))
            continue;
        uint64_t len;
        int hl = dn_uvarint_decode(s[i].frame.data, s[i].frame.len, &len);
        assert_true(hl > 0);
        assert_int_equal((size_t)hl + len, s[i].frame.len);
        assert_int_equal(dn__pubsub_rpc_decode(s[i].frame.data + hl, (size_t)len, &out[n]), 0);
        n++;
    }
    return n;
}

static void free_rpcs(dn__pubsub_rpc *r, int n)
{
    for (int i = 0; i < n; i++)
        dn__pubsub_rpc_free(&r[i]);
}

static void test_graft_prune_px(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 4, &p);
    link_nodes(&w, 0, 1, DN_PUBSUB_MESHSUB_11);
    link_nodes(&w, 0, 2, DN_PUBSUB_MESHSUB_11);
    link_nodes(&w, 0, 3, DN_PUBSUB_MESHSUB_10);
    for (int i = 0; i < 4; i++) {
        dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now);
        collect(&w, i);
    }
    pump(&w);
    heartbeats(&w, 1);
    assert_true(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[1].id));
    assert_true(dn__pubsub_in_mesh(w.n[1].r, TOPIC, &w.n[0].id));
    /* Node 0 leaves: PRUNE to its mesh with the unsubscribe backoff (10 s)
     * and PX of the other subscribers to v1.1 peers (not to the v1.0 one). */
    dn__pubsub_unsubscribe(w.n[0].r, TOPIC, w.now);
    dn__pubsub_rpc rr[4];
    int n = sent_to(w.n[0].r, &w.n[1].id, rr, 4);
    assert_int_equal(n, 1);
    assert_int_equal(rr[0].nsubs, 1);
    assert_false(rr[0].subs[0].subscribe);
    assert_int_equal(rr[0].nprune, 1);
    assert_true(rr[0].prune[0].has_backoff);
    assert_int_equal(rr[0].prune[0].backoff_s, 10);
    assert_int_equal(rr[0].prune[0].count, 2); /* nodes 2 and 3 */
    for (size_t k = 0; k < 2; k++) {
        dn_peerid x;
        assert_int_equal(dn_peerid_from_bytes(rr[0].px[k].peer_id.p, rr[0].px[k].peer_id.len, &x),
                         0);
        assert_true(dn_peerid_equal(&x, &w.n[2].id) || dn_peerid_equal(&x, &w.n[3].id));
    }
    free_rpcs(rr, n);
    n = sent_to(w.n[0].r, &w.n[3].id, rr, 4); /* v1.0 peer: no PX, no backoff field */
    assert_int_equal(n, 1);
    if (rr[0].nprune) {
        assert_int_equal(rr[0].prune[0].count, 0);
        assert_false(rr[0].prune[0].has_backoff);
    }
    free_rpcs(rr, n);
    dn__pubsub_clear_outputs(w.n[0].r);
    net_free(&w);

    /* PX: a router with D_hi = 1 prunes the second grafting peer with PX. */
    dn__pubsub_params_default(&p);
    p.d = 1;
    p.d_lo = 1;
    p.d_hi = 1;
    p.d_score = 1;
    p.d_out = 0;
    net_init(&w, 4, &p);
    dn__pubsub_params def;
    dn__pubsub_params_default(&def);
    for (int i = 1; i < 4; i++) { /* the others with default params */
        dn__pubsub_router_free(w.n[i].r);
        assert_int_equal(dn__pubsub_router_new(&def, w.n[i].key, (uint64_t)i, &w.n[i].r), 0);
    }
    for (int i = 1; i < 4; i++)
        link_nodes(&w, i, 0, DN_PUBSUB_MESHSUB_11);
    dn__pubsub_subscribe(w.n[0].r, TOPIC, w.now);
    collect(&w, 0);
    pump(&w);
    for (int i = 1; i < 4; i++) {
        dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now);
        collect(&w, i);
    }
    pump(&w);
    assert_int_equal(dn__pubsub_mesh_size(w.n[0].r, TOPIC), 1);
    int pruned = 0;
    for (int i = 1; i < 4; i++) {
        if (!dn__pubsub_in_mesh(w.n[i].r, TOPIC, &w.n[0].id)) {
            pruned++;
            assert_true(dn__pubsub_router_stats(w.n[i].r)->prune_in >= 1);
            /* PX names the other subscribers of node 0 that i does not know */
            assert_true(w.n[i].npx >= 1);
            for (int k = 0; k < w.n[i].npx && k < 8; k++) {
                assert_false(dn_peerid_equal(&w.n[i].px[k], &w.n[i].id));
                assert_false(dn_peerid_equal(&w.n[i].px[k], &w.n[0].id));
            }
        }
        dn__pubsub_clear_outputs(w.n[i].r);
    }
    assert_int_equal(pruned, 2);
    /* A pruned peer that grafts again during the backoff is penalised (P7)
     * and pruned again. */
    int victim = dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[1].id) ? 2 : 1;
    dn_buf b = DN_BUF_INIT, g = DN_BUF_INIT, c = DN_BUF_INIT;
    dn_pb_put_bytes(&g, 1, TOPIC, strlen(TOPIC));
    for (int k = 0; k < 3; k++)
        dn_pb_put_bytes(&c, 3, g.data, g.len);
    dn_pb_put_bytes(&b, 3, c.data, c.len);
    for (int k = 0; k < 2; k++)
        assert_int_equal(
            dn__pubsub_handle_rpc(w.n[0].r, &w.n[victim].id, b.data, b.len, w.now + 1000), 0);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[victim].id) < 0);
    assert_false(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[victim].id));
    dn__pubsub_rpc out[2];
    n = sent_to(w.n[0].r, &w.n[victim].id, out, 2);
    assert_true(n >= 1);
    assert_true(out[0].nprune >= 1);
    free_rpcs(out, n);
    dn_buf_free(&b);
    dn_buf_free(&g);
    dn_buf_free(&c);
    net_free(&w);
}

static void test_idontwant_and_retransmission(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 3, &p); /* 0 author, 1 relay under test, 2 downstream */
    link_nodes(&w, 0, 1, DN_PUBSUB_MESHSUB_12);
    link_nodes(&w, 1, 2, DN_PUBSUB_MESHSUB_12);
    for (int i = 0; i < 3; i++) {
        dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now);
        collect(&w, i);
    }
    pump(&w);
    heartbeats(&w, 1);
    assert_true(dn__pubsub_in_mesh(w.n[1].r, TOPIC, &w.n[2].id));
    /* A large message by node 0, built by hand so that node 2 can send
     * IDONTWANT for it first. */
    uint8_t data[2000];
    memset(data, 'x', sizeof data);
    memcpy(data, "msg-1", 5);
    dn_buf raw = DN_BUF_INIT;
    assert_int_equal(
        dn__pubsub_message_sign(w.n[0].key, TOPIC, strlen(TOPIC), data, sizeof data, 77, &raw), 0);
    dn__pubsub_message m;
    dn__pubsub_message_decode(raw.data, raw.len, &m);
    uint8_t id[DN_PUBSUB_MSGID_MAX];
    int idlen = dn__pubsub_msgid(&m, DN_PUBSUB_MSGID_JS, id, sizeof id);
    assert_true(idlen > 0);
    dn__ps_span sid = {id, (size_t)idlen};
    dn__pubsub_rpc dw = {.idontwant_ids = &sid, .nidontwant_ids = 1, .has_control = true};
    dn_buf f = DN_BUF_INIT;
    dn__pubsub_rpc_encode(&dw, &f);
    assert_int_equal(dn__pubsub_handle_rpc(w.n[1].r, &w.n[2].id, f.data, f.len, w.now), 0);
    dn_buf_reset(&f);
    dn__pubsub_rpc pub = {.msgs = &m, .nmsgs = 1};
    dn__pubsub_rpc_encode(&pub, &f);
    assert_int_equal(dn__pubsub_handle_rpc(w.n[1].r, &w.n[0].id, f.data, f.len, w.now), 0);
    size_t nd;
    dn__pubsub_deliveries(w.n[1].r, &nd);
    assert_int_equal(nd, 1);
    const dn__pubsub_stats *st = dn__pubsub_router_stats(w.n[1].r);
    assert_int_equal(st->idontwant_skips, 1);
    assert_int_equal(st->idontwant_sent, 1); /* to node 2, not back to 0 */
    dn__pubsub_rpc out[2];
    int n = sent_to(w.n[1].r, &w.n[2].id, out, 2);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].nmsgs, 0);
    assert_int_equal(out[0].nidontwant_ids, 1);
    assert_memory_equal(out[0].idontwant_ids[0].p, id, (size_t)idlen);
    free_rpcs(out, n);
    assert_int_equal(sent_to(w.n[1].r, &w.n[0].id, out, 2), 0);
    dn__pubsub_clear_outputs(w.n[1].r);
    /* IWANT for it: answered gossip_retransmission (3) times, no more. */
    dn__pubsub_rpc iw = {.iwant_ids = &sid, .niwant_ids = 1, .has_control = true};
    dn_buf_reset(&f);
    dn__pubsub_rpc_encode(&iw, &f);
    for (int k = 0; k < 5; k++)
        dn__pubsub_handle_rpc(w.n[1].r, &w.n[2].id, f.data, f.len, w.now);
    assert_int_equal(st->iwant_answered, 3);
    dn__pubsub_clear_outputs(w.n[1].r);
    /* The duplicate from node 2 is dropped without a second delivery. */
    dn_buf_reset(&f);
    dn__pubsub_rpc_encode(&pub, &f);
    dn__pubsub_handle_rpc(w.n[1].r, &w.n[2].id, f.data, f.len, w.now);
    dn__pubsub_deliveries(w.n[1].r, &nd);
    assert_int_equal(nd, 0);
    assert_int_equal(st->msgs_dup, 1);
    dn_buf_free(&f);
    dn_buf_free(&raw);
    net_free(&w);
}

static dn__pubsub_verdict reject_evil(void *ud, const dn__pubsub_message *m,
                                      const dn_peerid *author, const dn_peerid *via)
{
    int *calls = ud;
    (*calls)++;
    return m->data.len >= 4 && !memcmp(m->data.p, "evil", 4) ? DN_PUBSUB_REJECT : DN_PUBSUB_ACCEPT;
}

static void test_validator_fanout_promises(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    p.flood_publish = false;
    net_init(&w, 12, &p);
    for (int i = 1; i < 12; i++)
        link_nodes(&w, 0, i, DN_PUBSUB_MESHSUB_11);
    for (int i = 1; i < 12; i++) {
        dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now);
        collect(&w, i);
    }
    pump(&w);
    /* Node 0 is not subscribed: without flood publish it sends to a fanout
     * of D peers, and again to that fanout. */
    uint8_t d[] = "msg-1";
    assert_int_equal(dn__pubsub_publish(w.n[0].r, TOPIC, d, 5, w.now, NULL, NULL), p.d);
    dn__pubsub_clear_outputs(w.n[0].r);
    assert_int_equal(dn__pubsub_publish(w.n[0].r, TOPIC, d, 5, w.now, NULL, NULL), p.d);
    dn__pubsub_clear_outputs(w.n[0].r);
    net_free(&w);
    dn__pubsub_params_default(&p);
    net_init(&w, 3, &p);
    link_nodes(&w, 0, 1, DN_PUBSUB_MESHSUB_11);
    link_nodes(&w, 1, 2, DN_PUBSUB_MESHSUB_11);
    int calls = 0;
    dn__pubsub_router_set_validator(w.n[1].r, reject_evil, &calls);
    for (int i = 0; i < 3; i++) {
        dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now);
        collect(&w, i);
    }
    pump(&w);
    heartbeats(&w, 1);
    uint8_t evil[] = "evil";
    assert_int_equal(dn__pubsub_publish(w.n[0].r, TOPIC, evil, 4, w.now, NULL, NULL), 1);
    collect(&w, 0);
    pump(&w);
    assert_int_equal(calls, 1);
    assert_int_equal(dn__pubsub_router_stats(w.n[1].r)->msgs_rejected, 1);
    assert_true(dn__pubsub_score(w.n[1].r, &w.n[0].id) < 0);
    assert_int_equal(dn__pubsub_router_stats(w.n[2].r)->msgs_in, 0); /* not forwarded */
    /* A broken promise: node 2 advertises an id it never delivers. */
    uint8_t fake[44] = {1, 2, 3};
    dn__ps_span fid = {fake, sizeof fake};
    dn__pubsub_ihave ih = {{(const uint8_t *)TOPIC, strlen(TOPIC)}, 0, 1};
    dn__pubsub_rpc r = {.ihave = &ih, .nihave = 1, .ihave_ids = &fid, .nihave_ids = 1};
    dn_buf f = DN_BUF_INIT;
    dn__pubsub_rpc_encode(&r, &f);
    for (int k = 0; k < 3; k++) { /* one id, one promise, however often */
        assert_int_equal(dn__pubsub_handle_rpc(w.n[1].r, &w.n[2].id, f.data, f.len, w.now), 0);
    }
    assert_int_equal(dn__pubsub_router_stats(w.n[1].r)->iwant_sent, 1);
    dn__pubsub_clear_outputs(w.n[1].r);
    w.now += p.iwant_followup_ms + 1;
    dn__pubsub_heartbeat(w.n[1].r, w.now);
    dn__pubsub_clear_outputs(w.n[1].r);
    assert_int_equal(dn__pubsub_router_stats(w.n[1].r)->broken_promises, 1);
    /* a second broken promise passes the P7 threshold (1) */
    fake[0] = 9;
    dn_buf_reset(&f);
    dn__pubsub_rpc_encode(&r, &f);
    dn__pubsub_handle_rpc(w.n[1].r, &w.n[2].id, f.data, f.len, w.now);
    w.now += p.iwant_followup_ms + 1;
    dn__pubsub_heartbeat(w.n[1].r, w.now);
    dn__pubsub_clear_outputs(w.n[1].r);
    assert_true(dn__pubsub_score(w.n[1].r, &w.n[2].id) < 0);
    dn_buf_free(&f);
    /* the seen cache is bounded: with room for 2 ids, the first of three
     * is forgotten and delivered again */
    dn__pubsub_params sp;
    dn__pubsub_params_default(&sp);
    sp.max_seen = 2;
    dn__pubsub_router *sr;
    assert_int_equal(dn__pubsub_router_new(&sp, w.n[1].key, 5, &sr), 0);
    assert_int_equal(dn__pubsub_add_peer(sr, &w.n[0].id, DN_PUBSUB_MESHSUB_11, true, w.now), 0);
    assert_int_equal(dn__pubsub_subscribe(sr, TOPIC, w.now), 0);
    dn_buf raws[3] = {DN_BUF_INIT, DN_BUF_INIT, DN_BUF_INIT};
    for (int k = 0; k < 4; k++) {
        dn_buf fr = DN_BUF_INIT;
        int j = k % 3;
        if (k < 3)
            dn__pubsub_message_sign(w.n[0].key, TOPIC, strlen(TOPIC), (const uint8_t *)"msg-2", 5,
                                    500 + (uint64_t)k, &raws[j]);
        dn__pubsub_message mm;
        dn__pubsub_message_decode(raws[j].data, raws[j].len, &mm);
        dn__pubsub_rpc one = {.msgs = &mm, .nmsgs = 1};
        dn__pubsub_rpc_encode(&one, &fr);
        assert_int_equal(dn__pubsub_handle_rpc(sr, &w.n[0].id, fr.data, fr.len, w.now), 0);
        dn_buf_free(&fr);
    }
    size_t nd;
    dn__pubsub_deliveries(sr, &nd);
    assert_int_equal(nd, 4);
    for (int j = 0; j < 3; j++)
        dn_buf_free(&raws[j]);
    dn__pubsub_router_free(sr);
    /* removing a peer forgets it */
    assert_int_equal(dn__pubsub_remove_peer(w.n[1].r, &w.n[2].id, w.now), 0);
    assert_int_equal(dn__pubsub_remove_peer(w.n[1].r, &w.n[2].id, w.now), DN_ENOTFOUND);
    assert_false(dn__pubsub_in_mesh(w.n[1].r, TOPIC, &w.n[2].id));
    assert_int_equal(dn__pubsub_handle_rpc(w.n[1].r, &w.n[2].id, NULL, 0, w.now), DN_ENOTFOUND);
    net_free(&w);
}

/* v1.1 outbound quota: a node that many peers dial keeps at least D_out
 * peers it dialled itself in its mesh, however the grafts came in. */
static void test_outbound_quota(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 21, &p);
    for (int i = 1; i < 21; i++) { /* 1..18 dial node 0; node 0 dials 19, 20 */
        if (i < 19)
            link_nodes(&w, i, 0, DN_PUBSUB_MESHSUB_11);
        else
            link_nodes(&w, 0, i, DN_PUBSUB_MESHSUB_11);
    }
    for (int i = 20; i >= 0; i--) {
        dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now);
        collect(&w, i);
        pump(&w);
    }
    heartbeats(&w, 4);
    size_t m = dn__pubsub_mesh_size(w.n[0].r, TOPIC);
    assert_true((int)m >= p.d_lo && (int)m <= p.d_hi);
    assert_true(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[19].id));
    assert_true(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[20].id));
    /* D_out above D/2 is refused */
    dn__pubsub_router *bad;
    p.d_out = 4;
    assert_int_equal(dn__pubsub_router_new(&p, w.n[0].key, 1, &bad), DN_EINVAL);
    net_free(&w);
}

/* P1 grows with time in the mesh (0.01 a second), P2 with first
 * deliveries, capped at 20 x 0.5, and decays by 10% a heartbeat. */
static void test_score_p1_p2(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 2, &p);
    link_nodes(&w, 0, 1, DN_PUBSUB_MESHSUB_11);
    for (int i = 0; i < 2; i++) {
        dn__pubsub_subscribe(w.n[i].r, TOPIC, w.now);
        collect(&w, i);
    }
    pump(&w);
    heartbeats(&w, 10); /* grafted at the first: 9 or 10 s in the mesh */
    assert_true(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[1].id));
    double s10 = dn__pubsub_score(w.n[0].r, &w.n[1].id);
    assert_true(s10 > 0.085 && s10 < 0.105);
    for (int k = 0; k < 30; k++) {
        publish(&w, 1, k);
        pump(&w);
    }
    double s2 = dn__pubsub_score(w.n[0].r, &w.n[1].id);
    assert_true(s2 > s10 + 9.9 && s2 < s10 + 10.1); /* capped at 20 deliveries */
    heartbeats(&w, 1);
    double s3 = dn__pubsub_score(w.n[0].r, &w.n[1].id);
    assert_true(s3 < s2 - 0.9); /* 10% of 10 gone, 0.01 gained */
    heartbeats(&w, 100);
    double s4 = dn__pubsub_score(w.n[0].r, &w.n[1].id);
    assert_true(s4 > 1.0 && s4 < 1.3); /* P2 decayed to zero, ~111 s of P1 */
    net_free(&w);
}

static double app_score(void *ud, const dn_peerid *peer)
{
    return dn_peerid_equal(peer, ud) ? 5 : 0;
}

/* P5: the application's opinion, weight 1. P6: more than 10 peers on one
 * address cost each -10 x excess^2; loopback never counts. */
static void test_score_p5_p6(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 16, &p);
    for (int i = 1; i < 16; i++)
        assert_int_equal(
            dn__pubsub_add_peer(w.n[0].r, &w.n[i].id, DN_PUBSUB_MESHSUB_11, false, w.now), 0);
    dn__pubsub_clear_outputs(w.n[0].r);
    const uint8_t shared[4] = {10, 0, 0, 1}, other[4] = {10, 0, 0, 2}, lo[4] = {127, 0, 0, 1};
    for (int i = 1; i <= 12; i++)
        assert_int_equal(dn__pubsub_set_peer_ip(w.n[0].r, &w.n[i].id, shared, 4), 0);
    assert_int_equal(dn__pubsub_set_peer_ip(w.n[0].r, &w.n[13].id, other, 4), 0);
    for (int i = 14; i < 16; i++)
        assert_int_equal(dn__pubsub_set_peer_ip(w.n[0].r, &w.n[i].id, lo, 4), 0);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[1].id) == -40);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[13].id) == 0);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[14].id) == 0);
    /* one leaves, one moves away: 10 left on the address, no penalty */
    dn__pubsub_remove_peer(w.n[0].r, &w.n[12].id, w.now);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[1].id) == -10);
    dn__pubsub_set_peer_ip(w.n[0].r, &w.n[11].id, other, 4);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[1].id) == 0);
    assert_int_equal(dn__pubsub_set_peer_ip(w.n[0].r, &w.n[1].id, shared, 3), DN_EINVAL);
    assert_int_equal(dn__pubsub_set_peer_ip(w.n[0].r, &w.n[12].id, shared, 4), DN_ENOTFOUND);
    dn__pubsub_router_set_app_score(w.n[0].r, app_score, &w.n[13].id);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[13].id) == 5);
    assert_true(dn__pubsub_score(w.n[0].r, &w.n[2].id) == 0);
    net_free(&w);
}

/* The service's additions: a new stream gets our subscriptions (and GRAFT
 * for the meshes the peer is in) again; a peer renegotiated to floodsub
 * leaves our meshes; the count of a peer's topics. */
static void test_reannounce_proto(void **state)
{
    static net w;
    dn__pubsub_params p;
    dn__pubsub_params_default(&p);
    net_init(&w, 2, &p);
    link_nodes(&w, 0, 1, DN_PUBSUB_MESHSUB_12);
    assert_int_equal(dn__pubsub_subscribe(w.n[0].r, TOPIC, w.now), 0);
    assert_int_equal(dn__pubsub_subscribe(w.n[1].r, "/other", w.now), 0);
    collect(&w, 0);
    collect(&w, 1);
    pump(&w);
    assert_int_equal(dn__pubsub_peer_ntopics(w.n[0].r, &w.n[1].id), 1);
    assert_int_equal(dn__pubsub_peer_ntopics(w.n[1].r, &w.n[0].id), 1);
    assert_int_equal(dn__pubsub_peer_ntopics(w.n[1].r, &w.n[1].id), 0); /* not a peer */
    assert_int_equal(dn__pubsub_subscribe(w.n[1].r, TOPIC, w.now), 0);
    collect(&w, 1);
    pump(&w);
    assert_true(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[1].id));
    /* Reannounce from 0: one frame to 1 with the subscription and a GRAFT. */
    assert_int_equal(dn__pubsub_peer_reannounce(w.n[0].r, &w.n[1].id, w.now), 0);
    size_t ns;
    dn__pubsub_send *sd = dn__pubsub_sends(w.n[0].r, &ns);
    assert_int_equal(ns, 1);
    assert_true(dn_peerid_equal(&sd[0].to, &w.n[1].id));
    dn__pubsub_framer f;
    dn__pubsub_framer_init(&f, 0);
    assert_int_equal(dn__pubsub_framer_feed(&f, sd[0].frame.data, sd[0].frame.len), 0);
    const uint8_t *fr;
    size_t fl;
    assert_int_equal(dn__pubsub_framer_next(&f, &fr, &fl), 1);
    dn__pubsub_rpc rpc;
    assert_int_equal(dn__pubsub_rpc_decode(fr, fl, &rpc), 0);
    assert_int_equal(rpc.nsubs, 1);
    assert_true(rpc.subs[0].subscribe);
    assert_int_equal(rpc.ngraft, 1);
    assert_int_equal(rpc.graft[0].len, strlen(TOPIC));
    dn__pubsub_rpc_free(&rpc);
    dn__pubsub_framer_close(&f);
    pump(&w); /* the GRAFT of a mesh member changes nothing */
    collect(&w, 0);
    pump(&w);
    assert_true(dn__pubsub_in_mesh(w.n[1].r, TOPIC, &w.n[0].id));
    /* Floodsub now: out of the mesh, and not grafted back. */
    assert_int_equal(dn__pubsub_set_peer_proto(w.n[0].r, &w.n[1].id, DN_PUBSUB_FLOODSUB), 0);
    assert_false(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[1].id));
    heartbeats(&w, 2);
    assert_false(dn__pubsub_in_mesh(w.n[0].r, TOPIC, &w.n[1].id));
    assert_int_equal(dn__pubsub_set_peer_proto(w.n[0].r, &w.n[1].id, 9), DN_EINVAL);
    assert_int_equal(dn__pubsub_set_peer_proto(w.n[0].r, &w.n[0].id, DN_PUBSUB_FLOODSUB),
                     DN_ENOTFOUND);
    assert_int_equal(dn__pubsub_peer_reannounce(w.n[0].r, &w.n[0].id, w.now), DN_ENOTFOUND);
    net_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_network_delivery),
        cmocka_unit_test(test_ihave_iwant_recovery),
        cmocka_unit_test(test_invalid_signatures),
        cmocka_unit_test(test_graft_prune_px),
        cmocka_unit_test(test_idontwant_and_retransmission),
        cmocka_unit_test(test_validator_fanout_promises),
        cmocka_unit_test(test_outbound_quota),
        cmocka_unit_test(test_score_p1_p2),
        cmocka_unit_test(test_score_p5_p6),
        cmocka_unit_test(test_reannounce_proto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
