/*
 * test_tape.c - recording, sticky errors, the reverse sweep and replay.
 *
 * Expected gradients are closed forms written out here (d/dx of x*x + x is
 * 2x + 1, ...) or loops computed in the test, never values read back from
 * slope. The fault tests drive a counting allocator that fails on call N for
 * N = 1, 2, ... until the run succeeds, and check after every failure that
 * the tape names the function that ran out of memory and that freeing the
 * tape returns every block.
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

/* ------------------------------------------------------------ status map */

Test(tape, status_names_and_strings_for_every_code) {
    static const struct {
        int code;
        const char *name, *text;
    } want[] = {
        {SL_OK, "SL_OK", "no error"},
        {SL_ESHAPE, "SL_ESHAPE", "shape mismatch"},
        {SL_EARG, "SL_EARG", "bad argument"},
        {SL_ENOMEM, "SL_ENOMEM", "out of memory"},
        {SL_ESTATE, "SL_ESTATE", "call out of order"},
        {SL_ENONFINITE, "SL_ENONFINITE", "non-finite value"},
        {SL_EIO, "SL_EIO", "input/output error"},
        {SL_EFORMAT, "SL_EFORMAT", "bad file format"},
        {SL_EGRAD, "SL_EGRAD", "gradient check failed"},
    };
    const int nwant = (int)(sizeof want / sizeof want[0]);
    cr_expect_eq(SL_OK, 0);
    for (int i = 0; i < nwant; i++) {
        cr_expect_str_eq(sl_status_name(want[i].code), want[i].name);
        cr_expect_str_eq(sl_status_str(want[i].code), want[i].text);
        if (want[i].code != SL_OK) cr_expect_lt(want[i].code, 0, "%s", want[i].name);
        for (int j = 0; j < i; j++) cr_expect_neq(want[i].code, want[j].code);
    }
    /* every code of the map has a row above: a new code needs a test row */
    int nmap = 0;
#define COUNT(name, code, text) nmap++;
    SL_STATUS_MAP(COUNT)
#undef COUNT
    cr_expect_eq(nmap, nwant, "SL_STATUS_MAP has %d codes, the test knows %d", nmap, nwant);
    /* and the map's own name/text agree with the functions */
#define CHECK(name, code, text)                                                                    \
    cr_expect_str_eq(sl_status_name(code), "SL_" #name);                                           \
    cr_expect_str_eq(sl_status_str(code), text);
    SL_STATUS_MAP(CHECK)
#undef CHECK
    cr_expect_str_eq(sl_status_name(1), "SL_UNKNOWN");
    cr_expect_str_eq(sl_status_name(-1000), "SL_UNKNOWN");
    cr_expect_str_eq(sl_status_str(42), "unknown status");
}

/* --------------------------------------------------------- sticky errors */

Test(tape, fresh_tape_is_clean) {
    sl_tape *t = sl_tape_new();
    cr_assert_not_null(t);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    cr_expect_null(sl_tape_error(t));
    cr_expect_eq(sl_tape_size(t), 0);
    sl_tape_free(t);
    sl_tape_free(NULL); /* documented as harmless */
    cr_expect_neq(sl_tape_status(NULL), SL_OK);
    cr_expect_not_null(sl_tape_error(NULL));
}

/* A user op's rules can refuse data they meet on a replay: sqrt of a value
 * that must stay >= 0, reported through sl_node_tape(out); sl_forward and
 * sl_backward return the status and the tape keeps the message. */
static void chk_fwd(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) {
        if (x[i] < 0) {
            sl_tape_fail(sl_node_tape(out), SL_EARG, "t_chk_sqrt: element %zu is %g, must be >= 0",
                         i, x[i]);
            return;
        }
        sl_out_data(out)[i] = sqrt(x[i]);
    }
}
static void chk_bwd(sl_var *out) {
    double *dx = sl_grad_data(sl_in(out, 0));
    const double *y = sl_value(out);
    for (size_t i = 0; i < sl_numel(out); i++) {
        if (y[i] == 0) {
            sl_tape_fail(sl_node_tape(out), SL_ENONFINITE,
                         "t_chk_sqrt: infinite slope at element %zu", i);
            return;
        }
        if (dx) dx[i] += sl_grad(out)[i] / (2 * y[i]);
    }
}
Test(tape, user_rules_report_errors_through_the_node_tape) {
    static const sl_op op = {
        .name = "t_chk_sqrt", .arity = 1, .forward = chk_fwd, .backward = chk_bwd};
    const double xs[2] = {4.0, 9.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){2}, xs, SL_GRAD);
    sl_var *y = sl_apply(t, &op, 1, &x, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_node_tape(y), t);
    cr_expect_null(sl_node_tape(sl_scalar(t, 1.0, 0)), "a compact scalar node has no tape pointer");
    cr_expect_null(sl_node_tape(NULL));
    sl_var *s = sl_sum(t, y, -1, 0);
    cr_assert_eq(sl_backward(t, s), SL_OK, "%s", sl_tape_error(t));
    cr_expect_eq(sl_grad(x)[0], 0.25);
    /* a zero reaches the backward rule: its error is sl_backward's status */
    sl_leaf_data(x)[1] = 0.0;
    cr_assert_eq(sl_forward(t), SL_OK, "%s", sl_tape_error(t));
    cr_expect_eq(sl_backward(t, s), SL_ENONFINITE);
    cr_expect_str_eq(sl_tape_error(t), "t_chk_sqrt: infinite slope at element 1");
    sl_tape_free(t);
    /* a negative value reaches the forward rule on a replay */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){2}, xs, SL_GRAD);
    y = sl_apply(t, &op, 1, &x, NULL);
    sl_leaf_data(x)[0] = -1.0;
    cr_expect_eq(sl_forward(t), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "t_chk_sqrt: element 0 is -1, must be >= 0");
    cr_expect_eq(sl_backward(t, y), SL_EARG, "the tape stays in error");
    sl_tape_free(t);
}

/* Nodes y does not depend on pass nothing on: a metric log(x) recorded beside
 * the loss, singular (x = 0) or NaN (x < 0) at the point, must not turn the
 * loss's gradient into NaN (it added 0 * inf and 0 * NaN). Tensor nodes,
 * scalar nodes, a tensor branch fed by scalars; in anomaly mode (which
 * refuses non-finite values) with sqrt at 0: a finite value, an infinite
 * derivative. */
static sl_var *metric(sl_tape *t, sl_var *x, int check) {
    if (check) return sl_sqrt(t, x);
    sl_var *a = sl_log(t, x), *b = sl_sqrt(t, x);
    return sl_add(t, sl_add(t, a, b), sl_div(t, sl_scalar(t, 1.0, 0), x));
}
Test(tape, nodes_off_the_path_to_y_pass_nothing_on) {
    for (int check = 0; check <= 1; check++) {
        /* tensors: y = sum(x^2), a metric of x beside it and one after it */
        sl_tape *t = sl_tape_new();
        if (check) sl_tape_set_check(t, SL_CHECK_FINITE);
        const double xs[3] = {0.0, 2.0, check ? 1.0 : -1.0};
        sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
        cr_assert_not_null(metric(t, x, check), "%s", sl_tape_error(t));
        sl_var *y = sl_sum(t, sl_square(t, x), -1, 0);
        cr_assert_not_null(metric(t, x, check), "%s", sl_tape_error(t));
        cr_assert_eq(sl_backward(t, y), SL_OK, "check %d: %s", check, sl_tape_error(t));
        for (int i = 0; i < 3; i++)
            cr_expect_eq(sl_grad(x)[i], 2 * xs[i], "check %d: dy/dx[%d] = %g", check, i,
                         sl_grad(x)[i]);
        /* replayed */
        cr_assert_eq(sl_forward(t), SL_OK, "%s", sl_tape_error(t));
        sl_zero_grad(t);
        cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
        for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[i], 2 * xs[i], "replay [%d]", i);
        sl_tape_free(t);

        /* scalars: y = x0 x0 + x1 x1 with metrics of x0, x1 and a product chain beside it */
        t = sl_tape_new();
        if (check) sl_tape_set_check(t, SL_CHECK_FINITE);
        const double v1 = check ? 3.0 : -1.0;
        sl_var *x0 = sl_scalar(t, 0.0, SL_GRAD), *x1 = sl_scalar(t, v1, SL_GRAD);
        cr_assert_not_null(metric(t, x0, check), "%s", sl_tape_error(t));
        cr_assert_not_null(metric(t, x1, check), "%s", sl_tape_error(t));
        cr_assert_not_null(sl_mul(t, sl_mul(t, sl_sqrt(t, x0), x1), x1));
        sl_var *ys = sl_add(t, sl_mul(t, x0, x0), sl_mul(t, x1, x1));
        cr_assert_eq(sl_backward(t, ys), SL_OK, "check %d: %s", check, sl_tape_error(t));
        cr_expect_eq(sl_grad(x0)[0], 0.0, "check %d: %g", check, sl_grad(x0)[0]);
        cr_expect_eq(sl_grad(x1)[0], 2 * v1, "check %d: %g", check, sl_grad(x1)[0]);
        /* a tensor op over a scalar (through a view), off the path */
        cr_assert_not_null(metric(t, sl_add(t, x0, sl_input(t, 1, (int[]){2}, NULL, 0)), check),
                           "%s", sl_tape_error(t));
        sl_var *ys2 = sl_mul(t, x1, x1);
        sl_zero_grad(t);
        cr_assert_eq(sl_backward(t, ys2), SL_OK, "%s", sl_tape_error(t));
        cr_expect_eq(sl_grad(x0)[0], 0.0);
        cr_expect_eq(sl_grad(x1)[0], 2 * v1);
        sl_tape_free(t);
    }
}

/* An op node's gradient buffer is zeroed when first needed, not when the
 * node is recorded (a graph only evaluated never pays for it). Whatever the
 * arena held before must never show: re-record a graph over the memory of
 * one that ran backward, then read the gradients every way there is. */
static sl_var *rerecord(sl_tape *t, sl_var **x, const double *xs) {
    *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    sl_var *h = sl_mul(t, *x, *x);
    return sl_sum(t, sl_mul(t, h, sl_exp(t, *x)), -1, 0); /* sum x^2 e^x */
}
Test(tape, op_gradients_zeroed_when_first_needed) {
    const double xs[3] = {0.5, -1.0, 2.0};
    for (int how = 0; how < 4; how++) {
        sl_tape *t = sl_tape_new();
        sl_var *x;
        sl_var *y = rerecord(t, &x, xs);
        cr_assert_eq(sl_backward(t, y), SL_OK); /* the op nodes' buffers now hold gradients */
        sl_tape_clear(t);
        y = rerecord(t, &x, xs);                                /* the same blocks again */
        sl_var *h = (sl_var *)(uintptr_t)sl_in(sl_in(y, 0), 0); /* x * x, to record with */
        switch (how) {
        case 0: /* read before any sweep */
            for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad_data(h)[i], 0.0, "how 0 [%d]", i);
            cr_expect_null(sl_grad(h), "no sweep yet");
            break;
        case 1:
            break; /* straight to the sweep */
        case 2:
            cr_assert_eq(sl_forward(t), SL_OK);
            break;
        case 3:
            sl_zero_grad(t);
            break;
        }
        cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
        for (int i = 0; i < 3; i++) {
            const double e = exp(xs[i]), want = (2 * xs[i] + xs[i] * xs[i]) * e;
            cr_expect(near(sl_grad(x)[i], want, 1e-15, 1e-15), "how %d: dx[%d] = %.17g, want %.17g",
                      how, i, sl_grad(x)[i], want);
            cr_expect_eq(sl_grad(h)[i], e, "how %d: dy/dh[%d]", how, i);
        }
        /* nodes recorded after a sweep: zeroed by the next one, the older
         * ones keep showing the last sweep's values until then */
        sl_var *z = sl_sum(t, sl_mul(t, h, h), -1, 0);
        cr_expect_eq(sl_grad(h)[1], exp(xs[1]), "how %d", how);
        cr_assert_eq(sl_backward(t, z), SL_OK);
        cr_expect_eq(sl_grad(h)[1], 2 * xs[1] * xs[1], "how %d", how);
        sl_tape_free(t);
    }
}

/* sl_tape_fail records an error status: SL_OK, positive and unknown codes
 * become SL_EARG (callers test status < 0 and look the code up); every
 * defined error code is kept. */
Test(tape, fail_records_only_error_codes) {
    const int bad[] = {SL_OK, 5, 1, -99, -9};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_tape *t = sl_tape_new();
        cr_expect_eq(sl_tape_fail(t, bad[i], "user rule %d", bad[i]), SL_EARG, "code %d", bad[i]);
        cr_expect_eq(sl_tape_status(t), SL_EARG, "code %d", bad[i]);
        cr_expect_str_eq(sl_status_name(sl_tape_status(t)), "SL_EARG");
        sl_tape_free(t);
    }
    const int good[] = {SL_ESHAPE,     SL_EARG, SL_ENOMEM,  SL_ESTATE,
                        SL_ENONFINITE, SL_EIO,  SL_EFORMAT, SL_EGRAD};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        sl_tape *t = sl_tape_new();
        cr_expect_eq(sl_tape_fail(t, good[i], "x"), good[i]);
        cr_expect_eq(sl_tape_status(t), good[i]);
        sl_tape_free(t);
    }
}

Test(tape, sticky_first_error_wins) {
    sl_tape *t = sl_tape_new();
    int d23[] = {2, 3}, d32[] = {3, 2}, d45[] = {4, 5};
    sl_var *a = sl_input(t, 2, d23, NULL, 0), *b = sl_input(t, 2, d32, NULL, 0);
    sl_var *c = sl_input(t, 2, d45, NULL, 0);
    cr_assert_null(sl_add(t, a, b));
    cr_assert_eq(sl_tape_status(t), SL_ESHAPE);
    char first[512];
    snprintf(first, sizeof first, "%s", sl_tape_error(t));
    cr_expect(contains(first, "sl_add"), "%s", first);
    /* later errors of every kind are ignored */
    cr_expect_null(sl_matmul(t, a, c));
    cr_expect_eq(sl_tape_fail(t, SL_EIO, "something else %d", 7), SL_ESHAPE,
                 "sl_tape_fail returns the status in force");
    cr_expect_null(sl_sum(t, a, 5, 0));
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    cr_expect_str_eq(sl_tape_error(t), first);
    cr_expect_eq(sl_backward(t, a), SL_ESHAPE);
    cr_expect_eq(sl_forward(t), SL_ESHAPE);
    cr_expect_str_eq(sl_tape_error(t), first);
    sl_tape_free(t);
}

Test(tape, tape_fail_formats_and_refuses_ok) {
    sl_tape *t = sl_tape_new();
    cr_expect_eq(sl_tape_fail(t, SL_EFORMAT, "my_op: bad %s %d", "thing", 3), SL_EFORMAT);
    cr_expect_str_eq(sl_tape_error(t), "my_op: bad thing 3");
    sl_tape_free(t);
    t = sl_tape_new();
    int rc = sl_tape_fail(t, SL_OK, "failing with OK");
    cr_expect_neq(rc, SL_OK, "failing with SL_OK must still record an error");
    cr_expect_eq(sl_tape_status(t), rc);
    sl_tape_free(t);
}

/* Every op entry point on a poisoned tape: NULL back, NULL inputs accepted,
 * no node recorded, message untouched. */
Test(tape, poisoned_tape_returns_null_and_accepts_null) {
    sl_tape *t = sl_tape_new();
    int d23[] = {2, 3}, d6[] = {6};
    sl_var *x = sl_input(t, 2, d23, NULL, SL_GRAD);
    sl_var *s = sl_scalar(t, 2.0, SL_GRAD);
    sl_tape_fail(t, SL_EARG, "first: the one message");
    const size_t n = sl_tape_size(t);
    sl_var *in2[2] = {x, NULL};
    sl_params *ps = sl_params_new();
    sl_param *p = sl_param_new(ps, "w", 0, NULL, NULL);
    cr_assert_not_null(p);
    sl_var *got[64];
    int k = 0;
    for (int pass = 0; pass < 2; pass++) {
        sl_var *u = pass ? x : NULL, *v = pass ? s : NULL; /* valid nodes, then NULLs */
        got[k++] = sl_add(t, u, v);
        got[k++] = sl_sub(t, u, v);
        got[k++] = sl_mul(t, u, v);
        got[k++] = sl_div(t, u, v);
        got[k++] = sl_neg(t, u);
        got[k++] = sl_exp(t, u);
        got[k++] = sl_log(t, u);
        got[k++] = sl_sqrt(t, u);
        got[k++] = sl_abs(t, u);
        got[k++] = sl_square(t, u);
        got[k++] = sl_sin(t, u);
        got[k++] = sl_cos(t, u);
        got[k++] = sl_pow(t, u, 2.0);
        got[k++] = sl_sigmoid(t, u);
        got[k++] = sl_tanh(t, u);
        got[k++] = sl_relu(t, u);
        got[k++] = sl_leaky_relu(t, u, 0.01);
        got[k++] = sl_matmul(t, u, u);
        got[k++] = sl_transpose(t, u);
        got[k++] = sl_reshape(t, u, 1, d6);
        got[k++] = sl_sum(t, u, SL_ALL, 0);
        got[k++] = sl_mean(t, u, 0, 1);
        got[k++] = sl_max(t, u, -1, 0);
        got[k++] = sl_logsumexp(t, u, SL_ALL, 0);
    }
    got[k++] = sl_apply(t, sl_op_find("add"), 2, in2, NULL);
    got[k++] = sl_apply(t, NULL, 0, NULL, NULL);
    got[k++] = sl_input(t, 2, d23, NULL, 0);
    got[k++] = sl_scalar(t, 1.0, 0);
    got[k++] = sl_use(t, p);
    got[k++] = sl_use(t, NULL);
    for (int i = 0; i < k; i++)
        cr_expect_null(got[i], "call %d returned a node on a poisoned tape", i);
    cr_expect_eq(sl_tape_size(t), n, "no node may be recorded after an error");
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "first: the one message");
    cr_expect_eq(sl_backward(t, NULL), SL_EARG);
    cr_expect_eq(sl_backward_seed(t, NULL, NULL), SL_EARG);
    cr_expect_eq(sl_forward(t), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "first: the one message");
    sl_params_free(ps);
    sl_tape_free(t);
}

Test(tape, reading_the_poison_is_safe) {
    cr_expect_eq(sl_ndim(NULL), 0);
    cr_assert_not_null(sl_dims(NULL));
    cr_expect_eq(sl_numel(NULL), 0);
    cr_expect_null(sl_value(NULL));
    cr_expect_null(sl_grad(NULL));
    cr_expect(isnan(sl_item(NULL)));
    cr_expect_eq(sl_requires_grad(NULL), 0);
    cr_expect_null(sl_leaf_data(NULL));
}

static void expect_null_input_error(sl_tape *t, sl_var *got, const char *fname) {
    cr_expect_null(got, "%s returned a node for a NULL input", fname);
    cr_expect_eq(sl_tape_status(t), SL_EARG, "%s: status %s", fname,
                 sl_status_name(sl_tape_status(t)));
    cr_expect(contains(sl_tape_error(t), fname), "message \"%s\" must name %s", sl_tape_error(t),
              fname);
}

Test(tape, null_input_on_clean_tape_is_an_error) {
    int d2[] = {2};
    struct {
        const char *fname;
        int which;
    } cases[] = {{"sl_add", 0}, {"sl_mul", 1},     {"sl_tanh", 2}, {"sl_matmul", 3},
                 {"sl_sum", 4}, {"sl_reshape", 5}, {"sl_use", 6},  {"sl_pow", 7}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 1, d2, NULL, SL_GRAD), *r = NULL;
        switch (cases[i].which) {
        case 0:
            r = sl_add(t, x, NULL);
            break;
        case 1:
            r = sl_mul(t, NULL, x);
            break;
        case 2:
            r = sl_tanh(t, NULL);
            break;
        case 3:
            r = sl_matmul(t, NULL, NULL);
            break;
        case 4:
            r = sl_sum(t, NULL, SL_ALL, 0);
            break;
        case 5:
            r = sl_reshape(t, NULL, 1, d2);
            break;
        case 6:
            r = sl_use(t, NULL);
            break;
        case 7:
            r = sl_pow(t, NULL, 2.0);
            break;
        }
        expect_null_input_error(t, r, cases[i].fname);
        sl_tape_free(t);
    }
    /* backward with a NULL root on a clean tape */
    sl_tape *t = sl_tape_new();
    cr_expect_eq(sl_backward(t, NULL), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "sl_backward"), "%s", sl_tape_error(t));
    sl_tape_free(t);
    t = sl_tape_new();
    sl_var *y = sl_scalar(t, 1.0, SL_GRAD);
    cr_expect_eq(sl_backward_seed(t, y, NULL), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "sl_backward_seed"), "%s", sl_tape_error(t));
    sl_tape_free(t);
}

Test(tape, input_from_another_tape_is_an_error) {
    sl_tape *t1 = sl_tape_new(), *t2 = sl_tape_new();
    sl_var *a = sl_scalar(t1, 1.0, SL_GRAD), *b = sl_scalar(t2, 2.0, SL_GRAD);
    cr_expect_null(sl_add(t1, a, b));
    cr_expect_eq(sl_tape_status(t1), SL_EARG);
    cr_expect(contains(sl_tape_error(t1), "sl_add") && contains(sl_tape_error(t1), "another tape"),
              "%s", sl_tape_error(t1));
    cr_expect_eq(sl_tape_status(t2), SL_OK, "the other tape is not touched");
    /* a node of t2 used on t1 as the only input */
    sl_tape *t3 = sl_tape_new();
    cr_expect_null(sl_exp(t3, b));
    cr_expect_eq(sl_tape_status(t3), SL_EARG);
    /* backward from a root on another tape */
    sl_tape *t4 = sl_tape_new();
    cr_expect_eq(sl_backward(t4, b), SL_EARG);
    cr_expect(contains(sl_tape_error(t4), "sl_backward"), "%s", sl_tape_error(t4));
    sl_tape_free(t1);
    sl_tape_free(t2);
    sl_tape_free(t3);
    sl_tape_free(t4);
}

Test(tape, bad_leaf_arguments) {
    int bad0[] = {2, 0}, neg[] = {-1}, d5[] = {1, 1, 1, 1, 1}, d2[] = {2};
    struct {
        int ndim;
        const int *dims;
        int flags;
    } cases[] = {{2, bad0, 0}, {1, neg, 0}, {5, d5, 0}, {-1, d2, 0}, {1, NULL, 0}, {1, d2, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tape *t = sl_tape_new();
        cr_expect_null(sl_input(t, cases[i].ndim, cases[i].dims, NULL, cases[i].flags), "case %zu",
                       i);
        cr_expect_eq(sl_tape_status(t), SL_EARG, "case %zu", i);
        cr_expect(contains(sl_tape_error(t), "sl_input"), "case %zu: %s", i, sl_tape_error(t));
        cr_expect_eq(sl_tape_size(t), 0);
        sl_tape_free(t);
    }
}

Test(tape, leaves_copy_their_data) {
    sl_tape *t = sl_tape_new();
    double data[6] = {1, 2, 3, 4, 5, 6};
    int d23[] = {2, 3};
    sl_var *x = sl_input(t, 2, d23, data, 0);
    data[0] = 100; /* the tape holds a copy */
    cr_expect_eq(sl_value(x)[0], 1.0);
    cr_expect_eq(sl_ndim(x), 2);
    cr_expect_eq(sl_dims(x)[0], 2);
    cr_expect_eq(sl_dims(x)[1], 3);
    cr_expect_eq(sl_numel(x), 6);
    cr_expect(isnan(sl_item(x)), "item of a 6-element node is NaN");
    sl_var *z = sl_input(t, 2, d23, NULL, 0);
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_value(z)[i], 0.0, "NULL data means zeros");
    sl_var *s = sl_scalar(t, -2.5, 0);
    cr_expect_eq(sl_ndim(s), 0);
    cr_expect_not_null(sl_dims(s));
    cr_expect_eq(sl_numel(s), 1);
    cr_expect_eq(sl_item(s), -2.5);
    cr_expect_eq(sl_tape_size(t), 3);
    cr_expect_eq(sl_requires_grad(x), 0);
    sl_tape_free(t);
}

/* --------------------------------------------------------- differentiation */

Test(tape, backward_on_non_scalar_names_shape) {
    sl_tape *t = sl_tape_new();
    int d23[] = {2, 3};
    sl_var *x = sl_input(t, 2, d23, NULL, SL_GRAD);
    sl_var *y = sl_exp(t, x);
    cr_expect_eq(sl_backward(t, y), SL_EARG);
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    const char *m = sl_tape_error(t);
    cr_expect(contains(m, "sl_backward") && contains(m, "[2,3]"), "%s", m);
    sl_tape_free(t);
    /* a [1,1] node holds one element: fine */
    t = sl_tape_new();
    int d11[] = {1, 1};
    double v = 0.5;
    x = sl_input(t, 2, d11, &v, SL_GRAD);
    y = sl_square(t, x);
    cr_expect_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    cr_expect_eq(sl_grad(x)[0], 1.0);
    sl_tape_free(t);
}

/* sl_backward_seed is a vector-Jacobian product: y = A x (A constant [2,3],
 * x [3,1]) seeded with v gives dx = A^T v. */
Test(tape, backward_seed_is_a_vjp) {
    sl_tape *t = sl_tape_new();
    const double A[6] = {1, -2, 3, 0.5, 4, -1}, X[3] = {0.3, -0.7, 2.0}, v[2] = {1.5, -0.25};
    int da[] = {2, 3}, dx[] = {3, 1};
    sl_var *a = sl_input(t, 2, da, A, 0), *x = sl_input(t, 2, dx, X, SL_GRAD);
    sl_var *y = sl_matmul(t, a, x);
    cr_assert_eq(sl_backward_seed(t, y, v), SL_OK, "%s", sl_tape_error(t));
    for (int j = 0; j < 3; j++) {
        double want = A[0 * 3 + j] * v[0] + A[1 * 3 + j] * v[1];
        cr_expect(near(sl_grad(x)[j], want, 1e-15, 1e-15), "dx[%d] = %.17g, want %.17g", j,
                  sl_grad(x)[j], want);
    }
    cr_expect_null(sl_grad(a), "a constant gets no gradient");
    /* an element-wise y = x^2 seeded with v: dx = 2 x v */
    sl_tape_free(t);
    t = sl_tape_new();
    const double X3[3] = {1.0, -2.0, 0.5}, v3[3] = {0.1, 10.0, -3.0};
    int d3[] = {3};
    x = sl_input(t, 1, d3, X3, SL_GRAD);
    y = sl_square(t, x);
    cr_assert_eq(sl_backward_seed(t, y, v3), SL_OK);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[i], 2.0 * X3[i] * v3[i]);
    sl_tape_free(t);
}

/* y = x*x + x: x feeds the product twice and the sum once. */
Test(tape, accumulation_over_several_uses) {
    for (double x0 = -2.0; x0 <= 2.0; x0 += 0.75) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_scalar(t, x0, SL_GRAD);
        sl_var *y = sl_add(t, sl_mul(t, x, x), x);
        cr_assert_eq(sl_backward(t, y), SL_OK);
        cr_expect_eq(sl_item(y), x0 * x0 + x0);
        cr_expect_eq(sl_grad(x)[0], 2.0 * x0 + 1.0, "x = %g: dy/dx = %.17g, want %.17g", x0,
                     sl_grad(x)[0], 2.0 * x0 + 1.0);
        sl_tape_free(t);
    }
}

/* A diamond: a = 2x, b = sin x, c = a*b, y = c + a
 * dy/dx = 2 sin x + 2x cos x + 2; the intermediate a gets b + 1. */
Test(tape, diamond_graph) {
    const double x0 = 0.7;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, x0, SL_GRAD), *two = sl_scalar(t, 2.0, 0);
    sl_var *a = sl_mul(t, two, x), *b = sl_sin(t, x);
    sl_var *c = sl_mul(t, a, b), *y = sl_add(t, c, a);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    double want = 2 * sin(x0) + 2 * x0 * cos(x0) + 2;
    cr_expect(near(sl_grad(x)[0], want, 1e-15, 0), "%.17g vs %.17g", sl_grad(x)[0], want);
    cr_expect(near(sl_grad(a)[0], sin(x0) + 1.0, 1e-15, 0));
    cr_expect(near(sl_grad(b)[0], 2 * x0, 1e-15, 0));
    cr_expect_eq(sl_grad(c)[0], 1.0);
    cr_expect_eq(sl_grad(y)[0], 1.0);
    cr_expect_null(sl_grad(two));
    sl_tape_free(t);
}

/* Leaves accumulate across sl_backward calls (as PyTorch); op nodes are
 * recomputed; sl_zero_grad resets. */
Test(tape, leaf_gradients_add_across_backward_calls) {
    const double x0 = 1.25;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, x0, SL_GRAD);
    sl_var *sq = sl_square(t, x), *y = sl_mul(t, sq, x); /* y = x^3 */
    const double g = 3 * x0 * x0, gsq = x0;              /* dy/dx, dy/dsq */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect(near(sl_grad(x)[0], g, 1e-15, 0));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect(near(sl_grad(x)[0], 2 * g, 1e-15, 0), "leaf: %.17g, want %.17g", sl_grad(x)[0],
              2 * g);
    cr_expect_eq(sl_grad(sq)[0], gsq, "an op node's gradient is recomputed, not added");
    cr_expect_eq(sl_grad(y)[0], 1.0);
    sl_zero_grad(t);
    cr_expect_eq(sl_grad(x)[0], 0.0);
    cr_expect_eq(sl_grad(sq)[0], 0.0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect(near(sl_grad(x)[0], g, 1e-15, 0));
    sl_tape_free(t);
}

Test(tape, unused_grad_leaf_has_zero_gradient) {
    sl_tape *t = sl_tape_new();
    int d3[] = {3};
    double v[3] = {1, 2, 3};
    sl_var *x = sl_scalar(t, 2.0, SL_GRAD), *u = sl_input(t, 1, d3, v, SL_GRAD);
    sl_var *y = sl_exp(t, x);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_assert_not_null(sl_grad(u), "an SL_GRAD leaf y does not use reads zeros, not NULL");
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(u)[i], 0.0);
    cr_expect(near(sl_grad(x)[0], exp(2.0), 1e-15, 0));
    sl_tape_free(t);
    /* also when y depends on no gradient leaf at all */
    t = sl_tape_new();
    u = sl_input(t, 1, d3, v, SL_GRAD);
    sl_var *c = sl_scalar(t, 1.0, 0);
    y = sl_exp(t, c);
    cr_expect_eq(sl_backward(t, y), SL_OK);
    cr_assert_not_null(sl_grad(u));
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(u)[i], 0.0);
    cr_expect_null(sl_grad(y));
    sl_tape_free(t);
}

Test(tape, nodes_needing_no_gradient_have_none) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 0.5, SL_GRAD), *c = sl_scalar(t, 3.0, 0);
    sl_var *k = sl_exp(t, c); /* constant subgraph */
    sl_var *y = sl_mul(t, sl_sin(t, x), k);
    cr_expect_eq(sl_requires_grad(x), 1);
    cr_expect_eq(sl_requires_grad(c), 0);
    cr_expect_eq(sl_requires_grad(k), 0);
    cr_expect_eq(sl_requires_grad(y), 1);
    cr_expect_null(sl_grad(x), "no gradient before the first backward");
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_null(sl_grad(c));
    cr_expect_null(sl_grad(k));
    cr_expect(near(sl_grad(x)[0], cos(0.5) * exp(3.0), 1e-15, 0));
    sl_tape_free(t);
}

/* 10^6 nodes x_{k+1} = x_k * c: no recursion anywhere, and the derivative is
 * c^(10^6) (pow, in the test). */
Test(tape, million_node_product_chain) {
    const double c0 = 1.0000001, x0 = 1.5;
    const int n = 1000000;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, x0, SL_GRAD), *c = sl_scalar(t, c0, 0), *y = x;
    for (int i = 0; i < n; i++) y = sl_mul(t, y, c);
    cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    cr_assert_eq(sl_tape_size(t), (size_t)n + 2);
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    const double want = pow(c0, n); /* ~ e^0.1 */
    cr_expect(near(sl_grad(x)[0], want, 1e-9, 0), "d/dx = %.17g, want %.17g", sl_grad(x)[0], want);
    cr_expect(near(sl_item(y), x0 * want, 1e-9, 0), "y = %.17g, want %.17g", sl_item(y), x0 * want);
    cr_expect_null(sl_grad(c));
    sl_tape_free(t);
}

/* 10^6 nodes alternating y = y + c and y = tanh(y): records, back-propagates,
 * and matches a plain loop in the test (value, and the product of the local
 * slopes 1 - tanh^2). */
Test(tape, million_node_add_tanh_chain) {
    const int half = 500000;
    const double x0 = 0.8, c0 = 1e-7;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, x0, SL_GRAD), *c = sl_scalar(t, c0, 0), *y = x;
    double z = x0, d = 1.0;
    for (int i = 0; i < half; i++) {
        y = sl_tanh(t, sl_add(t, y, c));
        z = tanh(z + c0);
        d *= 1.0 - z * z;
    }
    cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    cr_assert_eq(sl_tape_size(t), 2 * (size_t)half + 2);
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    cr_assert_gt(d, 0.0, "the reference slope must not underflow (test design)");
    cr_expect(near(sl_item(y), z, 1e-12, 0), "y = %.17g, want %.17g", sl_item(y), z);
    cr_expect(near(sl_grad(x)[0], d, 1e-6, 0), "d/dx = %.17g, want %.17g", sl_grad(x)[0], d);
    sl_tape_free(t);
}

/* ---------------------------------------------------------------- replay */

/* f(W, x, b) = sum(tanh(W x + b)), recorded on a fresh tape. */
static sl_var *record_f(sl_tape *t, const double *W, const double *x, const double *b,
                        sl_var **leaves) {
    int dw[] = {3, 2}, dx[] = {2, 1}, db[] = {3, 1};
    leaves[0] = sl_input(t, 2, dw, W, SL_GRAD);
    leaves[1] = sl_input(t, 2, dx, x, SL_GRAD);
    leaves[2] = sl_input(t, 2, db, b, SL_GRAD);
    sl_var *h = sl_tanh(t, sl_add(t, sl_matmul(t, leaves[0], leaves[1]), leaves[2]));
    return sl_sum(t, h, SL_ALL, 0);
}

/* The same function by hand, with its gradient. */
static double f_by_hand(const double *W, const double *x, const double *b, double *dW, double *dx,
                        double *db) {
    double y = 0;
    dx[0] = dx[1] = 0;
    for (int i = 0; i < 3; i++) {
        double h = tanh(W[2 * i] * x[0] + W[2 * i + 1] * x[1] + b[i]), s = 1 - h * h;
        y += h;
        dW[2 * i] = s * x[0];
        dW[2 * i + 1] = s * x[1];
        dx[0] += s * W[2 * i];
        dx[1] += s * W[2 * i + 1];
        db[i] = s;
    }
    return y;
}

Test(tape, forward_replay_matches_fresh_recording) {
    double W[6] = {0.1, -0.4, 0.7, 0.2, -1.1, 0.5}, x[2] = {0.3, -0.8}, b[3] = {0.05, -0.2, 0.3};
    double W2[6] = {1.0, 0.5, -0.3, 0.9, 0.2, -0.6}, x2[2] = {-1.2, 0.4}, b2[3] = {0.1, 0.2, -0.3};
    sl_tape *t = sl_tape_new();
    sl_var *L[3];
    sl_var *y = record_f(t, W, x, b, L);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const size_t nodes = sl_tape_size(t);
    /* new leaf values, replay */
    memcpy(sl_leaf_data(L[0]), W2, sizeof W2);
    memcpy(sl_leaf_data(L[1]), x2, sizeof x2);
    memcpy(sl_leaf_data(L[2]), b2, sizeof b2);
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_expect_eq(sl_tape_size(t), nodes, "replay records nothing");
    /* a fresh recording of the same function on the new values */
    sl_tape *f = sl_tape_new();
    sl_var *M[3];
    sl_var *yf = record_f(f, W2, x2, b2, M);
    cr_expect_eq(sl_item(y), sl_item(yf), "replay %.17g vs fresh %.17g", sl_item(y), sl_item(yf));
    double dW[6], dx[2], db[3];
    double yh = f_by_hand(W2, x2, b2, dW, dx, db);
    cr_expect(near(sl_item(y), yh, 1e-14, 1e-15));
    /* gradients after replay + backward */
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_assert_eq(sl_backward(f, yf), SL_OK);
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < sl_numel(L[k]); i++)
            cr_expect_eq(sl_grad(L[k])[i], sl_grad(M[k])[i], "leaf %d elem %zu", k, i);
    for (int i = 0; i < 6; i++) cr_expect(near(sl_grad(L[0])[i], dW[i], 1e-14, 1e-15));
    for (int i = 0; i < 2; i++) cr_expect(near(sl_grad(L[1])[i], dx[i], 1e-14, 1e-15));
    for (int i = 0; i < 3; i++) cr_expect(near(sl_grad(L[2])[i], db[i], 1e-14, 1e-15));
    /* op nodes have no writable leaf data */
    cr_expect_null(sl_leaf_data(y));
    sl_tape_free(f);
    sl_tape_free(t);
}

/* --------------------------------------------------------------- clearing */

Test(tape, clear_keeps_arena_and_resets_status) {
    double W[6] = {0.1, -0.4, 0.7, 0.2, -1.1, 0.5}, x[2] = {0.3, -0.8}, b[3] = {0.05, -0.2, 0.3};
    sl_tape *t = sl_tape_new();
    sl_var *L[3];
    sl_var *y = record_f(t, W, x, b, L);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const double y0 = sl_item(y);
    const size_t bytes = sl_tape_bytes(t), nodes = sl_tape_size(t);
    cr_assert_gt(bytes, 0);
    for (int round = 0; round < 5; round++) {
        sl_tape_clear(t);
        cr_expect_eq(sl_tape_size(t), 0);
        cr_expect_eq(sl_tape_bytes(t), bytes, "clear must keep the memory");
        y = record_f(t, W, x, b, L);
        cr_assert_eq(sl_backward(t, y), SL_OK);
        cr_expect_eq(sl_item(y), y0);
        cr_expect_eq(sl_tape_size(t), nodes);
        cr_expect_eq(sl_tape_bytes(t), bytes, "round %d: %zu bytes, was %zu", round,
                     sl_tape_bytes(t), bytes);
    }
    /* clear forgets the error */
    sl_tape_fail(t, SL_ESHAPE, "boom");
    sl_tape_clear(t);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    cr_expect_null(sl_tape_error(t));
    y = record_f(t, W, x, b, L);
    cr_expect_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_item(y), y0);
    sl_tape_clear(NULL);
    sl_tape_free(t);
}

/* A clear-and-re-record loop over many steps allocates nothing new: the
 * allocator is called only during the first step. */
Test(tape, clear_loop_allocates_nothing_after_first_step) {
    counting_alloc c = {0};
    sl_allocator a = counting_allocator(&c);
    sl_tape *t = sl_tape_new_with(&a);
    double W[6] = {0.1, -0.4, 0.7, 0.2, -1.1, 0.5}, x[2] = {0.3, -0.8}, b[3] = {0.05, -0.2, 0.3};
    sl_var *L[3];
    long calls = 0;
    for (int step = 0; step < 20; step++) {
        sl_tape_clear(t);
        sl_var *y = record_f(t, W, x, b, L);
        cr_assert_eq(sl_backward(t, y), SL_OK);
        if (step == 0) calls = c.calls;
    }
    cr_expect_eq(c.calls, calls, "%ld allocator calls after the first step", c.calls - calls);
    sl_tape_free(t);
    cr_expect_eq(c.live, 0);
}

/* -------------------------------------------------------------- parameters */

Test(tape, params_outlive_clear_and_accumulate) {
    sl_params *ps = sl_params_new();
    int d3[] = {3};
    const double w0[3] = {0.5, -1.0, 2.0}, xv[3] = {1.0, 2.0, -3.0};
    sl_param *w = sl_param_new(ps, "w", 1, d3, w0);
    cr_assert_not_null(w);
    sl_tape *t = sl_tape_new();
    /* y = sum(w * x): dy/dw = x */
    sl_var *wv = sl_use(t, w), *x = sl_input(t, 1, d3, xv, 0);
    cr_expect_eq(sl_requires_grad(wv), 1);
    cr_expect_eq(sl_value(wv), sl_param_value(w), "sl_use points at the parameter (no copy)");
    sl_var *y = sl_sum(t, sl_mul(t, wv, x), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_item(y), 0.5 - 2.0 - 6.0);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_param_grad(w)[i], xv[i]);
    /* the tape is cleared; the parameter lives on and keeps accumulating */
    sl_tape_clear(t);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_param_value(w)[i], w0[i]);
    wv = sl_use(t, w);
    x = sl_input(t, 1, d3, xv, 0);
    y = sl_sum(t, sl_mul(t, wv, x), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_param_grad(w)[i], 2 * xv[i]);
    /* an optimiser-like update: sl_forward sees the new values */
    for (int i = 0; i < 3; i++) sl_param_value(w)[i] -= 0.1 * sl_param_grad(w)[i];
    cr_assert_eq(sl_forward(t), SL_OK);
    double want = 0;
    for (int i = 0; i < 3; i++) want += (w0[i] - 0.2 * xv[i]) * xv[i];
    cr_expect(near(sl_item(y), want, 1e-15, 1e-15), "%.17g vs %.17g", sl_item(y), want);
    /* sl_zero_grad on the tape zeroes the parameter's gradient too */
    sl_zero_grad(t);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_param_grad(w)[i], 0.0);
    sl_tape_free(t);
    /* the store survives the tape */
    cr_expect_eq(sl_params_get(ps, "w"), w);
    sl_params_free(ps);
}

/* ----------------------------------------------------------- out of memory */

/* The graph of the fault test: inputs, then OOM_LAYERS x tanh(W h + b), a sum
 * and backward. Its values outgrow several arena chunks, so allocations fail
 * inside different ops (and in the gradient sweep) as N grows. Returns the
 * name of the call during which the tape first failed ("" if none). */
#define OOM_N 56
#define OOM_LAYERS 8
static const char *oom_graph(sl_tape *t, double *out) {
    static double W[OOM_N * OOM_N], X[OOM_N * OOM_N], B[OOM_N];
    for (int i = 0; i < OOM_N * OOM_N; i++) {
        W[i] = 0.02 * (double)((i * 7) % 13 - 6);
        X[i] = 0.1 * (double)((i * 5) % 11 - 5);
    }
    for (int i = 0; i < OOM_N; i++) B[i] = 0.1 * (double)(i % 3 - 1);
    int dw[] = {OOM_N, OOM_N}, db[] = {OOM_N, 1};
    const char *failed = "";
#define STEP(name, expr)                                                                           \
    expr;                                                                                          \
    if (!failed[0] && sl_tape_status(t) != SL_OK) failed = name;
    STEP("sl_input", sl_var *w = sl_input(t, 2, dw, W, SL_GRAD))
    STEP("sl_input", sl_var *x = sl_input(t, 2, dw, X, SL_GRAD))
    STEP("sl_input", sl_var *b = sl_input(t, 2, db, B, SL_GRAD))
    sl_var *h = x;
    for (int l = 0; l < OOM_LAYERS; l++) {
        STEP("sl_matmul", h = sl_matmul(t, w, h))
        STEP("sl_add", h = sl_add(t, h, b))
        STEP("sl_tanh", h = sl_tanh(t, h))
    }
    STEP("sl_sum", sl_var *y = sl_sum(t, h, SL_ALL, 0))
    STEP("sl_backward", int rc = sl_backward(t, y))
#undef STEP
    if (failed[0]) {
        cr_expect_eq(rc, SL_ENOMEM, "sl_backward returns the sticky error");
        if (strcmp(failed, "sl_backward") != 0) cr_expect_null(y, "the poison propagates");
    } else {
        cr_expect_eq(rc, SL_OK);
        *out = sl_item(y) + sl_grad(w)[0] + sl_grad(x)[1] + sl_grad(b)[2];
    }
    return failed;
}

/* The scalar-node version: a chain of scalar ops long enough to take several
 * arena chunks and node-list growths, then tensor ops over scalar nodes
 * (views) and back. */
#define OOM_CHAIN 6000
static const char *oom_scalar_graph(sl_tape *t, double *out) {
    static const double V[3] = {0.5, -1.0, 2.0};
    const char *failed = "";
#define STEP(name, expr)                                                                           \
    expr;                                                                                          \
    if (!failed[0] && sl_tape_status(t) != SL_OK) failed = name;
    STEP("sl_scalar", sl_var *a = sl_scalar(t, 0.3, SL_GRAD))
    STEP("sl_scalar", sl_var *b = sl_scalar(t, 1.1, SL_GRAD))
    sl_var *h = a;
    for (int k = 0; k < OOM_CHAIN; k++) {
        if (k % 3 == 0) {
            STEP("sl_mul", h = sl_mul(t, h, b))
        } else if (k % 3 == 1) {
            STEP("sl_tanh", h = sl_tanh(t, h))
        } else {
            STEP("sl_add", h = sl_add(t, h, a))
        }
    }
    STEP("sl_input", sl_var *v = sl_input(t, 1, (int[]){3}, V, SL_GRAD))
    STEP("sl_mul", sl_var *p = sl_mul(t, v, h)) /* a view of h */
    STEP("sl_sum", sl_var *s = sl_sum(t, p, SL_ALL, 0))
    STEP("sl_add", sl_var *y = sl_add(t, s, b)) /* a tensor rank-0 node and a view of b */
    STEP("sl_backward", int rc = sl_backward(t, y))
#undef STEP
    if (failed[0]) {
        cr_expect_eq(rc, SL_ENOMEM, "sl_backward returns the sticky error");
        if (strcmp(failed, "sl_backward") != 0) cr_expect_null(y, "the poison propagates");
    } else {
        cr_expect_eq(rc, SL_OK);
        *out = sl_item(y) + sl_grad(a)[0] + sl_grad(b)[0] + sl_grad(v)[1];
    }
    return failed;
}

/* Run graph with an allocator that fails at allocation N, for N = 1, 2, ...
 * until one run sees no failure: every failure must be a clean SL_ENOMEM
 * named after the call that met it, leak nothing, and leave a tape that
 * records the graph again after sl_tape_clear. */
static void every_allocation(const char *(*graph)(sl_tape *, double *)) {
    double reference = NAN;
    {
        sl_tape *t = sl_tape_new();
        cr_assert_str_eq(graph(t, &reference), "");
        sl_tape_free(t);
    }
    int failures_seen = 0, in_op = 0, in_backward = 0;
    for (long n = 1;; n++) {
        cr_assert_lt(n, 10000, "the graph never succeeded");
        counting_alloc c = {.fail_at = n};
        sl_allocator a = counting_allocator(&c);
        sl_tape *t = sl_tape_new_with(&a);
        if (!t) {
            cr_expect_eq(c.failures, 1);
            cr_expect_eq(c.live, 0, "N = %ld: sl_tape_new_with leaked", n);
            failures_seen++;
            continue;
        }
        double v = NAN;
        const char *failed = graph(t, &v);
        if (c.failures == 0) { /* the allocator never failed: done */
            cr_expect_str_eq(failed, "");
            cr_expect_eq(v, reference, "a run without faults gives the same numbers");
            sl_tape_free(t);
            cr_expect_eq(c.live, 0);
            break;
        }
        failures_seen++;
        if (!strcmp(failed, "sl_backward"))
            in_backward = 1;
        else if (strcmp(failed, "sl_input") != 0 && strcmp(failed, "sl_scalar") != 0 && failed[0])
            in_op = 1;
        cr_expect_eq(sl_tape_status(t), SL_ENOMEM, "N = %ld: status %s (%s)", n,
                     sl_status_name(sl_tape_status(t)), sl_tape_error(t));
        const char *m = sl_tape_error(t);
        cr_expect(failed[0] != '\0', "N = %ld: no call reported the failure", n);
        cr_expect(m && strncmp(m, failed, strlen(failed)) == 0 && m[strlen(failed)] == ':',
                  "N = %ld: message \"%s\" must start with \"%s:\"", n, m, failed);
        cr_expect(contains(m, "out of memory"), "N = %ld: %s", n, m);
        /* the tape recovers after a clear once memory is back */
        sl_tape_clear(t);
        cr_expect_eq(sl_tape_status(t), SL_OK);
        double again = NAN;
        cr_expect_str_eq(graph(t, &again), "", "N = %ld: recording after clear failed: %s", n,
                         sl_tape_error(t));
        cr_expect_eq(again, reference);
        sl_tape_free(t);
        cr_expect_eq(c.live, 0, "N = %ld: %ld blocks leaked", n, c.live);
    }
    cr_expect_geq(failures_seen, 5, "only %d failure points: the graph is too small",
                  failures_seen);
    cr_expect(in_op, "no allocation failed inside an op");
    /* gradient buffers come with their nodes: the sweep itself allocates nothing */
    cr_expect(!in_backward, "an allocation failed inside sl_backward");
}

Test(tape, out_of_memory_at_every_allocation) { every_allocation(oom_graph); }

Test(tape, out_of_memory_at_every_allocation_scalar_nodes) { every_allocation(oom_scalar_graph); }

Test(tape, allocator_without_functions_is_refused) {
    sl_allocator none = {NULL, NULL, NULL};
    cr_expect_null(sl_tape_new_with(&none));
    cr_expect_null(sl_params_new_with(&none));
}

Test(tape, params_out_of_memory_at_every_allocation) {
    static const char *names[] = {"w1", "b1", "w2", "b2"};
    int d43[] = {4, 3}, d4[] = {4}, d24[] = {2, 4}, d2[] = {2};
    const int *dims[] = {d43, d4, d24, d2};
    const int ndims[] = {2, 1, 2, 1};
    int failures_seen = 0;
    for (long n = 1;; n++) {
        cr_assert_lt(n, 1000, "never succeeded");
        counting_alloc c = {.fail_at = n};
        sl_allocator a = counting_allocator(&c);
        sl_params *ps = sl_params_new_with(&a);
        if (!ps) {
            cr_expect_eq(c.live, 0);
            failures_seen++;
            continue;
        }
        size_t made = 0;
        for (int i = 0; i < 4; i++) {
            double init[12];
            for (int k = 0; k < 12; k++) init[k] = i + 0.1 * k;
            sl_param *p = sl_param_new(ps, names[i], ndims[i], dims[i], init);
            if (!p) {
                const char *m = sl_params_error(ps);
                cr_expect(contains(m, "out of memory") && contains(m, names[i]) &&
                              contains(m, "sl_param_new"),
                          "N = %ld: %s", n, m);
                cr_expect_null(sl_params_get(ps, names[i]));
            } else {
                made++;
                cr_expect_null(sl_params_error(ps));
                cr_expect_eq(sl_param_value(p)[sl_param_numel(p) - 1], init[sl_param_numel(p) - 1]);
            }
        }
        cr_expect_eq(sl_params_count(ps), made);
        /* iteration sees exactly the parameters that were made */
        size_t seen = 0;
        for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p)) seen++;
        cr_expect_eq(seen, made);
        sl_params_free(ps);
        cr_expect_eq(c.live, 0, "N = %ld: %ld blocks leaked", n, c.live);
        if (c.failures == 0) {
            cr_expect_eq(made, 4);
            break;
        }
        failures_seen++;
        cr_expect_eq(made, 3, "N = %ld: only one call failed", n);
    }
    cr_expect_geq(failures_seen, 4);
}

/* ---------------------------------------------------------------- sl_apply */

static void copy_forward(sl_var *out) {
    memcpy(sl_out_data(out), sl_value(sl_in(out, 0)), sl_numel(out) * sizeof(double));
}
static void copy_backward(sl_var *out) {
    double *dx = sl_grad_data(sl_in(out, 0));
    if (dx)
        for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i];
}

/* sl_apply takes any descriptor, registered or not: a malformed one is a
 * tape error, never a crash or an overrun of the node's 3 input slots. */
Test(tape, apply_validates_the_descriptor) {
    const sl_op good = {
        .name = "t_copy", .arity = 1, .forward = copy_forward, .backward = copy_backward};
    struct {
        sl_op op;
        int nin;
    } cases[] = {
        {good, 1}, {good, 1}, {good, 1}, {good, 0}, {good, 4},
    };
    cases[0].op.forward = NULL;
    cases[1].op.backward = NULL;
    cases[2].op.arity = 0, cases[2].nin = 0;
    cases[3].op.arity = 0;
    cases[4].op.arity = 4;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_scalar(t, 1.0, SL_GRAD);
        sl_var *in[4] = {x, x, x, x};
        cr_expect_null(sl_apply(t, &cases[i].op, cases[i].nin, in, NULL), "case %zu", i);
        cr_expect_eq(sl_tape_status(t), SL_EARG, "case %zu", i);
        cr_expect(contains(sl_tape_error(t), "sl_t_copy"), "case %zu: %s", i, sl_tape_error(t));
        cr_expect_eq(sl_tape_size(t), 1, "case %zu: nothing recorded", i);
        sl_tape_free(t);
    }
    /* and the good one works unregistered */
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 2.0, SL_GRAD);
    sl_var *y = sl_apply(t, &good, 1, &x, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_item(y), 2.0);
    cr_expect_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 1.0);
    /* NULL op and NULL inputs array */
    cr_expect_null(sl_apply(t, NULL, 1, &x, NULL));
    cr_expect(contains(sl_tape_error(t), "sl_apply"), "%s", sl_tape_error(t));
    sl_tape_free(t);
    t = sl_tape_new();
    cr_expect_null(sl_apply(t, &good, 1, NULL, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    sl_tape_free(t);
}

/* A shape whose values would need petabytes: refused or out of memory,
 * never a crash (the test allocator refuses absurd sizes). */
Test(tape, absurd_shapes_fail_cleanly) {
    counting_alloc c = {0};
    sl_allocator a = counting_allocator(&c);
    sl_tape *t = sl_tape_new_with(&a);
    int big[] = {1 << 20, 1 << 20, 1 << 10};
    cr_expect_null(sl_input(t, 3, big, NULL, 0));
    cr_expect_eq(sl_tape_status(t), SL_ENOMEM, "%s", sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "sl_input") &&
                  contains(sl_tape_error(t), "[1048576,1048576,1024]"),
              "%s", sl_tape_error(t));
    sl_tape_free(t);
    t = sl_tape_new_with(&a);
    int overflow[] = {2147483647, 2147483647, 2147483647, 2147483647};
    cr_expect_null(sl_input(t, 4, overflow, NULL, 0));
    cr_expect_eq(sl_tape_status(t), SL_EARG, "%s", sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "sl_input"), "%s", sl_tape_error(t));
    sl_tape_free(t);
    cr_expect_eq(c.live, 0);
}

/* Broadcasting shapes that are each valid can still give a shape whose
 * element count overflows (here 2^63 elements from three inputs of 2^21):
 * refused when recorded, not recorded with a buffer too small for it. */
static void t3_fwd(sl_var *out) { (void)out; }
static void t3_bwd(sl_var *out) { (void)out; }
Test(tape, broadcast_shape_overflow_is_refused) {
    static const sl_op three = {
        .name = "t_three", .arity = 3, .forward = t3_fwd, .backward = t3_bwd};
    sl_tape *t = sl_tape_new();
    const int n = 1 << 21;
    sl_var *in[3] = {sl_input(t, 4, (int[]){n, 1, 1, 1}, NULL, 0),
                     sl_input(t, 3, (int[]){n, 1, 1}, NULL, 0),
                     sl_input(t, 2, (int[]){n, 1}, NULL, 0)};
    cr_assert(in[0] && in[1] && in[2], "%s", sl_tape_error(t));
    cr_expect_null(sl_apply(t, &three, 3, in, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG, "%s", sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "t_three") && contains(sl_tape_error(t), "too large"),
              "%s", sl_tape_error(t));
    sl_tape_free(t);
}

/* internal.h: every value buffer of 4 or more elements is 32-byte aligned,
 * and so is its gradient (same arena block). Buffers of 1-3 elements are
 * packed at 8 bytes on purpose: vector kernels gain nothing from aligning
 * them, and the padding tripled the size of a scalar node. */
Test(tape, value_and_gradient_buffers_are_aligned) {
    sl_tape *t = sl_tape_new();
    sl_var *v[40];
    int k = 0;
    for (int n = 1; n <= 20; n++) {
        v[k] = sl_input(t, 1, (int[]){n}, NULL, SL_GRAD);
        v[k + 1] = sl_exp(t, v[k]);
        k += 2;
    }
    sl_var *y = sl_scalar(t, 0, SL_GRAD);
    for (int i = 1; i < k; i += 2) y = sl_add(t, y, sl_sum(t, v[i], SL_ALL, 0));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < k; i++) {
        const size_t n = sl_numel(v[i]);
        const size_t align = n >= 4 ? 32 : 8;
        cr_expect_eq((uintptr_t)sl_value(v[i]) % align, 0, "node %d value (%zu elements)", i, n);
        cr_expect_eq((uintptr_t)sl_grad(v[i]) % align, 0, "node %d grad (%zu elements)", i, n);
    }
    sl_tape_free(t);
}

/* A gradient leaf recorded after y still reads zeros, and nodes recorded
 * after y are not run backward. */
Test(tape, nodes_after_the_root) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 2.0, SL_GRAD);
    sl_var *y = sl_square(t, x);
    sl_var *later = sl_scalar(t, 1.0, SL_GRAD);
    sl_var *z = sl_mul(t, y, later); /* uses y, recorded after it */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 4.0, "z must not feed back into x");
    cr_assert_not_null(sl_grad(later));
    cr_expect_eq(sl_grad(later)[0], 0.0);
    cr_expect_eq(sl_grad(z)[0], 0.0);
    /* backward from a leaf itself: dx/dx = 1 */
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, x), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 1.0);
    sl_tape_free(t);
}

/* ------------------------------------------------------------ forward mode */

/* sl_jvp: the directional derivative along a tangent, from the closed form. */
Test(tape, jvp_directional_derivative) {
    const double xs[3] = {0.3, -1.2, 2.0}, u[3] = {1.0, 0.5, -2.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, xs, SL_GRAD);
    sl_var *y = sl_mul(t, sl_sin(t, x), x); /* y = x sin x */
    double dy[3];
    const double *tans[1] = {u};
    cr_assert_eq(sl_jvp(t, y, 1, &x, tans, dy), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 3; i++) {
        double want = (cos(xs[i]) * xs[i] + sin(xs[i])) * u[i];
        cr_expect(near(dy[i], want, 1e-15, 1e-15), "dy[%d] = %.17g, want %.17g", i, dy[i], want);
    }
    sl_tape_free(t);
}

static void cube_fwd(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    for (size_t i = 0; i < sl_numel(out); i++) sl_out_data(out)[i] = x[i] * x[i] * x[i];
}
static void cube_bwd(sl_var *out) {
    double *dx = sl_grad_data(sl_in(out, 0));
    const double *x = sl_value(sl_in(out, 0));
    if (dx)
        for (size_t i = 0; i < sl_numel(out); i++) dx[i] += sl_grad(out)[i] * 3 * x[i] * x[i];
}
static void cube_tan(sl_var *out) {
    const double *dx = sl_tangent_data(sl_in(out, 0)), *x = sl_value(sl_in(out, 0));
    double *dout = sl_tangent_data(out);
    if (!dout) return; /* would leave the tangent unset: caught below */
    for (size_t i = 0; i < sl_numel(out); i++) dout[i] = dx ? 3 * x[i] * x[i] * dx[i] : 0.0;
}

/* A user op's tangent rule reaches its output through the public accessor. */
Test(tape, jvp_through_a_user_op) {
    static const sl_op cube = {
        .name = "t_cube", .arity = 1, .forward = cube_fwd, .backward = cube_bwd, .jvp = cube_tan};
    const double xs[2] = {1.5, -0.5}, u[2] = {2.0, 3.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){2}, xs, SL_GRAD);
    sl_var *y = sl_exp(t, sl_apply(t, &cube, 1, &x, NULL)); /* e^(x^3) */
    double dy[2] = {NAN, NAN};
    const double *tans[1] = {u};
    cr_assert_eq(sl_jvp(t, y, 1, &x, tans, dy), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < 2; i++) {
        double x3 = xs[i] * xs[i] * xs[i], want = exp(x3) * 3 * xs[i] * xs[i] * u[i];
        cr_expect(near(dy[i], want, 1e-14, 0), "dy[%d] = %.17g, want %.17g", i, dy[i], want);
    }
    sl_tape_free(t);
}

/* Tangents live beside the node list: they follow the tape as it grows
 * between sl_jvp calls, and a cleared and re-recorded tape starts afresh. */
Test(tape, jvp_after_growth_and_clear) {
    sl_tape *t = sl_tape_new();
    for (int round = 0; round < 3; round++) {
        const double x0 = 0.25 + round, u = 1.0 + round;
        sl_var *x = sl_scalar(t, x0, SL_GRAD), *y = x;
        double dy = NAN;
        const double *tans[1] = {&u};
        for (int len = 1; len <= 3; len++) {
            for (int i = 0; i < 900 * len; i++) y = sl_add(t, y, x); /* y = (1 + k) x */
            cr_assert_eq(sl_jvp(t, y, 1, &x, tans, &dy), SL_OK, "%s", sl_tape_error(t));
            /* every node after x is an add of x: y = (1 + adds) x */
            const double adds = (double)(sl_tape_size(t) - 1);
            cr_expect_eq(dy, (1.0 + adds) * u, "round %d len %d: %.17g", round, len, dy);
        }
        sl_tape_clear(t);
    }
    sl_tape_free(t);
}

/* An input recorded after y: its tangent does not reach y (zero), and a
 * second call with the same inputs is not mistaken for a repeated input (the
 * flag marking this call's inputs is cleared on every node, not only up to
 * y). Scalar and tensor leaves. */
Test(tape, jvp_inputs_recorded_after_the_root) {
    for (int scalar = 0; scalar <= 1; scalar++) {
        sl_tape *t = sl_tape_new();
        const double a = 0.5, b = 2.0, ua = 3.0, ub = -1.0;
        sl_var *x1 = scalar ? sl_scalar(t, a, SL_GRAD) : sl_input(t, 1, (int[]){1}, &a, SL_GRAD);
        sl_var *y = sl_exp(t, x1);
        sl_var *x2 = scalar ? sl_scalar(t, b, SL_GRAD) : sl_input(t, 1, (int[]){1}, &b, SL_GRAD);
        sl_var *in[2] = {x1, x2};
        const double *tans[2] = {&ua, &ub};
        for (int call = 0; call < 3; call++) {
            double dy = NAN;
            cr_assert_eq(sl_jvp(t, y, 2, in, tans, &dy), SL_OK, "scalar %d call %d: %s", scalar,
                         call, sl_tape_error(t));
            cr_expect(near(dy, exp(a) * ua, 1e-15, 0), "scalar %d call %d: dy = %.17g", scalar,
                      call, dy);
        }
        /* a root after both: both tangents reach it */
        sl_var *z = sl_mul(t, y, x2);
        double dz = NAN;
        cr_assert_eq(sl_jvp(t, z, 2, in, tans, &dz), SL_OK, "%s", sl_tape_error(t));
        cr_expect(near(dz, exp(a) * ua * b + exp(a) * ub, 1e-15, 0), "dz = %.17g", dz);
        /* an input really listed twice is still refused */
        sl_var *twice[2] = {x2, x2};
        cr_expect_eq(sl_jvp(t, z, 2, twice, tans, &dz), SL_EARG);
        cr_expect(contains(sl_tape_error(t), "inputs[1] is listed twice"), "%s", sl_tape_error(t));
        sl_tape_free(t);
    }
}

/* sl_jvp's argument errors say which argument is wrong. */
Test(tape, jvp_argument_errors_name_the_argument) {
    static const struct {
        int nin, inputs, tangents, dy;
        const char *msg;
    } cases[] = {
        {-3, 1, 1, 1, "sl_jvp: nin = -3, must be >= 0"},
        {1, 0, 1, 1, "sl_jvp: inputs is NULL (nin = 1)"},
        {1, 1, 0, 1, "sl_jvp: tangents is NULL (nin = 1)"},
        {1, 1, 1, 0, "sl_jvp: dy is NULL"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_tape *t = sl_tape_new();
        const double u = 1.0;
        sl_var *x = sl_scalar(t, 1.0, SL_GRAD), *y = sl_exp(t, x);
        const double *tans[1] = {&u};
        double dy;
        cr_expect_eq(sl_jvp(t, y, cases[c].nin, cases[c].inputs ? &x : NULL,
                            cases[c].tangents ? tans : NULL, cases[c].dy ? &dy : NULL),
                     SL_EARG);
        cr_expect_str_eq(sl_tape_error(t), cases[c].msg);
        sl_tape_free(t);
    }
}

/* Attributes: a node keeps a copy when any is non-zero, and reads a zero
 * set otherwise (leaves included). */
Test(tape, attributes_are_copied_when_non_zero) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){-1.0, 0.5, 2.0}, SL_GRAD);
    sl_var *a = sl_leaky_relu(t, x, 0.125), *b = sl_exp(t, x), *c = sl_leaky_relu(t, x, 0.0);
    cr_assert_not_null(a);
    cr_expect_eq(sl_attrs_of(a)->alpha, 0.125);
    cr_expect_neq(sl_attrs_of(a), sl_attrs_of(b));
    static const sl_attrs zero;
    const sl_var *zeros[] = {x, b, c};
    for (int i = 0; i < 3; i++) {
        cr_assert_not_null(sl_attrs_of(zeros[i]));
        cr_expect_eq(memcmp(sl_attrs_of(zeros[i]), &zero, sizeof zero), 0, "node %d", i);
    }
    cr_expect_eq(sl_value(a)[0], -0.125);
    cr_expect_eq(sl_value(c)[0], 0.0);
    sl_tape_free(t);
}

/* A NULL tape (sl_tape_new's failure, unchecked) has nowhere to keep an
 * error: ops return NULL, the sweeps SL_EARG, the readers their empty
 * answers, and nothing crashes. */
Test(tape, null_tape_is_refused_everywhere) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 2.0, SL_GRAD), *v = sl_input(t, 1, (int[]){3}, NULL, SL_GRAD);
    cr_expect_null(sl_scalar(NULL, 1.0, 0));
    cr_expect_null(sl_input(NULL, 1, (int[]){3}, NULL, 0));
    cr_expect_null(sl_exp(NULL, x));
    cr_expect_null(sl_mul(NULL, x, x));
    cr_expect_null(sl_sum(NULL, v, SL_ALL, 0));
    cr_expect_null(sl_slice(NULL, v, 0, 0, 1));
    cr_expect_eq(sl_backward(NULL, x), SL_EARG);
    cr_expect_eq(sl_forward(NULL), SL_EARG);
    const double one = 1.0, *tans[] = {&one};
    double dy;
    cr_expect_eq(sl_jvp(NULL, x, 1, &x, tans, &dy), SL_EARG);
    cr_expect_neq(sl_tape_status(NULL), SL_OK);
    cr_expect_not_null(sl_tape_error(NULL));
    cr_expect_eq(sl_tape_size(NULL), 0);
    cr_expect_eq(sl_tape_status(t), SL_OK, "the real tape saw none of it");
    sl_tape_free(t);
}
