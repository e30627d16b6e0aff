/*
 * bench_util.c - clock, medians, RESULT/CHECK lines with validation, CSV.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_result(const bench_opts *o, const char *wl, const char *peer, const char *metric,
                  double value, const char *unit) {
    printf("RESULT workload=%s peer=%s threads=%d metric=%s value=%.6g unit=%s\n", wl, peer,
           o->threads, metric, value, unit);
    fflush(stdout);
}

void bench_check(const char *wl, const char *peer, const char *key, double v) {
    printf("CHECK workload=%s peer=%s %s=%.17g\n", wl, peer, key, v);
    fflush(stdout);
}

static void mismatch(const char *wl, const char *peer, const char *key, double v, const char *fmt,
                     ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static void mismatch(const char *wl, const char *peer, const char *key, double v, const char *fmt,
                     ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "slope-bench: CHECK FAILED workload=%s peer=%s %s=%.17g: ", wl, peer, key, v);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

void bench_check_rel(const char *wl, const char *peer, const char *key, double v, double expect,
                     double rtol) {
    bench_check(wl, peer, key, v);
    const double err = fabs(v - expect);
    if (!(err <= rtol * fabs(expect)))
        mismatch(wl, peer, key, v, "expected %.17g (relative error %.3g > %.3g)", expect,
                 expect != 0 ? err / fabs(expect) : err, rtol);
}

void bench_check_abs(const char *wl, const char *peer, const char *key, double v, double expect,
                     double atol) {
    bench_check(wl, peer, key, v);
    if (!(fabs(v - expect) <= atol))
        mismatch(wl, peer, key, v, "expected %.17g (absolute error %.3g > %.3g)", expect,
                 fabs(v - expect), atol);
}

void bench_check_le(const char *wl, const char *peer, const char *key, double v, double bound) {
    bench_check(wl, peer, key, v);
    if (!(v <= bound)) mismatch(wl, peer, key, v, "expected at most %.3g", bound);
}

void bench_check_oneof(const char *wl, const char *peer, const char *key, double v,
                       const double *allowed, int n) {
    bench_check(wl, peer, key, v);
    for (int i = 0; i < n; i++)
        if (v == allowed[i]) return;
    char buf[256];
    int k = 0;
    for (int i = 0; i < n && k < (int)sizeof buf - 32; i++)
        k += snprintf(buf + k, sizeof buf - (size_t)k, i ? " or %.17g" : "%.17g", allowed[i]);
    mismatch(wl, peer, key, v, "expected %s", buf);
}

void bench_fail(const char *wl, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "slope-bench: %s: ", wl);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

int bench_failures(void) { return failures; }

const char *bench_data_path(const bench_opts *o, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", o->data_dir, name);
    return buf;
}

int bench_read_csv(const char *wl, const char *path, int skip, int ncols, double *out,
                   int max_rows) {
    FILE *f = fopen(path, "r");
    if (!f) {
        bench_fail(wl, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int rows = 0, lineno = 1;
    if (!fgets(line, sizeof line, f)) {
        bench_fail(wl, "%s: empty file", path);
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '\n' || line[0] == '\0') continue;
        if (rows == max_rows) {
            bench_fail(wl, "%s:%d: more than %d rows", path, lineno, max_rows);
            fclose(f);
            return -1;
        }
        char *p = line;
        for (int c = 0; c < skip; c++) {
            p = strchr(p, ',');
            if (!p) break;
            p++;
        }
        for (int c = 0; p && c < ncols; c++) {
            char *end;
            errno = 0;
            double v = strtod(p, &end);
            if (end == p || errno) {
                p = NULL;
                break;
            }
            out[(size_t)rows * (size_t)ncols + (size_t)c] = v;
            p = end;
            if (c + 1 < ncols) p = *p == ',' ? p + 1 : NULL;
        }
        if (!p) {
            bench_fail(wl, "%s:%d: expected %d numeric columns after %d text column(s)", path,
                       lineno, ncols, skip);
            fclose(f);
            return -1;
        }
        rows++;
    }
    fclose(f);
    return rows;
}

double bench_sym(sl_rng *r) { return 2.0 * sl_rng_uniform(r) - 1.0; }
