/* The worker program of the C tests' SPAWN and FORKSERVER runs: the same
 * scripted handler as FORK workers, served by billiard_worker_main (with
 * the test hooks when TEST_HOOKS is set; they fail when
 * TEST_HOOK_FAIL is set too).
 * "init" replies the pid of the process that ran this program's start-up
 * code: the worker itself under SPAWN, the fork server under FORKSERVER. */
#include "scripted.h"

static int started_by;

static int handler(void *ctx, const uint8_t *in, size_t len, billiard_reply *reply) {
    char out[32];
    if (len == 4 && memcmp(in, "init", 4) == 0) {
        snprintf(out, sizeof out, "%d", started_by);
        return billiard_reply_write(reply, out, strlen(out));
    }
    return scripted(ctx, in, len, reply);
}

int main(void) {
    int rc;
    started_by = (int)getpid(); /* the "initializer": runs once per program start */
    if (getenv("TEST_HOOKS") != NULL) {
        billiard_worker_hooks hooks;
        memset(&hooks, 0, sizeof hooks);
        hooks.struct_size = sizeof hooks;
        hooks.after_fork = test_after_fork;
        hooks.at_exit = test_at_exit;
        hooks.ctx = getenv("TEST_HOOK_FAIL") != NULL ? (void *)&started_by : NULL;
        rc = billiard_worker_main_hooks(handler, NULL, &hooks);
    } else {
        rc = billiard_worker_main(handler, NULL);
    }
    if (rc < 0) {
        fprintf(stderr, "scripted_worker: %s\n", billiard_last_error());
        return 2;
    }
    return rc;
}
