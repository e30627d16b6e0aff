/*
 * activation.c - activation functions. Each backward applies the derivative
 * formula to what the forward pass saved - the output a where the derivative
 * has a closed form in it (sigmoid a(1-a), tanh 1-a^2, softplus 1-e^-a,
 * log_sigmoid 1-e^a, elu a+alpha) - so backward needs no recomputation of the
 * forward. Where the derivative has no closed form in a (silu, gelu) or one
 * that loses digits (softsign), backward works from the input z instead, and
 * the op's derivative text says which. Conventions at kinks follow PyTorch.
 *
 * Every kernel here: x (any shape) -> a (same shape), element by element.
 */
#include "map.h"

/* a = 1/(1+e^-z);  da/dz = a(1-a)  (exactly 1/4 at z = 0) */
/* sl__sigmoid vectorised: e = exp(-|z|) for the whole array (vmath.c), then
 * 1/(1+e) for z >= 0 and e/(1+e) below - the same two overflow-free branches */
SL__KERNEL static void sigmoid_forward(sl_var *out) {
    const double *x = out->in[0]->val;
    double *o = out->val;
    const size_t n = out->n;
    if (n < 4) { /* too short for a vector: straight to the scalar form */
        for (size_t i = 0; i < n; i++) o[i] = sl__sigmoid(x[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) o[i] = -fabs(x[i]);
    sl__vexp(o, o, n);
    for (size_t i = 0; i < n; i++) o[i] = x[i] >= 0 ? 1.0 / (1.0 + o[i]) : o[i] / (1.0 + o[i]);
}
// clang-format off
SL__MAP_RULES(sigmoid, SL__D_SIGMOID)
static void tanh_forward(sl_var *out) { sl__vtanh(out->val, out->in[0]->val, out->n); }
SL__MAP_RULES(tanh, SL__D_TANH)
SL__MAP_OP(relu, SL__F_RELU, SL__D_RELU)
SL__MAP_OP(leaky_relu, SL__F_LEAKY_RELU, SL__D_LEAKY_RELU)
SL__MAP_OP(softplus, SL__F_SOFTPLUS, SL__D_SOFTPLUS)
SL__MAP_OP(elu, SL__F_ELU, SL__D_ELU)
SL__MAP_OP(silu, SL__F_SILU, SL__D_SILU)
SL__MAP_OP(softsign, SL__F_SOFTSIGN, SL__D_SOFTSIGN)
SL__MAP_OP(log_sigmoid, SL__F_LOG_SIGMOID, SL__D_LOG_SIGMOID)
// clang-format on

/* gelu: attrs.mode picks the form (rules.h); one kernel per direction */
static void gelu_forward(sl_var *out) {
    const double *x = out->in[0]->val;
    double *o = out->val;
    const size_t n = out->n;
    if (out->attrs->mode == SL_GELU_TANH)
        for (size_t i = 0; i < n; i++) o[i] = sl__gelu_tanh(x[i]);
    else
        for (size_t i = 0; i < n; i++) o[i] = sl__gelu_erf(x[i]);
}
static void gelu_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    const double *x = out->in[0]->val, *g = out->grad;
    const size_t n = out->n;
    if (out->attrs->mode == SL_GELU_TANH)
        for (size_t i = 0; i < n; i++) dx[i] += g[i] * sl__gelu_tanh_slope(x[i]);
    else
        for (size_t i = 0; i < n; i++) dx[i] += g[i] * sl__gelu_erf_slope(x[i]);
}
static void gelu_jvp(sl_var *out) {
    const double *x = out->in[0]->val, *tx = sl__tan(out->in[0]);
    const size_t n = out->n;
    if (out->attrs->mode == SL_GELU_TANH)
        for (size_t i = 0; i < n; i++) sl__tanbuf(out)[i] = tx[i] * sl__gelu_tanh_slope(x[i]);
    else
        for (size_t i = 0; i < n; i++) sl__tanbuf(out)[i] = tx[i] * sl__gelu_erf_slope(x[i]);
}

static int alpha_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                       int *dims) {
    if (!isfinite(a->alpha))
        return sl__fail(t, SL_EARG, "sl_%s: alpha = %g must be finite", op->name, a->alpha);
    return sl__shape_same(t, op, in, a, ndim, dims);
}

static int gelu_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                      int *dims) {
    if (a->mode != SL_GELU_ERF && a->mode != SL_GELU_TANH)
        return sl__fail(t, SL_EARG,
                        "sl_gelu: approx = %d, must be SL_GELU_ERF (%d) or SL_GELU_TANH (%d)",
                        a->mode, SL_GELU_ERF, SL_GELU_TANH);
    return sl__shape_same(t, op, in, a, ndim, dims);
}

/* elu's check: several shapes, alpha on both sides of 1 (the kink at 0 matters then). */
static const sl_op_case elu_cases[] = {
    {.shape = {{0}}, .attrs = {.alpha = 1.0}},
    {.shape = {{1, 5}}, .attrs = {.alpha = 1.0}},
    {.shape = {{2, 2, 3}}, .attrs = {.alpha = 0.5}},
    {.shape = {{4, 2, 1, 3, 2}}, .attrs = {.alpha = 2.0}},
};
/* gelu's check: both forms at every shape. */
static const sl_op_case gelu_cases[] = {
    {.shape = {{0}}, .attrs = {.mode = SL_GELU_ERF}},
    {.shape = {{0}}, .attrs = {.mode = SL_GELU_TANH}},
    {.shape = {{1, 5}}, .attrs = {.mode = SL_GELU_ERF}},
    {.shape = {{1, 5}}, .attrs = {.mode = SL_GELU_TANH}},
    {.shape = {{2, 2, 3}}, .attrs = {.mode = SL_GELU_ERF}},
    {.shape = {{2, 2, 3}}, .attrs = {.mode = SL_GELU_TANH}},
    {.shape = {{4, 2, 1, 3, 2}}, .attrs = {.mode = SL_GELU_ERF}},
    {.shape = {{4, 2, 1, 3, 2}}, .attrs = {.mode = SL_GELU_TANH}},
};
#define N(c) ((int)(sizeof c / sizeof c[0]))

#define ACT(NAME, SIG, SHAPE, F, D, K, DOM, ALPHA)                                                 \
    {                                                                                              \
        .name = #NAME, .arity = 1, .shape = SHAPE, .forward = NAME##_forward,                      \
        .backward = NAME##_backward, .jvp = NAME##_jvp, .signature = SIG, .formula = F,            \
        .derivative = D, .kinks = K, .domain = {DOM}, .kind = SL_KIND_MAP, .defaults = {           \
            .alpha = ALPHA                                                                         \
        }                                                                                          \
    }
#define ACTK(NAME, SIG, SHAPE, F, D, K, DOM, ALPHA, KINK)                                          \
    {                                                                                              \
        .name = #NAME, .arity = 1, .shape = SHAPE, .forward = NAME##_forward,                      \
        .backward = NAME##_backward, .jvp = NAME##_jvp, .signature = SIG, .formula = F,            \
        .derivative = D, .kinks = K, .kink = KINK, .domain = {DOM}, .kind = SL_KIND_MAP,           \
        .defaults = {                                                                              \
            .alpha = ALPHA                                                                         \
        }                                                                                          \
    }
/* The kink declarations the checks test (see sl_kink): at 0, slope 0 or alpha. */
#define KINK_AT_0_SLOPE_0                                                                          \
    { .present = 1, .at = 0.0, .slope = 0.0 }
#define KINK_AT_0_SLOPE_ALPHA                                                                      \
    { .present = 1, .at = 0.0, .slope_is_alpha = 1 }

const sl_op sl__activation_ops[] = {
    [SL__ACT_SIGMOID] =
        ACT(sigmoid, "sl_sigmoid(t, x)", sl__shape_same, "a = 1/(1+e^-z) (no overflow for any z)",
            "da/dz = a(1-a), from the saved output", NULL, SL_DOMAIN_REAL, 0),
    [SL__ACT_TANH] = ACT(tanh, "sl_tanh(t, x)", sl__shape_same, "a = tanh z",
                         "da/dz = 1-a^2, from the saved output", NULL, SL_DOMAIN_REAL, 0),
    [SL__ACT_RELU] =
        ACTK(relu, "sl_relu(t, x)", sl__shape_same, "a = max(0, z)", "da/dz = 1 if z > 0 else 0",
             "z = 0: subgradient 0 (as PyTorch)", SL_DOMAIN_NONZERO, 0, KINK_AT_0_SLOPE_0),
    [SL__ACT_LEAKY_RELU] =
        ACTK(leaky_relu, "sl_leaky_relu(t, x, alpha)", alpha_shape, "a = z if z > 0 else alpha*z",
             "da/dz = 1 if z > 0 else alpha", "z = 0: alpha (as PyTorch)", SL_DOMAIN_NONZERO, 0.01,
             KINK_AT_0_SLOPE_ALPHA),
    [SL__ACT_SOFTPLUS] =
        ACT(softplus, "sl_softplus(t, x)", sl__shape_same,
            "a = log(1+e^z) = max(z,0) + log1p(e^-|z|); a = z for z > 20 (PyTorch: beta 1, "
            "threshold 20)",
            "da/dz = sigmoid(z) = 1-e^-a, from the saved output; 1 for z > 20", NULL,
            SL_DOMAIN_REAL, 0),
    [SL__ACT_ELU] = {.name = "elu",
                     .arity = 1,
                     .shape = alpha_shape,
                     .forward = elu_forward,
                     .backward = elu_backward,
                     .jvp = elu_jvp,
                     .signature = "sl_elu(t, x, alpha)",
                     .formula = "a = z if z > 0 else alpha*(e^z-1) (alpha finite)",
                     .derivative =
                         "da/dz = 1 if z > 0 else a+alpha (= alpha*e^z), from the saved output",
                     .kinks = "z = 0: alpha (as PyTorch); a kink unless alpha = 1",
                     .kink = KINK_AT_0_SLOPE_ALPHA, /* backward at 0: g*(a+alpha) with a = 0 */
                     .domain = {SL_DOMAIN_NONZERO},
                     .kind = SL_KIND_CUSTOM,
                     .cases = elu_cases,
                     .ncases = N(elu_cases),
                     .defaults = {.alpha = 1.0}},
    [SL__ACT_GELU] = {.name = "gelu",
                      .arity = 1,
                      .shape = gelu_shape,
                      .forward = gelu_forward,
                      .backward = gelu_backward,
                      .jvp = gelu_jvp,
                      .signature = "sl_gelu(t, x, approx)",
                      .formula = "SL_GELU_ERF: a = z*Phi(z) = z/2 (1+erf(z/sqrt2)); SL_GELU_TANH: "
                                 "a = z/2 (1+tanh(sqrt(2/pi) (z+0.044715 z^3)))",
                      .derivative =
                          "ERF: da/dz = Phi(z) + z*phi(z); TANH: da/dz = (1+th)/2 + z/2 (1-th^2) "
                          "sqrt(2/pi) (1+3*0.044715 z^2), th the tanh above; both from the input",
                      .domain = {SL_DOMAIN_REAL},
                      .kind = SL_KIND_CUSTOM,
                      .cases = gelu_cases,
                      .ncases = N(gelu_cases)},
    [SL__ACT_SILU] =
        ACT(silu, "sl_silu(t, x)", sl__shape_same, "a = z*sigmoid(z)",
            "da/dz = s(1+z(1-s)), s = sigmoid(z) recomputed from the input (no closed form "
            "in a)",
            NULL, SL_DOMAIN_REAL, 0),
    [SL__ACT_SOFTSIGN] =
        ACT(softsign, "sl_softsign(t, x)", sl__shape_same, "a = z/(1+|z|)",
            "da/dz = 1/(1+|z|)^2, from the input (the output form (1-|a|)^2 loses digits "
            "for large |z|)",
            NULL, SL_DOMAIN_REAL, 0),
    [SL__ACT_LOG_SIGMOID] =
        ACT(log_sigmoid, "sl_log_sigmoid(t, x)", sl__shape_same,
            "a = log(1/(1+e^-z)) = min(z,0) - log1p(e^-|z|) (no overflow for any z)",
            "da/dz = 1-sigmoid(z) = 1-e^a, from the saved output", NULL, SL_DOMAIN_REAL, 0),
};
const int sl__activation_nops = SL__ACT_NOPS;

#define OPS sl__activation_ops
sl_var *sl_sigmoid(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__ACT_SIGMOID], SL__S_SIGMOID, x, NULL);
}
sl_var *sl_tanh(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__ACT_TANH], SL__S_TANH, x, NULL);
}
sl_var *sl_relu(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__ACT_RELU], SL__S_RELU, x, NULL);
}
sl_var *sl_leaky_relu(sl_tape *t, sl_var *x, double alpha) {
    sl_attrs a = {.alpha = alpha};
    return sl__s_apply1(t, &OPS[SL__ACT_LEAKY_RELU], SL__S_LEAKY_RELU, x, &a);
}
sl_var *sl_softplus(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__ACT_SOFTPLUS], SL__S_SOFTPLUS, x, NULL);
}
sl_var *sl_silu(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__ACT_SILU], SL__S_SILU, x, NULL);
}
sl_var *sl_softsign(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__ACT_SOFTSIGN], SL__S_SOFTSIGN, x, NULL);
}
sl_var *sl_log_sigmoid(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__ACT_LOG_SIGMOID], SL__S_LOG_SIGMOID, x, NULL);
}
sl_var *sl_elu(sl_tape *t, sl_var *x, double alpha) {
    sl_attrs a = {.alpha = alpha};
    return sl__s_apply1(t, &OPS[SL__ACT_ELU], SL__S_ELU, x, &a);
}
sl_var *sl_gelu(sl_tape *t, sl_var *x, int approx) {
    sl_attrs a = {.mode = approx};
    return sl__s_apply1(t, &OPS[SL__ACT_GELU], sl__s_code(&OPS[SL__ACT_GELU], &a), x, &a);
}
