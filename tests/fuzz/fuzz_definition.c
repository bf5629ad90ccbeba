/*
 * fuzz_definition.c: libFuzzer target for the form definition parser
 * (def_parse): any bytes give a definition or one error line.
 */
#include "ax.h"
#include "definition.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct definition *def = NULL;
    char err[1024];
    if (def_parse((const char *)data, size, "fuzz.json", &def, err, sizeof err) == AX_OK) {
        /* what the run asks of a definition */
        for (size_t i = 0; i < def->nfields; i++)
            if (def->fields[i].column)
                (void)def_find_column(def, def->fields[i].column);
        def_free(def);
    }
    return 0;
}
