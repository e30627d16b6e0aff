/*
 * internal.h - what the library's files share and users never see: the node
 * and tape layouts, the arena, shape helpers and the op tables.
 *
 * Invariants:
 *  - t->nodes[0..n-1] is in recording order, which is a topological order:
 *    every input of nodes[i] is some nodes[j] with j < i.
 *  - a node's value buffer holds numel doubles, row-major; 32-byte aligned
 *    when numel >= 4, 8-byte aligned below (small buffers are packed).
 *  - grad is NULL when no gradient flows to the node; otherwise it is
 *    allocated (zeroed) with the node, or points at the parameter's buffer
 *    (sl_use leaves). sl_grad() shows it once a sweep has reached the node.
 */
#ifndef SLOPE_INTERNAL_H
#define SLOPE_INTERNAL_H

#include "slope.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef NDEBUG
#define SL_ASSERT(c) ((void)0)
#else
#include <stdlib.h>
#define SL_ASSERT(c)                                                                               \
    ((c) ? (void)0                                                                                 \
         : (fprintf(stderr, "%s:%d: slope internal invariant failed: %s\n", __FILE__, __LINE__,    \
                    #c),                                                                           \
            abort()))
#endif

/* Element-wise kernels (src/ops/): compiled for AVX-512, for AVX2 and for
 * the baseline x86-64, and the variant the CPU runs picked when the library
 * is loaded (target_clones: an ifunc), so one binary uses the vector units
 * of whatever machine runs it. The library is built with -ffp-contract=off
 * (CMakeLists.txt), so no variant fuses a multiply and an add the others
 * round twice: results do not depend on the CPU. SLOPE_PORTABLE (CMake
 * option) builds the baseline only, SLOPE_NO_AVX512 leaves AVX-512 out (as
 * vmath.c and gemm.c do). Static functions only: clang 14 emits a
 * cloned function's ifunc only where the function is called. */
#if defined(__x86_64__) && !defined(SLOPE_PORTABLE) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones) && defined(SLOPE_NO_AVX512)
#define SL__KERNEL __attribute__((target_clones("avx2", "default")))
#elif __has_attribute(target_clones)
#define SL__KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef SL__KERNEL
#define SL__KERNEL
#endif

/* Hints for the recording path: keep the fast path small (its slow paths out
 * of line), and inline what it must not call. */
#if defined(__GNUC__)
#define SL__NOINLINE __attribute__((noinline))
#define SL__INLINE inline __attribute__((always_inline))
#else
#define SL__NOINLINE
#define SL__INLINE inline
#endif

/* ------------------------------------------------------------------ arena */

typedef struct sl__chunk {
    struct sl__chunk *next;
    char *data;  /* first usable byte, 32-aligned */
    size_t size; /* usable bytes */
    size_t used;
} sl__chunk;

typedef struct sl__arena {
    sl_allocator a;
    sl__chunk *head; /* first chunk */
    sl__chunk *cur;  /* chunk being filled */
    size_t total;    /* bytes obtained from the allocator */
} sl__arena;

void sl__arena_init(sl__arena *ar, const sl_allocator *a);
void *sl__arena_alloc(sl__arena *ar, size_t bytes); /* 32-byte aligned; NULL on OOM */
/* bytes aligned to align (8 or 32); NULL on OOM. */
void *sl__arena_alloc_aligned(sl__arena *ar, size_t bytes, size_t align);

/* bytes (a multiple of 8) from the chunk being filled, aligned to align (8
 * or 32); NULL if it has no room. Never allocates. */
static inline void *sl__arena_bump(sl__arena *ar, size_t bytes, size_t align) {
    sl__chunk *c = ar->cur;
    if (c) {
        const size_t off = (c->used + align - 1) & ~(align - 1);
        if (off <= c->size && c->size - off >= bytes) {
            c->used = off + bytes;
            return c->data + off;
        }
    }
    return NULL;
}
/* The recording fast path: the bump, else a new chunk (NULL on OOM). */
static inline void *sl__arena_take(sl__arena *ar, size_t bytes, size_t align) {
    void *p = sl__arena_bump(ar, bytes, align);
    return p ? p : sl__arena_alloc_aligned(ar, bytes, align);
}
void sl__arena_reset(sl__arena *ar); /* keep every chunk */
void sl__arena_release(sl__arena *ar);

extern const sl_allocator sl__default_allocator;

/* ------------------------------------------------------------ tape/node */

enum {
    SL__NODE_GRAD = 1,      /* a gradient flows here */
    SL__NODE_LEAF = 2,      /* sl_input / sl_scalar / sl_use */
    SL__NODE_PARAM = 4,     /* sl_use: value and grad belong to a parameter */
    SL__NODE_TAN = 8,       /* carries a tangent in the current sl_jvp pass */
    SL__NODE_SWEPT = 16,    /* a reverse sweep reached it: sl_grad() shows its gradient */
    SL__NODE_SAVED = 32,    /* has a saved buffer (sl__saved) */
    SL__NODE_VIEW = 64,     /* a tensor op's view of a scalar node (its in[0]): value and
                               gradient are the scalar's, tangent too */
    SL__NODE_REACHED = 128, /* during a reverse sweep: y, or an input of a node whose
                               backward rule ran; cleared when the sweep visits the node
                               (tape.c: sl__sweep). Op nodes only: a leaf has no rule */
};

/* A tensor node: a 72-byte header on LP64 and one input pointer per input (none
 * for a leaf, so 72 + 8 * arity bytes), followed in the same arena block by
 * its value, gradient (when one flows) and saved buffers, then its
 * attributes (only when they are not all zero). Buffers of 4 or more doubles
 * are 32-byte aligned (the block starts 32-aligned and the buffers at the
 * header rounded up to 32 bytes); buffers of 1-3 doubles are packed at 8.
 * What few nodes need lives beside the node list, indexed by id:
 * forward-mode tangents (t->tans) and SL_HERE source locations (t->locs).
 * in[k] exists for k < op->arity only: read it nowhere else. */
struct sl_var {
    uint32_t id;         /* index in t->nodes */
    unsigned char kind;  /* SL__KIND_NODE: the two node kinds share id, kind, flags */
    unsigned char flags; /* SL__NODE_* */
    unsigned char ndim;
    const sl_op *op; /* NULL for leaves */
    double *val;
    double *grad;
    sl_tape *tape;
    const sl_attrs *attrs; /* an arena copy, or &sl__zero_attrs: never NULL */
    size_t n;              /* numel */
    int dims[SL_MAX_DIMS];
    sl_var *in[]; /* op->arity inputs */
};

/* A scalar node: what sl_scalar (and sl_input of rank 0) records, and what
 * the element-wise ops (sl__s_code) record when every input is one. Its
 * value and gradient are inline and its inputs (or its attribute) follow:
 * 24 bytes for a leaf, 32 for a unary op, 40 for a binary op or one with an
 * attribute. Users hold it as an sl_var *; everything that reads a node
 * checks the kind first (sl__is_s), and a tensor op given one as an input
 * sees it through a view node (see sl_apply). The gradient slot always
 * exists, but only SL__NODE_GRAD nodes' gradients mean anything: the
 * backward rules add into their inputs' slots without testing. */
typedef union sl__sarg {
    struct sl__snode *x; /* an input */
    double p;            /* the attribute (alpha / p) */
    double *ext;         /* sl_use leaf: arg[0] the parameter's value, arg[1] its gradient */
} sl__sarg;

typedef struct sl__snode {
    uint32_t id;
    unsigned char kind; /* SL__KIND_SCALAR */
    unsigned char flags;
    unsigned char code; /* SL__S_*: SL__S_LEAF or the op */
    unsigned char run;  /* leaf runs (below); 0 outside one */
    double val, grad;
    sl__sarg arg[]; /* inputs, then the attribute */
} sl__snode;

/* Leaf runs: plain scalar leaves (not sl_use) that follow one another on
 * the tape with the same SL__NODE_GRAD form runs of at most SL__RUN_MAX,
 * which the sweeps pass over without visiting each leaf: a replay has
 * nothing to do for them, a reverse sweep only marks them swept. The first
 * sl_forward after they were recorded marks the runs (recording does not,
 * to stay short); after that, a run's first leaf holds SL__RUN_FIRST | its
 * length and every other leaf its 1-based position in the run. sl_forward
 * meets a run at its first leaf and jumps its length; sl_backward meets it
 * at its last leaf (or, from a root inside it, anywhere), jumps the
 * position down to the first leaf, and visits that one as usual. 0: not
 * marked (yet). */
enum { SL__RUN_FIRST = 0x80, SL__RUN_MAX = 0x7f };
/* In an op node's run byte: a product whose first input is the node
 * recorded just before it, itself a product a gradient flows to (a chain,
 * as W5's y = y * x_i): sl_backward follows such chains in a short loop.
 * Set when recording (sl__s_fill2); it never changes after. */
enum { SL__OP_CHAIN = 0x80 };
/* Also in an op node's run byte, set when recording: its input 0 (1) is an op
 * node, not a leaf, so the reverse sweep marks it reached (SL__NODE_REACHED)
 * after running the node's rule without reading the input's head. A leaf's
 * run byte means the leaf run, so the sweeps test the code first. */
enum { SL__OP_IN0_OP = 0x40, SL__OP_IN1_OP = 0x20 };

enum { SL__KIND_NODE = 0, SL__KIND_SCALAR = 1 };

_Static_assert(offsetof(sl_var, id) == 0 && offsetof(struct sl__snode, id) == 0, "id first");
_Static_assert(offsetof(sl_var, kind) == offsetof(struct sl__snode, kind), "kind shared");
_Static_assert(offsetof(sl_var, flags) == offsetof(struct sl__snode, flags), "flags shared");

/* The kind, flags and id of either node kind (read through char: no
 * aliasing question whichever struct the node is). */
static inline int sl__is_s(const sl_var *v) {
    return ((const unsigned char *)v)[offsetof(sl_var, kind)] == SL__KIND_SCALAR;
}
static inline sl__snode *sl__s(const sl_var *v) { return (sl__snode *)(void *)(uintptr_t)v; }
static inline unsigned char *sl__flagsp(const sl_var *v) {
    return (unsigned char *)(uintptr_t)v + offsetof(sl_var, flags);
}
#define SL__FLAGS(v) (*sl__flagsp(v))
static inline uint32_t sl__id(const sl_var *v) {
    uint32_t id;
    memcpy(&id, v, sizeof id);
    return id;
}

/* Scalar op codes: the element-wise ops with a scalar fast path. */
enum {
    SL__S_LEAF,
    /* binary */
    SL__S_ADD,
    SL__S_SUB,
    SL__S_MUL,
    SL__S_DIV,
    /* unary */
    SL__S_NEG,
    SL__S_EXP,
    SL__S_LOG,
    SL__S_LOG1P,
    SL__S_EXPM1,
    SL__S_SQRT,
    SL__S_ABS,
    SL__S_SQUARE,
    SL__S_SIN,
    SL__S_COS,
    SL__S_SIGMOID,
    SL__S_TANH,
    SL__S_RELU,
    SL__S_SOFTPLUS,
    SL__S_SILU,
    SL__S_SOFTSIGN,
    SL__S_LOG_SIGMOID,
    SL__S_GELU_ERF,
    SL__S_GELU_TANH,
    /* unary with an attribute (arg[1].p) */
    SL__S_POW,
    SL__S_LEAKY_RELU,
    SL__S_ELU,
    SL__S_NCODES
};
#define SL__S_BINARY(c) ((c) <= SL__S_DIV)
#define SL__S_HAS_P(c) ((c) >= SL__S_POW)

/* The op a scalar code stands for (NULL for SL__S_LEAF), and the code of a
 * built-in op with the attributes a (0 if it has no scalar form). */
extern const sl_op *const sl__s_ops[SL__S_NCODES];
int sl__s_code(const sl_op *op, const sl_attrs *a);

/* Generic node access, for the code that meets either kind. */
/* (An sl_use scalar keeps a copy of its parameter's value, refreshed by
 * sl_forward, and adds its gradient into the parameter's when the sweep
 * reaches it; its value and gradient, read from outside, are the
 * parameter's.) */
static inline double *sl__val(const sl_var *v) {
    if (!sl__is_s(v)) return v->val;
    sl__snode *s = sl__s(v);
    return (s->flags & SL__NODE_PARAM) ? s->arg[0].ext : &s->val;
}
/* The gradient buffer, NULL when no gradient flows to v. */
static inline double *sl__gradp(const sl_var *v) {
    if (sl__is_s(v)) {
        sl__snode *s = sl__s(v);
        if (!(s->flags & SL__NODE_GRAD)) return NULL;
        return (s->flags & SL__NODE_PARAM) ? s->arg[1].ext : &s->grad;
    }
    return v->grad;
}
static inline size_t sl__n(const sl_var *v) { return sl__is_s(v) ? 1 : v->n; }
static inline int sl__ndim(const sl_var *v) { return sl__is_s(v) ? 0 : v->ndim; }
extern const int sl__scalar_dims[SL_MAX_DIMS];
static inline const int *sl__dims(const sl_var *v) {
    return sl__is_s(v) ? sl__scalar_dims : v->dims;
}
static inline const sl_op *sl__op(const sl_var *v) {
    return sl__is_s(v) ? sl__s_ops[sl__s(v)->code] : v->op;
}
static inline int sl__arity(const sl_var *v) {
    const sl_op *op = sl__op(v);
    return op ? op->arity : 0;
}
/* Input k < sl__arity(v) of an op node, as the user recorded it. */
static inline sl_var *sl__in(const sl_var *v, int k) {
    return sl__is_s(v) ? (sl_var *)(void *)sl__s(v)->arg[k].x : v->in[k];
}

/* Where a node was recorded (SL_HERE); file NULL if unknown. */
typedef struct sl__loc {
    const char *file;
    int line;
} sl__loc;

struct sl_tape {
    sl__arena arena;
    sl_var **nodes;
    size_t n, cap;
    size_t fast_cap; /* cap while the inline recorders may append (no error,
                        no anomaly mode, no source locations), else 0 */
    int status;
    int dirty;             /* op-node gradients hold a sweep's values: zero before the next */
    size_t grad_stale;     /* 1 + the id of the first tensor op node whose gradient buffer
                              holds whatever the arena held (recorded since op gradients were
                              last zeroed), 0 if none: a sweep, a replay or sl_grad_data
                              zeroes those (tape.c: zero_new_grads) */
    int check;             /* SL_CHECK_* flags */
    int here_on;           /* sl_tape_here was called: t->locs is kept */
    const char *here_file; /* source location given to the next nodes (SL_HERE) */
    int here_line;
    sl__loc *locs;  /* locs[id] for id < n, allocated once here_on (loc_cap entries) */
    size_t loc_cap; /* entries of locs */
    double **tans;  /* tans[id]: tangent buffer (arena) of node id, allocated by sl_jvp */
    size_t tan_cap; /* entries of tans */
    size_t tan_n;   /* tans[0..tan_n-1] belong to the nodes recorded now (clear: 0) */
    char msg[512];
};

/* The attributes of a node recorded without any (or with all zero). */
extern const sl_attrs sl__zero_attrs;

/* Is v a node of t? A scalar node has no tape pointer: it is t's if t's
 * node list holds it at its id. */
static inline bool sl__owns(const sl_tape *t, const sl_var *v) {
    if (sl__is_s(v)) {
        const uint32_t id = sl__s(v)->id;
        return id < t->n && t->nodes[id] == v;
    }
    return v->tape == t;
}

/* Recompute t->fast_cap (after status, check, here_on or cap change). */
void sl__fast_update(sl_tape *t);

/* Takes the sticky error back (sl_gradcheck, after a step outside the
 * domain of a forward rule's check: tape.c). */
void sl__clear_error(sl_tape *t);

/* Sets the sticky error (first wins). Returns t->status. */
int sl__fail(sl_tape *t, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int sl__vfail(sl_tape *t, int status, const char *fmt, va_list ap);

/* Validate arguments of a public op entry point: NULL when the tape is
 * poisoned (returns false quietly) or an input is NULL / from another tape
 * (sets SL_EARG naming fname). */
bool sl__check_inputs(sl_tape *t, const char *fname, int nin, sl_var *const *in);

/* Zero n doubles; scalars (the common case on scalar graphs) skip the call. */
static inline void sl__zero(double *p, size_t n) {
    if (n == 1)
        p[0] = 0.0;
    else
        memset(p, 0, n * sizeof(double));
}

/* The tangent buffer of v (valid once sl_jvp has made it: for an op node,
 * inside its tangent rule). */
static inline double *sl__tanbuf(const sl_var *v) { return v->tape->tans[v->id]; }

/* The tangent of v in the current sl_jvp pass, NULL meaning zero. */
static inline const double *sl__tan(const sl_var *v) {
    return (v->flags & SL__NODE_TAN) ? sl__tanbuf(v) : NULL;
}

/* The bytes of one value or gradient buffer of n doubles inside a node's
 * block: 4 or more doubles are padded to 32 bytes (and start 32-aligned),
 * fewer are packed. */
static inline size_t sl__bufbytes(size_t n) {
    return n >= 4 ? (n * sizeof(double) + 31) & ~(size_t)31 : n * sizeof(double);
}

/* The saved buffer (op->saved(node) doubles) of an op node, or NULL: it
 * follows the value and gradient, 32-byte aligned. */
static inline double *sl__saved(const sl_var *v) {
    if (!(v->flags & SL__NODE_SAVED)) return NULL;
    const uintptr_t end = (uintptr_t)v->val + sl__bufbytes(v->n) * (v->grad ? 2 : 1);
    return (double *)((end + 31) & ~(uintptr_t)31);
}

/* The reverse sweep from y seeded with dy (NULL = ones). */
int sl__sweep(sl_tape *t, sl_var *y, const double *dy, const char *fname);
/* A leaf over caller-owned buffers (sl_use). */
sl_var *sl__use_leaf(sl_tape *t, int ndim, const int *dims, double *val, double *grad);

/* o[i] = f(x[i]) for i < n (o may equal x): vectorised where the CPU allows
 * (src/vmath.c), IEEE semantics kept. */
void sl__vexp(double *o, const double *x, size_t n);
void sl__vlog(double *o, const double *x, size_t n);
void sl__vtanh(double *o, const double *x, size_t n);
int sl__vmath_config(const char *name); /* tests: "scalar", "avx2", "avx512", "auto" */
const char *sl__vmath_name(void);       /* the variant in use */

/* C (m,n) (+)= op(A) op(B); ta/tb: the operand is stored transposed. */
void sl__gemm(int ta, int tb, size_t m, size_t n, size_t k, const double *A, const double *B,
              double *C, int accumulate);

/* ----------------------------------------------------------------- shape */

/* "[2,3]" into buf (at least 64 bytes); "[]" for rank 0. Returns buf. */
char *sl__shape_str(char *buf, int ndim, const int *dims);
size_t sl__numel(int ndim, const int *dims);
/* NumPy broadcast of two shapes into (ndim, dims); false if incompatible. */
bool sl__broadcast(int na, const int *da, int nb, const int *db, int *ndim, int *dims);
/* Normalise axis against rank ndim: SL_ALL stays SL_ALL; -1 -> ndim-1; at
 * rank 0, 0 and -1 mean SL_ALL (PyTorch's dim on a 0-d tensor); returns false
 * if out of range. */
bool sl__axis(int axis, int ndim, int *out);

/* Strides of `in` (rank nin) seen through the broadcast shape (rank nd): the
 * input's shape is right-aligned, broadcast axes get stride 0. Shapes are
 * padded to SL_MAX_DIMS on the left. */
void sl__bcast_strides(int nd, const int *dims, int nin, const int *din, size_t *st, int *pdims);

/* The gradient of a binary op's input x that is broadcast (x->n < out->n):
 * dx += sign * g (out's shape), times w's value when w (an input of out,
 * broadcast as well) is given, summed over the axes x is broadcast on.
 * Sums along a long innermost axis run in partial sums (shape.c). */
void sl__unbroadcast_acc(double *dx, const sl_var *x, const double *g, const sl_var *w, double sign,
                         const sl_var *out);

/* The shape rules shared by op families (they name the op in messages). */
int sl__shape_same(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                   int *dims);
int sl__shape_bcast(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a, int *ndim,
                    int *dims);

/* -------------------------------------------------------------- registry */

/* Each family file exports its table. The element-wise and activation
 * tables are indexed by these (scalar.c maps them to scalar codes). */
enum {
    SL__EW_ADD,
    SL__EW_SUB,
    SL__EW_MUL,
    SL__EW_DIV,
    SL__EW_NEG,
    SL__EW_EXP,
    SL__EW_LOG,
    SL__EW_LOG1P,
    SL__EW_EXPM1,
    SL__EW_SQRT,
    SL__EW_ABS,
    SL__EW_SQUARE,
    SL__EW_SIN,
    SL__EW_COS,
    SL__EW_POW,
    SL__EW_NOPS
};
enum {
    SL__ACT_SIGMOID,
    SL__ACT_TANH,
    SL__ACT_RELU,
    SL__ACT_LEAKY_RELU, /* the seed course's four, first */
    SL__ACT_SOFTPLUS,
    SL__ACT_ELU,
    SL__ACT_GELU,
    SL__ACT_SILU,
    SL__ACT_SOFTSIGN,
    SL__ACT_LOG_SIGMOID,
    SL__ACT_NOPS
};
/* Is an input of domain d a constant to the op (labels, a condition,
 * indices)? It gets no gradient: the gradient checks do not perturb it, and
 * the reverse sweep does not pass the op's gradient on to it (tape.c). */
static inline bool sl__domain_constant(sl_domain d) {
    return d == SL_DOMAIN_LABELS || d == SL_DOMAIN_MASK || d == SL_DOMAIN_INDICES;
}
/* Is kind one of sl_op_kind's values? (registration and sl_gradcheck_op) */
static inline bool sl__kind_ok(sl_op_kind kind) {
    return (int)kind >= SL_KIND_CUSTOM && (int)kind <= SL_KIND_ZIP;
}
extern const sl_op sl__elementwise_ops[];
extern const int sl__elementwise_nops;
extern const sl_op sl__activation_ops[];
extern const int sl__activation_nops;
extern const sl_op sl__select_ops[];
extern const int sl__select_nops;
extern const sl_op sl__compare_ops[];
extern const int sl__compare_nops;
/* The backward rule of a piecewise-constant op (the comparisons,
 * compare.c): it adds nothing. An op with this rule is a constant to both
 * sweeps, as a comparison's bool output is to PyTorch's graph: sl_apply gives
 * its node no gradient (so the rule never runs and no gradient reaches its
 * inputs' subgraphs) and sl_jvp gives it no tangent. */
void sl__constant_backward(sl_var *out);
static inline bool sl__op_constant(const sl_op *op) {
    return op->backward == sl__constant_backward;
}
extern const sl_op sl__linalg_ops[];
extern const int sl__linalg_nops;
extern const sl_op sl__reduce_ops[];
extern const int sl__reduce_nops;
extern const sl_op sl__slice_ops[];
extern const int sl__slice_nops;
extern const sl_op sl__index_ops[];
extern const int sl__index_nops;
extern const sl_op sl__softmax_ops[];
extern const int sl__softmax_nops;
/* Is op one of the built-in ops that are not element-wise (matrix products,
 * shape changes, reductions, softmax: registry.c)? False for user ops. */
bool sl__op_along_axes(const sl_op *op);
extern const sl_op sl__loss_ops[];
extern const int sl__loss_nops;

/* The op named name in a family table; used by the sl_<op> wrappers, which
 * skip the hash lookup. */
#define SL__OP(table, idx) (&(table)[(idx)])

sl_var *sl__apply1(sl_tape *t, const sl_op *op, sl_var *x, const sl_attrs *a);
sl_var *sl__apply2(sl_tape *t, const sl_op *op, sl_var *x, sl_var *y, const sl_attrs *a);
/* The same for the ops with a scalar form, given its code (SL__S_*): on
 * scalar inputs they record a scalar node without the generic checks. */
sl_var *sl__s_apply1(sl_tape *t, const sl_op *op, int code, sl_var *x, const sl_attrs *a);
sl_var *sl__s_apply2(sl_tape *t, const sl_op *op, int code, sl_var *x, sl_var *y);

#endif /* SLOPE_INTERNAL_H */
