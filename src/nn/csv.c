/*
 * csv.c - a reader for numeric CSV tables (the kind of file the examples
 * use): an optional header line of names, then rows of numbers, all rows as
 * wide as the first. Errors name the file, the line and the column.
 *
 * The file is read whole, then parsed line by line; a line ends at \n, \r\n
 * or a lone \r (old Mac files), as with Python's universal newlines.
 * Physical line numbers (1-based) are used in messages, counting skipped
 * blank lines. A UTF-8 byte order mark at the start is skipped. Cell text
 * quoted in a message has its control characters escaped (\r, \x01), so a
 * message is one printable line.
 */
#include "nn_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const sl_allocator *A = &sl__default_allocator;

#define SHOWN 40 /* bytes of a cell's text shown in a message */

static void *xalloc(size_t n) { return A->alloc(n ? n : 1, A->ud); }
static void xfree(void *p) { A->free(p, A->ud); }

typedef struct parser {
    const char *path;
    char *err;
    size_t errlen;
    int line; /* current physical line, 1-based */
} parser;

static int failf(parser *ps, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int failf(parser *ps, int status, const char *fmt, ...) {
    if (ps->err && ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

static int read_file(parser *ps, char **out, size_t *size) {
    int opened, err;
    int rc = sl__read_file(ps->path, A, (unsigned char **)out, size, &opened, &err);
    if (rc == SL_ENOMEM) return failf(ps, rc, "%s: out of memory reading the file", ps->path);
    if (rc != SL_OK)
        return failf(ps, rc, "%s: cannot %s: %s", ps->path, opened ? "read" : "open",
                     strerror(err));
    return SL_OK;
}

/* Split one line [s, e) into fields: each field's text, unquoted and trimmed,
 * is written NUL-terminated into scratch and pointed at by fields[]. Returns
 * the number of fields (fields beyond maxf are counted, not stored) or a
 * negative status. */
static int split(parser *ps, const char *s, const char *e, char *scratch, char **fields, int maxf) {
    int nf = 0;
    const char *p = s;
    char *o = scratch;
    for (;;) {
        while (p < e && (*p == ' ' || *p == '\t')) p++;
        char *start = o;
        if (p < e && *p == '"') {
            p++;
            for (;;) {
                if (p >= e)
                    return failf(ps, SL_EFORMAT, "%s:%d: column %d: unterminated quote", ps->path,
                                 ps->line, nf + 1);
                if (*p == '"') {
                    if (p + 1 < e && p[1] == '"') {
                        *o++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *o++ = *p++;
            }
            while (p < e && (*p == ' ' || *p == '\t')) p++;
            if (p < e && *p != ',')
                return failf(ps, SL_EFORMAT, "%s:%d: column %d: text after the closing quote",
                             ps->path, ps->line, nf + 1);
        } else {
            while (p < e && *p != ',') *o++ = *p++;
            while (o > start && (o[-1] == ' ' || o[-1] == '\t')) o--;
        }
        if (memchr(start, '\0', (size_t)(o - start)))
            return failf(ps, SL_EFORMAT, "%s:%d: column %d: NUL byte in the field", ps->path,
                         ps->line, nf + 1);
        *o++ = '\0';
        if (nf < maxf) fields[nf] = start;
        if (nf == INT_MAX)
            return failf(ps, SL_EFORMAT, "%s:%d: too many fields", ps->path, ps->line);
        nf++;
        if (p >= e) break;
        p++; /* the comma */
    }
    return nf;
}

/* At most max bytes of s for a message, between quotes, with control
 * characters, '"' and '\' escaped as in C, and "..." after a longer s. out
 * has 4*max + 8 bytes (each byte escaped as \xNN, the quotes, "...", NUL). */
static const char *quoted(char *out, const char *s, size_t max) {
    static const char named[] = "\r\n\t\"\\", letter[] = "rnt\"\\";
    char *o = out;
    size_t i = 0;
    *o++ = '"';
    for (; s[i] && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *k = strchr(named, c);
        if (k) {
            *o++ = '\\';
            *o++ = letter[k - named];
        } else if (c < 0x20 || c == 0x7F) {
            o += sprintf(o, "\\x%02x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    strcpy(o, s[i] ? "..." : "");
    return out;
}

/* " (\"name\")" for column j of a table with a header, else "". */
static const char *col_name(char *out, const sl_csv *t, int j) {
    char text[4 * SHOWN + 8];
    if (!t->header) return "";
    sprintf(out, " (%s)", quoted(text, t->header[j], SHOWN));
    return out;
}

static bool blank(const char *s, const char *e) {
    for (; s < e; s++)
        if (*s != ' ' && *s != '\t') return false;
    return true;
}

void sl_csv_free(sl_csv *csv) {
    if (!csv) return;
    if (csv->header)
        for (int j = 0; j < csv->cols; j++) xfree(csv->header[j]);
    xfree(csv->header);
    xfree(csv->data);
    memset(csv, 0, sizeof *csv);
}

int sl_csv_col(const sl_csv *csv, const char *name) {
    if (!csv || !csv->header || !name) return -1;
    for (int j = 0; j < csv->cols; j++)
        if (strcmp(csv->header[j], name) == 0) return j;
    return -1;
}

int sl_csv_read(const char *path, int has_header, sl_csv *out, char *err, size_t errlen) {
    parser ps = {.path = path ? path : "(null)", .err = err, .errlen = errlen};
    if (err && errlen) err[0] = '\0';
    if (!out) return failf(&ps, SL_EARG, "sl_csv_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return failf(&ps, SL_EARG, "sl_csv_read: path is NULL");

    char *text = NULL;
    size_t size = 0;
    int rc = read_file(&ps, &text, &size);
    if (rc != SL_OK) return rc;
    char *scratch = xalloc(size + 1);
    char **fields = NULL;
    sl_csv t = {0};
    size_t cap = 0;
    int cols = -1, first_line = 0;
    if (!scratch) {
        rc = failf(&ps, SL_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    const char *p = text, *end = text + size;
    if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    for (ps.line = 1; p < end; ps.line++) {
        const char *e = p, *next; /* the line is [p, e); it ends at \n, \r\n or \r */
        while (e < end && *e != '\n' && *e != '\r') e++;
        next = e;
        if (next < end && *next++ == '\r' && next < end && *next == '\n') next++;
        if (blank(p, e)) {
            p = next;
            continue;
        }
        int nf = split(&ps, p, e, scratch, fields, cols < 0 ? 0 : cols);
        if (nf < 0) {
            rc = nf;
            goto done;
        }
        if (cols < 0) { /* the first line fixes the width */
            cols = nf;
            first_line = ps.line;
            fields = xalloc((size_t)cols * sizeof *fields);
            if (!fields) {
                rc = failf(&ps, SL_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            nf = split(&ps, p, e, scratch, fields, cols);
            if (has_header) {
                t.header = xalloc((size_t)cols * sizeof *t.header);
                if (!t.header) {
                    rc = failf(&ps, SL_ENOMEM, "%s: out of memory", path);
                    goto done;
                }
                memset(t.header, 0, (size_t)cols * sizeof *t.header);
                t.cols = cols; /* so sl_csv_free releases the names made so far */
                for (int j = 0; j < cols; j++) {
                    size_t len = strlen(fields[j]);
                    t.header[j] = xalloc(len + 1);
                    if (!t.header[j]) {
                        rc = failf(&ps, SL_ENOMEM, "%s: out of memory", path);
                        goto done;
                    }
                    memcpy(t.header[j], fields[j], len + 1);
                }
                p = next;
                continue;
            }
        }
        if (nf != cols) {
            rc = failf(&ps, SL_EFORMAT, "%s:%d: %d field%s, expected %d as on line %d (ragged row)",
                       path, ps.line, nf, nf == 1 ? "" : "s", cols, first_line);
            goto done;
        }
        if ((size_t)t.rows * (size_t)cols + (size_t)cols > cap) {
            /* grow the table geometrically from one row: a wide table of few
             * rows never reserves more than twice what it holds */
            size_t ncap = cap ? 2 * cap : (size_t)cols;
            if (t.rows == INT_MAX || ncap > SIZE_MAX / sizeof(double)) {
                rc = failf(&ps, SL_ENOMEM, "%s:%d: too many rows", path, ps.line);
                goto done;
            }
            double *bigger = xalloc(ncap * sizeof(double));
            if (!bigger) {
                rc = failf(&ps, SL_ENOMEM, "%s:%d: out of memory", path, ps.line);
                goto done;
            }
            if (t.data) memcpy(bigger, t.data, (size_t)t.rows * (size_t)cols * sizeof(double));
            xfree(t.data);
            t.data = bigger;
            cap = ncap;
        }
        double *row = t.data + (size_t)t.rows * (size_t)cols;
        for (int j = 0; j < cols; j++) {
            const char *f = fields[j];
            char *stop = NULL;
            char col[4 * SHOWN + 16], shown[4 * SHOWN + 8];
            if (!f[0]) {
                rc = failf(&ps, SL_EFORMAT, "%s:%d: column %d%s: empty field", path, ps.line, j + 1,
                           col_name(col, &t, j));
                goto done;
            }
            row[j] = strtod(f, &stop);
            if (stop == f || *stop != '\0') {
                rc = failf(&ps, SL_EFORMAT, "%s:%d: column %d%s: %s is not a number", path, ps.line,
                           j + 1, col_name(col, &t, j), quoted(shown, f, SHOWN));
                goto done;
            }
        }
        t.rows++;
        p = next;
    }
    if (cols < 0) {
        rc = failf(&ps, SL_EFORMAT, "%s: empty file (no rows)", path);
        goto done;
    }
    if (t.rows == 0) {
        rc = failf(&ps, SL_EFORMAT, "%s: no data rows after the header on line %d", path,
                   first_line);
        goto done;
    }
    t.cols = cols;
    *out = t;
    rc = SL_OK;
done:
    if (rc != SL_OK) sl_csv_free(&t);
    xfree(fields);
    xfree(scratch);
    xfree(text);
    return rc;
}
