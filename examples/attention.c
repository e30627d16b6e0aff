/*
 * attention.c - a research prototype in a page: one layer of single-head
 * self-attention learns to reverse sequences of tokens. Token and position
 * embeddings (sl_index_select and a broadcast add), batched products for
 * Q, K, V and the scores (sl_matmul on [B,T,d] with [d,d], and of Q with the
 * transpose of K), a softmax over the keys, and cross-entropy on every
 * position. Before training, the whole graph is gradient-checked against
 * every parameter - the habit slope is for.
 *
 *   attention [--steps N] [--seed S] [--quiet]
 *
 * Prints the gradient check's verdict, the loss every 50 steps and the
 * accuracy, per token and per whole sequence, on 1000 new sequences. Exit
 * status 0 when the check passes and the model reverses at least 99% of the
 * tokens, 1 otherwise, 2 for bad arguments.
 */
#include "slope.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V 8      /* tokens */
#define T 6      /* sequence length */
#define D 16     /* model width */
#define BATCH 32 /* sequences per step */

typedef struct model {
    sl_param *tok, *pos, *wq, *wk, *wv, *wo;
} model;

/* n sequences of T random tokens, and their targets: the sequence reversed */
static void make_batch(sl_rng *rng, int n, double *ids, double *target) {
    for (int b = 0; b < n; b++)
        for (int i = 0; i < T; i++) ids[b * T + i] = (double)(sl_rng_next(rng) % V);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < T; i++) target[b * T + i] = ids[b * T + (T - 1 - i)];
}

/* logits [n*T, V] of the n sequences ids [n*T]; use[6] gets the parameters'
 * leaves on t (the inputs of a gradient check) */
static sl_var *forward(sl_tape *t, const model *m, int n, const double *ids, sl_var **use) {
    sl_param *const ps[6] = {m->tok, m->pos, m->wq, m->wk, m->wv, m->wo};
    for (int i = 0; i < 6; i++) use[i] = sl_use(t, ps[i]);
    sl_var *tok = use[0], *pos = use[1], *wq = use[2], *wk = use[3], *wv = use[4], *wo = use[5];
    sl_var *x = sl_input(t, 1, (int[]){n * T}, ids, 0);
    sl_var *e = sl_reshape(t, sl_index_select(t, tok, 0, x), 3, (int[]){n, T, D});
    sl_var *h = sl_add(t, e, pos); /* [n,T,D] + [T,D] */
    sl_var *q = sl_matmul(t, h, wq), *k = sl_matmul(t, h, wk), *v = sl_matmul(t, h, wv);
    sl_var *s = sl_mul(t, sl_matmul(t, q, sl_transpose(t, k)), sl_scalar(t, 1.0 / sqrt(D), 0));
    sl_var *o = sl_matmul(t, sl_softmax(t, s, -1), v); /* [n,T,T] . [n,T,D] */
    return sl_reshape(t, sl_matmul(t, o, wo), 2, (int[]){n * T, V});
}

/* tokens and whole sequences right, over n sequences */
static void accuracy(const sl_var *logits, const double *target, int n, double *tok, double *seq) {
    int right = 0, whole = 0;
    for (int b = 0; b < n; b++) {
        int all = 1;
        for (int i = 0; i < T; i++) {
            const double *row = sl_value(logits) + (size_t)(b * T + i) * V;
            int best = 0;
            for (int c = 1; c < V; c++) best = row[c] > row[best] ? c : best;
            const int ok = best == (int)target[b * T + i];
            right += ok, all &= ok;
        }
        whole += all;
    }
    *tok = (double)right / (n * T), *seq = (double)whole / n;
}

static int usage(const char *why) {
    fprintf(stderr, "attention: %s\nusage: attention [--steps N] [--seed S] [--quiet]\n", why);
    return 2;
}

int main(int argc, char **argv) {
    long steps = 500;
    unsigned long long seed = 1;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = strtol(argv[++i], &end, 10);
            if (*end || steps < 0 || steps > 1000000) return usage("--steps takes 0..1000000");
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], &end, 10);
            if (*end) return usage("--seed takes a non-negative integer");
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else {
            return usage("unknown argument");
        }
    }
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    sl_params *ps = sl_params_new();
    const sl_init normal = {.kind = SL_INIT_NORMAL, .a = 0.0, .b = 0.5};
    const sl_init xavier = {.kind = SL_INIT_XAVIER_UNIFORM};
    model m = {
        .tok = sl_param_new_init(ps, "tok", 2, (int[]){V, D}, normal, &rng),
        .pos = sl_param_new_init(ps, "pos", 2, (int[]){T, D}, normal, &rng),
        .wq = sl_param_new_init(ps, "wq", 2, (int[]){D, D}, xavier, &rng),
        .wk = sl_param_new_init(ps, "wk", 2, (int[]){D, D}, xavier, &rng),
        .wv = sl_param_new_init(ps, "wv", 2, (int[]){D, D}, xavier, &rng),
        .wo = sl_param_new_init(ps, "wo", 2, (int[]){D, V}, xavier, &rng),
    };
    sl_adam_opts ao = sl_adam_defaults(1e-2);
    sl_optim *opt = sl_optim_adam(ps, &ao);
    sl_tape *t = sl_tape_new();
    if (!m.tok || !m.pos || !m.wq || !m.wk || !m.wv || !m.wo || !opt || !t) {
        fprintf(stderr, "attention: %s\n", sl_params_error(ps) ? sl_params_error(ps) : "no memory");
        return 1;
    }
    double ids[1000 * T], target[1000 * T];
    int status = 0;

    /* the whole graph against every parameter, on two sequences */
    make_batch(&rng, 2, ids, target);
    sl_var *use[6];
    sl_var *logits = forward(t, &m, 2, ids, use);
    sl_var *loss = sl_cross_entropy(t, logits, sl_input(t, 1, (int[]){2 * T}, target, 0));
    sl_gradcheck_report r;
    int rc = loss ? sl_gradcheck(t, loss, 6, use, NULL, &r) : sl_tape_status(t);
    printf("gradient check of the whole model (6 parameters, %zu entries): %s\n", r.nchecked,
           rc == SL_OK ? "ok" : (rc == SL_EGRAD ? r.message : sl_tape_error(t)));
    if (rc != SL_OK) status = 1;

    for (long step = 1; step <= steps && status == 0; step++) {
        make_batch(&rng, BATCH, ids, target);
        sl_tape_clear(t);
        logits = forward(t, &m, BATCH, ids, use);
        loss = sl_cross_entropy(t, logits, sl_input(t, 1, (int[]){BATCH * T}, target, 0));
        sl_params_zero_grad(ps);
        if (sl_backward(t, loss) != SL_OK || sl_optim_step(opt) != SL_OK) {
            fprintf(stderr, "attention: %s\n",
                    sl_tape_error(t) ? sl_tape_error(t) : sl_optim_error(opt));
            status = 1;
        } else if (!quiet && step % 50 == 0) {
            printf("step %5ld  loss %.6f\n", step, sl_item(loss));
        }
    }
    if (status == 0) { /* 1000 sequences it has not seen */
        make_batch(&rng, 1000, ids, target);
        sl_tape_clear(t);
        logits = forward(t, &m, 1000, ids, use);
        double tok = 0, seq = 0;
        if (logits) accuracy(logits, target, 1000, &tok, &seq);
        printf("reversed %.2f%% of the tokens, %.1f%% of the sequences entirely\n", 100 * tok,
               100 * seq);
        if (!(tok >= 0.99)) status = 1;
    }
    sl_tape_free(t);
    sl_optim_free(opt);
    sl_params_free(ps);
    return status;
}
