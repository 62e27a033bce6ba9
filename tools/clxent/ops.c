/* The operation table: one row per public operation (ops.h). */
#include "ops.h"

static clxent_status row_max(clxent_context *ctx, const ops_args *a) {
    return clxent_row_max(ctx, a->x, a->vec_out, a->events);
}
static clxent_status row_expsum(clxent_context *ctx, const ops_args *a) {
    return clxent_row_expsum(ctx, a->x, a->vec_in, a->vec_out, a->events);
}
static clxent_status log_softmax(clxent_context *ctx, const ops_args *a) {
    return clxent_log_softmax(ctx, a->x, a->out, a->events);
}
static clxent_status softmax(clxent_context *ctx, const ops_args *a) {
    return clxent_softmax(ctx, a->x, a->out, a->events);
}
static clxent_status nll(clxent_context *ctx, const ops_args *a) {
    return clxent_nll_loss(ctx, a->x, a->indices, a->weights, a->options,
                           a->loss, a->events);
}
static clxent_status nll_backward(clxent_context *ctx, const ops_args *a) {
    return clxent_nll_loss_backward(ctx, a->x, a->indices, a->weights,
                                    a->options, a->grad_rows, a->out,
                                    a->events);
}
static clxent_status ce_forward(clxent_context *ctx, const ops_args *a) {
    return clxent_cross_entropy_forward(ctx, a->x, a->targets, a->weights,
                                        a->options, a->loss, a->vec_out,
                                        a->events);
}
static clxent_status ce_backward(clxent_context *ctx, const ops_args *a) {
    return clxent_cross_entropy_backward(ctx, a->x, a->targets, a->weights,
                                         a->options, a->vec_in, a->grad_rows,
                                         a->out, a->events);
}
static clxent_status ce_fused(clxent_context *ctx, const ops_args *a) {
    return clxent_cross_entropy(ctx, a->x, a->targets, a->weights,
                                a->options, a->grad_rows, a->loss,
                                a->vec_out, a->out, a->events);
}
static clxent_status copy(clxent_context *ctx, const ops_args *a) {
    return clxent_copy(ctx, a->x, a->out, a->events);
}

/* The tensor forms. */
static clxent_status row_max_nd(clxent_context *ctx, const ops_nd_args *a) {
    return clxent_row_max_nd(ctx, a->x, a->vec_out, a->events);
}
static clxent_status row_expsum_nd(clxent_context *ctx,
                                   const ops_nd_args *a) {
    return clxent_row_expsum_nd(ctx, a->x, a->vec_in, a->vec_out, a->events);
}
static clxent_status log_softmax_nd(clxent_context *ctx,
                                    const ops_nd_args *a) {
    return clxent_log_softmax_nd(ctx, a->x, a->options, a->out, a->events);
}
static clxent_status softmax_nd(clxent_context *ctx, const ops_nd_args *a) {
    return clxent_softmax_nd(ctx, a->x, a->options, a->out, a->events);
}
static clxent_status nll_nd(clxent_context *ctx, const ops_nd_args *a) {
    return clxent_nll_loss_nd(ctx, a->x, a->indices, a->weights, a->options,
                              a->loss, a->events);
}
static clxent_status nll_backward_nd(clxent_context *ctx,
                                     const ops_nd_args *a) {
    return clxent_nll_loss_backward_nd(ctx, a->x, a->indices, a->weights,
                                       a->options, a->grad_rows, a->out,
                                       a->events);
}
static clxent_status ce_forward_nd(clxent_context *ctx,
                                   const ops_nd_args *a) {
    return clxent_cross_entropy_forward_nd(ctx, a->x, a->targets, a->weights,
                                           a->options, a->loss, a->vec_out,
                                           a->z_loss_out, a->events);
}
static clxent_status ce_backward_nd(clxent_context *ctx,
                                    const ops_nd_args *a) {
    return clxent_cross_entropy_backward_nd(ctx, a->x, a->targets,
                                            a->weights, a->options,
                                            a->vec_in, a->grad_rows, a->out,
                                            a->events);
}
static clxent_status ce_fused_nd(clxent_context *ctx, const ops_nd_args *a) {
    return clxent_cross_entropy_nd(ctx, a->x, a->targets, a->weights,
                                   a->options, a->grad_rows, a->loss,
                                   a->vec_out, a->z_loss_out, a->out,
                                   a->events);
}
static clxent_status copy_nd(clxent_context *ctx, const ops_nd_args *a) {
    return clxent_copy_nd(ctx, a->x, a->out, a->events);
}

#define NLL_IO (OPS_INDICES | OPS_WEIGHTS | OPS_OPTIONS)
#define CE_IO (OPS_TARGETS | OPS_WEIGHTS | OPS_OPTIONS)

const ops_desc ops_table[OPS_COUNT] = {
    {OPS_ROW_MAX, "clxent_row_max", "row_max", "row_max", 5, OPS_VEC_OUT,
     "x", "max_out", OPS_COUNT, {1, 1, 0}, row_max, row_max_nd},
    {OPS_ROW_EXPSUM, "clxent_row_expsum", "row_expsum", NULL, -1,
     OPS_VEC_IN | OPS_VEC_OUT, "x", "sum_out", OPS_ROW_MAX, {1, 2, 0},
     row_expsum, row_expsum_nd},
    {OPS_LOG_SOFTMAX, "clxent_log_softmax", "log_softmax", "log_softmax", 3,
     OPS_MAT_OUT, "x", NULL, OPS_COUNT, {2, 0, 0}, log_softmax,
     log_softmax_nd},
    {OPS_SOFTMAX, "clxent_softmax", "softmax", "softmax", 4, OPS_MAT_OUT,
     "x", NULL, OPS_COUNT, {2, 0, 0}, softmax, softmax_nd},
    {OPS_NLL, "clxent_nll_loss", "nll_fwd", "nll", 6, NLL_IO | OPS_LOSS,
     "logp", NULL, OPS_COUNT, {0, 1, 1}, nll, nll_nd},
    {OPS_NLL_BACKWARD, "clxent_nll_loss_backward", "nll_bwd", NULL, -1,
     NLL_IO | OPS_GRAD_ROWS | OPS_GRAD, "logp", NULL, OPS_COUNT, {1, 1, 0},
     nll_backward, nll_backward_nd},
    {OPS_CE_FORWARD, "clxent_cross_entropy_forward", "ce_forward", "forward",
     1, CE_IO | OPS_LOSS | OPS_LSE_OUT, "logits", "lse", OPS_COUNT, {1, 1, 0},
     ce_forward, ce_forward_nd},
    {OPS_CE_BACKWARD, "clxent_cross_entropy_backward", "ce_backward",
     "backward", 2, CE_IO | OPS_LSE_IN | OPS_GRAD_ROWS | OPS_GRAD, "logits",
     NULL, OPS_CE_FORWARD, {2, 2, 0}, ce_backward, ce_backward_nd},
    {OPS_CE_FUSED, "clxent_cross_entropy", "ce_fused", "fused", 0,
     CE_IO | OPS_GRAD_ROWS | OPS_LOSS | OPS_LSE_OUT | OPS_GRAD, "logits",
     "lse", OPS_COUNT, {2, 1, 0}, ce_fused, ce_fused_nd},
    {OPS_COPY, "clxent_copy", "copy", NULL, -1, OPS_MAT_OUT, "x", NULL,
     OPS_COUNT, {2, 0, 0}, copy, copy_nd},
};

const ops_desc *ops_bench(int rank) {
    for (int i = 0; i < OPS_COUNT; i++)
        if (ops_table[i].bench_rank == rank && rank >= 0) return &ops_table[i];
    return NULL;
}

double ops_bytes(const ops_desc *d, size_t rows, size_t cols, size_t elem) {
    double rc = (double)rows * cols * elem, r = (double)rows;
    return d->moved.matrices * rc + 4.0 * d->moved.row_words * r +
           (double)d->moved.row_elems * elem * r;
}

double ops_elements(const ops_desc *d, size_t rows, size_t cols) {
    return d->moved.matrices ? (double)rows * cols : (double)rows;
}
