/* Multiaddr (multiformats/multiaddr README, "Encoding"): the binary form is
 * a sequence of <uvarint protocol code><value>, where the value has a fixed
 * size for ip4 (4), ip6 (16), tcp/udp (2), is absent for ws, wss, tls,
 * quic-v1 and p2p-circuit, and is <uvarint length><bytes> for dns*, p2p and
 * unix. Codes are from the multicodec table (include/dmsnet/multiaddr.h).
 *
 * Text forms follow js @multiformats/multiaddr 13 and go-multiaddr, so that
 * the same address round-trips to the same bytes everywhere:
 * - ip6 is printed the way the WHATWG URL serialiser (and RFC 5952 section
 *   4) prints it: lower-case hex, the first longest run of two or more zero
 *   words as "::", and never an embedded dotted IPv4 tail. glibc's
 *   inet_ntop would print ::ffff:1.2.3.4, where js prints ::ffff:102:304.
 * - p2p is printed in base58btc; base58btc and CIDv1 are accepted, and /ipfs
 *   is read as /p2p (the legacy name, multicodec table).
 * - unix takes the rest of the string, slashes included (go-multiaddr's
 *   "path" protocols), and is therefore the last component. The percent-
 *   encoded single segment of the current unix.md spec and js 13
 *   ("/unix/%2Ftmp%2Fsock") is also accepted on input.
 *
 * Every value is checked in both directions, so any accepted binary form
 * prints and re-parses to identical bytes. */
#include "dmsnet/multiaddr.h"

#include "dmsnet/encoding.h"
#include "dmsnet/error.h"
#include "multiformats/multihash.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum vkind { V_NONE, V_IP4, V_IP6, V_PORT, V_TEXT, V_P2P, V_UNIX };

typedef struct proto {
    uint32_t code;
    const char *name;
    enum vkind kind;
} proto;

static const proto protos[] = {
    {DN_MA_IP4, "ip4", V_IP4},    {DN_MA_TCP, "tcp", V_PORT},
    {DN_MA_UDP, "udp", V_PORT},   {DN_MA_IP6, "ip6", V_IP6},
    {DN_MA_DNS, "dns", V_TEXT},   {DN_MA_DNS4, "dns4", V_TEXT},
    {DN_MA_DNS6, "dns6", V_TEXT}, {DN_MA_DNSADDR, "dnsaddr", V_TEXT},
    {DN_MA_P2P, "p2p", V_P2P},    {DN_MA_QUIC_V1, "quic-v1", V_NONE},
    {DN_MA_WS, "ws", V_NONE},     {DN_MA_WSS, "wss", V_NONE},
    {DN_MA_TLS, "tls", V_NONE},   {DN_MA_P2P_CIRCUIT, "p2p-circuit", V_NONE},
    {DN_MA_UNIX, "unix", V_UNIX},
};

static _Thread_local char ma_err[256];

static const proto *proto_by_code(uint64_t code)
{
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
        if (protos[i].code == code)
            return &protos[i];
    return NULL;
}

static const proto *proto_by_name(const char *name, size_t n)
{
    /* "ipfs" is the old name of p2p: accepted, never printed. */
    if (n == 4 && memcmp(name, "ipfs", 4) == 0)
        return proto_by_code(DN_MA_P2P);
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
        if (strlen(protos[i].name) == n && memcmp(protos[i].name, name, n) == 0)
            return &protos[i];
    return NULL;
}

/* Fixed value size, or -1 for length-prefixed values. */
static int fixed_size(const proto *p)
{
    switch (p->kind) {
    case V_NONE: return 0;
    case V_IP4: return 4;
    case V_IP6: return 16;
    case V_PORT: return 2;
    default: return -1;
    }
}

const char *dn_multiaddr_error(void)
{
    return ma_err;
}

__attribute__((format(printf, 2, 3))) static int fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ma_err, sizeof(ma_err), fmt, ap);
    va_end(ap);
    return rc;
}

/* A quoted excerpt of untrusted text that is safe to log: printable ASCII
 * only, at most 48 characters. */
static const char *excerpt(const char *s, size_t n, char buf[64])
{
    size_t o = 0, lim = n > 48 ? 45 : n;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (lim < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* A unix value in js's form: "/" then one percent-encoded segment that
 * starts with an encoded '/' ("/%2Ftmp%2Fsock"). */
static bool is_percent_form(const char *v, size_t n)
{
    return n >= 4 && v[0] == '/' && v[1] == '%' && v[2] == '2' && (v[3] == 'F' || v[3] == 'f') &&
           memchr(v + 1, '/', n - 1) == NULL;
}

/* Check a binary value; idx numbers components from 1 in messages. */
static int check_value(const proto *p, const uint8_t *v, size_t n, int idx)
{
    const char *why = NULL;
    switch (p->kind) {
    case V_TEXT:
    case V_UNIX:
        if (n == 0)
            return fail(DN_EMALFORMED, "component %d (%s): empty value", idx, p->name);
        if (memchr(v, '\0', n))
            return fail(DN_EMALFORMED, "component %d (%s): value contains a NUL byte", idx,
                        p->name);
        if (!utf8_valid(v, n))
            return fail(DN_EMALFORMED, "component %d (%s): value is not valid UTF-8", idx, p->name);
        /* A '/' in a name would split it in the text form; a unix path is
         * written after "/unix" as is, so it must start with one. */
        if (p->kind == V_TEXT && memchr(v, '/', n))
            return fail(DN_EMALFORMED, "component %d (%s): value contains '/'", idx, p->name);
        if (p->kind == V_UNIX && v[0] != '/')
            return fail(DN_EUNSUPPORTED, "component %d (unix): relative path (must start with '/')",
                        idx);
        /* "/%2F..." without another '/' would read back as js's percent
         * form (see dn_multiaddr_parse), so it has no text form of its own. */
        if (p->kind == V_UNIX && is_percent_form((const char *)v, n))
            return fail(DN_EUNSUPPORTED,
                        "component %d (unix): path '/%%2F...' without another '/' is ambiguous",
                        idx);
        return 0;
    case V_P2P: {
        dn_peerid id;
        int rc = dn__peerid_from_bytes_why(v, n, &id, &why);
        if (rc < 0)
            return fail(rc, "component %d (p2p): invalid peer id: %s", idx, why);
        return 0;
    }
    default: return 0;
    }
}

/* Decode the component at *off: structure only (code known, sizes within
 * the buffer). */
static int decode_component(const uint8_t *b, size_t len, size_t *off, dn_ma_component *c,
                            const proto **pp, int idx)
{
    uint64_t code, vlen;
    size_t o = *off;
    int n = dn_uvarint_decode(b + o, len - o, &code);
    if (n == DN_ETRUNCATED)
        return fail(DN_ETRUNCATED, "component %d: truncated protocol code", idx);
    if (n < 0)
        return fail(DN_EMALFORMED, "component %d: malformed protocol code varint", idx);
    const proto *p = proto_by_code(code);
    if (p == NULL)
        return fail(DN_EUNSUPPORTED, "component %d: unknown protocol code 0x%llx", idx,
                    (unsigned long long)code);
    o += (size_t)n;
    int fs = fixed_size(p);
    if (fs >= 0) {
        vlen = (uint64_t)fs;
    } else {
        n = dn_uvarint_decode(b + o, len - o, &vlen);
        if (n == DN_ETRUNCATED)
            return fail(DN_ETRUNCATED, "component %d (%s): truncated value length", idx, p->name);
        if (n < 0)
            return fail(DN_EMALFORMED, "component %d (%s): malformed value length varint", idx,
                        p->name);
        o += (size_t)n;
    }
    if (vlen > len - o && fs >= 0)
        return fail(DN_ETRUNCATED, "component %d (%s): truncated value (%d bytes needed, %zu left)",
                    idx, p->name, fs, len - o);
    if (vlen > len - o)
        return fail(DN_ETRUNCATED,
                    "component %d (%s): value length %llu exceeds the %zu bytes left", idx, p->name,
                    (unsigned long long)vlen, len - o);
    c->code = p->code;
    c->value = b + o;
    c->value_len = (size_t)vlen;
    *off = o + (size_t)vlen;
    if (pp)
        *pp = p;
    return 1;
}

/* ---- text output ---- */

typedef struct writer {
    char *p;
    size_t cap, len; /* len may run past cap: the result is then too big */
} writer;

static void w_bytes(writer *w, const void *s, size_t n)
{
    if (w->len < w->cap && n > 0)
        memcpy(w->p + w->len, s, n <= w->cap - w->len ? n : w->cap - w->len);
    w->len += n;
}

static void w_str(writer *w, const char *s)
{
    w_bytes(w, s, strlen(s));
}

/* ip6 as the URL serialiser writes it (WHATWG URL, "IPv6 serializer";
 * RFC 5952 section 4.2): compress the first longest run of >= 2 zero words. */
static void format_ip6(const uint8_t v[16], char out[48])
{
    uint16_t w[8];
    for (int i = 0; i < 8; i++)
        w[i] = (uint16_t)(v[2 * i] << 8 | v[2 * i + 1]);
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        if (w[i] != 0) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && w[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    size_t o = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            out[o++] = ':';
            if (i == 0)
                out[o++] = ':';
            i += best_len - 1;
            continue;
        }
        o += (size_t)snprintf(out + o, 48 - o, "%x", w[i]);
        if (i < 7)
            out[o++] = ':';
    }
    out[o] = '\0';
}

static int render(const uint8_t *b, size_t len, char *out, size_t outlen)
{
    writer w = {out, outlen, 0};
    size_t off = 0;
    int idx = 0;
    while (off < len) {
        dn_ma_component c = {0};
        const proto *p = NULL;
        idx++;
        int rc = decode_component(b, len, &off, &c, &p, idx);
        if (rc < 0)
            return rc;
        rc = check_value(p, c.value, c.value_len, idx);
        if (rc < 0)
            return rc;
        w_str(&w, "/");
        w_str(&w, p->name);
        char tmp[DN_PEERID_STR_MAX];
        switch (p->kind) {
        case V_NONE: break;
        case V_IP4:
            snprintf(tmp, sizeof(tmp), "/%u.%u.%u.%u", c.value[0], c.value[1], c.value[2],
                     c.value[3]);
            w_str(&w, tmp);
            break;
        case V_IP6:
            tmp[0] = '/';
            format_ip6(c.value, tmp + 1);
            w_str(&w, tmp);
            break;
        case V_PORT:
            snprintf(tmp, sizeof(tmp), "/%u", (unsigned)(c.value[0] << 8 | c.value[1]));
            w_str(&w, tmp);
            break;
        case V_TEXT:
            w_str(&w, "/");
            w_bytes(&w, c.value, c.value_len);
            break;
        case V_UNIX:
            if (off != len)
                return fail(DN_EUNSUPPORTED, "component %d (unix): must be the last component",
                            idx);
            w_bytes(&w, c.value, c.value_len); /* starts with '/' (check_value) */
            break;
        case V_P2P:
            tmp[0] = '/';
            rc = dn_base58_encode(c.value, c.value_len, tmp + 1, sizeof(tmp) - 1);
            if (rc < 0)
                return fail(rc, "component %d (p2p): cannot encode peer id", idx);
            w_str(&w, tmp);
            break;
        }
    }
    if (len == 0)
        w_str(&w, "/");
    if (w.len >= w.cap) {
        if (w.cap > 0)
            out[w.cap - 1] = '\0';
        return DN_ETOOBIG;
    }
    out[w.len] = '\0';
    return (int)w.len;
}

/* Full validation of a binary multiaddr, the text form's size included so
 * that DN_MULTIADDR_STR_MAX always suffices. */
static int validate(const uint8_t *b, size_t len)
{
    if (len > DN_MULTIADDR_MAX)
        return fail(DN_ETOOBIG, "multiaddr of %zu bytes exceeds %d", len, DN_MULTIADDR_MAX);
    char tmp[DN_MULTIADDR_STR_MAX];
    int rc = render(b, len, tmp, sizeof(tmp));
    if (rc == DN_ETOOBIG)
        return fail(DN_ETOOBIG, "multiaddr text form exceeds %d characters",
                    DN_MULTIADDR_STR_MAX - 1);
    return rc < 0 ? rc : 0;
}

int dn_multiaddr_to_string(const dn_multiaddr *ma, char *out, size_t outlen)
{
    if (ma == NULL || out == NULL || ma->len > DN_MULTIADDR_MAX)
        return DN_EINVAL;
    return render(ma->bytes, ma->len, out, outlen);
}

int dn_multiaddr_from_bytes(const uint8_t *b, size_t len, dn_multiaddr *out)
{
    if ((b == NULL && len > 0) || out == NULL)
        return fail(DN_EINVAL, "no input");
    int rc = validate(b, len);
    if (rc < 0)
        return rc;
    if (len > 0)
        memmove(out->bytes, b, len);
    out->len = len;
    return 0;
}

/* ---- text input ---- */

static int put(dn_multiaddr *ma, const void *p, size_t n)
{
    if (n > DN_MULTIADDR_MAX - ma->len)
        return fail(DN_ETOOBIG, "multiaddr longer than %d bytes", DN_MULTIADDR_MAX);
    memcpy(ma->bytes + ma->len, p, n);
    ma->len += n;
    return 0;
}

static int put_uvarint(dn_multiaddr *ma, uint64_t v)
{
    uint8_t tmp[DN_UVARINT_MAX];
    return put(ma, tmp, dn_uvarint_encode(v, tmp));
}

static int parse_port(const char *s, size_t n, uint8_t out[2], int idx, const char *name)
{
    char ex[64];
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return fail(DN_EMALFORMED, "component %d (%s): port '%s' is not a decimal number", idx,
                        name, excerpt(s, n, ex));
    /* js and go print ports without leading zeros; accept only that form so
     * that text round-trips exactly. */
    if (n > 1 && s[0] == '0')
        return fail(DN_EMALFORMED, "component %d (%s): port '%s' has a leading zero", idx, name,
                    excerpt(s, n, ex));
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (unsigned long)(s[i] - '0');
        if (v > 65535)
            return fail(DN_EMALFORMED, "component %d (%s): port '%s' out of range", idx, name,
                        excerpt(s, n, ex));
    }
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* unix.md: one percent-encoded path segment (RFC 3986 section 2.1). */
static int percent_decode(const char *s, size_t n, uint8_t *out, size_t *outn, int idx)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = (uint8_t)s[i];
            continue;
        }
        if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
            return fail(DN_EMALFORMED, "component %d (unix): bad percent-encoding", idx);
        out[o++] = (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
        i += 2;
    }
    *outn = o;
    return 0;
}

int dn_multiaddr_parse(const char *s, dn_multiaddr *out)
{
    if (s == NULL || out == NULL)
        return fail(DN_EINVAL, "no input");
    size_t n = strnlen(s, DN_MULTIADDR_STR_MAX);
    if (n >= DN_MULTIADDR_STR_MAX)
        return fail(DN_ETOOBIG, "multiaddr text longer than %d characters",
                    DN_MULTIADDR_STR_MAX - 1);
    if (n == 0 || s[0] != '/')
        return fail(DN_EMALFORMED, "multiaddr must start with '/'");
    dn_multiaddr ma;
    ma.len = 0;
    size_t pos = 0; /* at a '/' */
    int idx = 0, rc;
    char ex[64];
    while (pos + 1 < n) {
        idx++;
        const char *name = s + pos + 1;
        const char *slash = memchr(name, '/', n - pos - 1);
        size_t nlen = slash ? (size_t)(slash - name) : n - pos - 1;
        if (nlen == 0)
            return fail(DN_EMALFORMED, "component %d: empty protocol name", idx);
        const proto *p = proto_by_name(name, nlen);
        if (p == NULL)
            return fail(DN_EUNSUPPORTED, "component %d: unknown protocol '%s'", idx,
                        excerpt(name, nlen, ex));
        pos += 1 + nlen; /* now at the '/' before the value, or at the end */
        if ((rc = put_uvarint(&ma, p->code)) < 0)
            return rc;
        if (p->kind == V_NONE)
            continue;
        if (pos >= n || (p->kind != V_UNIX && (pos + 1 >= n || s[pos + 1] == '/')))
            return fail(DN_EMALFORMED, "component %d: missing value for '%s'", idx, p->name);
        if (p->kind == V_UNIX) {
            /* The path is the rest of the string, its leading '/' included. */
            const char *v = s + pos;
            size_t vlen = n - pos;
            uint8_t path[DN_MULTIADDR_STR_MAX];
            size_t plen = vlen;
            if (is_percent_form(v, vlen)) {
                if ((rc = percent_decode(v + 1, vlen - 1, path, &plen, idx)) < 0)
                    return rc;
            } else {
                memcpy(path, v, vlen);
            }
            if ((rc = check_value(p, path, plen, idx)) < 0)
                return rc;
            if ((rc = put_uvarint(&ma, plen)) < 0 || (rc = put(&ma, path, plen)) < 0)
                return rc;
            pos = n;
            break;
        }
        const char *v = s + pos + 1;
        slash = memchr(v, '/', n - pos - 1);
        size_t vlen = slash ? (size_t)(slash - v) : n - pos - 1;
        pos += 1 + vlen;
        uint8_t bin[16];
        char tmp[INET6_ADDRSTRLEN];
        switch (p->kind) {
        case V_IP4:
        case V_IP6: {
            int af = p->kind == V_IP4 ? AF_INET : AF_INET6;
            bool ok = vlen < sizeof(tmp);
            if (ok) {
                memcpy(tmp, v, vlen);
                tmp[vlen] = '\0';
                ok = inet_pton(af, tmp, bin) == 1;
            }
            if (!ok)
                return fail(DN_EMALFORMED, "component %d (%s): invalid IPv%c address '%s'", idx,
                            p->name, p->kind == V_IP4 ? '4' : '6', excerpt(v, vlen, ex));
            rc = put(&ma, bin, p->kind == V_IP4 ? 4 : 16);
            break;
        }
        case V_PORT:
            if ((rc = parse_port(v, vlen, bin, idx, p->name)) < 0)
                return rc;
            rc = put(&ma, bin, 2);
            break;
        case V_TEXT:
            if ((rc = check_value(p, (const uint8_t *)v, vlen, idx)) < 0)
                return rc;
            if ((rc = put_uvarint(&ma, vlen)) < 0)
                return rc;
            rc = put(&ma, v, vlen);
            break;
        case V_P2P: {
            dn_peerid id;
            const char *why = "invalid";
            if ((rc = dn__peerid_parse_n(v, vlen, &id, &why)) < 0)
                return fail(rc, "component %d (p2p): invalid peer id '%s': %s", idx,
                            excerpt(v, vlen, ex), why);
            if ((rc = put_uvarint(&ma, id.len)) < 0)
                return rc;
            rc = put(&ma, id.bytes, id.len);
            break;
        }
        default: rc = 0; break;
        }
        if (rc < 0)
            return rc;
    }
    /* Catches what only the whole shows (size of the text form). */
    if ((rc = validate(ma.bytes, ma.len)) < 0)
        return rc;
    memcpy(out->bytes, ma.bytes, ma.len);
    out->len = ma.len;
    return 0;
}

/* ---- components ---- */

int dn_multiaddr_next(const dn_multiaddr *ma, size_t *off, dn_ma_component *c)
{
    if (ma == NULL || off == NULL || c == NULL || ma->len > DN_MULTIADDR_MAX || *off > ma->len)
        return DN_EINVAL;
    if (*off == ma->len)
        return 0;
    return decode_component(ma->bytes, ma->len, off, c, NULL, 0);
}

int dn_multiaddr_append(dn_multiaddr *ma, uint32_t code, const uint8_t *value, size_t len)
{
    if (ma == NULL || ma->len > DN_MULTIADDR_MAX || (value == NULL && len > 0))
        return fail(DN_EINVAL, "no input");
    const proto *p = proto_by_code(code);
    if (p == NULL)
        return fail(DN_EUNSUPPORTED, "unknown protocol code 0x%x", code);
    int fs = fixed_size(p);
    if (fs >= 0 && len != (size_t)fs)
        return fail(DN_EINVAL, "%s: value must be %d bytes, not %zu", p->name, fs, len);
    /* Build into a copy, then validate the whole (unix-last rule, sizes). */
    dn_multiaddr tmp;
    int rc;
    tmp.len = ma->len;
    memcpy(tmp.bytes, ma->bytes, ma->len);
    if ((rc = put_uvarint(&tmp, code)) < 0)
        return rc;
    if (fs < 0 && (rc = put_uvarint(&tmp, len)) < 0)
        return rc;
    if (len > 0 && (rc = put(&tmp, value, len)) < 0)
        return rc;
    if ((rc = validate(tmp.bytes, tmp.len)) < 0)
        return rc;
    memcpy(ma->bytes, tmp.bytes, tmp.len);
    ma->len = tmp.len;
    return 0;
}

int dn_multiaddr_peerid(const dn_multiaddr *ma, dn_peerid *out)
{
    size_t off = 0;
    dn_ma_component c, last = {0, NULL, 0};
    int rc;
    while ((rc = dn_multiaddr_next(ma, &off, &c)) == 1)
        if (c.code == DN_MA_P2P)
            last = c;
    if (rc < 0)
        return rc;
    if (last.value == NULL)
        return DN_ENOTFOUND;
    return dn_peerid_from_bytes(last.value, last.value_len, out);
}

void dn_multiaddr_strip_p2p(const dn_multiaddr *ma, dn_multiaddr *out)
{
    size_t off = 0, start = 0, keep = ma->len <= DN_MULTIADDR_MAX ? ma->len : 0;
    dn_ma_component c;
    int rc;
    while ((rc = dn_multiaddr_next(ma, &off, &c)) == 1) {
        if (off == ma->len && c.code == DN_MA_P2P)
            keep = start;
        start = off;
    }
    if (out != ma)
        memmove(out->bytes, ma->bytes, keep);
    out->len = keep;
}

const char *dn_ma_proto_name(uint32_t code)
{
    const proto *p = proto_by_code(code);
    return p ? p->name : NULL;
}
