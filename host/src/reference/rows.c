/* The row primitives on the host (max, exp-sum, log_softmax, softmax) and
 * the copy, in double, each result rounded once to its output type. */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static clxent_status row_max(clxent_context *ctx, const clx_op *op) {
    clxent_status st;
    double *row = clx_host_scratch(ctx, op, op->x.cols, &st);
    if (!row) return st;
    for (size_t r = 0; r < op->x.rows; ++r) {
        clx_host_load_row(&op->x, r, row);
        clx_host_vec_set(&op->vec_out, r, clx_host_row_max(row, op->x.cols));
    }
    free(row);
    return CLXENT_STATUS_OK;
}

static clxent_status run_row_expsum(clxent_context *ctx, const clx_op *op) {
    clxent_status st;
    double *row = clx_host_scratch(ctx, op, op->x.cols, &st);
    if (!row) return st;
    for (size_t r = 0; r < op->x.rows; ++r) {
        clx_host_load_row(&op->x, r, row);
        double m = clx_host_vec_get(&op->vec_in, r);
        clx_host_vec_set(&op->vec_out, r,
                         clx_host_row_expsum(row, op->x.cols, m));
    }
    free(row);
    return CLXENT_STATUS_OK;
}

/* log p = (x - m) - log S, the accurate form; softmax is its exp. The
 * whole row is read before it is written, so out may alias x. */
static clxent_status run_softmax(clxent_context *ctx, const clx_op *op,
                                 int log_form) {
    clxent_status st;
    double *row = clx_host_scratch(ctx, op, op->x.cols, &st);
    if (!row) return st;
    for (size_t r = 0; r < op->x.rows; ++r) {
        clx_host_load_row(&op->x, r, row);
        clx_host_stats s = clx_host_row_stats(row, op->x.cols);
        for (size_t c = 0; c < op->x.cols; ++c) {
            double logp = (row[c] - s.max) - s.log_sum;
            clx_host_mat_set(&op->mat_out, r, c, log_form ? logp : exp(logp));
        }
    }
    free(row);
    return CLXENT_STATUS_OK;
}

static clxent_status run_copy(clxent_context *ctx, const clx_op *op) {
    if (op->x.dtype == op->mat_out.dtype) { /* bit-exact, NaN payloads too */
        size_t es = clxent_dtype_size(op->x.dtype);
        const unsigned char *src = (const unsigned char *)op->x.buffer->host;
        unsigned char *dst = (unsigned char *)op->mat_out.buffer->host;
        for (size_t r = 0; r < op->x.rows; ++r)
            memmove(dst + (op->mat_out.offset + r * op->mat_out.stride) * es,
                    src + (op->x.offset + r * op->x.stride) * es,
                    op->x.cols * es);
        return CLXENT_STATUS_OK;
    }
    clxent_status st;
    double *row = clx_host_scratch(ctx, op, op->x.cols, &st);
    if (!row) return st;
    for (size_t r = 0; r < op->x.rows; ++r) {
        clx_host_load_row(&op->x, r, row);
        for (size_t c = 0; c < op->x.cols; ++c)
            clx_host_mat_set(&op->mat_out, r, c, row[c]);
    }
    free(row);
    return CLXENT_STATUS_OK;
}

clxent_status clx_host_rows(clxent_context *ctx, const clx_op *op) {
    switch (op->kind) {
    case CLX_OP_ROW_MAX: return row_max(ctx, op);
    case CLX_OP_ROW_EXPSUM: return run_row_expsum(ctx, op);
    case CLX_OP_LOG_SOFTMAX: return run_softmax(ctx, op, 1);
    case CLX_OP_SOFTMAX: return run_softmax(ctx, op, 0);
    default: return run_copy(ctx, op);
    }
}
