/* libp2p identity keys: the PublicKey / PrivateKey protobuf, Ed25519, and key
 * files. secp256k1, ECDSA P-256 and RSA live in keys_ec.c.
 *
 * Spec: libp2p/specs peer-ids/peer-ids.md, "Keys" and "Key Types". */
#include "core/io.h"
#include "crypto/keys_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "core/pb.h"
#include "crypto/keyfile.h"
#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "dmsnet/log.h"

/* Key files are a few dozen bytes; refuse to read anything much larger. */
#define KEYFILE_MAX (16 * 1024)

static int sodium_ready(void)
{
    /* The library may be embedded by programs that never call sodium_init;
     * it is idempotent and thread-safe, so call it where keys need it. */
    return sodium_init() < 0 ? DN_ECRYPTO : 0;
}

const char *dn_key_type_name(dn_key_type t)
{
    switch (t) {
    case DN_KEY_RSA: return "rsa";
    case DN_KEY_ED25519: return "ed25519";
    case DN_KEY_SECP256K1: return "secp256k1";
    case DN_KEY_ECDSA: return "ecdsa";
    }
    return "unknown";
}

int dn_key_type_parse(const char *name, dn_key_type *out)
{
    static const dn_key_type all[] = {DN_KEY_RSA, DN_KEY_ED25519, DN_KEY_SECP256K1, DN_KEY_ECDSA};
    if (!name || !out)
        return DN_EINVAL;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!strcasecmp(name, dn_key_type_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    }
    return DN_EINVAL;
}

/* Read a PublicKey or PrivateKey message. The peer-ids spec ("Keys") asks
 * for a deterministic encoding: minimal varints (dn_pb_next rejects
 * non-minimal ones), fields in tag order, both fields present, no other
 * fields. We accept exactly that, so one key has exactly one encoding and
 * therefore one peer ID. Input that stops before both fields were seen is
 * reported as truncated. */
static int key_pb_parse(const uint8_t *pb, size_t len, uint64_t *type, const uint8_t **data,
                        size_t *dlen)
{
    dn_pb_reader r;
    dn_pb_field f;
    dn_pb_reader_init(&r, pb, len);

    int rc = dn_pb_next(&r, &f);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return DN_ETRUNCATED;
    if (f.number != 1 || f.wire_type != DN_PB_VARINT)
        return DN_EMALFORMED;
    *type = f.varint;

    rc = dn_pb_next(&r, &f);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return DN_ETRUNCATED;
    if (f.number != 2 || f.wire_type != DN_PB_LEN)
        return DN_EMALFORMED;
    *data = f.bytes;
    *dlen = f.len;

    /* Anything after Data is a duplicate or an unknown field. */
    if (r.p != r.end)
        return DN_EMALFORMED;
    /* KeyType values past ECDSA are well-formed protobuf but no key we know. */
    if (*type > DN_KEY_ECDSA)
        return DN_EUNSUPPORTED;
    return 0;
}

static int key_pb_write(dn_buf *out, dn_key_type type, const uint8_t *data, size_t len)
{
    size_t start = out->len;
    /* Reserve everything first: private key bytes must not be left behind in
     * a block that realloc frees as the buffer grows. */
    int rc = dn_buf_reserve(out, 2 + 1 + DN_UVARINT_MAX + len);
    if (rc)
        return rc;
    rc = dn_pb_put_varint(out, 1, (uint64_t)type);
    if (!rc)
        rc = dn_pb_put_bytes(out, 2, data, len);
    if (rc)
        out->len = start; /* leave the buffer as it was on failure */
    return rc;
}

/* ---- public keys -------------------------------------------------------- */

static void pubkey_clear(dn_pubkey *k)
{
    free(k->data);
    k->data = NULL;
    k->len = 0;
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
}

static int pubkey_set_data(dn_pubkey *k, const uint8_t *data, size_t len)
{
    k->data = malloc(len ? len : 1);
    if (!k->data)
        return DN_ENOMEM;
    memcpy(k->data, data, len);
    k->len = len;
    return 0;
}

int dn_pubkey_from_protobuf(const uint8_t *pb, size_t len, dn_pubkey **out)
{
    if (!out || (!pb && len))
        return DN_EINVAL;
    *out = NULL;
    /* The largest key we accept (RSA 8192) fits in DN_PUBKEY_PB_MAX; a longer
     * message is refused before any parsing work. */
    if (len > DN_PUBKEY_PB_MAX)
        return DN_ETOOBIG;
    uint64_t type;
    const uint8_t *data;
    size_t dlen;
    int rc = key_pb_parse(pb, len, &type, &data, &dlen);
    if (rc)
        return rc;

    dn_pubkey *k = calloc(1, sizeof *k);
    if (!k)
        return DN_ENOMEM;
    k->type = (dn_key_type)type;
    if (k->type == DN_KEY_ED25519) {
        /* peer-ids spec, Ed25519: the public key is the raw 32 bytes. */
        rc = dlen == crypto_sign_PUBLICKEYBYTES ? 0 : DN_EMALFORMED;
    } else {
        rc = dn__ec_pubkey_parse(k, data, dlen);
    }
    if (!rc)
        rc = pubkey_set_data(k, data, dlen);
    if (rc) {
        dn_pubkey_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int dn_pubkey_to_protobuf(const dn_pubkey *k, dn_buf *out)
{
    if (!k || !out)
        return DN_EINVAL;
    return key_pb_write(out, k->type, k->data, k->len);
}

dn_key_type dn_pubkey_type(const dn_pubkey *k)
{
    return k->type;
}

int dn_pubkey_verify(const dn_pubkey *k, const uint8_t *msg, size_t len, const uint8_t *sig,
                     size_t siglen)
{
    if (!k || (!msg && len) || (!sig && siglen))
        return DN_EINVAL;
    if (k->type == DN_KEY_ED25519) {
        if (sodium_ready())
            return DN_ECRYPTO;
        if (siglen != crypto_sign_BYTES)
            return DN_EBADSIG;
        /* RFC 8032 verification; libsodium also rejects non-canonical and
         * small-order encodings. */
        return crypto_sign_verify_detached(sig, msg, len, k->data) == 0 ? 0 : DN_EBADSIG;
    }
    return dn__ec_verify(k, msg, len, sig, siglen);
}

int dn_pubkey_equal(const dn_pubkey *a, const dn_pubkey *b)
{
    if (!a || !b || a->type != b->type)
        return 0;
    if (a->type == DN_KEY_ECDSA) {
        /* Both Data forms (SPKI, js-libp2p's) end in the same point. */
        if (a->len < DN__EC_POINT_LEN || b->len < DN__EC_POINT_LEN)
            return 0;
        return !memcmp(a->data + a->len - DN__EC_POINT_LEN, b->data + b->len - DN__EC_POINT_LEN,
                       DN__EC_POINT_LEN);
    }
    return a->len == b->len && !memcmp(a->data, b->data, a->len);
}

void dn_pubkey_free(dn_pubkey *k)
{
    if (!k)
        return;
    pubkey_clear(k);
    free(k);
}

/* ---- private keys ------------------------------------------------------- */

static int ed25519_from_sk(dn_privkey *k)
{
    return pubkey_set_data(&k->pub, k->ed_sk + crypto_sign_SEEDBYTES, crypto_sign_PUBLICKEYBYTES);
}

/* peer-ids spec, Ed25519: Data is seed || public key (64 bytes), or the
 * legacy seed || public key || public key (96 bytes) whose two copies must
 * match. We also check that the public key belongs to the seed: a file whose
 * halves disagree would otherwise sign under one identity and announce
 * another. A bare 32-byte seed is rejected, as js- and go-libp2p do. */
static int ed25519_parse(dn_privkey *k, const uint8_t *data, size_t len)
{
    if (len != 64 && len != 96)
        return DN_EMALFORMED;
    if (len == 96 && memcmp(data + 32, data + 64, 32))
        return DN_EMALFORMED;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    if (crypto_sign_seed_keypair(pk, k->ed_sk, data))
        return DN_ECRYPTO;
    if (memcmp(pk, data + 32, sizeof pk))
        return DN_EMALFORMED;
    return ed25519_from_sk(k);
}

static dn_privkey *privkey_alloc(dn_key_type type)
{
    dn_privkey *k = calloc(1, sizeof *k);
    if (k) {
        k->type = type;
        k->pub.type = type;
    }
    return k;
}

int dn_privkey_generate(dn_key_type type, dn_privkey **out)
{
    if (!out)
        return DN_EINVAL;
    *out = NULL;
    if (type == DN_KEY_RSA)
        return DN_EUNSUPPORTED; /* RSA keys are verify-only here */
    if (type != DN_KEY_ED25519 && type != DN_KEY_SECP256K1 && type != DN_KEY_ECDSA)
        return DN_EINVAL;
    if (sodium_ready())
        return DN_ECRYPTO;
    dn_privkey *k = privkey_alloc(type);
    if (!k)
        return DN_ENOMEM;
    int rc;
    if (type == DN_KEY_ED25519) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
        rc = crypto_sign_keypair(pk, k->ed_sk) ? DN_ECRYPTO : ed25519_from_sk(k);
    } else {
        rc = dn__ec_privkey_generate(k);
    }
    if (rc) {
        dn_privkey_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int dn_privkey_from_protobuf(const uint8_t *pb, size_t len, dn_privkey **out)
{
    if (!out || (!pb && len))
        return DN_EINVAL;
    *out = NULL;
    if (len > DN__PRIVKEY_PB_MAX)
        return DN_ETOOBIG;
    uint64_t type;
    const uint8_t *data;
    size_t dlen;
    int rc = key_pb_parse(pb, len, &type, &data, &dlen);
    if (rc)
        return rc;
    if (type == DN_KEY_RSA)
        return DN_EUNSUPPORTED; /* we never hold RSA private keys */
    if (sodium_ready())
        return DN_ECRYPTO;
    dn_privkey *k = privkey_alloc((dn_key_type)type);
    if (!k)
        return DN_ENOMEM;
    if (k->type == DN_KEY_ED25519)
        rc = ed25519_parse(k, data, dlen);
    else
        rc = dn__ec_privkey_parse(k, data, dlen);
    if (rc) {
        dn_privkey_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int dn_privkey_to_protobuf(const dn_privkey *k, dn_buf *out)
{
    if (!k || !out)
        return DN_EINVAL;
    if (k->type == DN_KEY_ED25519)
        return key_pb_write(out, k->type, k->ed_sk, sizeof k->ed_sk);
    dn_buf data = DN_BUF_INIT;
    int rc = dn__ec_privkey_data(k, &data);
    if (!rc)
        rc = key_pb_write(out, k->type, data.data, data.len);
    dn_buf_free_secure(&data);
    return rc;
}

dn_key_type dn_privkey_type(const dn_privkey *k)
{
    return k->type;
}

const dn_pubkey *dn_privkey_public(const dn_privkey *k)
{
    return &k->pub;
}

int dn_privkey_sign(const dn_privkey *k, const uint8_t *msg, size_t len, uint8_t sig[DN_SIG_MAX],
                    size_t *siglen)
{
    if (!k || !sig || !siglen || (!msg && len))
        return DN_EINVAL;
    if (k->type == DN_KEY_ED25519) {
        unsigned long long n = 0;
        if (crypto_sign_detached(sig, &n, msg, len, k->ed_sk))
            return DN_ECRYPTO;
        *siglen = (size_t)n;
        return 0;
    }
    return dn__ec_sign(k, msg, len, sig, siglen);
}

void dn_privkey_free(dn_privkey *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey); /* OpenSSL clears the private BIGNUM on free */
    pubkey_clear(&k->pub);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

/* ---- key files ---------------------------------------------------------- */


/* The directory part of path ("." for a bare name) into dir. */
static int parent_dir(const char *path, char dir[4096])
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= 4096)
            return DN_ETOOBIG;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return 0;
}

static int fsync_parent_dir(const char *path)
{
    char dir[4096];
    int prc = parent_dir(path, dir);
    if (prc)
        return prc;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

#define TMP_SUFFIX ".tmp."
#define TMP_TEMPLATE TMP_SUFFIX "XXXXXX"

int dn__keyfile_tmp_open(const char *path, char **tmp_out)
{
    *tmp_out = NULL;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof TMP_TEMPLATE);
    if (!tmp)
        return DN_ENOMEM;
    for (int attempt = 0; attempt < 8; attempt++) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, TMP_TEMPLATE, sizeof TMP_TEMPLATE);
        int fd = mkostemp(tmp, O_CLOEXEC); /* created with mode 0600 */
        if (fd < 0) {
            int e = -errno;
            free(tmp);
            return e;
        }
        /* Between mkostemp and the lock a cleaner may see the file unlocked
         * and remove it; then the name is gone (no links left) and we start
         * over with a new one rather than write a key nobody can rename. */
        struct stat st;
        if (flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
            *tmp_out = tmp;
            return fd;
        }
        close(fd);
    }
    free(tmp);
    return DN_EIO;
}

/* mkstemp replaces the X's with characters from [A-Za-z0-9]. */
static bool is_our_tmp_name(const char *name, const char *base, size_t blen)
{
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, TMP_SUFFIX, strlen(TMP_SUFFIX)))
        return false;
    const char *x = name + blen + strlen(TMP_SUFFIX);
    size_t n = 0;
    for (; x[n]; n++)
        if (!((x[n] >= 'a' && x[n] <= 'z') || (x[n] >= 'A' && x[n] <= 'Z') ||
              (x[n] >= '0' && x[n] <= '9')))
            return false;
    return n == 6;
}

int dn__keyfile_remove_stale(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    int prc = parent_dir(path, dir);
    if (prc)
        return prc;
    size_t blen = strlen(base);
    if (blen == 0)
        return DN_EINVAL;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    int lfd = dup(dfd);
    DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
    if (!d) {
        int e = -errno;
        if (lfd >= 0)
            close(lfd);
        close(dfd);
        return e;
    }
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_our_tmp_name(e->d_name, base, blen))
            continue;
        /* O_NOFOLLOW | O_NONBLOCK: a symlink or FIFO planted under such a
         * name is neither followed nor waited on; only a regular file of
         * ours, with no writer holding its lock, was left by a dead writer. */
        int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            continue;
        struct stat st, now;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
            flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            fstatat(dfd, e->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_dev == st.st_dev &&
            now.st_ino == st.st_ino && unlinkat(dfd, e->d_name, 0) == 0) {
            DN_WARN("keys", "removed %s/%s: a key file left by an interrupted write", dir,
                    e->d_name);
            removed++;
        }
        close(fd); /* also drops our lock */
    }
    closedir(d);
    close(dfd);
    return removed;
}

/* Write to a temporary file beside the target (same filesystem, so rename is
 * atomic), fsync it, rename it over the target, then fsync the directory so
 * the rename itself survives a crash. A reader never sees a partial key.
 * Leftovers of earlier writers that died before their rename go first. */
int dn_privkey_save(const dn_privkey *k, const char *path)
{
    if (!k || !path || !*path)
        return DN_EINVAL;
    dn_buf pb = DN_BUF_INIT;
    char *tmp = NULL;
    int rc = dn_privkey_to_protobuf(k, &pb);
    int fd = -1;
    if (rc)
        goto out;
    (void)dn__keyfile_remove_stale(path); /* best effort: the write does not depend on it */
    fd = dn__keyfile_tmp_open(path, &tmp);
    if (fd < 0) {
        rc = fd;
        fd = -1;
        goto out;
    }
    if (fchmod(fd, 0600) || (rc = dn__write_all(fd, pb.data, pb.len)) != 0 || fsync(fd)) {
        rc = rc ? rc : -errno;
        goto fail;
    }
    /* The rename happens with the lock still held, so no cleaner can take
     * the file for a dead writer's before it has its final name. */
    if (rename(tmp, path)) {
        rc = -errno;
        goto fail;
    }
    if (close(fd)) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    rc = fsync_parent_dir(path);
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out:
    dn_buf_free_secure(&pb);
    free(tmp);
    return rc;
}

int dn_privkey_load(const char *path, dn_privkey **out)
{
    if (!path || !out)
        return DN_EINVAL;
    *out = NULL;
    /* O_NONBLOCK: a FIFO (or a device) at path must not block us before the
     * S_ISREG check refuses it. It changes nothing for a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st)) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return DN_EINVAL;
    }
    if (st.st_size > KEYFILE_MAX) {
        close(fd);
        return DN_ETOOBIG;
    }
    /* Read at most one byte past the limit: the file may grow after fstat. */
    uint8_t buf[KEYFILE_MAX + 1];
    size_t n = 0;
    int rc = 0;
    while (n < sizeof buf) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!rc && n > KEYFILE_MAX)
        rc = DN_ETOOBIG;
    if (!rc)
        rc = dn_privkey_from_protobuf(buf, n, out);
    sodium_memzero(buf, n);
    /* Warn only about real keys, so a bad file gets exactly one error. */
    if (!rc && (st.st_mode & 077))
        DN_WARN("keys", "key file %s is accessible by other users (mode %03o); use chmod 600", path,
                (unsigned)(st.st_mode & 0777));
    return rc;
}
