/* The N-d kernels' shared machinery: tensors outer x C x inner with the
 * class axis strided (PyTorch's (N, C, d1..dk), softmax over any dim;
 * docs/semantics.md, "Layouts"). An item takes VEC consecutive inner
 * positions of one outer index, a row per vector lane: a class's VEC values
 * are one vector load where x_si == 1 (CPU SIMD), and on GPUs (VEC 1)
 * neighbouring items load neighbouring addresses (coalesced). No
 * transpose, no O(rows x C) scratch. The statistics are lane-wise and
 * online, in blocks of CLX_ND_BLOCK classes: a block's maxima first, one
 * rescale when a lane's maximum grew, then the block's exps (one exp per
 * element). Per-row arrays are compact (the host stages strided ones,
 * contract.h). The kernels: nd.cl (one pass per statistic, the cached and
 * chunked rows, the row primitives, NLL) and nd_kept.cl (an item's rows
 * kept in the cache or the gradient); this header holds what both run:
 * items, loads, targets, statistics, one item's loss, gradient and
 * softmax. */
#ifndef CLXENT_KERNELS_ND_H
#define CLXENT_KERNELS_ND_H

#include "xent.h"

#ifndef NDU
#define NDU 1 /* nd_cached_fused's and nd_kept_fused's vectors of inner
               * positions per item */
#endif
/* A program for one kernel (ND_ONE=1 and ND_ONLY_<name>, as the host
 * builds them): the others build empty. Intel's OpenCL CPU compiler took
 * 7 s for the kept rows' program of all of them at NDU 4 and 19 s at 16,
 * where a call needs one (docs/tuning.md, "nd"). */
#ifndef ND_ONE
#define ND_ONE 0
#endif
#define ND_B CLX_ND_BLOCK

/* e^d as 2^(d log2 e): a full-precision exp2 costs less than exp on CPUs
 * (PoCL: 0.22 against 0.3 ns a value on 2 cores; 10% of the fused C = 21
 * kernel). The product's rounding adds |d| 2^-24 relative to e^d, at most
 * 2^-24/e absolute on a probability: within the bounds of semantics 10. */
#define ND_EXP(d) exp2((d) * M_LOG2E_F)

/* CPUs: the logits of the item that runs next on this core (the next
 * inner positions of the same outer index: PoCL's work-group loop takes
 * neighbouring ids in turn) are C short runs a class stride apart, more
 * streams than the hardware prefetcher follows, so every item waited for
 * its first loads. Prefetched while this item computes its exps, that
 * wait overlaps the work (fused 16x21x128x128 and 8x150x64x64: a fifth
 * less; docs/tuning.md, "nd"). GPUs hide latency with other work-items.
 * Oclgrind cannot run the builtin (nd_prefetch 0 there). */
#ifndef PREFETCH
#define PREFETCH 0 /* the tuning parameter nd_prefetch */
#endif
#if VEC > 1 && PREFETCH
#define ND_PREFETCH(p) __builtin_prefetch((const global void *)(p))
#else
#define ND_PREFETCH(p) ((void)(p))
#endif

#if VEC == 1
#define VLOADI(a) ((a)[0])
inline int any_v(vi v) { return v != 0; }
#else
#define VLOADI(a) CAT(vload, VEC)(0, (a))
inline int any_v(vi v) { return any(v); }
#endif

/* ---- the item's rows ---- */

typedef struct nd_item {
    ulong o;     /* outer index */
    uint i0, nl; /* first inner position; lanes in use (1..VEC) */
    ulong r0;    /* its first row, o*I + i0 (per-row arrays) */
} nd_item;

/* 0 when the item has no rows. */
inline int nd_item_span(uint O, uint I, uint span, nd_item *it) {
    uint nb = (I + span - 1) / span;
    ulong gid = get_global_id(0);
    it->o = gid / nb;
    if (it->o >= O) return 0;
    it->i0 = (uint)(gid % nb) * span;
    it->nl = min(span, I - it->i0);
    it->r0 = it->o * I + it->i0;
    return 1;
}
inline int nd_item_of(uint O, uint I, nd_item *it) {
    return nd_item_span(O, I, VEC, it);
}
/* The u-th vector of an item that spans several (nl 0: past the end). */
inline nd_item nd_sub(const nd_item *it, uint u) {
    nd_item s = *it;
    uint off = u * VEC;
    s.i0 = it->i0 + off;
    s.nl = it->nl > off ? min((uint)VEC, it->nl - off) : 0;
    s.r0 = it->r0 + off;
    return s;
}

/* The element offset from an item of span inner positions to the next
 * item, 0 (its own lines again) when the next one is not whole within
 * the same outer index: a prefetch never reaches past the tensor. */
inline ulong nd_next(const nd_item *it, uint I, uint span, ulong si) {
    return it->i0 + 2 * (ulong)span <= I ? span * si : 0;
}

#ifndef ND_PF_ITEMS
#define ND_PF_ITEMS 4
#endif
/* For items of one vector: the offset ND_PF_ITEMS items ahead (unit inner
 * stride), else 0. */
inline ulong nd_ahead(const nd_item *it, uint I, ulong si) {
    return si == 1 ? nd_next(it, I, ND_PF_ITEMS * VEC, 1) : 0;
}

/* ---- loads and stores of one class's VEC values ---- */

#ifndef ND_PIECES
#define ND_PIECES 0 /* the tuning parameter nd_tail_pieces */
#endif
#if VEC > 1 && ND_PIECES
/* Tails at inner stride 1 (nl < VEC lanes, the last item of an inner
 * extent that is not whole vectors) move in pieces of 8, 4, 2 and 1
 * elements, nl's bits widest first, each placed by a shuffle; the lanes
 * as uint bits (T: the storage code, 0 f32, 1 f16, 2 bf16). Lane by lane
 * through a private array, Intel's runtime took 1.3-3x as long for a whole
 * call; PoCL up to 30% less (docs/tuning.md, "nd"). Exactly the
 * nl elements are read and written: a neighbour may be another item's
 * output (in place). */
#define ND_PIECE_LD(T, q, o, W)                                                \
    ((T) == 0 ? CAT(as_uint, W)(CAT(vload, W)(0, (const global float *)(q) + \
                                                     (o)))                     \
              : CAT(convert_uint, W)(                                          \
                    CAT(vload, W)(0, (const global ushort *)(q) + (o))))
#define ND_PIECE_ST(T, q, o, W, u)                                             \
    do {                                                                       \
        if ((T) == 0)                                                          \
            CAT(vstore, W)(CAT(as_float, W)(u), 0, (global float *)(q) + (o)); \
        else                                                                   \
            CAT(vstore, W)(CAT(convert_ushort, W)(u), 0,                       \
                           (global ushort *)(q) + (o));                        \
    } while (0)
/* The lanes [o, o + W) of a vector, as a mask and as W-lane indices. */
#define ND_IN_PIECE(o, W) ((IOTA >= (vi)(int)(o)) & (IOTA < (vi)(int)((o) + W)))
#define ND_IOTA2 ((uint2)(0, 1))
#define ND_IOTA4 ((uint4)(0, 1, 2, 3))
#define ND_IOTA8 ((uint8)(0, 1, 2, 3, 4, 5, 6, 7))

inline vu_ nd_tail_bits(const global void *q, int T, uint nl) {
    vu_ u = (vu_)0u;
    uint o = 0;
#define ND_PIECE_IN(W)                                                         \
    if (nl & W) {                                                              \
        vu_ s_ = shuffle(ND_PIECE_LD(T, q, o, W),                              \
                         CAT(as_uint, VEC)(IOTA) - (vu_)o);                    \
        u = select(u, s_, CAT(as_uint, VEC)(ND_IN_PIECE(o, W)));               \
        o += W;                                                                \
    }
#if VEC >= 16
    ND_PIECE_IN(8)
#endif
#if VEC >= 8
    ND_PIECE_IN(4)
#endif
    ND_PIECE_IN(2)
#undef ND_PIECE_IN
    if (nl & 1) {
        uint b = T == 0 ? as_uint(((const global float *)q)[o])
                        : (uint)((const global ushort *)q)[o];
        u = select(u, (vu_)b, CAT(as_uint, VEC)(IOTA == (vi)(int)o));
    }
    return u;
}
inline vf nd_tail_ld(const global void *q, int T, uint nl) {
    vu_ u = nd_tail_bits(q, T, nl);
    if (T == 0) return CAT(as_float, VEC)(u);
    vus_ h = CAT(convert_ushort, VEC)(u);
    return T == 1 ? half_bits_to_f32(h) : bf16v_to_f32(h);
}
inline void nd_tail_st(global void *q, int T, uint nl, vf v) {
    vu_ u = T == 0   ? CAT(as_uint, VEC)(v)
            : T == 1 ? CAT(convert_uint, VEC)(f32_to_half_bits(v))
                     : CAT(convert_uint, VEC)(f32v_to_bf16(v));
    uint o = 0;
#define ND_PIECE_OUT(W)                                                        \
    if (nl & W) {                                                              \
        ND_PIECE_ST(T, q, o, W, shuffle(u, (CAT(uint, W))o + ND_IOTA##W));     \
        o += W;                                                                \
    }
#if VEC >= 16
    ND_PIECE_OUT(8)
#endif
#if VEC >= 8
    ND_PIECE_OUT(4)
#endif
    ND_PIECE_OUT(2)
#undef ND_PIECE_OUT
    if (nl & 1) {
        uint b = shuffle(u, (uint2)o).s0;
        if (T == 0)
            ((global float *)q)[o] = as_float(b);
        else
            ((global ushort *)q)[o] = (ushort)b;
    }
}
#define ND_TAIL_LD(p, T, base, si, nl)                                         \
    if (si == 1) return nd_tail_ld((p) + (base), (T), (nl))
#define ND_TAIL_ST(p, T, base, si, nl, v)                                      \
    if (si == 1) {                                                             \
        nd_tail_st((p) + (base), (T), (nl), (v));                              \
        return;                                                                \
    }
#else
#define ND_TAIL_LD(p, T, base, si, nl) ((void)0)
#define ND_TAIL_ST(p, T, base, si, nl, v) ((void)0)
#endif

/* Lanes e < nl at base + e*si (lanes past nl: 0, never stored). */
#define DEF_ND_LOAD(NAME, TYPE, VLD, LD1, T)                                   \
    inline vf NAME(const global TYPE *p, ulong base, ulong si, uint nl) {      \
        if (VEC == 1 || (nl == VEC && si == 1)) return VLD(p, base);           \
        ND_TAIL_LD(p, T, base, si, nl);                                        \
        float tmp_[VEC];                                                       \
        for (uint e_ = 0; e_ < VEC; ++e_)                                      \
            tmp_[e_] = e_ < nl ? LD1(p, base + e_ * si) : 0.0f;                \
        return VLOADP(tmp_);                                                   \
    }
DEF_ND_LOAD(nd_ldx, XS, VLDX, LD1X, X_T)

#define DEF_ND_STORE(NAME, TYPE, VST, ST1, T)                                  \
    inline void NAME(global TYPE *p, ulong base, ulong si, uint nl, vf v) {    \
        if (VEC == 1 || (nl == VEC && si == 1)) {                              \
            VST(p, base, v);                                                   \
            return;                                                            \
        }                                                                      \
        ND_TAIL_ST(p, T, base, si, nl, v);                                     \
        float tmp_[VEC];                                                       \
        VSTOREP(v, tmp_);                                                      \
        for (uint e_ = 0; e_ < nl; ++e_) ST1(p, base + e_ * si, tmp_[e_]);     \
    }
DEF_ND_STORE(nd_stx, XS, VSTX, ST1X, X_T)
DEF_ND_STORE(nd_sty, YS, VSTY, ST1Y, Y_T)
DEF_ND_STORE(nd_stf, float, VST_0, ST1_0, 0)

/* Compact per-row floats: rows off .. off + nl (lanes past nl repeat the
 * last row). */
inline vf nd_rld(const global float *p, ulong off, uint nl) {
    if (VEC == 1 || nl == VEC) return VLD_0(p, off);
    float tmp[VEC];
    for (uint e = 0; e < VEC; ++e) tmp[e] = p[off + min(e, nl - 1)];
    return VLOADP(tmp);
}

#if XF
#define ND_LDX(p, base, si, nl) xf_v(nd_ldx(p, base, si, nl), xa, xcap)
#else
#define ND_LDX(p, base, si, nl) nd_ldx(p, base, si, nl)
#endif

/* ---- targets ---- */

typedef struct nd_tg {
    vi ycol;  /* target class, -1 when none */
    vi state; /* 0 live, 1 ignored, 2 bad */
    vf wy;    /* the target class's weight */
    vf g;     /* the row's gradient scale, 0 unless live */
} nd_tg;

inline nd_tg nd_targets(const global IDX *y, ulong y_off, long ii, uint C,
                        const global float *w, int has_w, float G, float den,
                        int den_scr, const global float *scr,
                        const global float *gr, ulong gr_off, int has_gr,
                        const nd_item *it) {
#if VEC > 1
    /* whole vectors: the lanes' labels as one load and the checks as
     * vector compares, the scale divided once (the scalar path below, a
     * division per lane, cost 6-10% of the fused call at C = 21) */
    if (it->nl == VEC) {
        float g0 =
            G / (den_scr ? fin(scr[CLX_SCR_W], scr[CLX_SCR_W + 1]) : den);
        nd_tg tg;
#if TGT == CLX_TGT_PROBS
        vi live = (vi)(-1);
        tg.ycol = (vi)(-1);
        tg.state = (vi)0;
        tg.wy = (vf)1.0f;
#else
        CAT(IDX, VEC) yv = CAT(vload, VEC)(0, y + y_off + it->r0);
        /* in 64 bits, as row_target: an ignore_index outside int's range
         * matches no int label (the cast alone would wrap it onto one) */
        IDX iv = (IDX)ii;
        vi valid = CAT(convert_int, VEC)(yv != iv) |
                   ((long)iv == ii ? (vi)0 : (vi)(-1));
        vi bad =
            valid & CAT(convert_int, VEC)((yv < (IDX)0) | (yv >= (IDX)C));
        vi live = valid & ~bad;
        tg.ycol = select((vi)(-1), CAT(convert_int, VEC)(yv), live);
        tg.state = select(select((vi)0, (vi)2, bad), (vi)1, ~valid);
        tg.wy = (vf)1.0f;
        if (has_w) {
            float bw[VEC];
            for (uint e = 0; e < VEC; ++e) {
                int c = ((const int *)&tg.ycol)[e];
                bw[e] = c >= 0 ? w[c] : 1.0f;
            }
            tg.wy = VLOADP(bw);
        }
#endif
        /* the row's upstream gradient before the mask: an ignored row's
         * gradient is 0 even where grad_rows holds NaN or inf there */
        vf g = (vf)g0;
        if (has_gr) g *= VLD_0(gr, gr_off + it->r0);
        tg.g = select((vf)0.0f, g, live);
        return tg;
    }
#endif
    int bycol[VEC], bstate[VEC];
    float bw[VEC], bg[VEC];
    for (uint e = 0; e < VEC; ++e) {
        ulong r = it->r0 + min(e, it->nl - 1);
        rowinfo ri = row_target(y, y_off, ii, C, w, has_w, r);
        bycol[e] = ri.ycol;
        bw[e] = ri.wy;
        bstate[e] = !ri.valid ? 1 : ri.bad ? 2 : 0;
        bg[e] = ri.valid && !ri.bad
                    ? row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r)
                    : 0.0f;
    }
    nd_tg tg;
    tg.ycol = VLOADI(bycol);
    tg.state = VLOADI(bstate);
    tg.wy = VLOADP(bw);
    tg.g = VLOADP(bg);
    return tg;
}

/* The lanes' target-class logits (transformed): one scalar load per lane
 * instead of a select per element; 0 where the row has no target. */
inline vf nd_pick(const global XS *x, ulong xb, ulong x_sc, ulong x_si,
                  uint C, uint nl, vi ycol, float xa, float xcap) {
    float b[VEC];
    for (uint e = 0; e < VEC; ++e) {
        int c = ((const int *)&ycol)[e];
        b[e] = e < nl && c >= 0 && (uint)c < C
                   ? XLD1(x, xb + (ulong)c * x_sc + e * x_si)
                   : 0.0f;
    }
    return VLOADP(b);
}

/* ---- lane-wise online statistics ---- */

typedef struct nd_st {
    vf m, s, sc, b, bc, a, ac; /* as rowstate.h's acc_t, per lane */
    vf xy;                     /* the target class's logit */
} nd_st;

/* Raises the lanes' maxima to at least bm, rescaling their sums (only
 * when a lane's maximum grew: after the first blocks, rarely). */
inline void nd_raise(nd_st *q, vf bm, const int am) {
    vf mn = nanmaxv(q->m, bm);
    if (!any_v(mn != q->m)) return; /* NaN != NaN: a NaN row rescales */
    /* 0 where the old max was -inf (the sums are 0 there) */
    vf f = select(exp(q->m - mn), (vf)0.0f,
                  (q->m == (vf)(-INFINITY)) & !isnan(mn));
    q->s *= f;
    q->sc *= f;
    if (AM_HAS_B(am)) {
        /* b is relative to m: shifting it adds A*(mn - m); nothing for a
         * lane whose max did not grow (another lane's did), where a max
         * still -inf would make it A*NaN */
        vf sh = select(q->a * (mn - q->m), (vf)0.0f,
                       (q->a == (vf)0.0f) | (mn == q->m));
        KAHAN_INF(vf, q->b, q->bc, sh);
    }
    q->m = mn;
}

/* The statistics of the lanes' rows over all C classes. am: AM_MAX,
 * AM_FIXED (m0 given), AM_STATS, AM_SMOOTH (a_c = w_c) or AM_PROBS
 * (a_c = w_c*((1-eps)*t_c + eps/C), rc = 1/C). xy picks the class ycol. */
inline nd_st nd_stats(const global XS *x, ulong xb, ulong xn, ulong x_sc,
                      ulong x_si,
                      const global XS *t, ulong tb, ulong t_sc, ulong t_si,
                      const global float *w, int has_w, float eps, float rc,
                      uint C, uint nl, vi ycol, vf m0, float xa, float xcap,
                      const int am) {
    nd_st q;
    q.m = m0;
    q.s = q.sc = q.b = q.bc = q.a = q.ac = q.xy = (vf)0.0f;
    for (uint c0 = 0; c0 < C; c0 += ND_B) {
        uint n = min((uint)ND_B, C - c0);
        vf v[ND_B];
        vf bm = (vf)(-INFINITY);
        for (uint j = 0; j < ND_B; ++j) {
            v[j] = (vf)(-INFINITY);
            if (j < n) {
                v[j] = ND_LDX(x, xb + (c0 + j) * x_sc, x_si, nl);
                ND_PREFETCH(x + xn + (c0 + j) * x_sc);
                /* for the plain sums a NaN needs no max of its own: its
                 * exp makes S NaN (kept below where the max is -inf) */
                bm = am == AM_STATS || am == AM_FIXED ? fmax(bm, v[j])
                                                     : nanmaxv(bm, v[j]);
            }
        }
        if (am == AM_MAX) {
            q.m = nanmaxv(q.m, bm);
            continue;
        }
        if (am != AM_FIXED) nd_raise(&q, bm, am);
        vi none = q.m == (vf)(-INFINITY); /* only -inf so far */
        if (am == AM_STATS || am == AM_FIXED) {
            /* the block's exps summed pairwise, one compensated add */
            vf e[ND_B];
            for (uint j = 0; j < ND_B; ++j)
                e[j] = j < n ? ND_EXP(v[j] - q.m) : (vf)0.0f;
            /* a lane with only -inf so far: its -inf count 0 (exp(NaN)
             * above), its NaNs stay NaN */
            if (am == AM_STATS && any_v(none))
                for (uint j = 0; j < n; ++j)
                    e[j] = select(e[j], (vf)0.0f, v[j] == (vf)(-INFINITY));
            for (uint h = ND_B / 2; h >= 1; h /= 2)
                for (uint j = 0; j < h; ++j) e[j] += e[j + h];
            if (am == AM_FIXED) { /* exp(x - m) > 1 possible: may overflow */
                KAHAN_INF(vf, q.s, q.sc, e[0]);
            } else {
                KAHAN(vf, q.s, q.sc, e[0]);
            }
            continue;
        }
        for (uint j = 0; j < n; ++j) {
            uint c = c0 + j;
            vf a = (vf)(has_w ? w[c] : 1.0f);
            if (am == AM_PROBS)
                a = prob_a(a, nd_ldx(t, tb + c * t_sc, t_si, nl), eps, rc);
            vf e = select(ND_EXP(v[j] - q.m), (vf)0.0f, none);
            KAHAN(vf, q.s, q.sc, e);
            /* -inf so far: a_c*(m - x_c) is a_c*inf (inf, or NaN for
             * a_c == 0, as -a_c*logp_c is) */
            vf bt = select(a * (q.m - v[j]), a * INFINITY, none);
            KAHAN_INF(vf, q.b, q.bc, bt);
            KAHAN_INF(vf, q.a, q.ac, a);
        }
    }
    return q;
}

/* S (NaN for a row without a finite value, as the reference), A, B. */
inline vf nd_sum(const nd_st *q) {
    return select(q->s - q->sc, (vf)NAN, q->m == (vf)(-INFINITY));
}
inline vf nd_bsum(const nd_st *q) {
    return select(q->b - q->bc, q->b, isinf(q->b));
}

/* The lanes' losses: 0 for ignored rows, NaN for bad ones. */
inline vf nd_loss(const nd_tg *tg, vf m, vf lS, vf xy, vf A, vf B, float eps,
                  float zeta, uint C) {
    vf lse = m + lS;
    vf l;
#if TGT == CLX_TGT_PROBS
    l = A * lS + B;
#else
    l = (1.0f - eps) * -(tg->wy * ((xy - m) - lS));
    if (eps > 0.0f) l += EPS_SHARE(eps, A * lS + B, 1.0f / (float)C);
#endif
    if (zeta != 0.0f) l += zeta * lse * lse;
    l = select(l, (vf)0.0f, tg->state == (vi)1);
    return select(l, (vf)NAN, tg->state == (vi)2);
}

/* The gradient's per-row factor k1 (grad_k1 of xent.h, per lane). */
inline vf nd_k1(const nd_tg *tg, vf A, vf lse, float eps, float zeta,
                uint C) {
    vf k;
#if TGT == CLX_TGT_PROBS
    k = A;
#else
    k = (1.0f - eps) * tg->wy;
    if (eps > 0.0f) k += EPS_SHARE(eps, A, 1.0f / (float)C);
#endif
    if (zeta != 0.0f) k += 2.0f * zeta * lse;
    return k;
}

#define ND_PARAMS CLX_GROUP_PARAMS(nd)
#define ND_ARGS CLX_GROUP_ARGS(nd)
#define ND_GRAD_PARAMS CLX_GROUP_PARAMS(ndgrad)
#define ND_GRAD_ARGS CLX_GROUP_ARGS(ndgrad)

/* The gradient of the lanes' rows, class by class: p = exp((x' - m) - lS)
 * (the backward from a saved lse: m = lse, lS = 0). */
inline void nd_grad(ND_PARAMS, ND_GRAD_PARAMS, const nd_item *it,
                    const nd_tg *tg, vf m, vf lS, vf k1) {
    ulong xb = x_off + it->o * x_so + it->i0 * x_si;
#if TGT == CLX_TGT_PROBS
    ulong tb = t_off + it->o * t_so + it->i0 * t_si;
#else
    vf tw = (1.0f - eps) * tg->wy;
#endif
    ulong gb = g_off + it->o * g_so + it->i0 * g_si;
    float rc = 1.0f / (float)C;
    vi dead = tg->state != (vi)0;
    for (uint c = 0; c < C; ++c) {
        vf r = nd_ldx(x, xb + c * x_sc, x_si, it->nl);
        vf v = XF ? xf_v(r, xa, xcap) : r;
        vf d = ND_EXP((v - m) - lS) * k1;
        float wc = has_w ? w[w_off + c] : 1.0f;
#if TGT == CLX_TGT_PROBS
        d -= prob_a((vf)wc, nd_ldx(t, tb + c * t_sc, t_si, it->nl), eps, rc);
#else
        d = select(d, d - tw, tg->ycol == (vi)(int)c);
        if (eps > 0.0f) d -= EPS_SHARE(eps, wc, rc);
#endif
        vf out = tg->g * d;
        if (XF) out *= XDERIV(r); /* the chain rule */
        /* ignored and bad rows: exactly 0, even for NaN logits */
        nd_stx(gm, gb + c * g_sc, g_si, it->nl, select(out, (vf)0.0f, dead));
    }
}

/* Forward (and with do_grad, the gradient) of one item: the statistics
 * pass, the losses and lse, the gradient pass. (Inlined always: called in
 * nd_kept_fwd's loop, Intel's OpenCL CPU compiler 2026.22 made a SIMD
 * variant of it and crashed in its vectorizer, vplan-vec.) */
__attribute__((always_inline)) inline void
nd_xent_item(ND_PARAMS, global float *loss, ulong loss_off, global float *lse,
             ulong lse_off, int has_lse, ND_GRAD_PARAMS, const nd_item *itp,
             const int do_grad) {
    nd_item it = *itp;
    nd_tg tg = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den, den_scr,
                          scr, gr, gr_off, has_gr, &it);
    ulong xb = x_off + it.o * x_so + it.i0 * x_si;
    ulong xn = xb + nd_ahead(&it, I, x_si);
    ulong tb = t_off + it.o * t_so + it.i0 * t_si;
    float rc = 1.0f / (float)C;
    vf m0 = (vf)(-INFINITY);
    nd_st q;
    if (TGT == CLX_TGT_PROBS)
        q = nd_stats(x, xb, xn, x_sc, x_si, t, tb, t_sc, t_si, w + w_off, has_w,
                     eps, rc, C, it.nl, tg.ycol, m0, xa, xcap, AM_PROBS);
    else if (eps > 0.0f)
        q = nd_stats(x, xb, xn, x_sc, x_si, t, tb, t_sc, t_si, w + w_off, has_w,
                     eps, rc, C, it.nl, tg.ycol, m0, xa, xcap, AM_SMOOTH);
    else
        q = nd_stats(x, xb, xn, x_sc, x_si, t, tb, t_sc, t_si, w + w_off, has_w,
                     eps, rc, C, it.nl, tg.ycol, m0, xa, xcap, AM_STATS);
    if (TGT != CLX_TGT_PROBS)
        q.xy = nd_pick(x, xb, x_sc, x_si, C, it.nl, tg.ycol, xa, xcap);
    vf lS = log(nd_sum(&q));
    vf lsev = q.m + lS;
    vf A = q.a - q.ac;
    vf l = nd_loss(&tg, q.m, lS, q.xy, A, nd_bsum(&q), eps, zeta, C);
    nd_stf(loss, loss_off + it.r0, 1, it.nl, l);
    if (has_lse) nd_stf(lse, lse_off + it.r0, 1, it.nl, lsev);
    if (do_grad)
        nd_grad(ND_ARGS, ND_GRAD_ARGS, &it, &tg, q.m, lS,
                nd_k1(&tg, A, lsev, eps, zeta, C));
}

/* Backward from the saved lse: p = exp(x' - lse). A: the sum of the
 * class weights from the check (index targets), or summed here over t. */
__attribute__((always_inline)) inline void
nd_bwd_item(ND_PARAMS, const global float *lse_in, ulong lse_in_off,
            ND_GRAD_PARAMS, const nd_item *itp) {
    nd_item it = *itp;
    nd_tg tg = nd_targets(y, y_off, ii, C, w + w_off, has_w, G, den, den_scr,
                          scr, gr, gr_off, has_gr, &it);
    vf lsev = nd_rld(lse_in, lse_in_off + it.r0, it.nl);
    vf A;
#if TGT == CLX_TGT_PROBS
    ulong tb = t_off + it.o * t_so + it.i0 * t_si;
    float rc = 1.0f / (float)C;
    vf a = (vf)0.0f, ac = (vf)0.0f;
    for (uint c = 0; c < C; ++c) {
        vf wc = (vf)(has_w ? w[w_off + c] : 1.0f);
        KAHAN_INF(vf, a, ac,
                  prob_a(wc, nd_ldx(t, tb + c * t_sc, t_si, it.nl), eps, rc));
    }
    A = a - ac;
#else
    A = (vf)fin(scr[CLX_SCR_WSUM], scr[CLX_SCR_WSUM + 1]);
#endif
    nd_grad(ND_ARGS, ND_GRAD_ARGS, &it, &tg, lsev, (vf)0.0f,
            nd_k1(&tg, A, lsev, eps, zeta, C));
}

/* A vector of rows finished from its statistics: max m, exp-sum s - sc
 * (NaN where the max is -inf, as the reference), target logit xy,
 * smoothing sums A and B. Stores its losses (and lse) at rows r0 .. r0 +
 * nl; returns the gradient's factor k1 / S. (Inlined always: the plain
 * kept body's constants must reach it.) */
__attribute__((always_inline)) inline vf
nd_finish(const nd_tg *tg, vf m, vf s, vf sc, vf xy, vf A, vf B, float eps,
          float zeta, uint C, global float *loss, ulong loss_off,
          global float *lse, ulong lse_off, int has_lse, ulong r0, uint nl) {
    vf S = select(s - sc, (vf)NAN, m == (vf)(-INFINITY));
    vf lS = log(S);
    vf lsev = m + lS;
    nd_stf(loss, loss_off + r0, 1, nl,
           nd_loss(tg, m, lS, xy, A, B, eps, zeta, C));
    if (has_lse) nd_stf(lse, lse_off + r0, 1, nl, lsev);
    return nd_k1(tg, A, lsev, eps, zeta, C) / S;
}

/* Class c's gradient from d = p_c * k1: less the target's share (tc: the
 * target probability, for probability targets), scaled by g; exactly 0
 * on ignored and bad rows, even for NaN logits. */
inline vf nd_dgrad(vf d, const nd_tg *tg, vi dead, uint c, float wc, vf tc,
                   float eps, float rc) {
#if TGT == CLX_TGT_PROBS
    d -= prob_a((vf)wc, tc, eps, rc);
#else
    d = select(d, d - (1.0f - eps) * tg->wy, tg->ycol == (vi)(int)c);
    if (eps > 0.0f) d -= EPS_SHARE(eps, wc, rc);
#endif
    return select(tg->g * d, (vf)0.0f, dead);
}


/* ---- the row primitives and the copy ---- */

#if X_T == Y_T
#if X_T == CLX_STORE_F32
typedef uint nd_raw;
#else
typedef ushort nd_raw;
#endif
#endif

__attribute__((always_inline)) inline void
nd_sm_item(CLX_PARAMS(nd_sm), const nd_item *itp) {
    nd_item it = *itp;
    ulong xb = x_off + it.o * x_so + it.i0 * x_si;
    ulong yb = y_off + it.o * y_so + it.i0 * y_si;
    ulong xn = xb + nd_ahead(&it, I, x_si);
    if (what == CLX_SM_COPY) {
#if X_T == Y_T /* as bits: exact, NaN payloads too */
        const global nd_raw *xr = (const global nd_raw *)x;
        global nd_raw *yr = (global nd_raw *)yo;
        for (uint c = 0; c < C; ++c)
            for (uint e = 0; e < it.nl; ++e)
                yr[yb + c * y_sc + e * y_si] = xr[xb + c * x_sc + e * x_si];
#else
        for (uint c = 0; c < C; ++c)
            nd_sty(yo, yb + c * y_sc, y_si, it.nl,
                   nd_ldx(x, xb + c * x_sc, x_si, it.nl));
#endif
        return;
    }
    vi none = (vi)(-1);
    const global float *nw = (const global float *)0;
    nd_st q;
    if (what == CLX_SM_MAX) {
        q = nd_stats(x, xb, xn, x_sc, x_si, x, 0, 0, 0, nw, 0, 0.0f, 0.0f, C,
                     it.nl, none, (vf)(-INFINITY), xa, xcap, AM_MAX);
        nd_stf(vo, vo_off + it.r0, 1, it.nl, q.m);
        return;
    }
    if (what == CLX_SM_EXPSUM) {
        q = nd_stats(x, xb, xn, x_sc, x_si, x, 0, 0, 0, nw, 0, 0.0f, 0.0f, C,
                     it.nl, none, nd_rld(mx, mx_off + it.r0, it.nl), xa, xcap,
                     AM_FIXED);
        nd_stf(vo, vo_off + it.r0, 1, it.nl,
               select(q.s - q.sc, q.s, isinf(q.s)));
        return;
    }
    q = nd_stats(x, xb, xn, x_sc, x_si, x, 0, 0, 0, nw, 0, 0.0f, 0.0f, C, it.nl,
                 none, (vf)(-INFINITY), xa, xcap, AM_STATS);
    vf lS = log(nd_sum(&q));
    for (uint c = 0; c < C; ++c) {
        vf lp = (ND_LDX(x, xb + c * x_sc, x_si, it.nl) - q.m) - lS;
        nd_sty(yo, yb + c * y_sc, y_si, it.nl,
               what == CLX_SM_LOG_SOFTMAX ? lp : ND_EXP(lp));
    }
}

#endif
