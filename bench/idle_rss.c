/* Idle memory of a billiard worker against the floor: an idle forked child
 * of the same C host. Prints "floor_rss floor_pss worker_rss worker_pss" in
 * kB, read from /proc/PID/smaps_rollup. Run by the benchmark (make bench). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "billiard.h"

static int echo(void *ctx, const uint8_t *in, size_t len, billiard_reply *reply) {
    (void)ctx;
    return billiard_reply_write(reply, in, len);
}

static int rss_pss(pid_t pid, long *rss, long *pss) {
    char path[64], line[256];
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    if (!(f = fopen(path, "r"))) return -1;
    *rss = *pss = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Rss:", 4)) *rss = atol(line + 4);
        if (!strncmp(line, "Pss:", 4)) *pss = atol(line + 4);
    }
    fclose(f);
    return (*rss < 0 || *pss < 0) ? -1 : 0;
}

int main(void) {
    billiard_config *cfg;
    billiard_pool *pool;
    billiard_result *r;
    uint64_t id;
    long frss, fpss, wrss, wpss;
    pid_t worker;
    struct timespec settle = {0, 200 * 1000 * 1000};
    pid_t child;
    if (billiard_config_new(&cfg) || billiard_config_set_handler(cfg, echo, NULL) ||
        billiard_config_set_workers(cfg, 1) || billiard_pool_new(cfg, &pool)) {
        fprintf(stderr, "idle_rss: %s\n", billiard_last_error());
        return 1;
    }
    billiard_config_free(cfg);
    /* One task, so the worker has run its loop once, as a used worker has. */
    if (billiard_pool_submit(pool, "x", 1, NULL, &id) || billiard_task_wait(pool, id, -1, &r)) {
        fprintf(stderr, "idle_rss: %s\n", billiard_last_error());
        return 1;
    }
    worker = billiard_result_pid(r);
    billiard_result_free(r);
    /* The floor: a child forked by the same host in the same state. */
    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    nanosleep(&settle, NULL);
    if (rss_pss(child, &frss, &fpss) || rss_pss(worker, &wrss, &wpss)) {
        fprintf(stderr, "idle_rss: could not read the worker's memory\n");
        return 1;
    }
    printf("%ld %ld %ld %ld\n", frss, fpss, wrss, wpss);
    billiard_pool_free(pool);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}
