/* Building a clx_op from the public arguments (take.h): the matrix calls'
 * descriptors are validated as before and turned into tensors of inner 1;
 * the tensor calls' are validated as tensors. */
#include "api/take.h"

#include <stdio.h>
#include <string.h>

static clx_extent *add_in(clx_extents *e) { return &e->in[e->n_in++]; }
static clx_extent *add_out(clx_extents *e) { return &e->out[e->n_out++]; }

clxent_status clx_begin(clxent_context *ctx, const char *fn,
                        const clxent_events *events, clx_op *op,
                        clx_op_kind kind, clx_extents *e) {
    clxent_status st = clx_check_context(ctx, fn);
    if (st) return st;
    memset(op, 0, sizeof *op);
    memset(e, 0, sizeof *e);
    op->kind = kind;
    op->function = fn;
    op->events = events;
    clxent_loss_options_init(&op->opt.loss);
    op->opt.logit_scale = 1.0f;
    return clx_check_events(ctx, fn, events);
}

/* The trace line of an operation the backend ran (CLXENT_TRACE). */
static void trace(clxent_context *ctx, const clx_op *op, clxent_status st) {
    char dtype[24], shape[96];
    const clxent_tensor *out = op->mat_out.buffer ? &op->mat_out : NULL;
    if (out && out->dtype != op->x.dtype)
        snprintf(dtype, sizeof dtype, "%s->%s", clxent_dtype_name(op->x.dtype),
                 clxent_dtype_name(out->dtype));
    else
        snprintf(dtype, sizeof dtype, "%s", clxent_dtype_name(op->x.dtype));
    if (op->x.inner == 1)
        snprintf(shape, sizeof shape, "%zux%zu", op->x.outer, op->x.classes);
    else
        snprintf(shape, sizeof shape, "%zux%zux%zu", op->x.outer,
                 op->x.classes, op->x.inner);
    snprintf(ctx->last_trace, sizeof ctx->last_trace,
             "clxent: %s %s %s -> %s [tuning: %s]%s%s%s%s%s",
             op->function + strlen("clxent_"), shape, dtype,
             ctx->last_kernels, ctx->tuning,
             ctx->last_programs[0] ? " [programs: " : "", ctx->last_programs,
             ctx->last_programs[0] ? "]" : "", st ? " failed: " : "",
             st ? clxent_status_name(st) : "");
    if (ctx->trace) fprintf(stderr, "%s\n", ctx->last_trace);
}

clxent_status clx_dispatch(clxent_context *ctx, const clx_extents *e,
                           const clx_op *op) {
    clxent_status st =
        clx_check_overlaps(ctx, op->function, e->out, e->n_out, e->in,
                           e->n_in);
    if (st || op->opt.validate_only) return st;
    ctx->last_kernels[0] = ctx->last_programs[0] = '\0';
    st = ctx->backend->run(ctx, op);
    trace(ctx, op, st);
    return st;
}

/* ---- options ---- */

clxent_status clx_take_loss_options(clxent_context *ctx, clx_op *op,
                                    const clxent_loss_options *options) {
    return clx_check_options(ctx, op->function, options, &op->opt.loss);
}

clxent_status clx_take_options(clxent_context *ctx, clx_op *op,
                               const clxent_options *options) {
    return clx_check_all_options(ctx, op->function, options, &op->opt);
}

clxent_status clx_take_nll_options(clxent_context *ctx, clx_op *op) {
    const clx_options *o = &op->opt;
    if (o->loss.label_smoothing != 0.0f || o->loss.z_loss != 0.0f)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, op->function,
                        "options: label_smoothing (%g) and z_loss (%g) do "
                        "not apply to NLL over given log-probabilities",
                        (double)o->loss.label_smoothing,
                        (double)o->loss.z_loss);
    if (o->softcap != 0.0f || o->logit_scale != 1.0f)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, op->function,
                        "options: softcap (%g) and logit_scale (%g) do not "
                        "apply to NLL over given log-probabilities",
                        (double)o->softcap, (double)o->logit_scale);
    return CLXENT_STATUS_OK;
}

/* ---- x and weights ---- */

clxent_status clx_take_x_matrix(clxent_context *ctx, clx_op *op,
                                clx_extents *e, const char *name,
                                const clxent_matrix *x) {
    clxent_status st = clx_check_matrix(ctx, op->function, name, x,
                                        CLX_DTYPE_FLOAT, add_in(e));
    if (!st) op->x = clxent_tensor_from_matrix(x);
    return st;
}

clxent_status clx_take_x(clxent_context *ctx, clx_op *op, clx_extents *e,
                         const char *name, const clxent_tensor *x) {
    clxent_status st = clx_check_tensor(ctx, op->function, name, x,
                                        CLX_DTYPE_FLOAT, 0, add_in(e));
    if (!st) op->x = *x;
    return st;
}

clxent_status clx_take_weights(clxent_context *ctx, clx_op *op,
                               clx_extents *e, const clxent_vector *w) {
    if (!w || !w->buffer) return CLXENT_STATUS_OK;
    clxent_status st = clx_check_vector(ctx, op->function, "weights", w,
                                        op->x.classes, CLX_DTYPE_F32,
                                        add_in(e));
    if (!st) op->weights = *w;
    return st;
}

/* ---- per-row arrays ---- */

clxent_status clx_take_rows_vector(clxent_context *ctx, clx_op *op,
                                   clx_extents *e, const char *name,
                                   const clxent_vector *v,
                                   clx_dtype_class allowed, int output,
                                   clxent_tensor *slot) {
    clxent_status st =
        clx_check_vector(ctx, op->function, name, v, clx_rows(op), allowed,
                         output ? add_out(e) : add_in(e));
    if (!st) *slot = clxent_tensor_from_vector(v);
    return st;
}

clxent_status clx_take_rows(clxent_context *ctx, clx_op *op, clx_extents *e,
                            const char *name, const clxent_tensor *t,
                            clx_dtype_class allowed, int output,
                            clxent_tensor *slot) {
    clxent_status st =
        clx_check_rows(ctx, op->function, name, t, op->x.outer, op->x.inner,
                       allowed, output, output ? add_out(e) : add_in(e));
    if (!st) *slot = *t;
    return st;
}

clxent_status clx_take_loss_vector(clxent_context *ctx, clx_op *op,
                                   clx_extents *e,
                                   const clxent_vector *loss) {
    size_t n = op->opt.loss.reduction == CLXENT_REDUCTION_NONE
                   ? clx_rows(op)
                   : 1;
    clxent_status st = clx_check_vector(ctx, op->function, "loss", loss, n,
                                        CLX_DTYPE_F32, add_out(e));
    if (!st) {
        op->vec_out = clxent_tensor_from_vector(loss);
        if (n != clx_rows(op)) op->vec_out.outer = 1; /* reduced: 1 x 1 */
    }
    return st;
}

clxent_status clx_take_loss(clxent_context *ctx, clx_op *op, clx_extents *e,
                            const char *name, const clxent_tensor *loss,
                            clxent_tensor *slot) {
    if (op->opt.loss.reduction == CLXENT_REDUCTION_NONE)
        return clx_take_rows(ctx, op, e, name, loss, CLX_DTYPE_F32, 1, slot);
    clxent_status st = clx_check_rows(ctx, op->function, name, loss, 1, 1,
                                      CLX_DTYPE_F32, 1, add_out(e));
    if (!st) *slot = *loss;
    return st;
}

static clxent_status grad_rows_allowed(clxent_context *ctx, clx_op *op) {
    if (op->opt.loss.reduction != CLXENT_REDUCTION_NONE)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, op->function,
                        "grad_rows: a per-row upstream gradient needs "
                        "reduction none (use options->grad_scale)");
    return CLXENT_STATUS_OK;
}

clxent_status clx_take_grad_rows_vector(clxent_context *ctx, clx_op *op,
                                        clx_extents *e,
                                        const clxent_vector *g) {
    if (!g || !g->buffer) return CLXENT_STATUS_OK;
    clxent_status st = grad_rows_allowed(ctx, op);
    if (st) return st;
    return clx_take_rows_vector(ctx, op, e, "grad_rows", g, CLX_DTYPE_F32, 0,
                                &op->grad_rows);
}

clxent_status clx_take_grad_rows(clxent_context *ctx, clx_op *op,
                                 clx_extents *e, const clxent_tensor *g) {
    if (!g || !g->buffer) return CLXENT_STATUS_OK;
    clxent_status st = grad_rows_allowed(ctx, op);
    if (st) return st;
    return clx_take_rows(ctx, op, e, "grad_rows", g, CLX_DTYPE_F32, 0,
                         &op->grad_rows);
}

/* ---- targets ---- */

/* Exactly one of the two; probabilities take no ignore_index. */
static clxent_status which_targets(clxent_context *ctx, clx_op *op,
                                   const void *t, int by_index,
                                   int by_prob) {
    const char *fn = op->function;
    if (!t)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, fn,
                        "targets: NULL");
    if (by_index == by_prob)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "targets: give exactly one of indices and probs "
                        "(%s given)",
                        by_index ? "both" : "neither");
    if (by_prob && op->opt.loss.ignore_index != -100)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "options->ignore_index: %lld given with probability "
                        "targets, where it does not apply (as in PyTorch)",
                        (long long)op->opt.loss.ignore_index);
    return CLXENT_STATUS_OK;
}

static clxent_status probs_dtype(clxent_context *ctx, clx_op *op,
                                 clxent_dtype d) {
    if (d != op->x.dtype)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, op->function,
                        "targets.probs: dtype %s differs from the logits' %s",
                        clxent_dtype_name(d), clxent_dtype_name(op->x.dtype));
    return CLXENT_STATUS_OK;
}

clxent_status clx_take_targets_matrix(clxent_context *ctx, clx_op *op,
                                      clx_extents *e,
                                      const clxent_targets *t) {
    clxent_status st = which_targets(
        ctx, op, t, t && t->indices.buffer != NULL, t && t->probs.buffer);
    if (st) return st;
    if (t->indices.buffer)
        return clx_take_rows_vector(ctx, op, e, "targets", &t->indices,
                                    CLX_DTYPE_INDEX, 0, &op->indices);
    const char *fn = op->function;
    st = clx_check_matrix(ctx, fn, "targets.probs", &t->probs,
                          CLX_DTYPE_FLOAT, add_in(e));
    clxent_tensor probs = clxent_tensor_from_matrix(&t->probs);
    if (!st)
        st = clx_check_same_tensor_shape(ctx, fn, "targets.probs", &probs,
                                         &op->x, "logits");
    if (!st) st = probs_dtype(ctx, op, t->probs.dtype);
    if (!st) op->probs = probs;
    return st;
}

clxent_status clx_take_targets(clxent_context *ctx, clx_op *op,
                               clx_extents *e,
                               const clxent_tensor_targets *t) {
    clxent_status st = which_targets(
        ctx, op, t, t && t->indices.buffer != NULL, t && t->probs.buffer);
    if (st) return st;
    if (t->indices.buffer)
        return clx_take_rows(ctx, op, e, "targets.indices", &t->indices,
                             CLX_DTYPE_INDEX, 0, &op->indices);
    const char *fn = op->function;
    st = clx_check_tensor(ctx, fn, "targets.probs", &t->probs,
                          CLX_DTYPE_FLOAT, 0, add_in(e));
    if (!st)
        st = clx_check_same_tensor_shape(ctx, fn, "targets.probs", &t->probs,
                                         &op->x, "logits");
    if (!st) st = probs_dtype(ctx, op, t->probs.dtype);
    if (!st) op->probs = t->probs;
    return st;
}

/* ---- matrix outputs ---- */

/* The grad's dtype, and whether it is the logits (in place). */
static clxent_status grad_rules(clxent_context *ctx, clx_op *op,
                                clx_extents *e, const char *like_name,
                                const clxent_tensor *out, int may_alias) {
    const char *fn = op->function;
    if (out->dtype != op->x.dtype)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, fn,
                        "grad: dtype %s differs from the %s' %s",
                        clxent_dtype_name(out->dtype), like_name,
                        clxent_dtype_name(op->x.dtype));
    const clxent_tensor *x = &op->x;
    int same = out->buffer == x->buffer && out->offset == x->offset &&
               out->outer_stride == x->outer_stride &&
               (out->class_stride == x->class_stride || x->classes == 1) &&
               (out->inner_stride == x->inner_stride || x->inner == 1);
    if (same && may_alias && op->opt.loss.in_place) {
        /* Drop the logits' extent (always e->in[0]) from the overlap
         * check: reading then writing each element is the contract. */
        e->in[0].buffer = NULL;
    } else if (same && may_alias) {
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "grad: is the logits; set options->in_place to "
                        "overwrite them (destructive)");
    }
    return CLXENT_STATUS_OK;
}

clxent_status clx_take_out_matrix(clxent_context *ctx, clx_op *op,
                                  clx_extents *e, const char *name,
                                  const clxent_matrix *out, int grad,
                                  int may_alias) {
    const char *fn = op->function;
    clx_extent ext;
    clxent_status st =
        clx_check_matrix(ctx, fn, name, out, CLX_DTYPE_FLOAT, &ext);
    if (st) return st;
    clxent_tensor t = clxent_tensor_from_matrix(out);
    const char *like = op->kind == CLX_OP_NLL_BACKWARD ? "logp"
                       : grad                           ? "logits"
                                                        : "x";
    st = clx_check_same_tensor_shape(ctx, fn, name, &t, &op->x, like);
    if (!st && grad) st = grad_rules(ctx, op, e, like, &t, may_alias);
    if (st) return st;
    e->out[e->n_out++] = ext;
    op->mat_out = t;
    return CLXENT_STATUS_OK;
}

clxent_status clx_take_out(clxent_context *ctx, clx_op *op, clx_extents *e,
                           const char *name, const clxent_tensor *out,
                           int grad, int may_alias) {
    const char *fn = op->function;
    clx_extent ext;
    clxent_status st =
        clx_check_tensor(ctx, fn, name, out, CLX_DTYPE_FLOAT, 1, &ext);
    if (st) return st;
    const char *like = op->kind == CLX_OP_NLL_BACKWARD ? "logp"
                       : grad                           ? "logits"
                                                        : "x";
    st = clx_check_same_tensor_shape(ctx, fn, name, out, &op->x, like);
    if (!st && grad) st = grad_rules(ctx, op, e, like, out, may_alias);
    if (st) return st;
    e->out[e->n_out++] = ext;
    op->mat_out = *out;
    return CLXENT_STATUS_OK;
}
