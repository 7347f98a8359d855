/* libFuzzer target: multiaddr decoding both ways.
 * Binary: from_bytes -> to_string -> parse must give identical bytes.
 * Text: parse -> to_string -> parse must give identical bytes and the
 * canonical string must be a fixed point. Iteration, peer id extraction and
 * strip_p2p run on every accepted address. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/error.h"
#include "dmsnet/multiaddr.h"

static void exercise(const dn_multiaddr *ma)
{
    size_t off = 0;
    dn_ma_component c;
    int rc;
    while ((rc = dn_multiaddr_next(ma, &off, &c)) == 1)
        if (c.value + c.value_len > ma->bytes + ma->len || dn_ma_proto_name(c.code) == NULL)
            abort();
    if (rc != 0 || off != ma->len)
        abort();
    dn_peerid id;
    rc = dn_multiaddr_peerid(ma, &id);
    if (rc != 0 && rc != DN_ENOTFOUND)
        abort();
    dn_multiaddr stripped;
    dn_multiaddr_strip_p2p(ma, &stripped);
    if (stripped.len > ma->len || memcmp(stripped.bytes, ma->bytes, stripped.len) != 0)
        abort();
}

static void roundtrip(const dn_multiaddr *ma)
{
    static char s[DN_MULTIADDR_STR_MAX], s2[DN_MULTIADDR_STR_MAX];
    dn_multiaddr back, back2;
    int n = dn_multiaddr_to_string(ma, s, sizeof(s));
    if (n < 0 || strlen(s) != (size_t)n)
        abort(); /* every accepted multiaddr prints */
    if (dn_multiaddr_parse(s, &back) != 0)
        abort();
    if (back.len != ma->len || memcmp(back.bytes, ma->bytes, ma->len) != 0)
        abort();
    if (dn_multiaddr_to_string(&back, s2, sizeof(s2)) != n || strcmp(s, s2) != 0)
        abort();
    if (dn_multiaddr_from_bytes(back.bytes, back.len, &back2) != 0)
        abort();
    exercise(ma);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dn_multiaddr ma;
    if (dn_multiaddr_from_bytes(data, size, &ma) == 0)
        roundtrip(&ma);
    else if (dn_multiaddr_error()[0] == '\0')
        abort(); /* every failure says why */

    static char text[4096];
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (dn_multiaddr_parse(text, &ma) == 0)
        roundtrip(&ma);
    return 0;
}
