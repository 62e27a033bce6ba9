/* OpenCL operations: launch geometry, program options, the row
 * primitives (max, exp-sum, log_softmax, softmax), the copy, dispatch and
 * the deferred target check. The losses are in backend_opencl_loss.c and
 * backend_opencl_xent.c.
 *
 * Strategies (kernels/common.h has the work mapping):
 * - GPUs (VEC 1, coalesced lid-strided loads): T items per row, T a power
 *   of two from C/8 up to the group size of 256; L/T rows per group.
 * - CPUs (VEC 16: SIMD inside a work-item): a row per item (T = 1), up to
 *   64 rows per group, fewer when there are few rows; rows of C <= 120:
 *   the lanes kernel (VEC rows per item, a row per SIMD lane).
 * - Rows too few to fill the device (GPUs: R < 4 x compute units; CPUs:
 *   R < compute units) and long enough: split in P chunks (GPUs: a group
 *   per chunk; CPUs: an item per chunk), partial states merged in fixed
 *   order by a second kernel (deterministic, no atomics). */
#include "opencl_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

clx_ops_tuning clx_ops_tune;

static size_t pow2_floor(size_t v) {
    size_t p = 1;
    while (v >= 2 * p) p *= 2;
    return p;
}

static size_t pow2_ceil(size_t v) {
    size_t p = 1;
    while (p < v) p *= 2;
    return p;
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }
static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }
static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

unsigned long clx_ops_env(const char *name, unsigned long lo,
                          unsigned long hi) {
    const char *env = getenv(name);
    if (!env || !*env) return 0;
    char *end = NULL;
    unsigned long v = strtoul(env, &end, 10);
    return end && *end == '\0' && v >= lo && v <= hi ? v : 0;
}

int clx_ops_mode(unsigned knob, const char *name) {
    if (knob == 1) return 1;
    if (knob == 2) return 0;
    const char *env = getenv(name);
    if (env && *env) return env[0] != '0';
    return -1;
}

/* A forced work-group size: the knob, else CLXENT_WORK_GROUP_SIZE. */
static size_t forced_group(void) {
    if (clx_ops_tune.group_size) return clx_ops_tune.group_size;
    return clx_ops_env("CLXENT_WORK_GROUP_SIZE", 1, (unsigned long)-1);
}

/* A forced split: the knob, else CLXENT_SPLIT_CHUNKS (1: never split,
 * 2..256: that many chunks per row wherever an op can split), so tools
 * such as Oclgrind can run the split kernels at small sizes. */
static size_t forced_split(void) {
    if (clx_ops_tune.split_chunks) return clx_ops_tune.split_chunks;
    return clx_ops_env("CLXENT_SPLIT_CHUNKS", 1, 256);
}

/* A forced vector width: the knob, else CLXENT_VEC (1, 4, 8 or 16), so
 * tools such as Oclgrind can run the CPU mapping too. */
static unsigned forced_vec(void) {
    if (clx_ops_tune.vec) return clx_ops_tune.vec;
    const char *env = getenv("CLXENT_VEC");
    return env && *env ? (unsigned)strtoul(env, NULL, 10) : 0;
}

clx_tuning clx_ops_tuning_for(const clx_opencl_state *s) {
    clx_tuning t;
    unsigned v = forced_vec();
    t.vec = (v == 1 || v == 4 || v == 8 || v == 16) ? v : (s->is_gpu ? 1 : 16);
    t.kt = t.vec == 1 ? 8 : 2; /* VEC 1 (GPUs): 8 loads in flight per item */
    /* CLXENT_KT=1..32 (a power of two): vector loads per tile, for
     * experiments (more loads in flight per item on GPUs) */
    unsigned long kt = clx_ops_env("CLXENT_KT", 1, 32);
    if (kt && (kt & (kt - 1)) == 0) t.kt = (unsigned)kt;
    size_t maxg = pow2_floor(min_size(max_size(s->max_work_group_size, 1), 1024));
    size_t forced = forced_group();
    if (forced) {
        t.row_group = t.small_group = min_size(pow2_floor(forced), maxg);
    } else if (s->is_gpu) {
        t.row_group = t.small_group = min_size(256, maxg);
    } else {
        t.row_group = min_size(16, maxg);
        t.small_group = min_size(64, maxg);
    }
    size_t cus = s->compute_units ? s->compute_units : 1;
    t.target_groups = 4 * cus;
    /* CPUs: a row per item is faster per element than a split row (no
     * strided chunks, no second launch; fused f32 computes one exp per
     * element instead of two), so rows split only when some core would
     * otherwise idle (PoCL, 2 cores: 4x1048576 fused 3.1 -> 1.6 ms). */
    t.split_rows = s->is_gpu ? t.target_groups : cus;
    return t;
}

int clx_ops_cached(const clx_opencl_state *s, const clx_geom *g) {
    clx_tuning t = clx_ops_tuning_for(s);
    int mode = clx_ops_mode(clx_ops_tune.gcache, "CLXENT_GCACHE");
    return t.vec > 1 && !g->split && !clx_ops_tune.items_per_row &&
           (mode == 1 || (mode < 0 && !s->is_gpu && g->T == 1));
}

size_t clx_ops_cached_block(const clx_opencl_state *s, size_t C) {
    clx_tuning t = clx_ops_tuning_for(s);
    size_t tile = (size_t)t.vec * t.kt;
    size_t bl = clx_ops_tune.gcache_block ? clx_ops_tune.gcache_block : 1024;
    bl = bl > tile ? bl / tile * tile : tile;
    if (div_up(C, bl) > 1024) bl = div_up(div_up(C, 1024), tile) * tile;
    return bl;
}

size_t clx_ops_cached_stride(const clx_opencl_state *s, size_t C) {
    size_t vec = clx_ops_tuning_for(s).vec;
    return div_up(C, vec) * vec;
}

size_t clx_ops_batch_cache_floats(const clx_opencl_state *s, size_t C) {
    return 16 * clx_ops_cached_stride(s, C);
}

int clx_ops_batch_cache_fits(const clx_opencl_state *s, size_t C) {
    return clx_ops_cached_group(s, 1, 1, clx_ops_batch_cache_floats(s, C)) > 0;
}

void clx_ops_batch_cache_args(clx_args *a, const clx_opencl_state *s,
                              size_t C, size_t L) {
    clx_arg_local(a, L * clx_ops_batch_cache_floats(s, C) * sizeof(cl_float));
    clx_arg_uint(a, clx_ops_cached_stride(s, C));
}

size_t clx_ops_cached_group(const clx_opencl_state *s, size_t L,
                            size_t kernel_max, size_t cache_floats) {
    size_t local = (size_t)s->local_mem_bytes;
    size_t budget = local > CLX_LOCAL_MARGIN ? local - CLX_LOCAL_MARGIN : 0;
    size_t item = cache_floats * 4;
    if (item > budget) return 0;
    while (L > 1 && (L > kernel_max || L * item > budget)) L /= 2;
    return L;
}

int clx_ops_use_batch(const clx_opencl_state *s, size_t C, size_t cmin,
                      int tgt, int grad, clxent_dtype x) {
    clx_tuning t = clx_ops_tuning_for(s);
    int mode = clx_ops_mode(clx_ops_tune.batch, "CLXENT_BATCH");
    if (mode == 0 || t.vec != 16 || tgt == 2 || clx_ops_tune.items_per_row ||
        forced_split() > 1)
        return 0;
    /* fused 16-bit: the exps of an item's 16 rows in local memory */
    if (grad && x != CLXENT_F32) {
        if (!clx_ops_batch_cache_fits(s, C)) return 0;
        size_t c16 = x == CLXENT_BF16 ? CLX_BATCH_BF16_CMIN : CLX_LANES_CMAX;
        if (cmin < c16) cmin = c16;
    }
    return mode == 1 || (!s->is_gpu && C > cmin && C <= CLX_BATCH_CMAX);
}

/* Split chunk count for a stats kernel, 0 for whole rows. Groups of Ls
 * items per chunk (GPUs: at most Ls chunks, one state per item in the
 * merge, unless forced), or one item per chunk (cpu: chunks of at least
 * 4096 columns). */
static size_t split_chunks(const clx_tuning *t, size_t R, size_t C,
                           size_t Ls, int cpu) {
    size_t forced = forced_split();
    if (forced > 1) return forced; /* any count: states merged in turn */
    if (forced == 1 || (!cpu && Ls < 2)) return 0;
    size_t P = 0;
    size_t min_chunk = cpu ? 4096 : Ls * t->vec * t->kt * 4;
    if (R < t->split_rows && C >= 2 * min_chunk)
        P = min_size(div_up(2 * t->target_groups, R), C / min_chunk);
    P = min_size(P, cpu ? 256 : Ls);
    return P >= 2 ? P : 0;
}

clx_geom clx_geom_rows(const clx_opencl_state *s, size_t R, size_t C,
                       int allow_split, size_t kernel_max) {
    clx_tuning t = clx_ops_tuning_for(s);
    size_t kmax = pow2_floor(max_size(kernel_max, 1));
    clx_geom g;
    g.P = 1;
    g.CH = (unsigned)C;
    g.split = 0;
    /* CPUs split a row into chunks of one item each (T = 1: no strided
     * loads, no barrier; the merge takes the states in turn): 1x1048576
     * fused on PoCL 1.16 -> 0.57 ms, forward 0.63 -> 0.32 ms; it was a
     * group of 16 items per chunk, slower than one core on the whole row). */
    int cpu = !s->is_gpu && t.vec > 1 && !forced_group();
    size_t Ls = cpu ? 1 : min_size(t.row_group, kmax);
    size_t P = allow_split ? split_chunks(&t, R, C, Ls, cpu) : 0;
    if (P) {
        g.split = 1;
        g.L = Ls;
        g.T = (unsigned)Ls;
        g.P = (unsigned)P;
        g.CH = (unsigned)(div_up(div_up(C, P), t.vec) * t.vec);
        g.groups = R * P;
        return g;
    }
    size_t T;
    size_t L;
    if (clx_ops_tune.items_per_row) {
        T = pow2_floor(clx_ops_tune.items_per_row);
        L = max_size(T, min_size(t.small_group, kmax));
    } else if (s->is_gpu || t.vec == 1) {
        L = min_size(t.row_group, kmax);
        T = pow2_ceil(div_up(C, 2 * t.vec * t.kt));
    } else {
        T = 1;
        L = pow2_floor(max_size(R / t.target_groups, 1));
    }
    L = min_size(min_size(L, t.small_group > t.row_group ? t.small_group
                                                          : t.row_group),
                 kmax);
    L = max_size(L, 1);
    T = min_size(T, L);
    g.L = L;
    g.T = (unsigned)T;
    g.groups = div_up(R, L / T);
    return g;
}

clx_geom clx_geom_elems(const clx_opencl_state *s, size_t R, size_t C,
                        size_t kernel_max) {
    clx_tuning t = clx_ops_tuning_for(s);
    size_t kmax = pow2_floor(max_size(kernel_max, 1));
    size_t tile = t.vec * t.kt;
    clx_geom g;
    g.split = 0;
    size_t T, L;
    if (clx_ops_tune.items_per_row) {
        T = pow2_floor(clx_ops_tune.items_per_row);
        L = max_size(T, t.small_group);
    } else if (s->is_gpu || t.vec == 1) {
        L = t.row_group;
        T = pow2_ceil(div_up(C, 2 * tile));
    } else {
        T = 1;
        L = t.small_group;
    }
    L = max_size(min_size(L, kmax), 1);
    T = min_size(T, L);
    size_t per = L / T; /* units per group */
    size_t P = 1;
    size_t forced = forced_split();
    if (forced > 1) {
        P = forced;
    } else if (forced == 0) {
        size_t want = s->is_gpu ? t.target_groups * per : 4 * t.target_groups;
        if (R < want) P = min_size(div_up(want, R), div_up(C, T * tile * 8));
    }
    P = max_size(P, 1);
    if (!s->is_gpu && T == 1 && !clx_ops_tune.items_per_row && !forced_group()) {
        /* enough groups for every core: shrink the group */
        size_t units = R * P;
        L = min_size(L, pow2_floor(max_size(units / t.target_groups, 1)));
        per = L;
    }
    g.L = L;
    g.T = (unsigned)T;
    g.P = (unsigned)P;
    g.CH = (unsigned)(P > 1 ? div_up(div_up(C, P), t.vec) * t.vec : C);
    g.groups = div_up(R * P, per);
    return g;
}

int clx_ops_use_lanes(const clx_opencl_state *s, size_t C, int tgt) {
    clx_tuning t = clx_ops_tuning_for(s);
    /* Vector widths above 1 are the CPU mapping (or forced, e.g. for
     * Oclgrind), GPUs default to 1. */
    return t.vec > 1 && tgt != 2 && C <= CLX_LANES_CMAX &&
           !clx_ops_tune.items_per_row && forced_split() <= 1;
}

size_t clx_ops_lanes_group(const clx_opencl_state *s, size_t rows,
                           size_t kmax, size_t item_floats, size_t *global) {
    clx_tuning t = clx_ops_tuning_for(s);
    size_t items = (rows + t.vec - 1) / t.vec;
    size_t L = 1;
    while (L * 2 <= items / t.target_groups && L * 2 <= t.small_group &&
           L * 2 <= kmax)
        L *= 2;
    if (item_floats) { /* 0: not even one fits (the launch then fails) */
        size_t Lc = clx_ops_cached_group(s, L, kmax, item_floats);
        L = Lc ? Lc : 1;
    }
    *global = (items + L - 1) / L * L;
    return L;
}

int clx_ops_dtype_code(clxent_dtype d) {
    return d == CLXENT_F16 ? 1 : d == CLXENT_BF16 ? 2 : 0;
}

void clx_ops_options(const clx_opencl_state *s, char *buf, size_t size,
                     clxent_dtype x, clxent_dtype y, int tgt) {
    clx_tuning t = clx_ops_tuning_for(s);
    snprintf(buf, size, "-DX_T=%d -DY_T=%d -DTGT=%d -DVEC=%u -DKT=%u",
             clx_ops_dtype_code(x), clx_ops_dtype_code(y), tgt, t.vec, t.kt);
}

clxent_status clx_ops_kernel(clxent_context *ctx, const char *file,
                             const char *options, const char *name,
                             cl_kernel *kernel, size_t *max_group) {
    clxent_status st = clx_cl_kernel(ctx, file, options, name, kernel);
    if (st != CLXENT_STATUS_OK) return st;
    size_t m = 0;
    cl_int err = CLX_CL(clGetKernelWorkGroupInfo(
        *kernel, ctx->cl->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof m, &m,
        NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clx_ops_kernel",
                        "clGetKernelWorkGroupInfo (%s, "
                        "CL_KERNEL_WORK_GROUP_SIZE): %s (%d)",
                        name, clx_cl_error_name(err), (int)err);
    *max_group = m ? m : 1;
    return CLXENT_STATUS_OK;
}

/* ---- kernel arguments ---- */

clx_args clx_args_begin(clxent_context *ctx, cl_kernel kernel) {
    clx_args a = {ctx, kernel, 0, CLXENT_STATUS_OK};
    return a;
}

static void set_arg(clx_args *a, size_t size, const void *value) {
    if (a->st == CLXENT_STATUS_OK)
        a->st = clx_cl_arg(a->ctx, a->kernel, a->index, size, value);
    ++a->index;
}

void clx_arg_mem(clx_args *a, cl_mem mem) { set_arg(a, sizeof mem, &mem); }
void clx_arg_ulong(clx_args *a, size_t v) {
    cl_ulong x = (cl_ulong)v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_long(clx_args *a, int64_t v) {
    cl_long x = (cl_long)v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_uint(clx_args *a, size_t v) {
    cl_uint x = (cl_uint)v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_int(clx_args *a, int v) {
    cl_int x = v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_float(clx_args *a, float v) {
    cl_float x = v;
    set_arg(a, sizeof x, &x);
}
void clx_arg_local(clx_args *a, size_t bytes) { set_arg(a, bytes, NULL); }

size_t clx_scr_part_index(size_t R) {
    return CLX_SCR_LOSS + (R + 7) / 8 * 8;
}

/* Device size of the kernels' st_t (seven floats). */
#define ST_BYTES 28

/* ---- row primitives ---- */


/* The arguments every softmax-family kernel starts with: x, its shape, the
 * given max (row_expsum), the row-vector and matrix outputs, and which
 * primitive (0 max, 1 exp-sum, 2 log_softmax, 3 softmax). Absent ones
 * point at scratch. */
static void sm_common_args(clx_args *a, const clx_op *op, cl_mem scr,
                           int what) {
    clx_arg_mem(a, op->x.buffer->mem);
    clx_arg_ulong(a, op->x.offset);
    clx_arg_ulong(a, op->x.stride);
    clx_arg_uint(a, op->x.rows);
    clx_arg_uint(a, op->x.cols);
    clx_arg_mem(a, what == 1 ? op->vec_in.buffer->mem : scr);
    clx_arg_ulong(a, what == 1 ? op->vec_in.offset : 0);
    clx_arg_mem(a, what < 2 ? op->vec_out.buffer->mem : scr);
    clx_arg_ulong(a, what < 2 ? op->vec_out.offset : 0);
    clx_arg_mem(a, what >= 2 ? op->mat_out.buffer->mem : scr);
    clx_arg_ulong(a, what >= 2 ? op->mat_out.offset : 0);
    clx_arg_ulong(a, what >= 2 ? op->mat_out.stride : 0);
    clx_arg_int(a, what);
}

/* Softmax with the exps cached: in the output (sm_cached_g, f32) or in
 * local memory (sm_cached_l, 16-bit outputs, when a row's cache fits). */
static size_t softmax_cache_floats(const clx_opencl_state *s,
                                   const clx_op *op) {
    return op->mat_out.dtype == CLXENT_F32
               ? 0
               : clx_ops_cached_stride(s, op->x.cols);
}

static clxent_status run_softmax_cached(clxent_context *ctx, const clx_op *op,
                                        const char *opts, const clx_geom *g) {
    clx_opencl_state *s = ctx->cl;
    size_t cstride = softmax_cache_floats(s, op);
    cl_kernel k;
    size_t kmax;
    clxent_status st = clx_ops_kernel(ctx, "softmax.cl", opts,
                                      cstride ? "sm_cached_l" : "sm_cached_g",
                                      &k, &kmax);
    cl_mem scr = NULL;
    if (st == CLXENT_STATUS_OK)
        st = clx_cl_scratch(ctx, CLX_SCR_LOSS * 4, &scr);
    if (st != CLXENT_STATUS_OK) return st;
    size_t L = clx_ops_cached_group(s, g->L, kmax, cstride);
    clx_args a = clx_args_begin(ctx, k);
    sm_common_args(&a, op, scr, 3);
    clx_arg_uint(&a, clx_ops_cached_block(s, op->x.cols));
    if (cstride) {
        clx_arg_local(&a, L * cstride * sizeof(cl_float));
        clx_arg_uint(&a, cstride);
    }
    if (a.st != CLXENT_STATUS_OK) return a.st;
    size_t global = div_up(op->x.rows, L) * L;
    return clx_cl_launch(ctx, op, k, 1, &global, &L, 1, 1);
}

static clxent_status run_softmax_family(clxent_context *ctx, const clx_op *op,
                                        int what) {
    clx_opencl_state *s = ctx->cl;
    size_t R = op->x.rows, C = op->x.cols;
    if (R == 0) return clx_cl_empty_op(ctx, op);
    clxent_dtype yt = what >= 2 ? op->mat_out.dtype : op->x.dtype;
    char opts[128];
    clx_ops_options(s, opts, sizeof opts, op->x.dtype, yt, 0);
    cl_kernel krow, kpart, kout;
    size_t m1, m2, m3;
    clxent_status st;
    /* CPUs: a few hundred columns, 16 rows per item (sm_batch); small C,
     * VEC rows per item, a row per SIMD lane (sm_lanes) */
    const char *vrows = NULL;
    /* softmax into 16-bit outputs: the exps of an item's 16 rows in local
     * memory where they fit (sm_batchl), else computed again */
    size_t item_floats = 0;
    if (what >= 2 &&
        clx_ops_use_batch(s, C, CLX_BATCH_SM_CMIN, 0, 0, op->x.dtype)) {
        vrows = "sm_batch";
        if (what == 3 && yt != CLXENT_F32 && clx_ops_batch_cache_fits(s, C)) {
            vrows = "sm_batchl";
            item_floats = clx_ops_batch_cache_floats(s, C);
        }
    } else if (clx_ops_use_lanes(s, C, 0) &&
             (what != 3 || C <= CLX_LANES_SOFTMAX_CMAX))
        vrows = "sm_lanes";
    if (vrows) {
        st = clx_ops_kernel(ctx, "softmax.cl", opts, vrows, &krow, &m1);
        if (st != CLXENT_STATUS_OK) return st;
        cl_mem scr;
        st = clx_cl_scratch(ctx, CLX_SCR_LOSS * 4, &scr);
        if (st != CLXENT_STATUS_OK) return st;
        clx_args a = clx_args_begin(ctx, krow);
        sm_common_args(&a, op, scr, what);
        size_t global;
        size_t L = clx_ops_lanes_group(s, R, m1, item_floats, &global);
        if (item_floats) clx_ops_batch_cache_args(&a, s, C, L);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        return clx_cl_launch(ctx, op, krow, 1, &global, &L, 1, 1);
    }
    st = clx_ops_kernel(ctx, "softmax.cl", opts, "sm_rows", &krow, &m1);
    if (st == CLXENT_STATUS_OK)
        st = clx_ops_kernel(ctx, "softmax.cl", opts, "sm_part", &kpart, &m2);
    if (st == CLXENT_STATUS_OK)
        st = clx_ops_kernel(ctx, "softmax.cl", opts, "sm_split_out", &kout,
                            &m3);
    if (st != CLXENT_STATUS_OK) return st;
    clx_geom g = clx_geom_rows(s, R, C, 1, min_size(m1, min_size(m2, m3)));
    if (what == 3 && clx_ops_cached(s, &g) &&
        clx_ops_cached_group(s, g.L, g.L, softmax_cache_floats(s, op)))
        return run_softmax_cached(ctx, op, opts, &g);
    if (!g.split && g.T == 1) { /* the barrier-free twin */
        st = clx_ops_kernel(ctx, "softmax.cl", opts, "sm_rows1", &krow, &m1);
        if (st != CLXENT_STATUS_OK) return st;
    }
    size_t part = clx_scr_part_index(R);
    size_t scr_floats = g.split ? part + R * g.P * 8 : CLX_SCR_LOSS;
    cl_mem scr;
    st = clx_cl_scratch(ctx, scr_floats * 4, &scr);
    if (st != CLXENT_STATUS_OK) return st;
    size_t passes = g.split ? 2 : 1;
    for (size_t pass = 0; pass < passes; ++pass) {
        cl_kernel k = !g.split ? krow : pass == 0 ? kpart : kout;
        clx_args a = clx_args_begin(ctx, k);
        sm_common_args(&a, op, scr, what);
        size_t global;
        if (!g.split) {
            clx_arg_uint(&a, g.T);
            global = g.groups * g.L;
        } else {
            clx_arg_uint(&a, g.P);
            clx_arg_uint(&a, g.CH);
            clx_arg_mem(&a, scr);
            clx_arg_ulong(&a, part);
            /* pass 2 writes per chunk for matrices, per row for vectors */
            global = (pass == 1 && what < 2 ? R : R * g.P) * g.L;
        }
        clx_arg_local(&a, g.L * ST_BYTES);
        if (a.st != CLXENT_STATUS_OK) return a.st;
        st = clx_cl_launch(ctx, op, k, 1, &global, &g.L, pass == 0,
                           pass + 1 == passes);
        if (st != CLXENT_STATUS_OK) return st;
    }
    return CLXENT_STATUS_OK;
}

/* ---- copy ---- */

static clxent_status run_copy(clxent_context *ctx, const clx_op *op) {
    clx_opencl_state *s = ctx->cl;
    size_t R = op->x.rows, C = op->x.cols;
    if (R == 0 || C == 0) return clx_cl_empty_op(ctx, op);
    /* Contiguous on both sides: a few long rows instead of many short
     * ones (up to 2^16 columns, R' * C' = R * C). */
    if (op->x.stride == C && op->mat_out.stride == C) {
        while (R % 2 == 0 && C * 2 <= 65536) {
            R /= 2;
            C *= 2;
        }
    }
    char opts[128];
    clx_ops_options(s, opts, sizeof opts, op->x.dtype, op->mat_out.dtype, 0);
    cl_kernel k;
    size_t kmax;
    clxent_status st =
        clx_ops_kernel(ctx, "copy.cl", opts, "copy_rows", &k, &kmax);
    if (st != CLXENT_STATUS_OK) return st;
    clx_geom g = clx_geom_elems(s, R, C, kmax);
    int reshaped = R != op->x.rows;
    clx_args a = clx_args_begin(ctx, k);
    clx_arg_mem(&a, op->x.buffer->mem);
    clx_arg_ulong(&a, op->x.offset);
    clx_arg_ulong(&a, reshaped ? C : op->x.stride);
    clx_arg_mem(&a, op->mat_out.buffer->mem);
    clx_arg_ulong(&a, op->mat_out.offset);
    clx_arg_ulong(&a, reshaped ? C : op->mat_out.stride);
    clx_arg_uint(&a, R);
    clx_arg_uint(&a, C);
    clx_arg_uint(&a, g.T);
    clx_arg_uint(&a, g.P);
    clx_arg_uint(&a, g.CH);
    if (a.st != CLXENT_STATUS_OK) return a.st;
    size_t global = g.groups * g.L;
    return clx_cl_launch(ctx, op, k, 1, &global, &g.L, 1, 1);
}

/* ---- dispatch and the deferred check ---- */

clxent_status clx_opencl_run(clxent_context *ctx, const clx_op *op) {
    switch (op->kind) {
    case CLX_OP_ROW_MAX: return run_softmax_family(ctx, op, 0);
    case CLX_OP_ROW_EXPSUM: return run_softmax_family(ctx, op, 1);
    case CLX_OP_LOG_SOFTMAX: return run_softmax_family(ctx, op, 2);
    case CLX_OP_SOFTMAX: return run_softmax_family(ctx, op, 3);
    case CLX_OP_NLL_FORWARD:
    case CLX_OP_NLL_BACKWARD: return clx_opencl_nll(ctx, op);
    case CLX_OP_CE_FORWARD:
    case CLX_OP_CE_BACKWARD:
    case CLX_OP_CE_FUSED: return clx_opencl_cross_entropy(ctx, op);
    case CLX_OP_COPY: return run_copy(ctx, op);
    }
    return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, op->function,
                    "operation %d is unknown to the OpenCL backend",
                    (int)op->kind);
}

clxent_status clx_opencl_finish_checks(clxent_context *ctx) {
    clx_opencl_state *s = ctx->cl;
    if (!s || !s->deferred_check_pending) return CLXENT_STATUS_OK;
    s->deferred_check_pending = 0;
    cl_long v[4];
    cl_int err = CLX_CL(clEnqueueReadBuffer(s->queue, s->status, CL_TRUE, 0,
                                            sizeof v, v, 0, NULL, NULL));
    if (err != CL_SUCCESS)
        return clx_fail(ctx, clx_status_from_cl(err), "clxent_finish",
                        "clEnqueueReadBuffer (target check status): %s (%d)",
                        clx_cl_error_name(err), (int)err);
    if (v[0] >= 0)
        return clx_fail(ctx, CLXENT_STATUS_TARGET_OUT_OF_RANGE,
                        "clxent_finish",
                        "targets[%lld] = %lld is outside [0, %lld) and is not "
                        "ignore_index (%lld) (found by a deferred check)",
                        (long long)v[0], (long long)v[1], (long long)v[2],
                        (long long)v[3]);
    return CLXENT_STATUS_OK;
}
