/* libFuzzer target for src/host/session: the composed connection (pnet,
 * multistream-select, Noise, muxer agreement, yamux) plus a per-stream
 * multistream-select listener and echo, the way the host uses them. The
 * first input byte picks the mode (mod 6):
 *   0: a listener session fed the rest as wire bytes, in pieces whose
 *      sizes byte 1 picks;
 *   1: a dialer session (it has sent its first flight) fed the rest as the
 *      listener's replies, the same way;
 *   2: mode 0 with pnet (the input starts with the peer's nonce);
 *   3: a real handshake with a listener session (the peer here is a bare
 *      Noise initiator that offers yamux inline), then the rest as
 *      commands: 0xff advances the clock 600 ms and runs the expiry;
 *      otherwise two bytes (15-bit length) and that many bytes of
 *      plaintext sealed as one transport message from the peer (yamux
 *      frames, multistream on streams...);
 *   4: mode 3 without the inline muxer: the plaintext starts in the
 *      listener's multistream-select for the muxer;
 *   5: mode 3 with the input split differently: each sealed message is
 *      delivered one byte at a time.
 * Every key is fixed so that each input replays exactly; the sessions'
 * replies are drained (and dropped) as a socket would take them. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/verify_cache.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "host/session.h"
#include "mss/mss.h"
#include "noise/noise.h"
#include "noise/noise_internal.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static dn_privkey *id_dialer, *id_listener;
static const uint8_t psk[DN_PSK_LEN] = {0x5e, 0x55, 0x10, 0x42};
static uint8_t keys_dialer[64], keys_listener[64];
/* The static keys signed once (as a host does) and a verified-signature
 * cache, so an input costs its X25519 operations, not two signatures and
 * their checks: many more inputs per second. A cache hit gives the result
 * a verification would, so inputs still replay. */
static dn_noise_static st_dialer, st_listener;
static dn_verify_cache vcache;
static const char *const stream_protos[] = {"/ipfs/ping/1.0.0", "/fuzz/echo/1.0.0"};

static dn_privkey *fixed_identity(uint8_t fill)
{
    uint8_t seed[32], pk[32], sk[64], pb[4 + 64];
    memset(seed, fill, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    pb[0] = 0x08; /* Type = Ed25519 */
    pb[1] = 0x01;
    pb[2] = 0x12; /* Data = seed || public key */
    pb[3] = 64;
    memcpy(pb + 4, seed, 32);
    memcpy(pb + 36, pk, 32);
    dn_privkey *k = NULL;
    CHECK(dn_privkey_from_protobuf(pb, sizeof pb, &k) == 0);
    return k;
}

/* What dn_noise_static_init makes, from a fixed private key. */
static void fixed_static(dn_noise_static *st, const dn_privkey *id, const uint8_t priv[32])
{
    uint8_t msg[DN_NOISE_SIG_PREFIX_LEN + 32];
    memset(st, 0, sizeof *st);
    memcpy(st->priv, priv, 32);
    crypto_scalarmult_base(st->pub, st->priv);
    dn__noise_sig_message(msg, st->pub);
    CHECK(dn_privkey_sign(id, msg, sizeof msg, st->sig, &st->siglen) == 0);
    st->ready = true;
}

/* A stream the harness serves: multistream-select first, then echo. */
typedef struct fstream {
    uint32_t id;
    dn_mss *mss; /* while negotiating (heap, so a leak shows) */
    struct fstream *next;
} fstream;

typedef struct harness {
    dn__session s;
    fstream *streams;
    unsigned nstreams;
    bool opened, failed;
    bool dial_stream; /* on open, do what the seed generator's dialer did */
} harness;

static fstream *find_stream(harness *h, uint32_t id)
{
    for (fstream *f = h->streams; f; f = f->next)
        if (f->id == id)
            return f;
    return NULL;
}

static void drop_stream(harness *h, uint32_t id)
{
    for (fstream **pp = &h->streams; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            fstream *f = *pp;
            *pp = f->next;
            free(f->mss);
            free(f);
            h->nstreams--;
            return;
        }
    }
}

static void stream_send(harness *h, uint32_t id, const uint8_t *p, size_t n)
{
    ssize_t k = dn__session_send_stream_data(&h->s, id, p, n);
    CHECK(k >= 0 || k == DN_ECLOSED || k == DN_ELIMIT);
    /* What the window does not take is dropped: this is no stream layer. */
}

static void on_stream_data(harness *h, fstream *f, const uint8_t *p, size_t n)
{
    dn_yamux *y = dn__session_yamux(&h->s);
    if (f->mss) {
        size_t used = 0;
        dn_buf out = DN_BUF_INIT;
        int rc = dn_mss_feed(f->mss, p, n, &used, &out);
        CHECK(used <= n);
        if (out.len)
            stream_send(h, f->id, out.data, out.len);
        dn_buf_free(&out);
        if (rc < 0) {
            dn_yamux_reset(y, f->id); /* STREAM_GONE drops it */
            return;
        }
        if (rc != DN_MSS_DONE)
            return;
        CHECK(dn_mss_selected(f->mss) != NULL);
        free(f->mss);
        f->mss = NULL;
        p += used;
        n -= used;
    }
    if (n)
        stream_send(h, f->id, p, n);
}

static void on_event(void *ctx, const dn__session_event *ev)
{
    harness *h = ctx;
    switch (ev->type) {
    case DN__SESSION_EV_OPEN:
        CHECK(!h->opened);
        CHECK(ev->remote && ev->remote_key);
        h->opened = true;
        if (h->dial_stream) {
            /* Open stream 1 with a proposal, a ping and a FIN, so that a
             * recorded listener transcript (corpus) replays past the
             * handshake. */
            static const char req[] = "\x13/multistream/1.0.0\n\x11/fuzz/echo/1.0.0\nhello, echo";
            dn_yamux *y = dn__session_yamux(&h->s);
            uint32_t id;
            if (dn_yamux_open(y, &id) == 0) {
                stream_send(h, id, (const uint8_t *)req, sizeof req - 1);
                dn_yamux_ping(y, 7);
                dn_yamux_close_write(y, id);
            }
        }
        return;
    case DN__SESSION_EV_FAILED:
        CHECK(!h->failed);
        CHECK(ev->status < 0);
        h->failed = true;
        return;
    case DN__SESSION_EV_IDLE: return;
    case DN__SESSION_EV_YAMUX: break;
    }
    const dn_yamux_event *y = ev->yamux;
    dn_yamux *mux = dn__session_yamux(&h->s);
    CHECK(mux != NULL);
    switch (y->type) {
    case DN_YAMUX_EV_STREAM_OPENED: {
        if (h->nstreams >= 8 || dn_yamux_accept(mux, y->stream_id) < 0) {
            dn_yamux_reset(mux, y->stream_id);
            return;
        }
        fstream *f = calloc(1, sizeof *f);
        CHECK(f != NULL);
        f->mss = malloc(sizeof *f->mss);
        CHECK(f->mss != NULL);
        f->id = y->stream_id;
        f->next = h->streams;
        h->streams = f;
        h->nstreams++;
        dn_mss_init_listener(f->mss, stream_protos, 2);
        dn_buf out = DN_BUF_INIT;
        CHECK(dn_mss_start(f->mss, &out) == 0);
        dn_buf_free(&out);
        return;
    }
    case DN_YAMUX_EV_DATA: {
        CHECK(dn_yamux_consumed(mux, y->stream_id, y->len) == 0);
        fstream *f = find_stream(h, y->stream_id);
        if (f)
            on_stream_data(h, f, y->data, y->len);
        return;
    }
    case DN_YAMUX_EV_FIN: dn_yamux_close_write(mux, y->stream_id); return;
    case DN_YAMUX_EV_STREAM_GONE: drop_stream(h, y->stream_id); return;
    default: return;
    }
}

/* What a socket would do with the session's output: take it all. */
static void drain(harness *h, dn_buf *keep)
{
    for (int i = 0; i < 4; i++) {
        const uint8_t *p;
        ssize_t n = dn__session_output_begin(&h->s, &p);
        if (n <= 0)
            return;
        if (keep)
            CHECK(dn_buf_append(keep, p, (size_t)n) == 0);
        dn__session_output_sent(&h->s, (size_t)n);
    }
}

static void harness_init(harness *h, bool outbound, bool pnet, bool inline_muxer)
{
    memset(h, 0, sizeof *h);
    dn__session_config cfg = {.outbound = outbound,
                              .identity = outbound ? id_dialer : id_listener,
                              .psk = pnet ? psk : NULL,
                              .no_inline_muxer = !inline_muxer,
                              .max_streams = 16,
                              .handshake_timeout_ms = 5000,
                              .output_high = 256u * 1024u,
                              .noise_static = outbound ? &st_dialer : &st_listener,
                              .vcache = &vcache,
                              .test_noise_keys = outbound ? keys_dialer : keys_listener};
    dn__session_init(&h->s, &cfg, on_event, h);
    h->dial_stream = outbound;
    CHECK(dn__session_start(&h->s, 0) == 0);
}

static void harness_free(harness *h)
{
    /* FUZZ_SESSION_TRACE=1: how far an input got (for checking seeds). */
    if (getenv("FUZZ_SESSION_TRACE"))
        fprintf(stderr, "fuzz_session: phase %d opened %d failed %d status %d streams %u\n",
                (int)dn__session_get_phase(&h->s), h->opened, h->failed, dn__session_status(&h->s),
                h->nstreams);
    dn__session_free(&h->s);
    while (h->streams)
        drop_stream(h, h->streams->id);
}

/* Modes 0-2: raw wire bytes in pieces. */
static void fuzz_raw(const uint8_t *d, size_t n, bool outbound, bool pnet)
{
    harness h;
    harness_init(&h, outbound, pnet, true);
    drain(&h, NULL);
    size_t piece = n ? (size_t)d[0] + 1 : 1;
    if (n) {
        d++;
        n--;
    }
    uint64_t now = 0;
    while (n && !h.failed) {
        size_t k = n < piece ? n : piece;
        int rc = dn__session_feed(&h.s, d, k, now);
        CHECK(rc <= 0);
        CHECK((rc < 0) == h.failed || rc == DN_ECLOSED);
        drain(&h, NULL);
        d += k;
        n -= k;
        now += 10;
    }
    if (!h.failed) {
        uint64_t at = dn__session_expiry(&h.s);
        if (at != DN__SESSION_NO_EXPIRY)
            dn__session_handle_expiry(&h.s, at);
    }
    harness_free(&h);
}

/* Modes 3-5: a correct handshake first, then sealed plaintext. */
static void fuzz_sealed(const uint8_t *d, size_t n, bool inline_muxer, bool bytewise)
{
    static const char *const mux[] = {"/yamux/1.0.0"};
    harness h;
    harness_init(&h, false, false, inline_muxer);
    dn_noise_handshake hs;
    dn_noise_session peer;
    dn_buf wire = DN_BUF_INIT, got = DN_BUF_INIT;
    CHECK(dn_noise_handshake_init_ex(&hs, true, id_dialer, &st_dialer, &vcache, NULL, mux, 1) == 0);
    CHECK(dn__noise_handshake_set_keys(&hs, keys_dialer, keys_dialer + 32, NULL, 0) == 0);
    static const uint8_t ms[] = "\x13/multistream/1.0.0\n\x07/noise\n";
    CHECK(dn_buf_append(&wire, ms, sizeof ms - 1) == 0);
    CHECK(dn_noise_handshake_start(&hs, &wire) == 0);
    CHECK(dn__session_feed(&h.s, wire.data, wire.len, 0) == 0);
    drain(&h, &got);
    /* got: the multistream echo (header and /noise) and message 2. */
    CHECK(got.len > sizeof ms - 1);
    CHECK(memcmp(got.data, ms, sizeof ms - 1) == 0);
    size_t used = 0;
    dn_buf_reset(&wire);
    CHECK(dn_noise_handshake_feed(&hs, got.data + sizeof ms - 1, got.len - (sizeof ms - 1), &used,
                                  &wire) == DN_NOISE_DONE);
    CHECK(dn_noise_handshake_split(&hs, &peer, NULL) == 0);
    dn_noise_handshake_free(&hs);
    CHECK(dn__session_feed(&h.s, wire.data, wire.len, 0) == 0);
    CHECK(h.opened == inline_muxer);
    CHECK(dn__session_get_phase(&h.s) == (inline_muxer ? DN__SESSION_OPEN : DN__SESSION_MUXER_MSS));
    drain(&h, NULL);

    uint64_t now = 0;
    while (n && !h.failed) {
        if (d[0] == 0xff) {
            now += 600;
            int rc = dn__session_handle_expiry(&h.s, now);
            CHECK(rc == 0 || rc == DN_ETIMEOUT);
            d++;
            n--;
            continue;
        }
        size_t len = n >= 2 ? ((size_t)(d[0] & 0x7f) << 8 | d[1]) : 0;
        d += n >= 2 ? 2 : n;
        n -= n >= 2 ? 2 : n;
        if (len > n)
            len = n;
        if (len > DN_NOISE_MAX_PLAINTEXT)
            len = DN_NOISE_MAX_PLAINTEXT;
        dn_buf_reset(&wire);
        CHECK(dn_noise_encrypt(&peer, d, len, &wire) == 0);
        d += len;
        n -= len;
        size_t step = bytewise ? 1 : wire.len;
        for (size_t off = 0; off < wire.len && !h.failed; off += step) {
            size_t k = wire.len - off < step ? wire.len - off : step;
            int rc = dn__session_feed(&h.s, wire.data + off, k, now);
            CHECK(rc <= 0);
            CHECK((rc < 0) == h.failed);
        }
        drain(&h, NULL);
    }
    dn_noise_session_free(&peer);
    dn_buf_free(&wire);
    dn_buf_free(&got);
    harness_free(&h);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        __builtin_trap();
    id_dialer = fixed_identity(0x11);
    id_listener = fixed_identity(0x22);
    memset(keys_dialer, 0x33, 32);
    memset(keys_dialer + 32, 0x44, 32);
    memset(keys_listener, 0x55, 32);
    memset(keys_listener + 32, 0x66, 32);
    fixed_static(&st_dialer, id_dialer, keys_dialer);
    fixed_static(&st_listener, id_listener, keys_listener);
    dn_verify_cache_init(&vcache);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 6) {
    case 0: fuzz_raw(d, n, false, false); break;
    case 1: fuzz_raw(d, n, true, false); break;
    case 2: fuzz_raw(d, n, false, true); break;
    case 3: fuzz_sealed(d, n, true, false); break;
    case 4: fuzz_sealed(d, n, false, false); break;
    default: fuzz_sealed(d, n, true, true); break;
    }
    return 0;
}
