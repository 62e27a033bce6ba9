/* Cross-entropy forward and fused for CPUs (VEC 16) over rows of a few
 * hundred columns, class indices (the host's choice): 16 rows per item,
 * each row read along its columns in whole vectors with per-lane
 * statistics (the lane-wise max, then exp(x - lane max) summed per lane;
 * fused f32: the exps kept in the gradient row; label smoothing: the
 * sums of w_c * (lane max - x_c) and of w_c too). The 16
 * rows' lane statistics are then transposed (one 16 x 16 transpose each),
 * so that the horizontal reductions, log S and the losses are done for 16
 * rows at once, a row per lane; the per-lane factors exp(lane max - m)/S
 * go back through one more transpose to rescale the cached exps. A row
 * per item (xent_rowsg_fused) pays a horizontal reduction and a scalar log
 * per row instead, a row per lane (the lanes kernels) a transpose per 16
 * columns. The rows' stores of x_y come first: in place, the gradient
 * overwrites the row. A row's last, partial vector is loaded whole when
 * the next row of the item lies behind it (the lanes past C masked), and
 * stored in a few pieces. */
#include "xent_lanes.h"

/* SMOOTH (build option): label smoothing, eps > 0 (the host's choice). */
#ifndef SMOOTH
#define SMOOTH 0
#endif

#if VEC == 16 && TGT != 2
DEF_STORE_FIRST_F32(store_first_f, float) /* the exps and the gradient */

/* The row's last vector at pos (< C), -inf past C; `over`: the item's
 * next row starts within ld columns of xr (a whole load stays in it). */
inline float16 batch_tail(const global XS *xr, uint pos, uint C, ulong ld,
                          int over) {
    if (over && pos + 16 <= ld + C)
        return select(VLDX(xr, pos), (float16)(-INFINITY),
                      col_ids(pos) >= (int16)(int)C);
    return gload_x(xr, pos, C, -INFINITY);
}

/* A row's lane statistics: the max, the sums of exp(x - max) and (label
 * smoothing) of a_c * (max - x_c) and of a_c, a_c the class weights;
 * sums as Kahan pairs (value s - sc). A lane without a finite value takes
 * its exps against 0 (0, not NaN), and its a_c * (max - x_c) too (inf,
 * or NaN for a_c == 0, as -a_c * logp_c is). */
typedef struct lane_stats {
    float16 m, s, sc, b, bc, a, ac;
} lane_stats;

/* Adds the smoothing terms of one vector (a: its class weights, 0 past
 * C) to the lane sums. */
inline void smooth_add(lane_stats *q, float16 a, float16 ms, float16 v,
                       int16 in) {
    KAHAN_INF(float16, q->b, q->bc, select((float16)0.0f, a * (ms - v), in));
    KAHAN_INF(float16, q->a, q->ac, a);
}

/* One row's lane statistics, the exps stored at eg when not null. */
inline lane_stats batch_row(const global XS *xr, ulong x_ld, int over,
                            uint C, const global float *w, int has_w,
                            global float *eg) {
    const int smooth = SMOOTH;
    lane_stats q;
    float16 m = (float16)(-INFINITY);
    uint pos = 0;
    for (; pos + 16 <= C; pos += 16) m = nanmaxv(m, VLDX(xr, pos));
    float16 tail = pos < C ? batch_tail(xr, pos, C, x_ld, over)
                           : (float16)(-INFINITY);
    m = nanmaxv(m, tail);
    float16 ms = select(m, (float16)0.0f, m == (float16)(-INFINITY));
    q.m = m;
    q.s = q.sc = q.b = q.bc = q.a = q.ac = (float16)0.0f;
    for (pos = 0; pos + KT * 16 <= C; pos += KT * 16) {
        float16 e[KT];
        for (int j = 0; j < KT; ++j) {
            uint p = pos + j * 16;
            float16 v = VLDX(xr, p);
            e[j] = exp(v - ms);
            if (eg) vstore16(e[j], 0, eg + p);
            if (smooth)
                smooth_add(&q, has_w ? vload16(0, w + p) : (float16)1.0f, ms,
                           v, (int16)(-1));
        }
        /* independent terms in [0, 1]: pairwise, one compensated add */
        for (int w2 = KT / 2; w2 >= 1; w2 /= 2)
            for (int j = 0; j < w2; ++j) e[j] += e[j + w2];
        KAHAN(float16, q.s, q.sc, e[0]);
    }
    for (; pos + 16 <= C; pos += 16) { /* the last, partial tile */
        float16 v = VLDX(xr, pos);
        float16 e = exp(v - ms);
        if (eg) vstore16(e, 0, eg + pos);
        KAHAN(float16, q.s, q.sc, e);
        if (smooth)
            smooth_add(&q, has_w ? vload16(0, w + pos) : (float16)1.0f, ms,
                       v, (int16)(-1));
    }
    if (pos < C) { /* the last vector, -inf past C */
        float16 e = exp(tail - ms); /* 0 past C */
        if (eg) store_first_f(eg + pos, e, C - pos);
        KAHAN(float16, q.s, q.sc, e);
        if (smooth) {
            int16 in = col_ids(pos) < (int16)(int)C;
            float16 a = has_w ? gload_f(w, pos, C, 0.0f) : (float16)1.0f;
            smooth_add(&q, select((float16)0.0f, a, in), ms, tail, in);
        }
    }
    return q;
}

inline void xent_batch_body(XENT_PARAMS, global float *loss, ulong loss_off,
                            global float *lse, ulong lse_off, int has_lse,
                            global float *gm, ulong g_off, ulong g_ld) {
    ulong r0 = get_global_id(0) * 16;
    if (r0 >= R) return;
    uint nr = (uint)min((ulong)16, R - r0);
    const int smooth = SMOOTH;
    lane_rows rows = lanes_targets(XENT_ARGS, r0, nr);
    int yc[16];
    vstore16(rows.ycol, 0, yc);
    float16 mv[16], sv[16], cv[16], bv[16], bcv[16];
    float16 av = (float16)0.0f; /* the lanes' sums of w_c: any row's */
    float xyb[16];
    for (uint l = 0; l < 16; ++l) {
        if (l >= nr) { /* lanes past nr repeat the last row */
            mv[l] = mv[nr - 1];
            sv[l] = sv[nr - 1];
            cv[l] = cv[nr - 1];
            if (smooth) {
                bv[l] = bv[nr - 1];
                bcv[l] = bcv[nr - 1];
            }
            xyb[l] = xyb[nr - 1];
            continue;
        }
        const global XS *xr = x + x_off + (r0 + l) * x_ld;
        xyb[l] = yc[l] >= 0 ? LD1X(xr, yc[l]) : 0.0f;
        global float *eg = gm ? gm + g_off + (r0 + l) * g_ld : 0;
        lane_stats q =
            batch_row(xr, x_ld, l + 1 < nr, C, w + w_off, has_w, eg);
        mv[l] = q.m;
        sv[l] = q.s;
        cv[l] = q.sc;
        if (smooth) {
            bv[l] = q.b;
            bcv[l] = q.bc;
            av = q.a - q.ac;
        }
    }
    /* a row per lane: lane j's statistics of row l in lane l of [j] */
    transpose16(mv);
    transpose16(sv);
    transpose16(cv);
    float16 m = mv[0];
    for (int j = 1; j < 16; ++j) m = nanmaxv(m, mv[j]);
    /* S = sum over lanes of (s - sc) * exp(lane max - m), compensated;
     * lanes that saw only -inf add 0 (also when m is -inf) */
    float16 S = (float16)0.0f, Sc = (float16)0.0f;
    float16 f[16];
    for (int j = 0; j < 16; ++j) {
        f[j] = select(exp(mv[j] - m), (float16)0.0f,
                      mv[j] == (float16)(-INFINITY));
        KAHAN(float16, S, Sc, sv[j] * f[j]);
        KAHAN(float16, S, Sc, -cv[j] * f[j]);
    }
    /* a row without a finite value: S = NaN as in the reference */
    S = select(S - Sc, (float16)NAN, m == (float16)(-INFINITY));
    float16 lS = log(S);
    float16 lsev = m + lS;
    /* smoothing: B = sum over lanes of b + A_lane * (m - lane max), the
     * lane max taken as 0 where the lane saw no finite value */
    float A = 0.0f;
    float16 B = (float16)0.0f;
    if (smooth) {
        transpose16(bv);
        transpose16(bcv);
        float aj[16];
        vstore16(av, 0, aj);
        float Ac = 0.0f;
        float16 Bc = (float16)0.0f;
        for (int j = 0; j < 16; ++j) {
            KAHAN(float, A, Ac, aj[j]);
            float16 msj = select(mv[j], (float16)0.0f,
                                 mv[j] == (float16)(-INFINITY));
            KAHAN_INF(float16, B, Bc, bv[j]);
            KAHAN_INF(float16, B, Bc, -bcv[j]);
            KAHAN_INF(float16, B, Bc, aj[j] * (m - msj));
        }
        A -= Ac;
        B = select(B - Bc, B, isinf(B));
    }
    float16 l = lanes_loss(&rows, m, lS, vload16(0, xyb), A, B, eps, zeta, C);
    lanes_vstore(loss, loss_off + r0, nr, l);
    if (has_lse) lanes_vstore(lse, lse_off + r0, nr, lsev);
    if (!gm) return;
    /* p = e * exp(lane max - m) / S; d = p * k1 - [c == y] * tw -
     * (eps/C) * w_c, as the lanes kernels */
    float epc = eps / (float)C;
    float16 tw = (1.0f - eps) * rows.wy;
    float16 k1 = tw;
    if (smooth) k1 += epc * A;
    if (zeta != 0.0f) k1 += 2.0f * zeta * lsev;
    float16 inv = 1.0f / S;
    for (int j = 0; j < 16; ++j) f[j] *= inv;
    transpose16(f); /* back: f[l] holds row l's factor per lane */
    float k1b[16], gb[16], twb[16];
    int stb[16];
    vstore16(k1, 0, k1b);
    vstore16(rows.g, 0, gb);
    vstore16(tw, 0, twb);
    vstore16(rows.state, 0, stb);
    for (uint r = 0; r < nr; ++r) {
        global float *g_row = gm + g_off + (r0 + r) * g_ld;
        /* ignored and bad rows: exactly 0, even for NaN logits */
        int live = stb[r] == 0;
        for (uint pos = 0; pos < C; pos += 16) {
            /* the last vector: loaded whole where the next row of the
             * item follows (the lanes past C are not stored) */
            int whole = pos + 16 <= C || (r + 1 < nr && pos + 16 <= g_ld + C);
            float16 e = whole ? vload16(0, g_row + pos)
                              : gload_f(g_row, pos, C, 0.0f);
            float16 d = (e * f[r]) * k1b[r];
            d = select(d, d - twb[r], col_ids(pos) == (int16)yc[r]);
            if (smooth)
                d -= epc * (has_w ? gload_f(w + w_off, pos, C, 0.0f)
                                  : (float16)1.0f);
            store_first_f(g_row + pos, live ? gb[r] * d : (float16)0.0f,
                          min(16u, C - pos));
        }
    }
}
#endif

kernel void xent_batch_fused(XENT_PARAMS, global float *loss, ulong loss_off,
                             global float *lse, ulong lse_off, int has_lse,
                             global XS *gm, ulong g_off, ulong g_ld) {
    NO_ROWS_IF_BAD;
#if VEC == 16 && TGT != 2 && X_T == 0
    xent_batch_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                    g_off, g_ld);
#endif
}

kernel void xent_batch_fwd(XENT_PARAMS, global float *loss, ulong loss_off,
                           global float *lse, ulong lse_off, int has_lse) {
    NO_ROWS_IF_BAD;
#if VEC == 16 && TGT != 2
    xent_batch_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                    (global float *)0, 0, 0);
#endif
}
