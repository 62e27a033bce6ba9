/* Operation code of the OpenCL backend (backend_opencl_ops.c and
 * backend_opencl_xent.c): launch geometry, program options, and the knobs
 * tests use to force the rarer strategies at small sizes. Not installed. */
#ifndef CLXENT_OPENCL_OPS_H
#define CLXENT_OPENCL_OPS_H

#include "opencl_internal.h"

/* Test and tuning knobs, process-wide, 0 = automatic. Tests set them
 * between operations (not thread-safe by design: they are for tests). */
typedef struct clx_ops_tuning {
    unsigned split_chunks; /* > 1: rows split in this many chunks (split
                              path) whenever the op supports it; 1: never
                              split */
    unsigned items_per_row; /* T on the single-group path (power of two) */
    unsigned vec;           /* elements per vector load: 1, 4, 8 or 16 */
    unsigned group_size;    /* work-group size (power of two); the
                               environment variable CLXENT_WORK_GROUP_SIZE
                               does the same for experiments */
    unsigned reduce_groups; /* groups of the target check and the loss
                               reduction (> 1: two levels, partials then
                               a fixed-order combine) */
    unsigned gpu_cache;     /* fused rows held in registers
                               (xent_regs_fused): 0 automatic (GPUs), 1 on
                               (any device, any C it can hold), 2 off; the
                               environment variable CLXENT_GPU_CACHE=0/1
                               does the same when this is 0 */
    unsigned gcache;        /* CPU fused rows with the exps cached (in the
                               gradient for f32, else in local memory;
                               xent_cpu.cl): 0 automatic (CPUs), 1 on (any
                               device with VEC > 1), 2 off; the
                               environment variable CLXENT_GCACHE=0/1 does
                               the same when this is 0 */
    unsigned gcache_block;  /* its block length (rounded to a tile; raised
                               where the row would need more than 1024
                               blocks) */
    unsigned batch;         /* the batch kernels (xent_batch.cl: 16 rows
                               per item finished together): 0 automatic
                               (CPUs, medium C), 1 on (any device with VEC
                               16, any C), 2 off; the environment variable
                               CLXENT_BATCH=0/1 does the same when this is
                               0 */
} clx_ops_tuning;

extern clx_ops_tuning clx_ops_tune;

/* Launch geometry of the row kernels (see kernels/common.h unit_of):
 * groups of L items, T items per unit, a unit is one of P chunks of CH
 * columns of a row. */
typedef struct clx_geom {
    size_t L;       /* work-group size, power of two */
    unsigned T;     /* items per unit, power of two, <= L */
    unsigned P;     /* chunks per row (1: whole rows) */
    unsigned CH;    /* columns per chunk */
    int split;      /* stats kernels: partial states + combine */
    size_t groups;  /* work-groups to launch */
} clx_geom;

/* Per-context constants of the kernels: vector width and tile length
 * (build options), and the preferred work-group sizes. */
typedef struct clx_tuning {
    unsigned vec, kt;
    size_t row_group;   /* L for rows reduced inside one group (GPU) */
    size_t small_group; /* L for one-item-per-row kernels */
    size_t target_groups; /* enough groups to fill the device */
    size_t split_rows;    /* fewer rows than this: stats kernels split
                             long rows over groups */
} clx_tuning;

clx_tuning clx_ops_tuning_for(const clx_opencl_state *s);

/* An experiment switch: the value of environment variable `name` when it
 * is a whole number in [lo, hi], else 0. */
unsigned long clx_ops_env(const char *name, unsigned long lo,
                          unsigned long hi);
/* An on/off switch: knob 1 on, 2 off, else variable `name` ("0" off,
 * anything else on), unset: -1 (automatic). */
int clx_ops_mode(unsigned knob, const char *name);

/* Geometry for a stats kernel over R x C (reductions along rows):
 * allow_split 0 forces whole rows. kernel_max caps L. */
clx_geom clx_geom_rows(const clx_opencl_state *s, size_t R, size_t C,
                       int allow_split, size_t kernel_max);
/* Geometry for an element-wise row kernel (no reduction: any P). */
clx_geom clx_geom_elems(const clx_opencl_state *s, size_t R, size_t C,
                        size_t kernel_max);

/* Small rows on a CPU (VEC > 1), class indices or no targets (the row
 * primitives, tgt 0): the lanes kernels of xent_cpu.cl and softmax.cl (VEC
 * rows per item, a row per SIMD lane). Not with forced items per row or
 * chunks. Up to 120 columns: a row per item pays a horizontal reduction
 * and a scalar log per row, which the lanes share among VEC rows (PoCL, 2
 * cores: 65536x48 fused 4.1 -> 2.2 ms, forward 3.4 -> 1.6 ms; 65536x100
 * fused 6.4 -> 5.3 ms; 32768x120 fused 3.3 -> 3.1 ms); at 128 the row
 * kernels, whose rows are then whole vectors, are faster (fused 3.0 ms
 * against 3.3 ms). Softmax, which needs no log and caches its exps on the
 * row path, only up to 96 (32768x128: 2.4 ms against 2.8 ms); backward (no
 * reduction) only up to 32: the element-wise kernel is faster past that
 * (65536x60: 2.2 ms against 3.4 ms). */
#define CLX_LANES_CMAX 120
#define CLX_LANES_SOFTMAX_CMAX 96
#define CLX_LANES_BWD_CMAX 32
int clx_ops_use_lanes(const clx_opencl_state *s, size_t C, int tgt);
/* Rows of a few hundred columns on a CPU (VEC 16), class indices (label
 * smoothing too: a build option of the kernel), forward (any dtype) or
 * fused (the exps cached in the f32 gradient, or for 16-bit gradients in
 * local memory when 16 rows' fit): the batch kernels of
 * xent_batch.cl, 16 rows per item with the horizontal reductions, log S
 * and the losses done for the 16 rows at once. Columns in
 * (CLX_BATCH_CMIN, CLX_BATCH_CMAX]; they take precedence over the lanes
 * kernels there. PoCL, 2 cores, fused, against the lanes or row kernels:
 * 65536x80 3.9 -> 3.5 ms, 65536x100 6.0 -> 4.4, 32768x130 3.6 -> 2.5,
 * 16384x256 2.35 -> 2.08, 4096x1000 1.84 -> 1.62; with label smoothing
 * 0.1: 65536x100 5.9 -> 5.6, 32768x130 3.95 -> 3.19, 4096x1000 2.18 ->
 * 1.95. The lanes kernels win at 64 columns and below (65536x48: 2.2
 * against 2.4 ms), the row kernels at 2048 (fused 1.74 against 1.94). */
#define CLX_BATCH_CMIN 64
#define CLX_BATCH_CMAX 1024
/* Fused f16/bf16 (the exps in local memory) start later: the lanes
 * kernels stay ahead to 96 columns for bf16 and to their limit for f16,
 * whose rows there mostly start unaligned (PoCL, 2 cores, lanes against
 * batch: bf16 65536x72 3.3-3.6 against 3.7 ms, 65536x100 5.0 against
 * 4.6-4.7, 65536x120 5.9 against 5.3; f16 65536x100 5.1-5.2 against 5.3;
 * 32768x128 3.1 -> 2.5 ms for batch). */
#define CLX_BATCH_BF16_CMIN 96
/* log_softmax and softmax (softmax.cl's sm_batch) past 96 columns, where
 * the lanes kernels stop winning (65536x100 log_softmax 4.8 -> 3.9 ms,
 * 32768x130 3.1 -> 2.2 ms; 65536x80: 3.5 against 3.7 ms for lanes). */
#define CLX_BATCH_SM_CMIN 96
/* cmin: the op's CLX_BATCH_CMIN or CLX_BATCH_SM_CMIN. */
int clx_ops_use_batch(const clx_opencl_state *s, size_t C, size_t cmin,
                      int tgt, int grad, clxent_dtype x);
/* Work-group size of a lanes kernel over `rows` rows (VEC rows per item):
 * enough groups for every core, at most the small group size and kmax,
 * and (item_floats > 0: local floats per item) what local memory holds
 * (clx_ops_cached_group; callers check clx_ops_batch_cache_fits first);
 * *global gets the launch size (the items rounded up to the group). */
size_t clx_ops_lanes_group(const clx_opencl_state *s, size_t rows,
                           size_t kmax, size_t item_floats, size_t *global);
/* Local floats per item of xent_batchl_fused and sm_batchl: the exps of
 * 16 rows; and whether one item's fit (clx_ops_cached_group). */
size_t clx_ops_batch_cache_floats(const clx_opencl_state *s, size_t C);
int clx_ops_batch_cache_fits(const clx_opencl_state *s, size_t C);

/* The cached-exps kernels (kernels/expcache.h: one item per row, one exp
 * per element; xent_rowsg/rowsl_fused, sm_cached), for geometry g of a
 * row op: 1 when they apply (CPUs with VEC > 1, whole rows one per item,
 * or CLXENT_GCACHE / the gcache knob on any device with VEC > 1), else 0. */
int clx_ops_cached(const clx_opencl_state *s, const clx_geom *g);
/* Their block length over C columns: 1024 (or the knob's), a multiple of
 * the tile, longer where a row would need more than 1024 blocks. */
size_t clx_ops_cached_block(const clx_opencl_state *s, size_t C);
/* Floats of local memory per row of C columns where the exps are cached
 * there (16-bit outputs): C rounded up to whole vectors. */
size_t clx_ops_cached_stride(const clx_opencl_state *s, size_t C);
/* Local memory left to the implementation (the kernels declare none of
 * their own). Half the local memory was kept back before: on PoCL (1 MiB)
 * 16-bit rows of 131073 to 258048 columns then computed their exps twice
 * (bf16 fused 256x151936 22.5 -> 17.0 ms, 128x256000 18.8 -> 13.4 ms with
 * the whole). */
#define CLX_LOCAL_MARGIN 16384
/* Their work-group size, from the rows geometry's L: halved until the
 * kernel's maximum allows it and, with cache_floats of local memory per
 * item, the group's caches fit in the local memory less CLX_LOCAL_MARGIN;
 * 0 when not even one item's cache fits. */
size_t clx_ops_cached_group(const clx_opencl_state *s, size_t L,
                            size_t kernel_max, size_t cache_floats);

/* Build options "-DX_T=.. -DY_T=.. -DTGT=.. -DVEC=.. -DKT=..". */
void clx_ops_options(const clx_opencl_state *s, char *buf, size_t size,
                     clxent_dtype x, clxent_dtype y, int tgt);

/* Kernel from a program, plus its CL_KERNEL_WORK_GROUP_SIZE. */
clxent_status clx_ops_kernel(clxent_context *ctx, const char *file,
                             const char *options, const char *name,
                             cl_kernel *kernel, size_t *max_group);

/* Sequential kernel arguments: the first failure sticks in st. */
typedef struct clx_args {
    clxent_context *ctx;
    cl_kernel kernel;
    cl_uint index;
    clxent_status st;
} clx_args;

clx_args clx_args_begin(clxent_context *ctx, cl_kernel kernel);
void clx_arg_mem(clx_args *a, cl_mem mem);
void clx_arg_ulong(clx_args *a, size_t v);
void clx_arg_long(clx_args *a, int64_t v);
void clx_arg_uint(clx_args *a, size_t v);
void clx_arg_int(clx_args *a, int v);
void clx_arg_float(clx_args *a, float v);
void clx_arg_local(clx_args *a, size_t bytes);
/* The last two arguments of xent_batchl_fused and sm_batchl: the local
 * exp caches of a group of L items, and the floats per cached row. */
void clx_ops_batch_cache_args(clx_args *a, const clx_opencl_state *s,
                              size_t C, size_t L);

/* Scratch layout (bytes): a header the target check fills, the per-row
 * losses, then the split path's partial states (8 floats each). */
#define CLX_SCR_SYNC_LONG 8   /* long index of the synchronous verdict */
#define CLX_SCR_LOSS 32       /* float index of the per-row losses */
size_t clx_scr_part_index(size_t R); /* float index of the partials */

/* The storage code of the kernels: 0 f32, 1 f16, 2 bf16. */
int clx_ops_dtype_code(clxent_dtype d);

/* Operations of backend_opencl_xent.c. */
clxent_status clx_opencl_cross_entropy(clxent_context *ctx, const clx_op *op);
clxent_status clx_opencl_nll(clxent_context *ctx, const clx_op *op);

#endif /* CLXENT_OPENCL_OPS_H */
