/* pnet — libp2p private network protector, PSK v1, and swarm key files.
 *
 * Spec: libp2p/specs pnet/Private-Networks-PSK-V1.md. Each side writes a
 * random 24-byte nonce, then XORs everything it sends with the XSalsa20
 * keystream of (PSK, own nonce); the reader does the same with the peer's
 * nonce. There is no handshake and no authentication at this layer: a wrong
 * key shows up as garbage one layer up (multistream-select fails). */
#include "pnet/pnet.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "dmsnet/error.h"
#include "dmsnet/log.h"

/* ---- keystream ---------------------------------------------------------- */

static void stream_init(dn_pnet_stream *s, const uint8_t psk[DN_PSK_LEN],
                        const uint8_t nonce[DN_PNET_NONCE_LEN])
{
    memcpy(s->nonce, nonce, DN_PNET_NONCE_LEN);
    /* XSalsa20 = Salsa20 keyed with HSalsa20(key, nonce[0..16]) and the last
     * 8 nonce bytes as the Salsa20 nonce (XSalsa20 paper, section 2). Doing the
     * HSalsa20 step once here keeps it off the per-write path. */
    crypto_core_hsalsa20(s->subkey, s->nonce, psk, NULL);
    s->block = 0;
    memset(s->ks, 0, sizeof s->ks);
    s->ks_used = DN_PNET_KS_LEN;
}

/* buf ^= ks, 8 bytes at a time where possible (memcpy keeps it free of
 * alignment and aliasing trouble; compilers turn it into plain loads). */
static void xor_bytes(uint8_t *buf, const uint8_t *ks, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, buf + i, 8);
        memcpy(&b, ks + i, 8);
        a ^= b;
        memcpy(buf + i, &a, 8);
    }
    for (; i < len; i++)
        buf[i] ^= ks[i];
}

/* XOR buf with the next len bytes of the stream's keystream. Keystream
 * made ahead and not used yet stays in s->ks, so writes may be split at
 * any byte. Keystream is always made in runs of whole multiples of
 * DN_PNET_KS_LEN: libsodium's SIMD Salsa20 is several times slower on the
 * 1..7 blocks left over from shorter runs. */
static void stream_xor(dn_pnet_stream *s, uint8_t *buf, size_t len)
{
    size_t left = DN_PNET_KS_LEN - s->ks_used;
    if (left > 0) {
        size_t n = len < left ? len : left;
        xor_bytes(buf, s->ks + s->ks_used, n);
        s->ks_used = (uint16_t)(s->ks_used + n);
        buf += n;
        len -= n;
    }
    if (len >= DN_PNET_KS_LEN) {
        size_t whole = len - len % DN_PNET_KS_LEN;
        crypto_stream_salsa20_xor_ic(buf, buf, whole, s->nonce + 16, s->block, s->subkey);
        s->block += whole / 64;
        buf += whole;
        len -= whole;
    }
    if (len > 0) {
        memset(s->ks, 0, sizeof s->ks);
        crypto_stream_salsa20_xor_ic(s->ks, s->ks, sizeof s->ks, s->nonce + 16, s->block,
                                     s->subkey);
        s->block += DN_PNET_KS_LEN / 64;
        xor_bytes(buf, s->ks, len);
        s->ks_used = (uint16_t)len;
    }
}

void dn_pnet_init(dn_pnet *p, const uint8_t psk[DN_PSK_LEN],
                  const uint8_t local_nonce[DN_PNET_NONCE_LEN])
{
    memset(p, 0, sizeof *p);
    memcpy(p->psk, psk, DN_PSK_LEN);
    stream_init(&p->out, psk, local_nonce);
    p->in.ks_used = DN_PNET_KS_LEN;
    p->remote_nonce_have = 0;
}

size_t dn_pnet_feed_nonce(dn_pnet *p, const uint8_t *in, size_t len)
{
    size_t want = DN_PNET_NONCE_LEN - p->remote_nonce_have;
    size_t take = len < want ? len : want;
    if (take == 0)
        return 0;
    memcpy(p->in.nonce + p->remote_nonce_have, in, take);
    p->remote_nonce_have = (uint8_t)(p->remote_nonce_have + take);
    if (p->remote_nonce_have == DN_PNET_NONCE_LEN) {
        uint8_t nonce[DN_PNET_NONCE_LEN];
        memcpy(nonce, p->in.nonce, sizeof nonce);
        stream_init(&p->in, p->psk, nonce);
    }
    return take;
}

void dn_pnet_encrypt(dn_pnet *p, uint8_t *buf, size_t len)
{
    stream_xor(&p->out, buf, len);
}

void dn_pnet_decrypt(dn_pnet *p, uint8_t *buf, size_t len)
{
    /* Decrypting before the peer's nonce is complete is a caller bug; refuse
     * quietly rather than XOR with a keystream derived from a partial nonce. */
    if (!dn_pnet_ready(p))
        return;
    stream_xor(&p->in, buf, len);
}

void dn_pnet_wipe(dn_pnet *p)
{
    sodium_memzero(p, sizeof *p);
}

/* ---- swarm key files ---------------------------------------------------- */

/* The path-based multicodec header of the file (pnet spec, "Interface"). */
static const char key_codec[] = "/key/swarm/psk/1.0.0/";

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Take one line from data[*pos..len): returns its length without the
 * "\n" or "\r\n", or -1 if no '\n' is left. */
static long take_line(const uint8_t *data, size_t len, size_t *pos, const uint8_t **line)
{
    const uint8_t *start = data + *pos;
    const uint8_t *nl = memchr(start, '\n', len - *pos);
    if (!nl)
        return -1;
    size_t n = (size_t)(nl - start);
    *pos += n + 1;
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    return (long)n;
}

static int line_is(const uint8_t *line, long n, const char *want)
{
    return n >= 0 && (size_t)n == strlen(want) && memcmp(line, want, (size_t)n) == 0;
}

/* The parser, with a reason for the error (for the log of dn_swarm_key_load;
 * it never includes key material). */
static int parse_key(const uint8_t *data, size_t len, uint8_t psk[DN_PSK_LEN], const char **why)
{
    size_t pos = 0;
    const uint8_t *line = NULL;
    long n;

    n = take_line(data, len, &pos, &line);
    if (!line_is(line, n, key_codec)) {
        *why = "first line is not /key/swarm/psk/1.0.0/";
        return DN_EMALFORMED;
    }
    n = take_line(data, len, &pos, &line);
    if (n < 0) {
        *why = "no encoding line (/base16/, /base64/ or /bin/)";
        return DN_EMALFORMED;
    }
    const uint8_t *body = data + pos;
    size_t blen = len - pos;

    if (line_is(line, n, "/bin/")) {
        /* Raw bytes may be anything, whitespace included: only a final
         * newline ("\n" or "\r\n") after exactly 32 bytes is tolerated. */
        if (blen == DN_PSK_LEN + 1 && body[DN_PSK_LEN] == '\n')
            blen = DN_PSK_LEN;
        else if (blen == DN_PSK_LEN + 2 && body[DN_PSK_LEN] == '\r' && body[DN_PSK_LEN + 1] == '\n')
            blen = DN_PSK_LEN;
        if (blen != DN_PSK_LEN) {
            *why = blen < DN_PSK_LEN ? "key shorter than 32 bytes" : "key longer than 32 bytes";
            return blen < DN_PSK_LEN ? DN_ETRUNCATED : DN_ETOOBIG;
        }
        memcpy(psk, body, DN_PSK_LEN);
        return 0;
    }

    int is16 = line_is(line, n, "/base16/");
    int is64 = line_is(line, n, "/base64/");
    if (!is16 && !is64) {
        *why = "unknown key encoding (want /base16/, /base64/ or /bin/)";
        return DN_EUNSUPPORTED;
    }
    /* Trailing whitespace (a final newline, editors' extra lines) is fine;
     * anything inside the key text is not. */
    while (blen > 0 && is_space(body[blen - 1]))
        blen--;

    if (is16) {
        for (size_t i = 0; i < blen; i++) {
            if (hex_val(body[i]) < 0) {
                *why = "key text has a character that is not a hex digit";
                return DN_EMALFORMED;
            }
        }
        if (blen != 2 * DN_PSK_LEN) {
            *why = blen < 2 * DN_PSK_LEN ? "key shorter than 64 hex digits"
                                         : "key longer than 64 hex digits";
            return blen < 2 * DN_PSK_LEN ? DN_ETRUNCATED : DN_ETOOBIG;
        }
        for (size_t i = 0; i < DN_PSK_LEN; i++)
            psk[i] = (uint8_t)(hex_val(body[2 * i]) << 4 | hex_val(body[2 * i + 1]));
        return 0;
    }

    /* /base64/: standard alphabet (RFC 4648 section 4), padded as go writes
     * it, or unpadded. 48 bytes of room tell "too long" from "bad text". */
    uint8_t tmp[48];
    size_t got = 0;
    const char *end = NULL;
    int variant = (blen > 0 && body[blen - 1] == '=') ? sodium_base64_VARIANT_ORIGINAL
                                                      : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    if (blen > 64) {
        *why = "key longer than 32 bytes";
        return DN_ETOOBIG;
    }
    int rc =
        sodium_base642bin(tmp, sizeof tmp, (const char *)body, blen, NULL, &got, &end, variant);
    if (rc != 0 || end != (const char *)body + blen) {
        sodium_memzero(tmp, sizeof tmp);
        *why = "key text is not valid base64";
        return DN_EMALFORMED;
    }
    if (got != DN_PSK_LEN) {
        sodium_memzero(tmp, sizeof tmp);
        *why = got < DN_PSK_LEN ? "key shorter than 32 bytes" : "key longer than 32 bytes";
        return got < DN_PSK_LEN ? DN_ETRUNCATED : DN_ETOOBIG;
    }
    memcpy(psk, tmp, DN_PSK_LEN);
    sodium_memzero(tmp, sizeof tmp);
    return 0;
}

int dn_swarm_key_parse(const uint8_t *data, size_t len, uint8_t psk[DN_PSK_LEN])
{
    const char *why = NULL;
    if (!data && len > 0)
        return DN_EINVAL;
    if (!data)
        data = (const uint8_t *)"";
    uint8_t key[DN_PSK_LEN];
    int rc = parse_key(data, len, key, &why);
    if (rc == 0)
        memcpy(psk, key, DN_PSK_LEN);
    sodium_memzero(key, sizeof key);
    return rc;
}

int dn_swarm_key_format(const uint8_t psk[DN_PSK_LEN], char *out, size_t outlen)
{
    /* Exactly what go-libp2p's ipfs-swarm-key-gen and js-libp2p's
     * generateKey write: lower-case hex, no final newline (95 characters). */
    static const char digits[] = "0123456789abcdef";
    size_t hlen = strlen(key_codec) + 1 + strlen("/base16/") + 1;
    size_t total = hlen + 2 * DN_PSK_LEN;
    if (outlen < total + 1)
        return DN_ETOOBIG;
    memcpy(out, key_codec, strlen(key_codec));
    memcpy(out + strlen(key_codec), "\n/base16/\n", 10);
    for (size_t i = 0; i < DN_PSK_LEN; i++) {
        out[hlen + 2 * i] = digits[psk[i] >> 4];
        out[hlen + 2 * i + 1] = digits[psk[i] & 15];
    }
    out[total] = '\0';
    return (int)total;
}

#define SWARM_KEY_FILE_MAX 4096

int dn_swarm_key_load(const char *path, uint8_t psk[DN_PSK_LEN])
{
    uint8_t buf[SWARM_KEY_FILE_MAX + 1];
    size_t len = 0;
    int rc;
    /* O_NONBLOCK: a FIFO at path must not hang us before the S_ISREG check. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        DN_ERROR("pnet", "swarm key %s: %s", path, dn_strerror(rc));
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        DN_ERROR("pnet", "swarm key %s: not a regular file", path);
        rc = DN_EINVAL;
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        DN_WARN("pnet", "swarm key %s is accessible by group/others (mode %03o); use chmod 600",
                path, (unsigned)(st.st_mode & 0777));
    /* Read one byte past the limit so a file that grew after fstat still
     * counts as too big. */
    while (len < sizeof buf) {
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > SWARM_KEY_FILE_MAX) {
        DN_ERROR("pnet", "swarm key %s: larger than %d bytes", path, SWARM_KEY_FILE_MAX);
        rc = DN_ETOOBIG;
        goto out;
    }
    const char *why = NULL;
    uint8_t key[DN_PSK_LEN];
    rc = parse_key(buf, len, key, &why);
    if (rc == 0)
        memcpy(psk, key, DN_PSK_LEN);
    else
        DN_ERROR("pnet", "swarm key %s: %s", path, why);
    sodium_memzero(key, sizeof key);
out:
    if (rc < 0 && rc > -DN_EBASE)
        DN_ERROR("pnet", "swarm key %s: %s", path, dn_strerror(rc));
    sodium_memzero(buf, sizeof buf);
    close(fd);
    return rc;
}
