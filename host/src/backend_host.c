/* The host backend: buffers in plain memory and every operation in C.
 * It is the reference the OpenCL results are compared with, so all
 * arithmetic is double and each result is rounded once to its output type.
 * Operations arrive validated by api.c. This file holds the buffers, the
 * dispatch and the row primitives; the losses are in backend_host_loss.c. */
#include "backend_host.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- element access on host memory ---- */

double clx_host_mat_get(const clxent_matrix *m, size_t r, size_t c) {
    return clx_load_float(m->buffer->host, m->dtype,
                          m->offset + r * m->stride + c);
}

void clx_host_mat_set(const clxent_matrix *m, size_t r, size_t c, double v) {
    clx_store_double(m->buffer->host, m->dtype,
                     m->offset + r * m->stride + c, v);
}

double clx_host_vec_get(const clxent_vector *v, size_t i) {
    return clx_load_float(v->buffer->host, v->dtype, v->offset + i);
}

void clx_host_vec_set(const clxent_vector *v, size_t i, double value) {
    clx_store_float(v->buffer->host, v->dtype, v->offset + i, (float)value);
}

void clx_host_load_row(const clxent_matrix *x, size_t r, double *row) {
    for (size_t c = 0; c < x->cols; ++c) row[c] = clx_host_mat_get(x, r, c);
}

/* NaN-propagating like torch.max: any NaN makes the maximum NaN. */
double clx_host_row_max(const double *row, size_t cols) {
    double m = -INFINITY;
    for (size_t c = 0; c < cols; ++c) {
        if (isnan(row[c])) return row[c];
        if (row[c] > m) m = row[c];
    }
    return m;
}

double clx_host_row_expsum(const double *row, size_t cols, double max) {
    double s = 0.0;
    for (size_t c = 0; c < cols; ++c) s += exp(row[c] - max);
    return s;
}

clx_host_stats clx_host_row_stats(const double *row, size_t cols) {
    clx_host_stats st;
    st.max = clx_host_row_max(row, cols);
    st.log_sum = log(clx_host_row_expsum(row, cols, st.max));
    return st;
}

double *clx_host_scratch(clxent_context *ctx, const clx_op *op, size_t count,
                         clxent_status *status) {
    size_t bytes;
    double *p = NULL;
    if (clx_mul_size(count ? count : 1, sizeof(double), &bytes))
        p = malloc(bytes);
    *status = p ? CLXENT_STATUS_OK
                : clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, op->function,
                           "host scratch of %zu doubles", count);
    return p;
}

/* ---- primitives ---- */

static clxent_status run_row_max(clxent_context *ctx, const clx_op *op) {
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

/* ---- the backend interface ---- */

static clxent_status host_dispatch(clxent_context *ctx, const clx_op *op) {
    switch (op->kind) {
    case CLX_OP_ROW_MAX: return run_row_max(ctx, op);
    case CLX_OP_ROW_EXPSUM: return run_row_expsum(ctx, op);
    case CLX_OP_LOG_SOFTMAX: return run_softmax(ctx, op, 1);
    case CLX_OP_SOFTMAX: return run_softmax(ctx, op, 0);
    case CLX_OP_NLL_FORWARD: return clx_host_nll_forward(ctx, op);
    case CLX_OP_NLL_BACKWARD: return clx_host_nll_backward(ctx, op);
    case CLX_OP_CE_FORWARD:
    case CLX_OP_CE_BACKWARD:
    case CLX_OP_CE_FUSED: return clx_host_cross_entropy(ctx, op);
    case CLX_OP_COPY: return run_copy(ctx, op);
    }
    return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, op->function,
                    "operation %d is unknown to the host backend",
                    (int)op->kind);
}

static clxent_status host_run(clxent_context *ctx, const clx_op *op) {
    clxent_status st = host_dispatch(ctx, op);
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

static void host_buffer_release(clxent_buffer *buf) {
    free(buf->host);
    buf->host = NULL;
}

static clxent_status host_buffer_write(clxent_context *ctx,
                                       clxent_buffer *buf, size_t offset,
                                       size_t bytes, const void *src) {
    (void)ctx;
    if (bytes) memcpy((unsigned char *)buf->host + offset, src, bytes);
    return CLXENT_STATUS_OK;
}

static clxent_status host_buffer_read(clxent_context *ctx,
                                      const clxent_buffer *buf, size_t offset,
                                      size_t bytes, void *dst) {
    (void)ctx;
    if (bytes) memcpy(dst, (const unsigned char *)buf->host + offset, bytes);
    return CLXENT_STATUS_OK;
}

static clxent_status host_finish(clxent_context *ctx) {
    (void)ctx;
    return CLXENT_STATUS_OK;
}

const clx_backend_ops clx_host_backend = {
    "host",           host_destroy,      host_buffer_create,
    host_buffer_release, host_buffer_write, host_buffer_read,
    host_run,         host_finish,
};
