/*
 * compare.c - element-wise comparisons: gt ge lt le eq ne. Each output
 * element is 1.0 where the comparison holds and 0.0 elsewhere, with C's
 * (IEEE) semantics: every comparison with a NaN is false, so ne is true
 * there, and -0 == +0 (as torch.gt ... torch.ne, whose bool results these
 * are as doubles). The inputs broadcast as the arithmetic ops
 * (SL__ZIP_LOOP); rank-0 inputs reach the kernels through views.
 *
 * They are piecewise constant: the derivative is 0 wherever it exists, with
 * a jump at a = b. So their backward rule is sl__constant_backward, which
 * makes them constants to both sweeps, as a comparison's bool output is to
 * PyTorch's graph: sl_apply gives their node no gradient and sl_jvp no
 * tangent, so nothing - not even 0 * inf = NaN - ever flows from them into
 * their inputs' subgraphs, whatever gradient arrives downstream.
 */
#include "map.h"

/* The six, as X(name, C operator, its text, the output at a NaN): one
 * kernel, table row and wrapper each, from the macros below. */
#define COMPARE_OPS(X)                                                                             \
    X(gt, >, ">", "0")                                                                             \
    X(ge, >=, ">=", "0")                                                                           \
    X(lt, <, "<", "0")                                                                             \
    X(le, <=, "<=", "0")                                                                           \
    X(eq, ==, "==", "0")                                                                           \
    X(ne, !=, "!=", "1")

/* ---- a (A), b (B) -> out (broadcast(A, B)), out = (a OP b) ? 1.0 : 0.0 ---- */

#define COMPARE_FORWARD(NAME, OP, SYM, NAN_GIVES)                                                  \
    SL__KERNEL static void NAME##_forward(sl_var *out) {                                           \
        const double *a = out->in[0]->val, *b = out->in[1]->val;                                   \
        double *o = out->val;                                                                      \
        SL__ZIP_LOOP(out, o[k] = a[ia] OP b[ib] ? 1.0 : 0.0);                                      \
    }
COMPARE_OPS(COMPARE_FORWARD)

/* da = db = 0: nothing to add. Never called by the sweeps (see the header). */
void sl__constant_backward(sl_var *out) { (void)out; }

/* The tangent is 0. Never called by sl_jvp either (a NULL tangent is zero);
 * this is the rule for what the op is, should anything call it. */
static void compare_jvp(sl_var *out) { sl__zero(sl__tanbuf(out), out->n); }

/* ----------------------------------------------------------------- table */

/* The checks draw a and b by SL_DOMAIN_APART: input 0 on a quarter grid,
 * input 1 between its points, so no pair is within 0.025 of a = b and no
 * step of the differences crosses the jump; both outcomes occur. */
#define COMPARE_ROW(NAME, OP, SYM, NAN_GIVES)                                                      \
    {.name = #NAME,                                                                                \
     .arity = 2,                                                                                   \
     .shape = sl__shape_bcast,                                                                     \
     .forward = NAME##_forward,                                                                    \
     .backward = sl__constant_backward,                                                            \
     .jvp = compare_jvp,                                                                           \
     .signature = "sl_" #NAME "(t, a, b)",                                                         \
     .formula = "out = 1 if a " SYM " b else 0, element-wise (NaN in a or b: " NAN_GIVES ")",      \
     .derivative = "no gradient: piecewise constant (0 where defined; a jump at a = b)",           \
     .kinks = "a jump at a = b; the output carries no gradient or tangent, so nothing flows to "   \
              "a or b",                                                                            \
     .domain = {SL_DOMAIN_APART, SL_DOMAIN_APART},                                                 \
     .kind = SL_KIND_ZIP},

const sl_op sl__compare_ops[] = {COMPARE_OPS(COMPARE_ROW)};
const int sl__compare_nops = (int)(sizeof sl__compare_ops / sizeof sl__compare_ops[0]);

/* sl_gt ... sl_ne: the table's rows in COMPARE_OPS order */
enum {
#define COMPARE_INDEX(NAME, OP, SYM, NAN_GIVES) COMPARE_##NAME,
    COMPARE_OPS(COMPARE_INDEX)
};
#define COMPARE_WRAPPER(NAME, OP, SYM, NAN_GIVES)                                                  \
    sl_var *sl_##NAME(sl_tape *t, sl_var *a, sl_var *b) {                                          \
        return sl__apply2(t, &sl__compare_ops[COMPARE_##NAME], a, b, NULL);                        \
    }
COMPARE_OPS(COMPARE_WRAPPER)
