/*
 * http.h: GET requests to w.c.s., through libcurl.
 *
 * HTTPS only, certificates always verified (against the system's CAs or
 * the given CA bundle), plain http:// only to a loopback host; redirects are
 * not followed; a response larger than the limit is an error.  Messages
 * name the URL without its query (which carries the signature).
 */
#ifndef HTTP_H
#define HTTP_H

#include "strbuf.h"

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_BYTES (16u * 1024 * 1024)

struct http_options {
    const char *ca_file; /* NULL: the system's CA bundle */
    long timeout_ms;
    size_t max_bytes;
    const char *user_agent; /* "anonymizer/<version>"; NULL: libcurl's */
};

/* Once, before anything else runs (libcurl's global state). */
void http_global_init(void);
void http_global_cleanup(void);

/* Whether url may be requested: https://, or http:// to localhost or a loopback address. */
bool http_url_allowed(const char *url, char *err, size_t errlen);

/* url without its query and fragment (caller frees): what messages may show. */
char *http_url_for_log(const char *url);

/*
 * GETs url (Accept: application/json).  Returns 0 with the HTTP status in
 * *status and the body in body (whatever the status), or -1 with one line in
 * err (connection, TLS, timeout, too large, redirect refused).
 */
int http_get(const struct http_options *o, const char *url, long *status, struct strbuf *body, char *err,
             size_t errlen);

#endif
