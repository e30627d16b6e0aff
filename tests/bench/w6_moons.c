/*
 * W6 "micrograd-moons" (WORKLOADS.md#W6): micrograd's MLP(2, [16, 16, 1])
 * (relu, relu, linear; 337 parameters from data/moons_init_params.csv in
 * micrograd's parameters() order) on the 100 moons of data/moons.csv; one
 * step is the whole batch:
 *   loss = sum_i relu(1 + -y_i score_i) * (1/100) + 1e-4 * sum_p p*p
 *   backward; p -= lr_k grad, lr_k = 1.0 - 0.9 k / 100.
 *
 * peer=slope, s_per_step_scalar_graph: one rank-0 node per micrograd Value
 *   op, in micrograd's order: a neuron is b + w0 x0 + w1 x1 + ... (Python's
 *   sum with start b), relu but in the last layer; the data loss is
 *   (((0 + l0) + l1) + ...) * 0.01 and the regulariser (0 + p0 p0 + ...) * 1e-4.
 *   The 337 parameters are rank-0 sl_params (sl_use per step), the inputs,
 *   -y_i and the constants rank-0 leaves. Each step records a fresh graph
 *   (sl_tape_clear, as micrograd rebuilds its graph); the _replay metric
 *   records once and replays (sl_forward) with the updated parameters.
 * peer=slope, s_per_step_tensor_graph: the same net as batched tensors (the
 *   torch peer's formulation: X W1 + b1 with W stored [nin, nout]).
 * peer=c-handwritten: forward and hand-derived backward per point, plain C.
 *
 * Timing as the torch peer: 100 steps (the whole training run) per repeat,
 * 3 repeats from the initial parameters, the median of the per-repeat
 * median step times. CHECK loss_step0..4 (scalar graph), tensor_loss_step0..4,
 * and the floor's loss_step0..4.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WL "W6-micrograd-moons"
#define NPTS 100
#define NPAR 337
#define HID 16
#define ALPHA 1e-4
static const double ref_loss[5] = {0.8958441028683222, 1.7235905336972022, 0.7429006313851131,
                                   0.7705641260584198, 0.3692793385976538};
/* micrograd's order: layer 1 neuron j at 3j (w0, w1, b); layer 2 neuron j at
 * 48 + 17j (w0..w15, b); the output neuron at 320 (w0..w15, b). */
#define L1(j) (3 * (j))
#define L2(j) (48 + 17 * (j))
#define L3 320

typedef struct moons {
    double X[NPTS][2], y[NPTS];
    double init[NPAR];
} moons;

static double lr_at(int k) { return 1.0 - 0.9 * k / 100; }

/* --------------------------------------------------- slope, scalar graph */

typedef struct scalar_model {
    sl_params *ps;
    sl_param *p[NPAR];
} scalar_model;

static int scalar_model_new(scalar_model *m, const double *init) {
    m->ps = sl_params_new();
    if (!m->ps) return -1;
    for (int i = 0; i < NPAR; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        m->p[i] = sl_param_new(m->ps, name, 0, NULL, init + i);
        if (!m->p[i]) return -1;
    }
    return 0;
}

static void scalar_model_reset(scalar_model *m, const double *init) {
    for (int i = 0; i < NPAR; i++) sl_param_value(m->p[i])[0] = init[i];
    sl_params_zero_grad(m->ps);
}

/* micrograd's Neuron: sum((wi*xi for wi, xi in zip(w, x)), b), then relu */
static sl_var *neuron(sl_tape *t, sl_var *const *w, int nin, sl_var *const *x, int relu) {
    sl_var *act = w[nin]; /* b */
    for (int i = 0; i < nin; i++) act = sl_add(t, act, sl_mul(t, w[i], x[i]));
    return relu ? sl_relu(t, act) : act;
}

/* The demo's loss() on a fresh graph; returns the total loss node. */
static sl_var *scalar_loss(sl_tape *t, scalar_model *m, const moons *d) {
    sl_var *p[NPAR];
    for (int i = 0; i < NPAR; i++) p[i] = sl_use(t, m->p[i]);
    sl_var *one = sl_scalar(t, 1.0, 0), *zero = sl_scalar(t, 0.0, 0);
    sl_var *inv_n = sl_scalar(t, 1.0 / NPTS, 0), *alpha = sl_scalar(t, ALPHA, 0);
    sl_var *data_sum = zero;
    for (int n = 0; n < NPTS; n++) {
        sl_var *x[2] = {sl_scalar(t, d->X[n][0], 0), sl_scalar(t, d->X[n][1], 0)};
        sl_var *h1[HID], *h2[HID];
        for (int j = 0; j < HID; j++) h1[j] = neuron(t, p + L1(j), 2, x, 1);
        for (int j = 0; j < HID; j++) h2[j] = neuron(t, p + L2(j), HID, h1, 1);
        sl_var *score = neuron(t, p + L3, HID, h2, 0);
        /* (1 + -yi*scorei).relu(): score * Value(-yi), + 1 */
        sl_var *margin = sl_add(t, sl_mul(t, score, sl_scalar(t, -d->y[n], 0)), one);
        data_sum = sl_add(t, data_sum, sl_relu(t, margin));
    }
    sl_var *data_loss = sl_mul(t, data_sum, inv_n);
    sl_var *reg = zero;
    for (int i = 0; i < NPAR; i++) reg = sl_add(t, reg, sl_mul(t, p[i], p[i]));
    return sl_add(t, data_loss, sl_mul(t, reg, alpha));
}

static void scalar_update(scalar_model *m, int k) {
    const double lr = lr_at(k);
    for (int i = 0; i < NPAR; i++) sl_param_value(m->p[i])[0] -= lr * sl_param_grad(m->p[i])[0];
}

/* --------------------------------------------------- slope, tensor graph */

typedef struct tensor_model {
    sl_params *ps;
    sl_param *W1, *b1, *W2, *b2, *W3, *b3;
    double W1i[2 * HID], W2i[HID * HID], W3i[HID], b1i[HID], b2i[HID], b3i[1];
} tensor_model;

/* micrograd's neuron-major parameters into [nin, nout] weights and biases */
static void tensor_init(tensor_model *m, const double *init) {
    for (int j = 0; j < HID; j++) {
        for (int i = 0; i < 2; i++) m->W1i[i * HID + j] = init[L1(j) + i];
        m->b1i[j] = init[L1(j) + 2];
        for (int i = 0; i < HID; i++) m->W2i[i * HID + j] = init[L2(j) + i];
        m->b2i[j] = init[L2(j) + HID];
        m->W3i[j] = init[L3 + j];
    }
    m->b3i[0] = init[L3 + HID];
}

static int tensor_model_new(tensor_model *m, const double *init) {
    tensor_init(m, init);
    m->ps = sl_params_new();
    if (!m->ps) return -1;
    m->W1 = sl_param_new(m->ps, "W1", 2, (int[]){2, HID}, m->W1i);
    m->b1 = sl_param_new(m->ps, "b1", 1, (int[]){HID}, m->b1i);
    m->W2 = sl_param_new(m->ps, "W2", 2, (int[]){HID, HID}, m->W2i);
    m->b2 = sl_param_new(m->ps, "b2", 1, (int[]){HID}, m->b2i);
    m->W3 = sl_param_new(m->ps, "W3", 2, (int[]){HID, 1}, m->W3i);
    m->b3 = sl_param_new(m->ps, "b3", 1, (int[]){1}, m->b3i);
    return m->b3 ? 0 : -1;
}

static void tensor_model_reset(tensor_model *m) {
    const struct {
        sl_param *p;
        const double *v;
    } pv[6] = {{m->W1, m->W1i}, {m->b1, m->b1i}, {m->W2, m->W2i},
               {m->b2, m->b2i}, {m->W3, m->W3i}, {m->b3, m->b3i}};
    for (int i = 0; i < 6; i++)
        memcpy(sl_param_value(pv[i].p), pv[i].v, sl_param_numel(pv[i].p) * sizeof(double));
    sl_params_zero_grad(m->ps);
}

static sl_var *tensor_loss(sl_tape *t, tensor_model *m, const double *X, const double *negy) {
    sl_var *x = sl_input(t, 2, (int[]){NPTS, 2}, X, 0);
    sl_var *ny = sl_input(t, 2, (int[]){NPTS, 1}, negy, 0);
    sl_var *W1 = sl_use(t, m->W1), *b1 = sl_use(t, m->b1), *W2 = sl_use(t, m->W2);
    sl_var *b2 = sl_use(t, m->b2), *W3 = sl_use(t, m->W3), *b3 = sl_use(t, m->b3);
    sl_var *h = sl_relu(t, sl_add(t, sl_matmul(t, x, W1), b1));
    h = sl_relu(t, sl_add(t, sl_matmul(t, h, W2), b2));
    sl_var *scores = sl_add(t, sl_matmul(t, h, W3), b3);
    sl_var *margins = sl_relu(t, sl_add(t, sl_scalar(t, 1.0, 0), sl_mul(t, ny, scores)));
    sl_var *data_loss = sl_mul(t, sl_sum(t, margins, SL_ALL, 0), sl_scalar(t, 1.0 / NPTS, 0));
    sl_var *ps[6] = {W1, b1, W2, b2, W3, b3};
    sl_var *reg = sl_sum(t, sl_mul(t, ps[0], ps[0]), SL_ALL, 0);
    for (int i = 1; i < 6; i++) reg = sl_add(t, reg, sl_sum(t, sl_mul(t, ps[i], ps[i]), SL_ALL, 0));
    return sl_add(t, data_loss, sl_mul(t, sl_scalar(t, ALPHA, 0), reg));
}

static void tensor_update(tensor_model *m, int k) {
    const double lr = lr_at(k);
    for (sl_param *p = sl_params_next(m->ps, NULL); p; p = sl_params_next(m->ps, p)) {
        double *v = sl_param_value(p);
        const double *g = sl_param_grad(p);
        for (size_t i = 0, n = sl_param_numel(p); i < n; i++) v[i] -= lr * g[i];
    }
}

/* ------------------------------------------------- hand-written C floor */

typedef struct floor_net {
    double p[NPAR], g[NPAR];
} floor_net;

/* One step: forward per point in micrograd's order, backward by hand. Returns the loss. */
static double floor_step(floor_net *f, const moons *d, int k) {
    double *p = f->p, *g = f->g;
    memset(g, 0, sizeof f->g);
    double data_sum = 0;
    for (int n = 0; n < NPTS; n++) {
        const double *x = d->X[n];
        double z1[HID], h1[HID], z2[HID], h2[HID];
        for (int j = 0; j < HID; j++) {
            const double *w = p + L1(j);
            z1[j] = w[2] + w[0] * x[0] + w[1] * x[1];
            h1[j] = z1[j] > 0 ? z1[j] : 0.0;
        }
        for (int j = 0; j < HID; j++) {
            const double *w = p + L2(j);
            double a = w[HID];
            for (int i = 0; i < HID; i++) a += w[i] * h1[i];
            z2[j] = a;
            h2[j] = a > 0 ? a : 0.0;
        }
        double score = p[L3 + HID];
        for (int i = 0; i < HID; i++) score += p[L3 + i] * h2[i];
        const double margin = score * -d->y[n] + 1.0;
        if (!(margin > 0)) continue; /* relu: no loss, no gradient */
        data_sum += margin;
        /* backward: dloss/dscore = (1/100) * (-y) */
        const double ds = (1.0 / NPTS) * -d->y[n];
        double dh2[HID], dh1[HID] = {0};
        g[L3 + HID] += ds;
        for (int i = 0; i < HID; i++) g[L3 + i] += ds * h2[i], dh2[i] = ds * p[L3 + i];
        for (int j = 0; j < HID; j++) {
            if (!(z2[j] > 0)) continue;
            double *w = p + L2(j), *gw = g + L2(j);
            gw[HID] += dh2[j];
            for (int i = 0; i < HID; i++) gw[i] += dh2[j] * h1[i], dh1[i] += dh2[j] * w[i];
        }
        for (int j = 0; j < HID; j++) {
            if (!(z1[j] > 0)) continue;
            double *gw = g + L1(j);
            gw[2] += dh1[j];
            gw[0] += dh1[j] * x[0];
            gw[1] += dh1[j] * x[1];
        }
    }
    double reg = 0;
    for (int i = 0; i < NPAR; i++) reg += p[i] * p[i];
    const double loss = data_sum * (1.0 / NPTS) + reg * ALPHA;
    const double lr = lr_at(k);
    for (int i = 0; i < NPAR; i++) {
        g[i] += p[i] * ALPHA; /* d(p*p)/dp, as micrograd: two contributions of p * alpha */
        g[i] += p[i] * ALPHA;
        p[i] -= lr * g[i];
    }
    return loss;
}

/* ------------------------------------------------------------ driver */

static void check_losses(const char *peer, const char *prefix, const double *l, int n) {
    for (int k = 0; k < n && k < 5; k++) {
        char key[48];
        snprintf(key, sizeof key, "%sloss_step%d", prefix, k);
        bench_check_rel(WL, peer, key, l[k], ref_loss[k], 1e-12);
    }
}

int bench_w6(const bench_opts *o) {
    static moons d;
    static double rows[NPTS * 3], negy[NPTS], Xf[NPTS * 2];
    char path[1024];
    if (bench_read_csv(WL, bench_data_path(o, "moons.csv", path, sizeof path), 0, 3, rows, NPTS) !=
        NPTS)
        return 1;
    double prow[NPAR * 2];
    if (bench_read_csv(WL, bench_data_path(o, "moons_init_params.csv", path, sizeof path), 0, 2,
                       prow, NPAR) != NPAR)
        return 1;
    for (int i = 0; i < NPAR; i++) {
        if (prow[2 * i] != i) {
            bench_fail(WL, "moons_init_params.csv: row %d has index %g", i, prow[2 * i]);
            return 1;
        }
        d.init[i] = prow[2 * i + 1];
    }
    for (int n = 0; n < NPTS; n++) {
        d.X[n][0] = Xf[2 * n] = rows[3 * n];
        d.X[n][1] = Xf[2 * n + 1] = rows[3 * n + 1];
        d.y[n] = rows[3 * n + 2];
        negy[n] = -d.y[n];
    }
    const int steps = o->quick ? 5 : 100, reps = o->quick ? 1 : 3;
    double *ts = malloc(sizeof(double) * (size_t)steps), med[3], losses[100];
    scalar_model sm = {0};
    tensor_model tm = {0};
    sl_tape *t = sl_tape_new();
    int rc = 1;
    if (!ts || !t || scalar_model_new(&sm, d.init) || tensor_model_new(&tm, d.init)) {
        bench_fail(WL, "out of memory");
        goto done;
    }

    /* ---- scalar graph, recorded every step */
    for (int r = 0; r < reps; r++) {
        scalar_model_reset(&sm, d.init);
        for (int k = 0; k < steps; k++) {
            const double t0 = bench_now();
            sl_tape_clear(t);
            sl_var *loss = scalar_loss(t, &sm, &d);
            sl_params_zero_grad(sm.ps);
            sl_backward(t, loss);
            scalar_update(&sm, k);
            ts[k] = bench_now() - t0;
            losses[k] = sl_item(loss);
        }
        if (sl_tape_status(t) != SL_OK) {
            bench_fail(WL, "slope scalar graph: %s", sl_tape_error(t));
            goto done;
        }
        if (r == 0) {
            check_losses("slope", "", losses, steps);
            bench_check(WL, "slope", "scalar_graph_nodes", (double)sl_tape_size(t));
            bench_result(o, WL, "slope", "scalar_graph_tape_bytes_per_node",
                         (double)sl_tape_bytes(t) / (double)sl_tape_size(t), "bytes");
        }
        med[r] = bench_median(ts, steps);
    }
    const double t_scalar = bench_median(med, reps);
    bench_result(o, WL, "slope", "s_per_step_scalar_graph", t_scalar, "s");

    /* ---- scalar graph, recorded once and replayed */
    for (int r = 0; r < reps; r++) {
        scalar_model_reset(&sm, d.init);
        sl_tape_clear(t);
        sl_var *loss = scalar_loss(t, &sm, &d);
        for (int k = 0; k < steps; k++) {
            const double t0 = bench_now();
            if (k > 0) sl_forward(t);
            sl_params_zero_grad(sm.ps);
            sl_backward(t, loss);
            scalar_update(&sm, k);
            ts[k] = bench_now() - t0;
            losses[k] = sl_item(loss);
        }
        if (sl_tape_status(t) != SL_OK) {
            bench_fail(WL, "slope scalar replay: %s", sl_tape_error(t));
            goto done;
        }
        if (r == 0) check_losses("slope", "replay_", losses, steps);
        med[r] = bench_median(ts, steps);
    }
    bench_result(o, WL, "slope", "s_per_step_scalar_graph_replay", bench_median(med, reps), "s");

    /* ---- tensor graph, recorded every step, then replayed */
    double t_tensor = 0;
    for (int mode = 0; mode < 2; mode++) {
        for (int r = 0; r < reps; r++) {
            tensor_model_reset(&tm);
            sl_var *loss = NULL;
            if (mode == 1) {
                sl_tape_clear(t);
                loss = tensor_loss(t, &tm, Xf, negy);
            }
            for (int k = 0; k < steps; k++) {
                const double t0 = bench_now();
                if (mode == 0) {
                    sl_tape_clear(t);
                    loss = tensor_loss(t, &tm, Xf, negy);
                } else if (k > 0) {
                    sl_forward(t);
                }
                sl_params_zero_grad(tm.ps);
                sl_backward(t, loss);
                tensor_update(&tm, k);
                ts[k] = bench_now() - t0;
                losses[k] = sl_item(loss);
            }
            if (sl_tape_status(t) != SL_OK) {
                bench_fail(WL, "slope tensor graph: %s", sl_tape_error(t));
                goto done;
            }
            if (r == 0) check_losses("slope", mode ? "tensor_replay_" : "tensor_", losses, steps);
            med[r] = bench_median(ts, steps);
        }
        const double tmode = bench_median(med, reps);
        if (mode == 0) t_tensor = tmode;
        bench_result(o, WL, "slope",
                     mode ? "s_per_step_tensor_graph_replay" : "s_per_step_tensor_graph", tmode,
                     "s");
    }

    /* ---- the hand-written floor */
    static floor_net f;
    for (int r = 0; r < reps; r++) {
        memcpy(f.p, d.init, sizeof f.p);
        for (int k = 0; k < steps; k++) {
            const double t0 = bench_now();
            losses[k] = floor_step(&f, &d, k);
            ts[k] = bench_now() - t0;
        }
        if (r == 0) check_losses("c-handwritten", "", losses, steps);
        med[r] = bench_median(ts, steps);
    }
    const double t_floor = bench_median(med, reps);
    bench_result(o, WL, "c-handwritten", "s_per_step", t_floor, "s");
    bench_result(o, WL, "slope", "ratio_scalar_graph_over_c_handwritten", t_scalar / t_floor, "x");
    bench_result(o, WL, "slope", "ratio_tensor_graph_over_c_handwritten", t_tensor / t_floor, "x");
    rc = 0;
done:
    free(ts);
    sl_params_free(sm.ps);
    sl_params_free(tm.ps);
    sl_tape_free(t);
    return rc;
}
