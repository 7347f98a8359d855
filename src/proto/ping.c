/* ping (/ipfs/ping/1.0.0, ping spec): the dialer sends 32 random bytes,
 * the listener echoes them; repeated on one stream. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"

/* ---- server ---- */

typedef struct ping_echo {
    uint8_t buf[DN_PING_SIZE];
    size_t have;
} ping_echo;

/* Echo every complete 32-byte ping in data with one write (the echo is
 * the same bytes), keeping a partial one for the next call. A peer that
 * sends faster than it reads gets backpressure: while an echo waits in the
 * queue we stop reading (its window closes) until it has left. */
static void echo_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    ping_echo *e = arg;
    if (e->have) {
        size_t take = DN_PING_SIZE - e->have < len ? DN_PING_SIZE - e->have : len;
        memcpy(e->buf + e->have, data, take);
        e->have += take;
        data += take;
        len -= take;
        if (e->have < DN_PING_SIZE)
            return;
        e->have = 0;
        if (dn_stream_write(s, e->buf, DN_PING_SIZE) < 0)
            goto refuse;
    }
    size_t whole = len - len % DN_PING_SIZE;
    if (whole && dn_stream_write(s, data, whole) < 0)
        goto refuse;
    memcpy(e->buf, data + whole, len - whole);
    e->have = len - whole;
    if (dn_stream_queued(s))
        dn_stream_pause_read(s); /* on_writable (queue empty) resumes */
    return;
refuse:
    /* Over a queue budget even so: this peer is not reading at all. */
    dn_stream_reset(s);
}

static void echo_writable(dn_stream *s, void *arg) { dn_stream_resume_read(s); }
static void echo_eof(dn_stream *s, void *arg) { dn_stream_close_write(s); }
static void echo_close(dn_stream *s, int status, void *arg) { free(arg); }

static void ping_handler(dn_host *h, dn_stream *s, void *arg)
{
    ping_echo *e = calloc(1, sizeof *e);
    if (!e) {
        dn_stream_reset(s);
        return;
    }
    static const dn_stream_callbacks cbs = {.on_data = echo_data,
                                            .on_eof = echo_eof,
                                            .on_writable = echo_writable,
                                            .on_close = echo_close};
    dn_stream_set_callbacks(s, &cbs, e);
}

int dn_ping_attach(dn_host *h) { return dn_host_set_handler(h, DN_PING_PROTOCOL, ping_handler, NULL); }

/* ---- client ---- */

typedef struct ping_client {
    dn_stream *s;
    uv_timer_t timer;
    unsigned count, sent, answered;
    unsigned interval_ms;
    uint8_t payload[DN_PING_SIZE];
    uint8_t reply[DN_PING_SIZE];
    size_t have;
    uint64_t sent_at;
    dn_ping_callbacks cbs;
    void *arg;
    bool done;
} ping_client;

static void ping_client_free(uv_handle_t *h) { free(h->data); }

static void ping_finish(ping_client *p, int status)
{
    if (p->done)
        return;
    p->done = true;
    uv_timer_stop(&p->timer);
    dn_stream *s = p->s;
    p->s = NULL;
    if (s) {
        /* Detach: the stream outlives this client until the peer closes. */
        static const dn_stream_callbacks none = {0};
        dn_stream_set_callbacks(s, &none, NULL);
        if (status)
            dn_stream_reset(s);
        else
            dn_stream_close_write(s);
    }
    if (p->cbs.on_done)
        p->cbs.on_done(p->arg, status);
    uv_close((uv_handle_t *)&p->timer, ping_client_free);
}

static void ping_send(ping_client *p)
{
    randombytes_buf(p->payload, sizeof p->payload);
    p->have = 0;
    p->sent_at = uv_hrtime();
    p->sent++;
    int rc = dn_stream_write(p->s, p->payload, sizeof p->payload);
    if (rc)
        ping_finish(p, rc);
}

static void ping_tick(uv_timer_t *t) { ping_send(t->data); }

static void ping_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    ping_client *p = arg;
    if (p->done)
        return;
    if (p->have + len > DN_PING_SIZE || p->sent == p->answered) {
        ping_finish(p, DN_EPROTO); /* more than we asked for */
        return;
    }
    memcpy(p->reply + p->have, data, len);
    p->have += len;
    if (p->have < DN_PING_SIZE)
        return;
    if (memcmp(p->reply, p->payload, DN_PING_SIZE) != 0) {
        ping_finish(p, DN_EPROTO);
        return;
    }
    p->answered++;
    uint64_t rtt_ns = uv_hrtime() - p->sent_at;
    /* Every answered ping is the peer's latest round trip (Status shows it). */
    dn_conn *c = dn_stream_conn(s);
    dn_host_peer_update(dn_conn_host(c), dn_conn_remote_peer(c),
                        &(dn_peer_update){.latency_us = rtt_ns / 1000 ? rtt_ns / 1000 : 1});
    if (p->cbs.on_reply)
        p->cbs.on_reply(p->arg, p->answered, rtt_ns);
    if (p->done)
        return;
    if (p->answered == p->count)
        ping_finish(p, 0);
    else if (p->interval_ms == 0)
        ping_send(p);
    else
        uv_timer_start(&p->timer, ping_tick, p->interval_ms, 0);
}

static void ping_eof(dn_stream *s, void *arg) { ping_finish(arg, DN_ECLOSED); }

static void ping_closed(dn_stream *s, int status, void *arg)
{
    ping_client *p = arg;
    if (p->s == s) {
        p->s = NULL;
        ping_finish(p, status ? status : DN_ECLOSED);
    }
}

static void ping_opened(dn_stream *s, int status, void *arg)
{
    ping_client *p = arg;
    if (status) {
        ping_finish(p, status);
        return;
    }
    p->s = s;
    static const dn_stream_callbacks cbs = {
        .on_data = ping_data, .on_eof = ping_eof, .on_close = ping_closed};
    dn_stream_set_callbacks(s, &cbs, p);
    ping_send(p);
}

int dn_ping_run(dn_conn *c, unsigned count, unsigned interval_ms, const dn_ping_callbacks *cbs,
                void *arg)
{
    if (count == 0)
        return DN_EINVAL;
    ping_client *p = calloc(1, sizeof *p);
    if (!p)
        return DN_ENOMEM;
    p->count = count;
    p->interval_ms = interval_ms;
    p->cbs = *cbs;
    p->arg = arg;
    uv_timer_init(dn_host_loop(dn_conn_host(c)), &p->timer);
    p->timer.data = p;
    int rc = dn_conn_open_stream(c, DN_PING_PROTOCOL, ping_opened, p);
    if (rc) {
        p->done = true;
        uv_close((uv_handle_t *)&p->timer, ping_client_free);
    }
    return rc;
}
