/*
 * scalar.c - scalar nodes: the compact form of rank-0 leaves and of the
 * element-wise ops applied to them (internal.h: sl__snode). A scalar graph
 * (micrograd's, W1's chain, a Speelpenning product) is recorded as 24-40-byte
 * records instead of 72-byte tensor headers plus buffers; tape.c's loops run
 * their rules (scalar.h) inline.
 */
#include "scalar.h"

const int sl__scalar_dims[SL_MAX_DIMS] = {0};

#define EW(i) (&sl__elementwise_ops[SL__EW_##i])
#define ACT(i) (&sl__activation_ops[SL__ACT_##i])
const sl_op *const sl__s_ops[SL__S_NCODES] = {
    [SL__S_LEAF] = NULL,
    [SL__S_ADD] = EW(ADD),
    [SL__S_SUB] = EW(SUB),
    [SL__S_MUL] = EW(MUL),
    [SL__S_DIV] = EW(DIV),
    [SL__S_NEG] = EW(NEG),
    [SL__S_EXP] = EW(EXP),
    [SL__S_LOG] = EW(LOG),
    [SL__S_LOG1P] = EW(LOG1P),
    [SL__S_EXPM1] = EW(EXPM1),
    [SL__S_SQRT] = EW(SQRT),
    [SL__S_ABS] = EW(ABS),
    [SL__S_SQUARE] = EW(SQUARE),
    [SL__S_SIN] = EW(SIN),
    [SL__S_COS] = EW(COS),
    [SL__S_POW] = EW(POW),
    [SL__S_SIGMOID] = ACT(SIGMOID),
    [SL__S_TANH] = ACT(TANH),
    [SL__S_RELU] = ACT(RELU),
    [SL__S_LEAKY_RELU] = ACT(LEAKY_RELU),
    [SL__S_SOFTPLUS] = ACT(SOFTPLUS),
    [SL__S_ELU] = ACT(ELU),
    [SL__S_GELU_ERF] = ACT(GELU),
    [SL__S_GELU_TANH] = ACT(GELU),
    [SL__S_SILU] = ACT(SILU),
    [SL__S_SOFTSIGN] = ACT(SOFTSIGN),
    [SL__S_LOG_SIGMOID] = ACT(LOG_SIGMOID),
};

/* Family position -> scalar code. */
static const unsigned char ew_code[SL__EW_NOPS] = {
    [SL__EW_ADD] = SL__S_ADD,       [SL__EW_SUB] = SL__S_SUB,     [SL__EW_MUL] = SL__S_MUL,
    [SL__EW_DIV] = SL__S_DIV,       [SL__EW_NEG] = SL__S_NEG,     [SL__EW_EXP] = SL__S_EXP,
    [SL__EW_LOG] = SL__S_LOG,       [SL__EW_SQRT] = SL__S_SQRT,   [SL__EW_ABS] = SL__S_ABS,
    [SL__EW_SQUARE] = SL__S_SQUARE, [SL__EW_SIN] = SL__S_SIN,     [SL__EW_COS] = SL__S_COS,
    [SL__EW_POW] = SL__S_POW,       [SL__EW_LOG1P] = SL__S_LOG1P, [SL__EW_EXPM1] = SL__S_EXPM1,
};
static const unsigned char act_code[SL__ACT_NOPS] = {
    [SL__ACT_SIGMOID] = SL__S_SIGMOID,   [SL__ACT_TANH] = SL__S_TANH,
    [SL__ACT_RELU] = SL__S_RELU,         [SL__ACT_LEAKY_RELU] = SL__S_LEAKY_RELU,
    [SL__ACT_SOFTPLUS] = SL__S_SOFTPLUS, [SL__ACT_ELU] = SL__S_ELU,
    [SL__ACT_GELU] = SL__S_GELU_ERF,     [SL__ACT_SILU] = SL__S_SILU,
    [SL__ACT_SOFTSIGN] = SL__S_SOFTSIGN, [SL__ACT_LOG_SIGMOID] = SL__S_LOG_SIGMOID,
};

int sl__s_code(const sl_op *op, const sl_attrs *a) {
    /* integer compares: the tables are separate arrays */
    const uintptr_t p = (uintptr_t)op, ew = (uintptr_t)sl__elementwise_ops,
                    act = (uintptr_t)sl__activation_ops;
    if (p >= ew && p < ew + sizeof(sl_op) * SL__EW_NOPS) return ew_code[op - sl__elementwise_ops];
    if (p >= act && p < act + sizeof(sl_op) * SL__ACT_NOPS) {
        const int c = act_code[op - sl__activation_ops];
        return c == SL__S_GELU_ERF && a && a->mode == SL_GELU_TANH ? SL__S_GELU_TANH : c;
    }
    return 0;
}

double sl__s_eval1(const sl__snode *s, double z) {
    const double alpha = sl__s_alpha(s);
    (void)alpha;
    switch (s->code) {
#define X(C)                                                                                       \
    case SL__S_##C:                                                                                \
        return SL__F_##C;
        SL__S_UNARY(X)
#undef X
    }
    return s->val;
}

double sl__s_backward1(sl__snode *s, double g) {
    sl__snode *x = s->arg[0].x;
    const double z = x->val, a = s->val, alpha = sl__s_alpha(s);
    (void)z, (void)a, (void)alpha;
    switch (s->code) {
#define X(C)                                                                                       \
    case SL__S_##C:                                                                                \
        return x->grad = x->grad + SL__D_##C;
        SL__S_UNARY(X)
#undef X
    }
    return x->grad;
}
