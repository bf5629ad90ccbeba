/*
 * ipc.h: the messages a worker process sends to the process that started it
 * (a tenant's worker to the parent, a helper to its tenant's coordinator),
 * framed on a pipe: a header (type, length), then the payload.
 *
 * A message is written with one write(2): one no larger than PIPE_BUF
 * (4096 bytes on Linux) reaches the reader whole even when several
 * processes write to the same pipe (a coordinator and its helpers share
 * their pipe to the parent).  Log lines are cut to fit.
 */
#ifndef IPC_H
#define IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ipc_type {
    IPC_LOG = 1,      /* int32 level, then a log line (newline included) */
    IPC_PROGRESS = 2, /* struct progress_msg (progress.h) */
    IPC_RESULT = 3,   /* the job's result (executor.h) or a work unit's (run) */
    IPC_STDOUT = 4,   /* a line of the command's output */
    IPC_ENTRIES = 5,  /* which configuration entries the tenant matched (app.h) */
};

struct ipc_hdr {
    uint32_t type;
    uint32_t len;
};

/* The largest message that is written atomically to a shared pipe. */
#define IPC_ATOMIC_MAX 4096

/* Writes a message (a broken pipe is ignored: the reader is gone, nothing useful is left to say). */
void ipc_send(int fd, enum ipc_type type, const void *payload, size_t len);

/* What has been read from a pipe and not yet taken as messages. */
struct ipc_reader {
    char *buf; /* owned */
    size_t len, cap;
    size_t taken; /* bytes of buf already handed out as messages */
};

/* Reads what fd has: 1 when something was read, 0 at end of file, -1 when nothing is there now. */
int ipc_read(struct ipc_reader *r, int fd);

/*
 * The next whole message: true with its type and payload (which points into
 * the reader's buffer, valid until the next ipc_read), false when the rest
 * is incomplete.
 */
bool ipc_next(struct ipc_reader *r, uint32_t *type, const char **payload, size_t *len);

/* Bytes read that are not a whole message (at end of file: a writer that died mid-message). */
size_t ipc_pending(const struct ipc_reader *r);

void ipc_reader_free(struct ipc_reader *r);

#endif
