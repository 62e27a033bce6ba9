/* OpenCL cross-entropy: forward, fused and backward, each run the way the
 * strategy table (opencl/plan/strategy.c) chose, over the plumbing of
 * loss.h. */
#include "opencl/ops/loss.h"

#include <string.h>

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* VEC rows per item: the lanes kernels (a row per SIMD lane) and the
 * batch kernels (16 rows read along their columns, finished together;
 * cstride: the exps in local memory). */
static clxent_status run_vec_rows(loss_ctx *lc, const clx_plan *p, int grad) {
    clxent_status st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_args a = clx_args_begin(lc->ctx, p->k[0]);
    if (p->cstride) {
        clx_a_batchl_fused v;
        v.xent = clx_loss_xent(lc);
        v.out = clx_loss_out(lc);
        v.grad = clx_loss_grad(lc, 1);
        v.cache = p->cache;
        v.cstride = p->cstride;
        clx_set_a_batchl_fused(&a, &v);
    } else if (grad) {
        clx_a_vec_fused v = {.xent = clx_loss_xent(lc),
                             .out = clx_loss_out(lc),
                             .grad = clx_loss_grad(lc, 1)};
        clx_set_a_vec_fused(&a, &v);
    } else {
        clx_a_vec_fwd v = {.xent = clx_loss_xent(lc),
                           .out = clx_loss_out(lc)};
        clx_set_a_vec_fwd(&a, &v);
    }
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch_reduce(lc, p->k[0], p->global, p->L);
}

/* Fused, a group per row with the row in registers. */
static clxent_status run_regs(loss_ctx *lc, const clx_plan *p) {
    clxent_status st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_a_regs_fused v = {.xent = clx_loss_xent(lc),
                          .out = clx_loss_out(lc),
                          .grad = clx_loss_grad(lc, 1),
                          .red = p->L};
    clx_args a = clx_args_begin(lc->ctx, p->k[0]);
    clx_set_a_regs_fused(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch_reduce(lc, p->k[0], p->global, p->L);
}

/* Pass 1 of the split path: each of the P chunks of a row writes its
 * partial state to scratch. aonly: only A (backward with probabilities;
 * x is not read). */
static clxent_status launch_part(loss_ctx *lc, const clx_plan *p,
                                 int aonly) {
    const clx_geom *g = &p->g;
    clx_a_xent_part v;
    v.xent = clx_loss_xent(lc);
    v.P = g->P;
    v.CH = g->CH;
    v.part = lc->scr;
    v.part_off = clx_scr_part_index(lc->w.R);
    v.aonly = aonly;
    v.red = g->L;
    clx_args a = clx_args_begin(lc->ctx, p->k[0]);
    clx_set_a_xent_part(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch(lc, p->k[0], lc->w.R * g->P * g->L, g->L, 0);
}

/* Forward or fused over rows too few to fill the device: the chunks'
 * partial states, then a combine that writes the losses (and the
 * gradient, per chunk). */
static clxent_status run_split(loss_ctx *lc, const clx_plan *p, int grad) {
    const clx_geom *g = &p->g;
    clxent_status st = clx_loss_split_scratch(lc, g);
    if (st == CLXENT_STATUS_OK) st = clx_loss_check_targets(lc);
    if (st == CLXENT_STATUS_OK) st = launch_part(lc, p, 0);
    if (st != CLXENT_STATUS_OK) return st;
    clx_a_xent_split_out v;
    v.xent = clx_loss_xent(lc);
    v.out = clx_loss_out(lc);
    v.grad = clx_loss_grad(lc, grad);
    v.P = g->P;
    v.CH = g->CH;
    v.part = lc->scr;
    v.part_off = clx_scr_part_index(lc->w.R);
    v.do_grad = grad;
    v.red = g->L;
    clx_args a = clx_args_begin(lc->ctx, p->k[1]);
    clx_set_a_xent_split_out(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch_reduce(lc, p->k[1],
                                  (grad ? lc->w.R * g->P : lc->w.R) * g->L,
                                  g->L);
}

/* Fused, an item per row with one exp per element: cached in the f32
 * gradient, or (cstride) in local memory. */
static clxent_status run_cached(loss_ctx *lc, const clx_plan *p) {
    clxent_status st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_args a = clx_args_begin(lc->ctx, p->k[0]);
    size_t bl = clx_cached_block(lc->s, lc->w.C);
    if (p->cstride) {
        clx_a_rowsl_fused v = {.xent = clx_loss_xent(lc),
                               .out = clx_loss_out(lc),
                               .grad = clx_loss_grad(lc, 1),
                               .bl = bl,
                               .cache = p->cache,
                               .cstride = p->cstride};
        clx_set_a_rowsl_fused(&a, &v);
    } else {
        clx_a_rowsg_fused v = {.xent = clx_loss_xent(lc),
                               .out = clx_loss_out(lc),
                               .grad = clx_loss_grad(lc, 1),
                               .bl = bl};
        clx_set_a_rowsg_fused(&a, &v);
    }
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch_reduce(lc, p->k[0], p->global, p->L);
}

/* Forward or fused, T items per row, L/T rows per group. */
static clxent_status run_rows(loss_ctx *lc, const clx_plan *p, int grad) {
    const clx_geom *g = &p->g;
    clxent_status st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_args a = clx_args_begin(lc->ctx, p->k[0]);
    if (grad) {
        clx_a_rows_fused v = {.xent = clx_loss_xent(lc),
                              .out = clx_loss_out(lc),
                              .grad = clx_loss_grad(lc, 1),
                              .T = g->T,
                              .red = g->L};
        clx_set_a_rows_fused(&a, &v);
    } else {
        clx_a_rows_fwd v = {.xent = clx_loss_xent(lc),
                            .out = clx_loss_out(lc),
                            .T = g->T,
                            .red = g->L};
        clx_set_a_rows_fwd(&a, &v);
    }
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch_reduce(lc, p->k[0], g->groups * g->L, g->L);
}

/* Backward from the saved lse: the lanes kernel, or xent_bwd (rows of
 * probabilities reduce their A, split or not; class indices are
 * element-wise). */
static clxent_status run_backward(loss_ctx *lc, const clx_plan *p) {
    const clx_op *op = lc->op;
    clxent_status st = CLXENT_STATUS_OK;
    if (p->runner == CLX_RUN_VEC_ROWS) {
        st = clx_loss_check_targets(lc);
        if (st != CLXENT_STATUS_OK) return st;
        clx_a_lanes_bwd v = {.xent = clx_loss_xent(lc),
                             .lse_in = op->vec_in.buffer->mem,
                             .lse_in_off = op->vec_in.offset,
                             .grad = clx_loss_grad(lc, 1)};
        clx_args a = clx_args_begin(lc->ctx, p->k[0]);
        clx_set_a_lanes_bwd(&a, &v);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        return clx_loss_launch(lc, p->k[0], p->global, p->L, 1);
    }
    const clx_geom *g = &p->g;
    int split = p->runner == CLX_RUN_SPLIT;
    if (split) st = clx_loss_split_scratch(lc, g);
    if (st == CLXENT_STATUS_OK) st = clx_loss_check_targets(lc);
    if (st == CLXENT_STATUS_OK && split) st = launch_part(lc, p, 1);
    if (st != CLXENT_STATUS_OK) return st;
    cl_kernel k = p->k[split ? 1 : 0];
    clx_a_xent_bwd v;
    v.xent = clx_loss_xent(lc);
    v.lse_in = op->vec_in.buffer->mem;
    v.lse_off = op->vec_in.offset;
    v.grad = clx_loss_grad(lc, 1);
    v.T = g->T;
    v.P = g->P;
    v.CH = g->CH;
    v.part = lc->scr;
    v.part_off = clx_scr_part_index(lc->w.R);
    v.use_part = split;
    v.red = g->L;
    clx_args a = clx_args_begin(lc->ctx, k);
    clx_set_a_xent_bwd(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    size_t units = lc->w.R * g->P;
    return clx_loss_launch(lc, k, div_up(units, g->L / g->T) * g->L, g->L, 1);
}

/* The N-d kernels (nd.cl, nd_kept.cl): an item per VEC inner positions. */
static clxent_status run_nd(loss_ctx *lc, const clx_plan *p) {
    const clx_op *op = lc->op;
    clxent_status st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_args a = clx_args_begin(lc->ctx, p->k[0]);
    if (lc->w.family == CLX_FAM_CE_BACKWARD) {
        clx_a_nd_bwd v = {.nd = clx_loss_nd(lc),
                          .lse_in = op->vec_in.buffer->mem,
                          .lse_in_off = op->vec_in.offset,
                          .ndgrad = clx_loss_ndgrad(lc, 1)};
        clx_set_a_nd_bwd(&a, &v);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        return clx_loss_launch(lc, p->k[0], p->global, p->L, 1);
    }
    if (lc->w.family == CLX_FAM_CE_FUSED) {
        clx_a_nd_fused v = {.nd = clx_loss_nd(lc),
                            .out = clx_loss_out(lc),
                            .ndgrad = clx_loss_ndgrad(lc, 1)};
        clx_set_a_nd_fused(&a, &v);
    } else {
        clx_a_nd_fwd v = {.nd = clx_loss_nd(lc), .out = clx_loss_out(lc)};
        clx_set_a_nd_fwd(&a, &v);
    }
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch_reduce(lc, p->k[0], p->global, p->L);
}

/* The z-loss part, zeta*lse^2 per valid row from the lse the loss kernel
 * wrote (staged when the caller asked for none): into z_out, or reduced
 * into it as the loss was. */
static clxent_status run_z(loss_ctx *lc) {
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st =
        clx_cl_kernel(lc->ctx, "nll.cl", lc->opts, "z_rows", &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    int none = op->opt.loss.reduction == CLXENT_REDUCTION_NONE;
    clx_a_z_rows v = {
        .lse = op->lse_out.buffer->mem,
        .lse_off = op->lse_out.offset,
        .y = op->indices.buffer ? op->indices.buffer->mem : lc->scr,
        .y_off = op->indices.buffer ? op->indices.offset : 0,
        .ii = op->opt.loss.ignore_index,
        .has_y = op->indices.buffer != NULL,
        .R = lc->w.R,
        .C = lc->w.C,
        .zeta = op->opt.loss.z_loss,
        .out = none ? op->z_out.buffer->mem : lc->scr,
        .out_off = none ? op->z_out.offset : CLX_SCR_LOSS,
        .scr = lc->scr,
        .guard = lc->guard};
    clx_args a = clx_args_begin(lc->ctx, k);
    clx_set_a_z_rows(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    size_t L = kmax < 64 ? kmax : 64;
    st = clx_loss_launch(lc, k, (lc->w.R + L - 1) / L * L, L, none);
    if (st != CLXENT_STATUS_OK || none) return st;
    return clx_loss_reduce_to(lc, &op->z_out);
}

static clxent_status run(loss_ctx *lc) {
    clx_plan p;
    clxent_status st = clx_plan_choose(lc->ctx, &lc->w, &p);
    if (st != CLXENT_STATUS_OK) return st;
    if (p.runner == CLX_RUN_ND) return run_nd(lc, &p);
    if (lc->w.family == CLX_FAM_CE_BACKWARD) return run_backward(lc, &p);
    int grad = lc->w.family == CLX_FAM_CE_FUSED;
    switch (p.runner) {
    case CLX_RUN_VEC_ROWS: return run_vec_rows(lc, &p, grad);
    case CLX_RUN_REGS: return run_regs(lc, &p);
    case CLX_RUN_SPLIT: return run_split(lc, &p, grad);
    case CLX_RUN_CACHED: return run_cached(lc, &p);
    case CLX_RUN_ROWS: return run_rows(lc, &p, grad);
    case CLX_RUN_ELEMS:
    case CLX_RUN_ITEMS:
    case CLX_RUN_ND: break;
    }
    return clx_fail(lc->ctx, CLXENT_STATUS_UNSUPPORTED, lc->op->function,
                    "strategy %s does not run cross-entropy", p.name);
}

clxent_status clx_op_cross_entropy(clxent_context *ctx, const clx_op *op) {
    clx_family family =
        op->kind == CLX_OP_CE_BACKWARD ? CLX_FAM_CE_BACKWARD
        : op->kind == CLX_OP_CE_FUSED && op->mat_out.buffer
            ? CLX_FAM_CE_FUSED
            : CLX_FAM_CE_FORWARD;
    loss_ctx lc;
    clxent_status st;
    if (clx_loss_open(&lc, ctx, op, family, &st)) return st;
    if (!op->z_out.buffer) return clx_loss_finish_check(&lc, run(&lc));
    /* the z-loss step's last kernel is the operation's last */
    int hold = ctx->cl->seq_hold;
    ctx->cl->seq_hold = 1;
    st = run(&lc);
    ctx->cl->seq_hold = hold;
    if (st == CLXENT_STATUS_OK) st = run_z(&lc);
    return clx_loss_finish_check(&lc, st);
}
