/* Row primitives: max (NaN-propagating), exp-sum given the max
 * (compensated), log_softmax and softmax, with the same strategies as
 * xent.cl: sm_rows (T items per row, L/T rows per group) or, for long
 * rows on few rows, sm_part + sm_split_out (P chunks per row, partial
 * states merged in fixed order); on CPUs, softmax: sm_cached (the exps
 * cached, one exp per element), log_softmax and softmax of a few hundred
 * columns: sm_batch (16 rows per item finished together, batch.h). X_T is the input's storage, Y_T the
 * output matrix's. what: CLX_SM_MAX, CLX_SM_EXPSUM, CLX_SM_LOG_SOFTMAX
 * or CLX_SM_SOFTMAX (contract.h). Vector outputs (max, sum) are f32. */
#include "rowstate.h"
#include "lanes.h"
#include "expcache.h"
#include "batch.h"

#define SM_PARAMS CLX_GROUP_PARAMS(sm)
#define SM_ARGS CLX_GROUP_ARGS(sm)

/* This item's share of columns [cb, ce) of row r. */
inline st_t sm_acc(const global XS *xr, float m0, uint cb, uint ce,
                   uint lane, uint T, int live, float xa, float xcap,
                   const int am) {
    acc_t q;
    acc_init(&q, m0);
    if (live)
        acc_range(&q, xr, xr, (const global float *)0, 0, 0.0f, 0.0f, cb, ce,
                  lane, T, xa, xcap, am);
    return acc_final(&q);
}

/* out = (x - m) - lS, or its exp. */
inline void sm_write(global YS *yr, const global XS *xr, uint cb, uint ce,
                     uint lane, uint T, float m, float lS, int log_form,
                     float xa, float xcap) {
    const uint span = T * KT * VEC;
    for (uint c0 = cb; c0 < ce; c0 += span)
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + lane) * VEC;
            if (pos >= ce) break;
            vf lp = (XGLD(xr, pos, ce, 0.0f) - m) - lS;
            gstore_y(yr, pos, ce, log_form ? lp : exp(lp));
        }
}

/* The state of a unit, merged over its T items (all items call it). */
inline st_t sm_unit_state(const global XS *xr, float m0, uint cb, uint ce,
                          uint lane, uint T, int live, int what,
                          float xa, float xcap, local st_t *red,
                          const int reduce) {
    int am = what == CLX_SM_MAX ? AM_MAX : what == CLX_SM_EXPSUM ? AM_FIXED : AM_STATS;
    st_t st;
    if (what == CLX_SM_MAX)
        st = sm_acc(xr, m0, cb, ce, lane, T, live, xa, xcap, AM_MAX);
    else if (what == CLX_SM_EXPSUM)
        st = sm_acc(xr, m0, cb, ce, lane, T, live, xa, xcap, AM_FIXED);
    else
        st = sm_acc(xr, m0, cb, ce, lane, T, live, xa, xcap, AM_STATS);
    return reduce ? seg_reduce(red, st, get_local_id(0), lane, T, am) : st;
}

/* Writes what the op asks for from a row's merged state. */
inline void sm_finish(SM_PARAMS, st_t st, ulong r, uint cb, uint ce,
                      uint lane, uint T, int owner) {
    if (what == CLX_SM_MAX) {
        if (owner) vo[vo_off + r] = st.m;
    } else if (what == CLX_SM_EXPSUM) {
        if (owner) vo[vo_off + r] = fin(st.sh, st.sl);
    } else {
        sm_write(yo + y_off + r * y_ld, x + x_off + r * x_ld, cb, ce, lane, T,
                 st.m, log(st_sum(st)), what == CLX_SM_LOG_SOFTMAX, xa, xcap);
    }
}

inline void sm_rows_body(SM_PARAMS, uint T, local st_t *red,
                         const int reduce) {
    unit_t u = unit_of(T, 1, C, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    float m0 = what == CLX_SM_EXPSUM ? mx[mx_off + r] : -INFINITY;
    st_t st = sm_unit_state(x + x_off + r * x_ld, m0, 0, C, u.lane, T,
                            active, what, xa, xcap, red, reduce);
    if (!active) return;
    sm_finish(x, x_off, x_ld, R, C, mx, mx_off, vo, vo_off, yo, y_off, y_ld,
              what, xa, xcap, st, r, 0, C, u.lane, T, u.lane == 0);
}

/* sm_rows and sm_rows1 are declared without KERNEL's hint: Intel's
 * compiler then runs 16 rows' passes at once across work-items, more loads
 * in flight, and row_max of 1024x32000 takes 7.0 ms rather than 8.9. */
kernel void sm_rows(CLX_PARAMS(sm_rows)) {
    sm_rows_body(x, x_off, x_ld, R, C, mx, mx_off, vo, vo_off, yo, y_off,
                 y_ld, what, xa, xcap, T, red, 1);
}

/* One item per row (T must be 1): no barrier. */
kernel void sm_rows1(CLX_PARAMS(sm_rows)) {
    sm_rows_body(x, x_off, x_ld, R, C, mx, mx_off, vo, vo_off, yo, y_off,
                 y_ld, what, xa, xcap, 1, red, 0);
}

/* sm_rows1 for log_softmax and softmax, which write their rows: with the
 * hint, log_softmax of 1024x32000 takes 33 ms on Intel rather than 48.
 * On CPUs log_softmax takes the same two passes written out plainly:
 * through sm_rows_body (every op's passes inlined, the lane-strided
 * write) Intel's compiler made it 35 ms, 26 this way; the same bits. */
KERNEL void sm_rows1_out(CLX_PARAMS(sm_rows)) {
#if VEC > 1
    if (what == CLX_SM_LOG_SOFTMAX) {
        ulong r = get_global_id(0);
        if (r >= R) return;
        const global XS *xr = x + x_off + r * x_ld;
        global YS *yr = yo + y_off + r * y_ld;
        st_t st = sm_acc(xr, -INFINITY, 0, C, 0, 1, 1, xa, xcap, AM_STATS);
        float m = st.m, lS = log(st_sum(st));
        for (uint pos = 0; pos < C; pos += VEC)
            gstore_y(yr, pos, C, (XGLD(xr, pos, C, 0.0f) - m) - lS);
        return;
    }
#endif
    sm_rows_body(x, x_off, x_ld, R, C, mx, mx_off, vo, vo_off, yo, y_off,
                 y_ld, what, xa, xcap, 1, red, 0);
}

/* Split rows, pass 1: state of chunk k of row r into
 * part[(r*P + k)*8 + 0..6], one group per chunk. */
KERNEL void sm_part(CLX_PARAMS(sm_part)) {
    uint L = get_local_size(0);
    unit_t u = unit_of(L, P, CH, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    float m0 = what == CLX_SM_EXPSUM ? mx[mx_off + r] : -INFINITY;
    st_t st = sm_unit_state(x + x_off + r * x_ld, m0, u.cb, u.ce, u.lane, L,
                            active, what, xa, xcap, red, 1);
    if (!active || u.lane != 0) return;
    global float *o = part + part_off + (r * P + u.chunk) * CLX_PART_FLOATS;
    store_part(o, st);
    o[7] = 0.0f;
}

/* Split rows, pass 2: merges the P states of the row in fixed order; for
 * log_softmax/softmax one group per chunk writes its columns, else one
 * group per row writes the vector output. */
KERNEL void sm_split_out(CLX_PARAMS(sm_split_out)) {
    uint L = get_local_size(0), lid = get_local_id(0);
    int per_chunk = what >= CLX_SM_LOG_SOFTMAX;
    unit_t u = per_chunk ? unit_of(L, P, CH, C) : unit_of(L, 1, C, C);
    int active = u.row < R;
    ulong r = active ? u.row : 0;
    float m0 = what == CLX_SM_EXPSUM ? mx[mx_off + r] : -INFINITY;
    int am = what == CLX_SM_MAX ? AM_MAX : what == CLX_SM_EXPSUM ? AM_FIXED : AM_STATS;
    st_t st = st_empty(m0);
    for (uint k = lid; active && k < P; k += L) { /* one each when P <= L */
        st_t o = load_part(part, part_off + (r * P + k) * CLX_PART_FLOATS);
        st = k == lid ? o : st_merge(st, o, am);
    }
    st = seg_reduce(red, st, lid, lid, L, am);
    if (!active) return;
    sm_finish(x, x_off, x_ld, R, C, mx, mx_off, vo, vo_off, yo, y_off, y_ld,
              what, xa, xcap, st, r, u.cb, u.ce, u.lane, L, lid == 0 && u.chunk == 0);
}

/* Small C on CPUs (VEC > 1): VEC rows per item, a row per vector lane
 * (lanes.h, lanes_load): each row read once, no horizontal reductions.
 * log_softmax/softmax keep the exps (softmax: e / S as e * (1/S)). */
KERNEL void sm_lanes(CLX_PARAMS(sm)) {
#if VEC > 1
    ulong r0 = get_global_id(0) * VEC;
    if (r0 >= R) return;
    uint nr = (uint)min((ulong)VEC, R - r0);
    vf xv[LANES_CMAX];
    lanes_load(x, x_off, x_ld, r0, nr, C, xv);
    if (what == CLX_SM_EXPSUM) { /* exp(x - m) > 1 possible: may overflow */
        vf m = lanes_vload(mx, mx_off + r0, nr);
        vf s = (vf)0.0f, sc = (vf)0.0f;
        for (uint c = 0; c < C; ++c) KAHAN_INF(vf, s, sc, exp(xv[c] - m));
        lanes_vstore(vo, vo_off + r0, nr, select(s - sc, s, isinf(s)));
        return;
    }
    vf m = (vf)(-INFINITY);
    for (uint c = 0; c < C; ++c) m = nanmaxv(m, xv[c]);
    if (what == CLX_SM_MAX) {
        lanes_vstore(vo, vo_off + r0, nr, m);
        return;
    }
    vf s = (vf)0.0f, sc = (vf)0.0f;
    for (uint c = 0; c < C; ++c) {
        vf e = exp(xv[c] - m);
        KAHAN(vf, s, sc, e);
        if (what == CLX_SM_SOFTMAX) xv[c] = e;
    }
    /* a row without a finite value: S = NaN as in the reference */
    vf S = select(s - sc, (vf)NAN, m == (vf)(-INFINITY));
    if (what == CLX_SM_LOG_SOFTMAX) {
        vf lS = log(S);
        for (uint c = 0; c < C; ++c) xv[c] = (xv[c] - m) - lS;
    } else {
        vf inv = 1.0f / S;
        for (uint c = 0; c < C; ++c) xv[c] *= inv;
    }
    lanes_store_y(yo, y_off, y_ld, r0, nr, C, xv);
#endif
}

/* Softmax on CPUs (VEC > 1), one item per row: the exps cached
 * (expcache.h), then each block rescaled by exp(bm[b] - m) / S: one exp
 * per element instead of two, x read once. A row without a finite value
 * gives NaN (S = NaN), as sm_write does. The cache is
 *   sm_cached_g: the output row (f32 outputs),
 *   sm_cached_l: cstride floats of local memory per item (any output; the
 *                host checks that they fit). */
#if VEC > 1
inline void sm_cached_body(SM_PARAMS, uint bl, local float *cache,
                           uint cstride) {
    ulong r = get_global_id(0);
    if (r >= R) return;
    const global XS *xr = x + x_off + r * x_ld;
    global YS *yr = yo + y_off + r * y_ld;
    local float *el = cache ? cache + get_local_id(0) * (ulong)cstride : 0;
    global float *eg = el ? 0 : (global float *)yr; /* f32 builds only */
    float bm[GC_BLOCKS];
    st_t st = cache_row(xr, xr, (const global float *)0, 0, 0.0f, 0.0f, eg,
                        el, C, bl, bm, AM_STATS);
    float inv = 1.0f / st_sum(st);
    uint b = 0;
    for (uint cb = 0; cb < C; cb += bl, ++b) {
        uint ce = min(C, cb + bl);
        float f = block_scale(bm[b], st.m) * inv;
        for (uint pos = cb; pos < ce; pos += VEC)
            gstore_y(yr, pos, ce, ec_load(eg, el, pos, ce) * f);
    }
}
#endif

KERNEL void sm_cached_g(CLX_PARAMS(sm_cached_g)) {
#if Y_T == CLX_STORE_F32 && VEC > 1
    sm_cached_body(SM_ARGS, bl, (local float *)0, 0);
#endif
}

KERNEL void sm_cached_l(CLX_PARAMS(sm_cached_l)) {
#if VEC > 1
    sm_cached_body(SM_ARGS, bl, cache, cstride);
#endif
}

/* log_softmax (what 2) and softmax (3) on CPUs (VEC 16), 16 rows per item
 * (batch.h): the rows' lane statistics, merged for the 16 rows at once,
 * then each row written: (x - m) - log S, or the exps (cached in an f32
 * output or, sm_batchl, in local memory; else computed again from x, in
 * cache by then) times the lane factors exp(lane max - m) / S. */
#if VEC == 16
/* cache: null, or (softmax into 16-bit outputs) 16 * cstride floats of
 * local memory per item for the exps. */
inline void sm_batch_body(SM_PARAMS, local float *cache, uint cstride) {
    ulong r0 = get_global_id(0) * 16;
    if (r0 >= R) return;
    uint nr = (uint)min((ulong)16, R - r0);
    /* the exps kept: in an f32 output, else in local memory if given */
    const int gcache = Y_T == CLX_STORE_F32 && what == CLX_SM_SOFTMAX;
    float16 mv[16], sv[16], cv[16], ms[16];
    for (uint l = 0; l < 16; ++l) {
        if (l >= nr) { /* lanes past nr repeat the last row */
            mv[l] = mv[nr - 1];
            sv[l] = sv[nr - 1];
            cv[l] = cv[nr - 1];
            continue;
        }
        global float *eg =
            gcache ? (global float *)(yo + y_off + (r0 + l) * y_ld) : 0;
        lane_stats q = batch_row(x + x_off + (r0 + l) * x_ld, x_ld, l + 1 < nr,
                                 C, (const global float *)0, 0, eg,
                                 batch_cache_row(cache, cstride, l));
        mv[l] = q.m;
        sv[l] = q.s;
        cv[l] = q.sc;
        ms[l] = lane_safe_max(q.m);
    }
    float16 m, S, f[16];
    batch_merge(mv, sv, cv, f, &m, &S);
    float mb[16], lsb[16];
    vstore16(m, 0, mb);
    vstore16(log(S), 0, lsb);
    if (what == CLX_SM_SOFTMAX) {
        float16 inv = 1.0f / S;
        for (int j = 0; j < 16; ++j) f[j] *= inv;
        transpose16(f); /* back: f[l] holds row l's factor per lane */
    }
    for (uint r = 0; r < nr; ++r) {
        const global XS *xr = x + x_off + (r0 + r) * x_ld;
        global YS *yr = yo + y_off + (r0 + r) * y_ld;
        local float *el = batch_cache_row(cache, cstride, r);
        int over = r + 1 < nr;
        for (uint pos = 0; pos < C; pos += 16) {
            /* lanes past C are not stored */
            float16 out;
            if (el)
                out = vload16(0, el + pos) * f[r];
            else if (gcache)
                out = batch_load_f((const global float *)yr, pos, C, y_ld,
                                   over) *
                      f[r];
            else if (what == CLX_SM_LOG_SOFTMAX)
                out = (batch_load_x(xr, pos, C, x_ld, over) - mb[r]) - lsb[r];
            else
                out = exp(batch_load_x(xr, pos, C, x_ld, over) - ms[r]) * f[r];
            store_first_y(yr + pos, out, min(16u, C - pos));
        }
    }
}
#endif

KERNEL void sm_batch(CLX_PARAMS(sm)) {
#if VEC == 16
    sm_batch_body(SM_ARGS, (local float *)0, 0);
#endif
}

/* Softmax into a 16-bit output, the exps in local memory (the host checks
 * that they fit). */
KERNEL void sm_batchl(CLX_PARAMS(sm_batchl)) {
#if VEC == 16
    sm_batch_body(SM_ARGS, cache, cstride);
#endif
}
