/* libFuzzer target for the Identify message codec (src/proto/identify_msg.c)
 * on arbitrary bytes. Checks the contract of identify_msg.h: errors are
 * documented codes; a decoded message keeps its bounds (counts, string
 * lengths, protocol names without control bytes); encoding it gives bytes
 * that decode to a message encoding to the very same bytes (a fixed point);
 * and the peer-supplied strings escape to text without control bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsnet/buf.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/keys.h"
#include "proto/identify_msg.h"

static void check_text(const char *s)
{
    size_t n = strnlen(s, DN_IDENTIFY_MAX_STRING);
    if (n >= DN_IDENTIFY_MAX_STRING)
        abort(); /* not NUL-terminated within its bound */
    char out[DN_ESCAPE_MAX(DN_IDENTIFY_MAX_STRING)];
    size_t len = dn_escape_text(s, n, out, sizeof out);
    if (len >= sizeof out || strlen(out) != len)
        abort();
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            abort();
}

static void check_bounds(const dn__identify_msg *m)
{
    if (m->nlisten_addrs > DN_IDENTIFY_MAX_ADDRS || m->nprotocols > DN_IDENTIFY_MAX_PROTOCOLS)
        abort();
    if (m->public_key_len > DN_PUBKEY_PB_MAX || (m->public_key_len && !m->public_key) ||
        (m->signed_record_len && !m->signed_record))
        abort();
    if ((m->nlisten_addrs || m->dropped_addrs) && !m->has_listen_addrs)
        abort();
    if ((m->nprotocols || m->dropped_protocols) && !m->has_protocols)
        abort();
    for (size_t i = 0; i < m->nprotocols; i++) {
        size_t n = strlen(m->protocols[i]);
        if (n == 0 || n >= DN_IDENTIFY_MAX_STRING)
            abort();
        for (size_t j = 0; j < n; j++)
            if ((unsigned char)m->protocols[i][j] < 0x20)
                abort();
        check_text(m->protocols[i]);
    }
    check_text(m->agent_version);
    check_text(m->protocol_version);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dn__identify_msg m, m2; /* ~70 KiB each: not on the stack */
    int rc = dn__identify_decode(data, size, &m);
    if (rc) {
        if (rc != DN_EMALFORMED && rc != DN_ETRUNCATED && rc != DN_ETOOBIG && rc != DN_ENOMEM)
            abort();
        if (m.public_key || m.signed_record || m.nprotocols)
            abort(); /* nothing owned after an error */
        return 0;
    }
    check_bounds(&m);
    if (size <= DN_IDENTIFY_MSG_MAX) {
        dn_buf a = DN_BUF_INIT, b = DN_BUF_INIT;
        /* Dropping can only shrink a message, so what decoded encodes. */
        if (dn__identify_encode(&m, &a))
            abort();
        if (a.len > size)
            abort();
        if (dn__identify_decode(a.data, a.len, &m2))
            abort();
        check_bounds(&m2);
        if (m2.dropped_addrs || m2.dropped_protocols || m2.nlisten_addrs != m.nlisten_addrs ||
            m2.nprotocols != m.nprotocols)
            abort();
        if (dn__identify_encode(&m2, &b) || a.len != b.len ||
            (a.len && memcmp(a.data, b.data, a.len)))
            abort();
        dn__identify_msg_free(&m2);
        dn_buf_free(&a);
        dn_buf_free(&b);
    }
    dn__identify_msg_free(&m);
    return 0;
}
