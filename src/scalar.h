/*
 * scalar.h - the rules of scalar nodes (internal.h: sl__snode), inline so the
 * sweeps in tape.c run them without a call per node. The unary expressions
 * are rules.h's, the ones the tensor kernels expand; the binary ones are
 * elementwise.c's, element for element.
 */
#ifndef SLOPE_SCALAR_H
#define SLOPE_SCALAR_H

#include "internal.h"
#include "ops/rules.h"

/* The unary codes, for the switches below. */
#define SL__S_UNARY(X)                                                                             \
    X(NEG)                                                                                         \
    X(EXP)                                                                                         \
    X(LOG)                                                                                         \
    X(LOG1P)                                                                                       \
    X(EXPM1)                                                                                       \
    X(SQRT)                                                                                        \
    X(ABS)                                                                                         \
    X(SQUARE)                                                                                      \
    X(SIN)                                                                                         \
    X(COS)                                                                                         \
    X(SIGMOID)                                                                                     \
    X(TANH)                                                                                        \
    X(RELU)                                                                                        \
    X(SOFTPLUS)                                                                                    \
    X(SILU)                                                                                        \
    X(SOFTSIGN)                                                                                    \
    X(LOG_SIGMOID)                                                                                 \
    X(GELU_ERF)                                                                                    \
    X(GELU_TANH)                                                                                   \
    X(POW)                                                                                         \
    X(LEAKY_RELU)                                                                                  \
    X(ELU)

/* The attribute of s (0 for codes without one). */
static inline double sl__s_alpha(const sl__snode *s) {
    return SL__S_HAS_P(s->code) ? s->arg[1].p : 0.0;
}

/* The unary rules are out of line (scalar.c): they call libm, and a call
 * inside the sweeps' loops would make the compiler keep the values those
 * loops carry from node to node in memory rather than in registers. */
double sl__s_eval1(const sl__snode *s, double z);
double sl__s_backward1(sl__snode *s, double g);

/* s's value from its inputs' values, z the first input's. */
static inline double sl__s_eval_z(const sl__snode *s, double z) {
    switch (s->code) {
    case SL__S_ADD:
        return z + s->arg[1].x->val;
    case SL__S_SUB:
        return z - s->arg[1].x->val;
    case SL__S_MUL:
        return z * s->arg[1].x->val;
    case SL__S_DIV:
        return z / s->arg[1].x->val;
    case SL__S_LEAF:
        return s->val;
    }
    return sl__s_eval1(s, z);
}
static inline double sl__s_eval(const sl__snode *s) { return sl__s_eval_z(s, s->arg[0].x->val); }

/* Add g (s's gradient) times s's local slopes into its inputs' gradient
 * slots (unconditionally: a slot without SL__NODE_GRAD is never read).
 * Returns the first input's gradient as it now stands, so the sweep can
 * carry it in a register to the next node when that is the input (a chain)
 * instead of reading back what it just stored. */
static inline double sl__s_backward(sl__snode *s, double g) {
    sl__snode *x = s->arg[0].x, *y = s->arg[1].x;
    double gx;
    switch (s->code) {
    case SL__S_ADD:
        x->grad = gx = x->grad + g;
        y->grad += g;
        return y == x ? x->grad : gx;
    case SL__S_SUB:
        x->grad = gx = x->grad + g;
        y->grad -= g;
        return y == x ? x->grad : gx;
    case SL__S_MUL:
        x->grad = gx = x->grad + g * y->val;
        y->grad += g * x->val;
        return y == x ? x->grad : gx;
    case SL__S_DIV:
        x->grad = gx = x->grad + g / y->val;
        y->grad -= g * s->val / y->val;
        return y == x ? x->grad : gx;
    }
    return sl__s_backward1(s, g);
}

/* s's tangent from its inputs' tangents ta, tb (NULL = zero), as the tensor
 * tangent rules compute it. */
static inline double sl__s_jvp(const sl__snode *s, const double *ta, const double *tb) {
    const sl__snode *x = s->arg[0].x;
    const double TA = ta ? *ta : 0.0, TB = tb ? *tb : 0.0;
    switch (s->code) {
    case SL__S_ADD:
        return TA + TB;
    case SL__S_SUB:
        return TA - TB;
    case SL__S_MUL:
        return TA * s->arg[1].x->val + x->val * TB;
    case SL__S_DIV:
        return (TA - s->val * TB) / s->arg[1].x->val;
#define X(C)                                                                                       \
    case SL__S_##C: {                                                                              \
        const double z = x->val, a = s->val, alpha = sl__s_alpha(s), g = TA;                       \
        (void)z, (void)a, (void)alpha;                                                             \
        return SL__D_##C;                                                                          \
    }
        SL__S_UNARY(X)
#undef X
    }
    return 0.0;
}

/* Fill leaf record s: value x, SL_GRAD if grad (the id is the caller's). */
/* Write s's head (id, kind, flags, code, run) in one 8-byte store rather than
 * five narrow ones. */
static inline void sl__s_head(sl__snode *s, size_t id, unsigned flags, unsigned code,
                              unsigned run) {
    struct {
        uint32_t id;
        unsigned char kind, flags, code, run;
    } h = {(uint32_t)id, SL__KIND_SCALAR, (unsigned char)flags, (unsigned char)code,
           (unsigned char)run};
    _Static_assert(sizeof h == offsetof(sl__snode, val), "the head is the first 8 bytes");
    memcpy(s, &h, sizeof h);
}

/* Fill plain leaf s of value x, to become node `id` of its tape. */
static inline void sl__s_fill_leaf(sl__snode *s, size_t id, double x, int grad) {
    sl__s_head(s, id, SL__NODE_LEAF | (grad ? SL__NODE_GRAD : 0), SL__S_LEAF, 0);
    s->val = x;
    s->grad = 0.0;
}

/* Fill record s for binary code `code` over a and b, s to become node n of
 * its tape (the id is the caller's): value, inputs, the chain bit when s is
 * a product of the product recorded just before it, and which inputs are op
 * nodes (internal.h: SL__OP_IN0_OP). The head goes in field by field, not
 * through sl__s_head's one store: the next call reads this node's id, flags
 * and code back (a chain's input), and loading those bytes from one 8-byte
 * store made a chained product 2.97 -> 3.7 ns to record here (Zen 5). */
static inline void sl__s_fill2(sl__snode *s, int code, sl__snode *a, sl__snode *b, size_t n) {
    const unsigned af = a->flags, bf = b->flags; /* an op node has no SL__NODE_LEAF */
    s->kind = SL__KIND_SCALAR;
    s->flags = (unsigned char)((af | bf) & SL__NODE_GRAD);
    s->code = (unsigned char)code;
    s->run = (unsigned char)((code == SL__S_MUL && a->id + (size_t)1 == n && a->code == SL__S_MUL &&
                                      (af & SL__NODE_GRAD)
                                  ? SL__OP_CHAIN
                                  : 0) |
                             (af & SL__NODE_LEAF ? 0 : SL__OP_IN0_OP) |
                             (bf & SL__NODE_LEAF ? 0 : SL__OP_IN1_OP));
    s->val = code == SL__S_MUL   ? a->val * b->val
             : code == SL__S_ADD ? a->val + b->val
             : code == SL__S_SUB ? a->val - b->val
                                 : a->val / b->val;
    s->grad = 0.0;
    s->arg[0].x = a;
    s->arg[1].x = b;
}

/* Record binary code `code` (constant at each call site) over x and y: the
 * inline path of scalar graphs (W1, W5), taken while the tape is healthy
 * (t->fast_cap, internal.h) and x, y are scalar nodes of t; anything else
 * (errors, tensors, growth, anomaly mode, source locations) goes through
 * sl__s_apply2, which checks and reports it. */
static inline sl_var *sl__s_rec2(sl_tape *t, const sl_op *op, int code, sl_var *x, sl_var *y) {
    if (t && x && y && sl__is_s(x) && sl__is_s(y)) {
        sl__snode *a = sl__s(x), *b = sl__s(y);
        const size_t n = t->n;
        if (n < t->fast_cap && a->id < n && b->id < n && t->nodes[a->id] == x &&
            t->nodes[b->id] == y) {
            sl__snode *s = sl__arena_bump(&t->arena, sizeof *s + 2 * sizeof(sl__sarg), 8);
            if (s) { /* else sl__s_apply2 takes a new chunk */
                sl__s_fill2(s, code, a, b, n);
                s->id = (uint32_t)n;
                t->nodes[n] = (sl_var *)(void *)s;
                t->n = n + 1;
                return (sl_var *)(void *)s;
            }
        }
    }
    return sl__s_apply2(t, op, code, x, y);
}

#endif
