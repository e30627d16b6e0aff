/*
 * test_anomaly.c - anomaly mode (sl_tape_set_check(t, SL_CHECK_FINITE)):
 * recording, replay (sl_forward) and the reverse sweep stop at the first
 * non-finite value an op produces, with SL_ENONFINITE and a message that
 * names the node, the op, the element, the inputs' values there and the
 * file:line given through SL_HERE. With the mode off the same graphs give
 * the IEEE values (-inf, inf, NaN) and no error.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>

/* "file:line" of a recording site, as the message spells it */
static const char *site(int line) {
    static char buf[512];
    snprintf(buf, sizeof buf, "recorded at %s:%d", __FILE__, line);
    return buf;
}

static sl_tape *checked_tape(void) {
    sl_tape *t = sl_tape_new();
    cr_assert_not_null(t);
    sl_tape_set_check(t, SL_CHECK_FINITE);
    return t;
}

Test(anomaly, log_of_zero_stops_recording) {
    sl_tape *t = checked_tape();
    const double xs[3] = {1.0, 0.0, 2.0};
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    sl_var *y = sl_log(SL_HERE(t), x);
    cr_expect_null(y, "the node that went non-finite is the poison");
    cr_expect_eq(sl_tape_status(t), SL_ENONFINITE);
    const char *msg = sl_tape_error(t);
    cr_expect(contains(msg, "sl_log: non-finite value at node 1 (log, "), "node and op: %s", msg);
    cr_expect(contains(msg, site(line)), "file:line %s: %s", site(line), msg);
    cr_expect(contains(msg, "element 1 of [3] is -inf"), "element: %s", msg);
    cr_expect(contains(msg, "inputs: in0[1] = 0"), "input value: %s", msg);
    /* the first error stands: later ops return the poison and record nothing */
    cr_expect_null(sl_exp(t, y));
    cr_expect_eq(sl_tape_size(t), 2);
    cr_expect_str_eq(sl_tape_error(t), msg);
    sl_tape_free(t);
}

/* log(0) = -inf, and exp(-inf) = 0 would hide it downstream: anomaly mode
 * names the log, the first non-finite value, not a later symptom. */
Test(anomaly, the_first_non_finite_value_is_named) {
    sl_tape *t = checked_tape();
    sl_var *x = sl_scalar(t, 0.0, SL_GRAD);
    sl_var *y = sl_mul(t, sl_exp(t, sl_log(t, x)), sl_scalar(t, 2.0, 0));
    cr_expect_null(y);
    cr_expect(contains(sl_tape_error(t), "(log"), "%s", sl_tape_error(t));
    cr_expect(!contains(sl_tape_error(t), "recorded at"), "no SL_HERE, no site: %s",
              sl_tape_error(t));
    sl_tape_free(t);
    /* without the mode: IEEE all the way, and the NaN-free result hides the log */
    t = sl_tape_new();
    x = sl_scalar(t, 0.0, SL_GRAD);
    sl_var *l = sl_log(t, x);
    y = sl_mul(t, sl_exp(t, l), sl_scalar(t, 2.0, 0));
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect(isinf(sl_item(l)) && sl_item(l) < 0);
    cr_expect_eq(sl_item(y), 0.0);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

Test(anomaly, division_by_zero) {
    const double a[3] = {1.0, 2.0, 3.0}, b[3] = {1.0, 0.0, 2.0};
    sl_tape *t = checked_tape();
    sl_var *va = sl_input(t, 1, (int[]){3}, a, SL_GRAD);
    sl_var *vb = sl_input(t, 1, (int[]){3}, b, SL_GRAD);
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    sl_var *q = sl_div(SL_HERE(t), va, vb);
    cr_expect_null(q);
    cr_expect_eq(sl_tape_status(t), SL_ENONFINITE);
    const char *msg = sl_tape_error(t);
    cr_expect(contains(msg, "at node 2 (div, "), "%s", msg);
    cr_expect(contains(msg, site(line)), "%s", msg);
    cr_expect(contains(msg, "element 1 of [3] is inf"), "%s", msg);
    cr_expect(contains(msg, "inputs: in0[1] = 2, in1[1] = 0"), "both inputs: %s", msg);
    sl_tape_free(t);
    t = sl_tape_new();
    q = sl_div(t, sl_input(t, 1, (int[]){3}, a, 0), sl_input(t, 1, (int[]){3}, b, 0));
    cr_assert_not_null(q);
    cr_expect(isinf(sl_value(q)[1]) && sl_value(q)[1] > 0, "IEEE: 2/0 = inf");
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

Test(anomaly, overflow_in_exp) {
    const double xs[2] = {1.0, 800.0};
    sl_tape *t = checked_tape();
    sl_var *x = sl_input(t, 1, (int[]){2}, xs, SL_GRAD);
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    sl_var *e = sl_exp(SL_HERE(t), x);
    cr_expect_null(e);
    const char *msg = sl_tape_error(t);
    cr_expect_eq(sl_tape_status(t), SL_ENONFINITE);
    cr_expect(contains(msg, "at node 1 (exp, "), "%s", msg);
    cr_expect(contains(msg, site(line)), "%s", msg);
    cr_expect(contains(msg, "element 1 of [2] is inf"), "%s", msg);
    cr_expect(contains(msg, "in0[1] = 800"), "%s", msg);
    sl_tape_free(t);
    t = sl_tape_new();
    e = sl_exp(t, sl_input(t, 1, (int[]){2}, xs, 0));
    cr_expect(isinf(sl_value(e)[1]));
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

/* sqrt(0) = 0 is finite; its slope 1/(2a) is not: the reverse sweep stops in
 * sqrt's backward rule, naming the gradient it wrote. */
Test(anomaly, sqrt_backward_at_zero_stops_the_sweep) {
    const double xs[3] = {1.0, 0.0, 4.0};
    sl_tape *t = checked_tape();
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    sl_var *s = sl_sqrt(SL_HERE(t), x);
    sl_var *y = sl_sum(t, s, SL_ALL, 0);
    cr_assert_not_null(y, "the forward pass is finite: %s", sl_tape_error(t));
    cr_expect_eq(sl_backward(t, y), SL_ENONFINITE);
    const char *msg = sl_tape_error(t);
    cr_expect(contains(msg, "sl_backward: non-finite gradient at node 1 (sqrt, "), "%s", msg);
    cr_expect(contains(msg, site(line)), "%s", msg);
    cr_expect(contains(msg, "element 1 of [3] is inf"), "%s", msg);
    cr_expect(contains(msg, "in0[1] = 0"), "%s", msg);
    cr_expect(contains(msg, "gradient of input 0, from the backward rule of sqrt"), "%s", msg);
    /* the tape is poisoned: later calls return the error */
    cr_expect_eq(sl_forward(t), SL_ENONFINITE);
    sl_tape_free(t);
    /* mode off: the gradient is inf, silently */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    y = sl_sum(t, sl_sqrt(t, x), SL_ALL, 0);
    cr_expect_eq(sl_backward(t, y), SL_OK);
    cr_expect(isinf(sl_grad(x)[1]));
    cr_expect_eq(sl_grad(x)[2], 0.25);
    sl_tape_free(t);
}

/* Recording was clean; a replay on new leaf values is not: sl_forward stops
 * at the node that went non-finite and leaves the later ones alone. */
Test(anomaly, replay_stops_too) {
    const double xs[2] = {1.0, 2.0};
    sl_tape *t = checked_tape();
    sl_var *x = sl_input(t, 1, (int[]){2}, xs, SL_GRAD);
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    sl_var *l = sl_log(SL_HERE(t), x);
    sl_var *e = sl_exp(t, sl_mul(t, l, sl_scalar(t, 3.0, 0)));
    cr_assert_not_null(e, "%s", sl_tape_error(t));
    const double e1 = sl_value(e)[1];
    sl_leaf_data(x)[1] = 0.0;
    cr_expect_eq(sl_forward(t), SL_ENONFINITE);
    const char *msg = sl_tape_error(t);
    cr_expect(contains(msg, "sl_forward: non-finite value at node 1 (log, "), "%s", msg);
    cr_expect(contains(msg, site(line)), "%s", msg);
    cr_expect(contains(msg, "element 1 of [2] is -inf; inputs: in0[1] = 0"), "%s", msg);
    cr_expect_eq(sl_value(e)[1], e1, "nodes after the first anomaly were not recomputed");
    sl_tape_free(t);
    /* the same replay with the mode off: exp(3 log 0) = 0, no error */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){2}, xs, SL_GRAD);
    e = sl_exp(t, sl_mul(t, sl_log(t, x), sl_scalar(t, 3.0, 0)));
    sl_leaf_data(x)[1] = 0.0;
    cr_expect_eq(sl_forward(t), SL_OK);
    cr_expect_eq(sl_value(e)[1], 0.0);
    sl_tape_free(t);
}

/* The mode can be switched off again; sl_tape_clear keeps it. */
Test(anomaly, mode_switches) {
    sl_tape *t = checked_tape();
    sl_tape_set_check(t, 0);
    sl_var *l = sl_log(t, sl_scalar(t, 0.0, 0));
    cr_expect_not_null(l);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_set_check(t, SL_CHECK_FINITE);
    sl_tape_clear(t);
    cr_expect_null(sl_log(t, sl_scalar(t, 0.0, 0)), "still on after clear");
    cr_expect_eq(sl_tape_status(t), SL_ENONFINITE);
    sl_tape_free(t);
}

/* A user op is watched like a built-in one. */
static void nan_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = x[i] > 1.0 ? NAN : x[i];
}
static void nan_backward(sl_var *out) {
    double *dx = sl_grad_data(sl_in(out, 0));
    if (dx)
        for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i];
}
static const sl_op nan_op = {
    .name = "an_nan_above_1", .arity = 1, .forward = nan_forward, .backward = nan_backward};

Test(anomaly, user_op_is_watched) {
    sl_tape *t = checked_tape();
    const double xs[3] = {0.5, 1.0, 1.5};
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, 0);
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    sl_var *y = sl_apply(SL_HERE(t), &nan_op, 1, &x, NULL);
    cr_expect_null(y);
    const char *msg = sl_tape_error(t);
    cr_expect(contains(msg, "sl_an_nan_above_1: non-finite value at node 1 (an_nan_above_1, "),
              "%s", msg);
    cr_expect(contains(msg, site(line)), "%s", msg);
    cr_expect(contains(msg, "element 2 of [3] is nan"), "%s", msg);
    cr_expect(contains(msg, "in0[2] = 1.5"), "%s", msg);
    sl_tape_free(t);
}

/* Source locations live beside the node list once SL_HERE has been used:
 * nodes recorded before the first call have none, later ones keep theirs
 * while the tape (and the location array) grows past several doublings. */
Test(anomaly, locations_survive_tape_growth) {
    sl_tape *t = checked_tape();
    sl_var *x = sl_scalar(t, 0.5, SL_GRAD), *y = x;
    for (int i = 0; i < 1500; i++) y = sl_mul(t, y, sl_scalar(t, 1.0, 0)); /* no location */
    const int first = __LINE__ + 1;
    y = sl_exp(SL_HERE(t), y);
    for (int i = 0; i < 1500; i++) y = sl_add(t, y, sl_scalar(t, 0.0, 0)); /* still `first` */
    (void)first;
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    sl_var *bad = sl_log(SL_HERE(t), sl_neg(t, y));
    cr_expect_null(bad);
    cr_expect(contains(sl_tape_error(t), site(line)), "%s", sl_tape_error(t));
    /* a replay names the sticky location of a middle node, and none for an early one */
    sl_tape_free(t);
    t = sl_tape_new();
    x = sl_scalar(t, 0.5, SL_GRAD);
    sl_var *early = sl_mul(t, x, x);
    y = sl_exp(SL_HERE(t), early);
    for (int i = 0; i < 3000; i++) y = sl_add(t, y, x);
    sl_tape_set_check(t, SL_CHECK_FINITE);
    sl_leaf_data(x)[0] = INFINITY;
    cr_expect_eq(sl_forward(t), SL_ENONFINITE);
    cr_expect(contains(sl_tape_error(t), "node 1 (mul)"), "%s", sl_tape_error(t));
    cr_expect(!contains(sl_tape_error(t), "recorded at"), "%s", sl_tape_error(t));
    sl_tape_free(t);
    t = sl_tape_new();
    x = sl_scalar(t, 0.5, SL_GRAD);
    y = x;
    for (int i = 0; i < 1200; i++) y = sl_add(t, y, x);
    const int third = __LINE__ + 1;
    y = sl_exp(SL_HERE(t), y);
    for (int i = 0; i < 3000; i++) y = sl_add(t, y, x);
    sl_tape_set_check(t, SL_CHECK_FINITE);
    sl_leaf_data(x)[0] = 1000.0; /* exp overflows at node 1201 */
    cr_expect_eq(sl_forward(t), SL_ENONFINITE);
    cr_expect(contains(sl_tape_error(t), "node 1201 (exp"), "%s", sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), site(third)), "%s", sl_tape_error(t));
    sl_tape_free(t);
}

/* Bits other than SL_CHECK_FINITE are a typo, not "on": SL_EARG naming the
 * flags, and the mode stays as it was (off here: a NaN passes). */
Test(anomaly, unknown_check_flags_are_an_error) {
    sl_tape *t = sl_tape_new();
    sl_tape_set_check(t, 12345);
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    const char *msg = sl_tape_error(t);
    cr_expect(msg && strstr(msg, "sl_tape_set_check") && strstr(msg, "12345"), "%s", msg);
    sl_tape_free(t);
    t = sl_tape_new();
    sl_tape_set_check(t, 2);
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    sl_tape_free(t);
}
