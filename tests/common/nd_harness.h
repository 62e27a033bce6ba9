/* The tensor calls' cases (clxent.h, "Tensors with the class axis
 * anywhere"): (outer, classes, inner) tensors in strided, offset,
 * transposed and permuted layouts over a fill pattern, one case's random
 * inputs, and every _nd operation of the case run on any context with its
 * outputs read back as f32 and compared with the host's: shared by
 * test_nd.c and test_nd_bits.c (nd_harness.c). */
#ifndef CLXENT_TEST_ND_HARNESS_H
#define CLXENT_TEST_ND_HARNESS_H

#include "ops_harness.h"

/* ---- layouts ---- */

typedef struct lay {
    size_t off, so, sc, si; /* element offset, outer/class/inner strides */
} lay;

/* Logits, probabilities and the matrix outputs. */
enum {
    X_CONTIG,    /* PyTorch's contiguous (N, C, d...) */
    X_PADDED,    /* every stride padded, an offset */
    X_CLAST,     /* channels-last: class stride 1, inner stride C */
    X_CLAST_PAD, /* channels-last with padded inner and outer strides */
    X_PERM,      /* (d, C, N) memory order: outer stride 1 */
    X_COUT,      /* (C, N, d) memory order: the class axis outermost */
    X_KINDS,
    /* inputs only: the inner stride 0 (every position reads one row) */
    X_BCAST_CL = X_KINDS, /* class stride 1 */
    X_BCAST_ND            /* class stride 2 */
};

/* Per-row arrays (targets, loss, lse, z-loss, grad_rows, row statistics):
 * classes 1, their class stride unused (0 or 7 here). */
enum { R_COMPACT, R_STRIDED, R_TRANS, R_KINDS, R_BCAST = R_KINDS };

/* The layout of kind k (X_...) for O x C x I elements. */
lay x_layout(int k, size_t O, size_t C, size_t I);

/* A tensor of O x C x I in layout L holding vals (canonical order
 * [o][c][i], f32 converted to dt) or ivals (I32/I64), or nothing (the
 * 0x7f fill everywhere). */
clxent_tensor t_make(clxent_context *ctx, const float *vals,
                     const int64_t *ivals, size_t O, size_t C, size_t I,
                     lay L, clxent_dtype dt);
/* A per-row array of O x 1 x I in the layout of kind (R_...), as t_make. */
clxent_tensor rows_make(clxent_context *ctx, const float *vals,
                        const int64_t *ivals, size_t O, size_t I, int kind,
                        clxent_dtype dt);
/* An absent tensor (no buffer), for an optional argument. */
clxent_tensor no_tensor(void);
/* Releases the tensor's buffer. */
void t_free(clxent_tensor *t);

/* ---- one case ---- */

typedef struct nd_case {
    size_t O, C, I;
    clxent_dtype dt;  /* logits, probabilities, gradient */
    clxent_dtype odt; /* log_softmax, softmax, copy out; NLL's logp */
    clxent_dtype idt; /* class indices */
    int xl, ol, rl;   /* layouts: logits, outputs, per-row arrays */
    int yl;           /* per-row inputs' layout, -1: rl and its shifts */
    int probs, weights, ignore, grad_rows, zout, in_place, deferred;
    int64_t ii;
    float eps, zeta, cap, scale, G, D;
    clxent_reduction red;
    float xr; /* logits in (-xr, xr) */
    uint64_t seed;
} nd_case;

/* Host copies of the inputs in canonical order (logits and probabilities
 * rounded to dt). */
typedef struct nd_data {
    float *x, *t, *w, *gr;
    int64_t *y;
} nd_data;

static inline size_t n_rows(const nd_case *c) { return c->O * c->I; }
static inline size_t n_elems(const nd_case *c) { return c->O * c->C * c->I; }

/* The case's random inputs (from its seed); nd_free frees them. */
nd_data nd_make(const nd_case *c);
void nd_free(nd_data *d);
/* The case in one line: shape, dtypes, layouts, options, seed. */
void nd_name(const nd_case *c, char *buf, size_t size);

/* Every output of the case, canonical f32. */
enum {
    O_MAX, O_SUM, O_LSM, O_SM, O_COPY, O_NLL, O_NLLG, O_FL, O_FLSE, O_FZ,
    O_BG, O_UL, O_ULSE, O_UZ, O_UG, O_IPG, O_IPL, O_COUNT
};
/* The operation and output of each O_... index, for messages. */
extern const char *const o_name[O_COUNT];

typedef struct nd_res {
    float *v[O_COUNT];
    /* the rows forward, fused, backward and softmax took */
    char trace_fwd[256], trace_fused[256], trace_bwd[256], trace_sm[256];
} nd_res;

/* Frees the outputs (the traces stay). */
void res_free(nd_res *r);

#define OK(ctx, call) fx_assert_status((ctx), (call), CLXENT_STATUS_OK)

/* Runs every operation of the case on ctx; every output's bytes outside
 * its elements must be left alone. The inputs that come from an earlier
 * operation (the exp-sum's row max, NLL's log-probabilities, backward's
 * lse) are the host's (ref), or ctx's own when ref is NULL (the host run
 * itself), so both backends compute the same function. */
nd_res run_all(clxent_context *ctx, const nd_case *c, const nd_data *d,
               const nd_res *ref, const char *name);
/* Every output of dev against the host's (ref) within its tolerance. */
void compare_case(const nd_case *c, const nd_res *dev, const nd_res *ref,
                  const char *name);

/* ---- shapes ---- */

typedef struct shape {
    size_t O, C, I;
} shape;

/* A case of shape sh with every option off (f32, int32 labels,
 * ignore_index -100, G 1, scale 1, logits in [-6, 6]): the tests set
 * what they vary. */
nd_case shape_case(shape sh);

/* 1 when CLXENT_ND_QUICK=1: a few small shapes only (the Oclgrind pass,
 * tests/oclgrind_nd.sh). */
int quick(void);
/* Prints "<what> on <device> (<platform>)": the log names the device
 * (tests/oclgrind_nd.sh looks for Oclgrind's). */
void nd_print_device(clxent_context *dev, const char *what);

#endif
