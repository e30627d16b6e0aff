/*
 * shape.c - shapes, NumPy broadcasting, and the one place where broadcasting
 * is undone in backward (sl__unbroadcast_add).
 *
 * Shapes are right-aligned for broadcasting and padded on the left to
 * SL_MAX_DIMS, so every strided loop here is the same four nested loops.
 */
#include "internal.h"

#include <string.h>

char *sl__shape_str(char *buf, int ndim, const int *dims) {
    int k = 0;
    buf[k++] = '[';
    for (int i = 0; i < ndim && i < SL_MAX_DIMS; i++)
        k += snprintf(buf + k, (size_t)(64 - k), i ? ",%d" : "%d", dims[i]);
    buf[k++] = ']';
    buf[k] = '\0';
    return buf;
}

size_t sl__numel(int ndim, const int *dims) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    return n;
}

bool sl__broadcast(int na, const int *da, int nb, const int *db, int *ndim, int *dims) {
    int nd = na > nb ? na : nb;
    int out[SL_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - na), ib = i - (nd - nb);
        int a = ia >= 0 ? da[ia] : 1, b = ib >= 0 ? db[ib] : 1;
        if (a != b && a != 1 && b != 1) return false;
        out[i] = a == 1 ? b : a;
    }
    *ndim = nd;
    memcpy(dims, out, (size_t)nd * sizeof(int));
    return true;
}

bool sl__axis(int axis, int ndim, int *out) {
    if (axis == SL_ALL) {
        *out = SL_ALL;
        return true;
    }
    if (ndim == 0 && (axis == 0 || axis == -1)) { /* PyTorch's dim on a 0-d tensor */
        *out = SL_ALL;
        return true;
    }
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) return false;
    *out = a;
    return true;
}

void sl__bcast_strides(int nd, const int *dims, int nin, const int *din, size_t *st, int *pdims) {
    int off = SL_MAX_DIMS - nd;
    for (int i = 0; i < SL_MAX_DIMS; i++) pdims[i] = i < off ? 1 : dims[i - off];
    /* the input's own contiguous strides, right-aligned */
    size_t s = 1;
    for (int i = SL_MAX_DIMS - 1; i >= 0; i--) {
        int ii = i - (SL_MAX_DIMS - nin);
        int d = ii >= 0 ? din[ii] : 1;
        st[i] = (d == 1) ? 0 : s;
        s *= (size_t)d;
    }
}

/* Along an innermost axis that x is broadcast on, g (times w) is summed in
 * eight partial sums when the axis is at least this long: the sum no longer
 * waits on one running total, and vectorises. */
enum { UNBROADCAST_SPLIT = 16 };

void sl__unbroadcast_acc(double *dx, const sl_var *x, const double *g, const sl_var *w, double sign,
                         const sl_var *out) {
    size_t sx[SL_MAX_DIMS], sw[SL_MAX_DIMS] = {0};
    int d[SL_MAX_DIMS];
    sl__bcast_strides(out->ndim, out->dims, sl__ndim(x), sl__dims(x), sx, d);
    if (w) sl__bcast_strides(out->ndim, out->dims, sl__ndim(w), sl__dims(w), sw, d);
    const double *wv = w ? sl__val(w) : NULL;
    const size_t n3 = (size_t)d[3], s3 = sx[3], w3 = sw[3];
    size_t k = 0;
    for (int i0 = 0; i0 < d[0]; i0++)
        for (int i1 = 0; i1 < d[1]; i1++)
            for (int i2 = 0; i2 < d[2]; i2++, k += n3) {
                const size_t bx = (size_t)i0 * sx[0] + (size_t)i1 * sx[1] + (size_t)i2 * sx[2];
                const size_t bw = (size_t)i0 * sw[0] + (size_t)i1 * sw[1] + (size_t)i2 * sw[2];
                const double *gr = g + k;
                if (s3 == 0 && n3 >= UNBROADCAST_SPLIT) { /* a row into one element */
                    double p[8] = {0};
                    size_t i = 0;
                    if (!wv) {
                        for (; i + 8 <= n3; i += 8)
                            for (int j = 0; j < 8; j++) p[j] += gr[i + j];
                    } else if (w3 == 1) {
                        for (; i + 8 <= n3; i += 8)
                            for (int j = 0; j < 8; j++) p[j] += gr[i + j] * wv[bw + i + j];
                    } else {
                        for (; i + 8 <= n3; i += 8)
                            for (int j = 0; j < 8; j++) p[j] += gr[i + j] * wv[bw + (i + j) * w3];
                    }
                    double sum = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
                    for (; i < n3; i++) sum += wv ? gr[i] * wv[bw + i * w3] : gr[i];
                    dx[bx] += sign * sum;
                } else if (wv) {
                    for (size_t i = 0; i < n3; i++)
                        dx[bx + i * s3] += sign * (gr[i] * wv[bw + i * w3]);
                } else {
                    for (size_t i = 0; i < n3; i++) dx[bx + i * s3] += sign * gr[i];
                }
            }
}

int sl__shape_same(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                   int *dims) {
    (void)t;
    (void)op;
    (void)a;
    *ndim = in[0]->ndim;
    memcpy(dims, in[0]->dims, sizeof in[0]->dims);
    return SL_OK;
}

int sl__shape_bcast(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                    int *dims) {
    (void)a;
    int nd = in[0]->ndim, d[SL_MAX_DIMS];
    memcpy(d, in[0]->dims, sizeof d);
    bool same = true; /* the common case (scalars, equal shapes): nothing to broadcast */
    for (int k = 1; k < op->arity && same; k++) {
        same = in[k]->ndim == nd;
        for (int i = 0; i < nd && same; i++) same = in[k]->dims[i] == d[i]; /* no call for [] */
    }
    if (same) {
        *ndim = nd;
        memcpy(dims, d, sizeof d);
        return SL_OK;
    }
    for (int k = 1; k < op->arity; k++) {
        if (!sl__broadcast(nd, d, in[k]->ndim, in[k]->dims, &nd, d)) {
            char s0[64], s1[64], s2[64];
            sl__shape_str(s0, in[0]->ndim, in[0]->dims);
            sl__shape_str(s1, in[1]->ndim, in[1]->dims);
            if (op->arity == 2)
                return sl__fail(t, SL_ESHAPE, "sl_%s: shapes do not broadcast: %s and %s", op->name,
                                s0, s1);
            /* three: the pair that fails may be any, so name them all */
            return sl__fail(t, SL_ESHAPE, "sl_%s: shapes do not broadcast: %s, %s and %s", op->name,
                            s0, s1, sl__shape_str(s2, in[2]->ndim, in[2]->dims));
        }
    }
    *ndim = nd;
    memcpy(dims, d, sizeof d);
    return SL_OK;
}
