/*
 * W2 "planar" (WORKLOADS.md#W2): the course's 2 -> 4 tanh -> 1 sigmoid
 * network on the 400-point flower, full-batch gradient descent, lr 1.2,
 * 10000 iterations, cost evaluated every iteration.
 *
 * peer=slope: as examples/planar.c - the graph (cost written as the course's
 *   formula) is recorded once; every iteration replays it (sl_forward),
 *   zeroes the parameter gradients, back-propagates (sl_backward) and
 *   descends. train_seconds includes creating the parameter store from the
 *   arrays in memory and recording the graph, not reading the CSV.
 * peer=c-handwritten: the course's hand-derived gradients (dZ2 = A2 - Y, ...,
 *   the numpy-handwritten peer's arithmetic) as plain C loops with scalar
 *   libm, one loop over the points per step of the course's code, no tape:
 *   the floor.
 * peer=c-handwritten-libmvec (x86-64 with AVX2 and glibc's libmvec only,
 *   chosen at run time): the same floor with vector exp/log/tanh, 8 wide
 *   on AVX-512 CPUs and 4 wide on AVX2 ones (as slope's src/vmath.c).
 *
 * Costs are validated to 1e-9 relative up to iteration 7000 (the run turns
 * chaotic at ~7700); the final accuracy must be 90.5 or 90.75 %.
 * Repeats: 3 training runs, median (the peers use 1-3).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define WL "W2-planar"
#define M 400
#define LR 1.2
#define ITERS 10000
#define NCOST (ITERS / 1000)

/* course / numpy-handwritten costs, iterations 0, 1000, ..., 7000 */
static const double ref_cost[8] = {0.6930480201239823,  0.2880832935690184, 0.25438549407324534,
                                   0.23386415038952202, 0.2267924874485401, 0.22264427549299018,
                                   0.21973140404281322, 0.21750365405131297};

typedef struct run {
    double cost[NCOST]; /* at iterations 0, 1000, ... */
    double last_cost;   /* at the last iteration */
    double w1_00;       /* W1[0,0] after training */
    double accuracy;    /* percent */
    double seconds;
} run;

/* ---------------------------------------------------------------- slope */

static sl_var *cost_of(sl_tape *t, sl_var *A, sl_var *Y) {
    sl_var *one = sl_scalar(t, 1.0, 0);
    sl_var *logprobs = sl_add(t, sl_mul(t, sl_log(t, A), Y),
                              sl_mul(t, sl_sub(t, one, Y), sl_log(t, sl_sub(t, one, A))));
    return sl_div(t, sl_neg(t, sl_sum(t, logprobs, SL_ALL, 0)), sl_scalar(t, M, 0));
}

static int train_slope(const double *X, const double *Y, const double *init, int iters, run *out) {
    const double t0 = bench_now();
    sl_params *ps = sl_params_new();
    sl_tape *t = sl_tape_new();
    int rc = 1;
    if (!ps || !t) {
        bench_fail(WL, "out of memory");
        goto done;
    }
    sl_param *W1 = sl_param_new(ps, "W1", 2, (int[]){4, 2}, init);
    sl_param *b1 = sl_param_new(ps, "b1", 2, (int[]){4, 1}, init + 8);
    sl_param *W2 = sl_param_new(ps, "W2", 2, (int[]){1, 4}, init + 12);
    sl_param *b2 = sl_param_new(ps, "b2", 2, (int[]){1, 1}, init + 16);
    if (!b2) {
        bench_fail(WL, "sl_param_new: %s", sl_params_error(ps));
        goto done;
    }
    sl_var *x = sl_input(t, 2, (int[]){2, M}, X, 0);
    sl_var *y = sl_input(t, 2, (int[]){1, M}, Y, 0);
    sl_var *A1 = sl_tanh(t, sl_add(t, sl_matmul(t, sl_use(t, W1), x), sl_use(t, b1)));
    sl_var *A2 = sl_sigmoid(t, sl_add(t, sl_matmul(t, sl_use(t, W2), A1), sl_use(t, b2)));
    sl_var *cost = cost_of(t, A2, y);
    for (int i = 0; i < iters; i++) {
        if (i > 0) sl_forward(t);
        sl_params_zero_grad(ps);
        sl_backward(t, cost);
        const double c = sl_item(cost);
        if (i % 1000 == 0 && i / 1000 < NCOST) out->cost[i / 1000] = c;
        out->last_cost = c;
        for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p)) {
            double *v = sl_param_value(p);
            const double *g = sl_param_grad(p);
            for (size_t k = 0, n = sl_param_numel(p); k < n; k++) v[k] -= LR * g[k];
        }
    }
    out->seconds = bench_now() - t0;
    sl_forward(t); /* predictions with the final parameters */
    if (sl_tape_status(t) != SL_OK) {
        bench_fail(WL, "slope: %s", sl_tape_error(t));
        goto done;
    }
    const double *a = sl_value(A2);
    int right = 0;
    for (int j = 0; j < M; j++) right += (a[j] > 0.5) == (Y[j] == 1.0);
    out->accuracy = (double)right / M * 100;
    out->w1_00 = sl_param_value(W1)[0];
    rc = 0;
done:
    sl_tape_free(t);
    sl_params_free(ps);
    return rc;
}

/* ------------------------------------------------- hand-written C floor */

static double accuracy_of(const double *X, const double *Y, const double *W1, const double *b1,
                          const double *W2, double b2) {
    int right = 0;
    for (int j = 0; j < M; j++) {
        double z2 = 0;
        for (int i = 0; i < 4; i++)
            z2 += W2[i] * tanh(W1[2 * i] * X[j] + W1[2 * i + 1] * X[M + j] + b1[i]);
        double a2 = 1.0 / (1.0 + exp(-(z2 + b2)));
        right += (a2 > 0.5) == (Y[j] == 1.0);
    }
    return (double)right / M * 100;
}

/* numpy-handwritten's nn_model as plain loops over the points, one per
 * step of the course's code (each transcendental loop over independent
 * elements, which keeps the core busy while libm works):
 *   Z1 = W1 X + b1, A1 = tanh Z1, Z2 = W2 A1 + b2, A2 = sigmoid Z2,
 *   cost = -sum(log(A2) Y + (1-Y) log(1-A2)) / m,
 *   dZ2 = A2 - Y, dW2 = dZ2 A1^T / m, db2 = sum dZ2 / m,
 *   dZ1 = (W2^T dZ2) * (1 - A1^2), dW1 = dZ1 X^T / m, db1 = sum dZ1 / m. */
static void train_floor(const double *X, const double *Y, const double *init, int iters, run *out) {
    const double t0 = bench_now();
    double W1[8], b1[4], W2[4], b2;
    static double A1[4][M], A2[M], LA[M], LB[M];
    memcpy(W1, init, sizeof W1);
    memcpy(b1, init + 8, sizeof b1);
    memcpy(W2, init + 12, sizeof W2);
    b2 = init[16];
    for (int it = 0; it < iters; it++) {
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < M; j++)
                A1[i][j] = W1[2 * i] * X[j] + W1[2 * i + 1] * X[M + j] + b1[i];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < M; j++) A1[i][j] = tanh(A1[i][j]);
        for (int j = 0; j < M; j++)
            A2[j] = W2[0] * A1[0][j] + W2[1] * A1[1][j] + W2[2] * A1[2][j] + W2[3] * A1[3][j] + b2;
        for (int j = 0; j < M; j++) A2[j] = 1.0 / (1.0 + exp(-A2[j]));
        for (int j = 0; j < M; j++) LA[j] = log(A2[j]);
        for (int j = 0; j < M; j++) LB[j] = log(1 - A2[j]);
        double dW1[8] = {0}, db1[4] = {0}, dW2[4] = {0}, db2 = 0, lsum = 0;
        for (int j = 0; j < M; j++) lsum += LA[j] * Y[j] + (1 - Y[j]) * LB[j];
        for (int j = 0; j < M; j++) {
            const double dz2 = A2[j] - Y[j], x1 = X[j], x2 = X[M + j];
            db2 += dz2;
            for (int i = 0; i < 4; i++) {
                const double a = A1[i][j];
                dW2[i] += dz2 * a;
                const double dz1 = W2[i] * dz2 * (1 - a * a);
                dW1[2 * i] += dz1 * x1;
                dW1[2 * i + 1] += dz1 * x2;
                db1[i] += dz1;
            }
        }
        const double c = -lsum / M;
        if (it % 1000 == 0 && it / 1000 < NCOST) out->cost[it / 1000] = c;
        out->last_cost = c;
        for (int i = 0; i < 8; i++) W1[i] -= LR * (dW1[i] / M);
        for (int i = 0; i < 4; i++) b1[i] -= LR * (db1[i] / M);
        for (int i = 0; i < 4; i++) W2[i] -= LR * (dW2[i] / M);
        b2 -= LR * (db2 / M);
    }
    out->seconds = bench_now() - t0;
    out->accuracy = accuracy_of(X, Y, W1, b1, W2, b2);
    out->w1_00 = W1[0];
}

/* ----------------------------- the same floor with glibc's vector libm */

#if defined(SLOPE_BENCH_LIBMVEC) && defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* glibc's libmvec (within 4 ulp, not correctly rounded): the AVX2 variants
 * (4 doubles) and the AVX-512 ones (8), as src/vmath.c picks them */
#define AVX2 __attribute__((target("avx2")))
#define AVX512 __attribute__((target("avx512f")))
AVX2 __m256d _ZGVdN4v_exp(__m256d x);
AVX2 __m256d _ZGVdN4v_log(__m256d x);
AVX2 __m256d _ZGVdN4v_tanh(__m256d x);
AVX512 __m512d _ZGVeN8v_exp(__m512d x);
AVX512 __m512d _ZGVeN8v_log(__m512d x);
AVX512 __m512d _ZGVeN8v_tanh(__m512d x);
#define HAVE_LIBMVEC 1
#define V4(f, o, x) _mm256_storeu_pd(o, _ZGVdN4v_##f(_mm256_loadu_pd(x)))
#define V8(f, o, x) _mm512_storeu_pd(o, _ZGVeN8v_##f(_mm512_loadu_pd(x)))

/* As train_floor, W points at a time: the three transcendental functions
 * through libmvec (VF: V4 or V8), the rest element by element in the same
 * order. M = 400 is a multiple of both widths. */
#define FLOOR_MVEC(NAME, TARGET, W, VF)                                                            \
    TARGET static void NAME(const double *X, const double *Y, const double *init, int iters,       \
                            run *out) {                                                            \
        const double t0 = bench_now();                                                             \
        double W1[8], b1[4], W2[4], b2;                                                            \
        memcpy(W1, init, sizeof W1);                                                               \
        memcpy(b1, init + 8, sizeof b1);                                                           \
        memcpy(W2, init + 12, sizeof W2);                                                          \
        b2 = init[16];                                                                             \
        for (int it = 0; it < iters; it++) {                                                       \
            double dW1[8] = {0}, db1[4] = {0}, dW2[4] = {0}, db2 = 0, lsum = 0;                    \
            for (int j = 0; j < M; j += W) {                                                       \
                double a1[4][W], z2[W], a2[W], la[W], lb[W], q[W];                                 \
                for (int i = 0; i < 4; i++) {                                                      \
                    double z[W];                                                                   \
                    for (int u = 0; u < W; u++)                                                    \
                        z[u] = W1[2 * i] * X[j + u] + W1[2 * i + 1] * X[M + j + u] + b1[i];        \
                    VF(tanh, a1[i], z);                                                            \
                }                                                                                  \
                for (int u = 0; u < W; u++)                                                        \
                    z2[u] = -(W2[0] * a1[0][u] + W2[1] * a1[1][u] + W2[2] * a1[2][u] +             \
                              W2[3] * a1[3][u] + b2);                                              \
                VF(exp, a2, z2);                                                                   \
                for (int u = 0; u < W; u++) a2[u] = 1.0 / (1.0 + a2[u]), q[u] = 1 - a2[u];         \
                VF(log, la, a2);                                                                   \
                VF(log, lb, q);                                                                    \
                for (int u = 0; u < W; u++) {                                                      \
                    const double x1 = X[j + u], x2 = X[M + j + u], y = Y[j + u];                   \
                    lsum += la[u] * y + (1 - y) * lb[u];                                           \
                    const double dz2 = a2[u] - y;                                                  \
                    db2 += dz2;                                                                    \
                    for (int i = 0; i < 4; i++) {                                                  \
                        const double a = a1[i][u];                                                 \
                        dW2[i] += dz2 * a;                                                         \
                        const double dz1 = W2[i] * dz2 * (1 - a * a);                              \
                        dW1[2 * i] += dz1 * x1;                                                    \
                        dW1[2 * i + 1] += dz1 * x2;                                                \
                        db1[i] += dz1;                                                             \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            const double c = -lsum / M;                                                            \
            if (it % 1000 == 0 && it / 1000 < NCOST) out->cost[it / 1000] = c;                     \
            out->last_cost = c;                                                                    \
            for (int i = 0; i < 8; i++) W1[i] -= LR * (dW1[i] / M);                                \
            for (int i = 0; i < 4; i++) b1[i] -= LR * (db1[i] / M);                                \
            for (int i = 0; i < 4; i++) W2[i] -= LR * (dW2[i] / M);                                \
            b2 -= LR * (db2 / M);                                                                  \
        }                                                                                          \
        out->seconds = bench_now() - t0;                                                           \
        out->accuracy = accuracy_of(X, Y, W1, b1, W2, b2);                                         \
        out->w1_00 = W1[0];                                                                        \
    }
FLOOR_MVEC(train_floor_mvec4, AVX2, 4, V4)
FLOOR_MVEC(train_floor_mvec8, AVX512, 8, V8)
#endif

/* ------------------------------------------------------------ reporting */

static void report(const bench_opts *o, const char *peer, run *runs, int nruns, int iters) {
    double s[8];
    for (int r = 0; r < nruns; r++) s[r] = runs[r].seconds;
    const double T = bench_median(s, nruns);
    bench_result(o, WL, peer, "train_seconds", T, "s");
    bench_result(o, WL, peer, "us_per_iter", T / iters * 1e6, "us");
    const run *r0 = &runs[0];
    if (iters == ITERS) bench_result(o, WL, peer, "train_accuracy", r0->accuracy, "percent");
    for (int k = 0; k < NCOST && k * 1000 < iters; k++) {
        char key[32];
        snprintf(key, sizeof key, "cost_iter_%d", k * 1000);
        if (k < 8)
            bench_check_rel(WL, peer, key, r0->cost[k], ref_cost[k], 1e-9);
        else
            bench_check(WL, peer, key, r0->cost[k]); /* chaotic phase: not compared */
    }
    bench_check(WL, peer, "cost_last_iter", r0->last_cost);
    bench_check(WL, peer, "W1_final_00", r0->w1_00);
    if (iters == ITERS) {
        /* libmvec's functions are not correctly rounded: after the chaotic
         * phase its accuracy may land elsewhere, so it is only printed */
        static const double ok[] = {90.5, 90.75};
        if (strcmp(peer, "c-handwritten-libmvec") != 0)
            bench_check_oneof(WL, peer, "train_accuracy", r0->accuracy, ok, 2);
        else
            bench_check(WL, peer, "train_accuracy", r0->accuracy);
    }
    /* every run starts from the same parameters: the same trajectory */
    for (int r = 1; r < nruns; r++)
        if (runs[r].last_cost != r0->last_cost)
            bench_fail(WL, "%s: run %d ended at cost %.17g, run 0 at %.17g", peer, r,
                       runs[r].last_cost, r0->last_cost);
}

int bench_w2(const bench_opts *o) {
    static double X[2 * M], Y[M], xy[3 * M], init[17];
    char path[1024];
    if (bench_read_csv(WL, bench_data_path(o, "planar_X.csv", path, sizeof path), 0, 3, xy, M) != M)
        return 1;
    for (int j = 0; j < M; j++) X[j] = xy[3 * j], X[M + j] = xy[3 * j + 1], Y[j] = xy[3 * j + 2];
    /* planar_init.csv: name,index,value - W1 (8), b1 (4), W2 (4), b2 (1) in that order */
    double rows[17 * 2];
    if (bench_read_csv(WL, bench_data_path(o, "planar_init.csv", path, sizeof path), 1, 2, rows,
                       17) != 17)
        return 1;
    for (int i = 0; i < 17; i++) init[i] = rows[2 * i + 1];

    /* --quick: 1001 iterations (costs at 0 and 1000), one run */
    const int iters = o->quick ? 1001 : ITERS, nruns = o->quick ? 1 : 3;
    run runs[3];
    double ts[3];
    memset(runs, 0, sizeof runs);
    train_slope(X, Y, init, o->quick ? 10 : 200, &runs[0]); /* warm-up, as the torch peer */
    for (int r = 0; r < nruns; r++)
        if (train_slope(X, Y, init, iters, &runs[r])) return 1;
    report(o, "slope", runs, nruns, iters);
    for (int r = 0; r < nruns; r++) ts[r] = runs[r].seconds;
    const double t_slope = bench_median(ts, nruns);

    memset(runs, 0, sizeof runs);
    for (int r = 0; r < nruns; r++) train_floor(X, Y, init, iters, &runs[r]);
    report(o, "c-handwritten", runs, nruns, iters);
    for (int r = 0; r < nruns; r++) ts[r] = runs[r].seconds;
    bench_result(o, WL, "slope", "ratio_over_c_handwritten", t_slope / bench_median(ts, nruns),
                 "x");
#ifdef HAVE_LIBMVEC
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        /* the widest variant the CPU runs, as src/vmath.c picks it */
        const int w8 = __builtin_cpu_supports("avx512f");
        bench_check(WL, "c-handwritten-libmvec", "vector_width", w8 ? 8 : 4);
        memset(runs, 0, sizeof runs);
        for (int r = 0; r < nruns; r++)
            (w8 ? train_floor_mvec8 : train_floor_mvec4)(X, Y, init, iters, &runs[r]);
        report(o, "c-handwritten-libmvec", runs, nruns, iters);
        for (int r = 0; r < nruns; r++) ts[r] = runs[r].seconds;
        bench_result(o, WL, "slope", "ratio_over_c_handwritten_libmvec",
                     t_slope / bench_median(ts, nruns), "x");
    }
#endif
    return 0;
}
