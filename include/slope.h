/*
 * slope.h - the public API of slope, a tape-based reverse-mode automatic
 * differentiation engine in C11.
 *
 * Model: every operation on an sl_tape records one node (in evaluation order)
 * whose value is computed at once. sl_backward() walks the tape backwards once
 * and applies each op's vector-Jacobian product. sl_forward() replays the
 * recorded ops on the leaves' current values.
 *
 * Errors are sticky: the first failure (bad shape, bad argument, out of
 * memory, ...) is stored on the tape with a message that names the function
 * and the shapes or values involved. From then on every op returns NULL (the
 * "poison") without touching memory and accepts NULL inputs silently, so a
 * chain of calls needs a single check at the end:
 *
 *     sl_var *y = sl_sigmoid(t, sl_matmul(t, w, x));
 *     if (sl_tape_status(t) != SL_OK) fprintf(stderr, "%s\n", sl_tape_error(t));
 *
 * A NULL tape (sl_tape_new out of memory, its result unchecked) has nowhere
 * to keep an error: every op given one returns NULL and sl_backward,
 * sl_forward and sl_jvp return SL_EARG; check sl_tape_new's result.
 *
 * The library never aborts or exits, and prints nothing unless asked to:
 * sl_check_ops and the progress line (sl_progress, slope/nn.h) write to the
 * FILE * their caller gives them, nothing else writes to a stream. It is not
 * thread-safe per tape; distinct tapes may be used from distinct threads.
 * Values are double, row-major, contiguous, of rank 0 to SL_MAX_DIMS.
 */
#ifndef SLOPE_H
#define SLOPE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* FILE, for sl_check_ops */

#ifdef __cplusplus
extern "C" {
#endif

#define SLOPE_VERSION_MAJOR 0
#define SLOPE_VERSION_MINOR 3
#define SLOPE_VERSION_PATCH 0
#define SLOPE_VERSION_STRING "0.3.0"

#define SL_MAX_DIMS 4
#define SL_MAX_INPUTS 3

/* ---------------------------------------------------------------- status */

/* X(name, code, text): the one list of status codes. */
#define SL_STATUS_MAP(X)                                                                           \
    X(OK, 0, "no error")                                                                           \
    X(ESHAPE, -1, "shape mismatch")                                                                \
    X(EARG, -2, "bad argument")                                                                    \
    X(ENOMEM, -3, "out of memory")                                                                 \
    X(ESTATE, -4, "call out of order")                                                             \
    X(ENONFINITE, -5, "non-finite value")                                                          \
    X(EIO, -6, "input/output error")                                                               \
    X(EFORMAT, -7, "bad file format")                                                              \
    X(EGRAD, -8, "gradient check failed")

typedef enum sl_status {
#define SL__STATUS_ENUM(name, code, text) SL_##name = code,
    SL_STATUS_MAP(SL__STATUS_ENUM)
#undef SL__STATUS_ENUM
} sl_status;

/* "SL_ESHAPE" for SL_ESHAPE; "SL_UNKNOWN" for a code not in the map. Static strings. */
const char *sl_status_name(int status);
/* "shape mismatch" for SL_ESHAPE; "unknown status" for a code not in the map. */
const char *sl_status_str(int status);

/* ----------------------------------------------------------- allocation */

/* Every byte a tape or a parameter store allocates goes through the
 * allocator it was made with. alloc returns NULL on failure; free accepts
 * NULL. ud is passed back unchanged. Two things belong to no tape and use
 * malloc: the op registry (process-wide, a few KiB, kept until exit) and the
 * matrix kernel's packing workspace (one per thread that multiplies large
 * matrices, up to about 2.2 MiB, freed when the thread ends; if it cannot be
 * allocated the product is computed without it). */
typedef struct sl_allocator {
    void *(*alloc)(size_t size, void *ud);
    void (*free)(void *ptr, void *ud);
    void *ud;
} sl_allocator;

/* ------------------------------------------------------------------ tape */

typedef struct sl_tape sl_tape;
typedef struct sl_var sl_var; /* a node on a tape; owned by the tape */

/* A new empty tape using malloc/free. NULL only if memory is exhausted. */
sl_tape *sl_tape_new(void);
/* A new empty tape whose memory all comes from alloc (copied; NULL = malloc). */
sl_tape *sl_tape_new_with(const sl_allocator *alloc);
/* Release the tape and every node made on it. NULL is fine. */
void sl_tape_free(sl_tape *t);
/* Forget every node and the error; keep the arena's memory for reuse. Every
 * sl_var from this tape becomes invalid. */
void sl_tape_clear(sl_tape *t);
/* SL_OK (0) or the negative sl_status of the first error. */
int sl_tape_status(const sl_tape *t);
/* The first error's message ("sl_matmul: inner dimensions differ: [2,3] x [4,5]"),
 * or NULL while the status is SL_OK. Owned by the tape, valid until clear/free. */
const char *sl_tape_error(const sl_tape *t);
/* Record an error on the tape (for user ops' shape rules and forwards). The
 * first error wins; later ones are ignored. status is one of the negative
 * sl_status codes; any other value (SL_OK, positive, unknown) records
 * SL_EARG. printf-style. Returns the status in force. */
int sl_tape_fail(sl_tape *t, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Number of nodes recorded (leaves included). */
size_t sl_tape_size(const sl_tape *t);
/* Bytes the tape holds from its allocator: the arena's chunks (nodes, values,
 * gradients, saved and tangent buffers) plus the node list and the side
 * arrays of tangent pointers (sl_jvp) and source locations (SL_HERE). Grows,
 * never shrinks before sl_tape_free (sl_tape_clear keeps it for reuse). */
size_t sl_tape_bytes(const sl_tape *t);

/* Anomaly mode. With SL_CHECK_FINITE, recording, sl_forward and the reverse
 * sweep stop at the first non-finite value an op produces (a value, or a
 * gradient a backward rule writes): SL_ENONFINITE, with a message naming the
 * node, the op, the element, its inputs' values and, if known, the source
 * line that recorded it. Costs one scan per op; off (0) by default. Any other
 * bit in flags is SL_EARG (the mode stays as it was). */
#define SL_CHECK_FINITE 1
void sl_tape_set_check(sl_tape *t, int flags);
/* Record file:line with every node made after this call (until the next
 * one); returns t, so it can wrap the tape argument: sl_log(SL_HERE(t), x).
 * sl_tape_here(t, NULL, 0) stops naming lines (later nodes have none). From
 * the first call on, the tape keeps a location per node and records scalar
 * nodes through its checked path instead of the inline one, until freed. */
sl_tape *sl_tape_here(sl_tape *t, const char *file, int line);
#define SL_HERE(t) sl_tape_here((t), __FILE__, __LINE__)

/* ---------------------------------------------------------------- leaves */

#define SL_GRAD 1 /* flag: this leaf requires a gradient */

/* A leaf holding a copy of data (ndim * dims elements, row-major; data NULL
 * means zeros). ndim is 0..SL_MAX_DIMS, every dim >= 1. NULL on error. */
sl_var *sl_input(sl_tape *t, int ndim, const int *dims, const double *data, int flags);
/* A rank-0 leaf. */
sl_var *sl_scalar(sl_tape *t, double v, int flags);

/* ---------------------------------------------------------- reading nodes */

/* All of these accept NULL (the poison): ndim 0, dims of a scalar, numel 0,
 * value/grad NULL, item NaN. */
int sl_ndim(const sl_var *v);
const int *sl_dims(const sl_var *v); /* never NULL, also for rank 0 */
size_t sl_numel(const sl_var *v);
const double *sl_value(const sl_var *v);
/* NULL for a node that needs no gradient, or until a reverse sweep has reached it. */
const double *sl_grad(const sl_var *v);
/* The value of a one-element node; NaN otherwise. */
double sl_item(const sl_var *v);
/* 1 if a gradient flows to this node (an SL_GRAD leaf, or an op with such an input). */
int sl_requires_grad(const sl_var *v);
/* Writable value buffer of a leaf, so replay (sl_forward) can run on new
 * values; NULL for op nodes (their values are recomputed by sl_forward). */
double *sl_leaf_data(sl_var *v);

/* ------------------------------------------------------- differentiation */

/* Reverse sweep from y, which must hold exactly one element (seed dy = 1).
 * Gradients of leaves ADD to what they hold (as in PyTorch; call sl_zero_grad
 * between steps); gradients of op nodes are recomputed on every call, so a
 * second sl_backward on the same tape adds the same leaf gradients again.
 * Only the nodes y depends on pass gradients on: a node off every path to y
 * (a metric beside the loss) contributes nothing, even where its derivative
 * is infinite or its value NaN. Returns SL_OK or the tape's error (SL_EARG:
 * y not scalar, not on the tape; or what a backward rule reported). */
int sl_backward(sl_tape *t, sl_var *y);
/* Like sl_backward with an explicit seed dy (sl_numel(y) values): a
 * vector-Jacobian product. */
int sl_backward_seed(sl_tape *t, sl_var *y, const double *dy);
/* Replay every recorded node, in order, from the leaves' current values.
 * Control flow taken while recording is fixed. Returns SL_OK or the error. */
int sl_forward(sl_tape *t);
/* Forward mode: the directional derivative of y along the given tangents of
 * the leaves inputs[0..nin-1] (tangents[k] holds sl_numel(inputs[k]) values;
 * every other leaf has a zero tangent). Writes sl_numel(y) values to dy.
 * Uses the recorded values: call after recording or sl_forward. Returns SL_OK
 * or the error (SL_EARG: an input is not a leaf, an op has no tangent rule). */
int sl_jvp(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs, const double *const *tangents,
           double *dy);
/* Zero every gradient buffer on the tape (those of sl_use leaves too). */
void sl_zero_grad(sl_tape *t);

/* --------------------------------------------------------- parameters */

typedef struct sl_params sl_params; /* a named store of persistent tensors */
typedef struct sl_param sl_param;

/* A new empty store (alloc may be NULL for malloc). NULL if memory is exhausted. */
sl_params *sl_params_new(void);
sl_params *sl_params_new_with(const sl_allocator *alloc);
void sl_params_free(sl_params *ps); /* NULL is fine */
/* Add a parameter named name (copied, 1..63 bytes) with the given shape and
 * initial values (NULL = zeros); its gradient starts at zero. NULL on error
 * (duplicate name, bad shape, no memory): sl_params_error() says why. */
sl_param *sl_param_new(sl_params *ps, const char *name, int ndim, const int *dims,
                       const double *init);
sl_param *sl_params_get(const sl_params *ps, const char *name); /* NULL if absent */
size_t sl_params_count(const sl_params *ps);
/* Iterate in insertion order: first with prev = NULL, NULL after the last. */
sl_param *sl_params_next(const sl_params *ps, const sl_param *prev);
void sl_params_zero_grad(sl_params *ps);
/* The last error's message on this store, NULL if the last call succeeded. */
const char *sl_params_error(const sl_params *ps);

const char *sl_param_name(const sl_param *p);
int sl_param_ndim(const sl_param *p);
const int *sl_param_dims(const sl_param *p);
size_t sl_param_numel(const sl_param *p);
double *sl_param_value(sl_param *p); /* writable: optimisers update it */
double *sl_param_grad(sl_param *p);  /* writable: accumulated by sl_backward */

/* A leaf that points at p's value and gradient buffers (no copy): gradients
 * accumulate into p, and sl_forward sees p's current value. p must outlive
 * the tape's current recording. */
sl_var *sl_use(sl_tape *t, sl_param *p);

/* ------------------------------------------------------------------- ops */

/* Attributes an op may read. Unused fields are ignored. */
typedef struct sl_attrs {
    double alpha;          /* leaky_relu/elu slope, pow exponent, clamp's lo, layer_norm's eps */
    double beta;           /* clamp's hi; for ops with a second real parameter */
    int axis;              /* reductions, softmax: SL_ALL or an axis (negative from the end) */
    int keepdim;           /* reductions: 0 or 1 */
    int mode;              /* gelu: SL_GELU_ERF or SL_GELU_TANH */
    int ndim;              /* reshape: target rank; permute: perm's length ... */
    int dims[SL_MAX_DIMS]; /* ... and dims (one may be -1: inferred); permute: perm */
    int start, stop;       /* slice: [start, stop) along axis (negative: from the end) */
} sl_attrs;

#define SL_ALL INT_MIN /* axis meaning "every axis" */
#define SL_GELU_ERF 0
#define SL_GELU_TANH 1

/* Where gradient checks draw an input's values. */
typedef enum sl_domain {
    SL_DOMAIN_NONE = 0, /* undeclared: the every-op check fails */
    SL_DOMAIN_REAL,     /* uniform in [-2, 2] */
    SL_DOMAIN_NONZERO,  /* +-[0.2, 2]: away from a kink or pole at 0 */
    SL_DOMAIN_POSITIVE, /* [0.2, 2] */
    SL_DOMAIN_UNIT,     /* [0.05, 0.95], e.g. probabilities */
    SL_DOMAIN_DISTINCT, /* real, pairwise at least 0.1 apart (max: no ties) */
    SL_DOMAIN_LABELS,   /* class indices 0..C-1: not differentiated */
    SL_DOMAIN_MASK,     /* a condition: zeros and non-zeros, both drawn: not differentiated */
    SL_DOMAIN_INDICES,  /* integers in [0, dims[axis]) of input 0 (attrs.axis), repeats
                           drawn: not differentiated */
    SL_DOMAIN_APART,    /* real, on a grid 0.25 apart jittered by < 0.1: input 0 on its points,
                           the other inputs between them, so any element of one input is at
                           least 0.025 from any of another (comparisons: never near a = b) */
} sl_domain;

/* How the every-op checks choose shapes for an op. */
typedef enum sl_op_kind {
    SL_KIND_CUSTOM = 0, /* the op lists its own cases */
    SL_KIND_MAP,        /* unary element-wise: any shape */
    SL_KIND_ZIP,        /* binary element-wise with NumPy broadcasting */
} sl_op_kind;

/* One gradient-check case: input shapes (shape[k][0] = rank, then dims) and attributes. */
typedef struct sl_op_case {
    int shape[SL_MAX_INPUTS][SL_MAX_DIMS + 1];
    sl_attrs attrs;
} sl_op_case;

/* A declared non-differentiable point and the op's convention there, so the
 * checks can test the convention instead of raising a false alarm.
 *  - present: an element-wise unary op (output shape = input shape) has a
 *    kink at input value `at`, where its backward rule (and tangent rule)
 *    gives the derivative `slope`, or attrs.alpha when slope_is_alpha
 *    (relu: at 0 slope 0; leaky_relu and elu: at 0 slope alpha; abs: 0).
 *    With at_is_bounds the kinks are at attrs.alpha and attrs.beta instead
 *    (clamp's lo and hi: slope 1 at both), an infinite one being none.
 *    sl_gradcheck_op adds a case with inputs exactly at each kink and on both
 *    sides: backward at the kink must equal the declared value, and that
 *    value must lie between the one-sided difference quotients there.
 *  - ties: a reduction over attrs.axis whose output is one of its inputs
 *    (max, min) and whose tied extrema share the gradient equally;
 *    sl_gradcheck_op adds a case reducing a [3,4] input with ties over axis -1
 *    (tied maxima and tied minima, two and three of them).
 * Both are only for unary ops (sl_op_register refuses them otherwise), and an
 * op that declares one needs a `kinks` text saying the convention in words. */
typedef struct sl_kink {
    int present;        /* 1: a kink at `at` */
    int at_is_bounds;   /* ...or (with present) 1: at attrs.alpha and attrs.beta (clamp) */
    double at;          /* where (an input value) */
    double slope;       /* the derivative the rules give exactly at `at`... */
    int slope_is_alpha; /* ...or 1: it is attrs.alpha */
    int ties;           /* 1: tied extrema of a reduction share the gradient equally */
} sl_kink;

typedef struct sl_op sl_op;
/* Output shape from inputs and attributes; on a mismatch call sl_tape_fail()
 * (naming "sl_<op>" and the shapes) and return its status. NULL in a user op
 * means: same shape as input 0 (arity 1) or NumPy broadcast (arity 2, 3). */
typedef int (*sl_shape_fn)(sl_tape *t, const sl_op *op, sl_var *const *in, const sl_attrs *a,
                           int *ndim, int *dims);
/* Fill sl_out_data(out) from the inputs. A rule that meets inputs it cannot
 * take (data changed for a replay) reports it with
 * sl_tape_fail(sl_node_tape(out), ...): sl_forward / sl_backward return that
 * status and the tape keeps the message, as for any error. */
typedef void (*sl_forward_fn)(sl_var *out);
/* Add out's contribution to each input's gradient (+=) where sl_grad_data(in) != NULL. */
typedef void (*sl_backward_fn)(sl_var *out);
/* Tangent rule (forward mode): fill sl_tangent_data(out) from the inputs'
 * tangents, where sl_tangent_data(in) == NULL means a zero tangent. */
typedef void (*sl_jvp_fn)(sl_var *out);
/* Extra doubles the forward pass saves for backward (e.g. softmax probabilities). */
typedef size_t (*sl_saved_fn)(const sl_var *out);

struct sl_op {
    const char *name; /* registry key: "sigmoid" */
    int arity;        /* 1..SL_MAX_INPUTS */
    sl_shape_fn shape;
    sl_forward_fn forward;
    sl_backward_fn backward;
    sl_jvp_fn jvp;          /* forward mode; every built-in op has one */
    sl_saved_fn saved;      /* NULL: nothing saved beyond the output */
    const char *signature;  /* "sl_sigmoid(t, x)" */
    const char *formula;    /* "a = 1/(1+e^-z)" */
    const char *derivative; /* "da/dz = a(1-a), from the saved output" */
    const char *kinks;      /* convention at non-differentiable points, or NULL */
    sl_kink kink;           /* the same, declared for the checks (zero: none) */
    sl_domain domain[SL_MAX_INPUTS];
    sl_op_kind kind;
    const sl_op_case *cases; /* SL_KIND_CUSTOM: the check's cases ... */
    int ncases;              /* ... and how many */
    sl_attrs defaults;       /* attributes used by the checks for KIND_MAP/ZIP */
};

/* Reading a node from inside an op's kernels (and outside them). On a rank-0
 * node that slope keeps as a compact scalar node (docs/design.md) they give
 * the same answers, with two differences: sl_attrs_of rebuilds the
 * attributes in a per-thread buffer, valid until the next sl_attrs_of call
 * on that thread, and sl_tangent_data finds its tangent only while sl_jvp
 * runs. */
const sl_var *sl_in(const sl_var *out, int k); /* input k of an op node, as recorded */
const sl_attrs *sl_attrs_of(const sl_var *v);
double *sl_out_data(sl_var *out);       /* the node's value, writable */
double *sl_grad_data(const sl_var *v);  /* writable gradient, NULL if none */
double *sl_saved_data(sl_var *out);     /* the saved buffer (sl_op.saved) */
const sl_op *sl_op_of(const sl_var *v); /* NULL for a leaf */
/* The tape of a tensor node, so a rule can report an error on it; NULL for
 * a compact scalar node (it has no tape pointer; rules only see tensor
 * nodes). */
sl_tape *sl_node_tape(const sl_var *v);
double *sl_tangent_data(const sl_var *v); /* tangent in the current sl_jvp, or NULL */

/* The registry. Built-in ops are registered before the first call returns. */
const sl_op *sl_op_find(const char *name);
/* Add a user op. op must stay valid (usually static). SL_EARG for a NULL,
 * empty or duplicate name, an arity outside 1..SL_MAX_INPUTS, a missing
 * forward/backward, a kind other than SL_KIND_CUSTOM, SL_KIND_MAP (needs
 * arity 1) or SL_KIND_ZIP (needs arity 2), or a malformed kink (a kink or
 * ties declaration on an op that is not unary, a kink at a non-finite point
 * or with a non-finite slope); SL_ENOMEM. Not thread-safe against
 * concurrent registration. */
int sl_op_register(const sl_op *op);
/* Why this thread's last sl_op_register call failed ("sl_op_register:
 * \"cube\" is already registered"), NULL if it succeeded. Valid until the
 * thread's next sl_op_register call. */
const char *sl_op_register_error(void);
/* Number of registered ops, built-in and user ones: sl_op_at's range is
 * 0..sl_op_count()-1. */
int sl_op_count(void);
const sl_op *sl_op_at(int i); /* registration order; NULL out of range */
/* Record op on inputs in[0..nin-1] with attributes a (NULL = zeros). */
sl_var *sl_apply(sl_tape *t, const sl_op *op, int nin, sl_var *const *in, const sl_attrs *a);

/* element-wise; binary ones broadcast as NumPy */
sl_var *sl_add(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_sub(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_mul(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_div(sl_tape *t, sl_var *a, sl_var *b);
/* The larger (smaller) of a and b element by element, broadcasting as sl_add
 * (torch.maximum / minimum). NaN where either is NaN, and there the gradient
 * of both inputs is NaN; where a == b each input gets half the gradient. */
sl_var *sl_maximum(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_minimum(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_neg(sl_tape *t, sl_var *x);
sl_var *sl_exp(sl_tape *t, sl_var *x);
sl_var *sl_log(sl_tape *t, sl_var *x);
/* log(1 + x) and e^x - 1, keeping the digits log(1 + x) and exp(x) - 1 lose
 * for tiny x (log1p(1e-10) = 9.9999999995e-11, log(1 + 1e-10) =
 * 1.00000008e-10). log1p is -inf at -1 and NaN below; its gradient
 * 1/(1 + x) is +inf at -1. expm1's gradient is its output + 1 (as PyTorch). */
sl_var *sl_log1p(sl_tape *t, sl_var *x);
sl_var *sl_expm1(sl_tape *t, sl_var *x);
sl_var *sl_sqrt(sl_tape *t, sl_var *x);
sl_var *sl_abs(sl_tape *t, sl_var *x);
sl_var *sl_square(sl_tape *t, sl_var *x);
sl_var *sl_sin(sl_tape *t, sl_var *x);
sl_var *sl_cos(sl_tape *t, sl_var *x);
sl_var *sl_pow(sl_tape *t, sl_var *x, double p);
/* min(max(x, lo), hi); lo = -inf or hi = inf: no bound on that side. The
 * gradient is 1 where lo <= x <= hi (the bounds included, as PyTorch), else
 * 0, and 0 at a NaN x (whose output is NaN); with lo = hi, 0 everywhere (a
 * constant; PyTorch gives 1 at x = lo). A NaN bound or lo > hi is
 * SL_EARG naming both ("sl_clamp: lo = 1 > hi = 0"), not PyTorch's silent hi. */
sl_var *sl_clamp(sl_tape *t, sl_var *x, double lo, double hi);
/* cond != 0 ? a : b element by element (torch.where), the three broadcasting
 * together as NumPy; a NaN cond counts as true (C's != 0). a gets g where
 * cond holds and b where it does not (summed over broadcast axes); the
 * branch not taken gets exactly 0, even where it is inf or NaN. cond gets
 * no gradient: one that carries a gradient (computed from SL_GRAD leaves)
 * is accepted, reads zeros after sl_backward, and passes nothing on. */
sl_var *sl_where(sl_tape *t, sl_var *cond, sl_var *a, sl_var *b);
/* Comparisons, element by element and broadcasting as sl_add (torch.gt, ge,
 * lt, le, eq, ne): 1.0 where a > b (>=, <, <=, ==, !=) holds, else 0.0, as
 * C compares: false wherever a or b is NaN (so sl_ne gives 1 there), and
 * -0 == +0. The output is a constant, as PyTorch's bool result: it carries
 * no gradient (sl_requires_grad is 0, sl_grad NULL, even when a or b does)
 * and no tangent, so nothing flows back into a or b: they get exactly 0
 * from it, whatever (inf, NaN) arrives downstream. Use one as sl_where's
 * condition to build a mask: sl_where(sl_lt(t, i, j), minus_inf, scores). */
sl_var *sl_gt(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_ge(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_lt(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_le(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_eq(sl_tape *t, sl_var *a, sl_var *b);
sl_var *sl_ne(sl_tape *t, sl_var *a, sl_var *b);
/* activations */
sl_var *sl_sigmoid(sl_tape *t, sl_var *x);
sl_var *sl_tanh(sl_tape *t, sl_var *x);
sl_var *sl_relu(sl_tape *t, sl_var *x);
sl_var *sl_leaky_relu(sl_tape *t, sl_var *x, double alpha); /* the course's slope: 0.01 */
sl_var *sl_softplus(sl_tape *t, sl_var *x);
sl_var *sl_silu(sl_tape *t, sl_var *x);
sl_var *sl_softsign(sl_tape *t, sl_var *x);
sl_var *sl_log_sigmoid(sl_tape *t, sl_var *x);
sl_var *sl_elu(sl_tape *t, sl_var *x, double alpha);
sl_var *sl_gelu(sl_tape *t, sl_var *x, int approx);
/* linear algebra and shape */
/* [m,k] x [k,n] -> [m,n], or batched as torch.matmul: a [...,m,k] x b [...,k,n]
 * -> [...,m,n], the batch dims (all but the last two) broadcast as NumPy (a
 * [2,1,m,k] x b [3,k,n] -> [2,3,m,n]). Rank 0 or 1 is SL_ESHAPE, as are inner
 * dims that differ and batch dims that do not broadcast (naming both shapes). */
sl_var *sl_matmul(sl_tape *t, sl_var *a, sl_var *b);
/* The last two axes swapped (torch's x.mT): [m,n] -> [n,m], [...,m,n] ->
 * [...,n,m]. Rank 0 or 1 is SL_ESHAPE. */
sl_var *sl_transpose(sl_tape *t, sl_var *x);
/* x with its axes reordered (torch.permute): out.dims[i] = x.dims[perm[i]].
 * perm holds sl_ndim(x) entries (one, 0, for a rank-0 x), a permutation of
 * 0..rank-1 where a negative entry counts from the end; a repeated or
 * out-of-range axis is SL_EARG naming perm and the shape. perm is copied
 * (into the node's sl_attrs: ndim = its length, dims = its entries). */
sl_var *sl_permute(sl_tape *t, sl_var *x, const int *perm);
sl_var *sl_reshape(sl_tape *t, sl_var *x, int ndim, const int *dims);
/* x[..., start:stop, ...] along one axis: indices as Python's (negative ones
 * count from the end), but one outside the axis or an empty slice is an error
 * (SL_EARG), not clamped. The result is a copy (every node owns its data). */
sl_var *sl_slice(sl_tape *t, sl_var *x, int axis, int start, int stop);
/* a and b joined along one axis (torch.cat): equal ranks >= 1, the other
 * dims equal. More than two: join them in turn. */
sl_var *sl_concat(sl_tape *t, sl_var *a, sl_var *b, int axis);
/* x's slices idx[0], idx[1], ... along axis, in that order (torch.index_select):
 * idx is 1-D and holds integer-valued doubles in [0, dims[axis]) (negative
 * ones are an error, as in PyTorch; repeats are fine), checked when recorded
 * and again by every sl_forward, sl_backward and sl_jvp (SL_EARG naming the
 * position, the value and the axis length). The output has x's shape with
 * dims[axis] = len(idx). x's gradient adds g back at each index (a repeated
 * index accumulates); idx gets none. An embedding lookup is
 * sl_index_select(t, table [V,D], 0, ids [N]) -> [N,D]. */
sl_var *sl_index_select(sl_tape *t, sl_var *x, int axis, sl_var *idx);
/* reductions: axis is SL_ALL or one axis (negative from the end); keepdim 0 or 1 */
sl_var *sl_sum(sl_tape *t, sl_var *x, int axis, int keepdim);
sl_var *sl_mean(sl_tape *t, sl_var *x, int axis, int keepdim);
/* max, min: tied maxima (minima) share the gradient equally; a line holding a
 * NaN gives NaN, and a NaN gradient along that line (torch.amax / amin) */
sl_var *sl_max(sl_tape *t, sl_var *x, int axis, int keepdim);
sl_var *sl_min(sl_tape *t, sl_var *x, int axis, int keepdim);
sl_var *sl_logsumexp(sl_tape *t, sl_var *x, int axis, int keepdim);
sl_var *sl_softmax(sl_tape *t, sl_var *x, int axis);
sl_var *sl_log_softmax(sl_tape *t, sl_var *x, int axis);
/* Layer norm over the last axis without weight or bias (PyTorch's
 * layer_norm(x, (x.shape[-1],), eps=eps)): y = (x - mean) / sqrt(var + eps),
 * var biased. Scale and shift with sl_mul/sl_add (broadcasting). eps must
 * be finite and >= 0 (SL_EARG) and x of rank >= 1 (SL_ESHAPE). */
sl_var *sl_layer_norm(sl_tape *t, sl_var *x, double eps);
/* losses: equal shapes, mean over elements (cross_entropy: over rows).
 * cross_entropy's labels must be integers in [0, C) and bce's probabilities
 * in [0, 1]: checked when recorded and again on every sl_forward, where a
 * changed leaf with an invalid value is a sticky SL_EARG ("sl_forward:
 * sl_cross_entropy: label of row 1 is 7, out of range: ...") that later
 * sl_backward / sl_jvp calls return without computing anything. */
sl_var *sl_mse(sl_tape *t, sl_var *pred, sl_var *target);
sl_var *sl_bce(sl_tape *t, sl_var *prob, sl_var *target);
sl_var *sl_bce_with_logits(sl_tape *t, sl_var *logits, sl_var *target);
sl_var *sl_cross_entropy(sl_tape *t, sl_var *logits, sl_var *labels);

/* ------------------------------------------------------ gradient checks */

/* 0 (or opts = NULL) means the default for every field, so a struct
 * initialised with {0} and one field set checks with the defaults otherwise
 * (every case of an op, kink and ties cases included). A value out of range
 * is an error (SL_EARG naming the field and the value), never quietly the
 * default: a negative, NaN or infinite eps, atol or rtol, a negative
 * projections or case_index, plain other than 0 or 1, fast other than -1,
 * 0 or 1, and (sl_gradcheck_op) a case_index above the op's number of
 * cases. */
typedef struct sl_gradcheck_opts {
    double eps;      /* central-difference step, scaled by max(1, |x|); > 0, 0 = 1e-6 */
    double atol;     /* pass when |analytic - numeric| <= atol + rtol*|numeric|; > 0, 0 = 1e-5 */
    double rtol;     /* > 0, 0 = 1e-3 */
    uint64_t seed;   /* random directions and sl_gradcheck_op's inputs; 0 = 42 */
    int case_index;  /* sl_gradcheck_op: 0 = every case; k >= 1 = case k alone, counting
                        from 1 to sl_op_ncases (as `slope check --json` numbers them) */
    int plain;       /* 1: PyTorch's plain central difference; 0: Richardson extrapolation */
    int fast;        /* 1: random projections v^T J u (full check only if one fails);
                        0: automatic, fast when the Jacobian has more than 250000 entries;
                        -1: always the full Jacobian */
    int projections; /* fast mode: how many (u, v) pairs; > 0, 0 = 8 */
} sl_gradcheck_opts;

typedef struct sl_gradcheck_report {
    int ok;              /* 1 if every check passed; 0 if one failed (SL_EGRAD) or the call
                            returned another error, which message then states (sl_gradcheck:
                            the error's text, with failed "") */
    const char *failed;  /* "" or which check failed first (static string): "vjp" (the
                            backward rule), "jvp" (the tangent rule), "fd" (finite differences
                            disagree with both modes, or cannot check the point: the derivative
                            is infinite there, or the function is not finite within the step;
                            no rule is blamed there), "dot" (<v,Ju> != <J^T v,u>), "order"
                            (the Taylor remainder does not shrink like h^2), "kink"
                            (sl_gradcheck_op: the rules break the op's declared kink or
                            ties convention) */
    int ncases;          /* cases checked (sl_gradcheck_op) */
    size_t nchecked;     /* Jacobian entries (or projections, in fast mode) compared */
    size_t kinks;        /* entries accepted at a kink ("KINK-OK"): the finite differences
                            disagree, but the one-sided differences differ (a real kink
                            inside the step) and both modes lie between them; counted
                            also when the order test's direction crosses a kink */
    int fast;            /* 1 if this was a fast (projection) check */
    int jvp_checked;     /* 1 if forward mode took part (every op on the path has a jvp) */
    double max_abs_err;  /* reverse mode vs finite differences, over every entry */
    double max_rel_err;  /* |a-n| / max(|n|, atol) over every entry */
    double max_mode_err; /* |reverse - forward| over every entry (no step involved) */
    double dot_rel_err;  /* |<v,Ju> - <J^T v,u>| relative, for random u, v */
    double taylor_order; /* observed order of f(x+hu) - f(x) - h grad.u: ~2 when right */
    /* the worst entry (largest |a-n| / (atol + rtol|n|)) */
    int worst_input;   /* index into the inputs */
    size_t worst_elem; /* flat element index in that input */
    size_t worst_out;  /* flat element index in the output */
    double analytic;   /* reverse mode (VJP) */
    double forward;    /* forward mode (JVP); NaN if not checked */
    double numeric;    /* finite differences */
    double abs_err, rel_err;
    char shapes[128];      /* sl_gradcheck_op: the worst case: input shapes and attributes */
    char message[512];     /* a sentence naming what failed, or "" */
    const sl_var *culprit; /* sl_gradcheck, after a failed check: the first op node y
                              depends on whose rules fail a check of their own at the values
                              the point gives its inputs (named at the front of message, with
                              its op and position on the tape); NULL if none does. Only the
                              first such node is named */
} sl_gradcheck_report;

/* Verify the tape's derivatives of y (any shape) with respect to the leaves
 * inputs[0..nin-1] three ways: reverse mode (one sweep per output element),
 * forward mode (one sl_jvp per input element) and central differences with
 * Richardson extrapolation (replays with each input element perturbed); plus
 * a dot-product test <v, J u> = <J^T v, u> and the order of the Taylor
 * remainder along a random direction. docs/gradcheck.md explains each.
 * Leaves' values and gradients are restored afterwards; a step outside a
 * domain a forward rule checks (bce's p past 1) is the verdict "fd", not a
 * tape error, so the tape stays usable. y may be one of the
 * inputs. An input made by sl_use stands for its parameter: other sl_use
 * leaves of that parameter up to y move with it (two of them as inputs are
 * SL_EARG). Returns SL_OK when every check passes, SL_EGRAD when one fails
 * (report->failed says which, report->message names the worst element and
 * the first op node whose rules fail on their own, if one does:
 * report->culprit), or
 * another error; bad arguments and options out of range are SL_EARG with
 * the tape's error naming them. opts and report may be NULL. */
int sl_gradcheck(sl_tape *t, sl_var *y, int nin, sl_var *const *inputs,
                 const sl_gradcheck_opts *opts, sl_gradcheck_report *report);
/* Check one op on its own cases (or the default cases of its kind) with
 * inputs drawn from its domain, then, if it declares a kink (sl_kink), one
 * case exactly at the kink per distinct attribute set, and if it declares
 * ties, one case with tied maxima. The op need not be registered. SL_EARG
 * (report->message says which) if op or op->name is NULL; if its kind is
 * not SL_KIND_CUSTOM, SL_KIND_MAP or SL_KIND_ZIP; if it lacks a formula, a
 * derivative text, a signature, a tangent rule (jvp), a domain other than
 * SL_DOMAIN_NONE for every input, or cases (a SL_KIND_CUSTOM op needs
 * .cases and .ncases > 0); if it declares a kink or ties without a kinks
 * text or with an arity other than 1; or if an option is out of range,
 * opts->case_index above sl_op_ncases(op) included. */
int sl_gradcheck_op(const sl_op *op, const sl_gradcheck_opts *opts, sl_gradcheck_report *report);
/* Number of cases sl_gradcheck_op runs for op, kink and ties cases included. */
int sl_op_ncases(const sl_op *op);

/* Gradient-check the named ops (nnames = 0 or names = NULL: every registered
 * op, user ops included) case by case, with the default options, and print
 * the results to out (NULL: print nothing). json = 0: a table, one line per
 * op and case (op, shapes and attributes, max abs err, max rel err, max
 * |reverse - forward|, Taylor order, verdict "ok", "KINK-OK" or
 * "FAIL(<check>)"), a second indented line with the report's message under a
 * failure, and a summary line. json = 1: one JSON object per line (JSON
 * Lines) with the same fields and the worst element. Returns the number of
 * failures: failed cases, ops that cannot be checked, and names that are not
 * registered. This is what `slope check` prints. */
int sl_check_ops(FILE *out, int json, int nnames, const char *const *names);

/* ------------------------------------------------------------- random */

/* splitmix64: the same numbers on every platform. */
typedef struct sl_rng {
    uint64_t state;
} sl_rng;
void sl_rng_seed(sl_rng *r, uint64_t seed);
uint64_t sl_rng_next(sl_rng *r);
double sl_rng_uniform(sl_rng *r); /* [0,1), 53 bits */
double sl_rng_normal(sl_rng *r);  /* standard normal (Box-Muller, no cached pair) */
/* r NULL: seed does nothing, next returns 0, uniform and normal NaN. */

#include "slope/nn.h" /* initialisers, layers, optimisers, save/load, CSV */

#ifdef __cplusplus
}
#endif
#endif /* SLOPE_H */
