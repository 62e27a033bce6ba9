/* clxent run --shard under mpirun: every rank reads the same files and
 * takes its block (batch shard b: outer indices [o0, o1); vocabulary
 * shard v: classes [c0, c1)), clxent_mpi does the step, and rank 0
 * gathers the blocks of the outputs and writes them as one run would. */
#include "run.h"
#include "shard.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *cmd = "run";

#ifdef CLXENT_WITH_MPI

typedef struct block {
    size_t o0, o1, c0, c1;
} block;

static block block_of(const run_inputs *in, const shard_grid *g, int rank) {
    block k;
    shard_range(in->outer, g->B, rank / g->V, &k.o0, &k.o1);
    shard_range(in->classes, g->V, rank % g->V, &k.c0, &k.c1);
    return k;
}

/* Block k of the contiguous outer x classes x inner array `full` (es
 * bytes a value) to or from the contiguous `part`. */
static void copy_block(char *full, char *part, const run_inputs *in,
                       block k, size_t es, int to_full) {
    size_t I = in->inner, kc = k.c1 - k.c0, run = I * es;
    for (size_t o = k.o0; o < k.o1; ++o)
        for (size_t c = k.c0; c < k.c1; ++c) {
            char *f = full + (o * in->classes + c) * run;
            char *p = part + ((o - k.o0) * kc + (c - k.c0)) * run;
            memcpy(to_full ? f : p, to_full ? p : f, run);
        }
}

/* The input's tensor of a block: no outer x classes x inner, contiguous. */
static clxent_tensor block_tensor(const run_inputs *in, clxent_buffer *buf,
                                  block k, size_t classes,
                                  clxent_dtype dtype) {
    clxent_tensor t = run_tensor(in, buf, classes, dtype);
    t.outer = k.o1 - k.o0;
    t.outer_stride = classes * in->inner;
    return t;
}

typedef struct shard_buffers {
    clxent_buffer *x, *t, *w, *loss, *lse, *grad;
} shard_buffers;

static clxent_status upload(clxent_context *ctx, size_t bytes,
                            const void *data, clxent_buffer **out) {
    clxent_status st = clxent_buffer_create(ctx, bytes ? bytes : 16, out);
    if (!st && data && bytes) st = clxent_buffer_write(ctx, *out, 0, bytes, data);
    return st;
}

/* This rank's inputs in buffers and the step; the agreed status. */
static clxent_status step(const run_args *a, const run_inputs *in,
                          const shard_grid *g, clxent_context *ctx,
                          shard_buffers *b, block k) {
    size_t es = clxent_dtype_size(in->dtype), I = in->inner;
    size_t kc = k.c1 - k.c0, no = k.o1 - k.o0, n = no * kc * I;
    char *part = malloc(n * es + 1);
    clxent_status st = part ? CLXENT_STATUS_OK : CLXENT_STATUS_OUT_OF_MEMORY;
    if (part) copy_block(in->xs, part, in, k, es, 0);
    if (!st) st = upload(ctx, n * es, part, &b->x);
    if (!st && a->targets) {
        size_t ts = npy_dtype_size(in->t.dtype);
        st = upload(ctx, no * I * ts, (char *)in->t.data + k.o0 * I * ts, &b->t);
    } else if (!st && part) {
        copy_block(in->ps, part, in, k, es, 0);
        st = upload(ctx, n * es, part, &b->t);
    }
    free(part);
    if (!st && in->w32) st = upload(ctx, kc * 4, in->w32 + k.c0, &b->w);
    int none = a->opt.loss.reduction == CLXENT_REDUCTION_NONE;
    if (!st) st = upload(ctx, (none ? no * I : 1) * 4, NULL, &b->loss);
    if (!st && a->lse_out) st = upload(ctx, no * I * 4, NULL, &b->lse);
    if (!st && a->grad_out) st = upload(ctx, n * es, NULL, &b->grad);
    clxent_tensor x = block_tensor(in, b->x, k, kc, in->dtype), none_t = {0};
    clxent_tensor_targets t = {none_t, none_t};
    if (a->targets)
        t.indices = block_tensor(in, b->t, k, 1,
                                 in->t.dtype == NPY_I64 ? CLXENT_I64 : CLXENT_I32);
    else
        t.probs = block_tensor(in, b->t, k, kc, in->dtype);
    clxent_vector w = {b->w, 0, kc, CLXENT_F32};
    clxent_tensor loss = none ? block_tensor(in, b->loss, k, 1, CLXENT_F32)
                              : clxent_rows_of(b->loss, 1, 1, CLXENT_F32);
    clxent_tensor lse = b->lse ? block_tensor(in, b->lse, k, 1, CLXENT_F32) : none_t;
    clxent_tensor grad = b->grad ? block_tensor(in, b->grad, k, kc, in->dtype) : none_t;
    clxent_shard sh = {(int64_t)k.c0, (int64_t)in->classes};
    /* a local failure before the call still takes part in its agreement:
     * the call sees the NULL buffer and reports it on every rank */
    return clxent_mpi_cross_entropy_nd(ctx, g->vocab, g->batch, &x, &t, &w,
                                       &sh, &a->opt, NULL, &loss, &lse, NULL,
                                       &grad);
}

/* Rank 0 gets every rank's `bytes` of buf (NULL or 0 bytes: nothing) in
 * rank order into *all (malloc'd), with *at[r] where rank r's begin. */
static int gather(const shard_grid *g, clxent_context *ctx,
                  clxent_buffer *buf, size_t bytes, char **all, int **at,
                  const char *path) {
    /* MPI counts and displacements are int: the whole output, which rank
     * 0 receives, must stay within INT_MAX bytes. */
    unsigned long long mine_n = bytes, total_n = 0;
    MPI_Allreduce(&mine_n, &total_n, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM,
                  MPI_COMM_WORLD);
    if (total_n > INT_MAX) {
        if (g->rank == 0)
            cli_fail(cmd, "%s: %llu bytes, more than rank 0 can gather "
                     "(MPI counts stop at %d bytes); run it unsharded",
                     path, total_n, INT_MAX);
        return CLI_RUNTIME;
    }
    char *mine = malloc(bytes + 1);
    int rc = mine ? 0 : 1, n = (int)bytes;
    if (!rc && buf && bytes && clxent_buffer_read(ctx, buf, 0, bytes, mine)) rc = 1;
    if (shard_agree_rc(g, rc)) {
        free(mine);
        return cli_fail(cmd, "reading an output block back");
    }
    int *counts = malloc((size_t)g->size * sizeof(int));
    *at = malloc(((size_t)g->size + 1) * sizeof(int));
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    size_t total = 0;
    if (g->rank == 0)
        for (int r = 0; r < g->size; ++r) {
            (*at)[r] = (int)total;
            total += (size_t)counts[r];
        }
    *all = g->rank == 0 ? malloc(total + 1) : NULL;
    MPI_Gatherv(mine, n, MPI_BYTE, *all, counts, *at, MPI_BYTE, 0,
                MPI_COMM_WORLD);
    free(mine);
    free(counts);
    return 0;
}

/* An output the ranks hold in blocks (classes kc each, or per row from
 * the vocabulary shard 0 ranks), assembled and written by rank 0. */
static int collect(run_staged *staged, const run_inputs *in,
                   const shard_grid *g, clxent_context *ctx,
                   clxent_buffer *buf, int per_row, clxent_dtype dtype,
                   const char *path) {
    if (!path) return 0;
    size_t es = clxent_dtype_size(dtype);
    block k = block_of(in, g, g->rank);
    size_t mine = per_row ? (g->v == 0 ? (k.o1 - k.o0) * in->inner * es : 0)
                          : (k.o1 - k.o0) * (k.c1 - k.c0) * in->inner * es;
    char *all = NULL;
    int *at = NULL;
    int rc = gather(g, ctx, buf, mine, &all, &at, path);
    if (!rc && g->rank == 0) {
        size_t rows = in->outer * in->inner;
        size_t n = per_row ? rows : rows * in->classes;
        char *full = malloc(n * es + 1);
        for (int r = 0; full && r < g->size; ++r) {
            block kr = block_of(in, g, r);
            if (per_row && r % g->V == 0)
                memcpy(full + kr.o0 * in->inner * es, all + at[r],
                       (kr.o1 - kr.o0) * in->inner * es);
            else if (!per_row)
                copy_block(full, all + at[r], in, kr, es, 1);
        }
        rc = !full ? cli_fail(cmd, "%s: out of memory", path)
                   : run_stage(staged, path, full, n, dtype,
                               per_row ? in->row_ndim : in->x.ndim,
                               per_row ? in->row_shape : in->x.shape);
        free(full);
    }
    free(all);
    free(at);
    return shard_agree_rc(g, rc);
}

static int sharded(const run_args *a, run_inputs *in, const shard_grid *g,
                   clxent_context *ctx) {
    shard_buffers b = {0};
    block k = block_of(in, g, g->rank);
    clxent_status st = step(a, in, g, ctx, &b, k);
    int rc = 0;
    if (st) {
        rc = CLI_RUNTIME;
        if (g->rank == 0) cli_fail_status(cmd, ctx, st, "--shard");
    }
    int none = a->opt.loss.reduction == CLXENT_REDUCTION_NONE;
    float loss = 0.0f;
    if (!rc && !none && clxent_buffer_read(ctx, b.loss, 0, 4, &loss)) rc = 1;
    rc = shard_agree_rc(g, rc);
    run_staged staged = {0}; /* rank 0's */
    if (!rc && !none && g->rank == 0)
        rc = run_stage(&staged, a->loss_out, &loss, 1, CLXENT_F32, 0, NULL);
    rc = shard_agree_rc(g, rc);
    if (!rc && none)
        rc = collect(&staged, in, g, ctx, b.loss, 1, CLXENT_F32, a->loss_out);
    if (!rc)
        rc = collect(&staged, in, g, ctx, b.lse, 1, CLXENT_F32, a->lse_out);
    if (!rc)
        rc = collect(&staged, in, g, ctx, b.grad, 0, in->dtype, a->grad_out);
    rc = shard_agree_rc(g, run_stage_finish(&staged, rc));
    if (!rc && g->rank == 0) {
        clxent_device_info info;
        memset(&info, 0, sizeof info);
        clxent_context_info(ctx, &info);
        printf("clxent run: cross_entropy %s on %s (%s), sharded %dx%d "
               "(vocabulary x batch) over %d ranks",
               clxent_dtype_name(in->dtype), info.spec, info.name, g->V, g->B,
               g->size);
        if (!none) printf(": %s loss %.6g", a->opt.loss.reduction ==
                          CLXENT_REDUCTION_SUM ? "sum" : "mean", (double)loss);
        printf("\n");
    }
    clxent_buffer_release(b.x);
    clxent_buffer_release(b.t);
    clxent_buffer_release(b.w);
    clxent_buffer_release(b.loss);
    clxent_buffer_release(b.lse);
    clxent_buffer_release(b.grad);
    return rc;
}

int run_sharded(const run_args *a) {
    shard_grid g;
    int rc = shard_open(cmd, a->shard, &g);
    if (rc) return rc;
    run_inputs in;
    clxent_context *ctx = NULL;
    rc = run_load(a, &in);
    if (!rc) rc = cli_open_context(cmd, a->device, &ctx);
    rc = shard_agree_rc(&g, rc);
    if (!rc) rc = sharded(a, &in, &g, ctx);
    clxent_context_destroy(ctx);
    run_inputs_free(&in);
    shard_close(&g);
    return rc;
}

#else

int run_sharded(const run_args *a) {
    shard_grid g;
    return shard_open(cmd, a->shard, &g);
}

#endif
