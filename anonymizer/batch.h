/*
 * batch.h: the run's batches over one form: the final anonymisation of due
 * submissions, or the deletion of expired drafts, over a range of ids, one
 * transaction per batch, each sized to take about batch_target; a failure
 * tied to some rows narrowed down to them, one tied to the table ending the
 * range, one tied to the session ending the tenant.
 */
#ifndef BATCH_H
#define BATCH_H

#include "progress.h"
#include "tenant.h"

/* What the run did to a form (summed over its units). */
struct form_counts {
    long long anonymised;        /* not anonymised before */
    long long completed;         /* anonymised by w.c.s., finished by us */
    long long drafts_deleted;
    long long drafts_anonymised;
    long long history_cleared;   /* history rows cleared */
    long long tracking_deleted;  /* tracking codes deleted */
    long long locked;            /* due, but held by another session */
    long long tokens_deleted;    /* search tokens no row matches any more */
    long long failed;            /* submissions a server error kept from being done (skipped) */
    long long held;              /* left alone: under a legal hold (hold.h) */
    int table_locked;            /* units whose table a lock kept the run off (left for the next run) */
    int not_vacuumed;            /* its tables the role could not vacuum (it does not own them) */
};
void form_counts_add(struct form_counts *to, const struct form_counts *c);

/* One kind of batch over one form, and where it stands. */
struct batcher {
    struct tenant *t;
    const struct app *app;
    const struct form *f;
    enum plan_batch kind;
    char *work;     /* plan_batch */
    char *fast;     /* plan_batch_unlocked (anonymisation only), or NULL */
    bool careful;   /* the next batch takes its locks first (a fast one waited for a lock) */
    char *range;    /* plan_batch_range */
    char *allforms; /* plan_batch_allforms, or NULL: not needed (no table, or the w.c.s. trigger does it) */
    bool allforms_checked; /* whether the trigger does its job was seen once */
    struct progress *progress;
    char lo[32];    /* the last id done (exclusive lower bound of the next batch) */
    char end[32];   /* the last id of the work unit (PLAN_NO_END: none) */
    int size;       /* rows in the next batch: follows the time batches take */
    bool bisecting; /* a batch failed: halves until the failing submission is isolated */
    char *owed;       /* the tables its batches change, as a text[] literal (anonymizer.vacuum_owed) */
    bool owed_marked; /* recorded by a committed batch of this batcher */
    char *failure;  /* the first failure of this batcher (a submission skipped, or the table), or NULL */
};

/* Over the ids (lo, end] of f (end PLAN_NO_END: the rest of the table).  Free with batcher_free. */
void batcher_init(struct batcher *b, struct tenant *t, const struct app *app, const struct form *f,
                  enum plan_batch kind, const char *lo, const char *end, struct progress *progress);
void batcher_free(struct batcher *b);

/*
 * Runs batches until the range has no more work of this kind: AX_OK;
 * AX_ERR_INTERRUPTED (a signal, the time budget); AX_ERR_DATA (the table
 * failed: the rest of the range is left, b->failure says why); AX_ERR_DB
 * (the session is lost).  Rows a failure was tied to are skipped and
 * counted in c->failed.
 */
int run_batches(struct batcher *b, struct form_counts *c);

/*
 * The next batch's size: what would have taken target_ms at the last
 * batch's pace (seconds for rows), moving by at most a factor of 2 up or 4
 * down, within 10 and batch_size rows; a batch over a second halves it at
 * least.
 */
int batch_next_size(int size, int batch_size, int target_ms, double seconds, long long rows);

/* How far a server error reaches: the rows of the batch, the form's table, or the session itself. */
enum failure_scope { FAIL_ROWS, FAIL_TABLE, FAIL_SESSION };
enum failure_scope failure_scope(const struct db *db);
/* The same from an error's SQLSTATE ("" when none) and whether the session is still up. */
enum failure_scope failure_scope_of(const char *sqlstate, bool connected);
/* The error of a failed statement, as the audit and the log name it (caller frees). */
char *failure_text(const struct db *db);
/* Errors that leave a batch for the next run rather than fail the form: a lock, a deadlock. */
bool batch_transient(const struct db *db);
/* The statement was cancelled by a stop signal. */
bool batch_cancelled(const struct db *db);

/* How many submissions of the form still need the final anonymisation, how many expired drafts it has. */
int batch_count_work(struct tenant *t, const struct form *f, long long *n);
int batch_count_drafts(struct tenant *t, const struct form *f, long long *n);

#endif
