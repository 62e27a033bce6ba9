/* The reference backend's bottom layer: element access on host memory
 * (tensor addressing, dtype), the logit transforms, the row statistics in
 * double, and scratch. */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>

double clx_host_get(const clxent_tensor *t, size_t r, size_t c) {
    return clx_load_float(t->buffer->host, t->dtype, clx_at(t, r, c));
}

void clx_host_set(const clxent_tensor *t, size_t r, size_t c, double v) {
    clx_store_double(t->buffer->host, t->dtype, clx_at(t, r, c), v);
}

double clx_host_vec_get(const clxent_vector *v, size_t i) {
    return clx_load_float(v->buffer->host, v->dtype, v->offset + i);
}

int64_t clx_host_index(const clxent_tensor *t, size_t r) {
    return clx_load_index(t->buffer->host, t->dtype, clx_at(t, r, 0));
}

/* x' = cap * tanh(a * x / cap) (cap > 0), else a * x; *d gets dx'/dx. */
double clx_host_transform(const clx_options *o, double x, double *d) {
    double a = o->logit_scale, u = a * x;
    if (o->softcap > 0.0f) {
        double cap = o->softcap, ch = cosh(u / cap);
        /* 1/cosh^2, not 1 - tanh^2, which cancels where the cap saturates */
        if (d) *d = a / (ch * ch);
        return cap * tanh(u / cap);
    }
    if (d) *d = a;
    return u;
}

void clx_host_load_row(const clxent_tensor *x, size_t r, double *row,
                       const clx_options *xf, double *dxf) {
    int plain = !xf || (xf->softcap == 0.0f && xf->logit_scale == 1.0f);
    for (size_t c = 0; c < x->classes; ++c) {
        double v = clx_host_get(x, r, c);
        if (plain) {
            row[c] = v;
            if (dxf) dxf[c] = 1.0;
        } else {
            row[c] = clx_host_transform(xf, v, dxf ? &dxf[c] : NULL);
        }
    }
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
