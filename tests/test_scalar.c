/*
 * test_scalar.c - the observable semantics of rank-0 (scalar) nodes, pinned
 * so that a different internal representation of scalars (a compact record
 * instead of a full tensor node) can be verified against the public API.
 *
 * The reference for every rank-0 result is the SAME op evaluated through the
 * tensor path on shape-[1] leaves (sl_input with ndim 1, dims {1}), compared
 * bit for bit (NaN matches NaN, +0 and -0 differ); besides that, closed forms
 * and libm evaluated here in the test. Nothing expected is read back from the
 * rank-0 path itself.
 *
 * Rank-0 nodes are scalar nodes (docs/design.md): the shape-[1] tensor path
 * is an independent implementation of the same rules, sharing only the
 * expressions of src/ops/rules.h. bytes_per_scalar_node is issue 6's memory
 * target for them.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

/* Bit-for-bit equality, except that any NaN matches any NaN (payload and
 * sign of a NaN are not part of the contract); +0 and -0 differ. */
static int same(double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* Numeric equality where +0 == -0 and NaN == NaN. */
static int eqn(double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return a == b;
}

/* A leaf holding x: rank 0 (sl_scalar) or the reference shape [1]. */
static sl_var *leaf(sl_tape *t, int rank0, double x, int flags) {
    return rank0 ? sl_scalar(t, x, flags) : sl_input(t, 1, (int[]){1}, &x, flags);
}

/* The shape a node must have: [] for the rank-0 path, [1] for the reference. */
static int has_shape(const sl_var *v, int rank0) {
    if (rank0) return sl_ndim(v) == 0 && sl_numel(v) == 1 && sl_dims(v) != NULL;
    return sl_ndim(v) == 1 && sl_dims(v)[0] == 1 && sl_numel(v) == 1;
}

/* The inputs every element-wise op is evaluated at: zeros of both signs,
 * the smallest subnormal, tiny, moderate, softplus's threshold, large,
 * huge, infinite and NaN. Not const: the compiler must not fold the libm
 * calls the tests make on them. */
static double XS[] = {0.0,   -0.0,  5e-324, -5e-324,  1e-300,    -1e-300, 0.5,
                      -0.5,  1.0,   -1.0,   3.0,      -3.0,      20.0,    40.0,
                      -40.0, 1e300, -1e300, INFINITY, -INFINITY, NAN};
#define NXS ((int)(sizeof XS / sizeof XS[0]))

/* ------------------------------------------------------ the op tables */

typedef sl_var *(*unary_fn)(sl_tape *t, sl_var *x, double p);
typedef sl_var *(*binary_fn)(sl_tape *t, sl_var *a, sl_var *b);

#define U0(NAME)                                                                                   \
    static sl_var *u_##NAME(sl_tape *t, sl_var *x, double p) {                                     \
        (void)p;                                                                                   \
        return sl_##NAME(t, x);                                                                    \
    }
U0(neg)
U0(exp)
U0(log)
U0(log1p)
U0(expm1)
U0(sqrt)
U0(abs)
U0(square)
U0(sin)
U0(cos)
U0(sigmoid)
U0(tanh)
U0(relu)
U0(softplus)
U0(silu)
U0(softsign)
U0(log_sigmoid)
#undef U0
static sl_var *u_pow(sl_tape *t, sl_var *x, double p) { return sl_pow(t, x, p); }
static sl_var *u_leaky_relu(sl_tape *t, sl_var *x, double p) { return sl_leaky_relu(t, x, p); }
static sl_var *u_elu(sl_tape *t, sl_var *x, double p) { return sl_elu(t, x, p); }
static sl_var *u_gelu(sl_tape *t, sl_var *x, double p) { return sl_gelu(t, x, (int)p); }
static sl_var *u_clamp(sl_tape *t, sl_var *x, double p) { return sl_clamp(t, x, -p, p); }

typedef struct unary_case {
    const char *name; /* the registered op's name */
    unary_fn f;
    double p; /* pow's exponent, leaky_relu's and elu's alpha, gelu's mode, clamp's [-p, p] */
} unary_case;

static const unary_case UNARY[] = {
    {"neg", u_neg, 0},
    {"exp", u_exp, 0},
    {"log", u_log, 0},
    {"log1p", u_log1p, 0},
    {"expm1", u_expm1, 0},
    {"sqrt", u_sqrt, 0},
    {"abs", u_abs, 0},
    {"square", u_square, 0},
    {"sin", u_sin, 0},
    {"cos", u_cos, 0},
    {"pow", u_pow, 2.0},
    {"pow", u_pow, 3.0},
    {"pow", u_pow, 1.0},
    {"pow", u_pow, 0.5},
    {"pow", u_pow, -1.5},
    {"pow", u_pow, 0.0},
    {"sigmoid", u_sigmoid, 0},
    {"tanh", u_tanh, 0},
    {"relu", u_relu, 0},
    {"leaky_relu", u_leaky_relu, 0.01},
    {"leaky_relu", u_leaky_relu, 0.2},
    {"softplus", u_softplus, 0},
    {"elu", u_elu, 1.0},
    {"elu", u_elu, 0.5},
    {"elu", u_elu, 2.0},
    {"gelu", u_gelu, SL_GELU_ERF},
    {"gelu", u_gelu, SL_GELU_TANH},
    {"silu", u_silu, 0},
    {"softsign", u_softsign, 0},
    {"log_sigmoid", u_log_sigmoid, 0},
    {"clamp", u_clamp, 1.0},
    {"clamp", u_clamp, 0.0},
    {"clamp", u_clamp, INFINITY},
};
#define NUNARY ((int)(sizeof UNARY / sizeof UNARY[0]))

typedef struct binary_case {
    const char *name;
    binary_fn f;
} binary_case;

static const binary_case BINARY[] = {
    {"add", sl_add}, {"sub", sl_sub},         {"mul", sl_mul},
    {"div", sl_div}, {"maximum", sl_maximum}, {"minimum", sl_minimum},
};
#define NBINARY ((int)(sizeof BINARY / sizeof BINARY[0]))

/* Names of the custom ops this file registers (skipped by the coverage test). */
#define OWN_PREFIX "scalar_test_"

/* Every built-in element-wise op (kind MAP or ZIP, plus pow, elu, gelu and
 * clamp, which list their own cases; not the comparisons) is in the tables
 * above: a new one needs a row. */
Test(scalar, tables_cover_every_elementwise_op) {
    int seen = 0;
    for (int i = 0; i < sl_op_count(); i++) {
        const sl_op *op = sl_op_at(i);
        cr_assert_not_null(op);
        if (strncmp(op->name, OWN_PREFIX, strlen(OWN_PREFIX)) == 0) continue;
        /* the comparisons have no scalar form (rank-0 inputs are views) and no
         * gradient or tangent to compare: test_compare.c covers their scalars */
        if (op->backward == sl_op_find("gt")->backward) continue;
        const int elementwise = op->kind == SL_KIND_MAP || op->kind == SL_KIND_ZIP ||
                                !strcmp(op->name, "pow") || !strcmp(op->name, "elu") ||
                                !strcmp(op->name, "gelu") || !strcmp(op->name, "clamp");
        if (!elementwise) continue;
        int found = 0;
        for (int k = 0; k < NUNARY; k++) found |= !strcmp(UNARY[k].name, op->name);
        for (int k = 0; k < NBINARY; k++) found |= !strcmp(BINARY[k].name, op->name);
        cr_expect(found, "element-wise op \"%s\" is not covered by test_scalar.c", op->name);
        seen++;
    }
    cr_expect_eq(seen, 6 + 22, "6 binary and 22 unary element-wise ops");
    /* and every table row names a registered op */
    for (int k = 0; k < NUNARY; k++) cr_expect_not_null(sl_op_find(UNARY[k].name));
    for (int k = 0; k < NBINARY; k++) cr_expect_not_null(sl_op_find(BINARY[k].name));
}

/* ------------------------------------------- 1. reverse mode vs tensor path */

typedef struct result {
    double y;      /* value of the op node */
    double gy;     /* gradient of the op node after sl_backward */
    double ga, gb; /* gradients of the leaves */
} result;

static result run_unary(const unary_case *c, double x, int rank0) {
    result r = {NAN, NAN, NAN, NAN};
    sl_tape *t = sl_tape_new();
    cr_assert_not_null(t);
    sl_var *a = leaf(t, rank0, x, SL_GRAD);
    sl_var *y = c->f(t, a, c->p);
    cr_assert_not_null(y, "%s(%g) p=%g rank0=%d: %s", c->name, x, c->p, rank0, sl_tape_error(t));
    cr_expect(has_shape(y, rank0), "%s: output shape (rank %d)", c->name, sl_ndim(y));
    cr_expect_null(sl_grad(a), "%s: no gradient before a sweep", c->name);
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s: %s", c->name, sl_tape_error(t));
    cr_assert_not_null(sl_grad(y));
    cr_assert_not_null(sl_grad(a));
    r.y = sl_item(y);
    cr_expect(same(sl_value(y)[0], r.y), "sl_value and sl_item agree");
    r.gy = sl_grad(y)[0];
    r.ga = sl_grad(a)[0];
    sl_tape_free(t);
    return r;
}

/* y = op(x) for every unary op and input: value and both gradients. */
Test(scalar, unary_value_and_gradient_match_tensor_path) {
    for (int k = 0; k < NUNARY; k++)
        for (int i = 0; i < NXS; i++) {
            const unary_case *c = &UNARY[k];
            const double x = XS[i];
            const result s = run_unary(c, x, 1), v = run_unary(c, x, 0);
            cr_expect(same(s.y, v.y), "%s(x = %a) p = %g: value %a (rank 0) vs %a ([1])", c->name,
                      x, c->p, s.y, v.y);
            cr_expect(same(s.ga, v.ga), "%s(x = %a) p = %g: dy/dx %a (rank 0) vs %a ([1])", c->name,
                      x, c->p, s.ga, v.ga);
            cr_expect(same(s.gy, 1.0) && same(v.gy, 1.0), "%s: dy/dy = 1 (%a, %a)", c->name, s.gy,
                      v.gy);
        }
}

/* The binary ops with both leaves rank 0 (or both [1]); also one of each
 * (output [1] either way), and only one leaf wanting a gradient. */
static result run_binary(const binary_case *c, double xa, double xb, int ra, int rb, int fa,
                         int fb) {
    result r = {NAN, NAN, NAN, NAN};
    sl_tape *t = sl_tape_new();
    cr_assert_not_null(t);
    sl_var *a = leaf(t, ra, xa, fa), *b = leaf(t, rb, xb, fb);
    sl_var *y = c->f(t, a, b);
    cr_assert_not_null(y, "%s: %s", c->name, sl_tape_error(t));
    cr_expect(has_shape(y, ra && rb), "%s: output rank %d for input ranks %d, %d", c->name,
              sl_ndim(y), sl_ndim(a), sl_ndim(b));
    cr_expect_eq(sl_requires_grad(y), (fa | fb) ? 1 : 0);
    cr_assert_eq(sl_backward(t, y), SL_OK, "%s: %s", c->name, sl_tape_error(t));
    r.y = sl_item(y);
    r.gy = sl_grad(y) ? sl_grad(y)[0] : NAN;
    if (fa) r.ga = sl_grad(a)[0];
    if (fb) r.gb = sl_grad(b)[0];
    cr_expect(fa || sl_grad(a) == NULL, "%s: a constant leaf has no gradient", c->name);
    cr_expect(fb || sl_grad(b) == NULL, "%s: a constant leaf has no gradient", c->name);
    sl_tape_free(t);
    return r;
}

static void expect_same_result(const char *what, const binary_case *c, double xa, double xb,
                               result s, result v) {
    cr_expect(same(s.y, v.y), "%s %s(%a, %a): value %a vs %a", what, c->name, xa, xb, s.y, v.y);
    cr_expect(same(s.ga, v.ga), "%s %s(%a, %a): d/da %a vs %a", what, c->name, xa, xb, s.ga, v.ga);
    cr_expect(same(s.gb, v.gb), "%s %s(%a, %a): d/db %a vs %a", what, c->name, xa, xb, s.gb, v.gb);
    cr_expect(same(s.gy, v.gy), "%s %s(%a, %a): dy/dy %a vs %a", what, c->name, xa, xb, s.gy, v.gy);
}

Test(scalar, binary_value_and_gradients_match_tensor_path) {
    for (int k = 0; k < NBINARY; k++)
        for (int i = 0; i < NXS; i++)
            for (int j = 0; j < NXS; j++) {
                const binary_case *c = &BINARY[k];
                const double xa = XS[i], xb = XS[j];
                const result ref = run_binary(c, xa, xb, 0, 0, SL_GRAD, SL_GRAD);
                cr_expect(same(ref.gy, 1.0));
                expect_same_result("[]x[]", c, xa, xb,
                                   run_binary(c, xa, xb, 1, 1, SL_GRAD, SL_GRAD), ref);
                expect_same_result("[]x[1]", c, xa, xb,
                                   run_binary(c, xa, xb, 1, 0, SL_GRAD, SL_GRAD), ref);
                expect_same_result("[1]x[]", c, xa, xb,
                                   run_binary(c, xa, xb, 0, 1, SL_GRAD, SL_GRAD), ref);
                /* one constant operand: the other's gradient is unchanged */
                result s = run_binary(c, xa, xb, 1, 1, SL_GRAD, 0);
                result v = run_binary(c, xa, xb, 0, 0, SL_GRAD, 0);
                expect_same_result("[]x[] b const", c, xa, xb, s, v);
                cr_expect(same(s.ga, ref.ga), "%s: d/da does not depend on b's flag", c->name);
                s = run_binary(c, xa, xb, 1, 1, 0, SL_GRAD);
                v = run_binary(c, xa, xb, 0, 0, 0, SL_GRAD);
                expect_same_result("[]x[] a const", c, xa, xb, s, v);
                cr_expect(same(s.gb, ref.gb), "%s: d/db does not depend on a's flag", c->name);
                /* both constant: no gradient anywhere, sl_backward still fine */
                s = run_binary(c, xa, xb, 1, 1, 0, 0);
                cr_expect(isnan(s.gy), "%s: no gradient on a node without SL_GRAD inputs", c->name);
                cr_expect(same(s.y, ref.y));
            }
}

/* op(x, x): one leaf on both sides, its gradient is the sum of both uses. */
Test(scalar, binary_same_leaf_twice_matches_tensor_path) {
    for (int k = 0; k < NBINARY; k++)
        for (int i = 0; i < NXS; i++) {
            const binary_case *c = &BINARY[k];
            const double x = XS[i];
            double val[2], grad[2];
            for (int rank0 = 0; rank0 <= 1; rank0++) {
                sl_tape *t = sl_tape_new();
                sl_var *a = leaf(t, rank0, x, SL_GRAD);
                sl_var *y = c->f(t, a, a);
                cr_assert_not_null(y);
                cr_assert_eq(sl_backward(t, y), SL_OK);
                val[rank0] = sl_item(y);
                grad[rank0] = sl_grad(a)[0];
                sl_tape_free(t);
            }
            cr_expect(same(val[1], val[0]), "%s(%a, same): %a vs %a", c->name, x, val[1], val[0]);
            cr_expect(same(grad[1], grad[0]), "%s(%a, same): d/dx %a vs %a", c->name, x, grad[1],
                      grad[0]);
        }
    /* closed forms at a finite point: d(x*x) = 2x, d(x/x) = 0, d(x-x) = 0, d(x+x) = 2 */
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 1.5, SL_GRAD);
    cr_assert_eq(sl_backward(t, sl_mul(t, x, x)), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 3.0);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, sl_add(t, x, x)), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 2.0);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, sl_sub(t, x, x)), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 0.0);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, sl_div(t, x, x)), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 0.0);
    sl_tape_free(t);
}

/* Closed forms and libm evaluated here, on the rank-0 path alone: the
 * kinks' conventions, the infinities, and smooth points. */
static void expect_unary(unary_fn f, double p, const char *name, double x, double want_y,
                         double want_g) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, x, SL_GRAD);
    sl_var *y = f(t, a, p);
    cr_assert_not_null(y, "%s: %s", name, sl_tape_error(t));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect(eqn(sl_item(y), want_y), "%s(%a) p=%g = %a, want %a", name, x, p, sl_item(y), want_y);
    cr_expect(eqn(sl_grad(a)[0], want_g), "%s'(%a) p=%g = %a, want %a", name, x, p, sl_grad(a)[0],
              want_g);
    sl_tape_free(t);
}

Test(scalar, kinks_and_infinities_closed_form) {
    /* relu and abs at 0: subgradient 0; relu propagates NaN */
    expect_unary(u_relu, 0, "relu", 0.0, 0.0, 0.0);
    expect_unary(u_relu, 0, "relu", -0.0, 0.0, 0.0);
    expect_unary(u_relu, 0, "relu", 2.5, 2.5, 1.0);
    expect_unary(u_relu, 0, "relu", -2.5, 0.0, 0.0);
    expect_unary(u_relu, 0, "relu", INFINITY, INFINITY, 1.0);
    expect_unary(u_relu, 0, "relu", -INFINITY, 0.0, 0.0);
    sl_tape *t = sl_tape_new();
    cr_expect(isnan(sl_item(sl_relu(t, sl_scalar(t, NAN, SL_GRAD)))), "relu(NaN) is NaN");
    sl_tape_free(t);
    expect_unary(u_abs, 0, "abs", 0.0, 0.0, 0.0);
    expect_unary(u_abs, 0, "abs", -0.0, 0.0, 0.0);
    expect_unary(u_abs, 0, "abs", -3.0, 3.0, -1.0);
    expect_unary(u_abs, 0, "abs", -INFINITY, INFINITY, -1.0);
    /* leaky_relu and elu at 0: alpha */
    expect_unary(u_leaky_relu, 0.01, "leaky_relu", 0.0, 0.0, 0.01);
    expect_unary(u_leaky_relu, 0.2, "leaky_relu", 0.0, 0.0, 0.2);
    expect_unary(u_leaky_relu, 0.2, "leaky_relu", -5.0, 0.2 * -5.0, 0.2);
    expect_unary(u_leaky_relu, 0.2, "leaky_relu", -INFINITY, -INFINITY, 0.2);
    expect_unary(u_elu, 0.5, "elu", 0.0, 0.0, 0.5);
    expect_unary(u_elu, 2.0, "elu", 0.0, 0.0, 2.0);
    expect_unary(u_elu, 1.0, "elu", 0.0, 0.0, 1.0);
    expect_unary(u_elu, 2.0, "elu", -INFINITY, -2.0, 0.0);
    expect_unary(u_elu, 2.0, "elu", INFINITY, INFINITY, 1.0);
    /* sigmoid: exactly 1/2 and 1/4 at 0, saturated without overflow */
    expect_unary(u_sigmoid, 0, "sigmoid", 0.0, 0.5, 0.25);
    expect_unary(u_sigmoid, 0, "sigmoid", INFINITY, 1.0, 0.0);
    expect_unary(u_sigmoid, 0, "sigmoid", -INFINITY, 0.0, 0.0);
    expect_unary(u_sigmoid, 0, "sigmoid", 1e300, 1.0, 0.0);
    expect_unary(u_sigmoid, 0, "sigmoid", -1e300, 0.0, 0.0);
    expect_unary(u_tanh, 0, "tanh", INFINITY, 1.0, 0.0);
    expect_unary(u_tanh, 0, "tanh", 0.0, 0.0, 1.0);
    /* softplus above PyTorch's threshold 20 is the identity */
    expect_unary(u_softplus, 0, "softplus", 40.0, 40.0, 1.0);
    expect_unary(u_softplus, 0, "softplus", -INFINITY, 0.0, 0.0);
    /* IEEE at the poles */
    expect_unary(u_log, 0, "log", 0.0, -INFINITY, INFINITY);
    expect_unary(u_log, 0, "log", -1.0, NAN, -1.0);
    expect_unary(u_sqrt, 0, "sqrt", 0.0, 0.0, INFINITY);
    expect_unary(u_exp, 0, "exp", -INFINITY, 0.0, 0.0);
    expect_unary(u_exp, 0, "exp", 1000.0, INFINITY, INFINITY);
    expect_unary(u_pow, 0.5, "pow", 0.0, 0.0, INFINITY);
    /* pow with p = 0: gradient 0 everywhere, also where z^-1 is not finite */
    expect_unary(u_pow, 0.0, "pow", 0.0, 1.0, 0.0);
    expect_unary(u_pow, 0.0, "pow", INFINITY, 1.0, 0.0);
    expect_unary(u_pow, 0.0, "pow", NAN, 1.0, 0.0);
    expect_unary(u_pow, 2.0, "pow", -3.0, 9.0, -6.0);
    expect_unary(u_pow, 3.0, "pow", 2.0, 8.0, 12.0);
    /* gelu at 0: 0 and 1/2 in both forms */
    expect_unary(u_gelu, SL_GELU_ERF, "gelu", 0.0, 0.0, 0.5);
    expect_unary(u_gelu, SL_GELU_TANH, "gelu", 0.0, 0.0, 0.5);
    expect_unary(u_silu, 0, "silu", 0.0, 0.0, 0.5);
    expect_unary(u_softsign, 0, "softsign", 0.0, 0.0, 1.0);
    expect_unary(u_softsign, 0, "softsign", 1.0, 0.5, 0.25);
    expect_unary(u_softsign, 0, "softsign", -3.0, -0.75, 0.0625);
    expect_unary(u_neg, 0, "neg", 2.0, -2.0, -1.0);
    expect_unary(u_square, 0, "square", -3.0, 9.0, -6.0);
    expect_unary(u_square, 0, "square", 1e300, INFINITY, 2e300);
    /* the binary ops' poles */
    t = sl_tape_new();
    sl_var *a = sl_scalar(t, 1.0, SL_GRAD), *b = sl_scalar(t, 0.0, SL_GRAD);
    sl_var *q = sl_div(t, a, b);
    cr_assert_eq(sl_backward(t, q), SL_OK);
    cr_expect_eq(sl_item(q), INFINITY);
    cr_expect_eq(sl_grad(a)[0], INFINITY, "d(a/b)/da = 1/b");
    cr_expect_eq(sl_grad(b)[0], -INFINITY, "d(a/b)/db = -(a/b)/b");
    sl_tape_free(t);
}

/* Smooth points against libm called here: the same function, so bit for bit. */
Test(scalar, smooth_points_match_libm) {
    static volatile double pts[] = {0.3, -0.7, 1.9, -2.6, 7.25};
    for (int i = 0; i < (int)(sizeof pts / sizeof pts[0]); i++) {
        const double z = pts[i];
        expect_unary(u_exp, 0, "exp", z, exp(z), 0.0 + exp(z));
        expect_unary(u_sin, 0, "sin", z, sin(z), 0.0 + cos(z));
        expect_unary(u_cos, 0, "cos", z, cos(z), 0.0 + -sin(z));
        const double th = tanh(z);
        expect_unary(u_tanh, 0, "tanh", z, th, 1.0 - th * th);
        const double s = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
        expect_unary(u_sigmoid, 0, "sigmoid", z, s, s * (1.0 - s));
        expect_unary(u_square, 0, "square", z, z * z, 2.0 * z);
        const double az = fabs(z);
        expect_unary(u_log, 0, "log", az, log(az), 1.0 / az);
        expect_unary(u_sqrt, 0, "sqrt", az, sqrt(az), 0.5 / sqrt(az));
        expect_unary(u_pow, -1.5, "pow", az, pow(az, -1.5), -1.5 * pow(az, -2.5));
        expect_unary(u_leaky_relu, 0.2, "leaky_relu", z, z > 0 ? z : 0.2 * z, z > 0 ? 1.0 : 0.2);
        expect_unary(u_elu, 0.5, "elu", z, z > 0 ? z : 0.5 * expm1(z),
                     z > 0 ? 1.0 : 0.5 * expm1(z) + 0.5);
    }
}

/* --------------------------------------------- 2. forward mode vs tensor path */

static double jvp_unary(const unary_case *c, double x, double tan, int rank0) {
    sl_tape *t = sl_tape_new();
    sl_var *a = leaf(t, rank0, x, SL_GRAD);
    sl_var *y = c->f(t, a, c->p);
    cr_assert_not_null(y);
    double dy = -12345.0;
    const double *tans[1] = {&tan};
    cr_assert_eq(sl_jvp(t, y, 1, &a, tans, &dy), SL_OK, "%s: %s", c->name, sl_tape_error(t));
    sl_tape_free(t);
    return dy;
}

Test(scalar, unary_jvp_matches_tensor_path) {
    static const double tans[] = {1.0, -2.5, 0.0};
    for (int k = 0; k < NUNARY; k++)
        for (int i = 0; i < NXS; i++)
            for (int j = 0; j < 3; j++) {
                const unary_case *c = &UNARY[k];
                const double x = XS[i];
                const double s = jvp_unary(c, x, tans[j], 1), v = jvp_unary(c, x, tans[j], 0);
                cr_expect(same(s, v), "jvp %s(%a) p=%g along %g: %a (rank 0) vs %a ([1])", c->name,
                          x, c->p, tans[j], s, v);
                /* a unary op's Jacobian is its derivative: along 1, the reverse gradient */
                if (j == 0) {
                    const result r = run_unary(c, x, 1);
                    cr_expect(eqn(s, r.ga), "jvp %s(%a) along 1 = %a, reverse gives %a", c->name, x,
                              s, r.ga);
                }
            }
}

/* tangents (ta, tb); mask 1: only a listed, 2: only b, 3: both */
static double jvp_binary(const binary_case *c, double xa, double xb, double ta, double tb, int mask,
                         int ra, int rb) {
    sl_tape *t = sl_tape_new();
    sl_var *a = leaf(t, ra, xa, SL_GRAD), *b = leaf(t, rb, xb, SL_GRAD);
    sl_var *y = c->f(t, a, b);
    cr_assert_not_null(y);
    sl_var *in[2];
    const double *tv[2];
    int n = 0;
    if (mask & 1) in[n] = a, tv[n++] = &ta;
    if (mask & 2) in[n] = b, tv[n++] = &tb;
    double dy = -12345.0;
    cr_assert_eq(sl_jvp(t, y, n, in, tv, &dy), SL_OK, "%s: %s", c->name, sl_tape_error(t));
    sl_tape_free(t);
    return dy;
}

Test(scalar, binary_jvp_matches_tensor_path) {
    for (int k = 0; k < NBINARY; k++)
        for (int i = 0; i < NXS; i++)
            for (int j = 0; j < NXS; j++)
                for (int mask = 1; mask <= 3; mask++) {
                    const binary_case *c = &BINARY[k];
                    const double xa = XS[i], xb = XS[j], ta = 0.75, tb = -1.25;
                    const double v = jvp_binary(c, xa, xb, ta, tb, mask, 0, 0);
                    const double s = jvp_binary(c, xa, xb, ta, tb, mask, 1, 1);
                    const double m1 = jvp_binary(c, xa, xb, ta, tb, mask, 1, 0);
                    const double m2 = jvp_binary(c, xa, xb, ta, tb, mask, 0, 1);
                    cr_expect(same(s, v), "jvp %s(%a, %a) mask %d: %a (rank 0) vs %a ([1])",
                              c->name, xa, xb, mask, s, v);
                    cr_expect(same(m1, v) && same(m2, v), "jvp %s(%a, %a) mixed ranks", c->name, xa,
                              xb);
                }
    /* closed forms at finite points: the tangent along e_a, e_b is the gradient */
    for (int k = 0; k < NBINARY; k++) {
        const binary_case *c = &BINARY[k];
        const double xa = -1.75, xb = 0.625;
        const result r = run_binary(c, xa, xb, 1, 1, SL_GRAD, SL_GRAD);
        cr_expect(eqn(jvp_binary(c, xa, xb, 1.0, 0.0, 1, 1, 1), r.ga), "%s: jvp e_a", c->name);
        cr_expect(eqn(jvp_binary(c, xa, xb, 0.0, 1.0, 2, 1, 1), r.gb), "%s: jvp e_b", c->name);
    }
}

/* A leaf that does not reach y has no effect; y without tangents reads 0. */
Test(scalar, jvp_of_unrelated_leaf_is_zero) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, 0.5, SL_GRAD), *b = sl_scalar(t, 2.0, SL_GRAD);
    sl_var *y = sl_exp(t, a);
    const double one = 1.0, *tv[1] = {&one};
    double dy = 7.0;
    cr_assert_eq(sl_jvp(t, y, 1, &b, tv, &dy), SL_OK);
    cr_expect_eq(dy, 0.0);
    cr_assert_eq(sl_jvp(t, y, 1, &a, tv, &dy), SL_OK, "tangent buffers are reused");
    cr_expect_eq(dy, exp(0.5));
    /* forward mode leaves the reverse sweep alone, and the other way round */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(a)[0], exp(0.5));
    cr_expect_eq(sl_grad(b)[0], 0.0);
    cr_assert_eq(sl_jvp(t, y, 1, &a, tv, &dy), SL_OK);
    cr_expect_eq(dy, exp(0.5));
    cr_expect_eq(sl_grad(a)[0], exp(0.5));
    sl_tape_free(t);
}

/* ------------------------------------------------------------- 3. replay */

/* A scalar graph of three SL_GRAD leaves and one constant, every node kept in
 * nodes[] (NGRAPH of them) so two tapes can be compared node by node. */
#define NGRAPH 18
static sl_var *record_graph(sl_tape *t, const double v[3], sl_var **n) {
    n[0] = sl_scalar(t, v[0], SL_GRAD); /* a */
    n[1] = sl_scalar(t, v[1], SL_GRAD); /* b */
    n[2] = sl_scalar(t, v[2], SL_GRAD); /* c */
    n[3] = sl_scalar(t, 2.0, 0);        /* k */
    n[4] = sl_mul(t, n[0], n[1]);       /* u = a b */
    n[5] = sl_add(t, n[4], n[2]);       /* u + c */
    n[6] = sl_sigmoid(t, n[5]);         /* s */
    n[7] = sl_tanh(t, n[0]);            /* w = tanh a */
    n[8] = sl_sub(t, n[1], n[2]);       /* b - c */
    n[9] = sl_relu(t, n[8]);            /* r */
    n[10] = sl_add(t, n[9], n[3]);      /* r + k */
    n[11] = sl_div(t, n[6], n[10]);     /* d = s / (r + k) */
    n[12] = sl_exp(t, n[7]);            /* e = exp w */
    n[13] = sl_add(t, n[11], n[12]);    /* d + e */
    n[14] = sl_log(t, n[13]);           /* l */
    n[15] = sl_mul(t, n[14], n[12]);    /* l e */
    n[16] = sl_mul(t, n[3], n[3]);      /* k k: no gradient */
    n[17] = sl_sub(t, n[15], n[11]);    /* y = l e - d */
    return n[17];
}
/* relu's branch flips between the two value sets */
static const double V1[3] = {0.7, -1.3, 0.4}, V2[3] = {-0.45, 2.1, -0.6};

static void expect_same_nodes(sl_var *const *x, sl_var *const *ref, const char *what) {
    for (int i = 0; i < NGRAPH; i++) {
        cr_expect(same(sl_item(x[i]), sl_item(ref[i])), "%s: node %d value %a vs %a", what, i,
                  sl_item(x[i]), sl_item(ref[i]));
        cr_expect_eq(sl_grad(x[i]) == NULL, sl_grad(ref[i]) == NULL, "%s: node %d grad NULL?", what,
                     i);
        if (sl_grad(x[i]) && sl_grad(ref[i]))
            cr_expect(same(sl_grad(x[i])[0], sl_grad(ref[i])[0]), "%s: node %d grad %a vs %a", what,
                      i, sl_grad(x[i])[0], sl_grad(ref[i])[0]);
    }
}

Test(scalar, replay_equals_fresh_recording) {
    sl_var *n[NGRAPH], *f[NGRAPH];
    sl_tape *t = sl_tape_new(), *fresh = sl_tape_new();
    sl_var *y = record_graph(t, V1, n);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    const size_t size = sl_tape_size(t);
    cr_expect_eq(size, NGRAPH);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    /* the same tape and a fresh one at V1 agree */
    cr_assert_not_null(record_graph(fresh, V1, f));
    cr_assert_eq(sl_backward(fresh, f[17]), SL_OK);
    expect_same_nodes(n, f, "recorded at V1");
    cr_expect_neq(sl_grad(n[1])[0], 0.0);
    cr_expect_null(sl_grad(n[3]), "the constant has no gradient");
    cr_expect_null(sl_grad(n[16]), "an op on constants only has no gradient");
    /* a replay with unchanged leaves reproduces every value, zeroes the op
     * nodes' gradients and keeps the leaves' */
    cr_assert_eq(sl_forward(t), SL_OK);
    for (int i = 0; i < NGRAPH; i++) {
        cr_expect(same(sl_item(n[i]), sl_item(f[i])), "replayed at V1: node %d value", i);
        if (i >= 4 && sl_grad(n[i]))
            cr_expect_eq(sl_grad(n[i])[0], 0.0, "node %d gradient after sl_forward", i);
    }
    for (int i = 0; i < 3; i++) cr_expect(same(sl_grad(n[i])[0], sl_grad(f[i])[0]));
    /* new leaf values, replay, sweep: as if recorded at V2 */
    sl_zero_grad(t);
    for (int i = 0; i < 3; i++) sl_leaf_data(n[i])[0] = V2[i];
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    sl_tape_clear(fresh);
    cr_assert_not_null(record_graph(fresh, V2, f));
    cr_assert_eq(sl_backward(fresh, f[17]), SL_OK);
    expect_same_nodes(n, f, "replayed at V2");
    cr_expect_gt(sl_item(n[9]), 0.0, "relu's branch flipped");
    cr_expect_eq(sl_tape_size(t), size, "replay and sweeps record nothing");
    /* a replay zeroes the op nodes' gradients; leaves keep theirs */
    const double gb = sl_grad(n[1])[0];
    cr_assert_eq(sl_forward(t), SL_OK);
    for (int i = 4; i < NGRAPH; i++)
        if (sl_grad(n[i])) cr_expect_eq(sl_grad(n[i])[0], 0.0, "node %d after sl_forward", i);
    cr_expect(same(sl_grad(n[1])[0], gb));
    /* leaves' gradients accumulate across sweeps (each leaf here is used
     * twice, so the sum may round differently from 2x); op nodes' do not */
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < 3; i++)
        cr_expect(near(sl_grad(n[i])[0], 2.0 * sl_grad(f[i])[0], 1e-15, 0.0),
                  "leaf %d: %a after two sweeps, one gives %a", i, sl_grad(n[i])[0],
                  sl_grad(f[i])[0]);
    for (int i = 4; i < NGRAPH; i++)
        if (sl_grad(n[i]))
            cr_expect(same(sl_grad(n[i])[0], sl_grad(f[i])[0]), "op node %d: %a vs %a", i,
                      sl_grad(n[i])[0], sl_grad(f[i])[0]);
    sl_tape_free(t);
    sl_tape_free(fresh);
}

/* Each leaf used once: a second sweep exactly doubles the leaf gradients,
 * leaves op nodes' gradients as they were; sl_zero_grad zeroes them all. */
Test(scalar, leaf_gradients_double_op_gradients_do_not) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, 0.3, SL_GRAD), *b = sl_scalar(t, -1.1, SL_GRAD);
    sl_var *c = sl_scalar(t, 2.5, SL_GRAD);
    sl_var *sa = sl_sigmoid(t, a), *tb = sl_tanh(t, b), *lc = sl_log(t, c);
    sl_var *m = sl_mul(t, sa, tb);
    sl_var *y = sl_add(t, m, lc);
    cr_assert_not_null(y);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const double s = 1.0 / (1.0 + exp(-0.3)), th = tanh(-1.1);
    /* closed forms */
    cr_expect(near(sl_grad(a)[0], th * s * (1.0 - s), 1e-15, 0.0));
    cr_expect(near(sl_grad(b)[0], s * (1.0 - th * th), 1e-15, 0.0));
    cr_expect_eq(sl_grad(c)[0], 1.0 / 2.5);
    sl_var *all[8] = {a, b, c, sa, tb, lc, m, y};
    double g1[8];
    for (int i = 0; i < 8; i++) g1[i] = sl_grad(all[i])[0];
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < 3; i++)
        cr_expect(same(sl_grad(all[i])[0], 2.0 * g1[i]), "leaf %d: %a, want %a", i,
                  sl_grad(all[i])[0], 2.0 * g1[i]);
    for (int i = 3; i < 8; i++)
        cr_expect(same(sl_grad(all[i])[0], g1[i]), "op node %d: %a, want %a", i, sl_grad(all[i])[0],
                  g1[i]);
    sl_zero_grad(t);
    for (int i = 0; i < 8; i++) {
        cr_assert_not_null(sl_grad(all[i]));
        cr_expect_eq(sl_grad(all[i])[0], 0.0, "node %d after sl_zero_grad", i);
    }
    cr_assert_eq(sl_backward(t, y), SL_OK);
    for (int i = 0; i < 8; i++)
        cr_expect(same(sl_grad(all[i])[0], g1[i]), "node %d: one sweep after zero_grad", i);
    /* a seeded sweep scales every gradient (by a power of 2: exactly) */
    sl_zero_grad(t);
    const double dy = -2.0;
    cr_assert_eq(sl_backward_seed(t, y, &dy), SL_OK);
    for (int i = 0; i < 8; i++)
        cr_expect(same(sl_grad(all[i])[0], -2.0 * g1[i]), "node %d with seed -2: %a, want %a", i,
                  sl_grad(all[i])[0], -2.0 * g1[i]);
    sl_tape_free(t);
}

/* Clearing and re-recording the same scalar graph reuses the memory. */
Test(scalar, clear_and_rerecord_allocates_nothing) {
    sl_var *n[NGRAPH], *f[NGRAPH];
    sl_tape *t = sl_tape_new(), *ref = sl_tape_new();
    cr_assert_not_null(record_graph(ref, V2, f));
    cr_assert_eq(sl_backward(ref, f[17]), SL_OK);
    size_t bytes = 0;
    for (int step = 0; step < 4; step++) {
        sl_tape_clear(t);
        cr_expect_eq(sl_tape_size(t), 0);
        for (int rep = 0; rep < 500; rep++) cr_assert_not_null(record_graph(t, V1, n));
        sl_var *y = record_graph(t, V2, n);
        cr_assert_not_null(y);
        cr_assert_eq(sl_backward(t, y), SL_OK);
        cr_assert_eq(
            sl_jvp(t, y, 1, &n[0], (const double *const[]){&(double){1.0}}, &(double){0.0}), SL_OK);
        expect_same_nodes(n, f, "after clear");
        cr_expect_eq(sl_tape_size(t), 501 * NGRAPH);
        if (step == 0)
            bytes = sl_tape_bytes(t);
        else
            cr_expect_eq(sl_tape_bytes(t), bytes, "step %d: %zu bytes, first step %zu", step,
                         sl_tape_bytes(t), bytes);
    }
    sl_tape_free(t);
    sl_tape_free(ref);
}

/* --------------------------------------------------------- 4. mixed graphs */

Test(scalar, scalar_broadcast_into_tensor_ops) {
    sl_tape *t = sl_tape_new();
    const double V[3] = {1.0, -2.0, 3.5};
    sl_var *v = sl_input(t, 1, (int[]){3}, V, SL_GRAD);
    sl_var *s = sl_scalar(t, 0.75, SL_GRAD);
    /* y = sum(v * s) + sum(s * v): dy/ds = 2 sum v, dy/dv_i = 2 s */
    sl_var *p = sl_mul(t, v, s), *q = sl_mul(t, s, v);
    cr_assert_not_null(q);
    cr_expect_eq(sl_ndim(p), 1);
    cr_expect_eq(sl_dims(p)[0], 3);
    cr_expect_eq(sl_ndim(q), 1);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(sl_value(p)[i], V[i] * 0.75);
        cr_expect_eq(sl_value(q)[i], 0.75 * V[i]);
    }
    sl_var *y = sl_add(t, sl_sum(t, p, SL_ALL, 0), sl_sum(t, q, SL_ALL, 0));
    cr_assert_eq(sl_ndim(y), 0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(s)[0], 2.0 * (1.0 - 2.0 + 3.5));
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(v)[i], 1.5);

    /* z = sum((s2 + M)^2) + sum(M - s2) + sum(M / s3):
     * dz/ds2 = sum 2 (s2 + M) - 6, dz/ds3 = -sum M / s3^2, dz/dM = 2 (s2 + M) + 1 + 1/s3 */
    sl_tape_clear(t);
    const double M[6] = {0.5, -1.25, 2.0, 4.0, -0.75, 0.125};
    sl_var *m = sl_input(t, 2, (int[]){2, 3}, M, SL_GRAD);
    sl_var *s2 = sl_scalar(t, -0.5, SL_GRAD), *s3 = sl_scalar(t, 4.0, SL_GRAD);
    sl_var *sum1 = sl_add(t, s2, m);
    cr_assert_not_null(sum1);
    cr_expect_eq(sl_ndim(sum1), 2);
    cr_expect_eq(sl_dims(sum1)[0], 2);
    cr_expect_eq(sl_dims(sum1)[1], 3);
    sl_var *z = sl_add(
        t, sl_sum(t, sl_square(t, sum1), SL_ALL, 0),
        sl_add(t, sl_sum(t, sl_sub(t, m, s2), SL_ALL, 0), sl_sum(t, sl_div(t, m, s3), SL_ALL, 0)));
    cr_assert_not_null(z, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward(t, z), SL_OK);
    double ds2 = 0.0, ds3 = 0.0, sumsq = 0.0, summ = 0.0, sumd = 0.0;
    for (int i = 0; i < 6; i++) {
        ds2 += 2.0 * (-0.5 + M[i]);
        ds3 -= M[i] / 4.0 / 4.0;
        sumsq += (-0.5 + M[i]) * (-0.5 + M[i]);
        summ += M[i] + 0.5;
        sumd += M[i] / 4.0;
        cr_expect_eq(sl_grad(m)[i], 2.0 * (-0.5 + M[i]) + 1.0 + 0.25, "dz/dM[%d]", i);
    }
    cr_expect_eq(sl_grad(s2)[0], ds2 - 6.0);
    cr_expect_eq(sl_grad(s3)[0], ds3);
    cr_expect_eq(sl_item(z), sumsq + (summ + sumd));
    sl_tape_free(t);
}

/* A tensor reduced to rank 0, then scalar ops with a rank-0 leaf. */
Test(scalar, reductions_feed_scalar_ops) {
    sl_tape *t = sl_tape_new();
    const double M[6] = {0.25, -1.0, 1.5, 2.0, -0.5, 0.75};
    sl_var *m = sl_input(t, 2, (int[]){3, 2}, M, SL_GRAD);
    sl_var *s = sl_scalar(t, 0.4, SL_GRAD);
    sl_var *r = sl_sum(t, m, SL_ALL, 0);
    cr_assert_not_null(r);
    cr_expect_eq(sl_ndim(r), 0, "a full reduction is rank 0");
    cr_expect_eq(sl_numel(r), 1);
    cr_expect_eq(sl_item(r), 3.0);
    sl_var *mu = sl_mean(t, m, SL_ALL, 0);
    cr_expect_eq(sl_ndim(mu), 0);
    /* z = r s + sigmoid(s) + mean(m) s^2 */
    sl_var *z =
        sl_add(t, sl_add(t, sl_mul(t, r, s), sl_sigmoid(t, s)), sl_mul(t, mu, sl_square(t, s)));
    cr_assert_not_null(z, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(z), 0);
    cr_assert_eq(sl_backward(t, z), SL_OK);
    const double sg = 1.0 / (1.0 + exp(-0.4));
    cr_expect(near(sl_grad(s)[0], 3.0 + sg * (1.0 - sg) + 0.5 * 2.0 * 0.4, 1e-15, 0.0), "%a",
              sl_grad(s)[0]);
    for (int i = 0; i < 6; i++)
        cr_expect(near(sl_grad(m)[i], 0.4 + 0.16 / 6.0, 1e-15, 0.0), "dz/dm[%d] = %a", i,
                  sl_grad(m)[i]);
    cr_expect(near(sl_item(z), 1.2 + sg + 0.5 * 0.16, 1e-15, 0.0));

    /* reductions and reshapes of a rank-0 node are the identity */
    sl_tape_clear(t);
    sl_var *x = sl_scalar(t, -1.75, SL_GRAD);
    sl_var *ids[4] = {sl_sum(t, x, SL_ALL, 0), sl_sum(t, x, SL_ALL, 1), sl_max(t, x, SL_ALL, 0),
                      sl_mean(t, x, SL_ALL, 0)};
    sl_var *r11 = sl_reshape(t, x, 2, (int[]){1, 1});
    cr_assert_not_null(r11, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(r11), 2);
    sl_var *back = sl_reshape(t, r11, 0, NULL);
    cr_assert_not_null(back, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(back), 0);
    sl_var *acc = back;
    for (int i = 0; i < 4; i++) {
        cr_assert_not_null(ids[i]);
        cr_expect_eq(sl_ndim(ids[i]), 0, "reduction %d of [] is []", i);
        cr_expect_eq(sl_item(ids[i]), -1.75);
        acc = sl_add(t, acc, ids[i]);
    }
    cr_assert_eq(sl_backward(t, acc), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 5.0);
    /* losses of rank-0 operands: (p - y)^2 */
    sl_tape_clear(t);
    sl_var *pr = sl_scalar(t, 0.25, SL_GRAD), *tg = sl_scalar(t, 1.0, SL_GRAD);
    sl_var *l = sl_mse(t, pr, tg);
    cr_assert_not_null(l);
    cr_expect_eq(sl_ndim(l), 0);
    cr_expect_eq(sl_item(l), 0.5625);
    cr_assert_eq(sl_backward(t, l), SL_OK);
    cr_expect_eq(sl_grad(pr)[0], -1.5);
    cr_expect_eq(sl_grad(tg)[0], 1.5);
    sl_tape_free(t);
}

/* A rank-0 parameter used through sl_use. */
Test(scalar, rank0_parameter_leaf) {
    sl_params *ps = sl_params_new();
    const double w0 = 1.5;
    sl_param *p = sl_param_new(ps, "w", 0, NULL, &w0);
    cr_assert_not_null(p, "%s", sl_params_error(ps));
    sl_tape *t = sl_tape_new();
    sl_var *w = sl_use(t, p), *x = sl_scalar(t, -2.0, 0);
    cr_assert_not_null(w);
    cr_expect_eq(sl_ndim(w), 0);
    cr_expect_eq(sl_requires_grad(w), 1);
    cr_expect_eq(sl_item(w), 1.5);
    sl_var *y = sl_mul(t, sl_mul(t, w, w), x); /* y = w^2 x, dy/dw = 2 w x */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_param_grad(p)[0], -6.0);
    cr_expect_eq(sl_grad(w)[0], -6.0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_param_grad(p)[0], -12.0, "accumulates into the parameter");
    /* an update of the parameter is seen by the replay */
    sl_param_value(p)[0] = 0.5;
    cr_expect_eq(sl_item(w), 0.5, "the leaf reads the parameter's buffer");
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_expect_eq(sl_item(y), -0.5);
    sl_zero_grad(t);
    cr_expect_eq(sl_param_grad(p)[0], 0.0, "sl_zero_grad zeroes sl_use leaves too");
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_param_grad(p)[0], -2.0);
    sl_tape_free(t);
    sl_params_free(ps);
}

/* Long stretches of leaves, as W5 and every scalar model record them: the
 * sweeps pass over runs of plain leaves without visiting each one once a
 * replay has marked the runs (docs/design.md, "Leaf runs"). Runs end at a
 * change of SL_GRAD, at an sl_use leaf and at an op, and hold at most 127
 * leaves; these stretches cross all of those. Expected values are closed
 * forms: y = p * q + sum_i k_i x_i^2 with p, q leaves before the stretch,
 * k_i = 1 for SL_GRAD leaves and the parameter, so dy/dx_i = 2 x_i (exact),
 * dy/dp = q, dy/dq = p. */
enum { NRUN = 700 };
static int run_kind(int i) { /* 0: SL_GRAD leaf, 1: constant, 2: sl_use */
    if (i == 455) return 2;
    return (i >= 300 && i < 350) || (i >= 600 && i < 605) ? 1 : 0;
}
static sl_var *record_runs(sl_tape *t, sl_param *w, sl_var **x, sl_var **pq) {
    pq[0] = sl_scalar(t, 0.75, SL_GRAD);
    pq[1] = sl_scalar(t, -1.25, SL_GRAD);
    sl_var *acc = sl_mul(t, pq[0], pq[1]);
    for (int i = 0; i < NRUN; i++) {
        const int k = run_kind(i);
        x[i] = k == 2 ? sl_use(t, w) : sl_scalar(t, 0.5 + i / 1024.0, k == 0 ? SL_GRAD : 0);
    }
    for (int i = 0; i < NRUN; i++) acc = sl_add(t, acc, sl_mul(t, x[i], x[i]));
    return acc;
}
static void expect_run_grads(sl_var *const *x, sl_var *const *pq, sl_param *w, double times,
                             const char *what) {
    for (int i = 0; i < NRUN; i++) {
        const int k = run_kind(i);
        if (k == 1) {
            cr_expect_null(sl_grad(x[i]), "%s: constant %d has no gradient", what, i);
            continue;
        }
        const double want = times * 2.0 * (k == 2 ? sl_param_value(w)[0] : 0.5 + i / 1024.0);
        const double got = k == 2 ? sl_param_grad(w)[0] : sl_grad(x[i]) ? sl_grad(x[i])[0] : NAN;
        cr_expect_eq(got, want, "%s: leaf %d gradient %a, want %a", what, i, got, want);
    }
    cr_expect_eq(sl_grad(pq[0])[0], times * -1.25, "%s: dy/dp", what);
    cr_expect_eq(sl_grad(pq[1])[0], times * 0.75, "%s: dy/dq", what);
}

/* A sweep straight after recording, before any replay has marked the runs:
 * it marks stretches of unmarked leaves in a short loop of its own, which
 * must stop at constants, at sl_use leaves and at ops, and from a root
 * inside a stretch mark only what lies below it. */
Test(scalar, leaves_swept_before_any_replay) {
    sl_params *ps = sl_params_new();
    const double w0 = -0.625;
    sl_param *w = sl_param_new(ps, "w", 0, NULL, &w0);
    cr_assert_not_null(w);
    sl_tape *t = sl_tape_new();
    sl_var *x[NRUN], *pq[2];
    sl_var *y = record_runs(t, w, x, pq);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    for (int i = 0; i < NRUN; i++) cr_expect_null(sl_grad(x[i]), "leaf %d before any sweep", i);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    expect_run_grads(x, pq, w, 1.0, "sweep right after recording");
    cr_assert_eq(sl_backward(t, y), SL_OK);
    expect_run_grads(x, pq, w, 2.0, "second sweep, still no replay");
    cr_assert_eq(sl_forward(t), SL_OK); /* marks the runs now */
    cr_assert_eq(sl_backward(t, y), SL_OK);
    expect_run_grads(x, pq, w, 3.0, "after the first replay");

    /* roots inside the stretches, on fresh tapes (nothing marked) */
    const int roots[] = {0, 1, 126, 127, 200, 299, 350, 456, 605, NRUN - 1};
    for (size_t r = 0; r < sizeof roots / sizeof roots[0]; r++) {
        sl_tape *u = sl_tape_new();
        sl_var *xu[NRUN], *pu[2];
        cr_assert_not_null(record_runs(u, w, xu, pu));
        sl_var *root = xu[roots[r]];
        cr_assert_eq(sl_backward(u, root), SL_OK);
        for (int i = 0; i < NRUN; i++) {
            if (run_kind(i) == 1) {
                cr_expect_null(sl_grad(xu[i]), "root %d: constant %d", roots[r], i);
                continue;
            }
            if (run_kind(i) == 2) continue; /* reads the parameter's buffer */
            const double *g = sl_grad(xu[i]);
            cr_expect_not_null(g, "root %d: leaf %d reads its gradient", roots[r], i);
            if (g) cr_expect_eq(g[0], i == roots[r] ? 1.0 : 0.0, "root %d: leaf %d", roots[r], i);
        }
        cr_expect_eq(sl_grad(pu[0])[0], 0.0, "root %d: the leaves before the stretch", roots[r]);
        sl_tape_free(u);
    }
    sl_tape_free(t);
    sl_params_free(ps);
}

Test(scalar, leaf_runs_sweep_like_single_leaves) {
    sl_params *ps = sl_params_new();
    const double w0 = 0.375;
    sl_param *w = sl_param_new(ps, "w", 0, NULL, &w0);
    cr_assert_not_null(w);
    sl_tape *t = sl_tape_new();
    sl_var *x[NRUN], *pq[2];
    sl_var *y = record_runs(t, w, x, pq);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    /* a replay (which marks the runs) is not a sweep: no gradients yet */
    cr_assert_eq(sl_forward(t), SL_OK);
    for (int i = 0; i < NRUN; i++) cr_expect_null(sl_grad(x[i]), "leaf %d before any sweep", i);
    double want = -0.9375 + w0 * w0;
    for (int i = 0; i < NRUN; i++)
        if (run_kind(i) != 2) want += (0.5 + i / 1024.0) * (0.5 + i / 1024.0);
    cr_expect(near(sl_item(y), want, 1e-12, 0.0), "y = %.17g, want %.17g", sl_item(y), want);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    expect_run_grads(x, pq, w, 1.0, "first sweep");
    /* sweeps after replays: the runs are passed over, the leaves still
     * accumulate, the parameter's leaf still adds into the parameter */
    for (int rep = 2; rep <= 3; rep++) {
        cr_assert_eq(sl_forward(t), SL_OK);
        cr_assert_eq(sl_backward(t, y), SL_OK);
        expect_run_grads(x, pq, w, rep, "after replays");
    }
    /* new leaf values reach the replay */
    sl_zero_grad(t);
    sl_leaf_data(x[10])[0] = 3.0;
    sl_leaf_data(x[699])[0] = -2.0;
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x[10])[0], 6.0);
    cr_expect_eq(sl_grad(x[699])[0], -4.0);
    cr_expect_eq(sl_grad(x[11])[0], 2.0 * (0.5 + 11 / 1024.0));
    cr_expect_eq(sl_grad(pq[0])[0], -1.25, "the op before the leaves is still swept");

    /* a root inside a marked run: the leaves below it are swept (zero
     * gradient), it gets the seed, and later ones read zeros too */
    sl_tape *u = sl_tape_new();
    sl_var *xu[NRUN], *pu[2];
    cr_assert_not_null(record_runs(u, w, xu, pu));
    cr_assert_eq(sl_forward(u), SL_OK);
    for (int root = 0; root < 2; root++) {
        sl_var *r = root ? xu[200] : xu[254]; /* mid-run, and a run's first leaf */
        sl_zero_grad(u);
        cr_assert_eq(sl_backward(u, r), SL_OK);
        for (int i = 0; i < NRUN; i++) {
            if (run_kind(i) == 1) {
                cr_expect_null(sl_grad(xu[i]), "root %d: constant %d", root, i);
                continue;
            }
            const double *g = sl_grad(xu[i]);
            cr_expect_not_null(g, "root %d: leaf %d reads its gradient", root, i);
            if (g) cr_expect_eq(g[0], xu[i] == r ? 1.0 : 0.0, "root %d: leaf %d", root, i);
        }
        cr_expect_eq(sl_grad(pu[0])[0], 0.0);
    }

    /* leaves recorded after the runs were marked extend the tape as usual */
    sl_var *more[200];
    sl_var *z = y;
    for (int i = 0; i < 200; i++) more[i] = sl_scalar(t, i / 64.0, i < 150 ? SL_GRAD : 0);
    for (int i = 0; i < 200; i++) z = sl_add(t, z, sl_mul(t, more[i], pq[0]));
    cr_assert_not_null(z, "%s", sl_tape_error(t));
    for (int rep = 0; rep < 2; rep++) {
        sl_zero_grad(t);
        cr_assert_eq(sl_forward(t), SL_OK);
        cr_assert_eq(sl_backward(t, z), SL_OK);
        for (int i = 0; i < 200; i++) {
            if (i >= 150) {
                cr_expect_null(sl_grad(more[i]), "rep %d: constant %d", rep, i);
                continue;
            }
            cr_expect_eq(sl_grad(more[i])[0], 0.75, "rep %d: more[%d]", rep, i);
        }
        double dp = -1.25;
        for (int i = 0; i < 200; i++) dp += i / 64.0;
        cr_expect(near(sl_grad(pq[0])[0], dp, 1e-14, 0.0), "rep %d: dz/dp %.17g, want %.17g", rep,
                  sl_grad(pq[0])[0], dp);
        cr_expect_eq(sl_grad(x[10])[0], 6.0, "rep %d", rep);
    }
    sl_tape_free(t);
    sl_tape_free(u);
    sl_params_free(ps);
}

/* Chains of products (y = y * x_i, W5's shape), which the sweeps follow in
 * their own loops (docs/design.md, "Product chains"), against the shape-[1]
 * tensor path bit for bit: random graphs of chains over leaves of every
 * kind of value, with squares (y * y), intermediates used again later (so
 * a gradient slot is not fresh when the chain reaches it), a tensor op
 * reading an intermediate through a view, constants, several roots, and
 * replays after new leaf values. */
enum { CH_LEAVES = 24, CH_OPS = 160 };
typedef struct chain_graph {
    sl_var *leaf[CH_LEAVES], *op[CH_OPS];
    int nops;
} chain_graph;

static unsigned ch_rand(unsigned *st) { return *st = *st * 1103515245u + 12345u, *st >> 8; }

static sl_var *record_chains(sl_tape *t, int rank0, unsigned seed, chain_graph *g) {
    static const double V[] = {0.5, -1.25, 2.0, 0.0, -0.0, 3.0, -0.75, 1e-200, 1e200, 1.5};
    unsigned st = seed;
    for (int i = 0; i < CH_LEAVES; i++) {
        double v = V[ch_rand(&st) % 10];
        if (seed % 5 == 0 && i == 7) v = INFINITY;
        if (seed % 7 == 0 && i == 9) v = NAN;
        g->leaf[i] = leaf(t, rank0, v, ch_rand(&st) % 4 ? SL_GRAD : 0);
    }
    sl_var *y = g->leaf[0], *kept = NULL, *side = NULL;
    g->nops = 0;
    for (int k = 0; k < CH_OPS; k++) {
        const unsigned r = ch_rand(&st) % 100;
        sl_var *x = g->leaf[ch_rand(&st) % CH_LEAVES];
        if (r < 70)
            y = sl_mul(t, y, x); /* the chain goes on */
        else if (r < 76)
            y = sl_mul(t, y, y); /* a square: both inputs the same node */
        else if (r < 82) {
            kept = y; /* used again below: its slot fills before the chain returns */
            y = sl_mul(t, y, x);
        } else if (r < 88 && kept)
            y = sl_add(t, sl_mul(t, kept, x), y);
        else if (r < 92)
            y = sl_mul(t, x, y); /* the chain in the second input */
        else if (r < 95 && kept && !side)
            side = sl_sum(t, sl_mul(t, kept, sl_input(t, 1, (int[]){2}, (double[]){0.5, -1.0}, 0)),
                          SL_ALL, 0); /* a tensor op reads kept through a view */
        else
            y = sl_mul(t, g->leaf[ch_rand(&st) % CH_LEAVES], x); /* a new chain */
        g->op[g->nops++] = y;
    }
    return side ? sl_add(t, y, side) : y;
}

static void expect_same_chain_grads(const chain_graph *a, const chain_graph *b, const char *what,
                                    unsigned seed) {
    for (int i = 0; i < CH_LEAVES + a->nops; i++) {
        const sl_var *x = i < CH_LEAVES ? a->leaf[i] : a->op[i - CH_LEAVES];
        const sl_var *r = i < CH_LEAVES ? b->leaf[i] : b->op[i - CH_LEAVES];
        cr_expect(same(sl_item(x), sl_item(r)), "seed %u, %s: node %d value %a vs %a", seed, what,
                  i, sl_item(x), sl_item(r));
        cr_expect_eq(sl_grad(x) == NULL, sl_grad(r) == NULL, "seed %u, %s: node %d grad NULL?",
                     seed, what, i);
        if (sl_grad(x) && sl_grad(r))
            cr_expect(same(sl_grad(x)[0], sl_grad(r)[0]), "seed %u, %s: node %d grad %a vs %a",
                      seed, what, i, sl_grad(x)[0], sl_grad(r)[0]);
    }
}

Test(scalar, product_chains_match_tensor_path) {
    for (unsigned seed = 1; seed <= 40; seed++) {
        sl_tape *ts = sl_tape_new(), *tr = sl_tape_new();
        chain_graph gs, gr;
        sl_var *ys = record_chains(ts, 1, seed, &gs), *yr = record_chains(tr, 0, seed, &gr);
        cr_assert_not_null(ys, "seed %u: %s", seed, sl_tape_error(ts));
        cr_assert_not_null(yr, "seed %u: %s", seed, sl_tape_error(tr));
        cr_assert_eq(sl_backward(ts, ys), SL_OK);
        cr_assert_eq(sl_backward(tr, yr), SL_OK);
        expect_same_chain_grads(&gs, &gr, "record + backward", seed);
        /* a root inside the graph, then replays (leaf gradients accumulate) */
        sl_var *mid_s = gs.op[gs.nops / 2], *mid_r = gr.op[gr.nops / 2];
        cr_assert_eq(sl_backward(ts, mid_s), SL_OK);
        cr_assert_eq(sl_backward(tr, mid_r), SL_OK);
        expect_same_chain_grads(&gs, &gr, "a root mid-graph", seed);
        for (int rep = 0; rep < 2; rep++) {
            sl_leaf_data(gs.leaf[3])[0] = sl_leaf_data(gr.leaf[3])[0] = rep ? -0.0 : 1.75;
            cr_assert_eq(sl_forward(ts), SL_OK);
            cr_assert_eq(sl_forward(tr), SL_OK);
            cr_assert_eq(sl_backward(ts, ys), SL_OK);
            cr_assert_eq(sl_backward(tr, yr), SL_OK);
            expect_same_chain_grads(&gs, &gr, "replayed", seed);
        }
        sl_tape_free(ts);
        sl_tape_free(tr);
    }
}

/* Custom ops on rank-0 nodes: attributes (every field), a saved buffer,
 * forward, backward and tangent rules, replay. */
#define SCALE_CUBE OWN_PREFIX "scale_cube"
/* a = alpha z^3 + beta; saved[0] = z^2; da/dz = 3 alpha z^2 */
static size_t cube_saved(const sl_var *out) {
    (void)out;
    return 1;
}
static void cube_forward(sl_var *out) {
    const double z = sl_value(sl_in(out, 0))[0];
    const sl_attrs *at = sl_attrs_of(out);
    sl_saved_data(out)[0] = z * z;
    sl_out_data(out)[0] = at->alpha * z * z * z + at->beta;
}
static void cube_backward(sl_var *out) {
    double *dz = sl_grad_data(sl_in(out, 0));
    if (dz) dz[0] += sl_grad(out)[0] * 3.0 * sl_attrs_of(out)->alpha * sl_saved_data(out)[0];
}
static void cube_jvp(sl_var *out) {
    const double *tz = sl_tangent_data(sl_in(out, 0));
    sl_tangent_data(out)[0] =
        tz ? tz[0] * 3.0 * sl_attrs_of(out)->alpha * sl_saved_data(out)[0] : 0.0;
}
static int cube_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                      int *dims) {
    (void)op, (void)a, (void)dims;
    if (sl_ndim(in[0]) != 0)
        return sl_tape_fail(t, SL_ESHAPE, "sl_" SCALE_CUBE ": rank-0 input only");
    *ndim = 0;
    return SL_OK;
}
static const sl_op scale_cube_op = {
    .name = SCALE_CUBE,
    .arity = 1,
    .shape = cube_shape,
    .forward = cube_forward,
    .backward = cube_backward,
    .jvp = cube_jvp,
    .saved = cube_saved,
    .signature = "sl_apply(t, op, 1, &x, &attrs)",
    .formula = "a = alpha z^3 + beta",
    .derivative = "da/dz = 3 alpha z^2",
    .domain = {SL_DOMAIN_REAL},
    .kind = SL_KIND_CUSTOM,
    .cases =
        (const sl_op_case[]){
            {.shape = {{0}},
             .attrs = {.alpha = 1.5, .beta = -2.0, .axis = 7, .mode = 3, .dims = {4}}}},
    .ncases = 1};

/* sumsq: x (any shape) -> rank 0, sum of squares; dx = 2 g x */
#define SUMSQ OWN_PREFIX "sumsq"
static int sumsq_shape(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                       int *dims) {
    (void)t, (void)op, (void)in, (void)a, (void)dims;
    *ndim = 0;
    return SL_OK;
}
static void sumsq_forward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double s = 0.0;
    for (size_t i = 0; i < sl_numel(x); i++) s += sl_value(x)[i] * sl_value(x)[i];
    sl_out_data(out)[0] = s;
}
static void sumsq_backward(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    double *dx = sl_grad_data(x);
    if (!dx) return;
    for (size_t i = 0; i < sl_numel(x); i++) dx[i] += 2.0 * sl_grad(out)[0] * sl_value(x)[i];
}
static void sumsq_jvp(sl_var *out) {
    const sl_var *x = sl_in(out, 0);
    const double *tx = sl_tangent_data(x);
    double s = 0.0;
    for (size_t i = 0; tx && i < sl_numel(x); i++) s += 2.0 * sl_value(x)[i] * tx[i];
    sl_tangent_data(out)[0] = s;
}
static const sl_op sumsq_op = {.name = SUMSQ,
                               .arity = 1,
                               .shape = sumsq_shape,
                               .forward = sumsq_forward,
                               .backward = sumsq_backward,
                               .jvp = sumsq_jvp};

/* hypot of two inputs, broadcasting by default (shape NULL) */
#define HYPOT OWN_PREFIX "hypot"
static void hyp_forward(sl_var *out) {
    sl_out_data(out)[0] = hypot(sl_value(sl_in(out, 0))[0], sl_value(sl_in(out, 1))[0]);
}
static void hyp_backward(sl_var *out) {
    for (int k = 0; k < 2; k++) {
        double *d = sl_grad_data(sl_in(out, k));
        if (d) d[0] += sl_grad(out)[0] * sl_value(sl_in(out, k))[0] / sl_value(out)[0];
    }
}
static void hyp_jvp(sl_var *out) {
    double s = 0.0;
    for (int k = 0; k < 2; k++) {
        const double *tk = sl_tangent_data(sl_in(out, k));
        if (tk) s += tk[0] * sl_value(sl_in(out, k))[0] / sl_value(out)[0];
    }
    sl_tangent_data(out)[0] = s;
}
static const sl_op hypot_op = {
    .name = HYPOT, .arity = 2, .forward = hyp_forward, .backward = hyp_backward, .jvp = hyp_jvp};

Test(scalar, custom_ops_on_rank0_nodes) {
    cr_assert_eq(sl_op_register(&scale_cube_op), SL_OK);
    cr_assert_eq(sl_op_register(&sumsq_op), SL_OK);
    cr_assert_eq(sl_op_register(&hypot_op), SL_OK);
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, -1.25, SL_GRAD);
    const sl_attrs at = {.alpha = 2.0,
                         .beta = 0.5,
                         .axis = -3,
                         .keepdim = 1,
                         .mode = 5,
                         .ndim = 2,
                         .dims = {7, 8, 9, 10}};
    sl_var *y = sl_apply(t, sl_op_find(SCALE_CUBE), 1, &x, &at);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(y), 0);
    cr_expect_eq(sl_op_of(y), &scale_cube_op);
    cr_expect_eq(sl_in(y, 0), x);
    cr_expect(memcmp(sl_attrs_of(y), &at, sizeof at) == 0, "every attribute field is kept");
    cr_assert_not_null(sl_saved_data(y));
    cr_expect_eq(sl_saved_data(y)[0], 1.5625);
    cr_expect_eq(sl_item(y), 2.0 * -1.25 * -1.25 * -1.25 + 0.5);
    /* w = sumsq(v) * y + hypot(x, c):
     * dw/dv = 2 v y, dw/dx = sumsq(v) 6 x^2 + x / hypot, dw/dc = c / hypot */
    const double V[3] = {1.0, -2.0, 0.5};
    sl_var *v = sl_input(t, 1, (int[]){3}, V, SL_GRAD);
    sl_var *ss = sl_apply(t, &sumsq_op, 1, &v, NULL);
    cr_assert_not_null(ss, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(ss), 0, "a user op's rank-0 output");
    cr_expect_eq(sl_item(ss), 5.25);
    sl_var *c = sl_scalar(t, 4.0, SL_GRAD);
    sl_var *hin[2] = {x, c};
    sl_var *h = sl_apply(t, &hypot_op, 2, hin, NULL);
    cr_assert_not_null(h, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(h), 0, "default broadcast of [] and [] is []");
    cr_expect_eq(sl_in(h, 1), c);
    cr_expect_eq(sl_item(h), hypot(-1.25, 4.0));
    sl_var *w = sl_add(t, sl_mul(t, ss, y), h);
    cr_assert_not_null(w);
    cr_assert_eq(sl_backward(t, w), SL_OK);
    const double yv = sl_item(y), hv = hypot(-1.25, 4.0);
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(v)[i], 2.0 * yv * V[i]);
    cr_expect(near(sl_grad(x)[0], 5.25 * 6.0 * 1.5625 + -1.25 / hv, 1e-15, 0.0), "%a",
              sl_grad(x)[0]);
    cr_expect(near(sl_grad(c)[0], 4.0 / hv, 1e-15, 0.0));
    /* forward mode through the user rules */
    const double tx = 1.0, tv[3] = {0.5, 0.0, -1.0};
    sl_var *jin[2] = {x, v};
    const double *jt[2] = {&tx, tv};
    double dw = 0.0;
    cr_assert_eq(sl_jvp(t, w, 2, jin, jt, &dw), SL_OK, "%s", sl_tape_error(t));
    const double want = sl_grad(x)[0] + 2.0 * yv * (V[0] * 0.5 - V[2]);
    cr_expect(near(dw, want, 1e-14, 0.0), "jvp %a, want %a", dw, want);
    /* replay through the user ops */
    sl_leaf_data(x)[0] = 2.0;
    cr_assert_eq(sl_forward(t), SL_OK);
    cr_expect_eq(sl_item(y), 16.5);
    cr_expect_eq(sl_saved_data(y)[0], 4.0);
    cr_expect_eq(sl_item(h), hypot(2.0, 4.0));
    cr_expect_eq(sl_item(w), 5.25 * 16.5 + hypot(2.0, 4.0));
    /* the shape rule sees a rank-0 input as rank 0 */
    sl_var *bad = sl_apply(t, &scale_cube_op, 1, &v, &at);
    cr_expect_null(bad);
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    sl_tape_free(t);
    /* the op passes the library's own check on its rank-0 case */
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck_op(&scale_cube_op, NULL, &r), SL_OK, "%s", r.message);
}

/* ------------------------------------------------------- 5. reading nodes */

Test(scalar, reading_rank0_nodes) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 2.5, SL_GRAD);
    sl_var *c = sl_scalar(t, -1.5, 0);
    cr_assert_not_null(c);
    cr_expect_eq(sl_tape_size(t), 2);
    /* leaves */
    cr_expect_eq(sl_ndim(x), 0);
    cr_expect_eq(sl_numel(x), 1);
    cr_expect_not_null(sl_dims(x), "sl_dims is never NULL, also for rank 0");
    cr_expect_eq(sl_item(x), 2.5);
    cr_assert_not_null(sl_value(x));
    cr_expect_eq(sl_value(x)[0], 2.5);
    cr_expect_null(sl_grad(x), "NULL until a sweep reaches it");
    cr_expect_eq(sl_requires_grad(x), 1);
    cr_expect_eq(sl_requires_grad(c), 0);
    cr_assert_not_null(sl_leaf_data(x));
    cr_assert_not_null(sl_leaf_data(c), "a constant leaf is a leaf too");
    cr_expect_null(sl_op_of(x));
    cr_expect_null(sl_in(x, 0), "a leaf has no inputs");
    /* writing through sl_leaf_data is what sl_value and sl_item read */
    sl_leaf_data(x)[0] = 3.0;
    cr_expect_eq(sl_item(x), 3.0);
    cr_expect_eq(sl_value(x)[0], 3.0);
    /* op nodes */
    sl_var *y = sl_mul(t, x, c);
    sl_var *e = sl_exp(t, c);
    sl_var *p = sl_pow(t, x, 2.5);
    sl_var *z = sl_add(t, y, p);
    cr_assert_not_null(z);
    cr_expect_eq(sl_tape_size(t), 6);
    cr_expect_eq(sl_ndim(y), 0);
    cr_expect_eq(sl_numel(y), 1);
    cr_expect_eq(sl_item(y), -4.5);
    cr_expect_eq(sl_requires_grad(y), 1);
    cr_expect_eq(sl_requires_grad(e), 0);
    cr_expect_null(sl_leaf_data(y), "op nodes have no leaf data");
    cr_expect_null(sl_leaf_data(e));
    cr_expect_eq(sl_op_of(y), sl_op_find("mul"));
    cr_expect_str_eq(sl_op_of(y)->name, "mul");
    cr_expect_str_eq(sl_op_of(e)->name, "exp");
    cr_expect_str_eq(sl_op_of(p)->name, "pow");
    cr_expect_eq(sl_op_of(z), sl_op_find("add"));
    cr_expect_eq(sl_in(y, 0), x);
    cr_expect_eq(sl_in(y, 1), c);
    cr_expect_null(sl_in(y, 2));
    cr_expect_null(sl_in(y, -1));
    cr_expect_eq(sl_in(e, 0), c);
    cr_expect_null(sl_in(e, 1));
    cr_expect_eq(sl_in(z, 0), y);
    cr_expect_eq(sl_in(z, 1), p);
    cr_expect_eq(sl_attrs_of(p)->alpha, 2.5, "pow keeps its exponent");
    cr_expect_eq(sl_attrs_of(y)->alpha, 0.0);
    cr_expect_eq(sl_item(p), pow(3.0, 2.5));
    for (int i = 0; i < 3; i++) cr_expect_null(sl_grad((sl_var *[]){y, p, z}[i]));
    /* an SL_GRAD leaf recorded after z, and one z does not depend on */
    sl_var *late = sl_scalar(t, 9.0, SL_GRAD);
    cr_assert_not_null(late);
    cr_assert_eq(sl_backward(t, z), SL_OK);
    cr_assert_not_null(sl_grad(x));
    cr_assert_not_null(sl_grad(y));
    cr_assert_not_null(sl_grad(z));
    cr_expect_eq(sl_grad(z)[0], 1.0);
    cr_expect_eq(sl_grad(y)[0], 1.0);
    cr_expect_eq(sl_grad(p)[0], 1.0);
    cr_expect_eq(sl_grad(x)[0], -1.5 + 2.5 * pow(3.0, 1.5));
    cr_expect_null(sl_grad(c), "no gradient flows to a constant");
    cr_expect_null(sl_grad(e), "nor to an op on constants");
    cr_assert_not_null(sl_grad(late), "an SL_GRAD leaf y does not depend on reads zero");
    cr_expect_eq(sl_grad(late)[0], 0.0);
    /* a sweep from a node without gradient is fine and changes nothing */
    cr_assert_eq(sl_backward(t, e), SL_OK);
    cr_expect_eq(sl_grad(x)[0], -1.5 + 2.5 * pow(3.0, 1.5));
    /* the poison reads as documented */
    cr_expect_eq(sl_ndim(NULL), 0);
    cr_expect_eq(sl_numel(NULL), 0);
    cr_expect(isnan(sl_item(NULL)));
    cr_expect_null(sl_value(NULL));
    cr_expect_null(sl_grad(NULL));
    sl_tape_free(t);
}

/* Node pointers, and the value and gradient pointers read from them, stay
 * valid while many more scalar nodes are recorded. */
Test(scalar, pointers_stay_valid_while_recording) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 0.5, SL_GRAD);
    sl_var *first = sl_mul(t, x, x);
    const double *xv = sl_value(x), *fv = sl_value(first);
    sl_var *y = first;
    const int n = 200000;
    for (int i = 0; i < n; i++) y = sl_add(t, y, sl_scalar(t, 0.25, 0));
    cr_assert_not_null(y);
    cr_expect_eq(sl_tape_size(t), 2 + 2 * (size_t)n);
    cr_expect_eq(*xv, 0.5);
    cr_expect_eq(*fv, 0.25);
    cr_expect_eq(sl_item(first), 0.25);
    cr_expect_eq(sl_in(first, 0), x);
    cr_expect_eq(sl_item(y), 0.25 + 0.25 * n);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const double *gx = sl_grad(x);
    cr_expect_eq(gx[0], 1.0);
    for (int i = 0; i < 1000; i++) sl_exp(t, x);
    cr_assert_eq(sl_tape_status(t), SL_OK);
    cr_expect_eq(gx[0], 1.0);
    sl_leaf_data(x)[0] = 2.0;
    cr_expect_eq(*xv, 2.0);
    sl_tape_free(t);
}

/* ---------------------------------------------------------------- 6. errors */

Test(scalar, errors_are_sticky_and_named) {
    sl_tape *t = sl_tape_new(), *other = sl_tape_new();
    sl_var *x = sl_scalar(t, 1.0, SL_GRAD);
    sl_var *o = sl_scalar(other, 2.0, SL_GRAD);
    const size_t n = sl_tape_size(t);
    cr_expect_null(sl_add(t, x, o));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    char first[512];
    snprintf(first, sizeof first, "%s", sl_tape_error(t));
    cr_expect(contains(first, "sl_add"), "%s", first);
    cr_expect(contains(first, "another tape"), "%s", first);
    cr_expect(contains(first, "input 1"), "%s", first);
    cr_expect_eq(sl_tape_size(t), n, "nothing recorded");
    cr_expect_eq(sl_tape_status(other), SL_OK, "the other tape is untouched");
    /* later calls return the poison and keep the first message */
    cr_expect_null(sl_mul(t, x, x));
    cr_expect_null(sl_sigmoid(t, NULL));
    cr_expect_null(sl_scalar(t, 3.0, SL_GRAD));
    cr_expect_null(sl_sub(t, NULL, x));
    cr_expect_eq(sl_backward(t, x), SL_EARG);
    cr_expect_eq(sl_forward(t), SL_EARG);
    double dy;
    cr_expect_eq(sl_jvp(t, x, 0, NULL, NULL, &dy), SL_EARG);
    cr_expect_eq(sl_tape_size(t), n);
    cr_expect_str_eq(sl_tape_error(t), first);
    /* clear recovers */
    sl_tape_clear(t);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    cr_expect_null(sl_tape_error(t));
    cr_expect_eq(sl_tape_size(t), 0);
    x = sl_scalar(t, 3.0, SL_GRAD);
    sl_var *y = sl_add(t, sl_mul(t, x, x), x);
    cr_assert_not_null(y);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_item(y), 12.0);
    cr_expect_eq(sl_grad(x)[0], 7.0);
    /* input 0 from another tape, named with the op */
    cr_expect_null(sl_mul(t, o, x));
    cr_expect(contains(sl_tape_error(t), "sl_mul"), "%s", sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "input 0 belongs to another tape"), "%s",
              sl_tape_error(t));
    sl_tape_clear(t);
    /* NULL inputs on a clean tape */
    x = sl_scalar(t, 1.0, 0);
    cr_expect_null(sl_add(t, x, NULL));
    cr_expect_eq(sl_tape_status(t), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "sl_add: input 1 is NULL"), "%s", sl_tape_error(t));
    sl_tape_clear(t);
    cr_expect_null(sl_exp(t, NULL));
    cr_expect(contains(sl_tape_error(t), "sl_exp: input 0 is NULL"), "%s", sl_tape_error(t));
    sl_tape_clear(t);
    /* sweeps and forward mode check their nodes too */
    x = sl_scalar(t, 1.0, SL_GRAD);
    y = sl_exp(t, x);
    cr_expect_eq(sl_backward(t, o), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "not a node of this tape"), "%s", sl_tape_error(t));
    sl_tape_clear(t);
    x = sl_scalar(t, 1.0, SL_GRAD);
    y = sl_exp(t, x);
    const double one = 1.0, *tv[1] = {&one};
    cr_expect_eq(sl_jvp(t, y, 1, &y, tv, &dy), SL_EARG);
    cr_expect(contains(sl_tape_error(t), "not a leaf"), "%s", sl_tape_error(t));
    sl_tape_clear(t);
    /* shape errors print a rank-0 shape as [] */
    x = sl_scalar(t, 1.0, 0);
    sl_var *m = sl_input(t, 2, (int[]){2, 3}, NULL, 0);
    cr_expect_null(sl_matmul(t, x, m));
    cr_expect_eq(sl_tape_status(t), SL_ESHAPE);
    cr_expect(contains(sl_tape_error(t), "[] x [2,3]"), "%s", sl_tape_error(t));
    sl_tape_clear(t);
    x = sl_scalar(t, 1.0, 0);
    cr_expect_null(sl_sum(t, x, 1, 0)); /* 0 and -1 are PyTorch's dims of a 0-d tensor */
    cr_expect(contains(sl_tape_error(t), "sl_sum"), "%s", sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "[]"), "%s", sl_tape_error(t));
    sl_tape_free(t);
    sl_tape_free(other);
}

/* ---------------------------------------------------------- 7. anomaly mode */

static const char *site(int line) {
    static char buf[512];
    snprintf(buf, sizeof buf, "recorded at %s:%d", __FILE__, line);
    return buf;
}

Test(scalar, anomaly_mode_names_op_element_and_line) {
    sl_tape *t = sl_tape_new();
    sl_tape_set_check(t, SL_CHECK_FINITE);
    sl_var *x = sl_scalar(t, -1.0, SL_GRAD);
    sl_var *y = sl_log(t, x);
    cr_expect_null(y);
    cr_expect_eq(sl_tape_status(t), SL_ENONFINITE);
    const char *msg = sl_tape_error(t);
    cr_expect(contains(msg, "sl_log: non-finite value at node 1 (log"), "%s", msg);
    cr_expect(contains(msg, "element 0 of [] is "), "%s", msg);
    cr_expect(contains(msg, "nan"), "%s", msg);
    cr_expect(contains(msg, "in0[0] = -1"), "%s", msg);
    cr_expect(!contains(msg, "recorded at"), "no SL_HERE, no site: %s", msg);
    /* with SL_HERE the message has the file:line */
    sl_tape_clear(t);
    x = sl_scalar(t, -1.0, SL_GRAD);
    const int line = __LINE__ + 1; /* SL_HERE is on the next line */
    y = sl_log(SL_HERE(t), x);
    cr_expect_null(y);
    cr_expect_eq(sl_tape_status(t), SL_ENONFINITE);
    cr_expect(contains(sl_tape_error(t), site(line)), "%s: %s", site(line), sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "(log"), "%s", sl_tape_error(t));
    /* the first anomaly is named: log(0) = -inf, not the exp that hides it */
    sl_tape_clear(t);
    x = sl_scalar(t, 0.0, SL_GRAD);
    cr_expect_null(sl_exp(t, sl_log(t, x)));
    cr_expect(contains(sl_tape_error(t), "(log"), "%s", sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "is -inf"), "%s", sl_tape_error(t));
    /* in the reverse sweep: sqrt at 0 has an infinite slope */
    sl_tape_clear(t);
    x = sl_scalar(t, 0.0, SL_GRAD);
    const int sline = __LINE__ + 1;
    y = sl_sqrt(SL_HERE(t), x);
    cr_assert_not_null(y, "sqrt(0) = 0 is finite: %s", sl_tape_error(t));
    cr_expect_eq(sl_backward(t, y), SL_ENONFINITE);
    msg = sl_tape_error(t);
    cr_expect(contains(msg, "sl_backward: non-finite gradient at node 1 (sqrt"), "%s", msg);
    cr_expect(contains(msg, "element 0 of [] is inf"), "%s", msg);
    cr_expect(contains(msg, site(sline)), "%s", msg);
    cr_expect(contains(msg, "from the backward rule of sqrt"), "%s", msg);
    /* in a replay */
    sl_tape_clear(t);
    x = sl_scalar(t, 2.0, SL_GRAD);
    y = sl_add(t, sl_log(t, x), x);
    cr_assert_not_null(y);
    sl_leaf_data(x)[0] = -3.0;
    cr_expect_eq(sl_forward(t), SL_ENONFINITE);
    cr_expect(contains(sl_tape_error(t), "sl_forward: non-finite value at node 1 (log"), "%s",
              sl_tape_error(t));
    cr_expect(contains(sl_tape_error(t), "in0[0] = -3"), "%s", sl_tape_error(t));
    sl_tape_free(t);
    /* the mode off: IEEE values and no error */
    t = sl_tape_new();
    x = sl_scalar(t, -1.0, SL_GRAD);
    y = sl_log(t, x);
    cr_assert_not_null(y);
    cr_expect(isnan(sl_item(y)));
    cr_expect_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x)[0], -1.0);
    cr_expect_eq(sl_tape_status(t), SL_OK);
    sl_tape_free(t);
}

/* ------------------------------------------------------- 8. gradient checks */

/* a deliberately wrong rank-0 op: sin with backward +sin instead of cos */
static void wsin_forward(sl_var *out) { sl_out_data(out)[0] = sin(sl_value(sl_in(out, 0))[0]); }
static void wsin_backward(sl_var *out) {
    double *d = sl_grad_data(sl_in(out, 0));
    if (d) d[0] += sl_grad(out)[0] * sin(sl_value(sl_in(out, 0))[0]);
}
static void wsin_jvp(sl_var *out) {
    const double *tz = sl_tangent_data(sl_in(out, 0));
    sl_tangent_data(out)[0] = tz ? tz[0] * cos(sl_value(sl_in(out, 0))[0]) : 0.0;
}
static const sl_op wrong_sin_op = {.name = OWN_PREFIX "wrong_sin",
                                   .arity = 1,
                                   .forward = wsin_forward,
                                   .backward = wsin_backward,
                                   .jvp = wsin_jvp};

Test(scalar, gradcheck_of_scalar_graph) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, 0.3, SL_GRAD), *b = sl_scalar(t, -0.8, SL_GRAD);
    sl_var *c = sl_scalar(t, 1.7, SL_GRAD);
    /* y = sigmoid(a b) + log(c) tanh(a) / (b^2 + 1) - softplus(c - a) */
    sl_var *y = sl_sub(t,
                       sl_add(t, sl_sigmoid(t, sl_mul(t, a, b)),
                              sl_div(t, sl_mul(t, sl_log(t, c), sl_tanh(t, a)),
                                     sl_add(t, sl_square(t, b), sl_scalar(t, 1.0, 0)))),
                       sl_softplus(t, sl_sub(t, c, a)));
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    sl_var *in[3] = {a, b, c};
    double val[3], grad[3];
    for (int i = 0; i < 3; i++) val[i] = sl_item(in[i]), grad[i] = sl_grad(in[i])[0];
    const double yv = sl_item(y);
    sl_gradcheck_report r;
    cr_expect_eq(sl_gradcheck(t, y, 3, in, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.ok, 1);
    cr_expect_eq(r.nchecked, 3, "one Jacobian entry per rank-0 input");
    cr_expect_eq(r.jvp_checked, 1);
    cr_expect_eq(r.kinks, 0);
    cr_expect_lt(r.max_abs_err, 1e-7);
    cr_expect_lt(r.max_mode_err, 1e-14);
    cr_expect(r.taylor_order > 1.5, "order %g", r.taylor_order);
    /* values and gradients restored bit for bit */
    for (int i = 0; i < 3; i++) {
        cr_expect(same(sl_item(in[i]), val[i]), "leaf %d value restored", i);
        cr_expect(same(sl_grad(in[i])[0], grad[i]), "leaf %d gradient restored", i);
    }
    cr_expect(same(sl_item(y), yv));
    /* a relu exactly at its kink is accepted as one */
    sl_tape_clear(t);
    sl_var *k = sl_scalar(t, 0.0, SL_GRAD), *m = sl_scalar(t, 1.5, SL_GRAD);
    y = sl_mul(t, sl_relu(t, k), m);
    sl_var *kin[2] = {k, m};
    cr_expect_eq(sl_gradcheck(t, y, 2, kin, NULL, &r), SL_OK, "%s", r.message);
    cr_expect_eq(r.kinks, 1, "relu at 0 is KINK-OK");
    /* a wrong rule on a rank-0 node inside a scalar graph is caught */
    sl_tape_clear(t);
    a = sl_scalar(t, 0.9, SL_GRAD);
    b = sl_scalar(t, -0.4, SL_GRAD);
    sl_var *s = sl_apply(t, &wrong_sin_op, 1, &a, NULL);
    y = sl_add(t, sl_mul(t, s, b), sl_exp(t, b));
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    sl_var *win[2] = {a, b};
    cr_expect_eq(sl_gradcheck(t, y, 2, win, NULL, &r), SL_EGRAD);
    cr_expect_eq(r.ok, 0);
    cr_expect_str_eq(r.failed, "vjp", "%s", r.message);
    cr_expect_eq(r.worst_input, 0);
    cr_expect(near(r.numeric, cos(0.9) * -0.4, 1e-6, 1e-9), "numeric %a", r.numeric);
    cr_expect_eq(sl_tape_status(t), SL_OK, "a failed check is not a tape error");
    sl_tape_free(t);
}

/* ------------------------------------------------------------ 9. long chain */

/* y_0 = x; y_k = y_{k-1} w + x for k = 1..n, at w = 1:
 * y_n = (n+1) x, dy/dx = n + 1, dy/dw = sum_k y_{k-1} = x n (n+1) / 2 - all
 * exact in double for x = 0.5, n = 5e5, so compared with ==. */
Test(scalar, long_chain_backward) {
    const long n = 500000;
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 0.5, SL_GRAD), *w = sl_scalar(t, 1.0, SL_GRAD);
    sl_var *y = x;
    for (long k = 0; k < n; k++) y = sl_add(t, sl_mul(t, y, w), x);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_tape_size(t), (size_t)(2 + 2 * n));
    cr_expect_eq(sl_item(y), 0.5 * (double)(n + 1));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x)[0], (double)(n + 1));
    cr_expect_eq(sl_grad(w)[0], 0.5 * (double)n * (double)(n + 1) / 2.0);
    /* forward mode down the same chain: d/dw along 1 */
    const double one = 1.0, *tv[1] = {&one};
    double dy = 0.0;
    cr_assert_eq(sl_jvp(t, y, 1, &w, tv, &dy), SL_OK);
    cr_expect_eq(dy, 0.5 * (double)n * (double)(n + 1) / 2.0);
    sl_tape_free(t);
}

/* ------------------------------------------------------- 10. Speelpenning */

/* The benchmark's W5: n rank-0 leaves x_i = (i+1)/(i+2), f = prod x_i by a
 * chain of sl_mul = 1/(n+1), df/dx_i = f / x_i = (i+2) / ((i+1)(n+1)). */
static sl_tape *speelpenning(int n, sl_var ***leaves, sl_var **f) {
    sl_tape *t = sl_tape_new();
    cr_assert_not_null(t);
    sl_var **x = malloc((size_t)n * sizeof *x);
    cr_assert_not_null(x);
    for (int i = 0; i < n; i++) x[i] = sl_scalar(t, (double)(i + 1) / (double)(i + 2), SL_GRAD);
    sl_var *y = x[0];
    for (int i = 1; i < n; i++) y = sl_mul(t, y, x[i]);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    const double want_f = 1.0 / (n + 1.0);
    cr_expect(near(sl_item(y), want_f, 1e-12, 0.0), "f = %.17g, want %.17g", sl_item(y), want_f);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const double want = (i + 2.0) / ((i + 1.0) * (n + 1.0));
        if (!near(sl_grad(x[i])[0], want, 1e-12, 0.0) && bad++ < 5)
            cr_expect_fail("df/dx[%d] = %.17g, want %.17g", i, sl_grad(x[i])[0], want);
    }
    cr_expect_eq(bad, 0, "%d gradients off by more than 1e-12 relative", bad);
    cr_expect_eq(sl_tape_size(t), (size_t)(2 * n - 1));
    *leaves = x;
    *f = y;
    return t;
}

Test(scalar, speelpenning_gradient) {
    sl_var **x, *f;
    sl_tape *t = speelpenning(100000, &x, &f);
    free(x);
    sl_tape_free(t);
}

/* Issue 6's target: at most 64 bytes per scalar node, counting everything
 * sl_tape_bytes reports (107 when a rank-0 value was a 72-byte tensor node;
 * about 43 as scalar nodes). */
Test(scalar, bytes_per_scalar_node) {
    sl_var **x, *f;
    sl_tape *t = speelpenning(100000, &x, &f);
    const double per_node = (double)sl_tape_bytes(t) / (double)sl_tape_size(t);
    cr_expect_leq(per_node, 64.0, "%.1f bytes per scalar node (%zu bytes, %zu nodes)", per_node,
                  sl_tape_bytes(t), sl_tape_size(t));
    free(x);
    sl_tape_free(t);
}
