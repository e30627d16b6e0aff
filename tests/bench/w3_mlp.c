/*
 * W3 "mlp-medium" (WORKLOADS.md#W3): 784 -> 256 relu -> 256 relu -> 10,
 * softmax cross-entropy, batch 128, plain SGD lr 0.01; data and weights from
 * splitmix64 seed 42 (slope's sl_rng is the same generator).
 *
 * peer=slope, one step = record the graph on a cleared tape (define-by-run,
 * as the torch peer; the arena is reused), sl_backward, p -= 0.01 grad,
 * zero the gradients. The loss is sl_cross_entropy(z, labels) when that op
 * is registered, else mean(logsumexp(z) - sum(z * onehot)) from slope ops;
 * a comment line says which. Also: ms_per_step_replay (the graph recorded
 * once; each step is sl_forward + sl_backward + update).
 * peer=c-handwritten: numpy-handwritten's backprop as plain C loops (the
 * same three loop orders as slope's matmul kernel, no BLAS, no tape).
 *
 * Timing: a check run (fresh parameters, 10 steps: loss_step0, loss_step9),
 * then fresh parameters, 5 warm-up steps and 3 blocks of 50 timed steps;
 * ms_per_step is the median of the three block medians.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WL "W3-mlp-medium"
#define B 128
#define D_IN 784
#define H1 256
#define H2 256
#define D_OUT 10
#define LR 0.01
#define FLOPS_PER_STEP 155058176.0
static const double LOSS0 = 3.199578582304973, LOSS9 = 1.884407859111988;

typedef struct data {
    double *X;      /* (B, D_IN) */
    double *labels; /* (B) class indices as doubles */
    double *onehot; /* (B, D_OUT) */
    double *P0[6];  /* initial W1, b1, W2, b2, W3, b3 */
} data;

static const int pdims[6][2] = {{D_IN, H1}, {H1, 0}, {H1, H2}, {H2, 0}, {H2, D_OUT}, {D_OUT, 0}};
static size_t pnumel(int i) {
    return (size_t)pdims[i][0] * (size_t)(pdims[i][1] ? pdims[i][1] : 1);
}

static int make_data(data *d) {
    memset(d, 0, sizeof *d);
    d->X = malloc(sizeof(double) * B * D_IN);
    d->labels = malloc(sizeof(double) * B);
    d->onehot = calloc(B * D_OUT, sizeof(double));
    int ok = d->X && d->labels && d->onehot;
    for (int i = 0; i < 6; i++) ok = ok && (d->P0[i] = calloc(pnumel(i), sizeof(double)));
    if (!ok) return -1;
    sl_rng r;
    sl_rng_seed(&r, 42);
    for (int i = 0; i < B * D_IN; i++) d->X[i] = bench_sym(&r) * sqrt(3.0);
    for (int i = 0; i < B; i++) {
        const int k = (int)(sl_rng_next(&r) % 10);
        d->labels[i] = k;
        d->onehot[i * D_OUT + k] = 1.0;
    }
    const double s1 = sqrt(6.0 / D_IN), s2 = sqrt(6.0 / H1), s3 = sqrt(6.0 / H2);
    for (size_t i = 0; i < pnumel(0); i++) d->P0[0][i] = bench_sym(&r) * s1;
    for (size_t i = 0; i < pnumel(2); i++) d->P0[2][i] = bench_sym(&r) * s2;
    for (size_t i = 0; i < pnumel(4); i++) d->P0[4][i] = bench_sym(&r) * s3;
    return 0;
}

static void free_data(data *d) {
    free(d->X);
    free(d->labels);
    free(d->onehot);
    for (int i = 0; i < 6; i++) free(d->P0[i]);
}

/* ---------------------------------------------------------------- slope */

typedef struct model {
    sl_params *ps;
    sl_param *p[6];
    const sl_op *ce; /* the registered cross_entropy op, or NULL */
} model;

static int model_new(model *m, const data *d) {
    static const char *names[6] = {"W1", "b1", "W2", "b2", "W3", "b3"};
    m->ps = sl_params_new();
    if (!m->ps) return -1;
    for (int i = 0; i < 6; i++) {
        const int nd = pdims[i][1] ? 2 : 1;
        m->p[i] = sl_param_new(m->ps, names[i], nd, pdims[i], d->P0[i]);
        if (!m->p[i]) return -1;
    }
    m->ce = sl_op_find("cross_entropy");
    return 0;
}

/* Record forward + loss on t; returns the loss node. */
static sl_var *record(sl_tape *t, const model *m, const data *d) {
    sl_var *x = sl_input(t, 2, (int[]){B, D_IN}, d->X, 0);
    sl_var *p[6];
    for (int i = 0; i < 6; i++) p[i] = sl_use(t, m->p[i]);
    sl_var *h1 = sl_relu(t, sl_add(t, sl_matmul(t, x, p[0]), p[1]));
    sl_var *h2 = sl_relu(t, sl_add(t, sl_matmul(t, h1, p[2]), p[3]));
    sl_var *z = sl_add(t, sl_matmul(t, h2, p[4]), p[5]);
    if (m->ce) {
        sl_var *in[2] = {z, sl_input(t, 1, (int[]){B}, d->labels, 0)};
        return sl_apply(t, m->ce, 2, in, NULL);
    }
    sl_var *onehot = sl_input(t, 2, (int[]){B, D_OUT}, d->onehot, 0);
    sl_var *zy = sl_sum(t, sl_mul(t, z, onehot), 1, 0);
    return sl_mean(t, sl_sub(t, sl_logsumexp(t, z, 1, 0), zy), SL_ALL, 0);
}

static void update(model *m) {
    for (int i = 0; i < 6; i++) {
        double *v = sl_param_value(m->p[i]), *g = sl_param_grad(m->p[i]);
        for (size_t k = 0, n = pnumel(i); k < n; k++) v[k] -= LR * g[k];
    }
    sl_params_zero_grad(m->ps);
}

/* One define-by-run step; returns the loss (NaN on a tape error). */
static double step_record(sl_tape *t, model *m, const data *d) {
    sl_tape_clear(t);
    sl_var *loss = record(t, m, d);
    sl_backward(t, loss);
    const double l = sl_item(loss);
    update(m);
    return sl_tape_status(t) == SL_OK ? l : NAN;
}

static double step_replay(sl_tape *t, model *m, sl_var *loss) {
    sl_forward(t);
    sl_backward(t, loss);
    const double l = sl_item(loss);
    update(m);
    return sl_tape_status(t) == SL_OK ? l : NAN;
}

/* ------------------------------------------------- hand-written C floor */

/* C (m,n) = op(A) op(B): the three products backprop needs, plain loops in
 * the loop orders of slope's sl__gemm (innermost loop contiguous; no
 * blocking, no BLAS). */
static void mm_nn(int m, int n, int k, const double *A, const double *Bm, double *C) {
    memset(C, 0, sizeof(double) * (size_t)m * (size_t)n);
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++) {
            const double a = A[(size_t)i * k + p], *b = Bm + (size_t)p * n;
            double *c = C + (size_t)i * n;
            for (int j = 0; j < n; j++) c[j] += a * b[j];
        }
}
static void mm_nt(int m, int n, int k, const double *A, const double *Bm, double *C) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            const double *a = A + (size_t)i * k, *b = Bm + (size_t)j * k;
            double s = 0;
            for (int p = 0; p < k; p++) s += a[p] * b[p];
            C[(size_t)i * n + j] = s;
        }
}
static void mm_tn(int m, int n, int k, const double *A, const double *Bm, double *C) {
    memset(C, 0, sizeof(double) * (size_t)m * (size_t)n);
    for (int p = 0; p < k; p++)
        for (int i = 0; i < m; i++) {
            const double a = A[(size_t)p * m + i], *b = Bm + (size_t)p * n;
            double *c = C + (size_t)i * n;
            for (int j = 0; j < n; j++) c[j] += a * b[j];
        }
}

typedef struct floor_ws {
    double *P[6], *G[6];
    double *z1, *a1, *z2, *a2, *z3, *g3, *g2, *g1;
} floor_ws;

static int floor_new(floor_ws *w, const data *d) {
    memset(w, 0, sizeof *w);
    int ok = 1;
    for (int i = 0; i < 6; i++) {
        ok = ok && (w->P[i] = malloc(sizeof(double) * pnumel(i)));
        ok = ok && (w->G[i] = malloc(sizeof(double) * pnumel(i)));
        if (ok) memcpy(w->P[i], d->P0[i], sizeof(double) * pnumel(i));
    }
    double **act[8] = {&w->z1, &w->a1, &w->z2, &w->a2, &w->z3, &w->g3, &w->g2, &w->g1};
    const size_t n[8] = {B * H1, B * H1, B * H2, B * H2, B * D_OUT, B * D_OUT, B * H2, B * H1};
    for (int i = 0; i < 8; i++) ok = ok && (*act[i] = malloc(sizeof(double) * n[i]));
    return ok ? 0 : -1;
}

static void floor_free(floor_ws *w) {
    for (int i = 0; i < 6; i++) free(w->P[i]), free(w->G[i]);
    free(w->z1), free(w->a1), free(w->z2), free(w->a2), free(w->z3), free(w->g3), free(w->g2),
        free(w->g1);
}

static void add_bias_relu(double *z, double *a, const double *b, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double v = z[(size_t)i * cols + j] + b[j];
            z[(size_t)i * cols + j] = v;
            a[(size_t)i * cols + j] = v > 0 ? v : 0.0;
        }
}

static void colsum(const double *g, int rows, int cols, double *out) {
    memset(out, 0, sizeof(double) * (size_t)cols);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) out[j] += g[(size_t)i * cols + j];
}

/* numpy-handwritten's step: forward, softmax-CE, hand-derived gradients, SGD. */
static double floor_step(floor_ws *w, const data *d) {
    double **P = w->P, **G = w->G;
    mm_nn(B, H1, D_IN, d->X, P[0], w->z1);
    add_bias_relu(w->z1, w->a1, P[1], B, H1);
    mm_nn(B, H2, H1, w->a1, P[2], w->z2);
    add_bias_relu(w->z2, w->a2, P[3], B, H2);
    mm_nn(B, D_OUT, H2, w->a2, P[4], w->z3);
    double loss = 0;
    for (int i = 0; i < B; i++) {
        double *z = w->z3 + (size_t)i * D_OUT, *g = w->g3 + (size_t)i * D_OUT;
        for (int j = 0; j < D_OUT; j++) z[j] += P[5][j];
        double m = z[0], s = 0;
        for (int j = 1; j < D_OUT; j++) m = z[j] > m ? z[j] : m;
        for (int j = 0; j < D_OUT; j++) s += (g[j] = exp(z[j] - m));
        const int k = (int)d->labels[i];
        loss += z[k] - m - log(s);
        for (int j = 0; j < D_OUT; j++) g[j] = (g[j] / s - (j == k ? 1.0 : 0.0)) / B;
    }
    loss = -loss / B;
    mm_tn(H2, D_OUT, B, w->a2, w->g3, G[4]);
    colsum(w->g3, B, D_OUT, G[5]);
    mm_nt(B, H2, D_OUT, w->g3, P[4], w->g2);
    for (size_t i = 0; i < (size_t)B * H2; i++) w->g2[i] = w->z2[i] > 0 ? w->g2[i] : 0.0;
    mm_tn(H1, H2, B, w->a1, w->g2, G[2]);
    colsum(w->g2, B, H2, G[3]);
    mm_nt(B, H1, H2, w->g2, P[2], w->g1);
    for (size_t i = 0; i < (size_t)B * H1; i++) w->g1[i] = w->z1[i] > 0 ? w->g1[i] : 0.0;
    mm_tn(D_IN, H1, B, d->X, w->g1, G[0]);
    colsum(w->g1, B, H1, G[1]);
    for (int i = 0; i < 6; i++)
        for (size_t k = 0, n = pnumel(i); k < n; k++) P[i][k] -= LR * G[i][k];
    return loss;
}

/* ------------------------------------------------------------ timing */

typedef double (*step_fn)(void *ctx);

/* 5 warm-up steps, then 3 blocks of `steps` timed steps: the median of the block medians. */
static double time_steps(step_fn f, void *ctx, int warm, int blocks, int steps) {
    double med[3], *ts = malloc(sizeof(double) * (size_t)steps);
    if (!ts) return NAN;
    for (int i = 0; i < warm; i++) f(ctx);
    for (int b = 0; b < blocks; b++) {
        for (int s = 0; s < steps; s++) {
            const double t0 = bench_now();
            f(ctx);
            ts[s] = bench_now() - t0;
        }
        med[b] = bench_median(ts, steps);
    }
    free(ts);
    return bench_median(med, blocks);
}

typedef struct slope_ctx {
    sl_tape *t;
    model m;
    const data *d;
    sl_var *loss; /* replay */
} slope_ctx;

static double f_record(void *c) {
    slope_ctx *s = c;
    return step_record(s->t, &s->m, s->d);
}
static double f_replay(void *c) {
    slope_ctx *s = c;
    return step_replay(s->t, &s->m, s->loss);
}
typedef struct floor_ctx {
    floor_ws w;
    const data *d;
} floor_ctx;
static double f_floor(void *c) {
    floor_ctx *s = c;
    return floor_step(&s->w, s->d);
}

static void report_time(const bench_opts *o, const char *peer, const char *metric, double t) {
    bench_result(o, WL, peer, metric, t * 1e3, "ms");
}

int bench_w3(const bench_opts *o) {
    data d;
    int rc = 1;
    const int warm = o->quick ? 1 : 5, blocks = o->quick ? 1 : 3, steps = o->quick ? 2 : 50;
    if (make_data(&d)) {
        bench_fail(WL, "out of memory");
        free_data(&d);
        return 1;
    }
    slope_ctx s = {.t = sl_tape_new(), .d = &d};
    floor_ctx fl = {.d = &d};
    if (!s.t || model_new(&s.m, &d)) {
        bench_fail(WL, "out of memory");
        goto done;
    }
    printf("# W3: slope's loss is %s\n",
           s.m.ce ? "sl_cross_entropy(z, labels)" : "mean(logsumexp(z) - sum(z*onehot))");
    /* check run: fresh parameters, 10 steps */
    double losses[10];
    for (int k = 0; k < 10; k++) losses[k] = step_record(s.t, &s.m, &d);
    if (sl_tape_status(s.t) != SL_OK) {
        bench_fail(WL, "slope: %s", sl_tape_error(s.t));
        goto done;
    }
    bench_check_rel(WL, "slope", "loss_step0", losses[0], LOSS0, 1e-12);
    bench_check_rel(WL, "slope", "loss_step9", losses[9], LOSS9, 1e-12);
    /* timed: fresh parameters again */
    sl_params_free(s.m.ps);
    if (model_new(&s.m, &d)) goto done;
    const double t_rec = time_steps(f_record, &s, warm, blocks, steps);
    report_time(o, "slope", "ms_per_step", t_rec);
    bench_result(o, WL, "slope", "effective_gflops", FLOPS_PER_STEP / t_rec / 1e9, "GFLOP/s");
    /* replay: record once on fresh parameters, check, then time */
    sl_params_free(s.m.ps);
    if (model_new(&s.m, &d)) goto done;
    sl_tape_clear(s.t);
    s.loss = record(s.t, &s.m, &d);
    sl_backward(s.t, s.loss);
    losses[0] = sl_item(s.loss);
    update(&s.m);
    for (int k = 1; k < 10; k++) losses[k] = step_replay(s.t, &s.m, s.loss);
    bench_check_rel(WL, "slope", "replay_loss_step9", losses[9], LOSS9, 1e-12);
    const double t_rep = time_steps(f_replay, &s, warm, blocks, steps);
    report_time(o, "slope", "ms_per_step_replay", t_rep);

    /* the hand-written floor: the same protocol */
    if (floor_new(&fl.w, &d)) {
        bench_fail(WL, "out of memory");
        goto done;
    }
    for (int k = 0; k < 10; k++) losses[k] = floor_step(&fl.w, &d);
    bench_check_rel(WL, "c-handwritten", "loss_step0", losses[0], LOSS0, 1e-12);
    bench_check_rel(WL, "c-handwritten", "loss_step9", losses[9], LOSS9, 1e-12);
    for (int i = 0; i < 6; i++) memcpy(fl.w.P[i], d.P0[i], sizeof(double) * pnumel(i));
    const double t_floor = time_steps(f_floor, &fl, warm, blocks, steps);
    report_time(o, "c-handwritten", "ms_per_step", t_floor);
    bench_result(o, WL, "c-handwritten", "effective_gflops", FLOPS_PER_STEP / t_floor / 1e9,
                 "GFLOP/s");
    bench_result(o, WL, "slope", "ratio_over_c_handwritten", t_rec / t_floor, "x");
    rc = 0;
done:
    floor_free(&fl.w);
    sl_params_free(s.m.ps);
    sl_tape_free(s.t);
    free_data(&d);
    return rc;
}
