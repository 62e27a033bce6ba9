/* Argument checks for the public entry points (validate.c). */
#ifndef CLXENT_VALIDATE_H
#define CLXENT_VALIDATE_H

#include "core/internal.h"

typedef enum clx_dtype_class {
    CLX_DTYPE_FLOAT, /* f32, f16, bf16 storage */
    CLX_DTYPE_F32,   /* f32 only (row vectors, weights) */
    CLX_DTYPE_INDEX  /* i32, i64 class indices */
} clx_dtype_class;

/* The bytes [begin, end) of a buffer an argument touches. */
typedef struct clx_extent {
    const clxent_buffer *buffer;
    size_t begin, end;
    const char *name;
} clx_extent;

/* NULL_POINTER for NULL (no message: there is no context to hold it);
 * INVALID_ARGUMENT for a context that failed to create. Clears the
 * message otherwise. */
clxent_status clx_check_context(clxent_context *ctx, const char *fn);
int clx_is_float_dtype(clxent_dtype dtype);
/* Descriptor, buffer ownership, dtype, shape limits, stride >= cols,
 * size_t overflow and the buffer's real size. */
clxent_status clx_check_matrix(clxent_context *ctx, const char *fn,
                               const char *name, const clxent_matrix *m,
                               clx_dtype_class allowed, clx_extent *extent);
clxent_status clx_check_vector(clxent_context *ctx, const char *fn,
                               const char *name, const clxent_vector *v,
                               size_t length, clx_dtype_class allowed,
                               clx_extent *extent);
clxent_status clx_check_same_shape(clxent_context *ctx, const char *fn,
                                   const char *name, const clxent_matrix *m,
                                   const clxent_matrix *like,
                                   const char *like_name);
/* A tensor: descriptor, buffer ownership, dtype, classes > 0, limits,
 * inner_dims, overflow of its strides, the buffer's real size, and for an
 * output, no two elements at one address. */
clxent_status clx_check_tensor(clxent_context *ctx, const char *fn,
                               const char *name, const clxent_tensor *t,
                               clx_dtype_class allowed, int output,
                               clx_extent *extent);
/* A per-row array: a tensor of classes 1 with the given outer x inner. */
clxent_status clx_check_rows(clxent_context *ctx, const char *fn,
                             const char *name, const clxent_tensor *t,
                             size_t outer, size_t inner,
                             clx_dtype_class allowed, int output,
                             clx_extent *extent);
clxent_status clx_check_same_tensor_shape(clxent_context *ctx,
                                          const char *fn, const char *name,
                                          const clxent_tensor *t,
                                          const clxent_tensor *like,
                                          const char *like_name);
/* The tensor calls' options (NULL: the defaults), reading only the
 * fields the caller's header had (options->size). */
clxent_status clx_check_all_options(clxent_context *ctx, const char *fn,
                                    const clxent_options *in,
                                    clx_options *out);
/* NULL options give the defaults. */
clxent_status clx_check_options(clxent_context *ctx, const char *fn,
                                const clxent_loss_options *in,
                                clxent_loss_options *out);
clxent_status clx_check_events(clxent_context *ctx, const char *fn,
                               const clxent_events *events);
/* No output may share bytes with an input or another output. */
clxent_status clx_check_overlaps(clxent_context *ctx, const char *fn,
                                 const clx_extent *outputs, size_t n_out,
                                 const clx_extent *inputs, size_t n_in);

#endif
