/* The plumbing every OpenCL loss operation shares (backend_opencl_loss.c):
 * its context, the target check (synchronous or deferred), the scalar loss
 * reduction and the kernel arguments of the cross-entropy family. The
 * strategies are in backend_opencl_xent.c. Not installed. */
#ifndef CLXENT_OPENCL_LOSS_H
#define CLXENT_OPENCL_LOSS_H

#include "opencl_ops.h"

#define ST_BYTES 28 /* device st_t */
#define CHK_BYTES 48 /* device chk_t */

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

/* Sets lc up (options, the mean's denominator, scratch). Returns 1 when
 * the operation is already over, with its status in *st: an error, or no
 * rows (the scalar of sum/mean, or an empty marker). */
int clx_loss_open(loss_ctx *lc, clxent_context *ctx, const clx_op *op,
                  clxent_status *st);
/* Floats the check and the loss reduction need after the per-row losses. */
size_t clx_loss_aux_floats(const loss_ctx *lc);
/* Enqueues k (1-D); `last` marks the operation's last kernel. */
clxent_status clx_loss_launch(loss_ctx *lc, cl_kernel k, size_t global,
                              size_t local, int last);
/* Enqueues the check of the class indices (SYNC: with the read of its
 * verdict behind it, and lc->guard set for the kernels that follow). */
clxent_status clx_loss_check_targets(loss_ctx *lc);
/* The end of every operation that may have a synchronous check: waits for
 * the verdict; st is the status so far. */
clxent_status clx_loss_finish_check(loss_ctx *lc, clxent_status st);
/* The scalar loss from the per-row losses (reduction sum or mean). */
clxent_status clx_loss_reduce(loss_ctx *lc);
/* Whether the operation ends with clx_loss_reduce. */
int clx_loss_wants_reduce(const clx_op *op);
/* The 24 arguments of XENT_PARAMS (kernels/xent.h). */
void clx_loss_xent_args(loss_ctx *lc, clx_args *a);
/* The gradient matrix (buffer, offset, stride), or scratch as a
 * placeholder when the kernel writes none (present 0). */
void clx_loss_grad_args(loss_ctx *lc, clx_args *a, int present);
/* Where per-row losses and the lse go (5 arguments). */
void clx_loss_out_args(loss_ctx *lc, clx_args *a);

#endif
