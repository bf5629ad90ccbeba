/*
 * ipc.c: see ipc.h.
 */
#include "ipc.h"
#include "ax.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ipc_send(int fd, enum ipc_type type, const void *payload, size_t len)
{
    struct ipc_hdr h = {(uint32_t)type, (uint32_t)len};
    char *buf = ax_malloc(sizeof h + len);
    memcpy(buf, &h, sizeof h);
    if (len)
        memcpy(buf + sizeof h, payload, len);
    ax_write_all(fd, buf, sizeof h + len);
    free(buf);
}

int ipc_read(struct ipc_reader *r, int fd)
{
    /* what was handed out is dropped first */
    if (r->taken) {
        memmove(r->buf, r->buf + r->taken, r->len - r->taken);
        r->len -= r->taken;
        r->taken = 0;
    }
    const size_t room = 8192;
    if (r->cap - r->len < room) {
        r->cap = r->cap ? r->cap * 2 : 2 * room;
        r->buf = ax_realloc(r->buf, r->cap);
    }
    ssize_t n = read(fd, r->buf + r->len, r->cap - r->len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? -1 : 0;
    if (n == 0)
        return 0;
    r->len += (size_t)n;
    return 1;
}

bool ipc_next(struct ipc_reader *r, uint32_t *type, const char **payload, size_t *len)
{
    struct ipc_hdr h;
    size_t left = r->len - r->taken;
    if (left < sizeof h)
        return false;
    memcpy(&h, r->buf + r->taken, sizeof h);
    if (left - sizeof h < h.len)
        return false;
    *type = h.type;
    *payload = r->buf + r->taken + sizeof h;
    *len = h.len;
    r->taken += sizeof h + h.len;
    return true;
}

size_t ipc_pending(const struct ipc_reader *r)
{
    return r->len - r->taken;
}

void ipc_reader_free(struct ipc_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}
