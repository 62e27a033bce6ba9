/* The host reference backend behind the backend interface: buffers in
 * plain memory and the dispatch of every operation to C code in double
 * (rows.c, loss.c over elements.c). It is the yardstick the OpenCL results
 * are compared with; operations arrive validated by the entry points. */
#include "reference/reference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the backend interface ---- */

static clxent_status host_dispatch(clxent_context *ctx, const clx_op *op) {
    switch (op->kind) {
    case CLX_OP_ROW_MAX:
    case CLX_OP_ROW_EXPSUM:
    case CLX_OP_LOG_SOFTMAX:
    case CLX_OP_SOFTMAX:
    case CLX_OP_COPY: return clx_host_rows(ctx, op);
    case CLX_OP_NLL_FORWARD: return clx_host_nll_forward(ctx, op);
    case CLX_OP_NLL_BACKWARD: return clx_host_nll_backward(ctx, op);
    case CLX_OP_CE_FORWARD:
    case CLX_OP_CE_BACKWARD:
    case CLX_OP_CE_FUSED: return clx_host_cross_entropy(ctx, op);
    case CLX_OP_SHARD_PARTIAL:
    case CLX_OP_SHARD_COMBINE:
    case CLX_OP_SHARD_FINALIZE:
    case CLX_OP_SHARD_BACKWARD: return clx_host_shard(ctx, op);
    }
    return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, op->function,
                    "operation %d is unknown to the host backend",
                    (int)op->kind);
}

static clxent_status host_run(clxent_context *ctx, const clx_op *op) {
    clxent_status st = host_dispatch(ctx, op);
    snprintf(ctx->last_kernels, sizeof ctx->last_kernels,
             "host reference (double)");
    /* Host work is synchronous: there is no event to hand back (the
     * out-event is written on success only). */
    if (st == CLXENT_STATUS_OK && op->events && op->events->out_event)
        *op->events->out_event = NULL;
    return st;
}

/* The host backend keeps no state outside its buffers. */
static void host_destroy(clxent_context *ctx) { (void)ctx; }

static clxent_status host_buffer_create(clxent_context *ctx,
                                        clxent_buffer *buf) {
    buf->host = malloc(buf->bytes ? buf->bytes : 1);
    if (!buf->host)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY,
                        "clxent_buffer_create", "%zu bytes of host memory",
                        buf->bytes);
    return CLXENT_STATUS_OK;
}

/* The operations work in the caller's memory itself. */
static clxent_status host_buffer_wrap_host(clxent_context *ctx,
                                           clxent_buffer *buf) {
    (void)ctx;
    buf->host = buf->user;
    return CLXENT_STATUS_OK;
}

static void host_buffer_release(clxent_buffer *buf) {
    if (!buf->user) free(buf->host);
    buf->host = NULL;
}

/* A copy onto itself (a wrapped buffer and its own memory) is skipped:
 * memcpy may not overlap, and there is nothing to move. */
static clxent_status host_buffer_write(clxent_context *ctx,
                                       clxent_buffer *buf, size_t offset,
                                       size_t bytes, const void *src) {
    (void)ctx;
    unsigned char *at = (unsigned char *)buf->host + offset;
    if (bytes && at != (const unsigned char *)src) memcpy(at, src, bytes);
    return CLXENT_STATUS_OK;
}

static clxent_status host_buffer_read(clxent_context *ctx,
                                      const clxent_buffer *buf, size_t offset,
                                      size_t bytes, void *dst) {
    (void)ctx;
    const unsigned char *at = (const unsigned char *)buf->host + offset;
    if (bytes && at != (unsigned char *)dst) memcpy(dst, at, bytes);
    return CLXENT_STATUS_OK;
}

static clxent_status host_finish(clxent_context *ctx) {
    (void)ctx;
    return CLXENT_STATUS_OK;
}

const clx_backend_ops clx_host_backend = {
    .name = "host",
    .destroy = host_destroy,
    .buffer_create = host_buffer_create,
    .buffer_wrap_host = host_buffer_wrap_host,
    .buffer_release = host_buffer_release,
    .buffer_write = host_buffer_write,
    .buffer_read = host_buffer_read,
    .run = host_run,
    .finish = host_finish,
};
