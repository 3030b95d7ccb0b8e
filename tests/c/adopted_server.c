/* A fork server the host forks itself (billiard_config_set_fork_server_callback
 * and billiard_forkserver_serve):
 *  - workers have the host's data as it was when the server was forked
 *    (a global set before, changed after);
 *  - the after-fork hook runs in each worker, the at-exit hook on close;
 *  - the host forks the server while 8 other threads take a mutex and
 *    allocate in a loop (locks held at every moment), and it still serves;
 *  - killing the server loses no task: running ones end WORKER_LOST, the
 *    others run on a replacement the pool asks the host to fork (on the
 *    pool's own thread); nothing is left after free;
 *  - a pool made on a thread that exits gets a new server (the first one
 *    dies with its forking thread);
 *  - a worker's copy of the host's pool refuses calls, and freeing it
 *    frees only the copy (no wait for a supervisor that is not there);
 *  - a callback that cannot fork fails billiard_pool_new with
 *    BILLIARD_ESPAWN; billiard_forkserver_serve on an fd no pool made for
 *    it returns BILLIARD_EINVAL at once. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scripted.h"
#include "util.h"

static char host_data[64];
static billiard_pool *host_pool;
static volatile int forks_asked;
static volatile int last_server;

static int handler(void *ctx, const uint8_t *in, size_t len, billiard_reply *reply) {
    if (len == 4 && memcmp(in, "data", 4) == 0)
        return billiard_reply_write(reply, host_data, strlen(host_data));
    if (len == 8 && memcmp(in, "freecopy", 8) == 0) {
        /* The worker's copy of the host's pool: refused, never waited on. */
        char out[64];
        uint64_t id = 0;
        int rc = billiard_pool_submit(host_pool, "x", 1, NULL, &id);
        billiard_pool_free(host_pool);
        snprintf(out, sizeof out, "%d %s", rc,
                 strstr(billiard_last_error(), "forked") ? "forked" : "?");
        return billiard_reply_write(reply, out, strlen(out));
    }
    return scripted(ctx, in, len, reply);
}

static int fork_server(void *ctx, int server_fd) {
    billiard_worker_hooks hooks;
    pid_t pid;
    (void)ctx;
    forks_asked++;
    pid = fork();
    if (pid == 0) {
        memset(&hooks, 0, sizeof hooks);
        hooks.struct_size = sizeof hooks;
        hooks.after_fork = test_after_fork;
        hooks.at_exit = test_at_exit;
        _exit(billiard_forkserver_serve(server_fd, handler, NULL, &hooks));
    }
    last_server = (int)pid;
    return (int)pid;
}

static int cannot_fork(void *ctx, int server_fd) {
    (void)ctx;
    (void)server_fd;
    return -1;
}

static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop_busy;

static void *busy(void *arg) {
    (void)arg;
    while (!stop_busy) {
        void *p;
        pthread_mutex_lock(&busy_lock);
        p = malloc(64 + (size_t)(rand() % 4096));
        free(p);
        pthread_mutex_unlock(&busy_lock);
    }
    return NULL;
}

static billiard_config *config(uint32_t workers);

/* Makes a pool (into *arg) on a thread that then exits. */
static void *pool_from_a_thread(void *arg) {
    billiard_config *cfg = config(1);
    CHECK_OK(billiard_pool_new(cfg, (billiard_pool **)arg));
    billiard_config_free(cfg);
    return NULL;
}

static billiard_config *config(uint32_t workers) {
    billiard_config *cfg = NULL;
    CHECK_OK(billiard_config_new(&cfg));
    CHECK_OK(billiard_config_set_workers(cfg, workers));
    CHECK_OK(billiard_config_set_fork_server_callback(cfg, fork_server, NULL));
    return cfg;
}

int main(void) {
    billiard_config *cfg;
    billiard_pool *pool = NULL;
    billiard_result *r;
    pthread_t threads[8];
    uint64_t ids[20];
    int i, pid, server, ok = 0, lost = 0, busy_threads = 8;

    /* Not a socket a pool made for a server: refused at once. */
    CHECK_RC(billiard_forkserver_serve(0, handler, NULL, NULL), BILLIARD_EINVAL);
    CHECK(strstr(billiard_last_error(), "not the server end") != NULL);

    cfg = NULL;
    CHECK_OK(billiard_config_new(&cfg));
    CHECK_OK(billiard_config_set_fork_server_callback(cfg, cannot_fork, NULL));
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_ESPAWN);
    CHECK(strstr(billiard_last_error(), "returned -1") != NULL);
    billiard_config_free(cfg);
    /* A worker argv or a handler does not go with a host-forked server. */
    cfg = config(1);
    CHECK_OK(billiard_config_set_handler(cfg, handler, NULL));
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_EINVAL);
    billiard_config_free(cfg);
    CHECK(count_children() == 0);

    /* Forked while other threads hold a lock and allocate (not under
     * valgrind, which runs one thread at a time: they would starve the
     * others there). */
    if (getenv("BILLIARD_TEST_UNDER_VALGRIND") != NULL) busy_threads = 0;
    for (i = 0; i < busy_threads; i++) CHECK(pthread_create(&threads[i], NULL, busy, NULL) == 0);
    snprintf(host_data, sizeof host_data, "loaded before the fork");
    cfg = config(2);
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);
    host_pool = pool;
    snprintf(host_data, sizeof host_data, "changed after the fork");
    CHECK(forks_asked == 1);
    server = last_server;
    CHECK(strcmp(ask(pool, "data"), "loaded before the fork") == 0);
    pid = atoi(ask(pool, "pid"));
    CHECK(pid != server && pid != (int)getpid());
    CHECK(atoi(ask(pool, "hooked")) == pid);

    /* Kill the server with tasks running and queued: none is lost. */
    for (i = 0; i < 20; i++) ids[i] = submit_str(pool, i < 2 ? "sleep:3000" : "echo:x");
    sleep_ms(300);
    CHECK(kill(server, SIGKILL) == 0);
    for (i = 0; i < 20; i++) {
        r = wait_task(pool, ids[i]);
        if (billiard_result_outcome(r) == BILLIARD_OUTCOME_OK) ok++;
        else if (billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST) lost++;
        billiard_result_free(r);
    }
    CHECK(ok + lost == 20);
    CHECK(ok >= 18);
    CHECK(forks_asked >= 2 && last_server != server);
    /* The replacement was forked now, from the data as it is now. */
    CHECK(strcmp(ask(pool, "data"), "changed after the fork") == 0);
    /* The replacement was forked on the pool's own thread, which blocks
     * every signal: its workers do not (a signal to a task kills it).
     * (Not under valgrind: the server runs under it too and has no
     * pidfds to pass, and the pool never signals a server's worker by a
     * pid it does not own.) */
    if (getenv("BILLIARD_TEST_UNDER_VALGRIND") == NULL) {
        uint64_t id = submit_str(pool, "sleep:20000");
        billiard_task_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        do {
            sleep_ms(5);
            CHECK_OK(billiard_task_status(pool, id, &info));
        } while (info.state != BILLIARD_TASK_RUNNING);
        CHECK_OK(billiard_task_signal(pool, id, SIGTERM));
        r = wait_task(pool, id);
        CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST);
        CHECK(billiard_result_signal(r) == SIGTERM);
        billiard_result_free(r);
    }
    /* A forked copy of the pool refuses every call and frees only itself. */
    CHECK(strcmp(ask(pool, "freecopy"), "-1 forked") == 0);
    CHECK(strcmp(ask(pool, "echo:still serving"), "still serving") == 0);
    pid = atoi(ask(pool, "pid"));

    stop_busy = 1;
    for (i = 0; i < busy_threads; i++) pthread_join(threads[i], NULL);

    CHECK_OK(billiard_pool_close(pool));
    CHECK_OK(billiard_pool_join(pool, 20000));
    CHECK(wait_at_exit(pid));
    billiard_pool_free(pool);

    /* A pool made on a thread that exits: its server, forked there, gets
     * SIGKILL with that thread, and the pool forks another. */
    {
        billiard_pool *orphaned = NULL;
        pthread_t maker;
        int asked;
        CHECK(pthread_create(&maker, NULL, pool_from_a_thread, &orphaned) == 0);
        CHECK(pthread_join(maker, NULL) == 0);
        asked = forks_asked;
        /* Up to 60 s: under valgrind beside a CPU hog, 20 s once ran out. */
        for (i = 0; i < 12000 && forks_asked == asked; i++) sleep_ms(5);
        CHECK(forks_asked > asked);
        CHECK(strcmp(ask(orphaned, "echo:served"), "served") == 0);
        billiard_pool_free(orphaned);
    }
    CHECK(count_children() == 0);
    printf("adopted server: ok (%d lost with the server)\n", lost);
    return 0;
}
