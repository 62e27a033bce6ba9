/* PyTorch oracle: every case of tests/oracle/manifest.txt (written by
 * tests/gen_oracle.py from PyTorch float64) through the public API, on the
 * host backend and on the OpenCL device, by every route:
 *
 *   ce       fused (contiguous), forward + backward (contiguous), fused
 *            with offsets and row strides, fused in place (the gradient
 *            overwrites the strided logits), and the blocking host-array
 *            form when no per-row upstream gradient is given
 *   nll      clxent_nll_loss + clxent_nll_loss_backward, contiguous and
 *            strided
 *   softmax  row max, exp-sum, log-softmax and softmax, contiguous and
 *            strided
 *   *_nd     the same through the tensor calls on PyTorch's (N, C, d..)
 *            and (C) shapes and over each dim of a 4-d tensor, with
 *            softcap, logit_scale and z_loss_out: contiguous, and
 *            channels-last with padding (class stride 1), and in place
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
#include "fixtures.h"
#include "npy.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CLXENT_SOURCE_DIR
#error "CLXENT_SOURCE_DIR must name the source tree (tests/CMakeLists.txt)"
#endif

#define ORACLE_DIR CLXENT_SOURCE_DIR "/tests/oracle"

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

/* ------------------------------------------------------------------ */
/* Fixture files. */

static void *load_npy(const oc_case *c, const char *file, npy_dtype want,
                      size_t count) {
    char path[512], error[512];
    snprintf(path, sizeof path, "%s/%s/%s", ORACLE_DIR, c->name, file);
    npy_array a;
    if (npy_read(path, &a, error, sizeof error) != 0)
        fail_msg("%s", error);
    if (a.dtype != want || a.count != count)
        fail_msg("%s: dtype %d count %zu, expected dtype %d count %zu", path,
                 (int)a.dtype, a.count, (int)want, count);
    void *data = malloc(count * 8 + 8);
    assert_non_null(data);
    if (count) memcpy(data, a.data, count * (want == NPY_I64 ? 8 : 4));
    npy_free(&a);
    return data;
}

/* Expected values: float64 stored as int64 bit patterns (gen_oracle.py). */
static double *load_expect(const oc_case *c, const char *file, size_t count) {
    int64_t *bits = load_npy(c, file, NPY_I64, count);
    double *out = malloc(count * sizeof(double) + 8);
    assert_non_null(out);
    if (count) memcpy(out, bits, count * sizeof(double));
    free(bits);
    return out;
}

/* ------------------------------------------------------------------ */
/* Buffers with a layout: element offset and extra row stride. */

typedef struct layout {
    size_t offset, extra;
} layout;

static const layout CONTIG = {0, 0};
static const layout IN_LAYOUT = {3, 2};
static const layout OUT_LAYOUT = {5, 3};
static const layout PROBS_LAYOUT = {1, 4};

typedef struct held {
    clxent_buffer *buf;
    unsigned char *image; /* what was uploaded (padding reference) */
    size_t bytes;
} held;

static held upload_bytes(clxent_context *ctx, const void *data,
                         size_t bytes) {
    held h;
    h.bytes = bytes;
    h.image = malloc(bytes + 1);
    assert_non_null(h.image);
    if (data)
        memcpy(h.image, data, bytes);
    else
        memset(h.image, 0x7f, bytes);
    h.buf = fx_upload(ctx, h.image, bytes);
    return h;
}

static void release(held *h) {
    clxent_buffer_release(h->buf);
    free(h->image);
    h->buf = NULL;
    h->image = NULL;
}

/* A rows x cols matrix of dtype in layout L; values NULL gives an output
 * matrix prefilled with 0x7f bytes, else the values (f32, contiguous)
 * with NaN padding around them. */
static clxent_matrix matrix_in(clxent_context *ctx, const float *values,
                               size_t rows, size_t cols, clxent_dtype dtype,
                               layout L, held *h) {
    size_t stride = cols + L.extra;
    size_t n = L.offset + rows * stride;
    size_t es = clxent_dtype_size(dtype);
    if (!values) {
        *h = upload_bytes(ctx, NULL, n * es);
    } else {
        float *staged = malloc(n * sizeof(float) + 4);
        assert_non_null(staged);
        for (size_t i = 0; i < n; ++i) staged[i] = NAN;
        for (size_t r = 0; r < rows; ++r)
            memcpy(staged + L.offset + r * stride, values + r * cols,
                   cols * sizeof(float));
        void *converted = fx_to_dtype(staged, n, dtype);
        *h = upload_bytes(ctx, converted, n * es);
        free(converted);
        free(staged);
    }
    clxent_matrix m = {h->buf, L.offset, rows, cols, stride, dtype};
    return m;
}

static clxent_vector vector_in(clxent_context *ctx, const void *values,
                               size_t length, clxent_dtype dtype,
                               size_t offset, held *h) {
    size_t es = clxent_dtype_size(dtype);
    size_t bytes = (offset + length) * es;
    unsigned char *staged = malloc(bytes + 1);
    assert_non_null(staged);
    memset(staged, 0x7f, bytes);
    if (values && length) memcpy(staged + offset * es, values, length * es);
    *h = upload_bytes(ctx, staged, bytes);
    free(staged);
    clxent_vector v = {h->buf, offset, length, dtype};
    return v;
}

/* Reads back a matrix as f32 and checks that the bytes around it are what
 * was uploaded. */
static float *matrix_read(clxent_context *ctx, const clxent_matrix *m,
                          const held *h, const char *what) {
    unsigned char *all = fx_download(ctx, h->buf);
    size_t es = clxent_dtype_size(m->dtype);
    for (size_t i = 0; i < h->bytes / es; ++i) {
        size_t e = i;
        int inside = e >= m->offset &&
                     (e - m->offset) / m->stride < m->rows &&
                     (e - m->offset) % m->stride < m->cols;
        if (!inside && memcmp(all + i * es, h->image + i * es, es) != 0)
            fail_msg("%s: element %zu outside the matrix was overwritten",
                     what, i);
    }
    float *out = malloc(m->rows * m->cols * sizeof(float) + 4);
    assert_non_null(out);
    for (size_t r = 0; r < m->rows; ++r) {
        float *row = fx_from_dtype(all + (m->offset + r * m->stride) * es,
                                   m->cols, m->dtype);
        memcpy(out + r * m->cols, row, m->cols * sizeof(float));
        free(row);
    }
    free(all);
    return out;
}

static float *vector_read(clxent_context *ctx, const clxent_vector *v,
                          const held *h, const char *what) {
    unsigned char *all = fx_download(ctx, h->buf);
    for (size_t i = 0; i < h->bytes; ++i) {
        size_t e = i / 4;
        if ((e < v->offset || e >= v->offset + v->length) &&
            all[i] != h->image[i])
            fail_msg("%s: byte %zu outside the vector was overwritten", what,
                     i);
    }
    float *out = malloc(v->length * sizeof(float) + 4);
    assert_non_null(out);
    if (v->length)
        memcpy(out, all + v->offset * 4, v->length * sizeof(float));
    free(all);
    return out;
}

/* ------------------------------------------------------------------ */
/* Comparison. */

typedef struct tol {
    double abs;  /* absolute part */
    double rel1; /* times max(1, |ref|) */
    double u;    /* times |ref|: one rounding to a 16-bit output */
} tol;

static double unit_roundoff(clxent_dtype dtype) {
    return dtype == CLXENT_F16 ? ldexp(1.0, -11)
           : dtype == CLXENT_BF16 ? ldexp(1.0, -8)
                                  : 0.0;
}

/* The f32 bound plus one rounding to dtype. */
static tol tol_for(double abs, double rel1, clxent_dtype dtype) {
    double u = unit_roundoff(dtype);
    tol t = {abs * (1 + u) + (dtype == CLXENT_F16 ? ldexp(1.0, -25) : 0.0),
             rel1 * (1 + u), u};
    return t;
}

static const tol EXACT = {0, 0, 0};

/* zero_rows (optional, per row of `cols` elements): rows whose values must
 * be exactly 0. extra (optional): per-element addition to the bound. */
static void compare_x(const oc_case *c, const char *route, const char *what,
                      const float *got, const double *want, size_t n,
                      size_t cols, tol t, const unsigned char *zero_rows,
                      const double *extra) {
    for (size_t i = 0; i < n; ++i) {
        size_t row = cols ? i / cols : i, col = cols ? i % cols : 0;
        double g = got[i], w = want[i];
        if (zero_rows && zero_rows[row]) {
            if (g != 0.0)
                fail_msg("%s [%s, %s] %s[%zu][%zu]: got %.9g, want exactly 0 "
                         "(ignored row)",
                         c->name, c->backend_host ? "host" : "device", route,
                         what, row, col, g);
            continue;
        }
        double fixed = t.abs + t.rel1 * fmax(1.0, fabs(w)) +
                       (extra ? extra[i] : 0.0);
        double bound = fixed + t.u * fabs(w);
        int ok = fx_close(g, w, fixed, t.u);
        if (!ok && !cols)
            fail_msg("%s [%s, %s] %s[%zu]: got %.9g, want %.17g "
                     "(|diff| %.3g > bound %.3g)",
                     c->name, c->backend_host ? "host" : "device", route,
                     what, row, g, w, fabs(g - w), bound);
        if (!ok)
            fail_msg("%s [%s, %s] %s[%zu][%zu]: got %.9g, want %.17g "
                     "(|diff| %.3g > bound %.3g)",
                     c->name, c->backend_host ? "host" : "device", route,
                     what, row, col, g, w, fabs(g - w), bound);
    }
}

static void compare(const oc_case *c, const char *route, const char *what,
                    const float *got, const double *want, size_t n,
                    size_t cols, tol t, const unsigned char *zero_rows) {
    compare_x(c, route, what, got, want, n, cols, t, zero_rows, NULL);
}

/* The four row primitives' results (max, exp-sum, log_softmax, softmax),
 * R rows of C, by either route (matrix or tensor calls). */
static void compare_stats(const oc_case *c, const char *route,
                          const float *gm, const float *gs, const float *gl,
                          const float *gp, const double *want_max,
                          const double *want_sum, const double *want_lsm,
                          const double *want_sm, size_t R, size_t C) {
    compare(c, route, "max", gm, want_max, R, 0, EXACT, NULL);
    compare(c, route, "expsum", gs, want_sum, R, 0,
            tol_for(0.0, 2e-6, CLXENT_F32), NULL);
    compare(c, route, "log_softmax", gl, want_lsm, R * C, C,
            tol_for(0.0, 2e-6, c->dtype), NULL);
    compare(c, route, "softmax", gp, want_sm, R * C, C,
            tol_for(2e-6, 0.0, c->dtype), NULL);
}

static void ok_or_fail(clxent_context *ctx, const oc_case *c,
                       const char *route, const char *call,
                       clxent_status st) {
    if (st != CLXENT_STATUS_OK)
        fail_msg("%s [%s, %s] %s: %s: %s", c->name,
                 c->backend_host ? "host" : "device", route, call,
                 clxent_status_name(st), clxent_context_message(ctx));
}

/* ------------------------------------------------------------------ */
/* Inputs of one case. */

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
static float *rows_of_f(const oc_case *c, const float *t) {
    size_t C = c->cols, n = c->rows * C;
    float *out = malloc(n * sizeof(float) + 4);
    assert_non_null(out);
    for (size_t o = 0; o < c->outer; ++o)
        for (size_t k = 0; k < C; ++k)
            for (size_t i = 0; i < c->inner; ++i)
                out[(o * c->inner + i) * C + k] =
                    t[(o * C + k) * c->inner + i];
    return out;
}

static double *rows_of_d(const oc_case *c, const double *t) {
    size_t C = c->cols, n = c->rows * C;
    double *out = malloc(n * sizeof(double) + 8);
    assert_non_null(out);
    for (size_t o = 0; o < c->outer; ++o)
        for (size_t k = 0; k < C; ++k)
            for (size_t i = 0; i < c->inner; ++i)
                out[(o * c->inner + i) * C + k] =
                    t[(o * C + k) * c->inner + i];
    return out;
}

/* x' of the logit transforms, and dx'/dx, in double. */
static double transformed(const oc_case *c, double x, double *slope) {
    double a = c->ndim ? c->logit_scale : 1.0, cap = c->softcap;
    if (cap == 0) {
        if (slope) *slope = a;
        return a * x;
    }
    double t = tanh(a * x / cap);
    if (slope) *slope = a * (1 - t * t);
    return cap * t;
}

static oc_inputs load_inputs(const oc_case *c) {
    oc_inputs in;
    memset(&in, 0, sizeof in);
    size_t R = c->rows, C = c->cols;
    in.x = load_npy(c, "x.npy", NPY_F32, R * C);
    in.nloss = c->reduction == CLXENT_REDUCTION_NONE ? R : 1;
    in.zero_rows = calloc(R + 1, 1);
    assert_non_null(in.zero_rows);
    if (!strcmp(c->target, "i32") || !strcmp(c->target, "i64")) {
        int wide = !strcmp(c->target, "i64");
        in.index_dtype = wide ? CLXENT_I64 : CLXENT_I32;
        in.indices = load_npy(c, "targets.npy", wide ? NPY_I64 : NPY_I32, R);
        for (size_t r = 0; r < R; ++r) {
            int64_t y = wide ? ((int64_t *)in.indices)[r]
                             : ((int32_t *)in.indices)[r];
            in.zero_rows[r] = y == c->ignore_index;
        }
    } else if (!strcmp(c->target, "probs")) {
        in.probs = load_npy(c, "targets.npy", NPY_F32, R * C);
    }
    if (c->has_weights) in.weights = load_npy(c, "weights.npy", NPY_F32, C);
    if (c->has_grad_rows)
        in.grad_rows = load_npy(c, "grad_rows.npy", NPY_F32, R);
    in.x_rows = c->ndim ? rows_of_f(c, in.x) : in.x;
    in.probs_rows = c->ndim && in.probs ? rows_of_f(c, in.probs) : in.probs;
    return in;
}

static void free_inputs(oc_inputs *in) {
    if (in->x_rows != in->x) free(in->x_rows);
    if (in->probs_rows != in->probs) free(in->probs_rows);
    free(in->x);
    free(in->indices);
    free(in->probs);
    free(in->weights);
    free(in->grad_rows);
    free(in->zero_rows);
}

static clxent_loss_options options_of(const oc_case *c) {
    clxent_loss_options o;
    clxent_loss_options_init(&o);
    o.reduction = c->reduction;
    o.ignore_index = c->ignore_index;
    o.label_smoothing = c->eps;
    o.z_loss = c->z;
    o.grad_scale = c->G;
    o.normalizer = c->D;
    o.all_ignored_zero = c->aiz;
    return o;
}

/* The argument buffers shared by the ce and nll routes. */
typedef struct oc_args {
    held hx, hidx, hprobs, hw, hg;
    clxent_matrix x;
    clxent_targets targets;
    clxent_vector weights, grad_rows;
} oc_args;

static oc_args args_upload(clxent_context *ctx, const oc_case *c,
                           const oc_inputs *in, int strided) {
    oc_args a;
    memset(&a, 0, sizeof a);
    size_t R = c->rows, C = c->cols;
    a.x = matrix_in(ctx, in->x, R, C, c->dtype, strided ? IN_LAYOUT : CONTIG,
                    &a.hx);
    if (in->indices)
        a.targets.indices = vector_in(ctx, in->indices, R, in->index_dtype,
                                      strided ? 2 : 0, &a.hidx);
    if (in->probs)
        a.targets.probs = matrix_in(ctx, in->probs, R, C, c->dtype,
                                    strided ? PROBS_LAYOUT : CONTIG,
                                    &a.hprobs);
    if (in->weights)
        a.weights = vector_in(ctx, in->weights, C, CLXENT_F32,
                              strided ? 1 : 0, &a.hw);
    if (in->grad_rows)
        a.grad_rows = vector_in(ctx, in->grad_rows, R, CLXENT_F32,
                                strided ? 3 : 0, &a.hg);
    return a;
}

static void args_release(oc_args *a) {
    release(&a->hx);
    release(&a->hidx);
    release(&a->hprobs);
    release(&a->hw);
    release(&a->hg);
}

/* ------------------------------------------------------------------ */
/* Loss routes: cross-entropy, and the NLL gather over log-probabilities. */

/* Expected values from the oracle (lse NULL for NLL). */
typedef struct ce_expect {
    double *loss, *lse, *grad;
} ce_expect;

/* The outputs a route wrote (NULL: not written) against e. */
static void check_route(const oc_case *c, const oc_inputs *in,
                        const ce_expect *e, const char *route,
                        const float *loss, const float *lse,
                        const float *grad, const double *grad_extra) {
    tol tl = tol_for(0.0, 2e-6, CLXENT_F32);
    tol tg = tol_for(2e-6, 0.0, c->dtype);
    if (loss)
        compare(c, route, "loss", loss, e->loss, in->nloss, 0, tl,
                c->reduction == CLXENT_REDUCTION_NONE ? in->zero_rows
                                                      : NULL);
    if (lse) compare(c, route, "lse", lse, e->lse, c->rows, 0, tl, NULL);
    if (grad)
        compare_x(c, route, "grad", grad, e->grad, c->rows * c->cols,
                  c->cols, tg, in->zero_rows, grad_extra);
}

/* Backward takes the lse that forward saved in f32, so its softmax is
 * p * exp(lse - fl32(lse)), off by up to 2^-24 * |lse| relative: a limit
 * of the API (lse is f32), not of the implementation, which matters for
 * wide logits (|lse| ~ 100). The forward+backward gradient bound adds
 * 2^-24 * |lse[r]| * |d grad[r][c] / d lse[r]|, with
 * d grad / d lse = -G*s*p*(K + 2*zeta*lse) + 2*G*s*zeta*p, K = sum_j a_j
 * (docs/semantics.md's gradient). */
static double *saved_lse_slack(const oc_case *c, const oc_inputs *in,
                               const double *lse) {
    size_t R = c->rows, C = c->cols;
    double *slack = calloc(R * C + 1, sizeof(double));
    assert_non_null(slack);
    double eps = c->eps, z = c->z, wsum = 0.0, W = 0.0;
    for (size_t k = 0; k < C; ++k) wsum += in->weights ? in->weights[k] : 1;
    for (size_t r = 0; r < R; ++r) {
        if (in->zero_rows[r]) continue;
        if (in->probs) {
            W += 1.0;
        } else {
            int64_t y = in->index_dtype == CLXENT_I64
                            ? ((const int64_t *)in->indices)[r]
                            : ((const int32_t *)in->indices)[r];
            W += in->weights ? in->weights[y] : 1.0;
        }
    }
    double s = 1.0;
    if (c->reduction == CLXENT_REDUCTION_MEAN)
        s = c->D != 0 ? 1.0 / c->D : W > 0 ? 1.0 / W : 0.0;
    for (size_t r = 0; r < R; ++r) {
        if (in->zero_rows[r] || !isfinite(lse[r])) continue;
        double K = 0.0;
        if (in->probs) {
            for (size_t k = 0; k < C; ++k)
                K += (in->weights ? in->weights[k] : 1.0) *
                     ((1 - eps) * in->probs_rows[r * C + k] +
                      eps / (double)C);
        } else {
            int64_t y = in->index_dtype == CLXENT_I64
                            ? ((const int64_t *)in->indices)[r]
                            : ((const int32_t *)in->indices)[r];
            K = (1 - eps) * (in->weights ? in->weights[y] : 1.0) +
                eps / (double)C * wsum;
        }
        double G = c->G * (in->grad_rows ? in->grad_rows[r] : 1.0);
        double coef = fabs(G * s) * (fabs(K) + 2 * fabs(z * lse[r]) +
                                     2 * fabs(z));
        for (size_t k = 0; k < C; ++k) {
            /* the gradient on x' times dx'/dx (1 without transforms) */
            double slope = 1.0;
            double p = exp(transformed(c, in->x_rows[r * C + k], &slope) -
                           lse[r]);
            if (isfinite(p))
                slack[r * C + k] = ldexp(1.0, -24) * fabs(lse[r]) * p * coef *
                                   fabs(slope) * 1.01;
        }
    }
    return slack;
}

/* One route: the operations first and then second (OPS_COUNT: none) on
 * one set of arguments, the backward reading the lse the forward wrote;
 * strided: offsets and row strides on every argument; in_place: the
 * gradient overwrites the strided logits. Checks what the route wrote. */
static void run_route(clxent_context *ctx, const oc_case *c,
                      const oc_inputs *in, const ce_expect *e,
                      const char *route, ops_id first, ops_id second,
                      int strided, int in_place) {
    const ops_desc *ops[2] = {&ops_table[first],
                              second == OPS_COUNT ? NULL
                                                  : &ops_table[second]};
    clxent_loss_options opt = options_of(c);
    oc_args a = args_upload(ctx, c, in, strided);
    held hl, hs, hgrad;
    clxent_vector loss = vector_in(ctx, NULL, in->nloss, CLXENT_F32,
                                   strided ? 1 : 0, &hl);
    clxent_vector lse = vector_in(ctx, NULL, c->rows, CLXENT_F32,
                                  strided ? 2 : 0, &hs);
    clxent_matrix grad;
    if (in_place) {
        grad = a.x;
        hgrad = a.hx;
    } else {
        grad = matrix_in(ctx, NULL, c->rows, c->cols, c->dtype,
                         strided ? OUT_LAYOUT : CONTIG, &hgrad);
    }
    ops_args args = {&a.x, &a.targets, &a.targets.indices, &a.weights, &opt,
                     &a.grad_rows, &lse, &loss, &lse, &grad, NULL};
    unsigned io = 0;
    for (int k = 0; k < 2 && ops[k]; ++k) {
        opt.in_place = in_place && (ops[k]->io & OPS_GRAD);
        ok_or_fail(ctx, c, route, ops[k]->function,
                   ops[k]->enqueue(ctx, &args));
        io |= ops[k]->io;
    }
    ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
    float *gl = vector_read(ctx, &loss, &hl, "loss");
    float *gs = io & OPS_LSE_OUT ? vector_read(ctx, &lse, &hs, "lse") : NULL;
    float *gg = matrix_read(ctx, &grad, &hgrad, "grad");
    double *slack = io & OPS_LSE_IN ? saved_lse_slack(c, in, e->lse) : NULL;
    check_route(c, in, e, route, gl, gs, gg, slack);
    free(slack);
    free(gl);
    free(gs);
    free(gg);
    release(&hl);
    release(&hs);
    if (!in_place) release(&hgrad);
    args_release(&a);
}

static void ce_host_arrays(clxent_context *ctx, const oc_case *c,
                           const oc_inputs *in, const ce_expect *e) {
    const char *route = "host arrays";
    clxent_loss_options opt = options_of(c);
    size_t n = c->rows * c->cols;
    void *x = fx_to_dtype(in->x, n, c->dtype);
    void *probs = in->probs ? fx_to_dtype(in->probs, n, c->dtype) : NULL;
    size_t es = clxent_dtype_size(c->dtype);
    float *loss = malloc(in->nloss * sizeof(float) + 4);
    float *lse = malloc(c->rows * sizeof(float) + 4);
    void *grad = malloc(n * es + 4);
    assert_non_null(loss);
    assert_non_null(lse);
    assert_non_null(grad);
    ok_or_fail(ctx, c, route, "clxent_cross_entropy_host",
               clxent_cross_entropy_host(
                   ctx, c->rows, c->cols, c->dtype, x,
                   in->indices ? in->index_dtype : c->dtype,
                   in->indices ? in->indices : probs, in->weights, &opt, loss,
                   lse, grad));
    float *gg = fx_from_dtype(grad, n, c->dtype);
    check_route(c, in, e, route, loss, lse, gg, NULL);
    free(gg);
    free(grad);
    free(lse);
    free(loss);
    free(probs);
    free(x);
}

static void run_ce(clxent_context *ctx, const oc_case *c,
                   const oc_inputs *in) {
    ce_expect e;
    e.loss = load_expect(c, "expect_loss.npy", in->nloss);
    e.lse = load_expect(c, "expect_lse.npy", c->rows);
    e.grad = load_expect(c, "expect_grad.npy", c->rows * c->cols);
    run_route(ctx, c, in, &e, "fused", OPS_CE_FUSED, OPS_COUNT, 0, 0);
    run_route(ctx, c, in, &e, "forward+backward", OPS_CE_FORWARD,
              OPS_CE_BACKWARD, 0, 0);
    run_route(ctx, c, in, &e, "fused strided", OPS_CE_FUSED, OPS_COUNT, 1, 0);
    run_route(ctx, c, in, &e, "fused in place", OPS_CE_FUSED, OPS_COUNT, 1,
              1);
    if (!in->grad_rows) ce_host_arrays(ctx, c, in, &e);
    free(e.loss);
    free(e.lse);
    free(e.grad);
}

/* ------------------------------------------------------------------ */
/* NLL gather over log-probabilities. */

static void run_nll(clxent_context *ctx, const oc_case *c,
                    const oc_inputs *in) {
    ce_expect e = {load_expect(c, "expect_loss.npy", in->nloss), NULL,
                   load_expect(c, "expect_grad.npy", c->rows * c->cols)};
    run_route(ctx, c, in, &e, "nll", OPS_NLL, OPS_NLL_BACKWARD, 0, 0);
    run_route(ctx, c, in, &e, "nll strided", OPS_NLL, OPS_NLL_BACKWARD, 1, 0);
    free(e.loss);
    free(e.grad);
}

/* ------------------------------------------------------------------ */
/* Primitives: row max, exp-sum, log-softmax, softmax. */

static void run_softmax(clxent_context *ctx, const oc_case *c,
                        const oc_inputs *in) {
    size_t R = c->rows, C = c->cols;
    double *want_max = load_expect(c, "expect_max.npy", R);
    double *want_sum = load_expect(c, "expect_expsum.npy", R);
    double *want_lsm = load_expect(c, "expect_logsoftmax.npy", R * C);
    double *want_sm = load_expect(c, "expect_softmax.npy", R * C);
    for (int strided = 0; strided < 2; ++strided) {
        const char *route = strided ? "primitives strided" : "primitives";
        held hx, hm, hs, hl, hp;
        clxent_matrix x = matrix_in(ctx, in->x, R, C, c->dtype,
                                    strided ? IN_LAYOUT : CONTIG, &hx);
        clxent_vector mx =
            vector_in(ctx, NULL, R, CLXENT_F32, strided ? 2 : 0, &hm);
        clxent_vector sum =
            vector_in(ctx, NULL, R, CLXENT_F32, strided ? 1 : 0, &hs);
        clxent_matrix lsm = matrix_in(ctx, NULL, R, C, c->dtype,
                                      strided ? OUT_LAYOUT : CONTIG, &hl);
        clxent_matrix sm = matrix_in(ctx, NULL, R, C, c->dtype,
                                     strided ? PROBS_LAYOUT : CONTIG, &hp);
        ok_or_fail(ctx, c, route, "clxent_row_max",
                   clxent_row_max(ctx, &x, &mx, NULL));
        ok_or_fail(ctx, c, route, "clxent_row_expsum",
                   clxent_row_expsum(ctx, &x, &mx, &sum, NULL));
        ok_or_fail(ctx, c, route, "clxent_log_softmax",
                   clxent_log_softmax(ctx, &x, &lsm, NULL));
        ok_or_fail(ctx, c, route, "clxent_softmax",
                   clxent_softmax(ctx, &x, &sm, NULL));
        ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
        float *gm = vector_read(ctx, &mx, &hm, "row max");
        float *gs = vector_read(ctx, &sum, &hs, "exp-sum");
        float *gl = matrix_read(ctx, &lsm, &hl, "log-softmax");
        float *gp = matrix_read(ctx, &sm, &hp, "softmax");
        compare_stats(c, route, gm, gs, gl, gp, want_max, want_sum, want_lsm,
                      want_sm, R, C);
        free(gm);
        free(gs);
        free(gl);
        free(gp);
        release(&hx);
        release(&hm);
        release(&hs);
        release(&hl);
        release(&hp);
    }
    free(want_max);
    free(want_sum);
    free(want_lsm);
    free(want_sm);
}

/* ------------------------------------------------------------------ */
/* Tensor cases (the *_nd calls): PyTorch's (N, C, d1..dk) and (C)
 * inputs, softmax over any dim of a 4-d tensor, softcap and logit_scale,
 * and z_loss_out. The files hold (outer, C, inner) in torch order; the
 * checks run on the rows x C view (row o*inner + i). */

/* Where a tensor lies in its buffer: an element offset, and padding that
 * the library must neither read (inputs: NaN) nor write (outputs). The
 * strided layout is channels-last, (outer, inner, C) in memory, so rows
 * are contiguous and the class stride is 1, unlike the contiguous
 * (N, C, d..) tensor whose class stride is inner. */
typedef struct nd_layout {
    size_t offset;
    int channels_last;
    size_t pad_inner, pad_outer; /* extra elements per step of each axis */
} nd_layout;

static const nd_layout ND_CONTIG = {0, 0, 0, 0};
static const nd_layout ND_IN = {3, 1, 1, 2};
static const nd_layout ND_OUT = {5, 1, 2, 1};
static const nd_layout ND_ROWS = {2, 0, 1, 3};

static size_t nd_pos(const clxent_tensor *t, size_t o, size_t k, size_t i) {
    return t->offset + o * t->outer_stride + k * t->class_stride +
           i * t->inner_stride;
}

/* The elements of buffer n covers: offset + the furthest element + 1. */
static size_t nd_extent(const clxent_tensor *t) {
    if (!t->outer || !t->classes || !t->inner) return t->offset + 1;
    return nd_pos(t, t->outer - 1, t->classes - 1, t->inner - 1) + 1;
}

/* A tensor of outer x classes x inner and dtype in layout L; values (in
 * torch order, f32 for float dtypes, raw for int dtypes) or NULL for an
 * output prefilled with 0x7f bytes. */
static clxent_tensor tensor_in(clxent_context *ctx, const oc_case *c,
                               const void *values, size_t outer,
                               size_t classes, size_t inner,
                               clxent_dtype dtype, nd_layout L, held *h) {
    clxent_tensor t = {NULL, L.offset, outer, classes, inner, 0, 0, 0,
                       dtype, 0, {0}};
    if (L.channels_last) {
        t.class_stride = 1;
        t.inner_stride = classes + L.pad_inner;
        t.outer_stride = inner * t.inner_stride + L.pad_outer;
    } else {
        t.inner_stride = 1;
        t.class_stride = inner + L.pad_inner;
        t.outer_stride = classes * t.class_stride + L.pad_outer;
    }
    /* PyTorch's d1..dk, for the messages (not on a reduced loss) */
    if (inner == c->inner && c->ndim > c->dim + 1 &&
        c->ndim - c->dim - 1 <= CLXENT_MAX_INNER_DIMS) {
        t.inner_rank = c->ndim - c->dim - 1;
        for (unsigned k = 0; k < t.inner_rank; ++k)
            t.inner_dims[k] = c->shape[c->dim + 1 + k];
    }
    size_t n = nd_extent(&t), es = clxent_dtype_size(dtype);
    int is_float = dtype == CLXENT_F32 || dtype == CLXENT_F16 ||
                   dtype == CLXENT_BF16;
    if (!values) {
        *h = upload_bytes(ctx, NULL, n * es);
    } else if (is_float) {
        float *staged = malloc(n * sizeof(float) + 4);
        assert_non_null(staged);
        for (size_t e = 0; e < n; ++e) staged[e] = NAN;
        const float *v = values;
        for (size_t o = 0; o < outer; ++o)
            for (size_t k = 0; k < classes; ++k)
                for (size_t i = 0; i < inner; ++i)
                    staged[nd_pos(&t, o, k, i)] =
                        v[(o * classes + k) * inner + i];
        void *converted = fx_to_dtype(staged, n, dtype);
        *h = upload_bytes(ctx, converted, n * es);
        free(converted);
        free(staged);
    } else {
        unsigned char *staged = malloc(n * es + 1);
        assert_non_null(staged);
        memset(staged, 0x7f, n * es);
        const unsigned char *v = values;
        for (size_t o = 0; o < outer; ++o)
            for (size_t k = 0; k < classes; ++k)
                for (size_t i = 0; i < inner; ++i)
                    memcpy(staged + nd_pos(&t, o, k, i) * es,
                           v + ((o * classes + k) * inner + i) * es, es);
        *h = upload_bytes(ctx, staged, n * es);
        free(staged);
    }
    t.buffer = h->buf;
    return t;
}

/* Reads a float tensor back in torch order as f32, checking that every
 * element outside it kept the bytes that were uploaded. */
static float *tensor_read(clxent_context *ctx, const clxent_tensor *t,
                          const held *h, const char *what) {
    unsigned char *all = fx_download(ctx, h->buf);
    size_t es = clxent_dtype_size(t->dtype), n = h->bytes / es;
    unsigned char *inside = calloc(n + 1, 1);
    assert_non_null(inside);
    size_t count = t->outer * t->classes * t->inner;
    for (size_t o = 0; o < t->outer; ++o)
        for (size_t k = 0; k < t->classes; ++k)
            for (size_t i = 0; i < t->inner; ++i)
                inside[nd_pos(t, o, k, i)] = 1;
    for (size_t e = 0; e < n; ++e)
        if (!inside[e] && memcmp(all + e * es, h->image + e * es, es) != 0)
            fail_msg("%s: element %zu outside the tensor was overwritten",
                     what, e);
    float *f = fx_from_dtype(all, n, t->dtype);
    float *out = malloc(count * sizeof(float) + 4);
    assert_non_null(out);
    for (size_t o = 0; o < t->outer; ++o)
        for (size_t k = 0; k < t->classes; ++k)
            for (size_t i = 0; i < t->inner; ++i)
                out[(o * t->classes + k) * t->inner + i] =
                    f[nd_pos(t, o, k, i)];
    free(f);
    free(inside);
    free(all);
    return out;
}

static clxent_options nd_options(const oc_case *c) {
    clxent_options o;
    clxent_options_init(&o);
    o.loss = options_of(c);
    o.softcap = c->softcap;
    o.logit_scale = c->logit_scale;
    return o;
}

typedef struct nd_expect {
    double *loss, *lse, *grad, *zloss; /* grad as rows x C */
} nd_expect;

/* One route through the tensor calls, as run_route: first then second,
 * strided (channels-last with padding everywhere), in place (the
 * gradient overwrites the strided logits). */
static void run_nd_route(clxent_context *ctx, const oc_case *c,
                         const oc_inputs *in, const nd_expect *e,
                         const char *route, ops_id first, ops_id second,
                         int strided, int in_place) {
    const ops_desc *ops[2] = {&ops_table[first],
                              second == OPS_COUNT ? NULL
                                                  : &ops_table[second]};
    size_t O = c->outer, C = c->cols, I = c->inner;
    int none = c->reduction == CLXENT_REDUCTION_NONE;
    size_t lo = none ? O : 1, li = none ? I : 1;
    nd_layout LX = strided ? ND_IN : ND_CONTIG,
              LG = strided ? ND_OUT : ND_CONTIG,
              LR = strided ? ND_ROWS : ND_CONTIG;
    clxent_options opt = nd_options(c);
    held hx, hidx = {0}, hprobs = {0}, hw = {0}, hg = {0}, hl, hs, hz, hgrad;
    clxent_tensor x = tensor_in(ctx, c, in->x, O, C, I, c->dtype, LX, &hx);
    clxent_tensor_targets tg;
    memset(&tg, 0, sizeof tg);
    if (in->indices)
        tg.indices = tensor_in(ctx, c, in->indices, O, 1, I, in->index_dtype,
                               LR, &hidx);
    if (in->probs)
        tg.probs = tensor_in(ctx, c, in->probs, O, C, I, c->dtype, LX,
                             &hprobs);
    clxent_vector w = {0};
    if (in->weights)
        w = vector_in(ctx, in->weights, C, CLXENT_F32, strided ? 1 : 0, &hw);
    clxent_tensor gr;
    memset(&gr, 0, sizeof gr);
    if (in->grad_rows)
        gr = tensor_in(ctx, c, in->grad_rows, O, 1, I, CLXENT_F32, LR, &hg);
    clxent_tensor loss = tensor_in(ctx, c, NULL, lo, 1, li, CLXENT_F32,
                                   none ? LR : ND_CONTIG, &hl);
    clxent_tensor zl = tensor_in(ctx, c, NULL, lo, 1, li, CLXENT_F32,
                                 none ? LR : ND_CONTIG, &hz);
    clxent_tensor lse = tensor_in(ctx, c, NULL, O, 1, I, CLXENT_F32, LR, &hs);
    clxent_tensor grad;
    if (in_place) {
        grad = x;
        hgrad = hx;
    } else {
        grad = tensor_in(ctx, c, NULL, O, C, I, c->dtype, LG, &hgrad);
    }
    ops_nd_args args = {&x,   &tg,  &tg.indices, &w,    &opt, &gr,
                        &lse, &loss, &lse,       &zl,   &grad, NULL};
    unsigned io = 0;
    for (int k = 0; k < 2 && ops[k]; ++k) {
        opt.loss.in_place = in_place && (ops[k]->io & OPS_GRAD);
        ok_or_fail(ctx, c, route, ops[k]->function,
                   ops[k]->enqueue_nd(ctx, &args));
        io |= ops[k]->io;
    }
    ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
    float *gl = tensor_read(ctx, &loss, &hl, "loss");
    float *gz = tensor_read(ctx, &zl, &hz, "z_loss_out");
    float *gs = io & OPS_LSE_OUT ? tensor_read(ctx, &lse, &hs, "lse") : NULL;
    float *gg_t = tensor_read(ctx, &grad, &hgrad, "grad");
    float *gg = rows_of_f(c, gg_t);
    double *slack = io & OPS_LSE_IN ? saved_lse_slack(c, in, e->lse) : NULL;
    ce_expect ce = {e->loss, e->lse, e->grad};
    check_route(c, in, &ce, route, gl, gs, gg, slack);
    if (e->zloss && (io & OPS_LSE_OUT)) /* forward and fused write it */
        compare(c, route, "z_loss_out", gz, e->zloss, in->nloss, 0,
                tol_for(0.0, 2e-6, CLXENT_F32), none ? in->zero_rows : NULL);
    free(slack);
    free(gl);
    free(gz);
    free(gs);
    free(gg_t);
    free(gg);
    release(&hl);
    release(&hz);
    release(&hs);
    if (!in_place) release(&hgrad);
    release(&hx);
    release(&hidx);
    release(&hprobs);
    release(&hw);
    release(&hg);
}

static void run_ce_nd(clxent_context *ctx, const oc_case *c,
                      const oc_inputs *in) {
    double *grad = load_expect(c, "expect_grad.npy", c->rows * c->cols);
    nd_expect e = {load_expect(c, "expect_loss.npy", in->nloss),
                   load_expect(c, "expect_lse.npy", c->rows),
                   rows_of_d(c, grad),
                   load_expect(c, "expect_zloss.npy", in->nloss)};
    free(grad);
    run_nd_route(ctx, c, in, &e, "nd fused", OPS_CE_FUSED, OPS_COUNT, 0, 0);
    run_nd_route(ctx, c, in, &e, "nd forward+backward", OPS_CE_FORWARD,
                 OPS_CE_BACKWARD, 0, 0);
    run_nd_route(ctx, c, in, &e, "nd fused strided", OPS_CE_FUSED, OPS_COUNT,
                 1, 0);
    run_nd_route(ctx, c, in, &e, "nd forward+backward strided",
                 OPS_CE_FORWARD, OPS_CE_BACKWARD, 1, 0);
    run_nd_route(ctx, c, in, &e, "nd fused in place", OPS_CE_FUSED,
                 OPS_COUNT, 1, 1);
    free(e.loss);
    free(e.lse);
    free(e.grad);
    free(e.zloss);
}

static void run_nll_nd(clxent_context *ctx, const oc_case *c,
                       const oc_inputs *in) {
    double *grad = load_expect(c, "expect_grad.npy", c->rows * c->cols);
    nd_expect e = {load_expect(c, "expect_loss.npy", in->nloss), NULL,
                   rows_of_d(c, grad), NULL};
    free(grad);
    run_nd_route(ctx, c, in, &e, "nd nll", OPS_NLL, OPS_NLL_BACKWARD, 0, 0);
    run_nd_route(ctx, c, in, &e, "nd nll strided", OPS_NLL,
                 OPS_NLL_BACKWARD, 1, 0);
    free(e.loss);
    free(e.grad);
}

static void run_softmax_nd(clxent_context *ctx, const oc_case *c,
                           const oc_inputs *in) {
    size_t O = c->outer, C = c->cols, I = c->inner, R = c->rows;
    double *want_max = load_expect(c, "expect_max.npy", R);
    double *want_sum = load_expect(c, "expect_expsum.npy", R);
    double *lsm_t = load_expect(c, "expect_logsoftmax.npy", R * C);
    double *sm_t = load_expect(c, "expect_softmax.npy", R * C);
    double *want_lsm = rows_of_d(c, lsm_t), *want_sm = rows_of_d(c, sm_t);
    free(lsm_t);
    free(sm_t);
    clxent_options opt = nd_options(c);
    for (int strided = 0; strided < 2; ++strided) {
        const char *route = strided ? "nd primitives strided"
                                    : "nd primitives";
        held hx, hm, hs, hl, hp;
        clxent_tensor x = tensor_in(ctx, c, in->x, O, C, I, c->dtype,
                                    strided ? ND_IN : ND_CONTIG, &hx);
        clxent_tensor mx = tensor_in(ctx, c, NULL, O, 1, I, CLXENT_F32,
                                     strided ? ND_ROWS : ND_CONTIG, &hm);
        clxent_tensor sum = tensor_in(ctx, c, NULL, O, 1, I, CLXENT_F32,
                                      strided ? ND_ROWS : ND_CONTIG, &hs);
        clxent_tensor lsm = tensor_in(ctx, c, NULL, O, C, I, c->dtype,
                                      strided ? ND_OUT : ND_CONTIG, &hl);
        /* softmax in the contiguous (N, C, d..) layout either way: the
         * input and output layouts need not match */
        clxent_tensor sm = tensor_in(ctx, c, NULL, O, C, I, c->dtype,
                                     strided ? ND_ROWS : ND_CONTIG, &hp);
        ok_or_fail(ctx, c, route, "clxent_row_max_nd",
                   clxent_row_max_nd(ctx, &x, &mx, NULL));
        ok_or_fail(ctx, c, route, "clxent_row_expsum_nd",
                   clxent_row_expsum_nd(ctx, &x, &mx, &sum, NULL));
        ok_or_fail(ctx, c, route, "clxent_log_softmax_nd",
                   clxent_log_softmax_nd(ctx, &x, &opt, &lsm, NULL));
        ok_or_fail(ctx, c, route, "clxent_softmax_nd",
                   clxent_softmax_nd(ctx, &x, &opt, &sm, NULL));
        ok_or_fail(ctx, c, route, "clxent_finish", clxent_finish(ctx));
        float *gm = tensor_read(ctx, &mx, &hm, "row max");
        float *gs = tensor_read(ctx, &sum, &hs, "exp-sum");
        float *gl_t = tensor_read(ctx, &lsm, &hl, "log-softmax");
        float *gp_t = tensor_read(ctx, &sm, &hp, "softmax");
        float *gl = rows_of_f(c, gl_t), *gp = rows_of_f(c, gp_t);
        compare_stats(c, route, gm, gs, gl, gp, want_max, want_sum, want_lsm,
                      want_sm, R, C);
        free(gm);
        free(gs);
        free(gl_t);
        free(gp_t);
        free(gl);
        free(gp);
        release(&hx);
        release(&hm);
        release(&hs);
        release(&hl);
        release(&hp);
    }
    free(want_max);
    free(want_sum);
    free(want_lsm);
    free(want_sm);
}

static void test_case(void **state) {
    const oc_case *c = *state;
    /* one context per backend, reused by every case */
    clxent_context *ctx = c->backend_host ? fx_host() : fx_device();
    if (!ctx) return;
    oc_inputs in = load_inputs(c);
    if (!strcmp(c->op, "ce"))
        run_ce(ctx, c, &in);
    else if (!strcmp(c->op, "nll"))
        run_nll(ctx, c, &in);
    else if (!strcmp(c->op, "softmax"))
        run_softmax(ctx, c, &in);
    else if (!strcmp(c->op, "ce_nd"))
        run_ce_nd(ctx, c, &in);
    else if (!strcmp(c->op, "nll_nd"))
        run_nll_nd(ctx, c, &in);
    else if (!strcmp(c->op, "softmax_nd"))
        run_softmax_nd(ctx, c, &in);
    else
        fail_msg("%s: unknown op %s", c->name, c->op);
    free_inputs(&in);
}

/* ------------------------------------------------------------------ */
/* Manifest. */

static int parse_dtype(const char *s, clxent_dtype *out) {
    if (!strcmp(s, "f32")) *out = CLXENT_F32;
    else if (!strcmp(s, "f16")) *out = CLXENT_F16;
    else if (!strcmp(s, "bf16")) *out = CLXENT_BF16;
    else return -1;
    return 0;
}

static int parse_reduction(const char *s, clxent_reduction *out) {
    if (!strcmp(s, "none")) *out = CLXENT_REDUCTION_NONE;
    else if (!strcmp(s, "sum")) *out = CLXENT_REDUCTION_SUM;
    else if (!strcmp(s, "mean")) *out = CLXENT_REDUCTION_MEAN;
    else return -1;
    return 0;
}

/* The key=value columns after the fixed ones (tensor cases): shape=AxBx..
 * (torch's), dim=K (the class axis), softcap=, logit_scale=. Fills
 * outer and inner and checks them against rows and cols. */
static int parse_extras(const char *p, oc_case *c) {
    c->logit_scale = 1.0f;
    char key[32], value[128];
    int used = 0, has_dim = 0;
    while (sscanf(p, " %31[^= \n]=%127s%n", key, value, &used) == 2) {
        p += used;
        if (!strcmp(key, "shape")) {
            char *s = value, *end;
            for (c->ndim = 0; c->ndim < 8; ++c->ndim) {
                c->shape[c->ndim] = strtoull(s, &end, 10);
                if (end == s) return -1;
                s = end;
                if (*s != 'x') break;
                ++s;
            }
            if (*s) return -1;
            ++c->ndim;
        } else if (!strcmp(key, "dim")) {
            c->dim = (unsigned)strtoul(value, NULL, 10);
            has_dim = 1;
        } else if (!strcmp(key, "softcap")) {
            c->softcap = strtof(value, NULL);
        } else if (!strcmp(key, "logit_scale")) {
            c->logit_scale = strtof(value, NULL);
        } else {
            return -1;
        }
    }
    if (sscanf(p, " %1s", key) == 1) return -1; /* junk left over */
    int nd = strstr(c->op, "_nd") != NULL;
    if (nd != (c->ndim > 0) || (nd && (!has_dim || c->dim >= c->ndim)))
        return -1;
    if (!nd) return 0;
    c->outer = c->inner = 1;
    for (unsigned k = 0; k < c->dim; ++k) c->outer *= c->shape[k];
    for (unsigned k = c->dim + 1; k < c->ndim; ++k) c->inner *= c->shape[k];
    return c->rows == c->outer * c->inner && c->cols == c->shape[c->dim]
               ? 0
               : -1;
}

/* Reads the manifest; returns the number of cases or -1 with a message. */
static long read_manifest(oc_case **out) {
    const char *path = ORACLE_DIR "/manifest.txt";
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    size_t cap = 64, n = 0;
    oc_case *cases = malloc(cap * sizeof *cases);
    char line[1024];
    long lineno = 0;
    while (cases && fgets(line, sizeof line, f)) {
        ++lineno;
        if (line[0] == '#' || line[0] == '\n') continue;
        oc_case c;
        memset(&c, 0, sizeof c);
        char dtype[8], reduction[8];
        int used = 0;
        int got = sscanf(line,
                         "%95s %15s %7s %7s %zu %zu %7s %" SCNd64
                         " %f %f %f %f %d %d %d%n",
                         c.name, c.op, dtype, c.target, &c.rows, &c.cols,
                         reduction, &c.ignore_index, &c.eps, &c.z, &c.G,
                         &c.D, &c.aiz, &c.has_weights, &c.has_grad_rows,
                         &used);
        if (got != 15 || parse_dtype(dtype, &c.dtype) ||
            parse_reduction(reduction, &c.reduction) ||
            parse_extras(line + used, &c)) {
            fprintf(stderr, "%s:%ld: malformed line\n", path, lineno);
            free(cases);
            fclose(f);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            oc_case *grown = realloc(cases, cap * sizeof *cases);
            if (!grown) {
                free(cases);
                cases = NULL;
                break;
            }
            cases = grown;
        }
        cases[n++] = c;
    }
    fclose(f);
    if (!cases || n == 0) {
        fprintf(stderr, "%s: %s\n", path, cases ? "no cases" : "no memory");
        free(cases);
        return -1;
    }
    *out = cases;
    return (long)n;
}

int main(void) {
    oc_case *cases = NULL;
    long n = read_manifest(&cases);
    if (n < 0) return 1;
    /* Each case twice: host backend, then the OpenCL device. */
    size_t total = 2 * (size_t)n;
    oc_case *entries = malloc(total * sizeof *entries);
    struct CMUnitTest *tests = calloc(total, sizeof *tests);
    char (*names)[128] = malloc(total * sizeof *names);
    if (!entries || !tests || !names) return 1;
    for (size_t i = 0; i < total; ++i) {
        int host = i < (size_t)n;
        entries[i] = cases[i % (size_t)n];
        entries[i].backend_host = host;
        snprintf(names[i], sizeof names[i], "%s/%s", host ? "host" : "device",
                 entries[i].name);
        tests[i].name = names[i];
        tests[i].test_func = test_case;
        tests[i].initial_state = &entries[i];
    }
    int failed = _cmocka_run_group_tests("oracle", tests, total, NULL,
                                         fx_group_teardown);
    free(names);
    free(tests);
    free(entries);
    free(cases);
    return failed;
}
