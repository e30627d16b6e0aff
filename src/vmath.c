/*
 * vmath.c - exp, log and tanh over arrays: the transcendental part of the
 * element-wise ops (exp, log, tanh, sigmoid forward), which dominates small
 * dense models.
 *
 * On x86-64 with glibc's vector math library (libmvec, found by CMake) and a
 * CPU with AVX2 (checked at run time, so one binary runs everywhere), four
 * doubles go through one libmvec call; elsewhere, and for the tail, the
 * scalar libm loop runs. libmvec's results are within 4 ulp (scalar libm's
 * are correctly rounded or nearly so), so a vectorised build agrees with a
 * scalar one to rounding. Both handle NaN, infinities, overflow and
 * underflow as IEEE says: libmvec falls back to scalar code for special
 * inputs. SLOPE_PORTABLE_MATH (CMake option SLOPE_VECTOR_MATH=OFF) keeps the
 * scalar loops only.
 */
#include "internal.h"

#include <math.h>

#if defined(SLOPE_HAVE_LIBMVEC) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SL__VMATH 1
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
AVX2 __m256d _ZGVdN4v_exp(__m256d x);
AVX2 __m256d _ZGVdN4v_log(__m256d x);
AVX2 __m256d _ZGVdN4v_tanh(__m256d x);

#define VLOOP(NAME, VF, SF)                                                                        \
    AVX2 static void NAME##_avx2(double *o, const double *x, size_t n) {                           \
        size_t i = 0;                                                                              \
        for (; i + 4 <= n; i += 4) _mm256_storeu_pd(o + i, VF(_mm256_loadu_pd(x + i)));            \
        for (; i < n; i++) o[i] = SF(x[i]);                                                        \
    }
VLOOP(vexp, _ZGVdN4v_exp, exp)
VLOOP(vlog, _ZGVdN4v_log, log)
VLOOP(vtanh, _ZGVdN4v_tanh, tanh)

/* Decided once; a benign race at worst writes the same value twice. */
static int use_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}
#endif

int sl__vmath_vectorised(void) {
#ifdef SL__VMATH
    return use_avx2();
#else
    return 0;
#endif
}

#ifdef SL__VMATH
#define DISPATCH(NAME)                                                                             \
    if (n >= 4 && use_avx2()) {                                                                    \
        NAME##_avx2(o, x, n);                                                                      \
        return;                                                                                    \
    }
#else
#define DISPATCH(NAME)
#endif

void sl__vexp(double *o, const double *x, size_t n) {
    DISPATCH(vexp)
    for (size_t i = 0; i < n; i++) o[i] = exp(x[i]);
}

void sl__vlog(double *o, const double *x, size_t n) {
    DISPATCH(vlog)
    for (size_t i = 0; i < n; i++) o[i] = log(x[i]);
}

void sl__vtanh(double *o, const double *x, size_t n) {
    DISPATCH(vtanh)
    for (size_t i = 0; i < n; i++) o[i] = tanh(x[i]);
}
