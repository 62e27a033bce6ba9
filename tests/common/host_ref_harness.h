/* A naive double implementation of cross-entropy and NLL written from
 * docs/semantics.md's formulas (deliberately not the backend's code:
 * logp = x - lse, every term spelled out), cases of random data and
 * options, buffers with offsets, strides and guarded padding, one
 * operation through the public API, and every route of a case checked
 * against the reference: shared by test_host_reference.c and
 * test_host_reference_edges.c (host_ref_harness.c). */
#ifndef CLXENT_TEST_HOST_REF_HARNESS_H
#define CLXENT_TEST_HOST_REF_HARNESS_H

#include "fixtures.h"

/* Written before each call into every output element; exact in f16 and
 * bf16, and never a plausible result. */
#define SENTINEL (-768.0f)

/* ---- a case: data, options and layout ---- */

typedef struct xcase {
    size_t R, C;
    clxent_dtype dt;  /* logits, probabilities, gradient */
    clxent_dtype idt; /* class indices */
    int probs;        /* probability targets instead of indices */
    size_t off, pad;  /* element offset, stride - C, of every argument */
    clxent_loss_options opt;
    float *x;  /* R x C, values representable in dt */
    int64_t *y;
    float *t;  /* R x C */
    float *w;  /* C, or NULL */
    float *gr; /* R upstream gradients (reduction none), or NULL */
} xcase;

/* R x C logits in [-4, 4), random targets of both kinds (seed); f32,
 * int32 indices, default options. */
xcase case_new(size_t R, size_t C, uint64_t seed);
/* Random class weights in [0.25, 2). */
void case_weights(xcase *k, uint64_t seed);
/* Random per-row upstream gradients in [-1, 2). */
void case_grad_rows(xcase *k, uint64_t seed);
/* Makes x and t exactly what the backend will read. */
void case_round(xcase *k);
void case_free(xcase *k);
/* The loss's length: R for reduction none, else 1. */
size_t loss_len(const xcase *k);

/* The storage types, for the tests that run each. */
extern const clxent_dtype dtypes[3];

/* ---- the naive reference ---- */

typedef struct xref {
    double *loss; /* R for none, else 1 */
    double *lse;  /* R */
    double *grad; /* R x C */
} xref;

void ref_alloc(const xcase *k, xref *o);
void ref_free(xref *o);
/* log sum exp of a row of C; NaN if the row holds one. */
double ref_lse(const float *x, size_t C);
/* Cross-entropy loss, lse and gradient; lse_given (backward): the saved
 * f32 lse instead of the row's own. */
void ref_ce(const xcase *k, const float *lse_given, xref *o);

/* ---- buffers with offsets, strides and guarded padding ---- */

/* Equal, or both NaN. */
int same_value(float a, float b);
/* rows x cols values (NULL: SENTINEL) at offset off with row stride ld;
 * every other element holds pad. */
clxent_buffer *put(clxent_context *ctx, const float *v, size_t rows,
                   size_t cols, size_t off, size_t ld, clxent_dtype dt,
                   float pad);
/* Reads the values back, failing if any padding element changed. */
float *get(clxent_context *ctx, const clxent_buffer *b, size_t rows,
           size_t cols, size_t off, size_t ld, clxent_dtype dt, float pad,
           const char *what);

/* ---- one operation through the public API ---- */

typedef enum run_kind {
    RUN_FUSED,
    RUN_FORWARD,
    RUN_BACKWARD,
    RUN_IN_PLACE,
    RUN_NLL,
    RUN_NLL_BACKWARD
} run_kind;

/* Each run_kind's name, for messages. */
extern const char *run_name[];

typedef struct outputs {
    float *loss; /* loss_len values */
    float *lse;  /* R */
    float *grad; /* R x C */
    char message[512]; /* the context message right after the call */
} outputs;

void outputs_free(outputs *o);
/* Runs `kind` on k (lse_in for backward, lp for NLL) and reads every
 * output back (SENTINEL where nothing was written). */
clxent_status run_op(clxent_context *ctx, const xcase *k, run_kind kind,
                     const float *lse_in, const float *lp, outputs *o);

/* ---- comparisons ---- */

/* Fails if any of v[n] is not SENTINEL. */
void expect_untouched(const float *v, size_t n, const char *what);
/* Every route on one case (rounded to its dtype first): fused, forward,
 * backward from the forward's lse, in-place, and NLL over the
 * log-probabilities where it applies, against the reference. */
void check_case(clxent_context *ctx, xcase *k, const char *label);

/* Each test on a new host context. */
#define HOST_TEST(f) \
    cmocka_unit_test_setup_teardown(f, fx_setup_host, fx_teardown_context)

#endif
