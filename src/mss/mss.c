/* mss — multistream-select 1.0, dialer and listener, sans-I/O.
 *
 * Spec: libp2p/specs connections/README.md "Protocol Negotiation" and the
 * multiformats/multistream-select README. Every message is
 * uvarint(len) + bytes + '\n' where len counts the '\n'. Both sides first
 * send "/multistream/1.0.0"; the dialer then proposes protocols one by one
 * and the listener echoes the one it accepts or answers "na".
 *
 * Choices of this implementation (all allowed by the spec):
 * - The dialer writes the header and its first proposal in one go.
 * - Messages longer than DN_MSS_MAX_MSG (length byte count, '\n' included)
 *   are refused with DN_ETOOBIG before any of the body is buffered; the
 *   length varint must be minimal (multiformats unsigned-varint rules).
 * - An empty message, one without its final '\n' and a first message other
 *   than the header are DN_EPROTO.
 * - The listener answers "ls" with "na" (listing is optional and leaks
 *   what we run); "ls" counts against the DN_MSS_MAX_NA "na" answers after
 *   which the listener fails with DN_ENEGOTIATE.
 * - After an error the object refuses further input with DN_ESTATE. */
#include "mss/mss.h"

#include <string.h>

#include "dmsnet/error.h"

static const char msg_na[] = "na";
static const char msg_ls[] = "ls";

/* Append one message: uvarint(n + 1), the bytes, '\n'. */
static int put_msg(dn_buf *out, const char *s, size_t n)
{
    int rc = dn_buf_reserve(out, 2 + n + 1);
    if (rc)
        return rc;
    rc = dn_buf_append_uvarint(out, n + 1);
    if (!rc)
        rc = dn_buf_append(out, s, n);
    if (!rc)
        rc = dn_buf_append_byte(out, '\n');
    return rc;
}

static bool msg_is(const uint8_t *msg, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(msg, s, n) == 0;
}

static void init(dn_mss *m, bool dialer, const char *const *protos, size_t nprotos)
{
    memset(m, 0, sizeof *m);
    m->dialer = dialer;
    m->protos = protos;
    m->nprotos = nprotos;
    m->selected = -1;
}

void dn_mss_init_dialer(dn_mss *m, const char *const *protos, size_t nprotos)
{
    init(m, true, protos, nprotos);
}

void dn_mss_init_listener(dn_mss *m, const char *const *protos, size_t nprotos)
{
    init(m, false, protos, nprotos);
}

int dn_mss_start(dn_mss *m, dn_buf *out)
{
    if (m->nprotos > DN_MSS_MAX_PROTOS || (m->nprotos > 0 && !m->protos))
        return DN_EINVAL;
    if (m->dialer && m->nprotos == 0)
        return DN_EINVAL;
    /* Our own ids must be sendable and receivable under the same bound we
     * apply to the peer. */
    for (size_t i = 0; i < m->nprotos; i++) {
        const char *p = m->protos[i];
        if (!p && !m->dialer)
            continue; /* a protocol the listener no longer serves */
        if (!p || p[0] == '\0' || strlen(p) + 1 > DN_MSS_MAX_MSG || strchr(p, '\n'))
            return DN_EINVAL;
    }
    if (!m->dialer)
        return 0; /* the listener answers the dialer's header: see dn_mss_feed */
    size_t mark = out->len;
    int rc = put_msg(out, DN_MSS_PROTOCOL, strlen(DN_MSS_PROTOCOL));
    if (!rc)
        rc = put_msg(out, m->protos[0], strlen(m->protos[0]));
    if (rc)
        out->len = mark;
    return rc;
}

/* Collect one message from in[*pos..len) into m->partial, across calls.
 * Returns 1 with *msg / *mlen (the text without its '\n', pointing into
 * m->partial, valid until the next call) when one is complete, 0 when all
 * input was taken and more is needed, or an error. Only the bytes of the
 * current message are taken, so *pos is exact when a message completes. */
static int read_msg(dn_mss *m, const uint8_t *in, size_t len, size_t *pos, const uint8_t **msg,
                    size_t *mlen)
{
    if (!m->header_seen) {
        /* The first message can only be the header: check each byte as it
         * comes, so a peer speaking something else (or a pnet peer with
         * another key, whose bytes decrypt to noise) fails at once instead
         * of holding the connection until the handshake deadline. */
        static const char header[] = "\x13" DN_MSS_PROTOCOL "\n";
        size_t hlen = sizeof header - 1;
        for (size_t k = 0; m->partial_len + k < hlen && *pos + k < len; k++)
            if (in[*pos + k] != (uint8_t)header[m->partial_len + k])
                return DN_EPROTO;
    }
    /* DN_MSS_MAX_MSG < 2^14, so a valid length takes one or two varint bytes. */
    while (m->partial_len == 0 || (m->partial_len == 1 && (m->partial[0] & 0x80))) {
        if (*pos >= len)
            return 0;
        uint8_t b = in[(*pos)++];
        m->partial[m->partial_len++] = b;
        if (m->partial_len == 1) {
            /* 0: nothing at all; 1: either a bare "\n" (empty) or one byte
             * without the '\n'. Both break the message rule. */
            if (!(b & 0x80) && b < 2)
                return DN_EPROTO;
        } else {
            if (b & 0x80)
                return DN_ETOOBIG; /* three or more varint bytes: >= 16384 */
            if (b == 0)
                return DN_EPROTO; /* non-minimal varint */
            size_t l = (size_t)(m->partial[0] & 0x7f) | (size_t)b << 7;
            if (l > DN_MSS_MAX_MSG)
                return DN_ETOOBIG;
        }
    }
    size_t vlen = (m->partial[0] & 0x80) ? 2 : 1;
    size_t l =
        vlen == 1 ? m->partial[0] : ((size_t)(m->partial[0] & 0x7f) | (size_t)m->partial[1] << 7);
    size_t have = m->partial_len - vlen;
    size_t need = l - have;
    size_t avail = len - *pos;
    size_t take = need < avail ? need : avail;
    if (take > 0) {
        memcpy(m->partial + m->partial_len, in + *pos, take);
        m->partial_len += take;
        *pos += take;
    }
    if (take < need)
        return 0;
    const uint8_t *body = m->partial + vlen;
    m->partial_len = 0;
    if (body[l - 1] != '\n')
        return DN_EPROTO;
    *msg = body;
    *mlen = l - 1;
    return 1;
}

/* Dialer: the listener answers our proposal protos[next]. */
static int dialer_msg(dn_mss *m, const uint8_t *msg, size_t n, dn_buf *out)
{
    if (msg_is(msg, n, m->protos[m->next])) {
        m->selected = (int)m->next;
        m->done = true;
        return DN_MSS_DONE;
    }
    if (!msg_is(msg, n, msg_na))
        return DN_EPROTO; /* neither our proposal echoed nor "na" */
    m->next++;
    if (m->next >= m->nprotos)
        return DN_ENEGOTIATE;
    return put_msg(out, m->protos[m->next], strlen(m->protos[m->next]));
}

/* Listener: the dialer proposes a protocol (or asks "ls"). */
static int listener_msg(dn_mss *m, const uint8_t *msg, size_t n, dn_buf *out)
{
    if (!msg_is(msg, n, msg_ls)) {
        for (size_t i = 0; i < m->nprotos; i++) {
            if (m->protos[i] && msg_is(msg, n, m->protos[i])) {
                int rc = put_msg(out, m->protos[i], n);
                if (rc)
                    return rc;
                m->selected = (int)i;
                m->done = true;
                return DN_MSS_DONE;
            }
        }
    }
    if (m->na_count >= DN_MSS_MAX_NA)
        return DN_ENEGOTIATE;
    m->na_count++;
    return put_msg(out, msg_na, strlen(msg_na));
}

int dn_mss_feed(dn_mss *m, const uint8_t *in, size_t len, size_t *consumed, dn_buf *out)
{
    *consumed = 0;
    if (m->done)
        return m->selected >= 0 ? DN_MSS_DONE : DN_ESTATE;
    if ((!in && len > 0) || m->nprotos > DN_MSS_MAX_PROTOS || (m->dialer && m->nprotos == 0))
        return DN_EINVAL;
    size_t pos = 0;
    int rc;
    for (;;) {
        const uint8_t *msg = NULL;
        size_t n = 0;
        rc = read_msg(m, in, len, &pos, &msg, &n);
        if (rc <= 0)
            break;
        if (!m->header_seen) {
            /* The first message must be the multistream header (spec: "If
             * either side receives anything other than the multistream
             * protocol id as the first message, they abort"). */
            if (!msg_is(msg, n, DN_MSS_PROTOCOL)) {
                rc = DN_EPROTO;
                break;
            }
            m->header_seen = true;
            /* The listener sends its header now, in the same write as its
             * answer to the first proposal, not on its own when the
             * connection opens: one segment and one wake-up fewer per
             * negotiation. It cannot deadlock: a dialer sends its header
             * without waiting for ours (the spec's examples show the
             * listener answering; go, rust and js dialers all do). */
            if (!m->dialer && (rc = put_msg(out, DN_MSS_PROTOCOL, strlen(DN_MSS_PROTOCOL))))
                break;
            continue;
        }
        rc = m->dialer ? dialer_msg(m, msg, n, out) : listener_msg(m, msg, n, out);
        if (rc != 0)
            break;
    }
    *consumed = pos;
    if (rc < 0) {
        m->done = true;
        m->selected = -1;
        m->partial_len = 0;
    }
    return rc;
}

const char *dn_mss_selected(const dn_mss *m)
{
    if (!m->done || m->selected < 0 || (size_t)m->selected >= m->nprotos)
        return NULL;
    return m->protos[m->selected];
}
