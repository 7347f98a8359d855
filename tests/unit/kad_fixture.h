/* A loop with several hosts for the DHT tests (test_kad_service.c,
 * test_kad_network.c): each host listens on 127.0.0.1, serves identify and
 * ping and carries a dn_kad. As in test_messenger.c: the loop runs only in
 * RUN_UNTIL / run_for, bounded by a watchdog; the teardown closes every
 * host and requires the loop to close clean. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/kad.h"
#include "dmsnet/protocols.h"

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog, tick;
    bool expired;
    int n;
    dn_privkey **key;
    dn_host **host;
    dn_kad **kad;
    int *close_cbs;
} fx;

static inline void on_watchdog(uv_timer_t *t)
{
    ((fx *)t->data)->expired = true;
}
static inline void on_tick(uv_timer_t *t)
{
    (void)t;
}

static inline void watchdog_start(fx *f, uint64_t ms)
{
    f->expired = false;
    uv_timer_start(&f->watchdog, on_watchdog, ms, 0);
    uv_timer_start(&f->tick, on_tick, 5, 5);
}

static inline void watchdog_stop(fx *f)
{
    uv_timer_stop(&f->watchdog);
    uv_timer_stop(&f->tick);
}

#define RUN_UNTIL(f, expr, ms)                                                                     \
    do {                                                                                           \
        watchdog_start((f), (ms));                                                                 \
        while (!(expr) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        watchdog_stop(f);                                                                          \
        if (!(expr))                                                                               \
            fail_msg("timed out after %u ms waiting for: %s", (unsigned)(ms), #expr);              \
    } while (0)

static inline void run_for(fx *f, uint64_t ms)
{
    watchdog_start(f, ms);
    while (!f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    watchdog_stop(f);
}

static inline fx *fx_new(int n)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop))
        return NULL;
    f->n = n;
    f->key = calloc(n, sizeof *f->key);
    f->host = calloc(n, sizeof *f->host);
    f->kad = calloc(n, sizeof *f->kad);
    f->close_cbs = calloc(n, sizeof *f->close_cbs);
    uv_timer_init(&f->loop, &f->watchdog);
    f->watchdog.data = f;
    uv_timer_init(&f->loop, &f->tick);
    for (int i = 0; i < n; i++)
        if (dn_privkey_generate(DN_KEY_ED25519, &f->key[i]))
            return NULL;
    return f;
}

static inline void on_host_closed(void *arg)
{
    (*(int *)arg)++;
}

static inline dn_multiaddr ma(const char *s)
{
    dn_multiaddr m;
    assert_int_equal(dn_multiaddr_parse(s, &m), 0);
    return m;
}

/* Host i with a DHT in the given mode (cfg NULL: server, defaults). */
static inline void host_up(fx *f, int i, const dn_kad_config *kcfg)
{
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = f->key[i];
    assert_int_equal(dn_host_new(&f->loop, &cfg, &f->host[i]), 0);
    dn_multiaddr any = ma("/ip4/127.0.0.1/tcp/0");
    assert_int_equal(dn_host_listen(f->host[i], &any), 0);
    assert_int_equal(dn_identify_attach(f->host[i]), 0);
    assert_int_equal(dn_ping_attach(f->host[i]), 0);
    dn_kad_config kc = DN_KAD_CONFIG_INIT;
    kc.mode = DN_KAD_MODE_SERVER;
    assert_int_equal(dn_kad_attach(f->host[i], kcfg ? kcfg : &kc, &f->kad[i]), 0);
}

/* Close host i now (its DHT goes with it). */
static inline void host_down(fx *f, int i)
{
    dn_host_close(f->host[i], on_host_closed, &f->close_cbs[i]);
}

typedef struct dial_rec {
    int calls, status;
    dn_conn *conn;
} dial_rec;

static inline void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    dial_rec *d = arg;
    d->calls++;
    d->status = status;
    d->conn = c;
}

static inline void dial_start(fx *f, int from, int to, dial_rec *d)
{
    dn_multiaddr m;
    assert_true(dn_host_listen_addrs(f->host[to], &m, 1) >= 1);
    const dn_peerid *id = dn_host_peerid(f->host[to]);
    assert_int_equal(dn_multiaddr_append(&m, DN_MA_P2P, id->bytes, id->len), 0);
    assert_int_equal(dn_host_dial(f->host[from], &m, on_dial, d), 0);
}

static inline dn_conn *connect_to(fx *f, int from, int to)
{
    dial_rec d = {0};
    dial_start(f, from, to, &d);
    RUN_UNTIL(f, d.calls > 0, 5000);
    assert_int_equal(d.status, 0);
    return d.conn;
}

static inline bool in_table(fx *f, int i, int j)
{
    dn_kad_table_entry e[512];
    dn_peerid id; /* from the key: host j may be gone */
    assert_int_equal(dn_peerid_from_pubkey(dn_privkey_public(f->key[j]), &id), 0);
    size_t n = dn_kad_table(f->kad[i], e, 512);
    for (size_t x = 0; x < n; x++)
        if (dn_peerid_equal(&e[x].id, &id))
            return true;
    return false;
}

static inline int fx_free(fx *f)
{
    for (int i = 0; i < f->n; i++)
        if (f->host[i] && f->close_cbs[i] == 0)
            host_down(f, i);
    watchdog_start(f, 10000);
    for (;;) {
        bool open = false;
        for (int i = 0; i < f->n; i++)
            if (f->host[i] && f->close_cbs[i] == 0)
                open = true;
        if (!open || f->expired)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    watchdog_stop(f);
    int rc = 0;
    for (int i = 0; i < f->n; i++)
        if (f->host[i] && f->close_cbs[i] != 1) {
            fprintf(stderr, "teardown: host %d closed %d times\n", i, f->close_cbs[i]);
            rc = -1;
        }
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 10; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&f->loop) != 0) {
        fprintf(stderr, "teardown: handles left on the loop\n");
        rc = -1;
    }
    for (int i = 0; i < f->n; i++)
        dn_privkey_free(f->key[i]);
    free(f->key);
    free(f->host);
    free(f->kad);
    free(f->close_cbs);
    free(f);
    return rc;
}
