/*
 * i18n.c: choosing the language of the reports.
 */
#include "i18n.h"

#include <locale.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *current = "en";

/* The locale the environment asks for messages: LC_ALL, else LC_MESSAGES, else LANG. */
static const char *messages_locale(void)
{
    const char *vars[] = {"LC_ALL", "LC_MESSAGES", "LANG"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return v;
    }
    return NULL;
}

static bool is_c_locale(const char *loc)
{
    return !loc || strcmp(loc, "C") == 0 || strcmp(loc, "POSIX") == 0 || strncmp(loc, "C.", 2) == 0;
}

/*
 * The language the usual variables ask for, the way gettext reads them:
 * LANGUAGE (its first entry) unless the locale is C, where gettext ignores
 * it, else the language of the messages locale.  Read here rather than left
 * to setlocale(), which fails when that locale is not generated on the
 * machine (a minimal Debian has only C.UTF-8): the report is still French
 * for LANG=fr_FR.UTF-8.
 */
static const char *lang_from_environment(void)
{
    const char *loc = messages_locale();
    if (is_c_locale(loc))
        return "en";
    const char *language = getenv("LANGUAGE");
    const char *want = language && *language ? language : loc;
    return strncmp(want, "fr", 2) == 0 && (want[2] == '\0' || strchr("_.@:", want[2])) ? "fr" : "en";
}

int i18n_init(const char *lang, const char *localedir)
{
    if (lang && strcmp(lang, "en") != 0 && strcmp(lang, "fr") != 0)
        return -1;
    if (!lang)
        lang = lang_from_environment();
    const char *loc = setlocale(LC_ALL, "");
    /* gettext ignores LANGUAGE in the C locale, and the asked-for locale may
     * not exist: C.UTF-8 is always there (and the right character set) */
    if (is_c_locale(loc))
        setlocale(LC_ALL, "C.UTF-8");
    setenv("LANGUAGE", lang, 1);
    /* numbers are written the C way whatever the language: reports are compared and parsed */
    setlocale(LC_NUMERIC, "C");
    const char *dir = getenv("ANONYMIZER_LOCALEDIR");
    bindtextdomain("anonymizer", dir && *dir ? dir : localedir);
    bind_textdomain_codeset("anonymizer", "UTF-8");
    textdomain("anonymizer");
    /* what the catalogue says the language is: "fr" when French was chosen and found */
    current = strcmp(gettext("en"), "fr") == 0 ? "fr" : "en";
    return 0;
}

const char *i18n_lang(void)
{
    return current;
}
