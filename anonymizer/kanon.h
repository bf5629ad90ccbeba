/*
 * kanon.h: statistical disclosure control of the BI export: k-anonymity,
 * generalisation, local suppression and l-diversity, on the rows of one
 * form, the way ARX and sdcMicro apply them (man/anonymizer-bi.7 states the
 * guarantee and the attacker model).
 *
 * A row is published with its quasi-identifiers as pub (jsonb): the
 * precision of its times, its receipt and done dates and times truncated to
 * it, channel, back-office flag, criticality, the kept fields not declared
 * sensitive (dates truncated to the date precision; suppressed ones null),
 * and the list of suppressed fields.  Its group is the rows of its form
 * with an equal pub: a row is published only into a group of at least
 * min_k rows (with at least min_l distinct values of each sensitive field),
 * else held back, and published later when its group is large enough.
 *
 * Before holding a row back, with generalise: its times are coarsened
 * (configured precision, then day, week, month), then its most varied
 * fields suppressed one more at a time (most distinct values first; the
 * order is fixed at a form's full export), each time at every precision.
 *
 * Tables of the session (bi.c): pg_temp.anonymizer_stage (the rows the
 * tenant sent), anonymizer_cand (those and the held-back rows of the form:
 * what is decided), anonymizer_dec (the decisions: the published value
 * of each candidate decided, its precision in it), anonymizer_groups (groups
 * that lost rows: checked again after the merge).
 */
#ifndef KANON_H
#define KANON_H

#include "bi.h"

struct kanon_params {
    const char *tenant;
    const char *form_id;        /* text */
    int min_k;                  /* 1: every row is published as it is (with min_l 1) */
    int min_l;                  /* 1: off */
    bool generalise;
    const char *precision;      /* the configured time precision: minute, hour or day */
    const char *date_precision; /* day, month or year */
    const char *sensitive;      /* text[] literal: the form's keys declared sensitive (their _display too) */
    size_t nsensitive;
    const char *dates;          /* text[] literal: the keys of kept date fields */
    size_t ndates;
    const char *qi_keys;        /* text[] literal: every key of fields that is counted */
    size_t nqi;                 /* quasi-identifying fields (without their _display keys) */
    bool full;                  /* every live row of the form was sent: every group is checked again */
    bool has_held;              /* BI holds rows of the form held back: they are decided again */
};

struct kanon_result {
    long long inserted, updated; /* staged rows written: newly published, and changed */
    long long released;          /* held back earlier, published now */
    long long held;              /* staged rows held back */
    long long withdrawn;         /* published rows taken back: their group fell under min_k (or min_l) */
    long long generalised;       /* rows decided tonight at a coarser precision or with a suppressed field */
    long long withdrawn_parts[2];
};

/*
 * Queues, in the caller's pipeline on the BI session (db_pipe), the
 * statements that decide and merge the staged rows of one form, then
 * record the form's figures in export_state, in the caller's transaction:
 * the server works on them while the client reads the next form.  r is
 * filled when the pipeline is collected; then kanon_done.
 */
int kanon_queue(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp, struct kanon_result *r);
void kanon_done(struct kanon_result *r);

/* The levels of time precision, finest first. */
extern const char *const kanon_levels[];
extern const size_t kanon_nlevels;

#endif
