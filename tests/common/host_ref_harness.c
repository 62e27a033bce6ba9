/* The naive reference, its cases and its runs of host_ref_harness.h. */
#include "host_ref_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* A case: data, options and layout. */

xcase case_new(size_t R, size_t C, uint64_t seed) {
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

void case_weights(xcase *k, uint64_t seed) {
    fx_rng rng = fx_rng_seed(seed);
    k->w = malloc((k->C + 1) * sizeof(float));
    assert_non_null(k->w);
    fx_fill_uniform(&rng, k->w, k->C, 0.25f, 2.0f);
}

void case_grad_rows(xcase *k, uint64_t seed) {
    fx_rng rng = fx_rng_seed(seed);
    k->gr = malloc((k->R + 1) * sizeof(float));
    assert_non_null(k->gr);
    fx_fill_uniform(&rng, k->gr, k->R, -1.0f, 2.0f);
}

/* Makes x and t exactly what the backend will read. */
void case_round(xcase *k) {
    for (size_t i = 0; i < k->R * k->C; ++i) {
        k->x[i] = fx_round(k->x[i], k->dt);
        k->t[i] = fx_round(k->t[i], k->dt);
    }
}

void case_free(xcase *k) {
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

const clxent_dtype dtypes[3] = {CLXENT_F32, CLXENT_F16, CLXENT_BF16};

/* ------------------------------------------------------------------ */
/* The naive reference. */

size_t loss_len(const xcase *k) {
    return k->opt.reduction == CLXENT_REDUCTION_NONE ? k->R : 1;
}

void ref_alloc(const xcase *k, xref *o) {
    o->loss = calloc(k->R + 1, sizeof(double));
    o->lse = calloc(k->R + 1, sizeof(double));
    o->grad = calloc(k->R * k->C + 1, sizeof(double));
    assert_true(o->loss && o->lse && o->grad);
}

void ref_free(xref *o) {
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

double ref_lse(const float *x, size_t C) {
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
void ref_ce(const xcase *k, const float *lse_given, xref *o) {
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

int same_value(float a, float b) {
    return (isnan(a) && isnan(b)) || a == b;
}

/* rows x cols values (NULL: SENTINEL) at offset off with row stride ld;
 * every other element holds pad. */
clxent_buffer *put(clxent_context *ctx, const float *v, size_t rows,
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
float *get(clxent_context *ctx, const clxent_buffer *b, size_t rows,
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

const char *run_name[] = {"fused", "forward", "backward",
                          "in-place", "nll", "nll_backward"};

void outputs_free(outputs *o) {
    free(o->loss);
    free(o->lse);
    free(o->grad);
    memset(o, 0, sizeof *o);
}

/* Runs `kind` on k (lse_in for backward, lp for NLL) and reads every
 * output back (SENTINEL where nothing was written). */
clxent_status run_op(clxent_context *ctx, const xcase *k,
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

void expect_untouched(const float *v, size_t n, const char *what) {
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
void check_case(clxent_context *ctx, xcase *k, const char *label) {
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
