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
 *   planar --sizes [LIST] [--out DIR] [--iters N] [--random SEED] [--data FILE] [--init FILE]
 *
 * --random SEED draws a new flower with slope's seeded RNG (same recipe:
 * 200 points per class, radius 4 sin(4t) plus noise) instead of the course's.
 *
 * --sizes runs the course's hidden-layer-size study instead: the same network
 * with 1, 2, 3, 4, 5, 20 and 50 tanh units, 5000 iterations each (--iters
 * changes that), each from the course's initial weights for its size
 * (examples/data/planar_init_sizes.csv, rows n_h,name,index,value). It prints
 * the accuracy table and writes each decision boundary, the course's plot, as
 * DIR/planar_h<n_h>.svg (default DIR: the current directory). LIST, e.g.
 * 3,50, runs only those sizes (each must be in the file).
 */
#include "slope.h"
#include "svgplot.h"

#include <ctype.h>
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
#define MAX_H 50 /* the largest hidden layer of the study */
#define GRID 200 /* decision-boundary pictures: GRID x GRID cells */

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

/* Initial weights for a network with n_h hidden units, packed as
 * W1 (n_h x 2, row-major), b1 (n_h), W2 (n_h), b2 (1): 4 n_h + 1 values.
 * planar_init.csv has rows "name,index,value" (n_h is 4); with sizes != 0
 * the file is planar_init_sizes.csv, rows "n_h,name,index,value", and only
 * the rows of this n_h are taken. */
static int load_init(const char *path, int sizes, int n_h, double *init) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "planar: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    double *W1 = init, *b1 = init + 2 * n_h, *W2 = init + 3 * n_h, *b2 = init + 4 * n_h;
    char line[256], name[16];
    int seen = 0, lineno = 1;
    if (!fgets(line, sizeof line, f)) line[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        lineno++;
        int h = n_h, idx, got;
        double v;
        if (sizes)
            got = sscanf(line, "%d,%15[^,],%d,%lf", &h, name, &idx, &v) == 4;
        else
            got = sscanf(line, "%15[^,],%d,%lf", name, &idx, &v) == 3;
        if (!got) {
            fprintf(stderr, "planar: %s:%d: expected %sname,index,value\n", path, lineno,
                    sizes ? "n_h," : "");
            fclose(f);
            return -1;
        }
        if (h != n_h) continue; /* another size's row */
        double *dst = NULL;
        int size = 0;
        if (!strcmp(name, "W1")) dst = W1, size = 2 * n_h;
        if (!strcmp(name, "b1")) dst = b1, size = n_h;
        if (!strcmp(name, "W2")) dst = W2, size = n_h;
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
    if (seen == 0) {
        fprintf(stderr, "planar: %s: no initial weights for n_h = %d\n", path, n_h);
        return -1;
    }
    if (seen != 4 * n_h + 1) {
        fprintf(stderr, "planar: %s: %d values for n_h = %d, expected %d\n", path, seen, n_h,
                4 * n_h + 1);
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
static double train(sl_tape *t, sl_params *ps, sl_var *A2, sl_var *cost, const double *Y, int iters,
                    int verbose) {
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

/* The network on points x (2, n): A2 (1, n), from the store's W1, b1, W2, b2. */
static sl_var *network(sl_tape *t, sl_params *ps, sl_var *x) {
    sl_var *W1 = sl_use(t, sl_params_get(ps, "W1")), *b1 = sl_use(t, sl_params_get(ps, "b1"));
    sl_var *W2 = sl_use(t, sl_params_get(ps, "W2")), *b2 = sl_use(t, sl_params_get(ps, "b2"));
    sl_var *A1 = sl_tanh(t, sl_add(t, sl_matmul(t, W1, x), b1));
    return sl_sigmoid(t, sl_add(t, sl_matmul(t, W2, A1), b2));
}

/* The course's plot_decision_boundary: the class the trained network gives
 * every cell of a GRID x GRID grid over the points' range plus 1, under the
 * points. One tape holds the network on one row of the grid (2, GRID); each
 * row is a replay after writing that row's y into the input leaf. */
static int plot_boundary(sl_params *ps, const double *X, const double *Y, int n_h, double acc,
                         const char *path) {
    static int cls[GRID * GRID], label[M];
    svg_frame fr = {.px = 60, .py = 45, .pw = 400, .ph = 400};
    fr.xmin = fr.xmax = X[0];
    fr.ymin = fr.ymax = X[M];
    for (int j = 0; j < M; j++) {
        fr.xmin = fmin(fr.xmin, X[j] - 1), fr.xmax = fmax(fr.xmax, X[j] + 1);
        fr.ymin = fmin(fr.ymin, X[M + j] - 1), fr.ymax = fmax(fr.ymax, X[M + j] + 1);
        label[j] = Y[j] == 1.0;
    }
    sl_tape *t = sl_tape_new();
    if (!t) {
        fprintf(stderr, "planar: out of memory\n");
        return -1;
    }
    sl_var *g = sl_input(t, 2, (int[]){2, GRID}, NULL, 0);
    sl_var *A2 = network(t, ps, g);
    for (int r = 0; r < GRID && sl_tape_status(t) == SL_OK; r++) {
        double *in = sl_leaf_data(g); /* row 0: x of each column, row 1: this row's y */
        for (int c = 0; c < GRID; c++) {
            in[c] = fr.xmin + (c + 0.5) * (fr.xmax - fr.xmin) / GRID;
            in[GRID + c] = fr.ymin + (r + 0.5) * (fr.ymax - fr.ymin) / GRID;
        }
        if (sl_forward(t) != SL_OK) break;
        for (int c = 0; c < GRID; c++) cls[r * GRID + c] = sl_value(A2)[c] > 0.5;
    }
    if (sl_tape_status(t) != SL_OK) {
        fprintf(stderr, "planar: %s\n", sl_tape_error(t));
        sl_tape_free(t);
        return -1;
    }
    sl_tape_free(t);

    /* the course's colour map (Spectral): red for class 0, blue for class 1 */
    static const char *const region[] = {"#f4a582", "#92c5de"}, *const dot[] = {"#b2182b",
                                                                                "#2166ac"};
    char title[128];
    snprintf(title, sizeof title, "Decision boundary for hidden layer size %d: accuracy %.2f %%",
             n_h, acc);
    svg s;
    if (svg_open(&s, "planar", path, 520, 475)) return -1;
    svg_text(&s, 260, 28, 15, "middle", title);
    svg_regions(&s, &fr, GRID, GRID, cls, region);
    svg_points(&s, &fr, M, X, X + M, 1, label, dot);
    svg_box(&s, &fr);
    return svg_close(&s);
}

/* The course's network with n_h hidden units from init (4 n_h + 1 values:
 * W1, b1, W2, b2), trained iters iterations. Writes its decision boundary to
 * svg_path unless that is NULL. Returns the training accuracy in percent, or -1. */
static double shallow_network(const double *X, const double *Y, int n_h, const double *init,
                              int iters, int verbose, const char *svg_path) {
    sl_params *ps = sl_params_new();
    sl_tape *t = sl_tape_new();
    if (!ps || !t) {
        fprintf(stderr, "planar: out of memory\n");
        sl_params_free(ps);
        sl_tape_free(t);
        return -1;
    }
    sl_param *W1 = sl_param_new(ps, "W1", 2, (int[]){n_h, 2}, init);
    sl_param *b1 = sl_param_new(ps, "b1", 2, (int[]){n_h, 1}, init + 2 * n_h);
    sl_param *W2 = sl_param_new(ps, "W2", 2, (int[]){1, n_h}, init + 3 * n_h);
    sl_param *b2 = sl_param_new(ps, "b2", 2, (int[]){1, 1}, init + 4 * n_h);
    sl_var *x = sl_input(t, 2, (int[]){2, M}, X, 0);
    sl_var *y = sl_input(t, 2, (int[]){1, M}, Y, 0);
    sl_var *A2 = network(t, ps, x);
    sl_var *cost = cross_entropy_cost(t, A2, y);
    double acc = -1;
    if (!W1 || !b1 || !W2 || !b2)
        fprintf(stderr, "planar: %s\n", sl_params_error(ps));
    else if (sl_tape_status(t) != SL_OK)
        fprintf(stderr, "planar: %s\n", sl_tape_error(t));
    else
        acc = train(t, ps, A2, cost, Y, iters, verbose);
    if (acc >= 0 && svg_path && plot_boundary(ps, X, Y, n_h, acc, svg_path)) acc = -1;
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
    fprintf(f, "usage: planar [--iters N] [--random SEED] [--data FILE] [--init FILE] [--quiet] "
               "[--precise]\n"
               "       planar --sizes [LIST] [--out DIR] [--iters N] [--random SEED] "
               "[--data FILE] [--init FILE]\n");
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

/* "1,2,50" -> sizes[], each in [1, MAX_H]. The number of sizes, or -1. */
static int parse_sizes(const char *s, int *sizes, int max) {
    int n = 0;
    for (const char *p = s;; p++) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > MAX_H || n == max || (*end && *end != ',')) {
            fprintf(stderr,
                    "planar: --sizes needs a list like 1,2,50 of sizes in [1, %d], "
                    "got \"%s\"\n",
                    MAX_H, s);
            return -1;
        }
        sizes[n++] = (int)v;
        if (!*end) return n;
        p = end;
    }
}

/* The course's study: the same network with each number of hidden units. */
static int hidden_layer_sizes(const double *X, const double *Y, const int *sizes, int nsizes,
                              const char *initf, const char *outdir, long iters, const char *what) {
    printf("slope planar: hidden layer sizes, 2 -> n_h tanh -> 1 sigmoid, %d points (%s), "
           "gradient descent lr %.1f, %ld iterations each\n",
           M, what, LR, iters);
    for (int k = 0; k < nsizes; k++) {
        int n_h = sizes[k];
        double init[4 * MAX_H + 1];
        char path[1024];
        if (load_init(initf, 1, n_h, init)) return 1;
        if (snprintf(path, sizeof path, "%s/planar_h%d.svg", outdir, n_h) >= (int)sizeof path) {
            fprintf(stderr, "planar: --out directory name too long\n");
            return 1;
        }
        double acc = shallow_network(X, Y, n_h, init, (int)iters, 0, path);
        if (acc < 0) return 1;
        printf("Accuracy for %2d hidden units: %6.2f %%   (%s)\n", n_h, acc, path);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *data = SLOPE_EXAMPLE_DATA "/planar_X.csv";
    const char *initf = NULL, *outdir = NULL;
    long iters = -1, seed = -1;
    int verbose = 1, nsizes = 0, sizes[16] = {1, 2, 3, 4, 5, 20, 50}; /* the course's */
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
        } else if (!strcmp(a, "--out") && v) {
            outdir = argv[++i];
        } else if (!strcmp(a, "--sizes")) {
            nsizes = 7; /* the course's list, unless a list follows */
            if (v && isdigit((unsigned char)v[0])) {
                nsizes = parse_sizes(v, sizes, 16);
                if (nsizes < 0) return 2;
                i++;
            }
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
    if (outdir && !nsizes) {
        fprintf(stderr, "planar: --out goes with --sizes (the pictures of the size study)\n");
        return 2;
    }
    static double X[2 * M], Y[M], init[4 * MAX_H + 1];
    if (seed >= 0)
        draw_flower((uint64_t)seed, X, Y);
    else if (load_points(data, X, Y))
        return 1;
    const char *what = seed >= 0 ? "a new flower from slope's RNG" : "the course's flower";

    if (nsizes)
        return hidden_layer_sizes(X, Y, sizes, nsizes,
                                  initf ? initf : SLOPE_EXAMPLE_DATA "/planar_init_sizes.csv",
                                  outdir ? outdir : ".", iters >= 0 ? iters : 5000, what);

    if (iters < 0) iters = 10000;
    if (load_init(initf ? initf : SLOPE_EXAMPLE_DATA "/planar_init.csv", 0, 4, init)) return 1;
    printf("slope planar demo: 2 -> 4 tanh -> 1 sigmoid, %d points (%s), "
           "gradient descent lr %.1f, %ld iterations\n",
           M, what, LR, iters);
    double acc = shallow_network(X, Y, 4, init, (int)iters, verbose, NULL);
    double lr_acc = logistic_regression(X, Y, (int)iters);
    if (acc < 0 || lr_acc < 0) return 1;
    printf("Accuracy, shallow network (4 tanh units): %.2f %%\n", acc);
    printf("Accuracy, logistic regression:            %.2f %%\n", lr_acc);
    return 0;
}
