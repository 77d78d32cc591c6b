/*
 * Baseline: raw round-trip latency of a 4-byte int between two processes.
 *
 *     cc -O2 -o pipe_pingpong scripts/bench/pipe_pingpong.c
 *     ./pipe_pingpong N [pipe|stream|seqpacket]
 *
 * fork()s one child and plays ping-pong with it: the parent write()s a 4-byte
 * int, the child read()s it and write()s it back, the parent read()s the echo
 * and checks it. N (default 10000) timed round trips after one warm-up; a
 * negative int stops the child. The transport (default "pipe") is two pipes
 * (one per direction), or one AF_UNIX socketpair, SOCK_STREAM ("stream") or
 * SOCK_SEQPACKET ("seqpacket", what rhai-mp's Pipe() uses). Prints one
 * machine-readable line, like the Rhai and Python benchmarks:
 *
 *     pipe_pingpong <microseconds per round trip>
 *
 * This is the floor that rhai-mp's pipe_roundtrip is compared against
 * (scripts/bench/run.sh builds it into a temp dir when `cc` exists).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Reads or writes exactly 4 bytes; exits on error or end of file. */
static void xfer(int fd, int32_t *v, int writing) {
    char *p = (char *)v;
    size_t done = 0;
    while (done < sizeof *v) {
        ssize_t r = writing ? write(fd, p + done, sizeof *v - done)
                            : read(fd, p + done, sizeof *v - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fprintf(stderr, "pipe_pingpong: %s failed: %s\n", writing ? "write" : "read",
                    r < 0 ? strerror(errno) : "end of file");
            exit(1);
        }
        done += (size_t)r;
    }
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    const char *mode = argc > 2 ? argv[2] : "pipe";
    int p_rd, p_wr, c_rd, c_wr; /* parent's and child's read/write ends */

    if (n <= 0) {
        fprintf(stderr, "usage: pipe_pingpong N [pipe|stream|seqpacket]\n");
        return 2;
    }
    if (strcmp(mode, "pipe") == 0) {
        int to_child[2], to_parent[2];
        if (pipe(to_child) || pipe(to_parent)) { perror("pipe"); return 1; }
        c_rd = to_child[0]; p_wr = to_child[1];
        p_rd = to_parent[0]; c_wr = to_parent[1];
    } else if (strcmp(mode, "stream") == 0 || strcmp(mode, "seqpacket") == 0) {
        int sv[2];
        int type = strcmp(mode, "stream") == 0 ? SOCK_STREAM : SOCK_SEQPACKET;
        if (socketpair(AF_UNIX, type, 0, sv)) { perror("socketpair"); return 1; }
        p_rd = p_wr = sv[0];
        c_rd = c_wr = sv[1];
    } else {
        fprintf(stderr, "pipe_pingpong: unknown transport '%s'\n", mode);
        return 2;
    }

    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        int32_t x;
        for (;;) {
            xfer(c_rd, &x, 0);
            if (x < 0) _exit(0);
            xfer(c_wr, &x, 1);
        }
    }

    int32_t x = 0;
    xfer(p_wr, &x, 1); /* warm-up */
    xfer(p_rd, &x, 0);

    double t0 = now();
    for (int32_t i = 0; i < n; i++) {
        x = i;
        xfer(p_wr, &x, 1);
        xfer(p_rd, &x, 0);
        if (x != i) { fprintf(stderr, "pipe_pingpong: wrong echo\n"); return 1; }
    }
    double dt = now() - t0;

    x = -1;
    xfer(p_wr, &x, 1);
    int status;
    waitpid(pid, &status, 0);
    printf("pipe_pingpong %.2f\n", dt * 1e6 / (double)n);
    return 0;
}
