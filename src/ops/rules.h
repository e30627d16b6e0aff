/*
 * rules.h - the per-element rules of the unary element-wise ops, written
 * once. SL__F_<OP> is the forward expression in z (the input element) and
 * alpha, beta (the attributes); SL__D_<OP> is dL/dz in z, a (the saved
 * output), g (dL/da), alpha and beta. The tensor kernels (elementwise.c,
 * activation.c, select.c, through SL__MAP_OP) and the scalar nodes (scalar.c)
 * expand the same expressions, so a rank-0 node and a one-element tensor give
 * the same bits, kinks included (clamp has no scalar node: a rank-0 input
 * reaches its tensor kernel through a view).
 * The tangent rule is the derivative applied to the input's tangent (the
 * Jacobian is diagonal), so it is SL__D_<OP> with g the tangent.
 * Where the derivative is written in the output a, the slope comes from what
 * the forward pass saved; where in z, a has no closed form for it (or one
 * that loses digits) - the op's derivative text in its table says which.
 */
#ifndef SLOPE_OPS_RULES_H
#define SLOPE_OPS_RULES_H

#include <math.h>

/* Constants spelled out: C11 has no M_SQRT1_2 or M_PI. */
#define SL__SQRT1_2 0.70710678118654752440      /* 1/sqrt(2) */
#define SL__INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi) */
#define SL__SQRT_2_PI 0.79788456080286535588    /* sqrt(2/pi) */
#define SL__GELU_KAPPA 0.044715                 /* PyTorch's tanh-approximation constant */
#define SL__SOFTPLUS_THRESHOLD 20.0             /* PyTorch's default: z > 20 returns z */

/* The logistic function without overflow for any z: for z < 0 it uses
 * e^z/(1+e^z), whose exp cannot overflow. Shared by sigmoid, silu and
 * bce_with_logits. */
static inline double sl__sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    const double e = exp(z);
    return e / (1.0 + e);
}

/* softplus = log(1+e^z) as max(z,0) + log1p(e^-|z|): the exp never overflows
 * and log1p keeps the digits of a tiny e^-|z|. Beyond PyTorch's threshold 20
 * the output is z itself (and the slope exactly 1). */
static inline double sl__softplus(double z) {
    if (z > SL__SOFTPLUS_THRESHOLD) return z;
    return (z > 0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

/* silu = z sigmoid(z);  da/dz = s (1 + z (1 - s)), s = sigmoid(z) recomputed
 * from z: a = z s has no closed-form slope in a alone (it cannot recover s at z = 0). */
static inline double sl__silu_slope(double z) {
    const double s = sl__sigmoid(z);
    return s * (1.0 + z * (1.0 - s));
}

/* softsign = z/(1+|z|);  da/dz = 1/(1+|z|)^2 from z: the closed form
 * (1-|a|)^2 in the output cancels catastrophically once |z| is large, and
 * the input form costs no more (one division, no exp). */
static inline double sl__softsign_slope(double z) {
    const double d = 1.0 + fabs(z);
    return 1.0 / (d * d);
}

/* log_sigmoid = log(1/(1+e^-z)) = min(z,0) - log1p(e^-|z|): no overflow for any z. */
static inline double sl__log_sigmoid(double z) { return (z < 0 ? z : 0.0) - log1p(exp(-fabs(z))); }

/* gelu, two forms (attrs.mode):
 *   SL_GELU_ERF   a = z Phi(z), Phi(z) = erfc(-z/sqrt2)/2 (= (1+erf(z/sqrt2))/2, without the
 *                 cancellation for z << 0);  da/dz = Phi(z) + z phi(z), phi the normal density
 *   SL_GELU_TANH  a = z/2 (1 + tanh u), u = sqrt(2/pi) (z + 0.044715 z^3) (PyTorch's formula);
 *                 da/dz = (1 + tanh u)/2 + z/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3*0.044715 z^2)
 * Both slopes come from z: neither has a closed form in the output. */
static inline double sl__gelu_erf(double z) { return 0.5 * z * erfc(-z * SL__SQRT1_2); }
static inline double sl__gelu_erf_slope(double z) {
    return 0.5 * erfc(-z * SL__SQRT1_2) + z * SL__INV_SQRT_2PI * exp(-0.5 * z * z);
}
static inline double sl__gelu_tanh(double z) {
    return 0.5 * z * (1.0 + tanh(SL__SQRT_2_PI * (z + SL__GELU_KAPPA * z * z * z)));
}
static inline double sl__gelu_tanh_slope(double z) {
    const double z2 = z * z, th = tanh(SL__SQRT_2_PI * (z + SL__GELU_KAPPA * z2 * z));
    return 0.5 * (1.0 + th) +
           0.5 * z * (1.0 - th * th) * SL__SQRT_2_PI * (1.0 + 3.0 * SL__GELU_KAPPA * z2);
}

// The expressions below ("g * a") read to clang-format as declarations.
// clang-format off

/* arithmetic */
#define SL__F_NEG (-z)
#define SL__D_NEG (-g)
#define SL__F_EXP exp(z)
#define SL__D_EXP (g * a)                   /* d/dz e^z = e^z: the saved output */
#define SL__F_LOG log(z)
#define SL__D_LOG (g / z)                   /* z <= 0 gives NaN / -inf (IEEE) */
/* log1p keeps the digits of a tiny z that log(1 + z) loses; da/dz = 1/(1+z)
 * from z (the output form e^-a would need an exp): +inf at z = -1 */
#define SL__F_LOG1P log1p(z)
#define SL__D_LOG1P (g / (1.0 + z))
/* expm1 keeps the digits of a tiny z that exp(z) - 1 loses; da/dz = e^z =
 * a + 1 from the saved output, as PyTorch. Below z = -ln 2 the sum cancels:
 * its absolute error stays under 2^-54 |g|, but it is all of e^z once
 * e^z < 2^-54 (z < -37.4: the slope reads 0) */
#define SL__F_EXPM1 expm1(z)
#define SL__D_EXPM1 (g * (a + 1.0))
#define SL__F_SQRT sqrt(z)
#define SL__D_SQRT (g * 0.5 / a)            /* 1/(2 sqrt z) from the saved output */
#define SL__F_ABS fabs(z)
#define SL__D_ABS (z > 0 ? g : (z < 0 ? -g : 0.0)) /* sign(0) = 0, as PyTorch */
#define SL__F_SQUARE (z * z)
#define SL__D_SQUARE (g * 2.0 * z)
#define SL__F_SIN sin(z)
#define SL__D_SIN (g * cos(z))
#define SL__F_COS cos(z)
#define SL__D_COS (-g * sin(z))
/* p = alpha; PyTorch masks p == 0 to a zero gradient (0 * x^-1 would be NaN at 0) */
#define SL__F_POW pow(z, alpha)
#define SL__D_POW (alpha == 0.0 ? 0.0 : g * alpha * pow(z, alpha - 1.0))
/* lo = alpha, hi = beta (lo <= hi, neither NaN: clamp's shape rule);
 * a = min(max(z, lo), hi), a NaN z stays NaN;  da/dz = 1 for lo <= z <= hi,
 * the bounds included (as PyTorch), else 0 (NaN z: 0, as PyTorch); with
 * lo = hi a is constant and da/dz 0 everywhere (PyTorch: 1 at z = lo) */
#define SL__F_CLAMP (z < alpha ? alpha : (z > beta ? beta : z))
#define SL__D_CLAMP (alpha < beta && alpha <= z && z <= beta ? g : 0.0)

/* activations */
#define SL__F_SIGMOID sl__sigmoid(z)        /* da/dz = a(1-a): exactly 1/4 at z = 0 */
#define SL__D_SIGMOID (g * a * (1.0 - a))
#define SL__F_TANH tanh(z)
#define SL__D_TANH (g * (1.0 - a * a))
/* a = max(0, z) (NaN propagates);  da/dz = 1 for a > 0, else 0 (z = 0: 0, as PyTorch) */
#define SL__F_RELU (z > 0 ? z : (z <= 0 ? 0.0 : z))
#define SL__D_RELU (a > 0 ? g : 0.0)
/* a = z for z > 0, alpha z otherwise;  da/dz = 1 for z > 0, else alpha (z = 0: alpha) */
#define SL__F_LEAKY_RELU (z > 0 ? z : alpha * z)
#define SL__D_LEAKY_RELU (z > 0 ? g : g * alpha)
/* da/dz = sigmoid(z) = 1 - e^-a from the saved output (-expm1(-a) keeps the
 * digits when a, and so the slope, is tiny); 1 above the threshold */
#define SL__F_SOFTPLUS sl__softplus(z)
#define SL__D_SOFTPLUS (z > SL__SOFTPLUS_THRESHOLD ? g : -g * expm1(-a))
/* a = z for z > 0, alpha (e^z - 1) otherwise (expm1: exact near 0);
 * da/dz = 1 for z > 0, else alpha e^z = a + alpha from the saved output
 * (z = 0: alpha, as PyTorch) */
#define SL__F_ELU (z > 0 ? z : alpha * expm1(z))
#define SL__D_ELU (z > 0 ? g : g * (a + alpha))
#define SL__F_SILU (z * sl__sigmoid(z))
#define SL__D_SILU (g * sl__silu_slope(z))
#define SL__F_SOFTSIGN (z / (1.0 + fabs(z)))
#define SL__D_SOFTSIGN (g * sl__softsign_slope(z))
/* da/dz = 1 - sigmoid(z) = 1 - e^a from the saved output (-expm1(a): exact
 * both where the slope is ~1 and where it is tiny) */
#define SL__F_LOG_SIGMOID sl__log_sigmoid(z)
#define SL__D_LOG_SIGMOID (-g * expm1(a))
#define SL__F_GELU_ERF sl__gelu_erf(z)
#define SL__D_GELU_ERF (g * sl__gelu_erf_slope(z))
#define SL__F_GELU_TANH sl__gelu_tanh(z)
#define SL__D_GELU_TANH (g * sl__gelu_tanh_slope(z))

// clang-format on

#endif
