#!/usr/bin/env bash
# run.sh - the two commands of the README's quick start, and what CI runs.
#
#   ./run.sh demo [ARGS]   build slope and run the main demo (examples/planar)
#   ./run.sh test          check the formatting (when clang-format is installed),
#                          then build and run every test: a -Werror build, an
#                          AddressSanitizer + UndefinedBehaviorSanitizer build,
#                          a portable build (SLOPE_PORTABLE=ON and
#                          SLOPE_VECTOR_MATH=OFF: no run-time CPU dispatch,
#                          scalar libm), an AVX2 build (SLOPE_NO_AVX512=ON,
#                          without the examples), a shared-library build, an
#                          OpenMP build (2 threads), an OpenBLAS build (when
#                          libopenblas-dev is installed), a clang sanitizer
#                          build (when clang is installed), and an install +
#                          pkg-config/CMake consumer check
#
# Missing Debian packages are installed first (as root, or through sudo): gcc
# and libc6-dev, make, cmake, pkg-config, uthash-dev, and for the tests
# libcriterion-dev.
set -euo pipefail
cd "$(dirname "$0")"
JOBS=$(nproc 2>/dev/null || echo 2)

need_packages() {
    local missing=()
    command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    [ -f /usr/include/uthash.h ] || missing+=(uthash-dev)
    if [ "${1:-}" = test ]; then
        pkg-config --exists criterion 2>/dev/null || missing+=(libcriterion-dev)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "run.sh: installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

configure_build() { # dir, cmake args... (the build's output shows only if it fails)
    local dir=$1
    shift
    mkdir -p "$dir"
    if ! { cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j "$JOBS"; } >"$dir/build.log" 2>&1; then
        cat "$dir/build.log"
        echo "run.sh: the build in $dir failed (log: $dir/build.log)" >&2
        exit 1
    fi
}

case "${1:-}" in
demo)
    shift
    need_packages demo
    configure_build build/release -DCMAKE_BUILD_TYPE=Release -DSLOPE_BUILD_TESTS=OFF
    exec build/release/examples/planar "$@"
    ;;
test)
    need_packages test
    if command -v clang-format >/dev/null 2>&1; then
        echo "== formatting (.clang-format)"
        git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
    else
        echo "== formatting check skipped: clang-format is not installed"
    fi
    echo "== -Wall -Wextra -Werror build"
    configure_build build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLOPE_WERROR=ON
    (cd build/ci && ctest --output-on-failure -j "$JOBS")
    echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
    configure_build build/asan -DCMAKE_BUILD_TYPE=Debug -DSLOPE_WERROR=ON \
        -DSLOPE_SANITIZE=address,undefined
    (cd build/asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$JOBS")
    echo "== portable build: no CPU dispatch, scalar libm (SLOPE_PORTABLE=ON, SLOPE_VECTOR_MATH=OFF)"
    configure_build build/scalar -DCMAKE_BUILD_TYPE=Release -DSLOPE_WERROR=ON \
        -DSLOPE_PORTABLE=ON -DSLOPE_VECTOR_MATH=OFF
    (cd build/scalar && ctest --output-on-failure -j "$JOBS")
    echo "== AVX2 build (SLOPE_NO_AVX512=ON): the AVX2 code paths, even on an AVX-512 machine;"
    echo "   without the examples (SLOPE_BUILD_EXAMPLES=OFF), which the other builds run"
    configure_build build/avx2 -DCMAKE_BUILD_TYPE=Release -DSLOPE_WERROR=ON -DSLOPE_NO_AVX512=ON \
        -DSLOPE_BUILD_EXAMPLES=OFF
    (cd build/avx2 && ctest --output-on-failure -j "$JOBS")
    echo "== shared library build (BUILD_SHARED_LIBS=ON), the same tests"
    configure_build build/shared -DCMAKE_BUILD_TYPE=Release -DSLOPE_WERROR=ON -DBUILD_SHARED_LIBS=ON
    (cd build/shared && ctest --output-on-failure -j "$JOBS")
    echo "== OpenMP build (SLOPE_OPENMP=ON, 2 threads), the same tests"
    configure_build build/openmp -DCMAKE_BUILD_TYPE=Release -DSLOPE_WERROR=ON -DSLOPE_OPENMP=ON
    (cd build/openmp && OMP_NUM_THREADS=2 ctest --output-on-failure -j "$JOBS")
    if pkg-config --exists openblas 2>/dev/null; then
        echo "== OpenBLAS build (SLOPE_OPENBLAS=ON), the same tests"
        configure_build build/openblas -DCMAKE_BUILD_TYPE=Release -DSLOPE_WERROR=ON \
            -DSLOPE_OPENBLAS=ON
        (cd build/openblas && ctest --output-on-failure -j "$JOBS")
    else
        echo "== OpenBLAS stage skipped: libopenblas-dev is not installed (an optional accelerator)"
    fi
    if command -v clang >/dev/null 2>&1; then
        echo "== clang: -Werror + AddressSanitizer + UndefinedBehaviorSanitizer"
        CC=clang configure_build build/clang-asan -DCMAKE_BUILD_TYPE=Debug -DSLOPE_WERROR=ON \
            -DSLOPE_SANITIZE=address,undefined
        (cd build/clang-asan && ctest --output-on-failure -j "$JOBS")
    else
        echo "== clang stage skipped: clang is not installed (apt-get install clang to add it)"
    fi
    echo "== install, then build a program against it (pkg-config and find_package)"
    tests/install_check.sh build/ci
    echo "run.sh test: every stage passed"
    ;;
*)
    echo "usage: ./run.sh demo [ARGS] | ./run.sh test" >&2
    exit 2
    ;;
esac
