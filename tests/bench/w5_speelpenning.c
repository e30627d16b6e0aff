/*
 * W5 "speelpenning" (WORKLOADS.md#W5): f(x) = prod_{i<n} x_i with
 * x_i = (i+1)/(i+2); f = 1/(n+1) and df/dx_i = f/x_i in closed form.
 *
 * slope records it as a SCALAR tape, for n = 10000
 * (W5-speelpenning-scalar-n10000) and n = 100000 (W5-speelpenning-n100000,
 * where ADOL-C tapes scalars too): n rank-0 leaves with SL_GRAD (ADOL-C's
 * independents, torch's leaf tensors), then y = x_0 and y = y * x_i for
 * i = 1..n-1 (the torch peer's loop): 2n - 1 nodes.
 *
 * Metrics (seconds; the names of the ADOL-C peer where they mean the same):
 *   tape_record_s            sl_tape_clear + the leaves + the n-1 products
 *   reverse_after_record_s   sl_backward right after
 *   function_replay_s        sl_forward on the recorded tape
 *   gradient_replay_s        sl_forward + sl_backward
 *   ratio_record_plus_reverse_over_plain, ratio_gradient_over_plain,
 *   ratio_gradient_over_function_replay, and for n = 10000
 *   ns_per_mul_record_plus_backward = (record + backward) / (n - 1).
 * The plain C loop `y = 1; for i: y *= x[i]` is measured in this process
 * (peer=c-plain-inproc, plain_function_s; >= 2e7/n calls per sample), so the
 * ratios come from one process; so is peer=c-minimal-tape's tape_record_s,
 * the bound on recording through a call per operation (below). Repeats:
 * 1 warm-up, 7, median.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double plain_f(const double *x, int n) {
    double y = 1.0;
    for (int i = 0; i < n; i++) y *= x[i];
    return y;
}

/* peer=c-minimal-tape: the least an eager tape can do per node, as a
 * bound on recording through one call per operation: a node is its value,
 * its gradient and its inputs, stored into preallocated memory (no checks,
 * no node list, no growth) by a function the compiler may not inline or
 * analyse across, which is what a library's sl_scalar / sl_mul are to the
 * program calling them. Each product reads its first input's value from
 * the node the previous call has just written. */
typedef struct mnode {
    double val, grad;
    const struct mnode *a, *b;
} mnode;
#if defined(__clang__)
#define OPAQUE __attribute__((noinline))
#else
#define OPAQUE __attribute__((noinline, noipa))
#endif
OPAQUE static mnode *m_leaf(mnode **top, double x) {
    mnode *s = (*top)++;
    s->val = x, s->grad = 0.0, s->a = s->b = NULL;
    return s;
}
OPAQUE static mnode *m_mul(mnode **top, const mnode *a, const mnode *b) {
    mnode *s = (*top)++;
    s->val = a->val * b->val, s->grad = 0.0, s->a = a, s->b = b;
    return s;
}
static const mnode *m_record(mnode *buf, const double *x, int n, const mnode **ms) {
    mnode *top = buf;
    for (int i = 0; i < n; i++) ms[i] = m_leaf(&top, x[i]);
    const mnode *y = ms[0];
    for (int i = 1; i < n; i++) y = m_mul(&top, y, ms[i]);
    return y;
}

static sl_var *record(sl_tape *t, const double *x, int n, sl_var **xs) {
    sl_tape_clear(t);
    for (int i = 0; i < n; i++) xs[i] = sl_scalar(t, x[i], SL_GRAD);
    sl_var *y = xs[0];
    for (int i = 1; i < n; i++) y = sl_mul(t, y, xs[i]);
    return y;
}

/* max relative error of the leaves' gradients against (i+2)/((i+1)(n+1)) */
static double max_rel_err(sl_var **xs, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        const double ex = (i + 2.0) / ((i + 1.0) * (n + 1.0));
        const double e = fabs(sl_grad(xs[i])[0] - ex) / ex;
        m = e > m ? e : m;
    }
    return m;
}

typedef struct refs {
    double f, g0, glast, max_rel; /* the ADOL-C / c-handcoded-adjoint values */
} refs;

static int run_n(const bench_opts *o, const char *wl, int n, const refs *ref) {
    double *x = malloc(sizeof(double) * (size_t)n);
    sl_var **xs = malloc(sizeof(sl_var *) * (size_t)n);
    sl_tape *t = sl_tape_new();
    if (!x || !xs || !t) {
        bench_fail(wl, "out of memory");
        free(x), free(xs), sl_tape_free(t);
        return 1;
    }
    for (int i = 0; i < n; i++) x[i] = (i + 1.0) / (i + 2.0);
    const int reps = o->quick ? 1 : 7, warm = o->quick ? 0 : 1;

    /* plain C loop, in this process */
    double tp[7];
    int inner = o->quick ? 1 : (int)(2e7 / n);
    if (inner < 1) inner = 1;
    volatile double sink = 0;
    for (int r = 0; r < reps; r++) {
        const double t0 = bench_now();
        for (int k = 0; k < inner; k++) sink += plain_f(x, n);
        tp[r] = (bench_now() - t0) / inner;
    }
    (void)sink;
    const double Tp = bench_median(tp, reps);

    /* the minimal tape's recording, in this process too */
    double tm[7];
    mnode *mbuf = malloc(sizeof(mnode) * (2 * (size_t)n - 1));
    const mnode **ms = malloc(sizeof(mnode *) * (size_t)n);
    if (!mbuf || !ms) {
        bench_fail(wl, "out of memory");
        free(mbuf), free(ms);
        goto fail;
    }
    const mnode *my = NULL;
    for (int r = -warm; r < reps; r++) {
        const double t0 = bench_now();
        my = m_record(mbuf, x, n, ms);
        if (r >= 0) tm[r] = bench_now() - t0;
    }
    const double Tm = bench_median(tm, reps), f_min = my->val;
    free(mbuf), free(ms);

    /* record + reverse */
    double trec[7], trev[7], tsum[7];
    sl_var *y = NULL;
    for (int r = -warm; r < reps; r++) {
        const double t0 = bench_now();
        y = record(t, x, n, xs);
        const double t1 = bench_now();
        sl_backward(t, y);
        const double t2 = bench_now();
        if (r >= 0) trec[r] = t1 - t0, trev[r] = t2 - t1, tsum[r] = t2 - t0;
    }
    if (sl_tape_status(t) != SL_OK) {
        bench_fail(wl, "slope: %s", sl_tape_error(t));
        goto fail;
    }
    const double f_rec = sl_item(y), g0_rec = sl_grad(xs[0])[0], gl_rec = sl_grad(xs[n - 1])[0];
    const double err_rec = max_rel_err(xs, n);
    const double bytes_per_node = (double)sl_tape_bytes(t) / (double)sl_tape_size(t);
    const double nodes = (double)sl_tape_size(t);

    /* replay on the tape just recorded (its gradients exist already) */
    double tf[7], tg[7];
    for (int r = -warm; r < reps; r++) {
        double t0 = bench_now();
        sl_forward(t);
        if (r >= 0) tf[r] = bench_now() - t0;
    }
    for (int r = -warm; r < reps; r++) {
        double t0 = bench_now();
        sl_forward(t);
        sl_backward(t, y);
        if (r >= 0) tg[r] = bench_now() - t0;
    }
    /* a clean replayed gradient for the checks (leaf gradients accumulate) */
    for (int i = 0; i < n; i++) sl_grad_data(xs[i])[0] = 0.0;
    sl_forward(t);
    sl_backward(t, y);
    if (sl_tape_status(t) != SL_OK) {
        bench_fail(wl, "slope replay: %s", sl_tape_error(t));
        goto fail;
    }
    const double Trec = bench_median(trec, reps), Trev = bench_median(trev, reps);
    const double Tsum = bench_median(tsum, reps);
    const double Tf = bench_median(tf, reps), Tg = bench_median(tg, reps);
    bench_result(o, wl, "c-plain-inproc", "plain_function_s", Tp, "s");
    bench_result(o, wl, "c-minimal-tape", "tape_record_s", Tm, "s");
    bench_result(o, wl, "c-minimal-tape", "ratio_record_over_plain", Tm / Tp, "x");
    bench_result(o, wl, "slope", "tape_record_s", Trec, "s");
    bench_result(o, wl, "slope", "reverse_after_record_s", Trev, "s");
    bench_result(o, wl, "slope", "function_replay_s", Tf, "s");
    bench_result(o, wl, "slope", "gradient_replay_s", Tg, "s");
    bench_result(o, wl, "slope", "ratio_record_plus_reverse_over_plain", Tsum / Tp, "x");
    bench_result(o, wl, "slope", "ratio_gradient_over_plain", Tg / Tp, "x");
    bench_result(o, wl, "slope", "ratio_gradient_over_function_replay", Tg / Tf, "x");
    if (n <= 10000)
        bench_result(o, wl, "slope", "ns_per_mul_record_plus_backward", Tsum / (n - 1) * 1e9, "ns");
    bench_result(o, wl, "slope", "tape_bytes_per_node", bytes_per_node, "bytes");

    bench_check_rel(wl, "c-plain-inproc", "f", plain_f(x, n), ref->f, 0);
    bench_check_rel(wl, "c-minimal-tape", "f", f_min, ref->f, 0);
    bench_check_rel(wl, "slope", "f", f_rec, ref->f, 0);
    bench_check_rel(wl, "slope", "g0", g0_rec, ref->g0, 0);
    bench_check_rel(wl, "slope", "g_last", gl_rec, ref->glast, 0);
    bench_check_le(wl, "slope", "max_rel_err_vs_closed_form", err_rec, ref->max_rel);
    bench_check_abs(wl, "slope", "tape_nodes", nodes, 2.0 * n - 1, 0);
    bench_check_rel(wl, "slope", "replay_f", sl_item(y), ref->f, 0);
    bench_check_le(wl, "slope", "replay_max_rel_err_vs_closed_form", max_rel_err(xs, n),
                   ref->max_rel);
    free(x), free(xs), sl_tape_free(t);
    return 0;
fail:
    free(x), free(xs), sl_tape_free(t);
    return 1;
}

int bench_w5(const bench_opts *o) {
    /* f, g0, g_last: the sequential-product values every exact peer prints
     * (c-plain, c-handcoded-adjoint and ADOL-C agree bit for bit); the bound
     * on the gradient error is the one WORKLOADS.md gives for n = 1e5. */
    static const refs r4 = {9.9990000999899948e-05, 0.00019998000199978089, 9.9999999999999937e-05,
                            2.4e-13};
    static const refs r5 = {9.9999000009998671e-06, 1.999980000199595e-05, 9.9999999999998772e-06,
                            2.4e-13};
    int rc = run_n(o, "W5-speelpenning-scalar-n10000", 10000, &r4);
    rc |= run_n(o, "W5-speelpenning-n100000", 100000, &r5);
    return rc;
}
