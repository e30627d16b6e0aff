/*
 * test_linalg.c - matmul (values, dA = G B^T, dB = A^T G, against triple
 * loops written here), its shape errors with their exact messages,
 * transpose, and reshape (with an inferred -1, and the errors of a wrong
 * element count). Batched matmul against a reference over explicit batch
 * multi-indices (broadcast either way, ranks 2-4, the packed path) and
 * numbers from PyTorch; transpose at rank 3-4 and permute at every rank
 * against index maps; their errors, replay, and a multi-head attention
 * block gradient-checked whole.
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <malloc.h>
#include <threads.h>

static void fill(double *v, size_t n, double a, double b) {
    for (size_t i = 0; i < n; i++) v[i] = sin(a * (double)i + b) * 1.5;
}

/* C (m,n) = A (m,k) B (k,n), the textbook triple loop */
static void ref_matmul(int m, int k, int n, const double *A, const double *B, double *C) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += A[i * k + p] * B[p * n + j];
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
            for (int j = 0; j < n; j++) s += G[i * n + j] * B[p * n + j];
            dA[i * k + p] = s;
        }
    for (int p = 0; p < k; p++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int i = 0; i < m; i++) s += A[i * k + p] * G[i * n + j];
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
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_value(c)[i], want[i]);
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
        {3, {1, 2, 3}, 1, {3}, "[1,2,3]", "[3]"}, /* [1,2,3] x [3,2] is a batched product */
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
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_value(y)[i], want[i], "y[%d]", i);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK); /* G is [3,2]; dx = G^T [2,3] */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) cr_expect_eq(sl_grad(x)[i * 3 + j], G[j * 2 + i]);
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
    for (int i = 0; i < 8; i++) cr_expect(near(sl_value(l)[i], sl_value(r)[i], 1e-15, 1e-15));
    sl_tape_free(t);
}

Test(linalg, reshape_with_inferred_dim) {
    double X[24], G[24];
    for (int i = 0; i < 24; i++) X[i] = i, G[i] = 0.5 * i - 3;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 3, (int[]){2, 3, 4}, X, SL_GRAD);
    sl_var *y = sl_reshape(t, x, 2, (int[]){4, -1});
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), 2);
    cr_expect_eq(sl_dims(y)[0], 4);
    cr_expect_eq(sl_dims(y)[1], 6, "-1 is inferred as 24/4");
    for (int i = 0; i < 24; i++) cr_expect_eq(sl_value(y)[i], X[i], "row-major data unchanged");
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK);
    for (int i = 0; i < 24; i++) cr_expect_eq(sl_grad(x)[i], G[i]);
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
    /* the message says which argument is wrong */
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){6}, NULL, 0);
    cr_expect_null(sl_reshape(t, x, 2, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect_str_eq(sl_tape_error(t), "sl_reshape: dims is NULL for ndim = 2");
    sl_tape_free(t);
    t = sl_tape_new();
    x = sl_input(t, 1, (int[]){6}, NULL, 0);
    cr_expect_null(sl_reshape(t, x, 5, (int[]){1, 1, 1, 1, 6}));
    cr_expect_str_eq(sl_tape_error(t), "sl_reshape: ndim = 5, must be 0..4");
    sl_tape_free(t);
}

/* The shared kernel: all four transpose flags against the triple loop. */
Test(linalg, gemm_all_transposes) {
    enum { M = 3, K = 4, NN = 5 };
    double A[M * K], At[K * M], B[K * NN], Bt[NN * K], want[M * NN], C[M * NN];
    fill(A, M * K, 0.4, 0.3);
    fill(B, K * NN, 1.1, -0.2);
    for (int i = 0; i < M; i++)
        for (int p = 0; p < K; p++) At[p * M + i] = A[i * K + p];
    for (int p = 0; p < K; p++)
        for (int j = 0; j < NN; j++) Bt[j * K + p] = B[p * NN + j];
    ref_matmul(M, K, NN, A, B, want);
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (int acc = 0; acc <= 1; acc++) {
                for (int i = 0; i < M * NN; i++) C[i] = acc ? 1.0 : 1e300; /* garbage unless acc */
                sl__gemm(ta, tb, M, NN, K, ta ? At : A, tb ? Bt : B, C, acc);
                for (int i = 0; i < M * NN; i++)
                    cr_expect(near(C[i], want[i] + (acc ? 1.0 : 0.0), 1e-14, 1e-14),
                              "ta %d tb %d acc %d: C[%d] = %.17g", ta, tb, acc, i, C[i]);
            }
}

/* ------------------------------------------------------------------ gemm.c
 * The packed/blocked kernel and the direct small-shape path, every micro-
 * kernel this CPU can run, forced through each path and through tiny cache
 * blocks (so that every KC/MC/NC edge is crossed), all four transpose
 * combinations, overwrite and accumulate; against a long double triple loop.
 * Tolerance: 1e-13 of sum_p |op(A)[i,p] op(B)[p,j]| (the scale of the
 * rounding error of any summation order), plus 1e-300. */

/* test hooks in src/ops/gemm.c (not in internal.h: tests only) */
int sl__gemm_config(const char *kernel, int path, size_t kc, size_t mc, size_t nc);
const char *sl__gemm_kernel_name(void);

typedef struct gemm_case {
    size_t m, k, n;
    double *A, *At, *B, *Bt; /* op(A) (m,k) row-major and stored transposed; same for B */
    double *C0;              /* what C holds before an accumulating call */
    double *want, *scale;    /* op(A) op(B) in long double, and sum |a b| */
} gemm_case;

static void gemm_case_new(gemm_case *g, size_t m, size_t k, size_t n) {
    g->m = m, g->k = k, g->n = n;
    g->A = malloc(m * k * sizeof(double));
    g->At = malloc(m * k * sizeof(double));
    g->B = malloc(k * n * sizeof(double));
    g->Bt = malloc(k * n * sizeof(double));
    g->C0 = malloc(m * n * sizeof(double));
    g->want = malloc(m * n * sizeof(double));
    g->scale = malloc(m * n * sizeof(double));
    cr_assert(g->A && g->At && g->B && g->Bt && g->C0 && g->want && g->scale);
    fill(g->A, m * k, 0.71, 0.3);
    fill(g->B, k * n, 1.37, -0.2);
    fill(g->C0, m * n, 0.23, 1.1);
    for (size_t i = 0; i < m; i++)
        for (size_t p = 0; p < k; p++) g->At[p * m + i] = g->A[i * k + p];
    for (size_t p = 0; p < k; p++)
        for (size_t j = 0; j < n; j++) g->Bt[j * k + p] = g->B[p * n + j];
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            long double s = 0, a = 0;
            for (size_t p = 0; p < k; p++) {
                const long double t = (long double)g->A[i * k + p] * g->B[p * n + j];
                s += t;
                a += fabsl(t);
            }
            g->want[i * n + j] = (double)s;
            g->scale[i * n + j] = (double)a;
        }
}

static void gemm_case_free(gemm_case *g) {
    free(g->A), free(g->At), free(g->B), free(g->Bt), free(g->C0), free(g->want), free(g->scale);
}

/* Runs the four transpose combinations with accumulate 0 and 1 through
 * sl__gemm as configured now; returns the number of wrong elements. */
static int gemm_case_run(const gemm_case *g, const char *what) {
    const size_t m = g->m, n = g->n, k = g->k;
    double *C = malloc((m * n + 1) * sizeof(double));
    cr_assert_not_null(C);
    int bad = 0;
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++)
            for (int acc = 0; acc <= 1; acc++) {
                for (size_t i = 0; i < m * n; i++)
                    C[i] = acc ? g->C0[i] : NAN; /* never read unless accumulating */
                C[m * n] = 12345.0;              /* one past the end stays untouched */
                sl__gemm(ta, tb, m, n, k, ta ? g->At : g->A, tb ? g->Bt : g->B, C, acc);
                for (size_t i = 0; i < m * n; i++) {
                    const double want = g->want[i] + (acc ? g->C0[i] : 0.0);
                    const double tol =
                        1e-13 * (g->scale[i] + (acc ? fabs(g->C0[i]) : 0.0)) + 1e-300;
                    if (!(fabs(C[i] - want) <= tol)) {
                        if (bad++ < 5)
                            cr_log_error("%s: [%zu,%zu]x[%zu,%zu] ta %d tb %d acc %d: C[%zu,%zu] = "
                                         "%.17g, want %.17g (tol %.3g)",
                                         what, m, k, k, n, ta, tb, acc, i / n, i % n, C[i], want,
                                         tol);
                    }
                }
                if (C[m * n] != 12345.0 && bad++ < 5)
                    cr_log_error("%s: wrote past the end of C", what);
            }
    free(C);
    return bad;
}

/* (m, k, n): the edge sizes of the brief, vector shapes, the benchmark shapes
 * (W2, W3, W6) and sizes around the tile and block edges */
static const size_t gemm_shapes[][3] = {
    {1, 1, 1},      {1, 2, 1},     {1, 17, 1},    {1, 300, 1},  {7, 13, 5},    {5, 13, 7},
    {65, 129, 33},  {257, 3, 300}, {300, 3, 257}, {100, 2, 16}, {100, 16, 16}, {100, 16, 1},
    {16, 100, 16},  {2, 100, 16},  {16, 100, 1},  {100, 1, 16}, {4, 2, 400},   {1, 4, 400},
    {400, 4, 1},    {1, 64, 37},   {37, 64, 1},   {3, 50, 60},  {12, 16, 16},  {13, 17, 15},
    {11, 15, 17},   {6, 8, 8},     {5, 7, 9},     {24, 33, 40}, {33, 32, 31},  {128, 20, 10},
    {130, 70, 150},
};
#define NSHAPES (sizeof gemm_shapes / sizeof gemm_shapes[0])

static const char *const gemm_kernels[] = {"auto", "generic", "avx2", "avx512"};

Test(linalg, gemm_every_kernel_path_and_shape) {
    int bad = 0, ran = 0;
    for (size_t s = 0; s < NSHAPES; s++) {
        gemm_case g;
        gemm_case_new(&g, gemm_shapes[s][0], gemm_shapes[s][1], gemm_shapes[s][2]);
        for (size_t kn = 0; kn < sizeof gemm_kernels / sizeof gemm_kernels[0]; kn++)
            for (int path = 0; path <= 2; path++) {
                if (!sl__gemm_config(gemm_kernels[kn], path, 0, 0, 0))
                    continue; /* this CPU or build has no such kernel */
                char what[96];
                snprintf(what, sizeof what, "kernel %s (%s) path %d", gemm_kernels[kn],
                         sl__gemm_kernel_name(), path);
                bad += gemm_case_run(&g, what);
                ran++;
            }
        gemm_case_free(&g);
    }
    sl__gemm_config(NULL, 0, 0, 0, 0);
    cr_expect_eq(bad, 0, "%d wrong products (first ones logged above)", bad);
    cr_expect_geq(ran, (int)NSHAPES * 6, "at least auto and generic on every path");
}

/* Tiny cache blocks: many KC slices (accumulating into C after the first),
 * several MC and NC blocks, edge tiles inside blocks. */
Test(linalg, gemm_packed_tiny_blocks) {
    static const size_t blocks[][3] = {{1, 1, 1}, {5, 7, 9}, {16, 24, 32}, {3, 100, 17}};
    int bad = 0;
    for (size_t s = 0; s < NSHAPES; s++) {
        gemm_case g;
        gemm_case_new(&g, gemm_shapes[s][0], gemm_shapes[s][1], gemm_shapes[s][2]);
        if (g.m * g.n * g.k > 200000) { /* keep the debug build quick */
            gemm_case_free(&g);
            continue;
        }
        for (size_t kn = 0; kn < sizeof gemm_kernels / sizeof gemm_kernels[0]; kn++)
            for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
                if (!sl__gemm_config(gemm_kernels[kn], 2, blocks[b][0], blocks[b][1], blocks[b][2]))
                    continue;
                char what[96];
                snprintf(what, sizeof what, "kernel %s kc %zu mc %zu nc %zu", gemm_kernels[kn],
                         blocks[b][0], blocks[b][1], blocks[b][2]);
                bad += gemm_case_run(&g, what);
            }
        gemm_case_free(&g);
    }
    sl__gemm_config(NULL, 0, 0, 0, 0);
    cr_expect_eq(bad, 0, "%d wrong products (first ones logged above)", bad);
}

Test(linalg, gemm_zero_sizes_and_hooks) {
    double C[6] = {1, 2, 3, 4, 5, 6};
    const double A[6] = {1, 1, 1, 1, 1, 1};
    sl__gemm(0, 0, 2, 3, 0, A, A, C, 1); /* k = 0, accumulate: C unchanged */
    for (int i = 0; i < 6; i++) cr_expect_eq(C[i], i + 1.0);
    sl__gemm(0, 1, 2, 3, 0, A, A, C, 0); /* k = 0, overwrite: zeros */
    for (int i = 0; i < 6; i++) cr_expect_eq(C[i], 0.0);
    sl__gemm(0, 0, 0, 3, 2, A, A, C, 0); /* m = 0 / n = 0: nothing touched */
    sl__gemm(1, 1, 2, 0, 2, A, A, C, 0);
    cr_expect_eq(sl__gemm_config("no-such-kernel", 0, 0, 0, 0), 0);
    cr_expect_eq(sl__gemm_config("generic", 0, 0, 0, 0), 1);
    cr_expect_str_eq(sl__gemm_kernel_name(), "generic");
    cr_expect_eq(sl__gemm_config(NULL, 0, 0, 0, 0), 1);
    cr_log_info("sl__gemm micro-kernel on this machine: %s", sl__gemm_kernel_name());
}

/* matmul on the tape through the packed path: values, dA = G B^T (tb) and
 * dB = A^T G (ta), and the tangent, against the long double reference. */
Test(linalg, matmul_large_values_gradients_tangent) {
    enum { M = 67, K = 45, N = 71 };
    gemm_case g;
    gemm_case_new(&g, M, K, N);
    double *G = malloc(M * N * sizeof(double)), *dA = malloc(M * K * sizeof(double)),
           *dB = malloc(K * N * sizeof(double));
    cr_assert(G && dA && dB);
    fill(G, M * N, 0.37, 0.9);
    for (int i = 0; i < M; i++)
        for (int p = 0; p < K; p++) {
            long double s = 0;
            for (int j = 0; j < N; j++) s += (long double)G[i * N + j] * g.B[p * N + j];
            dA[i * K + p] = (double)s;
        }
    for (int p = 0; p < K; p++)
        for (int j = 0; j < N; j++) {
            long double s = 0;
            for (int i = 0; i < M; i++) s += (long double)g.A[i * K + p] * G[i * N + j];
            dB[p * N + j] = (double)s;
        }
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 2, (int[]){M, K}, g.A, SL_GRAD);
    sl_var *b = sl_input(t, 2, (int[]){K, N}, g.B, SL_GRAD);
    sl_var *c = sl_matmul(t, a, b);
    cr_assert_not_null(c, "%s", sl_tape_error(t));
    for (int i = 0; i < M * N; i++)
        cr_expect(fabs(sl_value(c)[i] - g.want[i]) <= 1e-13 * g.scale[i], "C[%d]", i);
    cr_assert_eq(sl_backward_seed(t, c, G), SL_OK);
    for (int i = 0; i < M * K; i++)
        cr_expect(near(sl_grad(a)[i], dA[i], 1e-12, 1e-12), "dA[%d] = %.17g, want %.17g", i,
                  sl_grad(a)[i], dA[i]);
    for (int i = 0; i < K * N; i++)
        cr_expect(near(sl_grad(b)[i], dB[i], 1e-12, 1e-12), "dB[%d] = %.17g, want %.17g", i,
                  sl_grad(b)[i], dB[i]);
    /* tangents: TA.B + A.TB, and A.TB alone (only b moves) */
    double *TA = malloc(M * K * sizeof(double)), *TB = malloc(K * N * sizeof(double)),
           *both = malloc(M * N * sizeof(double)), *onlyb = malloc(M * N * sizeof(double)),
           *dy = malloc(M * N * sizeof(double));
    cr_assert(TA && TB && both && onlyb && dy);
    fill(TA, M * K, 0.53, -1.3);
    fill(TB, K * N, 0.61, 0.4);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            long double s = 0, u = 0;
            for (int p = 0; p < K; p++) {
                s += (long double)TA[i * K + p] * g.B[p * N + j];
                u += (long double)g.A[i * K + p] * TB[p * N + j];
            }
            both[i * N + j] = (double)(s + u);
            onlyb[i * N + j] = (double)u;
        }
    cr_assert_eq(sl_jvp(t, c, 2, (sl_var *[]){a, b}, (const double *[]){TA, TB}, dy), SL_OK, "%s",
                 sl_tape_error(t));
    for (int i = 0; i < M * N; i++)
        cr_expect(near(dy[i], both[i], 1e-12, 1e-12), "tangent[%d] = %.17g, want %.17g", i, dy[i],
                  both[i]);
    cr_assert_eq(sl_jvp(t, c, 1, &b, (const double *[]){TB}, dy), SL_OK, "%s", sl_tape_error(t));
    for (int i = 0; i < M * N; i++)
        cr_expect(near(dy[i], onlyb[i], 1e-12, 1e-12), "tangent b[%d] = %.17g, want %.17g", i,
                  dy[i], onlyb[i]);
    free(TA), free(TB), free(both), free(onlyb), free(dy);
    sl_tape_free(t);
    free(G), free(dA), free(dB);
    gemm_case_free(&g);
}

/* Products on short-lived threads: each thread's packing workspace must be
 * freed when it ends (under ASan the leak checker would report it), and the
 * results must not depend on the thread. */
static int product_on_a_thread(void *arg) {
    double *trace = arg;
    enum { N = 96 }; /* large enough for the packed path and its workspace */
    static double A[N * N], B[N * N];
    double *C = malloc(sizeof(double) * N * N);
    if (!C) return 1;
    for (int i = 0; i < N * N; i++) {
        A[i] = (double)((i * 7) % 13) - 6.0;
        B[i] = (double)((i * 5) % 11) - 5.0;
    }
    sl__gemm(0, 0, N, N, N, A, B, C, 0);
    *trace = 0.0;
    for (int i = 0; i < N; i++) *trace += C[i * N + i];
    free(C);
    return 0;
}

/* Bytes malloc holds now (glibc; 0 under sanitizers, which replace malloc). */
static size_t malloc_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

Test(linalg, workspaces_of_ended_threads_are_freed) {
    double traces[4];
    double warm;
    product_on_a_thread(&warm); /* this thread's workspace, kept for its lifetime */
    const size_t before = malloc_in_use();
    for (int r = 0; r < 4; r++) {
        thrd_t th;
        cr_assert_eq(thrd_create(&th, product_on_a_thread, &traces[r]), thrd_success);
        int rc = -1;
        cr_assert_eq(thrd_join(th, &rc), thrd_success);
        cr_expect_eq(rc, 0);
    }
    /* In the OpenMP build each of those threads led its own OpenMP team, whose
     * worker (with a workspace of its own) exits only after the thread that
     * led it has ended, so its destructor may run a little after thrd_join:
     * wait for that, up to 5 s, rather than race it. */
    size_t after = malloc_in_use();
    for (int waited = 0; after > before + 65536 && waited < 500; waited++) {
        thrd_sleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        after = malloc_in_use();
    }
    cr_expect(after <= before + 65536, "4 ended threads left %zu bytes behind (a workspace each?)",
              after - before);
    double here;
    product_on_a_thread(&here);
    for (int r = 0; r < 4; r++)
        cr_expect_eq(traces[r], here, "thread %d: %.17g vs %.17g", r, traces[r], here);
}

/* ------------------------------------------------------ batched matmul */

/* The reference for a (na dims da) . b (nb dims db), written from the
 * definition: out's batch dims are the NumPy broadcast (odims, nbo of them),
 * and every out element is a k-term sum read through explicit multi-indices.
 * The batch dims index matrices as bcast_flat indexes elements.
 * With G (out's shape) it also gives dA = sum over the batches reading a's
 * matrix of G.B^T and dB likewise; with TA, TB the tangent TA.B + A.TB. */
typedef struct bmm_ref {
    int nbo, odims[SL_MAX_DIMS], ond;
    int m, k, n;
    size_t nout;
} bmm_ref;

static bmm_ref bmm_shape(int na, const int *da, int nb, const int *db) {
    bmm_ref r = {.m = da[na - 2], .k = da[na - 1], .n = db[nb - 1]};
    r.nbo = na - 2 > nb - 2 ? na - 2 : nb - 2;
    for (int i = 0; i < r.nbo; i++) {
        const int ia = i - (r.nbo - (na - 2)), ib = i - (r.nbo - (nb - 2));
        const int x = ia >= 0 ? da[ia] : 1, y = ib >= 0 ? db[ib] : 1;
        r.odims[i] = x == 1 ? y : x;
    }
    r.odims[r.nbo] = r.m;
    r.odims[r.nbo + 1] = r.n;
    r.ond = r.nbo + 2;
    r.nout = 1;
    for (int i = 0; i < r.ond; i++) r.nout *= (size_t)r.odims[i];
    return r;
}

static void bmm_reference(const bmm_ref *r, int na, const int *da, int nb, const int *db,
                          const double *A, const double *B, const double *G, const double *TA,
                          const double *TB, double *C, double *dA, double *dB, double *T) {
    const int m = r->m, k = r->k, n = r->n;
    int ob[SL_MAX_DIMS] = {0};
    size_t o = 0;
    do {
        const double *Ab = A + bcast_flat(r->nbo, ob, na - 2, da) * (size_t)(m * k);
        const double *Bb = B + bcast_flat(r->nbo, ob, nb - 2, db) * (size_t)(k * n);
        const double *TAb = TA + (Ab - A), *TBb = TB + (Bb - B);
        double *dAb = dA + (Ab - A), *dBb = dB + (Bb - B);
        const double *Gb = G + o * (size_t)(m * n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0, u = 0;
                for (int p = 0; p < k; p++) {
                    s += Ab[i * k + p] * Bb[p * n + j];
                    u += TAb[i * k + p] * Bb[p * n + j] + Ab[i * k + p] * TBb[p * n + j];
                    dAb[i * k + p] += Gb[i * n + j] * Bb[p * n + j];
                    dBb[p * n + j] += Ab[i * k + p] * Gb[i * n + j];
                }
                C[o * (size_t)(m * n) + (size_t)(i * n + j)] = s;
                T[o * (size_t)(m * n) + (size_t)(i * n + j)] = u;
            }
        o++;
    } while (next_index(r->nbo, r->odims, ob));
}

/* sl_matmul of a (na, da) and b (nb, db) on a tape: shape, values, gradients
 * for the seed G and the tangent, against bmm_reference. */
static void check_bmm(int na, const int *da, int nb, const int *db) {
    const bmm_ref r = bmm_shape(na, da, nb, db);
    size_t nA = 1, nB = 1;
    for (int i = 0; i < na; i++) nA *= (size_t)da[i];
    for (int i = 0; i < nb; i++) nB *= (size_t)db[i];
    double *A = malloc(nA * sizeof(double)), *B = malloc(nB * sizeof(double)),
           *TA = malloc(nA * sizeof(double)), *TB = malloc(nB * sizeof(double)),
           *dA = calloc(nA, sizeof(double)), *dB = calloc(nB, sizeof(double)),
           *G = malloc(r.nout * sizeof(double)), *C = malloc(r.nout * sizeof(double)),
           *T = malloc(r.nout * sizeof(double)), *dy = malloc(r.nout * sizeof(double));
    cr_assert(A && B && TA && TB && dA && dB && G && C && T && dy);
    fill(A, nA, 0.7, 0.1);
    fill(B, nB, 1.3, -0.4);
    fill(TA, nA, 0.45, 0.3);
    fill(TB, nB, 0.85, -1.1);
    fill(G, r.nout, 0.9, 2.0);
    bmm_reference(&r, na, da, nb, db, A, B, G, TA, TB, C, dA, dB, T);
    char sa[64], sb[64];
    snprintf(sa, sizeof sa, "rank %d [..,%d,%d]", na, da[na - 2], da[na - 1]);
    snprintf(sb, sizeof sb, "rank %d [..,%d,%d]", nb, db[nb - 2], db[nb - 1]);
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, na, da, A, SL_GRAD), *b = sl_input(t, nb, db, B, SL_GRAD);
    sl_var *c = sl_matmul(t, a, b);
    cr_assert_not_null(c, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(c), r.ond, "%s x %s", sa, sb);
    for (int i = 0; i < r.ond; i++) cr_expect_eq(sl_dims(c)[i], r.odims[i], "%s x %s", sa, sb);
    /* sums of up to 80 terms of size <= 2.25 in another order */
    const double tol = 1e-13 * r.k;
    for (size_t i = 0; i < r.nout; i++)
        cr_expect(near(sl_value(c)[i], C[i], tol, tol), "%s x %s: C[%zu] = %.17g, want %.17g", sa,
                  sb, i, sl_value(c)[i], C[i]);
    cr_assert_eq(sl_backward_seed(t, c, G), SL_OK);
    for (size_t i = 0; i < nA; i++)
        cr_expect(near(sl_grad(a)[i], dA[i], 1e-12, 1e-12 * r.n * r.nout),
                  "%s x %s: dA[%zu] = %.17g, want %.17g", sa, sb, i, sl_grad(a)[i], dA[i]);
    for (size_t i = 0; i < nB; i++)
        cr_expect(near(sl_grad(b)[i], dB[i], 1e-12, 1e-12 * r.m * r.nout),
                  "%s x %s: dB[%zu] = %.17g, want %.17g", sa, sb, i, sl_grad(b)[i], dB[i]);
    cr_assert_eq(sl_jvp(t, c, 2, (sl_var *[]){a, b}, (const double *[]){TA, TB}, dy), SL_OK, "%s",
                 sl_tape_error(t));
    for (size_t i = 0; i < r.nout; i++)
        cr_expect(near(dy[i], T[i], 2 * tol, 2 * tol), "%s x %s: tangent[%zu] = %.17g, want %.17g",
                  sa, sb, i, dy[i], T[i]);
    sl_tape_free(t);
    free(A), free(B), free(TA), free(TB), free(dA), free(dB), free(G), free(C), free(T), free(dy);
}

Test(linalg, batched_matmul_values_gradients_tangent) {
    static const struct {
        int na, da[4], nb, db[4];
    } cases[] = {
        {3, {2, 3, 4}, 3, {2, 4, 5}},       /* equal batches */
        {3, {2, 3, 4}, 2, {4, 5}},          /* b one matrix for every batch (a's rows folded) */
        {2, {3, 4}, 3, {2, 4, 5}},          /* a one matrix for every batch */
        {4, {2, 1, 3, 4}, 3, {3, 4, 2}},    /* [2,1] against [3]: [2,3] */
        {4, {1, 3, 3, 4}, 4, {2, 1, 4, 2}}, /* both broadcast, rank 4 */
        {4, {2, 2, 3, 4}, 4, {2, 2, 4, 5}}, /* rank 4, equal */
        {3, {1, 3, 4}, 4, {2, 3, 4, 2}},    /* a's batch of 1 against two batch dims */
        {4, {2, 3, 2, 4}, 2, {4, 1}},       /* n = 1: matrix-vector products */
        {3, {3, 1, 4}, 3, {3, 4, 1}},       /* m = n = 1: dot products */
        {3, {2, 1, 4}, 2, {4, 3}},          /* m = 1, folded to [2,4] . [4,3] */
        /* the packed path per batch matrix, and accumulating into a shared one */
        {3, {2, 70, 80}, 3, {2, 80, 90}},
        {3, {2, 70, 80}, 2, {80, 90}},
        {2, {70, 80}, 3, {2, 80, 90}},
        {4, {2, 1, 70, 80}, 3, {3, 80, 70}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bmm(cases[i].na, cases[i].da, cases[i].nb, cases[i].db);
}

/* Numbers from PyTorch (float64), exact in binary:
 *   a = (torch.arange(8.) - 3).reshape(2, 1, 2, 2).requires_grad_()
 *   b = (torch.arange(12.) * 0.5 - 2).reshape(3, 2, 2).requires_grad_()
 *   c = torch.matmul(a, b)                      # [2, 3, 2, 2]
 *   w = (torch.arange(24.) % 5 - 2).reshape(c.shape)
 *   (c * w).sum().backward()
 *   c.flatten(), a.grad.flatten(), b.grad.flatten() */
Test(linalg, batched_matmul_matches_torch) {
    double A[8], B[12], W[24];
    for (int i = 0; i < 8; i++) A[i] = i - 3;
    for (int i = 0; i < 12; i++) B[i] = i * 0.5 - 2;
    for (int i = 0; i < 24; i++) W[i] = i % 5 - 2;
    static const double C[24] = {8.0,   5.5,   2.0,  1.5,  -2.0, -4.5, 0.0,   -0.5,
                                 -12.0, -14.5, -2.0, -2.5, -4.0, -2.5, -10.0, -6.5,
                                 2.0,   3.5,   4.0,  7.5,  8.0,  9.5,  18.0,  21.5};
    static const double dA[8] = {11.5, 11.5, -8.0, -11.0, -8.0, -11.0, 2.5, 6.5};
    static const double dB[12] = {12.0, -3.0, 12.0, -4.0, -3.0, 12.0,
                                  -2.0, 12.0, -3.0, -3.0, -6.0, -2.0};
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 4, (int[]){2, 1, 2, 2}, A, SL_GRAD);
    sl_var *b = sl_input(t, 3, (int[]){3, 2, 2}, B, SL_GRAD);
    sl_var *c = sl_matmul(t, a, b);
    cr_assert_not_null(c, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(c), 4);
    const int want[4] = {2, 3, 2, 2};
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_dims(c)[i], want[i]);
    for (int i = 0; i < 24; i++) cr_expect_eq(sl_value(c)[i], C[i], "c[%d]", i);
    cr_assert_eq(sl_backward_seed(t, c, W), SL_OK);
    for (int i = 0; i < 8; i++) cr_expect_eq(sl_grad(a)[i], dA[i], "a.grad[%d]", i);
    for (int i = 0; i < 12; i++) cr_expect_eq(sl_grad(b)[i], dB[i], "b.grad[%d]", i);
    sl_tape_free(t);
}

/* ------------------------------------------------- transpose, permute */

/* y = x with axes reordered by perm (normalised, rank r): the reference
 * walks y's multi-indices and reads x at the index whose axis perm[i] is
 * y's axis i; dx (seed G) and the tangent (TX) follow the same map. */
static void check_permute(int r, const int *dims, const int *perm, int transpose) {
    int p[SL_MAX_DIMS] = {0}, ydims[SL_MAX_DIMS] = {0}, xs[SL_MAX_DIMS];
    size_t n = 1;
    for (int i = 0; i < r; i++) {
        p[i] = perm[i] < 0 ? perm[i] + r : perm[i];
        ydims[i] = dims[p[i]];
        n *= (size_t)dims[i];
    }
    for (int i = r - 1, s = 1; i >= 0; i--) xs[i] = s, s *= dims[i];
    double X[120], TX[120], G[120], Y[120], dX[120] = {0}, T[120];
    cr_assert_leq(n, 120);
    fill(X, n, 0.3, 0.7);
    fill(TX, n, 1.1, -0.2);
    fill(G, n, 0.65, 1.5);
    int yi[SL_MAX_DIMS] = {0};
    size_t k = 0;
    do {
        size_t src = 0;
        for (int i = 0; i < r; i++) src += (size_t)yi[i] * (size_t)xs[p[i]];
        Y[k] = X[src];
        T[k] = TX[src];
        dX[src] += G[k];
        k++;
    } while (next_index(r, ydims, yi));
    cr_assert_eq(k, n);
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, r, dims, X, SL_GRAD);
    sl_var *y = transpose ? sl_transpose(t, x) : sl_permute(t, x, perm);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), r);
    for (int i = 0; i < r; i++) cr_expect_eq(sl_dims(y)[i], ydims[i], "rank %d dim %d", r, i);
    for (size_t i = 0; i < n; i++) cr_expect_eq(sl_value(y)[i], Y[i], "rank %d y[%zu]", r, i);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK);
    for (size_t i = 0; i < n; i++) cr_expect_eq(sl_grad(x)[i], dX[i], "rank %d dx[%zu]", r, i);
    double dy[120];
    cr_assert_eq(sl_jvp(t, y, 1, &x, (const double *[]){TX}, dy), SL_OK, "%s", sl_tape_error(t));
    for (size_t i = 0; i < n; i++) cr_expect_eq(dy[i], T[i], "rank %d tangent[%zu]", r, i);
    sl_tape_free(t);
}

Test(linalg, permute_every_rank_with_negative_entries) {
    static const struct {
        int r, dims[4], perm[4];
    } cases[] = {
        {0, {0}, {0}},
        {0, {0}, {-1}},
        {1, {5}, {0}},
        {1, {5}, {-1}},
        {2, {2, 3}, {1, 0}},
        {2, {2, 3}, {-1, -2}},
        {2, {2, 3}, {0, -1}}, /* the identity */
        {3, {2, 3, 4}, {1, 2, 0}},
        {3, {2, 3, 4}, {2, 0, 1}},
        {3, {2, 3, 4}, {-1, 0, -2}},
        {3, {2, 3, 4}, {0, 2, 1}},
        {4, {2, 3, 4, 5}, {3, 1, 0, 2}},
        {4, {2, 3, 4, 5}, {-3, -1, -4, -2}},
        {4, {2, 1, 3, 2}, {0, 2, 1, 3}}, /* the attention shuffle, with a dim of 1 */
        {4, {2, 3, 2, 2}, {1, 2, 3, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_permute(cases[i].r, cases[i].dims, cases[i].perm, 0);
}

Test(linalg, transpose_swaps_the_last_two_axes) {
    static const struct {
        int r, dims[4], perm[4];
    } cases[] = {
        {2, {2, 3}, {1, 0}},
        {3, {2, 3, 4}, {0, 2, 1}},
        {3, {4, 1, 3}, {0, 2, 1}},
        {4, {2, 3, 4, 5}, {0, 1, 3, 2}},
        {4, {3, 1, 2, 1}, {0, 1, 3, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_permute(cases[i].r, cases[i].dims, cases[i].perm, 1);
    /* torch.arange(24.).reshape(2, 3, 4) .mT and .permute(2, 0, 1), flattened */
    static const double mT[24] = {0,  4,  8,  1,  5,  9,  2,  6,  10, 3,  7,  11,
                                  12, 16, 20, 13, 17, 21, 14, 18, 22, 15, 19, 23};
    static const double p201[24] = {0, 4, 8,  12, 16, 20, 1, 5, 9,  13, 17, 21,
                                    2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23};
    double X[24];
    for (int i = 0; i < 24; i++) X[i] = i;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 3, (int[]){2, 3, 4}, X, 0);
    sl_var *y = sl_transpose(t, x), *z = sl_permute(t, x, (int[]){2, 0, 1});
    cr_assert(y && z, "%s", sl_tape_error(t));
    for (int i = 0; i < 24; i++) {
        cr_expect_eq(sl_value(y)[i], mT[i], "mT[%d]", i);
        cr_expect_eq(sl_value(z)[i], p201[i], "permute(2,0,1)[%d]", i);
    }
    sl_tape_free(t);
}

/* ---------------------------------------------------------------- errors */

Test(linalg, batched_errors_name_the_function_and_shapes) {
    static const char rank[] = "expects 2-D inputs or batches of them (rank >= 2)",
                      inner[] = "inner dimensions differ",
                      bcast[] = "batch dimensions do not broadcast";
    static const struct {
        int na, da[4], nb, db[4];
        const char *what, *shapes; /* the message is "sl_matmul: <what>: <shapes>" */
    } mm[] = {
        {3, {2, 3, 4}, 3, {2, 5, 6}, inner, "[2,3,4] x [2,5,6]"},
        {2, {3, 4}, 4, {2, 2, 5, 6}, inner, "[3,4] x [2,2,5,6]"},
        {3, {2, 3, 4}, 3, {3, 4, 5}, bcast, "[2,3,4] x [3,4,5]"},
        {4, {2, 3, 3, 4}, 4, {1, 2, 4, 5}, bcast, "[2,3,3,4] x [1,2,4,5]"},
        {1, {4}, 3, {2, 4, 5}, rank, "[4] x [2,4,5]"},
        {3, {2, 3, 4}, 0, {0}, rank, "[2,3,4] x []"},
    };
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *a = sl_input(t, mm[i].na, mm[i].da, NULL, SL_GRAD);
        sl_var *b =
            mm[i].nb ? sl_input(t, mm[i].nb, mm[i].db, NULL, SL_GRAD) : sl_scalar(t, 2.0, SL_GRAD);
        char msg[160];
        snprintf(msg, sizeof msg, "sl_matmul: %s: %s", mm[i].what, mm[i].shapes);
        expect_tape_error(sl_matmul(t, a, b), t, SL_ESHAPE, msg);
        /* sticky: a later valid op is a no-op and the first message stays */
        cr_expect_null(sl_permute(t, a, (int[]){0, 1, 2, 3}));
        cr_expect_null(sl_transpose(t, a));
        cr_expect_null(sl_matmul(t, a, a));
        cr_expect_str_eq(sl_tape_error(t), msg);
        sl_tape_free(t);
    }
    sl_tape *t = sl_tape_new();
    expect_tape_error(sl_transpose(t, sl_scalar(t, 1.0, 0)), t, SL_ESHAPE,
                      "sl_transpose: expects a 2-D input or a batch of them (rank >= 2), got []");
    sl_tape_free(t);
    t = sl_tape_new();
    expect_tape_error(sl_transpose(t, sl_input(t, 1, (int[]){4}, NULL, 0)), t, SL_ESHAPE,
                      "sl_transpose: expects a 2-D input or a batch of them (rank >= 2), got [4]");
    sl_tape_free(t);
}

Test(linalg, permute_refuses_what_is_not_a_permutation) {
    static const struct {
        int r, dims[4], perm[4];
        const char *msg;
    } cases[] = {
        {3,
         {2, 3, 4},
         {0, 0, 1},
         "sl_permute: perm [0,0,1] is not a permutation: axis 0 repeated (shape [2,3,4])"},
        {3,
         {2, 3, 4},
         {2, 0, -1},
         "sl_permute: perm [2,0,-1] is not a permutation: axis 2 repeated (shape [2,3,4])"},
        {3,
         {2, 3, 4},
         {0, 3, 1},
         "sl_permute: perm [0,3,1]: axis 3 out of range for shape [2,3,4]"},
        {2, {2, 3}, {-3, 0}, "sl_permute: perm [-3,0]: axis -3 out of range for shape [2,3]"},
        {1, {5}, {1}, "sl_permute: perm [1]: axis 1 out of range for shape [5]"},
        /* SL_ALL (INT_MIN), which the reductions take, names no one axis (it read seen[INT_MIN]) */
        {2,
         {2, 3},
         {SL_ALL, 0},
         "sl_permute: perm [-2147483648,0]: axis -2147483648 out of range for shape [2,3]"},
        {0,
         {0},
         {SL_ALL},
         "sl_permute: perm [-2147483648]: axis -2147483648 out of range for shape []"},
        {0, {0}, {1}, "sl_permute: perm [1]: axis 1 out of range for shape []"},
        {4,
         {1, 2, 3, 4},
         {3, 2, 1, 1},
         "sl_permute: perm [3,2,1,1] is not a permutation: axis 1 repeated (shape [1,2,3,4])"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = cases[i].r ? sl_input(t, cases[i].r, cases[i].dims, NULL, SL_GRAD)
                               : sl_scalar(t, 1.0, SL_GRAD);
        expect_tape_error(sl_permute(t, x, cases[i].perm), t, SL_EARG, cases[i].msg);
        cr_expect_null(sl_permute(t, x, (int[]){0, 1, 2, 3}), "a no-op after the error");
        cr_expect_str_eq(sl_tape_error(t), cases[i].msg);
        sl_tape_free(t);
    }
    /* a NULL perm; a perm of the wrong length through sl_apply; a NULL x */
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, 0);
    expect_tape_error(sl_permute(t, x, NULL), t, SL_EARG,
                      "sl_permute: perm is NULL for shape [2,3]");
    sl_tape_free(t);
    t = sl_tape_new();
    x = sl_input(t, 2, (int[]){2, 3}, NULL, 0);
    const sl_attrs three = {.ndim = 3, .dims = {0, 1, 2}};
    expect_tape_error(sl_apply(t, sl_op_find("permute"), 1, &x, &three), t, SL_EARG,
                      "sl_permute: perm has 3 entries, shape [2,3] needs 2");
    sl_tape_free(t);
    t = sl_tape_new();
    cr_expect_null(sl_permute(t, NULL, (int[]){0}));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "sl_permute"), "%s", sl_tape_error(t));
    sl_tape_free(t);
    cr_expect_null(sl_permute(NULL, NULL, NULL));
}

/* ------------------------------------------------------ replay, attention */

/* y = sum(permute(transpose(a) . b, {2,0,1})^2) with a [2,1,4,3] and b
 * [3,4,2] (so a^T [2,1,3,4] . b -> [2,3,3,2]) on leaves holding xa, xb. */
static sl_var *batched_graph(sl_tape *t, const double *xa, const double *xb, sl_var **a,
                             sl_var **b) {
    *a = sl_input(t, 4, (int[]){2, 1, 4, 3}, xa, SL_GRAD);
    *b = sl_input(t, 3, (int[]){3, 4, 2}, xb, SL_GRAD);
    sl_var *c = sl_matmul(t, sl_transpose(t, *a), *b);
    return sl_sum(t, sl_square(t, sl_permute(t, c, (int[]){2, 0, -1, 1})), SL_ALL, 0);
}

Test(linalg, batched_replay_matches_a_fresh_recording) {
    double A[24], B[24], A2[24], B2[24];
    fill(A, 24, 0.3, 0.1);
    fill(B, 24, 0.9, -0.5);
    fill(A2, 24, 0.55, 1.2);
    fill(B2, 24, 1.7, 0.3);
    sl_tape *t = sl_tape_new();
    sl_var *a, *b;
    sl_var *y = batched_graph(t, A, B, &a, &b);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    memcpy(sl_leaf_data(a), A2, sizeof A2);
    memcpy(sl_leaf_data(b), B2, sizeof B2);
    sl_zero_grad(t);
    cr_assert_eq(sl_forward(t), SL_OK, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    sl_tape *f = sl_tape_new();
    sl_var *fa, *fb;
    sl_var *fy = batched_graph(f, A2, B2, &fa, &fb);
    cr_assert_eq(sl_backward(f, fy), SL_OK);
    cr_expect_eq(sl_item(y), sl_item(fy), "%.17g vs %.17g", sl_item(y), sl_item(fy));
    for (int i = 0; i < 24; i++) {
        cr_expect_eq(sl_grad(a)[i], sl_grad(fa)[i], "da[%d]", i);
        cr_expect_eq(sl_grad(b)[i], sl_grad(fb)[i], "db[%d]", i);
    }
    sl_tape_free(f);
    sl_tape_free(t);
}

/* Multi-head self-attention, two heads of width 4 over T = 5 positions,
 * without a loop over heads: x [5,8] -> q, k, v = x.W [5,8] -> [5,2,4] ->
 * permute to heads first [2,5,4]; weights = softmax(q.k^T / sqrt(4)) over
 * the last axis [2,5,5]; out = weights.v [2,5,4] -> back to [5,2,4] ->
 * [5,8] -> . Wo. Checked whole with sl_gradcheck against x and every
 * matrix. */
Test(linalg, multi_head_attention_gradcheck) {
    enum { T = 5, D = 8, H = 2, DH = 4 };
    double X[T * D], W[4][D * D];
    fill(X, T * D, 0.77, 0.2);
    for (int i = 0; i < 4; i++) {
        fill(W[i], D * D, 0.31 + 0.2 * i, 0.5 * i);
        for (int j = 0; j < D * D; j++) W[i][j] *= 0.4; /* keep the softmax away from saturation */
    }
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){T, D}, X, SL_GRAD);
    sl_var *w[4];
    for (int i = 0; i < 4; i++) w[i] = sl_input(t, 2, (int[]){D, D}, W[i], SL_GRAD);
    const int heads[3] = {T, H, DH}, first[3] = {1, 0, 2};
    sl_var *qkv[3];
    for (int i = 0; i < 3; i++)
        qkv[i] = sl_permute(t, sl_reshape(t, sl_matmul(t, x, w[i]), 3, heads), first);
    sl_var *scores = sl_mul(t, sl_matmul(t, qkv[0], sl_transpose(t, qkv[1])),
                            sl_scalar(t, 1.0 / sqrt((double)DH), 0));
    sl_var *weights = sl_softmax(t, scores, -1);
    sl_var *heads_out = sl_matmul(t, weights, qkv[2]); /* [2,5,4] */
    sl_var *joined = sl_reshape(t, sl_permute(t, heads_out, first), 2, (int[]){T, D});
    sl_var *y = sl_matmul(t, joined, w[3]);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(scores), 3);
    cr_expect(sl_dims(scores)[0] == H && sl_dims(scores)[1] == T && sl_dims(scores)[2] == T);
    /* every row of weights sums to 1 */
    for (int r = 0; r < H * T; r++) {
        double s = 0;
        for (int j = 0; j < T; j++) s += sl_value(weights)[r * T + j];
        cr_expect(near(s, 1.0, 1e-15, 1e-15), "row %d sums to %.17g", r, s);
    }
    sl_var *in[5] = {x, w[0], w[1], w[2], w[3]};
    sl_gradcheck_report rep;
    const sl_gradcheck_opts full = {.fast = -1};
    cr_expect_eq(sl_gradcheck(t, y, 5, in, &full, &rep), SL_OK, "%s", rep.message);
    cr_expect_eq(rep.fast, 0);
    cr_expect_eq(rep.nchecked, (size_t)(T * D) * (T * D + 4 * D * D));
    cr_expect_eq(rep.jvp_checked, 1);
    sl_tape_free(t);
}
