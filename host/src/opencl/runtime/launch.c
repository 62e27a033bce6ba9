/* Launching kernels: scratch memory, kernel arguments, NDRange enqueues
 * with the operation's wait list and out-event, the events kept for
 * device timing, and the kernel list of the trace. */
#include "opencl/runtime/runtime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grow-only, rounded up to 4 KiB so small growth does not reallocate
 * every call. Releasing the old buffer is safe with work in flight:
 * OpenCL frees it when its commands complete. */
static clxent_status grow(clxent_context *ctx, const char *what,
                          size_t bytes, cl_mem *held, size_t *held_bytes,
                          cl_mem *out) {
    clx_opencl_state *s = ctx->cl;
    if (bytes == 0) bytes = 1;
    if (*held && *held_bytes >= bytes) {
        *out = *held;
        return CLXENT_STATUS_OK;
    }
    size_t want = bytes;
    if (want <= SIZE_MAX - 4095) want = (want + 4095) & ~(size_t)4095;
    if (want > s->max_alloc_bytes && bytes <= s->max_alloc_bytes)
        want = bytes;
    CLX_RELEASE(clReleaseMemObject, *held);
    *held_bytes = 0;
    cl_int err = CL_SUCCESS;
    cl_mem mem = CLX_CL_CREATE(
        &err, clCreateBuffer(s->context, CL_MEM_READ_WRITE, want, NULL, &err));
    if (!mem || err != CL_SUCCESS) {
        *out = NULL;
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_scratch",
                        "clCreateBuffer (%zu bytes of %s): %s (%d)", want,
                        what, clx_cl_error_name(err), (int)err);
    }
    *held = mem;
    *held_bytes = want;
    *out = mem;
    return CLXENT_STATUS_OK;
}

clxent_status clx_cl_scratch(clxent_context *ctx, size_t bytes,
                             cl_mem *scratch) {
    clx_opencl_state *s = ctx->cl;
    return grow(ctx, "scratch", bytes, &s->scratch, &s->scratch_bytes,
                scratch);
}

clxent_status clx_cl_stage(clxent_context *ctx, size_t bytes,
                           cl_mem *stage) {
    clx_opencl_state *s = ctx->cl;
    clxent_status st =
        grow(ctx, "staging", bytes, &s->stage, &s->stage_bytes, stage);
    s->stage_buffer.mem = s->stage;
    s->stage_buffer.bytes = s->stage_bytes;
    return st;
}

static clxent_status cl_arg(clxent_context *ctx, cl_kernel kernel, cl_uint i,
                            size_t size, const void *value) {
    cl_int err = CLX_CL(clSetKernelArg(kernel, i, size, value));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clx_cl_arg",
                        "clSetKernelArg (kernel %s, argument %u, %zu bytes): "
                        "%s (%d)",
                        clx_cl_kernel_name(ctx->cl, kernel), (unsigned)i, size,
                        clx_cl_error_name(err), (int)err);
    return CLXENT_STATUS_OK;
}

clx_args clx_args_begin(clxent_context *ctx, cl_kernel kernel) {
    clx_args a = {ctx, kernel, 0, CLXENT_STATUS_OK};
    return a;
}

static void set_arg(clx_args *a, size_t size, const void *value) {
    if (a->st == CLXENT_STATUS_OK)
        a->st = cl_arg(a->ctx, a->kernel, a->index, size, value);
    ++a->index;
}

void clx_arg_mem(clx_args *a, cl_mem mem) { set_arg(a, sizeof mem, &mem); }
void clx_arg_ulong(clx_args *a, size_t v) {
    cl_ulong x = (cl_ulong)v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_long(clx_args *a, int64_t v) {
    cl_long x = (cl_long)v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_uint(clx_args *a, size_t v) {
    cl_uint x = (cl_uint)v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_int(clx_args *a, int v) {
    cl_int x = v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_float(clx_args *a, float v) {
    cl_float x = v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_local(clx_args *a, size_t bytes) { set_arg(a, bytes, NULL); }

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

/* Adds the kernel's name to the operation's trace, "a+b+c". */
static void trace_kernel(clx_opencl_state *s, cl_kernel kernel) {
    size_t n = strlen(s->op_kernels);
    if (n + 2 >= sizeof s->op_kernels) return;
    snprintf(s->op_kernels + n, sizeof s->op_kernels - n, "%s%s",
             n ? "+" : "", clx_cl_kernel_name(s, kernel));
}

void clx_cl_op_begin(clx_opencl_state *s) {
    s->seq_begun = s->seq_hold = 0;
    s->op_kernels[0] = '\0';
    s->op_plan[0] = '\0';
    s->op_programs[0] = '\0';
}

clxent_status clx_cl_launch(clxent_context *ctx, const clx_op *op,
                            cl_kernel kernel, size_t global, size_t local,
                            int first, int last) {
    clx_opencl_state *s = ctx->cl;
    cl_uint num_wait = 0;
    const cl_event *wait = NULL;
    first = first && !s->seq_begun;
    last = last && !s->seq_hold;
    s->seq_begun = 1;
    if (first) {
        forget_op_events(s);
        if (op->events && op->events->num_wait) {
            num_wait = op->events->num_wait;
            wait = op->events->wait_list;
        }
    }
    cl_event ev = NULL;
    size_t g = global, l = local;
    cl_int err = CLX_CL(clEnqueueNDRangeKernel(s->queue, kernel, 1, NULL, &g,
                                               local ? &l : NULL, num_wait,
                                               wait,
                                               first || last ? &ev : NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), op->function,
                        "clEnqueueNDRangeKernel (kernel %s, global %zu, "
                        "local %zu): %s (%d)",
                        clx_cl_kernel_name(s, kernel), global, local,
                        clx_cl_error_name(err), (int)err);
    trace_kernel(s, kernel);
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
