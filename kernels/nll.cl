/* Targets and losses: the target check (range + the mean's denominator),
 * the scalar loss reduction, and PyTorch's NLLLoss over given
 * log-probabilities with its gradient. Built with X_T and TGT. */
#include "common.h"

/* Index vectors: VEC consecutive targets as long lanes. */
#if VEC == 1
typedef long vl_;
#define VSEL(a, b, c) ((c) ? (b) : (a))
#define VLOADI(p, i) ((long)(p)[i])
#define VANY(m) ((m) != 0)
#define VSTORE_L(v, a) ((a)[0] = (v))
#else
typedef CAT(long, VEC) vl_;
#define VSEL(a, b, c) select((a), (b), (c))
#define VLOADI(p, i) CAT(convert_long, VEC)(CAT(vload, VEC)(0, (p) + (i)))
#define VANY(m) any(m)
#define VSTORE_L(v, a) CAT(vstore, VEC)((v), 0, (a))
#endif

/* Horizontal sum of a long vector. */
inline long hsum_l(vl_ v) {
#if VEC == 1
    return v;
#else
    long t[VEC];
    CAT(vstore, VEC)(v, 0, t);
    long s = 0;
    for (int i = 0; i < VEC; ++i) s += t[i];
    return s;
#endif
}

/* One item's share of the target check: slots of VEC rows (and of VEC
 * classes for the weight sum), slot = first, first + stride, ... in
 * increasing order. Lanes past R read ignore_index (not counted). */
typedef struct chk_t {
    float wh, wl, ah, al; /* W and sum_c w[c] as (hi, lo) pairs */
    long bad_row, bad_val, nvalid, nok;
} chk_t;
/* the host sizes local memory by CLX_CHK_BYTES: a build fails if they differ */
typedef char chk_t_size_is_contract[sizeof(chk_t) == CLX_CHK_BYTES ? 1 : -1];

/* Lanes of ok whose row's combined sharded record (the OWN field at
 * own + (r / I) * so + (r % I) * si) does not count the target's class
 * exactly once: a shard left out, combined twice, or shards that
 * overlap (clxent.h, "Sharded vocabulary"). */
inline vl_ own_bad(const global float *own, ulong so, ulong si, uint I,
                   ulong r0, vl_ ok) {
    long t[VEC];
    VSTORE_L(ok, t);
    for (uint l = 0; l < VEC; ++l) {
        ulong r = r0 + l;
        t[l] = t[l] && own[(r / I) * so + (r % I) * si] != 1.0f ? -1 : 0;
    }
#if VEC == 1
    return t[0];
#else
    return CAT(vload, VEC)(0, t);
#endif
}

inline chk_t check_slots(const global IDX *y, ulong y_off, uint R, uint C,
                         long ii, const global float *w, int has_w,
                         const global float *own, int has_own,
                         ulong own_so, ulong own_si, uint I, uint first,
                         uint stride) {
    vf wh = (vf)0.0f, wc = (vf)0.0f, ah = (vf)0.0f, ac = (vf)0.0f;
    vl_ nvalid = (vl_)0, nok = (vl_)0;
    chk_t k;
    k.bad_row = -1;
    k.bad_val = 0;
    uint nslots = (R + VEC - 1) / VEC;
    for (uint sl = first; sl < nslots; sl += stride) {
        ulong r0 = (ulong)sl * VEC;
        vl_ yv;
        if (r0 + VEC <= R) {
            yv = VLOADI(y, y_off + r0);
        } else {
            long tmp[VEC];
            for (uint l = 0; l < VEC; ++l)
                tmp[l] = r0 + l < R ? (long)y[y_off + r0 + l] : ii;
#if VEC == 1
            yv = tmp[0];
#else
            yv = CAT(vload, VEC)(0, tmp);
#endif
        }
        vl_ valid = yv != (vl_)ii;
        vl_ bad = valid & ((yv < (vl_)0) | (yv >= (vl_)(long)C));
        vl_ ok = valid & ~bad;
#if VEC == 1
        nvalid += valid != 0;
        nok += ok != 0;
#else
        nvalid -= valid; /* lanes of a vector comparison are -1 or 0 */
        nok -= ok;
#endif
        /* its value is in [0, C): the host tells the two kinds apart */
        if (has_own) bad |= own_bad(own, own_so, own_si, I, r0, ok);
        if (VANY(bad)) {
            long tb[VEC], ty[VEC];
            VSTORE_L(bad, tb);
            VSTORE_L(yv, ty);
            for (uint l = 0; l < VEC && k.bad_row < 0; ++l)
                if (tb[l]) {
                    k.bad_row = (long)(r0 + l);
                    k.bad_val = ty[l];
                }
        }
        if (has_w) {
            float tw[VEC];
            long ty[VEC], to[VEC];
            VSTORE_L(yv, ty);
            VSTORE_L(ok, to);
            for (uint l = 0; l < VEC; ++l) tw[l] = to[l] ? w[ty[l]] : 0.0f;
            KAHAN(vf, wh, wc, VLOADP(tw));
        }
    }
    if (has_w) {
        uint cslots = (C + VEC - 1) / VEC;
        for (uint sl = first; sl < cslots; sl += stride)
            KAHAN(vf, ah, ac, gload_f(w, sl * VEC, C, 0.0f));
    }
    hsum2(wh, -wc, &k.wh, &k.wl);
    hsum2(ah, -ac, &k.ah, &k.al);
    k.nvalid = hsum_l(nvalid);
    k.nok = hsum_l(nok);
    return k;
}

/* (h, l) += (ph, pl), TwoSum on the high parts. */
#define PAIR_ADD(h, l, ph, pl)                                                 \
    do {                                                                       \
        float s_, e_;                                                          \
        TWO_SUM(float, (h), (ph), s_, e_);                                     \
        (l) = (l) + (pl) + e_;                                                 \
        (h) = s_;                                                              \
    } while (0)

/* b merged into a (a holds the earlier rows: its bad row wins). */
inline chk_t chk_merge(chk_t a, chk_t b) {
    PAIR_ADD(a.wh, a.wl, b.wh, b.wl);
    PAIR_ADD(a.ah, a.al, b.ah, b.al);
    if (b.bad_row >= 0 && (a.bad_row < 0 || b.bad_row < a.bad_row)) {
        a.bad_row = b.bad_row;
        a.bad_val = b.bad_val;
    }
    a.nvalid += b.nvalid;
    a.nok += b.nok;
    return a;
}

/* Fixed-order tree over the group (red: get_local_size(0) entries);
 * item 0 gets the result. */
inline chk_t chk_group(local chk_t *red, chk_t k) {
    uint lid = get_local_id(0), L = get_local_size(0);
    red[lid] = k;
    for (uint h = L >> 1; h > 0; h >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < h) red[lid] = chk_merge(red[lid], red[lid + h]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    return red[0];
}

/* The verdict and the header from the merged state (item 0 only). */
inline void chk_write(chk_t k, uint C, long ii, int has_w, global float *scr,
                      global long *res, ulong res_off, int mode) {
    if (has_w) {
        scr[CLX_SCR_W] = k.wh;
        scr[CLX_SCR_W + 1] = k.wl;
        scr[CLX_SCR_WSUM] = k.ah;
        scr[CLX_SCR_WSUM + 1] = k.al;
    } else {
        /* W is the count of valid in-range rows, exact as a pair */
        float h = (float)k.nok;
        scr[CLX_SCR_W] = h;
        scr[CLX_SCR_W + 1] = (float)(k.nok - (long)h);
        scr[CLX_SCR_WSUM] = (float)C;
        scr[CLX_SCR_WSUM + 1] = (float)((long)C - (long)scr[CLX_SCR_WSUM]);
    }
    scr[CLX_SCR_ANY] = k.nvalid > 0 ? 1.0f : 0.0f;
    res += res_off;
    if (mode == CLX_CHECK_DEFERRED_KEEP && res[CLX_VERDICT_ROW] >= 0) return;
    res[CLX_VERDICT_ROW] = k.bad_row;
    res[CLX_VERDICT_VALUE] = k.bad_val;
    res[CLX_VERDICT_C] = (long)C;
    res[CLX_VERDICT_II] = ii;
}

/* Checks every class index against [0, C) (ignore_index first), and
 * writes the scratch header (contract.h): W = sum over valid in-range rows
 * of w[y] (the count if unweighted), sum_c w[c] (C if unweighted), and
 * whether any row is valid; and the verdict at res + res_off: the first
 * bad row (-1 if none), its value, C and ignore_index for the message.
 * has_own (the sharded steps after the combination): a row whose record
 * does not count its class once is bad too, with its value in [0, C).
 * mode (contract.h): CLX_CHECK_SYNC and CLX_CHECK_DEFERRED_FIRST
 * overwrite, CLX_CHECK_DEFERRED_KEEP keeps an earlier deferred error.
 * One group: the whole check, fixed order. Several groups (xent_check_fin
 * then combines): group g's state into part[g] (CLX_CHECK_PART_FLOATS
 * floats each, the longs as their bits). */
KERNEL void xent_check(CLX_PARAMS(xent_check)) {
    chk_t k = check_slots(y, y_off, R, C, ii, w + w_off, has_w,
                          own + own_off, has_own, own_so, own_si, I,
                          get_global_id(0), get_global_size(0));
    k = chk_group(red, k);
    if (get_local_id(0) != 0) return;
    if (get_num_groups(0) == 1) {
        chk_write(k, C, ii, has_w, scr, res, res_off, mode);
        return;
    }
    global float *o = part + part_off +
                        (ulong)get_group_id(0) * CLX_CHECK_PART_FLOATS;
    o[0] = k.wh;
    o[1] = k.wl;
    o[2] = k.ah;
    o[3] = k.al;
    global long *ol = (global long *)(o + 4);
    ol[0] = k.bad_row;
    ol[1] = k.bad_val;
    ol[2] = k.nvalid;
    ol[3] = k.nok;
}

/* Combines the np group states of xent_check in fixed order (one group). */
KERNEL void xent_check_fin(CLX_PARAMS(xent_check_fin)) {
    uint lid = get_local_id(0), L = get_local_size(0);
    chk_t k;
    k.wh = k.wl = k.ah = k.al = 0.0f;
    k.bad_row = -1;
    k.bad_val = k.nvalid = k.nok = 0;
    for (uint i = lid; i < np; i += L) {
        const global float *o = part + part_off + (ulong)i * CLX_CHECK_PART_FLOATS;
        const global long *ol = (const global long *)(o + 4);
        chk_t b;
        b.wh = o[0];
        b.wl = o[1];
        b.ah = o[2];
        b.al = o[3];
        b.bad_row = ol[0];
        b.bad_val = ol[1];
        b.nvalid = ol[2];
        b.nok = ol[3];
        k = chk_merge(k, b);
    }
    k = chk_group(red, k);
    if (lid == 0) chk_write(k, C, ii, has_w, scr, res, res_off, mode);
}

/* The reduced loss from n per-row values, fixed order, compensated (slots
 * of VEC values, grid-strided). One group: the result; mean: divided by den
 * (or W from scr when den_scr); when no row is valid (any_valid < 0:
 * read the header's CLX_SCR_ANY) and no normalizer was given, the result
 * is NaN, or 0 with zero_policy. Several groups: group g's (hi, lo) into part[2g, 2g+1], summed by a
 * second, single-group launch over those 2 x groups values. guard: see
 * sync_bad (common.h). */
KERNEL void loss_reduce(CLX_PARAMS(loss_reduce)) {
    uint lid = get_local_id(0), L = get_local_size(0);
    vf s = (vf)0.0f, c = (vf)0.0f;
    uint nslots = (n + VEC - 1) / VEC;
    for (uint i = get_global_id(0); i < nslots; i += get_global_size(0))
        KAHAN(vf, s, c, gload_f(v + v_off, i * VEC, n, 0.0f));
    float sh, sl;
    hsum2(s, -c, &sh, &sl);
    red[2 * lid] = sh;
    red[2 * lid + 1] = sl;
    for (uint h = L >> 1; h > 0; h >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < h) {
            float t, e;
            TWO_SUM(float, red[2 * lid], red[2 * (lid + h)], t, e);
            red[2 * lid + 1] += red[2 * (lid + h) + 1] + e;
            red[2 * lid] = t;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid != 0 || sync_bad(scr, guard)) return;
    if (get_num_groups(0) > 1) {
        part[part_off + 2 * get_group_id(0)] = red[0];
        part[part_off + 2 * get_group_id(0) + 1] = red[1];
        return;
    }
    float total = fin(red[0], red[1]);
    if (mean) {
        int anyv = any_valid >= 0 ? any_valid : scr[CLX_SCR_ANY] != 0.0f;
        if (!anyv && !normalizer)
            total = zero_policy ? 0.0f : NAN;
        else
            total = total / (den_scr ? fin(scr[CLX_SCR_W], scr[CLX_SCR_W + 1])
                                     : den);
    }
    out[out_off] = total;
}

/* loss[r] = -w[y]*logp[r][y] (0 when ignored, NaN for a bad index, which
 * is never read). A row per item. */
KERNEL void nll_fwd(CLX_PARAMS(nll_fwd)) {
    ulong r = get_global_id(0);
    if (r >= R || sync_bad(scr, guard)) return;
    long yv = (long)y[y_off + r];
    float l = 0.0f;
    if (yv != ii) {
        if (yv < 0 || yv >= (long)C)
            l = NAN;
        else
            l = -((has_w ? w[w_off + yv] : 1.0f) *
                  LD1X(x, x_off + (r / I) * x_so + (ulong)yv * x_sc +
                              (r % I) * x_si));
    }
    loss[loss_off + r] = l;
}

/* grad[r][c] = -G*s*w[y] at c == y, 0 elsewhere (whole rows written; T
 * items per unit, P chunks of CH columns per row). */
KERNEL void nll_bwd(CLX_PARAMS(nll_bwd)) {
    unit_t u = unit_of(T, P, CH, C);
    if (u.row >= R || sync_bad(scr, guard)) return;
    ulong r = u.row;
    long yv = (long)y[y_off + r];
    int ycol = -1;
    float gv = 0.0f;
    if (yv != ii && yv >= 0 && yv < (long)C) {
        ycol = (int)yv;
        float d = den_scr ? fin(scr[CLX_SCR_W], scr[CLX_SCR_W + 1]) : den;
        float f = G / d;
        if (has_gr) f *= gr[gr_off + r];
        gv = -(f * (has_w ? w[w_off + yv] : 1.0f));
    }
    global XS *gp = g + g_off + r * g_ld;
    const uint span = T * KT * VEC;
    for (uint c0 = u.cb; c0 < u.ce; c0 += span)
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + u.lane) * VEC;
            if (pos >= u.ce) break;
            vf d = select((vf)0.0f, (vf)gv, col_ids(pos) == (vi)ycol);
            gstore_x(gp, pos, u.ce, d);
        }
}

/* The z-loss part of each row, zeta*lse^2 from the lse the loss kernel
 * wrote; 0 for an ignored row (has_y: class indices), NaN for a bad one
 * as its loss. Into the output (reduction none) or scratch for
 * loss_reduce. */
KERNEL void z_rows(CLX_PARAMS(z_rows)) {
    ulong r = get_global_id(0);
    if (r >= R || sync_bad(scr, guard)) return;
    float v = lse[lse_off + r];
    float z = zeta * v * v;
    if (has_y) {
        long yv = (long)y[y_off + r];
        if (yv == ii)
            z = 0.0f;
        else if (yv < 0 || yv >= (long)C)
            z = NAN; /* a bad label, past a deferred check */
    }
    out[out_off + r] = z;
}
