/*
 * test_gradcheck.c - sl_gradcheck on user-built graphs: a correct graph
 * passes (scalar y and the full Jacobian of a non-scalar y), the report
 * names the input, element and both values of the worst entry, the leaves'
 * values and gradients are restored, bad arguments are refused, and a wrong
 * rule hidden inside a larger graph is caught.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>

static const double W0[12] = {0.3, -0.5, 0.8, 0.1, -0.9, 0.4, 0.2, 0.7, -0.3, 0.6, -0.1, 0.5};
static const double X0[4] = {0.5, -1.0, 1.5, 0.25};
static const double B0[3] = {0.1, -0.2, 0.3};

/* y = sum(sigmoid(W x + b)), W [3,4], x [4,1], b [3,1] */
Test(gradcheck, small_network_passes) {
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_input(t, 2, (int[]){3, 4}, W0, SL_GRAD);
    sl_var *x = sl_input(t, 2, (int[]){4, 1}, X0, SL_GRAD);
    sl_var *b = sl_input(t, 2, (int[]){3, 1}, B0, SL_GRAD);
    sl_var *y = sl_sum(t, sl_sigmoid(t, sl_add(t, sl_matmul(t, w, x), b)), SL_ALL, 0);
    sl_var *in[3] = {w, x, b};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 3, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ok, 1);
    cr_expect_eq(r.nchecked, 12 + 4 + 3, "one Jacobian entry per input element");
    cr_expect_lt(r.max_abs_err, 1e-7);
    cr_expect_str_eq(r.message, "");
    cr_expect_eq(sl_tape_status(t), SL_OK);
    /* report may be NULL */
    cr_expect_eq(sl_gradcheck(t, y, 3, in, NULL, NULL), SL_OK);
    sl_tape_free(t);
}

/* The verdict does not hinge on the step: a correct gradient passes at every
 * step from 1e-3 to 1e-8, plain or extrapolated, and reports order ~2. */
Test(gradcheck, correct_gradient_passes_at_many_steps) {
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_input(t, 2, (int[]){3, 4}, W0, SL_GRAD);
    sl_var *x = sl_input(t, 2, (int[]){4, 1}, X0, SL_GRAD);
    sl_var *b = sl_input(t, 2, (int[]){3, 1}, B0, SL_GRAD);
    sl_var *y = sl_sum(t, sl_tanh(t, sl_add(t, sl_matmul(t, w, x), b)), SL_ALL, 0);
    sl_var *in[3] = {w, x, b};
    const double steps[] = {1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8};
    for (int plain = 0; plain <= 1; plain++)
        for (int i = 0; i < 6; i++) {
            sl_gradcheck_opts o = {.eps = steps[i], .plain = plain};
            sl_gradcheck_report r;
            cr_expect_eq(sl_gradcheck(t, y, 3, in, &o, &r), SL_OK, "eps %g plain %d: %s", steps[i],
                         plain, r.message);
            cr_expect(r.taylor_order > 1.8 && r.taylor_order < 2.2, "order %g", r.taylor_order);
        }
    sl_tape_free(t);
}

/* y = tanh(W x) is [3,1]: the full 3 x 16 Jacobian is compared. */
Test(gradcheck, full_jacobian_of_non_scalar_output) {
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_input(t, 2, (int[]){3, 4}, W0, SL_GRAD);
    sl_var *x = sl_input(t, 2, (int[]){4, 1}, X0, SL_GRAD);
    sl_var *y = sl_tanh(t, sl_matmul(t, w, x));
    sl_var *in[2] = {w, x};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 2, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 3 * (12 + 4));
    cr_expect_eq(r.ok, 1);
    /* a cross term: y[1] does not depend on W row 0, and the check must agree
     * on that zero too - covered by nchecked counting every (out, in) pair. */
    sl_tape_free(t);
}

/* cube with a wrong rule (2z^2) as a user op inside a larger graph */
static void cube_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    double *o = sl_out_data(out);
    for (size_t i = 0; i < sl_numel(out); i++) o[i] = x[i] * x[i] * x[i];
}
static void cube_backward_wrong(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    const double *xv = sl_value(x), *g = sl_grad(out);
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += g[i] * 2.0 * xv[i] * xv[i];
}
static const sl_op wrong_cube = {.name = "gc_wrong_cube",
                                 .arity = 1,
                                 .forward = cube_forward,
                                 .backward = cube_backward_wrong,
                                 .signature = "s",
                                 .formula = "a = z^3",
                                 .derivative = "(wrong) 2 z^2",
                                 .domain = {SL_DOMAIN_REAL},
                                 .kind = SL_KIND_MAP};

/* y = sum(w * wrong_cube(x)), w = [1, 1, 1] weights (leaf 0), x (leaf 1):
 * analytic dy/dx_i = 2 x_i^2 w_i, numeric 3 x_i^2 w_i; the worst is at the
 * largest |x|, element 2. */
Test(gradcheck, wrong_rule_in_a_graph_is_caught_and_reported) {
    const double xs[3] = {0.1, -0.2, 2.0}, ws[3] = {1.0, 0.5, 1.5};
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_input(t, 1, (int[]){3}, ws, SL_GRAD);
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    sl_var *c = sl_apply(t, &wrong_cube, 1, &x, NULL);
    sl_var *y = sl_sum(t, sl_mul(t, w, sl_exp(t, sl_mul(t, c, sl_scalar(t, 0.1, 0)))), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_var *in[2] = {w, x};
    sl_gradcheck_report r;
    int rc = sl_gradcheck(t, y, 2, in, NULL, &r);
    cr_expect_eq(rc, SL_EGRAD, "%s", sl_status_name(rc));
    cr_expect_eq(r.ok, 0);
    cr_expect_eq(r.worst_input, 1, "the wrong rule is on input 1 (x)");
    cr_expect_eq(r.worst_elem, 2, "the largest |x| gives the largest error");
    cr_expect_eq(r.worst_out, 0);
    /* both values at that entry, from the closed forms:
     * y = sum w e^(0.1 x^3): numeric = w 0.3 x^2 e^(0.1 x^3), analytic uses 0.2 x^2 */
    const double x2 = xs[2], e = exp(0.1 * x2 * x2 * x2);
    const double numeric = ws[2] * 0.3 * x2 * x2 * e, analytic = ws[2] * 0.2 * x2 * x2 * e;
    cr_expect(near(r.analytic, analytic, 1e-12, 0), "analytic %.17g, want %.17g", r.analytic,
              analytic);
    cr_expect(near(r.numeric, numeric, 1e-6, 0), "numeric %.17g, want %.17g", r.numeric, numeric);
    cr_expect(near(r.abs_err, fabs(numeric - analytic), 1e-5, 0));
    /* the message names the input, the element and both values */
    char a[64], n[64];
    snprintf(a, sizeof a, "%.6g", r.analytic);
    cr_expect(contains(r.message, "input 1") && contains(r.message, "element 2"), "%s", r.message);
    cr_expect(contains(r.message, "analytic") && contains(r.message, "numeric"), "%s", r.message);
    snprintf(n, sizeof n, "%.17g", r.numeric);
    cr_expect(contains(r.message, n), "the numeric value %s is in \"%s\"", n, r.message);
    snprintf(a, sizeof a, "%.17g", r.analytic);
    cr_expect(contains(r.message, a), "the analytic value %s is in \"%s\"", a, r.message);
    /* the tape itself has no error: a failed check is a result, not a fault */
    cr_expect_eq(sl_tape_status(t), SL_OK);
    /* and the rule at fault is found: of the graph's op nodes, only c's
     * fails a check of its own (w x 0.1 e^.. are right), named first */
    cr_expect(r.culprit == c, "culprit %p, the wrong cube is %p", (void *)r.culprit, (void *)c);
    cr_expect(!strncmp(r.message, "node 2 of the tape (op gc_wrong_cube) fails a check of its own",
                       strlen("node 2 of the tape (op gc_wrong_cube) fails a check of its own")),
              "%s", r.message);
    /* a loose tolerance hides the element-wise disagreement, but not the
     * step-free order test: the Taylor remainder shrinks like h, not h^2 */
    sl_gradcheck_opts loose = {.atol = 100.0};
    cr_expect_eq(sl_gradcheck(t, y, 2, in, &loose, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "order", "%s", r.message);
    cr_expect(r.culprit == c, "the order test, with the same options, blames c alone too");
    /* only w: the wrong rule is not on its path, so it passes */
    cr_expect_eq(sl_gradcheck(t, y, 1, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_null(r.culprit);
    sl_tape_free(t);
}

Test(gradcheck, leaves_are_restored) {
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_input(t, 2, (int[]){3, 4}, W0, SL_GRAD);
    sl_var *x = sl_input(t, 2, (int[]){4, 1}, X0, SL_GRAD);
    sl_var *b = sl_input(t, 2, (int[]){3, 1}, B0, SL_GRAD);
    sl_var *h = sl_add(t, sl_matmul(t, w, x), b);
    sl_var *y = sl_sum(t, sl_sigmoid(t, h), SL_ALL, 0);
    /* accumulate some gradient first: twice, so it is not just "one backward" */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    double gw[12], gx[4], gb[3], hv[3];
    memcpy(gw, sl_grad(w), sizeof gw);
    memcpy(gx, sl_grad(x), sizeof gx);
    memcpy(gb, sl_grad(b), sizeof gb);
    memcpy(hv, sl_value(h), sizeof hv);
    const double y0 = sl_item(y);
    sl_var *in[2] = {w, x}; /* b is a gradient leaf not checked: restored too */
    cr_assert_eq(sl_gradcheck(t, y, 2, in, NULL, NULL), SL_OK);
    for (int i = 0; i < 12; i++) {
        cr_expect_eq(sl_value(w)[i], W0[i], "w value %d", i);
        cr_expect_eq(sl_grad(w)[i], gw[i], "w grad %d", i);
    }
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sl_value(x)[i], X0[i]);
        cr_expect_eq(sl_grad(x)[i], gx[i]);
    }
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(sl_value(b)[i], B0[i]);
        cr_expect_eq(sl_grad(b)[i], gb[i], "unchecked leaf b grad %d", i);
        cr_expect_eq(sl_value(h)[i], hv[i], "intermediate values are recomputed");
    }
    cr_expect_eq(sl_item(y), y0);
    /* and the next backward continues from the restored state */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < 4; i++) cr_expect(near(sl_grad(x)[i], 1.5 * gx[i], 1e-15, 1e-15));
    sl_tape_free(t);
}

Test(gradcheck, parameters_are_restored) {
    sl_params *ps = sl_params_new();
    sl_param *p = sl_param_new(ps, "w", 2, (int[]){3, 4}, W0);
    sl_param_grad(p)[5] = 42.0; /* pre-existing accumulated gradient */
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_use(t, p);
    sl_var *x = sl_input(t, 2, (int[]){4, 1}, X0, 0);
    sl_var *y = sl_sum(t, sl_tanh(t, sl_matmul(t, w, x)), SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, 1, &w, NULL, NULL), SL_OK);
    for (int i = 0; i < 12; i++) cr_expect_eq(sl_param_value(p)[i], W0[i]);
    for (int i = 0; i < 12; i++) cr_expect_eq(sl_param_grad(p)[i], i == 5 ? 42.0 : 0.0);
    sl_tape_free(t);
    sl_params_free(ps);
}

Test(gradcheck, bad_arguments) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *h = sl_exp(t, x);
    sl_var *y = sl_sum(t, h, SL_ALL, 0);
    /* a non-leaf input */
    sl_var *in[1] = {h};
    cr_expect_eq(sl_gradcheck(t, y, 1, in, NULL, NULL), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "sl_gradcheck") && contains(sl_tape_error(t), "leaf"),
              "%s", sl_tape_error(t));
    sl_tape_free(t);

    t = sl_tape_new();
    sl_var *c = sl_input(t, 1, (int[]){3}, X0, 0); /* no SL_GRAD */
    y = sl_sum(t, sl_exp(t, c), SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, 1, &c, NULL, NULL), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "SL_GRAD"), "%s", sl_tape_error(t));
    sl_tape_free(t);

    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    y = sl_sum(t, x, SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, 0, &x, NULL, NULL), SL_EARG, "nin = 0");
    sl_tape_free(t);

    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    cr_expect_eq(sl_gradcheck(t, NULL, 1, &x, NULL, NULL), SL_EARG, "y NULL");
    sl_tape_free(t);

    /* an input or y from another tape */
    sl_tape *t1 = sl_tape_new(), *t2 = sl_tape_new();
    sl_var *x1 = sl_input(t1, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *x2 = sl_input(t2, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *y1 = sl_sum(t1, x1, SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t1, y1, 1, &x2, NULL, NULL), SL_EARG);
    sl_tape_free(t1);
    t1 = sl_tape_new();
    cr_expect_eq(sl_gradcheck(t1, sl_sum(t2, x2, SL_ALL, 0), 1, &x2, NULL, NULL), SL_EARG);
    sl_tape_free(t1);
    sl_tape_free(t2);

    /* a tape that already holds an error returns it */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    y = sl_sum(t, x, SL_ALL, 0);
    sl_tape_fail(t, SL_ESHAPE, "earlier");
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, NULL), SL_ESHAPE);
    cr_expect_str_eq(sl_tape_error(t), "earlier");
    sl_tape_free(t);
}

/* An error is not a pass: whenever sl_gradcheck returns something other
 * than SL_OK or SL_EGRAD, the report says ok = 0, failed = "" and the
 * error's text - for bad arguments, a NULL tape, a tape that already holds
 * an error and a replay that fails midway. */
static void expect_error_report(const sl_gradcheck_report *r, const char *want) {
    cr_expect_eq(r->ok, 0, "an error is not a pass: %s", want);
    cr_expect_str_eq(r->failed, "", "no check failed: the call did");
    cr_expect_str_eq(r->message, want);
}

Test(gradcheck, errors_are_not_passes) {
    sl_gradcheck_report r;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *y = sl_sum(t, sl_exp(t, x), SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, 1, NULL, NULL, &r), SL_EARG);
    expect_error_report(&r, "sl_gradcheck: inputs is NULL (nin = 1)");
    /* the tape now holds that error: a second call returns it */
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EARG);
    expect_error_report(&r, "sl_gradcheck: inputs is NULL (nin = 1)");
    sl_tape_free(t);

    cr_expect_eq(sl_gradcheck(NULL, NULL, 1, NULL, NULL, &r), SL_EARG);
    expect_error_report(&r, "sl_gradcheck: t is NULL");

    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    y = sl_sum(t, x, SL_ALL, 0);
    sl_add(t, x, sl_input(t, 1, (int[]){2}, NULL, 0)); /* a shape error */
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_ESHAPE);
    expect_error_report(&r, sl_tape_error(t));
    cr_expect(contains(r.message, "sl_add"), "the earlier error: %s", r.message);
    sl_tape_free(t);

    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    y = sl_sum(t, x, SL_ALL, 0);
    const sl_gradcheck_opts bad = {.eps = -1};
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, &bad, &r), SL_EARG);
    expect_error_report(&r, "sl_gradcheck: opts->eps = -1, must be finite and > 0 (0: the default, "
                            "1e-06)");
    sl_tape_free(t);
    /* a step that leaves a checked domain is a verdict, not an error:
     * step_outside_a_checked_domain_is_a_verdict_not_a_tape_error */
}

/* y that does not depend on the input: an all-zero Jacobian on both sides. */
Test(gradcheck, independent_input_has_zero_jacobian) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *u = sl_scalar(t, 0.5, SL_GRAD);
    sl_var *y = sl_exp(t, u);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 3);
    cr_expect_eq(r.max_abs_err, 0.0);
    sl_tape_free(t);
}

/* Kinks are where central differences disagree with a subgradient: relu at
 * exactly 0 gives 1/2 numerically and 0 analytically. The one-sided
 * differences there are 0 and 1 (a real kink inside the step) and the
 * analytic 0 lies between them: KINK-OK, counted, not a failure. */
Test(gradcheck, kink_is_accepted_as_kink_ok) {
    sl_tape *t = sl_tape_new();
    const double v[2] = {0.0, 1.0};
    sl_var *x = sl_input(t, 1, (int[]){2}, v, SL_GRAD);
    sl_var *y = sl_sum(t, sl_relu(t, x), SL_ALL, 0);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ok, 1);
    cr_expect_eq(r.kinks, 1, "element 0 is the one kink");
    cr_expect_eq(r.nchecked, 2, "the kink entry was compared too");
    cr_expect_lt(r.max_abs_err, 1e-7, "the kink entry does not count as an error");
    cr_expect_str_eq(r.failed, "");
    /* PyTorch's plain central difference sees the same kink */
    sl_gradcheck_opts plain = {.plain = 1};
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, &plain, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.kinks, 1);
    /* the kink is real inside the step, 0.1 h away from x: the one-sided
     * slopes are 0.1 and 1, and relu'(x) = 1 lies between them */
    sl_leaf_data(x)[0] = 1e-7;
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.kinks, 1);
    sl_tape_free(t);
}

/* relu with a "subgradient" of 2 at 0: outside [D-, D+] = [0, 1], so the
 * kink cannot excuse it. */
static void relu2_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = x[i] > 0 ? x[i] : 0.0;
}
static double relu2_slope(double z) { return z > 0 ? 1.0 : (z < 0 ? 0.0 : 2.0); }
static void relu2_backward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(out); i++)
        dx[i] += sl_grad(out)[i] * relu2_slope(sl_value(x)[i]);
}
static void relu2_jvp(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_tangent_data(out)[i] = tx ? tx[i] * relu2_slope(sl_value(x)[i]) : 0.0;
}
static const sl_op relu2 = {.name = "gc_relu_slope2",
                            .arity = 1,
                            .forward = relu2_forward,
                            .backward = relu2_backward,
                            .jvp = relu2_jvp,
                            .signature = "s",
                            .formula = "a = max(0, z)",
                            .derivative = "(wrong at 0) 2",
                            .domain = {SL_DOMAIN_NONZERO},
                            .kind = SL_KIND_MAP};

Test(gradcheck, value_outside_the_one_sided_slopes_fails) {
    sl_tape *t = sl_tape_new();
    const double v[3] = {0.5, 0.0, -1.0};
    sl_var *x = sl_input(t, 1, (int[]){3}, v, SL_GRAD);
    sl_var *y = sl_sum(t, sl_apply(t, &relu2, 1, &x, NULL), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_eq(r.kinks, 0);
    cr_expect_eq(r.worst_elem, 1);
    cr_expect_eq(r.analytic, 2.0);
    cr_expect(near(r.numeric, 0.5, 1e-6, 0), "%.17g", r.numeric);
    cr_expect_str_eq(r.failed, "fd", "both rules agree on 2: the differences disagree with both");
    sl_tape_free(t);
}

/* square with consistent rules 2.0025 z (0.125 % too large) checked with a
 * step of 1e-2: at z = 1 the one-sided slopes are 2 +- 0.01, so the wrong
 * value lies between them - but they come from curvature, and halving the
 * step halves their gap. A smooth point is never taken for a kink. */
static void sq_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = x[i] * x[i];
}
static void sq_backward_off(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] * 2.0025 * sl_value(x)[i];
}
static void sq_jvp_off(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_tangent_data(out)[i] = tx ? tx[i] * 2.0025 * sl_value(x)[i] : 0.0;
}
static const sl_op sq_off = {.name = "gc_square_off",
                             .arity = 1,
                             .forward = sq_forward,
                             .backward = sq_backward_off,
                             .jvp = sq_jvp_off,
                             .signature = "s",
                             .formula = "a = z^2",
                             .derivative = "(wrong) 2.0025 z",
                             .domain = {SL_DOMAIN_REAL},
                             .kind = SL_KIND_MAP};

Test(gradcheck, smooth_point_cannot_pass_as_a_kink) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 1.0, SL_GRAD);
    sl_var *y = sl_apply(t, &sq_off, 1, &x, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_opts big_step = {.eps = 1e-2, .plain = 1};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, &big_step, &r), SL_EGRAD, "%s", r.message);
    cr_expect_eq(r.kinks, 0, "a smooth point was taken for a kink");
    cr_expect(near(r.numeric, 2.0, 1e-12, 1e-12), "%.17g", r.numeric);
    cr_expect(near(r.analytic, 2.0025, 1e-15, 0));
    sl_tape_free(t);
}

/* The check's scratch buffer comes from the tape's allocator: when it cannot
 * be had, the tape says so and nothing leaks. */
Test(gradcheck, out_of_memory_for_the_jacobian) {
    counting_alloc c = {0};
    sl_allocator a = counting_allocator(&c);
    sl_tape *t = sl_tape_new_with(&a);
    sl_var *w = sl_input(t, 2, (int[]){3, 4}, W0, SL_GRAD);
    sl_var *x = sl_input(t, 2, (int[]){4, 1}, X0, SL_GRAD);
    sl_var *y = sl_sum(t, sl_tanh(t, sl_matmul(t, w, x)), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    c.fail_at = c.calls + 1;
    sl_var *in[2] = {w, x};
    cr_expect_eq(sl_gradcheck(t, y, 2, in, NULL, NULL), SL_ENOMEM);
    cr_expect(contains(sl_tape_error(t), "sl_gradcheck") &&
                  contains(sl_tape_error(t), "out of memory"),
              "%s", sl_tape_error(t));
    for (int i = 0; i < 12; i++) cr_expect_eq(sl_value(w)[i], W0[i]);
    sl_tape_free(t);
    cr_expect_eq(c.live, 0, "%ld blocks leaked", c.live);
}

/* The tolerances in opts are honoured: absurdly tight ones fail even a
 * correct graph, since finite differences are never exact. */
Test(gradcheck, tolerances_are_honoured) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){4}, X0, SL_GRAD);
    sl_var *y = sl_sum(t, sl_tanh(t, sl_mul(t, x, x)), SL_ALL, 0);
    sl_gradcheck_opts tight = {.atol = 1e-300, .rtol = 1e-300};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, &tight, &r), SL_EGRAD);
    cr_expect_eq(r.ok, 0);
    cr_expect_gt(r.abs_err, 0.0);
    sl_tape_free(t);
}

static const char *slurp(FILE *f);

/* Every argument error names the argument that is wrong. */
Test(gradcheck, argument_errors_name_the_argument) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *y = sl_sum(t, sl_exp(t, x), SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, 1, NULL, NULL, NULL), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "sl_gradcheck: inputs is NULL (nin = 1)");
    sl_tape_free(t);

    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    y = sl_sum(t, x, SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, -2, &x, NULL, NULL), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "sl_gradcheck: nin = -2, need >= 1");
    sl_tape_free(t);

    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    y = sl_sum(t, x, SL_ALL, 0);
    sl_var *in2[2] = {x, NULL};
    cr_expect_eq(sl_gradcheck(t, y, 2, in2, NULL, NULL), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "sl_gradcheck: inputs[1] is NULL");
    sl_tape_free(t);

    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    cr_expect_eq(sl_gradcheck(t, NULL, 1, &x, NULL, NULL), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "sl_gradcheck: y is NULL");
    sl_tape_free(t);

    sl_tape *t1 = sl_tape_new(), *t2 = sl_tape_new();
    sl_var *x1 = sl_input(t1, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *x2 = sl_input(t2, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *y1 = sl_sum(t1, x1, SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t1, y1, 1, &x2, NULL, NULL), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t1), "sl_gradcheck: inputs[0] is not a node of this tape");
    sl_tape_free(t1);
    t1 = sl_tape_new();
    x1 = sl_input(t1, 1, (int[]){3}, X0, SL_GRAD);
    cr_expect_eq(sl_gradcheck(t1, sl_sum(t2, x2, SL_ALL, 0), 1, &x1, NULL, NULL), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t1), "sl_gradcheck: y is not a node of this tape");
    sl_tape_free(t1);
    sl_tape_free(t2);

    /* sl_gradcheck_op: an op without a name is not "NULL" */
    sl_op nameless = *sl_op_find("exp");
    nameless.name = NULL;
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(NULL, NULL, &r), SL_EARG);
    cr_expect_str_eq(r.message, "sl_gradcheck_op: op is NULL");
    cr_expect_eq(sl_gradcheck_op(&nameless, NULL, &r), SL_EARG);
    cr_expect_str_eq(r.message, "sl_gradcheck_op: op->name is NULL");

    /* sl_check_ops: a NULL name is not an op called "(null)" */
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    const char *names[2] = {"exp", NULL};
    cr_expect_eq(sl_check_ops(f, 0, 2, names), 1);
    const char *out = slurp(f);
    cr_expect(contains(out, "names[1] is NULL"), "%s", out);
    cr_expect(!contains(out, "no op named"), "%s", out);
    fclose(f);
}

/* Options out of range are errors, not silently the defaults: each names
 * the field and its value, on the tape for sl_gradcheck and in the report
 * for sl_gradcheck_op; 0 still means the default. */
Test(gradcheck, out_of_range_options_are_errors) {
    static const struct {
        sl_gradcheck_opts o;
        const char *want;
    } bad[] = {
        {{.eps = -1}, "opts->eps = -1, must be finite and > 0 (0: the default, 1e-06)"},
        {{.eps = NAN}, "opts->eps = nan, must be finite and > 0"},
        {{.eps = INFINITY}, "opts->eps = inf, must be finite and > 0"},
        {{.atol = -1}, "opts->atol = -1, must be finite and > 0 (0: the default, 1e-05)"},
        {{.atol = INFINITY}, "opts->atol = inf"},
        {{.rtol = -1e-3}, "opts->rtol = -0.001, must be finite and > 0 (0: the default, 0.001)"},
        {{.rtol = NAN}, "opts->rtol = nan"},
        {{.projections = -5}, "opts->projections = -5, must be > 0 (0: the default, 8)"},
        {{.plain = 2}, "opts->plain = 2, must be 0 or 1"},
        {{.plain = -1}, "opts->plain = -1, must be 0 or 1"},
        {{.fast = 2}, "opts->fast = 2, must be -1, 0 or 1"},
        {{.fast = -7}, "opts->fast = -7, must be -1, 0 or 1"},
        {{.case_index = -3},
         "opts->case_index = -3, must be >= 0 (0: every case, k >= 1: case k alone)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
        sl_var *y = sl_sum(t, sl_exp(t, x), SL_ALL, 0);
        sl_gradcheck_report r;
        char want[160];
        snprintf(want, sizeof want, "sl_gradcheck: %s", bad[i].want);
        cr_expect_eq(sl_gradcheck(t, y, 1, &x, &bad[i].o, &r), SL_EARG, "%s", bad[i].want);
        cr_expect(contains(sl_tape_error(t), want), "%s (want %s)", sl_tape_error(t), want);
        cr_expect_eq(sl_tape_status(t), SL_EARG, "an argument error is the tape's");
        sl_tape_free(t);
        snprintf(want, sizeof want, "sl_gradcheck_op: %s", bad[i].want);
        cr_expect_eq(sl_gradcheck_op(sl_op_find("exp"), &bad[i].o, &r), SL_EARG, "%s", bad[i].want);
        cr_expect_eq(r.ok, 0);
        cr_expect(contains(r.message, want), "%s (want %s)", r.message, want);
    }
    /* sl_gradcheck_op names case_index when it is past the op's cases (1..nc) */
    sl_gradcheck_report r;
    const int nc = sl_op_ncases(sl_op_find("exp"));
    sl_gradcheck_opts past = {.case_index = nc + 1};
    cr_expect_eq(sl_gradcheck_op(sl_op_find("exp"), &past, &r), SL_EARG);
    char want[128];
    snprintf(want, sizeof want, "sl_gradcheck_op: opts->case_index = %d, out of range", nc + 1);
    cr_expect(contains(r.message, want), "%s (want %s)", r.message, want);
    /* zero is the default; every documented value is accepted */
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *y = sl_sum(t, sl_exp(t, x), SL_ALL, 0);
    const sl_gradcheck_opts good[] = {
        {0}, {.fast = -1}, {.fast = 1, .projections = 2}, {.plain = 1}, {.case_index = 3}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_expect_eq(sl_gradcheck(t, y, 1, &x, &good[i], &r), SL_OK, "good[%zu]: %s", i,
                     sl_tape_error(t));
    }
    sl_tape_free(t);
}

/* y = x: the Jacobian is the identity, for a tensor, a scalar node and a
 * parameter's leaf (whose value is the parameter's buffer), in the full
 * check, in fast mode and beside an input y does not depend on. */
Test(gradcheck, output_that_is_an_input_has_the_identity_jacobian) {
    sl_tape *t = sl_tape_new();
    /* b before x: sl_jvp refuses a second call with an input recorded
     * after y (a separate defect of sl_jvp) */
    sl_var *b = sl_input(t, 1, (int[]){3}, B0, SL_GRAD);
    sl_var *x = sl_input(t, 1, (int[]){4}, X0, SL_GRAD);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, x, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 16);
    cr_expect_lt(r.max_abs_err, 1e-9, "|numeric - identity| %g", r.max_abs_err);
    cr_expect_eq(r.max_mode_err, 0.0);
    sl_var *in[2] = {x, b}; /* [I 0] */
    cr_expect_eq(sl_gradcheck(t, x, 2, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 4 * (4 + 3));
    cr_expect_lt(r.max_abs_err, 1e-9);
    sl_gradcheck_opts fast = {.fast = 1};
    cr_expect_eq(sl_gradcheck(t, x, 2, in, &fast, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.fast, 1);
    cr_expect_lt(r.max_abs_err, 1e-9);
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_value(x)[i], X0[i], "x restored");
    sl_tape_free(t);

    t = sl_tape_new();
    x = sl_scalar(t, 0.7, SL_GRAD);
    cr_expect_eq(sl_gradcheck(t, x, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 1);
    cr_expect_eq(r.analytic, 1.0);
    cr_expect_eq(r.forward, 1.0);
    cr_expect(near(r.numeric, 1.0, 0, 1e-9), "%.17g", r.numeric);
    cr_expect_eq(sl_gradcheck(t, x, 1, &x, &fast, &r), SL_OK, "%s", r.message);
    cr_expect_eq(sl_item(x), 0.7);
    sl_tape_free(t);

    sl_params *ps = sl_params_new();
    sl_param *p = sl_param_new(ps, "p", 2, (int[]){2, 2}, X0);
    sl_param *s = sl_param_new(ps, "s", 0, NULL, (double[]){0.3});
    t = sl_tape_new();
    sl_var *u = sl_use(t, p), *us = sl_use(t, s);
    cr_expect_eq(sl_gradcheck(t, u, 1, &u, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 16);
    cr_expect_lt(r.max_abs_err, 1e-9);
    cr_expect_eq(sl_gradcheck(t, us, 1, &us, NULL, &r), SL_OK, "%s", r.message);
    cr_expect(near(r.numeric, 1.0, 0, 1e-9), "%.17g", r.numeric);
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_param_value(p)[i], X0[i], "p restored");
    cr_expect_eq(sl_param_value(s)[0], 0.3);
    sl_tape_free(t);
    sl_params_free(ps);
}

/* Two sl_use leaves of one parameter share its values: y = u2 is an alias
 * of the input u1. Moving u1 moves u2, and reverse mode adds both uses into
 * the one gradient, so forward mode must move both as well: d u2 / d u1 =
 * I, and d (u1 u2) / d u1 = 2 p (not p, the derivative in u1 alone). Both
 * leaves as inputs cannot be told apart: an argument error. */
Test(gradcheck, uses_of_one_parameter_move_together) {
    sl_params *ps = sl_params_new();
    sl_param *p = sl_param_new(ps, "p", 2, (int[]){2, 2}, X0);
    sl_param *s = sl_param_new(ps, "s", 0, NULL, (double[]){0.3});
    sl_tape *t = sl_tape_new();
    sl_var *u1 = sl_use(t, p), *u2 = sl_use(t, p);
    sl_var *s1 = sl_use(t, s), *s2 = sl_use(t, s);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, u2, 1, &u1, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 16);
    cr_expect_lt(r.max_abs_err, 1e-9);
    cr_expect_eq(r.max_mode_err, 0.0);
    cr_expect_eq(sl_gradcheck(t, s2, 1, &s1, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.forward, 1.0);
    sl_var *y = sl_mul(t, s1, s2);
    cr_expect_eq(sl_gradcheck(t, y, 1, &s1, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.analytic, 0.6, "2 s = 0.6: %.17g", r.analytic);
    cr_expect_eq(r.forward, 0.6, "2 s = 0.6: %.17g", r.forward);
    cr_expect(near(r.numeric, 0.6, 1e-9, 0), "%.17g", r.numeric);
    y = sl_sum(t, sl_mul(t, u1, u2), SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, 1, &u2, NULL, &r), SL_OK, "%s", r.message);
    cr_expect(near(r.analytic, 2.0 * X0[r.worst_elem], 1e-15, 0), "%.17g at %zu", r.analytic,
              r.worst_elem);
    cr_expect(near(r.forward, 2.0 * X0[r.worst_elem], 1e-15, 0), "%.17g", r.forward);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_var *in[2] = {u1, u2};
    cr_expect_eq(sl_gradcheck(t, y, 2, in, NULL, &r), SL_EARG);
    cr_expect(
        contains(sl_tape_error(t), "sl_gradcheck: inputs[0] and inputs[1] share their values"),
        "%s", sl_tape_error(t));
    sl_tape_free(t);
    sl_params_free(ps);
}

/* log at 0: log'(0) = 1/0 = +inf exactly in both modes, and the central
 * difference straddles the domain (log(-h) is NaN). The modes agree (equal
 * infinities are no mode error), so no rule is blamed: the point is, as
 * "fd", and the dot test (inf against the same inf) passes. */
Test(gradcheck, infinite_derivative_blames_the_point_not_a_rule) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){0.0, 2.0, 3.0}, SL_GRAD);
    sl_var *y = sl_log(t, x);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect_eq(r.worst_input, 0);
    cr_expect_eq(r.worst_elem, 0);
    cr_expect_eq(r.worst_out, 0);
    cr_expect_eq(r.analytic, INFINITY);
    cr_expect_eq(r.forward, INFINITY);
    cr_expect(isnan(r.numeric), "%g", r.numeric);
    cr_expect_lt(r.max_mode_err, 1e-15, "inf - inf is no mode error: %g", r.max_mode_err);
    cr_expect(!(r.dot_rel_err > 1e-9), "dot %g", r.dot_rel_err);
    cr_expect(contains(r.message, "finite differences") && contains(r.message, "infinite"), "%s",
              r.message);
    cr_expect(!contains(r.message, "rule") && !contains(r.message, "dot test"), "%s", r.message);
    cr_expect(contains(r.message, "numeric nan") && !contains(r.message, "-nan"), "%s", r.message);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
    /* the same at a scalar node: sqrt'(0) = 1/(2 sqrt 0) = +inf */
    t = sl_tape_new();
    x = sl_scalar(t, 0.0, SL_GRAD);
    y = sl_sqrt(t, x);
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect_eq(r.analytic, INFINITY);
    cr_expect_eq(r.forward, INFINITY);
    sl_tape_free(t);
    /* wherever the singular element sits, and with an unrelated log(x) on
     * the tape whose backward adds 0 / 0 = NaN into x's gradient: one mode's
     * NaN at a singular point is 0 * inf, and the entry named is the
     * infinite one (d sum(log x) / d x_1 = 1/0) */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, (double[]){2.0, 0.0, 3.0}, SL_GRAD);
    sl_log(t, x);
    y = sl_sum(t, sl_log(t, x), SL_ALL, 0);
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect_null(r.culprit, "fd blames the point, no rule");
    cr_expect_eq(r.worst_elem, 1, "%s", r.message);
    cr_expect(isinf(r.analytic) || isinf(r.forward), "%s", r.message);
    cr_expect(contains(r.message, "the derivative is infinite at input 0 element 1"), "%s",
              r.message);
    cr_expect_eq(r.max_mode_err, 0.0, "0 * inf is no mode error: %g", r.max_mode_err);
    sl_tape_free(t);
    /* outside the domain (sqrt(-1) is NaN): both modes NaN, no rule blamed */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){2}, (double[]){-1.0, 1.0}, SL_GRAD);
    y = sl_sqrt(t, x);
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect_eq(r.worst_elem, 0, "%s", r.message);
    cr_expect(contains(r.message, "the function is not finite (or not defined) within the step"),
              "%s", r.message);
    sl_tape_free(t);
    /* a finite derivative whose step leaves the domain: log at 5e-7 with
     * h = 1e-6, log'(x) = 2e6 in both modes, the difference NaN */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){2}, (double[]){5e-7, 1.0}, SL_GRAD);
    y = sl_log(t, x);
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect(near(r.analytic, 2e6, 1e-15, 0), "%.17g", r.analytic);
    cr_expect(contains(r.message, "finite differences cannot check input 0 element 0"), "%s",
              r.message);
    sl_tape_free(t);
}

/* exp with a tangent rule that gives NaN (a regular point, finite reverse
 * mode): forward mode took part, so its NaN is the tangent rule's error -
 * not a sign that forward mode was skipped. */
static void exp_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = exp(x[i]);
}
static void exp_backward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] * sl_value(out)[i];
}
static void exp_jvp_nan(sl_var *out) {
    for (size_t i = 0; i < sl_numel(out); i++) sl_tangent_data(out)[i] = NAN;
}
static const sl_op exp_nan_jvp = {.name = "gc_exp_nan_jvp",
                                  .arity = 1,
                                  .forward = exp_forward,
                                  .backward = exp_backward,
                                  .jvp = exp_jvp_nan,
                                  .signature = "s",
                                  .formula = "a = e^z",
                                  .derivative = "e^z (tangent rule: NaN)",
                                  .domain = {SL_DOMAIN_REAL},
                                  .kind = SL_KIND_MAP};

Test(gradcheck, nan_from_a_tangent_rule_is_the_tangent_rules) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){2}, (double[]){0.0, 1.0}, SL_GRAD);
    sl_var *y = sl_apply(t, &exp_nan_jvp, 1, &x, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "jvp", "%s", r.message);
    cr_expect_eq(r.worst_elem, 0);
    cr_expect_eq(r.analytic, 1.0, "e^0");
    cr_expect(isnan(r.forward), "%g", r.forward);
    cr_expect(contains(r.message, "the tangent rule (forward mode) disagrees"), "%s", r.message);
    sl_tape_free(t);
}

/* log with a tangent rule of -1/z at 0 only: +inf against -inf is a mode
 * mismatch, blamed on a rule, not excused as an infinite derivative. */
static void log_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = log(x[i]);
}
static void log_backward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] / sl_value(x)[i];
}
static void log_jvp_wrong_at_0(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    for (size_t i = 0; i < sl_numel(out); i++) {
        const double z = sl_value(x)[i];
        sl_tangent_data(out)[i] = tx ? tx[i] * (z == 0.0 ? -INFINITY : 1.0 / z) : 0.0;
    }
}
static const sl_op log_wrong_inf = {.name = "gc_log_wrong_inf",
                                    .arity = 1,
                                    .forward = log_forward,
                                    .backward = log_backward,
                                    .jvp = log_jvp_wrong_at_0,
                                    .signature = "s",
                                    .formula = "a = log z",
                                    .derivative = "1/z (tangent rule: -inf at 0)",
                                    .domain = {SL_DOMAIN_POSITIVE},
                                    .kind = SL_KIND_MAP};

Test(gradcheck, opposite_infinities_are_a_mode_mismatch) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){2}, (double[]){0.0, 2.0}, SL_GRAD);
    sl_var *y = sl_apply(t, &log_wrong_inf, 1, &x, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect(!strcmp(r.failed, "vjp") || !strcmp(r.failed, "jvp"), "a rule: %s (%s)", r.failed,
              r.message);
    cr_expect_eq(r.analytic, INFINITY);
    cr_expect_eq(r.forward, -INFINITY);
    cr_expect_eq(r.max_mode_err, INFINITY, "%g", r.max_mode_err);
    sl_tape_free(t);
}

/* ------------------------------------------------------------ fast mode */

/* n values uniform in [-scale, scale] from a fixed seed */
static void fill_seeded(double *v, size_t n, double scale, uint64_t seed) {
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) v[i] = scale * (2.0 * sl_rng_uniform(&rng) - 1.0);
}

/* cube with a wrong backward (2 z^2) but the right tangent rule (3 z^2) */
static void cube_jvp_right(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x), *xv = sl_value(x);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_tangent_data(out)[i] = tx ? 3.0 * xv[i] * xv[i] * tx[i] : 0.0;
}
static const sl_op wrong_cube_j = {.name = "gc_wrong_cube_j",
                                   .arity = 1,
                                   .forward = cube_forward,
                                   .backward = cube_backward_wrong,
                                   .jvp = cube_jvp_right,
                                   .signature = "s",
                                   .formula = "a = z^3",
                                   .derivative = "(wrong) 2 z^2",
                                   .domain = {SL_DOMAIN_REAL},
                                   .kind = SL_KIND_MAP};

enum { FN = 60, FB = 2 };

/* y = tanh(W tanh(W x)), W [60,60], x [60,2]: y has 120 elements and the
 * inputs 3720, a Jacobian of 446400 entries - above the 250000 where the
 * check switches to random projections by itself. */
Test(gradcheck, fast_mode_on_a_large_graph) {
    static double W[FN * FN], X[FN * FB];
    fill_seeded(W, FN * FN, 0.25, 1);
    fill_seeded(X, FN * FB, 1.0, 2);
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_input(t, 2, (int[]){FN, FN}, W, SL_GRAD);
    sl_var *x = sl_input(t, 2, (int[]){FN, FB}, X, SL_GRAD);
    sl_var *y = sl_tanh(t, sl_matmul(t, w, sl_tanh(t, sl_matmul(t, w, x))));
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_var *in[2] = {w, x};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 2, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.fast, 1, "446400 entries: fast mode by itself");
    cr_expect_eq(r.ok, 1);
    cr_expect_eq(r.nchecked, 8, "the default 8 projections");
    cr_expect_eq(r.jvp_checked, 1);
    cr_expect_lt(r.max_mode_err, 1e-12);
    cr_expect(r.taylor_order > 1.8, "order %g", r.taylor_order);
    /* more projections on request, and forced on a small graph too */
    sl_gradcheck_opts o = {.projections = 3};
    cr_expect_eq(sl_gradcheck(t, y, 2, in, &o, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.nchecked, 3);
    sl_tape_free(t);
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){4}, X0, SL_GRAD);
    y = sl_sum(t, sl_tanh(t, x), SL_ALL, 0);
    o = (sl_gradcheck_opts){.fast = 1};
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, &o, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.fast, 1);
    o.fast = -1;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, &o, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.fast, 0);
    cr_expect_eq(r.nchecked, 4);
    sl_tape_free(t);
}

/* The same graph with a wrong rule on a third input s: y = tanh(W (tanh(W x)
 * + cube(s))). A projection fails, the check falls back to the full Jacobian
 * and names the worst element - of s, where every entry is 2/3 of the truth. */
Test(gradcheck, fast_mode_catches_a_wrong_rule_and_names_the_element) {
    static double W[FN * FN], X[FN * FB], S[FN * FB];
    fill_seeded(W, FN * FN, 0.25, 1);
    fill_seeded(X, FN * FB, 1.0, 2);
    fill_seeded(S, FN * FB, 1.0, 3);
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_input(t, 2, (int[]){FN, FN}, W, SL_GRAD);
    sl_var *x = sl_input(t, 2, (int[]){FN, FB}, X, SL_GRAD);
    sl_var *s = sl_input(t, 2, (int[]){FN, FB}, S, SL_GRAD);
    sl_var *h = sl_add(t, sl_tanh(t, sl_matmul(t, w, x)), sl_apply(t, &wrong_cube_j, 1, &s, NULL));
    sl_var *y = sl_tanh(t, sl_matmul(t, w, h));
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_var *in[3] = {w, x, s};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 3, in, NULL, &r), SL_EGRAD);
    cr_expect_eq(r.fast, 1, "a fast check, with the fallback");
    cr_expect_eq(r.ok, 0);
    cr_expect_str_eq(r.failed, "vjp", "%s", r.message);
    cr_expect_eq(r.worst_input, 2, "the wrong rule is on s: %s", r.message);
    cr_expect_lt(r.worst_elem, (size_t)(FN * FB));
    cr_expect_lt(r.worst_out, (size_t)(FN * FB));
    cr_expect(near(r.analytic, r.numeric * 2.0 / 3.0, 1e-6, 1e-9), "analytic %.17g numeric %.17g",
              r.analytic, r.numeric);
    cr_expect(near(r.forward, r.numeric, 1e-6, 1e-9), "forward mode is right: %.17g vs %.17g",
              r.forward, r.numeric);
    cr_expect_eq(r.nchecked, (size_t)(FN * FB) * (FN * FN + 2 * FN * FB), "the full Jacobian");
    char want[64];
    snprintf(want, sizeof want, "input 2 element %zu", r.worst_elem);
    cr_expect(contains(r.message, want), "%s", r.message);
    /* the worst element is really the worst: its |analytic - numeric| is
     * the largest over s's column of that output */
    cr_expect_gt(r.abs_err, 1e-3);
    sl_tape_free(t);
}

/* ------------------------------------------------------- sl_check_ops */

/* The whole of a temporary file as a string (static buffer). */
static const char *slurp(FILE *f) {
    static char buf[1 << 16];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

static void cube_backward_right(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(out); i++)
        dx[i] += sl_grad(out)[i] * 3.0 * sl_value(x)[i] * sl_value(x)[i];
}
/* a name JSON must escape: a quote, a backslash and a tab */
static const sl_op quoted_cube = {.name = "gc \"cube\"\\ok\t1",
                                  .arity = 1,
                                  .forward = cube_forward,
                                  .backward = cube_backward_right,
                                  .jvp = cube_jvp_right,
                                  .signature = "s",
                                  .formula = "a = z^3",
                                  .derivative = "3 z^2",
                                  .domain = {SL_DOMAIN_REAL},
                                  .kind = SL_KIND_MAP};

Test(gradcheck, check_ops_prints_a_table) {
    cr_assert_eq(sl_op_register(&quoted_cube), SL_OK);
    cr_assert_eq(sl_op_register(&wrong_cube_j), SL_OK);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    const char *names[] = {"relu", quoted_cube.name};
    cr_expect_eq(sl_check_ops(f, 0, 2, names), 0);
    const char *out = slurp(f);
    cr_expect(contains(out, "max_abs") && contains(out, "verdict"), "a header: %s", out);
    cr_expect(contains(out, "relu           [7] kink at z=0"), "%s", out);
    cr_expect(contains(out, "KINK-OK\n"), "%s", out);
    cr_expect(contains(out, "gc \"cube\"\\ok\t1 [2,3]"), "%s", out);
    cr_expect(contains(out, "2 of 2 ops passed"), "%s", out);
    fclose(f);
    /* a failure: FAIL(<check>) and the message on a second, indented line;
     * an unknown name is a failure too */
    f = tmpfile();
    const char *bad[] = {"gc_wrong_cube_j", "no_such_op"};
    const int nc = sl_op_ncases(&wrong_cube_j);
    cr_expect_eq(sl_check_ops(f, 0, 2, bad), nc + 1, "every case fails, plus the unknown name");
    out = slurp(f);
    cr_expect(contains(out, "FAIL(vjp)\n    gc_wrong_cube_j at []: the backward rule (reverse "
                            "mode) disagrees at input 0 element 0"),
              "%s", out);
    cr_expect(contains(out, "FAIL(unknown)\n    no op named \"no_such_op\""), "%s", out);
    cr_expect(contains(out, "0 of 2 ops passed"), "%s", out);
    fclose(f);
    /* no FILE: nothing printed, the count still returned */
    cr_expect_eq(sl_check_ops(NULL, 0, 1, bad), nc);
    cr_expect_eq(sl_check_ops(NULL, 1, 1, names), 0);
}

/* JSON Lines: one object per case, every string escaped, no NaN. */
Test(gradcheck, check_ops_prints_json_lines) {
    cr_assert_eq(sl_op_register(&quoted_cube), SL_OK);
    cr_assert_eq(sl_op_register(&wrong_cube_j), SL_OK);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    const char *names[] = {"relu", quoted_cube.name, "gc_wrong_cube_j", "max"};
    const int nbad = sl_op_ncases(&wrong_cube_j);
    cr_expect_eq(sl_check_ops(f, 1, 4, names), nbad);
    const char *out = slurp(f);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    const int want = sl_op_ncases(sl_op_find("relu")) + sl_op_ncases(&quoted_cube) + nbad +
                     sl_op_ncases(sl_op_find("max"));
    cr_expect_eq(lines, want, "one line per case: %s", out);
    for (const char *p = out; *p;) { /* every line one object */
        const char *e = strchr(p, '\n');
        cr_assert_not_null(e);
        cr_expect_eq(*p, '{');
        cr_expect_eq(e[-1], '}');
        p = e + 1;
    }
    /* cases are numbered as opts->case_index takes them: from 1 */
    cr_expect(contains(out, "{\"op\":\"relu\",\"case\":1,\"shapes\":\"[]\""), "%s", out);
    cr_expect(contains(out, "{\"op\":\"relu\",\"case\":5,\"shapes\":\"[7] kink at z=0\""), "%s",
              out);
    cr_expect(!contains(out, "\"case\":0,"), "no case 0: %s", out);
    cr_expect(contains(out, "\"verdict\":\"KINK-OK\""), "%s", out);
    cr_expect(contains(out, "\"op\":\"gc \\\"cube\\\"\\\\ok\\t1\""), "escaped name: %s", out);
    cr_expect(contains(out, "\"verdict\":\"FAIL(vjp)\",\"failed\":\"vjp\""), "%s", out);
    cr_expect(contains(out, "\"worst\":{\"input\":0,\"element\":"), "%s", out);
    cr_expect(contains(out, "\"shapes\":\"[3,4] axis=-1 keepdim=0 ties\""), "%s", out);
    cr_expect(!contains(out, "nan") && !contains(out, "inf"), "no NaN in JSON: %s", out);
    cr_expect(contains(out, "\"taylor_order\":null"), "NaN becomes null: %s", out);
    fclose(f);
}

/* ------------------------------------ false positives found by a fuzzer */

/* One node of a scalar graph as the differential fuzzer records it: a leaf
 * (value, SL_GRAD or not), a + b, a - b, a * b, tanh a, sin a, a * a,
 * a / (b^2 + 1), or a chain product (the node before it) * b. */
typedef struct fz_node {
    char op; /* 'x' leaf, '*', '+', '-', 't' tanh, 's' sin, 'q' a * a, '/' a / (b^2 + 1), 'c' chain
              */
    int a, b;
    double v;
    int flags;
} fz_node;

static void fz_build(sl_tape *t, const fz_node *g, int n, sl_var **nodes) {
    for (int i = 0; i < n; i++) {
        sl_var *a = i ? nodes[g[i].a] : NULL, *b = i ? nodes[g[i].b] : NULL;
        switch (g[i].op) {
        case 'x':
            nodes[i] = sl_scalar(t, g[i].v, g[i].flags);
            break;
        case '*':
            nodes[i] = sl_mul(t, a, b);
            break;
        case '+':
            nodes[i] = sl_add(t, a, b);
            break;
        case '-':
            nodes[i] = sl_sub(t, a, b);
            break;
        case 't':
            nodes[i] = sl_tanh(t, a);
            break;
        case 's':
            nodes[i] = sl_sin(t, a);
            break;
        case 'q':
            nodes[i] = sl_mul(t, a, a);
            break;
        case 'c':
            nodes[i] = sl_mul(t, nodes[i - 1], b);
            break;
        default:
            nodes[i] = sl_div(t, a, sl_add(t, sl_square(t, b), sl_scalar(t, 1, 0)));
            break;
        }
        cr_assert_not_null(nodes[i], "node %d: %s", i, sl_tape_error(t));
    }
}

/* y = (p + q) / (q^2 + 1) - p with q = p^8 ~ 4.5e-14 (p ~ 0.021): the
 * gradient, ~ -2.1e-12, is what is left of terms ~ 0.05 that cancel, so the
 * two modes differ by rounding of those terms (1.2e-17), 5e-6 of the
 * result. The dot test must measure rounding against the terms summed
 * inside the graph, not only against the (cancelled) terms at the inputs.
 * Leaves after y take part as inputs, as in the fuzzer (trial 27). */
Test(gradcheck, dot_test_tolerates_cancellation_inside_the_graph) {
    static const fz_node g[] = {
        {'x', 0, 0, 0x1.0cd6298b8e7b7p+0, SL_GRAD},  /* 0 */
        {'+', 0, 0, 0, 0},                           /* 1 */
        {'x', 0, 0, -0x1.5d2f1a9fbe76cp-2, SL_GRAD}, /* 2 */
        {'/', 2, 1, 0, 0},                           /* 3 */
        {'c', 3, 2, 0, 0},                           /* 4 = 3 * 2 */
        {'q', 4, 0, 0, 0},                           /* 5 */
        {'c', 5, 5, 0, 0},                           /* 6 = 5 * 5 */
        {'q', 6, 3, 0, 0},                           /* 7 */
        {'+', 4, 7, 0, 0},                           /* 8 */
        {'/', 8, 7, 0, 0},                           /* 9 */
        {'-', 9, 4, 0, 0},                           /* 10: y */
        {'x', 0, 0, 0x1.5f60d7552366bp-1, SL_GRAD},  /* 11 */
        {'x', 0, 0, -0x1.41d41d41d41d3p-3, SL_GRAD}, /* 12 */
        {'x', 0, 0, 0x1.1020c49ba5e36p+0, SL_GRAD},  /* 13 */
    };
    sl_tape *t = sl_tape_new();
    sl_var *v[14];
    fz_build(t, g, 14, v);
    sl_var *in[5] = {v[0], v[2], v[11], v[12], v[13]};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, v[10], 5, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_lt(r.dot_rel_err, 1e-9);
    sl_tape_free(t);
}

/* y = tanh(k x) at x = 0 with k = (c + 1) 1.15: odd in x, so the Taylor
 * remainder is cubic and falls below the rounding of phi(x + hu) ~ k h
 * long before the smallest step, while phi(x) = 0 (a noise floor relative
 * to phi(x) alone is 0). Rounding there shrinks like h, which must not read
 * as order 1 (trial 2928). */
Test(gradcheck, order_test_ignores_remainders_at_the_rounding_of_phi) {
    static const fz_node g[] = {
        {'x', 0, 0, 0x1.2666666666666p+0, 0},        /* 0 */
        {'c', 0, 0, 0, 0},                           /* 1 = 0 * 0 */
        {'/', 1, 0, 0, 0},                           /* 2 */
        {'c', 2, 2, 0, 0},                           /* 3 = 2 * 2 */
        {'+', 3, 1, 0, 0},                           /* 4 */
        {'x', 0, 0, -0x1.4a9b101767dcep-3, SL_GRAD}, /* 5 */
        {'x', 0, 0, -0x1.6d593bfa2608cp+0, 0},       /* 6 */
        {'/', 6, 6, 0, 0},                           /* 7 */
        {'x', 0, 0, 0.0, SL_GRAD},                   /* 8 */
        {'*', 6, 8, 0, 0},                           /* 9 */
        {'+', 9, 8, 0, 0},                           /* 10 */
        {'c', 10, 0, 0, 0},                          /* 11 = 10 * 0 */
        {'-', 5, 0, 0, 0},                           /* 12 */
        {'x', 0, 0, -0x1.5075075075075p-1, SL_GRAD}, /* 13 */
        {'q', 13, 0, 0, 0},                          /* 14 */
        {'-', 10, 8, 0, 0},                          /* 15 */
        {'*', 10, 0, 0, 0},                          /* 16 */
        {'+', 16, 14, 0, 0},                         /* 17 */
        {'q', 17, 3, 0, 0},                          /* 18 */
        {'t', 11, 18, 0, 0},                         /* 19: y */
        {'x', 0, 0, -0x1.2a6c405d9f739p-1, SL_GRAD}, /* 20 */
        {'x', 0, 0, -0x1.47ae147ae147bp-5, SL_GRAD}, /* 21 */
        {'x', 0, 0, -0x1.2ecfb9c869536p-1, SL_GRAD}, /* 22 */
        {'x', 0, 0, 0x1.43a83a83a83a8p+0, SL_GRAD},  /* 23 */
    };
    sl_tape *t = sl_tape_new();
    sl_var *v[24];
    fz_build(t, g, 24, v);
    sl_var *in[7] = {v[5], v[8], v[13], v[20], v[21], v[22], v[23]};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, v[19], 7, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect(!(r.taylor_order < 1.5), "order %g", r.taylor_order);
    sl_tape_free(t);
}

/* A kink farther than the step eps but within the order test's steps
 * (h u up to 1e-2): relu, abs and a max near a tie, at 1e-3 .. 1e-5 from
 * it. The function is linear up to the kink and the gradient is right, so
 * no seed may fail (the order test saw (h - d) J above the kink and read
 * "order 1" for 5-45 % of seeds before it probed there). */
Test(gradcheck, kink_within_the_order_steps_is_not_a_wrong_gradient) {
    const double gaps[] = {1e-3, 2e-4, 1e-5};
    for (int op = 0; op < 3; op++)
        for (int gi = 0; gi < 3; gi++)
            for (uint64_t seed = 1; seed <= 40; seed++) {
                sl_tape *t = sl_tape_new();
                const double v[2] = {op == 2 ? 0.5 : gaps[gi], 0.5 + gaps[gi]};
                sl_var *x = sl_input(t, 1, (int[]){op == 2 ? 2 : 1}, v, SL_GRAD);
                sl_var *y = op == 0 ? sl_relu(t, x) : op == 1 ? sl_abs(t, x) : sl_max(t, x, 0, 0);
                sl_gradcheck_opts o = {.seed = seed};
                sl_gradcheck_report r;
                cr_expect_eq(sl_gradcheck(t, y, 1, &x, &o, &r), SL_OK, "op %d gap %g seed %d: %s",
                             op, gaps[gi], (int)seed, r.message);
                sl_tape_free(t);
            }
}

/* A kink of the curvature near x (relu(x) tanh(x) at 1e-5 .. 3e-4 from 0,
 * beside an element of 900 that raises the rounding): the remainder above
 * it grows like (h - d)^2, which the order test read as order 1-1.3 for a
 * quarter of the seeds; the probe checks g against the smooth side instead. */
Test(gradcheck, curvature_kink_near_x_is_not_a_wrong_gradient) {
    const double gaps[] = {3e-4, 1e-4, 3e-5, 1e-5};
    for (int gi = 0; gi < 4; gi++)
        for (uint64_t seed = 1; seed <= 40; seed++) {
            sl_tape *t = sl_tape_new();
            sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){gaps[gi], 900.0, -0.3}, SL_GRAD);
            sl_var *y = sl_sum(t, sl_mul(t, sl_tanh(t, x), sl_relu(t, x)), SL_ALL, 0);
            sl_gradcheck_opts o = {.seed = seed};
            sl_gradcheck_report r;
            cr_expect_eq(sl_gradcheck(t, y, 1, &x, &o, &r), SL_OK, "gap %g seed %d: %s", gaps[gi],
                         (int)seed, r.message);
            sl_tape_free(t);
        }
}

/* ... while a rule off by 1e-4 (inside the element tolerance) at 1e-3 from
 * its kink is still caught by the order test, for every seed: its remainder
 * is h * 1e-4 * g down to the rounding level, so the probe for a kink runs
 * at a step far below the kink and finds none. */
static double relu_off_slope(double z) { return z > 0 ? 1.0 + 1e-4 : 0.0; }
static void relu_off_backward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_grad_data(x)[i] += sl_grad(out)[i] * relu_off_slope(sl_value(x)[i]);
}
static void relu_off_jvp(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_tangent_data(out)[i] = tx ? tx[i] * relu_off_slope(sl_value(x)[i]) : 0.0;
}
static const sl_op relu_off = {.name = "gc_relu_off_1e4",
                               .arity = 1,
                               .forward = relu2_forward, /* relu */
                               .backward = relu_off_backward,
                               .jvp = relu_off_jvp,
                               .signature = "sl_apply(t, op, 1, &x, NULL)",
                               .formula = "a = max(0, z)",
                               .derivative = "deliberately 1e-4 off",
                               .domain = {SL_DOMAIN_REAL}};

Test(gradcheck, wrong_rule_near_a_kink_is_still_caught) {
    cr_assert_eq(sl_op_register(&relu_off), SL_OK, "%s", sl_op_register_error());
    for (uint64_t seed = 1; seed <= 40; seed++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 1, (int[]){1}, (double[]){1e-3}, SL_GRAD);
        sl_var *in[] = {x};
        sl_var *y = sl_apply(t, &relu_off, 1, in, NULL);
        sl_gradcheck_opts o = {.seed = seed};
        sl_gradcheck_report r;
        cr_expect_eq(sl_gradcheck(t, y, 1, &x, &o, &r), SL_EGRAD, "seed %d", (int)seed);
        cr_expect_str_eq(r.failed, "order", "seed %d: %s", (int)seed, r.message);
        sl_tape_free(t);
    }
}

/* The probe explains a remainder by a kink only when g is the slope of the
 * side without it, to rounding: the wrong rule above is never passed as a
 * kink, also where phi is large (an element of 1000 raises the rounding the
 * order test must stay above, so some seeds cannot see a 1e-4 error at all;
 * those pass with no kink counted, as they did before the probe). */
Test(gradcheck, a_wrong_rule_is_never_explained_by_a_near_kink) {
    cr_assert_eq(sl_op_register(&relu_off), SL_OK, "%s", sl_op_register_error());
    const double gaps[] = {1e-3, 3e-4, 1e-4, 3e-5}, bigs[] = {1.0, 1000.0};
    int caught = 0;
    for (int b = 0; b < 2; b++)
        for (int gi = 0; gi < 4; gi++)
            for (uint64_t seed = 1; seed <= 40; seed++) {
                sl_tape *t = sl_tape_new();
                sl_var *x = sl_input(t, 1, (int[]){2}, (double[]){gaps[gi], bigs[b]}, SL_GRAD);
                sl_var *in[] = {x};
                sl_var *y = sl_apply(t, &relu_off, 1, in, NULL);
                sl_gradcheck_opts o = {.seed = seed};
                sl_gradcheck_report r;
                const int rc = sl_gradcheck(t, y, 1, &x, &o, &r);
                cr_expect(rc == SL_EGRAD || r.kinks == 0, "gap %g big %g seed %d: passed as a kink",
                          gaps[gi], bigs[b], (int)seed);
                caught += rc == SL_EGRAD;
                sl_tape_free(t);
            }
    /* at unit scale every seed is caught (160), at 1000 most (29 of 160 pass) */
    cr_expect_geq(caught, 160 + 100, "caught %d of 320", caught);
}

/* A step of the finite differences that leaves the domain a forward rule
 * checks (bce's probabilities, cross_entropy's labels) is the function not
 * being defined within the step: the verdict fd, as for log next to 0, and
 * the tape stays usable - it had no error, and it has none after. */
Test(gradcheck, step_outside_a_checked_domain_is_a_verdict_not_a_tape_error) {
    sl_tape *t = sl_tape_new();
    const int two = 2;
    const double p0[2] = {0.3, 0.9999995}, y0[2] = {0.0, 1.0};
    sl_var *p = sl_input(t, 1, &two, p0, SL_GRAD), *yl = sl_input(t, 1, &two, y0, 0);
    sl_var *y = sl_bce(t, p, yl);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &p, NULL, &r), SL_EGRAD, "%s", r.message);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect_null(r.culprit, "fd blames the point, no rule");
    cr_expect_eq(r.worst_elem, 1, "%s", r.message);
    cr_expect(strstr(r.message, "not defined") && strstr(r.message, "at a step: ") &&
                  strstr(r.message, "sl_bce") && strstr(r.message, "outside [0, 1]"),
              "%s", r.message);
    cr_expect_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    cr_expect(sl_value(p)[0] == p0[0] && sl_value(p)[1] == p0[1], "values restored");
    /* the tape still works: mean bce's gradient, -(y/p - (1-y)/(1-p)) / n */
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    cr_expect(near(sl_grad(p)[0], (1.0 / (1.0 - 0.3)) / 2.0, 1e-12, 0), "%.17g", sl_grad(p)[0]);
    cr_expect(near(sl_grad(p)[1], -(1.0 / 0.9999995) / 2.0, 1e-12, 0), "%.17g", sl_grad(p)[1]);
    /* a smaller step stays inside [0, 1] and the check passes */
    sl_gradcheck_opts small = {.eps = 1e-8};
    cr_expect_eq(sl_gradcheck(t, y, 1, &p, &small, &r), SL_OK, "%s", r.message);
    sl_tape_free(t);

    /* labels passed as an input: a step makes them non-integers */
    t = sl_tape_new();
    const int d[2] = {2, 3};
    const double x0[6] = {0.1, -0.2, 0.3, 0.5, 0.4, -0.6}, lab0[2] = {2.0, 0.0};
    sl_var *x = sl_input(t, 2, d, x0, SL_GRAD), *lab = sl_input(t, 1, &two, lab0, SL_GRAD);
    sl_var *ce = sl_cross_entropy(t, x, lab);
    cr_assert_not_null(ce, "%s", sl_tape_error(t));
    sl_var *both[2] = {x, lab};
    cr_expect_eq(sl_gradcheck(t, ce, 2, both, NULL, &r), SL_EGRAD, "%s", r.message);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect_eq(r.worst_input, 1, "%s", r.message);
    cr_expect(strstr(r.message, "not an integer"), "%s", r.message);
    cr_expect_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    cr_expect(sl_value(lab)[0] == 2.0 && sl_value(lab)[1] == 0.0, "labels restored");
    cr_expect_eq(sl_gradcheck(t, ce, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(sl_backward(t, ce), SL_OK, "%s", sl_tape_error(t));
    sl_tape_free(t);
}

/* A tangent rule 1e-6 off passes the differences' tolerance (1e-3
 * relative) but not the modes' agreement (1e-8): the message says which
 * test failed, not the tolerance it met. */
static void sq_jvp_slightly_off(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    for (size_t i = 0; i < sl_numel(out); i++)
        sl_tangent_data(out)[i] = tx ? tx[i] * 2.000002 * sl_value(x)[i] : 0.0;
}
static void sq_backward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] * 2.0 * sl_value(x)[i];
}
static const sl_op sq_jvp_off6 = {.name = "gc_square_jvp_off",
                                  .arity = 1,
                                  .forward = sq_forward,
                                  .backward = sq_backward,
                                  .jvp = sq_jvp_slightly_off,
                                  .signature = "s",
                                  .formula = "a = z^2",
                                  .derivative = "2z (tangent: 2.000002 z, wrong)",
                                  .domain = {SL_DOMAIN_REAL},
                                  .kind = SL_KIND_MAP};

Test(gradcheck, a_mode_mismatch_names_the_modes_test) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 1.5, SL_GRAD);
    sl_var *y = sl_apply(t, &sq_jvp_off6, 1, &x, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD, "%s", r.message);
    cr_expect_str_eq(r.failed, "jvp", "%s", r.message);
    cr_expect(strstr(r.message, "reverse and forward mode differ by 3e-06") &&
                  !strstr(r.message, "allowed"),
              "%s", r.message);
    sl_tape_free(t);
}

/* The rule at fault deep in a graph of scalar and tensor nodes, recorded
 * with SL_HERE: named with its source line; the right ops around it (and a
 * node y does not depend on, with the same wrong rule) are not. */
Test(gradcheck, the_wrong_rule_is_named_with_its_source_line) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *unused = sl_apply(t, &wrong_cube, 1, &x, NULL); /* y does not depend on it */
    sl_var *a = sl_tanh(t, sl_mul(t, x, sl_scalar(t, 0.5, 0)));
    const int line = __LINE__ + 1;
    sl_var *b = sl_apply(SL_HERE(t), &wrong_cube, 1, &a, NULL);
    sl_var *y = sl_sum(t, sl_exp(t, b), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_not_null(unused);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD, "%s", r.message);
    cr_expect_str_eq(r.failed, "vjp", "%s", r.message);
    cr_expect(r.culprit == b, "%s", r.message);
    char where[256];
    snprintf(where, sizeof where, "(op gc_wrong_cube, recorded at %s:%d) fails a check of its own",
             __FILE__, line);
    cr_expect(contains(r.message, where), "want \"%s\" in \"%s\"", where, r.message);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

/* max's and min's ties case puts the order test's random direction across a
 * tie; when the tied elements' components of u are close, the one-sided
 * slopes differ by less than the tolerances, and that kink was taken for an
 * order-1 error (max failed at seed 109, min at 187). Now every seed passes,
 * and test_broken_rules / test_reduce still catch the wrong tie rules. */
Test(gradcheck, a_tie_crossed_with_a_small_jump_is_a_kink) {
    const char *names[] = {"max", "min"};
    for (int k = 0; k < 2; k++) {
        const sl_op *op = sl_op_find(names[k]);
        cr_assert_not_null(op);
        int fails = 0;
        char first[600] = "";
        for (uint64_t seed = 1; seed <= 300; seed++) {
            sl_gradcheck_opts o = {.seed = seed};
            sl_gradcheck_report r;
            if (sl_gradcheck_op(op, &o, &r) != SL_OK && !fails++)
                snprintf(first, sizeof first, "seed %llu: %s", (unsigned long long)seed, r.message);
        }
        cr_expect_eq(fails, 0, "%s: %d seeds fail; %s", names[k], fails, first);
    }
}

/* Both rules of an op wrong the same way (2.0025 z for z^2 in backward and
 * tangent alike) agree with each other: the graph's verdict is fd, and the
 * node is still named, its own order test finding the gradient wrong. A
 * point's fd (bce's step past 1, above) names none. */
Test(gradcheck, both_rules_wrong_the_same_way_are_named) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X0, SL_GRAD);
    sl_var *a = sl_tanh(t, x);
    sl_var *b = sl_apply(t, &sq_off, 1, &a, NULL);
    sl_var *y = sl_sum(t, sl_exp(t, b), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD, "%s", r.message);
    cr_expect_str_eq(r.failed, "fd", "%s", r.message);
    cr_expect(r.culprit == b, "%s", r.message);
    cr_expect(!strncmp(r.message,
                       "node 2 of the tape (op gc_square_off) fails a check of its own "
                       "(vjp and jvp)",
                       strlen("node 2 of the tape (op gc_square_off) fails a check of its own "
                              "(vjp and jvp)")),
              "%s", r.message);
    cr_expect(contains(r.message, "; in the whole graph, finite differences disagree"), "%s",
              r.message);
    sl_tape_free(t);
}
