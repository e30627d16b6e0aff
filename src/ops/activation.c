/*
 * activation.c - activation functions. Each backward applies the derivative
 * formula to what the forward pass saved - the output a where the derivative
 * has a closed form in it (sigmoid a(1-a), tanh 1-a^2) - so backward needs no
 * exp and no recomputation. Conventions at kinks follow PyTorch.
 *
 * Every kernel here: x (any shape) -> a (same shape), element by element.
 */
#include "map.h"

/* sigmoid without overflow: for z < 0 use e^z/(1+e^z), whose exp cannot overflow. */
static inline double sigmoid1(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    const double e = exp(z);
    return e / (1.0 + e);
}

/* a = 1/(1+e^-z);  da/dz = a(1-a)  (exactly 1/4 at z = 0) */
SL__MAP_OP(sigmoid, sigmoid1(z), g *a * (1.0 - a))
/* a = tanh z;  da/dz = 1 - a^2 */
SL__MAP_OP(tanh, tanh(z), g * (1.0 - a * a))
/* a = max(0, z) (NaN propagates);  da/dz = 1 for a > 0, else 0 (z = 0: 0, as PyTorch) */
SL__MAP_OP(relu, z > 0 ? z : (z <= 0 ? 0.0 : z), a > 0 ? g : 0.0)
/* a = z for z > 0, alpha z otherwise;  da/dz = 1 for z > 0, else alpha (z = 0: alpha) */
SL__MAP_OP(leaky_relu, z > 0 ? z : alpha * z, z > 0 ? g : g * alpha)

static int alpha_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                       int *ndim, int *dims) {
    if (!isfinite(a->alpha))
        return sl__fail(t, SL_EARG, "sl_%s: alpha = %g must be finite", op->name, a->alpha);
    return sl__shape_same(t, op, in, a, ndim, dims);
}

#define ACT(NAME, SIG, SHAPE, F, D, K, DOM, ALPHA)                                                 \
    {.name = #NAME, .arity = 1, .shape = SHAPE, .forward = NAME##_forward,                    \
     .backward = NAME##_backward, .signature = SIG, .formula = F,            \
     .derivative = D, .kinks = K, .domain = {DOM}, .kind = SL_KIND_MAP,                       \
     .defaults = {.alpha = ALPHA}}

enum { SIGMOID, TANH, RELU, LEAKY_RELU, NOPS };

const sl_op sl__activation_ops[] = {
    [SIGMOID] = ACT(sigmoid, "sl_sigmoid(t, x)", sl__shape_same, "a = 1/(1+e^-z) (no overflow for any z)",
                    "da/dz = a(1-a), from the saved output", NULL, SL_DOMAIN_REAL, 0),
    [TANH] = ACT(tanh, "sl_tanh(t, x)", sl__shape_same, "a = tanh z", "da/dz = 1-a^2, from the saved output",
                 NULL, SL_DOMAIN_REAL, 0),
    [RELU] = ACT(relu, "sl_relu(t, x)", sl__shape_same, "a = max(0, z)", "da/dz = 1 if z > 0 else 0",
                 "z = 0: subgradient 0 (as PyTorch)", SL_DOMAIN_NONZERO, 0),
    [LEAKY_RELU] = ACT(leaky_relu, "sl_leaky_relu(t, x, alpha)", alpha_shape, "a = z if z > 0 else alpha*z",
                       "da/dz = 1 if z > 0 else alpha", "z = 0: alpha (as PyTorch)",
                       SL_DOMAIN_NONZERO, 0.01),
};
const int sl__activation_nops = NOPS;

#define OPS sl__activation_ops
sl_var *sl_sigmoid(sl_tape *t, sl_var *x) { return sl__apply1(t, &OPS[SIGMOID], x, NULL); }
sl_var *sl_tanh(sl_tape *t, sl_var *x) { return sl__apply1(t, &OPS[TANH], x, NULL); }
sl_var *sl_relu(sl_tape *t, sl_var *x) { return sl__apply1(t, &OPS[RELU], x, NULL); }
sl_var *sl_leaky_relu(sl_tape *t, sl_var *x, double alpha) {
    sl_attrs a = {.alpha = alpha};
    return sl__apply1(t, &OPS[LEAKY_RELU], x, &a);
}
