/* The N-d kernels whose items keep their rows close (nd.h: items,
 * statistics, layout), on CPUs: an item of NDU vectors of inner positions
 * reads its rows while they are in the cache, or keeps the exps in the
 * gradient:
 *   nd_kept_fused:   fused, f32 gradient, the row's exps kept in it, one
 *                    exp per element in all (no XF)
 *   nd_kept_fwd:     forward, an item's rows read twice while cached
 *                    (both with NDONLINE, the nd_wide rows: one online
 *                    pass over long rows, no gradient reread, so any
 *                    storage)
 *   nd_kept_bwd, nd_kept_sm: backward, log_softmax and softmax in the
 *                    same items */
#include "nd.h"

#ifndef NDKEPT
#define NDKEPT 0 /* 1: nd_kept_fused is built */
#endif
#ifndef NDONLINE
#define NDONLINE 0 /* 1: nd_kept_plain's online passes (the nd_wide rows) */
#endif

#if NDKEPT
/* One pass over an item's NDU whole vectors at unit inner stride (the
 * nd_wide rows, nd_kept_sm): the lanes' max m and exp-sum s - sc kept
 * online, rescaled once per block of ND_B classes; with pick, xy gets the
 * logit of class tg[u].ycol; with pf, the exps prefetch the next item's
 * lines (xn). A lane whose values are all -inf so far is not rescaled
 * (exp(-inf - -inf) would be NaN) and its exps are taken against 0: they
 * add 0, a NaN still adds NaN. fmax for the block's max: a NaN makes S
 * NaN through its exp. */
__attribute__((always_inline)) inline void
nd_online(const global XS *x, ulong xb, ulong xn, ulong x_sc, uint C, vf *m,
          vf *s, vf *sc, vf *xy, const nd_tg *tg, const int pick,
          const int pf) {
    for (uint c0 = 0; c0 < C; c0 += ND_B) {
        uint n = min((uint)ND_B, C - c0);
        vf bm[NDU], ms[NDU];
#pragma unroll
        for (uint u = 0; u < NDU; ++u) bm[u] = m[u];
        for (uint c = c0; c < c0 + n; ++c)
#pragma unroll
            for (uint u = 0; u < NDU; ++u) {
                vf v = VLDX(x, xb + c * x_sc + u * VEC);
                bm[u] = fmax(bm[u], v);
                if (pick) xy[u] = select(xy[u], v, tg[u].ycol == (vi)(int)c);
            }
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            vf f = select(ND_EXP(m[u] - bm[u]), (vf)0.0f,
                          bm[u] == (vf)(-INFINITY));
            s[u] *= f;
            sc[u] *= f;
            m[u] = bm[u];
            ms[u] = select(m[u], (vf)0.0f, m[u] == (vf)(-INFINITY));
        }
        for (uint c = c0; c < c0 + n; ++c)
#pragma unroll
            for (uint u = 0; u < NDU; ++u) {
                vf e = ND_EXP(VLDX(x, xb + c * x_sc + u * VEC) - ms[u]);
                KAHAN(vf, s[u], sc[u], e);
                if (pf) ND_PREFETCH(x + xn + c * x_sc + u * VEC);
            }
    }
}
#endif

/* Fused with the row's exps kept in the f32 gradient (C <= nd_kept_cmax,
 * no transforms), for items of whole vectors at unit inner stride: the
 * logits read once for the max and the target's logit, again (from the
 * cache: an item's NDU vectors of C classes) for the exps, which go to the
 * gradient as they are summed, then the gradient scaled in place. One exp
 * per element, like nd_cached_fused, without its private copy of the row,
 * whose stack traffic cost more than the cache round trip
 * (docs/tuning.md, "nd"). nd_kept_plain below runs the common case; this
 * body sums the exps in blocks of ND_B classes, pairwise, one compensated
 * add per block. */
#if NDKEPT && !XF && X_T == CLX_STORE_F32
__attribute__((always_inline)) inline void
nd_kept_body(ND_PARAMS, global float *loss, ulong loss_off, global float *lse,
             ulong lse_off, int has_lse, ND_GRAD_PARAMS, const nd_item *it) {
    float rc = 1.0f / (float)C;
    int smooth = TGT == CLX_TGT_PROBS || eps > 0.0f;
    nd_tg tg[NDU];
    vf m[NDU], xy[NDU], s[NDU], sc[NDU], b[NDU], bc[NDU], a[NDU], ac[NDU];
#pragma unroll
    for (uint u = 0; u < NDU; ++u) {
        nd_item sub = nd_sub(it, u);
        tg[u] = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den, den_scr,
                           scr, gr, gr_off, has_gr, &sub);
        m[u] = (vf)(-INFINITY);
        xy[u] = s[u] = sc[u] = b[u] = bc[u] = a[u] = ac[u] = (vf)0.0f;
    }
    ulong xb = x_off + it->o * x_so + it->i0;
    ulong tb = t_off + it->o * t_so + it->i0;
    ulong gb = g_off + it->o * g_so + it->i0;
    /* the next item's lines, contiguous per class */
    ulong xn = xb + nd_next(it, I, NDU * VEC, 1);
    ulong tn = tb + nd_next(it, I, NDU * VEC, 1);
    for (uint c = 0; c < C; ++c)
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            vf v = VLDX(x, xb + c * x_sc + u * VEC);
            m[u] = nanmaxv(m[u], v);
            xy[u] = select(xy[u], v, tg[u].ycol == (vi)(int)c);
        }
    for (uint c0 = 0; c0 < C; c0 += ND_B) {
        uint n = min((uint)ND_B, C - c0);
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            vf e[ND_B];
#pragma unroll
            for (uint j = 0; j < ND_B; ++j) {
                e[j] = (vf)0.0f;
                if (j >= n) continue;
                uint c = c0 + j;
                vf xc = VLDX(x, xb + c * x_sc + u * VEC);
                e[j] = ND_EXP(xc - m[u]);
                VST_0(gm, gb + c * g_sc + u * VEC, e[j]);
                ND_PREFETCH(x + xn + c * x_sc + u * VEC);
                if (TGT == CLX_TGT_PROBS)
                    ND_PREFETCH(t + tn + c * t_sc + u * VEC);
                if (smooth) {
                    vf av = (vf)(has_w ? w[w_off + c] : 1.0f);
                    if (TGT == CLX_TGT_PROBS)
                        av = prob_a(av, VLDX(t, tb + c * t_sc + u * VEC), eps,
                                    rc);
                    KAHAN_INF(vf, b[u], bc[u], av * (m[u] - xc));
                    KAHAN_INF(vf, a[u], ac[u], av);
                }
            }
            for (uint h = ND_B / 2; h >= 1; h /= 2)
                for (uint j = 0; j < h; ++j) e[j] += e[j + h];
            KAHAN(vf, s[u], sc[u], e[0]);
        }
    }
    vf k1[NDU];
    vi dead[NDU];
#pragma unroll
    for (uint u = 0; u < NDU; ++u) {
        k1[u] = nd_finish(&tg[u], m[u], s[u], sc[u], xy[u], a[u] - ac[u],
                          select(b[u] - bc[u], b[u], isinf(b[u])), eps, zeta,
                          C, loss, loss_off, lse, lse_off, has_lse,
                          it->r0 + u * VEC, VEC);
        dead[u] = tg[u].state != (vi)0;
    }
    for (uint c = 0; c < C; ++c) {
        float wc = has_w ? w[w_off + c] : 1.0f;
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            ulong gi = gb + c * g_sc + u * VEC;
            vf tc = TGT == CLX_TGT_PROBS ? VLDX(t, tb + c * t_sc + u * VEC)
                                         : (vf)0.0f;
            VST_0(gm, gi,
                  nd_dgrad(VLD_0(gm, gi) * k1[u], &tg[u], dead[u], c, wc, tc,
                           eps, rc));
        }
    }
}
#endif

#if NDKEPT && !XF && TGT != CLX_TGT_PROBS
/* The common case, class indices without smoothing over whole vectors of
 * unit inner stride, in loops as plain as the kernel allows: fmax for the
 * maximum (a NaN makes S NaN through its exp: the results are those of
 * nanmaxv), one compensated add per exp. The general body's block sums,
 * smoothing branch (and the tail code it had then) cost about a quarter
 * of the kernel's time here, mostly through private values PoCL kept on
 * the stack
 * (docs/tuning.md, "nd"). do_grad 0 (nd_kept_fwd, any storage): the
 * losses and lse only, the exps summed and not kept. */
__attribute__((always_inline)) inline void
nd_kept_plain(ND_PARAMS, global float *loss, ulong loss_off, global float *lse,
              ulong lse_off, int has_lse, ND_GRAD_PARAMS, const nd_item *it,
              const int do_grad) {
    nd_tg tg[NDU];
    vf m[NDU], xy[NDU], s[NDU], sc[NDU];
#pragma unroll
    for (uint u = 0; u < NDU; ++u) {
        nd_item sub = nd_sub(it, u);
        tg[u] = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den, den_scr,
                           scr, gr, gr_off, has_gr, &sub);
        m[u] = (vf)(-INFINITY);
        xy[u] = s[u] = sc[u] = (vf)0.0f;
    }
    ulong xb = x_off + it->o * x_so + it->i0;
#if X_T == CLX_STORE_F32 || NDONLINE
    ulong gb = g_off + it->o * g_so + it->i0;
#endif
    ulong xn = xb + nd_next(it, I, NDU * VEC, 1);
#if NDONLINE
    /* The nd_wide rows (C past nd_wide_cmin): an item's NDU x C values
     * outgrow the cache, so one pass keeps the max and the sum online,
     * rescaled once per block of ND_B classes, and the gradient pass
     * computes its exps again: the logits read twice and the gradient
     * written once, where the kept passes read the logits twice from
     * memory and the gradient back (docs/tuning.md, "nd"). */
    nd_online(x, xb, xn, x_sc, C, m, s, sc, xy, tg, 1, !do_grad);
#else
    for (uint c = 0; c < C; ++c)
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            vf v = VLDX(x, xb + c * x_sc + u * VEC);
            m[u] = fmax(m[u], v);
            xy[u] = select(xy[u], v, tg[u].ycol == (vi)(int)c);
        }
    for (uint c = 0; c < C; ++c)
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            vf e = ND_EXP(VLDX(x, xb + c * x_sc + u * VEC) - m[u]);
            KAHAN(vf, s[u], sc[u], e);
#if X_T == CLX_STORE_F32
            if (do_grad) VST_0(gm, gb + c * g_sc + u * VEC, e);
#endif
            ND_PREFETCH(x + xn + c * x_sc + u * VEC);
        }
#endif
    vf k1[NDU];
#pragma unroll
    for (uint u = 0; u < NDU; ++u)
        k1[u] = nd_finish(&tg[u], m[u], s[u], sc[u], xy[u], (vf)0.0f,
                          (vf)0.0f, 0.0f, zeta, C, loss, loss_off, lse,
                          lse_off, has_lse, it->r0 + u * VEC, VEC);
    if (!do_grad) return;
#if X_T == CLX_STORE_F32 || NDONLINE
    for (uint c = 0; c < C; ++c)
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            ulong gi = gb + c * g_sc + u * VEC;
#if NDONLINE
            vf d = ND_EXP(VLDX(x, xb + c * x_sc + u * VEC) - m[u]) * k1[u];
            ND_PREFETCH(x + xn + c * x_sc + u * VEC);
#else
            vf d = VLD_0(gm, gi) * k1[u];
#endif
            d = select(d, d - tg[u].wy, tg[u].ycol == (vi)(int)c);
            /* ignored and bad rows: exactly 0, even for NaN logits (their
             * g is 0); 16-bit storage only with NDONLINE, which does not
             * keep exps in the gradient */
            VSTX(gm, gi, tg[u].g * select(d, (vf)0.0f,
                                          tg[u].state != (vi)0));
        }
#else
    (void)k1; /* forward only: no gradient in 16-bit storage here */
#endif
}
#endif

KERNEL void nd_kept_fused(CLX_PARAMS(nd_fused)) {
#if (!ND_ONE || defined(ND_ONLY_nd_kept_fused)) && \
    NDKEPT && !XF && (X_T == CLX_STORE_F32 || NDONLINE)
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_span(O, I, VEC * NDU, &it)) return;
    int whole = it.nl == VEC * NDU && x_si == 1 && g_si == 1;
#if TGT == CLX_TGT_PROBS
    whole = whole && t_si == 1;
#else
    if (whole && eps == 0.0f) {
        nd_kept_plain(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                      ND_GRAD_ARGS, &it, 1);
        return;
    }
#endif
#if X_T == CLX_STORE_F32
    if (whole) {
        nd_kept_body(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                     ND_GRAD_ARGS, &it);
        return;
    }
#endif
    /* Tails and strided inner axes: nd_fused's body per vector. (A second,
     * general instance of the unrolled body, with its lane-by-lane loads
     * and stores, took Intel's OpenCL CPU compiler 35 of the program's 37
     * s at NDU 4.) */
    for (uint u = 0; u < NDU; ++u) {
        nd_item sub = nd_sub(&it, u);
        if (sub.nl > 0)
            nd_xent_item(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                         ND_GRAD_ARGS, &sub, 1);
    }
#endif
}

/* Forward on CPUs (C <= nd_kept_cmax, class indices, no smoothing, no
 * transforms): an item takes NDU vectors of inner positions, as the kept
 * fused kernel does, and in the common case (whole vectors, unit inner
 * stride) runs nd_kept_plain's first two passes; nd_fwd's items of one
 * vector, with their online blocks, took as long as the whole fused call
 * (docs/tuning.md, "nd"). Other items: nd_fwd's body per vector. */
KERNEL void nd_kept_fwd(CLX_PARAMS(nd_fwd)) {
#if (!ND_ONE || defined(ND_ONLY_nd_kept_fwd)) && \
    NDKEPT && !XF && TGT != CLX_TGT_PROBS
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_span(O, I, VEC * NDU, &it)) return;
    if (it.nl == VEC * NDU && x_si == 1 && eps == 0.0f) {
        nd_kept_plain(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                      (global XS *)0, 0, 0, 0, 0, &it, 0);
        return;
    }
    for (uint u = 0; u < NDU; ++u) {
        nd_item sub = nd_sub(&it, u);
        if (sub.nl > 0)
            nd_xent_item(ND_ARGS, loss, loss_off, lse, lse_off, has_lse,
                         (global XS *)0, 0, 0, 0, 0, &sub, 0);
    }
#endif
}

/* Backward on CPUs (class indices, no transforms): an item takes NDU
 * vectors of inner positions, and for whole vectors at unit inner stride
 * writes each class's NDU vectors in a row; nd_bwd's items of one vector
 * touched one line per class, a class stride apart, more streams than
 * the prefetchers follow (docs/tuning.md, "nd"). The same values as
 * nd_grad's. Other items: nd_bwd's body per vector. */
KERNEL void nd_kept_bwd(CLX_PARAMS(nd_bwd)) {
#if (!ND_ONE || defined(ND_ONLY_nd_kept_bwd)) && \
    NDKEPT && !XF && TGT != CLX_TGT_PROBS
    nd_item it;
    if (sync_bad(scr, guard) || !nd_item_span(O, I, VEC * NDU, &it)) return;
    if (it.nl == VEC * NDU && x_si == 1 && g_si == 1) {
        vf A = (vf)fin(scr[CLX_SCR_WSUM], scr[CLX_SCR_WSUM + 1]);
        nd_tg tg[NDU];
        vf lsev[NDU], k1[NDU], tw[NDU];
        vi dead[NDU];
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            nd_item sub = nd_sub(&it, u);
            tg[u] = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den,
                               den_scr, scr, gr, gr_off, has_gr, &sub);
            lsev[u] = VLD_0(lse_in, lse_in_off + sub.r0);
            k1[u] = nd_k1(&tg[u], A, lsev[u], eps, zeta, C);
            tw[u] = (1.0f - eps) * tg[u].wy;
            dead[u] = tg[u].state != (vi)0;
        }
        ulong xb = x_off + it.o * x_so + it.i0;
        ulong gb = g_off + it.o * g_so + it.i0;
        ulong xn = xb + nd_next(&it, I, NDU * VEC, 1);
        float rc = 1.0f / (float)C;
        for (uint c = 0; c < C; ++c) {
            float sh = eps > 0.0f
                           ? EPS_SHARE(eps, has_w ? w[w_off + c] : 1.0f, rc)
                           : 0.0f;
#pragma unroll
            for (uint u = 0; u < NDU; ++u) {
                vf v = VLDX(x, xb + c * x_sc + u * VEC);
                vf d = ND_EXP(v - lsev[u]) * k1[u];
                /* sh 0 without smoothing: d - 0 is d, bit for bit */
                d = select(d, d - tw[u], tg[u].ycol == (vi)(int)c) - sh;
                /* ignored and bad rows: exactly 0, even for NaN logits */
                VSTX(gm, gb + c * g_sc + u * VEC,
                     select(tg[u].g * d, (vf)0.0f, dead[u]));
                ND_PREFETCH(x + xn + c * x_sc + u * VEC);
            }
        }
        return;
    }
    for (uint u = 0; u < NDU; ++u) {
        nd_item sub = nd_sub(&it, u);
        if (sub.nl > 0)
            nd_bwd_item(ND_ARGS, lse_in, lse_in_off, ND_GRAD_ARGS, &sub);
    }
#endif
}

/* log_softmax and softmax on CPUs (no transforms): an item takes NDU
 * vectors of inner positions, and for whole vectors at unit inner stride
 * keeps the max and the sum online in one pass (rescaled once per block
 * of ND_B classes), then writes each class's NDU vectors in a row from
 * the logits read again; nd_sm's items of one vector read one line per
 * class, a class stride apart (docs/tuning.md, "nd"). Other items and the
 * other primitives: nd_sm's body per vector. */
KERNEL void nd_kept_sm(CLX_PARAMS(nd_sm)) {
#if (!ND_ONE || defined(ND_ONLY_nd_kept_sm)) && NDKEPT && !XF
    nd_item it;
    if (!nd_item_span(O, I, VEC * NDU, &it)) return;
    if (it.nl == VEC * NDU && x_si == 1 && y_si == 1 &&
        (what == CLX_SM_LOG_SOFTMAX || what == CLX_SM_SOFTMAX)) {
        vf m[NDU], s[NDU], sc[NDU];
#pragma unroll
        for (uint u = 0; u < NDU; ++u) {
            m[u] = (vf)(-INFINITY);
            s[u] = sc[u] = (vf)0.0f;
        }
        ulong xb = x_off + it.o * x_so + it.i0;
        ulong yb = y_off + it.o * y_so + it.i0;
        ulong xn = xb + nd_next(&it, I, NDU * VEC, 1);
        nd_online(x, xb, xn, x_sc, C, m, s, sc, (vf *)0, (const nd_tg *)0,
                  0, 0);
        vf lS[NDU];
#pragma unroll
        for (uint u = 0; u < NDU; ++u)
            lS[u] = log(select(s[u] - sc[u], (vf)NAN,
                               m[u] == (vf)(-INFINITY)));
        for (uint c = 0; c < C; ++c)
#pragma unroll
            for (uint u = 0; u < NDU; ++u) {
                vf lp = (VLDX(x, xb + c * x_sc + u * VEC) - m[u]) - lS[u];
                VSTY(yo, yb + c * y_sc + u * VEC,
                     what == CLX_SM_LOG_SOFTMAX ? lp : ND_EXP(lp));
                ND_PREFETCH(x + xn + c * x_sc + u * VEC);
            }
        return;
    }
    for (uint u = 0; u < NDU; ++u) {
        nd_item sub = nd_sub(&it, u);
        if (sub.nl > 0) nd_sm_item(CLX_ARGS(nd_sm), &sub);
    }
#endif
}
