/* dmsnet — growable byte buffer.
 *
 * A dn_buf owns `data` (heap, `cap` bytes); `len` bytes are in use. Buffers
 * are reused across frames on hot paths: dn_buf_reset keeps the memory. */
#ifndef DMSNET_BUF_H
#define DMSNET_BUF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dn_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} dn_buf;

#define DN_BUF_INIT {NULL, 0, 0}

static inline void dn_buf_init(dn_buf *b) { b->data = NULL; b->len = 0; b->cap = 0; }
/* Make room for `extra` more bytes. Returns 0 or DN_ENOMEM. */
int dn_buf_reserve(dn_buf *b, size_t extra);
/* Append bytes. Returns 0 or DN_ENOMEM. */
int dn_buf_append(dn_buf *b, const void *p, size_t n);
int dn_buf_append_byte(dn_buf *b, uint8_t c);
/* Append an unsigned varint. */
int dn_buf_append_uvarint(dn_buf *b, uint64_t v);
/* Drop the first n bytes, moving the rest to the front. */
void dn_buf_consume(dn_buf *b, size_t n);
/* Forget the contents, keep the memory. */
static inline void dn_buf_reset(dn_buf *b) { b->len = 0; }
/* Release the memory. */
void dn_buf_free(dn_buf *b);
/* Wipe the contents (secrets), then release the memory. */
void dn_buf_free_secure(dn_buf *b);

#ifdef __cplusplus
}
#endif
#endif
