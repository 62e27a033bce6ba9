/* The online row state of the row kernels (xent and softmax), its merges
 * and the fixed-order work-group reductions. */
#ifndef CLXENT_KERNELS_ROWSTATE_H
#define CLXENT_KERNELS_ROWSTATE_H
#include "common.h"

/* The state:
 * m:  running maximum (NaN-propagating)
 * s:  sum exp(x - m)
 * b:  sum a_c*(m - x_c) >= 0, a_c the per-class weights of the smoothing
 *     or probability term, so that -sum a_c*logp_c = A*log S + B with both
 *     parts non-negative (no cancellation)
 * a:  A = sum a_c
 * What a kernel accumulates is a compile-time constant (inlined): */
#define AM_STATS 0  /* m, s */
#define AM_SMOOTH 1 /* m, s, b, a with a_c = w_c (index targets, eps > 0) */
#define AM_PROBS 2  /* m, s, b, a with a_c = w_c*((1-eps)*t_c + eps/C) */
#define AM_AONLY 3  /* a only (backward with probabilities: x not read) */
#define AM_MAX 4    /* m only (row_max) */
#define AM_FIXED 5  /* s = sum exp(x - m) with m given (row_expsum) */
#define AM_HAS_B(am) ((am) == AM_SMOOTH || (am) == AM_PROBS)
#define AM_HAS_A(am) (AM_HAS_B(am) || (am) == AM_AONLY)
#define AM_READS_X(am) ((am) != AM_AONLY)

typedef struct acc_t {
    float m;
    vf s, sc, b, bc, a, ac; /* Kahan pairs, worth s - sc etc. */
} acc_t;

/* A row's state after the lanes and items are merged: pairs worth hi + lo.
 * Seven floats: an odd stride keeps local-memory reductions free of bank
 * conflicts. */
typedef struct st_t {
    float m, sh, sl, bh, bl, ah, al;
} st_t;
/* the host sizes local memory by CLX_ST_BYTES: a build fails if they differ */
typedef char st_t_size_is_contract[sizeof(st_t) == CLX_ST_BYTES ? 1 : -1];

inline void acc_init(acc_t *q, float m0) {
    q->m = m0;
    q->s = q->sc = q->b = q->bc = q->a = q->ac = (vf)0.0f;
}

inline st_t st_empty(float m0) {
    st_t r;
    r.m = m0;
    r.sh = r.sl = r.bh = r.bl = r.ah = r.al = 0.0f;
    return r;
}

/* Label smoothing gives every class eps/C. The kernels carry eps and
 * rc = 1/C, never eps/C: for a denormal eps (down to 2^-149) eps/C rounds
 * to 0, and 0 times the inf of a masked class (x_c = -inf) is NaN where
 * the exact term, and the host's double one, is inf. */

/* (eps/C)*v, multiplied first (v a value or a vector). */
#define EPS_SHARE(eps, v, rc) ((eps) * (v) * (rc))

/* a_c = w_c*((1-eps)*t_c + eps/C) of probability targets. Where it is
 * positive (w_c > 0, t_c >= 0, t_c or eps > 0) but under f32's smallest
 * denormal, it becomes that denormal: a masked class still adds a_c*inf =
 * inf. prob_a per lane, prob_a1 for one value. */
#define PROB_A_FN(name, F, I)                                                  \
    inline F name(F w, F t, float eps, float rc) {                             \
        F a = w * ((1.0f - eps) * t) + EPS_SHARE(eps, w, rc);                  \
        I lost = a == (F)0.0f && w > (F)0.0f &&                                \
                 (t > (F)0.0f || (t == (F)0.0f && (I)(eps > 0.0f)));           \
        return select(a, (F)0x1p-149f, lost);                                  \
    }
PROB_A_FN(prob_a, vf, vi)
PROB_A_FN(prob_a1, float, int)

/* The per-class weights a_c of a tile at pos (VEC lanes), 0 past ce. */
inline vf tile_a(const int am, const global float *w, int has_w,
                 const global XS *tr, uint pos, uint ce, float eps,
                 float rc) {
    vf wv = has_w ? gload_f(w, pos, ce, 0.0f) : (vf)1.0f;
    if (am == AM_SMOOTH) return wv;
    return prob_a(wv, gload_x(tr, pos, ce, 0.0f), eps, rc);
}

/* Raises the running maximum to at least tm, rescaling the sums once. */
inline void acc_raise(acc_t *q, float tm, const int am) {
    if (!(tm <= q->m)) { /* also when either is NaN */
        float mn = nanmax1(q->m, tm);
        if (am != AM_MAX) {
            /* 0 when the old max was -inf (no exp call: a row's first
             * raise, once per row) */
            float f = q->m == -INFINITY && !isnan(mn) ? 0.0f : exp(q->m - mn);
            q->s *= f;
            q->sc *= f;
            if (AM_HAS_B(am)) {
                /* b is relative to m: shifting it adds A*(mn - m); a lane
                 * that saw no weight gets nothing (never 0 * inf). */
                vf sh = select(q->a * (mn - q->m), (vf)0.0f, q->a == 0.0f);
                KAHAN_INF(vf, q->b, q->bc, sh);
            }
        }
        q->m = mn;
    }
}

/* Adds one tile lane-vector v with weights a; act marks the lanes inside
 * the row (all set for a full tile). */
inline void acc_add(acc_t *q, vf v, vf a, vi act, const int partial,
                    const int am) {
    if (am == AM_MAX) return;
    if (am == AM_AONLY) {
        KAHAN_INF(vf, q->a, q->ac, a);
        return;
    }
    if (am != AM_FIXED && q->m == -INFINITY) {
        /* Only -inf so far: exp terms are 0; each a_c*(m - x_c) is
         * a_c*inf (inf, or NaN for a_c == 0, as -a_c*logp_c is). */
        if (AM_HAS_B(am)) {
            vf bt = a * INFINITY;
            if (partial) bt = select((vf)0.0f, bt, act);
            q->b += bt;
            KAHAN_INF(vf, q->a, q->ac, a);
        }
        return;
    }
    vf e = exp(v - q->m);
    if (partial) e = select((vf)0.0f, e, act);
    if (am == AM_FIXED) /* exp(x - m) > 1 possible: may overflow */
        KAHAN_INF(vf, q->s, q->sc, e);
    else /* terms in [0, 1] */
        KAHAN(vf, q->s, q->sc, e);
    if (AM_HAS_B(am)) {
        vf bt = a * (q->m - v);
        if (partial) bt = select((vf)0.0f, bt, act);
        KAHAN_INF(vf, q->b, q->bc, bt);
        KAHAN_INF(vf, q->a, q->ac, a);
    }
}

/* Accumulates the columns [cb, ce) of one row that this item owns: tiles
 * of KT vectors, item `lane` of T taking vector j*T + lane of each tile
 * (coalesced for VEC == 1). xr/tr/w point at column 0 of the row. The
 * logits are transformed by xa, xcap in XF builds (common.h). */
inline void acc_range(acc_t *q, const global XS *xr, const global XS *tr,
                      const global float *w, int has_w, float eps, float rc,
                      uint cb, uint ce, uint lane, uint T, float xa,
                      float xcap, const int am) {
    const uint span = T * KT * VEC;
    uint c0 = cb;
    vi all = (vi)(-1);
    if (am == AM_MAX) {
        /* Max only: a running lane-wise max, one horizontal max at the
         * end (not one per tile). NaN-propagating throughout. */
        vf vm = (vf)(q->m);
        for (; c0 < ce && ce - c0 >= span; c0 += span)
            for (int j = 0; j < KT; ++j)
                vm = nanmaxv(vm, VLDX(xr, c0 + (j * T + lane) * VEC));
        for (int j = 0; c0 < ce && j < KT; ++j)
            vm = nanmaxv(vm, gload_x(xr, c0 + (j * T + lane) * VEC, ce,
                                     -INFINITY));
        acc_raise(q, hmax(vm), am);
        return;
    }
#if VEC > 1
    if (am == AM_STATS) {
        /* CPUs: blocks of NB tiles (the last one shorter) in two sweeps,
         * the lane-wise max (x from memory into L1) with one horizontal
         * max and rescale per block, then the exps (x from L1) with the
         * same maximum: a per-tile max, compare and branch cost a third of
         * the pass, and a row of a few tiles paid them on every tile. The
         * last vector of the row loads -inf past ce (exp: 0). */
        const uint bspan = span * NB;
        for (; c0 < ce; c0 += bspan) {
            uint be = min(ce, c0 + bspan);
            vf tv = (vf)(-INFINITY);
            for (uint b = 0; b < NB * KT; ++b) {
                uint pos = c0 + (b * T + lane) * VEC;
                if (pos >= be) break;
                tv = nanmaxv(tv, pos + VEC <= be
                                     ? XLD(xr, pos)
                                     : XGLD(xr, pos, be, -INFINITY));
            }
            acc_raise(q, hmax(tv), am);
            if (q->m == -INFINITY) continue;
            for (uint t0 = 0; t0 < NB * KT; t0 += KT) {
                if (c0 + (t0 * T + lane) * VEC >= be) break;
                vf e[KT];
                for (int j = 0; j < KT; ++j) {
                    uint pos = c0 + ((t0 + j) * T + lane) * VEC;
                    vf v = pos + VEC <= be ? XLD(xr, pos)
                                           : XGLD(xr, pos, be, -INFINITY);
                    e[j] = exp(v - q->m);
                }
                for (int w2 = KT / 2; w2 >= 1; w2 /= 2)
                    for (int j = 0; j < w2; ++j) e[j] += e[j + w2];
                KAHAN(vf, q->s, q->sc, e[0]);
            }
        }
        return;
    }
#endif
    for (; c0 < ce && ce - c0 >= span; c0 += span) {
        vf v[KT], a[KT];
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + lane) * VEC;
            v[j] = AM_READS_X(am) ? XLD(xr, pos) : (vf)0.0f;
            a[j] = AM_HAS_A(am) ? tile_a(am, w, has_w, tr, pos, ce, eps, rc)
                                : (vf)0.0f;
        }
        if (am != AM_FIXED && am != AM_AONLY) {
            vf tv = v[0];
            for (int j = 1; j < KT; ++j) tv = nanmaxv(tv, v[j]);
            acc_raise(q, hmax(tv), am);
        }
        if (am == AM_STATS) {
            /* The tile's exps are independent: sum them pairwise (terms in
             * [0, 1], a few ulps) and make one compensated add per tile,
             * instead of a dependent Kahan chain per element. */
            if (q->m != -INFINITY) {
                vf e[KT];
                for (int j = 0; j < KT; ++j) e[j] = exp(v[j] - q->m);
                for (int w2 = KT / 2; w2 >= 1; w2 /= 2)
                    for (int j = 0; j < w2; ++j) e[j] += e[j + w2];
                KAHAN(vf, q->s, q->sc, e[0]);
            }
        } else {
            for (int j = 0; j < KT; ++j) acc_add(q, v[j], a[j], all, 0, am);
        }
    }
    if (c0 < ce) { /* the last, partial tile: guarded loads, -inf filler */
        vf v[KT], a[KT];
        vi act[KT];
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + lane) * VEC;
            act[j] = ((vi)(int)pos + IOTA) < (vi)(int)ce;
            v[j] = AM_READS_X(am) ? XGLD(xr, pos, ce, -INFINITY)
                                  : (vf)0.0f;
            a[j] = AM_HAS_A(am) ? select((vf)0.0f,
                                         tile_a(am, w, has_w, tr, pos, ce,
                                                eps, rc),
                                         act[j])
                                : (vf)0.0f;
        }
        if (am != AM_FIXED && am != AM_AONLY) {
            vf tv = v[0];
            for (int j = 1; j < KT; ++j) tv = nanmaxv(tv, v[j]);
            acc_raise(q, hmax(tv), am);
        }
        for (int j = 0; j < KT; ++j) acc_add(q, v[j], a[j], act[j], 1, am);
    }
}

/* The item's lanes merged into one state (all lanes share m). */
inline st_t acc_final(const acc_t *q) {
    st_t r;
    r.m = q->m;
    hsum2(q->s, -q->sc, &r.sh, &r.sl);
    hsum2(q->b, -q->bc, &r.bh, &r.bl);
    hsum2(q->a, -q->ac, &r.ah, &r.al);
    return r;
}

/* Merges two states: rescale to the larger maximum, compensated adds.
 * Never computes -inf - -inf: equal maxima scale by exactly 1. */
inline st_t st_merge(st_t p, st_t q, int am) {
    st_t r;
    float mm = nanmax1(p.m, q.m);
    r.m = mm;
    r.sh = r.sl = r.bh = r.bl = r.ah = r.al = 0.0f;
    if (am == AM_MAX) return r;
    if (am != AM_AONLY) {
        float fp = p.m == mm ? 1.0f : exp(p.m - mm);
        float fq = q.m == mm ? 1.0f : exp(q.m - mm);
        float e;
        TWO_SUM(float, p.sh * fp, q.sh * fq, r.sh, e);
        r.sl = p.sl * fp + q.sl * fq + e;
    }
    if (AM_HAS_B(am)) {
        float shp = (p.m != mm && p.ah != 0.0f) ? p.ah * (mm - p.m) : 0.0f;
        float shq = (q.m != mm && q.ah != 0.0f) ? q.ah * (mm - q.m) : 0.0f;
        float e1, e2, e3, t1, t2;
        TWO_SUM(float, p.bh, q.bh, t1, e1);
        TWO_SUM(float, t1, shp, t2, e2);
        TWO_SUM(float, t2, shq, r.bh, e3);
        r.bl = p.bl + q.bl + ((e1 + e2) + e3);
    }
    if (AM_HAS_A(am)) {
        float e;
        TWO_SUM(float, p.ah, q.ah, r.ah, e);
        r.al = p.al + q.al + e;
    }
    return r;
}

/* A partial state as the split kernels store it: 8 floats, the 8th the
 * kernel's own. */
inline void store_part(global float *o, st_t st) {
    o[0] = st.m;
    o[1] = st.sh;
    o[2] = st.sl;
    o[3] = st.bh;
    o[4] = st.bl;
    o[5] = st.ah;
    o[6] = st.al;
}

inline st_t load_part(const global float *part, ulong at) {
    const global float *o = part + at;
    st_t st;
    st.m = o[0];
    st.sh = o[1];
    st.sl = o[2];
    st.bh = o[3];
    st.bl = o[4];
    st.ah = o[5];
    st.al = o[6];
    return st;
}

/* Fixed-order tree over the T consecutive items of each segment (one row);
 * every item gets its segment's result. All items of the group must call
 * it (barriers, so callers keep it out of branches: PoCL dislikes
 * barriers under conditions); red holds get_local_size(0) states. */
inline st_t seg_reduce(local st_t *red, st_t st, uint lid, uint lane, uint T,
                       int am) {
    if (T > 1) {
        red[lid] = st;
        for (uint h = T >> 1; h > 0; h >>= 1) {
            barrier(CLK_LOCAL_MEM_FENCE);
            if (lane < h) red[lid] = st_merge(red[lid], red[lid + h], am);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        st = red[lid - lane];
        /* red may be reused; and in place, every item's reads of the row
         * (global) must precede any item's gradient store */
        barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    }
    return st;
}

/* Row statistics from a state: S (NaN for a row without a finite value,
 * as exp(-inf - -inf) gives in the reference) and log S. */
inline float st_sum(st_t st) {
    return st.m == -INFINITY ? NAN : fin(st.sh, st.sl);
}
#endif /* CLXENT_KERNELS_ROWSTATE_H */
