/*
 * slope/nn.h - building and training small models: initialisers, layers,
 * optimisers, training helpers, save/load of parameter stores, CSV data.
 * Included by slope.h (inside its extern "C" block), so this header includes
 * no system header of its own; docs/api-nn.md is the reference.
 *
 * Conventions shared by everything here:
 *  - A call on a store that fails returns NULL or a negative sl_status, and
 *    sl_params_error(ps) holds a message naming the function, the parameter
 *    and the shapes or values involved; a call that succeeds clears it.
 *  - Layers record ordinary tape ops, so their errors are the tape's sticky
 *    error (sl_tape_error) and they need no backward of their own.
 *  - Nothing here prints, except the progress helper, which writes only to
 *    the FILE * its caller hands it.
 */
#ifndef SLOPE_NN_H
#define SLOPE_NN_H

#ifndef SLOPE_H
#error "include <slope.h>, not <slope/nn.h>"
#endif

/* ---------------------------------------------------------- initialisers */

/* How a parameter's values are drawn. Randomness comes from sl_rng only, one
 * draw per element in row-major order, so a seed gives the same numbers on
 * every platform. Definitions follow PyTorch's torch.nn.init:
 *
 *   SL_INIT_ZEROS           0
 *   SL_INIT_CONSTANT        a
 *   SL_INIT_UNIFORM         U[a, b)                      a <= b (a == b gives a)
 *   SL_INIT_NORMAL          N(mean a, std b)             b >= 0
 *   SL_INIT_XAVIER_UNIFORM  U[-r, r), r = gain*sqrt(6/(fan_in+fan_out))
 *   SL_INIT_XAVIER_NORMAL   N(0, gain*sqrt(2/(fan_in+fan_out)))
 *                           gain = a, > 0; a = 0 means 1 (PyTorch's default)
 *   SL_INIT_HE_UNIFORM      U[-r, r), r = gain*sqrt(3/fan_in)
 *   SL_INIT_HE_NORMAL       N(0, gain/sqrt(fan_in))
 *                           gain = sqrt(2/(1+a^2)), a = the negative slope of a
 *                           leaky ReLU (PyTorch's kaiming_*_(a=...)); a = 0: sqrt(2)
 *
 * Fans, in slope's layout (sl_linear computes x.W with W [in, out], the
 * transpose of PyTorch's [out, in]): fan_in = dims[0], fan_out = dims[1],
 * each times dims[2]*...*dims[ndim-1] for rank 3 and 4. Xavier and He need
 * rank >= 2, as in PyTorch. Every value used must be finite; unused fields
 * are ignored. */
typedef enum sl_init_kind {
    SL_INIT_ZEROS = 0,
    SL_INIT_CONSTANT,
    SL_INIT_UNIFORM,
    SL_INIT_NORMAL,
    SL_INIT_XAVIER_UNIFORM,
    SL_INIT_XAVIER_NORMAL,
    SL_INIT_HE_UNIFORM,
    SL_INIT_HE_NORMAL,
} sl_init_kind;

typedef struct sl_init {
    sl_init_kind kind;
    double a, b; /* see above */
} sl_init;

/* Overwrite p's values as init says, drawing from rng (which may be NULL for
 * ZEROS and CONSTANT). SL_OK, or SL_EARG with sl_params_error(the store of p)
 * naming the parameter and the bad value; p is unchanged then. */
int sl_param_init(sl_param *p, sl_init init, sl_rng *rng);
/* sl_param_new followed by sl_param_init; the init is checked first, so on
 * any error nothing is added to the store (NULL, sl_params_error says why). */
sl_param *sl_param_new_init(sl_params *ps, const char *name, int ndim, const int *dims,
                            sl_init init, sl_rng *rng);
/* The fans of a shape as above; SL_EARG (and *fan_in, *fan_out untouched)
 * for rank < 2 (fans undefined) or > 4, dims NULL, or a dim < 1. There is
 * no store to hold a message: the calls that use fans (sl_param_init, ...)
 * check the shape first and name it. */
int sl_init_fans(int ndim, const int *dims, double *fan_in, double *fan_out);

/* --------------------------------------------------------------- layers */

/* y = x.W + b: x [N, in] (any node of t), W [in, out], b [out] or NULL.
 * Records sl_use, sl_matmul and sl_add on t; a shape mismatch is the tape's
 * error, naming sl_linear and the shapes. NULL (the poison) on error. */
sl_var *sl_linear(sl_tape *t, sl_var *x, sl_param *W, sl_param *b);

/* A multilayer perceptron: layer k (k = 0 .. nsizes-2) is
 * sl_linear with "<prefix>.<k>.W" [sizes[k], sizes[k+1]] drawn with winit and
 * "<prefix>.<k>.b" [sizes[k+1]] at zero, created in that order. Between
 * layers (not after the last) the activation op named `activation` in the
 * registry is applied with the op's default attributes (sl_op.defaults:
 * leaky_relu's 0.01, elu's 1.0, gelu's erf form), so a user-registered
 * activation works by name. activation NULL or "" means none (a stack of
 * linear layers). The op must exist and take one input when sl_mlp_new is
 * called; the built-in ops that are not element-wise (softmax, log_softmax,
 * logsumexp, the reductions, transpose, reshape) are refused: apply softmax
 * to the output yourself, along the class axis. On error nothing is added to the store and rng is
 * unchanged: NULL and sl_params_error(ps) says why (unknown activation name, bad sizes, a name
 * already taken, bad init). The sl_mlp refers to the store's parameters: use it only while the
 * store lives. */
typedef struct sl_mlp sl_mlp;
sl_mlp *sl_mlp_new(sl_params *ps, const char *prefix, int nsizes, const int *sizes,
                   const char *activation, sl_init winit, sl_rng *rng);
/* The network applied to x [N, sizes[0]]: [N, sizes[nsizes-1]], or NULL with
 * the tape's error set. */
sl_var *sl_mlp_forward(sl_tape *t, const sl_mlp *m, sl_var *x);
int sl_mlp_nlayers(const sl_mlp *m);
sl_param *sl_mlp_weight(const sl_mlp *m, int layer); /* NULL out of range */
sl_param *sl_mlp_bias(const sl_mlp *m, int layer);
void sl_mlp_free(sl_mlp *m); /* NULL is fine; the parameters stay in the store */

/* ----------------------------------------------------------- optimisers */

/* torch.optim.SGD, per element, g the gradient, b the momentum buffer:
 *   g += weight_decay*p
 *   if momentum != 0: b = g on the first step, else b = momentum*b + (1-dampening)*g
 *                     g = nesterov ? g + momentum*b : b
 *   p -= lr*g
 * Requirements: lr > 0, momentum >= 0, 0 <= dampening <= 1, weight_decay >= 0,
 * nesterov only with momentum > 0 and dampening 0, clip_norm >= 0; all finite. */
typedef struct sl_sgd_opts {
    double lr;
    double momentum;
    double dampening;
    double weight_decay;
    int nesterov;     /* 0 or 1 */
    double clip_norm; /* > 0: clip gradients by global L2 norm first (below); 0: off */
} sl_sgd_opts;

/* torch.optim.Adam / AdamW, per element, at step t = 1, 2, ...:
 *   Adam:  g += weight_decay*p                (L2 penalty in the gradient)
 *   AdamW: p *= 1 - lr*weight_decay           (decoupled decay)
 *   m = beta1*m + (1-beta1)*g
 *   v = beta2*v + (1-beta2)*g*g
 *   p -= (lr/(1-beta1^t)) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
 * Requirements: lr > 0, 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0,
 * clip_norm >= 0; all finite. */
typedef struct sl_adam_opts {
    double lr;
    double beta1, beta2;
    double eps;
    double weight_decay;
    double clip_norm; /* as in sl_sgd_opts */
} sl_adam_opts;

/* PyTorch's defaults with the given learning rate: SGD without momentum or
 * decay; Adam betas (0.9, 0.999), eps 1e-8, no decay; AdamW the same with
 * weight_decay 0.01. No clipping. */
sl_sgd_opts sl_sgd_defaults(double lr);
sl_adam_opts sl_adam_defaults(double lr);
sl_adam_opts sl_adamw_defaults(double lr);

/* An optimiser over every parameter in ps at the time of creation. Its state
 * (momentum buffers, moments) is allocated now with the store's allocator and
 * owned by the optimiser. NULL on bad hyper-parameters or no memory, with
 * sl_params_error(ps) naming the option and its value. The store must
 * outlive the optimiser. */
typedef struct sl_optim sl_optim;
sl_optim *sl_optim_sgd(sl_params *ps, const sl_sgd_opts *opts);
sl_optim *sl_optim_adam(sl_params *ps, const sl_adam_opts *opts);
sl_optim *sl_optim_adamw(sl_params *ps, const sl_adam_opts *opts);
void sl_optim_free(sl_optim *o); /* NULL is fine */

/* One update of every parameter from its current gradient (the gradients are
 * not zeroed: call sl_params_zero_grad before the next backward). With
 * clip_norm > 0 the gradients are first scaled in place as PyTorch's
 * clip_grad_norm_: total = sqrt(sum of every gradient element squared),
 * scale = clip_norm/(total + 1e-6), applied when < 1. Returns SL_OK;
 * SL_ESTATE if a parameter was added to the store after the optimiser was
 * made; SL_ENONFINITE if clipping finds a non-finite norm (nothing is
 * changed then): a non-finite gradient, or finite ones whose sum of squares
 * overflows (computed without scaling, as PyTorch does); SL_EARG for NULL.
 * sl_optim_error says why, naming the gradient element. */
int sl_optim_step(sl_optim *o);
/* The message of the last failed sl_optim_step or sl_optim_set_lr, NULL
 * after a success. Owned by the optimiser. */
const char *sl_optim_error(const sl_optim *o);
/* Learning-rate schedules: SL_EARG (and no change) unless lr > 0 and finite. */
int sl_optim_set_lr(sl_optim *o, double lr);
double sl_optim_lr(const sl_optim *o);
long sl_optim_steps(const sl_optim *o); /* successful steps so far */
/* The global gradient norm before clipping at the last step; NaN when
 * clipping is off or before the first step. */
double sl_optim_grad_norm(const sl_optim *o);

/* ------------------------------------------------------ training helpers */

/* Shuffle index[0..n-1] in place: Fisher-Yates from the back, j drawn
 * uniformly in [0, i] from rng by rejection (no modulo bias), so a seed gives
 * the same order on every platform. */
void sl_shuffle(int *index, int n, sl_rng *rng);

#define SL_BATCH_SHUFFLE 1   /* a new permutation every epoch (else 0..n-1 in order) */
#define SL_BATCH_DROP_LAST 2 /* skip the last, short batch of an epoch */

/* Mini-batches over n examples. Fields are read-only for the caller. */
typedef struct sl_batches {
    int n, size, flags;
    long epoch; /* epochs completed */
    int pos;    /* next position in index */
    int *index; /* the current epoch's order of 0..n-1 */
    sl_rng rng;
} sl_batches;
/* SL_OK; SL_EARG for n < 1, batch_size < 1, unknown flags, or
 * SL_BATCH_DROP_LAST with batch_size > n (no batch at all); SL_ENOMEM. The
 * first epoch's order is drawn here (from seed, when shuffling). */
int sl_batches_init(sl_batches *b, int n, int batch_size, int flags, uint64_t seed);
/* The next batch: *idx points at the returned number of example indices
 * (borrowed, valid until the next call). 0 at the end of an epoch (*idx
 * NULL); the call after that starts the next epoch with a new order. */
int sl_batches_next(sl_batches *b, const int **idx);
void sl_batches_free(sl_batches *b); /* releases index; NULL is fine */
/* dst[r][:] = src[idx[r]][:] for r < count, rows of cols doubles: gathers a
 * batch from a row-major table. Every idx[r] must be a valid row of src. */
void sl_gather_rows(double *dst, const double *src, int cols, const int *idx, int count);

#define SL_PROGRESS_QUIET 1 /* never write */
#define SL_PROGRESS_TTY 2   /* behave as on a terminal even if file is not one */

/* A progress line: "step 1200/5000  loss 0.341237  1534 steps/s  0:02 left"
 * (the loss with 6 significant digits, the rate with 4).
 * On a terminal (isatty(fileno(file)), or SL_PROGRESS_TTY) the line is
 * rewritten in place with \r at most ten times a second; otherwise nothing
 * is written unless every > 0, and then one plain line per `every` steps.
 * file NULL or SL_PROGRESS_QUIET: silent. total <= 0: unknown (no "/total", no time
 * left). The fields are private. */
typedef struct sl_progress {
    FILE *file;
    long total, every;
    int flags, tty;
    double t0, last_draw;
    long first_step, last_step;
    int started, width, drawn;
} sl_progress;
void sl_progress_init(sl_progress *p, FILE *file, long total, long every, int flags);
void sl_progress_update(sl_progress *p, long step, double loss);
/* The final line, with the elapsed time: on a terminal it ends the \r line
 * with a newline; otherwise a plain line if every > 0 (unless update just
 * wrote this step's). */
void sl_progress_finish(sl_progress *p, long step, double loss);

/* ------------------------------------------------------------- save/load */

/* Write every parameter's name, shape and values to path in the format of
 * docs/format.md ("SLOPEPRM", version 1, little-endian, CRC-32). The data go
 * to a new file ".slope-" + 12 random characters in path's directory
 * (created with O_EXCL, never an existing file or symlink), which is written,
 * fsync'ed, closed and renamed over path, so path holds either the old file
 * or the complete new one, also when threads or processes save to one path
 * at once. SL_OK, or SL_EIO (the temporary file is removed, path is
 * untouched) / SL_ENOMEM / SL_EARG, with sl_params_error naming the path (a
 * long one shortened in the middle with "...") and the system's reason. */
int sl_params_save(const sl_params *ps, const char *path);
/* Read path into ps. The file must hold exactly the store's parameters (the
 * same names, in any order, with the same shapes). Everything - size, magic,
 * version, structure, checksum, names, shapes - is checked before any value
 * is written, so on error the store is exactly as before. Gradients are not
 * touched. SL_OK, SL_EIO (cannot open or read), SL_EFORMAT (anything wrong in
 * the file, or a mismatch: the message names the parameter and both shapes),
 * SL_ENOMEM, SL_EARG. */
int sl_params_load(sl_params *ps, const char *path);

/* ------------------------------------------------------------------ CSV */

/* A numeric table: rows x cols doubles, row-major. header is NULL without a
 * header line, else cols strings. */
typedef struct sl_csv {
    int rows, cols;
    double *data;
    char **header;
} sl_csv;

/* Read a comma-separated table of numbers. Fields are trimmed of spaces and
 * tabs, may be double-quoted ("" is a quote inside), and are parsed with
 * strtod (C locale expected; nan and inf are accepted). Lines end at \n,
 * \r\n or a lone \r (old Mac files); blank lines are skipped. With
 * has_header the first non-blank line gives the column names. Every row
 * must have as many fields as the first. SL_OK; SL_EIO (cannot open/read),
 * SL_EFORMAT (no data, ragged row, not a number: err gets
 * "data.csv:12: column 3 (\"x2\"): \"abc\" is not a number", with control
 * characters of the file's text escaped as \r, \x01), SL_ENOMEM, SL_EARG.
 * On error *out is empty (safe to sl_csv_free). err may be NULL. The table's
 * memory grows with its rows (from one row, doubling). */
int sl_csv_read(const char *path, int has_header, sl_csv *out, char *err, size_t errlen);
/* The index of the column named name, -1 if there is no header or no such column. */
int sl_csv_col(const sl_csv *csv, const char *name);
void sl_csv_free(sl_csv *csv); /* releases and zeroes *csv; NULL is fine */

#endif /* SLOPE_NN_H */
