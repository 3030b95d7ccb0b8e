/* The host's own SIGCHLD handler and its own child process are left alone:
 * the pool installs no handler, does not reap the host's child, and a host
 * handler that reaps only its own pid works while workers die and restart. */
#include <signal.h>
#include <sys/wait.h>

#include "scripted.h"
#include "util.h"

static volatile sig_atomic_t sigchld_count;

static void on_sigchld(int sig) {
    (void)sig;
    sigchld_count++;
}

int main(void) {
    struct sigaction sa, now;
    billiard_config *cfg;
    billiard_pool *pool = NULL;
    billiard_result *r;
    pid_t own;
    int status = 0, i, pipefd[2];
    char go = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);

    /* The host's own child: exits 7 once told to, after the pool has run. */
    CHECK(pipe(pipefd) == 0);
    own = fork();
    CHECK(own >= 0);
    if (own == 0) {
        close(pipefd[1]);
        if (read(pipefd[0], &go, 1) < 0) _exit(1);
        _exit(7);
    }
    close(pipefd[0]);

    cfg = make_config(2, scripted, NULL);
    CHECK_OK(billiard_pool_new(cfg, &pool));
    billiard_config_free(cfg);
    for (i = 0; i < 3; i++) {
        r = wait_task(pool, submit_str(pool, "exit:5"));
        CHECK(billiard_result_outcome(r) == BILLIARD_OUTCOME_WORKER_LOST);
        CHECK(billiard_result_exit_code(r) == 5);
        billiard_result_free(r);
    }
    r = wait_task(pool, submit_str(pool, "echo:fine"));
    CHECK(data_is(r, "fine"));
    billiard_result_free(r);

    /* Our handler is still installed. */
    CHECK(sigaction(SIGCHLD, NULL, &now) == 0);
    CHECK(now.sa_handler == on_sigchld);
    /* Our child is still ours to reap, with its own status. */
    CHECK(waitpid(own, &status, WNOHANG) == 0);
    CHECK(write(pipefd[1], "x", 1) == 1);
    CHECK(waitpid(own, &status, 0) == own);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);

    billiard_pool_free(pool);
    CHECK(count_children() == 0);
    CHECK(sigchld_count >= 1); /* the host saw its own child's SIGCHLD */
    printf("host_signals: handler kept, own child reaped by the host (SIGCHLD seen %d times)\n",
           (int)sigchld_count);
    return 0;
}
