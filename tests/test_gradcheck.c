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
    for (size_t i = 0; i < sl_numel(out); i++)
        o[i] = x[i] * x[i] * x[i];
}
static void cube_backward_wrong(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx)
        return;
    const double *xv = sl_value(x), *g = sl_grad(out);
    for (size_t i = 0; i < sl_numel(out); i++)
        dx[i] += g[i] * 2.0 * xv[i] * xv[i];
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
    /* a loose tolerance hides the element-wise disagreement, but not the
     * step-free order test: the Taylor remainder shrinks like h, not h^2 */
    sl_gradcheck_opts loose = {.atol = 100.0};
    cr_expect_eq(sl_gradcheck(t, y, 2, in, &loose, &r), SL_EGRAD);
    cr_expect_str_eq(r.failed, "order", "%s", r.message);
    /* only w: the wrong rule is not on its path, so it passes */
    cr_expect_eq(sl_gradcheck(t, y, 1, in, NULL, &r), SL_OK, "%s", r.message);
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
    for (int i = 0; i < 4; i++)
        cr_expect(near(sl_grad(x)[i], 1.5 * gx[i], 1e-15, 1e-15));
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
    for (int i = 0; i < 12; i++)
        cr_expect_eq(sl_param_value(p)[i], W0[i]);
    for (int i = 0; i < 12; i++)
        cr_expect_eq(sl_param_grad(p)[i], i == 5 ? 42.0 : 0.0);
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

/* Kinks are where finite differences disagree with a subgradient: relu at 0
 * with a step larger than the distance to the kink fails - the checker is
 * not fooled into passing everything. */
Test(gradcheck, kink_is_detected) {
    sl_tape *t = sl_tape_new();
    const double v[2] = {0.0, 1.0};
    sl_var *x = sl_input(t, 1, (int[]){2}, v, SL_GRAD);
    sl_var *y = sl_sum(t, sl_relu(t, x), SL_ALL, 0);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_EGRAD);
    cr_expect_eq(r.worst_elem, 0);
    cr_expect(near(r.numeric, 0.5, 1e-6, 0), "central difference at the kink: %.17g", r.numeric);
    cr_expect_eq(r.analytic, 0.0);
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
    for (int i = 0; i < 12; i++)
        cr_expect_eq(sl_value(w)[i], W0[i]);
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
