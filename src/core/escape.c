/* Escaping of peer-supplied text (temporary minimal version). */
#include <stdio.h>
#include <string.h>

#include "dmsnet/encoding.h"

size_t dn_escape_text(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return 0;
    for (size_t i = 0; i < len && in[i]; i++) {
        unsigned char c = (unsigned char)in[i];
        char tmp[5];
        size_t n;
        if (c < 0x20 || c >= 0x7f || c == '\\')
            n = (size_t)snprintf(tmp, sizeof tmp, c == '\\' ? "\\\\" : "\\x%02x", c);
        else {
            tmp[0] = (char)c;
            n = 1;
        }
        if (o + n >= outlen)
            break;
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = 0;
    return o;
}
