/*
 * sqltext.c: see sqltext.h.
 */
#include "sqltext.h"

void sql_distinct(struct strbuf *sb, const char *a, const char *b)
{
    sb_appendf(sb, SQL_DISTINCT("%s", "%s"), a, b, a, b);
}
