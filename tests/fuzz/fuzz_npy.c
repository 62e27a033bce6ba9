/* libFuzzer harness over the .npy parser (tools/clxent/npy.c): any bytes
 * must give either an error with a reason or an array whose shape,
 * count and data agree; every element is touched so the sanitizers see
 * an undersized allocation. */
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    npy_array a;
    char error[256];
    memset(&a, 0, sizeof a);
    error[0] = '\0';
    if (npy_parse(data, size, "fuzz.npy", &a, error, sizeof error) != 0) {
        if (!error[0] || !memchr(error, '\0', sizeof error)) {
            fprintf(stderr, "fuzz_npy: failure without a reason\n");
            abort();
        }
        return 0;
    }
    if (a.ndim < 0 || a.ndim > NPY_MAX_DIMS) abort();
    size_t count = 1;
    for (int i = 0; i < a.ndim; ++i) count *= a.shape[i];
    if (count != a.count) {
        fprintf(stderr, "fuzz_npy: count %zu, shape gives %zu\n", a.count,
                count);
        abort();
    }
    size_t es = npy_dtype_size(a.dtype);
    if (es == 0) abort();
    if (a.count && !a.data) abort();
    /* The data must have come from the input: header + count * es bytes. */
    if (a.count * es > size) abort();
    volatile unsigned char sum = 0;
    for (size_t i = 0; i < a.count * es; ++i)
        sum ^= ((const unsigned char *)a.data)[i];
    (void)sum;
    npy_free(&a);
    return 0;
}
