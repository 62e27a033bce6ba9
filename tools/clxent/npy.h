/* Minimal .npy reader/writer: version 1.0-3.0 headers; dtypes float32,
 * float16, float64, int32 and int64, up to NPY_MAX_DIMS dimensions. The
 * reader returns host byte order and C order whatever the file holds
 * (big-endian data is byte-swapped, Fortran-order data transposed); the
 * writer writes little-endian C order. Malformed files are errors with a
 * reason, never crashes. */
#ifndef CLXENT_NPY_H
#define CLXENT_NPY_H

#include <stddef.h>

/* clxent's tensors: up to 8 dimensions, as PyTorch's (N, C, d1..d6). */
#define NPY_MAX_DIMS 8

typedef enum npy_dtype {
    NPY_F32 = 1, NPY_F16, NPY_I32, NPY_I64, NPY_F64
} npy_dtype;

/* What the reader changed to give host byte order and C order. */
#define NPY_SWAPPED 1    /* the file's data was big-endian */
#define NPY_TRANSPOSED 2 /* the file was in Fortran order */

typedef struct npy_array {
    npy_dtype dtype;
    int ndim;           /* 0..NPY_MAX_DIMS */
    size_t shape[NPY_MAX_DIMS];
    size_t count;       /* product of shape (1 for ndim 0) */
    void *data;         /* count elements, malloc'd */
    unsigned converted; /* NPY_SWAPPED | NPY_TRANSPOSED */
} npy_array;

/* Bytes per element of dtype (0 for an unknown one). */
size_t npy_dtype_size(npy_dtype dtype);
/* "float32", "float16", "int32", "int64", "float64". */
const char *npy_dtype_name(npy_dtype dtype);

/* Reads path into *out. Returns 0, or -1 with a reason ("file.npy: ...")
 * in error[error_size]. */
int npy_read(const char *path, npy_array *out, char *error,
             size_t error_size);
/* Parses a whole .npy image held in memory (used by npy_read and by the
 * fuzzer). */
int npy_parse(const unsigned char *bytes, size_t size, const char *name,
              npy_array *out, char *error, size_t error_size);
/* Writes an array of any of the dtypes, little-endian, C order. shape has
 * ndim entries (ndim 0: scalar). */
int npy_write(const char *path, npy_dtype dtype, int ndim,
              const size_t *shape, const void *data, char *error,
              size_t error_size);
void npy_free(npy_array *array);

#endif
