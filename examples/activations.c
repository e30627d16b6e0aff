/*
 * activations.c - the seed course's figures, made by the engine: every
 * activation and its derivative as slope's backward computes it, beside the
 * closed-form derivative written out here by hand, in one SVG.
 *
 *   activations [-o FILE.svg]      (default: activations.svg)
 *
 * For each activation, 401 points on [-5, 5] are put on one tape as one
 * vector; a = g(z) is recorded, backward from sum(a) gives dg/dz at every
 * point at once (the Jacobian of an element-wise op is diagonal). The
 * program prints the largest difference between backward and the closed
 * form and exits 1 if any exceeds 1e-12 - the figure doubles as a test.
 */
#include "slope.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NPTS 401
#define ZMIN -5.0
#define ZMAX 5.0

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }
static double phi(double z) { return exp(-0.5 * z * z) / 2.5066282746310002 /* sqrt(2 pi) */; }

/* Closed-form derivatives, from the textbook definitions (not from slope). */
static double d_sigmoid(double z) { return sigmoid(z) * (1.0 - sigmoid(z)); }
static double d_tanh(double z) { return 1.0 / (cosh(z) * cosh(z)); }
static double d_relu(double z) { return z > 0 ? 1.0 : 0.0; }
static double d_leaky(double z) { return z > 0 ? 1.0 : 0.01; }
static double d_softplus(double z) { return sigmoid(z); }
static double d_elu(double z) { return z > 0 ? 1.0 : exp(z); }
static double d_gelu(double z) { return 0.5 * (1.0 + erf(z / sqrt(2.0))) + z * phi(z); }
static double d_silu(double z) { return sigmoid(z) * (1.0 + z * (1.0 - sigmoid(z))); }
static double d_softsign(double z) { return 1.0 / ((1.0 + fabs(z)) * (1.0 + fabs(z))); }
static double d_log_sigmoid(double z) { return 1.0 - sigmoid(z); }

typedef struct act {
    const char *name; /* registry name */
    double alpha;     /* attribute (leaky_relu, elu) */
    double (*deriv)(double);
    const char *label;
} act;

static const act acts[] = {
    {"sigmoid", 0, d_sigmoid, "sigmoid: a(1-a)"},
    {"tanh", 0, d_tanh, "tanh: 1-a\u00b2"},
    {"relu", 0, d_relu, "relu: step"},
    {"leaky_relu", 0.01, d_leaky, "leaky_relu: 0.01 / 1"},
    {"softplus", 0, d_softplus, "softplus: sigmoid(z)"},
    {"elu", 1.0, d_elu, "elu (alpha 1)"},
    {"gelu", 0, d_gelu, "gelu (erf)"},
    {"silu", 0, d_silu, "silu"},
    {"softsign", 0, d_softsign, "softsign"},
    {"log_sigmoid", 0, d_log_sigmoid, "log_sigmoid"},
};
#define NACTS ((int)(sizeof acts / sizeof acts[0]))

/* One panel: a (blue), slope's backward (orange), closed form (dashed black). */
static void panel(FILE *f, int col, int row, const act *ac, const double *z, const double *a,
                  const double *da, const double *cf) {
    const double W = 260, H = 200, x0 = 20 + col * (W + 20), y0 = 56 + row * (H + 50);
    double lo = -1.5, hi = 1.5;
    for (int i = 0; i < NPTS; i++) {
        if (a[i] < lo) lo = a[i];
        if (a[i] > hi) hi = a[i];
    }
    if (hi > 5.5) hi = 5.5;
    if (lo < -5.5) lo = -5.5;
#define PX(v) (x0 + ((v)-ZMIN) / (ZMAX - ZMIN) * W)
#define PY(v) (y0 + H - ((v)-lo) / (hi - lo) * H)
    fprintf(f, "<rect x='%g' y='%g' width='%g' height='%g' fill='white' stroke='#999'/>\n", x0, y0,
            W, H);
    fprintf(f, "<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='#ccc'/>\n", x0, PY(0), x0 + W, PY(0));
    fprintf(f, "<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='#ccc'/>\n", PX(0), y0, PX(0), y0 + H);
    fprintf(f, "<text x='%g' y='%g' font-size='13' font-family='sans-serif'>%s</text>\n", x0,
            y0 - 8, ac->label);
    fprintf(f,
            "<text x='%g' y='%g' font-size='10' fill='#666' font-family='sans-serif' "
            "text-anchor='end'>y in [%.2g, %.2g], z in [-5, 5]</text>\n",
            x0 + W - 4, y0 + H - 4, lo, hi);
    const double *ys[3] = {a, da, cf};
    const char *style[3] = {"stroke='#1f77b4' stroke-width='2'",
                            "stroke='#ff7f0e' stroke-width='3' opacity='0.7'",
                            "stroke='black' stroke-width='1' stroke-dasharray='4 3'"};
    for (int s = 0; s < 3; s++) {
        fprintf(f, "<polyline fill='none' %s points='", style[s]);
        for (int i = 0; i < NPTS; i++) {
            double y = ys[s][i] < lo ? lo : ys[s][i] > hi ? hi : ys[s][i];
            fprintf(f, "%.1f,%.1f ", PX(z[i]), PY(y));
        }
        fprintf(f, "'/>\n");
    }
#undef PX
#undef PY
}

int main(int argc, char **argv) {
    const char *path = "activations.svg";
    if (argc == 3 && !strcmp(argv[1], "-o")) {
        path = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: activations [-o FILE.svg]\n");
        return 2;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        return 1;
    }
    const int cols = 5, rows = (NACTS + cols - 1) / cols;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d'>\n", 20 + cols * 280,
            70 + rows * 250);
    fprintf(f, "<text x='20' y='20' font-size='15' font-family='sans-serif'>activation "
               "(blue), slope's backward (orange), closed-form derivative (dashed) on "
               "[-5, 5]</text>\n");
    double z[NPTS], cf[NPTS];
    for (int i = 0; i < NPTS; i++) z[i] = ZMIN + (ZMAX - ZMIN) * i / (NPTS - 1);
    int bad = 0;
    sl_tape *t = sl_tape_new();
    for (int k = 0; k < NACTS && t; k++) {
        const act *ac = &acts[k];
        const sl_op *op = sl_op_find(ac->name);
        if (!op) {
            fprintf(stderr, "activations: op \"%s\" is not registered\n", ac->name);
            bad = 1;
            continue;
        }
        sl_tape_clear(t);
        sl_var *x = sl_input(t, 1, (int[]){NPTS}, z, SL_GRAD);
        sl_attrs at = op->defaults;
        at.alpha = ac->alpha;
        sl_var *a = sl_apply(t, op, 1, &x, &at);
        if (sl_backward(t, sl_sum(t, a, SL_ALL, 0)) != SL_OK) {
            fprintf(stderr, "activations: %s\n", sl_tape_error(t));
            bad = 1;
            continue;
        }
        double worst = 0;
        for (int i = 0; i < NPTS; i++) {
            cf[i] = ac->deriv(z[i]);
            worst = fmax(worst, fabs(sl_grad(x)[i] - cf[i])); /* z = 0 is on the grid */
        }
        printf("%-12s max |backward - closed form| = %.3g\n", ac->name, worst);
        if (!(worst <= 1e-12)) bad = 1;
        panel(f, k % cols, k / cols, ac, z, sl_value(a), sl_grad(x), cf);
    }
    sl_tape_free(t);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        perror(path);
        return 1;
    }
    printf("wrote %s\n", path);
    return bad;
}
