/*
 * test_activation.c - the seed course's four activations: values and slopes
 * at the sanity points every reader of the course knows, from closed forms
 * (never from slope itself), and finite results at z = +-800.
 */
#include "slope.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* Value and derivative of act at z, through one tape: a = act(z), backward. */
typedef sl_var *(*act_fn)(sl_tape *, sl_var *);

static void slope_at(act_fn f, double z, double *a, double *da) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, z, SL_GRAD);
    sl_var *y = f(t, x);
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    *a = sl_item(y);
    *da = sl_grad(x)[0];
    sl_tape_free(t);
}

static sl_var *leaky(sl_tape *t, sl_var *x) { return sl_leaky_relu(t, x, 0.01); }

Test(activation, sigmoid_sanity_values) {
    double a, da;
    slope_at(sl_sigmoid, 0.0, &a, &da);
    cr_expect_eq(a, 0.5);
    cr_expect_eq(da, 0.25, "sigmoid'(0) must be exactly 1/4, got %.17g", da);
    for (int s = -1; s <= 1; s += 2) {
        slope_at(sl_sigmoid, 10.0 * s, &a, &da);
        double e = exp(-10.0), want = e / ((1 + e) * (1 + e)); /* closed form */
        cr_expect(fabs(da - want) <= 1e-12 * want, "sigmoid'(%d) = %.17g, want %.17g", 10 * s, da,
                  want);
        cr_expect(fabs(da - 4.5396e-5) < 5e-9);
    }
}

Test(activation, tanh_sanity_values) {
    double a, da;
    slope_at(sl_tanh, 0.0, &a, &da);
    cr_expect_eq(a, 0.0);
    cr_expect_eq(da, 1.0);
    for (int s = -1; s <= 1; s += 2) {
        slope_at(sl_tanh, 10.0 * s, &a, &da);
        double c = cosh(10.0), want = 1.0 / (c * c); /* sech^2 */
        cr_expect(fabs(da - want) <= 1e-7 * want, "tanh'(%d) = %.17g, want %.17g", 10 * s, da,
                  want);
        cr_expect(fabs(da - 8.2e-9) < 0.05e-9);
    }
}

Test(activation, relu_steps_and_kink) {
    double a, da;
    slope_at(sl_relu, -1.0, &a, &da);
    cr_expect_eq(a, 0.0);
    cr_expect_eq(da, 0.0);
    slope_at(sl_relu, 2.0, &a, &da);
    cr_expect_eq(a, 2.0);
    cr_expect_eq(da, 1.0);
    slope_at(sl_relu, 0.0, &a, &da);
    cr_expect_eq(a, 0.0);
    cr_expect_eq(da, 0.0, "relu'(0) is the subgradient 0, as PyTorch");
}

Test(activation, leaky_relu_steps_and_kink) {
    double a, da;
    slope_at(leaky, -3.0, &a, &da);
    cr_expect_eq(a, -0.03);
    cr_expect_eq(da, 0.01);
    slope_at(leaky, 2.0, &a, &da);
    cr_expect_eq(a, 2.0);
    cr_expect_eq(da, 1.0);
    slope_at(leaky, 0.0, &a, &da);
    cr_expect_eq(a, 0.0);
    cr_expect_eq(da, 0.01, "leaky_relu'(0) is alpha, as PyTorch");
}

Test(activation, extremes_are_finite) {
    act_fn fs[] = {sl_sigmoid, sl_tanh, sl_relu, leaky};
    const char *names[] = {"sigmoid", "tanh", "relu", "leaky_relu"};
    for (int i = 0; i < 4; i++)
        for (int s = -1; s <= 1; s += 2) {
            double a, da;
            slope_at(fs[i], 800.0 * s, &a, &da);
            cr_expect(isfinite(a) && isfinite(da), "%s(%d): a = %g, da = %g", names[i], 800 * s, a,
                      da);
        }
    double a, da;
    slope_at(sl_sigmoid, 800.0, &a, &da);
    cr_expect_eq(a, 1.0);
    cr_expect_eq(da, 0.0);
    slope_at(sl_sigmoid, -800.0, &a, &da);
    cr_expect_eq(a, 0.0);
    cr_expect_eq(da, 0.0);
}

Test(activation, leaky_relu_rejects_non_finite_alpha) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 1.0, 0);
    cr_expect_null(sl_leaky_relu(t, x, NAN));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect(strstr(sl_tape_error(t), "sl_leaky_relu") && strstr(sl_tape_error(t), "alpha"), "%s",
              sl_tape_error(t));
    sl_tape_free(t);
}
