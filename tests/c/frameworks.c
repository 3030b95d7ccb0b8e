/* What frameworks need from the C API, under the start method named in
 * BILLIARD_TEST_START:
 *  - notices: a STARTED notice for each task that started, exactly once,
 *    queued before its result whichever way the result is collected
 *    (billiard_pool_wait, billiard_task_wait, the fd); none for a task
 *    cancelled in the queue; a SOFT_LIMIT notice; billiard_pool_fd is
 *    readable while a notice waits and reading notices takes no result;
 *    billiard_task_status for queued, sent, running and done tasks;
 *  - notices switched at run time (billiard_pool_set_notices): on, a
 *    running task's notice comes at once; off, none is kept; worker
 *    notices tell a replaced worker's exit and its successor's start;
 *  - signals: cancel with SIGKILL kills at once (no grace), a signal to a
 *    running task's worker without a cancel, never to the task after it;
 *  - worker hooks: the after-fork hook runs in each worker, a failing one
 *    fails the start with its message, the at-exit hook runs on recycle,
 *    shrink and close but not on a crash.
 * Ends with no child left. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "scripted.h"
#include "util.h"

static int ask_number(billiard_pool *pool, const char *cmd) { return atoi(ask(pool, cmd)); }

/* Waits (20 s at most) until the pool's fd is readable. */
static int fd_readable(billiard_pool *pool, int ms) {
    struct pollfd p;
    p.fd = billiard_pool_fd(pool);
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, ms) == 1;
}

enum { MAX_TASKS = 512 };
static int started_notices[MAX_TASKS + 1];
static int started_pid[MAX_TASKS + 1];
static int soft_notices[MAX_TASKS + 1];

/* Reads every waiting notice into the tables above. Returns how many. */
static size_t drain_notices(billiard_pool *pool) {
    billiard_notice n[16];
    size_t count = 0, total = 0, i;
    do {
        CHECK_OK(billiard_pool_notices(pool, n, 16, &count));
        for (i = 0; i < count; i++) {
            CHECK(n[i].task_id >= 1 && n[i].task_id <= MAX_TASKS);
            CHECK(n[i].pid > 0);
            CHECK(n[i].time_us > 0);
            if (n[i].kind == BILLIARD_NOTICE_STARTED) {
                started_notices[n[i].task_id]++;
                started_pid[n[i].task_id] = n[i].pid;
            } else {
                CHECK(n[i].kind == BILLIARD_NOTICE_SOFT_LIMIT);
                soft_notices[n[i].task_id]++;
            }
        }
        total += count;
    } while (count == 16);
    return total;
}

static void notices(void) {
    billiard_config *cfg = make_config(2, scripted, NULL);
    billiard_task_info info;
    billiard_task_opts opts;
    billiard_result *r = NULL;
    billiard_pool *pool;
    uint64_t ids[60], id, blocker, queued;
    size_t count = 99;
    int i;
    memset(started_notices, 0, sizeof started_notices);
    memset(soft_notices, 0, sizeof soft_notices);
    CHECK_OK(billiard_config_set_notices(cfg, BILLIARD_NOTICE_STARTED | BILLIARD_NOTICE_SOFT_LIMIT));
    CHECK_RC(billiard_config_set_notices(cfg, 16), BILLIARD_EINVAL);
    pool = start_pool(cfg);

    /* Nothing waits: no notice, and the fd is quiet. */
    CHECK_OK(billiard_pool_notices(pool, NULL, 0, &count));
    CHECK(count == 0);
    CHECK(!fd_readable(pool, 0));

    /* A running task: its notice makes the fd readable before its result. */
    id = submit_str(pool, "sleep:1500");
    CHECK(fd_readable(pool, 20000));
    CHECK(drain_notices(pool) == 1);
    CHECK(started_notices[id] == 1);
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_OK(billiard_task_status(pool, id, &info));
    CHECK(info.state == BILLIARD_TASK_RUNNING);
    CHECK(info.pid == started_pid[id]);
    CHECK(info.started_us > 0);
    /* Reading notices took no result: the task is still pending. */
    CHECK_RC(billiard_pool_wait(pool, 0, &r), BILLIARD_ETIMEDOUT);
    CHECK(!fd_readable(pool, 0));
    r = wait_task(pool, id);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    CHECK(billiard_result_pid(r) == started_pid[id]);
    billiard_result_free(r);
    CHECK(drain_notices(pool) == 0);
    CHECK_RC(billiard_task_status(pool, id, &info), BILLIARD_ENOTFOUND);

    /* A queued task behind two busy workers; one cancelled there. */
    blocker = submit_str(pool, "sleep:800");
    submit_str(pool, "sleep:800");
    queued = submit_str(pool, "echo:queued");
    id = submit_str(pool, "echo:cancelled");
    CHECK_OK(billiard_task_status(pool, queued, &info));
    CHECK(info.state == BILLIARD_TASK_QUEUED || info.state == BILLIARD_TASK_SENT);
    CHECK_OK(billiard_task_cancel(pool, id));
    r = wait_task(pool, id);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_CANCELLED);
    billiard_result_free(r);
    /* A result waiting to be collected is DONE. */
    while (billiard_task_status(pool, queued, &info) == BILLIARD_OK &&
           info.state != BILLIARD_TASK_DONE)
        sleep_ms(5);
    CHECK(info.state == BILLIARD_TASK_DONE);
    for (i = 0; i < 3; i++) {
        r = NULL;
        CHECK_OK(billiard_pool_wait(pool, 20000, &r));
        billiard_result_free(r);
    }
    drain_notices(pool);
    CHECK(started_notices[blocker] == 1 && started_notices[queued] == 1);
    CHECK(started_notices[id] == 0);

    /* Many tasks, collected by billiard_pool_wait and billiard_task_wait:
     * each one's notice is there by the time its result is. */
    for (i = 0; i < 60; i++) ids[i] = submit_str(pool, i % 3 ? "echo:x" : "sleep:2");
    for (i = 0; i < 60; i++) {
        uint64_t got;
        r = NULL;
        if (i < 30) {
            r = wait_task(pool, ids[i]);
        } else {
            CHECK_OK(billiard_pool_wait(pool, 20000, &r));
        }
        got = billiard_result_task_id(r);
        CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
        drain_notices(pool);
        CHECK(started_notices[got] == 1);
        CHECK(started_pid[got] == billiard_result_pid(r));
        billiard_result_free(r);
    }
    drain_notices(pool);
    for (i = 0; i < 60; i++) CHECK(started_notices[ids[i]] == 1);

    /* The soft limit: a notice, and the task sees the flag. */
    CHECK_OK(billiard_task_opts_init(&opts));
    opts.soft_time_limit_ms = 100;
    CHECK_OK(billiard_pool_submit(pool, "soft:10000", 10, &opts, &id));
    r = wait_task(pool, id);
    CHECK(data_is(r, "reached"));
    billiard_result_free(r);
    drain_notices(pool);
    CHECK(soft_notices[id] == 1 && started_notices[id] == 1);

    billiard_pool_free(pool);
    CHECK(count_children() == 0);
}

/* billiard_pool_set_notices: a pool made without notices turns STARTED on
 * while it needs it, and off again. */
static void notices_switched(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_result *r;
    billiard_pool *pool;
    uint64_t id;
    int old_pid, new_pid, exited = 0, started = 0, i;
    memset(started_notices, 0, sizeof started_notices);
    pool = start_pool(cfg);
    CHECK_RC(billiard_pool_set_notices(pool, 16), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_set_notices(NULL, 0), BILLIARD_EINVAL);

    /* Off (the default): a task runs and ends without a notice. */
    r = wait_task(pool, submit_str(pool, "echo:quiet"));
    billiard_result_free(r);
    CHECK(drain_notices(pool) == 0);

    /* On: the next task's start is noticed while it runs. */
    CHECK_OK(billiard_pool_set_notices(pool, BILLIARD_NOTICE_STARTED));
    id = submit_str(pool, "sleep:1500");
    CHECK(fd_readable(pool, 20000));
    CHECK(drain_notices(pool) == 1);
    CHECK(started_notices[id] == 1);
    r = wait_task(pool, id);
    CHECK(billiard_result_pid(r) == started_pid[id]);
    billiard_result_free(r);
    CHECK(drain_notices(pool) == 0);

    /* Off again: none is kept. */
    CHECK_OK(billiard_pool_set_notices(pool, 0));
    id = submit_str(pool, "sleep:200");
    r = wait_task(pool, id);
    billiard_result_free(r);
    CHECK(drain_notices(pool) == 0 && started_notices[id] == 0);

    /* Worker notices: a restart replaces the worker; its exit and its
     * successor's start are told, with no task. */
    old_pid = ask_number(pool, "pid");
    CHECK_OK(billiard_pool_set_notices(
        pool, BILLIARD_NOTICE_WORKER_STARTED | BILLIARD_NOTICE_WORKER_EXITED));
    CHECK_OK(billiard_pool_restart(pool));
    new_pid = ask_number(pool, "pid");
    CHECK(new_pid != old_pid);
    for (i = 0; i < 2000 && !(exited == old_pid && started == new_pid); i++) {
        billiard_notice n[4];
        size_t count = 0, k;
        CHECK_OK(billiard_pool_notices(pool, n, 4, &count));
        for (k = 0; k < count; k++) {
            CHECK(n[k].task_id == 0 && n[k].tag == 0);
            if (n[k].kind == BILLIARD_NOTICE_WORKER_EXITED) exited = n[k].pid;
            if (n[k].kind == BILLIARD_NOTICE_WORKER_STARTED) started = n[k].pid;
        }
        if (count == 0) sleep_ms(10);
    }
    CHECK(exited == old_pid && started == new_pid);

    billiard_pool_free(pool);
    CHECK(count_children() == 0);
}

static void signals(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_result *r;
    billiard_pool *pool;
    uint64_t a, b;
    int round, lost = 0;
    /* A long grace: a stop that waited for it would show. */
    CHECK_OK(billiard_config_set_kill_grace(cfg, 30000));
    CHECK_OK(billiard_config_set_notices(cfg, BILLIARD_NOTICE_STARTED));
    pool = start_pool(cfg);

    CHECK_RC(billiard_task_cancel_signal(pool, 1, 0), BILLIARD_EINVAL);
    CHECK_RC(billiard_task_signal(pool, 1, 100000), BILLIARD_EINVAL);
    CHECK_RC(billiard_task_signal(pool, 12345, SIGTERM), BILLIARD_ENOTFOUND);

    /* Cancel with SIGKILL: a task that ignores SIGTERM dies at once. */
    memset(started_notices, 0, sizeof started_notices);
    a = submit_str(pool, "stubborn:60000");
    while (started_notices[a] == 0) {
        CHECK(fd_readable(pool, 20000));
        drain_notices(pool);
    }
    CHECK_OK(billiard_task_cancel_signal(pool, a, SIGKILL));
    r = wait_task(pool, a);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_CANCELLED);
    CHECK(billiard_result_signal(r) == SIGKILL);
    CHECK(billiard_result_running_us(r) < 20000000);
    billiard_result_free(r);

    /* A signal without a cancel: the task sees it and goes on. */
    unlink(started_marker(ask_number(pool, "pid"))); /* stale, from an old pid */
    a = submit_str(pool, "usr1:60000");
    b = submit_str(pool, "echo:after");
    while (started_notices[a] == 0) {
        CHECK(fd_readable(pool, 20000));
        drain_notices(pool);
    }
    CHECK(wait_started(started_pid[a])); /* its SIGUSR1 handler is in place */
    CHECK_OK(billiard_task_signal(pool, a, SIGUSR1));
    r = wait_task(pool, a);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    CHECK(data_is(r, "usr1"));
    billiard_result_free(r);
    CHECK_RC(billiard_task_signal(pool, a, SIGUSR1), BILLIARD_ENOTFOUND);
    r = wait_task(pool, b);
    CHECK(data_is(r, "after"));
    billiard_result_free(r);

    /* A queued task gets no signal. */
    a = submit_str(pool, "sleep:500");
    b = submit_str(pool, "echo:queued");
    CHECK_RC(billiard_task_signal(pool, b, SIGKILL), BILLIARD_ENOTFOUND);
    r = wait_task(pool, a);
    billiard_result_free(r);
    r = wait_task(pool, b);
    CHECK(data_is(r, "queued"));
    billiard_result_free(r);

    /* A signal aimed at a task as it ends never hits the next one: A
     * (sleep r ms) gets SIGTERM at about r ms; B, sent right behind it to
     * the same worker, always succeeds. */
    for (round = 0; round < 60; round++) {
        char cmd[32];
        snprintf(cmd, sizeof cmd, "sleep:%d", 2 + round % 8);
        a = submit_str(pool, cmd);
        b = submit_str(pool, "echo:b");
        sleep_ms(round % 10);
        (void)billiard_task_signal(pool, a, SIGTERM);
        r = wait_task(pool, a);
        if (billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST) {
            CHECK(billiard_result_signal(r) == SIGTERM);
            lost++;
        } else {
            CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
        }
        billiard_result_free(r);
        r = wait_task(pool, b);
        CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
        CHECK(data_is(r, "b"));
        billiard_result_free(r);
        drain_notices(pool);
    }
    printf("signals: %d of 60 racing signals hit their task\n", lost);
    fflush(stdout);
    billiard_pool_free(pool);
    CHECK(count_children() == 0);
}

/* A config whose workers run the test hooks (failing when `fail`). */
static billiard_config *hooked_config(uint32_t workers, int fail) {
    billiard_config *cfg = make_config(workers, scripted, NULL);
    if (test_start_method() == BILLIARD_START_FORK) {
        CHECK_OK(billiard_config_set_initializer(cfg, test_after_fork, fail ? (void *)cfg : NULL));
        CHECK_OK(billiard_config_set_at_exit(cfg, test_at_exit, NULL));
    } else {
        CHECK_OK(billiard_config_set_worker_env(cfg, "TEST_HOOKS", "1"));
        if (fail) CHECK_OK(billiard_config_set_worker_env(cfg, "TEST_HOOK_FAIL", "1"));
    }
    return cfg;
}

static void hooks(void) {
    billiard_config *cfg;
    billiard_result *r;
    billiard_pool *pool = NULL;
    int pids[2], pid, crashed;

    /* A failing after-fork hook fails the start, with its message. */
    cfg = hooked_config(2, 1);
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_ESPAWN);
    CHECK(strstr(billiard_last_error(), "the after-fork hook refused") != NULL);
    billiard_config_free(cfg);
    CHECK(count_children() == 0);

    cfg = hooked_config(1, 0);
    CHECK_OK(billiard_config_set_max_tasks_per_worker(cfg, 2, 0));
    pool = start_pool(cfg);
    /* The after-fork hook ran in the worker itself (not in a fork server). */
    pid = ask_number(pool, "pid");
    CHECK(ask_number(pool, "hooked") == pid);
    /* Recycled after its two tasks: an orderly exit runs the at-exit hook. */
    CHECK(wait_at_exit(pid));
    pids[0] = ask_number(pool, "pid");
    CHECK(pids[0] != pid);

    /* A crash runs no at-exit hook. */
    r = wait_task(pool, submit_str(pool, "exit:3"));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST);
    crashed = billiard_result_pid(r);
    billiard_result_free(r);

    /* Shrink: the retired worker's hook runs. */
    CHECK_OK(billiard_pool_resize(pool, 2));
    {
        billiard_worker_info w[4];
        size_t n = 0;
        int i, ready = 0;
        while (ready < 2) {
            CHECK_OK(billiard_pool_workers(pool, w, 4, &n));
            for (ready = 0, i = 0; i < (int)n; i++) ready += w[i].state == BILLIARD_WORKER_IDLE;
            sleep_ms(5);
        }
        pids[0] = w[0].pid;
        pids[1] = w[1].pid;
    }
    CHECK_OK(billiard_pool_resize(pool, 1));
    {
        int gone = -1;
        int i;
        for (i = 0; i < 4000 && gone < 0; i++) {
            if (access(at_exit_marker(pids[0]), F_OK) == 0) gone = 0;
            else if (access(at_exit_marker(pids[1]), F_OK) == 0) gone = 1;
            else sleep_ms(5);
        }
        CHECK(gone >= 0);
        CHECK(wait_at_exit(pids[gone]));
        pid = pids[1 - gone];
    }
    /* Close and join: the last worker's hook runs. */
    CHECK_OK(billiard_pool_close(pool));
    CHECK_OK(billiard_pool_join(pool, 20000));
    CHECK(wait_at_exit(pid));
    CHECK(access(at_exit_marker(crashed), F_OK) != 0);
    billiard_pool_free(pool);
    CHECK(count_children() == 0);
}

int main(void) {
    notices();
    notices_switched();
    signals();
    hooks();
    printf("frameworks: ok\n");
    return 0;
}
