/* Every operation of the table (ops.h) on one (rows, cols, dtype, seed)
 * case, under the option sets it takes, with all outputs collected into
 * one byte blob so runs can be compared bitwise. Used by
 * test_determinism.c and test_threads.c. Thread-safe: no cmocka
 * assertions (they longjmp), only statuses and a message. */
#ifndef CLXENT_HARD_OPS_H
#define CLXENT_HARD_OPS_H

#include <clxent/clxent.h>

#include <stddef.h>

typedef struct hard_blob {
    unsigned char *data;
    size_t size;
} hard_blob;

typedef struct hard_case {
    size_t rows, cols;
    clxent_dtype dtype;
    unsigned seed;
} hard_case;

/* Runs the mix on ctx; on success *out holds every output (caller frees
 * out->data). On failure returns the status and fills error. */
clxent_status hard_run(clxent_context *ctx, const hard_case *k,
                       hard_blob *out, char *error, size_t error_size);

/* Index of the first differing byte, or -1 when equal. */
long hard_diff(const hard_blob *a, const hard_blob *b);

#endif
