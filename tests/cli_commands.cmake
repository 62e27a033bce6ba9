# Whole-program runs of the clxent command. tests/CMakeLists.txt include()s
# this file to register the tests; each test runs this same file in script
# mode (cmake -P), which checks the exit status AND the output, since a
# PASS_REGULAR_EXPRESSION alone would ignore the exit status.
if(CMAKE_SCRIPT_MODE_FILE)
  string(REPLACE "|" ";" ARGS "${ARGS}") # the arguments travel |-joined
  string(REPLACE "|" ";" LAUNCH "${LAUNCH}") # mpiexec and its flags, or ""
  execute_process(COMMAND ${LAUNCH} ${CLI} ${ARGS} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT "${rc}" STREQUAL "${EXPECT_RC}")
    message(FATAL_ERROR "clxent ${ARGS}: exit status ${rc}, expected ${EXPECT_RC}")
  endif()
  if(DEFINED REGEX AND NOT "${out}" MATCHES "${REGEX}")
    message(FATAL_ERROR "clxent ${ARGS}: stdout does not match ${REGEX}")
  endif()
  if(DEFINED ERR_REGEX AND NOT "${err}" MATCHES "${ERR_REGEX}")
    message(FATAL_ERROR "clxent ${ARGS}: stderr does not match ${ERR_REGEX}")
  endif()
  return()
endif()

# clxent_cli_test(NAME RC [REGEX re] [ERR_REGEX re] [TIMEOUT s]
#                 [LAUNCH mpiexec ...] ARGS ...)
function(clxent_cli_test name rc)
  cmake_parse_arguments(T "" "REGEX;ERR_REGEX;TIMEOUT" "ARGS;LAUNCH" ${ARGN})
  list(JOIN T_ARGS "|" joined)
  list(JOIN T_LAUNCH "|" launch)
  set(defs -DCLI=$<TARGET_FILE:clxent_cli> "-DARGS=${joined}"
      "-DLAUNCH=${launch}" -DEXPECT_RC=${rc})
  if(DEFINED T_REGEX)
    list(APPEND defs "-DREGEX=${T_REGEX}")
  endif()
  if(DEFINED T_ERR_REGEX)
    list(APPEND defs "-DERR_REGEX=${T_ERR_REGEX}")
  endif()
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} ${defs} -P ${CMAKE_CURRENT_FUNCTION_LIST_FILE})
  if(DEFINED T_TIMEOUT)
    set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT})
  endif()
endfunction()

clxent_cli_test(cli_version 0 REGEX "clxent [0-9]+\\.[0-9]+\\.[0-9]+"
                ARGS --version)
clxent_cli_test(cli_help 0 REGEX "Subcommands:" ARGS --help)
clxent_cli_test(cli_no_subcommand 2 ARGS)
clxent_cli_test(cli_unknown_subcommand 2 ERR_REGEX "--help" ARGS frobnicate)
clxent_cli_test(cli_devices 0 REGEX "host" ARGS devices)
clxent_cli_test(cli_devices_json 0 REGEX "\"spec\": \"host\"" ARGS devices --json)
clxent_cli_test(cli_devices_select_host 0 REGEX "^host: " ARGS devices --select host)
clxent_cli_test(cli_devices_select_nosuch 1 ERR_REGEX "nosuch"
                ARGS devices --select nosuch)
clxent_cli_test(cli_demo 0 REGEX "0\\.6652.*1\\.4076" ARGS demo)
clxent_cli_test(cli_demo_host 0 REGEX "All values agree with the article"
                ARGS demo --device host)
clxent_cli_test(cli_check_quick 0 REGEX "cases, 0 failed" TIMEOUT 600
                ARGS check --quick)
clxent_cli_test(cli_bench_json 0
                REGEX "\"copy_gbps\": [0-9].*\"roofline_fraction\""
                ARGS bench --shapes 64x1000 --repeat 2 --json)
# An N-d shape: PyTorch's (N, C, d1, d2) through the tensor calls.
clxent_cli_test(cli_bench_nd_json 0
                REGEX "\"op\": \"fused\", \"shape\": \"2x5x3x4\", \"rows\": 24, \"cols\": 5,.*\"gelem_per_s\": [0-9]"
                ARGS bench --shapes 2x5x3x4 --ops fused --repeat 1 --json)
clxent_cli_test(cli_bench_nd_explain 0
                REGEX "\"shape\": \"2x5x3x4\".*\"kernels\": \"xent_check\\+[a-z_0-9+]+ \\("
                ARGS bench --shapes 2x5x3x4 --repeat 1 --ops fused --explain --json)
clxent_cli_test(cli_bench_nd_bad_shape 2 ERR_REGEX "NxCxD1"
                ARGS bench --shapes 2x5x0x4 --ops fused --repeat 1)
clxent_cli_test(cli_run_usage 2 ERR_REGEX "--help" ARGS run --bogus)
clxent_cli_test(cli_run_missing_file 1 ERR_REGEX "missing\\.npy"
                ARGS run --logits missing.npy --targets missing.npy)
# CLXENT_TRACE=1: a line per operation on stderr, naming the kernels, the
# strategy row and the tuning source; bench --explain the same per op.
clxent_cli_test(cli_trace_demo 0
                ERR_REGEX "clxent: cross_entropy 3x3 f32 -> xent_[a-z_0-9+]+ .[a-z_0-9]+ VEC=[0-9]+ KT=[0-9]+ [^)]*. .tuning: [a-z]"
                ARGS demo)
set_tests_properties(cli_trace_demo PROPERTIES ENVIRONMENT "CLXENT_TRACE=1")
clxent_cli_test(cli_bench_explain 0
                REGEX "\"tuning\": \"[^\"]+\".*\"kernels\": \"xent_check\\+[a-z_0-9+]+ \\("
                ARGS bench --shapes 64x1000 --repeat 1 --ops fused --explain --json)
clxent_cli_test(cli_tune_usage 2 ERR_REGEX "--budget" ARGS tune --budget 0)
# The new interface's usage errors, found before any file is read.
clxent_cli_test(cli_run_bad_op 2 ERR_REGEX "--op: 'mse' is not"
                ARGS run --op mse --input x.npy)
clxent_cli_test(cli_run_softmax_grad_out 2
                ERR_REGEX "--grad-out does not apply to --op softmax"
                ARGS run --op softmax --input x.npy --grad-out g.npy)
clxent_cli_test(cli_run_nll_lse_out 2
                ERR_REGEX "--lse-out does not apply to --op nll_loss"
                ARGS run --op nll_loss --input x.npy --targets y.npy --lse-out s.npy)
clxent_cli_test(cli_run_nll_softcap 2
                ERR_REGEX "--softcap does not apply to --op nll_loss"
                ARGS run --op nll_loss --input x.npy --targets y.npy --softcap 5)
clxent_cli_test(cli_run_dim_for_loss 2
                ERR_REGEX "--dim does not apply to --op cross_entropy"
                ARGS run --input x.npy --targets y.npy --dim 1)
clxent_cli_test(cli_run_negative_softcap 2 ERR_REGEX "--softcap must be >= 0"
                ARGS run --input x.npy --targets y.npy --softcap -1)
clxent_cli_test(cli_run_no_input 2 ERR_REGEX "--input is required"
                ARGS run --op softmax --dim 0)

# `clxent run` against PyTorch float64 on every op, shape, option and
# dtype (tools/check_run_vs_torch.py); it needs Debian's /usr/bin/python3
# with python3-torch and python3-numpy and exits 77, a skip, without them.
if(EXISTS /usr/bin/python3)
  set(CLXENT_TORCH_PYTHON /usr/bin/python3)
else()
  find_program(CLXENT_TORCH_PYTHON python3)
endif()
if(CLXENT_TORCH_PYTHON)
  add_test(NAME cli_run_vs_torch
           COMMAND ${CLXENT_TORCH_PYTHON}
                   ${PROJECT_SOURCE_DIR}/tools/check_run_vs_torch.py
                   --clxent $<TARGET_FILE:clxent_cli> --cases 30)
  set_tests_properties(cli_run_vs_torch PROPERTIES SKIP_RETURN_CODE 77
                       TIMEOUT 900)
endif()

# `clxent run --shard` under mpirun against the unsharded run, every grid
# of 2 and 4 ranks (tools/check_run_shard.py; numpy), and `--shard` in a
# command built without MPI.
if(CLXENT_HAVE_MPI AND CLXENT_TORCH_PYTHON)
  add_test(NAME cli_run_shard
           COMMAND ${CLXENT_TORCH_PYTHON}
                   ${PROJECT_SOURCE_DIR}/tools/check_run_shard.py
                   --clxent $<TARGET_FILE:clxent_cli>
                   --mpiexec ${MPIEXEC_EXECUTABLE})
  set_tests_properties(cli_run_shard PROPERTIES TIMEOUT 900)
  clxent_cli_test(cli_run_shard_bad_grid 2 ERR_REGEX "V\\*B = 1"
                  ARGS run --input x.npy --targets y.npy --shard 2x2)
  # bench --shard on 2 ranks: the JSON the issue names
  # (through the script: a PASS_REGULAR_EXPRESSION ignored the exit status)
  clxent_cli_test(cli_bench_shard_json 0 TIMEOUT 300
    REGEX "\"ranks\": 2.*\"slowest_rank_median_ms\".*\"mpi_ms\".*\"exchanged_bytes\": [0-9]+.*2x100x16"
    LAUNCH ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --oversubscribe
           --allow-run-as-root
    ARGS bench --shard vocab --ops fused --shapes 64x1000,2x100x16
         --repeat 2 --json)
  clxent_cli_test(cli_bench_shard_other_op 2 ERR_REGEX "--ops fused"
                  ARGS bench --shard vocab --ops forward)
elseif(NOT CLXENT_HAVE_MPI)
  clxent_cli_test(cli_run_shard_without_mpi 2 ERR_REGEX "built without MPI"
                  ARGS run --input x.npy --targets y.npy --shard vocab)
endif()
clxent_cli_test(cli_run_shard_not_nll 2 ERR_REGEX "--shard does not apply"
                ARGS run --op nll_loss --input x.npy --targets y.npy
                --shard vocab)
# --shard's form and the options it cannot take are usage errors found
# before MPI starts, with MPI or without.
clxent_cli_test(cli_run_shard_negative 2
                ERR_REGEX "--shard: '-1x-1' is not vocab, batch or VxB \\(V"
                ARGS run --input x.npy --targets y.npy --shard -1x-1)
# 3 x 12297829382473034411 is 1 modulo 2^64: one rank, as V*B wraps.
clxent_cli_test(cli_bench_shard_overflow 2
                ERR_REGEX "'3x12297829382473034411' is not vocab, batch or VxB \\(V"
                ARGS bench --shard 3x12297829382473034411 --ops fused
                --shapes 4x10 --repeat 1)
clxent_cli_test(cli_bench_shard_no_host 2
                ERR_REGEX "--no-host does not apply to --shard"
                ARGS bench --shard vocab --ops fused --no-host --shapes 4x10
                --repeat 1)
clxent_cli_test(cli_bench_shard_explain 2
                ERR_REGEX "--explain does not apply to --shard"
                ARGS bench --shard vocab --ops fused --explain --shapes 4x10
                --repeat 1)
# Sizes past the library's limits would wrap the buffers' byte counts.
clxent_cli_test(cli_bench_shard_huge_shape 2
                ERR_REGEX "4611686018427387904x1 exceeds the limit"
                ARGS bench --device host --shard 1x1 --ops fused --repeat 1
                --shapes 4611686018427387904x1)
# The reader looks at the header before reading on: /dev/zero ends there.
clxent_cli_test(cli_run_input_dev_zero 1
                ERR_REGEX "/dev/zero: not a \\.npy file"
                ARGS run --device host --input /dev/zero --targets y.npy)
