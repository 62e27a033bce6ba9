/* The tensor entry points (clxent.h, "Tensors with the class axis
 * anywhere"): the same operations as api.c over outer x classes x inner
 * tensors, with the options that grow (clxent_options: the logit
 * transforms) and the z-loss part as an output. */
#include "api/take.h"

#define BEGIN(kind)                                                            \
    clx_op op;                                                                 \
    clx_extents e;                                                             \
    clxent_status st = clx_begin(ctx, __func__, events, &op, kind, &e)

/* An optional per-row output of x's outer x inner. */
static clxent_status take_rows_out(clxent_context *ctx, clx_op *op,
                                   clx_extents *e, const char *name,
                                   const clxent_tensor *t,
                                   clxent_tensor *slot) {
    if (!t || !t->buffer) return CLXENT_STATUS_OK;
    return clx_take_rows(ctx, op, e, name, t, CLX_DTYPE_F32, 1, slot);
}

/* ---- primitives ---- */

clxent_status clxent_row_max_nd(clxent_context *ctx, const clxent_tensor *x,
                                const clxent_tensor *max_out,
                                const clxent_events *events) {
    BEGIN(CLX_OP_ROW_MAX);
    if (!st) st = clx_take_x(ctx, &op, &e, "x", x);
    if (!st)
        st = clx_take_rows(ctx, &op, &e, "max_out", max_out, CLX_DTYPE_F32, 1,
                           &op.vec_out);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_row_expsum_nd(clxent_context *ctx,
                                   const clxent_tensor *x,
                                   const clxent_tensor *row_max,
                                   const clxent_tensor *sum_out,
                                   const clxent_events *events) {
    BEGIN(CLX_OP_ROW_EXPSUM);
    if (!st) st = clx_take_x(ctx, &op, &e, "x", x);
    if (!st)
        st = clx_take_rows(ctx, &op, &e, "row_max", row_max, CLX_DTYPE_F32, 0,
                           &op.vec_in);
    if (!st)
        st = clx_take_rows(ctx, &op, &e, "sum_out", sum_out, CLX_DTYPE_F32, 1,
                           &op.vec_out);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

/* log_softmax, softmax (with the transforms) and copy (without). */
static clxent_status softmax_like(clxent_context *ctx, const char *fn,
                                  clx_op_kind kind, const clxent_tensor *x,
                                  const clxent_options *options,
                                  const clxent_tensor *out,
                                  const clxent_events *events) {
    clx_op op;
    clx_extents e;
    clxent_status st = clx_begin(ctx, fn, events, &op, kind, &e);
    if (!st) st = clx_take_x(ctx, &op, &e, "x", x);
    if (!st && kind != CLX_OP_COPY) st = clx_take_options(ctx, &op, options);
    if (!st) st = clx_take_out(ctx, &op, &e, "out", out, 0, 0);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_log_softmax_nd(clxent_context *ctx,
                                    const clxent_tensor *x,
                                    const clxent_options *options,
                                    const clxent_tensor *out,
                                    const clxent_events *events) {
    return softmax_like(ctx, __func__, CLX_OP_LOG_SOFTMAX, x, options, out,
                        events);
}

clxent_status clxent_softmax_nd(clxent_context *ctx, const clxent_tensor *x,
                                const clxent_options *options,
                                const clxent_tensor *out,
                                const clxent_events *events) {
    return softmax_like(ctx, __func__, CLX_OP_SOFTMAX, x, options, out,
                        events);
}

clxent_status clxent_copy_nd(clxent_context *ctx, const clxent_tensor *src,
                             const clxent_tensor *dst,
                             const clxent_events *events) {
    return softmax_like(ctx, __func__, CLX_OP_COPY, src, NULL, dst, events);
}

/* ---- NLL over given log-probabilities ---- */

static clxent_status nll_common(clxent_context *ctx, clx_op *op,
                                clx_extents *e, const clxent_tensor *logp,
                                const clxent_tensor *targets,
                                const clxent_vector *weights,
                                const clxent_options *options) {
    clxent_status st = clx_take_x(ctx, op, e, "logp", logp);
    if (!st) st = clx_take_options(ctx, op, options);
    if (!st) st = clx_take_nll_options(ctx, op);
    if (!st && !targets)
        st = clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, op->function,
                      "targets: tensor descriptor is NULL");
    if (!st)
        st = clx_take_rows(ctx, op, e, "targets", targets, CLX_DTYPE_INDEX, 0,
                           &op->indices);
    if (!st) st = clx_take_weights(ctx, op, e, weights);
    return st;
}

clxent_status clxent_nll_loss_nd(clxent_context *ctx,
                                 const clxent_tensor *logp,
                                 const clxent_tensor *targets,
                                 const clxent_vector *weights,
                                 const clxent_options *options,
                                 const clxent_tensor *loss,
                                 const clxent_events *events) {
    BEGIN(CLX_OP_NLL_FORWARD);
    if (!st) st = nll_common(ctx, &op, &e, logp, targets, weights, options);
    if (!st) st = clx_take_loss(ctx, &op, &e, "loss", loss, &op.vec_out);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_nll_loss_backward_nd(
    clxent_context *ctx, const clxent_tensor *logp,
    const clxent_tensor *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *grad_rows,
    const clxent_tensor *grad, const clxent_events *events) {
    BEGIN(CLX_OP_NLL_BACKWARD);
    if (!st) st = nll_common(ctx, &op, &e, logp, targets, weights, options);
    if (!st) st = clx_take_grad_rows(ctx, &op, &e, grad_rows);
    if (!st) st = clx_take_out(ctx, &op, &e, "grad", grad, 1, 0);
    if (st) return st;
    /* The gradient does not read logp's values, only its shape. */
    e.in[0].buffer = NULL;
    return clx_dispatch(ctx, &e, &op);
}

/* ---- cross-entropy ---- */

static clxent_status ce_common(clxent_context *ctx, clx_op *op,
                               clx_extents *e, const clxent_tensor *logits,
                               const clxent_tensor_targets *targets,
                               const clxent_vector *weights,
                               const clxent_options *options) {
    clxent_status st = clx_take_x(ctx, op, e, "logits", logits);
    if (!st) st = clx_take_options(ctx, op, options);
    if (!st) st = clx_take_targets(ctx, op, e, targets);
    if (!st) st = clx_take_weights(ctx, op, e, weights);
    return st;
}

/* The loss and its z-loss part (optional). */
static clxent_status take_losses(clxent_context *ctx, clx_op *op,
                                 clx_extents *e, const clxent_tensor *loss,
                                 const clxent_tensor *z_loss_out) {
    clxent_status st = clx_take_loss(ctx, op, e, "loss", loss, &op->vec_out);
    if (!st && z_loss_out && z_loss_out->buffer)
        st = clx_take_loss(ctx, op, e, "z_loss_out", z_loss_out, &op->z_out);
    return st;
}

clxent_status clxent_cross_entropy_forward_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *loss,
    const clxent_tensor *lse, const clxent_tensor *z_loss_out,
    const clxent_events *events) {
    BEGIN(CLX_OP_CE_FORWARD);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st) st = take_losses(ctx, &op, &e, loss, z_loss_out);
    if (!st) st = take_rows_out(ctx, &op, &e, "lse", lse, &op.lse_out);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy_backward_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *lse,
    const clxent_tensor *grad_rows, const clxent_tensor *grad,
    const clxent_events *events) {
    BEGIN(CLX_OP_CE_BACKWARD);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st)
        st = clx_take_rows(ctx, &op, &e, "lse", lse, CLX_DTYPE_F32, 0,
                           &op.vec_in);
    if (!st) st = clx_take_grad_rows(ctx, &op, &e, grad_rows);
    if (!st) st = clx_take_out(ctx, &op, &e, "grad", grad, 1, 1);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *grad_rows,
    const clxent_tensor *loss, const clxent_tensor *lse,
    const clxent_tensor *z_loss_out, const clxent_tensor *grad,
    const clxent_events *events) {
    BEGIN(CLX_OP_CE_FUSED);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st) st = clx_take_grad_rows(ctx, &op, &e, grad_rows);
    if (!st) st = take_losses(ctx, &op, &e, loss, z_loss_out);
    if (!st) st = take_rows_out(ctx, &op, &e, "lse", lse, &op.lse_out);
    if (!st) st = clx_take_out(ctx, &op, &e, "grad", grad, 1, 1);
    return st ? st : clx_dispatch(ctx, &e, &op);
}
