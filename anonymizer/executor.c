/*
 * executor.c: worker and helper processes (see executor.h).
 */
#include "executor.h"
#include "ax.h"
#include "ipc.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* At most this many worker processes at once, and helpers per job. */
#define MAX_SLOTS 64

/*
 * The tokens, in memory every process of the run shares: each process that
 * works holds one.  What a job's helpers hold is noted by the job's slot,
 * so that the parent can give it back when the job dies with them.
 */
struct exec_shared {
    sem_t tokens;
    int helper_tokens[MAX_SLOTS];
};

/* What a worker sends last: its outcome and totals, then the job's own bytes. */
struct result_head {
    int32_t outcome;
    struct run_totals tot;
};

struct worker {
    bool active;
    pid_t pid;
    int fd;
    size_t tenant;
    struct ipc_reader in;
    bool have_result;
    struct result_head head;
    char *data;
    size_t len;
};

struct executor {
    const struct app *app;
    job_fn fn;
    const void *arg;
    struct exec_shared *shared; /* NULL when shared memory could not be had: no helper then */
    struct worker *workers;
    size_t nworkers;
    struct progress_board *board;
    size_t next;   /* the next tenant to start */
    size_t active; /* workers running */
    bool stop_passed_on;
};

struct helper {
    bool active;
    bool eof; /* its pipe is closed: it ended once what it sent is taken */
    pid_t pid;
    int fd;
    struct ipc_reader in;
};

struct helper_pool {
    struct exec_shared *shared;
    int slot; /* the job's worker slot */
    struct helper helpers[MAX_SLOTS];
    size_t n;
    bool stop_passed_on;
};

/* The seconds between progress log lines when stderr is not a terminal: $ANONYMIZER_PROGRESS_INTERVAL (tests). */
static double progress_interval(void)
{
    const char *env = getenv("ANONYMIZER_PROGRESS_INTERVAL");
    double v = env && *env ? atof(env) : 0;
    return v > 0 ? v : 30.0;
}

/* -- the worker process ------------------------------------------------------------------- */

/* Which configuration entries the tenant matched (app.h): applies, then matched, a byte each. */
static void send_entries(const struct app *app, const struct app_tenant *at, int fd)
{
    size_t n = app->cfg->nforms + app->cfg->ncards;
    char *buf = ax_calloc(2 * n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        buf[i] = at->hits.applies[i];
        buf[n + i] = at->hits.matched[i];
    }
    ipc_send(fd, IPC_ENTRIES, buf, 2 * n);
    free(buf);
}

/* In the child: one tenant's job, then exit.  It dies with the parent, as a single process would (its
 * transaction rolls back). */
static void run_worker(struct executor *x, struct worker *w, int fd, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(EXIT_TEMPFAIL);
    for (size_t i = 0; i < x->nworkers; i++)
        if (x->workers[i].active && &x->workers[i] != w)
            close(x->workers[i].fd);
    app_role = APP_ROLE_WORKER;
    struct helper_pool pool = {.shared = x->shared, .slot = (int)(w - x->workers)};
    struct job_ctx ctx = {.arg = x->arg, .progress = progress_new(fd), .helpers = &pool};
    progress_capture_log(ctx.progress);
    struct app_tenant *at = &x->app->tenants[w->tenant];
    struct result_head head = {.outcome = (int32_t)x->fn(x->app, at, &ctx)};
    head.tot = ctx.tot;
    send_entries(x->app, at, fd);
    char *buf = ax_malloc(sizeof head + ctx.result_len);
    memcpy(buf, &head, sizeof head);
    if (ctx.result_len)
        memcpy(buf + sizeof head, ctx.result, ctx.result_len);
    ipc_send(fd, IPC_RESULT, buf, sizeof head + ctx.result_len);
    free(buf);
    free(ctx.result);
    log_set_sink(NULL, NULL);
    progress_free(ctx.progress);
    close(fd);
    exit(0);
}

/* -- the parent ---------------------------------------------------------------------------- */

/* Starts tenant x->next in w; false when it could not be started (the tenant fails). */
static bool spawn(struct executor *x, struct worker *w)
{
    int fds[2];
    const char *name = x->app->tenants[x->next].cfg->name;
    if (pipe(fds) != 0) {
        log_error("%s: cannot start a worker: %s", name, strerror(errno));
        return false;
    }
    fflush(stdout);
    memset(w, 0, sizeof *w);
    w->tenant = x->next;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("%s: cannot start a worker: %s", name, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        run_worker(x, w, fds[1], parent);
    }
    close(fds[1]);
    w->active = true;
    w->pid = pid;
    w->fd = fds[0];
    progress_board_start(x->board, (size_t)(w - x->workers), name);
    return true;
}

/* The entries a tenant matched, as its worker sent them, into the parent's app_tenant. */
static void receive_entries(const struct executor *x, const struct worker *w, const char *p, size_t len)
{
    size_t n = x->app->cfg->nforms + x->app->cfg->ncards;
    struct app_tenant *at = &x->app->tenants[w->tenant];
    if (len != 2 * n)
        return;
    for (size_t i = 0; i < n; i++) {
        at->hits.applies[i] |= p[i] != 0;
        at->hits.matched[i] |= p[n + i] != 0;
    }
}

static void handle_message(struct executor *x, struct worker *w, uint32_t type, const char *p, size_t len)
{
    size_t slot = (size_t)(w - x->workers);
    switch (type) {
    case IPC_LOG:
        if (len >= sizeof(int32_t)) {
            int32_t level;
            memcpy(&level, p, sizeof level);
            log_relay((enum log_level)level, p + sizeof level, len - sizeof level);
        }
        break;
    case IPC_PROGRESS:
        if (len == sizeof(struct progress_msg)) {
            struct progress_msg m;
            memcpy(&m, p, len);
            progress_board_update(x->board, slot, &m);
        }
        break;
    case IPC_ENTRIES: receive_entries(x, w, p, len); break;
    case IPC_STDOUT: progress_board_stdout(x->board, p, len); break;
    case IPC_RESULT:
        if (len >= sizeof w->head) {
            memcpy(&w->head, p, sizeof w->head);
            w->len = len - sizeof w->head;
            w->data = ax_malloc(w->len + 1);
            memcpy(w->data, p + sizeof w->head, w->len);
            w->have_result = true;
        }
        break;
    }
}

/* Reads what the worker sent; false at end of file. */
static bool read_worker(struct executor *x, struct worker *w)
{
    int r = ipc_read(&w->in, w->fd);
    uint32_t type;
    const char *p;
    size_t len;
    while (r > 0 && ipc_next(&w->in, &type, &p, &len))
        handle_message(x, w, type, p, len);
    return r != 0;
}

/* A worker ended: its result, its tokens given back (its own and those of helpers that died with it). */
static void reap(struct executor *x, struct worker *w, struct exec_result *out, struct run_totals *tot)
{
    int status = 0;
    const char *name = x->app->tenants[w->tenant].cfg->name;
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
        ;
    close(w->fd);
    if (x->shared) {
        int slot = (int)(w - x->workers);
        for (int k = 0; k <= x->shared->helper_tokens[slot]; k++)
            sem_post(&x->shared->tokens);
        x->shared->helper_tokens[slot] = 0;
    }
    struct exec_result *r = &out[w->tenant];
    if (w->have_result) {
        r->outcome = (enum tenant_outcome)w->head.outcome;
        r->data = w->data;
        r->len = w->len;
        run_totals_add(tot, &w->head.tot);
    } else if (WIFSIGNALED(status) && app_interrupted) {
        r->outcome = TENANT_INTERRUPTED;
    } else {
        /* a crash: its transaction rolled back, the next run completes it */
        if (WIFSIGNALED(status))
            log_error("%s: the worker died of signal %d", name, WTERMSIG(status));
        else
            log_error("%s: the worker exited with status %d without a result", name, WEXITSTATUS(status));
        r->outcome = TENANT_FAILED;
        free(w->data);
    }
    w->data = NULL;
    ipc_reader_free(&w->in);
    w->active = false;
    x->active--;
    progress_board_done(x->board, (size_t)(w - x->workers));
}

/* Starts workers while tenants are left, slots and tokens free, and no stop was asked for. */
static void start_workers(struct executor *x, struct exec_result *out)
{
    size_t n = x->app->ntenants;
    for (size_t i = 0; i < x->nworkers && x->next < n; i++) {
        if (x->workers[i].active || app_interrupted || app_out_of_time(x->app))
            continue;
        /* a helper of another tenant may hold the token: later */
        if (x->shared && sem_trywait(&x->shared->tokens) != 0)
            return;
        if (spawn(x, &x->workers[i])) {
            x->active++;
        } else {
            if (x->shared)
                sem_post(&x->shared->tokens);
            out[x->next].outcome = TENANT_FAILED;
        }
        x->next++;
    }
}

/* A stop asked for: passed on to the workers once; a second one kills them, and the run ends now. */
static void pass_stop_on(struct executor *x)
{
    if (!app_interrupted)
        return;
    int sig = app_signals > 1 ? SIGKILL : SIGTERM;
    if (sig == SIGTERM && x->stop_passed_on)
        return;
    x->stop_passed_on = true;
    for (size_t i = 0; i < x->nworkers; i++)
        if (x->workers[i].active)
            kill(x->workers[i].pid, sig);
    if (sig == SIGKILL)
        _exit(EXIT_TEMPFAIL);
}

/* Waits for what the workers send, at most timeout_ms; reaps those that ended. */
static void poll_workers(struct executor *x, int timeout_ms, struct exec_result *out, struct run_totals *tot)
{
    struct pollfd pfds[MAX_SLOTS];
    size_t map[MAX_SLOTS], np = 0;
    for (size_t i = 0; i < x->nworkers; i++) {
        if (!x->workers[i].active)
            continue;
        pfds[np] = (struct pollfd){.fd = x->workers[i].fd, .events = POLLIN};
        map[np++] = i;
    }
    int r = poll(pfds, np, timeout_ms);
    for (size_t k = 0; r > 0 && k < np; k++) {
        struct worker *w = &x->workers[map[k]];
        if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) && !read_worker(x, w))
            reap(x, w, out, tot);
    }
}

/* Names the tenants a stop left unstarted. */
static void report_not_started(const struct executor *x, struct exec_result *out)
{
    size_t n = x->app->ntenants;
    if (x->next >= n)
        return;
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = x->next; i < n; i++) {
        out[i].outcome = TENANT_INTERRUPTED;
        if (i < x->next + 20)
            sb_appendf(&sb, "%s%s", sb.len ? ", " : "", x->app->tenants[i].cfg->name);
    }
    if (n - x->next > 20)
        sb_appendf(&sb, " and %zu more", n - x->next - 20);
    log_warning("%s: %zu tenant%s not started, left for the next run: %s",
                app_interrupted ? "interrupted" : "time budget exhausted", n - x->next, n - x->next == 1 ? "" : "s",
                sb.buf);
    sb_free(&sb);
}

static struct exec_shared *shared_new(int jobs)
{
    struct exec_shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return NULL;
    if (sem_init(&s->tokens, 1, (unsigned)jobs) != 0) {
        munmap(s, sizeof *s);
        return NULL;
    }
    memset(s->helper_tokens, 0, sizeof s->helper_tokens);
    return s;
}

static void shared_free(struct exec_shared *s)
{
    if (s) {
        sem_destroy(&s->tokens);
        munmap(s, sizeof *s);
    }
}

void exec_tenants(const struct app *app, job_fn fn, const void *arg, struct exec_result *out, struct run_totals *tot)
{
    size_t n = app->ntenants;
    int jobs = app->jobs < 1 ? 1 : app->jobs > MAX_SLOTS ? MAX_SLOTS : app->jobs;
    struct executor x = {.app = app, .fn = fn, .arg = arg, .shared = shared_new(jobs)};
    /* tokens for every working process; a job may give spare ones to its helpers */
    x.nworkers = (size_t)jobs > n ? (n ? n : 1) : (size_t)jobs;
    x.workers = ax_calloc(x.nworkers, sizeof *x.workers);
    x.board = progress_board_new(x.nworkers, n, app->progress_live, progress_interval());
    app_role = APP_ROLE_PARENT;
    for (;;) {
        pass_stop_on(&x);
        start_workers(&x, out);
        if (x.active == 0)
            break;
        poll_workers(&x, x.next < n ? 100 : 500, out, tot);
        progress_board_tick(x.board);
    }
    progress_board_free(x.board);
    report_not_started(&x, out);
    struct rusage self, children;
    if (getrusage(RUSAGE_SELF, &self) == 0 && getrusage(RUSAGE_CHILDREN, &children) == 0)
        log_debug("peak memory (max RSS): main process %ld KiB, largest worker %ld KiB", self.ru_maxrss,
                  children.ru_maxrss);
    free(x.workers);
    shared_free(x.shared);
}

void exec_outcomes(const struct app *app, job_fn fn, enum tenant_outcome *outcomes, struct run_totals *tot)
{
    struct exec_result *out = ax_calloc(app->ntenants + 1, sizeof *out);
    exec_tenants(app, fn, NULL, out, tot);
    for (size_t i = 0; i < app->ntenants; i++) {
        outcomes[i] = out[i].outcome;
        free(out[i].data);
    }
    free(out);
}

/* -- helpers ------------------------------------------------------------------------------- */

/* A free place in the pool, or NULL. */
static struct helper *free_helper(struct helper_pool *hp)
{
    for (size_t i = 0; i < hp->n; i++)
        if (!hp->helpers[i].active)
            return &hp->helpers[i];
    return hp->n < MAX_SLOTS ? &hp->helpers[hp->n++] : NULL;
}

bool helper_start(struct helper_pool *hp, helper_fn fn, void *arg)
{
    int fds[2];
    struct helper *h = hp->shared ? free_helper(hp) : NULL;
    if (!h || sem_trywait(&hp->shared->tokens) != 0)
        return false;
    if (pipe(fds) != 0) {
        sem_post(&hp->shared->tokens);
        return false;
    }
    hp->shared->helper_tokens[hp->slot]++;
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        hp->shared->helper_tokens[hp->slot]--;
        sem_post(&hp->shared->tokens);
        return false;
    }
    if (pid == 0) {
        /* the helper dies with its job, like a batch of the job's own would (its transaction rolls back) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(EXIT_TEMPFAIL);
        close(fds[0]);
        for (size_t k = 0; k < hp->n; k++)
            if (hp->helpers[k].active)
                close(hp->helpers[k].fd);
        app_role = APP_ROLE_HELPER;
        fn(arg, fds[1]);
        close(fds[1]);
        /* no exit handler: the job's connections, inherited, are not this process's to close */
        _exit(0);
    }
    close(fds[1]);
    memset(h, 0, sizeof *h);
    h->active = true;
    h->pid = pid;
    h->fd = fds[0];
    return true;
}

/* A helper ended: waited for, its token given back. */
static enum helper_event helper_ended(struct helper_pool *hp, struct helper *h, int *status, size_t *pending)
{
    *pending = ipc_pending(&h->in);
    close(h->fd);
    while (waitpid(h->pid, status, 0) < 0 && errno == EINTR)
        ;
    ipc_reader_free(&h->in);
    h->active = false;
    hp->shared->helper_tokens[hp->slot]--;
    sem_post(&hp->shared->tokens);
    return HELPER_ENDED;
}

/* The next message already read from any helper. */
static bool buffered_message(struct helper_pool *hp, const char **payload, size_t *len)
{
    uint32_t type;
    for (size_t i = 0; i < hp->n; i++)
        while (hp->helpers[i].active && ipc_next(&hp->helpers[i].in, &type, payload, len))
            if (type == IPC_RESULT)
                return true;
    return false;
}

enum helper_event helper_wait(struct helper_pool *hp, int timeout_ms, const char **payload, size_t *len, int *status,
                              size_t *pending)
{
    struct pollfd pfds[MAX_SLOTS];
    size_t map[MAX_SLOTS];
    for (;;) {
        if (app_interrupted && !hp->stop_passed_on) {
            hp->stop_passed_on = true;
            for (size_t i = 0; i < hp->n; i++)
                if (hp->helpers[i].active)
                    kill(hp->helpers[i].pid, SIGTERM);
        }
        if (buffered_message(hp, payload, len))
            return HELPER_MESSAGE;
        size_t np = 0;
        for (size_t i = 0; i < hp->n; i++) {
            struct helper *h = &hp->helpers[i];
            if (h->active && h->eof)
                return helper_ended(hp, h, status, pending);
            if (h->active) {
                pfds[np] = (struct pollfd){.fd = h->fd, .events = POLLIN};
                map[np++] = i;
            }
        }
        if (np == 0)
            return HELPER_NONE;
        int r = poll(pfds, np, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return HELPER_NONE;
        for (size_t k = 0; k < np; k++) {
            struct helper *h = &hp->helpers[map[k]];
            if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) && ipc_read(&h->in, h->fd) == 0)
                h->eof = true;
        }
    }
}
