/*
 * plugin_ops.c - a plugin for `slope check --load` (built as a module by
 * tests/CMakeLists.txt, not a test suite): user ops registered from a shared
 * object, one right and three deliberately wrong, so the command's report
 * can be tested - and shown in docs/gradcheck.md.
 *
 * It links nothing: the sl_* symbols come from the slope command that loads
 * it. Build one by hand with
 *     cc -shared -fPIC -I<prefix>/include myops.c -o myops.so
 */
#include "slope.h"

/* a = z^3, with the slope each rule applies given by f(z) */
static void cube_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = x[i] * x[i] * x[i];
}
static void backward_with(sl_var *out, double (*slope)(double)) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] * slope(sl_value(x)[i]);
}
static void jvp_with(sl_var *out, double (*slope)(double)) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_tangent_data(out)[i] = tx ? tx[i] * slope(sl_value(x)[i]) : 0.0;
}

static double cube_slope(double z) { return 3.0 * z * z; }
static double cube_slope_wrong(double z) { return 2.0 * z * z; }
static double cube_slope_1e4(double z) { return 3.0 * z * z * (1.0 + 1e-4); }
static void cube_backward(sl_var *out) { backward_with(out, cube_slope); }
static void cube_jvp(sl_var *out) { jvp_with(out, cube_slope); }
static void cube_backward_wrong(sl_var *out) { backward_with(out, cube_slope_wrong); }
static void cube_backward_1e4(sl_var *out) { backward_with(out, cube_slope_1e4); }
static void cube_jvp_1e4(sl_var *out) { jvp_with(out, cube_slope_1e4); }

/* relu whose rules give 1 at z = 0, declaring the PyTorch convention 0 */
static void relu_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = x[i] > 0 ? x[i] : 0.0;
}
static double relu_slope_at1(double z) { return z >= 0 ? 1.0 : 0.0; }
static void relu_backward_at1(sl_var *out) { backward_with(out, relu_slope_at1); }
static void relu_jvp_at1(sl_var *out) { jvp_with(out, relu_slope_at1); }

#define CUBE(NAME, BWD, JVP, DERIV)                                                                \
    {                                                                                              \
        .name = NAME, .arity = 1, .forward = cube_forward, .backward = BWD, .jvp = JVP,            \
        .signature = "sl_apply(t, op, 1, &x, NULL)", .formula = "a = z^3", .derivative = DERIV,    \
        .domain = {SL_DOMAIN_REAL}, .kind = SL_KIND_MAP                                            \
    }

static const sl_op ops[] = {
    CUBE("plugin_cube", cube_backward, cube_jvp, "da/dz = 3 z^2"),
    CUBE("plugin_cube_wrong", cube_backward_wrong, cube_jvp, "(wrong backward) 2 z^2"),
    CUBE("plugin_cube_1e4", cube_backward_1e4, cube_jvp_1e4, "(both rules) 3 z^2 (1 + 1e-4)"),
    {.name = "plugin_relu_at1",
     .arity = 1,
     .forward = relu_forward,
     .backward = relu_backward_at1,
     .jvp = relu_jvp_at1,
     .signature = "sl_apply(t, op, 1, &x, NULL)",
     .formula = "a = max(0, z)",
     .derivative = "da/dz = 1 if z >= 0 else 0 (wrong at 0)",
     .kinks = "z = 0: 0 (it claims)",
     .kink = {.present = 1, .at = 0.0, .slope = 0.0},
     .domain = {SL_DOMAIN_NONZERO},
     .kind = SL_KIND_MAP},
};

/* Called by `slope check --load`: register every op, 0 on success. */
int slope_register(void);
int slope_register(void) {
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        int rc = sl_op_register(&ops[i]);
        if (rc != SL_OK) return rc;
    }
    return 0;
}
