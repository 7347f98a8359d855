/* dmsnet — multiaddr (multiaddr spec), binary and string, both ways.
 *
 * A dn_multiaddr holds the binary form. Supported protocols: ip4, ip6, tcp,
 * udp, dns, dns4, dns6, dnsaddr, p2p (and legacy /ipfs on input), quic-v1,
 * ws, wss, tls, p2p-circuit, unix. Parse errors name the component and why
 * through dn_multiaddr_error (a thread-local message). */
#ifndef DMSNET_MULTIADDR_H
#define DMSNET_MULTIADDR_H

#include <stddef.h>
#include <stdint.h>

#include "dmsnet/peerid.h"

#ifdef __cplusplus
extern "C" {
#endif

/* multicodec codes (multicodec table) */
enum dn_ma_proto {
    DN_MA_IP4 = 0x04,
    DN_MA_TCP = 0x06,
    DN_MA_DNS = 0x35,
    DN_MA_DNS4 = 0x36,
    DN_MA_DNS6 = 0x37,
    DN_MA_DNSADDR = 0x38,
    DN_MA_UDP = 0x0111,
    DN_MA_IP6 = 0x29,
    DN_MA_P2P = 0x01a5,
    DN_MA_P2P_CIRCUIT = 0x0122,
    DN_MA_UNIX = 0x0190,
    DN_MA_TLS = 0x01c0,
    DN_MA_QUIC_V1 = 0x01cd, /* 0x01cc is the old draft-29 "quic" */
    DN_MA_WS = 0x01dd,
    DN_MA_WSS = 0x01de,
};

/* Multiaddrs longer than this are rejected (they never need to be). */
#define DN_MULTIADDR_MAX 1024
/* Room for the string form of any accepted multiaddr. */
#define DN_MULTIADDR_STR_MAX 2048

typedef struct dn_multiaddr {
    size_t len;
    uint8_t bytes[DN_MULTIADDR_MAX];
} dn_multiaddr;

/* One component while iterating. value points into the multiaddr. */
typedef struct dn_ma_component {
    uint32_t code;
    const uint8_t *value;
    size_t value_len;
} dn_ma_component;

int dn_multiaddr_parse(const char *s, dn_multiaddr *out);
int dn_multiaddr_from_bytes(const uint8_t *b, size_t len, dn_multiaddr *out); /* validates */
/* String form; returns length or negative error. */
int dn_multiaddr_to_string(const dn_multiaddr *ma, char *out, size_t outlen);
/* Why the last parse on this thread failed ("component 3 (tcp): port 70000 out of range"). */
const char *dn_multiaddr_error(void);

/* Iterate: *off starts at 0; returns 1 with a component, 0 at the end,
 * negative on malformed bytes. */
int dn_multiaddr_next(const dn_multiaddr *ma, size_t *off, dn_ma_component *c);
/* Append a component (value already in binary form). */
int dn_multiaddr_append(dn_multiaddr *ma, uint32_t code, const uint8_t *value, size_t len);
/* The peer id of the last /p2p component: 0, or DN_ENOTFOUND. */
int dn_multiaddr_peerid(const dn_multiaddr *ma, dn_peerid *out);
/* Copy ma without a trailing /p2p/<id> component. */
void dn_multiaddr_strip_p2p(const dn_multiaddr *ma, dn_multiaddr *out);
/* Name of a protocol code ("tcp"), or NULL. */
const char *dn_ma_proto_name(uint32_t code);

#ifdef __cplusplus
}
#endif
#endif
