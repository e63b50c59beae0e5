/* host/report_internal.h — what report_html.c and report_image.c share. */
#ifndef AXON_HOST_REPORT_INTERNAL_H
#define AXON_HOST_REPORT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "report.h"

/* A growing string; on OOM `failed` is set and appends are dropped. */
typedef struct ax_sbuf {
    char *s;
    size_t n, cap;
    int failed;
} ax_sbuf;

void ax_sbuf_printf(ax_sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void ax_sbuf_puts(ax_sbuf *b, const char *s);
/* HTML-escaped text (& < > " '). */
void ax_sbuf_text(ax_sbuf *b, const char *s);

/* A section of orthogonal slices (axial, coronal, sagittal through the
 * centre) of one case: the image, the label and each prediction over it. */
ax_status ax_report_case_html(ax_sbuf *b, const ax_report_case *c);
/* The METHOD preview of a pre-training run (input, method view, output). */
ax_status ax_report_preview_html(ax_sbuf *b, const char *run, ax_registry *reg);

#endif
