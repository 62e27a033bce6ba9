/* Helpers shared by test_device_vs_host.c, test_fused.c and
 * test_cpu_kernels.c: one loss case
 * (shape, dtypes, options, strided layouts), its random inputs, and the
 * same operation run on any context with the outputs read back as f32.
 * Include after fixtures.h. */
#ifndef CLXENT_TEST_OPS_HARNESS_H
#define CLXENT_TEST_OPS_HARNESS_H

#include "fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The group's contexts: the host one made in setup, the device one on
 * first use (so host-only cases run, and skip or fail per
 * CLXENT_REQUIRE_DEVICE, only where a device is asked for). */
static clxent_context *g_dev, *g_host;

static inline int setup(void **state) {
    (void)state;
    g_host = fx_host_context();
    return 0;
}

static inline int teardown(void **state) {
    (void)state;
    clxent_context_destroy(g_dev);
    clxent_context_destroy(g_host);
    g_dev = g_host = NULL;
    return 0;
}

static inline clxent_context *device(void) {
    if (!g_dev) g_dev = fx_device_context();
    return g_dev;
}

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
static inline hx_case hx_base_case(size_t R, size_t C, clxent_dtype dt,
                                   uint64_t seed) {
    hx_case c;
    memset(&c, 0, sizeof c);
    c.R = R;
    c.C = C;
    c.dt = dt;
    c.idt = CLXENT_I32;
    c.ii = -100;
    c.G = 1.0f;
    c.red = CLXENT_REDUCTION_MEAN;
    c.seed = seed;
    return c;
}

static inline size_t hx_nloss(const hx_case *c) {
    return c->red == CLXENT_REDUCTION_NONE ? c->R : 1;
}

static inline float hx_round(float v, clxent_dtype dt) {
    if (dt == CLXENT_F16) return clxent_f16_to_f32(clxent_f32_to_f16(v));
    if (dt == CLXENT_BF16) return clxent_bf16_to_f32(clxent_f32_to_bf16(v));
    return v;
}

static inline hx_data hx_make(const hx_case *c) {
    hx_data d;
    fx_rng rng = fx_rng_seed(c->seed);
    size_t n = c->R * c->C;
    d.x = malloc((n ? n : 1) * sizeof(float));
    d.t = malloc((n ? n : 1) * sizeof(float));
    d.w = malloc((c->C ? c->C : 1) * sizeof(float));
    d.gr = malloc((c->R ? c->R : 1) * sizeof(float));
    d.y = malloc((c->R ? c->R : 1) * sizeof(int64_t));
    assert_non_null(d.x);
    assert_non_null(d.t);
    assert_non_null(d.w);
    assert_non_null(d.gr);
    assert_non_null(d.y);
    for (size_t i = 0; i < n; ++i)
        d.x[i] = hx_round((float)fx_uniform(&rng, -6.0, 6.0), c->dt);
    for (size_t r = 0; r < c->R; ++r) {
        double sum = 0.0;
        for (size_t j = 0; j < c->C; ++j) {
            double v = fx_uniform(&rng, 0.0, 1.0);
            v = v * v * v; /* a few large, many small */
            d.t[r * c->C + j] = (float)v;
            sum += v;
        }
        for (size_t j = 0; j < c->C; ++j)
            d.t[r * c->C + j] =
                hx_round((float)(d.t[r * c->C + j] / sum), c->dt);
        d.y[r] = (int64_t)(fx_next(&rng) % (c->C ? c->C : 1));
        if (c->ignore && fx_next(&rng) % 4 == 0) d.y[r] = c->ii;
        d.gr[r] = (float)fx_uniform(&rng, -2.0, 2.0);
    }
    for (size_t j = 0; j < c->C; ++j)
        d.w[j] = (float)fx_uniform(&rng, 0.25, 2.0);
    return d;
}

static inline void hx_free(hx_data *d) {
    free(d->x);
    free(d->t);
    free(d->w);
    free(d->gr);
    free(d->y);
}

static inline void hx_out_free(hx_out *o) {
    free(o->loss);
    free(o->lse);
    free(o->grad);
    o->loss = o->lse = o->grad = NULL;
}

static inline clxent_loss_options hx_options(const hx_case *c) {
    clxent_loss_options o;
    clxent_loss_options_init(&o);
    o.reduction = c->red;
    o.ignore_index = c->probs ? -100 : c->ii;
    o.label_smoothing = c->eps;
    o.z_loss = c->zeta;
    o.grad_scale = c->G;
    o.normalizer = c->D;
    o.all_ignored_zero = c->all_ignored_zero;
    o.target_check = c->check;
    return o;
}

/* ---- buffers with layouts ---- */

/* A matrix R x C at element offset off with row stride ld, holding vals
 * (f32, converted to dt) or, when vals is NULL, the 0x7f fill pattern. */
static inline clxent_matrix hx_mat(clxent_context *ctx, const float *vals,
                                   size_t R, size_t C, size_t off, size_t ld,
                                   clxent_dtype dt) {
    size_t es = clxent_dtype_size(dt);
    size_t n = off + (R ? (R - 1) * ld + C : 0) + 1;
    unsigned char *h = malloc(n * es);
    assert_non_null(h);
    memset(h, 0x7f, n * es);
    if (vals)
        for (size_t r = 0; r < R; ++r)
            for (size_t j = 0; j < C; ++j) {
                float v = vals[r * C + j];
                size_t i = off + r * ld + j;
                if (dt == CLXENT_F32) {
                    memcpy(h + 4 * i, &v, 4);
                } else {
                    uint16_t b = dt == CLXENT_F16 ? clxent_f32_to_f16(v)
                                                  : clxent_f32_to_bf16(v);
                    memcpy(h + 2 * i, &b, 2);
                }
            }
    clxent_matrix m = {fx_upload(ctx, h, n * es), off, R, C, ld, dt};
    free(h);
    return m;
}

static inline float *hx_mat_read(clxent_context *ctx, const clxent_matrix *m) {
    unsigned char *h = fx_download(ctx, m->buffer);
    size_t n = m->rows * m->cols;
    float *out = malloc((n > 0 ? n : 1) * sizeof(float));
    assert_non_null(out);
    for (size_t r = 0; r < m->rows; ++r)
        for (size_t j = 0; j < m->cols; ++j) {
            size_t i = m->offset + r * m->stride + j;
            float v;
            if (m->dtype == CLXENT_F32) {
                memcpy(&v, h + 4 * i, 4);
            } else {
                uint16_t b;
                memcpy(&b, h + 2 * i, 2);
                v = m->dtype == CLXENT_F16 ? clxent_f16_to_f32(b)
                                           : clxent_bf16_to_f32(b);
            }
            out[r * m->cols + j] = v;
        }
    free(h);
    return out;
}

/* A vector of n f32 (vals) or int (ivals, as dt I32/I64) at offset off. */
static inline clxent_vector hx_vec(clxent_context *ctx, const float *vals,
                                   const int64_t *ivals, size_t n, size_t off,
                                   clxent_dtype dt) {
    size_t es = clxent_dtype_size(dt);
    size_t total = off + n + 1;
    unsigned char *h = malloc(total * es);
    assert_non_null(h);
    memset(h, 0x7f, total * es);
    for (size_t i = 0; i < n; ++i) {
        if (dt == CLXENT_I32) {
            int32_t v = (int32_t)ivals[i];
            memcpy(h + 4 * (off + i), &v, 4);
        } else if (dt == CLXENT_I64) {
            memcpy(h + 8 * (off + i), &ivals[i], 8);
        } else if (vals) {
            memcpy(h + 4 * (off + i), &vals[i], 4);
        }
    }
    clxent_vector v = {fx_upload(ctx, h, total * es), off, n, dt};
    free(h);
    return v;
}

static inline float *hx_vec_read(clxent_context *ctx, const clxent_vector *v) {
    unsigned char *h = fx_download(ctx, v->buffer);
    float *out = malloc((v->length ? v->length : 1) * sizeof(float));
    assert_non_null(out);
    memcpy(out, h + 4 * v->offset, 4 * v->length);
    free(h);
    return out;
}

static inline clxent_vector hx_no_vec(void) {
    clxent_vector v = {NULL, 0, 0, CLXENT_F32};
    return v;
}

/* Inputs of one case on one context. */
typedef struct hx_in {
    clxent_matrix x;
    clxent_targets tg;
    clxent_vector w, gr;
} hx_in;

static inline hx_in hx_upload(clxent_context *ctx, const hx_case *c,
                              const hx_data *d) {
    hx_in in;
    memset(&in, 0, sizeof in);
    in.x = hx_mat(ctx, d->x, c->R, c->C, HX_X_OFF, c->C + HX_X_PAD, c->dt);
    if (c->probs)
        in.tg.probs = hx_mat(ctx, d->t, c->R, c->C, HX_T_OFF,
                             c->C + HX_T_PAD, c->dt);
    else
        in.tg.indices = hx_vec(ctx, NULL, d->y, c->R, 1, c->idt);
    in.w = c->weights ? hx_vec(ctx, d->w, NULL, c->C, 2, CLXENT_F32)
                      : hx_no_vec();
    in.gr = c->grad_rows && c->red == CLXENT_REDUCTION_NONE
                ? hx_vec(ctx, d->gr, NULL, c->R, 1, CLXENT_F32)
                : hx_no_vec();
    return in;
}

static inline void hx_in_release(hx_in *in) {
    clxent_buffer_release(in->x.buffer);
    clxent_buffer_release(in->tg.probs.buffer);
    clxent_buffer_release(in->tg.indices.buffer);
    clxent_buffer_release(in->w.buffer);
    clxent_buffer_release(in->gr.buffer);
}

#define HX_ROUTE_FUSED 0
#define HX_ROUTE_FUSED_IN_PLACE 1
#define HX_ROUTE_FWD_BWD 2 /* forward, then backward from its lse */
#define HX_ROUTE_FWD_BWD_IN_PLACE 3 /* the same, the gradient over x */

/* Runs the cross-entropy case on ctx by one route; outputs as f32. */
static inline hx_out hx_run(clxent_context *ctx, const hx_case *c,
                            const hx_data *d, int route) {
    hx_out o = {NULL, NULL, NULL};
    hx_in in = hx_upload(ctx, c, d);
    clxent_loss_options opt = hx_options(c);
    int in_place = route == HX_ROUTE_FUSED_IN_PLACE ||
                   route == HX_ROUTE_FWD_BWD_IN_PLACE;
    opt.in_place = route == HX_ROUTE_FUSED_IN_PLACE;
    clxent_vector loss = hx_vec(ctx, NULL, NULL, hx_nloss(c), 2, CLXENT_F32);
    clxent_vector lse = hx_vec(ctx, NULL, NULL, c->R, 1, CLXENT_F32);
    clxent_matrix grad = in_place ? in.x
                                  : hx_mat(ctx, NULL, c->R, c->C, HX_G_OFF,
                                           c->C + HX_G_PAD, c->dt);
    clxent_status st;
    if (route == HX_ROUTE_FWD_BWD || route == HX_ROUTE_FWD_BWD_IN_PLACE) {
        st = clxent_cross_entropy_forward(ctx, &in.x, &in.tg, &in.w, &opt,
                                          &loss, &lse, NULL);
        fx_assert_status(ctx, st, CLXENT_STATUS_OK);
        opt.in_place = in_place;
        st = clxent_cross_entropy_backward(ctx, &in.x, &in.tg, &in.w, &opt,
                                           &lse, &in.gr, &grad, NULL);
    } else {
        st = clxent_cross_entropy(ctx, &in.x, &in.tg, &in.w, &opt, &in.gr,
                                  &loss, &lse, &grad, NULL);
    }
    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_finish(ctx), CLXENT_STATUS_OK);
    o.loss = hx_vec_read(ctx, &loss);
    o.lse = hx_vec_read(ctx, &lse);
    o.grad = hx_mat_read(ctx, &grad);
    clxent_buffer_release(loss.buffer);
    clxent_buffer_release(lse.buffer);
    if (!in_place) clxent_buffer_release(grad.buffer);
    hx_in_release(&in);
    return o;
}

/* One rounding of dt at |v| (the spacing of dt there), 0 for f32. */
static inline double hx_ulp(double v, clxent_dtype dt) {
    if (dt == CLXENT_F32) return 0.0;
    double a = fabs(v);
    if (dt == CLXENT_F16) return fmax(a * 0x1p-10, 0x1p-24);
    return fmax(a * 0x1p-7, 0x1p-133);
}

/* got vs want within abs + rel*|want| + one rounding of dt; NaN matches
 * NaN, inf the same inf. Fails with what, index and case name. */
static inline void hx_compare(const float *got, const float *want, size_t n,
                              double abs_tol, double rel_tol,
                              clxent_dtype dt, const char *what,
                              const char *name) {
    for (size_t i = 0; i < n; ++i) {
        double g = got[i], w = want[i];
        if (isnan(w) && isnan(g)) continue;
        if (isinf(w) && g == w) continue;
        double bound = abs_tol + rel_tol * fabs(w) + hx_ulp(w, dt);
        if (!(fabs(g - w) <= bound))
            fail_msg("%s: %s[%zu] = %.9g, reference %.9g (|diff| %.3g > "
                     "%.3g)",
                     name, what, i, g, w, fabs(g - w), bound);
    }
}

/* Loss: 1e-6 relative to max(1, |loss|) plus the f32 rounding of both
 * results; gradient: 1e-6 absolute plus one rounding of dt. */
static inline void hx_compare_out(const hx_case *c, const hx_out *dev,
                                  const hx_out *ref, const char *name) {
    for (size_t i = 0; i < hx_nloss(c); ++i) {
        double w = ref->loss[i];
        float got = dev->loss[i];
        hx_compare(&got, &ref->loss[i], 1, 1.2e-6 * fmax(1.0, fabs(w)), 0.0,
                   CLXENT_F32, "loss", name);
    }
    hx_compare(dev->lse, ref->lse, c->R, 1e-6, 1.2e-6, CLXENT_F32, "lse",
               name);
    hx_compare(dev->grad, ref->grad, c->R * c->C, 1.2e-6, 0.0, c->dt, "grad",
               name);
}

static inline void hx_name(const hx_case *c, char *buf, size_t size) {
    snprintf(buf, size,
             "%zux%zu %s %s%s%s%s red=%d eps=%g z=%g ii=%lld G=%g D=%g",
             c->R, c->C, clxent_dtype_name(c->dt),
             c->probs ? "probs" : clxent_dtype_name(c->idt),
             c->weights ? " w" : "", c->ignore ? " ign" : "",
             c->grad_rows ? " gr" : "", (int)c->red, (double)c->eps,
             (double)c->zeta, (long long)c->ii, (double)c->G, (double)c->D);
}

#endif
