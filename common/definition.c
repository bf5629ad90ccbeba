/*
 * definition.c: reading w.c.s. form definitions with json-c.
 */
#include "definition.h"
#include "ax.h"
#include "config.h"
#include "strbuf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *def_column_for_id(const char *id)
{
    char *col = ax_asprintf("f%s", id);
    for (char *p = col; *p; p++) {
        if (*p == '-')
            *p = '_';
        else
            *p = (char)tolower((unsigned char)*p);
    }
    return col;
}

/* Field types that have no column (pure layout). */
static bool type_has_no_column(const char *type)
{
    static const char *const layout[] = {"page", "title", "subtitle", "comment"};
    for (size_t i = 0; i < AX_ARRAY_LEN(layout); i++)
        if (strcmp(type, layout[i]) == 0)
            return true;
    return false;
}

/* w.c.s. defaults: these types are kept unless told otherwise. */
static enum def_anonymise default_anonymise(const char *type)
{
    if (strcmp(type, "bool") == 0 || strcmp(type, "item") == 0 || strcmp(type, "ranked-items") == 0)
        return DEF_ANON_NO;
    return DEF_ANON_FINAL;
}

static const char *opt_string(json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* A field id may be a string ("12") or, in old exports, a number. */
static char *field_id(json_object *field)
{
    json_object *v;
    if (!json_object_object_get_ex(field, "id", &v) || json_object_is_type(v, json_type_null))
        return NULL;
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        return s[0] ? ax_strdup(s) : NULL;
    }
    if (json_object_is_type(v, json_type_int))
        return ax_asprintf("%lld", (long long)json_object_get_int64(v));
    return NULL;
}

static void field_free(struct def_field *f)
{
    for (size_t i = 0; i < f->nsubs; i++)
        field_free(&f->subs[i]);
    free(f->subs);
    free(f->id);
    free(f->column);
    free(f->type);
    free(f->label);
    free(f->varname);
}

void def_free(struct definition *def)
{
    if (!def)
        return;
    for (size_t i = 0; i < def->nfields; i++)
        field_free(&def->fields[i]);
    free(def->fields);
    for (size_t i = 0; i < def->nstatuses; i++) {
        free(def->statuses[i].id);
        free(def->statuses[i].name);
    }
    free(def->statuses);
    free(def->path);
    free(def->slug);
    free(def->name);
    free(def);
}

/* The anonymise mode of a field: explicit, legacy boolean, or the w.c.s. default for its type. */
static int parse_anonymise(json_object *jf, const char *type, struct def_field *f, const char *path, char *err,
                           size_t errlen)
{
    json_object *an;
    if (!json_object_object_get_ex(jf, "anonymise", &an) || json_object_is_type(an, json_type_null)) {
        f->anonymise = default_anonymise(type);
        return AX_OK;
    }
    f->anonymise_explicit = true;
    if (json_object_is_type(an, json_type_boolean)) {
        /* exports from before w.c.s. had modes */
        f->anonymise = json_object_get_boolean(an) ? DEF_ANON_FINAL : DEF_ANON_NO;
        return AX_OK;
    }
    if (!json_object_is_type(an, json_type_string)) {
        snprintf(err, errlen, "%s: field %s: \"anonymise\" must be a string or a boolean", path, f->id);
        return AX_ERR_CONFIG;
    }
    const char *mode = json_object_get_string(an);
    if (strcmp(mode, "no") == 0)
        f->anonymise = DEF_ANON_NO;
    else if (strcmp(mode, "final") == 0)
        f->anonymise = DEF_ANON_FINAL;
    else if (strcmp(mode, "intermediate") == 0)
        f->anonymise = DEF_ANON_INTERMEDIATE;
    else {
        snprintf(err, errlen, "%s: field %s: unknown anonymise mode \"%s\"", path, f->id, mode);
        return AX_ERR_CONFIG;
    }
    return AX_OK;
}

static int parse_field_list(json_object *array, bool backoffice, const char *block, struct def_field **fields,
                            size_t *nfields, const char *path, char *err, size_t errlen);

/* A name a field takes: its column, or one of the companion columns w.c.s. gives it. */
struct taken {
    const char *name;
    const struct def_field *owner;
    const char *what; /* NULL: the field's own column (or a subfield's id) */
    char *buf;
};

static int cmp_taken(const void *a, const void *b)
{
    const struct taken *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->what != NULL) - (y->what != NULL);
}

/*
 * No two fields take the same name, sorted rather than compared pairwise
 * (40,000 fields): a block's subfield ids, or the columns of a form, where
 * a field with id "9_display" would take field 9's display column.
 */
static int check_names(const struct def_field *fields, size_t n, const char *path, const char *block, char *err,
                       size_t errlen)
{
    static const char *const companions[] = {"_display", "_structured"};
    size_t per = block ? 1 : 1 + AX_ARRAY_LEN(companions), m = 0;
    struct taken *t = ax_calloc(n * per + 1, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        t[m++] = (struct taken){block ? fields[i].id : fields[i].column, &fields[i], NULL, NULL};
        for (size_t k = 0; !block && k < AX_ARRAY_LEN(companions); k++) {
            char *name = ax_asprintf("%s%s", fields[i].column, companions[k]);
            t[m++] = (struct taken){name, &fields[i], companions[k] + 1, name};
        }
    }
    qsort(t, m, sizeof *t, cmp_taken);
    int rc = AX_OK;
    for (size_t i = 1; i < m && rc == AX_OK; i++) {
        if (strcmp(t[i - 1].name, t[i].name) != 0 || t[i - 1].owner == t[i].owner)
            continue;
        rc = AX_ERR_CONFIG;
        if (block)
            snprintf(err, errlen, "%s: block %s has two subfields with id %s", path, block, t[i].name);
        else if (!t[i].what)
            snprintf(err, errlen, "%s: fields %s and %s map to the same column %s", path, t[i - 1].owner->id,
                     t[i].owner->id, t[i].name);
        else
            snprintf(err, errlen, "%s: field %s's column %s is field %s's %s column: ids collide", path,
                     t[i - 1].owner->id, t[i].name, t[i].owner->id, t[i].what);
    }
    for (size_t i = 0; i < m; i++)
        free(t[i].buf);
    free(t);
    return rc;
}

/* A block's subfields: "schema": {"fields": [...]} (absent: none known, every value is removed). */
static int parse_block(json_object *jf, struct def_field *f, const char *path, char *err, size_t errlen)
{
    json_object *schema, *subs;
    if (!json_object_object_get_ex(jf, "schema", &schema) || !json_object_is_type(schema, json_type_object) ||
        !json_object_object_get_ex(schema, "fields", &subs) || json_object_is_type(subs, json_type_null))
        return AX_OK;
    return parse_field_list(subs, f->backoffice, f->id, &f->subs, &f->nsubs, path, err, errlen);
}

/* "max_items" of a block: w.c.s. exports it as a string ("1"), older exports as a number; 0 when absent or odd. */
static int block_max_items(json_object *jf)
{
    json_object *v;
    if (!json_object_object_get_ex(jf, "max_items", &v))
        return 0;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int(v) > 0 ? json_object_get_int(v) : 0;
    if (json_object_is_type(v, json_type_string)) {
        char *end;
        long n = strtol(json_object_get_string(v), &end, 10);
        return *end == '\0' && n > 0 && n < 1000000 ? (int)n : 0;
    }
    return 0;
}

/* One field with a value; block: the id of the block it belongs to, or NULL. */
static int parse_field(json_object *jf, const char *type, char *id, bool backoffice, const char *block,
                       struct def_field *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->id = id;
    f->column = block ? NULL : def_column_for_id(id);
    f->type = ax_strdup(type);
    const char *label = opt_string(jf, "label");
    f->label = label ? ax_strdup(label) : NULL;
    const char *varname = opt_string(jf, "varname");
    f->varname = varname && varname[0] ? ax_strdup(varname) : NULL;
    f->backoffice = backoffice;
    f->block = strcmp(type, "block") == 0 || strncmp(type, "block:", 6) == 0;
    int rc = parse_anonymise(jf, type, f, path, err, errlen);
    if (rc == AX_OK && f->block && !block) {
        rc = parse_block(jf, f, path, err, errlen);
        f->max_items = block_max_items(jf);
    }
    return rc;
}

static int parse_field_list(json_object *array, bool backoffice, const char *block, struct def_field **fields,
                            size_t *nfields, const char *path, char *err, size_t errlen)
{
    if (!json_object_is_type(array, json_type_array)) {
        snprintf(err, errlen, "%s: \"fields\"%s%s is not a list", path, block ? " of block " : "", block ? block : "");
        return AX_ERR_CONFIG;
    }
    size_t n = json_object_array_length(array);
    *fields = ax_reallocarray(*fields, *nfields + n, sizeof **fields);
    for (size_t i = 0; i < n; i++) {
        json_object *jf = json_object_array_get_idx(array, i);
        if (!json_object_is_type(jf, json_type_object)) {
            snprintf(err, errlen, "%s: field #%zu is not an object", path, i + 1);
            return AX_ERR_CONFIG;
        }
        const char *type = opt_string(jf, "type");
        const char *label = opt_string(jf, "label");
        if (!type) {
            snprintf(err, errlen, "%s: field #%zu%s%s%s has no type", path, i + 1, label ? " \"" : "",
                     label ? label : "", label ? "\"" : "");
            return AX_ERR_CONFIG;
        }
        if (type_has_no_column(type))
            continue;
        char *id = field_id(jf);
        if (!id) {
            snprintf(err, errlen,
                     "%s: field \"%s\"%s%s has no id, so it cannot be mapped to a column (export the definition "
                     "from /api/formdefs/<slug>/schema?include-id=on, which includes ids)",
                     path, label ? label : type, block ? " of block " : "", block ? block : "");
            return AX_ERR_CONFIG;
        }
        struct def_field *f = &(*fields)[(*nfields)++];
        int rc = parse_field(jf, type, id, backoffice, block, f, path, err, errlen);
        if (rc)
            return rc;
    }
    return block ? check_names(*fields, *nfields, path, block, err, errlen) : AX_OK;
}

static int parse_fields(json_object *array, bool backoffice, struct definition *def, const char *path, char *err,
                        size_t errlen)
{
    return parse_field_list(array, backoffice, NULL, &def->fields, &def->nfields, path, err, errlen);
}

static int parse_workflow(json_object *wf, struct definition *def, const char *path, char *err, size_t errlen)
{
    json_object *statuses, *fields;

    if (!json_object_is_type(wf, json_type_object)) {
        snprintf(err, errlen, "%s: \"workflow\" is not an object", path);
        return AX_ERR_CONFIG;
    }
    if (json_object_object_get_ex(wf, "statuses", &statuses) && !json_object_is_type(statuses, json_type_null)) {
        if (!json_object_is_type(statuses, json_type_array)) {
            snprintf(err, errlen, "%s: \"workflow.statuses\" is not a list", path);
            return AX_ERR_CONFIG;
        }
        size_t n = json_object_array_length(statuses);
        def->statuses = ax_calloc(n, sizeof *def->statuses);
        for (size_t i = 0; i < n; i++) {
            json_object *js = json_object_array_get_idx(statuses, i);
            char *id = json_object_is_type(js, json_type_object) ? field_id(js) : NULL;
            if (!id) {
                snprintf(err, errlen, "%s: workflow status #%zu has no id", path, i + 1);
                return AX_ERR_CONFIG;
            }
            struct def_status *st = &def->statuses[def->nstatuses++];
            st->id = id;
            const char *name = opt_string(js, "name");
            st->name = ax_strdup(name ? name : id);
            static const char *const flags[] = {"endpoint", "forced_endpoint"};
            for (size_t k = 0; k < AX_ARRAY_LEN(flags); k++) {
                json_object *b;
                if (!json_object_object_get_ex(js, flags[k], &b) || json_object_is_type(b, json_type_null))
                    continue;
                /* "false" (a string) is true to json-c: only a boolean says it */
                if (!json_object_is_type(b, json_type_boolean)) {
                    snprintf(err, errlen, "%s: workflow status %s: \"%s\" must be true or false", path, id, flags[k]);
                    return AX_ERR_CONFIG;
                }
                st->endpoint |= json_object_get_boolean(b);
            }
        }
    }
    if (json_object_object_get_ex(wf, "fields", &fields) && !json_object_is_type(fields, json_type_null))
        return parse_fields(fields, true, def, path, err, errlen);
    return AX_OK;
}

/* -- duplicate keys ---------------------------------------------------------------- */

/*
 * json-c keeps the last of two equal keys in an object, silently: a
 * definition with "anonymise": "no" then "anonymise": "final" would mean
 * what its last line says.  Such files are refused.  A second, linear pass
 * over text json-c has accepted: keys (decoded) are collected per object,
 * sorted and compared when it closes.
 */
struct key_frame {
    bool object, expect_key;
    char **keys;
    size_t n;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The string at text[*i] (on its opening quote), decoded; *i ends after the closing quote. */
static char *scan_string(const char *text, size_t len, size_t *i)
{
    struct strbuf sb;
    sb_init(&sb);
    for ((*i)++; *i < len && text[*i] != '"'; (*i)++) {
        char c = text[*i];
        if (c == '\\' && *i + 1 < len) {
            c = text[++*i];
            if (c == 'u' && *i + 4 < len) {
                /* compared as written: \u0061 and "a" stay distinct, good enough to catch a repeated key */
                sb_appendf(&sb, "\\u%.4s", text + *i + 1);
                *i += 4;
                continue;
            }
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
        }
        sb_appendn(&sb, &c, 1);
    }
    (*i)++;
    return sb_finish(&sb);
}

static void frame_free(struct key_frame *f)
{
    for (size_t k = 0; k < f->n; k++)
        free(f->keys[k]);
    free(f->keys);
}

static int check_duplicate_keys(const char *text, size_t len, const char *path, char *err, size_t errlen)
{
    struct key_frame stack[64];
    size_t depth = 0;
    int rc = AX_OK;
    for (size_t i = 0; i < len && rc == AX_OK;) {
        char c = text[i];
        struct key_frame *top = depth ? &stack[depth - 1] : NULL;
        if (c == '"') {
            char *s = scan_string(text, len, &i);
            if (top && top->object && top->expect_key) {
                top->keys = ax_reallocarray(top->keys, top->n + 1, sizeof *top->keys);
                top->keys[top->n++] = s;
                top->expect_key = false;
            } else {
                free(s);
            }
            continue;
        }
        if ((c == '{' || c == '[') && depth < AX_ARRAY_LEN(stack)) {
            stack[depth++] = (struct key_frame){.object = c == '{', .expect_key = c == '{'};
        } else if ((c == '}' || c == ']') && top) {
            if (top->object && top->n > 1) {
                qsort(top->keys, top->n, sizeof *top->keys, cmp_str);
                for (size_t k = 1; k < top->n && rc == AX_OK; k++)
                    if (strcmp(top->keys[k - 1], top->keys[k]) == 0) {
                        snprintf(err, errlen, "%s: duplicate key \"%s\" in an object (which one counts is"
                                              " ambiguous)", path, top->keys[k]);
                        rc = AX_ERR_CONFIG;
                    }
            }
            frame_free(top);
            depth--;
        } else if (c == ',' && top && top->object) {
            top->expect_key = true;
        }
        i++;
    }
    while (depth > 0)
        frame_free(&stack[--depth]);
    return rc;
}

int def_parse(const char *text, size_t len, const char *path, struct definition **out, char *err, size_t errlen)
{
    json_tokener *tok = json_tokener_new();
    json_object *root = NULL, *v;
    int rc = AX_ERR_CONFIG;

    *out = NULL;
    if (len > (size_t)INT32_MAX) {
        snprintf(err, errlen, "%s: file too large", path);
        json_tokener_free(tok);
        return AX_ERR_CONFIG;
    }
    root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        snprintf(err, errlen, "%s: malformed JSON: unexpected end of file", path);
        goto out;
    }
    if (jerr != json_tokener_success || !root) {
        snprintf(err, errlen, "%s: malformed JSON: %s at offset %zu", path, json_tokener_error_desc(jerr),
                 json_tokener_get_parse_end(tok));
        goto out;
    }
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
        if (!isspace((unsigned char)text[i])) {
            snprintf(err, errlen, "%s: malformed JSON: trailing data at offset %zu", path, i);
            goto out;
        }
    }
    if (!json_object_is_type(root, json_type_object)) {
        snprintf(err, errlen, "%s: not a form definition (the document is not a JSON object)", path);
        goto out;
    }
    if (check_duplicate_keys(text, len, path, err, errlen) != AX_OK)
        goto out;

    struct definition *def = ax_calloc(1, sizeof *def);
    def->path = ax_strdup(path);
    const char *slug = opt_string(root, "url_name");
    const char *name = opt_string(root, "name");
    if (!slug) {
        snprintf(err, errlen, "%s: not a form definition (no \"url_name\")", path);
        def_free(def);
        goto out;
    }
    def->slug = ax_strdup(slug);
    def->name = ax_strdup(name ? name : slug);
    if (!json_object_object_get_ex(root, "fields", &v) || json_object_is_type(v, json_type_null)) {
        snprintf(err, errlen, "%s: not a form definition (no \"fields\")", path);
        def_free(def);
        goto out;
    }
    const char *id_template = opt_string(root, "id_template");
    def->id_template = id_template && id_template[0];
    rc = parse_fields(v, false, def, path, err, errlen);
    if (rc == AX_OK && json_object_object_get_ex(root, "workflow", &v) && !json_object_is_type(v, json_type_null))
        rc = parse_workflow(v, def, path, err, errlen);
    if (rc == AX_OK)
        rc = check_names(def->fields, def->nfields, path, NULL, err, errlen);
    if (rc != AX_OK) {
        def_free(def);
        goto out;
    }
    *out = def;
    rc = AX_OK;
out:
    json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

static int def_load_file(const char *path, struct definition **out, char *err, size_t errlen)
{
    size_t len;
    char why[128];
    char *text = cfg_read_file(path, CFG_MAX_DEFINITION_BYTES, &len, why, sizeof why);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read form definition: %s", path, why);
        *out = NULL;
        return AX_ERR_IO;
    }
    int rc = def_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

const struct def_field *def_find_column(const struct definition *def, const char *column)
{
    for (size_t i = 0; def && i < def->nfields; i++)
        if (strcmp(def->fields[i].column, column) == 0)
            return &def->fields[i];
    return NULL;
}

const struct def_status *def_find_status(const struct definition *def, const char *status_id)
{
    for (size_t i = 0; def && i < def->nstatuses; i++)
        if (strcmp(def->statuses[i].id, status_id) == 0)
            return &def->statuses[i];
    return NULL;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int def_set_load(const char *dir, struct def_set *set, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t nnames = 0;
    int rc = AX_OK;

    set->defs = NULL;
    set->n = 0;
    if (!d) {
        if (errno == ENOENT)
            return AX_OK;
        snprintf(err, errlen, "%s: cannot read definitions directory: %s", dir, strerror(errno));
        return AX_ERR_IO;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        names = ax_reallocarray(names, nnames + 1, sizeof *names);
        names[nnames++] = ax_strdup(de->d_name);
    }
    closedir(d);
    /* deterministic order, for messages and reports (qsort wants an array, even empty) */
    if (nnames > 1)
        qsort(names, nnames, sizeof *names, cmp_names);

    set->defs = ax_calloc(nnames, sizeof *set->defs);
    for (size_t i = 0; i < nnames && rc == AX_OK; i++) {
        char *path = ax_asprintf("%s/%s", dir, names[i]);
        struct definition *def;
        rc = def_load_file(path, &def, err, errlen);
        if (rc == AX_OK) {
            size_t stem = strlen(names[i]) - 5;
            if (strlen(def->slug) != stem || strncmp(def->slug, names[i], stem) != 0) {
                snprintf(err, errlen, "%s: url_name \"%s\" does not match the file name", path, def->slug);
                def_free(def);
                rc = AX_ERR_CONFIG;
            } else {
                set->defs[set->n++] = def;
            }
        } else if (rc == AX_ERR_IO) {
            rc = AX_ERR_CONFIG;
        }
        free(path);
    }
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    if (rc != AX_OK)
        def_set_free(set);
    return rc;
}

void def_set_free(struct def_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        def_free(set->defs[i]);
    free(set->defs);
    set->defs = NULL;
    set->n = 0;
}

const struct definition *def_set_find(const struct def_set *set, const char *slug)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->defs[i]->slug, slug) == 0)
            return set->defs[i];
    return NULL;
}
