/* Cross-entropy forward, backward and fused forward + backward
 * (SEMANTICS.md). Targets are class indices (TGT 0/1) or probabilities
 * (TGT 2, same storage as the logits). The loss of a valid row is
 *   index: (1-eps)*w_y*((m - x_y) + log S) + (eps/C)*(A*log S + B)
 *   probs: A*log S + B
 * plus zeta*lse^2, with m, S, A, B from the online state in common.h, and
 * the gradient p*k - (target terms) with p = exp((x - m) - log S).
 *
 * Strategies (host side picks, backend_opencl_xent.c):
 *   xent_rows_*: T items per row, L/T rows per group, one local reduction
 *                (T = 1: a row per item, no barrier).
 *   xent_part + xent_split_out: rows split in P chunks of CH columns, one
 *                group per chunk; partial states merged in fixed order by
 *                every group of the row, then the chunk's gradient.
 *   xent_bwd:    backward from the saved lse (index targets: no reduction).
 * Per-row losses go to `loss` (the output for reduction none, else
 * scratch for loss_reduce in nll.cl). `scr` holds what xent_check found:
 * [0,1] W (mean denominator), [2,3] sum of the weights. */

#define AM_B (TGT == 2 ? AM_PROBS : AM_SMOOTH)

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
#if TGT != 2
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

/* The parameters every cross-entropy kernel shares. guard: a synchronous
 * target check precedes (common.h, sync_bad): every kernel starts with
 * NO_ROWS_IF_BAD, which leaves it no rows to read or write when that
 * check found a bad target (its items still reach every barrier). */
#define NO_ROWS_IF_BAD                                                         \
    if (sync_bad(scr, guard)) R = 0
#define XENT_PARAMS                                                            \
    const global XS *x, ulong x_off, ulong x_ld, uint R, uint C,               \
        const global IDX *y, ulong y_off, long ii, const global XS *t,         \
        ulong t_off, ulong t_ld, const global float *w, ulong w_off,           \
        int has_w, float eps, float zeta, float G, float den, int den_scr,     \
        const global float *scr, const global float *gr, ulong gr_off,         \
        int has_gr, int guard
#define XENT_ARGS                                                              \
    x, x_off, x_ld, R, C, y, y_off, ii, t, t_off, t_ld, w, w_off, has_w, eps,  \
        zeta, G, den, den_scr, scr, gr, gr_off, has_gr, guard

/* G * s for row r (the mean's s = 1/W read from scratch when den_scr). */
inline float row_scale(float G, float den, int den_scr,
                       const global float *scr, const global float *gr,
                       ulong gr_off, int has_gr, ulong r) {
    float d = den_scr ? fin(scr[0], scr[1]) : den;
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
#if TGT == 2
    l = fin(st.ah, st.al) * lS + fin(st.bh, st.bl);
#else
    l = (1.0f - eps) * -(ri.wy * ((xy - st.m) - lS));
    if (eps > 0.0f)
        l += eps / (float)C * (fin(st.ah, st.al) * lS + fin(st.bh, st.bl));
#endif
    if (zeta != 0.0f) l += zeta * lse * lse;
    return l;
}

/* Writes the gradient of columns [cb, ce) of one row, this item's share.
 * p = exp((x - m) - lS); d = p*k1 - [c == y]*tw - (eps/C)*w_c (index) or
 * p*k1 - w_c*((1-eps)*t_c + eps/C) (probabilities); the row's store gets
 * g*d, formed in f32 before rounding. zero: only zeros, x is not read.
 * g_row may be x_row (in place): each element is read before it is
 * written, by the same item. */
inline void grad_range(global XS *g_row, const global XS *xr,
                       const global XS *tr, const global float *w, int has_w,
                       uint cb, uint ce, uint lane, uint T, int zero, float m,
                       float lS, float g, float k1, float tw, int ycol,
                       float ome, float epc, int smooth) {
    const uint span = T * KT * VEC;
    for (uint c0 = cb; c0 < ce; c0 += span) {
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + lane) * VEC;
            if (pos >= ce) break;
            vf out = (vf)0.0f;
            if (!zero) {
                vf v = gload_x(xr, pos, ce, 0.0f);
                vf p = exp((v - m) - lS);
                vf d = p * k1;
#if TGT == 2
                vf wv = has_w ? gload_f(w, pos, ce, 0.0f) : (vf)1.0f;
                d -= wv * (ome * gload_x(tr, pos, ce, 0.0f) + epc);
#else
                d = select(d, d - tw, col_ids(pos) == (vi)ycol);
                if (smooth)
                    d -= epc * (has_w ? gload_f(w, pos, ce, 0.0f) : (vf)1.0f);
#endif
                out = g * d;
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
#if TGT == 2
    k = asum;
#else
    k = (1.0f - eps) * ri.wy;
    if (eps > 0.0f) k += eps / (float)C * asum;
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
               1.0f - eps, eps / (float)C, eps > 0.0f);
}

/* The state of this item's share of columns [cb, ce) of row r. */
inline st_t row_acc(XENT_PARAMS, ulong r, uint cb, uint ce, uint lane,
                    uint T, int live, int smooth) {
    acc_t q;
    acc_init(&q, -INFINITY);
    if (live) {
        const global XS *xr = x + x_off + r * x_ld;
        const global XS *tr = t + t_off + r * t_ld;
        float ome = 1.0f - eps, epc = eps / (float)C;
        if (smooth)
            acc_range(&q, xr, tr, w + w_off, has_w, ome, epc, cb, ce, lane, T,
                      AM_B);
        else
            acc_range(&q, xr, tr, w + w_off, has_w, ome, epc, cb, ce, lane, T,
                      AM_STATS);
    }
    return acc_final(&q);
}

/* T items per row, get_local_size(0)/T rows per group. */
inline void xent_rows_body(XENT_PARAMS, global float *loss, ulong loss_off,
                           global float *lse, ulong lse_off, int has_lse,
                           global XS *gm, ulong g_off, ulong g_ld, uint T,
                           local st_t *red, const int do_grad,
                           const int reduce) {
    unit_t u = unit_of(T, 1, C, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = active && ri.valid && !ri.bad;
    int smooth = TGT == 2 || eps > 0.0f;
    /* x_y before any barrier: in place, the gradient overwrites it. */
    float xy = 0.0f;
    if (TGT != 2 && live && u.lane == 0)
        xy = LD1X(x + x_off + r * x_ld, ri.ycol);
    /* ignored rows still get their lse when it is asked for */
    st_t st = row_acc(XENT_ARGS, r, 0, C, u.lane, T,
                      live || (active && has_lse), smooth);
    if (reduce) /* T == 1 kernels have no barrier at all (PoCL keeps
                   values in registers then) */
        st = seg_reduce(red, st, get_local_id(0), u.lane, T,
                        smooth ? AM_B : AM_STATS);
    if (!active) return;
    row_finish(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm, g_off,
               g_ld, st, xy, ri, r, 0, C, u.lane, T, u.lane == 0, do_grad);
}

kernel void xent_rows_fused(XENT_PARAMS, global float *loss, ulong loss_off,
                            global float *lse, ulong lse_off, int has_lse,
                            global XS *gm, ulong g_off, ulong g_ld, uint T,
                            local st_t *red) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                   g_off, g_ld, T, red, 1, 1);
}

/* The same with one item per row (T must be 1). */
kernel void xent_rows1_fused(XENT_PARAMS, global float *loss, ulong loss_off,
                             global float *lse, ulong lse_off, int has_lse,
                             global XS *gm, ulong g_off, ulong g_ld, uint T,
                             local st_t *red) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm,
                   g_off, g_ld, 1, red, 1, 0);
}

kernel void xent_rows_fwd(XENT_PARAMS, global float *loss, ulong loss_off,
                          global float *lse, ulong lse_off, int has_lse,
                          uint T, local st_t *red) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                   (global XS *)0, 0, 0, T, red, 0, 1);
}

kernel void xent_rows1_fwd(XENT_PARAMS, global float *loss, ulong loss_off,
                           global float *lse, ulong lse_off, int has_lse,
                           uint T, local st_t *red) {
    NO_ROWS_IF_BAD;
    xent_rows_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                   (global XS *)0, 0, 0, 1, red, 0, 0);
}

/* Split rows, pass 1: the state of chunk k of row r (one group each) into
 * part[(r*P + k)*8 + 0..6]; slot 7 holds x_y (chunk 0; read here, before
 * any gradient is written). aonly: only A (backward with probabilities). */
kernel void xent_part(XENT_PARAMS, uint P, uint CH, global float *part,
                      ulong part_off, int aonly, local st_t *red) {
    NO_ROWS_IF_BAD;
    uint L = get_local_size(0);
    unit_t u = unit_of(L, P, CH, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = active && ri.valid && !ri.bad;
    int smooth = TGT == 2 || eps > 0.0f;
    st_t st;
    if (aonly) {
        acc_t q;
        acc_init(&q, 0.0f);
        if (live)
            acc_range(&q, x + x_off + r * x_ld, t + t_off + r * t_ld,
                      w + w_off, has_w, 1.0f - eps, eps / (float)C, u.cb,
                      u.ce, u.lane, L, AM_AONLY);
        st = acc_final(&q);
    } else {
        /* every row: an ignored row still has an lse */
        st = row_acc(XENT_ARGS, r, u.cb, u.ce, u.lane, L, active, smooth);
    }
    st = seg_reduce(red, st, get_local_id(0), u.lane, L,
                    aonly ? AM_AONLY : smooth ? AM_B : AM_STATS);
    if (!active || u.lane != 0) return;
    global float *o = part + part_off + (r * P + u.chunk) * 8;
    o[0] = st.m;
    o[1] = st.sh;
    o[2] = st.sl;
    o[3] = st.bh;
    o[4] = st.bl;
    o[5] = st.ah;
    o[6] = st.al;
    float xy = 0.0f;
    if (TGT != 2 && live && u.chunk == 0)
        xy = LD1X(x + x_off + r * x_ld, ri.ycol);
    o[7] = xy;
}

/* The P partial states of row r merged in fixed order (identical in every
 * group of the row). Needs P <= get_local_size(0), a power of two. */
inline st_t merge_parts(const global float *part, ulong part_off, ulong r,
                        uint P, uint lid, local st_t *red, int am, float m0) {
    st_t st = st_empty(m0);
    if (lid < P) {
        const global float *o = part + part_off + (r * P + lid) * 8;
        st.m = o[0];
        st.sh = o[1];
        st.sl = o[2];
        st.bh = o[3];
        st.bl = o[4];
        st.ah = o[5];
        st.al = o[6];
    }
    return seg_reduce(red, st, lid, lid, get_local_size(0), am);
}

/* Split rows, pass 2: do_grad: one group per chunk merges the row's
 * states and writes the chunk's gradient (chunk 0 also the loss and lse);
 * else one group per row writes the loss and lse. */
kernel void xent_split_out(XENT_PARAMS, global float *loss, ulong loss_off,
                           global float *lse, ulong lse_off, int has_lse,
                           global XS *gm, ulong g_off, ulong g_ld, uint P,
                           uint CH, const global float *part, ulong part_off,
                           int do_grad, local st_t *red) {
    NO_ROWS_IF_BAD;
    uint L = get_local_size(0), lid = get_local_id(0);
    unit_t u = do_grad ? unit_of(L, P, CH, C) : unit_of(L, 1, C, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int smooth = TGT == 2 || eps > 0.0f;
    st_t st = merge_parts(part, part_off, r, active ? P : 0, lid, red,
                          smooth ? AM_B : AM_STATS, -INFINITY);
    if (!active) return;
    float xy = part[part_off + r * P * 8 + 7];
    int owner = lid == 0 && u.chunk == 0;
    row_finish(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse, gm, g_off,
               g_ld, st, xy, ri, r, u.cb, u.ce, u.lane, L, owner, do_grad);
}

/* Backward from the saved lse: p = exp(x - lse). Index targets need no
 * reduction (units of T items over P chunks); probabilities need A per
 * row: accumulated here over t (P == 1) or merged from xent_part's
 * A-only states (use_part). */
inline void xent_bwd_body(XENT_PARAMS, const global float *lse_in,
                          ulong lse_off, global XS *gm, ulong g_off,
                          ulong g_ld, uint T, uint P, uint CH,
                          const global float *part, ulong part_off,
                          int use_part, local st_t *red, const int reduce) {
    unit_t u = unit_of(T, P, CH, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = active && ri.valid && !ri.bad;
    float asum;
#if TGT == 2
    /* use_part: the P states from xent_part (T == L, a group per chunk) */
    acc_t q;
    acc_init(&q, 0.0f);
    if (live && !use_part)
        acc_range(&q, x + x_off + r * x_ld, t + t_off + r * t_ld, w + w_off,
                  has_w, 1.0f - eps, eps / (float)C, 0, C, u.lane, T,
                  AM_AONLY);
    st_t st = acc_final(&q);
    if (use_part) {
        st = st_empty(0.0f);
        if (active && u.lane < P) {
            const global float *o = part + part_off + (r * P + u.lane) * 8;
            st.ah = o[5];
            st.al = o[6];
        }
    }
    if (reduce) st = seg_reduce(red, st, get_local_id(0), u.lane, T, AM_AONLY);
    asum = fin(st.ah, st.al);
#else
    asum = fin(scr[2], scr[3]);
#endif
    if (!active) return;
    float lse_v = lse_in[lse_off + r];
    float g = live ? row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r)
                   : 0.0f;
    float k1 = grad_k1(ri, eps, zeta, C, asum, lse_v);
    grad_range(gm + g_off + r * g_ld, x + x_off + r * x_ld,
               t + t_off + r * t_ld, w + w_off, has_w, u.cb, u.ce, u.lane, T,
               !live, lse_v, 0.0f, g, k1, (1.0f - eps) * ri.wy, ri.ycol,
               1.0f - eps, eps / (float)C, eps > 0.0f);
}

#define XENT_BWD_PARAMS                                                        \
    XENT_PARAMS, const global float *lse_in, ulong lse_off, global XS *gm,     \
        ulong g_off, ulong g_ld, uint T, uint P, uint CH,                      \
        const global float *part, ulong part_off, int use_part,                \
        local st_t *red
#define XENT_BWD_ARGS                                                          \
    XENT_ARGS, lse_in, lse_off, gm, g_off, g_ld, T, P, CH, part, part_off,     \
        use_part, red

kernel void xent_bwd(XENT_BWD_PARAMS) {
    NO_ROWS_IF_BAD;
    xent_bwd_body(XENT_BWD_ARGS, 1);
}

/* Probabilities with one item per row and no split: no barrier. */
kernel void xent_bwd1(XENT_BWD_PARAMS) {
    NO_ROWS_IF_BAD;
    xent_bwd_body(XENT_BWD_ARGS, 0);
}

/* ---- small C on CPUs: VEC rows per item, one row per vector lane ----
 * (common.h, lanes_load): all C values of each row in private vectors
 * (one global read), the exps kept for the gradient (one exp per
 * element). Class indices only (the host uses the row kernels for
 * probabilities). mode: 0 forward, 1 fused, 2 backward from the saved
 * lse (lse_in; p = exp(x - lse), no reduction). */
#define LANES_FWD 0
#define LANES_FUSED 1
#define LANES_BWD 2

inline void xent_lanes_body(XENT_PARAMS, global float *loss, ulong loss_off,
                            global float *lse, ulong lse_off, int has_lse,
                            const global float *lse_in, ulong lse_in_off,
                            global XS *gm, ulong g_off, ulong g_ld,
                            const int mode) {
#if TGT != 2 && VEC > 1
    ulong r0 = get_global_id(0) * VEC;
    if (r0 >= R) return;
    uint nr = (uint)min((ulong)VEC, R - r0);
    float buf[VEC];
#if VEC == 16
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
    vf xv[LANES_CMAX];
    /* the whole block is read before anything is written (in place) */
    lanes_load(x, x_off, x_ld, r0, nr, C, xv);
    int smooth = eps > 0.0f;
    float epc = eps / (float)C;
    vf tw = (1.0f - eps) * wy;
    vf k1 = tw;
    if (mode == LANES_BWD) {
        vf lsev = lanes_vload(lse_in, lse_in_off + r0, nr);
        if (smooth) k1 += epc * fin(scr[2], scr[3]);
        if (zeta != 0.0f) k1 += 2.0f * zeta * lsev;
        for (uint c = 0; c < C; ++c) {
            vf d = exp(xv[c] - lsev) * k1;
            d = select(d, d - tw, ycol == (vi)(int)c);
            if (smooth) d -= epc * (has_w ? w[w_off + c] : 1.0f);
            /* ignored and bad rows: exactly 0, even for NaN logits */
            xv[c] = select(g * d, (vf)0.0f, state != (vi)0);
        }
        lanes_store_x(gm, g_off, g_ld, r0, nr, C, xv);
        return;
    }
    vf m = (vf)(-INFINITY), xy = (vf)0.0f;
    for (uint c = 0; c < C; ++c) {
        m = nanmaxv(m, xv[c]);
        xy = select(xy, xv[c], ycol == (vi)(int)c);
    }
    vf s = (vf)0.0f, sc = (vf)0.0f, b = (vf)0.0f, bc = (vf)0.0f;
    float a = 0.0f, ac = 0.0f;
    for (uint c = 0; c < C; ++c) {
        vf e = exp(xv[c] - m);
        KAHAN(vf, s, sc, e);
        if (smooth) {
            float wc = has_w ? w[w_off + c] : 1.0f;
            KAHAN_INF(vf, b, bc, wc * (m - xv[c]));
            KAHAN(float, a, ac, wc);
        }
        xv[c] = e;
    }
    /* a row without a finite value: S = NaN as in the reference */
    vf S = select(s - sc, (vf)NAN, m == (vf)(-INFINITY));
    vf lS = log(S);
    vf lsev = m + lS;
    float A = a - ac;
    vf B = select(b - bc, b, isinf(b));
    vf l = (1.0f - eps) * -(wy * ((xy - m) - lS));
    if (smooth) l += epc * (A * lS + B);
    if (zeta != 0.0f) l += zeta * lsev * lsev;
    l = select(l, (vf)0.0f, state == (vi)1);
    l = select(l, (vf)NAN, state == (vi)2);
    lanes_vstore(loss, loss_off + r0, nr, l);
    if (has_lse) lanes_vstore(lse, lse_off + r0, nr, lsev);
    if (mode != LANES_FUSED) return;
    if (smooth) k1 += epc * A;
    if (zeta != 0.0f) k1 += 2.0f * zeta * lsev;
    vf inv = 1.0f / S;
    for (uint c = 0; c < C; ++c) {
        vf d = (xv[c] * inv) * k1;
        d = select(d, d - tw, ycol == (vi)(int)c);
        if (smooth) d -= epc * (has_w ? w[w_off + c] : 1.0f);
        /* ignored and bad rows: exactly 0, even for NaN logits */
        xv[c] = select(g * d, (vf)0.0f, state != (vi)0);
    }
    lanes_store_x(gm, g_off, g_ld, r0, nr, C, xv);
#endif
}

kernel void xent_lanes_fused(XENT_PARAMS, global float *loss, ulong loss_off,
                             global float *lse, ulong lse_off, int has_lse,
                             global XS *gm, ulong g_off, ulong g_ld) {
    NO_ROWS_IF_BAD;
    xent_lanes_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                    (const global float *)0, 0, gm, g_off, g_ld,
                    LANES_FUSED);
}

kernel void xent_lanes_fwd(XENT_PARAMS, global float *loss, ulong loss_off,
                           global float *lse, ulong lse_off, int has_lse) {
    NO_ROWS_IF_BAD;
    xent_lanes_body(XENT_ARGS, loss, loss_off, lse, lse_off, has_lse,
                    (const global float *)0, 0, (global XS *)0, 0, 0,
                    LANES_FWD);
}

/* Backward from the saved lse (index targets). */
kernel void xent_lanes_bwd(XENT_PARAMS, const global float *lse_in,
                           ulong lse_in_off, global XS *gm, ulong g_off,
                           ulong g_ld) {
    NO_ROWS_IF_BAD;
    xent_lanes_body(XENT_ARGS, (global float *)0, 0, (global float *)0, 0, 0,
                    lse_in, lse_in_off, gm, g_off, g_ld, LANES_BWD);
}

/* ---- fused, one item per row, exps cached on chip (CPUs) ----
 * Three sweeps of one row: the max (x from memory), the exps (x again,
 * from cache: the row was just read), kept in local memory with their
 * compensated sum, then the gradient from the cached exps: one exp per
 * element instead of two, x read twice, the gradient written once.
 * cache holds get_local_size(0) * cstride floats. */
kernel void xent_rows1c_fused(XENT_PARAMS, global float *loss, ulong loss_off,
                              global float *lse, ulong lse_off, int has_lse,
                              global XS *gm, ulong g_off, ulong g_ld,
                              local float *cache, uint cstride) {
    NO_ROWS_IF_BAD;
    uint lid = get_local_id(0);
    ulong r = get_global_id(0);
    if (r >= R) return;
    local float *cr = cache + (ulong)lid * cstride;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = ri.valid && !ri.bad;
    int smooth = TGT == 2 || eps > 0.0f;
    const global XS *xr = x + x_off + r * x_ld;
    const global XS *tr = t + t_off + r * t_ld;
    const global float *wp = w + w_off;
    float ome = 1.0f - eps, epc = eps / (float)C;
    float xy = TGT != 2 && live ? LD1X(xr, ri.ycol) : 0.0f;
    vf mv = (vf)(-INFINITY);
    for (uint pos = 0; pos < C; pos += VEC)
        mv = nanmaxv(mv, gload_x(xr, pos, C, -INFINITY));
    float m = hmax(mv);
    vf s = (vf)0.0f, sc = (vf)0.0f, b = (vf)0.0f, bc = (vf)0.0f;
    vf a = (vf)0.0f, ac = (vf)0.0f;
    for (uint pos = 0; pos < C; pos += VEC) {
        vi act = col_ids(pos) < (vi)(int)C;
        vf v = gload_x(xr, pos, C, -INFINITY);
        vf e = select((vf)0.0f, exp(v - m), act);
        VSTOREP(e, cr + pos); /* cstride >= C rounded up to VEC */
        KAHAN(vf, s, sc, e);
        if (smooth) {
            vf av = select((vf)0.0f,
                           tile_a(TGT == 2 ? AM_PROBS : AM_SMOOTH, wp, has_w,
                                  tr, pos, C, ome, epc),
                           act);
            KAHAN_INF(vf, b, bc, select((vf)0.0f, av * (m - v), act));
            KAHAN_INF(vf, a, ac, av);
        }
    }
    st_t st;
    st.m = m;
    hsum2(s, -sc, &st.sh, &st.sl);
    hsum2(b, -bc, &st.bh, &st.bl);
    hsum2(a, -ac, &st.ah, &st.al);
    float lse_v;
    float l = row_loss(st, xy, ri, eps, zeta, C, &lse_v);
    loss[loss_off + r] = l;
    if (has_lse) lse[lse_off + r] = lse_v;
    global XS *g_row = gm + g_off + r * g_ld;
    if (!live) {
        for (uint pos = 0; pos < C; pos += VEC)
            gstore_x(g_row, pos, C, (vf)0.0f);
        return;
    }
    float g = row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r);
    float k1 = grad_k1(ri, eps, zeta, C, fin(st.ah, st.al), lse_v);
    float inv = 1.0f / st_sum(st);
    float tw = ome * ri.wy;
    for (uint pos = 0; pos < C; pos += VEC) {
        vf p = VLOADP(cr + pos) * inv;
        vf d = p * k1;
#if TGT == 2
        vf wv = has_w ? gload_f(wp, pos, C, 0.0f) : (vf)1.0f;
        d -= wv * (ome * gload_x(tr, pos, C, 0.0f) + epc);
#else
        d = select(d, d - tw, col_ids(pos) == (vi)ri.ycol);
        if (smooth) d -= epc * (has_w ? gload_f(wp, pos, C, 0.0f) : (vf)1.0f);
#endif
        gstore_x(g_row, pos, C, g * d);
    }
}

/* ---- fused, one group per row, the row held in registers (GPUs) ----
 * Item lid holds columns lid + k*L, k < CK (CK a build option, the loop
 * fully unrolled so the values stay in registers): x is read once from
 * global memory. Two passes over the registers: the row max (group
 * reduction), then exp(x - m) with its compensated sum (and the smoothing
 * or probability terms), the exps kept for the gradient. Needs
 * C <= CK * get_local_size(0). Scalar code: any VEC build works. */
#ifndef CK
#define CK 32
#endif

kernel void xent_regs_fused(XENT_PARAMS, global float *loss, ulong loss_off,
                            global float *lse, ulong lse_off, int has_lse,
                            global XS *gm, ulong g_off, ulong g_ld,
                            local st_t *red) {
    NO_ROWS_IF_BAD;
    uint lid = get_local_id(0), L = get_local_size(0);
    ulong r = get_group_id(0);
    int on = r < R; /* a group per row: all of them, unless guarded */
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = on && ri.valid && !ri.bad;
    int smooth = TGT == 2 || eps > 0.0f;
    /* ignored rows are read only when their lse is asked for */
    int rd = live || (on && has_lse);
    const global XS *xr = x + x_off + r * x_ld;
    const global XS *tr = t + t_off + r * t_ld;
    const global float *wp = w + w_off;
    float ome = 1.0f - eps, epc = eps / (float)C;
    /* x_y before any barrier: in place, the gradient overwrites it */
    float xy = 0.0f;
    if (TGT != 2 && live && lid == 0) xy = LD1X(xr, ri.ycol);
    float v[CK];
    float mloc = -INFINITY;
#pragma unroll
    for (int k = 0; k < CK; ++k) {
        uint c = lid + (uint)k * L;
        v[k] = rd && c < C ? LD1X(xr, c) : -INFINITY;
        mloc = nanmax1(mloc, v[k]);
    }
    st_t st = seg_reduce(red, st_empty(mloc), lid, lid, L, AM_MAX);
    float m = st.m;
    float s = 0.0f, sc = 0.0f, b = 0.0f, bc = 0.0f, a = 0.0f, ac = 0.0f;
#pragma unroll
    for (int k = 0; k < CK; ++k) {
        uint c = lid + (uint)k * L;
        float e = 0.0f;
        if (rd && c < C) {
            float av = 0.0f;
            if (smooth) {
                av = has_w ? wp[c] : 1.0f;
                if (TGT == 2) av *= ome * LD1X(tr, c) + epc;
            }
            if (m == -INFINITY) {
                /* only -inf: exp terms 0, a_c*(m - x_c) = a_c*inf */
                if (smooth) {
                    b += av * INFINITY;
                    KAHAN_INF(float, a, ac, av);
                }
            } else {
                e = exp(v[k] - m);
                KAHAN(float, s, sc, e);
                if (smooth) {
                    KAHAN_INF(float, b, bc, av * (m - v[k]));
                    KAHAN_INF(float, a, ac, av);
                }
            }
        }
        v[k] = e;
    }
    st.m = m;
    st.sh = s;
    st.sl = -sc;
    st.bh = b;
    st.bl = -bc;
    st.ah = a;
    st.al = -ac;
    /* equal maxima: the merges add without rescaling */
    st = seg_reduce(red, st, lid, lid, L, smooth ? AM_B : AM_STATS);
    float lse_v;
    float l = row_loss(st, xy, ri, eps, zeta, C, &lse_v);
    if (lid == 0 && on) {
        loss[loss_off + r] = l;
        if (has_lse) lse[lse_off + r] = lse_v;
    }
    global XS *g_row = gm + g_off + r * g_ld;
    float g = live ? row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r)
                   : 0.0f;
    float k1 = grad_k1(ri, eps, zeta, C, fin(st.ah, st.al), lse_v);
    float inv = 1.0f / st_sum(st);
    float tw = ome * ri.wy;
#pragma unroll
    for (int k = 0; k < CK; ++k) {
        uint c = lid + (uint)k * L;
        if (c < C && on) {
            float out = 0.0f;
            if (live) {
                float d = (v[k] * inv) * k1;
#if TGT == 2
                float wv = has_w ? wp[c] : 1.0f;
                d -= wv * (ome * LD1X(tr, c) + epc);
#else
                if ((int)c == ri.ycol) d -= tw;
                if (smooth) d -= epc * (has_w ? wp[c] : 1.0f);
#endif
                out = g * d;
            }
            ST1X(g_row, c, out);
        }
    }
}

/* ---- fused, one item per row, the exps cached in the gradient (CPUs) ----
 * One sweep over the row from memory, in blocks of bl columns (a multiple
 * of KT * VEC, a few KB: L1): the block's lane-wise max, the running
 * maximum raised once per block (bm[b] keeps it), then the block's
 * exp(x - m) from L1, stored where the gradient goes, with a tile-pairwise
 * compensated sum. Then the gradient from the stored exps, rescaled per
 * block by exp(bm[b] - m): one exp per element, x read once, the gradient
 * written twice (the second time from cache). f32 logits and gradient only
 * (a 16-bit cache would round p twice); at most GC_BLOCKS blocks (the host
 * picks bl). In place: the item reads each element (x) before it writes it
 * (the exp), and reads x there no more. */
#define GC_BLOCKS 1024

#if X_T == 0 && VEC > 1
/* The exps of columns [cb, ce) of one row into e_row, summed into q (with
 * the smoothing or probability terms when AM_HAS_B(am)). */
inline void gcache_block(acc_t *q, const global float *xr,
                         const global XS *tr, const global float *w,
                         int has_w, float ome, float epc, global float *e_row,
                         uint cb, uint ce, const int am) {
    float m = q->m;
    uint pos = cb;
    if (m == -INFINITY) {
        /* only -inf so far: the exps are 0; a_c*(m - x_c) = a_c*inf */
        for (; pos < ce; pos += VEC) {
            gstore_x(e_row, pos, ce, (vf)0.0f);
            if (AM_HAS_B(am)) {
                vi act = col_ids(pos) < (vi)(int)ce;
                vf a = select((vf)0.0f,
                              tile_a(am, w, has_w, tr, pos, ce, ome, epc), act);
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
            vf v = VLD_0(xr, p);
            e[j] = exp(v - m);
            VST_0(e_row, p, e[j]);
            if (AM_HAS_B(am)) {
                vf a = tile_a(am, w, has_w, tr, p, ce, ome, epc);
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
        gstore_x(e_row, pos, ce, e);
        KAHAN(vf, q->s, q->sc, e);
        if (AM_HAS_B(am)) {
            vf a = select((vf)0.0f,
                          tile_a(am, w, has_w, tr, pos, ce, ome, epc), act);
            KAHAN_INF(vf, q->b, q->bc, select((vf)0.0f, a * (m - v), act));
            KAHAN_INF(vf, q->a, q->ac, a);
        }
    }
}

/* Pass 1 of one row: the state, the exps in e_row, bm[b] per block. */
inline st_t gcache_row(const global float *xr, const global XS *tr,
                       const global float *w, int has_w, float ome,
                       float epc, global float *e_row, uint C, uint bl,
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
        gcache_block(&q, xr, tr, w, has_w, ome, epc, e_row, cb, ce, am);
    }
    return acc_final(&q);
}
#endif

kernel void xent_rowsg_fused(XENT_PARAMS, global float *loss, ulong loss_off,
                             global float *lse, ulong lse_off, int has_lse,
                             global XS *gm, ulong g_off, ulong g_ld,
                             uint bl) {
    NO_ROWS_IF_BAD;
#if X_T == 0 && VEC > 1
    ulong r = get_global_id(0);
    if (r >= R) return;
    rowinfo ri = row_target(y, y_off, ii, C, w + w_off, has_w, r);
    int live = ri.valid && !ri.bad;
    int smooth = TGT == 2 || eps > 0.0f;
    const global float *xr = x + x_off + r * x_ld;
    const global XS *tr = t + t_off + r * t_ld;
    const global float *wp = w + w_off;
    global float *g_row = gm + g_off + r * g_ld;
    float ome = 1.0f - eps, epc = eps / (float)C;
    /* x_y first: in place, the exps overwrite it */
    float xy = TGT != 2 && live ? LD1X(xr, ri.ycol) : 0.0f;
    float bm[GC_BLOCKS];
    st_t st = smooth ? gcache_row(xr, tr, wp, has_w, ome, epc, g_row, C, bl,
                                  bm, AM_B)
                     : gcache_row(xr, tr, wp, has_w, ome, epc, g_row, C, bl,
                                  bm, AM_STATS);
    float lse_v;
    float l = row_loss(st, xy, ri, eps, zeta, C, &lse_v);
    loss[loss_off + r] = l;
    if (has_lse) lse[lse_off + r] = lse_v;
    if (!live) {
        for (uint pos = 0; pos < C; pos += VEC)
            gstore_x(g_row, pos, C, (vf)0.0f);
        return;
    }
    float g = row_scale(G, den, den_scr, scr, gr, gr_off, has_gr, r);
    float k1 = grad_k1(ri, eps, zeta, C, fin(st.ah, st.al), lse_v);
    float inv = 1.0f / st_sum(st);
    float tw = ome * ri.wy;
    uint b = 0;
    for (uint cb = 0; cb < C; cb += bl, ++b) {
        uint ce = min(C, cb + bl);
        /* p = e * exp(bm - m) / S; the per-block factor with k1 folded in */
        float f = (bm[b] == st.m ? 1.0f : exp(bm[b] - st.m)) * inv * k1;
        for (uint pos = cb; pos < ce; pos += VEC) {
            vf d = gload_x(g_row, pos, ce, 0.0f) * f;
#if TGT == 2
            vf wv = has_w ? gload_f(wp, pos, ce, 0.0f) : (vf)1.0f;
            d -= wv * (ome * gload_x(tr, pos, ce, 0.0f) + epc);
#else
            d = select(d, d - tw, col_ids(pos) == (vi)ri.ycol);
            if (smooth)
                d -= epc * (has_w ? gload_f(wp, pos, ce, 0.0f) : (vf)1.0f);
#endif
            gstore_x(g_row, pos, ce, g * d);
        }
    }
#endif
}
