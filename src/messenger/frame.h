/* The Messenger's framing (NuNet DMS network package, see shared
 * DESIGN.md "Messages:"): one frame per stream, an 8-byte little-endian
 * payload length, then the payload. Sans-I/O: the reader takes bytes as
 * they come and yields one whole payload. */
#ifndef DN_MESSENGER_FRAME_H
#define DN_MESSENGER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DN__MSG_HEADER_LEN 8

/* The header for a payload of len bytes. */
void dn__msg_frame_header(uint64_t len, uint8_t out[DN__MSG_HEADER_LEN]);

typedef struct dn__msg_reader {
    size_t limit; /* largest payload accepted */
    uint8_t hdr[DN__MSG_HEADER_LEN];
    size_t hdr_have;
    bool have_len; /* the header is complete */
    size_t want;   /* declared payload length (once have_len) */
    uint8_t *buf;  /* payload bytes so far; grows, never past want */
    size_t have, cap;
    int status; /* 0 reading, 1 payload complete, <0 refused */
} dn__msg_reader;

void dn__msg_reader_init(dn__msg_reader *r, size_t limit);
/* Take up to len bytes; *used says how many were taken. Returns 0 (more
 * needed), 1 (the payload is complete: bytes past it are not taken), or
 * DN_ETOOBIG as soon as a header declares more than limit (nothing of
 * that payload is buffered), DN_ENOMEM. After 1 or an error, further
 * calls take nothing and return the same. */
int dn__msg_reader_feed(dn__msg_reader *r, const uint8_t *data, size_t len, size_t *used);
/* The declared length, once the header is complete (else false). */
bool dn__msg_reader_declared(const dn__msg_reader *r, size_t *len);
/* The complete payload (status 1), valid until free/take. */
const uint8_t *dn__msg_reader_payload(const dn__msg_reader *r, size_t *len);
/* Bytes the reader holds (header and payload), for budgets. */
size_t dn__msg_reader_held(const dn__msg_reader *r);
void dn__msg_reader_free(dn__msg_reader *r);

#endif
