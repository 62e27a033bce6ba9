/* Cross-entropy forward and fused for CPUs (VEC 16) over rows of a few
 * hundred columns, class indices (the host's choice): 16 rows per item,
 * each row read along its columns in whole vectors with per-lane
 * statistics (the lane-wise max, then exp(x - lane max) summed per lane;
 * fused: the exps kept in the f32 gradient row, or in local memory for
 * 16-bit gradients; label smoothing: the sums of w_c * (lane max - x_c)
 * and of w_c too). The 16 rows' lane statistics are then transposed (one
 * 16 x 16 transpose each), so that the horizontal reductions, log S and
 * the losses are done for 16 rows at once, a row per lane; the per-lane
 * factors exp(lane max - m)/S go back through one more transpose to
 * rescale the cached exps. A row per item (xent_rowsg_fused) pays a
 * horizontal reduction and a scalar log per row instead, a row per lane
 * (the lanes kernels) a transpose per 16 columns. The rows' stores of x_y
 * come first: in place, the gradient overwrites the row. The shared part
 * is batch.h. */
#include "xent_lanes.h"
#include "batch.h"

#if VEC == 16 && TGT != CLX_TGT_PROBS
/* gm: the gradient (fused) or null; cache: null, or (16-bit gradients)
 * 16 * cstride floats of local memory per item for the exps. */
inline void xent_batch_body(XENT_PARAMS, global float *loss, ulong loss_off,
                            global float *lse, ulong lse_off, int has_lse,
                            global XS *gm, ulong g_off, ulong g_ld,
                            local float *cache, uint cstride) {
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
        /* the exps: in the f32 gradient row, else in local memory */
        global float *eg = gm && !cache
                               ? (global float *)(gm + g_off + (r0 + l) * g_ld)
                               : 0;
        lane_stats q = batch_row(xr, x_ld, l + 1 < nr, C, w + w_off, has_w, eg,
                                 batch_cache_row(cache, cstride, l));
        mv[l] = q.m;
        sv[l] = q.s;
        cv[l] = q.sc;
        if (smooth) {
            bv[l] = q.b;
            bcv[l] = q.bc;
            av = q.a - q.ac;
        }
    }
    /* a row per lane: the maxima m, the sums S, the lane factors f */
    float16 m, S, f[16];
    batch_merge(mv, sv, cv, f, &m, &S);
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
            KAHAN_INF(float16, B, Bc, bv[j]);
            KAHAN_INF(float16, B, Bc, -bcv[j]);
            KAHAN_INF(float16, B, Bc, aj[j] * (m - lane_safe_max(mv[j])));
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
    float rc = 1.0f / (float)C;
    float16 tw = (1.0f - eps) * rows.wy;
    float16 k1 = tw;
    if (smooth) k1 += EPS_SHARE(eps, A, rc);
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
        global XS *g_row = gm + g_off + (r0 + r) * g_ld;
        local float *el = batch_cache_row(cache, cstride, r);
        /* ignored and bad rows: exactly 0, even for NaN logits */
        int live = stb[r] == 0;
        for (uint pos = 0; pos < C; pos += 16) {
            float16 e = el ? vload16(0, el + pos)
                           : batch_load_f((const global float *)g_row, pos,
                                          C, g_ld, r + 1 < nr);
            float16 d = (e * f[r]) * k1b[r];
            d = select(d, d - twb[r], col_ids(pos) == (int16)yc[r]);
            if (smooth)
                d -= EPS_SHARE(eps,
                               has_w ? gload_f(w + w_off, pos, C, 0.0f)
                                     : (float16)1.0f,
                               rc);
            store_first_x(g_row + pos, live ? gb[r] * d : (float16)0.0f,
                          min(16u, C - pos));
        }
    }
}
#endif

/* Fused, the exps in the f32 gradient. */
KERNEL void xent_batch_fused(CLX_PARAMS(vec_fused)) {
    NO_ROWS_IF_BAD;
#if VEC == 16 && TGT != CLX_TGT_PROBS && X_T == CLX_STORE_F32
    xent_batch_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                    g_off, g_ld, (local float *)0, 0);
#endif
}

/* Fused, the exps in local memory (16-bit gradients: caching them in the
 * gradient would round them twice); the host checks that they fit. */
KERNEL void xent_batchl_fused(CLX_PARAMS(batchl_fused)) {
    NO_ROWS_IF_BAD;
#if VEC == 16 && TGT != CLX_TGT_PROBS
    xent_batch_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                    g_off, g_ld, cache, cstride);
#endif
}

KERNEL void xent_batch_fwd(CLX_PARAMS(vec_fwd)) {
    NO_ROWS_IF_BAD;
#if VEC == 16 && TGT != CLX_TGT_PROBS
    xent_batch_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                    (global XS *)0, 0, 0, (local float *)0, 0);
#endif
}
