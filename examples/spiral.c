/*
 * spiral.c - the classic three-class spiral (the softmax-classifier demo of
 * Stanford's CS231n notes), learned by an MLP 2-64-64-3 with ReLU, softmax
 * cross-entropy, Adam and shuffled mini-batches. The trained parameters are
 * then saved, loaded into a fresh network built the same way, and checked to
 * predict exactly what the trained one does.
 *
 *   spiral [--out DIR] [--epochs N] [--seed S] [--quiet]
 *
 * Writes DIR/spiral_regions.svg (the decision regions under the points),
 * DIR/spiral_loss.svg (the training loss per epoch) and DIR/spiral.slp (the
 * model); DIR defaults to the current directory. A progress line goes to
 * stderr on a terminal only (--quiet: never).
 */
#include "slope.h"
#include "svgplot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K 3          /* classes */
#define N 100        /* points per class */
#define NPTS (K * N) /* the whole training set */
#define BATCH 32     /* examples per mini-batch */
#define LR 0.003     /* Adam's learning rate (0.01 learns as fast but spikes now and then) */
#define MAX_EPOCHS 10000
#define GRID 200   /* decision regions: GRID x GRID cells */
#define EXTENT 1.1 /* ... over [-EXTENT, EXTENT]^2 */

static const int sizes[] = {2, 64, 64, K}; /* the MLP's layer widths */

/* CS231n's recipe: arm k has radius r = linspace(0, 1, N) and angle
 * t = linspace(4k, 4(k+1), N) + 0.2 randn; point (r sin t, r cos t).
 * X is [NPTS, 2] row-major, y the class index of each row. */
static void make_spiral(uint64_t seed, double *X, double *y) {
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) {
            double r = (double)i / (N - 1);
            double t = 4.0 * k + 4.0 * i / (N - 1) + 0.2 * sl_rng_normal(&rng);
            X[2 * (k * N + i)] = r * sin(t);
            X[2 * (k * N + i) + 1] = r * cos(t);
            y[k * N + i] = k;
        }
}

/* A new network in ps: He-uniform weights (for ReLU) drawn from seed, zero biases. */
static sl_mlp *make_net(sl_params *ps, uint64_t seed) {
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    sl_init he = {.kind = SL_INIT_HE_UNIFORM};
    return sl_mlp_new(ps, "net", 4, sizes, "relu", he, &rng);
}

/* logits [n, K] of the points X [n, 2], recorded on t (cleared first). 0, or -1. */
static int predict(sl_tape *t, const sl_mlp *net, const double *X, int n, double *logits) {
    sl_tape_clear(t);
    sl_var *out = sl_mlp_forward(t, net, sl_input(t, 2, (int[]){n, 2}, X, 0));
    if (!out) {
        fprintf(stderr, "spiral: %s\n", sl_tape_error(t));
        return -1;
    }
    memcpy(logits, sl_value(out), sizeof(double) * n * K);
    return 0;
}

/* The index of the largest of K logits. */
static int argmax(const double *z) {
    int best = 0;
    for (int c = 1; c < K; c++)
        if (z[c] > z[best]) best = c;
    return best;
}

static double accuracy(const double *logits, const double *y) {
    int right = 0;
    for (int i = 0; i < NPTS; i++) right += argmax(logits + K * i) == (int)y[i];
    return 100.0 * right / NPTS;
}

/* Train with Adam on shuffled mini-batches; loss[e] is the mean loss of epoch e. */
static int train(sl_params *ps, const sl_mlp *net, const double *X, const double *y, int epochs,
                 uint64_t seed, int quiet, double *loss) {
    sl_adam_opts opts = sl_adam_defaults(LR);
    sl_optim *opt = sl_optim_adam(ps, &opts); /* after the model: it sizes its state now */
    if (!opt) {
        fprintf(stderr, "spiral: %s\n", sl_params_error(ps));
        return -1;
    }
    sl_batches batches; /* a new order every epoch, drawn from seed */
    int rc = sl_batches_init(&batches, NPTS, BATCH, SL_BATCH_SHUFFLE, seed);
    sl_tape *t = rc == SL_OK ? sl_tape_new() : NULL;
    if (!t) {
        fprintf(stderr, "spiral: cannot start training: %s\n",
                sl_status_str(rc == SL_OK ? SL_ENOMEM : rc));
        if (rc == SL_OK) sl_batches_free(&batches);
        sl_optim_free(opt);
        return -1;
    }
    sl_progress bar; /* a \r line on a terminal, nothing in a log or a pipe */
    long steps = (long)epochs * ((NPTS + BATCH - 1) / BATCH);
    sl_progress_init(&bar, quiet ? NULL : stderr, steps, 0, 0);
    double xb[2 * BATCH], yb[BATCH]; /* one batch: inputs [m,2] and labels [m] */
    for (int e = 0; e < epochs && rc == SL_OK; e++) {
        const int *idx;
        int m;
        double sum = 0;
        while (rc == SL_OK && (m = sl_batches_next(&batches, &idx)) > 0) {
            sl_gather_rows(xb, X, 2, idx, m);              /* the batch's rows of X ... */
            for (int i = 0; i < m; i++) yb[i] = y[idx[i]]; /* ... and their labels */
            sl_tape_clear(t);                              /* a new graph per batch */
            sl_var *logits = sl_mlp_forward(t, net, sl_input(t, 2, (int[]){m, 2}, xb, 0));
            sl_var *l = sl_cross_entropy(t, logits, sl_input(t, 1, (int[]){m}, yb, 0));
            sl_params_zero_grad(ps); /* then dl/dp, then the update */
            if ((rc = sl_backward(t, l)) != SL_OK)
                fprintf(stderr, "spiral: %s\n", sl_tape_error(t));
            else if ((rc = sl_optim_step(opt)) != SL_OK)
                fprintf(stderr, "spiral: %s\n", sl_optim_error(opt));
            sum += sl_item(l) * m;
            sl_progress_update(&bar, sl_optim_steps(opt), sl_item(l));
        }
        loss[e] = sum / NPTS;
    }
    sl_progress_finish(&bar, sl_optim_steps(opt), loss[epochs - 1]);
    sl_batches_free(&batches);
    sl_tape_free(t);
    sl_optim_free(opt);
    return rc == SL_OK ? 0 : -1;
}

/* ------------------------------------------------------------ pictures */

static const char *const region_color[K] = {"#fbb4ae", "#b3cde3", "#ccebc5"};
static const char *const point_color[K] = {"#e41a1c", "#377eb8", "#4daf4a"};

/* The class the network gives every cell of the grid, under the points. */
static int plot_regions(const sl_mlp *net, const double *X, const double *y, double acc,
                        const char *path) {
    static int cls[GRID * GRID], label[NPTS];
    static double row[2 * GRID], logits[K * GRID];
    svg_frame fr = {60, 45, 400, 400, -EXTENT, EXTENT, -EXTENT, EXTENT};
    sl_tape *t = sl_tape_new();
    if (!t) {
        fprintf(stderr, "spiral: out of memory\n");
        return -1;
    }
    for (int r = 0; r < GRID; r++) { /* one row of cells per forward pass */
        for (int c = 0; c < GRID; c++) {
            row[2 * c] = -EXTENT + (c + 0.5) * 2 * EXTENT / GRID;
            row[2 * c + 1] = -EXTENT + (r + 0.5) * 2 * EXTENT / GRID;
        }
        if (predict(t, net, row, GRID, logits)) {
            sl_tape_free(t);
            return -1;
        }
        for (int c = 0; c < GRID; c++) cls[r * GRID + c] = argmax(logits + K * c);
    }
    sl_tape_free(t);
    for (int i = 0; i < NPTS; i++) label[i] = (int)y[i];
    char title[96];
    snprintf(title, sizeof title, "spiral, MLP 2-64-64-3 ReLU: training accuracy %.2f %%", acc);
    svg s;
    if (svg_open(&s, "spiral", path, 490, 475)) return -1;
    svg_text(&s, 260, 28, 15, "middle", title);
    svg_regions(&s, &fr, GRID, GRID, cls, region_color);
    svg_points(&s, &fr, NPTS, X, X + 1, 2, label, point_color);
    svg_box(&s, &fr);
    return svg_close(&s);
}

/* The mean training loss per epoch. */
static int plot_loss(const double *loss, int epochs, const char *path) {
    double *ep = malloc(sizeof(double) * epochs);
    if (!ep) {
        fprintf(stderr, "spiral: out of memory\n");
        return -1;
    }
    double top = 0;
    for (int e = 0; e < epochs; e++) {
        ep[e] = e + 1;
        if (loss[e] > top) top = loss[e];
    }
    svg_frame fr = {60, 45, 500, 300, 1, epochs > 1 ? epochs : 2, 0, top > 0 ? top : 1};
    svg s;
    int rc = svg_open(&s, "spiral", path, 590, 390);
    if (rc == 0) {
        svg_text(&s, 310, 28, 15, "middle", "spiral: mean softmax cross-entropy per epoch");
        svg_curve(&s, &fr, epochs, ep, loss, "#377eb8");
        svg_box(&s, &fr);
        svg_text(&s, 310, 380, 12, "middle", "epoch");
        svg_text(&s, 20, 200, 12, "middle", "loss");
        rc = svg_close(&s);
    }
    free(ep);
    return rc;
}

/* ----------------------------------------------------------------- main */

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || v < lo || v > hi) {
        fprintf(stderr, "spiral: %s needs an integer in [%ld, %ld], got \"%s\"\n", opt, lo, hi,
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    const char *outdir = ".";
    long epochs = 200, seed = 1;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--out") && v) {
            outdir = argv[++i];
        } else if (!strcmp(a, "--epochs")) {
            if (parse_long(a, v, 1, MAX_EPOCHS, &epochs)) return 2;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (parse_long(a, v, 0, 0x7fffffff, &seed)) return 2;
            i++;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else {
            fprintf(stderr,
                    "spiral: unknown or incomplete option \"%s\"\n"
                    "usage: spiral [--out DIR] [--epochs N] [--seed S] [--quiet]\n",
                    a);
            return 2;
        }
    }
    char regions_svg[1024], loss_svg[1024], model[1024];
    if (snprintf(regions_svg, sizeof regions_svg, "%s/spiral_regions.svg", outdir) >= 1024 ||
        snprintf(loss_svg, sizeof loss_svg, "%s/spiral_loss.svg", outdir) >= 1024 ||
        snprintf(model, sizeof model, "%s/spiral.slp", outdir) >= 1024) {
        fprintf(stderr, "spiral: --out directory name too long\n");
        return 2;
    }

    static double X[2 * NPTS], y[NPTS], logits[K * NPTS], logits2[K * NPTS];
    static double loss[MAX_EPOCHS];
    make_spiral((uint64_t)seed, X, y);
    printf("slope spiral: %d classes x %d points, MLP 2-64-64-3 ReLU, softmax cross-entropy, "
           "Adam lr %g, batches of %d, %ld epochs\n",
           K, N, LR, BATCH, epochs);

    int status = 1;
    sl_params *ps = sl_params_new(), *ps2 = sl_params_new();
    sl_tape *t = sl_tape_new();
    sl_mlp *net = NULL, *net2 = NULL;
    if (!ps || !ps2 || !t) {
        fprintf(stderr, "spiral: out of memory\n");
        goto out;
    }
    /* 1. build and train */
    net = make_net(ps, (uint64_t)seed);
    if (!net) {
        fprintf(stderr, "spiral: %s\n", sl_params_error(ps));
        goto out;
    }
    if (train(ps, net, X, y, (int)epochs, (uint64_t)seed, quiet, loss)) goto out;
    if (predict(t, net, X, NPTS, logits)) goto out;
    double acc = accuracy(logits, y);
    printf("loss: first epoch %.4f, last epoch %.4f\n", loss[0], loss[epochs - 1]);
    printf("training accuracy: %.2f %%\n", acc);

    /* 2. pictures */
    if (plot_regions(net, X, y, acc, regions_svg) || plot_loss(loss, (int)epochs, loss_svg))
        goto out;
    printf("wrote %s and %s\n", regions_svg, loss_svg);

    /* 3. save, then load into a fresh network built the same way - but drawn
     * from another seed, so only the file can make it agree */
    if (sl_params_save(ps, model) != SL_OK) {
        fprintf(stderr, "spiral: %s\n", sl_params_error(ps));
        goto out;
    }
    net2 = make_net(ps2, (uint64_t)seed + 1);
    if (!net2 || predict(t, net2, X, NPTS, logits2)) {
        if (!net2) fprintf(stderr, "spiral: %s\n", sl_params_error(ps2));
        goto out;
    }
    printf("saved %s; a fresh network before loading: accuracy %.2f %%\n", model,
           accuracy(logits2, y));
    if (sl_params_load(ps2, model) != SL_OK) {
        fprintf(stderr, "spiral: %s\n", sl_params_error(ps2));
        goto out;
    }
    if (predict(t, net2, X, NPTS, logits2)) goto out;
    int same = memcmp(logits, logits2, sizeof logits) == 0;
    printf("after sl_params_load: accuracy %.2f %%, logits %s\n", accuracy(logits2, y),
           same ? "identical to the trained network's" : "DIFFERENT from the trained network's");
    status = same ? 0 : 1;
out:
    sl_mlp_free(net2);
    sl_mlp_free(net);
    sl_tape_free(t);
    sl_params_free(ps2);
    sl_params_free(ps);
    return status;
}
