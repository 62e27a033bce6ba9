/* The OpenCL runtime layer: the state behind an OpenCL context (runtime.c),
 * the kernel sources and the program cache (source.c, program.c), and
 * scratch memory, kernel arguments and launches (launch.c). Nothing here
 * decides which kernel runs (opencl/plan/) or what an operation computes
 * (opencl/ops/). */
#ifndef CLXENT_OPENCL_RUNTIME_H
#define CLXENT_OPENCL_RUNTIME_H

#include "contract.h"
#include "core/internal.h"
#include "opencl/tuning/params.h"

/* Embedded kernel sources (generated at build time from kernels/). */
typedef struct clx_kernel_source {
    const char *name; /* file name, e.g. "xent.cl" */
    const unsigned char *data;
    size_t size;
} clx_kernel_source;
extern const clx_kernel_source clx_kernel_sources[];
extern const size_t clx_kernel_source_count;

typedef struct clx_program_entry {
    char *file;    /* "xent.cl" */
    char *options; /* build options as given by the op code */
    cl_program program;
    /* kernels created from this program, by name */
    size_t kernel_count;
    char *kernel_names[16];
    cl_kernel kernels[16];
} clx_program_entry;

/* Per-context constants of the launch geometry, from the parameters and
 * the device (opencl/plan/geometry.c keeps them current). */
typedef struct clx_derived {
    unsigned vec, kt;
    size_t row_group;     /* L for rows reduced inside one group */
    size_t small_group;   /* L for one-item-per-row kernels */
    size_t target_groups; /* enough groups to fill the device */
    size_t split_rows;    /* fewer rows than this: rows may split */
} clx_derived;

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
    /* What the tuning database matches (truncated). */
    char platform_name[128], vendor[128], device_name[128], driver[64];

    /* Tuning, resolved at creation (opencl/tuning/tuning.h): `resolved`
     * as created, `params` with clxent_context_set_param on top. */
    clx_params resolved, params;
    clx_derived d;
    /* CLXENT_KERNEL_DIR and CLXENT_BUILD_OPTIONS, read at creation, and
     * the disk cache's folder (NULL: no disk cache) */
    char *kernel_dir;
    char *build_options;
    char *cache_dir;

    clx_program_entry *programs;
    size_t program_count, program_capacity;

    /* Scratch memory, O(rows), grown on demand and reused. */
    cl_mem scratch;
    size_t scratch_bytes;
    /* Staging memory, O(rows): the compact copies of strided per-row
     * arrays (ops/stage.c), and the buffer that names it in an op. */
    cl_mem stage;
    size_t stage_bytes;
    clxent_buffer stage_buffer;
    /* The deferred target check's status buffer (CLX_STATUS_LONGS). */
    cl_mem status;

    /* Events of the most recent operation, for timing: the first and the
     * last kernel it enqueued (retained; NULL when none). */
    cl_event op_first_event;
    cl_event op_last_event;
    /* Sequencing of an operation's launches across its parts (staging,
     * the z-loss step): once one is enqueued (seq_begun) no other takes
     * the wait list; while seq_hold is set none is the last (the
     * out-event comes from a later part). Reset by clx_cl_op_begin. */
    int seq_begun, seq_hold;
    /* A deferred target check is pending until clxent_finish; where its
     * bad row lies (the tensor whose inner_dims name the position), valid
     * while every pending check had that shape (the verdict does not say
     * which operation found it). */
    int deferred_check_pending;
    clxent_tensor deferred_where;
    int deferred_where_ok;
    /* Where a synchronous check's verdict is read to (first bad row or
     * -1, its value): here rather than on the stack, because a read that
     * a failed wait left in flight may still land. */
    cl_long sync_verdict[2];

    /* The trace of the current operation: the kernels it enqueued,
     * "a+b+c", and the strategy and geometry the table chose. */
    char op_kernels[CLX_TRACE_CAPACITY];
    char op_plan[CLX_TRACE_CAPACITY];
    /* the programs it built: "xent.cl compiled, nll.cl from the disk
     * cache" */
    char op_programs[CLX_TRACE_CAPACITY];
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

/* ---- runtime.c: the state, buffers, queue ---- */

/* Creates ctx->cl on a device (queue NULL: a new queue with profiling) or
 * on the caller's in-order queue (retained; an out-of-order one is
 * UNSUPPORTED). The parameters are left to the caller. */
clxent_status clx_cl_state_create(clxent_context *ctx,
                                  cl_platform_id platform,
                                  cl_device_id device,
                                  cl_command_queue queue);
/* Waits for the queue and frees ctx->cl (NULL allowed). */
void clx_cl_state_destroy(clxent_context *ctx);

clxent_status clx_cl_buffer_create(clxent_context *ctx, clxent_buffer *buf);
clxent_status clx_cl_buffer_wrap_host(clxent_context *ctx,
                                      clxent_buffer *buf);
clxent_status clx_cl_buffer_wrap(clxent_context *ctx, clxent_buffer *buf,
                                 cl_mem mem);
void clx_cl_buffer_release(clxent_buffer *buf);
clxent_status clx_cl_buffer_write(clxent_context *ctx, clxent_buffer *buf,
                                  size_t offset, size_t bytes,
                                  const void *src);
clxent_status clx_cl_buffer_read(clxent_context *ctx,
                                 const clxent_buffer *buf, size_t offset,
                                 size_t bytes, void *dst);
/* clFinish on the context's queue. */
clxent_status clx_cl_finish(clxent_context *ctx);
/* Scratch plus status bytes held (clxent_context_memory), and the
 * release of the scratch (clxent_context_trim, after clFinish). */
size_t clx_cl_memory(const clxent_context *ctx);
clxent_status clx_cl_trim(clxent_context *ctx);
/* Device time of the last operation (clxent_context_last_time_ns). */
clxent_status clx_cl_last_time_ns(clxent_context *ctx, uint64_t *ns);

/* ---- source.c, program.c: sources and the program cache ---- */

/* The program source of kernels/`file` (malloc'd): the file with its
 * #include "name" lines replaced by kernels/name, from the embedded copies
 * or the folder CLXENT_KERNEL_DIR named at creation. */
clxent_status clx_cl_program_source(clxent_context *ctx, const char *file,
                                    char **source);

/* Returns kernel `name` from kernels/`file` built with `options`, and its
 * CL_KERNEL_WORK_GROUP_SIZE in *max_group (may be NULL). Build options
 * are "-cl-std=CL1.2", then `options`, then CLXENT_BUILD_OPTIONS as read
 * at creation. Programs and kernels are built once per context and
 * option set and cached. BUILD_FAILED carries the options and the full
 * log in the context message. */
clxent_status clx_cl_kernel(clxent_context *ctx, const char *file,
                            const char *options, const char *name,
                            cl_kernel *kernel, size_t *max_group);
/* ---- disk_cache.c: compiled programs on disk ---- */

/* The identity of a program build (malloc'd; NULL out of memory): what
 * the entry's name is hashed from and what its content must repeat. */
char *clx_disk_cache_identity(const clx_opencl_state *s, const char *options,
                              const char *source);
/* The binary stored under identity in dir: 1 with *binary (malloc'd) and
 * *size, or 0 when there is none or it is damaged. */
int clx_disk_cache_load(const char *dir, const char *identity,
                        unsigned char **binary, size_t *size);
/* Stores a binary under identity in dir, atomically; failures are
 * silent (the cache is an optimisation). */
void clx_disk_cache_store(const char *dir, const char *identity,
                          const unsigned char *binary, size_t size);

/* The cached name of a kernel ("?" if unknown). */
const char *clx_cl_kernel_name(const clx_opencl_state *s, cl_kernel kernel);
/* Frees the program cache. */
void clx_cl_programs_free(clx_opencl_state *s);

/* ---- launch.c: scratch, arguments, launches ---- */

/* Returns the staging buffer, at least bytes (as clx_cl_scratch). */
clxent_status clx_cl_stage(clxent_context *ctx, size_t bytes, cl_mem *stage);
/* Returns a scratch buffer of at least bytes (contents undefined; reused
 * across calls on the same in-order queue). */
clxent_status clx_cl_scratch(clxent_context *ctx, size_t bytes,
                             cl_mem *scratch);

/* Sequential kernel arguments: the first failure sticks in st. The
 * launch code sets them through kernel_args.h, in the contract's order. */
typedef struct clx_args {
    clxent_context *ctx;
    cl_kernel kernel;
    cl_uint index;
    clxent_status st;
} clx_args;

clx_args clx_args_begin(clxent_context *ctx, cl_kernel kernel);
void clx_arg_mem(clx_args *a, cl_mem mem);
void clx_arg_ulong(clx_args *a, size_t v);
void clx_arg_long(clx_args *a, int64_t v);
void clx_arg_uint(clx_args *a, size_t v);
void clx_arg_int(clx_args *a, int v);
void clx_arg_float(clx_args *a, float v);
void clx_arg_local(clx_args *a, size_t bytes);

/* An operation begins: its trace is emptied. */
void clx_cl_op_begin(clx_opencl_state *s);

/* Enqueues a 1-D NDRange for the current operation and adds the kernel
 * to its trace. `first` applies the operation's wait list, `last`
 * produces its out-event; both record the events used by
 * clxent_context_last_time_ns. Each operation sets exactly one first (the
 * first) and one last. local 0 leaves the group size to the driver. */
clxent_status clx_cl_launch(clxent_context *ctx, const clx_op *op,
                            cl_kernel kernel, size_t global, size_t local,
                            int first, int last);

/* For an operation that enqueues no kernel (e.g. zero rows): a marker
 * that honours the wait list and produces the out-event. */
clxent_status clx_cl_empty_op(clxent_context *ctx, const clx_op *op);

#endif /* CLXENT_OPENCL_RUNTIME_H */
