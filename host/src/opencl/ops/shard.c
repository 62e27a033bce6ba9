/* The sharded vocabulary on OpenCL devices (kernels/shard.cl): each step
 * one row kernel (a work-item per row, any strides), behind the target
 * check against classes_total (loss.c) where the step reads class
 * indices, and the loss reduction of loss.c for finalize. The mean's W
 * comes from the records (shard_den), since a shard holds only its own
 * classes' weights. */
#include "opencl/ops/loss.h"

#include <stdio.h>

/* Work-items per group of the row kernels: their launches need no
 * particular size, only whole groups. */
static size_t row_group(size_t kmax) { return kmax < 64 ? kmax : 64; }

static clxent_status launch_rows(loss_ctx *lc, cl_kernel k, size_t kmax,
                                 int last) {
    size_t L = row_group(kmax), R = lc->w.R;
    return clx_loss_launch(lc, k, (R + L - 1) / L * L, L, last);
}

/* Items per row (shard_group; CPUs 1: a row per item, its loads vectors
 * along the row; GPUs a group striding over it), no more than the classes
 * need (a power of two) and within kmax. 1024x32000 on PoCL: partial 45
 * -> 32 ms, bwd 60 -> 29 ms at 1 item against 64. */
static size_t group_per_row(const loss_ctx *lc, size_t kmax, size_t C) {
    size_t want = (size_t)CLX_P(&lc->s->params, shard_group), L = 1;
    while (L < want && L < C && 2 * L <= kmax) L *= 2;
    return L;
}

static clxent_status launch_groups(loss_ctx *lc, cl_kernel k, size_t L) {
    return clx_loss_launch(lc, k, lc->w.R * L, L, 1);
}

/* The check of the class indices against [0, classes_total), without
 * weights: a shard's weights cover its classes only. */
static clxent_status check_global(loss_ctx *lc) {
    const clx_op *op = lc->op;
    clx_op unweighted = *op;
    unweighted.weights.buffer = NULL;
    lc->op = &unweighted;
    size_t C = lc->w.C;
    lc->w.C = clx_index_range(op);
    clxent_status st = clx_loss_check_targets(lc);
    lc->op = op;
    if (lc->verdict) return st; /* keep C for the verdict's message */
    lc->w.C = C;
    return st;
}

static cl_mem mem_or(const clxent_tensor *t, cl_mem other) {
    return t->buffer ? t->buffer->mem : other;
}

/* The fields shard_partial and shard_bwd share (contract.h): the shard's
 * logits, targets, weights and range, and the records rc. */
#define SHARD_COMMON_ARGS(lc, op, rc)                                          \
    .x = (op)->x.buffer->mem, .x_off = (op)->x.offset,                         \
    .x_so = (op)->x.outer_stride, .x_sc = (op)->x.class_stride,                \
    .x_si = (op)->x.inner_stride, .O = (op)->x.outer, .C = (op)->x.classes,    \
    .I = (op)->x.inner, .y = mem_or(&(op)->indices, (lc)->scr),                \
    .y_off = (op)->indices.offset, .y_so = (op)->indices.outer_stride,         \
    .y_si = (op)->indices.inner_stride, .ii = (op)->opt.loss.ignore_index,     \
    .has_y = (op)->indices.buffer != NULL,                                     \
    .t = mem_or(&(op)->probs, (op)->x.buffer->mem), .t_off = (op)->probs.offset, \
    .t_so = (op)->probs.outer_stride, .t_sc = (op)->probs.class_stride,        \
    .t_si = (op)->probs.inner_stride,                                          \
    .w = (op)->weights.buffer ? (op)->weights.buffer->mem : (lc)->scr,         \
    .w_off = (op)->weights.offset, .has_w = (op)->weights.buffer != NULL,      \
    .cb = (op)->class_begin, .Ct = (size_t)(op)->classes_total,                \
    .eps = (op)->opt.loss.label_smoothing, .xa = (op)->opt.logit_scale,        \
    .xcap = (op)->opt.softcap, .rec = (rc)->buffer->mem, .r_off = (rc)->offset, \
    .r_so = (rc)->outer_stride, .r_sc = (rc)->class_stride,                    \
    .r_si = (rc)->inner_stride, .scr = (lc)->scr, .guard = (lc)->guard

static clxent_status partial(loss_ctx *lc) {
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_cl_kernel(lc->ctx, "shard.cl", lc->opts,
                                     "shard_partial", &k, &kmax);
    if (!st) st = check_global(lc);
    if (st) return st;
    size_t L = group_per_row(lc, kmax, op->x.classes);
    clx_a_shard_partial a = {SHARD_COMMON_ARGS(lc, op, &op->records),
                             .red = 6 * L};
    clx_args args = clx_args_begin(lc->ctx, k);
    clx_set_a_shard_partial(&args, &a);
    return args.st ? args.st : launch_groups(lc, k, L);
}

static clxent_status combine(loss_ctx *lc) {
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_cl_kernel(lc->ctx, "shard.cl", lc->opts,
                                     "shard_combine", &k, &kmax);
    if (st) return st;
    const clxent_tensor *a = &op->x, *b = &op->records, *o = &op->mat_out;
    clx_a_shard_combine v = {
        .a = a->buffer->mem, .a_off = a->offset, .a_so = a->outer_stride,
        .a_sc = a->class_stride, .a_si = a->inner_stride,
        .b = b->buffer->mem, .b_off = b->offset, .b_so = b->outer_stride,
        .b_sc = b->class_stride, .b_si = b->inner_stride,
        .out = o->buffer->mem, .o_off = o->offset, .o_so = o->outer_stride,
        .o_sc = o->class_stride, .o_si = o->inner_stride, .O = a->outer,
        .I = a->inner};
    clx_args args = clx_args_begin(lc->ctx, k);
    clx_set_a_shard_combine(&args, &v);
    return args.st ? args.st : launch_rows(lc, k, kmax, 1);
}

/* W from the records into the scratch header, for the mean over class
 * indices without a normalizer (lc->den_scr). */
static clxent_status den_from_records(loss_ctx *lc,
                                      const clxent_tensor *rc) {
    const clx_op *op = lc->op;
    if (!lc->den_scr) return CLXENT_STATUS_OK;
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_cl_kernel(lc->ctx, "shard.cl", lc->opts,
                                     "shard_den", &k, &kmax);
    if (st) return st;
    size_t L = clx_reduce_group(lc->s, kmax);
    const clxent_tensor *y = &op->indices;
    clx_a_shard_den v = {
        .rec = rc->buffer->mem, .r_off = rc->offset, .r_so = rc->outer_stride,
        .r_sc = rc->class_stride, .r_si = rc->inner_stride, .O = op->x.outer,
        .I = op->x.inner, .y = y->buffer->mem, .y_off = y->offset,
        .y_so = y->outer_stride, .y_si = y->inner_stride,
        .ii = op->opt.loss.ignore_index, .scr = lc->scr, .guard = lc->guard,
        .red = 2 * L};
    clx_args args = clx_args_begin(lc->ctx, k);
    clx_set_a_shard_den(&args, &v);
    return args.st ? args.st : clx_loss_launch(lc, k, L, L, 0);
}

/* One launch of shard_final: the loss (zonly: its z-loss part) per row
 * into out (the output for reduction none, else scratch to reduce). */
static clxent_status final_rows(loss_ctx *lc, cl_kernel k, size_t kmax,
                                int zonly, int with_rows, int last) {
    const clx_op *op = lc->op;
    int none = op->opt.loss.reduction == CLXENT_REDUCTION_NONE;
    const clxent_tensor *rc = &op->x, *y = &op->indices;
    const clxent_tensor *l = zonly ? &op->z_out : &op->vec_out;
    int has_l = none ? l->buffer != NULL : 1;
    clx_a_shard_final v = {
        .rec = rc->buffer->mem, .r_off = rc->offset, .r_so = rc->outer_stride,
        .r_sc = rc->class_stride, .r_si = rc->inner_stride, .O = rc->outer,
        .I = rc->inner, .y = mem_or(y, lc->scr), .y_off = y->offset,
        .y_so = y->outer_stride, .y_si = y->inner_stride,
        .ii = op->opt.loss.ignore_index, .Ct = (size_t)op->classes_total,
        .eps = op->opt.loss.label_smoothing, .zeta = op->opt.loss.z_loss,
        .lo = none && l->buffer ? l->buffer->mem : lc->scr,
        .lo_off = none && l->buffer ? l->offset : CLX_SCR_LOSS,
        .lo_so = none ? l->outer_stride : rc->inner,
        .lo_si = none ? l->inner_stride : 1, .has_l = has_l, .zonly = zonly,
        .lse_o = mem_or(&op->lse_out, lc->scr), .lse_off = op->lse_out.offset,
        .lse_so = op->lse_out.outer_stride, .lse_si = op->lse_out.inner_stride,
        .has_lse = with_rows && op->lse_out.buffer != NULL,
        .zo = mem_or(&op->z_out, lc->scr), .zo_off = op->z_out.offset,
        .zo_so = op->z_out.outer_stride, .zo_si = op->z_out.inner_stride,
        .has_z = with_rows && none && op->z_out.buffer != NULL,
        .scr = lc->scr, .guard = lc->guard};
    clx_args args = clx_args_begin(lc->ctx, k);
    clx_set_a_shard_final(&args, &v);
    return args.st ? args.st : launch_rows(lc, k, kmax, last);
}

static clxent_status finalize(loss_ctx *lc) {
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_cl_kernel(lc->ctx, "shard.cl", lc->opts,
                                     "shard_final", &k, &kmax);
    lc->own_records = op->indices.buffer ? &op->x : NULL;
    if (!st) st = check_global(lc);
    if (!st) st = den_from_records(lc, &op->x);
    if (st) return st;
    if (op->opt.loss.reduction == CLXENT_REDUCTION_NONE)
        return final_rows(lc, k, kmax, 0, 1, 1);
    int z = op->z_out.buffer != NULL, hold = lc->s->seq_hold;
    st = final_rows(lc, k, kmax, 0, 1, 0);
    lc->s->seq_hold = hold || z; /* the z part's kernels follow */
    if (!st) st = clx_loss_reduce(lc);
    lc->s->seq_hold = hold;
    if (!st && z) st = final_rows(lc, k, kmax, 1, 0, 0);
    if (!st && z) st = clx_loss_reduce_to(lc, &op->z_out);
    return st;
}

static clxent_status backward(loss_ctx *lc) {
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_cl_kernel(lc->ctx, "shard.cl", lc->opts,
                                     "shard_bwd", &k, &kmax);
    lc->own_records = op->indices.buffer ? &op->records : NULL;
    if (!st) st = check_global(lc);
    if (!st) st = den_from_records(lc, &op->records);
    if (st) return st;
    const clxent_tensor *g = &op->mat_out, *gr = &op->grad_rows;
    clx_a_shard_bwd a = {
        SHARD_COMMON_ARGS(lc, op, &op->records), .zeta = op->opt.loss.z_loss,
        .G = op->opt.loss.grad_scale, .den = lc->den, .den_scr = lc->den_scr,
        .gr = mem_or(gr, lc->scr), .gr_off = gr->offset,
        .gr_so = gr->outer_stride, .gr_si = gr->inner_stride,
        .has_gr = gr->buffer != NULL, .gm = g->buffer->mem, .g_off = g->offset,
        .g_so = g->outer_stride, .g_sc = g->class_stride,
        .g_si = g->inner_stride};
    clx_args args = clx_args_begin(lc->ctx, k);
    clx_set_a_shard_bwd(&args, &a);
    return args.st ? args.st
                   : launch_groups(lc, k, group_per_row(lc, kmax, op->x.classes));
}

clxent_status clx_op_shard(clxent_context *ctx, const clx_op *op) {
    clx_family family = op->kind == CLX_OP_SHARD_BACKWARD ? CLX_FAM_CE_BACKWARD
                                                          : CLX_FAM_CE_FORWARD;
    loss_ctx lc;
    clxent_status st;
    if (clx_loss_open(&lc, ctx, op, family, &st)) return st;
    snprintf(ctx->last_kernels, sizeof ctx->last_kernels, "%s",
             op->kind == CLX_OP_SHARD_PARTIAL    ? "shard_partial"
             : op->kind == CLX_OP_SHARD_COMBINE  ? "shard_combine"
             : op->kind == CLX_OP_SHARD_FINALIZE ? "shard_final"
                                                 : "shard_bwd");
    switch (op->kind) {
    case CLX_OP_SHARD_PARTIAL: st = partial(&lc); break;
    case CLX_OP_SHARD_COMBINE: st = combine(&lc); break;
    case CLX_OP_SHARD_FINALIZE: st = finalize(&lc); break;
    default: st = backward(&lc); break;
    }
    return clx_loss_finish_check(&lc, st);
}
