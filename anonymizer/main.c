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
#include "grants.h"
#include "history.h"
#include "hold.h"
#include "i18n.h"
#include "http.h"
#include "executor.h"
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What the steps of main() return to go on (any other value is the exit status to stop with). */
#define GO_ON (-1)

enum command_id {
    CMD_RUN = 1 << 0,
    CMD_CHECK = 1 << 1,
    CMD_REPORT = 1 << 2,
    CMD_EXPORT = 1 << 3,
    CMD_FETCH = 1 << 4,
    CMD_HISTORY = 1 << 5,
    CMD_GRANTS = 1 << 6,
    CMD_HOLD = 1 << 7,
};
#define CMD_ALL (CMD_RUN | CMD_CHECK | CMD_REPORT | CMD_EXPORT | CMD_FETCH | CMD_HISTORY | CMD_GRANTS | CMD_HOLD)

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
    {"history", CMD_HISTORY, "the runs of every tenant from the audit tables (writes nothing)"},
    {"grants", CMD_GRANTS, "the SQL that gives each role exactly the privileges it needs (writes nothing)"},
    {"hold", CMD_HOLD, "add, remove or list legal holds: submissions kept out of anonymisation (hold add|remove|list)"},
};

/* Long-only options get codes past the ASCII range. */
enum {
    OPT_FORMAT = 256, OPT_AT, OPT_DRY_RUN, OPT_JOBS, OPT_MAX_RUNTIME, OPT_FORM, OPT_LANG, OPT_SINCE, OPT_WARNING,
    OPT_STALE, OPT_ROLE_RUN, OPT_ROLE_REPORT, OPT_ROLE_BI, OPT_ROLE_BI_READER, OPT_ADMIN_CONNINFO,
    OPT_DEBUG_SERVER, OPT_VERIFY, OPT_ID, OPT_REASON, OPT_UNTIL,
};

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
    {"quiet", 'q', no_argument, NULL, CMD_ALL, "print errors (and warnings to act on) only"},
    {"debug-server-messages", OPT_DEBUG_SERVER, no_argument, NULL, CMD_ALL,
     "also print PostgreSQL's error and notice texts on stderr (they may quote personal data)"},
    {"format", OPT_FORMAT, required_argument, "FORMAT", CMD_REPORT | CMD_RUN | CMD_HISTORY | CMD_HOLD,
     "report, history: text (default), html, json or csv; report: also nagios; hold list: text or json"},
    {"at", OPT_AT, required_argument, "TIMESTAMP", CMD_REPORT | CMD_RUN,
     "report: compute cutoffs as of this instant, now or later (ISO 8601, UTC unless a zone is given)"},
    {"form", OPT_FORM, required_argument, "SLUG", CMD_REPORT | CMD_RUN | CMD_HOLD,
     "report: only this form (repeatable); hold: the form or card held"},
    {"id", OPT_ID, required_argument, "N", CMD_HOLD, "hold add, remove: one submission (default: the whole form)"},
    {"reason", OPT_REASON, required_argument, "TEXT", CMD_HOLD,
     "hold add: why (required: the dispute, the inquiry); hold remove: why it ends"},
    {"until", OPT_UNTIL, required_argument, "DATE", CMD_HOLD,
     "hold add: when the hold ends by itself (ISO 8601; a date: its local midnight)"},
    {"lang", OPT_LANG, required_argument, "LANG", CMD_REPORT | CMD_RUN | CMD_HISTORY | CMD_HOLD,
     "report, history: en or fr (default: the locale's)"},
    {"warning", OPT_WARNING, required_argument, "DAYS", CMD_REPORT,
     "report --format nagios: the oldest_days perfdata warns this many days before the limit (default 10)"},
    {"stale", OPT_STALE, required_argument, "HOURS", CMD_REPORT,
     "report --format nagios: WARNING when a tenant's last successful run is older (default 36)"},
    {"since", OPT_SINCE, required_argument, "DATE", CMD_HISTORY, "history: runs since (default: 31 days ago)"},
    {"verify", OPT_VERIFY, no_argument, NULL, CMD_HISTORY,
     "history: verify the chain of every entry (audit_key_file): exit 0 intact, 1 broken, 3 not verifiable"},
    {"role-run", OPT_ROLE_RUN, required_argument, "NAME", CMD_GRANTS,
     "grants: the run role (default: the role of each tenant's connection)"},
    {"role-report", OPT_ROLE_REPORT, required_argument, "NAME", CMD_GRANTS,
     "grants: the report role (default " GRANTS_DEFAULT_REPORT ")"},
    {"role-bi", OPT_ROLE_BI, required_argument, "NAME", CMD_GRANTS,
     "grants: the export's role on the BI database (default: the role of the bi connection)"},
    {"admin-conninfo", OPT_ADMIN_CONNINFO, required_argument, "CONNINFO", CMD_GRANTS,
     "grants: read the catalogs through this connection (each tenant's database; e.g. \"user=postgres\")"},
    {"role-bi-reader", OPT_ROLE_BI_READER, required_argument, "NAME", CMD_GRANTS,
     "grants: the BI readers' role (default: bi.reader_role, else " GRANTS_DEFAULT_BI_READER ")"},
    {"dry-run", OPT_DRY_RUN, no_argument, NULL, CMD_RUN | CMD_EXPORT,
     "run: change nothing, print the report instead; export: say what it would do, write nothing"},
    {"jobs", OPT_JOBS, required_argument, "N", CMD_RUN | CMD_EXPORT | CMD_FETCH | CMD_REPORT,
     "run, export, fetch, report: up to N tenants at once (1 to 64)"},
    {"max-runtime", OPT_MAX_RUNTIME, required_argument, "DURATION", CMD_RUN | CMD_EXPORT,
     "run, export: start no batch after this long (like 4h or 90min)"},
    {"help", 'h', no_argument, NULL, CMD_ALL, "show this help and exit"},
    {"version", 'V', no_argument, NULL, CMD_ALL, "show the version and exit"},
};

_Static_assert(AX_ARRAY_LEN(options) <= 32, "cli.seen holds one bit per option");

struct cli {
    const char *config;
    const char **tenants;
    size_t ntenants;
    int verbose;
    int quiet;
    const char *format;
    char at[32];       /* --at, as an ISO UTC instant; "" when not given */
    bool at_future;
    char **forms;      /* --form */
    size_t nforms;
    const char *lang;
    time_t since;      /* --since; 0 when not given */
    bool since_is_date; /* --since gave a date without a time: local midnight */
    struct grants_options grants; /* --role-* */
    int warning_days;   /* --warning; -1: default */
    int stale_hours;    /* --stale; -1: default */
    bool dry_run;
    bool verify;        /* history --verify */
    struct hold_options hold; /* hold ACTION, --id, --reason, --until */
    int jobs;           /* 0: from the configuration */
    int max_runtime_ms; /* -1: from the configuration */
    unsigned seen;     /* CMD_* masks of the options given, to check them against the command */
    const char *command;
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: anonymizer [-c FILE] [-t TENANT]... [-v | -q] COMMAND\n"
                 "       anonymizer report [--format text|html|json|csv] [--at TIMESTAMP] [--form SLUG]... [--lang LANG]\n"
                 "       anonymizer report --format nagios [--warning DAYS] [--stale HOURS]\n"
                 "       anonymizer run [--dry-run [--format FORMAT] [--at TIMESTAMP]]\n"
                 "       anonymizer history [--since DATE] [--format FORMAT] [--lang LANG] [--verify]\n"
                 "       anonymizer hold add -t TENANT --form SLUG [--id N] --reason TEXT [--until DATE]\n"
                 "       anonymizer hold remove -t TENANT --form SLUG [--id N] [--reason TEXT]\n"
                 "       anonymizer hold list [-t TENANT]... [--format text|json]\n"
                 "       anonymizer grants [--admin-conninfo CONNINFO] [--role-run NAME] [--role-report NAME] [--role-bi NAME] [--role-bi-reader NAME]\n\n");
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
    fprintf(out, "\nExit status: 0 done (report: compliant), 1 some tenants failed (report: not compliant),\n"
                 "3 report: incomplete (something could not be checked), 64 usage error, 69 no tenant\n"
                 "reachable, 74 output not written, 75 lock held elsewhere or interrupted, 78 configuration\n"
                 "error.  See anonymizer(1).\n");
}

static int usage_error(const char *fmt, ...) AX_PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ax_vasprintf(fmt, ap);
    va_end(ap);
    log_error("%s", msg);
    free(msg);
    fprintf(stderr, "Try \"anonymizer --help\" for more information.\n");
    return EXIT_USAGE;
}

static const struct opt *find_long(const char *name, size_t len)
{
    for (size_t i = 0; i < AX_ARRAY_LEN(options); i++)
        if (strlen(options[i].long_name) == len && strncmp(options[i].long_name, name, len) == 0)
            return &options[i];
    return NULL;
}

/*
 * getopt_long accepts any unambiguous prefix of a long option (--forma for
 * --format): options are matched exactly here first, so that a typo is an
 * error, not another option.
 */
static int check_exact_long_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (a[0] != '-')
            continue;
        if (a[1] != '-') {
            /* a short option that takes its argument from the next word */
            for (size_t k = 0; k < AX_ARRAY_LEN(options); k++)
                if (a[1] == options[k].code && a[2] == '\0' && options[k].has_arg == required_argument)
                    i++;
            continue;
        }
        size_t len = strcspn(a + 2, "=");
        const struct opt *o = find_long(a + 2, len);
        if (!o)
            return usage_error("unrecognized option \"%.*s\"", (int)len + 2, a);
        if (o->has_arg == required_argument && a[2 + len] != '=')
            i++;
    }
    return GO_ON;
}

/* --at: a real instant, now or later (the report cannot know the past state of the data). */
static int parse_at(struct cli *cli, const char *text)
{
    char err[256];
    time_t at;
    if (tm_parse_instant(text, &at, err, sizeof err) != 0)
        return usage_error("--at: %s", err);
    time_t now = time(NULL);
    /* a minute's grace for clocks that disagree a little */
    if (at < now - 60) {
        char since[32];
        tm_format_utc(at, since);
        return usage_error("--at %s is in the past: the report cannot know the past state of the data; what the"
                           " runs did then is in \"anonymizer history --since %.10s\"",
                           text, since);
    }
    tm_format_utc(at, cli->at);
    cli->at_future = at > now + 60;
    return GO_ON;
}

static int parse_number(const char *name, const char *text, long min, long max, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < min || v > max)
        return usage_error("--%s must be a number from %ld to %ld, not \"%s\"", name, min, max, text);
    *out = (int)v;
    return GO_ON;
}

/* hold's options: --id, --reason, --until. */
static int apply_hold_option(struct cli *cli, int c, const char *arg)
{
    char msg[256];
    switch (c) {
    case OPT_ID: {
        char *end;
        long long id = strtoll(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || id <= 0)
            return usage_error("--id must be a submission's id (a positive number), not \"%s\"", arg);
        cli->hold.id = id;
        return GO_ON;
    }
    case OPT_REASON:
        if (!hold_valid_reason(arg))
            return usage_error("--reason must be 1 to 1000 bytes without control characters");
        cli->hold.reason = arg;
        return GO_ON;
    case OPT_UNTIL:
        if (tm_parse_instant(arg, &cli->hold.until, msg, sizeof msg) != 0)
            return usage_error("--until: %s", msg);
        if (strlen(arg) == 10)
            cli->hold.until = tm_local_midnight(cli->hold.until, true);
        if (cli->hold.until <= time(NULL))
            return usage_error("--until %s is not in the future", arg);
        return GO_ON;
    }
    return GO_ON;
}

/* One option; returns GO_ON, or an exit status. */
static int apply_option(struct cli *cli, int c, char *arg, const char *word)
{
    char msg[256];
    long long ms;
    switch (c) {
    case 'c': cli->config = arg; return GO_ON;
    case 't':
        cli->tenants = ax_reallocarray(cli->tenants, cli->ntenants + 1, sizeof *cli->tenants);
        cli->tenants[cli->ntenants++] = arg;
        return GO_ON;
    case 'v': cli->verbose = 1; return GO_ON;
    case 'q': cli->quiet = 1; return GO_ON;
    case OPT_DEBUG_SERVER: db_set_server_text(true); return GO_ON;
    case OPT_FORMAT:
        if (report_parse_format(arg) < 0)
            return usage_error("unknown format \"%s\" (text, html, json, csv, or nagios for report)", arg);
        cli->format = arg;
        return GO_ON;
    case OPT_AT: return parse_at(cli, arg);
    case OPT_FORM:
        cli->forms = ax_reallocarray(cli->forms, cli->nforms + 1, sizeof *cli->forms);
        cli->forms[cli->nforms++] = arg;
        return GO_ON;
    case OPT_LANG:
        if (strcmp(arg, "en") != 0 && strcmp(arg, "fr") != 0)
            return usage_error("--lang must be en or fr, not \"%s\"", arg);
        cli->lang = arg;
        return GO_ON;
    case OPT_SINCE:
        if (tm_parse_instant(arg, &cli->since, msg, sizeof msg) != 0)
            return usage_error("--since: %s", msg);
        if (cli->since > time(NULL))
            return usage_error("--since %s is in the future", arg);
        /* a bare date is that day's midnight where the DPO is (the configured timezone) */
        cli->since_is_date = strlen(arg) == 10;
        return GO_ON;
    case OPT_WARNING: return parse_number("warning", arg, 0, RETENTION_CAP_DAYS, &cli->warning_days);
    case OPT_STALE: return parse_number("stale", arg, 1, 24 * 366, &cli->stale_hours);
    case OPT_ADMIN_CONNINFO:
        if (!grants_admin_conninfo_ok(arg))
            return usage_error("--admin-conninfo: not a connection string, or one with a password (visible to every"
                               " user of the machine: use ~/.pgpass or a service)");
        cli->grants.admin = arg;
        return GO_ON;
    case OPT_ROLE_RUN:
    case OPT_ROLE_REPORT:
    case OPT_ROLE_BI:
    case OPT_ROLE_BI_READER:
        if (!grants_valid_role(arg))
            return usage_error("%s: \"%s\" is not a role name this command writes (1 to 63 bytes, no control"
                               " character, no \"$\")", word, arg);
        *(c == OPT_ROLE_RUN      ? &cli->grants.run
          : c == OPT_ROLE_REPORT ? &cli->grants.report
          : c == OPT_ROLE_BI     ? &cli->grants.bi
                                 : &cli->grants.bi_reader) = arg;
        return GO_ON;
    case OPT_DRY_RUN: cli->dry_run = true; return GO_ON;
    case OPT_VERIFY: cli->verify = true; return GO_ON;
    case OPT_ID:
    case OPT_REASON:
    case OPT_UNTIL: return apply_hold_option(cli, c, arg);
    case OPT_JOBS: return parse_number("jobs", arg, 1, 64, &cli->jobs);
    case OPT_MAX_RUNTIME:
        if (tm_parse_duration_ms(arg, &ms, msg, sizeof msg) != AX_OK)
            return usage_error("--max-runtime: %s", msg);
        if (ms <= 0)
            return usage_error("--max-runtime: must be positive");
        cli->max_runtime_ms = (int)ms;
        return GO_ON;
    case 'h': usage(stdout); return EXIT_OK;
    case 'V': printf("anonymizer %s\n", ANONYMIZER_VERSION); return EXIT_OK;
    case ':': return usage_error("option \"%s\" needs an argument", word);
    default: return usage_error("unrecognized option \"%s\"", word);
    }
}

/* What the command allows once every option is known. */
static int check_command(struct cli *cli, int argc, char **argv)
{
    if (cli->verbose && cli->quiet)
        return usage_error("-v and -q cannot be used together");
    if (optind >= argc)
        return usage_error("no command given");
    cli->command = argv[optind++];
    if (strcmp(cli->command, "hold") == 0) {
        if (optind >= argc || !(cli->hold.action = hold_parse_action(argv[optind])))
            return usage_error("hold needs an action: add, remove or list");
        optind++;
    }
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
    if (cmd->id == CMD_RUN && !cli->dry_run && (cli->format || cli->at[0] || cli->nforms || cli->lang))
        return usage_error("--format, --at, --form and --lang apply to reports: add --dry-run");
    bool nagios = cli->format && strcmp(cli->format, "nagios") == 0;
    if (nagios && cmd->id != CMD_REPORT)
        return usage_error("--format nagios is for report");
    if (!nagios && (cli->warning_days >= 0 || cli->stale_hours >= 0))
        return usage_error("--warning and --stale apply to report --format nagios");
    if (cmd->id == CMD_HOLD && (cli->hold.action == HOLD_LIST) != !cli->nforms)
        return usage_error(cli->hold.action == HOLD_LIST ? "hold list takes no --form" : "hold add and remove need --form");
    if (cmd->id == CMD_HOLD && cli->hold.action != HOLD_LIST && cli->ntenants != 1)
        return usage_error("hold add and remove: name one tenant with -t");
    if (cmd->id == CMD_HOLD && cli->nforms > 1)
        return usage_error("hold: one --form at a time");
    if (cmd->id == CMD_HOLD && cli->hold.action == HOLD_ADD && !cli->hold.reason)
        return usage_error("hold add needs --reason: the dispute or inquiry that requires keeping the data");
    if (cmd->id == CMD_HOLD && cli->hold.action != HOLD_ADD && cli->hold.until)
        return usage_error("--until applies to hold add");
    if (cmd->id == CMD_HOLD && cli->hold.action == HOLD_LIST && (cli->hold.id || cli->hold.reason))
        return usage_error("hold list takes no --id or --reason");
    if (cmd->id == CMD_HOLD && cli->format && strcmp(cli->format, "text") != 0 &&
        (strcmp(cli->format, "json") != 0 || cli->hold.action != HOLD_LIST))
        return usage_error("hold list writes text or json; add and remove write one line each");
    if (cli->verify && cli->format && strcmp(cli->format, "text") != 0 && strcmp(cli->format, "json") != 0)
        return usage_error("history --verify writes text or json");
    if (cmd->id == CMD_RUN && cli->dry_run && cli->max_runtime_ms >= 0)
        return usage_error("--max-runtime does not apply to --dry-run");
    return GO_ON;
}

/* Returns GO_ON, or an exit status. */
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

    int status = check_exact_long_options(argc, argv);
    if (status >= 0)
        return status;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        for (size_t i = 0; i < AX_ARRAY_LEN(options); i++)
            if (options[i].code == c && options[i].commands != CMD_ALL)
                cli->seen |= 1u << i;
        if ((status = apply_option(cli, c, optarg, argv[optind - 1])) >= 0)
            return status;
    }
    return check_command(cli, argc, argv);
}

/*
 * SIGINT, SIGTERM (and SIGHUP, SIGQUIT, SIGUSR1, which would otherwise
 * kill at once): stop after the batch in flight, whose statement is
 * cancelled (it rolls back; the next run does it again).  A second signal
 * kills: a single process dies of it; the parent of workers kills them
 * (executor.h); a worker or helper, which also gets the stop its parent
 * passes on, only stops.
 */
static void on_signal(int sig)
{
    if (app_interrupted && app_role == APP_ROLE_SINGLE) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    app_interrupted = 1;
    app_signals++;
    db_cancel_watched();
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigset_t stops;
    ax_stop_signals(&stops);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&stops, sig) == 1)
            sigaction(sig, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}



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
    if (cmd->id == CMD_EXPORT && !app->cfg->bi.conninfo) {
        log_error("%s: no bi group: nothing to export to (see anonymizer.conf(5))", app->cfg->path);
        return EXIT_CONFIG;
    }
    return GO_ON;
}

/* Tenants found on servers join the listed ones before anything else. */
static int discover(struct app *app)
{
    if (app->cfg->ndiscover == 0)
        return GO_ON;
    struct db_profile profile = app_db_profile(app->cfg, true);
    app->discovery_failures = discover_tenants(app->cfg, &profile);
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
        if (!wanted)
            continue;
        struct app_tenant *at = &app->tenants[app->ntenants++];
        at->cfg = ct;
        at->hits.applies = ax_calloc(app->cfg->nforms + app->cfg->ncards + 1, sizeof *at->hits.applies);
        at->hits.matched = ax_calloc(app->cfg->nforms + app->cfg->ncards + 1, sizeof *at->hits.matched);
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

/* Whether the command prints a report people read (translated). */
static bool cmd_reads(const struct cli *cli)
{
    return strcmp(cli->command, "report") == 0 || strcmp(cli->command, "history") == 0 ||
           strcmp(cli->command, "hold") == 0 ||
           (strcmp(cli->command, "run") == 0 && cli->dry_run);
}

/* This run's identity and limits. */
static void identify_run(const struct cli *cli, struct app *app)
{
    audit_new_run_id(app->run_id);
    /* to the microsecond: a run that finished a moment before this one started is not a peer's */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char whole[32];
    tm_format_utc(now.tv_sec, whole);
    snprintf(app->started, sizeof app->started, "%.19s.%06ldZ", whole, now.tv_nsec / 1000);
    if (gethostname(app->host, sizeof app->host - 1) != 0)
        snprintf(app->host, sizeof app->host, "unknown");
    app->jobs = cli->jobs ? cli->jobs : app->cfg->jobs;
    int budget_ms = cli->max_runtime_ms >= 0 ? cli->max_runtime_ms : app->cfg->max_runtime_ms;
    if (budget_ms > 0)
        app->deadline = tm_now() + budget_ms / 1000.0;
    app->progress_live = isatty(STDERR_FILENO) && log_get_level() >= LOG_LEVEL_INFO;
    app->export_dry_run = cli->dry_run && strcmp(cli->command, "export") == 0;
    /* the times people read, in the configured zone (the environment's TZ otherwise) */
    if (app->cfg->timezone)
        tm_set_timezone(app->cfg->timezone);
    /* reports people read speak their language */
    if (cli->lang || cmd_reads(cli))
        i18n_init(cli->lang, ANONYMIZER_LOCALEDIR);
}

static int dispatch(const struct cli *cli, const struct command *cmd, const struct app *app)
{
    int status;
    if (cmd->id == CMD_EXPORT) {
        status = cmd_export(app);
    } else if (cmd->id == CMD_FETCH) {
        status = cmd_fetch(app);
    } else if (cmd->id == CMD_HISTORY) {
        struct history_options hopts = {
            .format = cli->format ? (enum report_format)report_parse_format(cli->format) : REPORT_TEXT,
            .since = !cli->since         ? tm_local_midnight(time(NULL) - 31 * 86400, false)
                     : cli->since_is_date ? tm_local_midnight(cli->since, true)
                                          : cli->since,
            .verify = cli->verify,
        };
        status = cmd_history(app, &hopts, stdout);
    } else if (cmd->id == CMD_HOLD) {
        struct hold_options hopts = cli->hold;
        hopts.form = cli->nforms ? cli->forms[0] : NULL;
        hopts.format = cli->format ? (enum report_format)report_parse_format(cli->format) : REPORT_TEXT;
        status = cmd_hold(app, &hopts, stdout);
    } else if (cmd->id == CMD_GRANTS) {
        status = cmd_grants(app, &cli->grants, stdout);
    } else if (cmd->id == CMD_CHECK) {
        status = cmd_check(app, stdout);
    } else if (cmd->id == CMD_REPORT || (cmd->id == CMD_RUN && cli->dry_run)) {
        struct report_options ropts = {
            .format = cli->format ? (enum report_format)report_parse_format(cli->format) : REPORT_TEXT,
            .at = cli->at[0] ? cli->at : NULL,
            .at_future = cli->at_future,
            .forms = cli->forms,
            .nforms = cli->nforms,
            .nagios = {.warning_days = cli->warning_days >= 0 ? cli->warning_days : 10,
                       .stale_hours = cli->stale_hours >= 0 ? cli->stale_hours : 36},
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

/* --format nagios anywhere on the command line, even one that does not parse. */
static bool wants_nagios(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--format=nagios") == 0 || (strcmp(argv[i], "--format") == 0 && i + 1 < argc &&
                                                        strcmp(argv[i + 1], "nagios") == 0))
            return true;
    return false;
}

/*
 * A Nagios check must answer with a status line and 0 to 3 whatever
 * happens: a failure before the report (bad option, bad configuration)
 * becomes UNKNOWN, with its first error as the text.
 */
static int nagios_status(bool nagios, int status)
{
    if (!nagios || (status >= 0 && status <= 3))
        return status;
    char why[512];
    snprintf(why, sizeof why, "%s", log_first_error() ? log_first_error() : "the check could not run");
    for (char *p = why; *p; p++)
        if (*p == '|')
            *p = '/';
    printf("ANONYMIZER UNKNOWN - %s\n", why);
    return 3;
}

/* A report that could not be written (a full disk, a closed pipe) is not a report: exit 74. */
static int output_status(int status)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return status;
    log_error("cannot write the output: %s", errno ? strerror(errno) : "write error");
    return status == EXIT_USAGE || status == EXIT_CONFIG ? status : EXIT_IOERR;
}

int main(int argc, char **argv)
{
    struct cli cli = {.max_runtime_ms = -1, .warning_days = -1, .stale_hours = -1};
    struct app app = {0};
    const struct command *cmd = NULL;

    /* no core file, no ptrace by another process of the same user, /proc/<pid>
     * files root's: the memory holds the API key, passwords and row data */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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
    status = nagios_status(wants_nagios(argc, argv), status);
    status = output_status(status);
    app_free(&app);
    free(cli.tenants);
    free(cli.forms);
    http_global_cleanup();
    return status;
}
