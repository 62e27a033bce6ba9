/* Cross-entropy kernels for CPUs (VEC > 1: SIMD inside a work-item): a
 * row per vector lane for small C, and the fused row kernels that cache
 * the exps (one exp per element). */
#include "xent_lanes.h"
#include "expcache.h"

/* ---- small C on CPUs: VEC rows per item, one row per vector lane ----
 * (lanes.h, lanes_load): all C values of each row in private vectors
 * (one global read), the exps kept for the gradient (one exp per
 * element). Class indices only (the host uses the row kernels for
 * probabilities). mode: 0 forward, 1 fused, 2 backward from the saved
 * lse (lse_in; p = exp(x - lse), no reduction). */
#define LANES_FWD 0
#define LANES_FUSED 1
#define LANES_BWD 2

inline void xent_lanes_body(XENT_PARAMS, global float *loss, ulong loss_off,
                            global float *lse, ulong lse_off, int has_lse,
                            const global float *lse_in, ulong lse_in_off,
                            global XS *gm, ulong g_off, ulong g_ld,
                            const int mode) {
#if TGT != CLX_TGT_PROBS && VEC > 1
    ulong r0 = get_global_id(0) * VEC;
    if (r0 >= R) return;
    uint nr = (uint)min((ulong)VEC, R - r0);
    lane_rows lr = lanes_targets(XENT_ARGS, r0, nr);
    vf wy = lr.wy, g = lr.g;
    vi ycol = lr.ycol, state = lr.state;
    vf xv[LANES_CMAX];
    /* the whole block is read before anything is written (in place) */
    lanes_load(x, x_off, x_ld, r0, nr, C, xv);
    int smooth = eps > 0.0f;
    float rc = 1.0f / (float)C;
    vf tw = (1.0f - eps) * wy;
    vf k1 = tw;
    if (mode == LANES_BWD) {
        vf lsev = lanes_vload(lse_in, lse_in_off + r0, nr);
        if (smooth)
            k1 += EPS_SHARE(eps, fin(scr[CLX_SCR_WSUM], scr[CLX_SCR_WSUM + 1]),
                            rc);
        if (zeta != 0.0f) k1 += 2.0f * zeta * lsev;
        for (uint c = 0; c < C; ++c) {
            vf d = exp(xv[c] - lsev) * k1;
            d = select(d, d - tw, ycol == (vi)(int)c);
            if (smooth) d -= EPS_SHARE(eps, has_w ? w[w_off + c] : 1.0f, rc);
            /* ignored and bad rows: exactly 0, even for NaN logits */
            xv[c] = select(g * d, (vf)0.0f, state != (vi)0);
        }
        lanes_store_x(gm, g_off, g_ld, r0, nr, C, xv);
        return;
    }
    vf m = (vf)(-INFINITY), xy = (vf)0.0f;
    for (uint c = 0; c < C; ++c) {
        m = nanmaxv(m, xv[c]);
        xy = select(xy, xv[c], ycol == (vi)(int)c);
    }
    vf s = (vf)0.0f, sc = (vf)0.0f, b = (vf)0.0f, bc = (vf)0.0f;
    float a = 0.0f, ac = 0.0f;
    for (uint c = 0; c < C; ++c) {
        vf e = exp(xv[c] - m);
        KAHAN(vf, s, sc, e);
        if (smooth) {
            float wc = has_w ? w[w_off + c] : 1.0f;
            KAHAN_INF(vf, b, bc, wc * (m - xv[c]));
            KAHAN(float, a, ac, wc);
        }
        xv[c] = e;
    }
    /* a row without a finite value: S = NaN as in the reference */
    vf S = select(s - sc, (vf)NAN, m == (vf)(-INFINITY));
    vf lS = log(S);
    vf lsev = m + lS;
    float A = a - ac;
    vf B = select(b - bc, b, isinf(b));
    vf l = lanes_loss(&lr, m, lS, xy, A, B, eps, zeta, C);
    lanes_vstore(loss, loss_off + r0, nr, l);
    if (has_lse) lanes_vstore(lse, lse_off + r0, nr, lsev);
    if (mode != LANES_FUSED) return;
    if (smooth) k1 += EPS_SHARE(eps, A, rc);
    if (zeta != 0.0f) k1 += 2.0f * zeta * lsev;
    vf inv = 1.0f / S;
    for (uint c = 0; c < C; ++c) {
        vf d = (xv[c] * inv) * k1;
        d = select(d, d - tw, ycol == (vi)(int)c);
        if (smooth) d -= EPS_SHARE(eps, has_w ? w[w_off + c] : 1.0f, rc);
        /* ignored and bad rows: exactly 0, even for NaN logits */
        xv[c] = select(g * d, (vf)0.0f, state != (vi)0);
    }
    lanes_store_x(gm, g_off, g_ld, r0, nr, C, xv);
#endif
}

KERNEL void xent_lanes_fused(CLX_PARAMS(vec_fused)) {
    NO_ROWS_IF_BAD;
    xent_lanes_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                    (const global float *)0, 0, gm, g_off, g_ld,
                    LANES_FUSED);
}

KERNEL void xent_lanes_fwd(CLX_PARAMS(vec_fwd)) {
    NO_ROWS_IF_BAD;
    xent_lanes_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                    (const global float *)0, 0, (global XS *)0, 0, 0,
                    LANES_FWD);
}

/* Backward from the saved lse (index targets). */
KERNEL void xent_lanes_bwd(CLX_PARAMS(lanes_bwd)) {
    NO_ROWS_IF_BAD;
    xent_lanes_body(XENT_ARGS, (global float *)0, 0, (global float *)0, 0, 0,
                    lse_in, lse_in_off, gm, g_off, g_ld, LANES_BWD);
}

/* ---- fused, one item per row, the exps cached (expcache.h) ----
 *   xent_rowsg_fused: the cache is the gradient row itself (f32 only; any
 *                     C; the gradient is written twice, the second time
 *                     from the cache),
 *   xent_rowsl_fused: cstride floats of local memory per item (any dtype;
 *                     the host checks that they fit). */
#if VEC > 1
/* The whole row: pass 1, the loss and lse, the gradient from the cache. */
inline void xent_cached_body(XENT_PARAMS, global float *loss,
                             ulong loss_off, global float *lse,
                             ulong lse_off, int has_lse, global XS *gm,
                             ulong g_off, ulong g_ld, uint bl,
                             local float *cache, uint cstride) {
    ulong r = get_global_id(0);
    if (r >= R) return;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = ri.valid && !ri.bad;
    int smooth = TGT == CLX_TGT_PROBS || eps > 0.0f;
    const global XS *xr = x + x_off + r * x_ld;
    const global XS *tr = t + t_off + r * t_ld;
    const global float *wp = w + w_off;
    global XS *g_row = gm + g_off + r * g_ld;
    local float *el = cache ? cache + get_local_id(0) * (ulong)cstride : 0;
    /* the global cache is the gradient row (f32 builds only) */
    global float *eg = el ? 0 : (global float *)g_row;
    float rc = 1.0f / (float)C;
    /* x_y first: in place, the cache or the gradient overwrites it */
    float xy = TGT != CLX_TGT_PROBS && live ? LD1X(xr, ri.ycol) : 0.0f;
    float bm[GC_BLOCKS];
    st_t st = smooth ? cache_row(xr, tr, wp, has_w, eps, rc, eg, el, C, bl,
                                 bm, AM_B)
                     : cache_row(xr, tr, wp, has_w, eps, rc, eg, el, C, bl,
                                 bm, AM_STATS);
    float lse_v;
    float l = row_loss(st, xy, ri, eps, zeta, C, &lse_v);
    loss[loss_off + r] = l;
    if (has_lse) lse[lse_off + r] = lse_v;
    if (!live) {
        for (uint pos = 0; pos < C; pos += VEC)
            gstore_x(g_row, pos, C, (vf)0.0f);
        return;
    }
    float g = row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r);
    float k1 = grad_k1(ri, eps, zeta, C, fin(st.ah, st.al), lse_v);
    float inv = 1.0f / st_sum(st);
#if TGT != CLX_TGT_PROBS
    float tw = (1.0f - eps) * ri.wy;
#endif
    uint b = 0;
    for (uint cb = 0; cb < C; cb += bl, ++b) {
        uint ce = min(C, cb + bl);
        /* p = e * exp(bm - m) / S; the per-block factor with k1 folded in */
        float f = block_scale(bm[b], st.m) * inv * k1;
        for (uint pos = cb; pos < ce; pos += VEC) {
            vf d = ec_load(eg, el, pos, ce) * f;
#if TGT == CLX_TGT_PROBS
            vf wv = has_w ? gload_f(wp, pos, ce, 0.0f) : (vf)1.0f;
            d -= prob_a(wv, gload_x(tr, pos, ce, 0.0f), eps, rc);
#else
            d = select(d, d - tw, col_ids(pos) == (vi)ri.ycol);
            if (smooth)
                d -= EPS_SHARE(
                    eps, has_w ? gload_f(wp, pos, ce, 0.0f) : (vf)1.0f, rc);
#endif
            gstore_x(g_row, pos, ce, g * d);
        }
    }
}
#endif

KERNEL void xent_rowsg_fused(CLX_PARAMS(rowsg_fused)) {
    NO_ROWS_IF_BAD;
#if X_T == CLX_STORE_F32 && VEC > 1
    xent_cached_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                     g_off, g_ld, bl, (local float *)0, 0);
#endif
}

KERNEL void xent_rowsl_fused(CLX_PARAMS(rowsl_fused)) {
    NO_ROWS_IF_BAD;
#if VEC > 1
    xent_cached_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                     g_off, g_ld, bl, cache, cstride);
#endif
}
