/* A connection: one TCP socket carrying a session (host/session.h: pnet,
 * multistream-select, Noise and Yamux, sans-I/O). This file is the libuv
 * glue: socket reads go straight into the session's receive buffer and are
 * committed to it; the session's output goes out with one uv_write in
 * flight at a time, everything produced meanwhile batched into the next
 * write; the session's expiry drives c->timer (which before the session
 * starts is the dial deadline). Writes are issued from the host's prepare
 * handle, once per loop turn, so a burst of stream writes becomes one
 * syscall.
 *
 * Teardown never happens inside an engine callback: dn__conn_fail only
 * marks the connection (and closes the session) and closes its handles;
 * memory is released in the close callback, on a later loop turn. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __GLIBC__
#endif

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "host/host_internal.h"

/* Hard cap on ciphertext queued behind a write that has not completed.
 * Stream data stops at DN_CONN_WIRE_HIGH (plus one frame), so only frames
 * the peer's own input makes us produce (yamux RSTs for refused SYNs, ping
 * replies, window updates) can pass it: a peer that sends those without
 * ever reading would otherwise grow this buffer without bound. */
#define CONN_WIRE_MAX (4u * DN_CONN_WIRE_HIGH)
#define CONN_TIMER_OFF UINT64_MAX

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timeout(uv_timer_t *t);

/* How logs name a connection: the peer id once known, else its address. */
static const char *conn_name(const dn_conn *c, char buf[64])
{
    const dn_peerid *remote = dn__session_remote(&c->sess);
    if (remote)
        return dn_peerid_short(remote, buf);
    if (c->have_expected)
        return dn_peerid_short(&c->expected, buf);
    if (c->remote_addr.len && dn_multiaddr_to_string(&c->remote_addr, buf, 64) > 0)
        return buf;
    return "(unknown)";
}

/* c->phase mirrors the session's (others read it). */
static void sync_phase(dn_conn *c)
{
    if (c->failed)
        return;
    switch (dn__session_get_phase(&c->sess)) {
    case DN__SESSION_NEW: c->phase = PH_CONNECTING; break;
    case DN__SESSION_PNET_NONCE: c->phase = PH_PNET_NONCE; break;
    case DN__SESSION_SECURITY_MSS: c->phase = PH_SECURITY_MSS; break;
    case DN__SESSION_NOISE: c->phase = PH_NOISE; break;
    case DN__SESSION_MUXER_MSS: c->phase = PH_MUXER_MSS; break;
    case DN__SESSION_OPEN: c->phase = PH_OPEN; break;
    case DN__SESSION_CLOSED: c->phase = PH_CLOSED; break;
    }
}

/* Point c->timer at the session's next deadline. Deadlines only move when
 * the session says so, so this is a compare on the hot path. */
static void arm_timer(dn_conn *c)
{
    if (c->failed || !c->sess_started)
        return;
    uint64_t at = dn__session_expiry(&c->sess);
    if (at == c->timer_at)
        return;
    c->timer_at = at;
    if (at == DN__SESSION_NO_EXPIRY) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->host->loop);
    uv_timer_start(&c->timer, on_timeout, at > now ? at - now : 0, 0);
}

/* After a burst the session released its big buffers: do the same with the
 * streams' send queues that emptied (the pump keeps their memory). */
static size_t trim_streams(dn_conn *c)
{
    size_t released = 0;
    for (dn_stream *s = c->streams; s; s = s->next) {
        if (s->sendq.len == s->sendq_off && s->sendq.cap > DN__SESSION_KEEP) {
            released += s->sendq.cap;
            dn_buf_free(&s->sendq);
            s->sendq_off = 0;
        }
    }
    return released;
}

static void start_write(dn_conn *c);

static void on_session_event(void *ctx, const dn__session_event *ev)
{
    dn_conn *c = ctx;
    char name[64];
    int rc;
    switch (ev->type) {
    case DN__SESSION_EV_YAMUX: dn__stream_on_yamux_event(c, ev->yamux); return;
    case DN__SESSION_EV_OPEN:
        c->remote = *ev->remote;
        c->remote_key = (dn_pubkey *)ev->remote_key;
        c->yamux = dn__session_yamux(&c->sess);
        c->phase = PH_OPEN;
        DN_DEBUG("conn", "connection %s %s open", c->outbound ? "to" : "from",
                 dn_peerid_short(&c->remote, name));
        if ((rc = dn__host_conn_opened(c->host, c)))
            dn__conn_fail(c, rc); /* a limit: the peer has too many connections */
        return;
    case DN__SESSION_EV_FAILED:
        if (ev->status == DN_EPROTO && c->phase == PH_OPEN)
            start_write(c); /* the GoAway(protocol error) the muxer queued */
        dn__conn_fail(c, ev->status);
        return;
    case DN__SESSION_EV_IDLE: {
        if (trim_streams(c) + ev->released <= DN__SESSION_KEEP)
            return; /* small pieces: the allocator reuses them */
        /* glibc keeps freed heap memory (and, after large mmap'd blocks
         * were freed, serves the next large ones from the heap): the host
         * hands the pages back once, a second after a burst of releases. */
        dn__host_note_release(c->host);
        return;
    }
    }
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
    if (c->read_stopped) {
        c->read_stopped = false;
        c->host->nread_stopped--;
    }
    for (dn_conn **pp = &c->host->yield_head; *pp; pp = &(*pp)->yield_next) {
        if (*pp == c) {
            *pp = c->yield_next;
            break;
        }
    }
    c->yamux = NULL;
    c->remote_key = NULL;
    dn__session_free(&c->sess);
    c->host->conn_mem -= c->mem_counted;
    c->mem_counted = 0;
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
    /* A failed handshake holds no slot, even before it is released. */
    dn__host_handshake_end(c->host, c);
    c->close_status = status;
    if (status && status != DN_ECLOSED)
        /* Peers cause these lines at will (connect, misbehave, repeat):
         * rate-limited. */
        DN_LOG_LIMITED(DN_LOG_INFO, "conn", "closing connection %s %s: %s",
                       c->outbound ? "to" : "from", conn_name(c, name), dn_strerror(status));
    else
        DN_DEBUG("conn", "connection %s %s closed", c->outbound ? "to" : "from",
                 conn_name(c, name));
    c->phase = PH_CLOSED;
    dn__session_close(&c->sess, status);
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

/* Read the socket unless a reason says not to (pressure, the turn's share). */
static void update_reading(dn_conn *c)
{
    bool want = !c->read_stopped && !c->read_yielded && !c->failed;
    if (want == c->reading)
        return;
    int rc = want ? uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)
                  : uv_read_stop((uv_stream_t *)&c->tcp);
    if (rc == 0)
        c->reading = want;
}

void dn__conn_end_yield(dn_conn *c)
{
    c->read_yielded = false;
    update_reading(c);
}

static size_t conn_backlog(const dn_conn *c)
{
    return c->queued + c->held + dn__session_pending(&c->sess);
}

void dn__conn_check_backlog(dn_conn *c)
{
    if (c->failed || c->phase != PH_OPEN)
        return;
    dn_host *h = c->host;
    if (!c->read_stopped) {
        if (conn_backlog(c) < DN_CONN_BACKLOG_STOP || !dn__host_under_pressure(h))
            return;
        c->read_stopped = true;
        h->nread_stopped++;
        dn__host_reading_stopped(h);
    } else {
        if (conn_backlog(c) >= DN_CONN_BACKLOG_RESUME && dn__host_under_pressure(h))
            return;
        c->read_stopped = false;
        h->nread_stopped--;
    }
    update_reading(c);
}

/* Keep the host's count of session buffer memory current. */
static void count_memory(dn_conn *c)
{
    if (c->sess_started && dn__host_under_pressure(c->host) && dn__session_trim_now(&c->sess))
        dn__host_note_release(c->host);
    size_t now = c->sess_started ? dn__session_buffered_capacity(&c->sess) : 0;
    c->host->conn_mem += now - c->mem_counted;
    c->mem_counted = now;
}

ssize_t dn__conn_send_stream_data(dn_conn *c, uint32_t stream_id, const uint8_t *data, size_t len)
{
    /* Under memory pressure, data stays in the stream queues (counted in
     * the queue budgets, which then refuse writes) instead of piling up as
     * ciphertext behind a socket that does not drain. */
    if (dn__host_under_pressure(c->host)) {
        size_t pending = dn__session_pending(&c->sess);
        if (pending >= DN_CONN_WIRE_PRESSED)
            return 0;
        if (len > DN_CONN_WIRE_PRESSED - pending)
            len = DN_CONN_WIRE_PRESSED - pending;
    }
    ssize_t n = dn__session_send_stream_data(&c->sess, stream_id, data, len);
    if (n > 0 || dn__session_pending(&c->sess))
        dn__conn_mark_dirty(c);
    return n;
}

size_t dn__conn_queued(const dn_conn *c)
{
    return dn__session_pending(&c->sess);
}

static void on_write_done(uv_write_t *req, int status);

static void start_write(dn_conn *c)
{
    if (c->writing || c->failed)
        return;
    const uint8_t *p;
    ssize_t len = dn__session_output_begin(&c->sess, &p);
    if (len <= 0) {
        if (len < 0)
            dn__conn_fail(c, (int)len);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n > 0)
        c->host->bytes_out += (uint64_t)n;
    if (n == (int)len) {
        dn__session_output_sent(&c->sess, (size_t)n);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        dn__conn_fail(c, n);
        return;
    }
    if (n > 0)
        dn__session_output_sent(&c->sess, (size_t)n);
    len = dn__session_output_begin(&c->sess, &p); /* the rest of the same batch */
    if (len <= 0) {
        if (len < 0)
            dn__conn_fail(c, (int)len);
        return;
    }
    b = uv_buf_init((char *)p, (unsigned)len);
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
    if (rc) {
        dn__conn_fail(c, rc);
        return;
    }
    c->writing = true;
    c->write_len = (size_t)len;
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
    c->host->bytes_out += c->write_len;
    dn__session_output_sent(&c->sess, SIZE_MAX);
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
        if (c->phase == PH_OPEN)
            dn__conn_pump_streams(c);
        start_write(c);
        if (c->failed || c->writing || !c->sendq_head)
            break;
        if (round == 15)
            dn__conn_mark_dirty(c);
    }
    if (c->failed)
        return;
    count_memory(c);
    dn__conn_check_backlog(c);
    arm_timer(c);
    if (c->close_after_flush && !c->writing && dn__session_pending(&c->sess) == 0)
        dn__conn_fail(c, DN_ECLOSED);
}

void dn__conn_goaway_now(dn_conn *c)
{
    if (c->failed || c->phase != PH_OPEN)
        return;
    if (dn__session_goaway(&c->sess, DN_YAMUX_GOAWAY_NORMAL) || c->writing)
        return;
    const uint8_t *p;
    ssize_t len = dn__session_output_begin(&c->sess, &p);
    if (len > 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
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
    c->timer_at = CONN_TIMER_OFF;
    if (!c->sess_started) {
        dn__conn_fail(c, DN_ETIMEOUT); /* the dial deadline */
        return;
    }
    dn__session_handle_expiry(&c->sess, uv_now(c->host->loop));
    arm_timer(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dn_conn *c = h->data;
    size_t room;
    size_t want = dn__host_under_pressure(c->host) ? DN_CONN_READ_CHUNK_PRESSED : DN_CONN_READ_CHUNK;
    uint8_t *p = dn__session_recv_buf(&c->sess, want, &room);
    if (!p) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)p, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    dn_conn *c = s->data;
    if (c->failed)
        return;
    if (nread < 0) {
        int status = (int)nread;
        /* The peer closing mid-handshake is no violation of ours to report:
         * it refused us (a full handshake budget, a wrong swarm key, our
         * key not the one it wanted) or went away. */
        if (nread == UV_EOF || c->goaway_received)
            status = DN_ECLOSED;
        dn__conn_fail(c, status);
        return;
    }
    dn_host *h = c->host;
    h->bytes_in += (uint64_t)nread;
    c->last_progress_ms = uv_now(h->loop);
    dn__session_recv_commit(&c->sess, (size_t)nread, uv_now(h->loop));
    sync_phase(c);
    dn__conn_flush(c);
    if (c->turn != h->turn) {
        c->turn = h->turn;
        c->turn_bytes = 0;
    }
    c->turn_bytes += (size_t)nread;
    if (!c->failed && !c->read_yielded &&
        c->turn_bytes >= (dn__host_under_pressure(h) ? DN_CONN_TURN_BYTES_PRESSED
                                                     : DN_CONN_TURN_BYTES)) {
        /* Its share of this turn: the others read first (prepare resumes). */
        c->read_yielded = true;
        c->yield_next = h->yield_head;
        h->yield_head = c;
        update_reading(c);
    }
    if (!c->failed && dn__session_pending(&c->sess) > CONN_WIRE_MAX) {
        char name[64];
        DN_LOG_LIMITED(DN_LOG_INFO, "conn", "connection %s %s: %zu bytes queued, peer is not reading",
                       c->outbound ? "to" : "from", conn_name(c, name),
                       dn__session_pending(&c->sess));
        dn__conn_fail(c, DN_ELIMIT);
    }
}

int dn__conn_new(dn_host *h, bool outbound, dn_conn **out)
{
    dn_conn *c = calloc(1, sizeof *c);
    if (!c)
        return DN_ENOMEM;
    c->host = h;
    c->outbound = outbound;
    c->id = ++h->last_conn_id;
    int rc = uv_tcp_init(h->loop, &c->tcp);
    if (rc) {
        free(c);
        return rc;
    }
    uv_timer_init(h->loop, &c->timer);
    c->timer_at = CONN_TIMER_OFF;
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

static void ma_from_sockaddr(const struct sockaddr_storage *ss, dn_multiaddr *ma)
{
    uint8_t bin[16];
    uint16_t port;
    ma->len = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        memcpy(bin, &sin->sin_addr, 4);
        port = ntohs(sin->sin_port);
        dn_multiaddr_append(ma, DN_MA_IP4, bin, 4);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        memcpy(bin, &sin6->sin6_addr, 16);
        port = ntohs(sin6->sin6_port);
        dn_multiaddr_append(ma, DN_MA_IP6, bin, 16);
    }
    uint8_t p[2] = {(uint8_t)(port >> 8), (uint8_t)port};
    dn_multiaddr_append(ma, DN_MA_TCP, p, 2);
}

void dn__conn_remote_from_socket(dn_conn *c)
{
    if (c->remote_addr.len)
        return;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        ma_from_sockaddr(&ss, &c->remote_addr);
}

static void conn_local_from_socket(dn_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        ma_from_sockaddr(&ss, &c->local_addr);
}

/* TCP is up (either direction): start the session and reading. */
static int conn_begin(dn_conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    dn__conn_remote_from_socket(c);
    conn_local_from_socket(c);
    dn_host *h = c->host;
    dn__session_config cfg = {.outbound = c->outbound,
                              .identity = h->identity,
                              .self = &h->self,
                              .noise_static = &h->noise_static,
                              .vcache = &h->vcache,
                              .psk = h->use_pnet ? h->psk : NULL,
                              .expected = c->have_expected ? &c->expected : NULL,
                              .max_streams = h->cfg.max_streams,
                              .max_window = h->use_pnet ? DN_CONN_PNET_FIRST_MAX_WINDOW : 0,
                              .handshake_timeout_ms = h->cfg.handshake_timeout_ms,
                              .output_high = DN_CONN_WIRE_HIGH};
    dn__session_init(&c->sess, &cfg, on_session_event, c);
    c->sess_started = true;
    int rc = dn__session_start(&c->sess, uv_now(h->loop));
    if (rc)
        return rc;
    sync_phase(c);
    dn__conn_mark_dirty(c);
    arm_timer(c);
    update_reading(c);
    return c->reading ? 0 : DN_EIO;
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
    c->timer_at = CONN_TIMER_OFF;
    int rc = conn_begin(c);
    if (rc)
        dn__conn_fail(c, rc);
}

/* Outbound: connect to addr, expecting the peer id if given. */
int dn__conn_dial(dn_host *h, const struct sockaddr *addr, const dn_peerid *expected, dn_dial_cb cb,
                  void *arg)
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
    /* Port reuse: leave from a listen port (see dn_host_config.no_port_reuse). */
    int fd = dn__host_reuse_socket(h, addr);
    if (fd >= 0 && uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        fd = -1;
    }
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connected);
    if (fd >= 0 && (rc == UV_EADDRNOTAVAIL || rc == UV_EADDRINUSE)) {
        /* That 4-tuple is taken: a connection to the same address is open
         * or in TIME_WAIT. Dial from an ephemeral port instead, on a fresh
         * socket put under the descriptor libuv already holds (the failed
         * connect left nothing registered with the loop). */
        int fresh = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fresh >= 0) {
            if (dup2(fresh, fd) == fd) {
                (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
                rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connected);
            }
            close(fresh);
        }
    }
    if (rc) {
        /* Report through the callback like every other failure. */
        dn__conn_fail(c, rc);
        return 0;
    }
    uv_timer_start(&c->timer, on_timeout, h->cfg.dial_timeout_ms, 0);
    return 0;
}
