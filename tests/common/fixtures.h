/* The tests' shared toolkit: contexts, random data, storage types,
 * buffers, and the tolerance that understands NaN and infinities. The
 * random generator and the f32/f16/bf16 conversions are the clxent
 * command's (commands.h), so `clxent check` and the tests draw and
 * convert the same way; the operations are the command's table (ops.h).
 * Brings in cmocka with its prerequisites. */
#ifndef CLXENT_TEST_FIXTURES_H
#define CLXENT_TEST_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <clxent/clxent.h>

#include "commands.h"
#include "ops.h"
#include "tolerance.h"

/* ---- contexts ---- */

/* A new context on the first OpenCL device (CLXENT_TEST_DEVICE overrides
 * the spec). Without one: NULL and the test is skipped, unless
 * CLXENT_REQUIRE_DEVICE=1, when the test fails instead. */
clxent_context *fx_device_context(void);
/* A new context on the host backend; fails the test if it cannot. */
clxent_context *fx_host_context(void);
/* 1 when CLXENT_REQUIRE_DEVICE=1 is set. */
int fx_device_required(void);

/* The group's contexts, each made on first use (so host-only tests run,
 * and skip or fail per CLXENT_REQUIRE_DEVICE only where a device is asked
 * for) and destroyed by fx_group_teardown, a cmocka group teardown. */
clxent_context *fx_host(void);
clxent_context *fx_device(void);
int fx_group_teardown(void **state);
/* Runs the group's tests (with fx_group_teardown), or with a first
 * argument only some: a comma-separated list of names or patterns (* and
 * ?), or after a leading '!' all but those. CTest runs the longest
 * programs in parts this way, side by side under `ctest -j`
 * (tests/CMakeLists.txt). A pattern that names no test, or a selection
 * of none, fails the run: a part renamed away would otherwise pass by
 * running nothing. */
#define fx_run_tests(tests, argc, argv)                                        \
    fx_run_selected(#tests, tests, sizeof(tests) / sizeof((tests)[0]), argc,  \
                    argv)
int fx_run_selected(const char *group, const struct CMUnitTest *tests,
                    size_t n, int argc, char **argv);
/* Per test (cmocka setup and teardown): *state is a new host context. */
int fx_setup_host(void **state);
int fx_teardown_context(void **state);

/* Runs body on two new contexts of one backend (device: the OpenCL
 * device, skipping or failing like fx_device_context; else the host),
 * the second for arguments of another context, then destroys both. */
void fx_on_pair(int device,
                void (*body)(clxent_context *ctx, clxent_context *other));

/* The spec of the device fx_device_context opens, for tests that create
 * their own contexts (threads, fault injection, the command). Skips or
 * fails like fx_device_context; NULL then. */
const char *fx_device_spec(void);

/* ---- OpenCL handles (CL/cl.h, through clxent.h) ---- */

/* The cl_device_id and cl_context of a device context's command queue,
 * for tests that make their own OpenCL objects on clxent's device. */
cl_device_id fx_cl_device(const clxent_context *ctx);
cl_context fx_cl_context(const clxent_context *ctx);
/* Reference counts, to check that clxent retains and releases the
 * caller's cl_mem and cl_command_queue exactly once. */
cl_uint fx_mem_refs(cl_mem mem);
cl_uint fx_queue_refs(cl_command_queue q);

/* ---- environment ---- */

/* Sets name back to saved (a copy taken before the test changed it), or
 * unsets it where saved is NULL. */
void fx_restore_env(const char *name, const char *saved);

/* ---- random numbers (the command's generator) ---- */

typedef cli_rng fx_rng;
static inline fx_rng fx_rng_seed(uint64_t seed) { return cli_rng_seed(seed); }
static inline uint64_t fx_next(fx_rng *rng) { return cli_rng_next(rng); }
static inline double fx_uniform(fx_rng *rng, double lo, double hi) {
    return cli_rng_uniform(rng, lo, hi); /* [lo, hi) */
}
void fx_fill_uniform(fx_rng *rng, float *out, size_t n, float lo, float hi);

/* ---- storage types (the library's conversions, via the command) ---- */

/* f32 values into dtype storage (malloc'd, caller frees). */
void *fx_to_dtype(const float *values, size_t n, clxent_dtype dtype);
/* dtype storage to f32 (malloc'd). */
float *fx_from_dtype(const void *values, size_t n, clxent_dtype dtype);
/* v as dtype stores it: rounded to f16 or bf16, unchanged for f32. */
float fx_round(float v, clxent_dtype dtype);

/* ---- buffers ---- */

/* Buffer of `bytes` holding a copy of data (data may be NULL: zero
 * filled with a recognisable pattern 0x7f). Fails the test on error. */
clxent_buffer *fx_upload(clxent_context *ctx, const void *data, size_t bytes);
/* Reads a whole buffer into a malloc'd block the caller frees. */
void *fx_download(clxent_context *ctx, const clxent_buffer *buf);
/* Each of the count buffers against its snapshot (fx_download's): a
 * difference fails the test naming label, or with restore (after a call
 * allowed to write) is written back. */
void fx_compare_snapshots(clxent_context *ctx, clxent_buffer *const *b,
                          unsigned char *const *snapshot, int count,
                          const char *label, int restore);

/* ---- tolerance (fx_close, tolerance.h) ---- */

/* Asserts fx_close element-wise and reports the first mismatch with
 * `what` and its index. Returns the largest |got - want| over finite
 * pairs. */
double fx_assert_close(const float *got, const double *want, size_t n,
                       double abs_tol, double rel_tol, const char *what);

/* Asserts status == expected and prints the context message otherwise. */
#define fx_assert_status(ctx, status, expected)                                \
    fx_assert_status_((ctx), (status), (expected), __FILE__, __LINE__)
void fx_assert_status_(clxent_context *ctx, clxent_status got,
                       clxent_status expected, const char *file, int line);

/* Asserts that a message contains a text. */
#define assert_contains(haystack, needle)                                      \
    do {                                                                       \
        const char *h_ = (haystack), *n_ = (needle);                           \
        if (!strstr(h_, n_))                                                   \
            fail_msg("\"%s\" does not contain \"%s\"", h_, n_);                \
    } while (0)

#endif
