/* dmsnet — varints and base encodings (multiformats), and escaping of
 * untrusted text for output.
 *
 * Decoders take (input, length) and never read past it; they return the
 * number of bytes written/consumed, or a negative dn_error code. */
#ifndef DMSNET_ENCODING_H
#define DMSNET_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* unsigned-varint spec: at most 9 bytes (63 bits), minimal encoding only. */
#define DN_UVARINT_MAX 9

/* Encode v (must be < 2^63) into out (DN_UVARINT_MAX bytes room). Returns
 * the number of bytes written. */
size_t dn_uvarint_encode(uint64_t v, uint8_t *out);
/* Length of the encoding of v. */
size_t dn_uvarint_len(uint64_t v);
/* Decode one varint from in[0..len). Returns bytes consumed (>0),
 * DN_ETRUNCATED if more input is needed, DN_EMALFORMED if not minimal,
 * DN_ETOOBIG past 9 bytes. */
int dn_uvarint_decode(const uint8_t *in, size_t len, uint64_t *out);

/* Base encoders write a NUL-terminated string into out (outlen bytes).
 * They return the string length, or DN_ETOOBIG when out is too small.
 * dn_base*_enc_len gives the room needed, NUL included. */
size_t dn_base16_enc_len(size_t n);
int dn_base16_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
size_t dn_base32_enc_len(size_t n);
int dn_base32_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
size_t dn_base58_enc_len(size_t n);
int dn_base58_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
size_t dn_base64_enc_len(size_t n);
int dn_base64_encode(const uint8_t *in, size_t n, char *out, size_t outlen);   /* standard, padded */
int dn_base64url_encode(const uint8_t *in, size_t n, char *out, size_t outlen); /* URL, no padding */

/* Base decoders read `n` characters (no NUL needed) and write into out
 * (outlen bytes). They return the number of bytes written, DN_EMALFORMED
 * for a character outside the alphabet or a bad length, DN_ETOOBIG when out
 * is too small. base16 accepts both cases; base32 is RFC 4648 lower case
 * without padding (upper case accepted too); base64 accepts padded or
 * unpadded input. */
int dn_base16_decode(const char *in, size_t n, uint8_t *out, size_t outlen);
int dn_base32_decode(const char *in, size_t n, uint8_t *out, size_t outlen);
int dn_base58_decode(const char *in, size_t n, uint8_t *out, size_t outlen);
int dn_base64_decode(const char *in, size_t n, uint8_t *out, size_t outlen);
int dn_base64url_decode(const char *in, size_t n, uint8_t *out, size_t outlen);

/* Render untrusted bytes (a peer's agent version, protocol names...) as
 * text safe to print or log: C0 controls (bytes < 0x20), DEL, C1 controls
 * (U+0080..U+009F) and bytes that are not well-formed UTF-8 become \xNN
 * escapes (lower-case hex, one per byte), a backslash becomes \\, valid
 * UTF-8 passes unchanged. A NUL byte in the input is escaped like any
 * control. out (outlen bytes) is always NUL-terminated when outlen > 0;
 * truncation drops whole characters or escapes, never half of one.
 * Returns the length of the full rendering (NUL excluded), as snprintf
 * does: a result >= outlen means the output was truncated. out may be
 * NULL when outlen is 0 (to measure). */
size_t dn_escape_text(const char *in, size_t len, char *out, size_t outlen);
/* Room for the rendering of n bytes in the worst case, NUL included. */
#define DN_ESCAPE_MAX(n) (4 * (n) + 1)

#ifdef __cplusplus
}
#endif
#endif
