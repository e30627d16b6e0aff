/*
 * layers.c - layers as plain functions over tape ops: sl_linear (x.W + b) and
 * a multilayer perceptron whose activation is found by its registry name.
 * They record sl_use, sl_matmul, sl_add and the activation's op, so their
 * gradients come from those ops' backward rules; nothing here has one.
 *
 * Layout: x [N, in], W [in, out], b [out], y [N, out] (row-major, one example
 * per row; the transpose of PyTorch's [out, in] weights).
 */
#include "nn_internal.h"

#include <string.h>

sl_var *sl_linear(sl_tape *t, sl_var *x, sl_param *W, sl_param *b) {
    if (!t || t->status != SL_OK) return NULL;
    sl_var *in[1] = {x};
    if (!sl__check_inputs(t, "sl_linear", 1, in)) return NULL;
    if (!W) {
        sl__fail(t, SL_EARG, "sl_linear: W is NULL");
        return NULL;
    }
    char sx[64], sw[64], sb[64];
    sl__shape_str(sx, sl__ndim(x), sl__dims(x));
    sl__shape_str(sw, sl_param_ndim(W), sl_param_dims(W));
    if (sl_param_ndim(W) != 2) {
        sl__fail(t, SL_ESHAPE, "sl_linear: W \"%s\" must be [in,out], has shape %s",
                 sl_param_name(W), sw);
        return NULL;
    }
    int nin = sl_param_dims(W)[0], nout = sl_param_dims(W)[1];
    if (sl__ndim(x) != 2 || sl__dims(x)[1] != nin) {
        sl__fail(t, SL_ESHAPE, "sl_linear: x %s does not fit W \"%s\" %s: x must be [N,%d]", sx,
                 sl_param_name(W), sw, nin);
        return NULL;
    }
    if (b && (sl_param_ndim(b) != 1 || sl_param_dims(b)[0] != nout)) {
        sl__fail(t, SL_ESHAPE, "sl_linear: b \"%s\" %s does not fit W \"%s\" %s: b must be [%d]",
                 sl_param_name(b), sl__shape_str(sb, sl_param_ndim(b), sl_param_dims(b)),
                 sl_param_name(W), sw, nout);
        return NULL;
    }
    sl_var *y = sl_matmul(t, x, sl_use(t, W)); /* [N,in] x [in,out] */
    return b ? sl_add(t, y, sl_use(t, b)) : y; /* + [out], broadcast over rows */
}

/* ------------------------------------------------------------------- mlp */

struct sl_mlp {
    sl_allocator a;
    const sl_op *act; /* NULL: no activation */
    int nlayers;
    sl_param **W, **b; /* nlayers each, in the one block after the struct */
};

/* "<prefix>.<k>.<what>" into buf (at least 64 bytes); false if it does not
 * fit a parameter name (63 bytes). */
static bool layer_name(char *buf, const char *prefix, int k, char what) {
    int n = snprintf(buf, 64, "%s.%d.%c", prefix, k, what);
    return n > 0 && n < 64;
}

sl_mlp *sl_mlp_new(sl_params *ps, const char *prefix, int nsizes, const int *sizes,
                   const char *activation, sl_init winit, sl_rng *rng) {
    const char *fn = "sl_mlp_new";
    if (!ps) return NULL;
    sl__params_ok(ps);
    if (!prefix || !prefix[0]) {
        sl__params_fail(ps, SL_EARG, "%s: prefix must be a non-empty string", fn);
        return NULL;
    }
    if (nsizes < 2 || !sizes) {
        sl__params_fail(ps, SL_EARG,
                        "%s: \"%s\": need at least 2 sizes (input and output), got %d%s", fn,
                        prefix, nsizes, sizes ? "" : " (sizes is NULL)");
        return NULL;
    }
    for (int k = 0; k < nsizes; k++)
        if (sizes[k] < 1) {
            sl__params_fail(ps, SL_EARG, "%s: \"%s\": sizes[%d] = %d, must be >= 1", fn, prefix, k,
                            sizes[k]);
            return NULL;
        }
    const sl_op *act = NULL;
    if (activation && activation[0]) {
        act = sl_op_find(activation);
        if (!act) {
            sl__params_fail(ps, SL_EARG,
                            "%s: \"%s\": no op named \"%s\" in the registry (register it first, "
                            "or pass NULL for no activation)",
                            fn, prefix, activation);
            return NULL;
        }
        if (act->arity != 1) {
            sl__params_fail(ps, SL_EARG,
                            "%s: \"%s\": activation \"%s\" takes %d inputs, an activation takes 1",
                            fn, prefix, activation, act->arity);
            return NULL;
        }
        if (sl__op_along_axes(act)) { /* softmax would normalise across the batch (axis 0) */
            sl__params_fail(ps, SL_EARG,
                            "%s: \"%s\": \"%s\" is not element-wise (it works along an axis or "
                            "changes the shape), so it cannot be the activation between layers; "
                            "apply it to the MLP's output yourself",
                            fn, prefix, activation);
            return NULL;
        }
    }
    /* every name must be free before anything is added */
    int nl = nsizes - 1;
    char name[64];
    for (int k = 0; k < nl; k++)
        for (int w = 0; w < 2; w++) {
            if (!layer_name(name, prefix, k, w ? 'b' : 'W')) {
                sl__params_fail(ps, SL_EARG, "%s: prefix \"%s\" is too long for names like %s.%d.W",
                                fn, prefix, prefix, k);
                return NULL;
            }
            if (sl_params_get(ps, name)) {
                sl__params_fail(ps, SL_EARG, "%s: parameter \"%s\" already exists", fn, name);
                return NULL;
            }
        }
    const sl_allocator *a = sl__params_allocator(ps);
    size_t bytes = sizeof(sl_mlp) + 2 * (size_t)nl * sizeof(sl_param *);
    sl_mlp *m = a->alloc(bytes, a->ud);
    if (!m) {
        sl__params_fail(ps, SL_ENOMEM, "%s: \"%s\": out of memory", fn, prefix);
        return NULL;
    }
    memset(m, 0, bytes);
    m->a = *a;
    m->act = act;
    m->nlayers = nl;
    m->W = (sl_param **)(m + 1);
    m->b = m->W + nl;

    size_t keep = sl_params_count(ps);
    sl_rng saved = rng ? *rng : (sl_rng){0};
    for (int k = 0; k < nl; k++) {
        int wd[2] = {sizes[k], sizes[k + 1]}, bd[1] = {sizes[k + 1]};
        layer_name(name, prefix, k, 'W');
        m->W[k] = sl_param_new_init(ps, name, 2, wd, winit, rng);
        if (m->W[k]) {
            layer_name(name, prefix, k, 'b');
            m->b[k] = sl_param_new(ps, name, 1, bd, NULL);
        }
        if (!m->W[k] || !m->b[k]) { /* bad init or no memory: undo, keep the message */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", sl_params_error(ps));
            sl__params_truncate(ps, keep);
            if (rng) *rng = saved;
            a->free(m, a->ud);
            sl__params_fail(ps, SL_EARG, "%s: \"%s\": %s", fn, prefix, msg);
            return NULL;
        }
    }
    return m;
}

sl_var *sl_mlp_forward(sl_tape *t, const sl_mlp *m, sl_var *x) {
    if (!t || t->status != SL_OK) return NULL;
    if (!m) {
        sl__fail(t, SL_EARG, "sl_mlp_forward: mlp is NULL");
        return NULL;
    }
    sl_var *h = x;
    for (int k = 0; k < m->nlayers; k++) {
        h = sl_linear(t, h, m->W[k], m->b[k]);
        if (m->act && k + 1 < m->nlayers) h = sl_apply(t, m->act, 1, &h, &m->act->defaults);
    }
    return h;
}

int sl_mlp_nlayers(const sl_mlp *m) { return m ? m->nlayers : 0; }

sl_param *sl_mlp_weight(const sl_mlp *m, int layer) {
    return m && layer >= 0 && layer < m->nlayers ? m->W[layer] : NULL;
}

sl_param *sl_mlp_bias(const sl_mlp *m, int layer) {
    return m && layer >= 0 && layer < m->nlayers ? m->b[layer] : NULL;
}

void sl_mlp_free(sl_mlp *m) {
    if (m) m->a.free(m, m->a.ud);
}
