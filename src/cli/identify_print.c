/* What `dmsnet identify` prints about a peer. Every string in it but the
 * peer id comes from the peer (agent, protocol version, protocol names, and
 * addresses, whose dns and unix components are free text), so each goes
 * through dn_escape_text: a "\n" cannot add a line of ours and an ESC
 * cannot drive the terminal. Apart from the CLI so a unit test can check
 * the output (tests/unit/test_cli_identify.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "dmsnet/encoding.h"

/* "label: <escaped text>\n" */
static void print_text(FILE *f, const char *label, const char *s)
{
    size_t n = strlen(s);
    char small[DN_ESCAPE_MAX(256)];
    char *out = small;
    size_t room = sizeof small;
    if (DN_ESCAPE_MAX(n) > room) {
        out = malloc(DN_ESCAPE_MAX(n));
        if (out)
            room = DN_ESCAPE_MAX(n);
        else
            out = small; /* truncated, still escaped */
    }
    dn_escape_text(s, n, out, room);
    fprintf(f, "%s: %s\n", label, out);
    if (out != small)
        free(out);
}

static void print_addr(FILE *f, const char *label, const dn_multiaddr *ma)
{
    char text[DN_MULTIADDR_STR_MAX];
    if (dn_multiaddr_to_string(ma, text, sizeof text) >= 0)
        print_text(f, label, text);
}

void dn_cli_print_identify(FILE *f, const dn_peer_info *p)
{
    char text[DN_PEERID_STR_MAX];
    dn_peerid_to_string(&p->id, text, sizeof text);
    fprintf(f, "peer: %s\n", text);
    print_text(f, "agent", p->agent_version);
    print_text(f, "protocol-version", p->protocol_version);
    if (p->public_key)
        fprintf(f, "public-key: %s (%s)\n", dn_key_type_name(dn_pubkey_type(p->public_key)),
                dn_peerid_matches_pubkey(&p->id, p->public_key) ? "matches the peer id"
                                                                : "DOES NOT match the peer id");
    for (size_t i = 0; i < p->nprotocols; i++)
        print_text(f, "protocol", p->protocols[i]);
    dn_multiaddr ma;
    for (size_t i = 0; i < p->naddrs; i++)
        if (dn_peer_info_addr(p, i, &ma) == 0)
            print_addr(f, "listen", &ma);
    if (dn_peer_info_observed(p, &ma) == 0)
        print_addr(f, "observed", &ma);
}
