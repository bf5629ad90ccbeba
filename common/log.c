/*
 * log.c: one-line diagnostics on stderr and syslog.
 */
#include "log.h"
#include "strbuf.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static bool use_syslog;
static void (*line_sink)(enum log_level level, const char *line, size_t len);
static char first_error[512]; /* for a caller that must sum a failure up in one line (Nagios) */
static pthread_mutex_t first_error_lock = PTHREAD_MUTEX_INITIALIZER; /* report --jobs: threads */

void log_set_sink(void (*sink)(enum log_level level, const char *line, size_t len))
{
    line_sink = sink;
}

void log_init(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

void log_set_syslog(bool enabled)
{
    if (enabled && !use_syslog)
        openlog("anonymizer", LOG_PID, LOG_DAEMON);
    else if (!enabled && use_syslog)
        closelog();
    use_syslog = enabled;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void emit(enum log_level level, bool loud, const char *fmt, va_list ap)
{
    static const char *const prefix[] = {"error: ", "warning: ", "", ""};
    static const int priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    struct strbuf line;
    va_list ap2;

    bool to_stderr = loud || level <= current_level;
    /* syslog gets errors, warnings and the per-form summaries, never the
     * per-batch detail unless -v asked for it */
    bool to_syslog = use_syslog && level <= (current_level > LOG_LEVEL_INFO ? current_level : LOG_LEVEL_INFO);
    if (!to_stderr && !to_syslog)
        return;

    sb_init(&line);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *msg = ax_malloc((size_t)(n > 0 ? n : 0) + 1);
    vsnprintf(msg, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    /* a message is one line: fold embedded newlines (server errors have
     * them); other control characters (a name's escape sequences) are
     * written \xNN, never sent to the terminal */
    struct strbuf clean;
    sb_init(&clean);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            if (p[1])
                sb_appendc(&clean, ' ');
        } else if (*p < 0x20 || *p == 0x7f) {
            sb_appendf(&clean, "\\x%02x", *p);
        } else {
            sb_appendc(&clean, (char)*p);
        }
    }
    free(msg);
    msg = sb_finish(&clean);

    if (level == LOG_LEVEL_ERROR) {
        pthread_mutex_lock(&first_error_lock);
        if (!first_error[0])
            snprintf(first_error, sizeof first_error, "%s", msg);
        pthread_mutex_unlock(&first_error_lock);
    }
    if (to_stderr) {
        sb_appendf(&line, "anonymizer: %s%s\n", prefix[level], msg);
        if (line_sink)
            line_sink(level, line.buf, line.len);
        else
            write_all(STDERR_FILENO, line.buf, line.len);
    }
    if (to_syslog)
        syslog(priority[level], "%s%s", prefix[level], msg);
    free(msg);
    sb_free(&line);
}

const char *log_first_error(void)
{
    /* read once the threads have ended */
    return first_error[0] ? first_error : NULL;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, false, fmt, ap);
    va_end(ap);
}

void log_loud_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_LEVEL_WARNING, true, fmt, ap);
    va_end(ap);
}
