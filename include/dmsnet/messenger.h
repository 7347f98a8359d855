/* dmsnet — the Messenger: typed messages between nodes (NuNet DMS's
 * framing, shared DESIGN.md "Messages:"). The message type is the
 * protocol id; each message travels on its own stream as an 8-byte
 * little-endian length and the payload, and the sender closes its write
 * side. A request waits for one framed reply on the same stream.
 *
 * A service on a host, attached through the host's public API; its state
 * lives as long as the host. See docs/messenger.md. */
#ifndef DMSNET_MESSENGER_H
#define DMSNET_MESSENGER_H

#include <stddef.h>
#include <stdint.h>

#include "dmsnet/host.h"
#include "dmsnet/peerid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DN_MESSENGER_DEFAULT_MAX_PAYLOAD (1u << 20) /* 1 MiB, as NuNet DMS */

/* Initialise with DN_MESSENGER_CONFIG_INIT (or dn_messenger_config_init);
 * zero fields take their default. */
typedef struct dn_messenger_config {
    size_t size;                   /* sizeof(dn_messenger_config) of the caller */
    size_t max_payload;            /* sent and received, default 1 MiB */
    uint32_t request_timeout_ms;   /* default for send/request, and the time an
                                      inbound message has to arrive whole; 30000 */
    uint32_t max_inbound_per_peer; /* messages from one peer being received or
                                      processed at once, default 64; past it the
                                      peer's new streams are reset */
    uint32_t max_inbound_total;    /* the same over all peers, default 1024 */
    size_t max_inbound_bytes;      /* payload bytes held for inbound messages,
                                      default 64 MiB; past it streams wait
                                      (paused reading, the sender's window closes) */
} dn_messenger_config;

#define DN_MESSENGER_CONFIG_INIT                                                                   \
    {                                                                                              \
        .size = sizeof(dn_messenger_config)                                                        \
    }
void dn_messenger_config_init(dn_messenger_config *cfg);

typedef struct dn_messenger dn_messenger;
/* The answer to one received message: reply with one frame, or not. */
typedef struct dn_messenger_reply_handle dn_messenger_reply_handle;

/* A handler returns 0 when it is done with the message (reply may have been
 * used during the call; if not, the stream ends with no reply), or
 * DN_MESSENGER_DEFER to keep reply and finish it later with exactly one
 * dn_messenger_reply or dn_messenger_reply_discard. The message counts
 * against the inbound bounds until then. data is valid during the call. */
#define DN_MESSENGER_DEFER 1
typedef int (*dn_messenger_handler)(dn_messenger *m, const dn_peerid *from, const char *type,
                                    const uint8_t *data, size_t len,
                                    dn_messenger_reply_handle *reply, void *arg);

int dn_messenger_attach(dn_host *h, const dn_messenger_config *cfg, dn_messenger **out);
dn_host *dn_messenger_host(const dn_messenger *m);
/* Serve type (a protocol id, e.g. "/dms/deployment/request/0.0.1"). One
 * handler per type; setting it again replaces the previous one. */
int dn_messenger_handle(dn_messenger *m, const char *type, dn_messenger_handler fn, void *arg);
/* DN_ENOTFOUND when type has no handler. */
int dn_messenger_unhandle(dn_messenger *m, const char *type);

/* Write the reply frame and end our side; r is released (also on error:
 * DN_ECLOSED when the stream is gone, DN_ETOOBIG past max_payload). */
int dn_messenger_reply(dn_messenger_reply_handle *r, const void *data, size_t len);
/* End our side without a reply; r is released. */
void dn_messenger_reply_discard(dn_messenger_reply_handle *r);

/* send: 0 once the receiver took the message and ended the stream, else why
 * (DN_ETOOBIG, DN_ENEGOTIATE: the peer does not serve the type, DN_ERESET:
 * it refused it, too big for it or its queue full, DN_ETIMEOUT, ...). */
typedef void (*dn_messenger_done_cb)(void *arg, int status);
/* request: the reply (status 0, valid during the call) or the error
 * (DN_ECLOSED: the receiver ended the stream without a reply). */
typedef void (*dn_messenger_reply_cb)(void *arg, int status, const uint8_t *reply, size_t len);

/* Exactly one of c (a connection) or peer (dialled with dn_host_dial_peer
 * when not connected) is non-NULL. timeout_ms 0 takes the configured
 * default. Returns 0 and calls cb once, never from inside the call, or
 * fails at once (DN_ETOOBIG when len > max_payload, nothing sent; DN_EINVAL,
 * DN_ENOMEM) without calling cb. data is copied. */
int dn_messenger_send(dn_messenger *m, dn_conn *c, const dn_peerid *peer, const char *type,
                      const void *data, size_t len, uint32_t timeout_ms, dn_messenger_done_cb cb,
                      void *arg);
int dn_messenger_request(dn_messenger *m, dn_conn *c, const dn_peerid *peer, const char *type,
                         const void *data, size_t len, uint32_t timeout_ms,
                         dn_messenger_reply_cb cb, void *arg);

typedef struct dn_messenger_stats {
    uint64_t received;        /* messages handed to a handler */
    uint64_t refused_too_big; /* streams reset: declared length past max_payload */
    uint64_t refused_busy;    /* streams reset: per-peer or total bound reached */
    uint64_t refused_bad;     /* streams reset: bytes past the frame, early EOF, timeout */
    uint32_t inbound;         /* messages being received or processed now */
    size_t inbound_bytes;     /* payload bytes reserved for them */
    uint32_t waiting;         /* inbound streams paused for want of bytes */
} dn_messenger_stats;
void dn_messenger_get_stats(const dn_messenger *m, dn_messenger_stats *st);

#ifdef __cplusplus
}
#endif
#endif
