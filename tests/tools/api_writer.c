/* Drives the daemon's PUT /v0/config for tests/store/daemon_killnine.test.sh.
 *
 *   api_writer write SOCK ROUND COUNT
 *       COUNT sequential PUT /v0/config {"<key>": ROUND*20000 + i} (ROUND 1..49,
 *       COUNT <= 20000: every value is unique and within every key's bounds,
 *       at most 1,000,000), the key
 *       going round the three below. Before each request it prints
 *       "send <key> <value>", after a 200 reply "ack <key> <value>" (each
 *       line flushed at once, so a line in the file is a fact: an "ack"
 *       line was written only after the daemon had answered). When the
 *       daemon goes away mid-run (the test kills it) it prints "gone" and
 *       exits 0; any other answer than 200 is an error (exit 1).
 *   api_writer check SOCK LOG
 *       GET /v0/config and compare each key with LOG (every round's
 *       output, in order): the value must be the last acked one, or the
 *       one request sent after it whose answer never came (the daemon may
 *       have committed it and died before answering). A key never acked
 *       and never sent must still have its default. Prints "ok <n acked>"
 *       or says which key differs (exit 1).
 *
 * Requests go through dn__api_call, a new connection each, as the CLI's
 * `dmsnet config set` does. The keys are limits the daemon applies at its
 * next start (restart_required), so a PUT is a settings write in the store
 * and nothing else, which is what the test is about. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "dmsnet/error.h"

static const char *const keys[] = {"limits.max_conns", "limits.max_streams_per_peer",
                                   "limits.max_handshakes_per_ip"};
static const long long defaults[] = {4096, 4096, 64};
#define NKEYS (sizeof keys / sizeof keys[0])
#define MAX_COUNT 20000
#define MAX_ROUND 49

static int key_index(const char *k)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i], k))
            return (int)i;
    return -1;
}

static int do_write(const char *sock, long round, long count)
{
    if (round < 1 || round > MAX_ROUND || count < 1 || count > MAX_COUNT) {
        fprintf(stderr, "api_writer: ROUND 1..%d, COUNT 1..%d\n", MAX_ROUND, MAX_COUNT);
        return 2;
    }
    for (long i = 0; i < count; i++) {
        const char *k = keys[i % NKEYS];
        long long v = round * MAX_COUNT + i;
        json_t *body = json_pack("{s:I}", k, (json_int_t)v);
        if (!body) {
            fprintf(stderr, "api_writer: out of memory\n");
            return 1;
        }
        printf("send %s %lld\n", k, v);
        fflush(stdout);
        long status = 0;
        json_t *reply = NULL;
        int rc = dn__api_call(sock, "PUT", "/v0/config", body, &status, &reply);
        json_decref(body);
        if (rc) {
            /* The daemon was killed: before we connected (no daemon), or
             * with our request in flight (the connection ends without an
             * answer). Both end the run; anything else is a bug. */
            if (dn__api_no_daemon(rc) || rc == DN_EIO) {
                json_decref(reply);
                printf("gone %s\n", dn_strerror(rc));
                fflush(stdout);
                return 0;
            }
            fprintf(stderr, "api_writer: PUT %s=%lld: %s\n", k, v, dn_strerror(rc));
            return 1;
        }
        if (status != 200) {
            char *text = reply ? json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            fprintf(stderr, "api_writer: PUT %s=%lld answered %ld: %s\n", k, v, status,
                    text ? text : "(no body)");
            free(text);
            json_decref(reply);
            return 1;
        }
        json_decref(reply);
        printf("ack %s %lld\n", k, v);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}

/* The value at a dotted path ("limits.max_conns") of the nested JSON the
 * daemon answers, or NULL. */
static json_t *at_path(json_t *root, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *save = NULL, *part = strtok_r(buf, ".", &save); part && v;
         part = strtok_r(NULL, ".", &save))
        v = json_object_get(v, part);
    return v;
}

static int do_check(const char *sock, const char *log_path)
{
    FILE *f = fopen(log_path, "r");
    if (!f) {
        perror(log_path);
        return 1;
    }
    long long acked[NKEYS];
    bool has_ack[NKEYS] = {false};
    for (size_t i = 0; i < NKEYS; i++)
        acked[i] = defaults[i];
    /* The request sent last and never answered, if any: only the very last
     * "send" of the file can be that (one request in flight at a time, and
     * the daemon is checked after every kill). */
    int pend_k = -1;
    long long pend_v = 0;
    long nacks = 0;
    char line[256], k[128];
    long long v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "send %127s %lld", k, &v) == 2) {
            pend_k = key_index(k);
            pend_v = v;
        } else if (sscanf(line, "ack %127s %lld", k, &v) == 2) {
            int i = key_index(k);
            if (i < 0 || pend_k != i || pend_v != v) {
                fprintf(stderr, "api_writer: %s: ack %s %lld without its send\n", log_path, k, v);
                fclose(f);
                return 1;
            }
            acked[i] = v;
            has_ack[i] = true;
            pend_k = -1;
            nacks++;
        }
    }
    fclose(f);

    long status = 0;
    json_t *cfg = NULL;
    int rc = dn__api_call(sock, "GET", "/v0/config", NULL, &status, &cfg);
    if (rc || status != 200) {
        fprintf(stderr, "api_writer: GET /v0/config: %s (status %ld)\n", rc ? dn_strerror(rc) : "",
                status);
        json_decref(cfg);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        json_t *got = at_path(cfg, keys[i]);
        if (!json_is_integer(got)) {
            fprintf(stderr, "api_writer: GET /v0/config has no integer %s\n", keys[i]);
            bad = 1;
            continue;
        }
        long long g = (long long)json_integer_value(got);
        if (g == acked[i])
            continue;
        if (pend_k == (int)i && g == pend_v)
            continue; /* committed, then killed before the answer: allowed */
        fprintf(stderr, "api_writer: %s is %lld after the restart; last acknowledged %s%lld%s\n",
                keys[i], g, has_ack[i] ? "" : "(none: default) ", acked[i],
                pend_k == (int)i ? ", or the unanswered one" : "");
        bad = 1;
    }
    json_decref(cfg);
    if (bad)
        return 1;
    printf("ok %ld\n", nacks);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "write"))
        return do_write(argv[2], strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
    if (argc == 4 && !strcmp(argv[1], "check"))
        return do_check(argv[2], argv[3]);
    fprintf(stderr, "usage: api_writer write SOCK ROUND COUNT | check SOCK LOG\n");
    return 2;
}
