/*
 * defs.c: a tenant's definitions, from w.c.s. over the signed API, cached
 * as files (see defs.h).
 */
#include "defs.h"
#include "ax.h"
#include "http.h"
#include "i18n.h"
#include "log.h"
#include "sign.h"
#include "strbuf.h"
#include "timeutil.h"
#include "version.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One definition as the API served it. */
/* A definition fetched and validated, waiting in its staging file (next to
 * where it goes) until the whole tenant is fetched: memory holds one
 * definition at a time, and the files change only when everything came. */
struct fetched {
    char *slug;
    char *staged; /* path of the staging file */
};

struct fetched_set {
    struct fetched *items;
    size_t n;
};

/* The two kinds of definition w.c.s. serves. */
static const struct kind {
    const char *what;   /* for messages */
    const char *list;   /* path of the list, below the tenant's url */
    const char *list_query;
    const char *schema_before, *schema_after; /* a definition's path, around its slug */
    const char *subdir; /* below <schemas>/<tenant>/ ("" or "cards") */
    const char *slugs_sql; /* the slugs the tenant's database has */
} kinds[] = {
    {"form", "api/formdefs/", "include-disabled=on", "api/formdefs/", "/schema", "",
     "SELECT slug FROM public.formdefs WHERE slug IS NOT NULL"},
    {"card", "api/cards/@list", "", "api/cards/", "/@schema", "cards",
     "SELECT slug FROM public.carddefs WHERE slug IS NOT NULL"},
};

static void fetched_set_free(struct fetched_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->items[i].staged)
            unlink(s->items[i].staged); /* still there: not stored (a failure elsewhere) */
        free(s->items[i].slug);
        free(s->items[i].staged);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

/* A slug that can name a file and a URL path segment as it is. */
bool defs_safe_slug(const char *slug)
{
    if (!slug[0] || slug[0] == '.' || strlen(slug) > 200)
        return false;
    for (const char *p = slug; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return false;
    return true;
}

/* What a refusal says: w.c.s. answers {"err": 1, "err_desc": "..."} (or a page). */
static void describe_refusal(const struct strbuf *body, char *out, size_t outlen)
{
    json_object *doc = json_tokener_parse(body->buf), *desc;
    if (doc && json_object_is_type(doc, json_type_object) && json_object_object_get_ex(doc, "err_desc", &desc) &&
        json_object_is_type(desc, json_type_string)) {
        snprintf(out, outlen, "%s", json_object_get_string(desc));
    } else {
        /* the start of the page, on one line, printable characters only */
        size_t k = 0;
        for (size_t i = 0; i < body->len && k + 1 < outlen && k < 120; i++)
            out[k++] = (body->buf[i] >= 32 && body->buf[i] < 127) ? body->buf[i] : ' ';
        out[k] = '\0';
    }
    json_object_put(doc);
}

/*
 * A signed GET of path (below the tenant's url) with the request's own
 * query; *doc receives the parsed JSON document, body its text.
 */
static int api_get(const struct app *app, const struct cfg_tenant *t, double deadline, const char *path,
                   const char *query, struct strbuf *body, json_object **doc, char *err, size_t errlen)
{
    const struct cfg_wcs_api *api = &app->cfg->wcs_api;
    char ts[21], nonce[33];
    *doc = NULL;
    /* each request gets what is left of the tenant's deadline, at most the per-request timeout */
    double left_ms = (deadline - tm_now()) * 1000;
    if (left_ms < 1) {
        snprintf(err, errlen, "the fetch's deadline passed (wcs_api.deadline, or the run's time budget)");
        return -1;
    }
    if (!api->key) {
        snprintf(err, errlen, "%s", api->key_error ? api->key_error : "no API key");
        return -1;
    }
    if (sign_timestamp_now(ts) != 0 || sign_new_nonce(nonce) != 0) {
        snprintf(err, errlen, "cannot draw a random nonce");
        return -1;
    }
    char *signed_query = sign_query(query, api->orig, (const unsigned char *)api->key, api->keylen, ts, nonce);
    if (!signed_query) {
        snprintf(err, errlen, "cannot compute the signature");
        return -1;
    }
    char *url = ax_asprintf("%s%s?%s", t->url, path, signed_query), *where = http_url_for_log(url);
    struct http_options o = {.ca_file = api->ca_file,
                             .timeout_ms = left_ms < api->timeout_ms ? (int)left_ms : api->timeout_ms,
                             .max_bytes = HTTP_MAX_BYTES,
                             .user_agent = "anonymizer/" ANONYMIZER_VERSION};
    long status;
    int rc = http_get(&o, url, &status, body, err, errlen);
    if (rc != 0 && left_ms < api->timeout_ms && tm_now() >= deadline - 0.1) {
        /* the deadline, not the server's silence, cut this request short: said so */
        char *why = ax_strdup(err);
        snprintf(err, errlen, "the fetch's deadline passed (wcs_api.deadline, or the run's time budget): %s", why);
        free(why);
    }
    explicit_bzero(signed_query, strlen(signed_query));
    free(signed_query);
    free(url);
    if (rc == 0 && status != 200) {
        char why[200];
        describe_refusal(body, why, sizeof why);
        snprintf(err, errlen, "%s: HTTP %ld%s%s%s", where, status, why[0] ? " (" : "", why, why[0] ? ")" : "");
        rc = -1;
    }
    if (rc == 0) {
        json_tokener *tok = json_tokener_new();
        *doc = json_tokener_parse_ex(tok, body->buf, (int)body->len);
        if (!*doc || json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) < body->len) {
            snprintf(err, errlen, "%s: the answer is not JSON", where);
            json_object_put(*doc);
            *doc = NULL;
            rc = -1;
        }
        json_tokener_free(tok);
    }
    free(where);
    return rc;
}

/* The slugs of a list answer {"err": 0, "data": [{"slug": ...}, ...]}. */
static int list_slugs(json_object *doc, char ***slugs, size_t *n, const char *where, char *err, size_t errlen)
{
    json_object *data, *e;
    *slugs = NULL;
    *n = 0;
    if (!json_object_is_type(doc, json_type_object) || !json_object_object_get_ex(doc, "data", &data) ||
        !json_object_is_type(data, json_type_array) ||
        (json_object_object_get_ex(doc, "err", &e) && json_object_get_int(e) != 0)) {
        snprintf(err, errlen, "%s: not a w.c.s. list (no \"data\")", where);
        return -1;
    }
    size_t len = json_object_array_length(data);
    *slugs = ax_calloc(len, sizeof **slugs);
    for (size_t i = 0; i < len; i++) {
        json_object *item = json_object_array_get_idx(data, i), *slug;
        if (!json_object_is_type(item, json_type_object) || !json_object_object_get_ex(item, "slug", &slug) ||
            !json_object_is_type(slug, json_type_string) || !defs_safe_slug(json_object_get_string(slug))) {
            snprintf(err, errlen, "%s: item %zu has no usable slug", where, i + 1);
            return -1;
        }
        (*slugs)[(*n)++] = ax_strdup(json_object_get_string(slug));
    }
    return 0;
}

/* -- files ----------------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
    char *p = ax_strdup(path);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *q = '/';
    }
    int rc = mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

/* Writes text to path through a temporary file and a rename: a reader sees the old file or the new one. */
static int write_atomically(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
    char *tmp = ax_asprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < len;) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0;
        done += ok ? (size_t)n : 0;
    }
    ok = ok && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

/*
 * Every definition of one kind, validated, each written to its staging file
 * in dir as it arrives (and its memory freed).
 */
static int fetch_kind(const struct app *app, const struct cfg_tenant *t, double deadline, const struct kind *k,
                      const char *dir, struct fetched_set *out, char *err, size_t errlen)
{
    struct strbuf body;
    json_object *doc;
    char **slugs = NULL;
    size_t nslugs = 0;
    sb_init(&body);
    char *list_where = ax_asprintf("%s%s", t->url, k->list);
    int rc = api_get(app, t, deadline, k->list, k->list_query, &body, &doc, err, errlen);
    if (rc == 0)
        rc = list_slugs(doc, &slugs, &nslugs, list_where, err, errlen);
    json_object_put(doc);
    if (rc == 0 && nslugs > 0 && mkdirs(dir) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        rc = -1;
    }
    out->items = ax_calloc(nslugs, sizeof *out->items);
    for (size_t i = 0; rc == 0 && i < nslugs; i++) {
        /* a safe slug needs no quoting in a path */
        char *path = ax_asprintf("%s%s%s", k->schema_before, slugs[i], k->schema_after);
        char *where = ax_asprintf("%s%s", t->url, path);
        rc = api_get(app, t, deadline, path, "include-id=on", &body, &doc, err, errlen);
        json_object_put(doc);
        struct definition *def = NULL;
        if (rc == 0 && (rc = def_parse(body.buf, body.len, where, &def, err, errlen)) == AX_OK &&
            strcmp(def->slug, slugs[i]) != 0) {
            snprintf(err, errlen, "%s: url_name \"%s\" is not the slug listed, \"%s\"", where, def->slug, slugs[i]);
            rc = -1;
        }
        def_free(def);
        if (rc == 0) {
            char *staged = ax_asprintf("%s/.%s.json.fetched.%ld", dir, slugs[i], (long)getpid());
            if (write_atomically(staged, body.buf, body.len, err, errlen) != 0) {
                free(staged);
                rc = -1;
            } else {
                struct fetched *f = &out->items[out->n++];
                f->slug = ax_strdup(slugs[i]);
                f->staged = staged;
            }
        }
        sb_reset(&body);
        free(path);
        free(where);
    }
    for (size_t i = 0; i < nslugs; i++)
        free(slugs[i]);
    free(slugs);
    free(list_where);
    sb_free(&body);
    if (rc) {
        fetched_set_free(out);
        return -1;
    }
    return 0;
}

/* The slugs of one kind the tenant's database has (formdefs, carddefs). */
struct db_slugs {
    bool known; /* false: the database could not be read */
    char **slugs;
    size_t n;
};

static bool db_slugs_has(const struct db_slugs *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->slugs[i]) == len && strncmp(s->slugs[i], name, len) == 0)
            return true;
    return false;
}

static void db_slugs_free(struct db_slugs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->slugs[i]);
    free(s->slugs);
}

/* The slugs of every kind in the tenant's database: what w.c.s. has, whatever its API shows this client. */
static void read_db_slugs(const struct app *app, const struct app_tenant *at, struct db_slugs *out)
{
    struct db db;
    struct db_profile profile = app_db_profile(app->cfg, true);
    if (db_connect(&db, at->cfg->conninfo, NULL, at->cfg->name, &profile) != AX_OK) {
        log_warning("%s: cannot read the forms the database has (%s): definitions w.c.s. no longer lists are kept",
                    at->cfg->name, db.error);
        db_close(&db);
        return;
    }
    for (size_t k = 0; k < AX_ARRAY_LEN(kinds); k++) {
        PGresult *res;
        bool exists = false;
        const char *table = k == 0 ? "formdefs" : "carddefs";
        if (db_relation(&db, "public", table, &exists, NULL) != AX_OK)
            continue;
        /* no such table: the tenant has no form of that kind, none is kept */
        if (!exists || db_query(&db, &res, DB_ROWS(1), kinds[k].slugs_sql, 0, NULL, NULL) != AX_OK) {
            out[k].known = !exists;
            continue;
        }
        out[k].known = true;
        out[k].n = (size_t)PQntuples(res);
        out[k].slugs = ax_calloc(out[k].n + 1, sizeof *out[k].slugs);
        for (size_t i = 0; i < out[k].n; i++)
            out[k].slugs[i] = ax_strdup(PQgetvalue(res, (int)i, 0));
        PQclear(res);
    }
    db_close(&db);
}

/* What changed in a definition's "anonymise" modes, for the operator. */
static void describe_changes(const struct definition *old, const struct definition *new, struct strbuf *out)
{
    static const char *const modes[] = {"no", "final", "intermediate"};
    for (size_t i = 0; i < new->nfields; i++) {
        const struct def_field *nf = &new->fields[i];
        const struct def_field *of = old ? def_find_column(old, nf->column) : NULL;
        const char *v = nf->varname ? nf->varname : "";
        if (!of)
            sb_appendf(out, "%sfield %s [%s] new (%s)", out->len ? "; " : "", nf->id, v, modes[nf->anonymise]);
        else if (of->anonymise != nf->anonymise)
            sb_appendf(out, "%sfield %s [%s] anonymise %s -> %s", out->len ? "; " : "", nf->id, v,
                       modes[of->anonymise], modes[nf->anonymise]);
    }
    for (size_t i = 0; old && i < old->nfields; i++)
        if (!def_find_column(new, old->fields[i].column))
            sb_appendf(out, "%sfield %s [%s] removed", out->len ? "; " : "", old->fields[i].id,
                       old->fields[i].varname ? old->fields[i].varname : "");
}

/* Output of the fetch command (stdout, through the parent), or an info line. */
static void say(struct progress *progress, bool fetch_command, const char *text)
{
    if (fetch_command)
        progress_print(progress, text);
    else
        log_info("%s", text);
}

/* Where one kind's output goes: the fetch command's lines, or info lines. */
struct store_out {
    const char *tenant;
    struct progress *progress;
    bool fetch_command;
};

/*
 * One fetched definition in place of its file (its staging file renamed),
 * unless the file is the same; says what changed.  Returns 1 when it
 * changed, 0 when not, -1 on error.
 */
static int store_one(const char *dir, const struct kind *k, struct fetched *f, const struct store_out *o, char *err,
                     size_t errlen)
{
    char *path = ax_asprintf("%s/%s.json", dir, f->slug);
    size_t oldlen = 0, newlen = 0;
    char why[128];
    char *old = cfg_read_file(path, CFG_MAX_DEFINITION_BYTES, &oldlen, why, sizeof why);
    char *text = cfg_read_file(f->staged, CFG_MAX_DEFINITION_BYTES, &newlen, why, sizeof why);
    int rc = 1;
    struct definition *olddef = NULL, *newdef = NULL;
    if (!text) {
        snprintf(err, errlen, "%s: %s", f->staged, why);
        rc = -1;
    } else if (old && oldlen == newlen && memcmp(old, text, oldlen) == 0) {
        rc = 0; /* the staging file goes with the set */
    } else {
        char ignored[256];
        if (old)
            def_parse(old, oldlen, path, &olddef, ignored, sizeof ignored);
        def_parse(text, newlen, path, &newdef, ignored, sizeof ignored);
        if (rename(f->staged, path) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            rc = -1;
        }
    }
    if (rc == 1) {
        free(f->staged);
        f->staged = NULL;
        struct strbuf what;
        sb_init(&what);
        if (newdef)
            describe_changes(olddef, newdef, &what);
        char *line = old ? ax_asprintf("%s: changed %s %s%s%s", o->tenant, k->what, f->slug, what.len ? ": " : "",
                                       what.len ? what.buf : " (no change of anonymise)")
                         : ax_asprintf("%s: new %s %s", o->tenant, k->what, f->slug);
        say(o->progress, o->fetch_command, line);
        free(line);
        sb_free(&what);
    }
    def_free(olddef);
    def_free(newdef);
    free(old);
    free(text);
    free(path);
    return rc;
}

/*
 * The files of definitions w.c.s. no longer lists: removed when the
 * tenant's database no longer has the form either, else kept and named in
 * kept.  Returns how many were removed.
 */
static int remove_unlisted(const char *dir, const struct kind *k, const struct fetched_set *set,
                           const struct db_slugs *in_db, const struct store_out *o, struct strbuf *kept)
{
    int removed = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        bool listed = false;
        for (size_t i = 0; i < set->n && !listed; i++)
            listed = strlen(set->items[i].slug) == len - 5 && strncmp(set->items[i].slug, de->d_name, len - 5) == 0;
        if (listed)
            continue;
        /* in the database but not listed: hidden from this API access (one with roles), not deleted */
        if (!in_db->known || db_slugs_has(in_db, de->d_name, len - 5)) {
            sb_appendf(kept, "%s%s %.*s", kept->len ? ", " : "", k->what, (int)(len - 5), de->d_name);
            continue;
        }
        char *path = ax_asprintf("%s/%s", dir, de->d_name);
        if (unlink(path) == 0) {
            char *line = ax_asprintf("%s: removed %s %.*s", o->tenant, k->what, (int)(len - 5), de->d_name);
            say(o->progress, o->fetch_command, line);
            free(line);
            removed++;
        }
        free(path);
    }
    if (d)
        closedir(d);
    return removed;
}

/*
 * Replaces the files of one kind by what was fetched; says what changed.
 * Returns how many definitions changed (new, changed or removed), or -1.
 */
static int store_kind(const char *dir, const struct kind *k, struct fetched_set *set, const struct db_slugs *in_db,
                      const struct store_out *o, struct strbuf *kept, char *err, size_t errlen)
{
    int changes = 0;
    if (mkdirs(dir) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < set->n; i++) {
        int n = store_one(dir, k, &set->items[i], o, err, errlen);
        if (n < 0)
            return -1;
        changes += n;
    }
    return changes + remove_unlisted(dir, k, set, in_db, o, kept);
}

static char *tenant_dir(const struct app *app, const struct app_tenant *at)
{
    char *name = cfg_tenant_dirname(at->cfg->name);
    char *dir = ax_asprintf("%s/%s", app->cfg->schemas, name);
    free(name);
    return dir;
}

/* Seconds since the last successful fetch (its stamp file), else since the newest file; -1 when none. */
static double files_age(const char *dir)
{
    struct stat st;
    char *stamp = ax_asprintf("%s/.fetched", dir);
    double age = -1;
    if (stat(stamp, &st) == 0)
        age = difftime(time(NULL), st.st_mtime);
    free(stamp);
    if (age >= 0)
        return age;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char *path = ax_asprintf("%s/%s", dir, de->d_name);
        if (de->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            double a = difftime(time(NULL), st.st_mtime);
            if (age < 0 || a < age)
                age = a;
        }
        free(path);
    }
    if (d)
        closedir(d);
    return age;
}

/*
 * Fetches both kinds into staging files, then stores them: nothing changes
 * on disk unless everything was fetched, within the tenant's deadline
 * (wcs_api.deadline, cut to the run's time budget).
 */
static int fetch_tenant(const struct app *app, struct app_tenant *at, struct progress *progress, bool fetch_command,
                        char *err, size_t errlen)
{
    struct fetched_set sets[AX_ARRAY_LEN(kinds)] = {{0}};
    char *dir = tenant_dir(app, at), *subs[AX_ARRAY_LEN(kinds)];
    double deadline = tm_now() + app->cfg->wcs_api.deadline_ms / 1000.0;
    if (app->deadline > 0 && app->deadline < deadline)
        deadline = app->deadline;
    int rc = 0, changes = 0;
    for (size_t k = 0; k < AX_ARRAY_LEN(kinds); k++)
        subs[k] = kinds[k].subdir[0] ? ax_asprintf("%s/%s", dir, kinds[k].subdir) : ax_strdup(dir);
    for (size_t k = 0; rc == 0 && k < AX_ARRAY_LEN(kinds); k++)
        rc = fetch_kind(app, at->cfg, deadline, &kinds[k], subs[k], &sets[k], err, errlen);
    struct db_slugs in_db[AX_ARRAY_LEN(kinds)] = {{0}};
    struct strbuf kept;
    sb_init(&kept);
    if (rc == 0)
        read_db_slugs(app, at, in_db);
    for (size_t k = 0; rc == 0 && k < AX_ARRAY_LEN(kinds); k++) {
        const struct store_out o = {at->cfg->name, progress, fetch_command};
        int n = store_kind(subs[k], &kinds[k], &sets[k], &in_db[k], &o, &kept, err, errlen);
        rc = n < 0 ? -1 : 0;
        changes += n > 0 ? n : 0;
    }
    for (size_t k = 0; k < AX_ARRAY_LEN(kinds); k++) {
        free(subs[k]);
        db_slugs_free(&in_db[k]);
    }
    if (rc == 0) {
        char *stamp = ax_asprintf("%s/.fetched", dir), ts[21];
        sign_timestamp_now(ts);
        if (write_atomically(stamp, ts, strlen(ts), err, errlen) != 0)
            rc = -1;
        free(stamp);
    }
    if (rc == 0) {
        char *line = ax_asprintf("%s: %zu form%s and %zu card%s fetched from %s, %d changed", at->cfg->name,
                                 sets[0].n, sets[0].n == 1 ? "" : "s", sets[1].n, sets[1].n == 1 ? "" : "s",
                                 at->cfg->url, changes);
        say(progress, fetch_command, line);
        free(line);
    }
    /* everything else is stored; these are an error of their own, for the exit status and the run */
    if (rc == 0 && kept.len) {
        snprintf(err, errlen,
                 "%s: in the tenant's database but not listed by %s: hidden from this API access (one with roles?"
                 " declare it without roles) or unreadable database; the last definition%s kept",
                 kept.buf, at->cfg->url, strchr(kept.buf, ',') ? "s are" : " is");
        rc = -1;
    }
    sb_free(&kept);
    for (size_t k = 0; k < AX_ARRAY_LEN(kinds); k++)
        fetched_set_free(&sets[k]);
    free(dir);
    return rc;
}

/* "3 days", "5 hours", "12 minutes" */
void defs_format_age(double seconds, char *buf, size_t len)
{
    if (seconds >= 2 * 86400)
        snprintf(buf, len, _("%.0f days"), seconds / 86400);
    else if (seconds >= 2 * 3600)
        snprintf(buf, len, _("%.0f hours"), seconds / 3600);
    else
        snprintf(buf, len, _("%.0f minutes"), seconds / 60);
}

int defs_prepare(const struct app *app, struct app_tenant *at, enum defs_mode mode, struct progress *progress)
{
    char err[1024];
    bool fetch_command = mode == DEFS_FETCH_COMMAND;
    if (at->defs_ready)
        return at->defs_error ? AX_ERR_CONFIG : AX_OK;
    at->defs_ready = true;
    char *dir = tenant_dir(app, at), *cards = ax_asprintf("%s/cards", dir);
    if (at->cfg->url && mode != DEFS_FILES) {
        if (fetch_tenant(app, at, progress, fetch_command, err, sizeof err) == 0) {
            at->fetched = true;
        } else {
            at->fetch_error = ax_strdup(err);
            at->files_age = files_age(dir);
            char age[64] = "";
            if (at->files_age >= 0)
                defs_format_age(at->files_age, age, sizeof age);
            if (fetch_command)
                log_error("%s: cannot fetch definitions: %s", at->cfg->name, err);
            else if (at->files_age >= 0)
                log_loud_warning("%s: cannot fetch definitions: %s; using the files fetched %s ago", at->cfg->name,
                                 err, age);
            else
                log_loud_warning("%s: cannot fetch definitions: %s; no definition files either: every field of its"
                                 " forms is blanked", at->cfg->name, err);
        }
    }
    int rc = fetch_command && at->fetch_error ? AX_ERR_IO : AX_OK;
    if (rc == AX_OK && (rc = def_set_load(dir, &at->defs, err, sizeof err)) == AX_OK)
        rc = def_set_load(cards, &at->card_defs, err, sizeof err);
    if (rc != AX_OK && !at->fetch_error) {
        at->defs_error = ax_strdup(err);
        log_error("%s: %s", at->cfg->name, err);
    } else if (rc != AX_OK) {
        at->defs_error = ax_strdup(at->fetch_error);
    }
    free(dir);
    free(cards);
    return rc == AX_OK ? AX_OK : AX_ERR_CONFIG;
}

char *defs_describe(const char *url, bool fetched, const char *fetch_error, double files_age)
{
    if (fetched)
        return ax_asprintf(_("fetched from %s"), url);
    if (!fetch_error)
        return ax_strdup(_("files (no url)"));
    if (files_age < 0)
        return ax_asprintf(_("fetch failed (%s); no files: every field blanked"), fetch_error);
    char age[64];
    defs_format_age(files_age, age, sizeof age);
    return ax_asprintf(_("fetch failed (%s); files fetched %s ago"), fetch_error, age);
}
