/* poll_fd: drive a pool from an event loop. billiard_pool_fd() is readable
 * while results wait; drain them with billiard_pool_wait(pool, 0, ...).
 *
 *   make examples && ./build/poll_fd */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "billiard.h"

static int reverse(void *ctx, const uint8_t *in, size_t len, billiard_reply *reply) {
    char out[256];
    size_t i;
    (void)ctx;
    if (len > sizeof out) {
        billiard_reply_error(reply, "input longer than 256 bytes");
        return 1;
    }
    for (i = 0; i < len; i++) out[i] = (char)in[len - 1 - i];
    return billiard_reply_write(reply, out, len);
}

int main(void) {
    const char *words[] = {"stressed", "drawer", "diaper", "repaid", "evil", "gateman"};
    size_t n = sizeof words / sizeof words[0], i, done = 0;
    billiard_config *cfg = NULL;
    billiard_pool *pool = NULL;
    struct pollfd pfd;

    billiard_config_new(&cfg);
    billiard_config_set_workers(cfg, 2);
    billiard_config_set_handler(cfg, reverse, NULL);
    if (billiard_pool_new(cfg, &pool) != BILLIARD_OK) {
        fprintf(stderr, "pool: %s\n", billiard_last_error());
        return 1;
    }
    billiard_config_free(cfg);
    for (i = 0; i < n; i++) billiard_pool_submit(pool, words[i], strlen(words[i]), NULL, NULL);

    pfd.fd = billiard_pool_fd(pool);
    pfd.events = POLLIN;
    while (done < n) {
        billiard_result *r = NULL;
        if (poll(&pfd, 1, 10000) <= 0) {
            fprintf(stderr, "no result within 10 s\n");
            return 1;
        }
        /* Drain everything that is ready, then go back to poll. */
        while (billiard_pool_wait(pool, 0, &r) == BILLIARD_OK) {
            size_t len = 0;
            const uint8_t *data = billiard_result_data(r, &len);
            printf("task %llu: %.*s\n", (unsigned long long)billiard_result_task_id(r), (int)len,
                   (const char *)data);
            billiard_result_free(r);
            done++;
        }
    }
    billiard_pool_free(pool);
    return 0;
}
