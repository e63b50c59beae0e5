/* axon/params.h — declared, typed, validated plugin parameters.
 *
 * A plugin declares its parameters as a table of ax_param_spec; the host
 * builds an ax_params from it (defaults filled in), sets the values a user
 * gave (from a Lua table or key=value strings), each checked against the
 * spec, and hands the result to the plugin's create(). Plugins never parse
 * parameters by hand.
 *
 *     static const ax_param_spec mae_params[] = {
 *         { .name = "mask_ratio", .type = AX_PARAM_FLOAT, .def = "0.75",
 *           .min = 0.0, .max = 1.0, .doc = "fraction of blocks zeroed" },
 *         { .name = "block", .type = AX_PARAM_INT, .def = "16", .min = 1, .max = 256,
 *           .doc = "edge of a masked cube, in voxels" },
 *         { .name = "loss", .type = AX_PARAM_STRING, .def = "mse", .choices = "mse|l1",
 *           .doc = "reconstruction loss" },
 *         { .name = "patch", .type = AX_PARAM_INT_LIST, .def = "160,160,160", .len = 3,
 *           .min = 8, .max = 1024, .doc = "patch size D,H,W" },
 *         { 0 } // terminator: name == NULL
 *     };
 *
 *     ax_params *p;
 *     if (ax_params_new(&p, mae_params, "mae") != AX_OK) ...; // defaults
 *     ax_params_set_float(p, "mask_ratio", 0.6);                // validated
 *     ax_params_set_string(p, "loss", "ssim");  // -> AX_ERR_INVALID:
 *         // "mae: parameter 'loss' must be one of mse|l1, got \"ssim\""
 *     ax_params_set_float(p, "mask_ration", 0.6); // -> AX_ERR_NOT_FOUND:
 *         // "mae: unknown parameter 'mask_ration' (did you mean 'mask_ratio'?);
 *         //  valid: mask_ratio, block, loss, patch"
 *     double r = ax_params_float(p, "mask_ratio");
 *     ax_params_free(p);
 *
 * Ranges: a spec with min < max bounds numbers (each element of a list);
 * min == max (both 0 by default) means unbounded. A NULL .def makes the
 * parameter required: ax_params_check() fails until it is set.
 */
#ifndef AXON_PARAMS_H
#define AXON_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Append-only: values are part of the plugin ABI. */
typedef enum ax_param_type {
    AX_PARAM_INT = 1,        /* int64 */
    AX_PARAM_FLOAT = 2,      /* double */
    AX_PARAM_BOOL = 3,       /* "true"/"false" */
    AX_PARAM_STRING = 4,     /* optionally restricted to .choices "a|b|c" */
    AX_PARAM_INT_LIST = 5,   /* "1,2,3"; .len > 0 fixes the length */
    AX_PARAM_FLOAT_LIST = 6  /* "0.5,1"; .len > 0 fixes the length */
} ax_param_type;

typedef struct ax_param_spec {
    const char *name;    /* [a-z_][a-z0-9_]*; NULL terminates a spec table */
    ax_param_type type;
    const char *def;     /* default in text form; NULL = required */
    double min, max;     /* inclusive range when min < max */
    const char *choices; /* AX_PARAM_STRING only, "a|b|c"; NULL = any string */
    uint32_t len;        /* lists only: required length, 0 = any (>= 1) */
    const char *doc;     /* one line for `axon plugins --describe` */
    void *reserved[4];
} ax_param_spec;

typedef struct ax_params ax_params;

/* Name of a type as shown to users: "int", "float", "bool", "string",
 * "int list", "float list" (static, borrowed). */
const char *ax_param_type_name(ax_param_type type);

/* Check a spec table itself: names well formed and unique, defaults parse
 * and lie in range. `owner` names the plugin in messages. The loader runs
 * this on every plugin so a bad spec is reported once, at load time. */
ax_status ax_param_spec_check(const ax_param_spec *spec, const char *owner);

/* Number of entries before the terminator. */
size_t ax_param_spec_count(const ax_param_spec *spec);

/* New parameter set holding the defaults. `spec` (borrowed) must outlive it;
 * `owner` is copied. *out is a new object; free with ax_params_free. */
ax_status ax_params_new(ax_params **out, const ax_param_spec *spec, const char *owner);
void ax_params_free(ax_params *p); /* NULL-safe */

/* Setters validate type and range and name the key and value on error.
 * Ints are accepted for float parameters; a float with an integral value is
 * accepted for an int parameter. */
ax_status ax_params_set_int(ax_params *p, const char *key, int64_t v);
ax_status ax_params_set_float(ax_params *p, const char *key, double v);
ax_status ax_params_set_bool(ax_params *p, const char *key, bool v);
ax_status ax_params_set_string(ax_params *p, const char *key, const char *v);
/* Lists: n values (n == 0 is an error). */
ax_status ax_params_set_ints(ax_params *p, const char *key, const int64_t *v, size_t n);
ax_status ax_params_set_floats(ax_params *p, const char *key, const double *v, size_t n);
/* Any type from its text form ("0.5", "true", "3,3,3"), e.g. from a
 * command-line "key=value". */
ax_status ax_params_set_text(ax_params *p, const char *key, const char *text);
/* Fails naming every required parameter still unset. */
ax_status ax_params_check(const ax_params *p);

/* The spec entry for `key`, NULL if none (borrowed). */
const ax_param_spec *ax_params_find(const ax_params *p, const char *key);
const ax_param_spec *ax_params_spec(const ax_params *p); /* borrowed */
bool ax_params_is_set(const ax_params *p, const char *key); /* set by the user */

/* Getters for plugins. The key must exist with the right type; otherwise
 * they return 0 / false / NULL and log an error (a plugin bug). */
int64_t ax_params_int(const ax_params *p, const char *key);
double ax_params_float(const ax_params *p, const char *key);
bool ax_params_bool(const ax_params *p, const char *key);
const char *ax_params_string(const ax_params *p, const char *key); /* borrowed */
/* List length; copies up to `cap` values into `out` ([optional] if cap 0). */
size_t ax_params_ints(const ax_params *p, const char *key, int64_t *out, size_t cap);
size_t ax_params_floats(const ax_params *p, const char *key, double *out, size_t cap);

/* Text form of a value as accepted by ax_params_set_text (new string,
 * free with free()). NULL for an unknown key or unset required value. */
char *ax_params_text(const ax_params *p, const char *key);
/* All values as one JSON object {"key": value, ...} in spec order (new
 * string, free with free()); used in checkpoint metadata. NULL on OOM. */
char *ax_params_to_json(const ax_params *p);

/* Case-insensitive Levenshtein distance between two names, for "did you
 * mean" suggestions; SIZE_MAX when either is longer than 128 characters. */
size_t ax_edit_distance(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
