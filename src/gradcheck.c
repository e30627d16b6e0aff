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
    int case_index;
} settings;

static settings settings_of(const sl_gradcheck_opts *o) {
    settings s = {DEFAULT_EPS, DEFAULT_ATOL, DEFAULT_RTOL, 42, -1};
    if (o) {
        if (o->eps > 0) s.eps = o->eps;
        if (o->atol > 0) s.atol = o->atol;
        if (o->rtol > 0) s.rtol = o->rtol;
        if (o->seed) s.seed = o->seed;
        s.case_index = o->case_index;
    }
    return s;
}

static void report_reset(sl_gradcheck_report *r) {
    memset(r, 0, sizeof *r);
    r->ok = 1;
    r->worst_input = -1;
}

/* Score of one Jacobian entry: error over its allowance; > 1 fails, NaN -> inf. */
static double score_of(double a, double n, const settings *s) {
    double err = fabs(a - n);
    if (!(err == err) || !isfinite(a) || !isfinite(n)) return INFINITY;
    return err / (s->atol + s->rtol * fabs(n));
}

static void note_entry(sl_gradcheck_report *r, double *worst_score, int input, size_t elem,
                       size_t outi, double a, double n, const settings *s) {
    double err = fabs(a - n), rel = err / fmax(fabs(n), s->atol);
    double sc = score_of(a, n, s);
    r->nchecked++;
    if (!(err <= r->max_abs_err)) r->max_abs_err = err; /* NaN sticks */
    if (!(rel <= r->max_rel_err)) r->max_rel_err = rel;
    if (sc > 1.0) r->ok = 0;
    if (r->worst_input < 0 || sc > *worst_score) {
        *worst_score = sc;
        r->worst_input = input;
        r->worst_elem = elem;
        r->worst_out = outi;
        r->analytic = a;
        r->numeric = n;
        r->abs_err = err;
        r->rel_err = rel;
    }
}

static bool is_grad_leaf(const sl_var *v) {
    return (v->flags & SL__NODE_LEAF) && (v->flags & SL__NODE_GRAD);
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
    size_t total = 0;
    for (int k = 0; k < nin; k++) {
        const sl_var *x = inputs[k];
        if (!x || x->tape != t)
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] is NULL or from another tape", k);
        if (!(x->flags & SL__NODE_LEAF))
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] (a %s node) is not a leaf", k,
                            x->op->name);
        if (!(x->flags & SL__NODE_GRAD))
            return sl__fail(t, SL_EARG, "sl_gradcheck: inputs[%d] was made without SL_GRAD", k);
        total += x->n;
    }
    const size_t m = y->n;
    /* scratch: analytic Jacobian (m x total), seed (m), y+ and y- (m), and a
     * copy of every leaf's gradient so the caller's accumulated state survives */
    size_t leafgrad = 0;
    for (size_t i = 0; i < t->n; i++)
        if (is_grad_leaf(t->nodes[i])) leafgrad += t->nodes[i]->n;
    if (total && m > (SIZE_MAX / sizeof(double) - 3 * m - leafgrad) / total)
        return sl__fail(t, SL_ENOMEM, "sl_gradcheck: Jacobian of %zu x %zu is too large", m, total);
    size_t bytes = (m * total + 3 * m + leafgrad) * sizeof(double);
    double *buf = t->arena.a.alloc(bytes ? bytes : 1, t->arena.a.ud);
    if (!buf)
        return sl__fail(t, SL_ENOMEM, "sl_gradcheck: out of memory for a %zu x %zu Jacobian", m,
                        total);
    double *J = buf, *seed = J + m * total, *yp = seed + m, *ym = yp + m, *saved = ym + m;
    double *sp = saved;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (is_grad_leaf(v)) { /* no buffer yet: the sweep will make one, restore zeros */
            if (v->grad)
                memcpy(sp, v->grad, v->n * sizeof(double));
            else
                memset(sp, 0, v->n * sizeof(double));
            sp += v->n;
        }
    }
    int rc = SL_OK;
    /* analytic: row j of J is the gradient of y[j] */
    memset(seed, 0, m * sizeof(double));
    for (size_t j = 0; j < m && rc == SL_OK; j++) {
        for (int k = 0; k < nin; k++)
            if (inputs[k]->grad) memset(inputs[k]->grad, 0, inputs[k]->n * sizeof(double));
        seed[j] = 1.0;
        rc = sl__sweep(t, y, seed, "sl_gradcheck");
        seed[j] = 0.0;
        size_t off = 0;
        for (int k = 0; k < nin && rc == SL_OK; k++) {
            const sl_var *x = inputs[k];
            for (size_t e = 0; e < x->n; e++) J[j * total + off + e] = x->grad ? x->grad[e] : 0.0;
            off += x->n;
        }
    }
    /* numeric: column (k, e) by central differences */
    double worst = -1.0;
    size_t off = 0;
    for (int k = 0; k < nin && rc == SL_OK; k++) {
        sl_var *x = inputs[k];
        for (size_t e = 0; e < x->n && rc == SL_OK; e++) {
            const double orig = x->val[e];
            x->val[e] = orig + s.eps;
            rc = sl_forward(t);
            memcpy(yp, y->val, m * sizeof(double));
            x->val[e] = orig - s.eps;
            if (rc == SL_OK) rc = sl_forward(t);
            memcpy(ym, y->val, m * sizeof(double));
            x->val[e] = orig;
            for (size_t j = 0; j < m && rc == SL_OK; j++) {
                double num = (yp[j] - ym[j]) / (2.0 * s.eps);
                note_entry(r, &worst, k, e, j, J[j * total + off + e], num, &s);
            }
        }
        off += x->n;
    }
    if (rc == SL_OK) rc = sl_forward(t); /* every node back to the unperturbed values */
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
    if (!r->ok) {
        snprintf(r->message, sizeof r->message,
                 "input %d element %zu (output element %zu): analytic %.17g vs numeric %.17g "
                 "(abs err %.3g, rel err %.3g; allowed %.3g + %.3g*|numeric|)",
                 r->worst_input, r->worst_elem, r->worst_out, r->analytic, r->numeric,
                 r->abs_err, r->rel_err, s.atol, s.rtol);
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
        sl_gradcheck_opts o = {s->eps, s->atol, s->rtol, s->seed, -1};
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
    if (rc == SL_EGRAD && r->worst_input >= 0)
        snprintf(r->message, sizeof r->message,
                 "%s at %s: input %d element %zu (output element %zu): analytic %.17g vs "
                 "numeric %.17g (abs err %.3g, rel err %.3g)",
                 op->name, r->shapes, r->worst_input, r->worst_elem, r->worst_out, r->analytic,
                 r->numeric, r->abs_err, r->rel_err);
    return rc;
}
