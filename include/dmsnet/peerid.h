/* dmsnet — libp2p peer IDs (peer-ids spec).
 *
 * A peer ID is the multihash of the public key protobuf: identity multihash
 * when that encoding is 42 bytes or less, sha2-256 otherwise. Text forms:
 * legacy base58btc of the multihash, and CIDv1 (libp2p-key codec 0x72) in
 * multibase base32; both are parsed, base58btc is printed by default. */
#ifndef DMSNET_PEERID_H
#define DMSNET_PEERID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

/* identity multihash of a 42-byte key: 2 + 42 bytes; sha2-256: 34. */
#define DN_PEERID_MAX 48
/* Longest text form (CIDv1 base32 of 48 bytes + prefix) plus NUL. */
#define DN_PEERID_STR_MAX 96

typedef struct dn_peerid {
    uint8_t len;
    uint8_t bytes[DN_PEERID_MAX]; /* the multihash */
} dn_peerid;

int dn_peerid_from_pubkey(const dn_pubkey *k, dn_peerid *out);
/* Multihash bytes (as in a /p2p/ multiaddr component). */
int dn_peerid_from_bytes(const uint8_t *mh, size_t len, dn_peerid *out);
/* Base58btc ("12D3KooW...", "Qm...") or CIDv1 ("bafz..."). */
int dn_peerid_parse(const char *s, dn_peerid *out);
/* Base58btc; returns length or negative error. */
int dn_peerid_to_string(const dn_peerid *id, char *out, size_t outlen);
/* CIDv1, libp2p-key, multibase base32 ("b..."). */
int dn_peerid_to_cid_string(const dn_peerid *id, char *out, size_t outlen);
/* A short form for logs: last 6 characters of the base58 form. */
const char *dn_peerid_short(const dn_peerid *id, char buf[16]);
bool dn_peerid_equal(const dn_peerid *a, const dn_peerid *b);
/* The public key inside an identity-multihash peer ID; DN_ENOTFOUND for
 * sha2-256 ids. */
int dn_peerid_extract_pubkey(const dn_peerid *id, dn_pubkey **out);
/* 1 when the public key hashes to this id. */
bool dn_peerid_matches_pubkey(const dn_peerid *id, const dn_pubkey *k);

#ifdef __cplusplus
}
#endif
#endif
