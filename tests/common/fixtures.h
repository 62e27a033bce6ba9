/* Shared test fixtures: contexts, random data, buffers, tolerances that
 * understand NaN and infinities. Include after cmocka's prerequisites. */
#ifndef CLXENT_TEST_FIXTURES_H
#define CLXENT_TEST_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <clxent/clxent.h>

/* A context on the first OpenCL device (CLXENT_TEST_DEVICE overrides the
 * spec). Without one: NULL and the test is skipped, unless
 * CLXENT_REQUIRE_DEVICE=1, when the test fails instead. */
clxent_context *fx_device_context(void);
/* A context on the host backend; fails the test if it cannot. */
clxent_context *fx_host_context(void);
/* 1 when CLXENT_REQUIRE_DEVICE=1 is set. */
int fx_device_required(void);

/* Deterministic random numbers (xorshift64*). */
typedef struct fx_rng { uint64_t s; } fx_rng;
fx_rng fx_rng_seed(uint64_t seed);
uint64_t fx_next(fx_rng *rng);
double fx_uniform(fx_rng *rng, double lo, double hi); /* [lo, hi) */
void fx_fill_uniform(fx_rng *rng, float *out, size_t n, float lo, float hi);

/* Buffer of `bytes` holding a copy of data (data may be NULL: zero
 * filled with a recognisable pattern 0x7f). Fails the test on error. */
clxent_buffer *fx_upload(clxent_context *ctx, const void *data, size_t bytes);
/* Reads a whole buffer into a malloc'd block the caller frees. */
void *fx_download(clxent_context *ctx, const clxent_buffer *buf);

/* |got - want| <= abs_tol + rel_tol*|want|; NaN matches NaN, inf matches
 * the same inf. */
int fx_close(double got, double want, double abs_tol, double rel_tol);
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

/* Converts f32 values into dtype storage (malloc'd, caller frees). */
void *fx_to_dtype(const float *values, size_t n, clxent_dtype dtype);
/* Converts dtype storage to f32 (malloc'd). */
float *fx_from_dtype(const void *values, size_t n, clxent_dtype dtype);

#endif
