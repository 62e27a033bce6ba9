/* The cross-entropy family's shared part (xent.cl and xent_cpu.cl).
 * Targets are class indices (TGT 0/1) or probabilities (TGT 2, same
 * storage as the logits). The loss of a valid row is
 *   index: (1-eps)*w_y*((m - x_y) + log S) + (eps/C)*(A*log S + B)
 *   probs: A*log S + B
 * plus zeta*lse^2, with m, S, A, B from the online state in rowstate.h, and
 * the gradient p*k - (target terms) with p = exp((x - m) - log S).
 * Per-row losses go to `loss` (the output for reduction none, else
 * scratch for loss_reduce in nll.cl). `scr` holds what xent_check found
 * (contract.h: CLX_SCR_W, CLX_SCR_WSUM). */
#ifndef CLXENT_KERNELS_XENT_H
#define CLXENT_KERNELS_XENT_H

#include "rowstate.h"

#define AM_B (TGT == CLX_TGT_PROBS ? AM_PROBS : AM_SMOOTH)

typedef struct rowinfo {
    int valid; /* not ignore_index (always for probabilities) */
    int bad;   /* index outside [0, C): NaN loss, zero gradient */
    int ycol;  /* target column, -1 when none */
    float wy;  /* weight of the target class */
} rowinfo;

inline rowinfo row_target(const global IDX *y, ulong y_off, long ii, uint C,
                          const global float *w, int has_w, ulong r) {
    rowinfo ri;
    ri.valid = 1;
    ri.bad = 0;
    ri.ycol = -1;
    ri.wy = 1.0f;
#if TGT != CLX_TGT_PROBS
    long yv = (long)y[y_off + r];
    ri.valid = yv != ii;
    ri.bad = ri.valid && (yv < 0 || yv >= (long)C);
    if (ri.valid && !ri.bad) {
        ri.ycol = (int)yv;
        if (has_w) ri.wy = w[yv];
    }
#endif
    return ri;
}

/* The parameters every cross-entropy kernel shares (contract.h's group
 * xent). guard: a synchronous target check precedes (common.h, sync_bad):
 * every kernel starts with NO_ROWS_IF_BAD, which leaves it no rows to
 * read or write when that check found a bad target (its items still reach
 * every barrier). */
#define NO_ROWS_IF_BAD                                                         \
    if (sync_bad(scr, guard)) R = 0
#define XENT_PARAMS CLX_GROUP_PARAMS(xent)
#define XENT_ARGS CLX_GROUP_ARGS(xent)

/* G * s for row r (the mean's s = 1/W read from scratch when den_scr). */
inline float row_scale(float G, float den, int den_scr,
                       const global float *scr, const global float *gr,
                       ulong gr_off, int has_gr, ulong r) {
    float d = den_scr ? fin(scr[CLX_SCR_W], scr[CLX_SCR_W + 1]) : den;
    float g = G / d;
    if (has_gr) g *= gr[gr_off + r];
    return g;
}

/* Loss of one row from its merged state; *lse_out gets m + log S. */
inline float row_loss(st_t st, float xy, rowinfo ri, float eps, float zeta,
                      uint C, float *lse_out) {
    float lS = log(st_sum(st));
    float lse = st.m + lS;
    *lse_out = lse;
    if (!ri.valid) return 0.0f;
    if (ri.bad) return NAN;
    float l;
#if TGT == CLX_TGT_PROBS
    l = fin(st.ah, st.al) * lS + fin(st.bh, st.bl);
#else
    l = (1.0f - eps) * -(ri.wy * ((xy - st.m) - lS));
    if (eps > 0.0f)
        l += EPS_SHARE(eps, fin(st.ah, st.al) * lS + fin(st.bh, st.bl),
                       1.0f / (float)C);
#endif
    if (zeta != 0.0f) l += zeta * lse * lse;
    return l;
}

/* Writes the gradient of columns [cb, ce) of one row, this item's share.
 * p = exp((x - m) - lS); d = p*k1 - [c == y]*tw - (eps/C)*w_c (index) or
 * p*k1 - w_c*((1-eps)*t_c + eps/C) (probabilities), with rc = 1/C
 * (rowstate.h, EPS_SHARE); the row's store gets g*d, formed in f32 before
 * rounding (XF: times dx'/dx, the chain rule).
 * zero: only zeros, x is not read.
 * g_row may be x_row (in place): each element is read before it is
 * written, by the same item. */
inline void grad_range(global XS *g_row, const global XS *xr,
                       const global XS *tr, const global float *w, int has_w,
                       uint cb, uint ce, uint lane, uint T, int zero, float m,
                       float lS, float g, float k1, float tw, int ycol,
                       float eps, float rc, float xa, float xcap) {
    const uint span = T * KT * VEC;
    for (uint c0 = cb; c0 < ce; c0 += span) {
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + lane) * VEC;
            if (pos >= ce) break;
            vf out = (vf)0.0f;
            if (!zero) {
#if XF
                vf r = gload_x(xr, pos, ce, 0.0f);
                vf v = xf_v(r, xa, xcap);
#else
                vf v = XGLD(xr, pos, ce, 0.0f);
#endif
                vf p = exp((v - m) - lS);
                vf d = p * k1;
#if TGT == CLX_TGT_PROBS
                vf wv = has_w ? gload_f(w, pos, ce, 0.0f) : (vf)1.0f;
                d -= prob_a(wv, gload_x(tr, pos, ce, 0.0f), eps, rc);
#else
                d = select(d, d - tw, col_ids(pos) == (vi)ycol);
                if (eps > 0.0f)
                    d -= EPS_SHARE(eps,
                                   has_w ? gload_f(w, pos, ce, 0.0f)
                                         : (vf)1.0f,
                                   rc);
#endif
                out = g * d;
#if XF
                out *= XDERIV(r); /* the chain rule */
#endif
            }
            gstore_x(g_row, pos, ce, out);
        }
    }
}

/* The per-row factor k1 of the gradient. asum: A of the row (probs) or
 * the sum of all weights (index targets). */
inline float grad_k1(rowinfo ri, float eps, float zeta, uint C, float asum,
                     float lse) {
    float k;
#if TGT == CLX_TGT_PROBS
    k = asum;
#else
    k = (1.0f - eps) * ri.wy;
    if (eps > 0.0f) k += EPS_SHARE(eps, asum, 1.0f / (float)C);
#endif
    if (zeta != 0.0f) k += 2.0f * zeta * lse;
    return k;
}

/* Finishes one unit (row r, columns [cb, ce)) from the merged row state:
 * the loss and lse (by the unit's first item when `owner`), and the
 * gradient of the unit's columns when do_grad. */
inline void row_finish(XENT_PARAMS, global float *loss, ulong loss_off,
                       global float *lse, ulong lse_off, int has_lse,
                       global XS *gm, ulong g_off, ulong g_ld, st_t st,
                       float xy, rowinfo ri, ulong r, uint cb, uint ce,
                       uint lane, uint T, int owner, int do_grad) {
    float lse_v;
    float l = row_loss(st, xy, ri, eps, zeta, C, &lse_v);
    if (owner) {
        loss[loss_off + r] = l;
        if (has_lse) lse[lse_off + r] = lse_v;
    }
    if (!do_grad) return;
    int live = ri.valid && !ri.bad;
    float g = live ? row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r)
                   : 0.0f;
    float k1 = grad_k1(ri, eps, zeta, C, fin(st.ah, st.al), lse_v);
    grad_range(gm + g_off + r * g_ld, x + x_off + r * x_ld,
               t + t_off + r * t_ld, w + w_off, has_w, cb, ce, lane, T, !live,
               st.m, log(st_sum(st)), g, k1, (1.0f - eps) * ri.wy, ri.ycol,
               eps, 1.0f / (float)C, xa, xcap);
}

/* The state of this item's share of columns [cb, ce) of row r. */
inline st_t row_acc(XENT_PARAMS, ulong r, uint cb, uint ce, uint lane,
                    uint T, int live, int smooth) {
    acc_t q;
    acc_init(&q, -INFINITY);
    if (live) {
        const global XS *xr = x + x_off + r * x_ld;
        const global XS *tr = t + t_off + r * t_ld;
        float rc = 1.0f / (float)C;
        if (smooth)
            acc_range(&q, xr, tr, w + w_off, has_w, eps, rc, cb, ce, lane, T,
                      xa, xcap, AM_B);
        else
            acc_range(&q, xr, tr, w + w_off, has_w, eps, rc, cb, ce, lane, T,
                      xa, xcap, AM_STATS);
    }
    return acc_final(&q);
}
#endif /* CLXENT_KERNELS_XENT_H */
