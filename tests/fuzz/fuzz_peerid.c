/* libFuzzer target: peer id text forms and multihash bytes.
 * An accepted text prints (base58btc and CID) and both forms parse back to
 * the identical peer id; accepted bytes do the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "dmsnet/peerid.h"

static void check(const dn_peerid *id)
{
    char s[DN_PEERID_STR_MAX], c[DN_PEERID_STR_MAX], sh[16];
    dn_peerid a, b;
    if (id->len == 0 || id->len > DN_PEERID_MAX)
        abort();
    if (dn_peerid_to_string(id, s, sizeof(s)) <= 0 || dn_peerid_parse(s, &a) != 0 ||
        !dn_peerid_equal(id, &a))
        abort();
    if (dn_peerid_to_cid_string(id, c, sizeof(c)) <= 0 || dn_peerid_parse(c, &b) != 0 ||
        !dn_peerid_equal(id, &b))
        abort();
    if (dn_peerid_from_bytes(id->bytes, id->len, &a) != 0 || !dn_peerid_equal(id, &a))
        abort();
    if (strlen(dn_peerid_short(id, sh)) > 6)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dn_peerid id;
    if (dn_peerid_from_bytes(data, size, &id) == 0)
        check(&id);
    char text[256];
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (dn_peerid_parse(text, &id) == 0)
        check(&id);
    return 0;
}
