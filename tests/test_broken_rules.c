/*
 * test_broken_rules.c - the gradient checker against deliberately broken
 * rules. Each broken op is a user op registered under its own name, with a
 * right rule in one mode and a broken one in the other (or both broken the
 * same way): wrong sign, wrong factor, off by 1e-4 relative (which a
 * tolerance of 1e-3 lets through), a missing broadcast reduction, a wrong
 * kink convention, a declared kink slope outside the one-sided slopes, a
 * wrong tangent rule, rules that only the dot-product test sees, a batched
 * matmul that does not sum over broadcast batches or reads the wrong batch's
 * matrix, and a permute whose backward applies perm, not its inverse. Each
 * must be caught with SL_EGRAD, and report.failed must name the check that
 * determined it. Then the other side: every built-in op passes, its kink
 * and ties cases included, with the conventions DESIGN.md states.
 *
 * The registry is process-global; Criterion runs each test in its own
 * process, and every op here has a name no other suite uses.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>

/* ------------------------------------------------ unary rules by formula */

/* Forward, backward and tangent rule of a unary element-wise op from two
 * expressions in z (the input element): the value, and the slope each rule
 * applies (BWD for reverse mode, JVP for forward mode). */
#define UNARY(NAME, FWD, BWD, JVP)                                                                 \
    static void NAME##_fwd(sl_var *out) {                                                          \
        const double *x = sl_value(sl_in(out, 0));                                                 \
        for (size_t i = 0; i < sl_numel(out); i++) {                                               \
            const double z = x[i];                                                                 \
            sl_out_data(out)[i] = (FWD);                                                           \
        }                                                                                          \
    }                                                                                              \
    static void NAME##_bwd(sl_var *out) {                                                          \
        const sl_var *x = sl_in(out, 0);                                                           \
        double *dx = sl_grad_data(x);                                                              \
        if (!dx) return;                                                                           \
        for (size_t i = 0; i < sl_numel(out); i++) {                                               \
            const double z = sl_value(x)[i];                                                       \
            (void)z;                                                                               \
            dx[i] += sl_grad(out)[i] * (BWD);                                                      \
        }                                                                                          \
    }                                                                                              \
    static void NAME##_jvp(sl_var *out) {                                                          \
        const sl_var *x = sl_in(out, 0);                                                           \
        const double *tx = sl_tangent_data(x);                                                     \
        for (size_t i = 0; i < sl_numel(out); i++) {                                               \
            const double z = sl_value(x)[i];                                                       \
            (void)z;                                                                               \
            sl_tangent_data(out)[i] = tx ? tx[i] * (JVP) : 0.0;                                    \
        }                                                                                          \
    }

#define UNARY_OP(NAME, KINK, KINKS, DOM)                                                           \
    {                                                                                              \
        .name = "br_" #NAME, .arity = 1, .forward = NAME##_fwd, .backward = NAME##_bwd,            \
        .jvp = NAME##_jvp, .signature = "sl_apply(t, op, 1, &x, NULL)", .formula = #NAME,          \
        .derivative = "deliberately broken", .kinks = KINKS, .kink = KINK, .domain = {DOM},        \
        .kind = SL_KIND_MAP, .defaults = {                                                         \
            .alpha = 0.25                                                                          \
        }                                                                                          \
    }
#define NO_KINK                                                                                    \
    { 0 }

/* a = z^3: the right slope is 3 z^2 */
UNARY(cube, z *z *z, 3.0 * z * z, 3.0 * z * z)
UNARY(sign, z *z *z, -3.0 * z * z, 3.0 * z * z)                          /* backward: wrong sign */
UNARY(factor, z *z *z, 6.0 * z * z, 3.0 * z * z)                         /* backward: 2x */
UNARY(tiny, z *z *z, 3.0 * z * z * (1 + 1e-4), 3.0 * z * z * (1 + 1e-4)) /* both 1e-4 off */
UNARY(tinybwd, z *z *z, 3.0 * z * z * (1 + 1e-4), 3.0 * z * z)           /* backward 1e-4 off */
UNARY(jvp, z *z *z, 3.0 * z * z, 2.0 * z * z)                            /* tangent rule wrong */
/* a = 1e-12 z with a backward that forgets the factor (gives 0): every
 * entry's error (1e-12) is below every absolute tolerance (1e-5 against the
 * differences, 1e-10 between the modes); the dot test is relative to the
 * size of the products and sees it */
UNARY(scale, 1e-12 * z, 0.0, 1e-12)
/* relu-like: a = max(0, z); the slope at exactly 0 is what differs */
UNARY(relu_ok, z > 0 ? z : 0.0, z > 0 ? 1.0 : 0.0, z > 0 ? 1.0 : 0.0)
UNARY(relu_at1, z > 0 ? z : 0.0, z >= 0 ? 1.0 : 0.0, z >= 0 ? 1.0 : 0.0) /* 1 at 0, declares 0 */
UNARY(relu_at15, z > 0 ? z : 0.0, z > 0 ? 1.0 : (z < 0 ? 0.0 : 1.5),
      z > 0 ? 1.0 : (z < 0 ? 0.0 : 1.5)) /* declares 1.5: not in [0, 1] */
/* leaky-relu-like with slope alpha below 0: at 0 the backward gives 1 while
 * the op declares alpha */
UNARY(leaky_at1, z > 0 ? z : 0.25 * z, z >= 0 ? 1.0 : 0.25, z >= 0 ? 1.0 : 0.25)

#define KINK0(S)                                                                                   \
    { .present = 1, .at = 0.0, .slope = (S) }
#define KINK0_ALPHA                                                                                \
    { .present = 1, .at = 0.0, .slope_is_alpha = 1 }
static const sl_op cube_op = UNARY_OP(cube, NO_KINK, NULL, SL_DOMAIN_REAL);
static const sl_op sign_op = UNARY_OP(sign, NO_KINK, NULL, SL_DOMAIN_REAL);
static const sl_op factor_op = UNARY_OP(factor, NO_KINK, NULL, SL_DOMAIN_REAL);
static const sl_op tiny_op = UNARY_OP(tiny, NO_KINK, NULL, SL_DOMAIN_REAL);
static const sl_op tinybwd_op = UNARY_OP(tinybwd, NO_KINK, NULL, SL_DOMAIN_REAL);
static const sl_op jvp_op = UNARY_OP(jvp, NO_KINK, NULL, SL_DOMAIN_REAL);
static const sl_op scale_op = UNARY_OP(scale, NO_KINK, NULL, SL_DOMAIN_REAL);
static const sl_op relu_ok_op = UNARY_OP(relu_ok, KINK0(0.0), "z = 0: 0", SL_DOMAIN_NONZERO);
static const sl_op relu_at1_op = UNARY_OP(relu_at1, KINK0(0.0), "z = 0: 0", SL_DOMAIN_NONZERO);
static const sl_op relu_at15_op = UNARY_OP(relu_at15, KINK0(1.5), "z = 0: 1.5", SL_DOMAIN_NONZERO);
static const sl_op leaky_at1_op =
    UNARY_OP(leaky_at1, KINK0_ALPHA, "z = 0: alpha", SL_DOMAIN_NONZERO);

/* Register op and run the every-op check on it; returns the status. */
static int check_op(const sl_op *op, sl_gradcheck_report *r) {
    if (sl_op_find(op->name) != op) cr_assert_eq(sl_op_register(op), SL_OK, "%s", op->name);
    return sl_gradcheck_op(sl_op_find(op->name), NULL, r);
}

/* Caught: SL_EGRAD, ok = 0, report.failed names `check`, the message names the op. */
static void expect_caught(const sl_op *op, const char *check, sl_gradcheck_report *r) {
    int rc = check_op(op, r);
    cr_expect_eq(rc, SL_EGRAD, "%s: %s (%s)", op->name, sl_status_name(rc), r->message);
    cr_expect_eq(r->ok, 0, "%s", op->name);
    cr_expect_str_eq(r->failed, check, "%s: %s", op->name, r->message);
    cr_expect(contains(r->message, op->name), "%s: %s", op->name, r->message);
}

Test(broken_rules, the_right_rules_pass) {
    sl_gradcheck_report r;
    cr_expect_eq(check_op(&cube_op, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ncases, 4);
    cr_expect(r.taylor_order > 1.8, "order %g", r.taylor_order);
    cr_expect_eq(check_op(&relu_ok_op, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ncases, 5, "four shapes and the kink case");
    cr_expect_gt(r.kinks, 0);
}

Test(broken_rules, wrong_sign) {
    sl_gradcheck_report r;
    expect_caught(&sign_op, "vjp", &r);
    cr_expect(near(r.analytic, -r.numeric, 1e-6, 1e-9), "%.17g vs %.17g", r.analytic, r.numeric);
    cr_expect(near(r.forward, r.numeric, 1e-6, 1e-9), "forward mode is right");
}

Test(broken_rules, wrong_factor) {
    sl_gradcheck_report r;
    expect_caught(&factor_op, "vjp", &r);
    cr_expect(near(r.analytic, 2.0 * r.numeric, 1e-6, 1e-9), "%.17g vs %.17g", r.analytic,
              r.numeric);
}

/* 1e-4 relative in both modes: the modes agree, the differences agree
 * within PyTorch's rtol of 1e-3 - only the order of the Taylor remainder
 * shows it. */
Test(broken_rules, off_by_1e4_in_both_modes_fails_the_order_test) {
    sl_gradcheck_report r;
    expect_caught(&tiny_op, "order", &r);
    cr_expect_lt(r.max_rel_err, 1e-3, "finite differences alone would let it through");
    cr_expect_gt(r.max_rel_err, 5e-5);
    cr_expect_lt(r.taylor_order, 1.5);
    cr_expect_lt(r.dot_rel_err, 1e-9, "consistent rules pass the dot test");
    cr_expect(contains(r.message, "order test"), "%s", r.message);
    /* and on a graph of its own, with the tolerance loosened further */
    sl_tape *t = sl_tape_new();
    const double xs[3] = {0.3, -1.2, 0.8};
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    sl_var *y = sl_sum(t, sl_tanh(t, sl_apply(t, &tiny_op, 1, &x, NULL)), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_opts loose = {.rtol = 1e-2};
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, &loose, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "order", "%s", r.message);
    sl_tape_free(t);
}

/* 1e-4 relative in the backward rule only: reverse and forward mode must
 * agree to 1e-8 whatever the step, so the mode comparison catches it. */
Test(broken_rules, off_by_1e4_in_one_mode_fails_the_mode_comparison) {
    sl_gradcheck_report r;
    expect_caught(&tinybwd_op, "vjp", &r);
    cr_expect_lt(r.max_rel_err, 1e-3, "finite differences alone would let it through");
    cr_expect(near(r.analytic, r.forward * (1 + 1e-4), 1e-12, 0), "%.17g vs %.17g", r.analytic,
              r.forward);
    cr_expect_gt(r.dot_rel_err, 1e-9, "the dot test sees it too");
}

Test(broken_rules, wrong_tangent_rule_with_right_backward) {
    sl_gradcheck_report r;
    expect_caught(&jvp_op, "jvp", &r);
    cr_expect(near(r.analytic, r.numeric, 1e-6, 1e-9), "the backward rule is right");
    cr_expect(near(r.forward, r.numeric * 2.0 / 3.0, 1e-6, 1e-9), "%.17g", r.forward);
    cr_expect(contains(r.message, "tangent rule"), "%s", r.message);
}

/* Below every absolute tolerance of the element checks: only the dot test
 * (and, after it, the order test) can see an error of 1e-12. */
Test(broken_rules, inconsistent_rule_caught_by_the_dot_test) {
    sl_gradcheck_report r;
    expect_caught(&scale_op, "dot", &r);
    cr_expect_lt(r.max_abs_err, 1e-11, "every element passes");
    cr_expect_gt(r.dot_rel_err, 1e-9);
    cr_expect(contains(r.message, "dot-product test"), "%s", r.message);
}

/* ------------------------------------------------- a transposed backward */

/* out = M x for a fixed non-symmetric M [3,3], x [3]; the backward applies M
 * where M^T belongs - the rule inconsistent with its tangent rule. */
static const double M[9] = {1.0, 2.0, 0.0, -1.0, 0.5, 3.0, 0.25, -2.0, 1.5};
static void mv_fwd(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (int i = 0; i < 3; i++)
        sl_out_data(out)[i] = M[3 * i] * x[0] + M[3 * i + 1] * x[1] + M[3 * i + 2] * x[2];
}
static void mv_bwd_untransposed(sl_var *out) {
    double *dx = sl_grad_data(sl_in(out, 0));
    if (!dx) return;
    const double *g = sl_grad(out);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) dx[i] += M[3 * i + j] * g[j]; /* should be M[3 * j + i] */
}
static void mv_jvp(sl_var *out) {
    const double *tx = sl_tangent_data(sl_in(out, 0));
    for (int i = 0; i < 3; i++)
        sl_tangent_data(out)[i] =
            tx ? M[3 * i] * tx[0] + M[3 * i + 1] * tx[1] + M[3 * i + 2] * tx[2] : 0.0;
}
static const sl_op_case mv_cases[] = {{.shape = {{1, 3}}}};
static const sl_op mv_op = {.name = "br_matvec_untransposed",
                            .arity = 1,
                            .forward = mv_fwd,
                            .backward = mv_bwd_untransposed,
                            .jvp = mv_jvp,
                            .signature = "sl_apply(t, op, 1, &x, NULL)",
                            .formula = "out = M x",
                            .derivative = "(wrong) dx = M g",
                            .domain = {SL_DOMAIN_REAL},
                            .kind = SL_KIND_CUSTOM,
                            .cases = mv_cases,
                            .ncases = 1};

Test(broken_rules, transposed_backward_fails_the_dot_test_and_the_modes) {
    sl_gradcheck_report r;
    expect_caught(&mv_op, "vjp", &r); /* an element names it; the dot test failed too */
    cr_expect_gt(r.dot_rel_err, 1e-3);
    cr_expect(contains(r.message, "the dot test failed too"), "%s", r.message);
    cr_expect_neq(r.worst_elem, r.worst_out, "a diagonal entry of M = M^T is right");
}

/* -------------------------------------------- missing broadcast reduction */

/* out = a * b with b [n] broadcast along the rows of a [m, n] (or equal
 * shapes). The backward writes db only from the first row instead of summing
 * over the broadcast axis; the tangent rule is right. */
static void bm_fwd(sl_var *out) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    const size_t nb = sl_numel(b);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_out_data(out)[i] = sl_value(a)[i] * sl_value(b)[i % nb];
}
static void bm_bwd_first_row(sl_var *out) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    double *da = sl_grad_data(a), *db = sl_grad_data(b);
    const double *g = sl_grad(out);
    const size_t nb = sl_numel(b);
    for (size_t i = 0; i < sl_numel(out); i++) {
        if (da) da[i] += g[i] * sl_value(b)[i % nb];
        if (db && i < nb) /* should be db[i % nb] for every i */
            db[i] += g[i] * sl_value(a)[i];
    }
}
static void bm_jvp(sl_var *out) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    const double *ta = sl_tangent_data(a), *tb = sl_tangent_data(b);
    const size_t nb = sl_numel(b);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_tangent_data(out)[i] =
            (ta ? ta[i] * sl_value(b)[i % nb] : 0.0) + (tb ? sl_value(a)[i] * tb[i % nb] : 0.0);
}
static const sl_op_case bm_cases[] = {
    {.shape = {{1, 4}, {1, 4}}},    /* equal shapes: nothing to reduce */
    {.shape = {{2, 3, 4}, {1, 4}}}, /* b broadcast over 3 rows */
    {.shape = {{2, 5, 2}, {1, 2}}},
};
static const sl_op bm_op = {.name = "br_mul_no_reduce",
                            .arity = 2,
                            .forward = bm_fwd,
                            .backward = bm_bwd_first_row,
                            .jvp = bm_jvp,
                            .signature = "sl_apply(t, op, 2, in, NULL)",
                            .formula = "out = a * b",
                            .derivative = "(wrong) db = g*a from the first row only",
                            .domain = {SL_DOMAIN_REAL, SL_DOMAIN_REAL},
                            .kind = SL_KIND_CUSTOM,
                            .cases = bm_cases,
                            .ncases = 3};

Test(broken_rules, missing_broadcast_reduction) {
    cr_assert_eq(sl_op_register(&bm_op), SL_OK);
    sl_gradcheck_report r;
    sl_gradcheck_opts o = {.case_index = 1}; /* cases count from 1 */
    cr_expect_eq(sl_gradcheck_op(&bm_op, &o, &r), SL_OK, "equal shapes hide it: %s", r.message);
    o.case_index = 2;
    cr_expect_eq(sl_gradcheck_op(&bm_op, &o, &r), SL_EGRAD, "%s", r.message);
    cr_expect_str_eq(r.failed, "vjp", "%s", r.message);
    cr_expect_eq(r.worst_input, 1, "b, the broadcast input: %s", r.message);
    cr_expect(contains(r.message, "br_mul_no_reduce at [3,4] [4]"), "%s", r.message);
    expect_caught(&bm_op, "vjp", &r);
    /* and in a graph: the rows after the first are missing from db */
    sl_tape *t = sl_tape_new();
    const double A[6] = {1, 2, 3, 4, 5, 6}, B[2] = {0.5, -1};
    sl_var *in[2] = {sl_input(t, 2, (int[]){3, 2}, A, SL_GRAD),
                     sl_input(t, 1, (int[]){2}, B, SL_GRAD)};
    sl_var *y = sl_sum(t, sl_apply(t, &bm_op, 2, in, NULL), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_gradcheck(t, y, 2, in, NULL, &r), SL_EGRAD);
    cr_expect_eq(r.worst_input, 1);
    cr_expect(near(r.numeric, r.worst_elem == 0 ? 9.0 : 12.0, 1e-8, 1e-8), "column sums of A: %g",
              r.numeric);
    cr_expect_eq(r.analytic, r.worst_elem == 0 ? 1.0 : 2.0, "the first row only");
    sl_tape_free(t);
}

/* ------------------------------------------------------- kink conventions */

/* relu-like with slope 1 at 0 while declaring 0: 1 is a valid subgradient,
 * so only the declaration check can see it. */
Test(broken_rules, wrong_kink_convention) {
    sl_gradcheck_report r;
    expect_caught(&relu_at1_op, "kink", &r);
    cr_expect(contains(r.message, "gives 1 exactly at the kink z = 0"), "actual: %s", r.message);
    cr_expect(contains(r.message, "declares 0 (slope)"), "declared: %s", r.message);
    cr_expect(contains(r.message, "kink at z=0"), "the case: %s", r.message);
    cr_expect_eq(r.analytic, 1.0);
    cr_expect_eq(r.numeric, 0.0, "the declared value");
    /* its normal cases (1..4) pass: the convention is the only thing wrong */
    for (int ci = 1; ci <= 4; ci++) {
        sl_gradcheck_opts o = {.case_index = ci};
        cr_expect_eq(sl_gradcheck_op(&relu_at1_op, &o, &r), SL_OK, "case %d: %s", ci, r.message);
    }
    /* options made from {0} with one field set still run the kink case */
    sl_gradcheck_opts o = {0};
    o.rtol = 2e-3;
    cr_expect_eq(sl_gradcheck_op(&relu_at1_op, &o, &r), SL_EGRAD, "%s", r.message);
    cr_expect_str_eq(r.failed, "kink", "%s", r.message);
    cr_expect_eq(r.ncases, 5, "every case: %s", r.message);
    /* the same for a convention in terms of alpha */
    expect_caught(&leaky_at1_op, "kink", &r);
    cr_expect(contains(r.message, "declares 0.25 (alpha)"), "%s", r.message);
}

/* relu-like declaring (and giving) 1.5 at 0: the rules match the
 * declaration, but 1.5 is not between the one-sided slopes 0 and 1. */
Test(broken_rules, declared_kink_slope_outside_the_one_sided_slopes) {
    sl_gradcheck_report r;
    expect_caught(&relu_at15_op, "kink", &r);
    cr_expect(contains(r.message, "declared slope 1.5 at the kink z = 0 is not between"), "%s",
              r.message);
    cr_expect(contains(r.message, "D- = 0 and D+ = 1"), "%s", r.message);
}

/* A kink or ties declaration is for unary ops; sl_op_register says so. */
Test(broken_rules, kink_declarations_are_validated) {
    sl_op bad = relu_ok_op;
    bad.name = "br_kink_binary", bad.arity = 2, bad.kind = SL_KIND_ZIP;
    cr_expect_eq(sl_op_register(&bad), SL_EARG);
    bad = relu_ok_op;
    bad.name = "br_kink_nan", bad.kink.at = NAN;
    cr_expect_eq(sl_op_register(&bad), SL_EARG);
    bad = relu_ok_op;
    bad.name = "br_kink_inf_slope", bad.kink.slope = INFINITY;
    cr_expect_eq(sl_op_register(&bad), SL_EARG);
    /* a declaration without its text is incomplete, like a missing formula */
    static sl_op notext;
    notext = relu_ok_op;
    notext.name = "br_kink_no_text";
    notext.kinks = NULL;
    cr_assert_eq(sl_op_register(&notext), SL_OK);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(&notext, NULL, &r), SL_EARG);
    cr_expect(contains(r.message, "kinks text"), "%s", r.message);
}

/* ----------------------------------------------------- the built-in ops */

/* The conventions DESIGN.md states, declared on the ops themselves. */
Test(broken_rules, built_in_kinks_are_declared) {
    const sl_op *relu = sl_op_find("relu"), *leaky = sl_op_find("leaky_relu");
    const sl_op *absop = sl_op_find("abs"), *elu = sl_op_find("elu"), *max = sl_op_find("max");
    cr_assert(relu && leaky && absop && elu && max);
    cr_expect(relu->kink.present && relu->kink.at == 0.0 && relu->kink.slope == 0.0 &&
              !relu->kink.slope_is_alpha);
    cr_expect(leaky->kink.present && leaky->kink.at == 0.0 && leaky->kink.slope_is_alpha);
    cr_expect(absop->kink.present && absop->kink.at == 0.0 && absop->kink.slope == 0.0);
    cr_expect(elu->kink.present && elu->kink.at == 0.0 && elu->kink.slope_is_alpha);
    cr_expect(max->kink.ties && !max->kink.present);
    cr_expect(contains(max->kinks, "shared equally"), "%s", max->kinks);
    const sl_op *min = sl_op_find("min"), *clamp = sl_op_find("clamp");
    cr_assert(min && clamp);
    cr_expect(min->kink.ties && !min->kink.present);
    cr_expect(clamp->kink.present && clamp->kink.at_is_bounds && clamp->kink.slope == 1.0);
    /* elu's backward at exactly 0 is alpha: what it declares */
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 0.0, SL_GRAD);
    cr_assert_eq(sl_backward(t, sl_elu(t, x, 0.3)), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 0.3);
    sl_tape_free(t);
}

/* Every registered built-in op passes, and every one that declares a kink
 * or ties has its extra cases, which come out KINK-OK where the kink is
 * real (elu with alpha = 1 has none). */
Test(broken_rules, every_built_in_op_passes_with_its_kink_cases) {
    const int n = sl_op_count();
    int with_kinks = 0;
    for (int i = 0; i < n; i++) {
        const sl_op *op = sl_op_at(i);
        sl_gradcheck_report r;
        int rc = sl_gradcheck_op(op, NULL, &r);
        cr_expect_eq(rc, SL_OK, "%s: %s", op->name, r.message);
        cr_expect_eq(r.ncases, sl_op_ncases(op), "%s", op->name);
        if (!op->kink.present && !op->kink.ties) continue;
        with_kinks++;
        const int nc = sl_op_ncases(op);
        int kink_ok = 0;
        for (int ci = 1; ci <= nc; ci++) {
            sl_gradcheck_opts o = {.case_index = ci};
            rc = sl_gradcheck_op(op, &o, &r);
            cr_expect_eq(rc, SL_OK, "%s case %d: %s", op->name, ci, r.message);
            if (strstr(r.shapes, "kink at") || strstr(r.shapes, "ties")) {
                cr_expect(r.kinks > 0 || strstr(r.shapes, "alpha=1 "), "%s %s: no KINK-OK entry",
                          op->name, r.shapes);
                kink_ok += r.kinks > 0;
            } else {
                cr_expect_eq(r.kinks, 0, "%s %s: its domain avoids the kink", op->name, r.shapes);
            }
        }
        cr_expect_gt(kink_ok, 0, "%s", op->name);
    }
    cr_expect_eq(with_kinks, 7, "relu, leaky_relu, abs, elu, clamp, max, min");
}

/* max's ties case: tied maxima share the gradient equally - 1/2 and 1/3 -
 * and the row with three ties is where the differences need the kink test
 * (two ties average to exactly 1/2 by central differences). */
Test(broken_rules, max_ties_share_the_gradient) {
    const sl_op *max = sl_op_find("max");
    const int nc = sl_op_ncases(max);
    sl_gradcheck_opts o = {.case_index = nc}; /* the last: ties */
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(max, &o, &r), SL_OK, "%s", r.message);
    cr_expect_str_eq(r.shapes, "[3,4] axis=-1 keepdim=0 ties");
    cr_expect_eq(r.kinks, 4,
                 "the three tied maxima of row 1, and the order test's direction "
                 "crossing the two of row 0: %zu",
                 r.kinks);
    /* a max that gives the whole gradient to the first maximum breaks the convention */
    sl_tape *t = sl_tape_new();
    const double X[4] = {0.7, 0.7, 0.7, -1.0};
    sl_var *x = sl_input(t, 1, (int[]){4}, X, SL_GRAD);
    cr_assert_eq(sl_backward(t, sl_max(t, x, SL_ALL, 0)), SL_OK);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[i], 1.0 / 3.0);
    sl_tape_free(t);
}

/* A first-maximum max declaring ties: caught by the ties case. */
static void firstmax_fwd(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const int rows = sl_dims(x)[0], cols = sl_dims(x)[1];
    for (int r = 0; r < rows; r++) {
        double m = sl_value(x)[r * cols];
        for (int j = 1; j < cols; j++) m = fmax(m, sl_value(x)[r * cols + j]);
        sl_out_data(out)[r] = m;
    }
}
static int firstmax_arg(const sl_var *x, int r) {
    const int cols = sl_dims(x)[1];
    int best = 0;
    for (int j = 1; j < cols; j++)
        if (sl_value(x)[r * cols + j] > sl_value(x)[r * cols + best]) best = j;
    return best;
}
static void firstmax_bwd(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (int r = 0; r < sl_dims(x)[0]; r++)
        dx[r * sl_dims(x)[1] + firstmax_arg(x, r)] += sl_grad(out)[r];
}
static void firstmax_jvp(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    for (int r = 0; r < sl_dims(x)[0]; r++)
        sl_tangent_data(out)[r] = tx ? tx[r * sl_dims(x)[1] + firstmax_arg(x, r)] : 0.0;
}
static int firstmax_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                          int *ndim, int *dims) {
    (void)op;
    if (sl_ndim(in[0]) != 2 || a->axis != -1)
        return sl_tape_fail(t, SL_ESHAPE, "sl_br_firstmax: rows of a matrix only");
    *ndim = 1;
    dims[0] = sl_dims(in[0])[0];
    return SL_OK;
}
static const sl_op_case firstmax_cases[] = {{.shape = {{2, 3, 4}}, .attrs = {.axis = -1}}};
static const sl_op firstmax_op = {.name = "br_firstmax",
                                  .arity = 1,
                                  .shape = firstmax_shape,
                                  .forward = firstmax_fwd,
                                  .backward = firstmax_bwd,
                                  .jvp = firstmax_jvp,
                                  .signature = "sl_apply(t, op, 1, &x, &a)",
                                  .formula = "out_r = max_j x_rj",
                                  .derivative = "(wrong at ties) all to the first maximum",
                                  .kinks = "ties: shared equally (it claims)",
                                  .kink = {.ties = 1},
                                  .domain = {SL_DOMAIN_DISTINCT},
                                  .kind = SL_KIND_CUSTOM,
                                  .cases = firstmax_cases,
                                  .ncases = 1};

Test(broken_rules, ties_not_shared_equally) {
    sl_gradcheck_report r;
    sl_gradcheck_opts o = {.case_index = 1}; /* its own case, before the ties case */
    cr_assert_eq(sl_op_register(&firstmax_op), SL_OK);
    cr_expect_eq(sl_gradcheck_op(&firstmax_op, &o, &r), SL_OK, "no ties, no problem: %s",
                 r.message);
    expect_caught(&firstmax_op, "kink", &r);
    cr_expect(contains(r.message, "ties are not shared equally: row 0 has 2 tied extrema"), "%s",
              r.message);
}

/* -------------------------------------------- batched matmul and permute */

/* Copies of the built-in matmul and permute (shape rule, forward, tangent
 * rule) with a backward rule written here and broken: the checker must
 * blame the backward ("vjp"). */

/* The offset (in matrices) of the matrix of x (an input of the batched
 * product out) that out's batch matrix o reads: batch dims right-aligned, a
 * dim of 1 broadcast. */
static size_t bmm_block(const sl_var *out, const sl_var *x, size_t o) {
    const int nbo = sl_ndim(out) - 2, nbx = sl_ndim(x) - 2;
    const int *od = sl_dims(out), *xd = sl_dims(x);
    size_t off = 0, stride = 1;
    for (int i = nbo - 1; i >= 0; i--) {
        const size_t idx = o % (size_t)od[i];
        o /= (size_t)od[i];
        const int xi = i - (nbo - nbx);
        if (xi < 0) continue;
        if (xd[xi] != 1) off += idx * stride;
        stride *= (size_t)xd[xi];
    }
    return off;
}

/* da += g.b^T and db += a^T.g per batch matrix, wrong in one of two ways:
 * no_sum: only the first batches (as many as the input has matrices) add to
 * its gradient, so a matrix shared by several batches misses the rest;
 * first_block: da reads b's first matrix and db a's first, whatever the batch. */
static void bmm_bwd(sl_var *out, int no_sum, int first_block) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    const int m = sl_dims(a)[sl_ndim(a) - 2], k = sl_dims(a)[sl_ndim(a) - 1],
              n = sl_dims(b)[sl_ndim(b) - 1];
    const size_t mk = (size_t)(m * k), kn = (size_t)(k * n), mn = (size_t)(m * n);
    const size_t nout = sl_numel(out) / mn, na = sl_numel(a) / mk, nb = sl_numel(b) / kn;
    double *da = sl_grad_data(a), *db = sl_grad_data(b);
    const double *A = sl_value(a), *B = sl_value(b), *G = sl_grad(out);
    for (size_t o = 0; o < nout; o++) {
        const size_t ia = bmm_block(out, a, o), ib = bmm_block(out, b, o);
        const size_t rb = first_block ? 0 : ib, ra = first_block ? 0 : ia;
        const double *g = G + o * mn;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                for (int p = 0; p < k; p++) {
                    if (da && !(no_sum && o >= na))
                        da[ia * mk + (size_t)(i * k + p)] +=
                            g[i * n + j] * B[rb * kn + (size_t)(p * n + j)];
                    if (db && !(no_sum && o >= nb))
                        db[ib * kn + (size_t)(p * n + j)] +=
                            A[ra * mk + (size_t)(i * k + p)] * g[i * n + j];
                }
    }
}
static void bmm_bwd_no_sum(sl_var *out) { bmm_bwd(out, 1, 0); }
static void bmm_bwd_first_block(sl_var *out) { bmm_bwd(out, 0, 1); }

static const sl_op_case bmm_cases[] = {
    {.shape = {{2, 2, 3}, {2, 3, 4}}},          /* 1: 2-D, one batch: both rules are right */
    {.shape = {{3, 2, 2, 3}, {3, 2, 3, 4}}},    /* 2: equal batches: no_sum is right */
    {.shape = {{3, 3, 2, 3}, {2, 3, 2}}},       /* 3: b shared by 3 batches */
    {.shape = {{2, 2, 3}, {3, 3, 3, 2}}},       /* 4: a shared by 3 batches */
    {.shape = {{4, 2, 1, 2, 3}, {3, 3, 3, 2}}}, /* 5: both broadcast, [2,3] batches */
};
static sl_op bmm_no_sum_op, bmm_first_block_op; /* filled from the built-in matmul */

static const sl_op *broken_matmul(sl_op *op, const char *name, sl_backward_fn bwd) {
    *op = *sl_op_find("matmul");
    op->name = name;
    op->backward = bwd;
    op->derivative = "deliberately broken";
    op->cases = bmm_cases;
    op->ncases = 5;
    return op;
}

Test(broken_rules, batched_matmul_that_forgets_to_sum_over_broadcast_batches) {
    const sl_op *op = broken_matmul(&bmm_no_sum_op, "br_bmm_no_sum", bmm_bwd_no_sum);
    sl_gradcheck_report r;
    for (int c = 1; c <= 2; c++) {
        sl_gradcheck_opts o = {.case_index = c};
        cr_expect_eq(sl_gradcheck_op(op, &o, &r), SL_OK, "case %d: nothing broadcast: %s", c,
                     r.message);
    }
    static const int worst_input[] = {0, 0, 1, 0, -1}; /* -1: either */
    for (int c = 3; c <= 5; c++) {
        sl_gradcheck_opts o = {.case_index = c};
        cr_expect_eq(sl_gradcheck_op(op, &o, &r), SL_EGRAD, "case %d: %s", c, r.message);
        cr_expect_str_eq(r.failed, "vjp", "case %d: %s", c, r.message);
        if (worst_input[c - 1] >= 0)
            cr_expect_eq(r.worst_input, worst_input[c - 1], "case %d: the shared input: %s", c,
                         r.message);
    }
    expect_caught(op, "vjp", &r);
}

Test(broken_rules, batched_matmul_that_reads_the_wrong_batch_block) {
    const sl_op *op = broken_matmul(&bmm_first_block_op, "br_bmm_first_block", bmm_bwd_first_block);
    sl_gradcheck_report r;
    sl_gradcheck_opts o = {.case_index = 1};
    cr_expect_eq(sl_gradcheck_op(op, &o, &r), SL_OK, "one batch: %s", r.message);
    o.case_index = 2;
    cr_expect_eq(sl_gradcheck_op(op, &o, &r), SL_EGRAD, "equal batches: %s", r.message);
    cr_expect_str_eq(r.failed, "vjp", "%s", r.message);
    expect_caught(op, "vjp", &r);
}

/* (wrong) dx = permute(g, perm) written over dx, where permute(g, inverse
 * of perm) is right: the two agree only when perm is its own inverse. */
static void perm_bwd_not_inverted(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    const int r = sl_ndim(out), *gd = sl_dims(out);
    int p[4] = {0}, wd[4] = {0}, wi[4] = {0};
    size_t gs[4] = {0}, s = 1;
    for (int i = r - 1; i >= 0; i--) gs[i] = s, s *= (size_t)gd[i];
    for (int i = 0; i < r; i++) {
        p[i] = sl_attrs_of(out)->dims[i] < 0 ? sl_attrs_of(out)->dims[i] + r
                                             : sl_attrs_of(out)->dims[i];
        wd[i] = gd[p[i]];
    }
    size_t k = 0;
    do { /* element wi of permute(g, perm) is g at the index q with q[p[i]] = wi[i] */
        size_t off = 0;
        for (int i = 0; i < r; i++) off += (size_t)wi[i] * gs[p[i]];
        dx[k++] += sl_grad(out)[off];
    } while (next_index(r, wd, wi));
}

static const sl_op_case perm_cases[] = {
    {{{3, 2, 3, 4}}, {.ndim = 3, .dims = {1, 0, 2}}}, /* its own inverse */
    {{{2, 3, 2}}, {.ndim = 2, .dims = {-1, 0}}},      /* the same */
    {{{3, 2, 3, 4}}, {.ndim = 3, .dims = {1, 2, 0}}}, /* inverse {2,0,1} */
    {{{4, 2, 3, 1, 2}}, {.ndim = 4, .dims = {2, 3, 1, 0}}},
};
static sl_op perm_op;

Test(broken_rules, permute_whose_backward_applies_perm_not_its_inverse) {
    perm_op = *sl_op_find("permute");
    perm_op.name = "br_permute_not_inverted";
    perm_op.backward = perm_bwd_not_inverted;
    perm_op.derivative = "(wrong) dx = g permuted by perm";
    perm_op.cases = perm_cases;
    perm_op.ncases = 4;
    sl_gradcheck_report r;
    sl_gradcheck_opts o = {.case_index = 1};
    cr_expect_eq(sl_gradcheck_op(&perm_op, &o, &r), SL_OK, "involutive: %s", r.message);
    o.case_index = 2;
    cr_expect_eq(sl_gradcheck_op(&perm_op, &o, &r), SL_OK, "involutive: %s", r.message);
    for (o.case_index = 3; o.case_index <= 4; o.case_index++) {
        cr_expect_eq(sl_gradcheck_op(&perm_op, &o, &r), SL_EGRAD, "case %d: %s", o.case_index,
                     r.message);
        cr_expect_str_eq(r.failed, "vjp", "%s", r.message);
    }
    expect_caught(&perm_op, "vjp", &r);
    cr_expect(contains(r.message, "perm=[1,2,0]"), "the case is named: %s", r.message);
}
