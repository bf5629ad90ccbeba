/*
 * config_digest.c: the digest of the settings that decided a run (the
 * audit's config_sha256): canonical text of every setting, passwords
 * removed from connection strings and the API key left out, hashed with
 * SHA-256 (libcrypto).
 */
#include "config_loader.h"

#include <openssl/evp.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A connection string without its password (the digest's view of it). */
static void conninfo_public(struct strbuf *sb, const char *conninfo)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (!opts) {
        sb_append(sb, "(unparsable)");
        PQfreemem(msg);
        return;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && strcmp(o->keyword, "password") != 0)
            sb_appendf(sb, " %s=%s", o->keyword, o->val);
    PQconninfoFree(opts);
}
/* Every setting as path=value, one per line, secrets left out. */
static void canonical(struct strbuf *sb, const config_setting_t *s, const char *path, bool secret)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY:
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *c = config_setting_get_elem(s, (unsigned)i);
            char *sub = c->name ? ax_asprintf("%s.%s", path, c->name) : ax_asprintf("%s[%d]", path, i);
            bool key = c->name && strcmp(c->name, "key") == 0 && strcmp(path, ".wcs_api") == 0;
            canonical(sb, c, sub, key);
            free(sub);
        }
        return;
    case CONFIG_TYPE_STRING:
        sb_appendf(sb, "%s=", path);
        if (secret)
            sb_append(sb, "(secret)");
        else if (s->name && strcmp(s->name, "conninfo") == 0)
            conninfo_public(sb, config_setting_get_string(s));
        else
            sb_append(sb, config_setting_get_string(s));
        break;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        sb_appendf(sb, "%s=%lld", path, config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        sb_appendf(sb, "%s=%.17g", path, config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        sb_appendf(sb, "%s=%s", path, config_setting_get_bool(s) ? "true" : "false");
        break;
    default:
        sb_appendf(sb, "%s=?", path);
    }
    sb_append(sb, "\n");
}
/* SHA-256 of the settings with their secrets removed, in hex (the audit's config_sha256). */
void cfg_settings_digest(const config_t *lc, char out[65])
{
    struct strbuf sb;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    sb_init(&sb);
    canonical(&sb, config_root_setting(lc), "", false);
    EVP_Digest(sb.buf, sb.len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    sb_free(&sb);
}
