/*
 * test_vmath.c - the vectorised exp, log and tanh (src/vmath.c) against
 * scalar libm, for every variant this build and CPU can run (scalar, AVX2,
 * AVX-512): within 4 ulp everywhere (libmvec's documented bound), bit for
 * bit on the scalar variant, IEEE special values exactly (NaN, infinities,
 * signed zeros, overflow, underflow), every tail length of both vector
 * widths, in place, and nothing written past the end.
 */
#include "internal.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static const char *const VARIANTS[] = {"scalar", "avx2", "avx512"};

typedef void (*vfn)(double *, const double *, size_t);
typedef struct fcase {
    const char *name;
    vfn v;
    double (*f)(double);
} fcase;
static const fcase FUNCS[] = {
    {"exp", sl__vexp, exp}, {"log", sl__vlog, log}, {"tanh", sl__vtanh, tanh}};

/* Distance in units in the last place between two finite doubles of the
 * same sign (or zeros); huge across signs. */
static uint64_t ulps(double a, double b) {
    int64_t ia, ib;
    memcpy(&ia, &a, 8);
    memcpy(&ib, &b, 8);
    if (ia < 0) ia = INT64_MIN - ia;
    if (ib < 0) ib = INT64_MIN - ib;
    return ia > ib ? (uint64_t)ia - (uint64_t)ib : (uint64_t)ib - (uint64_t)ia;
}

/* got agrees with libm's want: the same NaN-ness, infinities and zeros
 * exactly (sign included), else within 4 ulp (0 for the scalar variant). */
static int agrees(double got, double want, int exact) {
    if (isnan(want)) return isnan(got);
    if (isinf(want) || want == 0.0 || exact) return memcmp(&got, &want, 8) == 0;
    return ulps(got, want) <= 4;
}

/* Inputs: specials, then a sweep over each function's interesting range. */
enum { NX = 4096 };
static size_t inputs(const char *f, double *x) {
    static const double special[] = {
        NAN,     -NAN,    INFINITY, -INFINITY, 0.0,       -0.0,      5e-324,        -5e-324,
        1e-310,  -1e-310, 1e-300,   -1e-300,   1e-20,     -1e-20,    0.5,           -0.5,
        1.0,     -1.0,    2.0,      -2.0,      709.78,    709.79,    710.0,         -708.4,
        -745.13, -745.14, -800.0,   800.0,     19.0,      -19.0,     22.0,          -22.0,
        1e300,   -1e300,  DBL_MAX,  -DBL_MAX,  0x1p-1022, 0x1p-1074, 1.0 + 0x1p-52, 1.0 - 0x1p-53};
    size_t n = 0;
    for (; n < sizeof special / sizeof special[0]; n++) x[n] = special[n];
    for (size_t i = 0; n < NX; i++, n++) {
        const double u = (double)i / (double)(NX - 64); /* 0 .. ~1 */
        if (!strcmp(f, "exp"))
            x[n] = -750.0 + 1465.0 * u; /* underflow to overflow */
        else if (!strcmp(f, "log"))
            x[n] = pow(2.0, -1074.0 + 2100.0 * u); /* subnormal to near DBL_MAX */
        else
            x[n] = -25.0 + 50.0 * u; /* both saturations */
    }
    return n;
}

Test(vmath, every_variant_agrees_with_libm) {
    static double x[NX], o[NX + 1];
    int ran = 0;
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        if (!sl__vmath_config(VARIANTS[v])) {
            cr_log_info("vmath: %s not available on this build/CPU", VARIANTS[v]);
            continue;
        }
        cr_expect_str_eq(sl__vmath_name(), VARIANTS[v]);
        ran++;
        for (size_t k = 0; k < sizeof FUNCS / sizeof FUNCS[0]; k++) {
            const fcase *c = &FUNCS[k];
            const size_t n = inputs(c->name, x);
            o[n] = 12345.0; /* sentinel */
            c->v(o, x, n);
            cr_expect_eq(o[n], 12345.0, "%s %s wrote past the end", VARIANTS[v], c->name);
            int bad = 0;
            for (size_t i = 0; i < n && bad < 5; i++) {
                const double want = c->f(x[i]);
                if (!agrees(o[i], want, v == 0)) {
                    cr_expect(0, "%s %s(%a) = %a, libm %a (%llu ulp)", VARIANTS[v], c->name, x[i],
                              o[i], want, (unsigned long long)ulps(o[i], want));
                    bad++;
                }
            }
        }
    }
    sl__vmath_config("auto");
    cr_expect_geq(ran, 1);
}

/* Every length 1..40 (each tail of the 4- and 8-wide loops), every start
 * offset 0..7 (unaligned), in place and out of place: each element is f of
 * its own input, and nothing outside [0, n) changes. */
Test(vmath, every_length_offset_and_in_place) {
    double x[64], o[64], ref[64];
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        if (!sl__vmath_config(VARIANTS[v])) continue;
        for (size_t k = 0; k < sizeof FUNCS / sizeof FUNCS[0]; k++) {
            const fcase *c = &FUNCS[k];
            for (size_t n = 1; n <= 40; n++)
                for (size_t off = 0; off < 8; off++) {
                    for (size_t i = 0; i < 64; i++) x[i] = 0.25 + 0.37 * (double)i, o[i] = -7.0;
                    c->v(o + off, x + off, n);
                    for (size_t i = 0; i < 64; i++) {
                        if (i < off || i >= off + n) {
                            cr_expect_eq(o[i], -7.0, "%s %s n=%zu off=%zu: o[%zu] written",
                                         VARIANTS[v], c->name, n, off, i);
                            continue;
                        }
                        cr_expect(agrees(o[i], c->f(x[i]), v == 0), "%s %s n=%zu off=%zu: [%zu]",
                                  VARIANTS[v], c->name, n, off, i);
                        ref[i] = o[i];
                    }
                    /* in place gives the same bits as out of place */
                    c->v(x + off, x + off, n);
                    for (size_t i = off; i < off + n; i++)
                        cr_expect(memcmp(&x[i], &ref[i], 8) == 0, "%s %s n=%zu: in place [%zu]",
                                  VARIANTS[v], c->name, n, i);
                }
        }
    }
    sl__vmath_config("auto");
}

/* The ops use the variant in force: tanh of a 1000-element tensor, scalar
 * against the best variant, within 4 ulp element by element. */
Test(vmath, ops_use_the_variant) {
    static double x[1000], a[1000];
    for (int i = 0; i < 1000; i++) x[i] = -6.0 + 0.012 * i;
    cr_assert(sl__vmath_config("scalar"));
    sl_tape *t = sl_tape_new();
    sl_var *y = sl_tanh(t, sl_input(t, 1, (int[]){1000}, x, 0));
    cr_assert_not_null(y);
    memcpy(a, sl_value(y), sizeof a);
    for (int i = 0; i < 1000; i++) cr_expect_eq(a[i], tanh(x[i]), "scalar variant: libm's bits");
    sl__vmath_config("auto");
    cr_assert_eq(sl_forward(t), SL_OK);
    for (int i = 0; i < 1000; i++)
        cr_expect(agrees(sl_value(y)[i], a[i], 0), "%s: [%d] %a vs %a", sl__vmath_name(), i,
                  sl_value(y)[i], a[i]);
    sl_tape_free(t);
}

Test(vmath, config_refuses_unknown_variants) {
    sl__vmath_config("auto");
    const char *best = sl__vmath_name();
    cr_expect_eq(sl__vmath_config("avx1024"), 0);
    cr_expect_eq(sl__vmath_config(""), 0);
    cr_expect_str_eq(sl__vmath_name(), best, "a refused variant changes nothing");
    cr_expect_eq(sl__vmath_config(NULL), 1);
    cr_expect_str_eq(sl__vmath_name(), best);
}

/* What "auto" picks, for libm's vector variants and for the matrix kernel:
 * the widest this CPU runs, but never AVX-512 in a SLOPE_NO_AVX512 build
 * (there an explicit request for it is refused as well); the plain loops
 * where the build or CPU has no vector variant (no libmvec, SLOPE_PORTABLE). */
int sl__gemm_config(const char *kernel, int path, size_t kc, size_t mc, size_t nc);
const char *sl__gemm_kernel_name(void);

Test(vmath, auto_picks_the_widest_variant_allowed) {
#ifdef SLOPE_NO_AVX512
    const int avx512 = 0;
#else
    const int avx512 = __builtin_cpu_supports("avx512f") != 0;
#endif
    int checked = 0;
    if (sl__vmath_config("avx2")) {
        cr_expect_eq(sl__vmath_config("avx512"), avx512);
        cr_assert(sl__vmath_config("auto"));
        cr_expect_str_eq(sl__vmath_name(), avx512 ? "avx512" : "avx2");
        checked++;
    } else {
        cr_assert(sl__vmath_config("auto"));
        cr_expect_str_eq(sl__vmath_name(), "scalar");
    }
    sl__vmath_config("auto");
    if (sl__gemm_config("avx2", 0, 0, 0, 0)) {
        cr_expect_eq(sl__gemm_config("avx512", 0, 0, 0, 0), avx512);
        cr_assert(sl__gemm_config(NULL, 0, 0, 0, 0));
        cr_expect_str_eq(sl__gemm_kernel_name(), avx512 ? "avx512" : "avx2");
        checked++;
    } else {
        cr_assert(sl__gemm_config(NULL, 0, 0, 0, 0));
        cr_expect_str_eq(sl__gemm_kernel_name(), "generic");
    }
    sl__gemm_config(NULL, 0, 0, 0, 0);
    cr_log_info("vmath %s, gemm %s (%d of 2 checked)", sl__vmath_name(), sl__gemm_kernel_name(),
                checked);
}
