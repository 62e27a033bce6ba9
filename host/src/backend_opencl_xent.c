/* OpenCL cross-entropy and NLL: the target check (synchronous or
 * deferred), the per-row kernels of kernels/xent.cl and kernels/nll.cl, and
 * the scalar loss reduction. Order of an operation:
 *   1. xent_check (class indices): range check, W and sum of weights into
 *      the scratch header. SYNC: a non-blocking read of its verdict goes
 *      right behind it, the kernels that follow are guarded by it (they
 *      write nothing when it found a bad target; kernels/common.h,
 *      sync_bad), and the call waits for the read after enqueueing them
 *      (finish_sync_check): the device never idles on the host.
 *      DEFERRED leaves the verdict in the status buffer for clxent_finish.
 *   2. the row kernels (rows, or split: partial states + combine).
 *   3. loss_reduce for reduction sum/mean (one group, fixed order). */
#include "opencl_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_BYTES 28 /* device st_t */
#define CHK_BYTES 48 /* device chk_t */

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* What every loss operation needs to know before launching. */
typedef struct loss_ctx {
    clxent_context *ctx;
    const clx_op *op;
    clx_opencl_state *s;
    size_t R, C;
    int tgt;     /* 0 int32, 1 int64, 2 probabilities */
    char opts[128];
    cl_mem scr;
    int launched; /* kernels enqueued so far */
    int guard;        /* a synchronous check precedes: kernels take guard */
    cl_event verdict; /* the read of its verdict, until waited for */
    cl_event out_before; /* the caller's *out_event, restored on failure */
    /* mean denominator: den, or W from the scratch header */
    float den;
    int den_scr;
} loss_ctx;

static clxent_status launch(loss_ctx *lc, cl_kernel k, size_t global,
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
static size_t two_level_groups(const clx_opencl_state *s, size_t n,
                               size_t L) {
    clx_tuning t = clx_ops_tuning_for(s);
    size_t slots = (n + t.vec - 1) / t.vec;
    /* CPUs: a second launch costs about as much as a few thousand slots */
    size_t per = s->is_gpu ? 32 : 256;
    size_t G = (slots + L * per - 1) / (L * per);
    G = min_size(G, t.target_groups);
    if (clx_ops_tune.reduce_groups) {
        G = clx_ops_tune.reduce_groups;
    } else {
        /* CLXENT_REDUCE_GROUPS=n forces n groups (experiments, Oclgrind) */
        const char *env = getenv("CLXENT_REDUCE_GROUPS");
        if (env && *env) {
            char *end = NULL;
            unsigned long v = strtoul(env, &end, 10);
            if (end && *end == '\0' && v > 0 && v <= 4096) G = v;
        }
    }
    return G ? G : 1;
}

static size_t check_n(const loss_ctx *lc) {
    size_t n = lc->R;
    if (lc->op->weights.buffer && lc->C > n) n = lc->C;
    return n;
}

/* Step 1 for class indices: enqueue the check; SYNC: wait and report. */
static clxent_status check_targets(loss_ctx *lc) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    clx_opencl_state *s = lc->s;
    cl_kernel k, kfin = NULL;
    size_t kmax, kmax2 = 0;
    clxent_status st =
        clx_ops_kernel(ctx, "nll.cl", lc->opts, "xent_check", &k, &kmax);
    size_t L = check_group(s, kmax);
    size_t G = two_level_groups(s, check_n(lc), L);
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
    clx_arg_mem(&a, lc->scr);
    clx_arg_mem(&a, res);
    clx_arg_ulong(&a, res_off);
    clx_arg_int(&a, mode);
    clx_arg_mem(&a, lc->scr);
    clx_arg_ulong(&a, part);
    clx_arg_local(&a, L * CHK_BYTES);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    st = launch(lc, k, G * L, L, 0);
    if (st != CLXENT_STATUS_OK) return st;
    if (G > 1) {
        a = clx_args_begin(ctx, kfin);
        clx_arg_uint(&a, lc->C);
        clx_arg_long(&a, op->opt.ignore_index);
        clx_arg_int(&a, op->weights.buffer != NULL);
        clx_arg_mem(&a, lc->scr);
        clx_arg_mem(&a, res);
        clx_arg_ulong(&a, res_off);
        clx_arg_int(&a, mode);
        clx_arg_mem(&a, lc->scr);
        clx_arg_ulong(&a, part);
        clx_arg_uint(&a, G);
        clx_arg_local(&a, L * CHK_BYTES);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = launch(lc, kfin, L, L, 0);
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
 * TARGET_OUT_OF_RANGE (the guarded kernels wrote nothing), with the
 * caller's out-event as it was. st: the status so far. */
static clxent_status finish_sync_check(loss_ctx *lc, clxent_status st) {
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
    if (st != CLXENT_STATUS_OK) return st;
    if (err != CL_SUCCESS)
        return clx_fail(lc->ctx, clx_status_from_cl(err), op->function,
                        "%s (target check verdict): %s (%d)", what,
                        clx_cl_error_name(err), (int)err);
    if (s->sync_verdict[0] < 0) return CLXENT_STATUS_OK;
    cl_event *out = op->events ? op->events->out_event : NULL;
    if (out && *out != lc->out_before) {
        CLX_RELEASE(clReleaseEvent, *out);
        *out = lc->out_before;
    }
    return clx_fail(lc->ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE, op->function,
                    "targets[%lld] = %lld is outside [0, %zu) and is not "
                    "ignore_index (%lld)",
                    (long long)s->sync_verdict[0],
                    (long long)s->sync_verdict[1], lc->C,
                    (long long)op->opt.ignore_index);
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
    size_t G = two_level_groups(lc->s, n, L);
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
        st = launch(lc, k, (level == 0 ? G : 1) * L, L, level == 1);
        if (st != CLXENT_STATUS_OK) return st;
    }
    return CLXENT_STATUS_OK;
}

static clxent_status reduce_loss(loss_ctx *lc) {
    return reduce_loss_n(lc, CLX_SCR_LOSS, lc->R);
}

/* Floats the check and the loss reduction need after the per-row losses
 * (they share the split path's partial area: in-order queue, never live
 * at the same time). */
static size_t aux_floats(const loss_ctx *lc) {
    /* L = 1: an upper bound of the group counts */
    size_t gc = two_level_groups(lc->s, check_n(lc), 1);
    size_t gl = two_level_groups(lc->s, lc->R, 1);
    size_t a = gc > 1 ? 12 * gc : 0;
    return 2 * gl > a ? 2 * gl : a;
}

/* Common set-up: options, the mean's denominator, scratch. */
static clxent_status loss_begin(loss_ctx *lc, clxent_context *ctx,
                                const clx_op *op, size_t extra_floats) {
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
    size_t aux = aux_floats(lc);
    size_t floats = clx_scr_part_index(lc->R) +
                    (extra_floats > aux ? extra_floats : aux);
    return clx_cl_scratch(ctx, floats * sizeof(cl_float), &lc->scr);
}

/* The 24 arguments of XENT_PARAMS (kernels/xent.cl). */
static void xent_common_args(loss_ctx *lc, clx_args *a) {
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

/* Where per-row losses go: the output for reduction none, else scratch. */
static void loss_out_args(loss_ctx *lc, clx_args *a) {
    const clx_op *op = lc->op;
    int direct = op->opt.reduction == CLXENT_REDUCTION_NONE &&
                 op->vec_out.buffer;
    clx_arg_mem(a, direct ? op->vec_out.buffer->mem : lc->scr);
    clx_arg_ulong(a, direct ? op->vec_out.offset : CLX_SCR_LOSS);
    clx_arg_mem(a, op->lse_out.buffer ? op->lse_out.buffer->mem : lc->scr);
    clx_arg_ulong(a, op->lse_out.buffer ? op->lse_out.offset : 0);
    clx_arg_int(a, op->lse_out.buffer != NULL);
}

static int wants_reduce(const clx_op *op) {
    return op->kind != CLX_OP_CE_BACKWARD && op->kind != CLX_OP_NLL_BACKWARD &&
           op->opt.reduction != CLXENT_REDUCTION_NONE && op->vec_out.buffer;
}

/* Small C on a CPU: the lanes kernel (a row per SIMD lane). */
static clxent_status run_lanes(loss_ctx *lc, int grad) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    int reduce = wants_reduce(op);
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_ops_kernel(ctx, "xent_cpu.cl", lc->opts,
                                      grad ? "xent_lanes_fused"
                                           : "xent_lanes_fwd",
                                      &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    if (op->indices.buffer) {
        st = check_targets(lc);
        if (st != CLXENT_STATUS_OK) return st;
    }
    clx_tuning t = clx_ops_tuning_for(lc->s);
    size_t items = (lc->R + t.vec - 1) / t.vec;
    size_t L = clx_ops_lanes_group(lc->s, items, kmax);
    clx_args a = clx_args_begin(ctx, k);
    xent_common_args(lc, &a);
    loss_out_args(lc, &a);
    if (grad) {
        clx_arg_mem(&a, op->mat_out.buffer->mem);
        clx_arg_ulong(&a, op->mat_out.offset);
        clx_arg_ulong(&a, op->mat_out.stride);
    }
    if (a.st != CLXENT_STATUS_OK) return a.st;
    st = launch(lc, k, (items + L - 1) / L * L, L, !reduce);
    if (st != CLXENT_STATUS_OK) return st;
    return reduce ? reduce_loss(lc) : CLXENT_STATUS_OK;
}

/* The register-cached fused kernel: 1 forced on, 0 forced off, -1 auto. */
static int gpu_cache_mode(void) {
    if (clx_ops_tune.gpu_cache == 1) return 1;
    if (clx_ops_tune.gpu_cache == 2) return 0;
    const char *env = getenv("CLXENT_GPU_CACHE");
    if (env && *env) return env[0] != '0';
    return -1;
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
        *st = check_targets(lc);
        if (*st != CLXENT_STATUS_OK) return 1;
    }
    int reduce = wants_reduce(op);
    clx_args a = clx_args_begin(ctx, k);
    xent_common_args(lc, &a);
    loss_out_args(lc, &a);
    clx_arg_mem(&a, op->mat_out.buffer->mem);
    clx_arg_ulong(&a, op->mat_out.offset);
    clx_arg_ulong(&a, op->mat_out.stride);
    clx_arg_local(&a, L * ST_BYTES);
    if (a.st != CLXENT_STATUS_OK) {
        *st = a.st;
        return 1;
    }
    *st = launch(lc, k, lc->R * L, L, !reduce);
    if (*st == CLXENT_STATUS_OK && reduce) *st = reduce_loss(lc);
    return 1;
}

/* The CPU fused kernels that cache the exps (xent_cpu.cl: in the gradient,
 * f32, or in local memory): 1 forced on (any device, VEC > 1: Oclgrind
 * runs them so), 0 off, -1 automatic (CPUs). */
static int gcache_mode(void) {
    if (clx_ops_tune.gcache == 1) return 1;
    if (clx_ops_tune.gcache == 2) return 0;
    const char *env = getenv("CLXENT_GCACHE");
    if (env && *env) return env[0] != '0';
    return -1;
}

/* Its block length: 1024 columns (or the knob's), a multiple of the tile,
 * longer where a row would need more than GC_BLOCKS (1024) blocks. */
static size_t gcache_block(const loss_ctx *lc, const clx_tuning *t) {
    size_t tile = (size_t)t->vec * t->kt;
    size_t bl = clx_ops_tune.gcache_block ? clx_ops_tune.gcache_block : 1024;
    bl = bl > tile ? bl / tile * tile : tile;
    if ((lc->C + bl - 1) / bl > 1024)
        bl = ((lc->C + 1023) / 1024 + tile - 1) / tile * tile;
    return bl;
}

/* Forward or fused: rows path or split path, then the reduction. */

/* Pass 1 of the split path: each of the P groups of a row writes its
 * chunk's partial state to scratch at `part`. a_only: only A (backward
 * with probabilities; x is not read). */
static clxent_status launch_part(loss_ctx *lc, cl_kernel kpart,
                                 const clx_geom *g, size_t part, int a_only) {
    clx_args a = clx_args_begin(lc->ctx, kpart);
    xent_common_args(lc, &a);
    clx_arg_uint(&a, g->P);
    clx_arg_uint(&a, g->CH);
    clx_arg_mem(&a, lc->scr);
    clx_arg_ulong(&a, part);
    clx_arg_int(&a, a_only);
    clx_arg_local(&a, g->L * ST_BYTES);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return launch(lc, kpart, lc->R * g->P * g->L, g->L, 0);
}

/* The split path's partial states need R x P x 8 floats of scratch past
 * the reduction's partials; then the targets are checked (before any
 * kernel that writes an output). */
static clxent_status split_scratch_and_check(clxent_context *ctx,
                                             loss_ctx *lc,
                                             const clx_geom *g, size_t part) {
    if (g->split) {
        size_t need = lc->R * g->P * 8, aux = aux_floats(lc);
        clxent_status st = clx_cl_scratch(
            ctx, (part + (need > aux ? need : aux)) * sizeof(cl_float),
            &lc->scr);
        if (st != CLXENT_STATUS_OK) return st;
    }
    return lc->op->indices.buffer ? check_targets(lc) : CLXENT_STATUS_OK;
}

static clxent_status run_forward(loss_ctx *lc, int grad) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    int reduce = wants_reduce(op);
    if (clx_ops_use_lanes(lc->s, lc->C, lc->tgt)) return run_lanes(lc, grad);
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
    clx_tuning tun = clx_ops_tuning_for(lc->s);
    int gm = gcache_mode();
    int gcached = grad && !g.split && tun.vec > 1 &&
                  op->x.dtype == CLXENT_F32 && !clx_ops_tune.items_per_row &&
                  (gm == 1 || (gm < 0 && !lc->s->is_gpu && g.T == 1));
    size_t cstride = (lc->C + tun.vec - 1) / tun.vec * tun.vec;
    size_t budget = (size_t)lc->s->local_mem_bytes / 2;
    int cached = grad && !g.split && tun.vec > 1 && !gcached &&
                 !clx_ops_tune.items_per_row && cstride * 4 <= budget &&
                 (gm == 1 || (gm < 0 && !lc->s->is_gpu && g.T == 1));
    if (gcached || cached) {
        st = clx_ops_kernel(ctx, "xent_cpu.cl", lc->opts,
                            gcached ? "xent_rowsg_fused" : "xent_rowsl_fused",
                            &krow, &m1);
        g.T = 1;
        while (g.L > 1 && (g.L > m1 || (cached && g.L * cstride * 4 > budget)))
            g.L /= 2;
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
    cl_mem gmem = grad ? op->mat_out.buffer->mem : lc->scr;
    if (!g.split) {
        clx_args a = clx_args_begin(ctx, krow);
        xent_common_args(lc, &a);
        loss_out_args(lc, &a);
        if (grad) {
            clx_arg_mem(&a, gmem);
            clx_arg_ulong(&a, op->mat_out.offset);
            clx_arg_ulong(&a, op->mat_out.stride);
        }
        if (gcached || cached) {
            clx_arg_uint(&a, gcache_block(lc, &tun));
            if (cached) {
                clx_arg_local(&a, g.L * cstride * sizeof(cl_float));
                clx_arg_uint(&a, cstride);
            }
        } else {
            clx_arg_uint(&a, g.T);
            clx_arg_local(&a, g.L * ST_BYTES);
        }
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = launch(lc, krow, g.groups * g.L, g.L, !reduce);
    } else {
        st = launch_part(lc, kpart, &g, part, 0);
        if (st != CLXENT_STATUS_OK) return st;
        clx_args a = clx_args_begin(ctx, kout);
        xent_common_args(lc, &a);
        loss_out_args(lc, &a);
        clx_arg_mem(&a, gmem);
        clx_arg_ulong(&a, grad ? op->mat_out.offset : 0);
        clx_arg_ulong(&a, grad ? op->mat_out.stride : 0);
        clx_arg_uint(&a, g.P);
        clx_arg_uint(&a, g.CH);
        clx_arg_mem(&a, lc->scr);
        clx_arg_ulong(&a, part);
        clx_arg_int(&a, grad);
        clx_arg_local(&a, g.L * ST_BYTES);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = launch(lc, kout, (grad ? lc->R * g.P : lc->R) * g.L, g.L,
                    !reduce);
    }
    if (st != CLXENT_STATUS_OK) return st;
    return reduce ? reduce_loss(lc) : CLXENT_STATUS_OK;
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
    st = check_targets(lc);
    if (st != CLXENT_STATUS_OK) return st;
    clx_tuning t = clx_ops_tuning_for(lc->s);
    size_t items = (lc->R + t.vec - 1) / t.vec;
    size_t L = clx_ops_lanes_group(lc->s, items, kmax);
    clx_args a = clx_args_begin(ctx, k);
    xent_common_args(lc, &a);
    clx_arg_mem(&a, op->vec_in.buffer->mem);
    clx_arg_ulong(&a, op->vec_in.offset);
    clx_arg_mem(&a, op->mat_out.buffer->mem);
    clx_arg_ulong(&a, op->mat_out.offset);
    clx_arg_ulong(&a, op->mat_out.stride);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    return launch(lc, k, (items + L - 1) / L * L, L, 1);
}

/* Backward from the saved lse (vec_in). */
static clxent_status run_backward(loss_ctx *lc) {
    clxent_context *ctx = lc->ctx;
    const clx_op *op = lc->op;
    /* lanes where rows would end in partial vectors (C a multiple of
     * VEC: the element-wise path's full-vector loads are as fast, or
     * faster: 65536x32 0.79 ms against 1.2 ms for lanes on PoCL) */
    if (clx_ops_use_lanes(lc->s, lc->C, lc->tgt) &&
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
    xent_common_args(lc, &a);
    clx_arg_mem(&a, op->vec_in.buffer->mem);
    clx_arg_ulong(&a, op->vec_in.offset);
    clx_arg_mem(&a, op->mat_out.buffer->mem);
    clx_arg_ulong(&a, op->mat_out.offset);
    clx_arg_ulong(&a, op->mat_out.stride);
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
    return launch(lc, kb, (units + per - 1) / per * g.L, g.L, 1);
}

clxent_status clx_opencl_cross_entropy(clxent_context *ctx, const clx_op *op) {
    loss_ctx lc;
    clxent_status st = loss_begin(&lc, ctx, op, 0);
    if (st != CLXENT_STATUS_OK) return st;
    if (lc.R == 0) {
        /* Nothing to read; sum/mean still produce their scalar. */
        if (wants_reduce(op)) return reduce_loss(&lc);
        return clx_cl_empty_op(ctx, op);
    }
    if (op->kind == CLX_OP_CE_BACKWARD)
        return finish_sync_check(&lc, run_backward(&lc));
    return finish_sync_check(
        &lc, run_forward(&lc, op->kind == CLX_OP_CE_FUSED &&
                                  op->mat_out.buffer != NULL));
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
    st = check_targets(lc);
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
        st = launch(lc, k, global, L, !wants_reduce(op));
        if (st != CLXENT_STATUS_OK) return st;
        return wants_reduce(op) ? reduce_loss(lc) : CLXENT_STATUS_OK;
    }
    clx_geom g = clx_geom_elems(lc->s, lc->R, lc->C, kmax);
    clx_arg_mem(&a, op->mat_out.buffer->mem);
    clx_arg_ulong(&a, op->mat_out.offset);
    clx_arg_ulong(&a, op->mat_out.stride);
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
    return launch(lc, k, g.groups * g.L, g.L, 1);
}

clxent_status clx_opencl_nll(clxent_context *ctx, const clx_op *op) {
    loss_ctx lc;
    clxent_status st = loss_begin(&lc, ctx, op, 0);
    if (st != CLXENT_STATUS_OK) return st;
    if (lc.R == 0) {
        if (wants_reduce(op)) return reduce_loss(&lc);
        return clx_cl_empty_op(ctx, op);
    }
    return finish_sync_check(&lc, run_nll(&lc));
}
