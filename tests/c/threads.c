/* 8 host threads submit and wait at once: first each waits for its own tasks
 * by id, then all take whatever result arrives. Either way every task gets
 * exactly one result, with its own tag and data. */
#include <pthread.h>
#include <stdint.h>

#include "scripted.h"
#include "util.h"

#define THREADS 8
#define PER_THREAD 200

static billiard_pool *pool;
static int by_id; /* phase: 1 = wait by id, 0 = wait for any */
static unsigned char seen[THREADS * PER_THREAD + 1];
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void record(billiard_result *r) {
    uint64_t tag = billiard_result_tag(r);
    char want[64];
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    CHECK(tag >= 1 && tag <= THREADS * PER_THREAD);
    snprintf(want, sizeof want, "%llu", (unsigned long long)tag);
    CHECK(data_is(r, want));
    pthread_mutex_lock(&seen_lock);
    CHECK(seen[tag] == 0); /* delivered once */
    seen[tag] = 1;
    pthread_mutex_unlock(&seen_lock);
    billiard_result_free(r);
}

static void *run(void *arg) {
    int t = (int)(intptr_t)arg, i;
    uint64_t ids[PER_THREAD];
    billiard_task_opts opts;
    char text[64];
    CHECK_OK(billiard_task_opts_init(&opts));
    for (i = 0; i < PER_THREAD; i++) {
        opts.tag = (uint64_t)(t * PER_THREAD + i + 1);
        snprintf(text, sizeof text, "echo:%llu", (unsigned long long)opts.tag);
        CHECK_OK(billiard_pool_submit(pool, text, strlen(text), &opts, &ids[i]));
    }
    for (i = 0; i < PER_THREAD; i++) {
        billiard_result *r = NULL;
        if (by_id) {
            CHECK_OK(billiard_task_wait(pool, ids[i], 30000, &r));
            CHECK(billiard_result_task_id(r) == ids[i]);
            record(r);
        } else {
            int rc = billiard_pool_wait(pool, 30000, &r);
            if (rc == BILLIARD_ENOTFOUND) break; /* others took the rest */
            CHECK_OK(rc);
            record(r);
        }
    }
    return NULL;
}

int main(void) {
    billiard_config *cfg = make_config(4, scripted, NULL);
    pthread_t th[THREADS];
    billiard_result *r = NULL;
    int i, total;
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);
    for (by_id = 1; by_id >= 0; by_id--) {
        memset(seen, 0, sizeof seen);
        for (i = 0; i < THREADS; i++)
            CHECK(pthread_create(&th[i], NULL, run, (void *)(intptr_t)i) == 0);
        for (i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
        /* Anything the "any" waiters left is still collectable, once. */
        while (billiard_pool_wait(pool, 0, &r) == BILLIARD_OK) record(r);
        for (total = 0, i = 1; i <= THREADS * PER_THREAD; i++) total += seen[i];
        CHECK(total == THREADS * PER_THREAD);
        CHECK_RC(billiard_pool_wait(pool, -1, &r), BILLIARD_ENOTFOUND);
    }
    billiard_pool_free(pool);
    CHECK(count_children() == 0);
    printf("threads: %d results per phase, each once\n", THREADS * PER_THREAD);
    return 0;
}
