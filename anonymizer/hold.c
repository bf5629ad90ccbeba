/*
 * hold.c: the hold command (see hold.h).
 */
#include "hold.h"
#include "audit.h"
#include "ax.h"
#include "chain.h"
#include "escape.h"
#include "i18n.h"
#include "log.h"
#include "sqltext.h"
#include "tenant.h"
#include "timeutil.h"

#include <json-c/json.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum hold_action hold_parse_action(const char *word)
{
    return strcmp(word, "add") == 0      ? HOLD_ADD
           : strcmp(word, "remove") == 0 ? HOLD_REMOVE
           : strcmp(word, "list") == 0   ? HOLD_LIST
                                         : 0;
}

bool hold_valid_reason(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || n > 1000)
        return false;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* Who asks: the OS user, and who ran sudo when it was used. */
static char *os_user(void)
{
    struct passwd *pw = getpwuid(geteuid());
    const char *sudo = getenv("SUDO_USER");
    char *name = pw ? ax_strdup(pw->pw_name) : ax_asprintf("uid %u", (unsigned)geteuid());
    if (sudo && *sudo && hold_valid_reason(sudo) && strlen(sudo) < 64) {
        char *both = ax_asprintf("%s (sudo by %s)", name, sudo);
        free(name);
        return both;
    }
    return name;
}

static const struct form *find_form(const struct tenant *t, const char *slug)
{
    for (size_t i = 0; i < t->nforms; i++)
        if (t->forms[i].kind != FORM_KIND_TEST && strcmp(t->forms[i].slug, slug) == 0)
            return &t->forms[i];
    return NULL;
}

/* The submission to hold: it must exist and still hold personal data. */
static int check_submission(struct tenant *t, const struct form *f, long long id)
{
    PGresult *res;
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", id);
    char *sql = ax_asprintf("SELECT m.anonymised IS NOT NULL FROM public.%s m WHERE m.id OPERATOR(pg_catalog.=) $1",
                            f->q_table);
    int rc = db_query(&t->db, &res, DB_AT_MOST_ONE_ROW(1), sql, 1, (const Oid[]){DB_INT8OID},
                      (const char *const[]){idtext});
    free(sql);
    if (rc) {
        log_error("%s: %s", t->name, t->db.error);
        return EXIT_SOME_FAILED;
    }
    int status = EXIT_OK;
    if (PQntuples(res) == 0) {
        log_error("%s: %s has no submission %lld", t->name, f->label, id);
        status = EXIT_USAGE;
    } else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
        log_error("%s: submission %lld of %s is anonymised already: a hold would keep nothing", t->name, id, f->label);
        status = EXIT_USAGE;
    }
    PQclear(res);
    return status;
}

/* The hold as the history records it. */
static json_object *hold_details(const PGresult *res, int row, const char *why)
{
    static const char *const keys[] = {"hold_id", "form", "table", "submission_id", "reason", "created_at", "until",
                                       "os_user", "db_role"};
    json_object *o = json_object_new_object();
    for (size_t k = 0; k < AX_ARRAY_LEN(keys); k++)
        json_object_object_add(o, keys[k], PQgetisnull(res, row, (int)k)
                                               ? NULL
                                               : json_object_new_string(PQgetvalue(res, row, (int)k)));
    if (why)
        json_object_object_add(o, "removal_reason", json_object_new_string(why));
    return o;
}

#define HOLD_COLUMNS                                                                                               \
    "hold_id::text, slug, table_name, submission_id::text, reason, " SQL_ISO_UTC("created_at") ", "                \
    SQL_ISO_UTC("until") ", os_user, db_role"

/* Adds or removes, with its history entry, in one transaction; *res the holds concerned. */
static int change(struct tenant *t, const struct app *app, const struct hold_options *o, const struct form *f,
                  PGresult **res)
{
    char idtext[32], until[32];
    snprintf(idtext, sizeof idtext, "%lld", o->id);
    if (o->until)
        tm_format_utc(o->until, until);
    char *who = os_user();
    int rc = db_cmd(&t->db, "BEGIN");
    if (rc == AX_OK && o->action == HOLD_ADD)
        rc = db_query(&t->db, res, DB_ONE_ROW(9),
                      "INSERT INTO anonymizer.holds (table_name, slug, submission_id, reason, until, os_user)"
                      " VALUES ($1, $2, $3::bigint, $4, $5::timestamptz, $6) RETURNING " HOLD_COLUMNS,
                      6, NULL, (const char *const[]){f->table, f->slug, o->id ? idtext : NULL, o->reason,
                                                     o->until ? until : NULL, who});
    else if (rc == AX_OK)
        rc = db_query(&t->db, res, DB_ROWS(9),
                      "DELETE FROM anonymizer.holds WHERE table_name OPERATOR(pg_catalog.=) $1"
                      " AND submission_id IS NOT DISTINCT FROM $2::bigint RETURNING " HOLD_COLUMNS,
                      2, NULL, (const char *const[]){f->table, o->id ? idtext : NULL});
    free(who);
    if (rc == AX_OK && PQntuples(*res) == 0) {
        db_rollback_quietly(&t->db);
        return AX_OK;
    }
    json_object *details = json_object_new_object(), *holds = json_object_new_array();
    for (int i = 0; rc == AX_OK && i < PQntuples(*res); i++)
        json_object_array_add(holds, hold_details(*res, i, o->action == HOLD_REMOVE ? o->reason : NULL));
    json_object_object_add(details, "holds", holds);
    struct chain_head head = {0};
    if (rc == AX_OK)
        rc = audit_record(t, app, o->action == HOLD_ADD ? "hold add" : "hold remove", details);
    json_object_put(details);
    if (rc == AX_OK)
        rc = chain_seal_in(t, app, app->run_id, &head);
    if (rc == AX_OK)
        rc = db_cmd(&t->db, "COMMIT");
    if (rc) {
        db_rollback_quietly(&t->db);
        return rc;
    }
    chain_sealed(app, t->name, &head);
    return AX_OK;
}

static int add_or_remove(const struct app *app, const struct hold_options *o, FILE *out)
{
    if (app->ntenants != 1) {
        log_error("hold %s: name one tenant with -t", o->action == HOLD_ADD ? "add" : "remove");
        return EXIT_USAGE;
    }
    struct tenant t;
    enum tenant_outcome outcome = tenant_begin(&t, app, &app->tenants[0], 0, NULL);
    if (outcome != TENANT_OK) {
        tenant_close(&t);
        return outcome == TENANT_UNREACHABLE ? EXIT_UNAVAILABLE : EXIT_SOME_FAILED;
    }
    int status = EXIT_OK;
    PGresult *res = NULL;
    const struct form *f = find_form(&t, o->form);
    if (!f) {
        log_error("%s: no form or card \"%s\"", t.name, o->form);
        status = EXIT_USAGE;
    } else if (o->action == HOLD_ADD && o->id && (status = check_submission(&t, f, o->id)) != EXIT_OK) {
        /* said */
    } else if (audit_ensure_schema(&t) != AX_OK || change(&t, app, o, f, &res) != AX_OK) {
        log_error("%s: %s", t.name, t.db.error);
        status = EXIT_SOME_FAILED;
    } else if (PQntuples(res) == 0) {
        log_error("%s: no hold on %s%s", t.name, f->label, o->id ? " for that submission" : " as a whole");
        status = EXIT_USAGE;
    } else {
        for (int i = 0; i < PQntuples(res); i++)
            fprintf(out, "%s: hold %s %s: %s, %s%s%s\n", t.name, PQgetvalue(res, i, 0),
                    o->action == HOLD_ADD ? "added" : "removed", f->label,
                    PQgetisnull(res, i, 3) ? "every submission" : "submission ",
                    PQgetisnull(res, i, 3) ? "" : PQgetvalue(res, i, 3),
                    PQgetisnull(res, i, 6) ? ", until removed" : "");
        if (o->action == HOLD_ADD && !PQgetisnull(res, 0, 6))
            fprintf(out, "%s: it ends at %s\n", t.name, PQgetvalue(res, 0, 6));
    }
    PQclear(res);
    tenant_close(&t);
    return status;
}

int hold_read(struct tenant *t, const char *at, struct report_hold **holds, size_t *n)
{
    *holds = NULL;
    *n = 0;
    bool exists = false, readable = false;
    PGresult *res;
    int rc = db_relation(&t->db, "anonymizer", "holds", &exists, &readable);
    if (rc || !exists)
        return rc;
    if (!readable) {
        db_set_error(&t->db, "no SELECT privilege on anonymizer.holds");
        return AX_ERR_DB;
    }
    rc = db_query(&t->db, &res, DB_ROWS(12),
                  "SELECT hold_id, slug, table_name, COALESCE(submission_id, 0), reason, " SQL_ISO_UTC("created_at") ", "
                  SQL_ISO_UTC("until") ", os_user, db_role,"
                  " pg_catalog.floor(pg_catalog.date_part('epoch', $1::timestamptz OPERATOR(pg_catalog.-) created_at)"
                  " OPERATOR(pg_catalog./) 86400)::bigint,"
                  " until IS NOT NULL AND until OPERATOR(pg_catalog.<=) $1::timestamptz,"
                  " created_at OPERATOR(pg_catalog.<) ($1::timestamptz OPERATOR(pg_catalog.-) '1 year'::interval)"
                  " FROM anonymizer.holds ORDER BY hold_id",
                  1, NULL, (const char *const[]){at});
    if (rc)
        return rc;
    *n = (size_t)PQntuples(res);
    *holds = ax_calloc(*n + 1, sizeof **holds);
    for (size_t i = 0; i < *n; i++) {
        int r = (int)i;
        struct report_hold *h = &(*holds)[i];
        h->id = atoll(PQgetvalue(res, r, 0));
        h->slug = ax_strdup(PQgetvalue(res, r, 1));
        h->table = ax_strdup(PQgetvalue(res, r, 2));
        h->submission_id = atoll(PQgetvalue(res, r, 3));
        h->reason = ax_strdup(PQgetvalue(res, r, 4));
        h->created_at = ax_strdup(PQgetvalue(res, r, 5));
        h->until = PQgetisnull(res, r, 6) ? NULL : ax_strdup(PQgetvalue(res, r, 6));
        h->os_user = ax_strdup(PQgetvalue(res, r, 7));
        h->db_role = ax_strdup(PQgetvalue(res, r, 8));
        h->age_days = atoll(PQgetvalue(res, r, 9));
        h->expired = strcmp(PQgetvalue(res, r, 10), "t") == 0;
        h->over_a_year = strcmp(PQgetvalue(res, r, 11), "t") == 0;
    }
    PQclear(res);
    return AX_OK;
}

/* One hold for people, in their language (caller frees). */
char *hold_text(const struct report_hold *h)
{
    char created[40], until[40], what[64];
    report_local_time(h->created_at, created);
    report_local_time(h->until, until);
    if (h->submission_id)
        snprintf(what, sizeof what, _("submission %lld"), h->submission_id);
    else
        snprintf(what, sizeof what, "%s", _("every submission"));
    char *ends = h->until ? ax_asprintf(h->expired ? _("ended %s") : _("ends %s"), until)
                          : ax_strdup(_("until removed"));
    char *text = ax_asprintf(_("hold %lld on %s, %s: \"%s\"; placed %s (%lld days ago) by %s, role %s; %s%s%s"), h->id,
                             h->slug, what, h->reason, created, h->age_days, h->os_user, h->db_role, ends,
                             h->expired ? _(" (EXPIRED: it keeps nothing; remove it)") : "",
                             h->over_a_year && !h->expired ? _(" (over a year: review it)") : "");
    free(ends);
    return text;
}

static json_object *hold_json(const struct report_hold *h)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(h->id));
    json_object_object_add(o, "form", esc_json_string(h->slug));
    json_object_object_add(o, "table", esc_json_string(h->table));
    json_object_object_add(o, "submission_id", h->submission_id ? json_object_new_int64(h->submission_id) : NULL);
    json_object_object_add(o, "reason", esc_json_string(h->reason));
    json_object_object_add(o, "created_at", esc_json_string(h->created_at));
    json_object_object_add(o, "age_days", json_object_new_int64(h->age_days));
    json_object_object_add(o, "until", esc_json_string(h->until));
    json_object_object_add(o, "os_user", esc_json_string(h->os_user));
    json_object_object_add(o, "db_role", esc_json_string(h->db_role));
    json_object_object_add(o, "expired", json_object_new_boolean(h->expired));
    json_object_object_add(o, "over_a_year", json_object_new_boolean(h->over_a_year));
    return o;
}

json_object *hold_list_json(const struct report_hold *h, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, hold_json(&h[i]));
    return a;
}

static int list(const struct app *app, const struct hold_options *o, FILE *out)
{
    int status = EXIT_OK;
    char now[32];
    tm_format_utc(time(NULL), now);
    json_object *root = json_object_new_array();
    for (size_t i = 0; i < app->ntenants; i++) {
        struct tenant t;
        struct report_hold *holds = NULL;
        size_t n = 0;
        enum tenant_outcome outcome = tenant_open(&t, app, &app->tenants[i], true) == AX_OK ? TENANT_OK
                                                                                            : TENANT_UNREACHABLE;
        if (outcome == TENANT_OK && hold_read(&t, now, &holds, &n) != AX_OK)
            outcome = TENANT_FAILED;
        if (outcome != TENANT_OK) {
            log_error("%s: %s", app->tenants[i].cfg->name, t.db.error);
            status = EXIT_SOME_FAILED;
        }
        if (o->format == REPORT_JSON) {
            json_object *to = json_object_new_object();
            json_object_object_add(to, "tenant", esc_json_string(app->tenants[i].cfg->name));
            json_object_object_add(to, "error", outcome == TENANT_OK ? NULL : esc_json_string(t.db.error));
            json_object_object_add(to, "holds", hold_list_json(holds, n));
            json_object_array_add(root, to);
        } else if (outcome == TENANT_OK) {
            char *name = esc_text(app->tenants[i].cfg->name);
            if (n)
                fprintf(out, "%s\n", name);
            else
                fprintf(out, _("%s: no legal hold\n"), name);
            free(name);
            for (size_t k = 0; k < n; k++) {
                char *text = hold_text(&holds[k]), *shown = esc_text(text);
                fprintf(out, "  %s\n", shown);
                free(text);
                free(shown);
            }
        }
        report_holds_free(holds, n);
        tenant_close(&t);
    }
    if (o->format == REPORT_JSON) {
        esc_json_print(out, root);
    }
    json_object_put(root);
    return status;
}

int cmd_hold(const struct app *app, const struct hold_options *opts, FILE *out)
{
    return opts->action == HOLD_LIST ? list(app, opts, out) : add_or_remove(app, opts, out);
}
