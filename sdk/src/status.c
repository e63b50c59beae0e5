/* Thread-local error slot behind axon/status.h. */
#include "axon/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define AX_ERROR_MESSAGE_MAX 1024

static _Thread_local char ax_error_text[AX_ERROR_MESSAGE_MAX];
static _Thread_local char ax_error_loc[128];
static _Thread_local ax_status ax_error_code = AX_OK;

const char *ax_status_str(ax_status status) {
    switch (status) {
    case AX_OK: return "ok";
    case AX_ERR_INVALID: return "invalid argument";
    case AX_ERR_NOMEM: return "out of memory";
    case AX_ERR_IO: return "input/output error";
    case AX_ERR_FORMAT: return "malformed data";
    case AX_ERR_NOT_FOUND: return "not found";
    case AX_ERR_UNSUPPORTED: return "unsupported";
    case AX_ERR_ABI: return "incompatible plugin ABI";
    case AX_ERR_STATE: return "invalid state";
    case AX_ERR_INTERRUPTED: return "interrupted";
    case AX_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

ax_status ax_error_set_at(const char *file, int line, ax_status status, const char *fmt, ...) {
    /* The message may be built from the previous one (ax_error_message() as
     * an argument), so format into a scratch buffer first. */
    char buf[AX_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(ax_error_text, buf, sizeof buf);
    snprintf(ax_error_loc, sizeof ax_error_loc, "%s:%d", file ? file : "?", line);
    ax_error_code = status;
    return status;
}

ax_status ax_error_prefix(const char *fmt, ...) {
    char prefix[AX_ERROR_MESSAGE_MAX];
    char buf[AX_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Truncation is fine here: keep as much of both as fits. */
    size_t n = strlen(prefix), m = strlen(ax_error_text);
    if (n > sizeof buf - 3) n = sizeof buf - 3;
    if (m > sizeof buf - 3 - n) m = sizeof buf - 3 - n;
    memcpy(buf, prefix, n);
    memcpy(buf + n, ": ", 2);
    memcpy(buf + n + 2, ax_error_text, m);
    buf[n + 2 + m] = '\0';
    memcpy(ax_error_text, buf, n + 3 + m);
    return ax_error_code;
}

const char *ax_error_message(void) { return ax_error_text; }
const char *ax_error_where(void) { return ax_error_loc; }
ax_status ax_error_status(void) { return ax_error_code; }

void ax_error_clear(void) {
    ax_error_text[0] = '\0';
    ax_error_loc[0] = '\0';
    ax_error_code = AX_OK;
}
