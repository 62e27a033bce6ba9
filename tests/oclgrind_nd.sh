#!/usr/bin/env bash
# The N-d kernels (kernels/nd.cl, nd_kept.cl: nd_fused, nd_kept_fused,
# nd_kept_fwd, nd_kept_bwd and nd_kept_sm (also with the nd_wide rows'
# online passes), nd_cached_fused, nd_chunked_fused, nd_fwd, nd_bwd, nd_sm,
# nd_nll_bwd) and the
# staging kernels they need (stage_rows, z_rows) under Oclgrind: test_nd's
# quick grid (CLXENT_ND_QUICK=1, small shapes), then test_nd_bits (the
# matrix calls against the _nd calls on the quick shapes, bad labels,
# interleaved outputs) on Oclgrind's simulator, each with
# the device's own mapping and every check, then the CPU mapping (VEC 16: the
# vector loads; VEC 4 and 8 at the inner extents nd_narrow gives them to)
# with the CPU class's N-d thresholds from a tuning file (tails in pieces,
# nd_tail_pieces 1)
# (Oclgrind gets the GPU defaults, under which the kept, cached and chunked
# kernels never run), except nd_prefetch 0 (Oclgrind cannot run llvm.prefetch),
# without --uninitialized (Oclgrind flags the halves of an initialised float16;
# see tools/ci_hardening.sh). `clxent check --quick` runs 2-D shapes only,
# which never reach these kernels. -cl-opt-disable as in ci_hardening.sh
# (Debian's Oclgrind aborts on `freeze`).
# Usage: bash tests/oclgrind_nd.sh BUILD_DIR   (the build of test_nd and
# test_nd_bits)
set -euo pipefail
build=${1:?usage: oclgrind_nd.sh BUILD_DIR}
jobs=${JOBS:-$(nproc)}
# run LOG VEC PROGRAM WHAT [oclgrind flags]: PROGRAM under Oclgrind; its
# log must show that WHAT ran on the Oclgrind device (the line
# "WHAT on <device> (<platform>)" the test prints).
run() {
  local log=$1 vec=$2 prog=$3 what=$4
  shift 4
  rm -f "$log.diag"
  set +e
  CLXENT_ND_QUICK=1 CLXENT_REQUIRE_DEVICE=1 CLXENT_TEST_DEVICE=oclgrind \
    CLXENT_VEC=$vec oclgrind --data-races --check-api "$@" \
    --num-threads "$jobs" --build-options "-cl-opt-disable" \
    --log "$log.diag" "$build/tests/$prog" >"$log" 2>&1
  local rc=$?
  set -e
  grep -v "warnings generated" "$log" | tail -40
  [ -s "$log.diag" ] && head -100 "$log.diag"
  if [ "$rc" != 0 ]; then
    echo "oclgrind_nd: $prog under Oclgrind (CLXENT_VEC=$vec) exited $rc" >&2
    return 1
  fi
  if ! grep -qi "$what on.*oclgrind" "$log"; then
    echo "oclgrind_nd: $prog: the $what did not run on the Oclgrind device" >&2
    return 1
  fi
  if [ -s "$log.diag" ] ||
     grep -Eq "OCLGRIND|[Dd]ata race|Uninitiali[sz]ed value|Invalid (read|write)" "$log"; then
    echo "oclgrind_nd: Oclgrind reported problems (above)" >&2
    return 1
  fi
}
cpu_nd=$build/oclgrind-nd-cpu.tuning
cat >"$cpu_nd" <<'EOF'
clxent-tuning 1
name oclgrind-cpu-nd
note the CPU class's N-d thresholds (opencl/tuning/params.h), for the VEC 16 run
param nd_kept_cmax 1024
param nd_cached_cmax 256
param nd_chunked 1
param nd_wide 1
param nd_wide_cmin 1024
param nd_wide16_cmin 256
param nd_wide_unroll 16
param nd_unroll 4
param nd_prefetch 0
param nd_narrow 1
param nd_tail_pieces 1
EOF
status=0
run "$build/oclgrind-nd" "" test_nd grid --uninitialized || status=1
CLXENT_TUNING_FILE=$cpu_nd run "$build/oclgrind-nd-vec16" 16 test_nd grid ||
  status=1
run "$build/oclgrind-nd-bits" "" test_nd_bits "matrix vs nd" \
  --uninitialized || status=1
CLXENT_TUNING_FILE=$cpu_nd run "$build/oclgrind-nd-bits-vec16" 16 \
  test_nd_bits "matrix vs nd" || status=1
exit $status
