/* libFuzzer target: text CIDs (src/multiformats/cid.c), what `dmsnet dht
 * provide|findprovs` and POST /v0/dht/provide|findprovs take from a user.
 * Every refusal has a reason and a documented code; every accepted CID has a
 * well-formed multihash that fits, and its CIDv1 text parses back to the
 * same multihash and codec. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "multiformats/cid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    dn__cid c, back;
    const char *why = NULL;
    int rc = dn__cid_parse((const char *)data, size, &c, &why);
    if (rc) {
        if (!why || (rc != DN_EMALFORMED && rc != DN_EUNSUPPORTED && rc != DN_ETOOBIG))
            abort();
        return 0;
    }
    if (c.mh_len < 2 || c.mh_len > DN__CID_MH_MAX || (c.version != 0 && c.version != 1))
        abort();
    /* the multihash's own length byte(s) agree with what was kept */
    uint64_t code, dlen;
    int n1 = dn_uvarint_decode(c.mh, c.mh_len, &code);
    int n2 = n1 > 0 ? dn_uvarint_decode(c.mh + n1, c.mh_len - (size_t)n1, &dlen) : -1;
    if (n2 <= 0 || code != c.mh_code || dlen != c.mh_len - (size_t)n1 - (size_t)n2)
        abort();
    char text[2 * DN__CID_MH_MAX + 64];
    int n = dn__cid_to_string_v1(&c, text, sizeof text);
    if (n <= 0 || dn__cid_parse(text, (size_t)n, &back, &why) != 0)
        abort();
    if (back.version != 1 || back.codec != c.codec || back.mh_len != c.mh_len ||
        memcmp(back.mh, c.mh, c.mh_len) != 0)
        abort();
    return 0;
}
