/* dmsnet — the libp2p host: TCP transport, pnet, Noise, Yamux, and
 * protocol streams, on a libuv loop.
 *
 * Lifecycle (libuv's rule): every object that has callbacks closes through
 * a callback before its memory is released. A dn_host is created on a loop
 * the caller owns and runs; dn_host_close tears down listeners and
 * connections and calls back once everything is released.
 *
 * Connections are reused: dialing a peer that already has an open
 * connection returns that connection. Streams are yamux streams whose
 * protocol was agreed with multistream-select. */
#ifndef DMSNET_HOST_H
#define DMSNET_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dmsnet/keys.h"
#include "dmsnet/multiaddr.h"
#include "dmsnet/peerid.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dn_host dn_host;
typedef struct dn_conn dn_conn;
typedef struct dn_stream dn_stream;

#define DN_PING_PROTOCOL "/ipfs/ping/1.0.0"
#define DN_IDENTIFY_PROTOCOL "/ipfs/id/1.0.0"
#define DN_IDENTIFY_PUSH_PROTOCOL "/ipfs/id/push/1.0.0"
#define DN_PERF_PROTOCOL "/perf/1.0.0"

/* Host configuration. Initialise with DN_HOST_CONFIG_INIT (or
 * dn_host_config_init) and then set fields: `size` tells the library which
 * fields the caller knows, so the struct can grow without breaking programs
 * built against an older header. Zero fields take their default. */
typedef struct dn_host_config {
    size_t size;                  /* sizeof(dn_host_config) of the caller */
    const dn_privkey *identity;   /* required; must outlive the host */
    const uint8_t *psk;           /* 32-byte swarm key (copied), or NULL */
    const char *agent_version;    /* default "dmsnet/<version>" */
    uint32_t max_conns;           /* default 4096, and never more than the fd limit allows */
    uint32_t max_streams;         /* per connection, default 1024 */
    uint32_t handshake_timeout_ms;/* pnet+noise+muxer, default 10000 */
    uint32_t dial_timeout_ms;     /* TCP connect, default 10000 */
    /* Resource budgets (in the spirit of go-libp2p's resource manager). */
    uint32_t max_handshakes;      /* connections still upgrading, default 256 */
    uint32_t max_handshakes_per_ip; /* of those, from one address, default 64 */
    uint32_t max_conns_per_peer;  /* default 8 */
    uint32_t max_streams_per_peer;/* over all its connections, default 4096 */
    uint32_t max_negotiating_streams; /* inbound, per connection, default 256 */
    uint32_t max_negotiating_total;   /* inbound, whole host, default 8192: past it
                                         the oldest one is reset to make room */
    uint32_t stream_negotiation_timeout_ms; /* per-stream multistream-select, default 10000 */
    size_t conn_queue_budget;     /* queued stream output per connection, default 8 MiB */
    size_t node_queue_budget;     /* queued stream output of the whole host, default 64 MiB */
    size_t node_buffer_budget;    /* connections' read and write buffers, default 64 MiB:
                                     past it they read in small chunks and keep
                                     stream data queued rather than sealed */
    /* Outbound TCP dials leave from the port we listen on (SO_REUSEPORT,
     * as go-libp2p does), so a NAT that keeps ports shows peers our listen
     * port and their observed addresses are worth something. Only the port
     * changes: a dial binds a listener's address when it is the source IP
     * the kernel would pick for the destination, or unspecified, and
     * falls back to an ephemeral port when that one cannot be used
     * (another connection to the same address holds it). true: always
     * dial from an ephemeral port, and listen without SO_REUSEPORT. */
    bool no_port_reuse;
} dn_host_config;

#define DN_HOST_CONFIG_INIT {.size = sizeof(dn_host_config)}
void dn_host_config_init(dn_host_config *cfg);

/* Host events, for observers (services, the node, the daemon's log). */
typedef enum dn_conn_event {
    DN_CONN_EV_OPENED,     /* handshake done; remote peer known */
    DN_CONN_EV_IDENTIFIED, /* identify completed for the remote peer */
    DN_CONN_EV_CLOSED,     /* connection gone; status says why */
    DN_HOST_EV_ADDRS_CHANGED,     /* our listen addresses changed (c is NULL) */
    DN_HOST_EV_PROTOCOLS_CHANGED, /* a protocol handler was added or removed (c is NULL) */
    DN_CONN_EV_PUSHED, /* an identify push from the remote peer updated what we know of it
                          (its protocols, addresses): services that care which protocols
                          a peer speaks look again */
} dn_conn_event;
typedef void (*dn_conn_event_cb)(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg);

/* Create a host. It serves no protocol by itself: services (identify,
 * ping, perf, ... see protocols.h) attach to it through this API. Fails
 * synchronously (nothing to clean up) or succeeds. */
int dn_host_new(uv_loop_t *loop, const dn_host_config *cfg, dn_host **out);
/* Close every listener and connection, then run the cleanups registered
 * with dn_host_add_cleanup (last first), call cb (may be NULL) and free.
 * Dial and open callbacks still pending get DN_ECLOSED first. */
void dn_host_close(dn_host *h, void (*cb)(void *arg), void *arg);
uv_loop_t *dn_host_loop(dn_host *h);
const dn_peerid *dn_host_peerid(const dn_host *h);
const dn_privkey *dn_host_identity(const dn_host *h);
const char *dn_host_agent_version(const dn_host *h);
/* Any number of observers; each gets every event. Observers must not be
 * added or removed from inside an event. */
int dn_host_add_observer(dn_host *h, dn_conn_event_cb cb, void *arg);
void dn_host_remove_observer(dn_host *h, dn_conn_event_cb cb, void *arg);
/* Run fn(arg) when the host is freed (services free their state here). */
int dn_host_add_cleanup(dn_host *h, void (*fn)(void *arg), void *arg);
/* Deliver an event to every observer (services use it, e.g. identify
 * reports DN_CONN_EV_IDENTIFIED). */
void dn_host_emit(dn_host *h, dn_conn *c, dn_conn_event ev, int status);
/* Call fn for each open connection (handshake done, not closing). */
void dn_host_foreach_conn(dn_host *h, void (*fn)(dn_conn *c, void *arg), void *arg);

/* Listen on a /ip4|ip6/<addr>/tcp/<port> multiaddr (port 0 picks one). */
int dn_host_listen(dn_host *h, const dn_multiaddr *ma);
/* The bound listen addresses (real ports), without /p2p. Returns the count. */
size_t dn_host_listen_addrs(const dn_host *h, dn_multiaddr *out, size_t max);
/* The listen addresses as peers can dial them: an unspecified bind address
 * (0.0.0.0, ::) becomes one address per local interface address of its
 * family (link-local IPv6 left out: it needs a zone). Returns how many were
 * written (at most max). */
size_t dn_host_dialable_addrs(const dn_host *h, dn_multiaddr *out, size_t max);

typedef struct dn_host_stats {
    uint64_t bytes_in, bytes_out; /* TCP payload bytes, every connection, since dn_host_new */
    size_t conns;                 /* connections held (upgrading ones included) */
    size_t handshakes;            /* inbound ones still in their handshake */
} dn_host_stats;
void dn_host_get_stats(const dn_host *h, dn_host_stats *st);

/* Dial /ip4|ip6/<addr>/tcp/<port>[/p2p/<id>]. With /p2p the remote must
 * prove that identity (DN_EPEERID otherwise). cb runs once, never from
 * inside this call, with the connection or a negative status. An open
 * connection to the same peer is reused, and a dial to a peer whose
 * connection is still handshaking joins that handshake. */
typedef void (*dn_dial_cb)(dn_host *h, dn_conn *c, int status, void *arg);
int dn_host_dial(dn_host *h, const dn_multiaddr *ma, dn_dial_cb cb, void *arg);
/* Dial by peer id alone: reuse or join as above, else try the addresses
 * the peerstore knows for it, one after another. cb gets DN_ENOTFOUND when
 * none is known, or the last dial's error when none answers. */
int dn_host_dial_peer(dn_host *h, const dn_peerid *peer, dn_dial_cb cb, void *arg);

/* Peer routing for dn_host_dial_peer (a DHT plugs in here; the host knows
 * nothing of it). When the peerstore has no address for a peer, the host
 * calls fn, which looks the peer up and puts its addresses into the
 * peerstore (dn_host_peer_update), then calls found(h, peer, status, ctx)
 * exactly once, from inside fn or later: status 0 dials the addresses the
 * peerstore now knows, an error ends the dial with it. found may come after
 * dn_host_close (the dial was answered DN_ECLOSED then), until the host's
 * cleanups have run. fn NULL removes the router. */
typedef void (*dn_peer_found_fn)(dn_host *h, const dn_peerid *peer, int status, void *ctx);
typedef void (*dn_peer_router_fn)(void *arg, dn_host *h, const dn_peerid *peer,
                                  dn_peer_found_fn found, void *ctx);
int dn_host_set_peer_router(dn_host *h, dn_peer_router_fn fn, void *arg);

dn_host *dn_conn_host(const dn_conn *c);
const dn_peerid *dn_conn_remote_peer(const dn_conn *c);
/* The key the remote proved in the handshake. */
const dn_pubkey *dn_conn_remote_pubkey(const dn_conn *c);
/* The remote's address as seen on the socket. */
const dn_multiaddr *dn_conn_remote_addr(const dn_conn *c);
/* Our end of the socket (/ip4|ip6/<addr>/tcp/<port>): a listen port for
 * inbound connections and for dials that reused it, else an ephemeral one.
 * Empty (len 0) before the TCP connection is up. */
const dn_multiaddr *dn_conn_local_addr(const dn_conn *c);
/* A number unique to this connection for the host's lifetime (never 0). */
uint64_t dn_conn_id(const dn_conn *c);
bool dn_conn_is_outbound(const dn_conn *c);
/* Close the connection (GoAway, flush, then the socket). */
void dn_conn_close(dn_conn *c);

/* Stream callbacks. on_data: bytes from the peer (valid during the call).
 * on_eof: the peer closed its write side. on_writable: queued output
 * dropped below the low-water mark (or, on a paused stream, emptied). on_close: the stream is gone (status
 * 0 after an orderly close of both sides, else why); the dn_stream is
 * freed right after on_close returns. */
typedef struct dn_stream_callbacks {
    void (*on_data)(dn_stream *s, const uint8_t *data, size_t len, void *arg);
    void (*on_eof)(dn_stream *s, void *arg);
    void (*on_writable)(dn_stream *s, void *arg);
    void (*on_close)(dn_stream *s, int status, void *arg);
} dn_stream_callbacks;

/* An inbound stream whose protocol was agreed. The handler must set
 * callbacks (or reset the stream) before returning. */
typedef void (*dn_stream_handler)(dn_host *h, dn_stream *s, void *arg);
int dn_host_set_handler(dn_host *h, const char *protocol, dn_stream_handler fn, void *arg);
/* DN_ENOTFOUND when no handler serves protocol. */
int dn_host_remove_handler(dn_host *h, const char *protocol);
/* Bound the inbound streams of one protocol open at once (0: no bound);
 * past it new streams are reset. DN_ENOTFOUND without a handler. */
int dn_host_set_protocol_limit(dn_host *h, const char *protocol, uint32_t max_inbound_streams);
/* The protocols we serve (for identify). Returns the count. */
size_t dn_host_protocols(const dn_host *h, const char **out, size_t max);

/* Open a stream for protocol. When yamux's backlog of unacknowledged
 * streams is full, the open waits for room (DN_ELIMIT only past the
 * connection's or the peer's stream limit). Selection is lazy (as js-libp2p does with
 * one protocol): cb gets the stream (status 0) as soon as the proposal is
 * queued, so data written in cb goes out right behind it; should the peer
 * refuse the protocol, the stream's on_close gets DN_ENEGOTIATE. cb gets a
 * NULL stream and an error instead when the stream ends before that (the
 * connection closes, for instance). cb is never called from inside
 * dn_conn_open_stream. */
typedef void (*dn_stream_open_cb)(dn_stream *s, int status, void *arg);
int dn_conn_open_stream(dn_conn *c, const char *protocol, dn_stream_open_cb cb, void *arg);

void dn_stream_set_callbacks(dn_stream *s, const dn_stream_callbacks *cbs, void *arg);
/* Send bytes: sealed straight from data when the window allows, the rest
 * copied to the stream's queue. Returns 0, or DN_ECLOSED after
 * close_write/reset, DN_ELIMIT when the bytes would pass the stream's
 * queue limit or the connection's or host's queue budget (nothing is
 * taken then; on_writable follows when there is room again). */
int dn_stream_write(dn_stream *s, const void *data, size_t len);
/* Bytes queued and not yet handed to the muxer. */
size_t dn_stream_queued(const dn_stream *s);
/* Half-close: the peer sees EOF after the queued bytes. */
int dn_stream_close_write(dn_stream *s);
/* Abort the stream. on_close follows with DN_ERESET... */
void dn_stream_reset(dn_stream *s);
/* Receive backpressure. Bytes handed to on_data count as consumed when it
 * returns, and only consumed bytes reopen the peer's send window. While a
 * stream is paused, on_data is not called: what arrives (at most the
 * window we granted) is held, and the peer stops when the window closes.
 * resume delivers the held bytes (and a held EOF) from the loop, not from
 * inside the call. */
void dn_stream_pause_read(dn_stream *s);
void dn_stream_resume_read(dn_stream *s);
/* Bytes received and held while paused. */
size_t dn_stream_held(const dn_stream *s);
const char *dn_stream_protocol(const dn_stream *s);
dn_conn *dn_stream_conn(const dn_stream *s);

/* What identify and the handshake told us about a peer. Stored compactly:
 * read addresses with dn_peer_info_addr. */
typedef struct dn_peer_info {
    dn_peerid id;
    dn_pubkey *public_key;    /* NULL until known */
    const char *agent_version;    /* "" until known; peer-supplied: escape before printing */
    const char *protocol_version; /* "" until known */
    char **protocols;
    size_t nprotocols;
    size_t naddrs;            /* listen addresses */
    bool identified;
    unsigned connections;       /* open connections to this peer */
    unsigned streams;           /* open streams over them */
    uint64_t last_seen_ms;      /* loop time of the last connection event */
    int64_t latency_us;         /* last round trip measured (ping); -1 unknown */
    /* private: */
    uint8_t *addr_bytes;        /* naddrs entries: 2-byte big-endian length + bytes */
    size_t addr_bytes_len;
    uint8_t *observed_bytes;    /* how the peer sees us; NULL if unknown */
    size_t observed_len;
} dn_peer_info;

/* Listen address i of the peer (0 <= i < naddrs). */
int dn_peer_info_addr(const dn_peer_info *p, size_t i, dn_multiaddr *out);
/* How the peer sees us; DN_ENOTFOUND if it did not say. */
int dn_peer_info_observed(const dn_peer_info *p, dn_multiaddr *out);

/* What a service learned about a peer (identify, the DHT...). Each field
 * left NULL (or with its set_ flag false) keeps the stored value. */
typedef struct dn_peer_update {
    const dn_pubkey *public_key;  /* only taken when none is stored */
    const char *agent_version;
    const char *protocol_version;
    bool set_protocols;
    const char *const *protocols;
    size_t nprotocols;
    bool set_addrs;
    const dn_multiaddr *addrs;
    size_t naddrs;
    const dn_multiaddr *observed_addr;
    bool identified;              /* mark the peer identified */
    uint64_t latency_us;          /* a round trip just measured; 0 keeps */
} dn_peer_update;
/* Store what u says about peer (creating the entry). Bounded: at most 32
 * addresses, 128 protocols (8 KiB of names in all) and 255-byte strings
 * are kept. Protocols and the observed address are forgotten when the
 * peer's last connection closes. */
int dn_host_peer_update(dn_host *h, const dn_peerid *peer, const dn_peer_update *u);

/* The peerstore entry for id, or NULL. Valid until the next loop turn. */
const dn_peer_info *dn_host_peer(const dn_host *h, const dn_peerid *id);

/* Queued-output limits per stream: writes fail with DN_ELIMIT above the
 * high mark; on_writable fires when the queue drops below the low mark. */
#define DN_STREAM_QUEUE_HIGH (4u * 1024u * 1024u)
#define DN_STREAM_QUEUE_LOW (256u * 1024u)

#ifdef __cplusplus
}
#endif
#endif
