/* clxent_buffer_wrap_host: operations in the caller's own memory. The
 * fused loss over wrapped logits, targets, loss and gradient equals,
 * bit for bit, the same call over buffers filled by copies; host changes
 * reach the device through a write from the memory itself, results the
 * host through a read into it; offsets inside the memory; bad arguments;
 * the memory is never freed by clxent (ASan and valgrind watch). */
#include "fixtures.h"

#include <stdlib.h>
#include <string.h>

enum { R = 37, C = 1000 };

typedef struct {
    float x[R * C], grad[R * C], loss[R];
    int64_t y[R];
} blob;

static void fill(blob *b, uint64_t seed) {
    fx_rng rng = fx_rng_seed(seed);
    fx_fill_uniform(&rng, b->x, R * C, -8.0f, 8.0f);
    for (size_t r = 0; r < R; ++r) b->y[r] = (int64_t)(fx_next(&rng) % C);
    memset(b->grad, 0xff, sizeof b->grad); /* NaNs: all must be written */
    memset(b->loss, 0xff, sizeof b->loss);
}

/* The fused call, reduction none, on four buffers (x, y, loss, grad). */
static void fused(clxent_context *ctx, clxent_buffer *const bufs[4]) {
    clxent_tensor x = clxent_tensor_of(bufs[0], R, C, 1, CLXENT_F32);
    clxent_tensor_targets t = {0};
    t.indices = clxent_rows_of(bufs[1], R, 1, CLXENT_I64);
    clxent_tensor loss = clxent_rows_of(bufs[2], R, 1, CLXENT_F32);
    clxent_tensor grad = clxent_tensor_of(bufs[3], R, C, 1, CLXENT_F32);
    clxent_options opt = CLXENT_OPTIONS_INIT;
    opt.loss.reduction = CLXENT_REDUCTION_NONE;
    opt.loss.label_smoothing = 0.1f;
    clxent_vector w = {0};
    fx_assert_status(ctx, clxent_cross_entropy_nd(ctx, &x, &t, &w, &opt, NULL,
                                                  &loss, NULL, NULL, &grad,
                                                  NULL),
                     CLXENT_STATUS_OK);
}

/* Reads loss and gradient of bufs into b's own arrays. */
static void read_back(clxent_context *ctx, clxent_buffer *const bufs[4],
                      blob *b) {
    fx_assert_status(ctx, clxent_buffer_read(ctx, bufs[2], 0, sizeof b->loss,
                                             b->loss),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_read(ctx, bufs[3], 0, sizeof b->grad,
                                             b->grad),
                     CLXENT_STATUS_OK);
}

static void wrap_all(clxent_context *ctx, blob *b, clxent_buffer *bufs[4]) {
    void *mem[4] = {b->x, b->y, b->loss, b->grad};
    size_t bytes[4] = {sizeof b->x, sizeof b->y, sizeof b->loss,
                       sizeof b->grad};
    for (int i = 0; i < 4; ++i)
        fx_assert_status(ctx, clxent_buffer_wrap_host(ctx, mem[i], bytes[i],
                                                      &bufs[i]),
                         CLXENT_STATUS_OK);
}

static void same_as_copies(clxent_context *ctx, clxent_context *unused) {
    (void)unused;
    blob *in_place = malloc(sizeof *in_place), *copied = malloc(sizeof *copied);
    assert_non_null(in_place);
    assert_non_null(copied);
    fill(in_place, 7);
    fill(copied, 7);

    clxent_buffer *bufs[4], *copies[4];
    wrap_all(ctx, in_place, bufs);
    copies[0] = fx_upload(ctx, copied->x, sizeof copied->x);
    copies[1] = fx_upload(ctx, copied->y, sizeof copied->y);
    copies[2] = fx_upload(ctx, copied->loss, sizeof copied->loss);
    copies[3] = fx_upload(ctx, copied->grad, sizeof copied->grad);
    fused(ctx, bufs);
    fused(ctx, copies);
    /* Results reach the wrapped memory by a read into itself. */
    read_back(ctx, bufs, in_place);
    read_back(ctx, copies, copied);
    assert_memory_equal(in_place->loss, copied->loss, sizeof copied->loss);
    assert_memory_equal(in_place->grad, copied->grad, sizeof copied->grad);
    assert_true(copied->loss[0] == copied->loss[0]); /* not the NaN fill */

    /* The host changes its logits; a write from the memory itself hands
     * them over (rows 3.. only: an offset inside the memory). */
    for (size_t i = 3 * C; i < R * C; ++i) {
        in_place->x[i] = -in_place->x[i];
        copied->x[i] = -copied->x[i];
    }
    size_t at = 3 * C * sizeof(float);
    fx_assert_status(ctx, clxent_buffer_write(ctx, bufs[0], at,
                                              sizeof in_place->x - at,
                                              (char *)in_place->x + at),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_write(ctx, copies[0], 0,
                                              sizeof copied->x, copied->x),
                     CLXENT_STATUS_OK);
    fused(ctx, bufs);
    fused(ctx, copies);
    float part[R];
    fx_assert_status(ctx, clxent_buffer_read(ctx, bufs[2], 0, sizeof part, part),
                     CLXENT_STATUS_OK); /* into other memory: a copy */
    read_back(ctx, bufs, in_place);
    read_back(ctx, copies, copied);
    assert_memory_equal(part, copied->loss, sizeof part);
    assert_memory_equal(in_place->grad, copied->grad, sizeof copied->grad);

    for (int i = 0; i < 4; ++i) {
        clxent_buffer_release(bufs[i]);
        clxent_buffer_release(copies[i]);
    }
    /* Still the caller's: writable and freed by the caller alone. */
    in_place->x[0] = 1.0f;
    free(in_place);
    free(copied);
}

static void test_device(void **state) {
    (void)state;
    fx_on_pair(1, same_as_copies);
}

static void test_host(void **state) {
    (void)state;
    fx_on_pair(0, same_as_copies);
}

static void bad_arguments(clxent_context *ctx, clxent_context *unused) {
    (void)unused;
    assert_non_null(ctx);
    float mem[4];
    clxent_buffer *buf = (clxent_buffer *)1;
    fx_assert_status(ctx, clxent_buffer_wrap_host(ctx, NULL, 16, &buf),
                     CLXENT_STATUS_NULL_POINTER);
    assert_null(buf);
    assert_contains(clxent_context_message(ctx), "memory");
    fx_assert_status(ctx, clxent_buffer_wrap_host(ctx, mem, 16, NULL),
                     CLXENT_STATUS_NULL_POINTER);
    assert_contains(clxent_context_message(ctx), "buffer");
    buf = (clxent_buffer *)1;
    fx_assert_status(ctx, clxent_buffer_wrap_host(ctx, mem, 0, &buf),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    assert_null(buf);
    assert_int_equal(clxent_buffer_wrap_host(NULL, mem, 16, &buf),
                     CLXENT_STATUS_NULL_POINTER);
    /* A wrap outlives its context and is released alone. */
    fx_assert_status(ctx, clxent_buffer_wrap_host(ctx, mem, sizeof mem, &buf),
                     CLXENT_STATUS_OK);
    assert_int_equal(clxent_buffer_size(buf), sizeof mem);
    clxent_context_destroy(ctx);
    clxent_buffer_release(buf);
}

static void test_bad_arguments(void **state) {
    (void)state;
    bad_arguments(fx_host_context(), NULL); /* each destroys its context */
    clxent_context *ctx = fx_device_context();
    if (ctx) bad_arguments(ctx, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_device),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
