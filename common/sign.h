/*
 * sign.h: Publik's signed URLs, as w.c.s. checks them.
 *
 * The caller's query (with orig) gets algo=sha256, timestamp (UTC,
 * %Y-%m-%dT%H:%M:%SZ) and a random 128-bit hex nonce, URL-encoded as
 * Python's urlencode does; the HMAC-SHA256 of that whole query string with
 * the shared key is base64-encoded, URL-quoted, and appended last as
 * &signature=.  OpenSSL's libcrypto computes the HMAC and draws the nonce.
 * The key is never copied anywhere but into the HMAC.
 */
#ifndef SIGN_H
#define SIGN_H

#include "strbuf.h"

#include <stdbool.h>
#include <stddef.h>

/* Appends s URL-encoded: letters, digits and "_.-~" as they are, the
 * characters of safe too, others as %XX; space as "+" when plus (Python's
 * quote_plus for form values; quote with safe "/" for the signature). */
void sign_url_quote(struct strbuf *sb, const char *s, const char *safe, bool plus);

/*
 * The signed query string for base (the request's own parameters, already
 * encoded, may be empty), the client name orig, the key, and the given
 * timestamp and nonce.  Caller frees.
 */
char *sign_query(const char *base, const char *orig, const unsigned char *key, size_t keylen, const char *timestamp,
                 const char *nonce);

/* The current UTC time as Publik writes it; 0 or -1. */
int sign_timestamp_now(char out[21]);

/* 128 random bits as 32 hex digits, from the system's CSPRNG; 0 or -1. */
int sign_new_nonce(char out[33]);

#endif
