/* perf (/perf/1.0.0, perf spec): the client writes the 8-byte big-endian
 * count of bytes it wants back, then its upload, then closes its write
 * side; the server discards the upload until EOF, then sends the requested
 * bytes and closes. Data is written from one shared zero buffer as the
 * stream's queue drains (on_writable), so memory stays bounded. */
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"

#define PERF_CHUNK (64u * 1024u)
static const uint8_t zeros[PERF_CHUNK];

/* The server keeps its queue just above the low mark: enough for
 * on_writable to fire as it drains, yet a peer that opens many perf
 * streams and stops reading pins ~320 KiB per stream, not
 * DN_STREAM_QUEUE_HIGH (4 MiB) each. */
#define PERF_SERVER_QUEUE (DN_STREAM_QUEUE_LOW + PERF_CHUNK)

/* Queue up to `*left` bytes, keeping the stream queue near `mark`. */
static int perf_fill(dn_stream *s, uint64_t *left, size_t mark)
{
    while (*left > 0 && dn_stream_queued(s) + PERF_CHUNK <= mark) {
        size_t n = *left < PERF_CHUNK ? (size_t)*left : PERF_CHUNK;
        int rc = dn_stream_write(s, zeros, n);
        if (rc == DN_ELIMIT)
            return 0; /* over a queue budget: on_writable says when to go on */
        if (rc)
            return rc;
        *left -= n;
    }
    return 0;
}

/* ---- server ---- */

typedef struct perf_server {
    uint64_t max_download;
    uint8_t header[8];
    size_t have;
    uint64_t to_send;
    bool sending;
} perf_server;

static void server_writable(dn_stream *s, void *arg)
{
    perf_server *p = arg;
    if (!p->sending)
        return;
    if (perf_fill(s, &p->to_send, PERF_SERVER_QUEUE) < 0) {
        dn_stream_reset(s);
        return;
    }
    if (p->to_send == 0) {
        p->sending = false;
        dn_stream_close_write(s);
    }
}

static void server_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    perf_server *p = arg;
    if (p->have < 8) {
        size_t take = 8 - p->have < len ? 8 - p->have : len;
        memcpy(p->header + p->have, data, take);
        p->have += take;
    }
    /* The rest is upload, counted by nobody: the client measures. */
}

static void server_eof(dn_stream *s, void *arg)
{
    perf_server *p = arg;
    if (p->have < 8) {
        dn_stream_reset(s); /* EOF before the 8-byte header */
        return;
    }
    p->to_send = 0;
    for (int i = 0; i < 8; i++)
        p->to_send = p->to_send << 8 | p->header[i];
    if (p->to_send > p->max_download) {
        char name[16];
        DN_INFO("perf", "refusing a perf request from %s for %llu bytes (limit %llu)",
                dn_peerid_short(dn_conn_remote_peer(dn_stream_conn(s)), name),
                (unsigned long long)p->to_send, (unsigned long long)p->max_download);
        dn_stream_reset(s);
        return;
    }
    p->sending = true;
    server_writable(s, p);
}

static void server_close(dn_stream *s, int status, void *arg) { free(arg); }

static void perf_handler(dn_host *h, dn_stream *s, void *arg)
{
    perf_server *p = calloc(1, sizeof *p);
    if (!p) {
        dn_stream_reset(s);
        return;
    }
    p->max_download = *(const uint64_t *)arg;
    static const dn_stream_callbacks cbs = {.on_data = server_data,
                                            .on_eof = server_eof,
                                            .on_writable = server_writable,
                                            .on_close = server_close};
    dn_stream_set_callbacks(s, &cbs, p);
}

int dn_perf_attach(dn_host *h, uint64_t max_download)
{
    uint64_t *limit = malloc(sizeof *limit);
    if (!limit)
        return DN_ENOMEM;
    *limit = max_download ? max_download : DN_PERF_DEFAULT_MAX_DOWNLOAD;
    int rc = dn_host_add_cleanup(h, free, limit);
    if (rc) {
        free(limit);
        return rc;
    }
    return dn_host_set_handler(h, DN_PERF_PROTOCOL, perf_handler, limit);
}

/* ---- client ---- */

typedef struct perf_client {
    uint64_t upload_left;
    uint64_t download;
    uint64_t start;
    dn_perf_result r;
    dn_perf_done_cb cb;
    void *arg;
    bool upload_done, finished;
} perf_client;

static void client_finish(perf_client *p, int status)
{
    if (p->finished)
        return;
    p->finished = true;
    p->r.total_ns = uv_hrtime() - p->start;
    if (p->r.upload_ns == 0)
        p->r.upload_ns = p->r.total_ns;
    if (!status && p->r.downloaded != p->download)
        status = DN_EPROTO; /* fewer (or more) bytes than we asked for */
    p->cb(p->arg, status, &p->r);
}

static void client_writable(dn_stream *s, void *arg)
{
    perf_client *p = arg;
    if (p->upload_done)
        return;
    uint64_t before = p->upload_left;
    if (perf_fill(s, &p->upload_left, DN_STREAM_QUEUE_HIGH) < 0) {
        dn_stream_reset(s);
        return;
    }
    p->r.uploaded += before - p->upload_left;
    if (p->upload_left == 0) {
        p->upload_done = true;
        dn_stream_close_write(s);
    }
}

static void client_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    perf_client *p = arg;
    /* The server answers only after our EOF reached it: the first byte
     * back marks the end of the upload phase. */
    if (p->r.downloaded == 0 && len)
        p->r.upload_ns = uv_hrtime() - p->start;
    p->r.downloaded += len;
    if (p->r.downloaded > p->download)
        dn_stream_reset(s);
}

static void client_eof(dn_stream *s, void *arg) { client_finish(arg, 0); }

static void client_close(dn_stream *s, int status, void *arg)
{
    perf_client *p = arg;
    client_finish(p, status ? status : (p->finished ? 0 : DN_ECLOSED));
    free(p);
}

static void client_opened(dn_stream *s, int status, void *arg)
{
    perf_client *p = arg;
    if (status) {
        client_finish(p, status);
        free(p);
        return;
    }
    static const dn_stream_callbacks cbs = {.on_data = client_data,
                                            .on_eof = client_eof,
                                            .on_writable = client_writable,
                                            .on_close = client_close};
    dn_stream_set_callbacks(s, &cbs, p);
    uint8_t hdr[8];
    for (int i = 0; i < 8; i++)
        hdr[i] = (uint8_t)(p->download >> (56 - 8 * i));
    if (dn_stream_write(s, hdr, sizeof hdr) < 0) {
        dn_stream_reset(s);
        return;
    }
    client_writable(s, p);
}

int dn_perf_run(dn_conn *c, uint64_t upload, uint64_t download, dn_perf_done_cb cb, void *arg)
{
    perf_client *p = calloc(1, sizeof *p);
    if (!p)
        return DN_ENOMEM;
    p->upload_left = upload;
    p->download = download;
    p->cb = cb;
    p->arg = arg;
    p->start = uv_hrtime();
    int rc = dn_conn_open_stream(c, DN_PERF_PROTOCOL, client_opened, p);
    if (rc)
        free(p);
    return rc;
}
