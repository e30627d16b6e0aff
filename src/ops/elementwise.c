/*
 * elementwise.c - arithmetic element-wise ops. Binary ops broadcast as NumPy
 * (SL__ZIP_LOOP walks the broadcast indices; the backward rules of add, sub
 * and mul sum a broadcast input's gradient over its broadcast axes with
 * sl__unbroadcast_acc, div's accumulates straight into it). Domain
 * errors follow IEEE: log(-1) is NaN, 1/0 is inf; nothing traps.
 */
#include "../scalar.h"
#include "map.h"

/* ---- binary: a (A), b (B) -> out (broadcast(A, B)) ---- */

/* out = a + b;  da += g, db += g */
SL__KERNEL static void add_forward(sl_var *out) {
    const double *a = out->in[0]->val, *b = out->in[1]->val;
    double *o = out->val;
    SL__ZIP_LOOP(out, o[k] = a[ia] + b[ib]);
}
/* The gradient of input X: element by element when it has out's shape, else
 * summed over its broadcast axes by sl__unbroadcast_acc (W: the input the
 * rule multiplies by, or NULL; SIGN +1 or -1). BODY is the same rule. */
#define GRAD_OF(out, X, dx, BODY, W, SIGN)                                                         \
    do {                                                                                           \
        if ((X)->n == (out)->n)                                                                    \
            SL__ZIP_LOOP(out, BODY);                                                               \
        else                                                                                       \
            sl__unbroadcast_acc(dx, X, (out)->grad, W, SIGN, out);                                 \
    } while (0)

SL__KERNEL static void add_backward(sl_var *out) {
    sl_var *A = out->in[0], *B = out->in[1];
    double *da = A->grad, *db = B->grad;
    const double *g = out->grad;
    if (da) GRAD_OF(out, A, da, da[ia] += g[k], NULL, 1.0);
    if (db) GRAD_OF(out, B, db, db[ib] += g[k], NULL, 1.0);
}

/* out = a - b;  da += g, db -= g */
SL__KERNEL static void sub_forward(sl_var *out) {
    const double *a = out->in[0]->val, *b = out->in[1]->val;
    double *o = out->val;
    SL__ZIP_LOOP(out, o[k] = a[ia] - b[ib]);
}
SL__KERNEL static void sub_backward(sl_var *out) {
    sl_var *A = out->in[0], *B = out->in[1];
    double *da = A->grad, *db = B->grad;
    const double *g = out->grad;
    if (da) GRAD_OF(out, A, da, da[ia] += g[k], NULL, 1.0);
    if (db) GRAD_OF(out, B, db, db[ib] -= g[k], NULL, -1.0);
}

/* out = a * b;  da += g*b, db += g*a */
SL__KERNEL static void mul_forward(sl_var *out) {
    const double *a = out->in[0]->val, *b = out->in[1]->val;
    double *o = out->val;
    SL__ZIP_LOOP(out, o[k] = a[ia] * b[ib]);
}
SL__KERNEL static void mul_backward(sl_var *out) {
    sl_var *A = out->in[0], *B = out->in[1];
    double *da = A->grad, *db = B->grad;
    const double *a = A->val, *b = B->val, *g = out->grad;
    if (da) GRAD_OF(out, A, da, da[ia] += g[k] * b[ib], B, 1.0);
    if (db) GRAD_OF(out, B, db, db[ib] += g[k] * a[ia], A, 1.0);
}

/* out = a / b;  da += g/b, db -= g*out/b (out saved: no second division of a) */
SL__KERNEL static void div_forward(sl_var *out) {
    const double *a = out->in[0]->val, *b = out->in[1]->val;
    double *o = out->val;
    SL__ZIP_LOOP(out, o[k] = a[ia] / b[ib]);
}
SL__KERNEL static void div_backward(sl_var *out) {
    double *da = out->in[0]->grad, *db = out->in[1]->grad;
    const double *b = out->in[1]->val, *o = out->val, *g = out->grad;
    if (da) SL__ZIP_LOOP(out, da[ia] += g[k] / b[ib]);
    if (db) SL__ZIP_LOOP(out, db[ib] -= g[k] * o[k] / b[ib]);
}

/* Tangent rules of the binary ops: ta, tb are the inputs' tangents (NULL = 0). */
#define TA (ta ? ta[ia] : 0.0)
#define TB (tb ? tb[ib] : 0.0)
static void add_jvp(sl_var *out) {
    const double *ta = sl__tan(out->in[0]), *tb = sl__tan(out->in[1]);
    SL__ZIP_LOOP(out, sl__tanbuf(out)[k] = TA + TB);
}
static void sub_jvp(sl_var *out) {
    const double *ta = sl__tan(out->in[0]), *tb = sl__tan(out->in[1]);
    SL__ZIP_LOOP(out, sl__tanbuf(out)[k] = TA - TB);
}
static void mul_jvp(sl_var *out) { /* t = ta b + a tb */
    const double *a = out->in[0]->val, *b = out->in[1]->val;
    const double *ta = sl__tan(out->in[0]), *tb = sl__tan(out->in[1]);
    SL__ZIP_LOOP(out, sl__tanbuf(out)[k] = TA * b[ib] + a[ia] * TB);
}
static void div_jvp(sl_var *out) { /* t = (ta - out tb) / b */
    const double *b = out->in[1]->val, *o = out->val;
    const double *ta = sl__tan(out->in[0]), *tb = sl__tan(out->in[1]);
    SL__ZIP_LOOP(out, sl__tanbuf(out)[k] = (TA - o[k] * TB) / b[ib]);
}
#undef TA
#undef TB

/* ---- unary: x (any shape) -> out (same shape) ---- */

// The macros below take expressions ("g * a") that clang-format mistakes for
// declarations, so it leaves them alone.
// clang-format off
SL__MAP_OP(neg, SL__F_NEG, SL__D_NEG)
/* exp and log run their forward loops through the vector kernels (vmath.c) */
static void exp_forward(sl_var *out) { sl__vexp(out->val, out->in[0]->val, out->n); }
SL__MAP_RULES(exp, SL__D_EXP)
static void log_forward(sl_var *out) { sl__vlog(out->val, out->in[0]->val, out->n); }
SL__MAP_RULES(log, SL__D_LOG)
SL__MAP_OP(log1p, SL__F_LOG1P, SL__D_LOG1P)
SL__MAP_OP(expm1, SL__F_EXPM1, SL__D_EXPM1)
SL__MAP_OP(sqrt, SL__F_SQRT, SL__D_SQRT)
SL__MAP_OP(abs, SL__F_ABS, SL__D_ABS)
SL__MAP_OP(square, SL__F_SQUARE, SL__D_SQUARE)
SL__MAP_OP(sin, SL__F_SIN, SL__D_SIN)
SL__MAP_OP(cos, SL__F_COS, SL__D_COS)
SL__MAP_OP(pow, SL__F_POW, SL__D_POW)
// clang-format on

static int pow_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                     int *dims) {
    if (!isfinite(a->alpha))
        return sl__fail(t, SL_EARG, "sl_pow: exponent p = %g must be finite", a->alpha);
    return sl__shape_same(t, op, in, a, ndim, dims);
}

/* Cases for pow: exponents on both sides of 1, negative and fractional. */
static const sl_op_case pow_cases[] = {
    {.shape = {{0}}, .attrs = {.alpha = 2.0}},
    {.shape = {{1, 5}}, .attrs = {.alpha = 3.0}},
    {.shape = {{2, 2, 3}}, .attrs = {.alpha = 0.5}},
    {.shape = {{3, 2, 1, 3}}, .attrs = {.alpha = -1.5}},
    {.shape = {{1, 4}}, .attrs = {.alpha = 0.0}},
};

#define ZIP(NAME, SIG, F, D)                                                                       \
    {                                                                                              \
        .name = #NAME, .arity = 2, .shape = sl__shape_bcast, .forward = NAME##_forward,            \
        .backward = NAME##_backward, .jvp = NAME##_jvp, .signature = SIG, .formula = F,            \
        .derivative = D, .domain = {SL_DOMAIN_REAL, SL_DOMAIN_REAL}, .kind = SL_KIND_ZIP           \
    }
#define MAP(NAME, SIG, F, D, DOM)                                                                  \
    {                                                                                              \
        .name = #NAME, .arity = 1, .shape = sl__shape_same, .forward = NAME##_forward,             \
        .backward = NAME##_backward, .jvp = NAME##_jvp, .signature = SIG, .formula = F,            \
        .derivative = D, .domain = {DOM}, .kind = SL_KIND_MAP                                      \
    }

const sl_op sl__elementwise_ops[] = {
    [SL__EW_ADD] =
        ZIP(add, "sl_add(t, a, b)", "out = a + b", "da = g, db = g (summed over broadcast axes)"),
    [SL__EW_SUB] =
        ZIP(sub, "sl_sub(t, a, b)", "out = a - b", "da = g, db = -g (summed over broadcast axes)"),
    [SL__EW_MUL] = ZIP(mul, "sl_mul(t, a, b)", "out = a * b",
                       "da = g*b, db = g*a (summed over broadcast axes)"),
    [SL__EW_DIV] = {.name = "div",
                    .arity = 2,
                    .shape = sl__shape_bcast,
                    .forward = div_forward,
                    .backward = div_backward,
                    .jvp = div_jvp,
                    .signature = "sl_div(t, a, b)",
                    .formula = "out = a / b",
                    .derivative = "da = g/b, db = -g*out/b (summed over broadcast axes)",
                    .kinks = "pole at b = 0 (IEEE: +-inf or NaN)",
                    .domain = {SL_DOMAIN_REAL, SL_DOMAIN_NONZERO},
                    .kind = SL_KIND_ZIP},
    [SL__EW_NEG] = MAP(neg, "sl_neg(t, x)", "a = -z", "da/dz = -1", SL_DOMAIN_REAL),
    [SL__EW_EXP] =
        MAP(exp, "sl_exp(t, x)", "a = e^z", "da/dz = a (the saved output)", SL_DOMAIN_REAL),
    [SL__EW_LOG] =
        MAP(log, "sl_log(t, x)", "a = ln z",
            "da/dz = 1/z (+inf at +0, -inf at -0; the value is NaN below 0 and -inf at 0, IEEE)",
            SL_DOMAIN_POSITIVE),
    /* log1p's check stays in z >= 0.2 (SL_DOMAIN_POSITIVE): REAL or NONZERO
     * would step past its pole at -1 */
    [SL__EW_LOG1P] = MAP(log1p, "sl_log1p(t, x)", "a = ln(1 + z), exact for tiny z",
                         "da/dz = 1/(1+z) (+inf at z = -1; the value is NaN below -1 and -inf at "
                         "-1, IEEE)",
                         SL_DOMAIN_POSITIVE),
    [SL__EW_EXPM1] = MAP(expm1, "sl_expm1(t, x)", "a = e^z - 1, exact for tiny z",
                         "da/dz = a + 1 (the saved output, as PyTorch)", SL_DOMAIN_REAL),
    [SL__EW_SQRT] = MAP(sqrt, "sl_sqrt(t, x)", "a = sqrt(z)", "da/dz = 1/(2a) (the saved output)",
                        SL_DOMAIN_POSITIVE),
    [SL__EW_ABS] = {.name = "abs",
                    .arity = 1,
                    .shape = sl__shape_same,
                    .forward = abs_forward,
                    .backward = abs_backward,
                    .jvp = abs_jvp,
                    .signature = "sl_abs(t, x)",
                    .formula = "a = |z|",
                    .derivative = "da/dz = sign(z)",
                    .kinks = "z = 0: subgradient 0 (as PyTorch)",
                    .kink = {.present = 1, .at = 0.0, .slope = 0.0},
                    .domain = {SL_DOMAIN_NONZERO},
                    .kind = SL_KIND_MAP},
    [SL__EW_SQUARE] = MAP(square, "sl_square(t, x)", "a = z^2", "da/dz = 2z", SL_DOMAIN_REAL),
    [SL__EW_SIN] = MAP(sin, "sl_sin(t, x)", "a = sin z", "da/dz = cos z", SL_DOMAIN_REAL),
    [SL__EW_COS] = MAP(cos, "sl_cos(t, x)", "a = cos z", "da/dz = -sin z", SL_DOMAIN_REAL),
    [SL__EW_POW] =
        {.name = "pow",
         .arity = 1,
         .shape = pow_shape,
         .forward = pow_forward,
         .backward = pow_backward,
         .jvp = pow_jvp,
         .signature = "sl_pow(t, x, p)",
         .formula = "a = z^p",
         .derivative = "da/dz = p z^(p-1); 0 when p = 0",
         .kinks = "z = 0 with p < 1: infinite slope (IEEE); finite z < 0 with non-integer p: NaN; "
                  "-0 and -inf as C's pow (pow(-inf, 0.5) = +inf)",
         .domain = {SL_DOMAIN_POSITIVE},
         .kind = SL_KIND_CUSTOM,
         .cases = pow_cases,
         .ncases = (int)(sizeof pow_cases / sizeof pow_cases[0])},
};
const int sl__elementwise_nops = SL__EW_NOPS;

#define OPS sl__elementwise_ops
sl_var *sl_add(sl_tape *t, sl_var *a, sl_var *b) {
    return sl__s_rec2(t, &OPS[SL__EW_ADD], SL__S_ADD, a, b);
}
sl_var *sl_sub(sl_tape *t, sl_var *a, sl_var *b) {
    return sl__s_rec2(t, &OPS[SL__EW_SUB], SL__S_SUB, a, b);
}
sl_var *sl_mul(sl_tape *t, sl_var *a, sl_var *b) {
    return sl__s_rec2(t, &OPS[SL__EW_MUL], SL__S_MUL, a, b);
}
sl_var *sl_div(sl_tape *t, sl_var *a, sl_var *b) {
    return sl__s_rec2(t, &OPS[SL__EW_DIV], SL__S_DIV, a, b);
}
sl_var *sl_neg(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_NEG], SL__S_NEG, x, NULL);
}
sl_var *sl_exp(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_EXP], SL__S_EXP, x, NULL);
}
sl_var *sl_log(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_LOG], SL__S_LOG, x, NULL);
}
sl_var *sl_log1p(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_LOG1P], SL__S_LOG1P, x, NULL);
}
sl_var *sl_expm1(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_EXPM1], SL__S_EXPM1, x, NULL);
}
sl_var *sl_sqrt(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_SQRT], SL__S_SQRT, x, NULL);
}
sl_var *sl_abs(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_ABS], SL__S_ABS, x, NULL);
}
sl_var *sl_square(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_SQUARE], SL__S_SQUARE, x, NULL);
}
sl_var *sl_sin(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_SIN], SL__S_SIN, x, NULL);
}
sl_var *sl_cos(sl_tape *t, sl_var *x) {
    return sl__s_apply1(t, &OPS[SL__EW_COS], SL__S_COS, x, NULL);
}
sl_var *sl_pow(sl_tape *t, sl_var *x, double p) {
    sl_attrs a = {.alpha = p};
    return sl__s_apply1(t, &OPS[SL__EW_POW], SL__S_POW, x, &a);
}
