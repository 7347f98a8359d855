/* A connection: one TCP socket upgraded through pnet (optional),
 * multistream-select, Noise and Yamux.
 *
 * Inbound bytes land in c->rx (pnet is removed in place as they arrive);
 * conn_process() hands them to whichever engine owns the current phase.
 * Outbound bytes are encrypted into c->wire; one uv_write is in flight at
 * a time (c->inflight) and everything produced meanwhile is batched into
 * the next write. Writes are issued from the host's prepare handle, once
 * per loop turn, so a burst of stream writes becomes one syscall.
 *
 * Teardown never happens inside an engine callback: dn__conn_fail only
 * marks the connection and closes its handles; memory is released in the
 * close callback, on a later loop turn. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "host/host_internal.h"

static const char *const muxers[] = {DN_YAMUX_PROTOCOL};

/* Hard cap on ciphertext queued behind a write that has not completed.
 * Stream data stops at DN_CONN_WIRE_HIGH (plus one frame), so only frames
 * the peer's own input makes us produce (yamux RSTs for refused SYNs, ping
 * replies, window updates) can pass it: a peer that sends those without
 * ever reading would otherwise grow this buffer without bound. */
#define CONN_WIRE_MAX (4u * DN_CONN_WIRE_HIGH)

static void conn_process(dn_conn *c);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* How logs name a connection: the peer id once known, else its address. */
static const char *conn_name(const dn_conn *c, char buf[64])
{
    if (c->phase >= PH_MUXER_MSS)
        return dn_peerid_short(&c->remote, buf);
    if (c->have_expected)
        return dn_peerid_short(&c->expected, buf);
    if (c->remote_addr.len && dn_multiaddr_to_string(&c->remote_addr, buf, 64) > 0)
        return buf;
    return "(unknown)";
}

static void on_yamux_event(void *ctx, const dn_yamux_event *ev)
{
    dn__stream_on_yamux_event(ctx, ev);
}

static void on_handle_closed(uv_handle_t *handle)
{
    dn_conn *c = handle->data;
    if (--c->open_handles > 0)
        return;
    dn__conn_close_streams(c, c->close_status);
    dn__conn_notify_waiters(c, c->close_status ? c->close_status : DN_ECLOSED);
    if (c->opened_event)
        dn_host_emit(c->host, c, DN_CONN_EV_CLOSED, c->close_status);
    if (c->yamux)
        dn_yamux_free(c->yamux);
    if (c->hs) {
        dn_noise_handshake_free(c->hs);
        free(c->hs);
    }
    if (c->have_session)
        dn_noise_session_free(&c->noise);
    if (c->use_pnet)
        dn_pnet_wipe(&c->pnet);
    dn_pubkey_free(c->remote_key);
    dn_buf_free(&c->rx);
    dn_buf_free(&c->plain);
    dn_buf_free(&c->scratch);
    dn_buf_free(&c->wire);
    dn_buf_free(&c->inflight);
    dn__host_conn_released(c->host, c);
    free(c);
}

void dn__conn_fail(dn_conn *c, int status)
{
    if (c->failed)
        return;
    char name[64];
    c->failed = true;
    c->host->nfailing++;
    if (c->counted_handshake) {
        /* A failed handshake holds no slot, even before it is released. */
        c->counted_handshake = false;
        c->host->nhandshakes--;
    }
    c->close_status = status;
    if (status && status != DN_ECLOSED && c->phase < PH_OPEN)
        /* Unauthenticated: anyone can cause these lines, so they are rate-limited. */
        DN_LOG_LIMITED(DN_LOG_INFO, "conn", "closing connection %s %s: %s",
                       c->outbound ? "to" : "from", conn_name(c, name), dn_strerror(status));
    else if (status && status != DN_ECLOSED)
        DN_INFO("conn", "closing connection %s %s: %s", c->outbound ? "to" : "from",
                conn_name(c, name), dn_strerror(status));
    else
        DN_DEBUG("conn", "connection %s %s closed", c->outbound ? "to" : "from",
                 conn_name(c, name));
    c->phase = PH_CLOSED;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void dn__conn_notify_waiters(dn_conn *c, int status)
{
    while (c->waiters) {
        dial_waiter *w = c->waiters;
        c->waiters = w->next;
        w->cb(c->host, status ? NULL : c, status, w->arg);
        free(w);
    }
}

void dn__conn_mark_dirty(dn_conn *c)
{
    if (c->dirty || c->failed)
        return;
    c->dirty = true;
    c->dirty_next = c->host->dirty_head;
    c->host->dirty_head = c;
}

/* Append plaintext protocol bytes for the wire, applying pnet. */
static int wire_append_raw(dn_conn *c, const uint8_t *p, size_t n)
{
    size_t off = c->wire.len;
    int rc = dn_buf_append(&c->wire, p, n);
    if (rc)
        return rc;
    if (c->use_pnet)
        dn_pnet_encrypt(&c->pnet, c->wire.data + off, n);
    dn__conn_mark_dirty(c);
    return 0;
}

/* Encrypt plaintext with Noise (and pnet) into the wire buffer. */
static int wire_append_secure(dn_conn *c, const uint8_t *p, size_t n)
{
    size_t off = c->wire.len;
    int rc = dn_noise_encrypt(&c->noise, p, n, &c->wire);
    if (rc)
        return rc;
    if (c->use_pnet)
        dn_pnet_encrypt(&c->pnet, c->wire.data + off, c->wire.len - off);
    dn__conn_mark_dirty(c);
    return 0;
}

/* Move the muxer's queued frames (control frames, and data written through
 * dn_yamux_write) to the wire. */
static int wire_take_muxer_output(dn_conn *c)
{
    dn_buf *out = dn_yamux_output(c->yamux);
    if (!out->len)
        return 0;
    int rc = wire_append_secure(c, out->data, out->len);
    dn_buf_reset(out);
    return rc;
}

/* Largest yamux payload that fits one Noise message with its header. */
#define CONN_FRAME_PAYLOAD (DN_NOISE_MAX_PLAINTEXT - DN_YAMUX_HEADER_LEN)

ssize_t dn__conn_send_stream_data(dn_conn *c, uint32_t stream_id, const uint8_t *data, size_t len)
{
    /* Frames the muxer already queued go first: the peer must see a
     * stream's SYN/ACK and window updates in the order they were made. */
    int rc = wire_take_muxer_output(c);
    if (rc)
        return rc;
    size_t taken = 0;
    while (taken < len && c->wire.len < DN_CONN_WIRE_HIGH) {
        /* One yamux Data frame per Noise message, sealed straight from the
         * caller's buffer: the payload is never copied next to its header. */
        uint8_t hdr[DN_YAMUX_HEADER_LEN];
        size_t want = len - taken < CONN_FRAME_PAYLOAD ? len - taken : CONN_FRAME_PAYLOAD;
        ssize_t n = dn_yamux_write_header(c->yamux, stream_id, want, hdr);
        if (n <= 0)
            break; /* window closed, or the stream is gone (the pump sees it) */
        size_t off = c->wire.len;
        rc = dn_noise_encrypt_parts(&c->noise, hdr, sizeof hdr, data + taken, (size_t)n, &c->wire);
        if (rc)
            return rc; /* the send direction is dead: the caller fails the conn */
        if (c->use_pnet)
            dn_pnet_encrypt(&c->pnet, c->wire.data + off, c->wire.len - off);
        taken += (size_t)n;
    }
    if (taken)
        dn__conn_mark_dirty(c);
    return (ssize_t)taken;
}

static void on_write_done(uv_write_t *req, int status);

static void start_write(dn_conn *c)
{
    if (c->writing || c->wire.len == 0 || c->failed)
        return;
    /* Swap the batch into the in-flight buffer; the old in-flight memory
     * becomes the next batch (no allocation in steady state). */
    dn_buf t = c->inflight;
    c->inflight = c->wire;
    c->wire = t;
    dn_buf_reset(&c->wire);

    uv_buf_t b = uv_buf_init((char *)c->inflight.data, (unsigned)c->inflight.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->inflight.len) {
        dn_buf_reset(&c->inflight);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        dn__conn_fail(c, n);
        return;
    }
    if (n > 0)
        dn_buf_consume(&c->inflight, (size_t)n);
    b = uv_buf_init((char *)c->inflight.data, (unsigned)c->inflight.len);
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
    if (rc) {
        dn__conn_fail(c, rc);
        return;
    }
    c->writing = true;
}

static void on_write_done(uv_write_t *req, int status)
{
    dn_conn *c = req->data;
    c->writing = false;
    if (c->failed)
        return;
    if (status) {
        dn__conn_fail(c, status);
        return;
    }
    dn_buf_reset(&c->inflight);
    dn__conn_flush(c);
}

void dn__conn_flush(dn_conn *c)
{
    /* A write that completes synchronously (uv_try_write) leaves room for
     * more: keep moving stream data until the socket pushes back, the
     * queues are empty, or a bounded number of rounds (then next turn). */
    for (int round = 0; round < 16; round++) {
        if (c->failed)
            return;
        if (c->phase == PH_OPEN) {
            dn__conn_pump_streams(c);
            int rc = c->failed ? 0 : wire_take_muxer_output(c);
            if (rc) {
                dn__conn_fail(c, rc);
                return;
            }
        }
        start_write(c);
        if (c->failed || c->writing || !c->sendq_head)
            break;
        if (round == 15)
            dn__conn_mark_dirty(c);
    }
    if (c->close_after_flush && !c->writing && c->wire.len == 0)
        dn__conn_fail(c, DN_ECLOSED);
}

void dn_conn_close(dn_conn *c)
{
    if (c->failed || c->close_after_flush)
        return;
    if (c->phase == PH_OPEN) {
        dn_yamux_goaway(c->yamux, DN_YAMUX_GOAWAY_NORMAL);
        c->close_after_flush = true;
        dn__conn_flush(c);
        return;
    }
    dn__conn_fail(c, DN_ECLOSED);
}

static void on_timeout(uv_timer_t *t)
{
    dn_conn *c = t->data;
    dn__conn_fail(c, DN_ETIMEOUT);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dn_conn *c = h->data;
    /* Move the unconsumed tail (less than one Noise frame) to the front
     * only when the free room runs short, not after every read. */
    if (c->rx.cap - c->rx.len < DN_CONN_READ_CHUNK && c->rx_off) {
        dn_buf_consume(&c->rx, c->rx_off);
        c->rx_off = 0;
    }
    if (dn_buf_reserve(&c->rx, DN_CONN_READ_CHUNK)) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)c->rx.data + c->rx.len, (unsigned)(c->rx.cap - c->rx.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    dn_conn *c = s->data;
    if (c->failed)
        return;
    if (nread < 0) {
        int status = (int)nread;
        if (nread == UV_EOF || c->goaway_received)
            status = c->phase == PH_OPEN ? DN_ECLOSED : DN_EPROTO;
        dn__conn_fail(c, status);
        return;
    }
    c->last_progress_ms = uv_now(c->host->loop);
    uint8_t *fresh = c->rx.data + c->rx.len;
    size_t n = (size_t)nread;
    if (c->use_pnet) {
        if (!dn_pnet_ready(&c->pnet)) {
            size_t k = dn_pnet_feed_nonce(&c->pnet, fresh, n);
            memmove(fresh, fresh + k, n - k);
            n -= k;
            if (dn_pnet_ready(&c->pnet) && c->phase == PH_PNET_NONCE)
                c->phase = PH_SECURITY_MSS;
        }
        dn_pnet_decrypt(&c->pnet, fresh, n);
    }
    c->rx.len += n;
    conn_process(c);
    dn__conn_flush(c);
    if (!c->failed && c->wire.len > CONN_WIRE_MAX) {
        char name[64];
        DN_INFO("conn", "connection %s %s: %zu bytes queued, peer is not reading",
                c->outbound ? "to" : "from", conn_name(c, name), c->wire.len);
        dn__conn_fail(c, DN_ELIMIT);
    }
}

/* The muxer is agreed: start yamux with whatever plaintext already came. */
static int start_yamux(dn_conn *c)
{
    dn_yamux_config ycfg = {.max_streams = c->host->cfg.max_streams,
                            .max_ack_backlog = 256,
                            .max_window = 16u * 1024u * 1024u};
    int rc = dn_yamux_new(c->outbound, &ycfg, on_yamux_event, c, &c->yamux);
    if (rc)
        return rc;
    c->phase = PH_OPEN;
    uv_timer_stop(&c->timer);
    char name[64];
    DN_DEBUG("conn", "connection %s %s open", c->outbound ? "to" : "from",
             dn_peerid_short(&c->remote, name));
    return dn__host_conn_opened(c->host, c);
}

static int finish_noise(dn_conn *c)
{
    dn_pubkey *key = NULL;
    c->remote = *dn_noise_remote_peer(c->hs);
    const char *mux = dn_noise_negotiated_muxer(c->hs);
    bool inline_yamux = mux && strcmp(mux, DN_YAMUX_PROTOCOL) == 0;
    int rc = dn_noise_handshake_split(c->hs, &c->noise, &key);
    dn_noise_handshake_free(c->hs);
    free(c->hs);
    c->hs = NULL;
    if (rc)
        return rc;
    c->have_session = true;
    c->remote_key = key;
    if (dn_peerid_equal(&c->remote, &c->host->self))
        return DN_EPEERID; /* a connection to ourselves is useless */
    if (inline_yamux)
        return start_yamux(c);
    /* Fall back to multistream-select inside the secure channel. */
    c->phase = PH_MUXER_MSS;
    c->mss_protos[0] = DN_YAMUX_PROTOCOL;
    if (c->outbound)
        dn_mss_init_dialer(&c->mss, c->mss_protos, 1);
    else
        dn_mss_init_listener(&c->mss, c->mss_protos, 1);
    dn_buf_reset(&c->scratch);
    rc = dn_mss_start(&c->mss, &c->scratch);
    if (!rc && c->scratch.len)
        rc = wire_append_secure(c, c->scratch.data, c->scratch.len);
    return rc;
}

static int start_noise(dn_conn *c)
{
    c->hs = calloc(1, sizeof *c->hs);
    if (!c->hs)
        return DN_ENOMEM;
    int rc = dn_noise_handshake_init_ex(c->hs, c->outbound, c->host->identity,
                                        &c->host->noise_static, &c->host->vcache,
                                        c->have_expected ? &c->expected : NULL, muxers, 1);
    if (rc)
        return rc;
    dn_buf_reset(&c->scratch);
    rc = dn_noise_handshake_start(c->hs, &c->scratch);
    if (!rc && c->scratch.len)
        rc = wire_append_raw(c, c->scratch.data, c->scratch.len);
    return rc;
}

/* c->rx holds received bytes from rx_off to len. */
static uint8_t *rx_data(dn_conn *c) { return c->rx.data + c->rx_off; }
static size_t rx_len(const dn_conn *c) { return c->rx.len - c->rx_off; }
static void rx_consume(dn_conn *c, size_t n)
{
    c->rx_off += n;
    if (c->rx_off == c->rx.len)
        c->rx.len = c->rx_off = 0;
}

/* One step of the current phase over c->rx. Returns 1 if it made progress
 * and more may follow, 0 if it needs more input, or a negative error. */
static int process_step(dn_conn *c)
{
    size_t used = 0;
    int rc;
    switch (c->phase) {
    case PH_SECURITY_MSS:
        dn_buf_reset(&c->scratch);
        rc = dn_mss_feed(&c->mss, rx_data(c), rx_len(c), &used, &c->scratch);
        rx_consume(c, used);
        if (rc >= 0 && c->scratch.len) {
            int wrc = wire_append_raw(c, c->scratch.data, c->scratch.len);
            if (wrc)
                return wrc;
        }
        if (rc == DN_MSS_DONE) {
            /* The dialer already sent message 1 (see conn_begin). */
            rc = c->hs ? 0 : start_noise(c);
            c->phase = PH_NOISE;
            return rc ? rc : 1;
        }
        return rc;
    case PH_NOISE:
        if (rx_len(c) == 0)
            return 0;
        dn_buf_reset(&c->scratch);
        rc = dn_noise_handshake_feed(c->hs, rx_data(c), rx_len(c), &used, &c->scratch);
        rx_consume(c, used);
        if (rc >= 0 && c->scratch.len) {
            int wrc = wire_append_raw(c, c->scratch.data, c->scratch.len);
            if (wrc)
                return wrc;
        }
        if (rc == DN_NOISE_DONE) {
            rc = finish_noise(c);
            return rc ? rc : 1;
        }
        return rc;
    case PH_MUXER_MSS:
    case PH_OPEN:
        if (rx_len(c) == 0)
            return 0;
        if (c->phase == PH_OPEN) {
            /* The data path: open each message in place, hand it to yamux. */
            uint8_t *pt;
            size_t ptlen;
            while ((rc = dn_noise_decrypt_inplace(&c->noise, rx_data(c), rx_len(c), &used, &pt,
                                                  &ptlen)) == 1) {
                rx_consume(c, used);
                if (ptlen && (rc = dn_yamux_feed(c->yamux, pt, ptlen)) < 0)
                    return rc;
                if (c->failed)
                    return 0;
            }
            return rc;
        }
        rc = dn_noise_decrypt(&c->noise, rx_data(c), rx_len(c), &used, &c->plain);
        rx_consume(c, used);
        if (rc)
            return rc;
        if (c->plain.len == 0)
            return 0;
        if (c->phase == PH_MUXER_MSS) {
            dn_buf_reset(&c->scratch);
            rc = dn_mss_feed(&c->mss, c->plain.data, c->plain.len, &used, &c->scratch);
            dn_buf_consume(&c->plain, used);
            if (rc >= 0 && c->scratch.len) {
                int wrc = wire_append_secure(c, c->scratch.data, c->scratch.len);
                if (wrc)
                    return wrc;
            }
            if (rc != DN_MSS_DONE)
                return rc;
            rc = start_yamux(c);
            if (rc)
                return rc;
            if (c->plain.len == 0)
                return 1;
        }
        rc = dn_yamux_feed(c->yamux, c->plain.data, c->plain.len);
        dn_buf_reset(&c->plain);
        return rc ? rc : 0;
    default:
        return 0;
    }
}

static void conn_process(dn_conn *c)
{
    for (;;) {
        if (c->failed)
            return;
        int rc = process_step(c);
        if (rc < 0) {
            if (c->phase == PH_OPEN && rc == DN_EPROTO) {
                /* yamux queued a GoAway(protocol error): try to send it. */
                dn__conn_flush(c);
            }
            dn__conn_fail(c, rc);
            return;
        }
        if (rc == 0)
            return;
    }
}

int dn__conn_new(dn_host *h, bool outbound, dn_conn **out)
{
    dn_conn *c = calloc(1, sizeof *c);
    if (!c)
        return DN_ENOMEM;
    c->host = h;
    c->outbound = outbound;
    c->use_pnet = h->use_pnet;
    int rc = uv_tcp_init(h->loop, &c->tcp);
    if (rc) {
        free(c);
        return rc;
    }
    uv_timer_init(h->loop, &c->timer);
    c->open_handles = 2;
    c->tcp.data = c;
    c->timer.data = c;
    c->write_req.data = c;
    c->connect_req.data = c;
    c->phase = PH_CONNECTING;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    *out = c;
    return 0;
}

void dn__conn_remote_from_socket(dn_conn *c)
{
    if (c->remote_addr.len)
        return;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        uint8_t bin[16];
        uint16_t port;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            memcpy(bin, &sin->sin_addr, 4);
            port = ntohs(sin->sin_port);
            dn_multiaddr_append(&c->remote_addr, DN_MA_IP4, bin, 4);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            memcpy(bin, &sin6->sin6_addr, 16);
            port = ntohs(sin6->sin6_port);
            dn_multiaddr_append(&c->remote_addr, DN_MA_IP6, bin, 16);
        }
        uint8_t p[2] = {(uint8_t)(port >> 8), (uint8_t)port};
        dn_multiaddr_append(&c->remote_addr, DN_MA_TCP, p, 2);
    }
}

/* TCP is up (either direction): write the first bytes and start reading. */
static int conn_begin(dn_conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    dn__conn_remote_from_socket(c);
    int rc = uv_timer_start(&c->timer, on_timeout, c->host->cfg.handshake_timeout_ms, 0);
    if (rc)
        return rc;
    if (c->use_pnet) {
        uint8_t nonce[DN_PNET_NONCE_LEN];
        randombytes_buf(nonce, sizeof nonce);
        dn_pnet_init(&c->pnet, c->host->psk, nonce);
        /* The nonce goes out in clear, before anything else. */
        rc = dn_buf_append(&c->wire, nonce, sizeof nonce);
        if (rc)
            return rc;
        dn__conn_mark_dirty(c);
        c->phase = PH_PNET_NONCE;
    } else {
        c->phase = PH_SECURITY_MSS;
    }
    c->mss_protos[0] = DN_NOISE_PROTOCOL;
    if (c->outbound)
        dn_mss_init_dialer(&c->mss, c->mss_protos, 1);
    else
        dn_mss_init_listener(&c->mss, c->mss_protos, 1);
    dn_buf_reset(&c->scratch);
    rc = dn_mss_start(&c->mss, &c->scratch);
    if (!rc)
        rc = wire_append_raw(c, c->scratch.data, c->scratch.len);
    /* Optimistic: with one proposal, the dialer sends Noise message 1 right
     * behind it, saving a round trip; listeners must accept data after the
     * protocol line (multistream-select spec), and "na" fails the dial
     * either way. */
    if (!rc && c->outbound)
        rc = start_noise(c);
    if (rc)
        return rc;
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void dn__conn_start_inbound(dn_conn *c)
{
    int rc = conn_begin(c);
    if (rc)
        dn__conn_fail(c, rc);
}

static void on_connected(uv_connect_t *req, int status)
{
    dn_conn *c = req->data;
    if (c->failed)
        return;
    if (status) {
        dn__conn_fail(c, status);
        return;
    }
    uv_timer_stop(&c->timer);
    int rc = conn_begin(c);
    if (rc)
        dn__conn_fail(c, rc);
}

/* Outbound: connect to addr, expecting the peer id if given. */
int dn__conn_dial(dn_host *h, const struct sockaddr *addr, const dn_peerid *expected,
                  dn_dial_cb cb, void *arg)
{
    dial_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return DN_ENOMEM;
    dn_conn *c;
    int rc = dn__conn_new(h, true, &c);
    if (rc) {
        free(w);
        return rc;
    }
    w->cb = cb;
    w->arg = arg;
    c->waiters = w;
    if (expected) {
        c->have_expected = true;
        c->expected = *expected;
    }
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connected);
    if (rc) {
        /* Report through the callback like every other failure. */
        dn__conn_fail(c, rc);
        return 0;
    }
    uv_timer_start(&c->timer, on_timeout, h->cfg.dial_timeout_ms, 0);
    return 0;
}
