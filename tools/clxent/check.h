/* One case of `clxent check`: an operation, a storage type, an option
 * family and a shape, with inputs generated once and run on two contexts
 * (check_run.c). */
#ifndef CLXENT_TOOL_CHECK_H
#define CLXENT_TOOL_CHECK_H

#include "ops.h"

#include <clxent/clxent.h>

/* Option families; primitives use CF_NA only. */
typedef enum check_family {
    CF_NA, CF_PLAIN, CF_SUM, CF_NONE, CF_WEIGHTS, CF_SMOOTHING, CF_IGNORE,
    CF_ZLOSS, CF_PROBS, CF_ALL, CF_N_FAMILIES
} check_family;

typedef struct check_shape {
    size_t rows, cols, stride, offset; /* elements */
} check_shape;

typedef struct check_case {
    ops_id op;
    clxent_dtype dtype;     /* logits and matrix outputs */
    clxent_dtype idx_dtype; /* I32 or I64 */
    check_family family;
    check_shape shape;
} check_case;

/* Host-side inputs shared by both runs. */
typedef struct check_inputs {
    clxent_dtype x_dtype; /* f32 for copy's source, else the case dtype */
    size_t x_elems;       /* offset + rows * stride */
    void *x;              /* logits (logp for NLL); padding holds NaN */
    void *idx;            /* rows class indices */
    void *probs;          /* NULL or probabilities, x's layout */
    float *weights;       /* NULL or cols */
    float *grad_rows;     /* NULL or rows (reduction none) */
    float *vec_in;        /* NULL or rows: row max (expsum), lse (backward) */
    clxent_loss_options opt;
} check_inputs;

typedef struct check_outputs {
    float *vec;  /* loss (1 or rows), then lse / row statistics */
    size_t nvec;
    float *mat;  /* rows x cols matrix output as f32, NULL if none */
    size_t nmat;
    int padding_ok; /* the matrix output's padding was left alone */
} check_outputs;

const char *check_family_name(check_family family);
/* Families that apply to op (CF_NA for primitives). */
int check_family_applies(const ops_desc *op, check_family family);

/* Generates inputs from seed; on the host context, computes vec_in when
 * the op needs one. 0 or a status with *what set. */
clxent_status check_inputs_make(clxent_context *host, const check_case *c,
                                unsigned long long seed, check_inputs *in,
                                const char **what);
void check_inputs_free(check_inputs *in);

/* Runs the case on ctx and reads its outputs back. */
clxent_status check_run(clxent_context *ctx, const check_case *c,
                        const check_inputs *in, check_outputs *out,
                        const char **what);
void check_outputs_free(check_outputs *out);

#endif
