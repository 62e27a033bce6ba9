/* Building a clx_op from the public arguments (take.c): each argument
 * validated once, in the form the caller gave it (a matrix or vector of
 * the matrix calls, a tensor of the tensor calls), and stored as a tensor;
 * its byte extent kept for the overlap check; then the dispatch to the
 * backend with the trace. api.c and api_nd.c are the entry points. */
#ifndef CLXENT_API_TAKE_H
#define CLXENT_API_TAKE_H

#include "api/validate.h"

#define CLX_MAX_EXTENTS 10

/* The byte extents of an op's inputs and outputs. */
typedef struct clx_extents {
    clx_extent in[CLX_MAX_EXTENTS], out[CLX_MAX_EXTENTS];
    size_t n_in, n_out;
} clx_extents;

clxent_status clx_begin(clxent_context *ctx, const char *fn,
                        const clxent_events *events, clx_op *op,
                        clx_op_kind kind, clx_extents *e);
/* The overlap check, the backend's run, the trace. */
clxent_status clx_dispatch(clxent_context *ctx, const clx_extents *e,
                           const clx_op *op);

/* Options: the matrix calls' (loss options only) or the tensor calls'. */
clxent_status clx_take_loss_options(clxent_context *ctx, clx_op *op,
                                    const clxent_loss_options *options);
clxent_status clx_take_options(clxent_context *ctx, clx_op *op,
                               const clxent_options *options);
/* NLL: no smoothing, no z-loss, no transforms of given log-probs. */
clxent_status clx_take_nll_options(clxent_context *ctx, clx_op *op);

/* x: the logits (or logp), the op's main input (always in[0]). */
clxent_status clx_take_x_matrix(clxent_context *ctx, clx_op *op,
                                clx_extents *e, const char *name,
                                const clxent_matrix *x);
clxent_status clx_take_x(clxent_context *ctx, clx_op *op, clx_extents *e,
                         const char *name, const clxent_tensor *x);

clxent_status clx_take_weights(clxent_context *ctx, clx_op *op,
                               clx_extents *e, const clxent_vector *w);

/* Per-row arrays: as a vector of R elements, or a row tensor of x's
 * outer x inner. slot: where it goes in op. output: written. */
clxent_status clx_take_rows_vector(clxent_context *ctx, clx_op *op,
                                   clx_extents *e, const char *name,
                                   const clxent_vector *v,
                                   clx_dtype_class allowed, int output,
                                   clxent_tensor *slot);
clxent_status clx_take_rows(clxent_context *ctx, clx_op *op, clx_extents *e,
                            const char *name, const clxent_tensor *t,
                            clx_dtype_class allowed, int output,
                            clxent_tensor *slot);

/* The loss: R values for reduction none, else 1. */
clxent_status clx_take_loss_vector(clxent_context *ctx, clx_op *op,
                                   clx_extents *e, const clxent_vector *loss);
clxent_status clx_take_loss(clxent_context *ctx, clx_op *op, clx_extents *e,
                            const char *name, const clxent_tensor *loss,
                            clxent_tensor *slot);

/* grad_rows, optional, reduction none only. */
clxent_status clx_take_grad_rows_vector(clxent_context *ctx, clx_op *op,
                                        clx_extents *e,
                                        const clxent_vector *g);
clxent_status clx_take_grad_rows(clxent_context *ctx, clx_op *op,
                                 clx_extents *e, const clxent_tensor *g);

/* Targets: indices or probabilities. */
clxent_status clx_take_targets_matrix(clxent_context *ctx, clx_op *op,
                                      clx_extents *e,
                                      const clxent_targets *t);
clxent_status clx_take_targets(clxent_context *ctx, clx_op *op,
                               clx_extents *e,
                               const clxent_tensor_targets *t);

/* A matrix output of x's shape (log_softmax, softmax, copy: any float
 * dtype; grad: x's dtype, and with may_alias the logits themselves when
 * options->in_place). */
clxent_status clx_take_out_matrix(clxent_context *ctx, clx_op *op,
                                  clx_extents *e, const char *name,
                                  const clxent_matrix *out, int grad,
                                  int may_alias);
clxent_status clx_take_out(clxent_context *ctx, clx_op *op, clx_extents *e,
                           const char *name, const clxent_tensor *out,
                           int grad, int may_alias);

#endif
