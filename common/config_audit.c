/*
 * config_audit.c: secret key files (the API key, the audit key) and the
 * settings of the chained history: audit_key_file, audit_old_key_files,
 * audit_head_directory.
 */
#include "config_loader.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int ld_read_key_file(struct loader *ld, const config_setting_t *s, const char *what, const char *path, char **key,
                     size_t *len, char **unreadable)
{
    struct stat st;
    *key = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        /* a key this process cannot read fails what needs it, not the night */
        free(*unreadable);
        *unreadable = ax_asprintf("cannot read the %s file %s: %s", what, path, strerror(errno));
        return AX_OK;
    }
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ld_bad(ld, s, "%s is not a regular file", path);
    }
    /* private, or readable by its group when root owns it (root:anonymizer 0640, the Debian way
     * for a secret a service reads); never writable by the group, nothing for others */
    if ((st.st_mode & (S_IRWXO | S_IWGRP | S_IXGRP)) || ((st.st_mode & S_IRGRP) && st.st_uid != 0)) {
        fclose(fp);
        return ld_bad(ld, s, "%s is readable by other users: make it private (chmod 600, or root:anonymizer 640)",
                      path);
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, fp);
    bool more = fgetc(fp) != EOF;
    fclose(fp);
    /* one line: the key, then at most line ends */
    size_t line = 0;
    while (line < n && buf[line] != '\n' && buf[line] != '\r')
        line++;
    bool extra = false;
    for (size_t i = line; i < n; i++)
        extra |= buf[i] != '\n' && buf[i] != '\r';
    int rc = AX_OK;
    if (more)
        rc = ld_bad(ld, s, "%s is too large for a key", path);
    else if (extra)
        rc = ld_bad(ld, s, "%s must hold the key on one line", path);
    else if (line == 0)
        rc = ld_bad(ld, s, "%s is empty", path);
    else {
        *key = ax_strndup(buf, line);
        *len = line;
    }
    explicit_bzero(buf, sizeof buf);
    return rc;
}

static void cfg_audit_key_free(struct cfg_audit_key *k)
{
    if (k->key)
        explicit_bzero(k->key, k->keylen);
    free(k->key);
    free(k->path);
    free(k->error);
    memset(k, 0, sizeof *k);
}

/* An audit key: at least 32 bytes (openssl rand -hex 32), named by the start of its SHA-256. */
static int load_audit_key(struct loader *ld, const config_setting_t *s, struct cfg_audit_key *k)
{
    const char *path;
    int rc = ld_get_nonempty_string(ld, s, &path);
    if (rc)
        return rc;
    cfg_audit_key_free(k);
    k->path = ax_strdup(path);
    if ((rc = ld_read_key_file(ld, s, "audit key", path, &k->key, &k->keylen, &k->error)) || !k->key)
        return rc;
    if (k->keylen < 32)
        return ld_bad(ld, s, "%s holds a key of %zu bytes: an audit key has at least 32 (openssl rand -hex 32)",
                      path, k->keylen);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(k->key, k->keylen, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 8; i++)
        snprintf(k->id + 2 * i, 3, "%02x", md[i]);
    return AX_OK;
}

int ld_root_audit_key_file(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    return load_audit_key(ld, s, &cfg->audit.key);
}

int ld_root_audit_old_key_files(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return ld_bad(ld, s, "must be a list of key files, like [\"/etc/anonymizer/audit.key.2026\"]");
    int len = config_setting_length(s);
    cfg->audit.old = ax_calloc((size_t)len + 1, sizeof *cfg->audit.old);
    cfg->audit.nold = 0;
    for (int i = 0; i < len; i++) {
        int rc = load_audit_key(ld, config_setting_get_elem(s, (unsigned)i), &cfg->audit.old[cfg->audit.nold++]);
        if (rc)
            return rc;
    }
    return AX_OK;
}

int ld_root_audit_head_directory(struct loader *ld, const config_setting_t *s, void *obj)
{
    struct cfg *cfg = obj;
    const char *text;
    int rc = ld_get_nonempty_string(ld, s, &text);
    if (rc)
        return rc;
    if (text[0] != '/')
        return ld_bad(ld, s, "an absolute directory is expected, not \"%s\"", text);
    ld_set_string(&cfg->audit.head_directory, text);
    return AX_OK;
}

void cfg_audit_free(struct cfg_audit *a)
{
    cfg_audit_key_free(&a->key);
    for (size_t i = 0; i < a->nold; i++)
        cfg_audit_key_free(&a->old[i]);
    free(a->old);
    free(a->head_directory);
    memset(a, 0, sizeof *a);
}
