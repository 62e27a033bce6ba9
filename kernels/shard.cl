/* The sharded vocabulary (clxent.h, "Sharded vocabulary"; docs/semantics.md
 * 13): a work-item or a group per row, any strides (the record tensor's class axis
 * holds a record's CLX_REC_FLOATS fields; per-row arrays are at off +
 * o*so + i*si). Rows are O(R) work beside the O(R x C_k) of the partial
 * and the gradient, which read each logit once and twice.
 *   shard_partial: a shard's record per row (step 1; a group per row)
 *   shard_combine: out = a (+) b (step 2; core/shard.c on the host)
 *   shard_den:     W, the sum of w_y over the valid rows, into scratch
 *   shard_final:   loss (or its z-loss part) and lse per row (step 3)
 *   shard_bwd:     the gradient of the shard's classes (step 3; a group
 *                  per row) */
#include "xent.h"

/* No a*b + c fused into one rounding: the combine must treat its two
 * records alike (a (+) b == b (+) a bit for bit) and match the host's
 * steps (core/shard.c). */
#pragma OPENCL FP_CONTRACT OFF

/* e^d as 2^(d log2 e), full precision (nd.h's ND_EXP, measured there). */
#define SHARD_EXP(d) exp2((d) * M_LOG2E_F)

#define REC(p, off, so, sc, si, o, i, k) (p)[(off) + (o) * (so) + (k) * (sc) + (i) * (si)]

/* The row's target, global; valid: not ignore_index (probabilities: 1). */
inline long shard_target(const global IDX *y, ulong y_off, ulong y_so,
                         ulong y_si, ulong o, ulong i, long ii, int *valid) {
#if TGT != CLX_TGT_PROBS
    long yv = (long)y[y_off + o * y_so + i * y_si];
    *valid = yv != ii;
    return yv;
#else
    *valid = 1;
    return -1;
#endif
}

/* A bad label (outside [0, Ct), not ignore_index), or combined records
 * that do not count its class exactly once (own: their OWN field): only
 * a deferred target check lets the kernels reach it; as in the unsharded
 * kernels the row's loss is NaN and its gradient 0 (docs/semantics.md,
 * section 8). */
inline int shard_bad(long yv, uint Ct, float own) {
#if TGT != CLX_TGT_PROBS
    return yv < 0 || yv >= (long)Ct || own != 1.0f;
#else
    (void)yv;
    (void)Ct;
    (void)own;
    return 0;
#endif
}

/* A group per row, its items striding over the classes (side by side:
 * coalesced on GPUs, one vector on CPUs), the row read twice while it is
 * in the cache: its max, then the sums relative to it; the items' parts
 * combined by item 0 in item order (red: 6 floats an item). */
KERNEL void shard_partial(CLX_PARAMS(shard_partial)) {
    ulong r = get_group_id(0);
    uint lid = get_local_id(0), L = get_local_size(0);
    /* both uniform over the group: its items leave together */
    if (r >= (ulong)O * I || sync_bad(scr, guard)) return;
    ulong o = r / I, i = r % I;
    ulong xb = x_off + o * x_so + i * x_si;
#if TGT == CLX_TGT_PROBS
    ulong tb = t_off + o * t_so + i * t_si;
    float rc = 1.0f / (float)Ct;
    int vec_ok = x_sc == 1 && t_sc == 1;
#else
    int vec_ok = x_sc == 1;
#endif
    /* contiguous classes: VEC at a time, item after item (CPUs: vector
     * loads and exps); strided ones (the N-d layout): one at a time */
    float m = -INFINITY;
    if (vec_ok) {
        vf mv = (vf)(-INFINITY);
        for (uint pos = lid * VEC; pos < C; pos += L * VEC)
            mv = nanmaxv(mv, gload_xt(x + xb, pos, C, -INFINITY, xa, xcap));
        m = hmax(mv);
    } else {
        for (uint c = lid; c < C; c += L)
            m = nanmax1(m, xf_s(LD1X(x, xb + c * x_sc), xa, xcap));
    }
    red[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    m = -INFINITY;
    for (uint k = 0; k < L; ++k) m = nanmax1(m, red[k]);
    float s = 0.0f, sc = 0.0f, a = 0.0f, ac = 0.0f, b = 0.0f, bc = 0.0f;
    /* A and B only where the loss reads them (0 otherwise) */
    int need_ab = TGT == CLX_TGT_PROBS || eps > 0.0f;
    if (vec_ok) {
        vf vs = 0.0f, vsc = 0.0f, va = 0.0f, vac = 0.0f, vb = 0.0f, vbc = 0.0f;
        for (uint pos = lid * VEC; pos < C; pos += L * VEC) {
            vf v = gload_xt(x + xb, pos, C, -INFINITY, xa, xcap);
            vi in = col_ids(pos) < (vi)(int)C;
            if (m != -INFINITY) KAHAN(vf, vs, vsc, SHARD_EXP(v - m));
            if (!need_ab) continue;
            vf av = has_w ? gload_f(w + w_off, pos, C, 0.0f)
                          : select((vf)0.0f, (vf)1.0f, in);
#if TGT == CLX_TGT_PROBS
            av = prob_a(av, gload_x(t + tb, pos, C, 0.0f), eps, rc);
#endif
            KAHAN(vf, va, vac, av);
            vf bt = select(av * (m - v), av * INFINITY, v == (vf)(-INFINITY));
            KAHAN_INF(vf, vb, vbc, select((vf)0.0f, bt, in));
        }
        float h, l;
        hsum2(vs, -vsc, &h, &l);
        s = h, sc = -l;
        hsum2(va, -vac, &h, &l);
        a = h, ac = -l;
        hsum2(vb, select(-vbc, (vf)0.0f, isinf(vb)), &h, &l);
        b = h, bc = isfinite(h) ? -l : 0.0f;
    }
    for (uint c = lid; !vec_ok && c < C; c += L) {
        float v = xf_s(LD1X(x, xb + c * x_sc), xa, xcap);
        /* a shard with only -inf adds nothing to S (rescaled by 0) */
        if (m != -INFINITY) KAHAN(float, s, sc, SHARD_EXP(v - m));
        if (!need_ab) continue;
        float av = has_w ? w[w_off + c] : 1.0f;
#if TGT == CLX_TGT_PROBS
        av = prob_a1(av, LD1X(t, tb + c * t_sc), eps, rc);
#endif
        KAHAN(float, a, ac, av);
        /* an -inf logit adds a_c * inf, as -a_c log p_c does */
        KAHAN_INF(float, b, bc, v == -INFINITY ? av * INFINITY : av * (m - v));
    }
    barrier(CLK_LOCAL_MEM_FENCE); /* every item has read the max */
    local float *q = red + 6 * lid;
    q[0] = s, q[1] = -sc, q[2] = a, q[3] = -ac, q[4] = b;
    q[5] = isinf(b) ? 0.0f : -bc;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid != 0) return;
    s = sc = a = ac = b = bc = 0.0f;
    float sl = 0.0f, al = 0.0f, bl = 0.0f;
    for (uint k = 0; k < L; ++k) {
        local const float *p = red + 6 * k;
        KAHAN(float, s, sc, p[0]);
        sl += p[1];
        KAHAN(float, a, ac, p[2]);
        al += p[3];
        KAHAN_INF(float, b, bc, p[4]);
        bl += p[5];
    }
    float hi, lo;
    TWO_SUM(float, s, sl - sc, hi, lo);
    if (!isfinite(hi)) lo = 0.0f;
    float xy = 0.0f, wy = 0.0f, own = 0.0f;
    int valid;
    long yv = shard_target(y, y_off, y_so, y_si, o, i, ii, &valid);
    if (valid && has_y && yv >= cb && yv - cb < (long)C) {
        ulong c = (ulong)(yv - cb);
        xy = xf_s(LD1X(x, xb + c * x_sc), xa, xcap);
        wy = has_w ? w[w_off + c] : 1.0f;
        own = 1.0f;
    }
    float v[CLX_REC_FLOATS] = {m, hi, lo, a + (al - ac),
                               isinf(b) ? b : b + (bl - bc), xy, wy, own};
    for (uint k = 0; k < CLX_REC_FLOATS; ++k)
        REC(rec, r_off, r_so, r_sc, r_si, o, i, k) = v[k];
}

/* exp(mk - m), 0 for a part with no class; b relative to m. */
inline float shard_rescale(float mk, float m) {
    return mk == -INFINITY ? 0.0f : exp(mk - m);
}
inline float shard_shift(float b, float a, float mk, float m) {
    return a == 0.0f ? b : b + a * (m - mk);
}

/* core/shard.c's clx_partial_combine_row, step for step. */
KERNEL void shard_combine(CLX_PARAMS(shard_combine)) {
    ulong r = get_global_id(0);
    if (r >= (ulong)O * I) return;
    ulong o = r / I, i = r % I;
    float A[CLX_REC_FLOATS], B[CLX_REC_FLOATS], R[CLX_REC_FLOATS];
    for (uint k = 0; k < CLX_REC_FLOATS; ++k) {
        A[k] = REC(a, a_off, a_so, a_sc, a_si, o, i, k);
        B[k] = REC(b, b_off, b_so, b_sc, b_si, o, i, k);
    }
    float ma = A[CLX_REC_MAX], mb = B[CLX_REC_MAX];
    float m = isnan(ma) || isnan(mb) ? NAN : fmax(ma, mb);
    float fa = shard_rescale(ma, m), fb = shard_rescale(mb, m);
    float s, e;
    TWO_SUM(float, A[CLX_REC_SUM] * fa, B[CLX_REC_SUM] * fb, s, e);
    float lo = e + (A[CLX_REC_SUM_LO] * fa + B[CLX_REC_SUM_LO] * fb);
    float hi = s + lo;
    R[CLX_REC_MAX] = m;
    R[CLX_REC_SUM] = hi;
    R[CLX_REC_SUM_LO] = isfinite(hi) ? lo - (hi - s) : 0.0f;
    R[CLX_REC_A] = A[CLX_REC_A] + B[CLX_REC_A];
    R[CLX_REC_B] = shard_shift(A[CLX_REC_B], A[CLX_REC_A], ma, m) +
                   shard_shift(B[CLX_REC_B], B[CLX_REC_A], mb, m);
    for (uint k = CLX_REC_XY; k < CLX_REC_FLOATS; ++k) R[k] = A[k] + B[k];
    for (uint k = 0; k < CLX_REC_FLOATS; ++k)
        REC(out, o_off, o_so, o_sc, o_si, o, i, k) = R[k];
}

/* One group: W = sum of w_y over the valid rows, in a fixed order (each
 * item a strided Kahan sum, then item 0 over the items in order), into
 * scr[CLX_SCR_W] as (hi, lo) for the kernels that take den_scr. */
KERNEL void shard_den(CLX_PARAMS(shard_den)) {
    uint lid = get_local_id(0), L = get_local_size(0);
    float s = 0.0f, c = 0.0f;
    for (ulong r = lid; r < (ulong)O * I; r += L) {
        ulong o = r / I, i = r % I;
        int valid;
        (void)shard_target(y, y_off, y_so, y_si, o, i, ii, &valid);
        if (valid) KAHAN(float, s, c, REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_WY));
    }
    red[2 * lid] = s;
    red[2 * lid + 1] = -c;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid != 0 || sync_bad(scr, guard)) return;
    float h = 0.0f, hc = 0.0f, l = 0.0f;
    for (uint k = 0; k < L; ++k) {
        KAHAN(float, h, hc, red[2 * k]);
        l += red[2 * k + 1];
    }
    float hi, lo;
    TWO_SUM(float, h, l - hc, hi, lo);
    scr[CLX_SCR_W] = hi;
    scr[CLX_SCR_W + 1] = isfinite(hi) ? lo : 0.0f;
}

/* A combined record's m and log S (NaN without a finite logit, as the
 * unsharded kernels). */
inline float shard_logsum(float m, float hi, float lo) {
    return m == -INFINITY ? NAN : log(hi + lo);
}

KERNEL void shard_final(CLX_PARAMS(shard_final)) {
    ulong r = get_global_id(0);
    if (r >= (ulong)O * I || sync_bad(scr, guard)) return;
    ulong o = r / I, i = r % I;
    float m = REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_MAX);
    float lS = shard_logsum(m, REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_SUM),
                            REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_SUM_LO));
    float A = REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_A);
    float B = REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_B);
    float lse = m + lS, l = 0.0f, z = 0.0f;
    int valid;
    long yv = shard_target(y, y_off, y_so, y_si, o, i, ii, &valid);
    if (valid && shard_bad(yv, Ct, REC(rec, r_off, r_so, r_sc, r_si, o, i,
                                       CLX_REC_OWN))) {
        l = NAN;
        z = NAN;
    } else if (valid) {
#if TGT == CLX_TGT_PROBS
        l = A * lS + B;
#else
        float xy = REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_XY);
        float wy = REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_WY);
        l = (1.0f - eps) * wy * ((m - xy) + lS);
        if (eps > 0.0f) l += EPS_SHARE(eps, A * lS + B, 1.0f / (float)Ct);
#endif
        z = zeta * lse * lse;
        l += z;
    }
    if (has_l) lo[lo_off + o * lo_so + i * lo_si] = zonly ? z : l;
    if (has_lse) lse_o[lse_off + o * lse_so + i * lse_si] = lse;
    if (has_z) zo[zo_off + o * zo_so + i * zo_si] = z;
}

/* A group per row, its items striding over the classes as in
 * shard_partial; no reduction: each item works out the row's factors. */
KERNEL void shard_bwd(CLX_PARAMS(shard_bwd)) {
    ulong r = get_group_id(0);
    uint lid = get_local_id(0), L = get_local_size(0);
    if (r >= (ulong)O * I || sync_bad(scr, guard)) return;
    ulong o = r / I, i = r % I;
    ulong xb = x_off + o * x_so + i * x_si;
    ulong gb = g_off + o * g_so + i * g_si;
    int valid;
    long yv = shard_target(y, y_off, y_so, y_si, o, i, ii, &valid);
    if (!valid || shard_bad(yv, Ct, REC(rec, r_off, r_so, r_sc, r_si, o, i,
                                        CLX_REC_OWN))) {
        for (uint c = lid; c < C; c += L) ST1X(gm, gb + c * g_sc, 0.0f);
        return;
    }
    float d0 = den_scr ? fin(scr[CLX_SCR_W], scr[CLX_SCR_W + 1]) : den;
    float g = G / d0;
    if (has_gr) g *= gr[gr_off + o * gr_so + i * gr_si];
    float m = REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_MAX);
    float lS = shard_logsum(m, REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_SUM),
                            REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_SUM_LO));
    float A = REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_A);
    float rc = 1.0f / (float)Ct;
#if TGT == CLX_TGT_PROBS
    ulong tb = t_off + o * t_so + i * t_si;
    float k1 = A;
    (void)yv;
#else
    float tw = (1.0f - eps) * REC(rec, r_off, r_so, r_sc, r_si, o, i, CLX_REC_WY);
    float k1 = tw + (eps > 0.0f ? EPS_SHARE(eps, A, rc) : 0.0f);
    long yc = has_y ? yv - cb : -1;
#endif
    k1 += 2.0f * zeta * (m + lS);
#if TGT == CLX_TGT_PROBS
    int vec_ok = x_sc == 1 && g_sc == 1 && t_sc == 1;
#else
    int vec_ok = x_sc == 1 && g_sc == 1;
#endif
    for (uint pos = lid * VEC; vec_ok && pos < C; pos += L * VEC) {
        vf raw = gload_x(x + xb, pos, C, 0.0f);
        vf d = SHARD_EXP((xf_v(raw, xa, xcap) - m) - lS) * k1;
        vf wc = has_w ? gload_f(w + w_off, pos, C, 0.0f) : (vf)1.0f;
#if TGT == CLX_TGT_PROBS
        d -= prob_a(wc, gload_x(t + tb, pos, C, 0.0f), eps, rc);
#else
        d = select(d, d - tw, col_ids(pos) == (vi)(int)yc);
        if (eps > 0.0f) d -= EPS_SHARE(eps, wc, rc);
#endif
        gstore_x(gm + gb, pos, C, g * d * xf_dv(raw, xa, xcap));
    }
    for (uint c = lid; !vec_ok && c < C; c += L) {
        float raw = LD1X(x, xb + c * x_sc);
        float d = SHARD_EXP((xf_s(raw, xa, xcap) - m) - lS) * k1;
        float wc = has_w ? w[w_off + c] : 1.0f;
#if TGT == CLX_TGT_PROBS
        d -= prob_a1(wc, LD1X(t, tb + c * t_sc), eps, rc);
#else
        if ((long)c == yc) d -= tw;
        if (eps > 0.0f) d -= EPS_SHARE(eps, wc, rc);
#endif
        float dv = xa;
        if (xcap > 0.0f) {
            float ch = cosh(raw * xa / xcap);
            dv = xa / (ch * ch);
        }
        ST1X(gm, gb + c * g_sc, g * d * dv);
    }
}
