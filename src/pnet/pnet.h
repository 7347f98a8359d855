/* pnet — libp2p private network protector, PSK v1 (pnet spec), sans-I/O.
 *
 * Each side first writes its own random 24-byte nonce; after that, every
 * byte in each direction is XORed with an XSalsa20 keystream keyed by the
 * 32-byte swarm key and that direction's sender nonce. The two directions
 * are independent keystreams. A wrong key is not detected here: the next
 * layer (multistream) sees garbage and fails. */
#ifndef DN_PNET_H
#define DN_PNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DN_PNET_NONCE_LEN 24
#define DN_PSK_LEN 32
#define DN_PNET_KS_LEN 512

typedef struct dn_pnet_stream {
    uint8_t nonce[DN_PNET_NONCE_LEN];
    /* XSalsa20 is HSalsa20(key, nonce[0..16]) -> subkey, then Salsa20(subkey,
     * nonce[16..24]); computing the subkey once per direction instead of per
     * call saves 12% (1 KiB writes) to 50% (64-byte writes). */
    uint8_t subkey[32];
    uint64_t block; /* next 64-byte keystream block counter */
    /* Keystream made ahead for writes that end inside it. 8 blocks, not 1:
     * libsodium's fast (AVX2) Salsa20 path works on 512-byte runs, so
     * writes of any size keep the speed of long aligned ones. */
    uint8_t ks[DN_PNET_KS_LEN];
    uint16_t ks_used; /* bytes of ks already used (DN_PNET_KS_LEN = none left) */
} dn_pnet_stream;

typedef struct dn_pnet {
    uint8_t psk[DN_PSK_LEN];
    dn_pnet_stream out;        /* our nonce; encrypts what we send */
    dn_pnet_stream in;         /* the peer's nonce; decrypts what we receive */
    uint8_t remote_nonce_have; /* bytes of the peer's nonce received so far */
} dn_pnet;

/* Set up with the swarm key and our fresh random nonce (callers use
 * randombytes_buf). The nonce must be written to the peer first, as is. */
void dn_pnet_init(dn_pnet *p, const uint8_t psk[DN_PSK_LEN],
                  const uint8_t local_nonce[DN_PNET_NONCE_LEN]);
/* Feed received bytes until the peer's nonce is complete. Returns the
 * number of bytes consumed (<= len); the rest is ciphertext. */
size_t dn_pnet_feed_nonce(dn_pnet *p, const uint8_t *in, size_t len);
static inline bool dn_pnet_ready(const dn_pnet *p)
{
    return p->remote_nonce_have == DN_PNET_NONCE_LEN;
}
/* XOR in place with our outbound / the inbound keystream. Any split of the
 * data into calls gives the same bytes. dn_pnet_decrypt does nothing until
 * dn_pnet_ready (a caller bug: there is no keystream yet). */
void dn_pnet_encrypt(dn_pnet *p, uint8_t *buf, size_t len);
void dn_pnet_decrypt(dn_pnet *p, uint8_t *buf, size_t len);
/* Wipe the key and keystream state. */
void dn_pnet_wipe(dn_pnet *p);

/* Swarm key files (go-libp2p / IPFS format):
 *   /key/swarm/psk/1.0.0/\n/base16/\n<64 hex digits>[\n]
 * also /base64/ (32 bytes encoded) and /bin/ (32 raw bytes). */
/* Lines end in "\n" or "\r\n"; whitespace after base16/base64 text is
 * ignored, and one final newline after /bin/ bytes. Returns 0, or
 * DN_EMALFORMED (wrong header line, bad hex/base64 character),
 * DN_EUNSUPPORTED (unknown encoding line), DN_ETRUNCATED / DN_ETOOBIG (key
 * shorter / longer than 32 bytes). psk is only written on success. */
int dn_swarm_key_parse(const uint8_t *data, size_t len, uint8_t psk[DN_PSK_LEN]);
/* The /base16/ form, NUL-terminated; out needs at least DN_SWARM_KEY_TEXT_MAX. */
#define DN_SWARM_KEY_TEXT_MAX 96
int dn_swarm_key_format(const uint8_t psk[DN_PSK_LEN], char *out, size_t outlen);
/* Read a key file (at most 4 KiB, else DN_ETOOBIG; not a regular file:
 * DN_EINVAL; OS errors as -errno) and parse it; the file bytes are wiped
 * after. Logs the reason of a failure, and a warning when the file is
 * accessible by group or others. */
int dn_swarm_key_load(const char *path, uint8_t psk[DN_PSK_LEN]);

#endif
