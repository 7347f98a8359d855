/* yamux — stream multiplexer (yamux spec, as hashicorp/yamux and the
 * libp2p spec define it), sans-I/O.
 *
 * Header: version(1)=0, type(1), flags(2), stream id(4), length(4), all big
 * endian. Types: Data 0, WindowUpdate 1, Ping 2, GoAway 3. Flags: SYN 1,
 * ACK 2, FIN 4, RST 8 — accepted on Data and WindowUpdate frames alike.
 * Clients (dialers) use odd stream ids, servers even. Each stream starts
 * with a 256 KiB receive window; only Data payload counts against it. We
 * never send past the peer's window, and grow our receive window (up to
 * max_window) when the application consumes data quickly.
 *
 * The engine consumes all input it is given (it keeps at most a partial
 * 12-byte header), delivers Data payload as it arrives (pointing into the
 * caller's input, no copy), and appends frames to send to its output
 * buffer, which the caller drains. Events are delivered through a
 * callback during dn_yamux_feed and the API calls. */
#ifndef DN_YAMUX_H
#define DN_YAMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmsnet/buf.h"

#define DN_YAMUX_PROTOCOL "/yamux/1.0.0"
#define DN_YAMUX_HEADER_LEN 12
#define DN_YAMUX_INITIAL_WINDOW (256u * 1024u)

enum dn_yamux_goaway_code { DN_YAMUX_GOAWAY_NORMAL = 0, DN_YAMUX_GOAWAY_PROTOCOL = 1, DN_YAMUX_GOAWAY_INTERNAL = 2 };

typedef struct dn_yamux_config {
    uint32_t max_streams;     /* open streams per connection (default 1024) */
    uint32_t max_ack_backlog; /* inbound streams not yet accepted, and our
                                 outbound SYNs not yet ACKed (default 256) */
    uint32_t max_window;      /* largest receive window we grow to (default 16 MiB) */
} dn_yamux_config;

typedef enum dn_yamux_event_type {
    DN_YAMUX_EV_STREAM_OPENED, /* peer opened stream_id (SYN); call dn_yamux_accept or reset */
    DN_YAMUX_EV_STREAM_ACKED,  /* peer ACKed our stream */
    DN_YAMUX_EV_DATA,          /* data/len: payload for stream_id */
    DN_YAMUX_EV_FIN,           /* peer will send no more on stream_id */
    DN_YAMUX_EV_RESET,         /* stream_id was reset by the peer */
    DN_YAMUX_EV_WRITABLE,      /* send window of stream_id grew; value: new window */
    DN_YAMUX_EV_STREAM_GONE,   /* stream_id state is being freed (after both
                                  sides closed, or a reset); last event for it */
    DN_YAMUX_EV_PING,          /* value: opaque of a ping reply we asked for */
    DN_YAMUX_EV_GOAWAY,        /* value: peer's go-away code */
} dn_yamux_event_type;

typedef struct dn_yamux_event {
    dn_yamux_event_type type;
    uint32_t stream_id;
    void *user; /* what dn_yamux_set_user stored for the stream, or NULL */
    const uint8_t *data;
    size_t len;
    uint32_t value;
} dn_yamux_event;

typedef void (*dn_yamux_event_cb)(void *ctx, const dn_yamux_event *ev);

typedef struct dn_yamux dn_yamux; /* heap object: internals in yamux.c */

/* cfg may be NULL for defaults; zero fields take their default. DN_EINVAL
 * when max_window is below 256 KiB or above 1 GiB. cb may be NULL. */
int dn_yamux_new(bool is_client, const dn_yamux_config *cfg, dn_yamux_event_cb cb, void *ctx,
                 dn_yamux **out);
void dn_yamux_free(dn_yamux *y); /* no events are sent; not from inside the callback */

/* Process received bytes (always all of them). Returns 0, or DN_EPROTO
 * when the peer broke the protocol (bad version/type, window overrun,
 * unknown stream in a way the spec forbids): a GoAway(protocol error) is
 * then queued and the session must be closed after flushing. Once failed,
 * every later call returns the same error. Not re-entrant: from inside the
 * callback it returns DN_ESTATE. Every other call may be made from inside
 * the callback; a stream freed meanwhile is handled safely. */
int dn_yamux_feed(dn_yamux *y, const uint8_t *in, size_t len);
/* Frames waiting to be sent. The caller writes out->data[0..len) and then
 * calls dn_buf_reset(out) (or dn_buf_consume for a partial write). */
dn_buf *dn_yamux_output(dn_yamux *y);

/* Open a stream: queues a SYN. DN_ELIMIT past max_streams, DN_EAGAIN when
 * max_ack_backlog SYNs are unacknowledged, DN_ECLOSED after go-away. */
int dn_yamux_open(dn_yamux *y, uint32_t *stream_id);
/* Accept an inbound stream (queues the ACK). Returns 0 if already accepted
 * (the first frame we send on an inbound stream — data, window update or
 * FIN — carries ACK and accepts it), DN_EINVAL for our own streams.
 * Calls on a stream id return DN_ECLOSED once its state is gone (or after
 * a session failure) and DN_ENOTFOUND for ids never used. */
int dn_yamux_accept(dn_yamux *y, uint32_t stream_id);
void dn_yamux_set_user(dn_yamux *y, uint32_t stream_id, void *user);
/* Queue up to len bytes within the peer's window. Returns the number of
 * bytes accepted (0 when the window is full: wait for WRITABLE), or
 * DN_ECLOSED / DN_ENOTFOUND. */
ssize_t dn_yamux_write(dn_yamux *y, uint32_t stream_id, const uint8_t *data, size_t len);
/* The same without copying: takes up to len bytes (at most one frame,
 * 64 KiB) within the window and writes their Data frame header to hdr.
 * The caller must send hdr and then exactly the returned number of bytes
 * of its data, after everything already in dn_yamux_output(). Returns as
 * dn_yamux_write. */
ssize_t dn_yamux_write_header(dn_yamux *y, uint32_t stream_id, size_t len,
                              uint8_t hdr[DN_YAMUX_HEADER_LEN]);
/* The peer's current window for the stream (bytes we may still send). */
uint32_t dn_yamux_send_window(dn_yamux *y, uint32_t stream_id);
/* The application is done with n bytes of received data: lets the engine
 * reopen the receive window (sends a WindowUpdate when worthwhile).
 * DN_EINVAL if n exceeds the bytes delivered and not yet consumed. */
int dn_yamux_consumed(dn_yamux *y, uint32_t stream_id, size_t n);
/* Half-close our side (FIN). Idempotent. STREAM_GONE follows at once if
 * the peer had closed its side already. */
int dn_yamux_close_write(dn_yamux *y, uint32_t stream_id);
/* Reset the stream (RST); a STREAM_GONE event follows at once. */
int dn_yamux_reset(dn_yamux *y, uint32_t stream_id);
/* Send a ping with this opaque value; the reply arrives as DN_YAMUX_EV_PING. */
int dn_yamux_ping(dn_yamux *y, uint32_t opaque);
/* Queue a GoAway (once; later calls do nothing); no new streams after:
 * dn_yamux_open returns DN_ECLOSED, inbound SYNs are refused with RST. */
int dn_yamux_goaway(dn_yamux *y, uint32_t code);
/* Change the largest receive window streams grow to, from now on (as
 * max_window in dn_yamux_config). Windows already past it keep their size.
 * DN_EINVAL outside [256 KiB, 1 GiB]. */
int dn_yamux_set_max_window(dn_yamux *y, uint32_t max_window);
/* Number of open streams. */
size_t dn_yamux_stream_count(const dn_yamux *y);

#endif
