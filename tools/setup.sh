#!/usr/bin/env bash
# One-step set-up for a fresh Debian/Ubuntu machine, idempotent:
#   bash tools/setup.sh demo   install what is missing, build, run `clxent demo`
#   bash tools/setup.sh test   install what is missing, build, run every test
#                              on PoCL and on Intel's OpenCL CPU runtime
#   bash tools/setup.sh deps   only install what is missing
# Installs through apt when run as root; otherwise prints the apt line.
# Environment: BUILD_DIR (default build), CLXENT_SETUP_EXTRA (more packages).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-demo}
build=${BUILD_DIR:-build}
# Open MPI: clxent_mpi and `clxent run/bench --shard` (CMake builds
# without it when it is missing; CLXENT_MPI=OFF turns it off).
packages="cmake make gcc libc6-dev pkg-config pocl-opencl-icd ocl-icd-opencl-dev
opencl-c-headers clinfo libcmocka-dev openmpi-bin libopenmpi-dev
${CLXENT_SETUP_EXTRA:-}"
# The tests that compare `clxent run` with PyTorch float64 need Debian's
# torch (they skip without it; the test run should not), and the Python
# package's (python/, tools/python_tests.sh) a venv, cffi, pytest and
# pyopencl.
[ "$mode" = test ] && packages="$packages python3-torch python3-numpy
python3-venv python3-dev python3-cffi python3-wheel python3-pytest python3-pyopencl"

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
  else
    echo "setup: missing packages; run as root or install them first:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi

[ "$mode" = deps ] && exit 0

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCLXENT_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"

case "$mode" in
  demo)
    "$build/clxent" devices
    echo
    "$build/clxent" demo ;;
  test)
    # The device tests are the point: no OpenCL device is a failure here.
    # They run on two drivers: PoCL, and Intel's OpenCL CPU runtime (a
    # vendor driver, from PyPI into $build/intel-opencl; registered beside
    # PoCL through OCL_ICD_VENDORS). Each run names its device: with both
    # registered, "the first device" may be either. A test per core at a
    # time: Intel's runtime compiles each kernel variant on one core, and
    # most of the suite's time there is compiling.
    export CLXENT_REQUIRE_DEVICE=1 CLXENT_REQUIRE_PYTHON=1
    export "$(bash tools/intel_opencl.sh "$build/intel-opencl")"
    for driver in pocl intel; do
      echo "setup: the tests on $driver"
      start=$(date +%s)
      CLXENT_DEVICE=$driver CLXENT_TEST_DEVICE=$driver \
        ctest --test-dir "$build" --output-on-failure --timeout 1500 \
        -j"$(nproc)"
      echo "setup: the tests on $driver passed in $(( $(date +%s) - start ))s"
    done ;;
  build) ;;
  *) echo "usage: bash tools/setup.sh [demo|test|build|deps]" >&2; exit 2 ;;
esac
