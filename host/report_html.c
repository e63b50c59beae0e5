/* The HTML report (report.h): page, SVG curves from metrics.jsonl, tables. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/cache.h"
#include "report_internal.h"
#include "train_core.h"

ax_report_opts ax_report_opts_default(void) {
    ax_report_opts o;
    memset(&o, 0, sizeof o);
    o.title = "axon report";
    return o;
}

/* ---- string buffer ------------------------------------------------------------------ */

static void ax_sbuf_grow(ax_sbuf *b, size_t more) {
    if (b->failed || b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return;
    }
    b->s = s;
    b->cap = cap;
}

void ax_sbuf_printf(ax_sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    ax_sbuf_grow(b, (size_t)need);
    if (b->failed) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

void ax_sbuf_puts(ax_sbuf *b, const char *s) {
    size_t n = strlen(s);
    ax_sbuf_grow(b, n);
    if (b->failed) return;
    memcpy(b->s + b->n, s, n + 1);
    b->n += n;
}

void ax_sbuf_text(ax_sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': ax_sbuf_puts(b, "&amp;"); break;
        case '<': ax_sbuf_puts(b, "&lt;"); break;
        case '>': ax_sbuf_puts(b, "&gt;"); break;
        case '"': ax_sbuf_puts(b, "&quot;"); break;
        case '\'': ax_sbuf_puts(b, "&#39;"); break;
        default: {
            char c[2] = {*s, 0};
            ax_sbuf_puts(b, c);
        }
        }
    }
}

/* ---- metrics.jsonl ------------------------------------------------------------------------ */

typedef struct ax_series {
    size_t n, cap;
    double *x, *y;
} ax_series;

static void ax_series_add(ax_series *s, double x, double y) {
    if (!isfinite(y)) return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (!nx) return;
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (!ny) return;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x, s->y[s->n] = y, s->n++;
}

static void ax_series_free(ax_series *s) {
    free(s->x), free(s->y);
    memset(s, 0, sizeof *s);
}

typedef struct ax_run_metrics {
    ax_series loss, val_loss, lr, dice;
    double last_step, last_time;
    int64_t batch;
    int64_t patch_vox;
} ax_run_metrics;

static void ax_run_metrics_free(ax_run_metrics *m) {
    ax_series_free(&m->loss), ax_series_free(&m->val_loss), ax_series_free(&m->lr), ax_series_free(&m->dice);
}

static double ax_jnum(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static ax_status ax_run_metrics_read(ax_run_metrics *m, const char *dir) {
    memset(m, 0, sizeof *m);
    char path[AX_TRAIN_PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return AX_ERROR(AX_ERR_NOT_FOUND, "report: %s: cannot open (not a run folder?)", path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) continue;
        double s = ax_jnum(j, "step");
        ax_series_add(&m->loss, s, ax_jnum(j, "loss"));
        ax_series_add(&m->val_loss, s, ax_jnum(j, "val_loss"));
        ax_series_add(&m->lr, s, ax_jnum(j, "lr"));
        ax_series_add(&m->dice, s, ax_jnum(j, "val_dice_mean"));
        if (isfinite(s) && s >= m->last_step) {
            m->last_step = s;
            double t = ax_jnum(j, "time");
            if (isfinite(t)) m->last_time = t;
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    m->batch = c ? (int64_t)ax_jnum(c, "batch") : 0;
    json_t *p = c ? json_object_get(c, "patch") : NULL;
    m->patch_vox = 1;
    for (size_t i = 0; i < 3; i++)
        m->patch_vox *= p ? (int64_t)json_integer_value(json_array_get(p, i)) : 0;
    json_decref(c);
    return AX_OK;
}

/* ---- SVG charts ----------------------------------------------------------------------------- */

static const char *const ax_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

typedef struct ax_chart_series {
    const char *name;
    const ax_series *s;
    int color;
    int markers; /* circles instead of a line */
} ax_chart_series;

static double ax_nice(double x) {
    double e = pow(10, floor(log10(x))), f = x / e;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * e;
}

static void ax_svg_chart(ax_sbuf *b, const char *title, const char *xlabel, const ax_chart_series *ser, int n) {
    const double W = 440, H = 250, L = 62, R = 12, T = 34, B = 40;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < n; k++)
        for (size_t i = 0; i < ser[k].s->n; i++) {
            x0 = fmin(x0, ser[k].s->x[i]), x1 = fmax(x1, ser[k].s->x[i]);
            y0 = fmin(y0, ser[k].s->y[i]), y1 = fmax(y1, ser[k].s->y[i]);
        }
    ax_sbuf_printf(b,
                   "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
                   "viewBox=\"0 0 %g %g\">",
                   W, H, W, H);
    ax_sbuf_puts(b, "<text x=\"8\" y=\"16\" class=\"ct\">");
    ax_sbuf_text(b, title);
    ax_sbuf_puts(b, "</text>");
    if (!isfinite(x0)) {
        ax_sbuf_printf(b, "<text x=\"%g\" y=\"%g\">no data</text></svg>", W / 2 - 24, H / 2);
        return;
    }
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) {
        double d = fabs(y0) > 0 ? fabs(y0) * 0.1 : 1;
        y0 -= d, y1 += d;
    }
    double step = ax_nice((y1 - y0) / 4);
    y0 = floor(y0 / step) * step, y1 = ceil(y1 / step) * step;
    double pw = W - L - R, ph = H - T - B;
#define AX_PX(x) (L + ((x)-x0) / (x1 - x0) * pw)
#define AX_PY(y) (T + ph - ((y)-y0) / (y1 - y0) * ph)
    ax_sbuf_printf(b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"frame\"/>", L, T, pw, ph);
    for (double y = y0; y <= y1 + step * 0.5; y += step) {
        ax_sbuf_printf(b, "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", L, L + pw, AX_PY(y),
                       AX_PY(y));
        ax_sbuf_printf(b, "<text x=\"%g\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%.3g</text>", L - 4,
                       AX_PY(y) + 4, fabs(y) < step * 1e-6 ? 0.0 : y);
    }
    double xs = ax_nice((x1 - x0) / 5);
    for (double x = ceil(x0 / xs) * xs; x <= x1 + xs * 1e-6; x += xs)
        ax_sbuf_printf(b, "<text x=\"%.1f\" y=\"%g\" class=\"tick\" text-anchor=\"middle\">%g</text>", AX_PX(x),
                       T + ph + 14, x);
    ax_sbuf_printf(b, "<text x=\"%g\" y=\"%g\" class=\"tick\" text-anchor=\"middle\">", L + pw / 2, H - 6);
    ax_sbuf_text(b, xlabel);
    ax_sbuf_puts(b, "</text>");
    double lx = L + 4;
    for (int k = 0; k < n; k++) {
        const ax_series *s = ser[k].s;
        const char *col = ax_colors[ser[k].color % 6];
        if (s->n == 0) continue;
        if (ser[k].markers || s->n == 1) {
            for (size_t i = 0; i < s->n; i++)
                ax_sbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", AX_PX(s->x[i]),
                               AX_PY(s->y[i]), col);
        }
        if (!ser[k].markers || s->n > 1) {
            ax_sbuf_printf(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s d=\"", col,
                           ser[k].markers ? " stroke-dasharray=\"4 3\"" : "");
            for (size_t i = 0; i < s->n; i++)
                ax_sbuf_printf(b, "%s%.1f %.1f", i ? " L" : "M", AX_PX(s->x[i]), AX_PY(s->y[i]));
            ax_sbuf_puts(b, "\"/>");
        }
        ax_sbuf_printf(b, "<rect x=\"%.1f\" y=\"%g\" width=\"10\" height=\"3\" fill=\"%s\"/>", lx, T - 10, col);
        ax_sbuf_printf(b, "<text x=\"%.1f\" y=\"%g\" class=\"tick\">", lx + 13, T - 6);
        ax_sbuf_text(b, ser[k].name);
        ax_sbuf_puts(b, "</text>");
        lx += 24 + 6.2 * (double)strlen(ser[k].name);
    }
#undef AX_PX
#undef AX_PY
    ax_sbuf_puts(b, "</svg>");
}

/* ---- the page ------------------------------------------------------------------------------- */

static const char ax_report_css[] =
    "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
    "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
    ".chart{background:#fff;margin:4px}.ct{font-size:13px;font-weight:600}.tick{font-size:10px;fill:#444}"
    ".frame{fill:none;stroke:#999}.grid{stroke:#eee}"
    ".panel{display:inline-block;margin:4px 10px 10px 0;vertical-align:top;text-align:center;font-size:12px}"
    ".panel img{image-rendering:pixelated;margin:1px;background:#000}"
    ".row{white-space:nowrap}.note{color:#555;font-size:13px}";

ax_status ax_report_write(const ax_report_opts *o) {
    if (!o->out) return AX_ERROR(AX_ERR_INVALID, "report: 'out' is required");
    ax_sbuf b = {0};
    ax_status st = AX_OK;
    ax_sbuf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    ax_sbuf_text(&b, o->title);
    ax_sbuf_printf(&b, "</title><style>%s</style></head><body>\n<h1>", ax_report_css);
    ax_sbuf_text(&b, o->title);
    ax_sbuf_puts(&b, "</h1>\n");
    if (o->intro) {
        ax_sbuf_puts(&b, "<p>");
        ax_sbuf_text(&b, o->intro);
        ax_sbuf_puts(&b, "</p>\n");
    }
    if (o->table_cols) {
        ax_sbuf_puts(&b, "<h2>");
        ax_sbuf_text(&b, o->table_title ? o->table_title : "Results");
        ax_sbuf_puts(&b, "</h2>\n<table id=\"results\"><tr>");
        for (size_t c = 0; c < o->table_cols; c++) {
            ax_sbuf_puts(&b, "<th>");
            ax_sbuf_text(&b, o->table_header[c]);
            ax_sbuf_puts(&b, "</th>");
        }
        ax_sbuf_puts(&b, "</tr>\n");
        for (size_t r = 0; r < o->table_rows; r++) {
            ax_sbuf_puts(&b, "<tr>");
            for (size_t c = 0; c < o->table_cols; c++) {
                ax_sbuf_puts(&b, "<td>");
                ax_sbuf_text(&b, o->table_cells[r * o->table_cols + c]);
                ax_sbuf_puts(&b, "</td>");
            }
            ax_sbuf_puts(&b, "</tr>\n");
        }
        ax_sbuf_puts(&b, "</table>\n");
    }
    if (o->notes) {
        ax_sbuf_puts(&b, "<p class=\"note\">");
        ax_sbuf_text(&b, o->notes);
        ax_sbuf_puts(&b, "</p>\n");
    }

    ax_run_metrics *m = calloc(o->n_runs ? o->n_runs : 1, sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < o->n_runs && st == AX_OK; i++)
        st = ax_run_metrics_read(&m[i], o->runs[i].dir);
    if (st == AX_OK && o->n_runs) {
        ax_sbuf_puts(&b, "<h2>Training curves</h2>\n");
        ax_chart_series dice[16];
        int nd = 0;
        for (size_t i = 0; i < o->n_runs && i < 16; i++)
            if (m[i].dice.n) dice[nd] = (ax_chart_series){o->runs[i].name, &m[i].dice, (int)i, 0}, nd++;
        if (nd) {
            ax_sbuf_puts(&b, "<div class=\"row\">");
            ax_svg_chart(&b, "validation Dice (mean of classes)", "step", dice, nd);
            ax_sbuf_puts(&b, "</div>\n");
        }
        for (size_t i = 0; i < o->n_runs; i++) {
            ax_sbuf_puts(&b, "<h3>");
            ax_sbuf_text(&b, o->runs[i].name);
            ax_sbuf_puts(&b, "</h3><div class=\"row\">");
            ax_chart_series loss[2] = {{"train loss", &m[i].loss, 0, 0}, {"validation loss", &m[i].val_loss, 1, 1}};
            char t[256];
            snprintf(t, sizeof t, "loss: %s", o->runs[i].name);
            ax_svg_chart(&b, t, "step", loss, 2);
            ax_chart_series lr[1] = {{"learning rate", &m[i].lr, 2, 0}};
            ax_svg_chart(&b, "learning rate", "step", lr, 1);
            ax_sbuf_puts(&b, "</div>\n");
        }
        ax_sbuf_puts(&b, "<h2>Throughput</h2>\n<table id=\"throughput\"><tr><th>run</th><th>steps</th><th>batch"
                         "</th><th>wall time (s)</th><th>steps/s</th><th>samples/s</th><th>Mvoxel/s</th></tr>\n");
        for (size_t i = 0; i < o->n_runs; i++) {
            double sps = m[i].last_time > 0 ? m[i].last_step / m[i].last_time : NAN;
            ax_sbuf_puts(&b, "<tr><td>");
            ax_sbuf_text(&b, o->runs[i].name);
            ax_sbuf_printf(&b,
                           "</td><td>%.0f</td><td>%lld</td><td>%.1f</td><td>%.3f</td><td>%.2f</td><td>%.2f</td></tr>\n",
                           m[i].last_step, (long long)m[i].batch, m[i].last_time, sps, sps * (double)m[i].batch,
                           sps * (double)m[i].batch * (double)m[i].patch_vox / 1e6);
        }
        ax_sbuf_puts(&b, "</table>\n<p class=\"note\">Wall time includes validation (sliding window over the "
                         "validation cases) and checkpoints.</p>\n");
    }
    for (size_t i = 0; i < o->n_runs; i++)
        ax_run_metrics_free(&m[i]);
    free(m);
    if (st == AX_OK && o->preview_run) {
        ax_sbuf_puts(&b, "<h2>Pre-training: what the method sees and reconstructs</h2>\n");
        st = ax_report_preview_html(&b, o->preview_run, o->registry);
    }
    if (st == AX_OK && o->n_cases) ax_sbuf_puts(&b, "<h2>Test cases: prediction vs label</h2>\n");
    for (size_t i = 0; i < o->n_cases && st == AX_OK; i++)
        st = ax_report_case_html(&b, &o->cases[i]);
    ax_sbuf_puts(&b, "<p class=\"note\">Written by axon.</p>\n</body></html>\n");
    if (st == AX_OK && b.failed) st = AX_ERROR(AX_ERR_NOMEM, "report: out of memory");
    if (st == AX_OK) st = ax_cache_write_file(o->out, b.s, b.n);
    free(b.s);
    return st;
}
