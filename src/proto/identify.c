/* identify (/ipfs/id/1.0.0) and identify push (/ipfs/id/push/1.0.0),
 * identify spec. Messages are uvarint-length-prefixed Identify protobufs:
 * publicKey 1, listenAddrs 2, protocols 3, observedAddr 4,
 * protocolVersion 5, agentVersion 6, signedPeerRecord 8. The reader takes
 * every message until EOF and merges them (go-libp2p may send two).
 *
 * A service on the host's public API: it identifies each new connection,
 * writes what it learns into the host's peerstore (dn_host_peer_update),
 * and pushes our addresses and protocols when the host reports a change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pb.h"
#include "crypto/verify_cache.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "dmsnet/protocols.h"
#include "proto/identify_msg.h"
#include "proto/peer_record.h"

#define IDENTIFY_PROTOCOL_VERSION "ipfs/0.1.0"
/* Bound on all identify bytes from one peer on one stream. */
#define IDENTIFY_MAX_BYTES (64u * 1024u)
#define MAX_ADVERTISED 32
#define MAX_LISTEN 16
#define MAX_PROTOCOLS 128
#define MAX_STRING 256
#define MAX_PUSH_READERS 128
#define MAX_MESSAGES 4 /* identify messages per stream */

typedef struct identify_svc {
    dn_host *h;
    uint64_t seq; /* signed peer record sequence number */
    /* The signed peer record is signed once per address set, not per
     * connection: the addresses it covers and the sealed envelope. */
    dn_buf record_addrs;
    dn_buf record;
    /* Peer records already verified (each peer's is the same on every
     * connection until its addresses change). */
    dn_verify_cache vcache;
    struct id_reader *push_head, *push_tail; /* push streams still arriving */
    size_t npush;
} identify_svc;

/* Our signed peer record for these addresses, from the cache when they are
 * unchanged (signing costs more than the rest of identify). */
static int sealed_record(identify_svc *svc, const dn_multiaddr *addrs, size_t naddrs,
                         const dn_buf **out)
{
    dn_buf key = DN_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; !rc && i < naddrs; i++) {
        rc = dn_buf_append_uvarint(&key, addrs[i].len); /* length-prefixed: unambiguous */
        if (!rc)
            rc = dn_buf_append(&key, addrs[i].bytes, addrs[i].len);
    }
    bool same = !rc && svc->record.len && key.len == svc->record_addrs.len &&
                (key.len == 0 || memcmp(key.data, svc->record_addrs.data, key.len) == 0);
    if (!rc && !same) {
        if (svc->record.len)
            svc->seq++; /* new content needs a new sequence number */
        dn_buf_reset(&svc->record);
        rc = dn__peer_record_seal(dn_host_identity(svc->h), svc->seq, addrs, naddrs,
                                  &svc->record);
        if (!rc) {
            dn_buf t = svc->record_addrs;
            svc->record_addrs = key;
            key = t;
        } else {
            dn_buf_reset(&svc->record);
        }
    }
    dn_buf_free(&key);
    *out = &svc->record;
    return rc;
}

static int build_identify(identify_svc *svc, dn_conn *c, dn_buf *out)
{
    dn_host *h = svc->h;
    dn_buf msg = DN_BUF_INIT, pub = DN_BUF_INIT;
    const dn_buf *rec = NULL;
    dn_multiaddr addrs[MAX_ADVERTISED];
    size_t naddrs = dn_host_dialable_addrs(h, addrs, MAX_ADVERTISED);
    const char *protos[MAX_PROTOCOLS];
    size_t nprotos = dn_host_protocols(h, protos, MAX_PROTOCOLS);
    if (nprotos > MAX_PROTOCOLS)
        nprotos = MAX_PROTOCOLS;
    const dn_multiaddr *observed = dn_conn_remote_addr(c);
    int rc = dn_pubkey_to_protobuf(dn_privkey_public(dn_host_identity(h)), &pub);
    if (!rc)
        rc = dn_pb_put_bytes(&msg, 1, pub.data, pub.len);
    for (size_t i = 0; !rc && i < naddrs; i++)
        rc = dn_pb_put_bytes(&msg, 2, addrs[i].bytes, addrs[i].len);
    for (size_t i = 0; !rc && i < nprotos; i++)
        rc = dn_pb_put_string(&msg, 3, protos[i]);
    if (!rc && observed->len)
        rc = dn_pb_put_bytes(&msg, 4, observed->bytes, observed->len);
    if (!rc)
        rc = dn_pb_put_string(&msg, 5, IDENTIFY_PROTOCOL_VERSION);
    if (!rc)
        rc = dn_pb_put_string(&msg, 6, dn_host_agent_version(h));
    if (!rc)
        rc = sealed_record(svc, addrs, naddrs, &rec);
    if (!rc)
        rc = dn_pb_put_bytes(&msg, 8, rec->data, rec->len);
    if (!rc)
        rc = dn_buf_append_uvarint(out, msg.len);
    if (!rc)
        rc = dn_buf_append(out, msg.data, msg.len);
    dn_buf_free(&msg);
    dn_buf_free(&pub);
    return rc;
}

/* Merge one Identify message into the peerstore entry of the remote. The
 * message is decoded whole first (proto/identify_msg.c, bounded), so a bad
 * one changes nothing. */
static int apply_identify(identify_svc *svc, dn_conn *c, const uint8_t *p, size_t len)
{
    const dn_peerid *remote = dn_conn_remote_peer(c);
    dn_peer_record rec;
    bool have_record = false;
    /* Heap, not stack: the decoded message holds 32 multiaddrs (~33 KiB). */
    dn__identify_msg *m = malloc(sizeof *m);
    if (!m)
        return DN_ENOMEM;
    int rc = dn__identify_decode(p, len, m);
    if (rc) {
        free(m);
        return rc;
    }
    /* Identify must not contradict the handshake. The handshake verified
     * the remote's key; matching its peer id from the bytes suffices (no
     * key parse: that costs ~0.3 ms for RSA, per message). */
    if (m->has_public_key && !dn__key_bytes_match_peer(m->public_key, m->public_key_len, remote)) {
        rc = DN_EPEERID;
        goto out;
    }
    if (m->has_signed_record) {
        /* Only the remote's own record: its key is checked against the
         * remote's peer id before any signature work. */
        int vrc = dn__peer_record_open(m->signed_record, m->signed_record_len, remote,
                                       &svc->vcache, &rec);
        if (vrc == 0) {
            have_record = true;
        } else {
            char name[16];
            DN_LOG_LIMITED(DN_LOG_WARN, "identify",
                           "ignoring invalid signed peer record from %s: %s",
                           dn_peerid_short(remote, name), dn_strerror(vrc));
        }
    }
    dn_peer_update u = {
        .public_key = dn_conn_remote_pubkey(c),
        .agent_version = m->has_agent_version ? m->agent_version : NULL,
        .protocol_version = m->has_protocol_version ? m->protocol_version : NULL,
        .set_protocols = m->has_protocols,
        .protocols = (const char *const *)m->protocols,
        .nprotocols = m->nprotocols,
        /* A verified record is the authoritative address list (identify
         * spec, signedPeerRecord). */
        .set_addrs = m->has_listen_addrs || have_record,
        .addrs = have_record ? rec.addrs : m->listen_addrs,
        .naddrs = have_record ? rec.naddrs : m->nlisten_addrs,
        .observed_addr = m->has_observed_addr ? &m->observed_addr : NULL,
    };
    rc = dn_host_peer_update(svc->h, remote, &u);
out:
    dn__identify_msg_free(m);
    free(m);
    return rc;
}

/* ---- reading identify messages (client side and push handler) ---- */

typedef struct id_reader {
    identify_svc *svc;
    dn_conn *c;
    dn_stream *s;
    dn_buf buf;
    bool push;
    struct id_reader *prev, *next; /* svc->push_head list (push readers), oldest first */
} id_reader;

static void push_unlink(id_reader *r)
{
    identify_svc *svc = r->svc;
    if (r->prev)
        r->prev->next = r->next;
    else if (svc->push_head == r)
        svc->push_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else if (svc->push_tail == r)
        svc->push_tail = r->prev;
    r->prev = r->next = NULL;
    svc->npush--;
}

static void reader_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    id_reader *r = arg;
    if (r->buf.len + len > IDENTIFY_MAX_BYTES || dn_buf_append(&r->buf, data, len)) {
        char name[16];
        DN_LOG_LIMITED(DN_LOG_WARN, "identify", "identify from %s exceeds %u bytes: resetting",
                       dn_peerid_short(dn_conn_remote_peer(r->c), name), IDENTIFY_MAX_BYTES);
        dn_stream_reset(s);
    }
}

static void reader_eof(dn_stream *s, void *arg)
{
    id_reader *r = arg;
    size_t off = 0;
    int rc = 0;
    /* go-libp2p splits a large identify into two messages; more than a
     * few on one stream is abuse (each may carry a record to verify). */
    for (unsigned nmsg = 0; off < r->buf.len; nmsg++) {
        if (nmsg == MAX_MESSAGES) {
            rc = DN_ELIMIT;
            break;
        }
        uint64_t mlen;
        int n = dn_uvarint_decode(r->buf.data + off, r->buf.len - off, &mlen);
        if (n < 0 || mlen > r->buf.len - off - (size_t)n) {
            rc = DN_EMALFORMED;
            break;
        }
        off += (size_t)n;
        rc = apply_identify(r->svc, r->c, r->buf.data + off, (size_t)mlen);
        if (rc)
            break;
        off += (size_t)mlen;
    }
    char name[16];
    dn_host *h = r->svc->h;
    const dn_peerid *remote = dn_conn_remote_peer(r->c);
    if (rc) {
        DN_LOG_LIMITED(DN_LOG_WARN, "identify", "bad identify from %s: %s",
                       dn_peerid_short(remote, name), dn_strerror(rc));
        dn_stream_reset(s);
        return;
    }
    dn_peer_update mark = {.identified = true};
    dn_host_peer_update(h, remote, &mark);
    const dn_peer_info *info = dn_host_peer(h, remote);
    if (dn_log_get_level() <= DN_LOG_DEBUG) {
        /* The agent is the peer's text: escaped, it cannot forge a line. */
        char agent[DN_ESCAPE_MAX(64)] = "";
        if (info)
            dn_escape_text(info->agent_version, strlen(info->agent_version), agent, sizeof agent);
        DN_DEBUG("identify", "%s %s: agent '%s', %zu protocols, %zu addresses",
                 r->push ? "push from" : "identified", dn_peerid_short(remote, name), agent,
                 info ? info->nprotocols : 0, info ? info->naddrs : 0);
    }
    dn_stream_close_write(s);
    /* One identify stream per connection; a push says the peer changed. */
    dn_host_emit(h, r->c, r->push ? DN_CONN_EV_PUSHED : DN_CONN_EV_IDENTIFIED, 0);
}

static void reader_close(dn_stream *s, int status, void *arg)
{
    id_reader *r = arg;
    if (r->push)
        push_unlink(r);
    dn_buf_free(&r->buf);
    free(r);
}

static const dn_stream_callbacks reader_cbs = {
    .on_data = reader_data, .on_eof = reader_eof, .on_close = reader_close};

static id_reader *reader_new(identify_svc *svc, dn_conn *c, bool push)
{
    id_reader *r = calloc(1, sizeof *r);
    if (r) {
        r->svc = svc;
        r->c = c;
        r->push = push;
    }
    return r;
}

static void identify_opened(dn_stream *s, int status, void *arg)
{
    id_reader *r = arg;
    if (status) {
        char name[16];
        DN_DEBUG("identify", "cannot identify %s: %s",
                 dn_peerid_short(dn_conn_remote_peer(r->c), name), dn_strerror(status));
        free(r);
        return;
    }
    dn_stream_set_callbacks(s, &reader_cbs, r);
    /* We only read; say so at once. */
    dn_stream_close_write(s);
}

static void identify_start(identify_svc *svc, dn_conn *c)
{
    id_reader *r = reader_new(svc, c, false);
    if (!r)
        return;
    if (dn_conn_open_stream(c, DN_IDENTIFY_PROTOCOL, identify_opened, r) < 0)
        free(r);
}

/* ---- serving ---- */

static void serve_identify(dn_host *h, dn_stream *s, void *arg)
{
    dn_buf out = DN_BUF_INIT;
    int rc = build_identify(arg, dn_stream_conn(s), &out);
    if (!rc)
        rc = dn_stream_write(s, out.data, out.len);
    dn_buf_free(&out);
    if (rc) {
        DN_WARN("identify", "cannot answer identify: %s", dn_strerror(rc));
        dn_stream_reset(s);
        return;
    }
    static const dn_stream_callbacks none = {0};
    dn_stream_set_callbacks(s, &none, NULL);
    dn_stream_close_write(s);
}

/* Push streams are bounded: one at a time per connection (a newer push
 * replaces an older one still arriving: its content is newer) and
 * MAX_PUSH_READERS on the whole node (the oldest makes room), each holding
 * at most IDENTIFY_MAX_BYTES until its EOF. */
static void serve_push(dn_host *h, dn_stream *s, void *arg)
{
    identify_svc *svc = arg;
    dn_conn *c = dn_stream_conn(s);
    for (id_reader *o = svc->push_head; o; o = o->next) {
        if (o->c == c) {
            dn_stream_reset(o->s); /* its on_close unlinks it */
            break;
        }
    }
    if (svc->npush >= MAX_PUSH_READERS && svc->push_head)
        dn_stream_reset(svc->push_head->s);
    id_reader *r = reader_new(svc, c, true);
    if (!r) {
        dn_stream_reset(s);
        return;
    }
    r->s = s;
    r->prev = svc->push_tail;
    if (svc->push_tail)
        svc->push_tail->next = r;
    else
        svc->push_head = r;
    svc->push_tail = r;
    svc->npush++;
    dn_stream_set_callbacks(s, &reader_cbs, r);
}

/* ---- push: tell connected peers that our addresses or protocols changed ---- */

static void push_opened(dn_stream *s, int status, void *arg)
{
    if (status)
        return;
    dn_buf out = DN_BUF_INIT;
    int rc = build_identify(arg, dn_stream_conn(s), &out);
    if (!rc)
        rc = dn_stream_write(s, out.data, out.len);
    dn_buf_free(&out);
    if (rc) {
        dn_stream_reset(s);
        return;
    }
    static const dn_stream_callbacks none = {0};
    dn_stream_set_callbacks(s, &none, NULL);
    dn_stream_close_write(s);
}

static void push_to(dn_conn *c, void *arg)
{
    identify_svc *svc = arg;
    const dn_peer_info *info = dn_host_peer(svc->h, dn_conn_remote_peer(c));
    for (size_t i = 0; info && i < info->nprotocols; i++) {
        if (strcmp(info->protocols[i], DN_IDENTIFY_PUSH_PROTOCOL) == 0) {
            dn_conn_open_stream(c, DN_IDENTIFY_PUSH_PROTOCOL, push_opened, svc);
            return;
        }
    }
}

static void on_host_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    identify_svc *svc = arg;
    switch (ev) {
    case DN_CONN_EV_OPENED:
        identify_start(svc, c);
        return;
    case DN_HOST_EV_ADDRS_CHANGED:
    case DN_HOST_EV_PROTOCOLS_CHANGED:
        dn_host_foreach_conn(h, push_to, svc);
        return;
    default:
        return;
    }
}

static void identify_free(void *arg)
{
    identify_svc *svc = arg;
    dn_buf_free(&svc->record_addrs);
    dn_buf_free(&svc->record);
    free(svc);
}

int dn_identify_attach(dn_host *h)
{
    identify_svc *svc = calloc(1, sizeof *svc);
    if (!svc)
        return DN_ENOMEM;
    svc->h = h;
    dn_verify_cache_init(&svc->vcache);
    /* Peer record sequence numbers must grow across restarts: use the clock. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    svc->seq = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    int rc = dn_host_add_cleanup(h, identify_free, svc);
    if (rc) {
        identify_free(svc);
        return rc;
    }
    if ((rc = dn_host_add_observer(h, on_host_event, svc)) ||
        (rc = dn_host_set_handler(h, DN_IDENTIFY_PROTOCOL, serve_identify, svc)) ||
        (rc = dn_host_set_handler(h, DN_IDENTIFY_PUSH_PROTOCOL, serve_push, svc)))
        return rc;
    return 0;
}
