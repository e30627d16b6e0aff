/*
 * test_index.c - sl_where and sl_index_select: values, gradients and
 * tangents against references written here from multi-indices (NumPy's
 * broadcasting and x.take(idx, axis)), with every operand of where
 * broadcast, rank-0 inputs, inf and NaN in the branch not taken, NaN
 * conditions, repeated indices and every axis of rank 1..4; the constant
 * inputs (condition, indices) getting no gradient and passing none on; the
 * errors with their messages, at record time and on replay; an embedding
 * lookup; and the checker against the bugs such rules tend to have.
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>

/* flat index of multi-index idx in a row-major shape */
static size_t flat(int ndim, const int *dims, const int *idx) {
    size_t f = 0;
    for (int i = 0; i < ndim; i++) f = f * (size_t)dims[i] + (size_t)idx[i];
    return f;
}

/* ------------------------------------------------------------------ where */

typedef struct shape {
    int nd, d[4];
} shape;

/* where(c, a, b) on the given shapes: out, da, db and the tangent against
 * the element-by-element definition, with a seed G that is not all ones. */
static void check_where(shape sc, shape sa, shape sb) {
    const shape in[3] = {sc, sa, sb};
    shape so = {0, {0}};
    for (int k = 0; k < 3; k++) { /* the broadcast shape, by NumPy's rule */
        shape s = in[k];
        int nd = s.nd > so.nd ? s.nd : so.nd, d[4] = {0};
        for (int i = 0; i < nd; i++) {
            const int x = i - (nd - so.nd) >= 0 ? so.d[i - (nd - so.nd)] : 1;
            const int y = i - (nd - s.nd) >= 0 ? s.d[i - (nd - s.nd)] : 1;
            d[i] = x > y ? x : y;
        }
        so.nd = nd;
        memcpy(so.d, d, sizeof d);
    }
    size_t n[3], no = sl__numel(so.nd, so.d);
    for (int k = 0; k < 3; k++) n[k] = sl__numel(in[k].nd, in[k].d);
    double C[64], A[64], B[64], TA[64], TB[64], G[64];
    for (size_t i = 0; i < n[0]; i++) C[i] = (i * 7 + 3) % 3 == 0 ? 0.0 : (i % 2 ? -1.5 : 2.0);
    for (size_t i = 0; i < n[1]; i++) A[i] = 1.0 + (double)i, TA[i] = 0.5 * (double)i;
    for (size_t i = 0; i < n[2]; i++) B[i] = -1.0 - (double)i, TB[i] = 3.0 - (double)i;
    for (size_t i = 0; i < no; i++) G[i] = 0.25 * (double)i - 2.0;

    sl_tape *t = sl_tape_new();
    sl_var *c = sl_input(t, sc.nd, sc.d, C, 0), *a = sl_input(t, sa.nd, sa.d, A, SL_GRAD),
           *b = sl_input(t, sb.nd, sb.d, B, SL_GRAD);
    sl_var *y = sl_where(t, c, a, b);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), so.nd);
    for (int i = 0; i < so.nd; i++) cr_assert_eq(sl_dims(y)[i], so.d[i]);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    sl_var *leaves[2] = {a, b};
    const double *tans[2] = {TA, TB};
    double dy[64];
    cr_assert_eq(sl_jvp(t, y, 2, leaves, tans, dy), SL_OK, "%s", sl_tape_error(t));
    double want_da[64] = {0}, want_db[64] = {0};
    int idx[4] = {0};
    do {
        const size_t o = flat(so.nd, so.d, idx), ic = bcast_flat(so.nd, idx, sc.nd, sc.d),
                     ia = bcast_flat(so.nd, idx, sa.nd, sa.d),
                     ib = bcast_flat(so.nd, idx, sb.nd, sb.d);
        const int take_a = C[ic] != 0.0;
        cr_expect_eq(sl_value(y)[o], take_a ? A[ia] : B[ib], "out[%zu]", o);
        cr_expect_eq(dy[o], take_a ? TA[ia] : TB[ib], "tangent[%zu]", o);
        if (take_a)
            want_da[ia] += G[o];
        else
            want_db[ib] += G[o];
    } while (so.nd > 0 && next_index(so.nd, so.d, idx));
    for (size_t i = 0; i < n[1]; i++) cr_expect_eq(sl_grad(a)[i], want_da[i], "da[%zu]", i);
    for (size_t i = 0; i < n[2]; i++) cr_expect_eq(sl_grad(b)[i], want_db[i], "db[%zu]", i);
    sl_tape_free(t);
}

Test(index, where_broadcasts_every_operand) {
    const shape s0 = {0, {0}};
    check_where((shape){2, {2, 3}}, (shape){2, {2, 3}}, (shape){2, {2, 3}}); /* no broadcast */
    check_where((shape){1, {3}}, (shape){2, {2, 3}}, (shape){2, {2, 3}});    /* cond */
    check_where((shape){2, {2, 3}}, (shape){2, {2, 1}}, (shape){2, {2, 3}}); /* a */
    check_where((shape){2, {2, 3}}, (shape){2, {2, 3}}, (shape){1, {3}});    /* b */
    check_where((shape){2, {2, 3}}, s0, s0);                                 /* a, b scalars */
    check_where(s0, (shape){2, {2, 3}}, (shape){2, {2, 3}});                 /* one condition */
    check_where((shape){3, {2, 1, 3}}, (shape){3, {1, 4, 1}}, (shape){2, {4, 1}}); /* all three */
    check_where((shape){4, {2, 1, 3, 1}}, (shape){3, {2, 1, 2}}, (shape){4, {1, 2, 1, 2}});
    check_where(s0, s0, s0); /* rank 0: scalar nodes, seen through views */
}

Test(index, where_scalar_nodes_and_a_nan_condition) {
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_scalar(t, 2.0, SL_GRAD), *b = sl_scalar(t, -3.0, SL_GRAD);
    sl_var *y = sl_where(t, sl_scalar(t, NAN, 0), a, b); /* NaN != 0: true, as C */
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_ndim(y), 0);
    cr_expect_eq(sl_item(y), 2.0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(a)[0], 1.0);
    cr_expect_eq(sl_grad(b)[0], 0.0);
    /* -0 is 0: false; inf and tiny values are true */
    const double C[4] = {-0.0, INFINITY, 5e-324, NAN}, A[4] = {1, 2, 3, 4}, B[4] = {-1, -2, -3, -4};
    sl_var *v = sl_where(t, sl_input(t, 1, (int[]){4}, C, 0), sl_input(t, 1, (int[]){4}, A, 0),
                         sl_input(t, 1, (int[]){4}, B, 0));
    cr_assert_not_null(v);
    const double want[4] = {-1, 2, 3, 4};
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_value(v)[i], want[i], "out[%d]", i);
    sl_tape_free(t);
}

/* The branch not taken gets exactly 0, whatever it holds and whatever
 * flows in: inf and NaN in a and b where they are not chosen, an infinite
 * upstream gradient. (A rule multiplying g by a 0/1 mask gives NaN there.) */
Test(index, where_branch_not_taken_gets_exactly_zero) {
    const double C[4] = {1, 0, 1, 0}, A[4] = {1, INFINITY, 2, NAN}, B[4] = {NAN, 3, -INFINITY, 4};
    const double G[4] = {INFINITY, INFINITY, -INFINITY, NAN};
    sl_tape *t = sl_tape_new();
    sl_var *a = sl_input(t, 1, (int[]){4}, A, SL_GRAD), *b = sl_input(t, 1, (int[]){4}, B, SL_GRAD);
    sl_var *y = sl_where(t, sl_input(t, 1, (int[]){4}, C, 0), a, b);
    cr_assert_not_null(y);
    const double want[4] = {1, 3, 2, 4};
    for (int i = 0; i < 4; i++) cr_expect_eq(sl_value(y)[i], want[i], "out[%d]", i);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK);
    const double want_da[4] = {INFINITY, 0, -INFINITY, 0};
    const double want_db[4] = {0, INFINITY, 0, NAN};
    for (int i = 0; i < 4; i++) {
        cr_expect(near(sl_grad(a)[i], want_da[i], 0, 0), "da[%d] = %g", i, sl_grad(a)[i]);
        cr_expect(near(sl_grad(b)[i], want_db[i], 0, 0), "db[%d] = %g", i, sl_grad(b)[i]);
    }
    sl_tape_free(t);
}

/* where(x > 0, sqrt(x), 0) at x = 0 and x < 0: where gives sqrt's node 0
 * there, but sqrt's own rule then computes 0 * 1/(2 sqrt 0) = 0 * inf = NaN
 * (and 0 * NaN below 0) - the same NaN PyTorch gives:
 *   x = torch.tensor([0., 4., -1.], dtype=torch.float64, requires_grad=True)
 *   torch.where(x > 0, x.sqrt(), torch.zeros_like(x)).sum().backward()
 *   x.grad -> tensor([nan, 0.2500, nan])
 * The remedy is PyTorch's too: make the branch safe where it is not taken,
 * where(x > 0, sqrt(where(x > 0, x, 1)), 0). relu(x) is a condition for x > 0. */
Test(index, where_nan_from_the_branch_own_rule_and_the_double_where_remedy) {
    const double X[3] = {0.0, 4.0, -1.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){3}, X, SL_GRAD), *zero = sl_scalar(t, 0.0, 0);
    sl_var *pos = sl_relu(t, x);
    sl_var *y = sl_sum(t, sl_where(t, pos, sl_sqrt(t, x), zero), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect_eq(sl_item(y), 2.0);
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect(isnan(sl_grad(x)[0]), "dx[0] = %g: 0 * inf in sqrt's rule", sl_grad(x)[0]);
    cr_expect_eq(sl_grad(x)[1], 0.25);
    cr_expect(isnan(sl_grad(x)[2]), "dx[2] = %g: 0 * NaN in sqrt's rule", sl_grad(x)[2]);
    /* the double where: sqrt sees 1 where the outer where does not take it */
    sl_var *safe = sl_where(t, pos, x, sl_scalar(t, 1.0, 0));
    sl_var *z = sl_sum(t, sl_where(t, pos, sl_sqrt(t, safe), zero), SL_ALL, 0);
    cr_assert_not_null(z, "%s", sl_tape_error(t));
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, z), SL_OK);
    const double want[3] = {0.0, 0.25, 0.0};
    for (int i = 0; i < 3; i++) cr_expect_eq(sl_grad(x)[i], want[i], "dx[%d]", i);
    sl_tape_free(t);
}

/* A condition computed from a gradient-carrying leaf is accepted: it reads
 * zeros after the sweep, and its own subgraph is not run on that zero
 * gradient (log's rule at 0 would give 0/0 = NaN into x). */
Test(index, where_condition_gets_no_gradient_and_passes_none_on) {
    const double X[2] = {0.0, 2.0};
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, 1, (int[]){2}, X, SL_GRAD);
    sl_var *cond = sl_log(t, x); /* [-inf, log 2]: both true */
    sl_var *y = sl_sum(t, sl_where(t, cond, sl_mul(t, x, x), sl_scalar(t, 0.0, 0)), SL_ALL, 0);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_expect(sl_requires_grad(cond));
    cr_assert_eq(sl_backward(t, y), SL_OK);
    cr_expect_eq(sl_grad(x)[0], 0.0, "dx[0] = %g, only through x*x", sl_grad(x)[0]);
    cr_expect_eq(sl_grad(x)[1], 4.0);
    cr_assert_not_null(sl_grad(cond));
    cr_expect_eq(sl_grad(cond)[0], 0.0);
    cr_expect_eq(sl_grad(cond)[1], 0.0);
    /* a condition leaf that asks for a gradient reads zeros, as do indices */
    sl_var *c = sl_input(t, 1, (int[]){2}, (double[]){1, 0}, SL_GRAD);
    sl_var *ids = sl_input(t, 1, (int[]){2}, (double[]){1, 1}, SL_GRAD);
    sl_var *w =
        sl_sum(t, sl_add(t, sl_where(t, c, x, x), sl_index_select(t, x, 0, ids)), SL_ALL, 0);
    sl_zero_grad(t);
    cr_assert_eq(sl_backward(t, w), SL_OK, "%s", sl_tape_error(t));
    cr_expect_eq(sl_grad(c)[0], 0.0);
    cr_expect_eq(sl_grad(c)[1], 0.0);
    cr_expect_eq(sl_grad(ids)[0], 0.0);
    cr_expect_eq(sl_grad(ids)[1], 0.0);
    cr_expect_eq(sl_grad(x)[0], 1.0);
    cr_expect_eq(sl_grad(x)[1], 3.0); /* where's 1, and index 1 twice */
    sl_tape_free(t);
}

Test(index, where_errors_name_the_shapes) {
    sl_tape *t = sl_tape_new();
    sl_var *c = sl_input(t, 2, (int[]){2, 1}, NULL, 0), *a = sl_input(t, 2, (int[]){1, 3}, NULL, 0),
           *b = sl_input(t, 1, (int[]){4}, NULL, 0);
    /* [2,1] and [4] broadcast, [1,3] and [4] do not: all three are named */
    expect_tape_error(sl_where(t, c, a, b), t, SL_ESHAPE,
                      "sl_where: shapes do not broadcast: [2,1], [1,3] and [4]");
    cr_expect_null(sl_where(t, c, a, a), "sticky: a valid call records nothing");
    cr_expect_null(sl_exp(t, a));
    cr_expect_str_eq(sl_tape_error(t), "sl_where: shapes do not broadcast: [2,1], [1,3] and [4]");
    sl_tape_free(t);
    t = sl_tape_new();
    a = sl_scalar(t, 1.0, 0);
    expect_tape_error(sl_where(t, a, a, NULL), t, SL_EARG,
                      "sl_where: input 2 is NULL on a tape without an error");
    sl_tape_free(t);
}

/* ----------------------------------------------------------- index_select */

/* index_select(x, axis, idx) on x of shape dims: out, dx (seeded, repeated
 * indices accumulating) and the tangent against out[i] = x[i with i[ax] =
 * idx[i[ax]]]. */
static void check_index_select(int ndim, const int *dims, int axis, int m, const double *ids) {
    const size_t n = sl__numel(ndim, dims);
    double X[256], T[256], G[256];
    for (size_t i = 0; i < n; i++) X[i] = 1.0 + (double)i, T[i] = 0.5 - 2.0 * (double)i;
    const int ax = axis < 0 ? axis + ndim : axis;
    int od[4];
    memcpy(od, dims, sizeof(int) * (size_t)ndim);
    od[ax] = m;
    const size_t no = sl__numel(ndim, od);
    for (size_t i = 0; i < no; i++) G[i] = 0.25 * (double)i - 7.0;

    sl_tape *t = sl_tape_new();
    sl_var *x = sl_input(t, ndim, dims, X, SL_GRAD), *idx = sl_input(t, 1, &m, ids, 0);
    sl_var *y = sl_index_select(t, x, axis, idx);
    cr_assert_not_null(y, "%s", sl_tape_error(t));
    cr_assert_eq(sl_ndim(y), ndim);
    for (int i = 0; i < ndim; i++) cr_assert_eq(sl_dims(y)[i], od[i], "axis %d", axis);
    cr_assert_eq(sl_backward_seed(t, y, G), SL_OK, "%s", sl_tape_error(t));
    const double *tans[] = {T};
    double dy[256];
    cr_assert_eq(sl_jvp(t, y, 1, &x, tans, dy), SL_OK, "%s", sl_tape_error(t));
    double want_dx[256] = {0};
    int o[4] = {0};
    do {
        int src[4];
        memcpy(src, o, sizeof src);
        src[ax] = (int)ids[o[ax]];
        const size_t fo = flat(ndim, od, o), fi = flat(ndim, dims, src);
        cr_expect_eq(sl_value(y)[fo], X[fi], "axis %d: out[%zu]", axis, fo);
        cr_expect_eq(dy[fo], T[fi], "axis %d: tangent[%zu]", axis, fo);
        want_dx[fi] += G[fo];
    } while (next_index(ndim, od, o));
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(sl_grad(x)[i], want_dx[i], "axis %d: dx[%zu]", axis, i);
    sl_tape_free(t);
}

Test(index, index_select_on_every_axis_with_repeats) {
    const double ids[] = {2, 0, 2, 1, 0, 2, 3};
    check_index_select(1, (int[]){4}, 0, 7, ids);
    check_index_select(1, (int[]){3}, -1, 1, (double[]){1});
    const int d2[] = {3, 4};
    for (int ax = 0; ax < 2; ax++) check_index_select(2, d2, ax, 5, ids);
    const int d3[] = {3, 4, 3};
    for (int ax = -3; ax < 3; ax++) check_index_select(3, d3, ax, 6, ids);
    const int d4[] = {3, 2, 4, 3};
    for (int ax = 0; ax < 4; ax++) /* an index below each axis's length */
        check_index_select(4, d4, ax, 4, d4[ax] == 2 ? (double[]){1, 1, 0, 1} : ids);
    check_index_select(4, (int[]){2, 1, 3, 2}, 1, 3, (double[]){0, 0, 0}); /* an axis of 1 */
}

/* An embedding: table [V,D], token ids [N] -> [N,D]; a token seen twice
 * gets both rows' gradients in its row of the table, an unseen one none. */
Test(index, embedding_lookup) {
    const double table[5 * 3] = {0.0, 0.1, 0.2, 1.0, 1.1, 1.2, 2.0, 2.1,
                                 2.2, 3.0, 3.1, 3.2, 4.0, 4.1, 4.2};
    const double ids[4] = {3, 0, 3, 1};
    sl_tape *t = sl_tape_new();
    sl_var *E = sl_input(t, 2, (int[]){5, 3}, table, SL_GRAD);
    sl_var *tok = sl_input(t, 1, (int[]){4}, ids, 0);
    sl_var *emb = sl_index_select(t, E, 0, tok); /* [4,3] */
    const double w[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    sl_var *loss = sl_sum(t, sl_mul(t, emb, sl_input(t, 2, (int[]){4, 3}, w, 0)), SL_ALL, 0);
    cr_assert_not_null(loss, "%s", sl_tape_error(t));
    cr_expect_eq(sl_dims(emb)[0], 4);
    cr_expect_eq(sl_dims(emb)[1], 3);
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 3; j++)
            cr_expect_eq(sl_value(emb)[r * 3 + j], table[(int)ids[r] * 3 + j]);
    cr_assert_eq(sl_backward(t, loss), SL_OK);
    const double want[5 * 3] = {4, 5, 6, 10, 11, 12, 0, 0, 0, 1 + 7, 2 + 8, 3 + 9, 0, 0, 0};
    for (int i = 0; i < 15; i++) cr_expect_eq(sl_grad(E)[i], want[i], "dE[%d]", i);
    sl_tape_free(t);
}

Test(index, index_select_errors_name_position_value_and_axis) {
    struct {
        int axis, nd, d[2];
        double v[2];
        int status;
        const char *msg;
    } bad[] = {
        {1,
         1,
         {2},
         {1, 3},
         SL_EARG,
         "sl_index_select: idx[1] is 3, out of range: indices must be integers in [0, 3) along "
         "axis 1 of x [2,3]"},
        {0,
         1,
         {2},
         {-1, 0},
         SL_EARG,
         "sl_index_select: idx[0] is -1, out of range: indices must be integers in [0, 2) along "
         "axis 0 of x [2,3]"},
        {-1,
         1,
         {2},
         {0.5, 0},
         SL_EARG,
         "sl_index_select: idx[0] is 0.5, not an integer: indices must be integers in [0, 3) "
         "along axis 1 of x [2,3]"},
        {0,
         1,
         {2},
         {0, NAN},
         SL_EARG,
         "sl_index_select: idx[1] is nan, not finite: indices must be integers in [0, 2) along "
         "axis 0 of x [2,3]"},
        {0,
         1,
         {2},
         {INFINITY, 0},
         SL_EARG,
         "sl_index_select: idx[0] is inf, not finite: indices must be integers in [0, 2) along "
         "axis 0 of x [2,3]"},
        {0, 2, {1, 2}, {0, 1}, SL_ESHAPE, "sl_index_select: idx must be 1-D, got [1,2] (x [2,3])"},
        {0, 0, {0}, {0}, SL_ESHAPE, "sl_index_select: idx must be 1-D, got [] (x [2,3])"},
        {2, 1, {1}, {0}, SL_EARG, "sl_index_select: axis 2 out of range for x [2,3] (rank 2)"},
        {-3, 1, {1}, {0}, SL_EARG, "sl_index_select: axis -3 out of range for x [2,3] (rank 2)"},
        {SL_ALL,
         1,
         {1},
         {0},
         SL_EARG,
         "sl_index_select: axis SL_ALL: indices select along one axis (x [2,3])"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){2, 3}, NULL, SL_GRAD);
        sl_var *idx = sl_input(t, bad[i].nd, bad[i].d, bad[i].v, 0);
        expect_tape_error(sl_index_select(t, x, bad[i].axis, idx), t, bad[i].status, bad[i].msg);
        /* sticky: later ops record nothing */
        cr_expect_null(sl_index_select(t, x, 0, sl_input(t, 1, (int[]){1}, NULL, 0)));
        cr_expect_null(sl_exp(t, x));
        cr_expect_str_eq(sl_tape_error(t), bad[i].msg);
        sl_tape_free(t);
    }
    sl_tape *t = sl_tape_new();
    sl_var *one = sl_input(t, 1, (int[]){1}, NULL, 0);
    expect_tape_error(sl_index_select(t, sl_scalar(t, 1.0, 0), 0, one), t, SL_ESHAPE,
                      "sl_index_select: a rank-0 x has no axis to index (x [])");
    sl_tape_free(t);
    t = sl_tape_new();
    expect_tape_error(sl_index_select(t, sl_input(t, 1, (int[]){2}, NULL, 0), 0, NULL), t, SL_EARG,
                      "sl_index_select: input 1 is NULL on a tape without an error");
    sl_tape_free(t);
}

/* Replay with the index leaf changed: the same checks, naming the phase
 * that meets the bad index; the sweeps then refuse, the error is sticky. */
Test(index, index_select_checks_indices_again_on_replay) {
    const double X[6] = {1, 2, 3, 4, 5, 6};
    for (int phase = 0; phase < 3; phase++) { /* sl_forward, sl_backward, sl_jvp */
        sl_tape *t = sl_tape_new();
        sl_var *x = sl_input(t, 2, (int[]){3, 2}, X, SL_GRAD);
        sl_var *idx = sl_input(t, 1, (int[]){2}, (double[]){2, 0}, 0);
        sl_var *y = sl_sum(t, sl_index_select(t, x, 0, idx), SL_ALL, 0);
        cr_assert_not_null(y, "%s", sl_tape_error(t));
        cr_expect_eq(sl_item(y), 5 + 6 + 1 + 2);
        /* a valid new index: the replay follows it */
        sl_leaf_data(idx)[1] = 1;
        cr_assert_eq(sl_forward(t), SL_OK);
        cr_expect_eq(sl_item(y), 5 + 6 + 3 + 4);
        sl_leaf_data(idx)[1] = 7;
        const double tan[6] = {0};
        const double *tans[] = {tan};
        double dy;
        const int rc = phase == 0   ? sl_forward(t)
                       : phase == 1 ? sl_backward(t, y)
                                    : sl_jvp(t, y, 1, &x, tans, &dy);
        cr_expect_eq(rc, SL_EARG, "phase %d", phase);
        const char *pre[] = {"sl_forward: ", "sl_backward: ", "sl_jvp: "};
        char want[256];
        snprintf(want, sizeof want,
                 "%ssl_index_select: idx[1] is 7, out of range: indices must be integers in "
                 "[0, 3) along axis 0 of x [3,2]",
                 pre[phase]);
        cr_expect_str_eq(sl_tape_error(t), want);
        cr_expect_eq(sl_backward(t, y), SL_EARG);
        sl_leaf_data(idx)[1] = 1; /* put back: still the first error */
        cr_expect_eq(sl_forward(t), SL_EARG);
        cr_expect_str_eq(sl_tape_error(t), want);
        sl_tape_free(t);
    }
}

/* ------------------------------------------- the checker against wrong rules */

/* where giving g to both branches, as a rule that forgets the condition */
static void where_bwd_both(sl_var *out) {
    const sl_var *a = sl_in(out, 1), *b = sl_in(out, 2);
    double *da = sl_grad_data(a), *db = sl_grad_data(b);
    const double *g = sl_grad(out);
    /* the cases' a and b have out's shape or are scalars */
    for (size_t k = 0; k < sl_numel(out); k++) {
        if (da) da[sl_numel(a) == 1 ? 0 : k] += g[k];
        if (db) db[sl_numel(b) == 1 ? 0 : k] += g[k];
    }
}
/* index_select storing g instead of adding it: right without repeats */
static void index_select_bwd_overwrites(sl_var *out) {
    const sl_var *x = sl_in(out, 0), *idx = sl_in(out, 1);
    double *dx = sl_grad_data(x);
    const int ax =
        sl_attrs_of(out)->axis < 0 ? sl_attrs_of(out)->axis + sl_ndim(x) : sl_attrs_of(out)->axis;
    size_t outer = 1, inner = 1, len = (size_t)sl_dims(x)[ax], m = sl_numel(idx);
    for (int i = 0; i < ax; i++) outer *= (size_t)sl_dims(x)[i];
    for (int i = ax + 1; i < sl_ndim(x); i++) inner *= (size_t)sl_dims(x)[i];
    for (size_t p = 0; p < outer; p++)
        for (size_t j = 0; j < m; j++)
            for (size_t i = 0; i < inner; i++)
                dx[(p * len + (size_t)sl_value(idx)[j]) * inner + i] =
                    sl_grad(out)[(p * m + j) * inner + i];
}

/* Cases the wrong rules handle shapes for: where on same shapes and a scalar
 * b; index_select with repeats, where only accumulating is right. */
static const sl_op_case where_plain[] = {{.shape = {{2, 2, 3}, {2, 2, 3}, {2, 2, 3}}},
                                         {.shape = {{1, 5}, {1, 5}, {0}}}};
static const sl_op_case index_repeats[] = {{.shape = {{1, 3}, {1, 8}}, .attrs = {.axis = 0}},
                                           {.shape = {{2, 2, 3}, {1, 5}}, .attrs = {.axis = 1}}};

Test(index, the_checker_catches_wrong_where_and_index_select_rules) {
    expect_checker_catches("where", where_plain, 2, where_bwd_both);
    expect_checker_catches("index_select", index_repeats, 2, index_select_bwd_overwrites);
    /* and on index_select's own cases (the first: 6 indices into [4]) */
    expect_checker_catches("index_select", NULL, 0, index_select_bwd_overwrites);
}

/* The check draws both branches for where's condition and indices inside
 * the axis for index_select, case by case. */
Test(index, every_case_passes_the_check) {
    const char *names[] = {"where", "index_select"};
    for (int k = 0; k < 2; k++) {
        const sl_op *op = sl_op_find(names[k]);
        cr_assert_not_null(op);
        sl_gradcheck_report rep;
        cr_expect_eq(sl_gradcheck_op(op, NULL, &rep), SL_OK, "%s: %s", names[k], rep.message);
        cr_expect_eq(rep.ncases, op->ncases);
    }
}
