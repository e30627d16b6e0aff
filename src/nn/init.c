/*
 * init.c - initialisers: zeros, constant, uniform, normal, Xavier/Glorot and
 * He/Kaiming, with PyTorch's definitions (torch.nn.init) in slope's [in, out]
 * weight layout.
 *
 * Every random value comes from sl_rng (splitmix64), one draw per element in
 * row-major order: uniform kinds use lo + (hi-lo)*u with u = sl_rng_uniform,
 * normal kinds mean + std*sl_rng_normal. Integer generator, exact uniform,
 * libm's sqrt/log/cos: the same numbers on every platform with a correctly
 * rounded libm, and the same stream for the same seed and call sequence.
 *
 * An init is checked completely (kind, finiteness, ranges, fans) before a
 * single value is written, so a failing call changes nothing.
 */
#include "nn_internal.h"

#include <math.h>

static const char *kind_name(sl_init_kind k) {
    switch (k) {
    case SL_INIT_ZEROS:
        return "SL_INIT_ZEROS";
    case SL_INIT_CONSTANT:
        return "SL_INIT_CONSTANT";
    case SL_INIT_UNIFORM:
        return "SL_INIT_UNIFORM";
    case SL_INIT_NORMAL:
        return "SL_INIT_NORMAL";
    case SL_INIT_XAVIER_UNIFORM:
        return "SL_INIT_XAVIER_UNIFORM";
    case SL_INIT_XAVIER_NORMAL:
        return "SL_INIT_XAVIER_NORMAL";
    case SL_INIT_HE_UNIFORM:
        return "SL_INIT_HE_UNIFORM";
    case SL_INIT_HE_NORMAL:
        return "SL_INIT_HE_NORMAL";
    }
    return "?";
}

int sl_init_fans(int ndim, const int *dims, double *fan_in, double *fan_out) {
    if (ndim < 2 || ndim > SL_MAX_DIMS || !dims) return SL_EARG;
    for (int i = 0; i < ndim; i++)
        if (dims[i] < 1) return SL_EARG; /* no shape has it: fans of -5 are meaningless */
    double receptive = 1.0;
    for (int i = 2; i < ndim; i++) receptive *= dims[i];
    if (fan_in) *fan_in = dims[0] * receptive;
    if (fan_out) *fan_out = dims[1] * receptive;
    return SL_OK;
}

/* The resolved recipe: every value is lo + (hi-lo)*u (uniform) or
 * mean + std*z (normal), or the constant c. */
typedef struct recipe {
    enum { FILL, UNIFORM, NORMAL } how;
    double c, lo, hi, mean, std;
} recipe;

/* Check init for a tensor of shape (ndim, dims) named name and resolve it.
 * On error the store's message names fname, the parameter and the value. */
static int resolve(const sl_params *ps, const char *fname, const char *name, int ndim,
                   const int *dims, sl_init init, const sl_rng *rng, recipe *r) {
    const char *kn = kind_name(init.kind);
    char sh[64];
    switch (init.kind) {
    case SL_INIT_ZEROS:
        *r = (recipe){.how = FILL, .c = 0.0};
        return SL_OK;
    case SL_INIT_CONSTANT:
        if (!isfinite(init.a))
            return sl__params_fail(ps, SL_EARG, "%s: \"%s\": %s value a = %g is not finite", fname,
                                   name, kn, init.a);
        *r = (recipe){.how = FILL, .c = init.a};
        return SL_OK;
    case SL_INIT_UNIFORM:
        if (!isfinite(init.a) || !isfinite(init.b) || init.a > init.b)
            return sl__params_fail(ps, SL_EARG,
                                   "%s: \"%s\": %s needs finite a <= b, got a = %g, b = %g", fname,
                                   name, kn, init.a, init.b);
        if (!isfinite(init.b - init.a)) /* lo + (hi-lo)*u needs the width */
            return sl__params_fail(ps, SL_EARG,
                                   "%s: \"%s\": %s with a = %g, b = %g: the width b - a "
                                   "overflows to inf (the range must be at most DBL_MAX wide)",
                                   fname, name, kn, init.a, init.b);
        *r = (recipe){.how = UNIFORM, .lo = init.a, .hi = init.b};
        break;
    case SL_INIT_NORMAL:
        if (!isfinite(init.a) || !isfinite(init.b) || init.b < 0)
            return sl__params_fail(ps, SL_EARG,
                                   "%s: \"%s\": %s needs a finite mean a and std b >= 0, got a = "
                                   "%g, b = %g",
                                   fname, name, kn, init.a, init.b);
        *r = (recipe){.how = NORMAL, .mean = init.a, .std = init.b};
        break;
    case SL_INIT_XAVIER_UNIFORM:
    case SL_INIT_XAVIER_NORMAL:
    case SL_INIT_HE_UNIFORM:
    case SL_INIT_HE_NORMAL: {
        double fan_in, fan_out;
        if (sl_init_fans(ndim, dims, &fan_in, &fan_out) != SL_OK)
            return sl__params_fail(ps, SL_EARG,
                                   "%s: \"%s\": %s needs rank >= 2 to define fan_in and fan_out, "
                                   "shape is %s",
                                   fname, name, kn, sl__shape_str(sh, ndim, dims));
        bool xavier = init.kind == SL_INIT_XAVIER_UNIFORM || init.kind == SL_INIT_XAVIER_NORMAL;
        bool uniform = init.kind == SL_INIT_XAVIER_UNIFORM || init.kind == SL_INIT_HE_UNIFORM;
        double std;
        if (xavier) {
            double gain = init.a == 0.0 ? 1.0 : init.a;
            if (!isfinite(gain) || gain < 0)
                return sl__params_fail(ps, SL_EARG,
                                       "%s: \"%s\": %s gain a = %g, must be finite and > 0 (0 "
                                       "means 1)",
                                       fname, name, kn, init.a);
            std = gain * sqrt(2.0 / (fan_in + fan_out));
        } else {
            if (!isfinite(init.a))
                return sl__params_fail(ps, SL_EARG,
                                       "%s: \"%s\": %s negative slope a = %g is not finite", fname,
                                       name, kn, init.a);
            double gain = sqrt(2.0 / (1.0 + init.a * init.a));
            std = gain / sqrt(fan_in);
        }
        if (uniform) {
            double bound = sqrt(3.0) * std; /* U[-r, r) has std r/sqrt(3) */
            *r = (recipe){.how = UNIFORM, .lo = -bound, .hi = bound};
        } else {
            *r = (recipe){.how = NORMAL, .mean = 0.0, .std = std};
        }
        break;
    }
    default:
        return sl__params_fail(ps, SL_EARG, "%s: \"%s\": unknown init kind %d", fname, name,
                               (int)init.kind);
    }
    if (!rng)
        return sl__params_fail(ps, SL_EARG, "%s: \"%s\": %s draws random numbers but rng is NULL",
                               fname, name, kn);
    return SL_OK;
}

static void fill(double *v, size_t n, const recipe *r, sl_rng *rng) {
    switch (r->how) {
    case FILL:
        for (size_t i = 0; i < n; i++) v[i] = r->c;
        break;
    case UNIFORM:
        for (size_t i = 0; i < n; i++) v[i] = r->lo + (r->hi - r->lo) * sl_rng_uniform(rng);
        break;
    case NORMAL:
        for (size_t i = 0; i < n; i++) v[i] = r->mean + r->std * sl_rng_normal(rng);
        break;
    }
}

int sl_param_init(sl_param *p, sl_init init, sl_rng *rng) {
    if (!p) return SL_EARG;
    sl_params *ps = sl__param_owner(p);
    sl__params_ok(ps);
    recipe r;
    int rc = resolve(ps, "sl_param_init", sl_param_name(p), sl_param_ndim(p), sl_param_dims(p),
                     init, rng, &r);
    if (rc != SL_OK) return rc;
    fill(sl_param_value(p), sl_param_numel(p), &r, rng);
    return SL_OK;
}

sl_param *sl_param_new_init(sl_params *ps, const char *name, int ndim, const int *dims,
                            sl_init init, sl_rng *rng) {
    if (!ps) return NULL;
    sl__params_ok(ps);
    recipe r = {.how = FILL};
    /* the shape is checked by sl_param_new; only a valid one reaches the fans */
    bool shape_ok = ndim >= 0 && ndim <= SL_MAX_DIMS && (ndim == 0 || dims);
    for (int i = 0; shape_ok && i < ndim; i++) shape_ok = dims[i] >= 1;
    if (shape_ok && resolve(ps, "sl_param_new_init", name ? name : "(null)", ndim, dims, init, rng,
                            &r) != SL_OK)
        return NULL;
    sl_param *p = sl_param_new(ps, name, ndim, dims, NULL);
    if (!p) return NULL;
    fill(sl_param_value(p), sl_param_numel(p), &r, rng);
    return p;
}
