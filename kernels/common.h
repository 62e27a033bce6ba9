/* Included first by every clxent kernel file: the build options, storage
 * loads and stores for f32/f16/bf16, VEC-wide vectors, compensated sums
 * and the work mapping of the row kernels. The row state is in
 * rowstate.h, the lanes kernels' transposes in lanes.h.
 *
 * OpenCL C 1.2 only: no fp16 or sub-group extension, no float atomics,
 * full-precision exp/log. Build options (set by the host, one program per
 * option set, so only these few):
 *   X_T, Y_T  storage of the input / output matrix: 0 f32, 1 f16, 2 bf16
 *   TGT       targets: 0 int32 indices, 1 int64 indices, 2 probabilities
 *   VEC       elements per vector load: 1 (GPUs: lid-strided, coalesced) or
 *             4/8/16 (CPUs: explicit SIMD inside a work-item)
 *   KT        vector loads per tile (one max and one rescale per tile)
 *   XF        1: the logit transforms (kernel arguments xa, xcap) apply
 *             to every logit loaded; 0: none (the arguments are ignored)
 * Everything else (shapes, strides, offsets, items per row) is a runtime
 * kernel argument. Offsets are ulong: rows*stride may exceed 2^31. */
#ifndef CLXENT_KERNELS_COMMON_H
#define CLXENT_KERNELS_COMMON_H

#include "contract.h"

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
#ifndef XF
#define XF 0
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

/* indexed by the storage codes of contract.h (CLX_STORE_F32 ...) */
#define STORE_T_0 float
#define STORE_T_1 half /* pointer only: vload_half/vstore_half */
#define STORE_T_2 ushort
#define XS CAT(STORE_T_, X_T)
#define YS CAT(STORE_T_, Y_T)

#if TGT == CLX_TGT_I64
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
/* The first n < VEC halves (n is 0 here: none), as in the vector branch. */
inline vf vload_half_tail(const global half *p, uint n, float fill) {
    return n ? vload_half(0, p) : fill;
}
inline void vstore_half_tail(vf v, global half *p, uint n) {
    if (n) vstore_half_rte(v, 0, p);
}
inline void vstore_bf16_tail(vf v, global ushort *p, uint n) {
    if (n) p[0] = f32_to_bf16(v);
}
#else
typedef CAT(float, VEC) vf;
typedef CAT(int, VEC) vi;
typedef CAT(uint, VEC) vu_;
typedef CAT(ushort, VEC) vus_;
#if VEC == 4
#define IOTA ((vi)(0, 1, 2, 3))
#define VEC_HALF 2
#elif VEC == 8
#define IOTA ((vi)(0, 1, 2, 3, 4, 5, 6, 7))
#define VEC_HALF 4
#elif VEC == 16
#define IOTA ((vi)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#define VEC_HALF 8
#else
#error "VEC must be 1, 4, 8 or 16"
#endif
/* VEC 16-bit values at any 2-byte-aligned address. PoCL 3.1 stores a
 * ushortN vstore element by element (16 scalar stores for VEC 16); as
 * VEC/2 uints it is one vector store. */
inline void vstore_u16_any(vus_ v, global ushort *p) {
    if (((ulong)p & 3) == 0)
        CAT(vstore, VEC_HALF)(CAT(as_uint, VEC_HALF)(v), 0, (global uint *)p);
    else
        CAT(vstore, VEC)(v, 0, p);
}
/* VEC halves at any 2-byte-aligned address. vload_halfN/vstore_halfN
 * need only that alignment, but PoCL 3.1's x86 library compiles them as
 * aligned vector accesses (16 bytes: a row at an odd offset faulted with
 * CLXENT_KT=1). Aligned addresses take them (hardware conversions); the
 * others go through 16-bit integer loads and stores and convert in
 * software, exactly (round to nearest even, NaN to the host's 0x7e00).
 * The tails (the first n < VEC lanes) convert as one vector in an aligned
 * private buffer: PoCL's scalar vload_half/vstore_half_rte are software
 * conversions, large enough to stop the guarded loads and stores around
 * them from inlining (a call per vector). The alternatives measured
 * slower (docs/tuning.md, "16-bit storage on CPUs"). */
#define HALF_ALIGN_MASK (VEC >= 8 ? 15 : 2 * VEC - 1)
#define HALF_BUF(b) ushort __attribute__((aligned(32))) b[VEC]
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
inline vf vload_half_tail(const global half *p, uint n, float fill) {
    HALF_BUF(b);
    for (uint e = 0; e < VEC; ++e)
        b[e] = e < n ? ((const global ushort *)p)[e] : (ushort)0;
    vf v = CAT(vload_half, VEC)(0, (const private half *)b);
    return select((vf)fill, v, IOTA < (vi)(int)n);
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
/* The first n < VEC lanes of v at p in 16-bit storage (f16, bf16):
 * converted as one vector into an aligned private buffer, then stored as
 * n 16-bit integers (the lanes kernels' row ends: one conversion instead
 * of n software ones; docs/tuning.md). */
/* (The buffer is ushort, written and read as halves by the builtins: no
 * half object exists without cl_khr_fp16, and the builtins are specified
 * by address. PoCL's library accesses it as "omnipotent char", so the
 * ushort accesses here alias it. Writing it as uints instead, a real
 * type pun, was miscompiled: bf16 results came out wrong.) */
inline void vstore_half_tail(vf v, global half *p, uint n) {
    HALF_BUF(b);
    CAT(vstore_half, CAT(VEC, _rte))(v, 0, (private half *)b);
    for (uint e = 0; e < n; ++e) ((global ushort *)p)[e] = b[e];
}
inline void vstore_bf16_tail(vf v, global ushort *p, uint n) {
    HALF_BUF(b);
    CAT(vstore, VEC)(f32v_to_bf16(v), 0, b);
    for (uint e = 0; e < n; ++e) p[e] = b[e];
}
#define VLD_0(p, i) CAT(vload, VEC)(0, (p) + (i))
#define VLD_1(p, i) vload_half_any((p) + (i))
#define VLD_2(p, i) bf16v_to_f32(CAT(vload, VEC)(0, (p) + (i)))
#define VST_0(p, i, v) CAT(vstore, VEC)((v), 0, (p) + (i))
#define VST_1(p, i, v) vstore_half_any((v), (p) + (i))
#define VST_2(p, i, v)                                                         \
    vstore_u16_any(f32v_to_bf16(v), (global ushort *)((p) + (i)))
#define VLOADP(a) CAT(vload, VEC)(0, (a))
#define VSTOREP(v, a) CAT(vstore, VEC)((v), 0, (a))
#endif
#define VLDX(p, i) CAT(VLD_, X_T)(p, i)
#define VSTX(p, i, v) CAT(VST_, X_T)(p, i, v)
#define VLDY(p, i) CAT(VLD_, Y_T)(p, i)
#define VSTY(p, i, v) CAT(VST_, Y_T)(p, i, v)
#define VLDF(p, i) VLD_0(p, i)

/* Declares a kernel. Under the CPU mapping (VEC > 1) it tells the
 * compiler that the kernel computes in vf vectors already: Intel's CPU
 * compiler otherwise may also pack work-items into each vector operation,
 * which made sm_batch 5x and bf16 forward 3x slower (docs/tuning.md,
 * "vec_type_hint"). PoCL's timings do not move with it. */
#if VEC > 1
#define KERNEL kernel __attribute__((vec_type_hint(vf)))
#else
#define KERNEL kernel
#endif

/* Column-index vector of a tile at pos (for the target column). */
inline vi col_ids(uint pos) { return (vi)(int)pos + IOTA; }

/* Loads VEC elements at pos of a row whose valid part ends at ce; lanes
 * past the end read `fill` (vector loads need only element alignment). */
#define DEF_GUARDED_LOAD(NAME, TYPE, VLD, LD1, T)                              \
    inline vf NAME(const global TYPE *p, uint pos, uint ce, float fill) {      \
        if (pos + VEC <= ce) return VLD(p, pos);                               \
        if (T == 1) /* halves */                                               \
            return vload_half_tail((const global half *)(p + pos),             \
                                   pos < ce ? ce - pos : 0, fill);             \
        float tmp_[VEC];                                                       \
        for (uint e_ = 0; e_ < VEC; ++e_)                                      \
            tmp_[e_] = pos + e_ < ce ? LD1(p, pos + e_) : fill;                \
        return VLOADP(tmp_);                                                   \
    }
DEF_GUARDED_LOAD(gload_x, XS, VLDX, LD1X, X_T)
DEF_GUARDED_LOAD(gload_f, float, VLD_0, LD1_0, 0)

/* The first n < VEC lanes of v at p in 16-bit storage T (1 f16, 2 bf16). */
#define vstore16_tail(T, v, p, n)                                              \
    ((T) == 1 ? vstore_half_tail((v), (global half *)(p), (n))                 \
              : vstore_bf16_tail((v), (global ushort *)(p), (n)))

/* Stores the lanes of v that lie before ce. */
#define DEF_GUARDED_STORE(NAME, TYPE, VST, ST1, T)                             \
    inline void NAME(global TYPE *p, uint pos, uint ce, vf v) {                \
        if (pos + VEC <= ce) {                                                 \
            VST(p, pos, v);                                                    \
            return;                                                            \
        }                                                                      \
        if (T == 1) { /* halves (bf16 was slower through its vector tail) */   \
            vstore_half_tail(v, (global half *)(p + pos),                      \
                             pos < ce ? ce - pos : 0);                         \
            return;                                                            \
        }                                                                      \
        float tmp_[VEC];                                                       \
        VSTOREP(v, tmp_);                                                      \
        for (uint e_ = 0; e_ < VEC && pos + e_ < ce; ++e_)                     \
            ST1(p, pos + e_, tmp_[e_]);                                        \
    }
DEF_GUARDED_STORE(gstore_x, XS, VSTX, ST1X, X_T)
DEF_GUARDED_STORE(gstore_y, YS, VSTY, ST1Y, Y_T)
DEF_GUARDED_STORE(gstore_f, float, VST_0, ST1_0, 0)

/* ---- the logit transforms (docs/semantics.md) ----
 * x' = xa*x, then with xcap > 0, x' = xcap*tanh(x'/xcap); the derivative
 * XDERIV(x): dx'/dx from the stored x. XLD/XGLD load x
 * transformed; a guarded load's filler is not transformed (a -inf filler
 * stays -inf, where tanh would make it -xcap). */
inline vf xf_v(vf v, float xa, float xcap) {
    v *= xa;
    if (xcap > 0.0f) v = xcap * tanh(v / xcap);
    return v;
}
inline float xf_s(float v, float xa, float xcap) {
    v *= xa;
    if (xcap > 0.0f) v = xcap * tanh(v / xcap);
    return v;
}
/* dx'/dx from the stored x: xa / cosh(xa*x/xcap)^2, not 1 - tanh^2 from
 * x', which cancels where the cap saturates (a saturated logit's gradient
 * came out 5% off); cosh overflows to inf there, giving 0 as it should. */
inline vf xf_dv(vf x, float xa, float xcap) {
    if (xcap > 0.0f) {
        vf ch = cosh(x * xa / xcap);
        return xa / (ch * ch);
    }
    return (vf)xa;
}
inline vf gload_xt(const global XS *p, uint pos, uint ce, float fill,
                   float xa, float xcap) {
    vf v = xf_v(gload_x(p, pos, ce, 0.0f), xa, xcap);
    if (pos + VEC <= ce) return v;
    return select((vf)fill, v, col_ids(pos) < (vi)(int)ce);
}
#if XF
#define XLD(p, i) xf_v(VLDX(p, i), xa, xcap)
#define XGLD(p, pos, ce, fill) gload_xt(p, pos, ce, fill, xa, xcap)
#define XLD1(p, i) xf_s(LD1X(p, i), xa, xcap)
#define XDERIV(x) xf_dv(x, xa, xcap)
#else
#define XLD(p, i) VLDX(p, i)
#define XGLD(p, pos, ce, fill) gload_x(p, pos, ce, fill)
#define XLD1(p, i) LD1X(p, i)
#define XDERIV(x) ((vf)1.0f)
#endif

/* ---- the synchronous target check's verdict ----
 * xent_check (nll.cl) writes the first bad row, or -1, at long index
 * CLX_SCR_SYNC_LONG of the scratch buffer (contract.h). The kernels
 * queued behind it in the same call get guard = 1 and write nothing when
 * it found a bad target, so the host can wait for the verdict while they
 * run instead of between the check and them. */
inline int sync_bad(const global float *scr, int guard) {
    return guard && ((const global long *)scr)[CLX_SCR_SYNC_LONG] >= 0;
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
#endif /* CLXENT_KERNELS_COMMON_H */
