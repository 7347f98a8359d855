/* The libuv glue around the session (src/host/conn.c): after a burst, the
 * session's idle deadline reaches the connection's timer and both ends of a
 * real loopback connection give their large buffers back. Two hosts in one
 * loop, 127.0.0.1 only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <uv.h>

#include "dmsnet/error.h"
#include "dmsnet/host.h"
#include "dmsnet/keys.h"
#include "dmsnet/log.h"
#include "dmsnet/multiaddr.h"
#include "host/host_internal.h"

#define PROTO "/test/echo/1.0.0"
#define BURST (1u << 20)

typedef struct ctx {
    uv_loop_t loop;
    dn_host *l, *d;
    dn_privkey *kl, *kd;
    dn_conn *conn; /* the dialer's */
    uint8_t *payload;
    size_t sent, got;
    bool eof;
    size_t busy_cap_d, busy_cap_l; /* right after the burst */
    size_t idle_cap_d, idle_cap_l; /* after the idle period */
    size_t idle_sendq;             /* the listener stream's queue, after */
    dn_stream *lstream;            /* the listener's echo stream, kept open */
    bool done;
    int closed;
    uv_timer_t wait, guard;
} ctx;

static ctx T;

static size_t conn_cap(dn_host *h)
{
    size_t n = 0;
    for (dn_conn *c = h->conns; c; c = c->next)
        n += dn__session_buffered_capacity(&c->sess);
    return n;
}

static void echo_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    assert_int_equal(dn_stream_write(s, d, n), 0);
}
static void echo_eof(dn_stream *s, void *arg) {}
static void echo_close(dn_stream *s, int status, void *arg)
{
    T.lstream = NULL;
}
static void echo_handler(dn_host *h, dn_stream *s, void *arg)
{
    static const dn_stream_callbacks cbs = {
        .on_data = echo_data, .on_eof = echo_eof, .on_close = echo_close};
    dn_stream_set_callbacks(s, &cbs, NULL);
    T.lstream = s;
}

static void host_closed(void *arg)
{
    T.closed++;
}

static void on_idle_checked(uv_timer_t *t)
{
    T.idle_cap_d = conn_cap(T.d);
    T.idle_cap_l = conn_cap(T.l);
    T.idle_sendq = T.lstream ? T.lstream->sendq.cap : 0;
    T.done = true;
    uv_timer_stop(&T.guard);
    dn_host_close(T.d, host_closed, NULL);
    dn_host_close(T.l, host_closed, NULL);
}

static void c_data(dn_stream *s, const uint8_t *d, size_t n, void *arg)
{
    T.got += n;
    if (T.got == BURST) {
        T.busy_cap_d = conn_cap(T.d);
        T.busy_cap_l = conn_cap(T.l);
        /* The trim comes 1-2 s after the last byte moved. */
        uv_timer_start(&T.wait, on_idle_checked, 3000, 0);
    }
}
static void c_eof(dn_stream *s, void *arg)
{
    T.eof = true;
}
static void c_close(dn_stream *s, int status, void *arg) {}

static void on_open(dn_stream *s, int status, void *arg)
{
    assert_int_equal(status, 0);
    static const dn_stream_callbacks cbs = {
        .on_data = c_data, .on_eof = c_eof, .on_close = c_close};
    dn_stream_set_callbacks(s, &cbs, NULL);
    /* All at once: the stream queue takes what the window does not. */
    assert_int_equal(dn_stream_write(s, T.payload, BURST), 0);
}

static void on_dialed(dn_host *h, dn_conn *c, int status, void *arg)
{
    assert_int_equal(status, 0);
    T.conn = c;
    assert_int_equal(dn_conn_open_stream(c, PROTO, on_open, NULL), 0);
}

static void on_guard(uv_timer_t *t)
{
    dn_host_close(T.d, host_closed, NULL);
    dn_host_close(T.l, host_closed, NULL);
}

static void test_buffers_shrink_after_burst(void **st)
{
    (void)st;
    memset(&T, 0, sizeof T);
    assert_int_equal(uv_loop_init(&T.loop), 0);
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &T.kl), 0);
    assert_int_equal(dn_privkey_generate(DN_KEY_ED25519, &T.kd), 0);
    dn_host_config cl = {.size = sizeof cl, .identity = T.kl}, cd = {.size = sizeof cd, .identity = T.kd};
    assert_int_equal(dn_host_new(&T.loop, &cl, &T.l), 0);
    assert_int_equal(dn_host_new(&T.loop, &cd, &T.d), 0);
    assert_int_equal(dn_host_set_handler(T.l, PROTO, echo_handler, NULL), 0);
    dn_multiaddr ma, bound;
    assert_int_equal(dn_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(dn_host_listen(T.l, &ma), 0);
    assert_int_equal(dn_host_listen_addrs(T.l, &bound, 1), 1);
    T.payload = malloc(BURST);
    assert_non_null(T.payload);
    randombytes_buf(T.payload, BURST);
    uv_timer_init(&T.loop, &T.wait);
    uv_timer_init(&T.loop, &T.guard);
    uv_timer_start(&T.guard, on_guard, 30000, 0); /* fails the test below */
    assert_int_equal(dn_host_dial(T.d, &bound, on_dialed, NULL), 0);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&T.wait, NULL);
    uv_close((uv_handle_t *)&T.guard, NULL);
    uv_run(&T.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&T.loop), 0);
    dn_privkey_free(T.kl);
    dn_privkey_free(T.kd);
    free(T.payload);

    assert_true(T.done);
    assert_int_equal(T.closed, 2);
    assert_int_equal(T.got, BURST);
    /* The burst grew the buffers on both ends... */
    assert_true(T.busy_cap_d > 4 * DN__SESSION_KEEP);
    assert_true(T.busy_cap_l > 4 * DN__SESSION_KEEP);
    /* ...and a quiet second later they are small again, the connection
     * and the (still open) stream alive. */
    assert_true(T.idle_cap_d <= 2 * DN__SESSION_KEEP);
    assert_true(T.idle_cap_l <= 2 * DN__SESSION_KEEP);
    assert_true(T.idle_sendq <= DN__SESSION_KEEP);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    dn_log_set_level(DN_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffers_shrink_after_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
