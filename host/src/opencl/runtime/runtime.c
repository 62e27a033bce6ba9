/* The runtime state of an OpenCL context: its queue (its own, or the
 * caller's), the device properties, buffers, and the state's teardown.
 * Every OpenCL call goes through the CLX_CL fault seam, and every failure
 * path releases what it created. */
#include "opencl/runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clxent_status cl_fail(clxent_context *ctx, const char *function,
                             const char *call, const char *what, cl_int err) {
    return clx_fail(ctx, clx_status_from_cl(err), function, "%s (%s): %s (%d)",
                    call, what, clx_cl_error_name(err), (int)err);
}

/* ---- state lifetime ---- */

static void free_state(clx_opencl_state *s) {
    if (!s) return;
    if (s->queue) (void)CLX_CL(clFinish(s->queue));
    CLX_RELEASE(clReleaseEvent, s->op_first_event);
    CLX_RELEASE(clReleaseEvent, s->op_last_event);
    clx_cl_programs_free(s);
    CLX_RELEASE(clReleaseMemObject, s->scratch);
    CLX_RELEASE(clReleaseMemObject, s->stage);
    CLX_RELEASE(clReleaseMemObject, s->status);
    CLX_RELEASE(clReleaseCommandQueue, s->queue);
    CLX_RELEASE(clReleaseContext, s->context);
    free(s->kernel_dir);
    free(s->build_options);
    free(s->cache_dir);
    free(s);
}

void clx_cl_state_destroy(clxent_context *ctx) {
    free_state(ctx->cl);
    ctx->cl = NULL;
}

/* A text property into dst (truncated to size): the two-call way, since
 * a short buffer is an error to OpenCL. */
static cl_int query_text(const clx_opencl_state *s, int platform,
                         cl_uint param, char *dst, size_t size) {
    size_t n = 0;
    cl_int err = platform
                     ? CLX_CL(clGetPlatformInfo(s->platform, param, 0, NULL, &n))
                     : CLX_CL(clGetDeviceInfo(s->device, param, 0, NULL, &n));
    char *buf = err == CL_SUCCESS ? malloc(n + 1) : NULL;
    if (err == CL_SUCCESS && !buf) err = CL_OUT_OF_HOST_MEMORY;
    if (err == CL_SUCCESS)
        err = platform
                  ? CLX_CL(clGetPlatformInfo(s->platform, param, n, buf, NULL))
                  : CLX_CL(clGetDeviceInfo(s->device, param, n, buf, NULL));
    if (err == CL_SUCCESS) {
        buf[n] = '\0';
        snprintf(dst, size, "%s", buf);
    }
    free(buf);
    return err;
}

/* Device properties the launch heuristics and the tuning database use. */
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
    struct {
        int platform;
        cl_uint param;
        const char *name;
        char *dst;
        size_t size;
    } t[] = {
        {1, CL_PLATFORM_NAME, "CL_PLATFORM_NAME", s->platform_name,
         sizeof s->platform_name},
        {0, CL_DEVICE_VENDOR, "CL_DEVICE_VENDOR", s->vendor, sizeof s->vendor},
        {0, CL_DEVICE_NAME, "CL_DEVICE_NAME", s->device_name,
         sizeof s->device_name},
        {0, CL_DRIVER_VERSION, "CL_DRIVER_VERSION", s->driver,
         sizeof s->driver},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; ++i) {
        err = query_text(s, t[i].platform, t[i].param, t[i].dst, t[i].size);
        if (err != CL_SUCCESS)
            return cl_fail(ctx, function, t[i].platform ? "clGetPlatformInfo"
                                                        : "clGetDeviceInfo",
                           t[i].name, err);
    }
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

clxent_status clx_cl_state_create(clxent_context *ctx,
                                  cl_platform_id platform,
                                  cl_device_id device,
                                  cl_command_queue queue) {
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
                                 CLX_STATUS_LONGS * sizeof(cl_long), NULL,
                                 &err));
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

/* A cl_mem of buf->bytes, over buf->user when set (CL_MEM_USE_HOST_PTR:
 * CPU drivers work in that memory, others mirror it). */
static clxent_status create_mem(clxent_context *ctx, clxent_buffer *buf,
                                const char *function) {
    const clx_opencl_state *s = ctx->cl;
    if ((cl_ulong)buf->bytes > s->max_alloc_bytes ||
        (cl_ulong)buf->bytes > s->global_mem_bytes)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "bytes = %zu exceeds the device's limit "
                        "(CL_DEVICE_MAX_MEM_ALLOC_SIZE %llu, "
                        "CL_DEVICE_GLOBAL_MEM_SIZE %llu)",
                        buf->bytes, (unsigned long long)s->max_alloc_bytes,
                        (unsigned long long)s->global_mem_bytes);
    cl_mem_flags flags =
        CL_MEM_READ_WRITE | (buf->user ? CL_MEM_USE_HOST_PTR : 0);
    cl_int err = CL_SUCCESS;
    buf->mem = CLX_CL_CREATE(&err, clCreateBuffer(ctx->cl->context, flags,
                                                  buf->bytes, buf->user,
                                                  &err));
    if (!buf->mem || err != CL_SUCCESS) {
        buf->mem = NULL;
        return clx_fail(ctx, clx_status_from_cl(err), function,
                        "clCreateBuffer (%zu bytes%s): %s (%d)", buf->bytes,
                        buf->user ? ", CL_MEM_USE_HOST_PTR" : "",
                        clx_cl_error_name(err), (int)err);
    }
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_buffer_create(clxent_context *ctx, clxent_buffer *buf) {
    return create_mem(ctx, buf, "clxent_buffer_create");
}

clxent_status clx_cl_buffer_wrap_host(clxent_context *ctx,
                                      clxent_buffer *buf) {
    return create_mem(ctx, buf, "clxent_buffer_wrap_host");
}

/* Read or write between a wrapped buffer and its own memory: a blocking
 * map and its unmap move the region only where the driver mirrors it
 * (writing invalidates the device's copy, so the host's bytes win). */
static clxent_status sync_own_memory(clxent_context *ctx,
                                     const clxent_buffer *buf, size_t offset,
                                     size_t bytes, int to_device,
                                     const char *function) {
    cl_int err = CL_SUCCESS;
    cl_event unmapped = NULL;
    cl_map_flags flags = to_device ? CL_MAP_WRITE_INVALIDATE_REGION
                                   : CL_MAP_READ;
    void *at = CLX_CL_CREATE(&err, clEnqueueMapBuffer(ctx->cl->queue, buf->mem,
                                                      CL_TRUE, flags, offset,
                                                      bytes, 0, NULL, NULL,
                                                      &err));
    const char *what = "clEnqueueMapBuffer";
    if (err == CL_SUCCESS) {
        what = "clEnqueueUnmapMemObject";
        err = CLX_CL(clEnqueueUnmapMemObject(ctx->cl->queue, buf->mem, at, 0,
                                             NULL, &unmapped));
    }
    if (err == CL_SUCCESS) {
        what = "clWaitForEvents (unmap)";
        err = CLX_CL(clWaitForEvents(1, &unmapped));
    }
    CLX_RELEASE(clReleaseEvent, unmapped);
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), function,
                        "%s (its own memory, offset %zu, %zu bytes): %s (%d)",
                        what, offset, bytes, clx_cl_error_name(err),
                        (int)err);
    return CLXENT_STATUS_OK;
}

static int own_memory(const clxent_buffer *buf, size_t offset,
                      const void *host) {
    return buf->user && (const unsigned char *)buf->user + offset ==
                            (const unsigned char *)host;
}

void clx_cl_buffer_release(clxent_buffer *buf) {
    CLX_RELEASE(clReleaseMemObject, buf->mem);
}

clxent_status clx_cl_buffer_write(clxent_context *ctx, clxent_buffer *buf,
                                  size_t offset, size_t bytes,
                                  const void *src) {
    if (own_memory(buf, offset, src))
        return sync_own_memory(ctx, buf, offset, bytes, 1,
                               "clxent_buffer_write");
    cl_int err = CLX_CL(clEnqueueWriteBuffer(ctx->cl->queue, buf->mem, CL_TRUE,
                                             offset, bytes, src, 0, NULL,
                                             NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_buffer_write",
                        "clEnqueueWriteBuffer (offset %zu, %zu bytes): %s (%d)",
                        offset, bytes, clx_cl_error_name(err), (int)err);
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_buffer_read(clxent_context *ctx,
                                 const clxent_buffer *buf, size_t offset,
                                 size_t bytes, void *dst) {
    if (own_memory(buf, offset, dst))
        return sync_own_memory(ctx, buf, offset, bytes, 0,
                               "clxent_buffer_read");
    cl_int err = CLX_CL(clEnqueueReadBuffer(ctx->cl->queue, buf->mem, CL_TRUE,
                                            offset, bytes, dst, 0, NULL, NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_buffer_read",
                        "clEnqueueReadBuffer (offset %zu, %zu bytes): %s (%d)",
                        offset, bytes, clx_cl_error_name(err), (int)err);
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_finish(clxent_context *ctx) {
    cl_int err = CLX_CL(clFinish(ctx->cl->queue));
    if (err != CL_SUCCESS)
        return cl_fail(ctx, "clxent_finish", "clFinish", "queue", err);
    return CLXENT_STATUS_OK;
}

size_t clx_cl_memory(const clxent_context *ctx) {
    const clx_opencl_state *s = ctx->cl;
    return s->scratch_bytes + s->stage_bytes +
           (s->status ? CLX_STATUS_LONGS * sizeof(cl_long) : 0);
}

clxent_status clx_cl_trim(clxent_context *ctx) {
    clx_opencl_state *s = ctx->cl;
    cl_int err = CLX_CL(clFinish(s->queue));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_context_trim",
                        "clFinish: %s (%d)", clx_cl_error_name(err), (int)err);
    CLX_RELEASE(clReleaseMemObject, s->scratch);
    s->scratch_bytes = 0;
    CLX_RELEASE(clReleaseMemObject, s->stage);
    s->stage_bytes = 0;
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_last_time_ns(clxent_context *ctx, uint64_t *ns) {
    static const char *const function = "clxent_context_last_time_ns";
    clx_opencl_state *s = ctx->cl;
    if (!s->profiling)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, function,
                        "the queue was created without "
                        "CL_QUEUE_PROFILING_ENABLE");
    if (!s->op_first_event || !s->op_last_event)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, function,
                        "no operation has completed its enqueue on this "
                        "context yet");
    cl_int err = CLX_CL(clWaitForEvents(1, &s->op_last_event));
    cl_ulong start = 0, end = 0;
    const char *what = "clWaitForEvents";
    if (err == CL_SUCCESS) {
        what = "clGetEventProfilingInfo (CL_PROFILING_COMMAND_START)";
        err = CLX_CL(clGetEventProfilingInfo(s->op_first_event,
                                             CL_PROFILING_COMMAND_START,
                                             sizeof start, &start, NULL));
    }
    if (err == CL_SUCCESS) {
        what = "clGetEventProfilingInfo (CL_PROFILING_COMMAND_END)";
        err = CLX_CL(clGetEventProfilingInfo(s->op_last_event,
                                             CL_PROFILING_COMMAND_END,
                                             sizeof end, &end, NULL));
    }
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), function, "%s: %s (%d)",
                        what, clx_cl_error_name(err), (int)err);
    *ns = end > start ? (uint64_t)(end - start) : 0;
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_buffer_wrap(clxent_context *ctx, clxent_buffer *buf,
                                 cl_mem mem) {
    static const char *const function = "clxent_buffer_wrap";
    cl_context owner = NULL;
    size_t bytes = 0;
    cl_int err = CLX_CL(clGetMemObjectInfo(mem, CL_MEM_CONTEXT, sizeof owner,
                                           &owner, NULL));
    if (err == CL_SUCCESS)
        err = CLX_CL(
            clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), function,
                        "mem: clGetMemObjectInfo: %s (%d)",
                        clx_cl_error_name(err), (int)err);
    if (owner != ctx->cl->context)
        return clx_fail(ctx, CLXENT_STATUS_WRONG_CONTEXT, function,
                        "mem belongs to another cl_context than this "
                        "context's");
    err = CLX_CL(clRetainMemObject(mem));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), function,
                        "mem: clRetainMemObject: %s (%d)",
                        clx_cl_error_name(err), (int)err);
    buf->bytes = bytes;
    buf->mem = mem;
    return CLXENT_STATUS_OK;
}
