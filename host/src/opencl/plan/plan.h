/* The plan layer of the OpenCL backend: which kernel runs an operation
 * and with what geometry. strategy.c holds the table that decides;
 * geometry.c the launch geometry it and the operations share. Everything
 * here reads the context's resolved parameters (opencl/tuning/params.h),
 * never the environment. */
#ifndef CLXENT_OPENCL_PLAN_H
#define CLXENT_OPENCL_PLAN_H

#include "opencl/runtime/runtime.h"

/* ---- geometry.c ---- */

/* Recomputes s->d from s->params and the device (after any change). */
void clx_derive(clx_opencl_state *s);

/* Launch geometry of the row kernels (kernels/common.h unit_of): groups
 * of L items, T items per unit, a unit is one of P chunks of CH columns
 * of a row. */
typedef struct clx_geom {
    size_t L;      /* work-group size, power of two */
    unsigned T;    /* items per unit, power of two, <= L */
    unsigned P;    /* chunks per row (1: whole rows) */
    unsigned CH;   /* columns per chunk */
    int split;     /* stats kernels: partial states + combine */
    size_t groups; /* work-groups to launch */
} clx_geom;

/* Geometry for a stats kernel over R x C (reductions along rows);
 * kernel_max caps L. */
clx_geom clx_geom_rows(const clx_opencl_state *s, size_t R, size_t C,
                       size_t kernel_max);
/* Geometry for an element-wise row kernel (no reduction: any P). */
clx_geom clx_geom_elems(const clx_opencl_state *s, size_t R, size_t C,
                        size_t kernel_max);

/* Work-group size of a kernel with VEC rows per item over `rows` rows:
 * enough groups for every core, at most the small group size and kmax,
 * and (item_floats > 0: local floats per item) what local memory holds;
 * *global gets the launch size (the items rounded up to the group). */
size_t clx_vec_rows_group(const clx_opencl_state *s, size_t rows,
                          size_t kmax, size_t item_floats, size_t *global);
/* Floats of local memory per row of C columns where a row's exps are
 * cached there (16-bit outputs): C rounded up to whole vectors. */
size_t clx_cache_stride(const clx_opencl_state *s, size_t C);
/* Local floats per item of the batch kernels' exp caches (16 rows). */
size_t clx_batch_cache_floats(const clx_opencl_state *s, size_t C);
/* Work-group size of a kernel caching cache_floats floats per item in
 * local memory, from L: halved until kernel_max allows it and the group's
 * caches fit in the local memory less the margin; 0 when not even one
 * item's fits. */
size_t clx_cached_group(const clx_opencl_state *s, size_t L,
                        size_t kernel_max, size_t cache_floats);
/* Block length of the cached-exps kernels over C columns: the
 * parameter, a multiple of the tile, longer where a row would need more
 * than 1024 blocks. */
size_t clx_cached_block(const clx_opencl_state *s, size_t C);
/* Work-group size of the target check and the loss reduction, and their
 * group count over n values (1: a single group). */
size_t clx_reduce_group(const clx_opencl_state *s, size_t kmax);
size_t clx_reduce_groups(const clx_opencl_state *s, size_t n, size_t L);

/* Build options "-DX_T=.. -DY_T=.. -DTGT=.. -DVEC=.. -DKT=.." (VEC: vec,
 * the device's but for the N-d rows, clx_nd_vec). */
void clx_build_options(const clx_opencl_state *s, unsigned vec, char *buf,
                       size_t size, clxent_dtype x, clxent_dtype y, int tgt);
/* The N-d kernels' VEC for inner extent I: the device's, or with
 * nd_narrow on the CPU mapping the width (16, 8 or 4) whose items cost
 * least, a tail counting as 2 + VEC/8 whole items lane by lane (at VEC
 * 16: 4 for I up to 4 and 12, 8 for 5..8, 24 and 40), 1 + VEC/32 in
 * pieces (nd_tail_pieces: 4 up to 4, 8 for 5..8). */
unsigned clx_nd_vec(const clx_opencl_state *s, size_t I);
/* The storage code of the kernels (contract.h CLX_STORE_*). */
int clx_store_code(clxent_dtype d);
/* Float index of the split path's partial states in scratch (after the
 * per-row losses, contract.h CLX_SCR_LOSS). */
size_t clx_scr_part_index(size_t R);

/* ---- strategy.c: the table ---- */

/* Operation families of the table. */
typedef enum clx_family {
    CLX_FAM_ROWSTAT = 1 << 0, /* row_max, row_expsum */
    CLX_FAM_LOG_SOFTMAX = 1 << 1,
    CLX_FAM_SOFTMAX = 1 << 2,
    CLX_FAM_CE_FORWARD = 1 << 3, /* loss and lse (also fused without a
                                    gradient) */
    CLX_FAM_CE_FUSED = 1 << 4,   /* loss, lse and gradient */
    CLX_FAM_CE_BACKWARD = 1 << 5,
    CLX_FAM_NLL_FORWARD = 1 << 6,
    CLX_FAM_NLL_BACKWARD = 1 << 7,
    CLX_FAM_COPY = 1 << 8
} clx_family;

/* How the operation code launches a row's kernels. */
typedef enum clx_runner {
    CLX_RUN_VEC_ROWS, /* lanes and batch kernels: VEC rows per item */
    CLX_RUN_REGS,     /* a group per row, the row held in registers */
    CLX_RUN_SPLIT,    /* chunks' partial states, then the combine */
    CLX_RUN_CACHED,   /* an item per row, one exp per element */
    CLX_RUN_ROWS,     /* T items per row, L/T rows per group */
    CLX_RUN_ELEMS,    /* element-wise, P chunks per row */
    CLX_RUN_ITEMS,    /* an item per row, no reduction (nll_fwd) */
    CLX_RUN_ND        /* N-d: an item per VEC inner positions (nd.cl,
                       * nd_kept.cl) */
} clx_runner;

typedef struct clx_strategy clx_strategy; /* a row of the table */

/* What the table decided for one operation: the row, its kernels built
 * (k[0] the main one; split: k[0] the partial states, k[1] the combine),
 * the build options, and the launch geometry. */
typedef struct clx_plan {
    const clx_strategy *row;
    clx_runner runner;
    const char *name; /* the row's name, for the trace */
    char opts[192];
    cl_kernel k[2];
    size_t kmax[2];
    clx_geom g;       /* ROWS, SPLIT, CACHED, REGS, ELEMS */
    size_t L, global; /* VEC_ROWS, CACHED, REGS */
    size_t cstride;   /* local floats per cached row (0: none) */
    size_t cache;     /* local floats of a group's caches (its L items') */
    unsigned ck;      /* REGS: values per item */
    unsigned ndu;     /* ND: vectors of inner positions per item */
    unsigned vec;     /* the kernels' VEC (clx_build_options) */
} clx_plan;

/* The shape an operation runs on (copy may reshape) and its storage. */
typedef struct clx_work {
    clx_family family;
    size_t R, C;
    size_t O, I;        /* outer, inner: R = O * I */
    int nd;             /* the N-d layout (classes strided) */
    int xf;             /* logit transforms */
    clxent_dtype x;     /* input storage */
    clxent_dtype y;     /* storage the row writes: gradient or output */
    int tgt;            /* CLX_TGT_* (row primitives and copy: 0) */
    int smooth;         /* label smoothing > 0 */
} clx_work;

/* Chooses the first row of the table that applies to w on this context,
 * builds its kernels and fills *plan. */
clxent_status clx_plan_choose(clxent_context *ctx, const clx_work *w,
                              clx_plan *plan);

/* The trace's parameter text of a plan ("batch VEC=16 KT=2 L=4"). */
void clx_plan_describe(const clx_opencl_state *s, const clx_plan *plan,
                       char *buf, size_t size);

#endif /* CLXENT_OPENCL_PLAN_H */
