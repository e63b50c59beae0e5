/* params.c — declared, typed, validated plugin parameters (axon/params.h).
 *
 * An ax_params holds one slot per spec entry. Every setter builds a candidate
 * value (owning its memory), validates it against the spec and only then
 * swaps it in, so a failed set leaves the previous value untouched. Parsing
 * and validation report what went wrong as plain data; the messages are
 * worded in two places, one for values a user gave (setters) and one for a
 * plugin's own defaults (ax_param_spec_check).
 *
 * Numbers are parsed and printed with strtoll/strtod/snprintf, so they use
 * the C locale's '.' as long as the process has not called setlocale().
 */
#include "axon/params.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "axon/log.h"

/* ---- storage --------------------------------------------------------- */

typedef struct value {
    int64_t i;   /* AX_PARAM_INT */
    double f;    /* AX_PARAM_FLOAT */
    bool b;      /* AX_PARAM_BOOL */
    char *s;     /* AX_PARAM_STRING (owned) */
    int64_t *il; /* AX_PARAM_INT_LIST (owned, n values) */
    double *fl;  /* AX_PARAM_FLOAT_LIST (owned, n values) */
    size_t n;    /* list length */
} value;

typedef struct slot {
    bool has;  /* holds a value, default or set */
    bool user; /* set through a setter */
    value v;
} slot;

struct ax_params {
    const ax_param_spec *spec; /* borrowed */
    size_t n;
    char *owner;
    slot *slots; /* n entries */
};

static const ax_param_spec empty_spec[1] = {{0}};

#define NAME_PATTERN "[a-z_][a-z0-9_]*"
#define QBUF 160   /* a quoted value in a message */
#define NUMBUF 40  /* one formatted number */
#define LISTBUF 96 /* a short list in a message */
#define LEV_MAX 128

static void value_free(value *v) {
    free(v->s);
    free(v->il);
    free(v->fl);
    memset(v, 0, sizeof *v);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool type_known(ax_param_type t) { return t >= AX_PARAM_INT && t <= AX_PARAM_FLOAT_LIST; }
static bool type_list(ax_param_type t) {
    return t == AX_PARAM_INT_LIST || t == AX_PARAM_FLOAT_LIST;
}
static bool type_numeric(ax_param_type t) {
    return t == AX_PARAM_INT || t == AX_PARAM_FLOAT || type_list(t);
}

static bool bounded(const ax_param_spec *s) { return type_numeric(s->type) && s->min < s->max; }
static bool in_range(const ax_param_spec *s, double x) {
    return !bounded(s) || (x >= s->min && x <= s->max);
}

static const char *owner_or(const char *owner) { return owner ? owner : "(unnamed)"; }

/* "an int", "a float list", ... */
static const char *a_type(ax_param_type t) {
    switch (t) {
    case AX_PARAM_INT: return "an int";
    case AX_PARAM_FLOAT: return "a float";
    case AX_PARAM_BOOL: return "a bool";
    case AX_PARAM_STRING: return "a string";
    case AX_PARAM_INT_LIST: return "an int list";
    case AX_PARAM_FLOAT_LIST: return "a float list";
    }
    return "an unknown type";
}

const char *ax_param_type_name(ax_param_type type) {
    switch (type) {
    case AX_PARAM_INT: return "int";
    case AX_PARAM_FLOAT: return "float";
    case AX_PARAM_BOOL: return "bool";
    case AX_PARAM_STRING: return "string";
    case AX_PARAM_INT_LIST: return "int list";
    case AX_PARAM_FLOAT_LIST: return "float list";
    }
    return "unknown";
}

/* ---- small text helpers (ASCII only, locale independent) -------------- */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }
static bool is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (lower((unsigned char)*a) != lower((unsigned char)*b)) return false;
    return *a == *b;
}

/* Trim [*b, *e) of surrounding white space. */
static void trim(const char **b, const char **e) {
    while (*b < *e && is_space((unsigned char)**b)) (*b)++;
    while (*e > *b && is_space((unsigned char)(*e)[-1])) (*e)--;
}

static bool utf8_valid(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s;
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[k] & 0xC0) != 0x80) return false; /* also stops at the NUL */
            cp = (cp << 6) | (s[k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += n + 1;
    }
    return true;
}

/* `s` in double quotes with C escapes, cut with "..." if long (for messages). */
static const char *quote(char *buf, size_t size, const char *s) {
    if (!s) {
        snprintf(buf, size, "NULL");
        return buf;
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    buf[o++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        bool cont = (*c & 0xC0) == 0x80;
        if (o + 6 >= size || (!cont && o + 10 >= size)) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        const char *esc = *c == '"'    ? "\\\""
                          : *c == '\\' ? "\\\\"
                          : *c == '\n' ? "\\n"
                          : *c == '\t' ? "\\t"
                                       : NULL;
        if (esc) {
            memcpy(buf + o, esc, 2);
            o += 2;
        } else if (*c < 0x20 || *c == 0x7F) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[*c >> 4];
            buf[o++] = hex[*c & 15];
        } else {
            buf[o++] = (char)*c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static const char *fmt_int(char buf[NUMBUF], int64_t v) {
    snprintf(buf, NUMBUF, "%" PRId64, v);
    return buf;
}

/* Fewest %g digits that read back as exactly `x`. */
static int shortest_precision(double x) {
    char b[NUMBUF];
    for (int prec = 1; prec < 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, x);
        if (strtod(b, NULL) == x) return prec;
    }
    return 17;
}

/* Readable and exact: whole numbers in plain digits, others in the shortest
 * %g form that round-trips through strtod. */
static const char *fmt_double(char buf[NUMBUF], double x) {
    if (isnan(x))
        snprintf(buf, NUMBUF, "nan");
    else if (isinf(x))
        snprintf(buf, NUMBUF, x < 0 ? "-inf" : "inf");
    else if (x == trunc(x) && fabs(x) < 1e15)
        snprintf(buf, NUMBUF, "%.0f", x);
    else
        snprintf(buf, NUMBUF, "%.*g", shortest_precision(x), x);
    return buf;
}

/* Comma-separated list for messages, cut with "..." when long. */
static const char *fmt_list(char buf[LISTBUF], const int64_t *iv, const double *fv, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        char num[NUMBUF];
        if (iv)
            fmt_int(num, iv[k]);
        else
            fmt_double(num, fv[k]);
        size_t len = strlen(num);
        if (o + len + 6 >= LISTBUF) {
            memcpy(buf + o, k ? ",..." : "...", k ? 5 : 4);
            return buf;
        }
        if (k) buf[o++] = ',';
        memcpy(buf + o, num, len + 1);
        o += len;
    }
    return buf;
}

/* " in [lo, hi]" for a bounded numeric spec, else "". */
static const char *range_text(char *buf, size_t size, const ax_param_spec *s) {
    char lo[NUMBUF], hi[NUMBUF];
    if (bounded(s))
        snprintf(buf, size, " in [%s, %s]", fmt_double(lo, s->min), fmt_double(hi, s->max));
    else if (size)
        buf[0] = '\0';
    return buf;
}

/* What a parameter accepts: "a float in [0, 1]", "an int list of 3 values". */
static const char *expects(char *buf, size_t size, const ax_param_spec *s) {
    char r[2 * NUMBUF + 16];
    if (s->type == AX_PARAM_STRING && s->choices) {
        snprintf(buf, size, "one of %s", s->choices);
    } else if (type_list(s->type) && s->len) {
        snprintf(buf, size, "%s of %" PRIu32 " value%s%s", a_type(s->type), s->len,
                 s->len == 1 ? "" : "s", range_text(r, sizeof r, s));
    } else {
        snprintf(buf, size, "%s%s", a_type(s->type), range_text(r, sizeof r, s));
    }
    return buf;
}

static bool choice_ok(const char *choices, const char *v) {
    size_t vn = strlen(v);
    for (const char *c = choices;;) {
        const char *bar = strchr(c, '|');
        size_t n = bar ? (size_t)(bar - c) : strlen(c);
        if (n == vn && memcmp(c, v, n) == 0) return true;
        if (!bar) return false;
        c = bar + 1;
    }
}

/* ---- parsing ----------------------------------------------------------- */

typedef enum parse_kind {
    P_OK,
    P_NOMEM,
    P_SYNTAX,   /* not a value of the type (for lists: element `index`) */
    P_INTRANGE, /* an int outside int64 (element `index` for lists) */
    P_EMPTY     /* a list with an empty element `index` */
} parse_kind;

typedef struct parse_result {
    parse_kind kind;
    size_t index;    /* 1-based list element, 0 for a scalar */
    char elem[QBUF]; /* the offending element, quoted, for lists */
} parse_result;

static parse_kind parse_int(const char *b, const char *e, int64_t *out) {
    trim(&b, &e);
    const char *d = b + (b < e && (*b == '+' || *b == '-'));
    if (d == e) return P_SYNTAX;
    for (const char *q = d; q < e; q++) /* decimal digits only: no "0x", no spaces */
        if (*q < '0' || *q > '9') return P_SYNTAX;
    size_t n = (size_t)(e - b);
    char small[32], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return P_NOMEM;
    memcpy(buf, b, n);
    buf[n] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    bool overflow = errno == ERANGE;
#if LLONG_MAX > INT64_MAX
    overflow = overflow || v < INT64_MIN || v > INT64_MAX;
#endif
    if (buf != small) free(buf);
    if (overflow) return P_INTRANGE;
    *out = (int64_t)v;
    return P_OK;
}

static parse_kind parse_float(const char *b, const char *e, double *out) {
    trim(&b, &e);
    size_t n = (size_t)(e - b);
    if (n == 0) return P_SYNTAX;
    for (const char *q = b; q < e; q++) /* no hex floats, nan(...) or inf */
        if (!strchr("0123456789+-.eE", *q)) return P_SYNTAX;
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return P_NOMEM;
    memcpy(buf, b, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    parse_kind k = (end == buf || *end || !isfinite(v)) ? P_SYNTAX : P_OK;
    if (buf != small) free(buf);
    if (k == P_OK) *out = v;
    return k;
}

static parse_kind parse_bool(const char *text, bool *out) {
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    const char *b = text, *e = text + strlen(text);
    char buf[8];
    trim(&b, &e);
    if ((size_t)(e - b) >= sizeof buf) return P_SYNTAX;
    memcpy(buf, b, (size_t)(e - b));
    buf[e - b] = '\0';
    for (size_t k = 0; k < 3; k++) {
        if (ieq(buf, yes[k]) || ieq(buf, no[k])) {
            *out = ieq(buf, yes[k]);
            return P_OK;
        }
    }
    return P_SYNTAX;
}

/* Parse `text` as a value of spec `s` into *out (zeroed first; owned by the
 * caller on success, freed here on failure). Syntax only: no range checks. */
static void parse_text(const ax_param_spec *s, const char *text, value *out, parse_result *r) {
    memset(out, 0, sizeof *out);
    r->kind = P_OK;
    r->index = 0;
    r->elem[0] = '\0';
    const char *end = text + strlen(text);
    switch (s->type) {
    case AX_PARAM_INT: r->kind = parse_int(text, end, &out->i); return;
    case AX_PARAM_FLOAT: r->kind = parse_float(text, end, &out->f); return;
    case AX_PARAM_BOOL: r->kind = parse_bool(text, &out->b); return;
    case AX_PARAM_STRING:
        out->s = dup_str(text);
        r->kind = out->s ? P_OK : P_NOMEM;
        return;
    case AX_PARAM_INT_LIST:
    case AX_PARAM_FLOAT_LIST: {
        const char *b = text, *e = end;
        trim(&b, &e);
        if (b == e) return; /* no values: the length check reports it */
        size_t n = 1;
        for (const char *q = b; q < e; q++) n += *q == ',';
        bool ints = s->type == AX_PARAM_INT_LIST;
        if (ints)
            out->il = malloc(n * sizeof *out->il);
        else
            out->fl = malloc(n * sizeof *out->fl);
        if (!out->il && !out->fl) {
            r->kind = P_NOMEM;
            return;
        }
        out->n = n;
        const char *q = b;
        for (size_t k = 0; k < n; k++) {
            const char *c = memchr(q, ',', (size_t)(e - q));
            const char *ee = c ? c : e, *eb = q;
            trim(&eb, &ee);
            parse_kind pk = eb == ee ? P_EMPTY
                            : ints   ? parse_int(eb, ee, &out->il[k])
                                     : parse_float(eb, ee, &out->fl[k]);
            if (pk != P_OK) {
                r->kind = pk;
                r->index = k + 1;
                if (pk != P_NOMEM && pk != P_EMPTY) {
                    char tmp[QBUF];
                    size_t len =
                        (size_t)(ee - eb) < sizeof tmp - 1 ? (size_t)(ee - eb) : sizeof tmp - 1;
                    memcpy(tmp, eb, len);
                    tmp[len] = '\0';
                    quote(r->elem, sizeof r->elem, tmp);
                }
                value_free(out);
                return;
            }
            q = c ? c + 1 : e;
        }
        return;
    }
    }
    r->kind = P_SYNTAX;
}

/* ---- validation -------------------------------------------------------- */

typedef enum check_kind { C_OK, C_RANGE, C_CHOICE, C_LEN, C_UTF8 } check_kind;

typedef struct check_result {
    check_kind kind;
    size_t index; /* 1-based list element for C_RANGE, 0 for a scalar */
} check_result;

/* Range, choices, length and encoding of a value already of the right type. */
static check_result check_value(const ax_param_spec *s, const value *v) {
    check_result r = {C_OK, 0};
    switch (s->type) {
    case AX_PARAM_INT:
        if (!in_range(s, (double)v->i)) r.kind = C_RANGE;
        break;
    case AX_PARAM_FLOAT:
        if (!in_range(s, v->f)) r.kind = C_RANGE;
        break;
    case AX_PARAM_BOOL: break;
    case AX_PARAM_STRING:
        if (!utf8_valid(v->s))
            r.kind = C_UTF8;
        else if (s->choices && !choice_ok(s->choices, v->s))
            r.kind = C_CHOICE;
        break;
    case AX_PARAM_INT_LIST:
    case AX_PARAM_FLOAT_LIST:
        if (v->n == 0 || (s->len && v->n != s->len)) {
            r.kind = C_LEN;
            break;
        }
        for (size_t k = 0; k < v->n; k++) {
            double x = v->il ? (double)v->il[k] : v->fl[k];
            if (!in_range(s, x)) {
                r.kind = C_RANGE;
                r.index = k + 1;
                break;
            }
        }
        break;
    }
    return r;
}

static const char *fmt_scalar(char buf[NUMBUF], const ax_param_spec *s, const value *v,
                              size_t index) {
    if (s->type == AX_PARAM_INT) return fmt_int(buf, v->i);
    if (s->type == AX_PARAM_FLOAT) return fmt_double(buf, v->f);
    if (v->il) return fmt_int(buf, v->il[index - 1]);
    return fmt_double(buf, v->fl[index - 1]);
}

static const char *needs_text(char *buf, size_t size, const ax_param_spec *s) {
    if (s->len)
        snprintf(buf, size, "%" PRIu32 " value%s", s->len, s->len == 1 ? "" : "s");
    else
        snprintf(buf, size, "at least 1 value");
    return buf;
}

/* The message for a value a user gave that failed check_value. */
static ax_status setter_fail(const ax_params *p, const ax_param_spec *s, const value *v,
                             check_result r) {
    char num[NUMBUF], lo[NUMBUF], hi[NUMBUF], q[QBUF], need[32];
    const char *o = p->owner, *k = s->name;
    switch (r.kind) {
    case C_RANGE:
        fmt_double(lo, s->min);
        fmt_double(hi, s->max);
        if (r.index)
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s' element %zu of %zu = %s is out of range [%s, %s]",
                            o, k, r.index, v->n, fmt_scalar(num, s, v, r.index), lo, hi);
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' = %s is out of range [%s, %s]", o, k,
                        fmt_scalar(num, s, v, 0), lo, hi);
    case C_CHOICE:
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' must be one of %s, got %s", o, k,
                        s->choices, quote(q, sizeof q, v->s));
    case C_LEN:
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' needs %s, got %zu", o, k,
                        needs_text(need, sizeof need, s), v->n);
    case C_UTF8:
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' expects a string, got invalid UTF-8 %s",
                        o, k, quote(q, sizeof q, v->s));
    case C_OK: break;
    }
    return AX_OK;
}

/* ---- spec checking ----------------------------------------------------- */

size_t ax_param_spec_count(const ax_param_spec *spec) {
    size_t n = 0;
    if (spec)
        while (spec[n].name) n++;
    return n;
}

static bool name_ok(const char *n) {
    if (!((*n >= 'a' && *n <= 'z') || *n == '_')) return false;
    for (n++; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_')) return false;
    return true;
}

/* Check one default; `o` is the owner for messages. */
static ax_status check_default(const ax_param_spec *s, const char *o) {
    char qd[QBUF], num[NUMBUF], lo[NUMBUF], hi[NUMBUF], need[32];
    value v;
    parse_result pr;
    parse_text(s, s->def, &v, &pr);
    quote(qd, sizeof qd, s->def);
    switch (pr.kind) {
    case P_OK: break;
    case P_NOMEM:
        return AX_ERROR(AX_ERR_NOMEM, "%s: parameter '%s': out of memory parsing its default", o,
                        s->name);
    case P_SYNTAX:
    case P_INTRANGE:
        if (pr.index)
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s': default %s is not %s (element %zu: %s)", o,
                            s->name, qd, a_type(s->type), pr.index, pr.elem);
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': default %s is not %s", o, s->name, qd,
                        a_type(s->type));
    case P_EMPTY:
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: parameter '%s': default %s is not %s (element %zu is empty)", o,
                        s->name, qd, a_type(s->type), pr.index);
    }
    check_result cr = check_value(s, &v);
    ax_status st = AX_OK;
    switch (cr.kind) {
    case C_OK: break;
    case C_RANGE:
        fmt_double(lo, s->min);
        fmt_double(hi, s->max);
        if (cr.index)
            st = AX_ERROR(AX_ERR_INVALID,
                          "%s: parameter '%s': default %s: element %zu of %zu = %s is out of "
                          "range [%s, %s]",
                          o, s->name, qd, cr.index, v.n, fmt_scalar(num, s, &v, cr.index), lo, hi);
        else
            st = AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': default %s is out of range [%s, %s]",
                          o, s->name, fmt_scalar(num, s, &v, 0), lo, hi);
        break;
    case C_CHOICE:
        st = AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': default %s is not one of %s", o, s->name,
                      qd, s->choices);
        break;
    case C_LEN:
        st = AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': default %s has %zu value%s, needs %s", o,
                      s->name, qd, v.n, v.n == 1 ? "" : "s", needs_text(need, sizeof need, s));
        break;
    case C_UTF8:
        st = AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': default %s is not valid UTF-8", o,
                      s->name, qd);
        break;
    }
    value_free(&v);
    return st;
}

ax_status ax_param_spec_check(const ax_param_spec *spec, const char *owner) {
    const char *o = owner_or(owner);
    char q[QBUF], lo[NUMBUF], hi[NUMBUF];
    size_t n = ax_param_spec_count(spec);
    for (size_t i = 0; i < n; i++) {
        const ax_param_spec *s = &spec[i];
        const char *k = s->name;
        if (!name_ok(k))
            return AX_ERROR(AX_ERR_INVALID, "%s: parameter name %s (entry %zu) must match %s", o,
                            quote(q, sizeof q, k), i + 1, NAME_PATTERN);
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec[j].name, k) == 0)
                return AX_ERROR(AX_ERR_INVALID,
                                "%s: parameter '%s' is declared twice (entries %zu and %zu)", o, k,
                                j + 1, i + 1);
        if (!type_known(s->type))
            return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': unknown type %d", o, k,
                            (int)s->type);
        if (!isfinite(s->min) || !isfinite(s->max))
            return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': min %s and max %s must be finite",
                            o, k, fmt_double(lo, s->min), fmt_double(hi, s->max));
        if (s->min > s->max)
            return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': min %s is greater than max %s", o,
                            k, fmt_double(lo, s->min), fmt_double(hi, s->max));
        if (!type_numeric(s->type) && (s->min != 0 || s->max != 0))
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s': min/max apply only to numbers, not to %s", o, k,
                            a_type(s->type));
        if (s->choices && s->type != AX_PARAM_STRING)
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s': choices apply only to strings, not to %s", o, k,
                            a_type(s->type));
        if (s->choices) {
            size_t cn = strlen(s->choices);
            if (cn == 0 || s->choices[0] == '|' || s->choices[cn - 1] == '|' ||
                strstr(s->choices, "||") || !utf8_valid(s->choices))
                return AX_ERROR(AX_ERR_INVALID,
                                "%s: parameter '%s': choices %s must be \"a|b|c\" with no empty "
                                "entry",
                                o, k, quote(q, sizeof q, s->choices));
        }
        if (s->len && !type_list(s->type))
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s': len applies only to lists, not to %s", o, k,
                            a_type(s->type));
        if (s->def) {
            ax_status st = check_default(s, o);
            if (st != AX_OK) return st;
        }
    }
    return AX_OK;
}

/* ---- construction ------------------------------------------------------ */

void ax_params_free(ax_params *p) {
    if (!p) return;
    if (p->slots)
        for (size_t i = 0; i < p->n; i++) value_free(&p->slots[i].v);
    free(p->slots);
    free(p->owner);
    free(p);
}

ax_status ax_params_new(ax_params **out, const ax_param_spec *spec, const char *owner) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_params_new: NULL out");
    *out = NULL;
    if (!spec) spec = empty_spec;
    ax_status st = ax_param_spec_check(spec, owner);
    if (st != AX_OK) return st;
    const char *o = owner_or(owner);
    ax_params *p = calloc(1, sizeof *p);
    if (!p) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory creating parameters", o);
    p->spec = spec;
    p->n = ax_param_spec_count(spec);
    p->owner = dup_str(o);
    p->slots = calloc(p->n ? p->n : 1, sizeof *p->slots);
    if (!p->owner || !p->slots) {
        ax_params_free(p);
        return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory creating parameters", o);
    }
    for (size_t i = 0; i < p->n; i++) {
        if (!spec[i].def) continue;
        parse_result pr;
        parse_text(&spec[i], spec[i].def, &p->slots[i].v, &pr);
        if (pr.kind != P_OK) { /* spec_check parsed it, so only memory can fail */
            ax_params_free(p);
            if (pr.kind == P_NOMEM)
                return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory setting default of '%s'", o,
                                spec[i].name);
            return AX_ERROR(AX_ERR_INTERNAL, "%s: default of '%s' failed to parse", o,
                            spec[i].name);
        }
        p->slots[i].has = true;
    }
    *out = p;
    return AX_OK;
}

/* ---- lookup ------------------------------------------------------------ */

static bool find_index(const ax_params *p, const char *key, size_t *idx) {
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->spec[i].name, key) == 0) {
            *idx = i;
            return true;
        }
    return false;
}

const ax_param_spec *ax_params_find(const ax_params *p, const char *key) {
    size_t i;
    if (!p || !key || !find_index(p, key, &i)) return NULL;
    return &p->spec[i];
}

const ax_param_spec *ax_params_spec(const ax_params *p) { return p ? p->spec : NULL; }

bool ax_params_is_set(const ax_params *p, const char *key) {
    size_t i;
    return p && key && find_index(p, key, &i) && p->slots[i].user;
}

size_t ax_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), row[LEV_MAX + 1];
    if (la > LEV_MAX || lb > LEV_MAX) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = lower((unsigned char)a[i - 1]) != lower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Append `s` to buf (used `*o` bytes of `size`); on overflow end with "...". */
static bool append(char *buf, size_t size, size_t *o, const char *s) {
    size_t n = strlen(s);
    if (*o + n + 4 >= size) {
        if (*o + 4 < size) {
            memcpy(buf + *o, "...", 4);
            *o += 3;
        }
        return false;
    }
    memcpy(buf + *o, s, n + 1);
    *o += n;
    return true;
}

static ax_status unknown_key(const ax_params *p, const char *key) {
    char q[QBUF];
    if (p->n == 0)
        return AX_ERROR(AX_ERR_NOT_FOUND, "%s: takes no parameters, got '%s'", p->owner, key);
    size_t best = SIZE_MAX, bi = 0, klen = strlen(key);
    for (size_t i = 0; i < p->n; i++) {
        size_t d = ax_edit_distance(key, p->spec[i].name);
        if (d < best) {
            best = d;
            bi = i;
        }
    }
    size_t limit = klen / 3 > 2 ? klen / 3 : 2;
    char valid[768];
    size_t o = 0;
    valid[0] = '\0';
    for (size_t i = 0; i < p->n; i++)
        if ((i && !append(valid, sizeof valid, &o, ", ")) ||
            !append(valid, sizeof valid, &o, p->spec[i].name))
            break;
    /* Suggest only a near miss, never a complete rewrite of a short key. */
    if (best <= limit && best < klen) {
        char sugg[QBUF];
        snprintf(sugg, sizeof sugg, " (did you mean '%s'?)", p->spec[bi].name);
        if (strlen(key) < QBUF - 2)
            return AX_ERROR(AX_ERR_NOT_FOUND, "%s: unknown parameter '%s'%s; valid: %s", p->owner,
                            key, sugg, valid);
        return AX_ERROR(AX_ERR_NOT_FOUND, "%s: unknown parameter %s%s; valid: %s", p->owner,
                        quote(q, sizeof q, key), sugg, valid);
    }
    if (strlen(key) < QBUF - 2)
        return AX_ERROR(AX_ERR_NOT_FOUND, "%s: unknown parameter '%s'; valid: %s", p->owner, key,
                        valid);
    return AX_ERROR(AX_ERR_NOT_FOUND, "%s: unknown parameter %s; valid: %s", p->owner,
                    quote(q, sizeof q, key), valid);
}

/* Resolve `key` for a setter; on failure the error is already recorded. */
static ax_status lookup(const ax_params *p, const char *key, const char *fn, size_t *idx) {
    if (!p) return AX_ERROR(AX_ERR_INVALID, "%s: NULL params", fn);
    if (!key) return AX_ERROR(AX_ERR_INVALID, "%s: %s: NULL parameter name", p->owner, fn);
    if (!find_index(p, key, idx)) return unknown_key(p, key);
    return AX_OK;
}

/* ---- setters ----------------------------------------------------------- */

static ax_status wrong_value(const ax_params *p, const ax_param_spec *s, const char *got) {
    char ex[2 * NUMBUF + 64 + QBUF];
    return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' expects %s, got %s", p->owner, s->name,
                    expects(ex, sizeof ex, s), got);
}

/* Validate candidate *c for slot i and take it, or free it and fail. */
static ax_status finish(ax_params *p, size_t i, value *c) {
    const ax_param_spec *s = &p->spec[i];
    check_result r = check_value(s, c);
    if (r.kind != C_OK) {
        ax_status st = setter_fail(p, s, c, r);
        value_free(c);
        return st;
    }
    value_free(&p->slots[i].v);
    p->slots[i].v = *c;
    p->slots[i].has = true;
    p->slots[i].user = true;
    return AX_OK;
}

static ax_status nomem(const ax_params *p, const char *key) {
    return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory setting parameter '%s'", p->owner, key);
}

ax_status ax_params_set_int(ax_params *p, const char *key, int64_t v) {
    size_t i;
    ax_status st = lookup(p, key, "ax_params_set_int", &i);
    if (st != AX_OK) return st;
    const ax_param_spec *s = &p->spec[i];
    value c = {0};
    char got[NUMBUF];
    if (s->type == AX_PARAM_INT)
        c.i = v;
    else if (s->type == AX_PARAM_FLOAT)
        c.f = (double)v;
    else
        return wrong_value(p, s, fmt_int(got, v));
    return finish(p, i, &c);
}

/* An integral double inside int64 (2^63 itself is out). */
static bool as_int64(double v, int64_t *out) {
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != trunc(v)) return false;
    *out = (int64_t)v;
    return true;
}

ax_status ax_params_set_float(ax_params *p, const char *key, double v) {
    size_t i;
    ax_status st = lookup(p, key, "ax_params_set_float", &i);
    if (st != AX_OK) return st;
    const ax_param_spec *s = &p->spec[i];
    value c = {0};
    char got[NUMBUF];
    fmt_double(got, v);
    if (s->type == AX_PARAM_INT) {
        if (!as_int64(v, &c.i)) return wrong_value(p, s, got);
    } else if (s->type == AX_PARAM_FLOAT && isfinite(v)) {
        c.f = v;
    } else {
        return wrong_value(p, s, got);
    }
    return finish(p, i, &c);
}

ax_status ax_params_set_bool(ax_params *p, const char *key, bool v) {
    size_t i;
    ax_status st = lookup(p, key, "ax_params_set_bool", &i);
    if (st != AX_OK) return st;
    const ax_param_spec *s = &p->spec[i];
    if (s->type != AX_PARAM_BOOL) return wrong_value(p, s, v ? "true" : "false");
    value c = {0};
    c.b = v;
    return finish(p, i, &c);
}

ax_status ax_params_set_string(ax_params *p, const char *key, const char *v) {
    size_t i;
    ax_status st = lookup(p, key, "ax_params_set_string", &i);
    if (st != AX_OK) return st;
    const ax_param_spec *s = &p->spec[i];
    char q[QBUF];
    if (s->type != AX_PARAM_STRING || !v) return wrong_value(p, s, quote(q, sizeof q, v));
    value c = {0};
    if (!(c.s = dup_str(v))) return nomem(p, key);
    return finish(p, i, &c);
}

ax_status ax_params_set_ints(ax_params *p, const char *key, const int64_t *v, size_t n) {
    size_t i;
    ax_status st = lookup(p, key, "ax_params_set_ints", &i);
    if (st != AX_OK) return st;
    const ax_param_spec *s = &p->spec[i];
    if (n && !v) return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': NULL values", p->owner, key);
    char list[LISTBUF], got[LISTBUF + 16];
    if (!type_list(s->type)) {
        if (n)
            snprintf(got, sizeof got, "the list %s", fmt_list(list, v, NULL, n));
        else
            snprintf(got, sizeof got, "an empty list");
        return wrong_value(p, s, got);
    }
    value c = {0};
    c.n = n;
    if (n > SIZE_MAX / sizeof(double)) return nomem(p, key);
    if (n && s->type == AX_PARAM_INT_LIST) {
        if (!(c.il = malloc(n * sizeof *c.il))) return nomem(p, key);
        memcpy(c.il, v, n * sizeof *c.il);
    } else if (n) {
        if (!(c.fl = malloc(n * sizeof *c.fl))) return nomem(p, key);
        for (size_t k = 0; k < n; k++) c.fl[k] = (double)v[k];
    }
    return finish(p, i, &c);
}

ax_status ax_params_set_floats(ax_params *p, const char *key, const double *v, size_t n) {
    size_t i;
    ax_status st = lookup(p, key, "ax_params_set_floats", &i);
    if (st != AX_OK) return st;
    const ax_param_spec *s = &p->spec[i];
    if (n && !v) return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s': NULL values", p->owner, key);
    char list[LISTBUF], got[LISTBUF + 16];
    if (!type_list(s->type)) {
        if (n)
            snprintf(got, sizeof got, "the list %s", fmt_list(list, NULL, v, n));
        else
            snprintf(got, sizeof got, "an empty list");
        return wrong_value(p, s, got);
    }
    bool ints = s->type == AX_PARAM_INT_LIST;
    for (size_t k = 0; k < n; k++) {
        int64_t tmp;
        if (ints ? !as_int64(v[k], &tmp) : !isfinite(v[k])) {
            char num[NUMBUF];
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s' element %zu of %zu expects %s, got %s", p->owner,
                            key, k + 1, n, ints ? "an int" : "a float", fmt_double(num, v[k]));
        }
    }
    value c = {0};
    c.n = n;
    if (n > SIZE_MAX / sizeof(double)) return nomem(p, key);
    if (n && ints) {
        if (!(c.il = malloc(n * sizeof *c.il))) return nomem(p, key);
        for (size_t k = 0; k < n; k++) c.il[k] = (int64_t)v[k];
    } else if (n) {
        if (!(c.fl = malloc(n * sizeof *c.fl))) return nomem(p, key);
        memcpy(c.fl, v, n * sizeof *c.fl);
    }
    return finish(p, i, &c);
}

ax_status ax_params_set_text(ax_params *p, const char *key, const char *text) {
    size_t i;
    ax_status st = lookup(p, key, "ax_params_set_text", &i);
    if (st != AX_OK) return st;
    const ax_param_spec *s = &p->spec[i];
    char q[QBUF];
    if (!text) return wrong_value(p, s, "NULL");
    value c;
    parse_result r;
    parse_text(s, text, &c, &r);
    char ex[2 * NUMBUF + 64 + QBUF];
    switch (r.kind) {
    case P_OK: return finish(p, i, &c);
    case P_NOMEM: return nomem(p, key);
    case P_SYNTAX:
    case P_INTRANGE: {
        const char *why = r.kind == P_INTRANGE ? " (outside the 64-bit int range)" : "";
        if (r.index)
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s' expects %s, got %s (element %zu: %s%s)", p->owner,
                            key, expects(ex, sizeof ex, s), quote(q, sizeof q, text), r.index,
                            r.elem, why);
        return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' expects %s, got %s%s", p->owner, key,
                        expects(ex, sizeof ex, s), quote(q, sizeof q, text), why);
    }
    case P_EMPTY:
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: parameter '%s' expects %s, got %s (element %zu is empty)", p->owner,
                        key, expects(ex, sizeof ex, s), quote(q, sizeof q, text), r.index);
    }
    return AX_ERROR(AX_ERR_INTERNAL, "%s: parameter '%s': unexpected parse result", p->owner, key);
}

ax_status ax_params_check(const ax_params *p) {
    if (!p) return AX_ERROR(AX_ERR_INVALID, "ax_params_check: NULL params");
    char names[768];
    size_t o = 0, missing = 0;
    names[0] = '\0';
    for (size_t i = 0; i < p->n; i++) {
        if (p->slots[i].has) continue;
        if (missing++ && !append(names, sizeof names, &o, ", ")) break;
        if (!append(names, sizeof names, &o, p->spec[i].name)) break;
    }
    if (missing)
        return AX_ERROR(AX_ERR_INVALID, "%s: missing required parameter(s): %s", p->owner, names);
    return AX_OK;
}

/* ---- getters ----------------------------------------------------------- */

/* The slot of `key` if it exists, has type `want` and a value; else log a
 * plugin bug and return NULL. */
static const slot *get_slot(const ax_params *p, const char *key, ax_param_type want,
                            const char *fn) {
    size_t i;
    if (!p) {
        AX_LOG_ERROR("%s('%s'): NULL params", fn, key ? key : "(null)");
        return NULL;
    }
    if (!key) {
        AX_LOG_ERROR("%s: %s: NULL parameter name", p->owner, fn);
        return NULL;
    }
    if (!find_index(p, key, &i)) {
        AX_LOG_ERROR("%s: %s: unknown parameter '%s'", p->owner, fn, key);
        return NULL;
    }
    if (p->spec[i].type != want) {
        AX_LOG_ERROR("%s: %s: parameter '%s' is %s, not %s", p->owner, fn, key,
                     a_type(p->spec[i].type), a_type(want));
        return NULL;
    }
    if (!p->slots[i].has) {
        AX_LOG_ERROR("%s: %s: required parameter '%s' is not set", p->owner, fn, key);
        return NULL;
    }
    return &p->slots[i];
}

int64_t ax_params_int(const ax_params *p, const char *key) {
    const slot *s = get_slot(p, key, AX_PARAM_INT, "ax_params_int");
    return s ? s->v.i : 0;
}

double ax_params_float(const ax_params *p, const char *key) {
    const slot *s = get_slot(p, key, AX_PARAM_FLOAT, "ax_params_float");
    return s ? s->v.f : 0.0;
}

bool ax_params_bool(const ax_params *p, const char *key) {
    const slot *s = get_slot(p, key, AX_PARAM_BOOL, "ax_params_bool");
    return s ? s->v.b : false;
}

const char *ax_params_string(const ax_params *p, const char *key) {
    const slot *s = get_slot(p, key, AX_PARAM_STRING, "ax_params_string");
    return s ? s->v.s : NULL;
}

size_t ax_params_ints(const ax_params *p, const char *key, int64_t *out, size_t cap) {
    const slot *s = get_slot(p, key, AX_PARAM_INT_LIST, "ax_params_ints");
    if (!s) return 0;
    if (out)
        for (size_t k = 0; k < s->v.n && k < cap; k++) out[k] = s->v.il[k];
    return s->v.n;
}

size_t ax_params_floats(const ax_params *p, const char *key, double *out, size_t cap) {
    const slot *s = get_slot(p, key, AX_PARAM_FLOAT_LIST, "ax_params_floats");
    if (!s) return 0;
    if (out)
        for (size_t k = 0; k < s->v.n && k < cap; k++) out[k] = s->v.fl[k];
    return s->v.n;
}

/* ---- text and JSON ----------------------------------------------------- */

char *ax_params_text(const ax_params *p, const char *key) {
    size_t i;
    if (!p || !key || !find_index(p, key, &i) || !p->slots[i].has) return NULL;
    const value *v = &p->slots[i].v;
    char num[NUMBUF];
    switch (p->spec[i].type) {
    case AX_PARAM_INT: return dup_str(fmt_int(num, v->i));
    case AX_PARAM_FLOAT: return dup_str(fmt_double(num, v->f));
    case AX_PARAM_BOOL: return dup_str(v->b ? "true" : "false");
    case AX_PARAM_STRING: return dup_str(v->s);
    case AX_PARAM_INT_LIST:
    case AX_PARAM_FLOAT_LIST: {
        if (v->n > SIZE_MAX / NUMBUF - 1) return NULL;
        char *buf = malloc(v->n * NUMBUF + 1), *o = buf;
        if (!buf) return NULL;
        *o = '\0';
        for (size_t k = 0; k < v->n; k++) {
            if (k) *o++ = ',';
            const char *t = v->il ? fmt_int(num, v->il[k]) : fmt_double(num, v->fl[k]);
            size_t len = strlen(t);
            memcpy(o, t, len + 1);
            o += len;
        }
        return buf;
    }
    }
    return NULL;
}

/* Whether "%.*g" with `prec` digits writes every float of `p` exactly. */
static bool floats_exact(const ax_params *p, int prec) {
    char b[NUMBUF];
    for (size_t i = 0; i < p->n; i++) {
        const value *v = &p->slots[i].v;
        ax_param_type t = p->spec[i].type;
        if (!p->slots[i].has || (t != AX_PARAM_FLOAT && t != AX_PARAM_FLOAT_LIST)) continue;
        size_t n = t == AX_PARAM_FLOAT ? 1 : v->n;
        for (size_t k = 0; k < n; k++) {
            double x = t == AX_PARAM_FLOAT ? v->f : v->fl[k];
            snprintf(b, sizeof b, "%.*g", prec, x);
            if (strtod(b, NULL) != x) return false;
        }
    }
    return true;
}

/* Fewest digits with which jansson's "%.*g" writes every float exactly, so
 * 0.6 is written "0.6", not "0.59999999999999998". */
static int json_precision(const ax_params *p) {
    int prec = 1;
    while (prec < 17 && !floats_exact(p, prec)) prec++;
    return prec;
}

static json_t *json_value(const ax_param_spec *s, const slot *sl) {
    const value *v = &sl->v;
    if (!sl->has) return json_null();
    switch (s->type) {
    case AX_PARAM_INT: return json_integer((json_int_t)v->i);
    case AX_PARAM_FLOAT: return json_real(v->f);
    case AX_PARAM_BOOL: return json_boolean(v->b);
    case AX_PARAM_STRING: return json_string(v->s);
    case AX_PARAM_INT_LIST:
    case AX_PARAM_FLOAT_LIST: {
        json_t *a = json_array();
        if (!a) return NULL;
        for (size_t k = 0; k < v->n; k++) {
            json_t *e = v->il ? json_integer((json_int_t)v->il[k]) : json_real(v->fl[k]);
            if (!e || json_array_append_new(a, e) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    }
    return NULL;
}

char *ax_params_to_json(const ax_params *p) {
    if (!p) return NULL;
    json_t *obj = json_object();
    if (!obj) return NULL;
    for (size_t i = 0; i < p->n; i++) {
        json_t *jv = json_value(&p->spec[i], &p->slots[i]);
        if (!jv || json_object_set_new(obj, p->spec[i].name, jv) != 0) { /* set_new takes jv */
            json_decref(obj);
            return NULL;
        }
    }
    size_t flags = JSON_PRESERVE_ORDER | (size_t)JSON_REAL_PRECISION(json_precision(p));
    /* Dump into our own buffer so the caller's free() matches whatever
     * allocator jansson was configured with. */
    size_t n = json_dumpb(obj, NULL, 0, flags);
    char *buf = n ? malloc(n + 1) : NULL;
    if (buf && json_dumpb(obj, buf, n, flags) == n) {
        buf[n] = '\0';
    } else {
        free(buf);
        buf = NULL;
    }
    json_decref(obj);
    return buf;
}
