/* Buffers, enqueueing and timing for `clxent bench`. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty, strtok_r */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

void bench_bufs_release(bench_bufs *b) {
    clxent_buffer_release(b->x); clxent_buffer_release(b->y);
    clxent_buffer_release(b->loss); clxent_buffer_release(b->lse);
    clxent_buffer_release(b->out); clxent_buffer_release(b->vec);
    memset(b, 0, sizeof *b);
}

/* The tensor arguments of b (nd): logits and out outer x cols x inner,
 * per-position arrays outer x inner, the loss 1 x 1. */
typedef struct bench_tensors {
    clxent_tensor x, out, y, loss, lse, vec;
} bench_tensors;

static bench_tensors tensors_of(const bench_bufs *b) {
    bench_tensors t;
    t.x = clxent_tensor_of(b->x, b->outer, b->cols, b->inner, b->dtype);
    t.out = clxent_tensor_of(b->out, b->outer, b->cols, b->inner, b->dtype);
    t.y = clxent_rows_of(b->y, b->outer, b->inner, CLXENT_I32);
    t.loss = clxent_rows_of(b->loss, 1, 1, CLXENT_F32);
    t.lse = clxent_rows_of(b->lse, b->outer, b->inner, CLXENT_F32);
    t.vec = clxent_rows_of(b->vec, b->outer, b->inner, CLXENT_F32);
    return t;
}

/* The lse that backward reads, written by the forward that matches b. */
static clxent_status forward_lse(clxent_context *ctx, const bench_bufs *b) {
    clxent_vector none = {0};
    if (b->nd) {
        bench_tensors t = tensors_of(b);
        clxent_tensor_targets tg;
        memset(&tg, 0, sizeof tg);
        tg.indices = t.y;
        clxent_options opt = CLXENT_OPTIONS_INIT;
        return clxent_cross_entropy_forward_nd(ctx, &t.x, &tg, &none, &opt,
                                               &t.loss, &t.lse, NULL, NULL);
    }
    clxent_matrix mx = clxent_matrix_of(b->x, b->rows, b->cols, b->dtype);
    clxent_vector yv = clxent_vector_of(b->y, b->rows, CLXENT_I32);
    clxent_vector loss = clxent_vector_of(b->loss, 1, CLXENT_F32);
    clxent_vector lse = clxent_vector_of(b->lse, b->rows, CLXENT_F32);
    clxent_targets t = {yv, {0}};
    clxent_loss_options opt = CLXENT_LOSS_OPTIONS_INIT;
    return clxent_cross_entropy_forward(ctx, &mx, &t, &none, &opt, &loss,
                                        &lse, NULL);
}

/* Allocates and fills b (the lse included); rows = outer * inner. */
static clxent_status bufs_make(clxent_context *ctx, const void *x,
                               const int32_t *y, size_t outer, size_t cols,
                               size_t inner, int nd, clxent_dtype dtype,
                               bench_bufs *b) {
    memset(b, 0, sizeof *b);
    size_t rows = outer * inner;
    b->rows = rows; b->cols = cols; b->dtype = dtype;
    b->nd = nd; b->outer = outer; b->inner = inner;
    size_t xb = rows * cols * clxent_dtype_size(dtype);
    clxent_status st;
    if ((st = clxent_buffer_create(ctx, xb, &b->x)) ||
        (st = clxent_buffer_write(ctx, b->x, 0, xb, x)) ||
        (st = clxent_buffer_create(ctx, rows * 4, &b->y)) ||
        (st = clxent_buffer_write(ctx, b->y, 0, rows * 4, y)) ||
        (st = clxent_buffer_create(ctx, 4, &b->loss)) ||
        (st = clxent_buffer_create(ctx, rows * 4, &b->lse)) ||
        (st = clxent_buffer_create(ctx, rows * 4, &b->vec)) ||
        (st = clxent_buffer_create(ctx, xb, &b->out))) {
        bench_bufs_release(b);
        return st;
    }
    st = forward_lse(ctx, b);
    if (st == CLXENT_STATUS_OK) st = clxent_finish(ctx);
    if (st != CLXENT_STATUS_OK) bench_bufs_release(b);
    return st;
}

clxent_status bench_bufs_make(clxent_context *ctx, const void *x,
                              const int32_t *y, size_t rows, size_t cols,
                              clxent_dtype dtype, bench_bufs *b) {
    return bufs_make(ctx, x, y, rows, cols, 1, 0, dtype, b);
}

clxent_status bench_bufs_make_nd(clxent_context *ctx, const void *x,
                                 const int32_t *y, size_t outer, size_t cols,
                                 size_t inner, clxent_dtype dtype,
                                 bench_bufs *b) {
    return bufs_make(ctx, x, y, outer, cols, inner, 1, dtype, b);
}

/* bench_enqueue for an N-d shape: the same arguments as tensors. */
static clxent_status enqueue_nd(clxent_context *ctx, const ops_desc *op,
                                const bench_bufs *b) {
    bench_tensors t = tensors_of(b);
    clxent_vector none = {0};
    clxent_tensor nothing;
    memset(&nothing, 0, sizeof nothing);
    clxent_tensor_targets tg;
    memset(&tg, 0, sizeof tg);
    tg.indices = t.y;
    clxent_options opt = CLXENT_OPTIONS_INIT;
    ops_nd_args args = {&t.x, &tg, &t.y, &none, &opt, &nothing, &t.lse,
                        &t.loss, op->io & OPS_LSE_OUT ? &nothing : &t.vec,
                        &nothing, &t.out, NULL};
    return op->enqueue_nd(ctx, &args);
}

clxent_status bench_enqueue(clxent_context *ctx, const ops_desc *op,
                            const bench_bufs *b) {
    if (b->nd) return enqueue_nd(ctx, op, b);
    clxent_matrix x = clxent_matrix_of(b->x, b->rows, b->cols, b->dtype);
    clxent_matrix out = clxent_matrix_of(b->out, b->rows, b->cols, b->dtype);
    clxent_vector none = {0};
    clxent_vector y = clxent_vector_of(b->y, b->rows, CLXENT_I32);
    clxent_vector loss = clxent_vector_of(b->loss, 1, CLXENT_F32);
    clxent_vector lse = clxent_vector_of(b->lse, b->rows, CLXENT_F32);
    clxent_vector vec = clxent_vector_of(b->vec, b->rows, CLXENT_F32);
    clxent_targets t = {y, {0}};
    clxent_loss_options opt = CLXENT_LOSS_OPTIONS_INIT;
    /* The lse out stays unwritten: the bytes counted leave it out. */
    ops_args args = {&x, &t, &y, &none, &opt, &none, &lse, &loss,
                     op->io & OPS_LSE_OUT ? &none : &vec, &out, NULL};
    return op->enqueue(ctx, &args);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

clxent_status bench_time(clxent_context *ctx, const ops_desc *op,
                         const bench_bufs *b, size_t repeat, double *median,
                         double *min, int *wall) {
    double *t = malloc(repeat * sizeof *t);
    if (!t) return CLXENT_STATUS_OUT_OF_MEMORY;
    clxent_status st = bench_enqueue(ctx, op, b);
    if (st == CLXENT_STATUS_OK) st = clxent_finish(ctx);
    for (size_t i = 0; st == CLXENT_STATUS_OK && i < repeat; i++) {
        double start = bench_now_ms();
        uint64_t ns = 0;
        if ((st = bench_enqueue(ctx, op, b)) != CLXENT_STATUS_OK) break;
        st = *wall ? CLXENT_STATUS_UNSUPPORTED
                   : clxent_context_last_time_ns(ctx, &ns);
        if (st == CLXENT_STATUS_UNSUPPORTED) {
            *wall = 1;
            st = clxent_finish(ctx);
            t[i] = bench_now_ms() - start;
        } else {
            t[i] = ns * 1e-6;
        }
    }
    if (st == CLXENT_STATUS_OK) bench_median_min(t, repeat, median, min);
    free(t);
    return st;
}

void bench_median_min(double *t, size_t n, double *median, double *min) {
    qsort(t, n, sizeof *t, cmp_double);
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    *min = t[0];
}

