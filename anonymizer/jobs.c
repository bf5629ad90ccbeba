/*
 * jobs.c: worker processes, their messages, and the progress display.
 */
#include "jobs.h"
#include "ax.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum msg_type { MSG_LOG = 1, MSG_PROGRESS = 2, MSG_RESULT = 3, MSG_STDOUT = 4, MSG_ENTRIES = 5 };

struct msg_hdr {
    uint32_t type;
    uint32_t len;
};

/* Progress is sent as increments: a tenant's coordinator and its helpers all add to it. */
struct msg_progress {
    char form[96];
    char phase[24];
    long long delta; /* work done since the last message */
    long long due;   /* with start: work this form adds to the tenant's total (-1: not counted) */
    int32_t start;   /* a new form begins */
};

struct msg_result {
    int32_t outcome;
    struct run_totals tot;
};

#define PROGRESS_LOG_INTERVAL 30.0 /* seconds, when stderr is not a terminal */

/* -- the worker's side ------------------------------------------------------------ */

struct progress {
    int fd; /* the pipe to the parent */
    struct msg_progress msg;
};

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* the parent is gone: nothing useful left to say */
        }
        p += n;
        len -= (size_t)n;
    }
}

static void send_msg(int fd, uint32_t type, const void *payload, size_t len)
{
    struct msg_hdr h = {type, (uint32_t)len};
    char *buf = ax_malloc(sizeof h + len);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, payload, len);
    write_all(fd, buf, sizeof h + len);
    free(buf);
}

/* The worker's log lines go to the parent, which alone writes to stderr. */
static int worker_log_fd = -1;

static void worker_log_sink(enum log_level level, const char *line, size_t len)
{
    int32_t lv = (int32_t)level;
    char *buf = ax_malloc(sizeof lv + len);
    memcpy(buf, &lv, sizeof lv);
    memcpy(buf + sizeof lv, line, len);
    send_msg(worker_log_fd, MSG_LOG, buf, sizeof lv + len);
    free(buf);
}

void progress_form_start(struct progress *p, const char *form, long long due)
{
    if (!p)
        return;
    memset(&p->msg, 0, sizeof p->msg);
    snprintf(p->msg.form, sizeof p->msg.form, "%s", form);
    p->msg.due = due;
    p->msg.start = 1;
    send_msg(p->fd, MSG_PROGRESS, &p->msg, sizeof p->msg);
    p->msg.start = 0;
    p->msg.due = -1;
}

void progress_phase(struct progress *p, const char *phase)
{
    if (!p)
        return;
    snprintf(p->msg.phase, sizeof p->msg.phase, "%s", phase);
    p->msg.delta = 0;
    send_msg(p->fd, MSG_PROGRESS, &p->msg, sizeof p->msg);
}

void progress_add(struct progress *p, long long done)
{
    if (!p)
        return;
    /* a batch takes milliseconds at least: one small write each, so that the
     * parent never shows a count older than the last batch */
    p->msg.delta = done;
    send_msg(p->fd, MSG_PROGRESS, &p->msg, sizeof p->msg);
    p->msg.delta = 0;
}

void progress_form_end(struct progress *p)
{
    (void)p;
}

void progress_print(struct progress *p, const char *line)
{
    if (!p) {
        printf("%s\n", line);
        return;
    }
    send_msg(p->fd, MSG_STDOUT, line, strlen(line));
}

/* -- the parent's side --------------------------------------------------------------- */

struct worker {
    bool active;
    pid_t pid;
    int fd;
    size_t tenant;
    bool have_result;
    struct msg_result result;
    char *buf;
    size_t len, cap;
    /* the tenant's progress, added up from its coordinator's and helpers' messages */
    char form[96], phase[24];
    long long done, due; /* due -1: not counted */
    double started, last_log;
};

static struct worker *workers;
static size_t nworkers;

/*
 * Every process that works holds one of the run's --jobs tokens: the
 * coordinators jobs_run starts (one per tenant in progress) and the helpers
 * they start for work units.  What a coordinator's helpers hold is noted by
 * slot, so that the parent can give it back if the coordinator dies.
 */
#define MAX_SLOTS 64
struct shared {
    sem_t tokens;
    int helper_tokens[MAX_SLOTS];
};
static struct shared *shm;
static int my_slot = -1;      /* in a coordinator: its worker slot */
static struct helper *my_helpers; /* in a coordinator: its helpers, for the signal handler */
static size_t my_nhelpers;
static volatile sig_atomic_t signals_seen;
static bool live;          /* drawing a live line on stderr */
static bool line_drawn;
static const struct app *cur_app;
static size_t finished_tenants;

void jobs_on_signal(void)
{
    /* called from the signal handler: only async-signal-safe calls */
    signals_seen++;
    if (app_role == APP_ROLE_WORKER) {
        /* a coordinator: its helpers stop with it (their batch in flight rolls back) */
        for (size_t i = 0; i < my_nhelpers; i++)
            if (my_helpers[i].active)
                kill(my_helpers[i].pid, signals_seen > 1 ? SIGKILL : SIGTERM);
        return;
    }
    for (size_t i = 0; i < nworkers; i++) {
        if (!workers[i].active)
            continue;
        kill(workers[i].pid, signals_seen > 1 ? SIGKILL : SIGTERM);
    }
    if (signals_seen > 1)
        _exit(EXIT_TEMPFAIL);
}

static void clear_line(void)
{
    if (line_drawn) {
        static const char clr[] = "\r\033[K";
        write_all(STDERR_FILENO, clr, sizeof clr - 1);
        line_drawn = false;
    }
}

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 100;
}

/* "tenant: phase form done/due rate, time left"; a phase that does not count (vacuum, export) says so alone. */
static void describe(struct strbuf *sb, const struct worker *w, double now)
{
    double elapsed = now - w->started;
    double rate = elapsed > 0.5 ? (double)w->done / elapsed : 0;
    sb_appendf(sb, "%s", cur_app->tenants[w->tenant].cfg->name);
    if (w->phase[0])
        sb_appendf(sb, ": %s", w->phase);
    bool counting = strcmp(w->phase, "anonymise") == 0 || strcmp(w->phase, "drafts") == 0;
    if (w->form[0])
        sb_appendf(sb, " %s", w->form);
    if (!counting)
        return;
    sb_appendf(sb, " %lld", w->done);
    if (w->due >= 0)
        sb_appendf(sb, "/%lld", w->due > w->done ? w->due : w->done);
    if (rate > 0)
        sb_appendf(sb, " %.0f/s", rate);
    if (rate > 0 && w->due > w->done)
        sb_appendf(sb, " %.0fs left", (double)(w->due - w->done) / rate);
}

static void draw_line(void)
{
    if (!live)
        return;
    struct strbuf sb;
    double now = tm_now();
    sb_init(&sb);
    sb_appendf(&sb, "[%zu/%zu] ", finished_tenants, cur_app->ntenants);
    const char *sep = "";
    for (size_t i = 0; i < nworkers; i++) {
        if (!workers[i].active)
            continue;
        sb_append(&sb, sep);
        describe(&sb, &workers[i], now);
        sep = " | ";
    }
    size_t width = (size_t)terminal_width() - 1;
    if (sb.len > width)
        sb.buf[width] = '\0', sb.len = width;
    clear_line();
    write_all(STDERR_FILENO, sb.buf, sb.len);
    line_drawn = true;
    sb_free(&sb);
}

/* Every line to stderr goes through here in the parent. */
static void parent_log_sink(enum log_level level, const char *line, size_t len)
{
    (void)level;
    clear_line();
    write_all(STDERR_FILENO, line, len);
    draw_line();
}

static void handle_msg(struct worker *w, uint32_t type, const char *p, size_t len)
{
    switch (type) {
    case MSG_LOG:
        if (len >= sizeof(int32_t))
            parent_log_sink(LOG_LEVEL_INFO, p + sizeof(int32_t), len - sizeof(int32_t));
        break;
    case MSG_PROGRESS:
        if (len == sizeof(struct msg_progress)) {
            struct msg_progress m;
            memcpy(&m, p, len);
            w->done += m.delta;
            if (m.start) {
                snprintf(w->form, sizeof w->form, "%s", m.form);
                if (m.due >= 0)
                    w->due = (w->due < 0 ? 0 : w->due) + m.due;
            }
            if (m.phase[0])
                snprintf(w->phase, sizeof w->phase, "%s", m.phase);
        }
        break;
    case MSG_ENTRIES:
        if (len == 2 * cur_app->entries.n) {
            for (size_t i = 0; i < cur_app->entries.n; i++) {
                cur_app->entries.applies[i] |= p[i] != 0;
                cur_app->entries.matched[i] |= p[cur_app->entries.n + i] != 0;
            }
        }
        break;
    case MSG_STDOUT:
        clear_line();
        fwrite(p, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        draw_line();
        break;
    case MSG_RESULT:
        if (len == sizeof w->result) {
            memcpy(&w->result, p, len);
            w->have_result = true;
        }
        break;
    }
}

static void drain(struct worker *w)
{
    size_t off = 0;
    while (w->len - off >= sizeof(struct msg_hdr)) {
        struct msg_hdr h;
        memcpy(&h, w->buf + off, sizeof h);
        if (w->len - off - sizeof h < h.len)
            break;
        handle_msg(w, h.type, w->buf + off + sizeof h, h.len);
        off += sizeof h + h.len;
    }
    memmove(w->buf, w->buf + off, w->len - off);
    w->len -= off;
}

/* Appends what fd has to a growing buffer; 1: read, 0: end of file, -1: nothing for now. */
static int read_more(int fd, char **buf, size_t *len, size_t *cap, size_t room)
{
    if (*cap - *len < room) {
        *cap = *cap ? *cap * 2 : 2 * room;
        *buf = ax_realloc(*buf, *cap);
    }
    ssize_t n = read(fd, *buf + *len, *cap - *len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? -1 : 0;
    if (n == 0)
        return 0;
    *len += (size_t)n;
    return 1;
}

/* Reads what the worker sent; returns false at end of file. */
static bool read_worker(struct worker *w)
{
    int r = read_more(w->fd, &w->buf, &w->len, &w->cap, 8192);
    if (r > 0)
        drain(w);
    return r != 0;
}

/* What the worker's tenant said of the configuration's entries (see app_note_entries): applies, then matched. */
static void send_entries(const struct app *app, int fd)
{
    size_t n = app->entries.n;
    char *buf = ax_malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        buf[i] = app->entries.applies[i];
        buf[n + i] = app->entries.matched[i];
    }
    send_msg(fd, MSG_ENTRIES, buf, 2 * n);
    free(buf);
}

static void spawn(const struct app *app, struct worker *w, size_t tenant, job_fn fn)
{
    int fds[2];
    if (pipe(fds) != 0) {
        log_error("%s: cannot start a worker: %s", app->tenants[tenant].cfg->name, strerror(errno));
        w->active = false;
        return;
    }
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("%s: cannot start a worker: %s", app->tenants[tenant].cfg->name, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        w->active = false;
        return;
    }
    if (pid == 0) {
        /* the worker: one tenant, then exit; it dies with the parent, like a
         * single process would (its transaction rolls back) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(EXIT_TEMPFAIL);
        close(fds[0]);
        for (size_t i = 0; i < nworkers; i++)
            if (workers[i].active && &workers[i] != w)
                close(workers[i].fd);
        app_role = APP_ROLE_WORKER;
        my_slot = (int)(w - workers);
        worker_log_fd = fds[1];
        log_set_sink(worker_log_sink);
        struct progress progress = {.fd = fds[1]};
        struct job_ctx ctx = {.progress = &progress};
        struct msg_result r = {0};
        r.outcome = (int32_t)fn(app, &app->tenants[tenant], &ctx);
        r.tot = ctx.tot;
        send_entries(app, fds[1]);
        send_msg(fds[1], MSG_RESULT, &r, sizeof r);
        close(fds[1]);
        exit(0);
    }
    close(fds[1]);
    memset(w, 0, sizeof *w);
    w->active = true;
    w->pid = pid;
    w->fd = fds[0];
    w->tenant = tenant;
    w->due = -1;
    w->started = w->last_log = tm_now();
}

static enum tenant_outcome reap(const struct app *app, struct worker *w, struct run_totals *tot)
{
    int status = 0;
    enum tenant_outcome outcome;
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
        ;
    close(w->fd);
    /* its own token, and those of helpers it could not give back (it died with them) */
    if (shm) {
        int slot = (int)(w - workers);
        for (int k = 0; k <= shm->helper_tokens[slot]; k++)
            sem_post(&shm->tokens);
        shm->helper_tokens[slot] = 0;
    }
    if (w->have_result) {
        outcome = (enum tenant_outcome)w->result.outcome;
        tot->anonymised += w->result.tot.anonymised;
        tot->completed += w->result.tot.completed;
        tot->drafts += w->result.tot.drafts;
        tot->locked += w->result.tot.locked;
        tot->tokens += w->result.tot.tokens;
        tot->failed += w->result.tot.failed;
        tot->exported += w->result.tot.exported;
    } else if (WIFSIGNALED(status) && app_interrupted) {
        outcome = TENANT_INTERRUPTED;
    } else {
        /* a crash: its transaction rolled back, the next run completes it */
        if (WIFSIGNALED(status))
            log_error("%s: the worker died of signal %d", app->tenants[w->tenant].cfg->name, WTERMSIG(status));
        else
            log_error("%s: the worker exited with status %d without a result", app->tenants[w->tenant].cfg->name,
                      WEXITSTATUS(status));
        outcome = TENANT_FAILED;
    }
    free(w->buf);
    w->buf = NULL;
    w->active = false;
    return outcome;
}

static void log_progress(double now)
{
    for (size_t i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        if (!w->active || now - w->last_log < PROGRESS_LOG_INTERVAL)
            continue;
        struct strbuf sb;
        sb_init(&sb);
        describe(&sb, w, now);
        log_info("progress: %s (tenant running for %.0f s)", sb.buf, now - w->started);
        sb_free(&sb);
        w->last_log = now;
    }
}

void jobs_run(const struct app *app, int jobs, job_fn fn, enum tenant_outcome *outcomes, struct run_totals *tot)
{
    size_t n = app->ntenants, next = 0, active = 0;

    if (jobs < 1)
        jobs = 1;
    if (jobs > MAX_SLOTS)
        jobs = MAX_SLOTS;
    /* tokens for every working process; a tenant's coordinator may give spare ones to helpers */
    shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED || sem_init(&shm->tokens, 1, (unsigned)jobs) != 0) {
        if (shm != MAP_FAILED)
            munmap(shm, sizeof *shm);
        shm = NULL;
    } else {
        memset(shm->helper_tokens, 0, sizeof shm->helper_tokens);
    }
    if ((size_t)jobs > n)
        jobs = (int)(n ? n : 1);
    cur_app = app;
    finished_tenants = 0;
    nworkers = (size_t)jobs;
    workers = ax_calloc(nworkers, sizeof *workers);
    live = app->progress_live;
    app_role = APP_ROLE_PARENT;
    log_set_sink(parent_log_sink);

    struct pollfd *pfds = ax_calloc(nworkers, sizeof *pfds);
    double last_draw = 0;
    for (;;) {
        for (size_t i = 0; i < nworkers && next < n; i++) {
            if (workers[i].active || app_interrupted || app_out_of_time(app))
                continue;
            /* a helper of another tenant may hold the token: later */
            if (shm && sem_trywait(&shm->tokens) != 0)
                break;
            spawn(app, &workers[i], next, fn);
            if (!workers[i].active && shm)
                sem_post(&shm->tokens);
            if (workers[i].active)
                active++;
            else
                outcomes[next] = TENANT_FAILED;
            next++;
        }
        if (active == 0)
            break;
        size_t np = 0;
        size_t map[64];
        for (size_t i = 0; i < nworkers; i++) {
            if (!workers[i].active)
                continue;
            pfds[np].fd = workers[i].fd;
            pfds[np].events = POLLIN;
            pfds[np].revents = 0;
            map[np++] = i;
        }
        int r = poll(pfds, np, next < n ? 100 : 500);
        if (r < 0 && errno != EINTR)
            break;
        for (size_t k = 0; r > 0 && k < np; k++) {
            if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct worker *w = &workers[map[k]];
            if (!read_worker(w)) {
                outcomes[w->tenant] = reap(app, w, tot);
                finished_tenants++;
                active--;
            }
        }
        double now = tm_now();
        if (live && now - last_draw >= 0.25) {
            draw_line();
            last_draw = now;
        } else if (!live) {
            log_progress(now);
        }
    }
    clear_line();
    if (next < n) {
        struct strbuf sb;
        sb_init(&sb);
        for (size_t i = next; i < n; i++) {
            outcomes[i] = TENANT_INTERRUPTED;
            if (i < next + 20)
                sb_appendf(&sb, "%s%s", sb.len ? ", " : "", app->tenants[i].cfg->name);
        }
        if (n - next > 20)
            sb_appendf(&sb, " and %zu more", n - next - 20);
        log_warning("%s: %zu tenant%s not started, left for the next run: %s",
                    app_interrupted ? "interrupted" : "time budget exhausted", n - next, n - next == 1 ? "" : "s",
                    sb.buf);
        sb_free(&sb);
    }
    struct rusage self, children;
    if (getrusage(RUSAGE_SELF, &self) == 0 && getrusage(RUSAGE_CHILDREN, &children) == 0)
        log_debug("peak memory (max RSS): main process %ld KiB, largest worker %ld KiB", self.ru_maxrss,
                  children.ru_maxrss);
    log_set_sink(NULL);
    free(pfds);
    free(workers);
    workers = NULL;
    nworkers = 0;
    if (shm) {
        sem_destroy(&shm->tokens);
        munmap(shm, sizeof *shm);
        shm = NULL;
    }
}

/* -- helpers: a coordinator's work units in other processes ---------------------------- */

bool helper_start(struct helper *hs, size_t n, size_t i, helper_fn fn, void *arg)
{
    struct helper *h = &hs[i];
    int fds[2];
    if (!shm || my_slot < 0 || sem_trywait(&shm->tokens) != 0)
        return false;
    if (pipe(fds) != 0) {
        sem_post(&shm->tokens);
        return false;
    }
    shm->helper_tokens[my_slot]++;
    my_helpers = hs;
    my_nhelpers = n;
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        shm->helper_tokens[my_slot]--;
        sem_post(&shm->tokens);
        return false;
    }
    if (pid == 0) {
        /* the helper: it dies with its coordinator, like a batch of the
         * coordinator's own would (its transaction rolls back) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(EXIT_TEMPFAIL);
        close(fds[0]);
        for (size_t k = 0; k < n; k++)
            if (hs[k].active)
                close(hs[k].fd);
        app_role = APP_ROLE_HELPER;
        my_nhelpers = 0;
        fn(arg, fds[1]);
        close(fds[1]);
        /* no exit handler: the coordinator's connections, inherited, are not this process's to close */
        _exit(0);
    }
    close(fds[1]);
    memset(h, 0, sizeof *h);
    h->active = true;
    h->pid = pid;
    h->fd = fds[0];
    return true;
}

void helper_write(int fd, const void *buf, size_t len)
{
    write_all(fd, buf, len);
}

/* Reads what the helper wrote; false at end of file. */
static bool read_helper(struct helper *h)
{
    return read_more(h->fd, &h->out, &h->len, &h->cap, 4096) != 0;
}

int helper_wait(struct helper *hs, size_t n, int timeout_ms)
{
    struct pollfd pfds[MAX_SLOTS];
    size_t map[MAX_SLOTS];
    for (;;) {
        size_t np = 0;
        for (size_t i = 0; i < n && np < MAX_SLOTS; i++) {
            if (!hs[i].active)
                continue;
            pfds[np] = (struct pollfd){.fd = hs[i].fd, .events = POLLIN};
            map[np++] = i;
        }
        if (np == 0)
            return -1;
        int r = poll(pfds, np, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        for (size_t k = 0; k < np; k++) {
            if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct helper *h = &hs[map[k]];
            if (read_helper(h))
                continue;
            close(h->fd);
            while (waitpid(h->pid, &h->status, 0) < 0 && errno == EINTR)
                ;
            h->active = false;
            shm->helper_tokens[my_slot]--;
            sem_post(&shm->tokens);
            return (int)map[k];
        }
    }
}
