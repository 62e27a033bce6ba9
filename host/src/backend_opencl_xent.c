/* OpenCL cross-entropy: the strategies (kernels/xent.cl and, for CPUs,
 * kernels/xent_cpu.cl) over the shared plumbing of opencl_loss.h. Forward
 * and fused: the lanes kernel (small C on CPUs), the register-cached row
 * (GPUs), the cached-exps rows (CPUs), the rows kernels, or split rows;
 * backward from the saved lse: element-wise, or with the A of
 * probability targets. */
#include "opencl_loss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Launches a lanes kernel over the rows. */
static clxent_status launch_lanes(loss_ctx *lc, cl_kernel k, size_t kmax,
                                  int last) {
    size_t global;
    size_t L = clx_ops_lanes_group(lc->s, lc->R, kmax, 0, &global);
    return clx_loss_launch(lc, k, global, L, last);
}

/* VEC rows per item on a CPU: small C, the lanes kernel (a row per SIMD
 * lane); medium C, the batch kernel (the rows read along their columns,
 * finished together; fused 16-bit: the exps in local memory). */
static clxent_status run_vec_rows(loss_ctx *lc, int grad, int batch) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    int reduce = clx_loss_wants_reduce(op);
    cl_kernel k;
    size_t kmax;
    int local_cache = batch && grad && op->x.dtype != CLXENT_F32;
    static const char *const names[2][2] = {
        {"xent_lanes_fwd", "xent_lanes_fused"},
        {"xent_batch_fwd", "xent_batch_fused"}};
    /* the batch kernels: label smoothing is a build option */
    char opts[160];
    snprintf(opts, sizeof opts, "%s -DSMOOTH=%d", lc->opts,
             batch && op->opt.label_smoothing > 0.0f);
    clxent_status st =
        clx_ops_kernel(ctx, batch ? "xent_batch.cl" : "xent_cpu.cl",
                       batch ? opts : lc->opts,
                       local_cache ? "xent_batchl_fused" : names[batch][grad],
                       &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    if (op->indices.buffer) {
        st = clx_loss_check_targets(lc);
        if (st != CLXENT_STATUS_OK) return st;
    }
    clx_args a = clx_args_begin(ctx, k);
    clx_loss_xent_args(lc, &a);
    clx_loss_out_args(lc, &a);
    if (grad) clx_loss_grad_args(lc, &a, 1);
    size_t item_floats =
        local_cache ? clx_ops_batch_cache_floats(lc->s, lc->C) : 0;
    size_t global;
    size_t L = clx_ops_lanes_group(lc->s, lc->R, kmax, item_floats, &global);
    if (local_cache) clx_ops_batch_cache_args(&a, lc->s, lc->C, L);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    st = clx_loss_launch(lc, k, global, L, !reduce);
    if (st != CLXENT_STATUS_OK) return st;
    return reduce ? clx_loss_reduce(lc) : CLXENT_STATUS_OK;
}

/* The register-cached fused kernel: 1 forced on, 0 forced off, -1 auto. */
static int gpu_cache_mode(void) {
    return clx_ops_mode(clx_ops_tune.gpu_cache, "CLXENT_GPU_CACHE");
}

/* Fused, one group per row with the row in registers (CK values per
 * item). Returns 1 when it launched (st set), 0 when the row does not
 * fit (the caller takes the rows path). */
static int run_regs(loss_ctx *lc, clxent_status *st) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    clx_opencl_state *s = lc->s;
    size_t C = lc->C;
    /* the group size the device allows without registers in mind */
    size_t Ldev = 1;
    while (Ldev * 2 <= min_size(s->max_work_group_size, 1024)) Ldev *= 2;
    unsigned ck = C <= 16 * Ldev ? 16 : C <= 32 * Ldev ? 32 : 64;
    /* CLXENT_GPU_CACHE_CK=16/32/64: values per item (experiments) */
    const char *env = getenv("CLXENT_GPU_CACHE_CK");
    if (env && (!strcmp(env, "16") || !strcmp(env, "32") ||
                !strcmp(env, "64")))
        ck = (unsigned)atoi(env);
    if (C > (size_t)ck * Ldev) return 0;
    char opts[160];
    snprintf(opts, sizeof opts, "%s -DCK=%u", lc->opts, ck);
    cl_kernel k;
    size_t kmax;
    *st = clx_ops_kernel(ctx, "xent.cl", opts, "xent_regs_fused", &k, &kmax);
    if (*st != CLXENT_STATUS_OK) return 1;
    size_t L = 1;
    while (L * ck < C) L *= 2;
    if (L < 32 && s->is_gpu) L = 32; /* a whole warp */
    size_t lim = min_size(kmax, Ldev);
    while (L > lim) L /= 2;
    if (L * ck < C) return 0; /* registers cap the group: rows path */
    if (op->indices.buffer) {
        *st = clx_loss_check_targets(lc);
        if (*st != CLXENT_STATUS_OK) return 1;
    }
    int reduce = clx_loss_wants_reduce(op);
    clx_args a = clx_args_begin(ctx, k);
    clx_loss_xent_args(lc, &a);
    clx_loss_out_args(lc, &a);
    clx_loss_grad_args(lc, &a, 1);
    clx_arg_local(&a, L * ST_BYTES);
    if (a.st != CLXENT_STATUS_OK) {
        *st = a.st;
        return 1;
    }
    *st = clx_loss_launch(lc, k, lc->R * L, L, !reduce);
    if (*st == CLXENT_STATUS_OK && reduce) *st = clx_loss_reduce(lc);
    return 1;
}

/* Forward or fused: rows path or split path, then the reduction. */

/* Pass 1 of the split path: each of the P groups of a row writes its
 * chunk's partial state to scratch at `part`. a_only: only A (backward
 * with probabilities; x is not read). */
static clxent_status launch_part(loss_ctx *lc, cl_kernel kpart,
                                 const clx_geom *g, size_t part, int a_only) {
    clx_args a = clx_args_begin(lc->ctx, kpart);
    clx_loss_xent_args(lc, &a);
    clx_arg_uint(&a, g->P);
    clx_arg_uint(&a, g->CH);
    clx_arg_mem(&a, lc->scr);
    clx_arg_ulong(&a, part);
    clx_arg_int(&a, a_only);
    clx_arg_local(&a, g->L * ST_BYTES);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch(lc, kpart, lc->R * g->P * g->L, g->L, 0);
}

/* The split path's partial states need R x P x 8 floats of scratch past
 * the reduction's partials; then the targets are checked (before any
 * kernel that writes an output). */
static clxent_status split_scratch_and_check(clxent_context *ctx,
                                             loss_ctx *lc,
                                             const clx_geom *g, size_t part) {
    if (g->split) {
        size_t need = lc->R * g->P * 8, aux = clx_loss_aux_floats(lc);
        clxent_status st = clx_cl_scratch(
            ctx, (part + (need > aux ? need : aux)) * sizeof(cl_float),
            &lc->scr);
        if (st != CLXENT_STATUS_OK) return st;
    }
    return lc->op->indices.buffer ? clx_loss_check_targets(lc)
                                  : CLXENT_STATUS_OK;
}

static clxent_status run_forward(loss_ctx *lc, int grad) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    int reduce = clx_loss_wants_reduce(op);
    if (clx_ops_use_batch(lc->s, lc->C, CLX_BATCH_CMIN, lc->tgt, grad,
                          op->x.dtype))
        return run_vec_rows(lc, grad, 1);
    if (clx_ops_use_lanes(lc->s, lc->C, lc->tgt))
        return run_vec_rows(lc, grad, 0);
    cl_kernel krow, kpart, kout;
    size_t m1, m2, m3;
    clxent_status st = clx_ops_kernel(ctx, "xent.cl", lc->opts,
                                      grad ? "xent_rows_fused"
                                           : "xent_rows_fwd",
                                      &krow, &m1);
    if (st == CLXENT_STATUS_OK)
        st = clx_ops_kernel(ctx, "xent.cl", lc->opts, "xent_part", &kpart,
                            &m2);
    if (st == CLXENT_STATUS_OK)
        st = clx_ops_kernel(ctx, "xent.cl", lc->opts, "xent_split_out", &kout,
                            &m3);
    if (st != CLXENT_STATUS_OK) return st;
    clx_geom g = clx_geom_rows(lc->s, lc->R, lc->C, 1,
                               min_size(m1, min_size(m2, m3)));
    /* GPUs: the row in registers, x read once (when rows are enough to
     * fill the device and C is past what the rows kernel keeps in L1) */
    int gc = gpu_cache_mode();
    if (grad && (gc == 1 || (gc < 0 && lc->s->is_gpu && !g.split &&
                             lc->C > 1024))) {
        if (run_regs(lc, &st)) return st;
    }
    /* CPUs, a row per item: one exp per element, the exps cached in the
     * gradient (f32: any C) or in local memory (f16/bf16, when a few rows
     * fit); xent_cpu.cl. */
    int use_cache = grad && clx_ops_cached(lc->s, &g);
    int gcached = use_cache && op->x.dtype == CLXENT_F32;
    size_t cstride = clx_ops_cached_stride(lc->s, lc->C);
    /* 16-bit: cstride floats of local memory per row */
    int cached = use_cache && !gcached &&
                 clx_ops_cached_group(lc->s, g.L, g.L, cstride) > 0;
    if (gcached || cached) {
        st = clx_ops_kernel(ctx, "xent_cpu.cl", lc->opts,
                            gcached ? "xent_rowsg_fused" : "xent_rowsl_fused",
                            &krow, &m1);
        g.T = 1;
        g.L = clx_ops_cached_group(lc->s, g.L, m1, cached ? cstride : 0);
        g.groups = (lc->R + g.L - 1) / g.L;
    } else if (!g.split && g.T == 1) { /* the barrier-free twin */
        st = clx_ops_kernel(ctx, "xent.cl", lc->opts,
                            grad ? "xent_rows1_fused" : "xent_rows1_fwd",
                            &krow, &m1);
    }
    if (st != CLXENT_STATUS_OK) return st;
    size_t part = clx_scr_part_index(lc->R);
    st = split_scratch_and_check(ctx, lc, &g, part);
    if (st != CLXENT_STATUS_OK) return st;
    if (!g.split) {
        clx_args a = clx_args_begin(ctx, krow);
        clx_loss_xent_args(lc, &a);
        clx_loss_out_args(lc, &a);
        if (grad) clx_loss_grad_args(lc, &a, 1);
        if (gcached || cached) {
            clx_arg_uint(&a, clx_ops_cached_block(lc->s, lc->C));
            if (cached) {
                clx_arg_local(&a, g.L * cstride * sizeof(cl_float));
                clx_arg_uint(&a, cstride);
            }
        } else {
            clx_arg_uint(&a, g.T);
            clx_arg_local(&a, g.L * ST_BYTES);
        }
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = clx_loss_launch(lc, krow, g.groups * g.L, g.L, !reduce);
    } else {
        st = launch_part(lc, kpart, &g, part, 0);
        if (st != CLXENT_STATUS_OK) return st;
        clx_args a = clx_args_begin(ctx, kout);
        clx_loss_xent_args(lc, &a);
        clx_loss_out_args(lc, &a);
        clx_loss_grad_args(lc, &a, grad);
        clx_arg_uint(&a, g.P);
        clx_arg_uint(&a, g.CH);
        clx_arg_mem(&a, lc->scr);
        clx_arg_ulong(&a, part);
        clx_arg_int(&a, grad);
        clx_arg_local(&a, g.L * ST_BYTES);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = clx_loss_launch(lc, kout, (grad ? lc->R * g.P : lc->R) * g.L,
                             g.L, !reduce);
    }
    if (st != CLXENT_STATUS_OK) return st;
    return reduce ? clx_loss_reduce(lc) : CLXENT_STATUS_OK;
}

/* Backward from the saved lse, small C on a CPU, class indices: the
 * lanes kernel (VEC rows per item; no reduction). */
static clxent_status run_lanes_backward(loss_ctx *lc) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st =
        clx_ops_kernel(ctx, "xent_cpu.cl", lc->opts, "xent_lanes_bwd", &k,
                       &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_args a = clx_args_begin(ctx, k);
    clx_loss_xent_args(lc, &a);
    clx_arg_mem(&a, op->vec_in.buffer->mem);
    clx_arg_ulong(&a, op->vec_in.offset);
    clx_loss_grad_args(lc, &a, 1);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return launch_lanes(lc, k, kmax, 1);
}

/* Backward from the saved lse (vec_in). */
static clxent_status run_backward(loss_ctx *lc) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    /* lanes where rows would end in partial vectors (C a multiple of
     * VEC: the element-wise path's full-vector loads are as fast, or
     * faster: 65536x32 0.79 ms against 1.2 ms for lanes on PoCL) */
    if (clx_ops_use_lanes(lc->s, lc->C, lc->tgt) &&
        lc->C <= CLX_LANES_BWD_CMAX &&
        lc->C % clx_ops_tuning_for(lc->s).vec != 0)
        return run_lanes_backward(lc);
    cl_kernel kb, kpart = NULL;
    size_t mb, mp = 0;
    clxent_status st =
        clx_ops_kernel(ctx, "xent.cl", lc->opts, "xent_bwd", &kb, &mb);
    if (st == CLXENT_STATUS_OK && lc->tgt == 2)
        st = clx_ops_kernel(ctx, "xent.cl", lc->opts, "xent_part", &kpart,
                            &mp);
    if (st != CLXENT_STATUS_OK) return st;
    /* Probabilities reduce A over each row (rows or split geometry);
     * index targets are element-wise. */
    clx_geom g = lc->tgt == 2
                     ? clx_geom_rows(lc->s, lc->R, lc->C, 1, min_size(mb, mp))
                     : clx_geom_elems(lc->s, lc->R, lc->C, mb);
    if (lc->tgt == 2 && !g.split && g.T == 1) /* no barrier */
        st = clx_ops_kernel(ctx, "xent.cl", lc->opts, "xent_bwd1", &kb, &mb);
    if (st != CLXENT_STATUS_OK) return st;
    size_t part = clx_scr_part_index(lc->R);
    st = split_scratch_and_check(ctx, lc, &g, part);
    if (st != CLXENT_STATUS_OK) return st;
    if (g.split) {
        st = launch_part(lc, kpart, &g, part, 1);
        if (st != CLXENT_STATUS_OK) return st;
    }
    clx_args a = clx_args_begin(ctx, kb);
    clx_loss_xent_args(lc, &a);
    clx_arg_mem(&a, op->vec_in.buffer->mem);
    clx_arg_ulong(&a, op->vec_in.offset);
    clx_loss_grad_args(lc, &a, 1);
    clx_arg_uint(&a, g.T);
    clx_arg_uint(&a, g.P);
    clx_arg_uint(&a, g.CH);
    clx_arg_mem(&a, lc->scr);
    clx_arg_ulong(&a, part);
    clx_arg_int(&a, g.split);
    clx_arg_local(&a, g.L * ST_BYTES);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    size_t units = lc->R * g.P;
    size_t per = g.L / g.T;
    return clx_loss_launch(lc, kb, (units + per - 1) / per * g.L, g.L, 1);
}

clxent_status clx_opencl_cross_entropy(clxent_context *ctx, const clx_op *op) {
    loss_ctx lc;
    clxent_status st;
    if (clx_loss_open(&lc, ctx, op, &st)) return st;
    if (op->kind == CLX_OP_CE_BACKWARD)
        return clx_loss_finish_check(&lc, run_backward(&lc));
    return clx_loss_finish_check(
        &lc, run_forward(&lc, op->kind == CLX_OP_CE_FUSED &&
                                  op->mat_out.buffer != NULL));
}
