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
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum msg_type { MSG_LOG = 1, MSG_PROGRESS = 2, MSG_RESULT = 3, MSG_STDOUT = 4, MSG_ENTRIES = 5 };

struct msg_hdr {
    uint32_t type;
    uint32_t len;
};

struct msg_progress {
    char form[96];
    long long done;
    long long due; /* -1: not counted */
    int32_t start;  /* a new form begins */
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
    double last_sent;
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
    p->last_sent = tm_now();
}

void progress_add(struct progress *p, long long done)
{
    if (!p)
        return;
    p->msg.done += done;
    /* a batch takes milliseconds at least: one small write each, so that the
     * parent never shows a count older than the last batch */
    send_msg(p->fd, MSG_PROGRESS, &p->msg, sizeof p->msg);
    p->last_sent = tm_now();
}

void progress_form_end(struct progress *p)
{
    if (p)
        send_msg(p->fd, MSG_PROGRESS, &p->msg, sizeof p->msg);
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
    struct msg_progress progress;
    double form_started, started, last_log;
};

static struct worker *workers;
static size_t nworkers;
static volatile sig_atomic_t signals_seen;
static bool live;          /* drawing a live line on stderr */
static bool line_drawn;
static const struct app *cur_app;
static size_t finished_tenants;

void jobs_on_signal(void)
{
    /* called from the signal handler: only async-signal-safe calls */
    signals_seen++;
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

static void describe(struct strbuf *sb, const struct worker *w, double now)
{
    const struct msg_progress *p = &w->progress;
    double elapsed = now - w->form_started;
    double rate = elapsed > 0.5 ? (double)p->done / elapsed : 0;
    sb_appendf(sb, "%s", cur_app->tenants[w->tenant].cfg->name);
    if (p->form[0]) {
        sb_appendf(sb, " %s %lld", p->form, p->done);
        if (p->due >= 0)
            sb_appendf(sb, "/%lld", p->due);
        if (rate > 0)
            sb_appendf(sb, " %.0f/s", rate);
        if (rate > 0 && p->due > p->done)
            sb_appendf(sb, " %.0fs left", (double)(p->due - p->done) / rate);
    }
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
        if (len == sizeof w->progress) {
            memcpy(&w->progress, p, len);
            if (w->progress.start)
                w->form_started = tm_now();
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

/* Reads what the worker sent; returns false at end of file. */
static bool read_worker(struct worker *w)
{
    if (w->cap - w->len < 8192) {
        w->cap = w->cap ? w->cap * 2 : 16384;
        w->buf = ax_realloc(w->buf, w->cap);
    }
    ssize_t n = read(w->fd, w->buf + w->len, w->cap - w->len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    w->len += (size_t)n;
    drain(w);
    return true;
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
    w->started = w->last_log = tm_now();
}

static enum tenant_outcome reap(const struct app *app, struct worker *w, struct run_totals *tot)
{
    int status = 0;
    enum tenant_outcome outcome;
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
        ;
    close(w->fd);
    if (w->have_result) {
        outcome = (enum tenant_outcome)w->result.outcome;
        tot->anonymised += w->result.tot.anonymised;
        tot->completed += w->result.tot.completed;
        tot->drafts += w->result.tot.drafts;
        tot->locked += w->result.tot.locked;
        tot->tokens += w->result.tot.tokens;
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
            spawn(app, &workers[i], next, fn);
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
        int r = poll(pfds, np, 500);
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
}
