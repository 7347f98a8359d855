/* Port reuse in the host (dn_host_config.no_port_reuse, host.c's
 * dn__host_reuse_socket) and dn_conn_local_addr / dn_conn_id: a dial leaves
 * from the listen port, so the remote sees that port; a second connection
 * to the same address (the 4-tuple is taken) and a redial while the old
 * one is in TIME_WAIT fall back to an ephemeral port; the listener keeps
 * accepting; with no_port_reuse every dial uses an ephemeral port.
 *
 * Hosts share one libuv loop over loopback TCP; the loop only runs bounded
 * by a watchdog, and the teardown requires every handle to be gone. */
#include <arpa/inet.h>
#include <setjmp.h>
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

#define NH 3

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t watchdog, tick;
    bool expired;
    dn_privkey *key[NH];
    dn_host *host[NH];
    int closed[NH];
    dn_conn *last_inbound[NH]; /* the last connection opened towards host i */
    int conn_closed[NH];
} fx;

static void on_watchdog(uv_timer_t *t)
{
    ((fx *)t->data)->expired = true;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

#define RUN_UNTIL(f, expr, ms)                                                                     \
    do {                                                                                           \
        (f)->expired = false;                                                                      \
        uv_timer_start(&(f)->watchdog, on_watchdog, (ms), 0);                                      \
        uv_timer_start(&(f)->tick, on_tick, 5, 5);                                                 \
        while (!(expr) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
        uv_timer_stop(&(f)->tick);                                                                 \
        if (!(expr))                                                                               \
            fail_msg("timed out after %u ms waiting for: %s", (unsigned)(ms), #expr);              \
    } while (0)

typedef struct obs_arg {
    fx *f;
    int i;
} obs_arg;
static obs_arg obs_args[NH];

static void on_event(dn_host *h, dn_conn *c, dn_conn_event ev, int status, void *arg)
{
    (void)h;
    (void)status;
    obs_arg *a = arg;
    if (ev == DN_CONN_EV_OPENED && !dn_conn_is_outbound(c))
        a->f->last_inbound[a->i] = c;
    if (ev == DN_CONN_EV_CLOSED)
        a->f->conn_closed[a->i]++;
}

static dn_multiaddr ma(const char *s)
{
    dn_multiaddr m;
    assert_int_equal(dn_multiaddr_parse(s, &m), 0);
    return m;
}

static unsigned port_of(const dn_multiaddr *m)
{
    size_t off = 0;
    dn_ma_component c;
    while (dn_multiaddr_next(m, &off, &c) == 1)
        if (c.code == DN_MA_TCP)
            return (unsigned)c.value[0] << 8 | c.value[1];
    fail_msg("no tcp port");
    return 0;
}

static dn_host *host_up_on(fx *f, int i, bool no_reuse, const char *listen)
{
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = f->key[i];
    cfg.no_port_reuse = no_reuse;
    assert_int_equal(dn_host_new(&f->loop, &cfg, &f->host[i]), 0);
    obs_args[i] = (obs_arg){f, i};
    assert_int_equal(dn_host_add_observer(f->host[i], on_event, &obs_args[i]), 0);
    dn_multiaddr any = ma(listen);
    assert_int_equal(dn_host_listen(f->host[i], &any), 0);
    return f->host[i];
}

static dn_host *host_up(fx *f, int i, bool no_reuse)
{
    return host_up_on(f, i, no_reuse, "/ip4/127.0.0.1/tcp/0");
}

/* The IP of a /ip4/<ip>/tcp/<port> multiaddr, as text. */
static const char *ip_of(const dn_multiaddr *m, char buf[64])
{
    char s[DN_MULTIADDR_STR_MAX];
    assert_true(dn_multiaddr_to_string(m, s, sizeof s) > 0);
    assert_int_equal(sscanf(s, "/ip4/%63[0-9.]/", buf), 1);
    return buf;
}

static dn_multiaddr listen_of(fx *f, int i, bool p2p)
{
    dn_multiaddr m;
    assert_int_equal(dn_host_listen_addrs(f->host[i], &m, 1), 1);
    if (p2p) {
        const dn_peerid *id = dn_host_peerid(f->host[i]);
        assert_int_equal(dn_multiaddr_append(&m, DN_MA_P2P, id->bytes, id->len), 0);
    }
    return m;
}

typedef struct dial_rec {
    int calls, status;
    dn_conn *conn;
} dial_rec;

static void on_dial(dn_host *h, dn_conn *c, int status, void *arg)
{
    (void)h;
    dial_rec *d = arg;
    d->calls++;
    d->status = status;
    d->conn = c;
}

/* Dial host `to` from `from` (with /p2p when asked): the connection, and
 * the one `to` accepted in *inbound. */
static dn_conn *dial(fx *f, int from, int to, bool p2p, dn_conn **inbound)
{
    dial_rec d = {0};
    f->last_inbound[to] = NULL;
    dn_multiaddr m = listen_of(f, to, p2p);
    assert_int_equal(dn_host_dial(f->host[from], &m, on_dial, &d), 0);
    RUN_UNTIL(f, d.calls > 0 && f->last_inbound[to], 5000);
    assert_int_equal(d.status, 0);
    assert_non_null(d.conn);
    *inbound = f->last_inbound[to];
    return d.conn;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop))
        return -1;
    uv_timer_init(&f->loop, &f->watchdog);
    uv_timer_init(&f->loop, &f->tick);
    f->watchdog.data = f;
    for (int i = 0; i < NH; i++)
        if (dn_privkey_generate(DN_KEY_ED25519, &f->key[i]))
            return -1;
    *state = f;
    return 0;
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

static int teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < NH; i++)
        if (f->host[i])
            dn_host_close(f->host[i], on_closed, &f->closed[i]);
    f->expired = false;
    uv_timer_start(&f->watchdog, on_watchdog, 5000, 0);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    for (;;) {
        bool open = false;
        for (int i = 0; i < NH; i++)
            open = open || (f->host[i] && !f->closed[i]);
        if (!open || f->expired)
            break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&f->loop) == 0 ? 0 : -1;
    for (int i = 0; i < NH; i++)
        dn_privkey_free(f->key[i]);
    free(f);
    return rc;
}

static void test_dial_from_listen_port(void **state)
{
    fx *f = *state;
    host_up(f, 0, false);
    host_up(f, 1, false);
    dn_multiaddr la = listen_of(f, 0, false), lb = listen_of(f, 1, false);

    dn_conn *in;
    dn_conn *c = dial(f, 0, 1, true, &in);
    /* Both ends of the one socket: A's local address is its listen address,
     * and B sees A coming from that port. */
    assert_int_equal(dn_conn_local_addr(c)->len, la.len);
    assert_memory_equal(dn_conn_local_addr(c)->bytes, la.bytes, la.len);
    assert_int_equal(port_of(dn_conn_remote_addr(in)), port_of(&la));
    assert_int_equal(dn_conn_local_addr(in)->len, lb.len);
    assert_memory_equal(dn_conn_local_addr(in)->bytes, lb.bytes, lb.len);
    assert_int_equal(port_of(dn_conn_remote_addr(c)), port_of(&lb));
    assert_true(dn_conn_id(c) != 0 && dn_conn_id(in) != 0);

    /* A second connection to the same address (no /p2p: not reused) finds
     * the 4-tuple taken and leaves from an ephemeral port. */
    dn_conn *in2;
    dn_conn *c2 = dial(f, 0, 1, false, &in2);
    assert_true(c2 != c);
    assert_true(dn_conn_id(c2) != dn_conn_id(c));
    assert_int_not_equal(port_of(dn_conn_local_addr(c2)), port_of(&la));
    assert_int_equal(port_of(dn_conn_remote_addr(in2)), port_of(dn_conn_local_addr(c2)));

    /* A's listener still accepts, with its port bound by its dials. */
    host_up(f, 2, false);
    dn_multiaddr lc = listen_of(f, 2, false);
    dn_conn *in3;
    dn_conn *c3 = dial(f, 2, 0, true, &in3);
    assert_int_equal(port_of(dn_conn_remote_addr(in3)), port_of(&lc));
    assert_int_equal(port_of(dn_conn_local_addr(c3)), port_of(&lc));

    /* A closes its first connection (A's side goes to TIME_WAIT) and dials
     * again at once: the redial works, from whichever port is free. */
    int closed = f->conn_closed[0];
    dn_conn_close(c);
    RUN_UNTIL(f, f->conn_closed[0] > closed, 3000);
    dn_conn_close(c2);
    RUN_UNTIL(f, f->conn_closed[0] > closed + 1, 3000);
    dn_conn *in4;
    dn_conn *c4 = dial(f, 0, 1, true, &in4);
    assert_int_equal(port_of(dn_conn_remote_addr(in4)), port_of(dn_conn_local_addr(c4)));
}

static void test_no_port_reuse(void **state)
{
    fx *f = *state;
    host_up(f, 0, true);
    host_up(f, 1, false);
    dn_multiaddr la = listen_of(f, 0, false);
    dn_conn *in;
    dn_conn *c = dial(f, 0, 1, true, &in);
    assert_int_not_equal(port_of(dn_conn_local_addr(c)), port_of(&la));
    assert_int_equal(port_of(dn_conn_remote_addr(in)), port_of(dn_conn_local_addr(c)));
    /* A's port is refused to a second listener, which tries with
     * SO_REUSEPORT. */
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = f->key[2];
    assert_int_equal(dn_host_new(&f->loop, &cfg, &f->host[2]), 0);
    assert_int_equal(dn_host_listen(f->host[2], &la), UV_EADDRINUSE);
}

/* With port reuse on, a port listened on by another host is still refused
 * (SO_REUSEPORT alone would let the two share it). */
static void test_listen_taken(void **state)
{
    fx *f = *state;
    host_up(f, 0, false);
    dn_multiaddr la = listen_of(f, 0, false);
    dn_host_config cfg = DN_HOST_CONFIG_INIT;
    cfg.identity = f->key[1];
    assert_int_equal(dn_host_new(&f->loop, &cfg, &f->host[1]), 0);
    assert_int_equal(dn_host_listen(f->host[1], &la), UV_EADDRINUSE);
    /* Wildcard over a specific address of the same port too. */
    char s[64];
    snprintf(s, sizeof s, "/ip4/0.0.0.0/tcp/%u", port_of(&la));
    dn_multiaddr any = ma(s);
    assert_int_equal(dn_host_listen(f->host[1], &any), UV_EADDRINUSE);
    dn_multiaddr out[2];
    assert_int_equal(dn_host_listen_addrs(f->host[1], out, 2), 0);
}

/* Only the port changes, never the source IP the kernel picks: a listener
 * on 127.0.0.2 is no use for a dial to 127.0.0.1 (the kernel's source
 * there is 127.0.0.1, and the remote might have no route back to another
 * address); a listener on 0.0.0.0 is, with the kernel's source IP. */
static void test_source_ip_kept(void **state)
{
    fx *f = *state;
    host_up_on(f, 0, false, "/ip4/127.0.0.2/tcp/0");
    host_up(f, 1, false);
    dn_multiaddr la = listen_of(f, 0, false);
    char ip[64];
    dn_conn *in;
    dn_conn *c = dial(f, 0, 1, true, &in);
    assert_string_equal(ip_of(dn_conn_local_addr(c), ip), "127.0.0.1");
    assert_int_not_equal(port_of(dn_conn_local_addr(c)), port_of(&la));

    host_up_on(f, 2, false, "/ip4/0.0.0.0/tcp/0");
    dn_multiaddr lc = listen_of(f, 2, false);
    c = dial(f, 2, 1, true, &in);
    assert_string_equal(ip_of(dn_conn_local_addr(c), ip), "127.0.0.1");
    assert_int_equal(port_of(dn_conn_local_addr(c)), port_of(&lc));
    assert_int_equal(port_of(dn_conn_remote_addr(in)), port_of(&lc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dial_from_listen_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_port_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_ip_kept, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
