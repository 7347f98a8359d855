/* Unit test: what `dmsnet identify` prints (src/cli/identify_print.c) for a
 * hostile peer — an agent with "\n" and ESC, protocol names and addresses
 * with control bytes and invalid UTF-8 — is escaped: one line per field,
 * no control byte on any line, and the text still readable. The CLI is not
 * part of the library, so its one source file is compiled in here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/identify_print.c"
#include "host/peerstore.h"
#include "dmsnet/error.h"

static char *render(const dn_peer_info *p)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    dn_cli_print_identify(f, p);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_hostile_peer_output(void **state)
{
    (void)state;
    dn_privkey *k;
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &k), 0);
    dn_peer_info p;
    memset(&p, 0, sizeof p);
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(k), &p.id), 0);
    p.agent_version = "evil/1.0\nprotocol: /forged/1.0.0\x1b[2J\x1b]0;owned\x07";
    p.protocol_version = "ipfs/0.1.0\r\xff";
    char *protos[] = {"/ipfs/ping/1.0.0", "/x\x1b[31m/\xc2\x9b"
                                          "1.0.0"};
    p.protocols = protos;
    p.nprotocols = 2;
    dn_multiaddr addrs[1];
    memset(addrs, 0, sizeof addrs);
    static const uint8_t port[2] = {0x0f, 0xa1};
    assert_int_equal(dn_multiaddr_append(&addrs[0], DN_MA_DNS4, (const uint8_t *)"a\x1b[1mb", 6),
                     0);
    assert_int_equal(dn_multiaddr_append(&addrs[0], DN_MA_TCP, port, 2), 0);
    assert_int_equal(dn__peer_set_addrs(&p, addrs, 1), 0);

    char *out = render(&p);
    char id[DN_PEERID_STR_MAX], want[2048];
    dn_peerid_to_string(&p.id, id, sizeof id);
    snprintf(want, sizeof want,
             "peer: %s\n"
             "agent: evil/1.0\\x0aprotocol: /forged/1.0.0\\x1b[2J\\x1b]0;owned\\x07\n"
             "protocol-version: ipfs/0.1.0\\x0d\\xff\n"
             "protocol: /ipfs/ping/1.0.0\n"
             "protocol: /x\\x1b[31m/\\xc2\\x9b1.0.0\n"
             "listen: /dns4/a\\x1b[1mb/tcp/4001\n",
             id);
    assert_string_equal(out, want);
    /* no control byte but the line ends; 6 lines, 6 fields */
    size_t lines = 0;
    for (const char *c = out; *c; c++) {
        assert_true((unsigned char)*c >= 0x20 || *c == '\n');
        assert_true((unsigned char)*c != 0x7f);
        lines += *c == '\n';
    }
    assert_int_equal(lines, 6);
    free(out);

    /* An honest peer's text is printed unchanged; the key line appears. */
    p.agent_version = "js-libp2p/2.8.0 UserAgent=v22";
    p.protocol_version = "ipfs/0.1.0";
    p.nprotocols = 1;
    assert_int_equal(dn__peer_set_addrs(&p, NULL, 0), 0);
    p.public_key = (dn_pubkey *)dn_privkey_public(k);
    out = render(&p);
    snprintf(want, sizeof want,
             "peer: %s\nagent: js-libp2p/2.8.0 UserAgent=v22\nprotocol-version: ipfs/0.1.0\n"
             "public-key: ed25519 (matches the peer id)\nprotocol: /ipfs/ping/1.0.0\n",
             id);
    assert_string_equal(out, want);
    free(out);
    free(p.addr_bytes);
    dn_privkey_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_peer_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
