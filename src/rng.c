/*
 * rng.c - splitmix64, the seeded generator behind every random number slope
 * draws (gradient-check inputs, initialisers, demo data). Integer arithmetic
 * only, so it gives the same numbers on every platform; uniform() is exact.
 */
#include "internal.h"

#include <math.h>

/* A NULL generator draws nothing: seed does nothing, next gives 0, uniform
 * and normal NaN (as the rest of the library, no crash on NULL). */
void sl_rng_seed(sl_rng *r, uint64_t seed) {
    if (r) r->state = seed;
}

uint64_t sl_rng_next(sl_rng *r) {
    if (!r) return 0;
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double sl_rng_uniform(sl_rng *r) { return r ? (double)(sl_rng_next(r) >> 11) * 0x1.0p-53 : NAN; }

double sl_rng_normal(sl_rng *r) {
    if (!r) return NAN;
    double u1 = 1.0 - sl_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = sl_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
