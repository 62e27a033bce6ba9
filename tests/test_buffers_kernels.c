/* Buffers on both backends, wrapping the caller's cl_mem and command
 * queue, kernel programs (includes, build failures, the program cache, a
 * launch), every OpenCL call failing in turn, and the scratch a context
 * keeps. Device selection and contexts: test_context.c. */
#define _POSIX_C_SOURCE 200809L /* setenv, mkdtemp, strdup */

#include "fixtures.h"
#include "opencl/runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- buffers, on either backend ---- */

static void buffer_round_trips(clxent_context *ctx, clxent_context *other) {
    unsigned char in[256], out[256];
    for (size_t i = 0; i < sizeof in; ++i) in[i] = (unsigned char)(i * 7 + 1);
    clxent_buffer *buf = NULL;
    fx_assert_status(ctx, clxent_buffer_create(ctx, 256, &buf),
                     CLXENT_STATUS_OK);
    assert_int_equal(clxent_buffer_size(buf), 256);
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 0, 256, in),
                     CLXENT_STATUS_OK);
    memset(out, 0, sizeof out);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 0, 256, out),
                     CLXENT_STATUS_OK);
    assert_memory_equal(in, out, 256);

    /* Offsets: overwrite the middle, read a window across the edit. */
    unsigned char patch[16];
    memset(patch, 0xee, sizeof patch);
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 100, 16, patch),
                     CLXENT_STATUS_OK);
    memset(out, 0, sizeof out);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 90, 40, out),
                     CLXENT_STATUS_OK);
    assert_memory_equal(out, in + 90, 10);
    assert_memory_equal(out + 10, patch, 16);
    assert_memory_equal(out + 26, in + 116, 14);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 255, 1, out),
                     CLXENT_STATUS_OK);
    assert_int_equal(out[0], in[255]);

    /* Out of range: nothing is written. */
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 250, 16, patch),
                     CLXENT_STATUS_BUFFER_TOO_SMALL);
    assert_contains(clxent_context_message(ctx), "clxent_buffer_write");
    assert_contains(clxent_context_message(ctx), "256");
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 0, 257, out),
                     CLXENT_STATUS_BUFFER_TOO_SMALL);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 257, 0, out),
                     CLXENT_STATUS_BUFFER_TOO_SMALL);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, SIZE_MAX, 2, out),
                     CLXENT_STATUS_SIZE_OVERFLOW);
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 8, SIZE_MAX, patch),
                     CLXENT_STATUS_SIZE_OVERFLOW);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 256, 0, out),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 240, 16, out),
                     CLXENT_STATUS_OK);
    assert_memory_equal(out, in + 240, 16);

    /* A buffer of another context. */
    fx_assert_status(other, clxent_buffer_write(other, buf, 0, 4, in),
                     CLXENT_STATUS_WRONG_CONTEXT);
    assert_contains(clxent_context_message(other), "another context");
    fx_assert_status(other, clxent_buffer_read(other, buf, 0, 4, out),
                     CLXENT_STATUS_WRONG_CONTEXT);
    clxent_buffer_release(buf);
}

static void test_buffers_host(void **state) {
    (void)state;
    clxent_context *ctx = fx_host_context();
    clxent_context *other = fx_host_context();
    buffer_round_trips(ctx, other);
    clxent_buffer *buf = NULL;
    fx_assert_status(ctx, clxent_buffer_create(ctx, 4, &buf),
                     CLXENT_STATUS_OK);
    assert_null(clxent_buffer_mem(buf));
    clxent_buffer_release(buf);
    clxent_context_destroy(other);
    clxent_context_destroy(ctx);
}

static void test_buffers_opencl(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    clxent_context *other = fx_device_context();
    clxent_context *host = fx_host_context();
    buffer_round_trips(ctx, other);
    buffer_round_trips(ctx, host);
    buffer_round_trips(host, ctx);

    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    clxent_buffer *buf = (clxent_buffer *)1;
    size_t too_big = info.max_alloc_bytes < SIZE_MAX
                         ? (size_t)info.max_alloc_bytes + 1
                         : SIZE_MAX;
    fx_assert_status(ctx, clxent_buffer_create(ctx, too_big, &buf),
                     CLXENT_STATUS_OUT_OF_MEMORY);
    assert_null(buf);
    assert_contains(clxent_context_message(ctx),
                    "CL_DEVICE_MAX_MEM_ALLOC_SIZE");
    fx_assert_status(ctx, clxent_buffer_create(ctx, SIZE_MAX, &buf),
                     CLXENT_STATUS_OUT_OF_MEMORY);
    /* Still usable afterwards. */
    fx_assert_status(ctx, clxent_buffer_create(ctx, 64, &buf),
                     CLXENT_STATUS_OK);
    assert_non_null(clxent_buffer_mem(buf));
    size_t real = 0;
    assert_int_equal(clGetMemObjectInfo(clxent_buffer_mem(buf), CL_MEM_SIZE,
                                        sizeof real, &real, NULL),
                     CL_SUCCESS);
    assert_int_equal(real, 64);
    clxent_buffer_release(buf);
    clxent_context_destroy(host);
    clxent_context_destroy(other);
    clxent_context_destroy(ctx);
}

static void test_wrap_cl_mem(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    cl_command_queue q = clxent_context_queue(ctx);
    cl_context clctx = fx_cl_context(ctx);
    cl_device_id device = fx_cl_device(ctx);
    cl_int err;
    cl_mem mem = clCreateBuffer(clctx, CL_MEM_READ_WRITE, 128, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    float in[32], out[32];
    for (int i = 0; i < 32; ++i) in[i] = (float)i * 0.5f - 3.0f;
    assert_int_equal(clEnqueueWriteBuffer(q, mem, CL_TRUE, 0, sizeof in, in, 0,
                                          NULL, NULL),
                     CL_SUCCESS);
    assert_int_equal(fx_mem_refs(mem), 1);

    clxent_buffer *buf = NULL;
    fx_assert_status(ctx, clxent_buffer_wrap(ctx, mem, &buf),
                     CLXENT_STATUS_OK);
    assert_int_equal(fx_mem_refs(mem), 2);
    assert_int_equal(clxent_buffer_size(buf), 128);
    assert_ptr_equal(clxent_buffer_mem(buf), mem);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 16, 64, out),
                     CLXENT_STATUS_OK);
    assert_memory_equal(out, in + 4, 64);
    float seven = 7.0f;
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 124, 4, &seven),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 125, 4, &seven),
                     CLXENT_STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(clEnqueueReadBuffer(q, mem, CL_TRUE, 0, sizeof out, out,
                                         0, NULL, NULL),
                     CL_SUCCESS);
    assert_true(out[31] == 7.0f);
    assert_true(out[30] == in[30]);
    clxent_buffer_release(buf);
    assert_int_equal(fx_mem_refs(mem), 1);

    /* A cl_mem of another cl_context on the same device is refused. */
    cl_context foreign = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_mem alien = clCreateBuffer(foreign, CL_MEM_READ_WRITE, 64, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    buf = (clxent_buffer *)1;
    fx_assert_status(ctx, clxent_buffer_wrap(ctx, alien, &buf),
                     CLXENT_STATUS_WRONG_CONTEXT);
    assert_null(buf);
    assert_contains(clxent_context_message(ctx), "clxent_buffer_wrap");
    assert_contains(clxent_context_message(ctx), "mem");
    assert_int_equal(fx_mem_refs(alien), 1);
    assert_int_equal(clReleaseMemObject(alien), CL_SUCCESS);
    assert_int_equal(clReleaseContext(foreign), CL_SUCCESS);
    assert_int_equal(clReleaseMemObject(mem), CL_SUCCESS);
    clxent_context_destroy(ctx);
}

static void from_queue(cl_device_id device, const clxent_device_info *want,
                       cl_command_queue_properties props) {
    cl_int err;
    cl_context clctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_command_queue q = clCreateCommandQueue(clctx, device, props, &err);
    assert_int_equal(err, CL_SUCCESS);
    assert_int_equal(fx_queue_refs(q), 1);

    clxent_context *ctx = NULL;
    fx_assert_status(ctx, clxent_context_create_from_queue(q, &ctx),
                     CLXENT_STATUS_OK);
    assert_int_equal(fx_queue_refs(q), 2);
    assert_ptr_equal(clxent_context_queue(ctx), q);
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    assert_int_equal(info.backend, CLXENT_BACKEND_OPENCL);
    assert_string_equal(info.spec, want->spec);
    assert_int_equal(info.platform_index, want->platform_index);
    assert_int_equal(info.device_index, want->device_index);
    assert_string_equal(info.name, want->name);
    assert_contains(info.reason, "caller's command queue");

    /* The caller lets go of its handles; clxent's references keep them. */
    assert_int_equal(clReleaseCommandQueue(q), CL_SUCCESS);
    assert_int_equal(clReleaseContext(clctx), CL_SUCCESS);
    clxent_buffer *buf = NULL;
    fx_assert_status(ctx, clxent_buffer_create(ctx, 32, &buf),
                     CLXENT_STATUS_OK);
    char in[32] = "a context from the caller queue", out[32] = "";
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 0, 32, in),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 0, 32, out),
                     CLXENT_STATUS_OK);
    assert_string_equal(out, in);
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    uint64_t ns;
    fx_assert_status(ctx, clxent_context_last_time_ns(ctx, &ns),
                     props & CL_QUEUE_PROFILING_ENABLE
                         ? CLXENT_STATUS_INVALID_ARGUMENT
                         : CLXENT_STATUS_UNSUPPORTED);
    clxent_buffer_release(buf);
    clxent_context_destroy(ctx);
}

static void test_context_from_queue(void **state) {
    (void)state;
    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    clxent_device_info want;
    fx_assert_status(ctx, clxent_context_info(ctx, &want), CLXENT_STATUS_OK);
    cl_device_id device = fx_cl_device(ctx);
    from_queue(device, &want, 0);
    from_queue(device, &want, CL_QUEUE_PROFILING_ENABLE);
    clxent_context_destroy(ctx);
}

/* ---- kernel programs ---- */

static void write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_text(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void test_kernel_build(void **state) {
    (void)state;
    clxent_context *probe = fx_device_context();
    if (!probe) return;
    clxent_context_destroy(probe);
    clxent_device_info info;
    char dir[] = "/tmp/clxent_kernels_XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* #include "name" is resolved by the host, each file once (scale.h
     * twice would redefine its function), with #line markers around it */
    write_text(dir, "common.h", "#define CLX_TEST_SCALE 2.0f\n");
    write_text(dir, "scale.h",
               "#include \"common.h\"\n"
               "inline float clx_scale(void) { return CLX_TEST_SCALE; }\n");
    write_text(dir, "broken.cl",
               "#include \"common.h\"\n"
               "#include \"scale.h\"\n"
               "__kernel void broken(__global float *x) {\n"
               "    x[0] = clx_no_such_symbol * clx_scale();\n"
               "}\n");
    write_text(dir, "good.cl",
               "#include \"scale.h\"\n"
               "#include \"common.h\"\n"
               "#include \"scale.h\"\n"
               "__kernel void twice(__global float *x) {\n"
               "    x[get_global_id(0)] *= clx_scale() * EXTRA;\n"
               "}\n"
               "__kernel void other(__global float *x) { x[0] = 1.0f; }\n");
    char *saved_dir = getenv("CLXENT_KERNEL_DIR")
                          ? strdup(getenv("CLXENT_KERNEL_DIR"))
                          : NULL;
    char *saved_opts = getenv("CLXENT_BUILD_OPTIONS")
                           ? strdup(getenv("CLXENT_BUILD_OPTIONS"))
                           : NULL;
    /* a context reads both when it is created */
    setenv("CLXENT_KERNEL_DIR", dir, 1);
    setenv("CLXENT_BUILD_OPTIONS", "-DCLX_FROM_ENV=3", 1);
    clxent_context *ctx = fx_device_context();
    assert_non_null(ctx);
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    setenv("CLXENT_BUILD_OPTIONS", "-DCLX_CHANGED_LATER=1", 1);

    cl_kernel k = NULL;
    clxent_status st =
        clx_cl_kernel(ctx, "broken.cl", "-DEXTRA=1.0f", "broken", &k, NULL);
    fx_assert_status(ctx, st, CLXENT_STATUS_BUILD_FAILED);
    assert_null(k);
    const char *m = clxent_context_message(ctx);
    assert_contains(m, "broken.cl");
    assert_contains(m, "-cl-std=CL1.2");
    assert_contains(m, "-DEXTRA=1.0f");
    assert_contains(m, "-DCLX_FROM_ENV=3");
    assert_true(strstr(m, "CLX_CHANGED_LATER") == NULL);
    assert_contains(m, "CL_BUILD_PROGRAM_FAILURE");
    assert_contains(m, "clx_no_such_symbol"); /* the compiler's log */
    /* #line makes PoCL's log count lines of the .cl file itself (NVIDIA
     * accepts the directive and ignores it: "<kernel>:5:12"). */
    if (strstr(info.platform, "Portable Computing Language"))
        assert_contains(m, "broken.cl:4");

    /* The context stays usable; a good program builds once and is cached. */
    fx_assert_status(ctx, clx_cl_kernel(ctx, "good.cl", "-DEXTRA=1.0f",
                                        "twice", &k, NULL),
                     CLXENT_STATUS_OK);
    assert_non_null(k);
    assert_true(ctx->cl->preferred_multiple >= 1);
    size_t programs = ctx->cl->program_count;
    cl_kernel again = NULL, other = NULL;
    fx_assert_status(ctx, clx_cl_kernel(ctx, "good.cl", "-DEXTRA=1.0f",
                                        "twice", &again, NULL),
                     CLXENT_STATUS_OK);
    assert_ptr_equal(again, k);
    fx_assert_status(ctx, clx_cl_kernel(ctx, "good.cl", "-DEXTRA=1.0f",
                                        "other", &other, NULL),
                     CLXENT_STATUS_OK);
    assert_true(other != k);
    assert_int_equal(ctx->cl->program_count, programs);
    fx_assert_status(ctx, clx_cl_kernel(ctx, "good.cl", "-DEXTRA=2.0f",
                                        "twice", &again, NULL),
                     CLXENT_STATUS_OK);
    assert_int_equal(ctx->cl->program_count, programs + 1);
    assert_true(again != k);

    /* The kernel runs: x *= 2 * 2 through the launch helper. */
    clxent_buffer *buf = NULL;
    float x[4] = {1, 2, 3, 4};
    fx_assert_status(ctx, clxent_buffer_create(ctx, sizeof x, &buf),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_write(ctx, buf, 0, sizeof x, x),
                     CLXENT_STATUS_OK);
    cl_mem mem = clxent_buffer_mem(buf);
    clx_args args = clx_args_begin(ctx, again);
    clx_arg_mem(&args, mem);
    fx_assert_status(ctx, args.st, CLXENT_STATUS_OK);
    args.index = 7;
    clx_arg_mem(&args, mem);
    fx_assert_status(ctx, args.st, CLXENT_STATUS_OPENCL_ERROR);
    assert_contains(clxent_context_message(ctx), "twice");
    clx_op op;
    memset(&op, 0, sizeof op);
    op.function = "test_kernel_build";
    fx_assert_status(ctx, clx_cl_launch(ctx, &op, again, 4, 0, 1, 1),
                     CLXENT_STATUS_OK);
    uint64_t ns = 0;
    fx_assert_status(ctx, clxent_context_last_time_ns(ctx, &ns),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_read(ctx, buf, 0, sizeof x, x),
                     CLXENT_STATUS_OK);
    assert_true(x[0] == 4.0f && x[3] == 16.0f);
    clxent_buffer_release(buf);

    /* A missing file names its path. */
    fx_assert_status(ctx, clx_cl_kernel(ctx, "absent.cl", "", "k", &k, NULL),
                     CLXENT_STATUS_IO_ERROR);
    assert_contains(clxent_context_message(ctx), dir);
    assert_contains(clxent_context_message(ctx), "absent.cl");

    /* Options that would break full-precision math are refused. */
    setenv("CLXENT_BUILD_OPTIONS", "-cl-fast-relaxed-math", 1);
    clxent_context *fast = fx_device_context();
    assert_non_null(fast);
    fx_assert_status(fast, clx_cl_kernel(fast, "good.cl", "-DEXTRA=3.0f",
                                         "twice", &k, NULL),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    assert_contains(clxent_context_message(fast), "-cl-fast-relaxed-math");
    clxent_context_destroy(fast);

    /* Without an included file the folder is incomplete. */
    remove_text(dir, "common.h");
    unsetenv("CLXENT_BUILD_OPTIONS");
    fx_assert_status(ctx, clx_cl_kernel(ctx, "good.cl", "-DEXTRA=4.0f",
                                        "twice", &k, NULL),
                     CLXENT_STATUS_IO_ERROR);
    assert_contains(clxent_context_message(ctx), "common.h");

    /* Includes nested deeper than the resolver's limit (6 levels) are a
     * build failure that says so, not a runaway recursion. */
    char name[16], text[64];
    for (int i = 0; i < 8; ++i) {
        snprintf(name, sizeof name, "n%d.h", i);
        snprintf(text, sizeof text, "#include \"n%d.h\"\n", i + 1);
        write_text(dir, name, text);
    }
    write_text(dir, "deep.cl", "#include \"n0.h\"\n"
                               "__kernel void deep(__global float *x) {}\n");
    fx_assert_status(ctx, clx_cl_kernel(ctx, "deep.cl", "", "deep", &k, NULL),
                     CLXENT_STATUS_BUILD_FAILED);
    assert_contains(clxent_context_message(ctx), "levels of #include");
    for (int i = 0; i < 8; ++i) {
        snprintf(name, sizeof name, "n%d.h", i);
        remove_text(dir, name);
    }

    clxent_context_destroy(ctx);
    remove_text(dir, "deep.cl");
    remove_text(dir, "broken.cl");
    remove_text(dir, "good.cl");
    remove_text(dir, "scale.h");
    rmdir(dir);
    fx_restore_env("CLXENT_KERNEL_DIR", saved_dir);
    fx_restore_env("CLXENT_BUILD_OPTIONS", saved_opts);
    free(saved_dir);
    free(saved_opts);
}

/* The k-th OpenCL call fails, for every k: each step returns a status and
 * the context stays destroyable. */
static void test_fault_injection(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    long failures = 0;
    for (long k = 1; k < 400; ++k) {
        clx_fault_arm(k);
        clxent_context *ctx = NULL;
        clxent_status st = clxent_context_create(spec, &ctx);
        assert_non_null(ctx);
        if (st == CLXENT_STATUS_OK) {
            clxent_buffer *buf = NULL;
            char data[16] = "fault injection", out[16];
            st = clxent_buffer_create(ctx, sizeof data, &buf);
            if (st == CLXENT_STATUS_OK)
                st = clxent_buffer_write(ctx, buf, 0, sizeof data, data);
            if (st == CLXENT_STATUS_OK)
                st = clxent_buffer_read(ctx, buf, 0, sizeof out, out);
            if (st == CLXENT_STATUS_OK) assert_string_equal(out, data);
            if (st == CLXENT_STATUS_OK) st = clxent_finish(ctx);
            clxent_buffer_release(buf);
        }
        if (st != CLXENT_STATUS_OK) {
            ++failures;
            assert_true(strlen(clxent_context_message(ctx)) > 0);
        }
        clxent_context_destroy(ctx);
        long calls = clx_fault_calls();
        clx_fault_arm(0);
        if (calls < k) break; /* the whole run made fewer than k calls */
    }
    assert_true(failures > 10);
}

/* clxent_context_memory reports the scratch an operation left held,
 * O(rows); clxent_context_trim gives it back. */
static void test_context_memory(void **state) {
    (void)state;
    size_t bytes = 1;
    clxent_context *host = fx_host_context();
    assert_int_equal(clxent_context_memory(host, &bytes), CLXENT_STATUS_OK);
    assert_int_equal(bytes, 0);
    assert_int_equal(clxent_context_trim(host), CLXENT_STATUS_OK);
    assert_int_equal(clxent_context_memory(host, NULL),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_context_memory(NULL, &bytes),
                     CLXENT_STATUS_NULL_POINTER);
    assert_int_equal(clxent_context_trim(NULL), CLXENT_STATUS_NULL_POINTER);
    clxent_context_destroy(host);

    clxent_context *ctx = fx_device_context();
    if (!ctx) return;
    enum { R = 512, C = 300 };
    float *x = calloc((size_t)R * C, sizeof *x);
    int32_t y[R];
    for (int r = 0; r < R; ++r) y[r] = r % C;
    clxent_buffer *bx = fx_upload(ctx, x, sizeof(float) * R * C);
    clxent_buffer *by = fx_upload(ctx, y, sizeof y);
    clxent_buffer *bl = fx_upload(ctx, NULL, 4);
    clxent_buffer *bg = fx_upload(ctx, NULL, sizeof(float) * R * C);
    clxent_matrix mx = clxent_matrix_of(bx, R, C, CLXENT_F32);
    clxent_matrix mg = clxent_matrix_of(bg, R, C, CLXENT_F32);
    clxent_targets t = {clxent_vector_of(by, R, CLXENT_I32), {0}};
    clxent_vector loss = clxent_vector_of(bl, 1, CLXENT_F32);
    fx_assert_status(ctx, clxent_cross_entropy(ctx, &mx, &t, NULL, NULL, NULL,
                                               &loss, NULL, &mg, NULL),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_context_memory(ctx, &bytes),
                     CLXENT_STATUS_OK);
    assert_true(bytes > 0);
    assert_true(bytes < sizeof(float) * R * C / 4); /* O(rows), not R x C */
    size_t before = bytes;
    fx_assert_status(ctx, clxent_context_trim(ctx), CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_context_memory(ctx, &bytes),
                     CLXENT_STATUS_OK);
    assert_true(bytes < before);
    /* Trimmed scratch comes back on demand. */
    fx_assert_status(ctx, clxent_cross_entropy(ctx, &mx, &t, NULL, NULL, NULL,
                                               &loss, NULL, &mg, NULL),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    clxent_buffer_release(bx);
    clxent_buffer_release(by);
    clxent_buffer_release(bl);
    clxent_buffer_release(bg);
    clxent_context_destroy(ctx);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffers_host),
        cmocka_unit_test(test_buffers_opencl),
        cmocka_unit_test(test_wrap_cl_mem),
        cmocka_unit_test(test_context_from_queue),
        cmocka_unit_test(test_kernel_build),
        cmocka_unit_test(test_fault_injection),
        cmocka_unit_test(test_context_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
