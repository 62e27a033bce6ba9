/* The matrix entry points (the tensor ones are in api_nd.c): validate
 * every argument once, describe the work as a clx_op (take.c), dispatch
 * to the context's backend. A matrix is the tensor of inner 1. */
#include "api/take.h"

#define BEGIN(kind)                                                            \
    clx_op op;                                                                 \
    clx_extents e;                                                             \
    clxent_status st = clx_begin(ctx, __func__, events, &op, kind, &e)

/* ---- primitives ---- */

clxent_status clxent_row_max(clxent_context *ctx, const clxent_matrix *x,
                             const clxent_vector *max_out,
                             const clxent_events *events) {
    BEGIN(CLX_OP_ROW_MAX);
    if (!st) st = clx_take_x_matrix(ctx, &op, &e, "x", x);
    if (!st)
        st = clx_take_rows_vector(ctx, &op, &e, "max_out", max_out,
                                  CLX_DTYPE_F32, 1, &op.vec_out);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_row_expsum(clxent_context *ctx, const clxent_matrix *x,
                                const clxent_vector *row_max,
                                const clxent_vector *sum_out,
                                const clxent_events *events) {
    BEGIN(CLX_OP_ROW_EXPSUM);
    if (!st) st = clx_take_x_matrix(ctx, &op, &e, "x", x);
    if (!st)
        st = clx_take_rows_vector(ctx, &op, &e, "row_max", row_max,
                                  CLX_DTYPE_F32, 0, &op.vec_in);
    if (!st)
        st = clx_take_rows_vector(ctx, &op, &e, "sum_out", sum_out,
                                  CLX_DTYPE_F32, 1, &op.vec_out);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

static clxent_status softmax_like(clxent_context *ctx, const char *fn,
                                  clx_op_kind kind, const clxent_matrix *x,
                                  const clxent_matrix *out,
                                  const clxent_events *events) {
    clx_op op;
    clx_extents e;
    clxent_status st = clx_begin(ctx, fn, events, &op, kind, &e);
    if (!st) st = clx_take_x_matrix(ctx, &op, &e, "x", x);
    if (!st) st = clx_take_out_matrix(ctx, &op, &e, "out", out, 0, 0);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_log_softmax(clxent_context *ctx, const clxent_matrix *x,
                                 const clxent_matrix *out,
                                 const clxent_events *events) {
    return softmax_like(ctx, __func__, CLX_OP_LOG_SOFTMAX, x, out, events);
}

clxent_status clxent_softmax(clxent_context *ctx, const clxent_matrix *x,
                             const clxent_matrix *out,
                             const clxent_events *events) {
    return softmax_like(ctx, __func__, CLX_OP_SOFTMAX, x, out, events);
}

clxent_status clxent_copy(clxent_context *ctx, const clxent_matrix *src,
                          const clxent_matrix *dst,
                          const clxent_events *events) {
    return softmax_like(ctx, __func__, CLX_OP_COPY, src, dst, events);
}

/* ---- NLL over given log-probabilities ---- */

static clxent_status nll_common(clxent_context *ctx, clx_op *op,
                                clx_extents *e, const clxent_matrix *logp,
                                const clxent_vector *targets,
                                const clxent_vector *weights,
                                const clxent_loss_options *options) {
    clxent_status st = clx_take_x_matrix(ctx, op, e, "logp", logp);
    if (!st) st = clx_take_loss_options(ctx, op, options);
    if (!st) st = clx_take_nll_options(ctx, op);
    if (!st)
        st = clx_take_rows_vector(ctx, op, e, "targets", targets,
                                  CLX_DTYPE_INDEX, 0, &op->indices);
    if (!st) st = clx_take_weights(ctx, op, e, weights);
    return st;
}

clxent_status clxent_nll_loss(clxent_context *ctx, const clxent_matrix *logp,
                              const clxent_vector *targets,
                              const clxent_vector *weights,
                              const clxent_loss_options *options,
                              const clxent_vector *loss,
                              const clxent_events *events) {
    BEGIN(CLX_OP_NLL_FORWARD);
    if (!st) st = nll_common(ctx, &op, &e, logp, targets, weights, options);
    if (!st) st = clx_take_loss_vector(ctx, &op, &e, loss);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_nll_loss_backward(clxent_context *ctx,
                                       const clxent_matrix *logp,
                                       const clxent_vector *targets,
                                       const clxent_vector *weights,
                                       const clxent_loss_options *options,
                                       const clxent_vector *grad_rows,
                                       const clxent_matrix *grad,
                                       const clxent_events *events) {
    BEGIN(CLX_OP_NLL_BACKWARD);
    if (!st) st = nll_common(ctx, &op, &e, logp, targets, weights, options);
    if (!st) st = clx_take_grad_rows_vector(ctx, &op, &e, grad_rows);
    if (!st) st = clx_take_out_matrix(ctx, &op, &e, "grad", grad, 1, 0);
    if (st) return st;
    /* The gradient does not read logp's values, only its shape. */
    e.in[0].buffer = NULL;
    return clx_dispatch(ctx, &e, &op);
}

/* ---- cross-entropy ---- */

static clxent_status ce_common(clxent_context *ctx, clx_op *op,
                               clx_extents *e, const clxent_matrix *logits,
                               const clxent_targets *targets,
                               const clxent_vector *weights,
                               const clxent_loss_options *options) {
    clxent_status st = clx_take_x_matrix(ctx, op, e, "logits", logits);
    if (!st) st = clx_take_loss_options(ctx, op, options);
    if (!st) st = clx_take_targets_matrix(ctx, op, e, targets);
    if (!st) st = clx_take_weights(ctx, op, e, weights);
    return st;
}

static clxent_status take_lse_out(clxent_context *ctx, clx_op *op,
                                  clx_extents *e, const clxent_vector *lse) {
    if (!lse || !lse->buffer) return CLXENT_STATUS_OK;
    return clx_take_rows_vector(ctx, op, e, "lse", lse, CLX_DTYPE_F32, 1,
                                &op->lse_out);
}

clxent_status clxent_cross_entropy_forward(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *loss,
    const clxent_vector *lse, const clxent_events *events) {
    BEGIN(CLX_OP_CE_FORWARD);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st) st = clx_take_loss_vector(ctx, &op, &e, loss);
    if (!st) st = take_lse_out(ctx, &op, &e, lse);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy_backward(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *lse,
    const clxent_vector *grad_rows, const clxent_matrix *grad,
    const clxent_events *events) {
    BEGIN(CLX_OP_CE_BACKWARD);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st)
        st = clx_take_rows_vector(ctx, &op, &e, "lse", lse, CLX_DTYPE_F32, 0,
                                  &op.vec_in);
    if (!st) st = clx_take_grad_rows_vector(ctx, &op, &e, grad_rows);
    if (!st) st = clx_take_out_matrix(ctx, &op, &e, "grad", grad, 1, 1);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *grad_rows,
    const clxent_vector *loss, const clxent_vector *lse,
    const clxent_matrix *grad, const clxent_events *events) {
    BEGIN(CLX_OP_CE_FUSED);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st) st = clx_take_grad_rows_vector(ctx, &op, &e, grad_rows);
    if (!st) st = clx_take_loss_vector(ctx, &op, &e, loss);
    if (!st) st = take_lse_out(ctx, &op, &e, lse);
    if (!st) st = clx_take_out_matrix(ctx, &op, &e, "grad", grad, 1, 1);
    return st ? st : clx_dispatch(ctx, &e, &op);
}
