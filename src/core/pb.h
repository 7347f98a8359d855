/* Minimal protobuf wire-format codec (internal).
 *
 * libp2p messages here are small and flat (keys, noise payload, identify,
 * peer records), so a reader over a byte span and a writer into a dn_buf
 * are enough: no code generation, no allocation while reading, and every
 * length is checked against the span. Only varint (0) and length-delimited
 * (2) wire types are produced; fixed32/fixed64 are skipped when read. */
#ifndef DN_CORE_PB_H
#define DN_CORE_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmsnet/buf.h"

enum { DN_PB_VARINT = 0, DN_PB_I64 = 1, DN_PB_LEN = 2, DN_PB_I32 = 5 };

typedef struct dn_pb_reader {
    const uint8_t *p;
    const uint8_t *end;
} dn_pb_reader;

typedef struct dn_pb_field {
    uint32_t number;
    int wire_type;
    uint64_t varint;      /* DN_PB_VARINT, DN_PB_I64, DN_PB_I32 */
    const uint8_t *bytes; /* DN_PB_LEN: points into the reader's span */
    size_t len;
} dn_pb_field;

static inline void dn_pb_reader_init(dn_pb_reader *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->end = p ? p + len : p; /* an empty span may come as NULL (NULL + 0 is UB in C) */
}

/* Read the next field. Returns 1 when a field was read, 0 at the end of the
 * span, or a negative dn_error (DN_EMALFORMED / DN_ETRUNCATED). */
int dn_pb_next(dn_pb_reader *r, dn_pb_field *f);

int dn_pb_put_varint(dn_buf *b, uint32_t field, uint64_t v);
int dn_pb_put_bytes(dn_buf *b, uint32_t field, const void *p, size_t len);
int dn_pb_put_string(dn_buf *b, uint32_t field, const char *s);

#endif
