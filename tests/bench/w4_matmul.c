/*
 * W4 "matmul-peak" (WORKLOADS.md#W4): C = A B, square, n = 256 and 1024,
 * A then B filled row-major with sym() from splitmix64 seeded with n.
 *
 * peer=slope: one call is what a user pays for one product on a tape:
 * sl_tape_clear, two sl_use leaves over the matrices (no copy) and
 * sl_matmul, which records the node and computes its value. n = 256: 20
 * calls per sample; n = 1024: 1 call. 1 warm-up, 7 samples, median.
 * gflops = 2 n^3 / t. CHECK trace_C.
 *
 * --quick: n = 256 only, one sample of one call.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

static int run_n(const bench_opts *o, int n, double trace_ref) {
    char wl[64];
    snprintf(wl, sizeof wl, "W4-matmul-%d", n);
    const size_t nn = (size_t)n * (size_t)n;
    sl_params *ps = sl_params_new();
    sl_tape *t = sl_tape_new();
    const int dims[2] = {n, n};
    sl_param *A = ps ? sl_param_new(ps, "A", 2, dims, NULL) : NULL;
    sl_param *Bm = ps ? sl_param_new(ps, "B", 2, dims, NULL) : NULL;
    if (!t || !A || !Bm) {
        bench_fail(wl, "out of memory");
        sl_params_free(ps);
        sl_tape_free(t);
        return 1;
    }
    sl_rng r;
    sl_rng_seed(&r, (uint64_t)n);
    double *a = sl_param_value(A), *b = sl_param_value(Bm);
    for (size_t i = 0; i < nn; i++) a[i] = bench_sym(&r);
    for (size_t i = 0; i < nn; i++) b[i] = bench_sym(&r);

    const int samples = o->quick ? 1 : 7, warm = o->quick ? 0 : 1;
    const int inner = o->quick ? 1 : (n < 512 ? 20 : 1);
    double ts[7];
    sl_var *c = NULL;
    for (int s = -warm; s < samples; s++) {
        const double t0 = bench_now();
        for (int i = 0; i < inner; i++) {
            sl_tape_clear(t);
            c = sl_matmul(t, sl_use(t, A), sl_use(t, Bm));
        }
        if (s >= 0) ts[s] = (bench_now() - t0) / inner;
    }
    int rc = 0;
    if (sl_tape_status(t) != SL_OK) {
        bench_fail(wl, "slope: %s", sl_tape_error(t));
        rc = 1;
    } else {
        const double tm = bench_median(ts, samples);
        bench_result(o, wl, "slope", "gflops", 2.0 * n * n * (double)n / tm / 1e9, "GFLOP/s");
        bench_result(o, wl, "slope", "ms_per_matmul", tm * 1e3, "ms");
        const double *cv = sl_value(c);
        double tr = 0;
        for (int i = 0; i < n; i++) tr += cv[(size_t)i * n + i];
        bench_check_rel(wl, "slope", "trace_C", tr, trace_ref, 1e-12);
    }
    sl_tape_free(t);
    sl_params_free(ps);
    return rc;
}

int bench_w4(const bench_opts *o) {
    int rc = run_n(o, 256, 146.7159166211360);
    if (!o->quick) rc |= run_n(o, 1024, 373.1174315670613);
    return rc;
}
