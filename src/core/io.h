/* Small helpers for modules that report errors as text and write small
 * files (key files, tokens, configuration), internal. */
#ifndef DN_CORE_IO_H
#define DN_CORE_IO_H

#include <stddef.h>

/* Write all n bytes to fd, retrying on EINTR and short writes. Returns 0 or
 * -errno. */
int dn__write_all(int fd, const void *p, size_t n);

/* Format a message into err (errlen bytes; err may be NULL or errlen 0). */
void dn__set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
