/*
 * db.h: the one way this program talks to PostgreSQL.
 *
 * Every query goes through db_query, which checks the result status and
 * shape, keeps the server's message and SQLSTATE for the caller, and clears
 * results on every error path.  Values travel only as parameters; identifiers only through
 * db_quote_ident, and only when they come from the catalog.
 */
#ifndef DB_H
#define DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* type OIDs of parameters we send (pg_type.h is server-side only) */
#define DB_INT4OID 23
#define DB_INT8OID 20
#define DB_TEXTOID 25
#define DB_BYTEAOID 17
#define DB_TIMESTAMPTZOID 1184
#define DB_TEXTARRAYOID 1009
#define DB_BOOLOID 16
#define DB_JSONBOID 3802

/* SQLSTATEs the program tolerates or reports specially */
#define DB_SQLSTATE_LOCK_NOT_AVAILABLE "55P03"
#define DB_SQLSTATE_QUERY_CANCELED "57014"
#define DB_SQLSTATE_INSUFFICIENT_PRIVILEGE "42501"
#define DB_SQLSTATE_DEADLOCK "40P01"
#define DB_SQLSTATE_SERIALIZATION "40001"
#define DB_SQLSTATE_READ_ONLY "25006"

struct db {
    PGconn *conn;
    char *label;    /* who we talk to, for messages (a tenant name, never conninfo) */
    char sqlstate[6];
    char *error;    /* last error, one line */
};

/*
 * The one profile of every session the tool opens (tenant, BI, discovery,
 * grants), set right after connecting, as PostgreSQL's own client programs
 * pin theirs: search_path pg_catalog then pg_temp (nothing a database holds
 * elsewhere can stand in for a built-in, and a temporary table never shadows
 * one), UTC, the tool's lock and statement timeouts, no JIT (a batch is
 * short: compiling its statement cost a fifth of its time), and a lost
 * client noticed within a second.
 */
struct db_profile {
    int lock_timeout_ms;
    int statement_timeout_ms;
    bool read_only; /* the server refuses every write of the session */
};

/* The search_path of the profile. */
#define DB_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * Connects with the given conninfo (expanded, so it may be a full connection
 * string), application name "anonymizer" unless the conninfo sets one;
 * dbname, when not NULL, replaces the conninfo's database; then sets the
 * profile.  Returns 0, or AX_ERR_CONNECT (no session) or AX_ERR_DB (the
 * profile could not be set) with db->error set.  db_close must be called in
 * every case.
 */
int db_connect(struct db *db, const char *conninfo, const char *dbname, const char *label,
               const struct db_profile *profile);
/* Cancels a statement in flight (as fe_utils' disconnectDatabase does), then closes. */
void db_close(struct db *db);

/*
 * The shape a statement's result must have: ncols columns (-1: any), at
 * least min_rows and at most max_rows rows (-1: no limit).  A command
 * (INSERT, UPDATE, DDL without RETURNING) has no rows: DB_ANY accepts it.
 */
struct db_shape {
    int ncols;
    int min_rows;
    int max_rows;
};
#define DB_ANY ((struct db_shape){-1, 0, -1})
#define DB_ONE_ROW(ncols) ((struct db_shape){(ncols), 1, 1})
#define DB_AT_MOST_ONE_ROW(ncols) ((struct db_shape){(ncols), 0, 1})
#define DB_ROWS(ncols) ((struct db_shape){(ncols), 0, -1})

/*
 * The one query helper (after PostgreSQL's fe_utils executeQuery).  Runs one
 * statement with text parameters (types and values may be NULL when nparams
 * is 0; a NULL value sends SQL NULL), checks the result status and shape,
 * and returns 0 or AX_ERR_DB.  On failure db->error holds one line: the
 * condition the SQLSTATE names and the schema, table, column, constraint
 * and type the server gave (never its message text, which can quote a
 * value), or what was wrong with the shape, then the SQLSTATE and the
 * statement's first line; db->sqlstate keeps the SQLSTATE.  On success the
 * previous error is forgotten, and *res (when res is not NULL) receives the
 * result, which the caller PQclears; *res is NULL after a failure.
 */
int db_query(struct db *db, PGresult **res, struct db_shape shape, const char *sql, int nparams, const Oid *types,
             const char *const *values);

/* A statement whose rows, if any, are not wanted. */
static inline int db_command(struct db *db, const char *sql, int nparams, const Oid *types,
                             const char *const *values)
{
    return db_query(db, NULL, DB_ANY, sql, nparams, types, values);
}
static inline int db_cmd(struct db *db, const char *sql)
{
    return db_query(db, NULL, DB_ANY, sql, 0, NULL, NULL);
}

/*
 * Several statements in one string (simple query protocol, no parameters):
 * DDL that the server itself assembled (format() with %I and %L).  The
 * last result's status decides; returns 0 or AX_ERR_DB.
 */
int db_script(struct db *db, const char *sql);

/*
 * A pipeline (libpq pipeline mode): statements queued and sent without
 * waiting, executed by the server while the client does other work (on
 * other connections), their results collected later, in order.  The first
 * failure aborts the rest.  Results are counts: the first row's first and
 * second values (NULL as -1), or, for a statement without rows, the number
 * of rows it changed in out0.
 */
struct db_pipe_item {
    char *sql;
    long long *out0, *out1;
};
struct db_pipe {
    struct db_pipe_item *items;
    size_t n;
};
int db_pipe_begin(struct db *db, struct db_pipe *p);
int db_pipe_queue(struct db *db, struct db_pipe *p, const char *sql, int nparams, const Oid *types,
                  const char *const *values, long long *out0, long long *out1);
/* Sends everything queued; the server works on it from now on. */
int db_pipe_send(struct db *db);
/* Waits for every result; leaves pipeline mode.  0, or AX_ERR_DB with the first failure in db->error. */
int db_pipe_collect(struct db *db, struct db_pipe *p);

/*
 * Checks a result obtained without db_query (the COPY protocol): its status
 * must be want.  Records the error as db_query does.  r stays the caller's
 * (it may be NULL: a lost connection).  Returns 0 or AX_ERR_DB.
 */
int db_check_result(struct db *db, const PGresult *r, const char *sql, ExecStatusType want);

/*
 * Streams src's COPY (src_sql, TO STDOUT) into dst's COPY (dst_sql, FROM
 * STDIN); *copied: the rows dst took.  Both sides are left out of COPY mode
 * whatever happens; an error on either side is recorded on that side's db.
 * Returns 0 or AX_ERR_DB.
 */
int db_copy(struct db *src, struct db *dst, const char *src_sql, const char *dst_sql, long long *copied);

/* Records a libpq-side failure (no result to look at) with the statement, as db_query does. */
void db_set_conn_error(struct db *db, const char *sql);
/* Whether the server's texts (error messages, details, notices) are printed
 * on stderr (--debug-server-messages): they can quote a field's value, so
 * by default a failure keeps only its SQLSTATE and the names it concerns. */
void db_set_server_text(bool shown);

/* Whether the session's role is a superuser (the server reports is_superuser). */
bool db_is_superuser(const struct db *db);

/* True when the last error has this SQLSTATE. */
bool db_error_is(const struct db *db, const char *sqlstate);
/* Records an error message of our own (sqlstate left empty). */
void db_set_error(struct db *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Whether schema.name exists, and (readable, may be NULL) whether this
 * session may read it.  From the catalog: to_regclass() fails without USAGE
 * on the schema.
 */
int db_relation(struct db *db, const char *schema, const char *name, bool *exists, bool *readable);

/* Whether a role of that name exists on the server.  0 or an AX_ERR_* with db->error. */
int db_role_exists(struct db *db, const char *role, bool *exists);

/* A bigint column of a result row as a number; NULL as 0. */
long long db_value_ll(const PGresult *res, int row, int col);

/* Forgets the last error. */
void db_clear_error(struct db *db);


/* Quoted identifier, caller frees with free(). */
char *db_quote_ident(struct db *db, const char *ident);

/* Rolls back if a transaction is open; errors are ignored (used on error paths). */
void db_rollback_quietly(struct db *db);

/* Asks the server to cancel the statement in progress. */
void db_cancel(struct db *db);

/* The connection whose statement a signal cancels (NULL: none). */
void db_watch_cancel(struct db *db);
/* Cancels the watched connection's statement; async-signal-safe. */
void db_cancel_watched(void);

#endif
