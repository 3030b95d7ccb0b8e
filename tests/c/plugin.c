/* A handler in a shared object, for the billiard-worker plugin runner.
 * It does not link libbilliard: billiard-worker provides the reply
 * functions. "who" replies "<worker pid> <pid that ran plugin_init>";
 * "die" exits with code 5; anything else is echoed in reverse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billiard.h"

static int initialized_by;

int plugin_init(void *ctx) {
    (void)ctx;
    initialized_by = (int)getpid();
    return 0;
}

int plugin_fail_init(void *ctx) {
    (void)ctx;
    return 7;
}

int plugin_handle(void *ctx, const uint8_t *in, size_t len, billiard_reply *reply) {
    char out[64];
    size_t i;
    (void)ctx;
    if (len == 3 && memcmp(in, "who", 3) == 0) {
        snprintf(out, sizeof out, "%d %d", (int)getpid(), initialized_by);
        return billiard_reply_write(reply, out, strlen(out));
    }
    if (len == 3 && memcmp(in, "die", 3) == 0) exit(5);
    for (i = 0; i < len; i++) {
        uint8_t c = in[len - 1 - i];
        if (billiard_reply_write(reply, &c, 1) != BILLIARD_OK) return 1;
    }
    return 0;
}
