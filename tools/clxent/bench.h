/* Results of `clxent bench`, shared by the command (cmd_bench.c) and its
 * SVG plot (bench_svg.c). */
#ifndef CLXENT_TOOL_BENCH_H
#define CLXENT_TOOL_BENCH_H

#include "ops.h"

#include <clxent/clxent.h>

#include <stddef.h>
#include <stdint.h>

/* One --shapes entry: RxC (nd 0), or N x C x D1.. (nd 1: outer N, inner
 * the product of the D's). */
typedef struct bench_shape_arg {
    size_t outer, cols, inner;
    int nd;
    char text[64];
} bench_shape_arg;

typedef struct bench_result {
    const ops_desc *op;
    size_t rows, cols;   /* rows: N*d1*..*dk for an N-d shape; cols: C */
    char shape[64];      /* as given: "4096x1000", "16x21x128x128" */
    clxent_dtype dtype;
    double median_ms, min_ms;
    double gelem_per_s, gbps;
    double copy_gbps;    /* clxent_copy over the same bytes, same run */
    double roofline;     /* gbps / copy_gbps */
    double host_ms;      /* host backend, < 0 when skipped */
    size_t extra_bytes;  /* library scratch held for the op */
    char kernels[256];   /* --explain: what ran, from the trace */
} bench_result;

/* The buffers of one shape on one context: logits x, int32 targets y, a
 * scalar loss, lse and a row vector (rows f32), and out (rows x cols).
 * nd: PyTorch's (N, C, d1..dk) with the classes on axis 1, run through
 * the _nd calls as outer N x cols C x inner d1*..*dk (rows = N*inner, the
 * targets (N, d1..dk)); otherwise a rows x cols matrix and the matrix
 * calls. */
typedef struct bench_bufs {
    clxent_buffer *x, *y, *loss, *lse, *out, *vec;
    size_t rows, cols;
    int nd;
    size_t outer, inner;
    clxent_dtype dtype;
} bench_bufs;

clxent_status bench_bufs_make(clxent_context *ctx, const void *x,
                              const int32_t *y, size_t rows, size_t cols,
                              clxent_dtype dtype, bench_bufs *b);
/* The same for an N-d shape: x holds outer x cols x inner values in
 * PyTorch's order, y outer x inner class indices. */
clxent_status bench_bufs_make_nd(clxent_context *ctx, const void *x,
                                 const int32_t *y, size_t outer, size_t cols,
                                 size_t inner, clxent_dtype dtype,
                                 bench_bufs *b);
void bench_bufs_release(bench_bufs *b);

/* Enqueues op (copy for the roofline) with mean reduction, no weights and
 * int32 targets; backward reads the lse a forward wrote into b->lse, the
 * others write no lse. */
clxent_status bench_enqueue(clxent_context *ctx, const ops_desc *op,
                            const bench_bufs *b);
/* One warm-up, then repeat timed runs: device time from profiling, or wall
 * clock where that is UNSUPPORTED (*wall is then set; set it beforehand to
 * force wall clock). Median and minimum in ms. */
clxent_status bench_time(clxent_context *ctx, const ops_desc *op,
                         const bench_bufs *b, size_t repeat, double *median,
                         double *min, int *wall);
double bench_now_ms(void);
/* Sorts the n >= 1 times t and gives their median (the mean of the two
 * middle ones for even n) and minimum: every bench reports these. */
void bench_median_min(double *t, size_t n, double *median, double *min);

/* `clxent bench --shard SPEC` under mpirun (bench_shard.c): the fused
 * loss of each shape over the rank grid; 0 or a CLI status. */
int bench_sharded(const char *spec, const char *device,
                  const bench_shape_arg *shapes, size_t nshapes,
                  size_t repeat, clxent_dtype dtype, int json);

/* Writes an SVG line plot of GB/s against the number of classes (log x)
 * with one line per op and the copy bandwidth as a horizontal line.
 * 0, or -1 with a reason in error. */
int bench_svg(const char *path, const char *title, const bench_result *results,
              size_t count, double copy_gbps, char *error, size_t error_size);

#endif
