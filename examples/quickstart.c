/* quickstart: a pool of worker processes that count the words of each input.
 *
 *   make quickstart
 *
 * Each task is a byte buffer; the handler runs in a worker process and
 * replies with a byte buffer. Every task gets exactly one result. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "billiard.h"

/* Runs inside a worker process, once per task. */
static int count_words(void *ctx, const uint8_t *in, size_t len, billiard_reply *reply) {
    size_t i, words = 0;
    int in_word = 0;
    char out[64];
    (void)ctx;
    for (i = 0; i < len; i++) {
        if (isspace(in[i])) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    snprintf(out, sizeof out, "%zu words (worker %d)", words, (int)getpid());
    return billiard_reply_write(reply, out, strlen(out));
}

int main(void) {
    const char *inputs[] = {
        "the quick brown fox",
        "jumps over the lazy dog",
        "a supervised process pool",
        "every task gets exactly one result",
    };
    size_t n = sizeof inputs / sizeof inputs[0], i;
    billiard_config *cfg = NULL;
    billiard_pool *pool = NULL;
    uint64_t ids[4];

    if (billiard_abi_version() != BILLIARD_ABI_VERSION) {
        fprintf(stderr, "libbilliard ABI %d, header %d\n", billiard_abi_version(), BILLIARD_ABI_VERSION);
        return 1;
    }
    billiard_config_new(&cfg);
    billiard_config_set_workers(cfg, 2);
    billiard_config_set_handler(cfg, count_words, NULL);
    if (billiard_pool_new(cfg, &pool) != BILLIARD_OK) {
        fprintf(stderr, "pool: %s\n", billiard_last_error());
        return 1;
    }
    billiard_config_free(cfg);

    for (i = 0; i < n; i++)
        billiard_pool_submit(pool, inputs[i], strlen(inputs[i]), NULL, &ids[i]);

    for (i = 0; i < n; i++) {
        billiard_result *r = NULL;
        size_t len = 0;
        const uint8_t *data;
        if (billiard_task_wait(pool, ids[i], -1, &r) != BILLIARD_OK) {
            fprintf(stderr, "wait: %s\n", billiard_last_error());
            return 1;
        }
        data = billiard_result_data(r, &len);
        printf("task %llu \"%s\": %s: %.*s\n", (unsigned long long)ids[i], inputs[i],
               billiard_result_outcome(r) == BILLIARD_OUTCOME_OK ? "ok" : "failed", (int)len,
               (const char *)data);
        billiard_result_free(r);
    }
    billiard_pool_free(pool); /* no worker, no zombie left after this */
    return 0;
}
