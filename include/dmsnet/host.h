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

typedef struct dn_host_config {
    const dn_privkey *identity;   /* required; must outlive the host */
    const uint8_t *psk;           /* 32-byte swarm key (copied), or NULL */
    const char *agent_version;    /* default "dmsnet/<version>" */
    uint32_t max_conns;           /* default 4096 */
    uint32_t max_streams;         /* per connection, default 1024 */
    uint32_t handshake_timeout_ms;/* pnet+noise+muxer, default 10000 */
    uint32_t dial_timeout_ms;     /* TCP connect, default 10000 */
    bool enable_perf;             /* serve /perf/1.0.0 */
} dn_host_config;

/* Connection events for observers (the daemon logs them). */
typedef enum dn_conn_event {
    DN_CONN_EV_OPENED,     /* handshake done; remote peer known */
    DN_CONN_EV_IDENTIFIED, /* identify completed for the remote peer */
    DN_CONN_EV_CLOSED,     /* connection gone; status says why */
} dn_conn_event;
typedef void (*dn_conn_event_cb)(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg);

int dn_host_new(uv_loop_t *loop, const dn_host_config *cfg, dn_host **out);
/* Close every listener and connection, then call cb (may be NULL) and free. */
void dn_host_close(dn_host *h, void (*cb)(void *arg), void *arg);
uv_loop_t *dn_host_loop(dn_host *h);
const dn_peerid *dn_host_peerid(const dn_host *h);
void dn_host_set_conn_observer(dn_host *h, dn_conn_event_cb cb, void *arg);

/* Listen on a /ip4|ip6/<addr>/tcp/<port> multiaddr (port 0 picks one). */
int dn_host_listen(dn_host *h, const dn_multiaddr *ma);
/* The bound listen addresses (real ports), without /p2p. Returns the count. */
size_t dn_host_listen_addrs(const dn_host *h, dn_multiaddr *out, size_t max);

/* Dial /ip4|ip6/<addr>/tcp/<port>[/p2p/<id>]. With /p2p the remote must
 * prove that identity (DN_EPEERID otherwise). cb runs once, with the
 * connection or a negative status. An open connection to the same peer
 * is reused. */
typedef void (*dn_dial_cb)(dn_host *h, dn_conn *c, int status, void *arg);
int dn_host_dial(dn_host *h, const dn_multiaddr *ma, dn_dial_cb cb, void *arg);

const dn_peerid *dn_conn_remote_peer(const dn_conn *c);
/* The remote's address as seen on the socket. */
const dn_multiaddr *dn_conn_remote_addr(const dn_conn *c);
bool dn_conn_is_outbound(const dn_conn *c);
/* Close the connection (GoAway, flush, then the socket). */
void dn_conn_close(dn_conn *c);

/* Stream callbacks. on_data: bytes from the peer (valid during the call).
 * on_eof: the peer closed its write side. on_writable: queued output
 * dropped below the low-water mark. on_close: the stream is gone (status
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
/* The protocols we serve (for identify). Returns the count. */
size_t dn_host_protocols(const dn_host *h, const char **out, size_t max);

/* Open a stream for protocol. Selection is lazy (as js-libp2p does with
 * one protocol): cb gets the stream (status 0) as soon as the proposal is
 * queued, so data written in cb goes out right behind it; should the peer
 * refuse the protocol, the stream's on_close gets DN_ENEGOTIATE. cb gets a
 * NULL stream and an error instead when the stream ends before that (the
 * connection closes, for instance). cb is never called from inside
 * dn_conn_open_stream. */
typedef void (*dn_stream_open_cb)(dn_stream *s, int status, void *arg);
int dn_conn_open_stream(dn_conn *c, const char *protocol, dn_stream_open_cb cb, void *arg);

void dn_stream_set_callbacks(dn_stream *s, const dn_stream_callbacks *cbs, void *arg);
/* Queue bytes (copied). Returns 0, or DN_ECLOSED after close_write/reset,
 * DN_ELIMIT when too much is queued already (see dn_stream_queued). */
int dn_stream_write(dn_stream *s, const void *data, size_t len);
/* Bytes queued and not yet handed to the muxer. */
size_t dn_stream_queued(const dn_stream *s);
/* Half-close: the peer sees EOF after the queued bytes. */
int dn_stream_close_write(dn_stream *s);
/* Abort the stream. on_close follows with DN_ERESET... */
void dn_stream_reset(dn_stream *s);
const char *dn_stream_protocol(const dn_stream *s);
dn_conn *dn_stream_conn(const dn_stream *s);

/* What identify and the handshake told us about a peer. */
typedef struct dn_peer_info {
    dn_peerid id;
    dn_pubkey *public_key;    /* NULL until known */
    char agent_version[256];
    char protocol_version[256];
    char **protocols;
    size_t nprotocols;
    dn_multiaddr *listen_addrs;
    size_t naddrs;
    dn_multiaddr observed_addr; /* how the peer sees us; len 0 if unknown */
    bool identified;
    unsigned connections;       /* open connections to this peer */
} dn_peer_info;

/* Tell connected peers (that support it) our current addresses and
 * protocols with identify push. Called after listen/handler changes. */
void dn_host_identify_push(dn_host *h);

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
