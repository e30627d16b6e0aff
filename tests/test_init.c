/*
 * test_init.c - initialisers: values of the fixed kinds, bounds and moments
 * of the random ones against PyTorch's definitions (Xavier uniform bound
 * sqrt(6/(fan_in+fan_out)), He std sqrt(2/fan_in), ...), the documented
 * draw recipe, determinism for a seed, and clear errors that change nothing.
 */
#include "slope.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

/* Mean and (population) variance of v[0..n-1]. */
static void moments(const double *v, size_t n, double *mean, double *var) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    double q = 0;
    for (size_t i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *var = q / (double)n;
}

/* A [rows, cols] parameter initialised with init from seed. */
static sl_param *make(sl_params *ps, const char *name, int rows, int cols, sl_init init,
                      uint64_t seed) {
    sl_rng r;
    sl_rng_seed(&r, seed);
    int dims[2] = {rows, cols};
    sl_param *p = sl_param_new_init(ps, name, 2, dims, init, &r);
    cr_assert_not_null(p, "%s", sl_params_error(ps));
    cr_assert_null(sl_params_error(ps));
    return p;
}

/* Expect mean ~ mu and std ~ sd over n values (5 standard errors; var within 3%). */
static void expect_moments(const double *v, size_t n, double mu, double sd, const char *what) {
    double mean, var;
    moments(v, n, &mean, &var);
    cr_expect(fabs(mean - mu) < 5 * sd / sqrt((double)n), "%s: mean %g, want %g", what, mean, mu);
    cr_expect(fabs(sqrt(var) / sd - 1) < 0.03, "%s: std %g, want %g", what, sqrt(var), sd);
}

Test(init, zeros_and_constant) {
    sl_params *ps = sl_params_new();
    sl_param *z = make(ps, "z", 3, 4, (sl_init){.kind = SL_INIT_ZEROS}, 1);
    sl_param *c = make(ps, "c", 3, 4, (sl_init){.kind = SL_INIT_CONSTANT, .a = -2.5}, 1);
    for (size_t i = 0; i < 12; i++) {
        cr_expect_eq(sl_param_value(z)[i], 0.0);
        cr_expect_eq(sl_param_value(c)[i], -2.5);
        cr_expect_eq(sl_param_grad(c)[i], 0.0);
    }
    /* no rng needed for the fixed kinds */
    int d[1] = {5};
    sl_param *k =
        sl_param_new_init(ps, "k", 1, d, (sl_init){.kind = SL_INIT_CONSTANT, .a = 7}, NULL);
    cr_assert_not_null(k, "%s", sl_params_error(ps));
    cr_expect_eq(sl_param_value(k)[4], 7.0);
    sl_params_free(ps);
}

Test(init, uniform_bounds_moments_and_recipe) {
    sl_params *ps = sl_params_new();
    double a = -0.5, b = 1.5;
    sl_param *p = make(ps, "u", 400, 500, (sl_init){.kind = SL_INIT_UNIFORM, .a = a, .b = b}, 7);
    const double *v = sl_param_value(p);
    size_t n = sl_param_numel(p);
    for (size_t i = 0; i < n; i++) cr_assert(v[i] >= a && v[i] < b, "v[%zu] = %g", i, v[i]);
    expect_moments(v, n, (a + b) / 2, (b - a) / sqrt(12.0), "uniform");
    /* the documented recipe: a + (b-a)*u, one draw per element, row-major */
    sl_rng r;
    sl_rng_seed(&r, 7);
    for (size_t i = 0; i < 1000; i++) cr_assert_eq(v[i], a + (b - a) * sl_rng_uniform(&r));
    sl_params_free(ps);
}

Test(init, normal_moments_and_recipe) {
    sl_params *ps = sl_params_new();
    sl_param *p = make(ps, "n", 400, 500, (sl_init){.kind = SL_INIT_NORMAL, .a = 3, .b = 0.25}, 9);
    expect_moments(sl_param_value(p), sl_param_numel(p), 3.0, 0.25, "normal");
    sl_rng r;
    sl_rng_seed(&r, 9);
    for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(sl_param_value(p)[i], 3.0 + 0.25 * sl_rng_normal(&r));
    /* std 0 is allowed (PyTorch too): every value is the mean */
    sl_param *q = make(ps, "q", 2, 2, (sl_init){.kind = SL_INIT_NORMAL, .a = 1, .b = 0}, 9);
    cr_expect_eq(sl_param_value(q)[3], 1.0);
    sl_params_free(ps);
}

Test(init, xavier_uniform_bound_is_sqrt_6_over_fans) {
    sl_params *ps = sl_params_new();
    int fin = 300, fout = 700;
    double bound = sqrt(6.0 / (fin + fout));
    sl_param *p = make(ps, "W", fin, fout, (sl_init){.kind = SL_INIT_XAVIER_UNIFORM}, 3);
    const double *v = sl_param_value(p);
    size_t n = sl_param_numel(p);
    double vmax = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(fabs(v[i]) <= bound * (1 + 1e-15), "v[%zu] = %g, bound %g", i, v[i], bound);
        vmax = fmax(vmax, fabs(v[i]));
    }
    cr_expect(vmax > 0.999 * bound, "the bound is reached: %g vs %g", vmax, bound);
    expect_moments(v, n, 0, bound / sqrt(3.0), "xavier_uniform");
    /* gain scales the bound */
    sl_param *g =
        make(ps, "G", fin, fout, (sl_init){.kind = SL_INIT_XAVIER_UNIFORM, .a = 5.0 / 3}, 3);
    for (size_t i = 0; i < 100; i++)
        cr_expect(near(sl_param_value(g)[i], v[i] * 5.0 / 3, 1e-14, 1e-15));
    sl_params_free(ps);
}

Test(init, xavier_normal_std) {
    sl_params *ps = sl_params_new();
    sl_param *p = make(ps, "W", 200, 600, (sl_init){.kind = SL_INIT_XAVIER_NORMAL}, 4);
    expect_moments(sl_param_value(p), sl_param_numel(p), 0, sqrt(2.0 / 800), "xavier_normal");
    sl_params_free(ps);
}

Test(init, he_uses_fan_in_dims0_and_gain_sqrt2) {
    sl_params *ps = sl_params_new();
    int fin = 250, fout = 1000; /* W [in, out]: fan_in is dims[0] */
    sl_param *u = make(ps, "U", fin, fout, (sl_init){.kind = SL_INIT_HE_UNIFORM}, 5);
    double bound = sqrt(6.0 / fin);
    const double *v = sl_param_value(u);
    for (size_t i = 0; i < sl_param_numel(u); i++)
        cr_assert(fabs(v[i]) <= bound * (1 + 1e-15), "v[%zu] = %g, bound %g", i, v[i], bound);
    expect_moments(v, sl_param_numel(u), 0, sqrt(2.0 / fin), "he_uniform");
    sl_param *nn = make(ps, "N", fin, fout, (sl_init){.kind = SL_INIT_HE_NORMAL}, 6);
    expect_moments(sl_param_value(nn), sl_param_numel(nn), 0, sqrt(2.0 / fin), "he_normal");
    /* a = leaky slope: gain sqrt(2/(1+a^2)) */
    sl_param *l = make(ps, "L", fin, fout, (sl_init){.kind = SL_INIT_HE_NORMAL, .a = 1.0}, 6);
    for (size_t i = 0; i < 100; i++)
        cr_expect(near(sl_param_value(l)[i], sl_param_value(nn)[i] / sqrt(2.0), 1e-15, 0));
    sl_params_free(ps);
}

Test(init, fans_in_slope_layout) {
    double fi, fo;
    cr_expect_eq(sl_init_fans(2, (int[]){3, 5}, &fi, &fo), SL_OK);
    cr_expect(fi == 3 && fo == 5);
    cr_expect_eq(sl_init_fans(4, (int[]){3, 5, 2, 7}, &fi, &fo), SL_OK);
    cr_expect(fi == 42 && fo == 70);
    cr_expect_eq(sl_init_fans(1, (int[]){3}, &fi, &fo), SL_EARG);
    cr_expect_eq(sl_init_fans(0, NULL, &fi, &fo), SL_EARG);
    cr_expect_eq(sl_init_fans(5, (int[]){1, 1, 1, 1, 1}, &fi, &fo), SL_EARG);
    cr_expect_eq(sl_init_fans(2, NULL, &fi, &fo), SL_EARG);
    /* a dim < 1 is no shape: SL_EARG, and the outputs are left alone */
    fi = fo = 7;
    cr_expect_eq(sl_init_fans(2, (int[]){-5, 0}, &fi, &fo), SL_EARG);
    cr_expect_eq(sl_init_fans(2, (int[]){3, 0}, &fi, &fo), SL_EARG);
    cr_expect_eq(sl_init_fans(3, (int[]){4, 3, -2}, &fi, &fo), SL_EARG);
    cr_expect_eq(sl_init_fans(4, (int[]){4, 3, 2, 0}, &fi, &fo), SL_EARG);
    cr_expect(fi == 7 && fo == 7, "fan_in %g, fan_out %g", fi, fo);
}

Test(init, same_seed_same_values_other_seed_other_values) {
    sl_params *ps = sl_params_new();
    sl_init in = {.kind = SL_INIT_XAVIER_NORMAL};
    sl_param *a = make(ps, "a", 10, 10, in, 42), *b = make(ps, "b", 10, 10, in, 42);
    sl_param *c = make(ps, "c", 10, 10, in, 43);
    cr_expect(memcmp(sl_param_value(a), sl_param_value(b), 100 * sizeof(double)) == 0);
    cr_expect(memcmp(sl_param_value(a), sl_param_value(c), 100 * sizeof(double)) != 0);
    /* the first values of seed 42 are fixed forever (splitmix64 + Box-Muller) */
    sl_rng r;
    sl_rng_seed(&r, 42);
    double want0 = sqrt(2.0 / 20) * sl_rng_normal(&r);
    cr_expect_eq(sl_param_value(a)[0], want0);
    sl_params_free(ps);
}

Test(init, reinit_in_place) {
    sl_params *ps = sl_params_new();
    sl_param *p = make(ps, "p", 4, 4, (sl_init){.kind = SL_INIT_ZEROS}, 1);
    sl_rng r;
    sl_rng_seed(&r, 11);
    cr_assert_eq(sl_param_init(p, (sl_init){.kind = SL_INIT_UNIFORM, .a = 1, .b = 2}, &r), SL_OK);
    cr_expect_null(sl_params_error(ps));
    for (int i = 0; i < 16; i++) cr_expect(sl_param_value(p)[i] >= 1 && sl_param_value(p)[i] < 2);
    sl_params_free(ps);
}

/* Each bad init: SL_EARG from sl_param_init with the values untouched, NULL
 * from sl_param_new_init with nothing added, and a message with `needle`. */
static void expect_bad(sl_init bad, int ndim, const int *dims, sl_rng *rng, const char *needle) {
    sl_params *ps = sl_params_new();
    sl_param *p = sl_param_new(ps, "w.0", ndim, dims, NULL);
    cr_assert_not_null(p);
    for (size_t i = 0; i < sl_param_numel(p); i++) sl_param_value(p)[i] = 0.5 + (double)i;
    cr_expect_eq(sl_param_init(p, bad, rng), SL_EARG);
    const char *msg = sl_params_error(ps);
    cr_expect(contains(msg, "sl_param_init") && contains(msg, "w.0") && contains(msg, needle),
              "message: %s (want %s)", msg, needle);
    for (size_t i = 0; i < sl_param_numel(p); i++)
        cr_expect_eq(sl_param_value(p)[i], 0.5 + (double)i);
    cr_expect_null(sl_param_new_init(ps, "w.1", ndim, dims, bad, rng));
    cr_expect_eq(sl_params_count(ps), 1);
    cr_expect(contains(sl_params_error(ps), "w.1"), "%s", sl_params_error(ps));
    cr_expect(contains(sl_params_error(ps), needle), "%s", sl_params_error(ps));
    sl_params_free(ps);
}

Test(init, bad_kinds_and_values_are_clear_errors) {
    sl_rng r;
    sl_rng_seed(&r, 1);
    int d2[2] = {3, 4}, d1[1] = {4};
    expect_bad((sl_init){.kind = SL_INIT_NORMAL, .a = 0, .b = -1}, 2, d2, &r, "std b >= 0");
    expect_bad((sl_init){.kind = SL_INIT_UNIFORM, .a = 2, .b = 1}, 2, d2, &r, "a <= b");
    expect_bad((sl_init){.kind = SL_INIT_UNIFORM, .a = NAN, .b = 1}, 2, d2, &r, "a = nan");
    /* both finite and a <= b: the width b - a = 2e308 is what overflows */
    expect_bad((sl_init){.kind = SL_INIT_UNIFORM, .a = -1e308, .b = 1e308}, 2, d2, &r,
               "a = -1e+308, b = 1e+308: the width b - a overflows to inf");
    expect_bad((sl_init){.kind = SL_INIT_CONSTANT, .a = INFINITY}, 2, d2, &r, "not finite");
    expect_bad((sl_init){.kind = SL_INIT_XAVIER_UNIFORM, .a = -1}, 2, d2, &r, "gain");
    expect_bad((sl_init){.kind = SL_INIT_HE_NORMAL, .a = NAN}, 2, d2, &r, "not finite");
    expect_bad((sl_init){.kind = (sl_init_kind)99}, 2, d2, &r, "unknown init kind 99");
    expect_bad((sl_init){.kind = SL_INIT_XAVIER_NORMAL}, 1, d1, &r, "rank >= 2");
    expect_bad((sl_init){.kind = SL_INIT_HE_UNIFORM}, 1, d1, &r, "[4]");
    expect_bad((sl_init){.kind = SL_INIT_NORMAL, .a = 0, .b = 1}, 2, d2, NULL, "rng is NULL");
}

Test(init, duplicate_name_and_shape_conflict) {
    sl_params *ps = sl_params_new();
    sl_rng r;
    sl_rng_seed(&r, 1);
    int d[2] = {2, 3}, e[2] = {3, 2};
    cr_assert_not_null(sl_param_new_init(ps, "W", 2, d, (sl_init){.kind = SL_INIT_ZEROS}, &r));
    cr_expect_null(sl_param_new_init(ps, "W", 2, e, (sl_init){.kind = SL_INIT_ZEROS}, &r));
    const char *msg = sl_params_error(ps);
    cr_expect(contains(msg, "duplicate") && contains(msg, "\"W\"") && contains(msg, "[2,3]") &&
                  contains(msg, "[3,2]"),
              "%s", msg);
    cr_expect_eq(sl_params_count(ps), 1);
    /* a bad shape is reported by sl_param_new's own check */
    int bad[2] = {2, 0};
    cr_expect_null(
        sl_param_new_init(ps, "V", 2, bad, (sl_init){.kind = SL_INIT_XAVIER_UNIFORM}, &r));
    cr_expect(contains(sl_params_error(ps), "dims[1] = 0"), "%s", sl_params_error(ps));
    cr_expect_eq(sl_param_init(NULL, (sl_init){0}, &r), SL_EARG);
    cr_expect_null(sl_param_new_init(NULL, "x", 0, NULL, (sl_init){0}, NULL));
    sl_params_free(ps);
}
