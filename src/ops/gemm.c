/*
 * gemm.c - sl__gemm, the one matrix-product kernel behind matmul's forward
 * (C = A.B), its gradients (dA += G.B^T, dB += A^T.G) and its tangent.
 *
 *   C (m,n) (+)= op(A) (m,k) . op(B) (k,n),   row-major, no leading-dimension
 *   padding; ta/tb: the operand is stored transposed (A is (k,m), B is (n,k)).
 *
 * Two paths:
 *
 *  - direct: products of at most SMALL_MNK (64^3) multiply-adds, products
 *    with a vector (n == 1 or m == 1) and, when B is not stored transposed,
 *    products thinner than one register tile. No packing: register-blocked
 *    loops read the operands where they are - a block of 8 (AVX-512) or 4
 *    (AVX2) rows of C by 16/8 columns stays in registers over all of k, one
 *    broadcast of op(A)[i,p] and one or two vector loads of B's row p per
 *    step (right edge masked). A transposed B is first turned round into the
 *    workspace (it has at most MAX_BT elements there), or, with fewer than 4
 *    rows of C, each C[i,j] is a dot product with independent partial sums.
 *    Matrix-vector products run four rows of A at a time against the vector.
 *
 *  - packed (GotoBLAS/BLIS): for each NC-wide panel of columns and each
 *    KC-deep slice of k, op(B) is copied into NR-wide slivers (kc x NR,
 *    contiguous in the order the micro-kernel reads them), then for each
 *    MC-high block of rows op(A) is copied into MR-high slivers (MR values
 *    per p). The transposes are absorbed here: packing reads A or B in
 *    whichever layout it is stored, so A.B, A.B^T and A^T.B never build a
 *    transposed copy. The micro-kernel keeps an MR x NR tile of C in
 *    registers for the whole kc loop (one broadcast of A per row and NR/W
 *    vector loads of B per p) and touches C once per KC slice. Edge tiles
 *    (m or n not a multiple of MR/NR) run the same kernel on zero-padded
 *    slivers into a stack tile that is then added to the valid part of C.
 *    The B sliver (kc x NR, 32 KiB) stays in L1 while the A block (MC x KC,
 *    288 KiB) streams from L2 and the B panel (KC x NC, 1 MiB) from L2/L3.
 *
 * Kernels, chosen at run time (not at build time, so one binary runs on any
 * x86-64):
 *     avx512   packed 12 x 16 (24 zmm accumulators), direct 8 x 16 masked
 *     avx2     packed  6 x 8  (12 ymm accumulators), direct 4 x 8 masked
 *     generic  packed  4 x 4, direct row loops: portable C (what the
 *              compiler makes of it; fused multiply-adds where FP_FAST_FMA)
 * The x86 kernels are GCC/Clang target("...") functions selected with
 * __builtin_cpu_supports; -DSLOPE_PORTABLE (CMake SLOPE_PORTABLE=ON) or a
 * non-x86 target leaves only the generic one, -DSLOPE_NO_AVX512 (CMake
 * SLOPE_NO_AVX512=ON) never picks the AVX-512 one. FMA changes the last bits of
 * a result, not its accuracy: every kernel agrees with the others to
 * rounding (tests/test_linalg.c runs them all against long double).
 *
 * Workspace: one per thread (C11 thread-specific storage, freed when the thread
 * ends), allocated by the first
 * product that needs packing or a turned-round B, sized for the kernel's full
 * blocking (about 1.3 MiB for AVX-512, 2.2 MiB for AVX2) and kept for the
 * thread's lifetime - never allocated per call. If that one allocation
 * fails, plain loops compute the product instead.
 *
 * Optional builds (CMake): SLOPE_OPENMP splits the packed path's C into
 * row (or column) blocks on tile boundaries, one per thread, each packing
 * its own slivers - every element of C is summed in the same order whatever
 * the thread count; SLOPE_OPENBLAS hands every product the direct path does
 * not take to cblas_dgemm. Results agree to rounding with the default build.
 */
#include "../internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#if defined(SLOPE_OPENMP)
#include <omp.h>
#endif
#if defined(SLOPE_OPENBLAS)
#include <cblas.h>
#include <limits.h>
#endif

#if !defined(SLOPE_PORTABLE) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SL_GEMM_X86 1
#include <immintrin.h>
#define SL_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define SL_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define SL_GEMM_X86 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SL_INLINE static inline __attribute__((always_inline))
#else
#define SL_INLINE static inline
#endif

/* The direct path takes products of at most this many multiply-adds: the
 * register-blocked direct loops beat packing up to about 64^3-96^3 on AVX2
 * and AVX-512 (and on the portable kernels), measured on the shapes of
 * tests/bench. It also takes any product with a vector (n == 1 or m == 1)
 * and, when B is not stored transposed, products thinner than one register
 * tile (n < NR or m < MR), where packing would mostly move padding. */
#define SMALL_MNK ((size_t)64 * 64 * 64)
/* The direct path turns a transposed B of at most this many elements round
 * (in the workspace) so that its row loops apply. */
#define MAX_BT ((size_t)64 * 1024)

enum { MAX_MR = 12, MAX_NR = 16 };

/* one micro-kernel: c (MR x NR, row stride ldc) (+)= a-sliver . b-sliver */
typedef void (*ukr_fn)(size_t kc, const double *restrict a, const double *restrict b,
                       double *restrict c, size_t ldc, int overwrite);
typedef void (*direct_fn)(int ta, int tb, size_t m, size_t n, size_t k, const double *A,
                          const double *B, double *C, int accumulate, size_t ws_want);

typedef struct kernel {
    const char *name;
    size_t mr, nr;     /* register tile */
    size_t kc, mc, nc; /* cache blocking */
    ukr_fn ukr;
    direct_fn direct;
} kernel;

/* ------------------------------------------------ per-thread workspace */

typedef struct workspace_t {
    void *raw;   /* what malloc returned */
    double *buf; /* 64-byte aligned inside raw */
    size_t cap;  /* doubles available at buf */
} workspace_t;

/* One workspace per thread, held in C11 thread-specific storage whose
 * destructor frees it when the thread ends: a pool that creates and ends
 * threads does not leak their buffers. */
static tss_t ws_key;
static once_flag ws_once = ONCE_FLAG_INIT;
static int ws_ready;

static void ws_destroy(void *p) {
    workspace_t *w = p;
    if (w) free(w->raw);
    free(w);
}

static void ws_create_key(void) { ws_ready = tss_create(&ws_key, ws_destroy) == thrd_success; }

/* At least need doubles, 64-byte aligned; when it must grow, it asks for
 * want (the kernel's full blocking) first, so it grows once per thread. NULL
 * if memory is exhausted (the callers then compute without it). */
static double *workspace(size_t need, size_t want) {
    call_once(&ws_once, ws_create_key);
    if (!ws_ready) return NULL;
    workspace_t *ws = tss_get(ws_key);
    if (!ws) {
        ws = calloc(1, sizeof *ws);
        if (!ws) return NULL;
        if (tss_set(ws_key, ws) != thrd_success) {
            free(ws);
            return NULL;
        }
    }
    if (ws->cap >= need) return ws->buf;
    free(ws->raw);
    ws->buf = NULL;
    ws->cap = 0;
    if (want < need) want = need;
    ws->raw = malloc(want * sizeof(double) + 64);
    if (!ws->raw && want > need) ws->raw = malloc((want = need) * sizeof(double) + 64);
    if (!ws->raw) return NULL;
    ws->buf = (double *)(((uintptr_t)ws->raw + 63) & ~(uintptr_t)63);
    ws->cap = want;
    return ws->buf;
}

/* ------------------------------------------------------------- direct */

/* The direct path works on the operands as stored. sl__gemm hands it only
 * normalised flags: n == 1 implies !ta and m == 1 implies !tb (a product with
 * a vector is rewritten as its transpose, which has the same memory layout).
 * Three shapes of loop, each in a portable and an AVX2+FMA version:
 *   rows  C[i,:] (+)= sum_p op(A)[i,p] B[p,:]   (B row-major)
 *   gemv  C[i]   (+)= dot(A[i,:], b)            (n == 1)
 *   dot   C[i,j] (+)= dot(A[i,:], B[j,:])       (B stored transposed, few rows)
 */
typedef double (*dot_fn)(const double *x, const double *y, size_t k);
typedef void (*rows_fn)(int ta, size_t m, size_t n, size_t k, const double *A, const double *B,
                        double *C, int accumulate);
typedef void (*gemv_fn)(size_t m, size_t k, const double *A, const double *x, double *y,
                        int accumulate);

/* x*y + z, fused where the instance is compiled for FMA hardware (fused is a
 * constant in each instance, so the choice is made at compile time). */
#define MADD(x, y, z) (fused ? fma((x), (y), (z)) : (z) + (x) * (y))
#if defined(FP_FAST_FMA)
#define GENERIC_FUSED 1
#else
#define GENERIC_FUSED 0
#endif

/* portable: eight independent partial sums */
static double dot_generic(const double *restrict x, const double *restrict y, size_t k) {
    const int fused = GENERIC_FUSED;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t p = 0;
    for (; p + 8 <= k; p += 8)
        for (int l = 0; l < 8; l++) s[l] = MADD(x[p + l], y[p + l], s[l]);
    double t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; p < k; p++) t = MADD(x[p], y[p], t);
    return t;
}

static void gemv_generic(size_t m, size_t k, const double *A, const double *x, double *y,
                         int accumulate) {
    for (size_t i = 0; i < m; i++) {
        const double s = dot_generic(A + i * k, x, k);
        y[i] = accumulate ? y[i] + s : s;
    }
}

/* portable: one row of C at a time, two rows of B per pass over it */
static void rows_generic(int ta, size_t m, size_t n, size_t k, const double *A, const double *B,
                         double *C, int accumulate) {
    const int fused = GENERIC_FUSED;
    const size_t si = ta ? 1 : k, sp = ta ? m : 1; /* op(A)[i,p] = A[i*si + p*sp] */
    for (size_t i = 0; i < m; i++) {
        const double *restrict a = A + i * si;
        double *restrict c = C + i * n;
        size_t p = 0;
        if (!accumulate) {
            const double a0 = a[0];
            for (size_t j = 0; j < n; j++) c[j] = a0 * B[j];
            p = 1;
        }
        for (; p + 2 <= k; p += 2) {
            const double a0 = a[p * sp], a1 = a[(p + 1) * sp];
            const double *restrict b0 = B + p * n, *restrict b1 = b0 + n;
            for (size_t j = 0; j < n; j++) c[j] = MADD(a1, b1[j], MADD(a0, b0[j], c[j]));
        }
        if (p < k) {
            const double a0 = a[p * sp], *restrict b0 = B + p * n;
            for (size_t j = 0; j < n; j++) c[j] = MADD(a0, b0[j], c[j]);
        }
    }
}

SL_INLINE void direct_body(int ta, int tb, size_t m, size_t n, size_t k, const double *A,
                           const double *B, double *C, int accumulate, size_t ws_want, dot_fn dot,
                           rows_fn rows, gemv_fn gemv) {
    if (tb) { /* B stored (n,k) */
        /* fewer than 8 columns would fill a fraction of the rows kernel's vectors: dot
         * products of the contiguous rows instead (a weight gradient dZ X^T of few inputs) */
        double *Bt =
            (ta || (m >= 4 && n >= 8)) && k * n <= MAX_BT ? workspace(k * n, ws_want) : NULL;
        if (Bt) { /* turn B round in the workspace: the rows form applies */
            for (size_t j = 0; j < n; j++)
                for (size_t p = 0; p < k; p++) Bt[p * n + j] = B[j * k + p];
            rows(ta, m, n, k, A, Bt, C, accumulate);
            return;
        } else if (!ta) { /* both rows contiguous: dot products */
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < n; j++) {
                    const double s = dot(A + i * k, B + j * k, k);
                    C[i * n + j] = accumulate ? C[i * n + j] + s : s;
                }
            return;
        } else { /* A^T.B^T, huge (or no memory): plain sums (matmul never asks for it) */
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < n; j++) {
                    double s = 0.0;
                    for (size_t p = 0; p < k; p++) s += A[p * m + i] * B[j * k + p];
                    C[i * n + j] = accumulate ? C[i * n + j] + s : s;
                }
            return;
        }
    }
    if (n == 1)
        gemv(m, k, A, B, C, accumulate);
    else
        rows(ta, m, n, k, A, B, C, accumulate);
}

static void direct_generic(int ta, int tb, size_t m, size_t n, size_t k, const double *A,
                           const double *B, double *C, int accumulate, size_t ws_want) {
    direct_body(ta, tb, m, n, k, A, B, C, accumulate, ws_want, dot_generic, rows_generic,
                gemv_generic);
}

#if SL_GEMM_X86
SL_TARGET_AVX2 static double hsum_avx2(__m256d v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

SL_TARGET_AVX2 static double dot_avx2(const double *x, const double *y, size_t k) {
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    size_t p = 0;
    for (; p + 16 <= k; p += 16) {
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + p), _mm256_loadu_pd(y + p), s0);
        s1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + p + 4), _mm256_loadu_pd(y + p + 4), s1);
        s2 = _mm256_fmadd_pd(_mm256_loadu_pd(x + p + 8), _mm256_loadu_pd(y + p + 8), s2);
        s3 = _mm256_fmadd_pd(_mm256_loadu_pd(x + p + 12), _mm256_loadu_pd(y + p + 12), s3);
    }
    for (; p + 4 <= k; p += 4)
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + p), _mm256_loadu_pd(y + p), s0);
    double t = hsum_avx2(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    for (; p < k; p++) t = fma(x[p], y[p], t);
    return t;
}

/* four rows at a time, one accumulator each, reduced together */
SL_TARGET_AVX2 static void gemv_avx2(size_t m, size_t k, const double *A, const double *x,
                                     double *y, int accumulate) {
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        const double *a0 = A + i * k, *a1 = a0 + k, *a2 = a1 + k, *a3 = a2 + k;
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
        size_t p = 0;
        for (; p + 4 <= k; p += 4) {
            const __m256d xv = _mm256_loadu_pd(x + p);
            s0 = _mm256_fmadd_pd(_mm256_loadu_pd(a0 + p), xv, s0);
            s1 = _mm256_fmadd_pd(_mm256_loadu_pd(a1 + p), xv, s1);
            s2 = _mm256_fmadd_pd(_mm256_loadu_pd(a2 + p), xv, s2);
            s3 = _mm256_fmadd_pd(_mm256_loadu_pd(a3 + p), xv, s3);
        }
        /* [s0, s1, s2, s3] each summed across its lanes */
        const __m256d h01 = _mm256_hadd_pd(s0, s1), h23 = _mm256_hadd_pd(s2, s3);
        __m256d r =
            _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x21), _mm256_blend_pd(h01, h23, 0xC));
        if (p < k) {
            _Alignas(32) double t[4];
            _mm256_store_pd(t, r);
            for (; p < k; p++) {
                t[0] = fma(a0[p], x[p], t[0]);
                t[1] = fma(a1[p], x[p], t[1]);
                t[2] = fma(a2[p], x[p], t[2]);
                t[3] = fma(a3[p], x[p], t[3]);
            }
            r = _mm256_load_pd(t);
        }
        if (accumulate) r = _mm256_add_pd(_mm256_loadu_pd(y + i), r);
        _mm256_storeu_pd(y + i, r);
    }
    for (; i < m; i++) {
        const double s = dot_avx2(A + i * k, x, k);
        y[i] = accumulate ? y[i] + s : s;
    }
}

/* A block of R (4 or 1) rows by 8 columns of C, accumulated over all of k in
 * registers; masked: only the columns in m0/m1 exist. R and masked are
 * constants at each call, so this unfolds into four loops. */
SL_TARGET_AVX2 SL_INLINE void rows_block_avx2(const int R, const int masked, __m256i m0, __m256i m1,
                                              size_t k, const double *a, size_t si, size_t sp,
                                              const double *b, size_t ldb, double *c, size_t ldc,
                                              int accumulate) {
    __m256d c00 = _mm256_setzero_pd(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00;
    for (size_t p = 0; p < k; p++, a += sp, b += ldb) {
        const __m256d b0 = masked ? _mm256_maskload_pd(b, m0) : _mm256_loadu_pd(b);
        const __m256d b1 = masked ? _mm256_maskload_pd(b + 4, m1) : _mm256_loadu_pd(b + 4);
        __m256d t = _mm256_broadcast_sd(a);
        c00 = _mm256_fmadd_pd(t, b0, c00);
        c01 = _mm256_fmadd_pd(t, b1, c01);
        if (R == 4) {
            t = _mm256_broadcast_sd(a + si);
            c10 = _mm256_fmadd_pd(t, b0, c10);
            c11 = _mm256_fmadd_pd(t, b1, c11);
            t = _mm256_broadcast_sd(a + 2 * si);
            c20 = _mm256_fmadd_pd(t, b0, c20);
            c21 = _mm256_fmadd_pd(t, b1, c21);
            t = _mm256_broadcast_sd(a + 3 * si);
            c30 = _mm256_fmadd_pd(t, b0, c30);
            c31 = _mm256_fmadd_pd(t, b1, c31);
        }
    }
#define ST(ptr, v, mk)                                                                             \
    do {                                                                                           \
        if (masked) {                                                                              \
            __m256d v_ = (v);                                                                      \
            if (accumulate) v_ = _mm256_add_pd(_mm256_maskload_pd((ptr), (mk)), v_);               \
            _mm256_maskstore_pd((ptr), (mk), v_);                                                  \
        } else {                                                                                   \
            _mm256_storeu_pd((ptr), accumulate ? _mm256_add_pd(_mm256_loadu_pd(ptr), (v)) : (v));  \
        }                                                                                          \
    } while (0)
    ST(c, c00, m0);
    ST(c + 4, c01, m1);
    if (R == 4) {
        ST(c + ldc, c10, m0);
        ST(c + ldc + 4, c11, m1);
        ST(c + 2 * ldc, c20, m0);
        ST(c + 2 * ldc + 4, c21, m1);
        ST(c + 3 * ldc, c30, m0);
        ST(c + 3 * ldc + 4, c31, m1);
    }
#undef ST
}

SL_TARGET_AVX2 static void rows_avx2(int ta, size_t m, size_t n, size_t k, const double *A,
                                     const double *B, double *C, int accumulate) {
    const size_t si = ta ? 1 : k, sp = ta ? m : 1; /* op(A)[i,p] = A[i*si + p*sp] */
    const __m256i none = _mm256_setzero_si256();
    for (size_t j = 0; j < n; j += 8) {
        const double *b = B + j;
        double *c = C + j;
        size_t i = 0;
        if (n - j >= 8) {
            for (; i + 4 <= m; i += 4)
                rows_block_avx2(4, 0, none, none, k, A + i * si, si, sp, b, n, c + i * n, n,
                                accumulate);
            for (; i < m; i++)
                rows_block_avx2(1, 0, none, none, k, A + i * si, si, sp, b, n, c + i * n, n,
                                accumulate);
        } else { /* the last 1..7 columns */
            const long long nb = (long long)(n - j);
            const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
            const __m256i m0 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nb), lane);
            const __m256i m1 = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nb - 4), lane);
            for (; i + 4 <= m; i += 4)
                rows_block_avx2(4, 1, m0, m1, k, A + i * si, si, sp, b, n, c + i * n, n,
                                accumulate);
            for (; i < m; i++)
                rows_block_avx2(1, 1, m0, m1, k, A + i * si, si, sp, b, n, c + i * n, n,
                                accumulate);
        }
    }
}

SL_TARGET_AVX2 static void direct_avx2(int ta, int tb, size_t m, size_t n, size_t k,
                                       const double *A, const double *B, double *C, int accumulate,
                                       size_t ws_want) {
    direct_body(ta, tb, m, n, k, A, B, C, accumulate, ws_want, dot_avx2, rows_avx2, gemv_avx2);
}

/* AVX-512: blocks of R (8, 4 or 1) rows by 16 columns, masked at the right
 * edge (masks are cheap here, so one loop serves every width). */
SL_TARGET_AVX512 SL_INLINE void rows_block_avx512(const int R, __mmask8 m0, __mmask8 m1, size_t k,
                                                  const double *a, size_t si, size_t sp,
                                                  const double *b, size_t ldb, double *c,
                                                  size_t ldc, int accumulate) {
#define Z(r) __m512d c##r##_0 = _mm512_setzero_pd(), c##r##_1 = c##r##_0
    Z(0);
    Z(1);
    Z(2);
    Z(3);
    Z(4);
    Z(5);
    Z(6);
    Z(7);
#undef Z
    for (size_t p = 0; p < k; p++, a += sp, b += ldb) {
        const __m512d b0 = _mm512_maskz_loadu_pd(m0, b), b1 = _mm512_maskz_loadu_pd(m1, b + 8);
        __m512d t;
#define R_(r)                                                                                      \
    t = _mm512_set1_pd(a[(r)*si]);                                                                 \
    c##r##_0 = _mm512_fmadd_pd(t, b0, c##r##_0);                                                   \
    c##r##_1 = _mm512_fmadd_pd(t, b1, c##r##_1);
        R_(0)
        if (R >= 4) {
            R_(1) R_(2) R_(3)
        }
        if (R == 8) {
            R_(4) R_(5) R_(6) R_(7)
        }
#undef R_
    }
#define S(r)                                                                                       \
    {                                                                                              \
        double *cr = c + (size_t)(r)*ldc;                                                          \
        if (accumulate) {                                                                          \
            c##r##_0 = _mm512_add_pd(_mm512_maskz_loadu_pd(m0, cr), c##r##_0);                     \
            c##r##_1 = _mm512_add_pd(_mm512_maskz_loadu_pd(m1, cr + 8), c##r##_1);                 \
        }                                                                                          \
        _mm512_mask_storeu_pd(cr, m0, c##r##_0);                                                   \
        _mm512_mask_storeu_pd(cr + 8, m1, c##r##_1);                                               \
    }
    S(0)
    if (R >= 4) {
        S(1) S(2) S(3)
    }
    if (R == 8) {
        S(4) S(5) S(6) S(7)
    }
#undef S
}

SL_TARGET_AVX512 static void rows_avx512(int ta, size_t m, size_t n, size_t k, const double *A,
                                         const double *B, double *C, int accumulate) {
    const size_t si = ta ? 1 : k, sp = ta ? m : 1; /* op(A)[i,p] = A[i*si + p*sp] */
    for (size_t j = 0; j < n; j += 16) {
        const size_t nb = n - j < 16 ? n - j : 16;
        const __mmask8 m0 = (__mmask8)(nb >= 8 ? 0xFF : (1u << nb) - 1);
        const __mmask8 m1 = (__mmask8)(nb >= 16 ? 0xFF : nb > 8 ? (1u << (nb - 8)) - 1 : 0);
        const double *b = B + j;
        double *c = C + j;
        size_t i = 0;
        for (; i + 8 <= m; i += 8)
            rows_block_avx512(8, m0, m1, k, A + i * si, si, sp, b, n, c + i * n, n, accumulate);
        for (; i + 4 <= m; i += 4)
            rows_block_avx512(4, m0, m1, k, A + i * si, si, sp, b, n, c + i * n, n, accumulate);
        for (; i < m; i++)
            rows_block_avx512(1, m0, m1, k, A + i * si, si, sp, b, n, c + i * n, n, accumulate);
    }
}

SL_TARGET_AVX512 static void direct_avx512(int ta, int tb, size_t m, size_t n, size_t k,
                                           const double *A, const double *B, double *C,
                                           int accumulate, size_t ws_want) {
    direct_body(ta, tb, m, n, k, A, B, C, accumulate, ws_want, dot_avx2, rows_avx512, gemv_avx2);
}
#endif

/* ------------------------------------------------------- micro-kernels */

/* portable: a 4x4 tile in plain C */
static void ukr_generic(size_t kc, const double *restrict a, const double *restrict b,
                        double *restrict c, size_t ldc, int overwrite) {
    const int fused = GENERIC_FUSED;
    double t[4][4] = {{0}};
    for (size_t p = 0; p < kc; p++, a += 4, b += 4)
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 4; j++) t[r][j] = MADD(a[r], b[j], t[r][j]);
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 4; j++)
            c[(size_t)r * ldc + j] = overwrite ? t[r][j] : c[(size_t)r * ldc + j] + t[r][j];
}

#if SL_GEMM_X86
/* AVX2 + FMA: a 6x8 tile in 12 ymm registers */
SL_TARGET_AVX2 static void ukr_avx2(size_t kc, const double *restrict a, const double *restrict b,
                                    double *restrict c, size_t ldc, int overwrite) {
#define Z(r) __m256d c##r##_0 = _mm256_setzero_pd(), c##r##_1 = _mm256_setzero_pd()
    Z(0);
    Z(1);
    Z(2);
    Z(3);
    Z(4);
    Z(5);
#undef Z
    for (size_t p = 0; p < kc; p++, a += 6, b += 8) {
        const __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
        __m256d t;
#define R(r)                                                                                       \
    t = _mm256_broadcast_sd(a + r);                                                                \
    c##r##_0 = _mm256_fmadd_pd(t, b0, c##r##_0);                                                   \
    c##r##_1 = _mm256_fmadd_pd(t, b1, c##r##_1)
        R(0);
        R(1);
        R(2);
        R(3);
        R(4);
        R(5);
#undef R
    }
#define S(r)                                                                                       \
    {                                                                                              \
        double *cr = c + (size_t)(r)*ldc;                                                          \
        if (!overwrite) {                                                                          \
            c##r##_0 = _mm256_add_pd(_mm256_loadu_pd(cr), c##r##_0);                               \
            c##r##_1 = _mm256_add_pd(_mm256_loadu_pd(cr + 4), c##r##_1);                           \
        }                                                                                          \
        _mm256_storeu_pd(cr, c##r##_0);                                                            \
        _mm256_storeu_pd(cr + 4, c##r##_1);                                                        \
    }
    S(0) S(1) S(2) S(3) S(4) S(5)
#undef S
}

/* AVX-512F: a 12x16 tile in 24 zmm registers */
SL_TARGET_AVX512 static void ukr_avx512(size_t kc, const double *restrict a,
                                        const double *restrict b, double *restrict c, size_t ldc,
                                        int overwrite) {
    /* C is read (or written) at the end: start fetching its lines now */
#define Z(r)                                                                                       \
    __m512d c##r##_0 = _mm512_setzero_pd(), c##r##_1 = _mm512_setzero_pd();                        \
    _mm_prefetch((const char *)(c + (size_t)(r)*ldc), _MM_HINT_T0);                                \
    _mm_prefetch((const char *)(c + (size_t)(r)*ldc + 15), _MM_HINT_T0)
    Z(0);
    Z(1);
    Z(2);
    Z(3);
    Z(4);
    Z(5);
    Z(6);
    Z(7);
    Z(8);
    Z(9);
    Z(10);
    Z(11);
#undef Z
    for (size_t p = 0; p < kc; p++, a += 12, b += 16) {
        const __m512d b0 = _mm512_load_pd(b), b1 = _mm512_load_pd(b + 8);
        __m512d t;
#define R(r)                                                                                       \
    t = _mm512_set1_pd(a[r]);                                                                      \
    c##r##_0 = _mm512_fmadd_pd(t, b0, c##r##_0);                                                   \
    c##r##_1 = _mm512_fmadd_pd(t, b1, c##r##_1)
        R(0);
        R(1);
        R(2);
        R(3);
        R(4);
        R(5);
        R(6);
        R(7);
        R(8);
        R(9);
        R(10);
        R(11);
#undef R
    }
#define S(r)                                                                                       \
    {                                                                                              \
        double *cr = c + (size_t)(r)*ldc;                                                          \
        if (!overwrite) {                                                                          \
            c##r##_0 = _mm512_add_pd(_mm512_loadu_pd(cr), c##r##_0);                               \
            c##r##_1 = _mm512_add_pd(_mm512_loadu_pd(cr + 8), c##r##_1);                           \
        }                                                                                          \
        _mm512_storeu_pd(cr, c##r##_0);                                                            \
        _mm512_storeu_pd(cr + 8, c##r##_1);                                                        \
    }
    S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)
#undef S
}
#endif

static const kernel k_generic = {"generic", 4, 4, 256, 128, 512, ukr_generic, direct_generic};
#if SL_GEMM_X86
static const kernel k_avx2 = {"avx2", 6, 8, 256, 96, 512, ukr_avx2, direct_avx2};
static const kernel k_avx512 = {"avx512", 12, 16, 256, 144, 512, ukr_avx512, direct_avx512};
#endif

/* the workspace one thread needs for K's full blocking */
static size_t ws_size(const kernel *K) { return (K->mc + K->mr) * K->kc + K->kc * (K->nc + K->nr); }

/* ------------------------------------------------------------ packing */

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

/* op(A)[i0.., p0..] (mc x kc) into MR-high slivers: sliver s holds, for each
 * p, the MR values op(A)[i0 + s*MR + r, p0 + p] (zero past row mc). */
static void pack_a(int ta, const double *A, size_t lda, size_t i0, size_t p0, size_t mc, size_t kc,
                   size_t mr, double *restrict dst) {
    for (size_t ir = 0; ir < mc; ir += mr, dst += mr * kc) {
        const size_t mb = mc - ir < mr ? mc - ir : mr;
        if (ta) { /* A stored (k,m): op(A)[i,p] = A[p*lda + i], rows of the sliver contiguous */
            const double *src = A + p0 * lda + i0 + ir;
            for (size_t p = 0; p < kc; p++, src += lda) {
                double *d = dst + p * mr;
                for (size_t r = 0; r < mb; r++) d[r] = src[r];
                for (size_t r = mb; r < mr; r++) d[r] = 0.0;
            }
        } else { /* A stored (m,k): op(A)[i,p] = A[i*lda + p] */
            for (size_t r = 0; r < mb; r++) {
                const double *src = A + (i0 + ir + r) * lda + p0;
                for (size_t p = 0; p < kc; p++) dst[p * mr + r] = src[p];
            }
            for (size_t r = mb; r < mr; r++)
                for (size_t p = 0; p < kc; p++) dst[p * mr + r] = 0.0;
        }
    }
}

/* op(B)[p0.., j0..] (kc x nc) into NR-wide slivers: the slivers of op(B)^T
 * as pack_a makes them, op(B)^T being B read with the other transpose flag. */
static void pack_b(int tb, const double *B, size_t ldb, size_t p0, size_t j0, size_t kc, size_t nc,
                   size_t nr, double *restrict dst) {
    pack_a(!tb, B, ldb, j0, p0, nc, kc, nr, dst);
}

/* ------------------------------------------------------ test hooks */

/* Test-only overrides (not thread-safe; set them before computing):
 * kernel: NULL or "auto", or "generic", "avx2", "avx512" (returns 0 if this
 * build or CPU cannot run it); path: 0 auto, 1 always direct, 2 always
 * packed (never BLAS); kc/mc/nc: blocking (0 = the kernel's own). */
static const kernel *force_kernel;

#if SL_GEMM_X86
static int avx512_ok(void) {
#ifdef SLOPE_NO_AVX512
    return 0;
#else
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
#endif
}
#endif
static int force_path;
static size_t force_kc, force_mc, force_nc;

int sl__gemm_config(const char *kernel_name, int path, size_t kc, size_t mc, size_t nc);
const char *sl__gemm_kernel_name(void);

int sl__gemm_config(const char *kernel_name, int path, size_t kc, size_t mc, size_t nc) {
    const kernel *k = NULL;
    if (kernel_name && strcmp(kernel_name, "auto") != 0) {
        if (!strcmp(kernel_name, "generic")) k = &k_generic;
#if SL_GEMM_X86
        else if (!strcmp(kernel_name, "avx2") && __builtin_cpu_supports("avx2") &&
                 __builtin_cpu_supports("fma"))
            k = &k_avx2;
        else if (!strcmp(kernel_name, "avx512") && avx512_ok())
            k = &k_avx512;
#endif
        if (!k) return 0;
    }
    force_kernel = k;
    force_path = path;
    force_kc = kc;
    force_mc = mc;
    force_nc = nc;
    return 1;
}

static const kernel *pick_kernel(void) {
    if (force_kernel) return force_kernel;
#if SL_GEMM_X86
    if (avx512_ok()) return &k_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &k_avx2;
#endif
    return &k_generic;
}

/* The micro-kernel sl__gemm uses on this machine (for reports). */
const char *sl__gemm_kernel_name(void) { return pick_kernel()->name; }

/* ------------------------------------------------------- packed path */

/* The same product with plain loops and explicit strides: only when the
 * packing workspace cannot be allocated. */
static void gemm_strided(int ta, int tb, size_t m, size_t n, size_t k, const double *A, size_t lda,
                         const double *B, size_t ldb, double *C, size_t ldc, int accumulate) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0.0;
            for (size_t p = 0; p < k; p++)
                s +=
                    (ta ? A[p * lda + i] : A[i * lda + p]) * (tb ? B[j * ldb + p] : B[p * ldb + j]);
            C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
        }
}

/* C (m,n; row stride ldc) (+)= op(A) op(B) with explicit strides: A's rows
 * as stored are lda apart, B's ldb. */
static void gemm_packed(const kernel *K, int ta, int tb, size_t m, size_t n, size_t k,
                        const double *A, size_t lda, const double *B, size_t ldb, double *C,
                        size_t ldc, int accumulate) {
    const size_t mr = K->mr, nr = K->nr;
    const size_t KC = force_kc ? force_kc : K->kc;
    const size_t MC = round_up(force_mc ? force_mc : K->mc, mr);
    const size_t NC = round_up(force_nc ? force_nc : K->nc, nr);
    /* the blocks actually needed: no bigger than the problem */
    const size_t kcap = k < KC ? k : KC;
    const size_t mcap = round_up(m < MC ? m : MC, mr), ncap = round_up(n < NC ? n : NC, nr);
    /* ask for the full blocking once, so later, bigger products reuse it; the
     * B panel starts on a 64-byte boundary after the A block */
    double *pa = workspace(round_up(mcap * kcap, 8) + kcap * ncap, round_up(MC * KC, 8) + KC * NC);
    if (!pa) {
        gemm_strided(ta, tb, m, n, k, A, lda, B, ldb, C, ldc, accumulate);
        return;
    }
    double *pb = pa + round_up(mcap * kcap, 8);
    _Alignas(64) double tile[MAX_MR * MAX_NR];

    for (size_t jc = 0; jc < n; jc += NC) {
        const size_t nc = n - jc < NC ? n - jc : NC;
        for (size_t pc = 0; pc < k; pc += KC) {
            const size_t kc = k - pc < KC ? k - pc : KC;
            const int overwrite = !accumulate && pc == 0;
            pack_b(tb, B, ldb, pc, jc, kc, nc, nr, pb);
            for (size_t ic = 0; ic < m; ic += MC) {
                const size_t mc = m - ic < MC ? m - ic : MC;
                pack_a(ta, A, lda, ic, pc, mc, kc, mr, pa);
                for (size_t jr = 0; jr < nc; jr += nr) {
                    const size_t nb = nc - jr < nr ? nc - jr : nr;
                    const double *bs = pb + jr * kc;
                    for (size_t ir = 0; ir < mc; ir += mr) {
                        const size_t mb = mc - ir < mr ? mc - ir : mr;
                        const double *as = pa + ir * kc;
                        double *c = C + (ic + ir) * ldc + jc + jr;
                        if (mb == mr && nb == nr) {
                            K->ukr(kc, as, bs, c, ldc, overwrite);
                            continue;
                        }
                        K->ukr(kc, as, bs, tile, nr, 1);
                        for (size_t r = 0; r < mb; r++)
                            for (size_t j = 0; j < nb; j++)
                                c[r * ldc + j] = overwrite ? tile[r * nr + j]
                                                           : c[r * ldc + j] + tile[r * nr + j];
                    }
                }
            }
        }
    }
}

#if defined(SLOPE_OPENMP)
/* Split C into one block of rows (or of columns, when C is wide) per thread,
 * on tile boundaries; each thread packs its own slivers. */
static void gemm_packed_parallel(const kernel *K, int ta, int tb, size_t m, size_t n, size_t k,
                                 const double *A, const double *B, double *C, int accumulate) {
    const size_t lda = ta ? m : k, ldb = tb ? k : n;
    const int by_rows = m / K->mr >= n / K->nr;
    const size_t units = by_rows ? (m + K->mr - 1) / K->mr : (n + K->nr - 1) / K->nr;
    int nt = omp_get_max_threads();
    if ((size_t)nt > units) nt = (int)units;
#pragma omp parallel num_threads(nt)
    {
        const size_t T = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        const size_t u0 = units * t / T, u1 = units * (t + 1) / T;
        if (by_rows) {
            const size_t i0 = u0 * K->mr, i1 = u1 * K->mr < m ? u1 * K->mr : m;
            if (i1 > i0)
                gemm_packed(K, ta, tb, i1 - i0, n, k, ta ? A + i0 : A + i0 * lda, lda, B, ldb,
                            C + i0 * n, n, accumulate);
        } else {
            const size_t j0 = u0 * K->nr, j1 = u1 * K->nr < n ? u1 * K->nr : n;
            if (j1 > j0)
                gemm_packed(K, ta, tb, m, j1 - j0, k, A, lda, tb ? B + j0 * ldb : B + j0, ldb,
                            C + j0, n, accumulate);
        }
    }
}
#endif

/* ---------------------------------------------------------- sl__gemm */

void sl__gemm(int ta, int tb, size_t m, size_t n, size_t k, const double *A, const double *B,
              double *C, int accumulate) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate) memset(C, 0, m * n * sizeof *C);
        return;
    }
    /* a vector's layout does not depend on the flag */
    if (m == 1 || k == 1) ta = 0;
    if (n == 1 || k == 1) tb = 0;
    /* a product with a vector whose matrix is stored transposed: compute
     * C^T = op(B)^T op(A)^T instead, which is C in the same memory. Then
     * n == 1 implies !ta and m == 1 implies !tb. */
    if ((n == 1 && ta) || (m == 1 && tb)) {
        const double *T = A;
        A = B;
        B = T;
        const size_t t = m;
        m = n;
        n = t;
        ta = tb = 0; /* B^T is A as stored; a vector has no orientation */
    }
    const kernel *K = pick_kernel();
    const int path = force_path;
    const int direct =
        n == 1 || m == 1 || m * n * k <= SMALL_MNK || (!tb && (n < K->nr || m < K->mr));
    if (path == 1 || (path == 0 && direct)) {
        K->direct(ta, tb, m, n, k, A, B, C, accumulate, ws_size(K));
        return;
    }
#if defined(SLOPE_OPENBLAS)
    if (path == 0 && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX) {
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)m, (int)n, (int)k, 1.0, A, (int)(ta ? m : k), B, (int)(tb ? k : n),
                    accumulate ? 1.0 : 0.0, C, (int)n);
        return;
    }
#endif
#if defined(SLOPE_OPENMP)
    if (omp_get_max_threads() > 1 && !omp_in_parallel()) {
        gemm_packed_parallel(K, ta, tb, m, n, k, A, B, C, accumulate);
        return;
    }
#endif
    gemm_packed(K, ta, tb, m, n, k, A, ta ? m : k, B, tb ? k : n, C, n, accumulate);
}
