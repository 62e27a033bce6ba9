/* OpenCL dtype-converting strided copy (bit-exact for the same dtype). */
#include "opencl/ops/loss.h"

clxent_status clx_op_copy(clxent_context *ctx, const clx_op *op) {
    size_t R = clx_rows(op), C = op->x.classes;
    if (R == 0 || C == 0) return clx_cl_empty_op(ctx, op);
    /* the N-d layout: nd_sm's copy */
    if (!clx_op_is_2d(op)) return clx_op_softmax_family(ctx, op);
    size_t x_ld = clx_ld(&op->x), y_ld = clx_ld(&op->mat_out);
    /* Contiguous on both sides: a few long rows instead of many short
     * ones (up to 2^16 columns, R' * C' = R * C). */
    if (x_ld == C && y_ld == C) {
        while (R % 2 == 0 && C * 2 <= 65536) {
            R /= 2;
            C *= 2;
        }
    }
    int reshaped = R != clx_rows(op);
    clx_work w = {0};
    w.family = CLX_FAM_COPY;
    w.R = R;
    w.C = C;
    w.x = op->x.dtype;
    w.y = op->mat_out.dtype;
    clx_plan p;
    clxent_status st = clx_plan_choose(ctx, &w, &p);
    if (st != CLXENT_STATUS_OK) return st;
    clx_a_copy_rows v = {.x = op->x.buffer->mem,
                         .x_off = op->x.offset,
                         .x_ld = reshaped ? C : x_ld,
                         .y = op->mat_out.buffer->mem,
                         .y_off = op->mat_out.offset,
                         .y_ld = reshaped ? C : y_ld,
                         .R = R,
                         .C = C,
                         .T = p.g.T,
                         .P = p.g.P,
                         .CH = p.g.CH};
    clx_args a = clx_args_begin(ctx, p.k[0]);
    clx_set_a_copy_rows(&a, &v);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_cl_launch(ctx, op, p.k[0], p.g.groups * p.g.L, p.g.L, 1, 1);
}
