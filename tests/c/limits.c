/* Limits and supervision through the C API, under the start method named
 * in BILLIARD_TEST_START: time limits (pool and per task), the soft-limit
 * flag, cancel, max tasks, the hard memory limit, restart intensity,
 * resize, rolling restart, stats, the worker listing and the event
 * callback. Ends with no child left. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "scripted.h"
#include "util.h"

static billiard_result *run(billiard_pool *pool, const char *cmd) {
    return wait_task(pool, submit_str(pool, cmd));
}

static int run_pid(billiard_pool *pool) { return atoi(ask(pool, "pid")); }

static void time_limits(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_task_opts opts;
    billiard_result *r;
    billiard_pool *pool;
    uint64_t id;
    int before;
    CHECK_OK(billiard_config_set_hard_time_limit(cfg, 200));
    CHECK_OK(billiard_config_set_soft_time_limit(cfg, 100));
    pool = start_pool(cfg);
    before = run_pid(pool);

    r = run(pool, "sleep:20000");
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_TIME_LIMIT);
    CHECK(billiard_result_signal(r) == SIGTERM);
    CHECK(billiard_result_running_us(r) >= 200000);
    CHECK(billiard_result_pid(r) == before);
    CHECK(data_has(r, "hard time limit of 200 ms"));
    billiard_result_free(r);
    CHECK(run_pid(pool) != before); /* a new worker took over */

    r = run(pool, "soft:5000");
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    CHECK(data_is(r, "reached"));
    billiard_result_free(r);

    /* Per task: no limit at all, then a tighter one. */
    CHECK_OK(billiard_task_opts_init(&opts));
    CHECK(opts.soft_time_limit_ms == BILLIARD_LIMIT_DEFAULT);
    opts.soft_time_limit_ms = BILLIARD_LIMIT_NONE;
    opts.hard_time_limit_ms = BILLIARD_LIMIT_NONE;
    CHECK_OK(billiard_pool_submit(pool, "soft:400", 8, &opts, &id));
    r = wait_task(pool, id);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK && data_is(r, "not reached"));
    billiard_result_free(r);
    opts.hard_time_limit_ms = 50;
    CHECK_OK(billiard_pool_submit(pool, "sleep:20000", 11, &opts, &id));
    r = wait_task(pool, id);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_TIME_LIMIT && data_has(r, "50 ms"));
    billiard_result_free(r);

    /* Never silently ignored: a soft limit that cannot fire, a bad value. */
    opts.soft_time_limit_ms = 100;
    CHECK_RC(billiard_pool_submit(pool, "x", 1, &opts, &id), BILLIARD_EINVAL);
    opts.soft_time_limit_ms = -5;
    CHECK_RC(billiard_pool_submit(pool, "x", 1, &opts, &id), BILLIARD_EINVAL);
    /* A caller built against the first version of the struct (no limits). */
    opts.struct_size = 16;
    CHECK_OK(billiard_pool_submit(pool, "echo:old", 8, &opts, &id));
    r = wait_task(pool, id);
    CHECK(data_is(r, "old"));
    billiard_result_free(r);
    billiard_pool_free(pool);

    /* A worker that ignores SIGTERM gets SIGKILL after the grace. */
    cfg = make_config(1, scripted, NULL);
    CHECK_OK(billiard_config_set_hard_time_limit(cfg, 100));
    CHECK_OK(billiard_config_set_kill_grace(cfg, 200));
    pool = start_pool(cfg);
    r = run(pool, "stubborn:20000");
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_TIME_LIMIT);
    CHECK(billiard_result_signal(r) == SIGKILL);
    CHECK(billiard_result_running_us(r) >= 300000);
    billiard_result_free(r);
    billiard_pool_free(pool);

    cfg = make_config(1, scripted, NULL);
    CHECK_OK(billiard_config_set_soft_time_limit(cfg, 200));
    CHECK_OK(billiard_config_set_hard_time_limit(cfg, 200));
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_EINVAL);
    billiard_config_free(cfg);
}

static void cancel(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_result *r;
    billiard_pool *pool;
    uint64_t running, queued;
    int pid;
    char touch[128];
    CHECK_OK(billiard_config_set_prefetch(cfg, 4));
    pool = start_pool(cfg);
    pid = run_pid(pool);
    unlink(started_marker(pid)); /* stale, from an old process with this pid */
    running = submit_str(pool, "work:20000");
    snprintf(touch, sizeof touch, "touch:/tmp/billiard-c-cancel-%d", (int)getpid());
    queued = submit_str(pool, touch);
    CHECK(wait_started(pid));
    /* Sent ahead to the busy worker, not started: skipped, ends at once. */
    CHECK_OK(billiard_task_cancel(pool, queued));
    r = NULL;
    CHECK_OK(billiard_task_wait(pool, queued, 0, &r));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_CANCELLED);
    billiard_result_free(r);
    CHECK_RC(billiard_task_cancel(pool, queued), BILLIARD_ENOTFOUND);
    /* Running: its worker is stopped and replaced. */
    CHECK_OK(billiard_task_cancel(pool, running));
    r = wait_task(pool, running);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_CANCELLED);
    CHECK(billiard_result_pid(r) == pid);
    billiard_result_free(r);
    CHECK(run_pid(pool) != pid);
    CHECK(access(touch + 6, F_OK) != 0); /* the cancelled task never ran */
    CHECK_RC(billiard_task_cancel(pool, 424242), BILLIARD_ENOTFOUND);
    billiard_pool_free(pool);
}

static void recycling_and_memory(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_stats stats;
    billiard_result *r;
    billiard_pool *pool;
    int a, b;
    CHECK_OK(billiard_config_set_max_tasks_per_worker(cfg, 2, 0));
#ifndef TEST_UNDER_ASAN
    /* AddressSanitizer reserves terabytes of address space: an RLIMIT_AS
     * stops its workers before they start. */
    CHECK_OK(billiard_config_set_hard_memory_limit(cfg, 512u << 20));
#endif
    pool = start_pool(cfg);
    a = run_pid(pool);
    CHECK(run_pid(pool) == a);
    b = run_pid(pool);
    CHECK(b != a); /* replaced after its 2 tasks */
#ifdef TEST_UNDER_ASAN
    (void)r;
    (void)stats;
    billiard_pool_free(pool);
    return;
#endif
    if (getenv("BILLIARD_TEST_UNDER_VALGRIND") != NULL) {
        /* valgrind's own memory lives under the worker's RLIMIT_AS too:
         * which allocation fails first, the handler's or valgrind's (which
         * then exits), depends on the layout, not on billiard. The step
         * runs natively. */
        billiard_pool_free(pool);
        return;
    }
    r = run(pool, "grow");
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_MEMORY_LIMIT);
    CHECK(billiard_result_signal(r) == SIGABRT);
    CHECK(data_has(r, "out of memory"));
    billiard_result_free(r);
    CHECK(run_pid(pool) != b);
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK_OK(billiard_pool_stats(pool, &stats));
    CHECK(stats.outcomes[BILLIARD_OUTCOME_MEMORY_LIMIT] == 1);
    CHECK(stats.recycles >= 1);
    billiard_pool_free(pool);
}

static void soft_memory(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_pool *pool;
    billiard_result *r;
    int a;
    CHECK_OK(billiard_config_set_soft_memory_limit(cfg, 32u << 20));
    pool = start_pool(cfg);
    a = run_pid(pool);
    CHECK(run_pid(pool) == a); /* a fresh worker is under it */
    r = run(pool, "hold:64");
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK && billiard_result_pid(r) == a);
    billiard_result_free(r);
    CHECK(run_pid(pool) != a); /* replaced after the task that crossed it */
    billiard_pool_free(pool);
}

static void restart_intensity(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_pool *pool;
    billiard_result *r;
    uint64_t crash[3], waiting;
    int i;
    CHECK_OK(billiard_config_set_prefetch(cfg, 1));
    CHECK_OK(billiard_config_set_restart_intensity(cfg, 2, 60000));
    pool = start_pool(cfg);
    for (i = 0; i < 3; i++) crash[i] = submit_str(pool, "exit:3");
    waiting = submit_str(pool, "echo:late");
    for (i = 0; i < 3; i++) {
        r = wait_task(pool, crash[i]);
        CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST);
        billiard_result_free(r);
    }
    r = wait_task(pool, waiting);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_ABANDONED);
    billiard_result_free(r);
    CHECK_RC(billiard_pool_submit(pool, "x", 1, NULL, NULL), BILLIARD_ERESTARTS);
    CHECK(strstr(billiard_last_error(), "crashed") != NULL);
    CHECK_RC(billiard_pool_wait(pool, -1, &r), BILLIARD_ENOTFOUND);
    billiard_pool_free(pool);
}

/* Lists the workers until `done` holds for the listing (20 s at most). */
static size_t list_until(billiard_pool *pool, billiard_worker_info *info, size_t cap,
                         int (*done)(const billiard_worker_info *, size_t)) {
    size_t n = 0;
    int tries;
    for (tries = 0; tries < 4000; tries++) {
        CHECK_OK(billiard_pool_workers(pool, info, cap, &n));
        if (done(info, n)) break;
        sleep_ms(5);
    }
    CHECK(done(info, n));
    return n;
}

static int three(const billiard_worker_info *info, size_t n) { (void)info; return n == 3; }
static int one(const billiard_worker_info *info, size_t n) { (void)info; return n == 1; }
static int one_fresh_idle(const billiard_worker_info *info, size_t n) {
    return n == 1 && info[0].tasks_done == 0 && info[0].state == BILLIARD_WORKER_IDLE;
}

static void resize_restart_and_listing(void) {
    billiard_config *cfg = make_config(2, scripted, NULL);
    billiard_worker_info info[8];
    billiard_stats stats;
    billiard_pool *pool;
    size_t n = 0;
    int i;
    uint64_t busy;
    pool = start_pool(cfg);
    CHECK_OK(billiard_pool_resize(pool, 3));
    list_until(pool, info, 8, three);
    busy = submit_str(pool, "sleep:300");
    CHECK_OK(billiard_pool_resize(pool, 1));
    list_until(pool, info, 8, one);
    CHECK_OK(billiard_pool_workers(pool, NULL, 0, &n));
    CHECK(n == 1);
    CHECK(info[0].pid > 0 && info[0].state == BILLIARD_WORKER_BUSY && info[0].task_id == busy);
    CHECK(info[0].rss_bytes > 0);
    billiard_result_free(wait_task(pool, busy));
    CHECK_OK(billiard_pool_restart(pool));
    list_until(pool, info, 8, one_fresh_idle);
    memset(&stats, 0, sizeof stats);
    CHECK_RC(billiard_pool_stats(pool, &stats), BILLIARD_EINVAL); /* struct_size unset */
    stats.struct_size = sizeof stats;
    CHECK_OK(billiard_pool_stats(pool, &stats));
    CHECK(stats.workers == 1 && stats.target == 1 && stats.idle == 1);
    CHECK(stats.outcomes[BILLIARD_OUTCOME_OK] == 1 && stats.restarts == 0);
    CHECK(stats.recycles == 3); /* two by the shrink, one by the restart */
    CHECK_RC(billiard_pool_resize(pool, 0), BILLIARD_EINVAL);
    for (i = 0; i < 3; i++) CHECK(run_pid(pool) == info[0].pid);
    billiard_pool_free(pool);
}

struct seen {
    int started, exited, lost, failed, refused, free_refused;
    billiard_pool *pool;
};

static void on_event(void *user_data, const billiard_event *e) {
    struct seen *s = user_data;
    CHECK(e->message != NULL);
    switch (e->kind) {
    case BILLIARD_EVENT_WORKER_STARTED: s->started++; break;
    case BILLIARD_EVENT_WORKER_EXITED:
        s->exited++;
        CHECK(e->pid > 0);
        break;
    case BILLIARD_EVENT_TASK_LOST: s->lost++; break;
    case BILLIARD_EVENT_POOL_FAILED: s->failed++; break;
    default: break;
    }
    if (s->pool) {
        /* Blocking calls from the callback fail instead of deadlocking. */
        if (billiard_pool_join(s->pool, 100) == BILLIARD_EINVAL) s->refused++;
        billiard_pool_free(s->pool);
        if (strstr(billiard_last_error(), "event") != NULL) s->free_refused++;
    }
}

static void events(void) {
    static struct seen seen;
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_pool *pool;
    billiard_result *r;
    CHECK_OK(billiard_config_set_event_callback(cfg, on_event, &seen));
    pool = start_pool(cfg);
    seen.pool = pool;
    r = run(pool, "exit:4");
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST);
    billiard_result_free(r);
    CHECK(run_pid(pool) > 0); /* still usable after the refused free */
    seen.pool = NULL;
    billiard_pool_free(pool);
    CHECK(seen.started >= 2 && seen.exited >= 1 && seen.lost == 1);
    CHECK(seen.refused >= 1 && seen.free_refused >= 1);
}

int main(void) {
    time_limits();
    cancel();
    recycling_and_memory();
    soft_memory();
    restart_intensity();
    resize_restart_and_listing();
    events();
    CHECK(count_children() == 0);
    printf("limits ok\n");
    return 0;
}
