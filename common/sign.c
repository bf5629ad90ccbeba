/*
 * sign.c: Publik's signed URLs (see sign.h).
 */
#include "sign.h"
#include "ax.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void sign_url_quote(struct strbuf *sb, const char *s, const char *safe, bool plus)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("_.-~", *p) != NULL || (safe && strchr(safe, *p) != NULL);
        if (keep) {
            sb_appendc(sb, (char)*p);
        } else if (plus && *p == ' ') {
            sb_appendc(sb, '+');
        } else {
            sb_appendc(sb, '%');
            sb_appendc(sb, hex[*p >> 4]);
            sb_appendc(sb, hex[*p & 15]);
        }
    }
}

/* name=value, the value encoded as a form value */
static void param(struct strbuf *sb, const char *name, const char *value)
{
    if (sb->len)
        sb_appendc(sb, '&');
    sb_append(sb, name);
    sb_appendc(sb, '=');
    sign_url_quote(sb, value, "", true);
}

char *sign_query(const char *base, const char *orig, const unsigned char *key, size_t keylen, const char *timestamp,
                 const char *nonce)
{
    struct strbuf sb;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];

    sb_init(&sb);
    sb_append(&sb, base ? base : "");
    param(&sb, "orig", orig);
    param(&sb, "algo", "sha256");
    param(&sb, "timestamp", timestamp);
    param(&sb, "nonce", nonce);
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)sb.buf, sb.len, mac, &maclen)) {
        sb_free(&sb);
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
    sb_append(&sb, "&signature=");
    sign_url_quote(&sb, b64, "/", false);
    OPENSSL_cleanse(mac, sizeof mac);
    return sb_finish(&sb);
}

int sign_timestamp_now(char out[21])
{
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm))
        return -1;
    return strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 20 ? 0 : -1;
}

int sign_new_nonce(char out[33])
{
    unsigned char bits[16];
    if (RAND_bytes(bits, sizeof bits) != 1)
        return -1;
    for (size_t i = 0; i < sizeof bits; i++)
        snprintf(out + 2 * i, 3, "%02x", bits[i]);
    return 0;
}
