/*
 * test_compare.c - sl_gt, sl_ge, sl_lt, sl_le, sl_eq and sl_ne: values
 * against C's own comparison operators over NumPy-broadcast multi-indices
 * (NaN, +-0, +-inf and ties included; these are torch.gt ... torch.ne's
 * results as doubles), broadcasting both ways at rank 0..4, scalar nodes;
 * the output a constant to both sweeps (no gradient, no tangent, exactly 0
 * into the inputs even from an inf or NaN upstream gradient, nothing into
 * the inputs' own subgraphs); a causal attention mask made with sl_lt and
 * sl_where, gradient-checked whole; the errors; replay; and the checker
 * against a rule that passes g through.
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>

enum { GT, GE, LT, LE, EQ, NE, NCMP };
static const char *const names[NCMP] = {"gt", "ge", "lt", "le", "eq", "ne"};

static sl_var *compare(sl_tape *t, int op, sl_var *a, sl_var *b) {
    sl_var *(*const fn[NCMP])(sl_tape *, sl_var *, sl_var *) = {sl_gt, sl_ge, sl_lt,
                                                                sl_le, sl_eq, sl_ne};
    return fn[op](t, a, b);
}

/* The reference: C's operator itself, as 1.0 or 0.0. */
static double ref(int op, double x, double y) {
    switch (op) {
    case GT:
        return x > y;
    case GE:
        return x >= y;
    case LT:
        return x < y;
    case LE:
        return x <= y;
    case EQ:
        return x == y;
    default:
        return x != y;
    }
}

/* Values that meet every special case somewhere in the pairs below. */
static const double pool[] = {-INFINITY, -2.0, -0.0, 0.0, 1.0, NAN, 1.0, INFINITY, 0.5, -0.0, 2.0};
#define NPOOL (sizeof pool / sizeof pool[0])

/* op on A (na, da) and B (nb, db) with broadcast shape (nd, od): the values
 * against ref element by element; then no gradient and no tangent: seeded
 * with inf and NaN, a and b read exactly +0. Returns how many are 1. */
static size_t check_compare(int op, int na, const int *da, int nb, const int *db, int nd,
                            const int *od) {
    const size_t nA = sl__numel(na, da), nB = sl__numel(nb, db), n = sl__numel(nd, od);
    double A[64], B[64], G[64], TA[64], TB[64], dy[64];
    for (size_t i = 0; i < nA; i++) A[i] = pool[(i * 7 + 5) % NPOOL], TA[i] = 1.0 + (double)i;
    for (size_t i = 0; i < nB; i++) B[i] = pool[(i * 5 + 3) % NPOOL], TB[i] = -2.0;
    for (size_t i = 0; i < n; i++) G[i] = i % 3 == 0 ? NAN : (i % 3 == 1 ? INFINITY : -1.0);
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, na, da, A, SL_GRAD), *b = sl_input(t, nb, db, B, SL_GRAD);
    sl_var *y = compare(t, op, a, b);
    cr_assert_not_null(y, "%s: %s", names[op], sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), nd);
    for (int i = 0; i < nd; i++) cr_assert_eq(sl_dims(y)[i], od[i]);
    int idx[SL_MAX_DIMS] = {0};
    size_t k = 0, ones = 0;
    do {
        const double x = A[bcast_flat(nd, idx, na, da)], z = B[bcast_flat(nd, idx, nb, db)];
        cr_expect_eq(sl_value(y)[k], ref(op, x, z), "%s(%g, %g) = %g", names[op], x, z,
                     sl_value(y)[k]);
        ones += sl_value(y)[k] == 1.0;
        k++;
    } while (nd > 0 && next_index(nd, od, idx));
    cr_expect_eq(k, n);
    cr_expect_eq(sl_requires_grad(y), 0, "%s: a constant", names[op]);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    cr_expect_null(sl_grad(y));
    for (size_t i = 0; i < nA; i++)
        cr_expect(sl_grad(a)[i] == 0.0 && !signbit(sl_grad(a)[i]), "%s: da[%zu] = %g", names[op], i,
                  sl_grad(a)[i]);
    for (size_t i = 0; i < nB; i++)
        cr_expect(sl_grad(b)[i] == 0.0 && !signbit(sl_grad(b)[i]), "%s: db[%zu] = %g", names[op], i,
                  sl_grad(b)[i]);
    sl_var *leaves[] = {a, b};
    const double *tans[] = {TA, TB};
    for (size_t i = 0; i < n; i++) dy[i] = NAN;
    cr_assert_eq(sl_jvp(t, y, 2, leaves, tans, dy), SL_OK, "%s", sl_tape_error(t));
    for (size_t i = 0; i < n; i++) cr_expect_eq(dy[i], 0.0, "%s: tangent[%zu]", names[op], i);
    sl_tape_free(t);
    return ones;
}

/* (rank, dims) of a, b and out: equal shapes, each side broadcast over the
 * other, both broadcast, rank 0 against rank 0..4. */
static const struct {
    int na, da[4], nb, db[4], nd, od[4];
} pairs[] = {
    {0, {0}, 0, {0}, 0, {0}},
    {1, {11}, 1, {11}, 1, {11}},
    {2, {2, 3}, 1, {3}, 2, {2, 3}},
    {1, {3}, 2, {4, 3}, 2, {4, 3}},
    {2, {3, 1}, 2, {1, 4}, 2, {3, 4}},
    {0, {0}, 3, {2, 3, 2}, 3, {2, 3, 2}},
    {4, {2, 1, 3, 2}, 0, {0}, 4, {2, 1, 3, 2}},
    {4, {2, 1, 3, 1}, 4, {1, 2, 1, 4}, 4, {2, 2, 3, 4}},
    {3, {1, 3, 1}, 4, {2, 1, 1, 4}, 4, {2, 1, 3, 4}},
};

Test(compare, values_with_nan_zeros_infinities_broadcast_both_ways) {
    for (int op = 0; op < NCMP; op++) {
        size_t ones = 0, n = 0;
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            ones += check_compare(op, pairs[p].na, pairs[p].da, pairs[p].nb, pairs[p].db,
                                  pairs[p].nd, pairs[p].od);
            /* and the operands swapped: each side broadcast the other way */
            ones += check_compare(op, pairs[p].nb, pairs[p].db, pairs[p].na, pairs[p].da,
                                  pairs[p].nd, pairs[p].od);
            n += 2 * sl__numel(pairs[p].nd, pairs[p].od);
        }
        cr_expect(ones > 0 && ones < n, "%s: 1 in %zu of %zu", names[op], ones, n);
    }
}

/* The IEEE cases spelled out (torch.gt ... torch.ne give the same). */
Test(compare, nan_is_unordered_and_signed_zeros_equal) {
    const double A[5] = {NAN, NAN, 1.0, -0.0, INFINITY}, B[5] = {NAN, 1.0, NAN, 0.0, INFINITY};
    static const double want[NCMP][5] = {
        {0, 0, 0, 0, 0}, /* gt */
        {0, 0, 0, 1, 1}, /* ge */
        {0, 0, 0, 0, 0}, /* lt */
        {0, 0, 0, 1, 1}, /* le */
        {0, 0, 0, 1, 1}, /* eq */
        {1, 1, 1, 0, 0}, /* ne */
    };
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 1, (int[]){5}, A, 0), *b = sl_input(t, 1, (int[]){5}, B, 0);
    for (int op = 0; op < NCMP; op++) {
        sl_var *y = compare(t, op, a, b);
        cr_assert_not_null(y, "%s", sl_tape_error(t));
        for (int i = 0; i < 5; i++)
            cr_expect_eq(sl_value(y)[i], want[op][i], "%s(%g, %g)", names[op], A[i], B[i]);
    }
    sl_tape_free(t);
}

Test(compare, scalar_nodes_give_rank_0_results) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 1.5, SL_GRAD), *z = sl_scalar(t, NAN, SL_GRAD);
    sl_var *v = sl_input(t, 1, (int[]){3}, (double[]){1.0, 1.5, 2.0}, SL_GRAD);
    for (int op = 0; op < NCMP; op++) {
        sl_var *s = compare(t, op, x, sl_scalar(t, 1.5, 0));
        cr_assert_not_null(s, "%s", sl_tape_error(t));
        cr_expect_eq(sl_ndim(s), 0);
        cr_expect_eq(sl_item(s), ref(op, 1.5, 1.5), "%s(1.5, 1.5)", names[op]);
        cr_expect_eq(sl_item(compare(t, op, z, x)), op == NE, "%s(NaN, 1.5)", names[op]);
        sl_var *m = compare(t, op, x, v); /* a scalar against a vector, both ways */
        sl_var *w = compare(t, op, v, x);
        cr_assert_not_null(w, "%s", sl_tape_error(t));
        cr_expect_eq(sl_ndim(m), 1);
        for (int i = 0; i < 3; i++) {
            cr_expect_eq(sl_value(m)[i], ref(op, 1.5, sl_value(v)[i]), "%s", names[op]);
            cr_expect_eq(sl_value(w)[i], ref(op, sl_value(v)[i], 1.5), "%s", names[op]);
        }
        cr_expect_eq(sl_requires_grad(s) + sl_requires_grad(m) + sl_requires_grad(w), 0);
    }
    sl_tape_free(t);
}

/* Nothing flows from a comparison: not into its inputs, not into their own
 * subgraphs (log at 0 and below, whose rule would give 0 * inf = NaN), not
 * even from an inf or NaN gradient downstream; the other paths are exact. */
Test(compare, no_gradient_flows_and_no_nan_from_upstream) {
    const double X[4] = {0.0, -1.0, 2.0, 0.5};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){4}, X, SL_GRAD);
    sl_var *z = sl_input(t, 1, (int[]){4}, (double[]){INFINITY, 3.0, -1.0, NAN}, SL_GRAD);
    sl_var *lx = sl_log(t, x); /* [-inf, NaN, log 2, log 0.5] */
    sl_var *m = sl_gt(t, lx, sl_scalar(t, 0.0, 0));
    sl_var *y = sl_mul(t, m, z); /* the mask times z, z inf and NaN in places */
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_requires_grad(m), 0);
    cr_expect(sl_requires_grad(y));
    const double G[4] = {NAN, INFINITY, -INFINITY, 2.0};
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    cr_expect_null(sl_grad(m), "a constant has no gradient");
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sl_grad(x)[i], 0.0, "dx[%d] = %g", i, sl_grad(x)[i]);
        cr_expect_eq(sl_grad(lx)[i], 0.0, "dlog[%d] = %g", i, sl_grad(lx)[i]);
    }
    /* dz = g * mask: the mask is [0, 0, 1, 0] */
    cr_expect(isnan(sl_grad(z)[0]), "mul's own rule: NaN * 0"); /* as PyTorch */
    cr_expect(isnan(sl_grad(z)[1]));                            /* inf * 0 */
    cr_expect_eq(sl_grad(z)[2], -INFINITY);
    cr_expect_eq(sl_grad(z)[3], 0.0);
    /* forward mode: the mask has no tangent, so y's tangent is what a constant
     * leaf holding the mask's values gives (mul's own rule, ta*b + a*tb, takes
     * a missing tangent as 0: 0 * inf = NaN at z = inf, as for any constant) */
    sl_var *c = sl_input(t, 1, (int[]){4}, sl_value(m), 0), *yc = sl_mul(t, c, z);
    sl_var *leaves[] = {x, z};
    const double TX[4] = {1, 1, 1, 1}, TZ[4] = {1, 2, 3, 4}, *tans[] = {TX, TZ};
    double dy[4], dyc[4];
    cr_assert_eq(sl_jvp(t, y, 2, leaves, tans, dy), SL_OK, "%s", sl_tape_error(t));
    cr_assert_eq(sl_jvp(t, yc, 2, leaves, tans, dyc), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 4; i++)
        cr_expect(memcmp(&dy[i], &dyc[i], sizeof dy[i]) == 0, "tangent[%d]: %g, a constant's %g", i,
                  dy[i], dyc[i]);
    cr_expect_eq(dy[1], 0.0);
    cr_expect_eq(dy[2], 3.0);
    /* a path around the comparison still carries its gradient: d/dx sum((x > 0) * x) */
    sl_var *s = sl_sum(t, sl_mul(t, sl_gt(t, x, sl_scalar(t, 0.0, 0)), x), SL_ALL, 0);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, s), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_grad(x)[i], X[i] > 0.0, "dx[%d]", i);
    sl_tape_free(t);
}

/* A causal mask for attention: key j is visible to query i where j <= i, so
 * the scores where i < j are replaced by -inf before the softmax. Values,
 * exact zeros in the masked gradient, and sl_gradcheck over the whole. */
Test(compare, causal_mask_feeds_where_and_checks_whole) {
    enum { T = 5 };
    double I[T], S[T * T];
    for (int i = 0; i < T; i++) I[i] = i;
    for (int i = 0; i < T * T; i++) S[i] = 0.3 * sin(1.7 * i) + 0.1 * i;
    sl_tape *t = sl_tape_new();
    sl_var *qi = sl_input(t, 2, (int[]){T, 1}, I, 0), *kj = sl_input(t, 2, (int[]){1, T}, I, 0);
    sl_var *x = sl_input(t, 2, (int[]){T, T}, S, SL_GRAD);
    sl_var *future = sl_lt(t, qi, kj); /* [T, T]: 1 above the diagonal */
    sl_var *masked = sl_where(t, future, sl_scalar(t, -INFINITY, 0), x);
    sl_var *p = sl_softmax(t, masked, -1);
    sl_var *w = sl_input(t, 2, (int[]){T, T}, NULL, 0);
    for (int i = 0; i < T * T; i++) sl_leaf_data(w)[i] = 1.0 + 0.25 * i;
    sl_var *loss = sl_sum(t, sl_mul(t, p, w), SL_ALL, 0);
    cr_assert_not_null(loss, "%s", sl_tape_error(t));
    for (int i = 0; i < T; i++) {
        double row = 0.0;
        for (int j = 0; j < T; j++) {
            cr_expect_eq(sl_value(future)[i * T + j], i < j ? 1.0 : 0.0);
            if (j > i) cr_expect_eq(sl_value(p)[i * T + j], 0.0, "p[%d][%d]", i, j);
            row += sl_value(p)[i * T + j];
        }
        cr_expect(near(row, 1.0, 1e-15, 0.0), "row %d sums to %.17g", i, row);
    }
    cr_expect_eq(sl_value(p)[0], 1.0, "the first query sees only itself");
    cr_assert_eq(sl_backward(t, loss), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < T; i++)
        for (int j = i + 1; j < T; j++)
            cr_expect_eq(sl_grad(x)[i * T + j], 0.0, "a masked score gets exactly 0");
    sl_gradcheck_report rep;
    cr_expect_eq(sl_gradcheck(t, loss, 1, &x, NULL, &rep), SL_OK, "%s", rep.message);
    cr_expect_eq(rep.ok, 1, "%s", rep.message);
    sl_var *attn = sl_where(t, future, sl_scalar(t, 0.0, 0), p); /* the whole [T, T] Jacobian */
    cr_expect_eq(sl_gradcheck(t, attn, 1, &x, NULL, &rep), SL_OK, "%s", rep.message);
    sl_tape_free(t);
}

Test(compare, errors_name_the_function_and_both_shapes) {
    for (int op = 0; op < NCMP; op++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, 2, (int[]){2, 3}, NULL, 0),
               *b = sl_input(t, 1, (int[]){4}, NULL, 0);
        char msg[96];
        snprintf(msg, sizeof msg, "sl_%s: shapes do not broadcast: [2,3] and [4]", names[op]);
        expect_tape_error(compare(t, op, a, b), t, SL_ESHAPE, msg);
        cr_expect_null(compare(t, op, a, a), "sticky: a valid call records nothing");
        cr_expect_null(sl_where(t, NULL, a, a));
        cr_expect_str_eq(sl_tape_error(t), msg);
        sl_tape_free(t);
        t = sl_tape_new();
        snprintf(msg, sizeof msg, "sl_%s: input 1 is NULL on a tape without an error", names[op]);
        expect_tape_error(compare(t, op, sl_scalar(t, 1.0, 0), NULL), t, SL_EARG, msg);
        sl_tape_free(t);
    }
}

Test(compare, replay_after_changing_a_leaf) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 1, (int[]){3}, (double[]){-1.0, 0.0, 1.0}, 0);
    sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){10.0, 20.0, 30.0}, SL_GRAD);
    sl_var *m = sl_ge(t, a, sl_scalar(t, 0.0, 0));
    sl_var *y = sl_sum(t, sl_where(t, m, x, sl_scalar(t, 0.0, 0)), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_item(y), 50.0);
    sl_leaf_data(a)[0] = 2.0, sl_leaf_data(a)[1] = NAN, sl_leaf_data(a)[2] = -0.0;
    cr_assert_eq(sl_forward(t), SL_OK, "%s", sl_tape_error(t));
    const double want[3] = {1.0, 0.0, 1.0}; /* NaN >= 0 is false; -0 >= 0 is true */
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_value(m)[i], want[i], "m[%d]", i);
    cr_expect_eq(sl_item(y), 40.0);
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[i], want[i], "dx[%d]", i);
    sl_tape_free(t);
}

/* A wrong rule: the comparison's gradient passed through to a as if it
 * were the identity (summed over a's broadcast axes, so only the claim of
 * a derivative is wrong). Its node then carries a gradient, the rule runs,
 * and the differences (0) refute it. */
static void gt_bwd_identity(sl_var *out) {
    const sl_var *a = sl_in(out, 0);
    double *da = sl_grad_data(a);
    if (!da) return;
    const int nd = sl_ndim(out), na = sl_ndim(a);
    int idx[SL_MAX_DIMS] = {0};
    size_t k = 0;
    do da[bcast_flat(nd, idx, na, sl_dims(a))] += sl_grad(out)[k++];
    while (nd > 0 && next_index(nd, sl_dims(out), idx));
}

Test(compare, the_checker_catches_a_rule_that_passes_g_through) {
    expect_checker_catches("gt", NULL, 0, gt_bwd_identity);
}

/* Every op passes its check, for many seeds: SL_DOMAIN_APART keeps every
 * pair of elements 0.025 from a = b, so no step crosses the jump. */
Test(compare, every_op_passes_the_check_for_many_seeds) {
    for (int op = 0; op < NCMP; op++) {
        const sl_op *o = sl_op_find(names[op]);
        cr_assert_not_null(o, "%s is registered", names[op]);
        cr_expect_eq(o->backward, sl__constant_backward);
        for (uint64_t seed = 1; seed <= 60; seed++) {
            sl_gradcheck_opts opts = {.seed = seed};
            sl_gradcheck_report rep;
            cr_expect_eq(sl_gradcheck_op(o, &opts, &rep), SL_OK, "%s seed %llu: %s", names[op],
                         (unsigned long long)seed, rep.message);
            cr_expect_eq(rep.ncases, sl_op_ncases(o));
        }
    }
}
