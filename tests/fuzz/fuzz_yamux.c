/* Fuzz the yamux engine: arbitrary bytes, fed in arbitrary chunks, into an
 * engine whose callback behaves like a busy application (accepts, echoes,
 * consumes, half-closes, resets, opens streams and pings from inside the
 * callbacks). Byte 0 picks the role, limits and chunking seed; the rest is
 * the wire. Invariants checked: the engine never crashes or leaks, the
 * stream count stays within max_streams, and it never sends past the
 * windows it was given (checked by the engine's own accounting: a write
 * never returns more than dn_yamux_send_window). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "yamux/yamux.h"

typedef struct app {
    dn_yamux *y;
    uint32_t max_streams;
    unsigned n;
    bool sent_goaway;
} app;

static void echo(app *a, uint32_t id, const uint8_t *d, size_t len)
{
    uint32_t win = dn_yamux_send_window(a->y, id);
    ssize_t w = dn_yamux_write(a->y, id, d, len);
    if (w > 0 && (size_t)w > win)
        abort();
}

static void open_stream(app *a)
{
    uint32_t id;
    if (dn_yamux_open(a->y, &id) == 0)
        dn_yamux_set_user(a->y, id, a);
}

static void on_event(void *ctx, const dn_yamux_event *ev)
{
    app *a = ctx;
    uint32_t id = ev->stream_id;
    a->n++;
    switch (ev->type) {
    case DN_YAMUX_EV_STREAM_OPENED:
        dn_yamux_set_user(a->y, id, a);
        if (id % 5 == 0)
            dn_yamux_reset(a->y, id);
        else if (id % 3 != 0) /* leave some in the backlog */
            dn_yamux_accept(a->y, id);
        break;
    case DN_YAMUX_EV_DATA:
        if (ev->user != a)
            abort();
        if (ev->len == 0)
            abort();
        dn_yamux_consumed(a->y, id, ev->len);
        switch (ev->data[0]) {
        case 'R': dn_yamux_reset(a->y, id); break;
        case 'F': dn_yamux_close_write(a->y, id); break;
        case 'O': open_stream(a); break;
        case 'P': dn_yamux_ping(a->y, id); break;
        case 'G':
            dn_yamux_goaway(a->y, 0);
            a->sent_goaway = true;
            break;
        case 'H': break; /* hold: do not echo */
        default: echo(a, id, ev->data, ev->len); break;
        }
        /* the stream may be gone now; calls must fail cleanly */
        dn_yamux_consumed(a->y, id, 0);
        break;
    case DN_YAMUX_EV_FIN: dn_yamux_close_write(a->y, id); break;
    case DN_YAMUX_EV_WRITABLE: echo(a, id, (const uint8_t *)"writable", 8); break;
    case DN_YAMUX_EV_STREAM_GONE:
        if (dn_yamux_write(a->y, id, (const uint8_t *)"x", 1) >= 0)
            abort();
        break;
    case DN_YAMUX_EV_STREAM_ACKED:
    case DN_YAMUX_EV_RESET:
    case DN_YAMUX_EV_PING:
    case DN_YAMUX_EV_GOAWAY: break;
    }
    if (dn_yamux_stream_count(a->y) > a->max_streams)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    app a = {0};
    dn_yamux_config cfg = {0};
    if (ctl & 0x2) {
        cfg.max_streams = 8;
        cfg.max_ack_backlog = 4;
        cfg.max_window = DN_YAMUX_INITIAL_WINDOW;
    }
    a.max_streams = cfg.max_streams ? cfg.max_streams : 1024;
    bool client = ctl & 0x1;
    if (dn_yamux_new(client, &cfg, on_event, &a, &a.y))
        return 0;
    if (client) { /* give the peer something of ours to talk about */
        open_stream(&a);
        open_stream(&a);
    }
    uint32_t r = 0x12345u + ctl;
    size_t off = 0;
    while (off < size) {
        r = r * 1103515245u + 12345u;
        size_t k = (ctl & 0x4) ? 1 + (r >> 16) % 7 : 1 + (r >> 16) % 300;
        if (ctl & 0x8)
            k = size - off; /* all at once */
        if (k > size - off)
            k = size - off;
        int rc = dn_yamux_feed(a.y, data + off, k);
        off += k;
        if (rc == DN_EPROTO) {
            /* the session is dead; the output ends with a GoAway unless
             * one was sent already */
            dn_buf *o = dn_yamux_output(a.y);
            if (!a.sent_goaway && (o->len < 12 || o->data[o->len - 11] != 3))
                abort();
            if (dn_yamux_feed(a.y, data, size) != DN_EPROTO)
                abort();
            break;
        }
        if (rc != 0)
            abort();
        if (r & 0x100)
            dn_buf_reset(dn_yamux_output(a.y));
    }
    dn_yamux_free(a.y);
    return 0;
}
