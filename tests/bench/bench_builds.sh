#!/bin/sh
# bench_builds.sh - a SLOPE_BENCH for ../shared/bench/peers/run_all.sh that puts
# the optional builds of slope-bench in the same run as the default build.
#
#   SLOPE_BENCH=tests/bench/bench_builds.sh \
#   SLOPE_BENCH_DEFAULT=build/tests/bench/slope-bench \
#   SLOPE_BENCH_OPENMP=build-omp/tests/bench/slope-bench \
#   SLOPE_BENCH_OPENBLAS=build-blas/tests/bench/slope-bench \
#   SLOPE_BENCH_AVX2=build-avx2/tests/bench/slope-bench \
#   ROUNDS=3 ../shared/bench/peers/run_all.sh
#
# run_all.sh calls it as `taskset ... $SLOPE_BENCH --threads N` once per round
# for N = 1 and 2. It runs, under the same taskset:
#   1. the default build, every workload, its lines unchanged (peer=slope, and
#      the c-handwritten floors it measures);
#   2. if SLOPE_BENCH_OPENMP is set and N > 1: that build's W3 and W4 with
#      OMP_NUM_THREADS=N, its peer=slope lines renamed peer=slope-openmp;
#   3. if SLOPE_BENCH_OPENBLAS is set: that build's W3 and W4 with
#      OPENBLAS_NUM_THREADS=N, its peer=slope lines renamed peer=slope-openblas;
#   4. if SLOPE_BENCH_AVX2 is set (a SLOPE_NO_AVX512=ON build) and N = 1: that
#      build's W2, W3, W4 and W6, its peer=slope lines renamed peer=slope-avx2.
# Only the workloads an option changes are run again: OpenMP and OpenBLAS
# change nothing but matrix products, SLOPE_NO_AVX512 the vector code (matrix
# kernel, element-wise kernels, vector libm). The variants' other lines (their
# c-handwritten floors, the same code as in 1.) are dropped.
# Exit status: non-zero if any of the runs failed (a CHECK mismatch included).
set -u
threads=1
prev=
for a in "$@"; do
    [ "$prev" = "--threads" ] && threads=$a
    prev=$a
done
default=${SLOPE_BENCH_DEFAULT:-$(dirname "$0")/../../build/tests/bench/slope-bench}
rc=0

"$default" "$@" || rc=1

variant() { # variant <binary> <peer name> <env assignment> <workloads> <slope-bench arguments...>
    bin=$1 peer=$2 setting=$3 workloads=$4
    shift 4
    out=$(env "$setting" "$bin" "$@" --workload "$workloads") || rc=1
    printf '%s\n' "$out" | grep -E '^(RESULT|CHECK) ' | grep -E ' peer=slope ' |
        sed "s/ peer=slope / peer=$peer /"
}
if [ -n "${SLOPE_BENCH_OPENMP:-}" ] && [ "$threads" -gt 1 ]; then
    variant "$SLOPE_BENCH_OPENMP" slope-openmp "OMP_NUM_THREADS=$threads" W3,W4 "$@"
fi
if [ -n "${SLOPE_BENCH_OPENBLAS:-}" ]; then
    variant "$SLOPE_BENCH_OPENBLAS" slope-openblas "OPENBLAS_NUM_THREADS=$threads" W3,W4 "$@"
fi
if [ -n "${SLOPE_BENCH_AVX2:-}" ] && [ "$threads" -eq 1 ]; then
    variant "$SLOPE_BENCH_AVX2" slope-avx2 "SLOPE_BENCH_VARIANT=avx2" W2,W3,W4,W6 "$@"
fi
exit $rc
