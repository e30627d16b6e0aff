/*
 * test_softmax.c - softmax and log_softmax along one axis: values against
 * the closed forms e^x_j / sum_k e^x_k and x_j - log sum_k e^x_k computed
 * here with libm, gradients against the Jacobian-vector formulas written out
 * here, huge logits, every axis form, and the errors for bad axes.
 */
#include "slope.h"

#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef sl_var *(*soft_fn)(sl_tape *, sl_var *, int);

static int close_to(double got, double want, double rtol, double atol) {
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Closed forms along axis ax of a row-major array of shape dims (rank nd):
 * soft[e] = e^x[e] / sum over the axis, logsoft[e] = x[e] - log sum. Plain
 * sums of e^x: fine for the moderate logits used with it. */
static void closed_forms(int nd, const int *dims, int ax, const double *x, double *soft,
                         double *logsoft) {
    size_t outer = 1, inner = 1, len = (size_t)dims[ax];
    for (int i = 0; i < ax; i++) outer *= (size_t)dims[i];
    for (int i = ax + 1; i < nd; i++) inner *= (size_t)dims[i];
    for (size_t p = 0; p < outer; p++)
        for (size_t i = 0; i < inner; i++) {
            double s = 0.0;
            for (size_t j = 0; j < len; j++) s += exp(x[(p * len + j) * inner + i]);
            for (size_t j = 0; j < len; j++) {
                size_t e = (p * len + j) * inner + i;
                soft[e] = exp(x[e]) / s;
                logsoft[e] = x[e] - log(s);
            }
        }
}

Test(softmax, vector_values_pinned) {
    sl_tape *t = sl_tape_new();
    const double x[] = {1.0, 2.0, 3.0};
    int n = 3;
    sl_var *v = sl_input(t, 1, &n, x, 0);
    sl_var *s = sl_softmax(t, v, 0), *ls = sl_log_softmax(t, v, -1);
    cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    /* e^k / (e + e^2 + e^3), by hand: */
    const double want[] = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
    const double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    for (int i = 0; i < 3; i++) {
        cr_expect(close_to(sl_value(s)[i], want[i], 1e-15, 0.0), "softmax[%d] = %.17g", i,
                  sl_value(s)[i]);
        cr_expect(close_to(sl_value(ls)[i], x[i] - lse, 1e-15, 1e-16), "log_softmax[%d] = %.17g", i,
                  sl_value(ls)[i]);
    }
    cr_expect_eq(sl_ndim(s), 1);
    cr_expect_eq(sl_dims(s)[0], 3);
    sl_tape_free(t);
}

/* Every axis form of a few shapes against the closed forms. */
Test(softmax, every_axis_matches_closed_form) {
    static const struct {
        int nd, dims[4], axis;
    } cases[] = {
        {2, {2, 3}, 0},    {2, {2, 3}, 1},     {2, {2, 3}, -1},      {2, {2, 3}, -2},
        {3, {2, 3, 4}, 1}, {3, {2, 3, 4}, -3}, {4, {2, 1, 3, 2}, 2}, {4, {2, 2, 2, 3}, -1},
        {1, {1}, 0},       {2, {4, 1}, 1},
    };
    double x[48], soft[48], logsoft[48];
    for (int i = 0; i < 48; i++) x[i] = sin(1.7 * i) * 3.0; /* distinct, moderate */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int nd = cases[c].nd, *dims = cases[c].dims;
        const int ax = cases[c].axis < 0 ? cases[c].axis + nd : cases[c].axis;
        closed_forms(nd, dims, ax, x, soft, logsoft);
        sl_tape *t = sl_tape_new();
        sl_var *v = sl_input(t, nd, dims, x, 0);
        sl_var *s = sl_softmax(t, v, cases[c].axis), *ls = sl_log_softmax(t, v, cases[c].axis);
        cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
        cr_expect_eq(sl_ndim(s), nd);
        for (int i = 0; i < nd; i++) cr_expect_eq(sl_dims(s)[i], dims[i]);
        for (size_t e = 0; e < sl_numel(v); e++) {
            cr_expect(close_to(sl_value(s)[e], soft[e], 1e-14, 1e-17),
                      "case %zu: softmax[%zu] = %.17g, want %.17g", c, e, sl_value(s)[e], soft[e]);
            cr_expect(close_to(sl_value(ls)[e], logsoft[e], 1e-14, 1e-15),
                      "case %zu: log_softmax[%zu] = %.17g, want %.17g", c, e, sl_value(ls)[e],
                      logsoft[e]);
        }
        sl_tape_free(t);
    }
}

/* y = sum(w * f(x)) has dy/dx = J^T w:
 *   softmax:     dx_j = a_j (w_j - sum_k w_k a_k)
 *   log_softmax: dx_j = w_j - a_j sum_k w_k   (a = softmax) */
Test(softmax, gradients_match_jacobian_formulas) {
    const int dims[2] = {2, 4};
    const double x[8] = {0.3, -1.2, 2.0, 0.7, 1.1, 1.1, -0.4, 0.0};
    const double w[8] = {1.0, -2.0, 0.5, 3.0, -1.0, 0.25, 2.0, -0.5};
    for (int axis = -2; axis <= 1; axis++) {
        const int ax = axis < 0 ? axis + 2 : axis;
        double soft[8], logsoft[8], want_s[8], want_l[8];
        closed_forms(2, dims, ax, x, soft, logsoft);
        /* lines along ax: (outer, len, inner) */
        size_t len = (size_t)dims[ax], inner = ax == 0 ? 4 : 1, outer = ax == 0 ? 1 : 2;
        for (size_t p = 0; p < outer; p++)
            for (size_t i = 0; i < inner; i++) {
                double dot = 0.0, ws = 0.0;
                for (size_t j = 0; j < len; j++) {
                    size_t e = (p * len + j) * inner + i;
                    dot += w[e] * soft[e];
                    ws += w[e];
                }
                for (size_t j = 0; j < len; j++) {
                    size_t e = (p * len + j) * inner + i;
                    want_s[e] = soft[e] * (w[e] - dot);
                    want_l[e] = w[e] - soft[e] * ws;
                }
            }
        soft_fn fs[2] = {sl_softmax, sl_log_softmax};
        const double *wants[2] = {want_s, want_l};
        for (int f = 0; f < 2; f++) {
            sl_tape *t = sl_tape_new();
            sl_var *v = sl_input(t, 2, dims, x, SL_GRAD);
            sl_var *wv = sl_input(t, 2, dims, w, 0);
            sl_var *y = sl_sum(t, sl_mul(t, wv, fs[f](t, v, axis)), SL_ALL, 0);
            cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
            for (int e = 0; e < 8; e++)
                cr_expect(close_to(sl_grad(v)[e], wants[f][e], 1e-13, 1e-15),
                          "%s axis %d: dx[%d] = %.17g, want %.17g", f ? "log_softmax" : "softmax",
                          axis, e, sl_grad(v)[e], wants[f][e]);
            sl_tape_free(t);
        }
    }
}

Test(softmax, huge_logits_equal_small_ones) {
    const double big[] = {1000.0, 1001.0, 1002.0}, small[] = {0.0, 1.0, 2.0};
    int n = 3;
    sl_tape *t = sl_tape_new();
    sl_var *b = sl_input(t, 1, &n, big, SL_GRAD), *s = sl_input(t, 1, &n, small, SL_GRAD);
    sl_var *sb = sl_softmax(t, b, 0), *ss = sl_softmax(t, s, 0);
    sl_var *lb = sl_log_softmax(t, b, 0), *lsm = sl_log_softmax(t, s, 0);
    cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    const double lse = log(1.0 + exp(1.0) + exp(2.0)); /* of [0,1,2] */
    for (int i = 0; i < 3; i++) {
        cr_expect(isfinite(sl_value(sb)[i]) && isfinite(sl_value(lb)[i]));
        cr_expect_eq(sl_value(sb)[i], sl_value(ss)[i], "softmax[%d]: %.17g vs %.17g", i,
                     sl_value(sb)[i], sl_value(ss)[i]);
        cr_expect_eq(sl_value(lb)[i], sl_value(lsm)[i], "log_softmax[%d]: %.17g vs %.17g", i,
                     sl_value(lb)[i], sl_value(lsm)[i]);
        cr_expect(close_to(sl_value(sb)[i], exp(small[i] - lse), 1e-15, 0.0));
        cr_expect(close_to(sl_value(lb)[i], small[i] - lse, 1e-15, 0.0));
    }
    /* gradients of one element too: finite and equal */
    sl_var *y = sl_add(t, sl_sum(t, sl_mul(t, sb, lb), SL_ALL, 0),
                       sl_neg(t, sl_sum(t, sl_mul(t, ss, lsm), SL_ALL, 0)));
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 3; i++) {
        cr_expect(isfinite(sl_grad(b)[i]));
        cr_expect_eq(sl_grad(b)[i], -sl_grad(s)[i], "dx[%d]: %.17g vs %.17g", i, sl_grad(b)[i],
                     -sl_grad(s)[i]);
    }
    /* much larger still: one dominant logit */
    const double huge[] = {1e308, 0.0, -1e308};
    sl_var *h = sl_input(t, 1, &n, huge, 0);
    sl_var *sh = sl_softmax(t, h, 0), *lh = sl_log_softmax(t, h, 0);
    cr_expect(sl_value(sh)[0] == 1.0 && sl_value(sh)[1] == 0.0 && sl_value(sh)[2] == 0.0);
    cr_expect(sl_value(lh)[0] == 0.0 && sl_value(lh)[1] == -1e308);
    sl_tape_free(t);
}

Test(softmax, rows_sum_to_one) {
    const int dims[3] = {3, 5, 2};
    double x[30];
    for (int i = 0; i < 30; i++) x[i] = 4.0 * cos(0.9 * i);
    sl_tape *t = sl_tape_new();
    sl_var *v = sl_input(t, 3, dims, x, 0);
    sl_var *s = sl_softmax(t, v, 1);
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 2; i++) {
            double sum = 0.0;
            for (int j = 0; j < 5; j++) sum += sl_value(s)[(p * 5 + j) * 2 + i];
            cr_expect(close_to(sum, 1.0, 1e-15, 0.0), "line (%d,%d) sums to %.17g", p, i, sum);
        }
    sl_tape_free(t);
}

Test(softmax, replay_follows_new_values) {
    int n = 2;
    const double x[] = {0.0, 0.0};
    sl_tape *t = sl_tape_new();
    sl_var *v = sl_input(t, 1, &n, x, SL_GRAD);
    sl_var *s = sl_softmax(t, v, 0);
    cr_expect_eq(sl_value(s)[0], 0.5);
    sl_leaf_data(v)[1] = log(3.0); /* odds 1:3 */
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_expect(close_to(sl_value(s)[0], 0.25, 1e-15, 0.0), "%.17g", sl_value(s)[0]);
    cr_expect(close_to(sl_value(s)[1], 0.75, 1e-15, 0.0), "%.17g", sl_value(s)[1]);
    sl_tape_free(t);
}

/* --------------------------------------------------------------- errors */

static void expect_error(soft_fn f, const char *name, int nd, const int *dims, int axis,
                         const char *shape, const char *axis_text) {
    sl_tape *t = sl_tape_new();
    sl_var *v = sl_input(t, nd, dims, NULL, SL_GRAD);
    cr_expect_null(f(t, v, axis));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    const char *msg = sl_tape_error(t);
    cr_expect(msg && strstr(msg, name) && strstr(msg, shape) && strstr(msg, axis_text),
              "%s axis %d on %s: message \"%s\"", name, axis, shape, msg);
    /* sticky: the next op returns the poison and keeps the first message */
    cr_expect_null(sl_softmax(t, v, 0));
    cr_expect_str_eq(sl_tape_error(t), msg);
    sl_tape_free(t);
}

Test(softmax, bad_axes_are_sticky_errors) {
    const int d2[2] = {2, 3}, d3[3] = {2, 3, 4};
    soft_fn fs[2] = {sl_softmax, sl_log_softmax};
    const char *names[2] = {"sl_softmax", "sl_log_softmax"};
    for (int f = 0; f < 2; f++) {
        expect_error(fs[f], names[f], 2, d2, 2, "[2,3]", "axis 2");
        expect_error(fs[f], names[f], 2, d2, -3, "[2,3]", "axis -3");
        expect_error(fs[f], names[f], 3, d3, 7, "[2,3,4]", "axis 7");
        expect_error(fs[f], names[f], 0, NULL, 1, "[]", "axis 1");
        expect_error(fs[f], names[f], 0, NULL, -2, "[]", "axis -2");
        /* SL_ALL: one axis is required */
        expect_error(fs[f], names[f], 2, d2, SL_ALL, "[2,3]", "SL_ALL");
    }
}

/* A +inf in a line: every element of that line is NaN (PyTorch), the
 * other lines are untouched; a rank-0 input with axis 0 or -1 is one line
 * of one element (PyTorch's dim on a 0-d tensor): softmax 1, log_softmax 0. */
Test(softmax, infinity_in_a_line_and_rank_0) {
    const double v[8] = {INFINITY, 1, 2, 3, 0, 0, 0, 0};
    for (int f = 0; f < 2; f++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){2, 4}, v, SL_GRAD);
        sl_var *y = f ? sl_log_softmax(t, x, 1) : sl_softmax(t, x, 1);
        cr_assert_not_null(y);
        for (int i = 0; i < 4; i++) cr_expect(isnan(sl_value(y)[i]), "f %d [0,%d]", f, i);
        for (int i = 4; i < 8; i++)
            cr_expect(close_to(sl_value(y)[i], f ? -log(4.0) : 0.25, 1e-15, 0));
        sl_tape_free(t);
        t = sl_tape_new();
        x = sl_input(t, 0, NULL, (double[]){7.0}, SL_GRAD);
        for (int axis = -1; axis <= 0; axis++) {
            y = f ? sl_log_softmax(t, x, axis) : sl_softmax(t, x, axis);
            cr_assert_not_null(y, "%s", sl_tape_error(t));
            cr_expect_eq(sl_ndim(y), 0);
            cr_expect_eq(sl_item(y), f ? 0.0 : 1.0);
        }
        sl_tape_free(t);
    }
}

Test(softmax, null_input) {
    sl_tape *t = sl_tape_new();
    cr_expect_null(sl_softmax(t, NULL, 0));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect(strstr(sl_tape_error(t), "sl_softmax"), "%s", sl_tape_error(t));
    cr_expect_null(sl_log_softmax(t, NULL, 0)); /* poisoned: quiet */
    sl_tape_free(t);
}

Test(softmax, gradcheck_both_ops) {
    const char *names[] = {"softmax", "log_softmax"};
    for (int i = 0; i < 2; i++) {
        const sl_op *op = sl_op_find(names[i]);
        cr_assert_not_null(op, "%s is not registered", names[i]);
        sl_gradcheck_report report;
        cr_expect_eq(sl_gradcheck_op(op, NULL, &report), SL_OK, "%s: %s", names[i], report.message);
        cr_expect(report.ok && report.ncases >= 5, "%s: %d cases", names[i], report.ncases);
        /* the cases cover negative axes and several ranks */
        int neg = 0, ranks = 0;
        for (int c = 0; c < op->ncases; c++) {
            neg += op->cases[c].attrs.axis < 0;
            ranks |= 1 << op->cases[c].shape[0][0];
        }
        int nranks = 0;
        for (int r = 0; r <= SL_MAX_DIMS; r++) nranks += (ranks >> r) & 1;
        cr_expect(neg > 0 && nranks >= 3, "%s: %d negative axes, %d ranks", names[i], neg, nranks);
    }
}

/* ------------------------------------------------------------ layer_norm */

/* The long-double reference over the last axis (len) of n values: two-pass
 * mean and biased variance, y = (x - mu) / sqrt(var + eps), and with g the
 * gradient dx = rstd (g - mean g - y mean(g y)) written out from the
 * derivative of (x - mu) rstd. */
static void ln_reference(size_t n, size_t len, const double *x, const double *g, double eps,
                         double *y, double *dx) {
    for (size_t b = 0; b < n; b += len) {
        long double mu = 0, var = 0, mg = 0, mgy = 0;
        for (size_t j = 0; j < len; j++) mu += x[b + j];
        mu /= (long double)len;
        for (size_t j = 0; j < len; j++) var += (x[b + j] - mu) * (x[b + j] - mu);
        var /= (long double)len;
        const long double rstd = 1.0L / sqrtl(var + eps);
        for (size_t j = 0; j < len; j++) {
            const long double yj = (x[b + j] - mu) * rstd;
            y[b + j] = (double)yj;
            mg += g[b + j], mgy += g[b + j] * yj;
        }
        mg /= (long double)len, mgy /= (long double)len;
        for (size_t j = 0; j < len; j++)
            dx[b + j] = (double)(rstd * (g[b + j] - mg - ((x[b + j] - mu) * rstd) * mgy));
    }
}

/* Record layer_norm(x) (shape nd, dims), seed g, and compare the value and
 * dx with the reference to rtol (absolute: rtol times the largest |want|). */
static void ln_expect(int nd, const int *dims, const double *x, const double *g, double eps,
                      double rtol) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    double y[64], dx[64];
    cr_assert(n <= 64);
    ln_reference(n, (size_t)dims[nd - 1], x, g, eps, y, dx);
    sl_tape *t = sl_tape_new();
    sl_var *v = sl_input(t, nd, dims, x, SL_GRAD);
    sl_var *out = sl_layer_norm(t, v, eps);
    cr_assert_not_null(out, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(out), nd);
    cr_assert_eq(sl_backward_seed(t, out, g), SL_OK, "%s", sl_tape_error(t));
    for (size_t i = 0; i < n; i++) {
        cr_expect(near(sl_value(out)[i], y[i], rtol, rtol),
                  "rank %d eps %g: y[%zu] = %.17g vs %.17g", nd, eps, i, sl_value(out)[i], y[i]);
        cr_expect(near(sl_grad(v)[i], dx[i], rtol, rtol * 4),
                  "rank %d eps %g: dx[%zu] = %.17g vs %.17g", nd, eps, i, sl_grad(v)[i], dx[i]);
    }
    sl_tape_free(t);
}

/* torch 2.x, float64:
 *   x = [[1,-2,.5,3],[.25,.25,4,-1]]; g = [[.5,1,-1.5,2],[1,-1,.25,3]]
 *   y = F.layer_norm(x, (4,), eps=eps); y.backward(g) -> y, x.grad */
Test(softmax, layer_norm_matches_torch) {
    const int dims[2] = {2, 4};
    const double x[8] = {1, -2, .5, 3, .25, .25, 4, -1}, g[8] = {.5, 1, -1.5, 2, 1, -1, .25, 3};
    static const double want_y[2][8] = {
        {0.21055838998863707, -1.4739087299204596, -0.07018612999621238, 1.3335364699280348,
         -0.3333328592602706, -0.3333328592602706, 1.6666642963013532, -0.9999985777808119},
        {0.21055872190307895, -1.4739110533215525, -0.07018624063435963, 1.3335385720528332,
         -0.33333333333333337, -0.33333333333333337, 1.6666666666666665, -1.0}};
    static const double want_dx[2][8] = {
        {-0.04148920712538387, 0.5711689698625364, -1.1091483442309364, 0.5794685814937839,
         -0.014814467161932132, -1.0814796167947982, 0.27407205136582347, 0.8222220325909071},
        {-0.041489403330655955, 0.5711707858520302, -1.1091500490395356, 0.5794686665181613,
         -0.014814814814814836, -1.0814814814814815, 0.274074074074074, 0.8222222222222223}};
    const double eps[2] = {1e-5, 0.0};
    for (int k = 0; k < 2; k++) {
        sl_tape *t = sl_tape_new();
        sl_var *v = sl_input(t, 2, dims, x, SL_GRAD);
        sl_var *y = sl_layer_norm(t, v, eps[k]);
        cr_assert_eq(sl_backward_seed(t, y, g), SL_OK, "%s", sl_tape_error(t));
        for (int i = 0; i < 8; i++) {
            cr_expect(near(sl_value(y)[i], want_y[k][i], 1e-14, 1e-15), "eps %g y[%d] = %.17g",
                      eps[k], i, sl_value(y)[i]);
            cr_expect(near(sl_grad(v)[i], want_dx[k][i], 1e-13, 1e-15), "eps %g dx[%d] = %.17g",
                      eps[k], i, sl_grad(v)[i]);
        }
        sl_tape_free(t);
    }
}

/* Ranks 1..4 and eps 0, 1e-5, 0.5 against the long-double reference. */
Test(softmax, layer_norm_matches_reference) {
    static const struct {
        int nd, dims[4];
    } shapes[] = {{1, {5}}, {2, {3, 4}}, {3, {2, 3, 4}}, {4, {2, 1, 3, 5}}, {2, {3, 2}}};
    const double eps[3] = {0.0, 1e-5, 0.5};
    double x[64], g[64];
    for (int i = 0; i < 64; i++) x[i] = 3.0 * sin(1.7 * i) + 0.5, g[i] = cos(0.9 * i);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int e = 0; e < 3; e++) ln_expect(shapes[s].nd, shapes[s].dims, x, g, eps[e], 1e-13);
}

/* A constant line with eps > 0: y = 0 and a finite gradient, rstd (g - mean g)
 * (torch: F.layer_norm([2,2,2], (3,), eps=1e-5).backward([1,2,4]) gives
 * x.grad = [-421.6370213557839, -105.40925533894597, 527.0462766947298]); a
 * length-1 line gives y = 0 and dx = 0 (torch too). */
Test(softmax, layer_norm_constant_line) {
    const double want[3] = {-421.6370213557839, -105.40925533894597, 527.0462766947298};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){2, 2, 2}, SL_GRAD);
    sl_var *y = sl_layer_norm(t, x, 1e-5);
    cr_assert_eq(sl_backward_seed(t, y, (double[]){1, 2, 4}), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(sl_value(y)[i], 0.0);
        cr_expect(near(sl_grad(x)[i], want[i], 1e-13, 0), "dx[%d] = %.17g", i, sl_grad(x)[i]);
    }
    sl_var *one = sl_input(t, 2, (int[]){2, 1}, (double[]){3, -7}, SL_GRAD);
    sl_var *z = sl_layer_norm(t, one, 1e-5);
    cr_assert_eq(sl_backward_seed(t, z, (double[]){2, 5}), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 2; i++) cr_expect(sl_value(z)[i] == 0.0 && sl_grad(one)[i] == 0.0);
    sl_tape_free(t);
}

/* 1e8 + noise: the noise's digits survive (E[x^2] - mu^2 would lose them
 * all, its squares being 1e16 with an ulp of 2). With a mean that doubles
 * hold exactly the result is that of the noise alone. */
Test(softmax, layer_norm_large_offsets) {
    double x[12], g[12];
    for (int i = 0; i < 12; i++) x[i] = 1e8 + sin(1.3 * i), g[i] = cos(2.1 * i);
    ln_expect(2, (int[]){3, 4}, x, g, 1e-5, 1e-7);
    ln_expect(1, (int[]){12}, x, g, 0.0, 1e-7);
    const double noise[4] = {-1.5, 0.5, 1, 0}, big[4] = {1e8 - 1.5, 1e8 + 0.5, 1e8 + 1, 1e8};
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_layer_norm(t, sl_input(t, 1, (int[]){4}, noise, 0), 1e-5);
    sl_var *b = sl_layer_norm(t, sl_input(t, 1, (int[]){4}, big, 0), 1e-5);
    cr_assert(a && b, "%s", sl_tape_error(t));
    for (int i = 0; i < 4; i++)
        cr_expect_eq(sl_value(a)[i], sl_value(b)[i], "[%d] %.17g vs %.17g", i, sl_value(a)[i],
                     sl_value(b)[i]);
    sl_tape_free(t);
}

/* Bad eps and rank 0 (a rank-0 tensor or a scalar node) are sticky errors. */
Test(softmax, layer_norm_errors) {
    static const struct {
        double eps;
        const char *msg;
    } bad[] = {
        {NAN, "sl_layer_norm: eps = nan must be finite and >= 0 (x [2,3])"},
        {INFINITY, "sl_layer_norm: eps = inf must be finite and >= 0 (x [2,3])"},
        {-1e-3, "sl_layer_norm: eps = -0.001 must be finite and >= 0 (x [2,3])"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
        expect_tape_error(sl_layer_norm(t, x, bad[k].eps), t, SL_EARG, bad[k].msg);
        cr_expect_null(sl_layer_norm(t, x, 1e-5)); /* sticky */
        cr_expect_str_eq(sl_tape_error(t), bad[k].msg);
        sl_tape_free(t);
    }
    const char *rank0 = "sl_layer_norm: a rank-0 x has no last axis to normalise (x [])";
    for (int s = 0; s < 2; s++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = s ? sl_scalar(t, 3.0, SL_GRAD) : sl_input(t, 0, NULL, (double[]){3}, SL_GRAD);
        expect_tape_error(sl_layer_norm(t, x, 1e-5), t, SL_ESHAPE, rank0);
        sl_tape_free(t);
    }
    sl_tape *t = sl_tape_new();
    cr_expect_null(sl_layer_norm(t, NULL, 1e-5));
    cr_expect(contains(sl_tape_error(t), "sl_layer_norm"), "%s", sl_tape_error(t));
    sl_tape_free(t);
}

/* A scalar node made rank >= 1 (broadcast into a tensor) is an ordinary input. */
Test(softmax, layer_norm_of_scalar_nodes) {
    sl_tape *t = sl_tape_new();
    sl_var *s = sl_scalar(t, 2.0, SL_GRAD);
    sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){1, -1, 3}, SL_GRAD);
    sl_var *y = sl_layer_norm(t, sl_mul(t, s, x), 1e-5);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    double ref[3], dref[3];
    ln_reference(3, 3, (double[]){2, -2, 6}, (double[]){1, 1, 1}, 1e-5, ref, dref);
    for (int i = 0; i < 3; i++) cr_expect(near(sl_value(y)[i], ref[i], 1e-14, 1e-15));
    sl_gradcheck_report rep;
    cr_expect_eq(sl_gradcheck(t, y, 2, (sl_var *[]){s, x}, NULL, &rep), SL_OK, "%s", rep.message);
    sl_tape_free(t);
}

Test(softmax, layer_norm_replay_follows_new_values) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){2, 2}, (double[]){0, 2, 5, 6}, SL_GRAD);
    sl_var *y = sl_layer_norm(t, x, 0.0);
    cr_expect(near(sl_value(y)[0], -1.0, 1e-15, 0) && near(sl_value(y)[3], 1.0, 1e-15, 0));
    double *d = sl_leaf_data(x);
    d[0] = 4, d[1] = -4, d[2] = 1, d[3] = 3;
    cr_assert_eq(sl_forward(t), SL_OK, "%s", sl_tape_error(t));
    const double want[4] = {1, -1, -1, 1};
    for (int i = 0; i < 4; i++)
        cr_expect(near(sl_value(y)[i], want[i], 1e-15, 0), "%.17g", sl_value(y)[i]);
    cr_assert_eq(sl_backward_seed(t, y, (double[]){1, 0, 0, 3}), SL_OK);
    /* a length-2 line's y is +-1 whatever x: every slope 0 */
    for (int i = 0; i < 4; i++)
        cr_expect(near(sl_grad(x)[i], 0.0, 0, 1e-15), "%.17g", sl_grad(x)[i]);
    sl_tape_free(t);
}

/* gamma * layer_norm(x) + beta, gamma and beta broadcast along the last axis. */
Test(softmax, layer_norm_affine_graph_gradcheck) {
    double x[24], gm[4], bt[4];
    for (int i = 0; i < 24; i++) x[i] = 2.0 * sin(0.7 * i + 0.3);
    for (int i = 0; i < 4; i++) gm[i] = 1.0 + 0.3 * i, bt[i] = 0.1 * i - 0.2;
    sl_tape *t = sl_tape_new();
    sl_var *xv = sl_input(t, 3, (int[]){2, 3, 4}, x, SL_GRAD);
    sl_var *gv = sl_input(t, 1, (int[]){4}, gm, SL_GRAD);
    sl_var *bv = sl_input(t, 1, (int[]){4}, bt, SL_GRAD);
    sl_var *y = sl_add(t, sl_mul(t, gv, sl_layer_norm(t, xv, 1e-5)), bv);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report rep;
    cr_expect_eq(sl_gradcheck(t, y, 3, (sl_var *[]){xv, gv, bv}, NULL, &rep), SL_OK, "%s",
                 rep.message);
    sl_tape_free(t);
}

Test(softmax, layer_norm_gradcheck_op) {
    const sl_op *op = sl_op_find("layer_norm");
    cr_assert_not_null(op);
    sl_gradcheck_report rep;
    cr_expect_eq(sl_gradcheck_op(op, NULL, &rep), SL_OK, "%s", rep.message);
    cr_expect(rep.ncases >= 8, "%d cases", rep.ncases);
}

/* The rule without its y mean(g y) term: right for g orthogonal to y only. */
static void layer_norm_forgets_y_term(sl_var *out) {
    double *dx = sl_grad_data(sl_in(out, 0));
    if (!dx) return;
    const double *g = sl_grad_data(out), *rstd = sl_saved_data(out);
    const size_t len = (size_t)sl_dims(out)[sl_ndim(out) - 1], n = sl_numel(out);
    for (size_t b = 0; b < n; b += len) {
        double mg = 0.0;
        for (size_t j = 0; j < len; j++) mg += g[b + j];
        mg /= (double)len;
        for (size_t j = 0; j < len; j++) dx[b + j] += rstd[b / len] * (g[b + j] - mg);
    }
}

Test(softmax, layer_norm_checker_catches_a_wrong_rule) {
    expect_checker_catches("layer_norm", NULL, 0, layer_norm_forgets_y_term);
}
