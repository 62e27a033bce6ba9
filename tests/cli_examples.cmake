# The examples as CTest entries, and the check that README.md shows
# exactly examples/readme_example.c. This file is include()d by
# tests/CMakeLists.txt to register the tests, and run with `cmake -P` by
# them to do the checks (CMAKE_SCRIPT_MODE_FILE tells which).
if(NOT CMAKE_SCRIPT_MODE_FILE)
  set(_clxent_ex ${CMAKE_CURRENT_LIST_FILE})
  # The seed article's batch: mean loss 1.4076, gradient (softmax-onehot)/3.
  foreach(device default host)
    set(_env "")
    if(device STREQUAL "host")
      set(_env "CLXENT_DEVICE=host")
    endif()
    add_test(NAME example_readme_${device}
      COMMAND ${CMAKE_COMMAND} -DMODE=run -DEXE=$<TARGET_FILE:readme_example>
        "-DEXPECT=loss 1\\.4076\ngrad -0\\.3033  0\\.0816  0\\.2217\ngrad  0\\.0300 -0\\.2518  0\\.2217\ngrad  0\\.0300  0\\.0816 -0\\.1116\n"
        -P ${_clxent_ex})
    set_tests_properties(example_readme_${device} PROPERTIES
      TIMEOUT 120 ENVIRONMENT "${_env}")
  endforeach()
  add_test(NAME example_interop_training
    COMMAND ${CMAKE_COMMAND} -DMODE=run -DMAY_SKIP=1
      -DEXE=$<TARGET_FILE:interop_training> "-DEXPECT=fell below half"
      -P ${_clxent_ex})
  # The program exits 77 without an OpenCL device, unless
  # CLXENT_REQUIRE_DEVICE=1 makes that a failure.
  set_tests_properties(example_interop_training PROPERTIES TIMEOUT 120
    SKIP_REGULAR_EXPRESSION "SKIPPED: no OpenCL device")
  # The vocabulary split over every device and the host backend, against
  # the unsharded call (it prints both and exits 1 past 1e-5).
  add_test(NAME example_sharded_vocab
    COMMAND ${CMAKE_COMMAND} -DMODE=run
      -DEXE=$<TARGET_FILE:sharded_vocab> "-DEXPECT=sharded over [0-9]+ devices"
      -P ${_clxent_ex})
  set_tests_properties(example_sharded_vocab PROPERTIES TIMEOUT 300)
  add_test(NAME example_readme_in_readme
    COMMAND ${CMAKE_COMMAND} -DMODE=readme
      -DREADME=${PROJECT_SOURCE_DIR}/README.md
      -DEXAMPLE=${PROJECT_SOURCE_DIR}/examples/readme_example.c
      -P ${_clxent_ex})
  return()
endif()

if(MODE STREQUAL "run")
  # Runs EXE; passes when it exits 0 and its stdout contains EXPECT (a
  # regular expression). With MAY_SKIP, exit 77 means no OpenCL device:
  # reported as a skip (the test's SKIP_REGULAR_EXPRESSION); from the
  # others it is a failure like any exit but 0.
  execute_process(COMMAND ${EXE} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  message("${out}${err}")
  if(rc EQUAL 77 AND MAY_SKIP)
    message("SKIPPED: no OpenCL device")
    return()
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${EXE} exited with ${rc}")
  endif()
  if(NOT out MATCHES "${EXPECT}")
    message(FATAL_ERROR "${EXE}: output does not match:\n${EXPECT}")
  endif()
elseif(MODE STREQUAL "readme")
  # The C block between the markers must be the example file, byte for
  # byte (after the ```c fence lines).
  file(READ "${README}" readme)
  file(READ "${EXAMPLE}" example)
  set(begin "<!-- readme-example:begin -->")
  set(end "<!-- readme-example:end -->")
  string(FIND "${readme}" "${begin}" b)
  string(FIND "${readme}" "${end}" e)
  if(b EQUAL -1 OR e EQUAL -1 OR e LESS b)
    message(FATAL_ERROR "README.md lacks the markers ${begin} ... ${end}")
  endif()
  string(LENGTH "${begin}" blen)
  math(EXPR start "${b} + ${blen}")
  math(EXPR len "${e} - ${start}")
  string(SUBSTRING "${readme}" ${start} ${len} block)
  if(NOT block MATCHES "^[ \t\r\n]*```c[ \t]*\r?\n(.*\n)```[ \t\r\n]*$")
    message(FATAL_ERROR "README.md: no single ```c block between the markers")
  endif()
  set(code "${CMAKE_MATCH_1}")
  if(NOT code STREQUAL example)
    file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme_block.c" "${code}")
    message(FATAL_ERROR "README.md's example differs from ${EXAMPLE}; "
      "see: diff ${EXAMPLE} ${CMAKE_CURRENT_BINARY_DIR}/readme_block.c")
  endif()
  message("README.md shows examples/readme_example.c exactly")
else()
  message(FATAL_ERROR "cli_examples.cmake: unknown MODE '${MODE}'")
endif()
