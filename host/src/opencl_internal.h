/* OpenCL backend internals: the state behind an OpenCL context, the
 * program cache and the launch helper used by the operation code
 * (backend_opencl_ops.c). */
#ifndef CLXENT_OPENCL_INTERNAL_H
#define CLXENT_OPENCL_INTERNAL_H

#include "internal.h"

typedef struct clx_program_entry {
    char *file;    /* "xent.cl" */
    char *options; /* build options as given by the op code */
    cl_program program;
    /* kernels created from this program, by name */
    size_t kernel_count;
    char *kernel_names[16];
    cl_kernel kernels[16];
} clx_program_entry;

typedef struct clx_opencl_state {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    int profiling; /* queue has CL_QUEUE_PROFILING_ENABLE */

    /* Device properties the launch heuristics use. */
    cl_uint compute_units;
    size_t max_work_group_size;
    size_t preferred_multiple; /* from a probe kernel; 1 if unknown */
    cl_ulong local_mem_bytes;
    cl_ulong max_alloc_bytes;
    cl_ulong global_mem_bytes;
    int is_gpu;

    clx_program_entry *programs;
    size_t program_count, program_capacity;

    /* Scratch memory, O(rows), grown on demand and reused. */
    cl_mem scratch;
    size_t scratch_bytes;
    /* Small status buffer the target-check kernel writes (4 x cl_long):
     * [0] first bad row or -1, [1] its value, [2..3] reserved. */
    cl_mem status;

    /* Events of the most recent operation, for timing: the first and the
     * last kernel it enqueued (retained; NULL when none). */
    cl_event op_first_event;
    cl_event op_last_event;
    /* A deferred target check is pending until clxent_finish. */
    int deferred_check_pending;
    /* Where a synchronous check's verdict is read to (first bad row or
     * -1, its value): here rather than on the stack, because a read that
     * a failed wait left in flight may still land. */
    cl_long sync_verdict[2];
} clx_opencl_state;

/* A teardown call that the fault seam fails is made once more: the seam
 * fails one call only, and a skipped release would leak. A real failure
 * (an invalid object) fails again harmlessly. */
#define CLX_RELEASE(release, object)                                           \
    do {                                                                       \
        if ((object) && CLX_CL(release(object)) != CL_SUCCESS)                 \
            (void)CLX_CL(release(object));                                     \
        (object) = NULL;                                                       \
    } while (0)

/* Creates the OpenCL state of ctx on a device (queue NULL: a new queue
 * with profiling) or on the caller's queue (retained). */
clxent_status clx_opencl_create(clxent_context *ctx, cl_platform_id platform,
                                cl_device_id device, cl_command_queue queue);

/* The program source of kernels/`file` (malloc'd): the file with its
 * #include "name" lines replaced by kernels/name (kernel_source.c). */
clxent_status clx_cl_program_source(clxent_context *ctx, const char *file,
                                    char **source);

/* Returns kernel `kernel_name` from kernels/`file` built with `options`.
 * The program source is clx_cl_program_source's: embedded or, with
 * CLXENT_KERNEL_DIR set, read from that folder. Build options are
 * "-cl-std=CL1.2", then `options`, then CLXENT_BUILD_OPTIONS from the
 * environment. Programs and kernels are built
 * once per context and option set and cached. BUILD_FAILED carries the
 * options and the full log in the context message. */
clxent_status clx_cl_kernel(clxent_context *ctx, const char *file,
                            const char *options, const char *kernel_name,
                            cl_kernel *kernel);

/* Returns a scratch buffer of at least bytes (contents undefined; reused
 * across calls on the same in-order queue). */
clxent_status clx_cl_scratch(clxent_context *ctx, size_t bytes,
                             cl_mem *scratch);

/* Scratch plus status bytes held (clxent_context_memory), and the
 * release of the scratch (clxent_context_trim, after clFinish). */
size_t clx_cl_memory(const clxent_context *ctx);
clxent_status clx_cl_trim(clxent_context *ctx);

/* Sets argument i of a kernel; errors name the kernel and index. */
clxent_status clx_cl_arg(clxent_context *ctx, cl_kernel kernel, cl_uint i,
                         size_t size, const void *value);

/* Enqueues an NDRange for the current operation. `first` applies the
 * operation's wait list, `last` produces its out-event; both record the
 * events used by clxent_context_last_time_ns. Each enqueue of an
 * operation must set exactly one first (the first) and one last. */
clxent_status clx_cl_launch(clxent_context *ctx, const clx_op *op,
                            cl_kernel kernel, cl_uint dims,
                            const size_t *global, const size_t *local,
                            int first, int last);

/* For an operation that enqueues no kernel (e.g. zero rows): a marker
 * that honours the wait list and produces the out-event. */
clxent_status clx_cl_empty_op(clxent_context *ctx, const clx_op *op);

/* Run one validated operation (backend_opencl_ops.c). */
clxent_status clx_opencl_run(clxent_context *ctx, const clx_op *op);

/* Called by clxent_finish after clFinish (backend_opencl_ops.c): reads the
 * status buffer when a deferred target check is pending and reports the
 * first bad row. */
clxent_status clx_opencl_finish_checks(clxent_context *ctx);

#endif /* CLXENT_OPENCL_INTERNAL_H */
