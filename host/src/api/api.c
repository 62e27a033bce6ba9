/* Public operation entry points: validate every argument once, describe
 * the work as a clx_op, dispatch to the context's backend. */
#include "api/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXTENTS 8

/* Collects the byte extents of an op's inputs and outputs so overlaps can
 * be checked in one place. */
typedef struct extents {
    clx_extent in[MAX_EXTENTS], out[MAX_EXTENTS];
    size_t n_in, n_out;
} extents;

static clx_extent *add_in(extents *e) { return &e->in[e->n_in++]; }
static clx_extent *add_out(extents *e) { return &e->out[e->n_out++]; }

static int has(const void *descriptor, const clxent_buffer *buffer) {
    return descriptor && buffer;
}

static clxent_status begin(clxent_context *ctx, const char *fn,
                           const clxent_events *events, clx_op *op,
                           clx_op_kind kind) {
    clxent_status st = clx_check_context(ctx, fn);
    if (st) return st;
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->function = fn;
    op->events = events;
    clxent_loss_options_init(&op->opt);
    return clx_check_events(ctx, fn, events);
}

/* The trace line of an operation the backend ran (CLXENT_TRACE). */
static void trace(clxent_context *ctx, const clx_op *op, clxent_status st) {
    char dtype[24];
    const clxent_matrix *out = op->mat_out.buffer ? &op->mat_out : NULL;
    if (out && out->dtype != op->x.dtype)
        snprintf(dtype, sizeof dtype, "%s->%s", clxent_dtype_name(op->x.dtype),
                 clxent_dtype_name(out->dtype));
    else
        snprintf(dtype, sizeof dtype, "%s", clxent_dtype_name(op->x.dtype));
    snprintf(ctx->last_trace, sizeof ctx->last_trace,
             "clxent: %s %zux%zu %s -> %s [tuning: %s]%s%s%s%s%s",
             op->function + strlen("clxent_"), op->x.rows, op->x.cols, dtype,
             ctx->last_kernels, ctx->tuning,
             ctx->last_programs[0] ? " [programs: " : "", ctx->last_programs,
             ctx->last_programs[0] ? "]" : "", st ? " failed: " : "",
             st ? clxent_status_name(st) : "");
    if (ctx->trace) fprintf(stderr, "%s\n", ctx->last_trace);
}

static clxent_status dispatch(clxent_context *ctx, const extents *e,
                              const clx_op *op) {
    clxent_status st =
        clx_check_overlaps(ctx, op->function, e->out, e->n_out, e->in,
                           e->n_in);
    if (st) return st;
    ctx->last_kernels[0] = ctx->last_programs[0] = '\0';
    st = ctx->backend->run(ctx, op);
    trace(ctx, op, st);
    return st;
}

/* Logits (or log-probabilities) as the op's main input. */
static clxent_status take_x(clxent_context *ctx, clx_op *op, extents *e,
                            const char *name, const clxent_matrix *x) {
    clxent_status st =
        clx_check_matrix(ctx, op->function, name, x, CLX_DTYPE_FLOAT,
                         add_in(e));
    if (!st) op->x = *x;
    return st;
}

static clxent_status take_weights(clxent_context *ctx, clx_op *op,
                                  extents *e, const clxent_vector *w) {
    if (!has(w, w ? w->buffer : NULL)) return CLXENT_STATUS_OK;
    clxent_status st = clx_check_vector(ctx, op->function, "weights", w,
                                        op->x.cols, CLX_DTYPE_F32, add_in(e));
    if (!st) op->weights = *w;
    return st;
}

static clxent_status take_loss(clxent_context *ctx, clx_op *op, extents *e,
                               const clxent_vector *loss) {
    size_t n = op->opt.reduction == CLXENT_REDUCTION_NONE ? op->x.rows : 1;
    clxent_status st = clx_check_vector(ctx, op->function, "loss", loss, n,
                                        CLX_DTYPE_F32, add_out(e));
    if (!st) op->vec_out = *loss;
    return st;
}

static clxent_status take_grad_rows(clxent_context *ctx, clx_op *op,
                                    extents *e, const clxent_vector *g) {
    if (!has(g, g ? g->buffer : NULL)) return CLXENT_STATUS_OK;
    if (op->opt.reduction != CLXENT_REDUCTION_NONE)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, op->function,
                        "grad_rows: a per-row upstream gradient needs "
                        "reduction none (use options->grad_scale)");
    clxent_status st = clx_check_vector(ctx, op->function, "grad_rows", g,
                                        op->x.rows, CLX_DTYPE_F32, add_in(e));
    if (!st) op->grad_rows = *g;
    return st;
}

static clxent_status take_indices(clxent_context *ctx, clx_op *op,
                                  extents *e, const clxent_vector *y) {
    clxent_status st = clx_check_vector(ctx, op->function, "targets", y,
                                        op->x.rows, CLX_DTYPE_INDEX,
                                        add_in(e));
    if (!st) op->indices = *y;
    return st;
}

static clxent_status take_targets(clxent_context *ctx, clx_op *op,
                                  extents *e, const clxent_targets *t) {
    const char *fn = op->function;
    if (!t)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                        "targets: NULL");
    int by_index = t->indices.buffer != NULL;
    int by_prob = t->probs.buffer != NULL;
    if (by_index == by_prob)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "targets: give exactly one of indices and probs "
                        "(%s given)",
                        by_index ? "both" : "neither");
    if (by_index) return take_indices(ctx, op, e, &t->indices);
    if (op->opt.ignore_index != -100)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->ignore_index: %lld given with probability "
                        "targets, where it does not apply (as in PyTorch)",
                        (long long)op->opt.ignore_index);
    clxent_status st = clx_check_matrix(ctx, fn, "targets.probs", &t->probs,
                                        CLX_DTYPE_FLOAT, add_in(e));
    if (st) return st;
    st = clx_check_same_shape(ctx, fn, "targets.probs", &t->probs, &op->x,
                              "logits");
    if (st) return st;
    if (t->probs.dtype != op->x.dtype)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, fn,
                        "targets.probs: dtype %s differs from the logits' %s",
                        clxent_dtype_name(t->probs.dtype),
                        clxent_dtype_name(op->x.dtype));
    op->probs = t->probs;
    return CLXENT_STATUS_OK;
}

/* The gradient output: the logits' shape and dtype. With in_place it may
 * be exactly the logits; any other overlap is an error. */
static clxent_status take_grad(clxent_context *ctx, clx_op *op, extents *e,
                               const char *like_name,
                               const clxent_matrix *grad, int may_alias) {
    const char *fn = op->function;
    clx_extent ext;
    clxent_status st =
        clx_check_matrix(ctx, fn, "grad", grad, CLX_DTYPE_FLOAT, &ext);
    if (st) return st;
    st = clx_check_same_shape(ctx, fn, "grad", grad, &op->x, like_name);
    if (st) return st;
    if (grad->dtype != op->x.dtype)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, fn,
                        "grad: dtype %s differs from the %s' %s",
                        clxent_dtype_name(grad->dtype), like_name,
                        clxent_dtype_name(op->x.dtype));
    int same = grad->buffer == op->x.buffer && grad->offset == op->x.offset &&
               grad->stride == op->x.stride;
    if (same && may_alias && op->opt.in_place) {
        /* Drop the logits' extent (always e->in[0]) from the overlap
         * check: reading then writing each element is the contract. */
        e->in[0].buffer = NULL;
    } else if (same && may_alias) {
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "grad: is the logits; set options->in_place to "
                        "overwrite them (destructive)");
    }
    *add_out(e) = ext;
    op->mat_out = *grad;
    return CLXENT_STATUS_OK;
}

/* ---- primitives ---- */

clxent_status clxent_row_max(clxent_context *ctx, const clxent_matrix *x,
                             const clxent_vector *max_out,
                             const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st = begin(ctx, __func__, events, &op, CLX_OP_ROW_MAX);
    if (!st) st = take_x(ctx, &op, &e, "x", x);
    if (!st)
        st = clx_check_vector(ctx, __func__, "max_out", max_out, x->rows,
                              CLX_DTYPE_F32, add_out(&e));
    if (st) return st;
    op.vec_out = *max_out;
    return dispatch(ctx, &e, &op);
}

clxent_status clxent_row_expsum(clxent_context *ctx, const clxent_matrix *x,
                                const clxent_vector *row_max,
                                const clxent_vector *sum_out,
                                const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st = begin(ctx, __func__, events, &op, CLX_OP_ROW_EXPSUM);
    if (!st) st = take_x(ctx, &op, &e, "x", x);
    if (!st)
        st = clx_check_vector(ctx, __func__, "row_max", row_max, x->rows,
                              CLX_DTYPE_F32, add_in(&e));
    if (!st)
        st = clx_check_vector(ctx, __func__, "sum_out", sum_out, x->rows,
                              CLX_DTYPE_F32, add_out(&e));
    if (st) return st;
    op.vec_in = *row_max;
    op.vec_out = *sum_out;
    return dispatch(ctx, &e, &op);
}

static clxent_status softmax_like(clxent_context *ctx, const char *fn,
                                  clx_op_kind kind, const clxent_matrix *x,
                                  const clxent_matrix *out,
                                  const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st = begin(ctx, fn, events, &op, kind);
    if (!st) st = take_x(ctx, &op, &e, "x", x);
    if (!st)
        st = clx_check_matrix(ctx, fn, "out", out, CLX_DTYPE_FLOAT,
                              add_out(&e));
    if (!st) st = clx_check_same_shape(ctx, fn, "out", out, x, "x");
    if (st) return st;
    op.mat_out = *out;
    return dispatch(ctx, &e, &op);
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

static clxent_status nll_common(clxent_context *ctx, clx_op *op, extents *e,
                                const clxent_matrix *logp,
                                const clxent_vector *targets,
                                const clxent_vector *weights,
                                const clxent_loss_options *options) {
    clxent_status st = take_x(ctx, op, e, "logp", logp);
    if (!st) st = clx_check_options(ctx, op->function, options, &op->opt);
    if (st) return st;
    if (op->opt.label_smoothing != 0.0f || op->opt.z_loss != 0.0f)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, op->function,
                        "options: label_smoothing (%g) and z_loss (%g) do "
                        "not apply to NLL over given log-probabilities",
                        (double)op->opt.label_smoothing,
                        (double)op->opt.z_loss);
    st = take_indices(ctx, op, e, targets);
    if (!st) st = take_weights(ctx, op, e, weights);
    return st;
}

clxent_status clxent_nll_loss(clxent_context *ctx, const clxent_matrix *logp,
                              const clxent_vector *targets,
                              const clxent_vector *weights,
                              const clxent_loss_options *options,
                              const clxent_vector *loss,
                              const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st = begin(ctx, __func__, events, &op, CLX_OP_NLL_FORWARD);
    if (!st) st = nll_common(ctx, &op, &e, logp, targets, weights, options);
    if (!st) st = take_loss(ctx, &op, &e, loss);
    if (st) return st;
    return dispatch(ctx, &e, &op);
}

clxent_status clxent_nll_loss_backward(clxent_context *ctx,
                                       const clxent_matrix *logp,
                                       const clxent_vector *targets,
                                       const clxent_vector *weights,
                                       const clxent_loss_options *options,
                                       const clxent_vector *grad_rows,
                                       const clxent_matrix *grad,
                                       const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st =
        begin(ctx, __func__, events, &op, CLX_OP_NLL_BACKWARD);
    if (!st) st = nll_common(ctx, &op, &e, logp, targets, weights, options);
    if (!st) st = take_grad_rows(ctx, &op, &e, grad_rows);
    if (!st) st = take_grad(ctx, &op, &e, "logp", grad, 0);
    if (st) return st;
    /* The gradient does not read logp's values, only its shape. */
    e.in[0].buffer = NULL;
    return dispatch(ctx, &e, &op);
}

/* ---- cross-entropy ---- */

static clxent_status ce_common(clxent_context *ctx, clx_op *op, extents *e,
                               const clxent_matrix *logits,
                               const clxent_targets *targets,
                               const clxent_vector *weights,
                               const clxent_loss_options *options) {
    clxent_status st = take_x(ctx, op, e, "logits", logits);
    if (!st) st = clx_check_options(ctx, op->function, options, &op->opt);
    if (!st) st = take_targets(ctx, op, e, targets);
    if (!st) st = take_weights(ctx, op, e, weights);
    return st;
}

static clxent_status take_lse_out(clxent_context *ctx, clx_op *op,
                                  extents *e, const clxent_vector *lse) {
    if (!has(lse, lse ? lse->buffer : NULL)) return CLXENT_STATUS_OK;
    clxent_status st = clx_check_vector(ctx, op->function, "lse", lse,
                                        op->x.rows, CLX_DTYPE_F32,
                                        add_out(e));
    if (!st) op->lse_out = *lse;
    return st;
}

clxent_status clxent_cross_entropy_forward(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *loss,
    const clxent_vector *lse, const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st = begin(ctx, __func__, events, &op, CLX_OP_CE_FORWARD);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st) st = take_loss(ctx, &op, &e, loss);
    if (!st) st = take_lse_out(ctx, &op, &e, lse);
    if (st) return st;
    return dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy_backward(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *lse,
    const clxent_vector *grad_rows, const clxent_matrix *grad,
    const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st = begin(ctx, __func__, events, &op, CLX_OP_CE_BACKWARD);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st)
        st = clx_check_vector(ctx, __func__, "lse", lse, logits->rows,
                              CLX_DTYPE_F32, add_in(&e));
    if (!st) op.vec_in = *lse;
    if (!st) st = take_grad_rows(ctx, &op, &e, grad_rows);
    if (!st) st = take_grad(ctx, &op, &e, "logits", grad, 1);
    if (st) return st;
    return dispatch(ctx, &e, &op);
}

clxent_status clxent_cross_entropy(
    clxent_context *ctx, const clxent_matrix *logits,
    const clxent_targets *targets, const clxent_vector *weights,
    const clxent_loss_options *options, const clxent_vector *grad_rows,
    const clxent_vector *loss, const clxent_vector *lse,
    const clxent_matrix *grad, const clxent_events *events) {
    clx_op op;
    extents e = {0};
    clxent_status st = begin(ctx, __func__, events, &op, CLX_OP_CE_FUSED);
    if (!st) st = ce_common(ctx, &op, &e, logits, targets, weights, options);
    if (!st) st = take_grad_rows(ctx, &op, &e, grad_rows);
    if (!st) st = take_loss(ctx, &op, &e, loss);
    if (!st) st = take_lse_out(ctx, &op, &e, lse);
    if (!st) st = take_grad(ctx, &op, &e, "logits", grad, 1);
    if (st) return st;
    return dispatch(ctx, &e, &op);
}
