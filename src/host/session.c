/* session — the connection upgrade pipeline and transport, sans-I/O
 * (see session.h). No socket, timer or clock in here: the caller moves
 * bytes and passes the time. */
#include "host/session.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "noise/noise_internal.h"

static const char *const session_muxers[] = {DN_YAMUX_PROTOCOL};

/* Largest yamux payload that fits one Noise message with its header. */
#define SESSION_FRAME_PAYLOAD (DN_NOISE_MAX_PLAINTEXT - DN_YAMUX_HEADER_LEN)

static void emit(dn__session *s, const dn__session_event *ev)
{
    if (s->cb && s->phase != DN__SESSION_CLOSED)
        s->cb(s->ctx, ev);
}

static void emit_failed(dn__session *s, int status)
{
    if (s->phase == DN__SESSION_CLOSED)
        return;
    dn__session_event ev = {.type = DN__SESSION_EV_FAILED, .status = status};
    /* Closed first: whatever the callback does, the session is done. */
    dn__session_event_cb cb = s->cb;
    s->phase = DN__SESSION_CLOSED;
    s->status = status;
    s->hs_deadline = s->trim_deadline = DN__SESSION_NO_EXPIRY;
    if (cb)
        cb(s->ctx, &ev);
}

void dn__session_init(dn__session *s, const dn__session_config *cfg, dn__session_event_cb cb,
                      void *ctx)
{
    memset(s, 0, sizeof *s);
    s->phase = DN__SESSION_NEW;
    s->outbound = cfg->outbound;
    s->identity = cfg->identity;
    s->self = cfg->self;
    s->noise_static = cfg->noise_static;
    s->vcache = cfg->vcache;
    s->inline_muxer = !cfg->no_inline_muxer;
    s->max_streams = cfg->max_streams;
    s->max_window = cfg->max_window;
    s->handshake_timeout_ms = cfg->handshake_timeout_ms;
    s->output_high = cfg->output_high ? cfg->output_high : DN__SESSION_OUTPUT_HIGH;
    s->test_noise_keys = cfg->test_noise_keys;
    s->hs_deadline = s->trim_deadline = DN__SESSION_NO_EXPIRY;
    if (cfg->expected) {
        s->have_expected = true;
        s->expected = *cfg->expected;
    }
    if (cfg->psk) {
        s->use_pnet = true;
        /* The nonce is chosen at start; dn_pnet_init copies the key then. */
        memcpy(s->pnet.psk, cfg->psk, DN_PSK_LEN);
    }
    s->cb = cb;
    s->ctx = ctx;
}

/* ---- output ---- */

/* A buffer past the keep size will be released once the session idles. */
static void note_size(dn__session *s, const dn_buf *b)
{
    if (b->cap > DN__SESSION_KEEP)
        s->trim_armed = true;
}

/* Plaintext protocol bytes (multistream, Noise handshake) for the wire. */
static int out_raw(dn__session *s, const uint8_t *p, size_t n)
{
    size_t off = s->out.len;
    int rc = dn_buf_append(&s->out, p, n);
    if (rc)
        return rc;
    if (s->use_pnet)
        dn_pnet_encrypt(&s->pnet, s->out.data + off, n);
    return 0;
}

/* Plaintext sealed as Noise transport messages (and pnet) for the wire. */
static int out_secure(dn__session *s, const uint8_t *p, size_t n)
{
    size_t off = s->out.len;
    int rc = dn_noise_encrypt(&s->noise, p, n, &s->out);
    if (rc)
        return rc;
    if (s->use_pnet)
        dn_pnet_encrypt(&s->pnet, s->out.data + off, s->out.len - off);
    return 0;
}

/* Move the muxer's queued frames (control frames, and data written through
 * dn_yamux_write) to the output. */
static int take_muxer_output(dn__session *s)
{
    if (!s->yamux)
        return 0;
    dn_buf *o = dn_yamux_output(s->yamux);
    if (!o->len)
        return 0;
    int rc = out_secure(s, o->data, o->len);
    dn_buf_reset(o);
    return rc;
}

ssize_t dn__session_output_begin(dn__session *s, const uint8_t **p)
{
    if (s->phase == DN__SESSION_OPEN) {
        int rc = take_muxer_output(s);
        if (rc)
            return rc;
    }
    if (s->inflight.len == 0 && s->out.len) {
        /* Swap the batch into the in-flight buffer; the old in-flight
         * memory becomes the next batch (no allocation in steady state). */
        dn_buf t = s->inflight;
        s->inflight = s->out;
        s->out = t;
        dn_buf_reset(&s->out);
        note_size(s, &s->inflight);
        s->io_count++;
    }
    *p = s->inflight.data;
    return (ssize_t)s->inflight.len;
}

void dn__session_output_sent(dn__session *s, size_t n)
{
    if (n >= s->inflight.len)
        dn_buf_reset(&s->inflight);
    else
        dn_buf_consume(&s->inflight, n);
}

size_t dn__session_pending(const dn__session *s)
{
    return s->out.len + (s->yamux ? dn_yamux_output(s->yamux)->len : 0);
}

ssize_t dn__session_send_stream_data(dn__session *s, uint32_t stream_id, const uint8_t *data,
                                     size_t len)
{
    if (s->phase != DN__SESSION_OPEN)
        return DN_ECLOSED;
    /* Frames the muxer already queued go first: the peer must see a
     * stream's SYN/ACK and window updates in the order they were made. */
    int rc = take_muxer_output(s);
    if (rc)
        return rc;
    size_t taken = 0;
    while (taken < len && s->out.len < s->output_high) {
        /* One yamux Data frame per Noise message, sealed straight from the
         * caller's buffer: the payload is never copied next to its header. */
        uint8_t hdr[DN_YAMUX_HEADER_LEN];
        size_t want = len - taken < SESSION_FRAME_PAYLOAD ? len - taken : SESSION_FRAME_PAYLOAD;
        ssize_t n = dn_yamux_write_header(s->yamux, stream_id, want, hdr);
        if (n <= 0)
            break; /* window closed, or the stream is gone (the caller sees it) */
        size_t off = s->out.len;
        rc = dn_noise_encrypt_parts(&s->noise, hdr, sizeof hdr, data + taken, (size_t)n, &s->out);
        if (rc)
            return rc; /* the send direction is dead: the caller closes */
        if (s->use_pnet)
            dn_pnet_encrypt(&s->pnet, s->out.data + off, s->out.len - off);
        taken += (size_t)n;
    }
    return (ssize_t)taken;
}

int dn__session_goaway(dn__session *s, uint32_t code)
{
    if (s->phase != DN__SESSION_OPEN)
        return DN_ESTATE;
    int rc = dn_yamux_goaway(s->yamux, code);
    return rc ? rc : take_muxer_output(s);
}

/* ---- the upgrade ---- */

static void on_yamux_event(void *ctx, const dn_yamux_event *yev)
{
    dn__session *s = ctx;
    dn__session_event ev = {.type = DN__SESSION_EV_YAMUX, .yamux = yev};
    /* Also after dn__session_close: input is no longer processed, so these
     * come from the caller's own dn_yamux_* calls (a stream reset while
     * tearing down) and it needs their STREAM_GONE. */
    if (s->cb)
        s->cb(s->ctx, &ev);
}

/* The muxer is agreed: start yamux (plaintext that came with the last
 * handshake message is fed by the caller). */
static int start_yamux(dn__session *s)
{
    dn_yamux_config ycfg = {.max_streams = s->max_streams,
                            .max_ack_backlog = 256,
                            .max_window = s->max_window ? s->max_window : DN__SESSION_MAX_WINDOW};
    int rc = dn_yamux_new(s->outbound, &ycfg, on_yamux_event, s, &s->yamux);
    if (rc)
        return rc;
    s->phase = DN__SESSION_OPEN;
    s->hs_deadline = DN__SESSION_NO_EXPIRY;
    /* The handshake's buffers are not needed again. */
    dn_buf_free(&s->scratch);
    dn_buf_free(&s->plain);
    dn__session_event ev = {
        .type = DN__SESSION_EV_OPEN, .remote = &s->remote, .remote_key = s->remote_key};
    emit(s, &ev);
    return 0;
}

static int finish_noise(dn__session *s)
{
    dn_pubkey *key = NULL;
    s->remote = *dn_noise_remote_peer(s->hs);
    const char *mux = dn_noise_negotiated_muxer(s->hs);
    bool inline_yamux = mux && strcmp(mux, DN_YAMUX_PROTOCOL) == 0;
    int rc = dn_noise_handshake_split(s->hs, &s->noise, &key);
    dn_noise_handshake_free(s->hs);
    free(s->hs);
    s->hs = NULL;
    if (rc)
        return rc;
    s->have_noise = true;
    s->remote_key = key;
    if (s->self && dn_peerid_equal(&s->remote, s->self))
        return DN_EPEERID; /* a connection to ourselves is useless */
    if (inline_yamux)
        return start_yamux(s);
    /* Fall back to multistream-select inside the secure channel. */
    s->phase = DN__SESSION_MUXER_MSS;
    s->mss_protos[0] = DN_YAMUX_PROTOCOL;
    if (s->outbound)
        dn_mss_init_dialer(&s->mss, s->mss_protos, 1);
    else
        dn_mss_init_listener(&s->mss, s->mss_protos, 1);
    dn_buf_reset(&s->scratch);
    rc = dn_mss_start(&s->mss, &s->scratch);
    if (!rc && s->scratch.len)
        rc = out_secure(s, s->scratch.data, s->scratch.len);
    return rc;
}

static int start_noise(dn__session *s)
{
    s->hs = calloc(1, sizeof *s->hs);
    if (!s->hs)
        return DN_ENOMEM;
    int rc = dn_noise_handshake_init_ex(s->hs, s->outbound, s->identity, s->noise_static, s->vcache,
                                        s->have_expected ? &s->expected : NULL, session_muxers,
                                        s->inline_muxer ? 1 : 0);
    if (!rc && s->test_noise_keys)
        rc = dn__noise_handshake_set_keys(s->hs, s->test_noise_keys, s->test_noise_keys + 32, NULL,
                                          0);
    if (rc)
        return rc;
    dn_buf_reset(&s->scratch);
    rc = dn_noise_handshake_start(s->hs, &s->scratch);
    if (!rc && s->scratch.len)
        rc = out_raw(s, s->scratch.data, s->scratch.len);
    return rc;
}

int dn__session_start(dn__session *s, uint64_t now_ms)
{
    if (s->phase != DN__SESSION_NEW)
        return DN_ESTATE;
    int rc = 0;
    if (s->handshake_timeout_ms)
        s->hs_deadline = now_ms + s->handshake_timeout_ms;
    if (s->use_pnet) {
        uint8_t nonce[DN_PNET_NONCE_LEN], psk[DN_PSK_LEN];
        randombytes_buf(nonce, sizeof nonce);
        memcpy(psk, s->pnet.psk, sizeof psk);
        dn_pnet_init(&s->pnet, psk, nonce);
        sodium_memzero(psk, sizeof psk);
        /* The nonce goes out in clear, before anything else. */
        rc = dn_buf_append(&s->out, nonce, sizeof nonce);
        s->phase = DN__SESSION_PNET_NONCE;
    } else {
        s->phase = DN__SESSION_SECURITY_MSS;
    }
    s->mss_protos[0] = DN_NOISE_PROTOCOL;
    if (s->outbound)
        dn_mss_init_dialer(&s->mss, s->mss_protos, 1);
    else
        dn_mss_init_listener(&s->mss, s->mss_protos, 1);
    if (!rc) {
        dn_buf_reset(&s->scratch);
        rc = dn_mss_start(&s->mss, &s->scratch);
    }
    if (!rc)
        rc = out_raw(s, s->scratch.data, s->scratch.len);
    /* Optimistic: with one proposal, the dialer sends Noise message 1 right
     * behind it, saving a round trip; listeners must accept data after the
     * protocol line (multistream-select spec), and "na" fails the dial
     * either way. */
    if (!rc && s->outbound)
        rc = start_noise(s);
    if (rc)
        emit_failed(s, rc);
    return rc;
}

/* s->rx holds received bytes from rx_off to len. */
static uint8_t *rx_data(dn__session *s)
{
    return s->rx.data + s->rx_off;
}
static size_t rx_len(const dn__session *s)
{
    return s->rx.len - s->rx_off;
}
static void rx_consume(dn__session *s, size_t n)
{
    s->rx_off += n;
    if (s->rx_off == s->rx.len)
        s->rx.len = s->rx_off = 0;
}

/* One step of the current phase over s->rx. Returns 1 if it made progress
 * and more may follow, 0 if it needs more input, or a negative error. */
static int process_step(dn__session *s)
{
    size_t used = 0;
    int rc = 0;
    switch (s->phase) {
    case DN__SESSION_SECURITY_MSS:
        dn_buf_reset(&s->scratch);
        rc = dn_mss_feed(&s->mss, rx_data(s), rx_len(s), &used, &s->scratch);
        rx_consume(s, used);
        if (rc >= 0 && s->scratch.len) {
            int wrc = out_raw(s, s->scratch.data, s->scratch.len);
            if (wrc)
                return wrc;
        }
        if (rc == DN_MSS_DONE) {
            /* The dialer already sent message 1 (see dn__session_start). */
            rc = s->hs ? 0 : start_noise(s);
            s->phase = DN__SESSION_NOISE;
            return rc ? rc : 1;
        }
        return rc;
    case DN__SESSION_NOISE:
        if (rx_len(s) == 0)
            return 0;
        dn_buf_reset(&s->scratch);
        rc = dn_noise_handshake_feed(s->hs, rx_data(s), rx_len(s), &used, &s->scratch);
        rx_consume(s, used);
        if (rc >= 0 && s->scratch.len) {
            int wrc = out_raw(s, s->scratch.data, s->scratch.len);
            if (wrc)
                return wrc;
        }
        if (rc == DN_NOISE_DONE) {
            rc = finish_noise(s);
            return rc ? rc : 1;
        }
        return rc;
    case DN__SESSION_OPEN: {
        /* The data path: open each message in place, hand it to yamux. */
        uint8_t *pt;
        size_t ptlen;
        while (rx_len(s) && (rc = dn_noise_decrypt_inplace(&s->noise, rx_data(s), rx_len(s), &used,
                                                           &pt, &ptlen)) == 1) {
            rx_consume(s, used);
            if (ptlen && (rc = dn_yamux_feed(s->yamux, pt, ptlen)) < 0)
                return rc;
            if (s->phase == DN__SESSION_CLOSED)
                return 0;
        }
        return rx_len(s) ? rc : 0;
    }
    case DN__SESSION_MUXER_MSS:
        if (rx_len(s) == 0)
            return 0;
        rc = dn_noise_decrypt(&s->noise, rx_data(s), rx_len(s), &used, &s->plain);
        rx_consume(s, used);
        if (rc)
            return rc;
        if (s->plain.len == 0)
            return 0;
        dn_buf_reset(&s->scratch);
        rc = dn_mss_feed(&s->mss, s->plain.data, s->plain.len, &used, &s->scratch);
        dn_buf_consume(&s->plain, used);
        if (rc >= 0 && s->scratch.len) {
            int wrc = out_secure(s, s->scratch.data, s->scratch.len);
            if (wrc)
                return wrc;
        }
        if (rc != DN_MSS_DONE)
            return rc;
        {
            /* Keep the bytes after the muxer's line: start_yamux drops the
             * handshake buffers. */
            dn_buf rest = s->plain;
            dn_buf_init(&s->plain);
            rc = start_yamux(s);
            if (!rc && rest.len && s->phase == DN__SESSION_OPEN)
                rc = dn_yamux_feed(s->yamux, rest.data, rest.len);
            dn_buf_free(&rest);
        }
        return rc ? rc : 1;
    default: return 0;
    }
}

static int process(dn__session *s)
{
    for (;;) {
        if (s->phase == DN__SESSION_CLOSED)
            return 0;
        int rc = process_step(s);
        if (rc < 0) {
            /* yamux queued a GoAway(protocol error): seal it, so the caller
             * can try to send it before closing. */
            if (s->phase == DN__SESSION_OPEN && rc == DN_EPROTO)
                (void)take_muxer_output(s);
            emit_failed(s, rc);
            return rc;
        }
        if (rc == 0)
            return 0;
    }
}

static int session_input_state(const dn__session *s)
{
    if (s->phase == DN__SESSION_CLOSED)
        return s->status ? s->status : DN_ECLOSED;
    if (s->phase == DN__SESSION_NEW)
        return DN_ESTATE;
    return 0;
}

/* Room for at least want more received bytes. */
static int rx_reserve(dn__session *s, size_t want)
{
    /* Move the unconsumed tail (less than one Noise frame) to the front
     * only when the free room runs short, not after every read. */
    if (s->rx.cap - s->rx.len < want && s->rx_off) {
        dn_buf_consume(&s->rx, s->rx_off);
        s->rx_off = 0;
    }
    return dn_buf_reserve(&s->rx, want);
}

uint8_t *dn__session_recv_buf(dn__session *s, size_t want, size_t *room)
{
    /* Reads start small and double while they fill what was offered, up
     * to want: a quiet connection keeps a small buffer (and never needs
     * the idle trim), a bulk one reaches full-size reads in a few. */
    if (!s->rx_chunk)
        s->rx_chunk = DN__SESSION_RX_START;
    size_t chunk = s->rx_chunk < want ? s->rx_chunk : want;
    if (rx_reserve(s, chunk))
        return NULL;
    s->rx_offered = s->rx.cap - s->rx.len;
    s->rx_chunk_max = want;
    *room = s->rx_offered;
    return s->rx.data + s->rx.len;
}

int dn__session_recv_commit(dn__session *s, size_t n, uint64_t now_ms)
{
    int rc = session_input_state(s);
    if (rc)
        return rc;
    if (now_ms >= s->hs_deadline) {
        emit_failed(s, DN_ETIMEOUT);
        return DN_ETIMEOUT;
    }
    s->io_count++;
    if (n && n == s->rx_offered && s->rx_chunk < s->rx_chunk_max)
        s->rx_chunk = 2 * s->rx_chunk < s->rx_chunk_max ? 2 * s->rx_chunk : s->rx_chunk_max;
    s->rx_offered = 0;
    note_size(s, &s->rx);
    if (s->trim_armed && s->trim_deadline == DN__SESSION_NO_EXPIRY) {
        s->trim_deadline = now_ms + DN__SESSION_TRIM_MS;
        s->io_seen = s->io_count;
    }
    uint8_t *fresh = s->rx.data + s->rx.len;
    if (s->use_pnet) {
        if (!dn_pnet_ready(&s->pnet)) {
            size_t k = dn_pnet_feed_nonce(&s->pnet, fresh, n);
            memmove(fresh, fresh + k, n - k);
            n -= k;
            if (dn_pnet_ready(&s->pnet) && s->phase == DN__SESSION_PNET_NONCE)
                s->phase = DN__SESSION_SECURITY_MSS;
        }
        dn_pnet_decrypt(&s->pnet, fresh, n);
    }
    s->rx.len += n;
    return process(s);
}

int dn__session_feed(dn__session *s, const uint8_t *data, size_t len, uint64_t now_ms)
{
    int rc = session_input_state(s);
    if (rc || len == 0)
        return rc;
    /* In bounded pieces, so the receive buffer stays at the socket path's
     * size whatever the caller hands over. */
    do {
        size_t n = len < DN__SESSION_KEEP ? len : DN__SESSION_KEEP;
        if (rx_reserve(s, n)) {
            emit_failed(s, DN_ENOMEM);
            return DN_ENOMEM;
        }
        memcpy(s->rx.data + s->rx.len, data, n);
        if ((rc = dn__session_recv_commit(s, n, now_ms)))
            return rc;
        if (s->phase == DN__SESSION_CLOSED)
            return session_input_state(s);
        data += n;
        len -= n;
    } while (len);
    return 0;
}

/* ---- time ---- */

uint64_t dn__session_expiry(const dn__session *s)
{
    if (s->phase == DN__SESSION_CLOSED)
        return DN__SESSION_NO_EXPIRY;
    uint64_t t = s->hs_deadline;
    if (s->trim_armed && s->trim_deadline == DN__SESSION_NO_EXPIRY)
        return 0; /* armed without a clock reading: handle_expiry sets it */
    return s->trim_deadline < t ? s->trim_deadline : t;
}

/* Release one buffer if it is empty and larger than keep bytes; counts
 * what was released. */
static void trim_buf(dn_buf *b, size_t keep, size_t *released)
{
    if (b->len == 0 && b->cap > keep) {
        *released += b->cap;
        dn_buf_free(b);
    }
}

static size_t trim(dn__session *s)
{
    size_t released = 0;
    if (s->rx_off == s->rx.len)
        s->rx.len = s->rx_off = 0;
    trim_buf(&s->rx, DN__SESSION_KEEP, &released);
    s->rx_chunk = DN__SESSION_RX_START;
    trim_buf(&s->out, DN__SESSION_KEEP, &released);
    trim_buf(&s->inflight, DN__SESSION_KEEP, &released);
    trim_buf(&s->plain, DN__SESSION_KEEP, &released);
    trim_buf(&s->scratch, DN__SESSION_KEEP, &released);
    if (s->yamux)
        trim_buf(dn_yamux_output(s->yamux), DN__SESSION_KEEP, &released);
    return released;
}

size_t dn__session_trim_now(dn__session *s)
{
    if (s->phase == DN__SESSION_CLOSED || !s->trim_armed)
        return 0;
    return trim(s);
}

int dn__session_handle_expiry(dn__session *s, uint64_t now_ms)
{
    if (s->phase == DN__SESSION_CLOSED)
        return 0;
    if (now_ms >= s->hs_deadline) {
        emit_failed(s, DN_ETIMEOUT);
        return DN_ETIMEOUT;
    }
    if (!s->trim_armed)
        return 0;
    if (s->trim_deadline == DN__SESSION_NO_EXPIRY || s->io_count != s->io_seen) {
        /* Bytes moved since the deadline was set: wait for a quiet
         * period. No clock on the data path: the count shows activity. */
        s->trim_deadline = now_ms + DN__SESSION_TRIM_MS;
        s->io_seen = s->io_count;
        return 0;
    }
    if (now_ms < s->trim_deadline)
        return 0;
    if (s->out.len || s->inflight.len || s->rx.len != s->rx_off) {
        s->trim_deadline = now_ms + DN__SESSION_TRIM_MS; /* still busy */
        return 0;
    }
    size_t released = trim(s);
    s->trim_armed = false;
    s->trim_deadline = DN__SESSION_NO_EXPIRY;
    dn__session_event ev = {.type = DN__SESSION_EV_IDLE, .released = released};
    emit(s, &ev);
    return 0;
}

/* ---- teardown and accessors ---- */

void dn__session_close(dn__session *s, int status)
{
    if (s->phase == DN__SESSION_CLOSED)
        return;
    s->phase = DN__SESSION_CLOSED;
    s->status = status;
    s->hs_deadline = s->trim_deadline = DN__SESSION_NO_EXPIRY;
}

void dn__session_free(dn__session *s)
{
    if (s->yamux)
        dn_yamux_free(s->yamux);
    s->yamux = NULL;
    if (s->hs) {
        dn_noise_handshake_free(s->hs);
        free(s->hs);
        s->hs = NULL;
    }
    if (s->have_noise)
        dn_noise_session_free(&s->noise);
    s->have_noise = false;
    dn_pnet_wipe(&s->pnet);
    dn_pubkey_free(s->remote_key);
    s->remote_key = NULL;
    dn_buf_free(&s->rx);
    s->rx_off = 0;
    dn_buf_free(&s->plain);
    dn_buf_free(&s->scratch);
    dn_buf_free(&s->out);
    dn_buf_free(&s->inflight);
    s->phase = DN__SESSION_CLOSED;
}

const dn_peerid *dn__session_remote(const dn__session *s)
{
    return s->have_noise ? &s->remote : NULL;
}

const dn_pubkey *dn__session_remote_key(const dn__session *s)
{
    return s->remote_key;
}

size_t dn__session_buffered_capacity(const dn__session *s)
{
    size_t n = s->rx.cap + s->plain.cap + s->scratch.cap + s->out.cap + s->inflight.cap;
    if (s->yamux)
        n += dn_yamux_output(s->yamux)->cap;
    return n;
}
