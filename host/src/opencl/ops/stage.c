/* Layouts: which kernels a tensor's layout allows, and the staging of
 * strided per-row arrays. The kernels index per-row arrays (targets,
 * grad_rows, a given max or lse, losses, lse, the z-loss part) as compact
 * outer x inner arrays, row r = o*I + i at offset + r; an N-d call may
 * pass any strides, so those that differ are copied into staging memory
 * (stage_rows, copy.cl) before the operation and out of it after. Only
 * O(rows) values move, and only for such calls. */
#include "opencl/ops/loss.h"

#include <string.h>

int clx_view_2d(const clxent_tensor *t, size_t *ld) {
    if (t->classes > 1 && t->class_stride != 1) return 0;
    if (t->inner <= 1)
        *ld = t->outer_stride;
    else if (t->outer <= 1 || t->outer_stride == t->inner * t->inner_stride)
        *ld = t->inner_stride;
    else
        return 0;
    return 1;
}

size_t clx_ld(const clxent_tensor *t) {
    size_t ld = 0;
    (void)clx_view_2d(t, &ld);
    return ld;
}

int clx_op_is_2d(const clx_op *op) {
    size_t ld;
    const clxent_tensor *m[3] = {&op->x, &op->probs, &op->mat_out};
    for (int k = 0; k < 3; ++k)
        if ((k == 0 || m[k]->buffer) && !clx_view_2d(m[k], &ld)) return 0;
    return 1;
}

int clx_op_transforms(const clx_op *op) {
    return op->opt.softcap != 0.0f || op->opt.logit_scale != 1.0f;
}

static int compact(const clxent_tensor *t, size_t O, size_t I) {
    return (I <= 1 || t->inner_stride == 1) && (O <= 1 || t->outer_stride == I);
}

/* One per-row array of the op: where it is, whether it is read or
 * written, and its 32-bit words per element. */
typedef struct slot {
    clxent_tensor *t;
    int output;
    unsigned words;
    size_t region; /* its bytes' start in staging memory */
} slot;

static clxent_status launch_stage(clxent_context *ctx, const clx_op *op,
                                  const clxent_tensor *src,
                                  const clxent_tensor *dst, unsigned words,
                                  int last) {
    clx_opencl_state *s = ctx->cl;
    char opts[192];
    clx_build_options(s, s->d.vec, opts, sizeof opts, CLXENT_F32, CLXENT_F32,
                      0);
    cl_kernel k;
    size_t kmax;
    clxent_status st =
        clx_cl_kernel(ctx, "copy.cl", opts, "stage_rows", &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    clx_a_stage_rows a = {.src = src->buffer->mem,
                          .s_off = src->offset,
                          .s_so = src->outer_stride,
                          .s_si = src->inner_stride,
                          .dst = dst->buffer->mem,
                          .d_off = dst->offset,
                          .d_so = dst->outer_stride,
                          .d_si = dst->inner_stride,
                          .O = src->outer,
                          .I = src->inner,
                          .words = words};
    clx_args args = clx_args_begin(ctx, k);
    clx_set_a_stage_rows(&args, &a);
    if (args.st != CLXENT_STATUS_OK) return args.st;
    size_t L = kmax < 64 ? kmax : 64, n = src->outer * src->inner;
    if (last) s->seq_hold = 0;
    return clx_cl_launch(ctx, op, k, (n + L - 1) / L * L, L, 1, last);
}

clxent_status clx_op_staged(clxent_context *ctx, const clx_op *op,
                            clxent_status (*fn)(clxent_context *,
                                                const clx_op *)) {
    clx_opencl_state *s = ctx->cl;
    size_t O = op->x.outer, I = op->x.inner, R = O * I;
    if (R == 0) return fn(ctx, op);
    clx_op o = *op;
    int none = op->opt.loss.reduction == CLXENT_REDUCTION_NONE;
    /* the z-loss step reads the lse: a compact one of its own if the
     * caller asked for none */
    int z_lse = op->z_out.buffer && !op->lse_out.buffer;
    slot all[6] = {
        {&o.indices, 0, op->indices.dtype == CLXENT_I64 ? 2u : 1u, 0},
        {&o.grad_rows, 0, 1, 0},
        {&o.vec_in, 0, 1, 0},
        {none || op->kind <= CLX_OP_ROW_EXPSUM ? &o.vec_out : NULL, 1, 1, 0},
        {&o.lse_out, 1, 1, 0},
        {none ? &o.z_out : NULL, 1, 1, 0}};
    slot staged[6];
    size_t n = 0, bytes = 0;
    for (int k = 0; k < 6; ++k) {
        if (!all[k].t || !all[k].t->buffer || compact(all[k].t, O, I))
            continue;
        staged[n] = all[k];
        staged[n].region = bytes;
        bytes += (R * 4 * all[k].words + 7) / 8 * 8;
        ++n;
    }
    size_t lse_region = bytes;
    if (z_lse) bytes += R * 4;
    if (bytes == 0) return fn(ctx, op);
    cl_mem mem;
    clxent_status st = clx_cl_stage(ctx, bytes, &mem);
    if (st != CLXENT_STATUS_OK) return st;
    int scatter = 0;
    for (size_t k = 0; k < n; ++k) {
        clxent_tensor c = *staged[k].t;
        c.buffer = &s->stage_buffer;
        c.offset = staged[k].region / (4 * staged[k].words);
        c.outer_stride = I;
        c.inner_stride = 1;
        c.class_stride = 1;
        if (!staged[k].output)
            st = launch_stage(ctx, op, staged[k].t, &c, staged[k].words, 0);
        if (st != CLXENT_STATUS_OK) return st;
        scatter |= staged[k].output;
        *staged[k].t = c; /* the op now uses the compact copy */
    }
    if (z_lse) {
        o.lse_out = clxent_rows_of(&s->stage_buffer, O, I, CLXENT_F32);
        o.lse_out.offset = lse_region / 4;
    }
    s->seq_hold = scatter;
    st = fn(ctx, &o);
    if (st != CLXENT_STATUS_OK) return st;
    size_t remaining = 0;
    for (size_t k = 0; k < n; ++k) remaining += staged[k].output;
    for (size_t k = 0; k < n; ++k) {
        if (!staged[k].output) continue;
        /* the caller's own descriptor from op: the slot's place in o
         * matches it in op */
        const clxent_tensor *dst =
            (const clxent_tensor *)((const char *)op +
                                    ((const char *)staged[k].t -
                                     (const char *)&o));
        st = launch_stage(ctx, op, staged[k].t, dst, staged[k].words,
                          --remaining == 0);
        if (st != CLXENT_STATUS_OK) return st;
    }
    return CLXENT_STATUS_OK;
}
