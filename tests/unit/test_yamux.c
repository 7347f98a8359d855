/* Tests for the yamux engine (src/yamux): two engines wired back to back in
 * memory, pumping each other's output through dn_yamux_feed at arbitrary
 * split points, plus hand-built hostile frames. An independent wire parser
 * in this file tracks every stream's window from the bytes on the wire and
 * fails if either side ever sends past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmsnet/error.h"
#include "yamux/yamux.h"

#define MAXID 16384
#define KiB 1024u
#define MiB (1024u * 1024u)

/* ---- deterministic PRNG for split points ------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
/* 1..max, biased to small values half the time so headers get split. */
static size_t rnd_chunk(size_t max)
{
    if (max <= 1)
        return 1;
    if (rnd() & 1)
        return 1 + rnd() % (max < 24 ? max : 24);
    return 1 + rnd() % max;
}

static uint8_t pattern(uint64_t off, uint32_t id)
{
    return (uint8_t)(off * 31 + (off >> 11) + id);
}

/* ---- independent wire tracker ----------------------------------------- */

typedef struct wire {
    uint8_t hdr[12];
    int have;
    uint32_t left;
} wire;

typedef struct tracker {
    wire dir[2];           /* 0: client -> server, 1: server -> client */
    int64_t win[2][MAXID]; /* credit for data flowing in direction d */
    bool known[MAXID];
    int64_t max_win[2];
    uint64_t wu_frames[2];
    uint64_t data_frames[2];
    uint64_t rst_frames[2];
    uint64_t syn_frames[2];
} tracker;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void track(tracker *t, int d, const uint8_t *p, size_t n)
{
    wire *w = &t->dir[d];
    while (n > 0) {
        if (w->left) {
            size_t k = n < w->left ? n : w->left;
            w->left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        w->hdr[w->have++] = *p++;
        n--;
        if (w->have < 12)
            continue;
        w->have = 0;
        assert_int_equal(w->hdr[0], 0);
        uint8_t type = w->hdr[1];
        uint16_t flags = (uint16_t)(w->hdr[2] << 8 | w->hdr[3]);
        uint32_t id = be32(w->hdr + 4), len = be32(w->hdr + 8);
        assert_true(type <= 3);
        if (type >= 2)
            continue;
        assert_true(id > 0 && id < MAXID);
        if (flags & 1) {
            t->syn_frames[d]++;
            assert_false(t->known[id]);
            t->known[id] = true;
            t->win[0][id] = t->win[1][id] = DN_YAMUX_INITIAL_WINDOW;
        }
        assert_true(t->known[id]);
        if (flags & 8)
            t->rst_frames[d]++;
        if (type == 0) {
            t->data_frames[d]++;
            t->win[d][id] -= len;
            assert_true(t->win[d][id] >= 0); /* never past the window */
            w->left = len;
        } else {
            t->wu_frames[d]++;
            t->win[1 - d][id] += len;
            if (t->win[1 - d][id] > t->max_win[1 - d])
                t->max_win[1 - d] = t->win[1 - d][id];
        }
    }
}

/* ---- a test peer ------------------------------------------------------ */

typedef struct peer {
    dn_yamux *y;
    int side; /* 0 client, 1 server: the wire direction of its output */
    bool auto_accept, auto_consume, store, verify, close_on_fin;
    bool reset_on_open, reset_on_data, consume_in_open;
    int opened[MAXID], acked[MAXID], fins[MAXID], resets[MAXID], gone[MAXID];
    dn_buf rx[MAXID];
    uint64_t rx_total[MAXID];
    uint64_t n_opened, n_gone, n_data_events, n_writable, n_ping, n_goaway;
    uint32_t last_ping, goaway_code;
    int events[64];
    int nevents;
    uint32_t last_opened;
} peer;

static void on_event(void *ctx, const dn_yamux_event *ev)
{
    peer *p = ctx;
    uint32_t id = ev->stream_id;
    if (p->nevents < 64)
        p->events[p->nevents++] = ev->type;
    if (ev->type <= DN_YAMUX_EV_STREAM_GONE)
        assert_true(id > 0);
    bool idx = id < MAXID;
    switch (ev->type) {
    case DN_YAMUX_EV_STREAM_OPENED:
        p->n_opened++;
        p->last_opened = id;
        if (idx)
            p->opened[id]++;
        assert_null(ev->user);
        dn_yamux_set_user(p->y, id, (void *)(uintptr_t)(id + 1000));
        if (p->auto_accept)
            assert_int_equal(dn_yamux_accept(p->y, id), 0);
        if (p->reset_on_open)
            assert_int_equal(dn_yamux_reset(p->y, id), 0);
        break;
    case DN_YAMUX_EV_STREAM_ACKED:
        if (idx)
            p->acked[id]++;
        break;
    case DN_YAMUX_EV_DATA:
        assert_true(ev->len > 0);
        p->n_data_events++;
        assert_true(idx);
        if (p->side == 1)
            assert_ptr_equal(ev->user, (void *)(uintptr_t)(id + 1000));
        if (p->verify)
            for (size_t i = 0; i < ev->len; i++)
                if (ev->data[i] != pattern(p->rx_total[id] + i, id))
                    fail_msg("stream %u byte %llu differs", id,
                             (unsigned long long)(p->rx_total[id] + i));
        if (p->store)
            assert_int_equal(dn_buf_append(&p->rx[id], ev->data, ev->len), 0);
        p->rx_total[id] += ev->len;
        if (p->auto_consume)
            assert_int_equal(dn_yamux_consumed(p->y, id, ev->len), 0);
        if (p->reset_on_data)
            assert_int_equal(dn_yamux_reset(p->y, id), 0);
        break;
    case DN_YAMUX_EV_FIN:
        assert_true(idx);
        p->fins[id]++;
        if (p->close_on_fin)
            assert_int_equal(dn_yamux_close_write(p->y, id), 0);
        break;
    case DN_YAMUX_EV_RESET:
        if (idx)
            p->resets[id]++;
        break;
    case DN_YAMUX_EV_WRITABLE: p->n_writable++; break;
    case DN_YAMUX_EV_STREAM_GONE:
        p->n_gone++;
        if (idx)
            p->gone[id]++;
        /* the state is gone: calls on the id fail from now on */
        assert_true(dn_yamux_write(p->y, id, (const uint8_t *)"x", 1) < 0);
        break;
    case DN_YAMUX_EV_PING:
        p->n_ping++;
        p->last_ping = ev->value;
        break;
    case DN_YAMUX_EV_GOAWAY:
        p->n_goaway++;
        p->goaway_code = ev->value;
        break;
    }
}

static peer *peer_new(bool client, const dn_yamux_config *cfg)
{
    peer *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->side = client ? 0 : 1;
    assert_int_equal(dn_yamux_new(client, cfg, on_event, p, &p->y), 0);
    return p;
}

static void peer_free(peer *p)
{
    dn_yamux_free(p->y);
    for (int i = 0; i < MAXID; i++)
        dn_buf_free(&p->rx[i]);
    free(p);
}

/* Move up to `limit` bytes of a's output into b, in random chunks. Returns
 * the number of bytes moved. */
static size_t pump_step(peer *a, peer *b, tracker *t, size_t limit)
{
    dn_buf *out = dn_yamux_output(a->y);
    size_t n = out->len < limit ? out->len : limit;
    if (n == 0)
        return 0;
    /* copy: the "network" owns these bytes while b reads them */
    uint8_t *tmp = malloc(n);
    assert_non_null(tmp);
    memcpy(tmp, out->data, n);
    dn_buf_consume(out, n);
    if (t)
        track(t, a->side, tmp, n);
    for (size_t off = 0; off < n;) {
        size_t k = rnd_chunk(n - off);
        assert_int_equal(dn_yamux_feed(b->y, tmp + off, k), 0);
        off += k;
    }
    free(tmp);
    return n;
}

static void pump_all(peer *a, peer *b, tracker *t)
{
    for (int i = 0; i < 100000; i++) {
        size_t m = pump_step(a, b, t, SIZE_MAX) + pump_step(b, a, t, SIZE_MAX);
        if (m == 0)
            return;
    }
    fail_msg("pump did not settle");
}

static tracker *tracker_new(void)
{
    tracker *t = calloc(1, sizeof *t);
    assert_non_null(t);
    return t;
}

/* raw frame builder for hostile inputs */
static size_t frame(uint8_t *p, uint8_t ver, uint8_t type, uint16_t flags, uint32_t id,
                    uint32_t len)
{
    p[0] = ver;
    p[1] = type;
    p[2] = (uint8_t)(flags >> 8);
    p[3] = (uint8_t)flags;
    p[4] = (uint8_t)(id >> 24);
    p[5] = (uint8_t)(id >> 16);
    p[6] = (uint8_t)(id >> 8);
    p[7] = (uint8_t)id;
    p[8] = (uint8_t)(len >> 24);
    p[9] = (uint8_t)(len >> 16);
    p[10] = (uint8_t)(len >> 8);
    p[11] = (uint8_t)len;
    return 12;
}

static const uint8_t GOAWAY_PROTO[12] = {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

static bool output_ends_with(dn_yamux *y, const uint8_t *tail, size_t n)
{
    dn_buf *o = dn_yamux_output(y);
    return o->len >= n && memcmp(o->data + o->len - n, tail, n) == 0;
}

/* Count frames with (type, flags) in an engine's output and drop it. */
static size_t count_frames(dn_yamux *y, uint8_t type, uint16_t flags)
{
    dn_buf *o = dn_yamux_output(y);
    size_t c = 0;
    for (size_t off = 0; off + 12 <= o->len;) {
        uint32_t len = be32(o->data + off + 8);
        uint16_t f = (uint16_t)(o->data[off + 2] << 8 | o->data[off + 3]);
        if (o->data[off + 1] == type && f == flags)
            c++;
        off += 12 + (o->data[off + 1] == 0 ? len : 0);
    }
    dn_buf_reset(o);
    return c;
}

/* ---- tests ------------------------------------------------------------ */

static void test_wire_bytes(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    assert_int_equal(id, 1);
    /* SYN: WindowUpdate, flags SYN, stream 1, delta 0 */
    static const uint8_t syn[] = {0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
    dn_buf *o = dn_yamux_output(c->y);
    assert_int_equal(o->len, 12);
    assert_memory_equal(o->data, syn, 12);
    dn_buf_reset(o);
    assert_int_equal(dn_yamux_write(c->y, id, (const uint8_t *)"abc", 3), 3);
    static const uint8_t data[] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 'a', 'b', 'c'};
    assert_int_equal(o->len, sizeof data);
    assert_memory_equal(o->data, data, sizeof data);
    dn_buf_reset(o);

    /* the server's first frame on an inbound stream carries ACK */
    assert_int_equal(dn_yamux_feed(s->y, syn, 12), 0);
    assert_int_equal(s->opened[1], 1);
    assert_int_equal(dn_yamux_write(s->y, 1, (const uint8_t *)"Z", 1), 1);
    static const uint8_t ack_data[] = {0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 'Z'};
    o = dn_yamux_output(s->y);
    assert_int_equal(o->len, sizeof ack_data);
    assert_memory_equal(o->data, ack_data, sizeof ack_data);
    dn_buf_reset(o);
    /* already accepted by that write: accept sends nothing */
    assert_int_equal(dn_yamux_accept(s->y, 1), 0);
    assert_int_equal(o->len, 0);
    /* server streams are even */
    assert_int_equal(dn_yamux_open(s->y, &id), 0);
    assert_int_equal(id, 2);
    dn_buf_reset(o);
    assert_int_equal(dn_yamux_close_write(s->y, 1), 0);
    static const uint8_t fin[] = {0, 1, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_memory_equal(o->data, fin, 12);
    dn_buf_reset(o);
    assert_int_equal(dn_yamux_reset(s->y, 2), 0);
    static const uint8_t rst[] = {0, 1, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0};
    assert_memory_equal(o->data, rst, 12);
    dn_buf_reset(o);
    assert_int_equal(dn_yamux_ping(s->y, 0x01020304), 0);
    static const uint8_t ping[] = {0, 2, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
    assert_memory_equal(o->data, ping, 12);
    dn_buf_reset(o);
    assert_int_equal(dn_yamux_goaway(s->y, DN_YAMUX_GOAWAY_INTERNAL), 0);
    static const uint8_t ga[] = {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    assert_int_equal(o->len, 12);
    assert_memory_equal(o->data, ga, 12);
    peer_free(c);
    peer_free(s);
}

static void test_explicit_accept_bytes(void **state)
{
    peer *s = peer_new(false, NULL);
    static const uint8_t syn[] = {0, 1, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0};
    assert_int_equal(dn_yamux_feed(s->y, syn, 12), 0);
    assert_int_equal(dn_yamux_accept(s->y, 7), 0);
    static const uint8_t ack[] = {0, 1, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0};
    dn_buf *o = dn_yamux_output(s->y);
    assert_int_equal(o->len, 12);
    assert_memory_equal(o->data, ack, 12);
    /* accept on an outbound or unknown stream */
    assert_int_equal(dn_yamux_accept(s->y, 9), DN_ENOTFOUND);
    uint32_t id;
    assert_int_equal(dn_yamux_open(s->y, &id), 0);
    assert_int_equal(dn_yamux_accept(s->y, id), DN_EINVAL);
    peer_free(s);
}

static void test_open_accept_write_fin(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    tracker *t = tracker_new();
    s->auto_accept = c->store = s->store = true;
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    assert_int_equal(dn_yamux_stream_count(c->y), 1);
    assert_int_equal(dn_yamux_write(c->y, id, (const uint8_t *)"hello", 5), 5);
    pump_all(c, s, t);
    assert_int_equal(s->opened[id], 1);
    assert_int_equal(c->acked[id], 1);
    assert_int_equal(s->rx[id].len, 5);
    assert_memory_equal(s->rx[id].data, "hello", 5);
    assert_int_equal(dn_yamux_consumed(s->y, id, 5), 0);
    assert_int_equal(dn_yamux_consumed(s->y, id, 1), DN_EINVAL); /* more than received */

    assert_int_equal(dn_yamux_write(s->y, id, (const uint8_t *)"world!", 6), 6);
    pump_all(c, s, t);
    assert_int_equal(c->rx[id].len, 6);
    assert_memory_equal(c->rx[id].data, "world!", 6);

    /* client half-closes: server sees FIN, may still write */
    assert_int_equal(dn_yamux_close_write(c->y, id), 0);
    assert_int_equal(dn_yamux_write(c->y, id, (const uint8_t *)"x", 1), DN_ECLOSED);
    assert_int_equal(dn_yamux_close_write(c->y, id), 0); /* idempotent */
    pump_all(c, s, t);
    assert_int_equal(s->fins[id], 1);
    assert_int_equal(s->gone[id], 0);
    assert_int_equal(dn_yamux_write(s->y, id, (const uint8_t *)"late", 4), 4);
    pump_all(c, s, t);
    assert_int_equal(c->rx[id].len, 10);
    assert_int_equal(c->gone[id], 0);

    /* server closes: both sides free the stream, GONE exactly once */
    assert_int_equal(dn_yamux_close_write(s->y, id), 0);
    assert_int_equal(s->gone[id], 1);
    assert_int_equal(dn_yamux_stream_count(s->y), 0);
    pump_all(c, s, t);
    assert_int_equal(c->fins[id], 1);
    assert_int_equal(c->gone[id], 1);
    assert_int_equal(s->gone[id], 1);
    assert_int_equal(dn_yamux_stream_count(c->y), 0);
    assert_int_equal(c->resets[id], 0);

    /* after GONE: the id is closed, ids never opened are unknown */
    assert_int_equal(dn_yamux_write(c->y, id, (const uint8_t *)"x", 1), DN_ECLOSED);
    assert_int_equal(dn_yamux_consumed(c->y, id, 0), DN_ECLOSED);
    assert_int_equal(dn_yamux_reset(c->y, id), DN_ECLOSED);
    assert_int_equal(dn_yamux_write(c->y, 99, (const uint8_t *)"x", 1), DN_ENOTFOUND);
    assert_int_equal(dn_yamux_send_window(c->y, id), 0);
    free(t);
    peer_free(c);
    peer_free(s);
}

static void test_reset(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    tracker *t = tracker_new();
    s->auto_accept = true;
    uint32_t a, b;
    assert_int_equal(dn_yamux_open(c->y, &a), 0);
    assert_int_equal(dn_yamux_open(c->y, &b), 0);
    pump_all(c, s, t);

    /* server resets a: GONE at once locally; client sees RESET then GONE */
    assert_int_equal(dn_yamux_reset(s->y, a), 0);
    assert_int_equal(s->gone[a], 1);
    assert_int_equal(s->resets[a], 0);
    c->nevents = 0;
    pump_all(c, s, t);
    assert_int_equal(c->resets[a], 1);
    assert_int_equal(c->gone[a], 1);
    assert_int_equal(c->nevents, 2);
    assert_int_equal(c->events[0], DN_YAMUX_EV_RESET);
    assert_int_equal(c->events[1], DN_YAMUX_EV_STREAM_GONE);

    /* client resets b while the server has data in flight for it: the
     * late data is dropped, the session survives */
    assert_int_equal(dn_yamux_write(s->y, b, (const uint8_t *)"in flight", 9), 9);
    assert_int_equal(dn_yamux_close_write(s->y, b), 0);
    assert_int_equal(dn_yamux_reset(c->y, b), 0);
    assert_int_equal(c->gone[b], 1);
    pump_all(c, s, t);
    assert_int_equal(c->rx_total[b], 0);
    assert_int_equal(c->gone[b], 1);
    assert_int_equal(s->resets[b], 1);
    assert_int_equal(s->gone[b], 1);
    assert_int_equal(dn_yamux_stream_count(c->y), 0);
    assert_int_equal(dn_yamux_stream_count(s->y), 0);
    /* the session still works */
    uint32_t d;
    assert_int_equal(dn_yamux_open(c->y, &d), 0);
    assert_int_equal(dn_yamux_write(c->y, d, (const uint8_t *)"ok", 2), 2);
    pump_all(c, s, t);
    assert_int_equal(s->rx_total[d], 2);
    free(t);
    peer_free(c);
    peer_free(s);
}

/* 200 concurrent streams, both directions, random interleaving of writes
 * and random split points; every stream FINs both ways and is GONE once. */
static void test_many_streams(void **state)
{
    enum { N = 200, LEN = 3000 };
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    tracker *t = tracker_new();
    s->auto_accept = true;
    c->verify = s->verify = true;
    c->auto_consume = s->auto_consume = true;
    uint32_t ids[N];
    size_t sent_c[N] = {0}, sent_s[N] = {0};
    uint8_t buf[LEN];
    for (int i = 0; i < N; i++)
        assert_int_equal(dn_yamux_open(c->y, &ids[i]), 0);
    assert_int_equal(dn_yamux_stream_count(c->y), N);
    for (int round = 0; round < 10000; round++) {
        bool busy = false;
        for (int k = 0; k < 20; k++) {
            int i = (int)(rnd() % N);
            uint32_t id = ids[i];
            if (sent_c[i] < LEN) {
                size_t n = 1 + rnd() % (LEN - sent_c[i]);
                for (size_t j = 0; j < n; j++)
                    buf[j] = pattern(sent_c[i] + j, id);
                ssize_t w = dn_yamux_write(c->y, id, buf, n);
                assert_true(w > 0);
                sent_c[i] += (size_t)w;
                if (sent_c[i] == LEN)
                    assert_int_equal(dn_yamux_close_write(c->y, id), 0);
            }
            if (s->opened[id] && sent_s[i] < LEN && !s->gone[id]) {
                size_t n = 1 + rnd() % (LEN - sent_s[i]);
                for (size_t j = 0; j < n; j++)
                    buf[j] = pattern(sent_s[i] + j, id);
                ssize_t w = dn_yamux_write(s->y, id, buf, n);
                assert_true(w > 0);
                sent_s[i] += (size_t)w;
                if (sent_s[i] == LEN)
                    assert_int_equal(dn_yamux_close_write(s->y, id), 0);
            }
        }
        pump_step(c, s, t, 1 + rnd() % 5000);
        pump_step(s, c, t, 1 + rnd() % 5000);
        for (int i = 0; i < N; i++)
            if (sent_c[i] < LEN || sent_s[i] < LEN)
                busy = true;
        if (!busy)
            break;
    }
    pump_all(c, s, t);
    for (int i = 0; i < N; i++) {
        uint32_t id = ids[i];
        assert_int_equal(s->opened[id], 1);
        assert_int_equal(c->acked[id], 1);
        assert_int_equal(s->rx_total[id], LEN);
        assert_int_equal(c->rx_total[id], LEN);
        assert_int_equal(s->fins[id], 1);
        assert_int_equal(c->fins[id], 1);
        assert_int_equal(s->gone[id], 1);
        assert_int_equal(c->gone[id], 1);
    }
    assert_int_equal(c->n_gone, N);
    assert_int_equal(s->n_gone, N);
    assert_int_equal(dn_yamux_stream_count(c->y), 0);
    assert_int_equal(dn_yamux_stream_count(s->y), 0);
    free(t);
    peer_free(c);
    peer_free(s);
}

/* Bulk transfer from client to server through a pump that moves at most
 * `pump` bytes per step; returns the tracker for window checks. */
static tracker *bulk(peer *c, peer *s, uint64_t total, size_t pump, size_t consume_per_step)
{
    tracker *t = tracker_new();
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    uint8_t *buf = malloc(MiB);
    assert_non_null(buf);
    uint64_t sent = 0, consumed = 0;
    for (long step = 0; step < 10000000; step++) {
        if (sent < total) {
            uint64_t want = total - sent;
            uint32_t win = dn_yamux_send_window(c->y, id);
            if (want > win)
                want = win;
            if (want > MiB)
                want = MiB;
            for (size_t j = 0; j < want; j++)
                buf[j] = pattern(sent + j, id);
            ssize_t w = dn_yamux_write(c->y, id, buf, (size_t)want);
            assert_int_equal(w, (ssize_t)want);
            if (want > 0 && want == win)
                assert_int_equal(dn_yamux_write(c->y, id, buf, 1), 0); /* window full */
            sent += (uint64_t)w;
            if (sent == total)
                assert_int_equal(dn_yamux_close_write(c->y, id), 0);
        }
        size_t moved = pump_step(c, s, t, pump);
        if (consume_per_step) {
            /* a slow application: drains a little per step */
            uint64_t avail = s->rx_total[id] - consumed;
            size_t n = avail < consume_per_step ? (size_t)avail : consume_per_step;
            if (n) {
                assert_int_equal(dn_yamux_consumed(s->y, id, n), 0);
                consumed += n;
            }
            moved += n;
        }
        moved += pump_step(s, c, t, pump);
        if (sent == total && moved == 0)
            break;
    }
    free(buf);
    assert_int_equal(s->rx_total[id], total);
    assert_int_equal(s->fins[id], 1);
    return t;
}

static void test_bulk_64mib_window_grows(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    s->auto_accept = s->auto_consume = s->verify = true;
    s->close_on_fin = true;
    tracker *t = bulk(c, s, 64ull * MiB, 100 * KiB, 0);
    /* the window grew to the 16 MiB default maximum ... */
    assert_true(t->max_win[0] > 8 * MiB);
    assert_true(t->max_win[0] <= 16 * MiB);
    /* ... so 64 MiB needed far fewer updates than 64 MiB / 128 KiB = 512 */
    assert_true(t->wu_frames[1] < 100);
    /* 64 KiB frames */
    assert_true(t->data_frames[0] >= 64 * 16);
    assert_int_equal(c->gone[1], 1);
    assert_int_equal(s->gone[1], 1);
    free(t);
    peer_free(c);
    peer_free(s);
}

static void test_bulk_custom_max_window(void **state)
{
    dn_yamux_config cfg = {.max_window = 1 * MiB};
    peer *c = peer_new(true, NULL), *s = peer_new(false, &cfg);
    s->auto_accept = s->auto_consume = s->verify = true;
    tracker *t = bulk(c, s, 8ull * MiB, 1 + 300 * KiB, 0);
    assert_true(t->max_win[0] > DN_YAMUX_INITIAL_WINDOW);
    assert_true(t->max_win[0] <= 1 * MiB);
    free(t);
    peer_free(c);
    peer_free(s);
}

static void test_slow_reader_window_stays(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    s->auto_accept = s->verify = true;
    /* the application drains 20 KiB per step while much more is buffered:
     * the window must not grow beyond its initial size */
    tracker *t = bulk(c, s, 4ull * MiB, 64 * KiB, 20 * KiB);
    assert_true(t->max_win[0] <= DN_YAMUX_INITIAL_WINDOW);
    free(t);
    peer_free(c);
    peer_free(s);
}

static void test_write_limited_by_window(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    s->auto_accept = true;
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    uint8_t *big = calloc(1, 300 * KiB);
    assert_non_null(big);
    assert_int_equal(dn_yamux_send_window(c->y, id), DN_YAMUX_INITIAL_WINDOW);
    assert_int_equal(dn_yamux_write(c->y, id, big, 300 * KiB), DN_YAMUX_INITIAL_WINDOW);
    assert_int_equal(dn_yamux_send_window(c->y, id), 0);
    assert_int_equal(dn_yamux_write(c->y, id, big, 1), 0);
    pump_all(c, s, NULL);
    assert_int_equal(s->rx_total[id], DN_YAMUX_INITIAL_WINDOW);
    /* nothing consumed: no update, the writer stays blocked */
    assert_int_equal(dn_yamux_send_window(c->y, id), 0);
    assert_int_equal(c->n_writable, 0);
    /* consuming less than half the window sends nothing */
    assert_int_equal(dn_yamux_consumed(s->y, id, 100 * KiB), 0);
    pump_all(c, s, NULL);
    assert_int_equal(dn_yamux_send_window(c->y, id), 0);
    /* crossing half sends an update for everything consumed */
    assert_int_equal(dn_yamux_consumed(s->y, id, 28 * KiB), 0);
    pump_all(c, s, NULL);
    assert_int_equal(c->n_writable, 1);
    assert_int_equal(dn_yamux_send_window(c->y, id), 128 * KiB);
    free(big);
    peer_free(c);
    peer_free(s);
}

static void test_syn_with_larger_window(void **state)
{
    peer *s = peer_new(false, NULL);
    uint8_t f[12];
    /* the peer's SYN may advertise a larger window right away */
    frame(f, 0, 1, 1, 5, 1 * MiB);
    assert_int_equal(dn_yamux_feed(s->y, f, 12), 0);
    assert_int_equal(s->opened[5], 1);
    assert_int_equal(dn_yamux_send_window(s->y, 5), DN_YAMUX_INITIAL_WINDOW + MiB);
    /* a window update delta overflowing 32 bits saturates */
    frame(f, 0, 1, 0, 5, 0xffffffffu);
    assert_int_equal(dn_yamux_feed(s->y, f, 12), 0);
    assert_int_equal(dn_yamux_send_window(s->y, 5), 0xffffffffu);
    peer_free(s);
}

static void test_ping(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    assert_int_equal(dn_yamux_ping(c->y, 0xdeadbeef), 0);
    pump_step(c, s, NULL, SIZE_MAX);
    static const uint8_t pong[] = {0, 2, 0, 2, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef};
    dn_buf *o = dn_yamux_output(s->y);
    assert_int_equal(o->len, 12);
    assert_memory_equal(o->data, pong, 12);
    assert_int_equal(s->n_ping, 0); /* requests are answered, not reported */
    pump_step(s, c, NULL, SIZE_MAX);
    assert_int_equal(c->n_ping, 1);
    assert_int_equal(c->last_ping, 0xdeadbeef);
    assert_int_equal(dn_yamux_output(c->y)->len, 0); /* replies are not answered */
    peer_free(c);
    peer_free(s);
}

static void test_goaway(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    s->auto_accept = true;
    uint32_t a;
    assert_int_equal(dn_yamux_open(c->y, &a), 0);
    pump_all(c, s, NULL);
    assert_int_equal(dn_yamux_goaway(s->y, DN_YAMUX_GOAWAY_NORMAL), 0);
    assert_int_equal(dn_yamux_open(s->y, NULL), DN_ECLOSED);
    pump_all(c, s, NULL);
    assert_int_equal(c->n_goaway, 1);
    assert_int_equal(c->goaway_code, 0);
    assert_int_equal(dn_yamux_open(c->y, NULL), DN_ECLOSED);
    /* existing streams keep working */
    assert_int_equal(dn_yamux_write(c->y, a, (const uint8_t *)"still", 5), 5);
    pump_all(c, s, NULL);
    assert_int_equal(s->rx_total[a], 5);
    /* an inbound SYN after our GoAway is refused with RST */
    uint8_t f[12];
    frame(f, 0, 1, 1, 3, 0);
    assert_int_equal(dn_yamux_feed(s->y, f, 12), 0);
    assert_int_equal(s->opened[3], 0);
    static const uint8_t rst[] = {0, 1, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0};
    dn_buf *o = dn_yamux_output(s->y);
    assert_int_equal(o->len, 12);
    assert_memory_equal(o->data, rst, 12);
    peer_free(c);
    peer_free(s);
}

static void expect_proto_error(const uint8_t *in, size_t len, bool client)
{
    peer *p = peer_new(client, NULL);
    assert_int_equal(dn_yamux_feed(p->y, in, len), DN_EPROTO);
    assert_true(output_ends_with(p->y, GOAWAY_PROTO, 12));
    /* sticky: the session is dead */
    uint8_t ping[12];
    frame(ping, 0, 2, 1, 0, 1);
    assert_int_equal(dn_yamux_feed(p->y, ping, 12), DN_EPROTO);
    assert_int_equal(dn_yamux_open(p->y, NULL), DN_ECLOSED);
    peer_free(p);
}

static void test_hostile_header(void **state)
{
    uint8_t f[64] = {0};
    frame(f, 1, 2, 1, 0, 0); /* bad version */
    expect_proto_error(f, 12, false);
    frame(f, 0, 4, 0, 0, 0); /* unknown type */
    expect_proto_error(f, 12, false);
    frame(f, 0, 0xff, 1, 1, 0);
    expect_proto_error(f, 12, false);
    frame(f, 0, 1, 1, 2, 0); /* SYN with the server's own parity */
    expect_proto_error(f, 12, false);
    frame(f, 0, 1, 1, 1, 0); /* client receiving an odd SYN */
    expect_proto_error(f, 12, true);
    frame(f, 0, 1, 1, 0, 0); /* SYN on id 0 */
    expect_proto_error(f, 12, true);
    frame(f, 0, 0, 0, 0, 0); /* data on the session id */
    expect_proto_error(f, 12, false);
    frame(f, 0, 0, 0, 7, 3); /* data for a stream never opened */
    expect_proto_error(f, 15, false);
    frame(f, 0, 1, 2, 9, 10); /* window update for a stream never opened */
    expect_proto_error(f, 12, false);
    /* SYN for an open stream, and SYN ids going backwards */
    size_t n = frame(f, 0, 1, 1, 5, 0);
    n += frame(f + n, 0, 1, 1, 5, 0);
    expect_proto_error(f, n, false);
    n = frame(f, 0, 1, 1, 5, 0);
    n += frame(f + n, 0, 1, 1, 3, 0);
    expect_proto_error(f, n, false);
    /* huge length field on a new stream */
    frame(f, 0, 0, 1, 1, 0xffffffffu);
    expect_proto_error(f, 12, false);
}

static void test_truncated_header(void **state)
{
    peer *s = peer_new(false, NULL);
    uint8_t f[24];
    size_t n = frame(f, 0, 0, 1, 1, 2);
    f[n++] = 'h';
    f[n++] = 'i';
    assert_int_equal(dn_yamux_feed(s->y, f, 11), 0); /* header incomplete */
    assert_int_equal(s->n_opened, 0);
    assert_int_equal(dn_yamux_feed(s->y, f + 11, 1), 0);
    assert_int_equal(s->n_opened, 1);
    assert_int_equal(s->rx_total[1], 0);
    assert_int_equal(dn_yamux_feed(s->y, f + 12, 1), 0); /* payload arrives piecewise */
    assert_int_equal(s->rx_total[1], 1);
    assert_int_equal(dn_yamux_feed(s->y, f + 13, 1), 0);
    assert_int_equal(s->rx_total[1], 2);
    assert_int_equal(dn_yamux_feed(s->y, f, 0), 0);
    peer_free(s);
}

static void test_data_past_window(void **state)
{
    uint8_t *in = calloc(1, 2 * 12 + DN_YAMUX_INITIAL_WINDOW + 1);
    assert_non_null(in);
    /* one frame of exactly the window is fine ... */
    size_t n = frame(in, 0, 0, 1, 1, DN_YAMUX_INITIAL_WINDOW);
    n += DN_YAMUX_INITIAL_WINDOW;
    peer *s = peer_new(false, NULL);
    assert_int_equal(dn_yamux_feed(s->y, in, n), 0);
    assert_int_equal(s->rx_total[1], DN_YAMUX_INITIAL_WINDOW);
    /* ... one more byte is not */
    uint8_t f[13];
    frame(f, 0, 0, 0, 1, 1);
    assert_int_equal(dn_yamux_feed(s->y, f, 13), DN_EPROTO);
    assert_true(output_ends_with(s->y, GOAWAY_PROTO, 12));
    peer_free(s);
    /* a single SYN frame one byte larger than the initial window */
    frame(in, 0, 0, 1, 1, DN_YAMUX_INITIAL_WINDOW + 1);
    expect_proto_error(in, 12 + DN_YAMUX_INITIAL_WINDOW + 1, false);
    /* consumed data re-opens the window: after the update, it fits */
    s = peer_new(false, NULL);
    s->auto_consume = true;
    n = frame(in, 0, 0, 1, 1, DN_YAMUX_INITIAL_WINDOW);
    n += DN_YAMUX_INITIAL_WINDOW;
    assert_int_equal(dn_yamux_feed(s->y, in, n), 0);
    /* one WindowUpdate carrying the ACK, returning the 256 KiB consumed and,
     * since a full window was drained at once, doubling the window:
     * delta = 256 KiB + 256 KiB */
    static const uint8_t upd[] = {0, 1, 0, 2, 0, 0, 0, 1, 0, 0x08, 0, 0};
    dn_buf *o = dn_yamux_output(s->y);
    assert_int_equal(o->len, 12);
    assert_memory_equal(o->data, upd, 12);
    frame(in, 0, 0, 0, 1, DN_YAMUX_INITIAL_WINDOW);
    assert_int_equal(dn_yamux_feed(s->y, in, 12 + DN_YAMUX_INITIAL_WINDOW), 0);
    assert_int_equal(s->rx_total[1], 2 * DN_YAMUX_INITIAL_WINDOW);
    peer_free(s);
    free(in);
}

static void test_data_after_fin(void **state)
{
    uint8_t f[64];
    size_t n = frame(f, 0, 1, 1 | 4, 1, 0); /* SYN|FIN */
    n += frame(f + n, 0, 0, 0, 1, 1);
    f[n++] = 'x';
    expect_proto_error(f, n, false);
    /* but an empty data frame or window update after FIN is fine */
    peer *s = peer_new(false, NULL);
    n = frame(f, 0, 1, 1 | 4, 1, 0);
    n += frame(f + n, 0, 0, 4, 1, 0);
    n += frame(f + n, 0, 1, 0, 1, 100);
    assert_int_equal(dn_yamux_feed(s->y, f, n), 0);
    assert_int_equal(s->fins[1], 1);
    peer_free(s);
}

static void test_syn_storm_backlog(void **state)
{
    enum { N = 2000 };
    peer *s = peer_new(false, NULL); /* nobody accepts */
    uint8_t *in = malloc(N * 12);
    assert_non_null(in);
    for (uint32_t i = 0; i < N; i++)
        frame(in + 12 * i, 0, 1, 1, 2 * i + 1, 0);
    for (size_t off = 0; off < N * 12;) {
        size_t k = rnd_chunk(N * 12 - off);
        assert_int_equal(dn_yamux_feed(s->y, in + off, k), 0);
        off += k;
    }
    assert_int_equal(s->n_opened, 256);
    assert_int_equal(dn_yamux_stream_count(s->y), 256);
    assert_int_equal(count_frames(s->y, 1, 8), N - 256);
    /* accepting frees backlog room */
    for (uint32_t id = 1; id <= 20; id += 2)
        assert_int_equal(dn_yamux_accept(s->y, id), 0);
    dn_buf_reset(dn_yamux_output(s->y));
    uint8_t f[12];
    frame(f, 0, 1, 1, 2 * N + 1, 0);
    assert_int_equal(dn_yamux_feed(s->y, f, 12), 0);
    assert_int_equal(s->opened[2 * N + 1], 1);
    assert_int_equal(dn_yamux_output(s->y)->len, 0);
    /* late frames for refused streams are dropped quietly */
    uint8_t d[15] = {0};
    frame(d, 0, 0, 0, 2 * 1500 + 1, 3);
    assert_int_equal(dn_yamux_feed(s->y, d, 15), 0);
    frame(d, 0, 1, 0, 2 * 1500 + 1, 3);
    assert_int_equal(dn_yamux_feed(s->y, d, 12), 0);
    assert_int_equal(dn_yamux_output(s->y)->len, 0);
    free(in);
    peer_free(s);
}

static void test_syn_storm_max_streams(void **state)
{
    enum { N = 300 };
    dn_yamux_config cfg = {.max_streams = 10};
    peer *s = peer_new(false, &cfg);
    s->auto_accept = true;
    uint8_t in[N * 15];
    size_t n = 0;
    for (uint32_t i = 0; i < N; i++) {
        n += frame(in + n, 0, 0, 1, 2 * i + 1, 3); /* SYN with data */
        memcpy(in + n, "abc", 3);
        n += 3;
    }
    assert_int_equal(dn_yamux_feed(s->y, in, n), 0);
    assert_int_equal(s->n_opened, 10);
    assert_int_equal(dn_yamux_stream_count(s->y), 10);
    assert_int_equal(s->rx_total[1], 3);
    assert_int_equal(s->rx_total[21], 0); /* refused: payload skipped */
    assert_int_equal(count_frames(s->y, 1, 8), N - 10);
    /* our own opens hit the same limit */
    assert_int_equal(dn_yamux_open(s->y, NULL), DN_ELIMIT);
    /* a reset frees a slot */
    assert_int_equal(dn_yamux_reset(s->y, 1), 0);
    uint32_t id;
    assert_int_equal(dn_yamux_open(s->y, &id), 0);
    assert_int_equal(id, 2);
    peer_free(s);
}

static void test_outbound_backlog(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    s->auto_accept = true;
    for (int i = 0; i < 256; i++)
        assert_int_equal(dn_yamux_open(c->y, NULL), 0);
    assert_int_equal(dn_yamux_open(c->y, NULL), DN_EAGAIN);
    pump_all(c, s, NULL);
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    assert_int_equal(id, 2 * 256 + 1);
    peer_free(c);
    peer_free(s);
}

static void test_unknown_stream_after_close(void **state)
{
    peer *c = peer_new(true, NULL);
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    assert_int_equal(dn_yamux_reset(c->y, id), 0);
    uint8_t f[64];
    size_t n = frame(f, 0, 0, 2, id, 4); /* ACK + data in flight */
    memcpy(f + n, "late", 4);
    n += 4;
    n += frame(f + n, 0, 1, 4, id, 1000); /* FIN + window update */
    n += frame(f + n, 0, 1, 8, id, 0);    /* and a reset */
    assert_int_equal(dn_yamux_feed(c->y, f, n), 0);
    assert_int_equal(c->rx_total[id], 0);
    assert_int_equal(c->gone[id], 1);
    /* but a data frame larger than any window we could have granted is not
     * plausible: protocol error */
    frame(f, 0, 0, 0, id, 17 * MiB);
    assert_int_equal(dn_yamux_feed(c->y, f, 12), DN_EPROTO);
    peer_free(c);
}

/* The callback resets the stream in the middle of a Data frame whose
 * payload arrives in pieces and which carries FIN: the rest is dropped,
 * GONE is delivered once, nothing is used after free. */
static void test_reset_inside_callbacks(void **state)
{
    peer *s = peer_new(false, NULL);
    s->reset_on_data = true;
    uint8_t f[64];
    size_t n = frame(f, 0, 0, 1 | 4, 1, 10);
    memcpy(f + n, "0123456789", 10);
    n += 10;
    n += frame(f + n, 0, 0, 0, 1, 2); /* in flight after our RST */
    f[n++] = 'a';
    f[n++] = 'b';
    assert_int_equal(dn_yamux_feed(s->y, f, 15), 0);
    assert_int_equal(s->rx_total[1], 3);
    assert_int_equal(s->gone[1], 1);
    assert_int_equal(dn_yamux_feed(s->y, f + 15, n - 15), 0);
    assert_int_equal(s->rx_total[1], 3);
    assert_int_equal(s->gone[1], 1);
    assert_int_equal(s->fins[1], 0);
    peer_free(s);

    /* reset from STREAM_OPENED: the SYN's payload is dropped */
    s = peer_new(false, NULL);
    s->reset_on_open = true;
    n = frame(f, 0, 0, 1, 1, 3);
    memcpy(f + n, "abc", 3);
    n += 3;
    assert_int_equal(dn_yamux_feed(s->y, f, n), 0);
    assert_int_equal(s->gone[1], 1);
    assert_int_equal(s->rx_total[1], 0);
    assert_int_equal(dn_yamux_stream_count(s->y), 0);
    static const uint8_t rst[] = {0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_true(output_ends_with(s->y, rst, 12));
    peer_free(s);
}

/* A whole conversation delivered one byte at a time. */
static void test_byte_by_byte(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    s->auto_accept = s->store = c->store = true;
    s->close_on_fin = true;
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    assert_int_equal(dn_yamux_write(c->y, id, (const uint8_t *)"abcdef", 6), 6);
    assert_int_equal(dn_yamux_ping(c->y, 7), 0);
    assert_int_equal(dn_yamux_close_write(c->y, id), 0);
    dn_buf *o = dn_yamux_output(c->y);
    for (size_t i = 0; i < o->len; i++)
        assert_int_equal(dn_yamux_feed(s->y, o->data + i, 1), 0);
    dn_buf_reset(o);
    o = dn_yamux_output(s->y);
    for (size_t i = 0; i < o->len; i++)
        assert_int_equal(dn_yamux_feed(c->y, o->data + i, 1), 0);
    dn_buf_reset(o);
    assert_int_equal(s->rx[id].len, 6);
    assert_memory_equal(s->rx[id].data, "abcdef", 6);
    assert_int_equal(c->last_ping, 7);
    assert_int_equal(c->gone[id], 1);
    assert_int_equal(s->gone[id], 1);
    peer_free(c);
    peer_free(s);
}

static void test_config(void **state)
{
    dn_yamux *y;
    dn_yamux_config bad = {.max_window = 1000};
    assert_int_equal(dn_yamux_new(true, &bad, NULL, NULL, &y), DN_EINVAL);
    assert_int_equal(dn_yamux_new(true, NULL, NULL, NULL, NULL), DN_EINVAL);
    /* no callback: events are dropped, frames still flow */
    assert_int_equal(dn_yamux_new(false, NULL, NULL, NULL, &y), 0);
    uint8_t f[12];
    frame(f, 0, 1, 1, 1, 0);
    assert_int_equal(dn_yamux_feed(y, f, 12), 0);
    assert_int_equal(dn_yamux_stream_count(y), 1);
    dn_yamux_free(y);
    dn_yamux_free(NULL);
}

/* ---- zero-copy writes (dn_yamux_write_header) ------------------------- */

/* What a caller of write_header does: whatever the engine queued first,
 * then the header, then exactly n bytes of its own data. */
static void send_parts(peer *a, peer *b, tracker *t, const uint8_t hdr[12], const uint8_t *data,
                       size_t n)
{
    pump_step(a, b, t, SIZE_MAX);
    if (t) {
        track(t, a->side, hdr, 12);
        track(t, a->side, data, n);
    }
    assert_int_equal(dn_yamux_feed(b->y, hdr, 12), 0);
    if (n)
        assert_int_equal(dn_yamux_feed(b->y, data, n), 0);
}

static void test_write_header_window(void **state)
{
    peer *c = peer_new(true, NULL), *s = peer_new(false, NULL);
    tracker *t = tracker_new();
    s->auto_accept = s->store = true;
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    pump_all(c, s, t);
    assert_int_equal(c->acked[id], 1);
    uint8_t *src = malloc(DN_YAMUX_INITIAL_WINDOW + 64 * KiB);
    assert_non_null(src);
    for (size_t i = 0; i < DN_YAMUX_INITIAL_WINDOW + 64 * KiB; i++)
        src[i] = pattern(i, id);
    dn_buf *o = dn_yamux_output(c->y);
    uint8_t hdr[12];

    /* Capped at one 64 KiB frame; Data, no flags (the SYN went with
     * open), our stream id, the length, all big-endian. */
    memset(hdr, 0xee, sizeof hdr);
    assert_int_equal(dn_yamux_write_header(c->y, id, 100000, hdr), 64 * KiB);
    static const uint8_t want1[12] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0};
    assert_memory_equal(hdr, want1, 12);
    assert_int_equal(o->len, 0); /* the header is the caller's to send */
    assert_int_equal(dn_yamux_send_window(c->y, id), DN_YAMUX_INITIAL_WINDOW - 64 * KiB);
    size_t sent = 0;
    send_parts(c, s, t, hdr, src, 64 * KiB);
    sent += 64 * KiB;

    /* Below the cap: exactly what was asked. */
    assert_int_equal(dn_yamux_write_header(c->y, id, 1000, hdr), 1000);
    static const uint8_t want2[12] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x03, 0xe8};
    assert_memory_equal(hdr, want2, 12);
    assert_int_equal(dn_yamux_send_window(c->y, id), DN_YAMUX_INITIAL_WINDOW - 64 * KiB - 1000);
    send_parts(c, s, t, hdr, src + sent, 1000);
    sent += 1000;

    /* Until the window runs out: min(len, 64 KiB, window) each time. */
    while (dn_yamux_send_window(c->y, id) > 0) {
        uint32_t win = dn_yamux_send_window(c->y, id);
        size_t want = win < 64 * KiB ? win : 64 * KiB;
        ssize_t r = dn_yamux_write_header(c->y, id, 100000, hdr);
        assert_int_equal(r, want);
        assert_int_equal(be32(hdr + 8), want);
        assert_int_equal(be32(hdr + 4), id);
        assert_int_equal(dn_yamux_send_window(c->y, id), win - want);
        send_parts(c, s, t, hdr, src + sent, (size_t)r);
        sent += (size_t)r;
    }
    assert_int_equal(sent, DN_YAMUX_INITIAL_WINDOW);
    /* Window 0: nothing taken, nothing queued. */
    assert_int_equal(dn_yamux_write_header(c->y, id, 5, hdr), 0);
    assert_int_equal(dn_yamux_write_header(c->y, id, 0, hdr), 0);
    assert_int_equal(o->len, 0);
    assert_int_equal(dn_yamux_send_window(c->y, id), 0);
    /* The peer got every byte, in order, and nothing past its window. */
    assert_int_equal(s->rx[id].len, DN_YAMUX_INITIAL_WINDOW);
    assert_memory_equal(s->rx[id].data, src, DN_YAMUX_INITIAL_WINDOW);
    assert_int_equal(t->data_frames[0],
                     1 + 1 + (DN_YAMUX_INITIAL_WINDOW - 64 * KiB - 1000) / (64 * KiB) + 1);

    /* Consuming reopens the window; write_header works again. */
    assert_int_equal(dn_yamux_consumed(s->y, id, DN_YAMUX_INITIAL_WINDOW), 0);
    pump_all(c, s, t);
    assert_true(dn_yamux_send_window(c->y, id) > 0);
    assert_int_equal(dn_yamux_write_header(c->y, id, 10, hdr), 10);
    send_parts(c, s, t, hdr, src + sent, 10);
    assert_int_equal(s->rx[id].len, DN_YAMUX_INITIAL_WINDOW + 10);
    assert_memory_equal(s->rx[id].data + sent, src + sent, 10);

    /* After our FIN, and for ids never used. */
    assert_int_equal(dn_yamux_close_write(c->y, id), 0);
    assert_int_equal(dn_yamux_write_header(c->y, id, 10, hdr), DN_ECLOSED);
    assert_int_equal(dn_yamux_write_header(c->y, 101, 10, hdr), DN_ENOTFOUND);
    pump_all(c, s, t);
    assert_int_equal(s->fins[id], 1);
    free(src);
    free(t);
    peer_free(c);
    peer_free(s);
}

/* write_header must frame data exactly as dn_yamux_write does: two
 * engines in the same state, one through each call, must put the same
 * bytes on the wire. The first frame on an inbound stream not yet accepted
 * carries ACK and accepts it. */
static void test_write_header_like_write(void **state)
{
    peer *s1 = peer_new(false, NULL), *s2 = peer_new(false, NULL), *c = peer_new(true, NULL);
    c->store = true;
    uint32_t id;
    assert_int_equal(dn_yamux_open(c->y, &id), 0);
    dn_buf *co = dn_yamux_output(c->y);
    assert_int_equal(co->len, 12);
    assert_int_equal(dn_yamux_feed(s1->y, co->data, co->len), 0);
    assert_int_equal(dn_yamux_feed(s2->y, co->data, co->len), 0);
    dn_buf_reset(co);
    assert_int_equal(s1->opened[id], 1);
    assert_int_equal(s2->opened[id], 1);
    dn_buf *o1 = dn_yamux_output(s1->y), *o2 = dn_yamux_output(s2->y);
    uint8_t hdr[12];

    /* Zero bytes: nothing sent, so the stream is not accepted by it. */
    assert_int_equal(dn_yamux_write(s1->y, id, (const uint8_t *)"", 0), 0);
    assert_int_equal(dn_yamux_write_header(s2->y, id, 0, hdr), 0);
    assert_int_equal(o1->len, 0);
    assert_int_equal(o2->len, 0);

    /* First data: Data with ACK (flags 0x0002). */
    assert_int_equal(dn_yamux_write(s1->y, id, (const uint8_t *)"abc", 3), 3);
    assert_int_equal(dn_yamux_write_header(s2->y, id, 3, hdr), 3);
    static const uint8_t ack_data[12] = {0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3};
    assert_memory_equal(hdr, ack_data, 12);
    assert_int_equal(o2->len, 0);
    assert_int_equal(o1->len, 15);
    assert_memory_equal(o1->data, hdr, 12);
    assert_memory_equal(o1->data + 12, "abc", 3);
    /* Delivered to the opener: ACKed, and the data arrives. */
    assert_int_equal(dn_yamux_feed(c->y, hdr, 12), 0);
    assert_int_equal(dn_yamux_feed(c->y, (const uint8_t *)"abc", 3), 0);
    assert_int_equal(c->acked[id], 1);
    assert_int_equal(c->rx[id].len, 3);
    assert_memory_equal(c->rx[id].data, "abc", 3);

    /* Accepted by that frame: the next has no flags, accept sends nothing. */
    dn_buf_reset(o1);
    assert_int_equal(dn_yamux_write(s1->y, id, (const uint8_t *)"de", 2), 2);
    assert_int_equal(dn_yamux_write_header(s2->y, id, 2, hdr), 2);
    assert_int_equal(hdr[2], 0);
    assert_int_equal(hdr[3], 0);
    assert_memory_equal(o1->data, hdr, 12);
    dn_buf_reset(o1);
    assert_int_equal(dn_yamux_accept(s1->y, id), 0);
    assert_int_equal(dn_yamux_accept(s2->y, id), 0);
    assert_int_equal(o1->len, 0);
    assert_int_equal(o2->len, 0);
    assert_int_equal(dn_yamux_send_window(s1->y, id), dn_yamux_send_window(s2->y, id));
    assert_int_equal(dn_yamux_send_window(s2->y, id), DN_YAMUX_INITIAL_WINDOW - 5);

    /* A large write: dn_yamux_write queues 64 KiB frames; write_header
     * takes the first frame only, with the same header. */
    uint8_t *big = calloc(1, 100000);
    assert_non_null(big);
    assert_int_equal(dn_yamux_write(s1->y, id, big, 100000), 100000);
    assert_int_equal(dn_yamux_write_header(s2->y, id, 100000, hdr), 64 * KiB);
    assert_memory_equal(o1->data, hdr, 12);
    assert_int_equal(dn_yamux_send_window(s2->y, id), DN_YAMUX_INITIAL_WINDOW - 5 - 64 * KiB);
    free(big);

    /* After the local FIN both refuse, the same way. */
    assert_int_equal(dn_yamux_close_write(s1->y, id), 0);
    assert_int_equal(dn_yamux_close_write(s2->y, id), 0);
    assert_int_equal(dn_yamux_write(s1->y, id, (const uint8_t *)"x", 1), DN_ECLOSED);
    assert_int_equal(dn_yamux_write_header(s2->y, id, 1, hdr), DN_ECLOSED);
    peer_free(s1);
    peer_free(s2);
    peer_free(c);
}

/* After a protocol error the session is dead: write_header refuses like
 * write, instead of handing out a header for a connection being closed. */
static void test_write_header_failed_session(void **state)
{
    peer *s = peer_new(false, NULL);
    uint8_t f[12], hdr[12];
    frame(f, 0, 1, 1, 1, 0);
    assert_int_equal(dn_yamux_feed(s->y, f, 12), 0);
    assert_int_equal(dn_yamux_write_header(s->y, 1, 4, hdr), 4);
    frame(f, 9, 0, 0, 1, 0); /* bad version: protocol error */
    assert_int_equal(dn_yamux_feed(s->y, f, 12), DN_EPROTO);
    assert_int_equal(dn_yamux_write_header(s->y, 1, 4, hdr), DN_ECLOSED);
    assert_int_equal(dn_yamux_write(s->y, 1, (const uint8_t *)"abcd", 4), DN_ECLOSED);
    peer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_bytes),
        cmocka_unit_test(test_explicit_accept_bytes),
        cmocka_unit_test(test_open_accept_write_fin),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_many_streams),
        cmocka_unit_test(test_bulk_64mib_window_grows),
        cmocka_unit_test(test_bulk_custom_max_window),
        cmocka_unit_test(test_slow_reader_window_stays),
        cmocka_unit_test(test_write_limited_by_window),
        cmocka_unit_test(test_syn_with_larger_window),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_hostile_header),
        cmocka_unit_test(test_truncated_header),
        cmocka_unit_test(test_data_past_window),
        cmocka_unit_test(test_data_after_fin),
        cmocka_unit_test(test_syn_storm_backlog),
        cmocka_unit_test(test_syn_storm_max_streams),
        cmocka_unit_test(test_outbound_backlog),
        cmocka_unit_test(test_unknown_stream_after_close),
        cmocka_unit_test(test_reset_inside_callbacks),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_write_header_window),
        cmocka_unit_test(test_write_header_like_write),
        cmocka_unit_test(test_write_header_failed_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
