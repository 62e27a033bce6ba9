/* The .npy reader/writer of the clxent tool: round trips (float64 and 8-d
 * included), big-endian and Fortran-order files read into host and C
 * order, every class of malformed header, truncation and random
 * corruption, which must all give an error with a reason and never
 * crash. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "fixtures.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A .npy image: magic, version, header length, header text, data. */
static unsigned char *image(int major, const char *header, const void *data,
                            size_t data_len, size_t *size) {
    size_t hl = strlen(header), lb = major == 1 ? 2 : 4;
    *size = 8 + lb + hl + data_len;
    unsigned char *b = malloc(*size);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < lb; i++) b[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8 + lb, header, hl);
    if (data_len) memcpy(b + 8 + lb + hl, data, data_len);
    return b;
}

/* Parses header + data_len bytes of data; expects failure whose message
 * contains `reason`. */
static void expect_error(int major, const char *header, size_t data_len,
                         const char *reason) {
    unsigned char data[64] = {0};
    size_t size;
    unsigned char *b = image(major, header, data, data_len, &size);
    npy_array a;
    char err[256] = "";
    int rc = npy_parse(b, size, "t.npy", &a, err, sizeof err);
    if (rc != -1 || !strstr(err, reason) || !strstr(err, "t.npy"))
        fail_msg("header %s: rc %d, message '%s', expected '%s'", header, rc,
                 err, reason);
    assert_null(a.data);
    free(b);
}

static void test_round_trip(void **state) {
    (void)state;
    char dir[] = "/tmp/clxent_npy_XXXXXX", path[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.npy", dir);
    float f[6] = {1.5f, -2, 3, 0, 1e-30f, 7};
    int32_t i32[3] = {-100, 0, 2147483647};
    int64_t i64[2] = {-1, 1ll << 40};
    uint16_t h[2] = {0x3c00, 0xc000};
    double f64[3] = {0.1, -1e300, 4.9e-324};
    struct { npy_dtype t; int nd; size_t shape[8]; const void *d; size_t n, e; }
    cases[] = {{NPY_F32, 2, {2, 3}, f, 6, 4}, {NPY_F32, 0, {0}, f, 1, 4},
               {NPY_F32, 1, {6}, f, 6, 4},    {NPY_I32, 1, {3}, i32, 3, 4},
               {NPY_I64, 1, {2}, i64, 2, 8},  {NPY_F16, 2, {1, 2}, h, 2, 2},
               {NPY_F32, 2, {0, 3}, f, 0, 4},
               {NPY_F64, 1, {3}, f64, 3, 8},
               {NPY_F32, 8, {1, 2, 1, 1, 3, 1, 1, 1}, f, 6, 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        npy_array a;
        assert_int_equal(npy_write(path, cases[k].t, cases[k].nd,
                                   cases[k].shape, cases[k].d, err, sizeof err),
                         0);
        if (npy_read(path, &a, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(a.dtype, cases[k].t);
        assert_int_equal(a.ndim, cases[k].nd);
        assert_int_equal(a.count, cases[k].n);
        for (int d = 0; d < a.ndim; d++)
            assert_int_equal(a.shape[d], cases[k].shape[d]);
        assert_memory_equal(a.data, cases[k].d, cases[k].n * cases[k].e);
        npy_free(&a);
    }
    /* The header is padded to a multiple of 64 bytes, as numpy does. */
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    unsigned char head[10];
    assert_int_equal(fread(head, 1, 10, fp), 10);
    fclose(fp);
    assert_int_equal((10 + head[8] + 256 * head[9]) % 64, 0);
    unlink(path);
    rmdir(dir);
}

static void test_versions_and_byte_orders(void **state) {
    (void)state;
    const char *headers[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n",
        "{\"descr\": \"=f4\", \"fortran_order\": False, \"shape\": (2,)}",
        "  {'shape': (2L,),'fortran_order':False,'descr':'<f4'}   \n"};
    float data[2] = {1, 2};
    for (int major = 1; major <= 3; major++)
        for (size_t k = 0; k < 3; k++) {
            size_t size;
            unsigned char *b = image(major, headers[k], data, 8, &size);
            npy_array a;
            char err[256];
            if (npy_parse(b, size, "v.npy", &a, err, sizeof err) != 0)
                fail_msg("version %d header %zu: %s", major, k, err);
            assert_int_equal(a.count, 2);
            assert_memory_equal(a.data, data, 8);
            npy_free(&a);
            free(b);
        }
}

/* Big-endian data comes back in host order, for every dtype. */
static void test_big_endian(void **state) {
    (void)state;
    static const struct { const char *descr; size_t elem; } types[] = {
        {">f4", 4}, {">f2", 2}, {">f8", 8}, {">i4", 4}, {">i8", 8}};
    unsigned char host[3 * 8], file[3 * 8];
    for (size_t i = 0; i < sizeof host; i++) host[i] = (unsigned char)(i * 37 + 1);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        size_t e = types[k].elem, size;
        for (size_t i = 0; i < 3; i++) /* each element's bytes reversed */
            for (size_t b = 0; b < e; b++)
                file[i * e + b] = host[i * e + e - 1 - b];
        char header[128];
        snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': "
                 "False, 'shape': (3,), }", types[k].descr);
        unsigned char *img = image(1, header, file, 3 * e, &size);
        npy_array a;
        char err[256];
        if (npy_parse(img, size, "be.npy", &a, err, sizeof err) != 0)
            fail_msg("%s: %s", types[k].descr, err);
        assert_int_equal(a.converted, NPY_SWAPPED);
        assert_memory_equal(a.data, host, 3 * e);
        npy_free(&a);
        free(img);
    }
}

/* Fortran-order data comes back in C order (2-d and 3-d, with a
 * big-endian one too), and float64 is read as such. */
static void test_fortran_order(void **state) {
    (void)state;
    /* C order element (i, j, k) of a (2, 3, 4) array holds 100i + 10j + k;
     * the Fortran file stores i fastest, then j, then k. */
    float c3[24], f3[24];
    double c2[6], f2[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            for (int k = 0; k < 4; k++) {
                c3[(i * 3 + j) * 4 + k] = (float)(100 * i + 10 * j + k);
                f3[i + 2 * (j + 3 * k)] = (float)(100 * i + 10 * j + k);
            }
            c2[i * 3 + j] = 10.0 * i + j + 0.5;
            f2[i + 2 * j] = 10.0 * i + j + 0.5;
        }
    size_t size;
    npy_array a;
    char err[256];
    unsigned char *img = image(1, "{'descr': '<f4', 'fortran_order': True, "
                                  "'shape': (2, 3, 4), }", f3, sizeof f3, &size);
    if (npy_parse(img, size, "f3.npy", &a, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(a.converted, NPY_TRANSPOSED);
    assert_memory_equal(a.data, c3, sizeof c3);
    npy_free(&a);
    free(img);
    img = image(3, "{'descr': '<f8', 'fortran_order': True, "
                   "'shape': (2, 3), }", f2, sizeof f2, &size);
    if (npy_parse(img, size, "f2.npy", &a, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(a.dtype, NPY_F64);
    assert_memory_equal(a.data, c2, sizeof c2);
    npy_free(&a);
    free(img);
    unsigned char be[sizeof f2];
    for (size_t i = 0; i < 6; i++)
        for (size_t b = 0; b < 8; b++)
            be[i * 8 + b] = ((unsigned char *)f2)[i * 8 + 7 - b];
    img = image(1, "{'descr': '>f8', 'fortran_order': True, "
                   "'shape': (2, 3), }", be, sizeof be, &size);
    if (npy_parse(img, size, "fb.npy", &a, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(a.converted, NPY_SWAPPED | NPY_TRANSPOSED);
    assert_memory_equal(a.data, c2, sizeof c2);
    npy_free(&a);
    free(img);
    /* 1-d and empty Fortran arrays are their C arrays. */
    img = image(1, "{'descr': '<f4', 'fortran_order': True, "
                   "'shape': (0, 3), }", NULL, 0, &size);
    if (npy_parse(img, size, "f0.npy", &a, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(a.count, 0);
    npy_free(&a);
    free(img);
}

static void test_malformed_headers(void **state) {
    (void)state;
    const char *ok_tail = "'fortran_order': False, 'shape': (2,)}";
    char h[256];
    expect_error(1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}",
                 8, "ambiguous");
    expect_error(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}",
                 16, "unsupported dtype");
    expect_error(1, "{'descr': '>u2', 'fortran_order': False, 'shape': (2,)}",
                 4, "unsupported dtype");
    expect_error(1, "{'descr': '<f4', 'fortran_order': 1, 'shape': (2,)}",
                 8, "not a bool");
    expect_error(1, "{'fortran_order': False, 'shape': (2,)}", 8, "lacks 'descr'");
    expect_error(1, "{'descr': '<f4', 'shape': (2,)}", 8, "lacks 'fortran_order'");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False}", 8, "lacks 'shape'");
    snprintf(h, sizeof h, "{'descr': '<f4', 'descr': '<f4', %s", ok_tail);
    expect_error(1, h, 8, "duplicate");
    snprintf(h, sizeof h, "{'descr': '<f4', 'extra': 1, %s", ok_tail);
    expect_error(1, h, 8, "unknown header key");
    expect_error(1, "['descr']", 8, "not a dict");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                 8, "shape");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, "
                    "'shape': (1,1,1,1,1,1,1,1,2)}", 8, "more than 8");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, "
                    "'shape': (99999999999999999999999,)}", 8, "overflows");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, "
                    "'shape': (4294967296, 4294967296, 16)}", 8, "overflows");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, "
                    "'shape': (4611686018427387904,)}", 8, "data size overflows");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}",
                 8, "truncated data");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                 8, "unexpected bytes");
    expect_error(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
                 8, "after header");
    expect_error(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
                 8, "malformed");
}

static void test_bad_prefix(void **state) {
    (void)state;
    float data[2] = {1, 2};
    size_t size;
    unsigned char *b = image(1, "{'descr': '<f4', 'fortran_order': False, "
                                "'shape': (2,)}", data, 8, &size);
    npy_array a;
    char err[256];
    /* Every truncation of a valid file is an error, never a crash. */
    for (size_t n = 0; n < size; n++) {
        err[0] = '\0';
        assert_int_equal(npy_parse(b, n, "p.npy", &a, err, sizeof err), -1);
        assert_non_null(strstr(err, "p.npy: "));
    }
    assert_int_equal(npy_parse(b, 5, "p.npy", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad magic"));
    b[6] = 4;
    assert_int_equal(npy_parse(b, size, "p.npy", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 4.0"));
    b[6] = 1;
    b[8] = 0xff; /* header length past the end */
    assert_int_equal(npy_parse(b, size, "p.npy", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "past the end"));
    free(b);
    assert_int_equal(npy_read("/nonexistent/x.npy", &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.npy"));
}

/* Random byte flips of valid images: the parser must either fail with a
 * message or return an array whose size agrees with its shape. */
static void test_random_corruption(void **state) {
    (void)state;
    int32_t data[6] = {0, 1, 2, 3, 4, 5};
    size_t size;
    unsigned char *good = image(2, "{'descr': '<i4', 'fortran_order': False, "
                                   "'shape': (2, 3), }     \n", data, 24, &size);
    unsigned char *b = malloc(size);
    assert_non_null(b);
    fx_rng rng = fx_rng_seed(42);
    int failures = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(b, good, size);
        int flips = 1 + (int)(fx_next(&rng) % 4);
        for (int k = 0; k < flips; k++)
            b[fx_next(&rng) % size] = (unsigned char)fx_next(&rng);
        size_t n = size - (size_t)(fx_next(&rng) % 3);
        npy_array a;
        char err[256] = "";
        if (npy_parse(b, n, "f.npy", &a, err, sizeof err) == 0) {
            size_t count = 1;
            for (int d = 0; d < a.ndim; d++) count *= a.shape[d];
            assert_int_equal(count, a.count);
            npy_free(&a);
        } else {
            assert_true(strlen(err) > strlen("f.npy: "));
            failures++;
        }
    }
    assert_true(failures > 1000); /* corruption is noticed */
    free(b);
    free(good);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_versions_and_byte_orders),
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_fortran_order),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_bad_prefix),
        cmocka_unit_test(test_random_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
