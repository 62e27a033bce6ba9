/* The batch scheme of the CPU kernels (VEC 16): 16 rows per item, each
 * row read along its columns in whole vectors with per-lane statistics,
 * then the 16 rows' statistics transposed so that the horizontal
 * reductions are done for 16 rows at once, a row per lane (xent_batch.cl,
 * softmax.cl's sm_batch). A row's last, partial vector is loaded whole
 * when the next row of the item lies behind it (the lanes past C masked),
 * and stored in a few pieces. */
#ifndef CLXENT_KERNELS_BATCH_H
#define CLXENT_KERNELS_BATCH_H
#include "lanes.h"

/* SMOOTH (build option): label smoothing, eps > 0 (the host's choice). */
#ifndef SMOOTH
#define SMOOTH 0
#endif

#if VEC == 16
DEF_STORE_FIRST_F32(store_first_f, float) /* the exps and the gradient */

/* The vector at pos (< C) of a row of C values. The row's last, partial
 * vector is loaded whole when `over` (the item's next row starts ld
 * elements further, so the load stays in it), else element by element.
 * batch_load_x: -inf past C; batch_load_f: unspecified past C (lanes the
 * caller does not store). */
inline int batch_whole(uint pos, uint C, ulong ld, int over) {
    return pos + 16 <= C || (over && pos + 16 <= ld + C);
}

inline float16 batch_load_x(const global XS *xr, uint pos, uint C, ulong ld,
                            int over) {
    if (pos + 16 <= C) return VLDX(xr, pos);
    if (batch_whole(pos, C, ld, over))
        return select(VLDX(xr, pos), (float16)(-INFINITY),
                      col_ids(pos) >= (int16)(int)C);
    return gload_x(xr, pos, C, -INFINITY);
}

inline float16 batch_load_f(const global float *p, uint pos, uint C, ulong ld,
                            int over) {
    return batch_whole(pos, C, ld, over) ? vload16(0, p + pos)
                                         : gload_f(p, pos, C, 0.0f);
}

/* A lane maximum to take exps against: 0 for a lane without a finite
 * value, whose exps are then 0 rather than NaN. */
inline float16 lane_safe_max(float16 m) {
    return select(m, (float16)0.0f, m == (float16)(-INFINITY));
}

/* A row's lane statistics: the max, the sums of exp(x - max) and (label
 * smoothing) of a_c * (max - x_c) and of a_c, a_c the class weights;
 * sums as Kahan pairs (value s - sc). A lane without a finite value takes
 * its exps against 0 (0, not NaN), and its a_c * (max - x_c) too (inf,
 * or NaN for a_c == 0, as -a_c * logp_c is). */
typedef struct lane_stats {
    float16 m, s, sc, b, bc, a, ac;
} lane_stats;

/* Adds the smoothing terms of one vector (a: its class weights, 0 past
 * C) to the lane sums. */
inline void smooth_add(lane_stats *q, float16 a, float16 ms, float16 v,
                       int16 in) {
    KAHAN_INF(float16, q->b, q->bc, select((float16)0.0f, a * (ms - v), in));
    KAHAN_INF(float16, q->a, q->ac, a);
}

/* Row `row` of this item's local exp cache (16 rows of cstride floats
 * per item: the host's clx_ops_batch_cache_floats), or null without one. */
inline local float *batch_cache_row(local float *cache, uint cstride,
                                    uint row) {
    return cache ? cache + (get_local_id(0) * 16 + row) * (ulong)cstride : 0;
}

/* The exps of a row: at eg (global, the f32 gradient or output row) or
 * el (local, whole vectors) when not null. */
inline void batch_keep(global float *eg, local float *el, uint p,
                       float16 e) {
    if (eg)
        vstore16(e, 0, eg + p);
    else if (el)
        vstore16(e, 0, el + p);
}

/* One row's lane statistics, the exps kept (batch_keep) when eg or el is
 * not null. */
inline lane_stats batch_row(const global XS *xr, ulong x_ld, int over,
                            uint C, const global float *w, int has_w,
                            global float *eg, local float *el) {
    const int smooth = SMOOTH;
    lane_stats q;
    float16 m = (float16)(-INFINITY);
    uint pos = 0;
    for (; pos + 16 <= C; pos += 16) m = nanmaxv(m, VLDX(xr, pos));
    float16 tail = pos < C ? batch_load_x(xr, pos, C, x_ld, over)
                           : (float16)(-INFINITY);
    m = nanmaxv(m, tail);
    float16 ms = lane_safe_max(m);
    q.m = m;
    q.s = q.sc = q.b = q.bc = q.a = q.ac = (float16)0.0f;
    for (pos = 0; pos + KT * 16 <= C; pos += KT * 16) {
        float16 e[KT];
        for (int j = 0; j < KT; ++j) {
            uint p = pos + j * 16;
            float16 v = VLDX(xr, p);
            e[j] = exp(v - ms);
            batch_keep(eg, el, p, e[j]);
            if (smooth)
                smooth_add(&q, has_w ? vload16(0, w + p) : (float16)1.0f, ms,
                           v, (int16)(-1));
        }
        /* independent terms in [0, 1]: pairwise, one compensated add */
        for (int w2 = KT / 2; w2 >= 1; w2 /= 2)
            for (int j = 0; j < w2; ++j) e[j] += e[j + w2];
        KAHAN(float16, q.s, q.sc, e[0]);
    }
    for (; pos + 16 <= C; pos += 16) { /* the last, partial tile */
        float16 v = VLDX(xr, pos);
        float16 e = exp(v - ms);
        batch_keep(eg, el, pos, e);
        KAHAN(float16, q.s, q.sc, e);
        if (smooth)
            smooth_add(&q, has_w ? vload16(0, w + pos) : (float16)1.0f, ms,
                       v, (int16)(-1));
    }
    if (pos < C) { /* the last vector, -inf past C */
        float16 e = exp(tail - ms); /* 0 past C */
        if (eg)
            store_first_f(eg + pos, e, C - pos);
        else if (el)
            vstore16(e, 0, el + pos);
        KAHAN(float16, q.s, q.sc, e);
        if (smooth) {
            int16 in = col_ids(pos) < (int16)(int)C;
            float16 a = has_w ? gload_f(w, pos, C, 0.0f) : (float16)1.0f;
            smooth_add(&q, select((float16)0.0f, a, in), ms, tail, in);
        }
    }
    return q;
}

/* The 16 rows' lane statistics (mv, sv - cv, row l in [l]) transposed and
 * merged: the row maxima *m and sums *S, a row per lane, and f[j] =
 * exp(lane j's max - m), 0 for a lane that saw no finite value. A row
 * without a finite value gets S = NaN, as in the reference. */
inline void batch_merge(float16 *mv, float16 *sv, float16 *cv, float16 *f,
                        float16 *m_out, float16 *S_out) {
    transpose16(mv);
    transpose16(sv);
    transpose16(cv);
    float16 m = mv[0];
    for (int j = 1; j < 16; ++j) m = nanmaxv(m, mv[j]);
    float16 S = (float16)0.0f, Sc = (float16)0.0f;
    for (int j = 0; j < 16; ++j) {
        f[j] = select(exp(mv[j] - m), (float16)0.0f,
                      mv[j] == (float16)(-INFINITY));
        KAHAN(float16, S, Sc, sv[j] * f[j]);
        KAHAN(float16, S, Sc, -cv[j] * f[j]);
    }
    *m_out = m;
    *S_out = select(S - Sc, (float16)NAN, m == (float16)(-INFINITY));
}
#endif /* VEC == 16 */
#endif /* CLXENT_KERNELS_BATCH_H */
