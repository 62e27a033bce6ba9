/* The tunable parameters of the OpenCL backend: one list gives their
 * names, ranges, class defaults and meanings. A context resolves them once
 * when it is created (tuning.c): class default, then the embedded database
 * entry that matches the device, then the user's tuning file
 * (CLXENT_TUNING_FILE), then the experiment variables; the strategy table
 * (opencl/plan/strategy.c) and the launch geometry read only the result.
 * What each threshold was measured with: docs/tuning.md. */
#ifndef CLXENT_OPENCL_TUNING_PARAMS_H
#define CLXENT_OPENCL_TUNING_PARAMS_H

#include <stddef.h>
#include <stdint.h>

/* Value kinds: what a tuning file or an override may set. */
typedef enum clx_param_kind {
    CLX_PK_INT,  /* any whole number in [lo, hi] */
    CLX_PK_POW2, /* 0 or a power of two in [lo, hi] */
    CLX_PK_VEC   /* 1, 4, 8 or 16 */
} clx_param_kind;

/* X(name, kind, lo, hi, cpu default, gpu default, meaning). "cpu" is any
 * device that is not a GPU. Thresholds on C are inclusive upper bounds
 * ("cmax": C <= value) or exclusive lower bounds ("cmin": C > value). */
#define CLX_PARAM_LIST(X)                                                      \
    X(vec, CLX_PK_VEC, 1, 16, 16, 1,                                           \
      "elements per vector load: 1 is the GPU mapping (lid-strided, "          \
      "coalesced), 4/8/16 the CPU mapping (SIMD inside a work-item)")          \
    X(kt, CLX_PK_POW2, 0, 32, 0, 0,                                            \
      "vector loads per tile (0: 8 with vec 1, else 2)")                       \
    X(group_size, CLX_PK_POW2, 0, 1024, 0, 0,                                  \
      "forced work-group size of the row kernels (0: row_group/small_group)")  \
    X(row_group, CLX_PK_POW2, 1, 1024, 16, 256,                                \
      "work-group size of rows reduced inside one group")                      \
    X(small_group, CLX_PK_POW2, 1, 1024, 64, 256,                              \
      "work-group size of one-item-per-row and lanes kernels")                 \
    X(group_rows, CLX_PK_INT, 0, 1, 0, 1,                                      \
      "1: T items of a group share a row, T from C (GPU mapping); 0: one "     \
      "item per row (CPU mapping; vec 1 always shares)")                       \
    X(items_per_row, CLX_PK_POW2, 0, 1024, 0, 0,                               \
      "forced items per row T (0: from the mapping)")                          \
    X(groups_per_cu, CLX_PK_INT, 1, 1024, 4, 4,                                \
      "work-groups per compute unit that fill the device")                     \
    X(split_rows_per_cu, CLX_PK_INT, 0, 1024, 1, 4,                            \
      "rows split over work-items only when fewer than this x compute units")  \
    X(split_chunks, CLX_PK_INT, 0, 256, 0, 0,                                  \
      "0 automatic, 1 never split, 2-256 split every splittable row into "     \
      "that many chunks")                                                      \
    X(split_item_chunk, CLX_PK_INT, 1, 1 << 24, 4096, 4096,                    \
      "columns per chunk at least where a chunk is one work-item (a group's "  \
      "chunk: 4 of its tiles)")                                                \
    X(split_per_item, CLX_PK_INT, 0, 1, 1, 0,                                  \
      "1: a chunk per work-item, states merged in turn (CPU); 0: a group "     \
      "per chunk, merged by a tree")                                           \
    X(cached_rows, CLX_PK_INT, 0, 2, 1, 0,                                     \
      "fused and softmax rows with their exps cached (one exp per element; "   \
      "vec > 1): 0 off, 1 where an item holds a whole row, 2 forced")          \
    X(cached_block, CLX_PK_INT, 1, 1 << 20, 1024, 1024,                        \
      "block length of the cached-exps kernels (rounded to a tile)")           \
    X(local_margin, CLX_PK_INT, 0, 1 << 20, 16384, 16384,                      \
      "bytes of local memory left to the implementation")                      \
    X(lanes_cmax, CLX_PK_INT, 0, 128, 120, 120,                                \
      "lanes kernel (a row per SIMD lane) of row_max and row_expsum up to "    \
      "this C")                                                                \
    X(lanes_log_softmax_cmax, CLX_PK_INT, 0, 128, 120, 120,                    \
      "lanes kernel of log_softmax up to this C")                              \
    X(lanes_softmax_cmax, CLX_PK_INT, 0, 128, 96, 96,                          \
      "lanes kernel of softmax up to this C")                                  \
    X(lanes_xent_cmax, CLX_PK_INT, 0, 128, 120, 120,                           \
      "lanes kernels of cross-entropy forward and fused up to this C")         \
    X(lanes_bwd_cmax, CLX_PK_INT, 0, 128, 32, 32,                              \
      "lanes kernel of backward up to this C (rows of partial vectors)")       \
    X(nd_kept_cmax, CLX_PK_INT, 0, 1 << 30, 1024, 0,                           \
      "N-d kept kernels up to this C: fused f32 (a row's exps kept in the "    \
      "gradient) and forward with class indices (vec > 1)")                    \
    X(nd_cached_cmax, CLX_PK_INT, 0, 1024, 256, 0,                             \
      "N-d fused kernel with a row's classes in private vectors up to this "   \
      "C (vec > 1)")                                                           \
    X(nd_kept_imin, CLX_PK_INT, 0, 1 << 30, 0, 0,                              \
      "N-d kept fused kernel from this inner extent on, and where the "        \
      "extent is whole vectors (of 4, 8 with nd_narrow); other narrower "      \
      "ones to nd_cached where C fits (its items beat the kept kernel's "      \
      "partial vectors) (vec > 1)")                                            \
    X(nd_unroll, CLX_PK_INT, 1, 16, 4, 1,                                      \
      "vectors of inner positions per item of the N-d kept and cached "        \
      "kernels, at most (their classes loaded together)")                      \
    X(nd_prefetch, CLX_PK_INT, 0, 1, 1, 0,                                     \
      "N-d kernels of the CPU mapping prefetch the logits of the item that "   \
      "runs next on the core: 0 off, 1 on (vec > 1)")                          \
    X(nd_narrow, CLX_PK_INT, 0, 1, 1, 0,                                       \
      "N-d kernels of the CPU mapping narrow their vectors to 4 or 8 lanes "   \
      "where the inner extent's items then cost less: whole vector loads "     \
      "instead of tails (0 off, 1 on) (vec > 1)")                              \
    X(nd_tail_pieces, CLX_PK_INT, 0, 1, 1, 0,                                  \
      "N-d kernels of the CPU mapping load and store the tail of an inner "   \
      "extent of unit stride in pieces of 8, 4, 2 and 1 elements placed by "  \
      "shuffles: 0 lane by lane, 1 in pieces (vec > 1)")                      \
    X(nd_chunked, CLX_PK_INT, 0, 2, 1, 0,                                      \
      "N-d fused f32 past nd_kept_cmax and nd_cached_cmax: the exps kept "     \
      "in the gradient, chunk by chunk (0 off, 1 on, 2 forced at any C)")      \
    X(nd_wide, CLX_PK_INT, 0, 2, 1, 0,                                         \
      "N-d fused, forward, backward and softmax past nd_wide_cmin (fused "     \
      "16-bit: past nd_wide16_cmin; class indices, no smoothing) when the "    \
      "inner extent fills more than nd_unroll vectors: "                       \
      "the kept kernels' items with an online max and sum, the exps "          \
      "computed again for the gradient (0 off, 1 on, 2 forced at any C and "   \
      "inner extent)")                                                         \
    X(nd_wide_cmin, CLX_PK_INT, 0, 1 << 30, 1024, 0,                           \
      "nd_wide rows past this C (f32 fused; forward, backward and softmax "    \
      "in any storage); below it the kept rows up to nd_kept_cmax")            \
    X(nd_wide16_cmin, CLX_PK_INT, 0, 1 << 30, 256, 0,                          \
      "the fused 16-bit nd_wide row past this C; below it nd_cached up to "    \
      "nd_cached_cmax")                                                        \
    X(nd_wide_unroll, CLX_PK_INT, 1, 16, 16, 1,                                \
      "vectors of inner positions per item of the nd_wide rows, at most")      \
    X(batch_cmin, CLX_PK_INT, 0, 1 << 30, 64, 64,                              \
      "batch kernels (16 rows per item) for forward and f32 fused past this "  \
      "C")                                                                     \
    X(batch_cmax, CLX_PK_INT, 0, 1 << 30, 1024, 0,                             \
      "batch kernels up to this C (0: never)")                                 \
    X(batch_softmax_cmin, CLX_PK_INT, 0, 1 << 30, 96, 96,                      \
      "batch kernels for log_softmax and softmax past this C")                 \
    X(batch_bf16_cmin, CLX_PK_INT, 0, 1 << 30, 96, 96,                         \
      "batch kernel for fused bf16 (exps in local memory) past this C")        \
    X(batch_f16_cmin, CLX_PK_INT, 0, 1 << 30, 120, 120,                        \
      "batch kernel for fused f16 (exps in local memory) past this C")         \
    X(regs, CLX_PK_INT, 0, 2, 0, 1,                                            \
      "fused rows held in registers, a group per row: 0 off, 1 past "          \
      "regs_cmin on whole rows, 2 forced wherever a row fits")                 \
    X(regs_cmin, CLX_PK_INT, 0, 1 << 30, 1024, 1024,                           \
      "register-held rows past this C")                                        \
    X(regs_ck, CLX_PK_INT, 0, 64, 0, 0,                                        \
      "values per item of the register-held rows: 16, 32 or 64 (0: from C)")   \
    X(regs_min_group, CLX_PK_POW2, 1, 1024, 1, 32,                             \
      "smallest group of the register-held rows (a warp on GPUs)")             \
    X(shard_group, CLX_PK_POW2, 1, 1024, 1, 64,                                \
      "items per row of the shard kernels: 1 a row per item (vector loads "    \
      "along it), more a group striding over the row (coalesced)")             \
    X(reduce_group, CLX_PK_POW2, 1, 1024, 64, 256,                             \
      "work-group size of the target check and the loss reduction")            \
    X(reduce_slots, CLX_PK_INT, 1, 1 << 20, 256, 32,                           \
      "vector slots per item that pay for a second reduction level")           \
    X(reduce_groups, CLX_PK_INT, 0, 4096, 0, 0,                                \
      "forced group count of the target check and loss reduction (0: auto)")   \
    X(disk_cache, CLX_PK_INT, 0, 1, 1, 1,                                      \
      "keep compiled programs in the disk cache (0 where the driver keeps "    \
      "its own)")

typedef enum clx_param_id {
#define CLX_PARAM_ENUM_(name, kind, lo, hi, cpu, gpu, text) CLX_P_##name,
    CLX_PARAM_LIST(CLX_PARAM_ENUM_)
#undef CLX_PARAM_ENUM_
    CLX_PARAM_COUNT
} clx_param_id;

/* One parameter's description, from CLX_PARAM_LIST. */
typedef struct clx_param_info {
    const char *name;
    clx_param_kind kind;
    int64_t lo, hi;
    int64_t cpu_default, gpu_default;
    const char *meaning;
} clx_param_info;

extern const clx_param_info clx_param_infos[CLX_PARAM_COUNT];

/* A full parameter set. */
typedef struct clx_params {
    int64_t v[CLX_PARAM_COUNT];
} clx_params;

#define CLX_P(params, name) ((params)->v[CLX_P_##name])

/* The parameter called name, or -1. */
int clx_param_find(const char *name);
/* NULL when value is allowed for parameter id, else why not (static). */
const char *clx_param_check(int id, int64_t value);
/* The class defaults. */
void clx_params_defaults(clx_params *p, int gpu);

#endif /* CLXENT_OPENCL_TUNING_PARAMS_H */
