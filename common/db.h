/*
 * db.h: the one way this program talks to PostgreSQL.
 *
 * Every query goes through db_exec, which checks the result status, keeps the
 * server's message and SQLSTATE for the caller, and clears results on every
 * error path.  Values travel only as parameters; identifiers only through
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
 * Connects with the given conninfo (expanded, so it may be a full connection
 * string), application name "anonymizer" unless the conninfo sets one;
 * dbname, when not NULL, replaces the conninfo's database.  Returns 0, or
 * AX_ERR_CONNECT with db->error set.  db_close must be called in both cases.
 */
int db_connect(struct db *db, const char *conninfo, const char *dbname, const char *label);
void db_close(struct db *db);

/*
 * Runs one statement.  types and values may be NULL when nparams is 0; a
 * NULL entry of values sends SQL NULL.  When res is not NULL it receives the
 * result on success (caller PQclears it).  Returns 0 or AX_ERR_DB.
 */
int db_exec(struct db *db, PGresult **res, const char *sql, int nparams, const Oid *types,
            const char *const *values);
static inline int db_cmd(struct db *db, const char *sql)
{
    return db_exec(db, NULL, sql, 0, NULL, NULL);
}

/* Sends one statement with binary parameters (for bytea). */
int db_exec_binary(struct db *db, PGresult **res, const char *sql, int nparams, const Oid *types,
                   const char *const *values, const int *lengths, const int *formats);

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
