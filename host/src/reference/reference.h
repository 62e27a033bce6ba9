/* The host reference backend's layers: elements.c (element access, row
 * statistics, scratch) below rows.c (row primitives, copy) and loss.c (NLL
 * and cross-entropy), below backend.c (buffers, dispatch). All values are
 * double; stores round once. */
#ifndef CLXENT_REFERENCE_H
#define CLXENT_REFERENCE_H

#include "core/internal.h"

/* Element (r, c) of a tensor (r a row, (o, i) flattened; c 0 for per-row
 * arrays), honouring offset, strides and dtype; stores round once. */
double clx_host_get(const clxent_tensor *t, size_t r, size_t c);
void clx_host_set(const clxent_tensor *t, size_t r, size_t c, double v);
double clx_host_vec_get(const clxent_vector *v, size_t i);
int64_t clx_host_index(const clxent_tensor *t, size_t r);
/* The logit transforms of o (docs/semantics.md): x' of x, and in *d (if
 * not NULL) the derivative dx'/dx. */
double clx_host_transform(const clx_options *o, double x, double *d);
/* Row r of x into row[0..classes), transformed by xf (NULL: as stored);
 * dxf (if not NULL) gets each element's derivative. */
void clx_host_load_row(const clxent_tensor *x, size_t r, double *row,
                       const clx_options *xf, double *dxf);

/* Row statistics: log p[c] = (x[c] - max) - log_sum, lse = max + log_sum. */
typedef struct clx_host_stats {
    double max;
    double log_sum;
} clx_host_stats;
double clx_host_row_max(const double *row, size_t cols);
double clx_host_row_expsum(const double *row, size_t cols, double max);
clx_host_stats clx_host_row_stats(const double *row, size_t cols);

/* malloc'd doubles; NULL with *status = OUT_OF_MEMORY recorded on ctx. */
double *clx_host_scratch(clxent_context *ctx, const clx_op *op, size_t count,
                         clxent_status *status);

/* Row max, exp-sum, log_softmax, softmax and the copy (rows.c). */
clxent_status clx_host_rows(clxent_context *ctx, const clx_op *op);

/* The loss operations (loss.c). */
clxent_status clx_host_nll_forward(clxent_context *ctx, const clx_op *op);
clxent_status clx_host_nll_backward(clxent_context *ctx, const clx_op *op);
/* CLX_OP_CE_FORWARD, CLX_OP_CE_BACKWARD and CLX_OP_CE_FUSED. */
clxent_status clx_host_cross_entropy(clxent_context *ctx, const clx_op *op);
/* The CLX_OP_SHARD_* operations (shard.c). */
clxent_status clx_host_shard(clxent_context *ctx, const clx_op *op);

#endif
