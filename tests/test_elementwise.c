/*
 * test_elementwise.c - values and gradients of the arithmetic element-wise
 * ops against libm closed forms, the conventions at kinks and poles
 * (abs'(0) = 0, pow with p = 0, IEEE results of log at 0 and below),
 * log1p and expm1 at tiny and large z and at their domain edges (series and
 * torch's numbers), the checker catching their likely wrong rules, and the
 * backward of broadcast binary ops, which sums over the broadcast axes.
 *
 * Gradients are taken with sl_backward_seed and a seed that is not all ones,
 * so a backward that ignores the incoming gradient g is caught.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>

#define N 7
static const double X[N] = {-2.5, -1.0, -0.3, 0.4, 1.0, 1.7, 3.2};
static const double POS[N] = {0.05, 0.3, 0.9, 1.0, 1.6, 4.0, 12.5};
static const double G[N] = {0.5, -2.0, 3.0, 1.0, -0.25, 7.0, 0.125};

typedef sl_var *(*unary_fn)(sl_tape *, sl_var *);

/* value and seeded gradient of f at the points xs */
static void run_unary(unary_fn f, const double *xs, double *val, double *grad) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){N}, xs, SL_GRAD);
    sl_var *y = f(t, x);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < N; i++) {
        val[i] = sl_value(y)[i];
        grad[i] = sl_grad(x)[i];
    }
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

static double d_neg(double z) {
    (void)z;
    return -1.0;
}
static double f_neg(double z) { return -z; }
static double d_exp(double z) { return exp(z); }
static double d_log(double z) { return 1.0 / z; }
static double d_sqrt(double z) { return 0.5 / sqrt(z); }
static double d_abs(double z) { return z > 0 ? 1.0 : -1.0; } /* no zeros among the points */
static double f_square(double z) { return z * z; }
static double d_square(double z) { return 2.0 * z; }
static double d_sin(double z) { return cos(z); }
static double d_cos(double z) { return -sin(z); }

Test(elementwise, unary_values_and_gradients) {
    static const struct {
        const char *name;
        unary_fn f;
        double (*value)(double);
        double (*slope)(double);
        int positive;
    } ops[] = {
        {"neg", sl_neg, f_neg, d_neg, 0}, {"exp", sl_exp, exp, d_exp, 0},
        {"log", sl_log, log, d_log, 1},   {"sqrt", sl_sqrt, sqrt, d_sqrt, 1},
        {"abs", sl_abs, fabs, d_abs, 0},  {"square", sl_square, f_square, d_square, 0},
        {"sin", sl_sin, sin, d_sin, 0},   {"cos", sl_cos, cos, d_cos, 0},
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        const double *xs = ops[k].positive ? POS : X;
        double v[N], g[N];
        run_unary(ops[k].f, xs, v, g);
        for (int i = 0; i < N; i++) {
            double wv = ops[k].value(xs[i]), wg = G[i] * ops[k].slope(xs[i]);
            cr_expect(near(v[i], wv, 1e-15, 0), "%s(%g) = %.17g, want %.17g", ops[k].name, xs[i],
                      v[i], wv);
            cr_expect(near(g[i], wg, 1e-14, 1e-300), "%s'(%g)*g = %.17g, want %.17g", ops[k].name,
                      xs[i], g[i], wg);
        }
    }
}

static double pow_p;
static sl_var *pow_fn(sl_tape *t, sl_var *x) { return sl_pow(t, x, pow_p); }

Test(elementwise, pow_values_and_gradients) {
    static const double ps[] = {2.0, 3.0, 0.5, -1.5, 1.0, -1.0, 2.5};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        pow_p = ps[k];
        double v[N], g[N];
        run_unary(pow_fn, POS, v, g);
        for (int i = 0; i < N; i++) {
            double wv = pow(POS[i], pow_p), wg = G[i] * pow_p * pow(POS[i], pow_p - 1.0);
            cr_expect(near(v[i], wv, 1e-15, 0), "%g^%g", POS[i], pow_p);
            cr_expect(near(g[i], wg, 1e-14, 0), "d/dz z^%g at %g: %.17g, want %.17g", pow_p, POS[i],
                      g[i], wg);
        }
    }
    /* integer exponents on negative bases are real */
    pow_p = 3.0;
    double v[N], g[N];
    run_unary(pow_fn, X, v, g);
    for (int i = 0; i < N; i++) {
        cr_expect(near(v[i], X[i] * X[i] * X[i], 1e-15, 1e-300));
        cr_expect(near(g[i], G[i] * 3.0 * X[i] * X[i], 1e-14, 0));
    }
}

Test(elementwise, pow_zero_exponent_has_zero_gradient) {
    const double xs[4] = {0.0, 2.0, -3.0, 1e-300};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){4}, xs, SL_GRAD);
    sl_var *y = sl_sum(t, sl_pow(t, x, 0.0), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_item(y), 4.0, "z^0 = 1 everywhere, 0^0 included");
    for (int i = 0; i < 4; i++)
        cr_expect_eq(sl_grad(x)[i], 0.0, "d/dz z^0 at %g = %g, want 0 (not NaN)", xs[i],
                     sl_grad(x)[i]);
    sl_tape_free(t);
}

Test(elementwise, pow_rejects_non_finite_exponent) {
    const double bad[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_scalar(t, 2.0, SL_GRAD);
        cr_expect_null(sl_pow(t, x, bad[k]));
        cr_expect_eq(sl_tape_status(t), SL_EARG);
        cr_expect(contains(sl_tape_error(t), "sl_pow"), "%s", sl_tape_error(t));
        sl_tape_free(t);
    }
}

Test(elementwise, abs_subgradient_at_zero) {
    const double xs[3] = {0.0, -0.0, 5.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    sl_var *y = sl_sum(t, sl_abs(t, x), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 0.0, "abs'(0) = 0, as PyTorch");
    cr_expect_eq(sl_grad(x)[1], 0.0, "abs'(-0) = 0");
    cr_expect_eq(sl_grad(x)[2], 1.0);
    cr_expect_eq(sl_item(y), 5.0);
    sl_tape_free(t);
}

/* log outside its domain follows IEEE: NaN below 0, -inf at 0; no tape error,
 * no crash, and the backward gives what PyTorch gives (1/z: -1 and +inf). */
Test(elementwise, log_outside_domain_is_ieee) {
    const double xs[3] = {-1.0, 0.0, 1.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    sl_var *y = sl_log(t, x);
    cr_assert_not_null(y);
    cr_expect(isnan(sl_value(y)[0]), "log(-1) = %g", sl_value(y)[0]);
    cr_expect(isinf(sl_value(y)[1]) && sl_value(y)[1] < 0, "log(0) = %g", sl_value(y)[1]);
    cr_expect_eq(sl_value(y)[2], 0.0);
    cr_expect_eq(sl_tape_status(t), SL_OK, "domain errors are values, not tape errors");
    const double ones[3] = {1, 1, 1};
    cr_expect_eq(sl_backward_seed(t, y, ones), SL_OK);
    cr_expect_eq(sl_grad(x)[0], -1.0);
    cr_expect(isinf(sl_grad(x)[1]) && sl_grad(x)[1] > 0);
    cr_expect_eq(sl_grad(x)[2], 1.0);
    /* sqrt(-1) and 1/0 likewise */
    sl_var *s = sl_sqrt(t, sl_scalar(t, -1.0, 0));
    cr_expect(isnan(sl_item(s)));
    sl_var *q = sl_div(t, sl_scalar(t, 1.0, 0), sl_scalar(t, 0.0, 0));
    cr_expect(isinf(sl_item(q)) && sl_item(q) > 0);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

/* log1p and expm1 against references: at tiny z the Taylor series, to the
 * last digit (where log(1 + z) and exp(z) - 1 keep 8 digits); elsewhere
 * torch.log1p / torch.expm1 in float64 and their backward (torch 2.x,
 * printed with repr), the domain edges included: log1p(-1) = -inf with slope
 * +inf, NaN below -1 (slope 1/(1+z) still finite, as PyTorch), expm1's
 * overflow to inf and its slope a + 1, which reads 0 once e^z < 2^-54. */
typedef struct ref1 {
    double z, a, slope;
} ref1;
static void check_refs(sl_var *(*f)(sl_tape *, sl_var *), const char *name, const ref1 *r, int n,
                       double rtol) {
    double zs[16], G1[16];
    for (int i = 0; i < n; i++) zs[i] = r[i].z, G1[i] = 1.0;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){n}, zs, SL_GRAD);
    sl_var *y = f(t, x);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward_seed(t, y, G1), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < n; i++) {
        cr_expect(near(sl_value(y)[i], r[i].a, rtol, 0), "%s(%.17g) = %.17g, want %.17g", name,
                  r[i].z, sl_value(y)[i], r[i].a);
        cr_expect(near(sl_grad(x)[i], r[i].slope, rtol, 0), "%s'(%.17g) = %.17g, want %.17g", name,
                  r[i].z, sl_grad(x)[i], r[i].slope);
    }
    sl_tape_free(t);
}

Test(elementwise, log1p_keeps_digits_and_its_domain_edges) {
    const double e = 1e-10; /* log1p(z) = z - z^2/2 + z^3/3, 1/(1+z) = 1 - z + z^2 */
    const ref1 series[] = {{e, e - e * e / 2 + e * e * e / 3, 1 - e + e * e},
                           {-e, -e - e * e / 2 - e * e * e / 3, 1 + e + e * e},
                           {1e-300, 1e-300, 1.0}};
    check_refs(sl_log1p, "log1p", series, 3, 2.3e-16); /* 1 ulp */
    const ref1 torch[] = {
        {0.5, 0.4054651081081644, 0.6666666666666666},
        {-0.5, -0.6931471805599453, 2.0},
        {-0.999, -6.907755278982136, 999.9999999999991},
        {3.0, 1.3862943611198906, 0.25},
        {1000000.0, 13.815511557963774, 9.99999000001e-07},
        {-1.0, -INFINITY, INFINITY},
        {-2.0, NAN, -1.0},
        {-40.0, NAN, -0.02564102564102564},
    };
    check_refs(sl_log1p, "log1p", torch, 8, 1e-15);
    /* the digits log(1 + z) loses */
    cr_expect(fabs(log(1.0 + e) - (e - e * e / 2)) > 1e-18);
}

Test(elementwise, expm1_keeps_digits_and_its_slope_is_a_plus_1) {
    const double e = 1e-10; /* expm1(z) = z + z^2/2 + z^3/6, e^z = 1 + z + z^2/2 */
    const ref1 series[] = {{e, e + e * e / 2 + e * e * e / 6, 1 + e + e * e / 2},
                           {-e, -e + e * e / 2 - e * e * e / 6, 1 - e + e * e / 2},
                           {1e-300, 1e-300, 1.0}};
    check_refs(sl_expm1, "expm1", series, 3, 2.3e-16);
    const ref1 torch[] = {
        {0.5, 0.6487212707001282, 1.6487212707001282},
        {-0.5, -0.3934693402873666, 0.6065306597126334},
        {3.0, 19.085536923187668, 20.085536923187668},
        {40.0, 2.3538526683702e+17, 2.3538526683702e+17},
        {700.0, 1.0142320547350045e+304, 1.0142320547350045e+304},
        {710.0, INFINITY, INFINITY},
        {-1.0, -0.6321205588285577, 0.36787944117144233},
        {-20.0, -0.9999999979388464,
         2.0611535811454473e-09}, /* e^-20 = 2.0611536224e-09: a + 1 keeps 7 digits */
        {-40.0, -1.0, 0.0},       /* a rounds to -1: the slope a + 1 is 0, not 4.2e-18 */
        {-INFINITY, -1.0, 0.0},
    };
    check_refs(sl_expm1, "expm1", torch, 10, 1e-15);
}

/* Same-shape binary ops: values and seeded gradients from the textbook rules. */
Test(elementwise, binary_values_and_gradients) {
    static const double B[N] = {1.5, -0.5, 2.0, -3.0, 0.25, 4.0, -1.25};
    for (int op = 0; op < 4; op++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, 1, (int[]){N}, X, SL_GRAD);
        sl_var *b = sl_input(t, 1, (int[]){N}, B, SL_GRAD);
        sl_var *y = op == 0   ? sl_add(t, a, b)
                    : op == 1 ? sl_sub(t, a, b)
                    : op == 2 ? sl_mul(t, a, b)
                              : sl_div(t, a, b);
        cr_assert_eq(sl_backward_seed(t, y, G), SL_OK);
        for (int i = 0; i < N; i++) {
            double x = X[i], z = B[i], v, da, db;
            switch (op) {
            case 0:
                v = x + z, da = 1, db = 1;
                break;
            case 1:
                v = x - z, da = 1, db = -1;
                break;
            case 2:
                v = x * z, da = z, db = x;
                break;
            default:
                v = x / z, da = 1 / z, db = -x / (z * z);
                break;
            }
            cr_expect(near(sl_value(y)[i], v, 1e-15, 0), "op %d elem %d value", op, i);
            cr_expect(near(sl_grad(a)[i], G[i] * da, 1e-14, 0), "op %d elem %d: da %.17g vs %.17g",
                      op, i, sl_grad(a)[i], G[i] * da);
            cr_expect(near(sl_grad(b)[i], G[i] * db, 1e-14, 0), "op %d elem %d: db %.17g vs %.17g",
                      op, i, sl_grad(b)[i], G[i] * db);
        }
        sl_tape_free(t);
    }
}

/* a [2,3] + b [3]: da = g, db = column sums of g (NumPy/PyTorch semantics). */
Test(elementwise, broadcast_backward_sums_over_broadcast_axes) {
    const double A[6] = {1, 2, 3, 4, 5, 6}, Bv[3] = {0.5, -1, 2};
    const double g[6] = {0.1, 0.2, 0.3, 1.0, 2.0, 3.0};
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){2, 3}, A, SL_GRAD);
    sl_var *b = sl_input(t, 1, (int[]){3}, Bv, SL_GRAD);
    sl_var *y = sl_add(t, a, b);
    cr_assert_eq(sl_backward_seed(t, y, g), SL_OK);
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_grad(a)[i], g[i]);
    for (int j = 0; j < 3; j++)
        cr_expect(near(sl_grad(b)[j], g[j] + g[3 + j], 1e-15, 0), "db[%d] = %g, want %g", j,
                  sl_grad(b)[j], g[j] + g[3 + j]);
    sl_tape_free(t);

    /* a [2,3] * b [3]: da = g b, db_j = sum_i g_ij a_ij */
    t = sl_tape_new();
    a = sl_input(t, 2, (int[]){2, 3}, A, SL_GRAD);
    b = sl_input(t, 1, (int[]){3}, Bv, SL_GRAD);
    y = sl_mul(t, a, b);
    cr_assert_eq(sl_backward_seed(t, y, g), SL_OK);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            cr_expect(near(sl_grad(a)[i * 3 + j], g[i * 3 + j] * Bv[j], 1e-15, 0));
    for (int j = 0; j < 3; j++)
        cr_expect(near(sl_grad(b)[j], g[j] * A[j] + g[3 + j] * A[3 + j], 1e-15, 0));
    sl_tape_free(t);

    /* a [2,1] - b [1,3] -> [2,3]: da = row sums of g, db = -column sums */
    t = sl_tape_new();
    const double A2[2] = {1, -1}, B2[3] = {2, 3, 4};
    a = sl_input(t, 2, (int[]){2, 1}, A2, SL_GRAD);
    b = sl_input(t, 2, (int[]){1, 3}, B2, SL_GRAD);
    y = sl_sub(t, a, b);
    cr_assert_eq(sl_ndim(y), 2);
    cr_assert_eq(sl_dims(y)[0], 2);
    cr_assert_eq(sl_dims(y)[1], 3);
    cr_assert_eq(sl_backward_seed(t, y, g), SL_OK);
    for (int i = 0; i < 2; i++)
        cr_expect(near(sl_grad(a)[i], g[i * 3] + g[i * 3 + 1] + g[i * 3 + 2], 1e-15, 0));
    for (int j = 0; j < 3; j++) cr_expect(near(sl_grad(b)[j], -(g[j] + g[3 + j]), 1e-15, 0));
    sl_tape_free(t);

    /* scalar s / b [2,3]: ds = sum g (-... no: d(s/b)/ds = 1/b), db = -g s / b^2 */
    t = sl_tape_new();
    const double s0 = 1.5;
    sl_var *s = sl_scalar(t, s0, SL_GRAD);
    b = sl_input(t, 2, (int[]){2, 3}, A, SL_GRAD);
    y = sl_div(t, s, b);
    cr_assert_eq(sl_backward_seed(t, y, g), SL_OK);
    double ds = 0;
    for (int i = 0; i < 6; i++) {
        ds += g[i] / A[i];
        cr_expect(near(sl_grad(b)[i], -g[i] * s0 / (A[i] * A[i]), 1e-15, 0));
    }
    cr_expect(near(sl_grad(s)[0], ds, 1e-15, 0), "ds = %.17g, want %.17g", sl_grad(s)[0], ds);
    sl_tape_free(t);

    /* rank 4 against rank 1, both directions of the broadcast at once:
     * a [2,1,3,1] * b [4] -> [2,1,3,4]; da sums over the last axis, db over the rest */
    t = sl_tape_new();
    double A4[6], B4[4], g4[24];
    for (int i = 0; i < 6; i++) A4[i] = 0.5 * i - 1;
    for (int i = 0; i < 4; i++) B4[i] = 1.0 + i;
    for (int i = 0; i < 24; i++) g4[i] = 0.1 * i - 0.7;
    a = sl_input(t, 4, (int[]){2, 1, 3, 1}, A4, SL_GRAD);
    b = sl_input(t, 1, (int[]){4}, B4, SL_GRAD);
    y = sl_mul(t, a, b);
    cr_assert_eq(sl_numel(y), 24);
    cr_assert_eq(sl_backward_seed(t, y, g4), SL_OK);
    for (int r = 0; r < 6; r++) { /* r = (i0, i2) flattened; output row r has 4 entries */
        double want = 0;
        for (int k = 0; k < 4; k++) want += g4[r * 4 + k] * B4[k];
        cr_expect(near(sl_grad(a)[r], want, 1e-14, 1e-15), "da[%d]", r);
    }
    for (int k = 0; k < 4; k++) {
        double want = 0;
        for (int r = 0; r < 6; r++) want += g4[r * 4 + k] * A4[r];
        cr_expect(near(sl_grad(b)[k], want, 1e-14, 1e-15), "db[%d]", k);
    }
    sl_tape_free(t);
}

/* x op x: both inputs are the same node, so both contributions land on it. */
Test(elementwise, same_node_on_both_sides) {
    const double x0 = 1.75;
    sl_var *(*ops[4])(sl_tape *, sl_var *, sl_var *) = {sl_add, sl_sub, sl_mul, sl_div};
    const double want[4] = {2.0, 0.0, 2 * x0, 0.0}; /* d/dx of 2x, 0, x^2, 1 */
    for (int k = 0; k < 4; k++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_scalar(t, x0, SL_GRAD);
        sl_var *y = ops[k](t, x, x);
        cr_assert_eq(sl_backward(t, y), SL_OK);
        cr_expect(near(sl_grad(x)[0], want[k], 1e-15, 1e-15), "op %d: %.17g, want %.17g", k,
                  sl_grad(x)[0], want[k]);
        sl_tape_free(t);
    }
}

/* Only the inputs that need a gradient get one. */
Test(elementwise, constant_operand_gets_no_gradient) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, 2.0, SL_GRAD), *c = sl_scalar(t, 5.0, 0);
    sl_var *y = sl_mul(t, c, a);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(a)[0], 5.0);
    cr_expect_null(sl_grad(c));
    sl_tape_free(t);
}

/* The checker catches expm1 with the slope a (e^z - 1) instead of a + 1 (e^z),
 * the mistake the saved-output form invites, and log1p with 1/z (log's) for
 * 1/(1+z); the built-in rules pass. */
static void expm1_bwd_a(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] * sl_value(out)[i];
}
static void log1p_bwd_as_log(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] / sl_value(x)[i];
}
Test(elementwise, the_checker_catches_wrong_log1p_and_expm1_rules) {
    expect_checker_catches("expm1", NULL, 0, expm1_bwd_a);
    expect_checker_catches("log1p", NULL, 0, log1p_bwd_as_log);
}
