/*
 * report_model.c: what the report model owns, and the helpers every
 * renderer shares (see report_model.h).
 */
#include "report_model.h"
#include "ax.h"
#include "classify.h"
#include "i18n.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int report_parse_format(const char *text)
{
    static const char *const names[] = {"text", "json", "csv", "html", "nagios"};
    for (size_t i = 0; i < AX_ARRAY_LEN(names); i++)
        if (strcmp(text, names[i]) == 0)
            return (int)i;
    return -1;
}

bool report_is_field_entry(const char *column)
{
    return classify_is_field_column(column) || strchr(column, '.') != NULL;
}

char *report_period(int days)
{
    if (days % 365 == 0)
        return ax_asprintf(ngettext("%d year", "%d years", (unsigned long)(days / 365)), days / 365);
    if (days % 30 == 0)
        return ax_asprintf(ngettext("%d month", "%d months", (unsigned long)(days / 30)), days / 30);
    if (days % 7 == 0)
        return ax_asprintf(ngettext("%d week", "%d weeks", (unsigned long)(days / 7)), days / 7);
    return ax_asprintf(ngettext("%d day", "%d days", (unsigned long)days), days);
}

void report_local_time(const char *iso_utc, char buf[40])
{
    time_t t;
    if (!iso_utc || tm_parse_utc(iso_utc, &t) != 0)
        snprintf(buf, 40, "%s", iso_utc ? iso_utc : "-");
    else
        tm_format_local(t, buf);
}

static void collist_free(struct collist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].column);
        free(l->items[i].reason);
        free(l->items[i].label);
        free(l->items[i].varname);
    }
    free(l->items);
}

void form_report_free(struct form_report *fr)
{
    free(fr->slug);
    free(fr->name);
    free(fr->table);
    free(fr->label);
    free(fr->definition);
    free(fr->retention);
    free(fr->cutoff);
    free(fr->oldest_pending);
    free(fr->oldest_open_inactive);
    free(fr->open_limit);
    free(fr->in_backups_until);
    free(fr->error);
    free(fr->failed_last_run);
    free(fr->evo_table);
    free(fr->vacuum_owed_since);
    collist_free(&fr->keep);
    collist_free(&fr->blank);
    collist_free(&fr->unclassified);
}

void tenant_report_free(struct tenant_report *tr)
{
    for (size_t i = 0; i < tr->nforms; i++)
        form_report_free(&tr->forms[i]);
    free(tr->forms);
    free(tr->name);
    free(tr->error);
    free(tr->at);
    free(tr->legal_limit);
    free(tr->backups_until);
    free(tr->last_run);
    free(tr->fetch_error);
    free(tr->run_in_progress);
    for (size_t i = 0; i < tr->nowed; i++) {
        free(tr->owed_tables[i]);
        free(tr->owed_since[i]);
    }
    free(tr->owed_tables);
    free(tr->owed_since);
}

