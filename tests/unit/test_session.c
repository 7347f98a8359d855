/* Tests for src/host/session: the whole connection upgrade (pnet,
 * multistream-select, Noise, inline or negotiated yamux) and the transport,
 * two sessions wired to each other in memory, no sockets and no clock (the
 * tests pass the time). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "host/session.h"

/* One end: the session and what its events told us. */
typedef struct side {
    dn__session s;
    dn_privkey *key;
    dn_peerid id;
    dn_noise_static st;
    dn_verify_cache vc;
    int opened; /* EV_OPEN count */
    int failed; /* EV_FAILED count */
    int fail_status;
    int idle;         /* EV_IDLE count */
    dn_peerid remote; /* from EV_OPEN */
    uint32_t inbound; /* last stream the peer opened */
    dn_buf data;      /* stream payload received */
    bool fin;
    bool goaway;
    unsigned phases; /* bit per dn__session_phase seen */
} side;

static void on_event(void *ctx, const dn__session_event *ev)
{
    side *sd = ctx;
    switch (ev->type) {
    case DN__SESSION_EV_OPEN:
        sd->opened++;
        sd->remote = *ev->remote;
        assert_non_null(ev->remote_key);
        assert_true(dn_peerid_matches_pubkey(ev->remote, ev->remote_key));
        break;
    case DN__SESSION_EV_FAILED:
        sd->failed++;
        sd->fail_status = ev->status;
        break;
    case DN__SESSION_EV_IDLE: sd->idle++; break;
    case DN__SESSION_EV_YAMUX: {
        const dn_yamux_event *y = ev->yamux;
        dn_yamux *mux = dn__session_yamux(&sd->s);
        if (y->type == DN_YAMUX_EV_STREAM_OPENED) {
            assert_int_equal(dn_yamux_accept(mux, y->stream_id), 0);
            sd->inbound = y->stream_id;
        } else if (y->type == DN_YAMUX_EV_DATA) {
            assert_int_equal(dn_buf_append(&sd->data, y->data, y->len), 0);
            assert_int_equal(dn_yamux_consumed(mux, y->stream_id, y->len), 0);
        } else if (y->type == DN_YAMUX_EV_FIN) {
            sd->fin = true;
        } else if (y->type == DN_YAMUX_EV_GOAWAY) {
            sd->goaway = true;
        }
        break;
    }
    }
}

typedef struct opts {
    const uint8_t *psk_a, *psk_b;
    bool no_inline_a, no_inline_b;
    bool expect_wrong; /* the dialer expects some other peer id */
    bool same_key;     /* both ends have the same identity */
} opts;

typedef struct pair {
    side a, b; /* a dials, b listens */
} pair;

static void side_init(side *sd, dn_privkey *key)
{
    memset(sd, 0, sizeof *sd);
    sd->key = key;
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(key), &sd->id), 0);
    assert_int_equal(dn_noise_static_init(&sd->st, key), 0);
    dn_verify_cache_init(&sd->vc);
}

static void pair_setup(pair *p, const opts *o, uint64_t now)
{
    dn_privkey *ka, *kb;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &ka), 0);
    if (o->same_key) {
        kb = ka;
    } else {
        assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &kb), 0);
    }
    side_init(&p->a, ka);
    side_init(&p->b, kb);
    dn_peerid other;
    if (o->expect_wrong) {
        dn_privkey *k;
        assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
        assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &other), 0);
        dn_privkey_free(k);
    }
    dn__session_config ca = {.outbound = true,
                             .identity = ka,
                             .self = &p->a.id,
                             .noise_static = &p->a.st,
                             .vcache = &p->a.vc,
                             .psk = o->psk_a,
                             .expected = o->expect_wrong ? &other : &p->b.id,
                             .no_inline_muxer = o->no_inline_a,
                             .handshake_timeout_ms = 10000};
    dn__session_config cb = {.outbound = false,
                             .identity = kb,
                             .self = &p->b.id,
                             .noise_static = &p->b.st,
                             .vcache = &p->b.vc,
                             .psk = o->psk_b,
                             .no_inline_muxer = o->no_inline_b,
                             .handshake_timeout_ms = 10000};
    dn__session_init(&p->a.s, &ca, on_event, &p->a);
    dn__session_init(&p->b.s, &cb, on_event, &p->b);
    assert_int_equal(dn__session_start(&p->a.s, now), 0);
    assert_int_equal(dn__session_start(&p->b.s, now), 0);
}

static void pair_free(pair *p)
{
    bool same = p->a.key == p->b.key;
    dn__session_free(&p->a.s);
    dn__session_free(&p->b.s);
    dn_noise_static_wipe(&p->a.st);
    dn_noise_static_wipe(&p->b.st);
    dn_privkey_free(p->a.key);
    if (!same)
        dn_privkey_free(p->b.key);
    dn_buf_free(&p->a.data);
    dn_buf_free(&p->b.data);
}

/* Deliver through dn__session_recv_buf/recv_commit (what a socket read
 * does) instead of dn__session_feed; the largest room offered is kept. */
static bool use_recv_api;
static size_t largest_room;

static int deliver(side *to, const uint8_t *p, size_t n, uint64_t now)
{
    if (!use_recv_api)
        return dn__session_feed(&to->s, p, n, now);
    while (n) {
        size_t room;
        uint8_t *buf = dn__session_recv_buf(&to->s, 256u * 1024u, &room);
        assert_non_null(buf);
        assert_true(room > 0);
        if (room > largest_room)
            largest_room = room;
        size_t k = n < room ? n : room;
        memcpy(buf, p, k);
        int rc = dn__session_recv_commit(&to->s, k, now);
        if (rc)
            return rc;
        p += k;
        n -= k;
    }
    return 0;
}

/* Move from's pending output into to, in pieces of at most chunk bytes.
 * Returns the bytes moved. */
static size_t transfer(side *from, side *to, size_t chunk, uint64_t now)
{
    const uint8_t *p;
    ssize_t n = dn__session_output_begin(&from->s, &p);
    assert_true(n >= 0);
    if (n == 0)
        return 0;
    /* Copy first: feeding may make the sender produce more (not here, the
     * sessions are separate, but the batch must stay as it was handed). */
    uint8_t *copy = malloc((size_t)n);
    assert_non_null(copy);
    memcpy(copy, p, (size_t)n);
    dn__session_output_sent(&from->s, (size_t)n);
    for (size_t off = 0; off < (size_t)n;) {
        size_t k = (size_t)n - off < chunk ? (size_t)n - off : chunk;
        int rc = deliver(to, copy + off, k, now);
        to->phases |= 1u << dn__session_get_phase(&to->s);
        if (rc < 0)
            break; /* the receiver failed: the rest is moot */
        off += k;
    }
    free(copy);
    return (size_t)n;
}

/* Exchange until both sides are quiet (bounded). */
static void pump(pair *p, size_t chunk, uint64_t now)
{
    for (int i = 0; i < 100000; i++) {
        size_t moved = transfer(&p->a, &p->b, chunk, now) + transfer(&p->b, &p->a, chunk, now);
        if (moved == 0)
            return;
    }
    fail_msg("sessions never went quiet");
}

static void assert_open(pair *p)
{
    assert_int_equal(p->a.failed, 0);
    assert_int_equal(p->b.failed, 0);
    assert_int_equal(p->a.opened, 1);
    assert_int_equal(p->b.opened, 1);
    assert_int_equal(dn__session_get_phase(&p->a.s), DN__SESSION_OPEN);
    assert_int_equal(dn__session_get_phase(&p->b.s), DN__SESSION_OPEN);
    assert_true(dn_peerid_equal(&p->a.remote, &p->b.id));
    assert_true(dn_peerid_equal(&p->b.remote, &p->a.id));
    assert_true(dn_peerid_equal(dn__session_remote(&p->a.s), &p->b.id));
    assert_non_null(dn__session_yamux(&p->a.s));
    /* The handshake deadline is gone once open. */
    assert_true(dn__session_expiry(&p->a.s) == DN__SESSION_NO_EXPIRY ||
                dn__session_expiry(&p->a.s) < 10000);
}

/* Send len bytes from `from` on stream id, pumping as the window allows. */
static void send_all(pair *p, side *from, uint32_t id, const uint8_t *data, size_t len,
                     size_t chunk)
{
    size_t off = 0;
    for (int i = 0; off < len && i < 100000; i++) {
        ssize_t n = dn__session_send_stream_data(&from->s, id, data + off, len - off);
        assert_true(n >= 0);
        off += (size_t)n;
        pump(p, chunk, 0);
    }
    assert_int_equal(off, len);
}

static void random_bytes(uint8_t *p, size_t n)
{
    randombytes_buf(p, n);
}

/* Handshake, a stream each way, FIN. */
static void run_exchange(const opts *o, size_t chunk, size_t len)
{
    pair p;
    pair_setup(&p, o, 0);
    pump(&p, chunk, 0);
    assert_open(&p);
    if (o->no_inline_a || o->no_inline_b) {
        assert_true(p.a.phases & (1u << DN__SESSION_MUXER_MSS));
        /* The listener may pass through it within one feed (the
         * proposal travels with Noise message 3); small pieces show it. */
        if (chunk < 64)
            assert_true(p.b.phases & (1u << DN__SESSION_MUXER_MSS));
    } else {
        assert_false(p.a.phases & (1u << DN__SESSION_MUXER_MSS));
        assert_false(p.b.phases & (1u << DN__SESSION_MUXER_MSS));
    }

    uint32_t id;
    assert_int_equal(dn_yamux_open(dn__session_yamux(&p.a.s), &id), 0);
    uint8_t *up = malloc(len), *down = malloc(len);
    assert_non_null(up);
    assert_non_null(down);
    random_bytes(up, len);
    random_bytes(down, len);
    send_all(&p, &p.a, id, up, len, chunk);
    assert_int_equal(p.b.inbound, id);
    assert_int_equal(p.b.data.len, len);
    assert_memory_equal(p.b.data.data, up, len);

    send_all(&p, &p.b, id, down, len, chunk);
    assert_int_equal(p.a.data.len, len);
    assert_memory_equal(p.a.data.data, down, len);

    assert_int_equal(dn_yamux_close_write(dn__session_yamux(&p.a.s), id), 0);
    pump(&p, chunk, 0);
    assert_true(p.b.fin);
    assert_int_equal(p.a.failed + p.b.failed, 0);
    free(up);
    free(down);
    pair_free(&p);
}

static const uint8_t psk1[DN_PSK_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const uint8_t psk2[DN_PSK_LEN] = {9, 9, 9};

static void test_inline_muxer(void **st)
{
    (void)st;
    run_exchange(&(opts){0}, SIZE_MAX, 1u << 20);
}

static void test_inline_muxer_pnet(void **st)
{
    (void)st;
    run_exchange(&(opts){.psk_a = psk1, .psk_b = psk1}, SIZE_MAX, 1u << 20);
}

static void test_mss_fallback(void **st)
{
    (void)st;
    /* Either side not offering yamux in the extension means multistream. */
    run_exchange(&(opts){.no_inline_a = true}, SIZE_MAX, 300000);
    run_exchange(&(opts){.no_inline_b = true, .psk_a = psk1, .psk_b = psk1}, SIZE_MAX, 300000);
}

static void test_byte_at_a_time(void **st)
{
    (void)st;
    run_exchange(&(opts){0}, 1, 70000);
    run_exchange(&(opts){.psk_a = psk1, .psk_b = psk1}, 1, 70000);
    run_exchange(&(opts){.no_inline_a = true, .no_inline_b = true, .psk_a = psk1, .psk_b = psk1}, 1,
                 3000);
    /* Odd piece sizes across message boundaries. */
    run_exchange(&(opts){.psk_a = psk1, .psk_b = psk1}, 7, 200000);
}

/* The socket path: reads land in the session's own buffer, whose offered
 * size starts small and grows while reads fill it. */
static void test_recv_buffer(void **st)
{
    (void)st;
    use_recv_api = true;
    largest_room = 0;
    run_exchange(&(opts){.psk_a = psk1, .psk_b = psk1}, SIZE_MAX, 2u << 20);
    assert_true(largest_room >= 256u * 1024u);
    largest_room = 0;
    run_exchange(&(opts){0}, 100, 1000);
    assert_true(largest_room <= 2 * DN__SESSION_RX_START); /* small reads stay small */
    use_recv_api = false;
}

static void test_handshake_deadline(void **st)
{
    (void)st;
    pair p;
    pair_setup(&p, &(opts){0}, 5000);
    assert_int_equal(dn__session_expiry(&p.b.s), 15000);
    /* The listener hears nothing: not yet, then the deadline. */
    assert_int_equal(dn__session_handle_expiry(&p.b.s, 14999), 0);
    assert_int_equal(p.b.failed, 0);
    assert_int_equal(dn__session_handle_expiry(&p.b.s, 15000), DN_ETIMEOUT);
    assert_int_equal(p.b.failed, 1);
    assert_int_equal(p.b.fail_status, DN_ETIMEOUT);
    assert_int_equal(dn__session_get_phase(&p.b.s), DN__SESSION_CLOSED);
    assert_int_equal(dn__session_expiry(&p.b.s), DN__SESSION_NO_EXPIRY);
    /* Later input is refused with the reason, and no second event. */
    const uint8_t *o;
    ssize_t n = dn__session_output_begin(&p.a.s, &o);
    assert_true(n > 0);
    assert_int_equal(dn__session_feed(&p.b.s, o, (size_t)n, 15001), DN_ETIMEOUT);
    assert_int_equal(p.b.failed, 1);
    /* Bytes arriving after the deadline also fail (the caller's timer may
     * not have run yet). */
    assert_int_equal(dn__session_feed(&p.a.s, (const uint8_t *)"x", 1, 15000), DN_ETIMEOUT);
    assert_int_equal(p.a.fail_status, DN_ETIMEOUT);
    pair_free(&p);

    /* A completed handshake has no deadline left. */
    pair_setup(&p, &(opts){0}, 0);
    pump(&p, SIZE_MAX, 100);
    assert_open(&p);
    assert_int_equal(dn__session_handle_expiry(&p.a.s, 20000), 0);
    assert_int_equal(p.a.failed, 0);
    pair_free(&p);
}

static void test_garbage(void **st)
{
    (void)st;
    pair p;
    pair_setup(&p, &(opts){0}, 0);
    /* 'G' reads as a 71-byte multistream message, which is no header. */
    static const char http[] = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: "
                               "curl/8.0\r\nAccept: */*\r\n\r\n";
    int rc = dn__session_feed(&p.b.s, (const uint8_t *)http, sizeof http - 1, 0);
    assert_int_equal(rc, DN_EPROTO);
    assert_int_equal(p.b.failed, 1);
    assert_int_equal(p.b.fail_status, DN_EPROTO);
    pair_free(&p);

    /* A correct multistream prefix, then a Noise message shorter than
     * message 1 (a 32-byte ephemeral key): malformed. */
    pair_setup(&p, &(opts){0}, 0);
    static const uint8_t ms[] = "\x13/multistream/1.0.0\n\x07/noise\n";
    uint8_t junk[2 + 10] = {0, 10};
    assert_int_equal(dn__session_feed(&p.b.s, ms, sizeof ms - 1, 0), 0);
    rc = dn__session_feed(&p.b.s, junk, sizeof junk, 0);
    assert_int_equal(rc, DN_EMALFORMED);
    assert_int_equal(p.b.fail_status, DN_EMALFORMED);
    pair_free(&p);

    /* Wrong swarm key: the peer's multistream header decrypts to garbage. */
    pair_setup(&p, &(opts){.psk_a = psk1, .psk_b = psk2}, 0);
    pump(&p, SIZE_MAX, 0);
    /* A bad header, or a length prefix past DN_MSS_MAX_MSG; or, when the
     * garbage reads as the start of a longer message, a wait that only the
     * handshake deadline ends (pnet cannot tell a wrong key: pnet spec). */
    if (!p.b.failed)
        assert_int_equal(dn__session_handle_expiry(&p.b.s, 10000), DN_ETIMEOUT);
    assert_int_equal(p.b.failed, 1);
    assert_true(p.b.fail_status == DN_EPROTO || p.b.fail_status == DN_ETOOBIG ||
                p.b.fail_status == DN_ETIMEOUT);
    assert_int_equal(p.a.opened + p.b.opened, 0);
    pair_free(&p);

    /* pnet on one side only. */
    pair_setup(&p, &(opts){.psk_a = psk1}, 0);
    pump(&p, SIZE_MAX, 0);
    if (!p.b.failed)
        dn__session_handle_expiry(&p.b.s, 10000);
    assert_int_equal(p.b.failed, 1);
    assert_int_equal(p.a.opened + p.b.opened, 0);
    pair_free(&p);
}

static void test_peer_checks(void **st)
{
    (void)st;
    pair p;
    pair_setup(&p, &(opts){.expect_wrong = true}, 0);
    pump(&p, SIZE_MAX, 0);
    assert_int_equal(p.a.failed, 1);
    assert_int_equal(p.a.fail_status, DN_EPEERID);
    assert_int_equal(p.a.opened, 0);
    pair_free(&p);

    pair_setup(&p, &(opts){.same_key = true}, 0);
    pump(&p, SIZE_MAX, 0);
    assert_int_equal(p.b.failed, 1);
    assert_int_equal(p.b.fail_status, DN_EPEERID); /* a session to ourselves */
    pair_free(&p);
}

/* A yamux frame the peer should never send fails the session, and the
 * GoAway(protocol error) is left in the output for one last write. */
static void test_yamux_protocol_error(void **st)
{
    (void)st;
    pair p;
    pair_setup(&p, &(opts){0}, 0);
    pump(&p, SIZE_MAX, 0);
    assert_open(&p);
    uint8_t bad[DN_YAMUX_HEADER_LEN] = {7 /* version */, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    dn_buf wire = DN_BUF_INIT;
    assert_int_equal(dn_noise_encrypt(&p.a.s.noise, bad, sizeof bad, &wire), 0);
    assert_int_equal(dn__session_feed(&p.b.s, wire.data, wire.len, 0), DN_EPROTO);
    assert_int_equal(p.b.fail_status, DN_EPROTO);
    const uint8_t *o;
    ssize_t n = dn__session_output_begin(&p.b.s, &o);
    assert_true(n > 0);
    assert_int_equal(dn__session_feed(&p.a.s, o, (size_t)n, 0), 0);
    assert_true(p.a.goaway);
    dn_buf_free(&wire);
    pair_free(&p);
}

/* After a burst, an idle session gives its large buffers back. */
static void test_idle_trim(void **st)
{
    (void)st;
    pair p;
    pair_setup(&p, &(opts){0}, 0);
    pump(&p, SIZE_MAX, 0);
    assert_open(&p);
    uint32_t id;
    assert_int_equal(dn_yamux_open(dn__session_yamux(&p.a.s), &id), 0);
    size_t len = 4u << 20;
    uint8_t *big = calloc(1, len);
    assert_non_null(big);
    /* Large batches: let the output fill to the high mark before pumping. */
    size_t off = 0;
    for (int i = 0; off < len && i < 10000; i++) {
        ssize_t n = dn__session_send_stream_data(&p.a.s, id, big + off, len - off);
        assert_true(n >= 0);
        off += (size_t)n;
        pump(&p, SIZE_MAX, 0);
    }
    assert_int_equal(p.b.data.len, len);
    size_t busy_a = dn__session_buffered_capacity(&p.a.s);
    size_t busy_b = dn__session_buffered_capacity(&p.b.s);
    assert_true(busy_a > DN__SESSION_KEEP);
    assert_true(busy_b > DN__SESSION_KEEP);
    /* The trim waits for a quiet period measured from its first deadline. */
    uint64_t now = 0;
    for (int i = 0; i < 10 && !p.a.idle; i++) {
        uint64_t at = dn__session_expiry(&p.a.s);
        assert_true(at != DN__SESSION_NO_EXPIRY);
        now = at > now ? at : now;
        assert_int_equal(dn__session_handle_expiry(&p.a.s, now), 0);
    }
    assert_int_equal(p.a.idle, 1);
    assert_true(now >= DN__SESSION_TRIM_MS);
    assert_true(dn__session_buffered_capacity(&p.a.s) <= 2 * DN__SESSION_KEEP);
    assert_int_equal(dn__session_expiry(&p.a.s), DN__SESSION_NO_EXPIRY);

    /* Activity postpones the trim. */
    uint64_t at = dn__session_expiry(&p.b.s);
    assert_true(at != DN__SESSION_NO_EXPIRY);
    assert_int_equal(dn__session_handle_expiry(&p.b.s, at), 0);
    at = dn__session_expiry(&p.b.s);
    assert_true(dn__session_send_stream_data(&p.b.s, id, big, 100) == 100);
    pump(&p, SIZE_MAX, at);
    assert_int_equal(dn__session_handle_expiry(&p.b.s, at), 0);
    assert_int_equal(p.b.idle, 0);
    at = dn__session_expiry(&p.b.s);
    assert_int_equal(dn__session_handle_expiry(&p.b.s, at), 0);
    assert_int_equal(p.b.idle, 1);
    assert_true(dn__session_buffered_capacity(&p.b.s) <= 2 * DN__SESSION_KEEP);

    /* And the session still works after trimming. */
    send_all(&p, &p.a, id, big, 100000, SIZE_MAX);
    assert_int_equal(p.b.data.len, len + 100000);
    assert_int_equal(p.a.failed + p.b.failed, 0);
    free(big);
    pair_free(&p);
}

static void test_calls_out_of_state(void **st)
{
    (void)st;
    pair p;
    pair_setup(&p, &(opts){0}, 0);
    assert_int_equal(dn__session_start(&p.a.s, 0), DN_ESTATE);
    assert_int_equal(dn__session_send_stream_data(&p.a.s, 1, (const uint8_t *)"x", 1), DN_ECLOSED);
    assert_int_equal(dn__session_goaway(&p.a.s, 0), DN_ESTATE);
    assert_null(dn__session_yamux(&p.a.s));
    assert_null(dn__session_remote(&p.a.s));
    /* Closed by its owner: input is ignored without events. */
    dn__session_close(&p.b.s, DN_ECLOSED);
    const uint8_t *o;
    ssize_t n = dn__session_output_begin(&p.a.s, &o);
    assert_true(n > 0);
    assert_int_equal(dn__session_feed(&p.b.s, o, (size_t)n, 0), DN_ECLOSED);
    assert_int_equal(p.b.failed, 0);
    pair_free(&p);

    dn__session s;
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
    dn__session_init(&s, &(dn__session_config){.identity = k}, NULL, NULL);
    assert_int_equal(dn__session_feed(&s, (const uint8_t *)"x", 1, 0), DN_ESTATE);
    dn__session_free(&s);
    dn_privkey_free(k);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_muxer),
        cmocka_unit_test(test_inline_muxer_pnet),
        cmocka_unit_test(test_mss_fallback),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_recv_buffer),
        cmocka_unit_test(test_handshake_deadline),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_peer_checks),
        cmocka_unit_test(test_yamux_protocol_error),
        cmocka_unit_test(test_idle_trim),
        cmocka_unit_test(test_calls_out_of_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
