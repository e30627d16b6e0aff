/*
 * test_registry.c - the op registry: every registered op passes its own
 * gradient check (one parameterized test per op), carries its docs and a
 * domain for every input, has a unique name that sl_op_find resolves; user
 * ops join through sl_op_register (which rejects malformed descriptors) and
 * work through sl_apply; and a user op with a deliberately wrong derivative
 * is caught - proof that the every-op check can fail.
 *
 * The registry is process-global; Criterion runs each test in its own
 * process, and every user op here has a name no other test uses.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>

/* ------------------------------------------------- every registered op */

static void free_indices(struct criterion_test_params *crp) { cr_free(crp->params); }

ParameterizedTestParameters(registry, gradcheck_every_op) {
    int n = sl_op_count();
    int *idx = cr_malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) idx[i] = i;
    return cr_make_param_array(int, idx, (size_t)n, free_indices);
}

ParameterizedTest(int *i, registry, gradcheck_every_op) {
    const sl_op *op = sl_op_at(*i);
    cr_assert_not_null(op, "op %d", *i);
    sl_gradcheck_report r;
    int rc = sl_gradcheck_op(op, NULL, &r);
    cr_expect_eq(rc, SL_OK, "op %d \"%s\": %s (%s): %s", *i, op->name, sl_status_name(rc), r.shapes,
                 r.message);
    cr_expect_eq(r.ok, 1, "op \"%s\": %s", op->name, r.message);
    cr_expect_eq(r.ncases, sl_op_ncases(op), "op \"%s\": every case ran", op->name);
    cr_expect_gt(r.nchecked, 0, "op \"%s\": no Jacobian entry compared", op->name);
}

Test(registry, the_core_ops_are_registered) {
    static const char *core[] = {
        "add",        "sub",    "mul",       "div",     "neg", "exp",     "log",  "sqrt",
        "abs",        "square", "sin",       "cos",     "pow", "sigmoid", "tanh", "relu",
        "leaky_relu", "matmul", "transpose", "reshape", "sum", "mean",    "max",  "logsumexp"};
    for (size_t i = 0; i < sizeof core / sizeof core[0]; i++)
        cr_expect_not_null(sl_op_find(core[i]), "op \"%s\" is not registered", core[i]);
    cr_expect_geq(sl_op_count(), (int)(sizeof core / sizeof core[0]));
}

Test(registry, names_unique_and_findable) {
    int n = sl_op_count();
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
        const sl_op *op = sl_op_at(i);
        cr_assert_not_null(op);
        cr_assert_not_null(op->name);
        cr_expect_gt(strlen(op->name), 0);
        cr_expect_eq(sl_op_find(op->name), op, "sl_op_find(\"%s\") is another descriptor",
                     op->name);
        for (int j = 0; j < i; j++)
            cr_expect(strcmp(op->name, sl_op_at(j)->name) != 0, "ops %d and %d are both \"%s\"", j,
                      i, op->name);
    }
    cr_expect_null(sl_op_at(-1));
    cr_expect_null(sl_op_at(n));
    cr_expect_null(sl_op_find("no_such_op"));
    cr_expect_null(sl_op_find(""));
    cr_expect_null(sl_op_find(NULL));
    cr_expect_null(sl_op_find("ADD"), "names are case-sensitive");
}

Test(registry, every_op_is_complete) {
    for (int i = 0; i < sl_op_count(); i++) {
        const sl_op *op = sl_op_at(i);
        const char *nm = op->name;
        cr_expect(op->arity >= 1 && op->arity <= SL_MAX_INPUTS, "%s: arity %d", nm, op->arity);
        cr_expect_not_null(op->forward, "%s: no forward", nm);
        cr_expect_not_null(op->backward, "%s: no backward", nm);
        cr_expect(op->signature && op->signature[0], "%s: no signature", nm);
        cr_expect(op->formula && op->formula[0], "%s: no formula", nm);
        cr_expect(op->derivative && op->derivative[0], "%s: no derivative", nm);
        for (int k = 0; k < op->arity; k++)
            cr_expect_neq(op->domain[k], SL_DOMAIN_NONE, "%s: input %d has no domain", nm, k);
        cr_expect_gt(sl_op_ncases(op), 0, "%s: no gradient-check case", nm);
        if (op->kind == SL_KIND_MAP) cr_expect_eq(op->arity, 1, "%s: MAP is unary", nm);
        if (op->kind == SL_KIND_ZIP) cr_expect_eq(op->arity, 2, "%s: ZIP is binary", nm);
        if (op->kind == SL_KIND_CUSTOM)
            cr_expect(op->cases && op->ncases > 0, "%s: CUSTOM without cases", nm);
        /* the signature names the public function: "sl_<name>(" */
        char want[96];
        snprintf(want, sizeof want, "sl_%s(", nm);
        cr_expect(contains(op->signature, want), "%s: signature \"%s\" should start with %s", nm,
                  op->signature, want);
    }
}

/* ------------------------------------------------------------- user ops */

/* cube: a = z^3, da/dz = 3 z^2 */
static void cube_forward(sl_var *out) {
    const double *x = sl_value(sl_in(out, 0));
    double *o = sl_out_data(out);
    for (size_t i = 0; i < sl_numel(out); i++) o[i] = x[i] * x[i] * x[i];
}
static void cube_backward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    const double *xv = sl_value(x), *g = sl_grad(out);
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += g[i] * 3.0 * xv[i] * xv[i];
}
/* the same with a wrong derivative, 2 z^2 */
static void cube_backward_wrong(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    const double *xv = sl_value(x), *g = sl_grad(out);
    for (size_t i = 0; i < sl_numel(out); i++) dx[i] += g[i] * 2.0 * xv[i] * xv[i];
}

/* tangent rule (forward mode): dout = 3 z^2 dz; a NULL input tangent is zero */
static void cube_jvp(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *dx = sl_tangent_data(x), *xv = sl_value(x);
    double *dout = sl_tangent_data(out);
    cr_assert_not_null(dout, "a user jvp must be able to write its output tangent");
    for (size_t i = 0; i < sl_numel(out); i++) dout[i] = dx ? 3.0 * xv[i] * xv[i] * dx[i] : 0.0;
}
/* a wrong tangent rule, 2 z^2 dz */
static void cube_jvp_wrong(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *dx = sl_tangent_data(x), *xv = sl_value(x);
    double *dout = sl_tangent_data(out);
    cr_assert_not_null(dout);
    for (size_t i = 0; i < sl_numel(out); i++) dout[i] = dx ? 2.0 * xv[i] * xv[i] * dx[i] : 0.0;
}

#define CUBE(NAME, BWD, JVP)                                                                       \
    {                                                                                              \
        .name = NAME, .arity = 1, .forward = cube_forward, .backward = BWD, .jvp = JVP,            \
        .signature = "sl_apply(t, op, 1, &x, NULL)", .formula = "a = z^3",                         \
        .derivative = "da/dz = 3 z^2", .domain = {SL_DOMAIN_REAL}, .kind = SL_KIND_MAP             \
    }

Test(registry, user_op_cube_through_sl_apply) {
    static const sl_op cube = CUBE("test_cube", cube_backward, cube_jvp);
    const int before = sl_op_count();
    cr_assert_eq(sl_op_register(&cube), SL_OK);
    cr_expect_eq(sl_op_count(), before + 1);
    cr_expect_eq(sl_op_find("test_cube"), &cube);
    cr_expect_eq(sl_op_at(before), &cube, "registration order");
    const double xs[4] = {-1.5, 0.0, 0.5, 2.0}, g[4] = {1.0, 2.0, -3.0, 0.25};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 2, (int[]){2, 2}, xs, SL_GRAD);
    sl_var *y = sl_apply(t, sl_op_find("test_cube"), 1, &x, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_op_of(y), &cube);
    cr_expect_eq(sl_ndim(y), 2, "a NULL shape rule keeps input 0's shape");
    cr_expect_eq(sl_dims(y)[1], 2);
    cr_assert_eq(sl_backward_seed(t, y, g), SL_OK);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sl_value(y)[i], xs[i] * xs[i] * xs[i]);
        cr_expect_eq(sl_grad(x)[i], g[i] * 3.0 * xs[i] * xs[i]);
    }
    /* replay runs the user forward too */
    sl_leaf_data(x)[3] = 3.0;
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_expect_eq(sl_value(y)[3], 27.0);
    sl_tape_free(t);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(&cube, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ok, 1);
    cr_expect_eq(r.ncases, sl_op_ncases(&cube));
}

Test(registry, wrong_derivative_is_caught) {
    static const sl_op wrong = CUBE("test_cube_wrong", cube_backward_wrong, cube_jvp);
    cr_assert_eq(sl_op_register(&wrong), SL_OK);
    sl_gradcheck_report r;
    int rc = sl_gradcheck_op(sl_op_find("test_cube_wrong"), NULL, &r);
    cr_expect_eq(rc, SL_EGRAD, "a 2z^2 rule for z^3 must fail: %s", sl_status_name(rc));
    cr_expect_eq(r.ok, 0);
    cr_expect(contains(r.message, "test_cube_wrong"), "the message must name the op: %s",
              r.message);
    cr_expect_eq(r.worst_input, 0);
    /* the worst entry's numbers: analytic = 2z^2, numeric ~ 3z^2 at that z */
    cr_expect(near(r.numeric, 1.5 * r.analytic, 1e-6, 1e-6), "analytic %.17g numeric %.17g",
              r.analytic, r.numeric);
    cr_expect_gt(r.abs_err, 1e-3);
    cr_expect_str_eq(r.failed, "vjp", "the backward rule is the wrong one");
}

/* The tangent rule is checked too: right backward, wrong jvp. */
Test(registry, wrong_tangent_rule_is_caught) {
    static const sl_op wrong = CUBE("test_cube_wrong_jvp", cube_backward, cube_jvp_wrong);
    cr_assert_eq(sl_op_register(&wrong), SL_OK);
    sl_gradcheck_report r;
    int rc = sl_gradcheck_op(&wrong, NULL, &r);
    cr_expect_eq(rc, SL_EGRAD, "%s", sl_status_name(rc));
    cr_expect_eq(r.ok, 0);
    cr_expect_str_eq(r.failed, "jvp", "%s", r.message);
    cr_expect(contains(r.message, "test_cube_wrong_jvp"), "%s", r.message);
}

/* A user binary op with no shape rule broadcasts as NumPy: hypot. */
static void hyp_forward(sl_var *out) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    double *o = sl_out_data(out);
    const size_t nb = sl_numel(b);
    for (size_t i = 0; i < sl_numel(out); i++) o[i] = hypot(sl_value(a)[i], sl_value(b)[i % nb]);
}
static void hyp_backward(sl_var *out) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    double *da = sl_grad_data(a), *db = sl_grad_data(b);
    const double *o = sl_value(out), *g = sl_grad(out);
    const size_t nb = sl_numel(b);
    for (size_t i = 0; i < sl_numel(out); i++) {
        if (da) da[i] += g[i] * sl_value(a)[i] / o[i];
        if (db) db[i % nb] += g[i] * sl_value(b)[i % nb] / o[i];
    }
}

Test(registry, user_binary_op_broadcasts_by_default) {
    static const sl_op hyp = {.name = "test_hypot_rowwise",
                              .arity = 2,
                              .forward = hyp_forward,
                              .backward = hyp_backward,
                              .signature = "sl_apply(t, op, 2, in, NULL)",
                              .formula = "out = sqrt(a^2 + b^2)",
                              .derivative = "da = g a/out, db = g b/out",
                              .domain = {SL_DOMAIN_NONZERO, SL_DOMAIN_NONZERO}};
    cr_assert_eq(sl_op_register(&hyp), SL_OK);
    sl_tape *t = sl_tape_new();
    const double A[6] = {3, 1, 2, 6, -1, 0.5}, B[3] = {4, 2, -2};
    sl_var *in[2] = {sl_input(t, 2, (int[]){2, 3}, A, SL_GRAD),
                     sl_input(t, 1, (int[]){3}, B, SL_GRAD)};
    sl_var *y = sl_apply(t, &hyp, 2, in, NULL);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(y), 2);
    cr_expect_eq(sl_dims(y)[0], 2);
    cr_expect_eq(sl_dims(y)[1], 3);
    cr_expect_eq(sl_value(y)[0], 5.0);
    /* wrong arity through sl_apply is an error naming the op */
    cr_expect_null(sl_apply(t, &hyp, 1, in, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "test_hypot_rowwise"), "%s", sl_tape_error(t));
    sl_tape_free(t);
}

Test(registry, register_rejects_malformed_ops) {
    static const sl_op ok = CUBE("test_reg_ok", cube_backward, cube_jvp);
    sl_op bad;
    const int before = sl_op_count();
    /* each refusal says why: sl_op_register_error */
#define REFUSED(op, msg)                                                                           \
    do {                                                                                           \
        cr_expect_eq(sl_op_register(op), SL_EARG, "%s", msg);                                      \
        cr_expect_str_eq(sl_op_register_error() ? sl_op_register_error() : "(none)", msg);         \
    } while (0)
    REFUSED(NULL, "sl_op_register: op is NULL");
    bad = ok, bad.name = NULL;
    REFUSED(&bad, "sl_op_register: the op's name is NULL");
    bad = ok, bad.name = "";
    REFUSED(&bad, "sl_op_register: the op's name is empty");
    bad = ok, bad.name = "test_reg_arity0", bad.arity = 0;
    REFUSED(&bad, "sl_op_register: \"test_reg_arity0\": arity 0, must be 1..3");
    bad = ok, bad.name = "test_reg_arity4", bad.arity = SL_MAX_INPUTS + 1;
    REFUSED(&bad, "sl_op_register: \"test_reg_arity4\": arity 4, must be 1..3");
    bad = ok, bad.name = "test_reg_noforward", bad.forward = NULL;
    REFUSED(&bad, "sl_op_register: \"test_reg_noforward\": no forward rule");
    bad = ok, bad.name = "test_reg_nobackward", bad.backward = NULL;
    REFUSED(&bad, "sl_op_register: \"test_reg_nobackward\": no backward rule");
    bad = ok, bad.name = "test_reg_zip1", bad.kind = SL_KIND_ZIP;
    REFUSED(&bad, "sl_op_register: \"test_reg_zip1\": kind SL_KIND_ZIP needs arity 2, has 1");
    bad = ok, bad.name = "test_reg_kinknan", bad.kink.present = 1, bad.kink.at = NAN;
    REFUSED(&bad, "sl_op_register: \"test_reg_kinknan\": kink at nan with slope 0: both must be "
                  "finite");
    cr_expect_eq(sl_op_count(), before, "nothing malformed was added");
    cr_expect_null(sl_op_find("test_reg_noforward"));
    /* duplicates: a built-in name, and the same user op twice */
    bad = ok, bad.name = "add";
    REFUSED(&bad, "sl_op_register: \"add\" is already registered");
    cr_expect_neq(sl_op_find("add"), &bad, "the built-in stays");
    cr_assert_eq(sl_op_register(&ok), SL_OK);
    cr_expect_null(sl_op_register_error(), "a success clears the reason");
    REFUSED(&ok, "sl_op_register: \"test_reg_ok\" is already registered");
    static const sl_op other = CUBE("test_reg_ok", cube_backward_wrong, cube_jvp);
    REFUSED(&other, "sl_op_register: \"test_reg_ok\" is already registered");
#undef REFUSED
    cr_expect_eq(sl_op_find("test_reg_ok"), &ok);
    cr_expect_eq(sl_op_count(), before + 1);
}

/* out = hypot(a, b): da = (a/out) ta + (b/out) tb */
static void hyp_jvp(sl_var *out) {
    const sl_var *a = sl_in(out, 0), *b = sl_in(out, 1);
    const double *ta = sl_tangent_data(a), *tb = sl_tangent_data(b), *o = sl_value(out);
    double *dout = sl_tangent_data(out);
    cr_assert_not_null(dout);
    const size_t nb = sl_numel(b);
    for (size_t i = 0; i < sl_numel(out); i++)
        dout[i] = (ta ? sl_value(a)[i] / o[i] * ta[i] : 0.0) +
                  (tb ? sl_value(b)[i % nb] / o[i] * tb[i % nb] : 0.0);
}

/* A complete op passes; knocking out any one of its docs, its domain or its
 * cases makes sl_gradcheck_op refuse it with SL_EARG, naming the op. */
Test(registry, gradcheck_op_refuses_undocumented_ops) {
    static const sl_op base = CUBE("test_doc_base", cube_backward, cube_jvp);
    sl_gradcheck_report r;
    cr_assert_eq(sl_gradcheck_op(&base, NULL, &r), SL_OK, "the complete op passes: %s", r.message);
    enum { NV = 8 };
    static sl_op v[NV];
    static const char *names[NV] = {"test_nodomain",   "test_noformula", "test_emptyformula",
                                    "test_noderiv",    "test_nosig",     "test_nocases",
                                    "test_halfdomain", "test_nojvp"};
    for (int i = 0; i < NV; i++) {
        v[i] = base;
        v[i].name = names[i];
    }
    v[0].domain[0] = SL_DOMAIN_NONE;
    v[1].formula = NULL;
    v[2].formula = "";
    v[3].derivative = "";
    v[4].signature = NULL;
    v[5].kind = SL_KIND_CUSTOM; /* and no .cases */
    /* hyp's kernels broadcast b along rows only: its own cases say so */
    static const sl_op_case hyp_cases[] = {{.shape = {{2, 2, 3}, {1, 3}}},
                                           {.shape = {{1, 4}, {1, 4}}}};
    v[6].arity = 2, v[6].forward = hyp_forward, v[6].backward = hyp_backward, v[6].jvp = hyp_jvp,
    v[6].kind = SL_KIND_CUSTOM, v[6].cases = hyp_cases,
    v[6].ncases = 2; /* domain only for input 0 */
    v[7].jvp = NULL;
    for (int i = 0; i < NV; i++) {
        cr_expect_eq(sl_op_register(&v[i]), SL_OK, "%s", names[i]);
        cr_expect_eq(sl_gradcheck_op(&v[i], NULL, &r), SL_EARG, "%s must be refused", names[i]);
        cr_expect_eq(r.ok, 0);
        cr_expect(contains(r.message, names[i]), "%s: %s", names[i], r.message);
    }
    /* the binary op with both domains passes: the refusal was the domain */
    static sl_op hyp2;
    hyp2 = v[6];
    hyp2.name = "test_fulldomain";
    hyp2.domain[0] = hyp2.domain[1] = SL_DOMAIN_NONZERO;
    cr_expect_eq(sl_gradcheck_op(&hyp2, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(sl_gradcheck_op(NULL, NULL, &r), SL_EARG);
}

/* case_index counts from 1 (0: every case): 1 is the first case, ncases
 * the last, ncases + 1 and negative values are errors naming the field. */
Test(registry, gradcheck_op_single_case_and_range) {
    const sl_op *add = sl_op_find("add");
    cr_assert_not_null(add);
    const int nc = sl_op_ncases(add);
    cr_assert_gt(nc, 1);
    sl_gradcheck_opts o = {.case_index = 1};
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(add, &o, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ncases, 1, "one case asked, one case run");
    cr_expect_str_eq(r.shapes, "[] []", "case 1 is the first: two scalars");
    o.case_index = nc;
    cr_expect_eq(sl_gradcheck_op(add, &o, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ncases, 1);
    cr_expect_str_eq(r.shapes, "[2,1,3,1] [1,2,1,4]", "case ncases is the last");
    o.case_index = nc + 1;
    cr_expect_eq(sl_gradcheck_op(add, &o, &r), SL_EARG, "case out of range");
    cr_expect_eq(r.ok, 0);
    char want[128];
    snprintf(want, sizeof want, "opts->case_index = %d, out of range (op \"add\" has cases 1..%d",
             nc + 1, nc);
    cr_expect(contains(r.message, want), "%s (want %s)", r.message, want);
    o.case_index = -1;
    cr_expect_eq(sl_gradcheck_op(add, &o, &r), SL_EARG, "negative: out of range");
    cr_expect(contains(r.message, "opts->case_index = -1, must be >= 0 (0: every case"), "%s",
              r.message);
    cr_expect_eq(sl_op_ncases(NULL), 0);
}

/* An all-zero sl_gradcheck_opts with one field set means the defaults
 * everywhere else: every case of the op, its kink case included - not
 * case 1 alone (users write `sl_gradcheck_opts o = {0}; o.rtol = ...`). */
Test(registry, zero_opts_with_one_field_set_check_every_case) {
    const sl_op *relu = sl_op_find("relu");
    cr_assert_not_null(relu);
    const int nc = sl_op_ncases(relu);
    cr_assert_eq(nc, 5, "four shapes and the kink case");
    sl_gradcheck_report all, r;
    cr_assert_eq(sl_gradcheck_op(relu, NULL, &all), SL_OK, "%s", all.message);
    sl_gradcheck_opts o = {0};
    o.rtol = 2e-3;
    cr_expect_eq(sl_gradcheck_op(relu, &o, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ncases, nc, "every case ran, not one");
    cr_expect_eq(r.nchecked, all.nchecked, "as many entries as with opts = NULL");
    cr_expect_gt(r.kinks, 0, "the kink case ran (KINK-OK entries)");
    cr_expect_eq(r.kinks, all.kinks);
    const sl_gradcheck_opts zero = {0};
    cr_expect_eq(sl_gradcheck_op(relu, &zero, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ncases, nc);
}

/* A case that stops with an error is named as case_index numbers it: the
 * message of the every-case run says "case 2", and case_index = 2 alone
 * gives the same error (case 1 passes). */
static int vec_only_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                          int *ndim, int *dims) {
    (void)op, (void)a;
    if (sl_ndim(in[0]) != 1)
        return sl_tape_fail(t, SL_ESHAPE, "test_vec_only: input is %d-D, needs 1-D",
                            sl_ndim(in[0]));
    *ndim = 1;
    dims[0] = sl_dims(in[0])[0];
    return SL_OK;
}

Test(registry, gradcheck_op_case_numbers_agree_with_case_index) {
    static const sl_op_case cases[] = {{.shape = {{1, 3}}}, {.shape = {{2, 2, 2}}}};
    static sl_op vec_only = CUBE("test_vec_only", cube_backward, cube_jvp);
    vec_only.shape = vec_only_shape;
    vec_only.kind = SL_KIND_CUSTOM;
    vec_only.cases = cases;
    vec_only.ncases = 2;
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(&vec_only, NULL, &r), SL_ESHAPE, "%s", r.message);
    cr_expect_eq(r.ok, 0);
    cr_expect(contains(r.message, "case 2: test_vec_only: input is 2-D"), "%s", r.message);
    sl_gradcheck_opts o = {.case_index = 2};
    cr_expect_eq(sl_gradcheck_op(&vec_only, &o, &r), SL_ESHAPE, "%s", r.message);
    cr_expect(contains(r.message, "case 2: test_vec_only: input is 2-D"), "%s", r.message);
    o.case_index = 1;
    cr_expect_eq(sl_gradcheck_op(&vec_only, &o, &r), SL_OK, "%s", r.message);
    cr_expect_str_eq(r.shapes, "[3]");
}

/* A kind outside the enum is refused at registration, naming the value
 * (it used to register and fail later with "kind CUSTOM needs .cases"),
 * and sl_gradcheck_op names it too for an op that was never registered. */
Test(registry, register_refuses_a_kind_out_of_range) {
    static const sl_op ok = CUBE("test_kind_ok", cube_backward, cube_jvp);
    const int before = sl_op_count();
    sl_op bad = ok;
    bad.name = "test_kind9";
    bad.kind = (sl_op_kind)9;
    cr_expect_eq(sl_op_register(&bad), SL_EARG);
    cr_expect_str_eq(sl_op_register_error() ? sl_op_register_error() : "(none)",
                     "sl_op_register: \"test_kind9\": kind 9, must be SL_KIND_CUSTOM (0), "
                     "SL_KIND_MAP (1) or SL_KIND_ZIP (2)");
    bad.kind = (sl_op_kind)-1;
    cr_expect_eq(sl_op_register(&bad), SL_EARG);
    cr_expect(contains(sl_op_register_error(), "\"test_kind9\": kind -1, must be"), "%s",
              sl_op_register_error());
    cr_expect_eq(sl_op_count(), before, "nothing added");
    cr_expect_null(sl_op_find("test_kind9"));
    bad.kind = (sl_op_kind)9;
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(&bad, NULL, &r), SL_EARG);
    cr_expect_eq(r.ok, 0);
    cr_expect(contains(r.message, "op \"test_kind9\" has kind 9, not SL_KIND_CUSTOM (0)"), "%s",
              r.message);
    /* the same op with a kind in range registers */
    cr_expect_eq(sl_op_register(&ok), SL_OK, "%s", sl_op_register_error());
}
