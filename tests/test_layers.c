/*
 * test_layers.c - sl_linear and the MLP: values against hand loops, shape
 * errors that name sl_linear and the shapes, activations by registry name
 * (a built-in with default attributes, a user-registered op, an unknown
 * name), all-or-nothing creation, and gradients through sl_gradcheck.
 */
#include "internal.h" /* to find the sl_use leaves the layers record */
#include "slope.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* The sl_use leaves recorded on t, in order. */
static int param_leaves(sl_tape *t, sl_var **out, int max) {
    int n = 0;
    for (size_t i = 0; i < t->n && n < max; i++)
        if (t->nodes[i]->flags & SL__NODE_PARAM) out[n++] = t->nodes[i];
    return n;
}

static void fill(double *v, size_t n, double scale, double shift) {
    for (size_t i = 0; i < n; i++) v[i] = scale * sin(1.7 * (double)i + shift);
}

/* y[N,out] = x[N,in] W[in,out] + b[out], by hand. */
static void linear_ref(const double *x, const double *W, const double *b, int N, int in, int out,
                       double *y) {
    for (int r = 0; r < N; r++)
        for (int j = 0; j < out; j++) {
            double s = 0;
            for (int k = 0; k < in; k++) s += x[r * in + k] * W[k * out + j];
            y[r * out + j] = s + (b ? b[j] : 0);
        }
}

Test(layers, linear_matches_hand_loops) {
    enum { N = 4, IN = 3, OUT = 5 };
    sl_params *ps = sl_params_new();
    sl_param *W = sl_param_new(ps, "W", 2, (int[]){IN, OUT}, NULL);
    sl_param *b = sl_param_new(ps, "b", 1, (int[]){OUT}, NULL);
    fill(sl_param_value(W), IN * OUT, 0.8, 0.1);
    fill(sl_param_value(b), OUT, 0.5, 2.0);
    double x[N * IN], want[N * OUT], want_nb[N * OUT];
    fill(x, N * IN, 1.3, 0.7);
    linear_ref(x, sl_param_value(W), sl_param_value(b), N, IN, OUT, want);
    linear_ref(x, sl_param_value(W), NULL, N, IN, OUT, want_nb);
    sl_tape *t = sl_tape_new();
    sl_var *xv = sl_input(t, 2, (int[]){N, IN}, x, 0);
    sl_var *y = sl_linear(t, xv, W, b), *ynb = sl_linear(t, xv, W, NULL);
    cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), 2);
    cr_expect(sl_dims(y)[0] == N && sl_dims(y)[1] == OUT);
    for (int i = 0; i < N * OUT; i++) {
        cr_expect(near(sl_value(y)[i], want[i], 1e-14, 1e-15), "y[%d] %g vs %g", i, sl_value(y)[i],
                  want[i]);
        cr_expect(near(sl_value(ynb)[i], want_nb[i], 1e-14, 1e-15));
    }
    /* dW = x^T . dy, db = column sums of dy, with dy = 1 (sum of y) */
    sl_var *s = sl_sum(t, y, SL_ALL, 0);
    cr_assert_eq(sl_backward(t, s), SL_OK, "%s", sl_tape_error(t));
    for (int k = 0; k < IN; k++)
        for (int j = 0; j < OUT; j++) {
            double g = 0;
            for (int r = 0; r < N; r++) g += x[r * IN + k];
            cr_expect(near(sl_param_grad(W)[k * OUT + j], g, 1e-14, 1e-15));
        }
    for (int j = 0; j < OUT; j++) cr_expect_eq(sl_param_grad(b)[j], (double)N);
    sl_tape_free(t);
    sl_params_free(ps);
}

Test(layers, linear_gradients_pass_gradcheck) {
    sl_params *ps = sl_params_new();
    sl_rng r;
    sl_rng_seed(&r, 5);
    sl_param *W =
        sl_param_new_init(ps, "W", 2, (int[]){3, 2}, (sl_init){.kind = SL_INIT_NORMAL, .b = 1}, &r);
    sl_param *b =
        sl_param_new_init(ps, "b", 1, (int[]){2}, (sl_init){.kind = SL_INIT_NORMAL, .b = 1}, &r);
    double x[12];
    fill(x, 12, 1.0, 0.3);
    sl_tape *t = sl_tape_new();
    sl_var *xv = sl_input(t, 2, (int[]){4, 3}, x, SL_GRAD);
    sl_var *y = sl_tanh(t, sl_linear(t, xv, W, b)); /* a non-linear function of all three */
    sl_var *in[3] = {xv};
    cr_assert_eq(param_leaves(t, in + 1, 2), 2);
    sl_gradcheck_report rep;
    int rc = sl_gradcheck(t, y, 3, in, NULL, &rep);
    cr_expect_eq(rc, SL_OK, "%s %s", rep.message, sl_tape_error(t));
    cr_expect_gt(rep.nchecked, 0);
    sl_tape_free(t);
    sl_params_free(ps);
}

Test(layers, linear_shape_errors_name_the_shapes) {
    sl_params *ps = sl_params_new();
    sl_param *W = sl_param_new(ps, "fc.W", 2, (int[]){2, 5}, NULL);
    sl_param *b3 = sl_param_new(ps, "fc.b", 1, (int[]){3}, NULL);
    sl_param *v = sl_param_new(ps, "v", 1, (int[]){2}, NULL);
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){4, 3}, NULL, 0);
    cr_expect_null(sl_linear(t, x, W, NULL));
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    const char *m = sl_tape_error(t);
    cr_expect(contains(m, "sl_linear") && contains(m, "[4,3]") && contains(m, "[2,5]") &&
                  contains(m, "fc.W"),
              "%s", m);
    /* poisoned: later calls return NULL quietly and keep the first error */
    cr_expect_null(sl_linear(t, NULL, W, NULL));
    cr_expect(contains(sl_tape_error(t), "[4,3]"));

    sl_tape_clear(t);
    x = sl_input(t, 2, (int[]){4, 2}, NULL, 0);
    cr_expect_null(sl_linear(t, x, W, b3));
    m = sl_tape_error(t);
    cr_expect(contains(m, "sl_linear") && contains(m, "fc.b") && contains(m, "[3]") &&
                  contains(m, "[5]"),
              "%s", m);
    sl_tape_clear(t);
    x = sl_input(t, 2, (int[]){4, 2}, NULL, 0);
    cr_expect_null(sl_linear(t, x, v, NULL));
    cr_expect(contains(sl_tape_error(t), "must be [in,out]"), "%s", sl_tape_error(t));
    sl_tape_clear(t);
    x = sl_input(t, 1, (int[]){2}, NULL, 0);
    cr_expect_null(sl_linear(t, x, W, NULL));
    cr_expect(contains(sl_tape_error(t), "x must be [N,2]"), "%s", sl_tape_error(t));
    sl_tape_clear(t);
    cr_expect_null(sl_linear(t, NULL, W, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    sl_tape_clear(t);
    x = sl_input(t, 2, (int[]){4, 2}, NULL, 0);
    cr_expect_null(sl_linear(t, x, NULL, NULL));
    cr_expect(contains(sl_tape_error(t), "W is NULL"));
    sl_tape_free(t);
    sl_params_free(ps);
}

/* ------------------------------------------------------------------- mlp */

static double act_ref(const char *name, double z) {
    if (!strcmp(name, "tanh")) return tanh(z);
    if (!strcmp(name, "leaky_relu")) return z > 0 ? z : 0.01 * z;
    if (!strcmp(name, "test_cube")) return z * z * z;
    return z; /* none */
}

/* The MLP by hand: x [N, sizes[0]] through every layer of the store. */
static void mlp_ref(sl_params *ps, const char *prefix, int nsizes, const int *sizes,
                    const char *act, const double *x, int N, double *y) {
    double h[64 * 16], tmp[64 * 16];
    memcpy(h, x, (size_t)N * (size_t)sizes[0] * sizeof(double));
    for (int k = 0; k + 1 < nsizes; k++) {
        char wn[64], bn[64];
        snprintf(wn, sizeof wn, "%s.%d.W", prefix, k);
        snprintf(bn, sizeof bn, "%s.%d.b", prefix, k);
        sl_param *W = sl_params_get(ps, wn), *b = sl_params_get(ps, bn);
        cr_assert(W && b, "%s / %s missing", wn, bn);
        linear_ref(h, sl_param_value(W), sl_param_value(b), N, sizes[k], sizes[k + 1], tmp);
        for (int i = 0; i < N * sizes[k + 1]; i++)
            h[i] = k + 2 < nsizes ? act_ref(act, tmp[i]) : tmp[i];
    }
    memcpy(y, h, (size_t)N * (size_t)sizes[nsizes - 1] * sizeof(double));
}

static void check_mlp(const char *act) {
    enum { N = 6 };
    int sizes[4] = {3, 5, 4, 2};
    sl_params *ps = sl_params_new();
    sl_rng r;
    sl_rng_seed(&r, 17);
    sl_mlp *m = sl_mlp_new(ps, "net", 4, sizes, act, (sl_init){.kind = SL_INIT_XAVIER_UNIFORM}, &r);
    cr_assert_not_null(m, "%s", sl_params_error(ps));
    cr_expect_null(sl_params_error(ps));
    cr_expect_eq(sl_mlp_nlayers(m), 3);
    cr_expect_eq(sl_params_count(ps), 6);
    /* names, shapes and creation order */
    const char *names[6] = {"net.0.W", "net.0.b", "net.1.W", "net.1.b", "net.2.W", "net.2.b"};
    sl_param *p = sl_params_next(ps, NULL);
    for (int i = 0; i < 6; i++, p = sl_params_next(ps, p)) {
        cr_assert_not_null(p);
        cr_expect_str_eq(sl_param_name(p), names[i]);
        int k = i / 2;
        if (i % 2 == 0) {
            cr_expect(sl_param_ndim(p) == 2 && sl_param_dims(p)[0] == sizes[k] &&
                      sl_param_dims(p)[1] == sizes[k + 1]);
            cr_expect_eq(sl_mlp_weight(m, k), p);
        } else {
            cr_expect(sl_param_ndim(p) == 1 && sl_param_dims(p)[0] == sizes[k + 1]);
            cr_expect_eq(sl_param_value(p)[0], 0.0, "biases start at zero");
            cr_expect_eq(sl_mlp_bias(m, k), p);
            fill(sl_param_value(p), (size_t)sizes[k + 1], 0.3, (double)k); /* test the broadcast */
        }
    }
    cr_expect_null(sl_mlp_weight(m, 3));
    cr_expect_null(sl_mlp_bias(m, -1));
    double x[N * 3], y[N * 2];
    fill(x, N * 3, 1.5, 0.2);
    mlp_ref(ps, "net", 4, sizes, act ? act : "", x, N, y);
    sl_tape *t = sl_tape_new();
    sl_var *xv = sl_input(t, 2, (int[]){N, 3}, x, SL_GRAD);
    sl_var *out = sl_mlp_forward(t, m, xv);
    cr_assert_eq(sl_tape_status(t), SL_OK, "%s", sl_tape_error(t));
    cr_assert(sl_ndim(out) == 2 && sl_dims(out)[0] == N && sl_dims(out)[1] == 2);
    for (int i = 0; i < N * 2; i++)
        cr_expect(near(sl_value(out)[i], y[i], 1e-13, 1e-14), "%s: y[%d] = %.17g, want %.17g",
                  act ? act : "none", i, sl_value(out)[i], y[i]);
    /* gradients w.r.t. the input and all six parameters */
    sl_var *in[7] = {xv};
    cr_assert_eq(param_leaves(t, in + 1, 6), 6);
    sl_gradcheck_report rep;
    cr_expect_eq(sl_gradcheck(t, out, 7, in, NULL, &rep), SL_OK, "%s: %s %s", act ? act : "none",
                 rep.message, sl_tape_error(t) ? sl_tape_error(t) : "");
    sl_tape_free(t);
    sl_mlp_free(m);
    sl_params_free(ps);
}

Test(layers, mlp_tanh_by_name) { check_mlp("tanh"); }
Test(layers, mlp_leaky_relu_uses_default_alpha) { check_mlp("leaky_relu"); }
Test(layers, mlp_without_activation) { check_mlp(NULL); }

/* A user op: cube, registered at run time and used by name. */
static void cube_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    double *y = sl_out_data(out);
    for (size_t i = 0; i < sl_numel(out); i++) y[i] = x[i] * x[i] * x[i];
}
static void cube_backward(sl_var *out) {
    const sl_var *xv = sl_in(out, 0);
    double *dx = sl_grad_data(xv);
    if (!dx) return;
    const double *x = sl_value(xv), *g = sl_grad(out);
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += g[i] * 3 * x[i] * x[i];
}
static const sl_op cube_op = {
    .name = "test_cube",
    .arity = 1,
    .forward = cube_forward,
    .backward = cube_backward,
    .signature = "test_cube(x)",
    .formula = "a = z^3",
    .derivative = "da/dz = 3z^2",
    .domain = {SL_DOMAIN_REAL},
    .kind = SL_KIND_MAP,
};

Test(layers, mlp_with_a_user_registered_activation) {
    cr_assert_eq(sl_op_register(&cube_op), SL_OK);
    check_mlp("test_cube");
}

Test(layers, mlp_unknown_activation_is_an_error_naming_it) {
    sl_params *ps = sl_params_new();
    sl_rng r;
    sl_rng_seed(&r, 1);
    sl_rng before = r;
    int sizes[3] = {2, 3, 1};
    sl_mlp *m =
        sl_mlp_new(ps, "net", 3, sizes, "no_such_act", (sl_init){.kind = SL_INIT_HE_NORMAL}, &r);
    cr_expect_null(m);
    cr_expect(contains(sl_params_error(ps), "\"no_such_act\""), "%s", sl_params_error(ps));
    cr_expect(contains(sl_params_error(ps), "sl_mlp_new"));
    cr_expect_eq(sl_params_count(ps), 0);
    cr_expect_eq(r.state, before.state);
    /* an op of arity 2 is not an activation */
    cr_expect_null(sl_mlp_new(ps, "net", 3, sizes, "add", (sl_init){0}, &r));
    cr_expect(contains(sl_params_error(ps), "\"add\" takes 2"), "%s", sl_params_error(ps));
    /* nor is an op along an axis: softmax between layers would normalise each
     * unit across the batch; the element-wise ops of every family are fine */
    static const char *const along[] = {"softmax", "log_softmax", "logsumexp", "sum",
                                        "mean",    "max",         "transpose", "reshape"};
    for (size_t i = 0; i < sizeof along / sizeof along[0]; i++) {
        cr_expect_null(sl_mlp_new(ps, "net", 3, sizes, along[i], (sl_init){0}, &r), "%s", along[i]);
        cr_expect(contains(sl_params_error(ps), "is not element-wise"), "%s: %s", along[i],
                  sl_params_error(ps));
    }
    cr_expect_eq(sl_params_count(ps), 0);
    static const char *const fine[] = {"tanh", "relu", "elu", "gelu", "pow", "exp", "neg"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "ok%zu", i);
        sl_mlp *ok = sl_mlp_new(ps, prefix, 3, sizes, fine[i], (sl_init){0}, &r);
        cr_expect_not_null(ok, "%s: %s", fine[i], sl_params_error(ps));
        sl_mlp_free(ok);
    }
    sl_params_free(ps);
}

Test(layers, mlp_bad_arguments) {
    sl_params *ps = sl_params_new();
    sl_rng r;
    sl_rng_seed(&r, 1);
    sl_init z = {.kind = SL_INIT_ZEROS};
    cr_expect_null(sl_mlp_new(ps, "n", 1, (int[]){3}, "tanh", z, &r));
    cr_expect(contains(sl_params_error(ps), "at least 2 sizes"), "%s", sl_params_error(ps));
    cr_expect_null(sl_mlp_new(ps, "n", 3, (int[]){3, 0, 2}, "tanh", z, &r));
    cr_expect(contains(sl_params_error(ps), "sizes[1] = 0"), "%s", sl_params_error(ps));
    cr_expect_null(sl_mlp_new(ps, "", 2, (int[]){3, 2}, "tanh", z, &r));
    cr_expect(contains(sl_params_error(ps), "prefix"), "%s", sl_params_error(ps));
    char longp[70];
    memset(longp, 'p', 69);
    longp[69] = '\0';
    cr_expect_null(sl_mlp_new(ps, longp, 2, (int[]){3, 2}, "tanh", z, &r));
    cr_expect(contains(sl_params_error(ps), "too long"), "%s", sl_params_error(ps));
    cr_expect_null(sl_mlp_new(ps, "n", 2, (int[]){3, 2}, "tanh",
                              (sl_init){.kind = SL_INIT_NORMAL, .b = -1}, &r));
    cr_expect(contains(sl_params_error(ps), "n.0.W"), "%s", sl_params_error(ps));
    cr_expect_null(
        sl_mlp_new(ps, "n", 2, (int[]){3, 2}, "tanh", (sl_init){.kind = SL_INIT_HE_NORMAL}, NULL));
    cr_expect(contains(sl_params_error(ps), "rng is NULL"), "%s", sl_params_error(ps));
    cr_expect_eq(sl_params_count(ps), 0);
    /* a name already taken (by a later layer): nothing is added */
    cr_assert_not_null(sl_param_new(ps, "n.1.b", 1, (int[]){2}, NULL));
    cr_expect_null(sl_mlp_new(ps, "n", 3, (int[]){3, 4, 2}, "tanh", z, &r));
    cr_expect(contains(sl_params_error(ps), "\"n.1.b\" already exists"), "%s", sl_params_error(ps));
    cr_expect_eq(sl_params_count(ps), 1);
    cr_expect_null(sl_mlp_new(NULL, "n", 2, (int[]){3, 2}, "tanh", z, &r));
    sl_mlp_free(NULL);
    sl_params_free(ps);
}

Test(layers, mlp_forward_errors_go_on_the_tape) {
    sl_params *ps = sl_params_new();
    sl_mlp *m = sl_mlp_new(ps, "n", 3, (int[]){3, 4, 2}, "tanh", (sl_init){0}, NULL);
    cr_assert_not_null(m, "%s", sl_params_error(ps));
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){5, 2}, NULL, 0);
    cr_expect_null(sl_mlp_forward(t, m, x));
    cr_expect(contains(sl_tape_error(t), "sl_linear") && contains(sl_tape_error(t), "[5,2]") &&
                  contains(sl_tape_error(t), "[3,4]"),
              "%s", sl_tape_error(t));
    sl_tape_clear(t);
    cr_expect_null(sl_mlp_forward(t, NULL, sl_input(t, 2, (int[]){5, 3}, NULL, 0)));
    cr_expect(contains(sl_tape_error(t), "mlp is NULL"));
    sl_tape_free(t);
    sl_mlp_free(m);
    sl_params_free(ps);
}

/* Out of memory at every allocation of sl_mlp_new: NULL, nothing added, rng
 * unchanged, nothing leaked; then it succeeds. */
Test(layers, mlp_new_is_all_or_nothing_when_memory_runs_out) {
    int sizes[4] = {3, 5, 4, 2};
    for (long fail = 1;; fail++) {
        counting_alloc c = {.fail_at = 0};
        sl_allocator a = counting_allocator(&c);
        sl_params *ps = sl_params_new_with(&a);
        cr_assert_not_null(ps);
        sl_param *keep = sl_param_new(ps, "other", 1, (int[]){2}, NULL);
        cr_assert_not_null(keep);
        sl_rng r;
        sl_rng_seed(&r, 3);
        c.fail_at = c.calls + fail;
        sl_mlp *m =
            sl_mlp_new(ps, "net", 4, sizes, "tanh", (sl_init){.kind = SL_INIT_XAVIER_NORMAL}, &r);
        if (m) {
            cr_expect_eq(sl_params_count(ps), 7);
            sl_mlp_free(m);
            sl_params_free(ps);
            cr_expect_eq(c.live, 0);
            cr_expect_gt(fail, 7, "a run that must allocate at least 7 blocks");
            break;
        }
        cr_expect_eq(sl_params_count(ps), 1, "fail at %ld", fail);
        cr_expect_eq(r.state, 3, "rng restored (fail at %ld)", fail);
        cr_expect(contains(sl_params_error(ps), "out of memory"), "%s", sl_params_error(ps));
        cr_expect_eq(sl_params_next(ps, NULL), keep);
        cr_expect_null(sl_params_next(ps, keep));
        cr_expect_null(sl_params_get(ps, "net.0.W"));
        /* the store still works after the rollback */
        cr_expect_not_null(sl_param_new(ps, "net.0.W", 1, (int[]){1}, NULL));
        sl_params_free(ps);
        cr_expect_eq(c.live, 0, "leak after failing at %ld", fail);
        cr_assert_lt(fail, 1000);
    }
}
