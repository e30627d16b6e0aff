/*
 * bench.h - what slope-bench's workload files share: options, the clock and
 * medians, the RESULT/CHECK lines of ../shared/bench/WORKLOADS.md, and the
 * CSV reader for the data in tests/bench/data/.
 *
 * Output format (one line each, as the peer programs print them):
 *   RESULT workload=<W> peer=<p> threads=<n> metric=<m> value=<x> unit=<u>
 *   CHECK workload=<W> peer=<p> <key>=<value>
 * A CHECK with a reference value is validated; a mismatch is reported on
 * stderr and makes slope-bench exit non-zero.
 */
#ifndef SLOPE_BENCH_H
#define SLOPE_BENCH_H

#include "slope.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bench_opts {
    int threads;          /* --threads N: only reported in the RESULT lines */
    int quick;            /* --quick: tiny repeat counts (CI smoke test of the CHECKs) */
    const char *data_dir; /* the CSV files (default: the source tree's tests/bench/data) */
} bench_opts;

/* ---- clock and statistics */
double bench_now(void);                /* CLOCK_MONOTONIC, seconds */
double bench_median(double *v, int n); /* sorts v in place */

/* ---- output */
void bench_result(const bench_opts *o, const char *wl, const char *peer, const char *metric,
                  double value, const char *unit);
/* An informational CHECK (no reference value). */
void bench_check(const char *wl, const char *peer, const char *key, double v);
/* Validated CHECKs: |v - expect| <= rtol*|expect| (rel), <= atol (abs), v <= bound (le). */
void bench_check_rel(const char *wl, const char *peer, const char *key, double v, double expect,
                     double rtol);
void bench_check_abs(const char *wl, const char *peer, const char *key, double v, double expect,
                     double atol);
void bench_check_le(const char *wl, const char *peer, const char *key, double v, double bound);
/* v must equal one of the n values exactly (accuracies: 90.5 or 90.75). */
void bench_check_oneof(const char *wl, const char *peer, const char *key, double v,
                       const double *allowed, int n);
/* Report a failure that is not a CHECK (an engine error, a missing file). */
void bench_fail(const char *wl, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int bench_failures(void); /* failed CHECKs and bench_fail calls so far */

/* ---- data */
/* "<data_dir>/<name>" into buf (size cap). */
const char *bench_data_path(const bench_opts *o, const char *name, char *buf, size_t cap);
/* Read a CSV of numbers with a one-line header: up to max_rows rows of ncols
 * values each into out (row-major). Returns the row count, or -1 (and a
 * bench_fail naming the file and line) on error. The first `skip` columns of
 * every row are text and are skipped (planar_init.csv's "name"). */
int bench_read_csv(const char *wl, const char *path, int skip, int ncols, double *out,
                   int max_rows);

/* ---- the portable RNG of WORKLOADS.md (splitmix64; slope's sl_rng is the same) */
double bench_sym(sl_rng *r); /* 2 u - 1 in [-1, 1), exact */

/* ---- the workloads: 0 on success (CHECK failures are counted separately) */
int bench_w1(const bench_opts *o);
int bench_w2(const bench_opts *o);
int bench_w3(const bench_opts *o);
int bench_w4(const bench_opts *o);
int bench_w5(const bench_opts *o);
int bench_w6(const bench_opts *o);

#endif
