/* The plumbing every OpenCL loss operation shares (loss.h). Order of an
 * operation:
 *   1. xent_check (class indices): range check, W and the sum of weights
 *      into the scratch header. SYNC: a non-blocking read of its verdict
 *      goes right behind it, the kernels that follow are guarded by it
 *      (they write nothing when it found a bad target; kernels/common.h,
 *      sync_bad), and the call waits for the read after enqueueing them
 *      (clx_loss_finish_check): the device never idles on the host.
 *      DEFERRED leaves the verdict in the status buffer for clxent_finish.
 *   2. the row kernels of the strategy the table chose (xent.c, nll.c).
 *   3. loss_reduce for reduction sum/mean (fixed order, one or two
 *      levels). */
#include "opencl/ops/loss.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

clxent_status clx_loss_launch(loss_ctx *lc, cl_kernel k, size_t global,
                              size_t local, int last) {
    clxent_status st =
        clx_cl_launch(lc->ctx, lc->op, k, global, local, lc->launched == 0,
                      last);
    ++lc->launched;
    return st;
}

static size_t check_n(const loss_ctx *lc) {
    size_t n = lc->w.R;
    if (lc->op->weights.buffer && lc->w.C > n) n = lc->w.C;
    return n;
}

clxent_status clx_loss_check_targets(loss_ctx *lc) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    clx_opencl_state *s = lc->s;
    if (!op->indices.buffer) return CLXENT_STATUS_OK;
    cl_kernel k, kfin = NULL;
    size_t kmax, kmax2 = 0;
    clxent_status st =
        clx_cl_kernel(ctx, "nll.cl", lc->opts, "xent_check", &k, &kmax);
    size_t L = clx_reduce_group(s, kmax);
    size_t G = clx_reduce_groups(s, check_n(lc), L);
    if (st == CLXENT_STATUS_OK && G > 1) {
        st = clx_cl_kernel(ctx, "nll.cl", lc->opts, "xent_check_fin", &kfin,
                           &kmax2);
        if (st == CLXENT_STATUS_OK && clx_reduce_group(s, kmax2) < L)
            L = clx_reduce_group(s, kmax2);
    }
    if (st != CLXENT_STATUS_OK) return st;
    int deferred = op->opt.loss.target_check == CLXENT_CHECK_DEFERRED;
    clx_a_xent_check a = {0};
    a.y = op->indices.buffer->mem;
    a.y_off = op->indices.offset;
    a.R = lc->w.R;
    a.C = lc->w.C;
    a.ii = op->opt.loss.ignore_index;
    a.w = op->weights.buffer ? op->weights.buffer->mem : lc->scr;
    a.w_off = op->weights.buffer ? op->weights.offset : 0;
    a.has_w = op->weights.buffer != NULL;
    const clxent_tensor *rec = lc->own_records;
    a.own = rec ? rec->buffer->mem : lc->scr;
    a.own_off = rec ? rec->offset + CLX_REC_OWN * rec->class_stride : 0;
    a.own_so = rec ? rec->outer_stride : 0;
    a.own_si = rec ? rec->inner_stride : 0;
    a.I = rec ? (cl_uint)rec->inner : 1;
    a.has_own = rec != NULL;
    a.scr = lc->scr;
    a.res = deferred ? s->status : lc->scr;
    a.res_off = deferred ? 0 : CLX_SCR_SYNC_LONG;
    a.mode = !deferred                   ? CLX_CHECK_SYNC
             : s->deferred_check_pending ? CLX_CHECK_DEFERRED_KEEP
                                         : CLX_CHECK_DEFERRED_FIRST;
    a.part = lc->scr;
    a.part_off = clx_scr_part_index(lc->w.R);
    a.red = L;
    clx_args args = clx_args_begin(ctx, k);
    clx_set_a_xent_check(&args, &a);
    if (args.st != CLXENT_STATUS_OK) return args.st;
    st = clx_loss_launch(lc, k, G * L, L, 0);
    if (st != CLXENT_STATUS_OK) return st;
    if (G > 1) {
        clx_a_xent_check_fin f = {0};
        f.C = a.C;
        f.ii = a.ii;
        f.has_w = a.has_w;
        f.scr = a.scr;
        f.res = a.res;
        f.res_off = a.res_off;
        f.mode = a.mode;
        f.part = a.part;
        f.part_off = a.part_off;
        f.np = G;
        f.red = L;
        args = clx_args_begin(ctx, kfin);
        clx_set_a_xent_check_fin(&args, &f);
        if (args.st != CLXENT_STATUS_OK) return args.st;
        st = clx_loss_launch(lc, kfin, L, L, 0);
        if (st != CLXENT_STATUS_OK) return st;
    }
    if (deferred) {
        const clxent_tensor *where = clx_position_tensor(op);
        if (!s->deferred_check_pending) {
            s->deferred_where = *where;
            s->deferred_where_ok = 1;
        } else if (!clx_same_position_shape(&s->deferred_where, where)) {
            s->deferred_where_ok = 0;
        }
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

/* CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST when an event of the
 * call's wait list ended with an error, else CL_SUCCESS. */
static cl_int failed_wait_event(const clxent_events *events) {
    if (!events) return CL_SUCCESS;
    for (cl_uint i = 0; i < events->num_wait; ++i) {
        cl_int status = CL_COMPLETE;
        cl_int err = CLX_CL(clGetEventInfo(
            events->wait_list[i], CL_EVENT_COMMAND_EXECUTION_STATUS,
            sizeof status, &status, NULL));
        if (err != CL_SUCCESS) return err;
        if (status < 0) return CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST;
    }
    return CL_SUCCESS;
}

/* The error a verdict reports: a class index out of range, or (its value
 * in [0, C): only the sharded steps' check finds such a row) combined
 * records that do not count the target's class exactly once. */
static clxent_status verdict_fail(clxent_context *ctx, const char *fn,
                                  const clxent_tensor *where, long long row,
                                  long long value, long long C, long long ii,
                                  const char *found) {
    char pos[160] = "";
    if (where) clx_position(where, (size_t)row, pos, sizeof pos);
    if (value >= 0 && value < C)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_ARGUMENT, fn,
                        "records[%lld]%s: the combined records do not count "
                        "the shard holding the target (class %lld) exactly "
                        "once (their OWN field): combine every shard's "
                        "records once, from shards whose classes tile [0, "
                        "classes_total)%s",
                        row, pos, value, found);
    return clx_fail(ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE, fn,
                    "targets[%lld]%s = %lld is outside [0, %lld) and is "
                    "not ignore_index (%lld)%s",
                    row, pos, value, C, ii, found);
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
    /* A failed event of the wait list: some drivers (Intel's CPU runtime)
     * still complete the read, of a verdict the check never wrote. */
    if (err == CL_SUCCESS) {
        what = "an event of the wait list";
        err = failed_wait_event(op->events);
    }
    if (err == CL_SUCCESS &&
        (s->sync_verdict[0] < -1 || s->sync_verdict[0] >= (cl_long)lc->w.R)) {
        what = "the verdict's row";
        err = CL_INVALID_VALUE; /* not what the check writes: not ours */
    }
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
        st = verdict_fail(lc->ctx, op->function, clx_position_tensor(op),
                          s->sync_verdict[0], s->sync_verdict[1],
                          (long long)lc->w.C, op->opt.loss.ignore_index, "");
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
static clxent_status reduce_loss_n(loss_ctx *lc, size_t v_off, size_t n,
                                   const clxent_tensor *out) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    cl_kernel k;
    size_t kmax;
    clxent_status st =
        clx_cl_kernel(ctx, "nll.cl", lc->opts, "loss_reduce", &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    size_t L = clx_reduce_group(lc->s, kmax);
    size_t G = clx_reduce_groups(lc->s, n, L);
    size_t part = clx_scr_part_index(lc->w.R);
    clx_a_loss_reduce a = {0};
    a.v = lc->scr;
    a.out = out->buffer->mem;
    a.out_off = out->offset;
    a.mean = op->opt.loss.reduction == CLXENT_REDUCTION_MEAN;
    a.den = lc->den;
    a.den_scr = lc->den_scr;
    /* any valid row: probabilities have R; indices: the check's count */
    a.any_valid = lc->w.tgt == CLX_TGT_PROBS || lc->w.R == 0 ? (lc->w.R > 0) : -1;
    a.normalizer = op->opt.loss.normalizer > 0.0f;
    a.zero_policy = op->opt.loss.all_ignored_zero != 0;
    a.scr = lc->scr;
    a.part = lc->scr;
    a.part_off = part;
    a.guard = lc->guard;
    a.red = 2 * L;
    for (int level = G > 1 ? 0 : 1; level < 2; ++level) {
        a.v_off = level == 0 ? v_off : G > 1 ? part : v_off;
        a.n = level == 0 || G == 1 ? n : 2 * G;
        clx_args args = clx_args_begin(ctx, k);
        clx_set_a_loss_reduce(&args, &a);
        if (args.st != CLXENT_STATUS_OK) return args.st;
        st = clx_loss_launch(lc, k, (level == 0 ? G : 1) * L, L, level == 1);
        if (st != CLXENT_STATUS_OK) return st;
    }
    return CLXENT_STATUS_OK;
}

clxent_status clx_loss_reduce(loss_ctx *lc) {
    return reduce_loss_n(lc, CLX_SCR_LOSS, lc->w.R, &lc->op->vec_out);
}

clxent_status clx_loss_reduce_to(loss_ctx *lc, const clxent_tensor *out) {
    return reduce_loss_n(lc, CLX_SCR_LOSS, lc->w.R, out);
}

clxent_status clx_loss_launch_reduce(loss_ctx *lc, cl_kernel k,
                                     size_t global, size_t local) {
    int reduce = clx_loss_wants_reduce(lc->op);
    clxent_status st = clx_loss_launch(lc, k, global, local, !reduce);
    if (st != CLXENT_STATUS_OK) return st;
    return reduce ? clx_loss_reduce(lc) : CLXENT_STATUS_OK;
}

/* Floats the check and the loss reduction need after the per-row losses
 * (they share the split path's partial area: in-order queue, never live
 * at the same time). */
size_t clx_loss_aux_floats(const loss_ctx *lc) {
    /* L = 1: an upper bound of the group counts */
    size_t gc = clx_reduce_groups(lc->s, check_n(lc), 1);
    size_t gl = clx_reduce_groups(lc->s, lc->w.R, 1);
    size_t a = gc > 1 ? CLX_CHECK_PART_FLOATS * gc : 0;
    return 2 * gl > a ? 2 * gl : a;
}

clxent_status clx_loss_split_scratch(loss_ctx *lc, const clx_geom *g) {
    size_t part = clx_scr_part_index(lc->w.R);
    size_t need = lc->w.R * g->P * CLX_PART_FLOATS,
           aux = clx_loss_aux_floats(lc);
    return clx_cl_scratch(lc->ctx,
                          (part + (need > aux ? need : aux)) * sizeof(cl_float),
                          &lc->scr);
}

/* Common set-up: the work, options, the mean's denominator, scratch. */
static clxent_status loss_begin(loss_ctx *lc, clxent_context *ctx,
                                const clx_op *op, clx_family family) {
    memset(lc, 0, sizeof *lc);
    lc->ctx = ctx;
    lc->op = op;
    if (op->events && op->events->out_event)
        lc->out_before = *op->events->out_event;
    lc->s = ctx->cl;
    int probs = op->probs.buffer != NULL;
    lc->w.family = family;
    lc->w.R = clx_rows(op);
    lc->w.C = op->x.classes;
    lc->w.x = lc->w.y = op->x.dtype;
    lc->w.O = op->x.outer;
    lc->w.I = op->x.inner;
    lc->w.nd = !clx_op_is_2d(op);
    lc->w.xf = clx_op_transforms(op);
    lc->w.tgt = probs                              ? CLX_TGT_PROBS
                : op->indices.dtype == CLXENT_I64 ? CLX_TGT_I64
                                                  : CLX_TGT_I32;
    lc->w.smooth = op->opt.loss.label_smoothing > 0.0f;
    clx_build_options(lc->s, lc->s->d.vec, lc->opts, sizeof lc->opts,
                      op->x.dtype, op->x.dtype, lc->w.tgt);
    lc->den = 1.0f;
    lc->den_scr = 0;
    if (op->opt.loss.reduction == CLXENT_REDUCTION_MEAN) {
        if (op->opt.loss.normalizer > 0.0f)
            lc->den = op->opt.loss.normalizer;
        else if (probs)
            lc->den = (float)lc->w.R;
        else
            lc->den_scr = 1;
    }
    size_t floats = clx_scr_part_index(lc->w.R) + clx_loss_aux_floats(lc);
    return clx_cl_scratch(ctx, floats * sizeof(cl_float), &lc->scr);
}

int clx_loss_open(loss_ctx *lc, clxent_context *ctx, const clx_op *op,
                  clx_family family, clxent_status *st) {
    *st = loss_begin(lc, ctx, op, family);
    if (*st != CLXENT_STATUS_OK) return 1;
    if (lc->w.R > 0) return 0;
    /* Nothing to read; sum/mean still produce their scalar (and the
     * z-loss part's). */
    if (!clx_loss_wants_reduce(op)) {
        *st = clx_cl_empty_op(ctx, op);
        return 1;
    }
    int z = op->z_out.buffer != NULL, hold = lc->s->seq_hold;
    lc->s->seq_hold = hold || z;
    *st = clx_loss_reduce(lc);
    lc->s->seq_hold = hold;
    if (*st == CLXENT_STATUS_OK && z) *st = clx_loss_reduce_to(lc, &op->z_out);
    return 1;
}

clx_g_xent clx_loss_xent(const loss_ctx *lc) {
    const clx_op *op = lc->op;
    cl_mem scr = lc->scr;
    clx_g_xent g;
    g.x = op->x.buffer->mem;
    g.x_off = op->x.offset;
    g.x_ld = clx_ld(&op->x);
    g.R = lc->w.R;
    g.C = lc->w.C;
    g.y = op->indices.buffer ? op->indices.buffer->mem : scr;
    g.y_off = op->indices.buffer ? op->indices.offset : 0;
    g.ii = op->opt.loss.ignore_index;
    g.t = op->probs.buffer ? op->probs.buffer->mem : scr;
    g.t_off = op->probs.buffer ? op->probs.offset : 0;
    g.t_ld = op->probs.buffer ? clx_ld(&op->probs) : 0;
    g.w = op->weights.buffer ? op->weights.buffer->mem : scr;
    g.w_off = op->weights.buffer ? op->weights.offset : 0;
    g.has_w = op->weights.buffer != NULL;
    g.eps = op->opt.loss.label_smoothing;
    g.zeta = op->opt.loss.z_loss;
    g.G = op->opt.loss.grad_scale;
    g.den = lc->den;
    g.den_scr = lc->den_scr;
    g.scr = scr;
    g.gr = op->grad_rows.buffer ? op->grad_rows.buffer->mem : scr;
    g.gr_off = op->grad_rows.buffer ? op->grad_rows.offset : 0;
    g.has_gr = op->grad_rows.buffer != NULL;
    g.guard = lc->guard;
    g.xa = op->opt.logit_scale;
    g.xcap = op->opt.softcap;
    return g;
}

clx_g_nd clx_loss_nd(const loss_ctx *lc) {
    clx_g_xent x = clx_loss_xent(lc);
    const clx_op *op = lc->op;
    clx_g_nd g;
    g.x = x.x;
    g.x_off = x.x_off;
    g.x_so = op->x.outer_stride;
    g.x_sc = op->x.class_stride;
    g.x_si = op->x.inner_stride;
    g.O = op->x.outer;
    g.C = x.C;
    g.I = op->x.inner;
    g.y = x.y;
    g.y_off = x.y_off;
    g.ii = x.ii;
    g.t = x.t;
    g.t_off = x.t_off;
    g.t_so = op->probs.buffer ? op->probs.outer_stride : 0;
    g.t_sc = op->probs.buffer ? op->probs.class_stride : 0;
    g.t_si = op->probs.buffer ? op->probs.inner_stride : 0;
    g.w = x.w;
    g.w_off = x.w_off;
    g.has_w = x.has_w;
    g.eps = x.eps;
    g.zeta = x.zeta;
    g.G = x.G;
    g.den = x.den;
    g.den_scr = x.den_scr;
    g.scr = x.scr;
    g.gr = x.gr;
    g.gr_off = x.gr_off;
    g.has_gr = x.has_gr;
    g.guard = x.guard;
    g.xa = x.xa;
    g.xcap = x.xcap;
    return g;
}

clx_g_ndgrad clx_loss_ndgrad(const loss_ctx *lc, int present) {
    const clxent_tensor *t = &lc->op->mat_out;
    clx_g_ndgrad g;
    g.gm = present ? t->buffer->mem : lc->scr;
    g.g_off = present ? t->offset : 0;
    g.g_so = present ? t->outer_stride : 0;
    g.g_sc = present ? t->class_stride : 0;
    g.g_si = present ? t->inner_stride : 0;
    return g;
}

clx_g_grad clx_loss_grad(const loss_ctx *lc, int present) {
    const clx_op *op = lc->op;
    clx_g_grad g;
    g.gm = present ? op->mat_out.buffer->mem : lc->scr;
    g.g_off = present ? op->mat_out.offset : 0;
    g.g_ld = present ? clx_ld(&op->mat_out) : 0;
    return g;
}

/* Where per-row losses go: the output for reduction none, else scratch. */
clx_g_out clx_loss_out(const loss_ctx *lc) {
    const clx_op *op = lc->op;
    int direct =
        op->opt.loss.reduction == CLXENT_REDUCTION_NONE && op->vec_out.buffer;
    clx_g_out g;
    g.loss = direct ? op->vec_out.buffer->mem : lc->scr;
    g.loss_off = direct ? op->vec_out.offset : CLX_SCR_LOSS;
    g.lse = op->lse_out.buffer ? op->lse_out.buffer->mem : lc->scr;
    g.lse_off = op->lse_out.buffer ? op->lse_out.offset : 0;
    g.has_lse = op->lse_out.buffer != NULL;
    return g;
}

int clx_loss_wants_reduce(const clx_op *op) {
    return op->kind != CLX_OP_CE_BACKWARD && op->kind != CLX_OP_NLL_BACKWARD &&
           op->opt.loss.reduction != CLXENT_REDUCTION_NONE && op->vec_out.buffer;
}

clxent_status clx_op_finish_checks(clxent_context *ctx) {
    clx_opencl_state *s = ctx->cl;
    if (!s || !s->deferred_check_pending) return CLXENT_STATUS_OK;
    s->deferred_check_pending = 0;
    cl_long v[CLX_STATUS_LONGS];
    cl_int err = CLX_CL(clEnqueueReadBuffer(s->queue, s->status, CL_TRUE, 0,
                                            sizeof v, v, 0, NULL, NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_finish",
                        "clEnqueueReadBuffer (target check status): %s (%d)",
                        clx_cl_error_name(err), (int)err);
    if (v[CLX_VERDICT_ROW] >= 0)
        return verdict_fail(ctx, "clxent_finish",
                            s->deferred_where_ok ? &s->deferred_where : NULL,
                            v[CLX_VERDICT_ROW], v[CLX_VERDICT_VALUE],
                            v[CLX_VERDICT_C], v[CLX_VERDICT_II],
                            " (found by a deferred check)");
    return CLXENT_STATUS_OK;
}
