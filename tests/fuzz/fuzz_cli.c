/*
 * fuzz_cli.c: libFuzzer target for the command line (parse_cli of
 * main.c, included so that its static functions are reachable): the input
 * is the arguments, separated by NUL bytes.
 */
#define main anonymizer_main
#include "../../anonymizer/main.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* argv[0], then one argument per NUL-separated piece */
    char *copy = ax_malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char **argv = ax_calloc(size + 3, sizeof *argv);
    int argc = 0;
    argv[argc++] = "anonymizer";
    for (size_t i = 0; i <= size && argc < 64;) {
        argv[argc++] = copy + i;
        i += strlen(copy + i) + 1;
    }
    argv[argc] = NULL;
    struct cli cli = {.max_runtime_ms = -1, .warning_days = -1, .stale_hours = -1};
    optind = 0; /* getopt starts afresh */
    (void)parse_cli(argc, argv, &cli);
    free((void *)cli.tenants);
    free(cli.forms);
    free(argv);
    free(copy);
    return 0;
}
