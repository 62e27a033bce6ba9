/* Minimal .npy reader/writer: little-endian, C order, version 1.0-3.0
 * headers; dtypes float32 (<f4), float16 (<f2), int32 (<i4), int64 (<i8).
 * Malformed files are errors with a reason, never crashes. */
#ifndef CLXENT_NPY_H
#define CLXENT_NPY_H

#include <stddef.h>

typedef enum npy_dtype { NPY_F32 = 1, NPY_F16, NPY_I32, NPY_I64 } npy_dtype;

typedef struct npy_array {
    npy_dtype dtype;
    int ndim;           /* 0..4 */
    size_t shape[4];
    size_t count;       /* product of shape (1 for ndim 0) */
    void *data;         /* count elements, malloc'd */
} npy_array;

/* Reads path into *out. Returns 0, or -1 with a reason ("file.npy: ...")
 * in error[error_size]. */
int npy_read(const char *path, npy_array *out, char *error,
             size_t error_size);
/* Parses a whole .npy image held in memory (used by npy_read and by the
 * fuzzer). */
int npy_parse(const unsigned char *bytes, size_t size, const char *name,
              npy_array *out, char *error, size_t error_size);
/* Writes a float32 or int array. shape has ndim entries (ndim 0: scalar). */
int npy_write(const char *path, npy_dtype dtype, int ndim,
              const size_t *shape, const void *data, char *error,
              size_t error_size);
void npy_free(npy_array *array);

#endif
