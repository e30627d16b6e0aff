/*
 * vmath.c - exp, log and tanh over arrays: the transcendental part of the
 * element-wise ops (exp, log, tanh, sigmoid forward), which dominates small
 * dense models.
 *
 * On x86-64 with glibc's vector math library (libmvec, found by CMake), the
 * widest variant the CPU runs is chosen at run time, so one binary runs
 * everywhere: eight doubles per call with AVX-512 (arrays of 8 or more; the
 * last partial group through a masked load and store, so every element of
 * such an array goes through the same function), four with AVX2 and FMA
 * (arrays of 4 or more; the tail through scalar libm), else the scalar libm
 * loop. libmvec's results are within 4 ulp (scalar libm's are correctly
 * rounded or nearly so), so the variants agree with each other and with a
 * scalar build to rounding. All of them handle NaN, infinities, overflow and
 * underflow as IEEE says: libmvec falls back to scalar code for special
 * inputs. The variant is chosen on first use with __builtin_cpu_supports
 * (no ifunc), so SLOPE_PORTABLE, which removes the kernels' ifunc clones,
 * leaves it alone. Without SLOPE_HAVE_LIBMVEC (CMake option
 * SLOPE_VECTOR_MATH=OFF, or no libmvec found) only the scalar loops exist;
 * SLOPE_NO_AVX512 (CMake option) stops at AVX2; sl__vmath_config (tests)
 * caps the variant.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

enum { VM_SCALAR, VM_AVX2, VM_AVX512 };

#if defined(SLOPE_HAVE_LIBMVEC) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SL__VMATH 1
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f")))
AVX2 __m256d _ZGVdN4v_exp(__m256d x);
AVX2 __m256d _ZGVdN4v_log(__m256d x);
AVX2 __m256d _ZGVdN4v_tanh(__m256d x);
AVX512 __m512d _ZGVeN8v_exp(__m512d x);
AVX512 __m512d _ZGVeN8v_log(__m512d x);
AVX512 __m512d _ZGVeN8v_tanh(__m512d x);

#define VLOOP(NAME, V4, V8, SF)                                                                    \
    AVX2 static void NAME##_avx2(double *o, const double *x, size_t n) {                           \
        size_t i = 0;                                                                              \
        for (; i + 4 <= n; i += 4) _mm256_storeu_pd(o + i, V4(_mm256_loadu_pd(x + i)));            \
        for (; i < n; i++) o[i] = SF(x[i]);                                                        \
    }                                                                                              \
    AVX512 static void NAME##_avx512(double *o, const double *x, size_t n) {                       \
        size_t i = 0;                                                                              \
        for (; i + 8 <= n; i += 8) _mm512_storeu_pd(o + i, V8(_mm512_loadu_pd(x + i)));            \
        if (i < n) { /* masked-off lanes are neither read nor written; they compute f(0) */        \
            const __mmask8 m = (__mmask8)((1u << (n - i)) - 1u);                                   \
            _mm512_mask_storeu_pd(o + i, m, V8(_mm512_maskz_loadu_pd(m, x + i)));                  \
        }                                                                                          \
    }
VLOOP(vexp, _ZGVdN4v_exp, _ZGVeN8v_exp, exp)
VLOOP(vlog, _ZGVdN4v_log, _ZGVeN8v_log, log)
VLOOP(vtanh, _ZGVdN4v_tanh, _ZGVeN8v_tanh, tanh)

static int cpu_level(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return VM_SCALAR;
#ifdef SLOPE_NO_AVX512
    return VM_AVX2;
#else
    return __builtin_cpu_supports("avx512f") ? VM_AVX512 : VM_AVX2;
#endif
}
#else
static int cpu_level(void) { return VM_SCALAR; }
#endif

/* The variant in use: the CPU's best unless sl__vmath_config capped it.
 * Decided once; a benign race at worst writes the same value twice. */
static int level = -1;
static int vm_level(void) {
    if (level < 0) level = cpu_level();
    return level;
}

static const char *const level_names[] = {"scalar", "avx2", "avx512"};

/* Tests: cap the variant at "scalar", "avx2" or "avx512" (NULL or "auto":
 * the CPU's best). Returns 0, changing nothing, for a variant this build
 * or CPU cannot run. */
int sl__vmath_config(const char *name) {
    const int best = cpu_level();
    if (!name || !strcmp(name, "auto")) {
        level = best;
        return 1;
    }
    for (int l = 0; l <= best; l++)
        if (!strcmp(name, level_names[l])) {
            level = l;
            return 1;
        }
    return 0;
}

const char *sl__vmath_name(void) { return level_names[vm_level()]; }

#ifdef SL__VMATH
#define DISPATCH(NAME)                                                                             \
    if (n >= 4) {                                                                                  \
        const int l = vm_level();                                                                  \
        if (l == VM_AVX512 && n >= 8) {                                                            \
            NAME##_avx512(o, x, n);                                                                \
            return;                                                                                \
        }                                                                                          \
        if (l >= VM_AVX2) {                                                                        \
            NAME##_avx2(o, x, n);                                                                  \
            return;                                                                                \
        }                                                                                          \
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
