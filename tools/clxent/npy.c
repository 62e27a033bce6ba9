/* .npy reader and writer (format spec: numpy.lib.format). The parser
 * trusts nothing in the file: every length, key and shape entry is checked,
 * and shape products are computed with overflow checks before any
 * allocation, so a malformed file is an error with a reason. */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int fail(char *error, size_t size, const char *name, const char *fmt,
                ...) {
    if (error && size) {
        int n = snprintf(error, size, "%s: ", name ? name : "(npy)");
        if (n >= 0 && (size_t)n < size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(error + n, size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

size_t npy_dtype_size(npy_dtype dtype) {
    switch (dtype) {
    case NPY_F32: case NPY_I32: return 4;
    case NPY_F16: return 2;
    case NPY_I64: case NPY_F64: return 8;
    }
    return 0;
}

const char *npy_dtype_name(npy_dtype dtype) {
    switch (dtype) {
    case NPY_F32: return "float32";
    case NPY_F16: return "float16";
    case NPY_I32: return "int32";
    case NPY_I64: return "int64";
    case NPY_F64: return "float64";
    }
    return "unknown";
}

static const char *dtype_descr(npy_dtype dtype) {
    switch (dtype) {
    case NPY_F32: return "<f4";
    case NPY_F16: return "<f2";
    case NPY_I32: return "<i4";
    case NPY_I64: return "<i8";
    case NPY_F64: return "<f8";
    }
    return NULL;
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* A cursor over the header text, which is not NUL-terminated. */
typedef struct cursor { const char *p, *end; } cursor;

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'
                             || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return 1; }
    return 0;
}

/* A quoted Python string literal without escapes, copied into out. */
static int parse_string(cursor *c, char *out, size_t out_size) {
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || n + 1 >= out_size) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int parse_word(cursor *c, const char *word) {
    size_t n = strlen(word);
    skip_space(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* "(N, M, ...)" with up to NPY_MAX_DIMS non-negative entries and an optional
 * trailing comma; "()" is a scalar. Entries that overflow size_t fail. */
static int parse_shape(cursor *c, npy_array *a, const char **why) {
    *why = "shape is not a tuple of non-negative integers";
    if (!eat(c, '(')) return 0;
    a->ndim = 0;
    for (;;) {
        skip_space(c);
        if (eat(c, ')')) return 1;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
        size_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            size_t d = (size_t)(*c->p++ - '0');
            if (v > (SIZE_MAX - d) / 10) {
                *why = "shape entry overflows";
                return 0;
            }
            v = v * 10 + d;
        }
        if (c->p < c->end && (*c->p == 'L' || *c->p == 'l')) c->p++;
        if (a->ndim == NPY_MAX_DIMS) {
            *why = "more than 8 dimensions (clxent takes at most 8)";
            return 0;
        }
        a->shape[a->ndim++] = v;
        if (eat(c, ',')) continue;
        if (eat(c, ')')) return 1;
        return 0;
    }
}

/* The dtype, and in a->converted whether its bytes need swapping. */
static int parse_descr(const char *d, npy_array *a, char *error, size_t es,
                       const char *name) {
    char order = d[0];
    const char *t = d + 1;
    if (strcmp(t, "f4") == 0) a->dtype = NPY_F32;
    else if (strcmp(t, "f2") == 0) a->dtype = NPY_F16;
    else if (strcmp(t, "f8") == 0) a->dtype = NPY_F64;
    else if (strcmp(t, "i4") == 0) a->dtype = NPY_I32;
    else if (strcmp(t, "i8") == 0) a->dtype = NPY_I64;
    if (!a->dtype || (order != '<' && order != '>' && order != '=' &&
                      order != '|'))
        return fail(error, es, name,
                    "unsupported dtype '%s' (float32, float16, float64, "
                    "int32 or int64 expected)", d);
    /* '|' (no byte order) is right for one-byte types, which are refused
     * above; on these it leaves the order unknown. */
    if (order == '|')
        return fail(error, es, name,
                    "byte order '|' is ambiguous for dtype '%s'", d);
    if ((order == '<' && !host_is_little_endian()) ||
        (order == '>' && host_is_little_endian()))
        a->converted |= NPY_SWAPPED;
    return 0;
}

/* The header dict: exactly the keys descr, fortran_order and shape. */
static int parse_header(cursor *c, npy_array *a, const char *name,
                        char *error, size_t es) {
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!eat(c, '{'))
        return fail(error, es, name, "header is not a dict");
    for (;;) {
        if (eat(c, '}')) break;
        char key[32], descr[32];
        if (!parse_string(c, key, sizeof key) || !eat(c, ':'))
            return fail(error, es, name, "malformed header dict");
        if (strcmp(key, "descr") == 0) {
            if (have_descr++)
                return fail(error, es, name, "duplicate key 'descr'");
            if (!parse_string(c, descr, sizeof descr))
                return fail(error, es, name, "'descr' is not a simple "
                            "dtype string");
            if (parse_descr(descr, a, error, es, name) != 0) return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_order++)
                return fail(error, es, name, "duplicate key 'fortran_order'");
            if (parse_word(c, "True"))
                a->converted |= NPY_TRANSPOSED;
            else if (!parse_word(c, "False"))
                return fail(error, es, name, "fortran_order is not a bool");
        } else if (strcmp(key, "shape") == 0) {
            const char *why;
            if (have_shape++)
                return fail(error, es, name, "duplicate key 'shape'");
            if (!parse_shape(c, a, &why))
                return fail(error, es, name, "%s", why);
        } else {
            return fail(error, es, name, "unknown header key '%s'", key);
        }
        if (!eat(c, ',')) {
            if (eat(c, '}')) break;
            return fail(error, es, name, "malformed header dict");
        }
    }
    if (!have_descr) return fail(error, es, name, "header lacks 'descr'");
    if (!have_order)
        return fail(error, es, name, "header lacks 'fortran_order'");
    if (!have_shape) return fail(error, es, name, "header lacks 'shape'");
    skip_space(c);
    if (c->p != c->end)
        return fail(error, es, name, "unexpected text after header dict");
    return 0;
}

/* Reverses the bytes of each of count elements of elem bytes. */
static void swap_bytes(unsigned char *data, size_t count, size_t elem) {
    for (size_t i = 0; i < count; i++, data += elem)
        for (size_t k = 0; k < elem / 2; k++) {
            unsigned char t = data[k];
            data[k] = data[elem - 1 - k];
            data[elem - 1 - k] = t;
        }
}

/* Copies Fortran-order data (first index fastest) into C order (last
 * index fastest), walking the C order and stepping the Fortran offset. */
static void from_fortran(unsigned char *dst, const unsigned char *src,
                         const npy_array *a, size_t elem) {
    size_t idx[NPY_MAX_DIMS] = {0}, fstride[NPY_MAX_DIMS], off = 0;
    for (int k = 0; k < a->ndim; k++)
        fstride[k] = k ? fstride[k - 1] * a->shape[k - 1] : 1;
    for (size_t i = 0; i < a->count; i++) {
        memcpy(dst + i * elem, src + off * elem, elem);
        for (int k = a->ndim - 1; k >= 0; k--) {
            off += fstride[k];
            if (++idx[k] < a->shape[k]) break;
            off -= idx[k] * fstride[k];
            idx[k] = 0;
        }
    }
}

/* The magic and version of an image's first size bytes: *len_bytes, the
 * size of the header length that follows (2 or 4). */
static int parse_prefix(const unsigned char *bytes, size_t size,
                        const char *name, size_t *len_bytes, char *error,
                        size_t es) {
    if (size < 8 || memcmp(bytes, npy_magic, 6) != 0)
        return fail(error, es, name, "not a .npy file (bad magic)");
    unsigned major = bytes[6], minor = bytes[7];
    if (major == 1 && minor == 0) *len_bytes = 2;
    else if ((major == 2 || major == 3) && minor == 0) *len_bytes = 4;
    else
        return fail(error, es, name, "unsupported .npy version %u.%u",
                    major, minor);
    return 0;
}

/* The header length stored at bytes + 8 (len_bytes, little-endian). */
static size_t header_length(const unsigned char *bytes, size_t len_bytes) {
    size_t n = 0;
    for (size_t i = 0; i < len_bytes; i++)
        n |= (size_t)bytes[8 + i] << (8 * i);
    return n;
}

/* The dict of an image whose first size bytes hold the prefix and the
 * whole header: out's dtype, shape, count and flags, *data_bytes the size
 * of the data that must follow it at *data_at. */
static int parse_head(const unsigned char *bytes, size_t size,
                      const char *name, npy_array *out, size_t *data_at,
                      size_t *data_bytes, char *error, size_t es) {
    size_t len_bytes = 0;
    if (parse_prefix(bytes, size, name, &len_bytes, error, es) != 0)
        return -1;
    if (size < 8 + len_bytes)
        return fail(error, es, name, "truncated header length");
    size_t header_len = header_length(bytes, len_bytes);
    *data_at = 8 + len_bytes;
    if (header_len > size - *data_at)
        return fail(error, es, name, "header length %zu runs past the end "
                    "of the file (%zu bytes)", header_len, size);
    cursor c = {(const char *)bytes + *data_at,
                (const char *)bytes + *data_at + header_len};
    if (parse_header(&c, out, name, error, es) != 0) return -1;
    *data_at += header_len;

    size_t count = 1;
    for (int i = 0; i < out->ndim; i++) {
        if (out->shape[i] && count > SIZE_MAX / out->shape[i])
            return fail(error, es, name, "shape product overflows");
        count *= out->shape[i];
    }
    size_t elem = npy_dtype_size(out->dtype);
    if (count > SIZE_MAX / elem)
        return fail(error, es, name, "data size overflows");
    out->count = count;
    *data_bytes = count * elem;
    return 0;
}

/* Moves the file's data (malloc'd, data_bytes + 1 bytes) into out in C
 * order and host byte order. */
static int take_data(unsigned char *data, npy_array *out, const char *name,
                     char *error, size_t es) {
    size_t elem = npy_dtype_size(out->dtype);
    if (out->converted & NPY_TRANSPOSED) {
        unsigned char *c = malloc(out->count ? out->count * elem : 1);
        if (!c) {
            free(data);
            return fail(error, es, name, "out of memory");
        }
        from_fortran(c, data, out, elem);
        free(data);
        data = c;
    }
    if (out->converted & NPY_SWAPPED) swap_bytes(data, out->count, elem);
    out->data = data;
    return 0;
}

static int bad_size(char *error, size_t es, const char *name,
                    size_t data_bytes, size_t present) {
    if (present < data_bytes)
        return fail(error, es, name, "truncated data: %zu bytes expected, "
                    "%zu present", data_bytes, present);
    return fail(error, es, name, "%zu unexpected bytes after the data",
                present - data_bytes);
}

int npy_parse(const unsigned char *bytes, size_t size, const char *name,
              npy_array *out, char *error, size_t es) {
    if (!out) return fail(error, es, name, "no output array");
    memset(out, 0, sizeof *out);
    if (!bytes && size) return fail(error, es, name, "no data");
    size_t data_at, data_bytes;
    if (parse_head(bytes, size, name, out, &data_at, &data_bytes, error,
                   es) != 0) {
        out->count = 0;
        return -1;
    }
    if (size - data_at != data_bytes) {
        out->count = 0;
        return bad_size(error, es, name, data_bytes, size - data_at);
    }
    unsigned char *data = malloc(data_bytes + 1);
    if (!data) {
        out->count = 0;
        return fail(error, es, name, "out of memory");
    }
    if (data_bytes) memcpy(data, bytes + data_at, data_bytes);
    return take_data(data, out, name, error, es);
}

/* Reads exactly n bytes; the number read. */
static size_t read_full(FILE *f, unsigned char *to, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t k = fread(to + got, 1, n - got, f);
        if (k == 0) break;
        got += k;
    }
    return got;
}

/* The header, then exactly the data it promises: a file is never read
 * further than its header says (a device such as /dev/zero ends at the
 * magic), and memory never grows past the data's size. */
static int read_stream(FILE *f, const char *path, npy_array *out,
                       char *error, size_t es) {
    unsigned char prefix[12];
    size_t got = read_full(f, prefix, 8), len_bytes = 0;
    if (parse_prefix(prefix, got, path, &len_bytes, error, es) != 0)
        return -1;
    got += read_full(f, prefix + 8, len_bytes);
    if (got < 8 + len_bytes)
        return fail(error, es, path, "truncated header length");
    size_t header_len = header_length(prefix, len_bytes);
    /* A header holds a short dict; numpy's own reader stops at 10000. */
    if (header_len > 65536)
        return fail(error, es, path, "header length %zu is over 65536 "
                    "bytes", header_len);
    unsigned char *head = malloc(got + header_len);
    if (!head) return fail(error, es, path, "out of memory");
    memcpy(head, prefix, got);
    size_t size = got + read_full(f, head + got, header_len);
    size_t data_at, data_bytes;
    int rc = parse_head(head, size, path, out, &data_at, &data_bytes, error,
                        es);
    free(head);
    if (rc != 0) return -1;
    struct stat st;
    long at = ftell(f);
    /* A regular file says its size: a short one costs no allocation. */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && at >= 0 &&
        st.st_size >= at && (size_t)(st.st_size - at) != data_bytes)
        return bad_size(error, es, path, data_bytes,
                        (size_t)(st.st_size - at));
    unsigned char *data = malloc(data_bytes + 1);
    if (!data) return fail(error, es, path, "out of memory");
    got = read_full(f, data, data_bytes);
    if (got < data_bytes || fgetc(f) != EOF) {
        free(data);
        if (ferror(f)) return fail(error, es, path, "read error");
        if (got < data_bytes) return bad_size(error, es, path, data_bytes, got);
        size_t extra = 1;
        unsigned char chunk[4096];
        size_t k;
        while (extra < ((size_t)1 << 20) &&
               (k = fread(chunk, 1, sizeof chunk, f)) > 0)
            extra += k;
        return fail(error, es, path, "%s%zu unexpected bytes after the data",
                    extra >= ((size_t)1 << 20) ? "at least " : "", extra);
    }
    if (ferror(f)) {
        free(data);
        return fail(error, es, path, "read error");
    }
    return take_data(data, out, path, error, es);
}

int npy_read(const char *path, npy_array *out, char *error, size_t es) {
    if (out) memset(out, 0, sizeof *out);
    if (!path) return fail(error, es, "(npy)", "no path");
    if (!out) return fail(error, es, path, "no output array");
    FILE *f = fopen(path, "rb");
    if (!f) return fail(error, es, path, "%s", strerror(errno));
    int rc = read_stream(f, path, out, error, es);
    fclose(f);
    if (rc != 0) {
        out->count = 0;
        out->data = NULL;
    }
    return rc;
}

int npy_write(const char *path, npy_dtype dtype, int ndim,
              const size_t *shape, const void *data, char *error,
              size_t es) {
    const char *descr = dtype_descr(dtype);
    if (!path) return fail(error, es, "(npy)", "no path");
    if (!descr) return fail(error, es, path, "unknown dtype");
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim && !shape))
        return fail(error, es, path, "bad shape");
    char dims[NPY_MAX_DIMS * 24 + 8] = "";
    size_t count = 1, used = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && count > SIZE_MAX / shape[i])
            return fail(error, es, path, "shape product overflows");
        count *= shape[i];
        used += (size_t)snprintf(dims + used, sizeof dims - used, "%zu%s",
                                 shape[i], ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    }
    size_t elem = npy_dtype_size(dtype);
    if (count > SIZE_MAX / elem) return fail(error, es, path, "too large");
    if (count && !data) return fail(error, es, path, "no data");
    char header[sizeof dims + 128];
    int n = snprintf(header, sizeof header,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     descr, dims);
    /* Pad with spaces so magic + length + header is a multiple of 64. */
    size_t len = (size_t)n, total = 10 + len + 1;
    size_t padded = (total + 63) / 64 * 64;
    while (10 + len + 1 < padded) header[len++] = ' ';
    header[len++] = '\n';
    unsigned char prefix[10];
    memcpy(prefix, npy_magic, 6);
    prefix[6] = 1;
    prefix[7] = 0;
    prefix[8] = (unsigned char)(len & 0xff);
    prefix[9] = (unsigned char)(len >> 8);
    FILE *f = fopen(path, "wb");
    if (!f) return fail(error, es, path, "%s", strerror(errno));
    struct stat st;
    int regular = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
    int ok = fwrite(prefix, 1, 10, f) == 10 &&
             fwrite(header, 1, len, f) == len &&
             (count == 0 || fwrite(data, elem, count, f) == count);
    if (fclose(f) != 0) ok = 0;
    if (ok) return 0;
    int why = errno;
    /* A truncated file would read as a malformed array later; a device
     * or a pipe is not ours to remove. */
    if (regular) remove(path);
    return fail(error, es, path, "write failed: %s", strerror(why));
}

void npy_free(npy_array *array) {
    if (!array) return;
    free(array->data);
    array->data = NULL;
    array->count = 0;
}
