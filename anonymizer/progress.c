/*
 * progress.c: see progress.h.
 */
#include "progress.h"
#include "ax.h"
#include "escape.h"
#include "ipc.h"
#include "strbuf.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* -- the job's side ------------------------------------------------------------- */

struct progress {
    int fd;
    struct progress_msg msg;
};

struct progress *progress_new(int fd)
{
    struct progress *p = ax_calloc(1, sizeof *p);
    p->fd = fd;
    p->msg.due = -1;
    return p;
}

void progress_free(struct progress *p)
{
    free(p);
}

/* A log line of this process, to the parent: level, then the line, cut to be written atomically. */
static void log_to_parent(void *arg, enum log_level level, const char *line, size_t len)
{
    const struct progress *p = arg;
    int32_t lv = (int32_t)level;
    size_t max = IPC_ATOMIC_MAX - sizeof(struct ipc_hdr) - sizeof lv;
    char *buf = ax_malloc(sizeof lv + len);
    memcpy(buf, &lv, sizeof lv);
    memcpy(buf + sizeof lv, line, len);
    if (len > max) {
        len = max;
        buf[sizeof lv + len - 1] = '\n';
    }
    ipc_send(p->fd, IPC_LOG, buf, sizeof lv + len);
    free(buf);
}

void progress_capture_log(struct progress *p)
{
    log_set_sink(log_to_parent, p);
}

void progress_form_start(struct progress *p, const char *form, long long due)
{
    if (!p)
        return;
    memset(&p->msg, 0, sizeof p->msg);
    snprintf(p->msg.form, sizeof p->msg.form, "%s", form);
    p->msg.due = due;
    p->msg.start = 1;
    ipc_send(p->fd, IPC_PROGRESS, &p->msg, sizeof p->msg);
    p->msg.start = 0;
    p->msg.due = -1;
}

void progress_phase(struct progress *p, const char *phase)
{
    if (!p)
        return;
    snprintf(p->msg.phase, sizeof p->msg.phase, "%s", phase);
    p->msg.delta = 0;
    ipc_send(p->fd, IPC_PROGRESS, &p->msg, sizeof p->msg);
}

void progress_add(struct progress *p, long long done)
{
    if (!p)
        return;
    /* a batch takes milliseconds at least: one small write each, so that the
     * parent never shows a count older than the last batch */
    p->msg.delta = done;
    ipc_send(p->fd, IPC_PROGRESS, &p->msg, sizeof p->msg);
    p->msg.delta = 0;
}

void progress_print(struct progress *p, const char *line)
{
    /* names and ids from w.c.s. or the catalog: an escape sequence would drive the terminal, a
     * newline forge a line */
    char *safe = esc_text(line);
    if (!p)
        printf("%s\n", safe);
    else
        ipc_send(p->fd, IPC_STDOUT, safe, strlen(safe));
    free(safe);
}

/* -- the parent's side -------------------------------------------------------------- */

/* What one worker's tenant is doing, added up from its coordinator's and helpers' messages. */
struct board_line {
    bool active;
    const char *tenant;
    char form[96], phase[24];
    long long done, due; /* due -1: not counted */
    double started, last_log;
};

struct progress_board {
    struct board_line *lines;
    size_t nlines;
    size_t ntenants, finished;
    bool live;      /* a live line is drawn on stderr */
    bool drawn;     /* and is there now */
    double interval; /* seconds between log lines, when not live */
    double last_draw;
};

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 100;
}

void progress_describe(char *buf, size_t len, const char *tenant, const char *form, const char *phase, long long done,
                       long long due, double elapsed)
{
    struct strbuf sb;
    double rate = elapsed > 0.5 ? (double)done / elapsed : 0;
    sb_init(&sb);
    sb_append(&sb, tenant);
    if (phase[0])
        sb_appendf(&sb, ": %s", phase);
    if (form[0])
        sb_appendf(&sb, " %s", form);
    /* a phase that does not count (vacuum, export) says so alone */
    if (strcmp(phase, "anonymise") == 0 || strcmp(phase, "drafts") == 0) {
        sb_appendf(&sb, " %lld", done);
        if (due >= 0)
            sb_appendf(&sb, "/%lld", due > done ? due : done);
        if (rate > 0)
            sb_appendf(&sb, " %.0f/s", rate);
        if (rate > 0 && due > done)
            sb_appendf(&sb, " %.0fs left", (double)(due - done) / rate);
    }
    snprintf(buf, len, "%s", sb.buf);
    sb_free(&sb);
}

static void describe_line(const struct board_line *l, double now, char *buf, size_t len)
{
    progress_describe(buf, len, l->tenant, l->form, l->phase, l->done, l->due, now - l->started);
}

static void clear_line(struct progress_board *b)
{
    if (b->drawn) {
        static const char clr[] = "\r\033[K";
        ax_write_all(STDERR_FILENO, clr, sizeof clr - 1);
        b->drawn = false;
    }
}

static void draw_line(struct progress_board *b)
{
    if (!b->live)
        return;
    struct strbuf sb;
    double now = tm_now();
    sb_init(&sb);
    sb_appendf(&sb, "[%zu/%zu] ", b->finished, b->ntenants);
    const char *sep = "";
    for (size_t i = 0; i < b->nlines; i++) {
        char one[512];
        if (!b->lines[i].active)
            continue;
        describe_line(&b->lines[i], now, one, sizeof one);
        sb_appendf(&sb, "%s%s", sep, one);
        sep = " | ";
    }
    size_t width = (size_t)terminal_width() - 1;
    if (sb.len > width)
        sb.buf[width] = '\0', sb.len = width;
    clear_line(b);
    ax_write_all(STDERR_FILENO, sb.buf, sb.len);
    b->drawn = true;
    sb_free(&sb);
}

/* A line for stderr, written around the live line. */
static void board_write(struct progress_board *b, enum log_level level, const char *line, size_t len)
{
    (void)level;
    clear_line(b);
    ax_write_all(STDERR_FILENO, line, len);
    draw_line(b);
}

/* Every line this process writes to stderr while the board is up. */
static void board_sink(void *arg, enum log_level level, const char *line, size_t len)
{
    board_write(arg, level, line, len);
}

struct progress_board *progress_board_new(size_t nslots, size_t ntenants, bool live, double interval)
{
    struct progress_board *b = ax_calloc(1, sizeof *b);
    b->lines = ax_calloc(nslots, sizeof *b->lines);
    b->nlines = nslots;
    b->ntenants = ntenants;
    b->live = live;
    b->interval = interval;
    log_set_sink(board_sink, b);
    return b;
}

void progress_board_free(struct progress_board *b)
{
    if (!b)
        return;
    clear_line(b);
    log_set_sink(NULL, NULL);
    free(b->lines);
    free(b);
}

void progress_board_start(struct progress_board *b, size_t slot, const char *tenant)
{
    struct board_line *l = &b->lines[slot];
    memset(l, 0, sizeof *l);
    l->active = true;
    l->tenant = tenant;
    l->due = -1;
    l->started = l->last_log = tm_now();
}

void progress_board_update(struct progress_board *b, size_t slot, const struct progress_msg *m)
{
    struct board_line *l = &b->lines[slot];
    l->done += m->delta;
    if (m->start) {
        snprintf(l->form, sizeof l->form, "%s", m->form);
        if (m->due >= 0)
            l->due = (l->due < 0 ? 0 : l->due) + m->due;
    }
    if (m->phase[0])
        snprintf(l->phase, sizeof l->phase, "%s", m->phase);
}

void progress_board_done(struct progress_board *b, size_t slot)
{
    b->lines[slot].active = false;
    b->finished++;
}

void progress_board_tick(struct progress_board *b)
{
    double now = tm_now();
    if (b->live) {
        if (now - b->last_draw >= 0.25) {
            draw_line(b);
            b->last_draw = now;
        }
        return;
    }
    for (size_t i = 0; i < b->nlines; i++) {
        struct board_line *l = &b->lines[i];
        char one[512];
        if (!l->active || now - l->last_log < b->interval)
            continue;
        describe_line(l, now, one, sizeof one);
        log_info("progress: %s (tenant running for %.0f s)", one, now - l->started);
        l->last_log = now;
    }
}

void progress_board_stdout(struct progress_board *b, const char *text, size_t len)
{
    clear_line(b);
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    draw_line(b);
}
