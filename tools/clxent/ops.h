/* One descriptor per public operation: its names, the arguments it takes,
 * the bytes it must move and a call that enqueues it from one argument set.
 * `clxent check`, `clxent bench`, the tests and the fuzzer all walk this
 * table (ops.c), so adding an operation adds a row there. */
#ifndef CLXENT_TOOL_OPS_H
#define CLXENT_TOOL_OPS_H

#include <clxent/clxent.h>

#include <stddef.h>

/* In the order `clxent check` runs and prints them. */
typedef enum ops_id {
    OPS_ROW_MAX, OPS_ROW_EXPSUM, OPS_LOG_SOFTMAX, OPS_SOFTMAX, OPS_NLL,
    OPS_NLL_BACKWARD, OPS_CE_FORWARD, OPS_CE_BACKWARD, OPS_CE_FUSED,
    OPS_COPY, OPS_COUNT
} ops_id;

/* The arguments an operation takes, besides the context, x and the
 * events every one takes (ops_desc.io). */
enum {
    OPS_TARGETS = 1u << 0,   /* clxent_targets: indices or probabilities */
    OPS_INDICES = 1u << 1,   /* class indices alone (NLL) */
    OPS_WEIGHTS = 1u << 2,
    OPS_OPTIONS = 1u << 3,
    OPS_GRAD_ROWS = 1u << 4, /* per-row upstream gradient */
    OPS_LOSS = 1u << 5,
    OPS_VEC_IN = 1u << 6,    /* a row statistic in: the exp-sum's row max */
    OPS_LSE_IN = 1u << 7,    /* the lse a forward saved */
    OPS_VEC_OUT = 1u << 8,   /* a row statistic out */
    OPS_LSE_OUT = 1u << 9,
    OPS_MAT_OUT = 1u << 10,  /* rows x cols out: softmax, log-softmax, copy */
    OPS_GRAD = 1u << 11      /* rows x cols gradient out */
};

/* The arguments of one call. An operation passes on the ones its io
 * names, exactly as given (NULL included: the bad-input test relies on
 * it), and ignores the others. */
typedef struct ops_args {
    const clxent_matrix *x;        /* logits, log-probabilities for NLL */
    const clxent_targets *targets; /* OPS_TARGETS */
    const clxent_vector *indices;  /* OPS_INDICES */
    const clxent_vector *weights;
    const clxent_loss_options *options;
    const clxent_vector *grad_rows;
    const clxent_vector *vec_in;   /* OPS_VEC_IN or OPS_LSE_IN */
    const clxent_vector *loss;
    const clxent_vector *vec_out;  /* OPS_VEC_OUT or OPS_LSE_OUT */
    const clxent_matrix *out;      /* OPS_MAT_OUT or OPS_GRAD */
    const clxent_events *events;
} ops_args;

/* The same arguments as tensors, for the _nd calls (clxent.h's tensor
 * API): x, targets, per-row arrays and outputs of PyTorch's (N, C, d..)
 * layouts. z_loss_out: the z-loss part of the loss, where the operation
 * has one (forward and fused); NULL or no buffer: not asked for. */
typedef struct ops_nd_args {
    const clxent_tensor *x;
    const clxent_tensor_targets *targets; /* OPS_TARGETS */
    const clxent_tensor *indices;         /* OPS_INDICES */
    const clxent_vector *weights;
    const clxent_options *options;
    const clxent_tensor *grad_rows;
    const clxent_tensor *vec_in;
    const clxent_tensor *loss;
    const clxent_tensor *vec_out;
    const clxent_tensor *z_loss_out;
    const clxent_tensor *out;
    const clxent_events *events;
} ops_nd_args;

typedef struct ops_desc {
    ops_id id;
    const char *function;   /* the public call: "clxent_row_max" */
    const char *name;       /* as `clxent check` prints it */
    const char *bench_name; /* as `clxent bench` prints it; NULL: not timed */
    int bench_rank;         /* place in bench's listings, -1 when not timed */
    unsigned io;            /* OPS_* bits */
    /* What the library's messages call x and the vector output. */
    const char *x_arg, *vec_out_arg;
    /* The operation whose vector output is this one's vec_in (the row
     * max for the exp-sum, the lse for the backward); OPS_COUNT: none. */
    ops_id input_from;
    /* The minimum bytes moved on rows x cols elements of e bytes:
     * matrices * rows*cols*e + 4 * row_words * rows + row_elems * e * rows
     * (NLL reads one element a row). */
    struct { unsigned matrices, row_words, row_elems; } moved;
    clxent_status (*enqueue)(clxent_context *ctx, const ops_args *args);
    /* The tensor form of the same call (the clxent_*_nd function). */
    clxent_status (*enqueue_nd)(clxent_context *ctx, const ops_nd_args *args);
} ops_desc;

extern const ops_desc ops_table[OPS_COUNT];

/* The operations `clxent bench` times, in its order. */
#define OPS_BENCH_COUNT 7
/* The bench's rank-th operation; NULL past the end. */
const ops_desc *ops_bench(int rank);

double ops_bytes(const ops_desc *d, size_t rows, size_t cols, size_t elem);
/* Elements an operation works through: rows x cols, or rows for a gather
 * that reads one element a row (NLL). */
double ops_elements(const ops_desc *d, size_t rows, size_t cols);

#endif
