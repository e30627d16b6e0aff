/*
 * testutil.h - helpers shared by the core test suites (not a suite itself:
 * only tests/test_*.c become executables).
 *
 *  - a counting allocator that can be told to fail on its N-th call and
 *    tracks live blocks, so fault tests can prove that nothing leaks even
 *    without a leak sanitizer (requests above 64 GiB fail as well);
 *  - a closeness predicate for doubles (relative + absolute tolerance);
 *  - a row-major walk over the multi-indices of a shape, and the flat index
 *    such a multi-index reads in a broadcast input;
 *  - the check of an op that must fail with a sticky error;
 *  - the check that the gradient checker catches a wrong backward rule.
 */
#ifndef SLOPE_TESTUTIL_H
#define SLOPE_TESTUTIL_H

#include "slope.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct counting_alloc {
    long calls;    /* alloc calls so far */
    long fail_at;  /* fail the call with this number (1-based); 0 = never */
    long failures; /* calls that returned NULL */
    long live;     /* blocks handed out and not yet freed */
    size_t bytes;  /* bytes handed out (sum over successful calls) */
} counting_alloc;

static inline void *counting_alloc_fn(size_t size, void *ud) {
    counting_alloc *c = ud;
    c->calls++;
    /* refuse absurd sizes here: ASan's malloc would abort instead of returning NULL */
    if ((c->fail_at > 0 && c->calls == c->fail_at) || size > ((size_t)1 << 36)) {
        c->failures++;
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p) {
        c->live++;
        c->bytes += size;
    }
    return p;
}

static inline void counting_free_fn(void *p, void *ud) {
    counting_alloc *c = ud;
    if (!p) return;
    c->live--;
    free(p);
}

static inline sl_allocator counting_allocator(counting_alloc *c) {
    sl_allocator a = {counting_alloc_fn, counting_free_fn, c};
    return a;
}

/* |a - b| <= atol + rtol*|b|; NaN never passes unless both are NaN. */
static inline int near(double a, double b, double rtol, double atol) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= atol + rtol * fabs(b);
}

/* strstr that tolerates a NULL haystack (a missing message is a failure). */
static inline int contains(const char *s, const char *needle) {
    return s && strstr(s, needle) != NULL;
}

/* The next multi-index after idx in row-major order over dims (rank ndim);
 * 0 after the last (idx is all zeros again). */
static inline int next_index(int ndim, const int *dims, int *idx) {
    for (int i = ndim - 1; i >= 0; i--) {
        if (++idx[i] < dims[i]) return 1;
        idx[i] = 0;
    }
    return 0;
}

/* The flat index of out's multi-index idx (rank nd) in an input of rank nin
 * (dims din) right-aligned against it, its size-1 axes broadcast. */
static inline size_t bcast_flat(int nd, const int *idx, int nin, const int *din) {
    size_t f = 0;
    for (int i = 0; i < nin; i++) {
        const int oi = idx[nd - nin + i];
        f = f * (size_t)din[i] + (size_t)(din[i] == 1 ? 0 : oi);
    }
    return f;
}

/* An op's result r that must be an error: NULL, the tape's status and its
 * whole message. */
static inline void expect_tape_error(sl_var *r, sl_tape *t, int status, const char *msg) {
    cr_expect_null(r);
    cr_expect_eq(sl_tape_status(t), status, "%s", sl_tape_error(t));
    cr_expect_str_eq(sl_tape_error(t), msg);
}

/* The gradient check passes built-in op `name` and fails (SL_EGRAD, blaming
 * the reverse-mode rule) a copy of it with backward rule `wrong`, both on
 * `cases` (NULL: the op's own). sl_gradcheck_op needs no registration. */
static inline void expect_checker_catches(const char *name, const sl_op_case *cases, int ncases,
                                          sl_backward_fn wrong) {
    const sl_op *builtin = sl_op_find(name);
    cr_assert_not_null(builtin, "%s is registered", name);
    sl_op ok = *builtin;
    if (cases) ok.cases = cases, ok.ncases = ncases;
    sl_op bad = ok;
    bad.backward = wrong;
    sl_gradcheck_report rep;
    cr_expect_eq(sl_gradcheck_op(&ok, NULL, &rep), SL_OK, "%s: %s", name, rep.message);
    cr_expect_eq(sl_gradcheck_op(&bad, NULL, &rep), SL_EGRAD, "%s's wrong rule passed", name);
    cr_expect_str_eq(rep.failed, "vjp", "%s: %s", name, rep.message);
}

#endif
