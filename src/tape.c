/*
 * tape.c - recording, sticky errors, the reverse sweep and replay.
 *
 * The tape is a Wengert list: t->nodes holds every node in the order it was
 * recorded, which is already a topological order. Backward is therefore one
 * loop from y down to node 0 (no graph search, no recursion: a chain of 10^6
 * nodes costs nothing extra), and replay is one loop up.
 */
#include "internal.h"
#include "scalar.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---------------------------------------------------------------- status */

const char *sl_status_name(int status) {
    switch (status) {
#define X(name, code, text)                                                                        \
    case code:                                                                                     \
        return "SL_" #name;
        SL_STATUS_MAP(X)
#undef X
    }
    return "SL_UNKNOWN";
}

const char *sl_status_str(int status) {
    switch (status) {
#define X(name, code, text)                                                                        \
    case code:                                                                                     \
        return text;
        SL_STATUS_MAP(X)
#undef X
    }
    return "unknown status";
}

/* Recompute t->fast_cap after a change to what it depends on. */
void sl__fast_update(sl_tape *t) {
    t->fast_cap = t->status == SL_OK && !t->here_on && !(t->check & SL_CHECK_FINITE) ? t->cap : 0;
}

/* Is s one of the error codes of SL_STATUS_MAP? */
static bool is_error_status(int s) {
#define SL__IS_ERROR(name, code, text) || (s == (code) && (code) != SL_OK)
    return false SL_STATUS_MAP(SL__IS_ERROR);
#undef SL__IS_ERROR
}

int sl__vfail(sl_tape *t, int status, const char *fmt, va_list ap) {
    /* failing with "OK", a positive or an unknown code is itself a mistake:
     * callers test status < 0 and look the code up (sl_status_name) */
    if (!is_error_status(status)) status = SL_EARG;
    if (!t) return status;
    if (t->status != SL_OK) return t->status; /* the first error wins */
    t->status = status;
    t->fast_cap = 0;
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    return status;
}

void sl__clear_error(sl_tape *t) {
    t->status = SL_OK;
    t->msg[0] = '\0';
    sl__fast_update(t);
}

int sl__fail(sl_tape *t, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = sl__vfail(t, status, fmt, ap);
    va_end(ap);
    return r;
}

int sl_tape_fail(sl_tape *t, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = sl__vfail(t, status, fmt, ap);
    va_end(ap);
    return r;
}

/* ------------------------------------------------------------- lifecycle */

sl_tape *sl_tape_new(void) { return sl_tape_new_with(NULL); }

sl_tape *sl_tape_new_with(const sl_allocator *alloc) {
    const sl_allocator *a = alloc ? alloc : &sl__default_allocator;
    if (!a->alloc || !a->free) return NULL;
    sl_tape *t = a->alloc(sizeof *t, a->ud);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    sl__arena_init(&t->arena, a);
    return t;
}

void sl_tape_free(sl_tape *t) {
    if (!t) return;
    sl_allocator a = t->arena.a;
    sl__arena_release(&t->arena);
    a.free(t->nodes, a.ud);
    a.free(t->locs, a.ud);
    a.free(t->tans, a.ud);
    a.free(t, a.ud);
}

void sl_tape_clear(sl_tape *t) {
    if (!t) return;
    sl__arena_reset(&t->arena);
    t->n = 0;
    t->grad_stale = 0;
    t->tan_n = 0; /* the tangents lived in the arena */
    t->dirty = 0;
    t->status = SL_OK;
    t->msg[0] = '\0';
    sl__fast_update(t);
}

int sl_tape_status(const sl_tape *t) { return t ? t->status : SL_EARG; }

const char *sl_tape_error(const sl_tape *t) {
    if (!t) return "sl_tape_error: tape is NULL";
    return t->status == SL_OK ? NULL : t->msg;
}

size_t sl_tape_size(const sl_tape *t) { return t ? t->n : 0; }

size_t sl_tape_bytes(const sl_tape *t) {
    return t ? t->arena.total + t->cap * sizeof(sl_var *) + t->loc_cap * sizeof(sl__loc) +
                   t->tan_cap * sizeof(double *)
             : 0;
}

void sl_tape_set_check(sl_tape *t, int flags) {
    if (!t) return;
    if (flags & ~SL_CHECK_FINITE) { /* a typo must not pass for "off" or "on" */
        sl__fail(t, SL_EARG,
                 "sl_tape_set_check: flags = %d has bits other than SL_CHECK_FINITE (%d)", flags,
                 SL_CHECK_FINITE);
        return;
    }
    t->check = flags;
    sl__fast_update(t);
}

sl_tape *sl_tape_here(sl_tape *t, const char *file, int line) {
    if (t) {
        t->here_on = 1; /* from now on push_node keeps t->locs */
        t->fast_cap = 0;
        t->here_file = file;
        t->here_line = line;
    }
    return t;
}

/* Anomaly mode: the first non-finite element of buf (n values, belonging to
 * node v: its value, or the gradient of input `which` after v's backward)
 * becomes an SL_ENONFINITE error naming the node, its op, the element, the
 * inputs' values there and the source line. Returns false if one was found. */
static bool finite_or_fail(sl_tape *t, const sl_var *v, const double *buf, size_t n,
                           const char *phase, int which) {
    size_t e = 0;
    while (e < n && isfinite(buf[e])) e++;
    if (e == n) return true;
    char sh[64], ins[200] = "", where[160] = "";
    const sl_op *op = sl__op(v);
    const size_t id = sl__id(v);
    int k = 0;
    for (int i = 0; i < sl__arity(v); i++) {
        const sl_var *x = sl__in(v, i);
        /* the matching element when shapes line up, else the input's shape */
        const size_t ref = which >= 0 ? sl__n(sl__in(v, which)) : sl__n(v);
        const size_t xn = sl__n(x);
        const size_t at = xn == ref ? e : (xn == 1 ? 0 : (size_t)-1);
        if (at != (size_t)-1)
            k += snprintf(ins + k, sizeof ins - (size_t)k, "%sin%d[%zu] = %.17g", i ? ", " : "", i,
                          at, sl__val(x)[at]);
        else
            k += snprintf(ins + k, sizeof ins - (size_t)k, "%sin%d %s", i ? ", " : "", i,
                          sl__shape_str(sh, sl__ndim(x), sl__dims(x)));
        if (k >= (int)sizeof ins) break;
    }
    if (t->locs && id < t->n && t->locs[id].file)
        snprintf(where, sizeof where, ", recorded at %s:%d", t->locs[id].file, t->locs[id].line);
    const sl_var *owner = which >= 0 ? sl__in(v, which) : v;
    sl__fail(t, SL_ENONFINITE,
             "%s: non-finite %s at node %zu (%s%s): element %zu of %s is %g; inputs: %s", phase,
             which >= 0 ? "gradient" : "value", id, op ? op->name : "leaf", where, e,
             sl__shape_str(sh, sl__ndim(owner), sl__dims(owner)), buf[e], ins[0] ? ins : "none");
    if (which >= 0) {
        size_t len = strlen(t->msg);
        snprintf(t->msg + len, sizeof t->msg - len,
                 " (gradient of input %d, from the backward "
                 "rule of %s)",
                 which, op->name);
    }
    return false;
}

/* ------------------------------------------------------------- recording */

/* The function a message names: "sl_" + op name, or a plain name for
 * leaves. Two pointers, so recording never formats a string unless it fails. */
typedef struct who {
    const char *pre, *name;
} who;
#define WHO_LEAF(fn) ((who){"", (fn)})
#define WHO_OP(op) ((who){"sl_", (op)->name ? (op)->name : "?"})

/* Grow a side array of elem-byte entries to cap entries, keeping the first
 * keep and zeroing the rest. False on OOM (the old array stays). */
static bool grow_side(sl_tape *t, void **arr, size_t *arr_cap, size_t cap, size_t keep,
                      size_t elem) {
    if (cap > SIZE_MAX / elem) return false;
    char *p = t->arena.a.alloc(cap * elem, t->arena.a.ud);
    if (!p) return false;
    if (keep) memcpy(p, *arr, keep * elem);
    memset(p + keep * elem, 0, (cap - keep) * elem);
    t->arena.a.free(*arr, t->arena.a.ud);
    *arr = p;
    *arr_cap = cap;
    return true;
}

/* The source locations, kept once sl_tape_here has been called: node id
 * (being pushed) gets the current one if it is an op node. */
static bool record_loc(sl_tape *t, sl_var *v, size_t id, who fn) {
    if (t->loc_cap <= id) {
        void *arr = t->locs;
        /* nodes recorded before the first sl_tape_here read as unknown (zeroed) */
        if (!grow_side(t, &arr, &t->loc_cap, t->cap, t->locs ? id : 0, sizeof(sl__loc))) {
            sl__fail(t, SL_ENOMEM, "%s%s: out of memory for the source locations of %zu nodes",
                     fn.pre, fn.name, t->cap);
            return false;
        }
        t->locs = arr;
    }
    const bool op = sl__op(v) != NULL;
    t->locs[id].file = op ? t->here_file : NULL;
    t->locs[id].line = op ? t->here_line : 0;
    return true;
}

/* Append v to the node list, growing it by doubling (amortised, and kept
 * across sl_tape_clear). Ids are 32-bit. */
static SL__NOINLINE bool push_node(sl_tape *t, sl_var *v, who fn) {
    if (t->n == t->cap) {
        if (t->n >= UINT32_MAX) {
            sl__fail(t, SL_ENOMEM, "%s%s: the tape is full (%zu nodes)", fn.pre, fn.name, t->n);
            return false;
        }
        size_t cap = t->cap ? t->cap * 2 : 1024;
        sl_var **nodes = t->arena.a.alloc(cap * sizeof *nodes, t->arena.a.ud);
        if (!nodes) {
            sl__fail(t, SL_ENOMEM, "%s%s: out of memory growing the tape to %zu nodes", fn.pre,
                     fn.name, cap);
            return false;
        }
        if (t->n) memcpy(nodes, t->nodes, t->n * sizeof *nodes);
        t->arena.a.free(t->nodes, t->arena.a.ud);
        t->nodes = nodes;
        t->cap = cap;
        sl__fast_update(t);
    }
    if (sl__is_s(v))
        sl__s(v)->id = (uint32_t)t->n;
    else
        v->id = (uint32_t)t->n;
    if (t->here_on && !record_loc(t, v, t->n, fn)) return false;
    t->nodes[t->n++] = v;
    return true;
}

/* A node with its value, gradient (when one flows) and saved buffers and,
 * when a is not NULL, a copy of a, in one arena block (layout: internal.h).
 * Every field is set here: no memset of the whole node on the recording
 * path. A leaf's gradient is zeroed now; an op node's when it is first
 * needed (t->grad_stale): a graph only evaluated never pays for it. */
static sl_var *node_new(sl_tape *t, who fn, int nin, int ndim, const int *dims, bool own_value,
                        bool with_grad, bool zero_grad, size_t nsaved, const sl_attrs *a) {
    const size_t n = sl__numel(ndim, dims);
    const size_t buf = own_value ? sl__bufbytes(n) : 0;
    _Static_assert(offsetof(sl_var, in) % 8 == 0, "node blocks are packed at 8 bytes");
    const size_t head = offsetof(sl_var, in) + (size_t)nin * sizeof(sl_var *);
    /* a buffer of 4 or more doubles: a 32-aligned block, the buffers at the head rounded to 32 */
    const bool wide = own_value && n >= 4;
    const size_t at = wide ? (head + 31) & ~(size_t)31 : head;
    /* saved: 32-aligned after the value and gradient (up to 24 bytes of padding) */
    const size_t saved = nsaved ? 24 + nsaved * sizeof(double) : 0;
    const size_t bytes = at + buf + (with_grad ? buf : 0) + saved + (a ? sizeof(sl_attrs) : 0);
    char *mem = sl__arena_take(&t->arena, bytes, wide ? 32 : 8);
    if (!mem) {
        char sh[64];
        sl__fail(t, SL_ENOMEM, "%s%s: out of memory for a %s node", fn.pre, fn.name,
                 sl__shape_str(sh, ndim, dims));
        return NULL;
    }
    sl_var *v = (sl_var *)(void *)mem;
    char *p = mem + at;
    v->op = NULL;
    v->val = own_value ? (double *)(void *)p : NULL;
    p += buf;
    v->grad = with_grad ? (double *)(void *)p : NULL;
    if (with_grad && zero_grad) sl__zero(v->grad, n);
    p += with_grad ? buf : 0;
    v->tape = t;
    v->n = n;
    v->id = 0;
    v->kind = SL__KIND_NODE;
    v->ndim = (unsigned char)ndim;
    for (int i = 0; i < SL_MAX_DIMS; i++) v->dims[i] = i < ndim ? dims[i] : 0;
    v->flags = nsaved ? SL__NODE_SAVED : 0;
    if (nsaved) p = (char *)sl__saved(v) + nsaved * sizeof(double);
    if (a) {
        sl_attrs *copy = (sl_attrs *)(void *)p;
        *copy = *a;
        v->attrs = copy;
    } else {
        v->attrs = &sl__zero_attrs;
    }
    return v;
}

static bool check_shape(sl_tape *t, who fn, int ndim, const int *dims) {
    if (ndim < 0 || ndim > SL_MAX_DIMS) {
        sl__fail(t, SL_EARG, "%s%s: ndim = %d, must be 0..%d", fn.pre, fn.name, ndim, SL_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !dims) {
        sl__fail(t, SL_EARG, "%s%s: dims is NULL for ndim = %d", fn.pre, fn.name, ndim);
        return false;
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1) {
            sl__fail(t, SL_EARG, "%s%s: dims[%d] = %d, every dim must be >= 1", fn.pre, fn.name, i,
                     dims[i]);
            return false;
        }
        if (n > SIZE_MAX / sizeof(double) / (size_t)dims[i]) {
            sl__fail(t, SL_EARG, "%s%s: shape too large (element count overflows)", fn.pre,
                     fn.name);
            return false;
        }
        n *= (size_t)dims[i];
    }
    return true;
}

/* ---- scalar nodes (internal.h: sl__snode; their rules: scalar.h) */

/* Append a scalar node: the common case inline, the rest (growth, source
 * locations) through push_node. */
static SL__INLINE bool push_s(sl_tape *t, sl__snode *s, who fn) {
    if (t->n < t->cap && !t->here_on) {
        s->id = (uint32_t)t->n;
        t->nodes[t->n++] = (sl_var *)(void *)s;
        return true;
    }
    return push_node(t, (sl_var *)(void *)s, fn);
}

/* A scalar leaf of value x; with param (an sl_use leaf), the parameter's
 * value and gradient buffers follow it (internal.h: sl__sarg.ext). */
static sl_var *s_leaf(sl_tape *t, double x, int grad, double *param, double *param_grad, who fn) {
    sl__snode *s = sl__arena_take(&t->arena, sizeof *s + (param ? 2 * sizeof(sl__sarg) : 0), 8);
    if (!s) {
        sl__fail(t, SL_ENOMEM, "%s%s: out of memory for a scalar", fn.pre, fn.name);
        return NULL;
    }
    sl__s_fill_leaf(s, t->n, x, grad);
    if (param) {
        s->flags |= SL__NODE_PARAM;
        s->arg[0].ext = param;
        s->arg[1].ext = param_grad;
    }
    return push_s(t, s, fn) ? (sl_var *)(void *)s : NULL;
}

/* sl_scalar's checked path: errors, flags, growth, anomaly mode. Out of
 * line, so that the inline path needs no registers saved. */
static SL__NOINLINE sl_var *s_scalar_slow(sl_tape *t, double x, int flags) {
    if (!t || t->status != SL_OK) return NULL;
    if (flags & ~SL_GRAD) {
        sl__fail(t, SL_EARG, "sl_scalar: unknown flags 0x%x (only SL_GRAD)", (unsigned)flags);
        return NULL;
    }
    return s_leaf(t, x, flags & SL_GRAD, NULL, NULL, WHO_LEAF("sl_scalar"));
}

sl_var *sl_scalar(sl_tape *t, double x, int flags) {
    if (t && t->n < t->fast_cap && !(flags & ~SL_GRAD)) { /* the common case, inline */
        sl__snode *s = sl__arena_bump(&t->arena, sizeof *s, 8);
        if (s) { /* else s_leaf takes a new chunk */
            const size_t n = t->n;
            sl__s_fill_leaf(s, n, x, flags & SL_GRAD);
            t->nodes[n] = (sl_var *)(void *)s;
            t->n = n + 1;
            return (sl_var *)(void *)s;
        }
    }
    return s_scalar_slow(t, x, flags);
}

/* The slow ends of recording a scalar node: out of memory, or (anomaly
 * mode) a non-finite value. Both return NULL. */
static SL__NOINLINE sl_var *s_oom(sl_tape *t, const sl_op *op) {
    sl__fail(t, SL_ENOMEM, "sl_%s: out of memory for a scalar", op->name);
    return NULL;
}
static SL__NOINLINE sl_var *s_nonfinite(sl_tape *t, const sl_op *op, sl__snode *s) {
    char fname[80];
    snprintf(fname, sizeof fname, "sl_%s", op->name);
    finite_or_fail(t, (sl_var *)(void *)s, &s->val, 1, fname, -1);
    return NULL;
}

/* Record op (a unary scalar code) over scalar node x of t; a carries the
 * attribute of the codes that have one. */
static sl_var *s_record1(sl_tape *t, const sl_op *op, int code, sl__snode *x, const sl_attrs *a) {
    const int narg = SL__S_HAS_P(code) ? 2 : 1;
    sl__snode *s = sl__arena_take(&t->arena, sizeof *s + (size_t)narg * sizeof(sl__sarg), 8);
    if (!s) return s_oom(t, op);
    s->arg[0].x = x;
    if (narg == 2) s->arg[1].p = a->alpha;
    s->kind = SL__KIND_SCALAR;
    s->flags = x->flags & SL__NODE_GRAD;
    s->code = (unsigned char)code;
    s->run = x->flags & SL__NODE_LEAF ? 0 : SL__OP_IN0_OP; /* as sl__s_fill2 */
    s->grad = 0.0;
    s->val = sl__s_eval(s);
    if (!push_s(t, s, WHO_OP(op))) return NULL;
    if ((t->check & SL_CHECK_FINITE) && !isfinite(s->val)) return s_nonfinite(t, op, s);
    return (sl_var *)(void *)s;
}

/* The same for a binary code over x and y: the recording path of scalar
 * graphs (W1, W5), kept short. */
static SL__INLINE sl_var *s_record2(sl_tape *t, const sl_op *op, int code, sl__snode *x,
                                    sl__snode *y) {
    sl__snode *s = sl__arena_take(&t->arena, sizeof *s + 2 * sizeof(sl__sarg), 8);
    if (!s) return s_oom(t, op);
    sl__s_fill2(s, code, x, y, t->n); /* push_s gives it id t->n */
    if (!push_s(t, s, WHO_OP(op))) return NULL;
    if ((t->check & SL_CHECK_FINITE) && !isfinite(s->val)) return s_nonfinite(t, op, s);
    return (sl_var *)(void *)s;
}

/* Record op (scalar code `code`) over the scalar nodes in[], all t's. */
static sl_var *s_record(sl_tape *t, const sl_op *op, int code, sl_var *const *in,
                        const sl_attrs *a) {
    if (SL__S_BINARY(code)) return s_record2(t, op, code, sl__s(in[0]), sl__s(in[1]));
    return s_record1(t, op, code, sl__s(in[0]), a);
}

/* A tensor op's view of scalar node x: a rank-0 node over x's value and
 * gradient (and, in sl_jvp, tangent), recorded where the op uses x. Its
 * rules do nothing: the op's own rules read and write x through it. */
static void view_nop(sl_var *out) { (void)out; }
static const sl_op view_op = {.name = "scalar_view",
                              .arity = 1,
                              .forward = view_nop,
                              .backward = view_nop,
                              .jvp = view_nop,
                              .formula = "a tensor op's view of a scalar node"};

static sl_var *s_view(sl_tape *t, sl_var *x, who fn) {
    sl__snode *s = sl__s(x);
    sl_var *v = node_new(t, fn, 1, 0, NULL, false, false, false, 0, NULL);
    if (!v) return NULL;
    v->op = &view_op;
    v->val = &s->val;
    v->grad = (s->flags & SL__NODE_GRAD) ? &s->grad : NULL;
    v->flags = (unsigned char)(SL__NODE_VIEW | (s->flags & SL__NODE_GRAD));
    v->in[0] = x;
    return push_node(t, v, fn) ? v : NULL;
}

sl_var *sl_input(sl_tape *t, int ndim, const int *dims, const double *data, int flags) {
    if (!t || t->status != SL_OK) return NULL;
    if (flags & ~SL_GRAD) {
        sl__fail(t, SL_EARG, "sl_input: unknown flags 0x%x (only SL_GRAD)", (unsigned)flags);
        return NULL;
    }
    if (!check_shape(t, WHO_LEAF("sl_input"), ndim, dims)) return NULL;
    if (ndim == 0)
        return s_leaf(t, data ? data[0] : 0.0, flags & SL_GRAD, NULL, NULL, WHO_LEAF("sl_input"));
    sl_var *v =
        node_new(t, WHO_LEAF("sl_input"), 0, ndim, dims, true, flags & SL_GRAD, true, 0, NULL);
    if (!v) return NULL;
    if (data)
        memcpy(v->val, data, v->n * sizeof(double));
    else
        memset(v->val, 0, v->n * sizeof(double));
    v->flags = SL__NODE_LEAF | ((flags & SL_GRAD) ? SL__NODE_GRAD : 0);
    return push_node(t, v, WHO_LEAF("sl_input")) ? v : NULL;
}

/* sl_use lives here because it builds a leaf; the store itself is in nn/params.c. */
sl_var *sl__use_leaf(sl_tape *t, int ndim, const int *dims, double *val, double *grad) {
    if (ndim == 0) return s_leaf(t, *val, 1, val, grad, WHO_LEAF("sl_use"));
    sl_var *v = node_new(t, WHO_LEAF("sl_use"), 0, ndim, dims, false, false, false, 0, NULL);
    if (!v) return NULL;
    v->val = val;
    v->grad = grad;
    v->flags = SL__NODE_LEAF | SL__NODE_PARAM | SL__NODE_GRAD;
    return push_node(t, v, WHO_LEAF("sl_use")) ? v : NULL;
}

static bool check_inputs(sl_tape *t, who fn, int nin, sl_var *const *in) {
    if (!t || t->status != SL_OK) return false;
    for (int i = 0; i < nin; i++) {
        if (!in || !in[i]) {
            sl__fail(t, SL_EARG, "%s%s: input %d is NULL on a tape without an error", fn.pre,
                     fn.name, i);
            return false;
        }
        if (!sl__owns(t, in[i])) {
            sl__fail(t, SL_EARG, "%s%s: input %d belongs to another tape", fn.pre, fn.name, i);
            return false;
        }
    }
    return true;
}

bool sl__check_inputs(sl_tape *t, const char *fname, int nin, sl_var *const *in) {
    return check_inputs(t, WHO_LEAF(fname), nin, in);
}

/* s_record after the op's own checks of its attributes (alpha finite, a
 * valid gelu form): its shape rule, shown rank-0 stand-ins for the inputs. */
static sl_var *s_apply(sl_tape *t, const sl_op *op, int code, sl_var *const *in,
                       const sl_attrs *a) {
    if (op->shape && op->shape != sl__shape_same && op->shape != sl__shape_bcast) {
        sl_var probe;
        memset(&probe, 0, sizeof probe);
        probe.n = 1;
        probe.tape = t;
        sl_var *const pin[1] = {&probe};
        int ndim = 0, dims[SL_MAX_DIMS] = {0};
        if (op->shape(t, op, pin, a, &ndim, dims) != SL_OK || t->status != SL_OK) {
            if (t->status == SL_OK) sl__fail(t, SL_ESHAPE, "sl_%s: shape rule failed", op->name);
            return NULL;
        }
    }
    return s_record(t, op, code, in, a);
}

sl_var *sl_apply(sl_tape *t, const sl_op *op, int nin, sl_var *const *in, const sl_attrs *a) {
    if (!t || t->status != SL_OK) return NULL;
    if (!op) {
        sl__fail(t, SL_EARG, "sl_apply: op is NULL");
        return NULL;
    }
    const who fn = WHO_OP(op);
    /* op need not be registered, so check what sl_op_register would: a node
     * has SL_MAX_INPUTS input slots, and forward/backward are called blindly */
    if (op->arity < 1 || op->arity > SL_MAX_INPUTS || !op->forward || !op->backward) {
        sl__fail(t, SL_EARG,
                 "%s%s: malformed op (arity %d, must be 1..%d, with forward and backward)", fn.pre,
                 fn.name, op->arity, SL_MAX_INPUTS);
        return NULL;
    }
    if (nin != op->arity) {
        sl__fail(t, SL_EARG, "%s%s: takes %d input(s), given %d", fn.pre, fn.name, op->arity, nin);
        return NULL;
    }
    if (!check_inputs(t, fn, nin, in)) return NULL;
    /* scalar inputs: a scalar node when the op has a scalar form, else views */
    bool all_s = true, any_s = false;
    for (int i = 0; i < nin; i++) {
        const bool is = sl__is_s(in[i]);
        all_s = all_s && is;
        any_s = any_s || is;
    }
    if (all_s) {
        const int code = sl__s_code(op, a);
        if (code) return s_apply(t, op, code, in, a ? a : &sl__zero_attrs);
    }
    sl_var *views[SL_MAX_INPUTS];
    if (any_s) {
        for (int i = 0; i < nin; i++)
            if (!(views[i] = sl__is_s(in[i]) ? s_view(t, in[i], fn) : in[i])) return NULL;
        in = views;
    }
    /* a node keeps a copy of its attributes only when they are not all zero */
    const sl_attrs *keep = a && memcmp(a, &sl__zero_attrs, sizeof *a) != 0 ? a : NULL;
    if (!a) a = &sl__zero_attrs;
    int ndim = 0, dims[SL_MAX_DIMS] = {0};
    sl_shape_fn shape = op->shape ? op->shape : (op->arity == 1 ? sl__shape_same : sl__shape_bcast);
    if (shape(t, op, in, a, &ndim, dims) != SL_OK) {
        if (t->status == SL_OK) sl__fail(t, SL_ESHAPE, "%s%s: shape rule failed", fn.pre, fn.name);
        return NULL;
    }
    /* the same-shape rule passes a valid input shape on; any other rule has
     * its result checked (broadcasting valid shapes can still overflow the
     * element count: [2^21,1,1,1] against [2^21,1,1] and [2^21,1]) */
    if (shape != sl__shape_same && !check_shape(t, fn, ndim, dims)) return NULL;
    size_t nsaved = 0;
    if (op->saved) { /* the rule sees the node-to-be: shape, inputs, attributes */
        union {      /* a node with room for its inputs */
            sl_var v;
            sl_var *room[sizeof(sl_var) / sizeof(sl_var *) + SL_MAX_INPUTS];
        } probe;
        memset(&probe, 0, sizeof probe);
        probe.v.ndim = (unsigned char)ndim;
        probe.v.n = sl__numel(ndim, dims);
        probe.v.attrs = a;
        probe.v.tape = t;
        for (int i = 0; i < ndim; i++) probe.v.dims[i] = dims[i];
        for (int i = 0; i < nin; i++) probe.v.in[i] = in[i];
        probe.v.op = op;
        nsaved = op->saved(&probe.v);
    }
    unsigned grad = 0;
    for (int i = 0; i < nin; i++) grad |= in[i]->flags & SL__NODE_GRAD;
    if (sl__op_constant(op)) grad = 0; /* a comparison: a constant, as in PyTorch (internal.h) */
    sl_var *v = node_new(t, fn, nin, ndim, dims, true, grad != 0, false, nsaved, keep);
    if (!v) return NULL;
    v->op = op;
    v->flags |= (unsigned char)grad;
    for (int i = 0; i < nin; i++) v->in[i] = in[i];
    if (!push_node(t, v, fn)) return NULL;
    if (grad && !t->grad_stale) t->grad_stale = (size_t)v->id + 1; /* zeroed when needed */
    op->forward(v);
    if (t->status == SL_OK && (t->check & SL_CHECK_FINITE)) {
        char fname[80];
        snprintf(fname, sizeof fname, "%s%s", fn.pre, fn.name);
        finite_or_fail(t, v, v->val, v->n, fname, -1);
    }
    return t->status == SL_OK ? v : NULL;
}

sl_var *sl__apply1(sl_tape *t, const sl_op *op, sl_var *x, const sl_attrs *a) {
    sl_var *in[1] = {x};
    return sl_apply(t, op, 1, in, a);
}

sl_var *sl__apply2(sl_tape *t, const sl_op *op, sl_var *x, sl_var *y, const sl_attrs *a) {
    sl_var *in[2] = {x, y};
    return sl_apply(t, op, 2, in, a);
}

/* The element-wise ops' entry points: scalar inputs of t go straight to a
 * scalar node (the op's code known), anything else through sl_apply. */
sl_var *sl__s_apply1(sl_tape *t, const sl_op *op, int code, sl_var *x, const sl_attrs *a) {
    sl_var *in[1] = {x};
    if (t && t->status == SL_OK && x && sl__is_s(x) && sl__owns(t, x))
        return s_apply(t, op, code, in, a ? a : &sl__zero_attrs);
    return sl_apply(t, op, 1, in, a);
}

sl_var *sl__s_apply2(sl_tape *t, const sl_op *op, int code, sl_var *x, sl_var *y) {
    sl_var *in[2] = {x, y};
    if (t && t->status == SL_OK && x && y && sl__is_s(x) && sl__is_s(y) && sl__owns(t, x) &&
        sl__owns(t, y))
        return s_record2(t, op, code, sl__s(x), sl__s(y));
    return sl_apply(t, op, 2, in, NULL);
}

const sl_attrs sl__zero_attrs;

/* ---------------------------------------------------------- reading nodes */

int sl_ndim(const sl_var *v) { return v ? sl__ndim(v) : 0; }
const int *sl_dims(const sl_var *v) { return v ? sl__dims(v) : sl__scalar_dims; }
size_t sl_numel(const sl_var *v) { return v ? sl__n(v) : 0; }
const double *sl_value(const sl_var *v) { return v ? sl__val(v) : NULL; }
const double *sl_grad(const sl_var *v) {
    return v && (SL__FLAGS(v) & SL__NODE_SWEPT) ? sl__gradp(v) : NULL;
}
double sl_item(const sl_var *v) { return v && sl__n(v) == 1 ? sl__val(v)[0] : NAN; }
int sl_requires_grad(const sl_var *v) { return v && (SL__FLAGS(v) & SL__NODE_GRAD) ? 1 : 0; }
double *sl_leaf_data(sl_var *v) { return v && (SL__FLAGS(v) & SL__NODE_LEAF) ? sl__val(v) : NULL; }

/* The tape whose sl_jvp is running on this thread: a user's tangent rule
 * reading a scalar input's tangent (sl_tangent_data) finds it there, since
 * a scalar node does not point at its tape. */
static _Thread_local sl_tape *jvp_tape;

/* Input k as the user recorded it: a view (given to the op's kernels in
 * place of a scalar node) reads as that scalar node. */
const sl_var *sl_in(const sl_var *out, int k) {
    if (!out || k < 0 || k >= sl__arity(out)) return NULL;
    const sl_var *x = sl__in(out, k);
    return !sl__is_s(x) && (x->flags & SL__NODE_VIEW) ? x->in[0] : x;
}

/* A scalar node keeps only its attribute (alpha, p) or none: its sl_attrs
 * are rebuilt in a per-thread buffer, valid until the next call. */
const sl_attrs *sl_attrs_of(const sl_var *v) {
    if (!v) return NULL;
    if (!sl__is_s(v)) return v->attrs;
    static _Thread_local sl_attrs a;
    const sl__snode *s = sl__s(v);
    memset(&a, 0, sizeof a);
    if (SL__S_HAS_P(s->code)) a.alpha = s->arg[1].p;
    if (s->code == SL__S_GELU_TANH) a.mode = SL_GELU_TANH;
    return &a;
}
double *sl_out_data(sl_var *out) { return out ? sl__val(out) : NULL; }
/* Does tensor node v own an op-node gradient buffer (not a leaf's, not a
 * view's, which is its scalar's)? */
static inline bool owns_op_grad(const sl_var *v) {
    return v->grad && v->op && !(v->flags & SL__NODE_VIEW);
}

static void zero_new_grads(sl_tape *t);
double *sl_grad_data(const sl_var *v) {
    if (!v) return NULL;
    if (!sl__is_s(v) && owns_op_grad(v) && v->tape->grad_stale &&
        sl__id(v) + 1 >= v->tape->grad_stale)
        zero_new_grads(v->tape); /* never garbage, even before any sweep */
    return sl__gradp(v);
}
double *sl_saved_data(sl_var *out) { return out && !sl__is_s(out) ? sl__saved(out) : NULL; }
const sl_op *sl_op_of(const sl_var *v) { return v ? sl__op(v) : NULL; }
sl_tape *sl_node_tape(const sl_var *v) { return v && !sl__is_s(v) ? v->tape : NULL; }
double *sl_tangent_data(const sl_var *v) {
    if (!v || !(SL__FLAGS(v) & SL__NODE_TAN)) return NULL;
    if (!sl__is_s(v)) return sl__tanbuf(v);
    return jvp_tape && sl__owns(jvp_tape, v) ? jvp_tape->tans[sl__s(v)->id] : NULL;
}

/* ------------------------------------------------------- differentiation */

/* Op-node gradients start at zero (node_new, s_record, sl_forward); after a
 * sweep they hold its values, and the next sweep without a replay in
 * between zeroes them first. Leaves keep what they hold, so their gradients
 * accumulate; a view's gradient is its scalar's. */
static void zero_op_grads(sl_tape *t) {
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (sl__is_s(v)) {
            if (sl__s(v)->code != SL__S_LEAF) sl__s(v)->grad = 0.0;
        } else if (owns_op_grad(v)) {
            sl__zero(v->grad, v->n);
        }
    }
    t->dirty = 0;
    t->grad_stale = 0;
}

/* Zero the gradients of the tensor op nodes recorded since they were last
 * zeroed (node_new leaves them as the arena held them), and no others: the
 * older ones may hold a sweep's values that sl_grad still shows. */
static void zero_new_grads(sl_tape *t) {
    for (size_t i = t->grad_stale ? t->grad_stale - 1 : t->n; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (!sl__is_s(v) && owns_op_grad(v)) sl__zero(v->grad, v->n);
    }
    t->grad_stale = 0;
}

static int check_root(sl_tape *t, sl_var *y, const char *fname) {
    if (!t) return SL_EARG;
    if (t->status != SL_OK) return t->status;
    if (!y) return sl__fail(t, SL_EARG, "%s: y is NULL on a tape without an error", fname);
    const uint32_t id = sl__id(y);
    if (id >= t->n || t->nodes[id] != y || (!sl__is_s(y) && y->tape != t))
        return sl__fail(t, SL_EARG, "%s: y is not a node of this tape", fname);
    return SL_OK;
}

/* Anomaly mode after the backward rule of v: its inputs' gradients. */
static bool grads_finite(sl_tape *t, sl_var *v, const char *fname) {
    for (int k = 0; k < sl__arity(v); k++) {
        const sl_var *x = sl__in(v, k);
        const double *g = sl__gradp(x);
        if (g && !finite_or_fail(t, v, g, sl__n(x), fname, k)) return false;
    }
    return true;
}

/* A scalar leaf reached by the sweep: an sl_use leaf's gradient is
 * complete (every consumer came after it), so it goes into the parameter's. */
static inline void s_leaf_swept(sl__snode *s) {
    if (s->flags & SL__NODE_PARAM) {
        *s->arg[1].ext += s->grad;
        s->grad = 0.0;
    }
}

/* A scalar leaf in a replay: an sl_use leaf takes the parameter's value again. */
static inline void s_leaf_replayed(sl__snode *s) {
    if (s->flags & SL__NODE_PARAM) s->val = *s->arg[0].ext;
}

/* The head's bytes 4..7 (kind, flags, code, run: the same offsets for both
 * kinds of node) in one load, to test several of them at once against
 * s_pattern4 patterns; s_pattern4 puts its bytes in memory order, so the
 * tests do not depend on the machine's byte order. */
static inline uint32_t s_head4(const sl_var *v) {
    uint32_t h;
    memcpy(&h, (const char *)v + offsetof(sl__snode, kind), sizeof h);
    return h;
}
static inline uint32_t s_pattern4(unsigned kind, unsigned flags, unsigned code, unsigned run) {
    const unsigned char b[4] = {(unsigned char)kind, (unsigned char)flags, (unsigned char)code,
                                (unsigned char)run};
    uint32_t h;
    memcpy(&h, b, sizeof h);
    return h;
}

/* Is v a scalar product with the chain bit? */
static inline int s_chains(const sl_var *v) {
    return (s_head4(v) & s_pattern4(0xff, 0, 0xff, SL__OP_CHAIN)) ==
           s_pattern4(SL__KIND_SCALAR, 0, SL__S_MUL, SL__OP_CHAIN);
}

/* Is v a plain scalar leaf a gradient flows to, in no leaf run yet? The
 * first reverse sweep after recording, which meets leaves one by one, marks
 * a stretch of them in one short loop. */
static inline int s_unmarked_leaf(const sl_var *v) {
    return (s_head4(v) & s_pattern4(0xff, SL__NODE_GRAD | SL__NODE_PARAM, 0xff, 0xff)) ==
           s_pattern4(SL__KIND_SCALAR, SL__NODE_GRAD, SL__S_LEAF, 0);
}

/* s's rule ran: its inputs are on a path to y (sl__sweep). Leaves have no
 * rule, so only op nodes are marked, found from s's own run byte (no load
 * of the inputs' heads). */
static inline void s_reach_inputs(const sl__snode *s) {
    if (s->run & SL__OP_IN0_OP) s->arg[0].x->flags |= SL__NODE_REACHED;
    if (s->run & SL__OP_IN1_OP) s->arg[1].x->flags |= SL__NODE_REACHED;
}

/* The reverse sweep along a chain of products from s = nodes[i] (gradient
 * g) down: s = x * y with x = nodes[i-1] a product with the chain bit, and
 * so on. While x's slot was fresh (+0) the gradient passed down is g * y
 * itself, carried in a register. Returns the index of the last node swept;
 * *carry and *carry_g are that node's first input and its gradient as it
 * now stands. mark (a constant at each call): set SL__NODE_SWEPT on the
 * nodes below s, which a replay finds set already. */
static SL__INLINE size_t s_chain_back(sl_var *const *nodes, size_t i, sl__snode *s, double g,
                                      const int mark, const sl__snode **carry, double *carry_g) {
    for (;;) {
        /* x = s->arg[0].x: the chain bit says it is the node before s */
        sl__snode *x = sl__s(nodes[i - 1]), *y = s->arg[1].x;
        const double old = x->grad, d = g * y->val;
        uint64_t bits; /* all zero: the slot held +0 (fresh) */
        memcpy(&bits, &old, sizeof bits);
        x->grad = old + d;
        y->grad += g * x->val;
        if (s->run & SL__OP_IN1_OP) y->flags |= SL__NODE_REACHED;
        *carry = x; /* reached: the general loop takes it next if the chain stops here */
        if (bits != 0 || y == x) {
            *carry_g = x->grad;
            return i;
        }
        *carry_g = d; /* the add stays off the chain while the slot was fresh */
        if (!(x->run & SL__OP_CHAIN)) return i;
        s = x; /* read from the list, not from s: no load on the carried path */
        i--;
        /* s is reached; a flag another consumer set on it is cleared, as the
         * general loop does on its visit */
        if (mark)
            s->flags = (unsigned char)((s->flags | SL__NODE_SWEPT) & ~SL__NODE_REACHED);
        else if (s->flags & SL__NODE_REACHED)
            s->flags &= (unsigned char)~SL__NODE_REACHED;
        g = d;
    }
}

/* The reverse sweep's inner loop over a run of scalar nodes: nodes[i-1],
 * nodes[i-2], ... down to the first tensor node; returns the index after
 * it (0 if the run reached node 0). It carries a chain's gradient in a
 * register: carry is the scalar node whose gradient the last rule left in
 * carry_g, valid for the next node only. No calls here but the unary
 * rules', so carry_g stays in a register. */
static size_t s_sweep(sl_var *const *nodes, size_t i) {
    const sl__snode *carry = NULL;
    double carry_g = 0.0;
    while (i > 0 && sl__is_s(nodes[i - 1])) {
        sl__snode *s = sl__s(nodes[--i]);
        const sl__snode *c = carry;
        carry = NULL;
        if (s->code == SL__S_LEAF && s->run > 1 && !(s->run & SL__RUN_FIRST)) {
            /* a leaf run, down to its first */
            const size_t k = s->run;
            /* marked leaves stay marked, and a sweep that marked s went on down the
             * run (it can only stop early at an op node): if s is marked, the whole
             * run below it is, as in every replay after the first sweep */
            if ((s->flags & (SL__NODE_GRAD | SL__NODE_SWEPT)) == SL__NODE_GRAD)
                for (size_t j = i + 1 - k; j <= i; j++) SL__FLAGS(nodes[j]) |= SL__NODE_SWEPT;
            i -= k - 1;
            continue;
        }
        if (!(s->flags & SL__NODE_GRAD)) continue;
        const unsigned was = s->flags;
        s->flags = (unsigned char)((was | SL__NODE_SWEPT) & ~SL__NODE_REACHED);
        if (s->code == SL__S_LEAF) {
            if (!s->run && !(s->flags & SL__NODE_PARAM)) /* runs not marked yet: no replay */
                while (i > 0 && s_unmarked_leaf(nodes[i - 1]))
                    SL__FLAGS(nodes[--i]) |= SL__NODE_SWEPT;
            s_leaf_swept(s);
            continue;
        }
        if (s != c && !(was & SL__NODE_REACHED)) continue; /* off every path to y */
        double g = s == c ? carry_g : s->grad;
        if (s->run & SL__OP_CHAIN) { /* s = x * y, x = nodes[i-1] a product: follow the chain */
            /* marked nodes stay marked and a sweep marks every node below the ones it
             * marked, so if s was marked before, the whole chain below it is */
            i = was & SL__NODE_SWEPT ? s_chain_back(nodes, i, s, g, 0, &carry, &carry_g)
                                     : s_chain_back(nodes, i, s, g, 1, &carry, &carry_g);
            continue;
        }
        carry_g = sl__s_backward(s, g);
        s_reach_inputs(s);
        carry = s->arg[0].x;
    }
    return i;
}

int sl__sweep(sl_tape *t, sl_var *y, const double *dy, const char *fname) {
    int rc = check_root(t, y, fname);
    if (rc != SL_OK) return rc;
    if (t->dirty)
        zero_op_grads(t);
    else if (t->grad_stale)
        zero_new_grads(t);
    t->dirty = 1;
    double *gy = sl__gradp(y);
    if (gy)
        for (size_t i = 0, n = sl__n(y); i < n; i++) gy[i] += dy ? dy[i] : 1.0;
    /* Only the nodes y depends on pass gradients on, as in PyTorch: a node off
     * every path to y (a metric recorded beside the loss, say) has a zero
     * gradient, and its rule would still add 0 * its local derivative into its
     * inputs, NaN where that is infinite or NaN (log at 0). A node runs its
     * rule when it is y or an input of a node whose rule ran (SL__NODE_REACHED,
     * set on the inputs after the rule, cleared when the sweep visits them). */
    SL__FLAGS(y) |= SL__NODE_REACHED;
    const bool check = t->check & SL_CHECK_FINITE;
    for (size_t i = (size_t)sl__id(y) + 1; i > 0;) {
        if (!check && (i = s_sweep(t->nodes, i)) == 0) break;
        sl_var *v = t->nodes[--i];
        if (sl__is_s(v)) { /* anomaly mode: one at a time, checked */
            sl__snode *s = sl__s(v);
            if (!(s->flags & SL__NODE_GRAD)) continue;
            s->flags |= SL__NODE_SWEPT;
            const unsigned was = s->flags;
            s->flags = (unsigned char)((was | SL__NODE_SWEPT) & ~SL__NODE_REACHED);
            if (s->code == SL__S_LEAF) {
                s_leaf_swept(s);
                continue;
            }
            if (!(was & SL__NODE_REACHED)) continue;
            sl__s_backward(s, s->grad);
            s_reach_inputs(s);
        } else {
            if (!(v->flags & SL__NODE_GRAD)) continue;
            const bool reached = v->flags & SL__NODE_REACHED;
            v->flags = (unsigned char)((v->flags | SL__NODE_SWEPT) & ~SL__NODE_REACHED);
            if (!reached || !v->op) continue;
            if (v->flags & SL__NODE_VIEW) { /* its gradient is the scalar's */
                SL__FLAGS(v->in[0]) |= SL__NODE_REACHED;
                continue;
            }
            v->op->backward(v);
            /* an input the op takes as a constant (labels, a condition,
             * indices) is not on a path a gradient takes: as a comparison
             * cuts PyTorch's graph, its own rule must not run on a zero
             * gradient (0 * inf is NaN in its inputs) */
            for (int k = 0; k < v->op->arity; k++)
                if (!sl__domain_constant(v->op->domain[k])) SL__FLAGS(v->in[k]) |= SL__NODE_REACHED;
        }
        if (check && !grads_finite(t, v, fname)) return t->status;
    }
    /* SL_GRAD leaves recorded after y read zeros too */
    for (size_t i = (size_t)sl__id(y) + 1; i < t->n; i++)
        if (SL__FLAGS(t->nodes[i]) & SL__NODE_GRAD) SL__FLAGS(t->nodes[i]) |= SL__NODE_SWEPT;
    return t->status; /* a backward rule (a user's) may have failed */
}

int sl_backward(sl_tape *t, sl_var *y) {
    int rc = check_root(t, y, "sl_backward");
    if (rc != SL_OK) return rc;
    if (sl__n(y) != 1) {
        char sh[64];
        return sl__fail(t, SL_EARG,
                        "sl_backward: y must hold one element, has shape %s (%zu elements); use "
                        "sl_sum or sl_backward_seed",
                        sl__shape_str(sh, y->ndim, y->dims), y->n);
    }
    return sl__sweep(t, y, NULL, "sl_backward");
}

int sl_backward_seed(sl_tape *t, sl_var *y, const double *dy) {
    int rc = check_root(t, y, "sl_backward_seed");
    if (rc != SL_OK) return rc;
    if (!dy) return sl__fail(t, SL_EARG, "sl_backward_seed: dy is NULL");
    return sl__sweep(t, y, dy, "sl_backward_seed");
}

/* Replay's inner loop over a run of scalar nodes from nodes[i] up to the
 * first tensor node; returns its index (n if none). A chain's value is
 * carried in a register (prev, prev_val), as in s_sweep. Op-node gradients
 * are zeroed on the way. Leaf runs (internal.h) marked by an earlier replay
 * are jumped at their first leaf; unmarked plain leaves are marked here, so
 * a run is only ever entered at its first leaf. */
static size_t s_forward(sl_var *const *nodes, size_t i, size_t n) {
    const sl__snode *prev = NULL;
    double prev_val = 0.0;
    sl__snode *first = NULL; /* the leaf run being marked, len leaves so far */
    unsigned len = 0;
    for (; i < n && sl__is_s(nodes[i]); i++) {
        sl__snode *s = sl__s(nodes[i]);
        if (s->code == SL__S_LEAF) {
            if (s->run & SL__RUN_FIRST) { /* a leaf run: nothing to replay */
                i += (s->run & SL__RUN_MAX) - 1u;
                first = NULL;
            } else if (s->flags & SL__NODE_PARAM) {
                s_leaf_replayed(s);
                first = NULL;
            } else if (!s->run) { /* mark the runs for the sweeps after this one */
                if (first && len < SL__RUN_MAX && !((first->flags ^ s->flags) & SL__NODE_GRAD)) {
                    s->run = (unsigned char)++len;
                    first->run = (unsigned char)(SL__RUN_FIRST | len);
                } else {
                    first = s;
                    len = 1;
                    s->run = SL__RUN_FIRST | 1;
                }
            }
            continue;
        }
        first = NULL;
        if (s->code == SL__S_MUL && (s->run & SL__OP_CHAIN) && s->arg[0].x == prev) {
            /* a chain of products: each one's first input is the one before */
            double v = prev_val;
            for (;;) {
                s->val = v = v * s->arg[1].x->val;
                s->grad = 0.0;
                if (i + 1 == n || !s_chains(nodes[i + 1])) break;
                s = sl__s(nodes[i + 1]);
                i++;
            }
            prev = s;
            prev_val = v;
            continue;
        }
        const sl__snode *x = s->arg[0].x;
        s->val = prev_val = sl__s_eval_z(s, x == prev ? prev_val : x->val);
        s->grad = 0.0;
        prev = s;
    }
    return i;
}

int sl_forward(sl_tape *t) {
    if (!t) return SL_EARG;
    if (t->status != SL_OK) return t->status;
    const bool check = t->check & SL_CHECK_FINITE;
    for (size_t i = 0; i < t->n; i++) {
        if (!check && (i = s_forward(t->nodes, i, t->n)) == t->n) break;
        sl_var *v = t->nodes[i];
        if (sl__is_s(v)) { /* anomaly mode: one at a time, checked */
            sl__snode *s = sl__s(v);
            if (s->code == SL__S_LEAF) {
                s_leaf_replayed(s);
                continue;
            }
            s->val = sl__s_eval(s);
            s->grad = 0.0;
            if (!finite_or_fail(t, v, &s->val, 1, "sl_forward", -1)) return t->status;
            continue;
        }
        if (!v->op || (v->flags & SL__NODE_VIEW)) continue;
        v->op->forward(v);
        if (v->grad && (t->dirty || (t->grad_stale && i + 1 >= t->grad_stale)))
            sl__zero(v->grad, v->n);
        if (check && !finite_or_fail(t, v, v->val, v->n, "sl_forward", -1)) return t->status;
    }
    t->dirty = 0; /* every op-node gradient was zeroed above */
    t->grad_stale = 0;
    return t->status; /* a user op's forward may have failed */
}

/* The side array of tangent buffers covers every node recorded now; entries
 * of nodes recorded since the last sl_jvp (or clear) start NULL. */
static bool ensure_tangents(sl_tape *t) {
    if (t->tan_cap < t->n) {
        void *arr = t->tans;
        if (!grow_side(t, &arr, &t->tan_cap, t->cap, t->tan_n, sizeof(double *))) {
            sl__fail(t, SL_ENOMEM, "sl_jvp: out of memory for the tangents of %zu nodes", t->n);
            return false;
        }
        t->tans = arr;
    }
    for (size_t i = t->tan_n; i < t->n; i++) t->tans[i] = NULL;
    t->tan_n = t->n;
    return true;
}

static bool ensure_tangent(sl_tape *t, const sl_var *v) {
    double **tan = &t->tans[sl__id(v)];
    if (!*tan) *tan = sl__arena_alloc(&t->arena, sl__n(v) * sizeof(double));
    if (!*tan) {
        sl__fail(t, SL_ENOMEM, "sl_jvp: out of memory for the tangent of node %zu",
                 (size_t)sl__id(v));
        return false;
    }
    return true;
}

/* The tangent of scalar node x in the current pass, NULL meaning zero. */
static inline const double *s_tan(const sl_tape *t, const sl__snode *x) {
    return (x->flags & SL__NODE_TAN) ? t->tans[x->id] : NULL;
}

static int jvp_run(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs,
                   const double *const *tangents, double *dy) {
    int rc = check_root(t, y, "sl_jvp");
    if (rc != SL_OK) return rc;
    if (nin < 0) return sl__fail(t, SL_EARG, "sl_jvp: nin = %d, must be >= 0", nin);
    if (nin > 0 && !inputs) return sl__fail(t, SL_EARG, "sl_jvp: inputs is NULL (nin = %d)", nin);
    if (nin > 0 && !tangents)
        return sl__fail(t, SL_EARG, "sl_jvp: tangents is NULL (nin = %d)", nin);
    if (!dy) return sl__fail(t, SL_EARG, "sl_jvp: dy is NULL");
    if (!ensure_tangents(t)) return t->status;
    const size_t yid = sl__id(y);
    /* every node, not only those up to y: an input may be recorded after y
     * (its tangent does not reach y) and still carry the flag of a last call */
    for (size_t i = 0; i < t->n; i++) SL__FLAGS(t->nodes[i]) &= (unsigned char)~SL__NODE_TAN;
    for (int k = 0; k < nin; k++) {
        sl_var *x = inputs[k];
        if (!x || !sl__owns(t, x) || !(SL__FLAGS(x) & SL__NODE_LEAF))
            return sl__fail(t, SL_EARG, "sl_jvp: inputs[%d] is not a leaf of this tape", k);
        if (!tangents[k]) return sl__fail(t, SL_EARG, "sl_jvp: tangents[%d] is NULL", k);
        if (SL__FLAGS(x) & SL__NODE_TAN)
            return sl__fail(t, SL_EARG, "sl_jvp: inputs[%d] is listed twice", k);
        if (!ensure_tangent(t, x)) return t->status;
        memcpy(t->tans[sl__id(x)], tangents[k], sl__n(x) * sizeof(double));
        SL__FLAGS(x) |= SL__NODE_TAN;
    }
    for (size_t i = 0; i <= yid; i++) {
        sl_var *v = t->nodes[i];
        if (sl__is_s(v)) {
            sl__snode *s = sl__s(v);
            if (s->code == SL__S_LEAF) continue;
            const double *ta = s_tan(t, s->arg[0].x);
            const double *tb = SL__S_BINARY(s->code) ? s_tan(t, s->arg[1].x) : NULL;
            if (!ta && !tb) continue;
            if (!ensure_tangent(t, v)) return t->status;
            t->tans[i][0] = sl__s_jvp(s, ta, tb);
            s->flags |= SL__NODE_TAN;
            continue;
        }
        if (!v->op) continue;
        if (v->flags & SL__NODE_VIEW) { /* the scalar's tangent, shared */
            const sl__snode *s = sl__s(v->in[0]);
            if (s->flags & SL__NODE_TAN) {
                t->tans[i] = t->tans[s->id];
                v->flags |= SL__NODE_TAN;
            }
            continue;
        }
        bool any = false;
        for (int k = 0; k < v->op->arity; k++) any = any || (v->in[k]->flags & SL__NODE_TAN);
        if (!any || sl__op_constant(v->op)) continue; /* a comparison: no tangent */
        if (!v->op->jvp)
            return sl__fail(t, SL_EARG, "sl_jvp: op \"%s\" (node %zu) has no tangent rule",
                            v->op->name, i);
        if (!ensure_tangent(t, v)) return t->status;
        v->flags |= SL__NODE_TAN; /* before the rule: a user jvp finds its output
                                     through sl_tangent_data(out) */
        v->op->jvp(v);
    }
    const size_t m = sl__n(y);
    if (SL__FLAGS(y) & SL__NODE_TAN)
        memcpy(dy, t->tans[yid], m * sizeof(double));
    else
        memset(dy, 0, m * sizeof(double));
    return t->status;
}

int sl_jvp(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs, const double *const *tangents,
           double *dy) {
    sl_tape *outer = jvp_tape;
    jvp_tape = t;
    const int rc = jvp_run(t, y, nin, inputs, tangents, dy);
    jvp_tape = outer;
    return rc;
}

void sl_zero_grad(sl_tape *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        double *g = sl__gradp(v);
        if (g) memset(g, 0, sl__n(v) * sizeof(double));
        if (sl__is_s(v)) sl__s(v)->grad = 0.0;
    }
    t->grad_stale = 0;
}
