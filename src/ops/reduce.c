/*
 * reduce.c - reductions over every axis (SL_ALL) or one axis, with keep-dims.
 *
 * A reduction over axis `ax` views x as (outer, len, inner) with
 * outer = prod(dims[:ax]), len = dims[ax], inner = prod(dims[ax+1:]); the
 * output is (outer, inner) whatever keepdim says (keepdim only changes the
 * recorded shape). SL_ALL is (1, numel, 1).
 */
#include "map.h"

#include <string.h>

/* The node's input around its axis (see sl__axis_view in map.h). */
static sl__view view_of(const sl_var *out) { return sl__axis_view(out->in[0], out->attrs->axis); }

/* Shape rule shared by every reduction. */
static int reduce_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                        int *ndim, int *dims) {
    const sl_var *x = in[0];
    int ax;
    char sh[64];
    if (a->keepdim != 0 && a->keepdim != 1)
        return sl__fail(t, SL_EARG, "sl_%s: keepdim = %d, must be 0 or 1", op->name, a->keepdim);
    if (!sl__axis(a->axis, x->ndim, &ax))
        return sl__fail(t, SL_EARG, "sl_%s: axis %d out of range for shape %s (rank %d)", op->name,
                        a->axis, sl__shape_str(sh, x->ndim, x->dims), x->ndim);
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        bool reduced = ax == SL_ALL || i == ax;
        if (!reduced)
            dims[nd++] = x->dims[i];
        else if (a->keepdim)
            dims[nd++] = 1;
    }
    *ndim = nd;
    return SL_OK;
}

/* sum: x (outer, len, inner) -> out (outer, inner);  dx[o,j,i] += g[o,i] */
static void sum_forward(sl_var *out) {
    sl__view v = view_of(out);
    const double *x = out->in[0]->val;
    double *o = out->val;
    if (v.inner == 1) { /* reducing the last axis (or all): one running sum per row */
        for (size_t p = 0; p < v.outer; p++) {
            const double *xr = x + p * v.len;
            double s = 0.0;
            for (size_t j = 0; j < v.len; j++) s += xr[j];
            o[p] = s;
        }
        return;
    }
    memset(o, 0, out->n * sizeof *o);
    for (size_t p = 0; p < v.outer; p++)
        for (size_t j = 0; j < v.len; j++) {
            const double *xr = x + (p * v.len + j) * v.inner;
            double *orow = o + p * v.inner;
            for (size_t i = 0; i < v.inner; i++) orow[i] += xr[i];
        }
}
static void spread(sl_var *out, double scale) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    sl__view v = view_of(out);
    const double *g = out->grad;
    if (v.inner == 1) {
        for (size_t p = 0; p < v.outer; p++) {
            const double gp = g[p] * scale;
            double *dr = dx + p * v.len;
            for (size_t j = 0; j < v.len; j++) dr[j] += gp;
        }
        return;
    }
    for (size_t p = 0; p < v.outer; p++)
        for (size_t j = 0; j < v.len; j++) {
            double *dr = dx + (p * v.len + j) * v.inner;
            const double *gr = g + p * v.inner;
            for (size_t i = 0; i < v.inner; i++) dr[i] += gr[i] * scale;
        }
}
static void sum_backward(sl_var *out) { spread(out, 1.0); }

/* mean = sum / len;  dx += g / len */
static void mean_forward(sl_var *out) {
    sum_forward(out);
    const double len = (double)view_of(out).len;
    for (size_t i = 0; i < out->n; i++) out->val[i] /= len;
}
/* logsumexp's softmax weight of element value z in line k, from the max and
 * sum its forward pass saved (ms, ss: sl__saved(out) and the n after it). */
static inline double lse_weight(const double *ms, const double *ss, double z, size_t k) {
    return exp(z - ms[k]) / ss[k];
}

/* Tangent of a reduction: sum over the axis of w(x_j, out) * t_j. */
static void weighted_sum_tangent(sl_var *out, int kind) {
    sl__view v = view_of(out);
    const double *x = out->in[0]->val, *tx = sl__tan(out->in[0]), *o = out->val;
    const double *ms = kind == 1 ? sl__saved(out) : NULL, *ss = ms ? ms + out->n : NULL;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const size_t k = p * v.inner + i, base = p * v.len * v.inner + i;
            double s = 0.0, ties = 0.0;
            for (size_t j = 0; j < v.len; j++) {
                const size_t e = base + j * v.inner;
                if (kind == 0)
                    s += tx[e]; /* sum, mean */
                else if (kind == 1)
                    s += tx[e] * lse_weight(ms, ss, x[e], k); /* logsumexp */
                else if (x[e] == o[k])
                    s += tx[e], ties += 1.0; /* max, min: tie average */
            }
            sl__tanbuf(out)[k] = kind == 2 ? (ties > 0 ? s / ties : NAN) : s;
        }
}
static void sum_jvp(sl_var *out) { weighted_sum_tangent(out, 0); }
static void mean_jvp(sl_var *out) {
    weighted_sum_tangent(out, 0);
    const double len = (double)view_of(out).len;
    for (size_t i = 0; i < out->n; i++) sl__tanbuf(out)[i] /= len;
}
static void mean_backward(sl_var *out) { spread(out, 1.0 / (double)view_of(out).len); }

/* max and min over the axis (NaN propagates): one kernel, up = 1 for max, 0
 * for min. Their backward and tangent rules are one pair (extremum_*): an
 * element "is the extremum" when it equals the output, whichever way the
 * comparison went. dx = g / (number of ties) at every element equal to the
 * output, 0 elsewhere: ties share the gradient equally. A line whose output
 * is NaN has no ties (0 of them): its gradient is NaN everywhere, as its
 * tangent is and as torch.amax / torch.amin give (g * 0 / 0). */
static inline void extremum_forward(sl_var *out, int up) {
    sl__view v = view_of(out);
    const double *x = out->in[0]->val;
    double *o = out->val;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const double *xr = x + p * v.len * v.inner + i;
            double m = xr[0];
            for (size_t j = 1; j < v.len; j++) {
                double z = xr[j * v.inner];
                if ((up ? z > m : z < m) || z != z) m = z;
                if (m != m) break;
            }
            o[p * v.inner + i] = m;
        }
}
static void max_forward(sl_var *out) { extremum_forward(out, 1); }
static void min_forward(sl_var *out) { extremum_forward(out, 0); }
static void extremum_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    sl__view v = view_of(out);
    const double *x = out->in[0]->val, *o = out->val, *g = out->grad;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            size_t base = p * v.len * v.inner + i, k = p * v.inner + i;
            size_t ties = 0;
            for (size_t j = 0; j < v.len; j++) ties += x[base + j * v.inner] == o[k];
            if (ties == 0) { /* a NaN output: no element equals it */
                for (size_t j = 0; j < v.len; j++)
                    dx[base + j * v.inner] += NAN; /* as the tangent */
                continue;
            }
            double share = g[k] / (double)ties;
            for (size_t j = 0; j < v.len; j++)
                if (x[base + j * v.inner] == o[k]) dx[base + j * v.inner] += share;
        }
}
static void extremum_jvp(sl_var *out) { weighted_sum_tangent(out, 2); }

/* logsumexp = m + log s, s = sum e^(x-m), m the max (0 when the max is
 * infinite); dx = g * e^(x - m) / s, i.e. g times the softmax of x along the
 * axis. Saved: m and s of each line, because the weights taken from the
 * output instead, e^(x - out), are wrong once out is large: out = m + log s
 * rounds to a multiple of ulp(m) (at m = 1e17, two tied maxima get weights
 * 1 and 1 instead of 0.5 and 0.5; at 1e15 they are 6 % off). */
static size_t logsumexp_saved(const sl_var *out) { return 2 * out->n; }
static void logsumexp_forward(sl_var *out) {
    max_forward(out); /* out now holds the max along the axis */
    sl__view v = view_of(out);
    const double *x = out->in[0]->val;
    double *o = out->val, *ms = sl__saved(out), *ss = ms + out->n;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t i = 0; i < v.inner; i++) {
            const double *xr = x + p * v.len * v.inner + i;
            const size_t k = p * v.inner + i;
            const double mx = o[k];
            /* all -inf gives -inf; +inf gives +inf; NaN stays */
            const double m = isfinite(mx) ? mx : 0.0;
            double s = 0.0;
            for (size_t j = 0; j < v.len; j++) s += exp(xr[j * v.inner] - m);
            o[k] = m + log(s);
            /* a +inf max is kept as the weights' m: e^(x - inf) / s gives 0 for
             * every finite x (and NaN at the inf), not inf / inf at x > 709 */
            ms[k] = mx == INFINITY ? mx : m, ss[k] = s;
        }
}
static void logsumexp_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    sl__view v = view_of(out);
    const double *x = out->in[0]->val, *g = out->grad, *ms = sl__saved(out), *ss = ms + out->n;
    for (size_t p = 0; p < v.outer; p++)
        for (size_t j = 0; j < v.len; j++)
            for (size_t i = 0; i < v.inner; i++) {
                size_t k = p * v.inner + i, e = (p * v.len + j) * v.inner + i;
                dx[e] += g[k] * lse_weight(ms, ss, x[e], k);
            }
}
static void logsumexp_jvp(sl_var *out) { weighted_sum_tangent(out, 1); }

/* The check's cases: every axis form, negative axes, keep-dims, rank 0..4. */
static const sl_op_case reduce_cases[] = {
    {.shape = {{0}}, .attrs = {.axis = SL_ALL}},
    {.shape = {{1, 5}}, .attrs = {.axis = SL_ALL, .keepdim = 1}},
    {.shape = {{2, 3, 4}}, .attrs = {.axis = 0}},
    {.shape = {{2, 3, 4}}, .attrs = {.axis = 1, .keepdim = 1}},
    {.shape = {{2, 3, 4}}, .attrs = {.axis = -1}},
    {.shape = {{3, 2, 3, 2}}, .attrs = {.axis = 1}},
    {.shape = {{4, 2, 1, 3, 2}}, .attrs = {.axis = -2, .keepdim = 1}},
    {.shape = {{4, 1, 2, 2, 3}}, .attrs = {.axis = SL_ALL}},
};
#define NCASES ((int)(sizeof reduce_cases / sizeof reduce_cases[0]))

/* RULES: the prefix of the backward and tangent rules (max and min share theirs). */
#define RED(NAME, RULES, F, D, K, DOM, TIES, SAVED)                                                \
    {                                                                                              \
        .name = #NAME, .arity = 1, .shape = reduce_shape, .forward = NAME##_forward,               \
        .backward = RULES##_backward, .jvp = RULES##_jvp, .saved = SAVED,                          \
        .signature = "sl_" #NAME "(t, x, axis, keepdim)", .formula = F, .derivative = D,           \
        .kinks = K, .domain = {DOM}, .kind = SL_KIND_CUSTOM, .cases = reduce_cases,                \
        .ncases = NCASES, .kink = {                                                                \
            .ties = TIES                                                                           \
        }                                                                                          \
    }

enum { SUM, MEAN, MAX, MIN, LOGSUMEXP, NOPS };

const sl_op sl__reduce_ops[] = {
    [SUM] =
        RED(sum, sum, "out = sum_j x_j over the axis", "dx_j = g", NULL, SL_DOMAIN_REAL, 0, NULL),
    [MEAN] = RED(mean, mean, "out = (1/n) sum_j x_j over the axis", "dx_j = g/n", NULL,
                 SL_DOMAIN_REAL, 0, NULL),
    [MAX] = RED(max, extremum, "out = max_j x_j over the axis (NaN propagates)",
                "dx_j = g/k where x_j = out (k ties), else 0",
                "ties: the gradient is shared equally among the k maxima (a NaN max: NaN)",
                SL_DOMAIN_DISTINCT, 1, NULL),
    [MIN] = RED(min, extremum, "out = min_j x_j over the axis (NaN propagates)",
                "dx_j = g/k where x_j = out (k ties), else 0",
                "ties: the gradient is shared equally among the k minima (a NaN min: NaN)",
                SL_DOMAIN_DISTINCT, 1, NULL),
    [LOGSUMEXP] = RED(logsumexp, logsumexp, "out = m + log s, s = sum_j e^(x_j - m), m = max_j x_j",
                      "dx_j = g e^(x_j - m) / s (the softmax; m and s saved)", NULL, SL_DOMAIN_REAL,
                      0, logsumexp_saved),
};
const int sl__reduce_nops = NOPS;

static sl_var *reduce(sl_tape *t, int op, sl_var *x, int axis, int keepdim) {
    sl_attrs a = {.axis = axis, .keepdim = keepdim};
    return sl__apply1(t, &sl__reduce_ops[op], x, &a);
}
sl_var *sl_sum(sl_tape *t, sl_var *x, int axis, int keepdim) {
    return reduce(t, SUM, x, axis, keepdim);
}
sl_var *sl_mean(sl_tape *t, sl_var *x, int axis, int keepdim) {
    return reduce(t, MEAN, x, axis, keepdim);
}
sl_var *sl_max(sl_tape *t, sl_var *x, int axis, int keepdim) {
    return reduce(t, MAX, x, axis, keepdim);
}
sl_var *sl_min(sl_tape *t, sl_var *x, int axis, int keepdim) {
    return reduce(t, MIN, x, axis, keepdim);
}
sl_var *sl_logsumexp(sl_tape *t, sl_var *x, int axis, int keepdim) {
    return reduce(t, LOGSUMEXP, x, axis, keepdim);
}
