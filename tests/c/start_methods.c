/* What SPAWN and FORKSERVER promise beyond the core tests (which run under
 * every start method):
 *  - a program that cannot be executed fails billiard_pool_new with
 *    BILLIARD_ESPAWN and the errno text; so does one that exits before its
 *    hello, with its exit code, and no process is left;
 *  - the worker environment: inherited, cleared, added to, BILLIARD_*
 *    variables removed, and the working directory;
 *  - FORKSERVER: start-up code runs once, in the server, and every worker
 *    sees its state; every worker is a distinct process;
 *  - killing the fork server mid-run loses no task: each gets exactly one
 *    result, and a new server serves the next ones;
 *  - a busy multithreaded host (8 threads taking mutexes and allocating in
 *    a loop, so locks are held at every moment) starts and stops SPAWN and
 *    FORKSERVER pools without deadlock.
 * argv[1] is the scripted worker program (tests/c/scripted_worker.c). */
#include <pthread.h>
#include <signal.h>

#include "scripted.h"
#include "util.h"

static const char *worker_program;

static billiard_config *program_config(int method, uint32_t workers, const char *program) {
    billiard_config *cfg = NULL;
    const char *argv[1];
    argv[0] = program;
    CHECK_OK(billiard_config_new(&cfg));
    CHECK_OK(billiard_config_set_workers(cfg, workers));
    CHECK_OK(billiard_config_set_start_method(cfg, method));
    CHECK_OK(billiard_config_set_worker_argv(cfg, argv, 1));
    return cfg;
}

static void cannot_start(int method) {
    billiard_pool *pool = NULL;
    billiard_config *cfg = program_config(method, 2, "/nonexistent/billiard-worker-program");
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_ESPAWN);
    CHECK(pool == NULL);
    if (getenv("BILLIARD_TEST_UNDER_VALGRIND") != NULL) {
        /* valgrind runs posix_spawn's child as a plain fork, so a failed
         * exec comes back as exit code 127, not as an error. */
        CHECK(strstr(billiard_last_error(), "exited with code 127") != NULL);
    } else {
        CHECK(strstr(billiard_last_error(), "/nonexistent/billiard-worker-program") != NULL);
        CHECK(strstr(billiard_last_error(), "No such file or directory") != NULL);
    }
    billiard_config_free(cfg);

    cfg = program_config(method, 2, "no-such-billiard-worker-in-path");
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_ESPAWN);
    CHECK(strstr(billiard_last_error(), "not found in PATH") != NULL);
    billiard_config_free(cfg);

    /* A program that runs but exits before its hello: a failed start. */
    cfg = program_config(method, 2, "false");
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_ESPAWN);
    CHECK(strstr(billiard_last_error(), "exited with code 1") != NULL);
    CHECK(strstr(billiard_last_error(), "before it was ready") != NULL);
    billiard_config_free(cfg);
    CHECK(count_children() == 0);
}

static void environment(int method) {
    billiard_pool *pool = NULL;
    billiard_config *cfg = program_config(method, 1, worker_program);
    CHECK(setenv("BILLIARD_TEST_INHERITED", "from the host", 1) == 0);
    CHECK(setenv("TEST_REMOVED", "x", 1) == 0);
    CHECK_OK(billiard_config_set_worker_env(cfg, "TEST_ADDED", "added"));
    CHECK_OK(billiard_config_set_worker_env(cfg, "TEST_REMOVED", NULL));
    CHECK_OK(billiard_config_set_worker_cwd(cfg, "/tmp"));
    CHECK_OK(billiard_pool_new(cfg, &pool));
    CHECK(strcmp(ask(pool, "env:TEST_ADDED"), "added") == 0);
    CHECK(strcmp(ask(pool, "env:TEST_REMOVED"), "(unset)") == 0);
    CHECK(strcmp(ask(pool, "env:HOME"), getenv("HOME") ? getenv("HOME") : "(unset)") == 0);
    /* The host's BILLIARD_* variables, and the pool's, are not the worker's. */
    CHECK(strcmp(ask(pool, "env:BILLIARD_TEST_INHERITED"), "(unset)") == 0);
    CHECK(strcmp(ask(pool, "env:BILLIARD_TASK_FD"), "(unset)") == 0);
    CHECK(strcmp(ask(pool, "env:BILLIARD_FORKSERVER_FD"), "(unset)") == 0);
    CHECK(strcmp(ask(pool, "cwd"), "/tmp") == 0);
    billiard_pool_free(pool);

    /* A cleared environment holds only what was added. */
    CHECK_OK(billiard_config_set_worker_env_inherit(cfg, false));
    CHECK_OK(billiard_pool_new(cfg, &pool));
    CHECK(strcmp(ask(pool, "env:HOME"), "(unset)") == 0);
    CHECK(strcmp(ask(pool, "env:TEST_ADDED"), "added") == 0);
    billiard_pool_free(pool);
    billiard_config_free(cfg);
    CHECK(count_children() == 0);
}

/* FORKSERVER: start-up state set once in the server is every worker's. */
static void initialized_once(void) {
    billiard_pool *pool = NULL;
    billiard_config *cfg = program_config(BILLIARD_START_FORKSERVER, 3, worker_program);
    uint64_t ids[30];
    int worker_pids[30], init_pid = 0, i, j, distinct = 0;
    CHECK_OK(billiard_config_set_prefetch(cfg, 1));
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);
    CHECK(count_children() == 4);
    for (i = 0; i < 30; i++) ids[i] = submit_str(pool, i % 2 ? "init" : "sleep:20");
    for (i = 0; i < 30; i++) {
        billiard_result *r = wait_task(pool, ids[i]);
        CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
        worker_pids[i] = billiard_result_pid(r);
        if (i % 2) {
            char text[32];
            size_t len = 0;
            const uint8_t *p = billiard_result_data(r, &len);
            CHECK(len < sizeof text);
            memcpy(text, p, len);
            text[len] = '\0';
            if (init_pid == 0) init_pid = atoi(text);
            CHECK(atoi(text) == init_pid);           /* the same start-up for all */
            CHECK(atoi(text) != worker_pids[i]);     /* run by the server, not the worker */
        }
        billiard_result_free(r);
    }
    for (i = 0; i < 30; i++) {
        for (j = 0; j < i && worker_pids[j] != worker_pids[i]; j++) {
        }
        distinct += j == i;
    }
    CHECK(distinct == 3);
    for (i = 0; i < 30; i++) CHECK(worker_pids[i] != init_pid);
    billiard_pool_free(pool);
    CHECK(count_children() == 0);
}

static void server_killed_mid_run(void) {
    enum { TASKS = 60 };
    billiard_pool *pool = NULL;
    billiard_config *cfg = program_config(BILLIARD_START_FORKSERVER, 2, worker_program);
    uint64_t ids[TASKS];
    int i, ok = 0, lost = 0, server, old_worker, round;
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);
    for (round = 0; round < 2; round++) {
        billiard_result *r = wait_task(pool, submit_str(pool, "pid"));
        old_worker = billiard_result_pid(r);
        billiard_result_free(r);
        server = atoi(ask(pool, "init"));
        CHECK(server > 0 && server != old_worker);
        for (i = 0; i < TASKS; i++) ids[i] = submit_str(pool, i % 3 ? "sleep:5" : "sleep:50");
        sleep_ms(30);
        CHECK(kill(server, SIGKILL) == 0);
        for (i = 0; i < TASKS; i++) {
            r = wait_task(pool, ids[i]);
            switch (billiard_result_outcome(r)) {
            case BILLIARD_OUTCOME_OK: ok++; break;
            case BILLIARD_OUTCOME_WORKER_LOST:
                lost++;
                CHECK(data_has(r, "fork server"));
                break;
            default: CHECK(0 && "unexpected outcome");
            }
            billiard_result_free(r);
        }
        /* A new server serves, with new workers. */
        CHECK(atoi(ask(pool, "init")) != server);
        r = wait_task(pool, submit_str(pool, "pid"));
        CHECK(billiard_result_pid(r) != old_worker);
        billiard_result_free(r);
        CHECK(kill(server, 0) == -1); /* the old server was reaped */
    }
    CHECK(ok + lost == 2 * TASKS);
    CHECK(lost <= 2 * 2 * 16 + 4); /* at most what the workers held */
    billiard_pool_free(pool);
    CHECK(count_children() == 0);
    printf("server killed twice: %d ok, %d lost with it, none without a result\n", ok, lost);
}

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop_busy;

static void *busy(void *arg) {
    pthread_mutex_t own = PTHREAD_MUTEX_INITIALIZER;
    size_t size = 64 + (size_t)(long)arg * 1000;
    (void)arg;
    while (!stop_busy) {
        char *p;
        pthread_mutex_lock(&own);
        pthread_mutex_lock(&shared_lock);
        p = malloc(size);
        if (p) memset(p, 1, size);
        free(p);
        pthread_mutex_unlock(&shared_lock);
        pthread_mutex_unlock(&own);
        size = size * 7 % 100000 + 64;
    }
    return NULL;
}

static void busy_host(void) {
    pthread_t threads[8];
    int methods[2] = {BILLIARD_START_SPAWN, BILLIARD_START_FORKSERVER};
    long i;
    int m, round;
    for (i = 0; i < 8; i++) CHECK(pthread_create(&threads[i], NULL, busy, (void *)i) == 0);
    for (m = 0; m < 2; m++) {
        for (round = 0; round < 5; round++) {
            billiard_pool *pool = NULL;
            billiard_config *cfg = program_config(methods[m], 2, worker_program);
            CHECK_OK(billiard_pool_new(cfg, &pool));
            billiard_config_free(cfg);
            CHECK(strcmp(ask(pool, "echo:busy"), "busy") == 0);
            billiard_pool_free(pool);
        }
    }
    stop_busy = 1;
    for (i = 0; i < 8; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(count_children() == 0);
}

int main(int argc, char **argv) {
    int fds_before = count_fds();
    CHECK(argc == 2);
    worker_program = argv[1];
    cannot_start(BILLIARD_START_SPAWN);
    cannot_start(BILLIARD_START_FORKSERVER);
    environment(BILLIARD_START_SPAWN);
    environment(BILLIARD_START_FORKSERVER);
    initialized_once();
    server_killed_mid_run();
    busy_host();
    CHECK(count_fds() == fds_before);
    printf("start_methods: ok\n");
    return 0;
}
