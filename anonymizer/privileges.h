/*
 * privileges.h: what each role needs on a tenant, in one place: the grants
 * command prints it, and run, report and export check it before they touch
 * anything, so that a missing grant is one clear error naming the privilege
 * and the table, not a failure halfway through a tenant.
 */
#ifndef PRIVILEGES_H
#define PRIVILEGES_H

#include "db.h"
#include "form.h"
#include "plan.h"

enum priv_role {
    PRIV_RUN,  /* run (and export, which the run role does): changes submissions */
    PRIV_READ, /* report: reads only */
};

struct priv_need {
    char *table;            /* qualified and quoted: public."formdata_1_x" */
    const char *privileges; /* "SELECT, UPDATE, DELETE" */
    bool optional;          /* granted by "grants", not required: without it a part of the report says so */
};

struct priv_list {
    struct priv_need *items;
    size_t n;
};

/* The table privileges role needs on the tenant's tables (as discovered: the tenant-wide tables facts says
 * exist, and the forms'). */
void privileges_needed(const struct plan_tenant *facts, const struct form *forms, size_t nforms, enum priv_role role,
                       struct priv_list *out);
void priv_list_free(struct priv_list *l);

/*
 * Checks that the session's role has them, and for PRIV_RUN that it can own
 * its anonymizer schema (it owns it, or may create it).  Returns AX_OK, or
 * AX_ERR_DB with one line in db->error naming the first missing privilege
 * and its object.
 */
int privileges_check(struct db *db, const struct plan_tenant *facts, const struct form *forms, size_t nforms,
                     enum priv_role role);

/*
 * For a run, the forms' own tables are checked apart: privileges_check
 * leaves them out, and here a form whose table or history table lacks a
 * privilege is left out of the run (f->sql.unsupported says why; the other
 * forms go on).  Returns how many forms were left out (*first: the first
 * reason, caller frees), or -1 with db->error set.
 */
int privileges_check_forms(struct db *db, struct form *forms, size_t nforms, char **first);

/* The part discovery needs first: USAGE on public, SELECT on formdefs and carddefs. */
int privileges_check_definitions(struct db *db, const struct plan_tenant *facts);

/* Whether the session's role owns (or is a member of the owner of) the table: VACUUM needs it. */
int privileges_owns(struct db *db, const char *quoted_table, bool *owns);

/*
 * Whether the tables w.c.s. creates later (a new form, card or test table)
 * will be the role's to use: for each role that owns w.c.s.'s tables
 * (formdefs, carddefs) and is not one the connected role belongs to, its
 * default privileges in public must give the connected role what role
 * needs (ALTER DEFAULT PRIVILEGES, printed by "anonymizer grants").
 * Returns 0 and *missing NULL when they do, or the first owner that does
 * not in *missing (caller frees); an AX_ERR_* with db->error on failure.
 */
int privileges_check_future(struct db *db, enum priv_role role, char **missing);

/* The roles that own w.c.s.'s tables in public (formdefs, carddefs, the data tables): one column, owner (oid). */
#define WCS_OWNERS                                                                                                 \
    "SELECT DISTINCT c.relowner AS owner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"               \
    " ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE n.nspname OPERATOR(pg_catalog.=) 'public'"              \
    " AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])"                                  \
    " AND (c.relname OPERATOR(pg_catalog.=) ANY ('{formdefs,carddefs}'::pg_catalog.text[])"                        \
    " OR pg_catalog.starts_with(c.relname, 'formdata_') OR pg_catalog.starts_with(c.relname, 'carddata_'))"

#endif
