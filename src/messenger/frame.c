/* Messenger frame codec: 8-byte little-endian length, then the payload
 * (NuNet DMS framing, shared DESIGN.md "Messages:"). */
#include "messenger/frame.h"

#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"

/* The payload buffer starts at this size (or the declared length, if
 * smaller) and doubles: a peer that declares 1 MiB and then sends a few
 * bytes costs us what it sent, not what it announced. */
#define FRAME_FIRST_CAP (16u * 1024u)

void dn__msg_frame_header(uint64_t len, uint8_t out[DN__MSG_HEADER_LEN])
{
    for (int i = 0; i < DN__MSG_HEADER_LEN; i++)
        out[i] = (uint8_t)(len >> (8 * i));
}

void dn__msg_reader_init(dn__msg_reader *r, size_t limit)
{
    memset(r, 0, sizeof *r);
    r->limit = limit;
}

static int grow(dn__msg_reader *r, size_t need)
{
    if (need <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : (r->want < FRAME_FIRST_CAP ? r->want : FRAME_FIRST_CAP);
    while (cap < need)
        cap = cap > r->want / 2 ? r->want : cap * 2;
    uint8_t *nb = realloc(r->buf, cap);
    if (!nb)
        return DN_ENOMEM;
    r->buf = nb;
    r->cap = cap;
    return 0;
}

int dn__msg_reader_feed(dn__msg_reader *r, const uint8_t *data, size_t len, size_t *used)
{
    size_t off = 0;
    if (r->status)
        goto out;
    if (!r->have_len) {
        size_t take = DN__MSG_HEADER_LEN - r->hdr_have;
        if (take > len)
            take = len;
        memcpy(r->hdr + r->hdr_have, data, take);
        r->hdr_have += take;
        off += take;
        if (r->hdr_have < DN__MSG_HEADER_LEN)
            goto out;
        uint64_t n = 0;
        for (int i = DN__MSG_HEADER_LEN - 1; i >= 0; i--)
            n = n << 8 | r->hdr[i];
        /* Refuse from the header alone, before any of the payload is held. */
        if (n > r->limit) {
            r->status = DN_ETOOBIG;
            goto out;
        }
        r->have_len = true;
        r->want = (size_t)n;
    }
    size_t take = r->want - r->have;
    if (take > len - off)
        take = len - off;
    if (take) {
        int rc = grow(r, r->have + take);
        if (rc) {
            r->status = rc;
            goto out;
        }
        memcpy(r->buf + r->have, data + off, take);
        r->have += take;
        off += take;
    }
    if (r->have == r->want)
        r->status = 1;
out:
    if (used)
        *used = off;
    return r->status;
}

bool dn__msg_reader_declared(const dn__msg_reader *r, size_t *len)
{
    if (!r->have_len)
        return false;
    *len = r->want;
    return true;
}

const uint8_t *dn__msg_reader_payload(const dn__msg_reader *r, size_t *len)
{
    if (r->status != 1)
        return NULL;
    *len = r->have;
    static const uint8_t empty[1];
    return r->buf ? r->buf : empty;
}

size_t dn__msg_reader_held(const dn__msg_reader *r)
{
    return r->hdr_have + r->cap;
}

void dn__msg_reader_free(dn__msg_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->have = 0;
}
