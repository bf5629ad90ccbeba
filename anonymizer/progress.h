/*
 * progress.h: what a job reports while it works, and the display the parent
 * draws from it.
 *
 * The job's side (struct progress) sends its progress, its output lines and
 * its log lines to the parent through its pipe (ipc.h).  The parent's side
 * (struct progress_board) adds up what every worker and helper of a tenant
 * reports, and draws one live line on a terminal, or writes a log line every
 * interval otherwise; every line written to stderr while the board is up
 * goes through it, so that lines never interleave with the live line.
 */
#ifndef PROGRESS_H
#define PROGRESS_H

#include "log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* -- the job's side ------------------------------------------------------------- */

/* Sent as increments: a tenant's coordinator and its helpers all add to it. */
struct progress_msg {
    char form[96];
    char phase[24];
    long long delta; /* work done since the last message */
    long long due;   /* with start: work this form adds to the tenant's total (-1: not counted) */
    int32_t start;   /* a new form begins */
};

struct progress;

/* A reporter writing to fd (the pipe to the parent); caller frees with progress_free. */
struct progress *progress_new(int fd);
void progress_free(struct progress *p);
/* Sends this process's log lines to the parent too (a worker's, a helper's). */
void progress_capture_log(struct progress *p);

/* Every function below accepts p NULL: nobody watches. */
void progress_form_start(struct progress *p, const char *form, long long due);
void progress_add(struct progress *p, long long done);
/* What the tenant is doing now: "anonymise", "drafts", "search tokens", "vacuum", "export". */
void progress_phase(struct progress *p, const char *phase);
/* A line of the command's output (stdout): the parent writes it whole; p NULL: straight to out. */
void progress_print(struct progress *p, const char *line);

/* -- the parent's side -------------------------------------------------------------- */

struct progress_board;

/*
 * A board for nslots workers and ntenants tenants in all; live: draw a line
 * on stderr (a terminal), else log a line per tenant every interval seconds
 * of work.  Takes over log.h's sink until progress_board_free.
 */
struct progress_board *progress_board_new(size_t nslots, size_t ntenants, bool live, double interval);
void progress_board_free(struct progress_board *b);

/* A worker in slot starts on tenant (name borrowed until progress_board_done). */
void progress_board_start(struct progress_board *b, size_t slot, const char *tenant);
void progress_board_update(struct progress_board *b, size_t slot, const struct progress_msg *m);
void progress_board_done(struct progress_board *b, size_t slot);
/* Redraws the live line, or writes the interval's log lines. */
void progress_board_tick(struct progress_board *b);
/* A worker's log line (level and the line as log.h wrote it), or a line of output, written whole. */
void progress_board_stdout(struct progress_board *b, const char *text, size_t len);

/* "tenant: phase form done/due rate, time left" (for tests and the board itself). */
void progress_describe(char *buf, size_t len, const char *tenant, const char *form, const char *phase, long long done,
                       long long due, double elapsed);

#endif
