/*
 * chain.h: the history's chain.  Every entry of anonymizer.runs (a run of
 * one tenant, a hold added or removed) is sealed, once it is final, with
 * HMAC-SHA256 under the audit key (audit_key_file), over its canonical text,
 * which holds the seal of the entry before it.  A database administrator
 * without the key cannot edit, insert, reorder or delete an entry unseen;
 * deleting the whole history, or its last entries, is seen through the
 * chain head each host keeps outside the database (audit_head_directory).
 * See anonymizer(1), "THE HISTORY'S CHAIN".
 */
#ifndef CHAIN_H
#define CHAIN_H

#include "app.h"
#include "tenant.h"

#include <stdbool.h>

/*
 * Seals the entry of run_id (final: not "running") as the chain's next,
 * in one transaction; then records the new head in this host's head file.
 * Without an audit key it does nothing (the history is unchained).  A
 * missing head (entries deleted since this host last sealed) starts a new
 * chain that says so.
 */
int chain_seal(struct tenant *t, const struct app *app, const char *run_id);

/* The same inside the caller's transaction (an entry sealed with what it records); once committed,
 * chain_sealed records the head (seq 0: nothing was sealed). */
struct chain_head {
    long long seq;
    char mac[65];
};
int chain_seal_in(struct tenant *t, const struct app *app, const char *run_id, struct chain_head *head);
void chain_sealed(const struct app *app, const char *tenant, const struct chain_head *head);

enum chain_state {
    CHAIN_OFF = 0,    /* no audit key configured: the history is not chained */
    CHAIN_INTACT,     /* every sealed entry verified, and linked */
    CHAIN_BROKEN,     /* an entry was edited, inserted, deleted or reordered */
    CHAIN_UNVERIFIED, /* nothing wrong found, but some could not be checked (a key missing, no entry yet) */
};

enum chain_fault {
    FAULT_NONE = 0,
    FAULT_EDITED,          /* its content no longer matches its seal */
    FAULT_INSERTED,        /* a seal nobody with the key made, not linked from the next entry */
    FAULT_UNSEALED,        /* an entry without a seal after the chain started */
    FAULT_DELETED,         /* the entry it links to is gone */
    FAULT_REORDERED,       /* it links to an entry that is not the one before it */
    FAULT_HISTORY_DELETED, /* a run found the chain's head gone and started a new chain */
    FAULT_HEAD_MISSING,    /* the head this host sealed last is gone */
};

struct chain_status {
    enum chain_state state;
    enum chain_fault fault;
    long long bad_seq;     /* the first bad entry's position (-1: none, or after the last one) */
    char *bad_run_id, *bad_started; /* and which it is (ISO UTC) */
    long long entries;     /* sealed entries */
    long long unchained;   /* entries from before the chain started */
    char *since;           /* when the chain started (ISO UTC), NULL when it has no entry */
    char *key_id;          /* the key of its last entry */
    char *unverified;      /* why some of it could not be checked, or NULL */
};

/* Verifies the tenant's history (read-only). */
int chain_verify(struct tenant *t, const struct app *app, struct chain_status *out);
void chain_status_free(struct chain_status *s);

/* The state and fault as words for programs ("intact", "edited"). */
const char *chain_state_str(enum chain_state s);
const char *chain_fault_str(enum chain_fault f);

/* One line for people, in their language: "intact since ..., 42 entries" (caller frees). */
char *chain_status_text(const struct chain_status *s);

/* -- the pure part, for the tests ----------------------------------------------------- */

struct chain_entry {
    long long seq; /* -1: not sealed */
    const char *run_id, *started_at, *sealed_at, *mac, *prev_mac, *key_id, *note, *canonical;
    bool running;
};

struct chain_key {
    const char *id;
    const char *key;
    size_t len;
};

/* The seal of a canonical text, as 64 hex characters and a NUL. */
void chain_mac(const struct chain_key *key, const char *canonical, char out[65]);

/*
 * Verifies entries ordered by seq, unsealed ones (seq -1) first in order
 * of start; head_mac: this host's last sealed head, or NULL.  Fills out
 * (strings are copies).
 */
void chain_check(const struct chain_entry *e, size_t n, const struct chain_key *keys, size_t nkeys,
                 const char *head_mac, struct chain_status *out);

#endif
