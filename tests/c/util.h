/* Helpers shared by the C test programs: checks that exit with a message,
 * and /proc inspection of this process's children and fds. */
#ifndef BILLIARD_TEST_UTIL_H
#define BILLIARD_TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billiard.h"

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            const char *detail_ = billiard_last_error();                               \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__,    \
                    __LINE__, #cond, detail_ ? detail_ : "none");                      \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#define CHECK_RC(call, want)                                                           \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_ != (want)) {                                                           \
            const char *detail_ = billiard_last_error();                               \
            fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d (last error: %s)\n",  \
                    __FILE__, __LINE__, #call, rc_, billiard_errname(rc_), (want),      \
                    detail_ ? detail_ : "none");                                       \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#define CHECK_OK(call) CHECK_RC(call, BILLIARD_OK)

/* Number of processes descending from this process (children, their
 * children, ...), zombies included. */
static inline int count_children(void) {
    enum { MAX = 65536 };
    static int pids[MAX], ppids[MAX];
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0, total = 0, i, p, depth;
    char path[300], buf[512];
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL && total < MAX) {
        FILE *f;
        char *paren;
        int ppid = 0;
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f) && (paren = strrchr(buf, ')')) != NULL &&
            sscanf(paren + 2, "%*c %d", &ppid) == 1) {
            pids[total] = atoi(e->d_name);
            ppids[total++] = ppid;
        }
        fclose(f);
    }
    closedir(d);
    for (i = 0; i < total; i++) {
        /* Walk up from each process (64 levels at most) looking for us. */
        for (p = ppids[i], depth = 0; p > 1 && depth < 64; depth++) {
            int j;
            if (p == (int)getpid()) {
                n++;
                break;
            }
            for (j = 0; j < total && pids[j] != p; j++) {
            }
            if (j == total) break;
            p = ppids[j];
        }
    }
    return n;
}

/* Number of open fds of this process. */
static inline int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

/* The start method the tests run with: BILLIARD_TEST_START is "fork"
 * (default), "spawn" or "forkserver"; the last two run the worker program
 * named in BILLIARD_TEST_WORKER (tests/c/scripted_worker.c). */
static inline int test_start_method(void) {
    const char *m = getenv("BILLIARD_TEST_START");
    if (m && strcmp(m, "spawn") == 0) return BILLIARD_START_SPAWN;
    if (m && strcmp(m, "forkserver") == 0) return BILLIARD_START_FORKSERVER;
    return BILLIARD_START_FORK;
}

/* Processes under this host for a pool of `workers` workers: the workers,
 * plus the fork server (whose children they are) under FORKSERVER. */
static inline int pool_children(int workers) {
    return test_start_method() == BILLIARD_START_FORKSERVER ? workers + 1 : workers;
}

/* A new config with `workers` workers running `handler` (FORK), or the
 * worker program (SPAWN, FORKSERVER: the same scripted handler), or exit. */
static inline billiard_config *make_config(uint32_t workers, billiard_handler handler, void *ctx) {
    billiard_config *cfg = NULL;
    int method = test_start_method();
    CHECK_OK(billiard_config_new(&cfg));
    CHECK_OK(billiard_config_set_workers(cfg, workers));
    CHECK_OK(billiard_config_set_start_method(cfg, method));
    if (method == BILLIARD_START_FORK) {
        CHECK_OK(billiard_config_set_handler(cfg, handler, ctx));
    } else {
        const char *argv[1];
        argv[0] = getenv("BILLIARD_TEST_WORKER");
        CHECK(argv[0] != NULL);
        CHECK_OK(billiard_config_set_worker_argv(cfg, argv, 1));
    }
    return cfg;
}

/* Submits a NUL-terminated string as a task and returns its id. */
static inline uint64_t submit_str(billiard_pool *pool, const char *text) {
    uint64_t id = 0;
    CHECK_OK(billiard_pool_submit(pool, text, strlen(text), NULL, &id));
    return id;
}

/* Waits (20 s at most) for task `id`. */
static inline billiard_result *wait_task(billiard_pool *pool, uint64_t id) {
    billiard_result *r = NULL;
    CHECK_OK(billiard_task_wait(pool, id, 20000, &r));
    CHECK(billiard_result_task_id(r) == id);
    return r;
}

/* Whether the result's data equals the string `want`. */
static inline int data_is(const billiard_result *r, const char *want) {
    size_t len = 0;
    const uint8_t *p = billiard_result_data(r, &len);
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

/* Whether the result's data contains the string `part`. */
static inline int data_has(const billiard_result *r, const char *part) {
    size_t len = 0, i, n = strlen(part);
    const uint8_t *p = billiard_result_data(r, &len);
    for (i = 0; i + n <= len; i++)
        if (memcmp(p + i, part, n) == 0) return 1;
    return 0;
}

/* Starts a pool from `cfg` (then freed), or exits. */
static inline billiard_pool *start_pool(billiard_config *cfg) {
    billiard_pool *pool = NULL;
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);
    return pool;
}

/* The OK reply to `command` as a string (a static buffer), or exit. */
static inline const char *ask(billiard_pool *pool, const char *command) {
    static char out[1024];
    size_t len = 0;
    const uint8_t *p;
    billiard_result *r = wait_task(pool, submit_str(pool, command));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    p = billiard_result_data(r, &len);
    CHECK(len < sizeof out);
    memcpy(out, p, len);
    out[len] = '\0';
    billiard_result_free(r);
    return out;
}

#endif
