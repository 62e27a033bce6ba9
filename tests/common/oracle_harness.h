/* The PyTorch oracle's toolkit, shared by test_oracle.c (the matrix
 * calls: ops ce, nll and softmax) and test_oracle_nd.c (the tensor calls:
 * ops ce_nd, nll_nd and softmax_nd): the cases of tests/oracle/manifest.txt
 * (written by tests/gen_oracle.py from PyTorch float64), their fixture
 * files and inputs, uploaded buffers, the comparisons against float64, and
 * the run of a program's half of the manifest, every case on the host
 * backend and on the OpenCL device (oracle_harness.c).
 *
 * Strided outputs live in buffers prefilled with 0x7f bytes (and strided
 * inputs carry NaN padding); the bytes outside the described elements must
 * come back unchanged.
 *
 * Tolerances against the float64 reference (the inputs are exact in their
 * storage type, so the only errors are the library's):
 *   loss, lse, exp-sum (f32 outputs)  |got - ref| <= 2e-6 * max(1, |ref|)
 *   row max                           exact
 *   gradient, softmax in f32          |got - ref| <= 2e-6
 *   log-softmax in f32                |got - ref| <= 2e-6 * max(1, |ref|)
 *   f16 / bf16 outputs: the f32 bound plus one rounding to the output
 *   type: + u*|ref| with u = 2^-11 (f16) or 2^-8 (bf16), the bound scaled
 *   by (1 + u), and + 2^-25 for f16's subnormal spacing.
 *   forward+backward gradient: + 2^-24 * |lse| * |d grad / d lse|, the
 *   effect of the lse that forward saves in f32 (see saved_lse_slack).
 *   Ignored rows: loss (reduction none) and gradient exactly 0.
 *   NaN matches NaN, an infinity the same infinity.
 */
#ifndef CLXENT_TEST_ORACLE_HARNESS_H
#define CLXENT_TEST_ORACLE_HARNESS_H

#include "fixtures.h"
#include "npy.h"

typedef struct oc_case {
    char name[96];
    char op[16];       /* ce, nll, softmax */
    clxent_dtype dtype;
    char target[8];    /* i32, i64, probs, none */
    size_t rows, cols;
    clxent_reduction reduction;
    int64_t ignore_index;
    float eps, z, G, D;
    int aiz, has_weights, has_grad_rows;
    /* The *_nd ops: the torch shape, its class axis, outer x cols x inner
     * (rows = outer * inner), and the logit transforms. */
    size_t shape[8], outer, inner;
    unsigned ndim, dim;
    float softcap, logit_scale;
    int backend_host; /* which backend this test entry runs on */
} oc_case;

/* ---- fixture files ---- */

/* count elements of type want from the case's file (8 spare bytes). */
void *load_npy(const oc_case *c, const char *file, npy_dtype want,
               size_t count);
/* Expected values: float64 stored as int64 bit patterns (gen_oracle.py). */
double *load_expect(const oc_case *c, const char *file, size_t count);

/* ---- buffers ---- */

typedef struct held {
    clxent_buffer *buf;
    unsigned char *image; /* what was uploaded (padding reference) */
    size_t bytes;
} held;

/* bytes of data uploaded (NULL: 0x7f bytes), and a copy kept. */
held upload_bytes(clxent_context *ctx, const void *data, size_t bytes);
void release(held *h);
/* length values of dtype at element offset in a buffer of 0x7f bytes. */
clxent_vector vector_in(clxent_context *ctx, const void *values,
                        size_t length, clxent_dtype dtype, size_t offset,
                        held *h);

/* ---- comparison ---- */

typedef struct tol {
    double abs;  /* absolute part */
    double rel1; /* times max(1, |ref|) */
    double u;    /* times |ref|: one rounding to a 16-bit output */
} tol;

/* The f32 bound plus one rounding to dtype. */
tol tol_for(double abs, double rel1, clxent_dtype dtype);
/* n values got against want, each within t (plus extra[i], when given);
 * cols > 0 names them [row][col]. zero_rows (optional, per row): rows
 * whose values must be exactly 0. Fails the test naming the case, its
 * backend, the route and the element. */
void compare_x(const oc_case *c, const char *route, const char *what,
               const float *got, const double *want, size_t n, size_t cols,
               tol t, const unsigned char *zero_rows, const double *extra);
void compare(const oc_case *c, const char *route, const char *what,
             const float *got, const double *want, size_t n, size_t cols,
             tol t, const unsigned char *zero_rows);
/* The four row primitives' results (max, exp-sum, log_softmax, softmax),
 * R rows of C, by either route (matrix or tensor calls). */
void compare_stats(const oc_case *c, const char *route, const float *gm,
                   const float *gs, const float *gl, const float *gp,
                   const double *want_max, const double *want_sum,
                   const double *want_lsm, const double *want_sm, size_t R,
                   size_t C);
/* Fails the test unless st is OK, with the context's message. */
void ok_or_fail(clxent_context *ctx, const oc_case *c, const char *route,
                const char *call, clxent_status st);

/* ---- inputs of one case ---- */

typedef struct oc_inputs {
    float *x;
    void *indices; /* i32 / i64, or NULL */
    clxent_dtype index_dtype;
    float *probs;
    float *weights;
    float *grad_rows;
    unsigned char *zero_rows; /* rows whose gradient must be exactly 0 */
    size_t nloss;
    /* x and probs as rows x cols row-major: the same arrays for the
     * matrix cases, transposed copies of the (outer, C, inner) files for
     * the tensor cases. */
    float *x_rows, *probs_rows;
} oc_inputs;

/* (outer, C, inner) in torch order to rows x C row-major, row o*inner+i. */
float *rows_of_f(const oc_case *c, const float *t);
double *rows_of_d(const oc_case *c, const double *t);
/* The case's input files; free_inputs frees them. */
oc_inputs load_inputs(const oc_case *c);
void free_inputs(oc_inputs *in);
/* The case's loss options. */
clxent_loss_options options_of(const oc_case *c);

/* ---- loss routes ---- */

/* Expected values from the oracle (lse NULL for NLL). */
typedef struct ce_expect {
    double *loss, *lse, *grad;
} ce_expect;

/* The outputs a route wrote (NULL: not written) against e; grad_extra
 * (optional) widens the gradient's bound per element. */
void check_route(const oc_case *c, const oc_inputs *in, const ce_expect *e,
                 const char *route, const float *loss, const float *lse,
                 const float *grad, const double *grad_extra);
/* The forward+backward gradient's extra bound per element, for the lse
 * that forward saved in f32 (oracle_harness.c says how). */
double *saved_lse_slack(const oc_case *c, const oc_inputs *in,
                        const double *lse);

/* ---- the manifest ---- */

/* An op of the manifest and the routes that check one case of it. */
typedef struct oracle_op {
    const char *op;
    void (*run)(clxent_context *ctx, const oc_case *c, const oc_inputs *in);
} oracle_op;

/* main: every case of the manifest that is a tensor case (nd 1: ops
 * *_nd) or a matrix case (nd 0), on the host backend and then on the
 * OpenCL device, each a cmocka test of group `group` run by ops[n_ops]'s
 * routes (a case of another op fails). Returns the failed count, or 1
 * when the manifest cannot be read. */
int oracle_main(const char *group, int nd, const oracle_op *ops,
                size_t n_ops);

#endif
