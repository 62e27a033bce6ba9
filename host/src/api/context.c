/* Public context and buffer functions: validate once, then dispatch through
 * ctx->backend. Creation follows sqlite3_open: unless memory runs out the
 * caller gets a context, and a failed one still answers
 * clxent_context_message and clxent_context_destroy. */
#include "api/device_select.h"

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
    cl_device_id device = NULL;
    cl_command_queue_properties props = 0;
    cl_int err = CLX_CL(clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE,
                                              sizeof device, &device, NULL));
    if (err == CL_SUCCESS)
        err = CLX_CL(clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES,
                                           sizeof props, &props, NULL));
    st = err == CL_SUCCESS ? clx_device_describe(device, &ctx->info, message,
                                                 sizeof message)
                           : clx_status_from_cl(err);
    if (st != CLXENT_STATUS_OK) {
        if (err != CL_SUCCESS)
            snprintf(message, sizeof message, "clGetCommandQueueInfo: %s (%d)",
                     clx_cl_error_name(err), (int)err);
        clx_fail(ctx, st, function, "describing the queue's device: %s",
                 message);
        ctx->backend->destroy(ctx);
        ctx->backend = NULL; /* failed */
        return st;
    }
    snprintf(ctx->info.reason, sizeof ctx->info.reason,
             "caller's command queue%s",
             props & CL_QUEUE_PROFILING_ENABLE
                 ? ""
                 : " (no profiling: no device timing)");
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

clxent_status clxent_context_set_error(clxent_context *ctx,
                                      clxent_status status,
                                      const char *function,
                                      const char *message) {
    return clx_fail(ctx, status, function, "%s", message ? message : "");
}

const char *clxent_context_message(const clxent_context *ctx) {
    if (!ctx) return "no context (NULL, or creation ran out of memory)";
    return ctx->message;
}

cl_command_queue clxent_context_queue(const clxent_context *ctx) {
    if (!ctx || !ctx->backend) return NULL;
    return ctx->queue;
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
    *bytes = ctx->backend->memory ? ctx->backend->memory(ctx) : 0;
    return CLXENT_STATUS_OK;
}

clxent_status clxent_context_trim(clxent_context *ctx) {
    clxent_status st = check_ctx(ctx, "clxent_context_trim");
    if (st != CLXENT_STATUS_OK) return st;
    clx_clear(ctx);
    return ctx->backend->trim ? ctx->backend->trim(ctx) : CLXENT_STATUS_OK;
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
    if (!ctx->backend->last_time_ns)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, function,
                        "the %s backend has no device timing",
                        ctx->backend->name);
    clx_clear(ctx);
    return ctx->backend->last_time_ns(ctx, nanoseconds);
}

/* ------------------------------------------------------------------ */
/* Buffers. The backend fills buf->mem or buf->host; this file owns the
 * clxent_buffer itself. A buffer names its context by serial and its
 * backend directly, so it may outlive the context. */

/* Creates a buffer of bytes (> 0) through the backend: device memory, or
 * over the caller's memory when user is set. */
static clxent_status make_buffer(clxent_context *ctx, const char *function,
                                 void *user, size_t bytes,
                                 clxent_buffer **buffer) {
    if (buffer) *buffer = NULL;
    clxent_status st = check_ctx(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!buffer)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "buffer is NULL");
    if (bytes == 0)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, function,
                        "bytes is 0 (a buffer holds at least one byte)");
    clxent_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory");
    buf->owner = ctx->serial;
    buf->backend = ctx->backend;
    buf->bytes = bytes;
    buf->user = user;
    clx_clear(ctx);
    st = user ? ctx->backend->buffer_wrap_host(ctx, buf)
              : ctx->backend->buffer_create(ctx, buf);
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

clxent_status clxent_buffer_create(clxent_context *ctx, size_t bytes,
                                   clxent_buffer **buffer) {
    return make_buffer(ctx, "clxent_buffer_create", NULL, bytes, buffer);
}

clxent_status clxent_buffer_wrap_host(clxent_context *ctx, void *memory,
                                      size_t bytes, clxent_buffer **buffer) {
    static const char *const function = "clxent_buffer_wrap_host";
    if (!memory) {
        if (buffer) *buffer = NULL;
        clxent_status st = check_ctx(ctx, function);
        if (st != CLXENT_STATUS_OK) return st;
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "memory is NULL");
    }
    return make_buffer(ctx, function, memory, bytes, buffer);
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
    if (!ctx->backend->buffer_wrap)
        return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, function,
                        "the %s backend has no cl_mem to wrap",
                        ctx->backend->name);
    clxent_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, function,
                        "out of host memory");
    clx_clear(ctx);
    st = ctx->backend->buffer_wrap(ctx, buf, mem);
    if (st != CLXENT_STATUS_OK) {
        free(buf);
        return st;
    }
    buf->owner = ctx->serial;
    buf->backend = ctx->backend;
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

/* ------------------------------------------------------------------ */
/* Tuning (the backend resolves and keeps the parameters). */

const char *clxent_param_name(size_t index, const char **meaning) {
    return clx_opencl_param_name(index, meaning);
}

/* The checks of the tuning calls: a context whose backend has parameters. */
static clxent_status check_params(const clxent_context *ctx,
                                  const char *function) {
    clxent_status st = check_ctx(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!ctx->backend->param)
        return clx_fail(mutable(ctx), CLXENT_STATUS_UNSUPPORTED, function,
                        "the %s backend has no tuning parameters",
                        ctx->backend->name);
    return CLXENT_STATUS_OK;
}

clxent_status clxent_context_set_param(clxent_context *ctx, const char *name,
                                       long long value) {
    static const char *const function = "clxent_context_set_param";
    clxent_status st = check_params(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!name)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "name is NULL");
    clx_clear(ctx);
    return ctx->backend->param(ctx, name, 1, &value);
}

clxent_status clxent_context_get_param(const clxent_context *ctx,
                                       const char *name, long long *value) {
    static const char *const function = "clxent_context_get_param";
    clxent_status st = check_params(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!name || !value)
        return clx_fail(mutable(ctx), CLXENT_STATUS_NULL_POINTER, function,
                        "%s is NULL", name ? "value" : "name");
    clx_clear(mutable(ctx));
    return ctx->backend->param(mutable(ctx), name, 0, value);
}

clxent_status clxent_context_reset_params(clxent_context *ctx) {
    clxent_status st = check_params(ctx, "clxent_context_reset_params");
    if (st != CLXENT_STATUS_OK) return st;
    clx_clear(ctx);
    return ctx->backend->param(ctx, NULL, 1, NULL);
}

const char *clxent_context_tuning(const clxent_context *ctx) {
    if (!ctx || !ctx->backend) return "";
    return ctx->backend->param ? ctx->tuning : ctx->backend->name;
}

const char *clxent_context_last_trace(const clxent_context *ctx) {
    return ctx ? ctx->last_trace : "";
}

clxent_status clxent_context_save_tuning(clxent_context *ctx,
                                         const char *path, const char *name,
                                         const char *note) {
    static const char *const function = "clxent_context_save_tuning";
    clxent_status st = check_params(ctx, function);
    if (st != CLXENT_STATUS_OK) return st;
    if (!path)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, function,
                        "path is NULL");
    clx_clear(ctx);
    return ctx->backend->save_tuning(ctx, path, name, note);
}
