/*
 * gradcheck.c - verifying the tape's derivatives.
 *
 * sl_gradcheck compares the full Jacobian of y with respect to chosen leaves
 * three ways: reverse mode (one sweep per output element, seeded with a unit
 * vector), forward mode (one sl_jvp per input element) and central
 * differences with Richardson extrapolation (perturb one leaf element by
 * +-h, +-h/2 and replay the tape). Two checks need no step at all: the
 * dot-product test <v, J u> = <J^T v, u> and the order of the Taylor
 * remainder along a random direction. An entry whose finite difference
 * disagrees is looked at once more with one-sided differences: a real kink
 * inside the step (the one-sided slopes differ, and keep differing when the
 * step halves) with both modes between them is accepted as KINK-OK. Leaves'
 * values and gradients are restored afterwards.
 *
 * sl_gradcheck_op builds a fresh tape per case, draws inputs from the op's
 * declared domain with a seeded RNG and runs sl_gradcheck on it; ops that
 * declare a kink or ties get extra cases that test the declared convention.
 * sl_check_ops runs that over the registry and prints a table or JSON Lines
 * to a FILE * its caller gives: the only printing slope does here.
 *
 * docs/gradcheck.md explains every check and tolerance.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define DEFAULT_EPS 1e-6
#define DEFAULT_ATOL 1e-5
#define DEFAULT_RTOL 1e-3
/* A kink's jump must survive halving the step: a smooth point's one-sided
 * slopes differ by h f'' (so the jump halves), a kink's by a constant. */
#define KINK_KEEP 0.75

typedef struct settings {
    double eps, atol, rtol;
    uint64_t seed;
    int case_index, plain, fast, projections;
} settings;

#define DEFAULT_PROJECTIONS 8

/* The settings opts ask for, 0 meaning the default (opts_error has
 * refused every value out of range). */
static settings settings_of(const sl_gradcheck_opts *o) {
    settings s = {DEFAULT_EPS, DEFAULT_ATOL, DEFAULT_RTOL, 42, 0, 0, 0, DEFAULT_PROJECTIONS};
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

/* 0 if every field of opts (NULL: the defaults) is in range, else SL_EARG
 * and a message naming fn, the field and its value in msg. 0 is the
 * default everywhere (case_index: every case); seed takes any value, and
 * sl_gradcheck_op checks case_index against the op's number of cases. */
static int opts_error(const sl_gradcheck_opts *o, const char *fn, char *msg, size_t size) {
    if (!o) return 0;
    const struct {
        const char *name;
        double v, def;
    } tol[3] = {{"eps", o->eps, DEFAULT_EPS},
                {"atol", o->atol, DEFAULT_ATOL},
                {"rtol", o->rtol, DEFAULT_RTOL}};
    for (int i = 0; i < 3; i++)
        if (!(isfinite(tol[i].v) && tol[i].v >= 0)) {
            snprintf(msg, size, "%s: opts->%s = %g, must be finite and > 0 (0: the default, %g)",
                     fn, tol[i].name, tol[i].v, tol[i].def);
            return SL_EARG;
        }
    if (o->projections < 0)
        snprintf(msg, size, "%s: opts->projections = %d, must be > 0 (0: the default, %d)", fn,
                 o->projections, DEFAULT_PROJECTIONS);
    else if (o->case_index < 0)
        snprintf(msg, size,
                 "%s: opts->case_index = %d, must be >= 0 (0: every case, k >= 1: case k alone)",
                 fn, o->case_index);
    else if (o->plain != 0 && o->plain != 1)
        snprintf(msg, size, "%s: opts->plain = %d, must be 0 or 1", fn, o->plain);
    else if (o->fast < -1 || o->fast > 1)
        snprintf(msg, size, "%s: opts->fast = %d, must be -1, 0 or 1", fn, o->fast);
    else
        return 0;
    return SL_EARG;
}

static void report_reset(sl_gradcheck_report *r) {
    memset(r, 0, sizeof *r);
    r->ok = 1;
    r->failed = "";
    r->worst_input = -1;
    r->forward = NAN;
    r->taylor_order = NAN;
}

/* The same number: equal (equal infinities too), or NaN both. */
static bool same_number(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* *m = max(*m, v), where a NaN (in *m or v) sticks. */
static void keep_max(double *m, double v) {
    if (!isnan(*m) && !(v <= *m)) *m = v;
}

/* A number for a message: NaN without a sign ("nan", never "-nan"). */
static double shown(double v) { return isnan(v) ? NAN : v; }

/* Score of one Jacobian entry: error over its allowance; > 1 fails, NaN -> inf. */
static double score_of(double a, double n, const settings *s) {
    double err = fabs(a - n);
    if (!(err == err) || !isfinite(a) || !isfinite(n)) return INFINITY;
    return err / (s->atol + s->rtol * fabs(n));
}

/* Reverse and forward mode compute the same numbers by different roads: they
 * must agree to rounding, whatever the step. A non-finite value agrees only
 * with the same value (+inf with +inf, NaN with NaN): |inf - inf| is NaN
 * and |inf - -inf| <= 1e-8 inf would pass. */
static bool modes_agree(double a, double f) {
    if (!isfinite(a) || !isfinite(f)) return same_number(a, f);
    return fabs(a - f) <= 1e-10 + 1e-8 * fmax(fabs(a), fabs(f));
}

/* Which of the three is the odd one out, given a (reverse), f (forward), n
 * (numeric), whether forward mode took part, and which pairs agree. */
static const char *verdict(bool have_f, bool vjp_fd, bool jvp_fd, bool modes, double a, double f,
                           double n) {
    if (vjp_fd && jvp_fd && modes) return "";
    if (!have_f) return "vjp"; /* two witnesses only: the differences judge the backward rule */
    if (!modes) {              /* the modes differ: the one farther from the differences is wrong */
        if (vjp_fd != jvp_fd) return vjp_fd ? "jvp" : "vjp";
        return fabs(a - n) > fabs(f - n) ? "vjp" : "jvp";
    }
    return "fd"; /* both modes agree with each other, not with the differences */
}

/* The worst entry so far: its score and, among infinite scores, its tier
 * (tier_of), so that the entry named does not depend on the order the
 * entries come in. */
typedef struct worst {
    double score;
    int tier;
} worst;

/* Which entry with an infinite score to name: a mode mismatch first (a rule
 * is wrong), then an infinite derivative, then differences that are not
 * finite; a mode's NaN from 0 * inf last. */
static int tier_of(bool modes, bool artefact, double a, double f, double n) {
    return (!modes ? 8 : 0) + (isinf(a) || isinf(f) ? 4 : 0) + (!isfinite(n) ? 2 : 0) +
           (!artefact ? 1 : 0);
}

/* Record one Jacobian entry: a reverse mode, f forward mode (have_f: forward
 * mode took part), n finite differences; singular: the point fails anyway,
 * the function or its derivative not finite there (see full_check). Sets
 * r->ok = 0 and r->failed on a failure. */
static void note_entry(sl_gradcheck_report *r, worst *w, int input, size_t elem, size_t outi,
                       double a, double f, double n, bool have_f, bool singular,
                       const settings *s) {
    double err = fabs(a - n), rel = err / fmax(fabs(n), s->atol);
    double sc = score_of(a, n, s);
    /* Where a partial derivative is infinite, a zero seed (or tangent) meets
     * it in the other entries of its row (or column), and one mode gives
     * 0 * inf = NaN where the other gives a number: the point's doing, not
     * a rule's. */
    const bool artefact = singular && (have_f ? isnan(a) != isnan(f) : isnan(a));
    bool vjp_fd = sc <= 1.0, jvp_fd = !have_f || score_of(f, n, s) <= 1.0;
    bool modes = !have_f || artefact || modes_agree(a, f);
    if (have_f && !modes) /* a mode mismatch outranks a passing entry (any, if not finite) */
        sc = isfinite(a) && isfinite(f) ? fmax(sc, 2.0) : INFINITY;
    const int tier = isinf(sc) ? tier_of(modes, artefact, a, f, n) : 0;
    if (have_f && !artefact) keep_max(&r->max_mode_err, same_number(a, f) ? 0.0 : fabs(a - f));
    r->nchecked++;
    keep_max(&r->max_abs_err, err);
    keep_max(&r->max_rel_err, rel);
    const char *v = artefact ? "fd" : verdict(have_f, vjp_fd, jvp_fd, modes, a, f, n);
    if (v[0] && r->ok) {
        r->ok = 0;
        r->failed = v;
    }
    if (r->worst_input == -1 || sc > w->score || (sc == w->score && tier > w->tier)) {
        w->score = sc;
        w->tier = tier;
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

/* An entry the finite differences reject while the two modes agree: the one
 * kind of failure a kink can explain. */
static bool kink_candidate(double a, double f, double n, bool have_f, const settings *s) {
    if (!isfinite(a) || !isfinite(n) || (have_f && !isfinite(f))) return false;
    if (have_f && !modes_agree(a, f)) return false;
    return score_of(a, n, s) > 1.0 || (have_f && score_of(f, n, s) > 1.0);
}

/* v inside [lo, hi], widened by the check's tolerance at each end. */
static bool in_band(double v, double lo, double hi, const settings *s) {
    return v >= lo - (s->atol + s->rtol * fabs(lo)) && v <= hi + (s->atol + s->rtol * fabs(hi));
}

/* One-sided difference quotients of one function value around x, from
 * f(x), f(x +- h) and f(x +- h/2). A real kink: the two sides differ by
 * more than atol + rtol max(|slope|), and still do (same sign, at least
 * KINK_KEEP of the jump) with half the step, which a smooth point's
 * curvature cannot fake. The band [lo, hi] is the pair at step h. */
static bool kink_jump(double f0, double fp, double fm, double fp2, double fm2, double h,
                      double atol, double rtol, double *lo, double *hi) {
    const double dp = (fp - f0) / h, dm = (f0 - fm) / h;
    const double dp2 = (fp2 - f0) / (h / 2), dm2 = (f0 - fm2) / (h / 2);
    const double j1 = dp - dm, j2 = dp2 - dm2;
    *lo = fmin(dp, dm);
    *hi = fmax(dp, dm);
    if (!isfinite(j1) || !isfinite(j2)) return false;
    if (!(fabs(j1) > atol + rtol * fmax(fabs(dp), fabs(dm)))) return false; /* smooth */
    return j1 * j2 > 0 && fabs(j2) >= KINK_KEEP * fabs(j1);
}

/* A kink beyond the check's tolerances (kink_jump with atol, rtol). */
static bool one_sided_kink(double f0, double fp, double fm, double fp2, double fm2, double h,
                           const settings *s, double *lo, double *hi) {
    return kink_jump(f0, fp, fm, fp2, fm2, h, s->atol, s->rtol, lo, hi);
}

static bool is_grad_leaf(const sl_var *v) {
    return (SL__FLAGS(v) & SL__NODE_LEAF) && (SL__FLAGS(v) & SL__NODE_GRAD);
}

/* Working state of one sl_gradcheck call. */
typedef struct check {
    sl_tape *t;
    sl_var *y;
    int nin;
    sl_var *const *in;
    settings s;
    size_t m, total;             /* outputs, input elements */
    bool jvp;                    /* every op on the path has a tangent rule */
    bool y_bad;                  /* y has a non-finite element at the inputs as given */
    double *yp, *ym;             /* f(x +- h) for the central differences */
    double *kp, *km, *kp2, *km2; /* the kink probe: f(x +- h), f(x +- h/2) */
    double kh;                   /* the probe's step */
    double *y0;                  /* y at the unperturbed inputs */
    double *seed, *dy;
    double *kmask;      /* per input element: 1 if an entry of its column was KINK-OK */
    double **tan;       /* per input: a tangent buffer */
    double **x0;        /* per input: its values at entry, restored exactly */
    char step_err[256]; /* the first error a step's sl_forward raised (step_forward) */
    /* forward mode's leaves: the inputs, then every other use of an input's
     * parameter up to y (an alias), with that input's tangent buffer */
    int njin;
    sl_var **jin;
    const double **jtan;
} check;

/* A failed step-free check (dot or order), named after the element checks. */
typedef struct stepfree {
    const char *failed; /* NULL while both pass */
    char msg[512];
} stepfree;

/* Every input back to its values at entry, bit for bit, and every node
 * recomputed from them. */
static int restore_inputs(check *c) {
    for (int k = 0; k < c->nin; k++)
        memcpy(sl__val(c->in[k]), c->x0[k], sl__n(c->in[k]) * sizeof(double));
    return sl_forward(c->t);
}

/* sl_forward at perturbed inputs. A step can leave the domain a forward
 * rule checks (bce's probability beyond 1, a label no longer an integer, a
 * user rule's sl_tape_fail, anomaly mode's non-finite values): the function
 * is not defined there, which is a verdict on the point (fd), not an error
 * of the tape. So the tape's error is taken back (it had none: the point
 * itself evaluated), the first message kept for the report, and *defined
 * cleared. Out of memory stays an error. */
static int step_forward(check *c, bool *defined) {
    const int rc = sl_forward(c->t);
    *defined = rc == SL_OK;
    if (rc == SL_OK || rc == SL_ENOMEM) return rc;
    if (!c->step_err[0]) snprintf(c->step_err, sizeof c->step_err, "%s", sl_tape_error(c->t));
    sl__clear_error(c->t);
    return SL_OK;
}

/* f(x + h e) for input k, element e: y's values into out (NaN where f is
 * not defined, see step_forward). */
static int eval_at(check *c, int k, size_t e, double h, double *out) {
    sl_var *x = c->in[k];
    double *xv = sl__val(x);
    const double orig = xv[e];
    xv[e] = orig + h;
    bool defined;
    int rc = step_forward(c, &defined);
    /* y's values before x is restored: y may be x itself (or share its values) */
    if (defined)
        memcpy(out, sl__val(c->y), c->m * sizeof(double));
    else
        for (size_t j = 0; j < c->m; j++) out[j] = NAN;
    xv[e] = orig;
    return rc;
}

/* The step for input k, element e: eps scaled by max(1, |x_e|). */
static double step_of(const check *c, int k, size_t e) {
    return c->s.eps * fmax(1.0, fabs(c->x0[k][e]));
}

/* Column (k, e) of the Jacobian by central differences: D(h) = (f(x+h)-f(x-h))/2h,
 * with Richardson extrapolation (4 D(h/2) - D(h)) / 3 unless plain. */
static int fd_column(check *c, int k, size_t e, double *col) {
    const double h = step_of(c, k, e);
    int rc = eval_at(c, k, e, h, c->yp);
    if (rc == SL_OK) rc = eval_at(c, k, e, -h, c->ym);
    for (size_t j = 0; j < c->m; j++) col[j] = (c->yp[j] - c->ym[j]) / (2.0 * h);
    if (c->s.plain || rc != SL_OK) return rc;
    rc = eval_at(c, k, e, h / 2, c->yp);
    if (rc == SL_OK) rc = eval_at(c, k, e, -h / 2, c->ym);
    for (size_t j = 0; j < c->m; j++) col[j] = (4.0 * (c->yp[j] - c->ym[j]) / h - col[j]) / 3.0;
    return rc;
}

/* The kink probe of column (k, e): f at x +- h and x +- h/2 (f(x) is y0). */
static int probe_column(check *c, int k, size_t e) {
    const double h = step_of(c, k, e);
    c->kh = h;
    int rc = eval_at(c, k, e, h, c->kp);
    if (rc == SL_OK) rc = eval_at(c, k, e, -h, c->km);
    if (rc == SL_OK) rc = eval_at(c, k, e, h / 2, c->kp2);
    if (rc == SL_OK) rc = eval_at(c, k, e, -h / 2, c->km2);
    return rc;
}

/* Entry j of the probed column: a real kink with reverse (and forward)
 * mode between the one-sided slopes. */
static bool kink_ok(const check *c, size_t j, double a, double f) {
    double lo, hi;
    if (!one_sided_kink(c->y0[j], c->kp[j], c->km[j], c->kp2[j], c->km2[j], c->kh, &c->s, &lo, &hi))
        return false;
    return in_band(a, lo, hi, &c->s) && (!c->jvp || in_band(f, lo, hi, &c->s));
}

/* Forward mode along one tangent per input (their current contents). */
static int jvp_along(check *c, double *out) {
    return sl_jvp(c->t, c->y, c->njin, c->jin, c->jtan, out);
}

/* The input whose values node v shares, if v is another sl_use leaf of the
 * same parameter (-1 otherwise). Perturbing that input moves v too, and
 * reverse mode adds v's gradient into the same buffer: forward mode must
 * give v the input's tangent as well, or it alone sees a different function. */
static int alias_of(const check *c, const sl_var *v) {
    if ((SL__FLAGS(v) & (SL__NODE_LEAF | SL__NODE_PARAM)) != (SL__NODE_LEAF | SL__NODE_PARAM))
        return -1;
    for (int k = 0; k < c->nin; k++)
        if (c->in[k] == v) return -1;
    for (int k = 0; k < c->nin; k++)
        if (sl__val(c->in[k]) == sl__val(v)) return k;
    return -1;
}

static void fill_uniform(sl_rng *rng, double *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = 2.0 * sl_rng_uniform(rng) - 1.0;
}

static void zero_input_grads(check *c) {
    for (int k = 0; k < c->nin; k++)
        memset(sl__gradp(c->in[k]), 0, sl__n(c->in[k]) * sizeof(double));
}

/* The size of the terms inside the graph, after a sweep seeded with v:
 * sum over the nodes up to y with a gradient (v's preimage) of
 * |gradient| . |w|, w each node's tangent (after sl_jvp along u; nodes
 * without one are left out) or else its value.
 *
 * With tangents: both <v, J u> and <J^T v, u> equal <gradient, tangent> at
 * every cut of the graph, so these are the terms summed at every node. The
 * rounding each rule's accumulation makes at node k is relative to that
 * node's terms and reaches the result times its gradient, so the two modes
 * may differ by a small multiple of eps times this sum - also when the terms
 * at the inputs cancel to a tiny result (a gradient that is what is left of
 * larger terms inside the graph).
 *
 * With values: the first-order rounding error of phi = <v, f> itself, eps
 * |x_k| at node k reaching phi times its gradient; it is far larger than
 * eps |phi| when phi is what is left of larger values that cancel.
 *
 * A node whose gradient the sweep kept in a register (the inside of a
 * product chain) is left out: that can only make the sum smaller, the tests
 * stricter. Non-finite terms are the element checks' to judge. */
static double graph_terms(const check *c, bool tangents) {
    double s = 0.0;
    for (size_t i = 0; i <= sl__id(c->y); i++) {
        const sl_var *v = c->t->nodes[i];
        const double *g = sl__gradp(v);
        if (!g) continue;
        const double *w = sl__val(v);
        if (tangents) {
            if (!(SL__FLAGS(v) & SL__NODE_TAN)) continue;
            w = c->t->tans[i];
        }
        for (size_t e = 0; e < sl__n(v); e++) {
            const double term = fabs(g[e] * w[e]);
            if (isfinite(term)) s += term;
        }
    }
    return s;
}

/* <v, J u> by forward mode against <J^T v, u> by reverse mode: no step at
 * all. They may differ by rounding, relative to the terms summed along the
 * way (dot_terms), never by more than 1e-9 of those. */
static int dot_test(check *c, sl_rng *rng, sl_gradcheck_report *r, stepfree *sf) {
    for (int k = 0; k < c->nin; k++) fill_uniform(rng, c->tan[k], sl__n(c->in[k]));
    fill_uniform(rng, c->seed, c->m);
    int rc = jvp_along(c, c->dy);
    if (rc != SL_OK) return rc;
    double fwd = 0.0, rev = 0.0, scale = 0.0;
    for (size_t j = 0; j < c->m; j++) {
        fwd += c->seed[j] * c->dy[j];
        scale += fabs(c->seed[j] * c->dy[j]);
    }
    zero_input_grads(c);
    rc = sl__sweep(c->t, c->y, c->seed, "sl_gradcheck");
    for (int k = 0; k < c->nin && rc == SL_OK; k++)
        for (size_t e = 0; e < sl__n(c->in[k]); e++) {
            rev += sl__gradp(c->in[k])[e] * c->tan[k][e];
            scale += fabs(sl__gradp(c->in[k])[e] * c->tan[k][e]);
        }
    if (rc == SL_OK) scale += graph_terms(c, true);
    if (same_number(fwd, rev)) /* equal infinities too: the rules agree */
        r->dot_rel_err = isnan(fwd) ? NAN : 0.0;
    else if (isnan(fwd) || isnan(rev)) /* no verdict: the element checks judge a mode's NaN */
        r->dot_rel_err = NAN;
    else if (!isfinite(fwd) || !isfinite(rev))
        r->dot_rel_err = INFINITY;
    else
        r->dot_rel_err = fabs(fwd - rev) / fmax(scale, 1e-300);
    if (r->dot_rel_err > 1e-9 && !sf->failed) {
        sf->failed = "dot";
        snprintf(sf->msg, sizeof sf->msg,
                 "dot-product test: <v, J u> = %.17g by forward mode but <J^T v, u> = %.17g by "
                 "reverse mode (relative difference %.3g): the tangent and backward rules are "
                 "inconsistent",
                 fwd, rev, r->dot_rel_err);
    }
    return rc;
}

/* phi(x + h u) with phi = <v, f>, for the direction held in c->tan; and,
 * if terms is not NULL, the size of its terms sum_j |v_j f_j(x + h u)|
 * (both NaN where f is not defined, see step_forward). */
static int phi_terms_at(check *c, double h, double *phi, double *terms) {
    for (int k = 0; k < c->nin; k++)
        for (size_t e = 0; e < sl__n(c->in[k]); e++)
            sl__val(c->in[k])[e] = c->x0[k][e] + h * c->tan[k][e];
    bool defined;
    int rc = step_forward(c, &defined);
    double s = 0.0, a = 0.0; /* before the inputs are restored: y may be one of them */
    for (size_t j = 0; j < c->m; j++) {
        s += c->seed[j] * sl__val(c->y)[j];
        a += fabs(c->seed[j] * sl__val(c->y)[j]);
    }
    if (!defined) s = a = NAN;
    for (int k = 0; k < c->nin; k++)
        memcpy(sl__val(c->in[k]), c->x0[k], sl__n(c->in[k]) * sizeof(double));
    *phi = s;
    if (terms) *terms = a;
    return rc;
}

static int phi_at(check *c, double h, double *phi) { return phi_terms_at(c, h, phi, NULL); }

/* Is g the slope of phi along -u at x, measured at the scale h? phi at -h,
 * -h/2 and -h/4 give two Richardson extrapolations (2 D(h/2) - D(h) at two
 * steps): they must agree (the side is smooth up to x) and g must match
 * them to 1e-6 relative plus rounding. A derivative check of its own, so it
 * holds whatever lies on the +u side (a kink of the slope or of the
 * curvature, relu(x) x); the band of the tolerances would let a rule 1e-4
 * off pass whenever a kink lies near. */
static int smooth_side_slope_is(check *c, double phi0, double g, double h, double scale, bool *ok) {
    double pm, pm2, pm4;
    int rc = phi_at(c, -h, &pm);
    if (rc == SL_OK) rc = phi_at(c, -h / 2, &pm2);
    if (rc == SL_OK) rc = phi_at(c, -h / 4, &pm4);
    if (rc != SL_OK) return rc;
    const double dm = (phi0 - pm) / h, dm2 = (phi0 - pm2) / (h / 2), dm4 = (phi0 - pm4) / (h / 4);
    const double r1 = 2 * dm2 - dm, r2 = 2 * dm4 - dm2;
    /* rounding of a quotient at h: 64 ulps of the terms phi is made of
     * (the combinations amplify it about 20 times) - not the order test's
     * 1e4, which would hide a rule 1e-4 off where phi is large */
    const double rnd = 64 * DBL_EPSILON * fmax(scale, 1e-300) / h;
    const double tol = 1e-6 * fabs(r2) + 8 * rnd;
    *ok = fabs(r2 - r1) <= tol && fabs(g - r2) <= tol + 2 * fabs(r2 - r1);
    return rc;
}

/* A kink of phi at x along u too small for one_sided_kink's tolerances: the
 * direction crosses a tie of max (x1 = x2) with u1 close to u2, and the
 * one-sided slopes u1, u2 differ by less than atol. The jump must stand
 * clear of rounding (64 ulps of phi's terms over h, as smooth_side_slope_is)
 * and keep its size and sign at half the step, which curvature cannot fake
 * (its jump halves); and g must lie between the slopes to 1e-6 relative
 * plus rounding - a band as tight as the probe's, not the tolerances', so
 * a rule off by more than the jump is not taken for a kink. */
static bool small_kink(double f0, double fp, double fm, double fp2, double fm2, double h,
                       double scale, double g) {
    const double rnd = 64 * DBL_EPSILON * fmax(scale, 1e-300) / h;
    double lo, hi;
    if (!kink_jump(f0, fp, fm, fp2, fm2, h, 16 * rnd, 0.0, &lo, &hi)) return false;
    const double tol = 1e-6 * fmax(fabs(lo), fabs(hi)) + 4 * rnd;
    return g >= lo - tol && g <= hi + tol;
}

/* The order test: with phi = <v, f> and g = grad phi . u from reverse mode,
 * the remainder r(h) = |phi(x+hu) - phi(x) - h g| shrinks like h^2 when g is
 * right and like h when it is wrong, however small the error: a gradient off
 * by 1e-4 relative shows order 1 once h is small enough that the error term
 * h*1e-4*g outgrows h^2. So h is halved from 1e-2 down to ~1e-9 and the
 * verdict is the median order of the three smallest steps whose remainder
 * stands clear of rounding noise (1e4 ulps of the terms of phi).
 *
 * u is random, but zero on input elements where the full check accepted a
 * kink (no Taylor expansion holds across one). If the remainder is still of
 * order 1 and the direction crosses a kink (the one-sided directional slopes
 * differ, also at half the step, with g between them), the test cannot judge
 * and counts a kink instead of failing. */
static int order_test(check *c, sl_rng *rng, sl_gradcheck_report *r, stepfree *sf) {
    enum { STEPS = 24 };
    size_t off = 0;
    for (int k = 0; k < c->nin; off += sl__n(c->in[k]), k++) {
        fill_uniform(rng, c->tan[k], sl__n(c->in[k]));
        for (size_t e = 0; e < sl__n(c->in[k]); e++)
            if (c->kmask[off + e] != 0.0) c->tan[k][e] = 0.0;
    }
    fill_uniform(rng, c->seed, c->m);
    zero_input_grads(c);
    int rc = sl__sweep(c->t, c->y, c->seed, "sl_gradcheck");
    if (rc != SL_OK) return rc;
    double g = 0.0, phi0 = 0.0, scale = 0.0;
    for (int k = 0; k < c->nin; k++)
        for (size_t e = 0; e < sl__n(c->in[k]); e++) g += sl__gradp(c->in[k])[e] * c->tan[k][e];
    for (size_t j = 0; j < c->m; j++) {
        phi0 += c->seed[j] * c->y0[j];
        scale += fabs(c->seed[j] * c->y0[j]);
    }
    scale += graph_terms(c, false); /* phi's rounding: the values it is made of */
    double rem[STEPS], noise[STEPS], h = 1e-2, orders[STEPS];
    int n = 0;
    for (int i = 0; i < STEPS && rc == SL_OK; i++, h /= 2) {
        double phi, terms;
        rc = phi_terms_at(c, h, &phi, &terms);
        rem[i] = fabs(phi - phi0 - h * g);
        /* the rounding of the remainder's three terms, 1e4 ulps of each:
         * phi(x) (scale), phi(x+hu) (its terms at the output; inside, as
         * at x for the small steps that matter) and h g */
        noise[i] = 1e4 * DBL_EPSILON * fmax(scale + terms + fabs(h * g), 1e-300);
    }
    if (rc != SL_OK) return rc;
    for (int i = 0; i + 1 < STEPS; i++)
        if (rem[i + 1] > noise[i + 1] && rem[i] > rem[i + 1])
            orders[n++] = log2(rem[i] / rem[i + 1]);
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
    if (!(r->taylor_order < 1.5)) return rc;
    /* order 1: a wrong gradient, or a kink along u. First at the step eps;
     * then, for a kink farther than eps but within the steps (relu at 1e-3
     * from 0, say), at 1, 2, 4, 8 and 16 times the smallest step h_s whose
     * remainder stood clear of rounding: phi is smooth up to such a kink at
     * distance d, so the remainder vanishes below h_s ~ d and the orders
     * measured above it are those of the kink, not of a wrong gradient. The
     * smaller scales serve when another kink lies on the -u side. Even at
     * h_s the probe resolves any error the order test resolved there: its
     * rounding allowance (~500 ulps / h_s) is below the noise floor the
     * remainder cleared (1e4 ulps / h_s). */
    const double hk = c->s.eps;
    double pp = NAN, pm = NAN, pp2 = NAN, pm2 = NAN, lo, hi;
    rc = phi_at(c, hk, &pp);
    if (rc == SL_OK) rc = phi_at(c, -hk, &pm);
    if (rc == SL_OK) rc = phi_at(c, hk / 2, &pp2);
    if (rc == SL_OK) rc = phi_at(c, -hk / 2, &pm2);
    if (rc != SL_OK) return rc;
    /* a kink at x, where g is the op's convention: between the one-sided slopes */
    bool ok =
        one_sided_kink(phi0, pp, pm, pp2, pm2, hk, &c->s, &lo, &hi) && in_band(g, lo, hi, &c->s);
    if (!ok) /* or a kink whose jump is below the tolerances, e.g. across a tie of max */
        ok = small_kink(phi0, pp, pm, pp2, pm2, hk, scale, g);
    double hs = 0.0;
    for (int i = 0; i < STEPS; i++)
        if (rem[i] > noise[i]) hs = ldexp(1e-2, -i); /* the steps' h, halved from 1e-2 */
    for (double f = 1.0; rc == SL_OK && !ok && f <= 16.0 && hs > 0.0; f *= 2.0)
        rc = smooth_side_slope_is(c, phi0, g, f * hs, scale, &ok);
    if (rc != SL_OK) return rc;
    if (ok) {
        r->kinks++;
        return rc;
    }
    if (!sf->failed) {
        sf->failed = "order";
        snprintf(sf->msg, sizeof sf->msg,
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
        zero_input_grads(c);
        c->seed[j] = 1.0;
        rc = sl__sweep(c->t, c->y, c->seed, "sl_gradcheck");
        c->seed[j] = 0.0;
        size_t off = 0;
        for (int k = 0; k < c->nin && rc == SL_OK; k++) {
            memcpy(J + j * total + off, sl__gradp(c->in[k]), sl__n(c->in[k]) * sizeof(double));
            off += sl__n(c->in[k]);
        }
    }
    /* forward mode: column (k, e) of Jf along the unit tangent e_(k,e) */
    if (c->jvp) {
        for (int k = 0; k < c->nin; k++) memset(c->tan[k], 0, sl__n(c->in[k]) * sizeof(double));
        size_t off = 0;
        for (int k = 0; k < c->nin && rc == SL_OK; k++) {
            for (size_t e = 0; e < sl__n(c->in[k]) && rc == SL_OK; e++) {
                c->tan[k][e] = 1.0;
                rc = jvp_along(c, c->dy);
                c->tan[k][e] = 0.0;
                for (size_t j = 0; j < m; j++) Jf[j * total + off + e] = c->dy[j];
            }
            off += sl__n(c->in[k]);
        }
    }
    /* A singular point: y is not finite there, or an entry of the Jacobian
     * is infinite in either mode. It fails whatever the rules do (the
     * differences of y's non-finite elements are NaN, an infinite entry
     * scores inf), and a mode's NaN there is 0 * inf, not a rule's error. */
    bool singular = c->y_bad;
    for (size_t i = 0; i < m * total && !singular; i++)
        singular = isinf(J[i]) || (c->jvp && isinf(Jf[i]));
    /* finite differences, column by column, compared entry by entry; an
     * entry they reject gets the kink probe (once per column) */
    worst w = {-1.0, 0};
    size_t off = 0;
    for (int k = 0; k < c->nin && rc == SL_OK; k++) {
        for (size_t e = 0; e < sl__n(c->in[k]) && rc == SL_OK; e++) {
            rc = fd_column(c, k, e, c->dy);
            bool probed = false;
            for (size_t j = 0; j < m && rc == SL_OK; j++) {
                const size_t at = j * total + off + e;
                const double a = J[at], f = c->jvp ? Jf[at] : NAN, n = c->dy[j];
                if (kink_candidate(a, f, n, c->jvp, &c->s)) {
                    if (!probed) {
                        rc = probe_column(c, k, e);
                        probed = true;
                        if (rc != SL_OK) break;
                    }
                    if (kink_ok(c, j, a, f)) {
                        r->kinks++;
                        r->nchecked++;
                        c->kmask[off + e] = 1.0;
                        continue;
                    }
                }
                note_entry(r, &w, k, e, j, a, f, n, c->jvp, singular, &c->s);
            }
        }
        off += sl__n(c->in[k]);
    }
    return rc;
}

/* The fast check: P random projections v^T J u, from reverse mode, forward
 * mode and a directional central difference; stops at the first failure. */
static int fast_check(check *c, sl_rng *rng, sl_gradcheck_report *r) {
    int rc = SL_OK;
    worst w = {-1.0, 0};
    for (int p = 0; p < c->s.projections && rc == SL_OK; p++) {
        for (int k = 0; k < c->nin; k++) fill_uniform(rng, c->tan[k], sl__n(c->in[k]));
        fill_uniform(rng, c->seed, c->m);
        double fwd = NAN, rev = 0.0, plus = NAN, minus = NAN;
        if (c->jvp) {
            rc = jvp_along(c, c->dy);
            fwd = 0.0;
            for (size_t j = 0; j < c->m; j++) fwd += c->seed[j] * c->dy[j];
        }
        zero_input_grads(c);
        if (rc == SL_OK) rc = sl__sweep(c->t, c->y, c->seed, "sl_gradcheck");
        for (int k = 0; k < c->nin && rc == SL_OK; k++)
            for (size_t e = 0; e < sl__n(c->in[k]); e++)
                rev += sl__gradp(c->in[k])[e] * c->tan[k][e];
        const double h = c->s.eps;
        if (rc == SL_OK) rc = phi_at(c, h, &plus);
        if (rc == SL_OK) rc = phi_at(c, -h, &minus);
        double num = (plus - minus) / (2.0 * h);
        if (!c->s.plain && rc == SL_OK) {
            double p2 = NAN, m2 = NAN;
            rc = phi_at(c, h / 2, &p2);
            if (rc == SL_OK) rc = phi_at(c, -h / 2, &m2);
            num = (4.0 * (p2 - m2) / h - num) / 3.0;
        }
        if (rc != SL_OK) break;
        /* -2: a projection */
        note_entry(r, &w, -2, (size_t)p, 0, rev, fwd, num, c->jvp, c->y_bad, &c->s);
        if (!r->ok) break;
    }
    return rc;
}

/* The sentence for a failed element (or projection). */
static void element_message(sl_gradcheck_report *r, const settings *s, const stepfree *sf,
                            const char *step_err) {
    char where[96], what[256];
    if (r->worst_input >= 0)
        snprintf(where, sizeof where, "input %d element %zu (output element %zu)", r->worst_input,
                 r->worst_elem, r->worst_out);
    else
        snprintf(where, sizeof where, "random projection v^T J u number %zu", r->worst_elem);
    const double a = r->analytic, f = r->forward, n = r->numeric;
    if (!strcmp(r->failed, "jvp"))
        snprintf(what, sizeof what, "the tangent rule (forward mode) disagrees at %s", where);
    else if (strcmp(r->failed, "fd"))
        snprintf(what, sizeof what, "the backward rule (reverse mode) disagrees at %s", where);
    else if (!isfinite(n) && (isinf(a) || isinf(f))) /* the point's, not a rule's */
        snprintf(what, sizeof what,
                 "the derivative is infinite at %s, where finite differences cannot check it",
                 where);
    else if (!isfinite(n))
        snprintf(what, sizeof what,
                 "finite differences cannot check %s: the function is not finite (or not "
                 "defined) within the step of the point",
                 where);
    else
        snprintf(what, sizeof what, "finite differences disagree with both modes at %s", where);
    /* which test failed: the modes against each other (to rounding, whatever
     * the differences say), or a mode against the differences */
    char test[160];
    if (strcmp(r->failed, "fd") && r->jvp_checked && isfinite(a) && isfinite(f) &&
        !modes_agree(a, f))
        snprintf(test, sizeof test,
                 "reverse and forward mode differ by %.3g; they must agree to 1e-10 + "
                 "1e-8*max(|reverse|, |forward|)",
                 fabs(a - f));
    else
        snprintf(test, sizeof test, "abs err %.3g, rel err %.3g; allowed %.3g + %.3g*|numeric|",
                 shown(r->abs_err), shown(r->rel_err), s->atol, s->rtol);
    const bool stepped = !strcmp(r->failed, "fd") && !isfinite(n) && step_err[0];
    const int len =
        snprintf(r->message, sizeof r->message,
                 "%s: analytic (reverse) %.17g, forward %.17g, numeric %.17g (%s)%s%s%s%s%s", what,
                 shown(a), shown(f), shown(n), test, sf->failed ? "; the " : "",
                 sf->failed ? sf->failed : "", sf->failed ? " test failed too" : "",
                 stepped ? "; at a step: " : "", stepped ? step_err : "");
    if (len >= (int)sizeof r->message) /* the step's message was cut: say so */
        memcpy(r->message + sizeof r->message - 4, "...", 4);
}

/* sl_gradcheck's checks, into r (not NULL); *stepfree_failed (if not NULL)
 * gets the step-free test that failed ("dot", "order"), whatever verdict an
 * element gave, or NULL. */
static int gradcheck(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs,
                     const sl_gradcheck_opts *opts, sl_gradcheck_report *r,
                     const char **stepfree_failed) {
    if (stepfree_failed) *stepfree_failed = NULL;
    report_reset(r);
    settings s = settings_of(opts);
    if (!t) return SL_EARG;
    if (t->status != SL_OK) return t->status;
    char msg[160];
    if (opts_error(opts, "sl_gradcheck", msg, sizeof msg)) return sl__fail(t, SL_EARG, "%s", msg);
    if (!y) return sl__fail(t, SL_EARG, "sl_gradcheck: y is NULL");
    if (!sl__owns(t, y)) return sl__fail(t, SL_EARG, "sl_gradcheck: y is not a node of this tape");
    if (nin < 1) return sl__fail(t, SL_EARG, "sl_gradcheck: nin = %d, need >= 1", nin);
    if (!inputs) return sl__fail(t, SL_EARG, "sl_gradcheck: inputs is NULL (nin = %d)", nin);
    check c = {.t = t, .y = y, .nin = nin, .in = inputs, .s = s, .m = sl__n(y), .jvp = true};
    for (int k = 0; k < nin; k++) {
        const sl_var *x = inputs[k];
        if (!x) return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] is NULL", k);
        if (!sl__owns(t, x))
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] is not a node of this tape", k);
        if (!(SL__FLAGS(x) & SL__NODE_LEAF))
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] (a %s node) is not a leaf", k,
                            sl__op(x)->name);
        if (!(SL__FLAGS(x) & SL__NODE_GRAD))
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] was made without SL_GRAD", k);
        for (int j = 0; j < k; j++) {
            if (inputs[j] == x)
                return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] repeats inputs[%d]", k, j);
            if (sl__val(inputs[j]) == sl__val(x))
                return sl__fail(t, SL_EARG,
                                "sl_gradcheck: inputs[%d] and inputs[%d] share their values (two "
                                "sl_use of one parameter): check one of them",
                                j, k);
        }
        c.total += sl__n(x);
    }
    int nalias = 0; /* other uses of the inputs' parameters up to y */
    for (size_t i = 0; i <= sl__id(y); i++) nalias += alias_of(&c, t->nodes[i]) >= 0;
    for (size_t i = 0; i <= sl__id(y); i++)
        if (sl__op(t->nodes[i]) && !sl__op(t->nodes[i])->jvp) c.jvp = false;
    const size_t m = c.m, total = c.total;
    const bool fast = s.fast > 0 || (s.fast == 0 && (double)m * (double)total > 250000.0);
    /* scratch: Jacobians (reverse, forward; full check only), nine vectors of
     * m (yp ym kp km kp2 km2 y0 seed dy), three of total (tangents, entry
     * values, kink mask), a copy of every gradient-carrying leaf's gradient
     * (restored at the end), 2 nin pointers (tangents, entry values) and
     * 2 (nin + nalias) for forward mode's leaves and tangents */
    size_t leafgrad = 0;
    for (size_t i = 0; i < t->n; i++)
        if (is_grad_leaf(t->nodes[i])) leafgrad += sl__n(t->nodes[i]);
    double jac = fast ? 0.0 : 2.0 * (double)m * (double)total;
    _Static_assert(sizeof(double *) <= sizeof(double) && sizeof(sl_var *) <= sizeof(double),
                   "a pointer fits in a double's slot");
    double need =
        jac + 9.0 * (double)m + 3.0 * (double)total + (double)leafgrad + 4.0 * nin + 2.0 * nalias;
    if (need * sizeof(double) > (double)(SIZE_MAX / 2))
        return sl__fail(t, SL_ENOMEM, "sl_gradcheck: Jacobian of %zu x %zu is too large", m, total);
    double *buf = t->arena.a.alloc((size_t)need * sizeof(double) + 1, t->arena.a.ud);
    if (!buf)
        return sl__fail(t, SL_ENOMEM, "sl_gradcheck: out of memory for a %zu x %zu Jacobian", m,
                        total);
    double *J = buf, *Jf = J + (fast ? 0 : m * total), *p = Jf + (fast ? 0 : m * total);
    c.yp = p, c.ym = p + m, c.kp = p + 2 * m, c.km = p + 3 * m, c.kp2 = p + 4 * m;
    c.km2 = p + 5 * m, c.y0 = p + 6 * m, c.seed = p + 7 * m, c.dy = p + 8 * m;
    double *tanbuf = p + 9 * m, *x0buf = tanbuf + total, *saved = x0buf + 2 * total;
    c.kmask = x0buf + total;
    memset(c.kmask, 0, total * sizeof(double));
    c.tan = (double **)(void *)(saved + leafgrad);
    c.x0 = c.tan + nin;
    c.jin = (sl_var **)(void *)(c.x0 + nin);
    c.jtan = (const double **)(void *)(c.jin + nin + nalias);
    for (size_t k = 0, off = 0; k < (size_t)nin; off += sl__n(inputs[k]), k++) {
        c.tan[k] = tanbuf + off;
        c.x0[k] = x0buf + off;
        memcpy(c.x0[k], sl__val(inputs[k]), sl__n(inputs[k]) * sizeof(double));
        c.jin[k] = inputs[k];
        c.jtan[k] = c.tan[k];
    }
    c.njin = nin;
    for (size_t i = 0; i <= sl__id(y) && nalias > 0; i++) {
        const int k = alias_of(&c, t->nodes[i]);
        if (k < 0) continue;
        c.jin[c.njin] = t->nodes[i];
        c.jtan[c.njin++] = c.tan[k];
    }
    double *sp = saved;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (is_grad_leaf(v)) { /* no buffer yet: the sweep will make one; restore zeros */
            if (sl__gradp(v))
                memcpy(sp, sl__gradp(v), sl__n(v) * sizeof(double));
            else
                memset(sp, 0, sl__n(v) * sizeof(double));
            sp += sl__n(v);
        }
    }
    r->fast = fast;
    r->jvp_checked = c.jvp;
    sl_rng rng;
    sl_rng_seed(&rng, s.seed);
    stepfree sf = {0};
    /* the values at the inputs as given, and every leaf a gradient buffer */
    int rc = restore_inputs(&c);
    if (rc == SL_OK) {
        memcpy(c.y0, sl__val(y), m * sizeof(double));
        for (size_t j = 0; j < m; j++) c.y_bad = c.y_bad || !isfinite(c.y0[j]);
        rc = sl__sweep(t, y, NULL, "sl_gradcheck");
    }
    /* the dot test needs no step (and forward mode) */
    if (rc == SL_OK && c.jvp) rc = dot_test(&c, &rng, r, &sf);
    /* the element checks */
    if (rc == SL_OK && fast) {
        rc = fast_check(&c, &rng, r);
        if (rc == SL_OK) rc = restore_inputs(&c);
        if (rc == SL_OK && !r->ok) {
            /* fall back to the full Jacobian to name the worst element */
            const bool fits =
                2.0 * (double)m * (double)total * sizeof(double) < (double)(SIZE_MAX / 2);
            double *jb =
                fits ? t->arena.a.alloc(2 * m * total * sizeof(double) + 1, t->arena.a.ud) : NULL;
            if (jb) {
                /* the full check is the finer one (it knows kinks): its verdict stands */
                sl_gradcheck_report full;
                report_reset(&full);
                rc = full_check(&c, jb, jb + m * total, &full);
                full.fast = 1;
                full.jvp_checked = r->jvp_checked;
                full.dot_rel_err = r->dot_rel_err;
                *r = full;
                t->arena.a.free(jb, t->arena.a.ud);
            }
        }
    } else if (rc == SL_OK) {
        rc = full_check(&c, J, Jf, r);
    }
    /* the order test, along a direction that avoids the kinks found */
    if (rc == SL_OK) rc = restore_inputs(&c);
    if (rc == SL_OK) rc = order_test(&c, &rng, r, &sf);
    int frc = restore_inputs(&c); /* every node back to the unperturbed values */
    if (rc == SL_OK) rc = frc;
    sp = saved;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (is_grad_leaf(v)) {
            if (sl__gradp(v)) memcpy(sl__gradp(v), sp, sl__n(v) * sizeof(double));
            sp += sl__n(v);
        }
    }
    t->arena.a.free(buf, t->arena.a.ud);
    if (rc != SL_OK) return rc;
    if (stepfree_failed) *stepfree_failed = sf.failed;
    if (!r->failed) r->failed = "";
    if (r->worst_input == -2) r->worst_input = -1; /* a projection names no input */
    /* an element that fails is the most useful thing to name; the step-free
     * verdicts (dot, order) stand when every element passed */
    if (!r->ok) {
        element_message(r, &s, &sf, c.step_err);
        return SL_EGRAD;
    }
    if (sf.failed) {
        r->ok = 0;
        r->failed = sf.failed;
        if (r->worst_input >= 0) /* every element passed: say how close the worst came */
            snprintf(r->message, sizeof r->message,
                     "%.300s; worst element: input %d element %zu (output %zu): reverse %.10g, "
                     "forward %.10g, numeric %.10g (abs err %.3g, rel err %.3g: within tolerance)",
                     sf.msg, r->worst_input, r->worst_elem, r->worst_out, r->analytic,
                     shown(r->forward), r->numeric, r->abs_err, r->rel_err);
        else
            snprintf(r->message, sizeof r->message, "%s", sf.msg);
        return SL_EGRAD;
    }
    return SL_OK;
}

/* One op node checked on its own: a fresh tape (t's allocator), each input a
 * leaf holding the values v's inputs have now (with SL_GRAD, but labels),
 * v's op applied with v's attributes, and the checks of sl_gradcheck. Sets
 * *failed to the verdict's name if it blames a rule ("vjp", "jvp", "kink",
 * "dot", "order", or "vjp and jvp": "fd" with finite numbers and a failed
 * order test), else NULL (passed, or the point: "fd" at a singular point or
 * a step outside the domain). Returns SL_OK or the local tape's error. */
static int check_node_alone(sl_tape *t, const sl_var *v, const sl_gradcheck_opts *opts,
                            const char **failed) {
    *failed = NULL;
    const sl_op *op = sl__op(v);
    sl_tape *lt = sl_tape_new_with(&t->arena.a);
    if (!lt) return SL_ENOMEM;
    sl_var *in[SL_MAX_INPUTS], *gin[SL_MAX_INPUTS];
    int ngin = 0;
    for (int k = 0; k < op->arity; k++) {
        const sl_var *x = sl__in(v, k);
        const bool labels = sl__domain_constant(op->domain[k]);
        in[k] = sl_input(lt, sl__ndim(x), sl__dims(x), sl__val(x), labels ? 0 : SL_GRAD);
        if (in[k] && !labels) gin[ngin++] = in[k];
    }
    sl_var *out = sl_apply(lt, op, op->arity, in, sl_attrs_of(v));
    int rc = sl_tape_status(lt);
    if (rc == SL_OK && out && ngin > 0) {
        sl_gradcheck_report lr;
        const char *sf;
        rc = gradcheck(lt, out, ngin, gin, opts, &lr, &sf); /* not sl_gradcheck: no blame inside */
        if (rc == SL_EGRAD && strcmp(lr.failed, "fd"))
            *failed = lr.failed;
        else if (rc == SL_EGRAD && sf && !strcmp(sf, "order") && isfinite(lr.numeric) &&
                 isfinite(lr.analytic))
            /* both modes agree and the differences do not, at a point where the
             * node is finite, and the order test finds the gradient wrong: both
             * rules wrong the same way (one derivative helper shared by both) */
            *failed = "vjp and jvp";
        if (rc == SL_EGRAD) rc = SL_OK;
    }
    sl_tape_free(lt);
    return rc;
}

/* A check of the whole graph failed: find the rule at fault, if one is.
 * (Even after "fd": both rules of one op wrong the same way agree with each
 * other and fail only the differences.) Every op node y
 * depends on is checked on its own at the values this point gives its
 * inputs (check_node_alone), in the order recorded; the first that fails
 * is named at the front of r->message (its op, id, and source line if
 * SL_HERE recorded one). Nothing changes if none fails on its own (the
 * rules are right one by one, e.g. an op the graph uses outside what its
 * own cases reach), or if a local check cannot run. */
static void name_the_rule(sl_tape *t, sl_var *y, const sl_gradcheck_opts *opts,
                          sl_gradcheck_report *r) {
    const size_t ny = (size_t)sl__id(y) + 1;
    unsigned char *need = t->arena.a.alloc(ny, t->arena.a.ud);
    if (!need) return;
    memset(need, 0, ny);
    need[ny - 1] = 1;
    for (size_t i = ny; i-- > 0;) {
        const sl_var *v = t->nodes[i];
        if (!need[i] || !sl__op(v)) continue;
        for (int k = 0; k < sl__arity(v); k++) need[sl__id(sl__in(v, k))] = 1;
    }
    for (size_t i = 0; i < ny; i++) {
        const sl_var *v = t->nodes[i];
        if (!need[i] || !sl__op(v) || (!sl__is_s(v) && (v->flags & SL__NODE_VIEW))) continue;
        const char *failed;
        if (check_node_alone(t, v, opts, &failed) != SL_OK) break;
        if (!failed) continue;
        char where[160] = "";
        if (t->locs && i < t->loc_cap && t->locs[i].file)
            snprintf(where, sizeof where, ", recorded at %s:%d", t->locs[i].file, t->locs[i].line);
        char whole[sizeof r->message];
        memcpy(whole, r->message, sizeof whole);
        const int len = snprintf(r->message, sizeof r->message,
                                 "node %zu of the tape (op %s%s) fails a check of its own (%s) "
                                 "at the values its inputs have here; in the whole graph, %s",
                                 i, sl__op(v)->name, where, failed, whole);
        if (len >= (int)sizeof r->message) memcpy(r->message + sizeof r->message - 4, "...", 4);
        r->culprit = v;
        break;
    }
    t->arena.a.free(need, t->arena.a.ud);
}

/* sl_gradcheck; blame: look for the rule at fault (sl_gradcheck_op checks
 * one op: it is the only one). */
static int check_graph(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs,
                       const sl_gradcheck_opts *opts, sl_gradcheck_report *report, bool blame) {
    sl_gradcheck_report local;
    sl_gradcheck_report *r = report ? report : &local;
    const int rc = gradcheck(t, y, nin, inputs, opts, r, NULL);
    if (blame && rc == SL_EGRAD) name_the_rule(t, y, opts, r);
    if (rc != SL_OK && rc != SL_EGRAD) { /* an error, not a verdict: no check passed */
        const char *e = t ? sl_tape_error(t) : "sl_gradcheck: t is NULL";
        r->ok = 0;
        r->failed = "";
        snprintf(r->message, sizeof r->message, "%s", e ? e : sl_status_str(rc));
    }
    return rc;
}

int sl_gradcheck(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs,
                 const sl_gradcheck_opts *opts, sl_gradcheck_report *report) {
    return check_graph(t, y, nin, inputs, opts, report, true);
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

/* The kink case's input: exactly at the kink (three times) and on both
 * sides, in units of max(1, |at|). The ties case's input: [3,4], reduced
 * over axis -1: two tied maxima and two tied minima; three tied maxima and
 * no tied minimum; no tied maximum and three tied minima. So max and min
 * each meet two ties, three ties and none. */
static const double kink_offsets[] = {0.0, -0.7, 0.45, 0.0, 1.3, 0.0, -0.2};
#define KINK_N NELEM(kink_offsets)
static const double ties_input[12] = {-0.5, 1.2,  -0.5, 1.2, 0.7,  0.7,
                                      0.7,  -1.0, -0.4, 0.9, -0.4, -0.4};
enum { TIES_ROWS = 3, TIES_COLS = 4 };

/* The op's own cases, before any kink or ties case. */
static int base_ncases(const sl_op *op) {
    switch (op->kind) {
    case SL_KIND_MAP:
        return NELEM(map_cases);
    case SL_KIND_ZIP:
        return NELEM(zip_cases);
    default:
        return op->cases ? op->ncases : 0;
    }
}

static bool attrs_equal(const sl_attrs *a, const sl_attrs *b) {
    if (a->alpha != b->alpha || a->beta != b->beta || a->axis != b->axis ||
        a->keepdim != b->keepdim || a->mode != b->mode || a->ndim != b->ndim ||
        a->start != b->start || a->stop != b->stop)
        return false;
    for (int i = 0; i < SL_MAX_DIMS; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* The attribute sets a kink is checked under: the defaults for MAP and ZIP
 * ops; every distinct set of the op's own cases, in order, otherwise (elu's
 * kink is checked with alpha on both sides of 1). Returns how many there
 * are and, for i in range, the i-th in *out. */
static int kink_attrs(const sl_op *op, int i, sl_attrs *out) {
    if (op->kind == SL_KIND_MAP || op->kind == SL_KIND_ZIP || !op->cases) {
        if (i == 0) *out = op->defaults;
        return 1;
    }
    int n = 0;
    for (int c = 0; c < op->ncases; c++) {
        bool seen = false;
        for (int d = 0; d < c && !seen; d++)
            seen = attrs_equal(&op->cases[c].attrs, &op->cases[d].attrs);
        if (seen) continue;
        if (n == i) *out = op->cases[c].attrs;
        n++;
    }
    return n;
}

/* The kinks of op under the attributes a: kink.at, or with at_is_bounds the
 * finite ones of alpha and beta (clamp's lo and hi). Returns how many there
 * are and, for i in range, the i-th in *at. */
static int kinks_under(const sl_op *op, const sl_attrs *a, int i, double *at) {
    if (!op->kink.at_is_bounds) {
        if (i == 0) *at = op->kink.at;
        return 1;
    }
    const double bounds[2] = {a->alpha, a->beta};
    int n = 0;
    for (int k = 0; k < 2; k++)
        if (isfinite(bounds[k])) {
            if (n == i) *at = bounds[k];
            n++;
        }
    return n;
}

/* The kink cases: each kink under each attribute set (kink_attrs), in order.
 * Returns how many there are and, for idx in range, the idx-th one's
 * attributes and point. */
static int kink_case(const sl_op *op, int idx, sl_attrs *attrs, double *at) {
    sl_attrs a;
    const int nsets = kink_attrs(op, -1, &a);
    int n = 0;
    for (int set = 0; set < nsets; set++) {
        kink_attrs(op, set, &a);
        const int m = kinks_under(op, &a, idx - n, at);
        if (idx >= n && idx < n + m) *attrs = a;
        n += m;
    }
    return n;
}

static int kink_ncases(const sl_op *op) {
    sl_attrs unused;
    double unused_at;
    return op->arity == 1 && op->kink.present ? kink_case(op, -1, &unused, &unused_at) : 0;
}

static int ties_ncases(const sl_op *op) { return op->arity == 1 && op->kink.ties ? 1 : 0; }

int sl_op_ncases(const sl_op *op) {
    if (!op) return 0;
    int base = base_ncases(op);
    return base > 0 ? base + kink_ncases(op) + ties_ncases(op) : 0;
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

static void fill(sl_rng *rng, sl_domain d, double *v, size_t n, int classes, int input) {
    switch (d) {
    case SL_DOMAIN_APART: /* input 0 at 0.25 j + [0, 0.1), the others at 0.25 j + [0.125, 0.225) */
        for (size_t i = 0; i < n; i++)
            v[i] = 0.25 * ((double)(sl_rng_next(rng) % 16) - 8.0) + (input ? 0.125 : 0.0) +
                   0.1 * sl_rng_uniform(rng);
        break;
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
    case SL_DOMAIN_INDICES: /* classes: the length of the axis indexed */
        for (size_t i = 0; i < n; i++)
            v[i] = (double)(sl_rng_next(rng) % (uint64_t)(classes > 0 ? classes : 1));
        break;
    case SL_DOMAIN_MASK: { /* zeros and non-zeros in turn, shuffled: both branches */
        const size_t odd = (size_t)(sl_rng_next(rng) % 2); /* a single element: either */
        for (size_t i = 0; i < n; i++) {
            const double u = 0.2 + 1.8 * sl_rng_uniform(rng);
            v[i] = (i + odd) % 2 ? 0.0 : (sl_rng_uniform(rng) < 0.5 ? -u : u);
        }
        for (size_t i = n; i > 1; i--) {
            const size_t j = (size_t)(sl_rng_next(rng) % i);
            const double tmp = v[i - 1];
            v[i - 1] = v[j];
            v[j] = tmp;
        }
        break;
    }
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
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + k, size - k, __VA_ARGS__);                                         \
        k = (w_ < 0 || (size_t)w_ >= size - k) ? size - 1 : k + (size_t)w_;                        \
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
    if (strstr(sig, "start")) PUT(" [%d:%d]", a->start, a->stop);
    if (strstr(sig, "keepdim")) PUT(" keepdim=%d", a->keepdim);
    if (strstr(sig, "alpha")) PUT(" alpha=%g", a->alpha);
    if (strstr(sig, ", p)")) PUT(" p=%g", a->alpha);
    if (strstr(sig, "lo, hi)")) PUT(" lo=%g hi=%g", a->alpha, a->beta);
    if (strstr(sig, "approx")) PUT(" mode=%d", a->mode);
    if (strstr(sig, "dims)")) {
        char sh[64];
        PUT(" to %s", sl__shape_str(sh, a->ndim, a->dims));
    }
    if (strstr(sig, "perm)")) {
        char sh[64];
        PUT(" perm=%s", sl__shape_str(sh, a->ndim, a->dims));
    }
#undef PUT
}

/* The options one case's sl_gradcheck runs with; fast = -1 forces the full
 * Jacobian (the kink and ties cases need its per-entry kink test). */
static sl_gradcheck_opts case_opts(const settings *s, int fast) {
    sl_gradcheck_opts o = {.eps = s->eps,
                           .atol = s->atol,
                           .rtol = s->rtol,
                           .seed = s->seed,
                           .case_index = 0,
                           .plain = s->plain,
                           .fast = fast,
                           .projections = s->projections};
    return o;
}

/* Merge one case's report into r, keeping the worst case's details. */
static void merge_case(sl_gradcheck_report *r, sl_gradcheck_report *one, const settings *s) {
    double prev = r->ncases ? score_of(r->analytic, r->numeric, s) : -1.0;
    double cur = one->worst_input >= 0 ? score_of(one->analytic, one->numeric, s) : -1.0;
    bool take = r->ncases == 0 || (!one->ok && r->ok) || (one->ok == r->ok && cur > prev);
    r->ncases++;
    r->nchecked += one->nchecked;
    r->kinks += one->kinks;
    keep_max(&r->max_abs_err, one->max_abs_err);
    keep_max(&r->max_rel_err, one->max_rel_err);
    keep_max(&r->max_mode_err, one->max_mode_err);
    if (take) {
        const int ok = r->ok && one->ok, ncases = r->ncases;
        const size_t nchecked = r->nchecked, kinks = r->kinks;
        const double mae = r->max_abs_err, mre = r->max_rel_err, mme = r->max_mode_err;
        *r = *one;
        r->ok = ok;
        r->ncases = ncases;
        r->nchecked = nchecked;
        r->kinks = kinks;
        r->max_abs_err = mae;
        r->max_rel_err = mre;
        r->max_mode_err = mme;
    }
    r->ok = r->ok && one->ok;
}

/* sl_apply failed, or sl_gradcheck stopped with an error: say so in one,
 * naming the case as opts->case_index does (from 1; ci counts from 0). */
static void case_error(sl_gradcheck_report *one, int ci, sl_tape *t) {
    one->ok = 0;
    snprintf(one->message, sizeof one->message, "case %d: %s", ci + 1,
             sl_tape_error(t) ? sl_tape_error(t) : "error");
}

/* The bound of the integers a case's constant input holds: for labels, the
 * number of classes (input 0's last dim); for indices, the length of input
 * 0's axis attrs.axis. 1 if input 0 has no such dim. */
static int index_bound(const sl_op_case *c, const sl_attrs *a, sl_domain d) {
    const int nd = c->shape[0][0];
    int ax = nd - 1;
    if (d == SL_DOMAIN_INDICES && !sl__axis(a->axis, nd, &ax)) return 1;
    return nd > 0 && ax >= 0 && ax < nd ? c->shape[0][1 + ax] : 1;
}

/* One of the op's own cases on a fresh tape, inputs from its domains. */
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
    int rc = SL_OK;
    for (int k = 0; k < op->arity; k++) {
        int nd = c->shape[k][0];
        size_t n = nd >= 0 && nd <= SL_MAX_DIMS ? sl__numel(nd, &c->shape[k][1]) : 0;
        if (nd < 0 || nd > SL_MAX_DIMS || n > sizeof data / sizeof data[0]) {
            snprintf(r->message, sizeof r->message,
                     "case %d: input %d has a bad or too large shape", ci + 1, k);
            r->ok = 0;
            sl_tape_free(t);
            return SL_EARG;
        }
        fill(&rng, op->domain[k], data, n, index_bound(c, &attrs, op->domain[k]), k);
        int labels = sl__domain_constant(op->domain[k]);
        in[k] = sl_input(t, nd, &c->shape[k][1], data, labels ? 0 : SL_GRAD);
        if (!labels && in[k]) gin[ngin++] = in[k];
    }
    sl_var *y = sl_apply(t, op, op->arity, in, &attrs);
    sl_gradcheck_report one;
    report_reset(&one);
    if (!y) {
        rc = sl_tape_status(t);
        case_error(&one, ci, t);
    } else if (ngin > 0) {
        sl_gradcheck_opts o = case_opts(s, s->fast);
        rc = check_graph(t, y, ngin, gin, &o, &one, false);
        if (rc != SL_OK && rc != SL_EGRAD) case_error(&one, ci, t);
    }
    /* map the input index back from "differentiable inputs" to op inputs */
    if (one.worst_input >= 0)
        for (int k = 0, g = 0; k < op->arity; k++)
            if (!sl__domain_constant(op->domain[k]) && g++ == one.worst_input) {
                one.worst_input = k;
                break;
            }
    shapes_str(one.shapes, sizeof one.shapes, op, c, &attrs);
    merge_case(r, &one, s);
    sl_tape_free(t);
    return rc;
}

/* |v - want| within rounding: the rules at a kink must give the declared
 * number itself, not something close to it. */
static bool same_value(double v, double want) {
    return fabs(v - want) <= 1e-12 * fmax(1.0, fabs(want));
}

/* A kink-convention failure: element e of input 0, the rule's value and
 * forward mode's, and the sentence. */
static void kink_failure(sl_gradcheck_report *one, size_t e, double a, double f, double want,
                         const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
static void kink_failure(sl_gradcheck_report *one, size_t e, double a, double f, double want,
                         const char *fmt, ...) {
    if (!one->ok) return; /* the first finding stands */
    one->ok = 0;
    one->failed = "kink";
    one->worst_input = 0;
    one->worst_elem = e;
    one->worst_out = e;
    one->analytic = a;
    one->forward = f;
    one->numeric = want; /* the declared value: what the rules should give */
    one->abs_err = fabs(a - want);
    one->rel_err = one->abs_err / fmax(fabs(want), DEFAULT_ATOL);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(one->message, sizeof one->message, fmt, ap);
    va_end(ap);
}

/* The end of a kink or ties case whose own checks ran on t: the full check
 * (kinks accepted where real) unless they already failed; a fault names the
 * case. Returns the status. */
static int full_check_case(sl_tape *t, sl_var *y, sl_var *x, int rc, int ci, const settings *s,
                           sl_gradcheck_report *one) {
    if (rc == SL_OK && one->ok) {
        sl_gradcheck_opts o = case_opts(s, -1);
        rc = check_graph(t, y, 1, &x, &o, one, false);
    }
    if (rc != SL_OK && rc != SL_EGRAD) case_error(one, ci, t);
    return rc;
}

/* Merge a special case's report into r under its label and free its tape. */
static int close_case(sl_tape *t, int rc, const char *shapes, const settings *s,
                      sl_gradcheck_report *one, sl_gradcheck_report *r) {
    memcpy(one->shapes, shapes, sizeof one->shapes); /* sl_gradcheck reset the report */
    merge_case(r, one, s);
    sl_tape_free(t);
    return rc == SL_OK && !one->ok ? SL_EGRAD : rc;
}

/* The kink case: inputs exactly at the idx-th kink (kink_case) and on both
 * sides, under its attribute set. (i) Backward (and the tangent rule) exactly at the
 * kink give the declared value; (ii) that value lies between the one-sided
 * difference quotients there; then the full check, which accepts the
 * entries at the kink as KINK-OK. */
static int check_kink_case(const sl_op *op, int idx, int ci, const settings *s,
                           sl_gradcheck_report *r) {
    sl_attrs attrs = {0};
    double at = op->kink.at;
    kink_case(op, idx, &attrs, &at);
    const double w = fmax(1.0, fabs(at));
    const double declared = op->kink.slope_is_alpha ? attrs.alpha : op->kink.slope;
    const char *what = op->kink.slope_is_alpha ? "alpha" : "slope";
    double xs[KINK_N], ones[KINK_N], tan_out[KINK_N];
    for (int i = 0; i < KINK_N; i++) {
        xs[i] = at + kink_offsets[i] * w;
        ones[i] = 1.0;
    }
    sl_gradcheck_report one;
    report_reset(&one);
    char shapes[sizeof one.shapes];
    {
        const sl_op_case kc = {.shape = {{1, KINK_N}}};
        char sh[96];
        shapes_str(sh, sizeof sh, op, &kc, &attrs);
        snprintf(shapes, sizeof shapes, "%s kink at z=%g", sh, at);
    }
    sl_tape *t = sl_tape_new();
    if (!t) {
        snprintf(r->message, sizeof r->message, "out of memory");
        return SL_ENOMEM;
    }
    int rc = SL_OK;
    sl_var *x = sl_input(t, 1, (int[]){KINK_N}, xs, SL_GRAD);
    sl_var *y = sl_apply(t, op, 1, &x, &attrs);
    if (!y) {
        rc = sl_tape_status(t);
        case_error(&one, ci, t);
    } else if (sl_numel(y) != (size_t)KINK_N) {
        char sh[64];
        rc = SL_EARG;
        one.ok = 0;
        snprintf(one.message, sizeof one.message,
                 "declares a kink but is not element-wise: input [%d] gives output %s", KINK_N,
                 sl__shape_str(sh, y->ndim, y->dims));
    } else {
        /* (i) the rules exactly at the kink */
        rc = sl_backward_seed(t, y, ones);
        const double *tangents[1] = {ones};
        if (rc == SL_OK && op->jvp) rc = sl_jvp(t, y, 1, &x, tangents, tan_out);
        for (int e = 0; e < KINK_N && rc == SL_OK; e++) {
            if (xs[e] != at) continue;
            const double dx = x->grad[e], tf = op->jvp ? tan_out[e] : NAN;
            if (!same_value(dx, declared))
                kink_failure(&one, (size_t)e, dx, tf, declared,
                             "the backward rule gives %.17g exactly at the kink z = %g, but the op "
                             "declares %.17g (%s)",
                             dx, at, declared, what);
            else if (op->jvp && !same_value(tf, declared))
                kink_failure(&one, (size_t)e, dx, tf, declared,
                             "the tangent rule gives %.17g exactly at the kink z = %g, but the op "
                             "declares %.17g (%s)",
                             tf, at, declared, what);
        }
        /* (ii) the declared value between the one-sided slopes */
        double *xv = sl_leaf_data(x);
        const double h = s->eps * w;
        for (int e = 0; e < KINK_N && rc == SL_OK && one.ok; e++) {
            if (xs[e] != at) continue;
            double fv[3];
            const double dh[3] = {0.0, h, -h};
            for (int i = 0; i < 3 && rc == SL_OK; i++) {
                xv[e] = at + dh[i];
                rc = sl_forward(t);
                fv[i] = y->val[e];
            }
            xv[e] = at;
            const double dp = (fv[1] - fv[0]) / h, dm = (fv[0] - fv[2]) / h;
            if (rc == SL_OK && !in_band(declared, fmin(dm, dp), fmax(dm, dp), s))
                kink_failure(&one, (size_t)e, x->grad[e], op->jvp ? tan_out[e] : NAN, declared,
                             "the declared %s %.17g at the kink z = %g is not between the "
                             "one-sided derivatives there, D- = %.17g and D+ = %.17g: no "
                             "subgradient convention",
                             what, declared, at, dm, dp);
        }
        if (rc == SL_OK) rc = sl_forward(t);
        /* the full check, kinks accepted where real */
        rc = full_check_case(t, y, x, rc, ci, s, &one);
    }
    return close_case(t, rc, shapes, s, &one, r);
}

/* The ties case: [3,4] reduced over axis -1, rows with two, three and no
 * tied extrema. Backward must share the gradient equally among the inputs
 * equal to the output (forward mode likewise: the mean of their tangents);
 * then the full check, which accepts the tied entries as KINK-OK. */
static int check_ties_case(const sl_op *op, int ci, const settings *s, sl_gradcheck_report *r) {
    sl_attrs attrs = op->defaults;
    attrs.axis = -1;
    attrs.keepdim = 0;
    sl_gradcheck_report one;
    report_reset(&one);
    char shapes[sizeof one.shapes];
    {
        const sl_op_case tc = {.shape = {{2, TIES_ROWS, TIES_COLS}}};
        char sh[96];
        shapes_str(sh, sizeof sh, op, &tc, &attrs);
        snprintf(shapes, sizeof shapes, "%s ties", sh);
    }
    sl_tape *t = sl_tape_new();
    if (!t) {
        snprintf(r->message, sizeof r->message, "out of memory");
        return SL_ENOMEM;
    }
    int rc = SL_OK;
    sl_var *x = sl_input(t, 2, (int[]){TIES_ROWS, TIES_COLS}, ties_input, SL_GRAD);
    sl_var *y = sl_apply(t, op, 1, &x, &attrs);
    if (!y) {
        rc = sl_tape_status(t);
        case_error(&one, ci, t);
    } else if (sl_numel(y) != TIES_ROWS) {
        char sh[64];
        rc = SL_EARG;
        one.ok = 0;
        snprintf(one.message, sizeof one.message,
                 "declares ties but does not reduce [%d,%d] over axis -1: output %s", TIES_ROWS,
                 TIES_COLS, sl__shape_str(sh, y->ndim, y->dims));
    } else {
        double ones[TIES_ROWS], tan_in[TIES_ROWS * TIES_COLS], tan_out[TIES_ROWS];
        for (int i = 0; i < TIES_ROWS; i++) ones[i] = 1.0;
        for (int i = 0; i < TIES_ROWS * TIES_COLS; i++) tan_in[i] = 1.0 + i;
        rc = sl_backward_seed(t, y, ones);
        const double *tangents[1] = {tan_in};
        if (rc == SL_OK && op->jvp) rc = sl_jvp(t, y, 1, &x, tangents, tan_out);
        for (int row = 0; row < TIES_ROWS && rc == SL_OK && one.ok; row++) {
            const double *xr = ties_input + row * TIES_COLS, yv = y->val[row];
            int k = 0;
            double tsum = 0.0;
            for (int j = 0; j < TIES_COLS; j++)
                if (xr[j] == yv) k++, tsum += tan_in[row * TIES_COLS + j];
            if (k == 0) {
                kink_failure(&one, (size_t)row * TIES_COLS, NAN, NAN, yv,
                             "declares ties, but output %.17g of row %d equals none of its "
                             "inputs: not a max-like reduction",
                             yv, row);
                break;
            }
            for (int j = 0; j < TIES_COLS; j++) {
                const size_t e = (size_t)(row * TIES_COLS + j);
                const double want = xr[j] == yv ? 1.0 / k : 0.0, dx = x->grad[e];
                if (!same_value(dx, want))
                    kink_failure(&one, e, dx, NAN, want,
                                 "ties are not shared equally: row %d has %d tied extrema (%g), "
                                 "and the backward rule gives element %zu %.17g, want %.17g",
                                 row, k, yv, e, dx, want);
            }
            if (op->jvp && one.ok && !same_value(tan_out[row], tsum / k))
                kink_failure(&one, (size_t)row * TIES_COLS, NAN, tan_out[row], tsum / k,
                             "ties are not shared equally by the tangent rule: row %d has %d tied "
                             "extrema, and the output tangent is %.17g, want their mean %.17g",
                             row, k, tan_out[row], tsum / k);
        }
        rc = full_check_case(t, y, x, rc, ci, s, &one);
    }
    return close_case(t, rc, shapes, s, &one, r);
}

int sl_gradcheck_op(const sl_op *op, const sl_gradcheck_opts *opts, sl_gradcheck_report *report) {
    sl_gradcheck_report local;
    sl_gradcheck_report *r = report ? report : &local;
    report_reset(r);
    settings s = settings_of(opts);
    if (!op || !op->name) {
        snprintf(r->message, sizeof r->message, "sl_gradcheck_op: %s is NULL",
                 op ? "op->name" : "op");
        r->ok = 0;
        return SL_EARG;
    }
    if (opts_error(opts, "sl_gradcheck_op", r->message, sizeof r->message)) {
        r->ok = 0;
        return SL_EARG;
    }
    if (!sl__kind_ok(op->kind)) {
        snprintf(r->message, sizeof r->message,
                 "sl_gradcheck_op: op \"%s\" has kind %d, not SL_KIND_CUSTOM (0), SL_KIND_MAP (1) "
                 "or SL_KIND_ZIP (2)",
                 op->name, (int)op->kind);
        r->ok = 0;
        return SL_EARG;
    }
    const char *missing = NULL;
    if (!op->formula || !op->formula[0])
        missing = "a formula";
    else if (!op->derivative || !op->derivative[0])
        missing = "a derivative text";
    else if (!op->signature || !op->signature[0])
        missing = "a signature";
    else if (!op->jvp)
        missing = "a tangent rule (jvp) for forward mode";
    else if ((op->kink.present || op->kink.ties) && (!op->kinks || !op->kinks[0]))
        missing = "a kinks text for its declared kink convention";
    else if ((op->kink.present || op->kink.ties) && op->arity != 1)
        missing = "arity 1 (a kink or ties declaration is for unary ops)";
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
    if (s.case_index > nc) {
        snprintf(r->message, sizeof r->message,
                 "sl_gradcheck_op: opts->case_index = %d, out of range (op \"%s\" has cases 1..%d; "
                 "0: every case)",
                 s.case_index, op->name, nc);
        r->ok = 0;
        return SL_EARG;
    }
    /* case_index counts from 1 (0: every case); ci from 0 */
    const int base = base_ncases(op), nkink = kink_ncases(op);
    const int first = s.case_index > 0 ? s.case_index - 1 : 0;
    const int last = s.case_index > 0 ? s.case_index - 1 : nc - 1;
    int rc = SL_OK;
    for (int ci = first; ci <= last; ci++) {
        int one;
        if (ci < base)
            one = check_case(op, ci, &s, r);
        else if (ci < base + nkink)
            one = check_kink_case(op, ci - base, ci, &s, r);
        else
            one = check_ties_case(op, ci, &s, r);
        if (rc == SL_OK || rc == SL_EGRAD) rc = one != SL_OK && rc == SL_OK ? one : rc;
        if (one != SL_OK && one != SL_EGRAD) break;
    }
    if (!r->ok && rc == SL_OK) rc = SL_EGRAD;
    if (rc != SL_OK) r->ok = 0; /* also when a case stopped with an error */
    if (rc != SL_OK && r->message[0]) {
        char msg[400];                   /* the case's sentence, after "<op> at <shapes>: " */
        size_t len = strlen(r->message); /* NUL-terminated by snprintf */
        if (len > sizeof msg - 1) len = sizeof msg - 1;
        memcpy(msg, r->message, len);
        msg[len] = '\0';
        snprintf(r->message, sizeof r->message, "%.40s at %.64s: %s", op->name, r->shapes, msg);
    }
    return rc;
}

/* ------------------------------------------------------ sl_check_ops */

/* s as a JSON string: quotes, backslashes and control characters escaped. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch == '\r')
            fputs("\\r", f);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* A JSON number; NaN and infinities (which JSON lacks) as null. */
static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

/* "ok", "KINK-OK" or "FAIL(<check>)" into buf. */
static const char *verdict_str(char *buf, size_t size, int rc, const sl_gradcheck_report *r) {
    if (rc == SL_OK && r->ok) return r->kinks ? "KINK-OK" : "ok";
    const char *which = r->failed && r->failed[0] ? r->failed : "error";
    snprintf(buf, size, "FAIL(%s)", which);
    return buf;
}

/* A %.3g number, or "-" for NaN, into buf. */
static const char *num_str(char *buf, size_t size, const char *fmt, double v) {
    if (isnan(v))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, fmt, v);
    return buf;
}

/* One line (or JSON object) for case number `number` of an op: from 1, as
 * opts->case_index takes it; 0 for a name that is not registered. */
static void print_case(FILE *out, int json, int width, const char *name, int number,
                       const char *shapes, int rc, const sl_gradcheck_report *r) {
    char vb[48];
    const char *v = verdict_str(vb, sizeof vb, rc, r);
    const bool ok = rc == SL_OK && r->ok;
    if (json) {
        fputs("{\"op\":", out);
        json_str(out, name);
        fputs(",\"case\":", out);
        if (number > 0)
            fprintf(out, "%d", number);
        else
            fputs("null", out);
        fputs(",\"shapes\":", out);
        json_str(out, shapes);
        fprintf(out, ",\"status\":\"%s\",\"verdict\":", sl_status_name(rc));
        json_str(out, v);
        fputs(",\"failed\":", out);
        json_str(out, ok ? "" : (r->failed ? r->failed : ""));
        fprintf(out, ",\"nchecked\":%zu,\"kinks\":%zu,\"fast\":%d,\"jvp_checked\":%d", r->nchecked,
                r->kinks, r->fast, r->jvp_checked);
        fputs(",\"max_abs_err\":", out);
        json_num(out, r->max_abs_err);
        fputs(",\"max_rel_err\":", out);
        json_num(out, r->max_rel_err);
        fputs(",\"max_mode_err\":", out);
        json_num(out, r->max_mode_err);
        fputs(",\"dot_rel_err\":", out);
        json_num(out, r->dot_rel_err);
        fputs(",\"taylor_order\":", out);
        json_num(out, r->taylor_order);
        fputs(",\"worst\":", out);
        if (r->worst_input >= 0) {
            fprintf(out, "{\"input\":%d,\"element\":%zu,\"output_element\":%zu,\"analytic\":",
                    r->worst_input, r->worst_elem, r->worst_out);
            json_num(out, r->analytic);
            fputs(",\"forward\":", out);
            json_num(out, r->forward);
            fputs(",\"numeric\":", out);
            json_num(out, r->numeric);
            fputs(",\"abs_err\":", out);
            json_num(out, r->abs_err);
            fputs(",\"rel_err\":", out);
            json_num(out, r->rel_err);
            fputs("}", out);
        } else {
            fputs("null", out);
        }
        fputs(",\"message\":", out);
        json_str(out, r->message);
        fputs("}\n", out);
        return;
    }
    char a[32], b[32], c[32], o[32];
    fprintf(out, "%-*s %-36s %-10s %-10s %-10s %-6s %s\n", width, name, shapes[0] ? shapes : "-",
            num_str(a, sizeof a, "%.3g", r->max_abs_err),
            num_str(b, sizeof b, "%.3g", r->max_rel_err),
            num_str(c, sizeof c, "%.3g", r->max_mode_err),
            num_str(o, sizeof o, "%.2f", r->taylor_order), v);
    if (!ok) fprintf(out, "    %s\n", r->message[0] ? r->message : sl_status_str(rc));
}

/* Every case of one op; returns its failed cases (1 for an op that cannot be checked). */
static int check_op_cases(FILE *out, int json, int width, const sl_op *op, int *nok, int *nkink) {
    int fails = 0, nc = sl_op_ncases(op);
    if (nc <= 0) nc = 1; /* still run once, to report what is missing */
    for (int ci = 0; ci < nc; ci++) {
        sl_gradcheck_opts o = {.case_index = ci + 1}; /* from 1: 0 means every case */
        sl_gradcheck_report r;
        int rc = sl_gradcheck_op(op, &o, &r);
        if (out) print_case(out, json, width, op->name, ci + 1, r.shapes, rc, &r);
        if (rc == SL_OK && r.ok) {
            if (r.kinks)
                (*nkink)++;
            else
                (*nok)++;
            continue;
        }
        fails++;
        if (rc != SL_OK && rc != SL_EGRAD)
            break; /* the op itself is incomplete: one line says why */
    }
    return fails;
}

int sl_check_ops(FILE *out, int json, int nnames, const char *const *names) {
    const bool all = nnames <= 0 || !names;
    const int nops = all ? sl_op_count() : nnames;
    int fails = 0, ops_failed = 0, nok = 0, nkink = 0, width = 14;
    for (int i = 0; i < nops; i++) { /* the op column fits the longest name (up to 40) */
        const sl_op *op = all ? sl_op_at(i) : NULL;
        const char *nm = op ? op->name : (names[i] ? names[i] : "");
        const int len = (int)strlen(nm);
        if (len > width) width = len > 40 ? 40 : len;
    }
    if (out && !json)
        fprintf(out, "%-*s %-36s %-10s %-10s %-10s %-6s %s\n", width, "op",
                "case (shapes, attributes)", "max_abs", "max_rel", "|rev-fwd|", "order", "verdict");
    for (int i = 0; i < nops; i++) {
        const sl_op *op = all ? sl_op_at(i) : sl_op_find(names[i]);
        if (!op) {
            const char *nm = names && names[i] ? names[i] : "(null)";
            sl_gradcheck_report r;
            report_reset(&r);
            r.ok = 0;
            r.failed = "unknown";
            if (names[i])
                snprintf(r.message, sizeof r.message, "no op named \"%.200s\" is registered", nm);
            else
                snprintf(r.message, sizeof r.message, "names[%d] is NULL", i);
            if (out) print_case(out, json, width, nm, 0, "", SL_EARG, &r);
            fails++;
            ops_failed++;
            continue;
        }
        int f = check_op_cases(out, json, width, op, &nok, &nkink);
        fails += f;
        ops_failed += f > 0;
    }
    if (out && !json)
        fprintf(out, "%d of %d ops passed (cases: %d ok, %d KINK-OK, %d failed)\n",
                nops - ops_failed, nops, nok, nkink, fails);
    return fails;
}
