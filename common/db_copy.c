/*
 * db_copy.c: one session's COPY ... TO STDOUT streamed into another's COPY
 * ... FROM STDIN, chunk by chunk (see db.h): memory does not depend on the
 * number of rows.
 */
#include "db.h"
#include "ax.h"

#include <stdlib.h>

/* Ends the destination's COPY (aborting it when abort_msg is not NULL) and reads its final result. */
static int end_copy_in(struct db *dst, const char *dst_sql, const char *abort_msg, long long *copied)
{
    int rc = AX_OK;
    if (PQputCopyEnd(dst->conn, abort_msg) != 1) {
        db_set_conn_error(dst, dst_sql);
        rc = AX_ERR_DB;
    }
    PGresult *r;
    while ((r = PQgetResult(dst->conn))) {
        if (rc == AX_OK && !abort_msg && (rc = db_check_result(dst, r, dst_sql, PGRES_COMMAND_OK)) == AX_OK)
            *copied = atoll(PQcmdTuples(r)); /* "COPY n" */
        PQclear(r);
    }
    return rc;
}

/* Copies the source's COPY OUT data into the destination's COPY IN. */
static int pump_data(struct db *src, struct db *dst, const char *src_sql, const char *dst_sql)
{
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(src->conn, &buf, 0);
        if (n == -1)
            break;
        if (n == -2) {
            db_set_conn_error(src, src_sql);
            return AX_ERR_DB;
        }
        int ok = PQputCopyData(dst->conn, buf, n);
        PQfreemem(buf);
        if (ok != 1) {
            db_set_conn_error(dst, dst_sql);
            /* stop the source and drain what it already sent */
            db_cancel(src);
            while ((n = PQgetCopyData(src->conn, &buf, 0)) > 0)
                PQfreemem(buf);
            return AX_ERR_DB;
        }
    }
    return AX_OK;
}

int db_copy(struct db *src, struct db *dst, const char *src_sql, const char *dst_sql, long long *copied)
{
    PGresult *r = PQexec(dst->conn, dst_sql);
    int rc = db_check_result(dst, r, dst_sql, PGRES_COPY_IN);
    PQclear(r);
    if (rc)
        return rc;
    r = PQexec(src->conn, src_sql);
    rc = db_check_result(src, r, src_sql, PGRES_COPY_OUT);
    PQclear(r);
    if (rc) {
        end_copy_in(dst, dst_sql, "source query failed", copied);
        return rc;
    }
    rc = pump_data(src, dst, src_sql, dst_sql);
    /* the source's final status */
    while ((r = PQgetResult(src->conn))) {
        if (rc == AX_OK)
            rc = db_check_result(src, r, src_sql, PGRES_COMMAND_OK);
        PQclear(r);
    }
    int end_rc = end_copy_in(dst, dst_sql, rc == AX_OK ? NULL : "source failed", copied);
    return rc ? rc : end_rc;
}
