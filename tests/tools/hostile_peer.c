/* hostile_peer — a misbehaving libp2p peer for tests/interop/hostile.test.sh.
 *
 *   hostile_peer MODE <ip> <port> <peer id> [options]
 *
 * It dials a dmsnet daemon over plain POSIX sockets (every blocking call is
 * bounded by SO_RCVTIMEO / SO_SNDTIMEO or poll), speaking through our own
 * engines (mss, Noise, pnet) where it behaves, and breaks the protocol in
 * one of these ways. One connection:
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
 *   identify      a proper session that answers the node's identify with
 *                 --agent STR as agent version (say, with a newline in it)
 *   rsa-push      identify pushes (/ipfs/id/push/1.0.0) each carrying
 *                 --records N (default 52, as many as fit 64 KiB) signed
 *                 peer records under an RSA-3072 key with a 3071-bit public
 *                 exponent (built with OpenSSL; signatures random), at
 *                 --rate R per second (default 3) for --duration S (10)
 *
 * Many connections (RLIMIT_NOFILE raised to its hard limit; --src IP binds
 * them to another loopback address than the good peer's):
 *
 *   slots         --conns N (default 5000) TCP connections that send
 *                 nothing, held --hold S (default 10)
 *   slots-reconnect  the same, reopening each one the node closes, for
 *                 --duration S (default 30)
 *   pnet-wrong    --conns N connections sending a pnet nonce and a first
 *                 flight under a wrong key, held (reconnecting when
 *                 --duration S is given)
 *   mss-stall     --conns N (100) sessions, each opening --streams M (1024)
 *                 streams whose multistream-select header never completes
 *   id-push       --conns N (20) sessions, each opening --streams M (1024)
 *                 identify push streams holding --size B (65536) bytes
 *                 without a FIN
 *   rsa-noise     rounds of --conns N (52) Noise handshakes whose message 3
 *                 carries the RSA key above (random signature), all N sent
 *                 at once, for --duration S (10)
 *   peerstore     --peers N (2000) peers with fresh identities that connect,
 *                 answer identify with --addrs A (32) addresses and
 *                 --protos P (128) protocol names of 255 bytes, and leave
 *                 (--src-spread K: from K consecutive source addresses)
 *   burst         --conns N (500) sessions, each sending --size B (1 MiB)
 *                 of ping bytes whose echo it reads, then idling --hold S
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
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "core/pb.h"
#include "dmsnet/buf.h"
#include "dmsnet/host.h"
#include "dmsnet/protocols.h"
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
    dn_buf plain;   /* decrypted Noise plaintext, not yet consumed */
    double t0;      /* when the misbehaviour started */
    dn_privkey *id; /* our identity for this connection (after handshake) */
    /* What a handshake holds while it runs, owned here so that a connection
     * given up half-way (soft_fail) frees everything with the peer. */
    bool have_hs;
    dn_noise_handshake hs;
    dn_buf s_mss, s_hs, s_pl; /* scratch: mss replies, handshake messages, payloads */
} peer;

static const char *mode_name = "?";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Modes that run many connections tolerate one that fails (the node may
 * rightly refuse some): while soft_fail is set, die() records the reason
 * and jumps back instead of exiting. */
static jmp_buf *soft_fail;
static char last_error[256];

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (soft_fail)
        longjmp(*soft_fail, 1);
    fprintf(stderr, "hostile_peer %s: %s\n", mode_name, last_error);
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

/* --src: the address attack connections come from (any 127.x.y.z works on
 * Linux loopback), so a node can tell them from the good peer on 127.0.0.1. */
static const char *src_ip;
/* --src-spread N: connection k comes from --src plus k mod N (IPv4, carried
 * into the higher octets): peers that come and go from many addresses. */
static unsigned src_spread;
static unsigned src_next;

static struct addrinfo *resolve(const char *ip, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(ip, port, &hints, &ai);
    if (rc)
        die("bad address %s port %s: %s", ip, port, gai_strerror(rc));
    return ai;
}

/* A socket for ai, bound to --src when given; -errno on failure. */
static int new_socket(const struct addrinfo *ai, bool nonblock)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src_ip) {
        struct addrinfo *sa = resolve(src_ip, "0");
        if (src_spread > 1 && sa->ai_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)sa->ai_addr;
            sin->sin_addr.s_addr = htonl(ntohl(sin->sin_addr.s_addr) + src_next++ % src_spread);
        }
        /* Many connections from one address: let the kernel pick the port at connect. */
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        int rc = bind(fd, sa->ai_addr, sa->ai_addrlen);
        freeaddrinfo(sa);
        if (rc < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
    }
    return fd;
}

static int connect_to(const char *ip, const char *port, int rcvbuf)
{
    struct addrinfo *ai = resolve(ip, port);
    int fd = new_socket(ai, false);
    if (fd < 0)
        die("socket: %s", strerror(-fd));
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* also bounds connect() */
    /* Before connect, so the window scale allows it (best effort: capped by rmem_max). */
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int e = errno;
        freeaddrinfo(ai);
        close(fd);
        die("connect %s:%s: %s", ip, port, strerror(e));
    }
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
    dn_buf *out = &p->s_mss;
    dn_buf_reset(out);
    int rc = dn_mss_start(&m, out);
    if (rc || send_app(p, out->data, out->len, NULL))
        die("mss: sending the proposal failed");
    for (;;) {
        dn_buf *in = p->have_session ? &p->plain : &p->rx;
        if (in->len) {
            size_t used = 0;
            dn_buf_reset(out);
            rc = dn_mss_feed(&m, in->data, in->len, &used, out);
            dn_buf_consume(in, used);
            if (rc < 0)
                die("mss for %s: %s", proto, dn_strerror(rc));
            if (out->len && send_app(p, out->data, out->len, NULL))
                die("mss: send failed");
            if (rc == DN_MSS_DONE)
                break;
        }
        int k = read_more(p, IO_TIMEOUT_S * 1000);
        if (k <= 0)
            die("mss for %s: %s", proto, k == 0 ? "peer closed" : strerror(-k));
    }
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
    dn_privkey_free(p->id);
    p->id = NULL;
    int rc = dn_privkey_generate(DN_KEY_ED25519, &p->id);
    if (rc)
        die("keygen: %s", dn_strerror(rc));
    mss_select(p, DN_NOISE_PROTOCOL);

    static const char *const mux[] = {DN_YAMUX_PROTOCOL};
    dn_noise_handshake *hs = &p->hs;
    rc = dn_noise_handshake_init(hs, true, p->id, expected, mux, 1);
    p->have_hs = rc == 0;
    dn_buf *out = &p->s_hs;
    dn_buf_reset(out);
    if (!rc)
        rc = dn_noise_handshake_start(hs, out);
    if (rc)
        die("noise start: %s", dn_strerror(rc));
    if (send_raw(p, out->data, out->len, NULL))
        die("noise: sending message 1 failed");
    if (forged) {
        forged_msg3(p, hs, p->id);
        dn_noise_handshake_free(hs);
        p->have_hs = false;
        return;
    }
    for (;;) {
        if (p->rx.len) {
            size_t used = 0;
            dn_buf_reset(out);
            rc = dn_noise_handshake_feed(hs, p->rx.data, p->rx.len, &used, out);
            dn_buf_consume(&p->rx, used);
            if (rc < 0)
                die("noise handshake: %s", dn_strerror(rc));
            if (out->len && send_raw(p, out->data, out->len, NULL))
                die("noise: sending message 3 failed");
            if (rc == DN_NOISE_DONE)
                break;
        }
        int k = read_more(p, IO_TIMEOUT_S * 1000);
        if (k <= 0)
            die("noise handshake: %s", k == 0 ? "peer closed" : strerror(-k));
    }
    bool inline_yamux = dn_noise_negotiated_muxer(hs) != NULL;
    rc = dn_noise_handshake_split(hs, &p->ns, NULL);
    dn_noise_handshake_free(hs);
    p->have_hs = false;
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

/* ---- many connections --------------------------------------------------- */

typedef struct opts {
    const char *ip, *port, *keyfile;
    dn_peerid expected;
    double hold, duration, rate;
    unsigned streams, conns, size, records, peers, addrs, protos;
    const char *agent;
} opts;

/* Thousands of sockets need more than the usual soft limit of 1,024 descriptors. */
static size_t raise_nofile(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0)
        return 1000;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        getrlimit(RLIMIT_NOFILE, &r);
    }
    return r.rlim_cur > 64 ? (size_t)(r.rlim_cur - 64) : 1;
}

/* Free what p holds (not p itself). */
static void peer_clear(peer *p)
{
    if (p->have_hs)
        dn_noise_handshake_free(&p->hs);
    dn_buf_free(&p->rx);
    dn_buf_free(&p->plain);
    dn_buf_free(&p->s_mss);
    dn_buf_free(&p->s_hs);
    dn_buf_free(&p->s_pl);
    dn_privkey_free(p->id);
}

static void peer_free(peer *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    if (p->have_session)
        dn_noise_session_free(&p->ns);
    if (p->use_pnet)
        dn_pnet_wipe(&p->pnet);
    peer_clear(p);
    free(p);
}

/* Connect (through pnet when a key is given) and run the honest handshake
 * with a fresh identity; NULL, the reason in last_error, when the node
 * refused or failed it. */
static peer *peer_session(const opts *o)
{
    peer *volatile p = calloc(1, sizeof *p);
    if (!p)
        die("out of memory");
    p->fd = -1;
    dn_buf_init(&p->rx);
    dn_buf_init(&p->plain);
    jmp_buf jb;
    soft_fail = &jb;
    if (setjmp(jb)) {
        soft_fail = NULL;
        peer_free(p); /* a handshake cut short leaks its small state: bounded, a test tool */
        return NULL;
    }
    p->fd = connect_to(o->ip, o->port, 0);
    p->t0 = now_s();
    if (o->keyfile)
        pnet_setup(p, o->keyfile);
    handshake(p, &o->expected, false);
    soft_fail = NULL;
    return p;
}

/* recv and discard what is there: bytes read, or -1 once the node closed.
 * This loses the Noise stream position: only for modes that never parse
 * the node's answers again. */
static long drain(peer *p)
{
    long total = 0;
    uint8_t buf[65536];
    for (;;) {
        ssize_t k = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0) {
            total += k;
            continue;
        }
        if (k == 0)
            return -1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? total : -1;
    }
}

/* Write all of d by the deadline, draining what arrives meanwhile (so a
 * node that answers while we send never blocks on us). 0 or -errno. */
static int write_draining(peer *p, const uint8_t *d, size_t n, double deadline, long *got)
{
    size_t off = 0;
    while (off < n) {
        double left = deadline - now_s();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN | POLLOUT};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (pfd.revents & POLLIN) {
            long k = drain(p);
            if (k < 0)
                return -ECONNRESET;
            if (got)
                *got += k;
        }
        if (pfd.revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t k = send(p->fd, d + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                return -errno;
            }
            off += (size_t)k;
        }
    }
    return 0;
}

/* Seal application bytes (Noise, then pnet) and write them as above. */
static int send_sealed(peer *p, const uint8_t *d, size_t n, double deadline, long *got)
{
    dn_buf ct = DN_BUF_INIT;
    if (p->have_session) {
        int rc = dn_noise_encrypt(&p->ns, d, n, &ct);
        if (rc)
            die("noise encrypt: %s", dn_strerror(rc));
    } else if (dn_buf_append(&ct, d, n)) {
        die("out of memory");
    }
    if (p->use_pnet)
        dn_pnet_encrypt(&p->pnet, ct.data, ct.len);
    int rc = write_draining(p, ct.data, ct.len, deadline, got);
    dn_buf_free(&ct);
    return rc;
}

typedef struct hold_stats {
    size_t closed;      /* connections the node closed while we held them */
    double first, last; /* seconds after the hold began */
    long received;      /* bytes drained */
} hold_stats;

/* Keep every connection of ps open for hold_s seconds, reading and
 * discarding (so what the node queues for us is never what we measure);
 * one the node closes is closed here too. Returns how many are still open. */
static size_t hold_many(peer **ps, size_t n, double hold_s, hold_stats *st)
{
    struct pollfd *pf = calloc(n ? n : 1, sizeof *pf);
    size_t *idx = calloc(n ? n : 1, sizeof *idx);
    if (!pf || !idx)
        die("out of memory");
    double t0 = now_s(), end = t0 + hold_s;
    size_t open = 0;
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (ps[i] && ps[i]->fd >= 0) {
                pf[m] = (struct pollfd){.fd = ps[i]->fd, .events = POLLIN | POLLRDHUP};
                idx[m++] = i;
            }
        open = m;
        double left = end - now_s();
        if (m == 0 || left <= 0)
            break;
        int r = poll(pf, m, left < 0.1 ? (int)(left * 1000) + 1 : 100);
        if (r <= 0)
            continue;
        for (size_t j = 0; j < m; j++) {
            if (!pf[j].revents)
                continue;
            peer *p = ps[idx[j]];
            long k = drain(p);
            if (k > 0)
                st->received += k;
            if (k < 0 || (pf[j].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
                close(p->fd);
                p->fd = -1;
                double t = now_s() - t0;
                if (st->closed++ == 0)
                    st->first = t;
                st->last = t;
            }
        }
    }
    free(pf);
    free(idx);
    return open;
}

/* One Data frame (header and payload) appended to b. */
static void yamux_data(dn_buf *b, uint16_t flags, uint32_t id, const void *d, size_t n)
{
    yamux_hdr(b, YAMUX_T_DATA, flags, id, (uint32_t)n);
    if (n && dn_buf_append(b, d, n))
        die("out of memory");
}

/* What a lazy dialer sends first on a stream: the mss header and its one proposal. */
static void mss_lazy(dn_buf *b, const char *proto)
{
    const char *protos[1] = {proto};
    dn_mss m;
    dn_mss_init_dialer(&m, protos, 1);
    if (dn_mss_start(&m, b))
        die("mss start failed");
}

/* ---- slot exhaustion ----------------------------------------------------- */

typedef struct slot {
    int fd;
    bool up;
    double t_open; /* when connect() was called */
} slot;

static int slot_open(slot *s, const struct addrinfo *ai)
{
    s->up = false;
    s->t_open = now_s();
    s->fd = new_socket(ai, true);
    if (s->fd < 0)
        return s->fd;
    if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        int e = -errno;
        close(s->fd);
        s->fd = -1;
        return e;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* N TCP connections that send nothing (pnet_wrong: a pnet nonce and a
 * first flight under a key the node does not have — what a peer with the
 * wrong swarm key sends), held for hold_s; with reconnect, every
 * connection the node closes is opened again at once until hold_s ends. */
static void mode_slots(const opts *o, unsigned n, double hold_s, bool reconnect, bool pnet_wrong)
{
    size_t budget = raise_nofile();
    if (n > budget)
        n = (unsigned)budget; /* bounded by our descriptor limit */
    struct addrinfo *ai = resolve(o->ip, o->port);
    slot *s = calloc(n, sizeof *s);
    struct pollfd *pf = calloc(n, sizeof *pf);
    size_t *idx = calloc(n, sizeof *idx);
    size_t cap_closes = 1 << 16, nclose = 0;
    double *close_t = malloc(cap_closes * sizeof *close_t);
    if (!s || !pf || !idx || !close_t)
        die("out of memory");
    size_t opened = 0, connected = 0, failed = 0, closed = 0, reconnects = 0;
    double t0 = now_s(), end = t0 + hold_s, all_up = 0;
    for (unsigned i = 0; i < n; i++) {
        if (slot_open(&s[i], ai) == 0)
            opened++;
        else
            failed++;
    }
    while (now_s() < end) {
        size_t m = 0;
        for (unsigned i = 0; i < n; i++) {
            if (s[i].fd < 0 && reconnect) {
                if (slot_open(&s[i], ai) == 0)
                    reconnects++;
                else
                    failed++;
            }
            if (s[i].fd >= 0) {
                pf[m] = (struct pollfd){.fd = s[i].fd,
                                        .events = s[i].up ? POLLIN | POLLRDHUP : POLLOUT};
                idx[m++] = i;
            }
        }
        if (m == 0)
            break;
        int r = poll(pf, m, 50);
        if (r <= 0)
            continue;
        for (size_t j = 0; j < m; j++) {
            if (!pf[j].revents)
                continue;
            slot *sl = &s[idx[j]];
            bool gone = false;
            if (!sl->up) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(sl->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    failed++;
                    close(sl->fd);
                    sl->fd = -1;
                    continue;
                }
                sl->up = true;
                if (++connected == n && !all_up)
                    all_up = now_s() - t0;
                if (pnet_wrong) {
                    /* The nonce, then "/multistream/1.0.0\n" under a wrong key. */
                    uint8_t first[24 + 20];
                    randombytes_buf(first, sizeof first);
                    if (send(sl->fd, first, sizeof first, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                        gone = true;
                }
            } else {
                uint8_t buf[4096];
                ssize_t k;
                while ((k = recv(sl->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
                    ;
                gone = k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR) ||
                       (pf[j].revents & (POLLRDHUP | POLLHUP | POLLERR));
            }
            if (gone) {
                closed++;
                if (nclose < cap_closes)
                    close_t[nclose++] = now_s() - sl->t_open;
                close(sl->fd);
                sl->fd = -1;
            }
        }
    }
    size_t open_end = 0;
    for (unsigned i = 0; i < n; i++)
        if (s[i].fd >= 0) {
            open_end += s[i].up;
            close(s[i].fd);
        }
    qsort(close_t, nclose, sizeof *close_t, cmp_double);
    double median = nclose ? close_t[nclose / 2] : 0;
    char up[48] = "";
    if (all_up)
        snprintf(up, sizeof up, " (all %u up after %.2f s)", n, all_up);
    result("%u connections%s sending %s, held %.0f s%s: %zu connected%s, %zu connects failed, "
           "node closed %zu (median %.2f s after connect), %zu reconnects, %zu open at the end",
           n, src_ip ? " from --src" : "", pnet_wrong ? "a wrong-key pnet first flight" : "nothing",
           hold_s, reconnect ? " reconnecting" : "", connected, up, failed, closed, median,
           reconnects, open_end);
    printf("connected=%zu failed=%zu closed=%zu reconnects=%zu open_end=%zu median_close=%.2f\n",
           connected, failed, closed, reconnects, open_end, median);
    freeaddrinfo(ai);
    free(s);
    free(pf);
    free(idx);
    free(close_t);
}

/* ---- sessions that misbehave inside yamux -------------------------------- */

/* Setting up and loading the connections of one attack gets this long in
 * all, however the node answers (it may rightly slow us down), so a test
 * stays bounded. */
#define SETUP_BUDGET_S 45
static double setup_deadline;

static double send_deadline(void)
{
    double d = now_s() + 30;
    return d < setup_deadline ? d : setup_deadline;
}

/* Open n sessions (handshake each); failed ones stay NULL. */
static peer **open_sessions(const opts *o, unsigned n, size_t *failed)
{
    raise_nofile();
    peer **ps = calloc(n ? n : 1, sizeof *ps);
    if (!ps)
        die("out of memory");
    setup_deadline = now_s() + SETUP_BUDGET_S;
    for (unsigned i = 0; i < n; i++)
        if (now_s() >= setup_deadline || !(ps[i] = peer_session(o)))
            (*failed)++;
    if (*failed == n)
        die("no session could be set up: %s", last_error);
    return ps;
}

static void free_sessions(peer **ps, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        peer_free(ps[i]);
    free(ps);
}

/* N connections, each opening `streams` yamux streams whose
 * multistream-select header never completes: the first 8 of its 20 bytes. */
static void mode_mss_stall(const opts *o)
{
    unsigned n = o->conns ? o->conns : 100, ns = o->streams ? o->streams : 1024;
    double hold = o->hold < 0 ? 10 : o->hold;
    size_t failed = 0, cut = 0;
    dn_buf hdr = DN_BUF_INIT, f = DN_BUF_INIT;
    mss_lazy(&hdr, "/x");
    const size_t part = 8; /* "\x13/multis" */
    double t0 = now_s();
    peer **ps = open_sessions(o, n, &failed);
    for (unsigned i = 0; i < n; i++) {
        if (!ps[i])
            continue;
        dn_buf_reset(&f);
        for (unsigned j = 0; j < ns; j++)
            yamux_data(&f, YAMUX_F_SYN, 2 * j + 1, hdr.data, part);
        if (send_sealed(ps[i], f.data, f.len, send_deadline(), NULL)) {
            cut++;
            peer_free(ps[i]);
            ps[i] = NULL;
        }
    }
    double setup = now_s() - t0;
    hold_stats st = {0};
    size_t open = hold_many(ps, n, hold, &st);
    result("%u connections (%zu failed, %zu cut off while sending, %.1f s to set up), %u streams "
           "each stopping after %zu bytes of the multistream-select header; held %.0f s: node "
           "closed %zu (first after %.1f s), %zu open at the end",
           n, failed, cut, setup, ns, part, hold, st.closed, st.first, open);
    printf("conns=%u failed=%zu cut=%zu closed=%zu open_end=%zu\n", n, failed, cut, st.closed,
           open);
    free_sessions(ps, n);
    dn_buf_free(&hdr);
    dn_buf_free(&f);
}

/* N connections, each opening `streams` identify push streams that carry
 * `size` bytes of an identify message (a length prefix promising more)
 * and never a FIN. */
static void mode_id_push(const opts *o)
{
    unsigned n = o->conns ? o->conns : 20, ns = o->streams ? o->streams : 1024;
    unsigned size = o->size ? o->size : 65536;
    double hold = o->hold < 0 ? 10 : o->hold;
    dn_buf body = DN_BUF_INIT, f = DN_BUF_INIT;
    mss_lazy(&body, DN_IDENTIFY_PUSH_PROTOCOL);
    size_t mss_len = body.len;
    dn_buf_append_uvarint(&body, (uint64_t)size * 2); /* the message is never complete */
    if (dn_buf_reserve(&body, size))
        die("out of memory");
    memset(body.data + body.len, 0, size - (body.len - mss_len));
    body.len = mss_len + size;
    if (body.len > 256 * 1024)
        die("--size %u does not fit the 256 KiB initial window", size);
    size_t failed = 0, cut = 0;
    double t0 = now_s(), sent = 0;
    peer **ps = open_sessions(o, n, &failed);
    for (unsigned i = 0; i < n; i++) {
        if (!ps[i])
            continue;
        for (unsigned j = 0; j < ns && ps[i]; j += 16) {
            dn_buf_reset(&f);
            for (unsigned k = j; k < ns && k < j + 16; k++)
                yamux_data(&f, YAMUX_F_SYN, 2 * k + 1, body.data, body.len);
            if (send_sealed(ps[i], f.data, f.len, send_deadline(), NULL)) {
                cut++;
                peer_free(ps[i]);
                ps[i] = NULL;
                break;
            }
            sent += (double)f.len;
        }
    }
    double took = now_s() - t0;
    hold_stats st = {0};
    size_t open = hold_many(ps, n, hold, &st);
    result("%u connections (%zu failed, %zu cut off while sending), %u push streams each holding "
           "%u bytes without FIN: %.0f MiB sent in %.1f s; held %.0f s: node closed %zu, %zu open "
           "at the end",
           n, failed, cut, ns, size, sent / 1048576, took, hold, st.closed, open);
    printf("conns=%u failed=%zu cut=%zu mib=%.0f closed=%zu open_end=%zu\n", n, failed, cut,
           sent / 1048576, st.closed, open);
    free_sessions(ps, n);
    dn_buf_free(&body);
    dn_buf_free(&f);
}

/* N connections, each receiving a burst of `size` bytes (the node's echo
 * of as many ping bytes, over streams of at most one initial window each,
 * with room granted for the echo), then idling for --hold S. */
static void mode_burst(const opts *o)
{
    unsigned n = o->conns ? o->conns : 500, size = o->size ? o->size : 1u << 20;
    double hold = o->hold < 0 ? 10 : o->hold;
    dn_buf hdr = DN_BUF_INIT, f = DN_BUF_INIT;
    mss_lazy(&hdr, DN_PING_PROTOCOL);
    const size_t window = 256 * 1024;
    size_t per = (window - hdr.len) / DN_PING_SIZE * DN_PING_SIZE;
    uint8_t *pings = malloc(per);
    if (!pings)
        die("out of memory");
    randombytes_buf(pings, per);
    size_t failed = 0, cut = 0;
    long got = 0;
    double t0 = now_s(), sent = 0;
    peer **ps = open_sessions(o, n, &failed);
    for (unsigned i = 0; i < n; i++) {
        if (!ps[i])
            continue;
        dn_buf_reset(&f);
        uint32_t id = 1;
        for (size_t left = size; left; id += 2) {
            size_t k = left < per ? (left + DN_PING_SIZE - 1) / DN_PING_SIZE * DN_PING_SIZE : per;
            yamux_hdr(&f, YAMUX_T_DATA, YAMUX_F_SYN, id, (uint32_t)(hdr.len + k));
            dn_buf_append(&f, hdr.data, hdr.len);
            dn_buf_append(&f, pings, k);
            /* Room for the echo and the node's mss answer, beyond the initial window. */
            yamux_hdr(&f, YAMUX_T_WINDOW_UPDATE, 0, id, (uint32_t)window);
            left -= k < left ? k : left;
        }
        if (send_sealed(ps[i], f.data, f.len, send_deadline(), &got)) {
            cut++;
            peer_free(ps[i]);
            ps[i] = NULL;
            continue;
        }
        sent += (double)f.len;
    }
    double took = now_s() - t0;
    fprintf(stderr, "burst sent\n");
    hold_stats st = {.received = got};
    size_t open = hold_many(ps, n, hold, &st);
    result("%u connections (%zu failed, %zu cut off), each sent %u ping bytes to echo: %.0f MiB "
           "out in %.1f s, %.0f MiB of echo back; idled %.0f s: node closed %zu, %zu open at the "
           "end",
           n, failed, cut, size, sent / 1048576, took, (double)st.received / 1048576, hold,
           st.closed, open);
    printf("conns=%u failed=%zu cut=%zu mib_out=%.0f mib_back=%.0f closed=%zu open_end=%zu\n", n,
           failed, cut, sent / 1048576, (double)st.received / 1048576, st.closed, open);
    free_sessions(ps, n);
    free(pings);
    dn_buf_free(&hdr);
    dn_buf_free(&f);
}

/* ---- CPU through RSA keys ------------------------------------------------ */

/* A libp2p PublicKey protobuf (type RSA, SubjectPublicKeyInfo DER) for an
 * RSA key whose modulus has `bits` bits and whose public exponent has
 * bits - 1: a key no one holds the private half of, but one that parses
 * and costs a full-size modular exponentiation per verification. */
static void rsa_huge_exponent_key(int bits, dn_buf *out)
{
    BIGNUM *n = BN_new(), *e = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pk = NULL;
    unsigned char *der = NULL;
    int len = -1;
    if (n && e && bld && ctx && BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) &&
        BN_rand(e, bits - 1, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) > 0 &&
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) > 0)
        len = i2d_PUBKEY(pk, &der);
    if (len <= 0)
        die("building the RSA key failed");
    if (dn_pb_put_varint(out, 1, DN_KEY_RSA) || dn_pb_put_bytes(out, 2, der, (size_t)len))
        die("out of memory");
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
}

/* A signed envelope (RFC 0002) around a peer record (RFC 0003) naming
 * `self`, "signed" by the RSA key: the signature is random (below the
 * modulus, so it is exponentiated before it fails). */
static void rsa_record(const dn_buf *rsa_pb, const dn_peerid *self, dn_buf *out)
{
    static const uint8_t payload_type[] = {0x03, 0x01};
    dn_buf rec = DN_BUF_INIT;
    uint8_t sig[384];
    randombytes_buf(sig, sizeof sig);
    sig[0] = 0x01; /* the modulus has its top bit set */
    /* No address: 52 records then fit one 64 KiB identify message. */
    if (dn_pb_put_bytes(&rec, 1, self->bytes, self->len) || dn_pb_put_varint(&rec, 2, 1) ||
        dn_pb_put_bytes(out, 1, rsa_pb->data, rsa_pb->len) ||
        dn_pb_put_bytes(out, 2, payload_type, sizeof payload_type) ||
        dn_pb_put_bytes(out, 3, rec.data, rec.len) || dn_pb_put_bytes(out, 5, sig, sizeof sig))
        die("out of memory");
    dn_buf_free(&rec);
}

/* One connection pushing identify messages that each carry `records`
 * (default 52) such records, at --rate pushes per second for --duration S;
 * a connection the node closes is replaced. */
static void mode_rsa_push(const opts *o)
{
    unsigned nrec = o->records ? o->records : 52;
    double rate = o->rate > 0 ? o->rate : 3, dur = o->duration > 0 ? o->duration : 10;
    dn_buf rsa = DN_BUF_INIT, env = DN_BUF_INIT, msg = DN_BUF_INIT, f = DN_BUF_INIT;
    rsa_huge_exponent_key(3072, &rsa);
    peer *p = peer_session(o);
    if (!p)
        die("session: %s", last_error);
    dn_peerid self;
    if (dn_peerid_from_pubkey(dn_privkey_public(p->id), &self))
        die("peer id");
    rsa_record(&rsa, &self, &env);
    unsigned fit = 0;
    /* The node reads at most 64 KiB per identify stream (message and its length prefix). */
    while (fit < nrec && msg.len + env.len + 3 + 3 <= 64 * 1024) {
        if (dn_pb_put_bytes(&msg, 8, env.data, env.len))
            die("out of memory");
        fit++;
    }
    size_t pushes = 0, reconnects = 0, lost = 0;
    uint32_t id = 1;
    double t0 = now_s(), next = t0, end = t0 + dur;
    while (p && now_s() < end) {
        bool gone = false;
        if (now_s() < next) {
            struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
            poll(&pfd, 1, (int)((next - now_s()) * 1000) + 1);
            gone = ((pfd.revents & POLLIN) && drain(p) < 0) || (pfd.revents & (POLLHUP | POLLERR));
        } else {
            dn_buf body = DN_BUF_INIT;
            mss_lazy(&body, DN_IDENTIFY_PUSH_PROTOCOL);
            dn_buf_append_uvarint(&body, msg.len);
            dn_buf_append(&body, msg.data, msg.len);
            dn_buf_reset(&f);
            yamux_data(&f, YAMUX_F_SYN | YAMUX_F_FIN, id, body.data, body.len);
            dn_buf_free(&body);
            id += 2;
            gone = send_sealed(p, f.data, f.len, end + 5, NULL) != 0;
            if (!gone) {
                pushes++;
                next += 1 / rate;
            }
        }
        if (!gone)
            continue;
        /* The node closed the connection: come back with a new one. */
        lost++;
        peer_free(p);
        if ((p = peer_session(o)))
            reconnects++;
        id = 1;
    }
    double took = now_s() - t0;
    result("%zu identify pushes of %u RSA-3072 records (3071-bit exponent, %zu bytes each) in "
           "%.1f s, %.0f KB/s; node closed %zu connections, %zu reconnects%s",
           pushes, fit, env.len, took, (double)pushes * (double)f.len / took / 1000, lost,
           reconnects, p ? "" : " (then a reconnect failed)");
    printf("pushes=%zu records=%u lost=%zu reconnects=%zu\n", pushes, fit, lost, reconnects);
    peer_free(p);
    dn_buf_free(&rsa);
    dn_buf_free(&env);
    dn_buf_free(&msg);
    dn_buf_free(&f);
}

/* Connect and run Noise XX up to message 3, whose payload claims the RSA
 * identity key rsa_pb with a random signature; message 3 (framed) is left
 * in m3 for the caller to send. NULL (reason in last_error) on failure. */
static peer *rsa_noise_start(const opts *o, const dn_privkey *id, const dn_buf *rsa_pb, dn_buf *m3)
{
    peer *volatile p = calloc(1, sizeof *p);
    if (!p)
        die("out of memory");
    p->fd = -1;
    dn_buf_init(&p->rx);
    dn_buf_init(&p->plain);
    jmp_buf jb;
    soft_fail = &jb;
    if (setjmp(jb)) {
        soft_fail = NULL;
        peer_free(p);
        return NULL;
    }
    p->fd = connect_to(o->ip, o->port, 0);
    if (o->keyfile)
        pnet_setup(p, o->keyfile);
    mss_select(p, DN_NOISE_PROTOCOL);
    static const char *const mux[] = {DN_YAMUX_PROTOCOL};
    dn_noise_handshake *hs = &p->hs;
    dn_buf *out = &p->s_hs, *pl = &p->s_pl;
    if (dn_noise_handshake_init(hs, true, id, &o->expected, mux, 1))
        die("noise init failed");
    p->have_hs = true;
    if (dn_noise_handshake_start(hs, out) || send_raw(p, out->data, out->len, NULL))
        die("noise: message 1 failed");
    read_hs_frame(p, out);
    int rc = dn__noise_read_message(hs, out->data, out->len, pl);
    if (rc)
        die("noise: reading message 2: %s", dn_strerror(rc));
    /* NoiseHandshakePayload (noise spec): identity_key 1, identity_sig 2. */
    uint8_t sig[384];
    randombytes_buf(sig, sizeof sig);
    sig[0] = 0x01; /* below the modulus, whose top bit is set */
    dn_buf_reset(pl);
    if (dn_pb_put_bytes(pl, 1, rsa_pb->data, rsa_pb->len) ||
        dn_pb_put_bytes(pl, 2, sig, sizeof sig))
        die("out of memory");
    dn_buf_reset(out);
    rc = dn__noise_write_message(hs, pl->data, pl->len, out);
    if (rc)
        die("noise: writing message 3: %s", dn_strerror(rc));
    uint8_t hdr[2] = {(uint8_t)(out->len >> 8), (uint8_t)out->len};
    dn_buf_reset(m3);
    if (dn_buf_append(m3, hdr, 2) || dn_buf_append(m3, out->data, out->len))
        die("out of memory");
    dn_noise_handshake_free(hs);
    p->have_hs = false;
    soft_fail = NULL;
    return p;
}

/* Rounds of --conns N (default 52) Noise handshakes whose message 3
 * carries the RSA-3072 key with a 3071-bit exponent: all N messages 3 go
 * out at once, so the node has N verifications to do in a row; for
 * --duration S. */
static void mode_rsa_noise(const opts *o)
{
    unsigned batch = o->conns ? o->conns : 52;
    double dur = o->duration > 0 ? o->duration : 10;
    raise_nofile();
    dn_buf rsa = DN_BUF_INIT;
    rsa_huge_exponent_key(3072, &rsa);
    dn_privkey *id;
    if (dn_privkey_generate(DN_KEY_ED25519, &id))
        die("keygen failed");
    peer **ps = calloc(batch, sizeof *ps);
    dn_buf *m3 = calloc(batch, sizeof *m3);
    if (!ps || !m3)
        die("out of memory");
    size_t sent = 0, failed = 0, rounds = 0;
    double t0 = now_s(), end = t0 + dur;
    while (now_s() < end) {
        for (unsigned i = 0; i < batch; i++)
            if (!(ps[i] = rsa_noise_start(o, id, &rsa, &m3[i])))
                failed++;
        for (unsigned i = 0; i < batch; i++)
            if (ps[i] && send_raw(ps[i], m3[i].data, m3[i].len, NULL) == 0)
                sent++;
        for (unsigned i = 0; i < batch; i++) {
            peer_free(ps[i]);
            ps[i] = NULL;
            dn_buf_free(&m3[i]);
        }
        rounds++;
    }
    result("%zu Noise handshakes with an RSA-3072 identity key (3071-bit exponent) in %zu rounds "
           "of %u in %.1f s, %zu failed before message 3",
           sent, rounds, batch, now_s() - t0, failed);
    printf("sent=%zu rounds=%zu failed=%zu\n", sent, rounds, failed);
    free(ps);
    free(m3);
    dn_privkey_free(id);
    dn_buf_free(&rsa);
}

/* ---- identify as a listener (the node identifies every inbound peer) ---- */

/* Wait for the node's identify stream (a SYN on an even stream id), answer
 * it with msg (mss echo, the message, FIN), then wait for the node's FIN on
 * that stream: it has applied the message by then (identify reads to EOF). */
static bool answer_identify(peer *p, const dn_buf *msg, double deadline)
{
    uint32_t sid = 0;
    bool answered = false;
    while (now_s() < deadline) {
        while (p->plain.len >= DN_YAMUX_HEADER_LEN) {
            const uint8_t *h = p->plain.data;
            uint8_t type = h[1];
            uint16_t flags = (uint16_t)(h[2] << 8 | h[3]);
            uint32_t id = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
            uint32_t len =
                (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
            size_t need = DN_YAMUX_HEADER_LEN + (type == YAMUX_T_DATA ? len : 0);
            if (p->plain.len < need)
                break;
            if (!sid && (flags & YAMUX_F_SYN) && id % 2 == 0 && id)
                sid = id;
            if (answered && id == sid && (flags & (YAMUX_F_FIN | YAMUX_F_RST)))
                return true;
            dn_buf_consume(&p->plain, need);
        }
        if (sid && !answered) {
            dn_buf body = DN_BUF_INIT, f = DN_BUF_INIT;
            mss_lazy(&body, DN_IDENTIFY_PROTOCOL); /* header, and the echo of its proposal */
            dn_buf_append_uvarint(&body, msg->len);
            dn_buf_append(&body, msg->data, msg->len);
            yamux_data(&f, YAMUX_F_ACK | YAMUX_F_FIN, sid, body.data, body.len);
            int rc = send_app(p, f.data, f.len, NULL);
            dn_buf_free(&body);
            dn_buf_free(&f);
            if (rc)
                return false;
            answered = true;
        }
        int k = read_more(p, (int)((deadline - now_s()) * 1000) + 1);
        if (k == 0 || (k < 0 && k != -ETIMEDOUT))
            return false;
    }
    return false;
}

/* An identify message for p's identity: nprotos protocol names and naddrs
 * listen addresses, each as long as the node stores (255 bytes), and agent. */
static void big_identify(peer *p, unsigned seed, unsigned naddrs, unsigned nprotos,
                         const char *agent, dn_buf *msg)
{
    dn_buf pub = DN_BUF_INIT;
    if (dn_pubkey_to_protobuf(dn_privkey_public(p->id), &pub) ||
        dn_pb_put_bytes(msg, 1, pub.data, pub.len))
        die("out of memory");
    for (unsigned i = 0; i < naddrs; i++) {
        uint16_t port = (uint16_t)(4001 + i);
        const uint8_t ma[] = {0x04,       10,   (uint8_t)(seed >> 8), (uint8_t)seed,
                              (uint8_t)i, 0x06, (uint8_t)(port >> 8), (uint8_t)port};
        dn_pb_put_bytes(msg, 2, ma, sizeof ma);
    }
    char proto[256];
    for (unsigned i = 0; i < nprotos; i++) {
        int k = snprintf(proto, sizeof proto, "/hostile/peerstore/%u/%u/", seed, i);
        memset(proto + k, 'p', sizeof proto - 1 - (size_t)k);
        proto[sizeof proto - 1] = 0;
        dn_pb_put_string(msg, 3, proto);
    }
    dn_pb_put_string(msg, 5, "ipfs/0.1.0");
    dn_pb_put_string(msg, 6, agent);
    dn_buf_free(&pub);
}

/* --peers N peers, each with a fresh identity: connect, answer the node's
 * identify with a large message, and leave. */
static void mode_peerstore(const opts *o)
{
    unsigned n = o->peers ? o->peers : 2000;
    unsigned naddrs = o->addrs ? o->addrs : 32, nprotos = o->protos ? o->protos : 128;
    char agent[256];
    memset(agent, 'a', sizeof agent - 1);
    agent[sizeof agent - 1] = 0;
    size_t ok = 0, failed = 0, unanswered = 0, msg_len = 0;
    double t0 = now_s(), end = t0 + (o->duration > 0 ? o->duration : 60);
    for (unsigned i = 0; i < n; i++) {
        if (now_s() >= end) { /* bounded: the rest count as failed */
            failed += n - i;
            break;
        }
        peer *p = peer_session(o);
        if (!p) {
            failed++;
            continue;
        }
        dn_buf msg = DN_BUF_INIT;
        big_identify(p, i, naddrs, nprotos, agent, &msg);
        msg_len = msg.len;
        if (answer_identify(p, &msg, now_s() + 2))
            ok++;
        else
            unanswered++;
        dn_buf_free(&msg);
        peer_free(p);
    }
    result("%u peers with fresh identities came, answered identify with %zu bytes (%u addresses, "
           "%u protocols) and left in %.1f s: %zu applied, %zu not acknowledged, %zu failed",
           n, msg_len, naddrs, nprotos, now_s() - t0, ok, unanswered, failed);
    printf("peers=%u applied=%zu unanswered=%zu failed=%zu\n", n, ok, unanswered, failed);
}

/* One peer whose identify carries --agent STR (say, with a newline and a
 * fake log line after it), then holds the connection for --hold S. */
static void mode_identify(const opts *o)
{
    peer *p = peer_session(o);
    if (!p)
        die("session: %s", last_error);
    dn_buf msg = DN_BUF_INIT;
    big_identify(p, 0, 1, 1, o->agent ? o->agent : "hostile_peer", &msg);
    bool ok = answer_identify(p, &msg, now_s() + 5);
    if (!ok)
        die("the node did not take our identify");
    double gone_at = 0;
    hold_without_reading(p, o->hold < 0 ? 0.5 : o->hold, &gone_at);
    result("answered identify with an agent version of %zu bytes",
           strlen(o->agent ? o->agent : ""));
    dn_buf_free(&msg);
    peer_free(p);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: hostile_peer MODE <ip> <port> <peer id> [--swarm-key FILE] [--hold S]\n"
            "         [--streams N] [--conns N] [--duration S] [--size BYTES] [--records N]\n"
            "         [--rate R] [--peers N] [--addrs N] [--protos N] [--agent STR] [--src IP]\n"
            "         [--src-spread N]\n"
            "modes: junk truncated forged oversized stream-flood no-read slots slots-reconnect\n"
            "       pnet-wrong mss-stall id-push rsa-push rsa-noise peerstore burst identify\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 5)
        usage();
    const char *mode = argv[1], *pid = argv[4];
    opts o = {.ip = argv[2], .port = argv[3], .hold = -1};
    for (int i = 5; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--swarm-key") == 0)
            o.keyfile = v;
        else if (strcmp(a, "--hold") == 0)
            o.hold = atof(v);
        else if (strcmp(a, "--duration") == 0)
            o.duration = atof(v);
        else if (strcmp(a, "--rate") == 0)
            o.rate = atof(v);
        else if (strcmp(a, "--streams") == 0)
            o.streams = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--conns") == 0)
            o.conns = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--size") == 0)
            o.size = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--records") == 0)
            o.records = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--peers") == 0)
            o.peers = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--addrs") == 0)
            o.addrs = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--protos") == 0)
            o.protos = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--agent") == 0)
            o.agent = v;
        else if (strcmp(a, "--src") == 0)
            src_ip = v;
        else if (strcmp(a, "--src-spread") == 0)
            src_spread = (unsigned)strtoul(v, NULL, 10);
        else
            usage();
    }
    /* Everything stays bounded: a test must end. */
    if (o.hold > 600 || o.duration > 600 || o.streams > 100000000 || o.conns > 100000 ||
        o.peers > 1000000 || o.size > 64u << 20 || o.addrs > 10000 || o.protos > 10000)
        usage();
    mode_name = mode;
    if (sodium_init() < 0)
        die("sodium_init failed");
    int rc = dn_peerid_parse(pid, &o.expected);
    if (rc)
        die("bad peer id %s: %s", pid, dn_strerror(rc));

    /* Modes of many connections. */
    double hold = o.hold;
    if (strcmp(mode, "slots") == 0)
        mode_slots(&o, o.conns ? o.conns : 5000, hold < 0 ? 10 : hold, false, false);
    else if (strcmp(mode, "slots-reconnect") == 0)
        mode_slots(&o, o.conns ? o.conns : 5000, o.duration > 0 ? o.duration : 30, true, false);
    else if (strcmp(mode, "pnet-wrong") == 0)
        mode_slots(&o, o.conns ? o.conns : 5000,
                   o.duration > 0 ? o.duration : (hold < 0 ? 10 : hold), o.duration > 0, true);
    else if (strcmp(mode, "mss-stall") == 0)
        mode_mss_stall(&o);
    else if (strcmp(mode, "id-push") == 0)
        mode_id_push(&o);
    else if (strcmp(mode, "burst") == 0)
        mode_burst(&o);
    else if (strcmp(mode, "rsa-push") == 0)
        mode_rsa_push(&o);
    else if (strcmp(mode, "rsa-noise") == 0)
        mode_rsa_noise(&o);
    else if (strcmp(mode, "peerstore") == 0)
        mode_peerstore(&o);
    else if (strcmp(mode, "identify") == 0)
        mode_identify(&o);
    else
        goto single;
    return 0;

single:;
    peer p = {.fd = -1};
    dn_buf_init(&p.rx);
    dn_buf_init(&p.plain);
    /* no-read: a big receive buffer lets the node push well past its initial window. */
    p.fd = connect_to(o.ip, o.port, strcmp(mode, "no-read") == 0 ? 4 << 20 : 0);
    p.t0 = now_s();
    if (o.keyfile)
        pnet_setup(&p, o.keyfile);
    unsigned streams = o.streams;
    if (strcmp(mode, "junk") == 0)
        mode_junk(&p);
    else if (strcmp(mode, "truncated") == 0)
        mode_truncated(&p);
    else if (strcmp(mode, "forged") == 0)
        mode_forged(&p, &o.expected);
    else if (strcmp(mode, "oversized") == 0)
        mode_oversized(&p, &o.expected);
    else if (strcmp(mode, "stream-flood") == 0)
        mode_stream_flood(&p, &o.expected, streams ? streams : 20000, hold < 0 ? 2 : hold);
    else if (strcmp(mode, "no-read") == 0)
        mode_no_read(&p, &o.expected, streams ? streams : 1, hold < 0 ? 10 : hold);
    else
        usage();

    close(p.fd);
    if (p.have_session)
        dn_noise_session_free(&p.ns);
    if (p.use_pnet)
        dn_pnet_wipe(&p.pnet);
    peer_clear(&p);
    return 0;
}
