#!/usr/bin/env bash
# Hardening stages CI runs after the main test job (issue 5). Standalone:
#   bash tools/ci_hardening.sh [asan] [oclgrind] [fuzz] [valgrind]
# (no argument: all four, in that order). Installs clang, libclang-rt-14-dev,
# oclgrind and valgrind through apt when root. Build folders: build-asan,
# build-fuzz and build-hard (plain build for Oclgrind and valgrind).
# Environment: FUZZ_SECONDS (per harness, shared out on fewer than 3
# jobs: see stage_fuzz; default 60), FUZZ_SEED (default 1:
# CI explores the same inputs each run, so a verdict is reproducible; set
# it to 0 for a random seed when hunting), JOBS (default
# nproc), CLXENT_FUZZ_DEVICE (device spec for fuzz_api and fuzz_nd,
# default: first OpenCL device).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-60}
stages=${*:-asan oclgrind fuzz valgrind}

# ---- packages: the project's set plus the hardening tools ----
CLXENT_SETUP_EXTRA="clang libclang-rt-14-dev oclgrind valgrind" \
  bash tools/setup.sh deps

export CLXENT_REQUIRE_DEVICE=1
summary=""
stage_start=0
begin() {
  stage_start=$(date +%s)
  echo
  echo "==== hardening: $1 ===="
}
end() {
  local t=$(( $(date +%s) - stage_start ))
  echo "==== hardening: $1 passed in ${t}s ===="
  summary="$summary$(printf '%-10s %5ss\n' "$1" "$t")"$'\n'
}

# Programs side by side, $jobs at a time: `in_background LOG command...`
# starts one with its output in LOG (assignments before the call reach
# the command); `background_done WHAT` waits for them all, prints each log
# in turn and fails the stage if any failed.
bg_pids=()
bg_logs=()
in_background() {
  local log=$1
  shift
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  "$@" >"$log" 2>&1 &
  bg_pids+=($!)
  bg_logs+=("$log")
}
background_done() {
  local i failed=0
  for i in "${!bg_pids[@]}"; do
    wait "${bg_pids[$i]}" || { failed=1; echo "$1: ${bg_logs[$i]} failed"; }
  done
  for i in "${!bg_logs[@]}"; do
    echo "-- ${bg_logs[$i]}"
    cat "${bg_logs[$i]}"
  done
  bg_pids=()
  bg_logs=()
  if [ "$failed" != 0 ]; then
    echo "hardening: $1 failed (above)" >&2
    exit 1
  fi
}

# ---- (a) the whole test suite under AddressSanitizer + UBSan + LSan ----
stage_asan() {
  begin asan
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCLXENT_WERROR=ON \
    -DCLXENT_SANITIZE=address,undefined >/dev/null
  cmake --build build-asan -j"$jobs"
  # The tests carry their sanitizer options (tests/CMakeLists.txt), so the
  # suite runs as a developer would run it (a test per core at a time).
  ctest --test-dir build-asan --output-on-failure --timeout 1500 -j"$jobs"
  end asan
}

# ---- (b) every kernel under Oclgrind: races, uninitialised reads, API ----
# One run of `clxent check --quick` under Oclgrind: LOG prefix, CLXENT_VEC
# value ("" for the device default), extra Oclgrind flags. Under `oclgrind`
# the OpenCL calls go to Oclgrind's own runtime: its simulator is the only
# platform, selected by name. -cl-opt-disable: Debian's Oclgrind (21.10)
# aborts its --uninitialized plugin on the LLVM `freeze` instruction that
# the optimiser emits for integer division; unoptimised kernels are checked
# instead (same source, same accesses). Any diagnostic fails the stage.
oclgrind_pass() {
  local log=$1 vec=$2
  shift 2
  rm -f "$log.diag"
  set +e
  CLXENT_VEC=$vec oclgrind --data-races --check-api "$@" --num-threads "$jobs" \
    --build-options "-cl-opt-disable" --log "$log.diag" \
    build-hard/clxent check --device oclgrind --quick >"$log" 2>&1
  local rc=$?
  set -e
  cat "$log"
  [ -s "$log.diag" ] && cat "$log.diag"
  if [ "$rc" != 0 ]; then
    echo "hardening: clxent check under Oclgrind (CLXENT_VEC=$vec) exited $rc" >&2
    exit 1
  fi
  if ! grep -qi "oclgrind" "$log"; then
    echo "hardening: the check did not run on the Oclgrind device" >&2
    exit 1
  fi
  if [ -s "$log.diag" ] || grep -Eq "OCLGRIND|[Dd]ata race|Uninitiali[sz]ed value|Invalid (read|write)" "$log"; then
    echo "hardening: Oclgrind reported problems (above)" >&2
    exit 1
  fi
}

# The kernels as standalone OpenCL C (their #include lines resolved by
# clang's own preprocessor, the headers guarded): every file under the
# build options the host combines, with -Wall -Werror. A diagnostic fails
# the stage (PoCL prints kernel warnings on stderr at run time otherwise).
kernel_lint() {
  local f v t g s out
  for f in kernels/*.cl; do
    for v in 1 4 8 16; do for t in 0 1 2; do for g in 0 1 2; do for s in 0 1; do
      out=$(clang -x cl -cl-std=CL1.2 -Xclang -finclude-default-header \
        -fsyntax-only -Wall -Werror -Ikernels -DVEC=$v -DX_T=$t \
        -DY_T=$(( (t + 1) % 3 )) -DTGT=$g -DSMOOTH=$s "$f" 2>&1) || {
        echo "$out"
        echo "hardening: $f does not compile cleanly (VEC=$v X_T=$t TGT=$g SMOOTH=$s)" >&2
        exit 1
      }
    done; done; done; done
  done
  # the logit transforms (XF), nd_cached_fused's private rows (NDC),
  # nd_kept_fused (NDKEPT, with NDU vectors per item), the N-d
  # prefetches (PREFETCH) and tails in pieces (ND_PIECES)
  for f in kernels/*.cl; do
    for v in 1 4 16; do for t in 0 1 2; do for g in 0 2; do for xf in 0 1; do
      out=$(clang -x cl -cl-std=CL1.2 -Xclang -finclude-default-header \
        -fsyntax-only -Wall -Werror -Ikernels -DVEC=$v -DX_T=$t \
        -DY_T=$(( (t + 1) % 3 )) -DTGT=$g -DXF=$xf -DNDC=16 -DNDK=1 -DNDKEPT=1 -DNDU=2 -DPREFETCH=1 -DND_PIECES=1 "$f" 2>&1) || {
        echo "$out"
        echo "hardening: $f does not compile cleanly (VEC=$v X_T=$t TGT=$g XF=$xf NDC=16 NDK=1 NDKEPT=1 NDU=2 PREFETCH=1 ND_PIECES=1)" >&2
        exit 1
      }
    done; done; done; done
  done
  # every kernel declared with KERNEL (vec_type_hint under VEC > 1,
  # kernels/common.h), but the two that measured faster without it
  local plain
  plain=$(grep -n '^kernel void' kernels/*.cl |
    grep -Ev 'kernel void (sm_rows|sm_rows1)\(' || true)
  if [ -n "$plain" ]; then
    echo "$plain"
    echo "hardening: kernels declared without KERNEL (kernels/common.h)" >&2
    exit 1
  fi
  echo "kernel lint: every kernels/*.cl compiles without warnings;" \
    "every kernel but sm_rows/sm_rows1 declared with KERNEL"
}

# The sharded-vocabulary kernels (kernels/shard.cl: partial, combine, den,
# final, bwd) under Oclgrind: test_shard's cases, the device's own mapping
# with every check, then VEC 16 (the vector loads) without --uninitialized
# (see above). Any diagnostic fails the stage.
oclgrind_shard() {
  local vec log flags rc
  for vec in "" 16; do
    log=build-hard/oclgrind-shard${vec}
    flags="--data-races --check-api"
    [ -z "$vec" ] && flags="$flags --uninitialized"
    rm -f "$log.diag"
    set +e
    CLXENT_VEC=$vec CLXENT_REQUIRE_DEVICE=1 CLXENT_TEST_DEVICE=oclgrind \
      oclgrind $flags --num-threads "$jobs" --build-options "-cl-opt-disable" \
      --log "$log.diag" build-hard/tests/test_shard >"$log" 2>&1
    rc=$?
    set -e
    grep -v "warnings generated" "$log" | tail -20
    [ -s "$log.diag" ] && head -100 "$log.diag"
    if [ "$rc" != 0 ] || ! grep -q "OK \] test_equality_device" "$log"; then
      echo "hardening: test_shard under Oclgrind (CLXENT_VEC=$vec) failed (rc $rc)" >&2
      exit 1
    fi
    if [ -s "$log.diag" ] ||
       grep -Eq "OCLGRIND|[Dd]ata race|Uninitiali[sz]ed value|Invalid (read|write)" "$log"; then
      echo "hardening: Oclgrind reported problems in the shard kernels (above)" >&2
      exit 1
    fi
  done
}

stage_oclgrind() {
  begin oclgrind
  kernel_lint
  cmake -S . -B build-hard -DCMAKE_BUILD_TYPE=Release -DCLXENT_WERROR=ON \
    >/dev/null
  cmake --build build-hard -j"$jobs" --target clxent_cli test_nd \
    test_nd_bits test_shard
  # The device's own mapping (Oclgrind is taken for a GPU: one element
  # per work-item) with every check, then the CPU mapping (16-wide vectors,
  # the lanes kernels, and with CLXENT_GCACHE=1 the fused kernels that
  # cache the exps) without --uninitialized: Oclgrind flags the
  # .lo/.hi halves of a fully initialised float16 as uninitialised
  # (reproduced with a five-line kernel), so only races, bounds and the API
  # are checked there.
  oclgrind_pass build-hard/oclgrind "" --uninitialized
  CLXENT_GCACHE=1 oclgrind_pass build-hard/oclgrind-vec16 16
  # The batch kernels (16 rows per item, VEC 16) in place of the lanes
  # kernels for every forward and fused case with class indices (16-bit
  # fused: the exps in local memory, where they fit).
  CLXENT_BATCH=1 oclgrind_pass build-hard/oclgrind-batch 16
  # The split kernels, which the quick grid's sizes never reach on their
  # own: 3 chunks per row with groups of 2 items (the states merged by the
  # tree and in turn).
  CLXENT_SPLIT_CHUNKS=3 CLXENT_WORK_GROUP_SIZE=2 \
    oclgrind_pass build-hard/oclgrind-split "" --uninitialized
  # The N-d kernels and the staging of strided per-row arrays, which the
  # check's 2-D shapes never reach: test_nd's quick grid and test_nd_bits,
  # both mappings.
  JOBS=$jobs bash tests/oclgrind_nd.sh build-hard
  oclgrind_shard
  end oclgrind
}

# ---- (c) the libFuzzer harnesses, bounded time each, on the seed corpus ----
stage_fuzz() {
  begin fuzz
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DCLXENT_FUZZ=ON -DCLXENT_BUILD_TESTS=OFF -DCLXENT_WERROR=ON \
    -DCLXENT_SANITIZE=address,undefined >/dev/null
  cmake --build build-fuzz -j"$jobs" --target fuzz_api fuzz_nd fuzz_npy
  # The three harnesses at once (each runs on one core). With fewer
  # cores their seconds are shared out so that the stage still lasts
  # about FUZZ_SECONDS: on two, fuzz_npy (a parser) follows fuzz_api in
  # one slot while fuzz_nd has the other.
  local h secs t=$fuzz_seconds
  for h in api nd npy; do
    case "$jobs:$h" in
      1:npy) secs=$((t / 5)) ;;
      1:*) secs=$((t * 2 / 5)) ;;
      2:api) secs=$((t * 2 / 3)) ;;
      2:npy) secs=$((t / 3)) ;;
      *) secs=$t ;;
    esac
    # New inputs go to a scratch copy; the committed seeds stay as they are.
    local work=build-fuzz/corpus_$h
    mkdir -p "$work" build-fuzz/artifacts
    cp -n tests/fuzz/corpus_$h/* "$work"/ 2>/dev/null || true
    echo "-- fuzz_$h for ${secs}s"
    ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:detect_odr_violation=0 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$root/tools/lsan.supp:print_suppressions=0 \
      in_background build-fuzz/fuzz_$h.log \
      build-fuzz/tests/fuzz/fuzz_$h -max_total_time="$secs" \
        -seed="${FUZZ_SEED:-1}" \
        -timeout=30 -rss_limit_mb=4096 -max_len=8192 -print_final_stats=1 \
        -artifact_prefix=build-fuzz/artifacts/ "$work" tests/fuzz/corpus_$h
  done
  background_done fuzz
  end fuzz
}

# ---- (d) valgrind memcheck over the host-backend tests ----
stage_valgrind() {
  begin valgrind
  cmake -S . -B build-hard -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCLXENT_WERROR=ON >/dev/null
  cmake --build build-hard -j"$jobs" --target test_host_reference \
    test_host_reference_edges test_bad_input test_bad_input_nd \
    test_determinism test_threads test_host_memory
  local vg="valgrind --tool=memcheck --error-exitcode=1 --leak-check=full
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
    --track-origins=yes --quiet --suppressions=$root/tools/valgrind.supp"
  # The host-backend parts only: with CLXENT_TEST_DEVICE=host the device
  # fixture skips the tests' device halves, so no OpenCL context is
  # created and no driver code runs under valgrind.
  local t
  for t in test_host_reference test_host_reference_edges test_bad_input \
      test_bad_input_nd test_determinism test_threads test_host_memory; do
    CLXENT_REQUIRE_DEVICE=0 CLXENT_TEST_DEVICE=host CMOCKA_TEST_ABORT=1 \
      in_background build-hard/valgrind-$t.log $vg build-hard/tests/$t
  done
  background_done valgrind
  end valgrind
}

total_start=$(date +%s)
for s in $stages; do
  case "$s" in
    asan|oclgrind|fuzz|valgrind) "stage_$s" ;;
    *) echo "usage: bash tools/ci_hardening.sh [asan] [oclgrind] [fuzz] [valgrind]" >&2
       exit 2 ;;
  esac
done
echo
echo "==== hardening summary ===="
printf '%s' "$summary"
echo "total      $(( $(date +%s) - total_start ))s"
