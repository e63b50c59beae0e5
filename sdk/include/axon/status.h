/* axon/status.h — status codes and the thread-local error message.
 *
 * Library code never exits or aborts on bad input. A function that can fail
 * returns an ax_status (0 ok, negative error) and, on failure, leaves a
 * human-readable message naming the file/key/value involved in a thread-local
 * slot, together with the source file:line that raised it.
 *
 *     ax_status load(const char *path) {
 *         FILE *f = fopen(path, "rb");
 *         if (!f)
 *             return AX_ERROR(AX_ERR_IO, "%s: %s", path, strerror(errno));
 *         ...
 *     }
 *
 *     if (load("x.nii") != AX_OK)
 *         fprintf(stderr, "axon: %s\n", ax_error_message());
 *
 * The message is valid until the next AX_ERROR on the same thread.
 */
#ifndef AXON_STATUS_H
#define AXON_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ax_status {
    AX_OK = 0,
    AX_ERR_INVALID = -1,     /* a bad argument, key or value */
    AX_ERR_NOMEM = -2,       /* an allocation failed */
    AX_ERR_IO = -3,          /* a file could not be read or written */
    AX_ERR_FORMAT = -4,      /* a file's contents are malformed */
    AX_ERR_NOT_FOUND = -5,   /* a named thing (file, plugin, key) is missing */
    AX_ERR_UNSUPPORTED = -6, /* valid, but not implemented here (dtype, device) */
    AX_ERR_ABI = -7,         /* a plugin built for an incompatible ABI */
    AX_ERR_STATE = -8,       /* called in the wrong state (use after finish) */
    AX_ERR_INTERRUPTED = -9, /* stopped by a signal; work so far is saved */
    AX_ERR_INTERNAL = -10    /* a bug in axon: please report it */
} ax_status;

/* Short lower-case name of a status code, e.g. "invalid argument".
 * Returns a static string (borrowed). */
const char *ax_status_str(ax_status status);

/* Record an error for the calling thread and return `status` unchanged, so
 * callers can write `return AX_ERROR(AX_ERR_IO, "%s: ...", path)`. */
#define AX_ERROR(status, ...) ax_error_set_at(__FILE__, __LINE__, (status), __VA_ARGS__)

ax_status ax_error_set_at(const char *file, int line, ax_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Prefix the current message with "<context>: " (e.g. a file name known only
 * to the caller). Keeps the original file:line. Returns the current status. */
ax_status ax_error_prefix(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* The last message on this thread, "" if none (borrowed, thread-local). */
const char *ax_error_message(void);
/* "file:line" of the code that raised it, "" if none (borrowed, thread-local). */
const char *ax_error_where(void);
/* The status passed to the last AX_ERROR on this thread, AX_OK if none. */
ax_status ax_error_status(void);
void ax_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
