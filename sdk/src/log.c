/* Leveled logging behind axon/log.h. */
#include "axon/log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int ax_log_level_now = AX_LOG_LEVEL_INFO;
static pthread_once_t ax_log_once = PTHREAD_ONCE_INIT;

static const char *const ax_log_names[] = {"debug", "info", "warn", "error", "off"};

const char *ax_log_level_name(ax_log_level level) {
    if ((int)level < 0 || level > AX_LOG_LEVEL_OFF) return "?";
    return ax_log_names[level];
}

bool ax_log_level_parse(const char *s, ax_log_level *out) {
    char low[16];
    size_t n;
    if (!s) return false;
    for (n = 0; s[n] && n + 1 < sizeof low; n++) low[n] = (char)tolower((unsigned char)s[n]);
    if (s[n]) return false;
    low[n] = '\0';
    for (int i = 0; i <= AX_LOG_LEVEL_OFF; i++) {
        if (strcmp(low, ax_log_names[i]) == 0) {
            *out = (ax_log_level)i;
            return true;
        }
    }
    if (strcmp(low, "warning") == 0) {
        *out = AX_LOG_LEVEL_WARN;
        return true;
    }
    return false;
}

static void ax_log_read_env(void) {
    const char *env = getenv("AXON_LOG");
    ax_log_level level;
    if (!env || !*env) return;
    if (ax_log_level_parse(env, &level))
        ax_log_level_now = level;
    else
        fprintf(stderr, "axon: warn: AXON_LOG=%s is not one of debug|info|warn|error|off; using info\n",
                env);
}

void ax_log_set_level(ax_log_level level) {
    pthread_once(&ax_log_once, ax_log_read_env); /* so a later first use cannot override it */
    ax_log_level_now = level;
}

ax_log_level ax_log_get_level(void) {
    pthread_once(&ax_log_once, ax_log_read_env);
    return (ax_log_level)ax_log_level_now;
}

bool ax_log_enabled(ax_log_level level) {
    return level >= ax_log_get_level() && level < AX_LOG_LEVEL_OFF;
}

void ax_log_write(ax_log_level level, const char *fmt, ...) {
    char line[2048];
    int n;
    va_list ap;
    if (!ax_log_enabled(level)) return;
    n = snprintf(line, sizeof line, "axon: %s: ", ax_log_level_name(level));
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs per line keeps lines from threads whole. */
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len] = '\n';
        line[len + 1] = '\0';
    } else {
        line[sizeof line - 2] = '\n';
    }
    fputs(line, stderr);
}
