/*
 * index.c - choosing elements by a condition and rows by indices: where and
 * index_select. Each takes one input as a constant - where's condition,
 * index_select's indices - which gets no gradient: its domain
 * (SL_DOMAIN_MASK, SL_DOMAIN_INDICES) tells the gradient checks not to
 * perturb it and the reverse sweep not to pass the op's gradient on to it
 * (tape.c), as a comparison or an index tensor cuts PyTorch's graph.
 *
 * Every output element is a copy of one input element, so both backward
 * rules add g where the element came from and nothing anywhere else: the
 * input not chosen gets exactly 0, whatever values (inf, NaN) it holds.
 *
 * The indices are values of a node, so a replay can change them: they are
 * checked when recorded (the shape rule) and again by every forward,
 * backward and tangent rule, which set the sticky SL_EARG (prefixed
 * "sl_forward: ", "sl_backward: ", "sl_jvp: "); the output rows of a bad
 * index are NaN, its gradient goes nowhere, and nothing is read or written
 * out of bounds.
 */
#include "map.h"

#include <string.h>

/* ---- where: cond (C), a (A), b (B) -> out (broadcast(C, A, B)) ---- */

/* out = cond != 0 ? a : b (a NaN cond is true: C's != 0);
 * da += g where cond != 0, db += g where cond == 0 (both accumulated straight
 * into a broadcast input, so summed over its broadcast axes); cond: none.
 * A select, not g times a 0/1 mask: an inf or NaN g gives the branch not
 * taken nothing, not 0 * inf = NaN. */
static void where_forward(sl_var *out) {
    const double *c = out->in[0]->val, *a = out->in[1]->val, *b = out->in[2]->val;
    double *o = out->val;
    SL__ZIP3_LOOP(out, o[k] = c[i0] != 0.0 ? a[i1] : b[i2]);
}
static void where_backward(sl_var *out) {
    const double *c = out->in[0]->val, *g = out->grad;
    double *da = out->in[1]->grad, *db = out->in[2]->grad;
    if (da) SL__ZIP3_LOOP(out, if (c[i0] != 0.0) da[i1] += g[k]);
    if (db) SL__ZIP3_LOOP(out, if (c[i0] == 0.0) db[i2] += g[k]);
}
/* t = cond != 0 ? ta : tb (a NULL tangent is zero) */
static void where_jvp(sl_var *out) {
    const double *c = out->in[0]->val;
    const double *ta = sl__tan(out->in[1]), *tb = sl__tan(out->in[2]);
    double *to = sl__tanbuf(out);
    SL__ZIP3_LOOP(out, to[k] = c[i0] != 0.0 ? (ta ? ta[i1] : 0.0) : (tb ? tb[i2] : 0.0));
}

/* ---- index_select: x (outer, len, inner), idx (m) -> out (outer, m, inner) ---- */

/* An index into an axis of length len: an integer in [0, len) (false for
 * NaN and +-inf). */
static inline bool index_ok(double v, size_t len) {
    return v >= 0.0 && v < (double)len && v == floor(v);
}

/* The error for idx[j] = v, not an index along axis ax of x: pre "" when
 * recording, else the phase that found it ("sl_forward: " on replay). */
static int bad_index(sl_tape *t, const char *pre, size_t j, double v, const sl_var *x, int ax) {
    char sx[64];
    sl__shape_str(sx, x->ndim, x->dims);
    const char *why = !isfinite(v)    ? "not finite"
                      : v != floor(v) ? "not an integer"
                                      : "out of range";
    return sl__fail(t, SL_EARG,
                    "%ssl_index_select: idx[%zu] is %.17g, %s: indices must be integers in "
                    "[0, %d) along axis %d of x %s",
                    pre, j, v, why, x->dims[ax], ax, sx);
}

static int index_select_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                              int *ndim, int *dims) {
    (void)op;
    const sl_var *x = in[0], *idx = in[1];
    char sx[64], si[64];
    int ax;
    sl__shape_str(sx, x->ndim, x->dims);
    sl__shape_str(si, idx->ndim, idx->dims);
    if (x->ndim == 0)
        return sl__fail(t, SL_ESHAPE, "sl_index_select: a rank-0 x has no axis to index (x %s)",
                        sx);
    if (a->axis == SL_ALL)
        return sl__fail(t, SL_EARG,
                        "sl_index_select: axis SL_ALL: indices select along one axis (x %s)", sx);
    if (!sl__axis(a->axis, x->ndim, &ax))
        return sl__fail(t, SL_EARG, "sl_index_select: axis %d out of range for x %s (rank %d)",
                        a->axis, sx, x->ndim);
    if (idx->ndim != 1)
        return sl__fail(t, SL_ESHAPE, "sl_index_select: idx must be 1-D, got %s (x %s)", si, sx);
    for (size_t j = 0; j < idx->n; j++)
        if (!index_ok(idx->val[j], (size_t)x->dims[ax]))
            return bad_index(t, "", j, idx->val[j], x, ax);
    *ndim = x->ndim;
    for (int i = 0; i < x->ndim; i++) dims[i] = x->dims[i];
    dims[ax] = idx->dims[0];
    return SL_OK;
}

/* The axis index_select node out selects along (0..rank-1). */
static int index_axis(const sl_var *out) {
    const int axis = out->attrs->axis;
    return axis < 0 ? axis + out->in[0]->ndim : axis;
}

/* For each of the `outer` blocks and each j: the `inner` doubles of row
 * idx[j] of src (x's layout) copied to row j of dst (out's layout); a NULL
 * src (no tangent) gives zeros, a bad index (possible only after a replay
 * changed idx) NaN and the tape's error, named by pre. */
static void gather_rows(sl_var *out, const double *src, double *dst, const char *pre) {
    const sl_var *x = out->in[0], *idx = out->in[1];
    const int ax = index_axis(out);
    const sl__view v = sl__axis_view(x, ax);
    const size_t m = idx->n;
    for (size_t j = 0; j < m; j++) {
        const double r = idx->val[j];
        const bool ok = index_ok(r, v.len);
        if (!ok) bad_index(out->tape, pre, j, r, x, ax); /* the first error wins */
        for (size_t p = 0; p < v.outer; p++) {
            double *d = dst + (p * m + j) * v.inner;
            if (ok && src)
                memcpy(d, src + (p * v.len + (size_t)r) * v.inner, v.inner * sizeof *d);
            else
                for (size_t i = 0; i < v.inner; i++) d[i] = ok ? 0.0 : NAN;
        }
    }
}
static void index_select_forward(sl_var *out) {
    gather_rows(out, out->in[0]->val, out->val, "sl_forward: ");
}
/* dx[p, idx[j], :] += g[p, j, :]: a repeated index accumulates */
static void index_select_backward(sl_var *out) {
    const sl_var *x = out->in[0], *idx = out->in[1];
    double *dx = x->grad;
    if (!dx) return;
    const int ax = index_axis(out);
    const sl__view v = sl__axis_view(x, ax);
    const size_t m = idx->n;
    for (size_t j = 0; j < m; j++) {
        const double r = idx->val[j];
        if (!index_ok(r, v.len)) { /* changed after the last replay, which would have failed */
            bad_index(out->tape, "sl_backward: ", j, r, x, ax);
            continue;
        }
        for (size_t p = 0; p < v.outer; p++) {
            double *d = dx + (p * v.len + (size_t)r) * v.inner;
            const double *g = out->grad + (p * m + j) * v.inner;
            for (size_t i = 0; i < v.inner; i++) d[i] += g[i];
        }
    }
}
static void index_select_jvp(sl_var *out) {
    gather_rows(out, sl__tan(out->in[0]), sl__tanbuf(out), "sl_jvp: ");
}

/* ----------------------------------------------------------------- table */

/* where: every operand broadcast in turn, rank 0..4, a rank-0 condition. */
static const sl_op_case where_cases[] = {
    {.shape = {{0}, {0}, {0}}},
    {.shape = {{1, 6}, {1, 6}, {1, 6}}},
    {.shape = {{2, 2, 3}, {1, 3}, {0}}},             /* a broadcast over rows, b a scalar */
    {.shape = {{1, 3}, {2, 2, 3}, {2, 2, 1}}},       /* cond broadcast over rows, b over columns */
    {.shape = {{0}, {2, 3, 2}, {2, 3, 2}}},          /* one condition for all */
    {.shape = {{3, 2, 1, 3}, {3, 1, 2, 1}, {1, 3}}}, /* all three broadcast */
    {.shape = {{4, 2, 1, 2, 2}, {4, 2, 3, 1, 2}, {4, 1, 3, 2, 1}}},
};
/* index_select: every axis of rank 4 and some of rank 1..3, negative axes;
 * most with more indices than the axis is long, so some must repeat. */
static const sl_op_case index_select_cases[] = {
    {.shape = {{1, 4}, {1, 6}}, .attrs = {.axis = 0}},          /* [4] by 6 indices */
    {.shape = {{2, 3, 4}, {1, 5}}, .attrs = {.axis = 0}},       /* rows of a matrix */
    {.shape = {{2, 3, 4}, {1, 2}}, .attrs = {.axis = -1}},      /* its columns */
    {.shape = {{3, 2, 3, 2}, {1, 4}}, .attrs = {.axis = 1}},    /* the middle axis */
    {.shape = {{4, 3, 1, 2, 2}, {1, 4}}, .attrs = {.axis = 0}}, /* rank 4: each axis */
    {.shape = {{4, 2, 1, 3, 2}, {1, 3}}, .attrs = {.axis = 1}}, /* (an axis of 1) */
    {.shape = {{4, 2, 2, 3, 2}, {1, 5}}, .attrs = {.axis = -2}},
    {.shape = {{4, 2, 1, 2, 3}, {1, 4}}, .attrs = {.axis = 3}},
};
#define N(c) ((int)(sizeof c / sizeof c[0]))

enum { WHERE, INDEX_SELECT, NOPS };

const sl_op sl__index_ops[] = {
    [WHERE] = {.name = "where",
               .arity = 3,
               .shape = sl__shape_bcast,
               .forward = where_forward,
               .backward = where_backward,
               .jvp = where_jvp,
               .signature = "sl_where(t, cond, a, b)",
               .formula = "out = cond != 0 ? a : b element-wise, the three broadcast (a NaN cond "
                          "is true)",
               .derivative = "da = g where cond != 0, db = g where cond == 0, else exactly 0 "
                             "(summed over broadcast axes); cond: none",
               .kinks = "a jump where cond crosses 0; cond is not differentiated",
               .domain = {SL_DOMAIN_MASK, SL_DOMAIN_REAL, SL_DOMAIN_REAL},
               .kind = SL_KIND_CUSTOM,
               .cases = where_cases,
               .ncases = N(where_cases)},
    [INDEX_SELECT] = {.name = "index_select",
                      .arity = 2,
                      .shape = index_select_shape,
                      .forward = index_select_forward,
                      .backward = index_select_backward,
                      .jvp = index_select_jvp,
                      .signature = "sl_index_select(t, x, axis, idx)",
                      .formula = "out[..., j, ...] = x[..., idx[j], ...] along axis; idx 1-D, "
                                 "integers in [0, dims[axis])",
                      .derivative = "dx[..., idx[j], ...] += g[..., j, ...] (repeated indices "
                                    "add up); idx: none",
                      .domain = {SL_DOMAIN_REAL, SL_DOMAIN_INDICES},
                      .kind = SL_KIND_CUSTOM,
                      .cases = index_select_cases,
                      .ncases = N(index_select_cases)},
};
const int sl__index_nops = NOPS;

sl_var *sl_where(sl_tape *t, sl_var *cond, sl_var *a, sl_var *b) {
    sl_var *in[3] = {cond, a, b};
    return sl_apply(t, &sl__index_ops[WHERE], 3, in, NULL);
}
sl_var *sl_index_select(sl_tape *t, sl_var *x, int axis, sl_var *idx) {
    const sl_attrs a = {.axis = axis};
    return sl__apply2(t, &sl__index_ops[INDEX_SELECT], x, idx, &a);
}
