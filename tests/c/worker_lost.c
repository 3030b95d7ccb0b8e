/* A worker SIGKILLed mid-task gives WORKER_LOST with signal 9, is reaped and
 * replaced, and the pool keeps serving; exit(3) in a handler gives exit code 3;
 * a handler error gives FAILED with its message. A worker that dies while a
 * large frame is half-written to it does not kill the host with SIGPIPE (this
 * program keeps the default SIGPIPE action), and the task, never started,
 * runs on the replacement. */
#include <signal.h>

#include "scripted.h"
#include "util.h"

int main(void) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_pool *pool = NULL;
    billiard_result *r;
    uint64_t id;
    int victim;
    char buf[32];

    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);

    r = wait_task(pool, submit_str(pool, "pid"));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    victim = billiard_result_pid(r);
    snprintf(buf, sizeof buf, "%d", victim);
    CHECK(data_is(r, buf));
    billiard_result_free(r);

    /* SIGKILL while running. */
    unlink(started_marker(victim)); /* stale, from an old process with this pid */
    id = submit_str(pool, "work:30000");
    CHECK(wait_started(victim));
    CHECK(kill(victim, SIGKILL) == 0);
    r = wait_task(pool, id);
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST);
    CHECK(billiard_result_signal(r) == SIGKILL);
    CHECK(billiard_result_exit_code(r) == -1);
    CHECK(billiard_result_pid(r) == victim);
    CHECK(data_has(r, "SIGKILL"));
    CHECK(billiard_result_running_us(r) > 0);
    billiard_result_free(r);
    CHECK(kill(victim, 0) == -1); /* reaped: not even a zombie */

    /* The replacement serves. */
    r = wait_task(pool, submit_str(pool, "pid"));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    CHECK(billiard_result_pid(r) != victim);
    billiard_result_free(r);

    /* exit(3) inside the handler. */
    r = wait_task(pool, submit_str(pool, "exit:3"));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST);
    CHECK(billiard_result_exit_code(r) == 3);
    CHECK(billiard_result_signal(r) == 0);
    CHECK(data_has(r, "exited with code 3"));
    billiard_result_free(r);

    /* A handler-reported failure. */
    r = wait_task(pool, submit_str(pool, "fail:cannot parse"));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_FAILED);
    CHECK(data_is(r, "cannot parse"));
    billiard_result_free(r);

    r = wait_task(pool, submit_str(pool, "echo:still here"));
    CHECK(data_is(r, "still here"));
    billiard_result_free(r);

    /* Half-written frame to a worker that dies: no SIGPIPE, task requeued. */
    {
        size_t big = 16u << 20;
        char *payload = calloc(big, 1);
        CHECK(payload != NULL);
        r = wait_task(pool, submit_str(pool, "pid"));
        victim = billiard_result_pid(r);
        billiard_result_free(r);
        CHECK(kill(victim, SIGSTOP) == 0);
        CHECK_OK(billiard_pool_submit(pool, payload, big, NULL, &id));
        free(payload);
        sleep_ms(50);
        CHECK(kill(victim, SIGKILL) == 0);
        r = wait_task(pool, id);
        /* It ran on the replacement, whose handler rejects such a long input. */
        CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_FAILED);
        CHECK(data_is(r, "input too long"));
        CHECK(billiard_result_pid(r) != victim);
        billiard_result_free(r);
    }

    billiard_pool_free(pool);
    CHECK(count_children() == 0);
    printf("worker_lost: ok\n");
    return 0;
}
