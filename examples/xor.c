/*
 * xor.c - the smallest network that needs a hidden layer: 2 inputs, 3 tanh
 * units, 1 output, learning XOR with plain gradient descent; then the trained
 * weights are saved to a file and loaded into a fresh network, which must
 * predict exactly the same. The tutorial's first training program
 * (docs/tutorial.md, sections 5 to 8): every line is commented.
 *
 *   xor [MODEL.slp]      (default: xor.slp in the current directory)
 *
 * On an error the program prints slope's message and exits with status 1
 * (exiting gives its memory back); on success it frees everything it made.
 */
#include "slope.h"

#include <stdio.h>
#include <string.h>

#define STEPS 1000 /* gradient-descent steps over the four examples */
#define LR 0.5     /* learning rate */

/* The network: an MLP with layer widths 2 -> 3 -> 1 and tanh between the
 * layers. It adds four named parameters to ps: "xor.0.W" [2,3], "xor.0.b"
 * [3], "xor.1.W" [3,1] and "xor.1.b" [1], weights drawn with init from rng. */
static sl_mlp *make_net(sl_params *ps, sl_init init, sl_rng *rng) {
    return sl_mlp_new(ps, "xor", 3, (int[]){2, 3, 1}, "tanh", init, rng);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "xor.slp"; /* where the model is saved */

    /* The four examples of XOR, one per row: inputs x [4,2], targets y [4,1]. */
    const double X[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    const double Y[4] = {0, 1, 1, 0};

    /* 1. The model. A seeded generator gives the same weights on every machine. */
    sl_rng rng;                                           /* splitmix64, see slope.h */
    sl_rng_seed(&rng, 1);                                 /* 27 of seeds 1..30 learn XOR; 1 does */
    sl_params *ps = sl_params_new();                      /* the weights live here */
    sl_init xavier = {.kind = SL_INIT_XAVIER_UNIFORM};    /* PyTorch's xavier_uniform_, gain 1 */
    sl_mlp *net = ps ? make_net(ps, xavier, &rng) : NULL; /* adds the 4 parameters */
    if (!net) {                                           /* a store error says why */
        fprintf(stderr, "xor: %s\n", ps ? sl_params_error(ps) : "out of memory");
        return 1;
    }

    /* 2. Record the forward pass once, on a tape. */
    sl_tape *t = sl_tape_new();                         /* NULL only without memory */
    sl_var *x = sl_input(t, 2, (int[]){4, 2}, X[0], 0); /* inputs; flag 0: no gradient */
    sl_var *y = sl_input(t, 2, (int[]){4, 1}, Y, 0);    /* targets, one column */
    sl_var *z = sl_mlp_forward(t, net, x);              /* logits [4,1], before the sigmoid */
    sl_var *loss = sl_bce_with_logits(t, z, y);         /* mean BCE of sigmoid(z), done stably */
    sl_var *p = sl_sigmoid(t, z);                       /* probabilities, only to print them */
    if (sl_tape_status(t) != SL_OK) {                   /* one check covers every call above */
        fprintf(stderr, "xor: %s\n", t ? sl_tape_error(t) : "out of memory");
        return 1;
    }

    /* 3. Train: backward, update, replay - the graph never changes. */
    sl_sgd_opts sgd = sl_sgd_defaults(LR);  /* plain SGD: p -= LR * dloss/dp */
    sl_optim *opt = sl_optim_sgd(ps, &sgd); /* over every parameter in ps */
    if (!opt) {                             /* e.g. a learning rate <= 0 */
        fprintf(stderr, "xor: %s\n", sl_params_error(ps));
        return 1;
    }
    int rc = SL_OK;                                  /* the first error stops the loop */
    printf("step    0  loss %.6f\n", sl_item(loss)); /* ln 2 = 0.693 would be a coin toss */
    for (int step = 1; step <= STEPS && rc == SL_OK; step++) {
        sl_params_zero_grad(ps);                  /* gradients add up: clear them first */
        rc = sl_backward(t, loss);                /* dloss/dp into every parameter's grad */
        if (rc == SL_OK) rc = sl_optim_step(opt); /* move every parameter downhill */
        if (rc == SL_OK) rc = sl_forward(t);      /* recompute loss and p from new weights */
        if (rc == SL_OK && step % 200 == 0) printf("step %4d  loss %.6f\n", step, sl_item(loss));
    }
    if (rc != SL_OK) { /* the message is on the tape, or else on the optimiser */
        const char *why = sl_tape_status(t) != SL_OK ? sl_tape_error(t) : sl_optim_error(opt);
        fprintf(stderr, "xor: %s\n", why);
        return 1;
    }

    /* 4. Predict: class 1 when the probability is above one half. */
    int right = 0;                   /* how many of the four are right */
    double trained[4];               /* the probabilities, to compare after loading */
    for (int i = 0; i < 4; i++) {    /* p holds them after the last sl_forward */
        trained[i] = sl_value(p)[i]; /* sl_value: a node's values, row-major */
        int pred = trained[i] > 0.5; /* the predicted class, 0 or 1 */
        right += pred == (int)Y[i];  /* compared with the target */
        printf("%g xor %g = %d   (p = %.4f, %s)\n", X[i][0], X[i][1], pred, trained[i],
               pred == (int)Y[i] ? "right" : "WRONG");
    }
    printf("%d of 4 right\n", right);

    /* 5. Save the trained parameters (atomically: a temporary file, then rename). */
    if (sl_params_save(ps, path) != SL_OK) {               /* names, shapes, values, a CRC */
        fprintf(stderr, "xor: %s\n", sl_params_error(ps)); /* names the path and the reason */
        return 1;
    }

    /* 6. Load them into a fresh network of the same shape, on a fresh tape. */
    sl_params *ps2 = sl_params_new();                       /* a second, empty store */
    sl_init zeros = {.kind = SL_INIT_ZEROS};                /* no rng needed */
    sl_mlp *net2 = ps2 ? make_net(ps2, zeros, NULL) : NULL; /* the same 4 names */
    if (!net2 || sl_params_load(ps2, path) != SL_OK) {      /* names and shapes must match */
        fprintf(stderr, "xor: %s\n", ps2 ? sl_params_error(ps2) : "out of memory");
        return 1;
    }
    sl_tape *t2 = sl_tape_new();                               /* a new tape for it */
    sl_var *x2 = sl_input(t2, 2, (int[]){4, 2}, X[0], 0);      /* the same four inputs */
    sl_var *p2 = sl_sigmoid(t2, sl_mlp_forward(t2, net2, x2)); /* its probabilities */
    if (!p2) {                                                 /* NULL: the tape says why */
        fprintf(stderr, "xor: %s\n", t2 ? sl_tape_error(t2) : "out of memory");
        return 1;
    }
    int same = memcmp(sl_value(p2), trained, sizeof trained) == 0; /* bit for bit */
    printf("saved %s, loaded it into a fresh network: %s predictions\n", path,
           same ? "the same" : "DIFFERENT");

    /* 7. Everything made above is released by its owner's free. */
    sl_tape_free(t2);
    sl_mlp_free(net2);
    sl_params_free(ps2);
    sl_optim_free(opt);
    sl_tape_free(t);
    sl_mlp_free(net);
    sl_params_free(ps);
    return right == 4 && same ? 0 : 1;
}
