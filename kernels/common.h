/* Shared by every clxent program (prepended by clx_cl_kernel): storage
 * loads and stores for f32/f16/bf16, the per-row online softmax state with
 * compensated sums, and the fixed-order work-group reductions.
 *
 * OpenCL C 1.2 only: no fp16 or sub-group extension, no float atomics,
 * full-precision exp/log. Build options (set by the host, one program per
 * option set, so only these few):
 *   X_T, Y_T  storage of the input / output matrix: 0 f32, 1 f16, 2 bf16
 *   TGT       targets: 0 int32 indices, 1 int64 indices, 2 probabilities
 *   VEC       elements per vector load: 1 (GPUs: lid-strided, coalesced) or
 *             4/8/16 (CPUs: explicit SIMD inside a work-item)
 *   KT        vector loads per tile (one max and one rescale per tile)
 * Everything else (shapes, strides, offsets, items per row) is a runtime
 * kernel argument. Offsets are ulong: rows*stride may exceed 2^31. */

#ifndef X_T
#define X_T 0
#endif
#ifndef Y_T
#define Y_T X_T
#endif
#ifndef TGT
#define TGT 0
#endif
#ifndef VEC
#define VEC 1
#endif
#ifndef KT
#define KT 4
#endif
#ifndef NB
#define NB 16 /* tiles per block of the CPU two-sweep stats (acc_range) */
#endif
#if (KT & (KT - 1)) != 0
#error "KT must be a power of two (tile sums are pairwise)"
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* ---- storage types ---- */

#define STORE_T_0 float
#define STORE_T_1 half /* pointer only: vload_half/vstore_half */
#define STORE_T_2 ushort
#define XS CAT(STORE_T_, X_T)
#define YS CAT(STORE_T_, Y_T)

#if TGT == 1
#define IDX long
#else
#define IDX int
#endif

inline float bf16_to_f32(ushort h) { return as_float((uint)h << 16); }

/* Round to nearest even; NaN stays NaN (quiet bit set). */
inline ushort f32_to_bf16(float f) {
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

/* Scalar element i of p (an element index, not a byte offset). */
#define LD1_0(p, i) ((p)[i])
#define LD1_1(p, i) vload_half(0, (p) + (i))
#define LD1_2(p, i) bf16_to_f32((p)[i])
#define ST1_0(p, i, v) ((p)[i] = (v))
#define ST1_1(p, i, v) vstore_half_rte((v), 0, (p) + (i))
#define ST1_2(p, i, v) ((p)[i] = f32_to_bf16(v))
#define LD1X(p, i) CAT(LD1_, X_T)(p, i)
#define ST1X(p, i, v) CAT(ST1_, X_T)(p, i, v)
#define LD1Y(p, i) CAT(LD1_, Y_T)(p, i)
#define ST1Y(p, i, v) CAT(ST1_, Y_T)(p, i, v)

/* ---- VEC-wide vectors: vf holds VEC consecutive elements of one row ---- */

#if VEC == 1
typedef float vf;
typedef int vi;
#define IOTA 0
#define VLD_0(p, i) ((p)[i])
#define VLD_1(p, i) vload_half(0, (p) + (i))
#define VLD_2(p, i) bf16_to_f32((p)[i])
#define VST_0(p, i, v) ((p)[i] = (v))
#define VST_1(p, i, v) vstore_half_rte((v), 0, (p) + (i))
#define VST_2(p, i, v) ((p)[i] = f32_to_bf16(v))
#define VLOADP(a) ((a)[0]) /* from a private float array */
#define VSTOREP(v, a) ((a)[0] = (v))
#else
typedef CAT(float, VEC) vf;
typedef CAT(int, VEC) vi;
typedef CAT(uint, VEC) vu_;
typedef CAT(ushort, VEC) vus_;
#if VEC == 4
#define IOTA ((vi)(0, 1, 2, 3))
#elif VEC == 8
#define IOTA ((vi)(0, 1, 2, 3, 4, 5, 6, 7))
#elif VEC == 16
#define IOTA ((vi)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#else
#error "VEC must be 1, 4, 8 or 16"
#endif
/* VEC halves at any 2-byte-aligned address. vload_halfN/vstore_halfN
 * need only that alignment, but PoCL 3.1's x86 library compiles them as
 * aligned vector accesses (16 bytes: a row at an odd offset faulted with
 * CLXENT_KT=1). Aligned addresses take them (hardware conversions); the
 * others go through 16-bit integer loads and stores and convert in
 * software, exactly (round to nearest even, NaN to the host's 0x7e00). */
#define HALF_ALIGN_MASK (VEC >= 8 ? 15 : 2 * VEC - 1)
inline vf half_bits_to_f32(vus_ u) {
    vu_ h = CAT(convert_uint, VEC)(u);
    vu_ em = h & (vu_)0x7fffu;
    vu_ normal = (em << 13) + (vu_)0x38000000u; /* rebias 15 -> 127 */
    vu_ sub = CAT(as_uint, VEC)(CAT(convert_float, VEC)(em) * 0x1p-24f);
    vu_ special = (em << 13) | (vu_)0x7f800000u; /* inf, NaN */
    vu_ r = select(normal, sub, em < (vu_)0x400u);
    r = select(r, special, em >= (vu_)0x7c00u);
    return CAT(as_float, VEC)(r | ((h & (vu_)0x8000u) << 16));
}
inline vus_ f32_to_half_bits(vf v) {
    vu_ f = CAT(as_uint, VEC)(v);
    vu_ sign = (f >> 16) & (vu_)0x8000u;
    vu_ a = f & (vu_)0x7fffffffu;
    /* normal: drop 13 bits, nearest even (may carry into inf) */
    vu_ n = ((a + (vu_)0xc8000fffu + ((a >> 13) & (vu_)1u)) >> 13);
    /* subnormal or zero: the add to 0.5 rounds at the right bit */
    vu_ sub =
        CAT(as_uint, VEC)(CAT(as_float, VEC)(a) + 0.5f) - (vu_)0x3f000000u;
    vu_ r = select(n, sub, a < (vu_)0x38800000u);
    r = select(r, (vu_)0x7c00u, a >= (vu_)0x477ff000u);
    r = select(r, (vu_)0x7e00u, a > (vu_)0x7f800000u);
    return CAT(convert_ushort, VEC)(r | sign);
}
inline vf vload_half_any(const global half *p) {
    if (((ulong)p & HALF_ALIGN_MASK) == 0) return CAT(vload_half, VEC)(0, p);
    return half_bits_to_f32(CAT(vload, VEC)(0, (const global ushort *)p));
}
inline void vstore_half_any(vf v, global half *p) {
    if (((ulong)p & HALF_ALIGN_MASK) == 0)
        CAT(vstore_half, CAT(VEC, _rte))(v, 0, p);
    else
        CAT(vstore, VEC)(f32_to_half_bits(v), 0, (global ushort *)p);
}
inline vf bf16v_to_f32(vus_ h) {
    return CAT(as_float, VEC)(CAT(convert_uint, VEC)(h) << 16);
}
inline vus_ f32v_to_bf16(vf f) {
    vu_ u = CAT(as_uint, VEC)(f);
    vu_ r = (u + (vu_)0x7fffu + ((u >> 16) & (vu_)1u)) >> 16;
    vu_ n = (u >> 16) | (vu_)0x40u;
    vi nan_ = CAT(as_int, VEC)((u & (vu_)0x7fffffffu) > (vu_)0x7f800000u);
    return CAT(convert_ushort, VEC)(select(r, n, nan_));
}
#define VLD_0(p, i) CAT(vload, VEC)(0, (p) + (i))
#define VLD_1(p, i) vload_half_any((p) + (i))
#define VLD_2(p, i) bf16v_to_f32(CAT(vload, VEC)(0, (p) + (i)))
#define VST_0(p, i, v) CAT(vstore, VEC)((v), 0, (p) + (i))
#define VST_1(p, i, v) vstore_half_any((v), (p) + (i))
#define VST_2(p, i, v) CAT(vstore, VEC)(f32v_to_bf16(v), 0, (p) + (i))
#define VLOADP(a) CAT(vload, VEC)(0, (a))
#define VSTOREP(v, a) CAT(vstore, VEC)((v), 0, (a))
#endif
#define VLDX(p, i) CAT(VLD_, X_T)(p, i)
#define VSTX(p, i, v) CAT(VST_, X_T)(p, i, v)
#define VLDY(p, i) CAT(VLD_, Y_T)(p, i)
#define VSTY(p, i, v) CAT(VST_, Y_T)(p, i, v)
#define VLDF(p, i) VLD_0(p, i)

/* Loads VEC elements at pos of a row whose valid part ends at ce; lanes
 * past the end read `fill` (vector loads need only element alignment). */
#define DEF_GUARDED_LOAD(NAME, TYPE, VLD, LD1)                                 \
    inline vf NAME(const global TYPE *p, uint pos, uint ce, float fill) {      \
        if (pos + VEC <= ce) return VLD(p, pos);                               \
        float tmp_[VEC];                                                       \
        for (uint e_ = 0; e_ < VEC; ++e_)                                      \
            tmp_[e_] = pos + e_ < ce ? LD1(p, pos + e_) : fill;                \
        return VLOADP(tmp_);                                                   \
    }
DEF_GUARDED_LOAD(gload_x, XS, VLDX, LD1X)
DEF_GUARDED_LOAD(gload_f, float, VLD_0, LD1_0)

/* Stores the lanes of v that lie before ce. */
#define DEF_GUARDED_STORE(NAME, TYPE, VST, ST1)                                \
    inline void NAME(global TYPE *p, uint pos, uint ce, vf v) {                \
        if (pos + VEC <= ce) {                                                 \
            VST(p, pos, v);                                                    \
            return;                                                            \
        }                                                                      \
        float tmp_[VEC];                                                       \
        VSTOREP(v, tmp_);                                                      \
        for (uint e_ = 0; e_ < VEC && pos + e_ < ce; ++e_)                     \
            ST1(p, pos + e_, tmp_[e_]);                                        \
    }
DEF_GUARDED_STORE(gstore_x, XS, VSTX, ST1X)
DEF_GUARDED_STORE(gstore_y, YS, VSTY, ST1Y)

/* ---- the synchronous target check's verdict ----
 * xent_check (nll.cl) writes the first bad row, or -1, at long index
 * SCR_SYNC_LONG of the scratch buffer (host: CLX_SCR_SYNC_LONG). The
 * kernels queued behind it in the same call get guard = 1 and write
 * nothing when it found a bad target, so the host can wait for the
 * verdict while they run instead of between the check and them. */
#define SCR_SYNC_LONG 8
inline int sync_bad(const global float *scr, int guard) {
    return guard && ((const global long *)scr)[SCR_SYNC_LONG] >= 0;
}

/* ---- NaN-propagating maximum (torch.max: any NaN gives NaN) ---- */

inline float nanmax1(float a, float b) { return (a > b || isnan(a)) ? a : b; }
inline vf nanmaxv(vf a, vf b) { return select(b, a, (a > b) | isnan(a)); }

#if VEC == 1
inline float hmax(vf v) { return v; }
#else
inline float hmax(vf v) {
#if VEC == 16
    float8 v8 = select(v.hi, v.lo, (v.lo > v.hi) | isnan(v.lo));
#else
    vf v8 = v;
#endif
#if VEC >= 8
    float4 v4 = select(v8.hi, v8.lo, (v8.lo > v8.hi) | isnan(v8.lo));
#else
    float4 v4 = v8;
#endif
    return nanmax1(nanmax1(v4.x, v4.y), nanmax1(v4.z, v4.w));
}
#endif

/* ---- compensated sums ----
 * A sum is a (hi, lo) pair worth hi + lo. Inside a work-item the Kahan
 * form (s, c) worth s - c is cheapest; merges use TwoSum, whose error term
 * is exact. With an infinite hi the lo part turns NaN: fin() ignores it. */

#define KAHAN(T, s, c, v)                                                      \
    do {                                                                       \
        T y_ = (v) - (c);                                                      \
        T t_ = (s) + y_;                                                       \
        (c) = (t_ - (s)) - y_;                                                 \
        (s) = t_;                                                              \
    } while (0)

/* The same for sums that may reach +-inf (masked classes in B, exp-sums
 * with a given max): the compensation stays 0 once s is not finite, so a
 * later add cannot turn inf into NaN. */
#define KAHAN_INF(T, s, c, v)                                                  \
    do {                                                                       \
        T y_ = (v) - (c);                                                      \
        T t_ = (s) + y_;                                                       \
        (c) = select((T)0.0f, (t_ - (s)) - y_, isfinite(t_));                  \
        (s) = t_;                                                              \
    } while (0)

/* s + e = a + b exactly (Knuth's TwoSum). */
#define TWO_SUM(T, a, b, s, e)                                                 \
    do {                                                                       \
        T a_ = (a), b_ = (b);                                                  \
        (s) = a_ + b_;                                                         \
        T bp_ = (s) - a_;                                                      \
        (e) = (a_ - ((s) - bp_)) + (b_ - bp_);                                 \
    } while (0)

inline float fin(float hi, float lo) { return isinf(hi) ? hi : hi + lo; }

/* Horizontal compensated sum of VEC lanes (hi, lo) into *h, *l. */
inline void hsum2(vf hi, vf lo, float *h, float *l) {
#if VEC == 1
    *h = hi;
    *l = lo;
#else
#if VEC == 16
    float8 s8, e8;
    TWO_SUM(float8, hi.lo, hi.hi, s8, e8);
    float8 l8 = lo.lo + lo.hi + e8;
#else
    vf s8 = hi, l8 = lo;
#endif
#if VEC >= 8
    float4 s4, e4;
    TWO_SUM(float4, s8.lo, s8.hi, s4, e4);
    float4 l4 = l8.lo + l8.hi + e4;
#else
    float4 s4 = s8, l4 = l8;
#endif
    float2 s2, e2;
    TWO_SUM(float2, s4.lo, s4.hi, s2, e2);
    float2 l2 = l4.lo + l4.hi + e2;
    float s1, e1;
    TWO_SUM(float, s2.x, s2.y, s1, e1);
    *h = s1;
    *l = l2.x + l2.y + e1;
#endif
}

/* ---- online row state ----
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

/* The per-class weights a_c of a tile at pos (VEC lanes), 0 past ce. */
inline vf tile_a(const int am, const global float *w, int has_w,
                 const global XS *tr, uint pos, uint ce, float ome,
                 float epc) {
    vf wv = has_w ? gload_f(w, pos, ce, 0.0f) : (vf)1.0f;
    if (am == AM_SMOOTH) return wv;
    vf tv = gload_x(tr, pos, ce, 0.0f);
    return wv * (ome * tv + epc);
}

/* Raises the running maximum to at least tm, rescaling the sums once. */
inline void acc_raise(acc_t *q, float tm, const int am) {
    if (!(tm <= q->m)) { /* also when either is NaN */
        float mn = nanmax1(q->m, tm);
        if (am != AM_MAX) {
            float f = exp(q->m - mn); /* 0 when the old max was -inf */
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
 * (coalesced for VEC == 1). xr/tr/w point at column 0 of the row. */
inline void acc_range(acc_t *q, const global XS *xr, const global XS *tr,
                      const global float *w, int has_w, float ome, float epc,
                      uint cb, uint ce, uint lane, uint T, const int am) {
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
        /* CPUs: blocks of NB tiles in two sweeps, the lane-wise max (x
         * from memory into L1) with one horizontal max and rescale per
         * block, then the exps (x from L1) with the same maximum: the
         * per-tile max, compare and branch cost a third of the pass. */
        const uint bspan = span * NB;
        for (; c0 < ce && ce - c0 >= bspan; c0 += bspan) {
            vf tv = (vf)(-INFINITY);
            for (uint b = 0; b < NB * KT; ++b)
                tv = nanmaxv(tv, VLDX(xr, c0 + (b * T + lane) * VEC));
            acc_raise(q, hmax(tv), am);
            if (q->m == -INFINITY) continue;
            for (uint t0 = 0; t0 < NB * KT; t0 += KT) {
                vf e[KT];
                for (int j = 0; j < KT; ++j)
                    e[j] = exp(VLDX(xr, c0 + ((t0 + j) * T + lane) * VEC) -
                               q->m);
                for (int w2 = KT / 2; w2 >= 1; w2 /= 2)
                    for (int j = 0; j < w2; ++j) e[j] += e[j + w2];
                KAHAN(vf, q->s, q->sc, e[0]);
            }
        }
    }
#endif
    for (; c0 < ce && ce - c0 >= span; c0 += span) {
        vf v[KT], a[KT];
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + lane) * VEC;
            v[j] = AM_READS_X(am) ? VLDX(xr, pos) : (vf)0.0f;
            a[j] = AM_HAS_A(am) ? tile_a(am, w, has_w, tr, pos, ce, ome, epc)
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
            v[j] = AM_READS_X(am) ? gload_x(xr, pos, ce, -INFINITY)
                                  : (vf)0.0f;
            a[j] = AM_HAS_A(am) ? select((vf)0.0f,
                                         tile_a(am, w, has_w, tr, pos, ce,
                                                ome, epc),
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

/* Column-index vector of a tile at pos (for the target column). */
inline vi col_ids(uint pos) { return (vi)(int)pos + IOTA; }

/* Work mapping shared by the row kernels: a group of L items serves L/T
 * units, T consecutive items per unit. A unit is chunk k of row r when a
 * row is split in P chunks of CH columns (P == 1: the whole row). */
typedef struct unit_t {
    uint lane;  /* item within the unit */
    ulong row;  /* may be >= R: the item idles (but joins barriers) */
    uint chunk; /* k */
    uint cb, ce; /* columns [cb, ce) */
} unit_t;

inline unit_t unit_of(uint T, uint P, uint CH, uint C) {
    unit_t u;
    uint lid = get_local_id(0);
    uint per = get_local_size(0) / T;
    ulong unit = (ulong)get_group_id(0) * per + lid / T;
    u.lane = lid & (T - 1);
    u.row = unit / P;
    u.chunk = (uint)(unit % P);
    u.cb = u.chunk * CH;
    u.ce = min(C, u.cb + CH);
    if (u.cb > C) u.cb = C;
    return u;
}

/* ---- lanes: VEC rows per item, a row per vector lane (CPUs, small C) ----
 * A row of a few classes leaves most of a SIMD vector idle, so the lanes
 * run across rows: item i holds rows [i*VEC, i*VEC + VEC) (nr of them;
 * lanes past nr repeat the last row), all C (<= LANES_CMAX) values of each
 * as column vectors xv[c], lane l = row r0 + l (one global read). */
#define LANES_CMAX 32

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
 * stores; f16/bf16: element by element). */
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
#define DEF_STORE_FIRST_GEN(NAME, TYPE, VST, ST1)                              \
    inline void NAME(global TYPE *p, float16 v, uint n) {                      \
        if (n == 16) {                                                         \
            VST(p, 0, v);                                                      \
            return;                                                            \
        }                                                                      \
        float tmp[16];                                                         \
        vstore16(v, 0, tmp);                                                   \
        for (uint e = 0; e < n; ++e) ST1(p, e, tmp[e]);                        \
    }
#if X_T == 0
DEF_STORE_FIRST_F32(store_first_x, XS)
#else
DEF_STORE_FIRST_GEN(store_first_x, XS, VSTX, ST1X)
#endif
#if Y_T == 0
DEF_STORE_FIRST_F32(store_first_y, YS)
#else
DEF_STORE_FIRST_GEN(store_first_y, YS, VSTY, ST1Y)
#endif
#endif /* VEC == 16 */

/* The C column vectors of rows [r0, r0 + nr) of x. */
inline void lanes_load(const global XS *x, ulong x_off, ulong x_ld, ulong r0,
                       uint nr, uint C, vf *xv) {
#if VEC == 16
    /* Rows loaded whole (16 columns at a time) and transposed in
     * registers. A load may run past its row into the next row of this
     * block (never further). */
    for (uint cb = 0; cb < C; cb += 16) {
        uint nc = min(16u, C - cb);
        float16 blk[16];
        for (uint l = 0; l < 16; ++l) {
            uint lr = min(l, nr - 1);
            const global XS *xr = x + x_off + (r0 + lr) * x_ld;
            if (cb + 16 <= C || (lr + 1 < nr && cb + 16 <= x_ld + C))
                blk[l] = VLDX(xr, cb);
            else
                blk[l] = gload_x(xr, cb, C, 0.0f);
        }
        transpose16(blk);
        for (uint c = 0; c < nc; ++c) xv[cb + c] = blk[c];
    }
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
#define DEF_LANES_STORE(NAME, TYPE, FIRST, ST1)                                \
    inline void NAME(global TYPE *g, ulong g_off, ulong g_ld, ulong r0,        \
                     uint nr, uint C, vf *xv) {                                \
        for (uint cb = 0; cb < C; cb += 16) {                                  \
            uint nc = min(16u, C - cb);                                        \
            float16 blk[16];                                                   \
            for (uint c = 0; c < 16; ++c)                                      \
                blk[c] = c < nc ? xv[cb + c] : 0.0f;                           \
            transpose16(blk);                                                  \
            for (uint l = 0; l < nr; ++l)                                      \
                FIRST(g + g_off + (r0 + l) * g_ld + cb, blk[l], nc);           \
        }                                                                      \
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
