/* identify (/ipfs/id/1.0.0) and identify push (/ipfs/id/push/1.0.0),
 * identify spec. Messages are uvarint-length-prefixed Identify protobufs:
 * publicKey 1, listenAddrs 2, protocols 3, observedAddr 4,
 * protocolVersion 5, agentVersion 6, signedPeerRecord 8. The reader takes
 * every message until EOF and merges them (go-libp2p may send two). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"
#include "host/host_internal.h"
#include "proto/identify_msg.h"
#include "proto/peer_record.h"

#define IDENTIFY_PROTOCOL_VERSION "ipfs/0.1.0"
/* Bound on all identify bytes from one peer on one stream. */
#define IDENTIFY_MAX_BYTES (64u * 1024u)
#define MAX_ADVERTISED 32

/* Our listen addresses as others can use them: an unspecified bind
 * address (0.0.0.0, ::) becomes one address per local interface. */
static size_t advertised_addrs(dn_host *h, dn_multiaddr *out, size_t max)
{
    dn_multiaddr bound[DN_HOST_MAX_LISTENERS];
    size_t nb = dn_host_listen_addrs(h, bound, DN_HOST_MAX_LISTENERS), n = 0;
    uv_interface_address_t *ifs = NULL;
    int nifs = -1; /* listed on first need: it costs a netlink dump */
    for (size_t i = 0; i < nb && n < max; i++) {
        size_t off = 0;
        dn_ma_component ip, port;
        if (dn_multiaddr_next(&bound[i], &off, &ip) != 1 ||
            dn_multiaddr_next(&bound[i], &off, &port) != 1)
            continue;
        static const uint8_t zero[16];
        bool unspecified = memcmp(ip.value, zero, ip.value_len) == 0;
        if (!unspecified) {
            out[n++] = bound[i];
            continue;
        }
        if (nifs < 0 && uv_interface_addresses(&ifs, &nifs) != 0)
            nifs = 0;
        for (int k = 0; k < nifs && n < max; k++) {
            const struct sockaddr *sa = (const struct sockaddr *)&ifs[k].address;
            dn_multiaddr *m = &out[n];
            m->len = 0;
            if (ip.code == DN_MA_IP4 && sa->sa_family == AF_INET)
                dn_multiaddr_append(m, DN_MA_IP4,
                                    (const uint8_t *)&ifs[k].address.address4.sin_addr, 4);
            else if (ip.code == DN_MA_IP6 && sa->sa_family == AF_INET6 &&
                     ifs[k].address.address6.sin6_scope_id == 0)
                dn_multiaddr_append(m, DN_MA_IP6,
                                    (const uint8_t *)&ifs[k].address.address6.sin6_addr, 16);
            else
                continue;
            dn_multiaddr_append(m, DN_MA_TCP, port.value, port.value_len);
            n++;
        }
    }
    if (ifs)
        uv_free_interface_addresses(ifs, nifs);
    return n;
}

/* Our signed peer record for these addresses, from the cache when they are
 * unchanged (signing costs more than the rest of identify). */
static int sealed_record(dn_host *h, const dn_multiaddr *addrs, size_t naddrs, const dn_buf **out)
{
    dn_buf key = DN_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; !rc && i < naddrs; i++) {
        rc = dn_buf_append_uvarint(&key, addrs[i].len); /* length-prefixed: unambiguous */
        if (!rc)
            rc = dn_buf_append(&key, addrs[i].bytes, addrs[i].len);
    }
    bool same = !rc && h->record.len && key.len == h->record_addrs.len &&
                (key.len == 0 || memcmp(key.data, h->record_addrs.data, key.len) == 0);
    if (!rc && !same) {
        if (h->record.len)
            h->identify_seq++; /* new content needs a new sequence number */
        dn_buf_reset(&h->record);
        rc = dn__peer_record_seal(h->identity, h->identify_seq, addrs, naddrs, &h->record);
        if (!rc) {
            dn_buf t = h->record_addrs;
            h->record_addrs = key;
            key = t;
        } else {
            dn_buf_reset(&h->record);
        }
    }
    dn_buf_free(&key);
    *out = &h->record;
    return rc;
}

static int build_identify(dn_host *h, dn_conn *c, dn_buf *out)
{
    dn_buf msg = DN_BUF_INIT, pub = DN_BUF_INIT;
    const dn_buf *rec = NULL;
    dn_multiaddr addrs[MAX_ADVERTISED];
    size_t naddrs = advertised_addrs(h, addrs, MAX_ADVERTISED);
    int rc = dn_pubkey_to_protobuf(dn_privkey_public(h->identity), &pub);
    if (!rc)
        rc = dn_pb_put_bytes(&msg, 1, pub.data, pub.len);
    for (size_t i = 0; !rc && i < naddrs; i++)
        rc = dn_pb_put_bytes(&msg, 2, addrs[i].bytes, addrs[i].len);
    for (size_t i = 0; !rc && i < h->nhandlers; i++)
        rc = dn_pb_put_string(&msg, 3, h->handlers[i].protocol);
    if (!rc && c->remote_addr.len)
        rc = dn_pb_put_bytes(&msg, 4, c->remote_addr.bytes, c->remote_addr.len);
    if (!rc)
        rc = dn_pb_put_string(&msg, 5, IDENTIFY_PROTOCOL_VERSION);
    if (!rc)
        rc = dn_pb_put_string(&msg, 6, h->agent_version);
    if (!rc)
        rc = sealed_record(h, addrs, naddrs, &rec);
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
static int apply_identify(dn_host *h, dn_conn *c, const uint8_t *p, size_t len)
{
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
    dn_peer_info *info = dn__peerstore_get(&h->peers, &c->remote, true);
    if (!info) {
        rc = DN_ENOMEM;
        goto out;
    }
    /* Identify must not contradict the handshake. The handshake verified
     * the remote's key; matching its peer id from the bytes suffices (no
     * key parse: that costs ~0.3 ms for RSA, per message). */
    if (m->has_public_key &&
        !dn__key_bytes_match_peer(m->public_key, m->public_key_len, &c->remote)) {
        rc = DN_EPEERID;
        goto out;
    }
    if (m->has_signed_record) {
        /* Only the remote's own record: its key is checked against the
         * remote's peer id before any signature work. */
        int vrc = dn__peer_record_open(m->signed_record, m->signed_record_len, &c->remote,
                                       &h->vcache, &rec);
        if (vrc == 0) {
            have_record = true;
        } else {
            char name[16];
            DN_WARN("identify", "ignoring invalid signed peer record from %s: %s",
                    dn_peerid_short(&c->remote, name), dn_strerror(vrc));
        }
    }
    if (m->has_protocols &&
        (rc = dn__peer_set_strings(&info->protocols, &info->nprotocols,
                                   (const char *const *)m->protocols, m->nprotocols)))
        goto out;
    /* A verified record is the authoritative address list (identify spec,
     * signedPeerRecord). */
    const dn_multiaddr *addrs = m->listen_addrs;
    size_t naddrs = m->nlisten_addrs;
    bool have_addrs = m->has_listen_addrs;
    if (have_record) {
        have_addrs = true;
        addrs = rec.addrs;
        naddrs = rec.naddrs < DN_PEER_MAX_ADDRS ? rec.naddrs : DN_PEER_MAX_ADDRS;
    }
    if (naddrs > DN_PEER_MAX_ADDRS)
        naddrs = DN_PEER_MAX_ADDRS;
    if (have_addrs) {
        dn_multiaddr *copy = malloc((naddrs ? naddrs : 1) * sizeof *copy);
        if (!copy) {
            rc = DN_ENOMEM;
            goto out;
        }
        memcpy(copy, addrs, naddrs * sizeof *copy);
        free(info->listen_addrs);
        info->listen_addrs = copy;
        info->naddrs = naddrs;
    }
    if (m->has_agent_version)
        snprintf(info->agent_version, sizeof info->agent_version, "%s", m->agent_version);
    if (m->has_protocol_version)
        snprintf(info->protocol_version, sizeof info->protocol_version, "%s", m->protocol_version);
    if (m->has_observed_addr)
        info->observed_addr = m->observed_addr;
    if (c->remote_key)
        dn__peer_set_key(info, c->remote_key);
out:
    dn__identify_msg_free(m);
    free(m);
    return rc;
}

/* ---- reading identify messages (client side and push handler) ---- */

typedef struct id_reader {
    dn_host *h;
    dn_conn *c;
    dn_buf buf;
    bool push;
} id_reader;

static void reader_data(dn_stream *s, const uint8_t *data, size_t len, void *arg)
{
    id_reader *r = arg;
    if (r->buf.len + len > IDENTIFY_MAX_BYTES || dn_buf_append(&r->buf, data, len)) {
        char name[16];
        DN_WARN("identify", "identify from %s exceeds %u bytes: resetting",
                dn_peerid_short(&r->c->remote, name), IDENTIFY_MAX_BYTES);
        dn_stream_reset(s);
    }
}

static void reader_eof(dn_stream *s, void *arg)
{
    id_reader *r = arg;
    size_t off = 0;
    int rc = 0;
    while (off < r->buf.len) {
        uint64_t mlen;
        int n = dn_uvarint_decode(r->buf.data + off, r->buf.len - off, &mlen);
        if (n < 0 || mlen > r->buf.len - off - (size_t)n) {
            rc = DN_EMALFORMED;
            break;
        }
        off += (size_t)n;
        rc = apply_identify(r->h, r->c, r->buf.data + off, (size_t)mlen);
        if (rc)
            break;
        off += (size_t)mlen;
    }
    char name[16];
    if (rc) {
        DN_WARN("identify", "bad identify from %s: %s", dn_peerid_short(&r->c->remote, name),
                dn_strerror(rc));
        dn_stream_reset(s);
        return;
    }
    dn_peer_info *info = dn__peerstore_get(&r->h->peers, &r->c->remote, false);
    if (info)
        info->identified = true;
    if (dn_log_get_level() <= DN_LOG_DEBUG) {
        /* The agent is the peer's text: escaped, it cannot forge a line. */
        char agent[DN_ESCAPE_MAX(64)];
        if (info)
            dn_escape_text(info->agent_version, strlen(info->agent_version), agent, sizeof agent);
        DN_DEBUG("identify", "%s %s: agent '%s', %zu protocols, %zu addresses",
                 r->push ? "push from" : "identified", dn_peerid_short(&r->c->remote, name),
                 info ? agent : "", info ? info->nprotocols : 0, info ? info->naddrs : 0);
    }
    dn_stream_close_write(s);
    if (!r->push && !r->c->identified) {
        r->c->identified = true;
        dn__host_emit(r->h, r->c, DN_CONN_EV_IDENTIFIED, 0);
    }
}

static void reader_close(dn_stream *s, int status, void *arg)
{
    id_reader *r = arg;
    dn_buf_free(&r->buf);
    free(r);
}

static const dn_stream_callbacks reader_cbs = {
    .on_data = reader_data, .on_eof = reader_eof, .on_close = reader_close};

static id_reader *reader_new(dn_host *h, dn_conn *c, bool push)
{
    id_reader *r = calloc(1, sizeof *r);
    if (r) {
        r->h = h;
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
        DN_DEBUG("identify", "cannot identify %s: %s", dn_peerid_short(&r->c->remote, name),
                 dn_strerror(status));
        free(r);
        return;
    }
    dn_stream_set_callbacks(s, &reader_cbs, r);
    /* We only read; say so at once. */
    dn_stream_close_write(s);
}

void dn__identify_start(dn_host *h, dn_conn *c)
{
    id_reader *r = reader_new(h, c, false);
    if (!r)
        return;
    if (dn_conn_open_stream(c, DN_IDENTIFY_PROTOCOL, identify_opened, r) < 0)
        free(r);
}

/* ---- serving ---- */

static void serve_identify(dn_host *h, dn_stream *s, void *arg)
{
    dn_buf out = DN_BUF_INIT;
    int rc = build_identify(h, dn_stream_conn(s), &out);
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

static void serve_push(dn_host *h, dn_stream *s, void *arg)
{
    id_reader *r = reader_new(h, dn_stream_conn(s), true);
    if (!r) {
        dn_stream_reset(s);
        return;
    }
    dn_stream_set_callbacks(s, &reader_cbs, r);
}

int dn__identify_register(dn_host *h)
{
    int rc = dn_host_set_handler(h, DN_IDENTIFY_PROTOCOL, serve_identify, NULL);
    return rc ? rc : dn_host_set_handler(h, DN_IDENTIFY_PUSH_PROTOCOL, serve_push, NULL);
}

/* ---- push: tell connected peers that our addresses or protocols changed ---- */

static void push_opened(dn_stream *s, int status, void *arg)
{
    if (status)
        return;
    dn_buf out = DN_BUF_INIT;
    dn_conn *c = dn_stream_conn(s);
    int rc = build_identify(c->host, c, &out);
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

void dn_host_identify_push(dn_host *h)
{
    dn_buf_reset(&h->record); /* re-sign with a new sequence number */
    h->identify_seq++;
    for (dn_conn *c = h->conns; c; c = c->next) {
        if (c->phase != PH_OPEN || c->failed)
            continue;
        dn_peer_info *info = dn__peerstore_get(&h->peers, &c->remote, false);
        bool supports = false;
        for (size_t i = 0; info && i < info->nprotocols; i++)
            if (strcmp(info->protocols[i], DN_IDENTIFY_PUSH_PROTOCOL) == 0)
                supports = true;
        if (supports)
            dn_conn_open_stream(c, DN_IDENTIFY_PUSH_PROTOCOL, push_opened, NULL);
    }
}
