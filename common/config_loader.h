/*
 * config_loader.h: what the configuration's loaders share (config.c reads
 * the settings through key tables; config_loader.c holds the readers of
 * values and groups).  Private to config*.c.
 */
#ifndef CONFIG_LOADER_H
#define CONFIG_LOADER_H

#include "config.h"
#include "ax.h"
#include "strbuf.h"

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

struct loader {
    const char *path;
    char *err;
    size_t errlen;
    bool file_readable_by_others;
    bool uncapped; /* reading a cards entry: registers are not held to the three-month cap */
};

/*
 * Groups are read through tables: each setting name with the function that
 * reads it into the group's object.  A name not in the table is an error
 * that lists the known ones.
 */
struct key {
    const char *name;
    int (*load)(struct loader *ld, const config_setting_t *s, void *obj);
};

/* "tenants[1].retention" for a setting. */
/* "tenants[1].retention" for a setting. */
void ld_setting_path(const config_setting_t *s, struct strbuf *out);
/* The one error line (file, line, setting, what is wrong) into ld->err; returns AX_ERR_CONFIG. */
int ld_bad(struct loader *ld, const config_setting_t *s, const char *fmt, ...) AX_PRINTF(3, 4);

/* Values of a setting, each checked; AX_OK or ld_bad's status. */
int ld_get_string(struct loader *ld, const config_setting_t *s, const char **out);
/* A string that must be one of choices (NULL-terminated): else one error naming them. */
int ld_get_one_of(struct loader *ld, const config_setting_t *s, const char *const *choices, const char **out);
int ld_get_nonempty_string(struct loader *ld, const config_setting_t *s, const char **out);
int ld_get_bool(struct loader *ld, const config_setting_t *s, bool *out);
int ld_get_int_range(struct loader *ld, const config_setting_t *s, long long min, long long max, int *out);
int ld_get_duration(struct loader *ld, const config_setting_t *s, int *out_ms);
int ld_get_positive_duration(struct loader *ld, const config_setting_t *s, int *out_ms, const char *why);
int ld_load_nonempty(struct loader *ld, const config_setting_t *s, char **dst);
int ld_load_conninfo(struct loader *ld, const config_setting_t *s, char **dst);
int ld_load_name_list(struct loader *ld, const config_setting_t *s, char ***out, size_t *n);
int ld_load_url(struct loader *ld, const config_setting_t *s, char **dst, bool pattern);
void ld_set_string(char **dst, const char *value);

/* retention, drafts, open_submissions, open_limit: the settings every level may give. */
int ld_policy_setting(struct loader *ld, const config_setting_t *s, struct cfg_policy *pol);
/* A conninfo holding a password is refused in a file others may read. */

/* A group read through its key table; a list of groups into a new array of n items of size bytes. */
int ld_load_keys(struct loader *ld, const config_setting_t *g, const struct key *keys, size_t nkeys, void *obj,
                 const char *what);
int ld_load_group(struct loader *ld, const config_setting_t *g, const struct key *keys, size_t nkeys, void *obj,
                  const char *what, const char *shape);
int ld_load_list(struct loader *ld, const config_setting_t *s, size_t size, void **items, size_t *n,
                 int (*load_one)(struct loader *ld, const config_setting_t *g, void *item), const char *shape);

/*
 * A secret key file: a regular file, private (600, or root:group 640), one
 * line; what names it in messages ("API key").  *key a new string (its length in *len); a file this process cannot
 * open is not an error: *key NULL and *unreadable says why.
 */
int ld_read_key_file(struct loader *ld, const config_setting_t *s, const char *what, const char *path, char **key,
                     size_t *len, char **unreadable);
/* audit_key_file, audit_old_key_files, audit_head_directory (config_audit.c). */
int ld_root_audit_key_file(struct loader *ld, const config_setting_t *s, void *obj);
int ld_root_audit_old_key_files(struct loader *ld, const config_setting_t *s, void *obj);
int ld_root_audit_head_directory(struct loader *ld, const config_setting_t *s, void *obj);

/* The text of a configuration file, checked before libconfig reads it (config_file.c). */
int cfg_check_text(const char *path, const char *text, size_t len, char *err, size_t errlen);
/* SHA-256 (hex) of the settings with their secrets removed (config_digest.c). */
void cfg_settings_digest(const config_t *lc, char out[65]);

#endif
