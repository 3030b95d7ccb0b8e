/* NULL pointers, bad lengths, bad ids and bad values on every function give
 * codes (and a last-error message), never a crash. */
#include "scripted.h"
#include "util.h"

int main(void) {
    billiard_config *cfg = NULL;
    billiard_pool *pool = NULL;
    billiard_result *r = (billiard_result *)&cfg; /* garbage: must be reset to NULL */
    billiard_task_opts opts;
    uint64_t id = 77;
    size_t len = 5;
    int fds[1] = {-4};

    /* Errors and version. */
    CHECK(strcmp(billiard_strerror(BILLIARD_EINVAL), "invalid argument") == 0);
    CHECK(strcmp(billiard_strerror(12345), "unknown error") == 0);
    CHECK(strcmp(billiard_errname(BILLIARD_ETIMEDOUT), "BILLIARD_ETIMEDOUT") == 0);
    CHECK(billiard_abi_version() == BILLIARD_ABI_VERSION);
    CHECK(billiard_version() != NULL);

    /* Config. */
    CHECK_RC(billiard_config_new(NULL), BILLIARD_EINVAL);
    CHECK(strstr(billiard_last_error(), "out is NULL") != NULL);
    billiard_config_free(NULL);
    CHECK_RC(billiard_config_set_workers(NULL, 1), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_start_method(NULL, BILLIARD_START_FORK), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_handler(NULL, scripted, NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_initializer(NULL, NULL, NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_close_inherited_fds(NULL, true), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_keep_fds(NULL, NULL, 0), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_max_frame_size(NULL, 4096), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_max_queued(NULL, 1), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_prefetch(NULL, 1), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_start_timeout(NULL, 10), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_soft_time_limit(NULL, 10), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_hard_time_limit(NULL, 10), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_kill_grace(NULL, 10), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_max_tasks_per_worker(NULL, 1, 0), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_soft_memory_limit(NULL, 1 << 20), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_hard_memory_limit(NULL, 1 << 20), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_restart_intensity(NULL, 1, 1000), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_event_callback(NULL, NULL, NULL), BILLIARD_EINVAL);

    CHECK_OK(billiard_config_new(&cfg));
    CHECK_RC(billiard_config_set_handler(cfg, NULL, NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_start_method(cfg, 99), BILLIARD_EINVAL);
    /* SPAWN needs a worker program, and no handler of the host's. */
    CHECK_OK(billiard_config_set_start_method(cfg, BILLIARD_START_SPAWN));
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_EINVAL);
    CHECK(strstr(billiard_last_error(), "worker program") != NULL);
    CHECK_OK(billiard_config_set_start_method(cfg, BILLIARD_START_FORK));
    {
        const char *argv[2] = {"worker", NULL};
        CHECK_RC(billiard_config_set_worker_argv(NULL, argv, 1), BILLIARD_EINVAL);
        CHECK_RC(billiard_config_set_worker_argv(cfg, NULL, 1), BILLIARD_EINVAL);
        CHECK_RC(billiard_config_set_worker_argv(cfg, argv, 0), BILLIARD_EINVAL);
        CHECK_RC(billiard_config_set_worker_argv(cfg, argv, 2), BILLIARD_EINVAL); /* argv[1] NULL */
    }
    CHECK_RC(billiard_config_set_worker_env(cfg, "BILLIARD_TASK_FD", "3"), BILLIARD_EINVAL);
    CHECK(strstr(billiard_last_error(), "reserved") != NULL);
    CHECK_RC(billiard_config_set_worker_env(cfg, "A=B", "1"), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_worker_env(cfg, "", "1"), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_worker_env(cfg, NULL, "1"), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_worker_env(NULL, "A", "1"), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_worker_env_inherit(NULL, true), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_worker_cwd(NULL, NULL), BILLIARD_EINVAL);
    /* The worker main outside a pool: an error at once, never a hang. */
    CHECK_RC(billiard_worker_main(NULL, NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_worker_main(scripted, NULL), BILLIARD_EINVAL);
    CHECK(strstr(billiard_last_error(), "not started by a billiard pool") != NULL);
    CHECK_RC(billiard_config_set_keep_fds(cfg, NULL, 3), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_keep_fds(cfg, fds, 1), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_max_frame_size(cfg, 3), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_start_timeout(cfg, -7), BILLIARD_EINVAL);
    CHECK_RC(billiard_config_set_prefetch(cfg, 0), BILLIARD_EINVAL);
    CHECK(strstr(billiard_last_error(), "prefetch") != NULL);
    CHECK_RC(billiard_config_set_prefetch(cfg, 4097), BILLIARD_EINVAL);
    CHECK_OK(billiard_config_set_prefetch(cfg, 4));
    /* A config without a handler cannot start a FORK pool. */
    CHECK_RC(billiard_pool_new(cfg, &pool), BILLIARD_EINVAL);
    CHECK(pool == NULL);
    CHECK(strstr(billiard_last_error(), "handler") != NULL);
    CHECK_OK(billiard_config_set_handler(cfg, scripted, NULL));
    CHECK_OK(billiard_config_set_workers(cfg, 1));
    CHECK_OK(billiard_config_set_max_frame_size(cfg, 64));
    CHECK_RC(billiard_pool_new(NULL, &pool), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_new(cfg, NULL), BILLIARD_EINVAL);
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);

    /* Pool functions with a NULL pool. */
    CHECK_RC(billiard_pool_submit(NULL, "x", 1, NULL, &id), BILLIARD_EINVAL);
    CHECK(id == 0);
    CHECK_RC(billiard_pool_wait(NULL, 0, &r), BILLIARD_EINVAL);
    CHECK_RC(billiard_task_wait(NULL, 1, 0, &r), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_fd(NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_close(NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_join(NULL, 0), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_terminate(NULL), BILLIARD_EINVAL);
    billiard_pool_free(NULL);

    /* Bad buffers, options, ids, timeouts. */
    CHECK_RC(billiard_pool_submit(pool, NULL, 4, NULL, &id), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_submit(pool, "0123456789012345678901234567890123456789012345678901234567890",
                                  61, NULL, &id),
             BILLIARD_EINVAL); /* larger than the 64-byte frame */
    CHECK(strstr(billiard_last_error(), "maximum frame size") != NULL);
    memset(&opts, 0, sizeof opts);
    CHECK_RC(billiard_pool_submit(pool, "echo:x", 6, &opts, &id), BILLIARD_EINVAL);
    CHECK(strstr(billiard_last_error(), "billiard_task_opts_init") != NULL);
    CHECK_RC(billiard_task_opts_init(NULL), BILLIARD_EINVAL);
    CHECK_OK(billiard_task_opts_init(&opts));
    opts.flags = 0x80;
    CHECK_RC(billiard_pool_submit(pool, "echo:x", 6, &opts, &id), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_wait(pool, 0, NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_wait(pool, -2, &r), BILLIARD_EINVAL);
    CHECK(r == NULL);
    CHECK_RC(billiard_pool_wait(pool, -1, &r), BILLIARD_ENOTFOUND); /* nothing pending: no hang */
    CHECK_RC(billiard_task_wait(pool, 424242, -1, &r), BILLIARD_ENOTFOUND);
    CHECK_RC(billiard_task_wait(pool, 1, 0, NULL), BILLIARD_EINVAL);
    CHECK_RC(billiard_pool_join(pool, 0), BILLIARD_EINVAL); /* not closed */
    CHECK(billiard_pool_fd(pool) > 2);

    /* (NULL, 0) is an empty payload; a NULL task_id is allowed. */
    CHECK_OK(billiard_pool_submit(pool, NULL, 0, NULL, NULL));
    CHECK_OK(billiard_pool_wait(pool, 20000, &r));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_FAILED); /* "" is an unknown command */
    billiard_result_free(r);
    r = NULL;

    /* Result accessors on NULL. */
    CHECK(billiard_result_task_id(NULL) == 0);
    CHECK(billiard_result_tag(NULL) == 0);
    CHECK(billiard_result_outcome(NULL) == BILLIARD_EINVAL);
    CHECK(billiard_result_data(NULL, &len) == NULL && len == 0);
    CHECK(billiard_result_data(NULL, NULL) == NULL);
    CHECK(billiard_result_pid(NULL) == 0);
    CHECK(billiard_result_exit_code(NULL) == -1);
    CHECK(billiard_result_signal(NULL) == 0);
    CHECK(billiard_result_queued_us(NULL) == 0);
    CHECK(billiard_result_running_us(NULL) == 0);
    billiard_result_free(NULL);

    /* Worker-side functions with NULL. */
    CHECK_RC(billiard_reply_write(NULL, "x", 1), BILLIARD_EINVAL);
    CHECK_RC(billiard_reply_error(NULL, "x"), BILLIARD_EINVAL);

    /* Supervision calls with bad arguments. */
    {
        billiard_stats stats;
        billiard_worker_info info[2];
        size_t n = 99;
        CHECK_RC(billiard_task_cancel(NULL, 1), BILLIARD_EINVAL);
        CHECK_RC(billiard_task_cancel(pool, 987654321), BILLIARD_ENOTFOUND);
        CHECK_RC(billiard_pool_resize(NULL, 1), BILLIARD_EINVAL);
        CHECK_RC(billiard_pool_resize(pool, 0), BILLIARD_EINVAL);
        CHECK_RC(billiard_pool_resize(pool, 100000), BILLIARD_EINVAL);
        CHECK_RC(billiard_pool_restart(NULL), BILLIARD_EINVAL);
        CHECK_RC(billiard_pool_stats(NULL, &stats), BILLIARD_EINVAL);
        CHECK_RC(billiard_pool_stats(pool, NULL), BILLIARD_EINVAL);
        stats.struct_size = 3;
        CHECK_RC(billiard_pool_stats(pool, &stats), BILLIARD_EINVAL);
        CHECK(strstr(billiard_last_error(), "struct_size") != NULL);
        CHECK_RC(billiard_pool_workers(NULL, info, 2, &n), BILLIARD_EINVAL);
        CHECK_RC(billiard_pool_workers(pool, info, 2, NULL), BILLIARD_EINVAL);
        CHECK_RC(billiard_pool_workers(pool, NULL, 2, &n), BILLIARD_EINVAL);
        CHECK(n == 0);
        CHECK(!billiard_worker_soft_limit_reached()); /* not in a worker */
    }

    /* Use after close and terminate gives codes. */
    CHECK_OK(billiard_pool_close(pool));
    CHECK_OK(billiard_pool_close(pool));
    CHECK_RC(billiard_pool_submit(pool, "echo:x", 6, NULL, &id), BILLIARD_ECLOSED);
    CHECK_OK(billiard_pool_join(pool, 20000));
    CHECK_OK(billiard_pool_terminate(pool));
    CHECK_RC(billiard_pool_submit(pool, "echo:x", 6, NULL, &id), BILLIARD_ECLOSED);
    CHECK_RC(billiard_pool_resize(pool, 2), BILLIARD_ECLOSED);
    CHECK_RC(billiard_pool_restart(pool), BILLIARD_ECLOSED);
    billiard_pool_free(pool);
    CHECK(count_children() == 0);
    printf("bad_args: ok\n");
    return 0;
}
