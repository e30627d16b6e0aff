/*
 * test_activation_more.c - the activations beyond the seed course's four
 * (softplus, elu, gelu in both forms, silu, softsign, log_sigmoid) and the
 * saturation of sigmoid and tanh.
 *
 * Expected values come from closed forms evaluated here with libm, from
 * PyTorch's documented definitions and from hand-worked numbers - never from
 * slope itself. Slopes are read as the gradient of sum(act(x)), so each
 * element's gradient is that element's derivative.
 */
#include "slope.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAXN 16

typedef sl_var *(*act_fn)(sl_tape *, sl_var *);

static sl_var *elu1(sl_tape *t, sl_var *x) { return sl_elu(t, x, 1.0); }
static sl_var *elu_half(sl_tape *t, sl_var *x) { return sl_elu(t, x, 0.5); }
static sl_var *gelu_erf(sl_tape *t, sl_var *x) { return sl_gelu(t, x, SL_GELU_ERF); }
static sl_var *gelu_tanh(sl_tape *t, sl_var *x) { return sl_gelu(t, x, SL_GELU_TANH); }

/* a = f(z) and da = f'(z) element by element, through one tape: y = sum(f(x)). */
static void eval(act_fn f, int n, const double *z, double *a, double *da) {
    sl_tape *t = sl_tape_new();
    cr_assert_not_null(t);
    sl_var *x = sl_input(t, 1, &n, z, SL_GRAD);
    sl_var *y = f(t, x);
    sl_var *s = sl_sum(t, y, SL_ALL, 0);
    cr_assert_eq(sl_backward(t, s), SL_OK, "%s", sl_tape_error(t));
    memcpy(a, sl_value(y), (size_t)n * sizeof *a);
    memcpy(da, sl_grad(x), (size_t)n * sizeof *da);
    sl_tape_free(t);
}

/* |got - want| <= atol + rtol |want| */
static int close_to(double got, double want, double rtol, double atol) {
    return fabs(got - want) <= atol + rtol * fabs(want);
}

#define EXPECT_CLOSE(got, want, rtol, atol, what, z)                                               \
    cr_expect(close_to((got), (want), (rtol), (atol)), "%s at z = %g: got %.17g, want %.17g",      \
              (what), (z), (got), (want))

/* ------------------------------------------------------------- closed forms */

static double sigmoid_cf(double z) { return 1.0 / (1.0 + exp(-z)); }
static double phi_cf(double z) { return exp(-z * z / 2.0) / sqrt(2.0 * 3.14159265358979323846); }
static double Phi_cf(double z) { return 0.5 * (1.0 + erf(z / sqrt(2.0))); }
/* PyTorch's documented tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static double gelu_tanh_cf(double z) {
    const double k = sqrt(2.0 / 3.14159265358979323846);
    return 0.5 * z * (1.0 + tanh(k * (z + 0.044715 * z * z * z)));
}
/* its derivative by the chain rule, written with sech^2 = 1/cosh^2 */
static double gelu_tanh_slope_cf(double z) {
    const double k = sqrt(2.0 / 3.14159265358979323846);
    const double u = k * (z + 0.044715 * z * z * z), du = k * (1.0 + 3.0 * 0.044715 * z * z);
    const double c = cosh(u);
    return 0.5 * (1.0 + tanh(u)) + 0.5 * z * du / (c * c);
}

/* ------------------------------------------------------------------ softplus */

Test(activation, softplus_matches_log_one_plus_exp) {
    const double z[] = {-5.0, -1.5, -0.25, 0.0, 0.5, 2.0, 7.0, 15.0};
    const int n = (int)(sizeof z / sizeof z[0]);
    double a[MAXN], da[MAXN];
    eval(sl_softplus, n, z, a, da);
    for (int i = 0; i < n; i++) {
        /* log(1+e^z) itself is good to ~2e-14 relative on this range */
        EXPECT_CLOSE(a[i], log(1.0 + exp(z[i])), 1e-13, 0.0, "softplus", z[i]);
        EXPECT_CLOSE(da[i], sigmoid_cf(z[i]), 1e-13, 1e-16, "softplus'", z[i]);
    }
    cr_expect_eq(a[3], log(2.0), "softplus(0) = log 2");
    cr_expect_eq(da[3], 0.5, "softplus'(0) = 1/2");
}

Test(activation, softplus_threshold_and_extremes) {
    /* PyTorch: beta 1, threshold 20 - above 20 the output is x itself, slope 1 */
    const double z[] = {20.0, 20.5, 25.0, 800.0, -800.0, -40.0};
    double a[6], da[6];
    eval(sl_softplus, 6, z, a, da);
    EXPECT_CLOSE(a[0], 20.0 + log1p(exp(-20.0)), 1e-15, 0.0, "softplus", 20.0);
    EXPECT_CLOSE(da[0], 1.0 / (1.0 + exp(-20.0)), 1e-15, 0.0, "softplus'", 20.0);
    cr_expect_eq(a[1], 20.5);
    cr_expect_eq(da[1], 1.0);
    cr_expect_eq(a[2], 25.0);
    cr_expect_eq(da[2], 1.0);
    cr_expect_eq(a[3], 800.0, "softplus(800) = 800, got %.17g", a[3]);
    cr_expect_eq(da[3], 1.0);
    /* e^-800 underflows: the value is 0 (never negative), the slope finite and ~0 */
    cr_expect(isfinite(a[4]) && a[4] >= 0.0 && a[4] < 1e-300, "softplus(-800) = %g", a[4]);
    cr_expect(isfinite(da[4]) && da[4] >= 0.0 && da[4] < 1e-300, "softplus'(-800) = %g", da[4]);
    /* far below 0 softplus(z) ~ e^z and so is its slope: relative accuracy kept */
    EXPECT_CLOSE(a[5], exp(-40.0), 1e-13, 0.0, "softplus", -40.0);
    EXPECT_CLOSE(da[5], exp(-40.0), 1e-13, 0.0, "softplus'", -40.0);
}

/* ----------------------------------------------------------------------- elu */

Test(activation, elu_values_slopes_and_kink) {
    const double z[] = {-3.0, -1.0, -0.1, 0.0, 0.5, 2.0};
    double a[6], da[6];
    eval(elu1, 6, z, a, da);
    for (int i = 0; i < 6; i++) {
        double want = z[i] > 0 ? z[i] : exp(z[i]) - 1.0;
        double slope = z[i] > 0 ? 1.0 : exp(z[i]);
        EXPECT_CLOSE(a[i], want, 1e-14, 1e-16, "elu", z[i]);
        EXPECT_CLOSE(da[i], slope, 1e-14, 1e-16, "elu'", z[i]);
    }
    /* alpha = 0.5: the slope at exactly 0 is alpha (PyTorch), left of 0 alpha e^z */
    eval(elu_half, 6, z, a, da);
    cr_expect_eq(a[3], 0.0);
    cr_expect_eq(da[3], 0.5, "elu'(0) with alpha 0.5 is alpha, got %.17g", da[3]);
    EXPECT_CLOSE(a[1], 0.5 * (exp(-1.0) - 1.0), 1e-14, 0.0, "elu(alpha 0.5)", -1.0);
    EXPECT_CLOSE(da[1], 0.5 * exp(-1.0), 1e-14, 0.0, "elu'(alpha 0.5)", -1.0);
    cr_expect_eq(a[5], 2.0);
    cr_expect_eq(da[5], 1.0);
}

Test(activation, elu_extremes_and_bad_alpha) {
    const double z[] = {800.0, -800.0};
    double a[2], da[2];
    eval(elu1, 2, z, a, da);
    cr_expect_eq(a[0], 800.0);
    cr_expect_eq(da[0], 1.0);
    cr_expect_eq(a[1], -1.0, "elu(-800) = -alpha, got %.17g", a[1]);
    cr_expect_eq(da[1], 0.0, "elu'(-800) = alpha e^-800 = 0, got %.17g", da[1]);

    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_scalar(t, 1.0, 0);
        cr_expect_null(sl_elu(t, x, bad[i]));
        cr_expect_eq(sl_tape_status(t), SL_EARG);
        const char *msg = sl_tape_error(t);
        cr_expect(msg && strstr(msg, "sl_elu") && strstr(msg, "alpha"), "%s", msg);
        sl_tape_free(t);
    }
}

/* ---------------------------------------------------------------------- gelu */

Test(activation, gelu_erf_form) {
    const double z[] = {-3.0, -1.0, -0.3, 0.0, 0.7, 1.0, 2.5};
    double a[7], da[7];
    eval(gelu_erf, 7, z, a, da);
    for (int i = 0; i < 7; i++) {
        EXPECT_CLOSE(a[i], z[i] * Phi_cf(z[i]), 1e-14, 1e-16, "gelu(erf)", z[i]);
        EXPECT_CLOSE(da[i], Phi_cf(z[i]) + z[i] * phi_cf(z[i]), 1e-14, 1e-16, "gelu'(erf)", z[i]);
    }
    /* pinned numbers: Phi(1) and -Phi(-1), and gelu'(1) = Phi(1) + phi(1) */
    EXPECT_CLOSE(a[5], 0.8413447460685429, 1e-15, 0.0, "gelu(erf)", 1.0);
    EXPECT_CLOSE(a[1], -0.15865525393145707, 1e-15, 0.0, "gelu(erf)", -1.0);
    EXPECT_CLOSE(da[5], 0.8413447460685429 + 0.24197072451914337, 1e-15, 0.0, "gelu'(erf)", 1.0);
    cr_expect_eq(a[3], 0.0);
    cr_expect_eq(da[3], 0.5, "gelu'(0) = 1/2");
}

Test(activation, gelu_tanh_form) {
    const double z[] = {-3.0, -1.0, -0.3, 0.0, 0.7, 1.0, 2.5};
    double a[7], da[7];
    eval(gelu_tanh, 7, z, a, da);
    for (int i = 0; i < 7; i++) {
        EXPECT_CLOSE(a[i], gelu_tanh_cf(z[i]), 1e-14, 1e-16, "gelu(tanh)", z[i]);
        EXPECT_CLOSE(da[i], gelu_tanh_slope_cf(z[i]), 1e-13, 1e-16, "gelu'(tanh)", z[i]);
        /* and the slope agrees with a central difference of the closed form */
        const double h = 1e-5;
        double fd = (gelu_tanh_cf(z[i] + h) - gelu_tanh_cf(z[i] - h)) / (2.0 * h);
        EXPECT_CLOSE(da[i], fd, 1e-8, 1e-9, "gelu'(tanh) vs difference", z[i]);
    }
    EXPECT_CLOSE(a[5], 0.8411919906082768, 1e-15, 0.0, "gelu(tanh)", 1.0);
    cr_expect_eq(a[3], 0.0);
    cr_expect_eq(da[3], 0.5);
    /* the two forms are close but not equal */
    cr_expect(fabs(a[5] - 0.8413447460685429) > 1e-4);
}

Test(activation, gelu_extremes_and_bad_mode) {
    act_fn fs[] = {gelu_erf, gelu_tanh};
    for (int m = 0; m < 2; m++) {
        const double z[] = {800.0, -800.0, 40.0, -40.0};
        double a[4], da[4];
        eval(fs[m], 4, z, a, da);
        cr_expect_eq(a[0], 800.0, "mode %d: gelu(800) = %.17g", m, a[0]);
        cr_expect_eq(da[0], 1.0, "mode %d: gelu'(800) = %.17g", m, da[0]);
        cr_expect(a[1] == 0.0 && da[1] == 0.0, "mode %d: gelu(-800) = %g, slope %g", m, a[1],
                  da[1]);
        cr_expect_eq(a[2], 40.0);
        cr_expect(fabs(a[3]) < 1e-300 && fabs(da[3]) < 1e-300, "mode %d: gelu(-40) = %g, %g", m,
                  a[3], da[3]);
    }
    const int bad[] = {2, -1, 42};
    for (int i = 0; i < 3; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_scalar(t, 1.0, SL_GRAD);
        cr_expect_null(sl_gelu(t, x, bad[i]));
        cr_expect_eq(sl_tape_status(t), SL_EARG);
        char val[16];
        snprintf(val, sizeof val, "%d", bad[i]);
        const char *msg = sl_tape_error(t);
        cr_expect(msg && strstr(msg, "sl_gelu") && strstr(msg, val), "%s", msg);
        sl_tape_free(t);
    }
}

/* ---------------------------------------------------------------------- silu */

Test(activation, silu_values_and_slopes) {
    const double z[] = {-6.0, -1.0, 0.0, 0.5, 1.0, 4.0, 800.0, -800.0};
    double a[8], da[8];
    eval(sl_silu, 8, z, a, da);
    for (int i = 0; i < 6; i++) {
        const double s = sigmoid_cf(z[i]);
        EXPECT_CLOSE(a[i], z[i] / (1.0 + exp(-z[i])), 1e-14, 1e-16, "silu", z[i]);
        EXPECT_CLOSE(da[i], s + z[i] * s * (1.0 - s), 1e-14, 1e-16, "silu'", z[i]);
    }
    cr_expect_eq(a[2], 0.0);
    cr_expect_eq(da[2], 0.5, "silu'(0) = sigmoid(0) = 1/2");
    EXPECT_CLOSE(a[4], 0.7310585786300049, 1e-15, 0.0, "silu", 1.0);
    cr_expect_eq(a[6], 800.0);
    cr_expect_eq(da[6], 1.0);
    cr_expect(a[7] == 0.0 && da[7] == 0.0, "silu(-800) = %g, slope %g", a[7], da[7]);
}

/* ------------------------------------------------------------------ softsign */

Test(activation, softsign_values_and_slopes) {
    const double z[] = {-3.0, -1.0, 0.0, 1.0, 0.25, 1e8, -800.0};
    double a[7], da[7];
    eval(sl_softsign, 7, z, a, da);
    /* hand-worked: -3/4, -1/2, 0, 1/2, 1/5 and slopes 1/16, 1/4, 1, 1/4, 16/25 */
    const double want[] = {-0.75, -0.5, 0.0, 0.5, 0.2};
    const double slope[] = {1.0 / 16.0, 0.25, 1.0, 0.25, 0.64};
    for (int i = 0; i < 5; i++) {
        EXPECT_CLOSE(a[i], want[i], 1e-15, 0.0, "softsign", z[i]);
        EXPECT_CLOSE(da[i], slope[i], 1e-15, 0.0, "softsign'", z[i]);
    }
    /* far out the slope keeps its relative accuracy: 1/(1+1e8)^2 */
    EXPECT_CLOSE(da[5], 1.0 / ((1.0 + 1e8) * (1.0 + 1e8)), 1e-14, 0.0, "softsign'", 1e8);
    EXPECT_CLOSE(a[6], -800.0 / 801.0, 1e-15, 0.0, "softsign", -800.0);
    EXPECT_CLOSE(da[6], 1.0 / (801.0 * 801.0), 1e-14, 0.0, "softsign'", -800.0);
}

/* --------------------------------------------------------------- log_sigmoid */

Test(activation, log_sigmoid_values_and_slopes) {
    const double z[] = {-10.0, -2.0, -0.5, 0.0, 0.5, 3.0, 12.0};
    double a[7], da[7];
    eval(sl_log_sigmoid, 7, z, a, da);
    for (int i = 0; i < 7; i++) {
        /* log1p: log(1+e^-z) would lose digits at z = 12 */
        EXPECT_CLOSE(a[i], -log1p(exp(-z[i])), 1e-14, 1e-17, "log_sigmoid", z[i]);
        EXPECT_CLOSE(da[i], 1.0 / (1.0 + exp(z[i])), 1e-13, 1e-17, "log_sigmoid'", z[i]);
    }
    cr_expect_eq(a[3], -log(2.0));
    cr_expect_eq(da[3], 0.5);
}

Test(activation, log_sigmoid_extremes) {
    const double z[] = {-800.0, 800.0, -40.0, 40.0};
    double a[4], da[4];
    eval(sl_log_sigmoid, 4, z, a, da);
    cr_expect_eq(a[0], -800.0, "log_sigmoid(-800) = %.17g", a[0]);
    cr_expect_eq(da[0], 1.0, "log_sigmoid'(-800) = %.17g", da[0]);
    cr_expect_eq(a[1], 0.0, "log_sigmoid(800) = %.17g (0 or -0)", a[1]);
    cr_expect_eq(da[1], 0.0, "log_sigmoid'(800) = %.17g", da[1]);
    EXPECT_CLOSE(a[2], -40.0 - exp(-40.0), 1e-15, 0.0, "log_sigmoid", -40.0);
    EXPECT_CLOSE(da[2], 1.0 - exp(-40.0), 1e-15, 0.0, "log_sigmoid'", -40.0);
    /* log_sigmoid(40) = -log1p(e^-40) ~ -e^-40, slope ~ e^-40: relative accuracy kept */
    EXPECT_CLOSE(a[3], -exp(-40.0), 1e-13, 0.0, "log_sigmoid", 40.0);
    EXPECT_CLOSE(da[3], exp(-40.0), 1e-13, 0.0, "log_sigmoid'", 40.0);
}

/* ----------------------------------------------------- sigmoid/tanh saturation */

Test(activation, sigmoid_and_tanh_saturate) {
    const double z[] = {800.0, -800.0, 40.0, -40.0, 5.0, -5.0};
    double a[6], da[6];
    eval(sl_sigmoid, 6, z, a, da);
    cr_expect(a[0] == 1.0 && da[0] == 0.0, "sigmoid(800) = %g, %g", a[0], da[0]);
    cr_expect(a[1] == 0.0 && da[1] == 0.0, "sigmoid(-800) = %g, %g", a[1], da[1]);
    /* left of 0 the output itself is tiny and exact: e^-40/(1+e^-40) */
    EXPECT_CLOSE(a[3], exp(-40.0) / (1.0 + exp(-40.0)), 1e-14, 0.0, "sigmoid", -40.0);
    EXPECT_CLOSE(da[3], exp(-40.0) / ((1.0 + exp(-40.0)) * (1.0 + exp(-40.0))), 1e-14, 0.0,
                 "sigmoid'", -40.0);
    /* right of 0, a(1-a) from the saved output is exact to 1 ulp of 1 */
    EXPECT_CLOSE(da[2], exp(-40.0), 0.0, 2.3e-16, "sigmoid'", 40.0);
    for (int i = 4; i < 6; i++) {
        const double e = exp(-fabs(z[i]));
        EXPECT_CLOSE(da[i], e / ((1.0 + e) * (1.0 + e)), 1e-12, 0.0, "sigmoid'", z[i]);
    }
    eval(sl_tanh, 6, z, a, da);
    cr_expect(a[0] == 1.0 && da[0] == 0.0, "tanh(800) = %g, %g", a[0], da[0]);
    cr_expect(a[1] == -1.0 && da[1] == 0.0, "tanh(-800) = %g, %g", a[1], da[1]);
    cr_expect(a[2] == 1.0 && a[3] == -1.0);
    cr_expect(fabs(da[2]) <= 2.3e-16 && fabs(da[3]) <= 2.3e-16);
    for (int i = 4; i < 6; i++) {
        const double c = cosh(z[i]);
        EXPECT_CLOSE(da[i], 1.0 / (c * c), 1e-11, 0.0, "tanh'", z[i]);
    }
}

/* --------------------------------------------------------- every-op checks */

Test(activation, gradcheck_new_ops) {
    const char *names[] = {"softplus", "elu", "gelu", "silu", "softsign", "log_sigmoid"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const sl_op *op = sl_op_find(names[i]);
        cr_assert_not_null(op, "op %s is not registered", names[i]);
        sl_gradcheck_report report;
        int rc = sl_gradcheck_op(op, NULL, &report);
        cr_expect_eq(rc, SL_OK, "%s: %s", names[i], report.message);
        cr_expect(report.ok && report.ncases > 0, "%s: %d cases", names[i], report.ncases);
    }
}

Test(activation, gelu_checks_both_modes) {
    const sl_op *op = sl_op_find("gelu");
    cr_assert_not_null(op);
    cr_expect_eq(op->kind, SL_KIND_CUSTOM);
    int erf_cases = 0, tanh_cases = 0;
    for (int i = 0; i < op->ncases; i++) {
        erf_cases += op->cases[i].attrs.mode == SL_GELU_ERF;
        tanh_cases += op->cases[i].attrs.mode == SL_GELU_TANH;
    }
    cr_expect(erf_cases >= 2 && tanh_cases >= 2, "erf cases %d, tanh cases %d", erf_cases,
              tanh_cases);
}

Test(activation, new_ops_have_docs_and_keep_the_first_four) {
    /* the seed course's four stay first in the family, in order */
    const char *first[] = {"sigmoid", "tanh", "relu", "leaky_relu"};
    int base = -1;
    for (int i = 0; i < sl_op_count(); i++)
        if (!strcmp(sl_op_at(i)->name, "sigmoid")) base = i;
    cr_assert(base >= 0);
    for (int k = 0; k < 4; k++) cr_expect_str_eq(sl_op_at(base + k)->name, first[k]);
    const char *names[] = {"softplus", "elu", "gelu", "silu", "softsign", "log_sigmoid"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const sl_op *op = sl_op_find(names[i]);
        cr_assert_not_null(op);
        cr_expect(op->signature && op->formula && op->derivative, "%s lacks docs", names[i]);
        cr_expect_eq(op->arity, 1);
    }
    /* the slope texts say where they come from */
    cr_expect(strstr(sl_op_find("softplus")->derivative, "saved output"));
    cr_expect(strstr(sl_op_find("log_sigmoid")->derivative, "saved output"));
    cr_expect(strstr(sl_op_find("elu")->derivative, "saved output"));
}

Test(activation, poison_passes_through) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 1.0, 0);
    cr_expect_null(sl_gelu(t, x, 7)); /* the first error */
    act_fn fs[] = {sl_softplus, sl_silu, sl_softsign, sl_log_sigmoid, elu1, gelu_erf};
    for (int i = 0; i < 6; i++) cr_expect_null(fs[i](t, NULL));
    cr_expect(strstr(sl_tape_error(t), "sl_gelu"), "the first error wins: %s", sl_tape_error(t));
    sl_tape_free(t);
    /* a NULL input on a clean tape is itself an error */
    t = sl_tape_new();
    cr_expect_null(sl_softplus(t, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect(strstr(sl_tape_error(t), "sl_softplus"), "%s", sl_tape_error(t));
    sl_tape_free(t);
}
