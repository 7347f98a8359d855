/* api token — the bearer token a TCP API client must send.
 *
 * 32 random bytes as 64 lowercase hex digits in <data-dir>/api.token, mode
 * 0600. The unix socket needs none: its own 0600 mode is the guard. */
#include "api/api.h"

#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmsnet/error.h"



static int token_create(const char *path, char out[DN_API_TOKEN_HEX_LEN + 1], char *err,
                        size_t errlen)
{
    if (sodium_init() < 0)
        return DN_ECRYPTO;
    uint8_t raw[DN_API_TOKEN_HEX_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, DN_API_TOKEN_HEX_LEN + 1, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    /* O_EXCL: never follow a link planted at the path, never share a file
     * another process is writing at the same moment. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    char line[DN_API_TOKEN_HEX_LEN + 1];
    memcpy(line, out, DN_API_TOKEN_HEX_LEN);
    line[DN_API_TOKEN_HEX_LEN] = '\n';
    int rc = dn__write_all(fd, line, sizeof line);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    sodium_memzero(line, sizeof line);
    if (rc != 0) {
        unlink(path);
        dn__set_err(err, errlen, "cannot write the API token %s: %s", path, strerror(-rc));
    }
    return rc;
}

int dn__api_token_load(const char *path, bool create, char out[DN_API_TOKEN_HEX_LEN + 1], char *err,
                       size_t errlen)
{
    if (!path) {
        dn__set_err(err, errlen, "no API token path");
        return DN_EINVAL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT && create) {
            int rc = token_create(path, out, err, errlen);
            if (rc == -EEXIST)
                continue; /* someone else made it just now: read theirs */
            if (rc < 0 && err && !err[0])
                dn__set_err(err, errlen, "cannot create the API token %s: %s", path, dn_strerror(rc));
            return rc;
        }
        if (fd < 0) {
            int e = errno;
            dn__set_err(err, errlen, "cannot open the API token %s: %s", path, strerror(e));
            return -e;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            dn__set_err(err, errlen, "the API token %s is not a regular file", path);
            return DN_EINVAL;
        }
        if (st.st_mode & 077) {
            close(fd);
            dn__set_err(err, errlen, "the API token %s is readable by others (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
            return DN_EINVAL;
        }
        char buf[DN_API_TOKEN_HEX_LEN + 4];
        ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        bool ok = n == DN_API_TOKEN_HEX_LEN;
        for (ssize_t i = 0; ok && i < n; i++)
            ok = (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f') ||
                 (buf[i] >= 'A' && buf[i] <= 'F');
        if (!ok) {
            sodium_memzero(buf, sizeof buf);
            dn__set_err(err, errlen, "the API token %s is not %d hex digits", path, DN_API_TOKEN_HEX_LEN);
            return DN_EMALFORMED;
        }
        memcpy(out, buf, DN_API_TOKEN_HEX_LEN);
        out[DN_API_TOKEN_HEX_LEN] = 0;
        sodium_memzero(buf, sizeof buf);
        return 0;
    }
    dn__set_err(err, errlen, "cannot create the API token %s", path);
    return DN_EIO;
}
