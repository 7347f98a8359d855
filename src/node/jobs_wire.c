/* node — publishJob's message layouts (jobs_wire.h, docs/jobs.md). */
#include "node/jobs_wire.h"

#include <string.h>

#include "core/pb.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"

enum { RQ_ID = 1, RQ_REQUESTER = 2, RQ_DEADLINE = 3, RQ_JOB = 4, RQ_BID_TYPE = 5 };
enum { BID_REQUEST = 1, BID_DATA = 2 };
enum { REPLY_ACCEPTED = 1, REPLY_ERROR = 2 };

bool dn__job_valid_type(const char *t, size_t n)
{
    if (n < 2 || n > 255 || t[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~')
            return false;
    return true;
}

int dn__job_request_encode(dn_buf *b, const uint8_t id[DN_JOB_ID_LEN], const dn_peerid *requester,
                           uint64_t deadline_ms, const void *job, size_t len, const char *bid_type)
{
    int rc = dn_pb_put_bytes(b, RQ_ID, id, DN_JOB_ID_LEN);
    if (!rc)
        rc = dn_pb_put_bytes(b, RQ_REQUESTER, requester->bytes, requester->len);
    if (!rc)
        rc = dn_pb_put_varint(b, RQ_DEADLINE, deadline_ms);
    if (!rc)
        rc = dn_pb_put_bytes(b, RQ_JOB, job, len);
    if (!rc && bid_type)
        rc = dn_pb_put_string(b, RQ_BID_TYPE, bid_type);
    return rc;
}

int dn__job_request_decode(const uint8_t *p, size_t len, dn__job_request *r)
{
    memset(r, 0, sizeof *r);
    dn_pb_reader rd;
    dn_pb_reader_init(&rd, p, len);
    dn_pb_field f;
    bool have_req = false, have_deadline = false;
    int rc;
    while ((rc = dn_pb_next(&rd, &f)) == 1) {
        if (f.number < RQ_ID || f.number > RQ_BID_TYPE)
            continue;
        if ((f.number == RQ_DEADLINE) != (f.wire_type == DN_PB_VARINT) ||
            (f.number != RQ_DEADLINE && f.wire_type != DN_PB_LEN))
            return DN_EMALFORMED;
        switch (f.number) {
        case RQ_ID:
            if (f.len != DN_JOB_ID_LEN)
                return DN_EMALFORMED;
            r->id = f.bytes;
            break;
        case RQ_REQUESTER:
            if (dn_peerid_from_bytes(f.bytes, f.len, &r->requester))
                return DN_EMALFORMED;
            have_req = true;
            break;
        case RQ_DEADLINE:
            r->deadline_ms = f.varint;
            have_deadline = true;
            break;
        case RQ_JOB:
            r->job = f.bytes;
            r->len = f.len;
            break;
        case RQ_BID_TYPE:
            r->bid_type = (const char *)f.bytes;
            r->bid_type_len = f.len;
            break;
        }
    }
    if (rc < 0)
        return rc;
    if (!r->id || !have_req || !have_deadline || !r->job)
        return DN_EMALFORMED;
    if (!r->bid_type) {
        r->bid_type = DN_JOB_BID_TYPE;
        r->bid_type_len = strlen(DN_JOB_BID_TYPE);
    }
    return dn__job_valid_type(r->bid_type, r->bid_type_len) ? 0 : DN_EMALFORMED;
}

int dn__job_bid_encode(dn_buf *b, const uint8_t id[DN_JOB_ID_LEN], const void *bid, size_t len)
{
    int rc = dn_pb_put_bytes(b, BID_REQUEST, id, DN_JOB_ID_LEN);
    if (!rc)
        rc = dn_pb_put_bytes(b, BID_DATA, bid, len);
    return rc;
}

int dn__job_bid_decode(const uint8_t *p, size_t len, dn__job_bid *out)
{
    memset(out, 0, sizeof *out);
    dn_pb_reader rd;
    dn_pb_reader_init(&rd, p, len);
    dn_pb_field f;
    int rc;
    while ((rc = dn_pb_next(&rd, &f)) == 1) {
        if (f.number != BID_REQUEST && f.number != BID_DATA)
            continue;
        if (f.wire_type != DN_PB_LEN || (f.number == BID_REQUEST && f.len != DN_JOB_ID_LEN))
            return DN_EMALFORMED;
        if (f.number == BID_REQUEST) {
            out->request = f.bytes;
        } else {
            out->bid = f.bytes;
            out->len = f.len;
        }
    }
    if (rc < 0)
        return rc;
    return out->request ? 0 : DN_EMALFORMED;
}

int dn__job_reply_encode(dn_buf *b, const char *error)
{
    return error ? dn_pb_put_string(b, REPLY_ERROR, error) : dn_pb_put_varint(b, REPLY_ACCEPTED, 1);
}

int dn__job_reply_decode(const uint8_t *p, size_t len, bool *accepted, char *why, size_t whylen)
{
    *accepted = false;
    if (whylen)
        why[0] = 0;
    dn_pb_reader rd;
    dn_pb_reader_init(&rd, p, len);
    dn_pb_field f;
    bool have_error = false;
    int rc;
    while ((rc = dn_pb_next(&rd, &f)) == 1) {
        if (f.number == REPLY_ACCEPTED) {
            if (f.wire_type != DN_PB_VARINT)
                return DN_EMALFORMED;
            *accepted = f.varint != 0;
        } else if (f.number == REPLY_ERROR) {
            if (f.wire_type != DN_PB_LEN)
                return DN_EMALFORMED;
            /* The requester's text: escaped, it is printable and valid
             * UTF-8 (the API puts it in JSON); at most 200 bytes of it. */
            dn_escape_text((const char *)f.bytes, f.len < 200 ? f.len : 200, why, whylen);
            have_error = true;
        }
    }
    if (rc < 0)
        return rc;
    if (*accepted)
        return 0;
    return have_error && whylen && why[0] ? 0 : DN_EMALFORMED;
}
