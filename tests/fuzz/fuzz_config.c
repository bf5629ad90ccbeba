/*
 * fuzz_config.c: libFuzzer target for the configuration loader (cfg_load):
 * any bytes give a configuration or one error line, never a crash, a hang
 * or a leak.
 */
#include "ax.h"
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/anonymizer-fuzz-config-%ld", (long)getpid());
    }
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    chmod(path, 0600);
    struct cfg *cfg = NULL;
    char err[1024];
    if (cfg_load(path, &cfg, err, sizeof err) == AX_OK)
        cfg_free(cfg);
    unlink(path);
    return 0;
}
