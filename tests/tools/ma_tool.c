/* ma_tool: multiaddr conversions for the js cross-check
 * (tests/interop/multiaddr_js.test.sh).
 *
 * Reads lines "str <multiaddr>" or "hex <hex bytes>" on stdin and prints,
 * per line, "<hex>\t<string>" or "ERR <message>". */
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/multiaddr.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    static char line[8192];
    while (fgets(line, sizeof(line), stdin)) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        dn_multiaddr ma;
        int rc;
        if (strncmp(line, "str ", 4) == 0) {
            rc = dn_multiaddr_parse(line + 4, &ma);
        } else if (strncmp(line, "hex ", 4) == 0) {
            static uint8_t bin[4096];
            rc = dn_base16_decode(line + 4, n - 4, bin, sizeof(bin));
            if (rc < 0) {
                printf("ERR bad hex: %s\n", dn_strerror(rc));
                continue;
            }
            rc = dn_multiaddr_from_bytes(bin, (size_t)rc, &ma);
        } else {
            printf("ERR bad command\n");
            continue;
        }
        if (rc < 0) {
            printf("ERR %s\n", dn_multiaddr_error());
            continue;
        }
        char hex[2 * DN_MULTIADDR_MAX + 1], str[DN_MULTIADDR_STR_MAX];
        dn_base16_encode(ma.bytes, ma.len, hex, sizeof(hex));
        rc = dn_multiaddr_to_string(&ma, str, sizeof(str));
        if (rc < 0) {
            printf("ERR to_string: %s\n", dn_strerror(rc));
            continue;
        }
        printf("%s\t%s\n", hex, str);
    }
    return 0;
}
