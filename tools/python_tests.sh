#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest) against the library in
# BUILD_DIR, in a fresh virtual environment, as a user installs it:
#   bash tools/python_tests.sh BUILD_DIR [pytest arguments]
# The venv (BUILD_DIR/python-venv, made with --system-site-packages) sees
# Debian's numpy, cffi, pytest, torch and pyopencl; the package is built
# from a copy of python/ in BUILD_DIR, so builds of several trees never
# share build files. Exits 77 (CTest's skip) when Debian's Python lacks
# what it needs, unless CLXENT_REQUIRE_PYTHON=1 (tools/setup.sh test).
set -euo pipefail
build=$(cd "$1" && pwd)
shift
tree=$(cd "$(dirname "$0")/.." && pwd)
python=${CLXENT_PYTHON:-/usr/bin/python3}

need="python3-venv python3-dev python3-cffi python3-pytest python3-numpy"
if ! "$python" -c "import venv, cffi, pytest, numpy, sysconfig, os, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
    2>/dev/null; then
  echo "python_tests: $python lacks venv, cffi, pytest, numpy or Python.h;"
  echo "  apt-get install -y $need python3-torch python3-pyopencl"
  [ "${CLXENT_REQUIRE_PYTHON:-0}" = 1 ] && exit 1
  exit 77
fi

venv=$build/python-venv
rm -rf "$venv" "$build/python-src"
"$python" -m venv --system-site-packages "$venv"
cp -r "$tree/python" "$build/python-src"
rm -rf "$build/python-src/build" "$build/python-src"/*.egg-info
CLXENT_INCLUDE_DIR=$tree/host/include CLXENT_LIBRARY_DIR=$build \
  "$venv/bin/pip" install -q --no-build-isolation --no-deps "$build/python-src"
# From outside the source tree, so `import clxent` is the installed package.
cd "$build"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$tree/python/tests" "$@"
