/*
 * test_shape.c - shapes and NumPy broadcasting: sl__broadcast on NumPy's own
 * examples, the helpers (shape strings, element counts, axes, undoing a
 * broadcast), and add/sub/mul/div forward values over broadcast shapes of
 * rank 0..4 against a reference loop written here from NumPy's rule (right-
 * align the shapes; a size-1 axis repeats).
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>

static void expect_bcast(int na, const int *da, int nb, const int *db, int nwant, const int *want) {
    int nd = -1, d[SL_MAX_DIMS] = {0};
    char sa[64], sb[64];
    sl__shape_str(sa, na, da);
    sl__shape_str(sb, nb, db);
    cr_assert(sl__broadcast(na, da, nb, db, &nd, d), "%s with %s must broadcast", sa, sb);
    cr_expect_eq(nd, nwant, "%s with %s: rank %d, want %d", sa, sb, nd, nwant);
    for (int i = 0; i < nwant && i < nd; i++)
        cr_expect_eq(d[i], want[i], "%s with %s: dim %d is %d, want %d", sa, sb, i, d[i], want[i]);
    /* broadcasting is symmetric */
    int nd2 = -1, d2[SL_MAX_DIMS] = {0};
    cr_assert(sl__broadcast(nb, db, na, da, &nd2, d2));
    cr_expect_eq(nd2, nd);
    for (int i = 0; i < nd; i++) cr_expect_eq(d2[i], d[i]);
}

Test(shape, broadcast_numpy_examples) {
    /* from NumPy's broadcasting guide */
    expect_bcast(3, (int[]){2, 1, 3}, 2, (int[]){4, 3}, 3, (int[]){2, 4, 3});
    expect_bcast(1, (int[]){3}, 2, (int[]){2, 3}, 2, (int[]){2, 3});
    expect_bcast(4, (int[]){8, 1, 6, 1}, 3, (int[]){7, 1, 5}, 4, (int[]){8, 7, 6, 5});
    expect_bcast(2, (int[]){5, 4}, 1, (int[]){1}, 2, (int[]){5, 4});
    expect_bcast(2, (int[]){5, 4}, 1, (int[]){4}, 2, (int[]){5, 4});
    expect_bcast(3, (int[]){15, 3, 5}, 3, (int[]){15, 1, 5}, 3, (int[]){15, 3, 5});
    expect_bcast(3, (int[]){15, 3, 5}, 2, (int[]){3, 1}, 3, (int[]){15, 3, 5});
    /* rank 0 broadcasts against anything */
    expect_bcast(0, NULL, 2, (int[]){2, 3}, 2, (int[]){2, 3});
    expect_bcast(0, NULL, 0, NULL, 0, NULL);
    expect_bcast(1, (int[]){1}, 0, NULL, 1, (int[]){1});
    expect_bcast(4, (int[]){1, 1, 1, 1}, 0, NULL, 4, (int[]){1, 1, 1, 1});
    expect_bcast(4, (int[]){2, 1, 4, 1}, 4, (int[]){1, 3, 1, 5}, 4, (int[]){2, 3, 4, 5});
}

Test(shape, broadcast_incompatible) {
    int nd = 0, d[SL_MAX_DIMS];
    cr_expect_not(sl__broadcast(2, (int[]){2, 3}, 2, (int[]){3, 2}, &nd, d));
    cr_expect_not(sl__broadcast(1, (int[]){3}, 1, (int[]){4}, &nd, d));
    cr_expect_not(sl__broadcast(2, (int[]){2, 1}, 3, (int[]){8, 4, 3}, &nd, d));
    cr_expect_not(sl__broadcast(1, (int[]){2}, 2, (int[]){2, 3}, &nd, d), "[2] right-aligns to 3");
}

Test(shape, shape_strings_and_counts) {
    char buf[64];
    cr_expect_str_eq(sl__shape_str(buf, 2, (int[]){2, 3}), "[2,3]");
    cr_expect_str_eq(sl__shape_str(buf, 0, NULL), "[]");
    cr_expect_str_eq(sl__shape_str(buf, 1, (int[]){17}), "[17]");
    cr_expect_str_eq(sl__shape_str(buf, 4, (int[]){1, 20, 300, 4000}), "[1,20,300,4000]");
    cr_expect_str_eq(sl__shape_str(buf, 4, (int[]){2147483647, 2147483647, 2147483647, 2147483647}),
                     "[2147483647,2147483647,2147483647,2147483647]");
    cr_expect_eq(sl__numel(0, NULL), 1);
    cr_expect_eq(sl__numel(3, (int[]){2, 3, 4}), 24);
}

Test(shape, axis_normalisation) {
    int a = 99;
    cr_expect(sl__axis(SL_ALL, 3, &a));
    cr_expect_eq(a, SL_ALL);
    cr_expect(sl__axis(-1, 3, &a));
    cr_expect_eq(a, 2);
    cr_expect(sl__axis(-3, 3, &a));
    cr_expect_eq(a, 0);
    cr_expect(sl__axis(1, 3, &a));
    cr_expect_eq(a, 1);
    cr_expect_not(sl__axis(3, 3, &a));
    cr_expect_not(sl__axis(-4, 3, &a));
    /* rank 0: 0 and -1 mean every axis, as PyTorch's dim on a 0-d tensor */
    a = 7;
    cr_expect(sl__axis(0, 0, &a));
    cr_expect_eq(a, SL_ALL);
    a = 7;
    cr_expect(sl__axis(-1, 0, &a));
    cr_expect_eq(a, SL_ALL);
    cr_expect_not(sl__axis(1, 0, &a));
    cr_expect_not(sl__axis(-2, 0, &a));
    cr_expect(sl__axis(SL_ALL, 0, &a));
}

/* ---- reference broadcasting: index arithmetic from NumPy's rule ---- */

typedef struct shp {
    int n;
    int d[SL_MAX_DIMS];
} shp;

/* flat index into x (shape xs) for the output index idx (shape os) */
static size_t src_index(const shp *xs, const shp *os, const int *idx) {
    size_t off = 0, stride = 1;
    for (int i = xs->n - 1; i >= 0; i--) {
        int oi = i + (os->n - xs->n); /* right-aligned */
        int k = xs->d[i] == 1 ? 0 : idx[oi];
        off += (size_t)k * stride;
        stride *= (size_t)xs->d[i];
    }
    return off;
}

static size_t numel_of(const shp *s) {
    size_t n = 1;
    for (int i = 0; i < s->n; i++) n *= (size_t)s->d[i];
    return n;
}

static double apply_op(int op, double a, double b) {
    switch (op) {
    case 0:
        return a + b;
    case 1:
        return a - b;
    case 2:
        return a * b;
    default:
        return a / b;
    }
}

static sl_var *slope_op(sl_tape *t, int op, sl_var *a, sl_var *b) {
    switch (op) {
    case 0:
        return sl_add(t, a, b);
    case 1:
        return sl_sub(t, a, b);
    case 2:
        return sl_mul(t, a, b);
    default:
        return sl_div(t, a, b);
    }
}

Test(shape, binary_forward_values_with_broadcasting) {
    static const struct {
        shp a, b, out;
    } cases[] = {
        {{0, {0}}, {0, {0}}, {0, {0}}},
        {{0, {0}}, {2, {2, 3}}, {2, {2, 3}}},
        {{2, {2, 3}}, {0, {0}}, {2, {2, 3}}},
        {{1, {3}}, {2, {2, 3}}, {2, {2, 3}}},
        {{2, {2, 3}}, {1, {3}}, {2, {2, 3}}},
        {{2, {2, 1}}, {2, {1, 3}}, {2, {2, 3}}},
        {{3, {2, 1, 3}}, {2, {4, 3}}, {3, {2, 4, 3}}},
        {{2, {4, 1}}, {3, {2, 1, 3}}, {3, {2, 4, 3}}},
        {{4, {2, 1, 4, 1}}, {3, {3, 1, 5}}, {4, {2, 3, 4, 5}}},
        {{4, {1, 3, 1, 2}}, {4, {2, 1, 4, 1}}, {4, {2, 3, 4, 2}}},
        {{4, {2, 3, 4, 5}}, {4, {2, 3, 4, 5}}, {4, {2, 3, 4, 5}}},
        {{1, {1}}, {4, {2, 2, 2, 2}}, {4, {2, 2, 2, 2}}},
        {{4, {1, 1, 1, 1}}, {1, {5}}, {4, {1, 1, 1, 5}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const shp *sa = &cases[c].a, *sb = &cases[c].b, *so = &cases[c].out;
        size_t na = numel_of(sa), nb = numel_of(sb), no = numel_of(so);
        double A[256], B[256];
        for (size_t i = 0; i < na; i++) A[i] = 0.25 * (double)i - 1.5;
        for (size_t i = 0; i < nb; i++) B[i] = 0.5 + 0.125 * (double)i; /* nonzero: div */
        for (int op = 0; op < 4; op++) {
            sl_tape *t = sl_tape_new();
            sl_var *a = sl_input(t, sa->n, sa->d, A, 0), *b = sl_input(t, sb->n, sb->d, B, 0);
            sl_var *o = slope_op(t, op, a, b);
            cr_assert_not_null(o, "case %zu op %d: %s", c, op, sl_tape_error(t));
            cr_assert_eq(sl_ndim(o), so->n, "case %zu", c);
            for (int i = 0; i < so->n; i++) cr_expect_eq(sl_dims(o)[i], so->d[i]);
            cr_assert_eq(sl_numel(o), no);
            /* walk the output in row-major order */
            int idx[SL_MAX_DIMS] = {0};
            for (size_t k = 0; k < no; k++) {
                double want = apply_op(op, A[src_index(sa, so, idx)], B[src_index(sb, so, idx)]);
                cr_expect_eq(sl_value(o)[k], want, "case %zu op %d elem %zu: %.17g, want %.17g", c,
                             op, k, sl_value(o)[k], want);
                for (int i = so->n - 1; i >= 0; i--) { /* increment the multi-index */
                    if (++idx[i] < so->d[i]) break;
                    idx[i] = 0;
                }
            }
            sl_tape_free(t);
        }
    }
}

Test(shape, broadcast_error_names_op_and_shapes) {
    static const char *names[] = {"sl_add", "sl_sub", "sl_mul", "sl_div"};
    for (int op = 0; op < 4; op++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
        sl_var *b = sl_input(t, 2, (int[]){3, 2}, NULL, 0);
        cr_expect_null(slope_op(t, op, a, b));
        cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
        const char *m = sl_tape_error(t);
        cr_expect(contains(m, names[op]) && contains(m, "[2,3]") && contains(m, "[3,2]"),
                  "message \"%s\" must name %s, [2,3] and [3,2]", m, names[op]);
        sl_tape_free(t);
    }
    /* rank mismatch that still fails: [4] vs [2,3] */
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 1, (int[]){4}, NULL, 0);
    sl_var *b = sl_input(t, 2, (int[]){2, 3}, NULL, 0);
    cr_expect_null(sl_add(t, a, b));
    cr_expect(contains(sl_tape_error(t), "[4]") && contains(sl_tape_error(t), "[2,3]"), "%s",
              sl_tape_error(t));
    sl_tape_free(t);
}

/* sl__unbroadcast_acc sums dout over the axes x was broadcast along. */
Test(shape, unbroadcast_sums_over_broadcast_axes) {
    sl_tape *t = sl_tape_new();
    double g[24];
    for (int i = 0; i < 24; i++) g[i] = (double)(i + 1);
    sl_var *out = sl_input(t, 3, (int[]){2, 3, 4}, g, 0);
    /* x [4]: sum over axes 0, 1 */
    sl_var *x = sl_input(t, 1, (int[]){4}, NULL, 0);
    double dx[4] = {1, 1, 1, 1}; /* += : starts from what is there */
    sl__unbroadcast_acc(dx, x, g, NULL, 1.0, out);
    for (int k = 0; k < 4; k++) {
        double s = 1;
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) s += g[(i * 3 + j) * 4 + k];
        cr_expect_eq(dx[k], s, "dx[%d]", k);
    }
    /* x [2,1,4]: sum over axis 1 */
    sl_var *y = sl_input(t, 3, (int[]){2, 1, 4}, NULL, 0);
    double dy[8] = {0};
    sl__unbroadcast_acc(dy, y, g, NULL, 1.0, out);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++) {
            double s = 0;
            for (int j = 0; j < 3; j++) s += g[(i * 3 + j) * 4 + k];
            cr_expect_eq(dy[i * 4 + k], s);
        }
    /* x [3,1]: sum over axes 0 and 2 */
    sl_var *z = sl_input(t, 2, (int[]){3, 1}, NULL, 0);
    double dz[3] = {0};
    sl__unbroadcast_acc(dz, z, g, NULL, 1.0, out);
    for (int j = 0; j < 3; j++) {
        double s = 0;
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 4; k++) s += g[(i * 3 + j) * 4 + k];
        cr_expect_eq(dz[j], s);
    }
    /* a scalar gets the total; the same shape gets dout itself */
    sl_var *s0 = sl_scalar(t, 0, 0);
    double ds = 0;
    sl__unbroadcast_acc(&ds, s0, g, NULL, 1.0, out);
    cr_expect_eq(ds, 300.0);
    double dsame[24] = {0};
    sl__unbroadcast_acc(dsame, out, g, NULL, 1.0, out);
    for (int i = 0; i < 24; i++) cr_expect_eq(dsame[i], g[i]);
    sl_tape_free(t);
}

/* With a weight input and a sign, and along long innermost axes (the
 * partial-sum path, every length around its 8-wide steps): integers, so
 * every order of summation gives the exact sums computed here. */
Test(shape, unbroadcast_weighted_and_long_axes) {
    for (int len = 1; len <= 40; len++) {
        sl_tape *t = sl_tape_new();
        const int n = 2 * 3 * len;
        double g[240], wv[240], wr[3];
        for (int i = 0; i < n; i++) g[i] = (double)(i % 17) - 5.0, wv[i] = (double)(i % 5) - 2.0;
        for (int j = 0; j < 3; j++) wr[j] = (double)j - 0.5;
        sl_var *out = sl_input(t, 3, (int[]){2, 3, len}, g, 0);
        sl_var *x = sl_input(t, 3, (int[]){2, 3, 1}, NULL, 0); /* a bias over each row */
        sl_var *wfull = sl_input(t, 3, (int[]){2, 3, len}, wv, 0);
        sl_var *wrow = sl_input(t, 2, (int[]){3, 1}, wr, 0); /* broadcast on the long axis */
        sl_var *wcol = sl_input(t, 1, (int[]){len}, wv, 0);  /* strided: stride 1, no rows */
        sl_var *ws[4] = {NULL, wfull, wrow, wcol};
        for (int wi = 0; wi < 4; wi++)
            for (int sg = -1; sg <= 1; sg += 2) {
                double dx[6] = {1, 2, 3, 4, 5, 6}, want[6];
                for (int r = 0; r < 6; r++) {
                    double s = 0;
                    for (int i = 0; i < len; i++) {
                        const int k = r * len + i;
                        const double w = wi == 0   ? 1.0
                                         : wi == 1 ? wv[k]
                                         : wi == 2 ? wr[r % 3]
                                                   : wv[i];
                        s += g[k] * w;
                    }
                    want[r] = (double)(r + 1) + sg * s;
                }
                sl__unbroadcast_acc(dx, x, g, ws[wi], (double)sg, out);
                for (int r = 0; r < 6; r++)
                    cr_expect_eq(dx[r], want[r], "len %d, weight %d, sign %d: dx[%d] = %g, want %g",
                                 len, wi, sg, r, dx[r], want[r]);
            }
        sl_tape_free(t);
    }
}
