/*
 * test_slice.c - sl_slice and sl_concat: values, gradients and tangents
 * against references written here element by element from multi-indices
 * (NumPy's x[..., start:stop, ...] and numpy.concatenate), on every axis of
 * rank 1..4 shapes with negative axes and indices; the errors with their
 * messages; replay; scalar nodes joined into a vector; and the checker
 * against the two bugs such rules tend to have (a row stride forgotten).
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>

/* flat index of multi-index idx in a row-major shape */
static size_t flat(int ndim, const int *dims, const int *idx) {
    size_t f = 0;
    for (int i = 0; i < ndim; i++) f = f * (size_t)dims[i] + (size_t)idx[i];
    return f;
}

static void check_slice(int ndim, const int *dims, int axis, int start, int stop) {
    const size_t n = sl__numel(ndim, dims);
    double X[256], G[256];
    for (size_t i = 0; i < n; i++) X[i] = 1.0 + (double)i, G[i] = 0.25 * (double)i - 7.0;
    const int ax = axis < 0 ? axis + ndim : axis, d = dims[ax];
    const int s0 = start < 0 ? start + d : start, s1 = stop < 0 ? stop + d : stop;
    int odims[SL_MAX_DIMS];
    memcpy(odims, dims, sizeof(int) * (size_t)ndim);
    odims[ax] = s1 - s0;

    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, ndim, dims, X, SL_GRAD);
    sl_var *y = sl_slice(t, x, axis, start, stop);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), ndim);
    for (int i = 0; i < ndim; i++) cr_assert_eq(sl_dims(y)[i], odims[i], "axis %d", axis);
    /* out[idx] = x[idx with idx[ax] + s0]; the seed goes back to those places */
    double want_dx[256] = {0};
    int idx[SL_MAX_DIMS] = {0};
    do {
        int src[SL_MAX_DIMS];
        memcpy(src, idx, sizeof src);
        src[ax] += s0;
        const size_t o = flat(ndim, odims, idx), i = flat(ndim, dims, src);
        cr_expect_eq(sl_value(y)[o], X[i], "axis %d [%d:%d]: out[%zu]", axis, start, stop, o);
        want_dx[i] += G[o];
    } while (next_index(ndim, odims, idx));
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(sl_grad(x)[i], want_dx[i], "axis %d [%d:%d]: dx[%zu]", axis, start, stop, i);
    /* forward mode: the tangent is the slice of the input's tangent */
    double T[256];
    for (size_t i = 0; i < n; i++) T[i] = -2.0 * (double)i + 0.5;
    const double *tans[] = {T};
    double dy[256];
    cr_assert_eq(sl_jvp(t, y, 1, &x, tans, dy), SL_OK, "%s", sl_tape_error(t));
    memset(idx, 0, sizeof idx);
    do {
        int src[SL_MAX_DIMS];
        memcpy(src, idx, sizeof src);
        src[ax] += s0;
        cr_expect_eq(dy[flat(ndim, odims, idx)], T[flat(ndim, dims, src)]);
    } while (next_index(ndim, odims, idx));
    sl_tape_free(t);
}

Test(slice, values_gradients_tangents_on_every_axis) {
    check_slice(1, (int[]){5}, 0, 1, 4);
    check_slice(1, (int[]){5}, -1, -5, 5); /* the whole axis */
    check_slice(1, (int[]){5}, 0, 4, 5);   /* the last element */
    const int d3[] = {2, 3, 4};
    for (int ax = -3; ax < 3; ax++) {
        const int d = d3[ax < 0 ? ax + 3 : ax];
        check_slice(3, d3, ax, 0, 1);
        check_slice(3, d3, ax, 1, d);
        check_slice(3, d3, ax, -1, d);
        if (d > 2) check_slice(3, d3, ax, 1, -1);
    }
    const int d4[] = {2, 3, 1, 4};
    for (int ax = 0; ax < 4; ax++) check_slice(4, d4, ax, 0, d4[ax] > 1 ? d4[ax] - 1 : 1);
}

static void check_concat(int ndim, const int *da, const int *db, int axis) {
    const size_t na = sl__numel(ndim, da), nb = sl__numel(ndim, db);
    double A[128], B[128], G[256], TA[128];
    for (size_t i = 0; i < na; i++) A[i] = 1.0 + (double)i, TA[i] = 3.0 - (double)i;
    for (size_t i = 0; i < nb; i++) B[i] = -1.0 - (double)i;
    const int ax = axis < 0 ? axis + ndim : axis;
    int od[SL_MAX_DIMS];
    memcpy(od, da, sizeof(int) * (size_t)ndim);
    od[ax] = da[ax] + db[ax];
    const size_t n = na + nb;
    for (size_t i = 0; i < n; i++) G[i] = 0.5 * (double)i + 1.0;

    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, ndim, da, A, SL_GRAD), *b = sl_input(t, ndim, db, B, SL_GRAD);
    sl_var *y = sl_concat(t, a, b, axis);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    for (int i = 0; i < ndim; i++) cr_assert_eq(sl_dims(y)[i], od[i]);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    /* b has no tangent: its part of the output's tangent is zero */
    const double *tans[] = {TA};
    double dy[256];
    cr_assert_eq(sl_jvp(t, y, 1, &a, tans, dy), SL_OK, "%s", sl_tape_error(t));
    /* out[idx] = a[idx] where idx[ax] < da[ax], else b[idx with idx[ax] - da[ax]] */
    int idx[SL_MAX_DIMS] = {0};
    do {
        const size_t o = flat(ndim, od, idx);
        int src[SL_MAX_DIMS];
        memcpy(src, idx, sizeof src);
        if (idx[ax] < da[ax]) {
            const size_t i = flat(ndim, da, src);
            cr_expect_eq(sl_value(y)[o], A[i], "axis %d: out[%zu]", axis, o);
            cr_expect_eq(sl_grad(a)[i], G[o], "axis %d: da[%zu]", axis, i);
            cr_expect_eq(dy[o], TA[i]);
        } else {
            src[ax] -= da[ax];
            const size_t i = flat(ndim, db, src);
            cr_expect_eq(sl_value(y)[o], B[i], "axis %d: out[%zu]", axis, o);
            cr_expect_eq(sl_grad(b)[i], G[o], "axis %d: db[%zu]", axis, i);
            cr_expect_eq(dy[o], 0.0);
        }
    } while (next_index(ndim, od, idx));
    sl_tape_free(t);
}

Test(slice, concat_values_gradients_tangents_on_every_axis) {
    check_concat(1, (int[]){2}, (int[]){3}, 0);
    check_concat(2, (int[]){2, 3}, (int[]){1, 3}, 0);
    check_concat(2, (int[]){2, 3}, (int[]){2, 1}, 1);
    check_concat(2, (int[]){2, 3}, (int[]){2, 2}, -1);
    check_concat(3, (int[]){2, 1, 3}, (int[]){2, 4, 3}, -2);
    check_concat(4, (int[]){1, 2, 3, 2}, (int[]){1, 2, 2, 2}, 2);
    check_concat(4, (int[]){2, 2, 1, 3}, (int[]){2, 2, 1, 1}, 3);
}

/* Two slices that overlap and the same node joined to itself: gradients add. */
Test(slice, gradients_accumulate_where_parts_overlap) {
    const double X[5] = {1, 2, 3, 4, 5};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){5}, X, SL_GRAD);
    sl_var *p = sl_slice(t, x, 0, 0, 3), *q = sl_slice(t, x, 0, 2, 5);
    sl_var *y = sl_sum(t, sl_concat(t, sl_mul(t, p, p), q, 0), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_item(y), 1 + 4 + 9 + 3 + 4 + 5);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const double want[5] = {2, 4, 6 + 1, 1, 1}; /* d(x^2) on 0..2, +1 on 2..4 */
    for (int i = 0; i < 5; i++) cr_expect_eq(sl_grad(x)[i], want[i], "dx[%d]", i);
    sl_var *z = sl_sum(t, sl_concat(t, x, x, 0), SL_ALL, 0);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, z), SL_OK);
    for (int i = 0; i < 5; i++) cr_expect_eq(sl_grad(x)[i], 2.0);
    sl_tape_free(t);
}

/* Cut along an axis and joined again: the same tensor, bit for bit. */
Test(slice, cut_and_join_is_the_identity) {
    double X[24];
    for (int i = 0; i < 24; i++) X[i] = sin(1.0 + i);
    const int dims[] = {2, 3, 4};
    for (int ax = 0; ax < 3; ax++)
        for (int k = 1; k < dims[ax]; k++) {
            sl_tape *t = sl_tape_new();
            sl_var *x = sl_input(t, 3, dims, X, 0);
            sl_var *y = sl_concat(t, sl_slice(t, x, ax, 0, k), sl_slice(t, x, ax, k, dims[ax]), ax);
            cr_assert_not_null(y, "%s", sl_tape_error(t));
            cr_expect_eq(memcmp(sl_value(y), X, sizeof X), 0, "axis %d at %d", ax, k);
            sl_tape_free(t);
        }
}

Test(slice, replay_takes_new_leaf_values) {
    double X[6] = {1, 2, 3, 4, 5, 6};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){2, 3}, X, SL_GRAD);
    sl_var *y =
        sl_concat(t, sl_slice(t, x, 1, 2, 3), sl_slice(t, x, 1, 0, 1), 1); /* columns 2, 0 */
    cr_assert_not_null(y);
    for (int i = 0; i < 6; i++) sl_leaf_data(x)[i] = 10.0 * (i + 1);
    cr_assert_eq(sl_forward(t), SL_OK);
    const double want[4] = {30, 10, 60, 40};
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_value(y)[i], want[i]);
    sl_tape_free(t);
}

/* Scalar nodes made into a vector (reshape to [1], then join), softmax over
 * it, gradients back to each scalar. */
Test(slice, scalars_joined_into_a_vector) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, 0.5, SL_GRAD), *b = sl_scalar(t, -1.0, SL_GRAD);
    const int one[] = {1};
    sl_var *v = sl_concat(t, sl_reshape(t, sl_mul(t, a, b), 1, one), sl_reshape(t, b, 1, one), 0);
    sl_var *y = sl_slice(t, sl_softmax(t, v, 0), 0, 0, 1); /* p0 = e^(ab) / (e^(ab) + e^b) */
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    const double u = 0.5 * -1.0, w = -1.0;
    const double p0 = exp(u) / (exp(u) + exp(w));
    cr_expect(near(sl_value(y)[0], p0, 1e-15, 0));
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
    /* dp0/du = p0 (1 - p0), du/da = b, du/db = a; dp0/dw = -p0 p1 */
    const double dpu = p0 * (1 - p0), dpw = -p0 * (1 - p0);
    cr_expect(near(sl_grad(a)[0], dpu * -1.0, 1e-14, 1e-16), "%.17g", sl_grad(a)[0]);
    cr_expect(near(sl_grad(b)[0], dpu * 0.5 + dpw, 1e-14, 1e-16), "%.17g", sl_grad(b)[0]);
    sl_tape_free(t);
}

Test(slice, errors_name_the_function_the_indices_and_shapes) {
    const int d[] = {2, 3};
    struct {
        int axis, start, stop, status;
        const char *msg;
    } bad[] = {
        {2, 0, 1, SL_EARG, "sl_slice: axis 2 out of range for shape [2,3] (rank 2)"},
        {-3, 0, 1, SL_EARG, "sl_slice: axis -3 out of range for shape [2,3] (rank 2)"},
        {SL_ALL, 0, 1, SL_EARG, "sl_slice: axis SL_ALL: a slice is along one axis (shape [2,3])"},
        {1, 0, 4, SL_EARG,
         "sl_slice: [start, stop) = [0, 4) is outside along axis 1 (size 3) of [2,3]"},
        {1, -4, 2, SL_EARG,
         "sl_slice: [start, stop) = [-4, 2) is outside along axis 1 (size 3) of [2,3]"},
        {1, 2, 2, SL_EARG,
         "sl_slice: [start, stop) = [2, 2) is empty along axis 1 (size 3) of [2,3]"},
        {1, -1, 1, SL_EARG,
         "sl_slice: [start, stop) = [-1, 1) is empty along axis 1 (size 3) of [2,3]"},
        {0, 1, 0, SL_EARG,
         "sl_slice: [start, stop) = [1, 0) is empty along axis 0 (size 2) of [2,3]"},
        {1, 7, 2, SL_EARG,
         "sl_slice: [start, stop) = [7, 2) is outside along axis 1 (size 3) of [2,3]"},
        {1, 3, 3, SL_EARG,
         "sl_slice: [start, stop) = [3, 3) is empty along axis 1 (size 3) of [2,3]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, d, NULL, SL_GRAD);
        expect_tape_error(sl_slice(t, x, bad[i].axis, bad[i].start, bad[i].stop), t, bad[i].status,
                          bad[i].msg);
        /* sticky: a valid op afterwards records nothing */
        cr_expect_null(sl_slice(t, x, 0, 0, 1));
        cr_expect_str_eq(sl_tape_error(t), bad[i].msg);
        sl_tape_free(t);
    }
    sl_tape *t = sl_tape_new();
    expect_tape_error(sl_slice(t, sl_scalar(t, 1.0, 0), 0, 0, 1), t, SL_ESHAPE,
                      "sl_slice: a rank-0 input has no axis to slice (shape [])");
    sl_tape_free(t);
    t = sl_tape_new();
    expect_tape_error(sl_slice(t, NULL, 0, 0, 1), t, SL_EARG,
                      "sl_slice: input 0 is NULL on a tape without an error");
    sl_tape_free(t);
}

Test(slice, concat_errors_name_the_shapes) {
    struct {
        int na, da[4], nb, db[4], axis, status;
        const char *msg;
    } bad[] = {
        {2,
         {2, 3},
         2,
         {3, 3},
         1,
         SL_ESHAPE,
         "sl_concat: [2,3] and [3,3] differ on axis 0; only axis 1 may differ"},
        {2,
         {2, 3},
         1,
         {3},
         0,
         SL_ESHAPE,
         "sl_concat: expects inputs of one rank, at least 1: [2,3] and [3]"},
        {0,
         {0},
         0,
         {0},
         0,
         SL_ESHAPE,
         "sl_concat: expects inputs of one rank, at least 1: [] and [] (sl_reshape a scalar to [1] "
         "first)"},
        {2,
         {2, 3},
         2,
         {2, 3},
         2,
         SL_EARG,
         "sl_concat: axis 2 out of range for shapes [2,3] and [2,3] (rank 2)"},
        {2,
         {2, 3},
         2,
         {2, 3},
         SL_ALL,
         SL_EARG,
         "sl_concat: axis SL_ALL: inputs join along one axis ([2,3], [2,3])"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, bad[i].na, bad[i].da, NULL, 0);
        sl_var *b = sl_input(t, bad[i].nb, bad[i].db, NULL, 0);
        expect_tape_error(sl_concat(t, a, b, bad[i].axis), t, bad[i].status, bad[i].msg);
        sl_tape_free(t);
    }
    /* an axis too long for an int, given to the shape rule directly (the
     * tensors themselves would take 16 GiB) */
    sl_tape *t = sl_tape_new();
    sl_var a = {.ndim = 2, .dims = {1, INT_MAX - 1}}, b = {.ndim = 2, .dims = {1, 2}};
    sl_var *in[] = {&a, &b};
    const sl_op *op = sl_op_find("concat");
    const sl_attrs at = {.axis = 1};
    int nd, dims[SL_MAX_DIMS];
    cr_expect_eq(op->shape(t, op, in, &at, &nd, dims), SL_ESHAPE);
    cr_expect_str_eq(sl_tape_error(t),
                     "sl_concat: [1,2147483646] and [1,2]: axis 1 would exceed 2147483647");
    sl_tape_free(t);
}

/* ------------------------------------------- the checker against wrong rules */

/* A user op with the built-in's shape, forward and tangent rules and a
 * backward given here: the checker must pass the right one and catch each
 * wrong one. The registry keeps the pointer, so the descriptors are static. */
static sl_op ok_slice, bad_slice, ok_concat, bad_concat;
static const sl_op *builtin(const char *name) {
    const sl_op *op = sl_op_find(name);
    cr_assert_not_null(op, "%s is registered", name);
    return op;
}
static sl_op like(const char *name, const char *as, sl_backward_fn backward) {
    sl_op op = *builtin(name);
    op.name = as;
    op.backward = backward;
    return op;
}

/* slice's rule without the row stride: right only when the axis is the first */
static void slice_bwd_no_stride(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    const sl_attrs *a = sl_attrs_of(out);
    const int ax = a->axis < 0 ? a->axis + sl_ndim(x) : a->axis;
    size_t inner = 1;
    for (int i = ax + 1; i < sl_ndim(x); i++) inner *= (size_t)sl_dims(x)[i];
    const size_t start = (size_t)(a->start < 0 ? a->start + sl_dims(x)[ax] : a->start);
    for (size_t i = 0; i < sl_numel(out); i++) dx[start * inner + i] += sl_grad(out)[i];
}
/* concat's rule as if the inputs were one after the other in the output:
 * right only when the axis is the first */
static void concat_bwd_flat(sl_var *out) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    for (size_t i = 0; i < sl_numel(a); i++) sl_grad_data(a)[i] += sl_grad(out)[i];
    for (size_t i = 0; i < sl_numel(b); i++) sl_grad_data(b)[i] += sl_grad(out)[sl_numel(a) + i];
}

Test(slice, the_checker_catches_rules_that_forget_the_row_stride) {
    sl_gradcheck_report rep;
    ok_slice = like("slice", "ts_slice_ok", builtin("slice")->backward);
    cr_assert_eq(sl_op_register(&ok_slice), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(sl_op_find("ts_slice_ok"), NULL, &rep), SL_OK, "%s", rep.message);
    bad_slice = like("slice", "ts_slice_no_stride", slice_bwd_no_stride);
    cr_assert_eq(sl_op_register(&bad_slice), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(sl_op_find("ts_slice_no_stride"), NULL, &rep), SL_EGRAD);

    ok_concat = like("concat", "ts_concat_ok", builtin("concat")->backward);
    cr_assert_eq(sl_op_register(&ok_concat), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(sl_op_find("ts_concat_ok"), NULL, &rep), SL_OK, "%s", rep.message);
    bad_concat = like("concat", "ts_concat_flat", concat_bwd_flat);
    cr_assert_eq(sl_op_register(&bad_concat), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(sl_op_find("ts_concat_flat"), NULL, &rep), SL_EGRAD);
}

/* The attribute sets a kink is checked under tell start/stop apart too: a
 * user op (relu of x[start:stop]) with two cases that differ only there gets
 * a kink case for each (counted only: the kink check itself then refuses the
 * op, which is not element-wise). */
static int part_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *nd,
                      int *d) {
    (void)t, (void)op, (void)in;
    *nd = 1;
    d[0] = a->stop - a->start;
    return SL_OK;
}
static void part_forward(sl_var *o) {
    const sl_attrs *a = sl_attrs_of(o);
    const double *x = sl_value(sl_in(o, 0));
    for (int i = 0; i < a->stop - a->start; i++) {
        const double z = x[a->start + i];
        sl_out_data(o)[i] = z > 0 ? z : 0;
    }
}
static void part_backward(sl_var *o) {
    const sl_attrs *a = sl_attrs_of(o);
    const sl_var *x = sl_in(o, 0);
    for (int i = 0; i < a->stop - a->start; i++)
        sl_grad_data(x)[a->start + i] += sl_grad(o)[i] * (sl_value(x)[a->start + i] > 0);
}
static void part_jvp(sl_var *o) {
    const sl_attrs *a = sl_attrs_of(o);
    const sl_var *x = sl_in(o, 0);
    const double *tx = sl_tangent_data(x);
    for (int i = 0; i < a->stop - a->start; i++)
        sl_tangent_data(o)[i] = tx ? tx[a->start + i] * (sl_value(x)[a->start + i] > 0) : 0.0;
}
static const sl_op_case part_cases[] = {{{{1, 4}}, {.start = 0, .stop = 2}},
                                        {{{1, 4}}, {.start = 2, .stop = 4}}};
static const sl_op part_op = {.name = "ts_relu_part",
                              .arity = 1,
                              .shape = part_shape,
                              .forward = part_forward,
                              .backward = part_backward,
                              .jvp = part_jvp,
                              .signature = "ts_relu_part(t, x, start, stop)",
                              .formula = "relu(x[start:stop])",
                              .derivative = "1 where z > 0, else 0",
                              .kinks = "0 at z = 0",
                              .kink = {.present = 1, .at = 0, .slope = 0},
                              .domain = {SL_DOMAIN_REAL},
                              .cases = part_cases,
                              .ncases = 2};

Test(slice, kink_cases_tell_start_and_stop_apart) {
    cr_expect_eq(sl_op_ncases(&part_op), 4, "2 cases + a kink case per attribute set");
}
