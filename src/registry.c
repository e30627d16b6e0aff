/*
 * registry.c - the op table: every op, built-in or user-defined, is found by
 * name through a uthash index and listed in registration order.
 *
 * Built-in ops come from the family tables (src/ops/<family>.c) and are registered
 * once, before the first registry call returns (call_once). The registry is
 * process-global and lives until exit, allocated with malloc (not through a
 * tape's sl_allocator: it belongs to no tape).
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

/* uthash must not exit() when memory runs out: report it instead. */
#define HASH_NONFATAL_OOM 1
static int hash_oom;
#define uthash_nonfatal_oom(obj) (hash_oom = 1)
#include <uthash.h>

typedef struct entry {
    const sl_op *op;
    UT_hash_handle hh;
} entry;

static entry *by_name;         /* uthash head */
static const sl_op **in_order; /* registration order */
static int count, cap;
static once_flag builtins_once = ONCE_FLAG_INIT;

static int add(const sl_op *op) {
    entry *e = NULL;
    HASH_FIND_STR(by_name, op->name, e);
    if (e) return SL_EARG;
    if (count == cap) {
        int ncap = cap ? cap * 2 : 64;
        const sl_op **n = realloc(in_order, (size_t)ncap * sizeof *n);
        if (!n) return SL_ENOMEM;
        in_order = n;
        cap = ncap;
    }
    e = malloc(sizeof *e);
    if (!e) return SL_ENOMEM;
    e->op = op;
    hash_oom = 0;
    HASH_ADD_KEYPTR(hh, by_name, op->name, strlen(op->name), e);
    if (hash_oom) {
        free(e);
        return SL_ENOMEM;
    }
    in_order[count++] = op;
    return SL_OK;
}

/* The built-in families, in registration order; along: not element-wise
 * (matrix products, shape changes, reductions, softmax, losses). */
static const struct {
    const sl_op *ops;
    const int *n;
    bool along;
} families[] = {
    {sl__elementwise_ops, &sl__elementwise_nops, false},
    {sl__activation_ops, &sl__activation_nops, false},
    {sl__select_ops, &sl__select_nops, false},
    {sl__compare_ops, &sl__compare_nops, false},
    {sl__linalg_ops, &sl__linalg_nops, true},
    {sl__slice_ops, &sl__slice_nops, true},
    {sl__index_ops, &sl__index_nops, true},
    {sl__reduce_ops, &sl__reduce_nops, true},
    {sl__softmax_ops, &sl__softmax_nops, true},
    {sl__loss_ops, &sl__loss_nops, true},
};

static void register_builtins(void) {
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (int i = 0; i < *families[f].n; i++) {
            int rc = add(&families[f].ops[i]);
            SL_ASSERT(rc == SL_OK); /* built-in names are unique; memory at start-up */
            (void)rc;
        }
}

static void init(void) { call_once(&builtins_once, register_builtins); }

bool sl__op_along_axes(const sl_op *op) {
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (int i = 0; families[f].along && i < *families[f].n; i++)
            if (op == &families[f].ops[i]) return true;
    return false;
}

const sl_op *sl_op_find(const char *name) {
    init();
    if (!name) return NULL;
    entry *e = NULL;
    HASH_FIND_STR(by_name, name, e);
    return e ? e->op : NULL;
}

/* Why this thread's last sl_op_register failed (sl_op_register_error). */
static _Thread_local char reg_msg[192];
static _Thread_local int reg_failed;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
reg_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reg_msg, sizeof reg_msg, fmt, ap);
    va_end(ap);
    reg_failed = 1;
    return status;
}

int sl_op_register(const sl_op *op) {
    init();
    reg_failed = 0;
    if (!op) return reg_fail(SL_EARG, "sl_op_register: op is NULL");
    if (!op->name || !op->name[0])
        return reg_fail(SL_EARG, "sl_op_register: the op's name is %s",
                        op->name ? "empty" : "NULL");
    const char *n = op->name;
    if (op->arity < 1 || op->arity > SL_MAX_INPUTS)
        return reg_fail(SL_EARG, "sl_op_register: \"%s\": arity %d, must be 1..%d", n, op->arity,
                        SL_MAX_INPUTS);
    if (!op->forward || !op->backward)
        return reg_fail(SL_EARG, "sl_op_register: \"%s\": no %s rule", n,
                        !op->forward ? "forward" : "backward");
    if (!sl__kind_ok(op->kind))
        return reg_fail(SL_EARG,
                        "sl_op_register: \"%s\": kind %d, must be SL_KIND_CUSTOM (0), SL_KIND_MAP "
                        "(1) or SL_KIND_ZIP (2)",
                        n, (int)op->kind);
    if (op->kind == SL_KIND_ZIP && op->arity != 2)
        return reg_fail(SL_EARG, "sl_op_register: \"%s\": kind SL_KIND_ZIP needs arity 2, has %d",
                        n, op->arity);
    if (op->kind == SL_KIND_MAP && op->arity != 1)
        return reg_fail(SL_EARG, "sl_op_register: \"%s\": kind SL_KIND_MAP needs arity 1, has %d",
                        n, op->arity);
    /* a kink or ties declaration is about a unary op, at a finite point */
    if ((op->kink.present || op->kink.ties) && op->arity != 1)
        return reg_fail(SL_EARG,
                        "sl_op_register: \"%s\": a kink or ties declaration needs arity 1, has %d",
                        n, op->arity);
    if (op->kink.present &&
        (!isfinite(op->kink.at) || (!op->kink.slope_is_alpha && !isfinite(op->kink.slope))))
        return reg_fail(SL_EARG,
                        "sl_op_register: \"%s\": kink at %g with slope %g: both must be finite", n,
                        op->kink.at, op->kink.slope);
    const int rc = add(op);
    if (rc == SL_EARG) return reg_fail(rc, "sl_op_register: \"%s\" is already registered", n);
    if (rc != SL_OK) return reg_fail(rc, "sl_op_register: \"%s\": out of memory", n);
    return SL_OK;
}

const char *sl_op_register_error(void) { return reg_failed ? reg_msg : NULL; }

int sl_op_count(void) {
    init();
    return count;
}

const sl_op *sl_op_at(int i) {
    init();
    return i >= 0 && i < count ? in_order[i] : NULL;
}
