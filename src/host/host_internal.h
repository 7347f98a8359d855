/* Internal structures of the host (src/host). Only the host sources and the
 * built-in protocols (src/proto) include this. */
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
/* Socket reads go into the connection's receive buffer with this much room. */
#define DN_CONN_READ_CHUNK (256u * 1024u)
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
    bool dirty;           /* linked in host->dirty_head */
    bool opened_event;    /* DN_CONN_EV_OPENED was delivered */
    bool identified;
    bool goaway_received; /* the peer said goodbye: its reset is no error */
    int close_status;

    /* The upgrade pipeline and transport (pnet, mss, Noise, yamux), sans-I/O;
     * yamux, remote and remote_key below mirror it once the handshake is done. */
    dn__session sess;
    bool sess_started;
    uint64_t timer_at;    /* when c->timer fires (loop ms), UINT64_MAX: stopped */
    uint64_t mem_freed_at; /* the session released buffers then (EV_IDLE) */
    uint64_t mem_retry_at; /* return them to the system then (UINT64_MAX: done) */
    dn_yamux *yamux;

    bool have_expected;
    dn_peerid expected;
    dn_peerid remote;
    dn_pubkey *remote_key; /* owned by sess */
    dn_multiaddr remote_addr;

    dial_waiter *waiters;
    dn_stream *streams;   /* all streams */
    size_t nstreams;
    dn_stream *sendq_head;/* streams with queued output */
    dn_conn *prev, *next; /* host->conns */
    dn_conn *dirty_next;
};

typedef struct dn_listener {
    dn_host *host;
    uv_tcp_t tcp;
    dn_multiaddr addr; /* bound address */
    bool active;
} dn_listener;

typedef struct dn_handler_entry {
    char *protocol;
    dn_stream_handler fn;
    void *arg;
} dn_handler_entry;

struct dn_host {
    uv_loop_t *loop;
    dn_host_config cfg;
    char agent_version[64];
    const dn_privkey *identity;
    dn_peerid self;
    uint8_t psk[DN_PSK_LEN];
    bool use_pnet;
    dn_listener listeners[DN_HOST_MAX_LISTENERS];
    size_t nlisteners;
    dn_handler_entry handlers[DN_HOST_MAX_PROTOCOLS];
    const char *protocol_list[DN_HOST_MAX_PROTOCOLS]; /* for mss listeners */
    size_t nhandlers;
    dn_conn *conns;
    size_t nconns;
    dn_conn *dirty_head;
    uv_prepare_t flusher; /* writes everything queued during a loop turn */
    uv_idle_t kick;       /* keeps the loop from blocking while conns are dirty */
    dn_peerstore peers;
    dn_conn_event_cb observer;
    void *observer_arg;
    bool closing;
    int pending_closes;
    void (*close_cb)(void *arg);
    void *close_arg;
    uint64_t identify_seq; /* signed peer record sequence number */
    /* The signed peer record is signed once per address set, not per
     * connection: the addresses it covers and the sealed envelope. */
    dn_buf record_addrs;
    dn_buf record;
    /* One Noise static key for every handshake, signed once (noise spec,
     * "Static Key Authentication"); wiped when the host is freed. */
    dn_noise_static noise_static;
    /* Signatures already verified (peers' Noise payloads and signed peer
     * records), so each is checked once (crypto/verify_cache.h). */
    dn_verify_cache vcache;
};

/* conn.c */
int dn__conn_new(dn_host *h, bool outbound, dn_conn **out);
void dn__conn_start_inbound(dn_conn *c);
int dn__conn_dial(dn_host *h, const struct sockaddr *addr, const dn_peerid *expected,
                  dn_dial_cb cb, void *arg);
void dn__conn_fail(dn_conn *c, int status);
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
void dn__host_conn_opened(dn_host *h, dn_conn *c);
void dn__host_emit(dn_host *h, dn_conn *c, dn_conn_event ev, int status);

/* stream.c */
void dn__stream_on_yamux_event(dn_conn *c, const dn_yamux_event *ev);
void dn__conn_pump_streams(dn_conn *c);
void dn__conn_close_streams(dn_conn *c, int status);

/* built-in protocols (src/proto) */
int dn__ping_register(dn_host *h);
int dn__identify_register(dn_host *h);
void dn__identify_start(dn_host *h, dn_conn *c);
int dn__perf_register(dn_host *h);

#endif
