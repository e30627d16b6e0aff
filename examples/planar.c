/*
 * planar.c - the main demo: the course's shallow network on its planar
 * "flower" data set, built from slope's ops and trained with its gradients.
 *
 *   X (2,400) -> Z1 = W1.X + b1 (4,400) -> A1 = tanh(Z1)
 *             -> Z2 = W2.A1 + b2 (1,400) -> A2 = sigmoid(Z2)
 *   cost = -(1/m) sum(Y log A2 + (1-Y) log(1-A2))
 *
 * Plain gradient descent, learning rate 1.2, 10000 iterations, from the
 * course's initial weights (examples/data/planar_init.csv). The graph is
 * recorded once; every iteration replays it (sl_forward) and back-propagates
 * (sl_backward) with no allocation. Logistic regression (2 -> 1 sigmoid,
 * same cost and optimiser, from zeros) runs beside it as the baseline.
 *
 *   planar [--iters N] [--random SEED] [--data FILE] [--init FILE] [--quiet] [--precise]
 *
 * --random SEED draws a new flower with slope's seeded RNG (same recipe:
 * 200 points per class, radius 4 sin(4t) plus noise) instead of the course's.
 */
#include "slope.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SLOPE_EXAMPLE_DATA
#define SLOPE_EXAMPLE_DATA "examples/data"
#endif

#define M 400 /* points */
#define LR 1.2

static int precise; /* --precise: print costs with 17 significant digits */

/* ------------------------------------------------------------------ data */

/* planar_X.csv: header "x1,x2,y", then 400 rows. X is (2,400): X[0][j] = x1 of
 * row j, X[1][j] = x2; Y is (1,400). */
static int load_points(const char *path, double *X, double *Y) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "planar: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256];
    int n = 0, lineno = 1;
    if (!fgets(line, sizeof line, f) || strncmp(line, "x1,x2,y", 7) != 0) {
        fprintf(stderr, "planar: %s:1: expected the header x1,x2,y\n", path);
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        double x1, x2, y;
        if (line[0] == '\n') continue;
        if (sscanf(line, "%lf,%lf,%lf", &x1, &x2, &y) != 3 || (y != 0.0 && y != 1.0)) {
            fprintf(stderr, "planar: %s:%d: expected x1,x2,y with y 0 or 1\n", path, lineno);
            fclose(f);
            return -1;
        }
        if (n == M) {
            fprintf(stderr, "planar: %s: more than %d points\n", path, M);
            fclose(f);
            return -1;
        }
        X[n] = x1;
        X[M + n] = x2;
        Y[n] = y;
        n++;
    }
    fclose(f);
    if (n != M) {
        fprintf(stderr, "planar: %s: %d points, expected %d\n", path, n, M);
        return -1;
    }
    return 0;
}

/* planar_init.csv: "name,index,value" rows for W1 (8), b1 (4), W2 (4), b2 (1). */
static int load_init(const char *path, double *W1, double *b1, double *W2, double *b2) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "planar: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256], name[16];
    int seen = 0, lineno = 1;
    if (!fgets(line, sizeof line, f)) line[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        lineno++;
        int idx;
        double v;
        if (sscanf(line, "%15[^,],%d,%lf", name, &idx, &v) != 3) {
            fprintf(stderr, "planar: %s:%d: expected name,index,value\n", path, lineno);
            fclose(f);
            return -1;
        }
        double *dst = NULL;
        int size = 0;
        if (!strcmp(name, "W1")) dst = W1, size = 8;
        if (!strcmp(name, "b1")) dst = b1, size = 4;
        if (!strcmp(name, "W2")) dst = W2, size = 4;
        if (!strcmp(name, "b2")) dst = b2, size = 1;
        if (!dst || idx < 0 || idx >= size) {
            fprintf(stderr, "planar: %s:%d: unknown entry %s[%d]\n", path, lineno, name, idx);
            fclose(f);
            return -1;
        }
        dst[idx] = v;
        seen++;
    }
    fclose(f);
    if (seen != 17) {
        fprintf(stderr, "planar: %s: %d values, expected 17\n", path, seen);
        return -1;
    }
    return 0;
}

/* The course's flower, drawn with slope's RNG instead of NumPy's. */
static void draw_flower(uint64_t seed, double *X, double *Y) {
    sl_rng r;
    sl_rng_seed(&r, seed);
    const int N = M / 2;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < N; i++) {
            double t = j * 3.12 + 3.12 * i / (N - 1) + sl_rng_normal(&r) * 0.2;
            double rad = 4.0 * sin(4.0 * t) + sl_rng_normal(&r) * 0.2;
            X[j * N + i] = rad * sin(t);
            X[M + j * N + i] = rad * cos(t);
            Y[j * N + i] = j;
        }
}

/* ----------------------------------------------------------------- model */

/* cost = -(1/m) sum(Y log A + (1-Y) log(1-A)), written as the course writes it. */
static sl_var *cross_entropy_cost(sl_tape *t, sl_var *A, sl_var *Y) {
    sl_var *one = sl_scalar(t, 1.0, 0);
    sl_var *logprobs = sl_add(t, sl_mul(t, sl_log(t, A), Y),
                              sl_mul(t, sl_sub(t, one, Y), sl_log(t, sl_sub(t, one, A))));
    return sl_div(t, sl_neg(t, sl_sum(t, logprobs, SL_ALL, 0)), sl_scalar(t, M, 0));
}

/* One step of gradient descent on every parameter: p -= lr * dcost/dp. */
static void descend(sl_params *ps) {
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p)) {
        double *v = sl_param_value(p);
        const double *g = sl_param_grad(p);
        for (size_t i = 0; i < sl_param_numel(p); i++) v[i] -= LR * g[i];
    }
}

/* Train by replay + backward; print the cost every 1000 iterations when
 * verbose. Returns the training accuracy in percent, or -1 on error. */
static double train(sl_tape *t, sl_params *ps, sl_var *A2, sl_var *cost, const double *Y,
                    int iters, int verbose) {
    for (int i = 0; i < iters; i++) {
        if (i > 0 && sl_forward(t) != SL_OK) break;
        sl_params_zero_grad(ps);
        if (sl_backward(t, cost) != SL_OK) break;
        if (verbose && i % 1000 == 0)
            printf(precise ? "Cost after iteration %d: %.17g\n" : "Cost after iteration %d: %f\n",
                   i, sl_item(cost));
        descend(ps);
    }
    if (sl_forward(t) != SL_OK) { /* predictions with the final parameters */
        fprintf(stderr, "planar: %s\n", sl_tape_error(t));
        return -1;
    }
    const double *a = sl_value(A2);
    int right = 0;
    for (int j = 0; j < M; j++) right += (a[j] > 0.5) == (Y[j] == 1.0);
    return 100.0 * right / M;
}

static double shallow_network(const double *X, const double *Y, const double *init, int iters,
                              int verbose) {
    sl_params *ps = sl_params_new();
    sl_tape *t = sl_tape_new();
    if (!ps || !t) {
        fprintf(stderr, "planar: out of memory\n");
        sl_params_free(ps);
        sl_tape_free(t);
        return -1;
    }
    sl_param *W1 = sl_param_new(ps, "W1", 2, (int[]){4, 2}, init);
    sl_param *b1 = sl_param_new(ps, "b1", 2, (int[]){4, 1}, init + 8);
    sl_param *W2 = sl_param_new(ps, "W2", 2, (int[]){1, 4}, init + 12);
    sl_param *b2 = sl_param_new(ps, "b2", 2, (int[]){1, 1}, init + 16);
    sl_var *x = sl_input(t, 2, (int[]){2, M}, X, 0);
    sl_var *y = sl_input(t, 2, (int[]){1, M}, Y, 0);
    sl_var *A1 = sl_tanh(t, sl_add(t, sl_matmul(t, sl_use(t, W1), x), sl_use(t, b1)));
    sl_var *A2 = sl_sigmoid(t, sl_add(t, sl_matmul(t, sl_use(t, W2), A1), sl_use(t, b2)));
    sl_var *cost = cross_entropy_cost(t, A2, y);
    double acc = -1;
    if (sl_tape_status(t) != SL_OK)
        fprintf(stderr, "planar: %s\n", sl_tape_error(t));
    else if (!b2)
        fprintf(stderr, "planar: %s\n", sl_params_error(ps));
    else
        acc = train(t, ps, A2, cost, Y, iters, verbose);
    sl_tape_free(t);
    sl_params_free(ps);
    return acc;
}

static double logistic_regression(const double *X, const double *Y, int iters) {
    sl_params *ps = sl_params_new();
    sl_tape *t = sl_tape_new();
    double acc = -1;
    if (ps && t) {
        sl_param *w = sl_param_new(ps, "w", 2, (int[]){1, 2}, NULL);
        sl_param *b = sl_param_new(ps, "b", 2, (int[]){1, 1}, NULL);
        sl_var *x = sl_input(t, 2, (int[]){2, M}, X, 0);
        sl_var *y = sl_input(t, 2, (int[]){1, M}, Y, 0);
        sl_var *A = sl_sigmoid(t, sl_add(t, sl_matmul(t, sl_use(t, w), x), sl_use(t, b)));
        sl_var *cost = cross_entropy_cost(t, A, y);
        if (sl_tape_status(t) == SL_OK)
            acc = train(t, ps, A, cost, Y, iters, 0);
        else
            fprintf(stderr, "planar: %s\n", sl_tape_error(t));
    }
    sl_tape_free(t);
    sl_params_free(ps);
    return acc;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
    fprintf(f, "usage: planar [--iters N] [--random SEED] [--data FILE] [--init FILE] [--quiet] [--precise]\n");
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || v < lo || v > hi) {
        fprintf(stderr, "planar: %s needs an integer in [%ld, %ld], got \"%s\"\n", opt, lo, hi,
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    const char *data = SLOPE_EXAMPLE_DATA "/planar_X.csv";
    const char *initf = SLOPE_EXAMPLE_DATA "/planar_init.csv";
    long iters = 10000, seed = -1;
    int verbose = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--iters")) {
            if (parse_long(a, v, 0, 100000000, &iters)) return 2;
            i++;
        } else if (!strcmp(a, "--random")) {
            if (parse_long(a, v, 0, 0x7fffffff, &seed)) return 2;
            i++;
        } else if (!strcmp(a, "--data") && v) {
            data = argv[++i];
        } else if (!strcmp(a, "--init") && v) {
            initf = argv[++i];
        } else if (!strcmp(a, "--precise")) {
            precise = 1;
        } else if (!strcmp(a, "--quiet")) {
            verbose = 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "planar: unknown or incomplete option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    static double X[2 * M], Y[M], init[17];
    if (seed >= 0)
        draw_flower((uint64_t)seed, X, Y);
    else if (load_points(data, X, Y))
        return 1;
    if (load_init(initf, init, init + 8, init + 12, init + 16)) return 1;

    printf("slope planar demo: 2 -> 4 tanh -> 1 sigmoid, %d points (%s), "
           "gradient descent lr %.1f, %ld iterations\n",
           M, seed >= 0 ? "a new flower from slope's RNG" : "the course's flower", LR, iters);
    double acc = shallow_network(X, Y, init, (int)iters, verbose);
    double lr_acc = logistic_regression(X, Y, (int)iters);
    if (acc < 0 || lr_acc < 0) return 1;
    printf("Accuracy, shallow network (4 tanh units): %.2f %%\n", acc);
    printf("Accuracy, logistic regression:            %.2f %%\n", lr_acc);
    return 0;
}
