/* A fixed mix of every operation on one (rows, cols, dtype, seed) case,
 * with all outputs collected into one byte blob so runs can be compared
 * bitwise. Used by test_determinism.c and test_threads.c. Thread-safe: no
 * cmocka assertions (they longjmp), only statuses and a message. */
#ifndef CLXENT_HARD_OPS_H
#define CLXENT_HARD_OPS_H

#include <clxent/clxent.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hard_blob {
    unsigned char *data;
    size_t size;
} hard_blob;

typedef struct hard_case {
    size_t rows, cols;
    clxent_dtype dtype;
    unsigned seed;
} hard_case;

static uint64_t hard_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* [lo, hi) */
static float hard_uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(hard_next(s) >> 11) *
                                    (1.0 / 9007199254740992.0));
}

static void hard_store(void *base, clxent_dtype dtype, size_t i, float v) {
    if (dtype == CLXENT_F32) {
        memcpy((unsigned char *)base + 4 * i, &v, 4);
        return;
    }
    uint16_t h = dtype == CLXENT_F16 ? clxent_f32_to_f16(v)
                                     : clxent_f32_to_bf16(v);
    memcpy((unsigned char *)base + 2 * i, &h, 2);
}

enum { HB_X, HB_P, HB_Y, HB_W, HB_G, HB_LOSS, HB_LSE, HB_GRAD, HB_LOSS2,
       HB_LSE2, HB_GRAD2, HB_LOSS3, HB_GRAD3, HB_LOGP, HB_SM, HB_MAX, HB_SUM,
       HB_NLL, HB_NLLG, HB_COUNT };

/* Runs the mix on ctx; on success *out holds every output (caller frees
 * out->data). On failure returns the status and fills error. */
static clxent_status hard_run(clxent_context *ctx, const hard_case *k,
                              hard_blob *out, char *error,
                              size_t error_size) {
    size_t R = k->rows, C = k->cols, es = clxent_dtype_size(k->dtype);
    size_t n = R * C, cap = 0;
    size_t bytes[HB_COUNT] = {
        n * es, n * es, R * 4, C * 4, R * 4,  /* x p y w g */
        R * 4, R * 4, n * es, 4, R * 4, n * es, /* loss lse grad, 2 */
        4, n * es, n * 4, n * es, R * 4, R * 4, /* probs, logp, sm, max */
        4, n * 4};
    size_t outputs_from = HB_LOSS;
    clxent_buffer *b[HB_COUNT] = {0};
    clxent_status st = CLXENT_STATUS_OK;
    const char *what = "setup";
    out->data = NULL;
    out->size = 0;

    unsigned char *x = malloc(n * es + 1), *p = malloc(n * es + 1);
    int32_t *y = malloc(R * 4 + 4);
    float *w = malloc(C * 4 + 4), *g = malloc(R * 4 + 4);
    if (!x || !p || !y || !w || !g) {
        st = CLXENT_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull * (k->seed + 1);
    for (size_t i = 0; i < n; ++i) {
        hard_store(x, k->dtype, i, hard_uniform(&s, -8.0f, 8.0f));
        hard_store(p, k->dtype, i, hard_uniform(&s, 0.0f, 2.0f / (float)C));
    }
    for (size_t r = 0; r < R; ++r) {
        y[r] = (int32_t)(hard_next(&s) % C);
        if (r % 5 == 3) y[r] = -100; /* ignored rows */
        g[r] = hard_uniform(&s, -1.0f, 1.0f);
    }
    for (size_t c = 0; c < C; ++c) w[c] = hard_uniform(&s, 0.25f, 2.0f);

    for (int i = 0; i < HB_COUNT && !st; ++i)
        st = clxent_buffer_create(ctx, bytes[i] ? bytes[i] : 1, &b[i]);
    const void *src[HB_LOSS] = {x, p, y, w, g};
    for (int i = 0; i < HB_LOSS && !st; ++i)
        st = clxent_buffer_write(ctx, b[i], 0, bytes[i], src[i]);
    if (st) goto done;

    clxent_matrix mx = {b[HB_X], 0, R, C, C, k->dtype};
    clxent_matrix mgrad = mx, mgrad2 = mx, mgrad3 = mx, msm = mx;
    mgrad.buffer = b[HB_GRAD];
    mgrad2.buffer = b[HB_GRAD2];
    mgrad3.buffer = b[HB_GRAD3];
    msm.buffer = b[HB_SM];
    clxent_matrix mlogp = {b[HB_LOGP], 0, R, C, C, CLXENT_F32};
    clxent_matrix mnllg = {b[HB_NLLG], 0, R, C, C, CLXENT_F32};
    clxent_targets ti, tp;
    memset(&ti, 0, sizeof ti);
    memset(&tp, 0, sizeof tp);
    ti.indices = clxent_vector_of(b[HB_Y], R, CLXENT_I32);
    tp.probs = mx;
    tp.probs.buffer = b[HB_P];
    clxent_vector vy = ti.indices;
    clxent_vector vw = clxent_vector_of(b[HB_W], C, CLXENT_F32);
    clxent_vector vg = clxent_vector_of(b[HB_G], R, CLXENT_F32);
    clxent_vector vloss = clxent_vector_of(b[HB_LOSS], R, CLXENT_F32);
    clxent_vector vlse = clxent_vector_of(b[HB_LSE], R, CLXENT_F32);
    clxent_vector vloss2 = clxent_vector_of(b[HB_LOSS2], 1, CLXENT_F32);
    clxent_vector vlse2 = clxent_vector_of(b[HB_LSE2], R, CLXENT_F32);
    clxent_vector vloss3 = clxent_vector_of(b[HB_LOSS3], 1, CLXENT_F32);
    clxent_vector vmax = clxent_vector_of(b[HB_MAX], R, CLXENT_F32);
    clxent_vector vsum = clxent_vector_of(b[HB_SUM], R, CLXENT_F32);
    clxent_vector vnll = clxent_vector_of(b[HB_NLL], 1, CLXENT_F32);

    clxent_loss_options none, mean, sum;
    clxent_loss_options_init(&none);
    none.reduction = CLXENT_REDUCTION_NONE;
    none.label_smoothing = 0.1f;
    none.z_loss = 1e-4f;
    clxent_loss_options_init(&mean);
    clxent_loss_options_init(&sum);
    sum.reduction = CLXENT_REDUCTION_SUM;
    sum.grad_scale = 0.5f;
    sum.label_smoothing = 0.05f;

#define HARD_STEP(name, call)                                                  \
    if (!st) {                                                                 \
        what = name;                                                           \
        st = (call);                                                           \
    }
    HARD_STEP("cross_entropy (none, weights, smoothing, z-loss, grad_rows)",
              clxent_cross_entropy(ctx, &mx, &ti, &vw, &none, &vg, &vloss,
                                   &vlse, &mgrad, NULL))
    HARD_STEP("cross_entropy_forward (mean)",
              clxent_cross_entropy_forward(ctx, &mx, &ti, NULL, &mean,
                                           &vloss2, &vlse2, NULL))
    HARD_STEP("cross_entropy_backward (sum)",
              clxent_cross_entropy_backward(ctx, &mx, &ti, &vw, &sum, &vlse2,
                                            NULL, &mgrad2, NULL))
    HARD_STEP("cross_entropy (probabilities, mean)",
              clxent_cross_entropy(ctx, &mx, &tp, NULL, &mean, NULL, &vloss3,
                                   NULL, &mgrad3, NULL))
    HARD_STEP("log_softmax", clxent_log_softmax(ctx, &mx, &mlogp, NULL))
    HARD_STEP("softmax", clxent_softmax(ctx, &mx, &msm, NULL))
    HARD_STEP("row_max", clxent_row_max(ctx, &mx, &vmax, NULL))
    HARD_STEP("row_expsum", clxent_row_expsum(ctx, &mx, &vmax, &vsum, NULL))
    HARD_STEP("nll_loss", clxent_nll_loss(ctx, &mlogp, &vy, &vw, &mean,
                                          &vnll, NULL))
    HARD_STEP("nll_loss_backward",
              clxent_nll_loss_backward(ctx, &mlogp, &vy, &vw, &mean, NULL,
                                       &mnllg, NULL))
    HARD_STEP("finish", clxent_finish(ctx))
#undef HARD_STEP
    if (st) goto done;

    for (int i = (int)outputs_from; i < HB_COUNT; ++i) cap += bytes[i];
    out->data = malloc(cap + 1);
    if (!out->data) {
        st = CLXENT_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    what = "buffer_read";
    for (int i = (int)outputs_from; i < HB_COUNT && !st; ++i) {
        st = clxent_buffer_read(ctx, b[i], 0, bytes[i],
                                out->data + out->size);
        out->size += bytes[i];
    }
done:
    if (st && error)
        snprintf(error, error_size, "%zu x %zu %s, %s: %s: %s", R, C,
                 clxent_dtype_name(k->dtype), what, clxent_status_name(st),
                 clxent_context_message(ctx));
    if (st) {
        free(out->data);
        out->data = NULL;
        out->size = 0;
    }
    for (int i = 0; i < HB_COUNT; ++i) clxent_buffer_release(b[i]);
    free(x);
    free(p);
    free(y);
    free(w);
    free(g);
    return st;
}

/* Index of the first differing byte, or -1 when equal. */
static long hard_diff(const hard_blob *a, const hard_blob *b) {
    if (a->size != b->size) return 0;
    for (size_t i = 0; i < a->size; ++i)
        if (a->data[i] != b->data[i]) return (long)i;
    return -1;
}

#endif
