/*
 * train.c - training-loop helpers: seeded shuffling, mini-batch index
 * iteration, gathering a batch's rows, and a progress line.
 *
 * The progress line is the only place in slope that writes text, and it
 * writes only to the FILE * its caller passed in.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno, clock_gettime */
#include "nn_internal.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- shuffling */

/* Uniform in [0, m), m >= 1, by the documented rule: x % m, redrawing x
 * while x >= 2^64 - (2^64 mod m), the top partial block of 2^64, so that
 * every residue is equally likely. r = (0 - m) % m is 2^64 mod m in uint64
 * arithmetic; r = 0 (m a power of two) means no partial block, no redraw.
 * Deterministic for a given rng state. */
static uint64_t below(sl_rng *rng, uint64_t m) {
    uint64_t r = (0 - m) % m;
    uint64_t x;
    do x = sl_rng_next(rng);
    while (r != 0 && x > UINT64_MAX - r);
    return x % m;
}

void sl_shuffle(int *index, int n, sl_rng *rng) {
    if (!index || !rng) return;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)below(rng, (uint64_t)i + 1);
        int tmp = index[i];
        index[i] = index[j];
        index[j] = tmp;
    }
}

/* ------------------------------------------------------------ mini-batches */

static void new_order(sl_batches *b) {
    for (int i = 0; i < b->n; i++) b->index[i] = i;
    if (b->flags & SL_BATCH_SHUFFLE) sl_shuffle(b->index, b->n, &b->rng);
    b->pos = 0;
}

int sl_batches_init(sl_batches *b, int n, int batch_size, int flags, uint64_t seed) {
    if (!b) return SL_EARG;
    memset(b, 0, sizeof *b);
    if (n < 1 || batch_size < 1 || (flags & ~(SL_BATCH_SHUFFLE | SL_BATCH_DROP_LAST)))
        return SL_EARG;
    if ((flags & SL_BATCH_DROP_LAST) && batch_size > n) return SL_EARG; /* never a full batch */
    const sl_allocator *a = &sl__default_allocator;
    b->index = a->alloc((size_t)n * sizeof(int), a->ud);
    if (!b->index) return SL_ENOMEM;
    b->n = n;
    b->size = batch_size;
    b->flags = flags;
    sl_rng_seed(&b->rng, seed);
    new_order(b);
    return SL_OK;
}

int sl_batches_next(sl_batches *b, const int **idx) {
    if (idx) *idx = NULL;
    if (!b || !b->index) return 0;
    if (b->pos < 0) new_order(b); /* the epoch after an end */
    int left = b->n - b->pos;
    int count = left < b->size ? left : b->size;
    if (count == 0 || (count < b->size && (b->flags & SL_BATCH_DROP_LAST))) {
        b->epoch++;
        b->pos = -1;
        return 0;
    }
    if (idx) *idx = b->index + b->pos;
    b->pos += count;
    return count;
}

void sl_batches_free(sl_batches *b) {
    if (!b) return;
    sl__default_allocator.free(b->index, sl__default_allocator.ud);
    memset(b, 0, sizeof *b);
}

void sl_gather_rows(double *dst, const double *src, int cols, const int *idx, int count) {
    if (!dst || !src || !idx || cols < 1) return;
    for (int r = 0; r < count; r++)
        memcpy(dst + (size_t)r * (size_t)cols, src + (size_t)idx[r] * (size_t)cols,
               (size_t)cols * sizeof(double));
}

/* ---------------------------------------------------------------- progress */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* to - from for from < to: exact in unsigned arithmetic, where the long
 * subtraction could overflow (the gap between two longs can pass LONG_MAX). */
static double gap(long from, long to) { return (double)((unsigned long)to - (unsigned long)from); }

/* "1:02:03" or "2:03" for s seconds (rounded). */
static void fmt_time(char *buf, size_t len, double s) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, len, "?");
        return;
    }
    long t = lround(s);
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

void sl_progress_init(sl_progress *p, FILE *file, long total, long every, int flags) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->file = file;
    p->total = total > 0 ? total : 0;
    p->every = every > 0 ? every : 0;
    p->flags = flags;
    if (file && !(flags & SL_PROGRESS_QUIET)) {
        int fd = fileno((FILE *)file);
        p->tty = (flags & SL_PROGRESS_TTY) || (fd >= 0 && isatty(fd));
    }
}

/* Write the line for step; final ends a terminal line. */
static void draw(sl_progress *p, long step, double loss, double t, bool final) {
    FILE *f = p->file;
    char line[160], left[32], elapsed[32];
    int n;
    if (p->total)
        n = snprintf(line, sizeof line, "step %ld/%ld  loss %.6g", step, p->total, loss);
    else
        n = snprintf(line, sizeof line, "step %ld  loss %.6g", step, loss);
    double dt = t - p->t0;
    if (dt > 0 && step > p->first_step && n > 0 && (size_t)n < sizeof line) {
        double rate = gap(p->first_step, step) / dt;
        n += snprintf(line + n, sizeof line - (size_t)n, "  %.4g steps/s", rate);
        if (final || !p->total || step >= p->total) {
            fmt_time(elapsed, sizeof elapsed, dt);
            if ((size_t)n < sizeof line)
                n += snprintf(line + n, sizeof line - (size_t)n, "  %s elapsed", elapsed);
        } else {
            fmt_time(left, sizeof left, gap(step, p->total) / rate);
            if ((size_t)n < sizeof line)
                n += snprintf(line + n, sizeof line - (size_t)n, "  %s left", left);
        }
    }
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    if (p->tty) {
        /* pad with spaces over the rest of a longer previous line */
        int pad = p->width > n ? p->width - n : 0;
        fprintf(f, "\r%s%*s%s", line, pad, "", final ? "\n" : "");
        p->width = final ? 0 : n;
    } else {
        fprintf(f, "%s\n", line);
    }
    fflush(f);
    p->last_draw = t;
    p->last_step = step;
    p->drawn = 1;
}

static bool silent(const sl_progress *p) {
    return !p || !p->file || (p->flags & SL_PROGRESS_QUIET) || (!p->tty && !p->every);
}

void sl_progress_update(sl_progress *p, long step, double loss) {
    if (silent(p)) return;
    double t = now_seconds();
    if (!p->started) { /* rates count from the first update */
        p->started = 1;
        p->t0 = t;
        p->first_step = step;
        p->last_draw = t;
        if (p->tty) {
            draw(p, step, loss, t, false);
            return;
        }
    }
    if (p->tty) {
        if (t - p->last_draw >= 0.1) draw(p, step, loss, t, false);
    } else if (step % p->every == 0) {
        draw(p, step, loss, t, false);
    }
}

void sl_progress_finish(sl_progress *p, long step, double loss) {
    if (silent(p)) return;
    double t = now_seconds();
    if (!p->started) {
        p->started = 1;
        p->t0 = t;
        p->first_step = step;
    } else if (!p->tty && p->drawn && p->last_step == step) {
        p->started = p->drawn = 0; /* this step's plain line is out already */
        return;
    }
    draw(p, step, loss, t, true);
    p->started = p->drawn = 0;
}
