/*
 * clxent: softmax cross-entropy loss and its gradient on any OpenCL device,
 * with a plain-C host backend that is both the fallback and the reference.
 *
 * Conventions (see README.md):
 * - Every call returns a clxent_status; outputs come back through pointers.
 * - A context keeps the full message of its last error
 *   (clxent_context_message); clxent_status_string gives a static text.
 * - Device memory is passed as value descriptors (clxent_matrix,
 *   clxent_vector): buffer, element offset, shape, row stride, data type.
 * - Operations on buffers are asynchronous on the context's queue. The
 *   optional clxent_events argument carries a wait list and an out-event.
 *   The host backend runs them synchronously and sets the out-event to NULL.
 * - Bad input returns a status and a message naming the argument; nothing
 *   is written and the context stays usable.
 */
#ifndef CLXENT_CLXENT_H
#define CLXENT_CLXENT_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Public symbols are exported; everything internal stays hidden. */
#if defined(CLXENT_BUILDING) && defined(__GNUC__)
#define CLXENT_API __attribute__((visibility("default")))
#else
#define CLXENT_API
#endif

#define CLXENT_VERSION_MAJOR 0
#define CLXENT_VERSION_MINOR 3
#define CLXENT_VERSION_PATCH 0
#define CLXENT_VERSION_STRING "0.3.0"

/* The version of the library actually linked, e.g. "0.3.0". */
CLXENT_API const char *clxent_version(void);

/* ------------------------------------------------------------------ */
/* Status codes: one list generates the enum, the names and the texts. */

#define CLXENT_STATUS_LIST(X)                                                  \
    X(OK, 0, "success")                                                        \
    X(NULL_POINTER, 1, "a required pointer argument is NULL")                  \
    X(INVALID_ARGUMENT, 2, "an argument has an invalid value")                 \
    X(INVALID_SHAPE, 3, "shapes, strides or lengths do not agree")             \
    X(INVALID_DTYPE, 4, "unsupported data type or data type combination")      \
    X(SIZE_OVERFLOW, 5, "a size computation overflows")                        \
    X(BUFFER_TOO_SMALL, 6, "a buffer is smaller than its shape needs")         \
    X(WRONG_CONTEXT, 7, "a buffer or event belongs to another context")        \
    X(TARGET_OUT_OF_RANGE, 8,                                                  \
      "a class index is outside [0, C) and is not ignore_index")               \
    X(DEVICE_NOT_FOUND, 9, "no device matches the selection")                  \
    X(BUILD_FAILED, 10, "a kernel program failed to build")                    \
    X(OUT_OF_MEMORY, 11, "out of host or device memory")                       \
    X(OPENCL_ERROR, 12, "an OpenCL call failed")                               \
    X(IO_ERROR, 13, "a file could not be read")                                \
    X(UNSUPPORTED, 14, "not supported by this backend or device")

typedef enum clxent_status {
#define CLXENT_STATUS_ENUM_(name, code, text) CLXENT_STATUS_##name = code,
    CLXENT_STATUS_LIST(CLXENT_STATUS_ENUM_)
#undef CLXENT_STATUS_ENUM_
} clxent_status;

/* Static text for a status ("success"); never NULL, also for unknown codes. */
CLXENT_API const char *clxent_status_string(clxent_status status);
/* Static name of a status ("CLXENT_STATUS_OK"); never NULL. */
CLXENT_API const char *clxent_status_name(clxent_status status);

/* ------------------------------------------------------------------ */
/* Data types, backends, devices. */

typedef enum clxent_dtype {
    CLXENT_F32 = 1,
    CLXENT_F16 = 2,  /* IEEE half, through vload_half: no extension needed */
    CLXENT_BF16 = 3, /* bfloat16, through 16-bit integer loads */
    CLXENT_I32 = 4,  /* class indices */
    CLXENT_I64 = 5   /* class indices */
} clxent_dtype;

/* Bytes per element (0 for an unknown type). */
CLXENT_API size_t clxent_dtype_size(clxent_dtype dtype);
/* "f32", "f16", "bf16", "i32", "i64", or "unknown". */
CLXENT_API const char *clxent_dtype_name(clxent_dtype dtype);

typedef enum clxent_backend {
    CLXENT_BACKEND_HOST = 1,  /* built-in C reference, double accumulation */
    CLXENT_BACKEND_OPENCL = 2
} clxent_backend;

/* What a device is. Strings are NUL-terminated and may be truncated. */
typedef struct clxent_device_info {
    clxent_backend backend;
    int platform_index; /* -1 for host and for a caller's queue not listed */
    int device_index;
    char spec[32];      /* the spec that selects it: "0:0" or "host" */
    char platform[128];
    char name[128];
    char vendor[128];
    char driver_version[64];
    char device_version[64];   /* "OpenCL 3.0 ..." */
    char c_version[64];        /* "OpenCL C 1.2 ..." */
    char type[16];             /* "gpu", "cpu", "accelerator", "host", ... */
    cl_uint compute_units;
    size_t max_work_group_size;
    cl_ulong global_mem_bytes;
    cl_ulong local_mem_bytes;
    cl_ulong max_alloc_bytes;
    int fp16; /* cl_khr_fp16 present (clxent does not need it) */
    int fp64; /* cl_khr_fp64 present */
    /* Properties that failed to query, "name: CL_ERROR (code); ...". */
    char errors[256];
    /* Why the selector chose this device (set by context creation). */
    char reason[160];
} clxent_device_info;

/* Enumerates every OpenCL device and then the host backend (always last),
 * the two-call way: with infos NULL, only *count is set. With infos,
 * fills min(capacity, total) entries and sets *count to the total.
 * No OpenCL platform is a normal result (only host is listed).
 * Statuses: OK; NULL_POINTER (count). */
CLXENT_API clxent_status clxent_devices_list(clxent_device_info *infos, size_t capacity,
                                  size_t *count);

/* Resolves a device spec without creating a context:
 *   "host"                    built-in C backend
 *   "P:D"                     OpenCL platform P, device D (as listed)
 *   "gpu" "cpu" "accelerator" first OpenCL device of that type
 *   any other text            first device whose platform name or
 *                             vendor contains it, case-insensitively,
 *                             else first whose device name or vendor
 *                             does (PoCL's platform is "Portable
 *                             Computing Language"; its vendor says
 *                             "pocl"; its device name may say "Intel")
 *   NULL or ""                first GPU, else first OpenCL device, else host
 * On DEVICE_NOT_FOUND the message (if message is not NULL) lists what
 * exists. info->reason says why the device was chosen.
 * Statuses: OK, NULL_POINTER (info), DEVICE_NOT_FOUND, INVALID_ARGUMENT
 * (a malformed "P:D"). */
CLXENT_API clxent_status clxent_device_resolve(const char *spec, clxent_device_info *info,
                                    char *message, size_t message_size);

/* ------------------------------------------------------------------ */
/* Contexts. */

typedef struct clxent_context clxent_context;

/* Creates a context on the device that spec selects (see
 * clxent_device_resolve). NULL spec reads the environment variable
 * CLXENT_DEVICE. Owns its own cl_context and an in-order queue with
 * profiling enabled. Like sqlite3_open: unless memory runs out, *ctx is
 * set even on failure, to a context that only answers
 * clxent_context_message and clxent_context_destroy; the caller destroys
 * it either way. An OpenCL context resolves its tuning parameters here
 * (see "Tuning" below): a CLXENT_TUNING_FILE that does not parse, or an
 * experiment variable out of range, is INVALID_ARGUMENT naming the file
 * and line or the variable; an unreadable file is IO_ERROR. Statuses: OK,
 * NULL_POINTER, DEVICE_NOT_FOUND, INVALID_ARGUMENT, IO_ERROR,
 * OUT_OF_MEMORY, OPENCL_ERROR. */
CLXENT_API clxent_status clxent_context_create(const char *spec, clxent_context **ctx);

/* Creates a context on the caller's queue, which is retained and released
 * on destroy. Work is enqueued on that queue; device timing
 * (clxent_context_last_time_ns) needs profiling enabled on it. The queue
 * must be in-order: the steps inside one call depend on in-order
 * execution, so a queue with CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE gives
 * UNSUPPORTED (create an in-order queue on the same cl_context for
 * clxent). Same failure contract as clxent_context_create (tuning
 * included). Statuses: OK, NULL_POINTER, UNSUPPORTED, INVALID_ARGUMENT,
 * IO_ERROR, OUT_OF_MEMORY, OPENCL_ERROR. */
CLXENT_API clxent_status clxent_context_create_from_queue(cl_command_queue queue,
                                               clxent_context **ctx);

/* Waits for the context's queued work and frees it. Accepts NULL. The
 * context does not own its buffers, which may be released before or after
 * it in any order (each keeps what it needs, as a cl_mem keeps its
 * cl_context); a buffer whose context is gone can only be released, and
 * any other context refuses it with WRONG_CONTEXT. */
CLXENT_API void clxent_context_destroy(clxent_context *ctx);

/* Copies the chosen device's description into *info. Statuses: OK,
 * NULL_POINTER, INVALID_ARGUMENT (a context that failed to create). */
CLXENT_API clxent_status clxent_context_info(const clxent_context *ctx,
                                  clxent_device_info *info);

/* Full message of the last error on this context ("" after success):
 * function, argument, OpenCL error name and number, build log. Valid until
 * the next call on the context. Never NULL; NULL ctx gives a fixed text. */
CLXENT_API const char *clxent_context_message(const clxent_context *ctx);

/* Records an error on ctx as the library's own calls do ("function:
 * message" in clxent_context_message), for libraries built on clxent
 * (clxent_mpi reports another rank's failure this way). Returns status.
 * NULL ctx: returns status, records nothing. */
CLXENT_API clxent_status clxent_context_set_error(clxent_context *ctx,
                                                  clxent_status status,
                                                  const char *function,
                                                  const char *message);

/* The context's queue (NULL on the host backend). Not retained. */
CLXENT_API cl_command_queue clxent_context_queue(const clxent_context *ctx);

/* Blocks until all work enqueued by this context finished. Reports a
 * target error found by a deferred check (CLXENT_CHECK_DEFERRED).
 * Statuses: OK, NULL_POINTER, TARGET_OUT_OF_RANGE, OPENCL_ERROR. */
CLXENT_API clxent_status clxent_finish(clxent_context *ctx);

/* Device time in nanoseconds of the most recent operation, from its first
 * kernel's start to its last kernel's end. Blocks until that operation
 * finished. Statuses: OK, NULL_POINTER, UNSUPPORTED (host backend, or a
 * queue without profiling), INVALID_ARGUMENT (no operation yet),
 * OPENCL_ERROR. */
CLXENT_API clxent_status clxent_context_last_time_ns(clxent_context *ctx,
                                          uint64_t *nanoseconds);

/* Device memory the context holds beyond the caller's buffers: scratch
 * for row statistics and partial sums (O(rows), kept and reused between
 * operations, grown to the largest so far) plus a 32-byte status word.
 * 0 on the host backend, which allocates per call. Does not block.
 * Statuses: OK, NULL_POINTER. */
CLXENT_API clxent_status clxent_context_memory(const clxent_context *ctx,
                                               size_t *bytes);

/* Waits for the context's queued work, then frees its scratch memory (the
 * next operation allocates what it needs again). Statuses: OK,
 * NULL_POINTER, OPENCL_ERROR. */
CLXENT_API clxent_status clxent_context_trim(clxent_context *ctx);

/* ------------------------------------------------------------------ */
/* Tuning (docs/tuning.md). An OpenCL context resolves its kernel
 * parameters once, at creation: the class defaults (CPU or GPU), then the
 * built-in database entry that matches the device, then the tuning file
 * named by the environment variable CLXENT_TUNING_FILE (as `clxent tune`
 * writes it; a corrupt or wrong-version file fails the creation with
 * INVALID_ARGUMENT naming the file and line), then the experiment
 * variables (CLXENT_VEC, ...). Results stay within the documented
 * accuracy under any parameters; the bits may change. With CLXENT_TRACE=1
 * every operation prints one line on stderr:
 *   clxent: <op> <shape> <dtype> -> <kernel>[+<kernel>...] (<parameters>)
 *   [tuning: <source>]
 * and the line of the last operation is kept (clxent_context_last_trace). */

/* Name and one-line meaning of tuning parameter `index` (0, 1, ...);
 * returns NULL past the last one. */
CLXENT_API const char *clxent_param_name(size_t index, const char **meaning);

/* Sets parameter `name` on this context only, from now on (as CLBlast's
 * OverrideParameters). Statuses: OK, NULL_POINTER, INVALID_ARGUMENT (no
 * such parameter, or a value out of its range: the message says which),
 * UNSUPPORTED (host backend). */
CLXENT_API clxent_status clxent_context_set_param(clxent_context *ctx,
                                                  const char *name,
                                                  long long value);
/* Reads parameter `name` of this context. Same statuses. */
CLXENT_API clxent_status clxent_context_get_param(const clxent_context *ctx,
                                                  const char *name,
                                                  long long *value);
/* Undoes every clxent_context_set_param: back to the parameters resolved
 * at creation. Statuses: OK, NULL_POINTER, UNSUPPORTED (host backend). */
CLXENT_API clxent_status clxent_context_reset_params(clxent_context *ctx);

/* Where the context's parameters came from: "db:NAME" (a database
 * entry), the tuning file's path, or "defaults (cpu|gpu)", followed by
 * " +VAR=VALUE" for each experiment variable and " +set" after
 * clxent_context_set_param; "host" on the host backend. Never NULL. */
CLXENT_API const char *clxent_context_tuning(const clxent_context *ctx);

/* The trace line of the last operation enqueued on this context (see
 * above; "" before the first). Valid until the next call. Never NULL. */
CLXENT_API const char *clxent_context_last_trace(const clxent_context *ctx);

/* Writes the context's parameters as a tuning file at path (for its
 * device; `name` and `note` go into the file, either may be NULL: one
 * line each, of at most 95 and 255 bytes, else INVALID_ARGUMENT and
 * nothing written). Statuses: OK, NULL_POINTER, INVALID_ARGUMENT,
 * IO_ERROR, UNSUPPORTED (host backend). */
CLXENT_API clxent_status clxent_context_save_tuning(clxent_context *ctx,
                                                    const char *path,
                                                    const char *name,
                                                    const char *note);

/* ------------------------------------------------------------------ */
/* Buffers: device memory on OpenCL, plain memory on the host backend. */

typedef struct clxent_buffer clxent_buffer;

/* Allocates bytes (> 0) of device memory, uninitialised; the caller owns
 * it (clxent_buffer_release). Does not block. Statuses: OK, NULL_POINTER,
 * INVALID_ARGUMENT (0 bytes), OUT_OF_MEMORY (also beyond the device's
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE), OPENCL_ERROR. */
CLXENT_API clxent_status clxent_buffer_create(clxent_context *ctx, size_t bytes,
                                   clxent_buffer **buffer);

/* Wraps the caller's cl_mem (retained, released by clxent_buffer_release).
 * Its size is read from CL_MEM_SIZE; an element offset into it goes in the
 * matrix or vector descriptor. OpenCL contexts only; the cl_mem must
 * belong to the context's cl_context. Statuses: OK, NULL_POINTER,
 * WRONG_CONTEXT, UNSUPPORTED (host backend), OPENCL_ERROR. */
CLXENT_API clxent_status clxent_buffer_wrap(clxent_context *ctx, cl_mem mem,
                                 clxent_buffer **buffer);

/* Wraps the caller's host memory (bytes > 0; it stays the caller's, and
 * must stay valid and in place until the buffer is released) without a
 * copy where the device works in host memory: the host backend uses it
 * as it is; on OpenCL the cl_mem is made with CL_MEM_USE_HOST_PTR, which
 * CPU drivers (PoCL, Intel's) use in place, at any alignment, and other
 * devices mirror. While an operation that uses the buffer is queued, the
 * host must leave the memory alone. The memory's own bytes move with the
 * usual calls, free where the device works in place: clxent_buffer_read
 * into the wrapped memory itself makes what the device wrote visible there
 * (a map and unmap), and clxent_buffer_write from it hands the host's
 * changes to the device. Statuses: OK, NULL_POINTER, INVALID_ARGUMENT (0
 * bytes), OUT_OF_MEMORY, OPENCL_ERROR. */
CLXENT_API clxent_status clxent_buffer_wrap_host(clxent_context *ctx,
                                                 void *memory, size_t bytes,
                                                 clxent_buffer **buffer);

/* Blocking copies between host memory and a buffer of this context
 * (write: host to buffer; read: buffer to host). byte_offset + bytes must
 * lie inside the buffer; bytes may be 0. Statuses: OK, NULL_POINTER,
 * WRONG_CONTEXT, SIZE_OVERFLOW, BUFFER_TOO_SMALL, OPENCL_ERROR. */
CLXENT_API clxent_status clxent_buffer_write(clxent_context *ctx, clxent_buffer *buffer,
                                  size_t byte_offset, size_t bytes,
                                  const void *source);
CLXENT_API clxent_status clxent_buffer_read(clxent_context *ctx,
                                 const clxent_buffer *buffer,
                                 size_t byte_offset, size_t bytes,
                                 void *destination);

/* Frees a buffer (or drops the wrap's reference). Accepts NULL. Its
 * context may already be destroyed. */
CLXENT_API void clxent_buffer_release(clxent_buffer *buffer);

/* Size in bytes (0 for NULL). */
CLXENT_API size_t clxent_buffer_size(const clxent_buffer *buffer);
/* The cl_mem behind a buffer (NULL on the host backend). Not retained. */
CLXENT_API cl_mem clxent_buffer_mem(const clxent_buffer *buffer);

/* ------------------------------------------------------------------ */
/* Descriptors. A buffer of NULL means "not given" where optional. */

typedef struct clxent_matrix {
    clxent_buffer *buffer;
    size_t offset; /* elements before element (0,0) */
    size_t rows;
    size_t cols;
    size_t stride; /* elements between row starts, >= cols */
    clxent_dtype dtype;
} clxent_matrix;

typedef struct clxent_vector {
    clxent_buffer *buffer;
    size_t offset; /* elements */
    size_t length;
    clxent_dtype dtype;
} clxent_vector;

/* A contiguous rows x cols matrix at the start of buffer. */
static inline clxent_matrix clxent_matrix_of(clxent_buffer *buffer,
                                             size_t rows, size_t cols,
                                             clxent_dtype dtype) {
    clxent_matrix m = {buffer, 0, rows, cols, cols, dtype};
    return m;
}
/* A vector of length elements at the start of buffer. */
static inline clxent_vector clxent_vector_of(clxent_buffer *buffer,
                                             size_t length,
                                             clxent_dtype dtype) {
    clxent_vector v = {buffer, 0, length, dtype};
    return v;
}

/* Targets: exactly one of indices (int32/int64, length rows) and probs
 * (rows x cols, the logits' dtype) has a buffer. */
typedef struct clxent_targets {
    clxent_vector indices;
    clxent_matrix probs;
} clxent_targets;

/* Wait list and out-event for one operation (all optional). The out-event
 * completes when the whole operation has; release it with
 * clReleaseEvent. It is written only when the call succeeds. */
typedef struct clxent_events {
    cl_uint num_wait;
    const cl_event *wait_list;
    cl_event *out_event;
} clxent_events;

/* ------------------------------------------------------------------ */
/* Loss options, with PyTorch's names where PyTorch has the option. */

typedef enum clxent_reduction {
    CLXENT_REDUCTION_NONE = 0,
    CLXENT_REDUCTION_SUM = 1,
    CLXENT_REDUCTION_MEAN = 2
} clxent_reduction;

/* How device-resident class indices are range-checked. */
typedef enum clxent_target_check {
    /* A small kernel checks the targets; the operation's kernels are
     * queued behind it and write nothing when it finds a bad index; the
     * call waits for its verdict, so a bad index returns
     * TARGET_OUT_OF_RANGE from the call itself with every output as it
     * was. One host wait per call (the device does not wait for it).
     * That wait is also for the call's whole wait list (and for the work
     * queued before the call): a call whose wait list holds a user event
     * that the same thread completes after the call never returns, and
     * an event in it that fails fails the call (OPENCL_ERROR). DEFERRED
     * does not wait. */
    CLXENT_CHECK_SYNC = 0,
    /* No sync: the call waits for nothing, its wait list included;
     * kernels still never read out of bounds; a bad row gets a NaN loss
     * and zero gradient, and the next clxent_finish returns
     * TARGET_OUT_OF_RANGE naming the first bad row. */
    CLXENT_CHECK_DEFERRED = 1
} clxent_target_check;

typedef struct clxent_loss_options {
    clxent_reduction reduction; /* default MEAN */
    int64_t ignore_index;       /* default -100; class-index targets only */
    float label_smoothing;      /* in [0, 1], default 0 */
    float z_loss;               /* >= 0, coefficient of lse^2, default 0 */
    float grad_scale;           /* upstream gradient G, default 1 */
    float normalizer; /* > 0 replaces the mean's denominator; 0 = unset */
    int all_ignored_zero; /* mean over no valid row: 0 instead of NaN */
    int in_place; /* backward/fused: grad may be the logits (destructive) */
    clxent_target_check target_check;
} clxent_loss_options;

#define CLXENT_LOSS_OPTIONS_INIT                                               \
    {CLXENT_REDUCTION_MEAN, -100, 0.0f, 0.0f, 1.0f, 0.0f, 0, 0,                \
     CLXENT_CHECK_SYNC}

/* Sets *options to CLXENT_LOSS_OPTIONS_INIT. */
CLXENT_API void clxent_loss_options_init(clxent_loss_options *options);

/* ------------------------------------------------------------------ */
/* Operations. Every one below checks all its arguments before anything is
 * enqueued: NULL_POINTER, INVALID_ARGUMENT, INVALID_SHAPE, INVALID_DTYPE,
 * SIZE_OVERFLOW, BUFFER_TOO_SMALL or WRONG_CONTEXT, with a message naming
 * the argument, write nothing. Then BUILD_FAILED (the first use of a
 * kernel variant builds it), OUT_OF_MEMORY or OPENCL_ERROR can come from
 * the device, and TARGET_OUT_OF_RANGE from those taking class indices.
 * They return once the work is enqueued (with class indices and the
 * default SYNC target check, once its small check kernel has also run,
 * which waits for the call's wait list: see CLXENT_CHECK_SYNC); the host
 * backend runs them to completion. Outputs belong to the caller's
 * buffers; nothing is kept. */

/* Primitives. x: R x C logits (f32/f16/bf16). Row vectors are f32. */

/* max_out[r] = max_c x[r][c]. */
CLXENT_API clxent_status clxent_row_max(clxent_context *ctx, const clxent_matrix *x,
                             const clxent_vector *max_out,
                             const clxent_events *events);

/* sum_out[r] = sum_c exp(x[r][c] - row_max[r]) (compensated sum). */
CLXENT_API clxent_status clxent_row_expsum(clxent_context *ctx, const clxent_matrix *x,
                                const clxent_vector *row_max,
                                const clxent_vector *sum_out,
                                const clxent_events *events);

/* out = log_softmax(x) (first) or softmax(x) (second) row-wise; out has
 * x's shape and may use another float dtype and stride. */
CLXENT_API clxent_status clxent_log_softmax(clxent_context *ctx, const clxent_matrix *x,
                                 const clxent_matrix *out,
                                 const clxent_events *events);
CLXENT_API clxent_status clxent_softmax(clxent_context *ctx, const clxent_matrix *x,
                             const clxent_matrix *out,
                             const clxent_events *events);

/* PyTorch NLLLoss over given log-probabilities logp (R x C): loss is R
 * values for reduction none, else 1. Uses reduction, ignore_index,
 * grad_scale, normalizer, all_ignored_zero, target_check; label_smoothing
 * and z_loss must be 0. weights: C f32 values or no buffer. */
CLXENT_API clxent_status clxent_nll_loss(clxent_context *ctx, const clxent_matrix *logp,
                              const clxent_vector *targets,
                              const clxent_vector *weights,
                              const clxent_loss_options *options,
                              const clxent_vector *loss,
                              const clxent_events *events);

/* Gradient of clxent_nll_loss with respect to logp: -G*s*w[y] at the
 * target column, 0 elsewhere. grad_rows: per-row G for reduction none
 * (optional, multiplies grad_scale). grad has logp's shape and dtype. */
CLXENT_API clxent_status clxent_nll_loss_backward(clxent_context *ctx,
                                       const clxent_matrix *logp,
                                       const clxent_vector *targets,
                                       const clxent_vector *weights,
                                       const clxent_loss_options *options,
                                       const clxent_vector *grad_rows,
                                       const clxent_matrix *grad,
                                       const clxent_events *events);

/* ------------------------------------------------------------------ */
/* Cross-entropy (docs/semantics.md). loss: R f32 values for reduction none,
 * else 1. lse: R f32 values, the per-row log-sum-exp kept for backward. */

/* Loss and, if lse has a buffer, the per-row log-sum-exp. */
CLXENT_API clxent_status clxent_cross_entropy_forward(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *loss,
    const clxent_vector *lse, const clxent_events *events);

/* Gradient with respect to the logits from the logits and the saved lse:
 * the general form of (softmax - onehot). grad_rows as in
 * clxent_nll_loss_backward. grad has the logits' shape and dtype; it may
 * be the logits themselves when options->in_place is set. */
CLXENT_API clxent_status clxent_cross_entropy_backward(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *lse,
    const clxent_vector *grad_rows, const clxent_matrix *grad,
    const clxent_events *events);

/* Fused forward + backward: loss, optional lse, and the gradient, reading
 * each logit at most twice. With options->in_place, grad may be the
 * logits (same buffer, offset and stride), which it then overwrites. */
CLXENT_API clxent_status clxent_cross_entropy(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *grad_rows,
    const clxent_vector *loss, const clxent_vector *lse,
    const clxent_matrix *grad, const clxent_events *events);

/* Blocking convenience on host arrays (any backend): copies in, runs the
 * fused path (forward only when grad is NULL), copies out, waits.
 * logits: rows x cols contiguous, dtype f32/f16/bf16 (16-bit types as
 * uint16_t bits). targets: int32/int64 indices (target_dtype I32/I64) or
 * rows x cols probabilities (target_dtype == dtype). weights: cols floats
 * or NULL. loss: rows floats for reduction none, else 1. lse: rows floats
 * or NULL. grad: rows x cols of dtype, or NULL. */
CLXENT_API clxent_status clxent_cross_entropy_host(
    clxent_context *ctx, size_t rows, size_t cols, clxent_dtype dtype,
    const void *logits, clxent_dtype target_dtype, const void *targets,
    const float *weights, const clxent_loss_options *options, float *loss,
    float *lse, void *grad);

/* Element-wise copy with conversion between float dtypes (same shape;
 * strides and offsets may differ). The same dtype on both sides copies the
 * bits exactly (NaN payloads included). Also the benchmark's copy
 * roofline. */
CLXENT_API clxent_status clxent_copy(clxent_context *ctx, const clxent_matrix *src,
                          const clxent_matrix *dst,
                          const clxent_events *events);

/* ------------------------------------------------------------------ */
/* Tensors with the class axis anywhere (docs/semantics.md, "Layouts"):
 * PyTorch's (N, C, d1..dk) inputs, unbatched (C) inputs, softmax over any
 * dim, without a transpose. The matrix calls above are the case inner 1. */

#define CLXENT_MAX_INNER_DIMS 7

/* A tensor seen as outer x classes x inner: element (o, c, i) lies at
 * offset + o*outer_stride + c*class_stride + i*inner_stride elements. A
 * row is one (o, i) position; its classes lie class_stride apart.
 * PyTorch's contiguous (N, C, d1..dk): outer N, classes C, inner
 * d1*...*dk, strides C*inner, inner and 1 (clxent_tensor_of). A row-major
 * matrix: inner 1, class stride 1, outer stride its row stride
 * (clxent_tensor_from_matrix). Per-row arrays (targets, losses, lse,
 * grad_rows, row statistics) are tensors with classes 1, whose class
 * stride is not used. An output's strides must nest (sorted by stride,
 * each exceeds the span of the smaller ones over their extents), so no
 * two of its elements share an address; inputs may overlap (a stride of 0
 * repeats an element). inner_dims, when inner_rank > 0, are the dimensions
 * d1..dk whose product is inner: messages then name a position as PyTorch
 * indexes it, (n, d1, d2), besides the flat row (the class indices'
 * inner_dims when they have them, else the logits'). */
typedef struct clxent_tensor {
    clxent_buffer *buffer;
    size_t offset; /* elements */
    size_t outer, classes, inner;
    size_t outer_stride, class_stride, inner_stride; /* elements */
    clxent_dtype dtype;
    unsigned inner_rank;
    size_t inner_dims[CLXENT_MAX_INNER_DIMS];
} clxent_tensor;

/* A contiguous outer x classes x inner tensor at the start of buffer. */
static inline clxent_tensor clxent_tensor_of(clxent_buffer *buffer,
                                             size_t outer, size_t classes,
                                             size_t inner,
                                             clxent_dtype dtype) {
    clxent_tensor t = {buffer, 0,        outer, classes, inner,
                       classes * inner, inner, 1,     dtype, 0, {0}};
    return t;
}
/* A contiguous per-row array (outer x inner, classes 1). */
static inline clxent_tensor clxent_rows_of(clxent_buffer *buffer,
                                           size_t outer, size_t inner,
                                           clxent_dtype dtype) {
    return clxent_tensor_of(buffer, outer, 1, inner, dtype);
}
/* The tensor of a matrix (inner 1) and of a vector (a row per element). */
static inline clxent_tensor clxent_tensor_from_matrix(const clxent_matrix *m) {
    clxent_tensor t = {m->buffer, m->offset, m->rows, m->cols, 1,
                       m->stride, 1,         1,       m->dtype, 0, {0}};
    return t;
}
static inline clxent_tensor clxent_tensor_from_vector(const clxent_vector *v) {
    clxent_tensor t = {v->buffer, v->offset, v->length, 1, 1,
                       1,         1,         1,         v->dtype, 0, {0}};
    return t;
}

/* Targets of a tensor: exactly one of indices (outer x inner, int32/int64)
 * and probs (the logits' shape and dtype) has a buffer. */
typedef struct clxent_tensor_targets {
    clxent_tensor indices;
    clxent_tensor probs;
} clxent_tensor_targets;

/* The options of the tensor calls. It grows at its end: size tells the
 * library which fields the caller's clxent.h had, so a program built
 * against an older header keeps working (the fields it did not know take
 * their defaults). Always start from CLXENT_OPTIONS_INIT or
 * clxent_options_init. */
typedef struct clxent_options {
    size_t size;              /* sizeof(clxent_options) as compiled */
    clxent_loss_options loss; /* as for the matrix calls */
    /* Logit transforms, applied to every logit before everything else in
     * the same pass (the transformed logits are never stored), the
     * gradient by the chain rule: first x' = logit_scale * x (default 1),
     * then with softcap > 0, x' = softcap * tanh(x' / softcap) (Gemma 2;
     * 0 = off). A lse saved for backward is the lse of x'. */
    float softcap;
    float logit_scale;
    /* Non-zero: check every argument as the call would and return its
     * status, enqueueing and writing nothing (class indices, which only
     * the device reads, are not checked). Lets a caller learn that a
     * whole sequence of calls will be accepted before any of them writes:
     * clxent_mpi agrees on that across ranks. Default 0. */
    int validate_only;
} clxent_options;

#define CLXENT_OPTIONS_INIT                                                    \
    {sizeof(clxent_options), CLXENT_LOSS_OPTIONS_INIT, 0.0f, 1.0f, 0}

/* Sets *options to CLXENT_OPTIONS_INIT. */
CLXENT_API void clxent_options_init(clxent_options *options);

/* The tensor forms of the operations above: the same arguments, as
 * tensors, with the same statuses and rules; per-row outputs (max, sum,
 * loss for reduction none, lse) are outer x inner; reduced losses 1 x 1.
 * A bad class index reports its flat row, (o, i), and, with inner_dims,
 * (n, d1, ..). options may be NULL (the defaults). */
CLXENT_API clxent_status clxent_row_max_nd(clxent_context *ctx,
                                           const clxent_tensor *x,
                                           const clxent_tensor *max_out,
                                           const clxent_events *events);
CLXENT_API clxent_status clxent_row_expsum_nd(clxent_context *ctx,
                                              const clxent_tensor *x,
                                              const clxent_tensor *row_max,
                                              const clxent_tensor *sum_out,
                                              const clxent_events *events);
/* log_softmax and softmax over the class axis (any dim of a PyTorch
 * tensor: outer the dims before it, inner those after), after the logit
 * transforms of options. */
CLXENT_API clxent_status clxent_log_softmax_nd(clxent_context *ctx,
                                               const clxent_tensor *x,
                                               const clxent_options *options,
                                               const clxent_tensor *out,
                                               const clxent_events *events);
CLXENT_API clxent_status clxent_softmax_nd(clxent_context *ctx,
                                           const clxent_tensor *x,
                                           const clxent_options *options,
                                           const clxent_tensor *out,
                                           const clxent_events *events);
CLXENT_API clxent_status clxent_nll_loss_nd(
    clxent_context *ctx, const clxent_tensor *logp,
    const clxent_tensor *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *loss,
    const clxent_events *events);
CLXENT_API clxent_status clxent_nll_loss_backward_nd(
    clxent_context *ctx, const clxent_tensor *logp,
    const clxent_tensor *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *grad_rows,
    const clxent_tensor *grad, const clxent_events *events);
/* z_loss_out (optional): the z-loss part of the loss, zeta * lse^2 per
 * valid row (reduction none: outer x inner), else reduced as the loss is
 * (1 x 1), for logging; the loss itself includes it. */
CLXENT_API clxent_status clxent_cross_entropy_forward_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *loss,
    const clxent_tensor *lse, const clxent_tensor *z_loss_out,
    const clxent_events *events);
CLXENT_API clxent_status clxent_cross_entropy_backward_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *lse,
    const clxent_tensor *grad_rows, const clxent_tensor *grad,
    const clxent_events *events);
CLXENT_API clxent_status clxent_cross_entropy_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *grad_rows,
    const clxent_tensor *loss, const clxent_tensor *lse,
    const clxent_tensor *z_loss_out, const clxent_tensor *grad,
    const clxent_events *events);
CLXENT_API clxent_status clxent_copy_nd(clxent_context *ctx,
                                        const clxent_tensor *src,
                                        const clxent_tensor *dst,
                                        const clxent_events *events);

/* ------------------------------------------------------------------ */
/* Sharded vocabulary (docs/semantics.md, section 13): a row's classes
 * split across devices or ranks, shard k holding the global classes
 * [class_begin, class_begin + C_k) of every row (its logits tensor has
 * C_k classes) and the weights of those classes (C_k of them). Targets
 * stay global class indices; an index outside [0, classes_total) is
 * TARGET_OUT_OF_RANGE, one owned by another shard is not. Three steps,
 * only O(rows) numbers between shards:
 *   1. clxent_cross_entropy_partial_nd on every shard: a record per row;
 *   2. the records combined (clxent_partial_combine on a device,
 *      clxent_partial_combine_host on host arrays, or an MPI reduction),
 *      in any order, every shard's once;
 *   3. clxent_cross_entropy_finalize_nd: loss, lse and the z-loss part
 *      from the combined records, and on every shard
 *      clxent_cross_entropy_backward_shard_nd: the gradient of its
 *      classes from them.
 * The result equals the unsharded call within the bounds of section 10,
 * for every option (label smoothing uses classes_total). */
typedef struct clxent_shard {
    int64_t class_begin;   /* the global index of the shard's first class */
    int64_t classes_total; /* the classes of all shards together */
} clxent_shard;

/* A row's record: CLXENT_PARTIAL_FLOATS f32 values, the record tensor's
 * class axis (outer x CLXENT_PARTIAL_FLOATS x inner; contiguous rows:
 * clxent_tensor_of(buffer, outer, CLXENT_PARTIAL_FLOATS, inner, CLXENT_F32)
 * is R x 8 floats when inner is 1). x' are the transformed logits, a_c the
 * smoothing weights: w_c for class indices, w_c ((1 - eps) t_c + eps / C)
 * for probabilities, with C = classes_total. A and B are 0 for class
 * indices without label smoothing (the loss does not read them): every
 * step must get the same options. */
enum clxent_partial_field {
    CLXENT_PARTIAL_MAX = 0,    /* m = max_c x'_c (-inf: no class) */
    CLXENT_PARTIAL_SUM = 1,    /* S = sum_c exp(x'_c - m) = SUM + SUM_LO */
    CLXENT_PARTIAL_SUM_LO = 2, /*   (compensated: the sum's low part) */
    CLXENT_PARTIAL_A = 3,      /* sum_c a_c */
    CLXENT_PARTIAL_B = 4,      /* sum_c a_c (m - x'_c), relative to m */
    CLXENT_PARTIAL_XY = 5,     /* x'_y on the shard that owns y, else 0 */
    CLXENT_PARTIAL_WY = 6,     /* w_y on the shard that owns y, else 0 */
    CLXENT_PARTIAL_OWN = 7,    /* 1 on the shard that owns y, else 0 */
    CLXENT_PARTIAL_FLOATS = 8
};

/* Step 1: the records of a shard's columns. logits: outer x C_k x inner;
 * targets as for clxent_cross_entropy_nd (class indices global, outer x
 * inner; or probabilities of the shard's columns, the logits' shape);
 * weights: C_k or absent; options: the transforms and label_smoothing
 * (the loss options that act per class); records: f32, outer x
 * CLXENT_PARTIAL_FLOATS x inner. Checks the class indices against
 * [0, classes_total) (TARGET_OUT_OF_RANGE, nothing written). */
CLXENT_API clxent_status clxent_cross_entropy_partial_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_shard *shard, const clxent_options *options,
    const clxent_tensor *records, const clxent_events *events);

/* Step 2 on a device: out = a (+) b, row by row (out may be a or b).
 * Commutative, and the same compensated arithmetic as one device. */
CLXENT_API clxent_status clxent_partial_combine(clxent_context *ctx,
                                                const clxent_tensor *a,
                                                const clxent_tensor *b,
                                                const clxent_tensor *out,
                                                const clxent_events *events);
/* The same on host arrays of `rows` contiguous records (R x 8 floats,
 * out may be a or b), the same f32 steps as the device's (a device's exp
 * may differ from the host's in the last bit, so the results may too).
 * NULL_POINTER for a NULL array with rows > 0. */
CLXENT_API clxent_status clxent_partial_combine_host(const float *a,
                                                     const float *b,
                                                     float *out, size_t rows);

/* Step 3: from the combined records, the loss (reduction as options say;
 * mean: over W = the sum of w_y of the valid rows, or the row count for
 * probabilities, or options' normalizer), lse and the z-loss part, as
 * clxent_cross_entropy_forward_nd writes them. targets: the class indices
 * (outer x inner, for ignore_index and the range check) or, for
 * probability targets, a targets whose indices have no buffer (probs is
 * not read). lse and z_loss_out are optional. With class indices, a
 * valid row whose combined OWN is not 1 (a shard left out or combined
 * twice) is INVALID_ARGUMENT, here and in step 3's gradient. */
CLXENT_API clxent_status clxent_cross_entropy_finalize_nd(
    clxent_context *ctx, const clxent_tensor *records,
    const clxent_tensor_targets *targets, const clxent_shard *shard,
    const clxent_options *options, const clxent_tensor *loss,
    const clxent_tensor *lse, const clxent_tensor *z_loss_out,
    const clxent_events *events);

/* Step 3 on every shard: the gradient of its columns, as
 * clxent_cross_entropy_backward_nd would write those columns of the
 * unsharded gradient, from the combined records (lse = m + log S; W from
 * the records, or options' normalizer: give the global W there when the
 * rows are split too). Same arguments as step 1, plus grad_rows
 * (optional) and grad (the logits' shape). */
CLXENT_API clxent_status clxent_cross_entropy_backward_shard_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_shard *shard, const clxent_options *options,
    const clxent_tensor *records, const clxent_tensor *grad_rows,
    const clxent_tensor *grad, const clxent_events *events);

/* ------------------------------------------------------------------ */
/* Storage conversions on the host, each way (f32 to 16 bits rounds to
 * nearest even; NaN stays NaN). Pure functions, no context. */
CLXENT_API uint16_t clxent_f32_to_bf16(float value);
CLXENT_API float clxent_bf16_to_f32(uint16_t bits);
CLXENT_API uint16_t clxent_f32_to_f16(float value);
CLXENT_API float clxent_f16_to_f32(uint16_t bits);

#ifdef __cplusplus
}
#endif
#endif /* CLXENT_CLXENT_H */
