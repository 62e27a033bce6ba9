/* The core layer: what the entry points (api/) and the two backends
 * (reference/, opencl/) share: the operation description, the backend
 * interface, the context, errors, the fault seam and numeric helpers.
 * Not installed. */
#ifndef CLXENT_INTERNAL_H
#define CLXENT_INTERNAL_H

#include <clxent/clxent.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define CLX_MESSAGE_CAPACITY 16384 /* build logs can be long */

/* ---------------------------------------------------------------- */
/* Operations: the entry points (api/) validate the public arguments once
 * and fill a clx_op; backends run it without re-validating. Every array
 * is a tensor (outer x classes x inner, clxent.h): the matrix calls give
 * inner 1, per-row arrays have classes 1, and a row is one (o, i)
 * position, R = outer * inner of them. A descriptor whose buffer is NULL
 * is absent. */

typedef enum clx_op_kind {
    CLX_OP_ROW_MAX,      /* x -> vec_out (max) */
    CLX_OP_ROW_EXPSUM,   /* x, vec_in (max) -> vec_out (sum) */
    CLX_OP_LOG_SOFTMAX,  /* x -> mat_out */
    CLX_OP_SOFTMAX,      /* x -> mat_out */
    CLX_OP_NLL_FORWARD,  /* x (logp), indices, weights -> vec_out (loss) */
    CLX_OP_NLL_BACKWARD, /* x (logp, shape only), indices, weights,
                            grad_rows -> mat_out (grad) */
    CLX_OP_CE_FORWARD,   /* x, targets, weights -> vec_out (loss), lse_out,
                            z_out */
    CLX_OP_CE_BACKWARD,  /* x, targets, weights, vec_in (lse), grad_rows
                            -> mat_out (grad) */
    CLX_OP_CE_FUSED,     /* x, targets, weights, grad_rows -> vec_out
                            (loss), lse_out, z_out, mat_out (grad) */
    CLX_OP_COPY,         /* x -> mat_out, dtype conversion */
    /* the sharded vocabulary (clxent.h; records: R x CLXENT_PARTIAL_FLOATS) */
    CLX_OP_SHARD_PARTIAL,  /* x, targets, weights -> records */
    CLX_OP_SHARD_COMBINE,  /* x (records a), records (b) -> mat_out */
    CLX_OP_SHARD_FINALIZE, /* x (records), indices -> vec_out (loss),
                              lse_out, z_out */
    CLX_OP_SHARD_BACKWARD  /* x, targets, weights, records, grad_rows
                              -> mat_out (grad) */
} clx_op_kind;

/* Every option an operation takes (the loss options, the transforms). */
typedef struct clx_options {
    clxent_loss_options loss;
    float softcap;     /* 0: off */
    float logit_scale; /* 1: off */
    int validate_only; /* check the arguments, run nothing */
} clx_options;

typedef struct clx_op {
    clx_op_kind kind;
    const char *function; /* public name, for messages */
    clxent_tensor x;      /* logits, or logp for NLL */
    clxent_tensor indices;
    clxent_tensor probs;
    clxent_vector weights;
    clxent_tensor grad_rows;
    clxent_tensor vec_in;
    clxent_tensor vec_out; /* row statistics, or the loss (1 x 1 reduced) */
    clxent_tensor lse_out;
    clxent_tensor z_out;   /* the z-loss part (1 x 1 reduced) */
    clxent_tensor mat_out;
    clxent_tensor records; /* the sharded ops' records */
    /* The shard: x holds global classes [class_begin, class_begin +
     * x.classes) of classes_total; 0 for every other operation, whose
     * class indices are in [0, x.classes). */
    int64_t class_begin, classes_total;
    clx_options opt;
    const clxent_events *events; /* may be NULL */
} clx_op;

/* The classes the class indices range over. */
static inline size_t clx_index_range(const clx_op *op) {
    return op->classes_total > 0 ? (size_t)op->classes_total
                                 : op->x.classes;
}

/* Rows of an operation, and the address of element (r, c) of a tensor
 * (r a row of x's outer x inner, c a class; 0 for per-row arrays). */
static inline size_t clx_rows(const clx_op *op) {
    return op->x.outer * op->x.inner;
}
static inline size_t clx_at(const clxent_tensor *t, size_t r, size_t c) {
    size_t o = t->inner ? r / t->inner : 0, i = t->inner ? r % t->inner : 0;
    return t->offset + o * t->outer_stride + c * t->class_stride +
           i * t->inner_stride;
}

/* ---------------------------------------------------------------- */
/* Backends: the one interface between the entry points (api/) and the
 * host reference (reference/) and OpenCL (opencl/) backends. */

struct clx_backend_ops;

struct clxent_buffer {
    /* The owner's serial, not its address: a buffer may outlive its
     * context, whose address a new context may then reuse. */
    uint64_t owner;
    /* Releases it without the context (the ops are static). */
    const struct clx_backend_ops *backend;
    size_t bytes;
    cl_mem mem;  /* OpenCL backend */
    void *host;  /* host backend */
    /* The caller's memory a clxent_buffer_wrap_host buffer lives in (not
     * ours to free), else NULL. */
    void *user;
};

typedef struct clx_backend_ops {
    const char *name;
    void (*destroy)(clxent_context *ctx);
    clxent_status (*buffer_create)(clxent_context *ctx, clxent_buffer *buf);
    /* NULL: the backend has no cl_mem to wrap */
    clxent_status (*buffer_wrap)(clxent_context *ctx, clxent_buffer *buf,
                                 cl_mem mem);
    /* Fills buf->mem or buf->host over the caller's memory buf->user. */
    clxent_status (*buffer_wrap_host)(clxent_context *ctx, clxent_buffer *buf);
    void (*buffer_release)(clxent_buffer *buf);
    clxent_status (*buffer_write)(clxent_context *ctx, clxent_buffer *buf,
                                  size_t offset, size_t bytes,
                                  const void *src);
    clxent_status (*buffer_read)(clxent_context *ctx,
                                 const clxent_buffer *buf, size_t offset,
                                 size_t bytes, void *dst);
    /* Runs a validated operation; fills ctx->last_kernels. */
    clxent_status (*run)(clxent_context *ctx, const clx_op *op);
    clxent_status (*finish)(clxent_context *ctx);
    /* Scratch bytes held (clxent_context_memory) and their release. */
    size_t (*memory)(const clxent_context *ctx);
    clxent_status (*trim)(clxent_context *ctx);
    clxent_status (*last_time_ns)(clxent_context *ctx, uint64_t *ns);
    /* Tuning parameters (NULL: none): get (set 0) or set one by name, or
     * reset all (name NULL). */
    clxent_status (*param)(clxent_context *ctx, const char *name, int set,
                           long long *value);
    clxent_status (*save_tuning)(clxent_context *ctx, const char *path,
                                 const char *name, const char *note);
} clx_backend_ops;

extern const clx_backend_ops clx_host_backend;
extern const clx_backend_ops clx_opencl_backend;

/* The OpenCL backend's constructor (opencl/backend.c): on the given
 * device (queue NULL: its own context and profiling queue) or on the
 * caller's queue (retained). Sets ctx->backend, ctx->cl_context,
 * ctx->queue and ctx->tuning; on failure leaves ctx->backend NULL, nothing
 * allocated and the reason in the message. */
clxent_status clx_opencl_create(clxent_context *ctx, cl_platform_id platform,
                                cl_device_id device, cl_command_queue queue);

/* Name and meaning of the OpenCL backend's tuning parameter `index`; NULL
 * past the last (opencl/backend.c). */
const char *clx_opencl_param_name(size_t index, const char **meaning);

struct clx_opencl_state; /* opencl/runtime/runtime.h */

#define CLX_TRACE_CAPACITY 512

struct clxent_context {
    const clx_backend_ops *backend; /* NULL: creation failed */
    uint64_t serial; /* process-unique, never 0: what buffers name */
    clxent_device_info info;
    struct clx_opencl_state *cl;    /* OpenCL backend only */
    /* The OpenCL handles the entry points check against (NULL on the
     * host backend); owned by the backend. */
    cl_context cl_context;
    cl_command_queue queue;
    int trace;                      /* CLXENT_TRACE=1 at creation */
    char tuning[256];               /* clxent_context_tuning */
    /* "kernel+kernel (parameters)" of the last operation, by the
     * backend; the whole trace line, by the entry points. */
    char last_kernels[CLX_TRACE_CAPACITY];
    /* the programs the last operation built, and how (the trace) */
    char last_programs[CLX_TRACE_CAPACITY];
    char last_trace[3 * CLX_TRACE_CAPACITY + 256];
    char message[CLX_MESSAGE_CAPACITY];
};

/* Whether buf was made or wrapped by ctx (and not by a destroyed context
 * that had ctx's address). */
static inline int clx_owns(const clxent_context *ctx,
                           const clxent_buffer *buf) {
    return buf->owner == ctx->serial;
}

/* ---------------------------------------------------------------- */
/* Errors. */

/* Records "function: formatted detail" on ctx (if not NULL) and returns
 * status. Use for every failure the caller sees. */
clxent_status clx_fail(clxent_context *ctx, clxent_status status,
                       const char *function, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Appends formatted text to ctx->message (for build logs). */
void clx_append(clxent_context *ctx, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Clears ctx->message (start of each successful public call). */
void clx_clear(clxent_context *ctx);

/* "CL_OUT_OF_RESOURCES" etc.; "CL_UNKNOWN_ERROR" for unknown codes. */
const char *clx_cl_error_name(cl_int code);
/* Maps an OpenCL error to a status (allocation errors to OUT_OF_MEMORY). */
clxent_status clx_status_from_cl(cl_int code);

/* ---------------------------------------------------------------- */
/* Fault injection (test seam, issue 5): every OpenCL API call in the
 * library goes through CLX_CL(call) / clx_fault_next(). When armed with
 * k > 0, the k-th call from then on fails with CL_OUT_OF_RESOURCES
 * without being made. Thread-local. */
void clx_fault_arm(long k);   /* 0 disarms */
long clx_fault_calls(void);   /* calls seen since the last arm */
int clx_fault_next(void);     /* 1: this call must fail */
#define CLX_CL(call) (clx_fault_next() ? CL_OUT_OF_RESOURCES : (call))
/* For the creating calls that return an object and take errcode_ret. */
#define CLX_CL_CREATE(errp, call)                                              \
    (clx_fault_next() ? (*(errp) = CL_OUT_OF_RESOURCES, NULL) : (call))

/* ---------------------------------------------------------------- */
/* Helpers shared by the entry points and the backends. */

/* a*b and a+b with overflow detection (returns 0 on overflow). */
int clx_mul_size(size_t a, size_t b, size_t *out);
int clx_add_size(size_t a, size_t b, size_t *out);

/* Element (r, c) of a matrix as a float / stores a float, on host memory
 * (host backend and conversions). */
float clx_load_float(const void *base, clxent_dtype dtype, size_t index);
void clx_store_float(void *base, clxent_dtype dtype, size_t index, float v);
/* Stores a double rounded once to the dtype (nearest even): through a
 * round-to-odd float, so f16/bf16 see no double rounding. */
void clx_store_double(void *base, clxent_dtype dtype, size_t index,
                      double v);
int64_t clx_load_index(const void *base, clxent_dtype dtype, size_t index);

/* Appends formatted text to the NUL-terminated dst of `size` bytes,
 * truncating. */
void clx_appendf(char *dst, size_t size, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* " at (n, d1, d2)": the position of row r of x as PyTorch indexes it
 * (with x's inner_dims), " at (o, i)" without them; "" for inner 1. */
void clx_position(const clxent_tensor *x, size_t r, char *buf, size_t size);
/* The tensor whose inner_dims name op's positions: the class indices' when
 * they carry them, else the logits'. */
const clxent_tensor *clx_position_tensor(const clx_op *op);
/* Whether a and b name positions alike (outer, inner and inner_dims). */
int clx_same_position_shape(const clxent_tensor *a, const clxent_tensor *b);
/* One row of clxent_partial_combine_host: out = a (+) b (core/shard.c). */
void clx_partial_combine_row(const float *a, const float *b, float *out);

/* Whether needle occurs in haystack, ignoring ASCII case ("" always). */
int clx_contains_nocase(const char *haystack, const char *needle);


#endif /* CLXENT_INTERNAL_H */
