/* A handler driven by its input, shared by the C tests:
 *   "echo:X"   replies X          "pid"      replies the worker's pid
 *   "sleep:MS" sleeps MS ms       "exit:N"   calls exit(N)
 *   "work:MS"  creates started_marker(getpid()), then sleeps MS ms
 *   "fail:MSG" fails with MSG     "fds"      replies its open fd numbers
 *   "signals"  replies SigBlk/SigIgn from /proc/self/status
 *   "env:NAME" replies $NAME, or "(unset)"   "cwd" replies the working directory
 *   "soft:MS"  polls billiard_worker_soft_limit_reached() for MS ms at most,
 *              replies "reached" or "not reached"
 *   "stubborn:MS" ignores SIGTERM, then sleeps MS ms
 *   "grow"     mallocs (and touches) 8 MiB blocks until malloc fails, then aborts
 *   "touch:PATH" creates PATH   "hold:MIB" keeps MIB MiB of touched memory
 *   "hooked"   replies the pid the after-fork hook ran in (0: it did not)
 *   "usr1:MS"  catches SIGUSR1, creates started_marker(getpid()), sleeps MS ms
 *              at most, replies "usr1" once SIGUSR1 came, else "none"
 * and the worker hooks test_after_fork / test_at_exit (ctx non-NULL: the
 * after-fork hook fails), whose at-exit marker is at_exit_marker(pid). */
#ifndef BILLIARD_TEST_SCRIPTED_H
#define BILLIARD_TEST_SCRIPTED_H

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "billiard.h"

/* Built with AddressSanitizer (BILLIARD_C_CHECK=asan)? */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif

#ifdef TEST_UNDER_ASAN
/* LeakSanitizer checks the process the program started as, not the FORK
 * workers it forks: they hold a copy of the host's heap and the tests make
 * some of them exit() on purpose. (LSan calls this hook at exit.) */
static pid_t test_main_pid;
__attribute__((constructor)) static void test_note_main_pid(void) { test_main_pid = getpid(); }
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return getpid() != test_main_pid; }
#endif

static inline void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Path of a file a worker creates to say something happened to it:
 * `what` is "started" (it started a "work" or "usr1" task) or "atexit"
 * (its at-exit hook ran). A static buffer. */
static inline const char *marker(const char *what, int pid) {
    static char path[80];
    snprintf(path, sizeof path, "/tmp/billiard-test-%s-%d", what, pid);
    return path;
}

/* Waits (20 s at most) until marker(what, pid) exists; removes it. */
static inline int wait_marker(const char *what, int pid) {
    int i;
    for (i = 0; i < 4000; i++) {
        if (access(marker(what, pid), F_OK) == 0) {
            unlink(marker(what, pid));
            return 1;
        }
        sleep_ms(5);
    }
    return 0;
}

static inline const char *started_marker(int pid) { return marker("started", pid); }
static inline int wait_started(int pid) { return wait_marker("started", pid); }
static inline const char *at_exit_marker(int pid) { return marker("atexit", pid); }
static inline int wait_at_exit(int pid) { return wait_marker("atexit", pid); }

static int hook_ran_in;

static inline int test_after_fork(void *ctx) {
    if (ctx != NULL) {
        billiard_worker_set_error("the after-fork hook refused to start this worker");
        return 1;
    }
    hook_ran_in = (int)getpid();
    return 0;
}

static inline void test_at_exit(void *ctx) {
    FILE *marker = fopen(at_exit_marker((int)getpid()), "w");
    (void)ctx;
    if (marker) fclose(marker);
}

static volatile sig_atomic_t usr1_seen;
static inline void on_usr1(int sig) {
    (void)sig;
    usr1_seen = 1;
}

static inline int scripted(void *ctx, const uint8_t *in, size_t len, billiard_reply *reply) {
    char cmd[256], out[1024];
    const char *arg;
    (void)ctx;
    if (len >= sizeof cmd) return billiard_reply_error(reply, "input too long"), 1;
    memcpy(cmd, in, len);
    cmd[len] = '\0';
    arg = strchr(cmd, ':');
    arg = arg ? arg + 1 : "";
    if (strncmp(cmd, "echo:", 5) == 0) {
        return billiard_reply_write(reply, arg, strlen(arg));
    } else if (strcmp(cmd, "pid") == 0) {
        snprintf(out, sizeof out, "%d", (int)getpid());
        return billiard_reply_write(reply, out, strlen(out));
    } else if (strncmp(cmd, "sleep:", 6) == 0) {
        sleep_ms(atol(arg));
        return 0;
    } else if (strncmp(cmd, "work:", 5) == 0) {
        FILE *marker = fopen(started_marker((int)getpid()), "w");
        if (marker) fclose(marker);
        sleep_ms(atol(arg));
        return 0;
    } else if (strncmp(cmd, "exit:", 5) == 0) {
        exit(atoi(arg));
    } else if (strncmp(cmd, "fail:", 5) == 0) {
        billiard_reply_error(reply, arg);
        return 1;
    } else if (strcmp(cmd, "fds") == 0) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int self = dirfd(d);
        size_t used = 0;
        out[0] = '\0';
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == self) continue;
            used += (size_t)snprintf(out + used, sizeof out - used, "%s,", e->d_name);
        }
        closedir(d);
        return billiard_reply_write(reply, out, used);
    } else if (strcmp(cmd, "signals") == 0) {
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        size_t used = 0;
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "SigBlk:", 7) == 0 || strncmp(line, "SigIgn:", 7) == 0)
                used += (size_t)snprintf(out + used, sizeof out - used, "%s", line);
        if (f) fclose(f);
        return billiard_reply_write(reply, out, used);
    } else if (strncmp(cmd, "env:", 4) == 0) {
        const char *value = getenv(arg);
        if (!value) value = "(unset)";
        return billiard_reply_write(reply, value, strlen(value));
    } else if (strncmp(cmd, "soft:", 5) == 0) {
        long waited = 0, limit = atol(arg);
        while (!billiard_worker_soft_limit_reached() && waited < limit) {
            sleep_ms(1);
            waited++;
        }
        snprintf(out, sizeof out, "%s", billiard_worker_soft_limit_reached() ? "reached" : "not reached");
        return billiard_reply_write(reply, out, strlen(out));
    } else if (strncmp(cmd, "stubborn:", 9) == 0) {
        signal(SIGTERM, SIG_IGN);
        sleep_ms(atol(arg));
        return 0;
    } else if (strcmp(cmd, "grow") == 0) {
        for (;;) {
            char *block = malloc(8u << 20);
            if (!block) abort(); /* errno is ENOMEM: the pool says MEMORY_LIMIT */
            memset(block, 1, 8u << 20);
        }
    } else if (strncmp(cmd, "hold:", 5) == 0) {
        /* Kept for the worker's life, where the compiler cannot drop it. */
        static char *volatile held;
        size_t bytes = (size_t)atol(arg) << 20;
        held = malloc(bytes);
        if (!held) return billiard_reply_error(reply, "malloc failed"), 1;
        memset(held, 1, bytes);
        return 0;
    } else if (strncmp(cmd, "touch:", 6) == 0) {
        FILE *f = fopen(arg, "w");
        if (f) fclose(f);
        return 0;
    } else if (strcmp(cmd, "hooked") == 0) {
        snprintf(out, sizeof out, "%d", hook_ran_in);
        return billiard_reply_write(reply, out, strlen(out));
    } else if (strncmp(cmd, "usr1:", 5) == 0) {
        struct sigaction sa;
        long waited = 0, limit = atol(arg);
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        usr1_seen = 0;
        sigaction(SIGUSR1, &sa, NULL);
        {
            FILE *marker = fopen(started_marker((int)getpid()), "w");
            if (marker) fclose(marker);
        }
        while (!usr1_seen && waited < limit) {
            sleep_ms(1);
            waited++;
        }
        snprintf(out, sizeof out, "%s", usr1_seen ? "usr1" : "none");
        return billiard_reply_write(reply, out, strlen(out));
    } else if (strcmp(cmd, "cwd") == 0) {
        if (!getcwd(out, sizeof out)) return billiard_reply_error(reply, "getcwd failed"), 1;
        return billiard_reply_write(reply, out, strlen(out));
    }
    billiard_reply_error(reply, "unknown command");
    return 1;
}

#endif
