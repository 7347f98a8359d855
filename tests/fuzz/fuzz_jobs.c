/* libFuzzer target: publishJob's decoders (src/node/jobs_wire.c). The
 * first byte picks JobRequest, Bid or BidReply; whatever decodes must
 * point inside the input, and a request must re-encode and decode to the
 * same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/jobs_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0] % 3;
    data++, size--;
    const uint8_t *end = data + size;
    if (which == 0) {
        dn__job_request r;
        if (dn__job_request_decode(data, size, &r))
            return 0;
        if (r.id < data || r.id + DN_JOB_ID_LEN > end || r.job < data || r.job + r.len > end)
            abort();
        char type[256];
        memcpy(type, r.bid_type, r.bid_type_len);
        type[r.bid_type_len] = 0;
        dn_buf b = DN_BUF_INIT;
        dn__job_request back;
        if (dn__job_request_encode(&b, r.id, &r.requester, r.deadline_ms, r.job, r.len, type) ||
            dn__job_request_decode(b.data, b.len, &back) || back.len != r.len ||
            memcmp(back.job, r.job, r.len) || back.deadline_ms != r.deadline_ms ||
            !dn_peerid_equal(&back.requester, &r.requester))
            abort();
        dn_buf_free(&b);
    } else if (which == 1) {
        dn__job_bid d;
        if (dn__job_bid_decode(data, size, &d) == 0 &&
            (d.request < data || d.request + DN_JOB_ID_LEN > end ||
             (d.bid && (d.bid < data || d.bid + d.len > end))))
            abort();
    } else {
        bool ok;
        char why[256];
        if (dn__job_reply_decode(data, size, &ok, why, sizeof why) == 0 && !ok &&
            strlen(why) >= sizeof why)
            abort();
    }
    return 0;
}
