/* api client — blocking HTTP/JSON calls to the daemon, for the CLI.
 *
 * libcurl does the HTTP (CURLOPT_UNIX_SOCKET_PATH for the unix socket), so
 * there is no HTTP parser of ours on either side; jansson does the JSON. */
#include "api/api.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dmsnet/error.h"

#define DN_API_REPLY_MAX (16u << 20) /* a reply larger than this is refused */
#define DN_API_LINE_MAX (2u << 20)   /* one NDJSON line: a 1 MiB message, base64, fits */

bool dn__api_no_daemon(int rc)
{
    return rc == -ENOENT || rc == -ECONNREFUSED;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct sink {
    char *buf;
    size_t len, cap, max;
    bool overflow;
    /* streaming */
    bool streaming;
    dn_api_line_cb line_cb;
    void *ud;
    bool stopped;
    int line_err;
    CURL *curl;
} sink;

static int sink_add(sink *k, const char *p, size_t n)
{
    if (k->len + n > k->max) {
        k->overflow = true;
        return -1;
    }
    if (k->len + n + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 1024;
        while (cap < k->len + n + 1)
            cap *= 2;
        char *nb = realloc(k->buf, cap);
        if (!nb)
            return -1;
        k->buf = nb;
        k->cap = cap;
    }
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    k->buf[k->len] = 0;
    return 0;
}

/* Hands every complete line in the buffer to line_cb. */
static int sink_lines(sink *k)
{
    size_t start = 0;
    for (size_t i = 0; i < k->len; i++) {
        if (k->buf[i] != '\n')
            continue;
        size_t n = i - start;
        if (n) {
            json_error_t jerr;
            json_t *v = json_loadb(k->buf + start, n, JSON_DECODE_ANY, &jerr);
            if (!v) {
                k->line_err = DN_EMALFORMED;
                return -1;
            }
            int stop = k->line_cb(v, k->ud);
            json_decref(v);
            if (stop) {
                k->stopped = true;
                return -1;
            }
        }
        start = i + 1;
    }
    memmove(k->buf, k->buf + start, k->len - start);
    k->len -= start;
    return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *k = ud;
    size_t n = size * nmemb;
    if (k->streaming) {
        long status = 0;
        curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            if (sink_add(k, p, n) != 0 || sink_lines(k) != 0)
                return 0; /* aborts the transfer */
            return n;
        }
    }
    return sink_add(k, p, n) == 0 ? n : 0;
}

/* curl's error for a failed connect, as the errno it came from: -ENOENT and
 * -ECONNREFUSED mean no daemon; -EACCES (a socket of another user) does not. */
static int connect_error(const dn_api_client *c, CURL *curl)
{
    long os = 0;
    curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os);
    if (os == EACCES || os == EPERM)
        return -EACCES;
    if (os == ENOENT || os == ECONNREFUSED)
        return -(int)os;
    struct stat st;
    if (c->unix_path && stat(c->unix_path, &st) != 0)
        return -ENOENT;
    return -ECONNREFUSED;
}

static int do_call(const dn_api_client *c, const char *method, const char *path, const json_t *body,
                   sink *k, long *status)
{
    if (!c || (!c->unix_path && !c->base_url) || !path || path[0] != '/')
        return DN_EINVAL;
    pthread_once(&curl_once, curl_init_once);
    CURL *curl = curl_easy_init();
    if (!curl)
        return DN_ENOMEM;
    k->curl = curl;
    char *text = NULL;
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    int rc = 0;
    const char *base = c->unix_path ? "http://localhost" : c->base_url;
    size_t ul = strlen(base) + strlen(path) + 1;
    url = malloc(ul);
    if (!url) {
        rc = DN_ENOMEM;
        goto out;
    }
    snprintf(url, ul, "%s%s", base, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (c->unix_path)
        curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    if (!k->streaming)
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, c->timeout_ms > 0 ? c->timeout_ms : 30000L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, k);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (c->token) {
        char auth[128];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (body) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) {
            rc = DN_ENOMEM;
            goto out;
        }
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    } else if (!strcmp(method, "GET")) {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
    }
    /* libcurl would send "Expect: 100-continue" for larger bodies. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (!hdrs) {
        rc = DN_ENOMEM;
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    if (cc == CURLE_OK) {
        rc = 0;
    } else if (cc == CURLE_COULDNT_CONNECT) {
        rc = connect_error(c, curl);
    } else if (cc == CURLE_WRITE_ERROR && k->stopped) {
        rc = 0;
    } else if (cc == CURLE_WRITE_ERROR && k->line_err) {
        rc = k->line_err;
    } else if (cc == CURLE_WRITE_ERROR && k->overflow) {
        rc = DN_ETOOBIG;
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = DN_ETIMEOUT;
    } else if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR) {
        rc = DN_ENOMEM;
    } else {
        rc = DN_EIO;
    }
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    free(text);
    free(url);
    return rc;
}

static int parse_reply(sink *k, json_t **reply)
{
    *reply = NULL;
    if (!k->len)
        return 0;
    json_error_t jerr;
    *reply = json_loadb(k->buf, k->len, JSON_DECODE_ANY, &jerr);
    return *reply ? 0 : DN_EMALFORMED;
}

int dn__api_call_ex(const dn_api_client *c, const char *method, const char *path,
                    const json_t *body, long *status, json_t **reply)
{
    sink k = {.max = DN_API_REPLY_MAX};
    long st = 0;
    *reply = NULL;
    int rc = do_call(c, method, path, body, &k, &st);
    *status = st;
    if (rc == 0)
        rc = parse_reply(&k, reply);
    free(k.buf);
    return rc;
}

int dn__api_call(const char *unix_path, const char *method, const char *path, const json_t *body,
                 long *status, json_t **reply)
{
    dn_api_client c = {.unix_path = unix_path};
    return dn__api_call_ex(&c, method, path, body, status, reply);
}

int dn__api_stream_call(const dn_api_client *c, const char *path, dn_api_line_cb line_cb, void *ud,
                        long *status, json_t **reply)
{
    return dn__api_stream_call_ex(c, "GET", path, NULL, line_cb, ud, status, reply);
}

int dn__api_stream_call_ex(const dn_api_client *c, const char *method, const char *path,
                           const json_t *body, dn_api_line_cb line_cb, void *ud, long *status,
                           json_t **reply)
{
    sink k = {.max = DN_API_LINE_MAX, .streaming = true, .line_cb = line_cb, .ud = ud};
    long st = 0;
    *reply = NULL;
    int rc = do_call(c, method, path, body, &k, &st);
    *status = st;
    if (rc == 0 && st != 200)
        rc = parse_reply(&k, reply);
    free(k.buf);
    return rc;
}
