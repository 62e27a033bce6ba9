/* The host backend against a naive double implementation written here
 * from docs/semantics.md's formulas (deliberately not the backend's code:
 * logp = x - lse, every term spelled out). Every option alone and in
 * combination, the edge cases (ignored rows, NaN rows, masked classes,
 * R = 0, all ignored), 16-bit storage, strides and offsets, and the
 * target-out-of-range error with nothing written. */
#include "fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Written before each call into every output element; exact in f16 and
 * bf16, and never a plausible result. */
#define SENTINEL (-768.0f)

/* ------------------------------------------------------------------ */
/* A case: data, options and layout. */

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

static xcase case_new(size_t R, size_t C, uint64_t seed) {
    xcase k;
    memset(&k, 0, sizeof k);
    k.R = R;
    k.C = C;
    k.dt = CLXENT_F32;
    k.idt = CLXENT_I32;
    clxent_loss_options_init(&k.opt);
    fx_rng rng = fx_rng_seed(seed);
    k.x = malloc((R * C + 1) * sizeof(float));
    k.t = malloc((R * C + 1) * sizeof(float));
    k.y = malloc((R + 1) * sizeof(int64_t));
    assert_true(k.x && k.t && k.y);
    fx_fill_uniform(&rng, k.x, R * C, -4.0f, 4.0f);
    for (size_t r = 0; r < R; ++r) {
        k.y[r] = (int64_t)(fx_next(&rng) % C);
        double sum = 0.0;
        for (size_t c = 0; c < C; ++c) {
            k.t[r * C + c] = (float)fx_uniform(&rng, 0.0, 1.0);
            sum += k.t[r * C + c];
        }
        for (size_t c = 0; c < C; ++c)
            k.t[r * C + c] = (float)(k.t[r * C + c] / sum);
    }
    return k;
}

static void case_weights(xcase *k, uint64_t seed) {
    fx_rng rng = fx_rng_seed(seed);
    k->w = malloc((k->C + 1) * sizeof(float));
    assert_non_null(k->w);
    fx_fill_uniform(&rng, k->w, k->C, 0.25f, 2.0f);
}

static void case_grad_rows(xcase *k, uint64_t seed) {
    fx_rng rng = fx_rng_seed(seed);
    k->gr = malloc((k->R + 1) * sizeof(float));
    assert_non_null(k->gr);
    fx_fill_uniform(&rng, k->gr, k->R, -1.0f, 2.0f);
}

/* Makes x and t exactly what the backend will read. */
static void case_round(xcase *k) {
    for (size_t i = 0; i < k->R * k->C; ++i) {
        k->x[i] = fx_round(k->x[i], k->dt);
        k->t[i] = fx_round(k->t[i], k->dt);
    }
}

static void case_free(xcase *k) {
    free(k->x);
    free(k->y);
    free(k->t);
    free(k->w);
    free(k->gr);
}

static int row_valid(const xcase *k, size_t r) {
    return k->probs || k->y[r] != k->opt.ignore_index;
}

static double wt(const xcase *k, int64_t c) { return k->w ? k->w[c] : 1.0; }

/* ------------------------------------------------------------------ */
/* The naive reference. */

typedef struct xref {
    double *loss; /* R for none, else 1 */
    double *lse;  /* R */
    double *grad; /* R x C */
} xref;

static size_t loss_len(const xcase *k) {
    return k->opt.reduction == CLXENT_REDUCTION_NONE ? k->R : 1;
}

static void ref_alloc(const xcase *k, xref *o) {
    o->loss = calloc(k->R + 1, sizeof(double));
    o->lse = calloc(k->R + 1, sizeof(double));
    o->grad = calloc(k->R * k->C + 1, sizeof(double));
    assert_true(o->loss && o->lse && o->grad);
}

static void ref_free(xref *o) {
    free(o->loss);
    free(o->lse);
    free(o->grad);
}

/* W (or R for probabilities), then D if given; s for the gradient. */
static double ref_denominator(const xcase *k, size_t *valid_rows) {
    double W = 0.0;
    *valid_rows = 0;
    for (size_t r = 0; r < k->R; ++r) {
        if (!row_valid(k, r)) continue;
        ++*valid_rows;
        W += k->probs ? 1.0 : wt(k, k->y[r]);
    }
    return k->opt.normalizer > 0.0f ? (double)k->opt.normalizer : W;
}

static double ref_reduce(const xcase *k, double total, double denom,
                         size_t valid_rows) {
    if (k->opt.reduction == CLXENT_REDUCTION_SUM) return total;
    if (valid_rows == 0 && !(k->opt.normalizer > 0.0f) &&
        k->opt.all_ignored_zero)
        return 0.0;
    return total / denom; /* 0/0 = NaN when every row is ignored */
}

static double ref_lse(const float *x, size_t C) {
    double m = -INFINITY;
    for (size_t c = 0; c < C; ++c) {
        if (x[c] != x[c]) return NAN;
        if (x[c] > m) m = x[c];
    }
    double S = 0.0;
    for (size_t c = 0; c < C; ++c) S += exp((double)x[c] - m);
    return m + log(S);
}

/* Cross-entropy loss, lse and gradient. lse_given (backward): the saved
 * f32 lse, which the host corrects in double, L = g + log sum exp(x - g),
 * so that its rounding does not reach the gradient. */
static void ref_ce(const xcase *k, const float *lse_given, xref *o) {
    const size_t R = k->R, C = k->C;
    const double eps = k->opt.label_smoothing, zeta = k->opt.z_loss;
    size_t valid_rows;
    double denom = ref_denominator(k, &valid_rows);
    double s = k->opt.reduction == CLXENT_REDUCTION_MEAN ? 1.0 / denom : 1.0;
    double sum_w = 0.0;
    for (size_t c = 0; c < C; ++c) sum_w += wt(k, (int64_t)c);
    double total = 0.0;
    for (size_t r = 0; r < R; ++r) {
        const float *x = k->x + r * C;
        const float *t = k->t + r * C;
        double lse = ref_lse(x, C);
        /* Backward takes the saved lse as given: p = exp(x - lse). */
        if (lse_given) lse = (double)lse_given[r];
        o->lse[r] = lse;
        double l = 0.0;
        int valid = row_valid(k, r);
        if (valid && k->probs) {
            for (size_t c = 0; c < C; ++c) {
                double tp = (1.0 - eps) * t[c] + eps / (double)C;
                l += -wt(k, (int64_t)c) * tp * (x[c] - lse);
            }
        } else if (valid) {
            int64_t y = k->y[r];
            l = (1.0 - eps) * (-wt(k, y) * (x[y] - lse));
            if (eps > 0.0) {
                double smooth = 0.0;
                for (size_t c = 0; c < C; ++c)
                    smooth += -wt(k, (int64_t)c) * (x[c] - lse);
                l += eps / (double)C * smooth;
            }
        }
        if (valid) l += zeta * lse * lse;
        if (k->opt.reduction == CLXENT_REDUCTION_NONE) o->loss[r] = l;
        total += l;

        double G = k->opt.grad_scale * (k->gr ? k->gr[r] : 1.0);
        double sum_a = 0.0;
        if (k->probs)
            for (size_t j = 0; j < C; ++j)
                sum_a += wt(k, (int64_t)j) *
                         ((1.0 - eps) * t[j] + eps / (double)C);
        for (size_t c = 0; c < C; ++c) {
            double p = exp(x[c] - lse), d;
            if (!valid) {
                d = 0.0;
            } else if (k->probs) {
                double a = wt(k, (int64_t)c) *
                           ((1.0 - eps) * t[c] + eps / (double)C);
                d = G * s * (p * sum_a - a + 2.0 * zeta * lse * p);
            } else {
                int64_t y = k->y[r];
                double wy = wt(k, y);
                d = G * s *
                    (p * ((1.0 - eps) * wy + eps / (double)C * sum_w) -
                     (1.0 - eps) * wy * ((int64_t)c == y ? 1.0 : 0.0) -
                     eps / (double)C * wt(k, (int64_t)c) +
                     2.0 * zeta * lse * p);
            }
            o->grad[r * C + c] = valid ? d : 0.0;
        }
    }
    if (k->opt.reduction != CLXENT_REDUCTION_NONE)
        o->loss[0] = ref_reduce(k, total, denom, valid_rows);
}

/* PyTorch NLLLoss over given log-probabilities lp (R x C). */
static void ref_nll(const xcase *k, const float *lp, xref *o) {
    size_t valid_rows;
    double denom = ref_denominator(k, &valid_rows);
    double s = k->opt.reduction == CLXENT_REDUCTION_MEAN ? 1.0 / denom : 1.0;
    double total = 0.0;
    for (size_t r = 0; r < k->R; ++r) {
        double l = 0.0;
        for (size_t c = 0; c < k->C; ++c) o->grad[r * k->C + c] = 0.0;
        if (row_valid(k, r)) {
            int64_t y = k->y[r];
            l = -wt(k, y) * lp[r * k->C + (size_t)y];
            double G = k->opt.grad_scale * (k->gr ? k->gr[r] : 1.0);
            o->grad[r * k->C + (size_t)y] = -G * s * wt(k, y);
        }
        if (k->opt.reduction == CLXENT_REDUCTION_NONE) o->loss[r] = l;
        total += l;
    }
    if (k->opt.reduction != CLXENT_REDUCTION_NONE)
        o->loss[0] = ref_reduce(k, total, denom, valid_rows);
}

/* ------------------------------------------------------------------ */
/* Buffers with offsets, strides and guarded padding. */

static size_t extent(size_t rows, size_t ld, size_t off) {
    return off + rows * ld + 3;
}

static int same_value(float a, float b) {
    return (isnan(a) && isnan(b)) || a == b;
}

/* rows x cols values (NULL: SENTINEL) at offset off with row stride ld;
 * every other element holds pad. */
static clxent_buffer *put(clxent_context *ctx, const float *v, size_t rows,
                          size_t cols, size_t off, size_t ld, clxent_dtype dt,
                          float pad) {
    size_t n = extent(rows, ld, off);
    float *all = malloc(n * sizeof(float));
    assert_non_null(all);
    for (size_t i = 0; i < n; ++i) all[i] = pad;
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c)
            all[off + r * ld + c] = v ? v[r * cols + c] : SENTINEL;
    void *bytes = fx_to_dtype(all, n, dt);
    clxent_buffer *b = fx_upload(ctx, bytes, n * clxent_dtype_size(dt));
    free(bytes);
    free(all);
    return b;
}

/* Reads the values back, failing if any padding element changed. */
static float *get(clxent_context *ctx, const clxent_buffer *b, size_t rows,
                  size_t cols, size_t off, size_t ld, clxent_dtype dt,
                  float pad, const char *what) {
    size_t n = extent(rows, ld, off);
    void *bytes = fx_download(ctx, b);
    float *all = fx_from_dtype(bytes, n, dt);
    float *out = malloc((rows * cols + 1) * sizeof(float));
    assert_non_null(out);
    for (size_t i = 0; i < n; ++i) {
        int inside = i >= off && ld > 0 && (i - off) / ld < rows &&
                     (i - off) % ld < cols;
        if (inside)
            out[((i - off) / ld) * cols + (i - off) % ld] = all[i];
        else if (!same_value(all[i], pad))
            fail_msg("%s: padding element %zu changed to %g", what, i,
                     (double)all[i]);
    }
    free(all);
    free(bytes);
    return out;
}

static clxent_buffer *put_indices(clxent_context *ctx, const xcase *k,
                                  size_t off) {
    size_t n = off + k->R + 3, es = clxent_dtype_size(k->idt);
    unsigned char *bytes = malloc(n * es);
    assert_non_null(bytes);
    for (size_t i = 0; i < n; ++i) {
        /* padding is out of range: reading it would be an error */
        int64_t v = i >= off && i < off + k->R ? k->y[i - off]
                                               : (int64_t)k->C + 5;
        if (k->idt == CLXENT_I32) {
            int32_t v32 = (int32_t)v;
            memcpy(bytes + 4 * i, &v32, 4);
        } else {
            memcpy(bytes + 8 * i, &v, 8);
        }
    }
    clxent_buffer *b = fx_upload(ctx, bytes, n * es);
    free(bytes);
    return b;
}

/* ------------------------------------------------------------------ */
/* Running one operation through the public API. */

typedef enum run_kind {
    RUN_FUSED,
    RUN_FORWARD,
    RUN_BACKWARD,
    RUN_IN_PLACE,
    RUN_NLL,
    RUN_NLL_BACKWARD
} run_kind;

static const char *run_name[] = {"fused", "forward", "backward",
                                 "in-place", "nll", "nll_backward"};

typedef struct outputs {
    float *loss; /* loss_len values */
    float *lse;  /* R */
    float *grad; /* R x C */
    char message[512]; /* the context message right after the call */
} outputs;

static void outputs_free(outputs *o) {
    free(o->loss);
    free(o->lse);
    free(o->grad);
    memset(o, 0, sizeof *o);
}

/* Runs `kind` on k (lse_in for backward, lp for NLL) and reads every
 * output back (SENTINEL where nothing was written). */
static clxent_status run_op(clxent_context *ctx, const xcase *k,
                            run_kind kind, const float *lse_in,
                            const float *lp, outputs *o) {
    const size_t R = k->R, C = k->C, ld = C + k->pad, off = k->off;
    const size_t nl = loss_len(k);
    int nll = kind == RUN_NLL || kind == RUN_NLL_BACKWARD;
    clxent_buffer *xb = put(ctx, nll ? lp : k->x, R, C, off, ld, k->dt, NAN);
    clxent_matrix xm = {xb, off, R, C, ld, k->dt};
    clxent_targets tg;
    memset(&tg, 0, sizeof tg);
    clxent_buffer *tb = NULL, *wb = NULL, *rb = NULL;
    if (k->probs) {
        tb = put(ctx, k->t, R, C, off + 2, ld + 1, k->dt, NAN);
        clxent_matrix pm = {tb, off + 2, R, C, ld + 1, k->dt};
        tg.probs = pm;
    } else {
        tb = put_indices(ctx, k, off + 1);
        clxent_vector iv = {tb, off + 1, R, k->idt};
        tg.indices = iv;
    }
    clxent_vector wv = {NULL, 0, 0, CLXENT_F32}, gv = wv;
    if (k->w) {
        wb = put(ctx, k->w, 1, C, off, C, CLXENT_F32, NAN);
        clxent_vector v = {wb, off, C, CLXENT_F32};
        wv = v;
    }
    if (k->gr) {
        rb = put(ctx, k->gr, 1, R, off + 3, R, CLXENT_F32, NAN);
        clxent_vector v = {rb, off + 3, R, CLXENT_F32};
        gv = v;
    }
    clxent_buffer *lb = put(ctx, NULL, 1, nl, off, nl, CLXENT_F32, SENTINEL);
    clxent_buffer *sb = put(ctx, NULL, 1, R, off + 1, R, CLXENT_F32, SENTINEL);
    clxent_buffer *ib = put(ctx, lse_in, 1, R, off + 2, R, CLXENT_F32, NAN);
    clxent_buffer *gb =
        put(ctx, NULL, R, C, off + 1, ld + 2, k->dt, SENTINEL);
    clxent_vector lv = {lb, off, nl, CLXENT_F32};
    clxent_vector sv = {sb, off + 1, R, CLXENT_F32};
    clxent_vector iv = {ib, off + 2, R, CLXENT_F32};
    clxent_matrix gm = {gb, off + 1, R, C, ld + 2, k->dt};
    clxent_loss_options opt = k->opt;
    opt.in_place = kind == RUN_IN_PLACE;
    if (kind == RUN_IN_PLACE) gm = xm;

    clxent_status st = CLXENT_STATUS_OK;
    switch (kind) {
    case RUN_FUSED:
    case RUN_IN_PLACE:
        st = clxent_cross_entropy(ctx, &xm, &tg, &wv, &opt, &gv, &lv, &sv,
                                  &gm, NULL);
        break;
    case RUN_FORWARD:
        st = clxent_cross_entropy_forward(ctx, &xm, &tg, &wv, &opt, &lv, &sv,
                                          NULL);
        break;
    case RUN_BACKWARD:
        st = clxent_cross_entropy_backward(ctx, &xm, &tg, &wv, &opt, &iv, &gv,
                                           &gm, NULL);
        break;
    case RUN_NLL:
        st = clxent_nll_loss(ctx, &xm, &tg.indices, &wv, &opt, &lv, NULL);
        break;
    case RUN_NLL_BACKWARD:
        st = clxent_nll_loss_backward(ctx, &xm, &tg.indices, &wv, &opt, &gv,
                                      &gm, NULL);
        break;
    }
    snprintf(o->message, sizeof o->message, "%s",
             clxent_context_message(ctx));
    o->loss = get(ctx, lb, 1, nl, off, nl, CLXENT_F32, SENTINEL, "loss");
    o->lse = get(ctx, sb, 1, R, off + 1, R, CLXENT_F32, SENTINEL, "lse");
    if (kind == RUN_IN_PLACE)
        o->grad = get(ctx, xb, R, C, off, ld, k->dt, NAN, "in-place grad");
    else
        o->grad = get(ctx, gb, R, C, off + 1, ld + 2, k->dt, SENTINEL,
                      "grad");
    /* Inputs stay as they were (the in-place logits excepted). */
    if (kind != RUN_IN_PLACE) {
        float *xs = get(ctx, xb, R, C, off, ld, k->dt, NAN, "logits");
        for (size_t i = 0; i < R * C; ++i)
            if (!same_value(xs[i], nll ? lp[i] : k->x[i]))
                fail_msg("%s changed its input at %zu", run_name[kind], i);
        free(xs);
    }
    clxent_buffer *bufs[] = {xb, tb, wb, rb, lb, sb, ib, gb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clxent_buffer_release(bufs[i]);
    return st;
}

/* ------------------------------------------------------------------ */
/* Comparisons. */

static void expect_untouched(const float *v, size_t n, const char *what) {
    for (size_t i = 0; i < n; ++i)
        if (v[i] != SENTINEL)
            fail_msg("%s[%zu] = %g was written", what, i, (double)v[i]);
}

static void expect_loss(const xcase *k, const float *got, const double *want,
                        const char *what) {
    size_t n = loss_len(k);
    fx_assert_close(got, want, n, 1e-6, 1e-6, what);
    if (k->opt.reduction == CLXENT_REDUCTION_NONE)
        for (size_t r = 0; r < k->R; ++r)
            if (!row_valid(k, r) && (got[r] != 0.0f || signbit(got[r])))
                fail_msg("%s[%zu] = %g for an ignored row, want exactly +0",
                         what, r, (double)got[r]);
}

/* 16-bit gradients are compared with the reference rounded the same way
 * (double -> f32 -> storage type). */
static void expect_grad(const xcase *k, const float *got, const double *want,
                        const char *what) {
    size_t n = k->R * k->C;
    double *w = malloc((n + 1) * sizeof(double));
    assert_non_null(w);
    for (size_t i = 0; i < n; ++i)
        w[i] = k->dt == CLXENT_F32 ? want[i] : fx_round((float)want[i], k->dt);
    fx_assert_close(got, w, n, 1e-7, 1e-6, what);
    for (size_t r = 0; r < k->R; ++r)
        for (size_t c = 0; c < k->C && !row_valid(k, r); ++c)
            if (got[r * k->C + c] != 0.0f || signbit(got[r * k->C + c]))
                fail_msg("%s[%zu][%zu] = %g for an ignored row, want +0", what,
                         r, c, (double)got[r * k->C + c]);
    free(w);
}

/* Every route on one case: fused, forward, backward from the forward's
 * lse, in-place, and NLL over the log-probabilities where it applies. */
static void check_case(clxent_context *ctx, xcase *k, const char *label) {
    char what[160];
    case_round(k);
    xref ref;
    ref_alloc(k, &ref);
    ref_ce(k, NULL, &ref);
    outputs o;

    fx_assert_status(ctx, run_op(ctx, k, RUN_FUSED, NULL, NULL, &o),
                     CLXENT_STATUS_OK);
    snprintf(what, sizeof what, "%s fused loss", label);
    expect_loss(k, o.loss, ref.loss, what);
    snprintf(what, sizeof what, "%s fused lse", label);
    fx_assert_close(o.lse, ref.lse, k->R, 1e-6, 1e-6, what);
    snprintf(what, sizeof what, "%s fused grad", label);
    expect_grad(k, o.grad, ref.grad, what);
    outputs_free(&o);

    fx_assert_status(ctx, run_op(ctx, k, RUN_IN_PLACE, NULL, NULL, &o),
                     CLXENT_STATUS_OK);
    snprintf(what, sizeof what, "%s in-place loss", label);
    expect_loss(k, o.loss, ref.loss, what);
    snprintf(what, sizeof what, "%s in-place grad", label);
    expect_grad(k, o.grad, ref.grad, what);
    outputs_free(&o);

    fx_assert_status(ctx, run_op(ctx, k, RUN_FORWARD, NULL, NULL, &o),
                     CLXENT_STATUS_OK);
    snprintf(what, sizeof what, "%s forward loss", label);
    expect_loss(k, o.loss, ref.loss, what);
    snprintf(what, sizeof what, "%s forward lse", label);
    fx_assert_close(o.lse, ref.lse, k->R, 1e-6, 1e-6, what);
    expect_untouched(o.grad, k->R * k->C, "forward grad");

    /* Backward takes the saved f32 lse, so the reference does too. */
    float *saved = o.lse;
    o.lse = NULL;
    outputs_free(&o);
    xref refb;
    ref_alloc(k, &refb);
    ref_ce(k, saved, &refb);
    fx_assert_status(ctx, run_op(ctx, k, RUN_BACKWARD, saved, NULL, &o),
                     CLXENT_STATUS_OK);
    snprintf(what, sizeof what, "%s backward grad", label);
    expect_grad(k, o.grad, refb.grad, what);
    expect_untouched(o.loss, loss_len(k), "backward loss");
    outputs_free(&o);
    ref_free(&refb);

    if (!k->probs && k->opt.label_smoothing == 0.0f &&
        k->opt.z_loss == 0.0f) {
        /* NLL over log-probabilities stored in the logits' dtype. */
        size_t n = k->R * k->C;
        float *lp = malloc((n + 1) * sizeof(float));
        assert_non_null(lp);
        for (size_t i = 0; i < n; ++i)
            lp[i] = fx_round((float)(k->x[i] - ref.lse[i / k->C]), k->dt);
        xref refn;
        ref_alloc(k, &refn);
        ref_nll(k, lp, &refn);
        fx_assert_status(ctx, run_op(ctx, k, RUN_NLL, NULL, lp, &o),
                         CLXENT_STATUS_OK);
        snprintf(what, sizeof what, "%s nll loss", label);
        expect_loss(k, o.loss, refn.loss, what);
        outputs_free(&o);
        fx_assert_status(ctx, run_op(ctx, k, RUN_NLL_BACKWARD, NULL, lp, &o),
                         CLXENT_STATUS_OK);
        snprintf(what, sizeof what, "%s nll grad", label);
        expect_grad(k, o.grad, refn.grad, what);
        outputs_free(&o);
        ref_free(&refn);
        free(lp);
    }
    free(saved);
    ref_free(&ref);
}

/* ------------------------------------------------------------------ */
/* Tests. */

static const clxent_dtype dtypes[3] = {CLXENT_F32, CLXENT_F16, CLXENT_BF16};
static const char *reductions[3] = {"none", "sum", "mean"};

/* reduction x weights x smoothing x z-loss x ignored rows x targets kind
 * x storage type, with strides and offsets varying across cases. */
static void test_option_sweep(void **state) {
    clxent_context *ctx = *state;
    int n = 0;
    for (int red = 0; red < 3; ++red)
        for (int mask = 0; mask < 32; ++mask)
            for (int d = 0; d < 3; ++d) {
                int weighted = mask & 1, smooth = mask & 2, z = mask & 4;
                int ignore = mask & 8, probs = mask & 16;
                if (probs && ignore) continue; /* invalid, as PyTorch */
                size_t C = n % 5 == 0 ? 1 : 3 + (size_t)(n % 7);
                xcase k = case_new(6, C, 1000 + (uint64_t)n);
                k.dt = dtypes[d];
                k.idt = n % 2 ? CLXENT_I64 : CLXENT_I32;
                k.probs = probs;
                k.off = (size_t)(n % 3);
                k.pad = (size_t)(n % 4);
                k.opt.reduction = (clxent_reduction)red;
                if (weighted) case_weights(&k, 77 + (uint64_t)n);
                if (smooth) k.opt.label_smoothing = 0.1f + 0.05f * (n % 3);
                if (z) k.opt.z_loss = 1e-2f;
                if (ignore) k.y[1] = k.y[4] = -100;
                k.opt.grad_scale = n % 2 ? 1.0f : 0.5f;
                if (red == CLXENT_REDUCTION_NONE && n % 3 == 0)
                    case_grad_rows(&k, 99 + (uint64_t)n);
                char label[96];
                snprintf(label, sizeof label,
                         "case %d (%s, w%d e%d z%d i%d p%d %s C=%zu)", n,
                         reductions[red], weighted, !!smooth, !!z, !!ignore,
                         !!probs, clxent_dtype_name(k.dt), C);
                check_case(ctx, &k, label);
                case_free(&k);
                ++n;
            }
    assert_int_equal(n, 3 * 24 * 3);
}

static void test_ignore_index_inside_range(void **state) {
    for (int red = 0; red < 3; ++red) {
        xcase k = case_new(7, 4, 11 + (uint64_t)red);
        k.opt.reduction = (clxent_reduction)red;
        k.opt.ignore_index = 1;
        k.y[0] = 1;
        k.y[2] = 1;
        k.y[3] = 0;
        k.y[5] = 3;
        case_weights(&k, 5);
        check_case(*state, &k, "ignore_index 1");
        case_free(&k);
    }
    /* ignore_index -1 with int64 targets; the default -100 is not it */
    xcase k = case_new(5, 6, 12);
    k.idt = CLXENT_I64;
    k.opt.ignore_index = -1;
    k.y[2] = -1;
    k.opt.label_smoothing = 0.2f;
    check_case(*state, &k, "ignore_index -1");
    case_free(&k);
}

/* Mean over no valid row: NaN (or 0 with the policy), gradient zero. */
static void test_all_ignored(void **state) {
    clxent_context *ctx = *state;
    for (int policy = 0; policy < 2; ++policy)
        for (int red = 0; red < 3; ++red) {
            xcase k = case_new(4, 5, 21);
            k.opt.reduction = (clxent_reduction)red;
            k.opt.all_ignored_zero = policy;
            for (size_t r = 0; r < k.R; ++r) k.y[r] = -100;
            k.x[3] = NAN; /* garbage in an ignored row changes nothing */
            case_weights(&k, 3);
            check_case(ctx, &k, policy ? "all ignored, zero policy"
                                       : "all ignored");
            outputs o;
            fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                             CLXENT_STATUS_OK);
            if (red == CLXENT_REDUCTION_MEAN && !policy)
                assert_true(isnan(o.loss[0]));
            else
                for (size_t i = 0; i < loss_len(&k); ++i)
                    assert_true(o.loss[i] == 0.0f);
            for (size_t i = 0; i < k.R * k.C; ++i)
                assert_true(o.grad[i] == 0.0f);
            outputs_free(&o);
            case_free(&k);
        }
}

/* R = 0: mean NaN (0 with the policy), sum 0, none writes nothing. */
static void test_zero_rows(void **state) {
    clxent_context *ctx = *state;
    for (int probs = 0; probs < 2; ++probs)
        for (int policy = 0; policy < 2; ++policy)
            for (int red = 0; red < 3; ++red) {
                xcase k = case_new(0, 3, 31);
                k.probs = probs;
                k.opt.reduction = (clxent_reduction)red;
                k.opt.all_ignored_zero = policy;
                k.off = 2;
                check_case(ctx, &k, "zero rows");
                outputs o;
                fx_assert_status(ctx,
                                 run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                                 CLXENT_STATUS_OK);
                if (red == CLXENT_REDUCTION_MEAN)
                    assert_true(policy ? o.loss[0] == 0.0f
                                       : isnan(o.loss[0]));
                else if (red == CLXENT_REDUCTION_SUM)
                    assert_true(o.loss[0] == 0.0f);
                /* none: the padding check in get() saw nothing written */
                outputs_free(&o);
                case_free(&k);
            }
}

static void test_normalizer(void **state) {
    for (int probs = 0; probs < 2; ++probs) {
        xcase k = case_new(6, 5, 41);
        k.probs = probs;
        k.opt.normalizer = 7.5f;
        k.opt.label_smoothing = 0.1f;
        k.opt.grad_scale = 2.0f;
        case_weights(&k, 8);
        if (!probs) k.y[2] = -100;
        check_case(*state, &k, "normalizer");
        case_free(&k);
    }
    /* With D the mean is sum/D, also when no row counts. */
    xcase k = case_new(3, 4, 42);
    k.opt.normalizer = 4.0f;
    for (size_t r = 0; r < k.R; ++r) k.y[r] = -100;
    check_case(*state, &k, "normalizer, all ignored");
    outputs o;
    fx_assert_status(*state, run_op(*state, &k, RUN_FUSED, NULL, NULL, &o),
                     CLXENT_STATUS_OK);
    assert_true(o.loss[0] == 0.0f);
    outputs_free(&o);
    case_free(&k);
}

static void test_grad_rows(void **state) {
    for (int probs = 0; probs < 2; ++probs) {
        xcase k = case_new(5, 6, 51);
        k.probs = probs;
        k.opt.reduction = CLXENT_REDUCTION_NONE;
        k.opt.grad_scale = 3.0f;
        k.opt.z_loss = 1e-3f;
        case_grad_rows(&k, 52);
        case_weights(&k, 53);
        if (!probs) k.y[3] = -100;
        check_case(*state, &k, "grad_rows");
        case_free(&k);
    }
}

static void test_probs_smoothing_weights(void **state) {
    for (int red = 0; red < 3; ++red) {
        xcase k = case_new(9, 11, 61 + (uint64_t)red);
        k.probs = 1;
        k.opt.reduction = (clxent_reduction)red;
        k.opt.label_smoothing = 0.3f;
        k.opt.z_loss = 1e-2f;
        case_weights(&k, 62);
        k.off = 5;
        k.pad = 3;
        check_case(*state, &k, "probabilities, smoothing, weights");
        case_free(&k);
    }
}

/* A NaN in one row spoils that row (and a sum over it), nothing else. */
static void test_nan_row_isolated(void **state) {
    clxent_context *ctx = *state;
    for (int red = 0; red < 2; ++red)
        for (int probs = 0; probs < 2; ++probs) {
            xcase k = case_new(4, 5, 71);
            k.probs = probs;
            k.opt.reduction = (clxent_reduction)red;
            k.opt.label_smoothing = 0.1f;
            k.x[1 * 5 + 2] = NAN;
            case_weights(&k, 72);
            check_case(ctx, &k, "NaN row");
            outputs o;
            fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                             CLXENT_STATUS_OK);
            for (size_t r = 0; r < k.R; ++r) {
                int bad = r == 1;
                if (red == CLXENT_REDUCTION_NONE)
                    assert_int_equal(!!isnan(o.loss[r]), bad);
                for (size_t c = 0; c < k.C; ++c)
                    assert_int_equal(!!isnan(o.grad[r * k.C + c]), bad);
            }
            if (red == CLXENT_REDUCTION_SUM) assert_true(isnan(o.loss[0]));
            outputs_free(&o);
            case_free(&k);
        }
}

/* An ignored row of garbage gives exactly 0 loss and gradient. */
static void test_ignored_nan_row(void **state) {
    clxent_context *ctx = *state;
    for (int red = 0; red < 3; ++red) {
        xcase k = case_new(4, 5, 81);
        k.opt.reduction = (clxent_reduction)red;
        k.opt.z_loss = 1e-2f;
        k.opt.label_smoothing = 0.1f;
        for (size_t c = 0; c < k.C; ++c)
            k.x[2 * k.C + c] = c % 2 ? NAN : INFINITY;
        k.y[2] = -100;
        check_case(ctx, &k, "ignored NaN row");
        outputs o;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                         CLXENT_STATUS_OK);
        for (size_t i = 0; i < loss_len(&k); ++i) {
            assert_true(isfinite(o.loss[i]));
            if (red == CLXENT_REDUCTION_NONE && i == 2)
                assert_true(o.loss[i] == 0.0f);
        }
        for (size_t i = 0; i < k.R * k.C; ++i) {
            assert_true(isfinite(o.grad[i]));
            if (i / k.C == 2) assert_true(o.grad[i] == 0.0f);
        }
        outputs_free(&o);
        case_free(&k);
    }
}

/* -inf logits mask classes; the target class stays finite. */
static void test_masked_classes(void **state) {
    clxent_context *ctx = *state;
    for (int d = 0; d < 3; ++d) {
        xcase k = case_new(5, 8, 91);
        k.dt = dtypes[d];
        k.opt.reduction = CLXENT_REDUCTION_NONE;
        k.opt.z_loss = 1e-2f;
        case_weights(&k, 92);
        for (size_t r = 0; r < k.R; ++r)
            for (size_t c = 0; c < k.C; ++c)
                if ((r + c) % 3 == 0 && (int64_t)c != k.y[r])
                    k.x[r * k.C + c] = -INFINITY;
        k.off = 1;
        k.pad = 2;
        check_case(ctx, &k, "masked classes");
        outputs o;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_FUSED, NULL, NULL, &o),
                         CLXENT_STATUS_OK);
        for (size_t r = 0; r < k.R; ++r) {
            assert_true(isfinite(o.loss[r]));
            for (size_t c = 0; c < k.C; ++c)
                if (isinf(k.x[r * k.C + c]))
                    assert_true(o.grad[r * k.C + c] == 0.0f);
        }
        outputs_free(&o);
        case_free(&k);
    }
}

/* A wide row in each storage type, with stride and offset. */
static void test_wide_rows(void **state) {
    for (int d = 0; d < 3; ++d) {
        xcase k = case_new(3, 4099, 101 + (uint64_t)d);
        k.dt = dtypes[d];
        k.off = 7;
        k.pad = 13;
        k.opt.label_smoothing = 0.05f;
        k.opt.z_loss = 1e-4f;
        case_weights(&k, 102);
        check_case(*state, &k, "wide rows");
        case_free(&k);
    }
}

/* Backward from a saved f32 lse at |x| ~ 100, where the lse's rounding
 * alone would move p by ~4e-6: the gradient still meets 1e-6 against the
 * exact double one, also from an lse that is off by a few units. A NaN lse
 * for a counted row gives that row a NaN gradient (the lse is used). */
static void test_backward_saved_lse(void **state) {
    clxent_context *ctx = *state;
    for (int probs = 0; probs < 2; ++probs) {
        xcase k = case_new(4, 300, 131 + (uint64_t)probs);
        k.probs = probs;
        k.opt.reduction = CLXENT_REDUCTION_SUM;
        k.opt.z_loss = 1e-3f;
        for (size_t i = 0; i < k.R * k.C; ++i) k.x[i] = 25.0f * k.x[i];
        case_round(&k);
        xref ref;
        ref_alloc(&k, &ref);
        ref_ce(&k, NULL, &ref);
        float lse[4];
        for (size_t r = 0; r < k.R; ++r) lse[r] = (float)ref.lse[r];
        lse[1] += 3.0f;
        lse[2] -= 2.0f;
        /* A shifted lse scales p: the gradient is the formula's with that
         * lse, not a silently corrected one (devices compute the same). */
        xref shifted;
        ref_alloc(&k, &shifted);
        ref_ce(&k, lse, &shifted);
        outputs o;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_BACKWARD, lse, NULL, &o),
                         CLXENT_STATUS_OK);
        fx_assert_close(o.grad, shifted.grad, k.R * k.C, 1e-6, 1e-6,
                        "backward grad from a saved lse");
        ref_free(&shifted);
        outputs_free(&o);
        lse[3] = NAN;
        fx_assert_status(ctx, run_op(ctx, &k, RUN_BACKWARD, lse, NULL, &o),
                         CLXENT_STATUS_OK);
        for (size_t i = 0; i < k.R * k.C; ++i)
            assert_int_equal(!!isnan(o.grad[i]), i / k.C == 3);
        outputs_free(&o);
        ref_free(&ref);
        case_free(&k);
    }
}

/* A bad class index: the status, a message naming the first bad row and
 * its value, nothing written; then a valid call works. */
static void test_target_out_of_range(void **state) {
    clxent_context *ctx = *state;
    const run_kind kinds[] = {RUN_FUSED, RUN_FORWARD, RUN_BACKWARD,
                              RUN_IN_PLACE, RUN_NLL, RUN_NLL_BACKWARD};
    for (int check = 0; check < 2; ++check)
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; ++i)
            for (int idt = 0; idt < 2; ++idt) {
                xcase k = case_new(6, 3, 111);
                k.opt.target_check = (clxent_target_check)check;
                k.opt.reduction = (clxent_reduction)(i % 3);
                k.idt = idt ? CLXENT_I64 : CLXENT_I32;
                k.opt.ignore_index = -1;
                k.off = 1;
                k.pad = 1;
                k.y[0] = -1;  /* ignored: skipped before the range check */
                k.y[2] = 3;   /* first offending row */
                k.y[4] = -100;
                float lse[6] = {1, 1, 1, 1, 1, 1};
                outputs o;
                clxent_status st = run_op(ctx, &k, kinds[i], lse, k.x, &o);
                fx_assert_status(ctx, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
                const char *msg = o.message;
                if (!strstr(msg, "targets[2] = 3 ") ||
                    !strstr(msg, "[0, 3)") || !strstr(msg, "clxent_"))
                    fail_msg("%s: message \"%s\" should name row 2, value 3 "
                             "and the function",
                             run_name[kinds[i]], msg);
                expect_untouched(o.loss, loss_len(&k), "loss after error");
                expect_untouched(o.lse, k.R, "lse after error");
                if (kinds[i] == RUN_IN_PLACE) {
                    for (size_t j = 0; j < k.R * k.C; ++j)
                        assert_true(same_value(o.grad[j], k.x[j]));
                } else {
                    expect_untouched(o.grad, k.R * k.C, "grad after error");
                }
                outputs_free(&o);

                /* -100 is not ignore_index here: it is the first bad row */
                k.y[2] = 1;
                st = run_op(ctx, &k, kinds[i], lse, k.x, &o);
                fx_assert_status(ctx, st, CLXENT_STATUS_TARGET_OUT_OF_RANGE);
                if (!strstr(o.message, "targets[4] = -100 "))
                    fail_msg("message \"%s\" should name row 4", o.message);
                outputs_free(&o);

                k.y[4] = 2;
                fx_assert_status(ctx, run_op(ctx, &k, kinds[i], lse, k.x, &o),
                                 CLXENT_STATUS_OK);
                outputs_free(&o);
                check_case(ctx, &k, "valid after an error");
                case_free(&k);
            }
}

/* ---- primitives against the naive formulas ---- */

static void test_primitives(void **state) {
    clxent_context *ctx = *state;
    for (int d = 0; d < 3; ++d)
        for (int od = 0; od < 3; ++od) {
            xcase k = case_new(5, 9, 121 + (uint64_t)(3 * d + od));
            k.dt = dtypes[d];
            k.x[1 * 9 + 4] = NAN;      /* row max propagates NaN */
            k.x[2 * 9 + 0] = -INFINITY; /* masked class */
            case_round(&k);
            size_t R = k.R, C = k.C, ld = C + 3;
            clxent_buffer *xb = put(ctx, k.x, R, C, 2, ld, k.dt, NAN);
            clxent_matrix xm = {xb, 2, R, C, ld, k.dt};
            clxent_buffer *ob = put(ctx, NULL, R, C, 1, C + 1, dtypes[od],
                                    SENTINEL);
            clxent_matrix om = {ob, 1, R, C, C + 1, dtypes[od]};
            clxent_buffer *mb = put(ctx, NULL, 1, R, 3, R, CLXENT_F32,
                                    SENTINEL);
            clxent_vector mv = {mb, 3, R, CLXENT_F32};
            clxent_buffer *sb = put(ctx, NULL, 1, R, 0, R, CLXENT_F32,
                                    SENTINEL);
            clxent_vector sv = {sb, 0, R, CLXENT_F32};

            double want_m[5], want_s[5], *want = malloc(R * C * sizeof(double));
            assert_non_null(want);
            fx_assert_status(ctx, clxent_row_max(ctx, &xm, &mv, NULL),
                             CLXENT_STATUS_OK);
            float *m = get(ctx, mb, 1, R, 3, R, CLXENT_F32, SENTINEL, "max");
            for (size_t r = 0; r < R; ++r) {
                want_m[r] = -INFINITY;
                for (size_t c = 0; c < C; ++c)
                    want_m[r] = isnan(k.x[r * C + c]) || isnan(want_m[r])
                                    ? NAN
                                    : fmax(want_m[r], k.x[r * C + c]);
            }
            fx_assert_close(m, want_m, R, 0, 0, "row_max");
            assert_true(isnan(m[1]));

            fx_assert_status(ctx, clxent_row_expsum(ctx, &xm, &mv, &sv, NULL),
                             CLXENT_STATUS_OK);
            float *s = get(ctx, sb, 1, R, 0, R, CLXENT_F32, SENTINEL, "sum");
            for (size_t r = 0; r < R; ++r) {
                want_s[r] = 0.0;
                for (size_t c = 0; c < C; ++c)
                    want_s[r] += exp((double)k.x[r * C + c] - m[r]);
            }
            fx_assert_close(s, want_s, R, 1e-6, 1e-6, "row_expsum");

            for (int form = 0; form < 3; ++form) {
                clxent_status st =
                    form == 0   ? clxent_log_softmax(ctx, &xm, &om, NULL)
                    : form == 1 ? clxent_softmax(ctx, &xm, &om, NULL)
                                : clxent_copy(ctx, &xm, &om, NULL);
                fx_assert_status(ctx, st, CLXENT_STATUS_OK);
                for (size_t i = 0; i < R * C; ++i) {
                    double lse = ref_lse(k.x + (i / C) * C, C);
                    double v = form == 0   ? k.x[i] - lse
                               : form == 1 ? exp(k.x[i] - lse)
                                           : k.x[i];
                    want[i] = dtypes[od] == CLXENT_F32
                                  ? v
                                  : fx_round((float)v, dtypes[od]);
                }
                float *out = get(ctx, ob, R, C, 1, C + 1, dtypes[od],
                                 SENTINEL, "out");
                fx_assert_close(out, want, R * C, 1e-7, 1e-6,
                                form == 0   ? "log_softmax"
                                : form == 1 ? "softmax"
                                            : "copy");
                free(out);
            }
            free(m);
            free(s);
            free(want);
            clxent_buffer_release(xb);
            clxent_buffer_release(ob);
            clxent_buffer_release(mb);
            clxent_buffer_release(sb);
            case_free(&k);
        }
}

/* The reference itself on a hand-checked case: one row, x = [0, log 3],
 * target 0: p = [1/4, 3/4], loss = log 4, grad = [-3/4, 3/4]. */
static void test_reference_sanity(void **state) {
    (void)state;
    xcase k = case_new(1, 2, 1);
    k.x[0] = 0.0f;
    k.x[1] = (float)log(3.0);
    k.y[0] = 0;
    xref ref;
    ref_alloc(&k, &ref);
    ref_ce(&k, NULL, &ref);
    double p0 = 1.0 / (1.0 + exp((double)k.x[1]));
    assert_true(fabs(ref.loss[0] + log(p0)) < 1e-12);
    assert_true(fabs(ref.grad[0] - (p0 - 1.0)) < 1e-12);
    assert_true(fabs(ref.grad[1] - (1.0 - p0)) < 1e-12);
    assert_true(fabs(p0 - 0.25) < 1e-7);
    ref_free(&ref);
    case_free(&k);
}

/* Each test on a new host context. */
#define HOST_TEST(f) \
    cmocka_unit_test_setup_teardown(f, fx_setup_host, fx_teardown_context)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_sanity),
        HOST_TEST(test_option_sweep),
        HOST_TEST(test_ignore_index_inside_range),
        HOST_TEST(test_all_ignored),
        HOST_TEST(test_zero_rows),
        HOST_TEST(test_normalizer),
        HOST_TEST(test_grad_rows),
        HOST_TEST(test_probs_smoothing_weights),
        HOST_TEST(test_nan_row_isolated),
        HOST_TEST(test_ignored_nan_row),
        HOST_TEST(test_masked_classes),
        HOST_TEST(test_wide_rows),
        HOST_TEST(test_backward_saved_lse),
        HOST_TEST(test_target_out_of_range),
        HOST_TEST(test_primitives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
