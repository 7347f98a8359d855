/* Small blocking file I/O helpers (key files, tokens), internal. */
#ifndef DN_CORE_IO_H
#define DN_CORE_IO_H

#include <stddef.h>

/* Write all n bytes to fd, retrying on EINTR and short writes. Returns 0 or
 * -errno. */
int dn__write_all(int fd, const void *p, size_t n);

#endif
