/* The local API (src/api): a real server on a libuv loop in this process,
 * driven by the real client (libcurl) from a second thread and by raw
 * sockets for what a well-behaved client never does (partial requests,
 * never reading, chunked oversize bodies).
 *
 * The main thread owns the loop and runs it only inside wait_until(), which
 * is bounded by a deadline, so a hang fails the test. A client call runs in
 * a worker thread that wakes the loop with a uv_async when it is done; the
 * handlers and stream callbacks only record what happened. The teardown
 * closes the server, runs the loop until every handle is gone and requires
 * uv_loop_close to succeed (ASan checks the memory). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "api/api.h"
#include "dmsnet/error.h"

typedef struct fx {
    uv_loop_t loop;
    char dir[64];
    char sock[100];
    char token_path[128];
    dn_api *api;
    dn_api *api2;
    /* async handler state */
    dn_api_req *later;
    uv_timer_t later_timer;
    bool later_timer_on;
    dn_api_req *hang;
    /* streams */
    dn_api_stream *stream;
    int stream_closed;
    dn_api_stream_end stream_why;
    int stream_initial; /* events the handler pushes at once */
} fx;

static fx *F;

/* ---- loop helpers ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_tick(uv_timer_t *t) {}

/* Runs the loop until *flag or the deadline; a repeating 5 ms timer keeps
 * uv_run returning so the condition is checked. */
static bool wait_until_ms(fx *f, volatile bool *flag, unsigned ms)
{
    uv_timer_t tick;
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uint64_t end = now_ms() + ms;
    while (!*flag && now_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return *flag;
}

static void spin_ms(fx *f, unsigned ms)
{
    bool never = false;
    wait_until_ms(f, &never, ms);
}

/* ---- a client call in a worker thread ---- */

typedef struct job {
    dn_api_client c;
    const char *method, *path;
    json_t *body;
    long status;
    json_t *reply;
    int rc;
    /* raw: bytes to send as they are; the whole answer is read back */
    const char *raw;
    size_t raw_len;
    char resp[8192];
    size_t resp_len;
    /* streaming */
    bool stream;
    int lines;
    int stop_after;
    int out_of_order; /* lines whose "n" was not the line's index */
    json_t *last_line;
    volatile bool done;
    uv_async_t async;
} job;

static int connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int on_line(json_t *v, void *ud)
{
    job *j = ud;
    json_t *n = json_object_get(v, "n");
    if (n && json_integer_value(n) != j->lines)
        j->out_of_order++;
    j->lines++;
    json_decref(j->last_line);
    j->last_line = json_incref(v);
    return j->stop_after && j->lines >= j->stop_after;
}

static void job_main(void *arg)
{
    job *j = arg;
    if (j->raw) {
        int fd = connect_unix(F->sock);
        if (fd >= 0) {
            struct timeval tv = {.tv_sec = 5};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            size_t off = 0;
            while (off < j->raw_len) {
                ssize_t w = send(fd, j->raw + off, j->raw_len - off, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
            ssize_t n;
            while (j->resp_len < sizeof j->resp - 1 &&
                   (n = read(fd, j->resp + j->resp_len, sizeof j->resp - 1 - j->resp_len)) > 0)
                j->resp_len += (size_t)n;
            j->resp[j->resp_len] = 0;
            close(fd);
        }
        j->rc = fd >= 0 ? 0 : -errno;
    } else if (j->stream) {
        j->rc = dn__api_stream_call(&j->c, j->path, on_line, j, &j->status, &j->reply);
    } else {
        j->rc = dn__api_call_ex(&j->c, j->method, j->path, j->body, &j->status, &j->reply);
    }
    j->done = true;
    uv_async_send(&j->async);
}

static void on_async(uv_async_t *a) {}

static void job_start(fx *f, job *j, uv_thread_t *tid)
{
    if (!j->c.unix_path && !j->c.base_url)
        j->c.unix_path = f->sock;
    j->done = false; /* jobs are reused */
    j->rc = 0;
    j->status = 0;
    j->resp_len = 0;
    j->lines = 0;
    uv_async_init(&f->loop, &j->async, on_async);
    assert_int_equal(uv_thread_create(tid, job_main, j), 0);
}

static void job_finish(fx *f, job *j, uv_thread_t *tid)
{
    assert_true(wait_until_ms(f, &j->done, 10000));
    uv_thread_join(tid);
    uv_close((uv_handle_t *)&j->async, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void job_run(fx *f, job *j)
{
    uv_thread_t tid;
    job_start(f, j, &tid);
    job_finish(f, j, &tid);
}

static void job_clear(job *j)
{
    json_decref(j->reply);
    json_decref(j->body);
    json_decref(j->last_line);
    j->reply = j->body = j->last_line = NULL;
}

/* One request with the real client; returns the status, *reply owned by j. */
static long call(fx *f, job *j, const char *method, const char *path, json_t *body)
{
    j->method = method;
    j->path = path;
    j->body = body;
    job_run(f, j);
    if (j->rc != 0)
        fail_msg("%s %s: %s", method, path, dn_strerror(j->rc));
    return j->status;
}

static const char *err_of(json_t *reply)
{
    assert_non_null(reply);
    json_t *e = json_object_get(reply, "error");
    assert_true(json_is_string(e));
    return json_string_value(e);
}

/* Status code and JSON body of a raw answer. */
static int raw_status(const job *j)
{
    return j->resp_len > 12 ? atoi(j->resp + 9) : -1;
}
static json_t *raw_body(const job *j)
{
    const char *b = strstr(j->resp, "\r\n\r\n");
    return b ? json_loads(b + 4, JSON_DECODE_ANY, NULL) : NULL;
}

/* ---- handlers ---- */

static void h_hello(dn_api_req *r, void *ud)
{
    dn__api_reply(r, 200, json_pack("{s:s}", "hello", "world"));
}

static void h_echo(dn_api_req *r, void *ud)
{
    json_t *b = dn__api_req_body(r);
    const char *x = dn__api_req_query(r, "x");
    dn__api_reply(r, 201,
                  json_pack("{s:O?,s:s?,s:b}", "body", b, "x", x, "tcp", dn__api_req_is_tcp(r)));
}

static void h_peer(dn_api_req *r, void *ud)
{
    dn__api_reply(r, 200, json_pack("{s:s}", "id", dn__api_req_rest(r)));
}

static void on_later_timer(uv_timer_t *t)
{
    fx *f = t->data;
    dn_api_req *r = f->later;
    f->later = NULL;
    if (r)
        dn__api_reply(r, 200, json_pack("{s:b}", "late", 1));
}

static void h_later(dn_api_req *r, void *ud)
{
    fx *f = ud;
    f->later = r; /* answered from the loop 100 ms later */
    uv_timer_start(&f->later_timer, on_later_timer, 100, 0);
}

static void h_hang(dn_api_req *r, void *ud)
{
    ((fx *)ud)->hang = r;
}

static void on_stream_close(dn_api_stream *s, dn_api_stream_end why, void *ud)
{
    fx *f = ud;
    f->stream_closed++;
    f->stream_why = why;
    if (f->stream == s)
        f->stream = NULL;
}

static void h_events(dn_api_req *r, void *ud)
{
    fx *f = ud;
    f->stream = dn__api_reply_stream(r, on_stream_close, f);
    for (int i = 0; i < f->stream_initial; i++) {
        json_t *ev = json_pack("{s:s,s:i}", "type", "test", "n", i);
        dn__api_stream_push(f->stream, ev);
        json_decref(ev);
    }
}

static int add_routes(fx *f, dn_api *api)
{
    int rc = 0;
    rc |= dn__api_route(api, "GET", "/v0/hello", false, h_hello, f);
    rc |= dn__api_route(api, "POST", "/v0/echo", false, h_echo, f);
    rc |= dn__api_route(api, "GET", "/v0/peers/", true, h_peer, f);
    rc |= dn__api_route(api, "GET", "/v0/later", false, h_later, f);
    rc |= dn__api_route(api, "GET", "/v0/hang", false, h_hang, f);
    rc |= dn__api_route(api, "GET", "/v0/events", false, h_events, f);
    return rc;
}

static int start(fx *f, dn_api_config *cfg, dn_api **out, char *err)
{
    cfg->unix_path = f->sock;
    if (cfg->tcp_host && !cfg->token_path)
        cfg->token_path = f->token_path;
    err[0] = 0;
    int rc = dn__api_new(&f->loop, cfg, out, err, 256);
    if (rc == 0)
        assert_int_equal(add_routes(f, *out), 0);
    return rc;
}

static void start_ok(fx *f, dn_api_config *cfg)
{
    char err[256];
    int rc = start(f, cfg, &f->api, err);
    if (rc != 0)
        fail_msg("dn__api_new: %s (%s)", dn_strerror(rc), err);
}

/* ---- setup ---- */

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/dn-api-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->sock, sizeof f->sock, "%s/api.sock", f->dir);
    snprintf(f->token_path, sizeof f->token_path, "%s/api.token", f->dir);
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->later_timer);
    f->later_timer.data = f;
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->api)
        dn__api_close(f->api);
    if (f->api2)
        dn__api_close(f->api2);
    if (f->hang) /* a reply after the close is dropped safely */
        assert_int_equal(dn__api_reply(f->hang, 200, NULL), DN_ECLOSED);
    uv_close((uv_handle_t *)&f->later_timer, NULL);
    for (int i = 0; i < 100 && uv_loop_alive(&f->loop); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&f->loop);
    char cmd[128];
    unlink(f->sock);
    unlink(f->token_path);
    snprintf(cmd, sizeof cmd, "%s/file", f->dir);
    unlink(cmd);
    rmdir(f->dir);
    free(f);
    F = NULL;
    return rc == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_routes(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    job j = {0};
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    assert_string_equal(json_string_value(json_object_get(j.reply, "hello")), "world");
    job_clear(&j);

    assert_int_equal(call(f, &j, "POST", "/v0/echo?x=a%20b", json_pack("{s:i}", "a", 7)), 201);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j.reply, "body"), "a")), 7);
    assert_string_equal(json_string_value(json_object_get(j.reply, "x")), "a b");
    assert_true(json_is_false(json_object_get(j.reply, "tcp")));
    job_clear(&j);

    /* No body: the handler sees NULL. */
    assert_int_equal(call(f, &j, "POST", "/v0/echo", NULL), 201);
    assert_true(json_is_null(json_object_get(j.reply, "body")));
    job_clear(&j);

    assert_int_equal(call(f, &j, "GET", "/v0/peers/12D3KooWabc", NULL), 200);
    assert_string_equal(json_string_value(json_object_get(j.reply, "id")), "12D3KooWabc");
    job_clear(&j);

    /* Duplicate and malformed routes are refused. */
    assert_int_equal(dn__api_route(f->api, "GET", "/v0/hello", false, h_hello, f), DN_EEXIST);
    assert_int_equal(dn__api_route(f->api, "GET", "v0", false, h_hello, f), DN_EINVAL);
}

static void test_errors_are_json(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    job j = {0};
    assert_int_equal(call(f, &j, "GET", "/v0/nothing", NULL), 404);
    assert_non_null(strstr(err_of(j.reply), "no such endpoint"));
    job_clear(&j);
    assert_int_equal(call(f, &j, "GET", "/", NULL), 404);
    err_of(j.reply);
    job_clear(&j);

    assert_int_equal(call(f, &j, "DELETE", "/v0/hello", NULL), 405);
    assert_non_null(strstr(err_of(j.reply), "GET"));
    job_clear(&j);

    /* 413 from Content-Length, before any body byte is kept. */
    char *big = malloc(70000);
    memset(big, 'a', 69999);
    big[69999] = 0;
    assert_int_equal(call(f, &j, "POST", "/v0/echo", json_pack("{s:s}", "k", big)), 413);
    assert_non_null(strstr(err_of(j.reply), "larger than 65536"));
    job_clear(&j);
    free(big);

    /* Malformed JSON, sent raw. */
    static const char bad[] = "POST /v0/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              "Content-Length: 8\r\n\r\n{\"a\": 1,";
    job r = {.raw = bad, .raw_len = sizeof bad - 1};
    job_run(f, &r);
    assert_int_equal(raw_status(&r), 400);
    assert_non_null(strstr(r.resp, "application/json"));
    json_t *b = raw_body(&r);
    assert_non_null(strstr(err_of(b), "malformed JSON"));
    json_decref(b);

    /* A chunked body has no Content-Length: bounded while it arrives, 413
     * at its end. */
    size_t cap = 80 * 1024 + 512;
    char *req = malloc(cap);
    size_t n = (size_t)snprintf(req, cap,
                                "POST /v0/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 20; i++) {
        n += (size_t)snprintf(req + n, cap - n, "1000\r\n");
        memset(req + n, ' ', 4096);
        n += 4096;
        n += (size_t)snprintf(req + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(req + n, cap - n, "0\r\n\r\n");
    job r2 = {.raw = req, .raw_len = n};
    job_run(f, &r2);
    assert_int_equal(raw_status(&r2), 413);
    b = raw_body(&r2);
    err_of(b);
    json_decref(b);
    free(req);

    /* The server is still fine. */
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);
}

static void test_async_reply(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    job j = {0};
    uint64_t t0 = now_ms();
    assert_int_equal(call(f, &j, "GET", "/v0/later", NULL), 200);
    assert_true(now_ms() - t0 >= 90);
    assert_true(json_is_true(json_object_get(j.reply, "late")));
    job_clear(&j);

    /* While one request waits for its late answer, others are served. */
    job slow = {.method = "GET", .path = "/v0/hang"};
    uv_thread_t tid;
    job_start(f, &slow, &tid);
    for (int i = 0; i < 400 && !f->hang; i++) /* set once the request is parked */
        spin_ms(f, 5);
    assert_non_null(f->hang);
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);
    dn_api_req *h = f->hang;
    f->hang = NULL;
    assert_int_equal(dn__api_reply(h, 202, json_pack("{s:i}", "n", 1)), 0);
    job_finish(f, &slow, &tid);
    assert_int_equal(slow.rc, 0);
    assert_int_equal(slow.status, 202);
    job_clear(&slow);
    dn_api_stats st;
    dn__api_stats(f->api, &st);
    assert_int_equal(st.connections, 0);
}

static void test_unix_socket_mode(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    mode_t old = umask(0); /* even a careless umask gets 0600 */
    start_ok(f, &cfg);
    umask(old);
    struct stat st;
    assert_int_equal(lstat(f->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    dn__api_close(f->api);
    f->api = NULL;
    assert_int_equal(lstat(f->sock, &st), -1); /* removed at close */
}

static void test_tcp_token(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {.tcp_host = "127.0.0.1"};
    start_ok(f, &cfg);
    uint16_t port = dn__api_tcp_port(f->api);
    assert_true(port > 0);
    struct stat st;
    assert_int_equal(stat(f->token_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char token[DN_API_TOKEN_HEX_LEN + 1], err[256];
    assert_int_equal(dn__api_token_load(f->token_path, false, token, err, sizeof err), 0);
    assert_int_equal(strlen(token), 64);

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    job j = {.c = {.base_url = url}};
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 401);
    assert_non_null(strstr(err_of(j.reply), "token"));
    job_clear(&j);

    char wrong[DN_API_TOKEN_HEX_LEN + 1];
    memcpy(wrong, token, sizeof wrong);
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
    j.c.token = wrong;
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 401);
    job_clear(&j);
    j.c.token = "abc"; /* wrong length */
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 401);
    job_clear(&j);

    j.c.token = token;
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);
    assert_int_equal(call(f, &j, "POST", "/v0/echo", NULL), 201);
    assert_true(json_is_true(json_object_get(j.reply, "tcp")));
    job_clear(&j);

    /* The unix socket needs no token. */
    job u = {0};
    assert_int_equal(call(f, &u, "GET", "/v0/hello", NULL), 200);
    job_clear(&u);

    /* Restarted, the server keeps the same token. */
    dn__api_close(f->api);
    f->api = NULL;
    cfg.tcp_port = 0;
    start_ok(f, &cfg);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", dn__api_tcp_port(f->api));
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);
}

static void test_token_file(void **state)
{
    fx *f = *state;
    char tok[DN_API_TOKEN_HEX_LEN + 1], tok2[DN_API_TOKEN_HEX_LEN + 1], err[256];
    assert_int_equal(dn__api_token_load(f->token_path, false, tok, err, sizeof err), -ENOENT);
    assert_int_equal(dn__api_token_load(f->token_path, true, tok, err, sizeof err), 0);
    assert_int_equal(dn__api_token_load(f->token_path, true, tok2, err, sizeof err), 0);
    assert_string_equal(tok, tok2);
    for (int i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", tok[i]));
    chmod(f->token_path, 0644);
    assert_int_equal(dn__api_token_load(f->token_path, true, tok2, err, sizeof err), DN_EINVAL);
    assert_non_null(strstr(err, "readable by others"));
    chmod(f->token_path, 0600);
    FILE *fp = fopen(f->token_path, "w");
    fputs("not a token\n", fp);
    fclose(fp);
    assert_int_equal(dn__api_token_load(f->token_path, true, tok2, err, sizeof err), DN_EMALFORMED);
}

static void test_remote_refused(void **state)
{
    fx *f = *state;
    const char *hosts[] = {"0.0.0.0", "10.1.2.3", "::", "192.0.2.7"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        dn_api_config cfg = {.tcp_host = hosts[i]};
        char err[256];
        dn_api *api = NULL;
        assert_int_equal(start(f, &cfg, &api, err), DN_EINVAL);
        assert_null(api);
        assert_non_null(strstr(err, "--api-allow-remote"));
        struct stat st;
        assert_int_equal(lstat(f->sock, &st), -1); /* nothing was created */
        assert_int_equal(lstat(f->token_path, &st), -1);
    }
    dn_api_config cfg = {.tcp_host = "localhost"}; /* names are not addresses */
    char err[256];
    dn_api *api = NULL;
    assert_int_equal(start(f, &cfg, &api, err), DN_EINVAL);
    /* 127.0.0.0/8 is all loopback. */
    dn_api_config ok = {.tcp_host = "127.0.0.2"};
    start_ok(f, &ok);
}

static void test_stale_and_live_socket(void **state)
{
    fx *f = *state;
    /* A socket file left by a dead daemon (bound, then closed). */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->sock);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    /* The client sees "no daemon" for it, and for a missing socket. */
    long status;
    json_t *reply;
    int rc = dn__api_call(f->sock, "GET", "/v0/hello", NULL, &status, &reply);
    assert_int_equal(rc, -ECONNREFUSED);
    assert_true(dn__api_no_daemon(rc));
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.sock", f->dir);
    rc = dn__api_call(missing, "GET", "/v0/hello", NULL, &status, &reply);
    assert_int_equal(rc, -ENOENT);
    assert_true(dn__api_no_daemon(rc));

    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    job j = {0};
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);

    /* A live one is not stolen. */
    char err[256];
    assert_int_equal(start(f, &cfg, &f->api2, err), DN_EEXIST);
    assert_null(f->api2);
    assert_non_null(strstr(err, "already serving"));
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);
    dn__api_close(f->api);
    f->api = NULL;

    /* A path that is not a socket is left alone. */
    char file[160];
    snprintf(file, sizeof file, "%s/file", f->dir);
    FILE *fp = fopen(file, "w");
    fputs("keep me\n", fp);
    fclose(fp);
    dn_api_config c2 = {.unix_path = file};
    dn_api *api = NULL;
    assert_int_equal(dn__api_new(&f->loop, &c2, &api, err, sizeof err), DN_EEXIST);
    assert_non_null(strstr(err, "not a socket"));
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_size, 8);
}

static void test_events_follow(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    f->stream_initial = 3;
    job s = {.stream = true, .path = "/v0/events", .stop_after = 5};
    uv_thread_t tid;
    job_start(f, &s, &tid);
    for (int i = 0; i < 400 && !f->stream; i++)
        spin_ms(f, 5);
    assert_non_null(f->stream);
    /* Pushed later, while the stream is idle (suspended). */
    spin_ms(f, 50);
    for (int i = 3; i < 5; i++) {
        json_t *ev = json_pack("{s:s,s:i}", "type", "test", "n", i);
        assert_int_equal(dn__api_stream_push(f->stream, ev), 0);
        json_decref(ev);
        spin_ms(f, 20);
    }
    job_finish(f, &s, &tid);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.status, 200);
    assert_int_equal(s.lines, 5);
    assert_int_equal(json_integer_value(json_object_get(s.last_line, "n")), 4);
    job_clear(&s);
    /* The client hung up on an idle stream: noticed, and the stream freed. */
    bool closed = false;
    for (int i = 0; i < 400 && !closed; i++) {
        spin_ms(f, 5);
        closed = f->stream_closed == 1;
    }
    assert_int_equal(f->stream_closed, 1);
    assert_int_equal(f->stream_why, DN_API_STREAM_DISCONNECTED);
    dn_api_stats st;
    dn__api_stats(f->api, &st);
    assert_int_equal(st.streams, 0);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.stream_queued, 0);
}

static void test_events_never_read(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    int fd = connect_unix(f->sock);
    assert_true(fd >= 0);
    static const char req[] = "GET /v0/events HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    for (int i = 0; i < 400 && !f->stream; i++)
        spin_ms(f, 5);
    assert_non_null(f->stream);
    char pad[100];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    int pushed = 0, elimit = 0;
    dn_api_stats st;
    for (int i = 0; i < 100000; i++) {
        if (!f->stream)
            break; /* dropped: a node stops pushing at on_close */
        json_t *ev = json_pack("{s:s,s:i,s:s}", "type", "test", "n", i, "pad", pad);
        int rc = dn__api_stream_push(f->stream, ev);
        json_decref(ev);
        pushed++;
        if (rc == DN_ELIMIT)
            elimit++;
        if (i % 256 == 0)
            uv_run(&f->loop, UV_RUN_NOWAIT);
        dn__api_stats(f->api, &st);
        assert_true(st.stream_queued <= DN_API_STREAM_QUEUE_DEFAULT + 256);
    }
    assert_int_equal(f->stream_closed, 1);
    assert_int_equal(f->stream_why, DN_API_STREAM_DROPPED);
    assert_int_equal(elimit, 1);
    assert_true(pushed < 100000);
    dn__api_stats(f->api, &st);
    assert_int_equal(st.streams_dropped, 1);
    assert_true(st.stream_queue_peak <= DN_API_STREAM_QUEUE_DEFAULT + 256);
    /* The loop still answers. */
    job j = {0};
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);
    /* Read it all now: the queued lines, then the last one about the drop. */
    char *all = malloc(4u << 20);
    size_t n = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t end = now_ms() + 5000;
    while (now_ms() < end && n < (4u << 20)) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (poll(&pfd, 1, 1) == 1) {
            ssize_t r = read(fd, all + n, (4u << 20) - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            if (n > 8 && !memcmp(all + n - 5, "0\r\n\r\n", 5))
                break; /* the chunked response's end */
        }
    }
    all[n < (4u << 20) ? n : n - 1] = 0;
    assert_non_null(strstr(all, "200 OK"));
    assert_non_null(strstr(all, "application/x-ndjson"));
    assert_non_null(strstr(all, "\"type\":\"dropped\""));
    free(all);
    close(fd);
    bool gone = false;
    for (int i = 0; i < 400 && !gone; i++) {
        spin_ms(f, 5);
        dn__api_stats(f->api, &st);
        gone = st.connections == 0;
    }
    assert_true(gone);
    assert_int_equal(st.stream_queued, 0);
}

/* Many events to a client that reads: every line arrives, once, in order,
 * across chunk and read boundaries, while the pusher respects the queue. */
static void test_events_many(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    enum { N = 20000 };
    job s = {.stream = true, .path = "/v0/events", .stop_after = N};
    uv_thread_t tid;
    job_start(f, &s, &tid);
    for (int i = 0; i < 400 && !f->stream; i++)
        spin_ms(f, 5);
    assert_non_null(f->stream);
    uint64_t end = now_ms() + 10000;
    for (int i = 0; i < N && now_ms() < end; i++) {
        json_t *ev = json_pack("{s:s,s:i,s:s}", "type", "test", "n", i, "s", "x\ny\"z");
        assert_int_equal(dn__api_stream_push(f->stream, ev), 0);
        json_decref(ev);
        while (dn__api_stream_queued(f->stream) > 64 * 1024 && now_ms() < end)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    job_finish(f, &s, &tid);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.lines, N);
    assert_int_equal(s.out_of_order, 0);
    assert_string_equal(json_string_value(json_object_get(s.last_line, "s")), "x\ny\"z");
    job_clear(&s);
}

/* A client that never reads, even after its stream was dropped: MHD cannot
 * write, so the inactivity timeout closes it and the stream is freed. */
static void test_events_never_read_closed(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {.conn_timeout_s = 1, .stream_queue_max = 8192};
    start_ok(f, &cfg);
    int fd = connect_unix(f->sock);
    assert_true(fd >= 0);
    static const char req[] = "GET /v0/events HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    for (int i = 0; i < 400 && !f->stream; i++)
        spin_ms(f, 5);
    assert_non_null(f->stream);
    char pad[1024];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    json_t *ev = json_pack("{s:s,s:s}", "type", "test", "pad", pad);
    for (int i = 0; i < 100000 && f->stream; i++) {
        dn__api_stream_push(f->stream, ev);
        uv_run(&f->loop, UV_RUN_NOWAIT); /* MHD fills the socket buffers first */
    }
    json_decref(ev);
    assert_int_equal(f->stream_why, DN_API_STREAM_DROPPED);
    dn_api_stats st;
    dn__api_stats(f->api, &st);
    assert_int_equal(st.connections, 1);
    assert_true(st.stream_queue_peak <= 8192 + 256);
    uint64_t t0 = now_ms();
    bool gone = false;
    for (int i = 0; i < 800 && !gone; i++) {
        spin_ms(f, 5);
        dn__api_stats(f->api, &st);
        gone = st.connections == 0;
    }
    assert_true(gone);
    assert_true(now_ms() - t0 >= 500); /* by the timeout, not by delivery */
    assert_int_equal(st.stream_queued, 0);
    close(fd);
}

static void test_slow_client_and_limits(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {.conn_timeout_s = 2, .max_conns = 3};
    start_ok(f, &cfg);
    /* A partial request: headers never finish. */
    int slow = connect_unix(f->sock);
    assert_true(slow >= 0);
    assert_int_equal(write(slow, "GET /v0/hello HTTP/1.1\r\nHo", 26), 26);
    spin_ms(f, 20);
    job j = {0};
    uint64_t t0 = now_ms();
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    assert_true(now_ms() - t0 < 1000); /* not held up until the timeout */
    job_clear(&j);

    /* Two more idle connections fill the limit of 3: a fourth waits in the
     * backlog, unserved, until one of them goes. */
    int c2 = connect_unix(f->sock), c3 = connect_unix(f->sock);
    spin_ms(f, 30);
    int c4 = connect_unix(f->sock);
    assert_true(c2 >= 0 && c3 >= 0 && c4 >= 0);
    static const char req[] = "GET /v0/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(c4, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    spin_ms(f, 200);
    char buf[512];
    struct pollfd pfd = {.fd = c4, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    close(c2);
    close(c3);
    bool answered = false;
    for (int i = 0; i < 200 && !answered; i++) {
        spin_ms(f, 5);
        answered = poll(&pfd, 1, 0) == 1;
    }
    assert_true(answered);
    ssize_t n = read(c4, buf, sizeof buf - 1);
    assert_true(n > 12);
    buf[n] = 0;
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    close(c4);

    /* The connection timeout (2 s) closes the stalled one. */
    bool closed = false;
    uint64_t end = now_ms() + 5000;
    while (!closed && now_ms() < end) {
        spin_ms(f, 20);
        struct pollfd p2 = {.fd = slow, .events = POLLIN};
        if (poll(&p2, 1, 0) == 1)
            closed = read(slow, buf, sizeof buf) == 0;
    }
    assert_true(closed);
    close(slow);
}

/* A client that trickles a byte every 100 ms is never inactive for MHD's
 * timeout; the whole-request deadline cuts it. */
static void test_trickling_client_cut(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {.conn_timeout_s = 1, .request_deadline_s = 2};
    start_ok(f, &cfg);
    int fd = connect_unix(f->sock);
    assert_true(fd >= 0);
    static const char req[] =
        "GET /v0/hello HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    uint64_t t0 = now_ms();
    bool cut = false;
    size_t i = 0;
    char buf[256];
    while (!cut && now_ms() - t0 < 5000) {
        if (i < sizeof req - 3) /* never the final CRLF */
            if (send(fd, req + i++, 1, MSG_NOSIGNAL) != 1)
                cut = true;
        spin_ms(f, 100);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1 && read(fd, buf, sizeof buf) <= 0)
            cut = true;
    }
    uint64_t took = now_ms() - t0;
    assert_true(cut);
    assert_true(took >= 1900); /* not by the inactivity timeout (1 s) */
    assert_true(took < 4000);
    close(fd);
    /* Others are still served. */
    job j = {0};
    assert_int_equal(call(f, &j, "GET", "/v0/hello", NULL), 200);
    job_clear(&j);
}

static void test_close_with_pending(void **state)
{
    fx *f = *state;
    dn_api_config cfg = {0};
    start_ok(f, &cfg);
    /* An event stream and a request waiting for its handler. */
    f->stream_initial = 1;
    job s = {.stream = true, .path = "/v0/events"};
    uv_thread_t ts, th;
    job_start(f, &s, &ts);
    job h = {.method = "GET", .path = "/v0/hang"};
    job_start(f, &h, &th);
    for (int i = 0; i < 400 && (!f->stream || !f->hang); i++)
        spin_ms(f, 5);
    assert_non_null(f->stream);
    assert_non_null(f->hang);
    spin_ms(f, 30);
    dn__api_close(f->api);
    f->api = NULL;
    assert_int_equal(f->stream_closed, 1);
    assert_int_equal(f->stream_why, DN_API_STREAM_SHUTDOWN);
    job_finish(f, &s, &ts);
    job_finish(f, &h, &th);
    assert_int_equal(s.lines, 1);
    assert_int_not_equal(h.rc == 0 && h.status == 200, 1);
    job_clear(&s);
    job_clear(&h);
    /* the late reply to f->hang is made (and dropped) in the teardown */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_are_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_socket_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_and_live_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_never_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_never_read_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trickling_client_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
    };
    if (getenv("DN_TEST_FILTER"))
        cmocka_set_test_filter(getenv("DN_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
