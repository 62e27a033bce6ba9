/* OpenCL NLL over given log-probabilities (x holds logp) and its gradient,
 * after the target check (loss.c). */
#include "opencl/ops/loss.h"

static clxent_status run_nll(loss_ctx *lc) {
    const clx_op *op = lc->op;
    clx_plan p;
    clxent_status st = clx_plan_choose(lc->ctx, &lc->w, &p);
    if (st == CLXENT_STATUS_OK) st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    cl_mem w = op->weights.buffer ? op->weights.buffer->mem : lc->scr;
    size_t w_off = op->weights.buffer ? op->weights.offset : 0;
    clx_args a = clx_args_begin(lc->ctx, p.k[0]);
    if (lc->w.family == CLX_FAM_NLL_FORWARD) {
        int direct = op->opt.loss.reduction == CLXENT_REDUCTION_NONE;
        int nd = lc->w.nd;
        clx_a_nll_fwd v = {
        .x = op->x.buffer->mem,
        .x_off = op->x.offset,
        .x_so = nd ? op->x.outer_stride : clx_ld(&op->x),
        .x_sc = nd ? op->x.class_stride : 1,
        .x_si = nd ? op->x.inner_stride : 0,
        .I = nd ? op->x.inner : 1,
        .R = lc->w.R,
        .C = lc->w.C,
        .y = op->indices.buffer->mem,
        .y_off = op->indices.offset,
        .ii = op->opt.loss.ignore_index,
        .w = w,
        .w_off = w_off,
        .has_w = op->weights.buffer != NULL,
        .loss = direct ? op->vec_out.buffer->mem : lc->scr,
        .loss_off = direct ? op->vec_out.offset : CLX_SCR_LOSS,
        .scr = lc->scr,
        .guard = lc->guard};
        clx_set_a_nll_fwd(&a, &v);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        return clx_loss_launch_reduce(lc, p.k[0], p.global, p.L);
    }
    if (p.runner == CLX_RUN_ND) {
        const clxent_tensor *g = &op->mat_out;
        clx_a_nd_nll_bwd v = {
            .g = g->buffer->mem,
            .g_off = g->offset,
            .g_so = g->outer_stride,
            .g_sc = g->class_stride,
            .g_si = g->inner_stride,
            .O = g->outer,
            .C = g->classes,
            .I = g->inner,
            .y = op->indices.buffer->mem,
            .y_off = op->indices.offset,
            .ii = op->opt.loss.ignore_index,
            .w = w,
            .w_off = w_off,
            .has_w = op->weights.buffer != NULL,
            .G = op->opt.loss.grad_scale,
            .den = lc->den,
            .den_scr = lc->den_scr,
            .scr = lc->scr,
            .gr = op->grad_rows.buffer ? op->grad_rows.buffer->mem : lc->scr,
            .gr_off = op->grad_rows.buffer ? op->grad_rows.offset : 0,
            .has_gr = op->grad_rows.buffer != NULL,
            .guard = lc->guard};
        clx_set_a_nd_nll_bwd(&a, &v);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        return clx_loss_launch(lc, p.k[0], p.global, p.L, 1);
    }
    clx_a_nll_bwd v = {
        .g = op->mat_out.buffer->mem,
        .g_off = op->mat_out.offset,
        .g_ld = clx_ld(&op->mat_out),
        .R = lc->w.R,
        .C = lc->w.C,
        .y = op->indices.buffer->mem,
        .y_off = op->indices.offset,
        .ii = op->opt.loss.ignore_index,
        .w = w,
        .w_off = w_off,
        .has_w = op->weights.buffer != NULL,
        .G = op->opt.loss.grad_scale,
        .den = lc->den,
        .den_scr = lc->den_scr,
        .scr = lc->scr,
        .gr = op->grad_rows.buffer ? op->grad_rows.buffer->mem : lc->scr,
        .gr_off = op->grad_rows.buffer ? op->grad_rows.offset : 0,
        .has_gr = op->grad_rows.buffer != NULL,
        .T = p.g.T,
        .P = p.g.P,
        .CH = p.g.CH,
        .guard = lc->guard};
    clx_set_a_nll_bwd(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch(lc, p.k[0], p.g.groups * p.g.L, p.g.L, 1);
}

clxent_status clx_op_nll(clxent_context *ctx, const clx_op *op) {
    clx_family family = op->kind == CLX_OP_NLL_FORWARD ? CLX_FAM_NLL_FORWARD
                                                       : CLX_FAM_NLL_BACKWARD;
    loss_ctx lc;
    clxent_status st;
    if (clx_loss_open(&lc, ctx, op, family, &st)) return st;
    return clx_loss_finish_check(&lc, run_nll(&lc));
}
