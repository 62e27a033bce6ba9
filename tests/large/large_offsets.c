/* 64-bit offsets: a matrix whose element offset and rows x stride lie
 * beyond 2^31 elements, as LLM vocabularies on 8 GB+ GPU buffers have. The
 * fused loss, lse and gradient of those rows on the device must equal the
 * host backend's on a compact copy of the same rows.
 *
 * Needs a device that can allocate about 17 GB in one buffer (f32), so it
 * is not part of the CTest suite (PoCL here has 4 GB); run it by hand:
 *   large_offsets [SPEC [small]]   exit 0 pass, 1 mismatch or error,
 *                                  77 too small
 * "small" runs the same check at small offsets (a self-test on any device).
 */
#include <clxent/clxent.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ROWS 3
#define COLS 5000

static int fail(clxent_context *ctx, const char *what, clxent_status st) {
    fprintf(stderr, "large_offsets: %s: %s (%s)\n", what,
            clxent_context_message(ctx), clxent_status_name(st));
    return 1;
}

int main(int argc, char **argv) {
    int small = argc > 2;
    /* past 2^31 elements, and rows x stride > 2^31 */
    const size_t offset = small ? 1005 : ((size_t)1 << 31) + 5;
    const size_t stride = small ? COLS + 7 : ((size_t)1 << 30) + 7;
    const size_t span = offset + (ROWS - 1) * stride + COLS;
    const size_t bytes = span * sizeof(float);
    clxent_context *dev = NULL, *host = NULL;
    clxent_status st = clxent_context_create(argc > 1 ? argv[1] : NULL, &dev);
    if (st) return fail(dev, "device context", st);
    clxent_device_info info;
    clxent_context_info(dev, &info);
    if (info.backend != CLXENT_BACKEND_OPENCL || info.max_alloc_bytes < bytes) {
        printf("large_offsets: %s cannot hold %zu bytes in one buffer "
               "(max %llu): skipped\n",
               info.name, bytes, (unsigned long long)info.max_alloc_bytes);
        clxent_context_destroy(dev);
        return 77;
    }
    if ((st = clxent_context_create("host", &host)))
        return fail(host, "host context", st);

    static float x[ROWS * COLS], g_dev[ROWS * COLS], g_host[ROWS * COLS];
    int32_t y[ROWS] = {7, COLS - 1, 0};
    for (size_t i = 0; i < ROWS * COLS; ++i)
        x[i] = (float)sin(0.37 * (double)i) * 6.0f;
    clxent_buffer *bx = NULL, *by = NULL, *bl = NULL, *bs = NULL;
    if ((st = clxent_buffer_create(dev, bytes, &bx)) ||
        (st = clxent_buffer_create(dev, sizeof y, &by)) ||
        (st = clxent_buffer_create(dev, ROWS * sizeof(float), &bl)) ||
        (st = clxent_buffer_create(dev, ROWS * sizeof(float), &bs)))
        return fail(dev, "allocating", st);
    for (size_t r = 0; r < ROWS; ++r)
        if ((st = clxent_buffer_write(dev, bx, (offset + r * stride) * 4,
                                      COLS * 4, x + r * COLS)))
            return fail(dev, "writing a row", st);
    if ((st = clxent_buffer_write(dev, by, 0, sizeof y, y)))
        return fail(dev, "writing targets", st);

    /* In place: the gradient overwrites the logits at the same offsets. */
    clxent_matrix m = {bx, offset, ROWS, COLS, stride, CLXENT_F32};
    clxent_targets t = {clxent_vector_of(by, ROWS, CLXENT_I32), {0}};
    clxent_loss_options opt = CLXENT_LOSS_OPTIONS_INIT;
    opt.reduction = CLXENT_REDUCTION_NONE;
    opt.label_smoothing = 0.1f;
    opt.in_place = 1;
    clxent_vector loss = clxent_vector_of(bl, ROWS, CLXENT_F32);
    clxent_vector lse = clxent_vector_of(bs, ROWS, CLXENT_F32);
    if ((st = clxent_cross_entropy(dev, &m, &t, NULL, &opt, NULL, &loss, &lse,
                                   &m, NULL)) ||
        (st = clxent_finish(dev)))
        return fail(dev, "fused cross-entropy", st);
    float l_dev[ROWS], s_dev[ROWS], l_host[ROWS], s_host[ROWS];
    clxent_buffer_read(dev, bl, 0, sizeof l_dev, l_dev);
    clxent_buffer_read(dev, bs, 0, sizeof s_dev, s_dev);
    for (size_t r = 0; r < ROWS; ++r)
        clxent_buffer_read(dev, bx, (offset + r * stride) * 4, COLS * 4,
                           g_dev + r * COLS);

    opt.in_place = 0;
    if ((st = clxent_cross_entropy_host(host, ROWS, COLS, CLXENT_F32, x,
                                        CLXENT_I32, y, NULL, &opt, l_host,
                                        s_host, g_host)))
        return fail(host, "host reference", st);
    double worst_loss = 0, worst_grad = 0;
    for (size_t r = 0; r < ROWS; ++r) {
        double e = fabs((double)l_dev[r] - l_host[r]) /
                   fmax(1.0, fabs((double)l_host[r]));
        worst_loss = fmax(worst_loss, e);
        worst_loss = fmax(worst_loss, fabs((double)s_dev[r] - s_host[r]) /
                                          fmax(1.0, fabs((double)s_host[r])));
    }
    for (size_t i = 0; i < ROWS * COLS; ++i)
        worst_grad = fmax(worst_grad, fabs((double)g_dev[i] - g_host[i]));
    int ok = worst_loss <= 1e-6 && worst_grad <= 1e-6;
    printf("large_offsets on %s: offset %zu, stride %zu, last element %zu "
           "(%.1f GB buffer): loss/lse rel err %.2e, grad abs err %.2e: %s\n",
           info.name, offset, stride, span - 1, bytes / 1e9, worst_loss,
           worst_grad, ok ? "ok" : "MISMATCH");
    clxent_buffer_release(bx);
    clxent_buffer_release(by);
    clxent_buffer_release(bl);
    clxent_buffer_release(bs);
    clxent_context_destroy(dev);
    clxent_context_destroy(host);
    return ok ? 0 : 1;
}
