/* Fuzz multistream-select: a dialer or a listener fed arbitrary bytes in
 * arbitrary chunks. Checks the documented contract: consumed never exceeds
 * the input, all input is consumed while more is needed, the outcome is
 * one of the documented codes, the selected protocol is one we offered,
 * and replies stay bounded (no amplification past the "na" limit). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/buf.h"
#include "dmsnet/error.h"
#include "mss/mss.h"

static const char *const protos[] = {"/noise", "/yamux/1.0.0", "/tls/1.0.0", "/ipfs/ping/1.0.0"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    /* Byte 0: role and how many protocols; byte 1: chunking seed. */
    bool dialer = data[0] & 1;
    size_t np = 1 + ((data[0] >> 1) & 3);
    uint32_t seed = data[1] | 1u;
    data += 2;
    size_t len = size - 2;

    dn_mss m;
    if (dialer)
        dn_mss_init_dialer(&m, protos, np);
    else
        dn_mss_init_listener(&m, protos, np);
    dn_buf out = DN_BUF_INIT;
    if (dn_mss_start(&m, &out) != 0)
        abort();
    size_t start_len = out.len;

    size_t off = 0;
    int rc = DN_MSS_NEED_MORE;
    while (off < len) {
        seed = seed * 1103515245u + 12345u;
        size_t c = (seed >> 16) % 40;
        if (c > len - off)
            c = len - off;
        size_t used = 12345;
        rc = dn_mss_feed(&m, data + off, c, &used, &out);
        if (used > c)
            abort();
        off += used;
        if (rc == DN_MSS_NEED_MORE) {
            if (used != c)
                abort();
            continue;
        }
        break;
    }
    switch (rc) {
    case DN_MSS_NEED_MORE:
        if (dn_mss_selected(&m) != NULL)
            abort();
        break;
    case DN_MSS_DONE: {
        const char *sel = dn_mss_selected(&m);
        if (!sel)
            abort();
        bool ours = false;
        for (size_t i = 0; i < np; i++)
            ours |= sel == protos[i];
        if (!ours)
            abort();
        /* Done is sticky and takes nothing more. */
        size_t used = 1;
        if (dn_mss_feed(&m, data, len, &used, &out) != DN_MSS_DONE || used != 0)
            abort();
        break;
    }
    case DN_EPROTO:
    case DN_ETOOBIG:
    case DN_ENEGOTIATE:
        if (dn_mss_selected(&m) != NULL)
            abort();
        break;
    default: abort();
    }
    /* Replies: at most one per proposal; the listener stops after the "na"
     * limit, the dialer after its list. */
    size_t max_reply =
        dialer ? np * (2 + DN_MSS_MAX_MSG) : (DN_MSS_MAX_NA + 1) * (2 + DN_MSS_MAX_MSG);
    if (out.len - start_len > max_reply)
        abort();
    dn_buf_free(&out);
    return 0;
}
