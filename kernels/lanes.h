/* Lanes: VEC rows per item, a row per vector lane (CPUs, small C).
 * A row of a few classes leaves most of a SIMD vector idle, so the lanes
 * run across rows: item i holds rows [i*VEC, i*VEC + VEC) (nr of them;
 * lanes past nr repeat the last row), all C (<= LANES_CMAX) values of each
 * as column vectors xv[c], lane l = row r0 + l (one global read). */
#ifndef CLXENT_KERNELS_LANES_H
#define CLXENT_KERNELS_LANES_H
#include "common.h"

#define LANES_CMAX CLX_LANES_CMAX_LIMIT /* contract.h */

#if VEC > 1
#if VEC == 16
/* In-register 16 x 16 transpose: swap the off-diagonal d x d blocks of
 * every 2d x 2d block, d = 8, 4, 2, 1 (64 two-source shuffles). */
#define TR_STEP(d, mi, mj)                                                     \
    for (int i_ = 0; i_ < 16; ++i_)                                            \
        if ((i_ & (d)) == 0) {                                                 \
            float16 a_ = a[i_], b_ = a[i_ + (d)];                              \
            a[i_] = shuffle2(a_, b_, (uint16)mi);                              \
            a[i_ + (d)] = shuffle2(a_, b_, (uint16)mj);                        \
        }
inline void transpose16(float16 *a) {
    TR_STEP(8, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
            (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
    TR_STEP(4, (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
            (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
    TR_STEP(2, (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
            (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
    TR_STEP(1, (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
            (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
}

/* Stores the first n (1..16) lanes of v at p (f32 storage: a few vector
 * stores; f16/bf16: common.h's vstore16_tail). */
#define DEF_STORE_FIRST_F32(NAME, TYPE)                                        \
    inline void NAME(global TYPE *p, float16 v, uint n) {                      \
        if (n == 16) {                                                         \
            vstore16(v, 0, p);                                                 \
            return;                                                            \
        }                                                                      \
        float tmp[16];                                                         \
        vstore16(v, 0, tmp);                                                   \
        uint o = 0;                                                            \
        if (n & 8) {                                                           \
            vstore8(vload8(0, tmp), 0, p);                                     \
            o = 8;                                                             \
        }                                                                      \
        if (n & 4) {                                                           \
            vstore4(vload4(0, tmp + o), 0, p + o);                             \
            o += 4;                                                            \
        }                                                                      \
        if (n & 2) {                                                           \
            vstore2(vload2(0, tmp + o), 0, p + o);                             \
            o += 2;                                                            \
        }                                                                      \
        if (n & 1) p[o] = tmp[o];                                              \
    }
#define DEF_STORE_FIRST_GEN(NAME, TYPE, VST, T)                                \
    inline void NAME(global TYPE *p, float16 v, uint n) {                      \
        if (n == 16) {                                                         \
            VST(p, 0, v);                                                      \
            return;                                                            \
        }                                                                      \
        vstore16_tail(T, v, p, n);                                             \
    }
#if X_T == CLX_STORE_F32
DEF_STORE_FIRST_F32(store_first_x, XS)
#else
DEF_STORE_FIRST_GEN(store_first_x, XS, VSTX, X_T)
#endif
#if Y_T == CLX_STORE_F32
DEF_STORE_FIRST_F32(store_first_y, YS)
#else
DEF_STORE_FIRST_GEN(store_first_y, YS, VSTY, Y_T)
#endif
#endif /* VEC == 16 */

/* The C column vectors of rows [r0, r0 + nr) of x. */
inline void lanes_load(const global XS *x, ulong x_off, ulong x_ld, ulong r0,
                       uint nr, uint C, vf *xv) {
#if VEC == 16
    /* Each row read whole, in memory order (16 columns at a time: row l
     * of block cb into xv[cb + l]), then each block of 16 transposed in
     * place. A load may run past its row into the next row of this block
     * (never further). xv holds C rounded up to 16 vectors. */
    for (uint l = 0; l < 16; ++l) {
        uint lr = min(l, nr - 1);
        const global XS *xr = x + x_off + (r0 + lr) * x_ld;
        for (uint cb = 0; cb < C; cb += 16) {
            if (cb + 16 <= C || (lr + 1 < nr && cb + 16 <= x_ld + C))
                xv[cb + l] = VLDX(xr, cb);
            else
                xv[cb + l] = gload_x(xr, cb, C, 0.0f);
        }
    }
    for (uint cb = 0; cb < C; cb += 16) transpose16(xv + cb);
#else
    float buf[VEC];
    for (uint c = 0; c < C; ++c) {
        for (uint l = 0; l < VEC; ++l)
            buf[l] = LD1X(x, x_off + (r0 + min(l, nr - 1)) * x_ld + c);
        xv[c] = VLOADP(buf);
    }
#endif
}

/* Stores the C column vectors xv[c] as rows [r0, r0 + nr) of a matrix
 * (only the nr rows' C columns are written). */
#if VEC == 16
/* (VEC 16: each block of xv transposed back in place, the columns past C
 * as lanes_load left them, then each row written in memory order.) */
#define DEF_LANES_STORE(NAME, TYPE, FIRST, ST1)                                \
    inline void NAME(global TYPE *g, ulong g_off, ulong g_ld, ulong r0,        \
                     uint nr, uint C, vf *xv) {                                \
        for (uint cb = 0; cb < C; cb += 16) transpose16(xv + cb);              \
        for (uint l = 0; l < nr; ++l)                                          \
            for (uint cb = 0; cb < C; cb += 16)                                \
                FIRST(g + g_off + (r0 + l) * g_ld + cb, xv[cb + l],            \
                      min(16u, C - cb));                                       \
    }
#else
#define DEF_LANES_STORE(NAME, TYPE, FIRST, ST1)                                \
    inline void NAME(global TYPE *g, ulong g_off, ulong g_ld, ulong r0,        \
                     uint nr, uint C, vf *xv) {                                \
        float buf[VEC];                                                        \
        for (uint c = 0; c < C; ++c) {                                         \
            VSTOREP(xv[c], buf);                                               \
            for (uint i = 0; i < nr; ++i)                                      \
                ST1(g, g_off + (r0 + i) * g_ld + c, buf[i]);                   \
        }                                                                      \
    }
#endif
DEF_LANES_STORE(lanes_store_x, XS, store_first_x, ST1X)
DEF_LANES_STORE(lanes_store_y, YS, store_first_y, ST1Y)

/* Per-row f32 values of the block (lanes past nr repeat the last row). */
inline vf lanes_vload(const global float *p, ulong off, uint nr) {
    if (nr == VEC) return VLD_0(p, off);
    float buf[VEC];
    for (uint l = 0; l < VEC; ++l) buf[l] = p[off + min(l, nr - 1)];
    return VLOADP(buf);
}

/* Stores the first nr lanes of v at p + off. */
inline void lanes_vstore(global float *p, ulong off, uint nr, vf v) {
    if (nr == VEC) {
        VST_0(p, off, v);
        return;
    }
    float buf[VEC];
    VSTOREP(v, buf);
    for (uint i = 0; i < nr; ++i) p[off + i] = buf[i];
}
#endif /* VEC > 1 */
#endif /* CLXENT_KERNELS_LANES_H */
