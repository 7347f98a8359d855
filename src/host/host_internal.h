/* Internal structures of the host (src/host). Only the host sources
 * include this: services above the host use include/dmsnet/host.h. */
#ifndef DN_HOST_INTERNAL_H
#define DN_HOST_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto/verify_cache.h"
#include "dmsnet/host.h"
#include "host/peerstore.h"
#include "host/session.h"
#include "mss/mss.h"
#include "noise/noise.h"
#include "pnet/pnet.h"
#include "yamux/yamux.h"

#define DN_HOST_MAX_LISTENERS 16
#define DN_HOST_MAX_PROTOCOLS 32
/* Socket reads go into the connection's receive buffer with this much room
 * (at most; the session starts small), and with the small size while the
 * host is under memory pressure. */
#define DN_CONN_READ_CHUNK (256u * 1024u)
#define DN_CONN_READ_CHUNK_PRESSED (16u * 1024u)
/* On a pnet connection, until identify shows the peer is not js-libp2p, the
 * receive windows stay at most this: js-libp2p's pnet (xsalsa20 1.2.0)
 * leaks WebAssembly memory once one write it seals passes 640 KiB and dies
 * after some hundred more, and a js sender seals up to a whole window at
 * once (tests/interop/js/README.md, "pnet: the xsalsa20 memory bug"). */
#define DN_CONN_PNET_FIRST_MAX_WINDOW (512u * 1024u)

/* Under memory pressure a connection takes more stream data only while less
 * than this of its output waits for the socket. */
#define DN_CONN_WIRE_PRESSED (64u * 1024u)
/* Under memory pressure a connection whose own backlog (queued output,
 * held input, ciphertext) passes the first mark stops reading its socket
 * (the kernel holds what its peer sends, TCP pushes back) until the
 * backlog drops below the second mark or the pressure ends. */
#define DN_CONN_BACKLOG_STOP (256u * 1024u)
#define DN_CONN_BACKLOG_RESUME (64u * 1024u)
/* Stop moving stream data into the muxer when this much ciphertext waits
 * for the socket: bounds memory when the peer stops reading. */
#define DN_CONN_WIRE_HIGH (1024u * 1024u)

typedef enum conn_phase {
    PH_CONNECTING,   /* TCP connect in progress (outbound) */
    PH_PNET_NONCE,   /* waiting for the peer's pnet nonce */
    PH_SECURITY_MSS, /* multistream-select for /noise */
    PH_NOISE,        /* Noise XX handshake */
    PH_MUXER_MSS,    /* multistream-select for /yamux/1.0.0 inside Noise */
    PH_OPEN,         /* yamux streams */
    PH_CLOSED,
} conn_phase;

typedef struct dial_waiter {
    dn_dial_cb cb;
    void *arg;
    struct dial_waiter *next;
} dial_waiter;

/* An outbound open waiting for room in yamux's SYN backlog. */
typedef struct pending_open {
    char *protocol;
    dn_stream_open_cb cb;
    void *arg;
    struct pending_open *next;
} pending_open;

struct dn_stream {
    dn_conn *conn;
    uint32_t id;
    bool outbound;
    bool negotiating;     /* multistream-select not finished */
    bool write_closed;    /* user called close_write */
    bool fin_sent;
    bool eof_seen;
    bool reset_seen;
    bool gone;            /* on_close delivered; freed when busy drops to 0 */
    bool in_sendq;        /* linked in conn->sendq_head */
    bool above_low;       /* queue crossed the low mark since last on_writable */
    bool open_pending;    /* outbound: open_cb not yet called (the pump calls it) */
    bool budget_blocked;  /* a write was refused for a queue budget: on_writable owed */
    bool paused;          /* dn_stream_pause_read: hold what arrives */
    bool held_eof;        /* EOF arrived while paused (or behind held bytes) */
    bool in_deliver;      /* linked in conn->deliver_head */
    bool counted_proto;   /* counted against its handler's stream limit */
    uint64_t neg_deadline;/* loop time (ms) by which negotiation must finish */
    dn_stream *neg_prev, *neg_next; /* host->neg_head list, by deadline */
    dn_buf held;          /* received while paused, not yet consumed */
    int fail_status;      /* why we reset it, for on_close (0: the reset's own) */
    unsigned busy;        /* callbacks in progress (deferred free) */
    dn_mss *mss;          /* only while negotiating */
    const char *proposal[1];
    char *protocol;       /* agreed protocol (owned) */
    dn_buf sendq;         /* queued outbound bytes */
    size_t sendq_off;     /* bytes of sendq already handed to yamux */
    dn_stream_callbacks cbs;
    void *arg;
    dn_stream_open_cb open_cb;
    void *open_arg;
    dn_stream *prev, *next;   /* conn->streams list */
    dn_stream *sendq_next;    /* conn->sendq_head list */
    dn_stream *deliver_next;  /* conn->deliver_head list */
};

struct dn_conn {
    dn_host *host;
    uv_tcp_t tcp;
    uv_timer_t timer;     /* dial + handshake deadline */
    uv_connect_t connect_req;
    uv_write_t write_req;
    int open_handles;     /* handles not yet closed (tcp, timer) */
    conn_phase phase;
    bool outbound;
    bool failed;          /* teardown started */
    bool close_after_flush;
    bool writing;         /* a uv_write is in flight */
    size_t write_len;     /* its length */
    bool dirty;           /* linked in host->dirty_head */
    bool opened_event;    /* DN_CONN_EV_OPENED was delivered */
    bool goaway_received; /* the peer said goodbye: its reset is no error */
    bool counted_handshake; /* in host->hs_head (inbound, still upgrading) */
    dn_conn *hs_prev, *hs_next; /* host->hs_head list, in order of acceptance */
    uint64_t last_progress_ms; /* loop time of the last bytes received (eviction order) */
    int close_status;

    /* The upgrade pipeline and transport (pnet, mss, Noise, yamux), sans-I/O;
     * yamux, remote and remote_key below mirror it once the handshake is done. */
    dn__session sess;
    bool sess_started;
    size_t mem_counted;   /* this session's part of host->conn_mem */
    uint64_t timer_at;    /* when c->timer fires (loop ms), UINT64_MAX: stopped */
    dn_yamux *yamux;

    bool have_expected;
    dn_peerid expected;
    dn_peerid remote;
    /* The remote's peerstore entry, from open to release: entries with
     * connections are never evicted, so the pointer stays valid. */
    dn_peer_info *peer;
    dn_pubkey *remote_key; /* owned by sess */
    dn_multiaddr remote_addr;
    dn_multiaddr local_addr; /* getsockname once TCP is up */
    uint64_t id;             /* dn_conn_id */

    dial_waiter *waiters;
    dn_stream *streams;   /* all streams */
    size_t nstreams;
    size_t nnegotiating;  /* inbound streams still in multistream-select */
    size_t nblocked;      /* streams with budget_blocked set */
    size_t queued;        /* bytes in all its streams' send queues */
    size_t held;          /* received bytes its paused streams hold */
    bool read_stopped;    /* not reading the socket: the host is under pressure
                             and this connection's own backlog is large */
    bool read_yielded;    /* read its share this loop turn: reads again next turn */
    bool reading;         /* uv_read_start is in effect */
    uint64_t turn;        /* host->turn when turn_bytes was counted */
    size_t turn_bytes;    /* bytes read in that loop turn */
    dn_conn *yield_next;  /* host->yield_head list */
    pending_open *opens_head, *opens_tail; /* waiting for yamux backlog room */
    size_t nopens;
    dn_stream *sendq_head;/* streams with queued output */
    dn_stream *deliver_head; /* resumed streams with held input to deliver */
    dn_conn *prev, *next; /* host->conns */
    dn_conn *dirty_next;
};

/* Listeners live on the heap: a failed or closed one is freed in its close
 * callback, never reused while libuv still holds it. */
typedef struct dn_listener {
    dn_host *host;
    uv_tcp_t tcp;
    dn_multiaddr addr; /* bound address */
    bool active;
    bool paused;       /* a connection waits: accepted from the next loop turn */
    unsigned accepted; /* connections accepted this loop turn */
    struct dn_listener *next;
} dn_listener;

/* Connections accepted per listener per loop turn. libuv would otherwise
 * accept for as long as the backlog refills, and a flood of connections
 * would starve every handshake already under way. */
#define DN_ACCEPTS_PER_TURN 128

typedef struct dn_handler_entry {
    char *protocol;
    dn_stream_handler fn;
    void *arg;
    uint32_t max_streams; /* inbound streams at once, 0: no limit */
    uint32_t nstreams;
} dn_handler_entry;

typedef struct host_observer {
    dn_conn_event_cb cb;
    void *arg;
} host_observer;

typedef struct host_cleanup {
    void (*fn)(void *arg);
    void *arg;
} host_cleanup;

/* A dial result delivered on a later loop turn (never re-entrantly). */
typedef struct deferred_dial {
    dn_dial_cb cb;
    void *arg;
    dn_conn *conn; /* NULL with an error status */
    int status;
    struct deferred_dial *next;
} deferred_dial;

/* A dial by peer id waiting for the peer router (dn_host_set_peer_router). */
typedef struct route_wait {
    dn_host *h;
    dn_peerid peer;
    dn_dial_cb cb;
    void *arg;
    bool done; /* answered (DN_ECLOSED at host close): the router's late answer only frees */
    struct route_wait *prev, *next;
} route_wait;

struct dn_host {
    uv_loop_t *loop;
    dn_host_config cfg;
    char agent_version[64];
    const dn_privkey *identity;
    dn_peerid self;
    uint8_t psk[DN_PSK_LEN];
    bool use_pnet;
    dn_listener *listeners;
    size_t nlisteners; /* active ones */
    dn_handler_entry handlers[DN_HOST_MAX_PROTOCOLS];
    const char *protocol_list[DN_HOST_MAX_PROTOCOLS]; /* for mss listeners */
    size_t nhandlers;
    dn_conn *conns;
    uint64_t last_conn_id;
    size_t nconns;
    size_t nfailing;      /* connections failed, not released yet (they hold no slot) */
    size_t nhandshakes;   /* inbound connections still upgrading... */
    dn_conn *hs_head, *hs_tail; /* ...listed oldest first (the eviction scans only these) */
    size_t queued;        /* bytes in every stream send queue of the host */
    size_t conn_mem;      /* buffer memory of all sessions (as last counted) */
    size_t held;          /* received bytes held by paused streams, all connections */
    size_t nread_stopped; /* connections not reading their socket (pressure) */
    uint64_t turn;        /* loop turns seen (the prepare handle counts them) */
    dn_conn *yield_head;  /* connections that read their share this turn */
    uv_timer_t pressure_timer; /* re-checks them while any is stopped */
    bool budget_blocked;  /* some write was refused for the node budget */
    dn_conn *dirty_head;
    uv_prepare_t flusher; /* writes everything queued during a loop turn */
    uv_idle_t kick;       /* keeps the loop from blocking while conns are dirty */
    uv_timer_t defer_timer; /* delivers deferred dial results */
    deferred_dial *defer_head, *defer_tail;
    uv_timer_t trim_timer; /* gives freed memory back to the OS after a burst of closes */
    uv_timer_t neg_timer; /* per-stream negotiation deadlines */
    size_t nnegotiating;  /* inbound streams negotiating, all connections */
    dn_stream *neg_head, *neg_tail;
    uint64_t bytes_in, bytes_out; /* on the wire, every connection, since dn_host_new */
    dn_peerstore peers;
    host_observer *observers;
    size_t nobservers;
    dn_peer_router_fn router;
    void *router_arg;
    route_wait *routing; /* dials waiting for the router */
    host_cleanup *cleanups;
    size_t ncleanups;
    bool closing;
    bool handles_closing; /* the host's own handles are closing (last step) */
    int pending_closes;
    void (*close_cb)(void *arg);
    void *close_arg;
    /* One Noise static key for every handshake, signed once (noise spec,
     * "Static Key Authentication"); wiped when the host is freed. */
    dn_noise_static noise_static;
    /* Signatures already verified (peers' Noise payloads), so each is
     * checked once (crypto/verify_cache.h). */
    dn_verify_cache vcache;
};

/* conn.c */
int dn__conn_new(dn_host *h, bool outbound, dn_conn **out);
void dn__conn_start_inbound(dn_conn *c);
int dn__conn_dial(dn_host *h, const struct sockaddr *addr, const dn_peerid *expected,
                  dn_dial_cb cb, void *arg);
void dn__conn_fail(dn_conn *c, int status);
/* Stop reading c's socket when the host is under pressure and c's own
 * backlog is large; start again when it is not (see the marks above). */
void dn__conn_check_backlog(dn_conn *c);
/* A new loop turn: connections that yielded read again. */
void dn__conn_end_yield(dn_conn *c);
/* Bytes one connection reads per loop turn (less under pressure): libuv
 * reads a socket up to 32 times per wake-up, so one busy connection would
 * otherwise hold the loop for megabytes while others wait. */
#define DN_CONN_TURN_BYTES (1024u * 1024u)
#define DN_CONN_TURN_BYTES_PRESSED (64u * 1024u)
/* c no longer counts as an inbound handshake (opened, failed or gone). */
void dn__host_handshake_end(dn_host *h, dn_conn *c);
/* Fill c->remote_addr from the socket's peer address. */
void dn__conn_remote_from_socket(dn_conn *c);
/* A socket for a dial to dst, bound to the address and port of one of our
 * listeners (port reuse): one on the source IP the kernel picks for dst,
 * or on the unspecified address. Its descriptor, or a negative error when
 * port reuse is off, no listener fits or the bind fails. */
int dn__host_reuse_socket(dn_host *h, const struct sockaddr *dst);
void dn__conn_mark_dirty(dn_conn *c);
void dn__conn_flush(dn_conn *c);
void dn__conn_notify_waiters(dn_conn *c, int status);
/* Send up to len bytes of an open stream's data now (no copy). Returns the
 * bytes taken, fewer when the peer's window closes or DN_CONN_WIRE_HIGH
 * bytes wait for the socket, or an error that must fail the connection. */
ssize_t dn__conn_send_stream_data(dn_conn *c, uint32_t stream_id, const uint8_t *data, size_t len);
/* Bytes waiting for the socket behind the write in flight (sealed or still
 * in the muxer): the stream pump stops at DN_CONN_WIRE_HIGH. */
size_t dn__conn_queued(const dn_conn *c);
/* Host shutdown: queue a GoAway and try to write it at once. */
void dn__conn_goaway_now(dn_conn *c);
void dn__host_conn_released(dn_host *h, dn_conn *c);
/* The upgrade finished: returns 0, or an error that must fail c (a limit). */
int dn__host_conn_opened(dn_host *h, dn_conn *c);
uint64_t dn__host_now_ms(const dn_host *h);
/* Whether the connections' buffers are at the node's buffer budget: they
 * then read in small chunks and seal stream data only while little of
 * theirs waits for the socket (the rest stays queued, under the queue
 * budgets, which refuse writes). */
bool dn__host_under_pressure(const dn_host *h);
/* A connection stopped reading for pressure: re-check it periodically. */
void dn__host_reading_stopped(dn_host *h);
/* Much was freed (connections, streams): trim the heap soon. */
void dn__host_note_release(dn_host *h);

/* stream.c */
void dn__stream_on_yamux_event(dn_conn *c, const dn_yamux_event *ev);
void dn__conn_pump_streams(dn_conn *c);
void dn__conn_close_streams(dn_conn *c, int status);
/* Fail streams whose negotiation deadline passed; re-arm the timer. */
void dn__host_check_negotiations(dn_host *h);
/* The node budget has room again: wake streams blocked on it. */
void dn__host_budget_relieved(dn_host *h);
/* Call after the node's buffered bytes dropped: relieves when due. */
void dn__host_check_relief(dn_host *h);

#endif
