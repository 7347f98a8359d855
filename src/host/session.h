/* session — one connection's upgrade pipeline and transport, sans-I/O.
 *
 * Owns, in order: pnet (when a swarm key is set), multistream-select for
 * /noise, the Noise XX handshake, the muxer agreement (inline through the
 * Noise stream_muxers extension, else multistream-select for yamux inside
 * the secure channel), then the Noise transport and yamux. The caller
 * moves bytes and time, nothing else:
 *
 *   - received bytes: dn__session_feed (copies), or dn__session_recv_buf +
 *     dn__session_recv_commit (the socket reads straight into the session's
 *     receive buffer, which is then decrypted in place);
 *   - bytes to send: dn__session_output_begin gives the batch to write (one
 *     batch in flight; everything produced meanwhile joins the next one)
 *     and dn__session_output_sent reports how much of it was written;
 *   - time: dn__session_expiry is the next deadline (the handshake
 *     deadline, the idle trim of large buffers), dn__session_handle_expiry
 *     acts on it. As in ngtcp2, the engine never reads a clock and never
 *     sets a timer: every call that may start a deadline takes now_ms.
 *
 * Events (handshake done, every yamux event, failure) arrive through the
 * callback, synchronously, from inside the call that caused them. The
 * callback may call back into the session (open streams, send, close);
 * after dn__session_close (from anywhere) no further input is processed
 * and no further event is delivered, except the yamux events of the
 * caller's own dn_yamux_* calls. The memory stays valid until
 * dn__session_free, which the caller must not call from the callback. */
#ifndef DN_HOST_SESSION_H
#define DN_HOST_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmsnet/buf.h"
#include "dmsnet/keys.h"
#include "dmsnet/peerid.h"
#include "mss/mss.h"
#include "noise/noise.h"
#include "pnet/pnet.h"
#include "yamux/yamux.h"

struct dn_verify_cache;

#define DN__SESSION_NO_EXPIRY UINT64_MAX
/* Buffers up to this size are kept when they empty (no allocation per
 * frame in steady state); larger ones, grown by a burst, are released once
 * the session has been quiet for DN__SESSION_TRIM_MS. */
#define DN__SESSION_KEEP (64u * 1024u)
/* Largest yamux receive window a stream grows to, unless configured. */
#define DN__SESSION_MAX_WINDOW (16u * 1024u * 1024u)
#define DN__SESSION_TRIM_MS 1000u
/* First read size offered by dn__session_recv_buf; doubles while reads fill it. */
#define DN__SESSION_RX_START (32u * 1024u)
/* Stream data stops entering the output buffer at this many bytes unless
 * the config says otherwise (dn__session_send_stream_data). */
#define DN__SESSION_OUTPUT_HIGH (1024u * 1024u)

typedef enum dn__session_phase {
    DN__SESSION_NEW,          /* dn__session_start not called yet */
    DN__SESSION_PNET_NONCE,   /* waiting for the peer's pnet nonce */
    DN__SESSION_SECURITY_MSS, /* multistream-select for /noise */
    DN__SESSION_NOISE,        /* Noise XX handshake */
    DN__SESSION_MUXER_MSS,    /* multistream-select for /yamux/1.0.0 inside Noise */
    DN__SESSION_OPEN,         /* yamux streams */
    DN__SESSION_CLOSED,       /* failed or closed: input is ignored */
} dn__session_phase;

typedef enum dn__session_event_type {
    /* The handshake is done and yamux runs: remote / remote_key are set
     * (also available from dn__session_remote / dn__session_remote_key). */
    DN__SESSION_EV_OPEN,
    /* A yamux event (yamux points to it), forwarded as the muxer made it,
     * during dn__session_feed or during a dn_yamux_* call on the muxer. */
    DN__SESSION_EV_YAMUX,
    /* The session failed; status says why (DN_ETIMEOUT for the handshake
     * deadline, the engine's error otherwise). Delivered once. What
     * dn__session_output_begin still returns is the last word for the peer
     * (a yamux GoAway after a protocol error), worth one write attempt. */
    DN__SESSION_EV_FAILED,
    /* Nothing moved for DN__SESSION_TRIM_MS after a burst: the session
     * released its empty buffers past DN__SESSION_KEEP (released: bytes);
     * the caller may trim its own. */
    DN__SESSION_EV_IDLE,
} dn__session_event_type;

typedef struct dn__session_event {
    dn__session_event_type type;
    int status;                  /* FAILED */
    const dn_yamux_event *yamux; /* YAMUX */
    const dn_peerid *remote;     /* OPEN */
    const dn_pubkey *remote_key; /* OPEN (owned by the session) */
    size_t released;             /* IDLE: buffer bytes released */
} dn__session_event;

typedef void (*dn__session_event_cb)(void *ctx, const dn__session_event *ev);

typedef struct dn__session_config {
    bool outbound;                       /* dialer (Noise initiator, yamux client) */
    const dn_privkey *identity;          /* must outlive the session */
    const dn_peerid *self;               /* our id: a session to ourselves fails (NULL: no check) */
    const dn_noise_static *noise_static; /* host static key (NULL: one per handshake) */
    struct dn_verify_cache *vcache;      /* may be NULL */
    const uint8_t *psk;                  /* swarm key (copied), NULL: no pnet */
    const dn_peerid *expected;           /* dialer: the peer id we want (copied), or NULL */
    bool no_inline_muxer;                /* do not offer yamux in the Noise extension */
    uint32_t max_streams;                /* yamux limit (0: yamux default) */
    uint32_t max_window;                 /* yamux receive window bound (0: 16 MiB) */
    uint32_t handshake_timeout_ms;       /* from dn__session_start; 0: none */
    size_t output_high;                  /* 0: DN__SESSION_OUTPUT_HIGH */
    /* Tests and fuzzing only: the Noise static and ephemeral private keys
     * (32 bytes each), so that a handshake replays exactly. noise_static
     * must be NULL or made from the same static key. */
    const uint8_t *test_noise_keys;
} dn__session_config;

/* Embedded by its owner (struct dn_conn); fields are private to session.c. */
typedef struct dn__session {
    dn__session_phase phase;
    bool outbound;
    bool use_pnet;
    bool inline_muxer;
    bool have_expected;
    bool have_noise;
    bool trim_armed; /* a buffer grew past DN__SESSION_KEEP since the last trim */
    int status;      /* why it closed */
    const dn_privkey *identity;
    const dn_peerid *self;
    const dn_noise_static *noise_static;
    struct dn_verify_cache *vcache;
    uint32_t max_streams;
    uint32_t max_window;
    uint32_t handshake_timeout_ms;
    size_t output_high;
    const uint8_t *test_noise_keys;
    uint64_t hs_deadline;   /* DN__SESSION_NO_EXPIRY once open */
    uint64_t trim_deadline; /* DN__SESSION_NO_EXPIRY unless trim_armed */
    uint64_t io_count;      /* reads and writes; the trim waits for it to stand still */
    uint64_t io_seen;       /* io_count when the trim deadline was set */
    dn__session_event_cb cb;
    void *ctx;

    dn_pnet pnet;
    dn_mss mss;
    const char *mss_protos[1];
    dn_noise_handshake *hs;
    dn_noise_session noise;
    dn_yamux *yamux;
    dn_peerid expected;
    dn_peerid remote;
    dn_pubkey *remote_key;

    dn_buf rx; /* received bytes (pnet removed), consumed up to rx_off */
    size_t rx_off;
    size_t rx_chunk;     /* next read size offered (adaptive) */
    size_t rx_chunk_max; /* the caller's largest read */
    size_t rx_offered;   /* room handed out by the last dn__session_recv_buf */
    dn_buf plain;        /* Noise plaintext while the muxer is negotiated */
    dn_buf scratch;      /* handshake replies before they are framed */
    dn_buf out;          /* bytes to send, ready for the wire (pnet applied) */
    dn_buf inflight;     /* the batch handed to the caller's write */
} dn__session;

/* Set up (no I/O, no event). cb may be NULL. */
void dn__session_init(dn__session *s, const dn__session_config *cfg, dn__session_event_cb cb,
                      void *ctx);
/* The transport is up: queue the first bytes (pnet nonce, multistream
 * header and proposal, and for the dialer Noise message 1 right behind
 * them) and start the handshake deadline. Returns 0 or an error (the
 * session then failed and EV_FAILED was delivered). */
int dn__session_start(dn__session *s, uint64_t now_ms);

/* Received bytes. Returns 0, or the error that failed the session (also
 * delivered as EV_FAILED), or DN_ECLOSED / DN_ESTATE when the session is
 * closed / not started. */
int dn__session_feed(dn__session *s, const uint8_t *data, size_t len, uint64_t now_ms);
/* Zero-copy receive: room at the end of the receive buffer for the next
 * read (*room: how much), at most about want bytes: the size adapts,
 * starting at DN__SESSION_RX_START and doubling while reads fill it. NULL:
 * out of memory. Then dn__session_recv_commit(n) for the n bytes written
 * there. */
uint8_t *dn__session_recv_buf(dn__session *s, size_t want, size_t *room);
int dn__session_recv_commit(dn__session *s, size_t n, uint64_t now_ms);

/* Output. dn__session_output_begin seals what the muxer queued and, when
 * no batch is in flight, makes everything waiting the next batch; it
 * returns the in-flight bytes (*p, return value; 0: nothing to send) or an
 * error when sealing fails (the send side is dead: close the session).
 * dn__session_output_sent drops the first n of them (a partial write);
 * once they are all sent, the next begin takes a new batch. */
ssize_t dn__session_output_begin(dn__session *s, const uint8_t **p);
void dn__session_output_sent(dn__session *s, size_t n);
/* Bytes waiting for the next batch (sealed or still in the muxer), not
 * counting the batch in flight. */
size_t dn__session_pending(const dn__session *s);

/* Send up to len bytes of an open stream's data: yamux Data frames sealed
 * straight from data (no copy), behind whatever the muxer queued before.
 * Stops when the peer's window closes or output_high bytes wait. Returns
 * the bytes taken, or an error that must close the session. */
ssize_t dn__session_send_stream_data(dn__session *s, uint32_t stream_id, const uint8_t *data,
                                     size_t len);
/* Queue a yamux GoAway (open sessions only) and seal it for the wire. */
int dn__session_goaway(dn__session *s, uint32_t code);

/* The next deadline in the caller's clock (ms), or DN__SESSION_NO_EXPIRY. */
uint64_t dn__session_expiry(const dn__session *s);
/* Act on deadlines at or before now_ms: a passed handshake deadline fails
 * the session with DN_ETIMEOUT (returned too); an idle trim releases
 * buffers. Returns 0 otherwise. */
int dn__session_handle_expiry(dn__session *s, uint64_t now_ms);

/* Release the empty buffers past DN__SESSION_KEEP now, without waiting for
 * a quiet period (the host does this under memory pressure, where a
 * connection's buffers must not keep the size of its last burst). Returns
 * the bytes released. */
size_t dn__session_trim_now(dn__session *s);

/* Stop: no more input processing and no more events (the caller tears
 * down). status is kept for dn__session_status. Idempotent. */
void dn__session_close(dn__session *s, int status);
/* Release everything (keys wiped). Not from inside the callback. */
void dn__session_free(dn__session *s);

static inline dn__session_phase dn__session_get_phase(const dn__session *s)
{
    return s->phase;
}
static inline int dn__session_status(const dn__session *s)
{
    return s->status;
}
/* The muxer once open, else NULL. */
static inline dn_yamux *dn__session_yamux(const dn__session *s)
{
    return s->yamux;
}
/* The peer's id and key once the Noise handshake is done, else NULL. */
const dn_peerid *dn__session_remote(const dn__session *s);
const dn_pubkey *dn__session_remote_key(const dn__session *s);
/* Memory held by the session's buffers (capacity), for tests and stats. */
size_t dn__session_buffered_capacity(const dn__session *s);

#endif
