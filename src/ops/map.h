/*
 * map.h - the loops shared by element-wise op families: one macro makes a
 * unary op's forward and backward from two expressions, one loop walks a
 * binary op's broadcast operands. Kept in a header so each family file still
 * reads as "forward and backward side by side".
 */
#ifndef SLOPE_OPS_MAP_H
#define SLOPE_OPS_MAP_H

#include "../internal.h"
#include "rules.h"

#include <math.h>

/* x seen around one axis as (outer, len, inner): outer = prod(dims[:ax]),
 * len = dims[ax], inner = prod(dims[ax+1:]); SL_ALL is (1, numel, 1). The
 * reductions and the softmax family walk their inputs through it. */
typedef struct sl__view {
    size_t outer, len, inner;
} sl__view;

static inline sl__view sl__axis_view(const sl_var *x, int axis) {
    sl__view v = {1, x->n, 1};
    if (axis == SL_ALL || x->ndim == 0) return v; /* rank 0: axis 0 or -1 (sl__axis) */
    const int ax = axis < 0 ? axis + x->ndim : axis;
    v.len = (size_t)x->dims[ax];
    for (int i = 0; i < ax; i++) v.outer *= (size_t)x->dims[i];
    for (int i = ax + 1; i < x->ndim; i++) v.inner *= (size_t)x->dims[i];
    return v;
}

/* Unary element-wise op NAME:  x (any shape) -> out (same shape).
 * FWD computes the output from z (the input element) and alpha, beta (the
 * attributes); BWD computes dL/dz from g (dL/da), z, a (the saved output),
 * alpha and beta. Both loops are flat and branch-light so the compiler can vectorise.
 * The tangent rule (NAME_jvp) is BWD with g taken from the input's tangent:
 * an element-wise op's Jacobian is diagonal, so forward and reverse mode
 * apply the same derivative. */
#define SL__MAP_OP(NAME, FWD, BWD)                                                                 \
    SL__MAP_FORWARD(NAME, FWD)                                                                     \
    SL__MAP_RULES(NAME, BWD)

/* The forward loop alone. */
#define SL__MAP_FORWARD(NAME, FWD)                                                                 \
    SL__KERNEL static void NAME##_forward(sl_var *out) {                                           \
        const double *x = out->in[0]->val;                                                         \
        double *o = out->val;                                                                      \
        const double alpha = out->attrs->alpha, beta = out->attrs->beta;                           \
        (void)alpha, (void)beta;                                                                   \
        for (size_t i = 0, n = out->n; i < n; i++) {                                               \
            const double z = x[i];                                                                 \
            o[i] = (FWD);                                                                          \
        }                                                                                          \
    }

/* Backward and tangent rules from one derivative expression (see above). */
#define SL__MAP_RULES(NAME, BWD)                                                                   \
    SL__KERNEL static void NAME##_backward(sl_var *out) {                                          \
        double *dx = out->in[0]->grad;                                                             \
        if (!dx) return;                                                                           \
        const double *x = out->in[0]->val, *o = out->val, *gr = out->grad;                         \
        const double alpha = out->attrs->alpha, beta = out->attrs->beta;                           \
        (void)alpha, (void)beta;                                                                   \
        for (size_t i = 0, n = out->n; i < n; i++) {                                               \
            const double z = x[i], a = o[i], g = gr[i];                                            \
            (void)z;                                                                               \
            (void)a;                                                                               \
            dx[i] += (BWD);                                                                        \
        }                                                                                          \
    }                                                                                              \
    /* the tangent rule is the same derivative applied to the input's tangent */                   \
    static void NAME##_jvp(sl_var *out) {                                                          \
        const double *x = out->in[0]->val, *o = out->val, *tx = sl__tan(out->in[0]);               \
        double *to = sl__tanbuf(out);                                                              \
        const double alpha = out->attrs->alpha, beta = out->attrs->beta;                           \
        (void)alpha, (void)beta;                                                                   \
        for (size_t i = 0, n = out->n; i < n; i++) {                                               \
            const double z = x[i], a = o[i], g = tx[i];                                            \
            (void)z;                                                                               \
            (void)a;                                                                               \
            to[i] = (BWD);                                                                         \
        }                                                                                          \
    }

/* Run BODY once per element k of out = f(in[0], in[1]) with ia, ib the
 * matching (broadcast) element indices of the two inputs. Equal shapes take
 * the flat path. */
#define SL__ZIP_LOOP(out, BODY)                                                                    \
    do {                                                                                           \
        const sl_var *A_ = (out)->in[0], *B_ = (out)->in[1];                                       \
        const size_t n_ = (out)->n;                                                                \
        if (A_->n == n_ && B_->n == n_) {                                                          \
            for (size_t k = 0; k < n_; k++) {                                                      \
                const size_t ia = k, ib = k;                                                       \
                (void)ia, (void)ib;                                                                \
                BODY;                                                                              \
            }                                                                                      \
        } else if (B_->n == 1 && A_->n == n_) {                                                    \
            for (size_t k = 0; k < n_; k++) {                                                      \
                const size_t ia = k, ib = 0;                                                       \
                (void)ia, (void)ib;                                                                \
                BODY;                                                                              \
            }                                                                                      \
        } else if (A_->n == 1 && B_->n == n_) {                                                    \
            for (size_t k = 0; k < n_; k++) {                                                      \
                const size_t ia = 0, ib = k;                                                       \
                (void)ia, (void)ib;                                                                \
                BODY;                                                                              \
            }                                                                                      \
        } else {                                                                                   \
            size_t sa_[SL_MAX_DIMS], sb_[SL_MAX_DIMS];                                             \
            int d_[SL_MAX_DIMS];                                                                   \
            sl__bcast_strides((out)->ndim, (out)->dims, A_->ndim, A_->dims, sa_, d_);              \
            sl__bcast_strides((out)->ndim, (out)->dims, B_->ndim, B_->dims, sb_, d_);              \
            size_t k = 0;                                                                          \
            for (int i0 = 0; i0 < d_[0]; i0++)                                                     \
                for (int i1 = 0; i1 < d_[1]; i1++)                                                 \
                    for (int i2 = 0; i2 < d_[2]; i2++) {                                           \
                        const size_t ba_ = i0 * sa_[0] + i1 * sa_[1] + i2 * sa_[2];                \
                        const size_t bb_ = i0 * sb_[0] + i1 * sb_[1] + i2 * sb_[2];                \
                        const size_t n3_ = (size_t)d_[3];                                          \
                        /* the innermost axis: contiguous or broadcast on each side, so   */       \
                        /* the common patterns ([m,n] op [m,1], [m,n] op [n]) vectorise   */       \
                        if (sa_[3] == 1 && sb_[3] == 0)                                            \
                            for (size_t i3 = 0; i3 < n3_; i3++, k++) {                             \
                                const size_t ia = ba_ + i3, ib = bb_;                              \
                                (void)ia, (void)ib;                                                \
                                BODY;                                                              \
                            }                                                                      \
                        else if (sa_[3] == 1 && sb_[3] == 1)                                       \
                            for (size_t i3 = 0; i3 < n3_; i3++, k++) {                             \
                                const size_t ia = ba_ + i3, ib = bb_ + i3;                         \
                                (void)ia, (void)ib;                                                \
                                BODY;                                                              \
                            }                                                                      \
                        else if (sa_[3] == 0 && sb_[3] == 1)                                       \
                            for (size_t i3 = 0; i3 < n3_; i3++, k++) {                             \
                                const size_t ia = ba_, ib = bb_ + i3;                              \
                                (void)ia, (void)ib;                                                \
                                BODY;                                                              \
                            }                                                                      \
                        else                                                                       \
                            for (size_t i3 = 0; i3 < n3_; i3++, k++) {                             \
                                const size_t ia = ba_ + i3 * sa_[3], ib = bb_ + i3 * sb_[3];       \
                                (void)ia, (void)ib;                                                \
                                BODY;                                                              \
                            }                                                                      \
                    }                                                                              \
        }                                                                                          \
    } while (0)

/* Run BODY once per element k of out = f(in[0], in[1], in[2]) with i0, i1,
 * i2 the matching (broadcast) element indices of the three inputs, as
 * SL__ZIP_LOOP does for two: equal shapes take the flat path; otherwise
 * each input is walked through its broadcast strides (sl__bcast_strides: 0
 * along an axis it is broadcast on), the innermost axis in one loop. Loop
 * counters are p0..p3, so BODY may use i0..i2 and k freely. */
#define SL__ZIP3_LOOP(out, BODY)                                                                   \
    do {                                                                                           \
        const sl_var *const *in_ = (const sl_var *const *)(out)->in;                               \
        const size_t n_ = (out)->n;                                                                \
        if (in_[0]->n == n_ && in_[1]->n == n_ && in_[2]->n == n_) {                               \
            for (size_t k = 0; k < n_; k++) {                                                      \
                const size_t i0 = k, i1 = k, i2 = k;                                               \
                (void)i0, (void)i1, (void)i2;                                                      \
                BODY;                                                                              \
            }                                                                                      \
        } else {                                                                                   \
            size_t s_[3][SL_MAX_DIMS];                                                             \
            int d_[SL_MAX_DIMS];                                                                   \
            for (int j_ = 0; j_ < 3; j_++)                                                         \
                sl__bcast_strides((out)->ndim, (out)->dims, in_[j_]->ndim, in_[j_]->dims, s_[j_],  \
                                  d_);                                                             \
            size_t k = 0;                                                                          \
            for (size_t p0 = 0; p0 < (size_t)d_[0]; p0++)                                          \
                for (size_t p1 = 0; p1 < (size_t)d_[1]; p1++)                                      \
                    for (size_t p2 = 0; p2 < (size_t)d_[2]; p2++) {                                \
                        size_t b_[3];                                                              \
                        for (int j_ = 0; j_ < 3; j_++)                                             \
                            b_[j_] = p0 * s_[j_][0] + p1 * s_[j_][1] + p2 * s_[j_][2];             \
                        for (size_t p3 = 0; p3 < (size_t)d_[3]; p3++, k++) {                       \
                            const size_t i0 = b_[0] + p3 * s_[0][3], i1 = b_[1] + p3 * s_[1][3],   \
                                         i2 = b_[2] + p3 * s_[2][3];                               \
                            (void)i0, (void)i1, (void)i2;                                          \
                            BODY;                                                                  \
                        }                                                                          \
                    }                                                                              \
        }                                                                                          \
    } while (0)

#endif
