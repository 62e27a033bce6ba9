/* The reference backend's bottom layer: element access on host memory
 * (offset, stride, dtype), the row statistics in double, and scratch. */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>

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

