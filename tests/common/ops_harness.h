/* One loss case (shape, dtypes, options, strided layouts), its random
 * inputs, and the same operation run on any context with the outputs read
 * back as f32: shared by test_device_vs_host.c, test_fused.c and
 * test_cpu_kernels.c (ops_harness.c). */
#ifndef CLXENT_TEST_OPS_HARNESS_H
#define CLXENT_TEST_OPS_HARNESS_H

#include "fixtures.h"
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hx_case {
    size_t R, C;
    clxent_dtype dt;  /* logits, probabilities, gradient */
    int probs;        /* probability targets instead of indices */
    clxent_dtype idt; /* I32 or I64 */
    int weights, ignore, grad_rows;
    float eps, zeta, G, D;
    int64_t ii; /* ignore_index */
    clxent_reduction red;
    int all_ignored_zero;
    clxent_target_check check;
    uint64_t seed;
} hx_case;

/* Host copies of the inputs (f32 values already rounded to dt). */
typedef struct hx_data {
    float *x, *t, *w, *gr;
    int64_t *y;
} hx_data;

/* Outputs as f32: loss (R or 1), lse (R), grad (R*C). NULL if absent. */
typedef struct hx_out {
    float *loss, *lse, *grad;
} hx_out;

/* Element layouts: offsets and strides that are neither 0 nor C, so
 * vector loads are unaligned and row starts move. */
#define HX_X_OFF 3
#define HX_X_PAD 5
#define HX_G_OFF 1
#define HX_G_PAD 2
#define HX_T_OFF 4
#define HX_T_PAD 3

/* A case with the defaults: int32 class indices, ignore_index -100, mean,
 * G = 1, no other option. */
hx_case hx_base_case(size_t R, size_t C, clxent_dtype dt, uint64_t seed);
size_t hx_nloss(const hx_case *c);
hx_data hx_make(const hx_case *c);
void hx_free(hx_data *d);
void hx_out_free(hx_out *o);
clxent_loss_options hx_options(const hx_case *c);

/* ---- buffers with layouts ---- */

/* A matrix R x C at element offset off with row stride ld, holding vals
 * (f32, converted to dt) or, when vals is NULL, the 0x7f fill pattern. */
clxent_matrix hx_mat(clxent_context *ctx, const float *vals, size_t R,
                     size_t C, size_t off, size_t ld, clxent_dtype dt);
float *hx_mat_read(clxent_context *ctx, const clxent_matrix *m);
/* A vector of n f32 (vals) or int (ivals, as dt I32/I64) at offset off. */
clxent_vector hx_vec(clxent_context *ctx, const float *vals,
                     const int64_t *ivals, size_t n, size_t off,
                     clxent_dtype dt);
float *hx_vec_read(clxent_context *ctx, const clxent_vector *v);
clxent_vector hx_no_vec(void);

/* Inputs of one case on one context. */
typedef struct hx_in {
    clxent_matrix x;
    clxent_targets tg;
    clxent_vector w, gr;
} hx_in;

hx_in hx_upload(clxent_context *ctx, const hx_case *c, const hx_data *d);
void hx_in_release(hx_in *in);

/* The strategy a test forces, per operation: each device run of that
 * operation (hx_run, lanes_prims) must show `trace_part` in its trace
 * (clxent_context_last_trace, e.g. "(batch "), so a silent fallback to
 * another kernel fails the test. NULL: no expectation; hx_expect_none
 * clears them all. */
void hx_expect(ops_id op, const char *trace_part);
void hx_expect_none(void);
/* Asserts the expectation of op after a run on ctx (none on the host). */
void hx_check_ran(clxent_context *ctx, ops_id op);

/* The routes of a cross-entropy case (hx_run). */
#define HX_ROUTE_FUSED 0
#define HX_ROUTE_FUSED_IN_PLACE 1
#define HX_ROUTE_FWD_BWD 2 /* forward, then backward from its lse */
#define HX_ROUTE_FWD_BWD_IN_PLACE 3 /* the same, the gradient over x */

/* Runs the cross-entropy case on ctx by one route; outputs as f32. */
hx_out hx_run(clxent_context *ctx, const hx_case *c, const hx_data *d,
              int route);
/* Runs the routes of the mask (an HX_ROUTE_BIT per route, or
 * HX_ROUTES_ALL) on dev and compares each with the host's fused result
 * (hx_compare_out). */
#define HX_ROUTE_BIT(route) (1u << (route))
#define HX_ROUTES_ALL 0xfu
/* fused, fused in place, forward + backward */
#define HX_ROUTES_NO_BWD_IN_PLACE                                              \
    (HX_ROUTES_ALL & ~HX_ROUTE_BIT(HX_ROUTE_FWD_BWD_IN_PLACE))
void hx_routes_vs_host(clxent_context *dev, const hx_case *c,
                       const hx_data *d, unsigned routes, const char *name);

/* got vs want within abs + rel*|want| + one rounding of dt; NaN matches
 * NaN, inf the same inf. Fails with what, index and case name. */
void hx_compare(const float *got, const float *want, size_t n,
                double abs_tol, double rel_tol, clxent_dtype dt,
                const char *what, const char *name);
/* Loss: 1e-6 relative to max(1, |loss|) plus the f32 rounding of both
 * results; gradient: 1e-6 absolute plus one rounding of dt. */
void hx_compare_out(const hx_case *c, const hx_out *dev, const hx_out *ref,
                    const char *name);
void hx_name(const hx_case *c, char *buf, size_t size);

#endif
