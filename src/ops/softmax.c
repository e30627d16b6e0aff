/*
 * softmax.c - softmax and log_softmax along one axis, and layer_norm along
 * the last axis.
 *
 * As in reduce.c, x is viewed around the axis as (outer, len, inner) with
 * outer = prod(dims[:ax]), len = dims[ax], inner = prod(dims[ax+1:]); each of
 * the outer*inner lines of len elements (stride inner) is normalised on its
 * own and the output keeps x's shape. Both ops subtract the line's max m
 * before exp, so no exp overflows, and x - m is exact for logits of one
 * magnitude: [1000,1001,1002] gives bit for bit the result of [0,1,2].
 *
 * One axis is required (negative counts from the end); SL_ALL is rejected,
 * as PyTorch requires dim. Both backward rules read only the saved output.
 * layer_norm always takes the last axis (inner = 1) and saves one 1/sqrt(var
 * + eps) per line beside its output.
 */
#include "map.h"

/* The node's input around its axis (see sl__axis_view in map.h). */
static sl__view view_of(const sl_var *out) { return sl__axis_view(out->in[0], out->attrs->axis); }

/* Same shape as x; the axis must name one existing axis. */
static int softmax_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                         int *ndim, int *dims) {
    const sl_var *x = in[0];
    char sh[64];
    int ax;
    sl__shape_str(sh, x->ndim, x->dims);
    if (a->axis == SL_ALL)
        return sl__fail(t, SL_EARG,
                        "sl_%s: axis SL_ALL is not allowed for shape %s: %s normalises along "
                        "one axis (as PyTorch's dim)",
                        op->name, sh, op->name);
    if (!sl__axis(a->axis, x->ndim, &ax))
        return sl__fail(t, SL_EARG, "sl_%s: axis %d out of range for shape %s (rank %d)", op->name,
                        a->axis, sh, x->ndim);
    return sl__shape_same(t, op, in, a, ndim, dims);
}

/* The max m of one line (NaN propagates), which each element's x - m needs
 * so that no exp overflows. Where it is not finite it becomes what makes
 * the line come out as PyTorch's does: an all -inf line gives 0 (then
 * e^(-inf) / 0 = NaN everywhere, not inf - inf), and a +inf in the line gives
 * NaN (then every element is NaN: one +inf leaves the others undefined
 * against it, not 0). */
static double line_max(const double *xr, size_t len, size_t inner) {
    double m = xr[0];
    for (size_t j = 1; j < len; j++) {
        const double z = xr[j * inner];
        if (z > m || z != z) m = z;
    }
    return isfinite(m) ? m : m < 0 ? 0.0 : NAN;
}

/* softmax: x (outer, len, inner) -> a (same);  a_j = e^(x_j - m) / sum_k e^(x_k - m)
 * dx_j += a_j (g_j - sum_k g_k a_k)  (the Jacobian diag(a) - a a^T applied to g) */
static void softmax_forward(sl_var *out) {
    const sl__view v = view_of(out);
    const double *x = out->in[0]->val;
    double *o = out->val;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const size_t base = p * v.len * v.inner + i;
            const double m = line_max(x + base, v.len, v.inner);
            double s = 0.0;
            for (size_t j = 0; j < v.len; j++) {
                const size_t e = base + j * v.inner;
                o[e] = exp(x[e] - m);
                s += o[e];
            }
            for (size_t j = 0; j < v.len; j++) o[base + j * v.inner] /= s;
        }
}
/* dst_j (+)= a_j (u_j - sum_k a_k u_k) along every line: the softmax Jacobian
 * diag(a) - a a^T applied to u, which is g for backward (accumulated) and
 * the input's tangent for the tangent rule (stored). */
static void softmax_jac(sl__view v, const double *a, const double *u, double *dst, bool add) {
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const size_t base = p * v.len * v.inner + i;
            double dot = 0.0;
            for (size_t j = 0; j < v.len; j++) dot += a[base + j * v.inner] * u[base + j * v.inner];
            for (size_t j = 0; j < v.len; j++) {
                const size_t e = base + j * v.inner;
                const double d = a[e] * (u[e] - dot);
                dst[e] = add ? dst[e] + d : d;
            }
        }
}
static void softmax_backward(sl_var *out) {
    if (out->in[0]->grad) softmax_jac(view_of(out), out->val, out->grad, out->in[0]->grad, true);
}
static void softmax_jvp(sl_var *out) {
    softmax_jac(view_of(out), out->val, sl__tan(out->in[0]), sl__tanbuf(out), false);
}

/* log_softmax: x (outer, len, inner) -> a (same);  a_j = (x_j - m) - log sum_k e^(x_k - m)
 * dx_j += g_j - e^(a_j) sum_k g_k  (e^a is the softmax, from the saved output) */
static void log_softmax_forward(sl_var *out) {
    const sl__view v = view_of(out);
    const double *x = out->in[0]->val;
    double *o = out->val;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const size_t base = p * v.len * v.inner + i;
            const double m = line_max(x + base, v.len, v.inner);
            double s = 0.0;
            for (size_t j = 0; j < v.len; j++) s += exp(x[base + j * v.inner] - m);
            const double ls = log(s);
            for (size_t j = 0; j < v.len; j++) {
                const size_t e = base + j * v.inner;
                o[e] = (x[e] - m) - ls;
            }
        }
}
static void log_softmax_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    const sl__view v = view_of(out);
    const double *a = out->val, *g = out->grad;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const size_t base = p * v.len * v.inner + i;
            double gs = 0.0;
            for (size_t j = 0; j < v.len; j++) gs += g[base + j * v.inner];
            for (size_t j = 0; j < v.len; j++) {
                const size_t e = base + j * v.inner;
                dx[e] += g[e] - exp(a[e]) * gs;
            }
        }
}
static void log_softmax_jvp(sl_var *out) { /* t_j = tx_j - sum_k e^(a_k) tx_k */
    const sl__view v = view_of(out);
    const double *a = out->val, *tx = sl__tan(out->in[0]);
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const size_t base = p * v.len * v.inner + i;
            double dot = 0.0;
            for (size_t j = 0; j < v.len; j++)
                dot += exp(a[base + j * v.inner]) * tx[base + j * v.inner];
            for (size_t j = 0; j < v.len; j++) {
                const size_t e = base + j * v.inner;
                sl__tanbuf(out)[e] = tx[e] - dot;
            }
        }
}

/* layer_norm over the last axis; eps (attrs.alpha) finite and >= 0. A rank-0
 * input is refused: PyTorch wants a non-empty normalized_shape. */
static int layer_norm_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                            int *ndim, int *dims) {
    const sl_var *x = in[0];
    char sh[64];
    sl__shape_str(sh, x->ndim, x->dims);
    if (!isfinite(a->alpha) || !(a->alpha >= 0))
        return sl__fail(t, SL_EARG, "sl_%s: eps = %g must be finite and >= 0 (x %s)", op->name,
                        a->alpha, sh);
    if (x->ndim == 0)
        return sl__fail(t, SL_ESHAPE, "sl_%s: a rank-0 x has no last axis to normalise (x %s)",
                        op->name, sh);
    return sl__shape_same(t, op, in, a, ndim, dims);
}

/* One rstd per line of the last axis (none for an empty tensor). */
static size_t layer_norm_saved(const sl_var *out) {
    const size_t len = (size_t)out->dims[out->ndim - 1];
    return len ? out->n / len : 0;
}

/* layer_norm: x (lines, len) -> y (same);  mu = mean x, var = mean (x - mu)^2 (biased),
 * rstd = 1/sqrt(var + eps), y = (x - mu) rstd; rstd saved (lines): with the output
 * it is all backward needs. Two passes, the mean corrected by the mean of
 * x - mu, so 1e8 + noise keeps the noise's digits (E[x^2] - mu^2 would not).
 * A length-1 line gives y = 0 for eps > 0 and NaN for eps = 0, as PyTorch. */
static void layer_norm_forward(sl_var *out) {
    const double *x = out->in[0]->val, eps = out->attrs->alpha;
    double *y = out->val, *rstd = sl__saved(out);
    const size_t lines = layer_norm_saved(out), len = lines ? out->n / lines : 0;
    for (size_t r = 0; r < lines; r++) {
        const double *xr = x + r * len;
        double mu = 0.0, c = 0.0, var = 0.0;
        for (size_t j = 0; j < len; j++) mu += xr[j];
        mu /= (double)len;
        for (size_t j = 0; j < len; j++) c += xr[j] - mu;
        mu += c / (double)len;
        for (size_t j = 0; j < len; j++) var += (xr[j] - mu) * (xr[j] - mu);
        rstd[r] = 1.0 / sqrt(var / (double)len + eps);
        for (size_t j = 0; j < len; j++) y[r * len + j] = (xr[j] - mu) * rstd[r];
    }
}
/* dst_j (+)= rstd (u_j - mean u - y_j mean(u y)) along every line: the
 * (symmetric) Jacobian applied to u, which is g for backward (accumulated)
 * and the input's tangent for the tangent rule (stored). */
static void layer_norm_jac(const sl_var *out, const double *u, double *dst, bool add) {
    const double *y = out->val, *rstd = sl__saved(out);
    const size_t lines = layer_norm_saved(out), len = lines ? out->n / lines : 0;
    for (size_t r = 0; r < lines; r++) {
        const size_t b = r * len;
        double mu = 0.0, muy = 0.0;
        for (size_t j = 0; j < len; j++) mu += u[b + j], muy += u[b + j] * y[b + j];
        mu /= (double)len, muy /= (double)len;
        for (size_t j = 0; j < len; j++) {
            const double d = rstd[r] * (u[b + j] - mu - y[b + j] * muy);
            dst[b + j] = add ? dst[b + j] + d : d;
        }
    }
}
static void layer_norm_backward(sl_var *out) {
    if (out->in[0]->grad) layer_norm_jac(out, out->grad, out->in[0]->grad, true);
}
static void layer_norm_jvp(sl_var *out) {
    layer_norm_jac(out, sl__tan(out->in[0]), sl__tanbuf(out), false);
}

/* ranks 1..4; eps 0 (lines of >= 3 random values: never constant), 1e-5 and
 * 0.5; a length-1 line with eps > 0 (y = 0: every slope 0). */
static const sl_op_case layer_norm_cases[] = {
    {.shape = {{1, 5}}, .attrs = {.alpha = 1e-5}},
    {.shape = {{1, 4}}, .attrs = {.alpha = 0.0}},
    {.shape = {{2, 3, 4}}, .attrs = {.alpha = 0.0}},
    {.shape = {{2, 2, 5}}, .attrs = {.alpha = 1e-5}},
    {.shape = {{3, 2, 3, 3}}, .attrs = {.alpha = 0.5}},
    {.shape = {{4, 2, 1, 2, 3}}, .attrs = {.alpha = 1e-5}},
    {.shape = {{4, 1, 2, 2, 4}}, .attrs = {.alpha = 0.0}},
    {.shape = {{2, 3, 1}}, .attrs = {.alpha = 1e-5}},
};

/* The check's cases: ranks 1..4, first/middle/last axes, negative axes, and a
 * length-1 axis (output constant: every slope 0). */
static const sl_op_case softmax_cases[] = {
    {.shape = {{1, 5}}, .attrs = {.axis = 0}},
    {.shape = {{2, 3, 4}}, .attrs = {.axis = 1}},
    {.shape = {{2, 3, 4}}, .attrs = {.axis = 0}},
    {.shape = {{2, 3, 4}}, .attrs = {.axis = -1}},
    {.shape = {{3, 2, 3, 2}}, .attrs = {.axis = 1}},
    {.shape = {{3, 2, 3, 2}}, .attrs = {.axis = -3}},
    {.shape = {{4, 2, 1, 3, 2}}, .attrs = {.axis = -2}},
    {.shape = {{4, 2, 3, 1, 2}}, .attrs = {.axis = 0}},
    {.shape = {{2, 3, 1}}, .attrs = {.axis = -1}},
};
#define NCASES ((int)(sizeof softmax_cases / sizeof softmax_cases[0]))

#define SOFT(NAME, F, D)                                                                           \
    {                                                                                              \
        .name = #NAME, .arity = 1, .shape = softmax_shape, .forward = NAME##_forward,              \
        .backward = NAME##_backward, .jvp = NAME##_jvp, .signature = "sl_" #NAME "(t, x, axis)",   \
        .formula = F, .derivative = D, .domain = {SL_DOMAIN_REAL}, .kind = SL_KIND_CUSTOM,         \
        .cases = softmax_cases, .ncases = NCASES                                                   \
    }

enum { SOFTMAX, LOG_SOFTMAX, LAYER_NORM, NOPS };

const sl_op sl__softmax_ops[] = {
    [SOFTMAX] = SOFT(softmax,
                     "a_j = e^(x_j-m) / sum_k e^(x_k-m) along one axis (not SL_ALL), "
                     "m = max_k x_k",
                     "dx_j = a_j (g_j - sum_k g_k a_k), from the saved output"),
    [LOG_SOFTMAX] = SOFT(log_softmax,
                         "a_j = (x_j-m) - log sum_k e^(x_k-m) along one axis (not SL_ALL), "
                         "m = max_k x_k",
                         "dx_j = g_j - e^(a_j) sum_k g_k (e^a = softmax), from the saved output"),
    [LAYER_NORM] = {.name = "layer_norm",
                    .arity = 1,
                    .shape = layer_norm_shape,
                    .forward = layer_norm_forward,
                    .backward = layer_norm_backward,
                    .jvp = layer_norm_jvp,
                    .saved = layer_norm_saved,
                    .signature = "sl_layer_norm(t, x, eps)",
                    .formula = "y = (x - mu) / sqrt(var + eps) along the last axis, mu = mean x, "
                               "var = mean (x - mu)^2 (biased); eps = attrs.alpha >= 0",
                    .derivative = "dx = rstd (g - mean g - y mean(g y)), rstd = 1/sqrt(var + eps); "
                                  "y and rstd saved",
                    .domain = {SL_DOMAIN_REAL},
                    .kind = SL_KIND_CUSTOM,
                    .cases = layer_norm_cases,
                    .ncases = (int)(sizeof layer_norm_cases / sizeof layer_norm_cases[0])},
};
const int sl__softmax_nops = NOPS;

sl_var *sl_softmax(sl_tape *t, sl_var *x, int axis) {
    sl_attrs a = {.axis = axis};
    return sl__apply1(t, &sl__softmax_ops[SOFTMAX], x, &a);
}
sl_var *sl_log_softmax(sl_tape *t, sl_var *x, int axis) {
    sl_attrs a = {.axis = axis};
    return sl__apply1(t, &sl__softmax_ops[LOG_SOFTMAX], x, &a);
}
sl_var *sl_layer_norm(sl_tape *t, sl_var *x, double eps) {
    sl_attrs a = {.alpha = eps};
    return sl__apply1(t, &sl__softmax_ops[LAYER_NORM], x, &a);
}
