/*
 * test_softmax.c - softmax and log_softmax along one axis: values against
 * the closed forms e^x_j / sum_k e^x_k and x_j - log sum_k e^x_k computed
 * here with libm, gradients against the Jacobian-vector formulas written out
 * here, huge logits, every axis form, and the errors for bad axes.
 */
#include "slope.h"

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
