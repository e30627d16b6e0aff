/*
 * W1 "op-overhead" (WORKLOADS.md#W1): a chain of N = 10000 scalar ops,
 * v_{k+1} = op_{k%5}(v_k) with + 0.5, * 1.5, sigmoid, tanh, relu, from
 * x0 = 0.3; backward from y = v_N.
 *
 * slope uses RANK-0 tensors (sl_scalar): x0 is a rank-0 leaf with SL_GRAD,
 * the constants 0.5 and 1.5 are two rank-0 leaves recorded once per tape
 * (so the tape holds N + 3 nodes), and every op is one node.
 *
 * Metrics, ns per logical op (time / N):
 *   record mode (define-by-run, a fresh graph per repeat: sl_tape_clear,
 *   record, sl_backward - the arena is reused, as a training loop would):
 *     ns_per_op_fwd_record, ns_per_op_bwd, ns_per_op_total (median of sums)
 *   replay mode (recorded once; each repeat is sl_forward + sl_backward):
 *     ns_per_op_replay_fwd, ns_per_op_replay_bwd and ns_per_op_gradient_replay
 *     (their sum; the name ADOL-C's gradient() figure has, so they sit together)
 *   tape_bytes_per_node: sl_tape_bytes / sl_tape_size after record + backward
 *   (values and gradients included: everything the tape holds).
 * In-process reference: the hand-coded adjoint of peers/w1_op_overhead_plain.c
 * (peer=c-handcoded-adjoint-inproc), and slope's ratios to it.
 * Repeats: 1 warm-up, then 7 (the W1 protocol).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define WL "W1-op-overhead"
#define N_OPS 10000
static const double X0 = 0.3;

/* Record the chain of n ops on t from x. */
static sl_var *chain(sl_tape *t, sl_var *x, int n) {
    sl_var *c05 = sl_scalar(t, 0.5, 0), *c15 = sl_scalar(t, 1.5, 0);
    sl_var *v = x;
    for (int k = 0; k < n; k++) {
        switch (k % 5) {
        case 0:
            v = sl_add(t, v, c05);
            break;
        case 1:
            v = sl_mul(t, v, c15);
            break;
        case 2:
            v = sl_sigmoid(t, v);
            break;
        case 3:
            v = sl_tanh(t, v);
            break;
        default:
            v = sl_relu(t, v);
            break;
        }
    }
    return v;
}

/* The peers' hand-coded adjoint (w1_op_overhead_plain.c), compiled here. */
static double adjoint(double x, int n, double *v, double *y) {
    v[0] = x;
    for (int k = 0; k < n; k++) {
        double a = v[k], r;
        switch (k % 5) {
        case 0:
            r = a + 0.5;
            break;
        case 1:
            r = a * 1.5;
            break;
        case 2:
            r = 1.0 / (1.0 + exp(-a));
            break;
        case 3:
            r = tanh(a);
            break;
        default:
            r = a > 0.0 ? a : 0.0;
            break;
        }
        v[k + 1] = r;
    }
    *y = v[n];
    double g = 1.0;
    for (int k = n - 1; k >= 0; k--) {
        double out = v[k + 1];
        switch (k % 5) {
        case 0:
            break;
        case 1:
            g *= 1.5;
            break;
        case 2:
            g *= out * (1.0 - out);
            break;
        case 3:
            g *= 1.0 - out * out;
            break;
        default:
            g = v[k] > 0.0 ? g : 0.0;
            break;
        }
    }
    return g;
}

static int tape_error(sl_tape *t, const char *what) {
    if (sl_tape_status(t) == SL_OK) return 0;
    bench_fail(WL, "%s: %s", what, sl_tape_error(t));
    return 1;
}

int bench_w1(const bench_opts *o) {
    const int reps = o->quick ? 1 : 7, warm = o->quick ? 0 : 1;
    const int n = N_OPS;
    sl_tape *t = sl_tape_new();
    if (!t) {
        bench_fail(WL, "out of memory");
        return 1;
    }
    printf("# W1: slope records rank-0 tensors (sl_scalar), one node per op, N + 3 nodes\n");
    double fw[7], bw[7], tot[7];
    sl_var *x = NULL, *y = NULL;
    /* ---- record mode: a fresh graph per repeat */
    for (int r = -warm; r < reps; r++) {
        double t0 = bench_now();
        sl_tape_clear(t);
        x = sl_scalar(t, X0, SL_GRAD);
        y = chain(t, x, n);
        double t1 = bench_now();
        sl_backward(t, y);
        double t2 = bench_now();
        if (r >= 0) fw[r] = t1 - t0, bw[r] = t2 - t1, tot[r] = t2 - t0;
    }
    if (tape_error(t, "record")) goto fail;
    bench_result(o, WL, "slope", "ns_per_op_fwd_record", bench_median(fw, reps) / n * 1e9, "ns");
    bench_result(o, WL, "slope", "ns_per_op_bwd", bench_median(bw, reps) / n * 1e9, "ns");
    const double t_total = bench_median(tot, reps);
    bench_result(o, WL, "slope", "ns_per_op_total", t_total / n * 1e9, "ns");
    bench_result(o, WL, "slope", "tape_bytes_per_node",
                 (double)sl_tape_bytes(t) / (double)sl_tape_size(t), "bytes");
    bench_check_abs(WL, "slope", "tape_nodes", (double)sl_tape_size(t), n + 3, 0);
    bench_check_rel(WL, "slope", "y_final", sl_item(y), 0.69481167712215008, 1e-15);
    /* dy/dx0 underflows to exactly 0 over 10000 ops (WORKLOADS.md) */
    bench_check_abs(WL, "slope", "dy_dx0", sl_grad(x)[0], 0.0, 0.0);

    /* ---- replay mode: record once, then sl_forward + sl_backward per repeat */
    double rf[7], rb[7], rt[7];
    sl_tape_clear(t);
    x = sl_scalar(t, X0, SL_GRAD);
    y = chain(t, x, n);
    if (tape_error(t, "record for replay")) goto fail;
    for (int r = -warm - 1; r < reps; r++) { /* the first sweep allocates the gradients */
        double t0 = bench_now();
        sl_forward(t);
        double t1 = bench_now();
        sl_backward(t, y);
        double t2 = bench_now();
        if (r >= 0) rf[r] = t1 - t0, rb[r] = t2 - t1, rt[r] = t2 - t0;
    }
    if (tape_error(t, "replay")) goto fail;
    bench_result(o, WL, "slope", "ns_per_op_replay_fwd", bench_median(rf, reps) / n * 1e9, "ns");
    bench_result(o, WL, "slope", "ns_per_op_replay_bwd", bench_median(rb, reps) / n * 1e9, "ns");
    const double t_replay = bench_median(rt, reps);
    bench_result(o, WL, "slope", "ns_per_op_gradient_replay", t_replay / n * 1e9, "ns");
    bench_check_rel(WL, "slope", "replay_y_final", sl_item(y), 0.69481167712215008, 1e-15);

    /* ---- in-process reference: the hand-coded adjoint (as the C peer: 200 calls per sample) */
    double *v = malloc(sizeof(double) * (size_t)(n + 1));
    if (!v) {
        bench_fail(WL, "out of memory");
        goto fail;
    }
    const int samples = o->quick ? 1 : 9, inner = o->quick ? 1 : 200;
    double ta[9], yv = 0;
    volatile double sink = 0;
    volatile double x0v = X0;
    for (int s = 0; s < samples; s++) {
        double t0 = bench_now();
        for (int i = 0; i < inner; i++) sink += adjoint(x0v, n, v, &yv);
        ta[s] = (bench_now() - t0) / inner;
    }
    (void)sink;
    const double t_adj = bench_median(ta, samples);
    bench_result(o, WL, "c-handcoded-adjoint-inproc", "ns_per_op_total", t_adj / n * 1e9, "ns");
    bench_result(o, WL, "slope", "ratio_total_over_c_adjoint", t_total / t_adj, "x");
    bench_result(o, WL, "slope", "ratio_gradient_replay_over_c_adjoint", t_replay / t_adj, "x");

    /* ---- the gradient over the first 25 ops, by recording and by replay */
    const double y25_ref = 0.69480756703076774, g25_ref = 1.3581656524143377e-05;
    sl_tape_clear(t);
    x = sl_scalar(t, X0, SL_GRAD);
    y = chain(t, x, 25);
    sl_backward(t, y);
    if (tape_error(t, "25 ops")) goto fail_v;
    bench_check_rel(WL, "slope", "y_after_25_ops", sl_item(y), y25_ref, 1e-15);
    bench_check_rel(WL, "slope", "dy_dx0_after_25_ops", sl_grad(x)[0], g25_ref, 1e-14);
    sl_leaf_data(x)[0] = 1.0; /* replay elsewhere, then back at x0 */
    sl_forward(t);
    sl_leaf_data(x)[0] = X0;
    sl_forward(t);
    sl_grad_data(x)[0] = 0.0; /* leaf gradients accumulate: start from zero */
    sl_backward(t, y);
    if (tape_error(t, "25 ops replay")) goto fail_v;
    bench_check_rel(WL, "slope", "replay_dy_dx0_after_25_ops", sl_grad(x)[0], g25_ref, 1e-14);
    free(v);
    sl_tape_free(t);
    return 0;
fail_v:
    free(v);
fail:
    sl_tape_free(t);
    return 1;
}
