/* The operations layer of the OpenCL backend: one file per family
 * (softmax.c, copy.c, xent.c, nll.c) over the plumbing every loss shares
 * (loss.c): its context, the target check (synchronous or deferred), the
 * scalar loss reduction and the argument groups of kernels/contract.h. */
#ifndef CLXENT_OPENCL_OPS_LOSS_H
#define CLXENT_OPENCL_OPS_LOSS_H

#include "opencl/plan/plan.h"
#include "opencl/runtime/kernel_args.h"

/* What every loss operation needs to know before launching. */
typedef struct loss_ctx {
    clxent_context *ctx;
    const clx_op *op;
    clx_opencl_state *s;
    clx_work w;
    char opts[192]; /* the check's and the reduction's build options */
    cl_mem scr;
    int launched;        /* kernels enqueued so far */
    int guard;           /* a synchronous check precedes: kernels take it */
    cl_event verdict;    /* the read of its verdict, until waited for */
    cl_event out_before; /* the caller's *out_event, restored on failure */
    /* mean denominator: den, or W from the scratch header */
    float den;
    int den_scr;
    /* the sharded steps after the combination: the records whose OWN
     * field the check reads too (a valid row's must be 1) */
    const clxent_tensor *own_records;
} loss_ctx;

/* Sets lc up (the work, options, the mean's denominator, scratch).
 * Returns 1 when the operation is already over, with its status in *st:
 * an error, or no rows (the scalar of sum/mean, or an empty marker). */
int clx_loss_open(loss_ctx *lc, clxent_context *ctx, const clx_op *op,
                  clx_family family, clxent_status *st);
/* Floats the check and the loss reduction need after the per-row losses. */
size_t clx_loss_aux_floats(const loss_ctx *lc);
/* Grows scratch to hold the split path's partial states too. */
clxent_status clx_loss_split_scratch(loss_ctx *lc, const clx_geom *g);
/* Enqueues k (1-D); `last` marks the operation's last kernel. */
clxent_status clx_loss_launch(loss_ctx *lc, cl_kernel k, size_t global,
                              size_t local, int last);
/* Enqueues the check of the class indices, if the operation has them
 * (SYNC: with the read of its verdict behind it, and lc->guard set for
 * the kernels that follow). Call it before any kernel that writes. */
clxent_status clx_loss_check_targets(loss_ctx *lc);
/* The end of every loss operation: waits for a synchronous check's
 * verdict; st is the status so far. */
clxent_status clx_loss_finish_check(loss_ctx *lc, clxent_status st);
/* The scalar loss from the per-row losses (reduction sum or mean), into
 * the op's loss or (_to) another 1 x 1 output. */
clxent_status clx_loss_reduce(loss_ctx *lc);
clxent_status clx_loss_reduce_to(loss_ctx *lc, const clxent_tensor *out);
/* Enqueues the operation's row kernel k, then the reduction if it has
 * one (the row kernel is then not its last). */
clxent_status clx_loss_launch_reduce(loss_ctx *lc, cl_kernel k,
                                     size_t global, size_t local);
/* Whether the operation ends with clx_loss_reduce. */
int clx_loss_wants_reduce(const clx_op *op);

/* The argument groups (kernels/contract.h). */
clx_g_xent clx_loss_xent(const loss_ctx *lc);
clx_g_out clx_loss_out(const loss_ctx *lc);
/* The gradient matrix, or scratch as a placeholder (present 0). */
clx_g_grad clx_loss_grad(const loss_ctx *lc, int present);
/* The same for the N-d kernels (nd.cl, nd_kept.cl). */
clx_g_nd clx_loss_nd(const loss_ctx *lc);
clx_g_ndgrad clx_loss_ndgrad(const loss_ctx *lc, int present);

/* ---- layouts (stage.c) ---- */

/* Whether t's rows are uniformly *ld apart with contiguous classes: the
 * 2-D kernels' layout (a matrix, or a tensor whose class stride is 1). */
int clx_view_2d(const clxent_tensor *t, size_t *ld);
/* The row stride of a tensor clx_view_2d accepts. */
size_t clx_ld(const clxent_tensor *t);
/* Whether every tensor of op with classes (x, probs, the output) has the
 * 2-D layout; else the N-d kernels run it. */
int clx_op_is_2d(const clx_op *op);
/* Whether op applies logit transforms. */
int clx_op_transforms(const clx_op *op);
/* Runs op through fn with every per-row array compact (row r = o*I + i
 * at offset + r, as the kernels index them): strided ones are copied
 * into staging memory before (inputs) and out of it after (outputs). */
clxent_status clx_op_staged(clxent_context *ctx, const clx_op *op,
                            clxent_status (*fn)(clxent_context *,
                                                const clx_op *));

/* The operations (dispatched by opencl/backend.c). */
clxent_status clx_op_cross_entropy(clxent_context *ctx, const clx_op *op);
clxent_status clx_op_nll(clxent_context *ctx, const clx_op *op);
clxent_status clx_op_softmax_family(clxent_context *ctx, const clx_op *op);
clxent_status clx_op_copy(clxent_context *ctx, const clx_op *op);
/* The CLX_OP_SHARD_* operations (shard.c). */
clxent_status clx_op_shard(clxent_context *ctx, const clx_op *op);
/* Called by clxent_finish after clFinish: reports the first bad row a
 * deferred target check found. */
clxent_status clx_op_finish_checks(clxent_context *ctx);

#endif /* CLXENT_OPENCL_OPS_LOSS_H */
