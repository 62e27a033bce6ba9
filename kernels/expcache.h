/* Cached exps (CPUs, VEC > 1, one item per row): one sweep over the row
 * from memory, in blocks of bl columns (a multiple of KT * VEC, a few KB:
 * L1): the block's lane-wise max, the running maximum raised once per
 * block (bm[b] keeps it), then the block's exp(x - m) from L1 into a
 * cache, with a tile-pairwise compensated sum. The caller then rescales
 * each block of the cache by exp(bm[b] - m) (block_scale): one exp per
 * element and x read once. The cache is a global f32 row (the fused
 * gradient, the softmax output) or local memory (16-bit outputs, which
 * would round twice). At most GC_BLOCKS blocks (the host picks bl). The
 * item reads each element of x before it writes the cache there, and x is
 * not read again: the cache may be x itself (in place). Users:
 * xent_cpu.cl (xent_rowsg_fused, xent_rowsl_fused) and softmax.cl
 * (sm_cached). */
#ifndef CLXENT_KERNELS_EXPCACHE_H
#define CLXENT_KERNELS_EXPCACHE_H
#include "rowstate.h"

#define GC_BLOCKS 1024

#if VEC > 1
/* The cache: eg (global, the gradient row) or el (local) when not null. */
inline void ec_store(global float *eg, local float *el, uint pos, uint ce,
                     vf v) {
    if (el) {
        VSTOREP(v, el + pos); /* cstride: whole vectors */
    } else if (pos + VEC <= ce) {
        VST_0(eg, pos, v);
    } else {
        float tmp[VEC];
        VSTOREP(v, tmp);
        for (uint e = 0; pos + e < ce; ++e) eg[pos + e] = tmp[e];
    }
}

inline vf ec_load(const global float *eg, const local float *el, uint pos,
                  uint ce) {
    if (el) return VLOADP(el + pos);
    return gload_f(eg, pos, ce, 0.0f);
}

/* The exps of columns [cb, ce) of one row into the cache, summed into q
 * (with the smoothing or probability terms when AM_HAS_B(am)). */
inline void cache_block(acc_t *q, const global XS *xr, const global XS *tr,
                        const global float *w, int has_w, float eps,
                        float rc, global float *eg, local float *el,
                        uint cb, uint ce, const int am) {
    float m = q->m;
    uint pos = cb;
    if (m == -INFINITY) {
        /* only -inf so far: the exps are 0; a_c*(m - x_c) = a_c*inf */
        for (; pos < ce; pos += VEC) {
            ec_store(eg, el, pos, ce, (vf)0.0f);
            if (AM_HAS_B(am)) {
                vi act = col_ids(pos) < (vi)(int)ce;
                vf a = select((vf)0.0f,
                              tile_a(am, w, has_w, tr, pos, ce, eps, rc), act);
                q->b += select((vf)0.0f, a * INFINITY, act);
                KAHAN_INF(vf, q->a, q->ac, a);
            }
        }
        return;
    }
    for (; pos + KT * VEC <= ce; pos += KT * VEC) {
        vf e[KT];
        for (int j = 0; j < KT; ++j) {
            uint p = pos + j * VEC;
            vf v = VLDX(xr, p);
            e[j] = exp(v - m);
            ec_store(eg, el, p, ce, e[j]);
            if (AM_HAS_B(am)) {
                vf a = tile_a(am, w, has_w, tr, p, ce, eps, rc);
                KAHAN_INF(vf, q->b, q->bc, a * (m - v));
                KAHAN_INF(vf, q->a, q->ac, a);
            }
        }
        /* independent terms in [0, 1]: pairwise, one compensated add */
        for (int w2 = KT / 2; w2 >= 1; w2 /= 2)
            for (int j = 0; j < w2; ++j) e[j] += e[j + w2];
        KAHAN(vf, q->s, q->sc, e[0]);
    }
    for (; pos < ce; pos += VEC) { /* the row's last, partial tile */
        vi act = col_ids(pos) < (vi)(int)ce;
        vf v = gload_x(xr, pos, ce, -INFINITY);
        vf e = exp(v - m); /* 0 past ce */
        ec_store(eg, el, pos, ce, e);
        KAHAN(vf, q->s, q->sc, e);
        if (AM_HAS_B(am)) {
            vf a = select((vf)0.0f,
                          tile_a(am, w, has_w, tr, pos, ce, eps, rc), act);
            KAHAN_INF(vf, q->b, q->bc, select((vf)0.0f, a * (m - v), act));
            KAHAN_INF(vf, q->a, q->ac, a);
        }
    }
}

/* Pass 1 of one row: the state, the exps in the cache, bm[b] per block. */
inline st_t cache_row(const global XS *xr, const global XS *tr,
                      const global float *w, int has_w, float eps, float rc,
                      global float *eg, local float *el, uint C, uint bl,
                      float *bm, const int am) {
    acc_t q;
    acc_init(&q, -INFINITY);
    uint b = 0;
    for (uint cb = 0; cb < C; cb += bl, ++b) {
        uint ce = min(C, cb + bl);
        vf tv = (vf)(-INFINITY);
        for (uint pos = cb; pos < ce; pos += VEC)
            tv = nanmaxv(tv, gload_x(xr, pos, ce, -INFINITY));
        acc_raise(&q, hmax(tv), am);
        bm[b] = q.m;
        cache_block(&q, xr, tr, w, has_w, eps, rc, eg, el, cb, ce, am);
    }
    return acc_final(&q);
}

/* exp(bm - m): the factor of a block's cached exps, exactly 1 for the
 * blocks that held the maximum. */
inline float block_scale(float bm, float m) {
    return bm == m ? 1.0f : exp(bm - m);
}
#endif /* VEC > 1 */
#endif /* CLXENT_KERNELS_EXPCACHE_H */
