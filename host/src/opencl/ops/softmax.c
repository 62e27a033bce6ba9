/* OpenCL row primitives (max, exp-sum given the max, log_softmax,
 * softmax), each run the way the strategy table chose. */
#include "opencl/ops/loss.h"

/* The arguments every softmax-family kernel starts with: x, its shape, the
 * given max (row_expsum), the row-vector and matrix outputs, and which
 * primitive. Absent ones point at scratch. */
static clx_g_sm sm_group(const clx_op *op, cl_mem scr, int what) {
    int given = what == CLX_SM_EXPSUM, vec = what < CLX_SM_LOG_SOFTMAX;
    clx_g_sm g;
    g.x = op->x.buffer->mem;
    g.x_off = op->x.offset;
    g.x_ld = op->x.stride;
    g.R = op->x.rows;
    g.C = op->x.cols;
    g.mx = given ? op->vec_in.buffer->mem : scr;
    g.mx_off = given ? op->vec_in.offset : 0;
    g.vo = vec ? op->vec_out.buffer->mem : scr;
    g.vo_off = vec ? op->vec_out.offset : 0;
    g.yo = !vec ? op->mat_out.buffer->mem : scr;
    g.y_off = !vec ? op->mat_out.offset : 0;
    g.y_ld = !vec ? op->mat_out.stride : 0;
    g.what = what;
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
                               .bl = clx_cached_block(ctx->cl, op->x.cols),
                               .cache = p->cache,
                               .cstride = p->cstride};
        clx_set_a_sm_cached_l(&a, &v);
    } else if (p->runner == CLX_RUN_CACHED) {
        clx_a_sm_cached_g v = {.sm = sm,
                               .bl = clx_cached_block(ctx->cl, op->x.cols)};
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
    size_t R = op->x.rows, part = clx_scr_part_index(R);
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

clxent_status clx_op_softmax_family(clxent_context *ctx, const clx_op *op) {
    int what = op->kind == CLX_OP_ROW_MAX       ? CLX_SM_MAX
               : op->kind == CLX_OP_ROW_EXPSUM  ? CLX_SM_EXPSUM
               : op->kind == CLX_OP_LOG_SOFTMAX ? CLX_SM_LOG_SOFTMAX
                                                : CLX_SM_SOFTMAX;
    size_t R = op->x.rows;
    if (R == 0) return clx_cl_empty_op(ctx, op);
    clx_work w = {0};
    w.family = what == CLX_SM_SOFTMAX       ? CLX_FAM_SOFTMAX
               : what == CLX_SM_LOG_SOFTMAX ? CLX_FAM_LOG_SOFTMAX
                                            : CLX_FAM_ROWSTAT;
    w.R = R;
    w.C = op->x.cols;
    w.x = op->x.dtype;
    w.y = what >= CLX_SM_LOG_SOFTMAX ? op->mat_out.dtype : op->x.dtype;
    clx_plan p;
    clxent_status st = clx_plan_choose(ctx, &w, &p);
    if (st != CLXENT_STATUS_OK) return st;
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
