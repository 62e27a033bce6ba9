/* OpenCL losses: the plumbing every cross-entropy and NLL operation shares
 * (opencl_loss.h), and NLL itself. Order of an operation:
 *   1. xent_check (class indices): range check, W and sum of weights into
 *      the scratch header. SYNC: a non-blocking read of its verdict goes
 *      right behind it, the kernels that follow are guarded by it (they
 *      write nothing when it found a bad target; kernels/common.h,
 *      sync_bad), and the call waits for the read after enqueueing them
 *      (finish_sync_check): the device never idles on the host.
 *      DEFERRED leaves the verdict in the status buffer for clxent_finish.
 *   2. the row kernels (backend_opencl_xent.c for cross-entropy: rows, or
 *      split: partial states + combine; kernels/nll.cl for NLL).
 *   3. loss_reduce for reduction sum/mean (one group, fixed order). */
#include "opencl_loss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }



clxent_status clx_loss_launch(loss_ctx *lc, cl_kernel k, size_t global,
                            size_t local, int last) {
    size_t g = global, l = local;
    clxent_status st = clx_cl_launch(lc->ctx, lc->op, k, 1, &g, &l,
                                     lc->launched == 0, last);
    ++lc->launched;
    return st;
}

static size_t check_group(const clx_opencl_state *s, size_t kmax) {
    size_t L = s->is_gpu ? 256 : 64;
    L = min_size(L, kmax);
    size_t p = 1;
    while (p * 2 <= L) p *= 2;
    return p;
}

/* Group counts of the two-level check and loss reduction (1: a single
 * group does it all): enough slots of VEC values per item to amortise
 * the second launch, at most target_groups groups. */
static size_t clx_loss_groups(const clx_opencl_state *s, size_t n,
                               size_t L) {
    clx_tuning t = clx_ops_tuning_for(s);
    size_t slots = (n + t.vec - 1) / t.vec;
    /* CPUs: a second launch costs about as much as a few thousand slots */
    size_t per = s->is_gpu ? 32 : 256;
    size_t G = (slots + L * per - 1) / (L * per);
    G = min_size(G, t.target_groups);
    /* the knob, else CLXENT_REDUCE_GROUPS=n forces n groups (experiments,
     * Oclgrind) */
    size_t forced = clx_ops_tune.reduce_groups
                        ? clx_ops_tune.reduce_groups
                        : clx_ops_env("CLXENT_REDUCE_GROUPS", 1, 4096);
    if (forced) G = forced;
    return G ? G : 1;
}

static size_t check_n(const loss_ctx *lc) {
    size_t n = lc->R;
    if (lc->op->weights.buffer && lc->C > n) n = lc->C;
    return n;
}

/* Where xent_check and xent_check_fin put what they find: the scratch
 * header, the verdict (res at res_off, in longs; mode: see nll.cl), and
 * the groups' partial states (scratch at part). */
static void check_result_args(const loss_ctx *lc, clx_args *a, cl_mem res,
                              size_t res_off, int mode, size_t part) {
    clx_arg_mem(a, lc->scr);
    clx_arg_mem(a, res);
    clx_arg_ulong(a, res_off);
    clx_arg_int(a, mode);
    clx_arg_mem(a, lc->scr);
    clx_arg_ulong(a, part);
}

/* Step 1 for class indices: enqueue the check; SYNC: and the read of its
 * verdict right behind it (clx_loss_finish_check waits for that). */
clxent_status clx_loss_check_targets(loss_ctx *lc) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    clx_opencl_state *s = lc->s;
    cl_kernel k, kfin = NULL;
    size_t kmax, kmax2 = 0;
    clxent_status st =
        clx_ops_kernel(ctx, "nll.cl", lc->opts, "xent_check", &k, &kmax);
    size_t L = check_group(s, kmax);
    size_t G = clx_loss_groups(s, check_n(lc), L);
    if (st == CLXENT_STATUS_OK && G > 1) {
        st = clx_ops_kernel(ctx, "nll.cl", lc->opts, "xent_check_fin", &kfin,
                            &kmax2);
        if (st == CLXENT_STATUS_OK && check_group(s, kmax2) < L)
            L = check_group(s, kmax2);
    }
    if (st != CLXENT_STATUS_OK) return st;
    int deferred = op->opt.target_check == CLXENT_CHECK_DEFERRED;
    int mode = deferred ? (s->deferred_check_pending ? 2 : 1) : 0;
    cl_mem res = deferred ? s->status : lc->scr;
    size_t res_off = deferred ? 0 : CLX_SCR_SYNC_LONG;
    size_t part = clx_scr_part_index(lc->R);
    clx_args a = clx_args_begin(ctx, k);
    clx_arg_mem(&a, op->indices.buffer->mem);
    clx_arg_ulong(&a, op->indices.offset);
    clx_arg_uint(&a, lc->R);
    clx_arg_uint(&a, lc->C);
    clx_arg_long(&a, op->opt.ignore_index);
    clx_arg_mem(&a, op->weights.buffer ? op->weights.buffer->mem : lc->scr);
    clx_arg_ulong(&a, op->weights.buffer ? op->weights.offset : 0);
    clx_arg_int(&a, op->weights.buffer != NULL);
    check_result_args(lc, &a, res, res_off, mode, part);
    clx_arg_local(&a, L * CHK_BYTES);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    st = clx_loss_launch(lc, k, G * L, L, 0);
    if (st != CLXENT_STATUS_OK) return st;
    if (G > 1) {
        a = clx_args_begin(ctx, kfin);
        clx_arg_uint(&a, lc->C);
        clx_arg_long(&a, op->opt.ignore_index);
        clx_arg_int(&a, op->weights.buffer != NULL);
        check_result_args(lc, &a, res, res_off, mode, part);
        clx_arg_uint(&a, G);
        clx_arg_local(&a, L * CHK_BYTES);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = clx_loss_launch(lc, kfin, L, L, 0);
        if (st != CLXENT_STATUS_OK) return st;
    }
    if (deferred) {
        s->deferred_check_pending = 1;
        return CLXENT_STATUS_OK;
    }
    cl_int err = CLX_CL(clEnqueueReadBuffer(
        s->queue, lc->scr, CL_FALSE, CLX_SCR_SYNC_LONG * sizeof(cl_long),
        sizeof s->sync_verdict, s->sync_verdict, 0, NULL, &lc->verdict));
    if (err != CL_SUCCESS) {
        lc->verdict = NULL;
        return clx_fail(ctx, clx_status_from_cl(err), op->function,
                        "clEnqueueReadBuffer (target check verdict): %s (%d)",
                        clx_cl_error_name(err), (int)err);
    }
    lc->guard = 1;
    return CLXENT_STATUS_OK;
}

/* The end of an operation with a synchronous check: waits for the verdict
 * (its kernels are queued behind it by now) and turns a bad target into
 * TARGET_OUT_OF_RANGE (the guarded kernels wrote nothing). On any failure
 * the caller's out-event is as it was (it is written only on success).
 * st: the status so far. */
clxent_status clx_loss_finish_check(loss_ctx *lc, clxent_status st) {
    if (!lc->verdict) return st;
    clx_opencl_state *s = lc->s;
    const clx_op *op = lc->op;
    const char *what = "clFlush";
    cl_int err = CLX_CL(clFlush(s->queue));
    if (err == CL_SUCCESS) {
        what = "clWaitForEvents";
        err = CLX_CL(clWaitForEvents(1, &lc->verdict));
    }
    CLX_RELEASE(clReleaseEvent, lc->verdict);
    if (st == CLXENT_STATUS_OK && err != CL_SUCCESS)
        /* The verdict waits for the wait list too: the caller must learn
         * that, and which mode does not wait. */
        st = clx_fail(lc->ctx, clx_status_from_cl(err), op->function,
                      "%s (target check verdict): %s (%d); the synchronous "
                      "target check (CLXENT_CHECK_SYNC, the default) waits "
                      "for the call's wait list, so an event in it that "
                      "fails fails the call and one completed after the "
                      "call never lets it return; "
                      "options.target_check = CLXENT_CHECK_DEFERRED does "
                      "not wait",
                      what, clx_cl_error_name(err), (int)err);
    else if (st == CLXENT_STATUS_OK && s->sync_verdict[0] >= 0)
        st = clx_fail(lc->ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE,
                      op->function,
                      "targets[%lld] = %lld is outside [0, %zu) and is not "
                      "ignore_index (%lld)",
                      (long long)s->sync_verdict[0],
                      (long long)s->sync_verdict[1], lc->C,
                      (long long)op->opt.ignore_index);
    cl_event *out = op->events ? op->events->out_event : NULL;
    if (st != CLXENT_STATUS_OK && out && *out != lc->out_before) {
        CLX_RELEASE(clReleaseEvent, *out);
        *out = lc->out_before;
    }
    return st;
}

/* Step 3: the scalar loss from the n values at float index v_off of
 * scratch (per-row losses, or pairs of partial sums): one group, or
 * two levels (groups' partial pairs, then one group over them). */
static clxent_status reduce_loss_n(loss_ctx *lc, size_t v_off, size_t n) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st =
        clx_ops_kernel(ctx, "nll.cl", lc->opts, "loss_reduce", &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    size_t L = check_group(lc->s, kmax);
    size_t G = clx_loss_groups(lc->s, n, L);
    size_t part = clx_scr_part_index(lc->R);
    int mean = op->opt.reduction == CLXENT_REDUCTION_MEAN;
    for (int level = G > 1 ? 0 : 1; level < 2; ++level) {
        clx_args a = clx_args_begin(ctx, k);
        clx_arg_mem(&a, lc->scr);
        clx_arg_ulong(&a, level == 0 ? v_off : G > 1 ? part : v_off);
        clx_arg_uint(&a, level == 0 || G == 1 ? n : 2 * G);
        clx_arg_mem(&a, op->vec_out.buffer->mem);
        clx_arg_ulong(&a, op->vec_out.offset);
        clx_arg_int(&a, mean);
        clx_arg_float(&a, lc->den);
        clx_arg_int(&a, lc->den_scr);
        /* any valid row: probabilities have R; indices: the check's count */
        clx_arg_int(&a, lc->tgt == 2 || lc->R == 0 ? (lc->R > 0) : -1);
        clx_arg_int(&a, op->opt.normalizer > 0.0f);
        clx_arg_int(&a, op->opt.all_ignored_zero != 0);
        clx_arg_mem(&a, lc->scr);
        clx_arg_mem(&a, lc->scr);
        clx_arg_ulong(&a, part);
        clx_arg_int(&a, lc->guard);
        clx_arg_local(&a, L * 2 * sizeof(cl_float));
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = clx_loss_launch(lc, k, (level == 0 ? G : 1) * L, L, level == 1);
        if (st != CLXENT_STATUS_OK) return st;
    }
    return CLXENT_STATUS_OK;
}

clxent_status clx_loss_reduce(loss_ctx *lc) {
    return reduce_loss_n(lc, CLX_SCR_LOSS, lc->R);
}

/* Floats the check and the loss reduction need after the per-row losses
 * (they share the split path's partial area: in-order queue, never live
 * at the same time). */
size_t clx_loss_aux_floats(const loss_ctx *lc) {
    /* L = 1: an upper bound of the group counts */
    size_t gc = clx_loss_groups(lc->s, check_n(lc), 1);
    size_t gl = clx_loss_groups(lc->s, lc->R, 1);
    size_t a = gc > 1 ? 12 * gc : 0;
    return 2 * gl > a ? 2 * gl : a;
}

/* Common set-up: options, the mean's denominator, scratch. */
static clxent_status loss_begin(loss_ctx *lc, clxent_context *ctx,
                                const clx_op *op) {
    memset(lc, 0, sizeof *lc);
    lc->ctx = ctx;
    lc->op = op;
    if (op->events && op->events->out_event)
        lc->out_before = *op->events->out_event;
    lc->s = ctx->cl;
    lc->R = op->x.rows;
    lc->C = op->x.cols;
    int probs = op->probs.buffer != NULL;
    lc->tgt = probs ? 2 : op->indices.dtype == CLXENT_I64 ? 1 : 0;
    clx_ops_options(lc->s, lc->opts, sizeof lc->opts, op->x.dtype,
                    op->x.dtype, lc->tgt);
    lc->den = 1.0f;
    lc->den_scr = 0;
    if (op->opt.reduction == CLXENT_REDUCTION_MEAN) {
        if (op->opt.normalizer > 0.0f)
            lc->den = op->opt.normalizer;
        else if (probs)
            lc->den = (float)lc->R;
        else
            lc->den_scr = 1;
    }
    size_t floats = clx_scr_part_index(lc->R) + clx_loss_aux_floats(lc);
    return clx_cl_scratch(ctx, floats * sizeof(cl_float), &lc->scr);
}

int clx_loss_open(loss_ctx *lc, clxent_context *ctx, const clx_op *op,
                  clxent_status *st) {
    *st = loss_begin(lc, ctx, op);
    if (*st != CLXENT_STATUS_OK) return 1;
    if (lc->R > 0) return 0;
    /* Nothing to read; sum/mean still produce their scalar. */
    *st = clx_loss_wants_reduce(op) ? clx_loss_reduce(lc)
                                    : clx_cl_empty_op(ctx, op);
    return 1;
}

/* The 24 arguments of XENT_PARAMS (kernels/xent.h). */
void clx_loss_xent_args(loss_ctx *lc, clx_args *a) {
    const clx_op *op = lc->op;
    cl_mem scr = lc->scr;
    clx_arg_mem(a, op->x.buffer->mem);
    clx_arg_ulong(a, op->x.offset);
    clx_arg_ulong(a, op->x.stride);
    clx_arg_uint(a, lc->R);
    clx_arg_uint(a, lc->C);
    clx_arg_mem(a, op->indices.buffer ? op->indices.buffer->mem : scr);
    clx_arg_ulong(a, op->indices.buffer ? op->indices.offset : 0);
    clx_arg_long(a, op->opt.ignore_index);
    clx_arg_mem(a, op->probs.buffer ? op->probs.buffer->mem : scr);
    clx_arg_ulong(a, op->probs.buffer ? op->probs.offset : 0);
    clx_arg_ulong(a, op->probs.buffer ? op->probs.stride : 0);
    clx_arg_mem(a, op->weights.buffer ? op->weights.buffer->mem : scr);
    clx_arg_ulong(a, op->weights.buffer ? op->weights.offset : 0);
    clx_arg_int(a, op->weights.buffer != NULL);
    clx_arg_float(a, op->opt.label_smoothing);
    clx_arg_float(a, op->opt.z_loss);
    clx_arg_float(a, op->opt.grad_scale);
    clx_arg_float(a, lc->den);
    clx_arg_int(a, lc->den_scr);
    clx_arg_mem(a, scr);
    clx_arg_mem(a, op->grad_rows.buffer ? op->grad_rows.buffer->mem : scr);
    clx_arg_ulong(a, op->grad_rows.buffer ? op->grad_rows.offset : 0);
    clx_arg_int(a, op->grad_rows.buffer != NULL);
    clx_arg_int(a, lc->guard);
}

/* The gradient matrix, or scratch with zero offsets as a placeholder. */
void clx_loss_grad_args(loss_ctx *lc, clx_args *a, int present) {
    const clx_op *op = lc->op;
    clx_arg_mem(a, present ? op->mat_out.buffer->mem : lc->scr);
    clx_arg_ulong(a, present ? op->mat_out.offset : 0);
    clx_arg_ulong(a, present ? op->mat_out.stride : 0);
}

/* Where per-row losses go: the output for reduction none, else scratch. */
void clx_loss_out_args(loss_ctx *lc, clx_args *a) {
    const clx_op *op = lc->op;
    int direct = op->opt.reduction == CLXENT_REDUCTION_NONE &&
                 op->vec_out.buffer;
    clx_arg_mem(a, direct ? op->vec_out.buffer->mem : lc->scr);
    clx_arg_ulong(a, direct ? op->vec_out.offset : CLX_SCR_LOSS);
    clx_arg_mem(a, op->lse_out.buffer ? op->lse_out.buffer->mem : lc->scr);
    clx_arg_ulong(a, op->lse_out.buffer ? op->lse_out.offset : 0);
    clx_arg_int(a, op->lse_out.buffer != NULL);
}

int clx_loss_wants_reduce(const clx_op *op) {
    return op->kind != CLX_OP_CE_BACKWARD && op->kind != CLX_OP_NLL_BACKWARD &&
           op->opt.reduction != CLXENT_REDUCTION_NONE && op->vec_out.buffer;
}

/* NLL over given log-probabilities (x holds logp). */
/* The NLL kernels' targets, ignore_index and optional weights (absent
 * weights point at scratch and are flagged off). */
static void nll_target_args(const loss_ctx *lc, clx_args *a) {
    const clx_op *op = lc->op;
    clx_arg_mem(a, op->indices.buffer->mem);
    clx_arg_ulong(a, op->indices.offset);
    clx_arg_long(a, op->opt.ignore_index);
    clx_arg_mem(a, op->weights.buffer ? op->weights.buffer->mem : lc->scr);
    clx_arg_ulong(a, op->weights.buffer ? op->weights.offset : 0);
    clx_arg_int(a, op->weights.buffer != NULL);
}

/* NLL forward (per-row values) or backward, after the check. */
static clxent_status run_nll(loss_ctx *lc) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    int fwd = op->kind == CLX_OP_NLL_FORWARD;
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_ops_kernel(ctx, "nll.cl", lc->opts,
                                      fwd ? "nll_fwd" : "nll_bwd", &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    st = clx_loss_check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_args a = clx_args_begin(ctx, k);
    if (fwd) {
        int direct = op->opt.reduction == CLXENT_REDUCTION_NONE;
        clx_arg_mem(&a, op->x.buffer->mem);
        clx_arg_ulong(&a, op->x.offset);
        clx_arg_ulong(&a, op->x.stride);
        clx_arg_uint(&a, lc->R);
        clx_arg_uint(&a, lc->C);
        nll_target_args(lc, &a);
        clx_arg_mem(&a, direct ? op->vec_out.buffer->mem : lc->scr);
        clx_arg_ulong(&a, direct ? op->vec_out.offset : CLX_SCR_LOSS);
        clx_arg_mem(&a, lc->scr);
        clx_arg_int(&a, lc->guard);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        size_t L = min_size(64, kmax);
        size_t global = (lc->R + L - 1) / L * L;
        st = clx_loss_launch(lc, k, global, L, !clx_loss_wants_reduce(op));
        if (st != CLXENT_STATUS_OK) return st;
        return clx_loss_wants_reduce(op) ? clx_loss_reduce(lc)
                                         : CLXENT_STATUS_OK;
    }
    clx_geom g = clx_geom_elems(lc->s, lc->R, lc->C, kmax);
    clx_loss_grad_args(lc, &a, 1);
    clx_arg_uint(&a, lc->R);
    clx_arg_uint(&a, lc->C);
    nll_target_args(lc, &a);
    clx_arg_float(&a, op->opt.grad_scale);
    clx_arg_float(&a, lc->den);
    clx_arg_int(&a, lc->den_scr);
    clx_arg_mem(&a, lc->scr);
    clx_arg_mem(&a, op->grad_rows.buffer ? op->grad_rows.buffer->mem : lc->scr);
    clx_arg_ulong(&a, op->grad_rows.buffer ? op->grad_rows.offset : 0);
    clx_arg_int(&a, op->grad_rows.buffer != NULL);
    clx_arg_uint(&a, g.T);
    clx_arg_uint(&a, g.P);
    clx_arg_uint(&a, g.CH);
    clx_arg_int(&a, lc->guard);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return clx_loss_launch(lc, k, g.groups * g.L, g.L, 1);
}

clxent_status clx_opencl_nll(clxent_context *ctx, const clx_op *op) {
    loss_ctx lc;
    clxent_status st;
    if (clx_loss_open(&lc, ctx, op, &st)) return st;
    return clx_loss_finish_check(&lc, run_nll(&lc));
}
