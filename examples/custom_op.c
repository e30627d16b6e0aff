/*
 * custom_op.c - add an activation to slope and use it like a built-in one.
 *
 * The op is swish with a parameter, a = z sigmoid(beta z), beta taken from
 * the node's attributes (attrs.alpha; 1.702 by default, which makes it the
 * sigmoid approximation of GELU). The program
 *   1. registers it: forward, backward (from the saved output where it can),
 *      tangent rule, formula and derivative texts, check domain and kind;
 *   2. checks it with sl_gradcheck_op (reverse mode, forward mode and finite
 *      differences must agree) and prints the report;
 *   3. registers a deliberately wrong copy - its backward forgets the factor
 *      beta - and prints the report that catches it;
 *   4. builds an MLP with the new activation BY NAME (sl_mlp_new) and trains
 *      it a little on a curve, printing the loss.
 * Exit status 0 only if the right op passes, the wrong one is caught and the
 * loss goes down.
 */
#include "slope.h"

#include <math.h>
#include <stdio.h>

#define BETA 1.702 /* the op's default attribute */

/* sigmoid without overflow: e^-u is only taken for u >= 0 */
static double sigmoid(double u) {
    if (u >= 0) return 1.0 / (1.0 + exp(-u));
    double e = exp(u);
    return e / (1.0 + e);
}

/* The slope da/dz = s + beta z s (1 - s) = s + beta a (1 - s), s = sigmoid(beta z):
 * the saved output a gives the second term; s must come from the input z
 * (a = z s cannot give s back at z = 0). */
static double slope(double z, double a, double beta) {
    const double s = sigmoid(beta * z);
    return s + beta * a * (1.0 - s);
}
/* ... and the wrong one: the factor beta forgotten (right only for beta = 1) */
static double slope_wrong(double z, double a, double beta) {
    (void)beta;
    const double s = sigmoid(beta * z);
    return s + a * (1.0 - s);
}

/* x (any shape) -> a (same shape), element by element */
static void swish_forward(sl_var *out) {
    const double *z = sl_value(sl_in(out, 0));
    const double beta = sl_attrs_of(out)->alpha;
    double *a = sl_out_data(out);
    for (size_t i = 0, n = sl_numel(out); i < n; i++) a[i] = z[i] * sigmoid(beta * z[i]);
}

/* dz += da * slope: the kernels read nodes only through slope.h's accessors */
static void backward_with(sl_var *out, double (*d)(double, double, double)) {
    const sl_var *x = sl_in(out, 0);
    double *dz = sl_grad_data(x); /* NULL when no gradient flows to x */
    if (!dz) return;
    const double *z = sl_value(x), *a = sl_value(out), *da = sl_grad(out);
    const double beta = sl_attrs_of(out)->alpha;
    for (size_t i = 0, n = sl_numel(out); i < n; i++) dz[i] += da[i] * d(z[i], a[i], beta);
}
static void swish_backward(sl_var *out) { backward_with(out, slope); }
static void swish_backward_wrong(sl_var *out) { backward_with(out, slope_wrong); }

/* forward mode: the tangent of a is slope * the tangent of z (none: zero) */
static void swish_jvp(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *z = sl_value(x), *a = sl_value(out), *tz = sl_tangent_data(x);
    const double beta = sl_attrs_of(out)->alpha;
    double *ta = sl_tangent_data(out);
    for (size_t i = 0, n = sl_numel(out); i < n; i++)
        ta[i] = tz ? tz[i] * slope(z[i], a[i], beta) : 0.0;
}

/* The descriptors. shape NULL: the output has the input's shape. KIND_MAP:
 * the checks try it on shapes [], [5], [2,3], [2,1,3,2] with .defaults. */
static const sl_op swish_beta_op = {
    .name = "swish_beta",
    .arity = 1,
    .forward = swish_forward,
    .backward = swish_backward,
    .jvp = swish_jvp,
    .signature = "swish_beta(t, x, alpha)",
    .formula = "a = z*sigmoid(beta*z), beta = alpha (default 1.702: GELU's sigmoid approximation)",
    .derivative = "da/dz = s + beta*a*(1-s), s = sigmoid(beta*z): a from the saved output, s "
                  "recomputed from the input",
    .domain = {SL_DOMAIN_REAL},
    .kind = SL_KIND_MAP,
    .defaults = {.alpha = BETA},
};
static const sl_op swish_beta_wrong_op = {
    .name = "swish_beta_wrong",
    .arity = 1,
    .forward = swish_forward,
    .backward = swish_backward_wrong, /* the bug */
    .jvp = swish_jvp,
    .signature = "swish_beta_wrong(t, x, alpha)",
    .formula = "a = z*sigmoid(beta*z), beta = alpha",
    .derivative = "da/dz = s + a*(1-s) (WRONG on purpose: the factor beta is missing)",
    .domain = {SL_DOMAIN_REAL},
    .kind = SL_KIND_MAP,
    .defaults = {.alpha = BETA},
};

/* The op as a function, like the built-in sl_<op> wrappers. */
static sl_var *swish_beta(sl_tape *t, sl_var *x, double beta) {
    sl_attrs at = {.alpha = beta};
    return sl_apply(t, &swish_beta_op, 1, &x, &at);
}

static void print_report(const char *name, int rc, const sl_gradcheck_report *r) {
    printf("sl_gradcheck_op(%s): %s (%s), %d cases, %zu entries, max rel err %.2g%s\n", name,
           r->ok ? "ok" : "FAILED", sl_status_name(rc), r->ncases, r->nchecked, r->max_rel_err,
           r->jvp_checked ? ", forward mode checked too" : "");
    if (!r->ok) printf("  failed: \"%s\"\n  message: %s\n", r->failed, r->message);
}

/* Step 4: fit y = sin(3x) on [-2, 2] with an MLP 1-16-16-1 using the new
 * activation by name; Adam, full batch. Returns 1 if the loss went down. */
static int train_by_name(void) {
    enum { NPTS = 64, STEPS = 300 };
    double X[NPTS], Y[NPTS];
    for (int i = 0; i < NPTS; i++) {
        X[i] = -2.0 + 4.0 * i / (NPTS - 1);
        Y[i] = sin(3.0 * X[i]);
    }
    sl_rng rng;
    sl_rng_seed(&rng, 3);
    sl_params *ps = sl_params_new();
    sl_init xavier = {.kind = SL_INIT_XAVIER_UNIFORM};
    sl_mlp *net =
        ps ? sl_mlp_new(ps, "fit", 4, (int[]){1, 16, 16, 1}, "swish_beta", xavier, &rng) : NULL;
    sl_adam_opts ao = sl_adam_defaults(0.01);
    sl_optim *opt = net ? sl_optim_adam(ps, &ao) : NULL;
    sl_tape *t = sl_tape_new();
    sl_var *loss = sl_mse(t, sl_mlp_forward(t, net, sl_input(t, 2, (int[]){NPTS, 1}, X, 0)),
                          sl_input(t, 2, (int[]){NPTS, 1}, Y, 0));
    int ok = 0;
    if (!opt) {
        fprintf(stderr, "custom_op: %s\n", ps ? sl_params_error(ps) : "out of memory");
    } else if (sl_tape_status(t) != SL_OK) {
        fprintf(stderr, "custom_op: %s\n", sl_tape_error(t));
    } else {
        printf("MLP 1-16-16-1 with activation \"swish_beta\" (by name), Adam lr 0.01, "
               "fitting sin(3x) on %d points:\n",
               NPTS);
        double first = sl_item(loss);
        int rc = SL_OK;
        for (int step = 0; step <= STEPS && rc == SL_OK; step++) {
            if (step > 0) rc = sl_forward(t); /* replay with the updated weights */
            if (rc == SL_OK && step % 100 == 0)
                printf("  step %3d  mse %.6f\n", step, sl_item(loss));
            if (rc != SL_OK || step == STEPS) break;
            sl_params_zero_grad(ps);
            rc = sl_backward(t, loss);
            if (rc == SL_OK && sl_optim_step(opt) != SL_OK) {
                fprintf(stderr, "custom_op: %s\n", sl_optim_error(opt));
                rc = SL_EARG;
            }
        }
        if (sl_tape_status(t) != SL_OK) fprintf(stderr, "custom_op: %s\n", sl_tape_error(t));
        ok = rc == SL_OK && sl_item(loss) < first;
        printf("loss %s: %.6f -> %.6f\n", ok ? "decreased" : "DID NOT DECREASE", first,
               sl_item(loss));
    }
    sl_tape_free(t);
    sl_optim_free(opt);
    sl_mlp_free(net);
    sl_params_free(ps);
    return ok;
}

int main(void) {
    /* 1. register both ops (the registry keeps the pointers: they are static) */
    int rc = sl_op_register(&swish_beta_op);
    if (rc == SL_OK) rc = sl_op_register(&swish_beta_wrong_op);
    if (rc != SL_OK) {
        fprintf(stderr, "custom_op: %s\n", sl_op_register_error()); /* says why */
        return 1;
    }
    printf("registered \"%s\": %s\n  %s\n", swish_beta_op.name, swish_beta_op.formula,
           swish_beta_op.derivative);

    /* the op in use: a and da/dz at three points, from the tape */
    sl_tape *t = sl_tape_new();
    sl_var *z = sl_input(t, 1, (int[]){3}, (double[]){-2.0, 0.0, 2.0}, SL_GRAD);
    sl_var *a = swish_beta(t, z, BETA);
    if (sl_backward(t, sl_sum(t, a, SL_ALL, 0)) != SL_OK) {
        fprintf(stderr, "custom_op: %s\n", sl_tape_error(t));
        sl_tape_free(t);
        return 1;
    }
    for (int i = 0; i < 3; i++)
        printf("  z = %4.1f: a = %9.6f, da/dz = %9.6f\n", sl_value(z)[i], sl_value(a)[i],
               sl_grad(z)[i]);
    sl_tape_free(t);

    /* 2. the right op passes every check */
    sl_gradcheck_report r;
    int rc_right = sl_gradcheck_op(&swish_beta_op, NULL, &r);
    print_report(swish_beta_op.name, rc_right, &r);

    /* 3. the wrong one is caught: SL_EGRAD, with what failed and where */
    int rc_wrong = sl_gradcheck_op(&swish_beta_wrong_op, NULL, &r);
    print_report(swish_beta_wrong_op.name, rc_wrong, &r);
    int caught = rc_wrong == SL_EGRAD && !r.ok;
    printf("the wrong backward was %s\n", caught ? "caught" : "NOT CAUGHT");

    /* 4. the new activation in an MLP, by name */
    int learned = train_by_name();
    return rc_right == SL_OK && caught && learned ? 0 : 1;
}
