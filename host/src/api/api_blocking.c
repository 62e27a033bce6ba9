/* clxent_cross_entropy_host: the blocking form on host arrays, built on
 * the buffer API and the fused (or forward) operation. */
#include "api/validate.h"

#include <string.h>

#define FN "clxent_cross_entropy_host"

enum { B_LOGITS, B_TARGETS, B_WEIGHTS, B_LOSS, B_LSE, B_GRAD, B_COUNT };

/* bytes = a * b * c, failing on overflow. */
static clxent_status product(clxent_context *ctx, const char *what, size_t a,
                             size_t b, size_t c, size_t *bytes) {
    if (!clx_mul_size(a, b, bytes) || !clx_mul_size(*bytes, c, bytes))
        return clx_fail(ctx, CLXENT_STATUS_SIZE_OVERFLOW, FN,
                        "%s: %zu x %zu x %zu bytes overflows size_t", what, a,
                        b, c);
    return CLXENT_STATUS_OK;
}

/* A buffer holding `bytes` (at least 1, so empty shapes still have one),
 * filled from `source` when given. */
static clxent_status stage(clxent_context *ctx, size_t bytes,
                           const void *source, clxent_buffer **buffer) {
    clxent_status st =
        clxent_buffer_create(ctx, bytes ? bytes : 1, buffer);
    if (!st && source && bytes)
        st = clxent_buffer_write(ctx, *buffer, 0, bytes, source);
    return st;
}

clxent_status clxent_cross_entropy_host(
    clxent_context *ctx, size_t rows, size_t cols, clxent_dtype dtype,
    const void *logits, clxent_dtype target_dtype, const void *targets,
    const float *weights, const clxent_loss_options *options, float *loss,
    float *lse, void *grad) {
    clxent_status st = clx_check_context(ctx, FN);
    if (st) return st;
    if (!logits || !targets || !loss)
        return clx_fail(ctx, CLXENT_STATUS_NULL_POINTER, FN, "%s: NULL",
                        !logits ? "logits" : !targets ? "targets" : "loss");
    if (!clx_is_float_dtype(dtype))
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, FN,
                        "dtype: %s (%d) is not f32, f16 or bf16",
                        clxent_dtype_name(dtype), (int)dtype);
    int by_index = target_dtype == CLXENT_I32 || target_dtype == CLXENT_I64;
    if (!by_index && target_dtype != dtype)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_DTYPE, FN,
                        "target_dtype: %s is neither an index type (i32, "
                        "i64) nor the logits' dtype %s",
                        clxent_dtype_name(target_dtype),
                        clxent_dtype_name(dtype));
    if (cols == 0 || rows > 0x7fffffff || cols > 0x7fffffff)
        return clx_fail(ctx, CLXENT_STATUS_INVALID_SHAPE, FN,
                        "rows x cols: %zu x %zu (cols must be >= 1, each at "
                        "most 2147483647)",
                        rows, cols);
    clxent_loss_options opt;
    st = clx_check_options(ctx, FN, options, &opt);
    if (st) return st;

    size_t es = clxent_dtype_size(dtype), bytes[B_COUNT];
    size_t loss_count = opt.reduction == CLXENT_REDUCTION_NONE ? rows : 1;
    if ((st = product(ctx, "logits", rows, cols, es, &bytes[B_LOGITS])) ||
        (st = product(ctx, "targets", rows, by_index ? 1 : cols,
                      clxent_dtype_size(target_dtype), &bytes[B_TARGETS])) ||
        (st = product(ctx, "weights", cols, 4, 1, &bytes[B_WEIGHTS])) ||
        (st = product(ctx, "loss", loss_count, 4, 1, &bytes[B_LOSS])) ||
        (st = product(ctx, "lse", rows, 4, 1, &bytes[B_LSE])))
        return st;
    bytes[B_GRAD] = bytes[B_LOGITS];

    clxent_buffer *buf[B_COUNT] = {0};
    const void *sources[B_COUNT] = {logits, targets, weights, NULL, NULL,
                                    NULL};
    for (int i = 0; i < B_COUNT && !st; ++i) {
        if ((i == B_WEIGHTS && !weights) || (i == B_GRAD && !grad)) continue;
        st = stage(ctx, bytes[i], sources[i], &buf[i]);
    }
    if (!st) {
        clxent_matrix x = {buf[B_LOGITS], 0, rows, cols, cols, dtype};
        clxent_targets t;
        memset(&t, 0, sizeof t);
        if (by_index) {
            t.indices = clxent_vector_of(buf[B_TARGETS], rows, target_dtype);
        } else {
            t.probs = x;
            t.probs.buffer = buf[B_TARGETS];
        }
        clxent_vector w = clxent_vector_of(buf[B_WEIGHTS], cols, CLXENT_F32);
        clxent_vector l = clxent_vector_of(buf[B_LOSS], loss_count,
                                           CLXENT_F32);
        clxent_vector s = clxent_vector_of(buf[B_LSE], rows, CLXENT_F32);
        clxent_matrix g = x;
        g.buffer = buf[B_GRAD];
        st = grad ? clxent_cross_entropy(ctx, &x, &t, &w, &opt, NULL, &l, &s,
                                         &g, NULL)
                  : clxent_cross_entropy_forward(ctx, &x, &t, &w, &opt, &l,
                                                 &s, NULL);
    }
    if (!st) st = clxent_finish(ctx);
    if (!st && loss_count)
        st = clxent_buffer_read(ctx, buf[B_LOSS], 0, bytes[B_LOSS], loss);
    if (!st && lse && rows)
        st = clxent_buffer_read(ctx, buf[B_LSE], 0, bytes[B_LSE], lse);
    if (!st && grad && bytes[B_GRAD])
        st = clxent_buffer_read(ctx, buf[B_GRAD], 0, bytes[B_GRAD], grad);
    for (int i = 0; i < B_COUNT; ++i) clxent_buffer_release(buf[i]);
    return st;
}
