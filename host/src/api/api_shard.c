/* The sharded-vocabulary entry points (clxent.h, "Sharded vocabulary"):
 * the same argument rules as the tensor calls (api_nd.c), plus the shard
 * and the records. */
#include "api/take.h"

#include <string.h>

#define BEGIN(kind)                                                            \
    clx_op op;                                                                 \
    clx_extents e;                                                             \
    clxent_status st = clx_begin(ctx, __func__, events, &op, kind, &e)

/* class_begin + C_k <= classes_total, within the index limits. */
static clxent_status take_shard(clxent_context *ctx, clx_op *op,
                                const clxent_shard *shard, int needs_begin) {
    const char *fn = op->function;
    if (!shard)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn, "shard: NULL");
    int64_t b = shard->class_begin, t = shard->classes_total;
    if (t <= 0 || (uint64_t)t > (uint64_t)INT32_MAX)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "shard->classes_total: %lld is not in [1, %d]",
                        (long long)t, INT32_MAX);
    if (needs_begin &&
        (b < 0 || b > t || (uint64_t)(t - b) < (uint64_t)op->x.classes))
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "shard: classes [%lld, %lld + %zu) of the logits are "
                        "not within [0, classes_total = %lld)",
                        (long long)b, (long long)b, op->x.classes,
                        (long long)t);
    op->class_begin = needs_begin ? b : 0;
    op->classes_total = t;
    return CLXENT_STATUS_OK;
}

/* A records tensor: f32, CLXENT_PARTIAL_FLOATS classes, rows like x's. */
static clxent_status take_records(clxent_context *ctx, clx_op *op,
                                  clx_extents *e, const char *name,
                                  const clxent_tensor *t, int output,
                                  clxent_tensor *slot) {
    const char *fn = op->function;
    clx_extent *ext = output ? &e->out[e->n_out] : &e->in[e->n_in];
    clxent_status st = clx_check_tensor(ctx, fn, name, t, CLX_DTYPE_F32,
                                        output, ext);
    if (st) return st;
    if (t->classes != CLXENT_PARTIAL_FLOATS)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: classes is %zu, not CLXENT_PARTIAL_FLOATS (%d): "
                        "a record's fields are its class axis",
                        name, t->classes, CLXENT_PARTIAL_FLOATS);
    if (slot == &op->x) op->x = *t; /* the records give the rows */
    if (t->outer != op->x.outer || t->inner != op->x.inner)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, fn,
                        "%s: outer x inner is %zu x %zu, the rows are "
                        "%zu x %zu",
                        name, t->outer, t->inner, op->x.outer, op->x.inner);
    if (output)
        ++e->n_out;
    else
        ++e->n_in;
    *slot = *t;
    return CLXENT_STATUS_OK;
}

/* Logits, options, targets, weights and the shard of steps 1 and 3. */
static clxent_status shard_common(clxent_context *ctx, clx_op *op,
                                  clx_extents *e, const clxent_tensor *logits,
                                  const clxent_tensor_targets *targets,
                                  const clxent_vector *weights,
                                  const clxent_shard *shard,
                                  const clxent_options *options) {
    clxent_status st = clx_take_x(ctx, op, e, "logits", logits);
    if (!st) st = clx_take_options(ctx, op, options);
    if (!st) st = take_shard(ctx, op, shard, 1);
    if (!st) st = clx_take_targets(ctx, op, e, targets);
    if (!st) st = clx_take_weights(ctx, op, e, weights);
    return st;
}

clxent_status clxent_cross_entropy_partial_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_shard *shard, const clxent_options *options,
    const clxent_tensor *records, const clxent_events *events) {
    BEGIN(CLX_OP_SHARD_PARTIAL);
    if (!st)
        st = shard_common(ctx, &op, &e, logits, targets, weights, shard,
                          options);
    if (!st) st = take_records(ctx, &op, &e, "records", records, 1, &op.records);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_partial_combine(clxent_context *ctx,
                                     const clxent_tensor *a,
                                     const clxent_tensor *b,
                                     const clxent_tensor *out,
                                     const clxent_events *events) {
    BEGIN(CLX_OP_SHARD_COMBINE);
    if (!st) st = take_records(ctx, &op, &e, "a", a, 0, &op.x);
    if (!st) st = take_records(ctx, &op, &e, "b", b, 0, &op.records);
    if (!st) st = take_records(ctx, &op, &e, "out", out, 1, &op.mat_out);
    if (st) return st;
    /* out may be a or b exactly (each row read whole before it is
     * written); any other overlap is refused */
    for (size_t i = 0; i < e.n_in; ++i) {
        const clxent_tensor *in = i == 1 ? b : a;
        if (in->buffer == out->buffer && in->offset == out->offset &&
            in->outer_stride == out->outer_stride &&
            in->class_stride == out->class_stride &&
            (in->inner_stride == out->inner_stride || out->inner == 1))
            e.in[i].buffer = NULL;
    }
    return clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy_finalize_nd(
    clxent_context *ctx, const clxent_tensor *records,
    const clxent_tensor_targets *targets, const clxent_shard *shard,
    const clxent_options *options, const clxent_tensor *loss,
    const clxent_tensor *lse, const clxent_tensor *z_loss_out,
    const clxent_events *events) {
    BEGIN(CLX_OP_SHARD_FINALIZE);
    if (!st) st = take_records(ctx, &op, &e, "records", records, 0, &op.x);
    if (!st) st = clx_take_options(ctx, &op, options);
    if (!st) st = take_shard(ctx, &op, shard, 0);
    if (!st && !targets)
        st = clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, __func__,
                      "targets: NULL");
    if (!st && targets->indices.buffer)
        st = clx_take_rows(ctx, &op, &e, "targets.indices", &targets->indices,
                           CLX_DTYPE_INDEX, 0, &op.indices);
    /* probability targets: only the kind matters here (probs unread) */
    if (!st && !targets->indices.buffer) {
        if (op.opt.loss.ignore_index != -100)
            st = clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, __func__,
                          "options->ignore_index: %lld given with probability "
                          "targets, where it does not apply",
                          (long long)op.opt.loss.ignore_index);
        op.probs = op.x; /* marks the kind; never read */
    }
    if (!st) st = clx_take_loss(ctx, &op, &e, "loss", loss, &op.vec_out);
    if (!st && z_loss_out && z_loss_out->buffer)
        st = clx_take_loss(ctx, &op, &e, "z_loss_out", z_loss_out, &op.z_out);
    if (!st && lse && lse->buffer)
        st = clx_take_rows(ctx, &op, &e, "lse", lse, CLX_DTYPE_F32, 1,
                           &op.lse_out);
    return st ? st : clx_dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy_backward_shard_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_shard *shard, const clxent_options *options,
    const clxent_tensor *records, const clxent_tensor *grad_rows,
    const clxent_tensor *grad, const clxent_events *events) {
    BEGIN(CLX_OP_SHARD_BACKWARD);
    if (!st)
        st = shard_common(ctx, &op, &e, logits, targets, weights, shard,
                          options);
    if (!st) st = take_records(ctx, &op, &e, "records", records, 0, &op.records);
    if (!st) st = clx_take_grad_rows(ctx, &op, &e, grad_rows);
    if (!st) st = clx_take_out(ctx, &op, &e, "grad", grad, 1, 1);
    return st ? st : clx_dispatch(ctx, &e, &op);
}
