/*
 * tape.c - recording, sticky errors, the reverse sweep and replay.
 *
 * The tape is a Wengert list: t->nodes holds every node in the order it was
 * recorded, which is already a topological order. Backward is therefore one
 * loop from y down to node 0 (no graph search, no recursion: a chain of 10^6
 * nodes costs nothing extra), and replay is one loop up.
 */
#include "internal.h"

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

int sl__vfail(sl_tape *t, int status, const char *fmt, va_list ap) {
    if (!t) return status;
    if (t->status != SL_OK) return t->status; /* the first error wins */
    if (status == SL_OK) status = SL_EARG;    /* failing with "OK" is itself a mistake */
    t->status = status;
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    return status;
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
    t->tan_n = 0; /* the tangents lived in the arena */
    t->dirty = 0;
    t->status = SL_OK;
    t->msg[0] = '\0';
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
    if (t) t->check = flags & SL_CHECK_FINITE;
}

sl_tape *sl_tape_here(sl_tape *t, const char *file, int line) {
    if (t) {
        t->here_on = 1; /* from now on push_node keeps t->locs */
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
    int k = 0;
    for (int i = 0; v->op && i < v->op->arity; i++) {
        const sl_var *x = v->in[i];
        /* the matching element when shapes line up, else the input's shape */
        const size_t ref = which >= 0 ? v->in[which]->n : v->n;
        const size_t at = x->n == ref ? e : (x->n == 1 ? 0 : (size_t)-1);
        if (at != (size_t)-1)
            k += snprintf(ins + k, sizeof ins - (size_t)k, "%sin%d[%zu] = %.17g", i ? ", " : "", i,
                          at, x->val[at]);
        else
            k += snprintf(ins + k, sizeof ins - (size_t)k, "%sin%d %s", i ? ", " : "", i,
                          sl__shape_str(sh, x->ndim, x->dims));
        if (k >= (int)sizeof ins) break;
    }
    if (t->locs && v->id < t->n && t->locs[v->id].file)
        snprintf(where, sizeof where, ", recorded at %s:%d", t->locs[v->id].file,
                 t->locs[v->id].line);
    const sl_var *owner = which >= 0 ? v->in[which] : v;
    sl__fail(t, SL_ENONFINITE,
             "%s: non-finite %s at node %zu (%s%s): element %zu of %s is %g; inputs: %s", phase,
             which >= 0 ? "gradient" : "value", (size_t)v->id, v->op ? v->op->name : "leaf", where,
             e, sl__shape_str(sh, owner->ndim, owner->dims), buf[e], ins[0] ? ins : "none");
    if (which >= 0) {
        size_t len = strlen(t->msg);
        snprintf(t->msg + len, sizeof t->msg - len,
                 " (gradient of input %d, from the backward "
                 "rule of %s)",
                 which, v->op->name);
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
static bool record_loc(sl_tape *t, sl_var *v, who fn) {
    if (t->loc_cap <= v->id) {
        void *arr = t->locs;
        /* nodes recorded before the first sl_tape_here read as unknown (zeroed) */
        if (!grow_side(t, &arr, &t->loc_cap, t->cap, t->locs ? v->id : 0, sizeof(sl__loc))) {
            sl__fail(t, SL_ENOMEM, "%s%s: out of memory for the source locations of %zu nodes",
                     fn.pre, fn.name, t->cap);
            return false;
        }
        t->locs = arr;
    }
    t->locs[v->id].file = v->op ? t->here_file : NULL;
    t->locs[v->id].line = v->op ? t->here_line : 0;
    return true;
}

/* Append v to the node list, growing it by doubling (amortised, and kept
 * across sl_tape_clear). Ids are 32-bit. */
static bool push_node(sl_tape *t, sl_var *v, who fn) {
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
    }
    v->id = (uint32_t)t->n;
    if (t->here_on && !record_loc(t, v, fn)) return false;
    t->nodes[t->n++] = v;
    return true;
}

/* A node with its value, gradient (when one flows: zeroed) and saved
 * buffers and, when a is not NULL, a copy of a, in one arena block (layout:
 * internal.h). Every field is set here: no memset of the whole node on the
 * recording path. */
static sl_var *node_new(sl_tape *t, who fn, int nin, int ndim, const int *dims, bool own_value,
                        bool with_grad, size_t nsaved, const sl_attrs *a) {
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
    if (with_grad) sl__zero(v->grad, n);
    p += with_grad ? buf : 0;
    v->tape = t;
    v->n = n;
    v->id = 0;
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

sl_var *sl_input(sl_tape *t, int ndim, const int *dims, const double *data, int flags) {
    if (!t || t->status != SL_OK) return NULL;
    if (flags & ~SL_GRAD) {
        sl__fail(t, SL_EARG, "sl_input: unknown flags 0x%x (only SL_GRAD)", (unsigned)flags);
        return NULL;
    }
    if (!check_shape(t, WHO_LEAF("sl_input"), ndim, dims)) return NULL;
    sl_var *v = node_new(t, WHO_LEAF("sl_input"), 0, ndim, dims, true, flags & SL_GRAD, 0, NULL);
    if (!v) return NULL;
    if (data)
        memcpy(v->val, data, v->n * sizeof(double));
    else
        memset(v->val, 0, v->n * sizeof(double));
    v->flags = SL__NODE_LEAF | ((flags & SL_GRAD) ? SL__NODE_GRAD : 0);
    return push_node(t, v, WHO_LEAF("sl_input")) ? v : NULL;
}

sl_var *sl_scalar(sl_tape *t, double x, int flags) { return sl_input(t, 0, NULL, &x, flags); }

/* sl_use lives here because it builds a leaf; the store itself is in nn/params.c. */
sl_var *sl__use_leaf(sl_tape *t, int ndim, const int *dims, double *val, double *grad) {
    sl_var *v = node_new(t, WHO_LEAF("sl_use"), 0, ndim, dims, false, false, 0, NULL);
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
        if (in[i]->tape != t) {
            sl__fail(t, SL_EARG, "%s%s: input %d belongs to another tape", fn.pre, fn.name, i);
            return false;
        }
    }
    return true;
}

bool sl__check_inputs(sl_tape *t, const char *fname, int nin, sl_var *const *in) {
    return check_inputs(t, WHO_LEAF(fname), nin, in);
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
    /* a node keeps a copy of its attributes only when they are not all zero */
    const sl_attrs *keep = a && memcmp(a, &sl__zero_attrs, sizeof *a) != 0 ? a : NULL;
    if (!a) a = &sl__zero_attrs;
    int ndim = 0, dims[SL_MAX_DIMS] = {0};
    sl_shape_fn shape = op->shape ? op->shape : (op->arity == 1 ? sl__shape_same : sl__shape_bcast);
    if (shape(t, op, in, a, &ndim, dims) != SL_OK) {
        if (t->status == SL_OK) sl__fail(t, SL_ESHAPE, "%s%s: shape rule failed", fn.pre, fn.name);
        return NULL;
    }
    /* the element-wise rules only pass valid input shapes on; any other rule
     * (a user's among them) has its result checked */
    if (shape != sl__shape_same && shape != sl__shape_bcast && !check_shape(t, fn, ndim, dims))
        return NULL;
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
    sl_var *v = node_new(t, fn, nin, ndim, dims, true, grad != 0, nsaved, keep);
    if (!v) return NULL;
    v->op = op;
    v->flags |= (unsigned char)grad;
    for (int i = 0; i < nin; i++) v->in[i] = in[i];
    if (!push_node(t, v, fn)) return NULL;
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

const sl_attrs sl__zero_attrs;

/* ---------------------------------------------------------- reading nodes */

static const int scalar_dims[SL_MAX_DIMS] = {0};

int sl_ndim(const sl_var *v) { return v ? v->ndim : 0; }
const int *sl_dims(const sl_var *v) { return v ? v->dims : scalar_dims; }
size_t sl_numel(const sl_var *v) { return v ? v->n : 0; }
const double *sl_value(const sl_var *v) { return v ? v->val : NULL; }
const double *sl_grad(const sl_var *v) { return v && (v->flags & SL__NODE_SWEPT) ? v->grad : NULL; }
double sl_item(const sl_var *v) { return v && v->n == 1 ? v->val[0] : NAN; }
int sl_requires_grad(const sl_var *v) { return v && (v->flags & SL__NODE_GRAD) ? 1 : 0; }
double *sl_leaf_data(sl_var *v) { return v && (v->flags & SL__NODE_LEAF) ? v->val : NULL; }

const sl_var *sl_in(const sl_var *out, int k) {
    return out && out->op && k >= 0 && k < out->op->arity ? out->in[k] : NULL;
}
const sl_attrs *sl_attrs_of(const sl_var *v) { return v ? v->attrs : NULL; }
double *sl_out_data(sl_var *out) { return out ? out->val : NULL; }
double *sl_grad_data(const sl_var *v) { return v ? v->grad : NULL; }
double *sl_saved_data(sl_var *out) { return out ? sl__saved(out) : NULL; }
const sl_op *sl_op_of(const sl_var *v) { return v ? v->op : NULL; }
double *sl_tangent_data(const sl_var *v) {
    return v && (v->flags & SL__NODE_TAN) ? sl__tanbuf(v) : NULL;
}

/* ------------------------------------------------------- differentiation */

/* Op-node gradients start at zero (node_new, sl_forward); after a sweep they
 * hold its values, and the next sweep without a replay in between zeroes
 * them first. Leaves keep what they hold, so their gradients accumulate. */
static void zero_op_grads(sl_tape *t) {
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (v->grad && v->op) sl__zero(v->grad, v->n);
    }
    t->dirty = 0;
}

static int check_root(sl_tape *t, sl_var *y, const char *fname) {
    if (!t) return SL_EARG;
    if (t->status != SL_OK) return t->status;
    if (!y) return sl__fail(t, SL_EARG, "%s: y is NULL on a tape without an error", fname);
    if (y->tape != t || y->id >= t->n || t->nodes[y->id] != y)
        return sl__fail(t, SL_EARG, "%s: y is not a node of this tape", fname);
    return SL_OK;
}

int sl__sweep(sl_tape *t, sl_var *y, const double *dy, const char *fname) {
    int rc = check_root(t, y, fname);
    if (rc != SL_OK) return rc;
    if (t->dirty) zero_op_grads(t);
    t->dirty = 1;
    if (y->flags & SL__NODE_GRAD)
        for (size_t i = 0; i < y->n; i++) y->grad[i] += dy ? dy[i] : 1.0;
    for (size_t i = y->id + 1; i-- > 0;) {
        sl_var *v = t->nodes[i];
        if (!(v->flags & SL__NODE_GRAD)) continue;
        v->flags |= SL__NODE_SWEPT;
        if (!v->op) continue;
        v->op->backward(v);
        if (t->check & SL_CHECK_FINITE)
            for (int k = 0; k < v->op->arity; k++)
                if (v->in[k]->grad && !finite_or_fail(t, v, v->in[k]->grad, v->in[k]->n, fname, k))
                    return t->status;
    }
    /* SL_GRAD leaves recorded after y read zeros too */
    for (size_t i = y->id + 1; i < t->n; i++)
        if (t->nodes[i]->flags & SL__NODE_GRAD) t->nodes[i]->flags |= SL__NODE_SWEPT;
    return SL_OK;
}

int sl_backward(sl_tape *t, sl_var *y) {
    int rc = check_root(t, y, "sl_backward");
    if (rc != SL_OK) return rc;
    if (y->n != 1) {
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

int sl_forward(sl_tape *t) {
    if (!t) return SL_EARG;
    if (t->status != SL_OK) return t->status;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (!v->op) continue;
        v->op->forward(v);
        if (v->grad && t->dirty) sl__zero(v->grad, v->n);
        if ((t->check & SL_CHECK_FINITE) && !finite_or_fail(t, v, v->val, v->n, "sl_forward", -1))
            return t->status;
    }
    t->dirty = 0;     /* every op-node gradient was zeroed above */
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

static bool ensure_tangent(sl_tape *t, sl_var *v) {
    double **tan = &t->tans[v->id];
    if (!*tan) *tan = sl__arena_alloc(&t->arena, v->n * sizeof(double));
    if (!*tan) {
        sl__fail(t, SL_ENOMEM, "sl_jvp: out of memory for the tangent of node %zu", (size_t)v->id);
        return false;
    }
    return true;
}

int sl_jvp(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs, const double *const *tangents,
           double *dy) {
    int rc = check_root(t, y, "sl_jvp");
    if (rc != SL_OK) return rc;
    if (nin < 0 || (nin > 0 && (!inputs || !tangents)) || !dy)
        return sl__fail(t, SL_EARG, "sl_jvp: nin = %d with %s inputs/tangents/dy", nin, "NULL");
    if (!ensure_tangents(t)) return t->status;
    for (size_t i = 0; i <= y->id; i++) t->nodes[i]->flags &= ~(unsigned)SL__NODE_TAN;
    for (int k = 0; k < nin; k++) {
        sl_var *x = inputs[k];
        if (!x || x->tape != t || !(x->flags & SL__NODE_LEAF))
            return sl__fail(t, SL_EARG, "sl_jvp: inputs[%d] is not a leaf of this tape", k);
        if (!tangents[k]) return sl__fail(t, SL_EARG, "sl_jvp: tangents[%d] is NULL", k);
        if (x->flags & SL__NODE_TAN)
            return sl__fail(t, SL_EARG, "sl_jvp: inputs[%d] is listed twice", k);
        if (!ensure_tangent(t, x)) return t->status;
        memcpy(sl__tanbuf(x), tangents[k], x->n * sizeof(double));
        x->flags |= SL__NODE_TAN;
    }
    for (size_t i = 0; i <= y->id; i++) {
        sl_var *v = t->nodes[i];
        if (!v->op) continue;
        bool any = false;
        for (int k = 0; k < v->op->arity; k++) any = any || (v->in[k]->flags & SL__NODE_TAN);
        if (!any) continue;
        if (!v->op->jvp)
            return sl__fail(t, SL_EARG, "sl_jvp: op \"%s\" (node %zu) has no tangent rule",
                            v->op->name, i);
        if (!ensure_tangent(t, v)) return t->status;
        v->flags |= SL__NODE_TAN; /* before the rule: a user jvp finds its output
                                     through sl_tangent_data(out) */
        v->op->jvp(v);
    }
    if (y->flags & SL__NODE_TAN)
        memcpy(dy, sl__tanbuf(y), y->n * sizeof(double));
    else
        memset(dy, 0, y->n * sizeof(double));
    return t->status;
}

void sl_zero_grad(sl_tape *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        sl_var *v = t->nodes[i];
        if (v->grad) memset(v->grad, 0, v->n * sizeof(double));
    }
}
