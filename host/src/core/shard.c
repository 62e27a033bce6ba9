/* The combine of two partial records (clxent.h, "Sharded vocabulary"), in
 * f32 as the device's kernel (kernels/shard.cl) computes it: the larger
 * maximum, the sums rescaled to it with their low parts kept, the linear
 * sums added. Commutative bit for bit: every step is symmetric in a, b. */
#include "core/internal.h"

#include <math.h>

_Static_assert(CLXENT_PARTIAL_FLOATS == 8, "kernels/shard.cl reads 8 floats");

/* exp(m_k - m), 0 for a part with no class (-inf). */
static float rescale(float mk, float m) {
    return mk == -INFINITY ? 0.0f : expf(mk - m);
}

/* b relative to m instead of mk: b + a (m - mk), exact 0 shift for a = 0. */
static float shift_b(float b, float a, float mk, float m) {
    return a == 0.0f ? b : b + a * (m - mk);
}

void clx_partial_combine_row(const float *a, const float *b, float *out) {
    float ma = a[CLXENT_PARTIAL_MAX], mb = b[CLXENT_PARTIAL_MAX];
    /* NaN in either stays (fmaxf would drop it) */
    float m = isnan(ma) || isnan(mb) ? NAN : fmaxf(ma, mb);
    float fa = rescale(ma, m), fb = rescale(mb, m);
    float ta = a[CLXENT_PARTIAL_SUM] * fa, tb = b[CLXENT_PARTIAL_SUM] * fb;
    /* two-sum: s + e == ta + tb exactly, the same e either way round */
    float s = ta + tb, bv = s - ta;
    float e = (ta - (s - bv)) + (tb - bv);
    float lo = e + (a[CLXENT_PARTIAL_SUM_LO] * fa +
                    b[CLXENT_PARTIAL_SUM_LO] * fb);
    float hi = s + lo;
    float av = a[CLXENT_PARTIAL_A], bw = b[CLXENT_PARTIAL_A];
    float r[CLXENT_PARTIAL_FLOATS];
    r[CLXENT_PARTIAL_MAX] = m;
    r[CLXENT_PARTIAL_SUM] = hi;
    r[CLXENT_PARTIAL_SUM_LO] = isfinite(hi) ? lo - (hi - s) : 0.0f;
    r[CLXENT_PARTIAL_A] = av + bw;
    r[CLXENT_PARTIAL_B] = shift_b(a[CLXENT_PARTIAL_B], av, ma, m) +
                          shift_b(b[CLXENT_PARTIAL_B], bw, mb, m);
    r[CLXENT_PARTIAL_XY] = a[CLXENT_PARTIAL_XY] + b[CLXENT_PARTIAL_XY];
    r[CLXENT_PARTIAL_WY] = a[CLXENT_PARTIAL_WY] + b[CLXENT_PARTIAL_WY];
    r[CLXENT_PARTIAL_OWN] = a[CLXENT_PARTIAL_OWN] + b[CLXENT_PARTIAL_OWN];
    for (int k = 0; k < CLXENT_PARTIAL_FLOATS; ++k) out[k] = r[k];
}

clxent_status clxent_partial_combine_host(const float *a, const float *b,
                                          float *out, size_t rows) {
    if (rows > 0 && (!a || !b || !out)) return CLXENT_STATUS_NULL_POINTER;
    for (size_t r = 0; r < rows; ++r)
        clx_partial_combine_row(a + r * CLXENT_PARTIAL_FLOATS,
                                b + r * CLXENT_PARTIAL_FLOATS,
                                out + r * CLXENT_PARTIAL_FLOATS);
    return CLXENT_STATUS_OK;
}
