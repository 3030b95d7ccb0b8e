/* The C side of WorkerMain: adapts the exported Go function to the
 * billiard_handler signature (cgo forbids definitions in a preamble of a
 * file with //export). */
#include <billiard.h>

#include "_cgo_export.h"

static int handle(void *ctx, const uint8_t *input, size_t len, billiard_reply *reply) {
    (void)ctx;
    return billiardGoHandle((uint8_t *)input, len, reply);
}

int billiardRunWorker(void) { return billiard_worker_main(handle, NULL); }

static int after_fork(void *ctx) {
    (void)ctx;
    return billiardGoAfterFork();
}

static void at_exit(void *ctx) {
    (void)ctx;
    billiardGoAtExit();
}

int billiardRunWorkerHooks(void) {
    billiard_worker_hooks hooks = {0};
    hooks.struct_size = sizeof hooks;
    hooks.after_fork = after_fork;
    hooks.at_exit = at_exit;
    return billiard_worker_main_hooks(handle, NULL, &hooks);
}
