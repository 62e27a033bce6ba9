/* The cross-entropy kernels with a row per vector lane (xent_cpu.cl's
 * lanes kernels, xent_batch.cl): rows [r0, r0 + nr) as lanes (lanes past
 * nr repeat the last row), their targets and losses as vectors. Class
 * indices only. */
#ifndef CLXENT_KERNELS_XENT_LANES_H
#define CLXENT_KERNELS_XENT_LANES_H
#include "xent.h"
#include "lanes.h"

#if TGT != CLX_TGT_PROBS && VEC > 1
typedef struct lane_rows {
    vi ycol;  /* target column, -1 when none */
    vi state; /* 0 live, 1 ignored, 2 bad */
    vf wy;    /* weight of the target class */
    vf g;     /* the row's gradient scale (row_scale), 0 unless live */
} lane_rows;

inline lane_rows lanes_targets(XENT_PARAMS, ulong r0, uint nr) {
#if VEC == 16
    float buf[VEC];
    /* targets as vectors: 0 live, 1 ignored, 2 bad; x_y is picked from
     * the column vectors below */
    long16 yl;
    if (nr == 16) {
        yl = convert_long16(vload16(0, y + y_off + r0));
    } else {
        long tl[16];
        for (uint l = 0; l < 16; ++l) tl[l] = (long)y[y_off + r0 + min(l, nr - 1)];
        yl = vload16(0, tl);
    }
    long16 validl = yl != (long16)ii;
    long16 badl = validl & ((yl < (long16)0) | (yl >= (long16)(long)C));
    int16 valid = convert_int16(validl), bad = convert_int16(badl);
    int16 live = valid & ~bad;
    vi ycol = select((int16)(-1), convert_int16(yl), live);
    vi state = select((int16)1, select((int16)0, (int16)2, bad), valid);
    vf wy = (vf)1.0f;
    if (has_w) {
        int tc[16];
        vstore16(ycol, 0, tc);
        for (uint l = 0; l < 16; ++l) buf[l] = tc[l] >= 0 ? w[w_off + tc[l]] : 1.0f;
        wy = vload16(0, buf);
    }
    vf g = (vf)row_scale(G, den, den_scr, scr, gr, gr_off, 0, 0);
    if (has_gr) g *= lanes_vload(gr, gr_off + r0, nr);
    g = select((vf)0.0f, g, live);
#else
    float bw[VEC], bg[VEC];
    int bycol[VEC], bstate[VEC];
    for (uint l = 0; l < VEC; ++l) {
        ulong r = r0 + min(l, nr - 1);
        rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
        bycol[l] = ri.ycol;
        bw[l] = ri.wy;
        /* 0 live, 1 ignored, 2 bad */
        bstate[l] = !ri.valid ? 1 : ri.bad ? 2 : 0;
        bg[l] = ri.valid && !ri.bad
                    ? row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r)
                    : 0.0f;
    }
    vf wy = VLOADP(bw), g = VLOADP(bg);
    vi ycol = CAT(vload, VEC)(0, bycol), state = CAT(vload, VEC)(0, bstate);
#endif
    lane_rows rows;
    rows.ycol = ycol;
    rows.state = state;
    rows.wy = wy;
    rows.g = g;
    return rows;
}

/* The rows' losses from m, log S and x_y (A and B: the smoothing sums,
 * when eps > 0): 0 for ignored rows, NaN for bad ones. */
inline vf lanes_loss(const lane_rows *rows, vf m, vf lS, vf xy, float A, vf B,
                     float eps, float zeta, uint C) {
    vf lsev = m + lS;
    vf l = (1.0f - eps) * -(rows->wy * ((xy - m) - lS));
    if (eps > 0.0f) l += EPS_SHARE(eps, A * lS + B, 1.0f / (float)C);
    if (zeta != 0.0f) l += zeta * lsev * lsev;
    l = select(l, (vf)0.0f, rows->state == (vi)1);
    return select(l, (vf)NAN, rows->state == (vi)2);
}
#endif
#endif /* CLXENT_KERNELS_XENT_LANES_H */
