/*
 * log.c: one-line diagnostics on stderr and syslog.
 */
#include "log.h"
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static bool use_syslog;
static log_sink_fn line_sink;
static void *line_sink_arg;
static char first_error[512]; /* for a caller that must sum a failure up in one line (Nagios) */
static bool to_journal;       /* stderr is the journal's stream: sd-daemon priority prefixes, no name */

void log_set_sink(log_sink_fn sink, void *arg)
{
    line_sink = sink;
    line_sink_arg = arg;
}

/* The first error, kept without its prefix. */
static void note_error(const char *msg, size_t len)
{
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%.*s", (int)len, msg);
}

/*
 * Whether stderr is connected to the journal: systemd sets JOURNAL_STREAM
 * to the device and inode of the stream it gave the service
 * (sd_journal_stream_fd(3)), which a redirection changes.
 */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(enum log_level level)
{
    current_level = level;
    to_journal = stderr_is_journal();
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

/* The line to stderr, or to the sink. */
static void put_line(enum log_level level, const char *line, size_t len)
{
    static const char name[] = "anonymizer: ";
    if (line_sink) {
        line_sink(line_sink_arg, level, line, len);
    } else if (to_journal) {
        /* journalctl -p warning: the priority as sd-daemon(3) prefixes it; the journal names the program */
        static const char *const prio[] = {"<3>", "<4>", "<6>", "<7>"};
        if (len >= sizeof name - 1 && memcmp(line, name, sizeof name - 1) == 0) {
            line += sizeof name - 1;
            len -= sizeof name - 1;
        }
        struct strbuf sb;
        sb_init(&sb);
        sb_append(&sb, prio[level <= LOG_LEVEL_DEBUG ? level : LOG_LEVEL_DEBUG]);
        sb_appendn(&sb, line, len);
        ax_write_all(STDERR_FILENO, sb.buf, sb.len);
        sb_free(&sb);
    } else {
        ax_write_all(STDERR_FILENO, line, len);
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

    if (level == LOG_LEVEL_ERROR)
        note_error(msg, strlen(msg));
    if (to_stderr) {
        sb_appendf(&line, "anonymizer: %s%s\n", prefix[level], msg);
        put_line(level, line.buf, line.len);
    }
    if (to_syslog)
        syslog(priority[level], "%s%s", prefix[level], msg);
    free(msg);
    sb_free(&line);
}

const char *log_first_error(void)
{
    return first_error[0] ? first_error : NULL;
}

void log_relay(enum log_level level, const char *line, size_t len)
{
    static const char error_prefix[] = "anonymizer: error: ";
    if (level == LOG_LEVEL_ERROR && len > sizeof error_prefix - 1 &&
        strncmp(line, error_prefix, sizeof error_prefix - 1) == 0) {
        size_t n = len - (sizeof error_prefix - 1);
        note_error(line + sizeof error_prefix - 1, n && line[len - 1] == '\n' ? n - 1 : n);
    }
    put_line(level, line, len);
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
