/*
 * test_optim.c - SGD (momentum, dampening, Nesterov, weight decay), Adam and
 * AdamW against sequences computed by hand from PyTorch's published update
 * formulas (torch.optim docs, "Algorithm" boxes), gradient clipping as
 * clip_grad_norm_, and the errors: bad hyper-parameters, a parameter added
 * after the optimiser, a non-finite gradient norm, running out of memory.
 */
#include "slope.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define STEPS 5
#define N1 3
#define N2 4
#define NALL (N1 + N2)

/* The gradient of element i (over both parameters) at step t (0-based):
 * fixed, varied in sign and size. */
static double grad_at(int t, int i) { return sin(0.9 * i + 1.3 * t + 0.2) * (1 + 0.5 * i); }
static double init_at(int i) { return cos(0.7 * i) * 0.8 - 0.1; }

/* Element i over both parameters: of the values, or of the gradients. */
static double *elem(sl_param *a, sl_param *b, int i, int grad) {
    sl_param *p = i < N1 ? a : b;
    return (grad ? sl_param_grad(p) : sl_param_value(p)) + (i < N1 ? i : i - N1);
}

/* A store with "a" [3] and "b" [2,2]. */
static sl_params *tiny_store(sl_param **a, sl_param **b) {
    sl_params *ps = sl_params_new();
    *a = sl_param_new(ps, "a", 1, (int[]){N1}, NULL);
    *b = sl_param_new(ps, "b", 2, (int[]){2, 2}, NULL);
    cr_assert(*a && *b);
    for (int i = 0; i < NALL; i++) *elem(*a, *b, i, 0) = init_at(i);
    return ps;
}

static void set_grads(sl_param *a, sl_param *b, int t) {
    for (int i = 0; i < NALL; i++) *elem(a, b, i, 1) = grad_at(t, i);
}

static double value_of(sl_param *a, sl_param *b, int i) { return *elem(a, b, i, 0); }

/* |x - want| <= 1e-15 * max(|want|, 1): double precision, a few ulps. */
static void expect_close(double x, double want, const char *what, int t, int i) {
    cr_expect(fabs(x - want) <= 1e-15 * fmax(fabs(want), 1.0),
              "%s step %d elem %d: %.17g, want %.17g (diff %.3g)", what, t + 1, i, x, want,
              x - want);
}

/* ------------------------------------------------------------------- SGD */

/* torch.optim.SGD algorithm box:
 *   g_t = grad + lambda*theta_{t-1}                         (weight decay)
 *   if mu != 0: b_t = g_t if t = 1 else mu*b_{t-1} + (1-tau)*g_t
 *               g_t = g_t + mu*b_t if nesterov else b_t
 *   theta_t = theta_{t-1} - gamma*g_t                                      */
static void sgd_ref(sl_sgd_opts o, const char *what) {
    sl_param *a, *b;
    sl_params *ps = tiny_store(&a, &b);
    sl_optim *opt = sl_optim_sgd(ps, &o);
    cr_assert_not_null(opt, "%s", sl_params_error(ps));
    double theta[NALL], buf[NALL];
    for (int i = 0; i < NALL; i++) theta[i] = init_at(i);
    for (int t = 0; t < STEPS; t++) {
        set_grads(a, b, t);
        cr_assert_eq(sl_optim_step(opt), SL_OK, "%s", sl_optim_error(opt));
        cr_expect_null(sl_optim_error(opt));
        for (int i = 0; i < NALL; i++) {
            double g = grad_at(t, i);
            if (o.weight_decay != 0) g = g + o.weight_decay * theta[i];
            if (o.momentum != 0) {
                buf[i] = t == 0 ? g : o.momentum * buf[i] + (1 - o.dampening) * g;
                g = o.nesterov ? g + o.momentum * buf[i] : buf[i];
            }
            theta[i] = theta[i] - o.lr * g;
            expect_close(value_of(a, b, i), theta[i], what, t, i);
        }
    }
    cr_expect_eq(sl_optim_steps(opt), STEPS);
    sl_optim_free(opt);
    sl_params_free(ps);
}

Test(optim, sgd_plain) { sgd_ref(sl_sgd_defaults(0.1), "sgd"); }
Test(optim, sgd_weight_decay) { sgd_ref((sl_sgd_opts){.lr = 0.05, .weight_decay = 0.3}, "sgd wd"); }
Test(optim, sgd_momentum) { sgd_ref((sl_sgd_opts){.lr = 0.1, .momentum = 0.9}, "momentum"); }
Test(optim, sgd_momentum_dampening_decay) {
    sgd_ref((sl_sgd_opts){.lr = 0.1, .momentum = 0.8, .dampening = 0.3, .weight_decay = 0.01},
            "dampening");
}
Test(optim, sgd_nesterov) {
    sgd_ref((sl_sgd_opts){.lr = 0.1, .momentum = 0.9, .nesterov = 1, .weight_decay = 0.02},
            "nesterov");
}

/* One scalar parameter at 1 with gradient 1 at every step. */
static void scalar_run(sl_optim *(*make)(sl_params *, const void *), const void *opts,
                       const double *want, int n, const char *what) {
    sl_params *ps = sl_params_new();
    sl_param *p = sl_param_new(ps, "p", 0, NULL, (double[]){1.0});
    sl_optim *o = make(ps, opts);
    cr_assert_not_null(o, "%s", sl_params_error(ps));
    for (int t = 0; t < n; t++) {
        sl_param_grad(p)[0] = 1.0;
        cr_assert_eq(sl_optim_step(o), SL_OK);
        expect_close(sl_param_value(p)[0], want[t], what, t, 0);
    }
    sl_optim_free(o);
    sl_params_free(ps);
}
static sl_optim *mk_sgd(sl_params *ps, const void *o) { return sl_optim_sgd(ps, o); }
static sl_optim *mk_adam(sl_params *ps, const void *o) { return sl_optim_adam(ps, o); }
static sl_optim *mk_adamw(sl_params *ps, const void *o) { return sl_optim_adamw(ps, o); }

/* Worked by hand on paper, lr 0.1, gradient 1, theta_0 = 1. */
Test(optim, sgd_hand_worked_numbers) {
    sl_sgd_opts plain = sl_sgd_defaults(0.1);
    scalar_run(mk_sgd, &plain, (double[]){0.9, 0.8, 0.7}, 3, "plain");
    /* b = 1, 1.9, 2.71 -> theta = 0.9, 0.71, 0.439 */
    sl_sgd_opts mom = {.lr = 0.1, .momentum = 0.9};
    scalar_run(mk_sgd, &mom, (double[]){0.9, 0.71, 0.439}, 3, "momentum");
    /* nesterov: g = 1 + 0.9 b = 1.9, 2.71, 3.439 -> 0.81, 0.539, 0.1951 */
    sl_sgd_opts nes = {.lr = 0.1, .momentum = 0.9, .nesterov = 1};
    scalar_run(mk_sgd, &nes, (double[]){0.81, 0.539, 0.1951}, 3, "nesterov");
    /* decay 0.1: g = 1.1, 1.089, 1.07811 -> 0.89, 0.7811, 0.673289 */
    sl_sgd_opts wd = {.lr = 0.1, .weight_decay = 0.1};
    scalar_run(mk_sgd, &wd, (double[]){0.89, 0.7811, 0.673289}, 3, "weight decay");
    /* dampening 0.5 (not on the first step): b = 1, 1.4, 1.76 -> 0.9, 0.76, 0.584 */
    sl_sgd_opts damp = {.lr = 0.1, .momentum = 0.9, .dampening = 0.5};
    scalar_run(mk_sgd, &damp, (double[]){0.9, 0.76, 0.584}, 3, "dampening");
}

/* ------------------------------------------------------------- Adam(W) */

/* torch.optim.Adam / AdamW algorithm boxes (amsgrad off):
 *   Adam:  g_t = grad + lambda*theta_{t-1}
 *   AdamW: theta_t = theta_{t-1} - gamma*lambda*theta_{t-1}
 *   m_t = beta1*m_{t-1} + (1-beta1)*g_t
 *   v_t = beta2*v_{t-1} + (1-beta2)*g_t^2
 *   mhat = m_t/(1-beta1^t), vhat = v_t/(1-beta2^t)
 *   theta_t = theta_t - gamma*mhat/(sqrt(vhat) + eps)                      */
static void adam_ref(sl_adam_opts o, int decoupled, const char *what) {
    sl_param *a, *b;
    sl_params *ps = tiny_store(&a, &b);
    sl_optim *opt = decoupled ? sl_optim_adamw(ps, &o) : sl_optim_adam(ps, &o);
    cr_assert_not_null(opt, "%s", sl_params_error(ps));
    double theta[NALL], m[NALL] = {0}, v[NALL] = {0};
    for (int i = 0; i < NALL; i++) theta[i] = init_at(i);
    for (int t = 0; t < STEPS; t++) {
        set_grads(a, b, t);
        cr_assert_eq(sl_optim_step(opt), SL_OK, "%s", sl_optim_error(opt));
        for (int i = 0; i < NALL; i++) {
            double g = grad_at(t, i);
            if (decoupled)
                theta[i] = theta[i] - o.lr * o.weight_decay * theta[i];
            else
                g = g + o.weight_decay * theta[i];
            m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
            v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
            double mhat = m[i] / (1 - pow(o.beta1, t + 1));
            double vhat = v[i] / (1 - pow(o.beta2, t + 1));
            theta[i] = theta[i] - o.lr * mhat / (sqrt(vhat) + o.eps);
            expect_close(value_of(a, b, i), theta[i], what, t, i);
        }
    }
    sl_optim_free(opt);
    sl_params_free(ps);
}

Test(optim, adam_defaults) { adam_ref(sl_adam_defaults(0.01), 0, "adam"); }
Test(optim, adam_l2_weight_decay) {
    sl_adam_opts o = sl_adam_defaults(0.05);
    o.weight_decay = 0.1;
    o.beta1 = 0.5;
    o.beta2 = 0.9;
    o.eps = 1e-6;
    adam_ref(o, 0, "adam wd");
}
Test(optim, adam_beta1_zero) {
    sl_adam_opts o = sl_adam_defaults(0.02);
    o.beta1 = 0;
    adam_ref(o, 0, "adam beta1 0");
}
Test(optim, adamw_decoupled_decay) { adam_ref(sl_adamw_defaults(0.01), 1, "adamw"); }
Test(optim, adamw_large_decay) {
    sl_adam_opts o = sl_adamw_defaults(0.1);
    o.weight_decay = 0.5;
    adam_ref(o, 1, "adamw 0.5");
}

/* With gradient 1 every step, mhat = vhat = 1: each step moves lr/(1+eps). */
Test(optim, adam_hand_worked_numbers) {
    sl_adam_opts o = sl_adam_defaults(0.1);
    double s = 0.1 / (1 + 1e-8); /* 0.099999999000000010 */
    scalar_run(mk_adam, &o, (double[]){1 - s, 1 - 2 * s, 1 - 3 * s}, 3, "adam");
    scalar_run(mk_adam, &o, (double[]){0.900000001, 0.800000002, 0.700000003}, 3, "adam lit");
    /* AdamW, decay 0.1: theta = 0.99 theta - s: 0.890000001, 0.78110000199, 0.6732890029701 */
    sl_adam_opts w = sl_adamw_defaults(0.1);
    w.weight_decay = 0.1;
    scalar_run(mk_adamw, &w, (double[]){0.890000001, 0.78110000199, 0.6732890029701}, 3,
               "adamw lit");
}

/* ------------------------------------------------------------- clipping */

Test(optim, clip_by_global_norm) {
    sl_params *ps = sl_params_new();
    sl_param *a = sl_param_new(ps, "a", 1, (int[]){1}, (double[]){1.0});
    sl_param *b = sl_param_new(ps, "b", 1, (int[]){1}, (double[]){2.0});
    sl_sgd_opts o = {.lr = 0.5, .clip_norm = 1.0};
    sl_optim *opt = sl_optim_sgd(ps, &o);
    cr_assert_not_null(opt);
    cr_expect(isnan(sl_optim_grad_norm(opt)));
    sl_param_grad(a)[0] = 3;
    sl_param_grad(b)[0] = 4; /* total norm 5 */
    cr_assert_eq(sl_optim_step(opt), SL_OK);
    double scale = 1.0 / (5.0 + 1e-6);
    cr_expect_eq(sl_optim_grad_norm(opt), 5.0);
    cr_expect_eq(sl_param_grad(a)[0], 3 * scale, "clipped in place");
    cr_expect_eq(sl_param_grad(b)[0], 4 * scale);
    cr_expect_eq(sl_param_value(a)[0], 1.0 - 0.5 * (3 * scale));
    cr_expect_eq(sl_param_value(b)[0], 2.0 - 0.5 * (4 * scale));
    /* under the limit: untouched (scale >= 1) */
    sl_param_grad(a)[0] = 0.3;
    sl_param_grad(b)[0] = 0.4;
    cr_assert_eq(sl_optim_step(opt), SL_OK);
    cr_expect_eq(sl_param_grad(a)[0], 0.3);
    cr_expect_eq(sl_param_grad(b)[0], 0.4);
    cr_expect(near(sl_optim_grad_norm(opt), 0.5, 1e-15, 0));
    sl_optim_free(opt);
    sl_params_free(ps);
}

Test(optim, clip_then_adam) {
    sl_param *a, *b;
    sl_params *ps = tiny_store(&a, &b);
    sl_adam_opts o = sl_adam_defaults(0.01);
    o.clip_norm = 0.5;
    sl_optim *opt = sl_optim_adam(ps, &o);
    cr_assert_not_null(opt);
    double theta[NALL], m[NALL] = {0}, v[NALL] = {0};
    for (int i = 0; i < NALL; i++) theta[i] = init_at(i);
    for (int t = 0; t < STEPS; t++) {
        set_grads(a, b, t);
        cr_assert_eq(sl_optim_step(opt), SL_OK);
        double sq = 0;
        for (int i = 0; i < NALL; i++) sq += grad_at(t, i) * grad_at(t, i);
        double c = 0.5 / (sqrt(sq) + 1e-6);
        if (c > 1) c = 1;
        for (int i = 0; i < NALL; i++) {
            double g = grad_at(t, i) * c;
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + (1 - 0.999) * g * g;
            double mhat = m[i] / (1 - pow(0.9, t + 1)), vhat = v[i] / (1 - pow(0.999, t + 1));
            theta[i] -= 0.01 * mhat / (sqrt(vhat) + 1e-8);
            expect_close(value_of(a, b, i), theta[i], "clip+adam", t, i);
        }
    }
    sl_optim_free(opt);
    sl_params_free(ps);
}

Test(optim, non_finite_norm_changes_nothing) {
    sl_param *a, *b;
    sl_params *ps = tiny_store(&a, &b);
    sl_sgd_opts o = {.lr = 0.1, .momentum = 0.9, .clip_norm = 1};
    sl_optim *opt = sl_optim_sgd(ps, &o);
    set_grads(a, b, 0);
    sl_param_grad(b)[2] = NAN;
    double before[NALL];
    for (int i = 0; i < NALL; i++) before[i] = value_of(a, b, i);
    cr_expect_eq(sl_optim_step(opt), SL_ENONFINITE);
    cr_expect(contains(sl_optim_error(opt), "norm is nan") &&
                  contains(sl_optim_error(opt), "\"b\"[2] = nan"),
              "%s", sl_optim_error(opt));
    for (int i = 0; i < NALL; i++) cr_expect_eq(value_of(a, b, i), before[i]);
    cr_expect_eq(sl_optim_steps(opt), 0);
    /* recovers: the next good step is the first (momentum buffer = g) */
    set_grads(a, b, 0);
    cr_expect_eq(sl_optim_step(opt), SL_OK);
    cr_expect_null(sl_optim_error(opt));
    sl_optim_free(opt);
    sl_params_free(ps);
}

/* Every gradient finite, but the sum of squares overflows (2 x 1e200^2):
 * PyTorch's clip_grad_norm_ gets an inf norm too (no scaling) and refuses
 * it with error_if_nonfinite. The message says what happened rather than
 * naming a non-finite gradient that does not exist. */
Test(optim, finite_gradients_whose_norm_overflows) {
    sl_param *a, *b;
    sl_params *ps = tiny_store(&a, &b);
    sl_sgd_opts o = {.lr = 0.1, .clip_norm = 1};
    sl_optim *opt = sl_optim_sgd(ps, &o);
    set_grads(a, b, 0);
    sl_param_grad(b)[1] = 1e200;
    sl_param_grad(b)[3] = -3e200; /* the largest in magnitude */
    double before[NALL], grads[NALL];
    for (int i = 0; i < NALL; i++) {
        before[i] = value_of(a, b, i);
        grads[i] = *elem(a, b, i, 1);
    }
    cr_expect_eq(sl_optim_step(opt), SL_ENONFINITE);
    const char *m = sl_optim_error(opt);
    cr_expect(contains(m, "every gradient is finite") && contains(m, "overflows to inf") &&
                  contains(m, "\"b\"[3] = -3e+200") && !contains(m, "\"?\""),
              "%s", m);
    cr_expect(isinf(sl_optim_grad_norm(opt)));
    for (int i = 0; i < NALL; i++) {
        cr_expect_eq(value_of(a, b, i), before[i]);
        cr_expect_eq(*elem(a, b, i, 1), grads[i], "gradient %d was scaled", i);
    }
    cr_expect_eq(sl_optim_steps(opt), 0);
    sl_optim_free(opt);
    sl_params_free(ps);
}

/* --------------------------------------------------------------- errors */

Test(optim, param_added_later_is_an_error) {
    sl_param *a, *b;
    sl_params *ps = tiny_store(&a, &b);
    sl_optim *opt =
        sl_optim_adam(ps, &(sl_adam_opts){.lr = 0.1, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8});
    cr_assert_not_null(opt);
    cr_assert_not_null(sl_param_new(ps, "late", 1, (int[]){2}, NULL));
    double before = sl_param_value(a)[0];
    sl_param_grad(a)[0] = 1;
    cr_expect_eq(sl_optim_step(opt), SL_ESTATE);
    cr_expect(contains(sl_optim_error(opt), "3 parameters") &&
                  contains(sl_optim_error(opt), "made for 2"),
              "%s", sl_optim_error(opt));
    cr_expect_eq(sl_param_value(a)[0], before);
    sl_optim_free(opt);
    sl_params_free(ps);
}

static void bad_sgd(sl_sgd_opts o, const char *needle) {
    sl_params *ps = sl_params_new();
    sl_param_new(ps, "w", 1, (int[]){2}, NULL);
    cr_expect_null(sl_optim_sgd(ps, &o));
    cr_expect(contains(sl_params_error(ps), "sl_optim_sgd") &&
                  contains(sl_params_error(ps), needle),
              "%s (want %s)", sl_params_error(ps), needle);
    sl_params_free(ps);
}

static void bad_adam(sl_adam_opts o, const char *needle) {
    sl_params *ps = sl_params_new();
    cr_expect_null(sl_optim_adam(ps, &o));
    cr_expect(contains(sl_params_error(ps), "sl_optim_adam") &&
                  contains(sl_params_error(ps), needle),
              "%s (want %s)", sl_params_error(ps), needle);
    cr_expect_null(sl_optim_adamw(ps, &o));
    cr_expect(contains(sl_params_error(ps), "sl_optim_adamw") &&
                  contains(sl_params_error(ps), needle),
              "%s (want %s)", sl_params_error(ps), needle);
    sl_params_free(ps);
}

Test(optim, bad_hyper_parameters) {
    bad_sgd((sl_sgd_opts){.lr = 0}, "lr = 0");
    bad_sgd((sl_sgd_opts){.lr = -1}, "lr = -1");
    bad_sgd((sl_sgd_opts){.lr = NAN}, "lr = nan");
    bad_sgd((sl_sgd_opts){.lr = INFINITY}, "lr = inf");
    bad_sgd((sl_sgd_opts){.lr = 0.1, .momentum = -0.5}, "momentum = -0.5");
    bad_sgd((sl_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = 2}, "dampening = 2");
    bad_sgd((sl_sgd_opts){.lr = 0.1, .weight_decay = -1}, "weight_decay = -1");
    bad_sgd((sl_sgd_opts){.lr = 0.1, .nesterov = 1}, "nesterov needs momentum > 0");
    bad_sgd((sl_sgd_opts){.lr = 0.1, .nesterov = 1, .momentum = 0.9, .dampening = 0.1},
            "dampening 0");
    bad_sgd((sl_sgd_opts){.lr = 0.1, .nesterov = 2, .momentum = 0.9}, "nesterov = 2");
    bad_sgd((sl_sgd_opts){.lr = 0.1, .clip_norm = -1}, "clip_norm = -1");
    sl_adam_opts d = sl_adam_defaults(0.1), o;
    o = d, o.lr = 0, bad_adam(o, "lr = 0");
    o = d, o.beta1 = 1, bad_adam(o, "beta1 = 1, must be in [0, 1)");
    o = d, o.beta1 = -0.1, bad_adam(o, "beta1 = -0.1");
    o = d, o.beta2 = 1, bad_adam(o, "beta2 = 1");
    o = d, o.beta2 = NAN, bad_adam(o, "beta2 = nan");
    o = d, o.eps = 0, bad_adam(o, "eps = 0");
    o = d, o.eps = -1e-8, bad_adam(o, "eps = -1e-08");
    o = d, o.weight_decay = -0.01, bad_adam(o, "weight_decay = -0.01");
    o = d, o.clip_norm = INFINITY, bad_adam(o, "clip_norm = inf");
    sl_params *ps = sl_params_new();
    cr_expect_null(sl_optim_sgd(ps, NULL));
    cr_expect(contains(sl_params_error(ps), "opts is NULL"));
    cr_expect_null(sl_optim_adam(ps, NULL));
    cr_expect_null(sl_optim_sgd(NULL, &(sl_sgd_opts){.lr = 1}));
    cr_expect_eq(sl_optim_step(NULL), SL_EARG);
    sl_optim_free(NULL);
    /* a good constructor clears the store's message */
    cr_expect_not_null(sl_params_error(ps));
    sl_optim *ok = sl_optim_sgd(ps, &(sl_sgd_opts){.lr = 1});
    cr_expect_not_null(ok);
    cr_expect_null(sl_params_error(ps));
    cr_expect_eq(sl_optim_step(ok), SL_OK, "an empty store steps trivially");
    sl_optim_free(ok);
    sl_params_free(ps);
}

Test(optim, set_lr) {
    sl_params *ps = sl_params_new();
    sl_param *p = sl_param_new(ps, "p", 0, NULL, (double[]){1.0});
    sl_optim *o = sl_optim_sgd(ps, &(sl_sgd_opts){.lr = 0.1});
    cr_expect_eq(sl_optim_lr(o), 0.1);
    cr_expect_eq(sl_optim_set_lr(o, -1), SL_EARG);
    cr_expect(contains(sl_optim_error(o), "lr = -1"));
    cr_expect_eq(sl_optim_lr(o), 0.1);
    cr_expect_eq(sl_optim_set_lr(o, 0.5), SL_OK);
    sl_param_grad(p)[0] = 1;
    sl_optim_step(o);
    cr_expect_eq(sl_param_value(p)[0], 0.5);
    sl_optim_free(o);
    sl_params_free(ps);
}

Test(optim, out_of_memory_at_creation) {
    for (long fail = 1;; fail++) {
        counting_alloc c = {0};
        sl_allocator al = counting_allocator(&c);
        sl_params *ps = sl_params_new_with(&al);
        sl_param_new(ps, "a", 1, (int[]){3}, NULL);
        sl_param_new(ps, "b", 1, (int[]){3}, NULL);
        c.fail_at = c.calls + fail;
        sl_optim *o = sl_optim_adam(ps, &(sl_adam_opts){.lr = 1, .eps = 1e-8});
        if (o) {
            sl_optim_free(o);
            sl_params_free(ps);
            cr_expect_eq(c.live, 0);
            cr_expect_gt(fail, 3);
            break;
        }
        cr_expect(contains(sl_params_error(ps), "out of memory"), "%s", sl_params_error(ps));
        sl_params_free(ps);
        cr_expect_eq(c.live, 0, "leak when failing at %ld", fail);
    }
}

/* ------------------------------------------------------------ end to end */

/* Fit y = x.[2,-3] + 0.5 with sl_linear, a replayed tape and Adam. */
Test(optim, fits_a_linear_model) {
    enum { N = 32 };
    double x[N * 2], y[N];
    sl_rng r;
    sl_rng_seed(&r, 8);
    for (int i = 0; i < N; i++) {
        x[2 * i] = 2 * sl_rng_uniform(&r) - 1;
        x[2 * i + 1] = 2 * sl_rng_uniform(&r) - 1;
        y[i] = 2 * x[2 * i] - 3 * x[2 * i + 1] + 0.5;
    }
    sl_params *ps = sl_params_new();
    sl_param *W =
        sl_param_new_init(ps, "W", 2, (int[]){2, 1}, (sl_init){.kind = SL_INIT_XAVIER_UNIFORM}, &r);
    sl_param *b = sl_param_new(ps, "b", 1, (int[]){1}, NULL);
    sl_optim *opt =
        sl_optim_adam(ps, &(sl_adam_opts){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    sl_tape *t = sl_tape_new();
    sl_var *pred = sl_linear(t, sl_input(t, 2, (int[]){N, 2}, x, 0), W, b);
    sl_var *err = sl_sub(t, pred, sl_input(t, 2, (int[]){N, 1}, y, 0));
    sl_var *loss = sl_mean(t, sl_square(t, err), SL_ALL, 0);
    cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    double first = sl_item(loss);
    for (int step = 0; step < 2000; step++) {
        sl_forward(t);
        sl_params_zero_grad(ps);
        cr_assert_eq(sl_backward(t, loss), SL_OK);
        cr_assert_eq(sl_optim_step(opt), SL_OK);
    }
    sl_forward(t);
    cr_expect_lt(sl_item(loss), 1e-6 * first, "loss %g from %g", sl_item(loss), first);
    cr_expect(near(sl_param_value(W)[0], 2, 1e-3, 0) && near(sl_param_value(W)[1], -3, 1e-3, 0));
    cr_expect(near(sl_param_value(b)[0], 0.5, 1e-3, 0));
    sl_tape_free(t);
    sl_optim_free(opt);
    sl_params_free(ps);
}
