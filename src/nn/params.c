/*
 * params.c - sl_params, a named store of persistent tensors (uthash by name,
 * insertion order kept), and sl_use, which puts one on a tape as a leaf that
 * points at its buffers. Parameters outlive every tape: a training loop
 * clears its tape each step and keeps its weights here.
 */
#include "nn_internal.h"

#include <string.h>

struct sl_params;
/* uthash allocates through the store's allocator; `ps` is in scope at every
 * HASH_ call below. Running out of memory is reported, never fatal. */
#define HASH_NONFATAL_OOM 1
#define uthash_malloc(sz) ps->a.alloc((sz), ps->a.ud)
#define uthash_free(ptr, sz) ps->a.free((ptr), ps->a.ud)
#define uthash_nonfatal_oom(obj) (ps->oom = 1)
#include <uthash.h>

#define NAME_MAX_LEN 63
#define NAME_SHOWN 32 /* bytes of a too long name shown in the message */
#define MAX_NUMEL (SIZE_MAX / (2 * sizeof(double))) /* value and gradient in one block */

struct sl_param {
    char name[NAME_MAX_LEN + 1];
    int ndim;
    int dims[SL_MAX_DIMS];
    size_t n;
    double *value, *grad;
    sl_params *owner; /* for messages of calls given only the parameter */
    size_t index;     /* position in insertion order */
    sl_param *next;   /* insertion order */
    UT_hash_handle hh;
};

struct sl_params {
    sl_allocator a;
    sl_param *by_name; /* uthash head */
    sl_param *first, *last;
    size_t count;
    int oom;
    int has_error;
    char msg[512];
};

static const sl_param *fail(const sl_params *cps, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The store's last error: its message, and the flag sl_params_error reads. */
static void vfail(const sl_params *cps, const char *fmt, va_list ap) {
    sl_params *ps = (sl_params *)cps;
    vsnprintf(ps->msg, sizeof ps->msg, fmt, ap);
    ps->has_error = 1;
}

static const sl_param *fail(const sl_params *cps, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(cps, fmt, ap);
    va_end(ap);
    return NULL;
}

int sl__params_fail(const sl_params *cps, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(cps, fmt, ap);
    va_end(ap);
    return status;
}

void sl__params_ok(const sl_params *ps) { ((sl_params *)ps)->has_error = 0; }

const sl_allocator *sl__params_allocator(const sl_params *ps) { return &ps->a; }

sl_params *sl__param_owner(const sl_param *p) { return p->owner; }

size_t sl__param_index(const sl_param *p) { return p->index; }

void sl__params_truncate(sl_params *ps, size_t keep) {
    if (keep >= ps->count) return;
    sl_param *last_kept = NULL, *p = ps->first;
    for (size_t i = 0; i < keep; i++) {
        last_kept = p;
        p = p->next;
    }
    while (p) {
        sl_param *next = p->next;
        HASH_DEL(ps->by_name, p);
        ps->a.free(p->value, ps->a.ud);
        ps->a.free(p, ps->a.ud);
        ps->count--;
        p = next;
    }
    ps->last = last_kept;
    if (last_kept)
        last_kept->next = NULL;
    else
        ps->first = NULL;
}

sl_params *sl_params_new(void) { return sl_params_new_with(NULL); }

sl_params *sl_params_new_with(const sl_allocator *alloc) {
    const sl_allocator *a = alloc ? alloc : &sl__default_allocator;
    if (!a->alloc || !a->free) return NULL;
    sl_params *ps = a->alloc(sizeof *ps, a->ud);
    if (!ps) return NULL;
    memset(ps, 0, sizeof *ps);
    ps->a = *a;
    return ps;
}

void sl_params_free(sl_params *ps) {
    if (!ps) return;
    sl_param *p = ps->first;
    HASH_CLEAR(hh, ps->by_name);
    while (p) {
        sl_param *next = p->next;
        ps->a.free(p->value, ps->a.ud);
        ps->a.free(p, ps->a.ud);
        p = next;
    }
    ps->a.free(ps, ps->a.ud);
}

sl_param *sl_param_new(sl_params *ps, const char *name, int ndim, const int *dims,
                       const double *init) {
    if (!ps) return NULL;
    ps->has_error = 0;
    if (!name || !name[0])
        return (sl_param *)fail(ps, "sl_param_new: name must be 1..%d bytes, got %s", NAME_MAX_LEN,
                                !name ? "NULL" : "an empty one");
    size_t len = strlen(name);
    if (len > NAME_MAX_LEN)
        return (sl_param *)fail(ps, "sl_param_new: name must be 1..%d bytes, got %zu: \"%.*s...\"",
                                NAME_MAX_LEN, len, (int)sl__utf8_cut(name, NAME_SHOWN), name);
    if (ndim < 0 || ndim > SL_MAX_DIMS)
        return (sl_param *)fail(ps, "sl_param_new: \"%s\": ndim = %d, must be 0..%d", name, ndim,
                                SL_MAX_DIMS);
    if (ndim > 0 && !dims)
        return (sl_param *)fail(ps, "sl_param_new: \"%s\": dims is NULL for ndim = %d", name, ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1)
            return (sl_param *)fail(ps, "sl_param_new: \"%s\": dims[%d] = %d, must be >= 1", name,
                                    i, dims[i]);
        if (n > MAX_NUMEL / (size_t)dims[i]) {
            char sh[64];
            return (sl_param *)fail(
                ps,
                "sl_param_new: \"%s\": shape %s is too large: more than %zu "
                "values (a value and a gradient each must fit in SIZE_MAX bytes)",
                name, sl__shape_str(sh, ndim, dims), MAX_NUMEL);
        }
        n *= (size_t)dims[i];
    }
    sl_param *p = NULL;
    HASH_FIND_STR(ps->by_name, name, p);
    if (p) {
        char a[64], b[64];
        return (sl_param *)fail(ps, "sl_param_new: duplicate name \"%s\" (existing %s, new %s)",
                                name, sl__shape_str(a, p->ndim, p->dims),
                                sl__shape_str(b, ndim, dims));
    }
    p = ps->a.alloc(sizeof *p, ps->a.ud);
    double *buf = p ? ps->a.alloc(2 * n * sizeof(double), ps->a.ud) : NULL;
    if (!buf) {
        ps->a.free(p, ps->a.ud);
        return (sl_param *)fail(ps, "sl_param_new: \"%s\": out of memory for %zu values", name, n);
    }
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++) p->dims[i] = dims[i];
    p->n = n;
    p->value = buf;
    p->grad = buf + n;
    p->owner = ps;
    p->index = ps->count;
    if (init)
        memcpy(p->value, init, n * sizeof(double));
    else
        memset(p->value, 0, n * sizeof(double));
    memset(p->grad, 0, n * sizeof(double));
    ps->oom = 0;
    HASH_ADD_STR(ps->by_name, name, p);
    if (ps->oom) {
        ps->a.free(buf, ps->a.ud);
        ps->a.free(p, ps->a.ud);
        return (sl_param *)fail(ps, "sl_param_new: \"%s\": out of memory for the name index", name);
    }
    if (ps->last)
        ps->last->next = p;
    else
        ps->first = p;
    ps->last = p;
    ps->count++;
    return p;
}

sl_param *sl_params_get(const sl_params *ps, const char *name) {
    if (!ps || !name) return NULL;
    sl_param *p = NULL;
    HASH_FIND_STR(ps->by_name, name, p);
    return p;
}

size_t sl_params_count(const sl_params *ps) { return ps ? ps->count : 0; }

sl_param *sl_params_next(const sl_params *ps, const sl_param *prev) {
    if (!ps) return NULL;
    return prev ? prev->next : ps->first;
}

void sl_params_zero_grad(sl_params *ps) {
    for (sl_param *p = ps ? ps->first : NULL; p; p = p->next)
        memset(p->grad, 0, p->n * sizeof(double));
}

const char *sl_params_error(const sl_params *ps) {
    if (!ps) return "sl_params_error: store is NULL";
    return ps->has_error ? ps->msg : NULL;
}

const char *sl_param_name(const sl_param *p) { return p ? p->name : NULL; }
int sl_param_ndim(const sl_param *p) { return p ? p->ndim : 0; }
const int *sl_param_dims(const sl_param *p) {
    static const int none[SL_MAX_DIMS];
    return p ? p->dims : none;
}
size_t sl_param_numel(const sl_param *p) { return p ? p->n : 0; }
double *sl_param_value(sl_param *p) { return p ? p->value : NULL; }
double *sl_param_grad(sl_param *p) { return p ? p->grad : NULL; }

sl_var *sl_use(sl_tape *t, sl_param *p) {
    if (!t || t->status != SL_OK) return NULL;
    if (!p) {
        sl__fail(t, SL_EARG, "sl_use: parameter is NULL on a tape without an error");
        return NULL;
    }
    return sl__use_leaf(t, p->ndim, p->dims, p->value, p->grad);
}
