/*
 * tenant.h: one tenant database: the session, its lock, and the forms found
 * in its catalog, each classified and with its SQL prepared (plan.h).
 */
#ifndef TENANT_H
#define TENANT_H

#include "app.h"
#include "classify.h"
#include "db.h"
#include "form.h"
#include "plan.h"

#include <stdbool.h>

/*
 * Advisory lock keys (two int4 keys): classid 'anon' (0x616e6f6e), then an
 * objid per purpose.  The tenant lock is session-level, held by run and
 * export for the whole tenant; the BI setup lock is transaction-level.
 */
#define LOCK_CLASSID "1634627438"
#define LOCK_TENANT_OBJID "1"
#define LOCK_TENANT LOCK_CLASSID ", " LOCK_TENANT_OBJID
#define LOCK_BI_SETUP LOCK_CLASSID ", 2"

struct tenant {
    struct app_tenant *app_tenant;
    const char *name;
    struct db db;
    struct plan_tenant facts;
    char now[64]; /* the clock reading cutoffs derive from */
    struct form *forms;
    size_t nforms;
    bool check_privileges; /* discovery checks it may read the definitions tables first */
};

/*
 * Connects and prepares the session: safe search_path, UTC, lock and
 * statement timeouts; read_only sessions refuse every write on the server
 * side.  Returns 0 or AX_ERR_CONNECT / AX_ERR_DB with t->db.error set; call
 * tenant_close in both cases.
 */
int tenant_open(struct tenant *t, const struct app *app, struct app_tenant *at, bool read_only);
void tenant_close(struct tenant *t);

/*
 * In a helper process forked from the tenant's coordinator (jobs.h): a
 * session of its own, the inherited one left alone (its socket closed in
 * this process only), everything else as discovered.  Never tenant_close
 * it: the helper ends with _exit.
 */
int tenant_helper_session(struct tenant *t, const struct app *app);

/* What tenant_begin does after connecting, in this order. */
enum tenant_begin_step {
    TB_READ_ONLY = 1 << 0, /* the session refuses writes */
    TB_LOCK = 1 << 1,      /* take the tenant lock (another run holding it: TENANT_PEER) */
    TB_SNAPSHOT = 1 << 2,  /* BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY */
    TB_CUTOFFS = 1 << 3,   /* compute every form's cutoff as of at_time (NULL: now) */
    TB_FETCH = 1 << 4,     /* fetch the definitions from w.c.s. first (tenants with a url) */
    TB_PRIV_RUN = 1 << 5,  /* check the role has what a run needs (privileges.h) */
    TB_PRIV_READ = 1 << 6, /* check the role has what a report needs */
    TB_PEER = 1 << 7,      /* with TB_LOCK: a tenant another run finished after this one started is TENANT_PEER */
    TB_WARN_SUPERUSER = 1 << 8, /* a superuser connection is warned about (shown with -q) */
};

/*
 * The sequence every command starts a tenant with: its definitions (fetched
 * first with TB_FETCH; a bad one fails the tenant before it connects), open,
 * then the steps asked for, and the discovery of its forms (before the
 * cutoffs).  Logs what
 * went wrong (the message stays in t->db.error) and returns TENANT_OK,
 * TENANT_UNREACHABLE, TENANT_PEER or TENANT_FAILED.  Call tenant_close in
 * every case.
 */
enum tenant_outcome tenant_begin(struct tenant *t, const struct app *app, struct app_tenant *at, unsigned steps,
                                 const char *at_time);

#endif
