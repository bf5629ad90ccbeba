/*
 * config.h: the configuration file (libconfig syntax), validated as a whole
 * before anything connects anywhere.
 *
 * The names of the settings are the tool's interface: see
 * man/anonymizer.conf.5.  A file that does not validate is refused with one
 * message naming the file, the line and the setting.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CFG_DEFAULT_PATH "/etc/anonymizer/anonymizer.conf"

enum cfg_drafts { CFG_DRAFTS_DELETE = 0, CFG_DRAFTS_ANONYMISE = 1 };
enum cfg_open { CFG_OPEN_SKIP = 0, CFG_OPEN_ANONYMISE = 1 };

/* Where a resolved setting comes from, most general first. */
enum cfg_source { CFG_SRC_DEFAULT = 0, CFG_SRC_GLOBAL, CFG_SRC_TENANT, CFG_SRC_FORM };
const char *cfg_source_str(enum cfg_source src);

/* The settings that can be given globally, per tenant and per form. */
struct cfg_policy {
    bool has_retention;
    int retention_days;
    char *retention_text; /* as written, for reports */
    bool has_drafts;
    enum cfg_drafts drafts;
    bool has_open;
    enum cfg_open open_submissions;
    bool has_open_limit;
    int open_limit_days; /* an open submission inactive longer than this is to review */
    char *open_limit_text;
};

struct cfg_tenant {
    char *name;
    char *conninfo; /* secret-bearing: never logged */
    char *url;      /* its w.c.s. (definitions over the signed API), ending in "/"; NULL: files only */
    char *dbname;   /* overrides the conninfo's database (discovered tenants); NULL otherwise */
    int discovered; /* 0: listed in tenants; n: found by discover entry n (1-based) */
    struct cfg_policy policy;
};

/* One "discover" entry: the databases of a server that match a LIKE pattern. */
struct cfg_discover {
    char *conninfo; /* secret-bearing: never logged */
    char *databases;
    char *url; /* pattern: "%s" is the database name without the pattern's prefix, "_" turned to "." */
    char **exclude;
    size_t nexclude;
};

struct cfg_form {
    char *tenant; /* a tenant name, or "*" */
    char *slug;
    struct cfg_policy policy;
    bool has_keep, has_blank;
    char **keep; /* field varnames or ids */
    size_t nkeep;
    char **blank;
    size_t nblank;
};

/* Publik's signed API to each tenant's w.c.s. (the "wcs_api" group); absent when orig is NULL. */
struct cfg_wcs_api {
    char *orig;        /* the API client name known to w.c.s. */
    char *key;         /* the shared secret: never logged, never copied but into the HMAC */
    size_t keylen;
    char *key_error;   /* key_file could not be read (NULL: read): only the fetches that need it fail */
    char *ca_file;     /* CA bundle for the servers' certificates; NULL: the system's */
    int timeout_ms;
    int deadline_ms;   /* a tenant's whole fetch (every request); the run's time budget cuts it shorter */
};

/* The BI staging database (the "bi" group); absent when bi.conninfo is NULL.  See anonymizer-bi(7). */
struct cfg_bi {
    char *conninfo; /* secret-bearing: never logged */
    char *schema;
    char *time_precision; /* the finest published: "minute", "hour" or "day" (default) */
    char *date_precision; /* kept date fields: "day", "month" (default) or "year" */
    int min_k;            /* k-anonymity: every published row shares all it shows with min_k - 1 others; 1: off */
    int min_l;            /* l-diversity: every group has min_l distinct values of each sensitive field; 1: off */
    char **sensitive;     /* kept fields (varnames or ids) an attacker would want to learn, not knows: not counted
                             in the groups (bi.harmless, the old name, is read as this) */
    size_t nsensitive;
    bool generalise;      /* coarsen times and suppress rare values of rows in small groups before holding them
                             back (default true) */
    char *reader_role;    /* the dashboards' role: the published views only; NULL: none */
    char *loader_role;    /* the loading pipeline's role: also the rows with their export times; NULL: none */
};

/* A key of the chained history (audit_key_file, audit_old_key_files): see anonymizer(1), "THE HISTORY'S CHAIN". */
struct cfg_audit_key {
    char *path;
    char *key;     /* NULL: not configured, or unreadable (error says why) */
    size_t keylen;
    char id[17];   /* the first 8 bytes of its SHA-256, hex: how entries name the key that sealed them */
    char *error;   /* the file could not be read by this process */
};

struct cfg_audit {
    struct cfg_audit_key key;  /* seals new entries (path NULL: the history is not chained) */
    struct cfg_audit_key *old; /* retired keys: they verify the entries they sealed */
    size_t nold;
    char *head_directory;      /* where this host keeps each tenant's chain head */
};
void cfg_audit_free(struct cfg_audit *a);

struct cfg {
    char *path;
    char digest[65]; /* SHA-256 (hex) of the settings with their secrets removed: the audit's config_sha256 */
    struct cfg_policy policy; /* global level */
    int batch_size;
    int lock_timeout_ms;
    int batch_target_ms; /* a batch transaction should take about this long: its size adapts */
    int statement_timeout_ms;
    bool vacuum;
    bool testdefs_report_only; /* testdefs = "report": test definitions made from submissions are left, and reported */
    bool wcs_logs_anonymise; /* wcs_logs = "anonymise": the texts of w.c.s.'s errors about anonymised submissions are blanked */
    bool log_syslog;
    char *schemas; /* directory of form definitions */
    char *wcs_sites; /* w.c.s.'s directory of tenants (<dir>/<tenant>/site-options.cfg), or NULL */
    int backup_retention_days; /* how long backups keep what the database held */
    char *timezone;            /* of the times people read (report, history); NULL: the system's */
    char *backup_retention_text;
    struct cfg_bi bi;
    struct cfg_wcs_api wcs_api;
    struct cfg_audit audit;
    int jobs;              /* tenants processed at once */
    int max_runtime_ms;    /* 0: no time budget */
    struct cfg_discover *discover;
    size_t ndiscover;
    struct cfg_tenant *tenants;
    size_t ntenants;
    struct cfg_form *forms;
    size_t nforms;
    struct cfg_form *cards; /* cards opted into anonymisation (retention not capped) */
    size_t ncards;
};

/* What applies to one form of one tenant, every level folded in.  Strings
 * point into the cfg; the struct owns nothing. */
struct cfg_resolved {
    int retention_days;
    const char *retention_text;
    enum cfg_source retention_source;
    enum cfg_drafts drafts;
    enum cfg_source drafts_source;
    enum cfg_open open_submissions;
    enum cfg_source open_source;
    int open_limit_days;
    const char *open_limit_text;
    enum cfg_source open_limit_source;
    char *const *keep;
    size_t nkeep;
    char *const *blank;
    size_t nblank;
};

/*
 * Loads and validates a configuration file.  On success *out is a new cfg
 * (caller frees with cfg_free).  On failure returns AX_ERR_CONFIG (or
 * AX_ERR_IO when the file cannot be read) with one line in err.
 */
int cfg_load(const char *path, struct cfg **out, char *err, size_t errlen);
void cfg_free(struct cfg *cfg);

const struct cfg_tenant *cfg_find_tenant(const struct cfg *cfg, const char *name);

/* Adds a discovered tenant (takes copies); explicit tenants must be checked by the caller. */
void cfg_add_discovered(struct cfg *cfg, const char *name, const char *conninfo, const char *dbname, const char *url,
                        int entry);

/* The first forms (or cards) entry naming a tenant that is not in cfg->tenants, or NULL. */
const struct cfg_form *cfg_unknown_form_tenant(const struct cfg *cfg);

/* The directory of a tenant's definitions under schemas: its name, with "/", "%", control characters and a
 * leading "." percent-encoded (a discovered database may be called anything).  Caller frees. */
char *cfg_tenant_dirname(const char *name);

/* Whether a name can be a listed tenant's (it names a definitions directory). */
int cfg_valid_tenant_name(const char *name);

/* Folds global, tenant and form levels for (tenant, slug). */
void cfg_resolve(const struct cfg *cfg, const struct cfg_tenant *tenant, const char *slug,
                 struct cfg_resolved *out);
/* The same for a card, from the cards entries; returns whether one names it (the card is anonymised). */
bool cfg_resolve_card(const struct cfg *cfg, const struct cfg_tenant *tenant, const char *slug,
                      struct cfg_resolved *out);

/*
 * Reads a regular file of at most max bytes into memory (NUL-terminated,
 * caller frees).  NULL on failure, with the reason in err ("not a regular
 * file", "larger than 16 MiB", the system's message).
 */
char *cfg_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#define CFG_MAX_CONFIG_BYTES (1024 * 1024)          /* a configuration file */
#define CFG_MAX_DEFINITION_BYTES (16 * 1024 * 1024) /* a form definition file */

#endif
