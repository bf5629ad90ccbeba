/*
 * i18n.h: the reports people read (text, HTML, history) speak English or
 * French, through gettext; machine formats (JSON, CSV) and diagnostics keep
 * English.  The catalogues are po/<lang>.po, built and installed by meson.
 */
#ifndef I18N_H
#define I18N_H

#include <libintl.h>

#define _(s) gettext(s)
#define N_(s) (s)

/*
 * Chooses the language: lang "fr" or "en" (--lang), or NULL for the usual
 * locale variables (LANGUAGE, LC_ALL, LC_MESSAGES, LANG); English in the C
 * locale.  Catalogues are looked up in $ANONYMIZER_LOCALEDIR, else
 * localedir (where the build installs them).  Returns 0, or -1 for an
 * unknown lang.
 */
int i18n_init(const char *lang, const char *localedir);

/* The language in use: "en" or "fr" (for the HTML lang attribute). */
const char *i18n_lang(void);

#endif
