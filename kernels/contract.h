/* What the host and the kernels must agree on, written once: codes,
 * limits, the layouts of scratch and status memory, and every kernel's
 * argument list. The kernels include it (common.h); the host compiles it
 * (host/src/opencl/runtime/kernel_args.h turns the argument lists into
 * structs and the code that sets them), so an argument added on one side
 * only fails to compile, and tests/test_contract.c checks each list
 * against the built kernel. Plain preprocessor text: valid C and OpenCL C. */
#ifndef CLXENT_KERNELS_CONTRACT_H
#define CLXENT_KERNELS_CONTRACT_H

/* ---- codes ---- */

/* Storage of a matrix (build options X_T, Y_T). */
#define CLX_STORE_F32 0
#define CLX_STORE_F16 1
#define CLX_STORE_BF16 2
/* Targets (build option TGT). */
#define CLX_TGT_I32 0
#define CLX_TGT_I64 1
#define CLX_TGT_PROBS 2
/* The row primitive a softmax.cl kernel computes (argument `what`). */
#define CLX_SM_MAX 0
#define CLX_SM_EXPSUM 1
#define CLX_SM_LOG_SOFTMAX 2
#define CLX_SM_SOFTMAX 3
#define CLX_SM_COPY 4 /* nd_sm only */
/* How xent_check reports (argument `mode`): the synchronous check's
 * verdict in scratch, or the deferred check's in the status buffer, the
 * first one of a batch of calls (overwrite) or a later one (an earlier
 * error stays). */
#define CLX_CHECK_SYNC 0
#define CLX_CHECK_DEFERRED_FIRST 1
#define CLX_CHECK_DEFERRED_KEEP 2

/* ---- limits ---- */

/* The lanes kernels hold a row's C values in a private array of this many
 * vectors: the strategy thresholds on them never exceed it. */
#define CLX_LANES_CMAX_LIMIT 128
/* Rows per work-item of the batch kernels (batch.h). */
#define CLX_BATCH_ROWS 16
/* The N-d cached kernel (nd_cached_fused) holds a row's classes in a
 * private array of at most this many vectors. */
#define CLX_ND_CMAX_LIMIT 1024
/* ... and at most this many vectors of inner positions per item. */
#define CLX_ND_UNROLL_MAX 16
/* The N-d chunked kernel (nd_chunked_fused) reads a row in at most this
 * many chunks (their maxima and sums are private vectors). */
#define CLX_ND_CHUNKS 64
/* Classes per block of the N-d kernels' online statistics. */
#define CLX_ND_BLOCK 8

/* ---- memory layouts ---- */

/* The kernels' row state st_t (rowstate.h): seven floats. */
#define CLX_ST_BYTES 28
/* The target check's state chk_t (nll.cl): four floats, four longs. */
#define CLX_CHK_BYTES 48
/* A split row's partial state in scratch: a st_t and the target logit. */
#define CLX_PART_FLOATS 8
/* A target-check group's partial state: four floats, four longs. */
#define CLX_CHECK_PART_FLOATS 12

/* A sharded row's record (clxent.h's clxent_partial_field, checked by
 * api/api_shard.c): its fields in order. */
#define CLX_REC_MAX 0
#define CLX_REC_SUM 1
#define CLX_REC_SUM_LO 2
#define CLX_REC_A 3
#define CLX_REC_B 4
#define CLX_REC_XY 5
#define CLX_REC_WY 6
#define CLX_REC_OWN 7
#define CLX_REC_FLOATS 8

/* Scratch header (float indices), written by xent_check: */
#define CLX_SCR_W 0     /* [0,1] W, the mean's denominator, as (hi, lo) */
#define CLX_SCR_WSUM 2  /* [2,3] the sum of the class weights (hi, lo) */
#define CLX_SCR_ANY 4   /* 1 when any row is valid */
/* the synchronous verdict (long index: first bad row or -1, its value,
 * C, ignore_index) */
#define CLX_SCR_SYNC_LONG 8
/* the per-row losses start here (floats); partial states follow them */
#define CLX_SCR_LOSS 32

/* The status buffer of the deferred check: CLX_STATUS_LONGS longs, laid
 * out as the synchronous verdict. */
#define CLX_STATUS_LONGS 4
#define CLX_VERDICT_ROW 0
#define CLX_VERDICT_VALUE 1
#define CLX_VERDICT_C 2
#define CLX_VERDICT_II 3

/* ---- kernel argument lists ----
 * A parameter is p_(TYPE, name); a group of parameters shared by several
 * kernels is g_(group); s_() separates (names no kernel argument has). Types:
 *   CX const global XS*  GX global XS*  GY global YS*  CIDX const global IDX*
 *   CF const global float*  GF global float*  GL global long*
 *   ULONG UINT INT LONG FLOAT
 *   LST local st_t*  LCHK local chk_t*  LF local float*  (the host gives
 *   the element count; the bytes follow from the sizes above) */

/* Logits, targets, options and the scale of every cross-entropy kernel. */
#define CLX_G_xent(p_, s_)                                                       \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_ld) s_() p_(UINT, R) s_()         \
    p_(UINT, C) s_() p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(LONG, ii) s_()          \
    p_(CX, t) s_() p_(ULONG, t_off) s_() p_(ULONG, t_ld) s_() p_(CF, w) s_()           \
    p_(ULONG, w_off) s_() p_(INT, has_w) s_() p_(FLOAT, eps) s_() p_(FLOAT, zeta) s_() \
    p_(FLOAT, G) s_() p_(FLOAT, den) s_() p_(INT, den_scr) s_() p_(CF, scr) s_()       \
    p_(CF, gr) s_() p_(ULONG, gr_off) s_() p_(INT, has_gr) s_() p_(INT, guard) s_()   \
    p_(FLOAT, xa) s_() p_(FLOAT, xcap)
/* Where per-row losses and the lse go. */
#define CLX_G_out(p_, s_)                                                        \
    p_(GF, loss) s_() p_(ULONG, loss_off) s_() p_(GF, lse) s_() p_(ULONG, lse_off)    \
    s_() p_(INT, has_lse)
/* The gradient matrix. */
#define CLX_G_grad(p_, s_) p_(GX, gm) s_() p_(ULONG, g_off) s_() p_(ULONG, g_ld)
/* The row primitives' input, given max and outputs (softmax.cl). */
#define CLX_G_sm(p_, s_)                                                         \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_ld) s_() p_(UINT, R) s_()         \
    p_(UINT, C) s_() p_(CF, mx) s_() p_(ULONG, mx_off) s_() p_(GF, vo) s_()            \
    p_(ULONG, vo_off) s_() p_(GY, yo) s_() p_(ULONG, y_off) s_() p_(ULONG, y_ld) s_()  \
    p_(INT, what) s_() p_(FLOAT, xa) s_() p_(FLOAT, xcap)
/* The N-d kernels' (nd.h) logits, targets and options: element (o, c, i)
 * of x at x_off + o*x_so + c*x_sc + i*x_si (probabilities t alike);
 * per-row arrays (y, gr, loss, lse) compact, row r = o*I + i at off + r. */
#define CLX_G_nd(p_, s_)                                                         \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_so) s_() p_(ULONG, x_sc) s_()     \
    p_(ULONG, x_si) s_() p_(UINT, O) s_() p_(UINT, C) s_() p_(UINT, I) s_()            \
    p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(LONG, ii) s_() p_(CX, t) s_()            \
    p_(ULONG, t_off) s_() p_(ULONG, t_so) s_() p_(ULONG, t_sc) s_()                    \
    p_(ULONG, t_si) s_() p_(CF, w) s_() p_(ULONG, w_off) s_() p_(INT, has_w) s_()      \
    p_(FLOAT, eps) s_() p_(FLOAT, zeta) s_() p_(FLOAT, G) s_() p_(FLOAT, den) s_()     \
    p_(INT, den_scr) s_() p_(CF, scr) s_() p_(CF, gr) s_() p_(ULONG, gr_off) s_()      \
    p_(INT, has_gr) s_() p_(INT, guard) s_() p_(FLOAT, xa) s_() p_(FLOAT, xcap)
/* The N-d gradient (or output) tensor. */
#define CLX_G_ndgrad(p_, s_)                                                     \
    p_(GX, gm) s_() p_(ULONG, g_off) s_() p_(ULONG, g_so) s_() p_(ULONG, g_sc) s_()    \
    p_(ULONG, g_si)

/* Every kernel: X(name, file, the shape of its argument list). */
#define CLX_KERNEL_LIST(X)                                                     \
    X(xent_rows_fused, "xent.cl", rows_fused)                                  \
    X(xent_rows1_fused, "xent.cl", rows_fused)                                 \
    X(xent_rows_fwd, "xent.cl", rows_fwd)                                      \
    X(xent_rows1_fwd, "xent.cl", rows_fwd)                                     \
    X(xent_part, "xent.cl", xent_part)                                         \
    X(xent_split_out, "xent.cl", xent_split_out)                               \
    X(xent_bwd, "xent.cl", xent_bwd)                                           \
    X(xent_bwd1, "xent.cl", xent_bwd)                                          \
    X(xent_regs_fused, "xent.cl", regs_fused)                                  \
    X(xent_lanes_fused, "xent_cpu.cl", vec_fused)                              \
    X(xent_lanes_fwd, "xent_cpu.cl", vec_fwd)                                  \
    X(xent_lanes_bwd, "xent_cpu.cl", lanes_bwd)                                \
    X(xent_rowsg_fused, "xent_cpu.cl", rowsg_fused)                            \
    X(xent_rowsl_fused, "xent_cpu.cl", rowsl_fused)                            \
    X(xent_batch_fused, "xent_batch.cl", vec_fused)                            \
    X(xent_batchl_fused, "xent_batch.cl", batchl_fused)                        \
    X(xent_batch_fwd, "xent_batch.cl", vec_fwd)                                \
    X(sm_rows, "softmax.cl", sm_rows)                                          \
    X(sm_rows1, "softmax.cl", sm_rows)                                         \
    X(sm_rows1_out, "softmax.cl", sm_rows)                                     \
    X(sm_part, "softmax.cl", sm_part)                                          \
    X(sm_split_out, "softmax.cl", sm_split_out)                                \
    X(sm_lanes, "softmax.cl", sm)                                              \
    X(sm_cached_g, "softmax.cl", sm_cached_g)                                  \
    X(sm_cached_l, "softmax.cl", sm_cached_l)                                  \
    X(sm_batch, "softmax.cl", sm)                                              \
    X(sm_batchl, "softmax.cl", sm_batchl)                                      \
    X(xent_check, "nll.cl", xent_check)                                        \
    X(xent_check_fin, "nll.cl", xent_check_fin)                                \
    X(loss_reduce, "nll.cl", loss_reduce)                                      \
    X(nll_fwd, "nll.cl", nll_fwd)                                              \
    X(nll_bwd, "nll.cl", nll_bwd)                                              \
    X(copy_rows, "copy.cl", copy_rows)                                         \
    X(stage_rows, "copy.cl", stage_rows)                                       \
    X(z_rows, "nll.cl", z_rows)                                                \
    X(nd_fused, "nd.cl", nd_fused)                                             \
    X(nd_kept_fused, "nd_kept.cl", nd_fused)                                   \
    X(nd_cached_fused, "nd.cl", nd_fused)                                      \
    X(nd_chunked_fused, "nd.cl", nd_fused)                                     \
    X(nd_fwd, "nd.cl", nd_fwd)                                                 \
    X(nd_kept_fwd, "nd_kept.cl", nd_fwd)                                       \
    X(nd_bwd, "nd.cl", nd_bwd)                                                 \
    X(nd_kept_bwd, "nd_kept.cl", nd_bwd)                                       \
    X(nd_sm, "nd.cl", nd_sm)                                                   \
    X(nd_kept_sm, "nd_kept.cl", nd_sm)                                         \
    X(nd_nll_bwd, "nd.cl", nd_nll_bwd)                                         \
    X(shard_partial, "shard.cl", shard_partial)                                \
    X(shard_combine, "shard.cl", shard_combine)                                \
    X(shard_den, "shard.cl", shard_den)                                        \
    X(shard_final, "shard.cl", shard_final)                                    \
    X(shard_bwd, "shard.cl", shard_bwd)

/* The argument lists, by shape: CLX_A_<shape>. */
#define CLX_SHAPE_LIST(X)                                                      \
    X(rows_fused)                                                              \
    X(rows_fwd)                                                                \
    X(xent_part)                                                               \
    X(xent_split_out)                                                          \
    X(xent_bwd)                                                                \
    X(regs_fused)                                                              \
    X(vec_fused)                                                               \
    X(vec_fwd)                                                                 \
    X(lanes_bwd)                                                               \
    X(rowsg_fused)                                                             \
    X(rowsl_fused)                                                             \
    X(batchl_fused)                                                            \
    X(sm)                                                                      \
    X(sm_rows)                                                                 \
    X(sm_part)                                                                 \
    X(sm_split_out)                                                            \
    X(sm_cached_g)                                                             \
    X(sm_cached_l)                                                             \
    X(sm_batchl)                                                               \
    X(xent_check)                                                              \
    X(xent_check_fin)                                                          \
    X(loss_reduce)                                                             \
    X(nll_fwd)                                                                 \
    X(nll_bwd)                                                                 \
    X(copy_rows)                                                               \
    X(stage_rows)                                                              \
    X(z_rows)                                                                  \
    X(nd_fused)                                                                \
    X(nd_fwd)                                                                  \
    X(nd_bwd)                                                                  \
    X(nd_sm)                                                                   \
    X(nd_nll_bwd)                                                              \
    X(shard_partial)                                                           \
    X(shard_combine)                                                           \
    X(shard_den)                                                               \
    X(shard_final)                                                             \
    X(shard_bwd)

#define CLX_A_rows_fused(g_, p_, s_)                                              \
    g_(xent) s_() g_(out) s_() g_(grad) s_() p_(UINT, T) s_() p_(LST, red)
#define CLX_A_rows_fwd(g_, p_, s_) g_(xent) s_() g_(out) s_() p_(UINT, T) s_() p_(LST, red)
#define CLX_A_xent_part(g_, p_, s_)                                               \
    g_(xent) s_() p_(UINT, P) s_() p_(UINT, CH) s_() p_(GF, part) s_()                 \
    p_(ULONG, part_off) s_() p_(INT, aonly) s_() p_(LST, red)
#define CLX_A_xent_split_out(g_, p_, s_)                                          \
    g_(xent) s_() g_(out) s_() g_(grad) s_() p_(UINT, P) s_() p_(UINT, CH) s_()          \
    p_(CF, part) s_() p_(ULONG, part_off) s_() p_(INT, do_grad) s_() p_(LST, red)
#define CLX_A_xent_bwd(g_, p_, s_)                                                \
    g_(xent) s_() p_(CF, lse_in) s_() p_(ULONG, lse_off) s_() g_(grad) s_()            \
    p_(UINT, T) s_() p_(UINT, P) s_() p_(UINT, CH) s_() p_(CF, part) s_()              \
    p_(ULONG, part_off) s_() p_(INT, use_part) s_() p_(LST, red)
#define CLX_A_regs_fused(g_, p_, s_)                                              \
    g_(xent) s_() g_(out) s_() g_(grad) s_() p_(LST, red)
#define CLX_A_vec_fused(g_, p_, s_) g_(xent) s_() g_(out) s_() g_(grad)
#define CLX_A_vec_fwd(g_, p_, s_) g_(xent) s_() g_(out)
#define CLX_A_lanes_bwd(g_, p_, s_)                                               \
    g_(xent) s_() p_(CF, lse_in) s_() p_(ULONG, lse_in_off) s_() g_(grad)
#define CLX_A_rowsg_fused(g_, p_, s_)                                             \
    g_(xent) s_() g_(out) s_() g_(grad) s_() p_(UINT, bl)
#define CLX_A_rowsl_fused(g_, p_, s_)                                             \
    g_(xent) s_() g_(out) s_() g_(grad) s_() p_(UINT, bl) s_() p_(LF, cache) s_()        \
    p_(UINT, cstride)
#define CLX_A_batchl_fused(g_, p_, s_)                                            \
    g_(xent) s_() g_(out) s_() g_(grad) s_() p_(LF, cache) s_() p_(UINT, cstride)
#define CLX_A_sm(g_, p_, s_) g_(sm)
#define CLX_A_sm_rows(g_, p_, s_) g_(sm) s_() p_(UINT, T) s_() p_(LST, red)
#define CLX_A_sm_part(g_, p_, s_)                                                 \
    g_(sm) s_() p_(UINT, P) s_() p_(UINT, CH) s_() p_(GF, part) s_()                   \
    p_(ULONG, part_off) s_() p_(LST, red)
#define CLX_A_sm_split_out(g_, p_, s_)                                            \
    g_(sm) s_() p_(UINT, P) s_() p_(UINT, CH) s_() p_(CF, part) s_()                   \
    p_(ULONG, part_off) s_() p_(LST, red)
#define CLX_A_sm_cached_g(g_, p_, s_) g_(sm) s_() p_(UINT, bl)
#define CLX_A_sm_cached_l(g_, p_, s_)                                             \
    g_(sm) s_() p_(UINT, bl) s_() p_(LF, cache) s_() p_(UINT, cstride)
#define CLX_A_sm_batchl(g_, p_, s_) g_(sm) s_() p_(LF, cache) s_() p_(UINT, cstride)
#define CLX_A_xent_check(g_, p_, s_)                                              \
    p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(UINT, R) s_() p_(UINT, C) s_()           \
    p_(LONG, ii) s_() p_(CF, w) s_() p_(ULONG, w_off) s_() p_(INT, has_w) s_()         \
    p_(CF, own) s_() p_(ULONG, own_off) s_() p_(ULONG, own_so) s_()                  \
    p_(ULONG, own_si) s_() p_(UINT, I) s_() p_(INT, has_own) s_()                    \
    p_(GF, scr) s_() p_(GL, res) s_() p_(ULONG, res_off) s_() p_(INT, mode) s_()       \
    p_(GF, part) s_() p_(ULONG, part_off) s_() p_(LCHK, red)
#define CLX_A_xent_check_fin(g_, p_, s_)                                          \
    p_(UINT, C) s_() p_(LONG, ii) s_() p_(INT, has_w) s_() p_(GF, scr) s_()            \
    p_(GL, res) s_() p_(ULONG, res_off) s_() p_(INT, mode) s_() p_(CF, part) s_()      \
    p_(ULONG, part_off) s_() p_(UINT, np) s_() p_(LCHK, red)
#define CLX_A_loss_reduce(g_, p_, s_)                                             \
    p_(CF, v) s_() p_(ULONG, v_off) s_() p_(UINT, n) s_() p_(GF, out) s_()             \
    p_(ULONG, out_off) s_() p_(INT, mean) s_() p_(FLOAT, den) s_()                   \
    p_(INT, den_scr) s_() p_(INT, any_valid) s_() p_(INT, normalizer) s_()    \
    p_(INT, zero_policy) s_() p_(CF, scr) s_() p_(GF, part) s_()                     \
    p_(ULONG, part_off) s_() p_(INT, guard) s_() p_(LF, red)
/* nll_fwd: element (r, c) at x_off + (r/I)*x_so + c*x_sc + (r%I)*x_si (a
 * matrix: x_so its row stride, x_sc 1, I 1). */
#define CLX_A_nll_fwd(g_, p_, s_)                                                 \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_so) s_() p_(ULONG, x_sc) s_()     \
    p_(ULONG, x_si) s_() p_(UINT, I) s_() p_(UINT, R) s_() p_(UINT, C) s_() p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(LONG, ii) s_()          \
    p_(CF, w) s_() p_(ULONG, w_off) s_() p_(INT, has_w) s_() p_(GF, loss) s_()         \
    p_(ULONG, loss_off) s_() p_(CF, scr) s_() p_(INT, guard)
#define CLX_A_nll_bwd(g_, p_, s_)                                                 \
    p_(GX, g) s_() p_(ULONG, g_off) s_() p_(ULONG, g_ld) s_() p_(UINT, R) s_()         \
    p_(UINT, C) s_() p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(LONG, ii) s_()          \
    p_(CF, w) s_() p_(ULONG, w_off) s_() p_(INT, has_w) s_() p_(FLOAT, G) s_()         \
    p_(FLOAT, den) s_() p_(INT, den_scr) s_() p_(CF, scr) s_() p_(CF, gr) s_()         \
    p_(ULONG, gr_off) s_() p_(INT, has_gr) s_() p_(UINT, T) s_() p_(UINT, P) s_()      \
    p_(UINT, CH) s_() p_(INT, guard)
#define CLX_A_copy_rows(g_, p_, s_)                                               \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_ld) s_() p_(GY, y) s_()           \
    p_(ULONG, y_off) s_() p_(ULONG, y_ld) s_() p_(UINT, R) s_() p_(UINT, C) s_()       \
    p_(UINT, T) s_() p_(UINT, P) s_() p_(UINT, CH)
/* Per-row arrays between strided and compact (words 32-bit words per
 * element: 1 for f32/i32, 2 for i64): element (o, i) at
 * (off + o*so + i*si)*words on each side. */
#define CLX_A_stage_rows(g_, p_, s_)                                              \
    p_(CU, src) s_() p_(ULONG, s_off) s_() p_(ULONG, s_so) s_() p_(ULONG, s_si) s_()   \
    p_(GU, dst) s_() p_(ULONG, d_off) s_() p_(ULONG, d_so) s_() p_(ULONG, d_si) s_()   \
    p_(UINT, O) s_() p_(UINT, I) s_() p_(UINT, words)
/* The z-loss part per row, zeta*lse^2 (0 for ignored rows), from the lse. */
#define CLX_A_z_rows(g_, p_, s_)                                                  \
    p_(CF, lse) s_() p_(ULONG, lse_off) s_() p_(CIDX, y) s_() p_(ULONG, y_off) s_()    \
    p_(LONG, ii) s_() p_(INT, has_y) s_() p_(UINT, R) s_() p_(UINT, C) s_()            \
    p_(FLOAT, zeta) s_() p_(GF, out) s_() p_(ULONG, out_off) s_() p_(CF, scr) s_()     \
    p_(INT, guard)
#define CLX_A_nd_fused(g_, p_, s_) g_(nd) s_() g_(out) s_() g_(ndgrad)
#define CLX_A_nd_fwd(g_, p_, s_) g_(nd) s_() g_(out)
#define CLX_A_nd_bwd(g_, p_, s_)                                                  \
    g_(nd) s_() p_(CF, lse_in) s_() p_(ULONG, lse_in_off) s_() g_(ndgrad)
/* The row primitives and the copy over N-d tensors (what: CLX_SM_* or
 * CLX_SM_COPY): input x, given max mx, per-row output vo, tensor yo. */
#define CLX_A_nd_sm(g_, p_, s_)                                                   \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_so) s_() p_(ULONG, x_sc) s_()     \
    p_(ULONG, x_si) s_() p_(UINT, O) s_() p_(UINT, C) s_() p_(UINT, I) s_()            \
    p_(CF, mx) s_() p_(ULONG, mx_off) s_() p_(GF, vo) s_() p_(ULONG, vo_off) s_()      \
    p_(GY, yo) s_() p_(ULONG, y_off) s_() p_(ULONG, y_so) s_() p_(ULONG, y_sc) s_()    \
    p_(ULONG, y_si) s_() p_(INT, what) s_() p_(FLOAT, xa) s_() p_(FLOAT, xcap)
#define CLX_A_nd_nll_bwd(g_, p_, s_)                                              \
    p_(GX, g) s_() p_(ULONG, g_off) s_() p_(ULONG, g_so) s_() p_(ULONG, g_sc) s_()     \
    p_(ULONG, g_si) s_() p_(UINT, O) s_() p_(UINT, C) s_() p_(UINT, I) s_()            \
    p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(LONG, ii) s_() p_(CF, w) s_()            \
    p_(ULONG, w_off) s_() p_(INT, has_w) s_() p_(FLOAT, G) s_() p_(FLOAT, den) s_()    \
    p_(INT, den_scr) s_() p_(CF, scr) s_() p_(CF, gr) s_() p_(ULONG, gr_off) s_()      \
    p_(INT, has_gr) s_() p_(INT, guard)

/* The sharded vocabulary (shard.cl): every tensor by offset and strides
 * (outer, class, inner; a record's fields on its class axis), per-row
 * arrays by (off, so, si); cb the shard's first global class, Ct the
 * classes of all shards. */
#define CLX_A_shard_partial(g_, p_, s_)                                           \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_so) s_() p_(ULONG, x_sc) s_()     \
    p_(ULONG, x_si) s_() p_(UINT, O) s_() p_(UINT, C) s_() p_(UINT, I) s_()            \
    p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(ULONG, y_so) s_() p_(ULONG, y_si) s_()   \
    p_(LONG, ii) s_() p_(INT, has_y) s_() p_(CX, t) s_() p_(ULONG, t_off) s_()         \
    p_(ULONG, t_so) s_() p_(ULONG, t_sc) s_() p_(ULONG, t_si) s_() p_(CF, w) s_()      \
    p_(ULONG, w_off) s_() p_(INT, has_w) s_() p_(LONG, cb) s_() p_(UINT, Ct) s_()      \
    p_(FLOAT, eps) s_() p_(FLOAT, xa) s_() p_(FLOAT, xcap) s_() p_(GF, rec) s_()       \
    p_(ULONG, r_off) s_() p_(ULONG, r_so) s_() p_(ULONG, r_sc) s_()                   \
    p_(ULONG, r_si) s_() p_(CF, scr) s_() p_(INT, guard) s_() p_(LF, red)
#define CLX_A_shard_combine(g_, p_, s_)                                           \
    p_(CF, a) s_() p_(ULONG, a_off) s_() p_(ULONG, a_so) s_() p_(ULONG, a_sc) s_()     \
    p_(ULONG, a_si) s_() p_(CF, b) s_() p_(ULONG, b_off) s_() p_(ULONG, b_so) s_()     \
    p_(ULONG, b_sc) s_() p_(ULONG, b_si) s_() p_(GF, out) s_() p_(ULONG, o_off) s_()   \
    p_(ULONG, o_so) s_() p_(ULONG, o_sc) s_() p_(ULONG, o_si) s_() p_(UINT, O) s_()    \
    p_(UINT, I)
#define CLX_A_shard_den(g_, p_, s_)                                               \
    p_(CF, rec) s_() p_(ULONG, r_off) s_() p_(ULONG, r_so) s_() p_(ULONG, r_sc) s_()   \
    p_(ULONG, r_si) s_() p_(UINT, O) s_() p_(UINT, I) s_() p_(CIDX, y) s_()            \
    p_(ULONG, y_off) s_() p_(ULONG, y_so) s_() p_(ULONG, y_si) s_() p_(LONG, ii) s_()  \
    p_(GF, scr) s_() p_(INT, guard) s_() p_(LF, red)
#define CLX_A_shard_final(g_, p_, s_)                                             \
    p_(CF, rec) s_() p_(ULONG, r_off) s_() p_(ULONG, r_so) s_() p_(ULONG, r_sc) s_()   \
    p_(ULONG, r_si) s_() p_(UINT, O) s_() p_(UINT, I) s_() p_(CIDX, y) s_()            \
    p_(ULONG, y_off) s_() p_(ULONG, y_so) s_() p_(ULONG, y_si) s_() p_(LONG, ii) s_()  \
    p_(UINT, Ct) s_() p_(FLOAT, eps) s_() p_(FLOAT, zeta) s_() p_(GF, lo) s_()         \
    p_(ULONG, lo_off) s_() p_(ULONG, lo_so) s_() p_(ULONG, lo_si) s_()                \
    p_(INT, has_l) s_() p_(INT, zonly) s_() p_(GF, lse_o) s_() p_(ULONG, lse_off) s_() \
    p_(ULONG, lse_so) s_() p_(ULONG, lse_si) s_() p_(INT, has_lse) s_()              \
    p_(GF, zo) s_() p_(ULONG, zo_off) s_() p_(ULONG, zo_so) s_() p_(ULONG, zo_si) s_() \
    p_(INT, has_z) s_() p_(CF, scr) s_() p_(INT, guard)
#define CLX_A_shard_bwd(g_, p_, s_)                                               \
    p_(CX, x) s_() p_(ULONG, x_off) s_() p_(ULONG, x_so) s_() p_(ULONG, x_sc) s_()     \
    p_(ULONG, x_si) s_() p_(UINT, O) s_() p_(UINT, C) s_() p_(UINT, I) s_()            \
    p_(CIDX, y) s_() p_(ULONG, y_off) s_() p_(ULONG, y_so) s_() p_(ULONG, y_si) s_()   \
    p_(LONG, ii) s_() p_(INT, has_y) s_() p_(CX, t) s_() p_(ULONG, t_off) s_()         \
    p_(ULONG, t_so) s_() p_(ULONG, t_sc) s_() p_(ULONG, t_si) s_() p_(CF, w) s_()      \
    p_(ULONG, w_off) s_() p_(INT, has_w) s_() p_(LONG, cb) s_() p_(UINT, Ct) s_()      \
    p_(FLOAT, eps) s_() p_(FLOAT, zeta) s_() p_(FLOAT, xa) s_() p_(FLOAT, xcap) s_()   \
    p_(CF, rec) s_() p_(ULONG, r_off) s_() p_(ULONG, r_so) s_() p_(ULONG, r_sc) s_()   \
    p_(ULONG, r_si) s_() p_(FLOAT, G) s_() p_(FLOAT, den) s_() p_(INT, den_scr) s_()   \
    p_(CF, scr) s_() p_(CF, gr) s_() p_(ULONG, gr_off) s_() p_(ULONG, gr_so) s_()      \
    p_(ULONG, gr_si) s_() p_(INT, has_gr) s_() p_(GX, gm) s_() p_(ULONG, g_off) s_()   \
    p_(ULONG, g_so) s_() p_(ULONG, g_sc) s_() p_(ULONG, g_si) s_() p_(INT, guard)

/* ---- the kernels' side ---- */
#if defined(__OPENCL_C_VERSION__) || defined(__OPENCL_VERSION__)
#define CLX_KT_CX const global XS *
#define CLX_KT_GX global XS *
#define CLX_KT_GY global YS *
#define CLX_KT_CIDX const global IDX *
#define CLX_KT_CF const global float *
#define CLX_KT_GF global float *
#define CLX_KT_GL global long *
#define CLX_KT_CU const global uint *
#define CLX_KT_GU global uint *
#define CLX_KT_ULONG ulong
#define CLX_KT_UINT uint
#define CLX_KT_INT int
#define CLX_KT_LONG long
#define CLX_KT_FLOAT float
#define CLX_KT_LST local st_t *
#define CLX_KT_LCHK local chk_t *
#define CLX_KT_LF local float *
#define CLX_COMMA() ,
#define CLX_KPARAM(type, name) CLX_KT_##type name
#define CLX_KNAME(type, name) name
#define CLX_KGROUP(group) CLX_G_##group(CLX_KPARAM, CLX_COMMA)
#define CLX_KGROUP_NAMES(group) CLX_G_##group(CLX_KNAME, CLX_COMMA)
/* A kernel's parameter list: kernel void NAME(CLX_PARAMS(shape)), and
 * its names in order, to pass them all on. */
#define CLX_PARAMS(shape) CLX_A_##shape(CLX_KGROUP, CLX_KPARAM, CLX_COMMA)
#define CLX_ARGS(shape) CLX_A_##shape(CLX_KGROUP_NAMES, CLX_KNAME, CLX_COMMA)
/* A group's parameters and names, for the helpers that take them all. */
#define CLX_GROUP_PARAMS(group) CLX_G_##group(CLX_KPARAM, CLX_COMMA)
#define CLX_GROUP_ARGS(group) CLX_G_##group(CLX_KNAME, CLX_COMMA)
#endif

#endif /* CLXENT_KERNELS_CONTRACT_H */
