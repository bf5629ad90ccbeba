/*
 * db.c: libpq wrapper.
 */
#include "db.h"
#include "ax.h"
#include "log.h"
#include "strbuf.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether the server's own texts (messages, details, notices) may be
 * printed: they can quote a field's value ("invalid input syntax for type
 * integer: \"...\"", a trigger's RAISE), so by default only what names
 * things is kept (db_set_server_text). */
static bool server_text_shown;

void db_set_server_text(bool shown)
{
    server_text_shown = shown;
}

/* The server's own words, on stderr only, when the operator asked for them. */
static void show_server_text(const struct db *db, const char *what, const PGresult *r)
{
    if (!server_text_shown || !r)
        return;
    static const int fields[] = {PG_DIAG_MESSAGE_PRIMARY, PG_DIAG_MESSAGE_DETAIL, PG_DIAG_MESSAGE_HINT,
                                 PG_DIAG_CONTEXT};
    struct strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const char *v = PQresultErrorField(r, fields[i]);
        if (v && *v)
            sb_appendf(&sb, "%s%s", sb.len ? " | " : "", v);
    }
    /* straight to stderr: never the syslog, the audit or a report */
    fprintf(stderr, "anonymizer: debug: %s: server %s (may quote personal data): ", db->label ? db->label : "?",
            what);
    for (const unsigned char *p = (const unsigned char *)(sb.buf ? sb.buf : ""); *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('\n', stderr);
    sb_free(&sb);
}

/* Server notices ("schema already exists, skipping") are detail, not news;
 * their text only with db_set_server_text (a trigger's RAISE NOTICE can
 * print a value). */
static void notice_to_log(void *arg, const PGresult *r)
{
    struct db *db = arg;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    log_debug("%s: server %s (SQLSTATE %s)", db->label ? db->label : "?", severity ? severity : "notice",
              state ? state : "none");
    show_server_text(db, "notice", r);
}

static void set_error_text(struct db *db, const char *text)
{
    free(db->error);
    db->error = ax_strdup(text);
    /* one line: libpq messages end with a newline and may hold several */
    for (char *p = db->error; *p; p++) {
        if (*p == '\n')
            *p = (p[1] ? ' ' : '\0');
        else if (*p == '\t')
            *p = ' ';
    }
}

void db_set_error(struct db *db, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    db->sqlstate[0] = '\0';
    set_error_text(db, buf);
}

/* The profile of db.h, in one statement. */
static int set_profile(struct db *db, const struct db_profile *p)
{
    char lock_ms[32], stmt_ms[32];
    snprintf(lock_ms, sizeof lock_ms, "%d", p->lock_timeout_ms);
    snprintf(stmt_ms, sizeof stmt_ms, "%d", p->statement_timeout_ms);
    const char *values[3] = {lock_ms, stmt_ms, p->read_only ? "on" : "off"};
    const Oid types[3] = {DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    int rc = db_query(db, NULL, DB_ONE_ROW(6),
                      "SELECT pg_catalog.set_config('search_path', '" DB_SEARCH_PATH "', false),"
                      " pg_catalog.set_config('TimeZone', 'UTC', false),"
                      " pg_catalog.set_config('lock_timeout', $1, false),"
                      " pg_catalog.set_config('statement_timeout', $2, false),"
                      " pg_catalog.set_config('default_transaction_read_only', $3, false),"
                      " pg_catalog.set_config('jit', 'off', false)",
                      3, types, values);
    /* a killed anonymizer's session ends within a second, even in a lock
     * wait, instead of holding its batch's rows until the wait is over */
    if (rc == AX_OK && PQserverVersion(db->conn) >= 140000)
        rc = db_cmd(db, "SELECT pg_catalog.set_config('client_connection_check_interval', '1s', false)");
    return rc;
}

int db_connect(struct db *db, const char *conninfo, const char *dbname, const char *label,
               const struct db_profile *profile)
{
    /* connect_timeout first so that the conninfo can override it; the
     * application name is a fallback so that operators can tell runs apart;
     * a second dbname is a plain database name that wins over the first */
    const char *keywords[] = {"connect_timeout", "dbname", "fallback_application_name", dbname ? "dbname" : NULL,
                              NULL};
    const char *values[] = {"10", conninfo, "anonymizer", dbname, NULL};

    memset(db, 0, sizeof *db);
    db->label = ax_strdup(label);
    db->conn = PQconnectdbParams(keywords, values, 1);
    if (!db->conn) {
        db_set_error(db, "out of memory");
        return AX_ERR_CONNECT;
    }
    if (PQstatus(db->conn) != CONNECTION_OK) {
        set_error_text(db, PQerrorMessage(db->conn));
        return AX_ERR_CONNECT;
    }
    PQsetNoticeReceiver(db->conn, notice_to_log, db);
    return set_profile(db, profile);
}

void db_close(struct db *db)
{
    /* a statement still running on the server (a signal, an error elsewhere): cancelled, not left to finish */
    if (db->conn && PQtransactionStatus(db->conn) == PQTRANS_ACTIVE)
        db_cancel(db);
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    free(db->label);
    db->label = NULL;
    free(db->error);
    db->error = NULL;
}

/* "first line of the statement", cut to a readable length */
static void statement_head(const char *sql, char *out, size_t outlen)
{
    size_t n = strcspn(sql ? sql : "", "\n");
    const size_t max = 72;
    if (n > max)
        snprintf(out, outlen, "%.*s...", (int)max, sql);
    else
        snprintf(out, outlen, "%.*s", (int)n, sql ? sql : "");
}

/* What a SQLSTATE means, in PostgreSQL's words (Appendix A, "PostgreSQL
 * Error Codes"): the conditions this tool meets, then the classes. */
static const char *sqlstate_text(const char *state)
{
    static const struct {
        const char *code, *text;
    } conditions[] = {
        {"22P02", "invalid text representation"}, {"22003", "numeric value out of range"},
        {"22001", "string data right truncation"}, {"22007", "invalid datetime format"},
        {"22008", "datetime field overflow"}, {"22012", "division by zero"},
        {"22021", "character not in repertoire"}, {"23502", "not null violation"},
        {"23503", "foreign key violation"}, {"23505", "unique violation"}, {"23514", "check violation"},
        {"23P01", "exclusion violation"}, {"25006", "read only sql transaction"},
        {"25P02", "in failed sql transaction"}, {"28000", "invalid authorization specification"},
        {"28P01", "invalid password"}, {"3D000", "invalid catalog name"}, {"3F000", "invalid schema name"},
        {"40001", "serialization failure"}, {"40P01", "deadlock detected"}, {"42501", "insufficient privilege"},
        {"42601", "syntax error"}, {"42703", "undefined column"}, {"42704", "undefined object"},
        {"42710", "duplicate object"}, {"42804", "datatype mismatch"}, {"42883", "undefined function"},
        {"42P01", "undefined table"}, {"42P06", "duplicate schema"}, {"42P07", "duplicate table"},
        {"53100", "disk full"}, {"53200", "out of memory"}, {"53300", "too many connections"},
        {"54000", "program limit exceeded"}, {"55000", "object not in prerequisite state"},
        {"55006", "object in use"}, {"55P03", "lock not available"}, {"57014", "query canceled"},
        {"57P01", "admin shutdown"}, {"57P02", "crash shutdown"}, {"57P03", "cannot connect now"},
        {"P0001", "raise exception"}, {"P0002", "no data found"}, {"P0003", "too many rows"},
        {"P0004", "assert failure"}, {"XX000", "internal error"}, {"XX001", "data corrupted"},
    };
    static const struct {
        const char *cls, *text;
    } classes[] = {
        {"08", "connection exception"}, {"0A", "feature not supported"}, {"21", "cardinality violation"},
        {"22", "data exception"}, {"23", "integrity constraint violation"}, {"25", "invalid transaction state"},
        {"28", "invalid authorization specification"}, {"2B", "dependent privilege descriptors still exist"},
        {"38", "external routine exception"}, {"39", "external routine invocation exception"},
        {"3B", "savepoint exception"}, {"40", "transaction rollback"},
        {"42", "syntax error or access rule violation"}, {"53", "insufficient resources"},
        {"54", "program limit exceeded"}, {"55", "object not in prerequisite state"},
        {"57", "operator intervention"}, {"58", "system error"}, {"72", "snapshot failure"},
        {"F0", "configuration file error"}, {"HV", "foreign data wrapper error"}, {"P0", "PL/pgSQL error"},
        {"XX", "internal error"},
    };
    for (size_t i = 0; i < sizeof conditions / sizeof *conditions; i++)
        if (strcmp(state, conditions[i].code) == 0)
            return conditions[i].text;
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (strncmp(state, classes[i].cls, 2) == 0)
            return classes[i].text;
    return "server error";
}

/* The error of a failed statement: what went wrong, SQLSTATE, statement. */
static void record_failure(struct db *db, const char *msg, const char *state, const char *sql)
{
    char head[96];
    statement_head(sql, head, sizeof head);
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, msg && *msg ? msg : "unknown error");
    /* libpq messages end with a newline: trim before adding ours */
    while (sb.len && (sb.buf[sb.len - 1] == '\n' || sb.buf[sb.len - 1] == ' '))
        sb.buf[--sb.len] = '\0';
    if (db->sqlstate[0])
        sb_appendf(&sb, " (SQLSTATE %s; statement: %s)", db->sqlstate, head);
    else
        sb_appendf(&sb, " (statement: %s)", head);
    set_error_text(db, sb.buf);
    sb_free(&sb);
    log_debug("%s: statement failed (SQLSTATE %s): %.300s", db->label ? db->label : "?",
              db->sqlstate[0] ? db->sqlstate : "none", sql ? sql : "");
}

/*
 * A statement the server refused: the condition its SQLSTATE names and the
 * diagnostic fields that name things (schema, table, column, constraint,
 * data type), never the message text, which can quote a value (the
 * "invalid input syntax" of a trigger's cast quotes the field).  That text
 * goes to stderr only, with db_set_server_text.
 */
static void record_server_failure(struct db *db, const PGresult *r, const char *state, const char *sql)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {PG_DIAG_SCHEMA_NAME, "schema"},         {PG_DIAG_TABLE_NAME, "table"},
        {PG_DIAG_COLUMN_NAME, "column"},         {PG_DIAG_CONSTRAINT_NAME, "constraint"},
        {PG_DIAG_DATATYPE_NAME, "data type"},
    };
    struct strbuf sb;
    sb_init(&sb);
    sb_append(&sb, sqlstate_text(state));
    const char *sep = ":";
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = PQresultErrorField(r, names[i].code);
        if (v && *v) {
            sb_appendf(&sb, "%s %s \"%s\"", sep, names[i].name, v);
            sep = ",";
        }
    }
    record_failure(db, sb.buf, state, sql);
    sb_free(&sb);
    show_server_text(db, "error", r);
}

void db_set_conn_error(struct db *db, const char *sql)
{
    record_failure(db, db->conn ? PQerrorMessage(db->conn) : "no connection", NULL, sql);
}

int db_script(struct db *db, const char *sql)
{
    PGresult *r = PQexec(db->conn, sql);
    int rc = db_check_result(db, r, sql, PGRES_COMMAND_OK);
    PQclear(r);
    return rc;
}

int db_check_result(struct db *db, const PGresult *r, const char *sql, ExecStatusType want)
{
    if (r && PQresultStatus(r) == want)
        return AX_OK;
    if (!r) {
        db_set_conn_error(db, sql);
        return AX_ERR_DB;
    }
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!msg && PQresultStatus(r) != PGRES_FATAL_ERROR && PQresultStatus(r) != PGRES_NONFATAL_ERROR) {
        char text[96];
        snprintf(text, sizeof text, "unexpected result status %s (expected %s)",
                 PQresStatus(PQresultStatus(r)), PQresStatus(want));
        record_failure(db, text, NULL, sql);
    } else if (state && *state) {
        record_server_failure(db, r, state, sql);
    } else {
        record_failure(db, msg ? msg : PQerrorMessage(db->conn), state, sql);
    }
    return AX_ERR_DB;
}

/* Whether the result has the shape the caller said; records the error if not. */
static bool check_shape(struct db *db, const PGresult *r, struct db_shape shape, const char *sql)
{
    int rows = PQntuples(r), cols = PQnfields(r);
    char text[128];
    if (shape.ncols >= 0 && cols != shape.ncols)
        snprintf(text, sizeof text, "unexpected result: %d column%s, expected %d", cols, cols == 1 ? "" : "s",
                 shape.ncols);
    else if (rows < shape.min_rows)
        snprintf(text, sizeof text, "unexpected result: %d row%s, expected at least %d", rows, rows == 1 ? "" : "s",
                 shape.min_rows);
    else if (shape.max_rows >= 0 && rows > shape.max_rows)
        snprintf(text, sizeof text, "unexpected result: %d rows, expected at most %d", rows, shape.max_rows);
    else
        return true;
    record_failure(db, text, NULL, sql);
    return false;
}

int db_query(struct db *db, PGresult **res, struct db_shape shape, const char *sql, int nparams, const Oid *types,
             const char *const *values)
{
    if (res)
        *res = NULL;
    PGresult *r = PQexecParams(db->conn, sql, nparams, types, values, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK && (shape.ncols <= 0 && shape.min_rows == 0)) {
        /* a command: no rows, which the shape allows */
    } else if (db_check_result(db, r, sql, PGRES_TUPLES_OK) != AX_OK || !check_shape(db, r, shape, sql)) {
        PQclear(r);
        return AX_ERR_DB;
    }
    db_clear_error(db);
    if (res)
        *res = r;
    else
        PQclear(r);
    return AX_OK;
}

int db_relation(struct db *db, const char *schema, const char *name, bool *exists, bool *readable)
{
    PGresult *res;
    const char *values[2] = {schema, name};
    const Oid types[2] = {DB_TEXTOID, DB_TEXTOID};
    int rc = db_query(db, &res, DB_ONE_ROW(2),
                     "SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0,"
                     " COALESCE(pg_catalog.bool_and(pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
                     "  AND pg_catalog.has_table_privilege(c.oid, 'SELECT')), false)"
                     " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                     "  ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                     " WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
                     2, types, values);
    if (rc)
        return rc;
    *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (readable)
        *readable = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    return AX_OK;
}

int db_role_exists(struct db *db, const char *role, bool *exists)
{
    PGresult *res;
    const char *values[1] = {role};
    int rc = db_query(db, &res, DB_ONE_ROW(1), "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles"
                      " WHERE rolname OPERATOR(pg_catalog.=) $1)",
                      1, NULL, values);
    if (rc)
        return rc;
    *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return AX_OK;
}

long long db_value_ll(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : atoll(PQgetvalue(res, row, col));
}

void db_clear_error(struct db *db)
{
    free(db->error);
    db->error = NULL;
    db->sqlstate[0] = '\0';
}

bool db_is_superuser(const struct db *db)
{
    const char *v = db->conn ? PQparameterStatus(db->conn, "is_superuser") : NULL;
    return v && strcmp(v, "on") == 0;
}

bool db_error_is(const struct db *db, const char *sqlstate)
{
    return strcmp(db->sqlstate, sqlstate) == 0;
}

char *db_quote_ident(struct db *db, const char *ident)
{
    char *q = PQescapeIdentifier(db->conn, ident, strlen(ident));
    if (!q) {
        /* only on out of memory or invalid encoding of a catalog name */
        fprintf(stderr, "anonymizer: fatal: cannot quote identifier\n");
        abort();
    }
    char *out = ax_strdup(q);
    PQfreemem(q);
    return out;
}

void db_rollback_quietly(struct db *db)
{
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
        return;
    PGTransactionStatusType ts = PQtransactionStatus(db->conn);
    if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
        PGresult *r = PQexec(db->conn, "ROLLBACK");
        PQclear(r);
    }
}

void db_cancel(struct db *db)
{
    if (!db->conn)
        return;
    PGcancel *c = PQgetCancel(db->conn);
    if (c) {
        char buf[256];
        PQcancel(c, buf, sizeof buf);
        PQfreeCancel(c);
    }
}

static PGcancel *volatile watched;

void db_watch_cancel(struct db *db)
{
    sigset_t block, old;
    ax_stop_signals(&block);
    /* the handler must never see a handle being freed */
    sigprocmask(SIG_BLOCK, &block, &old);
    PGcancel *prev = watched;
    watched = db && db->conn ? PQgetCancel(db->conn) : NULL;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (prev)
        PQfreeCancel(prev);
}

void db_cancel_watched(void)
{
    PGcancel *c = watched;
    if (c) {
        char buf[256];
        PQcancel(c, buf, sizeof buf);
    }
}

/* -- pipelines ----------------------------------------------------------------- */

static void pipe_free(struct db_pipe *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i].sql);
    free(p->items);
    p->items = NULL;
    p->n = 0;
}

int db_pipe_begin(struct db *db, struct db_pipe *p)
{
    memset(p, 0, sizeof *p);
    if (PQenterPipelineMode(db->conn) != 1) {
        db_set_conn_error(db, "(entering pipeline mode)");
        return AX_ERR_DB;
    }
    return AX_OK;
}

int db_pipe_queue(struct db *db, struct db_pipe *p, const char *sql, int nparams, const Oid *types,
                  const char *const *values, long long *out0, long long *out1)
{
    if (PQsendQueryParams(db->conn, sql, nparams, types, values, NULL, NULL, 0) != 1) {
        db_set_conn_error(db, sql);
        return AX_ERR_DB;
    }
    p->items = ax_reallocarray(p->items, p->n + 1, sizeof *p->items);
    p->items[p->n++] = (struct db_pipe_item){ax_strdup(sql), out0, out1};
    return AX_OK;
}

int db_pipe_send(struct db *db)
{
    if (PQpipelineSync(db->conn) != 1) {
        db_set_conn_error(db, "(pipeline sync)");
        return AX_ERR_DB;
    }
    return AX_OK;
}

/* One queued statement's results, up to the NULL that ends them. */
static int pipe_result(struct db *db, const struct db_pipe_item *it, int rc)
{
    PGresult *r;
    bool seen = false;
    while ((r = PQgetResult(db->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        seen = true;
        if (rc == AX_OK && st == PGRES_TUPLES_OK) {
            if (it->out0 && PQntuples(r) > 0)
                *it->out0 = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
            if (it->out1 && PQntuples(r) > 0 && PQnfields(r) > 1)
                *it->out1 = PQgetisnull(r, 0, 1) ? -1 : atoll(PQgetvalue(r, 0, 1));
        } else if (rc == AX_OK && st == PGRES_COMMAND_OK) {
            if (it->out0)
                *it->out0 = atoll(PQcmdTuples(r));
        } else if (rc == AX_OK && st != PGRES_PIPELINE_ABORTED) {
            rc = db_check_result(db, r, it->sql, PGRES_COMMAND_OK);
        }
        PQclear(r);
    }
    if (!seen && rc == AX_OK) {
        db_set_conn_error(db, it->sql);
        rc = AX_ERR_DB;
    }
    return rc;
}

int db_pipe_collect(struct db *db, struct db_pipe *p)
{
    int rc = AX_OK;
    for (size_t i = 0; i < p->n; i++)
        rc = pipe_result(db, &p->items[i], rc);
    /* the sync point */
    PGresult *r;
    while ((r = PQgetResult(db->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC)
            break;
    }
    if (PQexitPipelineMode(db->conn) != 1 && rc == AX_OK) {
        db_set_conn_error(db, "(leaving pipeline mode)");
        rc = AX_ERR_DB;
    }
    pipe_free(p);
    return rc;
}
