/*
 * test_linalg.c - matmul (values, dA = G B^T, dB = A^T G, against triple
 * loops written here), its shape errors with their exact messages,
 * transpose, and reshape (with an inferred -1, and the errors of a wrong
 * element count).
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>

static void fill(double *v, size_t n, double a, double b) {
    for (size_t i = 0; i < n; i++)
        v[i] = sin(a * (double)i + b) * 1.5;
}

/* C (m,n) = A (m,k) B (k,n), the textbook triple loop */
static void ref_matmul(int m, int k, int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += A[i * k + p] * B[p * n + j];
            C[i * n + j] = s;
        }
}

static void check_matmul(int m, int k, int n) {
    double A[64], B[64], G[64], C[64], dA[64], dB[64];
    fill(A, (size_t)(m * k), 0.7, 0.1);
    fill(B, (size_t)(k * n), 1.3, -0.4);
    fill(G, (size_t)(m * n), 0.9, 2.0);
    ref_matmul(m, k, n, A, B, C);
    /* dA = G B^T: dA[i,p] = sum_j G[i,j] B[p,j];  dB = A^T G: dB[p,j] = sum_i A[i,p] G[i,j] */
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++) {
            double s = 0;
            for (int j = 0; j < n; j++)
                s += G[i * n + j] * B[p * n + j];
            dA[i * k + p] = s;
        }
    for (int p = 0; p < k; p++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int i = 0; i < m; i++)
                s += A[i * k + p] * G[i * n + j];
            dB[p * n + j] = s;
        }
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){m, k}, A, SL_GRAD);
    sl_var *b = sl_input(t, 2, (int[]){k, n}, B, SL_GRAD);
    sl_var *c = sl_matmul(t, a, b);
    cr_assert_not_null(c, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(c), 2);
    cr_assert_eq(sl_dims(c)[0], m);
    cr_assert_eq(sl_dims(c)[1], n);
    for (int i = 0; i < m * n; i++)
        cr_expect(near(sl_value(c)[i], C[i], 1e-14, 1e-15),
                  "[%d,%d]x[%d,%d] C[%d] = %.17g, want %.17g", m, k, k, n, i, sl_value(c)[i], C[i]);
    cr_assert_eq(sl_backward_seed(t, c, G), SL_OK);
    for (int i = 0; i < m * k; i++)
        cr_expect(near(sl_grad(a)[i], dA[i], 1e-14, 1e-15),
                  "[%d,%d]x[%d,%d] dA[%d] = %.17g, want %.17g", m, k, k, n, i, sl_grad(a)[i],
                  dA[i]);
    for (int i = 0; i < k * n; i++)
        cr_expect(near(sl_grad(b)[i], dB[i], 1e-14, 1e-15),
                  "[%d,%d]x[%d,%d] dB[%d] = %.17g, want %.17g", m, k, k, n, i, sl_grad(b)[i],
                  dB[i]);
    sl_tape_free(t);
}

Test(linalg, matmul_values_and_gradients) {
    static const int shapes[][3] = {{2, 3, 4}, {1, 1, 1}, {4, 1, 3}, {1, 5, 1},
                                    {3, 3, 3}, {5, 2, 1}, {1, 4, 6}, {6, 7, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        check_matmul(shapes[s][0], shapes[s][1], shapes[s][2]);
}

Test(linalg, matmul_small_by_hand) {
    /* [[1,2],[3,4]] . [[5,6],[7,8]] = [[19,22],[43,50]] */
    const double A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){2, 2}, A, SL_GRAD);
    sl_var *b = sl_input(t, 2, (int[]){2, 2}, B, SL_GRAD);
    sl_var *c = sl_matmul(t, a, b);
    const double want[4] = {19, 22, 43, 50};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(sl_value(c)[i], want[i]);
    /* y = sum(C): dA = 1 B^T -> row sums of B per column; dB = A^T 1 */
    cr_assert_eq(sl_backward(t, sl_sum(t, c, SL_ALL, 0)), SL_OK);
    const double dA[4] = {11, 15, 11, 15}, dB[4] = {4, 4, 6, 6};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sl_grad(a)[i], dA[i], "dA[%d]", i);
        cr_expect_eq(sl_grad(b)[i], dB[i], "dB[%d]", i);
    }
    sl_tape_free(t);
}

/* x^T W x style reuse: the same node on both sides of matmul. */
Test(linalg, matmul_same_node_twice) {
    const double A[4] = {1, 2, 3, 4};
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){2, 2}, A, SL_GRAD);
    sl_var *y = sl_sum(t, sl_matmul(t, a, a), SL_ALL, 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    /* d/dA sum(A A) = 1 A^T + A^T 1: [i,p] = sum_j A[p,j] + sum_i' A[i',i] */
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 2; p++) {
            double want = (A[p * 2] + A[p * 2 + 1]) + (A[i] + A[2 + i]);
            cr_expect_eq(sl_grad(a)[i * 2 + p], want, "dA[%d,%d]", i, p);
        }
    sl_tape_free(t);
}

Test(linalg, matmul_inner_dimension_message) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
    sl_var *b = sl_input(t, 2, (int[]){4, 5}, NULL, SL_GRAD);
    cr_expect_null(sl_matmul(t, a, b));
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    cr_expect_str_eq(sl_tape_error(t), "sl_matmul: inner dimensions differ: [2,3] x [4,5]");
    sl_tape_free(t);
}

Test(linalg, matmul_needs_2d) {
    static const struct {
        int na, da[4], nb, db[4];
        const char *sa, *sb;
    } cases[] = {
        {1, {3}, 2, {3, 2}, "[3]", "[3,2]"},
        {2, {2, 3}, 1, {3}, "[2,3]", "[3]"},
        {0, {0}, 2, {1, 1}, "[]", "[1,1]"},
        {3, {1, 2, 3}, 2, {3, 2}, "[1,2,3]", "[3,2]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, cases[i].na, cases[i].da, NULL, 0);
        sl_var *b = sl_input(t, cases[i].nb, cases[i].db, NULL, 0);
        cr_expect_null(sl_matmul(t, a, b));
        cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
        const char *m = sl_tape_error(t);
        cr_expect(contains(m, "sl_matmul") && contains(m, "2-D") && contains(m, cases[i].sa) &&
                      contains(m, cases[i].sb),
                  "case %zu: %s", i, m);
        sl_tape_free(t);
    }
}

Test(linalg, transpose_values_and_gradients) {
    const double X[6] = {1, 2, 3, 4, 5, 6}, G[6] = {0.5, -1, 2, 3, -4, 0.25};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){2, 3}, X, SL_GRAD);
    sl_var *y = sl_transpose(t, x);
    cr_assert_not_null(y);
    cr_assert_eq(sl_ndim(y), 2);
    cr_expect_eq(sl_dims(y)[0], 3);
    cr_expect_eq(sl_dims(y)[1], 2);
    const double want[6] = {1, 4, 2, 5, 3, 6};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(sl_value(y)[i], want[i], "y[%d]", i);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK); /* G is [3,2]; dx = G^T [2,3] */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            cr_expect_eq(sl_grad(x)[i * 3 + j], G[j * 2 + i]);
    sl_tape_free(t);
    /* a 1-D input is an error naming sl_transpose and the shape */
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){4}, NULL, 0);
    cr_expect_null(sl_transpose(t, x));
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    cr_expect(contains(sl_tape_error(t), "sl_transpose") && contains(sl_tape_error(t), "[4]"), "%s",
              sl_tape_error(t));
    sl_tape_free(t);
}

/* (A B)^T = B^T A^T, through the tape */
Test(linalg, transpose_identity) {
    double A[6], B[12];
    fill(A, 6, 0.3, 0.2);
    fill(B, 12, 0.8, 1.0);
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){2, 3}, A, 0), *b = sl_input(t, 2, (int[]){3, 4}, B, 0);
    sl_var *l = sl_transpose(t, sl_matmul(t, a, b));
    sl_var *r = sl_matmul(t, sl_transpose(t, b), sl_transpose(t, a));
    cr_assert_eq(sl_numel(l), 8);
    for (int i = 0; i < 8; i++)
        cr_expect(near(sl_value(l)[i], sl_value(r)[i], 1e-15, 1e-15));
    sl_tape_free(t);
}

Test(linalg, reshape_with_inferred_dim) {
    double X[24], G[24];
    for (int i = 0; i < 24; i++)
        X[i] = i, G[i] = 0.5 * i - 3;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 3, (int[]){2, 3, 4}, X, SL_GRAD);
    sl_var *y = sl_reshape(t, x, 2, (int[]){4, -1});
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), 2);
    cr_expect_eq(sl_dims(y)[0], 4);
    cr_expect_eq(sl_dims(y)[1], 6, "-1 is inferred as 24/4");
    for (int i = 0; i < 24; i++)
        cr_expect_eq(sl_value(y)[i], X[i], "row-major data unchanged");
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK);
    for (int i = 0; i < 24; i++)
        cr_expect_eq(sl_grad(x)[i], G[i]);
    /* -1 anywhere, and to/from rank 0 */
    sl_var *z = sl_reshape(t, x, 4, (int[]){-1, 2, 1, 3});
    cr_assert_not_null(z);
    cr_expect_eq(sl_dims(z)[0], 4);
    sl_var *s = sl_reshape(t, sl_input(t, 2, (int[]){1, 1}, X + 5, 0), 0, NULL);
    cr_assert_not_null(s, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(s), 0);
    cr_expect_eq(sl_item(s), 5.0);
    sl_var *u = sl_reshape(t, s, 3, (int[]){1, -1, 1});
    cr_assert_not_null(u);
    cr_expect_eq(sl_dims(u)[1], 1);
    sl_tape_free(t);
}

Test(linalg, reshape_wrong_count_names_both_shapes) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
    cr_expect_null(sl_reshape(t, x, 2, (int[]){4, 2}));
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    const char *m = sl_tape_error(t);
    cr_expect(contains(m, "sl_reshape") && contains(m, "[2,3]") && contains(m, "[4,2]"), "%s", m);
    sl_tape_free(t);
    /* a -1 that cannot be inferred */
    t = sl_tape_new();
    x = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
    cr_expect_null(sl_reshape(t, x, 2, (int[]){4, -1}));
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    cr_expect(contains(sl_tape_error(t), "sl_reshape") && contains(sl_tape_error(t), "[2,3]"), "%s",
              sl_tape_error(t));
    sl_tape_free(t);
}

Test(linalg, reshape_bad_arguments) {
    static const struct {
        int ndim, dims[4];
    } cases[] = {{2, {-1, -1}}, {2, {0, 6}}, {1, {-2}}, {5, {1, 1, 1, 1}}, {-1, {6}}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, 0);
        cr_expect_null(sl_reshape(t, x, cases[i].ndim, cases[i].dims), "case %zu", i);
        cr_expect_neq(sl_tape_status(t), SL_OK);
        cr_expect(contains(sl_tape_error(t), "sl_reshape"), "case %zu: %s", i, sl_tape_error(t));
        sl_tape_free(t);
    }
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){6}, NULL, 0);
    cr_expect_null(sl_reshape(t, x, 2, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    sl_tape_free(t);
}

/* The shared kernel: all four transpose flags against the triple loop. */
Test(linalg, gemm_all_transposes) {
    enum { M = 3, K = 4, NN = 5 };
    double A[M * K], At[K * M], B[K * NN], Bt[NN * K], want[M * NN], C[M * NN];
    fill(A, M * K, 0.4, 0.3);
    fill(B, K * NN, 1.1, -0.2);
    for (int i = 0; i < M; i++)
        for (int p = 0; p < K; p++)
            At[p * M + i] = A[i * K + p];
    for (int p = 0; p < K; p++)
        for (int j = 0; j < NN; j++)
            Bt[j * K + p] = B[p * NN + j];
    ref_matmul(M, K, NN, A, B, want);
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (int acc = 0; acc <= 1; acc++) {
                for (int i = 0; i < M * NN; i++)
                    C[i] = acc ? 1.0 : 1e300; /* garbage unless acc */
                sl__gemm(ta, tb, M, NN, K, ta ? At : A, tb ? Bt : B, C, acc);
                for (int i = 0; i < M * NN; i++)
                    cr_expect(near(C[i], want[i] + (acc ? 1.0 : 0.0), 1e-14, 1e-14),
                              "ta %d tb %d acc %d: C[%d] = %.17g", ta, tb, acc, i, C[i]);
            }
}
