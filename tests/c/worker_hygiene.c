/* Workers start clean: inherited fds are closed except the keep list, signal
 * dispositions are reset and the mask is empty, even when the host ignores
 * and blocks signals; and workers exit when the host is killed. */
#define _DEFAULT_SOURCE /* syscall() */
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "scripted.h"
#include "util.h"

static int has_fd(const billiard_result *r, int fd) {
    char item[16];
    size_t len = 0;
    const uint8_t *p = billiard_result_data(r, &len);
    int n = snprintf(item, sizeof item, "%d,", fd);
    size_t i;
    for (i = 0; i + (size_t)n <= len; i++)
        if ((i == 0 || p[i - 1] == ',') && memcmp(p + i, item, (size_t)n) == 0) return 1;
    return 0;
}

/* Ignores signal `sig` with the raw system call: glibc's sigaction refuses
 * the signals it reserves (32, 33), which posix_spawn then cannot reset. */
static void ignore_raw(int sig) {
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long mask;
    } action = {SIG_IGN, 0, NULL, 0};
    CHECK(syscall(SYS_rt_sigaction, sig, &action, NULL, 8) == 0);
}

static billiard_pool *start(const int *keep, size_t nkeep) {
    billiard_config *cfg = make_config(1, scripted, NULL);
    billiard_pool *pool = NULL;
    CHECK_OK(billiard_config_set_keep_fds(cfg, keep, nkeep));
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);
    return pool;
}

int main(void) {
    billiard_pool *pool;
    billiard_result *r;
    sigset_t block;
    /* Not CLOEXEC: a careless host. High numbers, which no start method
     * gives to the worker's own fds. */
    int leaked = fcntl(open("/dev/null", O_RDONLY), F_DUPFD, 100);
    int kept = fcntl(open("/dev/null", O_RDONLY), F_DUPFD, 110);
    int report[2], i;
    pid_t host;
    int workers[1];

    CHECK(leaked > 2 && kept > 2);
    signal(SIGTERM, SIG_IGN);
    ignore_raw(32);
    ignore_raw(33);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    CHECK(pthread_sigmask(SIG_BLOCK, &block, NULL) == 0);

    pool = start(&kept, 1);
    r = wait_task(pool, submit_str(pool, "fds"));
    CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_OK);
    CHECK(!has_fd(r, leaked));
    CHECK(has_fd(r, kept));
    CHECK(has_fd(r, 0) && has_fd(r, 1) && has_fd(r, 2));
    billiard_result_free(r);

    r = wait_task(pool, submit_str(pool, "signals"));
    CHECK(data_has(r, "SigBlk:\t0000000000000000"));
    CHECK(data_has(r, "SigIgn:\t0000000000000000"));
    billiard_result_free(r);
    billiard_pool_free(pool);

    /* Parent death: a sub-host starts a pool, gives its worker a 60 s task,
     * reports the worker's pid and is killed. The busy worker is not reading
     * its channel, so only the parent-death signal can stop it in time. */
    CHECK(pipe(report) == 0);
    host = fork();
    CHECK(host >= 0);
    if (host == 0) {
        close(report[0]);
        pool = start(NULL, 0);
        r = wait_task(pool, submit_str(pool, "pid"));
        workers[0] = billiard_result_pid(r);
        submit_str(pool, "sleep:60000");
        sleep_ms(100); /* let the worker take it */
        if (write(report[1], workers, sizeof workers) != sizeof workers) _exit(1);
        for (;;) pause();
    }
    close(report[1]);
    CHECK(read(report[0], workers, sizeof workers) == sizeof workers);
    CHECK(kill(workers[0], 0) == 0);
    CHECK(kill(host, SIGKILL) == 0);
    CHECK(waitpid(host, NULL, 0) == host);
    /* The orphaned worker dies within 10 s (parent-death signal): gone, or a zombie. */
    for (i = 0; i < 2000; i++) {
        char path[64], state = 0, buf[256];
        FILE *f;
        snprintf(path, sizeof path, "/proc/%d/stat", workers[0]);
        f = fopen(path, "r");
        if (!f) break;
        if (fgets(buf, sizeof buf, f)) sscanf(strrchr(buf, ')') + 2, "%c", &state);
        fclose(f);
        if (state == 'Z') break;
        sleep_ms(5);
    }
    CHECK(i < 2000);
    printf("worker_hygiene: fds closed, signals reset, orphaned worker exited\n");
    return 0;
}
