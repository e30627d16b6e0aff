#!/usr/bin/env bash
# install_check.sh BUILD_DIR - install slope from BUILD_DIR into a temporary
# prefix, then build and run a small program against it twice: with
# pkg-config and with CMake's find_package(slope).
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cat > "$tmp/app.c" <<'C'
#include <slope.h>
#include <stdio.h>
int main(void) {
    sl_tape *t = sl_tape_new();
    sl_var *x = sl_scalar(t, 0.0, SL_GRAD);
    sl_var *y = sl_sigmoid(t, x);
    if (sl_backward(t, y) != SL_OK) return 1;
    double g = sl_grad(x)[0];
    sl_tape_free(t);
    printf("sigmoid'(0) = %g\n", g);
    return g == 0.25 ? 0 : 1;
}
C
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1)
PKG_CONFIG_PATH="$libdir" cc "$tmp/app.c" -o "$tmp/app-pc" \
    $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs slope)
"$tmp/app-pc"
cat > "$tmp/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(app C)
find_package(slope REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE slope::slope)
CM
cmake -S "$tmp" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/b" >/dev/null
"$tmp/b/app"
echo "install_check: pkg-config and find_package consumers built and ran"
