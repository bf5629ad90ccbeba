/*
 * sqlcheck: reads statements from standard input, separated by NUL bytes
 * (as tests/integration/test_sql.py collects them from the server's log),
 * and names every one that breaks the rules of sqlcheck.h.  Exit status 0
 * when none does, 1 otherwise.
 */
#include "sqlcheck.h"
#include "ax.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>

static void check_one(const char *sql, size_t index, size_t *bad)
{
    char *problems;
    if (sql_check(sql, &problems) > 0) {
        (*bad)++;
        printf("statement %zu: %s\n%s\n", index, sql, problems);
    }
    free(problems);
}

int main(void)
{
    struct strbuf sb;
    size_t index = 0, bad = 0;
    int c;
    sb_init(&sb);
    while ((c = getchar()) != EOF) {
        if (c != '\0') {
            sb_appendc(&sb, (char)c);
            continue;
        }
        check_one(sb.buf, ++index, &bad);
        sb_reset(&sb);
    }
    if (sb.len)
        check_one(sb.buf, ++index, &bad);
    sb_free(&sb);
    printf("%zu statements checked, %zu with problems\n", index, bad);
    return bad ? 1 : 0;
}
