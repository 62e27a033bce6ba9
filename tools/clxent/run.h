/* `clxent run`, in three steps: the arguments (cmd_run.c), the .npy
 * inputs as PyTorch shapes them (run_load.c), the library calls and the
 * outputs (run_exec.c). */
#ifndef CLXENT_TOOL_RUN_H
#define CLXENT_TOOL_RUN_H

#include "commands.h"
#include "npy.h"

typedef enum run_op {
    RUN_CROSS_ENTROPY,
    RUN_NLL_LOSS,
    RUN_LOG_SOFTMAX,
    RUN_SOFTMAX
} run_op;

extern const char *const run_op_names[]; /* by run_op */

typedef struct run_args {
    const char *device, *input, *targets, *probs, *weights;
    const char *loss_out, *grad_out, *lse_out, *out;
    const char *shard; /* --shard vocab|batch|VxB (run_shard.c) */
    run_op op;
    clxent_options opt;
    clxent_dtype dtype; /* 0: the input's type */
    int64_t dim;        /* log_softmax/softmax; default -1 */
} run_args;

/* The inputs, loaded, checked against each other and converted to what
 * the library takes. The input is outer x classes x inner, its class axis
 * `axis` of its ndim dimensions; rows (outer x inner) have row_ndim
 * dimensions row_shape: the target's shape, and that of a per-row output
 * (loss for reduction none, lse). */
typedef struct run_inputs {
    npy_array x, t, p, w;
    clxent_dtype dtype;   /* the storage type on the device */
    void *xs, *ps;        /* x and p in the storage type */
    float *w32;           /* the weights as f32 */
    int axis;
    size_t outer, classes, inner;
    int row_ndim;
    size_t row_shape[NPY_MAX_DIMS];
} run_inputs;

/* Reads and checks the files of a; 0 or CLI_RUNTIME after a message. */
int run_load(const run_args *a, run_inputs *in);
void run_inputs_free(run_inputs *in);

/* A contiguous outer x classes x inner tensor of the library with the
 * input's inner_dims (so that messages name PyTorch's positions): classes
 * is the input's for the input, the gradient and probabilities, 1 for a
 * per-row array (targets, loss for reduction none, lse). */
clxent_tensor run_tensor(const run_inputs *in, clxent_buffer *buffer,
                         size_t classes, clxent_dtype dtype);

/* Runs a's op on ctx, writes the outputs a names and prints the summary;
 * 0 or CLI_RUNTIME after a message. */
int run_exec(const run_args *a, run_inputs *in, clxent_context *ctx);

/* Outputs written all or none (run_exec.c): each goes to a temporary
 * file beside its target, and only when every one is written are they
 * renamed onto their targets; otherwise the temporaries are removed. */
#define RUN_MAX_OUTPUTS 4
typedef struct run_staged {
    const char *path[RUN_MAX_OUTPUTS];
    char *tmp[RUN_MAX_OUTPUTS]; /* NULL: written in place (not a file) */
    int n;
} run_staged;

/* Writes n values of dtype in raw as a float32 .npy for path (NULL:
 * nothing); 0 or CLI_RUNTIME after a message. */
int run_stage(run_staged *s, const char *path, const void *raw, size_t n,
              clxent_dtype dtype, int ndim, const size_t *shape);
/* rc 0: renames every staged file onto its target; else removes them.
 * Returns rc, or CLI_RUNTIME when a rename fails. */
int run_stage_finish(run_staged *s, int rc);

/* The whole run over MPI ranks (--shard, under mpirun): 0, or CLI_RUNTIME
 * / CLI_USAGE on every rank after rank 0's message (run_shard.c). */
int run_sharded(const run_args *a);

#endif
