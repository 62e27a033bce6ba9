#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */

#include "fixtures.h"

#include <fnmatch.h>
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

static clxent_context *g_host, *g_device;

clxent_context *fx_host(void) {
    if (!g_host) g_host = fx_host_context();
    return g_host;
}

clxent_context *fx_device(void) {
    if (!g_device) g_device = fx_device_context();
    return g_device;
}

int fx_group_teardown(void **state) {
    (void)state;
    clxent_context_destroy(g_device);
    clxent_context_destroy(g_host);
    g_device = g_host = NULL;
    return 0;
}

int fx_run_selected(const char *group, const struct CMUnitTest *tests,
                    size_t n, int argc, char **argv) {
    if (argc < 2)
        return _cmocka_run_group_tests(group, tests, n, NULL,
                                       fx_group_teardown);
    int invert = argv[1][0] == '!';
    char list[1024], *pattern[32];
    int used[32] = {0};
    size_t np = 0, kept = 0;
    struct CMUnitTest *some = malloc(n * sizeof *some);
    int ok = some && strlen(argv[1] + invert) < sizeof list;
    if (ok) { /* the comma-separated patterns, split in place */
        strcpy(list, argv[1] + invert);
        for (char *p = list; ok; ++p) {
            ok = np < sizeof pattern / sizeof *pattern;
            if (ok) pattern[np++] = p;
            p += strcspn(p, ",");
            if (!*p) break;
            *p = '\0';
        }
    }
    if (!ok) {
        fprintf(stderr, "%s: cannot select tests by '%s'\n", group, argv[1]);
        free(some);
        return 1;
    }
    for (size_t i = 0; i < n; ++i) {
        int hit = 0;
        for (size_t k = 0; k < np; ++k)
            if (fnmatch(pattern[k], tests[i].name, 0) == 0) hit = used[k] = 1;
        if (hit != invert) some[kept++] = tests[i];
    }
    size_t k = 0;
    while (k < np && used[k]) ++k;
    if (k < np || !kept) {
        fprintf(stderr, "%s: '%s' %s\n", group, argv[1],
                kept ? "has a pattern that names no test"
                     : "leaves no test to run");
        free(some);
        return 1;
    }
    int failed = _cmocka_run_group_tests(group, some, kept, NULL,
                                         fx_group_teardown);
    free(some);
    return failed;
}

void fx_restore_env(const char *name, const char *saved) {
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
}

int fx_setup_host(void **state) {
    *state = fx_host_context();
    return *state ? 0 : -1;
}

int fx_teardown_context(void **state) {
    clxent_context_destroy(*state);
    *state = NULL;
    return 0;
}

void fx_on_pair(int device,
                void (*body)(clxent_context *ctx, clxent_context *other)) {
    clxent_context *ctx = device ? fx_device_context() : fx_host_context();
    if (!ctx) return;
    clxent_context *other = device ? fx_device_context() : fx_host_context();
    body(ctx, other);
    clxent_context_destroy(other);
    clxent_context_destroy(ctx);
}

const char *fx_device_spec(void) {
    static char spec[sizeof ((clxent_device_info *)0)->spec];
    clxent_context *ctx = fx_device_context();
    if (!ctx) return NULL;
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    clxent_context_destroy(ctx);
    snprintf(spec, sizeof spec, "%s", info.spec);
    return spec;
}

/* The queue helpers share one checked query. */
static void queue_info(cl_command_queue q, cl_command_queue_info what,
                       size_t size, void *value) {
    assert_int_equal(clGetCommandQueueInfo(q, what, size, value, NULL),
                     CL_SUCCESS);
}

cl_device_id fx_cl_device(const clxent_context *ctx) {
    cl_device_id device = NULL;
    queue_info(clxent_context_queue(ctx), CL_QUEUE_DEVICE, sizeof device,
               &device);
    return device;
}

cl_context fx_cl_context(const clxent_context *ctx) {
    cl_context clctx = NULL;
    queue_info(clxent_context_queue(ctx), CL_QUEUE_CONTEXT, sizeof clctx,
               &clctx);
    return clctx;
}

cl_uint fx_mem_refs(cl_mem mem) {
    cl_uint refs = 0;
    assert_int_equal(clGetMemObjectInfo(mem, CL_MEM_REFERENCE_COUNT,
                                        sizeof refs, &refs, NULL),
                     CL_SUCCESS);
    return refs;
}

cl_uint fx_queue_refs(cl_command_queue q) {
    cl_uint refs = 0;
    queue_info(q, CL_QUEUE_REFERENCE_COUNT, sizeof refs, &refs);
    return refs;
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

void fx_compare_snapshots(clxent_context *ctx, clxent_buffer *const *b,
                          unsigned char *const *snapshot, int count,
                          const char *label, int restore) {
    for (int i = 0; i < count; ++i) {
        unsigned char *now = fx_download(ctx, b[i]);
        size_t n = clxent_buffer_size(b[i]);
        int written = memcmp(now, snapshot[i], n) != 0;
        free(now);
        if (!written) continue;
        if (!restore)
            fail_msg("%s: buffer %d was written by a failing call", label, i);
        fx_assert_status(ctx, clxent_buffer_write(ctx, b[i], 0, n, snapshot[i]),
                         CLXENT_STATUS_OK);
    }
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
    void *out = cli_from_f32(values, n, dtype);
    assert_non_null(out);
    return out;
}

float *fx_from_dtype(const void *values, size_t n, clxent_dtype dtype) {
    float *out = cli_to_f32(values, n, dtype);
    assert_non_null(out);
    return out;
}

float fx_round(float v, clxent_dtype dtype) {
    unsigned char bits[4];
    cli_store(bits, 0, dtype, v);
    return cli_load(bits, 0, dtype);
}
