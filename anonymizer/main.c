/*
 * main.c: command line, configuration, dispatch.  The work lives in one
 * module per command; this file only decides what to run and maps the
 * outcome to an exit status.
 */
#include "app.h"
#include "audit.h"
#include "ax.h"
#include "check.h"
#include "config.h"
#include "db.h"
#include "definition.h"
#include "discover.h"
#include "export.h"
#include "fetch.h"
#include "http.h"
#include "jobs.h"
#include "log.h"
#include "report.h"
#include "run.h"
#include "timeutil.h"
#include "version.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum command_id { CMD_RUN = 1 << 0, CMD_CHECK = 1 << 1, CMD_REPORT = 1 << 2, CMD_EXPORT = 1 << 3, CMD_FETCH = 1 << 4 };
#define CMD_ALL (CMD_RUN | CMD_CHECK | CMD_REPORT | CMD_EXPORT | CMD_FETCH)

static const struct command {
    const char *name;
    enum command_id id;
    const char *summary;
} commands[] = {
    {"run", CMD_RUN, "anonymise every tenant's expired submissions, delete expired drafts, then export"},
    {"check", CMD_CHECK, "validate the configuration, connect, and print how each column is classified"},
    {"report", CMD_REPORT, "what a run would do now, and whether anything is past the legal limit (writes nothing)"},
    {"export", CMD_EXPORT, "export anonymised submissions to the BI staging schema (the bi group)"},
    {"fetch", CMD_FETCH, "fetch the form and card definitions of tenants with a url from w.c.s. (signed API)"},
};

/* Long-only options get codes past the ASCII range. */
enum { OPT_FORMAT = 256, OPT_AT, OPT_DRY_RUN, OPT_JOBS, OPT_MAX_RUNTIME };

/* One table drives parsing, validation and --help. */
static const struct opt {
    const char *long_name;
    int code; /* the short option letter, or OPT_* */
    int has_arg;
    const char *arg;
    unsigned commands; /* where the option is accepted */
    const char *help;
} options[] = {
    {"config", 'c', required_argument, "FILE", CMD_ALL,
     "configuration file (default $ANONYMIZER_CONFIG, then " CFG_DEFAULT_PATH ")"},
    {"tenant", 't', required_argument, "NAME", CMD_ALL, "only this tenant (repeatable)"},
    {"verbose", 'v', no_argument, NULL, CMD_ALL, "also print one line per batch"},
    {"quiet", 'q', no_argument, NULL, CMD_ALL, "print errors only"},
    {"format", OPT_FORMAT, required_argument, "FORMAT", CMD_REPORT | CMD_RUN,
     "report: text (default), json or csv"},
    {"at", OPT_AT, required_argument, "TIMESTAMP", CMD_REPORT | CMD_RUN,
     "report: compute cutoffs as of this instant (ISO 8601, UTC unless a zone is given)"},
    {"dry-run", OPT_DRY_RUN, no_argument, NULL, CMD_RUN, "run: change nothing, print the report instead"},
    {"jobs", OPT_JOBS, required_argument, "N", CMD_RUN | CMD_EXPORT | CMD_FETCH,
     "run, export, fetch: up to N tenants at once (1 to 64)"},
    {"max-runtime", OPT_MAX_RUNTIME, required_argument, "DURATION", CMD_RUN | CMD_EXPORT,
     "run, export: start no batch after this long (like 4h or 90min)"},
    {"help", 'h', no_argument, NULL, CMD_ALL, "show this help and exit"},
    {"version", 'V', no_argument, NULL, CMD_ALL, "show the version and exit"},
};

struct cli {
    const char *config;
    const char **tenants;
    size_t ntenants;
    int verbose;
    int quiet;
    const char *format;
    const char *at;
    bool dry_run;
    int jobs;           /* 0: from the configuration */
    int max_runtime_ms; /* -1: from the configuration */
    unsigned seen;     /* CMD_* masks of the options given, to check them against the command */
    const char *command;
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: anonymizer [-c FILE] [-t TENANT]... [-v | -q] COMMAND\n"
                 "       anonymizer report [--format text|json|csv] [--at TIMESTAMP]\n"
                 "       anonymizer run [--dry-run [--format FORMAT] [--at TIMESTAMP]]\n\n");
    fprintf(out, "Keeps w.c.s. form submissions free of personal data past their retention period.\n\nCommands:\n");
    for (size_t i = 0; i < AX_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nOptions:\n");
    for (size_t i = 0; i < AX_ARRAY_LEN(options); i++) {
        char left[64];
        if (options[i].code < 256)
            snprintf(left, sizeof left, "-%c, --%s%s%s", options[i].code, options[i].long_name,
                     options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", options[i].long_name, options[i].arg ? " " : "",
                     options[i].arg ? options[i].arg : "");
        fprintf(out, "  %-26s %s\n", left, options[i].help);
    }
    fprintf(out, "\nExit status: 0 done (report: compliant), 1 some tenants failed (report: some form past the\n"
                 "limit), 64 usage error, 69 no tenant reachable, 75 lock held elsewhere or interrupted,\n"
                 "78 configuration error.  See anonymizer(1).\n");
}

static int usage_error(const char *fmt, ...) AX_PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "anonymizer: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry \"anonymizer --help\" for more information.\n");
    return EXIT_USAGE;
}

/* Returns -1 to go on, or an exit status. */
static int parse_cli(int argc, char **argv, struct cli *cli)
{
    struct option longopts[AX_ARRAY_LEN(options) + 1];
    char shortopts[2 * AX_ARRAY_LEN(options) + 2];
    size_t k = 0;

    shortopts[k++] = ':';
    for (size_t i = 0; i < AX_ARRAY_LEN(options); i++) {
        longopts[i] = (struct option){options[i].long_name, options[i].has_arg, NULL, options[i].code};
        if (options[i].code >= 256)
            continue;
        shortopts[k++] = (char)options[i].code;
        if (options[i].has_arg == required_argument)
            shortopts[k++] = ':';
    }
    shortopts[k] = '\0';
    memset(&longopts[AX_ARRAY_LEN(options)], 0, sizeof longopts[0]);

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        for (size_t i = 0; i < AX_ARRAY_LEN(options); i++)
            if (options[i].code == c && options[i].commands != CMD_ALL)
                cli->seen |= 1u << i;
        switch (c) {
        case 'c': cli->config = optarg; break;
        case 't':
            cli->tenants = ax_reallocarray(cli->tenants, cli->ntenants + 1, sizeof *cli->tenants);
            cli->tenants[cli->ntenants++] = optarg;
            break;
        case 'v': cli->verbose = 1; break;
        case 'q': cli->quiet = 1; break;
        case OPT_FORMAT:
            if (report_parse_format(optarg) < 0)
                return usage_error("unknown format \"%s\" (text, json or csv)", optarg);
            cli->format = optarg;
            break;
        case OPT_AT:
            if (report_check_timestamp(optarg) != 0)
                return usage_error("invalid --at \"%s\" (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])",
                                   optarg);
            cli->at = optarg;
            break;
        case OPT_DRY_RUN: cli->dry_run = true; break;
        case OPT_JOBS: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 64)
                return usage_error("--jobs must be a number from 1 to 64, not \"%s\"", optarg);
            cli->jobs = (int)v;
            break;
        }
        case OPT_MAX_RUNTIME: {
            char msg[256];
            long long ms;
            if (tm_parse_duration_ms(optarg, &ms, msg, sizeof msg) != AX_OK || ms <= 0)
                return usage_error("--max-runtime: %s", ms <= 0 && !strstr(msg, "invalid") ? "must be positive" : msg);
            cli->max_runtime_ms = (int)ms;
            break;
        }
        case 'h': usage(stdout); return EXIT_OK;
        case 'V': printf("anonymizer %s\n", ANONYMIZER_VERSION); return EXIT_OK;
        case ':': return usage_error("option \"%s\" needs an argument", argv[optind - 1]);
        default: return usage_error("unrecognized option \"%s\"", argv[optind - 1]);
        }
    }
    if (cli->verbose && cli->quiet)
        return usage_error("-v and -q cannot be used together");
    if (optind >= argc)
        return usage_error("no command given");
    cli->command = argv[optind++];
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    const struct command *cmd = NULL;
    for (size_t i = 0; i < AX_ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, cli->command) == 0)
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command \"%s\"", cli->command);
    for (size_t i = 0; i < AX_ARRAY_LEN(options); i++)
        if ((cli->seen & (1u << i)) && !(options[i].commands & cmd->id))
            return usage_error("option --%s does not apply to %s", options[i].long_name, cmd->name);
    if (cmd->id == CMD_RUN && !cli->dry_run && (cli->format || cli->at))
        return usage_error("--format and --at apply to reports: add --dry-run");
    if (cmd->id == CMD_RUN && cli->dry_run && (cli->jobs || cli->max_runtime_ms >= 0))
        return usage_error("--jobs and --max-runtime do not apply to --dry-run");
    return -1;
}

/*
 * SIGINT, SIGTERM: stop after the batch in flight, whose statement is
 * cancelled (it rolls back; the next run does it again).  A second signal
 * kills: the single process dies of it, the parent of workers kills them.
 */
static void on_signal(int sig)
{
    if (app_interrupted && app_role == APP_ROLE_SINGLE) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    app_interrupted = 1;
    db_cancel_watched();
    if (app_role == APP_ROLE_PARENT)
        jobs_on_signal();
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}


/* Steps of main() return -1 to go on, or the exit status to stop with. */
#define GO_ON (-1)

/* The configuration file: -c, then $ANONYMIZER_CONFIG, then the default path. */
static int load_configuration(const struct cli *cli, const struct command *cmd, struct app *app)
{
    char err[1024];
    const char *path = cli->config ? cli->config : getenv("ANONYMIZER_CONFIG");
    if (!path || !*path)
        path = CFG_DEFAULT_PATH;
    if (cfg_load(path, &app->cfg, err, sizeof err) != AX_OK) {
        log_error("%s", err);
        return EXIT_CONFIG;
    }
    log_set_syslog(app->cfg->log_syslog);
    app->entries.n = app->cfg->nforms + app->cfg->ncards;
    app->entries.applies = ax_calloc(app->entries.n, sizeof *app->entries.applies);
    app->entries.matched = ax_calloc(app->entries.n, sizeof *app->entries.matched);
    if (cmd->id == CMD_EXPORT && !app->cfg->bi.conninfo) {
        log_error("%s: no bi group: nothing to export to (see anonymizer.conf(5))", app->cfg->path);
        return EXIT_CONFIG;
    }
    /* kept for its checksum in the audit */
    app->config_bytes = cfg_read_file(path, &app->config_len);
    if (!app->config_bytes) {
        log_error("%s: cannot read configuration file: %s", path, strerror(errno));
        return EXIT_CONFIG;
    }
    return GO_ON;
}

/* Tenants found on servers join the listed ones before anything else. */
static int discover(struct app *app)
{
    if (app->cfg->ndiscover == 0)
        return GO_ON;
    app->discovery_failures = discover_tenants(app->cfg);
    const struct cfg_form *f = cfg_unknown_form_tenant(app->cfg);
    if (f && app->discovery_failures == 0) {
        log_error("%s: forms: unknown tenant \"%s\" (neither listed nor discovered)", app->cfg->path, f->tenant);
        return EXIT_CONFIG;
    }
    if (f)
        log_warning("forms: tenant \"%s\" not found (some discover entries failed)", f->tenant);
    return GO_ON;
}

/* The tenants -t names (all of them without -t), in configuration order. */
static int select_tenants(const struct cli *cli, struct app *app)
{
    for (size_t i = 0; i < cli->ntenants; i++) {
        if (cfg_find_tenant(app->cfg, cli->tenants[i]))
            continue;
        /* a server that did not answer may have it: not a usage error then */
        if (app->discovery_failures) {
            log_error("unknown tenant \"%s\" (some discover entries failed)", cli->tenants[i]);
            return EXIT_SOME_FAILED;
        }
        return usage_error("unknown tenant \"%s\" (neither listed nor discovered)", cli->tenants[i]);
    }
    app->tenants = ax_calloc(app->cfg->ntenants, sizeof *app->tenants);
    for (size_t i = 0; i < app->cfg->ntenants; i++) {
        const struct cfg_tenant *ct = &app->cfg->tenants[i];
        bool wanted = cli->ntenants == 0;
        for (size_t k = 0; k < cli->ntenants; k++)
            wanted |= strcmp(cli->tenants[k], ct->name) == 0;
        if (wanted)
            app->tenants[app->ntenants++].cfg = ct;
    }
    if (app->ntenants > 0)
        return GO_ON;
    if (app->discovery_failures) {
        log_error("no tenant reachable: every discover entry failed");
        return EXIT_UNAVAILABLE;
    }
    log_error("%s: no tenants (listed or discovered)", app->cfg->path);
    return EXIT_CONFIG;
}

/* Definitions are read per tenant (tenant_begin): a broken one fails its tenant only.  A missing
 * schemas directory means no definition anywhere: every field blanked, which an operator must know. */
static void check_schemas_directory(const struct app *app)
{
    struct stat st;
    if (stat(app->cfg->schemas, &st) != 0 || !S_ISDIR(st.st_mode))
        log_loud_warning("schemas directory %s does not exist: forms without a definition have every field"
                         " blanked (see schemas in anonymizer.conf(5))", app->cfg->schemas);
}

/* This run's identity and limits. */
static void identify_run(const struct cli *cli, struct app *app)
{
    audit_new_run_id(app->run_id);
    if (gethostname(app->host, sizeof app->host - 1) != 0)
        snprintf(app->host, sizeof app->host, "unknown");
    app->jobs = cli->jobs ? cli->jobs : app->cfg->jobs;
    int budget_ms = cli->max_runtime_ms >= 0 ? cli->max_runtime_ms : app->cfg->max_runtime_ms;
    if (budget_ms > 0)
        app->deadline = tm_now() + budget_ms / 1000.0;
    app->progress_live = isatty(STDERR_FILENO) && log_get_level() >= LOG_LEVEL_INFO;
}

static int dispatch(const struct cli *cli, const struct command *cmd, const struct app *app)
{
    int status;
    if (cmd->id == CMD_EXPORT) {
        status = cmd_export(app);
    } else if (cmd->id == CMD_FETCH) {
        status = cmd_fetch(app);
    } else if (cmd->id == CMD_CHECK) {
        status = cmd_check(app);
    } else if (cmd->id == CMD_REPORT || cli->dry_run) {
        struct report_options ropts = {
            .format = cli->format ? (enum report_format)report_parse_format(cli->format) : REPORT_TEXT,
            .at = cli->at,
        };
        status = cmd_report(app, &ropts, stdout);
    } else {
        status = cmd_run(app);
    }
    app_warn_unmatched_entries(app);
    if ((app_interrupted || app_budget_exhausted) && status == EXIT_OK)
        status = EXIT_TEMPFAIL;
    /* tenants a failed discover entry would have found were not processed */
    if (app->discovery_failures && (status == EXIT_OK || status == EXIT_TEMPFAIL))
        status = EXIT_SOME_FAILED;
    return status;
}

int main(int argc, char **argv)
{
    struct cli cli = {.max_runtime_ms = -1};
    struct app app = {0};
    const struct command *cmd = NULL;

    http_global_init();
    int status = parse_cli(argc, argv, &cli);
    if (status == GO_ON) {
        for (size_t i = 0; i < AX_ARRAY_LEN(commands); i++)
            if (strcmp(commands[i].name, cli.command) == 0)
                cmd = &commands[i];
        log_init(cli.quiet ? LOG_LEVEL_ERROR : cli.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
        status = load_configuration(&cli, cmd, &app);
    }
    if (status == GO_ON)
        status = discover(&app);
    if (status == GO_ON)
        status = select_tenants(&cli, &app);
    if (status == GO_ON) {
        check_schemas_directory(&app);
        identify_run(&cli, &app);
        install_signals();
        status = dispatch(&cli, cmd, &app);
    }
    fflush(stdout);
    app_free(&app);
    free(cli.tenants);
    http_global_cleanup();
    return status;
}
