/*
 * optim.c - optimisers over a parameter store: SGD (momentum, dampening,
 * Nesterov, weight decay), Adam and AdamW, each with optional clipping of the
 * gradients by their global L2 norm.
 *
 * The update formulas are PyTorch's (torch.optim.SGD/Adam/AdamW with
 * maximize=False, amsgrad=False, foreach off), written element by element in
 * the order of PyTorch's documentation, in double precision. (PyTorch's Adam
 * forms m with lerp; the two agree to rounding, ~1e-16 relative.)
 *
 * State: the optimiser records the store's parameters at creation and owns
 * one block of state doubles from the store's allocator - per parameter
 * numel (SGD with momentum: the buffer) or 2*numel (Adam: m then v). The
 * step path allocates nothing.
 */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

typedef enum kind { SGD, ADAM, ADAMW } kind;

typedef struct slot {
    sl_param *p;
    double *state; /* SGD: momentum buffer (NULL without momentum); Adam: m, then v */
} slot;

struct sl_optim {
    sl_allocator a;
    sl_params *ps;
    kind kind;
    sl_sgd_opts sgd;
    sl_adam_opts adam;
    double lr, clip_norm, last_norm;
    long steps;
    size_t nslots;
    slot *slots;
    double *state;
    int has_error;
    char msg[256];
};

static int step_fail(sl_optim *o, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int step_fail(sl_optim *o, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->msg, sizeof o->msg, fmt, ap);
    va_end(ap);
    o->has_error = 1;
    return status;
}

sl_sgd_opts sl_sgd_defaults(double lr) { return (sl_sgd_opts){.lr = lr}; }

sl_adam_opts sl_adam_defaults(double lr) {
    return (sl_adam_opts){.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

sl_adam_opts sl_adamw_defaults(double lr) {
    sl_adam_opts o = sl_adam_defaults(lr);
    o.weight_decay = 1e-2;
    return o;
}

/* ---------------------------------------------------- checks and creation */

/* NULL when v is acceptable, else the requirement it breaks. */
static const char *bad_lr(double v) { return isfinite(v) && v > 0 ? NULL : "finite and > 0"; }
static const char *bad_nonneg(double v) { return isfinite(v) && v >= 0 ? NULL : "finite and >= 0"; }
static const char *bad_beta(double v) {
    return isfinite(v) && v >= 0 && v < 1 ? NULL : "in [0, 1)";
}
static const char *bad_unit(double v) {
    return isfinite(v) && v >= 0 && v <= 1 ? NULL : "in [0, 1]";
}

typedef struct check {
    const char *name;
    double value;
    const char *(*bad)(double);
} check;

static bool run_checks(sl_params *ps, const char *fn, const check *c, int n) {
    for (int i = 0; i < n; i++) {
        const char *why = c[i].bad(c[i].value);
        if (why) {
            sl__params_fail(ps, SL_EARG, "%s: %s = %g, must be %s", fn, c[i].name, c[i].value, why);
            return false;
        }
    }
    return true;
}

/* The optimiser with a slot per parameter and per_elem state doubles per
 * element (zeroed). */
static sl_optim *create(sl_params *ps, const char *fn, kind k, size_t per_elem) {
    const sl_allocator *a = sl__params_allocator(ps);
    size_t n = sl_params_count(ps), total = 0;
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p))
        total += sl_param_numel(p); /* each store buffer already fits in memory */
    sl_optim *o = a->alloc(sizeof *o, a->ud);
    slot *slots = o && n ? a->alloc(n * sizeof *slots, a->ud) : NULL;
    double *state = NULL;
    if (per_elem && total) {
        if (total > SIZE_MAX / sizeof(double) / per_elem) {
            state = NULL;
        } else {
            state = o ? a->alloc(total * per_elem * sizeof(double), a->ud) : NULL;
        }
    }
    if (!o || (n && !slots) || (per_elem && total && !state)) {
        a->free(state, a->ud);
        a->free(slots, a->ud);
        a->free(o, a->ud);
        sl__params_fail(ps, SL_ENOMEM,
                        "%s: out of memory for the state of %zu parameters (%zu values)", fn, n,
                        total * per_elem);
        return NULL;
    }
    memset(o, 0, sizeof *o);
    o->a = *a;
    o->ps = ps;
    o->kind = k;
    o->nslots = n;
    o->slots = slots;
    o->state = state;
    o->last_norm = NAN;
    if (state) memset(state, 0, total * per_elem * sizeof(double));
    size_t off = 0, i = 0;
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p), i++) {
        slots[i].p = p;
        slots[i].state = per_elem ? state + off : NULL;
        off += per_elem * sl_param_numel(p);
    }
    return o;
}

sl_optim *sl_optim_sgd(sl_params *ps, const sl_sgd_opts *opts) {
    const char *fn = "sl_optim_sgd";
    if (!ps) return NULL;
    sl__params_ok(ps);
    if (!opts) {
        sl__params_fail(ps, SL_EARG, "%s: opts is NULL (use sl_sgd_defaults(lr))", fn);
        return NULL;
    }
    const check c[] = {
        {"lr", opts->lr, bad_lr},
        {"momentum", opts->momentum, bad_nonneg},
        {"dampening", opts->dampening, bad_unit},
        {"weight_decay", opts->weight_decay, bad_nonneg},
        {"clip_norm", opts->clip_norm, bad_nonneg},
    };
    if (!run_checks(ps, fn, c, (int)(sizeof c / sizeof c[0]))) return NULL;
    if (opts->nesterov != 0 && opts->nesterov != 1) {
        sl__params_fail(ps, SL_EARG, "%s: nesterov = %d, must be 0 or 1", fn, opts->nesterov);
        return NULL;
    }
    if (opts->nesterov && (opts->momentum == 0 || opts->dampening != 0)) {
        sl__params_fail(ps, SL_EARG,
                        "%s: nesterov needs momentum > 0 and dampening 0, got momentum = %g, "
                        "dampening = %g",
                        fn, opts->momentum, opts->dampening);
        return NULL;
    }
    sl_optim *o = create(ps, fn, SGD, opts->momentum != 0 ? 1 : 0);
    if (!o) return NULL;
    o->sgd = *opts;
    o->lr = opts->lr;
    o->clip_norm = opts->clip_norm;
    return o;
}

static sl_optim *adam_new(sl_params *ps, const sl_adam_opts *opts, kind k, const char *fn) {
    if (!ps) return NULL;
    sl__params_ok(ps);
    if (!opts) {
        sl__params_fail(ps, SL_EARG, "%s: opts is NULL (use %s(lr))", fn,
                        k == ADAM ? "sl_adam_defaults" : "sl_adamw_defaults");
        return NULL;
    }
    const check c[] = {
        {"lr", opts->lr, bad_lr},
        {"beta1", opts->beta1, bad_beta},
        {"beta2", opts->beta2, bad_beta},
        {"eps", opts->eps, bad_lr},
        {"weight_decay", opts->weight_decay, bad_nonneg},
        {"clip_norm", opts->clip_norm, bad_nonneg},
    };
    if (!run_checks(ps, fn, c, (int)(sizeof c / sizeof c[0]))) return NULL;
    sl_optim *o = create(ps, fn, k, 2);
    if (!o) return NULL;
    o->adam = *opts;
    o->lr = opts->lr;
    o->clip_norm = opts->clip_norm;
    return o;
}

sl_optim *sl_optim_adam(sl_params *ps, const sl_adam_opts *opts) {
    return adam_new(ps, opts, ADAM, "sl_optim_adam");
}

sl_optim *sl_optim_adamw(sl_params *ps, const sl_adam_opts *opts) {
    return adam_new(ps, opts, ADAMW, "sl_optim_adamw");
}

void sl_optim_free(sl_optim *o) {
    if (!o) return;
    o->a.free(o->state, o->a.ud);
    o->a.free(o->slots, o->a.ud);
    o->a.free(o, o->a.ud);
}

/* ------------------------------------------------------------------ step */

/* SGD on one parameter (see nn.h for the formula). */
static void sgd_update(const sl_optim *o, slot *s) {
    const double lr = o->lr, mu = o->sgd.momentum, damp = o->sgd.dampening,
                 wd = o->sgd.weight_decay;
    const bool first = o->steps == 0, nesterov = o->sgd.nesterov;
    double *p = sl_param_value(s->p), *buf = s->state;
    const double *grad = sl_param_grad(s->p);
    size_t n = sl_param_numel(s->p);
    for (size_t i = 0; i < n; i++) {
        double g = grad[i];
        if (wd != 0) g = g + wd * p[i];
        if (mu != 0) {
            buf[i] = first ? g : mu * buf[i] + (1 - damp) * g;
            g = nesterov ? g + mu * buf[i] : buf[i];
        }
        p[i] = p[i] - lr * g;
    }
}

/* Adam / AdamW on one parameter at step t (1-based). */
static void adam_update(const sl_optim *o, slot *s, double t) {
    const double lr = o->lr, b1 = o->adam.beta1, b2 = o->adam.beta2, eps = o->adam.eps,
                 wd = o->adam.weight_decay;
    const double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    const double step_size = lr / bc1, bc2_sqrt = sqrt(bc2);
    const bool decoupled = o->kind == ADAMW;
    double *p = sl_param_value(s->p);
    const double *grad = sl_param_grad(s->p);
    size_t n = sl_param_numel(s->p);
    double *m = s->state, *v = s->state + n;
    for (size_t i = 0; i < n; i++) {
        double g = grad[i];
        if (decoupled)
            p[i] = p[i] * (1 - lr * wd);
        else if (wd != 0)
            g = g + wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        double denom = sqrt(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] - step_size * (m[i] / denom);
    }
}

/* The gradient's first non-finite element, or else (every one finite, the
 * sum of squares overflowed) its largest in magnitude: *k the slot, *i the
 * index. Returns whether a non-finite one was found. */
static bool find_culprit(const sl_optim *o, size_t *k, size_t *i) {
    double largest = -1;
    for (size_t s = 0; s < o->nslots; s++) {
        const double *g = sl_param_grad(o->slots[s].p);
        size_t n = sl_param_numel(o->slots[s].p);
        for (size_t j = 0; j < n; j++) {
            if (!isfinite(g[j])) {
                *k = s;
                *i = j;
                return true;
            }
            if (fabs(g[j]) > largest) {
                largest = fabs(g[j]);
                *k = s;
                *i = j;
            }
        }
    }
    return false;
}

/* SL_ENONFINITE for a gradient norm total that is not finite, saying why. */
static int norm_fail(sl_optim *o, double total) {
    size_t k = 0, i = 0;
    bool non_finite = find_culprit(o, &k, &i);
    sl_param *p = o->slots[k].p;
    if (non_finite)
        return step_fail(o, SL_ENONFINITE,
                         "sl_optim_step: the gradient norm is %g (first non-finite gradient: "
                         "\"%s\"[%zu] = %g); nothing was updated",
                         total, sl_param_name(p), i, sl_param_grad(p)[i]);
    return step_fail(o, SL_ENONFINITE,
                     "sl_optim_step: every gradient is finite, but their norm overflows to %g "
                     "(the largest: \"%s\"[%zu] = %g); nothing was updated",
                     total, sl_param_name(p), i, sl_param_grad(p)[i]);
}

int sl_optim_step(sl_optim *o) {
    if (!o) return SL_EARG;
    o->has_error = 0;
    size_t now = sl_params_count(o->ps);
    if (now != o->nslots)
        return step_fail(o, SL_ESTATE,
                         "sl_optim_step: the store holds %zu parameters, the optimiser was made "
                         "for %zu (parameters added later have no optimiser state: make the "
                         "optimiser after the model)",
                         now, o->nslots);
    if (o->clip_norm > 0) {
        double sumsq = 0.0;
        for (size_t k = 0; k < o->nslots; k++) {
            const double *g = sl_param_grad(o->slots[k].p);
            size_t n = sl_param_numel(o->slots[k].p);
            for (size_t i = 0; i < n; i++) sumsq += g[i] * g[i];
        }
        double total = sqrt(sumsq);
        o->last_norm = total;
        if (!isfinite(total)) return norm_fail(o, total);
        double scale = o->clip_norm / (total + 1e-6);
        if (scale < 1)
            for (size_t k = 0; k < o->nslots; k++) {
                double *g = sl_param_grad(o->slots[k].p);
                size_t n = sl_param_numel(o->slots[k].p);
                for (size_t i = 0; i < n; i++) g[i] *= scale;
            }
    }
    for (size_t k = 0; k < o->nslots; k++) {
        if (o->kind == SGD)
            sgd_update(o, &o->slots[k]);
        else
            adam_update(o, &o->slots[k], (double)(o->steps + 1));
    }
    o->steps++;
    return SL_OK;
}

const char *sl_optim_error(const sl_optim *o) {
    if (!o) return "sl_optim_error: optimiser is NULL";
    return o->has_error ? o->msg : NULL;
}

int sl_optim_set_lr(sl_optim *o, double lr) {
    if (!o) return SL_EARG;
    if (!(isfinite(lr) && lr > 0)) {
        step_fail(o, SL_EARG, "sl_optim_set_lr: lr = %g, must be finite and > 0", lr);
        return SL_EARG;
    }
    o->has_error = 0;
    o->lr = lr;
    return SL_OK;
}

double sl_optim_lr(const sl_optim *o) { return o ? o->lr : NAN; }
long sl_optim_steps(const sl_optim *o) { return o ? o->steps : 0; }
double sl_optim_grad_norm(const sl_optim *o) { return o ? o->last_norm : NAN; }
