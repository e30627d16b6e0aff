/*
 * test_reduce.c - sum, mean, max, min and logsumexp over every axis (also
 * negative), SL_ALL and keep-dims: output shapes as NumPy gives them, values
 * and seeded gradients against reference loops written here; ties in max
 * and min share the gradient (PyTorch's numbers), a NaN poisons its line,
 * infinities are values like any other; logsumexp stays finite for large
 * inputs; bad axes and keepdim values are tape errors that name the op, the
 * axis and the shape; min replays.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>

enum { SUM, MEAN, MAX, MIN, LSE };
static const char *const NAMES[] = {"sum", "mean", "max", "min", "logsumexp"};

static sl_var *reduce(sl_tape *t, int op, sl_var *x, int axis, int keepdim) {
    switch (op) {
    case SUM:
        return sl_sum(t, x, axis, keepdim);
    case MEAN:
        return sl_mean(t, x, axis, keepdim);
    case MAX:
        return sl_max(t, x, axis, keepdim);
    case MIN:
        return sl_min(t, x, axis, keepdim);
    default:
        return sl_logsumexp(t, x, axis, keepdim);
    }
}

/* Reference: reduce the elements of x (shape d, rank nd) selected by the
 * output position; `sel` lists the flat indices reduced into one output. */
static double ref_value(int op, const double *x, const size_t *sel, size_t len) {
    double s = 0, m = -INFINITY, lo = INFINITY;
    for (size_t j = 0; j < len; j++) {
        s += x[sel[j]];
        if (x[sel[j]] > m) m = x[sel[j]];
        if (x[sel[j]] < lo) lo = x[sel[j]];
    }
    switch (op) {
    case SUM:
        return s;
    case MEAN:
        return s / (double)len;
    case MAX:
        return m;
    case MIN:
        return lo;
    default: {
        double e = 0;
        for (size_t j = 0; j < len; j++) e += exp(x[sel[j]] - m);
        return m + log(e);
    }
    }
}

/* d out / d x[sel[j]] for the reference (values distinct: max and min are one-hot) */
static double ref_slope(int op, const double *x, const size_t *sel, size_t len, size_t j) {
    switch (op) {
    case SUM:
        return 1.0;
    case MEAN:
        return 1.0 / (double)len;
    case MAX: {
        size_t arg = 0;
        for (size_t i = 1; i < len; i++)
            if (x[sel[i]] > x[sel[arg]]) arg = i;
        return j == arg ? 1.0 : 0.0;
    }
    case MIN: {
        size_t arg = 0;
        for (size_t i = 1; i < len; i++)
            if (x[sel[i]] < x[sel[arg]]) arg = i;
        return j == arg ? 1.0 : 0.0;
    }
    default:
        return exp(x[sel[j]] - ref_value(LSE, x, sel, len));
    }
}

/* Check one op over x of shape dims (rank nd) along axis (SL_ALL or any
 * form), keepdim. */
static void check_reduce(int op, int nd, const int *dims, int axis, int keepdim) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    double x[120];
    for (size_t i = 0; i < n; i++) x[i] = sin(1.3 * (double)i + 0.4) * 2.0; /* distinct */
    int ax = axis == SL_ALL ? -1 : (axis < 0 ? axis + nd : axis);
    /* expected output shape (NumPy with keepdims) */
    int wn = 0, wd[SL_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        if (ax >= 0 && i != ax)
            wd[wn++] = dims[i];
        else if (keepdim)
            wd[wn++] = 1;
    }
    size_t nout = 1;
    for (int i = 0; i < nd; i++)
        if (ax >= 0 && i != ax) nout *= (size_t)dims[i];
    double g[120];
    for (size_t i = 0; i < nout; i++) g[i] = 0.5 + 0.75 * (double)i;

    sl_tape *t = sl_tape_new();
    sl_var *xv = sl_input(t, nd, dims, x, SL_GRAD);
    sl_var *y = reduce(t, op, xv, axis, keepdim);
    cr_assert_not_null(y, "%s axis %d keepdim %d: %s", NAMES[op], axis, keepdim, sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), wn, "%s axis %d keepdim %d: rank %d, want %d", NAMES[op], axis,
                 keepdim, sl_ndim(y), wn);
    for (int i = 0; i < wn; i++)
        cr_expect_eq(sl_dims(y)[i], wd[i], "%s axis %d keepdim %d: dim %d", NAMES[op], axis,
                     keepdim, i);
    cr_assert_eq(sl_numel(y), nout);
    cr_assert_eq(sl_backward_seed(t, y, g), SL_OK, "%s", sl_tape_error(t));

    /* strides of x */
    size_t st[SL_MAX_DIMS];
    size_t s = 1;
    for (int i = nd - 1; i >= 0; i--) st[i] = s, s *= (size_t)dims[i];
    double dx[120] = {0};
    /* walk the output positions: the multi-index over the kept axes */
    int idx[SL_MAX_DIMS] = {0};
    for (size_t o = 0; o < nout; o++) {
        size_t sel[120], len = 0;
        if (ax < 0) {
            for (size_t i = 0; i < n; i++) sel[len++] = i;
        } else {
            size_t base = 0;
            for (int i = 0; i < nd; i++)
                if (i != ax) base += (size_t)idx[i] * st[i];
            for (int j = 0; j < dims[ax]; j++) sel[len++] = base + (size_t)j * st[ax];
        }
        double want = ref_value(op, x, sel, len);
        cr_expect(near(sl_value(y)[o], want, 1e-14, 1e-14),
                  "%s axis %d: out[%zu] = %.17g, want %.17g", NAMES[op], axis, o, sl_value(y)[o],
                  want);
        for (size_t j = 0; j < len; j++) dx[sel[j]] += g[o] * ref_slope(op, x, sel, len, j);
        for (int i = nd - 1; i >= 0; i--) { /* next output position */
            if (i == ax) continue;
            if (++idx[i] < dims[i]) break;
            idx[i] = 0;
        }
    }
    for (size_t i = 0; i < n; i++)
        cr_expect(near(sl_grad(xv)[i], dx[i], 1e-13, 1e-14),
                  "%s axis %d keepdim %d: dx[%zu] = %.17g, want %.17g", NAMES[op], axis, keepdim, i,
                  sl_grad(xv)[i], dx[i]);
    sl_tape_free(t);
}

Test(reduce, every_axis_values_and_gradients) {
    static const int d234[] = {2, 3, 4}, d2325[] = {2, 3, 2, 5}, d5[] = {5}, d41[] = {4, 1};
    struct {
        int nd;
        const int *dims;
    } shapes[] = {{3, d234}, {4, d2325}, {1, d5}, {2, d41}, {0, NULL}};
    for (int op = SUM; op <= LSE; op++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int nd = shapes[s].nd;
            for (int keep = 0; keep <= 1; keep++) {
                check_reduce(op, nd, shapes[s].dims, SL_ALL, keep);
                for (int ax = -nd; ax < nd; ax++) check_reduce(op, nd, shapes[s].dims, ax, keep);
            }
        }
}

Test(reduce, keepdim_shapes_like_numpy) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 3, (int[]){2, 3, 4}, NULL, 0);
    sl_var *a = sl_sum(t, x, SL_ALL, 0), *b = sl_sum(t, x, SL_ALL, 1);
    sl_var *c = sl_mean(t, x, 1, 1), *d = sl_max(t, x, -1, 0);
    cr_assert_eq(sl_tape_status(t), SL_OK);
    cr_expect_eq(sl_ndim(a), 0, "sum over all axes is a scalar");
    cr_expect_eq(sl_ndim(b), 3, "keepdim with SL_ALL keeps every axis as 1");
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_dims(b)[i], 1);
    cr_expect_eq(sl_ndim(c), 3);
    cr_expect_eq(sl_dims(c)[0], 2);
    cr_expect_eq(sl_dims(c)[1], 1);
    cr_expect_eq(sl_dims(c)[2], 4);
    cr_expect_eq(sl_ndim(d), 2);
    cr_expect_eq(sl_dims(d)[0], 2);
    cr_expect_eq(sl_dims(d)[1], 3);
    sl_tape_free(t);
}

Test(reduce, max_ties_share_the_gradient) {
    sl_tape *t = sl_tape_new();
    const double v[3] = {1, 3, 3};
    sl_var *x = sl_input(t, 1, (int[]){3}, v, SL_GRAD);
    sl_var *y = sl_max(t, x, SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_item(y), 3.0);
    cr_expect_eq(sl_grad(x)[0], 0.0);
    cr_expect_eq(sl_grad(x)[1], 0.5);
    cr_expect_eq(sl_grad(x)[2], 0.5);
    sl_tape_free(t);
    /* along an axis: rows [2,2,2] and [1,5,0] with seed (6, 1) */
    t = sl_tape_new();
    const double m[6] = {2, 2, 2, 1, 5, 0}, g[2] = {6, 1};
    x = sl_input(t, 2, (int[]){2, 3}, m, SL_GRAD);
    y = sl_max(t, x, 1, 0);
    cr_assert_eq(sl_backward_seed(t, y, g), SL_OK);
    const double want[6] = {2, 2, 2, 0, 1, 0};
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_grad(x)[i], want[i], "dx[%d]", i);
    sl_tape_free(t);
}

Test(reduce, logsumexp_is_stable_for_large_inputs) {
    sl_tape *t = sl_tape_new();
    const double v[3] = {1000, 1001, 1002};
    sl_var *x = sl_input(t, 1, (int[]){3}, v, SL_GRAD);
    sl_var *y = sl_logsumexp(t, x, SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const double z = 1.0 + exp(-1.0) + exp(-2.0), want = 1002.0 + log(z);
    cr_expect(isfinite(sl_item(y)));
    cr_expect(near(sl_item(y), want, 1e-15, 0), "%.17g vs %.17g", sl_item(y), want);
    /* the gradient is the softmax: e^(x_i - 1002) / z, from the saved max and
     * sum, so it does not inherit out's rounding (ulp(1002) ~ 1.1e-13, which
     * e^(x - out), PyTorch's way, would carry) */
    const double sm[3] = {exp(-2.0) / z, exp(-1.0) / z, 1.0 / z};
    double total = 0;
    for (int i = 0; i < 3; i++) total += sl_grad(x)[i];
    cr_expect(near(total, 1.0, 1e-15, 0), "softmax sums to 1: %.17g", total);
    for (int i = 0; i < 3; i++)
        cr_expect(near(sl_grad(x)[i], sm[i], 1e-15, 0), "dx[%d] = %.17g, want %.17g", i,
                  sl_grad(x)[i], sm[i]);
    sl_tape_free(t);
    /* and for very negative inputs: no underflow to log(0) */
    t = sl_tape_new();
    const double w[2] = {-1000, -1000};
    x = sl_input(t, 1, (int[]){2}, w, SL_GRAD);
    y = sl_logsumexp(t, x, 0, 0);
    cr_expect(near(sl_item(y), -1000.0 + log(2.0), 1e-15, 0), "%.17g", sl_item(y));
    sl_tape_free(t);
}

/* Where out = m + log s rounds to a multiple of ulp(m), weights e^(x - out)
 * are wrong: two tied maxima of 1e17 would get 1 and 1. The softmax weights
 * from the saved m and s are exact: 1/2 each; [1e15, 1e15 - 1] (both exact
 * doubles, ulp 0.125) gives 1/(1 + e^-1) and e^-1/(1 + e^-1). Tangent too. */
Test(reduce, logsumexp_weights_exact_for_large_inputs) {
    const double cases[2][2] = {{1e17, 1e17}, {1e15, 1e15 - 1}};
    const double want[2][2] = {{0.5, 0.5}, {1 / (1 + exp(-1.0)), exp(-1.0) / (1 + exp(-1.0))}};
    for (int c = 0; c < 2; c++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 1, (int[]){2}, cases[c], SL_GRAD);
        sl_var *y = sl_logsumexp(t, x, 0, 0);
        cr_assert_eq(sl_backward(t, y), SL_OK);
        for (int i = 0; i < 2; i++)
            cr_expect(near(sl_grad(x)[i], want[c][i], 1e-15, 0), "case %d: dx[%d] = %.17g", c, i,
                      sl_grad(x)[i]);
        const double tv[2] = {1.0, -2.0}, *tans[] = {tv};
        double dy;
        cr_assert_eq(sl_jvp(t, y, 1, &x, tans, &dy), SL_OK);
        const double wdy = want[c][0] - 2.0 * want[c][1];
        cr_expect(near(dy, wdy, 1e-15, 1e-16), "case %d: tangent %.17g, want %.17g", c, dy, wdy);
        sl_tape_free(t);
    }
}

/* A +inf in the line: the value is +inf, the gradient NaN at the +inf and
 * 0 at every finite element, however large (e^(x - inf) = 0; PyTorch too). */
Test(reduce, logsumexp_with_plus_infinity) {
    const double v[3] = {INFINITY, 1e300, 710.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, v, SL_GRAD);
    sl_var *y = sl_logsumexp(t, x, 0, 0);
    cr_expect_eq(sl_item(y), INFINITY);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect(isnan(sl_grad(x)[0]));
    cr_expect_eq(sl_grad(x)[1], 0.0, "%g", sl_grad(x)[1]);
    cr_expect_eq(sl_grad(x)[2], 0.0, "%g", sl_grad(x)[2]);
    sl_tape_free(t);
}

Test(reduce, logsumexp_of_all_minus_infinity) {
    sl_tape *t = sl_tape_new();
    const double v[2] = {-INFINITY, -INFINITY};
    sl_var *x = sl_input(t, 1, (int[]){2}, v, 0);
    sl_var *y = sl_logsumexp(t, x, SL_ALL, 0);
    cr_expect(isinf(sl_item(y)) && sl_item(y) < 0, "log(0) = -inf, as NumPy: got %g", sl_item(y));
    sl_tape_free(t);
}

Test(reduce, max_propagates_nan) {
    sl_tape *t = sl_tape_new();
    const double v[3] = {1, NAN, 3};
    sl_var *x = sl_input(t, 1, (int[]){3}, v, SL_GRAD);
    sl_var *y = sl_max(t, x, SL_ALL, 0);
    cr_expect(isnan(sl_item(y)), "max with a NaN is NaN (NumPy/PyTorch)");
    cr_expect_eq(sl_backward(t, y), SL_OK);
    /* no element equals a NaN max: the gradient is NaN on the whole line, as
     * its tangent is and as torch.amax's g * 0 / 0 */
    for (int i = 0; i < 3; i++) cr_expect(isnan(sl_grad(x)[i]), "dx[%d] = %g", i, sl_grad(x)[i]);
    const double tv[3] = {1, 1, 1}, *tans[] = {tv};
    double dy;
    cr_assert_eq(sl_jvp(t, y, 1, &x, tans, &dy), SL_OK);
    cr_expect(isnan(dy));
    sl_tape_free(t);
    /* only the line with the NaN: the other row's gradient is 1 at its max */
    t = sl_tape_new();
    const double w[6] = {1, NAN, 3, 4, 6, 5};
    x = sl_input(t, 2, (int[]){2, 3}, w, SL_GRAD);
    y = sl_sum(t, sl_max(t, x, 1, 0), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < 3; i++) cr_expect(isnan(sl_grad(x)[i]));
    const double row1[3] = {0, 1, 0};
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[3 + i], row1[i]);
    sl_tape_free(t);
}

/* torch.amin([[1,5,1],[2,-3,-3]], dim=1).backward([1, 6]) gives
 * [[0.5,0,0.5],[0,3,3]]: tied minima share the gradient, as max's maxima. */
Test(reduce, min_ties_share_the_gradient) {
    sl_tape *t = sl_tape_new();
    const double X[6] = {1, 5, 1, 2, -3, -3}, G[2] = {1, 6};
    sl_var *x = sl_input(t, 2, (int[]){2, 3}, X, SL_GRAD);
    sl_var *y = sl_min(t, x, -1, 1);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), 2);
    cr_expect(sl_dims(y)[0] == 2 && sl_dims(y)[1] == 1, "keepdim: [2,1]");
    cr_expect(sl_value(y)[0] == 1.0 && sl_value(y)[1] == -3.0);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    const double want[6] = {0.5, 0, 0.5, 0, 3, 3};
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_grad(x)[i], want[i], "dx[%d]", i);
    /* forward mode: the mean of the tied elements' tangents */
    const double T[6] = {1, 2, 3, 4, 5, 7}, *tans[] = {T};
    double dy[2];
    cr_assert_eq(sl_jvp(t, y, 1, &x, tans, dy), SL_OK);
    cr_expect(dy[0] == 2.0 && dy[1] == 6.0, "tangents %g %g, want 2 and 6", dy[0], dy[1]);
    /* down the columns (axis 0): [1,5,1] against [2,-3,-3], one minimum each */
    sl_var *c = sl_min(t, x, 0, 0);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward_seed(t, c, (const double[]){1, 2, 3}), SL_OK);
    const double want_c[6] = {1, 0, 0, 0, 2, 3}, col_min[3] = {1, -3, -3};
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_value(c)[i], col_min[i]);
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_grad(x)[i], want_c[i], "axis 0: dx[%d]", i);
    sl_tape_free(t);
}

/* A NaN anywhere in a line makes that line's min NaN and its gradient NaN
 * (torch.amin: [1, nan, -3] gives nan and grads [nan, nan, nan]); infinities
 * are ordinary values: -inf is the minimum, and two +inf tie. */
Test(reduce, min_with_nan_and_infinities) {
    sl_tape *t = sl_tape_new();
    const double X[9] = {1, NAN, -3, INFINITY, -INFINITY, 0, INFINITY, 2, INFINITY};
    sl_var *x = sl_input(t, 2, (int[]){3, 3}, X, SL_GRAD);
    sl_var *y = sl_min(t, x, 1, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect(isnan(sl_value(y)[0]));
    cr_expect_eq(sl_value(y)[1], -INFINITY);
    cr_expect_eq(sl_value(y)[2], 2.0);
    cr_assert_eq(sl_backward_seed(t, y, (const double[]){1, 1, 1}), SL_OK);
    for (int i = 0; i < 3; i++) cr_expect(isnan(sl_grad(x)[i]), "dx[%d] = %g", i, sl_grad(x)[i]);
    const double rest[6] = {0, 1, 0, 0, 1, 0};
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_grad(x)[3 + i], rest[i], "dx[%d]", 3 + i);
    sl_tape_free(t);
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){3}, (const double[]){INFINITY, INFINITY, INFINITY}, SL_GRAD);
    y = sl_min(t, x, SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_item(y), INFINITY);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[i], 1.0 / 3.0);
    sl_tape_free(t);
}

/* Record, change the leaf, replay + backward: the same as a fresh recording
 * (the argmin moves from element 2 to element 0). */
Test(reduce, min_replay_takes_new_leaf_values) {
    const double before[4] = {3, 1, -2, 5}, after[4] = {-7, 1, -2, -7};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){4}, before, SL_GRAD);
    sl_var *y = sl_min(t, x, 0, 0);
    cr_assert_not_null(y);
    memcpy(sl_leaf_data(x), after, sizeof after);
    cr_assert_eq(sl_forward(t), SL_OK);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    sl_tape *f = sl_tape_new();
    sl_var *xf = sl_input(f, 1, (int[]){4}, after, SL_GRAD);
    sl_var *yf = sl_min(f, xf, 0, 0);
    cr_assert_eq(sl_backward(f, yf), SL_OK);
    cr_expect_eq(sl_item(y), -7.0);
    cr_expect_eq(sl_item(y), sl_item(yf));
    const double want[4] = {0.5, 0, 0, 0.5}; /* -7 twice: a tie */
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sl_grad(x)[i], want[i], "dx[%d]", i);
        cr_expect_eq(sl_grad(x)[i], sl_grad(xf)[i], "dx[%d]", i);
    }
    sl_tape_free(f);
    sl_tape_free(t);
}

/* A bad axis names sl_min; the error is sticky: later ops record nothing. */
Test(reduce, min_bad_axis_is_a_sticky_error) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
    cr_expect_null(sl_min(t, x, 2, 0));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "sl_min: axis 2 out of range for shape [2,3] (rank 2)");
    cr_expect_null(sl_min(t, x, 0, 0));
    cr_expect_null(sl_sum(t, x, SL_ALL, 0));
    cr_expect_str_eq(sl_tape_error(t), "sl_min: axis 2 out of range for shape [2,3] (rank 2)");
    sl_tape_free(t);
    t = sl_tape_new();
    cr_expect_null(sl_min(t, sl_scalar(t, 1.0, 0), -2, 0));
    cr_expect_str_eq(sl_tape_error(t), "sl_min: axis -2 out of range for shape [] (rank 0)");
    sl_tape_free(t);
}

/* PyTorch takes dim 0 and -1 on a 0-d tensor as the whole tensor. */
Test(reduce, rank0_axis_0_and_minus_1_reduce_everything) {
    for (int op = SUM; op <= LSE; op++)
        for (int axis = -1; axis <= 0; axis++)
            for (int keep = 0; keep <= 1; keep++) {
                sl_tape *t = sl_tape_new();
                sl_var *x = sl_input(t, 0, NULL, (double[]){2.5}, SL_GRAD);
                sl_var *y = reduce(t, op, x, axis, keep);
                cr_assert_not_null(y, "%s axis %d: %s", NAMES[op], axis, sl_tape_error(t));
                cr_expect_eq(sl_ndim(y), 0);
                cr_expect_eq(sl_item(y), 2.5, "%s of one element is that element", NAMES[op]);
                cr_assert_eq(sl_backward(t, y), SL_OK);
                cr_expect_eq(sl_grad(x)[0], 1.0, "%s axis %d", NAMES[op], axis);
                sl_tape_free(t);
            }
}

Test(reduce, out_of_range_axis_names_op_axis_and_shape) {
    static const int bad[] = {2, -3, 7, -100};
    for (int i = 0; i < 4; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
        cr_expect_null(sl_sum(t, x, bad[i], 0));
        cr_expect_eq(sl_tape_status(t), SL_EARG);
        char ax[16];
        snprintf(ax, sizeof ax, "%d", bad[i]);
        const char *m = sl_tape_error(t);
        cr_expect(contains(m, "sl_sum") && contains(m, ax) && contains(m, "[2,3]"),
                  "message \"%s\" must name sl_sum, axis %d and [2,3]", m, bad[i]);
        sl_tape_free(t);
    }
    /* every reduction names itself */
    for (int op = SUM; op <= LSE; op++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 1, (int[]){4}, NULL, 0);
        cr_expect_null(reduce(t, op, x, 1, 0));
        char want[32];
        snprintf(want, sizeof want, "sl_%s", NAMES[op]);
        cr_expect(contains(sl_tape_error(t), want), "%s", sl_tape_error(t));
        sl_tape_free(t);
    }
    /* a scalar has no axis 1: only 0 and -1, as PyTorch's dim on a 0-d tensor */
    sl_tape *t = sl_tape_new();
    cr_expect_null(sl_sum(t, sl_scalar(t, 1, 0), 1, 0));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "sl_sum: axis 1 out of range for shape [] (rank 0)");
    sl_tape_free(t);
}

Test(reduce, keepdim_must_be_0_or_1) {
    static const int bad[] = {2, -1};
    for (int i = 0; i < 2; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, 0);
        cr_expect_null(sl_mean(t, x, 0, bad[i]));
        cr_expect_eq(sl_tape_status(t), SL_EARG);
        cr_expect(contains(sl_tape_error(t), "sl_mean") && contains(sl_tape_error(t), "keepdim"),
                  "%s", sl_tape_error(t));
        sl_tape_free(t);
    }
}

/* mean of a sum: gradients compose (1/n per element, then summed over rows). */
Test(reduce, chained_reductions) {
    sl_tape *t = sl_tape_new();
    const double v[6] = {1, 2, 3, 4, 5, 6};
    sl_var *x = sl_input(t, 2, (int[]){2, 3}, v, SL_GRAD);
    sl_var *y = sl_mean(t, sl_sum(t, x, 0, 0), SL_ALL, 0); /* mean of column sums */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_item(y), 7.0);
    for (int i = 0; i < 6; i++) cr_expect(near(sl_grad(x)[i], 1.0 / 3.0, 1e-15, 0));
    sl_tape_free(t);
}

/* ------------------------------------------- the checker against wrong rules */

/* Lines of a reduction node as (outer, len, inner), from the public API. */
static void lines_of(const sl_var *out, size_t *outer, size_t *len, size_t *inner) {
    const sl_var *x = sl_in(out, 0);
    const int nd = sl_ndim(x), axis = sl_attrs_of(out)->axis;
    const int ax = axis == SL_ALL || nd == 0 ? -1 : (axis < 0 ? axis + nd : axis);
    *outer = 1, *len = ax < 0 ? sl_numel(x) : (size_t)sl_dims(x)[ax], *inner = 1;
    for (int i = 0; ax >= 0 && i < nd; i++)
        if (i < ax)
            *outer *= (size_t)sl_dims(x)[i];
        else if (i > ax)
            *inner *= (size_t)sl_dims(x)[i];
}
/* Two wrong rules for min: on_max, the whole gradient of a line put on its
 * maximum; else the whole gradient given to every tied minimum. */
static void min_bwd_wrong(sl_var *out, int on_max) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    const double *xv = sl_value(x);
    size_t outer, len, inner;
    lines_of(out, &outer, &len, &inner);
    for (size_t p = 0; dx && p < outer; p++)
        for (size_t i = 0; i < inner; i++) {
            const size_t k = p * inner + i, first = p * len * inner + i;
            size_t best = first;
            for (size_t e = first; e < first + len * inner; e += inner) {
                if (!on_max && xv[e] == sl_value(out)[k]) dx[e] += sl_grad(out)[k];
                if (xv[e] > xv[best]) best = e;
            }
            if (on_max) dx[best] += sl_grad(out)[k];
        }
}
static void min_bwd_on_the_max(sl_var *out) { min_bwd_wrong(out, 1); }
static void min_bwd_ties_to_all(sl_var *out) { min_bwd_wrong(out, 0); }
static sl_op ok_min, bad_min;
static void expect_min_caught(const char *as, sl_backward_fn wrong, const char *failed,
                              const char *says) {
    sl_gradcheck_report rep;
    ok_min = *sl_op_find("min"), ok_min.name = "tr_min_ok";
    cr_assert_eq(sl_op_register(&ok_min), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(&ok_min, NULL, &rep), SL_OK, "%s", rep.message);
    bad_min = *sl_op_find("min"), bad_min.name = as, bad_min.backward = wrong;
    cr_assert_eq(sl_op_register(&bad_min), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(&bad_min, NULL, &rep), SL_EGRAD, "%s passed", as);
    cr_expect_str_eq(rep.failed, failed, "%s: %s", as, rep.message);
    cr_expect(contains(rep.message, says), "%s: %s", as, rep.message);
}
Test(reduce, the_checker_catches_min_with_the_gradient_on_the_max) {
    expect_min_caught("tr_min_on_max", min_bwd_on_the_max, "vjp", "");
}
Test(reduce, the_checker_catches_min_ties_given_the_whole_gradient) {
    expect_min_caught("tr_min_ties_all", min_bwd_ties_to_all, "kink",
                      "ties are not shared equally: row 0 has 2 tied extrema");
}
