/*
 * test_select.c - sl_maximum, sl_minimum and sl_clamp: values, gradients and
 * tangents against references written here (the selection rule, with its
 * tie, NaN and boundary conventions, spelled out element by element over
 * NumPy-broadcast multi-indices) and against PyTorch 2.x float64's numbers
 * where they are quoted; broadcasting in both directions; infinities; -0;
 * scalar nodes as inputs; the errors with their messages; replay; and the
 * checker against wrong rules it can see at generic points.
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>

/* ------------------------------------------------------------ references */

/* Equal as numbers (+0 == -0), or both NaN. */
static int same_or_nan(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* The part of g the first operand gets when out = max(x, y): written here
 * from the convention (all / half at a tie / none; NaN where either is NaN). */
static double ref_part(double x, double y, double g) {
    if (isnan(x) || isnan(y)) return NAN;
    if (x == y) return g / 2;
    return x > y ? g : 0.0;
}
static double ref_max(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a >= b ? a : b); }
static double ref_min(double a, double b) { return isnan(a) || isnan(b) ? NAN : (a <= b ? a : b); }

/* maximum (up = 1) or minimum (up = 0) of A (na, da) and B (nb, db), whose
 * broadcast shape is (nd, od): value, seeded gradients and tangents against
 * the references, element by element. */
static void check_select(int up, int na, const int *da, const double *A, int nb, const int *db,
                         const double *B, int nd, const int *od) {
    const size_t nA = sl__numel(na, da), nB = sl__numel(nb, db), n = sl__numel(nd, od);
    double G[64], TA[64], TB[64];
    for (size_t i = 0; i < n; i++) G[i] = 1.0 + 0.5 * (double)i;
    for (size_t i = 0; i < nA; i++) TA[i] = 2.0 - (double)i;
    for (size_t i = 0; i < nB; i++) TB[i] = 0.25 * (double)i + 3.0;
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, na, da, A, SL_GRAD), *b = sl_input(t, nb, db, B, SL_GRAD);
    sl_var *y = up ? sl_maximum(t, a, b) : sl_minimum(t, a, b);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), nd);
    for (int i = 0; i < nd; i++) cr_assert_eq(sl_dims(y)[i], od[i]);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    sl_var *leaves[] = {a, b};
    const double *tans[] = {TA, TB};
    double dy[64];
    cr_assert_eq(sl_jvp(t, y, 2, leaves, tans, dy), SL_OK, "%s", sl_tape_error(t));
    double want_da[64] = {0}, want_db[64] = {0};
    int idx[SL_MAX_DIMS] = {0};
    size_t k = 0;
    do {
        const size_t ia = bcast_flat(nd, idx, na, da), ib = bcast_flat(nd, idx, nb, db);
        const double x = A[ia], z = B[ib];
        /* min(x, z) = -max(-x, -z): the first operand's part of max(-x, -z) */
        const double pa = up ? ref_part(x, z, 1.0) : ref_part(-x, -z, 1.0);
        const double pb = up ? ref_part(z, x, 1.0) : ref_part(-z, -x, 1.0);
        const double want = up ? ref_max(x, z) : ref_min(x, z);
        cr_expect(same_or_nan(sl_value(y)[k], want), "%s: out[%zu] = %g, want %g",
                  up ? "maximum" : "minimum", k, sl_value(y)[k], want);
        cr_expect(same_or_nan(dy[k], pa * TA[ia] + pb * TB[ib]), "tangent[%zu] = %g", k, dy[k]);
        want_da[ia] += pa * G[k], want_db[ib] += pb * G[k];
        k++;
    } while (next_index(nd, od, idx));
    for (size_t i = 0; i < nA; i++)
        cr_expect(same_or_nan(sl_grad(a)[i], want_da[i]), "da[%zu] = %g, want %g", i, sl_grad(a)[i],
                  want_da[i]);
    for (size_t i = 0; i < nB; i++)
        cr_expect(same_or_nan(sl_grad(b)[i], want_db[i]), "db[%zu] = %g, want %g", i, sl_grad(b)[i],
                  want_db[i]);
    sl_tape_free(t);
}

/* ------------------------------------------------------ maximum, minimum */

/* PyTorch: maximum([1,2,3], [1,1,4]).sum().backward() gives a.grad
 * [0.5,1,0] and b.grad [0.5,0,1]; minimum the other way round. */
Test(select, ties_share_the_gradient_as_pytorch) {
    const double A[3] = {1, 2, 3}, B[3] = {1, 1, 4};
    const double max_da[3] = {0.5, 1, 0}, max_db[3] = {0.5, 0, 1};
    const double min_da[3] = {0.5, 0, 1}, min_db[3] = {0.5, 1, 0};
    for (int up = 0; up <= 1; up++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, 1, (int[]){3}, A, SL_GRAD);
        sl_var *b = sl_input(t, 1, (int[]){3}, B, SL_GRAD);
        sl_var *y = sl_sum(t, up ? sl_maximum(t, a, b) : sl_minimum(t, a, b), SL_ALL, 0);
        cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
        cr_expect_eq(sl_item(y), up ? 1 + 2 + 4 : 1 + 1 + 3);
        for (int i = 0; i < 3; i++) {
            cr_expect_eq(sl_grad(a)[i], up ? max_da[i] : min_da[i], "up %d: da[%d]", up, i);
            cr_expect_eq(sl_grad(b)[i], up ? max_db[i] : min_db[i], "up %d: db[%d]", up, i);
        }
        sl_tape_free(t);
    }
    check_select(1, 1, (int[]){3}, A, 1, (int[]){3}, B, 1, (int[]){3});
    check_select(0, 1, (int[]){3}, A, 1, (int[]){3}, B, 1, (int[]){3});
}

/* PyTorch: maximum([[1,3],[2,0]], [2]) gives a.grad [[0,1],[0.5,0]] and
 * b.grad [2.5]; minimum gives [[1,0],[0.5,1]] and [1.5]. Then every
 * direction: b broadcast, a broadcast, both, and a scalar on either side. */
Test(select, broadcasting_in_both_directions) {
    const double A[4] = {1, 3, 2, 0}, two = 2.0;
    const double max_da[4] = {0, 1, 0.5, 0}, min_da[4] = {1, 0, 0.5, 1};
    for (int up = 0; up <= 1; up++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, 2, (int[]){2, 2}, A, SL_GRAD);
        sl_var *b = sl_input(t, 1, (int[]){1}, &two, SL_GRAD);
        sl_var *y = sl_sum(t, up ? sl_maximum(t, a, b) : sl_minimum(t, a, b), SL_ALL, 0);
        cr_assert_eq(sl_backward(t, y), SL_OK, "%s", sl_tape_error(t));
        for (int i = 0; i < 4; i++)
            cr_expect_eq(sl_grad(a)[i], up ? max_da[i] : min_da[i], "up %d: da[%d]", up, i);
        cr_expect_eq(sl_grad(b)[0], up ? 2.5 : 1.5, "up %d: db = %g", up, sl_grad(b)[0]);
        sl_tape_free(t);
    }
    /* with ties in every pattern: [2,3] against [3], [3] against [2,3],
     * [2,1] against [1,3], [2,1,3] against [2,1], rank 0 against [2,3] */
    const double M[6] = {0.5, 2, -1, 2, 2, 7}, R[3] = {2, 2, -1}, C[2] = {2, -1};
    const double C3[3] = {-1, 0.5, 2}, S = 2.0, T6[6] = {1, 2, 2, -1, 3, 2};
    for (int up = 0; up <= 1; up++) {
        check_select(up, 2, (int[]){2, 3}, M, 1, (int[]){3}, R, 2, (int[]){2, 3});
        check_select(up, 1, (int[]){3}, R, 2, (int[]){2, 3}, M, 2, (int[]){2, 3});
        check_select(up, 2, (int[]){2, 1}, C, 2, (int[]){1, 3}, C3, 2, (int[]){2, 3});
        check_select(up, 3, (int[]){2, 1, 3}, T6, 2, (int[]){2, 1}, C, 3, (int[]){2, 2, 3});
        check_select(up, 0, NULL, &S, 2, (int[]){2, 3}, M, 2, (int[]){2, 3});
        check_select(up, 2, (int[]){2, 3}, M, 0, NULL, &S, 2, (int[]){2, 3});
    }
}

/* NaN in either input: a NaN output, and a NaN gradient and tangent for both
 * inputs there (PyTorch gives both g; docs/design.md says why not here).
 * Infinities are ordinary values (inf against inf is a tie); maximum(-0, 0)
 * is the first operand, -0, as PyTorch. */
Test(select, nan_infinities_and_signed_zeros) {
    const double A[6] = {NAN, 1, INFINITY, -INFINITY, INFINITY, 5};
    const double B[6] = {0, NAN, 1, 2, INFINITY, -INFINITY};
    for (int up = 0; up <= 1; up++)
        check_select(up, 1, (int[]){6}, A, 1, (int[]){6}, B, 1, (int[]){6});
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 1, (int[]){6}, A, SL_GRAD), *b = sl_input(t, 1, (int[]){6}, B, SL_GRAD);
    sl_var *y = sl_maximum(t, a, b);
    cr_assert_eq(sl_backward_seed(t, y, (const double[]){1, 1, 1, 1, 1, 1}), SL_OK);
    const double out[6] = {NAN, NAN, INFINITY, 2, INFINITY, 5};
    const double da[6] = {NAN, NAN, 1, 0, 0.5, 1}, db[6] = {NAN, NAN, 0, 1, 0.5, 0};
    for (int i = 0; i < 6; i++) {
        cr_expect(same_or_nan(sl_value(y)[i], out[i]), "out[%d] = %g", i, sl_value(y)[i]);
        cr_expect(same_or_nan(sl_grad(a)[i], da[i]), "da[%d] = %g", i, sl_grad(a)[i]);
        cr_expect(same_or_nan(sl_grad(b)[i], db[i]), "db[%d] = %g", i, sl_grad(b)[i]);
    }
    sl_var *mz = sl_input(t, 0, NULL, (const double[]){-0.0}, 0);
    sl_var *pz = sl_input(t, 0, NULL, (const double[]){0.0}, 0);
    cr_expect(signbit(sl_item(sl_maximum(t, mz, pz))), "maximum(-0, 0) = -0");
    cr_expect(!signbit(sl_item(sl_maximum(t, pz, mz))), "maximum(0, -0) = 0");
    cr_expect(signbit(sl_item(sl_minimum(t, mz, pz))), "minimum(-0, 0) = -0");
    sl_tape_free(t);
}

/* Scalar nodes: both scalar (a rank-0 result), or one against a tensor. */
Test(select, scalar_inputs) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, 1.5, SL_GRAD), *b = sl_scalar(t, -0.5, SL_GRAD);
    sl_var *y = sl_maximum(t, a, b);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(y), 0);
    cr_expect_eq(sl_item(y), 1.5);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect(sl_grad(a)[0] == 1.0 && sl_grad(b)[0] == 0.0);
    sl_var *v = sl_input(t, 1, (int[]){3}, (const double[]){-1, 0.5, 3}, SL_GRAD);
    sl_var *z = sl_sum(t, sl_minimum(t, v, sl_mul(t, a, sl_scalar(t, 1.0 / 3.0, 0))), SL_ALL, 0);
    cr_assert_not_null(z, "%s", sl_tape_error(t));
    cr_expect_eq(sl_item(z), -1 + 0.5 + 0.5); /* a/3 = 0.5: a tie at v[1] */
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, z), SL_OK);
    cr_expect_eq(sl_grad(a)[0], (0.5 + 1.0) / 3.0, "da = %g", sl_grad(a)[0]);
    const double dv[3] = {1, 0.5, 0};
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(v)[i], dv[i]);
    sl_tape_free(t);
}

Test(select, shape_mismatch_names_the_function_and_shapes) {
    for (int up = 0; up <= 1; up++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
        sl_var *b = sl_input(t, 1, (int[]){4}, NULL, SL_GRAD);
        const char *msg = up ? "sl_maximum: shapes do not broadcast: [2,3] and [4]"
                             : "sl_minimum: shapes do not broadcast: [2,3] and [4]";
        expect_tape_error(up ? sl_maximum(t, a, b) : sl_minimum(t, a, b), t, SL_ESHAPE, msg);
        /* sticky: later ops record nothing and keep the first message */
        cr_expect_null(sl_maximum(t, a, a));
        cr_expect_null(sl_clamp(t, a, 0, 1));
        cr_expect_str_eq(sl_tape_error(t), msg);
        sl_tape_free(t);
    }
    sl_tape *t = sl_tape_new();
    expect_tape_error(sl_minimum(t, sl_scalar(t, 1, 0), NULL), t, SL_EARG,
                      "sl_minimum: input 1 is NULL on a tape without an error");
    sl_tape_free(t);
}

/* ------------------------------------------------------------------ clamp */

/* clamp of x into [lo, hi] with seed G: values and gradients from the
 * definition, the bounds inside (slope 1 there), NaN x giving NaN and 0. */
static void check_clamp(int n, const double *X, double lo, double hi) {
    double G[16], T[16], dy[16];
    for (int i = 0; i < n; i++) G[i] = 1.0 + i, T[i] = 0.5 - i;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){n}, X, SL_GRAD);
    sl_var *y = sl_clamp(t, x, lo, hi);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK);
    const double *tans[] = {T};
    cr_assert_eq(sl_jvp(t, y, 1, &x, tans, dy), SL_OK);
    for (int i = 0; i < n; i++) {
        const double z = X[i];
        const double want = isnan(z) ? NAN : (z < lo ? lo : (z > hi ? hi : z));
        /* lo = hi: a constant, whose only subgradient is 0 (PyTorch: 1 at x = lo) */
        const double slope = (lo < hi && z >= lo && z <= hi) ? 1.0 : 0.0; /* false for NaN */
        cr_expect(same_or_nan(sl_value(y)[i], want), "[%g, %g]: out(%g) = %g, want %g", lo, hi, z,
                  sl_value(y)[i], want);
        cr_expect_eq(sl_grad(x)[i], slope * G[i], "[%g, %g]: dx at %g = %g", lo, hi, z,
                     sl_grad(x)[i]);
        cr_expect_eq(dy[i], slope * T[i], "[%g, %g]: tangent at %g", lo, hi, z);
    }
    sl_tape_free(t);
}

/* PyTorch: clamp([-1,0,0.5,1,2], 0, 1) gives grads [0,1,1,1,0] (the bounds
 * are inside); a NaN stays NaN with gradient 0. */
Test(select, clamp_bounds_are_inside_as_pytorch) {
    const double X[6] = {-1, 0, 0.5, 1, 2, NAN};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){6}, X, SL_GRAD);
    sl_var *y = sl_sum(t, sl_clamp(t, x, 0, 1), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const double dx[6] = {0, 1, 1, 1, 0, 0};
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_grad(x)[i], dx[i], "dx[%d]", i);
    cr_expect(isnan(sl_item(y)));
    sl_tape_free(t);
    check_clamp(6, X, 0, 1);
    check_clamp(6, X, -0.75, 0.25);
}

/* lo = -inf or hi = inf: no bound on that side; infinite x clamps like any
 * other value (PyTorch: clamp([-1e300,-inf,5,inf], -inf, 1) grads [1,1,0,0]);
 * lo = hi: every output is lo, and the slope 0 everywhere, x = lo included
 * (PyTorch's mask gives 1 there, outside the one-sided slopes 0 and 0). */
Test(select, clamp_infinite_and_equal_bounds) {
    const double X[7] = {-1e300, -INFINITY, 5, INFINITY, 1, -0.0, NAN};
    check_clamp(7, X, -INFINITY, 1);
    check_clamp(7, X, 0, INFINITY);
    check_clamp(7, X, -INFINITY, INFINITY);
    check_clamp(7, X, 1, 1);
    check_clamp(7, X, INFINITY, INFINITY);
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){4}, X, SL_GRAD);
    cr_assert_eq(sl_backward(t, sl_sum(t, sl_clamp(t, x, -INFINITY, 1), SL_ALL, 0)), SL_OK);
    const double dx[4] = {1, 1, 0, 0};
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_grad(x)[i], dx[i], "dx[%d]", i);
    sl_tape_free(t);
}

Test(select, clamp_of_a_scalar_node) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 2.5, SL_GRAD);
    sl_var *y = sl_clamp(t, sl_mul(t, x, x), 0, 4); /* x^2 = 6.25, clamped */
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(y), 0);
    cr_expect_eq(sl_item(y), 4.0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 0.0);
    sl_var *z = sl_clamp(t, sl_mul(t, x, x), 0, 6.25); /* exactly at hi: slope 1, 2x */
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, z), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 5.0);
    sl_tape_free(t);
}

/* slope refuses what PyTorch takes silently: lo > hi (PyTorch returns hi
 * everywhere) and a NaN bound. */
Test(select, clamp_refuses_nan_bounds_and_lo_above_hi) {
    struct {
        double lo, hi;
        const char *msg;
    } bad[] = {
        {1, 0, "sl_clamp: lo = 1 > hi = 0"},
        {0.5, -2.25, "sl_clamp: lo = 0.5 > hi = -2.25"},
        {INFINITY, -INFINITY, "sl_clamp: lo = inf > hi = -inf"},
        {NAN, 1, "sl_clamp: lo = nan, hi = 1: a bound is NaN (-inf or inf is no bound)"},
        {0, NAN, "sl_clamp: lo = 0, hi = nan: a bound is NaN (-inf or inf is no bound)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
        expect_tape_error(sl_clamp(t, x, bad[i].lo, bad[i].hi), t, SL_EARG, bad[i].msg);
        cr_expect_null(sl_clamp(t, x, 0, 1));
        cr_expect_null(sl_maximum(t, x, x));
        cr_expect_str_eq(sl_tape_error(t), bad[i].msg);
        sl_tape_free(t);
    }
    /* a scalar node takes the same check */
    sl_tape *t = sl_tape_new();
    expect_tape_error(sl_clamp(t, sl_scalar(t, 0.5, 0), 1, 0), t, SL_EARG,
                      "sl_clamp: lo = 1 > hi = 0");
    sl_tape_free(t);
}

/* ----------------------------------------------------------------- replay */

/* y = sum(clamp(maximum(a, b), -1, 1) * minimum(a, b)), recorded, then a and
 * b changed (ties and bounds hit): replay + backward equals a fresh tape. */
static sl_var *graph(sl_tape *t, sl_var *a, sl_var *b) {
    sl_var *m = sl_clamp(t, sl_maximum(t, a, b), -1, 1);
    return sl_sum(t, sl_mul(t, m, sl_minimum(t, a, b)), SL_ALL, 0);
}
Test(select, replay_takes_new_leaf_values) {
    const double A0[6] = {0.5, -2, 3, 0, 1, -0.5}, B0[3] = {0.25, 0.75, -1};
    const double A1[6] = {1, -1, 0.75, 2, -3, 0.75}, B1[3] = {1, 0.5, 0.75};
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){2, 3}, A0, SL_GRAD);
    sl_var *b = sl_input(t, 1, (int[]){3}, B0, SL_GRAD);
    sl_var *y = graph(t, a, b);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    memcpy(sl_leaf_data(a), A1, sizeof A1);
    memcpy(sl_leaf_data(b), B1, sizeof B1);
    cr_assert_eq(sl_forward(t), SL_OK);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    sl_tape *f = sl_tape_new();
    sl_var *af = sl_input(f, 2, (int[]){2, 3}, A1, SL_GRAD);
    sl_var *bf = sl_input(f, 1, (int[]){3}, B1, SL_GRAD);
    sl_var *yf = graph(f, af, bf);
    cr_assert_eq(sl_backward(f, yf), SL_OK);
    cr_expect_eq(sl_item(y), sl_item(yf));
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_grad(a)[i], sl_grad(af)[i], "da[%d]", i);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(b)[i], sl_grad(bf)[i], "db[%d]", i);
    sl_tape_free(f);
    sl_tape_free(t);
}

/* ------------------------------------------- the checker against wrong rules */

/* A user op with the built-in's shape, forward and tangent rules and a
 * backward given here: the checker must pass the right one and catch the
 * wrong one. The registry keeps the pointer, so the descriptors are static.
 * Only wrong rules visible at generic points are here: the check has no tie
 * case for a binary op, so maximum giving g to both inputs at a == b (which
 * the tests above catch) is invisible to it. */
static sl_op ok_op, bad_op;
static const sl_op *builtin(const char *name) {
    const sl_op *op = sl_op_find(name);
    cr_assert_not_null(op, "%s is registered", name);
    return op;
}
static void expect_checker(const char *name, const char *as, sl_backward_fn wrong,
                           const char *failed) {
    sl_gradcheck_report rep;
    char ok_name[64];
    snprintf(ok_name, sizeof ok_name, "%s_ok", as);
    ok_op = *builtin(name), ok_op.name = ok_name;
    cr_assert_eq(sl_op_register(&ok_op), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(&ok_op, NULL, &rep), SL_OK, "%s: %s", ok_name, rep.message);
    bad_op = *builtin(name), bad_op.name = as, bad_op.backward = wrong;
    cr_assert_eq(sl_op_register(&bad_op), SL_OK, "%s", sl_op_register_error());
    cr_expect_eq(sl_gradcheck_op(&bad_op, NULL, &rep), SL_EGRAD, "%s passed", as);
    cr_expect_str_eq(rep.failed, failed, "%s: %s", as, rep.message);
}

/* maximum with minimum's rule (the gradient to the smaller input) and the
 * other way round: a copy-paste slip, caught at any point without a tie. */
Test(select, the_checker_catches_the_other_ops_rule) {
    expect_checker("maximum", "ts_maximum_min_rule", builtin("minimum")->backward, "vjp");
}
Test(select, the_checker_catches_the_other_ops_rule_minimum) {
    expect_checker("minimum", "ts_minimum_max_rule", builtin("maximum")->backward, "vjp");
}

/* clamp passing the gradient everywhere (the bounds forgotten) */
static void clamp_bwd_identity(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    for (size_t i = 0; dx && i < sl_numel(out); i++) dx[i] += sl_grad(out)[i];
}
/* clamp with the bounds outside (lo < x < hi): wrong only exactly at lo and
 * hi, which the kink cases visit */
static void clamp_bwd_open(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const sl_attrs *a = sl_attrs_of(out);
    double *dx = sl_grad_data(x);
    for (size_t i = 0; dx && i < sl_numel(out); i++) {
        const double z = sl_value(x)[i];
        dx[i] += a->alpha < z && z < a->beta ? sl_grad(out)[i] : 0.0;
    }
}
Test(select, the_checker_catches_clamp_with_gradient_outside_the_range) {
    expect_checker("clamp", "ts_clamp_identity", clamp_bwd_identity, "vjp");
}
Test(select, the_checker_catches_clamp_with_open_bounds) {
    expect_checker("clamp", "ts_clamp_open", clamp_bwd_open, "kink");
    sl_gradcheck_report rep;
    sl_gradcheck_op(&bad_op, NULL, &rep);
    cr_expect(contains(rep.message, "the backward rule gives 0 exactly at the kink z = -0.5, but "
                                    "the op declares 1"),
              "%s", rep.message);
}

/* lo = hi makes clamp a constant: the gradient checker holds it to the
 * one-sided slopes (0 and 0) at x = lo too (PyTorch's 1 there failed fd). */
Test(select, clamp_with_equal_bounds_passes_the_checker_at_the_bound) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){-1, 0.5, 2}, SL_GRAD);
    sl_var *y = sl_sum(t, sl_clamp(t, x, 0.5, 0.5), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 1, &x, NULL, &r), SL_OK, "%s", r.message);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[i], 0.0, "dx[%d]", i);
    sl_tape_free(t);
}
