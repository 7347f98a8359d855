#include "cli/cli_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "cli/cli.h"
#include "crypto/keyfile.h"
#include "dmsnet/error.h"
#include "dmsnet/protocols.h"
#include "dmsnet/multiaddr.h"
#include "pnet/pnet.h"

int dn_cli_default_data_dir(char *out, size_t outlen)
{
    const char *home = getenv("DMSNET_HOME");
    int n;
    if (home && *home) {
        n = snprintf(out, outlen, "%s", home);
    } else {
        home = getenv("HOME");
        if (!home || !*home)
            return DN_ENOTFOUND;
        n = snprintf(out, outlen, "%s/.dmsnet", home);
    }
    return n < 0 || (size_t)n >= outlen ? DN_ETOOBIG : 0;
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return DN_ETOOBIG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* What went wrong with a key file, for a person. */
static const char *keyfile_error(int rc)
{
    switch (rc) {
    case DN_EINVAL:
    case -EISDIR: return "not a regular file";
    default: return dn_strerror(rc);
    }
}

int dn_cli_load_identity(const char *cmd, const char *path, int create, dn_privkey **out)
{
    /* The daemon (create) owns its identity file: a writer killed before its
     * rename left a whole private key in a temporary beside it. */
    if (create)
        (void)dn__keyfile_remove_stale(path);
    int rc = dn_privkey_load(path, out);
    if (rc == -ENOENT && create) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            if ((rc = mkdir_p(dir)) != 0) {
                dn_cli_error(cmd, "cannot create directory %s: %s", dir, dn_strerror(rc));
                return 1;
            }
        }
        rc = dn_privkey_generate(DN_KEY_ED25519, out);
        if (!rc)
            rc = dn_privkey_save(*out, path);
        if (rc) {
            dn_cli_error(cmd, "cannot create identity %s: %s", path, dn_strerror(rc));
            dn_privkey_free(*out);
            *out = NULL;
            return 1;
        }
        fprintf(stderr, "dmsnet %s: created a new identity in %s\n", cmd, path);
        return 0;
    }
    if (rc) {
        dn_cli_error(cmd, "cannot load identity %s: %s", path, keyfile_error(rc));
        return 1;
    }
    return 0;
}

int dn_cli_load_swarm_key(const char *cmd, const char *path, uint8_t psk[32])
{
    int rc = dn_swarm_key_load(path, psk);
    if (rc) {
        dn_cli_error(cmd, "cannot load swarm key %s: %s", path, keyfile_error(rc));
        return 1;
    }
    return 0;
}

int dn_cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    uint64_t mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1024ull, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024ull * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024ull * 1024 * 1024, end++;
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end || (v && mult > UINT64_MAX / v))
        return -1;
    *out = v * mult;
    return 0;
}

int dn_cli_parse_multiaddr(const char *cmd, const char *s, dn_multiaddr *out)
{
    int rc = dn_multiaddr_parse(s, out);
    if (rc) {
        dn_cli_error(cmd, "invalid multiaddr '%s': %s", s, dn_multiaddr_error());
        return 1;
    }
    return 0;
}

int dn_cli_parse_peer_addr(const char *cmd, const char *s, dn_multiaddr *ma, dn_peerid *peer)
{
    if (dn_cli_parse_multiaddr(cmd, s, ma))
        return 1;
    if (dn_multiaddr_peerid(ma, peer)) {
        dn_cli_error(cmd, "the address must end in /p2p/<peer id>");
        return 1;
    }
    return 0;
}

typedef struct dial_wait {
    dn_conn *conn;
    int status;
    bool done;
    uv_timer_t timer;
} dial_wait;

static void dial_done(dn_host *h, dn_conn *c, int status, void *arg)
{
    dial_wait *w = arg;
    w->conn = c;
    w->status = status;
    w->done = true;
    uv_timer_stop(&w->timer);
}

static void dial_timeout(uv_timer_t *t)
{
    dial_wait *w = t->data;
    w->status = DN_ETIMEOUT;
    w->done = true;
}

dn_conn *dn_cli_dial(const char *cmd, dn_host *h, const dn_multiaddr *ma, unsigned timeout_ms)
{
    static dial_wait w; /* a CLI dials once; static keeps it valid for late callbacks */
    memset(&w, 0, sizeof w);
    char text[DN_MULTIADDR_STR_MAX];
    dn_multiaddr_to_string(ma, text, sizeof text);
    uv_loop_t *loop = dn_host_loop(h);
    uv_timer_init(loop, &w.timer);
    w.timer.data = &w;
    uv_timer_start(&w.timer, dial_timeout, timeout_ms, 0);
    int rc = dn_host_dial(h, ma, dial_done, &w);
    if (rc) {
        dn_cli_error(cmd, "cannot dial %s: %s", text, dn_strerror(rc));
        uv_close((uv_handle_t *)&w.timer, NULL);
        return NULL;
    }
    while (!w.done && uv_run(loop, UV_RUN_ONCE))
        ;
    uv_timer_stop(&w.timer);
    uv_close((uv_handle_t *)&w.timer, NULL);
    if (!w.done)
        w.status = DN_ECLOSED;
    if (w.status == DN_ECLOSED) {
        dn_cli_error(cmd, "cannot connect to %s: the peer closed the connection during the "
                          "handshake (a swarm key that differs from the peer's, or the peer "
                          "refusing connections)", text);
        return NULL;
    }
    if (w.status) {
        dn_cli_error(cmd, "cannot connect to %s: %s", text, dn_strerror(w.status));
        return NULL;
    }
    return w.conn;
}

int dn_cli_attach_services(dn_host *h, bool perf)
{
    int rc = dn_identify_attach(h);
    if (!rc)
        rc = dn_ping_attach(h);
    if (!rc && perf)
        rc = dn_perf_attach(h, 0);
    return rc;
}

void dn_cli_shutdown(dn_host *h)
{
    uv_loop_t *loop = dn_host_loop(h);
    dn_host_close(h, NULL, NULL);
    /* Run until every handle is closed; a bounded number of turns guards
     * against a handle someone forgot to close. */
    for (int i = 0; i < 1000 && uv_run(loop, UV_RUN_NOWAIT); i++)
        ;
}

int dn_cli_client_start(const char *cmd, const char *identity_path, const char *swarm_key_path,
                        dn_host_config *cfg, dn_cli_client *cl)
{
    memset(cl, 0, sizeof *cl);
    if (identity_path) {
        if (dn_cli_load_identity(cmd, identity_path, 0, &cl->key))
            return 1;
    } else {
        int rc = dn_privkey_generate(DN_KEY_ED25519, &cl->key);
        if (rc) {
            dn_cli_error(cmd, "cannot create a key: %s", dn_strerror(rc));
            return 1;
        }
    }
    uint8_t psk[32];
    if (swarm_key_path && dn_cli_load_swarm_key(cmd, swarm_key_path, psk)) {
        dn_privkey_free(cl->key);
        return 1;
    }
    uv_loop_init(&cl->loop);
    cfg->identity = cl->key;
    cfg->psk = swarm_key_path ? psk : NULL;
    int rc = dn_host_new(&cl->loop, cfg, &cl->host);
    sodium_memzero(psk, sizeof psk); /* the host keeps its own copy */
    cfg->psk = NULL;
    if (rc) {
        dn_cli_error(cmd, "cannot start: %s", dn_strerror(rc));
        uv_loop_close(&cl->loop);
        dn_privkey_free(cl->key);
        return 1;
    }
    if ((rc = dn_cli_attach_services(cl->host, false))) {
        dn_cli_error(cmd, "cannot start: %s", dn_strerror(rc));
        dn_cli_client_stop(cl);
        return 1;
    }
    return 0;
}

void dn_cli_client_stop(dn_cli_client *cl)
{
    dn_cli_shutdown(cl->host);
    uv_loop_close(&cl->loop);
    dn_privkey_free(cl->key);
}
