/* Element-wise copy with dtype conversion (X_T -> Y_T, f32 in between),
 * strided rows and offsets on both sides; the same dtype on both sides is
 * copied as raw bits (exact, NaN payloads too, and no conversion work: it
 * is also the benchmark's copy roofline). The same vector tiles as the loss
 * kernels: T items per unit, a unit is chunk k (CH columns) of a row, P
 * chunks per row. A contiguous matrix is passed by the host as a few long
 * rows. */
#include "common.h"
#if X_T == Y_T
/* raw storage words: 32-bit for f32, 16-bit for f16 and bf16 */
#if X_T == CLX_STORE_F32
typedef uint raw_t;
#else
typedef ushort raw_t;
#endif
#if VEC == 1
#define RAW_LD(p, i) ((p)[i])
#define RAW_ST(p, i, v) ((p)[i] = (v))
#else
#define RAW_LD(p, i) CAT(vload, VEC)(0, (p) + (i))
#define RAW_ST(p, i, v) CAT(vstore, VEC)((v), 0, (p) + (i))
#endif
#endif

KERNEL void copy_rows(CLX_PARAMS(copy_rows)) {
    unit_t u = unit_of(T, P, CH, C);
    if (u.row >= R) return;
#if X_T == Y_T
    const global raw_t *xr = (const global raw_t *)x + x_off + u.row * x_ld;
    global raw_t *yr = (global raw_t *)y + y_off + u.row * y_ld;
    const uint span = T * KT * VEC;
    uint c0 = u.cb;
    for (; c0 < u.ce && u.ce - c0 >= span; c0 += span)
        for (int j = 0; j < KT; ++j) {
            uint pos = c0 + (j * T + u.lane) * VEC;
            RAW_ST(yr, pos, RAW_LD(xr, pos));
        }
    for (uint pos = c0 + u.lane; pos < u.ce; pos += T) yr[pos] = xr[pos];
    return;
#else
    const global XS *xr = x + x_off + u.row * x_ld;
    global YS *yr = y + y_off + u.row * y_ld;
    const uint span = T * KT * VEC;
    uint c0 = u.cb;
    for (; c0 < u.ce && u.ce - c0 >= span; c0 += span) {
        vf v[KT];
        for (int j = 0; j < KT; ++j) v[j] = VLDX(xr, c0 + (j * T + u.lane) * VEC);
        for (int j = 0; j < KT; ++j) VSTY(yr, c0 + (j * T + u.lane) * VEC, v[j]);
    }
    for (int j = 0; j < KT; ++j) {
        uint pos = c0 + (j * T + u.lane) * VEC;
        if (pos >= u.ce) break;
        gstore_y(yr, pos, u.ce, gload_x(xr, pos, u.ce, 0.0f));
    }
#endif
}

/* A per-row array between a strided and a compact layout (the host
 * stages strided targets, lse, grad_rows and losses of the N-d calls
 * through it): words 32-bit words per element, copied as bits. */
KERNEL void stage_rows(CLX_PARAMS(stage_rows)) {
    ulong r = get_global_id(0);
    if (r >= (ulong)O * I) return;
    ulong o = r / I, i = r % I;
    ulong sa = (s_off + o * s_so + i * s_si) * words;
    ulong da = (d_off + o * d_so + i * d_si) * words;
    for (uint k = 0; k < words; ++k) dst[da + k] = src[sa + k];
}
