/* The vocabulary of one batch split over every device present: each
 * OpenCL device and the host backend holds a slice of the classes (its
 * logits and weights), computes its partial records, the records (8
 * floats a row, never the logits) travel to the first device and are
 * combined there, the loss and lse are finalized, and each device writes
 * the gradient of its own classes. The result is checked against the
 * unsharded call on the first device.
 *
 *   sharded_vocab [ROWS [CLASSES]]     (default 64 x 5000)
 *
 * Prints "sharded over K devices: loss L (unsharded L'), max |dloss| ..,
 * max |dgrad| .." and exits 0 when both are within 1e-5; 1 otherwise. */
#include <clxent/clxent.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_SHARDS 8

typedef struct shard {
    clxent_context *ctx;
    clxent_shard range;
    size_t cols;
    clxent_buffer *x, *w, *y, *rec, *grad;
} shard;

static int failed(clxent_status st, clxent_context *ctx, const char *what) {
    if (st == CLXENT_STATUS_OK) return 0;
    fprintf(stderr, "%s: %s: %s\n", what, clxent_status_name(st),
            clxent_context_message(ctx));
    return 1;
}

/* A buffer holding the given host data. */
static clxent_status upload(clxent_context *ctx, const void *data,
                            size_t bytes, clxent_buffer **buf) {
    clxent_status st = clxent_buffer_create(ctx, bytes, buf);
    if (st == CLXENT_STATUS_OK)
        st = clxent_buffer_write(ctx, *buf, 0, bytes, data);
    return st;
}

/* Shard k's slice of the row-major logits and of the weights, its
 * records, on its own context. */
static clxent_status shard_partial(shard *s, const float *logits,
                                   const float *weights, const int32_t *y,
                                   size_t rows, size_t C) {
    size_t b = (size_t)s->range.class_begin;
    float *slice = malloc(rows * s->cols * sizeof *slice);
    if (!slice) return CLXENT_STATUS_OUT_OF_MEMORY;
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < s->cols; ++c)
            slice[r * s->cols + c] = logits[r * C + b + c];
    clxent_status st = upload(s->ctx, slice, rows * s->cols * 4, &s->x);
    free(slice);
    if (!st) st = upload(s->ctx, weights + b, s->cols * 4, &s->w);
    if (!st) st = upload(s->ctx, y, rows * 4, &s->y);
    if (!st) st = clxent_buffer_create(s->ctx, rows * CLXENT_PARTIAL_FLOATS * 4, &s->rec);
    if (!st) st = clxent_buffer_create(s->ctx, rows * s->cols * 4, &s->grad);
    if (st) return st;
    clxent_tensor x = clxent_tensor_of(s->x, rows, s->cols, 1, CLXENT_F32);
    clxent_tensor_targets t = {clxent_rows_of(s->y, rows, 1, CLXENT_I32), {0}};
    clxent_vector w = {s->w, 0, s->cols, CLXENT_F32};
    clxent_tensor rec = clxent_tensor_of(s->rec, rows, CLXENT_PARTIAL_FLOATS, 1, CLXENT_F32);
    clxent_options o = CLXENT_OPTIONS_INIT;
    o.loss.label_smoothing = 0.1f;
    return clxent_cross_entropy_partial_nd(s->ctx, &x, &t, &w, &s->range, &o,
                                           &rec, NULL);
}

int main(int argc, char **argv) {
    size_t rows = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    size_t C = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000;
    clxent_device_info infos[MAX_SHARDS];
    size_t n = 0;
    /* every slice gets a class: C >= n (n + 1) / 2 for the first's
     * C * 2 / (n (n + 1)) to be 1 or more */
    size_t need = MAX_SHARDS * (MAX_SHARDS + 1) / 2;
    if (rows == 0 || C < need) {
        fprintf(stderr, "usage: sharded_vocab [ROWS > 0] [CLASSES >= %zu]\n",
                need);
        return 2;
    }
    if (clxent_devices_list(infos, MAX_SHARDS, &n) != CLXENT_STATUS_OK)
        return 2;
    if (n > MAX_SHARDS) n = MAX_SHARDS;
    if (n < 2) { /* the host twice rather than no split at all */
        infos[1] = infos[0];
        n = 2;
    }
    float *logits = malloc(rows * C * 4), *weights = malloc(C * 4);
    int32_t *y = malloc(rows * 4);
    float *rec = malloc(rows * CLXENT_PARTIAL_FLOATS * 4);
    float *other = malloc(rows * CLXENT_PARTIAL_FLOATS * 4);
    float *grad = malloc(rows * C * 4), *ref = malloc(rows * C * 4);
    if (!logits || !weights || !y || !rec || !other || !grad || !ref) return 2;
    srand(7);
    for (size_t i = 0; i < rows * C; ++i)
        logits[i] = 8.0f * (float)rand() / (float)RAND_MAX - 4.0f;
    for (size_t c = 0; c < C; ++c) weights[c] = 0.5f + (float)(c % 3);
    for (size_t r = 0; r < rows; ++r) y[r] = (int32_t)((r * 7919u) % C);

    /* step 1 on every device: the classes in n uneven slices */
    shard s[MAX_SHARDS] = {{0}};
    int bad = 0;
    size_t begin = 0;
    for (size_t k = 0; k < n && !bad; ++k) {
        size_t end = k + 1 == n ? C : C * (k + 1) * (k + 2) / (n * (n + 1));
        s[k].range.class_begin = (int64_t)begin;
        s[k].range.classes_total = (int64_t)C;
        s[k].cols = end - begin;
        begin = end;
        clxent_status st = clxent_context_create(infos[k].spec, &s[k].ctx);
        bad = failed(st, s[k].ctx, infos[k].spec) ||
              failed(shard_partial(&s[k], logits, weights, y, rows, C),
                     s[k].ctx, "partial");
    }
    /* step 2 on shard 0: the others' records (O(rows) floats) come over */
    clxent_context *c0 = s[0].ctx;
    clxent_tensor r0 = clxent_tensor_of(s[0].rec, rows, CLXENT_PARTIAL_FLOATS, 1, CLXENT_F32);
    clxent_buffer *in = NULL;
    if (!bad) bad = failed(clxent_buffer_create(c0, rows * 32, &in), c0, "buffer");
    for (size_t k = 1; k < n && !bad; ++k) {
        clxent_tensor rk = clxent_tensor_of(in, rows, CLXENT_PARTIAL_FLOATS, 1, CLXENT_F32);
        bad = failed(clxent_buffer_read(s[k].ctx, s[k].rec, 0, rows * 32, other),
                     s[k].ctx, "read records") ||
              failed(clxent_buffer_write(c0, in, 0, rows * 32, other), c0,
                     "write records") ||
              failed(clxent_partial_combine(c0, &r0, &rk, &r0, NULL), c0,
                     "combine");
    }
    /* step 3: the loss on shard 0; the combined records back to every
     * shard, each one's gradient columns */
    float loss = NAN, loss_ref = NAN;
    clxent_buffer *lbuf = NULL;
    clxent_tensor_targets t0 = {clxent_rows_of(s[0].y, rows, 1, CLXENT_I32), {0}};
    clxent_options o = CLXENT_OPTIONS_INIT;
    o.loss.label_smoothing = 0.1f;
    if (!bad)
        bad = failed(clxent_buffer_create(c0, 4, &lbuf), c0, "buffer");
    if (!bad) {
        clxent_tensor l = clxent_rows_of(lbuf, 1, 1, CLXENT_F32);
        bad = failed(clxent_cross_entropy_finalize_nd(c0, &r0, &t0, &s[0].range,
                                                      &o, &l, NULL, NULL, NULL),
                     c0, "finalize") ||
              failed(clxent_buffer_read(c0, lbuf, 0, 4, &loss), c0, "read loss") ||
              failed(clxent_buffer_read(c0, s[0].rec, 0, rows * 32, rec), c0,
                     "read combined");
    }
    for (size_t k = 0; k < n && !bad; ++k) {
        clxent_tensor x = clxent_tensor_of(s[k].x, rows, s[k].cols, 1, CLXENT_F32);
        clxent_tensor g = clxent_tensor_of(s[k].grad, rows, s[k].cols, 1, CLXENT_F32);
        clxent_tensor rk = clxent_tensor_of(s[k].rec, rows, CLXENT_PARTIAL_FLOATS, 1, CLXENT_F32);
        clxent_tensor_targets t = {clxent_rows_of(s[k].y, rows, 1, CLXENT_I32), {0}};
        clxent_vector w = {s[k].w, 0, s[k].cols, CLXENT_F32};
        float *part = malloc(rows * s[k].cols * 4);
        bad = !part ||
              failed(clxent_buffer_write(s[k].ctx, s[k].rec, 0, rows * 32, rec),
                     s[k].ctx, "write combined") ||
              failed(clxent_cross_entropy_backward_shard_nd(
                         s[k].ctx, &x, &t, &w, &s[k].range, &o, &rk, NULL, &g, NULL),
                     s[k].ctx, "backward") ||
              failed(clxent_buffer_read(s[k].ctx, s[k].grad, 0, rows * s[k].cols * 4, part),
                     s[k].ctx, "read grad");
        for (size_t r = 0; part && !bad && r < rows; ++r)
            for (size_t c = 0; c < s[k].cols; ++c)
                grad[r * C + (size_t)s[k].range.class_begin + c] = part[r * s[k].cols + c];
        free(part);
    }
    /* the unsharded call on shard 0's device */
    clxent_buffer *xa = NULL, *wa = NULL, *ga = NULL;
    if (!bad)
        bad = failed(upload(c0, logits, rows * C * 4, &xa), c0, "upload") ||
              failed(upload(c0, weights, C * 4, &wa), c0, "upload") ||
              failed(clxent_buffer_create(c0, rows * C * 4, &ga), c0, "buffer");
    if (!bad) {
        clxent_tensor x = clxent_tensor_of(xa, rows, C, 1, CLXENT_F32);
        clxent_tensor g = clxent_tensor_of(ga, rows, C, 1, CLXENT_F32);
        clxent_tensor l = clxent_rows_of(lbuf, 1, 1, CLXENT_F32);
        clxent_vector w = {wa, 0, C, CLXENT_F32};
        bad = failed(clxent_cross_entropy_nd(c0, &x, &t0, &w, &o, NULL, &l, NULL,
                                             NULL, &g, NULL), c0, "unsharded") ||
              failed(clxent_buffer_read(c0, lbuf, 0, 4, &loss_ref), c0, "read") ||
              failed(clxent_buffer_read(c0, ga, 0, rows * C * 4, ref), c0, "read");
    }
    double dg = 0.0;
    for (size_t i = 0; !bad && i < rows * C; ++i) {
        double d = fabs((double)grad[i] - ref[i]);
        dg = d > dg || d != d ? d : dg; /* a NaN stays (fmax drops it) */
    }
    double dl = fabs((double)loss - loss_ref);
    if (!bad) {
        printf("sharded over %zu devices:", n);
        for (size_t k = 0; k < n; ++k)
            printf(" %s [%lld, %lld)", infos[k].spec,
                   (long long)s[k].range.class_begin,
                   (long long)(s[k].range.class_begin + (int64_t)s[k].cols));
        printf("\nloss %.6f (unsharded %.6f), max |dloss| %.2e, max |dgrad| %.2e\n",
               loss, loss_ref, dl, dg);
    }
    int ok = !bad && dl <= 1e-5 * fmax(1.0, fabs(loss_ref)) && dg <= 1e-5;
    clxent_buffer_release(xa);
    clxent_buffer_release(wa);
    clxent_buffer_release(ga);
    clxent_buffer_release(lbuf);
    clxent_buffer_release(in);
    for (size_t k = 0; k < n; ++k) {
        clxent_buffer_release(s[k].x);
        clxent_buffer_release(s[k].w);
        clxent_buffer_release(s[k].y);
        clxent_buffer_release(s[k].rec);
        clxent_buffer_release(s[k].grad);
        clxent_context_destroy(s[k].ctx);
    }
    free(logits), free(weights), free(y), free(rec), free(other), free(grad), free(ref);
    return ok ? 0 : 1;
}
