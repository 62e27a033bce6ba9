/* Cross-entropy forward and fused for CPUs (VEC 16) over rows of a few
 * hundred columns, class indices without smoothing (the host's choice):
 * 16 rows per item, each row read along its columns in whole vectors
 * with per-lane statistics (the lane-wise max, then exp(x - lane max)
 * summed per lane; fused f32: the exps kept in the gradient row). The 16
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

/* One row: the lane-wise max *mv, and the lane sums of exp(x - lane max)
 * as a Kahan pair (*sv - *cv), the exps stored at eg when not null. */
inline void batch_row(const global XS *xr, ulong x_ld, int over, uint C,
                      global float *eg, float16 *mv, float16 *sv,
                      float16 *cv) {
    float16 m = (float16)(-INFINITY);
    uint pos = 0;
    for (; pos + 16 <= C; pos += 16) m = nanmaxv(m, VLDX(xr, pos));
    float16 tail = pos < C ? batch_tail(xr, pos, C, x_ld, over)
                           : (float16)(-INFINITY);
    m = nanmaxv(m, tail);
    /* a lane without a finite value: its exps are 0 (against 0), not NaN */
    float16 ms = select(m, (float16)0.0f, m == (float16)(-INFINITY));
    float16 s = (float16)0.0f, sc = (float16)0.0f;
    for (pos = 0; pos + KT * 16 <= C; pos += KT * 16) {
        float16 e[KT];
        for (int j = 0; j < KT; ++j) {
            e[j] = exp(VLDX(xr, pos + j * 16) - ms);
            if (eg) vstore16(e[j], 0, eg + pos + j * 16);
        }
        /* independent terms in [0, 1]: pairwise, one compensated add */
        for (int w2 = KT / 2; w2 >= 1; w2 /= 2)
            for (int j = 0; j < w2; ++j) e[j] += e[j + w2];
        KAHAN(float16, s, sc, e[0]);
    }
    for (; pos + 16 <= C; pos += 16) { /* the last, partial tile */
        float16 e = exp(VLDX(xr, pos) - ms);
        if (eg) vstore16(e, 0, eg + pos);
        KAHAN(float16, s, sc, e);
    }
    if (pos < C) {
        float16 e = exp(tail - ms); /* 0 past C */
        if (eg) store_first_f(eg + pos, e, C - pos);
        KAHAN(float16, s, sc, e);
    }
    *mv = m;
    *sv = s;
    *cv = sc;
}

inline void xent_batch_body(XENT_PARAMS, global float *loss, ulong loss_off,
                            global float *lse, ulong lse_off, int has_lse,
                            global float *gm, ulong g_off, ulong g_ld) {
    ulong r0 = get_global_id(0) * 16;
    if (r0 >= R) return;
    uint nr = (uint)min((ulong)16, R - r0);
    lane_rows rows = lanes_targets(XENT_ARGS, r0, nr);
    int yc[16];
    vstore16(rows.ycol, 0, yc);
    float16 mv[16], sv[16], cv[16];
    float xyb[16];
    for (uint l = 0; l < 16; ++l) {
        if (l >= nr) { /* lanes past nr repeat the last row */
            mv[l] = mv[nr - 1];
            sv[l] = sv[nr - 1];
            cv[l] = cv[nr - 1];
            xyb[l] = xyb[nr - 1];
            continue;
        }
        const global XS *xr = x + x_off + (r0 + l) * x_ld;
        xyb[l] = yc[l] >= 0 ? LD1X(xr, yc[l]) : 0.0f;
        batch_row(xr, x_ld, l + 1 < nr, C,
                  gm ? gm + g_off + (r0 + l) * g_ld : 0, &mv[l], &sv[l],
                  &cv[l]);
    }
    /* a row per lane: lane j's statistics of row l in lane l of [j] */
    transpose16(mv);
    transpose16(sv);
    transpose16(cv);
    float16 m = mv[0];
    for (int j = 1; j < 16; ++j) m = nanmaxv(m, mv[j]);
    /* S = sum over lanes of (s - c) * exp(lane max - m), compensated;
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
    float16 l = lanes_loss(&rows, m, lS, vload16(0, xyb), 0.0f,
                           (float16)0.0f, 0.0f, zeta, C);
    lanes_vstore(loss, loss_off + r0, nr, l);
    if (has_lse) lanes_vstore(lse, lse_off + r0, nr, lsev);
    if (!gm) return;
    /* p = e * exp(lane max - m) / S; d = p * k1 - [c == y] * w_y */
    float16 k1 = rows.wy;
    if (zeta != 0.0f) k1 += 2.0f * zeta * lsev;
    float16 inv = 1.0f / S;
    for (int j = 0; j < 16; ++j) f[j] *= inv;
    transpose16(f); /* back: f[l] holds row l's factor per lane */
    float k1b[16], gb[16], wyb[16];
    int stb[16];
    vstore16(k1, 0, k1b);
    vstore16(rows.g, 0, gb);
    vstore16(rows.wy, 0, wyb);
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
            d = select(d, d - wyb[r], col_ids(pos) == (int16)yc[r]);
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
