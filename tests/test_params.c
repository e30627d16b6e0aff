/*
 * test_params.c - the named parameter store: creation and copies of the
 * initial values, duplicate names and bad shapes refused with a message that
 * says why, insertion-order iteration, lookup, count and zero_grad.
 */
#include "testutil.h"

#include <criterion/criterion.h>

Test(params, create_and_read_back) {
    sl_params *ps = sl_params_new();
    cr_assert_not_null(ps);
    cr_expect_eq(sl_params_count(ps), 0);
    cr_expect_null(sl_params_next(ps, NULL));
    double init[6] = {1, 2, 3, 4, 5, 6};
    sl_param *w = sl_param_new(ps, "layer1.weight", 2, (int[]){2, 3}, init);
    cr_assert_not_null(w, "%s", sl_params_error(ps));
    cr_expect_null(sl_params_error(ps));
    init[0] = 100; /* the store holds a copy */
    cr_expect_str_eq(sl_param_name(w), "layer1.weight");
    cr_expect_eq(sl_param_ndim(w), 2);
    cr_expect_eq(sl_param_dims(w)[0], 2);
    cr_expect_eq(sl_param_dims(w)[1], 3);
    cr_expect_eq(sl_param_numel(w), 6);
    cr_expect_eq(sl_param_value(w)[0], 1.0);
    cr_expect_eq(sl_param_value(w)[5], 6.0);
    for (int i = 0; i < 6; i++) cr_expect_eq(sl_param_grad(w)[i], 0.0, "gradient starts at zero");
    /* NULL init means zeros; rank 0 is allowed */
    sl_param *s = sl_param_new(ps, "scale", 0, NULL, NULL);
    cr_assert_not_null(s);
    cr_expect_eq(sl_param_numel(s), 1);
    cr_expect_eq(sl_param_value(s)[0], 0.0);
    cr_expect_not_null(sl_param_dims(s));
    /* value and grad are distinct writable buffers */
    sl_param_value(s)[0] = 3.0;
    sl_param_grad(s)[0] = -1.0;
    cr_expect_eq(sl_param_value(s)[0], 3.0);
    cr_expect_eq(sl_param_grad(s)[0], -1.0);
    cr_expect_neq(sl_param_value(w), sl_param_grad(w));
    cr_expect_eq(sl_params_count(ps), 2);
    cr_expect_eq(sl_params_get(ps, "layer1.weight"), w);
    cr_expect_eq(sl_params_get(ps, "scale"), s);
    cr_expect_null(sl_params_get(ps, "nope"));
    cr_expect_null(sl_params_get(ps, NULL));
    sl_params_free(ps);
    sl_params_free(NULL);
}

Test(params, duplicate_name_is_refused) {
    sl_params *ps = sl_params_new();
    sl_param *a = sl_param_new(ps, "w", 1, (int[]){3}, NULL);
    cr_assert_not_null(a);
    cr_expect_null(sl_param_new(ps, "w", 2, (int[]){2, 2}, NULL));
    const char *m = sl_params_error(ps);
    cr_expect(contains(m, "duplicate") && contains(m, "\"w\""), "%s", m);
    cr_expect(contains(m, "[3]") && contains(m, "[2,2]"), "both shapes: %s", m);
    cr_expect_eq(sl_params_count(ps), 1);
    cr_expect_eq(sl_params_get(ps, "w"), a, "the first one stays");
    cr_expect_eq(sl_param_numel(a), 3);
    /* the error is about the last call: a success clears it */
    cr_expect_not_null(sl_param_new(ps, "w2", 1, (int[]){3}, NULL));
    cr_expect_null(sl_params_error(ps));
    sl_params_free(ps);
}

Test(params, bad_shapes_and_names_are_refused) {
    static const struct {
        const char *name;
        int ndim;
        int dims[5];
        int null_dims;
        const char *why;
    } cases[] = {
        {"a", 5, {1, 1, 1, 1, 1}, 0, "ndim"},
        {"b", -1, {1}, 0, "ndim"},
        {"c", 2, {2, 0}, 0, "dims[1]"},
        {"d", 1, {-3}, 0, "dims[0]"},
        {"e", 2, {0}, 1, "dims is NULL for ndim = 2"},
        {"f", 5, {1, 1, 1, 1, 1}, 1, "ndim = 5, must be 0..4"},
        {"", 1, {1}, 0, "empty"},
        {NULL, 1, {1}, 0, "NULL"},
        {"0123456789012345678901234567890123456789012345678901234567890123",
         1,
         {1},
         0,
         "got 64: \"01234567890123456789012345678901...\""},
        {"x", 2, {1 << 30, 1 << 30}, 0, "shape [1073741824,1073741824] is too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_params *ps = sl_params_new();
        sl_param *p = sl_param_new(ps, cases[i].name, cases[i].ndim,
                                   cases[i].null_dims ? NULL : cases[i].dims, NULL);
        cr_expect_null(p, "case %zu", i);
        const char *m = sl_params_error(ps);
        cr_expect(contains(m, "sl_param_new") && contains(m, cases[i].why), "case %zu: %s", i, m);
        if (cases[i].name && cases[i].name[0] && strlen(cases[i].name) < 64)
            cr_expect(contains(m, cases[i].name), "case %zu names the parameter: %s", i, m);
        cr_expect_eq(sl_params_count(ps), 0);
        sl_params_free(ps);
    }
    /* 63 bytes is the longest name */
    sl_params *ps = sl_params_new();
    const char *n63 = "012345678901234567890123456789012345678901234567890123456789012";
    cr_assert_eq(strlen(n63), 63);
    cr_expect_not_null(sl_param_new(ps, n63, 1, (int[]){1}, NULL), "%s", sl_params_error(ps));
    cr_expect_not_null(sl_params_get(ps, n63));
    cr_expect_null(sl_param_new(NULL, "x", 0, NULL, NULL));
    sl_params_free(ps);
}

/* The messages carry the values: a too long name's length and start (cut
 * between UTF-8 characters), a too large shape and the limit. */
Test(params, messages_show_the_length_the_shape_and_the_limit) {
    sl_params *ps = sl_params_new();
    char name[128] = "a", want[64] = "got 81: \"a";
    for (int i = 0; i < 40; i++) strcat(name, "\xC3\xA9"); /* 40 x U+00E9, 2 bytes each */
    for (int i = 0; i < 15; i++) strcat(want, "\xC3\xA9"); /* 31 of the 32 bytes shown */
    strcat(want, "...\"");
    cr_expect_null(sl_param_new(ps, name, 1, (int[]){1}, NULL));
    cr_expect(contains(sl_params_error(ps), want), "%s", sl_params_error(ps));
    /* 2^30 * 2^30 = 2^60 values, one more than (2^64 - 1) / 16 = 2^60 - 1 */
    cr_expect_null(sl_param_new(ps, "big", 2, (int[]){1 << 30, 1 << 30}, NULL));
    const char *m = sl_params_error(ps);
    cr_expect(contains(m, "\"big\"") && contains(m, "[1073741824,1073741824]"), "%s", m);
    if (SIZE_MAX == UINT64_MAX)
        cr_expect(contains(m, "more than 1152921504606846975 values"), "%s", m);
    sl_params_free(ps);
}

Test(params, iteration_in_insertion_order) {
    static const char *names[] = {"zeta",  "alpha", "mid", "b",  "a",
                                  "omega", "k0",    "k1",  "k2", "k3"};
    const int n = (int)(sizeof names / sizeof names[0]);
    sl_params *ps = sl_params_new();
    for (int i = 0; i < n; i++) {
        double v = i;
        cr_assert_not_null(sl_param_new(ps, names[i], 0, NULL, &v));
    }
    /* one failed insert in the middle does not disturb the order */
    cr_expect_null(sl_param_new(ps, "mid", 0, NULL, NULL));
    int i = 0;
    for (sl_param *p = sl_params_next(ps, NULL); p; p = sl_params_next(ps, p), i++) {
        cr_assert_lt(i, n);
        cr_expect_str_eq(sl_param_name(p), names[i], "position %d", i);
        cr_expect_eq(sl_param_value(p)[0], (double)i);
    }
    cr_expect_eq(i, n);
    cr_expect_eq(sl_params_count(ps), (size_t)n);
    cr_expect_null(sl_params_next(NULL, NULL));
    sl_params_free(ps);
}

Test(params, many_parameters) {
    sl_params *ps = sl_params_new();
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "p%d", i);
        double v = i;
        cr_assert_not_null(sl_param_new(ps, name, 0, NULL, &v));
    }
    cr_expect_eq(sl_params_count(ps), 500);
    for (int i = 499; i >= 0; i--) {
        snprintf(name, sizeof name, "p%d", i);
        sl_param *p = sl_params_get(ps, name);
        cr_assert_not_null(p, "%s", name);
        cr_expect_eq(sl_param_value(p)[0], (double)i);
    }
    sl_params_free(ps);
}

Test(params, zero_grad_zeroes_every_gradient_only) {
    sl_params *ps = sl_params_new();
    sl_param *a = sl_param_new(ps, "a", 1, (int[]){4}, (double[]){1, 2, 3, 4});
    sl_param *b = sl_param_new(ps, "b", 2, (int[]){2, 2}, (double[]){5, 6, 7, 8});
    for (int i = 0; i < 4; i++) sl_param_grad(a)[i] = i + 1, sl_param_grad(b)[i] = -i - 1;
    sl_params_zero_grad(ps);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sl_param_grad(a)[i], 0.0);
        cr_expect_eq(sl_param_grad(b)[i], 0.0);
        cr_expect_eq(sl_param_value(a)[i], i + 1.0, "values untouched");
        cr_expect_eq(sl_param_value(b)[i], i + 5.0);
    }
    sl_params_zero_grad(NULL);
    sl_params_free(ps);
}

Test(params, null_store_and_param_accessors) {
    cr_expect_eq(sl_params_count(NULL), 0);
    cr_expect_null(sl_params_get(NULL, "x"));
    cr_expect_not_null(sl_params_error(NULL));
    cr_expect_null(sl_param_name(NULL));
    cr_expect_eq(sl_param_ndim(NULL), 0);
    cr_expect_not_null(sl_param_dims(NULL));
    cr_expect_eq(sl_param_numel(NULL), 0);
    cr_expect_null(sl_param_value(NULL));
    cr_expect_null(sl_param_grad(NULL));
}
