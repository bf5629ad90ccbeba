/*
 * check.h: the "check" command: validates, connects, and prints what each
 * tenant's forms would get, column by column.  It writes nothing.
 */
#ifndef CHECK_H
#define CHECK_H

#include "app.h"

#include <stdio.h>

/* Writes to out; returns the exit status. */
int cmd_check(const struct app *app, FILE *out);

#endif
