/*
 * test_logic.c: the logic the integration tests reach only through
 * PostgreSQL, tested directly: how far a server error reaches, how a
 * batch's size follows its time, the framing of the messages between
 * processes, the nights without a run, what a slug may be, ages and
 * progress lines for people.
 */
#include "audit.h"
#include "ax.h"
#include "batch.h"
#include "defs.h"
#include "escape.h"
#include "history.h"
#include "http.h"
#include "ipc.h"
#include "progress.h"
#include "timeutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A spreadsheet opening the CSV report must not run what a form's name says (CSV injection). */
static void test_csv_cells_are_never_formulas(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"=HYPERLINK(\"http://x\",\"clic\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"clic\"\")\","},
        {"+33 6 12", "\"'+33 6 12\","}, {"-cmd", "\"'-cmd\","}, {"@SUM(A1)", "\"'@SUM(A1)\","},
        {"\tx", "\"'\tx\","}, {"-12", "-12,"}, {"+1.5", "+1.5,"}, {"demande-rdv", "demande-rdv,"},
        {"a,b", "\"a,b\","}, {"", ","},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        esc_csv_field(f, cases[i].in, false);
        fclose(f);
        assert_string_equal(buf, cases[i].out);
        free(buf);
    }
}

static void test_failure_scope(void **state)
{
    (void)state;
    /* tied to the rows of the batch: halved until the failing submission is found */
    static const char *const rows[] = {"22P02", "23503", "23514", "P0001", "39P01", "2F003", "09000", "27000",
                                       "57014"};
    for (size_t i = 0; i < AX_ARRAY_LEN(rows); i++)
        assert_int_equal(failure_scope_of(rows[i], true), FAIL_ROWS);
    /* tied to the table: the rest of the form is left */
    static const char *const table[] = {"42501", "53100", "58030", "42P01", "XX000", ""};
    for (size_t i = 0; i < AX_ARRAY_LEN(table); i++)
        assert_int_equal(failure_scope_of(table[i], true), FAIL_TABLE);
    /* the session: the tenant cannot go on */
    assert_int_equal(failure_scope_of("08006", true), FAIL_SESSION);
    assert_int_equal(failure_scope_of("57P01", true), FAIL_SESSION);
    assert_int_equal(failure_scope_of("22P02", false), FAIL_SESSION);
}

static void test_batch_size_follows_time(void **state)
{
    (void)state;
    /* on target: unchanged; twice too fast: doubled at most; too slow: a quarter at least */
    assert_int_equal(batch_next_size(1000, 2000, 500, 0.5, 1000), 1000);
    assert_int_equal(batch_next_size(500, 2000, 500, 0.01, 500), 1000);
    assert_int_equal(batch_next_size(1000, 2000, 500, 0.9, 1000), 555);
    assert_int_equal(batch_next_size(1000, 2000, 500, 8.0, 1000), 250);
    /* over a second: halved at least */
    assert_int_equal(batch_next_size(1000, 2000, 900, 1.1, 1000), 500);
    /* within 10 and batch_size */
    assert_int_equal(batch_next_size(1500, 2000, 500, 0.1, 1500), 2000);
    assert_int_equal(batch_next_size(12, 2000, 500, 8.0, 12), 10);
    assert_int_equal(batch_next_size(5, 5, 500, 8.0, 5), 5);
    /* nothing measured: unchanged */
    assert_int_equal(batch_next_size(700, 2000, 500, 0.0, 700), 700);
    assert_int_equal(batch_next_size(700, 2000, 500, 0.3, 0), 700);
}

static void test_message_framing(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char big[3000];
    memset(big, 'x', sizeof big);
    ipc_send(fds[1], IPC_STDOUT, "hello", 5);
    ipc_send(fds[1], IPC_RESULT, big, sizeof big);
    ipc_send(fds[1], IPC_LOG, "", 0);
    /* a writer that dies mid-message: its half stays pending, never a message */
    struct ipc_hdr half = {IPC_PROGRESS, 100};
    assert_int_equal(write(fds[1], &half, sizeof half), (ssize_t)sizeof half);
    assert_int_equal(write(fds[1], "abc", 3), 3);
    close(fds[1]);
    struct ipc_reader r = {0};
    uint32_t type;
    const char *p;
    size_t len, seen = 0;
    int rd;
    while ((rd = ipc_read(&r, fds[0])) != 0) {
        while (ipc_next(&r, &type, &p, &len)) {
            if (seen == 0)
                assert_true(type == IPC_STDOUT && len == 5 && memcmp(p, "hello", 5) == 0);
            else if (seen == 1)
                assert_true(type == IPC_RESULT && len == sizeof big && memcmp(p, big, len) == 0);
            else
                assert_true(type == IPC_LOG && len == 0);
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    assert_int_equal(ipc_pending(&r), sizeof half + 3);
    ipc_reader_free(&r);
    close(fds[0]);
}

static struct audit_run run_at(const char *started, const char *outcome)
{
    return (struct audit_run){.command = "run", .outcome = (char *)outcome, .started_at = (char *)started};
}

static void test_missing_nights(void **state)
{
    (void)state;
    tm_set_timezone("Europe/Paris");
    time_t since, now;
    char err[128];
    assert_int_equal(tm_parse_instant("2026-03-24T23:00:00Z", &since, err, sizeof err), 0); /* Paris midnight */
    assert_int_equal(tm_parse_instant("2026-03-31T10:00:00Z", &now, err, sizeof err), 0);
    /* the 29th has 23 hours in Paris: no day skipped, none repeated; a failed run is not a night done */
    struct audit_run runs[] = {
        run_at("2026-03-25T01:15:00Z", "ok"),     run_at("2026-03-27T01:15:00Z", "failed"),
        run_at("2026-03-28T23:30:00Z", "ok"),     /* the 29th, local */
        run_at("2026-03-30T00:15:00Z", "ok"),
    };
    char **missing;
    size_t n = history_missing_nights(runs, AX_ARRAY_LEN(runs), since, now, &missing);
    const char *want[] = {"2026-03-26", "2026-03-27", "2026-03-28"};
    assert_int_equal(n, AX_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(missing[i], want[i]);
        free(missing[i]);
    }
    free(missing);
    tm_set_timezone(NULL);
}

/* Plain http only to a loopback host, the host parsed, not prefix-matched. */
static void test_plain_http_only_to_a_loopback_address(void **state)
{
    (void)state;
    char err[128];
    static const char *const allowed[] = {"https://demarches.example.org/", "http://localhost:8080/",
                                          "http://127.0.0.1/", "http://127.1.2.3:99/x", "http://[::1]:8000/"};
    static const char *const refused[] = {"http://127.attacker.example/", "http://127.0.0.1.attacker.example/",
                                          "http://localhost.attacker.example/", "http://128.0.0.1/",
                                          "http://[::2]/", "http://[::ffff:8.8.8.8]/", "http://example.org/"};
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        assert_true(http_url_allowed(allowed[i], err, sizeof err));
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        err[0] = '\0';
        assert_false(http_url_allowed(refused[i], err, sizeof err));
        assert_non_null(strstr(err, "localhost"));
    }
}

static void test_safe_slugs(void **state)
{
    (void)state;
    static const char *const good[] = {"demande-rdv", "a", "Inscription_2.0", "x.y"};
    static const char *const bad[] = {"", ".hidden", "../etc", "a/b", "sp ace", "tab\t", "é", "a\nb"};
    for (size_t i = 0; i < AX_ARRAY_LEN(good); i++)
        assert_true(defs_safe_slug(good[i]));
    for (size_t i = 0; i < AX_ARRAY_LEN(bad); i++)
        assert_false(defs_safe_slug(bad[i]));
    char longest[202];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    assert_false(defs_safe_slug(longest));
}

static void test_ages_and_progress_lines(void **state)
{
    (void)state;
    char buf[160];
    defs_format_age(3 * 86400 + 10, buf, sizeof buf);
    assert_string_equal(buf, "3 days");
    defs_format_age(5 * 3600, buf, sizeof buf);
    assert_string_equal(buf, "5 hours");
    defs_format_age(12 * 60, buf, sizeof buf);
    assert_string_equal(buf, "12 minutes");
    progress_describe(buf, sizeof buf, "t.example.org", "demande-rdv", "anonymise", 500, 1500, 10.0);
    assert_string_equal(buf, "t.example.org: anonymise demande-rdv 500/1500 50/s 20s left");
    progress_describe(buf, sizeof buf, "t.example.org", "demande-rdv", "vacuum", 500, 1500, 10.0);
    assert_string_equal(buf, "t.example.org: vacuum demande-rdv");
    progress_describe(buf, sizeof buf, "t.example.org", "", "drafts", 7, -1, 0.1);
    assert_string_equal(buf, "t.example.org: drafts 7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_scope),
        cmocka_unit_test(test_csv_cells_are_never_formulas),
        cmocka_unit_test(test_batch_size_follows_time),
        cmocka_unit_test(test_message_framing),
        cmocka_unit_test(test_missing_nights),
        cmocka_unit_test(test_safe_slugs),
        cmocka_unit_test(test_plain_http_only_to_a_loopback_address),
        cmocka_unit_test(test_ages_and_progress_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
