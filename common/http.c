/*
 * http.c: libcurl GET with the project's rules (see http.h).
 */
#include "http.h"
#include "ax.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_cleanup(void)
{
    curl_global_cleanup();
}

/* The host of a URL as libcurl parsed it: "localhost", an IPv4 address in
 * 127.0.0.0/8 or the IPv6 loopback, parsed as addresses, never compared as
 * text prefixes ("127.attacker.example" is a name, not an address). */
static bool loopback_host(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return true;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        char inner[64];
        struct in6_addr v6;
        if (n - 2 >= sizeof inner)
            return false;
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        return inet_pton(AF_INET6, inner, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
    }
    return false;
}

bool http_url_allowed(const char *url, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, errlen, "not a valid URL");
    } else if (strcmp(scheme, "https") == 0 || (strcmp(scheme, "http") == 0 && loopback_host(host))) {
        ok = true;
    } else if (strcmp(scheme, "http") == 0) {
        snprintf(err, errlen, "plain http:// is allowed only to localhost: use https://");
    } else {
        snprintf(err, errlen, "scheme %s is not https", scheme);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

char *http_url_for_log(const char *url)
{
    size_t n = strcspn(url, "?#");
    return ax_strndup(url, n);
}

struct sink {
    struct strbuf *body;
    size_t max;
    bool too_large;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;
    if (s->body->len + n > s->max) {
        s->too_large = true;
        return 0; /* aborts the transfer */
    }
    sb_appendn(s->body, data, n);
    return n;
}

int http_get(const struct http_options *o, const char *url, long *status, struct strbuf *body, char *err,
             size_t errlen)
{
    char curl_err[CURL_ERROR_SIZE] = "";
    char *where = http_url_for_log(url);
    int rc = -1;

    *status = 0;
    sb_reset(body);
    if (!http_url_allowed(url, err, errlen)) {
        free(where);
        return -1;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "%s: cannot start an HTTP request", where);
        free(where);
        return -1;
    }
    struct sink sink = {.body = body, .max = o->max_bytes ? o->max_bytes : HTTP_MAX_BYTES};
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (o->user_agent)
        curl_easy_setopt(c, CURLOPT_USERAGENT, o->user_agent);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    CURLcode res = curl_easy_perform(c);
    if (sink.too_large) {
        snprintf(err, errlen, "%s: the response is larger than %zu bytes", where, sink.max);
    } else if (res != CURLE_OK) {
        /* libcurl's message names the host, never the query */
        snprintf(err, errlen, "%s: %s", where, curl_err[0] ? curl_err : curl_easy_strerror(res));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (*status >= 300 && *status < 400)
            snprintf(err, errlen, "%s: redirected (HTTP %ld), which is not followed: check the tenant's url", where,
                     *status);
        else
            rc = 0;
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    free(where);
    return rc;
}
