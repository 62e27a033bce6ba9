/* The row primitives on the host (max, exp-sum, log_softmax, softmax) and
 * the copy, in double, each result rounded once to its output type. A row
 * is one (o, i) position of the tensor; its classes lie class_stride
 * apart. */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static clxent_status row_stat(clxent_context *ctx, const clx_op *op) {
    size_t C = op->x.classes, R = clx_rows(op);
    clxent_status st;
    double *row = clx_host_scratch(ctx, op, C, &st);
    if (!row) return st;
    for (size_t r = 0; r < R; ++r) {
        clx_host_load_row(&op->x, r, row, NULL, NULL);
        double v = op->kind == CLX_OP_ROW_MAX
                       ? clx_host_row_max(row, C)
                       : clx_host_row_expsum(row, C,
                                             clx_host_get(&op->vec_in, r, 0));
        clx_host_set(&op->vec_out, r, 0, v);
    }
    free(row);
    return CLXENT_STATUS_OK;
}

/* log p = (x' - m) - log S of the transformed logits x', the accurate
 * form; softmax is its exp. The whole row is read before it is written,
 * so out may alias x. */
static clxent_status run_softmax(clxent_context *ctx, const clx_op *op,
                                 int log_form) {
    size_t C = op->x.classes, R = clx_rows(op);
    clxent_status st;
    double *row = clx_host_scratch(ctx, op, C, &st);
    if (!row) return st;
    for (size_t r = 0; r < R; ++r) {
        clx_host_load_row(&op->x, r, row, &op->opt, NULL);
        clx_host_stats s = clx_host_row_stats(row, C);
        for (size_t c = 0; c < C; ++c) {
            double logp = (row[c] - s.max) - s.log_sum;
            clx_host_set(&op->mat_out, r, c, log_form ? logp : exp(logp));
        }
    }
    free(row);
    return CLXENT_STATUS_OK;
}

static clxent_status run_copy(const clx_op *op) {
    size_t C = op->x.classes, R = clx_rows(op);
    const clxent_tensor *x = &op->x, *y = &op->mat_out;
    size_t es = clxent_dtype_size(x->dtype);
    const unsigned char *src = (const unsigned char *)x->buffer->host;
    unsigned char *dst = (unsigned char *)y->buffer->host;
    for (size_t r = 0; r < R; ++r)
        for (size_t c = 0; c < C; ++c) {
            if (x->dtype == y->dtype) /* bit-exact, NaN payloads too */
                memcpy(dst + clx_at(y, r, c) * es, src + clx_at(x, r, c) * es,
                       es);
            else
                clx_host_set(y, r, c, clx_host_get(x, r, c));
        }
    return CLXENT_STATUS_OK;
}

clxent_status clx_host_rows(clxent_context *ctx, const clx_op *op) {
    switch (op->kind) {
    case CLX_OP_ROW_MAX:
    case CLX_OP_ROW_EXPSUM: return row_stat(ctx, op);
    case CLX_OP_LOG_SOFTMAX: return run_softmax(ctx, op, 1);
    case CLX_OP_SOFTMAX: return run_softmax(ctx, op, 0);
    default: return run_copy(op);
    }
}
