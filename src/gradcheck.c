/*
 * gradcheck.c - finite-difference checks of the tape's gradients.
 *
 * sl_gradcheck compares the full Jacobian of y with respect to chosen leaves:
 * the analytic one row by row (one reverse sweep per output element, seeded
 * with a unit vector) and the numeric one column by column (central
 * differences: perturb one leaf element by +-eps and replay the tape). Leaves'
 * values and gradients are restored afterwards.
 *
 * sl_gradcheck_op builds a fresh tape per case, draws inputs from the op's
 * declared domain with a seeded RNG and runs sl_gradcheck on it.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define DEFAULT_EPS 1e-6
#define DEFAULT_ATOL 1e-5
#define DEFAULT_RTOL 1e-3

typedef struct settings {
    double eps, atol, rtol;
    uint64_t seed;
    int case_index, plain, fast, projections;
} settings;

static settings settings_of(const sl_gradcheck_opts *o) {
    settings s = {DEFAULT_EPS, DEFAULT_ATOL, DEFAULT_RTOL, 42, -1, 0, 0, 8};
    if (o) {
        if (o->eps > 0) s.eps = o->eps;
        if (o->atol > 0) s.atol = o->atol;
        if (o->rtol > 0) s.rtol = o->rtol;
        if (o->seed) s.seed = o->seed;
        if (o->projections > 0) s.projections = o->projections;
        s.case_index = o->case_index;
        s.plain = o->plain;
        s.fast = o->fast;
    }
    return s;
}

static void report_reset(sl_gradcheck_report *r) {
    memset(r, 0, sizeof *r);
    r->ok = 1;
    r->failed = "";
    r->worst_input = -1;
    r->forward = NAN;
    r->taylor_order = NAN;
}

/* Score of one Jacobian entry: error over its allowance; > 1 fails, NaN -> inf. */
static double score_of(double a, double n, const settings *s) {
    double err = fabs(a - n);
    if (!(err == err) || !isfinite(a) || !isfinite(n)) return INFINITY;
    return err / (s->atol + s->rtol * fabs(n));
}

/* Reverse and forward mode compute the same numbers by different roads: they
 * must agree to rounding, whatever the step. */
static bool modes_agree(double a, double f) {
    return fabs(a - f) <= 1e-10 + 1e-8 * fmax(fabs(a), fabs(f));
}

/* Which of the three is the odd one out, given a (reverse), f (forward), n
 * (numeric) and which pairs agree. */
static const char *verdict(bool vjp_fd, bool jvp_fd, bool modes, double a, double f, double n) {
    if (vjp_fd && jvp_fd && modes) return "";
    if (!modes) { /* the modes differ: the one farther from the differences is wrong */
        if (vjp_fd != jvp_fd) return vjp_fd ? "jvp" : "vjp";
        return fabs(a - n) > fabs(f - n) ? "vjp" : "jvp";
    }
    return "fd"; /* both modes agree with each other, not with the differences */
}

/* Record one Jacobian entry: a reverse mode, f forward mode (NaN: not
 * checked), n finite differences. */
static void note_entry(sl_gradcheck_report *r, double *worst_score, int input, size_t elem,
                       size_t outi, double a, double f, double n, const settings *s) {
    double err = fabs(a - n), rel = err / fmax(fabs(n), s->atol);
    double sc = score_of(a, n, s);
    bool have_f = !isnan(f) || isnan(a);
    bool vjp_fd = sc <= 1.0, jvp_fd = !have_f || score_of(f, n, s) <= 1.0;
    bool modes = !have_f || modes_agree(a, f);
    if (have_f && !modes) sc = fmax(sc, 2.0); /* a mode mismatch outranks a passing entry */
    if (have_f && !(fabs(a - f) <= r->max_mode_err)) r->max_mode_err = fabs(a - f);
    r->nchecked++;
    if (!(err <= r->max_abs_err)) r->max_abs_err = err; /* NaN sticks */
    if (!(rel <= r->max_rel_err)) r->max_rel_err = rel;
    const char *v = verdict(vjp_fd, jvp_fd, modes, a, f, n);
    if (v[0] && r->ok) {
        r->ok = 0;
        r->failed = v;
    }
    if (r->worst_input < 0 || sc > *worst_score) {
        *worst_score = sc;
        r->worst_input = input;
        r->worst_elem = elem;
        r->worst_out = outi;
        r->analytic = a;
        r->forward = f;
        r->numeric = n;
        r->abs_err = err;
        r->rel_err = rel;
        if (v[0]) r->failed = v;
    }
}

static bool is_grad_leaf(const sl_var *v) {
    return (v->flags & SL__NODE_LEAF) && (v->flags & SL__NODE_GRAD);
}

/* Working state of one sl_gradcheck call. */
typedef struct check {
    sl_tape *t;
    sl_var *y;
    int nin;
    sl_var *const *in;
    settings s;
    size_t m, total; /* outputs, input elements */
    bool jvp;        /* every op on the path has a tangent rule */
    double *yp, *ym, *seed, *dy;
    double **tan;    /* per input: a tangent buffer */
    double **x0;     /* per input: its values at entry, restored exactly */
} check;

/* Every input back to its values at entry, bit for bit, and every node
 * recomputed from them. */
static int restore_inputs(check *c) {
    for (int k = 0; k < c->nin; k++)
        memcpy(c->in[k]->val, c->x0[k], c->in[k]->n * sizeof(double));
    return sl_forward(c->t);
}

/* f(x + h e) for input k, element e: y's values into out. */
static int eval_at(check *c, int k, size_t e, double h, double *out) {
    sl_var *x = c->in[k];
    const double orig = x->val[e];
    x->val[e] = orig + h;
    int rc = sl_forward(c->t);
    x->val[e] = orig;
    memcpy(out, c->y->val, c->m * sizeof(double));
    return rc;
}

/* Column (k, e) of the Jacobian by central differences: D(h) = (f(x+h)-f(x-h))/2h,
 * with Richardson extrapolation (4 D(h/2) - D(h)) / 3 unless plain. Step h
 * scales with |x_e|. */
static int fd_column(check *c, int k, size_t e, double *col) {
    const double h = c->s.eps * fmax(1.0, fabs(c->in[k]->val[e]));
    int rc = eval_at(c, k, e, h, c->yp);
    if (rc == SL_OK) rc = eval_at(c, k, e, -h, c->ym);
    for (size_t j = 0; j < c->m; j++) col[j] = (c->yp[j] - c->ym[j]) / (2.0 * h);
    if (c->s.plain || rc != SL_OK) return rc;
    rc = eval_at(c, k, e, h / 2, c->yp);
    if (rc == SL_OK) rc = eval_at(c, k, e, -h / 2, c->ym);
    for (size_t j = 0; j < c->m; j++) col[j] = (4.0 * (c->yp[j] - c->ym[j]) / h - col[j]) / 3.0;
    return rc;
}

/* Forward mode along one tangent per input (their current contents). */
static int jvp_along(check *c, double *out) {
    return sl_jvp(c->t, c->y, c->nin, c->in, (const double *const *)c->tan, out);
}

static void fill_uniform(sl_rng *rng, double *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = 2.0 * sl_rng_uniform(rng) - 1.0;
}

/* <v, J u> by forward mode against <J^T v, u> by reverse mode: no step at all. */
static int dot_test(check *c, sl_rng *rng, sl_gradcheck_report *r) {
    for (int k = 0; k < c->nin; k++) fill_uniform(rng, c->tan[k], c->in[k]->n);
    fill_uniform(rng, c->seed, c->m);
    int rc = jvp_along(c, c->dy);
    if (rc != SL_OK) return rc;
    double fwd = 0.0, rev = 0.0, scale = 0.0;
    for (size_t j = 0; j < c->m; j++) fwd += c->seed[j] * c->dy[j];
    for (int k = 0; k < c->nin; k++) memset(c->in[k]->grad, 0, c->in[k]->n * sizeof(double));
    rc = sl__sweep(c->t, c->y, c->seed, "sl_gradcheck");
    for (int k = 0; k < c->nin && rc == SL_OK; k++)
        for (size_t e = 0; e < c->in[k]->n; e++) {
            rev += c->in[k]->grad[e] * c->tan[k][e];
            scale += fabs(c->in[k]->grad[e] * c->tan[k][e]);
        }
    r->dot_rel_err = fabs(fwd - rev) / fmax(scale, 1e-300);
    if (!(r->dot_rel_err <= 1e-9) && r->ok) {
        r->ok = 0;
        r->failed = "dot";
        snprintf(r->message, sizeof r->message,
                 "dot-product test: <v, J u> = %.17g by forward mode but <J^T v, u> = %.17g by "
                 "reverse mode (relative difference %.3g): the tangent and backward rules are "
                 "inconsistent",
                 fwd, rev, r->dot_rel_err);
    }
    return rc;
}

/* phi(x + h u) with phi = <v, f>, for the direction held in c->tan. */
static int phi_at(check *c, double h, double *phi) {
    for (int k = 0; k < c->nin; k++)
        for (size_t e = 0; e < c->in[k]->n; e++)
            c->in[k]->val[e] = c->x0[k][e] + h * c->tan[k][e];
    int rc = sl_forward(c->t);
    for (int k = 0; k < c->nin; k++)
        memcpy(c->in[k]->val, c->x0[k], c->in[k]->n * sizeof(double));
    double s = 0.0;
    for (size_t j = 0; j < c->m; j++) s += c->seed[j] * c->y->val[j];
    *phi = s;
    return rc;
}

/* The order test: with phi = <v, f> and g = grad phi . u from reverse mode,
 * the remainder r(h) = |phi(x+hu) - phi(x) - h g| shrinks like h^2 when g is
 * right and like h when it is wrong, however small the error: a gradient off
 * by 1e-4 relative shows order 1 once h is small enough that the error term
 * h*1e-4*g outgrows h^2. So h is halved from 1e-2 down to ~1e-9 and the
 * verdict is the median order of the three smallest steps whose remainder
 * stands clear of rounding noise (1e4 ulps of the terms of phi). */
static int order_test(check *c, double g, double phi0, double scale, sl_gradcheck_report *r) {
    enum { STEPS = 24 };
    double rem[STEPS], h = 1e-2, orders[STEPS];
    int rc = SL_OK, n = 0;
    const double noise = 1e4 * 2.220446049250313e-16 * fmax(scale, 1e-300);
    for (int i = 0; i < STEPS && rc == SL_OK; i++, h /= 2) {
        double phi;
        rc = phi_at(c, h, &phi);
        rem[i] = fabs(phi - phi0 - h * g);
    }
    for (int i = 0; i + 1 < STEPS; i++)
        if (rem[i + 1] > noise && rem[i] > rem[i + 1]) orders[n++] = log2(rem[i] / rem[i + 1]);
    if (n == 0) { /* phi is linear along u (or flat): no remainder to measure */
        r->taylor_order = NAN;
        return rc;
    }
    const int first = n > 3 ? n - 3 : 0, cnt = n - first; /* the smallest valid steps */
    double *o = orders + first;
    for (int i = 1; i < cnt; i++) /* sort them for the median */
        for (int j = i; j > 0 && o[j] < o[j - 1]; j--) {
            double tmp = o[j];
            o[j] = o[j - 1];
            o[j - 1] = tmp;
        }
    r->taylor_order = o[cnt / 2];
    if (r->taylor_order < 1.5 && r->ok) {
        r->ok = 0;
        r->failed = "order";
        snprintf(r->message, sizeof r->message,
                 "order test: the Taylor remainder phi(x+hu) - phi(x) - h grad.u shrinks like "
                 "h^%.2f, not h^2, along a random direction: the gradient is wrong",
                 r->taylor_order);
    }
    return rc;
}

/* The full check: every Jacobian entry three ways. */
static int full_check(check *c, double *J, double *Jf, sl_gradcheck_report *r) {
    int rc = SL_OK;
    const size_t m = c->m, total = c->total;
    /* reverse mode: row j of J is the gradient of y[j] */
    memset(c->seed, 0, m * sizeof(double));
    for (size_t j = 0; j < m && rc == SL_OK; j++) {
        for (int k = 0; k < c->nin; k++) memset(c->in[k]->grad, 0, c->in[k]->n * sizeof(double));
        c->seed[j] = 1.0;
        rc = sl__sweep(c->t, c->y, c->seed, "sl_gradcheck");
        c->seed[j] = 0.0;
        size_t off = 0;
        for (int k = 0; k < c->nin && rc == SL_OK; k++) {
            memcpy(J + j * total + off, c->in[k]->grad, c->in[k]->n * sizeof(double));
            off += c->in[k]->n;
        }
    }
    /* forward mode: column (k, e) of Jf along the unit tangent e_(k,e) */
    if (c->jvp) {
        for (int k = 0; k < c->nin; k++) memset(c->tan[k], 0, c->in[k]->n * sizeof(double));
        size_t off = 0;
        for (int k = 0; k < c->nin && rc == SL_OK; k++) {
            for (size_t e = 0; e < c->in[k]->n && rc == SL_OK; e++) {
                c->tan[k][e] = 1.0;
                rc = jvp_along(c, c->dy);
                c->tan[k][e] = 0.0;
                for (size_t j = 0; j < m; j++) Jf[j * total + off + e] = c->dy[j];
            }
            off += c->in[k]->n;
        }
    }
    /* finite differences, column by column, compared entry by entry */
    double worst = -1.0;
    size_t off = 0;
    for (int k = 0; k < c->nin && rc == SL_OK; k++) {
        for (size_t e = 0; e < c->in[k]->n && rc == SL_OK; e++) {
            rc = fd_column(c, k, e, c->dy);
            for (size_t j = 0; j < m && rc == SL_OK; j++) {
                const size_t at = j * total + off + e;
                note_entry(r, &worst, k, e, j, J[at], c->jvp ? Jf[at] : NAN, c->dy[j], &c->s);
            }
        }
        off += c->in[k]->n;
    }
    return rc;
}

/* The fast check: P random projections v^T J u, from reverse mode, forward
 * mode and a directional central difference; SL_EGRAD at the first failure. */
static int fast_check(check *c, sl_rng *rng, sl_gradcheck_report *r) {
    int rc = SL_OK;
    double worst = -1.0;
    for (int p = 0; p < c->s.projections && rc == SL_OK; p++) {
        for (int k = 0; k < c->nin; k++) fill_uniform(rng, c->tan[k], c->in[k]->n);
        fill_uniform(rng, c->seed, c->m);
        double fwd = NAN, rev = 0.0, plus = NAN, minus = NAN;
        if (c->jvp) {
            rc = jvp_along(c, c->dy);
            fwd = 0.0;
            for (size_t j = 0; j < c->m; j++) fwd += c->seed[j] * c->dy[j];
        }
        for (int k = 0; k < c->nin; k++) memset(c->in[k]->grad, 0, c->in[k]->n * sizeof(double));
        if (rc == SL_OK) rc = sl__sweep(c->t, c->y, c->seed, "sl_gradcheck");
        for (int k = 0; k < c->nin && rc == SL_OK; k++)
            for (size_t e = 0; e < c->in[k]->n; e++) rev += c->in[k]->grad[e] * c->tan[k][e];
        const double h = c->s.eps;
        if (rc == SL_OK) rc = phi_at(c, h, &plus);
        if (rc == SL_OK) rc = phi_at(c, -h, &minus);
        double num = (plus - minus) / (2.0 * h);
        if (!c->s.plain && rc == SL_OK) {
            double p2, m2;
            rc = phi_at(c, h / 2, &p2);
            if (rc == SL_OK) rc = phi_at(c, -h / 2, &m2);
            num = (4.0 * (p2 - m2) / h - num) / 3.0;
        }
        note_entry(r, &worst, -1, (size_t)p, 0, rev, fwd, num, &c->s);
        if (!r->ok) break;
    }
    return rc;
}

int sl_gradcheck(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs,
                 const sl_gradcheck_opts *opts, sl_gradcheck_report *report) {
    sl_gradcheck_report local;
    sl_gradcheck_report *r = report ? report : &local;
    report_reset(r);
    settings s = settings_of(opts);
    if (!t) return SL_EARG;
    if (t->status != SL_OK) return t->status;
    if (!y || y->tape != t || y->id >= t->n || t->nodes[y->id] != y)
        return sl__fail(t, SL_EARG, "sl_gradcheck: y is NULL or not a node of this tape");
    if (nin < 1 || !inputs) return sl__fail(t, SL_EARG, "sl_gradcheck: nin = %d, need >= 1", nin);
    check c = {.t = t, .y = y, .nin = nin, .in = inputs, .s = s, .m = y->n, .jvp = true};
    size_t maxn = 0;
    for (int k = 0; k < nin; k++) {
        const sl_var *x = inputs[k];
        if (!x || x->tape != t)
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] is NULL or from another tape", k);
        if (!(x->flags & SL__NODE_LEAF))
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] (a %s node) is not a leaf", k,
                            x->op->name);
        if (!(x->flags & SL__NODE_GRAD))
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] was made without SL_GRAD", k);
        for (int j = 0; j < k; j++)
            if (inputs[j] == x)
                return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] repeats inputs[%d]", k, j);
        c.total += x->n;
        if (x->n > maxn) maxn = x->n;
    }
    for (size_t i = 0; i <= y->id; i++)
        if (t->nodes[i]->op && !t->nodes[i]->op->jvp) c.jvp = false;
    const size_t m = c.m, total = c.total;
    const bool fast = s.fast > 0 || (s.fast == 0 && (double)m * (double)total > 250000.0);
    /* scratch: Jacobians (reverse, forward; full check only), yp ym seed dy (m
     * each), the tangents (total), a copy of every gradient-carrying leaf's
     * gradient (restored at the end), and nin tangent pointers */
    size_t leafgrad = 0;
    for (size_t i = 0; i < t->n; i++)
        if (is_grad_leaf(t->nodes[i])) leafgrad += t->nodes[i]->n;
    double jac = fast ? 0.0 : 2.0 * (double)m * (double)total;
    double need = jac + 4.0 * (double)m + 2.0 * (double)total + (double)leafgrad + 2.0 * nin;
    if (need * sizeof(double) > (double)(SIZE_MAX / 2))
        return sl__fail(t, SL_ENOMEM, "sl_gradcheck: Jacobian of %zu x %zu is too large", m, total);
    double *buf = t->arena.a.alloc((size_t)need * sizeof(double) + 1, t->arena.a.ud);
    if (!buf)
        return sl__fail(t, SL_ENOMEM, "sl_gradcheck: out of memory for a %zu x %zu Jacobian", m,
                        total);
    double *J = buf, *Jf = J + (fast ? 0 : m * total), *p = Jf + (fast ? 0 : m * total);
    c.yp = p, c.ym = p + m, c.seed = p + 2 * m, c.dy = p + 3 * m;
    double *tanbuf = p + 4 * m, *x0buf = tanbuf + total, *saved = x0buf + total;
    c.tan = (double **)(void *)(saved + leafgrad);
    c.x0 = c.tan + nin;
    for (size_t k = 0, off = 0; k < (size_t)nin; off += inputs[k]->n, k++) {
        c.tan[k] = tanbuf + off;
        c.x0[k] = x0buf + off;
        memcpy(c.x0[k], inputs[k]->val, inputs[k]->n * sizeof(double));
    }
    double *sp = saved;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (is_grad_leaf(v)) { /* no buffer yet: the sweep will make one; restore zeros */
            if (v->grad)
                memcpy(sp, v->grad, v->n * sizeof(double));
            else
                memset(sp, 0, v->n * sizeof(double));
            sp += v->n;
        }
    }
    r->fast = fast;
    r->jvp_checked = c.jvp;
    r->forward = NAN;
    r->taylor_order = NAN;
    sl_rng rng;
    sl_rng_seed(&rng, s.seed);
    /* first the checks that need no step: the dot test (forward mode needed),
     * and the reverse-mode derivative along its direction for the order test */
    int rc = sl__sweep(t, y, NULL, "sl_gradcheck"); /* every leaf gets a buffer */
    if (rc == SL_OK && c.jvp) rc = dot_test(&c, &rng, r);
    if (rc == SL_OK) {
        if (!c.jvp) { /* the order test still needs a direction */
            for (int k = 0; k < nin; k++) fill_uniform(&rng, c.tan[k], inputs[k]->n);
            fill_uniform(&rng, c.seed, m);
        }
        for (int k = 0; k < nin; k++) memset(inputs[k]->grad, 0, inputs[k]->n * sizeof(double));
        rc = sl__sweep(t, y, c.seed, "sl_gradcheck");
        double g = 0.0, phi0 = 0.0, scale = 0.0;
        for (int k = 0; k < nin && rc == SL_OK; k++)
            for (size_t e = 0; e < inputs[k]->n; e++) g += inputs[k]->grad[e] * c.tan[k][e];
        for (size_t j = 0; j < m; j++) {
            phi0 += c.seed[j] * y->val[j];
            scale += fabs(c.seed[j] * y->val[j]);
        }
        if (rc == SL_OK) rc = order_test(&c, g, phi0, scale, r);
        if (rc == SL_OK) rc = restore_inputs(&c);
    }
    char pre[512];
    snprintf(pre, sizeof pre, "%s", r->message); /* a dot/order failure's sentence */
    int pre_ok = r->ok;
    const char *pre_failed = r->failed;
    if (rc == SL_OK && fast) {
        rc = fast_check(&c, &rng, r);
        if (rc == SL_OK) rc = restore_inputs(&c);
        if (rc == SL_OK && !r->ok) {
            /* fall back to the full Jacobian to name the worst element */
            double *jb = t->arena.a.alloc(2 * m * total * sizeof(double) + 1, t->arena.a.ud);
            if (jb) {
                sl_gradcheck_report full;
                report_reset(&full);
                full.forward = NAN;
                rc = full_check(&c, jb, jb + m * total, &full);
                full.fast = 1;
                full.jvp_checked = r->jvp_checked;
                full.dot_rel_err = r->dot_rel_err;
                full.taylor_order = r->taylor_order;
                full.ok = 0;
                if (!full.failed || !full.failed[0]) full.failed = r->failed;
                *r = full;
                t->arena.a.free(jb, t->arena.a.ud);
            }
        }
    } else if (rc == SL_OK) {
        rc = full_check(&c, J, Jf, r);
    }
    /* an element that fails is the most useful thing to name; the step-free
     * verdicts (dot, order) stand when every element passed */
    bool element_failed = !r->ok;
    if (!pre_ok && !element_failed) {
        r->ok = 0;
        r->failed = pre_failed;
    }
    int frc = restore_inputs(&c); /* every node back to the unperturbed values */
    if (rc == SL_OK) rc = frc;
    sp = saved;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (is_grad_leaf(v)) {
            if (v->grad) memcpy(v->grad, sp, v->n * sizeof(double));
            sp += v->n;
        }
    }
    t->arena.a.free(buf, t->arena.a.ud);
    if (rc != SL_OK) return rc;
    if (!r->failed) r->failed = "";
    if (!r->ok) {
        if (!element_failed || r->worst_input < 0)
            snprintf(r->message, sizeof r->message, "%s", pre);
        else
            snprintf(r->message, sizeof r->message,
                     "%s disagrees at input %d element %zu (output element %zu): analytic (reverse) %.17g, "
                     "forward %.17g, numeric %.17g (abs err %.3g, rel err %.3g; allowed %.3g + "
                     "%.3g*|numeric|)%s",
                     !strcmp(r->failed, "jvp")   ? "the tangent rule (forward mode)"
                     : !strcmp(r->failed, "fd") ? "finite differences (vs both modes)"
                                                : "the backward rule (reverse mode)",
                     r->worst_input, r->worst_elem, r->worst_out, r->analytic, r->forward,
                     r->numeric, r->abs_err, r->rel_err, s.atol, s.rtol,
                     pre_ok ? "" : "; the step-free checks failed too");
        return SL_EGRAD;
    }
    return SL_OK;
}

/* ---------------------------------------------------------- every-op check */

/* Default cases of the generic kinds: scalars, vectors, matrices, rank 4,
 * and for binary ops every broadcasting pattern. */
static const sl_op_case map_cases[] = {
    {.shape = {{0}}},
    {.shape = {{1, 5}}},
    {.shape = {{2, 2, 3}}},
    {.shape = {{4, 2, 1, 3, 2}}},
};
static const sl_op_case zip_cases[] = {
    {.shape = {{0}, {0}}},
    {.shape = {{1, 4}, {1, 4}}},
    {.shape = {{2, 2, 3}, {1, 3}}},
    {.shape = {{2, 2, 1}, {2, 1, 3}}},
    {.shape = {{3, 3, 1, 2}, {0}}},
    {.shape = {{0}, {2, 2, 3}}},
    {.shape = {{4, 2, 1, 3, 1}, {4, 1, 2, 1, 4}}},
};
#define NELEM(a) ((int)(sizeof a / sizeof a[0]))

int sl_op_ncases(const sl_op *op) {
    if (!op) return 0;
    switch (op->kind) {
    case SL_KIND_MAP:
        return NELEM(map_cases);
    case SL_KIND_ZIP:
        return NELEM(zip_cases);
    default:
        return op->cases ? op->ncases : 0;
    }
}

static const sl_op_case *case_at(const sl_op *op, int i, sl_attrs *attrs) {
    const sl_op_case *c;
    switch (op->kind) {
    case SL_KIND_MAP:
        c = &map_cases[i];
        *attrs = op->defaults;
        return c;
    case SL_KIND_ZIP:
        c = &zip_cases[i];
        *attrs = op->defaults;
        return c;
    default:
        c = &op->cases[i];
        *attrs = c->attrs;
        return c;
    }
}

static void fill(sl_rng *rng, sl_domain d, double *v, size_t n, int classes) {
    switch (d) {
    case SL_DOMAIN_NONZERO:
        for (size_t i = 0; i < n; i++) {
            double u = 0.2 + 1.8 * sl_rng_uniform(rng);
            v[i] = sl_rng_uniform(rng) < 0.5 ? -u : u;
        }
        break;
    case SL_DOMAIN_POSITIVE:
        for (size_t i = 0; i < n; i++) v[i] = 0.2 + 1.8 * sl_rng_uniform(rng);
        break;
    case SL_DOMAIN_UNIT:
        for (size_t i = 0; i < n; i++) v[i] = 0.05 + 0.9 * sl_rng_uniform(rng);
        break;
    case SL_DOMAIN_DISTINCT: /* a shuffled grid 0.25 apart, jittered by < 0.1 */
        for (size_t i = 0; i < n; i++) v[i] = 0.25 * ((double)i - (double)n / 2.0);
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(sl_rng_next(rng) % i);
            double tmp = v[i - 1];
            v[i - 1] = v[j];
            v[j] = tmp;
        }
        for (size_t i = 0; i < n; i++) v[i] += 0.1 * sl_rng_uniform(rng);
        break;
    case SL_DOMAIN_LABELS:
        for (size_t i = 0; i < n; i++)
            v[i] = (double)(sl_rng_next(rng) % (uint64_t)(classes > 0 ? classes : 1));
        break;
    default: /* SL_DOMAIN_REAL */
        for (size_t i = 0; i < n; i++) v[i] = -2.0 + 4.0 * sl_rng_uniform(rng);
        break;
    }
}

/* "[2,3] [3]" plus the attributes the op's signature names ("axis=1 keepdim=1"). */
static void shapes_str(char *buf, size_t size, const sl_op *op, const sl_op_case *c,
                       const sl_attrs *a) {
    size_t k = 0;
    buf[0] = '\0';
#define PUT(...)                                                                              \
    do {                                                                                      \
        int w_ = snprintf(buf + k, size - k, __VA_ARGS__);                                    \
        k = (w_ < 0 || (size_t)w_ >= size - k) ? size - 1 : k + (size_t)w_;                  \
    } while (0)
    for (int i = 0; i < op->arity; i++) {
        char sh[64];
        PUT(i ? " %s" : "%s", sl__shape_str(sh, c->shape[i][0], &c->shape[i][1]));
    }
    const char *sig = op->signature ? op->signature : "";
    if (strstr(sig, "axis")) {
        if (a->axis == SL_ALL)
            PUT(" axis=all");
        else
            PUT(" axis=%d", a->axis);
    }
    if (strstr(sig, "keepdim")) PUT(" keepdim=%d", a->keepdim);
    if (strstr(sig, "alpha")) PUT(" alpha=%g", a->alpha);
    if (strstr(sig, ", p)")) PUT(" p=%g", a->alpha);
    if (strstr(sig, "approx")) PUT(" mode=%d", a->mode);
    if (strstr(sig, "dims)")) {
        char sh[64];
        PUT(" to %s", sl__shape_str(sh, a->ndim, a->dims));
    }
#undef PUT
}

/* One case on a fresh tape. */
static int check_case(const sl_op *op, int ci, const settings *s, sl_gradcheck_report *r) {
    sl_attrs attrs;
    const sl_op_case *c = case_at(op, ci, &attrs);
    sl_tape *t = sl_tape_new();
    if (!t) {
        snprintf(r->message, sizeof r->message, "out of memory");
        return SL_ENOMEM;
    }
    sl_rng rng;
    sl_rng_seed(&rng, s->seed + (uint64_t)ci * 0x9E3779B97F4A7C15ull);
    sl_var *in[SL_MAX_INPUTS] = {0}, *gin[SL_MAX_INPUTS] = {0};
    int ngin = 0;
    double data[1024];
    int classes = c->shape[0][0] > 0 ? c->shape[0][c->shape[0][0]] : 1;
    int rc = SL_OK;
    for (int k = 0; k < op->arity; k++) {
        int nd = c->shape[k][0];
        size_t n = sl__numel(nd, &c->shape[k][1]);
        if (nd < 0 || nd > SL_MAX_DIMS || n > sizeof data / sizeof data[0]) {
            snprintf(r->message, sizeof r->message, "case %d: input %d has a bad or too large shape",
                     ci, k);
            sl_tape_free(t);
            return SL_EARG;
        }
        fill(&rng, op->domain[k], data, n, classes);
        int labels = op->domain[k] == SL_DOMAIN_LABELS;
        in[k] = sl_input(t, nd, &c->shape[k][1], data, labels ? 0 : SL_GRAD);
        if (!labels && in[k]) gin[ngin++] = in[k];
    }
    sl_var *y = sl_apply(t, op, op->arity, in, &attrs);
    sl_gradcheck_report one;
    report_reset(&one);
    if (!y) {
        rc = sl_tape_status(t);
        snprintf(one.message, sizeof one.message, "case %d: %s", ci, sl_tape_error(t));
        one.ok = 0;
    } else if (ngin > 0) {
        sl_gradcheck_opts o = {.eps = s->eps, .atol = s->atol, .rtol = s->rtol, .seed = s->seed,
                               .case_index = -1, .plain = s->plain, .fast = s->fast,
                               .projections = s->projections};
        rc = sl_gradcheck(t, y, ngin, gin, &o, &one);
        if (rc != SL_OK && rc != SL_EGRAD)
            snprintf(one.message, sizeof one.message, "case %d: %s", ci, sl_tape_error(t));
    }
    /* map the input index back from "differentiable inputs" to op inputs */
    if (one.worst_input >= 0)
        for (int k = 0, g = 0; k < op->arity; k++)
            if (op->domain[k] != SL_DOMAIN_LABELS && g++ == one.worst_input) {
                one.worst_input = k;
                break;
            }
    shapes_str(one.shapes, sizeof one.shapes, op, c, &attrs);
    /* merge into r: keep the worst case's details */
    double prev = r->ncases ? score_of(r->analytic, r->numeric, s) : -1.0;
    double cur = one.worst_input >= 0 ? score_of(one.analytic, one.numeric, s) : -1.0;
    bool take = r->ncases == 0 || (!one.ok && r->ok) || (one.ok == r->ok && cur > prev);
    r->ncases++;
    r->nchecked += one.nchecked;
    if (!(one.max_abs_err <= r->max_abs_err)) r->max_abs_err = one.max_abs_err;
    if (!(one.max_rel_err <= r->max_rel_err)) r->max_rel_err = one.max_rel_err;
    if (take) {
        int ok = r->ok && one.ok;
        int ncases = r->ncases;
        size_t nchecked = r->nchecked;
        double mae = r->max_abs_err, mre = r->max_rel_err;
        *r = one;
        r->ok = ok;
        r->ncases = ncases;
        r->nchecked = nchecked;
        r->max_abs_err = mae;
        r->max_rel_err = mre;
    }
    r->ok = r->ok && one.ok;
    sl_tape_free(t);
    return rc;
}

int sl_gradcheck_op(const sl_op *op, const sl_gradcheck_opts *opts, sl_gradcheck_report *report) {
    sl_gradcheck_report local;
    sl_gradcheck_report *r = report ? report : &local;
    report_reset(r);
    settings s = settings_of(opts);
    if (!op || !op->name) {
        snprintf(r->message, sizeof r->message, "sl_gradcheck_op: op is NULL");
        r->ok = 0;
        return SL_EARG;
    }
    const char *missing = NULL;
    if (!op->formula || !op->formula[0]) missing = "a formula";
    else if (!op->derivative || !op->derivative[0]) missing = "a derivative text";
    else if (!op->signature || !op->signature[0]) missing = "a signature";
    else if (!op->jvp) missing = "a tangent rule (jvp) for forward mode";
    for (int k = 0; k < op->arity && !missing; k++)
        if (op->domain[k] == SL_DOMAIN_NONE) missing = "a gradient-check domain for every input";
    int nc = sl_op_ncases(op);
    if (!missing && nc <= 0) missing = "gradient-check cases (kind CUSTOM needs .cases)";
    if (missing) {
        snprintf(r->message, sizeof r->message, "sl_gradcheck_op: op \"%s\" lacks %s", op->name,
                 missing);
        r->ok = 0;
        return SL_EARG;
    }
    if (s.case_index >= nc) {
        snprintf(r->message, sizeof r->message,
                 "sl_gradcheck_op: case %d out of range (op \"%s\" has %d)", s.case_index,
                 op->name, nc);
        r->ok = 0;
        return SL_EARG;
    }
    int first = s.case_index >= 0 ? s.case_index : 0;
    int last = s.case_index >= 0 ? s.case_index : nc - 1;
    int rc = SL_OK;
    for (int ci = first; ci <= last; ci++) {
        int one = check_case(op, ci, &s, r);
        if (rc == SL_OK || rc == SL_EGRAD) rc = one != SL_OK && rc == SL_OK ? one : rc;
        if (one != SL_OK && one != SL_EGRAD) break;
    }
    if (!r->ok && rc == SL_OK) rc = SL_EGRAD;
    if (rc == SL_EGRAD) {
        char msg[384]; /* the case's sentence, after "<op> at <shapes>: " */
        size_t len = strlen(r->message); /* NUL-terminated by snprintf */
        if (len > sizeof msg - 1) len = sizeof msg - 1;
        memcpy(msg, r->message, len);
        msg[len] = '\0';
        snprintf(r->message, sizeof r->message, "%.20s at %.96s: %s", op->name, r->shapes, msg);
    }
    return rc;
}
