/* OpenCL row primitives (max, exp-sum given the max, log_softmax,
 * softmax), each run the way the strategy table chose; on the N-d layout
 * also the copy (nd_sm). */
#include "opencl/ops/loss.h"

/* The arguments every softmax-family kernel starts with: x, its shape, the
 * given max (row_expsum), the row-vector and matrix outputs, and which
 * primitive. Absent ones point at scratch. */
static clx_g_sm sm_group(const clx_op *op, cl_mem scr, int what) {
    int given = what == CLX_SM_EXPSUM, vec = what < CLX_SM_LOG_SOFTMAX;
    clx_g_sm g;
    g.x = op->x.buffer->mem;
    g.x_off = op->x.offset;
    g.x_ld = clx_ld(&op->x);
    g.R = clx_rows(op);
    g.C = op->x.classes;
    g.mx = given ? op->vec_in.buffer->mem : scr;
    g.mx_off = given ? op->vec_in.offset : 0;
    g.vo = vec ? op->vec_out.buffer->mem : scr;
    g.vo_off = vec ? op->vec_out.offset : 0;
    g.yo = !vec ? op->mat_out.buffer->mem : scr;
    g.y_off = !vec ? op->mat_out.offset : 0;
    g.y_ld = !vec ? clx_ld(&op->mat_out) : 0;
    g.what = what;
    g.xa = op->opt.logit_scale;
    g.xcap = op->opt.softcap;
    return g;
}

/* A kernel that writes every output in one launch. */
static clxent_status launch_one(clxent_context *ctx, const clx_op *op,
                                const clx_plan *p, cl_mem scr, int what) {
    clx_args a = clx_args_begin(ctx, p->k[0]);
    clx_g_sm sm = sm_group(op, scr, what);
    size_t global = p->global, L = p->L;
    if (p->runner == CLX_RUN_VEC_ROWS && p->cstride) {
        clx_a_sm_batchl v = {.sm = sm,
                             .cache = p->cache,
                             .cstride = p->cstride};
        clx_set_a_sm_batchl(&a, &v);
    } else if (p->runner == CLX_RUN_VEC_ROWS) {
        clx_a_sm v = {.sm = sm};
        clx_set_a_sm(&a, &v);
    } else if (p->runner == CLX_RUN_CACHED && p->cstride) {
        clx_a_sm_cached_l v = {.sm = sm,
                               .bl = clx_cached_block(ctx->cl, op->x.classes),
                               .cache = p->cache,
                               .cstride = p->cstride};
        clx_set_a_sm_cached_l(&a, &v);
    } else if (p->runner == CLX_RUN_CACHED) {
        clx_a_sm_cached_g v = {.sm = sm,
                               .bl = clx_cached_block(ctx->cl, op->x.classes)};
        clx_set_a_sm_cached_g(&a, &v);
    } else { /* rows */
        clx_a_sm_rows v = {.sm = sm, .T = p->g.T, .red = p->g.L};
        clx_set_a_sm_rows(&a, &v);
        global = p->g.groups * p->g.L;
        L = p->g.L;
    }
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_cl_launch(ctx, op, p->k[0], global, L, 1, 1);
}

/* Rows too few to fill the device: the chunks' partial states, then the
 * outputs (per chunk for matrices, per row for vectors). */
static clxent_status launch_split(clxent_context *ctx, const clx_op *op,
                                  const clx_plan *p, cl_mem scr, int what) {
    const clx_geom *g = &p->g;
    size_t R = clx_rows(op), part = clx_scr_part_index(R);
    clx_a_sm_part v = {.sm = sm_group(op, scr, what),
                       .P = g->P,
                       .CH = g->CH,
                       .part = scr,
                       .part_off = part,
                       .red = g->L};
    clx_args a = clx_args_begin(ctx, p->k[0]);
    clx_set_a_sm_part(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    clxent_status st =
        clx_cl_launch(ctx, op, p->k[0], R * g->P * g->L, g->L, 1, 0);
    if (st != CLXENT_STATUS_OK) return st;
    clx_a_sm_split_out o = {.sm = v.sm,
                            .P = g->P,
                            .CH = g->CH,
                            .part = scr,
                            .part_off = part,
                            .red = g->L};
    a = clx_args_begin(ctx, p->k[1]);
    clx_set_a_sm_split_out(&a, &o);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    size_t units = what < CLX_SM_LOG_SOFTMAX ? R : R * g->P;
    return clx_cl_launch(ctx, op, p->k[1], units * g->L, g->L, 0, 1);
}

/* The N-d layout: nd_sm, an item per VEC inner positions. */
static clxent_status launch_nd(clxent_context *ctx, const clx_op *op,
                               const clx_plan *p, cl_mem scr, int what) {
    int given = what == CLX_SM_EXPSUM, vec = what < CLX_SM_LOG_SOFTMAX;
    const clxent_tensor *x = &op->x, *y = &op->mat_out;
    clx_a_nd_sm v = {.x = x->buffer->mem,
                     .x_off = x->offset,
                     .x_so = x->outer_stride,
                     .x_sc = x->class_stride,
                     .x_si = x->inner_stride,
                     .O = x->outer,
                     .C = x->classes,
                     .I = x->inner,
                     .mx = given ? op->vec_in.buffer->mem : scr,
                     .mx_off = given ? op->vec_in.offset : 0,
                     .vo = vec ? op->vec_out.buffer->mem : scr,
                     .vo_off = vec ? op->vec_out.offset : 0,
                     .yo = !vec ? y->buffer->mem : scr,
                     .y_off = !vec ? y->offset : 0,
                     .y_so = !vec ? y->outer_stride : 0,
                     .y_sc = !vec ? y->class_stride : 0,
                     .y_si = !vec ? y->inner_stride : 0,
                     .what = what,
                     .xa = op->opt.logit_scale,
                     .xcap = op->opt.softcap};
    clx_args a = clx_args_begin(ctx, p->k[0]);
    clx_set_a_nd_sm(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_cl_launch(ctx, op, p->k[0], p->global, p->L, 1, 1);
}

clxent_status clx_op_softmax_family(clxent_context *ctx, const clx_op *op) {
    int what = op->kind == CLX_OP_ROW_MAX       ? CLX_SM_MAX
               : op->kind == CLX_OP_ROW_EXPSUM  ? CLX_SM_EXPSUM
               : op->kind == CLX_OP_LOG_SOFTMAX ? CLX_SM_LOG_SOFTMAX
               : op->kind == CLX_OP_COPY        ? CLX_SM_COPY
                                                : CLX_SM_SOFTMAX;
    size_t R = clx_rows(op);
    if (R == 0) return clx_cl_empty_op(ctx, op);
    clx_work w = {0};
    w.family = what == CLX_SM_SOFTMAX       ? CLX_FAM_SOFTMAX
               : what == CLX_SM_LOG_SOFTMAX ? CLX_FAM_LOG_SOFTMAX
               : what == CLX_SM_COPY        ? CLX_FAM_COPY
                                            : CLX_FAM_ROWSTAT;
    w.R = R;
    w.C = op->x.classes;
    w.O = op->x.outer;
    w.I = op->x.inner;
    w.nd = !clx_op_is_2d(op);
    w.xf = clx_op_transforms(op);
    w.x = op->x.dtype;
    w.y = what >= CLX_SM_LOG_SOFTMAX ? op->mat_out.dtype : op->x.dtype;
    clx_plan p;
    clxent_status st = clx_plan_choose(ctx, &w, &p);
    if (st != CLXENT_STATUS_OK) return st;
    if (p.runner == CLX_RUN_ND) {
        cl_mem scr;
        st = clx_cl_scratch(ctx, CLX_SCR_LOSS * sizeof(cl_float), &scr);
        return st ? st : launch_nd(ctx, op, &p, scr, what);
    }
    int split = p.runner == CLX_RUN_SPLIT;
    size_t floats = split ? clx_scr_part_index(R) +
                                R * p.g.P * (size_t)CLX_PART_FLOATS
                          : CLX_SCR_LOSS;
    cl_mem scr;
    st = clx_cl_scratch(ctx, floats * sizeof(cl_float), &scr);
    if (st != CLXENT_STATUS_OK) return st;
    return split ? launch_split(ctx, op, &p, scr, what)
                 : launch_one(ctx, op, &p, scr, what);
}
