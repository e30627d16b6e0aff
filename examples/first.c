/*
 * first.c - the tutorial's first program: build a two-line function on a
 * tape, differentiate it, and check the gradient numerically.
 *
 *   f(x, w) = sum( tanh(w * x) ) + w^2       x: 3 values, w: a scalar
 *
 * Closed form, to compare with: df/dx_i = w (1 - tanh^2(w x_i)),
 *                               df/dw   = sum_i x_i (1 - tanh^2(w x_i)) + 2w
 */
#include "slope.h"

#include <math.h>
#include <stdio.h>

int main(void) {
    sl_tape *t = sl_tape_new();
    if (!t) return 1;

    /* leaves: SL_GRAD asks for their gradients */
    sl_var *x = sl_input(t, 1, (int[]){3}, (double[]){-1.0, 0.5, 2.0}, SL_GRAD);
    sl_var *w = sl_scalar(t, 0.7, SL_GRAD);

    /* the two lines: w (rank 0) broadcasts against x (rank 1) */
    sl_var *h = sl_tanh(t, sl_mul(t, w, x));
    sl_var *f = sl_add(t, sl_sum(t, h, SL_ALL, 0), sl_square(t, w));

    /* one check covers every call above: errors are sticky */
    if (sl_backward(t, f) != SL_OK) {
        fprintf(stderr, "error: %s\n", sl_tape_error(t));
        sl_tape_free(t);
        return 1;
    }
    printf("f = %.6f\n", sl_item(f));
    const double *xv = sl_value(x), *dx = sl_grad(x);
    double dw = 2 * 0.7;
    for (int i = 0; i < 3; i++) {
        double s = 1 - pow(tanh(0.7 * xv[i]), 2);
        printf("df/dx[%d] = %.6f   (closed form %.6f)\n", i, dx[i], 0.7 * s);
        dw += xv[i] * s;
    }
    printf("df/dw    = %.6f   (closed form %.6f)\n", sl_grad(w)[0], dw);

    /* the gradient check: central differences against the tape's gradients */
    sl_gradcheck_report r;
    int rc = sl_gradcheck(t, f, 2, (sl_var *[]){x, w}, NULL, &r);
    printf("gradcheck: %s, %zu entries, max abs err %.2g, max rel err %.2g\n",
           rc == SL_OK ? "ok" : "FAILED", r.nchecked, r.max_abs_err, r.max_rel_err);
    sl_tape_free(t);
    return rc == SL_OK ? 0 : 1;
}
