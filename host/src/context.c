/* Public context and buffer functions: validate once, then dispatch through
 * ctx->backend. Creation follows sqlite3_open: unless memory runs out the
 * caller gets a context, and a failed one still answers
 * clxent_context_message and clxent_context_destroy. */
#include "device_select.h"
#include "opencl_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Messages may be recorded on a context the caller holds as const: the
 * context is always heap-allocated non-const, and the message is
 * documented to change with every call. */
static clxent_context *mutable(const clxent_context *ctx) {
    return (clxent_context *)ctx;
}

/* The checks every function on a context starts with. */
static clxent_status check_ctx(const clxent_context *ctx,
                               const char *function) {
    if (!ctx) return CLXENT_STATUS_NULL_POINTER;
    if (!ctx->backend)
        return clx_fail(mutable(ctx), CLXENT_STATUS_INVALID_ARGUMENT, function,
                        "ctx: this context failed to be created; only "
                        "clxent_context_message and clxent_context_destroy "
                        "work on it");
    return CLXENT_STATUS_OK;
}

/* Atomic: contexts are created on any thread. Starts at 1 so that 0
 * names no context. */
static _Atomic uint64_t next_serial = 1;

static clxent_context *new_context(void) {
    clxent_context *ctx = calloc(1, sizeof *ctx);
    if (ctx) {
        ctx->serial = atomic_fetch_add(&next_serial, 1);
        ctx->info.platform_index = -1;
        ctx->info.device_index = -1;
    }
    return ctx;
}

clxent_status clxent_context_create(const char *spec, clxent_context **out) {
    static const char *const function = "clxent_context_create";
    if (!out) return CLXENT_STATUS_NULL_POINTER;
    clxent_context *ctx = new_context();
    *out = ctx;
    if (!ctx) return CLXENT_STATUS_OUT_OF_MEMORY;
    const char *from_env = NULL;
    if (!spec) {
        spec = from_env = getenv("CLXENT_DEVICE");
        if (!spec) spec = "";
    }
    cl_platform_id platform = NULL;
    cl_device_id device = NULL;
    char message[2048];
    clxent_status st = clx_device_select(spec, &ctx->info, &platform, &device,
                                         message, sizeof message);
    if (st != CLXENT_STATUS_OK)
        return clx_fail(ctx, st, function, "%s%s",
                        from_env ? "CLXENT_DEVICE: " : "", message);
    if (from_env) {
        char reason[sizeof ctx->info.reason];
        snprintf(reason, sizeof reason, "CLXENT_DEVICE, %.140s",
                 ctx->info.reason);
        memcpy(ctx->info.reason, reason, sizeof reason);
    }
    if (ctx->info.backend == CLXENT_BACKEND_HOST) {
        ctx->backend = &clx_host_backend;
        clx_clear(ctx);
        return CLXENT_STATUS_OK;
    }
    st = clx_opencl_create(ctx, platform, device, NULL);
    if (st != CLXENT_STATUS_OK) return st;
    ctx->backend = &clx_opencl_backend;
    clx_clear(ctx);
    return CLXENT_STATUS_OK;
}

clxent_status clxent_context_create_from_queue(cl_command_queue queue,
                                               clxent_context **out) {
    static const char *const function = "clxent_context_create_from_queue";
    if (!out) return CLXENT_STATUS_NULL_POINTER;
    clxent_context *ctx = new_context();
    *out = ctx;
    if (!ctx) return CLXENT_STATUS_OUT_OF_MEMORY;
    if (!queue)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "queue is NULL");
    clxent_status st = clx_opencl_create(ctx, NULL, NULL, queue);
    if (st != CLXENT_STATUS_OK) return st;
    char message[1024] = "";
    st = clx_device_describe(ctx->cl->device, &ctx->info, message,
                             sizeof message);
    if (st != CLXENT_STATUS_OK) {
        clx_fail(ctx, st, function, "describing the queue's device: %s",
                 message);
        clx_opencl_backend.destroy(ctx); /* leaves backend NULL: failed */
        return st;
    }
    snprintf(ctx->info.reason, sizeof ctx->info.reason,
             "caller's command queue%s",
             ctx->cl->profiling ? "" : " (no profiling: no device timing)");
    ctx->backend = &clx_opencl_backend;
    clx_clear(ctx);
    return CLXENT_STATUS_OK;
}

void clxent_context_destroy(clxent_context *ctx) {
    if (!ctx) return;
    if (ctx->backend) ctx->backend->destroy(ctx);
    free(ctx);
}

clxent_status clxent_context_info(const clxent_context *ctx,
                                  clxent_device_info *info) {
    clxent_status st = check_ctx(ctx, "clxent_context_info");
    if (st != CLXENT_STATUS_OK) return st;
    if (!info)
        return clx_fail(mutable(ctx), CLXENT_STATUS_NULL_POINTER,
                        "clxent_context_info", "info is NULL");
    clx_clear(mutable(ctx));
    *info = ctx->info;
    return CLXENT_STATUS_OK;
}

const char *clxent_context_message(const clxent_context *ctx) {
    if (!ctx) return "no context (NULL, or creation ran out of memory)";
    return ctx->message;
}

cl_command_queue clxent_context_queue(const clxent_context *ctx) {
    if (!ctx || !ctx->backend || !ctx->cl) return NULL;
    return ctx->cl->queue;
}

clxent_status clxent_finish(clxent_context *ctx) {
    clxent_status st = check_ctx(ctx, "clxent_finish");
    if (st != CLXENT_STATUS_OK) return st;
    clx_clear(ctx);
    return ctx->backend->finish(ctx);
}

clxent_status clxent_context_memory(const clxent_context *ctx,
                                   size_t *bytes) {
    clxent_status st = check_ctx(ctx, "clxent_context_memory");
    if (st != CLXENT_STATUS_OK) return st;
    if (!bytes)
        return clx_fail(mutable(ctx), CLXENT_STATUS_NULL_POINTER,
                        "clxent_context_memory", "bytes is NULL");
    clx_clear(mutable(ctx));
    *bytes = ctx->cl ? clx_cl_memory(ctx) : 0;
    return CLXENT_STATUS_OK;
}

clxent_status clxent_context_trim(clxent_context *ctx) {
    clxent_status st = check_ctx(ctx, "clxent_context_trim");
    if (st != CLXENT_STATUS_OK) return st;
    clx_clear(ctx);
    return ctx->cl ? clx_cl_trim(ctx) : CLXENT_STATUS_OK;
}

clxent_status clxent_context_last_time_ns(clxent_context *ctx,
                                          uint64_t *nanoseconds) {
    static const char *const function = "clxent_context_last_time_ns";
    clxent_status st = check_ctx(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!nanoseconds)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "nanoseconds is NULL");
    *nanoseconds = 0;
    if (!ctx->cl)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, function,
                        "the %s backend has no device timing",
                        ctx->backend->name);
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
    clx_clear(ctx);
    *nanoseconds = end > start ? (uint64_t)(end - start) : 0;
    return CLXENT_STATUS_OK;
}

/* ------------------------------------------------------------------ */
/* Buffers. The backend fills buf->mem or buf->host; this file owns the
 * clxent_buffer itself. A buffer names its context by serial and its
 * backend directly, so it may outlive the context. */

clxent_status clxent_buffer_create(clxent_context *ctx, size_t bytes,
                                   clxent_buffer **buffer) {
    static const char *const function = "clxent_buffer_create";
    if (buffer) *buffer = NULL;
    clxent_status st = check_ctx(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!buffer)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "buffer is NULL");
    if (bytes == 0)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, function,
                        "bytes is 0 (a buffer holds at least one byte)");
    if (ctx->cl) {
        const clx_opencl_state *s = ctx->cl;
        if ((cl_ulong)bytes > s->max_alloc_bytes ||
            (cl_ulong)bytes > s->global_mem_bytes)
            return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                            "bytes = %zu exceeds the device's limit "
                            "(CL_DEVICE_MAX_MEM_ALLOC_SIZE %llu, "
                            "CL_DEVICE_GLOBAL_MEM_SIZE %llu)",
                            bytes, (unsigned long long)s->max_alloc_bytes,
                            (unsigned long long)s->global_mem_bytes);
    }
    clxent_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory");
    buf->owner = ctx->serial;
    buf->backend = ctx->backend;
    buf->bytes = bytes;
    clx_clear(ctx);
    st = ctx->backend->buffer_create(ctx, buf);
    if (st != CLXENT_STATUS_OK) {
        free(buf);
        if (!ctx->message[0])
            clx_fail(ctx, st, function, "%s backend: %s (%zu bytes)",
                     ctx->backend->name, clxent_status_string(st), bytes);
        return st;
    }
    *buffer = buf;
    return CLXENT_STATUS_OK;
}

clxent_status clxent_buffer_wrap(clxent_context *ctx, cl_mem mem,
                                 clxent_buffer **buffer) {
    static const char *const function = "clxent_buffer_wrap";
    if (buffer) *buffer = NULL;
    clxent_status st = check_ctx(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!buffer)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "buffer is NULL");
    if (!mem)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "mem is NULL");
    if (!ctx->cl)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, function,
                        "the %s backend has no cl_mem to wrap",
                        ctx->backend->name);
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
    clxent_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory");
    err = CLX_CL(clRetainMemObject(mem));
    if (err != CL_SUCCESS) {
        free(buf);
        return clx_fail(ctx, clx_status_from_cl(err), function,
                        "mem: clRetainMemObject: %s (%d)",
                        clx_cl_error_name(err), (int)err);
    }
    buf->owner = ctx->serial;
    buf->backend = ctx->backend;
    buf->bytes = bytes;
    buf->mem = mem;
    clx_clear(ctx);
    *buffer = buf;
    return CLXENT_STATUS_OK;
}

/* byte_offset + bytes inside buffer, buffer of ctx. */
static clxent_status check_range(clxent_context *ctx, const char *function,
                                 const clxent_buffer *buffer,
                                 size_t byte_offset, size_t bytes,
                                 const void *host, const char *host_name) {
    clxent_status st = check_ctx(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!buffer)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "buffer is NULL");
    if (!host && bytes > 0)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "%s is NULL", host_name);
    if (!clx_owns(ctx, buffer))
        return clx_fail(ctx, CLXENT_STATUS_WRONG_CONTEXT, function,
                        "buffer belongs to another context");
    size_t end;
    if (!clx_add_size(byte_offset, bytes, &end))
        return clx_fail(ctx, CLXENT_STATUS_SIZE_OVERFLOW, function,
                        "byte_offset %zu + bytes %zu overflows", byte_offset,
                        bytes);
    if (end > buffer->bytes)
        return clx_fail(ctx, CLXENT_STATUS_BUFFER_TOO_SMALL, function,
                        "byte_offset %zu + bytes %zu is outside the buffer "
                        "of %zu bytes",
                        byte_offset, bytes, buffer->bytes);
    return CLXENT_STATUS_OK;
}

clxent_status clxent_buffer_write(clxent_context *ctx, clxent_buffer *buffer,
                                  size_t byte_offset, size_t bytes,
                                  const void *source) {
    clxent_status st = check_range(ctx, "clxent_buffer_write", buffer,
                                   byte_offset, bytes, source, "source");
    if (st != CLXENT_STATUS_OK) return st;
    clx_clear(ctx);
    if (bytes == 0) return CLXENT_STATUS_OK; /* OpenCL rejects size 0 */
    return ctx->backend->buffer_write(ctx, buffer, byte_offset, bytes, source);
}

clxent_status clxent_buffer_read(clxent_context *ctx,
                                 const clxent_buffer *buffer,
                                 size_t byte_offset, size_t bytes,
                                 void *destination) {
    clxent_status st =
        check_range(ctx, "clxent_buffer_read", buffer, byte_offset, bytes,
                    destination, "destination");
    if (st != CLXENT_STATUS_OK) return st;
    clx_clear(ctx);
    if (bytes == 0) return CLXENT_STATUS_OK;
    return ctx->backend->buffer_read(ctx, buffer, byte_offset, bytes,
                                     destination);
}

/* Never reads the context: a garbage-collected caller may have destroyed
 * it already, and what the buffer holds lives on without it (host memory;
 * a cl_mem retains its cl_context). */
void clxent_buffer_release(clxent_buffer *buffer) {
    if (!buffer) return;
    if (buffer->backend) buffer->backend->buffer_release(buffer);
    free(buffer);
}

size_t clxent_buffer_size(const clxent_buffer *buffer) {
    return buffer ? buffer->bytes : 0;
}

cl_mem clxent_buffer_mem(const clxent_buffer *buffer) {
    return buffer ? buffer->mem : NULL;
}
