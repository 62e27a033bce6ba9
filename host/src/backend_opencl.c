/* The OpenCL backend's plumbing: context/queue creation, buffers, the
 * per-context program cache, scratch memory and the launch helpers the
 * operation code (backend_opencl_ops.c) builds on. Every OpenCL call goes
 * through the CLX_CL fault seam, and every failure path releases what it
 * created. */
#include "opencl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clxent_status cl_fail(clxent_context *ctx, const char *function,
                             const char *call, const char *what, cl_int err) {
    return clx_fail(ctx, clx_status_from_cl(err), function, "%s (%s): %s (%d)",
                    call, what, clx_cl_error_name(err), (int)err);
}

static char *dup_text(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- state lifetime ---- */

static void free_state(clx_opencl_state *s) {
    if (!s) return;
    if (s->queue) (void)CLX_CL(clFinish(s->queue));
    CLX_RELEASE(clReleaseEvent, s->op_first_event);
    CLX_RELEASE(clReleaseEvent, s->op_last_event);
    for (size_t i = 0; i < s->program_count; ++i) {
        clx_program_entry *e = &s->programs[i];
        for (size_t k = 0; k < e->kernel_count; ++k) {
            CLX_RELEASE(clReleaseKernel, e->kernels[k]);
            free(e->kernel_names[k]);
        }
        CLX_RELEASE(clReleaseProgram, e->program);
        free(e->file);
        free(e->options);
    }
    free(s->programs);
    CLX_RELEASE(clReleaseMemObject, s->scratch);
    CLX_RELEASE(clReleaseMemObject, s->status);
    CLX_RELEASE(clReleaseCommandQueue, s->queue);
    CLX_RELEASE(clReleaseContext, s->context);
    free(s);
}

static void opencl_destroy(clxent_context *ctx) {
    free_state(ctx->cl);
    ctx->cl = NULL;
}

/* Device properties the launch heuristics use. */
static clxent_status query_device(clxent_context *ctx, const char *function,
                                  clx_opencl_state *s) {
    struct {
        cl_device_info param;
        const char *name;
        void *dst;
        size_t size;
    } q[] = {
        {CL_DEVICE_MAX_COMPUTE_UNITS, "CL_DEVICE_MAX_COMPUTE_UNITS",
         &s->compute_units, sizeof s->compute_units},
        {CL_DEVICE_MAX_WORK_GROUP_SIZE, "CL_DEVICE_MAX_WORK_GROUP_SIZE",
         &s->max_work_group_size, sizeof s->max_work_group_size},
        {CL_DEVICE_LOCAL_MEM_SIZE, "CL_DEVICE_LOCAL_MEM_SIZE",
         &s->local_mem_bytes, sizeof s->local_mem_bytes},
        {CL_DEVICE_MAX_MEM_ALLOC_SIZE, "CL_DEVICE_MAX_MEM_ALLOC_SIZE",
         &s->max_alloc_bytes, sizeof s->max_alloc_bytes},
        {CL_DEVICE_GLOBAL_MEM_SIZE, "CL_DEVICE_GLOBAL_MEM_SIZE",
         &s->global_mem_bytes, sizeof s->global_mem_bytes},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; ++i) {
        cl_int err = CLX_CL(
            clGetDeviceInfo(s->device, q[i].param, q[i].size, q[i].dst, NULL));
        if (err != CL_SUCCESS)
            return cl_fail(ctx, function, "clGetDeviceInfo", q[i].name, err);
    }
    cl_device_type type = 0;
    cl_int err = CLX_CL(
        clGetDeviceInfo(s->device, CL_DEVICE_TYPE, sizeof type, &type, NULL));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, function, "clGetDeviceInfo", "CL_DEVICE_TYPE", err);
    s->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    return CLXENT_STATUS_OK;
}

/* Adopts the caller's queue: retains it and its cl_context. An
 * out-of-order queue is refused: clxent enqueues one call's steps without
 * events between them. */
static clxent_status adopt_queue(clxent_context *ctx, const char *function,
                                 clx_opencl_state *s, cl_command_queue queue) {
    cl_context context = NULL;
    cl_device_id device = NULL;
    cl_command_queue_properties props = 0;
    cl_platform_id platform = NULL;
    cl_int err = CLX_CL(clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT,
                                              sizeof context, &context, NULL));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, function, "clGetCommandQueueInfo",
                       "queue, CL_QUEUE_CONTEXT", err);
    err = CLX_CL(clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof device,
                                       &device, NULL));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, function, "clGetCommandQueueInfo",
                       "queue, CL_QUEUE_DEVICE", err);
    err = CLX_CL(clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES,
                                       sizeof props, &props, NULL));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, function, "clGetCommandQueueInfo",
                       "queue, CL_QUEUE_PROPERTIES", err);
    /* Refused before anything is retained, so the failed context holds
     * nothing of the caller's. */
    if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, function,
                        "queue has CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE: "
                        "the steps inside one clxent call (target check, "
                        "row kernels, reduction, reads) depend on in-order "
                        "execution; create an in-order queue on the same "
                        "cl_context (properties without that flag) for "
                        "clxent");
    err = CLX_CL(clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform,
                                 &platform, NULL));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, function, "clGetDeviceInfo",
                       "queue's device, CL_DEVICE_PLATFORM", err);
    err = CLX_CL(clRetainCommandQueue(queue));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, function, "clRetainCommandQueue", "queue", err);
    s->queue = queue;
    err = CLX_CL(clRetainContext(context));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, function, "clRetainContext", "queue's context",
                       err);
    s->context = context;
    s->device = device;
    s->platform = platform;
    s->profiling = (props & CL_QUEUE_PROFILING_ENABLE) != 0;
    return CLXENT_STATUS_OK;
}

static clxent_status own_queue(clxent_context *ctx, const char *function,
                               clx_opencl_state *s, cl_platform_id platform,
                               cl_device_id device) {
    cl_int err = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                      (cl_context_properties)platform, 0};
    s->platform = platform;
    s->device = device;
    s->context = CLX_CL_CREATE(
        &err, clCreateContext(props, 1, &device, NULL, NULL, &err));
    if (!s->context || err != CL_SUCCESS) {
        s->context = NULL;
        return cl_fail(ctx, function, "clCreateContext", ctx->info.spec, err);
    }
    s->queue = CLX_CL_CREATE(
        &err, clCreateCommandQueue(s->context, device,
                                   CL_QUEUE_PROFILING_ENABLE, &err));
    if (!s->queue || err != CL_SUCCESS) {
        s->queue = NULL;
        return cl_fail(ctx, function, "clCreateCommandQueue",
                       "CL_QUEUE_PROFILING_ENABLE", err);
    }
    s->profiling = 1;
    return CLXENT_STATUS_OK;
}

/* Sets up ctx->cl on the given device (queue NULL: own context and
 * profiling queue) or on the caller's queue. On failure ctx->cl stays
 * NULL, nothing is left allocated and the message says why. */
clxent_status clx_opencl_create(clxent_context *ctx, cl_platform_id platform,
                                cl_device_id device, cl_command_queue queue) {
    const char *function =
        queue ? "clxent_context_create_from_queue" : "clxent_context_create";
    ctx->cl = NULL;
    clx_opencl_state *s = calloc(1, sizeof *s);
    if (!s)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory for the OpenCL state");
    s->preferred_multiple = 1;
    clxent_status st = queue ? adopt_queue(ctx, function, s, queue)
                             : own_queue(ctx, function, s, platform, device);
    if (st == CLXENT_STATUS_OK) st = query_device(ctx, function, s);
    if (st == CLXENT_STATUS_OK) {
        cl_int err = CL_SUCCESS;
        s->status = CLX_CL_CREATE(
            &err, clCreateBuffer(s->context, CL_MEM_READ_WRITE,
                                 4 * sizeof(cl_long), NULL, &err));
        if (!s->status || err != CL_SUCCESS) {
            s->status = NULL;
            st = cl_fail(ctx, function, "clCreateBuffer", "status buffer",
                         err);
        }
    }
    if (st != CLXENT_STATUS_OK) {
        free_state(s);
        return st;
    }
    ctx->cl = s;
    return CLXENT_STATUS_OK;
}

/* ---- buffers ---- */

static clxent_status opencl_buffer_create(clxent_context *ctx,
                                          clxent_buffer *buf) {
    cl_int err = CL_SUCCESS;
    buf->mem = CLX_CL_CREATE(&err, clCreateBuffer(ctx->cl->context,
                                                  CL_MEM_READ_WRITE,
                                                  buf->bytes, NULL, &err));
    if (!buf->mem || err != CL_SUCCESS) {
        buf->mem = NULL;
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_buffer_create",
                        "clCreateBuffer (%zu bytes): %s (%d)", buf->bytes,
                        clx_cl_error_name(err), (int)err);
    }
    return CLXENT_STATUS_OK;
}

static void opencl_buffer_release(clxent_buffer *buf) {
    CLX_RELEASE(clReleaseMemObject, buf->mem);
}

static clxent_status opencl_buffer_write(clxent_context *ctx,
                                         clxent_buffer *buf, size_t offset,
                                         size_t bytes, const void *src) {
    cl_int err = CLX_CL(clEnqueueWriteBuffer(ctx->cl->queue, buf->mem, CL_TRUE,
                                             offset, bytes, src, 0, NULL,
                                             NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_buffer_write",
                        "clEnqueueWriteBuffer (offset %zu, %zu bytes): %s (%d)",
                        offset, bytes, clx_cl_error_name(err), (int)err);
    return CLXENT_STATUS_OK;
}

static clxent_status opencl_buffer_read(clxent_context *ctx,
                                        const clxent_buffer *buf,
                                        size_t offset, size_t bytes,
                                        void *dst) {
    cl_int err = CLX_CL(clEnqueueReadBuffer(ctx->cl->queue, buf->mem, CL_TRUE,
                                            offset, bytes, dst, 0, NULL, NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_buffer_read",
                        "clEnqueueReadBuffer (offset %zu, %zu bytes): %s (%d)",
                        offset, bytes, clx_cl_error_name(err), (int)err);
    return CLXENT_STATUS_OK;
}

static clxent_status opencl_finish(clxent_context *ctx) {
    cl_int err = CLX_CL(clFinish(ctx->cl->queue));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, "clxent_finish", "clFinish", "queue", err);
    return clx_opencl_finish_checks(ctx);
}

const clx_backend_ops clx_opencl_backend = {
    "opencl",           opencl_destroy,     opencl_buffer_create,
    opencl_buffer_release, opencl_buffer_write, opencl_buffer_read,
    clx_opencl_run,     opencl_finish,
};

/* ---- program cache ---- */

/* Options that break docs/semantics.md (full-precision exp/log, IEEE NaN and
 * infinities) are refused rather than silently used. */
static const char *forbidden_option(const char *options) {
    static const char *const bad[] = {"-cl-fast-relaxed-math",
                                      "-cl-unsafe-math-optimizations",
                                      "-cl-finite-math-only"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i)
        if (strstr(options, bad[i])) return bad[i];
    return NULL;
}

static clxent_status build_failure(clxent_context *ctx, cl_program program,
                                   const char *file, const char *options,
                                   cl_int err) {
    clxent_status st = clx_status_from_cl(err);
    if (st != CLXENT_STATUS_OUT_OF_MEMORY) st = CLXENT_STATUS_BUILD_FAILED;
    const char *dir = getenv("CLXENT_KERNEL_DIR");
    clx_fail(ctx, st, "clx_cl_kernel",
             "building %s/%s failed: clBuildProgram: %s (%d)\n"
             "build options: %s\nbuild log:\n",
             dir && *dir ? dir : "kernels (embedded)", file,
             clx_cl_error_name(err), (int)err, options);
    clx_opencl_state *s = ctx->cl;
    size_t size = 0;
    cl_int e = CLX_CL(clGetProgramBuildInfo(program, s->device,
                                            CL_PROGRAM_BUILD_LOG, 0, NULL,
                                            &size));
    char *log = e == CL_SUCCESS ? malloc(size + 1) : NULL;
    if (e == CL_SUCCESS && !log) e = CL_OUT_OF_HOST_MEMORY;
    if (e == CL_SUCCESS)
        e = CLX_CL(clGetProgramBuildInfo(program, s->device,
                                         CL_PROGRAM_BUILD_LOG, size, log,
                                         NULL));
    if (e == CL_SUCCESS) {
        log[size] = '\0';
        clx_append(ctx, "%s", log);
    } else {
        clx_append(ctx, "(unavailable: clGetProgramBuildInfo: %s (%d))",
                   clx_cl_error_name(e), (int)e);
    }
    free(log);
    return st;
}

/* Builds (file, options) and appends it to the cache. */
static clxent_status build_program(clxent_context *ctx, const char *file,
                                   const char *options,
                                   clx_program_entry **entry) {
    clx_opencl_state *s = ctx->cl;
    const char *extra = getenv("CLXENT_BUILD_OPTIONS");
    char full[2048];
    int n = snprintf(full, sizeof full, "-cl-std=CL1.2 %s %s", options,
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof full)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, "clx_cl_kernel",
                        "build options for kernels/%s are longer than %zu "
                        "characters",
                        file, sizeof full - 1);
    const char *bad = forbidden_option(full);
    if (bad)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, "clx_cl_kernel",
                        "build options \"%s\" contain %s, which clxent never "
                        "uses (full-precision exp/log, IEEE NaN and inf)",
                        full, bad);
    if (s->program_count == s->program_capacity) {
        size_t cap = s->program_capacity ? 2 * s->program_capacity : 8;
        clx_program_entry *grown = realloc(s->programs, cap * sizeof *grown);
        if (!grown)
            return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                            "out of host memory");
        s->programs = grown;
        s->program_capacity = cap;
    }
    char *source = NULL;
    clxent_status st = clx_cl_program_source(ctx, file, &source);
    if (st != CLXENT_STATUS_OK) return st;
    cl_int err = CL_SUCCESS;
    const char *sources[] = {source};
    cl_program program = CLX_CL_CREATE(
        &err, clCreateProgramWithSource(s->context, 1, sources, NULL, &err));
    free(source);
    if (!program || err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_kernel",
                        "clCreateProgramWithSource (kernels/%s): %s (%d)",
                        file, clx_cl_error_name(err), (int)err);
    err = CLX_CL(clBuildProgram(program, 1, &s->device, full, NULL, NULL));
    if (err != CL_SUCCESS) {
        st = build_failure(ctx, program, file, full, err);
        CLX_RELEASE(clReleaseProgram, program);
        return st;
    }
    clx_program_entry *e = &s->programs[s->program_count];
    memset(e, 0, sizeof *e);
    e->file = dup_text(file);
    e->options = dup_text(options);
    if (!e->file || !e->options) {
        free(e->file);
        free(e->options);
        CLX_RELEASE(clReleaseProgram, program);
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                        "out of host memory");
    }
    e->program = program;
    ++s->program_count;
    *entry = e;
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_kernel(clxent_context *ctx, const char *file,
                            const char *options, const char *kernel_name,
                            cl_kernel *kernel) {
    clx_opencl_state *s = ctx->cl;
    if (!options) options = "";
    *kernel = NULL;
    clx_program_entry *entry = NULL;
    size_t total_kernels = 0;
    for (size_t i = 0; i < s->program_count; ++i) {
        total_kernels += s->programs[i].kernel_count;
        if (!entry && strcmp(s->programs[i].file, file) == 0 &&
            strcmp(s->programs[i].options, options) == 0)
            entry = &s->programs[i];
    }
    if (!entry) {
        clxent_status st = build_program(ctx, file, options, &entry);
        if (st != CLXENT_STATUS_OK) return st;
    }
    for (size_t k = 0; k < entry->kernel_count; ++k)
        if (strcmp(entry->kernel_names[k], kernel_name) == 0) {
            *kernel = entry->kernels[k];
            return CLXENT_STATUS_OK;
        }
    size_t cap = sizeof entry->kernels / sizeof entry->kernels[0];
    if (entry->kernel_count == cap)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, "clx_cl_kernel",
                        "more than %zu kernels from kernels/%s", cap, file);
    cl_int err = CL_SUCCESS;
    cl_kernel k =
        CLX_CL_CREATE(&err, clCreateKernel(entry->program, kernel_name, &err));
    if (!k || err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_kernel",
                        "clCreateKernel (\"%s\" from kernels/%s): %s (%d)",
                        kernel_name, file, clx_cl_error_name(err), (int)err);
    if (total_kernels == 0) {
        /* The first kernel stands in for all: the multiple is a property
         * of the device's SIMD width in practice. */
        size_t multiple = 0;
        err = CLX_CL(clGetKernelWorkGroupInfo(
            k, s->device, CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE,
            sizeof multiple, &multiple, NULL));
        if (err != CL_SUCCESS) {
            CLX_RELEASE(clReleaseKernel, k);
            return clx_fail(
                ctx, clx_status_from_cl(err), "clx_cl_kernel",
                "clGetKernelWorkGroupInfo (\"%s\", CL_KERNEL_PREFERRED_WORK_"
                "GROUP_SIZE_MULTIPLE): %s (%d)",
                kernel_name, clx_cl_error_name(err), (int)err);
        }
        s->preferred_multiple = multiple ? multiple : 1;
    }
    char *name = dup_text(kernel_name);
    if (!name) {
        CLX_RELEASE(clReleaseKernel, k);
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                        "out of host memory");
    }
    entry->kernel_names[entry->kernel_count] = name;
    entry->kernels[entry->kernel_count] = k;
    ++entry->kernel_count;
    *kernel = k;
    return CLXENT_STATUS_OK;
}

/* ---- scratch, arguments, launches ---- */

size_t clx_cl_memory(const clxent_context *ctx) {
    const clx_opencl_state *s = ctx->cl;
    return s->scratch_bytes + (s->status ? 4 * sizeof(cl_long) : 0);
}

clxent_status clx_cl_trim(clxent_context *ctx) {
    clx_opencl_state *s = ctx->cl;
    cl_int err = CLX_CL(clFinish(s->queue));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_context_trim",
                        "clFinish: %s (%d)", clx_cl_error_name(err), (int)err);
    CLX_RELEASE(clReleaseMemObject, s->scratch);
    s->scratch_bytes = 0;
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_scratch(clxent_context *ctx, size_t bytes,
                             cl_mem *scratch) {
    clx_opencl_state *s = ctx->cl;
    if (bytes == 0) bytes = 1;
    if (s->scratch && s->scratch_bytes >= bytes) {
        *scratch = s->scratch;
        return CLXENT_STATUS_OK;
    }
    /* Grow-only, rounded up to 4 KiB so small growth does not reallocate
     * every call. Releasing the old buffer is safe with work in flight:
     * OpenCL frees it when its commands complete. */
    size_t want = bytes;
    if (want <= SIZE_MAX - 4095) want = (want + 4095) & ~(size_t)4095;
    if (want > s->max_alloc_bytes && bytes <= s->max_alloc_bytes)
        want = bytes;
    CLX_RELEASE(clReleaseMemObject, s->scratch);
    s->scratch_bytes = 0;
    cl_int err = CL_SUCCESS;
    cl_mem mem = CLX_CL_CREATE(
        &err, clCreateBuffer(s->context, CL_MEM_READ_WRITE, want, NULL, &err));
    if (!mem || err != CL_SUCCESS) {
        *scratch = NULL;
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_scratch",
                        "clCreateBuffer (%zu bytes of scratch): %s (%d)", want,
                        clx_cl_error_name(err), (int)err);
    }
    s->scratch = mem;
    s->scratch_bytes = want;
    *scratch = mem;
    return CLXENT_STATUS_OK;
}

/* The cached name of a kernel, for messages (no OpenCL call). */
static const char *kernel_label(const clx_opencl_state *s, cl_kernel kernel) {
    for (size_t i = 0; i < s->program_count; ++i)
        for (size_t k = 0; k < s->programs[i].kernel_count; ++k)
            if (s->programs[i].kernels[k] == kernel)
                return s->programs[i].kernel_names[k];
    return "?";
}

clxent_status clx_cl_arg(clxent_context *ctx, cl_kernel kernel, cl_uint i,
                         size_t size, const void *value) {
    cl_int err = CLX_CL(clSetKernelArg(kernel, i, size, value));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_arg",
                        "clSetKernelArg (kernel %s, argument %u, %zu bytes): "
                        "%s (%d)",
                        kernel_label(ctx->cl, kernel), (unsigned)i, size,
                        clx_cl_error_name(err), (int)err);
    return CLXENT_STATUS_OK;
}

/* Takes ownership of ev (one reference) and records it as the current
 * operation's first and/or last event; the last one also becomes the
 * caller's out-event (its own reference). */
static clxent_status record_event(clxent_context *ctx, const clx_op *op,
                                  cl_event ev, int first, int last) {
    clx_opencl_state *s = ctx->cl;
    cl_int err = CL_SUCCESS;
    if (first) {
        s->op_first_event = ev;
        if (last) {
            err = CLX_CL(clRetainEvent(ev));
            if (err == CL_SUCCESS) s->op_last_event = ev;
        }
    } else {
        CLX_RELEASE(clReleaseEvent, s->op_last_event); /* defensive */
        s->op_last_event = ev;
    }
    cl_event *out = op->events ? op->events->out_event : NULL;
    if (err == CL_SUCCESS && last && out) {
        err = CLX_CL(clRetainEvent(ev));
        if (err == CL_SUCCESS) *out = ev;
    }
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), op->function,
                        "clRetainEvent (operation event): %s (%d)",
                        clx_cl_error_name(err), (int)err);
    return CLXENT_STATUS_OK;
}

/* A new operation begins: the previous one's timing events go. */
static void forget_op_events(clx_opencl_state *s) {
    CLX_RELEASE(clReleaseEvent, s->op_first_event);
    CLX_RELEASE(clReleaseEvent, s->op_last_event);
}

clxent_status clx_cl_launch(clxent_context *ctx, const clx_op *op,
                            cl_kernel kernel, cl_uint dims,
                            const size_t *global, const size_t *local,
                            int first, int last) {
    clx_opencl_state *s = ctx->cl;
    cl_uint num_wait = 0;
    const cl_event *wait = NULL;
    if (first) {
        forget_op_events(s);
        if (op->events && op->events->num_wait) {
            num_wait = op->events->num_wait;
            wait = op->events->wait_list;
        }
    }
    cl_event ev = NULL;
    cl_int err = CLX_CL(clEnqueueNDRangeKernel(s->queue, kernel, dims, NULL,
                                               global, local, num_wait, wait,
                                               first || last ? &ev : NULL));
    if (err != CL_SUCCESS) {
        char shape[96];
        snprintf(shape, sizeof shape, "global %zu", global[0]);
        for (cl_uint d = 1; d < dims; ++d)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
                     "x%zu", global[d]);
        if (local) {
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
                     ", local %zu", local[0]);
            for (cl_uint d = 1; d < dims; ++d)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
                         "x%zu", local[d]);
        }
        return clx_fail(ctx, clx_status_from_cl(err), op->function,
                        "clEnqueueNDRangeKernel (kernel %s, %s): %s (%d)",
                        kernel_label(s, kernel), shape,
                        clx_cl_error_name(err), (int)err);
    }
    if (!(first || last)) return CLXENT_STATUS_OK;
    return record_event(ctx, op, ev, first, last);
}

clxent_status clx_cl_empty_op(clxent_context *ctx, const clx_op *op) {
    clx_opencl_state *s = ctx->cl;
    forget_op_events(s);
    cl_uint num_wait = 0;
    const cl_event *wait = NULL;
    if (op->events && op->events->num_wait) {
        num_wait = op->events->num_wait;
        wait = op->events->wait_list;
    }
    cl_event ev = NULL;
    cl_int err = CLX_CL(
        clEnqueueMarkerWithWaitList(s->queue, num_wait, wait, &ev));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), op->function,
                        "clEnqueueMarkerWithWaitList: %s (%d)",
                        clx_cl_error_name(err), (int)err);
    return record_event(ctx, op, ev, 1, 1);
}
