/* Cross-entropy forward, backward and fused forward + backward
 * (docs/semantics.md), the general and GPU strategies (the CPU-only kernels
 * are in xent_cpu.cl). The host picks
 * (backend_opencl_xent.c):
 *   xent_rows_*: T items per row, L/T rows per group, one local reduction
 *                (T = 1: a row per item, no barrier).
 *   xent_part + xent_split_out: rows split in P chunks of CH columns, one
 *                group per chunk; partial states merged in fixed order by
 *                every group of the row, then the chunk's gradient.
 *   xent_bwd:    backward from the saved lse (index targets: no reduction).
 *   xent_regs_fused: GPUs, a group per row held in registers. */
#include "xent.h"

/* T items per row, get_local_size(0)/T rows per group. */
inline void xent_rows_body(XENT_PARAMS, global float *loss, ulong loss_off,
                           global float *lse, ulong lse_off, int has_lse,
                           global XS *gm, ulong g_off, ulong g_ld, uint T,
                           local st_t *red, const int do_grad,
                           const int reduce) {
    unit_t u = unit_of(T, 1, C, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = active && ri.valid && !ri.bad;
    int smooth = TGT == CLX_TGT_PROBS || eps > 0.0f;
    /* x_y before any barrier: in place, the gradient overwrites it. */
    float xy = 0.0f;
    if (TGT != CLX_TGT_PROBS && live && u.lane == 0)
        xy = XLD1(x + x_off + r * x_ld, ri.ycol);
    /* ignored rows still get their lse when it is asked for */
    st_t st = row_acc(XENT_ARGS, r, 0, C, u.lane, T,
                      live || (active && has_lse), smooth);
    if (reduce) /* T == 1 kernels have no barrier at all (PoCL keeps
                   values in registers then) */
        st = seg_reduce(red, st, get_local_id(0), u.lane, T,
                        smooth ? AM_B : AM_STATS);
    if (!active) return;
    row_finish(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm, g_off,
               g_ld, st, xy, ri, r, 0, C, u.lane, T, u.lane == 0, do_grad);
}

KERNEL void xent_rows_fused(CLX_PARAMS(rows_fused)) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                   g_off, g_ld, T, red, 1, 1);
}

/* The same with one item per row (T must be 1). */
KERNEL void xent_rows1_fused(CLX_PARAMS(rows_fused)) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                   g_off, g_ld, 1, red, 1, 0);
}

KERNEL void xent_rows_fwd(CLX_PARAMS(rows_fwd)) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                   (global XS *)0, 0, 0, T, red, 0, 1);
}

KERNEL void xent_rows1_fwd(CLX_PARAMS(rows_fwd)) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                   (global XS *)0, 0, 0, 1, red, 0, 0);
}

/* Split rows, pass 1: the state of chunk k of row r (one group each) into
 * part[(r*P + k)*8 + 0..6]; slot 7 holds x_y (chunk 0; read here, before
 * any gradient is written). aonly: only A (backward with probabilities). */
KERNEL void xent_part(CLX_PARAMS(xent_part)) {
    NO_ROWS_IF_BAD;
    uint L = get_local_size(0);
    unit_t u = unit_of(L, P, CH, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = active && ri.valid && !ri.bad;
    int smooth = TGT == CLX_TGT_PROBS || eps > 0.0f;
    st_t st;
    if (aonly) {
        acc_t q;
        acc_init(&q, 0.0f);
        if (live)
            acc_range(&q, x + x_off + r * x_ld, t + t_off + r * t_ld,
                      w + w_off, has_w, eps, 1.0f / (float)C, u.cb,
                      u.ce, u.lane, L, xa, xcap, AM_AONLY);
        st = acc_final(&q);
    } else {
        /* every row: an ignored row still has an lse */
        st = row_acc(XENT_ARGS, r, u.cb, u.ce, u.lane, L, active, smooth);
    }
    st = seg_reduce(red, st, get_local_id(0), u.lane, L,
                    aonly ? AM_AONLY : smooth ? AM_B : AM_STATS);
    if (!active || u.lane != 0) return;
    global float *o = part + part_off + (r * P + u.chunk) * CLX_PART_FLOATS;
    store_part(o, st);
    float xy = 0.0f;
    if (TGT != CLX_TGT_PROBS && live && u.chunk == 0)
        xy = XLD1(x + x_off + r * x_ld, ri.ycol);
    o[7] = xy;
}

/* The P partial states of row r merged in fixed order (identical in every
 * group of the row): item lid takes states lid, lid + L, ... in turn (one
 * each when P <= L, as on GPUs), then the group's tree. */
inline st_t merge_parts(const global float *part, ulong part_off, ulong r,
                        uint P, uint lid, local st_t *red, int am, float m0) {
    st_t st = st_empty(m0);
    for (uint k = lid; k < P; k += get_local_size(0)) {
        st_t o = load_part(part, part_off + (r * P + k) * CLX_PART_FLOATS);
        st = k == lid ? o : st_merge(st, o, am);
    }
    return seg_reduce(red, st, lid, lid, get_local_size(0), am);
}

/* Split rows, pass 2: do_grad: one group per chunk merges the row's
 * states and writes the chunk's gradient (chunk 0 also the loss and lse);
 * else one group per row writes the loss and lse. */
KERNEL void xent_split_out(CLX_PARAMS(xent_split_out)) {
    NO_ROWS_IF_BAD;
    uint L = get_local_size(0), lid = get_local_id(0);
    unit_t u = do_grad ? unit_of(L, P, CH, C) : unit_of(L, 1, C, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int smooth = TGT == CLX_TGT_PROBS || eps > 0.0f;
    st_t st = merge_parts(part, part_off, r, active ? P : 0, lid, red,
                          smooth ? AM_B : AM_STATS, -INFINITY);
    if (!active) return;
    float xy = part[part_off + r * P * CLX_PART_FLOATS + 7];
    int owner = lid == 0 && u.chunk == 0;
    row_finish(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm, g_off,
               g_ld, st, xy, ri, r, u.cb, u.ce, u.lane, L, owner, do_grad);
}

/* Backward from the saved lse: p = exp(x - lse). Index targets need no
 * reduction (units of T items over P chunks); probabilities need A per
 * row: accumulated here over t (P == 1) or merged from xent_part's
 * A-only states (use_part; T == L, a group per chunk). */
inline void xent_bwd_body(XENT_PARAMS, const global float *lse_in,
                          ulong lse_off, global XS *gm, ulong g_off,
                          ulong g_ld, uint T, uint P, uint CH,
                          const global float *part, ulong part_off,
                          int use_part, local st_t *red, const int reduce) {
    unit_t u = unit_of(T, P, CH, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = active && ri.valid && !ri.bad;
    float asum;
#if TGT == CLX_TGT_PROBS
    acc_t q;
    acc_init(&q, 0.0f);
    if (live && !use_part)
        acc_range(&q, x + x_off + r * x_ld, t + t_off + r * t_ld, w + w_off,
                  has_w, eps, 1.0f / (float)C, 0, C, u.lane, T, xa,
                  xcap, AM_AONLY);
    st_t st = acc_final(&q);
    if (use_part) {
        st = st_empty(0.0f);
        for (uint k = u.lane; active && k < P; k += T) {
            st_t o = load_part(part, part_off + (r * P + k) * CLX_PART_FLOATS);
            st = k == u.lane ? o : st_merge(st, o, AM_AONLY);
        }
    }
    if (reduce) st = seg_reduce(red, st, get_local_id(0), u.lane, T, AM_AONLY);
    asum = fin(st.ah, st.al);
#else
    asum = fin(scr[CLX_SCR_WSUM], scr[CLX_SCR_WSUM + 1]);
#endif
    if (!active) return;
    float lse_v = lse_in[lse_off + r];
    float g = live ? row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r)
                   : 0.0f;
    float k1 = grad_k1(ri, eps, zeta, C, asum, lse_v);
    grad_range(gm + g_off + r * g_ld, x + x_off + r * x_ld,
               t + t_off + r * t_ld, w + w_off, has_w, u.cb, u.ce, u.lane, T,
               !live, lse_v, 0.0f, g, k1, (1.0f - eps) * ri.wy, ri.ycol, eps,
               1.0f / (float)C, xa, xcap);
}

#define XENT_BWD_PARAMS CLX_PARAMS(xent_bwd)
#define XENT_BWD_ARGS CLX_ARGS(xent_bwd)

KERNEL void xent_bwd(CLX_PARAMS(xent_bwd)) {
    NO_ROWS_IF_BAD;
    xent_bwd_body(XENT_BWD_ARGS, 1);
}

/* Probabilities with one item per row and no split: no barrier. */
KERNEL void xent_bwd1(CLX_PARAMS(xent_bwd)) {
    NO_ROWS_IF_BAD;
    xent_bwd_body(XENT_BWD_ARGS, 0);
}
/* ---- fused, one group per row, the row held in registers (GPUs) ----
 * Item lid holds columns lid + k*L, k < CK (CK a build option, the loop
 * fully unrolled so the values stay in registers): x is read once from
 * global memory. Two passes over the registers: the row max (group
 * reduction), then exp(x - m) with its compensated sum (and the smoothing
 * or probability terms), the exps kept for the gradient. Needs
 * C <= CK * get_local_size(0). Scalar code: any VEC build works. */
#ifndef CK
#define CK 32
#endif

KERNEL void xent_regs_fused(CLX_PARAMS(regs_fused)) {
    NO_ROWS_IF_BAD;
    uint lid = get_local_id(0), L = get_local_size(0);
    ulong r = get_group_id(0);
    int on = r < R; /* a group per row: all of them, unless guarded */
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = on && ri.valid && !ri.bad;
    int smooth = TGT == CLX_TGT_PROBS || eps > 0.0f;
    /* ignored rows are read only when their lse is asked for */
    int rd = live || (on && has_lse);
    const global XS *xr = x + x_off + r * x_ld;
    const global XS *tr = t + t_off + r * t_ld;
    const global float *wp = w + w_off;
    float rc = 1.0f / (float)C;
    /* x_y before any barrier: in place, the gradient overwrites it */
    float xy = 0.0f;
    if (TGT != CLX_TGT_PROBS && live && lid == 0) xy = LD1X(xr, ri.ycol);
    float v[CK];
    float mloc = -INFINITY;
#pragma unroll
    for (int k = 0; k < CK; ++k) {
        uint c = lid + (uint)k * L;
        v[k] = rd && c < C ? LD1X(xr, c) : -INFINITY;
        mloc = nanmax1(mloc, v[k]);
    }
    st_t st = seg_reduce(red, st_empty(mloc), lid, lid, L, AM_MAX);
    float m = st.m;
    float s = 0.0f, sc = 0.0f, b = 0.0f, bc = 0.0f, a = 0.0f, ac = 0.0f;
#pragma unroll
    for (int k = 0; k < CK; ++k) {
        uint c = lid + (uint)k * L;
        float e = 0.0f;
        if (rd && c < C) {
            float av = 0.0f;
            if (smooth) {
                av = has_w ? wp[c] : 1.0f;
                if (TGT == CLX_TGT_PROBS)
                    av = prob_a1(av, LD1X(tr, c), eps, rc);
            }
            if (m == -INFINITY) {
                /* only -inf: exp terms 0, a_c*(m - x_c) = a_c*inf */
                if (smooth) {
                    b += av * INFINITY;
                    KAHAN_INF(float, a, ac, av);
                }
            } else {
                e = exp(v[k] - m);
                KAHAN(float, s, sc, e);
                if (smooth) {
                    KAHAN_INF(float, b, bc, av * (m - v[k]));
                    KAHAN_INF(float, a, ac, av);
                }
            }
        }
        v[k] = e;
    }
    st.m = m;
    st.sh = s;
    st.sl = -sc;
    st.bh = b;
    st.bl = -bc;
    st.ah = a;
    st.al = -ac;
    /* equal maxima: the merges add without rescaling */
    st = seg_reduce(red, st, lid, lid, L, smooth ? AM_B : AM_STATS);
    float lse_v;
    float l = row_loss(st, xy, ri, eps, zeta, C, &lse_v);
    if (lid == 0 && on) {
        loss[loss_off + r] = l;
        if (has_lse) lse[lse_off + r] = lse_v;
    }
    global XS *g_row = gm + g_off + r * g_ld;
    float g = live ? row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r)
                   : 0.0f;
    float k1 = grad_k1(ri, eps, zeta, C, fin(st.ah, st.al), lse_v);
    float inv = 1.0f / st_sum(st);
#if TGT != CLX_TGT_PROBS
    float tw = (1.0f - eps) * ri.wy;
#endif
#pragma unroll
    for (int k = 0; k < CK; ++k) {
        uint c = lid + (uint)k * L;
        if (c < C && on) {
            float out = 0.0f;
            if (live) {
                float d = (v[k] * inv) * k1;
#if TGT == CLX_TGT_PROBS
                float wv = has_w ? wp[c] : 1.0f;
                d -= prob_a1(wv, LD1X(tr, c), eps, rc);
#else
                if ((int)c == ri.ycol) d -= tw;
                if (smooth) d -= EPS_SHARE(eps, has_w ? wp[c] : 1.0f, rc);
#endif
                out = g * d;
            }
            ST1X(g_row, c, out);
        }
    }
}
