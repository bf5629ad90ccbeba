/*
 * testdefs.h: the test definitions w.c.s. makes from real submissions.
 *
 * TestDef.create_from_formdata keeps, for as long as the test lives, the
 * answers of a real submission (testdef.data, files in base64, and its
 * receipt time), a deep copy of its submitter (a users row with test_uuid
 * set) and snapshots of both (XML serialization, or patches), which w.c.s.
 * never deletes while the objects live.  Once the form's period has passed
 * since the test was made (its first snapshot, else the submission's
 * receipt), the run blanks in testdef.data the fields the form's definition
 * blanks (the test keeps its structure and kept fields), the test user's
 * personal columns (test_uuid kept, so that the test still finds it), and
 * the same values in the snapshots of both; with testdefs = "report" it
 * leaves them and the report says so.  One transaction per test definition.
 */
#ifndef TESTDEFS_H
#define TESTDEFS_H

#include "tenant.h"

struct testdef_counts {
    long long total;      /* test definitions made from this form's submissions */
    long long due;        /* the period passed since made, personal data still held */
    long long past_limit; /* of those, made before the legal limit */
    char *oldest;         /* when the oldest still holding personal data was made (ISO UTC), or NULL */
};

/* Whether the tenant has test definitions at all (testdef table). */
bool testdefs_present(const struct tenant *t);

/* A form's test definitions as of its cutoff and the legal limit (timestamptz text). */
int testdefs_count(struct tenant *t, const struct form *f, const char *legal_limit, struct testdef_counts *out);

/* Treats every due test definition of the form, one transaction each; *done receives how many. */
int testdefs_anonymise(struct tenant *t, const struct form *f, long long *done);

#endif
