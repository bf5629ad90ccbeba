/*
 * discover.h: tenants without lists.  Each "discover" entry lists the
 * databases of one server that match a LIKE pattern (not templates, not
 * excluded, only those the role may connect to); each becomes a tenant
 * named after its database.  Tenants listed explicitly win on name clashes.
 */
#ifndef DISCOVER_H
#define DISCOVER_H

#include "config.h"
#include "db.h"

#include <stddef.h>

/* Adds the discovered tenants to cfg->tenants; returns how many entries
 * could not be read (each reported on stderr). */
size_t discover_tenants(struct cfg *cfg, const struct db_profile *profile);

#endif
