/* THE TABLE: which kernel runs an operation, and why. The first row that
 * applies wins. A row names the operation families it serves, the mapping
 * it needs (vec > 1 is the CPU mapping, where a work-item does SIMD), the
 * storage it writes (the gradient, or the softmax output), the targets,
 * a range of C given by tuning parameters (C > cmin, C <= cmax; their
 * values: the class defaults in opencl/tuning/params.h, the measured ones
 * in host/tuning/, the measurements behind them in docs/tuning.md), what
 * else must hold (geometry, local memory, registers), and its kernels.
 * `clxent tune` moves the thresholds per device; CLXENT_TRACE=1 prints
 * the row and kernels each operation took.
 *
 * Around every row: operations with class indices first run xent_check
 * (and xent_check_fin past one group); reductions sum and mean end with
 * loss_reduce (two levels past one group); the reduce_* parameters size
 * both. */
#include "opencl/plan/plan.h"

#include <stdio.h>
#include <string.h>

/* Storage masks. */
#define DT_F32 1u
#define DT_F16 2u
#define DT_BF16 4u
#define DT_16 (DT_F16 | DT_BF16)
#define DT_ANY (DT_F32 | DT_16)
/* Target masks. */
#define TG_INDEX 1u
#define TG_PROBS 2u
#define TG_NONE 4u
#define TG_ANY (TG_INDEX | TG_PROBS | TG_NONE)
/* Mappings. */
#define MAP_ANY 0
#define MAP_SIMD 1   /* vec > 1 */
#define MAP_SIMD16 2 /* vec 16 */

/* What else a row needs. */
#define N_NATURAL 0x001u  /* no forced items per row, no forced split */
#define N_GEOM_ROWS 0x002u /* (computes the rows geometry) */
#define N_GEOM_ELEMS 0x004u /* (computes the element-wise geometry) */
#define N_SPLIT 0x008u    /* the rows geometry splits rows */
#define N_WHOLE 0x010u    /* ... does not */
#define N_ONE_ITEM 0x020u /* ... gives one item per row */
#define N_NO_T 0x040u     /* no forced items per row */
#define N_BATCH_CACHE 0x080u /* 16 rows' exps fit in local memory */
#define N_ROW_CACHE 0x100u   /* a row's exps fit in local memory */
#define N_REGS_FIT 0x200u    /* a row fits a group's registers */
#define N_PARTIAL_VEC 0x400u /* rows end in a partial vector */
#define N_BOUNDS 0x800u      /* (in `forced`: the C range) */
#define N_PLAIN 0x1000u      /* no logit transforms (the kernel has none) */
#define N_ND 0x2000u         /* the N-d layout (class stride > 1) only */
#define N_ANY_LAYOUT 0x4000u /* either layout (else the 2-D one only) */
#define N_NO_SMOOTH 0x8000u  /* no label smoothing */
#define N_WIDE 0x10000u      /* the inner extent fills more than nd_unroll
                               * vectors (the N-d kept rows' items) */
#define N_INNER_MIN 0x20000u /* the inner extent is nd_kept_imin at least,
                              * or whole vectors (clx_nd_vec's) */

#define NONE (-1)
#define P_(name) CLX_P_##name

struct clx_strategy {
    const char *name;
    unsigned families;
    int mapping;
    unsigned dtypes, targets;
    int cmin[2], cmax[2]; /* parameter ids, NONE */
    int mode;             /* a 0 off / 1 auto / 2 forced parameter, NONE */
    unsigned needs;
    unsigned forced;      /* needs (and N_BOUNDS) that mode 2 waives */
    clx_runner runner;
    const char *kernels[2];
    const char *reason;
};

#define F_STATS (CLX_FAM_ROWSTAT | CLX_FAM_LOG_SOFTMAX | CLX_FAM_SOFTMAX)
#define F_FWD CLX_FAM_CE_FORWARD
#define F_FUSED CLX_FAM_CE_FUSED
#define F_BWD CLX_FAM_CE_BACKWARD

static const clx_strategy table[] = {
    /* ---- the N-d layout: classes strided (PyTorch's (N, C, d1..dk)) ----
     * An item per VEC consecutive inner positions, a row per lane
     * (nd.h), VEC narrowed to 4 or 8 where the inner extent then has
     * cheaper items (nd_narrow, clx_nd_vec); the 2-D rows below serve
     * tensors whose class stride is 1 (a matrix, or channels-last). The
     * nd_wide rows come before the kept rows: at wide inner extents they
     * start at a C of their own (nd_wide_cmin), below where the kept rows
     * end at narrow ones. */
    {"nd_wide", F_FUSED, MAP_SIMD, DT_F32, TG_INDEX, {P_(nd_wide_cmin), NONE},
     {NONE, NONE}, P_(nd_wide), N_ND | N_PLAIN | N_NO_SMOOTH | N_WIDE,
     N_BOUNDS | N_WIDE, CLX_RUN_ND, {"nd_kept_fused"},
     "N-d f32, long rows and wide inner extents on CPUs: the kept kernel's "
     "items of nd_wide_unroll vectors with an online max and sum, the exps "
     "computed again for the gradient (the logits read twice, the gradient "
     "written once)"},
    {"nd_wide", F_FUSED, MAP_SIMD, DT_16, TG_INDEX, {P_(nd_wide16_cmin), NONE},
     {NONE, NONE}, P_(nd_wide), N_ND | N_PLAIN | N_NO_SMOOTH | N_WIDE,
     N_BOUNDS | N_WIDE, CLX_RUN_ND, {"nd_kept_fused"},
     "N-d 16-bit, as the f32 row, past nd_wide16_cmin (the kept rows hold "
     "f32 exps in the gradient and serve f32 only): the one-vector nd_fused "
     "items took 2.3-3.3x as long"},
    {"nd_kept", F_FUSED, MAP_SIMD, DT_F32, TG_ANY, {NONE, NONE},
     {P_(nd_kept_cmax), NONE}, NONE, N_ND | N_PLAIN | N_INNER_MIN, 0,
     CLX_RUN_ND, {"nd_kept_fused"},
     "N-d f32 on CPUs: the row's exps kept in the gradient (read twice "
     "while cached, one exp per element), then scaled in place"},
    {"nd_cached", F_FUSED, MAP_SIMD, DT_ANY, TG_ANY, {NONE, NONE},
     {P_(nd_cached_cmax), NONE}, NONE, N_ND | N_PLAIN, 0, CLX_RUN_ND,
     {"nd_cached_fused"},
     "N-d, few classes on CPUs (16-bit, or f32 past nd_kept_cmax): a row's "
     "classes held in private vectors, one exp per element"},
    {"nd_chunked", F_FUSED, MAP_SIMD, DT_F32, TG_INDEX,
     {P_(nd_cached_cmax), P_(nd_kept_cmax)}, {NONE, NONE}, P_(nd_chunked),
     N_ND | N_PLAIN | N_NO_SMOOTH, N_BOUNDS, CLX_RUN_ND, {"nd_chunked_fused"},
     "N-d f32, long rows on CPUs: each chunk read twice while cached, its "
     "exps kept in the gradient and scaled in place (one exp per element)"},
    {"nd_wide", F_FWD, MAP_SIMD, DT_ANY, TG_INDEX, {P_(nd_wide_cmin), NONE},
     {NONE, NONE}, P_(nd_wide), N_ND | N_PLAIN | N_NO_SMOOTH | N_WIDE,
     N_BOUNDS | N_WIDE, CLX_RUN_ND, {"nd_kept_fwd"},
     "N-d forward, long rows and wide inner extents on CPUs: the kept "
     "kernel's items, one pass with an online max and sum"},
    {"nd_kept", F_FWD, MAP_SIMD, DT_ANY, TG_INDEX, {NONE, NONE},
     {P_(nd_kept_cmax), NONE}, NONE, N_ND | N_PLAIN | N_NO_SMOOTH, 0,
     CLX_RUN_ND, {"nd_kept_fwd"},
     "N-d forward on CPUs: an item's vectors of inner positions read "
     "twice while cached (the max, then the exps), one exp per element"},
    {"nd_wide", F_BWD, MAP_SIMD, DT_ANY, TG_INDEX, {P_(nd_wide_cmin), NONE},
     {NONE, NONE}, P_(nd_wide), N_ND | N_PLAIN | N_WIDE, N_BOUNDS | N_WIDE,
     CLX_RUN_ND, {"nd_kept_bwd"},
     "N-d backward, long rows and wide inner extents on CPUs: items of "
     "nd_wide_unroll vectors"},
    {"nd_kept", F_BWD, MAP_SIMD, DT_ANY, TG_INDEX, {NONE, NONE},
     {P_(nd_kept_cmax), NONE}, NONE, N_ND | N_PLAIN, 0, CLX_RUN_ND,
     {"nd_kept_bwd"},
     "N-d backward on CPUs: items of NDU vectors, each class's vectors "
     "written in a row"},
    {"nd_wide", CLX_FAM_LOG_SOFTMAX | CLX_FAM_SOFTMAX, MAP_SIMD, DT_ANY,
     TG_ANY, {P_(nd_wide_cmin), NONE}, {NONE, NONE}, P_(nd_wide),
     N_ND | N_PLAIN | N_WIDE, N_BOUNDS | N_WIDE, CLX_RUN_ND, {"nd_kept_sm"},
     "N-d log_softmax and softmax, long rows and wide inner extents on "
     "CPUs: the same with items of nd_wide_unroll vectors"},
    {"nd_kept", CLX_FAM_LOG_SOFTMAX | CLX_FAM_SOFTMAX, MAP_SIMD, DT_ANY,
     TG_ANY, {NONE, NONE}, {P_(nd_kept_cmax), NONE}, NONE, N_ND | N_PLAIN, 0,
     CLX_RUN_ND, {"nd_kept_sm"},
     "N-d log_softmax and softmax on CPUs: items of NDU vectors, an online "
     "max and sum, then the outputs from the logits read again"},
    {"nd", F_FWD | F_FUSED | F_BWD, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE},
     {NONE, NONE}, NONE, N_ND, 0, CLX_RUN_ND, {"nd_fwd"},
     "N-d: lane-wise online statistics, the gradient recomputed (kernel by "
     "family: nd_fwd, nd_fused, nd_bwd)"},
    {"nd", F_STATS | CLX_FAM_COPY, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE},
     {NONE, NONE}, NONE, N_ND, 0, CLX_RUN_ND, {"nd_sm"},
     "N-d row primitives and copy: lane-wise, the outputs in a second "
     "pass"},
    {"nd", CLX_FAM_NLL_BACKWARD, MAP_ANY, DT_ANY, TG_INDEX, {NONE, NONE},
     {NONE, NONE}, NONE, N_ND, 0, CLX_RUN_ND, {"nd_nll_bwd"},
     "N-d NLL gradient: whole inner vectors per class"},

    /* ---- row primitives: max, exp-sum, log_softmax, softmax ---- */
    {"batch_cached", CLX_FAM_SOFTMAX, MAP_SIMD16, DT_16, TG_ANY,
     {P_(batch_softmax_cmin), NONE}, {P_(batch_cmax), NONE}, NONE,
     N_PLAIN | N_NATURAL | N_BATCH_CACHE, 0, CLX_RUN_VEC_ROWS, {"sm_batchl"},
     "softmax into 16-bit, a few hundred columns: 16 rows per item finished "
     "together, their exps kept in local memory, not computed twice"},
    {"batch", CLX_FAM_LOG_SOFTMAX | CLX_FAM_SOFTMAX, MAP_SIMD16, DT_ANY,
     TG_ANY, {P_(batch_softmax_cmin), NONE}, {P_(batch_cmax), NONE}, NONE,
     N_PLAIN | N_NATURAL, 0, CLX_RUN_VEC_ROWS, {"sm_batch"},
     "a few hundred columns: 16 rows per item, their horizontal reductions "
     "and logs done for 16 rows at once"},
    {"lanes", CLX_FAM_ROWSTAT, MAP_SIMD, DT_ANY, TG_ANY, {NONE, NONE},
     {P_(lanes_cmax), NONE}, NONE, N_PLAIN | N_NATURAL, 0, CLX_RUN_VEC_ROWS,
     {"sm_lanes"},
     "short rows: a row per SIMD lane, no horizontal reduction per row"},
    {"lanes", CLX_FAM_LOG_SOFTMAX, MAP_SIMD, DT_ANY, TG_ANY, {NONE, NONE},
     {P_(lanes_log_softmax_cmax), NONE}, NONE, N_PLAIN | N_NATURAL, 0,
     CLX_RUN_VEC_ROWS, {"sm_lanes"},
     "short rows: a row per SIMD lane, the logs shared by VEC rows"},
    {"lanes", CLX_FAM_SOFTMAX, MAP_SIMD, DT_ANY, TG_ANY, {NONE, NONE},
     {P_(lanes_softmax_cmax), NONE}, NONE, N_PLAIN | N_NATURAL, 0, CLX_RUN_VEC_ROWS,
     {"sm_lanes"},
     "short rows; softmax needs no log and caches its exps on the row "
     "path, so it keeps the lanes for fewer columns"},
    {"split", F_STATS, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_SPLIT, 0, CLX_RUN_SPLIT,
     {"sm_part", "sm_split_out"},
     "rows too few to fill the device: chunks' partial states, merged in "
     "fixed order"},
    {"cached", CLX_FAM_SOFTMAX, MAP_SIMD, DT_F32, TG_ANY, {NONE, NONE},
     {NONE, NONE}, P_(cached_rows),
     N_PLAIN | N_GEOM_ROWS | N_WHOLE | N_NO_T | N_ONE_ITEM, N_ONE_ITEM, CLX_RUN_CACHED,
     {"sm_cached_g"},
     "an item per row: one exp per element, kept in the output"},
    {"cached", CLX_FAM_SOFTMAX, MAP_SIMD, DT_16, TG_ANY, {NONE, NONE},
     {NONE, NONE}, P_(cached_rows),
     N_PLAIN | N_GEOM_ROWS | N_WHOLE | N_NO_T | N_ONE_ITEM | N_ROW_CACHE, N_ONE_ITEM,
     CLX_RUN_CACHED, {"sm_cached_l"},
     "an item per row: one exp per element, kept in local memory"},
    {"rows1", CLX_FAM_ROWSTAT, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE},
     {NONE, NONE}, NONE, N_GEOM_ROWS | N_WHOLE | N_ONE_ITEM, 0, CLX_RUN_ROWS,
     {"sm_rows1"}, "an item per row: the barrier-free kernel"},
    {"rows1", CLX_FAM_LOG_SOFTMAX | CLX_FAM_SOFTMAX, MAP_ANY, DT_ANY, TG_ANY,
     {NONE, NONE}, {NONE, NONE}, NONE, N_GEOM_ROWS | N_WHOLE | N_ONE_ITEM, 0,
     CLX_RUN_ROWS, {"sm_rows1_out"},
     "an item per row, the rows written: the barrier-free kernel declared "
     "vectorized (kernels/softmax.cl)"},
    {"rows", F_STATS, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_WHOLE, 0, CLX_RUN_ROWS, {"sm_rows"},
     "T items per row (GPU mapping), merged in the group"},

    /* ---- cross-entropy forward and fused ---- */
    {"batch_cached", F_FUSED, MAP_SIMD16, DT_BF16, TG_INDEX,
     {P_(batch_cmin), P_(batch_bf16_cmin)}, {P_(batch_cmax), NONE}, NONE,
     N_PLAIN | N_NATURAL | N_BATCH_CACHE, 0, CLX_RUN_VEC_ROWS, {"xent_batchl_fused"},
     "fused bf16, a few hundred columns: 16 rows per item, the exps in "
     "local memory; below batch_bf16_cmin the lanes kernels win"},
    {"batch_cached", F_FUSED, MAP_SIMD16, DT_F16, TG_INDEX,
     {P_(batch_cmin), P_(batch_f16_cmin)}, {P_(batch_cmax), NONE}, NONE,
     N_PLAIN | N_NATURAL | N_BATCH_CACHE, 0, CLX_RUN_VEC_ROWS, {"xent_batchl_fused"},
     "fused f16, as bf16; f16 rows there mostly start unaligned and keep "
     "the lanes kernels longer"},
    {"batch", F_FUSED, MAP_SIMD16, DT_F32, TG_INDEX, {P_(batch_cmin), NONE},
     {P_(batch_cmax), NONE}, NONE, N_PLAIN | N_NATURAL, 0, CLX_RUN_VEC_ROWS,
     {"xent_batch_fused"},
     "a few hundred columns: 16 rows per item, the exps cached in the f32 "
     "gradient, reductions and logs for 16 rows at once"},
    {"batch", F_FWD, MAP_SIMD16, DT_ANY, TG_INDEX, {P_(batch_cmin), NONE},
     {P_(batch_cmax), NONE}, NONE, N_PLAIN | N_NATURAL, 0, CLX_RUN_VEC_ROWS,
     {"xent_batch_fwd"}, "a few hundred columns: 16 rows per item"},
    {"lanes", F_FUSED, MAP_SIMD, DT_ANY, TG_INDEX, {NONE, NONE},
     {P_(lanes_xent_cmax), NONE}, NONE, N_PLAIN | N_NATURAL, 0, CLX_RUN_VEC_ROWS,
     {"xent_lanes_fused"},
     "short rows: a row per SIMD lane, logs and losses shared by VEC rows"},
    {"lanes", F_FWD, MAP_SIMD, DT_ANY, TG_INDEX, {NONE, NONE},
     {P_(lanes_xent_cmax), NONE}, NONE, N_PLAIN | N_NATURAL, 0, CLX_RUN_VEC_ROWS,
     {"xent_lanes_fwd"}, "short rows: a row per SIMD lane"},
    {"regs", F_FUSED, MAP_ANY, DT_ANY, TG_ANY, {P_(regs_cmin), NONE},
     {NONE, NONE}, P_(regs), N_PLAIN | N_GEOM_ROWS | N_WHOLE | N_REGS_FIT,
     N_BOUNDS | N_WHOLE, CLX_RUN_REGS, {"xent_regs_fused"},
     "GPUs, long rows: a group per row held in registers, the logits read "
     "once"},
    {"split", F_FWD | F_FUSED, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE},
     {NONE, NONE}, NONE, N_GEOM_ROWS | N_SPLIT, 0, CLX_RUN_SPLIT,
     {"xent_part", "xent_split_out"},
     "rows too few to fill the device: chunks' partial states, merged in "
     "fixed order"},
    {"cached", F_FUSED, MAP_SIMD, DT_F32, TG_ANY, {NONE, NONE}, {NONE, NONE},
     P_(cached_rows), N_PLAIN | N_GEOM_ROWS | N_WHOLE | N_NO_T | N_ONE_ITEM,
     N_ONE_ITEM, CLX_RUN_CACHED, {"xent_rowsg_fused"},
     "an item per row: one exp per element, cached in the f32 gradient"},
    {"cached", F_FUSED, MAP_SIMD, DT_16, TG_ANY, {NONE, NONE}, {NONE, NONE},
     P_(cached_rows),
     N_PLAIN | N_GEOM_ROWS | N_WHOLE | N_NO_T | N_ONE_ITEM | N_ROW_CACHE, N_ONE_ITEM,
     CLX_RUN_CACHED, {"xent_rowsl_fused"},
     "an item per row: one exp per element, cached in local memory"},
    {"rows1", F_FUSED, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_WHOLE | N_ONE_ITEM, 0, CLX_RUN_ROWS,
     {"xent_rows1_fused"}, "an item per row: the barrier-free kernel"},
    {"rows1", F_FWD, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_WHOLE | N_ONE_ITEM, 0, CLX_RUN_ROWS,
     {"xent_rows1_fwd"}, "an item per row: the barrier-free kernel"},
    {"rows", F_FUSED, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_WHOLE, 0, CLX_RUN_ROWS, {"xent_rows_fused"},
     "T items per row (GPU mapping), merged in the group"},
    {"rows", F_FWD, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_WHOLE, 0, CLX_RUN_ROWS, {"xent_rows_fwd"},
     "T items per row (GPU mapping), merged in the group"},

    /* ---- cross-entropy backward from the saved lse ---- */
    {"lanes", F_BWD, MAP_SIMD, DT_ANY, TG_INDEX, {NONE, NONE},
     {P_(lanes_bwd_cmax), NONE}, NONE, N_PLAIN | N_NATURAL | N_PARTIAL_VEC,
     0, CLX_RUN_VEC_ROWS, {"xent_lanes_bwd"},
     "short rows ending in partial vectors (whole vectors are as fast "
     "element-wise)"},
    {"split", F_BWD, MAP_ANY, DT_ANY, TG_PROBS, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_SPLIT, 0, CLX_RUN_SPLIT, {"xent_part", "xent_bwd"},
     "probabilities, rows too few: the chunks' target sums first"},
    {"rows1", F_BWD, MAP_ANY, DT_ANY, TG_PROBS, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_WHOLE | N_ONE_ITEM, 0, CLX_RUN_ROWS, {"xent_bwd1"},
     "probabilities, an item per row: the row's target sum without a "
     "barrier"},
    {"rows", F_BWD, MAP_ANY, DT_ANY, TG_PROBS, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ROWS | N_WHOLE, 0, CLX_RUN_ROWS, {"xent_bwd"},
     "probabilities: the row's target sum merged in the group"},
    {"elems", F_BWD, MAP_ANY, DT_ANY, TG_INDEX, {NONE, NONE}, {NONE, NONE},
     NONE, N_GEOM_ELEMS, 0, CLX_RUN_ELEMS, {"xent_bwd"},
     "class indices: element-wise, no reduction"},

    /* ---- NLL over log-probabilities, and the copy ---- */
    {"items", CLX_FAM_NLL_FORWARD, MAP_ANY, DT_ANY, TG_INDEX, {NONE, NONE},
     {NONE, NONE}, NONE, N_ANY_LAYOUT, 0, CLX_RUN_ITEMS, {"nll_fwd"},
     "one element per row to read: an item per row"},
    {"elems", CLX_FAM_NLL_BACKWARD, MAP_ANY, DT_ANY, TG_INDEX, {NONE, NONE},
     {NONE, NONE}, NONE, N_GEOM_ELEMS, 0, CLX_RUN_ELEMS, {"nll_bwd"},
     "element-wise"},
    {"elems", CLX_FAM_COPY, MAP_ANY, DT_ANY, TG_ANY, {NONE, NONE},
     {NONE, NONE}, NONE, N_GEOM_ELEMS, 0, CLX_RUN_ELEMS, {"copy_rows"},
     "element-wise (contiguous rows reshaped into fewer, longer ones)"},
};

/* ---- choosing ---- */

/* The kernels whose largest group bounds the rows geometry of a family:
 * the rows kernel and the split pair. */
static const char *const *rows_geom_kernels(clx_family f, int tgt) {
    static const char *const stats[] = {"sm_rows", "sm_part", "sm_split_out"};
    static const char *const fwd[] = {"xent_rows_fwd", "xent_part",
                                      "xent_split_out"};
    static const char *const fused[] = {"xent_rows_fused", "xent_part",
                                        "xent_split_out"};
    static const char *const bwd[] = {"xent_bwd", "xent_part", NULL};
    (void)tgt;
    return f == CLX_FAM_CE_FUSED      ? fused
           : f == CLX_FAM_CE_FORWARD  ? fwd
           : f == CLX_FAM_CE_BACKWARD ? bwd
                                      : stats;
}

static const char *kernel_file(const char *name) {
#define CLX_KFILE_(kname, file, shape)                                         \
    if (strcmp(name, #kname) == 0) return file;
    CLX_KERNEL_LIST(CLX_KFILE_)
#undef CLX_KFILE_
    return "?";
}

/* Vectors of inner positions per item of the N-d kernels that take
 * several (NDU), no more than nd_unroll (nd_wide_unroll for the nd_wide
 * rows) or the inner extent needs; for the kept rows the unroll whose
 * whole items cover the most inner positions (the larger on a tie): their
 * partial items run one vector at a time, two exps per element, so at
 * inner 48 three items of 1 vector beat one partial item of 4; for
 * nd_cached_fused also its private rows: C rounded up to a power of two
 * (NDC, one program per size class), NDC x NDU within the build limit
 * (docs/tuning.md, "nd"). 1 for the other N-d kernels. */
static unsigned nd_row_unroll(const clx_opencl_state *s, const clx_work *w,
                              const clx_strategy *row, unsigned vec,
                              unsigned *ndc) {
    int cached = strcmp(row->kernels[0], "nd_cached_fused") == 0;
    unsigned n = 8, u = (unsigned)CLX_P(&s->params, nd_unroll);
    if (strcmp(row->name, "nd_wide") == 0)
        u = (unsigned)CLX_P(&s->params, nd_wide_unroll);
    *ndc = 0;
    if (!cached && strncmp(row->kernels[0], "nd_kept", 7) != 0) return 1;
    if (cached) {
        while (n < w->C) n *= 2;
        *ndc = n;
        if (u > CLX_ND_CMAX_LIMIT / n) u = CLX_ND_CMAX_LIMIT / n;
    }
    if (u > CLX_ND_UNROLL_MAX) u = CLX_ND_UNROLL_MAX;
    while (u > 1 && (size_t)(u / 2) * vec >= w->I) u /= 2;
    if (!cached && strcmp(row->name, "nd_kept") == 0) {
        size_t width = (size_t)u * vec, best = w->I / width * width;
        for (unsigned v = u / 2; v >= 1; v /= 2) {
            size_t wv = (size_t)v * vec;
            if (w->I / wv * wv > best) best = w->I / wv * wv, u = v;
        }
    }
    return u ? u : 1;
}

/* The row's build options, into plan->opts: the work's at the plan's
 * VEC, plus what a kernel family needs as a build option (label
 * smoothing of the batch kernels, values per item of the register rows,
 * the N-d rows' ndu and ndc of nd_row_unroll and how their tails move). */
static void row_options(const clx_opencl_state *s, const clx_work *w,
                        const clx_strategy *row, unsigned ndc,
                        clx_plan *plan) {
    unsigned ck = plan->ck, ndu = plan->ndu;
    char *buf = plan->opts;
    size_t size = sizeof plan->opts;
    clx_build_options(s, plan->vec, buf, size, w->x, w->y, w->tgt);
    size_t n = strlen(buf);
    int wide = row->runner == CLX_RUN_ND && strcmp(row->name, "nd_wide") == 0;
    if (row->runner == CLX_RUN_VEC_ROWS &&
        strncmp(row->kernels[0], "xent_batch", 10) == 0)
        snprintf(buf + n, size - n, " -DSMOOTH=%d", w->smooth);
    else if (row->runner == CLX_RUN_REGS)
        snprintf(buf + n, size - n, " -DCK=%u", ck);
    else if (row->runner == CLX_RUN_ND && (row->cmax[0] != NONE || wide)) {
        if (ndc)
            snprintf(buf + n, size - n, " -DNDC=%u -DNDU=%u", ndc, ndu);
        else
            snprintf(buf + n, size - n, " -DNDKEPT=1%s -DNDU=%u",
                     wide ? " -DNDONLINE=1" : "", ndu);
    }
    else if (row->runner == CLX_RUN_ND &&
             strcmp(row->kernels[0], "nd_chunked_fused") == 0)
        snprintf(buf + n, size - n, " -DNDK=1");
    n = strlen(buf);
    if (row->runner == CLX_RUN_ND && plan->vec > 1)
        snprintf(buf + n, size - n, " -DND_PIECES=%d",
                 (int)CLX_P(&s->params, nd_tail_pieces));
    n = strlen(buf);
    if (w->xf) snprintf(buf + n, size - n, " -DXF=1");
}

/* Values per item of the register rows, and whether a row of C fits. */
static unsigned regs_ck(const clx_opencl_state *s, size_t C, size_t kmax,
                        size_t *L_out) {
    size_t Ldev = 1;
    size_t maxg = s->max_work_group_size < 1024 ? s->max_work_group_size
                                                : 1024;
    while (Ldev * 2 <= maxg) Ldev *= 2;
    unsigned ck = C <= 16 * Ldev ? 16 : C <= 32 * Ldev ? 32 : 64;
    if (CLX_P(&s->params, regs_ck)) ck = (unsigned)CLX_P(&s->params, regs_ck);
    size_t L = 1;
    while (L * ck < C) L *= 2;
    size_t lo = (size_t)CLX_P(&s->params, regs_min_group);
    if (L < lo) L = lo;
    size_t lim = kmax < Ldev ? kmax : Ldev;
    while (L > lim) L /= 2;
    *L_out = L * ck >= C ? L : 0;
    return ck;
}

typedef struct chooser {
    clxent_context *ctx;
    const clx_work *w;
    unsigned nd_vec; /* the N-d rows' VEC (clx_nd_vec) */
    int have_rows, have_elems;
    clx_geom rows, elems;
} chooser;

static clxent_status need_rows_geom(chooser *c) {
    if (c->have_rows) return CLXENT_STATUS_OK;
    const clx_work *w = c->w;
    const char *const *names = rows_geom_kernels(w->family, w->tgt);
    char opts[192];
    clx_build_options(c->ctx->cl, c->ctx->cl->d.vec, opts, sizeof opts, w->x,
                      w->y, w->tgt);
    size_t kmax = (size_t)-1;
    for (int i = 0; i < 3 && names[i]; ++i) {
        cl_kernel k;
        size_t m;
        clxent_status st = clx_cl_kernel(c->ctx, kernel_file(names[i]), opts,
                                         names[i], &k, &m);
        if (st != CLXENT_STATUS_OK) return st;
        if (m < kmax) kmax = m;
    }
    c->rows = clx_geom_rows(c->ctx->cl, w->R, w->C, kmax);
    c->have_rows = 1;
    return CLXENT_STATUS_OK;
}

static int in_bounds(const clx_opencl_state *s, const clx_strategy *row,
                     size_t C) {
    for (int i = 0; i < 2; ++i) {
        if (row->cmin[i] != NONE && !(C > (size_t)s->params.v[row->cmin[i]]))
            return 0;
        if (row->cmax[i] != NONE && !(C <= (size_t)s->params.v[row->cmax[i]]))
            return 0;
    }
    return 1;
}

static unsigned dtype_bit(clxent_dtype d) {
    return d == CLXENT_F16 ? DT_F16 : d == CLXENT_BF16 ? DT_BF16 : DT_F32;
}

static unsigned target_bit(const clx_work *w) {
    if (w->family & (CLX_FAM_ROWSTAT | CLX_FAM_LOG_SOFTMAX | CLX_FAM_SOFTMAX |
                     CLX_FAM_COPY))
        return TG_NONE;
    return w->tgt == CLX_TGT_PROBS ? TG_PROBS : TG_INDEX;
}

/* Whether row applies; *st gets an error of a kernel build. */
static int applies(chooser *c, const clx_strategy *row, clxent_status *st) {
    const clx_opencl_state *s = c->ctx->cl;
    const clx_work *w = c->w;
    const clx_params *p = &s->params;
    if (!(row->families & w->family) || !(row->dtypes & dtype_bit(w->y)) ||
        !(row->targets & target_bit(w)))
        return 0;
    if ((row->mapping == MAP_SIMD && s->d.vec < 2) ||
        (row->mapping == MAP_SIMD16 && s->d.vec != 16))
        return 0;
    if (!(row->needs & N_ANY_LAYOUT) && !(row->needs & N_ND) != !w->nd)
        return 0;
    if ((row->needs & N_PLAIN) && w->xf) return 0;
    if ((row->needs & N_NO_SMOOTH) && w->smooth) return 0;
    int64_t mode = row->mode == NONE ? 1 : p->v[row->mode];
    if (mode == 0) return 0;
    unsigned waived = mode == 2 ? row->forced : 0;
    if (!(waived & N_BOUNDS) && !in_bounds(s, row, w->C)) return 0;
    unsigned need = row->needs & ~waived;
    if ((need & N_NATURAL) &&
        (CLX_P(p, items_per_row) || CLX_P(p, split_chunks) > 1))
        return 0;
    if ((need & N_NO_T) && CLX_P(p, items_per_row)) return 0;
    if ((need & N_PARTIAL_VEC) && w->C % s->d.vec == 0) return 0;
    if ((need & N_WIDE) && w->I <= (size_t)CLX_P(p, nd_unroll) * s->d.vec)
        return 0;
    if ((need & N_INNER_MIN) && w->I < (size_t)CLX_P(p, nd_kept_imin) &&
        w->I % c->nd_vec != 0)
        return 0;
    if ((need & N_BATCH_CACHE) &&
        !clx_cached_group(s, 1, 1, clx_batch_cache_floats(s, w->C)))
        return 0;
    if (row->needs & N_GEOM_ROWS) {
        *st = need_rows_geom(c);
        if (*st != CLXENT_STATUS_OK) return 0;
        const clx_geom *g = &c->rows;
        if ((need & N_SPLIT) && !g->split) return 0;
        if ((need & N_WHOLE) && g->split) return 0;
        if ((need & N_ONE_ITEM) && g->T != 1) return 0;
        if ((need & N_ROW_CACHE) &&
            !clx_cached_group(s, g->L, g->L, clx_cache_stride(s, w->C)))
            return 0;
    }
    return 1;
}

/* Builds the row's kernels and fills the plan's geometry. 0: the row
 * cannot run after all (registers too few), the next row is tried. */
static int prepare(chooser *c, const clx_strategy *row, clx_plan *plan,
                   clxent_status *st) {
    clxent_context *ctx = c->ctx;
    const clx_opencl_state *s = ctx->cl;
    const clx_work *w = c->w;
    memset(plan, 0, sizeof *plan);
    plan->row = row;
    plan->runner = row->runner;
    plan->name = row->name;
    if (row->runner == CLX_RUN_REGS) {
        size_t L;
        plan->ck = regs_ck(s, w->C, s->max_work_group_size, &L);
    }
    unsigned ndc = 0;
    plan->vec = s->d.vec;
    if (row->runner == CLX_RUN_ND) {
        plan->vec = c->nd_vec;
        plan->ndu = nd_row_unroll(s, w, row, plan->vec, &ndc);
    }
    row_options(s, w, row, ndc, plan);
    for (int i = 0; i < 2 && row->kernels[i]; ++i) {
        const char *name = row->kernels[i];
        if (row->runner == CLX_RUN_ND && strcmp(name, "nd_fwd") == 0)
            name = w->family == CLX_FAM_CE_FUSED      ? "nd_fused"
                   : w->family == CLX_FAM_CE_BACKWARD ? "nd_bwd"
                                                      : "nd_fwd";
        /* the N-d files: a program per kernel, the others built empty
         * (kernels/nd.h, ND_ONE) */
        char opts[sizeof plan->opts + 64];
        const char *file = kernel_file(name);
        snprintf(opts, sizeof opts, "%s", plan->opts);
        if (strcmp(file, "nd.cl") == 0 || strcmp(file, "nd_kept.cl") == 0)
            clx_appendf(opts, sizeof opts, " -DND_ONE=1 -DND_ONLY_%s=1",
                        name);
        *st = clx_cl_kernel(ctx, file, opts, name, &plan->k[i],
                            &plan->kmax[i]);
        if (*st != CLXENT_STATUS_OK) return 1;
    }
    plan->g = c->rows;
    switch (row->runner) {
    case CLX_RUN_VEC_ROWS: {
        int cached = (row->needs & N_BATCH_CACHE) != 0;
        size_t item = cached ? clx_batch_cache_floats(s, w->C) : 0;
        plan->L = clx_vec_rows_group(s, w->R, plan->kmax[0], item,
                                     &plan->global);
        plan->cstride = cached ? clx_cache_stride(s, w->C) : 0;
        plan->cache = plan->L * item; /* 16 rows per item */
        break;
    }
    case CLX_RUN_REGS: {
        size_t L;
        regs_ck(s, w->C, plan->kmax[0], &L);
        if (!L) return 0; /* registers cap the group: the next row */
        plan->L = L;
        plan->global = w->R * L;
        break;
    }
    case CLX_RUN_CACHED: {
        int local = (row->needs & N_ROW_CACHE) != 0;
        plan->cstride = local ? clx_cache_stride(s, w->C) : 0;
        plan->g.T = 1;
        plan->g.L = clx_cached_group(s, plan->g.L, plan->kmax[0],
                                     plan->cstride);
        plan->g.groups = (w->R + plan->g.L - 1) / plan->g.L;
        plan->L = plan->g.L;
        plan->cache = plan->L * plan->cstride; /* a row per item */
        plan->global = plan->g.groups * plan->g.L;
        break;
    }
    case CLX_RUN_ELEMS:
        plan->g = clx_geom_elems(s, w->R, w->C, plan->kmax[0]);
        break;
    case CLX_RUN_ITEMS:
        plan->L = plan->kmax[0] < 64 ? plan->kmax[0] : 64;
        plan->global = (w->R + plan->L - 1) / plan->L * plan->L;
        break;
    case CLX_RUN_ND: {
        /* an item per VEC inner positions of one outer index (NDU vectors
         * of them for the nd_kept and nd_cached kernels) */
        size_t span = plan->vec * plan->ndu;
        size_t units = w->O * ((w->I + span - 1) / span);
        plan->L = clx_vec_rows_group(s, units * s->d.vec, plan->kmax[0], 0,
                                     &plan->global);
        break;
    }
    case CLX_RUN_SPLIT:
    case CLX_RUN_ROWS: break;
    }
    return 1;
}

clxent_status clx_plan_choose(clxent_context *ctx, const clx_work *w,
                              clx_plan *plan) {
    chooser c;
    memset(&c, 0, sizeof c);
    c.ctx = ctx;
    c.w = w;
    c.nd_vec = clx_nd_vec(ctx->cl, w->I);
    for (size_t i = 0; i < sizeof table / sizeof *table; ++i) {
        clxent_status st = CLXENT_STATUS_OK;
        if (!applies(&c, &table[i], &st)) {
            if (st != CLXENT_STATUS_OK) return st;
            continue;
        }
        if (prepare(&c, &table[i], plan, &st)) {
            if (st == CLXENT_STATUS_OK)
                clx_plan_describe(ctx->cl, plan, ctx->cl->op_plan,
                                  sizeof ctx->cl->op_plan);
            return st;
        }
    }
    return clx_fail(ctx, CLXENT_STATUS_UNSUPPORTED, "clx_plan_choose",
                    "no strategy for operation family %d, %zux%zu%s%s",
                    (int)w->family, w->R, w->C, w->nd ? " (N-d)" : "",
                    w->xf ? " (transforms)" : "");
}

void clx_plan_describe(const clx_opencl_state *s, const clx_plan *plan,
                       char *buf, size_t size) {
    int n = snprintf(buf, size, "%s VEC=%u KT=%u", plan->name, plan->vec,
                     s->d.kt);
    if (n < 0 || (size_t)n >= size) return;
    switch (plan->runner) {
    case CLX_RUN_VEC_ROWS:
    case CLX_RUN_ITEMS:
        snprintf(buf + n, size - n, " L=%zu", plan->L);
        break;
    case CLX_RUN_ND:
        snprintf(buf + n, size - n, " L=%zu NDU=%u", plan->L, plan->ndu);
        break;
    case CLX_RUN_REGS:
        snprintf(buf + n, size - n, " L=%zu CK=%u", plan->L, plan->ck);
        break;
    case CLX_RUN_CACHED:
        snprintf(buf + n, size - n, " L=%zu block=%zu", plan->L,
                 clx_cached_block(s, plan->g.CH));
        break;
    case CLX_RUN_SPLIT:
        snprintf(buf + n, size - n, " L=%zu P=%u CH=%u", plan->g.L, plan->g.P,
                 plan->g.CH);
        break;
    case CLX_RUN_ROWS:
        snprintf(buf + n, size - n, " L=%zu T=%u", plan->g.L, plan->g.T);
        break;
    case CLX_RUN_ELEMS:
        snprintf(buf + n, size - n, " L=%zu T=%u P=%u", plan->g.L, plan->g.T,
                 plan->g.P);
        break;
    }
}
