/* hostile_peer — a misbehaving libp2p peer for tests/interop/hostile.test.sh.
 *
 *   hostile_peer MODE <ip> <port> <peer id> [--swarm-key FILE] [--hold S] [--streams N]
 *
 * It dials a dmsnet daemon over plain blocking POSIX sockets (every blocking
 * call is bounded by SO_RCVTIMEO / SO_SNDTIMEO or poll) and breaks the
 * protocol in one of these ways:
 *
 *   junk          64 KiB of random bytes instead of multistream-select
 *   truncated     mss for /noise, then half of Noise message 1, then stall
 *   forged        full Noise XX, but message 3 carries an identity signature
 *                 over another static key (noise spec: "The libp2p Handshake
 *                 Payload" — the signature must cover our own static key)
 *   oversized     a proper session, then a yamux Data|SYN frame of 1 MiB,
 *                 beyond the 256 KiB initial window (yamux spec, "Flow
 *                 Control"; the receiver must treat it as a protocol error)
 *   stream-flood  a proper session, then N (default 20000) SYNs without
 *                 waiting for ACKs, then not reading for --hold S (default 2)
 *   no-read       a proper session, a /perf/1.0.0 stream (--streams N of
 *                 them, default 1) asking for 4 GiB with 1 GiB of extra
 *                 window granted, then not reading from the socket for
 *                 --hold S (default 10)
 *
 * It prints one line saying what happened and exits 0 when it managed to
 * misbehave (the test script judges how the node reacted), 2 when it could
 * not (connect failed, the honest part of the handshake failed, ...). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "dmsnet/buf.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "mss/mss.h"
#include "noise/noise.h"
#include "noise/noise_internal.h"
#include "pnet/pnet.h"
#include "yamux/yamux.h"

#define IO_TIMEOUT_S 5
#define YAMUX_T_DATA 0
#define YAMUX_T_WINDOW_UPDATE 1
#define YAMUX_T_GOAWAY 3
#define YAMUX_F_SYN 0x1
#define YAMUX_F_ACK 0x2
#define YAMUX_F_FIN 0x4
#define YAMUX_F_RST 0x8

typedef struct peer {
    int fd;
    bool use_pnet;
    dn_pnet pnet;
    dn_buf rx; /* received bytes, pnet removed, not yet consumed */
    bool have_session;
    dn_noise_session ns;
    dn_buf plain; /* decrypted Noise plaintext, not yet consumed */
    double t0;    /* when the misbehaviour started */
} peer;

static const char *mode_name = "?";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hostile_peer %s: ", mode_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void result(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", mode_name);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

static int connect_to(const char *ip, const char *port, int rcvbuf)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(ip, port, &hints, &ai);
    if (rc)
        die("bad address %s port %s: %s", ip, port, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* also bounds connect() */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Before connect, so the window scale allows it (best effort: capped by rmem_max). */
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect %s:%s: %s", ip, port, strerror(errno));
    freeaddrinfo(ai);
    return fd;
}

/* Send all of p[0..n) in clear; 0 or -errno. *sent (if given) counts what went out. */
static int send_wire(peer *p, const uint8_t *d, size_t n, size_t *sent)
{
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(p->fd, d + off, n - off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (sent)
                *sent = off;
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        off += (size_t)k;
    }
    if (sent)
        *sent = off;
    return 0;
}

/* Send protocol bytes (pnet applied). */
static int send_raw(peer *p, const uint8_t *d, size_t n, size_t *sent)
{
    if (!p->use_pnet)
        return send_wire(p, d, n, sent);
    uint8_t *tmp = malloc(n ? n : 1);
    if (!tmp)
        die("out of memory");
    memcpy(tmp, d, n);
    dn_pnet_encrypt(&p->pnet, tmp, n);
    int rc = send_wire(p, tmp, n, sent);
    free(tmp);
    return rc;
}

/* Send application bytes: through Noise once the session exists. */
static int send_app(peer *p, const uint8_t *d, size_t n, size_t *sent)
{
    if (!p->have_session)
        return send_raw(p, d, n, sent);
    dn_buf ct = DN_BUF_INIT;
    int rc = dn_noise_encrypt(&p->ns, d, n, &ct);
    if (rc)
        die("noise encrypt: %s", dn_strerror(rc));
    size_t wsent = 0;
    rc = send_raw(p, ct.data, ct.len, &wsent);
    if (sent) /* plaintext bytes that went out, roughly (whole messages) */
        *sent = ct.len ? (size_t)((double)n * (double)wsent / (double)ct.len) : 0;
    dn_buf_free(&ct);
    return rc;
}

/* Wait up to timeout_ms for bytes and append them (pnet removed) to p->rx;
 * with a session, decrypt complete messages into p->plain. Returns bytes
 * read, 0 on EOF, -ETIMEDOUT, or -errno. */
static int read_more(peer *p, int timeout_ms)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r < 0)
        return -errno;
    if (r == 0)
        return -ETIMEDOUT;
    uint8_t buf[65536];
    ssize_t k = recv(p->fd, buf, sizeof buf, 0);
    if (k < 0)
        return errno == EAGAIN ? -ETIMEDOUT : -errno;
    if (k == 0)
        return 0;
    size_t n = (size_t)k, off = 0;
    if (p->use_pnet) {
        if (!dn_pnet_ready(&p->pnet))
            off = dn_pnet_feed_nonce(&p->pnet, buf, n);
        dn_pnet_decrypt(&p->pnet, buf + off, n - off);
    }
    if (dn_buf_append(&p->rx, buf + off, n - off))
        die("out of memory");
    if (p->have_session && p->rx.len) {
        size_t used = 0;
        int rc = dn_noise_decrypt(&p->ns, p->rx.data, p->rx.len, &used, &p->plain);
        dn_buf_consume(&p->rx, used);
        if (rc)
            die("noise decrypt: %s", dn_strerror(rc));
    }
    return (int)k;
}

/* Read until the peer closes or timeout_s pass, discarding everything.
 * Prints the outcome; returns true if the peer closed. */
static bool wait_close(peer *p, double timeout_s, const char *what)
{
    double end = now_s() + timeout_s;
    size_t got = 0;
    for (;;) {
        double left = end - now_s();
        if (left <= 0) {
            result("%s; still open after %.1f s (%zu bytes received)", what, now_s() - p->t0, got);
            return false;
        }
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r <= 0)
            continue;
        uint8_t buf[65536];
        ssize_t k = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        result("%s; closed by peer (%s) after %.2f s (%zu bytes received)", what,
               k == 0 ? "EOF" : strerror(errno), now_s() - p->t0, got);
        return true;
    }
}

/* ---- honest connection setup ------------------------------------------ */

static void pnet_setup(peer *p, const char *keyfile)
{
    uint8_t psk[DN_PSK_LEN], nonce[DN_PNET_NONCE_LEN];
    int rc = dn_swarm_key_load(keyfile, psk);
    if (rc)
        die("swarm key %s: %s", keyfile, dn_strerror(rc));
    randombytes_buf(nonce, sizeof nonce);
    dn_pnet_init(&p->pnet, psk, nonce);
    sodium_memzero(psk, sizeof psk);
    /* pnet spec: the 24-byte nonce goes out first, in clear. */
    if (send_wire(p, nonce, sizeof nonce, NULL))
        die("sending the pnet nonce failed");
    p->use_pnet = true;
}

/* multistream-select for one protocol, as dialer (over Noise when a session exists). */
static void mss_select(peer *p, const char *proto)
{
    const char *protos[1] = {proto};
    dn_mss m;
    dn_mss_init_dialer(&m, protos, 1);
    dn_buf out = DN_BUF_INIT;
    int rc = dn_mss_start(&m, &out);
    if (rc || send_app(p, out.data, out.len, NULL))
        die("mss: sending the proposal failed");
    for (;;) {
        dn_buf *in = p->have_session ? &p->plain : &p->rx;
        if (in->len) {
            size_t used = 0;
            dn_buf_reset(&out);
            rc = dn_mss_feed(&m, in->data, in->len, &used, &out);
            dn_buf_consume(in, used);
            if (rc < 0)
                die("mss for %s: %s", proto, dn_strerror(rc));
            if (out.len && send_app(p, out.data, out.len, NULL))
                die("mss: send failed");
            if (rc == DN_MSS_DONE)
                break;
        }
        int k = read_more(p, IO_TIMEOUT_S * 1000);
        if (k <= 0)
            die("mss for %s: %s", proto, k == 0 ? "peer closed" : strerror(-k));
    }
    dn_buf_free(&out);
}

/* Read one framed Noise handshake message (2-byte length + body) from p->rx. */
static void read_hs_frame(peer *p, dn_buf *body)
{
    for (;;) {
        if (p->rx.len >= 2) {
            size_t n = (size_t)p->rx.data[0] << 8 | p->rx.data[1];
            if (p->rx.len >= 2 + n) {
                dn_buf_reset(body);
                if (dn_buf_append(body, p->rx.data + 2, n))
                    die("out of memory");
                dn_buf_consume(&p->rx, 2 + n);
                return;
            }
        }
        int k = read_more(p, IO_TIMEOUT_S * 1000);
        if (k <= 0)
            die("noise: waiting for message 2: %s", k == 0 ? "peer closed" : strerror(-k));
    }
}

/* A message-3 payload with a valid Ed25519 signature, but over a random
 * static key instead of ours: the responder must refuse it (DN_EBADSIG). */
static void forged_msg3(peer *p, dn_noise_handshake *hs, const dn_privkey *id)
{
    dn_buf body = DN_BUF_INIT, pl = DN_BUF_INIT, m3 = DN_BUF_INIT;
    read_hs_frame(p, &body);
    int rc = dn__noise_read_message(hs, body.data, body.len, &pl);
    if (rc)
        die("noise: reading message 2: %s", dn_strerror(rc));
    uint8_t fake_s[32];
    randombytes_buf(fake_s, sizeof fake_s);
    static const char *const mux[] = {DN_YAMUX_PROTOCOL};
    dn_buf_reset(&pl);
    rc = dn__noise_payload_build(id, fake_s, mux, 1, &pl);
    if (rc)
        die("payload: %s", dn_strerror(rc));
    dn_buf_reset(&body);
    rc = dn__noise_write_message(hs, pl.data, pl.len, &body);
    if (rc)
        die("noise: writing message 3: %s", dn_strerror(rc));
    uint8_t hdr[2] = {(uint8_t)(body.len >> 8), (uint8_t)body.len};
    if (dn_buf_append(&m3, hdr, 2) || dn_buf_append(&m3, body.data, body.len))
        die("out of memory");
    p->t0 = now_s();
    rc = send_raw(p, m3.data, m3.len, NULL);
    if (rc)
        die("sending the forged message 3: %s", strerror(-rc));
    dn_buf_free(&body);
    dn_buf_free(&pl);
    dn_buf_free(&m3);
}

/* mss for /noise, the Noise XX handshake as initiator (forged: bad
 * signature in message 3, then return), then yamux (inline extension or mss). */
static void handshake(peer *p, const dn_peerid *expected, bool forged)
{
    dn_privkey *id;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &id);
    if (rc)
        die("keygen: %s", dn_strerror(rc));
    mss_select(p, DN_NOISE_PROTOCOL);

    static const char *const mux[] = {DN_YAMUX_PROTOCOL};
    dn_noise_handshake hs;
    rc = dn_noise_handshake_init(&hs, true, id, expected, mux, 1);
    dn_buf out = DN_BUF_INIT;
    if (!rc)
        rc = dn_noise_handshake_start(&hs, &out);
    if (rc)
        die("noise start: %s", dn_strerror(rc));
    if (send_raw(p, out.data, out.len, NULL))
        die("noise: sending message 1 failed");
    if (forged) {
        forged_msg3(p, &hs, id);
        dn_noise_handshake_free(&hs);
        dn_buf_free(&out);
        dn_privkey_free(id);
        return;
    }
    for (;;) {
        if (p->rx.len) {
            size_t used = 0;
            dn_buf_reset(&out);
            rc = dn_noise_handshake_feed(&hs, p->rx.data, p->rx.len, &used, &out);
            dn_buf_consume(&p->rx, used);
            if (rc < 0)
                die("noise handshake: %s", dn_strerror(rc));
            if (out.len && send_raw(p, out.data, out.len, NULL))
                die("noise: sending message 3 failed");
            if (rc == DN_NOISE_DONE)
                break;
        }
        int k = read_more(p, IO_TIMEOUT_S * 1000);
        if (k <= 0)
            die("noise handshake: %s", k == 0 ? "peer closed" : strerror(-k));
    }
    bool inline_yamux = dn_noise_negotiated_muxer(&hs) != NULL;
    rc = dn_noise_handshake_split(&hs, &p->ns, NULL);
    dn_noise_handshake_free(&hs);
    if (rc)
        die("noise split: %s", dn_strerror(rc));
    p->have_session = true;
    /* Bytes after message 2 are transport messages already. */
    if (p->rx.len) {
        size_t used = 0;
        rc = dn_noise_decrypt(&p->ns, p->rx.data, p->rx.len, &used, &p->plain);
        dn_buf_consume(&p->rx, used);
        if (rc)
            die("noise decrypt: %s", dn_strerror(rc));
    }
    if (!inline_yamux)
        mss_select(p, DN_YAMUX_PROTOCOL);
    dn_buf_free(&out);
    dn_privkey_free(id);
}

/* ---- yamux frames, written by hand (the engine would refuse to misbehave) */

static void yamux_hdr(dn_buf *b, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    uint8_t h[DN_YAMUX_HEADER_LEN] = {0,
                                      type,
                                      (uint8_t)(flags >> 8),
                                      (uint8_t)flags,
                                      (uint8_t)(id >> 24),
                                      (uint8_t)(id >> 16),
                                      (uint8_t)(id >> 8),
                                      (uint8_t)id,
                                      (uint8_t)(len >> 24),
                                      (uint8_t)(len >> 16),
                                      (uint8_t)(len >> 8),
                                      (uint8_t)len};
    if (dn_buf_append(b, h, sizeof h))
        die("out of memory");
}

typedef struct frame_stats {
    size_t frames, acks, rsts, fins, data_bytes;
    bool goaway;
    uint32_t goaway_code;
    size_t skip; /* payload bytes of the current Data frame still to skip */
} frame_stats;

/* Count what the node sent back (p->plain holds decrypted yamux bytes). */
static void parse_frames(peer *p, frame_stats *st)
{
    for (;;) {
        if (st->skip) {
            size_t k = st->skip < p->plain.len ? st->skip : p->plain.len;
            dn_buf_consume(&p->plain, k);
            st->skip -= k;
            st->data_bytes += k;
            if (st->skip)
                return;
        }
        if (p->plain.len < DN_YAMUX_HEADER_LEN)
            return;
        const uint8_t *h = p->plain.data;
        uint8_t type = h[1];
        uint16_t flags = (uint16_t)(h[2] << 8 | h[3]);
        uint32_t len = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
        st->frames++;
        if (type == YAMUX_T_DATA || type == YAMUX_T_WINDOW_UPDATE) {
            st->acks += (flags & YAMUX_F_ACK) != 0;
            st->rsts += (flags & YAMUX_F_RST) != 0;
            st->fins += (flags & YAMUX_F_FIN) != 0;
        }
        if (type == YAMUX_T_GOAWAY) {
            st->goaway = true;
            st->goaway_code = len;
        }
        dn_buf_consume(&p->plain, DN_YAMUX_HEADER_LEN); /* moves the data: h is stale */
        if (type == YAMUX_T_DATA)
            st->skip = len;
    }
}

/* Poll the connection without reading it: true once the node reset or shut it. */
static bool peer_gone(peer *p)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLRDHUP};
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Keep the connection open without reading for hold_s seconds. */
static bool hold_without_reading(peer *p, double hold_s, double *gone_at)
{
    double end = now_s() + hold_s;
    while (now_s() < end) {
        if (peer_gone(p)) {
            *gone_at = now_s() - p->t0;
            return false;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* ---- modes -------------------------------------------------------------- */

static void mode_junk(peer *p)
{
    static uint8_t junk[64 * 1024];
    randombytes_buf(junk, sizeof junk);
    /* Not "/multistream/1.0.0" by any chance. */
    junk[0] = 0xff;
    p->t0 = now_s();
    size_t sent = 0;
    int rc = send_raw(p, junk, sizeof junk, &sent);
    if (sent == 0)
        die("could not send any junk: %s", strerror(-rc));
    char what[96];
    snprintf(what, sizeof what, "sent %zu of %zu junk bytes%s", sent, sizeof junk,
             rc ? " (then the node cut us off)" : "");
    wait_close(p, 10, what);
}

static void mode_truncated(peer *p)
{
    mss_select(p, DN_NOISE_PROTOCOL);
    dn_privkey *id;
    if (dn_privkey_generate(DN_KEY_ED25519, &id))
        die("keygen failed");
    dn_noise_handshake hs;
    dn_buf m1 = DN_BUF_INIT;
    if (dn_noise_handshake_init(&hs, true, id, NULL, NULL, 0) || dn_noise_handshake_start(&hs, &m1))
        die("noise start failed");
    size_t half = m1.len / 2;
    p->t0 = now_s();
    if (send_raw(p, m1.data, half, NULL))
        die("sending half of message 1 failed");
    char what[96];
    snprintf(what, sizeof what, "sent %zu of %zu bytes of Noise message 1", half, m1.len);
    wait_close(p, 30, what);
    dn_noise_handshake_free(&hs);
    dn_buf_free(&m1);
    dn_privkey_free(id);
}

static void mode_forged(peer *p, const dn_peerid *expected)
{
    handshake(p, expected, true);
    wait_close(p, 10, "sent Noise message 3 signed over a wrong static key");
}

static void mode_oversized(peer *p, const dn_peerid *expected)
{
    handshake(p, expected, false);
    const size_t big = 1024 * 1024;
    dn_buf f = DN_BUF_INIT;
    yamux_hdr(&f, YAMUX_T_DATA, YAMUX_F_SYN, 1, (uint32_t)big);
    if (dn_buf_reserve(&f, big))
        die("out of memory");
    memset(f.data + f.len, 'x', big);
    f.len += big;
    p->t0 = now_s();
    size_t sent = 0;
    int rc = send_app(p, f.data, f.len, &sent);
    char what[128];
    snprintf(what, sizeof what, "sent a Data|SYN frame of %zu bytes (%zu of it written%s)", big,
             sent, rc ? ", then the node cut us off" : "");
    dn_buf_free(&f);
    wait_close(p, 10, what);
}

static void mode_stream_flood(peer *p, const dn_peerid *expected, unsigned n, double hold_s)
{
    handshake(p, expected, false);
    dn_buf f = DN_BUF_INIT;
    p->t0 = now_s();
    unsigned opened = 0;
    int rc = 0;
    /* In batches, so a node that closes early is noticed. */
    for (unsigned i = 0; i < n && !rc; i += 1000) {
        dn_buf_reset(&f);
        for (unsigned j = i; j < n && j < i + 1000; j++)
            yamux_hdr(&f, YAMUX_T_WINDOW_UPDATE, YAMUX_F_SYN, 2 * j + 1, 0);
        rc = send_app(p, f.data, f.len, NULL);
        if (!rc)
            opened = i + (unsigned)(f.len / DN_YAMUX_HEADER_LEN);
    }
    dn_buf_free(&f);
    if (opened == 0)
        die("could not send a single SYN: %s", strerror(-rc));
    double gone_at = 0;
    bool open = hold_without_reading(p, hold_s, &gone_at);
    /* Now look at what the node answered. */
    frame_stats st = {0};
    double end = now_s() + 5;
    int k = 1;
    while (now_s() < end) {
        k = read_more(p, 200);
        if (k == -ETIMEDOUT)
            break; /* drained */
        if (k <= 0)
            break;
        parse_frames(p, &st);
    }
    parse_frames(p, &st);
    char closed[64] = "connection still open";
    if (!open || (k <= 0 && k != -ETIMEDOUT))
        snprintf(closed, sizeof closed, "connection closed by the node (%s)",
                 k == 0                     ? "EOF"
                 : k < 0 && k != -ETIMEDOUT ? strerror(-k)
                                            : "hangup");
    char ga[32] = "";
    if (st.goaway)
        snprintf(ga, sizeof ga, ", go-away code %u", st.goaway_code);
    result("sent %u SYNs of %u%s; node answered %zu ACKs, %zu RSTs in %zu frames%s; %s", opened, n,
           rc ? " (then the node cut us off)" : "", st.acks, st.rsts, st.frames, ga, closed);
    printf("acks=%zu rsts=%zu frames=%zu goaway=%d open=%d\n", st.acks, st.rsts, st.frames,
           st.goaway, open && (k > 0 || k == -ETIMEDOUT));
}

static void mode_no_read(peer *p, const dn_peerid *expected, unsigned nstreams, double hold_s)
{
    handshake(p, expected, false);
    /* Each stream: Data|SYN carrying the mss header, the proposal and the
     * perf request (8-byte big-endian byte count, perf spec), then a window
     * update granting 1 GiB more, with FIN (our upload is empty). */
    dn_buf pl = DN_BUF_INIT, f = DN_BUF_INIT;
    static const char *const proto[] = {"/perf/1.0.0"};
    dn_mss m;
    dn_mss_init_dialer(&m, proto, 1);
    if (dn_mss_start(&m, &pl))
        die("mss start failed");
    uint64_t want = 4ull << 30;
    for (int i = 0; i < 8; i++)
        dn_buf_append_byte(&pl, (uint8_t)(want >> (56 - 8 * i)));
    for (unsigned i = 0; i < nstreams; i++) {
        uint32_t id = 2 * i + 1;
        yamux_hdr(&f, YAMUX_T_DATA, YAMUX_F_SYN, id, (uint32_t)pl.len);
        dn_buf_append(&f, pl.data, pl.len);
        yamux_hdr(&f, YAMUX_T_WINDOW_UPDATE, YAMUX_F_FIN, id, 1u << 30);
    }
    p->t0 = now_s();
    if (send_app(p, f.data, f.len, NULL))
        die("sending the perf request failed");
    dn_buf_free(&pl);
    dn_buf_free(&f);
    /* Nothing leaves the kernel's receive buffer from here on. */
    double gone_at = 0;
    bool open = hold_without_reading(p, hold_s, &gone_at);
    /* What the node pushed before the socket filled up: beyond 256 KiB means
     * it used the extra window, i.e. it really had data to send us. */
    int unread = 0;
    if (ioctl(p->fd, FIONREAD, &unread) < 0)
        unread = -1;
    if (open)
        result("%u stream(s) asked for 4 GiB with a 1 GiB window, did not read; "
               "still open after %.1f s (%d bytes unread)",
               nstreams, now_s() - p->t0, unread);
    else
        result("%u stream(s) asked for 4 GiB with a 1 GiB window, did not read; "
               "closed by peer after %.2f s (%d bytes unread)",
               nstreams, gone_at, unread);
    printf("unread=%d open=%d\n", unread, open);
}

static void usage(void)
{
    fprintf(stderr, "usage: hostile_peer junk|truncated|forged|oversized|stream-flood|no-read "
                    "<ip> <port> <peer id> [--swarm-key FILE] [--hold S] [--streams N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 5)
        usage();
    const char *mode = argv[1], *ip = argv[2], *port = argv[3], *pid = argv[4];
    const char *keyfile = NULL;
    double hold = -1;
    unsigned streams = 0; /* mode default */
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--swarm-key") == 0 && i + 1 < argc)
            keyfile = argv[++i];
        else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc)
            hold = atof(argv[++i]);
        else if (strcmp(argv[i], "--streams") == 0 && i + 1 < argc)
            streams = (unsigned)strtoul(argv[++i], NULL, 10);
        else
            usage();
    }
    if (hold > 600 || streams > 100000000)
        usage();
    mode_name = mode;
    if (sodium_init() < 0)
        die("sodium_init failed");
    dn_peerid expected;
    int rc = dn_peerid_parse(pid, &expected);
    if (rc)
        die("bad peer id %s: %s", pid, dn_strerror(rc));

    peer p = {.fd = -1};
    dn_buf_init(&p.rx);
    dn_buf_init(&p.plain);
    /* no-read: a big receive buffer lets the node push well past its initial window. */
    p.fd = connect_to(ip, port, strcmp(mode, "no-read") == 0 ? 4 << 20 : 0);
    p.t0 = now_s();
    if (keyfile)
        pnet_setup(&p, keyfile);

    if (strcmp(mode, "junk") == 0)
        mode_junk(&p);
    else if (strcmp(mode, "truncated") == 0)
        mode_truncated(&p);
    else if (strcmp(mode, "forged") == 0)
        mode_forged(&p, &expected);
    else if (strcmp(mode, "oversized") == 0)
        mode_oversized(&p, &expected);
    else if (strcmp(mode, "stream-flood") == 0)
        mode_stream_flood(&p, &expected, streams ? streams : 20000, hold < 0 ? 2 : hold);
    else if (strcmp(mode, "no-read") == 0)
        mode_no_read(&p, &expected, streams ? streams : 1, hold < 0 ? 10 : hold);
    else
        usage();

    close(p.fd);
    if (p.have_session)
        dn_noise_session_free(&p.ns);
    if (p.use_pnet)
        dn_pnet_wipe(&p.pnet);
    dn_buf_free(&p.rx);
    dn_buf_free(&p.plain);
    return 0;
}
