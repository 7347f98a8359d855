/* node — configuration: defaults, config.json, flags (see config.h).
 *
 * One validation path: a flag's text is first turned into the JSON value the
 * file would hold for that key, then both go through apply_key, so a file
 * and a flag can never disagree on what is valid. */
#include "node/config.h"

#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmsnet/error.h"
#include "dmsnet/multiaddr.h"

enum kind {
    K_LISTEN,
    K_PATH,
    K_NAME,
    K_PREFIX,
    K_BOOTSTRAP,
    K_LIMIT,
    K_API_LISTEN,
    K_BOOL,
    K_LOG,
    K_ROUTER,
    K_TOPIC,
    K_DHT_MODE,
};

typedef struct key_def {
    const char *path;
    enum kind kind;
    size_t off;
    uint32_t max; /* K_LIMIT: upper bound; lists: most entries */
} key_def;

#define OFF(f) offsetof(dn__node_config, f)
static const key_def keys[] = {
    {"listen", K_LISTEN, OFF(listen), DN__NODE_CONFIG_MAX_LISTEN},
    {"identity", K_PATH, OFF(identity), 0},
    {"data_dir", K_PATH, OFF(data_dir), 0},
    {"channel.name", K_NAME, OFF(channel.name), 0},
    {"channel.dht_prefix", K_PREFIX, OFF(channel.dht_prefix), 0},
    {"channel.bootstrap", K_BOOTSTRAP, OFF(channel.bootstrap), DN__NODE_CONFIG_MAX_BOOTSTRAP},
    {"limits.max_conns", K_LIMIT, OFF(limits.max_conns), 1000000},
    {"limits.max_conns_per_peer", K_LIMIT, OFF(limits.max_conns_per_peer), 1024},
    {"limits.max_streams_per_peer", K_LIMIT, OFF(limits.max_streams_per_peer), 1000000},
    {"limits.max_handshakes_per_ip", K_LIMIT, OFF(limits.max_handshakes_per_ip), 1000000},
    {"limits.handshake_timeout_s", K_LIMIT, OFF(limits.handshake_timeout_s), 3600},
    {"api.listen", K_API_LISTEN, OFF(api.listen), 0},
    {"api.allow_remote", K_BOOL, OFF(api.allow_remote), 0},
    {"log", K_LOG, OFF(log), 0},
    {"enable_perf", K_BOOL, OFF(enable_perf), 0},
    {"autonat.server", K_BOOL, OFF(autonat.server), 0},
    {"autonat.allow_private", K_BOOL, OFF(autonat.allow_private), 0},
    {"autonat.confidence", K_LIMIT, OFF(autonat.confidence), 16},
    {"pubsub.router", K_ROUTER, OFF(pubsub.floodsub), 0},
    {"jobs.topic", K_TOPIC, OFF(jobs.topic), 0},
    {"jobs.auto_bid", K_PATH, OFF(jobs.auto_bid), 0},
    {"dht.mode", K_DHT_MODE, OFF(dht.mode), 0},
};
/* The objects that group keys; everything else at the top is a key. */
static const char *const groups[] = {"channel", "limits", "api", "autonat", "dht", "pubsub", "jobs"};

static const char *const dht_modes[] = {"auto", "server", "client"};

const char *dn__node_dht_mode_name(int mode)
{
    return mode >= 0 && mode < 3 ? dht_modes[mode] : "?";
}


static void addrs_free(dn__node_config_addrs *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->n = 0;
    a->v = NULL;
}

static int addrs_push(dn__node_config_addrs *a, const char *s)
{
    char **nv = realloc(a->v, (a->n + 1) * sizeof *nv);
    if (!nv)
        return DN_ENOMEM;
    a->v = nv;
    if (!(a->v[a->n] = strdup(s)))
        return DN_ENOMEM;
    a->n++;
    return 0;
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src && !(*dst = strdup(src)))
        return DN_ENOMEM;
    return 0;
}

void dn__node_config_free(dn__node_config *cfg)
{
    if (!cfg)
        return;
    addrs_free(&cfg->listen);
    addrs_free(&cfg->channel.bootstrap);
    free(cfg->identity);
    free(cfg->data_dir);
    free(cfg->channel.name);
    free(cfg->channel.dht_prefix);
    free(cfg->api.listen);
    free(cfg->jobs.topic);
    free(cfg->jobs.auto_bid);
    memset(cfg, 0, sizeof *cfg);
}

int dn__node_config_defaults(dn__node_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    /* The host's own defaults (include/dmsnet/host.h). */
    cfg->limits.max_conns = 4096;
    cfg->limits.max_conns_per_peer = 8;
    cfg->limits.max_streams_per_peer = 4096;
    cfg->limits.max_handshakes_per_ip = 64;
    cfg->limits.handshake_timeout_s = 10;
    cfg->autonat.server = true;
    cfg->autonat.confidence = 3;
    cfg->log = DN_LOG_INFO;
    /* As `dmsnet daemon` without --listen: DMS nodes use TCP port 9000. */
    if (addrs_push(&cfg->listen, "/ip4/0.0.0.0/tcp/9000") ||
        addrs_push(&cfg->listen, "/ip6/::/tcp/9000") ||
        !(cfg->channel.name = strdup("dmsnet")) || !(cfg->channel.dht_prefix = strdup("/dmsnet")) ||
        !(cfg->jobs.topic = strdup("/dmsnet/jobs/1.0.0"))) {
        dn__node_config_free(cfg);
        return DN_ENOMEM;
    }
    return 0;
}

static int copy_addrs(dn__node_config_addrs *dst, const dn__node_config_addrs *src)
{
    dst->n = 0;
    dst->v = NULL;
    for (size_t i = 0; i < src->n; i++)
        if (addrs_push(dst, src->v[i]))
            return DN_ENOMEM;
    return 0;
}

int dn__node_config_copy(dn__node_config *dst, const dn__node_config *src)
{
    *dst = *src;
    dst->listen.n = 0, dst->listen.v = NULL;
    dst->channel.bootstrap.n = 0, dst->channel.bootstrap.v = NULL;
    dst->identity = dst->data_dir = dst->channel.name = dst->channel.dht_prefix = NULL;
    dst->api.listen = dst->jobs.topic = dst->jobs.auto_bid = NULL;
    if (copy_addrs(&dst->listen, &src->listen) ||
        copy_addrs(&dst->channel.bootstrap, &src->channel.bootstrap) ||
        dup_opt(&dst->identity, src->identity) || dup_opt(&dst->data_dir, src->data_dir) ||
        dup_opt(&dst->channel.name, src->channel.name) ||
        dup_opt(&dst->channel.dht_prefix, src->channel.dht_prefix) ||
        dup_opt(&dst->api.listen, src->api.listen) ||
        dup_opt(&dst->jobs.topic, src->jobs.topic) ||
        dup_opt(&dst->jobs.auto_bid, src->jobs.auto_bid)) {
        dn__node_config_free(dst);
        return DN_ENOMEM;
    }
    return 0;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Printable form of a refused string for a message: at most 80 bytes, control
 * characters as '?', so a message never carries a terminal escape. */
static void show(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s[i] && i < 80 && i + 4 < outlen; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i] && i + 4 < outlen)
        memcpy(out + i, "...", 3), i += 3;
    out[i] = 0;
}

/* Parse a multiaddr to its canonical text; why on failure. */
static int parse_ma(const char *s, dn_multiaddr *ma, char *canon, size_t canonlen,
                    const char *where, char *err, size_t errlen)
{
    char shown[96];
    show(s, shown, sizeof shown);
    int rc = dn_multiaddr_parse(s, ma);
    if (rc < 0) {
        dn__set_err(err, errlen, "%s%s is not a valid multiaddr (%s)", where, shown,
               dn_multiaddr_error());
        return rc;
    }
    rc = dn_multiaddr_to_string(ma, canon, canonlen);
    if (rc < 0) {
        dn__set_err(err, errlen, "%s%s cannot be printed back", where, shown);
        return rc;
    }
    return 0;
}

static int apply_addrs(dn__node_config_addrs *dst, const json_t *v, const key_def *k,
                       const char *pre, char *err, size_t errlen)
{
    if (!json_is_array(v)) {
        dn__set_err(err, errlen, "%s'%s': expected an array of multiaddr strings, got %s", pre, k->path,
               type_name(v));
        return DN_EINVAL;
    }
    if (json_array_size(v) > k->max) {
        dn__set_err(err, errlen, "%s'%s': %zu entries, at most %u allowed", pre, k->path,
               json_array_size(v), k->max);
        return DN_ETOOBIG;
    }
    dn__node_config_addrs out = {0, NULL};
    char canon[DN_MULTIADDR_STR_MAX];
    dn_multiaddr ma;
    size_t i;
    json_t *e;
    int rc = 0;
    json_array_foreach(v, i, e)
    {
        char where[160];
        snprintf(where, sizeof where, "%s'%s[%zu]': ", pre, k->path, i);
        if (!json_is_string(e)) {
            dn__set_err(err, errlen, "%sexpected a multiaddr string, got %s", where, type_name(e));
            rc = DN_EINVAL;
            break;
        }
        if ((rc = parse_ma(json_string_value(e), &ma, canon, sizeof canon, where, err, errlen)))
            break;
        if (k->kind == K_BOOTSTRAP) {
            /* A bootstrap peer is dialled and then authenticated: without its
             * id the Noise handshake could not tell it from an impostor. The
             * id must be the last component (a circuit address ending in
             * /p2p-circuit names the relay, not the peer). */
            size_t off = 0;
            dn_ma_component c = {0, NULL, 0};
            uint32_t last = 0;
            while (dn_multiaddr_next(&ma, &off, &c) == 1)
                last = c.code;
            dn_peerid id;
            if (last != DN_MA_P2P || dn_multiaddr_peerid(&ma, &id) != 0) {
                dn__set_err(err, errlen, "%s%s has no /p2p/<peer id>", where, canon);
                rc = DN_EINVAL;
                break;
            }
        }
        for (size_t j = 0; j < out.n; j++)
            if (strcmp(out.v[j], canon) == 0) {
                dn__set_err(err, errlen, "%s%s is listed twice", where, canon);
                rc = DN_EEXIST;
                break;
            }
        if (rc || (rc = addrs_push(&out, canon)))
            break;
    }
    if (rc) {
        if (rc == DN_ENOMEM)
            dn__set_err(err, errlen, "%s'%s': out of memory", pre, k->path);
        addrs_free(&out);
        return rc;
    }
    addrs_free(dst);
    *dst = out;
    return 0;
}

static int check_text(const char *s, const key_def *k, const char *pre, char *err, size_t errlen)
{
    size_t n = strlen(s);
    char shown[96];
    show(s, shown, sizeof shown);
    if (k->kind == K_PATH) {
        if (n == 0 || n > DN__NODE_CONFIG_MAX_PATH) {
            dn__set_err(err, errlen, "%s'%s': a path of 1..%d bytes is needed, got %zu", pre, k->path,
                   DN__NODE_CONFIG_MAX_PATH, n);
            return DN_EINVAL;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
                dn__set_err(err, errlen, "%s'%s': control character at byte %zu of the path", pre,
                       k->path, i);
                return DN_EINVAL;
            }
        return 0;
    }
    if (k->kind == K_NAME) {
        if (n == 0 || n > DN__NODE_CONFIG_MAX_NAME) {
            dn__set_err(err, errlen, "%s'%s': a name of 1..%d bytes is needed, got %zu", pre, k->path,
                   DN__NODE_CONFIG_MAX_NAME, n);
            return DN_EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-')) {
                dn__set_err(err, errlen,
                       "%s'%s': \"%s\" has a character outside [A-Za-z0-9._-] at byte %zu", pre,
                       k->path, shown, i);
                return DN_EINVAL;
            }
        }
        return 0;
    }
    if (k->kind == K_TOPIC) {
        /* A pubsub topic is any text; control characters would only make
         * it unprintable. */
        if (n == 0 || n > DN__NODE_CONFIG_MAX_TOPIC) {
            dn__set_err(err, errlen, "%s'%s': a topic of 1..%d bytes is needed, got %zu", pre,
                        k->path, DN__NODE_CONFIG_MAX_TOPIC, n);
            return DN_EINVAL;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
                dn__set_err(err, errlen, "%s'%s': control character at byte %zu of the topic",
                            pre, k->path, i);
                return DN_EINVAL;
            }
        return 0;
    }
    /* K_PREFIX: the DHT protocol ids are <prefix>/kad/1.0.0, so the prefix is
     * a protocol path: it starts with '/', and a multistream-select line
     * cannot hold spaces or control characters. */
    if (n == 0 || s[0] != '/') {
        dn__set_err(err, errlen, "%s'%s': \"%s\" must start with '/'", pre, k->path, shown);
        return DN_EINVAL;
    }
    if (n > DN__NODE_CONFIG_MAX_PREFIX) {
        dn__set_err(err, errlen, "%s'%s': %zu bytes, at most %d allowed", pre, k->path, n,
               DN__NODE_CONFIG_MAX_PREFIX);
        return DN_ETOOBIG;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
            dn__set_err(err, errlen, "%s'%s': \"%s\" has a space or control character at byte %zu", pre,
                   k->path, shown, i);
            return DN_EINVAL;
        }
    return 0;
}

static bool is_loopback(const dn_ma_component *c)
{
    static const uint8_t v6_loop[16] = {[15] = 1};
    if (c->code == DN_MA_IP4)
        return c->value_len == 4 && c->value[0] == 127;
    return c->value_len == 16 && memcmp(c->value, v6_loop, 16) == 0;
}

/* api.listen: exactly /ip4|ip6/<addr>/tcp/<port>. Sets *loop. */
static int check_api_listen(const char *s, char *canon, size_t canonlen, bool *loop,
                            const char *where, char *err, size_t errlen)
{
    dn_multiaddr ma;
    int rc = parse_ma(s, &ma, canon, canonlen, where, err, errlen);
    if (rc)
        return rc;
    dn_ma_component c[3];
    size_t off = 0, n = 0;
    while (n < 3 && dn_multiaddr_next(&ma, &off, &c[n]) == 1)
        n++;
    if (n != 2 || (c[0].code != DN_MA_IP4 && c[0].code != DN_MA_IP6) || c[1].code != DN_MA_TCP) {
        dn__set_err(err, errlen, "%s%s is not /ip4|ip6/<address>/tcp/<port>", where, canon);
        return DN_EINVAL;
    }
    /* Port 0 picks a free port: the daemon prints the one bound. */
    *loop = is_loopback(&c[0]);
    return 0;
}

static int apply_key(dn__node_config *cfg, const key_def *k, const json_t *v, const char *pre,
                     char *err, size_t errlen)
{
    void *field = (char *)cfg + k->off;
    switch (k->kind) {
    case K_LISTEN:
    case K_BOOTSTRAP: return apply_addrs(field, v, k, pre, err, errlen);
    case K_PATH:
    case K_NAME:
    case K_PREFIX:
    case K_TOPIC:
    case K_API_LISTEN: {
        char **dst = field;
        bool nullable = k->kind == K_PATH || k->kind == K_API_LISTEN;
        if (nullable && json_is_null(v)) {
            free(*dst);
            *dst = NULL;
            return 0;
        }
        if (!json_is_string(v)) {
            dn__set_err(err, errlen, "%s'%s': expected a string%s, got %s", pre, k->path,
                   nullable ? " or null" : "", type_name(v));
            return DN_EINVAL;
        }
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v)) {
            dn__set_err(err, errlen, "%s'%s': the string holds a NUL byte", pre, k->path);
            return DN_EINVAL;
        }
        char *copy;
        if (k->kind == K_API_LISTEN) {
            char canon[DN_MULTIADDR_STR_MAX];
            char where[160];
            bool loop;
            snprintf(where, sizeof where, "%s'%s': ", pre, k->path);
            int rc = check_api_listen(s, canon, sizeof canon, &loop, where, err, errlen);
            if (rc)
                return rc;
            copy = strdup(canon);
        } else {
            int rc = check_text(s, k, pre, err, errlen);
            if (rc)
                return rc;
            copy = strdup(s);
        }
        if (!copy) {
            dn__set_err(err, errlen, "%s'%s': out of memory", pre, k->path);
            return DN_ENOMEM;
        }
        free(*dst);
        *dst = copy;
        return 0;
    }
    case K_LIMIT: {
        if (!json_is_integer(v)) {
            dn__set_err(err, errlen, "%s'%s': expected an integer, got %s", pre, k->path, type_name(v));
            return DN_EINVAL;
        }
        json_int_t n = json_integer_value(v);
        if (n < 1 || n > (json_int_t)k->max) {
            dn__set_err(err, errlen, "%s'%s': %lld is out of range 1..%u", pre, k->path, (long long)n,
                   k->max);
            return DN_EINVAL;
        }
        *(uint32_t *)field = (uint32_t)n;
        return 0;
    }
    case K_BOOL:
        if (!json_is_boolean(v)) {
            dn__set_err(err, errlen, "%s'%s': expected true or false, got %s", pre, k->path,
                   type_name(v));
            return DN_EINVAL;
        }
        *(bool *)field = json_is_true(v);
        return 0;
    case K_ROUTER: {
        const char *r = json_string_value(v);
        if (!r || (strcmp(r, "gossipsub") && strcmp(r, "floodsub"))) {
            char shown[96] = "";
            if (r)
                show(r, shown, sizeof shown);
            dn__set_err(err, errlen, "%s'%s': %s%s%s is not gossipsub or floodsub", pre, k->path,
                        r ? "\"" : "", r ? shown : type_name(v), r ? "\"" : "");
            return DN_EINVAL;
        }
        *(bool *)field = !strcmp(r, "floodsub");
        return 0;
    }
    case K_LOG: {
        int lv = json_is_string(v) ? dn_log_level_parse(json_string_value(v)) : -1;
        if (lv < 0) {
            char shown[96] = "";
            if (json_is_string(v))
                show(json_string_value(v), shown, sizeof shown);
            dn__set_err(err, errlen, "%s'%s': %s%s%s is not one of trace, debug, info, warn, error, off",
                   pre, k->path, json_is_string(v) ? "\"" : "",
                   json_is_string(v) ? shown : type_name(v), json_is_string(v) ? "\"" : "");
            return DN_EINVAL;
        }
        *(dn_log_level *)field = (dn_log_level)lv;
        return 0;
    }
    case K_DHT_MODE: {
        const char *m = json_string_value(v);
        for (int i = 0; m && i < 3; i++)
            if (!strcmp(m, dht_modes[i])) {
                *(int *)field = i;
                return 0;
            }
        char shown[96] = "";
        if (m)
            show(m, shown, sizeof shown);
        dn__set_err(err, errlen, "%s'%s': %s%s%s is not one of auto, server, client", pre, k->path,
                    m ? "\"" : "", m ? shown : type_name(v), m ? "\"" : "");
        return DN_EINVAL;
    }
    }
    return DN_EINVAL;
}

static const key_def *find_key(const char *path)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].path, path) == 0)
            return &keys[i];
    return NULL;
}

static bool is_group(const char *name)
{
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (strcmp(groups[i], name) == 0)
            return true;
    return false;
}

/* Walk one object; group is "" at the top, "channel" inside channel. */
static int apply_object(dn__node_config *cfg, const json_t *obj, const char *group, const char *pre,
                        char *err, size_t errlen)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        char path[128];
        char shown[96];
        show(name, shown, sizeof shown);
        if (strlen(name) > 64) {
            dn__set_err(err, errlen, "%sunknown key '%s%s%s'", pre, group, *group ? "." : "", shown);
            return DN_EINVAL;
        }
        snprintf(path, sizeof path, "%s%s%s", group, *group ? "." : "", name);
        if (!*group && is_group(name)) {
            if (!json_is_object(v)) {
                dn__set_err(err, errlen, "%s'%s': expected an object, got %s", pre, name, type_name(v));
                return DN_EINVAL;
            }
            int rc = apply_object(cfg, v, name, pre, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        const key_def *k = find_key(path);
        if (!k || (!*group && strchr(name, '.'))) {
            show(path, shown, sizeof shown);
            dn__set_err(err, errlen, "%sunknown key '%s'", pre, shown);
            return DN_EINVAL;
        }
        int rc = apply_key(cfg, k, v, pre, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

int dn__node_config_check(const dn__node_config *cfg, char *err, size_t errlen)
{
    if (cfg->api.listen && !cfg->api.allow_remote) {
        char canon[DN_MULTIADDR_STR_MAX];
        bool loop = false;
        int rc = check_api_listen(cfg->api.listen, canon, sizeof canon, &loop,
                                  "'api.listen': ", err, errlen);
        if (rc)
            return rc;
        if (!loop) {
            /* The API controls the node; off loopback it is reachable by
             * others, so that must be asked for explicitly. */
            dn__set_err(err, errlen,
                   "'api.listen': %s is not a loopback address (set api.allow_remote to true to "
                   "listen there)",
                   canon);
            return DN_EINVAL;
        }
    }
    return 0;
}

/* Read a whole regular file of at most DN__NODE_CONFIG_MAX_FILE bytes. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        int e = errno;
        dn__set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dn__set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return DN_EINVAL;
    }
    if (st.st_size > DN__NODE_CONFIG_MAX_FILE) {
        dn__set_err(err, errlen, "%s: %lld bytes, larger than the %d allowed", path,
               (long long)st.st_size, DN__NODE_CONFIG_MAX_FILE);
        close(fd);
        return DN_ETOOBIG;
    }
    char *buf = malloc(DN__NODE_CONFIG_MAX_FILE + 1);
    if (!buf) {
        close(fd);
        return DN_ENOMEM;
    }
    size_t len = 0;
    /* Read until EOF, bounded even if the file grows after the fstat. */
    while (len <= DN__NODE_CONFIG_MAX_FILE) {
        ssize_t r = read(fd, buf + len, DN__NODE_CONFIG_MAX_FILE + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            dn__set_err(err, errlen, "%s: read failed: %s", path, strerror(e));
            free(buf);
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len > DN__NODE_CONFIG_MAX_FILE) {
        dn__set_err(err, errlen, "%s: larger than the %d bytes allowed", path, DN__NODE_CONFIG_MAX_FILE);
        free(buf);
        return DN_ETOOBIG;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

int dn__node_config_load_file(dn__node_config *cfg, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err, errlen);
    if (rc == 1)
        return 0; /* no file: defaults and flags only */
    if (rc)
        return rc;
    rc = dn__node_config_load_text(cfg, text, len, path, err, errlen);
    free(text);
    return rc;
}

int dn__node_config_load_text(dn__node_config *cfg, const char *text, size_t len, const char *path,
                              char *err, size_t errlen)
{
    int rc;
    if (len > DN__NODE_CONFIG_MAX_FILE) {
        dn__set_err(err, errlen, "%s: larger than %d bytes", path, DN__NODE_CONFIG_MAX_FILE);
        return DN_ETOOBIG;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        dn__set_err(err, errlen, "%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return DN_EMALFORMED;
    }
    if (!json_is_object(root)) {
        dn__set_err(err, errlen, "%s: the top level must be a JSON object, got %s", path,
               type_name(root));
        json_decref(root);
        return DN_EMALFORMED;
    }
    dn__node_config tmp;
    if ((rc = dn__node_config_copy(&tmp, cfg))) {
        json_decref(root);
        dn__set_err(err, errlen, "%s: out of memory", path);
        return rc;
    }
    char pre[256];
    snprintf(pre, sizeof pre, "%s: ", path);
    rc = apply_object(&tmp, root, "", pre, err, errlen);
    json_decref(root);
    if (!rc) {
        char why[512];
        if ((rc = dn__node_config_check(&tmp, why, sizeof why)))
            dn__set_err(err, errlen, "%s%s", pre, why);
    }
    if (rc) {
        dn__node_config_free(&tmp);
        return rc;
    }
    dn__node_config_free(cfg);
    *cfg = tmp;
    return 0;
}

/* Turn a flag's text into the JSON value the file would hold. */
static json_t *text_to_json(const key_def *k, const char *value, const char **why)
{
    *why = NULL;
    switch (k->kind) {
    case K_LISTEN:
    case K_BOOTSTRAP: {
        json_t *a = json_array();
        const char *p = value;
        while (a && *p) {
            const char *c = strchr(p, ',');
            size_t n = c ? (size_t)(c - p) : strlen(p);
            if (json_array_append_new(a, json_stringn(p, n))) {
                json_decref(a);
                return NULL;
            }
            p += n;
            if (*p == ',' && !*++p) {
                /* a trailing comma would silently drop an entry the user meant */
                json_array_append_new(a, json_string(""));
            }
        }
        return a;
    }
    case K_PATH:
    case K_API_LISTEN: return *value ? json_string(value) : json_null();
    case K_NAME:
    case K_PREFIX:
    case K_TOPIC:
    case K_ROUTER:
    case K_LOG:
    case K_DHT_MODE: return json_string(value);
    case K_LIMIT: {
        char *end;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        if (!*value || *end || errno || value[0] == '+' || value[0] == ' ') {
            *why = "is not a decimal integer";
            return NULL;
        }
        return json_integer((json_int_t)n);
    }
    case K_BOOL:
        if (strcmp(value, "true") == 0)
            return json_true();
        if (strcmp(value, "false") == 0)
            return json_false();
        *why = "is neither true nor false";
        return NULL;
    }
    return NULL;
}

int dn__node_config_set(dn__node_config *cfg, const char *key, const char *value, char *err,
                        size_t errlen)
{
    const key_def *k = find_key(key);
    char shown[96];
    if (!k) {
        show(key, shown, sizeof shown);
        dn__set_err(err, errlen, "unknown key '%s'", shown);
        return DN_EINVAL;
    }
    const char *why;
    json_t *v = text_to_json(k, value, &why);
    if (!v) {
        show(value, shown, sizeof shown);
        if (why)
            dn__set_err(err, errlen, "'%s': \"%s\" %s", k->path, shown, why);
        else
            dn__set_err(err, errlen, "'%s': out of memory", k->path);
        return why ? DN_EINVAL : DN_ENOMEM;
    }
    /* apply_key changes its field only when the whole value is valid */
    int rc = apply_key(cfg, k, v, "", err, errlen);
    json_decref(v);
    return rc;
}

int dn__node_config_set_json(dn__node_config *cfg, const char *key, const json_t *value,
                             char *err, size_t errlen)
{
    const key_def *k = find_key(key);
    if (!k) {
        char shown[96];
        show(key, shown, sizeof shown);
        dn__set_err(err, errlen, "unknown key '%s'", shown);
        return DN_EINVAL;
    }
    return apply_key(cfg, k, value, "", err, errlen);
}

int dn__node_config_key_index(const char *key)
{
    const key_def *k = find_key(key);
    return k ? (int)(k - keys) : DN_ENOTFOUND;
}

size_t dn__node_config_key_count(void)
{
    return sizeof keys / sizeof keys[0];
}

const char *dn__node_config_key_name(size_t i)
{
    return i < sizeof keys / sizeof keys[0] ? keys[i].path : NULL;
}

static json_t *opt_string(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *addrs_json(const dn__node_config_addrs *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < a->n; i++)
        if (json_array_append_new(arr, json_string(a->v[i]))) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

json_t *dn__node_config_to_json(const dn__node_config *cfg)
{
    /* json_pack with "o" takes the references and fails (returning NULL)
     * if any is NULL, so an allocation failure gives NULL. */
    json_t *o = json_pack("{s:o, s:o, s:o, s:{s:s, s:s, s:o}, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:o, s:b}, "
                     "s:s, s:b, s:{s:b, s:b, s:I}, s:{s:s}}",
                     "listen", addrs_json(&cfg->listen), "identity", opt_string(cfg->identity),
                     "data_dir", opt_string(cfg->data_dir), "channel", "name", cfg->channel.name,
                     "dht_prefix", cfg->channel.dht_prefix, "bootstrap",
                     addrs_json(&cfg->channel.bootstrap), "limits", "max_conns",
                     (json_int_t)cfg->limits.max_conns, "max_conns_per_peer",
                     (json_int_t)cfg->limits.max_conns_per_peer, "max_streams_per_peer",
                     (json_int_t)cfg->limits.max_streams_per_peer, "max_handshakes_per_ip",
                     (json_int_t)cfg->limits.max_handshakes_per_ip, "handshake_timeout_s",
                     (json_int_t)cfg->limits.handshake_timeout_s, "api", "listen",
                     opt_string(cfg->api.listen), "allow_remote", (int)cfg->api.allow_remote, "log",
                     dn_log_level_name(cfg->log), "enable_perf", (int)cfg->enable_perf,
                     "autonat", "server", (int)cfg->autonat.server, "allow_private",
                     (int)cfg->autonat.allow_private, "confidence",
                     (json_int_t)cfg->autonat.confidence, "dht", "mode",
                     dn__node_dht_mode_name(cfg->dht.mode));
    if (o && (json_object_set_new(o, "pubsub",
                                  json_pack("{s:s}", "router",
                                            cfg->pubsub.floodsub ? "floodsub" : "gossipsub")) ||
              json_object_set_new(o, "jobs",
                                  json_pack("{s:s, s:o}", "topic", cfg->jobs.topic, "auto_bid",
                                            opt_string(cfg->jobs.auto_bid))))) {
        json_decref(o);
        return NULL;
    }
    return o;
}
