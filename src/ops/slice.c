/*
 * slice.c - taking a part of a tensor and joining two: slice and concat.
 *
 * Both see a tensor around one axis as (outer, len, inner) blocks
 * (sl__axis_view): along the axis, a row of `len * inner` doubles is
 * contiguous for each of the `outer` leading indices, so slicing copies one
 * contiguous stretch per row and joining copies two.
 */
#include "map.h"

#include <limits.h>
#include <string.h>

/* slice: x -> out = x[..., start:stop, ...] along axis (start < stop);
 * dx[..., start:stop, ...] += g, 0 elsewhere */
static int slice_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                       int *dims) {
    (void)op;
    const sl_var *x = in[0];
    char sh[64];
    int ax;
    sl__shape_str(sh, x->ndim, x->dims);
    if (x->ndim == 0)
        return sl__fail(t, SL_ESHAPE, "sl_slice: a rank-0 input has no axis to slice (shape %s)",
                        sh);
    if (a->axis == SL_ALL)
        return sl__fail(t, SL_EARG, "sl_slice: axis SL_ALL: a slice is along one axis (shape %s)",
                        sh);
    if (!sl__axis(a->axis, x->ndim, &ax))
        return sl__fail(t, SL_EARG, "sl_slice: axis %d out of range for shape %s (rank %d)",
                        a->axis, sh, x->ndim);
    const int d = x->dims[ax];
    /* as Python's indices, negative ones count from the end; unlike Python's,
     * an index outside the axis or an empty result is an error, not clamped */
    const long start = a->start < 0 ? (long)a->start + d : a->start;
    const long stop = a->stop < 0 ? (long)a->stop + d : a->stop;
    if (start < 0 || stop > d || start >= stop)
        return sl__fail(
            t, SL_EARG, "sl_slice: [start, stop) = [%d, %d) is %s along axis %d (size %d) of %s",
            a->start, a->stop, start < 0 || start > d || stop < 0 || stop > d ? "outside" : "empty",
            ax, d, sh);
    *ndim = x->ndim;
    for (int i = 0; i < x->ndim; i++) dims[i] = x->dims[i];
    dims[ax] = (int)(stop - start);
    return SL_OK;
}

/* The first index along the axis, as the shape rule accepted it. */
static size_t slice_start(const sl_var *out) {
    const sl_attrs *a = out->attrs;
    const sl_var *x = out->in[0];
    const int ax = a->axis < 0 ? a->axis + x->ndim : a->axis;
    return (size_t)(a->start < 0 ? a->start + x->dims[ax] : a->start);
}

/* For each of the `outer` rows: dst row (dlen * inner) <-> src row at offset. */
static void slice_copy(const sl_var *out, const double *x, double *o) {
    const sl__view vx = sl__axis_view(out->in[0], out->attrs->axis);
    const size_t take = out->n / vx.outer, off = slice_start(out) * vx.inner;
    for (size_t p = 0; p < vx.outer; p++)
        memcpy(o + p * take, x + p * vx.len * vx.inner + off, take * sizeof *o);
}
static void slice_forward(sl_var *out) { slice_copy(out, out->in[0]->val, out->val); }
static void slice_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    const sl__view vx = sl__axis_view(out->in[0], out->attrs->axis);
    const size_t take = out->n / vx.outer, off = slice_start(out) * vx.inner;
    for (size_t p = 0; p < vx.outer; p++) {
        double *d = dx + p * vx.len * vx.inner + off;
        const double *g = out->grad + p * take;
        for (size_t i = 0; i < take; i++) d[i] += g[i];
    }
}
static void slice_jvp(sl_var *out) { slice_copy(out, sl__tan(out->in[0]), sl__tanbuf(out)); }

/* concat: a, b -> out = [a, b] along axis (the other dims equal);
 * da = g[..., :na, ...], db = g[..., na:, ...] */
static int concat_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *at,
                        int *ndim, int *dims) {
    (void)op;
    const sl_var *a = in[0], *b = in[1];
    char sa[64], sb[64];
    int ax;
    sl__shape_str(sa, a->ndim, a->dims);
    sl__shape_str(sb, b->ndim, b->dims);
    if (a->ndim != b->ndim || a->ndim == 0)
        return sl__fail(t, SL_ESHAPE,
                        "sl_concat: expects inputs of one rank, at least 1: %s and %s%s", sa, sb,
                        a->ndim == 0 || b->ndim == 0 ? " (sl_reshape a scalar to [1] first)" : "");
    if (at->axis == SL_ALL)
        return sl__fail(t, SL_EARG, "sl_concat: axis SL_ALL: inputs join along one axis (%s, %s)",
                        sa, sb);
    if (!sl__axis(at->axis, a->ndim, &ax))
        return sl__fail(t, SL_EARG,
                        "sl_concat: axis %d out of range for shapes %s and %s (rank %d)", at->axis,
                        sa, sb, a->ndim);
    for (int i = 0; i < a->ndim; i++)
        if (i != ax && a->dims[i] != b->dims[i])
            return sl__fail(t, SL_ESHAPE,
                            "sl_concat: %s and %s differ on axis %d; only axis %d may differ", sa,
                            sb, i, ax);
    if (a->dims[ax] > INT_MAX - b->dims[ax])
        return sl__fail(t, SL_ESHAPE, "sl_concat: %s and %s: axis %d would exceed %d", sa, sb, ax,
                        INT_MAX);
    *ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++) dims[i] = a->dims[i];
    dims[ax] = a->dims[ax] + b->dims[ax];
    return SL_OK;
}

/* For each of the `outer` rows of o (out's shape): a's row, then b's; a
 * NULL input (no tangent) gives zeros. */
static void concat_rows(const sl_var *out, const double *a, const double *b, double *o) {
    const sl__view va = sl__axis_view(out->in[0], out->attrs->axis);
    const size_t na = va.len * va.inner, nb = out->in[1]->n / va.outer;
    for (size_t p = 0; p < va.outer; p++) {
        double *row = o + p * (na + nb);
        if (a)
            memcpy(row, a + p * na, na * sizeof *o);
        else
            memset(row, 0, na * sizeof *o);
        if (b)
            memcpy(row + na, b + p * nb, nb * sizeof *o);
        else
            memset(row + na, 0, nb * sizeof *o);
    }
}
static void concat_forward(sl_var *out) {
    concat_rows(out, out->in[0]->val, out->in[1]->val, out->val);
}
static void concat_backward(sl_var *out) {
    const sl__view va = sl__axis_view(out->in[0], out->attrs->axis);
    const size_t na = va.len * va.inner, nb = out->in[1]->n / va.outer;
    double *da = out->in[0]->grad, *db = out->in[1]->grad;
    for (size_t p = 0; p < va.outer; p++) {
        const double *g = out->grad + p * (na + nb);
        if (da)
            for (size_t i = 0; i < na; i++) da[p * na + i] += g[i];
        if (db)
            for (size_t i = 0; i < nb; i++) db[p * nb + i] += g[na + i];
    }
}
static void concat_jvp(sl_var *out) {
    concat_rows(out, sl__tan(out->in[0]), sl__tan(out->in[1]), sl__tanbuf(out));
}

/* The check's cases: every axis position, negative axes and indices, rank 1..4. */
static const sl_op_case slice_cases[] = {
    {{{1, 5}}, {.axis = 0, .start = 1, .stop = 4}},
    {{{2, 3, 4}}, {.axis = 1, .start = 0, .stop = 1}},
    {{{2, 3, 4}}, {.axis = -1, .start = -3, .stop = -1}},
    {{{2, 3, 4}}, {.axis = 0, .start = 1, .stop = 2}},
    {{{4, 2, 3, 1, 2}}, {.axis = 1, .start = 1, .stop = 3}},
};
static const sl_op_case concat_cases[] = {
    {{{1, 2}, {1, 3}}, {.axis = 0}},
    {{{2, 2, 3}, {2, 2, 1}}, {.axis = 1}},
    {{{2, 1, 3}, {2, 2, 3}}, {.axis = -2}},
    {{{3, 2, 1, 2}, {3, 1, 1, 2}}, {.axis = 0}},
    {{{4, 1, 2, 1, 2}, {4, 1, 2, 3, 2}}, {.axis = -2}},
};
#define N(c) ((int)(sizeof c / sizeof c[0]))

enum { SLICE, CONCAT, NOPS };

const sl_op sl__slice_ops[] = {
    [SLICE] = {.name = "slice",
               .arity = 1,
               .shape = slice_shape,
               .forward = slice_forward,
               .backward = slice_backward,
               .jvp = slice_jvp,
               .signature = "sl_slice(t, x, axis, start, stop)",
               .formula =
                   "out = x[..., start:stop, ...] along axis (negative indices from the end)",
               .derivative = "dx = g inside [start, stop) along the axis, 0 outside",
               .domain = {SL_DOMAIN_REAL},
               .cases = slice_cases,
               .ncases = N(slice_cases)},
    [CONCAT] = {.name = "concat",
                .arity = 2,
                .shape = concat_shape,
                .forward = concat_forward,
                .backward = concat_backward,
                .jvp = concat_jvp,
                .signature = "sl_concat(t, a, b, axis)",
                .formula = "out = [a, b] joined along axis (the other dims equal)",
                .derivative = "da = g's first part along the axis, db = the rest",
                .domain = {SL_DOMAIN_REAL, SL_DOMAIN_REAL},
                .cases = concat_cases,
                .ncases = N(concat_cases)},
};
const int sl__slice_nops = NOPS;

sl_var *sl_slice(sl_tape *t, sl_var *x, int axis, int start, int stop) {
    const sl_attrs a = {.axis = axis, .start = start, .stop = stop};
    return sl__apply1(t, &sl__slice_ops[SLICE], x, &a);
}
sl_var *sl_concat(sl_tape *t, sl_var *a, sl_var *b, int axis) {
    const sl_attrs at = {.axis = axis};
    return sl__apply2(t, &sl__slice_ops[CONCAT], a, b, &at);
}
