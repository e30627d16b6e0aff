/*
 * linalg.c - matmul, transpose, reshape and permute.
 *
 * One kernel, sl__gemm (gemm.c), serves the three products matmul needs -
 * C = A.B, dA += dC.B^T and dB += A^T.dC - reading the operands in place (no
 * transposed copy): packed and cache-blocked for large products, direct
 * loops for small ones and matrix-vector shapes. A batched product (rank 3
 * or 4) is one such call per batch matrix, the batch dims broadcast as NumPy:
 * a matrix shared by several batches is read (forward) or accumulated into
 * (backward, beta = 1) once per batch that uses it. The 2-D product takes
 * none of that: it is the same three calls as before batches existed.
 */
#include "map.h"

#include <string.h>

/* matmul: a (...,m,k), b (...,k,n) -> out (...,m,n), the batch dims (all but
 * the last two) broadcast as NumPy;  per batch matrix da += g.b^T, db += a^T.g,
 * summed over the batch matrices that share an input's matrix */
static int matmul_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *at,
                        int *ndim, int *dims) {
    (void)op;
    (void)at;
    const sl_var *a = in[0], *b = in[1];
    char sa[64], sb[64];
    sl__shape_str(sa, a->ndim, a->dims);
    sl__shape_str(sb, b->ndim, b->dims);
    if (a->ndim < 2 || b->ndim < 2)
        return sl__fail(t, SL_ESHAPE,
                        "sl_matmul: expects 2-D inputs or batches of them (rank >= 2): %s x %s", sa,
                        sb);
    const int na = a->ndim - 2, nb = b->ndim - 2;
    if (a->dims[na + 1] != b->dims[nb])
        return sl__fail(t, SL_ESHAPE, "sl_matmul: inner dimensions differ: %s x %s", sa, sb);
    int nd = 0;
    if ((na || nb) && !sl__broadcast(na, a->dims, nb, b->dims, &nd, dims))
        return sl__fail(t, SL_ESHAPE, "sl_matmul: batch dimensions do not broadcast: %s x %s", sa,
                        sb);
    *ndim = nd + 2;
    dims[nd] = a->dims[na];
    dims[nd + 1] = b->dims[nb + 1];
    return SL_OK;
}

/* A batched product as `count` products (m,k).(k,n): out's matrix o reads
 * a's matrix and b's matrix that mm_pair gives (broadcast strides, counted
 * in matrices). When b is one matrix for all and a is not broadcast (x
 * [B,T,d] . W [d,e], the common case), a's batch folds into its rows: one
 * product (count*m,k).(k,n), count = 1. */
typedef struct mm_batch {
    size_t m, k, n, count;
    size_t sa[SL_MAX_DIMS], sb[SL_MAX_DIMS]; /* per batch axis of out; 0 = broadcast */
    int d[SL_MAX_DIMS];                      /* out's batch dims, padded with 1s on the left */
} mm_batch;

static mm_batch mm_batch_of(const sl_var *out) {
    const sl_var *a = out->in[0], *b = out->in[1];
    const int nd = out->ndim - 2, na = a->ndim - 2, nb = b->ndim - 2;
    mm_batch s = {.m = (size_t)a->dims[na],
                  .k = (size_t)a->dims[na + 1],
                  .n = (size_t)b->dims[nb + 1],
                  .count = sl__numel(nd, out->dims)};
    sl__bcast_strides(nd, out->dims, na, a->dims, s.sa, s.d);
    sl__bcast_strides(nd, out->dims, nb, b->dims, s.sb, s.d);
    if (sl__numel(nb, b->dims) == 1 && sl__numel(na, a->dims) == s.count) {
        s.m *= s.count;
        s.count = 1;
    }
    return s;
}

/* The offsets (in doubles) of a's and b's matrices for out's batch matrix o. */
static void mm_pair(const mm_batch *s, size_t o, size_t *ia, size_t *ib) {
    size_t i = 0, j = 0;
    for (int ax = SL_MAX_DIMS - 1; ax >= 0; ax--) {
        const size_t idx = o % (size_t)s->d[ax];
        o /= (size_t)s->d[ax];
        i += idx * s->sa[ax];
        j += idx * s->sb[ax];
    }
    *ia = i * s->m * s->k;
    *ib = j * s->k * s->n;
}

static void matmul_forward(sl_var *out) {
    const sl_var *a = out->in[0], *b = out->in[1];
    if (out->ndim == 2) {
        sl__gemm(0, 0, (size_t)a->dims[0], (size_t)b->dims[1], (size_t)a->dims[1], a->val, b->val,
                 out->val, 0);
        return;
    }
    const mm_batch s = mm_batch_of(out);
    for (size_t o = 0, ia, ib; o < s.count; o++) {
        mm_pair(&s, o, &ia, &ib);
        sl__gemm(0, 0, s.m, s.n, s.k, a->val + ia, b->val + ib, out->val + o * s.m * s.n, 0);
    }
}
static void matmul_backward(sl_var *out) {
    const sl_var *a = out->in[0], *b = out->in[1];
    if (out->ndim == 2) {
        size_t m = (size_t)a->dims[0], k = (size_t)a->dims[1], n = (size_t)b->dims[1];
        if (a->grad) sl__gemm(0, 1, m, k, n, out->grad, b->val, a->grad, 1); /* (m,n).(n,k)^T */
        if (b->grad) sl__gemm(1, 0, k, n, m, a->val, out->grad, b->grad, 1); /* (k,m)^T.(m,n) */
        return;
    }
    const mm_batch s = mm_batch_of(out);
    for (size_t o = 0, ia, ib; o < s.count; o++) {
        mm_pair(&s, o, &ia, &ib);
        const double *g = out->grad + o * s.m * s.n;
        if (a->grad) sl__gemm(0, 1, s.m, s.k, s.n, g, b->val + ib, a->grad + ia, 1);
        if (b->grad) sl__gemm(1, 0, s.k, s.n, s.m, a->val + ia, g, b->grad + ib, 1);
    }
}
static void matmul_jvp(sl_var *out) { /* t = ta.b + a.tb */
    const sl_var *a = out->in[0], *b = out->in[1];
    const double *ta = sl__tan(a), *tb = sl__tan(b);
    if (!ta && !tb) memset(sl__tanbuf(out), 0, out->n * sizeof(double));
    if (out->ndim == 2) {
        size_t m = (size_t)a->dims[0], k = (size_t)a->dims[1], n = (size_t)b->dims[1];
        if (ta) sl__gemm(0, 0, m, n, k, ta, b->val, sl__tanbuf(out), 0);
        if (tb) sl__gemm(0, 0, m, n, k, a->val, tb, sl__tanbuf(out), ta != NULL);
        return;
    }
    const mm_batch s = mm_batch_of(out);
    for (size_t o = 0, ia, ib; o < s.count; o++) {
        mm_pair(&s, o, &ia, &ib);
        double *to = sl__tanbuf(out) + o * s.m * s.n;
        if (ta) sl__gemm(0, 0, s.m, s.n, s.k, ta + ia, b->val + ib, to, 0);
        if (tb) sl__gemm(0, 0, s.m, s.n, s.k, a->val + ia, tb + ib, to, ta != NULL);
    }
}

/* transpose: x (...,m,n) -> out (...,n,m), the last two axes swapped in each
 * batch matrix;  dx = g with them swapped back */
static int transpose_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *at,
                           int *ndim, int *dims) {
    (void)op;
    (void)at;
    const sl_var *x = in[0];
    char sh[64];
    if (x->ndim < 2)
        return sl__fail(t, SL_ESHAPE,
                        "sl_transpose: expects a 2-D input or a batch of them (rank >= 2), got %s",
                        sl__shape_str(sh, x->ndim, x->dims));
    *ndim = x->ndim;
    memcpy(dims, x->dims, sizeof x->dims);
    dims[x->ndim - 2] = x->dims[x->ndim - 1];
    dims[x->ndim - 1] = x->dims[x->ndim - 2];
    return SL_OK;
}
/* o (...,n,m) = x (...,m,n) turned round, one m*n block at a time */
static void transpose_copy(const sl_var *out, const double *x, double *o) {
    size_t m = (size_t)out->dims[out->ndim - 1], n = (size_t)out->dims[out->ndim - 2];
    for (size_t b = 0; b < out->n; b += m * n)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) o[b + j * m + i] = x[b + i * n + j];
}
static void transpose_forward(sl_var *out) { transpose_copy(out, out->in[0]->val, out->val); }
static void transpose_backward(sl_var *out) {
    double *dx = out->in[0]->grad;
    if (!dx) return;
    size_t m = (size_t)out->dims[out->ndim - 1], n = (size_t)out->dims[out->ndim - 2];
    for (size_t b = 0; b < out->n; b += m * n)
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) dx[b + i * n + j] += out->grad[b + j * m + i];
}
static void transpose_jvp(sl_var *out) {
    transpose_copy(out, sl__tan(out->in[0]), sl__tanbuf(out));
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

/* permute: x (rank r) -> out with out.dims[i] = x.dims[perm[i]] (attrs.dims
 * holds perm, attrs.ndim its length: r, or 1 for a rank-0 x, whose perm is
 * {0});  dx = g permuted by the inverse of perm: each element goes back to
 * where it came from */
static int permute_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                         int *ndim, int *dims) {
    (void)op;
    const sl_var *x = in[0];
    const int r = x->ndim, np = r ? r : 1;
    char sh[64], sp[64];
    sl__shape_str(sh, r, x->dims);
    if (a->ndim != np)
        return sl__fail(t, SL_EARG, "sl_permute: perm has %d entries, shape %s needs %d", a->ndim,
                        sh, np);
    sl__shape_str(sp, np, a->dims);
    bool seen[SL_MAX_DIMS] = {false};
    for (int i = 0; i < np; i++) {
        int ax; /* sl__axis takes SL_ALL too, which names no one axis here */
        if (a->dims[i] == SL_ALL || !sl__axis(a->dims[i], r, &ax))
            return sl__fail(t, SL_EARG, "sl_permute: perm %s: axis %d out of range for shape %s",
                            sp, a->dims[i], sh);
        if (r == 0) ax = 0; /* 0 or -1: the one axis of a rank-0 tensor (sl__axis) */
        if (seen[ax])
            return sl__fail(t, SL_EARG,
                            "sl_permute: perm %s is not a permutation: axis %d repeated (shape %s)",
                            sp, ax, sh);
        seen[ax] = true;
        dims[i] = r ? x->dims[ax] : 1;
    }
    *ndim = r;
    return SL_OK;
}

/* x's strides along out's axes and out's dims, both padded on the left to
 * SL_MAX_DIMS (stride 0, dim 1) */
static void permute_strides(const sl_var *out, size_t *st, int *d) {
    const sl_var *x = out->in[0];
    const int r = out->ndim, off = SL_MAX_DIMS - r;
    size_t sx[SL_MAX_DIMS], s = 1;
    for (int i = r - 1; i >= 0; i--) {
        sx[i] = s;
        s *= (size_t)x->dims[i];
    }
    for (int i = 0; i < SL_MAX_DIMS; i++) {
        const int p = i < off ? 0 : out->attrs->dims[i - off];
        d[i] = i < off ? 1 : out->dims[i - off];
        st[i] = i < off ? 0 : sx[p < 0 ? p + r : p];
    }
}
/* Walk out's elements k in row-major order with x's offset p of each:
 * back = 0: dst[k] = src[p] (forward: src is x, dst out); back = 1:
 * dst[p] += src[k] (backward: src is g, dst dx). */
static void permute_walk(const sl_var *out, const double *src, double *dst, int back) {
    size_t st[SL_MAX_DIMS];
    int d[SL_MAX_DIMS];
    permute_strides(out, st, d);
    size_t k = 0;
    for (int i0 = 0; i0 < d[0]; i0++)
        for (int i1 = 0; i1 < d[1]; i1++)
            for (int i2 = 0; i2 < d[2]; i2++) {
                const size_t p = (size_t)i0 * st[0] + (size_t)i1 * st[1] + (size_t)i2 * st[2];
                if (back)
                    for (size_t i3 = 0; i3 < (size_t)d[3]; i3++) dst[p + i3 * st[3]] += src[k++];
                else
                    for (size_t i3 = 0; i3 < (size_t)d[3]; i3++) dst[k++] = src[p + i3 * st[3]];
            }
}
static void permute_forward(sl_var *out) { permute_walk(out, out->in[0]->val, out->val, 0); }
static void permute_backward(sl_var *out) {
    if (out->in[0]->grad) permute_walk(out, out->grad, out->in[0]->grad, 1);
}
static void permute_jvp(sl_var *out) { permute_walk(out, sl__tan(out->in[0]), sl__tanbuf(out), 0); }

static const sl_op_case matmul_cases[] = {
    {.shape = {{2, 1, 1}, {2, 1, 1}}},
    {.shape = {{2, 2, 3}, {2, 3, 4}}},
    {.shape = {{2, 4, 1}, {2, 1, 3}}},
    {.shape = {{2, 1, 5}, {2, 5, 1}}},
    /* batched: equal batches; b broadcast (one matrix: a's batch folds into
     * its rows); a broadcast; both ways at once; rank 3 against rank 4 */
    {.shape = {{3, 2, 2, 3}, {3, 2, 3, 4}}},
    {.shape = {{3, 3, 2, 3}, {2, 3, 2}}},
    {.shape = {{4, 2, 2, 1, 3}, {3, 1, 3, 2}}},
    {.shape = {{2, 2, 3}, {3, 2, 3, 2}}},
    {.shape = {{3, 1, 2, 3}, {3, 3, 3, 1}}},
    {.shape = {{4, 2, 1, 2, 3}, {3, 3, 3, 2}}},
    {.shape = {{3, 3, 2, 2}, {4, 2, 1, 2, 3}}},
};
static const sl_op_case transpose_cases[] = {
    {.shape = {{2, 1, 1}}},    {.shape = {{2, 2, 3}}},    {.shape = {{2, 4, 1}}},
    {.shape = {{3, 2, 3, 4}}}, {.shape = {{3, 3, 1, 2}}}, {.shape = {{4, 2, 1, 3, 2}}},
};
static const sl_op_case reshape_cases[] = {
    {{{2, 2, 3}}, {.ndim = 1, .dims = {6}}},
    {{{1, 6}}, {.ndim = 3, .dims = {3, -1, 1}}},
    {{{0}}, {.ndim = 4, .dims = {1, 1, 1, 1}}},
    {.shape = {{2, 1, 1}}, .attrs = {.ndim = 0}},
};
/* every rank; negative entries; perms that are not their own inverse */
static const sl_op_case permute_cases[] = {
    {{{0}}, {.ndim = 1, .dims = {0}}},
    {{{1, 3}}, {.ndim = 1, .dims = {-1}}},
    {{{2, 2, 3}}, {.ndim = 2, .dims = {1, 0}}},
    {{{3, 2, 3, 4}}, {.ndim = 3, .dims = {1, 2, 0}}},
    {{{3, 2, 3, 4}}, {.ndim = 3, .dims = {-1, 0, -2}}},
    {{{4, 2, 3, 1, 2}}, {.ndim = 4, .dims = {2, 0, 3, 1}}},
    {{{4, 2, 1, 3, 2}}, {.ndim = 4, .dims = {-2, -4, -1, 1}}},
};
#define N(c) ((int)(sizeof c / sizeof c[0]))

enum { MATMUL, TRANSPOSE, RESHAPE, PERMUTE, NOPS };

const sl_op sl__linalg_ops[] = {
    [MATMUL] = {.name = "matmul",
                .arity = 2,
                .shape = matmul_shape,
                .forward = matmul_forward,
                .backward = matmul_backward,
                .jvp = matmul_jvp,
                .signature = "sl_matmul(t, a, b)",
                .formula = "out = a . b, a [...,m,k], b [...,k,n]: one product per batch matrix, "
                           "the batch dims (all but the last two) broadcast as NumPy",
                .derivative = "da = g . b^T, db = a^T . g per batch matrix, summed over the batch "
                              "dims the input was broadcast along",
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
                   .formula = "out[...,j,i] = x[...,i,j]: the last two axes swapped (rank >= 2)",
                   .derivative = "dx = g with the last two axes swapped back",
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
    [PERMUTE] = {.name = "permute",
                 .arity = 1,
                 .shape = permute_shape,
                 .forward = permute_forward,
                 .backward = permute_backward,
                 .jvp = permute_jvp,
                 .signature = "sl_permute(t, x, perm)",
                 .formula = "out = x with its axes reordered: out.dims[i] = x.dims[perm[i]] "
                            "(negative entries from the end)",
                 .derivative = "dx = g permuted by the inverse of perm",
                 .domain = {SL_DOMAIN_REAL},
                 .cases = permute_cases,
                 .ncases = N(permute_cases)},
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
sl_var *sl_permute(sl_tape *t, sl_var *x, const int *perm) {
    if (!sl__check_inputs(t, "sl_permute", 1, &x)) return NULL;
    const int r = sl__ndim(x);
    if (!perm) {
        char sh[64];
        sl__fail(t, SL_EARG, "sl_permute: perm is NULL for shape %s",
                 sl__shape_str(sh, r, sl__dims(x)));
        return NULL;
    }
    sl_attrs a = {.ndim = r ? r : 1}; /* rank 0: perm {0}, as an axis of a rank-0 tensor */
    for (int i = 0; i < a.ndim; i++) a.dims[i] = perm[i];
    return sl__apply1(t, &sl__linalg_ops[PERMUTE], x, &a);
}
