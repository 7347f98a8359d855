/* pubsub RPC codec and frame reader: see pubsub_msg.h for bounds and why. */
#include "pubsub/pubsub_msg.h"

#include <stdlib.h>
#include <string.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"

enum { RPC_SUBS = 1, RPC_PUBLISH = 2, RPC_CONTROL = 3 };
enum { SUB_SUBSCRIBE = 1, SUB_TOPIC = 2 };
enum { MSG_FROM = 1, MSG_DATA = 2, MSG_SEQNO = 3, MSG_TOPIC = 4, MSG_SIG = 5, MSG_KEY = 6 };
enum { CTL_IHAVE = 1, CTL_IWANT = 2, CTL_GRAFT = 3, CTL_PRUNE = 4, CTL_IDONTWANT = 5 };

/* Grow *arr so that index n fits; capacity doubles, never past max. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem, size_t max)
{
    if (n >= max)
        return DN_ETOOBIG;
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    if (nc > max)
        nc = max;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return DN_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

typedef struct caps {
    size_t subs, msgs, ihave, ihave_ids, iwant_ids, graft, prune, px, idw_ids;
} caps;

static dn__ps_span span(const dn_pb_field *f)
{
    return (dn__ps_span){f->bytes, f->len};
}

static int want_len(const dn_pb_field *f)
{
    return f->wire_type == DN_PB_LEN ? 0 : DN_EMALFORMED;
}

static int topic_ok(const dn_pb_field *f)
{
    if (f->len == 0)
        return DN_EMALFORMED;
    return f->len > DN_PUBSUB_TOPIC_MAX ? DN_ETOOBIG : 0;
}

static int msgid_ok(const dn_pb_field *f)
{
    if (f->len == 0)
        return DN_EMALFORMED;
    return f->len > DN_PUBSUB_MSGID_MAX ? DN_ETOOBIG : 0;
}

int dn__pubsub_message_decode(const uint8_t *p, size_t len, dn__pubsub_message *m)
{
    memset(m, 0, sizeof *m);
    m->raw = (dn__ps_span){p, len};
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number < MSG_FROM || f.number > MSG_KEY)
            continue;
        if ((rc = want_len(&f)))
            return rc;
        switch (f.number) {
        case MSG_FROM:
            m->has_from = true;
            m->from = span(&f);
            break;
        case MSG_DATA:
            m->has_data = true;
            m->data = span(&f);
            break;
        case MSG_SEQNO:
            m->has_seqno = true;
            m->seqno = span(&f);
            break;
        case MSG_TOPIC:
            if (f.len > DN_PUBSUB_TOPIC_MAX)
                return DN_ETOOBIG;
            m->topic = span(&f);
            break;
        case MSG_SIG:
            if (f.len > DN_PUBSUB_SIG_MAX)
                return DN_ETOOBIG;
            m->has_signature = true;
            m->signature = span(&f);
            break;
        case MSG_KEY:
            if (f.len > DN_PUBKEY_PB_MAX)
                return DN_ETOOBIG;
            m->has_key = true;
            m->key = span(&f);
            break;
        }
    }
    return rc;
}

static int decode_subopt(const dn_pb_field *outer, dn__pubsub_subopt *s)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    bool has_topic = false;
    memset(s, 0, sizeof *s);
    dn_pb_reader_init(&r, outer->bytes, outer->len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == SUB_SUBSCRIBE) {
            if (f.wire_type != DN_PB_VARINT)
                return DN_EMALFORMED;
            s->subscribe = f.varint != 0;
        } else if (f.number == SUB_TOPIC) {
            if ((rc = want_len(&f)) || (rc = topic_ok(&f)))
                return rc;
            s->topic = span(&f);
            has_topic = true;
        }
    }
    if (rc < 0)
        return rc;
    return has_topic ? 0 : DN_EMALFORMED;
}

/* Append every messageIDs field (number idfield) of one nested message. */
static int decode_ids(const dn_pb_field *outer, uint32_t idfield, dn__ps_span **ids, size_t *n,
                      size_t *cap, size_t max, dn__ps_span *topic)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, outer->bytes, outer->len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == idfield) {
            if ((rc = want_len(&f)) || (rc = msgid_ok(&f)))
                return rc;
            if ((rc = grow((void **)ids, cap, *n, sizeof **ids, max)))
                return rc;
            (*ids)[(*n)++] = span(&f);
        } else if (topic && f.number == 1) {
            if ((rc = want_len(&f)) || (rc = topic_ok(&f)))
                return rc;
            *topic = span(&f);
        }
    }
    if (rc < 0)
        return rc;
    return topic && !topic->p ? DN_EMALFORMED : 0;
}

static int decode_prune(const dn_pb_field *outer, dn__pubsub_rpc *o, caps *c, dn__pubsub_prune *pr)
{
    dn_pb_reader r, r2;
    dn_pb_field f, g;
    int rc;
    memset(pr, 0, sizeof *pr);
    pr->first = o->npx;
    dn_pb_reader_init(&r, outer->bytes, outer->len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number == 1) {
            if ((rc = want_len(&f)) || (rc = topic_ok(&f)))
                return rc;
            pr->topic = span(&f);
        } else if (f.number == 2) {
            if ((rc = want_len(&f)))
                return rc;
            if ((rc = grow((void **)&o->px, &c->px, o->npx, sizeof *o->px, DN_PUBSUB_MAX_PX)))
                return rc;
            dn__pubsub_px *px = &o->px[o->npx];
            memset(px, 0, sizeof *px);
            dn_pb_reader_init(&r2, f.bytes, f.len);
            while ((rc = dn_pb_next(&r2, &g)) == 1) {
                if (g.number != 1 && g.number != 2)
                    continue;
                if ((rc = want_len(&g)))
                    return rc;
                if (g.len > (g.number == 1 ? 64u : 8192u))
                    return DN_ETOOBIG; /* a peer id multihash; one signed record */
                if (g.number == 1)
                    px->peer_id = span(&g);
                else
                    px->signed_record = span(&g);
            }
            if (rc < 0)
                return rc;
            o->npx++;
            pr->count++;
        } else if (f.number == 3) {
            if (f.wire_type != DN_PB_VARINT)
                return DN_EMALFORMED;
            pr->has_backoff = true;
            pr->backoff_s = f.varint;
        }
    }
    if (rc < 0)
        return rc;
    return pr->topic.p ? 0 : DN_EMALFORMED;
}

static int decode_control(const dn_pb_field *outer, dn__pubsub_rpc *o, caps *c, size_t *nctrl)
{
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    o->has_control = true;
    dn_pb_reader_init(&r, outer->bytes, outer->len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number < CTL_IHAVE || f.number > CTL_IDONTWANT)
            continue;
        if ((rc = want_len(&f)))
            return rc;
        if (++*nctrl > DN_PUBSUB_MAX_CTRL)
            return DN_ETOOBIG;
        switch (f.number) {
        case CTL_IHAVE: {
            if ((rc = grow((void **)&o->ihave, &c->ihave, o->nihave, sizeof *o->ihave,
                           DN_PUBSUB_MAX_CTRL)))
                return rc;
            dn__pubsub_ihave *ih = &o->ihave[o->nihave];
            memset(ih, 0, sizeof *ih);
            ih->first = o->nihave_ids;
            if ((rc = decode_ids(&f, 2, &o->ihave_ids, &o->nihave_ids, &c->ihave_ids,
                                 DN_PUBSUB_MAX_IHAVE_IDS, &ih->topic)))
                return rc;
            ih->count = o->nihave_ids - ih->first;
            o->nihave++;
            break;
        }
        case CTL_IWANT:
            if ((rc = decode_ids(&f, 1, &o->iwant_ids, &o->niwant_ids, &c->iwant_ids,
                                 DN_PUBSUB_MAX_IWANT_IDS, NULL)))
                return rc;
            break;
        case CTL_IDONTWANT:
            if ((rc = decode_ids(&f, 1, &o->idontwant_ids, &o->nidontwant_ids, &c->idw_ids,
                                 DN_PUBSUB_MAX_IDONTWANT_IDS, NULL)))
                return rc;
            break;
        case CTL_GRAFT: {
            if ((rc = grow((void **)&o->graft, &c->graft, o->ngraft, sizeof *o->graft,
                           DN_PUBSUB_MAX_CTRL)))
                return rc;
            dn__ps_span t = {0};
            dn_pb_reader r2;
            dn_pb_field g;
            dn_pb_reader_init(&r2, f.bytes, f.len);
            while ((rc = dn_pb_next(&r2, &g)) == 1) {
                if (g.number != 1)
                    continue;
                if ((rc = want_len(&g)) || (rc = topic_ok(&g)))
                    return rc;
                t = span(&g);
            }
            if (rc < 0)
                return rc;
            if (!t.p)
                return DN_EMALFORMED;
            o->graft[o->ngraft++] = t;
            break;
        }
        case CTL_PRUNE:
            if ((rc = grow((void **)&o->prune, &c->prune, o->nprune, sizeof *o->prune,
                           DN_PUBSUB_MAX_CTRL)))
                return rc;
            if ((rc = decode_prune(&f, o, c, &o->prune[o->nprune])))
                return rc;
            o->nprune++;
            break;
        }
    }
    return rc;
}

void dn__pubsub_rpc_free(dn__pubsub_rpc *r)
{
    if (r->owned) {
        free(r->subs);
        free(r->msgs);
        free(r->ihave);
        free(r->ihave_ids);
        free(r->iwant_ids);
        free(r->graft);
        free(r->prune);
        free(r->px);
        free(r->idontwant_ids);
    }
    memset(r, 0, sizeof *r);
}

int dn__pubsub_rpc_decode(const uint8_t *p, size_t len, dn__pubsub_rpc *o)
{
    memset(o, 0, sizeof *o);
    o->owned = true;
    if (len > DN_PUBSUB_RPC_MAX)
        return DN_ETOOBIG;
    caps c = {0};
    size_t nctrl = 0;
    dn_pb_reader r;
    dn_pb_field f;
    int rc;
    dn_pb_reader_init(&r, p, len);
    while ((rc = dn_pb_next(&r, &f)) == 1) {
        if (f.number < RPC_SUBS || f.number > RPC_CONTROL)
            continue;
        if ((rc = want_len(&f)))
            break;
        if (f.number == RPC_SUBS) {
            if ((rc = grow((void **)&o->subs, &c.subs, o->nsubs, sizeof *o->subs,
                           DN_PUBSUB_MAX_SUBS)) ||
                (rc = decode_subopt(&f, &o->subs[o->nsubs])))
                break;
            o->nsubs++;
        } else if (f.number == RPC_PUBLISH) {
            if ((rc = grow((void **)&o->msgs, &c.msgs, o->nmsgs, sizeof *o->msgs,
                           DN_PUBSUB_MAX_MSGS)) ||
                (rc = dn__pubsub_message_decode(f.bytes, f.len, &o->msgs[o->nmsgs])))
                break;
            o->nmsgs++;
        } else if ((rc = decode_control(&f, o, &c, &nctrl))) {
            break;
        }
    }
    if (rc < 0) {
        dn__pubsub_rpc_free(o);
        return rc;
    }
    return 0;
}

/* ---- encoding ---- */

int dn__pubsub_message_encode(const dn__pubsub_message *m, dn_buf *out)
{
    if (m->raw.p)
        return dn_buf_append(out, m->raw.p, m->raw.len);
    int rc = 0;
    if (m->has_from)
        rc = dn_pb_put_bytes(out, MSG_FROM, m->from.p, m->from.len);
    if (!rc && m->has_data)
        rc = dn_pb_put_bytes(out, MSG_DATA, m->data.p, m->data.len);
    if (!rc && m->has_seqno)
        rc = dn_pb_put_bytes(out, MSG_SEQNO, m->seqno.p, m->seqno.len);
    if (!rc && m->topic.len)
        rc = dn_pb_put_bytes(out, MSG_TOPIC, m->topic.p, m->topic.len);
    if (!rc && m->has_signature)
        rc = dn_pb_put_bytes(out, MSG_SIG, m->signature.p, m->signature.len);
    if (!rc && m->has_key)
        rc = dn_pb_put_bytes(out, MSG_KEY, m->key.p, m->key.len);
    return rc;
}

/* Append field `number` holding the bytes that the scratch buffer s ends
 * with from `mark` on, then drop them from s. */
static int put_nested(dn_buf *out, uint32_t number, dn_buf *s, size_t mark)
{
    int rc = dn_pb_put_bytes(out, number, s->data + mark, s->len - mark);
    s->len = mark;
    return rc;
}

static bool topic_valid(dn__ps_span t)
{
    return t.len >= 1 && t.len <= DN_PUBSUB_TOPIC_MAX;
}

static int ids_valid(const dn__ps_span *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i].len < 1 || ids[i].len > DN_PUBSUB_MSGID_MAX)
            return DN_EINVAL;
    return 0;
}

static int rpc_check(const dn__pubsub_rpc *r)
{
    size_t nctrl =
        r->nihave + r->ngraft + r->nprune + (r->niwant_ids > 0) + (r->nidontwant_ids > 0);
    if (r->nsubs > DN_PUBSUB_MAX_SUBS || r->nmsgs > DN_PUBSUB_MAX_MSGS ||
        nctrl > DN_PUBSUB_MAX_CTRL || r->nihave_ids > DN_PUBSUB_MAX_IHAVE_IDS ||
        r->niwant_ids > DN_PUBSUB_MAX_IWANT_IDS ||
        r->nidontwant_ids > DN_PUBSUB_MAX_IDONTWANT_IDS || r->npx > DN_PUBSUB_MAX_PX)
        return DN_EINVAL;
    for (size_t i = 0; i < r->nsubs; i++)
        if (!topic_valid(r->subs[i].topic))
            return DN_EINVAL;
    for (size_t i = 0; i < r->ngraft; i++)
        if (!topic_valid(r->graft[i]))
            return DN_EINVAL;
    for (size_t i = 0; i < r->nihave; i++)
        if (!topic_valid(r->ihave[i].topic) || r->ihave[i].first > r->nihave_ids ||
            r->ihave[i].count > r->nihave_ids - r->ihave[i].first)
            return DN_EINVAL;
    for (size_t i = 0; i < r->nprune; i++)
        if (!topic_valid(r->prune[i].topic) || r->prune[i].first > r->npx ||
            r->prune[i].count > r->npx - r->prune[i].first)
            return DN_EINVAL;
    for (size_t i = 0; i < r->nmsgs; i++)
        if (r->msgs[i].topic.len > DN_PUBSUB_TOPIC_MAX)
            return DN_EINVAL;
    int rc = ids_valid(r->ihave_ids, r->nihave_ids);
    if (!rc)
        rc = ids_valid(r->iwant_ids, r->niwant_ids);
    if (!rc)
        rc = ids_valid(r->idontwant_ids, r->nidontwant_ids);
    return rc;
}

static int encode_control(const dn__pubsub_rpc *r, dn_buf *c, dn_buf *s)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < r->nihave; i++) {
        const dn__pubsub_ihave *ih = &r->ihave[i];
        size_t mark = s->len;
        rc = dn_pb_put_bytes(s, 1, ih->topic.p, ih->topic.len);
        for (size_t j = 0; !rc && j < ih->count; j++)
            rc = dn_pb_put_bytes(s, 2, r->ihave_ids[ih->first + j].p,
                                 r->ihave_ids[ih->first + j].len);
        if (!rc)
            rc = put_nested(c, CTL_IHAVE, s, mark);
    }
    if (!rc && r->niwant_ids) {
        size_t mark = s->len;
        for (size_t j = 0; !rc && j < r->niwant_ids; j++)
            rc = dn_pb_put_bytes(s, 1, r->iwant_ids[j].p, r->iwant_ids[j].len);
        if (!rc)
            rc = put_nested(c, CTL_IWANT, s, mark);
    }
    for (size_t i = 0; !rc && i < r->ngraft; i++) {
        size_t mark = s->len;
        rc = dn_pb_put_bytes(s, 1, r->graft[i].p, r->graft[i].len);
        if (!rc)
            rc = put_nested(c, CTL_GRAFT, s, mark);
    }
    for (size_t i = 0; !rc && i < r->nprune; i++) {
        const dn__pubsub_prune *pr = &r->prune[i];
        size_t mark = s->len;
        rc = dn_pb_put_bytes(s, 1, pr->topic.p, pr->topic.len);
        for (size_t j = 0; !rc && j < pr->count; j++) {
            const dn__pubsub_px *px = &r->px[pr->first + j];
            size_t m2 = s->len;
            if (px->peer_id.len)
                rc = dn_pb_put_bytes(s, 1, px->peer_id.p, px->peer_id.len);
            if (!rc && px->signed_record.len)
                rc = dn_pb_put_bytes(s, 2, px->signed_record.p, px->signed_record.len);
            if (!rc) {
                /* nested inside the nested PRUNE: copy out then back */
                size_t n = s->len - m2;
                uint8_t tmp[16];
                size_t hl = dn_uvarint_encode(((uint64_t)2 << 3) | DN_PB_LEN, tmp);
                hl += dn_uvarint_encode(n, tmp + hl);
                if (!(rc = dn_buf_reserve(s, hl))) {
                    memmove(s->data + m2 + hl, s->data + m2, n);
                    memcpy(s->data + m2, tmp, hl);
                    s->len += hl;
                }
            }
        }
        if (!rc && pr->has_backoff)
            rc = dn_pb_put_varint(s, 3, pr->backoff_s);
        if (!rc)
            rc = put_nested(c, CTL_PRUNE, s, mark);
    }
    if (!rc && r->nidontwant_ids) {
        size_t mark = s->len;
        for (size_t j = 0; !rc && j < r->nidontwant_ids; j++)
            rc = dn_pb_put_bytes(s, 1, r->idontwant_ids[j].p, r->idontwant_ids[j].len);
        if (!rc)
            rc = put_nested(c, CTL_IDONTWANT, s, mark);
    }
    return rc;
}

int dn__pubsub_rpc_encode(const dn__pubsub_rpc *r, dn_buf *out)
{
    int rc = rpc_check(r);
    if (rc)
        return rc;
    dn_buf s = DN_BUF_INIT, c = DN_BUF_INIT;
    for (size_t i = 0; !rc && i < r->nsubs; i++) {
        rc = dn_pb_put_varint(&s, SUB_SUBSCRIBE, r->subs[i].subscribe);
        if (!rc)
            rc = dn_pb_put_bytes(&s, SUB_TOPIC, r->subs[i].topic.p, r->subs[i].topic.len);
        if (!rc)
            rc = put_nested(out, RPC_SUBS, &s, 0);
    }
    for (size_t i = 0; !rc && i < r->nmsgs; i++) {
        rc = dn__pubsub_message_encode(&r->msgs[i], &s);
        if (!rc)
            rc = put_nested(out, RPC_PUBLISH, &s, 0);
    }
    if (!rc && (r->has_control || r->nihave || r->niwant_ids || r->ngraft || r->nprune ||
                r->nidontwant_ids)) {
        rc = encode_control(r, &c, &s);
        if (!rc)
            rc = dn_pb_put_bytes(out, RPC_CONTROL, c.data, c.len);
    }
    dn_buf_free(&s);
    dn_buf_free(&c);
    return rc;
}

int dn__pubsub_rpc_frame(const dn__pubsub_rpc *r, dn_buf *out)
{
    dn_buf body = DN_BUF_INIT;
    int rc = dn__pubsub_rpc_encode(r, &body);
    if (!rc && body.len > DN_PUBSUB_RPC_MAX)
        rc = DN_EINVAL;
    if (!rc)
        rc = dn_buf_append_uvarint(out, body.len);
    if (!rc)
        rc = dn_buf_append(out, body.data, body.len);
    dn_buf_free(&body);
    return rc;
}

/* ---- frame reader ---- */

void dn__pubsub_framer_init(dn__pubsub_framer *f, size_t max)
{
    dn_buf_init(&f->buf);
    f->off = 0;
    f->max = max ? max : DN_PUBSUB_RPC_MAX;
    f->err = 0;
}

void dn__pubsub_framer_close(dn__pubsub_framer *f)
{
    dn_buf_free(&f->buf);
    f->off = 0;
}

size_t dn__pubsub_framer_pending(const dn__pubsub_framer *f)
{
    return f->buf.len - f->off;
}

int dn__pubsub_framer_feed(dn__pubsub_framer *f, const uint8_t *p, size_t len)
{
    if (f->err)
        return f->err;
    if (f->off) { /* drop what was returned already */
        dn_buf_consume(&f->buf, f->off);
        f->off = 0;
    }
    /* Refuse an oversized prefix already here, and never hold more than
     * one whole frame plus a read's worth: the caller takes frames out
     * after each feed. */
    uint64_t n;
    if (f->buf.len && dn_uvarint_decode(f->buf.data, f->buf.len, &n) > 0 && n > f->max)
        return f->err = DN_ETOOBIG;
    if (f->buf.len + len > 2 * f->max + 16)
        return f->err = DN_ETOOBIG;
    return dn_buf_append(&f->buf, p, len);
}

int dn__pubsub_framer_next(dn__pubsub_framer *f, const uint8_t **frame, size_t *len)
{
    if (f->err)
        return f->err;
    const uint8_t *p = f->buf.data + f->off;
    size_t left = f->buf.len - f->off;
    if (left == 0)
        return 0;
    uint64_t n;
    int hl = dn_uvarint_decode(p, left, &n);
    if (hl == DN_ETRUNCATED)
        return 0;
    if (hl < 0)
        return f->err = DN_EMALFORMED;
    if (n > f->max)
        return f->err = DN_ETOOBIG;
    if (left - (size_t)hl < n)
        return 0;
    *frame = p + hl;
    *len = (size_t)n;
    f->off += (size_t)hl + (size_t)n;
    return 1;
}
