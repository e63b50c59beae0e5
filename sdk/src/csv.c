/* csv.c — an RFC 4180 reader (axon/dataset.h): quoted fields with doubled
 * quotes, separators and line breaks inside quotes, LF or CRLF endings, an
 * optional UTF-8 byte-order mark, blank lines skipped. One pass over the
 * text into growing arrays; no per-byte allocation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/dataset.h"

typedef struct csv_buf {
    char *s;
    size_t n, cap;
} csv_buf;

static int csv_buf_put(csv_buf *b, char c) {
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        char *s = realloc(b->s, cap);
        if (!s) return -1;
        b->s = s, b->cap = cap;
    }
    b->s[b->n++] = c;
    return 0;
}

typedef struct csv_list {
    char **v;
    size_t n, cap;
} csv_list;

static int csv_list_push(csv_list *l, char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void csv_list_clear(csv_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL, l->n = l->cap = 0;
}

void ax_csv_free(ax_csv *csv) {
    if (!csv) return;
    for (size_t i = 0; i < csv->n_cols; i++) free(csv->header[i]);
    for (size_t i = 0; i < csv->n_rows * csv->n_cols; i++) free(csv->cells[i]);
    free(csv->header);
    free(csv->cells);
    free(csv->lines);
    free(csv->path);
    free(csv);
}

ax_status ax_csv_parse(ax_csv **out, const char *text, size_t len, const char *name) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_csv_parse: out is NULL");
    *out = NULL;
    if (!name) name = "<csv>";
    if (!text && len) return AX_ERROR(AX_ERR_INVALID, "%s: ax_csv_parse: text is NULL", name);
    ax_csv *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(name))) {
        free(c);
        return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", name);
    }
    csv_list cells = {0}, row = {0};
    csv_buf field = {0};
    size_t *lines = NULL, lines_cap = 0;
    size_t line = 1, row_line = 1;
    size_t i = 0;
    ax_status st = AX_OK;
    bool header_done = false;
    if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB && (unsigned char)text[2] == 0xBF)
        i = 3;

    while (i <= len && st == AX_OK) {
        /* one record */
        row_line = line;
        bool blank = true;
        for (;;) {
            /* one field */
            field.n = 0;
            bool quoted = false;
            if (i < len && text[i] == '"') {
                quoted = true;
                blank = false;
                size_t open_line = line;
                i++;
                for (;;) {
                    if (i >= len) {
                        st = AX_ERROR(AX_ERR_FORMAT, "%s:%zu: unterminated quoted field (opened on line %zu)", name,
                                      line, open_line);
                        break;
                    }
                    char ch = text[i++];
                    if (ch == '"') {
                        if (i < len && text[i] == '"') {
                            ch = '"';
                            i++;
                        } else {
                            break;
                        }
                    } else if (ch == '\n') {
                        line++;
                    }
                    if (csv_buf_put(&field, ch)) {
                        st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", name);
                        break;
                    }
                }
                if (st != AX_OK) break;
                if (i < len && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r')) {
                    st = AX_ERROR(AX_ERR_FORMAT, "%s:%zu: unexpected character '%c' after a closing quote", name, line,
                                  text[i]);
                    break;
                }
            } else {
                while (i < len && text[i] != ',' && text[i] != '\n') {
                    if (text[i] == '\r' && (i + 1 == len || text[i + 1] == '\n')) {
                        i++;
                        continue;
                    }
                    if (text[i] == '"') {
                        st = AX_ERROR(AX_ERR_FORMAT, "%s:%zu: a quote inside an unquoted field", name, line);
                        break;
                    }
                    if (csv_buf_put(&field, text[i++])) {
                        st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", name);
                        break;
                    }
                }
                if (st != AX_OK) break;
                if (field.n) blank = false;
            }
            while (quoted && i < len && text[i] == '\r') i++;
            char *s = malloc(field.n + 1);
            if (!s) {
                st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", name);
                break;
            }
            memcpy(s, field.s ? field.s : "", field.n);
            s[field.n] = '\0';
            if (csv_list_push(&row, s)) {
                free(s);
                st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", name);
                break;
            }
            if (i < len && text[i] == ',') {
                blank = false;
                i++;
                continue;
            }
            break; /* end of line or of text */
        }
        if (st != AX_OK) break;
        bool at_end = i >= len;
        if (!at_end) { /* text[i] == '\n' */
            i++;
            line++;
        }
        if (blank) {
            csv_list_clear(&row);
        } else if (!header_done) {
            c->header = row.v;
            c->n_cols = row.n;
            row = (csv_list){0};
            header_done = true;
        } else if (row.n != c->n_cols) {
            st = AX_ERROR(AX_ERR_FORMAT, "%s:%zu: %zu fields, but the header has %zu", name, row_line, row.n,
                          c->n_cols);
        } else {
            for (size_t k = 0; k < row.n && st == AX_OK; k++)
                if (csv_list_push(&cells, row.v[k])) st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", name);
            if (st == AX_OK) {
                free(row.v);
                row = (csv_list){0};
                if (c->n_rows == lines_cap) {
                    size_t cap = lines_cap ? 2 * lines_cap : 64;
                    size_t *l = realloc(lines, cap * sizeof *l);
                    if (!l) {
                        st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory", name);
                    } else {
                        lines = l, lines_cap = cap;
                    }
                }
                if (st == AX_OK) lines[c->n_rows++] = row_line;
            }
        }
        if (at_end) break;
    }
    free(field.s);
    csv_list_clear(&row);
    if (st == AX_OK && !header_done) st = AX_ERROR(AX_ERR_FORMAT, "%s: empty file (no header row)", name);
    if (st != AX_OK) {
        /* cells were moved into `cells`; free them there, not through c */
        csv_list_clear(&cells);
        free(lines);
        c->n_rows = 0;
        ax_csv_free(c);
        return st;
    }
    c->cells = cells.v;
    c->lines = lines;
    *out = c;
    return AX_OK;
}

ax_status ax_csv_read(ax_csv **out, const char *path) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_csv_read: out is NULL");
    *out = NULL;
    if (!path) return AX_ERROR(AX_ERR_INVALID, "ax_csv_read: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return AX_ERROR(errno == ENOENT ? AX_ERR_NOT_FOUND : AX_ERR_IO, "%s: %s", path, strerror(errno));
    csv_buf b = {0};
    char chunk[65536];
    size_t k;
    ax_status st = AX_OK;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + k + 1 > b.cap) {
            size_t cap = b.cap ? b.cap : 65536;
            while (cap < b.n + k + 1) cap *= 2;
            char *s = realloc(b.s, cap);
            if (!s) {
                st = AX_ERROR(AX_ERR_NOMEM, "%s: out of memory reading the file", path);
                break;
            }
            b.s = s, b.cap = cap;
        }
        memcpy(b.s + b.n, chunk, k);
        b.n += k;
    }
    if (st == AX_OK && ferror(f)) st = AX_ERROR(AX_ERR_IO, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    if (st == AX_OK) st = ax_csv_parse(out, b.s, b.n, path);
    free(b.s);
    return st;
}

int ax_csv_column(const ax_csv *csv, const char *name) {
    if (!csv || !name) return -1;
    for (size_t i = 0; i < csv->n_cols; i++)
        if (strcmp(csv->header[i], name) == 0) return (int)i;
    return -1;
}

const char *ax_csv_cell(const ax_csv *csv, size_t row, int col) {
    if (!csv || col < 0 || (size_t)col >= csv->n_cols || row >= csv->n_rows) return "";
    return csv->cells[row * csv->n_cols + (size_t)col];
}

ax_status ax_csv_require(const ax_csv *csv, const char *const *names, size_t n) {
    if (!csv) return AX_ERROR(AX_ERR_INVALID, "ax_csv_require: csv is NULL");
    for (size_t i = 0; i < n; i++)
        if (ax_csv_column(csv, names[i]) < 0)
            return AX_ERROR(AX_ERR_FORMAT, "%s: missing required column '%s'", csv->path, names[i]);
    return AX_OK;
}
