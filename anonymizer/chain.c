/*
 * chain.c: the history's chain (see chain.h).  The canonical text of an
 * entry is the server's jsonb text of its columns (keys sorted, numbers and
 * times in one form), so that the seal does not depend on how a client
 * reads them; the seal is computed here, with the key that never leaves the
 * host.
 */
#include "chain.h"
#include "ax.h"
#include "i18n.h"
#include "log.h"
#include "report_model.h"
#include "sqltext.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Serialises the sealers of one tenant (runs, holds): with LOCK_CLASSID, as the tenant lock. */
#define LOCK_CHAIN LOCK_CLASSID ", 3"

#define ISO_US(x) "pg_catalog.to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* What an entry's seal covers: every column but seq (the links give the order) and mac. */
#define CANONICAL                                                                                                  \
    "pg_catalog.jsonb_build_object('run_id', run_id, 'tenant', tenant, 'command', command,"                       \
    " 'started_at', " ISO_US("started_at") ", 'finished_at', " ISO_US("finished_at") ","                           \
    " 'version', version, 'host', host, 'config_sha256', config_sha256, 'forms', forms, 'outcome', outcome,"     \
    " 'error', error, 'exported', exported, 'details', details, 'key_id', key_id, 'prev_mac', prev_mac,"         \
    " 'chain_note', chain_note, 'sealed_at', " ISO_US("sealed_at") ")::text"

/* The chain notes (stored, sealed): a chain's first entry, a new key, a head found missing. */
/* a chain's first entry says how many entries had no seal then (the history before the chain) */
#define NOTE_START "start"
#define NOTE_KEY "key-change "
#define NOTE_HEAD_MISSING "head-missing "

void chain_mac(const struct chain_key *key, const char *canonical, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key->key, (int)key->len, (const unsigned char *)canonical, strlen(canonical), md, &len);
    for (unsigned int i = 0; i < 32 && i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

/* -- this host's head ------------------------------------------------------------------ */

static char *head_path(const struct app *app, const char *tenant)
{
    char *dir = cfg_tenant_dirname(tenant);
    char *path = ax_asprintf("%s/%s.head", app->cfg->audit.head_directory, dir);
    free(dir);
    return path;
}

/* The head this host sealed last: true when known (seq, mac). */
static bool head_read(const struct app *app, const char *tenant, long long *seq, char mac[65])
{
    char *path = head_path(app, tenant);
    FILE *fp = fopen(path, "r");
    free(path);
    if (!fp)
        return false;
    bool ok = fscanf(fp, "%lld %64[0-9a-f]", seq, mac) == 2 && strlen(mac) == 64;
    fclose(fp);
    return ok;
}

static void head_write(const struct app *app, const char *tenant, long long seq, const char *mac)
{
    const char *dir = app->cfg->audit.head_directory;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        log_warning("%s: cannot keep the history's chain head in %s: %s (the deletion of its last entries would go"
                    " unseen)", tenant, dir, strerror(errno));
        return;
    }
    char *path = head_path(app, tenant), *tmp = ax_asprintf("%s.new", path);
    FILE *fp = fopen(tmp, "w");
    bool ok = fp && fprintf(fp, "%lld %s\n", seq, mac) > 0;
    if (fp)
        ok = (fflush(fp) == 0 && fsync(fileno(fp)) == 0) & ok, ok = (fclose(fp) == 0) & ok;
    if (!ok || rename(tmp, path) != 0) {
        log_warning("%s: cannot write the history's chain head %s: %s", tenant, path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(path);
}

/* -- sealing ------------------------------------------------------------------------------ */

/* The chain's last sealed entry, and whether this host's head is still there; in the sealing transaction. */
static int chain_head(struct tenant *t, const char *run_id, long long *seq, char **mac, char **key_id,
                      const char *host_mac, bool *host_head_found, long long *unsealed)
{
    PGresult *res;
    int rc = db_query(&t->db, &res, DB_ONE_ROW(5),
                      "SELECT (SELECT COALESCE(pg_catalog.max(seq), 0) FROM anonymizer.runs),"
                      " h.mac, h.key_id, EXISTS (SELECT 1 FROM anonymizer.runs WHERE mac OPERATOR(pg_catalog.=) $1),"
                      " (SELECT pg_catalog.count(*) FROM anonymizer.runs WHERE mac IS NULL"
                      "  AND outcome OPERATOR(pg_catalog.<>) 'running' AND run_id OPERATOR(pg_catalog.<>) $2::uuid)"
                      " FROM (SELECT NULL) x LEFT JOIN LATERAL (SELECT mac, key_id FROM anonymizer.runs"
                      "  WHERE mac IS NOT NULL ORDER BY seq DESC LIMIT 1) h ON true",
                      2, NULL, (const char *const[]){host_mac, run_id});
    if (rc)
        return rc;
    *seq = db_value_ll(res, 0, 0);
    *mac = PQgetisnull(res, 0, 1) ? NULL : ax_strdup(PQgetvalue(res, 0, 1));
    *key_id = PQgetisnull(res, 0, 2) ? NULL : ax_strdup(PQgetvalue(res, 0, 2));
    *host_head_found = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    *unsealed = db_value_ll(res, 0, 4);
    PQclear(res);
    return AX_OK;
}

static int seal_in_transaction(struct tenant *t, const struct app *app, const char *run_id, long long *seq,
                               char mac[65])
{
    const struct cfg_audit_key *k = &app->cfg->audit.key;
    long long host_seq = 0;
    char host_mac[65] = "";
    bool known = head_read(app, t->name, &host_seq, host_mac), found = false;
    char *last_mac = NULL, *last_key = NULL, *note = NULL;
    long long unsealed = 0;
    int rc;
    if ((rc = db_cmd(&t->db, "SELECT pg_catalog.pg_advisory_xact_lock(" LOCK_CHAIN ")")) ||
        (rc = chain_head(t, run_id, seq, &last_mac, &last_key, host_mac, &found, &unsealed)))
        goto out;
    (*seq)++;
    if (known && !found) {
        /* deleted since this host sealed it: a new chain, which says so for ever */
        log_loud_warning("%s: the history's chain head (entry %lld, sealed by this host) is missing from"
                         " anonymizer.runs: entries were deleted; a new chain starts", t->name, host_seq);
        note = ax_asprintf(NOTE_HEAD_MISSING "%lld %lld", host_seq, unsealed);
        free(last_mac);
        last_mac = NULL;
    } else if (!last_mac) {
        note = ax_asprintf(NOTE_START " %lld", unsealed);
    } else if (strcmp(last_key, k->id) != 0) {
        note = ax_asprintf(NOTE_KEY "%s", last_key);
    }
    char seqtext[32];
    snprintf(seqtext, sizeof seqtext, "%lld", *seq);
    PGresult *res;
    const char *values[5] = {run_id, seqtext, k->id, last_mac, note};
    const Oid types[5] = {DB_TEXTOID, DB_INT8OID, DB_TEXTOID, DB_TEXTOID, DB_TEXTOID};
    if ((rc = db_query(&t->db, &res, DB_ONE_ROW(1),
                       "UPDATE anonymizer.runs SET seq = $2, key_id = $3, prev_mac = $4, chain_note = $5,"
                       " sealed_at = pg_catalog.clock_timestamp()"
                       " WHERE run_id OPERATOR(pg_catalog.=) $1::uuid AND mac IS NULL RETURNING " CANONICAL,
                       5, types, values)))
        goto out;
    struct chain_key key = {k->id, k->key, k->keylen};
    chain_mac(&key, PQgetvalue(res, 0, 0), mac);
    PQclear(res);
    const char *v2[2] = {run_id, mac};
    rc = db_command(&t->db, "UPDATE anonymizer.runs SET mac = $2 WHERE run_id OPERATOR(pg_catalog.=) $1::uuid", 2,
                    NULL, v2);
out:
    free(last_mac);
    free(last_key);
    free(note);
    return rc;
}

int chain_seal_in(struct tenant *t, const struct app *app, const char *run_id, struct chain_head *head)
{
    const struct cfg_audit_key *k = &app->cfg->audit.key;
    memset(head, 0, sizeof *head);
    if (!k->path)
        return AX_OK;
    if (!k->key) {
        log_loud_warning("%s: the history's entry is not sealed: %s", t->name, k->error);
        return AX_OK;
    }
    int rc = seal_in_transaction(t, app, run_id, &head->seq, head->mac);
    if (rc)
        head->seq = 0;
    return rc;
}

void chain_sealed(const struct app *app, const char *tenant, const struct chain_head *head)
{
    if (head->seq > 0)
        head_write(app, tenant, head->seq, head->mac);
}

int chain_seal(struct tenant *t, const struct app *app, const char *run_id)
{
    struct chain_head head;
    db_rollback_quietly(&t->db);
    int rc = db_cmd(&t->db, "BEGIN");
    if (rc == AX_OK && (rc = chain_seal_in(t, app, run_id, &head)) == AX_OK)
        rc = db_cmd(&t->db, "COMMIT");
    if (rc) {
        db_rollback_quietly(&t->db);
        return rc;
    }
    chain_sealed(app, t->name, &head);
    return AX_OK;
}

/* -- verifying ------------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const struct chain_key *find_key(const struct chain_key *keys, size_t nkeys, const char *id)
{
    for (size_t i = 0; id && i < nkeys; i++)
        if (strcmp(keys[i].id, id) == 0)
            return &keys[i];
    return NULL;
}

static void set_fault(struct chain_status *out, enum chain_fault f, const struct chain_entry *e)
{
    out->fault = f;
    out->bad_seq = e ? e->seq : -1;
    out->bad_run_id = e && e->run_id ? ax_strdup(e->run_id) : NULL;
    out->bad_started = e && e->started_at ? ax_strdup(e->started_at) : NULL;
}

/* The first fault of the sealed entries from first on (ordered by seq); FAULT_NONE when none. */
static void check_links(const struct chain_entry *e, size_t n, size_t first, const struct chain_key *keys,
                        size_t nkeys, const char *const *macs, size_t nmacs, struct chain_status *out)
{
    for (size_t i = first; i < n && out->fault == FAULT_NONE; i++) {
        const struct chain_key *key = find_key(keys, nkeys, e[i].key_id);
        char mac[65];
        /* a key changes only at an entry that says so (sealed): a key id changed by hand is an edit */
        bool key_said = e[i].note && strncmp(e[i].note, NOTE_KEY, strlen(NOTE_KEY)) == 0;
        if (i > first && !key_said && e[i - 1].key_id && e[i].key_id && strcmp(e[i - 1].key_id, e[i].key_id) != 0) {
            bool prev_known = find_key(keys, nkeys, e[i - 1].key_id) != NULL;
            set_fault(out, FAULT_EDITED, prev_known && key ? &e[i - 1] : &e[i]);
            break;
        }
        if (!key && i + 1 < n && e[i + 1].key_id && e[i].key_id && find_key(keys, nkeys, e[i + 1].key_id) &&
            (e[i + 1].note && strncmp(e[i + 1].note, NOTE_KEY, strlen(NOTE_KEY)) == 0
                 ? strcmp(e[i + 1].note + strlen(NOTE_KEY), e[i].key_id) != 0
                 : strcmp(e[i + 1].key_id, e[i].key_id) != 0)) {
            set_fault(out, FAULT_EDITED, &e[i]);
            break;
        }
        if (!key && !out->unverified)
            out->unverified = ax_asprintf(_("entries sealed with key %s cannot be checked without it (audit_old_key_files)"),
                                          e[i].key_id ? e[i].key_id : "?");
        if (key) {
            chain_mac(key, e[i].canonical ? e[i].canonical : "", mac);
            if (!e[i].mac || CRYPTO_memcmp(mac, e[i].mac, 64) != 0) {
                /* the next entry still links to its seal: it was there, and changed since */
                bool linked = i + 1 < n && e[i + 1].prev_mac && e[i].mac && strcmp(e[i + 1].prev_mac, e[i].mac) == 0;
                set_fault(out, linked || i + 1 == n ? FAULT_EDITED : FAULT_INSERTED, &e[i]);
                break;
            }
        }
        bool restart = !e[i].prev_mac;
        if (restart && e[i].note && strncmp(e[i].note, NOTE_HEAD_MISSING, strlen(NOTE_HEAD_MISSING)) == 0)
            set_fault(out, FAULT_HISTORY_DELETED, &e[i]);
        else if (restart && i > first)
            set_fault(out, FAULT_DELETED, &e[i]);
        else if (!restart && i == first)
            set_fault(out, FAULT_DELETED, &e[i]);
        else if (!restart && strcmp(e[i].prev_mac, e[i - 1].mac ? e[i - 1].mac : "") != 0)
            set_fault(out, bsearch(&e[i].prev_mac, macs, nmacs, sizeof *macs, cmp_str) ? FAULT_REORDERED
                                                                                       : FAULT_DELETED,
                      &e[i]);
    }
}

void chain_check(const struct chain_entry *e, size_t n, const struct chain_key *keys, size_t nkeys,
                 const char *head_mac, struct chain_status *out)
{
    memset(out, 0, sizeof *out);
    out->bad_seq = -1;
    size_t first = 0;
    while (first < n && e[first].seq < 0)
        first++;
    const char **macs = ax_calloc(n + 1, sizeof *macs);
    size_t nmacs = 0;
    for (size_t i = first; i < n; i++)
        if (e[i].mac)
            macs[nmacs++] = e[i].mac;
    qsort(macs, nmacs, sizeof *macs, cmp_str);
    out->entries = (long long)(n - first);
    if (first < n) {
        out->since = e[first].sealed_at ? ax_strdup(e[first].sealed_at) : NULL;
        out->key_id = e[n - 1].key_id ? ax_strdup(e[n - 1].key_id) : NULL;
    }
    /* entries without a seal: the chain's first entry counted those before it; any more slipped in since */
    const struct chain_entry *unsealed = NULL;
    long long before = 0, found = 0;
    const char *space = first < n && e[first].note ? strrchr(e[first].note, ' ') : NULL;
    if (space)
        before = atoll(space + 1);
    for (size_t i = 0; i < first; i++) {
        if (e[i].running)
            continue;
        if (++found > before || first == n)
            unsealed = &e[i]; /* the last to start of them */
    }
    out->unchained = found < before ? found : before;
    if (first == n) {
        out->unchained = found;
        unsealed = NULL;
    }
    check_links(e, n, first, keys, nkeys, macs, nmacs, out);
    if (out->fault == FAULT_NONE && unsealed)
        set_fault(out, FAULT_UNSEALED, unsealed);
    if (out->fault == FAULT_NONE && head_mac && !bsearch(&head_mac, macs, nmacs, sizeof *macs, cmp_str))
        set_fault(out, FAULT_HEAD_MISSING, NULL);
    if (out->fault == FAULT_NONE && first == n && !out->unverified)
        out->unverified = ax_strdup(_("no entry is sealed yet"));
    free(macs);
    out->state = out->fault != FAULT_NONE ? CHAIN_BROKEN : out->unverified ? CHAIN_UNVERIFIED : CHAIN_INTACT;
}

/* The keys this host has: the current one and the retired ones. */
static size_t host_keys(const struct app *app, struct chain_key *keys)
{
    size_t n = 0;
    const struct cfg_audit *a = &app->cfg->audit;
    if (a->key.key)
        keys[n++] = (struct chain_key){a->key.id, a->key.key, a->key.keylen};
    for (size_t i = 0; i < a->nold; i++)
        if (a->old[i].key)
            keys[n++] = (struct chain_key){a->old[i].id, a->old[i].key, a->old[i].keylen};
    return n;
}

int chain_verify(struct tenant *t, const struct app *app, struct chain_status *out)
{
    memset(out, 0, sizeof *out);
    out->bad_seq = -1;
    const struct cfg_audit *a = &app->cfg->audit;
    if (!a->key.path)
        return AX_OK; /* CHAIN_OFF */
    bool exists = false, readable = false;
    PGresult *res;
    int rc = db_relation(&t->db, "anonymizer", "runs", &exists, &readable);
    if (rc)
        return rc;
    if (exists && !readable) {
        db_set_error(&t->db, "no SELECT privilege on anonymizer.runs");
        return AX_ERR_DB;
    }
    if (exists && (rc = db_query(&t->db, &res, DB_ONE_ROW(1),
                                 "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attname"
                                 " OPERATOR(pg_catalog.=) 'mac' AND attrelid OPERATOR(pg_catalog.=)"
                                 " 'anonymizer.runs'::pg_catalog.regclass AND NOT attisdropped)",
                                 0, NULL, NULL)))
        return rc;
    if (exists) {
        exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    }
    long long head_seq;
    char head_mac[65];
    bool known = head_read(app, t->name, &head_seq, head_mac);
    struct chain_key *keys = ax_calloc(a->nold + 1, sizeof *keys);
    size_t nkeys = host_keys(app, keys);
    if (!exists) {
        chain_check(NULL, 0, keys, nkeys, known ? head_mac : NULL, out);
    } else {
        if ((rc = db_query(&t->db, &res, DB_ROWS(10),
                           "SELECT COALESCE(seq, -1), run_id::text, " SQL_ISO_UTC("started_at") ", "
                           SQL_ISO_UTC("sealed_at") ", mac, prev_mac, key_id, chain_note, " CANONICAL ","
                           " outcome OPERATOR(pg_catalog.=) 'running'"
                           " FROM anonymizer.runs ORDER BY seq NULLS FIRST, started_at, run_id",
                           0, NULL, NULL))) {
            free(keys);
            return rc;
        }
        size_t n = (size_t)PQntuples(res);
        struct chain_entry *e = ax_calloc(n + 1, sizeof *e);
        for (size_t i = 0; i < n; i++) {
            int r = (int)i;
            e[i] = (struct chain_entry){
                .seq = atoll(PQgetvalue(res, r, 0)), .run_id = PQgetvalue(res, r, 1),
                .started_at = PQgetvalue(res, r, 2), .sealed_at = PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3),
                .mac = PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4),
                .prev_mac = PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5),
                .key_id = PQgetisnull(res, r, 6) ? NULL : PQgetvalue(res, r, 6),
                .note = PQgetisnull(res, r, 7) ? NULL : PQgetvalue(res, r, 7), .canonical = PQgetvalue(res, r, 8),
                .running = strcmp(PQgetvalue(res, r, 9), "t") == 0};
        }
        chain_check(e, n, keys, nkeys, known ? head_mac : NULL, out);
        free(e);
        PQclear(res);
    }
    free(keys);
    if (!a->key.key && !out->unverified && out->state != CHAIN_BROKEN) {
        out->unverified = ax_strdup(a->key.error ? a->key.error : "the audit key cannot be read");
        out->state = CHAIN_UNVERIFIED;
    }
    return AX_OK;
}

void chain_status_free(struct chain_status *s)
{
    free(s->bad_run_id);
    free(s->bad_started);
    free(s->since);
    free(s->key_id);
    free(s->unverified);
    memset(s, 0, sizeof *s);
}

const char *chain_state_str(enum chain_state s)
{
    static const char *const names[] = {"off", "intact", "broken", "unverified"};
    return names[s];
}

const char *chain_fault_str(enum chain_fault f)
{
    static const char *const names[] = {"none",     "edited",          "inserted",    "unsealed",
                                        "deleted",  "reordered",       "history_deleted", "head_missing"};
    return names[f];
}

char *chain_status_text(const struct chain_status *s)
{
    char since[40], started[40];
    report_local_time(s->since, since);
    report_local_time(s->bad_started, started);
    switch (s->state) {
    case CHAIN_OFF: return ax_strdup(_("not chained: no audit_key_file, so edits of the history go unseen"));
    case CHAIN_INTACT:
        return ax_asprintf(ngettext("intact since %s: %lld entry sealed and linked",
                                    "intact since %s: %lld entries sealed and linked", (unsigned long)s->entries),
                           since, s->entries);
    case CHAIN_UNVERIFIED: return ax_asprintf(_("not verified: %s"), s->unverified);
    case CHAIN_BROKEN: break;
    }
    switch (s->fault) {
    case FAULT_EDITED:
        return ax_asprintf(_("BROKEN: entry %lld (started %s) was edited: it no longer matches its seal"), s->bad_seq,
                           started);
    case FAULT_INSERTED:
        return ax_asprintf(_("BROKEN: entry %lld (started %s) was inserted: nobody with the key sealed it"),
                           s->bad_seq, started);
    case FAULT_UNSEALED:
        return ax_asprintf(_("BROKEN: the entry started %s has no seal: inserted, or written without the key"),
                           started);
    case FAULT_DELETED:
        return ax_asprintf(_("BROKEN: entries were deleted before entry %lld (started %s)"), s->bad_seq, started);
    case FAULT_REORDERED:
        return ax_asprintf(_("BROKEN: entry %lld (started %s) was moved: it does not follow the entry before it"),
                           s->bad_seq, started);
    case FAULT_HISTORY_DELETED:
        return ax_asprintf(_("BROKEN: entries were deleted before entry %lld (started %s): the run that wrote it"
                             " found the chain's head missing"),
                           s->bad_seq, started);
    case FAULT_HEAD_MISSING:
        return ax_strdup(_("BROKEN: the last entries were deleted: the last one this host sealed is missing"));
    case FAULT_NONE: break;
    }
    return ax_strdup("?");
}
