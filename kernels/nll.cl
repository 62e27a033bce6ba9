/* Targets and losses: the target check (range + the mean's denominator),
 * the scalar loss reduction, and PyTorch's NLLLoss over given
 * log-probabilities with its gradient. Built with X_T and TGT. */

/* One work-group, fixed order. Checks every class index against [0, C)
 * (ignore_index first), and writes into scr:
 *   [0,1] W = sum over valid in-range rows of w[y] (count if unweighted)
 *   [2,3] sum_c w[c] (C if unweighted)     [4] 1 if any row is valid
 * and the first bad row and its value into res[res_off + 0, 1] (-1 if none),
 * with res[2] = C and res[3] = ignore_index for the message.
 * mode 0: overwrite (synchronous check, res is scratch); 1: overwrite
 * (first deferred check); 2: keep an earlier deferred error. */
kernel void xent_check(const global IDX *y, ulong y_off, uint R, uint C,
                       long ii, const global float *w, ulong w_off,
                       int has_w, global float *scr, global long *res,
                       ulong res_off, int mode, local float *redf, local long *redl) {
    uint lid = get_local_id(0), L = get_local_size(0);
    float wh = 0.0f, wc = 0.0f, ah = 0.0f, ac = 0.0f;
    long bad_row = -1, bad_val = 0, nvalid = 0;
    for (uint r = lid; r < R; r += L) {
        long yv = (long)y[y_off + r];
        if (yv == ii) continue;
        ++nvalid;
        if (yv < 0 || yv >= (long)C) {
            if (bad_row < 0) {
                bad_row = r;
                bad_val = yv;
            }
            continue;
        }
        KAHAN(float, wh, wc, has_w ? w[w_off + yv] : 1.0f);
    }
    if (has_w)
        for (uint c = lid; c < C; c += L) KAHAN(float, ah, ac, w[w_off + c]);
    redf[4 * lid + 0] = wh;
    redf[4 * lid + 1] = -wc;
    redf[4 * lid + 2] = ah;
    redf[4 * lid + 3] = -ac;
    redl[3 * lid + 0] = bad_row;
    redl[3 * lid + 1] = bad_val;
    redl[3 * lid + 2] = nvalid;
    for (uint h = L >> 1; h > 0; h >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < h) {
            uint o = lid + h;
            for (int k = 0; k < 4; k += 2) {
                float s, e;
                TWO_SUM(float, redf[4 * lid + k], redf[4 * o + k], s, e);
                redf[4 * lid + k + 1] += redf[4 * o + k + 1] + e;
                redf[4 * lid + k] = s;
            }
            long br = redl[3 * o];
            if (br >= 0 && (redl[3 * lid] < 0 || br < redl[3 * lid])) {
                redl[3 * lid] = br;
                redl[3 * lid + 1] = redl[3 * o + 1];
            }
            redl[3 * lid + 2] += redl[3 * o + 2];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid != 0) return;
    scr[0] = redf[0];
    scr[1] = redf[1];
    if (has_w) {
        scr[2] = redf[2];
        scr[3] = redf[3];
    } else {
        scr[2] = (float)C;
        scr[3] = (float)((long)C - (long)scr[2]);
    }
    scr[4] = redl[2] > 0 ? 1.0f : 0.0f;
    res += res_off;
    if (mode == 2 && res[0] >= 0) return;
    res[0] = redl[0];
    res[1] = redl[1];
    res[2] = (long)C;
    res[3] = ii;
}

/* The reduced loss from n per-row values, one work-group, fixed order,
 * compensated. mean: divided by den (or W from scr when den_scr); when no
 * row is valid (any < 0: read scr[4]) and no normalizer was given, the
 * result is NaN, or 0 with zero_policy. */
kernel void loss_reduce(const global float *v, ulong v_off, uint n,
                        global float *out, ulong out_off, int mean, float den,
                        int den_scr, int any, int normalizer, int zero_policy,
                        const global float *scr, local float *red) {
    uint lid = get_local_id(0), L = get_local_size(0);
    float s = 0.0f, c = 0.0f;
    for (uint i = lid; i < n; i += L) KAHAN(float, s, c, v[v_off + i]);
    red[2 * lid] = s;
    red[2 * lid + 1] = -c;
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
    if (lid != 0) return;
    float total = fin(red[0], red[1]);
    if (mean) {
        int anyv = any >= 0 ? any : scr[4] != 0.0f;
        if (!anyv && !normalizer)
            total = zero_policy ? 0.0f : NAN;
        else
            total = total / (den_scr ? fin(scr[0], scr[1]) : den);
    }
    out[out_off] = total;
}

/* loss[r] = -w[y]*logp[r][y] (0 when ignored, NaN for a bad index, which
 * is never read). A row per item. */
kernel void nll_fwd(const global XS *x, ulong x_off, ulong x_ld, uint R,
                    uint C, const global IDX *y, ulong y_off, long ii,
                    const global float *w, ulong w_off, int has_w,
                    global float *loss, ulong loss_off) {
    ulong r = get_global_id(0);
    if (r >= R) return;
    long yv = (long)y[y_off + r];
    float l = 0.0f;
    if (yv != ii) {
        if (yv < 0 || yv >= (long)C)
            l = NAN;
        else
            l = -((has_w ? w[w_off + yv] : 1.0f) *
                  LD1X(x, x_off + r * x_ld + (ulong)yv));
    }
    loss[loss_off + r] = l;
}

/* grad[r][c] = -G*s*w[y] at c == y, 0 elsewhere (whole rows written; T
 * items per unit, P chunks of CH columns per row). */
kernel void nll_bwd(global XS *g, ulong g_off, ulong g_ld, uint R, uint C,
                    const global IDX *y, ulong y_off, long ii,
                    const global float *w, ulong w_off, int has_w, float G,
                    float den, int den_scr, const global float *scr,
                    const global float *gr, ulong gr_off, int has_gr, uint T,
                    uint P, uint CH) {
    unit_t u = unit_of(T, P, CH, C);
    if (u.row >= R) return;
    ulong r = u.row;
    long yv = (long)y[y_off + r];
    int ycol = -1;
    float gv = 0.0f;
    if (yv != ii && yv >= 0 && yv < (long)C) {
        ycol = (int)yv;
        float d = den_scr ? fin(scr[0], scr[1]) : den;
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
