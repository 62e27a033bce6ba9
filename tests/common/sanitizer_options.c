/* The options a sanitizer build's tests run with, built into every test
 * program (tests/CMakeLists.txt) so that a plain `ctest` passes with
 * nothing set by hand; the runtimes call these before main, and a
 * variable in the environment (ASAN_OPTIONS, ...) still overrides them.
 * The strings are tests/CMakeLists.txt's, which hands the same ones to the
 * tests that run other programs (the command, the examples) through their
 * environment. In a build without sanitizers nothing calls them. */

#ifndef CLXENT_ASAN_OPTIONS
#error "CLXENT_ASAN_OPTIONS, CLXENT_UBSAN_OPTIONS and CLXENT_LSAN_OPTIONS come from tests/CMakeLists.txt"
#endif

#define VISIBLE __attribute__((visibility("default"), used))

VISIBLE const char *__asan_default_options(void);
VISIBLE const char *__ubsan_default_options(void);
VISIBLE const char *__lsan_default_options(void);

/* allocator_may_return_null: the tests ask for absurd sizes on purpose
 * (SIZE_MAX bytes, say) and expect OUT_OF_MEMORY, not an abort inside the
 * allocator. */
const char *__asan_default_options(void) { return CLXENT_ASAN_OPTIONS; }
const char *__ubsan_default_options(void) { return CLXENT_UBSAN_OPTIONS; }
/* Suppressions (tools/lsan.supp): leaks inside the OpenCL driver stack. */
const char *__lsan_default_options(void) { return CLXENT_LSAN_OPTIONS; }
