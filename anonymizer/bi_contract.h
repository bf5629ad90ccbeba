/*
 * bi_contract.h: the BI staging schema's contract, version by version
 * (man/anonymizer-bi.7).  Statements name the schema as @S.
 */
#ifndef BI_CONTRACT_H
#define BI_CONTRACT_H

#include <stddef.h>

#define BI_CONTRACT_VERSION 3

/* The key of the row keys, made once (a schema that lost it gets a new one; rows keep the keys they have). */
#define BI_SECRET_SQL                                                                                            \
    "INSERT INTO @S.secret (inner_key, outer_key) SELECT"                                                       \
    " pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.concat(pg_catalog.gen_random_uuid(),"                 \
    "  pg_catalog.gen_random_uuid(), pg_catalog.gen_random_uuid()), 'UTF8')),"                                  \
    " pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.concat(pg_catalog.gen_random_uuid(),"                 \
    "  pg_catalog.gen_random_uuid(), pg_catalog.gen_random_uuid()), 'UTF8')) ON CONFLICT DO NOTHING"

/*
 * The statements that bring a schema to version (from version - 1; for 1,
 * from nothing): part 0 the tables, part 1 their comments.  NULL, *n = 0:
 * none.
 */
const char *const *bi_contract_step(int version, int part, size_t *n);

/* The export's own figures of each form, kept by triggers (not in the contract): created and seeded in order. */
extern const char *const bi_counting[];
extern const size_t bi_counting_n;

#endif
