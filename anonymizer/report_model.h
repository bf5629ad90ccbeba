/*
 * report_model.h: what the report knows once it has read every tenant, and
 * the verdict it draws; shared by the collection (report.c) and the
 * renderers (report_text.c, report_html.c, report_data.c).
 */
#ifndef REPORT_MODEL_H
#define REPORT_MODEL_H

#include "app.h"
#include "form.h"
#include "strbuf.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

enum report_format { REPORT_TEXT = 0, REPORT_JSON, REPORT_CSV, REPORT_HTML, REPORT_NAGIOS };

/* --format nagios thresholds */
struct nagios_options {
    int warning_days; /* WARNING when the oldest personal data is this close to the limit */
    int stale_hours;  /* WARNING when a tenant's last successful run is older */
};

/* Parses a --format value; returns -1 when unknown. */
int report_parse_format(const char *text);

struct colref {
    char *column;
    char *reason;
    char *label;   /* may be NULL */
    char *varname; /* may be NULL */
    bool personal; /* kept, and personal by nature (classify_personal_by_nature) */
};

struct collist {
    struct colref *items;
    size_t n;
};

enum { C_SUBMISSIONS, C_ANONYMISED, C_DUE, C_DRAFTS_DUE, C_OPEN_PAST, C_INCOMPLETE, C_COUNT };

/* Submissions holding personal data, by age: within the period, between it and the legal limit, past it. */
enum { AGE_WITHIN, AGE_TO_LIMIT, AGE_PAST, AGE_COUNT };

struct form_report {
    char *slug, *name, *table;
    char *label;            /* "form <slug>", "test copy of <slug>", "card <slug>" */
    enum form_kind kind;
    bool of_card; /* a card or a test copy of one: a register, not held to the legal limit */
    bool anonymised_by_run; /* false: a card without a cards entry (only its drafts) */
    char *definition;       /* the definition file, or NULL */
    char *retention;
    int retention_days;
    enum cfg_source retention_source;
    char *open_limit;       /* as configured ("1 year") */
    int open_limit_days;
    char *cutoff;           /* ISO UTC */
    long long counts[C_COUNT];
    char *oldest_pending; /* ISO UTC; NULL: nothing pending */
    long long days_past_limit;
    long long open_inactive;      /* open, inactive past open_limit: to review */
    char *oldest_open_inactive;   /* ISO UTC */
    long long ages[2][AGE_COUNT]; /* [0] done, [1] not done (open and drafts) */
    bool locked_known;
    long long locked_last_run;
    bool not_vacuumed;      /* the last run could not vacuum its tables: old row versions remain */
    long long undated;              /* done, holding personal data, with no date at all: past the limit */
    long long status_unknown;       /* no definition, no wcs_all_forms row: whether they are done is unknown */
    long long status_unknown_past;  /* of those, inactive past the legal limit (or undated) */
    long long open_intermediate;    /* open past the period, still holding a field marked "intermediate" */
    /* test definitions made from its submissions (testdefs.h): in all, due (period passed since made,
     * personal data held), of those made before the legal limit; when the oldest holding data was made */
    long long testdefs, testdefs_due, testdefs_past_limit;
    char *testdefs_oldest;
    char *failed_last_run;   /* why the last run failed on it (some submissions or the whole form), or NULL */
    char *evo_table;         /* its history table, or NULL */
    char *vacuum_owed_since; /* a run changed it and no VACUUM has cleaned it since (ISO UTC), or NULL */
    int formdef_id;
    bool bi_known;              /* the BI database has this form's export state */
    long long bi_smallest_group; /* its smallest group of rows sharing quasi-identifiers; -1: not computed */
    long long bi_held_back;      /* rows held back by k-anonymity */
    long long bi_published;      /* rows readers see */
    char *bi_limiting;           /* among the held-back rows, the most varied quasi-identifier, or NULL */
    long long in_backups;   /* anonymised within the backup retention */
    char *in_backups_until; /* when the last of them leaves the backups */
    char *error; /* the form could not be assessed */
    struct collist keep, blank, unclassified;
    /* under a legal hold: submissions still holding personal data, of those due, and done past the legal
     * limit (lawful while the hold lasts: not in the verdict) */
    long long held, held_due, held_past_limit;
};

/* A legal hold (hold.h), as the report and hold list show it. */
struct report_hold {
    long long id;
    char *slug, *table, *reason, *created_at, *until, *os_user, *db_role; /* until NULL: until removed */
    long long submission_id; /* 0: the whole form */
    long long age_days;
    bool expired;     /* its end has passed: it keeps nothing any more, and should be removed */
    bool over_a_year; /* in force for more than a year: to review */
};

struct tenant_report {
    char *name;
    enum tenant_outcome outcome;
    char *error;
    char *at;            /* the instant evaluated, ISO UTC */
    char *legal_limit;   /* at minus three months, as the server writes it */
    char *backups_until; /* at plus backup_retention, a date */
    char *last_run;      /* ISO UTC, NULL when never */
    bool last_run_unknown;
    char *run_in_progress; /* start of a run still working on the tenant (ISO UTC), or NULL */
    char *chain_state;     /* the history's chain (chain.h): "off", "intact", "broken", "unverified"; NULL: unread */
    char *chain_text;      /* and in words, in the reader's language */
    struct report_hold *holds; /* every legal hold, in force or expired */
    size_t nholds;
    bool holds_unknown;        /* anonymizer.holds could not be read */
    const char *url;     /* its w.c.s., NULL: definitions from files only */
    bool fetched;        /* definitions fetched from it now */
    char *fetch_error;   /* the fetch failed: files were used */
    double files_age;    /* seconds since those files were fetched (-1: unknown) */
    bool superuser;      /* the report's connection is a superuser's (so, likely, the run's) */
    /* w.c.s.'s own logs (wcs_logs.h): rows older than the legal limit about anonymised submissions */
    bool audit_exists, audit_read, errors_exists, errors_read;
    long long audit_old, errors_old;
    char *audit_oldest, *errors_oldest;
    /* its site-options.cfg (wcs_sites): what w.c.s. does of unused files and of its audit log */
    bool site_options_read;
    char *unused_files, *audit_days, *site_options_error;
    struct form_report *forms;
    size_t nforms;
    char **owed_tables, **owed_since; /* every table that still owes a VACUUM, and since when */
    size_t nowed;
};

enum verdict { VERDICT_COMPLIANT = 0, VERDICT_INCOMPLETE, VERDICT_NOT_COMPLIANT };

struct report {
    char *bi_error;     /* the BI database could not be read (NULL: read, or none configured) */
    int min_k;          /* bi.min_k, when a BI database is configured; 0: none */
    bool testdefs_report_only; /* testdefs = "report": the run leaves test definitions */
    char *generated_at; /* ISO UTC */
    char *at;           /* the instant evaluated, ISO UTC */
    bool at_future;     /* --at after now: the figures assume no run happens before then */
    const char *backup_retention;
    const char *timezone; /* configured, or NULL: the system's */
    struct tenant_report *tenants;
    size_t ntenants;
    enum verdict verdict;
};

/* Cards are registers with their own legal basis: the limit is about submissions. */
static inline bool form_past_limit(const struct form_report *fr)
{
    return !fr->of_card && (fr->days_past_limit > 0 || fr->testdefs_past_limit > 0 || fr->undated > 0 || fr->status_unknown_past > 0);
}

/* Submissions that still hold personal data the next run removes. */
static inline long long pending_of(const struct form_report *fr)
{
    return fr->counts[C_DUE] + fr->counts[C_DRAFTS_DUE] + fr->counts[C_INCOMPLETE];
}

/* A field column or a block's subfield ("f9.1"), not a w.c.s. metadata column. */
bool report_is_field_entry(const char *column);

/* A period for people, in their language: "30 days", "3 months", "1 year" (caller frees). */
char *report_period(int days);

/* "2026-06-01T02:00:00+02:00" in the report's time zone, from an ISO UTC value (NULL: "-"). */
void report_local_time(const char *iso_utc, char buf[40]);

void report_holds_free(struct report_hold *h, size_t n);

/* Free what they own (not the structs themselves). */
void tenant_report_free(struct tenant_report *tr);

/* A tenant's findings as bytes (pack.h), as a report worker hands them back, and read back (url left NULL:
 * it is the configuration's).  Unpacking returns false on bytes that do not hold a whole tenant. */
void tenant_report_pack(struct strbuf *out, const struct tenant_report *tr);
bool tenant_report_unpack(const char *data, size_t len, struct tenant_report *tr);

/* Renderers; each writes the whole report. */
void report_render_text(FILE *out, const struct report *r, const struct cfg *cfg);
void report_render_html(FILE *out, const struct report *r, const struct cfg *cfg);
void report_render_json(FILE *out, const struct report *r);
void report_render_csv(FILE *out, const struct report *r);
/* Returns the Nagios state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
int report_render_nagios(FILE *out, const struct report *r, const struct nagios_options *no);

/*
 * The BI line of a form (published, smallest group, held back) into buf;
 * true when more than half its rows are held back (flagged, with the field
 * that makes the groups small).
 */
bool report_bi_text(const struct report *r, const struct form_report *fr, char *buf, size_t n);

/* A VACUUM owed for longer than this is a warning; before, pending maintenance (autovacuum pays it). */
#define VACUUM_WARN_DAYS 7

/*
 * The tenant's pending VACUUMs as one line into buf (nothing when none):
 * how many tables, since when; true when the oldest is older than
 * VACUUM_WARN_DAYS at the report's time.
 */
/* The kept fields of a form that are personal by nature, as "column [varname], ..." (control
 * characters escaped), or NULL when there is none.  Caller frees. */
char *report_personal_kept(const struct form_report *fr);

/* What w.c.s.'s own logs keep past the legal limit about anonymised submissions, one line each
 * (translated; "" when the tenant has no such table). */
void report_wcs_logs_text(const struct tenant_report *tr, char *audit, size_t na, char *errors, size_t ne);

/* What the tenant's w.c.s. does of the files of blanked fields, from its site-options.cfg (translated; ""
 * when wcs_sites is not set). */
void report_files_text(const struct tenant_report *tr, char *buf, size_t n);

/* What the report says of a superuser connection (translated). */
const char *report_superuser_text(void);

bool report_vacuum_text(const struct report *r, const struct tenant_report *tr, char *buf, size_t n);

#endif
