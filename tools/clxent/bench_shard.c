/* clxent bench --shard under mpirun: each shape's fused loss and gradient
 * split over the rank grid (shard.h) as `clxent run --shard` splits it,
 * timed by wall clock from one barrier to the next (every rank's device
 * finished), beside the unsharded call on rank 0's device alone. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "commands.h"
#include "shard.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *cmd = "bench";

#ifdef CLXENT_WITH_MPI

typedef struct shard_bufs {
    clxent_buffer *x, *y, *loss, *grad;
} shard_bufs;

static void bufs_release(shard_bufs *b) {
    clxent_buffer_release(b->x);
    clxent_buffer_release(b->y);
    clxent_buffer_release(b->loss);
    clxent_buffer_release(b->grad);
    memset(b, 0, sizeof *b);
}

/* Random logits in [-4, 4) for no x kc x I values; targets from a seed
 * every rank of the batch shard shares (the same rows). */
static clxent_status make(clxent_context *ctx, size_t no, size_t kc,
                          size_t I, size_t C, clxent_dtype dtype,
                          uint64_t seed, uint64_t yseed, shard_bufs *b) {
    if (!cli_shape_fits(no, kc, I)) return CLXENT_STATUS_SIZE_OVERFLOW;
    size_t n = no * kc * I, rows = no * I;
    float *f = malloc((n ? n : 1) * sizeof *f);
    int32_t *y = malloc((rows ? rows : 1) * sizeof *y);
    void *x = NULL;
    clxent_status st = CLXENT_STATUS_OUT_OF_MEMORY;
    if (f && y) {
        cli_rng rng = cli_rng_seed(seed), ry = cli_rng_seed(yseed);
        for (size_t i = 0; i < n; i++) {
            float v = (float)cli_rng_uniform(&rng, -4.0, 4.0);
            f[i] = v == 0.0f ? 0.5f : v;
        }
        for (size_t r = 0; r < rows; r++)
            y[r] = (int32_t)(cli_rng_next(&ry) % C);
        x = cli_from_f32(f, n ? n : 1, dtype);
    }
    size_t es = clxent_dtype_size(dtype);
    if (x) st = clxent_buffer_create(ctx, (n ? n : 1) * es, &b->x);
    if (!st && n) st = clxent_buffer_write(ctx, b->x, 0, n * es, x);
    if (!st) st = clxent_buffer_create(ctx, (rows ? rows : 1) * 4, &b->y);
    if (!st && rows) st = clxent_buffer_write(ctx, b->y, 0, rows * 4, y);
    if (!st) st = clxent_buffer_create(ctx, 4, &b->loss);
    if (!st) st = clxent_buffer_create(ctx, (n ? n : 1) * es, &b->grad);
    free(f);
    free(y);
    free(x);
    return st;
}

/* Median and minimum of `repeat` timed runs after one warm-up: the grid's
 * (sharded) or rank 0's alone (comm MPI_COMM_SELF, only rank 0 calls). */
typedef clxent_status (*step_fn)(void *arg);

static clxent_status timed(step_fn fn, void *arg, MPI_Comm comm,
                           size_t repeat, double *median, double *min,
                           double *counted) {
    double *t = malloc(repeat * sizeof *t);
    clxent_status st = t ? fn(arg) : CLXENT_STATUS_OUT_OF_MEMORY;
    *counted = 0.0; /* the warm-up (kernel builds) is not timed */
    for (size_t k = 0; !st && k < repeat; k++) {
        MPI_Barrier(comm);
        double t0 = bench_now_ms();
        st = fn(arg);
        MPI_Barrier(comm);
        t[k] = bench_now_ms() - t0;
    }
    if (!st) bench_median_min(t, repeat, median, min);
    free(t);
    return st;
}

typedef struct step_arg {
    double mpi_s;        /* summed over the timed runs */
    clxent_mpi_stats last;
    clxent_context *ctx;
    const shard_grid *g; /* NULL: the unsharded call */
    clxent_tensor x, y, loss, grad;
    clxent_shard range;
} step_arg;

static clxent_status step(void *p) {
    step_arg *s = p;
    clxent_tensor_targets t = {s->y, {0}};
    clxent_options o = CLXENT_OPTIONS_INIT;
    clxent_tensor none = {0};
    clxent_status st =
        s->g ? clxent_mpi_cross_entropy_nd(s->ctx, s->g->vocab, s->g->batch,
                                           &s->x, &t, NULL, &s->range, &o,
                                           NULL, &s->loss, NULL, NULL, &s->grad)
             : clxent_cross_entropy_nd(s->ctx, &s->x, &t, NULL, &o, NULL,
                                       &s->loss, &none, NULL, &s->grad, NULL);
    if (s->g) {
        clxent_mpi_last_stats(&s->last);
        s->mpi_s += s->last.mpi_seconds;
    }
    return st ? st : clxent_finish(s->ctx);
}

static step_arg arg_of(clxent_context *ctx, const shard_grid *g,
                       const shard_bufs *b, size_t no, size_t kc, size_t I,
                       size_t c0, size_t C, clxent_dtype dtype) {
    step_arg s;
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    s.g = g;
    s.x = clxent_tensor_of(b->x, no, kc, I, dtype);
    s.grad = clxent_tensor_of(b->grad, no, kc, I, dtype);
    s.y = clxent_rows_of(b->y, no, I, CLXENT_I32);
    s.loss = clxent_rows_of(b->loss, 1, 1, CLXENT_F32);
    s.range.class_begin = (int64_t)c0;
    s.range.classes_total = (int64_t)C;
    return s;
}

/* One shape: the grid's time, then rank 0's unsharded time. */
static int one_shape(const shard_grid *g, clxent_context *ctx,
                     const bench_shape_arg *sh, size_t repeat,
                     clxent_dtype dtype, double *ms) {
    size_t o0, o1, c0, c1, I = sh->inner, C = sh->cols;
    shard_range(sh->outer, g->B, g->b, &o0, &o1);
    shard_range(C, g->V, g->v, &c0, &c1);
    shard_bufs b = {0};
    clxent_status st = make(ctx, o1 - o0, c1 - c0, I, C, dtype,
                            1000u + (uint64_t)g->rank, 7u + (uint64_t)g->b, &b);
    step_arg s = arg_of(ctx, g, &b, o1 - o0, c1 - c0, I, c0, C, dtype);
    /* a local failure still joins the call, whose agreement reports it */
    if (st) s.x.buffer = NULL;
    st = timed(step, &s, MPI_COMM_WORLD, repeat, &ms[0], &ms[1], &s.mpi_s);
    bufs_release(&b);
    /* the MPI share of the time (mean over the timed runs), the largest
     * over the ranks, and the bytes each gave (equal for equal blocks:
     * the largest) */
    double share = ms[0] > 0 ? 1e3 * s.mpi_s / ((double)repeat * ms[0]) : 0;
    double mine[2] = {share, (double)s.last.exchanged_bytes}, most[2];
    MPI_Allreduce(mine, most, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    ms[4] = most[0];
    ms[5] = most[1];
    ms[6] = s.last.collectives;
    int rc = shard_agree_rc(g, st ? CLI_RUNTIME : 0);
    if (rc) {
        if (g->rank == 0) cli_fail_status(cmd, ctx, st, sh->text);
        return rc;
    }
    /* rank 0 alone: the others wait without spinning (a busy MPI wait
     * would take a core from it) */
    MPI_Request done;
    if (g->rank != 0) {
        int flag = 0;
        MPI_Ibarrier(MPI_COMM_WORLD, &done);
        struct timespec ms1 = {0, 1000000};
        while (MPI_Test(&done, &flag, MPI_STATUS_IGNORE), !flag)
            nanosleep(&ms1, NULL);
        return 0;
    }
    {
        st = make(ctx, sh->outer, C, I, C, dtype, 1, 7, &b);
        s = arg_of(ctx, NULL, &b, sh->outer, C, I, 0, C, dtype);
        if (!st)
            st = timed(step, &s, MPI_COMM_SELF, repeat, &ms[2], &ms[3], &s.mpi_s);
        bufs_release(&b);
        if (st) ms[2] = ms[3] = -1.0; /* does not fit one device: no time */
    }
    MPI_Ibarrier(MPI_COMM_WORLD, &done);
    MPI_Wait(&done, MPI_STATUS_IGNORE);
    return 0;
}

static void report(const shard_grid *g, const clxent_device_info *info,
                   const bench_shape_arg *shapes, size_t n, const double *ms,
                   clxent_dtype dtype, int json) {
    if (json) {
        printf("{\"device\": ");
        cli_json_string(stdout, info->spec);
        printf(", \"name\": ");
        cli_json_string(stdout, info->name);
        printf(", \"dtype\": \"%s\", \"ranks\": %d, \"vocab_shards\": %d, "
               "\"batch_shards\": %d, \"results\": [\n",
               clxent_dtype_name(dtype), g->size, g->V, g->B);
    } else {
        printf("clxent bench --shard %dx%d (vocabulary x batch) over %d "
               "ranks, fused %s on %s (%s), wall clock of the slowest rank; "
               "MPI: its largest share in MPI calls; exchanged: bytes a rank "
               "gave a step\n",
               g->V, g->B, g->size, clxent_dtype_name(dtype), info->spec,
               info->name);
        printf("%-18s %10s %10s %9s %6s %10s %12s\n", "shape", "median ms",
               "min ms", "Gelem/s", "MPI", "exchanged", "one rank ms");
    }
    for (size_t i = 0; i < n; i++) {
        const double *m = ms + 8 * i;
        double elems = (double)shapes[i].outer * (double)shapes[i].cols *
                       (double)shapes[i].inner;
        double gel = elems / (m[0] * 1e6);
        if (json)
            printf("  {\"shape\": \"%s\", \"ranks\": %d, "
                   "\"slowest_rank_median_ms\": %g, \"min_ms\": %g, "
                   "\"gelem_per_s\": %g, \"mpi_ms\": %g, \"mpi_fraction\": %g, "
                   "\"exchanged_bytes\": %.0f, \"collectives\": %.0f, "
                   "\"one_rank_median_ms\": %g}%s\n",
                   shapes[i].text, g->size, m[0], m[1], gel, m[4] * m[0], m[4], m[5],
                   m[6], m[2], i + 1 < n ? "," : "");
        else
            printf("%-18s %10.3f %10.3f %9.3f %5.0f%% %9.0fB %12.3f\n",
                   shapes[i].text, m[0], m[1], gel, 100.0 * m[4], m[5], m[2]);
    }
    if (json) printf("]}\n");
}

int bench_sharded(const char *spec, const char *device,
                  const bench_shape_arg *shapes, size_t nshapes,
                  size_t repeat, clxent_dtype dtype, int json) {
    shard_grid g;
    int rc = shard_open(cmd, spec, &g);
    if (rc) return rc;
    clxent_context *ctx = NULL;
    double *ms = calloc(8 * nshapes + 1, sizeof *ms);
    rc = ms ? cli_open_context(cmd, device, &ctx) : cli_fail(cmd, "out of memory");
    rc = shard_agree_rc(&g, rc);
    for (size_t i = 0; !rc && i < nshapes; i++)
        rc = one_shape(&g, ctx, &shapes[i], repeat, dtype, ms + 8 * i);
    if (!rc && g.rank == 0) {
        clxent_device_info info;
        memset(&info, 0, sizeof info);
        clxent_context_info(ctx, &info);
        report(&g, &info, shapes, nshapes, ms, dtype, json);
    }
    clxent_context_destroy(ctx);
    free(ms);
    shard_close(&g);
    return rc;
}

#else

int bench_sharded(const char *spec, const char *device,
                  const bench_shape_arg *shapes, size_t nshapes,
                  size_t repeat, clxent_dtype dtype, int json) {
    (void)device, (void)shapes, (void)nshapes, (void)repeat, (void)dtype,
        (void)json;
    shard_grid g;
    return shard_open(cmd, spec, &g);
}

#endif
