/*
 * linalg.c - matmul, transpose and reshape.
 *
 * One kernel, sl__gemm (gemm.c), serves the three products matmul needs -
 * C = A.B, dA += dC.B^T and dB += A^T.dC - reading the operands in place (no
 * transposed copy): packed and cache-blocked for large products, direct
 * loops for small ones and matrix-vector shapes.
 */
#include "map.h"

#include <string.h>

/* matmul: a (m,k), b (k,n) -> out (m,n);  da += g.b^T, db += a^T.g */
static int matmul_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *at,
                        int *ndim, int *dims) {
    (void)op;
    (void)at;
    const sl_var *a = in[0], *b = in[1];
    char sa[64], sb[64];
    sl__shape_str(sa, a->ndim, a->dims);
    sl__shape_str(sb, b->ndim, b->dims);
    if (a->ndim != 2 || b->ndim != 2)
        return sl__fail(t, SL_ESHAPE, "sl_matmul: expects 2-D inputs: %s x %s", sa, sb);
    if (a->dims[1] != b->dims[0])
        return sl__fail(t, SL_ESHAPE, "sl_matmul: inner dimensions differ: %s x %s", sa, sb);
    *ndim = 2;
    dims[0] = a->dims[0];
    dims[1] = b->dims[1];
    return SL_OK;
}
static void matmul_forward(sl_var *out) {
    const sl_var *a = out->in[0], *b = out->in[1];
    sl__gemm(0, 0, (size_t)a->dims[0], (size_t)b->dims[1], (size_t)a->dims[1], a->val, b->val,
             out->val, 0);
}
static void matmul_backward(sl_var *out) {
    const sl_var *a = out->in[0], *b = out->in[1];
    size_t m = (size_t)a->dims[0], k = (size_t)a->dims[1], n = (size_t)b->dims[1];
    if (a->grad) sl__gemm(0, 1, m, k, n, out->grad, b->val, a->grad, 1); /* (m,n).(n,k)^T */
    if (b->grad) sl__gemm(1, 0, k, n, m, a->val, out->grad, b->grad, 1); /* (k,m)^T.(m,n) */
}
static void matmul_jvp(sl_var *out) { /* t = ta.b + a.tb */
    const sl_var *a = out->in[0], *b = out->in[1];
    size_t m = (size_t)a->dims[0], k = (size_t)a->dims[1], n = (size_t)b->dims[1];
    const double *ta = sl__tan(a), *tb = sl__tan(b);
    if (!ta && !tb) memset(sl__tanbuf(out), 0, out->n * sizeof(double));
    if (ta) sl__gemm(0, 0, m, n, k, ta, b->val, sl__tanbuf(out), 0);
    if (tb) sl__gemm(0, 0, m, n, k, a->val, tb, sl__tanbuf(out), ta != NULL);
}

/* transpose: x (m,n) -> out (n,m);  dx = g^T */
static int transpose_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *at,
                           int *ndim, int *dims) {
    (void)op;
    (void)at;
    char sh[64];
    if (in[0]->ndim != 2)
        return sl__fail(t, SL_ESHAPE, "sl_transpose: expects a 2-D input, got %s",
                        sl__shape_str(sh, in[0]->ndim, in[0]->dims));
    *ndim = 2;
    dims[0] = in[0]->dims[1];
    dims[1] = in[0]->dims[0];
    return SL_OK;
}
static void transpose_forward(sl_var *out) {
    size_t m = (size_t)out->dims[1], n = (size_t)out->dims[0];
    const double *x = out->in[0]->val;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) out->val[j * m + i] = x[i * n + j];
}
static void transpose_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    size_t m = (size_t)out->dims[1], n = (size_t)out->dims[0];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) dx[i * n + j] += out->grad[j * m + i];
}
static void transpose_jvp(sl_var *out) {
    size_t m = (size_t)out->dims[1], n = (size_t)out->dims[0];
    const double *tx = sl__tan(out->in[0]);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) sl__tanbuf(out)[j * m + i] = tx[i * n + j];
}

/* reshape: x (any) -> out (attrs.dims, one may be -1), same element count;
 * the data is row-major either way, so forward copies and backward adds. */
static int reshape_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                         int *ndim, int *dims) {
    (void)op;
    const sl_var *x = in[0];
    char sx[64], sd[64];
    if (a->ndim < 0 || a->ndim > SL_MAX_DIMS)
        return sl__fail(t, SL_EARG, "sl_reshape: ndim = %d, must be 0..%d", a->ndim, SL_MAX_DIMS);
    int infer = -1;
    size_t known = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->dims[i] == -1 && infer < 0) {
            infer = i;
        } else if (a->dims[i] < 1) {
            return sl__fail(t, SL_EARG, "sl_reshape: dims[%d] = %d, must be >= 1 (or one -1)", i,
                            a->dims[i]);
        } else {
            known *= (size_t)a->dims[i];
        }
        dims[i] = a->dims[i];
    }
    if (infer >= 0) {
        if (x->n % known != 0)
            return sl__fail(t, SL_ESHAPE,
                            "sl_reshape: cannot infer dims[%d]: %zu elements of %s "
                            "are not a multiple of %zu",
                            infer, x->n, sl__shape_str(sx, x->ndim, x->dims), known);
        dims[infer] = (int)(x->n / known);
        known *= (size_t)dims[infer];
    }
    if (known != x->n)
        return sl__fail(t, SL_ESHAPE, "sl_reshape: %s has %zu elements, %s has %zu",
                        sl__shape_str(sx, x->ndim, x->dims), x->n, sl__shape_str(sd, a->ndim, dims),
                        known);
    *ndim = a->ndim;
    return SL_OK;
}
static void reshape_forward(sl_var *out) {
    memcpy(out->val, out->in[0]->val, out->n * sizeof(double));
}
static void reshape_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    for (size_t i = 0; i < out->n; i++) dx[i] += out->grad[i];
}
static void reshape_jvp(sl_var *out) {
    memcpy(sl__tanbuf(out), sl__tan(out->in[0]), out->n * sizeof(double));
}

static const sl_op_case matmul_cases[] = {
    {.shape = {{2, 1, 1}, {2, 1, 1}}},
    {.shape = {{2, 2, 3}, {2, 3, 4}}},
    {.shape = {{2, 4, 1}, {2, 1, 3}}},
    {.shape = {{2, 1, 5}, {2, 5, 1}}},
};
static const sl_op_case transpose_cases[] = {
    {.shape = {{2, 1, 1}}},
    {.shape = {{2, 2, 3}}},
    {.shape = {{2, 4, 1}}},
};
static const sl_op_case reshape_cases[] = {
    {{{2, 2, 3}}, {.ndim = 1, .dims = {6}}},
    {{{1, 6}}, {.ndim = 3, .dims = {3, -1, 1}}},
    {{{0}}, {.ndim = 4, .dims = {1, 1, 1, 1}}},
    {.shape = {{2, 1, 1}}, .attrs = {.ndim = 0}},
};
#define N(c) ((int)(sizeof c / sizeof c[0]))

enum { MATMUL, TRANSPOSE, RESHAPE, NOPS };

const sl_op sl__linalg_ops[] = {
    [MATMUL] = {.name = "matmul",
                .arity = 2,
                .shape = matmul_shape,
                .forward = matmul_forward,
                .backward = matmul_backward,
                .jvp = matmul_jvp,
                .signature = "sl_matmul(t, a, b)",
                .formula = "out = a . b, a [m,k], b [k,n]",
                .derivative = "da = g . b^T, db = a^T . g",
                .domain = {SL_DOMAIN_REAL, SL_DOMAIN_REAL},
                .cases = matmul_cases,
                .ncases = N(matmul_cases)},
    [TRANSPOSE] = {.name = "transpose",
                   .arity = 1,
                   .shape = transpose_shape,
                   .forward = transpose_forward,
                   .backward = transpose_backward,
                   .jvp = transpose_jvp,
                   .signature = "sl_transpose(t, x)",
                   .formula = "out[j,i] = x[i,j] (2-D)",
                   .derivative = "dx = g^T",
                   .domain = {SL_DOMAIN_REAL},
                   .cases = transpose_cases,
                   .ncases = N(transpose_cases)},
    [RESHAPE] = {.name = "reshape",
                 .arity = 1,
                 .shape = reshape_shape,
                 .forward = reshape_forward,
                 .backward = reshape_backward,
                 .jvp = reshape_jvp,
                 .signature = "sl_reshape(t, x, ndim, dims)",
                 .formula = "out = x with a new shape (same element count; one dim may be -1)",
                 .derivative = "dx = g reshaped back",
                 .domain = {SL_DOMAIN_REAL},
                 .cases = reshape_cases,
                 .ncases = N(reshape_cases)},
};
const int sl__linalg_nops = NOPS;

sl_var *sl_matmul(sl_tape *t, sl_var *a, sl_var *b) {
    return sl__apply2(t, &sl__linalg_ops[MATMUL], a, b, NULL);
}
sl_var *sl_transpose(sl_tape *t, sl_var *x) {
    return sl__apply1(t, &sl__linalg_ops[TRANSPOSE], x, NULL);
}
sl_var *sl_reshape(sl_tape *t, sl_var *x, int ndim, const int *dims) {
    if (!t || t->status != SL_OK) return NULL;
    if (ndim < 0 || ndim > SL_MAX_DIMS) {
        sl__fail(t, SL_EARG, "sl_reshape: ndim = %d, must be 0..%d", ndim, SL_MAX_DIMS);
        return NULL;
    }
    if (ndim > 0 && !dims) {
        sl__fail(t, SL_EARG, "sl_reshape: dims is NULL for ndim = %d", ndim);
        return NULL;
    }
    sl_attrs a = {.ndim = ndim};
    for (int i = 0; i < ndim; i++) a.dims[i] = dims[i];
    return sl__apply1(t, &sl__linalg_ops[RESHAPE], x, &a);
}
