/* axon/log.h — leveled logging to stderr.
 *
 * The level comes from the environment variable AXON_LOG
 * (debug|info|warn|error, default info), read once on first use, or from
 * ax_log_set_level(). Lines look like "axon: warn: message".
 *
 *     AX_LOG_INFO("loaded %d plugins", n);
 *     AX_LOG_DEBUG("searching %s", dir);
 *
 * Thread-safe: each call writes one whole line.
 */
#ifndef AXON_LOG_H
#define AXON_LOG_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ax_log_level {
    AX_LOG_LEVEL_DEBUG = 0,
    AX_LOG_LEVEL_INFO = 1,
    AX_LOG_LEVEL_WARN = 2,
    AX_LOG_LEVEL_ERROR = 3,
    AX_LOG_LEVEL_OFF = 4
} ax_log_level;

void ax_log_set_level(ax_log_level level);
ax_log_level ax_log_get_level(void);
bool ax_log_enabled(ax_log_level level);
/* Parse "debug", "info", "warn"/"warning", "error", "off" (any case).
 * Returns false and leaves *out alone for anything else. */
bool ax_log_level_parse(const char *s, ax_log_level *out);
/* Lower-case name of a level (static string, borrowed). */
const char *ax_log_level_name(ax_log_level level);

void ax_log_write(ax_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define AX_LOG_DEBUG(...) ax_log_write(AX_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define AX_LOG_INFO(...) ax_log_write(AX_LOG_LEVEL_INFO, __VA_ARGS__)
#define AX_LOG_WARN(...) ax_log_write(AX_LOG_LEVEL_WARN, __VA_ARGS__)
#define AX_LOG_ERROR(...) ax_log_write(AX_LOG_LEVEL_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
