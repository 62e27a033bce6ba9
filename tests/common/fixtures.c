#include "fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fx_device_required(void) {
    const char *v = getenv("CLXENT_REQUIRE_DEVICE");
    return v && strcmp(v, "1") == 0;
}

clxent_context *fx_device_context(void) {
    const char *spec = getenv("CLXENT_TEST_DEVICE");
    clxent_device_info info;
    char message[1024] = "";
    clxent_status st =
        clxent_device_resolve(spec && *spec ? spec : "", &info, message,
                              sizeof message);
    if (st != CLXENT_STATUS_OK || info.backend != CLXENT_BACKEND_OPENCL) {
        if (fx_device_required())
            fail_msg("CLXENT_REQUIRE_DEVICE=1 but no OpenCL device: %s",
                     message);
        skip();
        return NULL;
    }
    clxent_context *ctx = NULL;
    st = clxent_context_create(info.spec, &ctx);
    if (st != CLXENT_STATUS_OK) {
        fail_msg("context on %s: %s", info.spec,
                 clxent_context_message(ctx));
        clxent_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

clxent_context *fx_host_context(void) {
    clxent_context *ctx = NULL;
    clxent_status st = clxent_context_create("host", &ctx);
    if (st != CLXENT_STATUS_OK)
        fail_msg("host context: %s", clxent_context_message(ctx));
    return ctx;
}

fx_rng fx_rng_seed(uint64_t seed) {
    fx_rng r = {seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull};
    if (r.s == 0) r.s = 1;
    return r;
}

uint64_t fx_next(fx_rng *rng) {
    uint64_t x = rng->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

double fx_uniform(fx_rng *rng, double lo, double hi) {
    double u = (double)(fx_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

void fx_fill_uniform(fx_rng *rng, float *out, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; ++i) out[i] = (float)fx_uniform(rng, lo, hi);
}

clxent_buffer *fx_upload(clxent_context *ctx, const void *data, size_t bytes) {
    clxent_buffer *buf = NULL;
    size_t alloc = bytes ? bytes : 1;
    clxent_status st = clxent_buffer_create(ctx, alloc, &buf);
    if (st != CLXENT_STATUS_OK)
        fail_msg("buffer_create(%zu): %s", alloc, clxent_context_message(ctx));
    if (data) {
        st = clxent_buffer_write(ctx, buf, 0, bytes, data);
    } else {
        void *pattern = malloc(alloc);
        assert_non_null(pattern);
        memset(pattern, 0x7f, alloc);
        st = clxent_buffer_write(ctx, buf, 0, alloc, pattern);
        free(pattern);
    }
    if (st != CLXENT_STATUS_OK)
        fail_msg("buffer_write: %s", clxent_context_message(ctx));
    return buf;
}

void *fx_download(clxent_context *ctx, const clxent_buffer *buf) {
    size_t n = clxent_buffer_size(buf);
    void *out = malloc(n ? n : 1);
    assert_non_null(out);
    clxent_status st = clxent_buffer_read(ctx, buf, 0, n, out);
    if (st != CLXENT_STATUS_OK)
        fail_msg("buffer_read: %s", clxent_context_message(ctx));
    return out;
}

int fx_close(double got, double want, double abs_tol, double rel_tol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    if (!isfinite(got)) return 0;
    return fabs(got - want) <= abs_tol + rel_tol * fabs(want);
}

double fx_assert_close(const float *got, const double *want, size_t n,
                       double abs_tol, double rel_tol, const char *what) {
    double worst = 0.0;
    for (size_t i = 0; i < n; ++i) {
        if (!fx_close(got[i], want[i], abs_tol, rel_tol))
            fail_msg("%s[%zu]: got %.9g, want %.9g (abs %.3g, rel %.3g)",
                     what, i, (double)got[i], want[i], abs_tol, rel_tol);
        if (isfinite(want[i])) {
            double d = fabs((double)got[i] - want[i]);
            if (d > worst) worst = d;
        }
    }
    return worst;
}

void fx_assert_status_(clxent_context *ctx, clxent_status got,
                       clxent_status expected, const char *file, int line) {
    if (got != expected)
        fail_msg("%s:%d: status %s, expected %s; message: %s", file, line,
                 clxent_status_name(got), clxent_status_name(expected),
                 clxent_context_message(ctx));
}

void *fx_to_dtype(const float *values, size_t n, clxent_dtype dtype) {
    size_t es = clxent_dtype_size(dtype);
    unsigned char *out = malloc(n * es + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; ++i) {
        if (dtype == CLXENT_F32) {
            memcpy(out + 4 * i, &values[i], 4);
        } else {
            uint16_t h = dtype == CLXENT_F16 ? clxent_f32_to_f16(values[i])
                                             : clxent_f32_to_bf16(values[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    }
    return out;
}

float *fx_from_dtype(const void *values, size_t n, clxent_dtype dtype) {
    float *out = malloc(n * sizeof(float) + 1);
    assert_non_null(out);
    const unsigned char *in = values;
    for (size_t i = 0; i < n; ++i) {
        if (dtype == CLXENT_F32) {
            memcpy(&out[i], in + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, in + 2 * i, 2);
            out[i] = dtype == CLXENT_F16 ? clxent_f16_to_f32(h)
                                         : clxent_bf16_to_f32(h);
        }
    }
    return out;
}
