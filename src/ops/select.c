/*
 * select.c - element-wise selection: maximum, minimum and clamp. Each output
 * element is one of its inputs (or a bound), so the derivative is a 0/1
 * mask, and what matters is the convention where the choice is not unique:
 *  - ties (maximum/minimum with a == b): each input gets half the gradient
 *    (as torch.maximum), the mean of the two one-sided slopes;
 *  - NaN: the output is NaN where an input is. maximum/minimum give both
 *    inputs a NaN gradient there (their tangent is NaN too; PyTorch gives
 *    both the full g), clamp gives 0 (as PyTorch: no bound holds a NaN);
 *  - clamp's bounds: slope 1 at x = lo and at x = hi (as PyTorch), and a
 *    NaN bound or lo > hi is refused when recorded (SL_EARG).
 * maximum and minimum broadcast as the arithmetic ops (SL__ZIP_LOOP); their
 * backward adds straight into a broadcast input's gradient, as div's does.
 */
#include "map.h"

/* ---- maximum, minimum: a (A), b (B) -> out (broadcast(A, B)) ---- */

/* The part of g that goes to x when out = max(x, y): all of it where x is
 * the larger, half at a tie, none where y is, NaN where either is NaN. For
 * min(x, y) the part of x is share(y, x, g): min's choice is max's with the
 * operands swapped. (A select, not g times a 0/1 weight: an infinite g must
 * give 0, not NaN, to the input not chosen.) */
static inline double share(double x, double y, double g) {
    return x > y ? g : (x < y ? 0.0 : (x == y ? 0.5 * g : NAN));
}

/* out = max(a, b) (up = 1) or min(a, b) (up = 0); NaN where either is NaN,
 * a at a tie (torch.maximum(-0.0, 0.0) is -0.0);
 * da += share(a, b, g), db += share(b, a, g) for max, swapped for min */
static inline double pick(double a, double b, int up) {
    if (a != a || b != b) return a + b; /* NaN, and its payload */
    return (up ? a >= b : a <= b) ? a : b;
}
SL__KERNEL static void maximum_forward(sl_var *out) {
    const double *a = out->in[0]->val, *b = out->in[1]->val;
    double *o = out->val;
    SL__ZIP_LOOP(out, o[k] = pick(a[ia], b[ib], 1));
}
SL__KERNEL static void minimum_forward(sl_var *out) {
    const double *a = out->in[0]->val, *b = out->in[1]->val;
    double *o = out->val;
    SL__ZIP_LOOP(out, o[k] = pick(a[ia], b[ib], 0));
}
/* X the operand that wins a strict comparison (a for max, b for min), Y the other. */
#define SELECT_BACKWARD(out, X, Y)                                                                 \
    do {                                                                                           \
        double *da = (out)->in[0]->grad, *db = (out)->in[1]->grad;                                 \
        const double *a = (out)->in[0]->val, *b = (out)->in[1]->val, *g = (out)->grad;             \
        if (da) SL__ZIP_LOOP(out, da[ia] += share(X, Y, g[k]));                                    \
        if (db) SL__ZIP_LOOP(out, db[ib] += share(Y, X, g[k]));                                    \
    } while (0)
SL__KERNEL static void maximum_backward(sl_var *out) { SELECT_BACKWARD(out, a[ia], b[ib]); }
SL__KERNEL static void minimum_backward(sl_var *out) { SELECT_BACKWARD(out, b[ib], a[ia]); }
/* tangent: the backward rule's parts applied to the inputs' tangents (NULL = 0) */
#define SELECT_JVP(out, X, Y)                                                                      \
    do {                                                                                           \
        const double *a = (out)->in[0]->val, *b = (out)->in[1]->val;                               \
        const double *ta = sl__tan((out)->in[0]), *tb = sl__tan((out)->in[1]);                     \
        double *to = sl__tanbuf(out);                                                              \
        SL__ZIP_LOOP(out,                                                                          \
                     to[k] = share(X, Y, ta ? ta[ia] : 0.0) + share(Y, X, tb ? tb[ib] : 0.0));     \
    } while (0)
static void maximum_jvp(sl_var *out) { SELECT_JVP(out, a[ia], b[ib]); }
static void minimum_jvp(sl_var *out) { SELECT_JVP(out, b[ib], a[ia]); }

/* ---- clamp: x (any shape) -> out (same shape); lo = alpha, hi = beta ---- */

// clang-format off
SL__MAP_OP(clamp, SL__F_CLAMP, SL__D_CLAMP)
// clang-format on

/* Refuses what has no meaning as bounds: a NaN (no bound is -inf / inf)
 * and lo > hi (PyTorch returns hi everywhere then; slope calls it a bug). */
static int clamp_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                       int *dims) {
    if (isnan(a->alpha) || isnan(a->beta))
        return sl__fail(t, SL_EARG,
                        "sl_clamp: lo = %g, hi = %g: a bound is NaN (-inf or inf is no bound)",
                        a->alpha, a->beta);
    if (a->alpha > a->beta)
        return sl__fail(t, SL_EARG, "sl_clamp: lo = %g > hi = %g", a->alpha, a->beta);
    return sl__shape_same(t, op, in, a, ndim, dims);
}

/* The check's cases: rank 0..4; both bounds inside the domain [-2, 2], one
 * infinite, both on one side of 0. (lo = hi is left out: the declared kink
 * slope, 1 at the bounds, holds only for lo < hi; a constant's is 0.) */
static const sl_op_case clamp_cases[] = {
    {.shape = {{0}}, .attrs = {.alpha = -0.5, .beta = 0.5}},
    {.shape = {{1, 5}}, .attrs = {.alpha = -1.0, .beta = 1.0}},
    {.shape = {{2, 2, 3}}, .attrs = {.alpha = -INFINITY, .beta = 0.3}},
    {.shape = {{3, 2, 1, 3}}, .attrs = {.alpha = 0.0, .beta = INFINITY}},
    {.shape = {{3, 3, 2, 4}}, .attrs = {.alpha = 0.25, .beta = 1.75}},
    {.shape = {{4, 2, 1, 3, 2}}, .attrs = {.alpha = -1.5, .beta = -0.5}},
};

#define SELECT(NAME, F, D)                                                                         \
    {                                                                                              \
        .name = #NAME, .arity = 2, .shape = sl__shape_bcast, .forward = NAME##_forward,            \
        .backward = NAME##_backward, .jvp = NAME##_jvp, .signature = "sl_" #NAME "(t, a, b)",      \
        .formula = F, .derivative = D,                                                             \
        .kinks = "a = b: each input gets g/2; NaN in a or b: NaN output and NaN gradients "        \
                 "for both (PyTorch: g for both)",                                                 \
        .domain = {SL_DOMAIN_REAL, SL_DOMAIN_REAL}, .kind = SL_KIND_ZIP                            \
    }

enum { MAXIMUM, MINIMUM, CLAMP, NOPS };

const sl_op sl__select_ops[] = {
    [MAXIMUM] = SELECT(maximum, "out = max(a, b) element-wise (NaN propagates)",
                       "da = g where a > b, db = g where b > a (summed over broadcast axes)"),
    [MINIMUM] = SELECT(minimum, "out = min(a, b) element-wise (NaN propagates)",
                       "da = g where a < b, db = g where b < a (summed over broadcast axes)"),
    [CLAMP] = {.name = "clamp",
               .arity = 1,
               .shape = clamp_shape,
               .forward = clamp_forward,
               .backward = clamp_backward,
               .jvp = clamp_jvp,
               .signature = "sl_clamp(t, x, lo, hi)",
               .formula = "a = min(max(z, lo), hi); lo = -inf / hi = inf: no bound (NaN z: NaN)",
               .derivative = "da/dz = 1 if lo <= z <= hi else 0 (NaN z: 0; lo = hi: 0)",
               .kinks = "z = lo and z = hi: 1 (the bounds are inside, as PyTorch); a NaN bound "
                        "or lo > hi is SL_EARG",
               .kink = {.present = 1, .at_is_bounds = 1, .slope = 1.0},
               .domain = {SL_DOMAIN_REAL},
               .kind = SL_KIND_CUSTOM,
               .cases = clamp_cases,
               .ncases = (int)(sizeof clamp_cases / sizeof clamp_cases[0])},
};
const int sl__select_nops = NOPS;

sl_var *sl_maximum(sl_tape *t, sl_var *a, sl_var *b) {
    return sl__apply2(t, &sl__select_ops[MAXIMUM], a, b, NULL);
}
sl_var *sl_minimum(sl_tape *t, sl_var *a, sl_var *b) {
    return sl__apply2(t, &sl__select_ops[MINIMUM], a, b, NULL);
}
sl_var *sl_clamp(sl_tape *t, sl_var *x, double lo, double hi) {
    const sl_attrs a = {.alpha = lo, .beta = hi};
    return sl__apply1(t, &sl__select_ops[CLAMP], x, &a);
}
