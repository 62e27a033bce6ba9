/* Element-wise copy with dtype conversion (X_T -> Y_T, f32 in between),
 * strided rows and offsets on both sides. Also the benchmark's copy
 * roofline, so it uses the same vector tiles as the loss kernels: T items
 * per unit, a unit is chunk k (CH columns) of a row, P chunks per row.
 * A contiguous matrix is passed by the host as a few long rows. */
kernel void copy_rows(const global XS *x, ulong x_off, ulong x_ld,
                      global YS *y, ulong y_off, ulong y_ld, uint R, uint C,
                      uint T, uint P, uint CH) {
    unit_t u = unit_of(T, P, CH, C);
    if (u.row >= R) return;
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
}
