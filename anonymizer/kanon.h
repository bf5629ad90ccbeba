/*
 * kanon.h: k-anonymity of the BI export.  The staged rows of one form are
 * published only where every combination of quasi-identifiers (receipt and
 * done times as published, channel, kept fields not declared harmless;
 * tenant and form are those of the form) is shared by at least min_k rows
 * of that form in BI (grouped by a 64-bit hash of them, qi_group); smaller groups are held back (ids only, in
 * held_back), or with generalise their times coarsened (day, week, month)
 * until their group is large enough.  See man/anonymizer-bi.7.
 */
#ifndef KANON_H
#define KANON_H

#include "bi.h"

struct kanon_params {
    const char *tenant;
    const char *form_id;  /* text */
    int min_k;            /* 1: everything is published, no group is computed */
    const char *harmless; /* text[] literal: the fields keys that are not quasi-identifiers */
    bool generalise;
    const char *precision; /* the configured time precision: minute, hour or day */
    bool recheck_all;      /* the quasi-identifiers or k changed: every group of the form is checked again */
    bool form_empty;       /* BI holds no row of the form: the decided rows are inserted, not merged */
};

struct kanon_result {
    long long inserted, updated; /* published */
    long long held;              /* staged rows held back */
    long long withdrawn;         /* rows taken out of BI: their group fell under min_k */
    long long generalised;       /* published with coarsened times */
    long long smallest;          /* the smallest group of the form after the merge; -1: none or not computed */
    long long held_total;        /* rows of the form held back after the merge */
    /* filled as the results arrive; kanon_done adds them up */
    long long passes[16];
    int npasses;
    long long withdrawn_parts[2];
};

/*
 * Queues, in the caller's pipeline on the BI session (db_pipe), the
 * statements that publish the staged rows (pg_temp.anonymizer_stage) of one
 * form, in the caller's transaction: the server works on them while the
 * client reads the next form.  r is filled when the pipeline is collected;
 * then kanon_done.
 */
int kanon_queue(struct bi *bi, struct db_pipe *pipe, const struct kanon_params *kp, struct kanon_result *r);
void kanon_done(struct kanon_result *r);

#endif
