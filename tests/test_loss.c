/*
 * test_loss.c - mse, bce, bce_with_logits and cross_entropy: values and
 * gradients against hand-worked numbers and closed forms computed here with
 * libm (PyTorch's documented definitions, reduction 'mean'), the extremes
 * that break naive formulas, and the sticky errors for bad shapes and labels.
 */
#include "slope.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef sl_var *(*loss_fn)(sl_tape *, sl_var *, sl_var *);

static int close_to(double got, double want, double rtol, double atol) {
    return fabs(got - want) <= atol + rtol * fabs(want);
}

#define EXPECT_CLOSE(got, want, rtol, atol, ...)                                                   \
    cr_expect(close_to((got), (want), (rtol), (atol)), __VA_ARGS__)

/* A loss of two 1-D inputs of n elements with gradients to both; value and
 * both gradients copied out. */
static double run(loss_fn f, int n, const double *a, const double *b, double *da, double *db) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, &n, a, SL_GRAD), *y = sl_input(t, 1, &n, b, SL_GRAD);
    sl_var *l = f(t, x, y);
    cr_assert_not_null(l, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(l), 0, "losses are rank 0");
    cr_assert_eq(sl_backward(t, l), SL_OK, "%s", sl_tape_error(t));
    double v = sl_item(l);
    memcpy(da, sl_grad(x), (size_t)n * sizeof *da);
    memcpy(db, sl_grad(y), (size_t)n * sizeof *db);
    sl_tape_free(t);
    return v;
}

/* ------------------------------------------------------------------- mse */

Test(loss, mse_hand_worked) {
    /* differences -0.5, 0, 2: (0.25 + 0 + 4)/3; dp = 2d/3, dy = -2d/3 */
    const double p[] = {1.0, 2.0, 3.0}, y[] = {1.5, 2.0, 1.0};
    double dp[3], dy[3];
    double v = run(sl_mse, 3, p, y, dp, dy);
    EXPECT_CLOSE(v, 4.25 / 3.0, 1e-15, 0.0, "mse = %.17g", v);
    const double want[] = {-1.0 / 3.0, 0.0, 4.0 / 3.0};
    for (int i = 0; i < 3; i++) {
        EXPECT_CLOSE(dp[i], want[i], 1e-15, 0.0, "dp[%d] = %.17g", i, dp[i]);
        EXPECT_CLOSE(dy[i], -want[i], 1e-15, 0.0, "dy[%d] = %.17g", i, dy[i]);
    }
}

Test(loss, mse_of_matrices_and_scalars) {
    sl_tape *t = sl_tape_new();
    const int dims[2] = {2, 2};
    const double p[] = {1, 2, 3, 4}, y[] = {0, 0, 0, 0};
    sl_var *l = sl_mse(t, sl_input(t, 2, dims, p, 0), sl_input(t, 2, dims, y, 0));
    cr_expect_eq(sl_item(l), 7.5); /* (1+4+9+16)/4 */
    sl_var *s = sl_mse(t, sl_scalar(t, 3.0, 0), sl_scalar(t, 1.0, 0));
    cr_expect_eq(sl_item(s), 4.0);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

/* ------------------------------------------------------------------- bce */

Test(loss, bce_closed_form) {
    const double p[] = {0.2, 0.9, 0.6, 0.35}, y[] = {0.0, 1.0, 0.25, 1.0};
    double dp[4], dy[4], want = 0.0;
    for (int i = 0; i < 4; i++) want += -(y[i] * log(p[i]) + (1 - y[i]) * log(1 - p[i]));
    want /= 4.0;
    double v = run(sl_bce, 4, p, y, dp, dy);
    EXPECT_CLOSE(v, want, 1e-14, 0.0, "bce = %.17g, want %.17g", v, want);
    for (int i = 0; i < 4; i++) {
        /* d/dp -(y log p + (1-y) log(1-p)) = (p - y)/(p(1-p)); d/dy = log(1-p) - log p */
        double wp = (p[i] - y[i]) / (p[i] * (1 - p[i])) / 4.0;
        double wy = (log(1 - p[i]) - log(p[i])) / 4.0;
        EXPECT_CLOSE(dp[i], wp, 1e-14, 0.0, "dp[%d] = %.17g, want %.17g", i, dp[i], wp);
        EXPECT_CLOSE(dy[i], wy, 1e-14, 0.0, "dy[%d] = %.17g, want %.17g", i, dy[i], wy);
    }
    /* hand-pinned: p = (0.2, 0.9) for y = (0, 1) is (-log 0.8 - log 0.9)/2 */
    double d2[2], e2[2];
    v = run(sl_bce, 2, p, y, d2, e2);
    EXPECT_CLOSE(v, 0.164252033486018, 1e-14, 0.0, "bce = %.17g", v);
    EXPECT_CLOSE(d2[0], 0.625, 1e-15, 0.0, "%.17g", d2[0]); /* 0.2/0.16/2 */
}

Test(loss, bce_clamps_logs_at_minus_100) {
    /* PyTorch: each log is clamped to >= -100, so a certain wrong answer costs 100 */
    const double p[] = {0.0, 1.0}, y[] = {1.0, 0.0};
    double dp[2], dy[2];
    double v = run(sl_bce, 2, p, y, dp, dy);
    cr_expect_eq(v, 100.0, "bce = %.17g", v);
    /* dp: PyTorch's (p - y)/max(p(1-p), 1e-12f) / n (its EPSILON is a float:
     * torch gives -1000000003995.8029 at n = 1, see below); dy: (lq - lp)/n
     * with clamped logs */
    cr_expect(close_to(dp[0], -1000000003995.8029 / 2.0, 1e-15, 0), "dp[0] = %.17g", dp[0]);
    cr_expect(close_to(dp[1], 1000000003995.8029 / 2.0, 1e-15, 0), "dp[1] = %.17g", dp[1]);
    cr_expect_eq(dy[0], 50.0, "dy[0] = %.17g", dy[0]);
    cr_expect_eq(dy[1], -50.0, "dy[1] = %.17g", dy[1]);
    /* right answers with certainty cost 0 */
    const double p2[] = {0.0, 1.0}, y2[] = {0.0, 1.0};
    v = run(sl_bce, 2, p2, y2, dp, dy);
    cr_expect_eq(v, 0.0, "bce = %.17g", v);
    cr_expect(isfinite(dp[0]) && isfinite(dp[1]) && isfinite(dy[0]) && isfinite(dy[1]));
    /* a tiny p: log p = -230 clamps to -100 */
    const double p3[] = {1e-100}, y3[] = {1.0};
    v = run(sl_bce, 1, p3, y3, dp, dy);
    cr_expect_eq(v, 100.0, "bce = %.17g", v);
}

/* PyTorch floors p(1-p) in bce's backward at its float EPSILON = 1e-12f,
 * 9.999999960041972e-13 in double: torch.nn.functional.binary_cross_entropy
 * at p = 0, y = 1 gives dp = -1000000003995.8029 (float64, torch 1.13). */
Test(loss, bce_gradient_floor_is_torch_float_epsilon) {
    const double p[] = {0.0}, y[] = {1.0};
    double dp, dy;
    run(sl_bce, 1, p, y, &dp, &dy);
    cr_expect(close_to(dp, -1000000003995.8029, 1e-15, 0), "dp = %.17g", dp);
}

Test(loss, bce_rejects_probabilities_outside_unit_interval) {
    const double bad[] = {1.5, -0.1, NAN};
    const char *text[] = {"1.5", "-0.1", "nan"};
    for (int i = 0; i < 3; i++) {
        sl_tape *t = sl_tape_new();
        int n = 3;
        double p[3] = {0.5, 0.5, 0.5}, y[3] = {0, 1, 0};
        p[1] = bad[i];
        cr_expect_null(sl_bce(t, sl_input(t, 1, &n, p, 0), sl_input(t, 1, &n, y, 0)));
        cr_expect_eq(sl_tape_status(t), SL_EARG);
        const char *msg = sl_tape_error(t);
        cr_expect(msg && strstr(msg, "sl_bce") && strstr(msg, text[i]) && strstr(msg, "[3]"), "%s",
                  msg);
        sl_tape_free(t);
    }
}

/* ------------------------------------------------------- bce_with_logits */

Test(loss, bce_with_logits_closed_form) {
    const double x[] = {0.5, -1.2, 2.0, 0.0}, y[] = {1.0, 0.3, 0.0, 0.5};
    double dx[4], dy[4], want = 0.0;
    for (int i = 0; i < 4; i++) {
        double s = 1.0 / (1.0 + exp(-x[i]));
        want += -(y[i] * log(s) + (1 - y[i]) * log(1 - s));
    }
    want /= 4.0;
    double v = run(sl_bce_with_logits, 4, x, y, dx, dy);
    EXPECT_CLOSE(v, want, 1e-14, 0.0, "bce_with_logits = %.17g, want %.17g", v, want);
    for (int i = 0; i < 4; i++) {
        double s = 1.0 / (1.0 + exp(-x[i]));
        EXPECT_CLOSE(dx[i], (s - y[i]) / 4.0, 1e-14, 1e-17, "dx[%d] = %.17g", i, dx[i]);
        EXPECT_CLOSE(dy[i], -x[i] / 4.0, 1e-15, 0.0, "dy[%d] = %.17g", i, dy[i]);
    }
    /* x = 0, y = 1/2 is log 2 on its own */
    double d1[1], e1[1];
    v = run(sl_bce_with_logits, 1, x + 3, y + 3, d1, e1);
    EXPECT_CLOSE(v, log(2.0), 1e-16, 0.0, "%.17g", v);
    cr_expect_eq(d1[0], 0.0);
}

Test(loss, bce_with_logits_extremes_are_exact) {
    /* terms: x=800,y=0 -> 800; x=-800,y=1 -> 800; x=800,y=1 -> 0; x=-800,y=0 -> 0 */
    const double x[] = {800.0, -800.0, 800.0, -800.0}, y[] = {0.0, 1.0, 1.0, 0.0};
    double dx[4], dy[4];
    double v = run(sl_bce_with_logits, 4, x, y, dx, dy);
    cr_expect_eq(v, 400.0, "loss = %.17g", v);
    const double wdx[] = {0.25, -0.25, 0.0, 0.0}, wdy[] = {-200.0, 200.0, -200.0, 200.0};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(dx[i], wdx[i], "dx[%d] = %.17g", i, dx[i]);
        cr_expect_eq(dy[i], wdy[i], "dy[%d] = %.17g", i, dy[i]);
    }
    double d1[1], e1[1];
    v = run(sl_bce_with_logits, 1, x, y, d1, e1);
    cr_expect_eq(v, 800.0);
    cr_expect_eq(d1[0], 1.0, "grad 1/n with n = 1, got %.17g", d1[0]);
}

/* At x = +inf and x = -inf the loss is +inf for 0 < y < 1 (the limit of
 * (1-y) x and of -x y), and the gradient sigmoid(x) - y is finite. */
Test(loss, bce_with_logits_at_infinite_logits) {
    const double x[] = {INFINITY, -INFINITY}, y[] = {0.3, 0.3};
    for (int i = 0; i < 2; i++) {
        double dx, dy;
        double v = run(sl_bce_with_logits, 1, x + i, y + i, &dx, &dy);
        cr_expect(isinf(v) && v > 0, "x = %g: loss %g", x[i], v);
        cr_expect(close_to(dx, i ? -0.3 : 0.7, 1e-15, 0), "x = %g: dx %.17g", x[i], dx);
    }
}

/* --------------------------------------------------------- cross_entropy */

/* cross_entropy of logits (rows x cols) and labels, its gradient into dx. */
static double ce(int rows, int cols, const double *x, const double *lab, double *dx) {
    sl_tape *t = sl_tape_new();
    const int d[2] = {rows, cols};
    sl_var *lx = sl_input(t, 2, d, x, SL_GRAD), *ll = sl_input(t, 1, &rows, lab, 0);
    sl_var *l = sl_cross_entropy(t, lx, ll);
    cr_assert_not_null(l, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(l), 0);
    cr_assert_eq(sl_backward(t, l), SL_OK, "%s", sl_tape_error(t));
    cr_expect_null(sl_grad(ll), "labels get no gradient");
    double v = sl_item(l);
    memcpy(dx, sl_grad(lx), (size_t)(rows * cols) * sizeof *dx);
    sl_tape_free(t);
    return v;
}

Test(loss, cross_entropy_hand_worked) {
    /* rows: lse(1,2,3) - 3 = log(1 + e^-1 + e^-2); lse(1,1,1) - 1 = log 3 */
    const double x[] = {1.0, 2.0, 3.0, 1.0, 1.0, 1.0}, lab[] = {2.0, 0.0};
    double dx[6];
    double v = ce(2, 3, x, lab, dx);
    EXPECT_CLOSE(v, 0.7531091265562451, 1e-15, 0.0, "cross_entropy = %.17g", v);
    EXPECT_CLOSE(v, (log(1 + exp(-1.0) + exp(-2.0)) + log(3.0)) / 2.0, 1e-15, 0.0, "%.17g", v);
    /* dx = (softmax - onehot)/N */
    const double z = exp(1.0) + exp(2.0) + exp(3.0);
    const double want[] = {exp(1.0) / z / 2,  exp(2.0) / z / 2, (exp(3.0) / z - 1) / 2,
                           (1.0 / 3 - 1) / 2, 1.0 / 6,          1.0 / 6};
    for (int i = 0; i < 6; i++)
        EXPECT_CLOSE(dx[i], want[i], 1e-14, 1e-17, "dx[%d] = %.17g, want %.17g", i, dx[i], want[i]);
}

Test(loss, cross_entropy_huge_logits_equal_small_ones) {
    const double big[] = {1000.0, 1001.0, 1002.0}, small[] = {0.0, 1.0, 2.0};
    for (int k = 0; k < 3; k++) {
        const double lab[] = {(double)k};
        double db[3], ds[3];
        double vb = ce(1, 3, big, lab, db), vs = ce(1, 3, small, lab, ds);
        cr_expect(isfinite(vb), "label %d: %g", k, vb);
        cr_expect_eq(vb, vs, "label %d: %.17g vs %.17g", k, vb, vs);
        EXPECT_CLOSE(vs, log(1 + exp(1.0) + exp(2.0)) - small[k], 1e-15, 0.0, "%.17g", vs);
        for (int j = 0; j < 3; j++) {
            cr_expect(isfinite(db[j]));
            cr_expect_eq(db[j], ds[j], "label %d dx[%d]: %.17g vs %.17g", k, j, db[j], ds[j]);
        }
    }
}

Test(loss, cross_entropy_replay_uses_new_probabilities) {
    /* the saved softmax is recomputed on replay, so backward follows new logits */
    sl_tape *t = sl_tape_new();
    const int d[2] = {1, 2};
    int one = 1;
    const double x[] = {0.0, 0.0}, lab[] = {1.0};
    sl_var *lx = sl_input(t, 2, d, x, SL_GRAD), *ll = sl_input(t, 1, &one, lab, 0);
    sl_var *l = sl_cross_entropy(t, lx, ll);
    cr_expect_eq(sl_item(l), log(2.0));
    sl_leaf_data(lx)[0] = log(3.0); /* p = (3/4, 1/4) */
    cr_assert_eq(sl_forward(t), SL_OK);
    EXPECT_CLOSE(sl_item(l), log(4.0), 1e-15, 0.0, "%.17g", sl_item(l));
    cr_assert_eq(sl_backward(t, l), SL_OK);
    EXPECT_CLOSE(sl_grad(lx)[0], 0.75, 1e-15, 0.0, "%.17g", sl_grad(lx)[0]);
    EXPECT_CLOSE(sl_grad(lx)[1], -0.75, 1e-15, 0.0, "%.17g", sl_grad(lx)[1]);
    sl_tape_free(t);
}

Test(loss, cross_entropy_labels_with_grad_flag_get_zeros) {
    sl_tape *t = sl_tape_new();
    const int d[2] = {2, 2};
    int two = 2;
    const double x[] = {0.1, 0.2, 0.3, 0.4}, lab[] = {0.0, 1.0};
    sl_var *lx = sl_input(t, 2, d, x, SL_GRAD), *ll = sl_input(t, 1, &two, lab, SL_GRAD);
    sl_var *l = sl_cross_entropy(t, lx, ll);
    cr_assert_eq(sl_backward(t, l), SL_OK, "%s", sl_tape_error(t));
    cr_assert_not_null(sl_grad(ll));
    cr_expect(sl_grad(ll)[0] == 0.0 && sl_grad(ll)[1] == 0.0);
    sl_tape_free(t);
}

/* ------------------------------------------------------------- errors */

static void expect_label_error(double bad, const char *value_text) {
    sl_tape *t = sl_tape_new();
    const int d[2] = {3, 3};
    int n = 3;
    double lab[3] = {0.0, 2.0, 1.0};
    lab[1] = bad; /* row 1 */
    sl_var *lx = sl_input(t, 2, d, NULL, SL_GRAD), *ll = sl_input(t, 1, &n, lab, 0);
    cr_expect_null(sl_cross_entropy(t, lx, ll));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    const char *msg = sl_tape_error(t);
    cr_expect(msg && strstr(msg, "sl_cross_entropy") && strstr(msg, "row 1") &&
                  strstr(msg, value_text) && strstr(msg, "C = 3"),
              "label %g: message \"%s\"", bad, msg);
    /* sticky */
    cr_expect_null(sl_mse(t, lx, lx));
    cr_expect_str_eq(sl_tape_error(t), msg);
    sl_tape_free(t);
}

Test(loss, cross_entropy_rejects_bad_labels) {
    expect_label_error(1.5, "1.5");
    expect_label_error(-1.0, "-1");
    expect_label_error(3.0, "is 3,"); /* == C */
    expect_label_error(NAN, "nan");
    expect_label_error(INFINITY, "inf");
    expect_label_error(1e300, "1.0000000000000001e+300");
}

Test(loss, cross_entropy_shape_errors) {
    static const struct {
        int nx, dx[3], nl, dl[2];
        const char *sx, *sl;
    } cases[] = {
        {1, {3}, 1, {3}, "[3]", "[3]"},           /* logits not 2-D */
        {3, {2, 3, 1}, 1, {2}, "[2,3,1]", "[2]"}, /* logits not 2-D */
        {2, {2, 3}, 1, {3}, "[2,3]", "[3]"},      /* labels of the wrong length */
        {2, {2, 3}, 2, {2, 1}, "[2,3]", "[2,1]"}, /* labels not 1-D */
        {2, {2, 3}, 0, {0}, "[2,3]", "[]"},       /* labels rank 0 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_tape *t = sl_tape_new();
        sl_var *lx = sl_input(t, cases[c].nx, cases[c].dx, NULL, SL_GRAD);
        sl_var *ll = sl_input(t, cases[c].nl, cases[c].dl, NULL, 0);
        cr_expect_null(sl_cross_entropy(t, lx, ll));
        cr_expect_eq(sl_tape_status(t), SL_ESHAPE, "case %zu", c);
        const char *msg = sl_tape_error(t);
        cr_expect(msg && strstr(msg, "sl_cross_entropy") && strstr(msg, cases[c].sx),
                  "case %zu: \"%s\"", c, msg);
        if (c >= 2) cr_expect(strstr(msg, cases[c].sl), "case %zu: \"%s\"", c, msg);
        sl_tape_free(t);
    }
}

/* Replay (sl_forward) after the label leaf changed: a bad label is the same
 * sticky error as at record time, naming sl_forward, and nothing after it
 * (backward, jvp) runs on the poisoned tape. swept: a training step (one
 * sl_backward) came before the bad batch, whose gradients must stay as they were. */
static void expect_replay_label_error(double bad, const char *value_text, const char *why,
                                      int swept) {
    sl_tape *t = sl_tape_new();
    const int d[2] = {2, 3};
    int n = 2;
    const double x[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, lab[] = {0.0, 1.0};
    sl_var *lx = sl_input(t, 2, d, x, SL_GRAD), *ll = sl_input(t, 1, &n, lab, 0);
    sl_var *l = sl_cross_entropy(t, lx, ll);
    cr_assert_not_null(l, "%s", sl_tape_error(t));
    double before[6] = {0};
    if (swept) {
        cr_assert_eq(sl_backward(t, l), SL_OK, "%s", sl_tape_error(t));
        memcpy(before, sl_grad(lx), sizeof before);
    }
    sl_leaf_data(ll)[1] = bad;
    cr_expect_eq(sl_forward(t), SL_EARG, "label %g: forward did not fail", bad);
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sl_tape_error(t) ? sl_tape_error(t) : "(no error)");
    char want[200];
    snprintf(want, sizeof want, "sl_forward: sl_cross_entropy: label of row 1 is %s, %s",
             value_text, why);
    cr_expect(strstr(msg, want) && strstr(msg, "C = 3") && strstr(msg, "[2,3]"),
              "label %g: message \"%s\" lacks \"%s\"", bad, msg, want);
    /* the reverse and forward sweeps refuse: no NaN gradients */
    cr_expect_eq(sl_backward(t, l), SL_EARG);
    if (!swept) cr_expect_null(sl_grad(lx), "the refused sweep reached the logits");
    for (int i = 0; swept && i < 6; i++)
        cr_expect_eq(sl_grad(lx)[i], before[i], "dx[%d] = %g, was %g", i, sl_grad(lx)[i],
                     before[i]);
    double tan[6] = {1, 1, 1, 1, 1, 1}, dy = -1.0;
    const double *tans[1] = {tan};
    cr_expect_eq(sl_jvp(t, l, 1, &lx, tans, &dy), SL_EARG);
    cr_expect_eq(dy, -1.0, "jvp wrote %g", dy);
    /* sticky: a later replay with the label put back still reports the first error */
    sl_leaf_data(ll)[1] = 1.0;
    cr_expect_eq(sl_forward(t), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), msg);
    sl_tape_free(t);
}

Test(loss, cross_entropy_replay_rejects_bad_labels) {
    expect_replay_label_error(7.0, "7", "out of range", 0);
    expect_replay_label_error(3.0, "3", "out of range", 0); /* == C */
    expect_replay_label_error(-1.0, "-1", "out of range", 0);
    expect_replay_label_error(1.5, "1.5", "not an integer", 0);
    expect_replay_label_error(NAN, "nan", "not finite", 0);
    expect_replay_label_error(INFINITY, "inf", "not finite", 0);
    expect_replay_label_error(7.0, "7", "out of range", 1);
}

/* A label changed after sl_forward, with no replay before sl_backward or
 * sl_jvp: their rules meet it; it is the tape's error, naming them. */
Test(loss, cross_entropy_label_changed_before_backward) {
    for (int jvp = 0; jvp <= 1; jvp++) {
        sl_tape *t = sl_tape_new();
        const int d[2] = {2, 3};
        int n = 2;
        const double x0[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, lab0[] = {0.0, 1.0};
        sl_var *lx = sl_input(t, 2, d, x0, SL_GRAD), *ll = sl_input(t, 1, &n, lab0, 0);
        sl_var *l = sl_cross_entropy(t, lx, ll);
        cr_assert_not_null(l, "%s", sl_tape_error(t));
        sl_leaf_data(ll)[1] = 5.0;
        double dl = 0.0;
        const double *tans[1] = {x0};
        const int rc = jvp ? sl_jvp(t, l, 1, &lx, tans, &dl) : sl_backward(t, l);
        cr_expect_eq(rc, SL_EARG, "jvp %d", jvp);
        const char *want = jvp ? "sl_jvp: sl_cross_entropy: label of row 1 is 5, out of range"
                               : "sl_backward: sl_cross_entropy: label of row 1 is 5, out of range";
        cr_expect(sl_tape_error(t) && strncmp(sl_tape_error(t), want, strlen(want)) == 0, "%s",
                  sl_tape_error(t) ? sl_tape_error(t) : "(no error)");
        sl_tape_free(t);
    }
}

/* Labels computed from a gradient-carrying leaf: the labels read zeros and
 * nothing flows past them, so sqrt's rule never runs on their zero gradient
 * (at a label 0 it would put 0 * 1/(2 sqrt 0) = NaN into the leaf). */
Test(loss, labels_get_no_gradient_and_pass_none_on) {
    sl_tape *t = sl_tape_new();
    const double x[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, lab[] = {0.0, 1.0};
    sl_var *lx = sl_input(t, 2, (int[]){2, 3}, x, SL_GRAD);
    sl_var *ll = sl_input(t, 1, (int[]){2}, lab, SL_GRAD);
    sl_var *k = sl_sqrt(t, ll); /* [0, 1]: still class indices */
    sl_var *l = sl_cross_entropy(t, lx, k);
    cr_assert_not_null(l, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward(t, l), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(sl_grad(ll)[i], 0.0, "dlabels[%d] = %g", i, sl_grad(ll)[i]);
        cr_expect_eq(sl_grad(k)[i], 0.0);
    }
    cr_expect(isfinite(sl_grad(lx)[0]));
    sl_tape_free(t);
}

Test(loss, cross_entropy_replay_with_new_labels_matches_closed_form) {
    /* new valid labels (and logits) in the leaves: the loss of the new batch, SL_OK */
    sl_tape *t = sl_tape_new();
    const int d[2] = {2, 3};
    int n = 2;
    const double x0[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, lab0[] = {0.0, 1.0};
    sl_var *lx = sl_input(t, 2, d, x0, SL_GRAD), *ll = sl_input(t, 1, &n, lab0, 0);
    sl_var *l = sl_cross_entropy(t, lx, ll);
    cr_assert_not_null(l, "%s", sl_tape_error(t));
    const double x[] = {1.0, -2.0, 0.5, 3.0, 3.0, -1.0}, lab[] = {2.0, 0.0};
    memcpy(sl_leaf_data(lx), x, sizeof x);
    memcpy(sl_leaf_data(ll), lab, sizeof lab);
    cr_assert_eq(sl_forward(t), SL_OK, "%s", sl_tape_error(t));
    /* -log softmax(x_r)[k_r], averaged over the rows */
    double want = 0.0, p[6];
    for (int r = 0; r < 2; r++) {
        double z = 0.0;
        for (int j = 0; j < 3; j++) z += exp(x[r * 3 + j]);
        for (int j = 0; j < 3; j++) p[r * 3 + j] = exp(x[r * 3 + j]) / z;
        want += -log(p[r * 3 + (int)lab[r]]);
    }
    want /= 2.0;
    EXPECT_CLOSE(sl_item(l), want, 1e-15, 0.0, "cross_entropy = %.17g, want %.17g", sl_item(l),
                 want);
    cr_assert_eq(sl_backward(t, l), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 6; i++) {
        const double w = (p[i] - (i % 3 == (int)lab[i / 3] ? 1.0 : 0.0)) / 2.0;
        EXPECT_CLOSE(sl_grad(lx)[i], w, 1e-14, 1e-17, "dx[%d] = %.17g, want %.17g", i,
                     sl_grad(lx)[i], w);
    }
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

/* bce replayed with a probability outside [0, 1]: the record-time check, on replay. */
static void expect_replay_prob_error(double bad, const char *value_text, int check) {
    sl_tape *t = sl_tape_new();
    if (check) sl_tape_set_check(t, SL_CHECK_FINITE); /* anomaly mode: the same message */
    int n = 2;
    const double p[] = {0.5, 0.25}, y[] = {0.0, 1.0};
    sl_var *lp = sl_input(t, 1, &n, p, SL_GRAD), *ly = sl_input(t, 1, &n, y, SL_GRAD);
    sl_var *l = sl_bce(t, lp, ly);
    cr_assert_not_null(l, "%s", sl_tape_error(t));
    sl_leaf_data(lp)[1] = bad;
    cr_expect_eq(sl_forward(t), SL_EARG, "prob %g: forward did not fail", bad);
    const char *msg = sl_tape_error(t);
    char want[160];
    snprintf(want, sizeof want, "sl_forward: sl_bce: prob element 1 of [2] is %s, outside [0, 1]",
             value_text);
    cr_expect(msg && strstr(msg, want), "prob %g: message \"%s\" lacks \"%s\"", bad, msg, want);
    cr_expect_eq(sl_backward(t, l), SL_EARG);
    cr_expect_null(sl_grad(lp), "the refused sweep reached the probabilities");
    cr_expect_null(sl_grad(ly), "the refused sweep reached the targets");
    double tan[2] = {1, 1}, dy = -1.0;
    const double *tans[1] = {tan};
    cr_expect_eq(sl_jvp(t, l, 1, &lp, tans, &dy), SL_EARG);
    cr_expect_eq(dy, -1.0, "jvp wrote %g", dy);
    sl_tape_free(t);
}

Test(loss, bce_replay_rejects_probabilities_outside_unit_interval) {
    expect_replay_prob_error(3.0, "3", 0);
    expect_replay_prob_error(-0.1, "-0.10000000000000001", 0);
    expect_replay_prob_error(1.0000000000000002, "1.0000000000000002", 0);
    expect_replay_prob_error(NAN, "nan", 0);
    expect_replay_prob_error(3.0, "3", 1);
}

Test(loss, bce_replay_with_new_probabilities_matches_closed_form) {
    sl_tape *t = sl_tape_new();
    int n = 3;
    const double p0[] = {0.5, 0.5, 0.5}, y0[] = {0.0, 1.0, 0.0};
    sl_var *lp = sl_input(t, 1, &n, p0, SL_GRAD), *ly = sl_input(t, 1, &n, y0, 0);
    sl_var *l = sl_bce(t, lp, ly);
    cr_assert_not_null(l, "%s", sl_tape_error(t));
    const double p[] = {0.0, 1.0, 0.7}, y[] = {0.0, 1.0, 0.25}; /* the ends are valid */
    memcpy(sl_leaf_data(lp), p, sizeof p);
    memcpy(sl_leaf_data(ly), y, sizeof y);
    cr_assert_eq(sl_forward(t), SL_OK, "%s", sl_tape_error(t));
    /* certain right answers cost 0; the third -(0.25 log 0.7 + 0.75 log 0.3) */
    const double want = -(0.25 * log(0.7) + 0.75 * log(0.3)) / 3.0;
    EXPECT_CLOSE(sl_item(l), want, 1e-15, 0.0, "bce = %.17g, want %.17g", sl_item(l), want);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

Test(loss, unequal_shapes_are_sticky_errors) {
    loss_fn fs[] = {sl_mse, sl_bce, sl_bce_with_logits};
    const char *names[] = {"sl_mse", "sl_bce", "sl_bce_with_logits"};
    for (int f = 0; f < 3; f++) {
        sl_tape *t = sl_tape_new();
        const int a[2] = {2, 3}, b[2] = {3, 2};
        double half[6] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
        sl_var *x = sl_input(t, 2, a, half, SL_GRAD), *y = sl_input(t, 2, b, half, 0);
        cr_expect_null(fs[f](t, x, y));
        cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
        char want[96];
        snprintf(want, sizeof want, "%s: shapes differ: [2,3] and [3,2]", names[f]);
        cr_expect(strstr(sl_tape_error(t), want), "\"%s\" lacks \"%s\"", sl_tape_error(t), want);
        sl_tape_free(t);
        /* broadcastable shapes are still refused: losses do not broadcast */
        t = sl_tape_new();
        const int c[1] = {3};
        x = sl_input(t, 2, a, half, SL_GRAD);
        y = sl_input(t, 1, c, half, 0);
        cr_expect_null(fs[f](t, x, y));
        cr_expect(sl_tape_error(t) && strstr(sl_tape_error(t), "[2,3] and [3]"), "%s",
                  sl_tape_error(t));
        sl_tape_free(t);
    }
}

Test(loss, gradcheck_every_loss) {
    const char *names[] = {"mse", "bce", "bce_with_logits", "cross_entropy"};
    for (int i = 0; i < 4; i++) {
        const sl_op *op = sl_op_find(names[i]);
        cr_assert_not_null(op, "%s is not registered", names[i]);
        sl_gradcheck_report report;
        cr_expect_eq(sl_gradcheck_op(op, NULL, &report), SL_OK, "%s: %s", names[i], report.message);
        cr_expect(report.ok && report.ncases > 0, "%s", names[i]);
    }
    const sl_op *ce_op = sl_op_find("cross_entropy");
    cr_expect_eq(ce_op->domain[1], SL_DOMAIN_LABELS);
    cr_expect_not_null(ce_op->saved, "cross_entropy saves its probabilities");
}
