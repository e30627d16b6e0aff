/*
 * loss.c - losses, each reduced to a rank-0 mean as PyTorch's default
 * reduction='mean': over every element (mse, bce, bce_with_logits) or over
 * the rows (cross_entropy).
 *
 * mse, bce and bce_with_logits take two inputs of one shape - no
 * broadcasting, since a target silently broadcast against its prediction is
 * a classic bug - and give gradients to both. cross_entropy takes logits
 * [N,C] and labels [N], class indices stored as doubles; the labels are
 * validated when the op is recorded and on every replay, and never receive
 * a gradient.
 *
 * Values the shape rules check (bce's probabilities, cross_entropy's labels)
 * are checked again by the forward kernels, so a replay (sl_forward) on
 * leaves changed to invalid values sets the same sticky error, prefixed
 * "sl_forward: ", and the tape's error then stops sl_backward and sl_jvp.
 * The checks cost a comparison per label or probability; the kernels never
 * read out of bounds whatever the leaves hold.
 */
#include "map.h"

#define LOG_CLAMP (-100.0) /* PyTorch's bce: each log is clamped to >= -100 */
/* PyTorch's bce backward floors p(1-p) at EPSILON, a float 1e-12: in double
 * 9.999999960041972e-13, and dp at p = 0, y = 1 is -1000000003995.8029 */
#define BCE_EPS ((double)1e-12f)

/* ------------------------------------------------------- shape rules */

static int equal_shapes(sl_tape *t, const sl_op *op, sl_var *const *in) {
    const sl_var *x = in[0], *y = in[1];
    bool same = x->ndim == y->ndim;
    for (int i = 0; same && i < x->ndim; i++) same = x->dims[i] == y->dims[i];
    if (!same) {
        char s0[64], s1[64];
        return sl__fail(t, SL_ESHAPE, "sl_%s: shapes differ: %s and %s", op->name,
                        sl__shape_str(s0, x->ndim, x->dims), sl__shape_str(s1, y->ndim, y->dims));
    }
    return SL_OK;
}

/* Two inputs of one shape -> a rank-0 output. */
static int pair_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                      int *dims) {
    (void)a;
    (void)dims;
    int rc = equal_shapes(t, op, in);
    if (rc != SL_OK) return rc;
    *ndim = 0;
    return SL_OK;
}

/* A probability: in [0, 1] (false for NaN). */
static inline bool prob_ok(double v) { return v >= 0.0 && v <= 1.0; }

/* The first probability of p outside [0, 1] as an error on t, pre "" when
 * recording and "sl_forward: " on replay; SL_OK if there is none. */
static int check_probs(sl_tape *t, const char *pre, const sl_var *p) {
    for (size_t i = 0; i < p->n; i++)
        if (!prob_ok(p->val[i])) {
            char sh[64];
            return sl__fail(t, SL_EARG, "%ssl_bce: prob element %zu of %s is %.17g, outside [0, 1]",
                            pre, i, sl__shape_str(sh, p->ndim, p->dims), p->val[i]);
        }
    return SL_OK;
}

/* As pair_shape, and every probability in [0, 1] (PyTorch rejects others too). */
static int bce_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                     int *dims) {
    int rc = pair_shape(t, op, in, a, ndim, dims);
    if (rc != SL_OK) return rc;
    return check_probs(t, "", in[0]);
}

/* A class index: an integer in [0, C) (false for NaN and +-inf). */
static inline bool label_ok(double v, int C) { return v >= 0.0 && v < (double)C && v == floor(v); }

/* The error for label v of row r, not a class index of the logits x [N,C]:
 * pre "" when recording, "sl_forward: " on replay. */
static int bad_label(sl_tape *t, const char *pre, size_t r, double v, const sl_var *x) {
    char sx[64];
    sl__shape_str(sx, x->ndim, x->dims);
    const char *why = !isfinite(v)    ? "not finite"
                      : v != floor(v) ? "not an integer"
                                      : "out of range";
    return sl__fail(t, SL_EARG,
                    "%ssl_cross_entropy: label of row %zu is %.17g, %s: class indices must be "
                    "integers in [0, C) with C = %d (logits %s)",
                    pre, r, v, why, x->dims[1], sx);
}

/* logits [N,C], labels [N] of valid class indices -> a rank-0 output. */
static int cross_entropy_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                               int *ndim, int *dims) {
    (void)op;
    (void)a;
    (void)dims;
    const sl_var *x = in[0], *lab = in[1];
    char sx[64], slab[64];
    sl__shape_str(sx, x->ndim, x->dims);
    sl__shape_str(slab, lab->ndim, lab->dims);
    if (x->ndim != 2)
        return sl__fail(t, SL_ESHAPE, "sl_cross_entropy: logits must be 2-D [N,C], got %s", sx);
    if (lab->ndim != 1 || lab->dims[0] != x->dims[0])
        return sl__fail(t, SL_ESHAPE,
                        "sl_cross_entropy: labels must be 1-D [N] with N = %d (logits %s), got %s",
                        x->dims[0], sx, slab);
    const int C = x->dims[1];
    for (size_t r = 0; r < lab->n; r++)
        if (!label_ok(lab->val[r], C)) return bad_label(t, "", r, lab->val[r], x);
    *ndim = 0;
    return SL_OK;
}

/* ------------------------------------------------------------ kernels */

/* mse: pred (S), target (S) -> out [];  out = (1/n) sum_i (p_i - y_i)^2
 * dp_i += g 2(p_i - y_i)/n,  dy_i -= g 2(p_i - y_i)/n */
static void mse_forward(sl_var *out) {
    const double *p = out->in[0]->val, *y = out->in[1]->val;
    const size_t n = out->in[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = p[i] - y[i];
        s += d * d;
    }
    out->val[0] = s / (double)n;
}
static void mse_backward(sl_var *out) {
    double *dp = out->in[0]->grad, *dy = out->in[1]->grad;
    const double *p = out->in[0]->val, *y = out->in[1]->val;
    const size_t n = out->in[0]->n;
    const double c = 2.0 * out->grad[0] / (double)n;
    if (dp)
        for (size_t i = 0; i < n; i++) dp[i] += c * (p[i] - y[i]);
    if (dy)
        for (size_t i = 0; i < n; i++) dy[i] -= c * (p[i] - y[i]);
}
static void mse_jvp(sl_var *out) { /* t = (2/n) sum (p - y)(tp - ty) */
    const double *p = out->in[0]->val, *y = out->in[1]->val;
    const double *tp = sl__tan(out->in[0]), *ty = sl__tan(out->in[1]);
    const size_t n = out->in[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (p[i] - y[i]) * ((tp ? tp[i] : 0.0) - (ty ? ty[i] : 0.0));
    sl__tanbuf(out)[0] = 2.0 * s / (double)n;
}

/* Clamped logs, as PyTorch's bce: log p and log(1-p) (log1p: exact for small p), each >= -100. */
static inline double clamp_log(double l) { return l < LOG_CLAMP ? LOG_CLAMP : l; }

/* bce: prob (S), target (S) -> out [];  out = (1/n) sum_i -(y_i lp_i + (1-y_i) lq_i),
 *   lp = max(log p, -100), lq = max(log(1-p), -100)
 * dp_i += g/n (p_i - y_i) / max(p_i (1-p_i), BCE_EPS)  (PyTorch's rule: the exact slope
 *                                                       wherever p(1-p) >= BCE_EPS ~ 1e-12)
 * dy_i += g/n (lq_i - lp_i)                            (the exact slope in y, clamped logs) */
static void bce_forward(sl_var *out) {
    const double *p = out->in[0]->val, *y = out->in[1]->val;
    const size_t n = out->in[0]->n;
    double s = 0.0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        ok &= prob_ok(p[i]);
        const double lp = clamp_log(log(p[i])), lq = clamp_log(log1p(-p[i]));
        s += (y[i] - 1.0) * lq - y[i] * lp;
    }
    out->val[0] = s / (double)n;                                 /* NaN if !ok */
    if (!ok) check_probs(out->tape, "sl_forward: ", out->in[0]); /* only on replay */
}
static void bce_backward(sl_var *out) {
    double *dp = out->in[0]->grad, *dy = out->in[1]->grad;
    const double *p = out->in[0]->val, *y = out->in[1]->val;
    const size_t n = out->in[0]->n;
    const double c = out->grad[0] / (double)n;
    if (dp)
        for (size_t i = 0; i < n; i++)
            dp[i] += c * (p[i] - y[i]) / fmax(p[i] * (1.0 - p[i]), BCE_EPS);
    if (dy)
        for (size_t i = 0; i < n; i++)
            dy[i] += c * (clamp_log(log1p(-p[i])) - clamp_log(log(p[i])));
}
static void bce_jvp(sl_var *out) {
    const double *p = out->in[0]->val, *y = out->in[1]->val;
    const double *tp = sl__tan(out->in[0]), *ty = sl__tan(out->in[1]);
    const size_t n = out->in[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (tp) s += tp[i] * (p[i] - y[i]) / fmax(p[i] * (1.0 - p[i]), BCE_EPS);
        if (ty) s += ty[i] * (clamp_log(log1p(-p[i])) - clamp_log(log(p[i])));
    }
    sl__tanbuf(out)[0] = s / (double)n;
}

/* bce_with_logits: logits (S), target (S) -> out [];
 *   out = (1/n) sum_i max(x_i,0) - x_i y_i + log1p(e^-|x_i|)   (= bce(sigmoid(x), y) with no
 *                                                              overflow and no log clamp),
 *   computed as (1-y) x for x > 0 and -x y below, so that x = +inf and x = -inf both give
 *   +inf for 0 < y < 1 (x - x y would be inf - inf at +inf)
 * dx_i += g/n (sigmoid(x_i) - y_i),  dy_i -= g/n x_i */
static void bce_with_logits_forward(sl_var *out) {
    const double *x = out->in[0]->val, *y = out->in[1]->val;
    const size_t n = out->in[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (x[i] > 0 ? (1.0 - y[i]) * x[i] : -x[i] * y[i]) + log1p(exp(-fabs(x[i])));
    out->val[0] = s / (double)n;
}
static void bce_with_logits_backward(sl_var *out) {
    double *dx = out->in[0]->grad, *dy = out->in[1]->grad;
    const double *x = out->in[0]->val, *y = out->in[1]->val;
    const size_t n = out->in[0]->n;
    const double c = out->grad[0] / (double)n;
    if (dx)
        for (size_t i = 0; i < n; i++) dx[i] += c * (sl__sigmoid(x[i]) - y[i]);
    if (dy)
        for (size_t i = 0; i < n; i++) dy[i] -= c * x[i];
}
static void bce_with_logits_jvp(sl_var *out) {
    const double *x = out->in[0]->val, *y = out->in[1]->val;
    const double *tx = sl__tan(out->in[0]), *ty = sl__tan(out->in[1]);
    const size_t n = out->in[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (tx) s += tx[i] * (sl__sigmoid(x[i]) - y[i]);
        if (ty) s -= ty[i] * x[i];
    }
    sl__tanbuf(out)[0] = s / (double)n;
}

/* cross_entropy: logits (N,C), labels (N) -> out [];  saved: p (N,C), the softmax of each row
 *   out = (1/N) sum_r logsumexp(x_r) - x_r[k_r] = (1/N) sum_r (m_r - x_r[k_r]) + log s_r,
 *   m_r the row's max, s_r = sum_j e^(x_rj - m_r)  (exact for logits of one magnitude)
 * dx_rj += g/N (p_rj - [j = k_r]);  the labels get no gradient.
 * Forward saves p so that backward needs no exp. */
static size_t cross_entropy_saved(const sl_var *out) { return out->in[0]->n; }

static void cross_entropy_forward(sl_var *out) {
    const sl_var *X = out->in[0];
    const size_t N = (size_t)X->dims[0], C = (size_t)X->dims[1];
    const double *x = X->val, *lab = out->in[1]->val;
    double *p = sl__saved(out), s = 0.0;
    for (size_t r = 0; r < N; r++) {
        const double *xr = x + r * C;
        double *pr = p + r * C, m = xr[0], z = 0.0;
        for (size_t j = 1; j < C; j++)
            if (xr[j] > m || xr[j] != xr[j]) m = xr[j];
        if (!isfinite(m)) m = 0.0; /* as softmax: no inf - inf; all -inf rows give NaN */
        for (size_t j = 0; j < C; j++) {
            pr[j] = exp(xr[j] - m);
            z += pr[j];
        }
        for (size_t j = 0; j < C; j++) pr[j] /= z;
        if (!label_ok(lab[r], (int)C)) { /* only on replay with a changed label leaf */
            bad_label(out->tape, "sl_forward: ", r, lab[r], X); /* the first error wins */
            s = NAN;
            continue;
        }
        s += (m - xr[(size_t)lab[r]]) + log(z);
    }
    out->val[0] = s / (double)N;
}
/* Backward and jvp read the labels again: a label leaf changed to an invalid
 * value after the last sl_forward (which would have failed on it) is the
 * tape's error, naming sl_backward or sl_jvp, and gives NaN, never an
 * out-of-bounds read. */
static void cross_entropy_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    const size_t N = (size_t)out->in[0]->dims[0], C = (size_t)out->in[0]->dims[1];
    const double *p = sl__saved(out), *lab = out->in[1]->val;
    const double c = out->grad[0] / (double)N;
    for (size_t r = 0; r < N; r++) {
        const bool ok = label_ok(lab[r], (int)C);
        if (!ok) bad_label(out->tape, "sl_backward: ", r, lab[r], out->in[0]);
        const size_t k = ok ? (size_t)lab[r] : C;
        for (size_t j = 0; j < C; j++)
            dx[r * C + j] += ok ? c * (p[r * C + j] - (j == k ? 1.0 : 0.0)) : NAN;
    }
}
static void cross_entropy_jvp(sl_var *out) { /* t = (1/N) sum_r sum_j (p_rj - [j = k_r]) tx_rj */
    const double *tx = sl__tan(out->in[0]);
    const size_t N = (size_t)out->in[0]->dims[0], C = (size_t)out->in[0]->dims[1];
    const double *p = sl__saved(out), *lab = out->in[1]->val;
    double s = 0.0;
    for (size_t r = 0; tx && r < N; r++) {
        const bool ok = label_ok(lab[r], (int)C);
        if (!ok) bad_label(out->tape, "sl_jvp: ", r, lab[r], out->in[0]);
        const size_t k = ok ? (size_t)lab[r] : C;
        for (size_t j = 0; j < C; j++)
            s += ok ? (p[r * C + j] - (j == k ? 1.0 : 0.0)) * tx[r * C + j] : NAN;
    }
    sl__tanbuf(out)[0] = s / (double)N;
}

/* ----------------------------------------------------------------- table */

static const sl_op_case pair_cases[] = {
    {.shape = {{0}, {0}}},
    {.shape = {{1, 5}, {1, 5}}},
    {.shape = {{2, 2, 3}, {2, 2, 3}}},
    {.shape = {{3, 2, 1, 3}, {3, 2, 1, 3}}},
    {.shape = {{4, 2, 1, 3, 2}, {4, 2, 1, 3, 2}}},
};
/* N rows of C classes; C = 1 (a constant loss of 0) included. */
static const sl_op_case cross_entropy_cases[] = {
    {.shape = {{2, 1, 1}, {1, 1}}}, {.shape = {{2, 2, 3}, {1, 2}}}, {.shape = {{2, 4, 5}, {1, 4}}},
    {.shape = {{2, 3, 1}, {1, 3}}}, {.shape = {{2, 1, 6}, {1, 1}}},
};
#define N(c) ((int)(sizeof c / sizeof c[0]))

#define PAIR(NAME, SIG, SHAPE, F, D, K, D0, D1)                                                    \
    {                                                                                              \
        .name = #NAME, .arity = 2, .shape = SHAPE, .forward = NAME##_forward,                      \
        .backward = NAME##_backward, .jvp = NAME##_jvp, .signature = SIG, .formula = F,            \
        .derivative = D, .kinks = K, .domain = {D0, D1}, .kind = SL_KIND_CUSTOM,                   \
        .cases = pair_cases, .ncases = N(pair_cases)                                               \
    }

enum { MSE, BCE, BCE_WITH_LOGITS, CROSS_ENTROPY, NOPS };

const sl_op sl__loss_ops[] = {
    [MSE] = PAIR(mse, "sl_mse(t, pred, target)", pair_shape,
                 "out = mean((p - y)^2), equal shapes, rank-0 result",
                 "dp = 2(p - y)/n * g, dy = -2(p - y)/n * g", NULL, SL_DOMAIN_REAL, SL_DOMAIN_REAL),
    [BCE] = PAIR(bce, "sl_bce(t, prob, target)", bce_shape,
                 "out = mean(-(y lp + (1-y) lq)), lp = max(log p, -100), lq = max(log(1-p), -100) "
                 "(PyTorch's clamp); p in [0,1]",
                 "dp = (p - y)/max(p(1-p), 1e-12f)/n * g (as PyTorch: a float 1e-12), "
                 "dy = (lq - lp)/n * g",
                 "p = 0 or 1: the logs clamp at -100 and dp uses the 1e-12f floor (as PyTorch)",
                 SL_DOMAIN_UNIT, SL_DOMAIN_UNIT),
    [BCE_WITH_LOGITS] =
        PAIR(bce_with_logits, "sl_bce_with_logits(t, logits, target)", pair_shape,
             "out = mean(max(x,0) - x y + log1p(e^-|x|)) (no overflow for any x)",
             "dx = (sigmoid(x) - y)/n * g, dy = -x/n * g", NULL, SL_DOMAIN_REAL, SL_DOMAIN_UNIT),
    [CROSS_ENTROPY] = {.name = "cross_entropy",
                       .arity = 2,
                       .shape = cross_entropy_shape,
                       .forward = cross_entropy_forward,
                       .backward = cross_entropy_backward,
                       .jvp = cross_entropy_jvp,
                       .saved = cross_entropy_saved,
                       .signature = "sl_cross_entropy(t, logits, labels)",
                       .formula = "out = mean over rows r of logsumexp(x_r) - x_r[k_r]; logits "
                                  "[N,C], labels k [N] integers in [0,C)",
                       .derivative = "dx_rj = (p_rj - [j = k_r])/N * g, p = softmax(x_r) saved "
                                     "by forward; labels: none",
                       .domain = {SL_DOMAIN_REAL, SL_DOMAIN_LABELS},
                       .kind = SL_KIND_CUSTOM,
                       .cases = cross_entropy_cases,
                       .ncases = N(cross_entropy_cases)},
};
const int sl__loss_nops = NOPS;

#define OPS sl__loss_ops
sl_var *sl_mse(sl_tape *t, sl_var *pred, sl_var *target) {
    return sl__apply2(t, &OPS[MSE], pred, target, NULL);
}
sl_var *sl_bce(sl_tape *t, sl_var *prob, sl_var *target) {
    return sl__apply2(t, &OPS[BCE], prob, target, NULL);
}
sl_var *sl_bce_with_logits(sl_tape *t, sl_var *logits, sl_var *target) {
    return sl__apply2(t, &OPS[BCE_WITH_LOGITS], logits, target, NULL);
}
sl_var *sl_cross_entropy(sl_tape *t, sl_var *logits, sl_var *labels) {
    return sl__apply2(t, &OPS[CROSS_ENTROPY], logits, labels, NULL);
}
