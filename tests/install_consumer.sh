#!/usr/bin/env bash
# Installs a built clxent into a temporary prefix, checks what landed
# there, then builds tests/consumer against that copy through the CMake
# package and through pkg-config (shared and static each) and runs every
# build on the default device (CLXENT_DEVICE or the default rule).
# Usage: install_consumer.sh BUILD_DIR SOURCE_DIR WORK_DIR
# Env: CMAKE (default cmake), CLXENT_SANITIZE (sanitizers the library was
# built with; the consumers get the same). Exit 77 (CTest skip) when there is no OpenCL
# device and CLXENT_REQUIRE_DEVICE is not 1, as the consumer reports.
set -euo pipefail
build=$1 src=$2 work=$3
cmake=${CMAKE:-cmake}
prefix=$work/prefix
san=${CLXENT_SANITIZE:+-fsanitize=$CLXENT_SANITIZE}
rm -rf "$work"
mkdir -p "$work"

step() { echo "== $*"; }
fail() { echo "install_consumer: $*" >&2; exit 1; }

step "cmake --install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" \
  || { cat "$work/install.log"; fail "cmake --install failed"; }

# GNUInstallDirs may pick lib or lib64 (or lib/<multiarch> under /usr).
libdir=$(dirname "$(find "$prefix" -name 'libclxent.so' | head -n1)")
[ -n "$libdir" ] && [ -d "$libdir" ] || fail "no libclxent.so installed"
major=$(sed -n 's/^#define CLXENT_VERSION_MAJOR \([0-9]*\).*/\1/p' \
  "$src/host/include/clxent/clxent.h")
for f in "$libdir/libclxent.a" "$libdir/libclxent.so.$major" \
         "$prefix/include/clxent/clxent.h" "$prefix/bin/clxent" \
         "$prefix/share/man/man1/clxent.1" \
         "$libdir/cmake/clxent/clxentConfig.cmake" \
         "$libdir/cmake/clxent/clxentConfigVersion.cmake" \
         "$libdir/cmake/clxent/clxentTargets.cmake" \
         "$libdir/pkgconfig/clxent.pc"; do
  [ -e "$f" ] || fail "missing after install: $f"
done
soname=$(objdump -p "$libdir/libclxent.so" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = "libclxent.so.$major" ] \
  || fail "SONAME is '$soname', expected libclxent.so.$major"
cmp -s "$prefix/include/clxent/clxent.h" "$src/host/include/clxent/clxent.h" \
  || fail "installed header differs from the source header"
version=$("$prefix/bin/clxent" --version)
[[ "$version" == clxent* ]] || fail "installed clxent --version printed nothing useful"
# No internal symbol may leak from the shared library.
leaked=$(nm -D --defined-only "$libdir/libclxent.so" | awk '{print $3}' \
  | grep -v '^clxent_' | grep -v '^_' || true)
[ -z "$leaked" ] || fail "non-clxent_ symbols exported: $leaked"

step "CMake package: find_package(clxent CONFIG)"
"$cmake" -S "$src/tests/consumer" -B "$work/cmake" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" >"$work/cmake.log" \
  || { cat "$work/cmake.log"; fail "configuring the CMake consumer failed"; }
"$cmake" --build "$work/cmake" >>"$work/cmake.log" 2>&1 \
  || { cat "$work/cmake.log"; fail "building the CMake consumer failed"; }
# SameMajorVersion: asking for the next major must fail.
if "$cmake" -S "$src/tests/consumer" -B "$work/cmake-major" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCLXENT_WANTED_VERSION=$((major + 1)).0 \
    >"$work/cmake-major.log" 2>&1; then
  fail "find_package(clxent $((major + 1)).0) accepted version $major.x"
fi

step "pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists clxent || fail "pkg-config does not find clxent.pc"
[[ "$(pkg-config --print-requires-private clxent)" == *OpenCL* ]] \
  || fail "clxent.pc lacks Requires.private: OpenCL"
mkdir -p "$work/pc"
make -s -C "$src/tests/consumer" O="$work/pc" \
  CFLAGS="-O2 -std=c11 -Wall -Wextra -Werror $san" >"$work/pc.log" 2>&1 \
  || { cat "$work/pc.log"; fail "building the pkg-config consumer failed"; }

# The shared builds must load the installed library, not the build tree's.
# (ldd into a variable first: grep -q closing the pipe early would trip
# pipefail.)
for exe in "$work/cmake/consumer_cmake" "$work/pc/consumer_pc"; do
  libs=$(ldd "$exe")
  [[ "$libs" == *"=> $libdir/libclxent.so.$major "* ]] \
    || { echo "$libs"; fail "$exe does not load $libdir/libclxent.so.$major"; }
done
for exe in "$work/cmake/consumer_cmake_static" "$work/pc/consumer_pc_static"; do
  libs=$(ldd "$exe")
  [[ "$libs" != *libclxent* ]] || fail "$exe is not static in clxent"
done

status=0
for exe in "$work/cmake/consumer_cmake" "$work/cmake/consumer_cmake_static" \
           "$work/pc/consumer_pc" "$work/pc/consumer_pc_static"; do
  step "run $(basename "$exe")"
  rc=0
  "$exe" || rc=$?
  if [ "$rc" = 77 ]; then exit 77; fi
  [ "$rc" = 0 ] || { echo "install_consumer: $exe exited $rc" >&2; status=1; }
done
exit $status
