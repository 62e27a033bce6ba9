#!/usr/bin/env bash
# Intel's oneAPI OpenCL CPU runtime beside PoCL, from PyPI, idempotent:
#   bash tools/intel_opencl.sh DIR
#   export $(bash tools/intel_opencl.sh DIR)     # then: clxent devices
# Installs the runtime into a Python virtual environment at DIR (only when it
# is missing or its pins changed: a second run installs nothing and takes well
# under a second), lays out DIR/vendors/ with a link to every .icd of
# /etc/OpenCL/vendors (PoCL's) plus intel.icd naming DIR/lib/libintelocl.so by
# its absolute path, and prints on stdout the one line to export:
#   OCL_ICD_VENDORS=DIR/vendors
# Everything else (pip's progress, notes) goes to stderr.
#
# No other variable is needed. libintelocl.so and libcommon_clang.so carry a
# RUNPATH of $ORIGIN, so the ICD loader's dlopen of the full path finds their
# libraries (libtbb, libimf, libsvml, libirng, libintlc, libocl_svml_*) in
# DIR/lib by itself. Do NOT put DIR/lib on LD_LIBRARY_PATH: it holds Intel's
# own libOpenCL.so.1, which would then replace the system ICD loader (ocl-icd)
# and see no PoCL. What stays unfound without it is optional: TBB looks for
# libtcm.so.1 (thread composability manager) and libirml.so.1 by bare name
# and runs without them.
#
# The wheel intel-opencl-rt only depends on tbb, tcmlib and
# intel-cmplr-lic-rt (a licence file); libimf/libsvml/libirng/libintlc that
# libintelocl.so needs come from intel-cmplr-lib-rt, which it does not declare,
# so it is installed by name here. Without it the .icd loads nothing and the
# Intel platform is silently missing.
#
# Size: the download is about 276 MB (intel-opencl-rt 225 MB, intel-cmplr-lib-rt
# 41.5 MB, tbb 6.9 MB, tcmlib 2.8 MB); DIR takes about 830 MB installed. A
# first run took 17 s here (2 cores, fast mirror), a second run 0.06 s. pip
# may also keep the wheels in its cache (it kept none here); PIP_NO_CACHE_DIR=1
# rules that out.
#
# Note: with OCL_ICD_VENDORS set, Intel may be platform 0 (it was here): ocl-icd
# orders platforms by their device counts, and two one-CPU platforms in
# directory order, which file names do not fix. So "the first device"
# (clxent's default) may be Intel's; pick devices by name (clxent --device
# intel / --device pocl).
# The runtime compiles kernels at every start (no program cache on the CPU
# device): each clxent run on it spends 15-20 s building its kernels.
#
# Environment: INTEL_OPENCL_PYTHON (interpreter for the venv; default
# Debian's /usr/bin/python3, else python3 on PATH).
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: bash tools/intel_opencl.sh DIR" >&2
  exit 2
fi

# Pinned so CI installs the same runtime: intel-opencl-rt and what it pulls in
# (tbb, tcmlib, intel-cmplr-lic-rt), plus intel-cmplr-lib-rt (see above).
pins="intel-opencl-rt==2026.2.0 intel-cmplr-lib-rt==2026.2.0
intel-cmplr-lic-rt==2026.2.0 tbb==2023.2.0 tcmlib==1.6.0"
system_vendors=/etc/OpenCL/vendors

mkdir -p "$1"
dir=$(cd "$1" && pwd)
lib="$dir/lib/libintelocl.so"
stamp="$dir/.intel_opencl_pins"

# Two runs on one DIR at once wait for each other.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.intel_opencl_lock"
  flock 9
fi

# Whether the runtime loads: every library it needs is found (through its
# RUNPATH, without LD_LIBRARY_PATH).
loads() {
  [ -f "$lib" ] || return 1
  local out
  out=$(env -u LD_LIBRARY_PATH ldd "$lib" 2>&1) || return 1
  ! grep -q "not found" <<<"$out"
}

if [ "$(cat "$stamp" 2>/dev/null)" != "$pins" ] || ! loads; then
  rm -f "$stamp"
  if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
    py=${INTEL_OPENCL_PYTHON:-}
    if [ -z "$py" ]; then
      for cand in /usr/bin/python3 python3; do
        if command -v "$cand" >/dev/null 2>&1 \
           && "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then
          py=$cand
          break
        fi
      done
    fi
    if [ -z "$py" ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "intel_opencl: installing python3-venv" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends python3-venv >&2
        py=/usr/bin/python3
      else
        echo "intel_opencl: no python3 with venv; install python3-venv" >&2
        exit 1
      fi
    fi
    echo "intel_opencl: creating the venv $dir with $py" >&2
    "$py" -m venv --clear "$dir" >&2
  fi
  echo "intel_opencl: installing ${pins//$'\n'/ } (~276 MB download)" >&2
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pip install --no-input --disable-pip-version-check \
    --only-binary :all: $pins >&2
  if ! loads; then
    echo "intel_opencl: $lib does not load; missing libraries:" >&2
    env -u LD_LIBRARY_PATH ldd "$lib" 2>&1 | grep "not found" >&2 || true
    exit 1
  fi
  printf '%s\n' "$pins" >"$stamp"
fi

# DIR/vendors: the system's .icd files (linked, so they follow package
# updates) and intel.icd. Stale links are dropped.
vendors="$dir/vendors"
mkdir -p "$vendors"
for f in "$vendors"/*.icd; do
  [ -L "$f" ] || continue
  [ -e "$f" ] || rm -f "$f"
done
for f in "$system_vendors"/*.icd; do
  [ -e "$f" ] || continue
  name=$(basename "$f")
  [ "$name" = intel.icd ] && name=system-intel.icd
  [ "$(readlink "$vendors/$name" 2>/dev/null)" = "$f" ] || ln -sfn "$f" "$vendors/$name"
done
if [ "$(cat "$vendors/intel.icd" 2>/dev/null)" != "$lib" ]; then
  printf '%s\n' "$lib" >"$vendors/intel.icd.tmp"
  mv -f "$vendors/intel.icd.tmp" "$vendors/intel.icd"
fi

echo "OCL_ICD_VENDORS=$vendors"
