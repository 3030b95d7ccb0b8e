/* Terminate and free with tasks queued and running: every task gets exactly
 * one outcome, then no child or zombie of the pool is left (/proc), and the
 * host's fd count is back to what it was before billiard_pool_new. */
#include "scripted.h"
#include "util.h"

#define TASKS 20

int main(void) {
    billiard_config *cfg = make_config(3, scripted, NULL);
    billiard_pool *pool = NULL;
    billiard_result *r = NULL;
    int fds_before, i, ok = 0, abandoned = 0, round;
    uint64_t ids[TASKS];

    fds_before = count_fds();
    for (round = 0; round < 2; round++) {
        CHECK_OK(billiard_pool_new(cfg, &pool));
        CHECK(count_children() == pool_children(3));
        for (i = 0; i < TASKS; i++) ids[i] = submit_str(pool, i < 2 ? "echo:quick" : "sleep:60000");
        for (i = 0; i < 2; i++) {
            r = wait_task(pool, ids[i]);
            CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
            billiard_result_free(r);
            ok++;
        }
        if (round == 0) {
            /* terminate, then collect the rest: each ends ABANDONED once. */
            CHECK_OK(billiard_pool_terminate(pool));
            CHECK(count_children() == 0);
            for (i = 2; i < TASKS; i++) {
                r = wait_task(pool, ids[i]);
                CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_ABANDONED);
                CHECK(data_has(r, "terminated"));
                billiard_result_free(r);
                abandoned++;
            }
            CHECK_RC(billiard_pool_wait(pool, -1, &r), BILLIARD_ENOTFOUND);
        }
        /* round 1: free straight away with 18 tasks in flight. */
        billiard_pool_free(pool);
        CHECK(count_children() == 0);
        CHECK(count_fds() == fds_before);
    }
    billiard_config_free(cfg);
    CHECK(ok == 4 && abandoned == TASKS - 2);
    printf("free_in_flight: no child, no zombie, %d fds as before\n", fds_before);
    return 0;
}
