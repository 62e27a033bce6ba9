/* The one tolerance the tests compare with. Free of cmocka, so the fuzzer
 * (tests/fuzz) uses it too. */
#ifndef CLXENT_TEST_TOLERANCE_H
#define CLXENT_TEST_TOLERANCE_H

#include <math.h>

/* |got - want| <= abs_tol + rel_tol * |want|; NaN matches NaN, an
 * infinity the same infinity, and nothing else matches either. Callers
 * with other bounds (relative to max(1, |want|), one rounding of a
 * storage type) fold them into abs_tol. */
static inline int fx_close(double got, double want, double abs_tol,
                           double rel_tol) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    if (!isfinite(got)) return 0;
    return fabs(got - want) <= abs_tol + rel_tol * fabs(want);
}

#endif
