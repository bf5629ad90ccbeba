/*
 * fetch.h: the "fetch" command.
 */
#ifndef FETCH_H
#define FETCH_H

#include "app.h"

/* Fetches every tenant's definitions (defs.h), prints what changed; returns the exit status. */
int cmd_fetch(const struct app *app);

#endif
