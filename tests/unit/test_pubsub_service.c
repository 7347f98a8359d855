/* The pubsub service (src/pubsub/service.c) between 2-4 hosts on one
 * libuv loop over loopback: publish and deliver both ways (author, via,
 * seqno; our own messages are not delivered back), a floodsub-only peer
 * with gossipsub peers (both ways, and forwarded through a gossipsub
 * peer), validators that reject and ignore (and the score that follows), a
 * raw peer sending malformed RPCs and a broken frame while delivery
 * between the others goes on, inbound stream replacement, unsubscribe
 * (also from inside a callback), an oversized publish refused and 1 MiB
 * delivered, a peer that does not read losing frames past its queue bound,
 * our stream reopened (with our subscriptions again) when the peer ends it,
 * at most 5 times in a row, and a closed connection taking the peer out.
 *
 * Heartbeats are 100 ms here (1 s by default) so meshes form quickly. */
#include "pubsub_fixture.h"
#include "pubsub/pubsub_msg.h"

#define T "/test/topic"
#define T2 "/test/other"
#define A 0
#define B 1
#define C 2
#define D 3

#define MAXREC 64

typedef struct rec {
    int n;
    char data[MAXREC][64];
    size_t len[MAXREC];
    dn_peerid from[MAXREC], via[MAXREC];
    uint64_t seqno[MAXREC];
    char topic[MAXREC][32];
    dn_pubsub_sub *self; /* unsubscribe this inside the callback when set */
    bool unsub_in_cb;
    size_t big_len; /* length of the last message over 64 bytes */
    bool big_ok;
} rec;

static void on_msg(void *arg, const dn_pubsub_message *m)
{
    rec *r = arg;
    if (m->len > 63) {
        r->big_len = m->len;
        bool ok = true;
        for (size_t i = 0; i < m->len; i++)
            if (m->data[i] != (uint8_t)(i * 7))
                ok = false;
        r->big_ok = ok;
    }
    if (r->n < MAXREC) {
        size_t l = m->len < 63 ? m->len : 63;
        memcpy(r->data[r->n], m->data, l);
        r->data[r->n][l] = 0;
        r->len[r->n] = m->len;
        r->from[r->n] = m->from;
        r->via[r->n] = m->via;
        r->seqno[r->n] = m->seqno;
        snprintf(r->topic[r->n], sizeof r->topic[r->n], "%s", m->topic);
        assert_true(m->idlen > 0);
    }
    r->n++;
    if (r->unsub_in_cb && r->self) {
        dn_pubsub_unsubscribe(r->self);
        r->self = NULL;
    }
}

static bool got(const rec *r, const char *data)
{
    for (int i = 0; i < r->n && i < MAXREC; i++)
        if (strcmp(r->data[i], data) == 0)
            return true;
    return false;
}

static dn_pubsub_config cfg_fast(void)
{
    dn_pubsub_config c = DN_PUBSUB_CONFIG_INIT;
    c.heartbeat_ms = 100;
    return c;
}

static void test_publish_deliver(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, A, &c);
    host_up(f, B, &c);
    rec ra = {0}, rb = {0};
    dn_pubsub_sub *sa, *sb;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], T, on_msg, &ra, &sa), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &rb, &sb), 0);
    /* Nobody to send to yet: 0, not an error. */
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "early", 5), 0);
    connect_to(f, A, B);
    RUN_UNTIL(f, knows_peer(f, A, T, B) && knows_peer(f, B, T, A), 5000);
    assert_int_equal(stats_of(f, A).peers, 1);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "hello", 5), 1);
    RUN_UNTIL(f, rb.n >= 1, 5000);
    assert_string_equal(rb.data[0], "hello");
    assert_true(dn_peerid_equal(&rb.from[0], dn_host_peerid(f->host[A])));
    assert_true(dn_peerid_equal(&rb.via[0], dn_host_peerid(f->host[A])));
    assert_string_equal(rb.topic[0], T);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "again", 5), 1);
    RUN_UNTIL(f, rb.n >= 2, 5000);
    assert_int_equal(rb.seqno[1], rb.seqno[0] + 1); /* seqnos increase by one */
    assert_int_equal(dn_pubsub_publish(f->ps[B], T, "back", 4), 1);
    RUN_UNTIL(f, ra.n >= 1, 5000);
    assert_string_equal(ra.data[0], "back");
    assert_true(dn_peerid_equal(&ra.from[0], dn_host_peerid(f->host[B])));
    /* An empty message is a message too. */
    assert_int_equal(dn_pubsub_publish(f->ps[B], T, NULL, 0), 1);
    RUN_UNTIL(f, ra.n >= 2, 5000);
    assert_int_equal(ra.len[1], 0);
    run_for(f, 300);
    /* Our own messages are not delivered back, and nothing twice. */
    assert_int_equal(ra.n, 2);
    assert_int_equal(rb.n, 2);
    /* Meshes formed (heartbeats ran), topics and stats say so. */
    RUN_UNTIL(f, dn_pubsub_mesh_peers(f->ps[A], T, NULL, 0) == 1, 3000);
    const char *tops[4];
    assert_int_equal(dn_pubsub_topics(f->ps[A], tops, 4), 1);
    assert_string_equal(tops[0], T);
    dn_pubsub_stats st = stats_of(f, B);
    assert_int_equal(st.msgs_delivered, 2);
    assert_true(st.rpcs_in >= 2);
    assert_int_equal(st.frames_dropped, 0);
    assert_true(dn_pubsub_peer_score(f->ps[B], dn_host_peerid(f->host[A])) >= 0);
    assert_int_equal(dn_pubsub_topic_peers(f->ps[A], NULL, NULL, 0), 1);
    /* Bad arguments. */
    assert_int_equal(dn_pubsub_publish(f->ps[A], "", "x", 1), DN_EINVAL);
    dn_pubsub_sub *bad;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], "", on_msg, &ra, &bad), DN_EINVAL);
    char longt[DN_PUBSUB_TOPIC_MAX + 2];
    memset(longt, 'x', sizeof longt - 1);
    longt[sizeof longt - 1] = 0;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], longt, on_msg, &ra, &bad), DN_EINVAL);
}

/* A floodsub-only host between gossipsub hosts: A (gossip) - F (flood) - C
 * (gossip), plus D (gossip) on C. Messages go both ways across F, and F's
 * messages are forwarded by C's mesh to D. */
static void test_floodsub_interop(void **state)
{
    fx *f = *state;
    dn_pubsub_config g = cfg_fast(), fl = cfg_fast();
    fl.floodsub_only = true;
    host_up(f, A, &g);
    host_up(f, B, &fl); /* F */
    host_up(f, C, &g);
    host_up(f, D, &g);
    rec r[4] = {0};
    dn_pubsub_sub *s[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(dn_pubsub_subscribe(f->ps[i], T, on_msg, &r[i], &s[i]), 0);
    connect_to(f, A, B);
    connect_to(f, B, C);
    connect_to(f, C, D);
    RUN_UNTIL(f,
              knows_peer(f, A, T, B) && knows_peer(f, B, T, A) && knows_peer(f, B, T, C) &&
                  knows_peer(f, C, T, B) && knows_peer(f, C, T, D) && knows_peer(f, D, T, C),
              5000);
    /* F has no mesh (floodsub); C's mesh has D only. */
    run_for(f, 300);
    assert_int_equal(dn_pubsub_mesh_peers(f->ps[B], T, NULL, 0), 0);
    assert_int_equal(dn_pubsub_mesh_peers(f->ps[C], T, NULL, 0), 1);
    assert_true(dn_pubsub_publish(f->ps[A], T, "from-a", 6) >= 1);
    RUN_UNTIL(f, got(&r[B], "from-a") && got(&r[C], "from-a") && got(&r[D], "from-a"), 5000);
    assert_true(dn_peerid_equal(&r[D].from[0], dn_host_peerid(f->host[A])));
    assert_true(dn_peerid_equal(&r[D].via[0], dn_host_peerid(f->host[C])));
    assert_int_equal(dn_pubsub_publish(f->ps[B], T, "from-f", 6), 2);
    RUN_UNTIL(f, got(&r[A], "from-f") && got(&r[C], "from-f") && got(&r[D], "from-f"), 5000);
    assert_true(dn_pubsub_publish(f->ps[D], T, "from-d", 6) >= 1);
    RUN_UNTIL(f, got(&r[A], "from-d") && got(&r[B], "from-d") && got(&r[C], "from-d"), 5000);
    run_for(f, 200);
    /* Each got every message it did not publish, once. */
    assert_int_equal(r[A].n, 2);
    assert_int_equal(r[B].n, 2);
    assert_int_equal(r[C].n, 3);
    assert_int_equal(r[D].n, 2);
}

static int validator(void *arg, const dn_pubsub_message *m)
{
    int *calls = arg;
    (*calls)++;
    if (m->len == 3 && !memcmp(m->data, "bad", 3))
        return -1;
    if (m->len == 3 && !memcmp(m->data, "meh", 3))
        return 1;
    return 0;
}

static void test_validator(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, A, &c);
    host_up(f, B, &c);
    host_up(f, C, &c);
    rec rb = {0}, rc = {0};
    dn_pubsub_sub *sa, *sb, *sc;
    rec ra = {0};
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], T, on_msg, &ra, &sa), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &rb, &sb), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[C], T, on_msg, &rc, &sc), 0);
    int calls = 0;
    assert_int_equal(dn_pubsub_set_validator(f->ps[B], T, validator, &calls), 0);
    /* A - B - C: what B rejects or ignores does not reach C. */
    connect_to(f, A, B);
    connect_to(f, B, C);
    RUN_UNTIL(f, knows_peer(f, A, T, B) && knows_peer(f, C, T, B) && knows_peer(f, B, T, C), 5000);
    RUN_UNTIL(f, dn_pubsub_mesh_peers(f->ps[B], T, NULL, 0) == 2, 3000);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "meh", 3), 1);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "good", 4), 1);
    RUN_UNTIL(f, got(&rc, "good"), 5000);
    assert_false(got(&rb, "meh"));
    assert_false(got(&rc, "meh"));
    assert_true(got(&rb, "good"));
    double before = dn_pubsub_peer_score(f->ps[B], dn_host_peerid(f->host[A]));
    assert_true(before >= 0); /* an ignore costs nothing */
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "bad", 3), 1);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "good2", 5), 1);
    RUN_UNTIL(f, got(&rc, "good2"), 5000);
    assert_false(got(&rb, "bad"));
    assert_false(got(&rc, "bad"));
    assert_int_equal(calls, 4);
    assert_true(stats_of(f, B).msgs_invalid >= 1);
    /* A reject counts against the sender (P4). */
    assert_true(dn_pubsub_peer_score(f->ps[B], dn_host_peerid(f->host[A])) < before);
    /* Removing the validator accepts everything again. */
    assert_int_equal(dn_pubsub_set_validator(f->ps[B], T, NULL, NULL), 0);
    assert_int_equal(dn_pubsub_publish(f->ps[C], T, "bad", 3), 1);
    RUN_UNTIL(f, got(&rb, "bad"), 5000);
    assert_int_equal(calls, 4);
}

/* R is a raw peer (no service): it opens a meshsub stream to B and sends
 * junk RPCs, then a frame longer than the bound. B counts them and keeps
 * delivering between A and C. */
static void test_malformed_rpc(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, A, &c);
    host_up(f, B, &c);
    host_up(f, C, &c);
    host_up(f, D, NULL); /* R */
    rec ra = {0}, rc = {0}, rb = {0};
    dn_pubsub_sub *sa, *sb, *sc;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], T, on_msg, &ra, &sa), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &rb, &sb), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[C], T, on_msg, &rc, &sc), 0);
    connect_to(f, A, B);
    connect_to(f, B, C);
    dn_conn *rbc = connect_to(f, D, B);
    RUN_UNTIL(f,
              knows_peer(f, A, T, B) && knows_peer(f, C, T, B) && knows_peer(f, B, T, C) &&
                  knows_peer(f, B, T, A),
              5000);
    raw_stream r;
    raw_open(f, rbc, "/meshsub/1.1.0", &r);
    /* A subscription (so B counts R as a topic peer), then junk. */
    raw_write_rpc(&r, T, NULL);
    static const uint8_t junk[] = {5, 0xff, 0xff, 0xff, 0xff, 0xff, /* field 31, varint: bad */
                                   3, 0x12, 0x05, 0x01,             /* publish: truncated */
                                   2, 0x0a, 0x00};                  /* empty SubOpts topic */
    assert_int_equal(dn_stream_write(r.s, junk, sizeof junk), 0);
    RUN_UNTIL(f, stats_of(f, B).rpcs_bad >= 2, 5000);
    RUN_UNTIL(f, knows_peer(f, B, T, D), 5000);
    /* B forwards on its mesh: wait for the heartbeat that grafts C. */
    RUN_UNTIL(f, in_mesh(f, B, T, C), 3000);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "through", 7), 1);
    RUN_UNTIL(f, got(&rc, "through"), 5000);
    /* Now a length prefix past DN_PUBSUB_RPC_MAX: framing is lost, B ends
     * its side of that stream (no reset), the rest goes on. */
    uint8_t big[10];
    size_t n = dn_uvarint_encode(DN_PUBSUB_RPC_MAX + 1, big);
    uint64_t bad_before = stats_of(f, B).rpcs_bad;
    assert_int_equal(dn_stream_write(r.s, big, n), 0);
    RUN_UNTIL(f, r.eof > 0, 5000);
    assert_int_equal(r.closed, 0); /* ended, not reset */
    assert_true(stats_of(f, B).rpcs_bad > bad_before);
    assert_int_equal(dn_pubsub_publish(f->ps[C], T, "after", 5), 1);
    RUN_UNTIL(f, got(&ra, "after") && got(&rb, "after"), 5000);
    assert_true(dn_pubsub_peer_score(f->ps[B], dn_host_peerid(f->host[D])) <
                dn_pubsub_peer_score(f->ps[B], dn_host_peerid(f->host[A])));
    raw_done(&r);
}

/* R opens a stream, then a second one: messages on the newer stream are
 * read, the older one is ended by B and what still comes on it ignored. */
static void test_stream_replacement(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, B, &c);
    host_up(f, A, NULL); /* R: raw, signs with its own key */
    rec rb = {0};
    dn_pubsub_sub *sb;
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &rb, &sb), 0);
    dn_conn *conn = connect_to(f, A, B);
    raw_stream s1, s2;
    raw_open(f, conn, "/meshsub/1.2.0", &s1);
    dn_buf m = DN_BUF_INIT;
    signed_msg(&m, f->key[A], T, "one", 100, false);
    raw_write_rpc(&s1, T, &m);
    RUN_UNTIL(f, got(&rb, "one"), 5000);
    raw_open(f, conn, "/meshsub/1.2.0", &s2);
    dn_buf_reset(&m);
    signed_msg(&m, f->key[A], T, "two", 101, false);
    raw_write_rpc(&s2, NULL, &m);
    RUN_UNTIL(f, got(&rb, "two"), 5000);
    RUN_UNTIL(f, s1.eof > 0, 5000); /* B ended the old one */
    assert_int_equal(s2.eof, 0);
    dn_buf_reset(&m);
    signed_msg(&m, f->key[A], T, "old", 102, false);
    raw_write_rpc(&s1, NULL, &m);
    dn_buf_reset(&m);
    signed_msg(&m, f->key[A], T, "three", 103, false);
    raw_write_rpc(&s2, NULL, &m);
    RUN_UNTIL(f, got(&rb, "three"), 5000);
    run_for(f, 100);
    assert_false(got(&rb, "old"));
    /* The old stream closes once we end our side too; the peer stays. */
    dn_stream_close_write(s1.s);
    RUN_UNTIL(f, s1.closed > 0, 5000);
    assert_int_equal(s1.close_status, 0);
    assert_int_equal(stats_of(f, B).peers, 1);
    dn_buf_reset(&m);
    signed_msg(&m, f->key[A], T, "four", 104, false);
    raw_write_rpc(&s2, NULL, &m);
    RUN_UNTIL(f, got(&rb, "four"), 5000);
    dn_buf_free(&m);
    raw_done(&s1);
    raw_done(&s2);
}

/* Two subscriptions on one topic share the router's; one unsubscribes in
 * its own callback; the last unsubscribe leaves the topic. */
static void test_unsubscribe(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, A, &c);
    host_up(f, B, &c);
    rec ra = {0}, r1 = {0}, r2 = {0};
    dn_pubsub_sub *sa, *s1, *s2;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], T, on_msg, &ra, &sa), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &r1, &s1), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &r2, &s2), 0);
    const char *tops[4];
    assert_int_equal(dn_pubsub_topics(f->ps[B], tops, 4), 1);
    connect_to(f, A, B);
    RUN_UNTIL(f, knows_peer(f, A, T, B), 5000);
    r1.self = s1;
    r1.unsub_in_cb = true;
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "m1", 2), 1);
    RUN_UNTIL(f, r1.n == 1 && r2.n == 1, 5000);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "m2", 2), 1);
    RUN_UNTIL(f, r2.n == 2, 5000);
    run_for(f, 100);
    assert_int_equal(r1.n, 1); /* gone since its callback */
    assert_true(knows_peer(f, A, T, B));
    dn_pubsub_unsubscribe(s2);
    assert_int_equal(dn_pubsub_topics(f->ps[B], tops, 4), 0);
    RUN_UNTIL(f, !knows_peer(f, A, T, B), 5000);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "m3", 2), 0);
    run_for(f, 200);
    assert_int_equal(r2.n, 2);
    /* Subscribing again works. */
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &r2, &s2), 0);
    RUN_UNTIL(f, knows_peer(f, A, T, B), 5000);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "m4", 2), 1);
    RUN_UNTIL(f, r2.n == 3, 5000);
    assert_int_equal(r1.n, 1);
}

static void test_oversized_publish(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, A, &c);
    host_up(f, B, &c);
    rec rb = {0};
    dn_pubsub_sub *sb;
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &rb, &sb), 0);
    connect_to(f, A, B);
    RUN_UNTIL(f, knows_peer(f, A, T, B), 5000);
    uint8_t *p = malloc(DN_PUBSUB_MAX_DATA + 1);
    assert_non_null(p);
    for (size_t i = 0; i <= DN_PUBSUB_MAX_DATA; i++)
        p[i] = (uint8_t)(i * 7);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, p, DN_PUBSUB_MAX_DATA + 1), DN_ETOOBIG);
    /* Exactly the limit goes through (A needs no subscription: fanout). */
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, p, DN_PUBSUB_MAX_DATA), 1);
    RUN_UNTIL(f, rb.n == 1, 10000);
    assert_int_equal(rb.big_len, DN_PUBSUB_MAX_DATA);
    assert_true(rb.big_ok);
    free(p);
}

/* A peer that subscribes and never reads: B's queue for it is bounded by
 * max_queue_per_peer; past it frames are dropped and counted, and B still
 * delivers to A. */
typedef struct sink {
    dn_stream *in;
    int streams;
} sink;

static void sink_data(dn_stream *s, const uint8_t *d, size_t l, void *arg)
{
    (void)s, (void)d, (void)l, (void)arg;
}

static void sink_handler(dn_host *h, dn_stream *s, void *arg)
{
    sink *k = arg;
    k->streams++;
    k->in = s;
    static const dn_stream_callbacks cbs = {.on_data = sink_data};
    dn_stream_set_callbacks(s, &cbs, k);
    dn_stream_pause_read(s); /* never reads: the window closes */
}

static void test_queue_bound(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    c.max_queue_per_peer = 256 * 1024;
    host_up(f, A, &c);
    host_up(f, B, &c);
    host_up(f, C, NULL); /* the sink */
    static sink k;
    memset(&k, 0, sizeof k);
    assert_int_equal(dn_host_set_handler(f->host[C], "/meshsub/1.1.0", sink_handler, &k), 0);
    rec ra = {0};
    dn_pubsub_sub *sa;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], T, on_msg, &ra, &sa), 0);
    connect_to(f, A, B);
    dn_conn *cb = connect_to(f, C, B);
    RUN_UNTIL(f, knows_peer(f, B, T, A) && k.streams == 1, 5000);
    raw_stream r;
    raw_open(f, cb, "/meshsub/1.1.0", &r);
    raw_write_rpc(&r, T, NULL);
    RUN_UNTIL(f, knows_peer(f, B, T, C), 5000);
    uint8_t *p = malloc(60000);
    assert_non_null(p);
    memset(p, 'x', 60000);
    /* ~2.4 MB to C: far past its window, B's stream queue and the bound. */
    for (int i = 0; i < 40; i++) {
        p[0] = (uint8_t)i;
        assert_int_equal(dn_pubsub_publish(f->ps[B], T, p, 60000), 2);
        run_for(f, 5);
    }
    RUN_UNTIL(f, ra.n == 40, 10000);
    dn_pubsub_stats st = stats_of(f, B);
    assert_true(st.frames_dropped > 0);
    printf("# queue bound: %llu of 40 frames to the stalled peer dropped\n",
           (unsigned long long)st.frames_dropped);
    free(p);
    raw_done(&r);
}

/* Our stream to a peer ends while the connection stays: it is reopened,
 * and the new stream starts with our subscriptions again. A peer that ends
 * every stream at once gets a bounded number of them. */
typedef struct closer {
    int streams;
    bool close_all; /* end every stream at once (else only the first) */
    dn_buf second;  /* bytes read on the second stream */
} closer;

static void closer_data(dn_stream *s, const uint8_t *d, size_t l, void *arg)
{
    closer *k = arg;
    dn_buf_append(&k->second, d, l);
}

static void closer_handler(dn_host *h, dn_stream *s, void *arg)
{
    closer *k = arg;
    static const dn_stream_callbacks none = {0}, keep = {.on_data = closer_data};
    if (++k->streams == 1 || k->close_all) {
        dn_stream_set_callbacks(s, &none, NULL);
        dn_stream_close_write(s);
        return;
    }
    dn_stream_set_callbacks(s, &keep, k);
}

static bool second_has_sub(closer *k, const char *topic)
{
    dn__pubsub_framer fr;
    dn__pubsub_framer_init(&fr, 0);
    dn__pubsub_framer_feed(&fr, k->second.data, k->second.len);
    const uint8_t *p;
    size_t n;
    bool found = false;
    while (!found && dn__pubsub_framer_next(&fr, &p, &n) == 1) {
        dn__pubsub_rpc rpc;
        if (dn__pubsub_rpc_decode(p, n, &rpc))
            continue;
        for (size_t i = 0; i < rpc.nsubs; i++)
            if (rpc.subs[i].subscribe && rpc.subs[i].topic.len == strlen(topic) &&
                !memcmp(rpc.subs[i].topic.p, topic, rpc.subs[i].topic.len))
                found = true;
        dn__pubsub_rpc_free(&rpc);
    }
    dn__pubsub_framer_close(&fr);
    return found;
}

static void test_reopen(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, A, &c);
    host_up(f, B, NULL); /* ends A's first stream */
    host_up(f, C, NULL); /* ends every stream of A */
    static closer kb, kc;
    memset(&kb, 0, sizeof kb);
    memset(&kc, 0, sizeof kc);
    kc.close_all = true;
    assert_int_equal(dn_host_set_handler(f->host[B], "/meshsub/1.2.0", closer_handler, &kb), 0);
    assert_int_equal(dn_host_set_handler(f->host[C], "/meshsub/1.2.0", closer_handler, &kc), 0);
    rec ra = {0};
    dn_pubsub_sub *sa;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], T, on_msg, &ra, &sa), 0);
    connect_to(f, A, B);
    connect_to(f, A, C);
    RUN_UNTIL(f, kb.streams == 2 && second_has_sub(&kb, T), 5000);
    RUN_UNTIL(f, kc.streams >= 5, 5000);
    run_for(f, 5 * 100); /* five heartbeats: no more attempts */
    assert_int_equal(kb.streams, 2);
    assert_int_equal(kc.streams, 5);
    assert_int_equal(stats_of(f, A).peers, 2); /* both still peers */
    dn_buf_free(&kb.second);
}

/* The connection closes: the peer leaves the router and the topic. */
static void test_disconnect(void **state)
{
    fx *f = *state;
    dn_pubsub_config c = cfg_fast();
    host_up(f, A, &c);
    host_up(f, B, &c);
    rec ra = {0}, rb = {0};
    dn_pubsub_sub *sa, *sb;
    assert_int_equal(dn_pubsub_subscribe(f->ps[A], T, on_msg, &ra, &sa), 0);
    assert_int_equal(dn_pubsub_subscribe(f->ps[B], T, on_msg, &rb, &sb), 0);
    dn_conn *conn = connect_to(f, A, B);
    RUN_UNTIL(f, knows_peer(f, A, T, B) && knows_peer(f, B, T, A), 5000);
    dn_conn_close(conn);
    RUN_UNTIL(f, stats_of(f, A).peers == 0 && stats_of(f, B).peers == 0, 5000);
    assert_int_equal(topic_peers(f, A, T), 0);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "x", 1), 0);
    /* And back. */
    connect_to(f, B, A);
    RUN_UNTIL(f, knows_peer(f, A, T, B) && knows_peer(f, B, T, A), 5000);
    assert_int_equal(dn_pubsub_publish(f->ps[A], T, "y", 1), 1);
    RUN_UNTIL(f, got(&rb, "y"), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_deliver, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_floodsub_interop, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_validator, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_rpc, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stream_replacement, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_publish, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_disconnect, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
