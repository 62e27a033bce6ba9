/* The N-d kernels that stream (nd.h: items, statistics, layout):
 *   nd_fused, nd_fwd, nd_bwd: cross-entropy (XF: the logit transforms)
 *   nd_cached_fused: fused with a row's C <= NDC classes held in private
 *                    vectors, one exp per element in all (no XF)
 *   nd_chunked_fused: fused, long rows, the exps kept in the gradient
 *   nd_sm:           max, exp-sum, log_softmax, softmax and the copy
 *   nd_nll_bwd:      NLL's gradient
 * nd_kept.cl has the kept rows' kernels. */
#include "nd.h"

#ifndef NDC
#define NDC 0 /* nd_cached_fused's private vectors (0: not built) */
#endif
#ifndef NDK
#define NDK 0 /* 1: nd_chunked_fused is built */
#endif

inline void nd_xent_body(ND_PARAMS, global float *loss, ulong loss_off,
                         global float *lse, ulong lse_off, int has_lse,
                         ND_GRAD_PARAMS, const int do_grad) {
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_of(O, I, &it)) return;
    nd_xent_item(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                 ND_GRAD_ARGS, &it, do_grad);
}

KERNEL void nd_fused(CLX_PARAMS(nd_fused)) {
#if !ND_ONE || defined(ND_ONLY_nd_fused)
    nd_xent_body(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                 ND_GRAD_ARGS, 1);
#endif
}

KERNEL void nd_fwd(CLX_PARAMS(nd_fwd)) {
#if !ND_ONE || defined(ND_ONLY_nd_fwd)
    nd_xent_body(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                 (global XS *)0, 0, 0, 0, 0, 0);
#endif
}

KERNEL void nd_bwd(CLX_PARAMS(nd_bwd)) {
#if !ND_ONE || defined(ND_ONLY_nd_bwd)
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_of(O, I, &it)) return;
    nd_bwd_item(ND_ARGS, lse_in, lse_in_off, ND_GRAD_ARGS, &it);
#endif
}

/* Fused with the row's classes in private vectors: loaded once (the max),
 * their exps kept for the gradient. C <= NDC, no transforms. An item
 * takes NDU vectors of inner positions and loads class by class, its NDU
 * vectors in a row: consecutive lines, where one vector per class is a
 * line every class stride (pages apart for large inner), which the
 * prefetchers do not follow. */
KERNEL void nd_cached_fused(CLX_PARAMS(nd_fused)) {
#if (!ND_ONE || defined(ND_ONLY_nd_cached_fused)) && NDC > 0 && !XF
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_span(O, I, VEC * NDU, &it)) return;
    uint nu = (it.nl + VEC - 1) / VEC;
    float rc = 1.0f / (float)C;
    int smooth = TGT == CLX_TGT_PROBS || eps > 0.0f;
    nd_item sub[NDU];
    nd_tg tg[NDU];
    vf m[NDU], xy[NDU];
    for (uint u = 0; u < nu; ++u) {
        sub[u] = nd_sub(&it, u);
        tg[u] = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den,
                           den_scr, scr, gr, gr_off, has_gr, &sub[u]);
        m[u] = (vf)(-INFINITY);
        xy[u] = (vf)0.0f;
    }
    ulong xb = x_off + it.o * x_so + it.i0 * x_si;
    ulong tb = t_off + it.o * t_so + it.i0 * t_si;
    ulong gb = g_off + it.o * g_so + it.i0 * g_si;
    ulong xs = VEC * x_si, ts = VEC * t_si, gs = VEC * g_si;
    ulong xn = xb + (x_si == 1 && it.nl == NDU * VEC
                         ? nd_next(&it, I, NDU * VEC, 1)
                         : 0);
    vf xv[NDC * NDU]; /* class c, vector u at c * NDU + u */
    for (uint c = 0; c < C; ++c)
        for (uint u = 0; u < nu; ++u) {
            vf v = nd_ldx(x, xb + c * x_sc + u * xs, x_si, sub[u].nl);
            xv[c * NDU + u] = v;
            m[u] = nanmaxv(m[u], v);
            xy[u] = select(xy[u], v, tg[u].ycol == (vi)(int)c);
        }
    vf k1[NDU];
    vi dead[NDU];
    for (uint u = 0; u < nu; ++u) {
        vf s = (vf)0.0f, sc = (vf)0.0f, b = (vf)0.0f, bc = (vf)0.0f;
        vf a = (vf)0.0f, ac = (vf)0.0f;
        for (uint c = 0; c < C; ++c) {
            vf xc = xv[c * NDU + u];
            vf e = ND_EXP(xc - m[u]);
            KAHAN(vf, s, sc, e);
            ND_PREFETCH(x + xn + c * x_sc + u * VEC);
            if (smooth) {
                vf av = (vf)(has_w ? w[w_off + c] : 1.0f);
                if (TGT == CLX_TGT_PROBS)
                    av = prob_a(av,
                                nd_ldx(t, tb + c * t_sc + u * ts, t_si,
                                       sub[u].nl),
                                eps, rc);
                KAHAN_INF(vf, b, bc, av * (m[u] - xc));
                KAHAN_INF(vf, a, ac, av);
            }
            xv[c * NDU + u] = e;
        }
        k1[u] = nd_finish(&tg[u], m[u], s, sc, xy[u], a - ac,
                          select(b - bc, b, isinf(b)), eps, zeta, C, loss,
                          loss_off, lse, lse_off, has_lse, sub[u].r0,
                          sub[u].nl);
        dead[u] = tg[u].state != (vi)0;
    }
    for (uint c = 0; c < C; ++c) {
        float wc = has_w ? w[w_off + c] : 1.0f;
        for (uint u = 0; u < nu; ++u) {
            vf tc = TGT == CLX_TGT_PROBS
                        ? nd_ldx(t, tb + c * t_sc + u * ts, t_si, sub[u].nl)
                        : (vf)0.0f;
            nd_stx(gm, gb + c * g_sc + u * gs, g_si, sub[u].nl,
                   nd_dgrad(xv[c * NDU + u] * k1[u], &tg[u], dead[u], c, wc,
                            tc, eps, rc));
        }
    }
#endif
}

/* Fused for long rows on CPUs (C past nd_cached_cmax, f32 gradient,
 * class indices, no smoothing, no transforms): the row in CLX_ND_CHUNKS
 * chunks, each read twice while it is in the cache (its max, then its exps
 * relative to that max, stored in the gradient and summed); the chunks'
 * sums combined; then the gradient scaled in place by the chunk's factor.
 * One exp per element, where nd_fused computes two. */
KERNEL void nd_chunked_fused(CLX_PARAMS(nd_fused)) {
#if (!ND_ONE || defined(ND_ONLY_nd_chunked_fused)) && \
    NDK && !XF && TGT != CLX_TGT_PROBS && X_T == CLX_STORE_F32
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_of(O, I, &it)) return;
    nd_tg tg = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den, den_scr,
                          scr, gr, gr_off, has_gr, &it);
    ulong xb = x_off + it.o * x_so + it.i0 * x_si;
    ulong gb = g_off + it.o * g_so + it.i0 * g_si;
    /* the target logits before the exps are stored: in place, the
     * gradient is the logits */
    vf xy = nd_pick(x, xb, x_sc, x_si, C, it.nl, tg.ycol, 1.0f, 0.0f);
    /* the chunk length: C in at most CLX_ND_CHUNKS chunks */
    uint K = (C + CLX_ND_CHUNKS - 1) / CLX_ND_CHUNKS;
    vf mk[CLX_ND_CHUNKS], sk[CLX_ND_CHUNKS];
    vf M = (vf)(-INFINITY);
    uint nk = 0;
    for (uint c0 = 0; c0 < C; c0 += K, ++nk) {
        uint ce = min(C, c0 + K);
        vf m = (vf)(-INFINITY);
        for (uint c = c0; c < ce; ++c)
            m = fmax(m, nd_ldx(x, xb + c * x_sc, x_si, it.nl));
        vi none = m == (vf)(-INFINITY);
        int fix = any_v(none);
        vf s = (vf)0.0f, sc = (vf)0.0f;
        for (uint c = c0; c < ce; c += ND_B) {
            uint n = min((uint)ND_B, ce - c);
            vf e[ND_B];
            for (uint j = 0; j < ND_B; ++j) {
                e[j] = (vf)0.0f;
                if (j < n) {
                    vf v = nd_ldx(x, xb + (c + j) * x_sc, x_si, it.nl);
                    e[j] = ND_EXP(v - m);
                    /* only -inf: those count 0, NaNs stay NaN */
                    if (fix) e[j] = select(e[j], (vf)0.0f, v == (vf)(-INFINITY));
                    nd_stx(gm, gb + (c + j) * g_sc, g_si, it.nl, e[j]);
                }
            }
            for (uint h = ND_B / 2; h >= 1; h /= 2)
                for (uint j = 0; j < h; ++j) e[j] += e[j + h];
            KAHAN(vf, s, sc, e[0]);
        }
        mk[nk] = m;
        sk[nk] = s - sc;
        M = fmax(M, m);
    }
    vf S = (vf)0.0f, Sc = (vf)0.0f;
    for (uint k = 0; k < nk; ++k)
        KAHAN(vf, S, Sc,
              sk[k] * select(exp(mk[k] - M), (vf)0.0f,
                             mk[k] == (vf)(-INFINITY)));
    S = select(S - Sc, (vf)NAN, M == (vf)(-INFINITY));
    vf lS = log(S);
    vf lsev = M + lS;
    vf A = (vf)0.0f;
    vf l = nd_loss(&tg, M, lS, xy, A, (vf)0.0f, eps, zeta, C);
    nd_stf(loss, loss_off + it.r0, 1, it.nl, l);
    if (has_lse) nd_stf(lse, lse_off + it.r0, 1, it.nl, lsev);
    vf kn = nd_k1(&tg, A, lsev, eps, zeta, C), k1 = kn / S;
    vi dead = tg.state != (vi)0;
    const global XS *gx = (const global XS *)gm;
    for (uint c0 = 0, k = 0; c0 < C; c0 += K, ++k) {
        uint ce = min(C, c0 + K);
        vf f = tg.g * (k1 * exp(mk[k] - M));
        for (uint c = c0; c < ce; ++c) {
            vf e = nd_ldx(gx, gb + c * g_sc, g_si, it.nl);
            /* ignored and bad rows: exactly 0, even for NaN logits */
            nd_stx(gm, gb + c * g_sc, g_si, it.nl,
                   select(e * f, (vf)0.0f, dead));
        }
    }
    /* the target class of each live lane, from its logit (the exp in the
     * gradient was just scaled): g*(p*k1 - w_y) */
    for (uint e = 0; e < it.nl; ++e) {
        int c = ((const int *)&tg.ycol)[e];
        if (((const int *)&tg.state)[e] != 0 || c < 0 || (uint)c >= C)
            continue;
        float xyv = ((const float *)&xy)[e];
        float p = exp((xyv - ((const float *)&M)[e]) - ((const float *)&lS)[e]);
        float d = p * ((const float *)&kn)[e] -
                  (1.0f - eps) * ((const float *)&tg.wy)[e];
        ST1X(gm, gb + (ulong)c * g_sc + e * g_si,
             ((const float *)&tg.g)[e] * d);
    }
#endif
}

KERNEL void nd_sm(CLX_PARAMS(nd_sm)) {
#if !ND_ONE || defined(ND_ONLY_nd_sm)
    nd_item it;
    if (nd_item_of(O, I, &it)) nd_sm_item(CLX_ARGS(nd_sm), &it);
#endif
}

/* NLL's gradient: -G*s*w[y] at the target class, 0 elsewhere. */
KERNEL void nd_nll_bwd(CLX_PARAMS(nd_nll_bwd)) {
#if !ND_ONE || defined(ND_ONLY_nd_nll_bwd)
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_of(O, I, &it)) return;
    nd_tg tg = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den, den_scr,
                          scr, gr, gr_off, has_gr, &it);
    vf gv = select(-(tg.g * tg.wy), (vf)0.0f, tg.state != (vi)0);
    ulong gb = g_off + it.o * g_so + it.i0 * g_si;
    for (uint c = 0; c < C; ++c)
        nd_stx(g, gb + c * g_sc, g_si, it.nl,
               select((vf)0.0f, gv, tg.ycol == (vi)(int)c));
#endif
}
