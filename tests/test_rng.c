/*
 * test_rng.c - splitmix64 against the reference outputs of Vigna's
 * splitmix64.c for seed 42, the 53-bit uniform built from them, and loose
 * moment checks of the normal generator (no timing, fixed seeds).
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>

Test(rng, splitmix64_reference_values) {
    sl_rng r;
    sl_rng_seed(&r, 42);
    cr_expect_eq(sl_rng_next(&r), UINT64_C(0xbdd732262feb6e95));
    cr_expect_eq(sl_rng_next(&r), UINT64_C(0x28efe333b266f103));
    cr_expect_eq(sl_rng_next(&r), UINT64_C(0x47526757130f9f52));
}

Test(rng, first_uniform_for_seed_42) {
    sl_rng r;
    sl_rng_seed(&r, 42);
    double u = sl_rng_uniform(&r);
    cr_expect_eq(u, 0.74156487877182331, "%.17g", u);
    /* exactly the top 53 bits of the first output over 2^53 */
    cr_expect_eq(u, (double)(UINT64_C(0xbdd732262feb6e95) >> 11) / 9007199254740992.0);
}

Test(rng, seeding_is_reproducible) {
    sl_rng a, b, c;
    sl_rng_seed(&a, 7);
    sl_rng_seed(&b, 7);
    sl_rng_seed(&c, 8);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sl_rng_next(&a), y = sl_rng_next(&b), z = sl_rng_next(&c);
        cr_assert_eq(x, y, "same seed, draw %d", i);
        differ += x != z;
    }
    cr_expect_gt(differ, 990, "another seed gives another stream");
    /* re-seeding restarts the stream */
    sl_rng_seed(&a, 42);
    cr_expect_eq(sl_rng_next(&a), UINT64_C(0xbdd732262feb6e95));
}

Test(rng, uniform_range_and_mean) {
    sl_rng r;
    sl_rng_seed(&r, 12345);
    const int n = 100000;
    double s = 0, lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        double u = sl_rng_uniform(&r);
        cr_assert(u >= 0.0 && u < 1.0, "draw %d = %.17g outside [0,1)", i, u);
        s += u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    cr_expect(fabs(s / n - 0.5) < 0.01, "mean %g", s / n); /* sd of the mean ~ 0.0009 */
    cr_expect_lt(lo, 0.001);
    cr_expect_gt(hi, 0.999);
}

Test(rng, normal_moments) {
    sl_rng r;
    sl_rng_seed(&r, 2024);
    const int n = 100000;
    double s = 0, s2 = 0, s4 = 0;
    int beyond2 = 0;
    for (int i = 0; i < n; i++) {
        double z = sl_rng_normal(&r);
        cr_assert(isfinite(z), "draw %d is %g", i, z);
        s += z;
        s2 += z * z;
        s4 += z * z * z * z;
        beyond2 += fabs(z) > 2.0;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    /* standard errors: mean 0.0032, variance 0.0045, kurtosis ~0.015 */
    cr_expect(fabs(mean) < 0.02, "mean %g", mean);
    cr_expect(fabs(var - 1.0) < 0.03, "variance %g", var);
    cr_expect(fabs(s4 / n - 3.0) < 0.15, "fourth moment %g (3 for a normal)", s4 / n);
    /* P(|Z| > 2) = 0.0455 */
    cr_expect(fabs((double)beyond2 / n - 0.0455) < 0.005, "tail %g", (double)beyond2 / n);
}

/* A NULL generator is no crash: nothing to seed, 0 and NaN to draw. */
Test(rng, null_generator) {
    sl_rng_seed(NULL, 42);
    cr_expect_eq(sl_rng_next(NULL), 0u);
    cr_expect(isnan(sl_rng_uniform(NULL)));
    cr_expect(isnan(sl_rng_normal(NULL)));
}
