/* api_stuck_client SOCKET PATH: an API client that opens a stream and does
 * not read it (tests/node/cli.test.sh).
 *
 * It connects to the unix socket, sends "GET PATH", prints "sent" and then
 * reads nothing until its stdin reaches EOF, so the daemon's socket buffer
 * and then its per-stream queue fill up. After that it reads whatever the
 * daemon sends for up to 5 s (the queued lines, and a "dropped" line if the
 * daemon gave up on the stream) and copies it to stdout. The receive buffer
 * is made as small as the kernel allows, so little hides in it. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: api_stuck_client SOCKET PATH\n");
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(argv[1]) >= sizeof sa.sun_path) {
        fprintf(stderr, "api_stuck_client: bad socket\n");
        return 1;
    }
    int small = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    strcpy(sa.sun_path, argv[1]);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "api_stuck_client: connect %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", argv[2]);
    if (n <= 0 || n >= (int)sizeof req || write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "api_stuck_client: cannot send the request\n");
        return 1;
    }
    printf("sent\n");
    fflush(stdout);
    char buf[65536];
    while (read(0, buf, sizeof buf) > 0) /* stuck until stdin closes */
        ;
    long long end = now_ms() + 5000;
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            break;
        fwrite(buf, 1, (size_t)r, stdout);
        /* the chunked response's last chunk: the daemon ended the stream */
        if (r >= 5 && !memcmp(buf + r - 5, "0\r\n\r\n", 5))
            break;
    }
    close(fd);
    return 0;
}
